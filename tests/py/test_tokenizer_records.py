"""Every golden tokenizer record of ../shared/tokenizer/*.jsonl through the command line
(issue 2, "Done when"): `tokenize` gives exactly the ids, `detokenize` of those ids gives
decoded_b64, and `detokenize --pieces` gives pieces_b64.

Each record runs the plain commands (text on stdin, --no-bos when add_bos is false,
--parse-special when parse_special is true). The processes of one file run on a small thread
pool up front (a module fixture); the tests then compare, one test per record and field.
"""
import base64
import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BIN = os.environ.get("LOCALLAMA_BIN", os.path.join(ROOT, "build", "locallama"))
SHARED = os.environ.get("LL_SHARED_DIR", os.path.join(ROOT, "..", "shared"))
TOKDIR = os.path.join(SHARED, "tokenizer")
WORKERS = int(os.environ.get("LL_TEST_JOBS", "2"))

FILES = ["llama3.jsonl", "llama2-spm.jsonl", "smollm2.jsonl", "llama3.2-specials.jsonl"]


def model_path(jsonl, model):
    if jsonl == "llama3.2-specials.jsonl":
        return os.path.join(SHARED, "reference", "llama3.2-tiny", model)
    return os.path.join(TOKDIR, model)


def load_records(jsonl):
    path = os.path.join(TOKDIR, jsonl)
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def run(args, stdin=b""):
    p = subprocess.run([BIN] + args, input=stdin, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=120)
    return p.returncode, p.stdout, p.stderr


def run_record(jsonl, rec):
    model = model_path(jsonl, rec["model"])
    args = ["tokenize", "--model", model]
    if not rec["add_bos"]:
        args.append("--no-bos")
    if rec["parse_special"]:
        args.append("--parse-special")
    out = {"tokenize": run(args, base64.b64decode(rec["text_b64"]))}
    ids = [str(i) for i in rec["ids"]]
    out["decoded"] = run(["detokenize", "--model", model] + ids)
    out["pieces"] = run(["detokenize", "--model", model, "--pieces"] + ids)
    return out


_cache = {}


def results(jsonl):
    """Runs every record of one file once (on WORKERS threads) and keeps the outputs."""
    if jsonl not in _cache:
        recs = load_records(jsonl)
        with ThreadPoolExecutor(max_workers=WORKERS) as ex:
            _cache[jsonl] = list(ex.map(lambda r: run_record(jsonl, r), recs))
    return _cache[jsonl]


CASES = [(f, i) for f in FILES for i in range(len(load_records(f)))]


def case_id(c):
    f, i = c
    return "%s:%d" % (f.replace(".jsonl", ""), i)


def test_records_present():
    """The golden files are where the README says, with the documented record counts."""
    counts = {f: len(load_records(f)) for f in FILES}
    assert counts == {"llama3.jsonl": 354, "llama2-spm.jsonl": 345, "smollm2.jsonl": 349,
                      "llama3.2-specials.jsonl": 66}
    assert os.access(BIN, os.X_OK), BIN


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_record(case):
    jsonl, i = case
    rec = _records[jsonl][i]
    out = results(jsonl)[i]
    rc, stdout, stderr = out["tokenize"]
    assert rc == 0, stderr.decode(errors="replace")
    assert json.loads(stdout) == rec["ids"], rec.get("text", rec["text_b64"])
    rc, stdout, stderr = out["decoded"]
    assert rc == 0, stderr.decode(errors="replace")
    assert stdout == base64.b64decode(rec["decoded_b64"])
    rc, stdout, stderr = out["pieces"]
    assert rc == 0, stderr.decode(errors="replace")
    assert stdout == base64.b64decode(rec["pieces_b64"])


_records = {f: load_records(f) for f in FILES}


def test_usage_and_errors():
    model = os.path.join(TOKDIR, "llama3.gguf")
    rc, out, err = run(["tokenize"])
    assert rc == 2 and err.startswith(b"Error: ")
    rc, out, err = run(["tokenize", "--model", os.path.join(TOKDIR, "missing.gguf"), "x"])
    assert rc == 1 and err.startswith(b"Error: ") and out == b""
    rc, out, err = run(["detokenize", "--model", model, "128256"])
    assert rc == 1 and b"128256" in err and out == b""
    rc, out, err = run(["detokenize", "--model", model, "abc"])
    assert rc == 2
    # TEXT on the command line equals the same bytes on stdin
    rc, out, err = run(["tokenize", "--model", model, "Hello world"])
    assert rc == 0 and json.loads(out) == [128000, 9906, 1917]
