#!/usr/bin/env python3
"""Generation speed with and without structured output (issue 11), through `locallama serve`.

    bench/format_speed.py MODEL.gguf [--tokens 128] [--rounds 3] [--bin build/locallama]
                          [--peer PATH/TO/llama-completion]

Starts its own server on a free loopback port with a temporary store (deleted at the end),
creates the model from MODEL.gguf, then runs, interleaved (A B A B ...), one /api/generate of
exactly --tokens tokens without a format and one with each schema below, and prints the
median generation rate (eval_count / eval_duration) of each and its ratio to the free one.

The schemas are chosen so that no instance is shorter than --tokens tokens, so every
constrained run generates --tokens tokens (a schema whose value completes early would end the
answer early); a free run may stop at a sampled end of generation, which the script reports
(the rate is per generated token either way): an array of at least 1000 objects of a flat
record, an array of nested records with enums, and a recursive list. The grammar is compiled
once per schema by a warm-up request (the runner keeps compiled grammars), so the figures are
the per-token cost of masking, not of compiling.

With --peer (llama.cpp's llama-completion, built by you out of this tree), each round also runs
it on the same file, prompt, seed, temperature and token count, without a schema and with each
schema (--json-schema: its own JSON-schema-to-grammar conversion and grammar sampler), on the
same number of threads (--threads, default 2); its rate is generated tokens / (eval time +
sampling time) from its own timing lines, since its grammar cost is in the sampling time.
"""
import re
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
import time

FLAT = {"type": "object", "properties": {"id": {"type": "integer"}, "name": {"type": "string"},
                                         "active": {"type": "boolean"}, "score": {"type": "number"}},
        "required": ["id", "name", "active", "score"], "additionalProperties": False}
NESTED = {"type": "object", "properties": {
    "user": {"type": "object", "properties": {"name": {"type": "string"}, "role": {"enum": ["admin", "user", "guest"]}},
             "required": ["name", "role"]},
    "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 4},
    "status": {"enum": ["ok", "error", "pending"]}}, "required": ["user", "tags", "status"]}
SCHEMAS = {
    "flat records": {"type": "array", "minItems": 1000, "items": FLAT},
    "nested records": {"type": "array", "minItems": 1000, "items": NESTED},
    "recursive": {"type": "array", "minItems": 1000, "items": {"$ref": "#/$defs/node"},
                  "$defs": {"node": {"type": "object", "properties": {"v": {"type": "integer"},
                                                                         "next": {"anyOf": [{"$ref": "#/$defs/node"}, {"type": "null"}]}},
                                     "required": ["v", "next"]}}},
}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def request(port, path, body, timeout=3600):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    data = body if isinstance(body, (bytes, bytearray)) or hasattr(body, "read") else json.dumps(body).encode()
    c.request("POST", path, body=data)
    r = c.getresponse()
    raw = r.read()
    c.close()
    return r.status, raw


def generate(port, model, tokens, fmt, seed):
    body = {"model": model, "prompt": "Write the records as JSON.", "stream": False,
            "options": {"temperature": 0.8, "seed": seed, "num_predict": tokens}}
    if fmt is not None:
        body["format"] = fmt
    st, raw = request(port, "/api/generate", body)
    if st != 200:
        raise RuntimeError(f"HTTP {st}: {raw[:300]!r}")
    r = json.loads(raw)
    if r["eval_count"] < tokens:       # an end of generation sampled by a random model: rate still per token
        print(f"  (seed {seed}, format {'yes' if fmt else 'no'}: stopped after {r['eval_count']} tokens)", flush=True)
    return r["eval_count"] / (r["eval_duration"] / 1e9)


def peer_generate(a, fmt, seed):
    cmd = [a.peer, "-m", a.model, "-p", "Write the records as JSON.", "-n", str(a.tokens), "-t", str(a.threads),
           "-s", str(seed), "--temp", "0.8", "-no-cnv"]
    if fmt is not None:
        cmd += ["--json-schema", json.dumps(fmt)]
    p = subprocess.run(cmd, capture_output=True, text=True, errors="replace", stdin=subprocess.DEVNULL)
    ev = re.search(r"\beval time =\s*([\d.]+) ms /\s*(\d+) runs", p.stderr)
    sm = re.search(r"sampling time =\s*([\d.]+) ms", p.stderr)
    if p.returncode != 0 or not ev or not sm:
        raise RuntimeError(f"llama-completion failed ({p.returncode}): {p.stderr[-1500:]}")
    runs = int(ev.group(2))
    if runs + 1 < a.tokens:
        print(f"  (llama.cpp seed {seed}, format {'yes' if fmt else 'no'}: {runs} runs)", flush=True)
    return runs / ((float(ev.group(1)) + float(sm.group(1))) / 1e3)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--bin", default=os.path.join(os.path.dirname(__file__), "..", "build", "locallama"))
    ap.add_argument("--peer", default=None, help="llama.cpp's llama-completion, to compare its grammar sampler")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="locallama-bench-format-")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OLLAMA_", "LOCALLAMA_"))}
    env.update({"LOCALLAMA_HOST": f"127.0.0.1:{port}", "LOCALLAMA_MODELS": os.path.join(tmp, "models"),
                "LOCALLAMA_KEEP_ALIVE": "-1"})
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
        h = hashlib.sha256()
        with open(a.model, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
        digest = "sha256:" + h.hexdigest()
        with open(a.model, "rb") as f:
            st, raw = request(port, f"/api/blobs/{digest}", f)
        if st not in (200, 201):
            sys.exit(f"blob upload: HTTP {st} {raw!r}")
        st, raw = request(port, "/api/create", {"model": "m", "files": {os.path.basename(a.model): digest}, "stream": False})
        if st != 200:
            sys.exit(f"create: HTTP {st} {raw!r}")
        configs = [("free", None)] + list(SCHEMAS.items())
        for name, fmt in configs:                               # load, compile each grammar once
            t0 = time.monotonic()
            generate(port, "m", 4, fmt, 0)
            print(f"warm-up {name}: {time.monotonic() - t0:.2f} s", flush=True)
        res = {name: [] for name, _ in configs}
        peer = {name: [] for name, _ in configs}
        for r in range(a.rounds):
            for name, fmt in configs:
                res[name].append(generate(port, "m", a.tokens, fmt, r + 1))
            print("round %d: " % (r + 1) + ", ".join(f"{n} {res[n][-1]:.2f}" for n, _ in configs), flush=True)
            if a.peer:
                for name, fmt in configs:
                    peer[name].append(peer_generate(a, fmt, r + 1))
                print("  llama.cpp: " + ", ".join(f"{n} {peer[n][-1]:.2f}" for n, _ in configs), flush=True)
        free = statistics.median(res["free"])
        print()
        print(f"| format | generation t/s (median of {a.rounds}) | × free |")
        print("|---|---|---|")
        for name, _ in configs:
            m = statistics.median(res[name])
            print(f"| {name} | {m:.2f} | {m / free:.3f} |")
        if a.peer:
            pfree = statistics.median(peer["free"])
            print()
            print(f"| format | llama.cpp t/s (median of {a.rounds}) | × its free | locallama × free |")
            print("|---|---|---|---|")
            for name, _ in configs:
                m = statistics.median(peer[name])
                print(f"| {name} | {m:.2f} | {m / pfree:.3f} | {statistics.median(res[name]) / free:.3f} |")
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
