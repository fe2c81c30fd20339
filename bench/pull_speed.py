#!/usr/bin/env python3
"""Pull throughput (issue 12): `locallama pull` of a 1 GB blob from a loopback Docker registry
against `curl -o` of the same blob URL, then parallel ranged parts against one connection
through a loopback proxy that limits EACH connection to 20 MB/s (as CDNs cap connections).

    bench/pull_speed.py [--size-mb 1024] [--rounds 2] [--rate-mb 20] [--bin build/locallama] [--no-throttle]

Setup (all on 127.0.0.1, in a temporary directory deleted at the end): Debian's
docker-registry with filesystem storage; a random blob of --size-mb MiB pushed raw (POST, then
PUT with the digest) with a tiny config under library/big:latest; three `locallama serve`
processes with empty stores, one as shipped (the connection count adapts, 1 to 8), one with
LOCALLAMA_PULL_CONNECTIONS=1 (one connection at a time, the baseline) and one with
LOCALLAMA_PULL_SYNC=0 (no flush before the rename, as Ollama); a TCP proxy (this script, a thread per connection) that
paces registry-to-client bytes of each connection to --rate-mb MB/s.

What is timed (wall clock, medians over --rounds interleaved runs, A B A B):
  1. `locallama pull HOST/library/big --insecure -q` (manifest, the blob in parts, SHA-256,
     fdatasync, rename, manifest write; the model is removed again after each run, untimed,
     which deletes the blob) vs `curl -s -o FILE http://HOST/v2/library/big/blobs/sha256:…`
     (the file deleted after, untimed), and vs the same curl followed by fdatasync of FILE
     (what the pull guarantees before its rename: the blob is on disk), and vs the disk's own
     write rate in the same filesystem (`dd if=/dev/zero bs=1M conv=fdatasync`). A verified
     durable pull cannot end before the disk has the bytes, so its limit is
     min(curl -o rate, dd rate); the pull's share of that limit is printed.
  2. through the proxy: the shipped server (parts in parallel) vs the one-connection server.
The registry's file stays in the page cache across runs; both sides see the same cache. Before
each timed run the script touches and frees 1.5x the blob's size of memory (settle(): on a VM
whose balloon takes back idle free memory, a run after an idle gap pays the hypervisor to fault
its page cache in again; --no-settle skips it).

A verifying pull does all that curl's transfer makes the machine do (the registry serving, the
kernel, receiving into the page cache) and the SHA-256 of the blob besides, so on a machine
with few CPUs, where the registry runs too, it cannot end before (machine CPU seconds of the
curl run + blob size / the best SHA-256 rate here) / number of CPUs: the CPU floor. The script
prints that floor, the most a verifying client can reach relative to curl on this machine,
and the share of the floor the pull reaches; for the durable pull the floor counts the CPU of
curl -o + fdatasync instead (dd's rate is printed beside it, not counted: the pull writes back
while it downloads, dd only after its last write).
The load average and the CPU time of other processes are printed beside each figure, since
other work on the machine moves them, and so are the CPU seconds the registry, our server and
the commands run (curl, dd, the pull client) spent on it: on a busy machine the wall-clock
figures wander, the CPU seconds much less. --no-throttle skips part 2 (about a minute a round).
"""
import argparse
import hashlib
import http.client
import json
import resource
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
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REGISTRY_BIN = "/usr/bin/docker-registry"
MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, proc, what):
    deadline = time.time() + 20
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{what} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"{what} did not start")


def stop(proc):
    if proc and proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def call(port, method, path, body=None, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, dict(r.getheaders()), data


def put_blob(port, repo, path_or_bytes, digest, size):
    st, h, _ = call(port, "POST", f"/v2/{repo}/blobs/uploads/")
    assert st == 202, st
    loc = urllib.parse.urlsplit(h["Location"])
    url = loc.path + "?" + (loc.query + "&" if loc.query else "") + "digest=" + urllib.parse.quote(digest)
    body = open(path_or_bytes, "rb") if isinstance(path_or_bytes, str) else path_or_bytes
    try:
        st, _, resp = call(port, "PUT", url, body, {"Content-Type": "application/octet-stream",
                                                    "Content-Length": str(size)})
    finally:
        if hasattr(body, "close"):
            body.close()
    assert st == 201, (st, resp)


class ThrottleProxy:
    """TCP proxy: each accepted connection gets its own upstream connection; bytes from the
    registry are paced to `rate` bytes/s per connection (a token bucket of 64 KiB)."""

    def __init__(self, upstream_port, rate):
        self.rate = rate
        self.up = upstream_port
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(128)
        self.port = self.ls.getsockname()[1]
        self.conns = 0
        self.max_open = 0
        self.open = 0
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while not self.closed:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            u = socket.create_connection(("127.0.0.1", self.up))
            with self.lock:
                self.conns += 1
                self.open += 1
                self.max_open = max(self.max_open, self.open)
            threading.Thread(target=self.pump, args=(c, u, None), daemon=True).start()
            threading.Thread(target=self.pump, args=(u, c, self.rate), daemon=True).start()

    def pump(self, src, dst, rate):
        t0 = time.monotonic()
        sent = 0
        try:
            while True:
                b = src.recv(65536)
                if not b:
                    break
                dst.sendall(b)
                if rate:
                    sent += len(b)
                    ahead = sent / rate - (time.monotonic() - t0)
                    if ahead > 0:
                        time.sleep(ahead)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            if rate:
                with self.lock:
                    self.open -= 1
            src.close()

    def stop(self):
        self.closed = True
        self.ls.close()


def cpu_busy():
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)


def proc_cpu(pid):
    """user + system CPU seconds of a process (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            v = f.read().rsplit(")", 1)[1].split()
        return (int(v[11]) + int(v[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


def timed(fn, pids=()):
    b0, t0 = cpu_busy()
    c0 = [proc_cpu(p) for p in pids]
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    la0 = os.getloadavg()[0]
    w0 = time.monotonic()
    fn()
    w = time.monotonic() - w0
    b1, t1 = cpu_busy()
    c1 = [proc_cpu(p) for p in pids]
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    kids = r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime     # curl, dd, the pull client
    machine = (b1 - b0) / os.sysconf("SC_CLK_TCK")                    # CPU seconds, all processes
    return w, (b1 - b0) / max(1, t1 - t0), max(la0, os.getloadavg()[0]), \
        [b - a for a, b in zip(c0, c1)] + [kids], machine


def settle(size):
    """Touch and free 1.5x the blob's size of memory, so that the run after it finds free
    pages the kernel has just used. On a VM whose balloon takes idle free memory back from the
    guest (this project's does), the first touch of such memory faults into the hypervisor:
    writing 1 GiB into a new file took 1.4-1.7 s after a few idle seconds against 0.18-0.25 s
    right after other use, whichever program wrote it, so which state a run met decided its
    figure more than the program did. Every timed run meets the same state this way."""
    b = b"\1" * (size + size // 2)
    del b


def sha256_rate():
    """bytes/s of SHA-256 here at its best: a 256 KiB buffer hashed again and again (in the
    CPU's caches; OpenSSL underneath, as in the server)."""
    buf = os.urandom(256 << 10)
    h = hashlib.sha256()
    best = 0.0
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(1024):
            h.update(buf)
        best = max(best, (256 << 20) / (time.perf_counter() - t))
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--rate-mb", type=float, default=20)
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "locallama"))
    ap.add_argument("--tmp", default=None, help="parent of the temporary directory (default: $TMPDIR)")
    ap.add_argument("--no-throttle", action="store_true", help="skip part 2 (the paced proxy)")
    ap.add_argument("--no-settle", action="store_true", help="no memory touched before each run (settle())")
    a = ap.parse_args()
    if not os.path.exists(REGISTRY_BIN):
        sys.exit(f"{REGISTRY_BIN} is missing: apt-get install -y docker-registry")
    tmp = tempfile.mkdtemp(prefix="ll-pull-bench-", dir=a.tmp)
    procs = []
    proxy = None
    try:
        # registry
        rport = free_port()
        cfg = os.path.join(tmp, "registry.yml")
        with open(cfg, "w") as f:
            f.write(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {tmp}/reg\n"
                    f"  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{rport}\n")
        reg = subprocess.Popen([REGISTRY_BIN, "serve", cfg], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(reg)
        wait_port(rport, reg, "docker-registry")

        # the blob: random bytes, hashed while written
        size = a.size_mb << 20
        blob = os.path.join(tmp, "blob")
        h = hashlib.sha256()
        with open(blob, "wb") as f:
            left = size
            while left:
                b = os.urandom(min(left, 8 << 20))
                h.update(b)
                f.write(b)
                left -= len(b)
        digest = "sha256:" + h.hexdigest()
        put_blob(rport, "library/big", blob, digest, size)
        os.unlink(blob)
        conf = json.dumps({"model_format": "gguf", "model_family": "bench"}).encode()
        cdig = "sha256:" + hashlib.sha256(conf).hexdigest()
        put_blob(rport, "library/big", conf, cdig, len(conf))
        man = {"schemaVersion": 2, "mediaType": MANIFEST_TYPE,
               "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": cdig,
                          "size": len(conf)},
               "layers": [{"mediaType": "application/vnd.ollama.image.model", "digest": digest, "size": size}]}
        st, _, body = call(rport, "PUT", "/v2/library/big/manifests/latest", json.dumps(man).encode(),
                           {"Content-Type": MANIFEST_TYPE})
        assert st == 201, body

        # two servers: as shipped, and one connection at a time
        def serve(name, extra):
            port = free_port()
            models = os.path.join(tmp, name)
            os.makedirs(models)
            e = {k: v for k, v in os.environ.items() if not k.startswith(("OLLAMA_", "LOCALLAMA_"))}
            e.update({"LOCALLAMA_HOST": f"127.0.0.1:{port}", "LOCALLAMA_MODELS": models}, **extra)
            log = open(os.path.join(tmp, name + ".log"), "wb")
            p = subprocess.Popen([a.bin, "serve"], env=e, stdout=log, stderr=subprocess.STDOUT)
            procs.append(p)
            wait_port(port, p, "locallama serve")
            return port, models, p.pid

        par_port, par_models, par_pid = serve("par", {})
        one_port, one_models, one_pid = serve("one", {"LOCALLAMA_PULL_CONNECTIONS": "1"})
        ns_port, ns_models, ns_pid = serve("nosync", {"LOCALLAMA_PULL_SYNC": "0"})

        def pull(port, models, host):
            name = f"{host}/library/big:latest"
            e = dict(os.environ, LOCALLAMA_HOST=f"127.0.0.1:{port}")
            p = subprocess.run([a.bin, "pull", "-q", name, "--insecure"], env=e, capture_output=True, text=True)
            assert p.returncode == 0, p.stderr
            return name

        def unpull(port, models, name):
            got = os.path.join(models, "blobs", digest.replace(":", "-"))
            assert os.path.getsize(got) == size
            st, _, body = call(port, "DELETE", "/api/delete", json.dumps({"model": name}).encode(),
                               {"Content-Type": "application/json"})
            assert st == 200, body
            assert not os.path.exists(got)

        out = os.path.join(tmp, "curl.out")

        def curl(port, sync=False):
            subprocess.run(["curl", "-s", "-f", "-o", out, f"http://127.0.0.1:{port}/v2/library/big/blobs/{digest}"],
                           check=True)
            if sync:                                       # as durable as a pulled blob
                fd = os.open(out, os.O_RDONLY)
                os.fdatasync(fd)
                os.close(fd)

        def uncurl():
            assert os.path.getsize(out) == size
            os.unlink(out)

        def dd():
            subprocess.run(["dd", "if=/dev/zero", f"of={out}", "bs=1M", f"count={a.size_mb}", "conv=fdatasync"],
                           check=True, capture_output=True)

        mb = size / 1e6
        sha_rate = sha256_rate()
        print(f"blob {size} bytes ({a.size_mb} MiB); {os.cpu_count()} CPUs; SHA-256 {sha_rate / 1e6:.0f} MB/s; load average at start "
              f"{os.getloadavg()[0]:.2f}")
        res = {"pull": [], "nosync": [], "curl": [], "curl+sync": [], "dd": [], "par": [], "one": []}

        cpu_of = {"pull": par_pid, "par": par_pid, "one": one_pid, "nosync": ns_pid}
        machine_cpu = {k: [] for k in res}

        def run(key, fn, after=None):
            pids = [reg.pid] + ([cpu_of[key]] if key in cpu_of else [])
            if not a.no_settle:
                settle(size)
            w, busy, la, cpu, mcpu = timed(fn, pids)
            if after:
                after()
            res[key].append(w)
            machine_cpu[key].append(mcpu)
            who = f"registry {cpu[0]:.2f} s" + (f", server {cpu[1]:.2f} s" if len(cpu) > 2 else "") + \
                f", commands run {cpu[-1]:.2f} s"
            print(f"  {key:9s} {w:7.2f} s  {mb / w:7.1f} MB/s   (machine CPU {mcpu:.2f} s, busy {busy * 100:3.0f}%, load avg {la:.2f}; "
                  f"CPU {who})", flush=True)

        print("loopback registry, no throttle: locallama pull vs curl -o vs dd (A B A B)")
        run("curl", lambda: curl(rport), uncurl)           # warm the registry's page cache
        res["curl"].clear()
        for _ in range(a.rounds):
            run("pull", lambda: pull(par_port, par_models, f"127.0.0.1:{rport}"),
                lambda: unpull(par_port, par_models, f"127.0.0.1:{rport}/library/big:latest"))
            run("curl", lambda: curl(rport), uncurl)
            run("nosync", lambda: pull(ns_port, ns_models, f"127.0.0.1:{rport}"),
                lambda: unpull(ns_port, ns_models, f"127.0.0.1:{rport}/library/big:latest"))
            run("curl+sync", lambda: curl(rport, True), uncurl)
            run("dd", dd, uncurl)
        proxy = ThrottleProxy(rport, a.rate_mb * 1e6)
        rounds2 = 0 if a.no_throttle else a.rounds
        print(f"through a proxy pacing each connection to {a.rate_mb:g} MB/s: parts in parallel vs one connection")
        for _ in range(rounds2):
            run("par", lambda: pull(par_port, par_models, f"127.0.0.1:{proxy.port}"),
                lambda: unpull(par_port, par_models, f"127.0.0.1:{proxy.port}/library/big:latest"))
            run("one", lambda: pull(one_port, one_models, f"127.0.0.1:{proxy.port}"),
                lambda: unpull(one_port, one_models, f"127.0.0.1:{proxy.port}/library/big:latest"))
        med = {k: statistics.median(v) if v else float("nan") for k, v in res.items()}
        print("medians:")
        print(f"  locallama pull {mb / med['pull']:.1f} MB/s, curl {mb / med['curl']:.1f} MB/s: "
              f"pull/curl = {med['curl'] / med['pull']:.2f}x (goal >= 0.9)")
        print(f"  locallama pull with LOCALLAMA_PULL_SYNC=0 (no flush: Ollama's semantics) {mb / med['nosync']:.1f} MB/s: "
              f"nosync/curl = {med['curl'] / med['nosync']:.2f}x")
        print(f"  curl -o then fdatasync (a pulled blob is synced before its rename) "
              f"{mb / med['curl+sync']:.1f} MB/s: pull/(curl+sync) = {med['curl+sync'] / med['pull']:.2f}x")
        # the CPU floor of a verifying client: the machine's CPU seconds of curl's transfer (the
        # registry serving, the kernel, curl receiving into the page cache: a pull does all of
        # it too) plus the SHA-256 of the blob at this CPU's best rate, spread over every CPU
        mc = {k: statistics.median(v) if v else float("nan") for k, v in machine_cpu.items()}
        hs = size / sha_rate
        ncpu = os.cpu_count()
        floor = (mc["curl"] + hs) / ncpu
        floor_sync = (mc["curl+sync"] + hs) / ncpu      # dd's rate is printed below, not a floor:
        # the pull writes back while it downloads, dd (conv=fdatasync) only after its last write
        print(f"  CPU floor of a verifying pull: (machine CPU of curl's transfer {mc['curl']:.2f} s + SHA-256 "
              f"{hs:.2f} s at {sha_rate / 1e6:.0f} MB/s) / {ncpu} CPUs = {floor:.2f} s, at most "
              f"{med['curl'] / floor:.2f}x curl; LOCALLAMA_PULL_SYNC=0 pull {med['nosync']:.2f} s reaches "
              f"{floor / med['nosync'] * 100:.0f}% of it (machine CPU {mc['nosync']:.2f} s)")
        print(f"  durable: (machine CPU of curl + fdatasync {mc['curl+sync']:.2f} s + SHA-256) / {ncpu} CPUs "
              f"= {floor_sync:.2f} s, at most {med['curl'] / floor_sync:.2f}x curl; pull "
              f"{med['pull']:.2f} s reaches {floor_sync / med['pull'] * 100:.0f}% of it (machine CPU {mc['pull']:.2f} s)")
        limit = min(mb / med['curl'], mb / med['dd'])
        print(f"  disk write rate (dd, conv=fdatasync) {mb / med['dd']:.1f} MB/s: limit min(curl, dd) = {limit:.1f} MB/s, "
              f"pull/limit = {mb / med['pull'] / limit:.2f}x (goal >= 0.9)")
        print(f"  throttled: parallel {mb / med['par']:.1f} MB/s, one connection {mb / med['one']:.1f} MB/s: "
              f"{med['one'] / med['par']:.2f}x (goal >= 3); proxy connections {proxy.conns}, "
              f"at most {proxy.max_open} at once")
        print("the servers' own account of each blob (download, hashing left after it, fdatasync):")
        for name in ("par", "nosync", "one"):
            with open(os.path.join(tmp, name + ".log"), errors="replace") as f:
                for line in f:
                    if "pull: sha256:" in line and digest in line:
                        msg = line.strip().split("pull: ", 1)[1].rstrip('"')
                        print(f"  {name}: " + msg.replace(digest, digest[:19] + "…"))
    finally:
        if proxy:
            proxy.stop()
        for p in procs:
            stop(p)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
