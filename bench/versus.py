#!/usr/bin/env python3
"""locallama against llama.cpp's llama-bench on the same GGUF files, one sitting, one table
(issue 10's matrix).

    bench/versus.py --peer PATH/TO/llama-bench [--models DIR] [--rounds 2] [--only pp,tg,depth,rss,load]
                    [--kv f16] [--threads 2] [--names 1b-F16,1b-Q8_0,...] [--jsonl OUT]

The peer is yours to build (Release, native flags, out of this tree); this script only runs
it. Models are DIR/<name>.gguf (default names: 1b-F16 1b-Q8_0 1b-Q4_0 1b-Q4_K_M 1b-Q6_K
3b-Q4_K_M, as ../shared/tools/make_bench_gguf.py plus `locallama quantize` make them).

Every figure comes from runs interleaved A B A B within the sitting; the table gives medians.
  pp / tg    `-p 512 -n 128 -t T -r 1 -ctk KV` on both engines (llama-bench's -ctk likewise).
  depth      the same with `-d 4096` (the first model given, Q4_K_M by default).
  rss        peak resident set (GNU time's %M, KiB) of that pp512+tg128 run, per engine:
             both map the file, so resident weight pages count on both sides.
  load       wall time of `-p 0 -n 1 -r 1` (load, one warm-up token and one timed token),
             minus the two tokens at the engine's own tg128 rate from the same sitting: the
             model load and start-up. Warm: the file in the page cache. Cold: the page cache
             dropped first (needs root: /proc/sys/vm/drop_caches).
  membw      build/bench/membw's 2-thread read rate, each round; the tg roofline fraction is
             file bytes x tg t/s / that rate (every weight is read once per generated token).
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_NAMES = "1b-F16,1b-Q8_0,1b-Q4_0,1b-Q4_K_M,1b-Q6_K,3b-Q4_K_M"


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def run_json(cmd):
    """Run a bench in JSON mode; returns ([(n_prompt, n_gen, n_depth, avg_ts)], peak_rss_kib, wall_s)."""
    t0 = time.monotonic()
    p = subprocess.run(["/usr/bin/time", "-f", "RSSKIB %M"] + cmd, capture_output=True, text=True)
    wall = time.monotonic() - t0
    if p.returncode != 0:
        raise SystemExit(f"versus: {' '.join(cmd)} failed ({p.returncode}):\n{p.stderr[-2000:]}")
    m = re.findall(r"RSSKIB (\d+)", p.stderr)
    rows = json.loads(p.stdout)
    res = [(r["n_prompt"], r["n_gen"], r.get("n_depth", 0), r["avg_ts"]) for r in rows]
    return res, int(m[-1]) if m else None, wall


def cmd_for(engine, a, model, extra):
    kv = ["-ctk", a.kv]
    if engine == "peer":
        return [a.peer, "-m", model, "-t", str(a.threads), "-o", "json"] + kv + extra
    return [a.ours, "bench", "-m", model, "-t", str(a.threads), "-o", "json"] + kv + extra


def membw(a):
    out = subprocess.run([os.path.join(ROOT, "build/bench/membw"), "512", "3"], capture_output=True, text=True).stdout
    m = re.findall(r"threads 2: ([\d.]+) GB/s", out)
    return float(m[0]) if m else None


def drop_caches():
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--peer", required=True, help="path to llama.cpp's llama-bench")
    ap.add_argument("--ours", default=os.path.join(ROOT, "build/locallama"))
    ap.add_argument("--models", default="/work/models")
    ap.add_argument("--names", default=DEFAULT_NAMES)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--kv", default="f16")
    ap.add_argument("--only", default="pp,tg,depth,rss,load")
    ap.add_argument("--depth-model", default="1b-Q4_K_M")
    ap.add_argument("--jsonl", default=None, help="append every raw measurement here")
    a = ap.parse_args()
    only = set(a.only.split(","))
    names = a.names.split(",")
    path = {n: os.path.join(a.models, n + ".gguf") for n in names + [a.depth_model]}
    for n, f in path.items():
        if not os.path.exists(f):
            raise SystemExit(f"versus: no model file {f}")
    log = open(a.jsonl, "a") if a.jsonl else None

    def note(ev):
        ev["load"] = loadavg()
        if log:
            log.write(json.dumps(ev) + "\n")
            log.flush()
        print(json.dumps(ev), file=sys.stderr)

    R = {}          # (name, engine, metric) -> [values]
    bws = []
    for rnd in range(1, a.rounds + 1):
        bw = membw(a)
        bws.append(bw)
        note({"event": "membw", "round": rnd, "gbps": bw})
        for n in names:
            for eng in ("peer", "ours"):
                if only & {"pp", "tg", "rss"}:
                    res, rss, _ = run_json(cmd_for(eng, a, path[n], ["-p", "512", "-n", "128", "-r", "1"]))
                    for n_p, n_g, _, ts in res:
                        R.setdefault((n, eng, "pp" if n_p else "tg"), []).append(ts)
                    R.setdefault((n, eng, "rss"), []).append(rss)
                    R.setdefault((n, eng, "bw"), []).append(bw)
                    note({"event": "run", "round": rnd, "model": n, "engine": eng, "res": res, "rss_kib": rss})
        if "depth" in only:
            n = a.depth_model
            for eng in ("peer", "ours"):
                res, _, _ = run_json(cmd_for(eng, a, path[n], ["-p", "512", "-n", "128", "-d", "4096", "-r", "1"]))
                for n_p, n_g, d, ts in res:
                    R.setdefault((n, eng, "pp@4096" if n_p else "tg@4096"), []).append(ts)
                note({"event": "depth", "round": rnd, "model": n, "engine": eng, "res": res})
        if "load" in only:
            for n in names:
                for cold in (False, True):
                    for eng in ("peer", "ours"):
                        if cold and not drop_caches():
                            continue
                        _, _, wall = run_json(cmd_for(eng, a, path[n], ["-p", "0", "-n", "1", "-r", "1"]))
                        key = "load_cold" if cold else "load_warm"
                        R.setdefault((n, eng, key + "_wall"), []).append(wall)
                        note({"event": key, "round": rnd, "model": n, "engine": eng, "wall_s": wall})
    if log:
        log.close()

    def med(n, e, k):
        v = [x for x in R.get((n, e, k), []) if x is not None]
        return statistics.median(v) if v else float("nan")

    print(f"llama.cpp: {a.peer}; locallama: {a.ours}; {a.threads} threads; KV {a.kv}; "
          f"{a.rounds} interleaved rounds, medians; read bandwidth per round (GB/s, 2 threads): {bws}")
    print()
    if only & {"pp", "tg"}:
        print("| model | llama.cpp pp512 | llama.cpp tg128 | locallama pp512 | locallama tg128 | pp × | tg × "
              "| tg roofline, locallama / llama.cpp |")
        print("|---|---|---|---|---|---|---|---|")
        for n in names:
            size = os.path.getsize(path[n])
            bw = statistics.median([b for b in R.get((n, "ours", "bw"), []) if b]) if R.get((n, "ours", "bw")) else None
            pp_p, tg_p, pp_o, tg_o = med(n, "peer", "pp"), med(n, "peer", "tg"), med(n, "ours", "pp"), med(n, "ours", "tg")
            roof = (f"{size * tg_o / (bw * 1e9) * 100:.0f}% / {size * tg_p / (bw * 1e9) * 100:.0f}%" if bw else "n/a")
            print(f"| {n} | {pp_p:.1f} | {tg_p:.2f} | {pp_o:.1f} | {tg_o:.2f} | {pp_o / pp_p:.2f} | {tg_o / tg_p:.2f} | {roof} |")
        print()
    if "depth" in only:
        n = a.depth_model
        print(f"| {n} at depth 4096 | llama.cpp | locallama | × |")
        print("|---|---|---|---|")
        for k in ("pp@4096", "tg@4096"):
            p, o = med(n, "peer", k), med(n, "ours", k)
            print(f"| {k.replace('@4096', '512' if k.startswith('pp') else '128')} | {p:.2f} | {o:.2f} | {o / p:.2f} |")
        print()
    if "rss" in only:
        print("| model | llama.cpp peak RSS (MiB) | locallama peak RSS (MiB) | × |")
        print("|---|---|---|---|")
        for n in names:
            p, o = med(n, "peer", "rss") / 1024, med(n, "ours", "rss") / 1024
            print(f"| {n} | {p:.0f} | {o:.0f} | {o / p:.2f} |")
        print()
    if "load" in only:
        print("| model | load warm, llama.cpp / locallama (s) | load cold, llama.cpp / locallama (s) |")
        print("|---|---|---|")
        for n in names:
            cells = []
            for key in ("load_warm", "load_cold"):
                v = []
                for e in ("peer", "ours"):
                    tg = med(n, e, "tg")
                    w = med(n, e, key + "_wall")
                    v.append(w - 2 / tg if tg == tg and tg > 0 else w)
                cells.append(f"{v[0]:.2f} / {v[1]:.2f}")
            print(f"| {n} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
