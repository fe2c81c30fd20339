/* Fault rows G35, G45-G56 and G70 of ../shared/spec/fault-cases.md: a small valid Llama model
 * is built in memory with tests/gguf_builder.h (d 32, 4 heads of 8, 2 KV heads, n_ff 64,
 * 8-token SentencePiece vocab, F32 weights), then broken one way per test. Each bad file must
 * be refused with the row's status and a message naming the problem, and nothing may leak
 * (run under ASan). Loading goes through ll_model_from_gguf on the buffer and, for the good
 * file and a sample of bad ones, through ll_model_load on a temp file. */
#include "../test.h"
#include "../gguf_builder.h"

#include "model/model.h"

#include <stdint.h>
#include <unistd.h>

#define OMIT INT64_MIN

enum { D = 32, NH = 4, NKV = 2, HD = 8, FF = 64, NV = 8 };

typedef struct {
    const char *arch;                 /* NULL: key absent */
    int64_t block_count, context_length, embedding_length, feed_forward_length;
    int64_t head_count, head_count_kv, key_length, rope_dims, vocab_size;
    int64_t n_layers_built;           /* blk.N tensors written for N < this */
    float   eps;                      /* NAN: key absent */
    const uint32_t *head_count_arr;   /* head_count written as a u32 array instead */
    size_t  n_head_count_arr;
    int64_t emb_rows;                 /* rows of token_embd (NV normally) */
    bool    with_output;              /* write output.weight */
    const char *skip;                 /* tensor not written */
    const char *reshape;              /* tensor written with ne1 + 1 (2-D) or ne0 + 1 (1-D) */
    const char *extra;                /* additional F32 tensor (d) with this name */
    const char *retype;               /* tensor written as IQ4_NL (type 20) */
    const char *poison;               /* tensor with poison_value at index poison_index */
    int64_t poison_index;
    float   poison_value;
    uint32_t poison_type;             /* 0 F32, 1 F16 for the poisoned norm */
    size_t  byte_align_pad;           /* > 0: general.alignment 1, a general.name of this many
                                         bytes, and rope_freqs.weight (1, 1, 2, 4) */
} spec;

static spec base(void) {
    spec s = { 0 };
    s.arch = "llama";
    s.block_count = 1;
    s.context_length = 64;
    s.embedding_length = D;
    s.feed_forward_length = FF;
    s.head_count = NH;
    s.head_count_kv = NKV;
    s.key_length = OMIT;
    s.rope_dims = OMIT;
    s.vocab_size = OMIT;
    s.n_layers_built = 1;
    s.eps = 1e-5f;
    s.emb_rows = NV;
    s.with_output = true;
    return s;
}

static void kv_int(gguf_builder *b, const char *key, int64_t v) {
    if (v == OMIT) return;
    if (v >= 0 && v <= UINT32_MAX) gb_kv_u32(b, key, (uint32_t)v);
    else gb_kv_i64(b, key, v);
}

static void put_tensor(gguf_builder *b, const spec *s, const char *name, int64_t ne0, int64_t ne1,
                       int n_dims, float fill) {
    if (s->skip && !strcmp(s->skip, name)) return;
    uint64_t ne[2] = { (uint64_t)ne0, (uint64_t)ne1 };
    if (s->reshape && !strcmp(s->reshape, name)) ne[n_dims - 1]++;
    uint64_t n = ne[0] * (n_dims > 1 ? ne[1] : 1);
    if (s->retype && !strcmp(s->retype, name)) {       /* IQ4_NL: 32 elements in 18 bytes */
        gb_tensor(b, name, (uint32_t)n_dims, ne, 20, NULL, (size_t)(n / 32 * 18));
        return;
    }
    float *w = malloc(n * sizeof *w);
    for (uint64_t i = 0; i < n; i++) w[i] = fill != 0 ? fill : 0.02f * (float)((i * 7 + 3) % 11) - 0.1f;
    if (s->poison && !strcmp(s->poison, name)) {
        w[s->poison_index] = s->poison_value;
        if (s->poison_type == 1) {                     /* F16 copy of the same values */
            uint16_t *h = malloc(n * sizeof *h);
            for (uint64_t i = 0; i < n; i++) h[i] = ll_fp32_to_fp16(w[i]);
            gb_tensor(b, name, (uint32_t)n_dims, ne, 1, h, (size_t)n * 2);
            free(h);
            free(w);
            return;
        }
    }
    gb_tensor_f32(b, name, (uint32_t)n_dims, ne, w);
    free(w);
}

static void build(const spec *s, unsigned char **buf, size_t *len) {
    gguf_builder b;
    gb_init(&b, 3);
    if (s->byte_align_pad) {
        gb_kv_u32(&b, "general.alignment", 1);
        char pad[8] = "xxxxxxx";
        gb_kv_strn(&b, "general.name", pad, s->byte_align_pad < 8 ? s->byte_align_pad : 7);
    }
    if (s->arch) gb_kv_str(&b, "general.architecture", s->arch);
    kv_int(&b, "llama.block_count", s->block_count);
    kv_int(&b, "llama.context_length", s->context_length);
    kv_int(&b, "llama.embedding_length", s->embedding_length);
    kv_int(&b, "llama.feed_forward_length", s->feed_forward_length);
    if (s->head_count_arr) gb_kv_arr_u32(&b, "llama.attention.head_count", s->head_count_arr, s->n_head_count_arr);
    else kv_int(&b, "llama.attention.head_count", s->head_count);
    kv_int(&b, "llama.attention.head_count_kv", s->head_count_kv);
    kv_int(&b, "llama.attention.key_length", s->key_length);
    kv_int(&b, "llama.rope.dimension_count", s->rope_dims);
    kv_int(&b, "llama.vocab_size", s->vocab_size);
    if (s->eps == s->eps) gb_kv_f32(&b, "llama.attention.layer_norm_rms_epsilon", s->eps);

    const char *toks[NV] = { "<unk>", "<s>", "</s>", "\xe2\x96\x81" "a", "b", "c", "\xe2\x96\x81" "ab", "d" };
    float scores[NV] = { 0, 0, 0, -1, -2, -3, -4, -5 };
    int32_t types[NV] = { 2, 3, 3, 1, 1, 1, 1, 1 };
    gb_kv_str(&b, "tokenizer.ggml.model", "llama");
    gb_kv_arr_str(&b, "tokenizer.ggml.tokens", toks, NV);
    gb_kv_arr_f32(&b, "tokenizer.ggml.scores", scores, NV);
    gb_kv_arr_i32(&b, "tokenizer.ggml.token_type", types, NV);
    gb_kv_u32(&b, "tokenizer.ggml.bos_token_id", 1);
    gb_kv_u32(&b, "tokenizer.ggml.eos_token_id", 2);

    put_tensor(&b, s, "token_embd.weight", D, s->emb_rows, 2, 0);
    put_tensor(&b, s, "output_norm.weight", D, 1, 1, 1.0f);
    if (s->with_output) put_tensor(&b, s, "output.weight", D, NV, 2, 0);
    char name[64];
    for (int64_t l = 0; l < s->n_layers_built; l++) {
#define T(suffix, ne0, ne1, nd, fill) \
        (snprintf(name, sizeof name, "blk.%lld." suffix, (long long)l), put_tensor(&b, s, name, ne0, ne1, nd, fill))
        T("attn_norm.weight", D, 1, 1, 1.0f);
        T("attn_q.weight", D, NH * HD, 2, 0);
        T("attn_k.weight", D, NKV * HD, 2, 0);
        T("attn_v.weight", D, NKV * HD, 2, 0);
        T("attn_output.weight", NH * HD, D, 2, 0);
        T("ffn_norm.weight", D, 1, 1, 1.0f);
        T("ffn_gate.weight", D, FF, 2, 0);
        T("ffn_up.weight", D, FF, 2, 0);
        T("ffn_down.weight", FF, D, 2, 0);
#undef T
    }
    if (s->extra) put_tensor(&b, s, s->extra, D, 1, 1, 1.0f);
    if (s->byte_align_pad) {
        const float rf[HD / 2] = { 1, 1, 2, 4 };
        uint64_t ne[1] = { HD / 2 };
        gb_tensor_f32(&b, "rope_freqs.weight", 1, ne, rf);
    }
    gb_finish(&b, buf, len);
    gb_free(&b);
}

/* Load the spec'd file from memory; returns the status, fills err, frees everything. When
 * keep is not NULL and loading succeeds, the model is handed back (with its buffer). */
static ll_status try_load(const spec *s, ll_error *err, ll_model **keep, unsigned char **keep_buf) {
    unsigned char *buf;
    size_t len;
    build(s, &buf, &len);
    ll_gguf *g = NULL;
    ll_status st = ll_gguf_parse(&g, buf, len, err);
    CHECK_MSG(st == LL_OK, "the container itself must be valid: %s", err->msg);
    if (st != LL_OK) { free(buf); return st; }
    ll_model *m = NULL;
    st = ll_model_from_gguf(&m, g, NULL, err);
    CHECK(st == LL_OK ? m != NULL : m == NULL);
    if (st == LL_OK && keep) { *keep = m; *keep_buf = buf; return st; }
    ll_model_free(m);
    free(buf);
    return st;
}

static void expect(const spec *s, ll_status want, const char *frag1, const char *frag2) {
    ll_error err = { 0 };
    ll_status st = try_load(s, &err, NULL, NULL);
    CHECK_MSG(st == want, "got %s, want %s: %s", ll_status_name(st), ll_status_name(want), err.msg);
    if (frag1) CHECK_STR_CONTAINS(err.msg, frag1);
    if (frag2) CHECK_STR_CONTAINS(err.msg, frag2);
}

/* The same through ll_model_load on a temp file. */
static void expect_file(const spec *s, ll_status want, const char *frag) {
    unsigned char *buf;
    size_t len;
    build(s, &buf, &len);
    char path[] = "/tmp/ll_model_fault_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0) { free(buf); return; }
    close(fd);
    CHECK(gb_write_file(path, buf, len) == 0);
    free(buf);
    ll_error err = { 0 };
    ll_model *m = NULL;
    ll_status st = ll_model_load(&m, path, NULL, &err);
    CHECK_MSG(st == want, "file: got %s, want %s: %s", ll_status_name(st), ll_status_name(want), err.msg);
    if (frag) CHECK_STR_CONTAINS(err.msg, frag);
    ll_model_free(m);
    unlink(path);
}

static void test_good_model_loads_and_decodes(void) {
    spec s = base();
    ll_error err = { 0 };
    ll_model *m = NULL;
    unsigned char *buf = NULL;
    CHECK_MSG(try_load(&s, &err, &m, &buf) == LL_OK, "%s", err.msg);
    if (!m) return;
    CHECK_EQ_INT(m->hp.head_dim_k, HD);
    CHECK_EQ_INT(m->hp.n_rot, HD);
    ll_ctx *c = NULL;
    ll_ctx_params p = ll_ctx_default_params();
    p.n_threads = 2;
    CHECK(ll_ctx_init(&c, m, &p, &err) == LL_OK);
    CHECK_EQ_INT(ll_ctx_n_ctx(c), 64);
    int32_t ids[4] = { 1, 3, 4, 7 };
    CHECK(ll_ctx_decode(c, ids, 4, NULL, &err) == LL_OK);
    const float *lg = ll_ctx_logits(c, -1);
    bool finite = lg != NULL;
    for (int i = 0; lg && i < NV; i++) finite = finite && isfinite(lg[i]);
    CHECK(finite);
    ll_ctx_free(c);
    ll_model_free(m);
    free(buf);
    expect_file(&s, LL_OK, NULL);
}

static void test_G45_missing_architecture(void) {
    spec s = base();
    s.arch = NULL;
    expect(&s, LL_ERR_FORMAT, "general.architecture", NULL);
    expect_file(&s, LL_ERR_FORMAT, "general.architecture");
}

static void test_G46_unsupported_architecture(void) {
    spec s = base();
    s.arch = "bert";
    expect(&s, LL_ERR_UNSUPPORTED, "'bert'", "llama");
    s.arch = "mamba";
    expect(&s, LL_ERR_UNSUPPORTED, "'mamba'", "supported: llama");
}

static void test_G47_missing_required_hparam(void) {
    static const char *keys[] = { "llama.block_count", "llama.embedding_length",
                                  "llama.feed_forward_length", "llama.attention.head_count",
                                  "llama.context_length" };
    for (int k = 0; k < 5; k++) {
        spec s = base();
        int64_t *f[] = { &s.block_count, &s.embedding_length, &s.feed_forward_length,
                         &s.head_count, &s.context_length };
        *f[k] = OMIT;
        expect(&s, LL_ERR_FORMAT, keys[k], "missing");
    }
    /* Optional keys take their documented defaults. */
    spec s = base();
    s.head_count_kv = OMIT;
    s.eps = NAN;
    ll_error err = { 0 };
    ll_model *m = NULL;
    unsigned char *buf = NULL;
    /* head_count_kv absent = head_count: K/V tensors of NKV heads no longer fit (G53). */
    CHECK(try_load(&s, &err, NULL, NULL) == LL_ERR_FORMAT);
    CHECK_STR_CONTAINS(err.msg, "attn_k.weight");
    s.head_count_kv = NKV;
    err = (ll_error){ 0 };
    CHECK_MSG(try_load(&s, &err, &m, &buf) == LL_OK, "%s", err.msg);
    if (m) {
        CHECK_NEAR(m->hp.rms_eps, 1e-5, 1e-12);
        CHECK_NEAR(m->hp.rope_base, 10000.0, 0);
        CHECK_EQ_INT(m->hp.n_rot, HD);
        CHECK_EQ_INT(m->hp.head_dim_v, HD);
        ll_model_free(m);
        free(buf);
    }
}

static void test_G48_absurd_hparams(void) {
    spec s = base();
    s.block_count = 0;
    expect(&s, LL_ERR_FORMAT, "llama.block_count", "0");
    s.block_count = 5000;
    expect(&s, LL_ERR_FORMAT, "llama.block_count", "5000");
    s = base();
    s.head_count = 0;
    expect(&s, LL_ERR_FORMAT, "llama.attention.head_count", "is 0");
    s = base();
    s.embedding_length = 0;
    expect(&s, LL_ERR_FORMAT, "llama.embedding_length", "is 0");
    s = base();
    s.context_length = 0;
    expect(&s, LL_ERR_FORMAT, "llama.context_length", "is 0");
    s = base();
    s.block_count = -3;                       /* written as i64 */
    expect(&s, LL_ERR_FORMAT, "llama.block_count", "-3");
}

static void test_G49_head_count_not_dividing_embedding(void) {
    spec s = base();
    s.head_count = 3;
    s.head_count_kv = 1;
    expect(&s, LL_ERR_FORMAT, "embedding_length 32 not divisible by head_count 3", NULL);
}

static void test_G50_bad_head_count_kv(void) {
    spec s = base();
    s.head_count_kv = 0;
    expect(&s, LL_ERR_FORMAT, "head_count_kv 0", "head_count 4");
    s.head_count_kv = 8;
    expect(&s, LL_ERR_FORMAT, "head_count_kv 8", "head_count 4");
    s.head_count_kv = 3;
    expect(&s, LL_ERR_FORMAT, "head_count_kv 3", "head_count 4");
}

static void test_G51_bad_rope_dimensions(void) {
    spec s = base();
    s.rope_dims = 7;
    expect(&s, LL_ERR_FORMAT, "dimension_count 7", NULL);
    s.rope_dims = 16;
    expect(&s, LL_ERR_FORMAT, "dimension_count 16", "head dim 8");
    s.rope_dims = 4;                          /* even, fits, but llama needs n_rot = key_length */
    expect(&s, LL_ERR_FORMAT, "dimension_count 4", NULL);
}

static void test_G52_per_layer_array(void) {
    spec s = base();
    static const uint32_t two[2] = { NH, NH };
    s.head_count_arr = two;
    s.n_head_count_arr = 2;                   /* block_count is 1 */
    expect(&s, LL_ERR_FORMAT, "llama.attention.head_count", "array");
    /* One entry per layer, all equal: accepted. */
    s.block_count = 2;
    s.n_layers_built = 2;
    ll_error err = { 0 };
    CHECK_MSG(try_load(&s, &err, NULL, NULL) == LL_OK, "%s", err.msg);
    static const uint32_t differ[2] = { NH, 2 };
    s.head_count_arr = differ;
    expect(&s, LL_ERR_UNSUPPORTED, "llama.attention.head_count", "per-layer");
}

static void test_G53_tensor_shape_mismatch(void) {
    spec s = base();
    s.reshape = "blk.0.attn_q.weight";
    expect(&s, LL_ERR_FORMAT, "tensor 'blk.0.attn_q.weight' has shape [32, 33], expected [32, 32]", NULL);
    s.reshape = "blk.0.ffn_norm.weight";
    expect(&s, LL_ERR_FORMAT, "tensor 'blk.0.ffn_norm.weight' has shape [33], expected [32]", NULL);
    s.reshape = "output.weight";
    expect(&s, LL_ERR_FORMAT, "tensor 'output.weight' has shape [32, 9], expected [32, 8]", NULL);
    /* hparams that disagree with honest tensors are the same fault */
    s = base();
    s.feed_forward_length = 48;
    expect(&s, LL_ERR_FORMAT, "has shape [32, 64], expected [32, 48]", NULL);
}

static void test_G54_missing_tensor(void) {
    spec s = base();
    s.skip = "blk.0.ffn_down.weight";
    expect(&s, LL_ERR_FORMAT, "blk.0.ffn_down.weight", "missing");
    s.skip = "output_norm.weight";
    expect(&s, LL_ERR_FORMAT, "output_norm.weight", NULL);
    s.skip = "token_embd.weight";
    expect(&s, LL_ERR_FORMAT, "token_embd.weight", NULL);
    /* output.weight absent: tied to token_embd.weight, not an error. */
    s = base();
    s.with_output = false;
    ll_error err = { 0 };
    ll_model *m = NULL;
    unsigned char *buf = NULL;
    CHECK_MSG(try_load(&s, &err, &m, &buf) == LL_OK, "%s", err.msg);
    if (m) {
        CHECK(m->tied_output);
        CHECK(m->output.data == m->tok_embd.data);
        ll_model_free(m);
        free(buf);
    }
}

static void test_G55_layer_out_of_range_and_unknown_names(void) {
    spec s = base();
    s.extra = "blk.1.attn_norm.weight";       /* block_count is 1 */
    expect(&s, LL_ERR_FORMAT, "blk.1.attn_norm.weight", "block_count is 1");
    s.extra = "blk.4096.attn_q.weight";
    expect(&s, LL_ERR_FORMAT, "layer 4096", NULL);
    s.block_count = 1;
    s.n_layers_built = 2;                     /* a whole extra layer */
    s.extra = NULL;
    expect(&s, LL_ERR_FORMAT, "is for layer 1", NULL);
    /* Unknown names are ignored (debug log). */
    s = base();
    s.extra = "blk.0.attn_rot_embd";
    ll_error err = { 0 };
    CHECK_MSG(try_load(&s, &err, NULL, NULL) == LL_OK, "%s", err.msg);
    s.extra = "mystery.weight";
    err = (ll_error){ 0 };
    CHECK_MSG(try_load(&s, &err, NULL, NULL) == LL_OK, "%s", err.msg);
}

static void test_G56_vocab_size_mismatch(void) {
    spec s = base();
    s.emb_rows = 9;                           /* 8 tokens */
    expect(&s, LL_ERR_FORMAT, "8 tokens", "9 rows");
    s.emb_rows = 7;
    expect(&s, LL_ERR_FORMAT, "8 tokens", "7 rows");
    s = base();
    s.vocab_size = 10;
    expect(&s, LL_ERR_FORMAT, "vocab_size is 10", "8 tokens");
}

static void test_G35_unsupported_tensor_type(void) {
    spec s = base();
    s.retype = "blk.0.attn_q.weight";
    expect(&s, LL_ERR_UNSUPPORTED, "tensor 'blk.0.attn_q.weight' has type IQ4_NL", "supported: F32");
    expect(&s, LL_ERR_UNSUPPORTED, "Q4_K", "Q6_K");
    s.retype = "token_embd.weight";
    expect(&s, LL_ERR_UNSUPPORTED, "'token_embd.weight' has type IQ4_NL", NULL);
}

static void test_G70_nan_or_inf_in_norm(void) {
    spec s = base();
    s.poison = "blk.0.ffn_norm.weight";
    s.poison_index = 17;
    s.poison_value = NAN;
    expect(&s, LL_ERR_FORMAT, "tensor 'blk.0.ffn_norm.weight' has NaN at index 17", NULL);
    s.poison = "output_norm.weight";
    s.poison_index = 0;
    s.poison_value = INFINITY;
    expect(&s, LL_ERR_FORMAT, "tensor 'output_norm.weight' has Inf at index 0", NULL);
    s.poison = "blk.0.attn_norm.weight";      /* F16 norm weights are scanned too */
    s.poison_type = 1;
    s.poison_index = 31;
    s.poison_value = -INFINITY;
    expect(&s, LL_ERR_FORMAT, "tensor 'blk.0.attn_norm.weight' has Inf at index 31", NULL);
    /* A NaN in a big matrix is found only by the opt-in full check. */
    s = base();
    s.poison = "blk.0.ffn_up.weight";
    s.poison_index = 100;
    s.poison_value = NAN;
    ll_error err = { 0 };
    CHECK(try_load(&s, &err, NULL, NULL) == LL_OK);
    unsigned char *buf;
    size_t len;
    build(&s, &buf, &len);
    ll_gguf *g = NULL;
    CHECK(ll_gguf_parse(&g, buf, len, &err) == LL_OK);
    ll_model *m = NULL;
    ll_model_params mp = { .check_tensors = true };
    CHECK(ll_model_from_gguf(&m, g, &mp, &err) == LL_ERR_FORMAT);
    CHECK_STR_CONTAINS(err.msg, "tensor 'blk.0.ffn_up.weight' has NaN at index 100");
    CHECK(m == NULL);
    free(buf);
}

/* G26: an alignment below 8 (even 1) is warned about and loaded, so tensor data can start at
 * any byte. rope_freqs.weight is the one tensor the model reads as floats: it must be copied,
 * not read through a misaligned float pointer (UBSan: misaligned load in load.c before). */
static void test_G26_byte_alignment_rope_freqs(void) {
    for (size_t pad = 1; pad <= 4; pad++) {         /* one of these puts the data at an odd byte */
        spec s = base();
        s.byte_align_pad = pad;
        ll_error err = { 0 };
        ll_model *m = NULL;
        unsigned char *buf = NULL;
        CHECK_MSG(try_load(&s, &err, &m, &buf) == LL_OK, "%s", err.msg);
        if (!m) continue;
        CHECK(m->rope_freqs != NULL && ((uintptr_t)m->rope_freqs & 3) == 0);
        if (m->rope_freqs)
            CHECK(m->rope_freqs[0] == 1 && m->rope_freqs[1] == 1 && m->rope_freqs[2] == 2 &&
                  m->rope_freqs[3] == 4);
        ll_ctx *c = NULL;
        ll_ctx_params p = ll_ctx_default_params();
        p.n_threads = 1;
        CHECK(ll_ctx_init(&c, m, &p, &err) == LL_OK);
        int32_t ids[3] = { 1, 3, 4 };
        CHECK(c && ll_ctx_decode(c, ids, 3, NULL, &err) == LL_OK);
        ll_ctx_free(c);
        ll_model_free(m);
        free(buf);
    }
}

int main(void) {
    RUN(test_good_model_loads_and_decodes);
    RUN(test_G45_missing_architecture);
    RUN(test_G46_unsupported_architecture);
    RUN(test_G47_missing_required_hparam);
    RUN(test_G48_absurd_hparams);
    RUN(test_G49_head_count_not_dividing_embedding);
    RUN(test_G50_bad_head_count_kv);
    RUN(test_G51_bad_rope_dimensions);
    RUN(test_G52_per_layer_array);
    RUN(test_G53_tensor_shape_mismatch);
    RUN(test_G54_missing_tensor);
    RUN(test_G55_layer_out_of_range_and_unknown_names);
    RUN(test_G56_vocab_size_mismatch);
    RUN(test_G35_unsupported_tensor_type);
    RUN(test_G70_nan_or_inf_in_norm);
    RUN(test_G26_byte_alignment_rope_freqs);
    return test_summary();
}
