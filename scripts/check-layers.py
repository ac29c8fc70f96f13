#!/usr/bin/env python3
"""check-layers.py — the library's includes go only downward, without circles.

Reads every #include "..." under lib/ and kernels/ (resolved as the
Makefile's -I paths do: the file's own folder, lib/, kernels/, include/)
and fails when
  - a file includes one of a higher layer (LAYERS, bottom first), or
  - files include each other in a circle; a source file and its header
    count as one unit (x.c with x.h), so a.c -> b.h with b.c -> a.h is one.
"""
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# bottom first; a folder may include its own layer and those below it
LAYERS = ["include", "lib/core", "kernels", "lib/gguf", "lib/tokenizer", "lib/model",
          "lib/kvcache", "lib/backend", "lib/forward", "lib/runtime"]
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def layer_of(path):
    rel = path.relative_to(ROOT).as_posix()
    best = None
    for i, name in enumerate(LAYERS):
        if rel == name or rel.startswith(name + "/"):
            best = i
    return best


def resolve(src, name):
    for base in (src.parent, ROOT / "lib", ROOT / "kernels", ROOT / "include"):
        p = (base / name).resolve()
        if p.is_file():
            return p
    return None


def main():
    files = [p for d in ("lib", "kernels") for p in (ROOT / d).rglob("*")
             if p.suffix in (".c", ".h", ".cu", ".cuh")]
    unit = lambda p: p.with_suffix("")  # x.c and x.h together
    edges, problems = {}, []
    for f in files:
        for name in INCLUDE.findall(f.read_text(errors="replace")):
            g = resolve(f, name)
            if g is None:
                continue
            lf, lg = layer_of(f), layer_of(g)
            if lf is not None and lg is not None and lg > lf:
                problems.append(f"{f.relative_to(ROOT)} includes {g.relative_to(ROOT)}, "
                                f"a higher layer ({LAYERS[lg]} above {LAYERS[lf]})")
            if unit(f) != unit(g):
                edges.setdefault(unit(f), set()).add(unit(g))
    # circles: depth-first search for a back edge
    state, stack = {}, []

    def visit(u):
        state[u] = 1
        stack.append(u)
        for v in sorted(edges.get(u, ())):
            if state.get(v) == 1:
                loop = stack[stack.index(v):] + [v]
                problems.append("include circle: " +
                                " -> ".join(str(x.relative_to(ROOT)) for x in loop))
            elif v not in state:
                visit(v)
        stack.pop()
        state[u] = 2

    for u in sorted(edges):
        if u not in state:
            visit(u)
    for p in problems:
        print("check-layers:", p)
    if not problems:
        print(f"check-layers: {len(files)} files, includes only downward, no circle")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
