"""The OpenAI-compatible endpoints of `locallama serve` (ollama-api.md §2; issue 9), driven by
the real `openai` PyPI client: chat completions (plain and streamed with usage), text
completions, models list/retrieve, embeddings as floats and base64, the not-found error, plus
raw-HTTP checks of the SSE framing (§2.0.4) and of max_completion_tokens (§5 D2). One server per
module (test_api_native.Server) with the tiny Llama 3.2 model created through /api/create."""
import base64
import http.client
import json
import struct

import pytest

from test_api_native import TINY, Server

openai = pytest.importorskip("openai")


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("oai"))
    try:
        st, _ = s.request("GET", "/v1/models")
        if st == 501:
            pytest.skip("the /v1 endpoints are not wired into `serve` yet")
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
