"""The client commands of issue 9 ("CLI"): list/ls, ps, show, rm, cp, stop run through the
binary against a real `serve` (test_api_native.Server), and each one without a server.

Formats are ollama-cli.md §7-11, §14 and §15: tables padded to the widest cell plus four
spaces (the header's last cell gets one), errors as one "Error: ..." line with exit 1.
"""
import os
import re
import subprocess
import time

import pytest

from conftest import BIN
from test_api_native import TINY, Server, free_port

NO_SERVER = "could not connect to locallama server at http://127.0.0.1:{port}; start it with 'locallama serve'"


def cli(args, host, extra_env=None):
    e = {k: v for k, v in os.environ.items() if not k.startswith(("OLLAMA_", "LOCALLAMA_"))}
    e["LOCALLAMA_HOST"] = host
    e.update(extra_env or {})
    p = subprocess.run([BIN] + args, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("cli"))
    try:
        st, _ = s.request("GET", "/api/tags")
        assert st == 200, f"GET /api/tags answered {st}: the native API is not wired into serve"
        st, body = s.json("POST", "/api/create", {"model": "tiny", "from": TINY, "stream": False})
        assert st == 200, body
        s.host = f"127.0.0.1:{s.port}"
        yield s
    finally:
        s.stop()


def test_list_and_ls(srv):
    rc, out, err = cli(["list"], srv.host)
    assert rc == 0 and err == ""
    lines = out.split("\n")
    assert re.fullmatch(r"NAME {11}ID {14}SIZE {6}MODIFIED +", lines[0]) and lines[0].endswith("  ")
    st, tags = srv.json("GET", "/api/tags")
    digest = [m for m in tags["models"] if m["name"] == "tiny:latest"][0]["digest"]
    row = [l for l in lines if l.startswith("tiny:latest")][0]
    assert re.fullmatch(r"tiny:latest {4}" + digest[:12] + r" {4}1\.9 MB {4}(Less than a second|\d+ seconds|About a minute) ago +", row)
    assert row.endswith("    ") and len(row) >= len(lines[0])
    rc2, out2, _ = cli(["ls"], srv.host)
    assert rc2 == 0 and out2.split("\n")[0] == lines[0]
    rc, out, _ = cli(["ls", "TI"], srv.host)            # prefix filter, case-insensitive
    assert rc == 0 and "tiny:latest" in out
    rc, out, _ = cli(["ls", "zzz"], srv.host)
    assert rc == 0 and out == "NAME    ID    SIZE    MODIFIED \n"


def test_OLLAMA_HOST_used_when_LOCALLAMA_HOST_unset(srv):
    rc, out, _ = cli(["list"], "", {"OLLAMA_HOST": srv.host})
    assert rc == 0 and "tiny:latest" in out


def test_ps_and_stop(srv):
    rc, out, _ = cli(["stop", "tiny"], srv.host)       # not loaded: succeeds silently
    assert (rc, out) == (0, "")
    rc, out, _ = cli(["ps"], srv.host)
    assert rc == 0 and out == "NAME    ID    SIZE    PROCESSOR    CONTEXT    UNTIL \n"
    st, _ = srv.json("POST", "/api/generate", {"model": "tiny", "keep_alive": "10m", "stream": False})
    assert st == 200
    rc, out, _ = cli(["ps"], srv.host)
    lines = out.splitlines()
    assert rc == 0 and re.fullmatch(r"NAME {11}ID {14}SIZE +PROCESSOR {4}CONTEXT {4}UNTIL +", lines[0])
    assert re.fullmatch(r"tiny:latest {4}[0-9a-f]{12} {4}\d+(\.\d)? [KMG]?B +100% CPU {5}\d+ +(9|10) minutes from now {4}", lines[1])
    srv.json("POST", "/api/generate", {"model": "tiny", "keep_alive": -1, "stream": False})
    rc, out, _ = cli(["ps"], srv.host)
    assert "Forever    " in out
    rc, out, err = cli(["stop", "tiny"], srv.host)
    assert (rc, out, err) == (0, "", "")
    deadline = time.time() + 5
    while "tiny:latest" in cli(["ps"], srv.host)[1] and time.time() < deadline:
        time.sleep(0.05)
    assert "tiny:latest" not in cli(["ps"], srv.host)[1]
    rc, out, err = cli(["stop", "nope"], srv.host)
    assert (rc, out, err) == (1, "", 'Error: couldn\'t find model "nope" to stop\n')
    rc, _, err = cli(["stop"], srv.host)
    assert rc == 2 and err == "Error: accepts 1 arg(s), received 0\n"


def test_show_default_layout(srv):
    rc, out, err = cli(["show", "tiny"], srv.host)
    assert rc == 0 and err == ""
    assert out.startswith("  Model\n    architecture        llama     \n    parameters          ")
    assert "    context length      131072    \n" in out
    assert "    quantization        Q8_0      \n" in out
    assert "\n\n  Capabilities\n    completion    \n    tools         \n\n" in out
    assert '\n  Parameters\n    stop    "<|start_header_id|>"    \n' in out
    assert out.endswith("\n\n")


def test_show_verbose_metadata_and_tensors(srv):
    rc, out, err = cli(["show", "-v", "tiny"], srv.host)
    assert rc == 0 and err == ""
    assert "\n  Metadata\n    general.architecture " in out
    assert re.search(r"\n    general\.parameter_count +1\.705248e\+06 +\n", out)   # Go's %v of a float64
    assert re.search(r"\n    llama\.rope\.freq_base +500000 +\n", out)
    assert re.search(r"\n    tokenizer\.ggml\.token_type +\[1 1 1 \.\.\.\+2045 more\] +\n", out)
    assert re.search(r"\n  Tensors\n    output_norm\.weight +F32 +\[256\] +\n", out)
    assert out.index("  Parameters") < out.index("  Metadata") < out.index("  Tensors")
    assert "Metadata" not in cli(["show", "tiny"], srv.host)[1]


def test_show_flags(srv):
    st, show = srv.json("POST", "/api/show", {"model": "tiny"})
    assert cli(["show", "tiny", "--parameters"], srv.host) == (0, show["parameters"] + "\n", "")
    assert cli(["show", "tiny", "--modelfile"], srv.host) == (0, show["modelfile"] + "\n", "")
    assert cli(["show", "tiny", "--template"], srv.host) == (0, show["template"], "")
    assert cli(["show", "tiny", "--system"], srv.host) == (0, show.get("system", ""), "")
    rc, out, _ = cli(["show", "--license", "tiny"], srv.host)
    assert rc == 0 and out.endswith("\n")
    rc, out, err = cli(["show", "tiny", "--license", "--system"], srv.host)
    assert (rc, out) == (1, "") and err == ("Error: only one of '--license', '--modelfile', '--parameters', "
                                            "'--system', or '--template' can be specified\n")
    assert cli(["show", "nope"], srv.host) == (1, "", "Error: model 'nope:latest' not found\n")
    rc, _, err = cli(["show"], srv.host)
    assert rc == 2 and err == "Error: accepts 1 arg(s), received 0\n"
    rc, _, err = cli(["show", "tiny", "--frob"], srv.host)
    assert rc == 2 and err == "Error: unknown flag: --frob\n"


def test_cp_and_rm(srv):
    assert cli(["cp", "tiny", "tiny2"], srv.host) == (0, "copied 'tiny' to 'tiny2'\n", "")
    rc, out, _ = cli(["list"], srv.host)
    ids = {l.split()[0]: l.split()[1] for l in out.splitlines()[1:]}
    assert ids["tiny2:latest"] == ids["tiny:latest"]
    assert cli(["cp", "zz", "x"], srv.host) == (1, "", 'Error: model "zz" not found\n')
    rc, _, err = cli(["cp", "tiny"], srv.host)
    assert rc == 2 and err == "Error: accepts 2 arg(s), received 1\n"
    assert cli(["cp", "tiny", "tiny3"], srv.host)[0] == 0
    assert cli(["rm", "tiny2", "tiny3"], srv.host) == (0, "deleted 'tiny2'\ndeleted 'tiny3'\n", "")
    assert "tiny2" not in cli(["list"], srv.host)[1]
    assert cli(["rm", "nosuch"], srv.host) == (1, "", "Error: model 'nosuch' not found\n")
    rc, _, err = cli(["rm"], srv.host)
    assert rc == 2 and err == "Error: requires at least 1 arg(s), only received 0\n"


@pytest.mark.parametrize("args", [["list"], ["ls"], ["ps"], ["show", "tiny"], ["show", "tiny", "--modelfile"],
                                  ["rm", "tiny"], ["cp", "tiny", "t2"], ["stop", "tiny"]])
def test_no_server(args):
    port = free_port()
    rc, out, err = cli(args, f"127.0.0.1:{port}")
    assert (rc, out, err) == (1, "", "Error: " + NO_SERVER.format(port=port) + "\n")


def test_no_server_default_host_named():
    rc, _, err = cli(["list"], "", {"OLLAMA_HOST": "127.0.0.1:1"})
    assert rc == 1 and err == "Error: " + NO_SERVER.format(port=1) + "\n"


@pytest.mark.parametrize("cmd,use", [("list", "list [PREFIX]"), ("ls", "list [PREFIX]"), ("ps", "ps"),
                                     ("show", "show MODEL"), ("rm", "rm MODEL [MODEL...]"),
                                     ("cp", "cp SOURCE DESTINATION"), ("stop", "stop MODEL")])
def test_help_needs_no_server(cmd, use):
    rc, out, err = cli([cmd, "--help"], "127.0.0.1:1")
    assert rc == 0 and err == ""
    assert f"\nUsage:\n  locallama {use} [flags]\n" in out and "\nEnvironment Variables:\n      LOCALLAMA_HOST " in out


@pytest.mark.parametrize("form", ["http://127.0.0.1:{port}", "'127.0.0.1:{port}'", " \"127.0.0.1:{port}\" ",
                                  "http://127.0.0.1:{port}/"])
def test_host_forms(srv, form):
    rc, out, _ = cli(["ls"], form.format(port=srv.port))
    assert rc == 0 and "tiny:latest" in out


def test_rm_unloads_a_loaded_model(srv):
    assert cli(["cp", "tiny", "tiny4"], srv.host)[0] == 0
    st, _ = srv.json("POST", "/api/generate", {"model": "tiny4", "keep_alive": -1, "stream": False})
    assert st == 200 and "tiny4:latest" in cli(["ps"], srv.host)[1]
    assert cli(["rm", "tiny4"], srv.host) == (0, "deleted 'tiny4'\n", "")
    deadline = time.time() + 5
    while "tiny4:latest" in cli(["ps"], srv.host)[1] and time.time() < deadline:
        time.sleep(0.05)
    assert "tiny4" not in cli(["ps"], srv.host)[1] and "tiny4" not in cli(["ls"], srv.host)[1]


def test_show_system_two_lines_wrapped(srv):
    system = ("word " * 30).strip() + "\nsecond line\n\nthird line"
    st, body = srv.json("POST", "/api/create", {"model": "sys", "from": TINY, "system": system, "stream": False})
    assert st == 200, body
    rc, out, _ = cli(["show", "sys"], srv.host)
    sec = out[out.index("  System\n"):].splitlines()
    assert rc == 0 and [l.rstrip() for l in sec[1:6]] == [
        "    " + ("word " * 20).strip(), "    " + ("word " * 10).strip(), "    second line", "    ...", ""]
    assert cli(["show", "sys", "--system"], srv.host) == (0, system, "")
    assert cli(["rm", "sys"], srv.host)[0] == 0
