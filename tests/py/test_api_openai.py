"""The OpenAI-compatible endpoints of `locallama serve` (ollama-api.md §2; issue 9), driven by
the real `openai` PyPI client: chat completions (plain and streamed with usage), text
completions, models list/retrieve, embeddings as floats and base64, the not-found error, plus
raw-HTTP checks of the SSE framing (§2.0.4) and of max_completion_tokens (§5 D2). One server per
module (test_api_native.Server) with the tiny Llama 3.2 model created through /api/create."""
import base64
import http.client
import os
import signal
import json
import threading
import struct
import time

import pytest

from test_api_native import TINY, Server

openai = pytest.importorskip("openai")


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("oai"))
    try:
        st, _ = s.request("GET", "/v1/models")
        assert st == 200, f"GET /v1/models answered {st}: the /v1 endpoints are not wired into serve"
        st, body = s.json("POST", "/api/create", {"model": "tiny", "from": TINY, "stream": False})
        assert st == 200 and body == {"status": "success"}, body
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def client(srv):
    return openai.OpenAI(base_url=f"http://127.0.0.1:{srv.port}/v1", api_key="unused", max_retries=0, timeout=120)


MSGS = [{"role": "user", "content": "Why is the sky blue?"}]


def test_chat_not_streamed(client):
    r = client.chat.completions.create(model="tiny", messages=MSGS, max_tokens=8, temperature=0, seed=1)
    assert r.id.startswith("chatcmpl-") and len(r.id) >= len("chatcmpl-") + 24
    assert r.object == "chat.completion" and r.model == "tiny" and r.system_fingerprint == "fp_ollama"
    assert isinstance(r.created, int) and r.created > 0
    c = r.choices[0]
    assert c.index == 0 and c.message.role == "assistant" and isinstance(c.message.content, str)
    assert c.finish_reason == "length"
    assert r.usage.completion_tokens == 8 and r.usage.prompt_tokens > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_chat_stream_with_usage_equals_plain(client):
    plain = client.chat.completions.create(model="tiny", messages=MSGS, max_tokens=10, temperature=0)
    chunks = list(client.chat.completions.create(model="tiny", messages=MSGS, max_tokens=10, temperature=0,
                                                 stream=True, stream_options={"include_usage": True}))
    assert len({c.id for c in chunks}) == 1 and len({c.created for c in chunks}) == 1
    assert all(c.object == "chat.completion.chunk" and c.model == "tiny" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    finish = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finish) == 1 and finish[0].choices[0].finish_reason == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 10
    assert chunks[-1].usage.total_tokens == chunks[-1].usage.prompt_tokens + 10


def test_chat_stop_finish_reason(client):
    r = client.chat.completions.create(model="tiny", messages=MSGS, max_completion_tokens=64, temperature=0,
                                       stop=["e", "a", "o", " "])
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.completion_tokens < 64


def test_max_completion_tokens_wins(srv):
    st, body = srv.json("POST", "/v1/chat/completions", {"model": "tiny", "messages": MSGS, "max_tokens": 9,
                                                        "max_completion_tokens": 3, "temperature": 0})
    assert st == 200, body
    assert body["usage"]["completion_tokens"] == 3 and body["choices"][0]["finish_reason"] == "length"
    assert list(body) == ["id", "object", "created", "model", "system_fingerprint", "choices", "usage"]


def test_empty_messages_is_400(srv):
    st, body = srv.json("POST", "/v1/chat/completions", {"model": "tiny", "messages": []})
    assert st == 400
    assert body == {"error": {"message": "[] is too short - 'messages'", "type": "invalid_request_error",
                              "param": None, "code": None}}


def test_unknown_model(client):
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="gpt-4o", messages=MSGS)
    assert "model 'gpt-4o' not found" in str(e.value)
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope:1b")


def test_models_list_and_retrieve(client):
    ids = [m.id for m in client.models.list()]
    assert "tiny:latest" in ids
    m = client.models.retrieve("tiny:latest")
    assert m.id == "tiny:latest" and m.object == "model" and m.owned_by == "library" and m.created > 0


def test_embeddings_float_and_base64(client, srv):
    f = client.embeddings.create(model="tiny", input=["hello world", "the sky"], encoding_format="float")
    assert [d.index for d in f.data] == [0, 1] and f.model == "tiny"
    assert f.usage.prompt_tokens > 0 and f.usage.total_tokens == f.usage.prompt_tokens
    vec = f.data[0].embedding
    assert isinstance(vec[0], float) and abs(sum(x * x for x in vec) - 1) < 1e-3
    st, raw = srv.json("POST", "/v1/embeddings", {"model": "tiny", "input": "hello world", "encoding_format": "BASE64"})
    assert st == 200, raw
    b = base64.b64decode(raw["data"][0]["embedding"], validate=True)
    dec = struct.unpack(f"<{len(b) // 4}f", b)
    assert len(dec) == len(vec) and max(abs(x - y) for x, y in zip(dec, vec)) < 1e-6
    # The SDK's default is base64, decoded for the caller.
    d = client.embeddings.create(model="tiny", input="hello world")
    assert max(abs(x - y) for x, y in zip(d.data[0].embedding, vec)) < 1e-6


def test_embeddings_errors(srv):
    st, body = srv.json("POST", "/v1/embeddings", {"model": "tiny", "input": []})
    assert st == 400 and body["error"]["message"] == "invalid input"
    st, body = srv.json("POST", "/v1/embeddings", {"model": "tiny", "input": "x", "encoding_format": "int8"})
    assert st == 400 and body["error"]["message"] == \
        "Invalid value for 'encoding_format' = int8. Supported values: ['float', 'base64']."


def test_completions(client):
    r = client.completions.create(model="tiny", prompt="Once upon a time", max_tokens=6, temperature=0)
    assert r.id.startswith("cmpl-") and r.object == "text_completion" and r.model == "tiny"
    assert r.choices[0].finish_reason == "length" and isinstance(r.choices[0].text, str)
    assert r.usage.completion_tokens == 6
    chunks = list(client.completions.create(model="tiny", prompt="Once upon a time", max_tokens=6, temperature=0,
                                            stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == r.choices[0].text
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 6


def test_sse_framing_raw(srv):
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=120)
    c.request("POST", "/v1/chat/completions",
              body=json.dumps({"model": "tiny", "messages": MSGS, "stream": True, "max_tokens": 4, "temperature": 0}),
              headers={"Content-Type": "application/json", "Authorization": "Bearer x", "x-stainless-lang": "python"})
    r = c.getresponse()
    raw = r.read().decode("utf-8")
    c.close()
    assert r.status == 200 and r.getheader("Content-Type").startswith("text/event-stream")
    assert raw.endswith("data: [DONE]\n\n")
    events = raw.split("\n\n")[:-1]
    assert all(e.startswith("data: ") and "\n" not in e for e in events)
    objs = [json.loads(e[6:]) for e in events[:-1]]
    assert list(objs[0]) == ["id", "object", "created", "model", "system_fingerprint", "choices"]
    assert objs[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all(o["choices"][0]["finish_reason"] is None for o in objs[:-1])
    assert objs[-1]["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "length"}
    assert "usage" not in objs[-1]


def test_model_sampling_defaults_kept(srv, client):
    """§5 D1: a Modelfile temperature 0 stays in force when the request omits temperature, so two
    different seeds give the same greedy answer, equal to /api/chat's."""
    st, body = srv.json("POST", "/api/create", {"model": "tiny-greedy", "from": "tiny", "stream": False,
                                                "parameters": {"temperature": 0}})
    assert st == 200, body
    a = client.chat.completions.create(model="tiny-greedy", messages=MSGS, max_tokens=12, seed=1)
    b = client.chat.completions.create(model="tiny-greedy", messages=MSGS, max_tokens=12, seed=2)
    st, native = srv.json("POST", "/api/chat", {"model": "tiny-greedy", "messages": MSGS, "stream": False,
                                                "options": {"num_predict": 12}})
    assert st == 200, native
    assert a.choices[0].message.content == b.choices[0].message.content == native["message"]["content"]


def test_native_options_via_extra_body(client):
    """§5 D2: an `options` object (the SDK's extra_body) is merged into the native options last."""
    r = client.chat.completions.create(model="tiny", messages=MSGS, max_tokens=9, temperature=0,
                                       extra_body={"options": {"num_predict": 2, "num_ctx": 256}})
    assert r.usage.completion_tokens == 2


def test_retrieve_namespaced_model(srv, client):
    """§5 D11: the whole rest of the path is the model name, '/' included."""
    st, _ = srv.request("POST", "/api/copy", {"source": "tiny", "destination": "me/tiny:v1"})
    assert st == 200
    m = client.models.retrieve("me/tiny:v1")
    assert m.id == "me/tiny:v1" and m.owned_by == "me"
    assert any(x.id == "me/tiny:v1" and x.owned_by == "me" for x in client.models.list())
    st, body = srv.json("GET", "/v1/models/me%2Fnope:v1")
    assert st == 404 and body["error"] == {"message": "model 'me/nope:v1' not found", "type": "not_found_error",
                                           "param": None, "code": None}


def test_request_mapping_errors(srv):
    st, body = srv.json("POST", "/v1/completions", {"model": "tiny", "prompt": "x", "stop": ["a", 1]})
    assert st == 400 and body["error"]["message"] == "invalid type for 'stop' field: float64"
    st, body = srv.json("POST", "/v1/chat/completions", {"model": "tiny", "messages": MSGS, "reasoning_effort": "huge"})
    assert st == 400 and body["error"]["message"].startswith('invalid reasoning value: "huge"')
    st, body = srv.json("POST", "/v1/chat/completions", {"model": "tiny", "messages": [{"role": "user"}]})
    assert st == 400 and body["error"]["message"] == "invalid message content type: <nil>"
    st, body = srv.json("POST", "/v1/chat/completions", {"model": "tiny", "messages": [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]})
    assert st == 400 and body["error"]["type"] == "invalid_request_error"


def test_developer_role_and_content_parts(client):
    """§5 D19: developer → system; content parts of text render like one string."""
    parts = [{"role": "developer", "content": "Be brief."},
             {"role": "user", "content": [{"type": "text", "text": "Why is the sky blue?"}]}]
    flat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Why is the sky blue?"}]
    a = client.chat.completions.create(model="tiny", messages=parts, max_tokens=6, temperature=0)
    b = client.chat.completions.create(model="tiny", messages=flat, max_tokens=6, temperature=0)
    assert a.choices[0].message.content == b.choices[0].message.content
    assert a.usage.prompt_tokens == b.usage.prompt_tokens


@pytest.mark.parametrize("dims", [1, 2, 3, 5])
def test_embeddings_base64_padding(srv, dims):
    """Every base64 padding case (4·dims bytes mod 3) decodes to the float vector (§2.5)."""
    req = {"model": "tiny", "input": ["", "blue"], "dimensions": dims}
    st, f = srv.json("POST", "/v1/embeddings", dict(req, encoding_format="float"))
    assert st == 200, f
    st, b = srv.json("POST", "/v1/embeddings", dict(req, encoding_format="base64"))
    assert st == 200, b
    for fd, bd in zip(f["data"], b["data"]):
        raw = base64.b64decode(bd["embedding"], validate=True)
        assert len(raw) == 4 * dims and len(bd["embedding"]) % 4 == 0
        assert list(struct.unpack(f"<{dims}f", raw)) == pytest.approx(fd["embedding"], abs=1e-6)


def test_empty_prompt_stream_is_sse(client):
    """An empty prompt only loads the model (§1.1.5); a streamed request still gets SSE."""
    chunks = list(client.completions.create(model="tiny", prompt="", stream=True))
    assert chunks and all(c.object == "text_completion" for c in chunks)
    assert chunks[-1].choices[0].finish_reason is not None


# A JSON Schema whose shortest instance is a million items: with it the tiny model generates
# until it is stopped (format, §1.0.6), deterministically, instead of until a random end of turn.
ENDLESS = {"type": "array", "minItems": 1000, "items": {"type": "array", "minItems": 1000, "items": {"const": 1}}}


def test_stream_error_after_first_event(tmp_path):
    """§2.0.4, §5 D7: a stream cut after its first event (here by a shutdown past its grace
    period, R12) ends with an OpenAI error event and no [DONE], so the SDK raises."""
    s = Server(tmp_path, {"LOCALLAMA_SHUTDOWN_GRACE": "1ms"})
    try:
        st, body = s.json("POST", "/api/create", {"model": "tiny", "from": TINY, "stream": False})
        assert st == 200, body
        c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=60)
        c.request("POST", "/v1/chat/completions",
                  # a format that needs a million items: runs until stopped
                  body=json.dumps({"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "stream": True,
                                   "temperature": 1, "seed": 1, "options": {"num_ctx": 256, "num_predict": 10000000},
                                   "response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": ENDLESS}}}),
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        assert r.status == 200
        first = r.readline()
        assert first.startswith(b"data: {")
        os.kill(s.proc.pid, signal.SIGTERM)
        rest = r.read().decode("utf-8")
        c.close()
        events = [e for e in rest.split("\n\n") if e]
        assert "[DONE]" not in rest
        last = json.loads(events[-1][len("data: "):])
        assert last == {"error": {"message": "server shutting down", "type": "api_error", "param": None, "code": None}}
    finally:
        s.stop()


def test_streamed_requests_on_a_full_queue_get_503(tmp_path):
    """§0.7, §0.10.2: with one slot and a queue of one, a third request is refused with 503
    and the JSON error before any stream starts, streamed or not, native or /v1; the waiting
    request still runs once the first is gone."""
    s = Server(tmp_path, {"LOCALLAMA_MAX_QUEUE": "1", "LOCALLAMA_NUM_PARALLEL": "1"})
    conns = []
    try:
        st, body = s.json("POST", "/api/create", {"model": "tiny", "from": TINY, "stream": False})
        assert st == 200, body
        # a format that needs a million items keeps the slot busy until the client leaves (a
        # free answer of the tiny model ends at a random end-of-turn within a second)
        long = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "stream": True, "format": ENDLESS,
                "options": {"temperature": 1, "seed": 1, "num_ctx": 256, "num_predict": 10000000}}

        def send(body):
            c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=60)
            c.request("POST", "/api/chat", body=json.dumps(body), headers={"Content-Type": "application/json"})
            conns.append(c)
            return c

        a = send(long).getresponse()
        assert a.status == 200 and a.readline().startswith(b'{"model":"tiny"')     # running in the slot

        def drain():            # a client that keeps reading (an unread stream past its cap is cancelled, H49)
            try:
                while a.read(65536):
                    pass
            except (OSError, ValueError, AttributeError):
                pass
        threading.Thread(target=drain, daemon=True).start()
        b_conn = send(long)                                                        # waits in the queue
        time.sleep(1.0)
        busy = "server busy, please try again.  maximum pending requests exceeded"
        for stream in (True, False):
            st, raw = s.request("POST", "/api/chat", dict(long, stream=stream))
            assert st == 503 and json.loads(raw) == {"error": busy}, raw
            st, raw = s.request("POST", "/api/generate", {"model": "tiny", "prompt": "hi", "stream": stream})
            assert st == 503 and json.loads(raw) == {"error": busy}, raw
            st, raw = s.request("POST", "/v1/chat/completions", {"model": "tiny", "stream": stream,
                                                                  "messages": [{"role": "user", "content": "hi"}]})
            assert st == 503, raw
            assert json.loads(raw) == {"error": {"message": busy, "type": "api_error", "param": None, "code": None}}
        conns[0].close()                                                           # the first leaves
        b = b_conn.getresponse()
        assert b.status == 200 and json.loads(b.readline())["model"] == "tiny"
    finally:
        for c in conns:
            c.close()
        s.stop()
