"""The router: --models-dir, loads on demand, --mem-budget (sized from the kinfer_model_estimate
numbers the server reports in /api/ps), LRU eviction, --max-loaded-models, models.json, concurrent
models, a model file deleted while loaded. Texts are checked against router_server, a server
that holds both models."""

import re
import shutil
import threading
import time

import httpx
import openai
import pytest

from conftest import MODEL, Server, start_server, stop_server, timeout

PROMPT = "The capital of France is"
MODELS = ("smollm2", "gemma3")
FLAGS = ("-np", 2, "-c", 1024, "--metrics")   # as router_server's: the same estimates


def complete(srv, model, n=6, prompt=PROMPT, **kw):
    with srv.openai() as c:
        r = c.completions.create(model=model, prompt=prompt, max_tokens=n, temperature=0, **kw)
        assert r.model == model or model == "smol"
        return r.choices[0].text


def metrics(srv):
    out = {}
    for line in srv.get("/metrics").text.splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


def per_model(srv, family):
    m = metrics(srv)
    return {name: m.get(f'{family}{{model="{name}"}}', 0) for name in MODELS}


@pytest.fixture(scope="module")
def reference(router_server):
    return {m: complete(router_server, m) for m in MODELS}


@pytest.fixture(scope="module")
def sizes(router_server, reference):
    """What each model needs with FLAGS, as the server reports it (both are loaded by `reference`)."""
    with router_server.http() as c:
        ps = {m["name"].split(":")[0]: m["size"] for m in c.get("/api/ps").json()["models"]}
    assert all(ps[m] > 0 for m in MODELS), ps
    return ps


def dir_server(models_dir, *args, name):
    return start_server(*FLAGS, *map(str, args), name=name, models=["--models-dir", models_dir])


def alternate(srv, reference, rounds=2):
    for _ in range(rounds):
        for m in MODELS:
            assert complete(srv, m) == reference[m], m


def test_budget_holds_one(models_dir, reference, sizes):
    budget = max(sizes.values()) + min(sizes.values()) // 2
    srv = dir_server(models_dir, "--mem-budget", budget, name="budget_one")
    try:
        alternate(srv, reference)
        loads, evictions = per_model(srv, "kinfer_model_loads_total"), per_model(srv, "kinfer_model_evictions_total")
        assert loads == {"smollm2": 2, "gemma3": 2}
        assert sum(evictions.values()) == 3
        assert metrics(srv)["kinfer_memory_budget_bytes"] == budget
    finally:
        stop_server(srv)


def test_budget_holds_both(models_dir, reference, sizes):
    srv = dir_server(models_dir, "--mem-budget", sum(sizes.values()) + (1 << 20), name="budget_both")
    try:
        alternate(srv, reference, rounds=3)
        assert per_model(srv, "kinfer_model_loads_total") == {"smollm2": 1, "gemma3": 1}
        assert sum(per_model(srv, "kinfer_model_evictions_total").values()) == 0
        mem = per_model(srv, "kinfer_model_memory_bytes")
        assert mem == {m: sizes[m] for m in MODELS}
    finally:
        stop_server(srv)


def test_model_that_cannot_fit_alone(models_dir, sizes):
    budget = min(sizes.values()) // 2
    srv = dir_server(models_dir, "--mem-budget", budget, name="budget_tiny")
    try:
        with srv.openai() as c, pytest.raises(openai.InternalServerError) as e:
            c.completions.create(model="smollm2", prompt="x", max_tokens=1)
        msg = str(e.value)
        need, have = f"{sizes['smollm2'] / 2**20:.1f} MiB", f"{budget / 2**20:.1f} MiB"
        assert need in msg and have in msg and "--mem-budget" in msg, msg
    finally:
        stop_server(srv)


def test_max_loaded_models(models_dir, reference):
    srv = dir_server(models_dir, "--max-loaded-models", 1, name="max_one")
    try:
        alternate(srv, reference, rounds=1)
        assert sum(per_model(srv, "kinfer_model_evictions_total").values()) == 1
        assert sum(per_model(srv, "kinfer_model_loaded").values()) == 1
    finally:
        stop_server(srv)


def stream_times(srv, model, n, out):
    times, text = [], []
    with srv.openai() as c:
        for ch in c.completions.create(model=model, prompt=PROMPT, max_tokens=n, temperature=0, stream=True,
                                       extra_body={"ignore_eos": True}):
            if ch.choices and ch.choices[0].text:
                times.append(time.monotonic())
                text.append(ch.choices[0].text)
    out[model] = (times, "".join(text))


def test_two_models_stream_at_once(router_server, reference):
    """Each model has its own engine: streams to both run at the same time."""
    n = 40
    out = {}
    threads = [threading.Thread(target=stream_times, args=(router_server, m, n, out)) for m in MODELS]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout(120))
    (a_times, a_text), (b_times, b_text) = out["smollm2"], out["gemma3"]
    assert a_times and b_times
    assert a_times[0] < b_times[-1] and b_times[0] < a_times[-1], "one stream ran only after the other"
    assert a_text.startswith(reference["smollm2"]) and b_text.startswith(reference["gemma3"])


def test_busy_model_is_not_evicted(models_dir, reference, sizes):
    """A budget for one: a request for the other waits for the running stream, which finishes whole."""
    srv = dir_server(models_dir, "--mem-budget", max(sizes.values()) + min(sizes.values()) // 2, name="busy")
    try:
        complete(srv, "smollm2", 1)
        out, other = {}, {}
        t = threading.Thread(target=stream_times, args=(srv, "smollm2", 48, out))
        t.start()
        deadline = time.monotonic() + timeout(30)
        while not any(s["is_processing"] for s in srv.slots()) and time.monotonic() < deadline:
            time.sleep(0.01)
        g = threading.Thread(target=lambda: other.update(text=complete(srv, "gemma3")))
        g.start()
        t.join(timeout(120))
        g.join(timeout(120))
        times, text = out["smollm2"]
        assert len(times) >= 40 and text.startswith(reference["smollm2"])   # not cut off
        assert other["text"] == reference["gemma3"]
        assert per_model(srv, "kinfer_model_evictions_total")["smollm2"] == 1
    finally:
        stop_server(srv)


def test_one_load_for_waiting_requests(models_dir, reference):
    srv = dir_server(models_dir, name="shared_load")
    try:
        results = []
        threads = [threading.Thread(target=lambda: results.append(complete(srv, "gemma3"))) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout(120))
        assert results == [reference["gemma3"]] * 4
        assert per_model(srv, "kinfer_model_loads_total")["gemma3"] == 1
        assert any("gemma3: loading" in l for l in srv.stderr_lines)
        h = srv.get("/health").json()
        assert h["status"] == "ok" and h["loading"] == []
    finally:
        stop_server(srv)


def test_models_json_alias_and_settings(tmp_path, reference):
    (tmp_path / "a.gguf").symlink_to(MODEL)
    (tmp_path / "models.json").write_text('{"a": {"aliases": ["smol"], "ctx_size": 512, "parallel": 1}, '
                                          '"b": {"file": "a.gguf", "n_predict": 3}}')
    srv = start_server(name="models_json", models=["--models-dir", tmp_path])
    try:
        with srv.openai() as c:
            r = c.completions.create(model="smol", prompt=PROMPT, max_tokens=6, temperature=0)
            assert r.model == "a" and r.choices[0].text == reference["smollm2"]
            assert c.completions.create(model="b", prompt=PROMPT, temperature=0).usage.completion_tokens == 3
        ids = {m["id"]: m["meta"] for m in srv.get("/v1/models").json()["data"]}
        assert set(ids) == {"a", "b"}
        assert ids["a"]["n_ctx_slot"] == 512 and ids["a"]["n_slots"] == 1
    finally:
        stop_server(srv)


@pytest.mark.parametrize("text,needle", [('{"a": {"ctx": 5}}', "unknown setting 'ctx'"),
                                         ('{"zz": {}}', "no zz.gguf"), ("[1]", "not a JSON object")])
def test_models_json_errors(tmp_path, text, needle):
    (tmp_path / "a.gguf").symlink_to(MODEL)
    (tmp_path / "models.json").write_text(text)
    srv = Server(name="bad_json", models=["--models-dir", tmp_path])
    with pytest.raises(RuntimeError) as e:
        srv.start()
    assert needle in str(e.value)


def test_deleted_file_keeps_serving_until_unloaded(tmp_path, reference):
    victim = tmp_path / "victim.gguf"
    shutil.copyfile(MODEL, victim)
    srv = start_server(name="deleted", models=["--models-dir", tmp_path])
    try:
        assert complete(srv, "victim") == reference["smollm2"]
        victim.unlink()
        assert complete(srv, "victim") == reference["smollm2"]   # its pages are mapped
        assert "victim" in [m["id"] for m in srv.get("/v1/models").json()["data"]]
        with srv.http() as c:   # unload it
            assert c.post("/api/generate", json={"model": "victim", "keep_alive": 0}).status_code == 200
        deadline = time.monotonic() + timeout(10)
        while srv.get("/api/ps").json()["models"] and time.monotonic() < deadline:
            time.sleep(0.05)
        with srv.openai() as c, pytest.raises(openai.NotFoundError) as e:
            c.completions.create(model="victim", prompt="x", max_tokens=1)
        assert "victim" in str(e.value)
        assert "victim" not in [m["id"] for m in srv.get("/v1/models").json()["data"]]
    finally:
        stop_server(srv)


def test_model_needed_with_a_dir(router_server):
    r = router_server.post("/v1/completions", {"prompt": "x", "max_tokens": 1})
    assert r.status_code == 400 and "'model' is required" in r.json()["error"]["message"]
