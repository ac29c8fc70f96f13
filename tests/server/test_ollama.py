"""Ollama's API (/api/generate, /api/chat, /api/tags, /api/ps, /api/show, /api/version) with the
real `ollama` Python client, against a --models-dir server (SmolLM2 and Gemma 3). The reference
for every generated text is the same server's OpenAI route on the same prompt (whose own text
test_openai.py checks against kinfer-cli)."""

import time

import ollama
import openai
import pytest

from conftest import timeout

PROMPT = "The capital of France is"
GREEDY = {"temperature": 0, "num_predict": 8}
CHAT = [{"role": "user", "content": "Name a fruit."}]


@pytest.fixture(scope="module")
def oc(router_server):
    return ollama.Client(host=router_server.url, timeout=timeout(60))


def completion(srv, model, prompt, n, **kw):
    with srv.openai() as c:
        return c.completions.create(model=model, prompt=prompt, max_tokens=n, temperature=0, **kw).choices[0].text


def chat_text(srv, model, messages, n):
    with srv.openai() as c:
        r = c.chat.completions.create(model=model, messages=messages, max_tokens=n, temperature=0)
        return r.choices[0].message.content


@pytest.mark.parametrize("model", ["smollm2", "gemma3"])
def test_generate_raw_equals_completions(router_server, oc, model):
    r = oc.generate(model=model, prompt=PROMPT, raw=True, options=GREEDY)
    assert r.done and r.done_reason == "length"
    assert r.response == completion(router_server, model, PROMPT, 8)
    assert r.model == f"{model}:latest"
    assert r.eval_count == 8
    for f in ("total_duration", "prompt_eval_duration", "eval_duration"):
        assert isinstance(r[f], int) and r[f] > 0, f
    assert r.total_duration >= r.eval_duration
    assert r.created_at.endswith("Z")


def test_generate_stream(oc):
    ref = oc.generate(model="smollm2", prompt=PROMPT, raw=True, options=GREEDY)
    parts = list(oc.generate(model="smollm2", prompt=PROMPT, raw=True, options=GREEDY, stream=True))
    assert all(not p.done for p in parts[:-1]) and parts[-1].done
    assert "".join(p.response for p in parts) == ref.response
    last = parts[-1]
    assert last.done_reason == "length" and last.eval_count == 8 and last.context == ref.context
    assert last.response == ""


def test_generate_templated_equals_chat(router_server, oc):
    """Without raw the model's chat template wraps system + prompt: OpenAI's chat on the same messages."""
    r = oc.generate(model="smollm2", prompt="Name a fruit.", system="Answer in one word.", options=GREEDY)
    ref = chat_text(router_server, "smollm2",
                    [{"role": "system", "content": "Answer in one word."}, {"role": "user", "content": "Name a fruit."}], 8)
    assert r.response == ref


def test_generate_template(router_server, oc):
    """template (Ollama's Go template subset): the rendered text is the prompt."""
    tmpl = "{{ if .System }}{{ .System }}\n{{ end }}Q: {{ .Prompt }}\nA:"
    r = oc.generate(model="smollm2", prompt="What is 2+2?", system="Be brief.", template=tmpl, options=GREEDY)
    assert r.response == completion(router_server, "smollm2", "Be brief.\nQ: What is 2+2?\nA:", 8)
    r = oc.generate(model="smollm2", prompt="What is 2+2?", template=tmpl, options=GREEDY)
    assert r.response == completion(router_server, "smollm2", "Q: What is 2+2?\nA:", 8)
    with pytest.raises(ollama.ResponseError) as e:
        oc.generate(model="smollm2", prompt="x", template="{{ range .Messages }}{{ end }}")
    assert e.value.status_code == 400 and "range .Messages" in e.value.error


def test_generate_context(router_server, oc):
    """context: the conversation's tokens (prompt + answer); sent back, they come before the new prompt."""
    first = oc.generate(model="smollm2", prompt=PROMPT, raw=True, options=GREEDY)
    prompt_ids = router_server.tokenize(PROMPT, add_special=True, model="smollm2")
    assert first.context[:len(prompt_ids)] == prompt_ids
    assert len(first.context) == len(prompt_ids) + first.eval_count
    second = oc.generate(model="smollm2", prompt=" And Germany's is", raw=True, context=first.context, options=GREEDY)
    ids = first.context + router_server.tokenize(" And Germany's is", model="smollm2")
    assert second.response == completion(router_server, "smollm2", ids, 8)
    assert second.context[:len(ids)] == ids


def test_options(router_server, oc):
    r = oc.generate(model="smollm2", prompt=PROMPT, raw=True, options={"temperature": 0, "num_predict": 3})
    assert r.eval_count == 3
    full = oc.generate(model="smollm2", prompt=PROMPT, raw=True, options={"temperature": 0, "num_predict": 16}).response
    stop = full.strip().split()[1]
    r = oc.generate(model="smollm2", prompt=PROMPT, raw=True, options={"temperature": 0, "num_predict": 16, "stop": [stop]})
    assert r.done_reason == "stop" and stop not in r.response and full.startswith(r.response)
    hot = {"temperature": 1.5, "top_k": 100, "top_p": 1.0, "min_p": 0.0, "seed": 7, "num_predict": 12,
           "repeat_penalty": 1.1, "repeat_last_n": 16}
    a = oc.generate(model="smollm2", prompt=PROMPT, raw=True, options=hot).response
    b = oc.generate(model="smollm2", prompt=PROMPT, raw=True, options=hot).response
    assert a == b
    # num_ctx below a slot's context bounds the request
    r = oc.generate(model="smollm2", prompt=PROMPT, raw=True, options={"temperature": 0, "num_ctx": 8})
    assert r.done_reason == "length" and r.eval_count == 8 - len(router_server.tokenize(PROMPT, add_special=True, model="smollm2"))
    with pytest.raises(ollama.ResponseError) as e:
        oc.generate(model="smollm2", prompt=PROMPT, options={"temperature": "hot"})
    assert e.value.status_code == 400 and "temperature" in e.value.error


@pytest.mark.parametrize("model", ["smollm2", "gemma3"])
def test_chat(router_server, oc, model):
    r = oc.chat(model=model, messages=CHAT, options=GREEDY)
    assert r.message.role == "assistant" and r.done
    assert r.message.content == chat_text(router_server, model, CHAT, 8)
    parts = list(oc.chat(model=model, messages=CHAT, options=GREEDY, stream=True))
    assert "".join(p.message.content for p in parts) == r.message.content
    assert parts[-1].done and parts[-1].eval_count == r.eval_count and parts[-1].prompt_eval_count > 0


def test_suffix_needs_fim_tokens(oc):
    with pytest.raises(ollama.ResponseError) as e:
        oc.generate(model="smollm2", prompt="def f(", suffix="    return x\n")
    assert e.value.status_code == 400 and "does not support insert" in e.value.error


def test_list_show_version(router_server, oc):
    names = {m.model for m in oc.list().models}
    assert {"smollm2:latest", "gemma3:latest", "broken:latest"} <= names
    by = {m.model: m for m in oc.list().models}
    assert by["gemma3:latest"].details.family == "gemma3"
    assert by["smollm2:latest"].details.quantization_level == "Q4_1"
    assert by["smollm2:latest"].size > 10_000_000 and len(by["smollm2:latest"].digest) == 64
    s = oc.show("smollm2")
    assert s.modelinfo["general.architecture"] == "llama"
    assert "completion" in s.capabilities and "insert" not in s.capabilities
    assert "im_start" in s.template
    assert oc.show("smol").modelinfo["general.architecture"] == "llama"   # models.json's alias
    v = router_server.get("/api/version")
    assert v.status_code == 200 and v.json()["version"]
    with pytest.raises(ollama.ResponseError) as e:
        oc.show("nope")
    assert e.value.status_code == 404


def test_ps(router_server, oc):
    oc.generate(model="gemma3", prompt="Hi", raw=True, options={"temperature": 0, "num_predict": 1})
    ps = {m.model: m for m in oc.ps().models}
    g = ps["gemma3:latest"]
    assert g.size > 0 and g.context_length == 512 and g.details.family == "gemma3"
    assert g.expires_at.timestamp() > time.time() + 60   # the default keep_alive: 5 minutes
    metrics = router_server.get("/metrics").text
    assert f'kinfer_model_memory_bytes{{model="gemma3"}} {g.size}' in metrics


def test_management_verbs_are_501(router_server, oc):
    for call in (lambda: oc.pull("smollm2"), lambda: oc.push("smollm2"), lambda: oc.create("x", from_="smollm2"),
                 lambda: oc.copy("smollm2", "y"), lambda: oc.delete("smollm2")):
        with pytest.raises(ollama.ResponseError) as e:
            call()
        assert e.value.status_code == 501 and "not supported" in e.value.error


def test_unknown_model_is_404(router_server, oc):
    with pytest.raises(ollama.ResponseError) as e:
        oc.generate(model="no-such-model", prompt="x")
    assert e.value.status_code == 404 and "no-such-model" in e.value.error
    with router_server.openai() as c, pytest.raises(openai.NotFoundError) as e2:
        c.completions.create(model="no-such-model", prompt="x", max_tokens=1)
    assert "no-such-model" in str(e2.value)


def test_broken_model_fails_alone(router_server, oc):
    """A truncated .gguf: its requests fail with the reason, the others go on."""
    for _ in range(2):
        with pytest.raises(ollama.ResponseError) as e:
            oc.generate(model="broken", prompt="x")
        assert e.value.status_code == 500 and "broken.gguf" in e.value.error and "does not fit in the file" in e.value.error
    with router_server.openai() as c, pytest.raises(openai.InternalServerError) as e2:
        c.completions.create(model="broken", prompt="x", max_tokens=1)
    assert "broken.gguf" in str(e2.value)
    assert oc.generate(model="smollm2", prompt=PROMPT, raw=True, options=GREEDY).eval_count == 8


def _loaded(oc):
    return {m.model for m in oc.ps().models}


def test_load_and_keep_alive_0(router_server, oc):
    r = oc.generate(model="gemma3", keep_alive="10m")
    assert r.done and r.done_reason == "load"
    assert "gemma3:latest" in _loaded(oc)
    r = oc.generate(model="gemma3", prompt="Hi", raw=True, options={"temperature": 0, "num_predict": 2}, keep_alive=0)
    assert r.eval_count == 2
    deadline = time.monotonic() + timeout(10)
    while "gemma3:latest" in _loaded(oc) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "gemma3:latest" not in _loaded(oc)
    # loaded again on demand
    assert oc.chat(model="gemma3", messages=CHAT, options={"temperature": 0, "num_predict": 2}).done
    r = oc.chat(model="gemma3", messages=[], keep_alive=0)
    assert r.done_reason == "unload"
