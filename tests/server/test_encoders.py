"""kinfer-server on an encoder-only model (a synthetic bert-tiny written by
synth-model, no --embeddings flag: an encoder serves embeddings by itself):
OpenAI's /v1/embeddings (the openai client), Ollama's /api/embed and its
older /api/embeddings (the ollama client's embed and embeddings) equal
llama.cpp's cls-pooled embeddings of tests/fixtures/encoders/ (normalised,
euclidean, as llama-server does); generation routes answer a 400 that says
the model is an encoder."""

import math
import os
import subprocess
from pathlib import Path

import ollama
import pytest

from conftest import ROOT, SERVER_BIN, start_server, stop_server

SYNTH_BIN = os.environ.get("KINFER_SYNTH_BIN", str(SERVER_BIN.parent / "synth-model"))
FIXTURE = ROOT / "tests" / "fixtures" / "encoders" / "bert-tiny.F32.txt"
ALIAS = "bert-test"
REL_TOL = 2e-5  # test_encoders.c's F32 bound, after normalising


def load_fixture():
    texts, pools, cur = [], {}, None
    for line in FIXTURE.read_text().splitlines():
        kw, _, rest = line.partition(" ")
        if kw == "text":
            hexs = rest.split()[0]
            texts.append(bytes.fromhex(hexs if hexs != "-" else ""))
        elif kw == "pooling":
            cur = pools.setdefault(rest.split()[0], [])
        elif kw == "embd":
            cur.append([float(x) for x in rest.split()])
    return texts, pools


def unit(v):
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v]


def rel_err(got, want):
    return max(abs(a - b) for a, b in zip(got, want)) / max(abs(b) for b in want)


@pytest.fixture(scope="module")
def bert_server(tmp_path_factory):
    if not os.path.isfile(SYNTH_BIN):
        pytest.skip(f"no synth-model at {SYNTH_BIN}")
    model = tmp_path_factory.mktemp("bert") / "bert-tiny.F32.gguf"
    subprocess.run([SYNTH_BIN, "-s", "bert-tiny", "-f", "F32", "--layers", "2", "--seed", "42", "-t", "2",
                    "-o", str(model)], check=True, capture_output=True)
    srv = start_server("-np", 2, "-c", 512, "-a", ALIAS, name="bert_server", models=["-m", model])
    try:
        yield srv
    finally:
        stop_server(srv)


@pytest.fixture(scope="module")
def want():
    texts, pools = load_fixture()
    return [t.decode() for t in texts[:3]], [unit(v) for v in pools["cls"][:3]]


def test_openai_embeddings(bert_server, want):
    texts, vecs = want
    res = bert_server.openai().embeddings.create(model=ALIAS, input=texts)
    assert [d.index for d in res.data] == [0, 1, 2]
    for d, w in zip(res.data, vecs):
        assert rel_err(d.embedding, w) <= REL_TOL
    n_tokens = sum(len(bert_server.tokenize(t, add_special=True)) for t in texts)
    assert res.usage.prompt_tokens == n_tokens


def test_ollama_embed_and_embeddings(bert_server, want):
    texts, vecs = want
    client = ollama.Client(host=bert_server.url)
    res = client.embed(model=ALIAS, input=texts[:2])
    assert len(res.embeddings) == 2
    for got, w in zip(res.embeddings, vecs):
        assert rel_err(got, w) <= REL_TOL
    # the older API: one prompt, one "embedding"
    old = client.embeddings(model=ALIAS, prompt=texts[1])
    assert rel_err(old.embedding, vecs[1]) <= REL_TOL
    r = bert_server.post("/api/embeddings", {"model": ALIAS, "prompt": texts[0]})
    assert r.status_code == 200 and list(r.json()) == ["embedding"]
    assert rel_err(r.json()["embedding"], vecs[0]) <= REL_TOL


def test_legacy_embeddings_edges(bert_server):
    # an empty prompt loads the model and answers an empty embedding, as Ollama's
    r = bert_server.post("/api/embeddings", {"model": ALIAS, "prompt": ""})
    assert r.status_code == 200 and r.json() == {"embedding": []}
    r = bert_server.post("/api/embeddings", {"model": ALIAS})
    assert r.status_code == 400 and "'prompt'" in r.text
    r = bert_server.post("/api/embeddings", {"model": ALIAS, "prompt": ["a", "b"]})
    assert r.status_code == 400 and "'prompt'" in r.text
    # longer than the context: cut to it, as Ollama's does
    r = bert_server.post("/api/embeddings", {"model": ALIAS, "prompt": "the " * 2000})
    assert r.status_code == 200 and len(r.json()["embedding"]) == 128


@pytest.mark.parametrize("path,body", [
    ("/v1/chat/completions", {"model": ALIAS, "messages": [{"role": "user", "content": "hi"}]}),
    ("/v1/completions", {"model": ALIAS, "prompt": "hi"}),
    ("/api/generate", {"model": ALIAS, "prompt": "hi", "stream": False}),
    ("/api/chat", {"model": ALIAS, "messages": [{"role": "user", "content": "hi"}], "stream": False}),
])
def test_generation_is_a_400(bert_server, path, body):
    r = bert_server.post(path, body)
    assert r.status_code == 400, r.text
    assert "encoder" in r.text and "no generation" in r.text
