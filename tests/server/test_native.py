"""llama-server's native routes: /completion, /infill, /tokenize, /detokenize, /health, /slots, /metrics."""

import json

import pytest

PROMPT = "The capital of France is"


def _sse_events(lines):
    """The JSON payloads of an SSE body's data: lines ([DONE] as the string)."""
    out = []
    for line in lines:
        if line.startswith("data: "):
            payload = line[len("data: "):]
            out.append(payload if payload == "[DONE]" else json.loads(payload))
        else:
            assert line == "" or line.startswith(":"), f"not SSE: {line!r}"
    return out


def test_health(server):
    r = server.get("/health")
    assert r.status_code == 200 and r.json()["status"] == "ok"


def test_completion_native(server, cli_greedy):
    n_prompt = len(server.tokenize(PROMPT, add_special=True))
    r = server.post("/completion", {"prompt": PROMPT, "n_predict": 10, "temperature": 0})
    assert r.status_code == 200, r.text
    b = r.json()
    assert b["content"] == cli_greedy(PROMPT, 10)
    assert b["tokens_predicted"] == 10
    assert b["tokens_evaluated"] == n_prompt
    assert b["stop_type"] == "limit" and b["stopped_limit"] is True
    assert b["stopped_eos"] is False and b["stopped_word"] is False
    assert b["truncated"] is False and b["stop"] is True
    t = b["timings"]
    assert t["predicted_n"] == 10 and t["prompt_n"] + t["cache_n"] == n_prompt


def test_completion_native_stop_word(server):
    full = server.post("/completion", {"prompt": PROMPT, "n_predict": 24, "temperature": 0}).json()["content"]
    word = [w for w in full[8:].split() if w.isalpha() and len(w) >= 3][0]
    b = server.post("/completion", {"prompt": PROMPT, "n_predict": 24, "temperature": 0, "stop": [word]}).json()
    assert b["stop_type"] == "word" and b["stopped_word"] is True
    assert b["content"] == full[:full.index(word)]


def test_completion_native_cache_prompt(server):
    body = {"prompt": "A long time ago in a galaxy far, far away", "n_predict": 4, "temperature": 0,
            "cache_prompt": True}
    a = server.post("/completion", body).json()
    b = server.post("/completion", body).json()
    assert a["content"] == b["content"]
    assert b["timings"]["cache_n"] > 0 and b["tokens_cached"] > 0


def test_completion_native_stream(server):
    with server.http() as c, c.stream("POST", "/completion",
                                      json={"prompt": PROMPT, "n_predict": 6, "temperature": 0,
                                            "stream": True}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = _sse_events(list(r.iter_lines()))
    events = [e for e in events if e != "[DONE]"]
    assert events[-1]["stop"] is True and events[-1]["tokens_predicted"] == 6
    assert all(e["stop"] is False for e in events[:-1])
    text = "".join(e["content"] for e in events)
    ref = server.post("/completion", {"prompt": PROMPT, "n_predict": 6, "temperature": 0}).json()["content"]
    assert text == ref


def test_completion_native_token_prompt(server):
    ids = server.tokenize(PROMPT, add_special=True)
    a = server.post("/completion", {"prompt": ids, "n_predict": 6, "temperature": 0}).json()
    b = server.post("/completion", {"prompt": PROMPT, "n_predict": 6, "temperature": 0}).json()
    assert a["content"] == b["content"]


def test_openai_sse_shape(server):
    """The raw SSE of a chat stream: role first, one finish_reason, a usage chunk, then [DONE]."""
    body = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 5, "temperature": 0,
            "stream": True, "stream_options": {"include_usage": True}}
    with server.http() as c, c.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200
        events = _sse_events(list(r.iter_lines()))
    assert events[-1] == "[DONE]" and events.count("[DONE]") == 1
    chunks = events[:-1]
    assert chunks[0]["choices"][0]["delta"].get("role") == "assistant"
    assert all("role" not in ch["choices"][0]["delta"] for ch in chunks[1:] if ch["choices"])
    finishes = [ch for ch in chunks if ch["choices"] and ch["choices"][0]["finish_reason"]]
    assert len(finishes) == 1 and finishes[0]["choices"][0]["finish_reason"] in ("stop", "length")
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] <= 5
    assert "timings" in finishes[0] or "timings" in chunks[-1]


def test_infill_rejected_without_fim_tokens(server):
    r = server.post("/infill", {"input_prefix": "def add(a, b):\n    return ", "input_suffix": "\n",
                                "input_extra": [], "prompt": ""})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and "fill-in-the-middle" in err["message"]


@pytest.mark.parametrize("text", ["Hello world", "  leading spaces, émojis 🦙 and\nnewlines\t!", "", "<|im_start|>"])
def test_tokenize_detokenize_round_trip(server, text):
    toks = server.tokenize(text)
    assert all(isinstance(t, int) for t in toks)
    r = server.post("/detokenize", {"tokens": toks})
    assert r.status_code == 200 and r.json()["content"] == text


def test_tokenize_add_special(server):
    plain = server.tokenize("Hello")
    special = server.tokenize("Hello", add_special=True)
    # SmolLM2 adds no BOS: the same tokens; a model that adds one puts it first
    assert special[-len(plain):] == plain and len(special) - len(plain) in (0, 1)


def test_tokenize_with_pieces(server):
    r = server.post("/tokenize", {"content": "Hello world", "with_pieces": True})
    assert r.status_code == 200
    toks = r.json()["tokens"]
    assert [t["id"] for t in toks] == server.tokenize("Hello world")
    assert "".join(t["piece"] for t in toks) == "Hello world"


def test_tokenize_wrong_types(server):
    r = server.post("/tokenize", {"content": 5})
    assert r.status_code == 400 and "'content'" in r.json()["error"]["message"]
    r = server.post("/detokenize", {"tokens": "abc"})
    assert r.status_code == 400 and "tokens" in r.json()["error"]["message"]


def test_slots(server):
    slots = server.slots()
    assert [s["id"] for s in slots] == [0, 1, 2, 3]
    for s in slots:
        assert s["n_ctx"] == 1024
        for k in ("is_processing", "state", "n_cached_tokens", "n_prompt_tokens", "n_prompt_processed",
                  "n_decoded"):
            assert k in s
    assert server.wait_idle()
    assert all(s["state"] == "idle" for s in server.slots())


def test_metrics(server):
    server.post("/v1/completions", {"prompt": PROMPT, "max_tokens": 2})
    r = server.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    values = {}
    for line in r.text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    for name in ("kinfer_prompt_tokens_total", "kinfer_tokens_predicted_total", "kinfer_requests_processing",
                 "kinfer_requests_deferred", "kinfer_kv_cache_cells", "kinfer_decode_steps_total"):
        assert name in values, name
    ok = [v for k, v in values.items() if k.startswith("kinfer_requests_total{") and 'status="200"' in k
          and "/v1/completions" in k]
    assert ok and ok[0] >= 1
    assert values["kinfer_tokens_predicted_total"] >= 2
    assert "# TYPE kinfer_requests_total counter" in r.text


def test_metrics_off_is_501(auth_server):
    r = auth_server.get("/metrics", headers={"Authorization": "Bearer sekrit"})
    assert r.status_code == 501
