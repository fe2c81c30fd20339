"""ollama-python 0.6.x, the official Python client, unchanged against `locallama serve`
(clients.md §4; issue 9): generate and chat (one-shot and streamed), list, show, ps, embed,
the legacy embeddings call, create (from an uploaded blob and derived from a model with
template/system/parameters, as 0.6 sends them), copy, delete, the ResponseError of each
not-found case, and the host forms the client accepts (Client(host=...), OLLAMA_HOST read by
Client() and by the module-level functions). The client validates every answer with pydantic,
so a missing or mistyped field fails here. One server per module (test_api_native.Server) with
the tiny Llama 3.2 GGUF of ../shared created as `tiny`; SmolLM2 where an answer must make
sense."""
import json
import math
import os
import subprocess
import sys
from datetime import datetime

import pytest

from test_api_native import TINY, Server, free_port

ollama = pytest.importorskip("ollama")

GREEDY = {"temperature": 0, "num_predict": 12, "seed": 1}


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("ollama_py"))
    try:
        st, body = s.json("POST", "/api/create", {"model": "tiny", "from": TINY, "stream": False})
        assert st == 200 and body == {"status": "success"}, body
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def client(srv):
    return ollama.Client(host=f"http://127.0.0.1:{srv.port}")


@pytest.fixture(scope="module")
def smol(srv, smollm2_path):
    st, body = srv.json("POST", "/api/create", {"model": "smollm2:135m", "from": smollm2_path, "stream": False})
    assert st == 200, body
    return "smollm2:135m"


def check_metrics(r):
    """The final object's counters and durations: integers (pydantic would take floats, but the
    spec says int, and a float here means the server formats them wrongly)."""
    for k in ("total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration",
              "eval_count", "eval_duration"):
        v = getattr(r, k)
        assert isinstance(v, int) and v >= 0, (k, v)
    assert r.prompt_eval_count > 0


# ---- generate and chat ---------------------------------------------------------------------

def test_generate(client):
    r = client.generate(model="tiny", prompt="Why is the sky blue?", options=GREEDY)
    assert isinstance(r, ollama.GenerateResponse)
    assert r.model == "tiny" and r.done is True and r.done_reason == "length"
    assert isinstance(r.response, str) and r.response
    assert isinstance(datetime.fromisoformat(r.created_at.replace("Z", "+00:00")), datetime)
    check_metrics(r)
    assert r.eval_count == 12
    assert r.context and all(isinstance(t, int) for t in r.context)
    # attribute and [] access both work on 0.4+ response objects
    assert r["response"] == r.response


def test_generate_stream_joins_to_one_shot(client):
    one = client.generate(model="tiny", prompt="Tell me a joke", options=GREEDY)
    parts = list(client.generate(model="tiny", prompt="Tell me a joke", options=GREEDY, stream=True))
    assert len(parts) >= 2
    assert all(p.done is False for p in parts[:-1]) and parts[-1].done is True
    assert parts[-1].done_reason == "length"
    check_metrics(parts[-1])
    assert "".join(p.response for p in parts) == one.response


def test_generate_system_and_raw(client):
    r = client.generate(model="tiny", prompt="Hi", system="Be brief.", options=GREEDY)
    assert r.done and r.response
    raw = client.generate(model="tiny", prompt="<|begin_of_text|>Hi", raw=True, options=GREEDY)
    assert raw.done and raw.response and raw.eval_count == 12
    assert raw.context is None                                  # none in raw mode (§1.1.2)


def test_chat(client):
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}]
    r = client.chat(model="tiny", messages=msgs, options=GREEDY)
    assert isinstance(r, ollama.ChatResponse)
    assert r.model == "tiny" and r.done and r.done_reason == "length"
    assert r.message.role == "assistant" and r.message.content
    assert r.message.tool_calls is None
    check_metrics(r)
    assert r.eval_count == 12


def test_chat_stream_joins_to_one_shot(client):
    msgs = [{"role": "user", "content": "Count to three"}]
    one = client.chat(model="tiny", messages=msgs, options=GREEDY)
    parts = list(client.chat(model="tiny", messages=msgs, options=GREEDY, stream=True))
    assert len(parts) >= 2
    assert all(p.message.role == "assistant" for p in parts)
    assert all(not p.done for p in parts[:-1]) and parts[-1].done
    check_metrics(parts[-1])
    assert "".join(p.message.content for p in parts) == one.message.content


def test_chat_message_objects_and_history(client):
    """Messages as the client's own Message objects, with an assistant turn and a tool result
    (ollama-python drops empty fields: the assistant's tool-call turn carries no content)."""
    msgs = [ollama.Message(role="user", content="What is 3 + 4?"),
            ollama.Message(role="assistant", tool_calls=[ollama.Message.ToolCall(
                function=ollama.Message.ToolCall.Function(name="add", arguments={"a": 3, "b": 4}))]),
            ollama.Message(role="tool", content="7", tool_name="add"),
            ollama.Message(role="user", content="Thanks")]
    r = client.chat(model="tiny", messages=msgs, options=GREEDY)
    assert r.done and r.message.role == "assistant"


def test_chat_with_python_function_tool(client):
    """A Python function as a tool: the client derives the JSON schema from the signature and
    docstring; the request must be accepted and the answer must validate, whether or not the
    tiny model calls the tool."""
    def add_two(a: int, b: int) -> int:
        """Add two numbers

        Args:
          a: The first number
          b: The second number

        Returns:
          int: The sum
        """
        return a + b

    r = client.chat(model="tiny", messages=[{"role": "user", "content": "What is 3 + 4?"}],
                    tools=[add_two], options=GREEDY)
    assert r.done and r.message.role == "assistant"
    for call in r.message.tool_calls or []:
        assert isinstance(call.function.name, str) and isinstance(call.function.arguments, dict)


def test_async_client_concurrent_streams(srv):
    """AsyncClient: two greedy streams at once give the same text as one alone."""
    import asyncio

    async def run():
        c = ollama.AsyncClient(host=f"http://127.0.0.1:{srv.port}")
        alone = (await c.generate(model="tiny", prompt="Tell me a joke", options=GREEDY)).response

        async def streamed(prompt):
            text = []
            async for p in await c.chat(model="tiny", messages=[{"role": "user", "content": prompt}],
                                        options=GREEDY, stream=True):
                text.append(p.message.content)
            return "".join(text)
        a, b = await asyncio.gather(streamed("Count to three"), streamed("Count to three"))
        again = (await c.generate(model="tiny", prompt="Tell me a joke", options=GREEDY)).response
        return alone, a, b, again

    alone, a, b, again = asyncio.run(run())
    assert a == b and a
    assert again == alone


def test_smollm2_makes_sense(client, smol):
    r = client.chat(model=smol, messages=[{"role": "user", "content": "What is the capital of France?"}],
                    options={"temperature": 0, "num_predict": 40, "repeat_penalty": 1.1})
    assert "Paris" in r.message.content, r.message.content


# ---- structured output ---------------------------------------------------------------------

FORMAT_DEFECT = ("server defect: `format` (ollama-api.md §1.0.6, clients.md §10 item 4) must constrain "
                 "the output to JSON / the schema; serve answers 400 'format is not supported yet: "
                 "constrained (JSON) output is not implemented'")


def xfail_if_format_unimplemented(call):
    """Run `call`; while serve still refuses `format` outright, the test is an expected failure
    (with the defect named); any other outcome is checked by the caller."""
    try:
        return call()
    except ollama.ResponseError as e:
        if e.status_code == 400 and "format is not supported yet" in e.error:
            pytest.xfail(FORMAT_DEFECT)
        raise


def test_format_json(client, smol):
    r = xfail_if_format_unimplemented(lambda: client.generate(
        model=smol, prompt="Describe a cat as a JSON object with keys name and age.", format="json",
        options={"temperature": 0, "num_predict": 200}))
    assert isinstance(json.loads(r.response), dict), r.response      # complete, not cut off


def test_format_schema(client, smol):
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
              "required": ["name", "age"]}
    r = xfail_if_format_unimplemented(lambda: client.chat(
        model=smol, messages=[{"role": "user", "content": "Describe a cat: its name and its age."}],
        format=schema, options={"temperature": 0, "num_predict": 200}))
    obj = json.loads(r.message.content)
    assert set(obj) == {"name", "age"} and isinstance(obj["name"], str) and isinstance(obj["age"], int), obj


def test_format_empty_string_means_none(client):
    """`format: ""` (what langchain-ollama's OllamaLLM always sends) is no constraint."""
    r = client.generate(model="tiny", prompt="Hi", format="", options=GREEDY)
    assert r.done and r.eval_count == 12


# ---- models: list, show, ps ----------------------------------------------------------------

def test_list(client):
    r = client.list()
    assert isinstance(r, ollama.ListResponse)
    m = [x for x in r.models if x.model == "tiny:latest"]
    assert len(m) == 1, [x.model for x in r.models]
    m = m[0]
    assert isinstance(m.modified_at, datetime) and m.modified_at.tzinfo is not None
    assert m.size > 0 and len(m.digest) == 64
    assert m.details.format == "gguf" and m.details.family == "llama"
    assert m.details.quantization_level == "Q8_0" and m.details.parameter_size


def test_show(client):
    r = client.show("tiny")
    assert isinstance(r, ollama.ShowResponse)
    assert r.modelinfo["general.architecture"] == "llama"
    assert isinstance(r.modelinfo["llama.context_length"], int)
    assert "completion" in r.capabilities and "tools" in r.capabilities
    assert r.template.startswith("<|start_header_id|>system")
    assert '"<|eot_id|>"' in r.parameters
    assert r.modelfile.startswith('# Modelfile generated by "ollama show"')
    assert r.details.family == "llama" and isinstance(r.modified_at, datetime)


def test_ps_after_load(client):
    r = client.generate(model="tiny", keep_alive=-1)            # load only
    assert r.done and r.done_reason == "load" and r.response == ""
    ps = client.ps()
    assert isinstance(ps, ollama.ProcessResponse)
    m = [x for x in ps.models if x.model == "tiny:latest"]
    assert len(m) == 1, ps
    m = m[0]
    assert m.name == "tiny:latest" and m.size > 0 and m.size_vram == 0 and len(m.digest) == 64
    assert m.context_length > 0 and isinstance(m.expires_at, datetime)
    assert m.expires_at.year > 2100                             # keep_alive -1: forever
    assert m.details.family == "llama"


def test_empty_store_lists_validate(tmp_path):
    """An empty store answers `models: []`, never null: ollama-python's pydantic models reject
    null (clients.md §1.3)."""
    empty = Server(tmp_path)
    try:
        c = ollama.Client(host=f"http://127.0.0.1:{empty.port}")
        assert list(c.list().models) == []
        assert list(c.ps().models) == []
    finally:
        empty.stop()


# ---- embeddings ----------------------------------------------------------------------------

def test_embed(client):
    r = client.embed(model="tiny", input=["hello", "a longer sentence here"])
    assert isinstance(r, ollama.EmbedResponse) and r.model == "tiny"
    assert len(r.embeddings) == 2 and len(r.embeddings[0]) == len(r.embeddings[1]) > 0
    for v in r.embeddings:
        assert abs(math.fsum(x * x for x in v) - 1) < 1e-3      # L2-normalised
    assert r.embeddings[0] != r.embeddings[1]
    one = client.embed(model="tiny", input="hello")
    assert len(one.embeddings) == 1
    assert max(abs(a - b) for a, b in zip(one.embeddings[0], r.embeddings[0])) < 1e-5
    short = client.embed(model="tiny", input="hello", dimensions=8)
    assert len(short.embeddings[0]) == 8


def test_embed_truncate_false_overflow_is_an_error(client):
    long = "word " * 200
    cut = client.embed(model="tiny", input=long, options={"num_ctx": 16})      # truncate defaults to true
    assert len(cut.embeddings) == 1 and cut.prompt_eval_count <= 16
    with pytest.raises(ollama.ResponseError) as e:
        client.embed(model="tiny", input=long, truncate=False, options={"num_ctx": 16})
    assert (e.value.status_code, e.value.error) == (400, "the input length exceeds the context length")


def test_embeddings_legacy(client):
    r = client.embeddings(model="tiny", prompt="hello")
    assert isinstance(r, ollama.EmbeddingsResponse)
    v = list(r.embedding)
    n = math.sqrt(math.fsum(x * x for x in v))
    assert n > 0
    # the legacy endpoint is not normalised; its direction is /api/embed's
    e = client.embed(model="tiny", input="hello").embeddings[0]
    assert len(v) == len(e)
    assert max(abs(a / n - b) for a, b in zip(v, e)) < 1e-4


# ---- create, copy, delete ------------------------------------------------------------------

def test_create_from_blob(client):
    path = TINY.replace("Q8_0", "Q4_0")
    digest = client.create_blob(path)
    assert digest.startswith("sha256:") and len(digest) == 7 + 64
    r = client.create(model="fromblob", files={"tiny-q4.gguf": digest})
    assert r.status == "success"
    m = [x for x in client.list().models if x.model == "fromblob:latest"]
    assert len(m) == 1 and m[0].details.quantization_level == "Q4_0"
    g = client.generate(model="fromblob", prompt="Hi", options=GREEDY)
    assert g.done and g.eval_count == 12


def test_create_derived_streamed(srv, client):
    """Modelfile-ish create as 0.6 sends it: from (as `from`), template, system, parameters;
    streamed progress ending in success."""
    tmpl = "{{ if .System }}[{{ .System }}] {{ end }}{{ .Prompt }}"
    parts = list(client.create(model="mario", from_="tiny", template=tmpl, system="You are Mario.",
                               parameters={"temperature": 0.6, "stop": ["<|eot_id|>", "###"], "num_ctx": 256},
                               stream=True))
    assert parts and all(isinstance(p, ollama.ProgressResponse) for p in parts)
    assert parts[-1].status == "success"
    show = client.show("mario")
    assert show.template == tmpl
    # ShowResponse keeps no `system` attribute (pydantic drops unknown fields): read the Modelfile
    assert "temperature" in show.parameters and "0.6" in show.parameters
    assert '"###"' in show.parameters and "num_ctx" in show.parameters
    assert "SYSTEM" in show.modelfile and "You are Mario." in show.modelfile
    # the derived template and system are what generation uses (checked on the wire: the
    # client has no _debug_render_only)
    st, dbg = srv.json("POST", "/api/generate", {"model": "mario", "prompt": "Hi", "_debug_render_only": True})
    assert st == 200 and dbg["_debug_info"]["rendered_template"] == "[You are Mario.] Hi"
    r = client.generate(model="mario", prompt="Hi", options={"num_predict": 1})
    assert r.done and r.prompt_eval_count > 0


def test_copy_and_delete(client):
    r = client.copy("tiny", "tiny-copy")
    assert r.status == "success"
    models = {m.model: m for m in client.list().models}
    assert "tiny-copy:latest" in models
    assert models["tiny-copy:latest"].digest == models["tiny:latest"].digest
    r = client.delete("tiny-copy")
    assert r.status == "success"
    assert "tiny-copy:latest" not in [m.model for m in client.list().models]
    with pytest.raises(ollama.ResponseError) as e:
        client.delete("tiny-copy")
    assert e.value.status_code == 404 and e.value.error == "model 'tiny-copy' not found"
    with pytest.raises(ollama.ResponseError) as e:
        client.copy("zz", "tiny3")
    assert e.value.status_code == 404 and e.value.error == 'model "zz" not found'


# ---- errors --------------------------------------------------------------------------------

def test_errors_not_found(client):
    cases = [
        (lambda: client.generate(model="nope", prompt="x"), "model 'nope' not found"),
        (lambda: client.chat(model="nope", messages=[{"role": "user", "content": "x"}]), "model 'nope' not found"),
        (lambda: client.show("nope"), "model 'nope:latest' not found"),
        (lambda: client.embed(model="nope", input="x"), 'model "nope" not found, try pulling it first'),
        (lambda: client.embeddings(model="nope", prompt="x"), 'model "nope" not found, try pulling it first'),
    ]
    for call, msg in cases:
        with pytest.raises(ollama.ResponseError) as e:
            call()
        assert (e.value.status_code, e.value.error) == (404, msg)
        assert str(e.value) == f"{msg} (status code: 404)"


def test_errors_streamed_requests(client):
    """A streamed request that fails before the first line gets its real status (§1.1 errors)."""
    with pytest.raises(ollama.ResponseError) as e:
        list(client.generate(model="nope", prompt="x", stream=True))
    assert (e.value.status_code, e.value.error) == (404, "model 'nope' not found")
    with pytest.raises(ollama.ResponseError) as e:
        list(client.chat(model="nope", messages=[{"role": "user", "content": "x"}], stream=True))
    assert (e.value.status_code, e.value.error) == (404, "model 'nope' not found")


def test_errors_bad_requests(client):
    with pytest.raises(ollama.ResponseError) as e:
        client.generate(model="tiny", prompt="x", think=True)
    assert (e.value.status_code, e.value.error) == (400, '"tiny" does not support thinking')
    with pytest.raises(ollama.ResponseError) as e:
        client.create(model="x")
    assert (e.value.status_code, e.value.error) == (400, "neither 'from' or 'files' was specified")


def test_connection_refused():
    c = ollama.Client(host=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ConnectionError) as e:
        c.list()
    assert "Failed to connect to Ollama" in str(e.value)


# ---- hosts ---------------------------------------------------------------------------------

def test_host_forms(srv):
    """Every spelling of §4's host parsing that names our server reaches it."""
    for host in (f"127.0.0.1:{srv.port}", f":{srv.port}", f"http://127.0.0.1:{srv.port}/",
                 f"http://localhost:{srv.port}"):
        models = [m.model for m in ollama.Client(host=host).list().models]
        assert "tiny:latest" in models, host


def test_ollama_host_env_and_api_key(srv, monkeypatch):
    """Client() reads OLLAMA_HOST; OLLAMA_API_KEY becomes a Bearer header the server ignores."""
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{srv.port}")
    monkeypatch.setenv("OLLAMA_API_KEY", "not-a-real-key")
    c = ollama.Client()
    assert "tiny:latest" in [m.model for m in c.list().models]
    r = c.generate(model="tiny", prompt="Hi", options=GREEDY)
    assert r.done and r.eval_count == 12


def test_module_functions_read_ollama_host_at_import(srv):
    """The module-level functions use a client built at import time from OLLAMA_HOST."""
    code = ("import ollama; print(ollama.generate(model='tiny', prompt='Hi', "
            "options={'num_predict': 3, 'temperature': 0}).eval_count); "
            "print(len(ollama.embed(model='tiny', input='x').embeddings))")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OLLAMA_")}
    env["OLLAMA_HOST"] = f":{srv.port}"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["3", "1"]
