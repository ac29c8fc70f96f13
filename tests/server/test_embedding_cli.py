"""kinfer-embedding against llama.cpp's embeddings (tests/fixtures/embeddings/,
made by tests/fixtures/gen_embedding_fixtures.py) and llama-embedding's
output formats, normalisation and input errors.

KINFER_EMBEDDING_BIN: the program (default: kinfer-embedding next to the server).
"""

import json
import math
import os
import subprocess

import pytest

from conftest import MODEL, MODELS_DIR, ROOT, SERVER_BIN, _path, timeout

EMBD_BIN = _path("KINFER_EMBEDDING_BIN", str(SERVER_BIN.parent / "kinfer-embedding"))
GEMMA = MODELS_DIR / "gemma-3-270m-q4_k_m.gguf"
# the generator's prompts, in its order
PROMPTS = [
    "The capital of France is Paris.",
    "def add(a, b):\n    return a + b\n",
    "Embeddings map text to vectors; similar meanings land close together, "
    "which is what retrieval before generation relies on.",
]
REL_TOL = 1e-5
SEP = "<#sep#>"


def fixture(model):
    """{pooling: [embedding, ...]} of the model's fixture file; the prompts
    twice over in one batch (over 64 tokens: llama.cpp's tiled flash
    attention, other rounding) under "batch-<pooling>"."""
    path = ROOT / "tests/fixtures/embeddings" / (model.name[: -len(".gguf")] + ".txt")
    out, cur = {}, None
    for line in path.read_text().splitlines():
        kw, *rest = line.split()
        if kw in ("pooling", "batch"):
            cur = out.setdefault(rest[0] if kw == "pooling" else "batch-" + rest[0], [])
        elif kw == "embd":
            cur.append([float(x) for x in rest])
    return out


def run(*args, check=True):
    p = subprocess.run([str(EMBD_BIN), *args], capture_output=True, text=True,
                       timeout=timeout(120))
    if check:
        assert p.returncode == 0, p.stderr
    return p


def rows(stdout):
    return [[float(x) for x in line.split()] for line in stdout.splitlines() if line.strip()]


def rel_err(got, want):
    return max(abs(a - b) for a, b in zip(got, want)) / max(abs(b) for b in want)


@pytest.fixture(autouse=True)
def need_program():
    if not EMBD_BIN.exists():
        pytest.skip(f"{EMBD_BIN} is not built")
    if not MODEL.exists():
        pytest.skip(f"{MODEL} is absent")


@pytest.mark.parametrize("model", [MODEL, GEMMA], ids=["smollm2", "gemma3"])
@pytest.mark.parametrize("pooling", ["mean", "last"])
def test_equals_llama_cpp(model, pooling):
    if not model.exists():
        pytest.skip(f"{model} is absent")
    # the prompts contain newlines: another separator, as llama-embedding allows
    p = run("-m", str(model), "-p", SEP.join(PROMPTS), "--embd-separator", SEP,
            "--pooling", pooling, "--embd-normalize", "-1", "-t", "2")
    got = rows(p.stdout)
    want = fixture(model)[pooling]
    assert len(got) == len(want) == len(PROMPTS)
    for g, w in zip(got, want):
        assert len(g) == len(w)
        assert rel_err(g, w) <= REL_TOL
    # twice over: one batch of over 64 tokens
    p = run("-m", str(model), "-p", SEP.join(PROMPTS * 2), "--embd-separator", SEP,
            "--pooling", pooling, "--embd-normalize", "-1", "-t", "2")
    got, want = rows(p.stdout), fixture(model)["batch-" + pooling]
    assert len(got) == len(want) == 2 * len(PROMPTS)
    for g, w in zip(got, want):
        assert rel_err(g, w) <= REL_TOL


def test_formats_and_normalisation():
    text = "first line\nsecond line"
    raw = rows(run("-m", str(MODEL), "-p", text, "--pooling", "mean", "-t", "2").stdout)
    assert len(raw) == 2
    for r in raw:  # default --embd-normalize 2: unit length
        assert math.isclose(math.sqrt(sum(x * x for x in r)), 1.0, rel_tol=1e-5)
    doc = json.loads(run("-m", str(MODEL), "-p", text, "--pooling", "mean", "-t", "2",
                         "--embd-output-format", "json").stdout)
    assert doc["object"] == "list" and [d["index"] for d in doc["data"]] == [0, 1]
    for d, r in zip(doc["data"], raw):
        assert d["object"] == "embedding"
        assert max(abs(a - b) for a, b in zip(d["embedding"], r)) < 1e-6
    arr = json.loads(run("-m", str(MODEL), "-p", text, "--pooling", "mean", "-t", "2",
                         "--embd-output-format", "array").stdout)
    assert len(arr) == 2 and len(arr[0]) == len(raw[0])
    # 0: the largest magnitude becomes 32760
    big = rows(run("-m", str(MODEL), "-p", "first line", "--pooling", "last", "-t", "2",
                   "--embd-normalize", "0").stdout)[0]
    assert max(abs(x) for x in big) == 32760
    # pooling none: one line per token
    per_token = rows(run("-m", str(MODEL), "-p", "first line", "--pooling", "none", "-t", "2").stdout)
    assert len(per_token) > 1


@pytest.mark.parametrize("args,named", [
    (["-p", "a\n\nb"], "input 1 is empty"),
    (["-p", "word " * 200, "-c", "64"], "more than the context of 64"),
    (["-p", "x", "--pooling", "median"], "--pooling"),
    (["-p", "x", "--embd-output-format", "xml"], "--embd-output-format"),
    (["-p", "x", "--pooling", "rank"], "rank"),
])
def test_errors(args, named):
    p = run("-m", str(MODEL), *args, check=False)
    assert p.returncode != 0
    assert named in p.stderr, p.stderr
    assert p.stdout == ""
