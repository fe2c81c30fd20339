#!/usr/bin/env python3
"""Concurrent streams through `locallama serve` (issue 9): aggregate generation tokens/s of
N simultaneous /api/generate streams against one stream, on the same model and server.

    bench/serve_parallel.py MODEL.gguf [--streams 4] [--tokens 128] [--rounds 3] [--bin build/locallama]

The script starts its own server on a free loopback port with a temporary store (deleted at
the end) and LOCALLAMA_NUM_PARALLEL = the largest stream count, uploads MODEL.gguf as a blob,
creates the model through /api/create, warms it up, then runs the configurations interleaved
(1, N, 1, N, ... for --rounds rounds: A B A B) and prints the medians.

What is measured: every request asks for exactly --tokens tokens (num_predict, temperature 0,
distinct short prompts, so no prefix is shared); the aggregate rate of a configuration is the
sum of the eval_count fields of its final chunks divided by the wall time from the first
request sent to the last final chunk received. Prompt processing is inside that wall time, as
a user of the server would see it; eval-only rates (sum of eval_count / eval_duration per
stream) are printed beside it.

The model is any GGUF; the issue's figure uses the 1B-shaped Q4_K_M file (random weights, the
real Llama 3 vocabulary: ../shared/tools/make_bench_gguf.py writes the F16 one; quantize it
with any quantizer). With random weights an end-of-generation token is possible but has a
probability near 1/128256 per step; a stream that stops early is reported.
"""
import argparse
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

PROMPTS = ["Tell me about the sea.", "Write a poem about autumn.", "Explain how a bicycle works.",
           "Describe a busy market.", "What is a prime number?", "Summarize the history of tea.",
           "List some uses of copper.", "Why is the sky blue?"]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def request(port, method, path, body=None, timeout=3600):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {}
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    c.request(method, path, body=body, headers=headers)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def stream(port, model, prompt, tokens, out):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=3600)
    body = {"model": model, "prompt": prompt, "stream": True,
            "options": {"num_predict": tokens, "temperature": 0, "seed": 1}}
    c.request("POST", "/api/generate", body=json.dumps(body).encode(),
              headers={"Content-Type": "application/json"})
    r = c.getresponse()
    if r.status != 200:
        raise RuntimeError(f"HTTP {r.status}: {r.read()!r}")
    final = None
    for line in r:
        obj = json.loads(line)
        if "error" in obj:
            raise RuntimeError(obj["error"])
        if obj.get("done"):
            final = obj
    c.close()
    out.append((time.monotonic(), final))


def run_config(port, model, n, tokens, round_no):
    out, threads = [], []
    t0 = time.monotonic()
    for i in range(n):
        p = PROMPTS[(i + round_no * n) % len(PROMPTS)] + f" ({round_no}.{i})"
        t = threading.Thread(target=stream, args=(port, model, p, tokens, out))
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    if len(out) != n:
        raise RuntimeError("a stream failed")
    t1 = max(t for t, _ in out)
    gen = sum(f["eval_count"] for _, f in out)
    eval_rate = sum(f["eval_count"] / (f["eval_duration"] / 1e9) for _, f in out) / n
    short = [f["eval_count"] for _, f in out if f["eval_count"] < tokens]
    return gen / (t1 - t0), eval_rate, short


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("--streams", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--bin", default=os.path.join(os.path.dirname(__file__), "..", "build", "locallama"))
    a = ap.parse_args()
    if a.streams < 2 or a.tokens < 1 or a.rounds < 1:
        ap.error("--streams must be at least 2, --tokens and --rounds at least 1")

    tmp = tempfile.mkdtemp(prefix="locallama-bench-serve-")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OLLAMA_", "LOCALLAMA_"))}
    env.update({"LOCALLAMA_HOST": f"127.0.0.1:{port}", "LOCALLAMA_MODELS": os.path.join(tmp, "models"),
                "LOCALLAMA_NUM_PARALLEL": str(a.streams), "LOCALLAMA_KEEP_ALIVE": "-1"})
    log = open(os.path.join(tmp, "serve.log"), "wb")
    proc = subprocess.Popen([a.bin, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(500):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None:
                    sys.exit(f"serve exited {proc.returncode}")
                time.sleep(0.02)
        digest = sha256_file(a.model)
        with open(a.model, "rb") as f:
            st, body = request(port, "POST", f"/api/blobs/{digest}", f)
        if st not in (200, 201):
            sys.exit(f"blob upload: HTTP {st} {body!r}")
        name = "bench-model"
        st, body = request(port, "POST", "/api/create",
                           {"model": name, "files": {os.path.basename(a.model): digest}, "stream": False})
        if st != 200:
            sys.exit(f"create: HTTP {st} {body!r}")
        run_config(port, name, 1, 8, 99)            # load + warm up
        res = {1: [], a.streams: []}
        for r in range(a.rounds):
            for n in (1, a.streams):
                agg, ev, short = run_config(port, name, n, a.tokens, r)
                res[n].append((agg, ev))
                note = f"  (streams stopped early at {short} tokens)" if short else ""
                print(f"round {r + 1}: {n} stream(s): aggregate {agg:7.2f} t/s, per-stream eval {ev:6.2f} t/s{note}",
                      flush=True)
        one = statistics.median(x for x, _ in res[1])
        many = statistics.median(x for x, _ in res[a.streams])
        print()
        print(f"| streams | aggregate t/s (median of {a.rounds}) | per-stream eval t/s |")
        print("|---|---|---|")
        for n in (1, a.streams):
            print(f"| {n} | {statistics.median(x for x, _ in res[n]):.2f} | {statistics.median(e for _, e in res[n]):.2f} |")
        print()
        print(f"ratio {a.streams} streams / 1 stream: {many / one:.2f}x")
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
