"""`locallama quantize` through the real binary (issue 10): the llama3.2-tiny model quantized
from its F32 original must give exactly the files llama.cpp's llama-quantize (0c1e570) wrote
(reference.json has their arguments and SHA-256), whatever the thread count; the per-tensor
type policy (mixes, tied and untied output, fallbacks for row lengths, 1-D tensors) on small
models built here; and the failure contract: usage errors exit 2, other errors exit 1 with
"Error: ...", and no OUT (nor a temporary file) is left behind.
"""
import hashlib
import json
import math
import os
import re
import struct
import subprocess

import pytest

from conftest import BIN, SHARED

TINY_DIR = os.path.join(SHARED, "reference", "llama3.2-tiny")
F32 = os.path.join(TINY_DIR, "llama3.2-tiny-v2k-F32.gguf")
TIMEOUT = 300

GGML = {"F32": 0, "F16": 1, "Q4_0": 2, "Q4_1": 3, "Q5_0": 6, "Q5_1": 7, "Q8_0": 8,
        "Q2_K": 10, "Q3_K": 11, "Q4_K": 12, "Q5_K": 13, "Q6_K": 14, "BF16": 30}
GGML_NAME = {v: k for k, v in GGML.items()}


def run(args, timeout=TIMEOUT):
    p = subprocess.run([BIN] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def reference():
    with open(os.path.join(TINY_DIR, "reference.json")) as f:
        return json.load(f)


# ---- a minimal GGUF v3 reader and writer (enough for these tests) ----------------------------

_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
           10: "<Q", 11: "<q", 12: "<d"}
_BLOCK = {0: (1, 4), 1: (1, 2), 30: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24),
          8: (32, 34), 10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176),
          14: (256, 210)}


def read_gguf(path):
    """(kv keys in order, {key: value} for scalars and strings, [tensor dicts], data_offset)."""
    b = open(path, "rb").read()
    assert b[:4] == b"GGUF"
    pos = 4
    version, n_t, n_kv = struct.unpack_from("<IQQ", b, pos)
    pos += 20

    def rd_str():
        nonlocal pos
        (n,) = struct.unpack_from("<Q", b, pos)
        s = b[pos + 8:pos + 8 + n].decode("utf-8", "replace")
        pos += 8 + n
        return s

    def rd_val(t):
        nonlocal pos
        if t == 8:
            return rd_str()
        if t == 9:
            et, n = struct.unpack_from("<IQ", b, pos)
            pos += 12
            return [rd_val(et) for _ in range(n)]
        fmt = _SCALAR[t]
        (v,) = struct.unpack_from(fmt, b, pos)
        pos += struct.calcsize(fmt)
        return v

    keys, kv = [], {}
    for _ in range(n_kv):
        k = rd_str()
        (t,) = struct.unpack_from("<I", b, pos)
        pos += 4
        v = rd_val(t)
        keys.append(k)
        kv[k] = v if t != 9 else None
        if k == "general.alignment":
            kv[k] = v
    tensors = []
    for _ in range(n_t):
        name = rd_str()
        (nd,) = struct.unpack_from("<I", b, pos)
        pos += 4
        ne = list(struct.unpack_from("<%dQ" % nd, b, pos))
        pos += 8 * nd
        t, off = struct.unpack_from("<IQ", b, pos)
        pos += 12
        tensors.append({"name": name, "ne": ne, "type": t, "offset": off})
    align = kv.get("general.alignment", 32)
    data = (pos + align - 1) // align * align
    for t in tensors:
        blck, bytes_ = _BLOCK[t["type"]]
        n = 1
        for d in t["ne"]:
            n *= d
        t["nbytes"] = n // blck * bytes_
        t["data"] = b[data + t["offset"]:data + t["offset"] + t["nbytes"]]
    return keys, kv, tensors, data, len(b)


def write_gguf(path, arch, hparams, tensors, alignment=None):
    """tensors: [(name, ne list, list of floats)], all F32; hparams: {suffix: u32 or float}."""
    def s(x):
        x = x.encode()
        return struct.pack("<Q", len(x)) + x
    kvs = [s("general.architecture") + struct.pack("<I", 8) + s(arch)]
    for k, v in hparams.items():
        if isinstance(v, float):
            kvs.append(s(f"{arch}.{k}") + struct.pack("<If", 6, v))
        else:
            kvs.append(s(f"{arch}.{k}") + struct.pack("<II", 4, v))
    kvs.append(s("general.file_type") + struct.pack("<II", 4, 0))
    align = 32
    if alignment is not None:
        kvs.append(s("general.alignment") + struct.pack("<II", 4, alignment))
        align = alignment
    info, data = b"", b""
    for name, ne, vals in tensors:
        n = 1
        for d in ne:
            n *= d
        assert len(vals) == n
        data += b"\0" * ((-len(data)) % align)
        info += s(name) + struct.pack("<I", len(ne)) + struct.pack("<%dQ" % len(ne), *ne)
        info += struct.pack("<IQ", 0, len(data))
        data += struct.pack("<%df" % n, *vals)
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs)) + b"".join(kvs) + info
    head += b"\0" * ((-len(head)) % align)
    with open(path, "wb") as f:
        f.write(head + data + b"\0" * ((-len(data)) % align))


def gauss(n, seed, sigma=0.05):
    """Deterministic roughly-normal values (sum of 4 LCG uniforms)."""
    x, out = seed & 0xFFFFFFFF, []
    for _ in range(n):
        acc = 0.0
        for _ in range(4):
            x = (1103515245 * x + 12345) & 0x7FFFFFFF
            acc += x / 0x7FFFFFFF - 0.5
        out.append(acc * sigma * 1.73)
    return out


def uniform(n, seed, amp=0.1):
    """Deterministic uniform values in [-amp, amp) (one LCG step each: fast enough for MBs)."""
    x, out = seed & 0x7FFFFFFF, []
    for _ in range(n):
        x = (1103515245 * x + 12345) & 0x7FFFFFFF
        out.append((x / 0x80000000 - 0.5) * 2 * amp)
    return out


def dir_listing(d):
    return sorted(os.listdir(d))


# ---- the golden files ------------------------------------------------------------------------

GOLDEN = [("F16", True), ("BF16", True), ("Q8_0", True), ("Q4_0", True), ("Q4_1", True),
          ("Q5_0", True), ("Q5_1", True), ("Q2_K", True), ("Q6_K", True),
          ("Q3_K_M", False), ("Q4_K_M", False), ("Q5_K_M", False)]


@pytest.mark.parametrize("ftype,pure", GOLDEN, ids=[g[0] for g in GOLDEN])
def test_golden_file_byte_identical(tmp_path, ftype, pure):
    name = f"llama3.2-tiny-v2k-{ftype}.gguf"
    ref = reference()["models"][name]
    assert ("--pure" in ref["quantize_args"]) == pure, ref["quantize_args"]
    out = str(tmp_path / name)
    args = ["quantize"] + (["--pure"] if pure else []) + [F32, out, ftype]
    code, so, se = run(args)
    assert code == 0, se
    if sha256(out) == ref["sha256"]:
        assert os.path.getsize(out) == ref["bytes"]
        return
    # say where it differs: metadata, or which tensors
    gk, gkv, gt, gdata, _ = read_gguf(os.path.join(TINY_DIR, name))
    ok, okv, ot, odata, _ = read_gguf(out)
    assert ok == gk, "key order differs"
    assert [(t["name"], GGML_NAME.get(t["type"])) for t in ot] == \
           [(t["name"], GGML_NAME.get(t["type"])) for t in gt], "tensor order or types differ"
    bad = [t["name"] for t, g in zip(ot, gt) if t["data"] != g["data"]]
    pytest.fail(f"{ftype}: file differs; tensors with different data: {bad}")


def test_golden_types_match_reference_json(tmp_path):
    """The mixes' per-tensor choices, as listed in reference.json (attn_v / ffn_down bumps,
    Q6_K tied embedding)."""
    ref = reference()["models"]
    for ftype in ("Q3_K_M", "Q4_K_M", "Q5_K_M"):
        out = str(tmp_path / f"{ftype}.gguf")
        code, _, se = run(["quantize", F32, out, ftype])
        assert code == 0, se
        _, kv, tensors, _, _ = read_gguf(out)
        want = ref[f"llama3.2-tiny-v2k-{ftype}.gguf"]["tensor_types"]
        got = {t["name"]: GGML_NAME[t["type"]] for t in tensors}
        assert got == want
        assert kv["general.file_type"] == {"Q3_K_M": 12, "Q4_K_M": 15, "Q5_K_M": 17}[ftype]
        assert kv["general.quantization_version"] == 2


def test_threads_do_not_change_bytes(tmp_path):
    outs = []
    for n in ("1", "2", "3"):
        out = str(tmp_path / f"t{n}.gguf")
        code, _, se = run(["quantize", "--threads", n, F32, out, "Q3_K_M"])
        assert code == 0, se
        outs.append(sha256(out))
    assert outs[0] == outs[1] == outs[2]
    assert outs[0] == reference()["models"]["llama3.2-tiny-v2k-Q3_K_M.gguf"]["sha256"]


def test_stats_nrmse(tmp_path):
    """--stats prints each converted tensor's NRMSE and one line per type; finer types lose
    less, and the numbers agree with an independent dequantization here for Q8_0."""
    code, so, se = run(["quantize", "--stats", F32, str(tmp_path / "m.gguf"), "Q4_K_M"])
    assert code == 0, se
    per_type = dict(re.findall(r"^nrmse (\w+)\s+([0-9.]+)", so, re.M))
    assert set(per_type) == {"Q4_K", "Q6_K", "all"}
    q4, q6 = float(per_type["Q4_K"]), float(per_type["Q6_K"])
    assert 0.03 < q4 < 0.12 and 0.005 < q6 < 0.03 and q6 < q4
    assert len(re.findall(r"nrmse 0\.\d+$", so, re.M)) == 15   # one per converted tensor

    code, so, se = run(["quantize", "--pure", "--stats", F32, str(tmp_path / "q8.gguf"), "Q8_0"])
    assert code == 0, se
    got = float(re.search(r"^nrmse Q8_0\s+([0-9.]+)", so, re.M).group(1))
    # independent check: decode the Q8_0 file and compare with the F32 weights
    _, _, src, _, _ = read_gguf(F32)
    _, _, q8, _, _ = read_gguf(str(tmp_path / "q8.gguf"))
    srcd = {t["name"]: t for t in src}
    e = r = 0.0
    for t in q8:
        if t["type"] != GGML["Q8_0"]:
            continue
        x = struct.unpack("<%df" % (len(srcd[t["name"]]["data"]) // 4), srcd[t["name"]]["data"])
        d = t["data"]
        for bi in range(len(d) // 34):
            (h,) = struct.unpack_from("<e", d, bi * 34)
            qs = struct.unpack_from("<32b", d, bi * 34 + 2)
            for j in range(32):
                v = x[bi * 32 + j]
                e += (h * qs[j] - v) ** 2
                r += v * v
    assert abs(got - math.sqrt(e / r)) < 1e-5


# ---- type policy on small models built here ---------------------------------------------------

def small_model(path, untied=False, odd_rows=True):
    hp = {"block_count": 1, "attention.head_count": 2, "attention.head_count_kv": 2,
          "embedding_length": 256}
    t = [("token_embd.weight", [256, 64], gauss(256 * 64, 1)),
         ("blk.0.attn_norm.weight", [256], [1.0] * 256),
         ("blk.0.attn_v.weight", [256, 32], gauss(256 * 32, 2)),
         ("blk.0.ffn_down.weight", [256, 32], gauss(256 * 32, 3)),
         ("blk.0.ffn_up.weight", [256, 32], gauss(256 * 32, 4)),
         ("blk.0.flat.weight", [256, 1], gauss(256, 5))]
    if odd_rows:
        t += [("blk.0.attn_q.weight", [96, 32], gauss(96 * 32, 6)),     # 96 = 3 x 32
              ("blk.0.attn_k.weight", [48, 32], gauss(48 * 32, 7))]     # 48: not even 32
    if untied:
        t.append(("output.weight", [256, 64], gauss(256 * 64, 8)))
    write_gguf(path, "llama", hp, t)


def types_of(path):
    return {t["name"]: GGML_NAME.get(t["type"], t["type"]) for t in read_gguf(path)[2]}


def test_policy_fallbacks_and_untied_output(tmp_path):
    src, out = str(tmp_path / "s.gguf"), str(tmp_path / "o.gguf")
    small_model(src, untied=True)
    code, so, se = run(["quantize", src, out, "Q4_K_M"])
    assert code == 0, se
    assert types_of(out) == {
        "token_embd.weight": "Q4_K",          # untied: the embedding keeps the base type
        "output.weight": "Q6_K",              # ... and the output projection gets Q6_K
        "blk.0.attn_norm.weight": "F32",      # 1-D: never quantized
        "blk.0.flat.weight": "F32",           # [256, 1] counts as 1-D (ggml_n_dims)
        "blk.0.attn_v.weight": "Q6_K",        # use_more_bits(0, 1): last layer
        "blk.0.ffn_down.weight": "Q6_K",
        "blk.0.ffn_up.weight": "Q4_K",
        "blk.0.attn_q.weight": "Q5_0",        # 96 % 256 != 0: Q4_K falls back to Q5_0
        "blk.0.attn_k.weight": "F16",         # 48 % 32 != 0: F16
    }
    assert "fallback" in so
    assert re.search(r"converted 7, 2 with a fallback type", so)


def test_policy_tied_embedding_q4_0_mix(tmp_path):
    """Without --pure a legacy type still gives the tied embedding Q6_K; with a Q8_0 file
    type the embedding stays Q8_0."""
    out = str(tmp_path / "o.gguf")
    code, _, se = run(["quantize", F32, out, "Q4_0"])
    assert code == 0, se
    t = types_of(out)
    assert t["token_embd.weight"] == "Q6_K" and t["blk.1.ffn_down.weight"] == "Q4_0"
    code, _, se = run(["quantize", F32, out, "Q8_0"])
    assert code == 0, se
    assert set(v for k, v in types_of(out).items() if "norm" not in k and "rope" not in k) == {"Q8_0"}


def test_policy_overrides(tmp_path):
    out = str(tmp_path / "o.gguf")
    code, _, se = run(["quantize", "--token-embedding-type", "q4_0", F32, out, "F16"])
    assert code == 0, se
    t = types_of(out)
    assert t["token_embd.weight"] == "Q4_0" and t["blk.0.attn_q.weight"] == "F16"
    assert t["output_norm.weight"] == "F32"


def test_policy_q3_k_m_small_model(tmp_path):
    src, out = str(tmp_path / "s.gguf"), str(tmp_path / "o.gguf")
    small_model(src, odd_rows=False)
    code, _, se = run(["quantize", src, out, "Q3_K_M"])
    assert code == 0, se
    t = types_of(out)
    assert t["blk.0.attn_v.weight"] == "Q5_K"      # first two attn_v
    assert t["blk.0.ffn_down.weight"] == "Q4_K"
    assert t["blk.0.ffn_up.weight"] == "Q3_K"
    assert t["token_embd.weight"] == "Q6_K"         # tied


# ---- requantizing and copying ----------------------------------------------------------------

def test_same_type_is_a_copy(tmp_path):
    """A Q4_0 file 'quantized' to Q4_0 --pure copies every tensor; its keys are already in
    llama-quantize's order, so the output is the input, byte for byte."""
    src = os.path.join(TINY_DIR, "llama3.2-tiny-v2k-Q4_0.gguf")
    out = str(tmp_path / "o.gguf")
    code, so, se = run(["quantize", "--pure", src, out, "Q4_0"])
    assert code == 0, se
    assert sha256(out) == sha256(src)
    assert "converted 0" in so


def test_requantize_needs_the_flag(tmp_path):
    src = os.path.join(TINY_DIR, "llama3.2-tiny-v2k-Q4_0.gguf")
    out = str(tmp_path / "o.gguf")
    code, _, se = run(["quantize", "--pure", src, out, "Q8_0"])
    assert code == 1 and se.startswith("Error: ") and "--allow-requantize" in se
    assert not os.path.exists(out) and dir_listing(tmp_path) == []
    code, _, se = run(["quantize", "--pure", "--allow-requantize", src, out, "Q8_0"])
    assert code == 0, se
    assert set(v for k, v in types_of(out).items() if "norm" not in k and "rope" not in k) == {"Q8_0"}


# ---- failures ---------------------------------------------------------------------------------

def test_usage_errors():
    for args in ([], [F32], [F32, "/tmp/x.gguf"], [F32, "/tmp/x.gguf", "Q9_9"],
                 ["--threads", "0", F32, "/tmp/x.gguf", "Q4_0"],
                 ["--threads", F32, "/tmp/x.gguf", "Q4_0"],
                 ["--bogus", F32, "/tmp/x.gguf", "Q4_0"],
                 [F32, "/tmp/x.gguf", "Q4_0", "extra"],
                 ["--output-tensor-type", "IQ4_NL", F32, "/tmp/x.gguf", "Q4_0"]):
        code, so, se = run(["quantize"] + args)
        assert code == 2, (args, se)
        assert se.startswith("Error: ") and "usage: locallama quantize" in se, se
    assert not os.path.exists("/tmp/x.gguf")


def test_errors_leave_nothing(tmp_path):
    out = str(tmp_path / "o.gguf")
    code, _, se = run(["quantize", str(tmp_path / "missing.gguf"), out, "Q4_0"])
    assert code == 1 and se.startswith("Error: ")
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf file at all")
    code, _, se = run(["quantize", str(bad), out, "Q4_0"])
    assert code == 1 and se.startswith("Error: ")
    code, _, se = run(["quantize", F32, str(tmp_path / "no" / "such" / "dir.gguf"), "Q4_0"])
    assert code == 1 and se.startswith("Error: ")
    code, _, se = run(["quantize", F32, out, "Q2_K_S"])
    assert code == 1 and "importance matrix" in se
    assert dir_listing(tmp_path) == ["bad.gguf"]


def test_refuses_to_overwrite_input(tmp_path):
    src = str(tmp_path / "in.gguf")
    with open(F32, "rb") as f, open(src, "wb") as g:
        g.write(f.read())
    before = sha256(src)
    link = str(tmp_path / "link.gguf")
    os.symlink(src, link)
    for target in (src, link, str(tmp_path / "." / "in.gguf")):
        code, _, se = run(["quantize", src, target, "Q4_0"])
        assert code == 1 and "input" in se, se
    assert sha256(src) == before
    assert dir_listing(tmp_path) == ["in.gguf", "link.gguf"]


def test_nan_refused_without_partial_output(tmp_path):
    src, out = str(tmp_path / "s.gguf"), str(tmp_path / "o.gguf")
    vals = gauss(256 * 32, 9)
    vals[1000] = float("nan")
    write_gguf(src, "llama", {"block_count": 1, "attention.head_count": 2},
               [("token_embd.weight", [256, 64], gauss(256 * 64, 1)),
                ("blk.0.ffn_down.weight", [256, 32], vals)])
    code, _, se = run(["quantize", src, out, "Q4_K_M"])
    assert code == 1 and "blk.0.ffn_down.weight" in se and "NaN" in se, se
    assert dir_listing(tmp_path) == ["s.gguf"]


def test_scale_overflow_refused(tmp_path):
    """A weight too large for the F16 block scale: llama.cpp's row validation fails, so do we."""
    src, out = str(tmp_path / "s.gguf"), str(tmp_path / "o.gguf")
    vals = gauss(256 * 32, 9)
    vals[5] = 3.0e9
    write_gguf(src, "llama", {"block_count": 1, "attention.head_count": 2},
               [("blk.0.ffn_up.weight", [256, 32], vals)])
    code, _, se = run(["quantize", src, out, "Q8_0"])
    assert code == 1 and "blk.0.ffn_up.weight" in se, se
    assert dir_listing(tmp_path) == ["s.gguf"]


# ---- every mix against llama-quantize, on generated models ----------------------------------

def mix_model(path, n_layer, n_ff, n_head_kv, untied):
    """A Llama-shaped model (n_embd 256, 8 heads of 32, vocabulary 64) with uniform weights.
    n_ff 352 is not a multiple of 256, so every ffn_down row takes the fallback path."""
    E, V, hd = 256, 64, 32
    hp = {"context_length": 2048, "embedding_length": E, "block_count": n_layer,
          "feed_forward_length": n_ff, "attention.head_count": 8,
          "attention.head_count_kv": n_head_kv, "rope.dimension_count": hd,
          "attention.layer_norm_rms_epsilon": 1e-5}
    seed = [1]

    def w(*ne):
        seed[0] += 1
        n = 1
        for d in ne:
            n *= d
        return (list(ne), uniform(n, seed[0]))
    t = [("token_embd.weight",) + w(E, V), ("output_norm.weight", [E], [1.0] * E)]
    if untied:
        t.append(("output.weight",) + w(E, V))
    for i in range(n_layer):
        p = f"blk.{i}."
        t += [(p + "attn_norm.weight", [E], [1.0] * E), (p + "attn_q.weight",) + w(E, E),
              (p + "attn_k.weight",) + w(E, hd * n_head_kv), (p + "attn_v.weight",) + w(E, hd * n_head_kv),
              (p + "attn_output.weight",) + w(E, E), (p + "ffn_norm.weight", [E], [1.0] * E),
              (p + "ffn_gate.weight",) + w(E, n_ff), (p + "ffn_up.weight",) + w(E, n_ff),
              (p + "ffn_down.weight",) + w(n_ff, E)]
    write_gguf(path, "llama", hp, t)


# SHA-256 of the files llama.cpp's llama-quantize (0c1e570, built out of tree, 2 threads)
# wrote from these generated models: the reference, recorded once, for the mixes and shapes
# the tiny model's golden files do not cover (Q2_K's mix, the _S and _L mixes, untied output,
# GQA 4, fallbacks in ffn_down, use_more_bits over 8 layers).
MIX_MODELS = {
    "untied8": dict(n_layer=8, n_ff=352, n_head_kv=2, untied=True),
    "tied4": dict(n_layer=4, n_ff=512, n_head_kv=8, untied=False),
}
MIX_SHA256 = {
    ("untied8", "Q2_K"): "80bfe539af5fb3aac352c43843d459baa11a9a5a2e104f1565e9f42c0831e117",
    ("untied8", "Q3_K_S"): "f4c1d585a34864f8495f05da170b0cb9721df2970a6ef4f726cf7d21c06382f4",
    ("untied8", "Q3_K_M"): "56a38f7e0a0f63169fd72c1cebdccc41cfe2a841fe78a698e00ff32c0790d774",
    ("untied8", "Q3_K_L"): "008aa73ccc73194443e0ec5cb3e4e057b8e7b0ebe5e98f33f50c416aca37cb91",
    ("untied8", "Q4_K_S"): "ac41771513dbcbaa96ef2afb891b9fea094e50a6e2d23b05d304e6b6b9049926",
    ("untied8", "Q4_K_M"): "1ac2d0f94af30a4a12513e98db07c4fc75387566c210a38e0d89d07ec120d854",
    ("untied8", "Q5_K_S"): "e6c6da732f7378db1ef26a0209673b7581b40ab53c1aaf767b660eb6a0275530",
    ("untied8", "Q5_K_M"): "16557776e8f2415ed9255a1bdf4be9a94f6312b15691aaa1ca8c851ab1e4c776",
    ("untied8", "Q6_K"): "0c05efac52bbbc3bf97379a2867934b3a3e8a81ec7bb5b388a57409c68ed5bbd",
    ("untied8", "Q4_0"): "d0df25c047b2f10cbedb928fdf367ed0233b7ef10a9a04384f53ee4346ee0b2e",
    ("untied8", "Q5_1"): "daf84424eb1b10c38104fe1ce27a1613b56ced898537eb7c9db481662648e3c4",
    ("untied8", "Q8_0"): "1d0eac93d25bc6a97760b5a5dee17e24a7917de3b7e6f69d21ff6b8e9108ad75",
    ("tied4", "Q2_K"): "9b46f0d37702cbf48ab1536e05aa4dc3a8bc9fa3a4da8f786c73188bd443cd74",
    ("tied4", "Q3_K_S"): "f0a2ba38bec54fcaad07a581c7f868585aac727a2e90fa77c7df196a1dbcb220",
    ("tied4", "Q3_K_M"): "c92c42b950b7cb5810aa85a9cf56709fe7628ca700ba415261acdc98d70e04e2",
    ("tied4", "Q3_K_L"): "84dfd88af476843972441984fe6945e1d90f74f484bc73a6659d4796ccb269b4",
    ("tied4", "Q4_K_S"): "4fe47d7c9fbf9e13f90c1364bc369ded39cbe5340a38658489add79a7dce291d",
    ("tied4", "Q4_K_M"): "85dbdb7ca64cb0014687dff33ff9692e39a37a30dd5d9c4577cf9f1625ba0b3a",
    ("tied4", "Q5_K_S"): "4af59dc4f9846e33935762189f902d6016bd1f3d2cae0ccd4b388d6a4bd3d912",
    ("tied4", "Q5_K_M"): "bcf10b9a1b937dbb4c4f1fb2ea473cee7a2545cd1198d65974b6e982cc5a7614",
    ("tied4", "Q6_K"): "2dce21c9ed5df318ef4f3801ec3c2b7109185592424b6818f684e5bfab3ac260",
    ("tied4", "Q4_0"): "4c91dde76f6436a9fca6ef4377443d24ea4c8b732052545dc6c38cf72277761d",
    ("tied4", "Q5_1"): "7a8edb399bc8cdbe2df675c5ea229fc741ada1ada4229386e61bf0fa2f66b214",
    ("tied4", "Q8_0"): "c0e24cd53aebbccc16487887f19bbd6a88309a8f4b026e08b617d27554302ca7",
}


@pytest.fixture(scope="module")
def mix_sources(tmp_path_factory):
    d = tmp_path_factory.mktemp("mix")
    paths = {}
    for name, kw in MIX_MODELS.items():
        paths[name] = str(d / f"{name}.gguf")
        if kw is None:
            moe_model(paths[name])
        elif kw == "odd":
            odd_model(paths[name])
        else:
            mix_model(paths[name], **kw)
    return paths


MIX_CASES = [(m, t) for m in MIX_MODELS for t in
             ("Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M",
              "Q6_K", "Q4_0", "Q5_1", "Q8_0")]


def moe_model(path, n_expert=8, n_layer=2):
    """Llama with n_expert experts per layer: 3-D ffn_*_exps tensors, the F32-kept router
    ffn_gate_inp, and (for 8 experts) llama.cpp's Q8_0 attn_k/attn_v and Q5_K attn_output."""
    E, F, V = 256, 256, 64
    hp = {"context_length": 2048, "embedding_length": E, "block_count": n_layer,
          "feed_forward_length": F, "attention.head_count": 8, "attention.head_count_kv": 2,
          "rope.dimension_count": 32, "attention.layer_norm_rms_epsilon": 1e-5,
          "expert_count": n_expert, "expert_used_count": 2}
    seed = [100]

    def w(*ne):
        seed[0] += 1
        n = 1
        for d in ne:
            n *= d
        return (list(ne), uniform(n, seed[0]))
    t = [("token_embd.weight",) + w(E, V), ("output_norm.weight", [E], [1.0] * E)]
    for i in range(n_layer):
        p = f"blk.{i}."
        t += [(p + "attn_norm.weight", [E], [1.0] * E), (p + "attn_q.weight",) + w(E, E),
              (p + "attn_k.weight",) + w(E, 64), (p + "attn_v.weight",) + w(E, 64),
              (p + "attn_output.weight",) + w(E, E), (p + "ffn_norm.weight", [E], [1.0] * E),
              (p + "ffn_gate_inp.weight",) + w(E, n_expert),
              (p + "ffn_gate_exps.weight",) + w(E, F, n_expert),
              (p + "ffn_up_exps.weight",) + w(E, F, n_expert),
              (p + "ffn_down_exps.weight",) + w(F, E, n_expert)]
    write_gguf(path, "llama", hp, t)


MIX_MODELS["moe8"] = None          # built by moe_model
MIX_CASES += [("moe8", t) for t in ("Q3_K_M", "Q4_K_M", "Q2_K")]
MIX_SHA256.update({
    ("moe8", "Q3_K_M"): "4d6de06cba375d5df93bb7497930c80675a8f56b6498d2dd76ad77536b6314d6",
    ("moe8", "Q4_K_M"): "d8255d474424a3a354f0a8b0407510339f2aa36d95efa3129566f49f68d9b234",
    ("moe8", "Q2_K"): "69d1c677a8f828dfc3a03c7db275605aef86c88d65ed2526bfcfea0a4dec0024",
})


def odd_model(path):
    """Row lengths 80 and 48 (not multiples of 32: F16), 96 (32 but not 256: Q5_0 for Q4_K),
    and a tied 80-wide embedding (Q8_0 by the output rule, then F16)."""
    hp = {"context_length": 2048, "embedding_length": 256, "block_count": 2,
          "feed_forward_length": 80, "attention.head_count": 8, "attention.head_count_kv": 8,
          "rope.dimension_count": 32, "attention.layer_norm_rms_epsilon": 1e-5}
    t = [("token_embd.weight", [80, 64], uniform(80 * 64, 1))]
    for i in range(2):
        p = f"blk.{i}."
        t += [(p + "attn_norm.weight", [256], [1.0] * 256),
              (p + "attn_q.weight", [48, 256], uniform(48 * 256, 2 + i)),
              (p + "attn_v.weight", [96, 32], uniform(96 * 32, 4 + i)),
              (p + "ffn_down.weight", [80, 256], uniform(80 * 256, 6 + i)),
              (p + "ffn_up.weight", [512, 16], uniform(512 * 16, 8 + i))]
    write_gguf(path, "llama", hp, t)


MIX_MODELS["odd"] = "odd"          # built by odd_model
MIX_CASES += [("odd", t) for t in ("Q2_K", "Q3_K_M", "Q4_K_M", "Q6_K")]
MIX_SHA256.update({
    ("odd", "Q2_K"): "908224871d8bf50583497624a64dc8cf20504d8b8024a7a471cde863b9fc2da1",
    ("odd", "Q3_K_M"): "ee50aa8ea4976c66dc4a273524a33578af28ddd1ca565769d30c624d42a78fa0",
    ("odd", "Q4_K_M"): "e13565472d9ba6369672134ee3e79a4867c5705de4f6c4d0f42f6b5ae9dd663f",
    ("odd", "Q6_K"): "15a90a5a776be3b5f4e968b165a77cf024b3f3b22f05d9b08526178f1ca7adcb",
})


@pytest.mark.parametrize("model,ftype", MIX_CASES, ids=[f"{m}-{t}" for m, t in MIX_CASES])
def test_mix_matches_llama_quantize(tmp_path, mix_sources, model, ftype):
    out = str(tmp_path / "o.gguf")
    code, _, se = run(["quantize", mix_sources[model], out, ftype])
    assert code == 0, se
    assert sha256(out) == MIX_SHA256[(model, ftype)]


def test_output_mode_follows_umask(tmp_path):
    """The temporary file is created 0600; the finished file gets 0666 minus the umask."""
    out = str(tmp_path / "o.gguf")
    old = os.umask(0o027)
    try:
        code, _, se = run(["quantize", F32, out, "Q8_0"])
    finally:
        os.umask(old)
    assert code == 0, se
    assert os.stat(out).st_mode & 0o777 == 0o640


# Half-precision and quantized inputs: dequantized first (F16/BF16 exactly, Q8_0 with
# --allow-requantize), then quantized. SHA-256 of llama-quantize 0c1e570's output for the same
# golden input file and arguments, recorded once.
FROM_OTHER = [
    ("F16", "Q4_K_M", "2e8d3276955fa4ff1e1f5fc46e850a98bea39161ec3cb13e6bc8f24744a27ab2"),
    ("BF16", "Q5_0", "ae949d22508b1219f1ced720043d637699a15e2c845ee03508463df344300a28"),
    ("F16", "Q3_K_S", "66a77ee2d7d102bde2ad4f5ef8c189c91070d86815249f467e74a6815ce66fa2"),
    ("Q8_0", "Q4_K_S", "250991415d9d1c90c1379e561d549d76840c5e4f8ffeb8b961f1058651082958"),
]


@pytest.mark.parametrize("src,ftype,want", FROM_OTHER, ids=[f"{s}-{t}" for s, t, _ in FROM_OTHER])
def test_from_half_and_quantized_input(tmp_path, src, ftype, want):
    out = str(tmp_path / "o.gguf")
    code, _, se = run(["quantize", "--allow-requantize",
                       os.path.join(TINY_DIR, f"llama3.2-tiny-v2k-{src}.gguf"), out, ftype])
    assert code == 0, se
    assert sha256(out) == want


def test_alignment_key_is_honoured(tmp_path):
    """An input with general.alignment 64 keeps the key, and the output is laid out with it
    (llama-quantize copies the key but pads to 32: see docs/quantize.md)."""
    src, out = str(tmp_path / "s.gguf"), str(tmp_path / "o.gguf")
    write_gguf(src, "llama", {"block_count": 1, "attention.head_count": 2},
               [("token_embd.weight", [256, 8], gauss(256 * 8, 1)),
                ("blk.0.attn_norm.weight", [32], [1.0] * 32),
                ("blk.0.ffn_up.weight", [256, 3], gauss(256 * 3, 2))], alignment=64)
    _, _, src_t, _, _ = read_gguf(src)
    code, _, se = run(["quantize", "--pure", src, out, "Q4_0"])
    assert code == 0, se
    keys, kv, tensors, data_off, size = read_gguf(out)
    assert kv["general.alignment"] == 64 and data_off % 64 == 0
    assert all(t["offset"] % 64 == 0 for t in tensors)
    assert size == data_off + tensors[-1]["offset"] + 448   # 3 rows of 8 Q4_0 blocks: 432, padded
    assert [GGML_NAME[t["type"]] for t in tensors] == ["Q4_0", "F32", "Q4_0"]
    norm = [t for t in tensors if t["name"] == "blk.0.attn_norm.weight"][0]
    assert norm["data"] == [t for t in src_t if t["name"] == "blk.0.attn_norm.weight"][0]["data"]


def test_interrupt_removes_temporary_file(tmp_path):
    """SIGINT while a large tensor is being quantized: exit 130, no OUT, no temporary file."""
    import signal
    src, out = str(tmp_path / "s.gguf"), str(tmp_path / "o.gguf")
    rows, cols = 16384, 4096                      # 64M floats: about 4 s of Q6_K on 1 thread
    pattern = struct.pack("<1024f", *uniform(1024, 3))
    path_data = pattern * (rows * cols // 1024)
    # write by hand: a small embedding first (written, then progress is printed), then the big one
    small = gauss(256 * 4, 1)
    with open(src, "wb") as f:
        def s(x):
            x = x.encode()
            return struct.pack("<Q", len(x)) + x
        kvs = s("general.architecture") + struct.pack("<I", 8) + s("llama")
        info = s("token_embd.weight") + struct.pack("<I2QIQ", 2, 256, 4, 0, 0)
        info += s("blk.0.ffn_up.weight") + struct.pack("<I2QIQ", 2, cols, rows, 0, 4096)
        head = b"GGUF" + struct.pack("<IQQ", 3, 2, 1) + kvs + info
        f.write(head + b"\0" * ((-len(head)) % 32))
        f.write(struct.pack("<1024f", *small))
        f.write(path_data)
    del path_data
    p = subprocess.Popen([BIN, "quantize", "--pure", "--threads", "1", src, out, "Q6_K"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = p.stdout.readline()                   # "quantizing ..." header
    first = p.stdout.readline()                   # token_embd done: now in the big tensor
    assert b"token_embd.weight" in first, first
    p.send_signal(signal.SIGINT)
    so, se = p.communicate(timeout=TIMEOUT)
    listing = dir_listing(tmp_path)
    os.unlink(src)                                # 256 MB: do not leave it to pytest's cleanup
    assert p.returncode == 130, (p.returncode, se)
    assert b"interrupted" in se
    assert listing == ["s.gguf"]


# ---- importance matrix ----------------------------------------------------------------------

def write_imatrix(path, model_path, legacy=False, skip=("token_embd.weight",)):
    """An importance matrix for every 2-D weight of model_path (but `skip`), in llama-imatrix's
    GGUF layout (<name>.in_sum2 per expert, <name>.counts, imatrix.* keys) or the older .dat
    layout. Values are deterministic: squares of uniform numbers times the count."""
    _, _, tensors, _, _ = read_gguf(model_path)

    def s(x):
        x = x.encode()
        return struct.pack("<Q", len(x)) + x
    ents, seed = [], 50
    for t in tensors:
        if len(t["ne"]) < 2 or t["name"] in skip:
            continue
        nexp = t["ne"][2] if len(t["ne"]) > 2 else 1
        seed += 1
        vals = [v * v * 2560 * 40 for v in uniform(t["ne"][0] * nexp, seed)]
        counts = [2560.0 * (k % 3) for k in range(nexp)] if nexp > 1 else [2560.0]
        ents.append((t["name"], t["ne"][0], nexp, vals, counts))
    if legacy:
        out = struct.pack("<i", len(ents))
        for name, ne0, nexp, vals, counts in ents:
            out += struct.pack("<i", len(name)) + name.encode()
            out += struct.pack("<ii", 7, len(vals)) + struct.pack("<%df" % len(vals), *vals)
        out += struct.pack("<i", 5) + struct.pack("<i", 9) + b"calib.txt"
        with open(path, "wb") as f:
            f.write(out)
        return
    kvs = [s("imatrix.datasets") + struct.pack("<IIQ", 9, 8, 1) + s("calib.txt"),
           s("imatrix.chunk_count") + struct.pack("<II", 4, 5),
           s("imatrix.chunk_size") + struct.pack("<II", 4, 512)]
    info, data, n = b"", b"", 0
    for name, ne0, nexp, vals, counts in ents:
        for suffix, ne, v in ((".in_sum2", [ne0, nexp], vals), (".counts", [1, nexp], counts)):
            data += b"\0" * ((-len(data)) % 32)
            info += s(name + suffix) + struct.pack("<I2Q", 2, *ne) + struct.pack("<IQ", 0, len(data))
            data += struct.pack("<%df" % len(v), *v)
            n += 1
    head = b"GGUF" + struct.pack("<IQQ", 3, n, len(kvs)) + b"".join(kvs) + info
    head += b"\0" * ((-len(head)) % 32)
    with open(path, "wb") as f:
        f.write(head + data + b"\0" * ((-len(data)) % 32))


def run_in(cwd, args):
    p = subprocess.run([BIN] + args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=TIMEOUT)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


# SHA-256 of llama-quantize 0c1e570's output with `--imatrix imatrix.gguf` (or imatrix.dat;
# the relative path is recorded in the file) on the tiny F32 model, recorded once.
IMATRIX_SHA256 = {
    "Q4_0": "34975dca4a80693c51837afd916dac03d0dca8976a6a9576042fda6818ce07a2",
    "Q4_1": "33020b457170425cd193dafbba95dba612de5b1da3b426c8784d2fa983706edb",
    "Q5_0": "e48065f3adfac5892c6adb092c55ac2a795b533d46d64d0b14e12ff72219847d",
    "Q5_1": "ad70139a1acd8dd0d5e4a7876ed3dbf2379e3e3e5177dc326cc6e919a0bb1dc4",
    "Q2_K": "a2ae99b1fc5be6fb46ea6425ee2340a9c8b35d81e1ef03a701f13202bf8b79cd",
    "Q2_K_S": "1374829bbac56b013dca2834500a3b6d8630207ba62fc5b0037d34a886c951ee",
    "Q3_K_S": "b4359203a3e353b3d8a803ff269045e65a892f4e8ba179bafceaf8b96a1dea4f",
    "Q3_K_M": "e30d15044a00e27630456d281bb674c31b42ede21bcd0d80e9b52639c9ea8ed8",
    "Q4_K_M": "45ba638762bac7c7106f4b2fe3cd1bd0dd76181256aff0870a961d9e3cf92259",
    "Q5_K_M": "b8bb9d1d01707f1b802820c602b47333ac9eb717e80cbbbd5500528007f1d910",
    "Q6_K": "67a719fafa62eceb4048b85514ed355133029579ce038fbed31e9fa2d4e823dd",
    "dat-Q4_K_M": "ba85a82fe9e1a3c376c705b70930c2d43ca6b83b2b9bf4561739dfcca498a65d",
}
IMATRIX_CASES = ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q2_K_S", "Q3_K_S", "Q3_K_M",
                 "Q4_K_M", "Q5_K_M", "Q6_K", "dat-Q4_K_M"]


@pytest.mark.parametrize("case", IMATRIX_CASES)
def test_imatrix_matches_llama_quantize(tmp_path, case):
    legacy = case.startswith("dat-")
    ftype = case[4:] if legacy else case
    im = "imatrix.dat" if legacy else "imatrix.gguf"
    write_imatrix(str(tmp_path / im), F32, legacy=legacy)
    code, _, se = run_in(str(tmp_path), ["quantize", "--imatrix", im, F32, "o.gguf", ftype])
    assert code == 0, se
    assert sha256(str(tmp_path / "o.gguf")) == IMATRIX_SHA256[case]


def test_imatrix_changes_the_weights_and_is_recorded(tmp_path):
    write_imatrix(str(tmp_path / "imatrix.gguf"), F32)
    code, _, se = run_in(str(tmp_path), ["quantize", "--imatrix", "imatrix.gguf", F32, "w.gguf", "Q4_K_M"])
    assert code == 0, se
    code, _, se = run(["quantize", F32, str(tmp_path / "p.gguf"), "Q4_K_M"])
    assert code == 0, se
    _, kv, with_im, _, _ = read_gguf(str(tmp_path / "w.gguf"))
    _, _, plain, _, _ = read_gguf(str(tmp_path / "p.gguf"))
    assert kv["quantize.imatrix.file"] == "imatrix.gguf"
    assert kv["quantize.imatrix.dataset"] == "calib.txt"
    assert kv["quantize.imatrix.entries_count"] == 14 and kv["quantize.imatrix.chunks_count"] == 5
    differ = {a["name"] for a, b in zip(with_im, plain) if a["data"] != b["data"]}
    # every weight with an entry changes; token_embd (no entry) and the norms do not
    assert "token_embd.weight" not in differ and len(differ) == 14


def test_imatrix_errors(tmp_path):
    out = str(tmp_path / "o.gguf")
    code, _, se = run(["quantize", F32, out, "Q2_K_S"])
    assert code == 1 and "--imatrix" in se
    code, _, se = run(["quantize", "--imatrix", str(tmp_path / "none.gguf"), F32, out, "Q4_K_M"])
    assert code == 1 and se.startswith("Error: ")
    # Q2_K_S with an entry missing for a Q2_K tensor: refused, nothing left behind
    write_imatrix(str(tmp_path / "im.gguf"), F32, skip=("token_embd.weight", "blk.1.attn_q.weight"))
    code, _, se = run(["quantize", "--imatrix", str(tmp_path / "im.gguf"), F32, out, "Q2_K_S"])
    assert code == 1 and "blk.1.attn_q.weight" in se, se
    # a GGUF without the imatrix.* keys is not an importance matrix
    code, _, se = run(["quantize", "--imatrix", F32, F32, out, "Q4_K_M"])
    assert code == 1 and "imatrix" in se, se
    assert dir_listing(tmp_path) == ["im.gguf"]


# Mixture of experts: one importance row per expert, some with a zero count (value 1).
MOE_IMATRIX_SHA256 = {
    "Q4_K_M": "4bc66116fc8754852de426761f2ccd693fcb6ee4abf20e5a5fdc3ed1e543f5c6",
    "Q2_K_S": "de2dd8c903d774311b3933e51c0e8768e3a274a6831fbeb960e3a67aad16a4b2",
}


@pytest.mark.parametrize("ftype", sorted(MOE_IMATRIX_SHA256))
def test_imatrix_per_expert_matches_llama_quantize(tmp_path, ftype):
    moe_model(str(tmp_path / "moe.gguf"))
    write_imatrix(str(tmp_path / "imatrix.gguf"), str(tmp_path / "moe.gguf"))
    code, _, se = run_in(str(tmp_path), ["quantize", "--imatrix", "imatrix.gguf", "moe.gguf", "o.gguf", ftype])
    assert code == 0, se
    assert sha256(str(tmp_path / "o.gguf")) == MOE_IMATRIX_SHA256[ftype]


# --include-weights / --exclude-weights filter the matrix's entries by substring (llama-quantize
# 0c1e570's output, Q4_K_M, same synthetic imatrix.gguf).
FILTER_SHA256 = [
    (["--include-weights", "attn_v", "--include-weights", "ffn_down"],
     "afdafe7634349b854103e11e58e3f85b42e90dbb10bf1db540ca5ede5632b3e3"),
    (["--exclude-weights", "blk.1."], "aa6b61acf742d4ddd9b7fb4176d23a17cce8662de55234688ee62cadfceb6eb8"),
]


@pytest.mark.parametrize("flags,want", FILTER_SHA256, ids=["include", "exclude"])
def test_imatrix_filters_match_llama_quantize(tmp_path, flags, want):
    write_imatrix(str(tmp_path / "imatrix.gguf"), F32)
    code, _, se = run_in(str(tmp_path), ["quantize", "--imatrix", "imatrix.gguf"] + flags + [F32, "o.gguf", "Q4_K_M"])
    assert code == 0, se
    assert sha256(str(tmp_path / "o.gguf")) == want


def test_imatrix_filter_usage():
    code, _, se = run(["quantize", "--include-weights", "a", "--exclude-weights", "b", F32, "/tmp/x.gguf", "Q4_0"])
    assert code == 2 and "exclude each other" in se
    assert not os.path.exists("/tmp/x.gguf")


# --tensor-type REGEX=TYPE overrides (first match wins, before the fallback; a matched tensor
# skips the mix and its counters), from the command line and from a file; llama-quantize
# 0c1e570's output for the tiny model as Q4_K_M.
TENSOR_TYPE_CASES = [
    (["--tensor-type", "attn_v=q8_0", "--tensor-type", r"blk\.1\.ffn_.*=Q5_K", "--tensor-type", "ATTN_Q=f16"],
     "9b6b7af89c60d709d9ff6c64e857baa53ea301e5cd5474acdf30935da594ec78"),
    (["--tensor-type-file", "tt.txt", "--tensor-type", "output_norm=q4_0"],
     "c2e6c874c6029bbd20b01071e140a002757750a623fddda9f310dbe652e49411"),
    (["--pure", "--tensor-type", r"blk\.0\..*=q6_k"],
     "ca2ca502fde81aaef12f822f0344d988148648540e85630c5a29030146a23283"),
]


@pytest.mark.parametrize("flags,want", TENSOR_TYPE_CASES, ids=["cmdline", "file", "pure"])
def test_tensor_type_matches_llama_quantize(tmp_path, flags, want):
    (tmp_path / "tt.txt").write_text("ffn_up=q8_0\n  token_embd=q4_0\n")
    code, _, se = run_in(str(tmp_path), ["quantize"] + flags + [F32, "o.gguf", "Q4_K_M"])
    assert code == 0, se
    assert sha256(str(tmp_path / "o.gguf")) == want


def test_tensor_type_usage_errors(tmp_path):
    for flags in (["--tensor-type", "attn_v"], ["--tensor-type", "=q8_0"], ["--tensor-type", "attn_v="],
                  ["--tensor-type", "attn_v=iq2_xxs"], ["--tensor-type-file", str(tmp_path / "none.txt")]):
        code, _, se = run(["quantize"] + flags + [F32, str(tmp_path / "o.gguf"), "Q4_K_M"])
        assert code == 2, (flags, se)
    code, _, se = run(["quantize", "--tensor-type", "attn_v(=q8_0", F32, str(tmp_path / "o.gguf"), "Q4_K_M"])
    assert code == 1 and "pattern" in se, se
    assert dir_listing(tmp_path) == []


# --override-kv: keys set after general.file_type in the order given (before the imatrix keys),
# ints written as u32 |value|; an int override of a hyperparameter also steers the mix (here
# block_count 16 moves use_more_bits). llama-quantize 0c1e570's output, tiny model, Q4_K_M.
OVERRIDE_CASES = [
    (["--override-kv", "general.name=str:renamed", "--override-kv", "llama.context_length=int:-4096",
      "--override-kv", "llama.rope.freq_base=float:10000.5",
      "--override-kv", "tokenizer.ggml.add_bos_token=bool:false", "--override-kv", "new.key=int:7"],
     "dd3c9eab05c32da822b0f75df8f570aee7f145abc94b93e8b0fd5e4807777103"),
    (["--override-kv", "llama.block_count=int:16"],
     "c2470fd4ce01b80467e6b9aa23f16741b8b201244e5e10f857f0fe9e7904ef05"),
    (["--imatrix", "imatrix.gguf", "--override-kv", "quantize.imatrix.file=str:x",
      "--override-kv", "general.file_type=int:3"],
     "264775c425967da508cd50874d72035152f7cc530a48fd8b15ce0e8e445d15f0"),
]


@pytest.mark.parametrize("flags,want", OVERRIDE_CASES, ids=["types", "hparam", "imatrix-keys"])
def test_override_kv_matches_llama_quantize(tmp_path, flags, want):
    write_imatrix(str(tmp_path / "imatrix.gguf"), F32)
    code, _, se = run_in(str(tmp_path), ["quantize"] + flags + [F32, "o.gguf", "Q4_K_M"])
    assert code == 0, se
    assert sha256(str(tmp_path / "o.gguf")) == want


def test_override_kv_usage_errors():
    for bad in ("nokey", "k=int", "k=bool:yes", "k=text:x", "k=str:" + "x" * 128, "k" * 128 + "=int:1"):
        code, _, se = run(["quantize", "--override-kv", bad, F32, "/tmp/x.gguf", "Q4_0"])
        assert code == 2, (bad, se)
    assert not os.path.exists("/tmp/x.gguf")


def test_dry_run_writes_nothing(tmp_path):
    out = str(tmp_path / "o.gguf")
    code, dry, se = run(["quantize", "--dry-run", F32, out, "Q3_K_M"])
    assert code == 0, se
    assert dir_listing(tmp_path) == [] and "dry run" in dry
    code, real, se = run(["quantize", F32, out, "Q3_K_M"])
    assert code == 0, se
    # the same per-tensor plan and sizes, line for line
    plan = lambda s: [l for l in s.splitlines() if l.startswith("[")]
    assert plan(dry) == plan(real) and len(plan(dry)) == 21
    size = lambda s: re.search(r"quant size:\s+([0-9.]+) MiB", s).group(1)
    assert size(dry) == size(real)
    # Q2_K_S without a matrix: planned with a warning (llama-quantize does the same)
    code, so, se = run(["quantize", "--dry-run", F32, out + "2", "Q2_K_S"])
    assert code == 0 and "importance matrix" in so, se
    assert dir_listing(tmp_path) == ["o.gguf"]


# --prune-layers: the listed layers dropped, later ones renumbered, block_count rewritten after
# the overrides; the mix still counts layers of the original model, and the importance matrix
# is looked up under the original names. llama-quantize 0c1e570's output, the 8-layer model
# of MIX_MODELS, Q4_K_M.
PRUNE_CASES = [
    (["--prune-layers", "3"], "0b9c107b16ae6941f787d673b594f035af748628a5a10d0ec25689f481b11818"),
    (["--prune-layers", "5,1,1"], "8195342b2a4f1a34d8fc42805ea1b02118da0879ead7343d65241602fcc7a551"),
    (["--prune-layers", "0,7", "--imatrix", "imatrix.gguf"],
     "72432910fe3d3d835fd8cd59f3792ee41e67cec7eb2baee2ac85598b84bf81a1"),
    (["--prune-layers", "2,3,4", "--override-kv", "llama.block_count=int:20"],
     "43c35403ff9e4b8e96df1c3521712116743edad4dde4e3845ec6d2b8ffe13dde"),
]


@pytest.mark.parametrize("flags,want", PRUNE_CASES, ids=["one", "unsorted-dup", "imatrix", "override"])
def test_prune_layers_matches_llama_quantize(tmp_path, flags, want):
    mix_model(str(tmp_path / "u8.gguf"), **MIX_MODELS["untied8"])
    write_imatrix(str(tmp_path / "imatrix.gguf"), str(tmp_path / "u8.gguf"))
    code, _, se = run_in(str(tmp_path), ["quantize"] + flags + ["u8.gguf", "o.gguf", "Q4_K_M"])
    assert code == 0, se
    assert sha256(str(tmp_path / "o.gguf")) == want


def test_prune_layers_usage_errors():
    for bad in ("", "a", "1,,2", "-1", "3,"):
        code, _, se = run(["quantize", "--prune-layers", bad, F32, "/tmp/x.gguf", "Q4_0"])
        assert code == 2, (bad, se)
    assert not os.path.exists("/tmp/x.gguf")
