"""The OpenAI API through the official openai client: /v1/completions and /v1/chat/completions."""

import openai
import pytest

from conftest import ALIAS

PROMPT = "The capital of France is"
CHAT = [{"role": "user", "content": "What is the capital of France?"}]


def test_models_lists_alias(client):
    models = client.models.list()
    assert [m.id for m in models.data] == [ALIAS]
    assert models.data[0].object == "model"


def test_completion_greedy_matches_cli(client, cli_greedy):
    r = client.completions.create(model=ALIAS, prompt=PROMPT, max_tokens=24, temperature=0)
    assert r.object == "text_completion"
    assert r.choices[0].finish_reason == "length"
    assert r.choices[0].text == cli_greedy(PROMPT, 24)
    assert r.usage.completion_tokens == 24
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_completion_stream_matches_cli(client, cli_greedy):
    chunks = list(client.completions.create(model=ALIAS, prompt=PROMPT, max_tokens=24, temperature=0,
                                            stream=True))
    assert chunks
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == cli_greedy(PROMPT, 24)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["length"]
    assert chunks[-1].choices[0].finish_reason == "length"


def test_completion_with_timings(server):
    r = server.post("/v1/completions", {"prompt": PROMPT, "max_tokens": 4, "temperature": 0})
    assert r.status_code == 200
    body = r.json()
    t = body["timings"]
    assert t["predicted_n"] == 4 and t["prompt_n"] + t["cache_n"] == body["usage"]["prompt_tokens"]
    for k in ("prompt_ms", "predicted_ms", "predicted_per_second"):
        assert t[k] >= 0


def test_chat(client):
    r = client.chat.completions.create(model=ALIAS, messages=CHAT, max_tokens=16, temperature=0)
    assert r.object == "chat.completion"
    msg = r.choices[0].message
    assert msg.role == "assistant" and msg.content
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage.prompt_tokens > len(CHAT[0]["content"].split())  # the template's tokens too
    assert r.usage.completion_tokens <= 16
    if r.choices[0].finish_reason == "length":
        assert r.usage.completion_tokens == 16


def test_chat_stream_equals_non_stream(client):
    ref = client.chat.completions.create(model=ALIAS, messages=CHAT, max_tokens=16, temperature=0)
    chunks = list(client.chat.completions.create(model=ALIAS, messages=CHAT, max_tokens=16, temperature=0,
                                                 stream=True, stream_options={"include_usage": True}))
    assert chunks[0].object == "chat.completion.chunk"
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == ref.choices[0].message.content
    final = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(final) == 1 and final[0].choices[0].finish_reason == ref.choices[0].finish_reason
    usage = chunks[-1]
    assert usage.choices == [] and usage.usage is not None
    assert usage.usage.completion_tokens == ref.usage.completion_tokens
    assert usage.usage.prompt_tokens == ref.usage.prompt_tokens
    assert len({c.id for c in chunks}) == 1


def test_stream_without_usage_has_none(client):
    chunks = list(client.chat.completions.create(model=ALIAS, messages=CHAT, max_tokens=4, temperature=0,
                                                 stream=True))
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)


def test_chat_system_message_changes_prompt(client):
    a = client.chat.completions.create(model=ALIAS, messages=CHAT, max_tokens=1, temperature=0)
    b = client.chat.completions.create(
        model=ALIAS, max_tokens=1, temperature=0,
        messages=[{"role": "system", "content": "You are a pirate."}] + CHAT)
    assert b.usage.prompt_tokens > a.usage.prompt_tokens


def _greedy_text(client, prompt, n=32):
    return client.completions.create(model=ALIAS, prompt=prompt, max_tokens=n, temperature=0).choices[0].text


def _a_stop_word(text):
    """A word of text after its first few characters (so that the cut text is not empty)."""
    words = [w for w in text[8:].split() if w.isalpha() and len(w) >= 3]
    assert words, f"no usable stop word in {text!r}"
    return words[0]


@pytest.mark.parametrize("as_list", [False, True])
def test_stop_string(client, as_list):
    full = _greedy_text(client, PROMPT)
    word = _a_stop_word(full)
    stop = ["<never-in-text>", word] if as_list else word
    r = client.completions.create(model=ALIAS, prompt=PROMPT, max_tokens=32, temperature=0, stop=stop)
    c = r.choices[0]
    assert c.finish_reason == "stop"
    assert word not in c.text
    assert c.text == full[:full.index(word)]


def test_stop_string_stream(client):
    full = _greedy_text(client, PROMPT)
    word = _a_stop_word(full)
    chunks = list(client.completions.create(model=ALIAS, prompt=PROMPT, max_tokens=32, temperature=0,
                                            stop=[word], stream=True))
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == full[:full.index(word)]
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_chat_stop_string(client):
    full = client.chat.completions.create(model=ALIAS, messages=CHAT, max_tokens=24,
                                          temperature=0).choices[0].message.content
    word = _a_stop_word(full)
    r = client.chat.completions.create(model=ALIAS, messages=CHAT, max_tokens=24, temperature=0, stop=word)
    assert r.choices[0].finish_reason == "stop"
    assert r.choices[0].message.content == full[:full.index(word)]


def test_seed_reproducible(client):
    def run(seed):
        return client.completions.create(model=ALIAS, prompt="Once upon a time", max_tokens=16,
                                         temperature=0.8, seed=seed).choices[0].text

    a, b = run(1234), run(1234)
    assert a == b
    others = {run(s) for s in (1, 2, 3)}
    assert len(others | {a}) >= 2, "different seeds gave the same text every time"


def test_prompt_tokens_equal_tokenize(client, server):
    for prompt in (PROMPT, "Hello, world! Ünïcödé and   spaces\n\ttabs", "x"):
        r = client.completions.create(model=ALIAS, prompt=prompt, max_tokens=1, temperature=0)
        assert r.usage.prompt_tokens == len(server.tokenize(prompt, add_special=True)), prompt


def test_completion_tokens_equal_logprob_tokens(client):
    r = client.completions.create(model=ALIAS, prompt="List three colors:", max_tokens=20, temperature=0,
                                  logprobs=1)
    c = r.choices[0]
    assert len(c.logprobs.tokens) == r.usage.completion_tokens
    assert "".join(c.logprobs.tokens) == c.text
    assert len(c.logprobs.token_logprobs) == r.usage.completion_tokens
    assert all(lp <= 0 for lp in c.logprobs.token_logprobs)


def test_chat_logprobs(client):
    r = client.chat.completions.create(model=ALIAS, messages=CHAT, max_tokens=6, temperature=0, logprobs=True,
                                       top_logprobs=2)
    content = r.choices[0].logprobs.content
    assert len(content) == r.usage.completion_tokens
    assert "".join(t.token for t in content) == r.choices[0].message.content
    for t in content:
        assert t.logprob <= 0 and len(t.top_logprobs) == 2


def test_completion_tokens_match_retokenized_text(client, server):
    r = client.completions.create(model=ALIAS, prompt=PROMPT, max_tokens=12, temperature=0)
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 12
    # the greedy text of this prompt tokenizes back to as many tokens as were generated
    assert len(server.tokenize(r.choices[0].text)) == r.usage.completion_tokens


def test_prompt_as_token_ids(client, server):
    ids = server.tokenize(PROMPT, add_special=True)
    by_ids = client.completions.create(model=ALIAS, prompt=ids, max_tokens=12, temperature=0)
    by_text = client.completions.create(model=ALIAS, prompt=PROMPT, max_tokens=12, temperature=0)
    assert by_ids.choices[0].text == by_text.choices[0].text
    assert by_ids.usage.prompt_tokens == len(ids)


def test_second_chat_turn_is_cached(client):
    first = [{"role": "user", "content": "Name a fruit that is yellow."}]
    r1 = client.chat.completions.create(model=ALIAS, messages=first, max_tokens=8, temperature=0)
    second = first + [{"role": "assistant", "content": r1.choices[0].message.content},
                      {"role": "user", "content": "And one that is red?"}]
    r2 = client.chat.completions.create(model=ALIAS, messages=second, max_tokens=8, temperature=0)
    cached = r2.usage.prompt_tokens_details.cached_tokens
    assert cached > 0
    assert cached >= r1.usage.prompt_tokens - 1
    assert cached < r2.usage.prompt_tokens


def test_same_prompt_twice_same_text(client):
    # the second run reuses the cached prompt: the text must not change
    a = client.completions.create(model=ALIAS, prompt="The tallest mountain", max_tokens=12, temperature=0)
    b = client.completions.create(model=ALIAS, prompt="The tallest mountain", max_tokens=12, temperature=0)
    assert a.choices[0].text == b.choices[0].text
    assert b.usage.prompt_tokens_details.cached_tokens > 0


def test_unknown_fields_ignored(client):
    r = client.completions.create(model=ALIAS, prompt=PROMPT, max_tokens=2, temperature=0,
                                  extra_body={"frobnicate": {"a": [1, 2]}, "xyz": None})
    assert r.usage.completion_tokens == 2
    r = client.chat.completions.create(model=ALIAS, messages=CHAT, max_tokens=2, temperature=0,
                                       extra_body={"frobnicate": True})
    assert r.choices[0].message.content


def test_n_greater_than_one_rejected(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=ALIAS, prompt=PROMPT, max_tokens=2, n=2)
    assert "'n'" in e.value.message


def test_max_tokens_zero_or_one(client):
    r = client.completions.create(model=ALIAS, prompt=PROMPT, max_tokens=1, temperature=0)
    assert r.usage.completion_tokens == 1 and r.choices[0].finish_reason == "length"
