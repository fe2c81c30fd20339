"""logprobs and top_logprobs (ollama-api.md §1.0.3, §2.1.3, §2.2; issue 9) on the tiny Llama 3.2
model: the shape on /api/generate and /api/chat, streamed and not, the OpenAI shapes through
the real `openai` client, and the values themselves: each chosen token's logprob and its
alternatives equal log_softmax of the logits `locallama logits` computes for the same token
ids (prompt + the generated tokens fed back), within 1e-4."""
import json
import math
import os
import subprocess

import numpy as np
import pytest

from test_api_native import BIN, TINY, Server

TOL = 1e-4


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("logprobs"))
    try:
        st, body = s.json("POST", "/api/create", {"model": "tiny", "from": TINY, "stream": False})
        assert st == 200 and body == {"status": "success"}, body
        yield s
    finally:
        s.stop()


def gen(srv, stream=False, **kw):
    body = {"model": "tiny", "prompt": "Once upon a time", "stream": stream, "logprobs": True, "top_logprobs": 5,
            "options": {"temperature": 0, "num_predict": 6}}
    body.update(kw)
    if stream:
        return srv.lines("/api/generate", body)
    st, got = srv.json("POST", "/api/generate", body)
    assert st == 200, got
    return got


def check_entry(e, n_top):
    assert isinstance(e["token"], str) and isinstance(e["logprob"], float) and e["logprob"] <= 0
    assert bytes(e["bytes"]).decode("utf-8", "replace") == e["token"]
    if n_top == 0:
        assert "top_logprobs" not in e
        return
    tops = e["top_logprobs"]
    assert len(tops) == n_top
    assert all(list(t) == ["token", "logprob", "bytes"] for t in tops)
    lps = [t["logprob"] for t in tops]
    assert lps == sorted(lps, reverse=True)
    assert sum(math.exp(x) for x in lps) <= 1 + 1e-6


def test_generate_not_streamed(srv):
    got = gen(srv)
    lp = got["logprobs"]
    assert len(lp) == got["eval_count"] == 6
    assert list(lp[0]) == ["token", "logprob", "bytes", "top_logprobs"]
    for e in lp:
        check_entry(e, 5)
        # Temperature 0 picks the most likely token: the chosen one is the top alternative.
        assert abs(e["logprob"] - e["top_logprobs"][0]["logprob"]) < 1e-6
        assert e["token"] == e["top_logprobs"][0]["token"]
    assert "".join(e["token"] for e in lp) == got["response"]
    assert list(got)[-1] == "logprobs"          # generate: after the metrics (§1.1.3)


def test_streamed_chunks_carry_their_tokens(srv):
    plain = gen(srv)
    lines = gen(srv, stream=True)
    streamed = [e for l in lines for e in l.get("logprobs", [])]
    assert [e["token"] for e in streamed] == [e["token"] for e in plain["logprobs"]]
    assert all(abs(a["logprob"] - b["logprob"]) < 1e-6 for a, b in zip(streamed, plain["logprobs"]))
    for l in lines[:-1]:
        # A chunk's logprobs are the tokens whose text it carries.
        assert "".join(e["token"] for e in l["logprobs"]) == l["response"]


def test_top_logprobs_zero_and_absent(srv):
    got = gen(srv, top_logprobs=0)
    assert len(got["logprobs"]) == 6
    for e in got["logprobs"]:
        check_entry(e, 0)
    got = gen(srv, logprobs=False, top_logprobs=0)
    assert "logprobs" not in got


@pytest.mark.parametrize("bad", [-1, 21])
def test_top_logprobs_range(srv, bad):
    st, got = srv.json("POST", "/api/generate", {"model": "tiny", "prompt": "x", "logprobs": True, "top_logprobs": bad})
    assert st == 400 and got == {"error": "top_logprobs must be between 0 and 20"}
    st, got = srv.json("POST", "/api/chat", {"model": "tiny", "messages": [{"role": "user", "content": "x"}],
                                             "top_logprobs": bad})
    assert st == 400 and got == {"error": "top_logprobs must be between 0 and 20"}


def test_chat_logprobs_before_metrics(srv):
    st, got = srv.json("POST", "/api/chat", {"model": "tiny", "stream": False, "logprobs": True, "top_logprobs": 3,
                                             "messages": [{"role": "user", "content": "Hello"}],
                                             "options": {"temperature": 0, "num_predict": 4}})
    assert st == 200, got
    keys = list(got)
    assert keys.index("done_reason") < keys.index("logprobs") < keys.index("total_duration")
    assert len(got["logprobs"]) == 4
    for e in got["logprobs"]:
        check_entry(e, 3)
    assert "".join(e["token"] for e in got["logprobs"]) == got["message"]["content"]


def log_softmax(row):
    row = row.astype(np.float64)
    m = row.max()
    return row - (m + np.log(np.exp(row - m).sum()))


def test_values_match_logits_command(srv, tmp_path):
    got = gen(srv, options={"temperature": 0, "num_predict": 5, "num_ctx": 512})
    ids = got["context"]
    n_gen = len(got["logprobs"])
    prompt, out = ids[:-n_gen], ids[-n_gen:]
    f = tmp_path / "logits.f32"
    cmd = [BIN, "logits", "--model", TINY, "--ids", ",".join(map(str, prompt)), "--out", str(f), "--threads", "1",
           "--kv-type", "f16"]                                  # serve's default cache, as Ollama's
    if n_gen > 1:
        cmd += ["--force", ",".join(map(str, out[:-1]))]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    logits = np.fromfile(f, dtype="<f4")
    n_rows = len(prompt) + n_gen - 1
    assert logits.size % n_rows == 0
    rows = logits.reshape(n_rows, -1)
    for k, e in enumerate(got["logprobs"]):
        ls = log_softmax(rows[len(prompt) - 1 + k])       # the distribution token k was drawn from
        assert abs(ls[out[k]] - e["logprob"]) < TOL, (k, ls[out[k]], e["logprob"])
        best = np.argsort(-ls, kind="stable")[:5]
        assert [float(ls[i]) for i in best] == pytest.approx([t["logprob"] for t in e["top_logprobs"]], abs=TOL)
        assert int(best[0]) == out[k]


# ---- OpenAI shapes --------------------------------------------------------------------------------

def test_openai_chat_logprobs(srv):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{srv.port}/v1", api_key="unused", max_retries=0, timeout=120)
    msgs = [{"role": "user", "content": "Hello"}]
    r = client.chat.completions.create(model="tiny", messages=msgs, temperature=0, max_tokens=4, logprobs=True, top_logprobs=2)
    content = r.choices[0].logprobs.content
    assert len(content) == 4 and "".join(c.token for c in content) == r.choices[0].message.content
    for c in content:
        assert c.logprob <= 0 and len(c.top_logprobs) == 2 and c.top_logprobs[0].logprob == pytest.approx(c.logprob)
    streamed = []
    for ch in client.chat.completions.create(model="tiny", messages=msgs, temperature=0, max_tokens=4, logprobs=True,
                                             top_logprobs=2, stream=True):
        if ch.choices and ch.choices[0].logprobs:
            streamed += ch.choices[0].logprobs.content
    assert [c.token for c in streamed] == [c.token for c in content]
    # Without logprobs the choice has none.
    r = client.chat.completions.create(model="tiny", messages=msgs, temperature=0, max_tokens=2)
    assert r.choices[0].logprobs is None


def test_openai_completions_logprobs(srv):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{srv.port}/v1", api_key="unused", max_retries=0, timeout=120)
    r = client.completions.create(model="tiny", prompt="Once upon a time", temperature=0, max_tokens=4, logprobs=3)
    lp = r.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset) == 4
    assert "".join(lp.tokens) == r.choices[0].text
    assert lp.text_offset[0] == 0 and lp.text_offset[1] == len(lp.tokens[0].encode())
    for tok, l, alts in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs):
        assert len(alts) <= 3 and max(alts.values()) == pytest.approx(l)
    st, raw = srv.request("POST", "/v1/completions", {"model": "tiny", "prompt": "x", "logprobs": "two"})
    assert st == 400 and json.loads(raw)["error"]["type"] == "invalid_request_error"
