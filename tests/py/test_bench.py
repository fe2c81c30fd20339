"""`locallama bench` (issue 2 command contract): llama-bench's JSON and markdown outputs on the
tiny reference model. Speeds are not asserted beyond being positive and consistent with the
recorded samples; the figures that matter come from bench/matrix.sh."""
import json
import os
import re
import subprocess

from conftest import BIN, SHARED

TINY = os.path.join(SHARED, "reference", "llama3.2-tiny", "llama3.2-tiny-v2k-F32.gguf")

# llama-bench's JSON fields that carry information here, with their JSON types
FIELDS = {
    "build_commit": str, "build_number": int, "cpu_info": str, "gpu_info": str, "backends": str,
    "model_filename": str, "model_type": str, "model_size": int, "model_n_params": int,
    "n_batch": int, "n_ubatch": int, "n_threads": int, "type_k": str, "type_v": str,
    "n_gpu_layers": int, "n_prompt": int, "n_gen": int, "n_depth": int, "n_parallel": int,
    "test_time": str,
    "avg_ns": int, "stddev_ns": int, "avg_ts": float, "stddev_ts": float,
    "samples_ns": list, "samples_ts": list,
}


def bench(args):
    p = subprocess.run([BIN, "bench", "-m", TINY] + args, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=600)
    assert p.returncode == 0, p.stderr.decode()
    return p.stdout.decode()


def test_bench_json(bin_path):
    out = json.loads(bench(["-p", "16", "-n", "4", "-r", "2", "-t", "1", "-o", "json"]))
    assert isinstance(out, list) and len(out) == 2
    pp, tg = out
    for r in out:
        for name, typ in FIELDS.items():
            assert name in r, name
            v = r[name]
            if typ is float:
                assert isinstance(v, (int, float)) and not isinstance(v, bool), (name, v)
            else:
                assert isinstance(v, typ) and not isinstance(v, bool), (name, v)
        assert r["model_filename"] == TINY
        assert r["backends"] == "CPU" and r["gpu_info"] == "" and r["n_gpu_layers"] == 0
        assert r["type_k"] == "f16" and r["type_v"] == "f16"     # llama-bench's default
        assert r["n_threads"] == 1 and r["n_depth"] == 0 and r["n_parallel"] == 1
        assert 0 < r["model_size"] <= os.path.getsize(TINY)
        assert r["model_n_params"] > 0
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", r["test_time"])
        assert len(r["samples_ns"]) == 2 and len(r["samples_ts"]) == 2
        assert all(isinstance(x, int) and x > 0 for x in r["samples_ns"])
        assert r["avg_ts"] > 0 and r["avg_ns"] > 0 and r["stddev_ts"] >= 0
        # avg_ts is the mean of the per-repetition rates, avg_ns the mean time
        n_tok = r["n_prompt"] + r["n_gen"]
        rates = [n_tok * 1e9 / ns for ns in r["samples_ns"]]
        assert abs(r["avg_ts"] - sum(rates) / 2) <= 1e-3 * r["avg_ts"]
        assert abs(r["avg_ns"] - sum(r["samples_ns"]) / 2) <= 1
        for got, want in zip(r["samples_ts"], rates):
            assert abs(got - want) <= 1e-4 * want
    assert (pp["n_prompt"], pp["n_gen"]) == (16, 0)
    assert (tg["n_prompt"], tg["n_gen"]) == (0, 4)
    assert pp["model_type"] == tg["model_type"] and pp["model_type"]


def test_bench_lists_skip_and_depth(bin_path):
    out = json.loads(bench(["-p", "8,16", "-n", "0", "-d", "0,8", "-r", "1", "-o", "json"]))
    got = [(r["n_prompt"], r["n_gen"], r["n_depth"]) for r in out]
    assert got == [(8, 0, 0), (16, 0, 0), (8, 0, 8), (16, 0, 8)]


def test_bench_markdown(bin_path):
    out = bench(["-p", "16", "-n", "4", "-r", "2", "-d", "4", "-t", "1"]).splitlines()
    assert len(out) == 4, out
    head = [c.strip() for c in out[0].strip("|").split("|")]
    assert head == ["model", "size", "params", "backend", "threads", "test", "t/s"]
    assert re.fullmatch(r"\|[-:| ]+\|", out[1])
    for line, test in zip(out[2:], ["pp16 @ d4", "tg4 @ d4"]):
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[3] == "CPU" and cells[4] == "1" and cells[5] == test, cells
        assert re.fullmatch(r"\d+\.\d\d (MiB|GiB)", cells[1]), cells
        assert re.fullmatch(r"\d+\.\d\d [MB]", cells[2]), cells
        m = re.fullmatch(r"(\d+\.\d\d) ± (\d+\.\d\d)", cells[6])
        assert m and float(m.group(1)) > 0, cells


def test_bench_usage_errors(bin_path):
    for args in (["bench"], ["bench", "-m", TINY, "-p", "x"], ["bench", "-m", TINY, "-o", "csv"],
                 ["bench", "-m", TINY, "--frobnicate"], ["bench", "-m", TINY, "-t", "1025"],
                 ["bench", "-m", TINY, "-t", "1,4096"]):
        p = subprocess.run([BIN] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=60)
        assert p.returncode == 2, (args, p.stderr)
        assert p.stderr.startswith(b"Error: "), (args, p.stderr)
        assert p.stdout == b"", (args, p.stdout)


def test_bench_json_escapes_the_model_filename(bin_path, tmp_path):
    """-o json stays valid JSON (UTF-8, RFC 8259) for any file name: a quote, a backslash and a
    control byte are escaped, a byte that is not UTF-8 becomes U+FFFD."""
    for name, want in ((b'we"ird\\na\x01me\xc3\xa9.gguf', 'we"ird\\na\x01me\u00e9.gguf'),
                       (b"bad\xff\xc3utf8.gguf", "bad\ufffd\ufffdutf8.gguf")):
        link = os.path.join(os.fsencode(str(tmp_path)), name)
        os.symlink(TINY, link)
        p = subprocess.run([os.fsencode(BIN), b"bench", b"-m", link, b"-p", b"2", b"-n", b"0",
                            b"-r", b"1", b"-o", b"json"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=600)
        assert p.returncode == 0, p.stderr.decode()
        out = json.loads(p.stdout.decode("utf-8"))
        assert out[0]["model_filename"] == str(tmp_path) + "/" + want, out[0]["model_filename"]


def test_bench_parallel_sequences(bin_path):
    """-np S: S sequences together; t/s is the aggregate (S x tokens / time), the JSON objects
    carry n_parallel, and the markdown test column ends in " xS". Also --kv-type q8_0."""
    out = json.loads(bench(["-p", "8", "-n", "4", "-np", "1,3", "-d", "0,5", "-r", "2", "-t", "2",
                            "-ctk", "q8_0", "-o", "json"]))
    got = [(r["n_parallel"], r["n_depth"], r["n_prompt"], r["n_gen"]) for r in out]
    assert got == [(1, 0, 8, 0), (1, 0, 0, 4), (1, 5, 8, 0), (1, 5, 0, 4),
                   (3, 0, 8, 0), (3, 0, 0, 4), (3, 5, 8, 0), (3, 5, 0, 4)], got
    for r in out:
        assert r["type_k"] == "q8_0" and r["type_v"] == "q8_0"
        n_tok = (r["n_prompt"] + r["n_gen"]) * r["n_parallel"]
        rates = [n_tok * 1e9 / ns for ns in r["samples_ns"]]
        assert abs(r["avg_ts"] - sum(rates) / len(rates)) <= 1e-3 * r["avg_ts"]
    md = bench(["-p", "8", "-n", "4", "-np", "4", "-r", "1", "-t", "1"]).splitlines()
    tests = [[c.strip() for c in line.strip("|").split("|")][5] for line in md[2:]]
    assert tests == ["pp8 x4", "tg4 x4"], md
    p = subprocess.run([BIN, "bench", "-m", TINY, "-np", "0"], capture_output=True)
    assert p.returncode == 2 and b"invalid value for -np" in p.stderr, p.stderr
