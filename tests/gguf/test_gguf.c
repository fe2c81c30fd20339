/* Tests for src/gguf: the real GGUF files in ../shared (versions, counts, known values,
 * typed getters), files built with tests/gguf_builder.h, and an allocation-failure loop
 * proving every error path frees what it built (run under `make asan` to see leaks). */
#include "../test.h"
#include "../gguf_builder.h"

#include "gguf/gguf.h"
#include "quant/quant.h"

#include <stdint.h>

static ll_gguf *open_shared(const char *rel) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", LL_SHARED_DIR, rel);
    ll_error err = {0};
    ll_gguf *g = NULL;
    ll_status st = ll_gguf_open(&g, path, &err);
    CHECK_MSG(st == LL_OK, "%s: %s", rel, err.msg);
    return g;
}

static void test_tokenizer_files_have_no_tensors(void) {
    static const struct { const char *file; size_t n_kv; const char *model; uint32_t n_tokens; } cases[] = {
        { "tokenizer/llama2-spm.gguf", 22, "llama", 32000 },
        { "tokenizer/llama3.gguf", 20, "gpt2", 128256 },
        { "tokenizer/smollm2.gguf", 33, "gpt2", 49152 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ll_gguf *g = open_shared(cases[i].file);
        if (!g) continue;
        ll_error err = {0};
        CHECK_EQ_INT(ll_gguf_version(g), 3);
        CHECK_EQ_INT(ll_gguf_n_kv(g), cases[i].n_kv);
        CHECK_EQ_INT(ll_gguf_n_tensors(g), 0);
        ll_str model = {0};
        bool found = false;
        CHECK(ll_gguf_get_str(g, "tokenizer.ggml.model", &model, &found, &err) == LL_OK && found);
        CHECK(ll_str_eq_c(model, cases[i].model));
        const ll_gguf_kv *toks = NULL;
        CHECK(ll_gguf_get_arr(g, "tokenizer.ggml.tokens", LL_GGUF_TYPE_STRING, &toks, &found, &err) == LL_OK);
        CHECK(found && toks && toks->v.arr.n == cases[i].n_tokens && toks->v.arr.strs != NULL);
        ll_gguf_close(g);
    }
}

static void test_llama2_spm_values(void) {
    ll_gguf *g = open_shared("tokenizer/llama2-spm.gguf");
    if (!g) return;
    ll_error err = {0};
    bool found;
    const ll_gguf_kv *toks = NULL, *scores = NULL, *types = NULL;
    CHECK(ll_gguf_get_arr(g, "tokenizer.ggml.tokens", LL_GGUF_TYPE_STRING, &toks, &found, &err) == LL_OK);
    CHECK(ll_gguf_get_arr(g, "tokenizer.ggml.scores", LL_GGUF_TYPE_FLOAT32, &scores, &found, &err) == LL_OK);
    CHECK(ll_gguf_get_arr(g, "tokenizer.ggml.token_type", LL_GGUF_TYPE_INT32, &types, &found, &err) == LL_OK);
    if (toks && scores && types) {
        CHECK(ll_str_eq_c(toks->v.arr.strs[0], "<unk>"));
        CHECK(ll_str_eq_c(toks->v.arr.strs[1], "<s>"));
        CHECK(ll_str_eq_c(toks->v.arr.strs[3], "<0x00>"));
        CHECK_EQ_INT(scores->v.arr.n, 32000);
        int32_t t[4];
        memcpy(t, types->v.arr.data, sizeof t);
        CHECK_EQ_INT(t[0], 2);   /* unknown */
        CHECK_EQ_INT(t[1], 3);   /* control */
        CHECK_EQ_INT(t[3], 6);   /* byte */
    }
    bool b = false;
    CHECK(ll_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b, &found, &err) == LL_OK && found && b);
    CHECK(ll_gguf_get_bool(g, "tokenizer.ggml.add_eos_token", &b, &found, &err) == LL_OK && found && !b);
    float eps = 0;
    CHECK(ll_gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", &eps, &found, &err) == LL_OK && found);
    CHECK_NEAR(eps, 1e-5, 1e-9);
    uint32_t u = 0;
    CHECK(ll_gguf_get_u32(g, "llama.vocab_size", &u, &found, &err) == LL_OK && found);
    CHECK_EQ_INT(u, 32000);
    ll_gguf_close(g);
}

static void test_stories260K(void) {
    ll_gguf *g = open_shared("reference/stories260K/stories260K.gguf");
    if (!g) return;
    ll_error err = {0};
    bool found = false;
    CHECK_EQ_INT(ll_gguf_version(g), 3);
    CHECK_EQ_INT(ll_gguf_n_kv(g), 17);
    CHECK_EQ_INT(ll_gguf_n_tensors(g), 48);
    CHECK_EQ_INT(ll_gguf_alignment(g), 32);
    CHECK_EQ_INT(ll_gguf_file_size(g), 1186304);
    /* header 24 + KVs + infos end at byte 15076, padded to 32 */
    CHECK_EQ_INT(ll_gguf_data_offset(g), 15104);
    uint32_t n_embd = 0;
    CHECK(ll_gguf_get_u32(g, "llama.embedding_length", &n_embd, &found, &err) == LL_OK && found);
    CHECK_EQ_INT(n_embd, 64);
    int64_t ff = 0;
    CHECK(ll_gguf_get_i64(g, "llama.feed_forward_length", &ff, &found, &err) == LL_OK && found);
    CHECK_EQ_INT(ff, 172);
    const ll_gguf_tensor *t = ll_gguf_find_tensor(g, "token_embd.weight");
    CHECK(t != NULL);
    if (t) {
        CHECK_EQ_INT(t->n_dims, 2);
        CHECK_EQ_INT(t->ne[0], 64);
        CHECK_EQ_INT(t->ne[1], 512);
        CHECK_EQ_INT(t->ne[2], 1);
        CHECK_EQ_INT(t->type, LL_TYPE_F32);
        CHECK_EQ_INT(t->offset, 0);
        CHECK_EQ_INT(t->n_bytes, 64 * 512 * 4);
        CHECK(t->data == (const unsigned char *)ll_gguf_tensor_at(g, 0)->data);
    }
    const ll_gguf_tensor *last = ll_gguf_tensor_at(g, 47);
    CHECK(last && ll_str_eq_c(last->name, "blk.4.ffn_norm.weight") && last->offset == 1170944);
    CHECK(ll_gguf_tensor_at(g, 48) == NULL);
    CHECK(ll_gguf_find_tensor(g, "blk.5.ffn_norm.weight") == NULL);
    CHECK(ll_gguf_find_tensor(g, "") == NULL);
    /* every tensor is inside the file and F32 */
    for (size_t i = 0; i < ll_gguf_n_tensors(g); i++) {
        const ll_gguf_tensor *ti = ll_gguf_tensor_at(g, i);
        CHECK(ti->type == LL_TYPE_F32);
        CHECK(ll_gguf_data_offset(g) + ti->offset + ti->n_bytes <= ll_gguf_file_size(g));
    }
    ll_gguf_close(g);
}

static void test_tiny_v2k_rope_freqs(void) {
    static const char *files[] = {
        "reference/llama3.2-tiny/llama3.2-tiny-v2k-F32.gguf", "reference/llama3.2-tiny/llama3.2-tiny-v2k-Q4_K_M.gguf",
        "reference/llama3.2-tiny/llama3.2-tiny-v2k-Q2_K.gguf", "reference/llama3.2-tiny/llama3.2-tiny-v2k-BF16.gguf",
    };
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        ll_gguf *g = open_shared(files[f]);
        if (!g) continue;
        CHECK_EQ_INT(ll_gguf_n_kv(g), f == 0 ? 26 : 27);   /* + general.quantization_version */
        CHECK_EQ_INT(ll_gguf_n_tensors(g), 21);
        const ll_gguf_tensor *t = ll_gguf_find_tensor(g, "rope_freqs.weight");
        CHECK(t && t->n_dims == 1 && t->ne[0] == 32 && t->type == LL_TYPE_F32 && t->n_bytes == 128);
        if (t) {
            float v[32];
            memcpy(v, t->data, sizeof v);
            CHECK_NEAR(v[0], 1.0, 0);
            CHECK_NEAR(v[18], 32.0, 0);
            CHECK_NEAR(v[31], 32.0, 0);
        }
        uint32_t ctx = 0;
        bool found = false;
        ll_error err = {0};
        CHECK(ll_gguf_get_u32(g, "llama.context_length", &ctx, &found, &err) == LL_OK && ctx == 131072);
        ll_gguf_close(g);
    }
}

static void test_tiny_full_mixed_types(void) {
    ll_gguf *g = open_shared("reference/llama3.2-tiny/llama3.2-tiny-full-F16-embQ4_0.gguf");
    if (!g) return;
    const ll_gguf_tensor *emb = ll_gguf_find_tensor(g, "token_embd.weight");
    CHECK(emb && emb->type == LL_TYPE_Q4_0);
    if (emb) CHECK_EQ_INT(emb->n_bytes, (uint64_t)emb->ne[0] / 32 * 18 * (uint64_t)emb->ne[1]);
    const ll_gguf_tensor *q = ll_gguf_find_tensor(g, "blk.0.attn_q.weight");
    CHECK(q && q->type == LL_TYPE_F16);
    ll_gguf_close(g);
}

/* A small good file with every KV type, built in memory. */
static void build_all_types(unsigned char **buf, size_t *len) {
    gguf_builder b;
    gb_init(&b, 2);
    gb_kv_u8(&b, "t.u8", 200);
    gb_kv_i8(&b, "t.i8", -5);
    gb_kv_u16(&b, "t.u16", 65535);
    gb_kv_i16(&b, "t.i16", -300);
    gb_kv_u32(&b, "t.u32", 4000000000u);
    gb_kv_i32(&b, "t.i32", -7);
    gb_kv_f32(&b, "t.f32", 0.5f);
    gb_kv_bool(&b, "t.bool", 1);
    gb_kv_str(&b, "t.str", "hello");
    gb_kv_u64(&b, "t.u64", 1ull << 40);
    gb_kv_i64(&b, "t.i64", -(1ll << 40));
    gb_kv_f64(&b, "t.f64", 2.25);
    gb_kv_u64(&b, "t.u64big", UINT64_MAX);
    const char *strs[] = { "a", "", "ccc" };
    gb_kv_arr_str(&b, "t.arr_str", strs, 3);
    int32_t ints[] = { 1, -2, 3 };
    gb_kv_arr_i32(&b, "t.arr_i32", ints, 3);
    float fl[] = { 1.5f, 2.5f };
    gb_kv_arr_f32(&b, "t.arr_f32", fl, 2);
    gb_kv_arr_begin(&b, "t.arr_empty", GB_STR, 0);
    gb_kv_u32(&b, "general.alignment", 64);
    float w[16];
    for (int i = 0; i < 16; i++) w[i] = (float)i;
    uint64_t ne2[2] = { 4, 4 }, ne1[1] = { 3 };
    gb_tensor_f32(&b, "w2", 2, ne2, w);
    gb_tensor_f32(&b, "w1", 1, ne1, w);
    gb_finish(&b, buf, len);
    gb_free(&b);
}

static void test_builder_all_types_and_getters(void) {
    unsigned char *buf;
    size_t len;
    build_all_types(&buf, &len);
    ll_error err = {0};
    ll_gguf *g = NULL;
    CHECK_MSG(ll_gguf_parse(&g, buf, len, &err) == LL_OK, "%s", err.msg);
    if (!g) { free(buf); return; }
    CHECK_EQ_INT(ll_gguf_version(g), 2);
    CHECK_EQ_INT(ll_gguf_n_kv(g), 18);
    CHECK_EQ_INT(ll_gguf_alignment(g), 64);
    CHECK_EQ_INT(ll_gguf_data_offset(g) % 64, 0);
    bool found;
    uint32_t u = 0;
    int64_t i = 0;
    float f = 0;
    bool bo = false;
    ll_str s = {0};
    CHECK(ll_gguf_get_u32(g, "t.u8", &u, &found, &err) == LL_OK && found && u == 200);
    CHECK(ll_gguf_get_u32(g, "t.u16", &u, &found, &err) == LL_OK && u == 65535);
    CHECK(ll_gguf_get_u32(g, "t.u32", &u, &found, &err) == LL_OK && u == 4000000000u);
    CHECK(ll_gguf_get_i64(g, "t.i8", &i, &found, &err) == LL_OK && i == -5);
    CHECK(ll_gguf_get_i64(g, "t.i16", &i, &found, &err) == LL_OK && i == -300);
    CHECK(ll_gguf_get_i64(g, "t.i64", &i, &found, &err) == LL_OK && i == -(1ll << 40));
    CHECK(ll_gguf_get_i64(g, "t.u64", &i, &found, &err) == LL_OK && i == (1ll << 40));
    CHECK(ll_gguf_get_f32(g, "t.f32", &f, &found, &err) == LL_OK && f == 0.5f);
    CHECK(ll_gguf_get_f32(g, "t.f64", &f, &found, &err) == LL_OK && f == 2.25f);
    CHECK(ll_gguf_get_bool(g, "t.bool", &bo, &found, &err) == LL_OK && bo);
    CHECK(ll_gguf_get_str(g, "t.str", &s, &found, &err) == LL_OK && ll_str_eq_c(s, "hello"));
    CHECK(err.code == LL_OK);

    /* absent: LL_OK, not found, output untouched */
    u = 77;
    CHECK(ll_gguf_get_u32(g, "t.none", &u, &found, &err) == LL_OK && !found && u == 77);
    CHECK(ll_gguf_get_u32(g, "t.none", &u, NULL, &err) == LL_OK);

    /* integers that do not fit, and wrong types (G25) */
    ll_error e1 = {0};
    CHECK(ll_gguf_get_u32(g, "t.i32", &u, &found, &e1) == LL_ERR_FORMAT);
    CHECK_STR_CONTAINS(e1.msg, "does not fit in u32");
    ll_error e2 = {0};
    CHECK(ll_gguf_get_u32(g, "t.u64", &u, &found, &e2) == LL_ERR_FORMAT);
    ll_error e3 = {0};
    CHECK(ll_gguf_get_i64(g, "t.u64big", &i, &found, &e3) == LL_ERR_FORMAT);
    CHECK_STR_CONTAINS(e3.msg, "does not fit in i64");
    ll_error e4 = {0};
    CHECK(ll_gguf_get_u32(g, "t.str", &u, &found, &e4) == LL_ERR_FORMAT && !found);
    CHECK_STR_CONTAINS(e4.msg, "key 't.str' has type string, expected u32");
    ll_error e5 = {0};
    CHECK(ll_gguf_get_f32(g, "t.i32", &f, &found, &e5) == LL_ERR_FORMAT);
    CHECK_STR_CONTAINS(e5.msg, "has type i32, expected f32");
    ll_error e6 = {0};
    CHECK(ll_gguf_get_bool(g, "t.u8", &bo, &found, &e6) == LL_ERR_FORMAT);
    ll_error e7 = {0};
    CHECK(ll_gguf_get_str(g, "t.arr_str", &s, &found, &e7) == LL_ERR_FORMAT);
    CHECK_STR_CONTAINS(e7.msg, "has type string[], expected string");

    /* arrays: element type must match exactly */
    const ll_gguf_kv *a = NULL;
    CHECK(ll_gguf_get_arr(g, "t.arr_str", LL_GGUF_TYPE_STRING, &a, &found, &err) == LL_OK && found);
    if (a) {
        CHECK_EQ_INT(a->v.arr.n, 3);
        CHECK(ll_str_eq_c(a->v.arr.strs[0], "a") && a->v.arr.strs[1].n == 0 && ll_str_eq_c(a->v.arr.strs[2], "ccc"));
    }
    CHECK(ll_gguf_get_arr(g, "t.arr_i32", LL_GGUF_TYPE_INT32, &a, &found, &err) == LL_OK && a->v.arr.n == 3);
    int32_t iv[3];
    memcpy(iv, a->v.arr.data, sizeof iv);
    CHECK(iv[0] == 1 && iv[1] == -2 && iv[2] == 3);
    CHECK(ll_gguf_get_arr(g, "t.arr_empty", LL_GGUF_TYPE_STRING, &a, &found, &err) == LL_OK && a->v.arr.n == 0);
    ll_error e8 = {0};
    CHECK(ll_gguf_get_arr(g, "t.arr_i32", LL_GGUF_TYPE_UINT32, &a, &found, &e8) == LL_ERR_FORMAT);
    CHECK_STR_CONTAINS(e8.msg, "has type i32[], expected u32[]");
    ll_error e9 = {0};
    CHECK(ll_gguf_get_arr(g, "t.u8", LL_GGUF_TYPE_UINT8, &a, &found, &e9) == LL_ERR_FORMAT);
    CHECK_STR_CONTAINS(e9.msg, "has type u8, expected u8[]");

    /* tensors: aligned to 64, data views */
    const ll_gguf_tensor *w1 = ll_gguf_find_tensor(g, "w1"), *w2 = ll_gguf_find_tensor(g, "w2");
    CHECK(w1 && w2);
    if (w1 && w2) {
        CHECK_EQ_INT(w2->offset, 0);
        CHECK_EQ_INT(w1->offset, 64);
        CHECK_EQ_INT(w1->n_bytes, 12);
        float x;
        memcpy(&x, (const float *)w2->data + 5, 4);
        CHECK(x == 5.0f);
        memcpy(&x, (const float *)w1->data + 2, 4);
        CHECK(x == 2.0f);
    }
    CHECK(strcmp(ll_gguf_type_name(LL_GGUF_TYPE_FLOAT64), "f64") == 0);
    CHECK(strcmp(ll_gguf_type_name(99), "?") == 0);
    ll_gguf_close(g);
    free(buf);
}

/* Every allocation the parser makes can fail: the result is LL_ERR_NOMEM (never a crash),
 * and ASan's leak check at exit shows nothing was lost on any path. */
static void test_alloc_failure_injection(void) {
    unsigned char *buf;
    size_t len;
    build_all_types(&buf, &len);
    bool ok = false;
    for (long n = 0; n < 100 && !ok; n++) {
        ll_error err = {0};
        ll_gguf *g = NULL;
        ll_alloc_fail_after(n);
        ll_status st = ll_gguf_parse(&g, buf, len, &err);
        ll_alloc_fail_after(-1);
        if (st == LL_OK) {
            ok = true;
            CHECK(n >= 5);   /* reader, KV table, tensor table, 2 indexes, string views */
            ll_gguf_close(g);
        } else {
            CHECK_MSG(st == LL_ERR_NOMEM && g == NULL, "n=%ld: %s", n, err.msg);
        }
    }
    CHECK(ok);
    free(buf);

    /* the same over a real file through ll_gguf_open */
    char path[1024];
    snprintf(path, sizeof path, "%s/reference/stories260K/stories260K.gguf", LL_SHARED_DIR);
    ok = false;
    for (long n = 0; n < 100 && !ok; n++) {
        ll_error err = {0};
        ll_gguf *g = NULL;
        ll_alloc_fail_after(n);
        ll_status st = ll_gguf_open(&g, path, &err);
        ll_alloc_fail_after(-1);
        if (st == LL_OK) { ok = true; ll_gguf_close(g); }
        else CHECK_MSG(st == LL_ERR_NOMEM && g == NULL, "n=%ld: %s", n, err.msg);
    }
    CHECK(ok);
}

/* A hostile file may name 2^20 tensors; lookups and duplicate checks stay O(1) each. */
static void test_many_tensors_are_linear(void) {
    gguf_builder b;
    gb_init(&b, 3);
    enum { N = 100000 };
    char name[32];
    uint64_t ne[1] = { 8 };
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "t.%d", i);
        gb_tensor_at(&b, name, 1, ne, LL_TYPE_F32, (uint64_t)i * 32, NULL, 32);
    }
    unsigned char *buf;
    size_t len;
    gb_finish(&b, &buf, &len);
    gb_free(&b);
    ll_error err = {0};
    ll_gguf *g = NULL;
    uint64_t t0 = ll_time_ns();
    CHECK_MSG(ll_gguf_parse(&g, buf, len, &err) == LL_OK, "%s", err.msg);
    double ms = (double)(ll_time_ns() - t0) / 1e6;
    /* A hang or quadratic-slip detector, not a speed test (a loaded or sanitized build is many
     * times slower than the idle figure, which is printed). */
    fprintf(stderr, "note %s: parse of %d tensors took %.0f ms\n", test_cur_name, N, ms);
    CHECK_MSG(ms < 60000, "parse of %d tensors took %.0f ms", N, ms);
    if (g) {
        CHECK_EQ_INT(ll_gguf_n_tensors(g), N);
        const ll_gguf_tensor *t = ll_gguf_find_tensor(g, "t.99999");
        CHECK(t && t->offset == 99999u * 32);
        ll_gguf_close(g);
    }
    free(buf);
}

int main(void) {
    ll_log_set_level(0);
    RUN(test_tokenizer_files_have_no_tensors);
    RUN(test_llama2_spm_values);
    RUN(test_stories260K);
    RUN(test_tiny_v2k_rope_freqs);
    RUN(test_tiny_full_mixed_types);
    RUN(test_builder_all_types_and_getters);
    RUN(test_alloc_failure_injection);
    RUN(test_many_tensors_are_linear);
    return test_summary();
}
