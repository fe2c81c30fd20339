"""Pulling from a real registry (ollama-api.md §1.11, §5 D22; ollama-cli.md §13; issue 12).

Debian's `docker-registry` (the reference Docker Registry v2 server) runs on a free loopback
port with filesystem storage in a temporary directory. The test fills it with raw HTTP from a
model our own server created (its manifest and blobs copied as they are, so the registry holds
exactly what Ollama would push), then pulls it into a second server's empty store:

* through `locallama pull HOST:PORT/library/tiny:latest --insecure` and POST /api/pull
  (streamed and not): the model is listed, its blobs are byte-identical, it answers generate;
* through a loopback proxy written here that (a) demands an anonymous Bearer token from a
  WWW-Authenticate challenge, (b) redirects blob GETs to a second path (a storage URL), and
  (c) counts the blob bytes it forwards, so a pull resumed from a half-written partial file
  is seen to fetch fewer bytes;
* the same proxy slowed down: progress advances live; a pull SIGKILLed half way resumes on
  the next server; two pulls at once download each blob once;
* ollama-python's pull(stream=True) iterates our progress objects;
* a blob corrupted in the registry's storage: the pull fails naming that digest and no model
  appears; an unknown name: Ollama's "pull model manifest: file does not exist".

The registry binary is required: when /usr/bin/docker-registry is missing the tests fail with
the install command. Every process is stopped by PID."""
import concurrent.futures
import hashlib
import http.client
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.parse

import pytest

from conftest import BIN
from test_api_native import TINY, Server, free_port

REGISTRY_BIN = "/usr/bin/docker-registry"
MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
# The weights blob of the test model is 1.9 MB, under the 32 MiB a blob needs before it is
# cut: these force 256 KiB parts, 4 in flight (a fixed count: without it the count adapts,
# see test_connections_adapt_to_a_per_connection_cap), so the pulls below run the parallel path.
PART_SIZE = 256 * 1024
PARTS_ENV = {"LOCALLAMA_PULL_PART_SIZE": str(PART_SIZE), "LOCALLAMA_PULL_CONNECTIONS": "4"}


# ---- the registry ---------------------------------------------------------------------------

class Registry:
    def __init__(self, tmp):
        assert os.path.exists(REGISTRY_BIN), (
            f"{REGISTRY_BIN} is missing: install Debian's registry with `apt-get install -y docker-registry`")
        self.port = free_port()
        self.root = tmp / "registry-storage"
        self.root.mkdir()
        cfg = tmp / "registry.yml"
        cfg.write_text("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
                       f"    rootdirectory: {self.root}\n  delete:\n    enabled: true\n"
                       f"http:\n  addr: 127.0.0.1:{self.port}\n")
        self.log = open(tmp / "registry.log", "wb")
        self.proc = subprocess.Popen([REGISTRY_BIN, "serve", str(cfg)], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        while time.time() < deadline:
            assert self.proc.poll() is None, (tmp / "registry.log").read_text()
            try:
                if self.call("GET", "/v2/")[0] == 200:
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("docker-registry did not start")

    def call(self, method, path, body=None, headers=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, dict(r.getheaders()), data

    def put_blob(self, repo, data):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        st, h, _ = self.call("POST", f"/v2/{repo}/blobs/uploads/")
        assert st == 202, st
        loc = urllib.parse.urlsplit(h["Location"])
        path = loc.path + "?" + (loc.query + "&" if loc.query else "") + "digest=" + urllib.parse.quote(digest)
        st, _, body = self.call("PUT", path, data, {"Content-Type": "application/octet-stream",
                                                    "Content-Length": str(len(data))})
        assert st == 201, (st, body)
        return digest

    def blob_file(self, digest):
        hx = digest.split(":")[1]
        return self.root / "docker" / "registry" / "v2" / "blobs" / "sha256" / hx[:2] / hx / "data"

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def store_manifest(store, name, tag="latest"):
    return (store / "manifests" / "registry.ollama.ai" / "library" / name / tag).read_bytes()


def push_from_store(reg, store, name, repo):
    """Copy a model of our store into the registry: every blob, then the manifest bytes."""
    raw = store_manifest(store, name)
    m = json.loads(raw)
    for d in [l["digest"] for l in m["layers"]] + [m["config"]["digest"]]:
        data = (store / "blobs" / d.replace(":", "-")).read_bytes()
        assert reg.put_blob(repo, data) == d
    st, _, body = reg.call("PUT", f"/v2/{repo}/manifests/latest", raw, {"Content-Type": MANIFEST_TYPE})
    assert st == 201, body
    return raw, m


# ---- a proxy: bearer auth, redirects, byte counts ------------------------------------------------

class Proxy:
    """Forwards /v2/ to the registry, but only with the token it hands out at /token, and
    answers blob GETs with a 307 to /storage/<path>, which it forwards and counts."""
    TOKEN = "anon-token-1234"

    def __init__(self, reg_port):
        self.blob_bytes = 0
        self.rate = None              # bytes/s for blob bodies (a slow registry), None: full speed
        self.chunk = 32768            # paced in writes of this many bytes
        self.gets = []                # (digest, Range header or None) of each storage GET
        self.active = {}              # digest -> storage GETs in flight
        self.busy_at_start = []       # (digest, storage GETs of it already in flight) per storage GET
        self.max_active = {}          # digest -> the most in flight at once
        self.lock = threading.Lock()
        self.drop_next = 0            # storage GETs still to cut off half way (a dropped connection)
        self.hold_first = 0           # seconds a storage GET of a blob's first bytes waits before it is served
        self.finished = []            # (digest, Range header) of each storage GET, in the order they ended
        self.tokens_issued = 0
        self.redirects = 0
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
                self.wfile.write(body)

            def do_GET(self):
                u = urllib.parse.urlsplit(self.path)
                if u.path == "/token":
                    q = urllib.parse.parse_qs(u.query)
                    if q.get("service") != ["test-registry"] or not q.get("scope", [""])[0].startswith("repository:"):
                        return self.reply(400, b'{"errors":[{"code":"bad token request"}]}')
                    proxy.tokens_issued += 1
                    return self.reply(200, json.dumps({"token": Proxy.TOKEN}).encode(),
                                      [("Content-Type", "application/json")])
                storage = u.path.startswith("/storage/")
                if not storage and self.headers.get("Authorization") != "Bearer " + Proxy.TOKEN:
                    repo = "/".join(u.path.split("/")[2:4])
                    ch = (f'Bearer realm="http://127.0.0.1:{proxy.port}/token",service="test-registry",'
                          f'scope="repository:{repo}:pull"')
                    return self.reply(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}',
                                      [("WWW-Authenticate", ch), ("Content-Type", "application/json")])
                if "/blobs/" in u.path and not storage:
                    proxy.redirects += 1
                    return self.reply(307, b"", [("Location", "/storage" + self.path)])
                path = self.path[len("/storage"):] if storage else self.path
                fwd = {k: v for k, v in self.headers.items() if k.lower() in ("range", "accept")}
                digest = u.path.rsplit("/", 1)[-1]
                if storage:
                    with proxy.lock:
                        proxy.gets.append((digest, self.headers.get("Range")))
                        proxy.busy_at_start.append((digest, proxy.active.get(digest, 0)))
                        proxy.active[digest] = proxy.active.get(digest, 0) + 1
                        proxy.max_active[digest] = max(proxy.max_active.get(digest, 0), proxy.active[digest])
                rng = self.headers.get("Range") or ""
                if storage and proxy.hold_first and rng.startswith("bytes=0-"):
                    time.sleep(proxy.hold_first)
                try:
                    self.forward(path, fwd, storage)
                finally:
                    if storage:
                        with proxy.lock:
                            proxy.active[digest] -= 1
                            proxy.finished.append((digest, self.headers.get("Range")))

            def forward(self, path, fwd, storage):
                c = http.client.HTTPConnection("127.0.0.1", reg_port, timeout=30)
                c.request("GET", path, headers=fwd)
                r = c.getresponse()
                body = r.read()
                c.close()
                if storage:
                    with proxy.lock:
                        proxy.blob_bytes += len(body)
                hdrs = [(k, v) for k, v in r.getheaders()
                        if k.lower() in ("content-type", "content-range", "docker-content-digest")]
                with proxy.lock:
                    drop = storage and r.status == 206 and proxy.drop_next > 0
                    if drop:
                        proxy.drop_next -= 1
                if drop:                      # promise the whole body, send half, hang up
                    self.send_response(r.status)
                    for k, v in hdrs:
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[:len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                rate = proxy.rate
                if not (storage and rate):
                    return self.reply(r.status, body, hdrs)
                self.send_response(r.status)
                for k, v in hdrs:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                chunk = proxy.chunk
                try:
                    for i in range(0, len(body), chunk):
                        self.wfile.write(body[i:i + chunk])
                        self.wfile.flush()
                        time.sleep(chunk / rate)
                except (BrokenPipeError, ConnectionResetError):   # the killed server's pull
                    self.close_connection = True

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


# ---- fixtures -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("registry")
    reg = Registry(tmp)
    src = dst = proxy = None
    try:
        (tmp / "src").mkdir()
        src = Server(tmp / "src")
        st, body = src.json("POST", "/api/create", {"model": "tiny", "from": TINY, "stream": False})
        assert st == 200, body
        st, body = src.json("POST", "/api/create", {"model": "bad", "from": TINY, "system": "a layer to corrupt",
                                                    "stream": False})
        assert st == 200, body
        store = tmp / "src" / "models"
        raw, m = push_from_store(reg, store, "tiny", "library/tiny")
        bad_raw, bad_m = push_from_store(reg, store, "bad", "library/bad")
        (tmp / "dst").mkdir()
        dst = Server(tmp / "dst", env=PARTS_ENV)
        proxy = Proxy(reg.port)
        yield dict(reg=reg, src_store=store, dst=dst, dst_store=tmp / "dst" / "models", raw=raw, m=m,
                   bad_m=bad_m, proxy=proxy, host=f"127.0.0.1:{reg.port}")
    finally:
        for x in (proxy, dst, src):
            if x:
                x.stop()
        reg.stop()


def tags(srv):
    st, body = srv.json("GET", "/api/tags")
    assert st == 200
    return [x["name"] for x in body["models"]]


def rm(srv, name):
    st, _ = srv.request("DELETE", "/api/delete", {"model": name})
    assert st in (200, 404)


def check_pulled(e, name, model="tiny"):
    """The pulled model: listed, manifest and blobs byte-identical to the source, and it answers."""
    assert name in tags(e["dst"])
    host, ns_model = name.split("/", 1)
    ns, mt = ns_model.split("/")
    mname, tag = mt.split(":")
    got = (e["dst_store"] / "manifests" / host / ns / mname / tag).read_bytes()
    assert got == e["raw"]
    for d in [l["digest"] for l in e["m"]["layers"]] + [e["m"]["config"]["digest"]]:
        f = d.replace(":", "-")
        assert (e["dst_store"] / "blobs" / f).read_bytes() == (e["src_store"] / "blobs" / f).read_bytes()
        assert not (e["dst_store"] / "blobs" / (f + "-partial")).exists()
    st, body = e["dst"].json("POST", "/api/generate", {"model": name, "prompt": "Hello", "stream": False,
                                                        "options": {"num_predict": 4, "temperature": 0}})
    assert st == 200, body
    assert body["done"] is True and body["eval_count"] >= 1


def layout(size, part=PART_SIZE, conns=4):
    """The parts pull.c cuts a blob into (parts_create): above one part size, the first `conns`
    ramp up (part/conns, 2 part/conns, …, part), then whole parts, the last one shorter."""
    if size <= part:
        return [(0, size)]
    out, off, i = [], 0, 0
    while off < size:
        n = part if i + 1 >= conns else part // conns * (i + 1)
        n = min(n, size - off)
        out.append((off, n))
        off += n
        i += 1
    return out


def partial_done(blobs, digest):
    """Bytes a killed or stopped pull of digest has kept: the "Done" counts of its part files
    (sha256-<hex>-partial-<n>), or the -partial's size when it has none (one stream)."""
    base = blobs / (digest.replace(":", "-") + "-partial")
    parts = sorted(blobs.glob(base.name + "-*"))
    if not parts:
        return base.stat().st_size if base.exists() else 0
    return sum(json.loads(p.read_bytes())["Done"] for p in parts)


def fragments(blobs, digest):
    return sorted(p.name for p in blobs.glob(digest.replace(":", "-") + "-partial*"))


def push_raw(reg, repo, layers, tag="latest"):
    """Push raw layers [(mediaType, bytes)] and a small config as repo:tag; the manifest."""
    cfg = json.dumps({"model_format": "gguf", "model_family": "test"}).encode()
    ents = [{"mediaType": mt, "digest": reg.put_blob(repo, data), "size": len(data)} for mt, data in layers]
    m = {"schemaVersion": 2, "mediaType": MANIFEST_TYPE,
         "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                    "digest": reg.put_blob(repo, cfg), "size": len(cfg)},
         "layers": ents}
    st, _, body = reg.call("PUT", f"/v2/{repo}/manifests/{tag}", json.dumps(m).encode(),
                           {"Content-Type": MANIFEST_TYPE})
    assert st == 201, body
    return m


def model_blob(m):
    return next(l for l in m["layers"] if l["mediaType"] == "application/vnd.ollama.image.model")


# ---- tests --------------------------------------------------------------------------------------

def test_cli_pull_insecure(env):
    name = f"{env['host']}/library/tiny:latest"
    e = dict(os.environ, LOCALLAMA_HOST=f"127.0.0.1:{env['dst'].port}")
    p = subprocess.run([BIN, "pull", name, "--insecure"], env=e, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    lines = p.stderr.splitlines()
    assert lines[0] == "pulling manifest" and lines[-1] == "success", p.stderr
    assert "verifying sha256 digest" in lines and "writing manifest" in lines
    # not a TTY: one plain line per blob, once, when it is complete
    short = model_blob(env["m"])["digest"][7:19]
    assert sum(1 for l in lines if l.startswith(f"pulling {short}: 100%")) == 1, p.stderr
    assert "\x1b" not in p.stderr and p.stdout == ""
    # one line per status and per layer (each once): manifest, the layers and config, 3 more
    assert len(lines) == 1 + len(env["m"]["layers"]) + 1 + 3, p.stderr
    check_pulled(env, name)
    rm(env["dst"], name)
    p = subprocess.run([BIN, "pull", "-q", name, "--insecure"], env=e, capture_output=True, text=True, timeout=120)
    assert (p.returncode, p.stdout, p.stderr) == (0, "", "")
    check_pulled(env, name)
    rm(env["dst"], name)
    p = subprocess.run([BIN, "pull", "--quiet", f"{env['host']}/library/nosuchmodel", "--insecure"], env=e,
                       capture_output=True, text=True, timeout=60)
    assert (p.returncode, p.stdout, p.stderr) == (1, "", "Error: pull model manifest: file does not exist\n")


def test_cli_pull_on_a_terminal(env):
    """stderr on a terminal: Ollama's display (§13.1, §13.2): cursor hidden then shown, lines
    redrawn in place, a finished bar per layer with its size, the spinner lines."""
    import pty
    name = f"{env['host']}/library/tiny:latest"
    e = dict(os.environ, LOCALLAMA_HOST=f"127.0.0.1:{env['dst'].port}")
    master, slave = pty.openpty()
    p = subprocess.Popen([BIN, "pull", name, "--insecure"], env=e, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    assert p.wait(60) == 0
    os.close(master)
    text = out.decode()
    assert text.startswith("\x1b[?25l") and text.rstrip().endswith("\x1b[?25h"), repr(text[:80])
    assert "\x1b[?2026h" in text and "\x1b[1G" in text
    last = text.rsplit("\x1b[1G", 1)[1]           # the final redraw
    rows = [r.split("\x1b[K")[0] for r in last.split("\n") if "\x1b[K" in r]
    mb = model_blob(env["m"])
    assert rows[0] == "pulling manifest "
    bar = next(r for r in rows if r.startswith(f"pulling {mb['digest'][7:19]}: 100% \u2595"))
    assert 1e6 <= mb["size"] < 1e7                 # HumanBytes: one decimal, 6 columns
    assert bar.endswith(f"\u258f {mb['size'] / 1e6:.1f} MB" + " " * 25), repr(bar)
    assert len(bar) == 79                           # 80 columns (no size on a pty) less one
    assert rows[-3:] == ["verifying sha256 digest ", "writing manifest ", "success "], rows
    check_pulled(env, name)
    rm(env["dst"], name)


def test_api_pull_streamed_and_not(env):
    name = f"{env['host']}/library/tiny:latest"
    lines = env["dst"].lines("/api/pull", {"model": name, "insecure": True})
    assert lines[0] == {"status": "pulling manifest"}
    assert lines[-3:] == [{"status": "verifying sha256 digest"}, {"status": "writing manifest"},
                          {"status": "success"}]
    mb = model_blob(env["m"])
    prog = [l for l in lines if l.get("digest") == mb["digest"]]
    assert prog and all(l["status"] == "pulling " + mb["digest"][7:19] and l["total"] == mb["size"] for l in prog)
    assert prog[-1]["completed"] == mb["size"]
    assert all("completed" not in l or l["completed"] > 0 for l in prog)   # omitted while 0
    check_pulled(env, name)
    # again, everything present: each blob reports completed = total at once
    st, body = env["dst"].json("POST", "/api/pull", {"name": name, "insecure": True, "stream": False})
    assert st == 200 and body == {"status": "success"}
    rm(env["dst"], name)
    st, body = env["dst"].json("POST", "/api/pull", {"name": name, "insecure": True, "stream": False})
    assert st == 200 and body == {"status": "success"}
    check_pulled(env, name)
    rm(env["dst"], name)


def test_pull_plain_http_needs_insecure(env):
    st, body = env["dst"].json("POST", "/api/pull", {"model": f"http://{env['host']}/library/tiny", "stream": False})
    assert st == 400 and body == {"error": "insecure protocol http"}


def test_pull_bearer_token_redirect_and_resume(env):
    px = env["proxy"]
    name = f"127.0.0.1:{px.port}/library/tiny:latest"
    mb = model_blob(env["m"])
    total_blob_bytes = sum(l["size"] for l in env["m"]["layers"]) + env["m"]["config"]["size"]
    px.blob_bytes = 0
    st, body = env["dst"].json("POST", "/api/pull", {"model": name, "insecure": True, "stream": False})
    assert st == 200, body
    assert px.tokens_issued >= 1 and px.redirects >= 1
    full = px.blob_bytes
    assert full == total_blob_bytes
    check_pulled(env, name)
    rm(env["dst"], name)
    # a half-downloaded model blob where the pull keeps partials: only the rest is fetched
    data = (env["src_store"] / "blobs" / mb["digest"].replace(":", "-")).read_bytes()
    half = len(data) // 2
    partial = env["dst_store"] / "blobs" / (mb["digest"].replace(":", "-") + "-partial")
    partial.write_bytes(data[:half])
    px.blob_bytes = 0
    st, body = env["dst"].json("POST", "/api/pull", {"model": name, "insecure": True, "stream": False})
    assert st == 200, body
    print(f"resume: first pull fetched {full} blob bytes; with a {half}-byte partial, {px.blob_bytes}")
    assert px.blob_bytes == full - half, (px.blob_bytes, full, half)
    check_pulled(env, name)
    rm(env["dst"], name)


def test_pull_corrupt_blob_fails_naming_digest(env):
    reg = env["reg"]
    sysl = next(l for l in env["bad_m"]["layers"] if l["mediaType"] == "application/vnd.ollama.image.system")
    f = reg.blob_file(sysl["digest"])
    data = bytearray(f.read_bytes())
    data[0] ^= 0x20
    f.write_bytes(bytes(data))
    name = f"{env['host']}/library/bad:latest"
    lines = env["dst"].lines("/api/pull", {"model": name, "insecure": True})
    assert lines[0] == {"status": "pulling manifest"}
    assert "error" in lines[-1] and sysl["digest"] in lines[-1]["error"], lines[-1]
    assert "digest mismatch" in lines[-1]["error"]
    assert not any("bad" in t for t in tags(env["dst"]))
    assert not (env["dst_store"] / "blobs" / (sysl["digest"].replace(":", "-") + "-partial")).exists()
    assert not (env["dst_store"] / "blobs" / sysl["digest"].replace(":", "-")).exists()
    st, body = env["dst"].json("POST", "/api/pull", {"model": name, "insecure": True, "stream": False})
    assert st == 500 and sysl["digest"] in body["error"]


def test_pull_checks_free_disk_space(env):
    """A manifest whose layer claims 1 PiB (the registry holds a 4 KiB blob under that digest):
    the pull stops before fetching or allocating anything, with an error that names the space
    it needs and the blob; it leaves no fragment and no model."""
    reg = env["reg"]
    data = os.urandom(4096)
    m = push_raw(reg, "library/huge", [("application/vnd.ollama.image.model", data)])
    m["layers"][0]["size"] = 1 << 50
    st, _, body = reg.call("PUT", "/v2/library/huge/manifests/latest", json.dumps(m).encode(),
                           {"Content-Type": MANIFEST_TYPE})
    assert st == 201, body
    dg = m["layers"][0]["digest"]
    name = f"{env['host']}/library/huge:latest"
    lines = env["dst"].lines("/api/pull", {"model": name, "insecure": True})
    err = lines[-1].get("error", "")
    assert err.startswith(f"insufficient disk space: need {1 << 50} bytes for {dg}"), lines
    assert not any("huge" in t for t in tags(env["dst"]))
    assert fragments(env["dst_store"] / "blobs", dg) == []
    assert not (env["dst_store"] / "blobs" / dg.replace(":", "-")).exists()


def test_pull_unknown_model(env):
    name = f"{env['host']}/library/nosuchmodel:latest"
    lines = env["dst"].lines("/api/pull", {"model": name, "insecure": True})
    assert lines == [{"status": "pulling manifest"}, {"error": "pull model manifest: file does not exist"}]
    st, body = env["dst"].json("POST", "/api/pull", {"model": name, "insecure": True, "stream": False})
    assert st == 500 and body == {"error": "pull model manifest: file does not exist"}
    e = dict(os.environ, LOCALLAMA_HOST=f"127.0.0.1:{env['dst'].port}")
    p = subprocess.run([BIN, "pull", name, "--insecure"], env=e, capture_output=True, text=True, timeout=60)
    assert p.returncode == 1
    assert p.stderr.splitlines()[-1] == "Error: pull model manifest: file does not exist"


def test_slow_registry_progress_advances(env):
    """Through a proxy that sends blob bodies at ~2 MB/s, the model blob's progress is reported
    several times with growing `completed` before it is complete (live, not at the end)."""
    px = env["proxy"]
    name = f"127.0.0.1:{px.port}/library/tiny:latest"
    mb = model_blob(env["m"])
    # a failed pull of an earlier test may have left the (valid, unreferenced) weights blob
    assert name not in tags(env["dst"])
    (env["dst_store"] / "blobs" / mb["digest"].replace(":", "-")).unlink(missing_ok=True)
    px.rate = 2_000_000
    try:
        lines = env["dst"].lines("/api/pull", {"model": name, "insecure": True})
    finally:
        px.rate = None
    assert lines[-1] == {"status": "success"}
    done = [l.get("completed", 0) for l in lines if l.get("digest") == mb["digest"]]
    partial = [c for c in done if 0 < c < mb["size"]]
    assert len(set(partial)) >= 3, done
    assert done == sorted(done) and done[-1] == mb["size"]
    check_pulled(env, name)
    rm(env["dst"], name)


def test_ollama_python_pull_stream(env):
    """ollama-python's pull(stream=True) iterates our progress objects; stream=False gets success."""
    ollama = pytest.importorskip("ollama")
    c = ollama.Client(host=f"http://127.0.0.1:{env['dst'].port}")
    name = f"{env['host']}/library/tiny:latest"
    parts = list(c.pull(name, insecure=True, stream=True))
    assert parts[0].status == "pulling manifest" and parts[-1].status == "success"
    mb = model_blob(env["m"])
    mine = [p for p in parts if p.digest == mb["digest"]]
    assert mine and mine[-1].total == mb["size"] and mine[-1].completed == mb["size"]
    check_pulled(env, name)
    assert c.pull(name, insecure=True).status == "success"
    rm(env["dst"], name)
    with pytest.raises(ollama.ResponseError) as ei:
        list(c.pull(f"{env['host']}/library/nosuchmodel", insecure=True, stream=True))
    assert "pull model manifest: file does not exist" in str(ei.value)


@pytest.mark.parametrize("sync,conns", [("1", "4"), ("0", "4"), ("1", "1")])
def test_pull_killed_half_way_resumes(env, tmp_path, sync, conns):
    """SIGKILL the server in the middle of a slow multi-part pull; a new server on the same
    store pulls again, fetches only what the parts lack (counted through the proxy), and ends
    with a verified model and no fragments. Also without the flush (LOCALLAMA_PULL_SYNC=0):
    a killed process loses nothing the kernel already holds. And on one connection, where one
    GET runs through all the parts (each still counted in its own file)."""
    px = env["proxy"]
    name = f"127.0.0.1:{px.port}/library/tiny:latest"
    mb = model_blob(env["m"])
    senv = dict(PARTS_ENV, LOCALLAMA_PULL_SYNC=sync, LOCALLAMA_PULL_CONNECTIONS=conns)
    srv = Server(tmp_path, env=senv)
    px.rate = 250_000                              # per connection; 4 in flight
    try:
        c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
        c.request("POST", "/api/pull", body=json.dumps({"model": name, "insecure": True}),
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        assert r.status == 200
        seen = 0
        while seen < mb["size"] // 2:
            line = r.readline()
            assert line, "stream ended before half of the weights arrived"
            o = json.loads(line)
            if o.get("digest") == mb["digest"]:
                seen = o.get("completed", 0)
        os.kill(srv.proc.pid, signal.SIGKILL)
        srv.proc.wait()
        c.close()
    finally:
        px.rate = None
        srv.stop()
    blobs = tmp_path / "models" / "blobs"
    kept = partial_done(blobs, mb["digest"])
    n_parts = len(layout(mb["size"], conns=int(conns)))
    assert fragments(blobs, mb["digest"]) == sorted(
        [mb["digest"].replace(":", "-") + "-partial"] +
        [mb["digest"].replace(":", "-") + f"-partial-{i}" for i in range(n_parts)])
    # counts are saved when a part ends and about once a second: what arrived since is fetched again
    assert 0 < kept < mb["size"], kept
    assert not (blobs / mb["digest"].replace(":", "-")).exists()
    srv = Server(tmp_path, env=senv)
    try:
        assert tags(srv) == []                     # nothing half-pulled is listed
        px.blob_bytes = 0
        st, body = srv.json("POST", "/api/pull", {"model": name, "insecure": True, "stream": False})
        assert st == 200, body
        total = sum(l["size"] for l in env["m"]["layers"]) + env["m"]["config"]["size"]
        print(f"killed at {kept} of {mb['size']} weight bytes (in {n_parts} parts); "
              f"the next pull fetched {px.blob_bytes} of {total} blob bytes")
        assert px.blob_bytes == total - kept, (px.blob_bytes, total, kept)
        assert fragments(blobs, mb["digest"]) == []
        data = (blobs / mb["digest"].replace(":", "-")).read_bytes()
        assert "sha256:" + hashlib.sha256(data).hexdigest() == mb["digest"]
        assert name in tags(srv)
    finally:
        srv.stop()


def test_parallel_ranged_parts(env):
    """The weights blob arrives as several Range GETs that together cover it exactly, several
    of them in flight at once, each part written where it belongs (the blob verifies)."""
    px = env["proxy"]
    name = f"127.0.0.1:{px.port}/library/tiny:latest"
    mb = model_blob(env["m"])
    assert name not in tags(env["dst"])
    (env["dst_store"] / "blobs" / mb["digest"].replace(":", "-")).unlink(missing_ok=True)
    px.gets.clear()
    px.max_active.clear()
    px.rate = 500_000
    try:
        lines = env["dst"].lines("/api/pull", {"model": name, "insecure": True})
    finally:
        px.rate = None
    assert lines[-1] == {"status": "success"}
    ranges = sorted(tuple(int(x) for x in r[len("bytes="):].split("-"))
                    for d, r in px.gets if d == mb["digest"])
    assert ranges == [(o, o + n - 1) for o, n in layout(mb["size"])], ranges
    assert len(ranges) > 4
    assert px.max_active[mb["digest"]] == 4, px.max_active
    done = [l["completed"] for l in lines if l.get("digest") == mb["digest"] and "completed" in l]
    assert done == sorted(done) and done[-1] == mb["size"] and len(set(done)) >= 3
    check_pulled(env, name)
    assert fragments(env["dst_store"] / "blobs", mb["digest"]) == []
    rm(env["dst"], name)


def test_corrupt_multipart_blob(env):
    """A blob pulled in parts whose bytes do not match its digest: the pull fails naming it,
    and neither the partial nor its part files nor a model remain."""
    reg = env["reg"]
    data = os.urandom(5 * PART_SIZE + 1234)
    m = push_raw(reg, "library/corrupt", [("application/vnd.ollama.image.model", data)])
    dg = m["layers"][0]["digest"]
    f = reg.blob_file(dg)
    bad = bytearray(f.read_bytes())
    bad[3 * PART_SIZE + 7] ^= 1                    # inside the fourth part
    f.write_bytes(bytes(bad))
    name = f"{env['host']}/library/corrupt:latest"
    lines = env["dst"].lines("/api/pull", {"model": name, "insecure": True})
    assert lines[-1] == {"error": f"digest mismatch, file must be downloaded again: {dg}"}, lines[-1]
    blobs = env["dst_store"] / "blobs"
    assert fragments(blobs, dg) == [] and not (blobs / dg.replace(":", "-")).exists()
    assert not any("corrupt" in t for t in tags(env["dst"]))


def test_repull_of_moved_tag_removes_old_layers(env, tmp_path):
    """The registry's tag moves to a manifest with another weights layer: the next pull of the
    name removes the old layer nothing references any more ("removing unused layers") and keeps
    the shared one; with OLLAMA_NOPRUNE the old layer stays."""
    reg = env["reg"]
    shared = ("application/vnd.ollama.image.template", b"{{ .Prompt }} shared")
    old = ("application/vnd.ollama.image.model", os.urandom(3 * PART_SIZE))
    new = ("application/vnd.ollama.image.model", os.urandom(2 * PART_SIZE + 5))
    name = f"{env['host']}/library/moving:latest"
    keep = Server(tmp_path, env=dict(PARTS_ENV, OLLAMA_NOPRUNE="1"))
    try:
        for srv, store in ((env["dst"], env["dst_store"]), (keep, tmp_path / "models")):
            m1 = push_raw(reg, "library/moving", [old, shared])
            lines = srv.lines("/api/pull", {"model": name, "insecure": True})
            assert lines[-1] == {"status": "success"}
            assert {"status": "removing unused layers"} not in lines
            m2 = push_raw(reg, "library/moving", [new, shared])
            lines = srv.lines("/api/pull", {"model": name, "insecure": True})
            assert lines[-1] == {"status": "success"}
            blob = lambda d: store / "blobs" / d.replace(":", "-")
            assert blob(m2["layers"][0]["digest"]).exists() and blob(m2["layers"][1]["digest"]).exists()
            assert blob(m1["layers"][1]["digest"]) == blob(m2["layers"][1]["digest"])
            if srv is keep:
                assert {"status": "removing unused layers"} not in lines
                assert blob(m1["layers"][0]["digest"]).exists()
            else:
                assert lines[-2:] == [{"status": "removing unused layers"}, {"status": "success"}], lines[-4:]
                assert not blob(m1["layers"][0]["digest"]).exists()
            rm(srv, name)
    finally:
        keep.stop()


def test_run_pulls_a_missing_model(env):
    """`locallama run MODEL PROMPT` when the server lacks MODEL: pulled first with pull's
    progress (clean, not a TTY), then answered; an unknown model: Ollama's error, exit 1."""
    name = f"{env['host']}/library/tiny:latest"
    assert name not in tags(env["dst"])
    e = dict(os.environ, LOCALLAMA_HOST=f"127.0.0.1:{env['dst'].port}")
    p = subprocess.run([BIN, "run", name, "Hello", "--insecure", "--num-predict", "4", "--temperature", "0"],
                       env=e, capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stderr
    lines = p.stderr.splitlines()
    assert lines[0] == "pulling manifest" and "success" in lines, p.stderr
    assert "\x1b" not in p.stderr
    assert p.stdout.endswith("\n\n") and len(p.stdout) > 2
    check_pulled(env, name)
    rm(env["dst"], name)
    p = subprocess.run([BIN, "run", f"{env['host']}/library/nosuchmodel", "Hello", "--insecure"],
                       env=e, capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and p.stdout == ""
    assert p.stderr.splitlines() == ["pulling manifest", "Error: pull model manifest: file does not exist"]


def test_two_pulls_at_once_download_each_blob_once(env):
    px = env["proxy"]
    name = f"127.0.0.1:{px.port}/library/tiny:latest"
    mb = model_blob(env["m"])
    assert name not in tags(env["dst"])
    (env["dst_store"] / "blobs" / mb["digest"].replace(":", "-")).unlink(missing_ok=True)
    total = sum(l["size"] for l in env["m"]["layers"]) + env["m"]["config"]["size"]
    px.blob_bytes = 0
    px.rate = 2_000_000
    try:
        with concurrent.futures.ThreadPoolExecutor(2) as ex:
            fut = [ex.submit(env["dst"].lines, "/api/pull", {"model": name, "insecure": True}) for _ in range(2)]
            results = [f.result() for f in fut]
    finally:
        px.rate = None
    for lines in results:
        assert lines[-1] == {"status": "success"}, lines[-1]
    assert px.blob_bytes == total, (px.blob_bytes, total)
    check_pulled(env, name)
    rm(env["dst"], name)


def test_client_gone_stops_the_pull(env):
    """A streaming client that hangs up stops the download (the partial stops growing, no model
    appears); the next pull finishes it."""
    px = env["proxy"]
    name = f"127.0.0.1:{px.port}/library/tiny:latest"
    mb = model_blob(env["m"])
    assert name not in tags(env["dst"])
    (env["dst_store"] / "blobs" / mb["digest"].replace(":", "-")).unlink(missing_ok=True)
    for f in fragments(env["dst_store"] / "blobs", mb["digest"]):
        (env["dst_store"] / "blobs" / f).unlink()
    px.rate = 100_000
    try:
        c = http.client.HTTPConnection("127.0.0.1", env["dst"].port, timeout=60)
        c.request("POST", "/api/pull", body=json.dumps({"model": name, "insecure": True}),
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        while json.loads(r.readline()).get("completed", 0) == 0:
            pass
        c.close()
        time.sleep(1.5)
        blobs = env["dst_store"] / "blobs"
        size = partial_done(blobs, mb["digest"])
        time.sleep(1.0)
        assert partial_done(blobs, mb["digest"]) == size < mb["size"]
        assert name not in tags(env["dst"])
    finally:
        px.rate = None
    st, body = env["dst"].json("POST", "/api/pull", {"model": name, "insecure": True, "stream": False})
    assert st == 200, body
    check_pulled(env, name)
    rm(env["dst"], name)


def test_startup_prune_of_pull_fragments(tmp_path):
    """§4.9, S16: at start-up the server removes pull fragments older than the grace period
    (24 h) and keeps younger ones, which a pull then resumes; OLLAMA_NOPRUNE keeps all."""
    blobs = tmp_path / "models" / "blobs"
    blobs.mkdir(parents=True)
    old, young = "sha256-" + "a" * 64, "sha256-" + "b" * 64
    names = [n + s for n in (old, young) for s in ("-partial", "-partial-0", "-partial-1")]
    day_ago = time.time() - 25 * 3600
    for nm in names:
        (blobs / nm).write_bytes(b"x")
        if nm.startswith(old):
            os.utime(blobs / nm, (day_ago, day_ago))
    srv = Server(tmp_path, env={"OLLAMA_NOPRUNE": "1"})
    srv.stop()
    assert sorted(p.name for p in blobs.iterdir()) == sorted(names)
    srv = Server(tmp_path)
    srv.stop()
    assert sorted(p.name for p in blobs.iterdir()) == sorted(n for n in names if n.startswith(young))


def test_one_connection_asks_once_for_all_parts(env, tmp_path):
    """With one connection the parts are fetched by one GET from the first byte to the last,
    its bytes counted into each part in turn. The proxy cuts that GET off half way: the next
    GETs ask for exactly the rest, one starting where the bytes end; the blob verifies."""
    px = env["proxy"]
    name = f"127.0.0.1:{px.port}/library/tiny:latest"
    mb = model_blob(env["m"])
    size = mb["size"]
    assert len(layout(size, conns=1)) > 4
    srv = Server(tmp_path, env=dict(PARTS_ENV, LOCALLAMA_PULL_CONNECTIONS="1"))
    blob = tmp_path / "models" / "blobs" / mb["digest"].replace(":", "-")
    try:
        for drop in (0, 1):
            px.gets.clear()
            px.drop_next = drop
            try:
                st, body = srv.json("POST", "/api/pull", {"model": name, "insecure": True, "stream": False})
            finally:
                px.drop_next = 0
            assert st == 200, body
            got = [r for d, r in px.gets if d == mb["digest"]]
            assert got[0] == f"bytes=0-{size - 1}", got
            # after the cut: the rest, from where the bytes end; the part the cut fell in waits
            # its retry delay, so the fresh parts after it may be asked for (in one GET) first
            rest = sorted(tuple(int(x) for x in r[len("bytes="):].split("-")) for r in got[1:])
            assert len(rest) == 2 * drop, got
            if drop:
                assert rest[0][0] == size // 2 and rest[-1][1] == size - 1, got
                assert rest[1][0] == rest[0][1] + 1 and rest[1][0] % PART_SIZE == 0, got
            assert "sha256:" + hashlib.sha256(blob.read_bytes()).hexdigest() == mb["digest"]
            assert fragments(blob.parent, mb["digest"]) == []
            st, _ = srv.request("DELETE", "/api/delete", {"model": name})
            assert st == 200 and not blob.exists()
    finally:
        srv.stop()


def test_dropped_connections_resume_their_parts(env):
    """Three part GETs are cut off half way by the proxy: each part is asked for again from
    where its bytes end (a Range starting inside it), and the blob verifies."""
    px = env["proxy"]
    name = f"127.0.0.1:{px.port}/library/tiny:latest"
    mb = model_blob(env["m"])
    assert name not in tags(env["dst"])
    (env["dst_store"] / "blobs" / mb["digest"].replace(":", "-")).unlink(missing_ok=True)
    px.gets.clear()
    px.drop_next = 3
    try:
        st, body = env["dst"].json("POST", "/api/pull", {"model": name, "insecure": True, "stream": False})
    finally:
        px.drop_next = 0
    assert st == 200, body
    starts = {o for o, _ in layout(mb["size"])}
    got = [int(r[len("bytes="):].split("-")[0]) for d, r in px.gets if d == mb["digest"] and r]
    resumed = [g for g in got if g not in starts]
    assert len(resumed) == 3, (got, sorted(starts))
    check_pulled(env, name)
    rm(env["dst"], name)


def test_connections_adapt_to_a_per_connection_cap(env, tmp_path):
    """Without LOCALLAMA_PULL_CONNECTIONS the pull starts with one connection, whose GET asks
    for the whole blob (the parts, in the layout of 8 connections, one after another), and
    doubles the count while the doubled count gets 1.5x the rate: through a cap of 250 KB/s
    per connection the first doubling cuts that GET short at the end of the part it is in and
    the count grows to 4 or more at once (8 at most). Both at full speed and capped, every GET
    starts at a part's first byte, no part is asked for twice, each GET's Range reaches the
    next one's start (the last one's the blob's end), and the blob verifies. (Whether a fast
    source stays at one is timing; bench/pull_speed.py shows it, the server's log line names
    the counts it measured.)"""
    px = env["proxy"]
    name = f"127.0.0.1:{px.port}/library/tiny:latest"
    mb = model_blob(env["m"])
    srv = Server(tmp_path, env={"LOCALLAMA_PULL_PART_SIZE": str(PART_SIZE)})
    blob = tmp_path / "models" / "blobs" / mb["digest"].replace(":", "-")
    try:
        for rate in (None, 250_000):
            px.gets.clear()
            px.max_active.clear()
            px.busy_at_start.clear()
            px.rate, px.chunk = rate, 4096     # small writes: the rate is smooth at the probe's scale
            try:
                st, body = srv.json("POST", "/api/pull", {"model": name, "insecure": True, "stream": False})
            finally:
                px.rate, px.chunk = None, 32768
            assert st == 200, body
            asked = [tuple(int(x) for x in r[len("bytes="):].split("-"))
                     for d, r in px.gets if d == mb["digest"]]
            ranges = sorted(asked)
            starts = [o for o, _ in layout(mb["size"], conns=8)]
            assert asked[0] == (0, mb["size"] - 1), asked          # the first GET: everything
            assert len({a for a, _ in ranges}) == len(ranges), ranges
            assert all(a in starts for a, _ in ranges), (ranges, starts)
            assert all(e >= nxt - 1 for (_, e), (nxt, _) in zip(ranges, ranges[1:])), ranges
            assert ranges[-1][1] == mb["size"] - 1, ranges
            data = blob.read_bytes()
            assert "sha256:" + hashlib.sha256(data).hexdigest() == mb["digest"]
            busy = [n for d, n in px.busy_at_start if d == mb["digest"]]
            assert busy[0] == 0, busy
            if rate:
                assert len(ranges) > 4, ranges                     # the first GET was cut
                assert 4 <= px.max_active[mb["digest"]] <= 8, px.max_active
            st, _ = srv.request("DELETE", "/api/delete", {"model": name})
            assert st == 200 and not blob.exists()
    finally:
        srv.stop()


def test_parts_ending_out_of_order_verify_and_corruption_is_refused(env, tmp_path):
    """A 66 MiB blob in 8 MiB parts, 4 at a time, whose first part the proxy holds back 1.5 s:
    later parts end first, so the hash (which follows the finished prefix, reading the partial
    in 64 MiB mappings) has most of the blob to catch up on when the first part lands, across a
    mapping's end; the pull verifies and the blob is byte-identical. Then one byte just past
    64 MiB is flipped in the registry's storage: the next pull is refused naming the digest,
    leaving no blob, fragment or model."""
    reg, px = env["reg"], env["proxy"]
    data = os.urandom((66 << 20) + 4321)
    m = push_raw(reg, "library/ooo", [("application/vnd.ollama.image.model", data)])
    dg = m["layers"][0]["digest"]
    name = f"127.0.0.1:{px.port}/library/ooo:latest"
    part = 8 << 20
    srv = Server(tmp_path, env={"LOCALLAMA_PULL_PART_SIZE": str(part), "LOCALLAMA_PULL_CONNECTIONS": "4"})
    blobs = tmp_path / "models" / "blobs"
    try:
        px.finished.clear()
        px.hold_first = 1.5
        try:
            st, body = srv.json("POST", "/api/pull", {"model": name, "insecure": True, "stream": False})
        finally:
            px.hold_first = 0
        assert st == 200, body
        ended = [r for d, r in px.finished if d == dg]
        assert sorted(ended, key=lambda r: int(r[len("bytes="):].split("-")[0])) == \
            [f"bytes={o}-{o + n - 1}" for o, n in layout(len(data), part=part)]
        first = ended.index(f"bytes=0-{part // 4 - 1}")
        assert first >= 3, ended                   # at least the three parts beside it ended before it
        assert (blobs / dg.replace(":", "-")).read_bytes() == data
        assert fragments(blobs, dg) == []
        assert name in tags(srv)
        st, _ = srv.request("DELETE", "/api/delete", {"model": name})
        assert st == 200 and not (blobs / dg.replace(":", "-")).exists()

        f = reg.blob_file(dg)
        bad = bytearray(data)
        bad[(64 << 20) + 3] ^= 0x40
        f.write_bytes(bytes(bad))
        lines = srv.lines("/api/pull", {"model": name, "insecure": True})
        assert lines[-1] == {"error": f"digest mismatch, file must be downloaded again: {dg}"}, lines[-1]
        assert fragments(blobs, dg) == [] and not (blobs / dg.replace(":", "-")).exists()
        assert name not in tags(srv)
    finally:
        srv.stop()
