"""The command line as a user meets it (issue 2 command contracts): dispatch, exit codes and
error messages, and `run` on the tiny reference model and on the demo model SmolLM2.

Exit codes (src/cli/cli.h): 0 ok, 1 error with one line "Error: ..." on stderr, 2 usage.
"""
import json
import os
import re
import struct
import subprocess

import pytest

from conftest import BIN, SHARED

TINY_DIR = os.path.join(SHARED, "reference", "llama3.2-tiny")
TINY = os.path.join(TINY_DIR, "llama3.2-tiny-v2k-F32.gguf")
# The trimmed Llama 3 vocabulary keeps ordinary tokens 0-1791 and puts the 256 special
# tokens at 1792-2047 (reference README): end_of_text 1793, eom 1800, eot 1801.
TINY_FIRST_SPECIAL = 1792
TINY_EOG = {1793, 1800, 1801}
TIMEOUT = int(os.environ.get("LL_TEST_TIMEOUT", "600"))


def run(args, stdin=None, timeout=TIMEOUT):
    p = subprocess.run([BIN] + args, input=stdin, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    return p.returncode, p.stdout, p.stderr.decode("utf-8", "replace")


def answer_text(stdout):
    """stdout of a one-shot run: the answer followed by two newlines (as Ollama prints)."""
    assert stdout.endswith(b"\n\n"), f"answer does not end with a blank line: {stdout[-40:]!r}"
    return stdout[:-2].decode("utf-8")


def verbose_blocks(stderr):
    """The --verbose statistics of each answer: a list of {label: value} dicts."""
    blocks, cur = [], None
    for line in stderr.splitlines():
        m = re.match(r"^([a-z ]+):\s+(.*)$", line)
        if not m:
            continue
        if m.group(1) == "total duration":
            cur = {}
            blocks.append(cur)
        if cur is not None:
            cur[m.group(1)] = m.group(2)
    return blocks


def count(block, label):
    m = re.match(r"^(\d+) token\(s\)$", block[label])
    assert m, block
    return int(m.group(1))


# ---- dispatch ------------------------------------------------------------------------------

def test_version(bin_path):
    rc, out, err = run(["--version"])
    assert rc == 0
    assert re.fullmatch(rb"locallama version \d+\.\d+\.\d+\n", out), out


def test_help_lists_every_command(bin_path):
    rc, out, _ = run(["help"])
    assert rc == 0
    for cmd in ["run", "tokenize", "detokenize", "logits", "bench"]:
        assert re.search(rb"^\s+locallama " + cmd.encode() + rb"\b", out, re.M), (cmd, out)


def test_unknown_command_is_usage_error(bin_path):
    rc, out, err = run(["frobnicate"])
    assert rc == 2
    assert "unknown command" in err and "frobnicate" in err
    assert out == b""


def test_run_without_model_is_usage_error(bin_path):
    rc, _, err = run(["run"])
    assert rc == 2
    assert err.startswith("Error: ")


def test_run_unknown_flag_is_usage_error(bin_path):
    rc, _, err = run(["run", TINY, "hi", "--frobnicate"])
    assert rc == 2
    assert "unknown flag: --frobnicate" in err


def test_run_bad_number_is_usage_error(bin_path):
    rc, _, err = run(["run", TINY, "hi", "--num-predict", "many"])
    assert rc == 2
    assert "--num-predict" in err


def test_run_out_of_range_numbers_are_usage_errors(bin_path):
    """Values outside what the engine takes are usage errors (exit 2, one "Error:" line naming
    the flag) before the model is loaded, not load-time errors (exit 1)."""
    for flag, val in (("--threads", "1025"), ("--threads", "4096"), ("--threads", "-1"),
                      ("--ctx", "0"), ("--num-predict", "-2"), ("--seed", "-5"),
                      ("--seed", " -5"), ("--seed", "+-5")):
        rc, out, err = run(["run", TINY, "hi", flag, val])
        assert rc == 2, (flag, val, rc, err)
        assert out == b"" and err == f'Error: invalid value for {flag}: "{val}"\n', (flag, val, err)


# ---- errors -----------------------------------------------------------------------------------

def test_run_missing_file(bin_path, tmp_path):
    missing = str(tmp_path / "no-such-model.gguf")
    rc, out, err = run(["run", missing, "hello"])
    assert rc == 1
    assert out == b""
    assert err == f"Error: model '{missing}' not found (give a path to a .gguf file)\n"


def test_run_not_a_gguf(bin_path, tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUX" + b"\x03\x00\x00\x00" + b"\x00" * 16)
    rc, out, err = run(["run", str(bad), "hello"])
    assert rc == 1
    assert out == b""
    assert err.startswith("Error: ") and err.count("\n") == 1, err
    assert "not a GGUF file" in err


def test_run_truncated_gguf(bin_path, tmp_path):
    data = open(TINY, "rb").read()
    cut = tmp_path / "truncated.gguf"
    cut.write_bytes(data[: len(data) // 2])
    rc, out, err = run(["run", str(cut), "hello"])
    assert rc == 1
    assert out == b""
    assert err.startswith("Error: ") and err.count("\n") == 1, err
    # the message names the problem: a tensor or a read that runs past the end of the file
    assert re.search(r"truncated|past|beyond|needs bytes|file has|end of file", err), err


def bad_gguf_corpus(tmp_dir):
    build = os.environ.get("LL_BUILD_DIR", os.path.join(os.path.dirname(BIN)))
    tool = os.path.join(build, "tools", "make_bad_gguf")
    if not os.path.exists(tool):
        pytest.fail(f"{tool} not built (make)")
    subprocess.run([tool, str(tmp_dir)], stdout=subprocess.DEVNULL, check=True, timeout=120)
    files = sorted(f for f in os.listdir(tmp_dir) if f.endswith(".gguf"))
    assert len(files) >= 40, files
    return [os.path.join(tmp_dir, f) for f in files]


def test_run_and_bench_reject_every_bad_gguf(bin_path, tmp_path):
    """Every file of tools/make_bad_gguf (one per G row of fault-cases.md, plus a metadata-only
    file that is no model) through the two model commands: exit 1, a last stderr line
    "Error: ...", nothing on stdout, never a crash or a hang."""
    for path in bad_gguf_corpus(tmp_path):
        for args in (["run", path, "hi", "--num-predict", "1"],
                     ["bench", "-m", path, "-p", "1", "-n", "1", "-r", "1"]):
            rc, out, err = run(args, timeout=60)
            name = os.path.basename(path)
            assert rc == 1, (name, args[0], rc, err)
            assert out == b"", (name, args[0], out)
            last = err.rstrip("\n").splitlines()[-1]
            assert last.startswith("Error: ") and len(last) > len("Error: ") + 5, (name, err)


# ---- run on the tiny reference model ------------------------------------------------------------

def tokenize(text):
    rc, out, err = run(["tokenize", "--model", TINY, "--parse-special", text])
    assert rc == 0, err
    return json.loads(out.decode().strip().splitlines()[-1])


def greedy_ids(ids, n):
    rc, out, err = run(["logits", "--model", TINY, "--ids", ",".join(map(str, ids)),
                        "--greedy", str(n), "--threads", "1", "--out", os.devnull])
    assert rc == 0, err
    return json.loads(out.decode().strip().splitlines()[-1])


def pieces(ids):
    """The concatenated token pieces: what a token-by-token stream prints (no whole-sequence
    clean-up such as removing the space before punctuation)."""
    if not ids:
        return b""
    rc, out, err = run(["detokenize", "--model", TINY, "--pieces"] + [str(i) for i in ids])
    assert rc == 0, err
    return out


def test_run_raw_tiny_greedy_matches_logits_greedy(bin_path):
    """`run --raw --temperature 0` is greedy decoding: its text is the detokenization of the ids
    `logits --greedy` picks for the same prompt, up to the first end-of-generation token
    (control tokens are not printed). This ties the streaming loop to the checked forward
    pass. --repeat-penalty 1 because `logits --greedy` is plain argmax."""
    prompt = "Once upon a time"
    rc, out, err = run(["run", TINY, prompt, "--raw", "--num-predict", "5", "--temperature", "0",
                        "--repeat-penalty", "1", "--threads", "1"])
    assert rc == 0, err
    text = answer_text(out).encode()
    ids = greedy_ids(tokenize(prompt), 5)
    expected = []
    for i in ids:
        if i in TINY_EOG:
            break
        if i < TINY_FIRST_SPECIAL:
            expected.append(i)
    print("run:", text, "greedy ids:", ids)
    assert text == pieces(expected)


def logits_after(prompt_ids, forced, path):
    """The logits after prompt_ids then forced, decoded as `run` does: the prompt as one batch,
    then one token per call (logits --force)."""
    args = ["logits", "--model", TINY, "--ids", ",".join(map(str, prompt_ids)), "--threads", "1",
            "--out", path]
    if forced:
        args += ["--force", ",".join(map(str, forced))]
    rc, out, err = run(args)
    assert rc == 0, err
    with open(path, "rb") as f:
        data = f.read()
    n_vocab = len(data) // 4 // (len(prompt_ids) + len(forced))
    return list(struct.unpack("<%df" % n_vocab, data[-4 * n_vocab:]))


def penalized_greedy_ids(prompt_ids, n, penalty, last_n, path):
    """Greedy decoding with llama.cpp's repeat penalty, written out here: every id among the
    last last_n tokens of the context (prompt and generated, each counted once) has its logit
    divided by the penalty when positive, multiplied when not, in float32; then the argmax,
    ties to the lowest id. Stops after an end-of-generation id."""
    def f32(x):
        return struct.unpack("<f", struct.pack("<f", x))[0]
    ctx, gen = list(prompt_ids), []
    while len(gen) < n:
        row = logits_after(prompt_ids, gen, path)
        for t in set(ctx[-last_n:]):
            row[t] = f32(row[t] * penalty) if row[t] <= 0 else f32(row[t] / penalty)
        best = max(range(len(row)), key=lambda i: (row[i], -i))
        ctx.append(best)
        gen.append(best)
        if best in TINY_EOG:
            break
    return gen


def test_run_records_each_sampled_token_once(bin_path, tmp_path):
    """The repeat-penalty window (the last 64 tokens, Ollama's repeat_last_n) holds each token
    of the context once. `run` used to record every sampled token twice (ll_sampler_sample
    records it, and run accepted it again), so the window shrank to 32 answer tokens and the
    prompt left it early: past ~45 tokens of greedy decoding at --repeat-penalty 1.5 the answer
    went another way than the penalty as defined, computed here from the model's logits."""
    prompt = "Once upon a time"
    n = 64
    rc, out, err = run(["run", TINY, prompt, "--raw", "--num-predict", str(n), "--temperature",
                        "0", "--repeat-penalty", "1.5", "--threads", "1"])
    assert rc == 0, err
    ids = penalized_greedy_ids(tokenize(prompt), n, 1.5, 64, str(tmp_path / "logits.f32"))
    expected = [i for i in ids if i < TINY_FIRST_SPECIAL]
    # run prints whole UTF-8 characters only, U+FFFD for an ill-formed sequence (R20), as
    # Python's "replace" does (one per maximal subpart)
    assert answer_text(out) == pieces(expected).decode("utf-8", "replace"), ids


def test_run_control_token_first_is_not_undefined_behaviour(bin_path):
    """A control token (printed as nothing) as the very first token of an answer: its empty
    piece is appended to the answer text before any piece buffer exists. The stream is the
    non-control pieces, with no sanitizer report (run this suite on the ASan build). The prompt
    is a cut-off UTF-8 sequence, whose greedy path on the tiny model starts with one."""
    prompt = b"\xe2\x82"
    rc, out, err = run(["tokenize", "--model", TINY, "--parse-special", prompt])
    assert rc == 0, err
    ids = greedy_ids(json.loads(out.decode().strip().splitlines()[-1]), 3)
    assert ids[0] >= TINY_FIRST_SPECIAL and ids[0] not in TINY_EOG, ids
    rc, out, err = run(["run", TINY, prompt, "--raw", "--num-predict", "3", "--temperature", "0",
                        "--repeat-penalty", "1", "--threads", "1"])
    assert rc == 0, err
    assert "runtime error" not in err, err
    expected = []
    for i in ids:
        if i in TINY_EOG:
            break
        if i < TINY_FIRST_SPECIAL:
            expected.append(i)
    assert answer_text(out).encode() == pieces(expected)


def test_run_prompt_of_many_words(bin_path):
    """An unquoted prompt is every word after PATH joined by spaces, however many there are
    (`run model $(cat notes.txt)`): 300 words are one prompt, as the same text quoted."""
    words = ["w%d" % i for i in range(300)]
    args = ["--raw", "--num-predict", "1", "--temperature", "0", "--verbose"]
    rc, out, err = run(["run", TINY] + words + args)
    assert rc == 0, err
    rc2, out2, err2 = run(["run", TINY, " ".join(words)] + args)
    assert rc2 == 0, err2
    assert out == out2
    n = count(verbose_blocks(err)[0], "prompt eval count")
    assert n == count(verbose_blocks(err2)[0], "prompt eval count") == len(tokenize(" ".join(words)))


def test_run_raw_tiny_num_predict_bounds_output(bin_path):
    rc, out, err = run(["run", TINY, "Hello", "--raw", "--num-predict", "3", "--temperature", "0",
                        "--verbose"])
    assert rc == 0, err
    blocks = verbose_blocks(err)
    assert len(blocks) == 1, err
    assert count(blocks[0], "eval count") <= 3
    assert count(blocks[0], "prompt eval count") == len(tokenize("Hello"))


def test_run_shifts_a_full_context_and_bounds_endless_answers(bin_path):
    """A context of 8 tokens with a 2-token prompt: when it is full the context shifts (keep
    BOS + num_keep, drop half of the rest, R3) and generation goes on without an error; with
    no --num-predict a model that never stops is cut at 10 x n_ctx tokens (R4), so 80 here
    (skipped if the greedy path would end by itself first)."""
    rc, out, err = run(["run", TINY, "Hello", "--raw", "--ctx", "8", "--temperature", "0",
                        "--repeat-penalty", "1", "--verbose"])
    assert rc == 0, err
    n_gen = count(verbose_blocks(err)[0], "eval count")
    if n_gen < 80:
        ids = greedy_ids(tokenize("Hello"), 8 - len(tokenize("Hello")) + 1)
        assert any(i in TINY_EOG for i in ids) or n_gen > 8, (n_gen, err)
        pytest.skip(f"greedy path stops by itself after {n_gen} tokens")
    assert n_gen == 80, err
    assert "context full" not in err and "Error" not in err, err
    rc, out, err = run(["run", TINY, "Hello", "--raw", "--ctx", "8", "--temperature", "0",
                        "--num-keep", "100", "--num-predict", "20", "--kv-type", "q8_0",
                        "--verbose"])              # num_keep >= n_ctx is clamped (H36)
    assert rc == 0, err
    assert count(verbose_blocks(err)[0], "eval count") <= 20


def test_smollm2_goes_on_coherently_past_the_context_end(bin_path, smollm2_path):
    """A 96-token context and 150 tokens to generate after a 41-token prompt: several shifts.
    The answer stays English prose: words, not fragments or repeats of one token."""
    rc, out, err = run(["run", smollm2_path, "Tell me a long story about a cat named Tom.",
                        "--ctx", "96", "--num-predict", "150", "--temperature", "0",
                        "--verbose"])
    assert rc == 0, err
    assert count(verbose_blocks(err)[0], "eval count") == 150, err
    text = out.decode()
    tail = text[len(text) // 2:]                  # well after the first shift
    words = [w.strip(".,;:!?\"'()") for w in tail.split()]
    words = [w for w in words if w]
    alpha = sum(1 for w in words if re.fullmatch(r"[A-Za-z][A-Za-z'-]*", w))
    assert len(words) >= 40 and alpha >= 0.9 * len(words), tail
    assert len(set(w.lower() for w in words)) >= 25, tail


def gguf_tensor_offsets(data):
    """{name: (dims, type, absolute byte offset)} of a GGUF v3 file's tensors."""
    import struct
    pos = 0

    def rd(fmt):
        nonlocal pos
        v = struct.unpack_from("<" + fmt, data, pos)[0]
        pos += struct.calcsize("<" + fmt)
        return v

    def rstr():
        nonlocal pos
        n = rd("Q")
        pos += n
        return data[pos - n:pos]

    scalar = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q",
              12: "d"}

    def rval(t):
        if t == 8:
            return rstr()
        if t == 9:
            et, n = rd("I"), rd("Q")
            return [rval(et) for _ in range(n)]
        return rd(scalar[t])

    assert data[:4] == b"GGUF"
    pos = 8
    n_tensors, n_kv = rd("Q"), rd("Q")
    align = 32
    for _ in range(n_kv):
        key = rstr()
        val = rval(rd("I"))
        if key == b"general.alignment":
            align = val
    info = {}
    for _ in range(n_tensors):
        name = rstr().decode()
        dims = [rd("Q") for _ in range(rd("I"))]
        info[name] = (dims, rd("I"), rd("Q"))
    base = (pos + align - 1) // align * align
    return {n: (d, t, base + off) for n, (d, t, off) in info.items()}


def test_run_nan_logits_names_the_position(bin_path, tmp_path):
    """R17: NaN logits end the answer with exit 1 and one line "Error: numerical error: NaN
    logits ... at position N", N the position of the token whose logits they are (the prompt's
    last). The tiny model ties its output to token_embd, so NaN embeddings give NaN logits."""
    import struct
    data = bytearray(open(TINY, "rb").read())
    dims, typ, off = gguf_tensor_offsets(bytes(data))["token_embd.weight"]
    assert typ == 0, typ                          # F32
    n = dims[0] * dims[1]
    data[off:off + 4 * n] = struct.pack("<f", float("nan")) * n
    bad = tmp_path / "nan-embd.gguf"
    bad.write_bytes(bytes(data))
    n_prompt = len(tokenize("hi"))
    for temp in ("0", "0.8"):
        rc, out, err = run(["run", str(bad), "hi", "--raw", "--temperature", temp])
        assert rc == 1, err
        assert out == b"", out
        assert err.count("\n") == 1, err
        assert re.fullmatch(r"Error: numerical error: NaN logits[^\n]* at position (\d+)\n", err), err
        assert err.count("numerical error") == 1, err
        assert err.endswith(f" at position {n_prompt - 1}\n"), (n_prompt, err)


def test_run_nan_hidden_state_with_quantized_weights_is_r17(bin_path, tmp_path):
    """R17 with quantized weights: a NaN scale in one Q8_0 block of blk.1.attn_v makes one
    value dimension NaN. The Q8_0 activation quantizer in front of attn_output once let a NaN
    element vanish (the block's scale came from the finite ones), so the logits looked finite
    and run printed random text (checked on 2bd677a); now a NaN block gets a NaN scale and the
    final hidden rows are checked, so the answer ends with the R17 error."""
    tiny_q8 = os.path.join(TINY_DIR, "llama3.2-tiny-v2k-Q8_0.gguf")
    data = bytearray(open(tiny_q8, "rb").read())
    dims, typ, off = gguf_tensor_offsets(bytes(data))["blk.1.attn_v.weight"]
    assert typ == 8, typ                          # Q8_0: blocks of fp16 d + 32 int8
    data[off:off + 2] = b"\x00\x7e"                # d = NaN in the first block of row 0
    bad = tmp_path / "nan-scale.gguf"
    bad.write_bytes(bytes(data))
    n_prompt = len(tokenize("hi"))
    rc, out, err = run(["run", str(bad), "hi", "--raw", "--temperature", "0.8", "--seed", "1"])
    assert rc == 1, (out, err)
    assert out == b"", out
    assert re.fullmatch(r"Error: numerical error: NaN logits[^\n]* at position (\d+)\n", err), err
    assert err.endswith(f" at position {n_prompt - 1}\n"), (n_prompt, err)


def test_seed_reproducible_and_varied(bin_path):
    def sample(seed):
        rc, out, err = run(["run", TINY, "The", "--raw", "--num-predict", "12", "--temperature",
                            "1", "--top-k", "0", "--top-p", "1", "--seed", str(seed)])
        assert rc == 0, err
        return out

    first = sample(42)
    assert sample(42) == first, "the same seed must give the same output"
    others = {sample(s) for s in (1, 2, 3)}
    others.add(first)
    assert len(others) > 1, f"four seeds, one output: {first!r}"


def test_interactive_pipe_tiny_reuses_cache(bin_path):
    """Two turns through a pipe: each line is a user turn. The second turn decodes only the
    tokens after the common prefix with the cache, so its prompt eval count is much smaller
    than the whole conversation's."""
    rc, out, err = run(["run", TINY, "--num-predict", "4", "--temperature", "0", "--verbose"],
                       stdin=b"Hello there\nAnd again\n")
    assert rc == 0, err
    blocks = verbose_blocks(err)
    assert len(blocks) == 2, err
    p1, p2 = count(blocks[0], "prompt eval count"), count(blocks[1], "prompt eval count")
    assert p1 > 0 and 0 < p2 < p1 + count(blocks[0], "eval count"), (p1, p2)
    assert ">>>" not in err, "no prompt when stdin is not a terminal"


def test_interactive_bye_and_eof_exit_zero(bin_path):
    rc, out, err = run(["run", TINY, "--num-predict", "2"], stdin=b"/bye\nnot read\n")
    assert rc == 0, err
    assert out == b""
    rc, out, err = run(["run", TINY, "--num-predict", "2"], stdin=b"")
    assert rc == 0, err
    assert out == b""


# ---- run on SmolLM2 (the demo model) -----------------------------------------------------------

def test_smollm2_capital_of_france(bin_path, smollm2_path):
    """The issue's demo: the answer is text that names Paris and ends with the model's own
    end-of-generation token. At temperature 0 with the default repeat penalty this model
    (Q4_1) answers in 76 tokens, starting "L'Étoile (The City) - Paris, France." (its first
    step is a near-tie, 0.27 logits, that llama.cpp's pure greedy path resolves the same way),
    so the bound is 128 rather than 64."""
    n_max = 128
    rc, out, err = run(["run", smollm2_path, "What is the capital of France?", "--temperature",
                        "0", "--num-predict", str(n_max), "--verbose"])
    assert rc == 0, err
    text = answer_text(out)
    print("SmolLM2:", repr(text))
    assert text.strip(), "empty answer"
    assert "Paris" in text, text
    blocks = verbose_blocks(err)
    assert len(blocks) == 1, err
    # 37 prompt tokens: the ChatML rendering with SmolLM2's default system message, as
    # ../shared/reference/smollm2/reference.json has it for this case
    assert count(blocks[0], "prompt eval count") == 37, blocks[0]
    assert count(blocks[0], "eval count") < n_max, f"did not stop by itself: {text!r}"


def test_smollm2_interactive_two_turns(bin_path, smollm2_path):
    """The second turn refers to the first; its answer depends on the conversation (it differs
    from the answer to the same line asked alone) and only the new turn is decoded."""
    turn1, turn2 = b"My name is Ana and I live in Lisbon.", b"What city do I live in?"
    args = ["--temperature", "0", "--num-predict", "48", "--verbose"]
    rc, out, err = run(["run", smollm2_path] + args, stdin=turn1 + b"\n" + turn2 + b"\n")
    assert rc == 0, err
    print("two turns:", out.decode("utf-8", "replace"))
    blocks = verbose_blocks(err)
    assert len(blocks) == 2, err
    p1, g1, p2 = (count(blocks[0], "prompt eval count"), count(blocks[0], "eval count"),
                  count(blocks[1], "prompt eval count"))
    assert 0 < p2 < p1, (p1, g1, p2)          # the system message and turn 1 were not redone

    rc, alone, err = run(["run", smollm2_path, turn2.decode()] + args)
    assert rc == 0, err
    assert not out.endswith(alone), "the second answer ignored the first turn"


def test_smollm2_ctrl_c_on_a_terminal(bin_path, smollm2_path):
    """R14 on a pseudo-terminal: `>>> ` on the terminal, Ctrl-C while an answer streams stops it
    and returns to the prompt at once, Ctrl-C at the empty prompt exits 0."""
    import pty
    import select
    import time

    pid, fd = pty.fork()
    if pid == 0:   # child: the terminal is its stdin, stdout and stderr
        os.execv(BIN, [BIN, "run", smollm2_path, "--num-predict", "3000",
                       "--temperature", "1", "--seed", "7"])

    def read_until(pattern, seconds, min_bytes=None):
        buf, end = b"", time.time() + seconds
        while time.time() < end and (min_bytes is None or len(buf) < min_bytes):
            if select.select([fd], [], [], 0.1)[0]:
                try:
                    data = os.read(fd, 4096)
                except OSError:     # the child closed the terminal
                    break
                if not data:
                    break
                buf += data
                if pattern is not None and pattern in buf:
                    return True, buf
        return False, buf

    try:
        ok, buf = read_until(b">>> ", 120)
        assert ok, buf
        line = b"Write a very long story about a dragon, in many chapters."
        os.write(fd, line + b"\r")
        # let it stream a few words (slow under ASan on a loaded machine: wait for bytes)
        ok, buf = read_until(None, 120, min_bytes=len(line) + 2 + 40)
        assert len(buf) >= len(line) + 2 + 40, buf
        if b">>> " in buf:                      # (this seed runs to 3000 tokens, ~50 s)
            pytest.skip("the answer ended by itself before Ctrl-C")
        t0 = time.time()
        os.write(fd, b"\x03")
        ok, buf = read_until(b">>> ", 30)
        assert ok, buf
        # 3000 tokens take far longer than this: the answer was cut short by Ctrl-C
        assert time.time() - t0 < 10
        os.write(fd, b"\x03")
        read_until(None, 3)
        for _ in range(100):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.1)
        assert done, "Ctrl-C at the empty prompt did not exit"
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    finally:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == 0:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
        except ChildProcessError:
            pass
        os.close(fd)
