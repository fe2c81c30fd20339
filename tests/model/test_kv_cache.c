/* kv_cache tests: cells per sequence and their operations through the public API: sizes per
 * type and sequence count, refusal of a cache that cannot fit, prefix copy (bit for bit the
 * logits of a recomputation), removal of a range, position shifts with key re-rotation
 * (close to a recomputation at the new positions, per KV type), context shift, and the
 * cells' token ids. */
#include "../test.h"

#include "model/model.h"

#define STORIES LL_SHARED_DIR "/reference/stories260K/stories260K.gguf"
#define TINY_F32 LL_SHARED_DIR "/reference/llama3.2-tiny/llama3.2-tiny-v2k-F32.gguf"
#define TINY_Q4K LL_SHARED_DIR "/reference/llama3.2-tiny/llama3.2-tiny-v2k-Q4_K_M.gguf"

static ll_model *load(const char *path) {
    ll_error err = { 0 };
    ll_model *m = NULL;
    ll_status st = ll_model_load(&m, path, NULL, &err);
    CHECK_MSG(st == LL_OK, "%s: %s", path, err.msg);
    return m;
}

static ll_ctx *make_ctx(ll_model *m, int32_t n_ctx, int32_t n_seq, ll_kv_type t) {
    ll_error err = { 0 };
    ll_ctx *c = NULL;
    ll_ctx_params p = ll_ctx_default_params();
    p.n_ctx = n_ctx;
    p.n_seq_max = n_seq;
    p.n_threads = 2;
    p.type_k = p.type_v = t;
    CHECK_MSG(ll_ctx_init(&c, m, &p, &err) == LL_OK, "%s", err.msg);
    return c;
}

/* Decode ids[0..n) into seq at positions pos0.. with the last entry's logits kept. */
static const float *feed(ll_ctx *c, int32_t seq, const int32_t *ids, int n, int32_t pos0) {
    ll_error err = { 0 };
    ll_batch b;
    if (ll_batch_init(&b, n, &err) != LL_OK) return NULL;
    for (int i = 0; i < n; i++) ll_batch_add(&b, ids[i], pos0 + i, seq, i == n - 1);
    ll_status st = ll_ctx_decode_batch(c, &b, &err);
    CHECK_MSG(st == LL_OK, "%s", err.msg);
    ll_batch_free(&b);
    return st == LL_OK ? ll_ctx_logits_ith(c, n - 1) : NULL;
}

static void test_sizes_per_type_and_sequences(void) {
    ll_model *m = load(TINY_F32);
    if (!m) return;
    /* 2 layers x (128 + 128) values per cell: F32 2048 B, F16 1024 B, Q8_0 2 x 2 x 4 x 34 = 544 B. */
    const struct { ll_kv_type t; uint64_t per_cell; } want[] = {
        { LL_KV_F32, 2048 }, { LL_KV_F16, 1024 }, { LL_KV_Q8_0, 544 },
    };
    for (size_t i = 0; i < 3; i++) {
        ll_ctx *c = make_ctx(m, 100, 3, want[i].t);
        if (c) CHECK_EQ_INT(c->kv.bytes, want[i].per_cell * 100 * 3);
        if (c) CHECK_EQ_INT(ll_ctx_n_seq_max(c), 3);
        ll_ctx_free(c);
    }
    /* stories260K's heads are 8 wide: no Q8_0 blocks of 32 fit one head. */
    ll_model *s = load(STORIES);
    ll_error err = { 0 };
    ll_ctx *c = NULL;
    ll_ctx_params p = ll_ctx_default_params();
    p.type_v = LL_KV_Q8_0;
    CHECK(s && ll_ctx_init(&c, s, &p, &err) == LL_ERR_UNSUPPORTED);
    CHECK_STR_CONTAINS(err.msg, "Q8_0 V cache needs a value head size divisible by 32");
    err = (ll_error){ 0 };
    p = ll_ctx_default_params();
    p.n_seq_max = 257;
    CHECK(s && ll_ctx_init(&c, s, &p, &err) == LL_ERR_ARG);
    err = (ll_error){ 0 };
    p.n_seq_max = 0;
    p.type_k = (ll_kv_type)7;
    CHECK(s && ll_ctx_init(&c, s, &p, &err) == LL_ERR_ARG);
    ll_model_free(s);

    /* 131072 cells x 256 sequences of F32 is 64 GiB: more than this machine has. Refused up
     * front, naming the size, before anything is allocated. */
    err = (ll_error){ 0 };
    p = ll_ctx_default_params();
    p.n_ctx = 131072;
    p.n_seq_max = 256;
    CHECK(ll_ctx_init(&c, m, &p, &err) == LL_ERR_NOMEM);
    CHECK_STR_CONTAINS(err.msg, "KV cache");
    CHECK_STR_CONTAINS(err.msg, "GiB");
    ll_model_free(m);
}

/* seq_cp: a prefix copied from another sequence gives the same logits, bit for bit, as
 * computing it again. */
static void test_prefix_copy(void) {
    ll_model *m = load(TINY_Q4K);
    if (!m) return;
    const int32_t V = ll_model_n_vocab(m);
    const int32_t ids[12] = { 1792, 11, 500, 42, 7, 1000, 13, 14, 99, 301, 302, 5 };
    const ll_kv_type types[] = { LL_KV_F32, LL_KV_F16, LL_KV_Q8_0 };
    for (size_t k = 0; k < 3; k++) {
        ll_ctx *c = make_ctx(m, 32, 3, types[k]);
        if (!c) break;
        float *full = malloc((size_t)V * sizeof(float));
        const float *lg = feed(c, 0, ids, 12, 0);
        if (lg) memcpy(full, lg, (size_t)V * sizeof(float));
        ll_error err = { 0 };
        CHECK(ll_ctx_seq_cp(c, 0, 1, 0, 8, &err) == LL_OK);     /* prefix of 8 */
        CHECK_EQ_INT(ll_ctx_seq_len(c, 1), 8);
        CHECK_EQ_INT(ll_ctx_seq_pos_max(c, 1), 7);
        int32_t got[16];
        CHECK_EQ_INT(ll_ctx_seq_tokens(c, 1, got, 16), 8);
        CHECK(memcmp(got, ids, 8 * sizeof(int32_t)) == 0);
        lg = feed(c, 1, ids + 8, 4, 8);
        CHECK_MSG(lg && memcmp(lg, full, (size_t)V * sizeof(float)) == 0, "type %s", ll_kv_type_name(types[k]));
        /* Copying replaces what dst held. */
        CHECK(ll_ctx_seq_cp(c, 0, 1, 2, 5, &err) == LL_OK);
        CHECK_EQ_INT(ll_ctx_seq_len(c, 1), 3);
        CHECK_EQ_INT(ll_ctx_seq_pos_max(c, 1), 4);
        CHECK(ll_ctx_seq_cp(c, 0, 3, 0, -1, &err) == LL_ERR_ARG);
        free(full);
        ll_ctx_free(c);
    }
    ll_model_free(m);
}

/* seq_rm of a middle range keeps the other cells' positions; then the sequence can only
 * continue after its last position. seq_rm of everything empties it. */
static void test_remove_range(void) {
    ll_model *m = load(STORIES);
    if (!m) return;
    ll_ctx *c = make_ctx(m, 32, 2, LL_KV_F32);
    if (!c) { ll_model_free(m); return; }
    int32_t ids[10];
    for (int i = 0; i < 10; i++) ids[i] = 20 + i;
    feed(c, 1, ids, 10, 0);
    ll_error err = { 0 };
    CHECK(ll_ctx_seq_rm(c, 1, 3, 6, &err) == LL_OK);
    CHECK_EQ_INT(ll_ctx_seq_len(c, 1), 7);
    CHECK_EQ_INT(ll_ctx_seq_pos_max(c, 1), 9);
    int32_t got[10];
    ll_ctx_seq_tokens(c, 1, got, 10);
    const int32_t want[7] = { 20, 21, 22, 26, 27, 28, 29 };
    CHECK(memcmp(got, want, sizeof want) == 0);
    CHECK(ll_ctx_seq_rm(c, 1, 8, -1, &err) == LL_OK);           /* to the end */
    CHECK_EQ_INT(ll_ctx_seq_pos_max(c, 1), 7);
    CHECK(ll_ctx_seq_rm(c, 1, 0, -1, &err) == LL_OK);
    CHECK_EQ_INT(ll_ctx_seq_len(c, 1), 0);
    CHECK_EQ_INT(ll_ctx_seq_pos_max(c, 1), -1);
    CHECK(ll_ctx_seq_rm(c, 2, 0, -1, &err) == LL_ERR_ARG);
    CHECK_EQ_INT(ll_ctx_seq_len(c, 0), 0);                      /* the other sequence untouched */
    ll_ctx_free(c);
    ll_model_free(m);
}

/* seq_add: attention sees relative positions only (RoPE), so moving every cached position by
 * delta and going on at the moved position gives the logits of the unmoved sequence, up to
 * the rounding of the re-rotated keys, for every KV type and both directions. (Removing a
 * middle range and shifting the rest is not compared with a recomputation: the kept cells'
 * values were computed with the dropped tokens in view, by design of the context shift.)
 * Cells moved below position 0 vanish. */
static void test_shift_matches_recompute(void) {
    ll_model *m = load(TINY_F32);
    if (!m) return;
    const int32_t V = ll_model_n_vocab(m);
    int32_t ids[21];
    for (int i = 0; i < 21; i++) ids[i] = i == 0 ? 1792 : 37 + 61 * i % 1700;
    const struct { ll_kv_type t; double tol; } types[] = {
        { LL_KV_F32, 1e-4 }, { LL_KV_F16, 2e-2 }, { LL_KV_Q8_0, 1e-1 },
    };
    for (size_t k = 0; k < 3; k++) {
        ll_ctx *c = make_ctx(m, 64, 3, types[k].t);
        if (!c) break;
        ll_error err = { 0 };
        float *ref = malloc((size_t)V * sizeof(float));
        feed(c, 0, ids, 20, 0);
        const float *lg = feed(c, 0, ids + 20, 1, 20);
        if (lg) memcpy(ref, lg, (size_t)V * sizeof(float));
        /* Up by 7: positions 7..26, next token at 27. Down by 10: 10..29 -> 0..19, next at 20. */
        feed(c, 1, ids, 20, 0);
        CHECK(ll_ctx_seq_add(c, 1, 0, -1, 7, &err) == LL_OK);
        CHECK_EQ_INT(ll_ctx_seq_pos_max(c, 1), 26);
        const float *up = feed(c, 1, ids + 20, 1, 27);
        double mx_up = 0;
        for (int32_t v = 0; up && v < V; v++) mx_up = fmax(mx_up, fabs((double)up[v] - ref[v]));
        feed(c, 2, ids, 20, 10);
        CHECK(ll_ctx_seq_add(c, 2, 10, -1, -10, &err) == LL_OK);
        const float *down = feed(c, 2, ids + 20, 1, 20);
        double mx_down = 0;
        for (int32_t v = 0; down && v < V; v++) mx_down = fmax(mx_down, fabs((double)down[v] - ref[v]));
        CHECK(up && down);
        fprintf(stderr, "note %s: %s cache, shifted vs unshifted max |d| %.3g (up 7), %.3g (down 10)\n",
                test_cur_name, ll_kv_type_name(types[k].t), mx_up, mx_down);
        CHECK_MSG(mx_up <= types[k].tol && mx_down <= types[k].tol, "%s: shifted vs unshifted "
                  "max |d| %g (up), %g (down)", ll_kv_type_name(types[k].t), mx_up, mx_down);
        /* Cells moved below 0 are removed. */
        CHECK(ll_ctx_seq_add(c, 1, 0, 12, -12, &err) == LL_OK);   /* 7..11 -> -5..-1 */
        CHECK_EQ_INT(ll_ctx_seq_len(c, 1), 16);
        CHECK(ll_ctx_seq_add(c, 1, 0, -1, LL_POS_MAX, &err) == LL_ERR_ARG);
        free(ref);
        ll_ctx_free(c);
    }
    ll_model_free(m);
}

/* The context shift keeps n_keep cells, drops half of the rest, and the sequence goes on. */
static void test_context_shift(void) {
    ll_model *m = load(STORIES);
    if (!m) return;
    ll_ctx *c = make_ctx(m, 16, 1, LL_KV_F16);
    if (!c) { ll_model_free(m); return; }
    int32_t ids[16];
    for (int i = 0; i < 16; i++) ids[i] = i == 0 ? 1 : 100 + i;
    CHECK(feed(c, 0, ids, 16, 0) != NULL);
    ll_error err = { 0 };
    int32_t n = 0;
    int32_t one = 7;
    CHECK(ll_ctx_decode(c, &one, 1, NULL, &err) == LL_ERR_LIMIT);  /* full */
    CHECK(ll_ctx_seq_shift(c, 0, 4, &n, &err) == LL_OK);
    CHECK_EQ_INT(n, 6);                                          /* (16 - 4) / 2 */
    CHECK_EQ_INT(ll_ctx_seq_len(c, 0), 10);
    CHECK_EQ_INT(ll_ctx_pos(c), 10);
    int32_t got[16];
    ll_ctx_seq_tokens(c, 0, got, 16);
    CHECK(memcmp(got, ids, 4 * sizeof(int32_t)) == 0);
    CHECK(memcmp(got + 4, ids + 10, 6 * sizeof(int32_t)) == 0);
    CHECK(ll_ctx_decode(c, &one, 1, NULL, &err) == LL_OK);
    CHECK(ll_ctx_seq_shift(c, 0, 10, &n, &err) == LL_ERR_LIMIT);  /* nothing left to drop */
    ll_ctx_free(c);
    ll_model_free(m);
}

/* Generation past the end of the context: with the shift the model goes on as confidently as
 * it does with room to spare (stories260K is a trained model: its greedy continuation of a
 * story keeps a high top probability; garbage cells would collapse it), and without error. */
static double top_prob(const float *x, int32_t n, int32_t *arg) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++) if (x[i] > x[best]) best = i;
    double sum = 0;
    for (int32_t i = 0; i < n; i++) sum += exp((double)x[i] - x[best]);
    *arg = best;
    return 1.0 / sum;
}

static void test_generation_past_context_end(void) {
    ll_model *m = load(STORIES);
    if (!m) return;
    enum { STEPS = 200, N_CTX = 64 };
    const int32_t V = ll_model_n_vocab(m);
    double conf[2] = { 0, 0 };                       /* mean top probability after step N_CTX */
    int shifts = 0;
    for (int run = 0; run < 2; run++) {
        ll_ctx *c = make_ctx(m, run == 0 ? N_CTX : 512, 1, LL_KV_F16);
        if (!c) break;
        ll_error err = { 0 };
        int32_t tok = 1;                             /* BOS */
        int n = 0;
        for (int step = 0; step < STEPS; step++) {
            if (ll_ctx_seq_len(c, 0) == ll_ctx_n_ctx(c)) {
                int32_t drop = 0;
                CHECK(ll_ctx_seq_shift(c, 0, 4, &drop, &err) == LL_OK);
                CHECK_EQ_INT(drop, (N_CTX - 4) / 2);
                shifts++;
            }
            if (ll_ctx_decode(c, &tok, 1, NULL, &err) != LL_OK) { CHECK_MSG(0, "step %d: %s", step, err.msg); break; }
            const double pr = top_prob(ll_ctx_logits(c, -1), V, &tok);
            if (step >= N_CTX) { conf[run] += pr; n++; }
        }
        if (n) conf[run] /= n;
        ll_ctx_free(c);
    }
    fprintf(stderr, "note %s: %d shifts; mean top probability after the first %d tokens: %.3f "
            "with shifts, %.3f with room\n", test_cur_name, shifts, N_CTX, conf[0], conf[1]);
    CHECK(shifts >= 4);
    CHECK_MSG(conf[0] >= 0.8 * conf[1], "shifted %.3f vs %.3f", conf[0], conf[1]);
    ll_model_free(m);
}

int main(void) {
    RUN(test_sizes_per_type_and_sequences);
    RUN(test_prefix_copy);
    RUN(test_remove_range);
    RUN(test_shift_matches_recompute);
    RUN(test_context_shift);
    RUN(test_generation_past_context_end);
    return test_summary();
}
