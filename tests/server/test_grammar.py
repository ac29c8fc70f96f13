"""Constrained output through the server: OpenAI's response_format (json_object, json_schema) with the
real `openai` client, Ollama's format with the real `ollama` client, and llama-server's grammar and
json_schema fields, on both test models (a --models-dir server).  Every answer sampled at temperature 1
over several seeds must parse and validate against its schema (the `jsonschema` package); a bad grammar
or schema is a 400 naming the problem.  The schemas bound every length, so each answer ends within
max_tokens."""

import json
import threading

import httpx
import jsonschema
import ollama
import pytest

from conftest import timeout

MODELS = ["smollm2", "gemma3"]
MAX_TOKENS = 160

SCHEMAS = {
    "nested": {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 12},
            "address": {
                "type": "object",
                "properties": {"city": {"type": "string", "maxLength": 10},
                               "zip": {"type": "string", "pattern": "^[0-9]{5}$"}},
                "required": ["city", "zip"], "additionalProperties": False,
            },
        },
        "required": ["name", "address"], "additionalProperties": False,
    },
    "array_bounds": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 99},
                     "minItems": 2, "maxItems": 4},
    "enum": {"type": "object", "properties": {"color": {"enum": ["red", "green", "blue"]}, "ok": {"type": "boolean"}},
             "required": ["color", "ok"], "additionalProperties": False},
    "any_of": {"anyOf": [{"type": "integer", "minimum": -50, "maximum": 50},
                         {"type": "string", "minLength": 1, "maxLength": 6}, {"type": "null"}]},
    "ref": {"$defs": {"pt": {"type": "object",
                             "properties": {"x": {"type": "integer", "minimum": -9, "maximum": 9},
                                            "y": {"type": "integer", "minimum": -9, "maximum": 9}},
                             "required": ["x", "y"], "additionalProperties": False}},
            "type": "array", "items": {"$ref": "#/$defs/pt"}, "minItems": 1, "maxItems": 2},
    "integer_bounds": {"type": "integer", "minimum": 100, "maximum": 4321},
    "string_length": {"type": "string", "minLength": 3, "maxLength": 8},
}

SEEDS = [1, 2, 3]
MESSAGES = [{"role": "user", "content": "Answer in JSON: describe something."}]


def check(text, schema):
    value = json.loads(text)
    jsonschema.validate(value, schema)
    return value


@pytest.fixture(scope="module")
def oc(router_server):
    return ollama.Client(host=router_server.url, timeout=timeout(120))


@pytest.mark.parametrize("name", sorted(SCHEMAS))
@pytest.mark.parametrize("model", MODELS)
def test_openai_response_format_json_schema(router_server, model, name):
    schema = SCHEMAS[name]
    with router_server.openai() as c:
        for seed in SEEDS:
            r = c.chat.completions.create(
                model=model, messages=MESSAGES, max_tokens=MAX_TOKENS, temperature=1, seed=seed,
                response_format={"type": "json_schema",
                                 "json_schema": {"name": name, "schema": schema, "strict": True}})
            choice = r.choices[0]
            assert choice.finish_reason == "stop", (seed, choice.message.content)
            check(choice.message.content, schema)


@pytest.mark.parametrize("name", ["nested", "enum", "ref"])
@pytest.mark.parametrize("model", MODELS)
def test_ollama_format_schema(oc, model, name):
    schema = SCHEMAS[name]
    for seed in SEEDS[:2]:
        r = oc.chat(model=model, messages=MESSAGES, format=schema,
                    options={"temperature": 1, "seed": seed, "num_predict": MAX_TOKENS})
        assert r.done_reason == "stop", r.message.content
        check(r.message.content, schema)
        g = oc.generate(model=model, prompt="Some JSON:", format=schema,
                        options={"temperature": 1, "seed": seed, "num_predict": MAX_TOKENS})
        assert g.done_reason == "stop", g.response
        check(g.response, schema)


@pytest.mark.parametrize("model", MODELS)
def test_json_mode_is_an_object(router_server, oc, model):
    """OpenAI's json_object and Ollama's "json": any JSON object (the grammar may stop it at any length,
    so only answers that ended are parsed)."""
    ended = 0
    with router_server.openai() as c:
        for seed in SEEDS:
            r = c.chat.completions.create(model=model, messages=MESSAGES, max_tokens=48, temperature=1,
                                          seed=seed, response_format={"type": "json_object"})
            text = r.choices[0].message.content
            assert text.lstrip().startswith("{"), text
            if r.choices[0].finish_reason == "stop":
                assert isinstance(json.loads(text), dict)
                ended += 1
    g = oc.generate(model=model, prompt="JSON:", format="json", options={"temperature": 0, "num_predict": 48})
    assert g.response.lstrip().startswith("{"), g.response
    if g.done_reason == "stop":
        assert isinstance(json.loads(g.response), dict)


def test_stream_with_schema(router_server):
    schema = SCHEMAS["nested"]
    with router_server.openai() as c:
        parts = list(c.chat.completions.create(
            model="smollm2", messages=MESSAGES, max_tokens=MAX_TOKENS, temperature=1, seed=7, stream=True,
            response_format={"type": "json_schema", "json_schema": {"name": "n", "schema": schema}}))
    text = "".join(p.choices[0].delta.content or "" for p in parts if p.choices)
    assert parts[-1].choices[0].finish_reason == "stop"
    check(text, schema)


def test_native_grammar_and_json_schema(router_server):
    """llama-server's /completion fields: a GBNF grammar, and a json_schema."""
    r = router_server.post("/completion", {"model": "smollm2", "prompt": "Pick:", "n_predict": 16, "temperature": 1,
                                           "seed": 5, "grammar": 'root ::= ("yes" | "no") "!"'})
    assert r.status_code == 200, r.text
    assert r.json()["content"] in ("yes!", "no!")
    schema = SCHEMAS["integer_bounds"]
    r = router_server.post("/completion", {"model": "gemma3", "prompt": "A number:", "n_predict": 16,
                                           "temperature": 1, "seed": 5, "json_schema": schema})
    assert r.status_code == 200, r.text
    check(r.json()["content"], schema)


def test_grammar_per_slot_under_batching(router_server):
    """Two requests with different schemas at once on one model (both slots busy): each follows its own."""
    results = {}

    def run(name, seed):
        with router_server.openai() as c:
            r = c.chat.completions.create(
                model="smollm2", messages=MESSAGES, max_tokens=MAX_TOKENS, temperature=1, seed=seed,
                response_format={"type": "json_schema", "json_schema": {"name": name, "schema": SCHEMAS[name]}})
            results[(name, seed)] = r.choices[0].message.content

    jobs = [("enum", 11), ("array_bounds", 12), ("ref", 13), ("string_length", 14)]
    threads = [threading.Thread(target=run, args=j) for j in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == len(jobs)
    for (name, _), text in results.items():
        check(text, SCHEMAS[name])


@pytest.mark.parametrize("body,words", [
    ({"grammar": 'root ::= "a" [b'}, "grammar: line 1, column"),
    ({"grammar": "root ::= nothing"}, "undefined rule 'nothing'"),
    ({"json_schema": {"type": "array", "uniqueItems": True}}, 'unsupported keyword \\"uniqueItems\\"'),
    ({"response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "widget"}}}},
     'unrecognized type \\"widget\\"'),
    ({"response_format": {"type": "xml"}}, "response_format type must be one of"),
    ({"response_format": {"type": "json_object"}, "grammar": 'root ::= "x"'}, "Cannot use both"),
])
def test_bad_grammar_or_schema_is_400(router_server, body, words):
    r = router_server.post("/v1/chat/completions", dict({"model": "smollm2", "messages": MESSAGES}, **body))
    assert r.status_code == 400, r.text
    assert words in r.text, r.text


def test_ollama_bad_format_is_400(router_server, oc):
    with pytest.raises(ollama.ResponseError) as e:
        oc.generate(model="smollm2", prompt="x", format={"type": "object", "properties": {"a": {"not": {}}}})
    assert e.value.status_code == 400 and "unsupported keyword" in e.value.error
    # (the client itself refuses a format other than "json" or a schema: post it raw)
    r = router_server.post("/api/chat", {"model": "smollm2", "messages": MESSAGES, "format": "yaml", "stream": False})
    assert r.status_code == 400 and "'format' must be" in r.text, r.text
