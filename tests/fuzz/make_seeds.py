#!/usr/bin/env python3
"""Write the GGUF fuzzer's seed corpus into the directory given: a valid file
covering every value type and one tensor, and an empty (header-only) file.
Generated at fuzz time so no binary files are tracked."""
import struct
import sys
from pathlib import Path


def s(x):
    x = x.encode()
    return struct.pack('<Q', len(x)) + x


def kv(k, t, v):
    return s(k) + struct.pack('<I', t) + v


def header(n_tensors, n_kv):
    return b'GGUF' + struct.pack('<IQQ', 3, n_tensors, n_kv)


out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
kvs = [kv('a.u8', 0, b'\x07'), kv('a.i32', 5, struct.pack('<i', -3)),
       kv('a.f32', 6, struct.pack('<f', 1.5)), kv('a.bool', 7, b'\x01'),
       kv('a.str', 8, s('hello')), kv('a.u64', 10, struct.pack('<Q', 9)),
       kv('a.f64', 12, struct.pack('<d', 2.5)),
       kv('a.arr', 9, struct.pack('<IQ', 8, 2) + s('x') + s('yz')),
       kv('a.nest', 9, struct.pack('<IQ', 9, 1) + struct.pack('<IQ', 4, 2) + struct.pack('<II', 1, 2)),
       kv('general.alignment', 4, struct.pack('<I', 32))]
b = header(1, len(kvs)) + b''.join(kvs)
b += s('w') + struct.pack('<IQQIQ', 2, 32, 2, 2, 0)  # a 32x2 Q4_0 tensor at offset 0
b += b'\0' * ((32 - len(b) % 32) % 32) + bytes(range(36))
(out / 'valid.gguf').write_bytes(b)
(out / 'empty.gguf').write_bytes(header(0, 0))
