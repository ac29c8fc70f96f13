"""Errors: OpenAI-style {"error": {"message", "type", "code"}} with the right status."""

import threading
import time

import httpx
import openai
import pytest

from conftest import ALIAS, timeout

CHAT = [{"role": "user", "content": "Hi"}]


def _error(r, status, type_):
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    err = r.json()["error"]
    assert err["type"] == type_ and err["code"] == status and err["message"]
    return err


@pytest.mark.parametrize("path", ["/v1/completions", "/v1/chat/completions", "/completion", "/completions",
                                  "/chat/completions", "/tokenize", "/detokenize", "/infill"])
def test_malformed_json(server, path):
    with server.http() as c:
        r = c.post(path, content=b'{"prompt": "x",', headers={"Content-Type": "application/json"})
    _error(r, 400, "invalid_request_error")


def test_body_not_an_object(server):
    with server.http() as c:
        r = c.post("/v1/completions", content=b'[1, 2]')
    _error(r, 400, "invalid_request_error")


@pytest.mark.parametrize("path,body,field", [
    ("/v1/completions", {"prompt": 5}, "prompt"),
    ("/v1/completions", {"prompt": "x", "max_tokens": "many"}, "max_tokens"),
    ("/v1/completions", {"prompt": "x", "temperature": "hot"}, "temperature"),
    ("/v1/completions", {"prompt": "x", "top_p": [1]}, "top_p"),
    ("/v1/completions", {"prompt": "x", "seed": "s"}, "seed"),
    ("/v1/completions", {"prompt": "x", "stop": 5}, "stop"),
    ("/v1/completions", {"prompt": "x", "stream": "yes"}, "stream"),
    ("/v1/chat/completions", {"messages": "hi"}, "messages"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": 5}]}, "content"),
    ("/v1/chat/completions", {"messages": CHAT, "max_tokens": {}}, "max_tokens"),
    ("/v1/chat/completions", {"messages": CHAT, "stop": [1, 2]}, "stop"),
    ("/completion", {"prompt": "x", "n_predict": "ten"}, "n_predict"),
    ("/completion", {"prompt": {}}, "prompt"),
])
def test_wrong_field_type_names_the_field(server, path, body, field):
    err = _error(server.post(path, body), 400, "invalid_request_error")
    assert field in err["message"], err["message"]


def test_missing_prompt_and_messages(server):
    _error(server.post("/v1/completions", {"max_tokens": 2}), 400, "invalid_request_error")
    _error(server.post("/v1/chat/completions", {"max_tokens": 2}), 400, "invalid_request_error")


def test_n_greater_than_one(server):
    err = _error(server.post("/v1/chat/completions", {"messages": CHAT, "n": 3}), 400, "invalid_request_error")
    assert "'n'" in err["message"]


def test_prompt_exceeds_context(server, client):
    prompt = "hello " * 1100  # > 1024 tokens, a slot's context
    n = len(server.tokenize(prompt, add_special=True))
    err = _error(server.post("/v1/completions", {"prompt": prompt, "max_tokens": 1}), 400,
                 "exceed_context_size_error")
    assert err["n_prompt_tokens"] == n and err["n_ctx"] == 1024
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model=ALIAS, prompt=prompt, max_tokens=1)
    # the server is fine afterwards
    assert client.completions.create(model=ALIAS, prompt="ok", max_tokens=1).usage.completion_tokens == 1


def test_prompt_exactly_slot_size_rejected(server):
    # prompt >= slot context: no room for one token
    base = server.tokenize("hello " * 1030, add_special=True)[:1024]
    err = _error(server.post("/v1/completions", {"prompt": base, "max_tokens": 1}), 400,
                 "exceed_context_size_error")
    assert err["n_prompt_tokens"] == 1024


def test_not_found(server):
    _error(server.get("/v2/nothing"), 404, "not_found_error")
    _error(server.post("/v1/nothing", {}), 404, "not_found_error")


@pytest.mark.parametrize("method,path", [("GET", "/v1/completions"), ("GET", "/v1/chat/completions"),
                                         ("GET", "/completion"), ("POST", "/health"), ("DELETE", "/v1/models"),
                                         ("PUT", "/tokenize")])
def test_wrong_method(server, method, path):
    with server.http() as c:
        r = c.request(method, path)
    assert r.status_code == 405
    assert r.json()["error"]["code"] == 405


# ------------------------------------------------------------------- --api-key
AUTH = {"Authorization": "Bearer sekrit"}


def test_api_key_required(auth_server):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "sekrit"},
                    {"Authorization": "Bearer sekrit2"}, {"Authorization": "Bearer sekri"}):
        r = auth_server.post("/v1/completions", {"prompt": "x", "max_tokens": 1}, headers=headers)
        _error(r, 401, "authentication_error")
    _error(auth_server.get("/v1/models"), 401, "authentication_error")
    _error(auth_server.get("/slots"), 401, "authentication_error")


def test_api_key_health_open(auth_server):
    assert auth_server.get("/health").status_code == 200


def test_api_key_accepted(auth_server):
    r = auth_server.post("/v1/completions", {"prompt": "x", "max_tokens": 1}, headers=AUTH)
    assert r.status_code == 200
    assert auth_server.tokenize("hi", headers=AUTH)


def test_api_key_openai_client(auth_server):
    with auth_server.openai(api_key="wrong") as c:
        with pytest.raises(openai.AuthenticationError):
            c.models.list()
    with auth_server.openai(api_key="sekrit") as c:
        assert c.models.list().data
        r = c.chat.completions.create(model="x", messages=CHAT, max_tokens=2, temperature=0)
        assert r.usage.completion_tokens <= 2


# --------------------------------------------------------------- limits: 413, 503
def test_body_too_large(tight_server):
    r = tight_server.post("/v1/completions", {"prompt": "x" * 4096, "max_tokens": 1})
    _error(r, 413, "invalid_request_error")
    # under the limit: fine, and the server still answers
    assert tight_server.post("/v1/completions", {"prompt": "x" * 100, "max_tokens": 1}).status_code == 200


def test_body_too_large_chunked(tight_server):
    def chunks():
        for _ in range(8):
            yield b"x" * 1024

    with tight_server.http() as c:
        r = c.post("/v1/completions", content=chunks())
    assert r.status_code == 413


def _metric(srv, name):
    for line in srv.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no {name}")


def test_queue_full_503(tight_server):
    """-np 1 --max-queue 1: one request decoding, one waiting, the third gets 503 + Retry-After."""
    long_body = {"prompt": "Count: 1, 2, 3,", "max_tokens": 400, "stream": True, "temperature": 0,
                 "ignore_eos": True}
    queued = {}

    def second():
        queued["r"] = tight_server.post("/v1/completions", {"prompt": "Hi", "max_tokens": 2})

    with tight_server.http() as c, c.stream("POST", "/v1/completions", json=long_body) as first:
        assert first.status_code == 200
        lines = first.iter_lines()
        next(lines)  # the first chunk: it is decoding
        t = threading.Thread(target=second)
        t.start()
        deadline = time.monotonic() + timeout(5)
        while _metric(tight_server, "kinfer_requests_deferred") < 1:
            assert time.monotonic() < deadline, "the second request never queued"
            time.sleep(0.02)
        r = tight_server.post("/v1/completions", {"prompt": "Hi", "max_tokens": 2})
        err = _error(r, 503, "unavailable_error")
        assert int(r.headers["Retry-After"]) >= 1, err
        with tight_server.openai() as oc:
            with pytest.raises(openai.APIStatusError) as e:
                oc.completions.create(model="x", prompt="Hi", max_tokens=2)
            assert e.value.status_code == 503
    # the first stream closed: the queued one runs to completion
    t.join(timeout(30))
    assert not t.is_alive()
    assert queued["r"].status_code == 200, queued["r"].text
    assert tight_server.wait_idle()
