"""The JavaScript client suites of tests/js (issue 9; clients.md §5, §6, §8): ollama-js 0.6,
@langchain/ollama 1.x and openai-node 6.x, unchanged, run by Node's own test runner against a
`locallama serve` this module starts on a free loopback port with a temporary store. The models
the scripts use are created here: `tiny` (the tiny Llama 3.2 GGUF of ../shared) and, when the
PyPI package is installed, `smollm2:135m`. The packages come from tests/js/package-lock.json:
`npm ci --prefix tests/js` (.ci/run does it); a missing node_modules is a failure that says so,
never a skip. Each script is one pytest test so a failure names its client."""
import os
import re
import shutil
import subprocess
import warnings

import pytest

from conftest import ROOT, find_smollm2
from test_api_native import TINY, Server

JS = os.path.join(ROOT, "tests", "js")
SCRIPTS = sorted(f for f in os.listdir(JS) if f.endswith(".test.mjs"))
PACKAGES = ("ollama", "@langchain/ollama", "@langchain/core", "openai")


@pytest.fixture(scope="module")
def node():
    exe = shutil.which("node")
    if exe is None:
        pytest.fail("node is not installed (Debian: apt-get install nodejs npm)")
    missing = [p for p in PACKAGES if not os.path.isdir(os.path.join(JS, "node_modules", p))]
    if missing:
        pytest.fail(f"tests/js/node_modules lacks {', '.join(missing)}: run `npm ci --prefix tests/js`")
    return exe


@pytest.fixture(scope="module")
def srv(tmp_path_factory, node):
    s = Server(tmp_path_factory.mktemp("js"))
    try:
        st, body = s.json("POST", "/api/create", {"model": "tiny", "from": TINY, "stream": False})
        assert st == 200 and body == {"status": "success"}, body
        s.smol = ""
        path = find_smollm2()
        if path is not None and os.path.exists(path):
            st, body = s.json("POST", "/api/create", {"model": "smollm2:135m", "from": path, "stream": False})
            assert st == 200, body
            s.smol = "smollm2:135m"
        yield s
    finally:
        s.stop()


def test_scripts_found():
    assert SCRIPTS == ["langchain.test.mjs", "ollama.test.mjs", "openai.test.mjs"], SCRIPTS


@pytest.mark.parametrize("script", SCRIPTS)
def test_js_client(srv, node, script):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OLLAMA_", "OPENAI_"))}
    env.update({"LOCALLAMA_URL": f"http://127.0.0.1:{srv.port}", "LOCALLAMA_MODEL": "tiny",
                "LOCALLAMA_SMOL_MODEL": srv.smol, "NO_COLOR": "1"})
    out = subprocess.run([node, "--test", "--test-reporter=spec", script], cwd=JS, env=env,
                         capture_output=True, text=True, timeout=300)
    report = out.stdout + out.stderr
    assert out.returncode == 0, report
    # the runner's own summary: something ran and nothing failed
    counts = dict(re.findall(r"^\u2139 (pass|fail|cancelled) (\d+)$", report, re.M))
    assert int(counts.get("pass", 0)) > 0 and counts.get("fail") == "0" and counts.get("cancelled") == "0", report
    # a script skips a test only for a named server defect (or SmolLM2 missing): say which
    for line in re.findall(r"^.*# (?:SKIP )?SERVER DEFECT.*$", report, re.M):
        warnings.warn(f"{script}: {line.strip()}")
