"""Many clients at once, and clients that go away."""

import asyncio
import openai
import pytest

from conftest import ALIAS, timeout

N_CLIENTS = 16
N_TOKENS = 16
SUBJECTS = ["the sea", "a red fox", "winter", "the moon", "bread", "a small robot", "rivers", "chess",
            "a lighthouse", "volcanoes", "the violin", "honey bees", "a train", "deserts", "paper", "owls"]
PROMPTS = [f"Write one sentence about {s}:" for s in SUBJECTS]


def test_disconnect_mid_stream_frees_slot(server):
    body = {"prompt": "Count: 1, 2, 3,", "max_tokens": 900, "stream": True, "temperature": 0,
            "ignore_eos": True}
    with server.http() as c:
        with c.stream("POST", "/v1/completions", json=body) as r:
            assert r.status_code == 200
            lines = r.iter_lines()
            assert next(lines).startswith("data: ")
            assert any(s["is_processing"] for s in server.slots())
        # the response is closed here, long before 900 tokens
    assert server.wait_idle(5), f"a slot still busy after the client left: {server.slots()}"
    r = server.post("/v1/completions", {"prompt": "Still there?", "max_tokens": 2, "temperature": 0,
                                        "ignore_eos": True})
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 2, r.text


def test_disconnect_many_then_serve(server):
    """Several streams dropped at once, on every slot and in the queue."""
    body = {"prompt": "Once upon a time", "max_tokens": 900, "stream": True, "ignore_eos": True}
    clients = [server.http() for _ in range(6)]
    streams = []
    try:
        for c in clients:
            streams.append(c.stream("POST", "/v1/chat/completions",
                                    json=dict(body, messages=[{"role": "user", "content": "Tell a story"}])))
        for s in streams[:4]:
            r = s.__enter__()
            assert r.status_code == 200
            next(r.iter_lines())
    finally:
        for s in streams[:4]:
            s.__exit__(None, None, None)
        for c in clients:
            c.close()
    assert server.wait_idle(5)
    assert server.post("/v1/completions", {"prompt": "ok", "max_tokens": 1}).status_code == 200


async def _stream_one(client, prompt):
    text, finish, n_chunks, usage = "", None, 0, None
    stream = await client.completions.create(model=ALIAS, prompt=prompt, max_tokens=N_TOKENS, temperature=0,
                                             stream=True, stream_options={"include_usage": True},
                                             extra_body={"ignore_eos": True})
    async for chunk in stream:
        if chunk.choices:
            n_chunks += 1
            text += chunk.choices[0].text
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage:
            usage = chunk.usage
    return text, finish, usage


@pytest.fixture(scope="module")
def concurrent_run(server):
    """The PROMPTS' greedy texts one at a time, then 16 streams at once against 4 slots."""
    with server.openai() as c:
        alone = [c.completions.create(model=ALIAS, prompt=p, max_tokens=N_TOKENS, temperature=0,
                                      extra_body={"ignore_eos": True}).choices[0].text for p in PROMPTS]

    async def main():
        async with server.openai(cls=openai.AsyncOpenAI) as ac:
            return await asyncio.wait_for(asyncio.gather(*(_stream_one(ac, p) for p in PROMPTS)),
                                          timeout(90))

    return alone, asyncio.run(main())


def test_concurrent_streams(server, concurrent_run):
    """16 streaming clients against 4 slots: all finish, each with N_TOKENS tokens and finish_reason length."""
    alone, results = concurrent_run
    assert len(results) == N_CLIENTS
    for prompt, (text, finish, usage) in zip(PROMPTS, results):
        assert finish == "length", prompt
        assert usage is not None and usage.completion_tokens == N_TOKENS, prompt
        assert usage.prompt_tokens == len(server.tokenize(prompt, add_special=True)), prompt
        assert text, prompt
    assert server.wait_idle(5)


def test_concurrent_texts_equal_alone(concurrent_run):
    alone, results = concurrent_run
    assert len(set(alone)) == len(alone), "the prompts must give distinct texts"
    differ = [p for p, ref, (text, _, _) in zip(PROMPTS, alone, results) if text != ref]
    assert not differ, f"{len(differ)} of {N_CLIENTS} concurrent texts differ from the text alone: {differ}"
