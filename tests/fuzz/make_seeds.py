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

# Tiny models of every family the loader binds (one layer, width 16, F32),
# with their RoPE scaling metadata, so the fuzzer starts inside the
# loader's paths: hyperparameters, scaling keys, fused and factor tensors.
E, FF, V, HD = 16, 16, 4, 16


def model(arch, tensors, extra_kvs):
    kvs = [kv('general.architecture', 8, s(arch)),
           kv(arch + '.context_length', 4, struct.pack('<I', 4096)),
           kv(arch + '.embedding_length', 4, struct.pack('<I', E)),
           kv(arch + '.block_count', 4, struct.pack('<I', 1)),
           kv(arch + '.feed_forward_length', 4, struct.pack('<I', FF)),
           kv(arch + '.attention.head_count', 4, struct.pack('<I', 1)),
           kv(arch + '.attention.layer_norm_rms_epsilon', 6, struct.pack('<f', 1e-5))] + extra_kvs
    infos, data = b'', b''
    for name, ne, value in tensors:
        n = 1
        for d in ne:
            n *= d
        infos += s(name) + struct.pack('<I', len(ne)) + b''.join(struct.pack('<Q', d) for d in ne)
        infos += struct.pack('<IQ', 0, len(data))  # F32 at this offset
        data += struct.pack('<f', value) * n
        data += b'\0' * ((32 - len(data) % 32) % 32)
    b = header(len(tensors), len(kvs)) + b''.join(kvs) + infos
    return b + b'\0' * ((32 - len(b) % 32) % 32) + data


def layer(fused, extra=()):
    t = [('token_embd.weight', (E, V), 0.1), ('output_norm.weight', (E,), 1.0),
         ('blk.0.attn_norm.weight', (E,), 1.0), ('blk.0.ffn_norm.weight', (E,), 1.0),
         ('blk.0.attn_output.weight', (E, E), 0.1), ('blk.0.ffn_down.weight', (FF, E), 0.1)]
    if fused:
        t += [('blk.0.attn_qkv.weight', (E, 3 * E), 0.1), ('blk.0.ffn_up.weight', (E, 2 * FF), 0.1)]
    else:
        t += [('blk.0.attn_' + x + '.weight', (E, E), 0.1) for x in 'qkv']
        t += [('blk.0.ffn_gate.weight', (E, FF), 0.1), ('blk.0.ffn_up.weight', (E, FF), 0.1)]
    return t + list(extra)


def f32(key, v):
    return kv(key, 6, struct.pack('<f', v))


def u32(key, v):
    return kv(key, 4, struct.pack('<I', v))


(out / 'llama31.gguf').write_bytes(model('llama', layer(False, [('rope_freqs.weight', (HD // 2,), 2.0)]), []))
(out / 'llama-linear.gguf').write_bytes(model('llama', layer(False), [
    kv('llama.rope.scaling.type', 8, s('linear')), f32('llama.rope.scaling.factor', 4.0)]))
(out / 'qwen2-yarn.gguf').write_bytes(model('qwen2', layer(False, [
    ('blk.0.attn_' + x + '.bias', (E,), 0.1) for x in 'qkv']), [
    kv('qwen2.rope.scaling.type', 8, s('yarn')), f32('qwen2.rope.scaling.factor', 4.0),
    u32('qwen2.rope.scaling.original_context_length', 1024)]))
(out / 'qwen3.gguf').write_bytes(model('qwen3', layer(False, [
    ('blk.0.attn_q_norm.weight', (HD,), 1.0), ('blk.0.attn_k_norm.weight', (HD,), 1.0)]), []))
(out / 'phi3.gguf').write_bytes(model('phi3', layer(True, [
    ('rope_factors_long.weight', (HD // 2,), 4.0), ('rope_factors_short.weight', (HD // 2,), 1.0)]), [
    u32('phi3.rope.scaling.original_context_length', 1024), f32('phi3.rope.scaling.attn_factor', 1.19)]))


# mixtures of experts: Mixtral (llama with experts) and qwen3moe, 4 experts
# of width FF, 2 per token
def moe_layer(extra=()):
    t = [('token_embd.weight', (E, V), 0.1), ('output_norm.weight', (E,), 1.0),
         ('blk.0.attn_norm.weight', (E,), 1.0), ('blk.0.ffn_norm.weight', (E,), 1.0),
         ('blk.0.attn_output.weight', (E, E), 0.1), ('blk.0.ffn_gate_inp.weight', (E, 4), 0.1),
         ('blk.0.ffn_gate_exps.weight', (E, FF, 4), 0.1), ('blk.0.ffn_up_exps.weight', (E, FF, 4), 0.1),
         ('blk.0.ffn_down_exps.weight', (FF, E, 4), 0.1)]
    t += [('blk.0.attn_' + x + '.weight', (E, E), 0.1) for x in 'qkv']
    return t + list(extra)


(out / 'mixtral.gguf').write_bytes(model('llama', moe_layer(), [
    u32('llama.expert_count', 4), u32('llama.expert_used_count', 2)]))
(out / 'qwen3moe.gguf').write_bytes(model('qwen3moe', moe_layer([
    ('blk.0.attn_q_norm.weight', (HD,), 1.0), ('blk.0.attn_k_norm.weight', (HD,), 1.0)]), [
    u32('qwen3moe.expert_count', 4), u32('qwen3moe.expert_used_count', 2),
    u32('qwen3moe.expert_feed_forward_length', FF)]))


# a bert encoder with a WordPiece vocabulary (the phantom-space layout of
# llama.cpp's converter), so the fuzzer reaches the WPM tokenizer
def strs(key, items):
    return kv(key, 9, struct.pack('<IQ', 8, len(items)) + b''.join(s(x) for x in items))


def i32s(key, items):
    return kv(key, 9, struct.pack('<IQ', 5, len(items)) + b''.join(struct.pack('<i', x) for x in items))


wpm = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', '\u2581the', '\u2581hello', 'ing', 's', '\u2581a',
       'a', '\u2581\u4e2d', '\u2581,', '\u2581caf', 'e']
bert = [('token_embd.weight', (E, len(wpm)), 0.1), ('token_types.weight', (E, 2), 0.1),
        ('position_embd.weight', (E, 4096), 0.1), ('token_embd_norm.weight', (E,), 1.0),
        ('token_embd_norm.bias', (E,), 0.0), ('blk.0.attn_output.weight', (E, E), 0.1),
        ('blk.0.attn_output.bias', (E,), 0.0), ('blk.0.attn_output_norm.weight', (E,), 1.0),
        ('blk.0.attn_output_norm.bias', (E,), 0.0), ('blk.0.ffn_up.weight', (E, FF), 0.1),
        ('blk.0.ffn_up.bias', (FF,), 0.0), ('blk.0.ffn_down.weight', (FF, E), 0.1),
        ('blk.0.ffn_down.bias', (E,), 0.0), ('blk.0.layer_output_norm.weight', (E,), 1.0),
        ('blk.0.layer_output_norm.bias', (E,), 0.0)]
bert += [('blk.0.attn_' + x + '.weight', (E, E), 0.1) for x in 'qkv']
bert += [('blk.0.attn_' + x + '.bias', (E,), 0.0) for x in 'qkv']
(out / 'bert-wpm.gguf').write_bytes(model('bert', bert, [
    f32('bert.attention.layer_norm_epsilon', 1e-12), u32('bert.pooling_type', 2),
    kv('tokenizer.ggml.model', 8, s('bert')), strs('tokenizer.ggml.tokens', wpm),
    i32s('tokenizer.ggml.token_type', [3] * 5 + [1] * (len(wpm) - 5)),
    u32('tokenizer.ggml.unknown_token_id', 1), u32('tokenizer.ggml.bos_token_id', 2),
    u32('tokenizer.ggml.seperator_token_id', 3), u32('tokenizer.ggml.padding_token_id', 0),
    u32('tokenizer.ggml.mask_token_id', 4)]))
