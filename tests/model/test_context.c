/* context tests: batches of several sequences against their solo runs (bit for bit, with
 * sequences joining and leaving at different steps, prompts split across passes, every KV
 * type), batch validation and rollback, per-sequence cancellation, the abort callback,
 * embeddings and pooling, a pool shared by two contexts in two threads, and model reference
 * counting. The numbers themselves are checked against llama.cpp in tests/py. */
#include "../test.h"

#include "model/model.h"

#include <pthread.h>
#include <stdatomic.h>

#define STORIES LL_SHARED_DIR "/reference/stories260K/stories260K.gguf"
#define TINY_F32 LL_SHARED_DIR "/reference/llama3.2-tiny/llama3.2-tiny-v2k-F32.gguf"
#define TINY_Q4K LL_SHARED_DIR "/reference/llama3.2-tiny/llama3.2-tiny-v2k-Q4_K_M.gguf"
#define TINY_Q8  LL_SHARED_DIR "/reference/llama3.2-tiny/llama3.2-tiny-v2k-Q8_0.gguf"

static ll_model *load(const char *path) {
    ll_error err = { 0 };
    ll_model *m = NULL;
    ll_status st = ll_model_load(&m, path, NULL, &err);
    CHECK_MSG(st == LL_OK, "%s: %s", path, err.msg);
    return m;
}

static int32_t argmax(const float *x, int32_t n) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++) if (x[i] > x[best]) best = i;
    return best;
}

/* ---- several sequences against their solo runs -------------------------------------------- */

enum { N_SEQ = 4, MAX_STEPS = 12, MAX_PROMPT = 40 };

typedef struct {
    int32_t prompt[MAX_PROMPT];
    int     n_prompt;
    int     n_gen;       /* greedy tokens after the prompt */
    int     join;        /* scheduler step at which the sequence starts */
} seq_plan;

/* Per sequence, the logits after the prompt and after each generated token (n_gen + 1 rows),
 * and the generated ids. */
typedef struct {
    float  *rows;        /* (MAX_STEPS + 1, n_vocab) */
    int32_t ids[MAX_STEPS + 1];
} seq_result;

static void make_plans(seq_plan *pl, int32_t n_vocab, int32_t bos) {
    const int lens[N_SEQ] = { 5, 23, 3, 17 }, gens[N_SEQ] = { 6, 3, 9, 4 }, joins[N_SEQ] = { 0, 0, 2, 5 };
    uint32_t x = 12345;
    for (int s = 0; s < N_SEQ; s++) {
        pl[s].n_prompt = lens[s];
        pl[s].n_gen = gens[s];
        pl[s].join = joins[s];
        for (int i = 0; i < lens[s]; i++) {
            x = x * 1103515245u + 12345u;
            pl[s].prompt[i] = i == 0 && bos >= 0 ? bos : (int32_t)((x >> 8) % (uint32_t)n_vocab);
        }
    }
}

/* Sequence s alone: prompt in one call, then greedy tokens one at a time. */
static void run_solo(ll_model *m, const ll_ctx_params *base, const seq_plan *pl, seq_result *r) {
    const int32_t V = ll_model_n_vocab(m);
    ll_error err = { 0 };
    ll_ctx *c = NULL;
    ll_ctx_params p = *base;
    p.n_seq_max = 1;
    p.n_batch = 512;
    CHECK_MSG(ll_ctx_init(&c, m, &p, &err) == LL_OK, "%s", err.msg);
    if (!c) return;
    CHECK_MSG(ll_ctx_decode(c, pl->prompt, (size_t)pl->n_prompt, NULL, &err) == LL_OK, "%s", err.msg);
    for (int g = 0; g <= pl->n_gen; g++) {
        const float *lg = ll_ctx_logits(c, -1);
        if (!lg) { CHECK(lg != NULL); break; }
        memcpy(r->rows + (size_t)g * (size_t)V, lg, (size_t)V * sizeof(float));
        r->ids[g] = argmax(lg, V);
        if (g < pl->n_gen) CHECK(ll_ctx_decode(c, &r->ids[g], 1, NULL, &err) == LL_OK);
    }
    ll_ctx_free(c);
}

/* All sequences in one context: a scheduler loop that each step puts every running
 * sequence's next token (or a joining sequence's whole prompt) in one batch. A finished
 * sequence leaves (its cells are removed) and its slot is not reused, so the others see a
 * cache that changes around them. n_batch is small so that prompts split across passes and
 * share passes with other sequences' tokens. */
static void run_batched(ll_model *m, const ll_ctx_params *base, const seq_plan *pl, seq_result *r) {
    const int32_t V = ll_model_n_vocab(m);
    ll_error err = { 0 };
    ll_ctx *c = NULL;
    ll_ctx_params p = *base;
    p.n_seq_max = N_SEQ;
    p.n_batch = 7;
    CHECK_MSG(ll_ctx_init(&c, m, &p, &err) == LL_OK, "%s", err.msg);
    if (!c) return;
    ll_batch b;
    CHECK(ll_batch_init(&b, 64, &err) == LL_OK);
    int done[N_SEQ] = { 0 }, gen[N_SEQ] = { 0 }, started[N_SEQ] = { 0 }, where[N_SEQ];
    for (int step = 0; step < 40; step++) {
        ll_batch_clear(&b);
        for (int s = 0; s < N_SEQ; s++) {
            if (done[s] || step < pl[s].join) continue;
            if (!started[s]) {
                for (int i = 0; i < pl[s].n_prompt; i++)
                    ll_batch_add(&b, pl[s].prompt[i], i, s, i == pl[s].n_prompt - 1);
                started[s] = 1;
            } else {
                ll_batch_add(&b, r[s].ids[gen[s] - 1], pl[s].n_prompt + gen[s] - 1, s, true);
            }
            where[s] = b.n_tokens - 1;
        }
        if (b.n_tokens == 0) {
            int all = 1;
            for (int s = 0; s < N_SEQ; s++) all &= done[s];
            if (all) break;
            continue;
        }
        CHECK_MSG(ll_ctx_decode_batch(c, &b, &err) == LL_OK, "step %d: %s", step, err.msg);
        for (int s = 0; s < N_SEQ; s++) {
            if (done[s] || step < pl[s].join) continue;
            const float *lg = ll_ctx_logits_ith(c, where[s]);
            if (!lg) { CHECK(lg != NULL); continue; }
            memcpy(r[s].rows + (size_t)gen[s] * (size_t)V, lg, (size_t)V * sizeof(float));
            r[s].ids[gen[s]] = argmax(lg, V);
            if (gen[s]++ == pl[s].n_gen) {
                done[s] = 1;
                CHECK_EQ_INT(ll_ctx_seq_len(c, s), pl[s].n_prompt + pl[s].n_gen);
                CHECK(ll_ctx_seq_rm(c, s, 0, -1, &err) == LL_OK);   /* leaves */
                CHECK_EQ_INT(ll_ctx_seq_len(c, s), 0);
            }
        }
    }
    for (int s = 0; s < N_SEQ; s++) CHECK_MSG(done[s], "sequence %d did not finish", s);
    ll_batch_free(&b);
    ll_ctx_free(c);
}

static void check_batched_equals_solo(const char *path, ll_kv_type kt, ll_kv_type vt, int n_threads) {
    ll_model *m = load(path);
    if (!m) return;
    const int32_t V = ll_model_n_vocab(m);
    seq_plan pl[N_SEQ];
    make_plans(pl, V, ll_vocab_bos(ll_model_vocab(m)));
    seq_result solo[N_SEQ], bat[N_SEQ];
    for (int s = 0; s < N_SEQ; s++) {
        solo[s].rows = calloc((size_t)(MAX_STEPS + 1) * (size_t)V, sizeof(float));
        bat[s].rows = calloc((size_t)(MAX_STEPS + 1) * (size_t)V, sizeof(float));
    }
    ll_ctx_params p = ll_ctx_default_params();
    p.n_ctx = 64;
    p.n_threads = n_threads;
    p.type_k = kt;
    p.type_v = vt;
    for (int s = 0; s < N_SEQ; s++) run_solo(m, &p, &pl[s], &solo[s]);
    run_batched(m, &p, pl, bat);
    for (int s = 0; s < N_SEQ; s++) {
        for (int g = 0; g <= pl[s].n_gen; g++) {
            const float *a = solo[s].rows + (size_t)g * (size_t)V, *b = bat[s].rows + (size_t)g * (size_t)V;
            double mx = 0;
            for (int32_t v = 0; v < V; v++) mx = fmax(mx, fabs((double)a[v] - b[v]));
            CHECK_MSG(memcmp(a, b, (size_t)V * sizeof(float)) == 0,
                      "%s K%s V%s: seq %d step %d differs from its solo run (max |d| %g)",
                      path + strlen(LL_SHARED_DIR), ll_kv_type_name(kt), ll_kv_type_name(vt), s, g, mx);
            CHECK_EQ_INT(solo[s].ids[g], bat[s].ids[g]);
        }
        free(solo[s].rows);
        free(bat[s].rows);
    }
    ll_model_free(m);
}

static void test_batched_equals_solo_f32(void) {
    check_batched_equals_solo(TINY_F32, LL_KV_F32, LL_KV_F32, 2);
    check_batched_equals_solo(STORIES, LL_KV_F32, LL_KV_F32, 3);
}

static void test_batched_equals_solo_quantized_weights(void) {
    check_batched_equals_solo(TINY_Q4K, LL_KV_F32, LL_KV_F32, 2);
    check_batched_equals_solo(TINY_Q8, LL_KV_F32, LL_KV_F32, 1);
}

static void test_batched_equals_solo_kv_types(void) {
    check_batched_equals_solo(TINY_Q4K, LL_KV_F16, LL_KV_F16, 2);
    check_batched_equals_solo(TINY_Q4K, LL_KV_Q8_0, LL_KV_Q8_0, 2);
    check_batched_equals_solo(TINY_F32, LL_KV_Q8_0, LL_KV_F16, 2);
    check_batched_equals_solo(STORIES, LL_KV_F16, LL_KV_F32, 2);
}

/* ---- validation and rollback -------------------------------------------------------------- */

static void test_batch_validation(void) {
    ll_model *m = load(STORIES);
    if (!m) return;
    ll_error err = { 0 };
    ll_ctx *c = NULL;
    ll_ctx_params p = ll_ctx_default_params();
    p.n_ctx = 16;
    p.n_seq_max = 2;
    p.n_threads = 2;
    CHECK(ll_ctx_init(&c, m, &p, &err) == LL_OK);
    if (!c) { ll_model_free(m); return; }
    ll_batch b;
    CHECK(ll_batch_init(&b, 20, &err) == LL_OK);
    CHECK(ll_batch_init(&(ll_batch){ 0 }, 0, &err) == LL_ERR_ARG);

    ll_batch_add(&b, 1, 0, 0, true);
    ll_batch_add(&b, 5, 1, 0, true);
    ll_batch_add(&b, 1, 0, 1, true);
    CHECK(ll_ctx_decode_batch(c, &b, &err) == LL_OK);
    CHECK(ll_ctx_logits_ith(c, 0) != NULL);
    CHECK(ll_ctx_logits_ith(c, 3) == NULL);
    CHECK_EQ_INT(ll_ctx_seq_pos_max(c, 0), 1);
    CHECK_EQ_INT(ll_ctx_seq_pos_max(c, 1), 0);
    float keep[512];
    memcpy(keep, ll_ctx_logits_ith(c, 2), sizeof keep);

    struct { int32_t tok, pos, seq; ll_status want; const char *msg; } bad[] = {
        { 1, 2, 2, LL_ERR_ARG, "sequence 2 out of range" },
        { 1, 2, -1, LL_ERR_ARG, "sequence -1 out of range" },
        { 512, 2, 0, LL_ERR_ARG, "token id 512" },
        { -3, 2, 0, LL_ERR_ARG, "token id -3" },
        { 1, 1, 0, LL_ERR_ARG, "must be above its last position 1" },   /* not after the cache */
        { 1, -1, 1, LL_ERR_ARG, "position -1" },
        { 1, LL_POS_MAX, 1, LL_ERR_ARG, "below" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ll_batch_clear(&b);
        ll_batch_add(&b, 7, 5, 1, true);            /* a good entry first: nothing may change */
        ll_batch_add(&b, bad[i].tok, bad[i].pos, bad[i].seq, true);
        err = (ll_error){ 0 };
        CHECK_EQ_INT(ll_ctx_decode_batch(c, &b, &err), bad[i].want);
        CHECK_STR_CONTAINS(err.msg, bad[i].msg);
        CHECK_EQ_INT(ll_ctx_seq_len(c, 1), 1);
    }
    /* Positions must increase within a sequence along the batch. */
    ll_batch_clear(&b);
    ll_batch_add(&b, 7, 5, 1, false);
    ll_batch_add(&b, 7, 5, 1, true);
    err = (ll_error){ 0 };
    CHECK(ll_ctx_decode_batch(c, &b, &err) == LL_ERR_ARG);
    /* A sequence over n_ctx: refused before anything is computed. */
    ll_batch_clear(&b);
    for (int i = 0; i < 16; i++) ll_batch_add(&b, 3, 1 + i, 1, i == 15);
    err = (ll_error){ 0 };
    CHECK(ll_ctx_decode_batch(c, &b, &err) == LL_ERR_LIMIT);
    CHECK_STR_CONTAINS(err.msg, "sequence 1");
    CHECK_EQ_INT(ll_ctx_seq_len(c, 1), 1);
    /* Refused calls keep the previous outputs. */
    CHECK(ll_ctx_logits_ith(c, 2) && memcmp(keep, ll_ctx_logits_ith(c, 2), sizeof keep) == 0);
    CHECK(ll_ctx_decode_batch(c, NULL, &err) == LL_ERR_ARG);
    ll_batch_free(&b);
    ll_batch_free(&b);                               /* idempotent */
    ll_ctx_free(c);
    ll_model_free(m);
}

static atomic_int abort_after;
static bool abort_when_zero(void *user) {
    (void)user;
    return atomic_fetch_sub(&abort_after, 1) <= 0;
}

/* A cancelled step removes only its own cells; what was cached before stays and gives the
 * same logits afterwards. */
static void test_abort_rolls_back_own_cells(void) {
    ll_model *m = load(TINY_Q4K);
    if (!m) return;
    ll_error err = { 0 };
    ll_ctx *c = NULL;
    ll_ctx_params p = ll_ctx_default_params();
    p.n_ctx = 64;
    p.n_seq_max = 2;
    p.n_batch = 4;                                   /* the failing call spans several passes */
    p.abort_cb = abort_when_zero;
    atomic_store(&abort_after, 1 << 30);
    CHECK(ll_ctx_init(&c, m, &p, &err) == LL_OK);
    if (!c) { ll_model_free(m); return; }
    const int32_t V = ll_model_n_vocab(m);
    ll_batch b;
    CHECK(ll_batch_init(&b, 32, &err) == LL_OK);
    for (int i = 0; i < 6; i++) ll_batch_add(&b, 100 + i, i, 0, i == 5);
    for (int i = 0; i < 3; i++) ll_batch_add(&b, 200 + i, i, 1, i == 2);
    CHECK(ll_ctx_decode_batch(c, &b, &err) == LL_OK);

    ll_batch_clear(&b);
    for (int i = 0; i < 10; i++) ll_batch_add(&b, 300 + i, 6 + i, 0, i == 9);
    ll_batch_add(&b, 400, 3, 1, true);
    atomic_store(&abort_after, 5);                   /* a few layers in: after the first pass */
    err = (ll_error){ 0 };
    CHECK(ll_ctx_decode_batch(c, &b, &err) == LL_ERR_CANCELLED);
    CHECK_EQ_INT(ll_ctx_seq_len(c, 0), 6);
    CHECK_EQ_INT(ll_ctx_seq_len(c, 1), 3);
    CHECK(ll_ctx_logits_ith(c, 0) == NULL);
    atomic_store(&abort_after, 1 << 30);
    CHECK(ll_ctx_decode_batch(c, &b, &err) == LL_OK);
    float *after = malloc((size_t)V * sizeof(float));
    memcpy(after, ll_ctx_logits_ith(c, 10), (size_t)V * sizeof(float));

    /* The same tokens in a fresh context, never cancelled. */
    ll_ctx *f = NULL;
    p.abort_cb = NULL;
    CHECK(ll_ctx_init(&f, m, &p, &err) == LL_OK);
    ll_batch_clear(&b);
    for (int i = 0; i < 3; i++) ll_batch_add(&b, 200 + i, i, 1, false);
    ll_batch_add(&b, 400, 3, 1, true);
    CHECK(f && ll_ctx_decode_batch(f, &b, &err) == LL_OK);
    CHECK(f && memcmp(after, ll_ctx_logits_ith(f, 3), (size_t)V * sizeof(float)) == 0);
    free(after);
    ll_batch_free(&b);
    ll_ctx_free(f);
    ll_ctx_free(c);
    ll_model_free(m);
}

/* A cancelled sequence's entries are skipped; the others run as if it were not there. */
static void test_seq_cancel(void) {
    ll_model *m = load(STORIES);
    if (!m) return;
    ll_error err = { 0 };
    ll_ctx *c = NULL;
    ll_ctx_params p = ll_ctx_default_params();
    p.n_ctx = 32;
    p.n_seq_max = 3;
    CHECK(ll_ctx_init(&c, m, &p, &err) == LL_OK);
    if (!c) { ll_model_free(m); return; }
    ll_batch b;
    CHECK(ll_batch_init(&b, 8, &err) == LL_OK);
    ll_batch_add(&b, 1, 0, 0, true);
    ll_batch_add(&b, 1, 0, 1, true);
    ll_batch_add(&b, 1, 0, 2, true);
    ll_ctx_seq_cancel(c, 1, true);
    CHECK(ll_ctx_decode_batch(c, &b, &err) == LL_OK);
    CHECK(ll_ctx_logits_ith(c, 0) != NULL);
    CHECK(ll_ctx_logits_ith(c, 1) == NULL);
    CHECK(ll_ctx_logits_ith(c, 2) != NULL);
    CHECK(memcmp(ll_ctx_logits_ith(c, 0), ll_ctx_logits_ith(c, 2), 512 * sizeof(float)) == 0);
    CHECK_EQ_INT(ll_ctx_seq_len(c, 1), 0);
    CHECK_EQ_INT(ll_ctx_seq_len(c, 2), 1);
    ll_ctx_seq_cancel(c, 1, false);
    ll_ctx_seq_cancel(c, 99, true);                  /* out of range: ignored */
    ll_batch_clear(&b);
    ll_batch_add(&b, 1, 0, 1, true);
    CHECK(ll_ctx_decode_batch(c, &b, &err) == LL_OK);
    CHECK_EQ_INT(ll_ctx_seq_len(c, 1), 1);
    ll_batch_free(&b);
    ll_ctx_free(c);
    ll_model_free(m);
}

/* ---- embeddings ----------------------------------------------------------------------------- */

static void test_embeddings_pooling(void) {
    ll_model *m = load(TINY_Q4K);
    if (!m) return;
    const int32_t d = ll_model_n_embd(m);
    CHECK_EQ_INT(d, 256);
    ll_error err = { 0 };
    const int32_t ids[5] = { 1792, 40, 1000, 77, 5 };
    float *rows = calloc((size_t)5 * (size_t)d, sizeof(float));

    /* NONE: one vector per token; they are the final-norm hidden states, so the logits of a
     * logits context are the output matrix times them (checked on the argmax). */
    ll_ctx *c = NULL;
    ll_ctx_params p = ll_ctx_default_params();
    p.n_ctx = 32;
    p.embeddings = true;
    p.pooling = LL_POOLING_NONE;
    CHECK(ll_ctx_init(&c, m, &p, &err) == LL_OK);
    if (!c) { free(rows); ll_model_free(m); return; }
    CHECK_EQ_INT(ll_ctx_pooling(c), LL_POOLING_NONE);
    ll_batch b;
    CHECK(ll_batch_init(&b, 16, &err) == LL_OK);
    for (int i = 0; i < 5; i++) ll_batch_add(&b, ids[i], i, 0, true);
    CHECK(ll_ctx_decode_batch(c, &b, &err) == LL_OK);
    for (int i = 0; i < 5; i++) {
        const float *e = ll_ctx_embeddings_ith(c, i);
        CHECK(e != NULL);
        if (e) memcpy(rows + (size_t)i * (size_t)d, e, (size_t)d * sizeof(float));
    }
    CHECK(ll_ctx_logits_ith(c, 0) == NULL);
    CHECK(ll_ctx_embeddings_seq(c, 0) == NULL);
    ll_ctx_free(c);

    /* MEAN / CLS / LAST over two sequences in one batch, normalised; unspecified -> MEAN for
     * this chat model (no llama.pooling_type). */
    const ll_pooling kinds[] = { LL_POOLING_UNSPECIFIED, LL_POOLING_CLS, LL_POOLING_LAST };
    for (size_t k = 0; k < 3; k++) {
        p = ll_ctx_default_params();
        p.n_ctx = 32;
        p.n_seq_max = 2;
        p.n_batch = 3;                               /* pooling spans passes */
        p.embeddings = true;
        p.embd_normalize = true;
        p.pooling = kinds[k];
        c = NULL;
        CHECK(ll_ctx_init(&c, m, &p, &err) == LL_OK);
        if (!c) break;
        ll_batch_clear(&b);
        for (int i = 0; i < 5; i++) ll_batch_add(&b, ids[i], i, 0, false);
        for (int i = 0; i < 2; i++) ll_batch_add(&b, ids[i], i, 1, false);
        CHECK(ll_ctx_decode_batch(c, &b, &err) == LL_OK);
        const ll_pooling used = ll_ctx_pooling(c);
        CHECK_EQ_INT(used, kinds[k] == LL_POOLING_UNSPECIFIED ? LL_POOLING_MEAN : kinds[k]);
        const float *e0 = ll_ctx_embeddings_seq(c, 0), *e1 = ll_ctx_embeddings_seq(c, 1);
        CHECK(e0 && e1);
        if (e0 && e1) {
            float want[256];
            double norm = 0, n1 = 0;
            for (int32_t i = 0; i < d; i++) {
                double v = 0;
                if (used == LL_POOLING_MEAN) { for (int t = 0; t < 5; t++) v += rows[(size_t)t * (size_t)d + (size_t)i]; v /= 5; }
                else if (used == LL_POOLING_CLS) v = rows[i];
                else v = rows[(size_t)4 * (size_t)d + (size_t)i];
                want[i] = (float)v;
                norm += v * v;
                n1 += (double)e1[i] * e1[i];
            }
            double mx = 0;
            for (int32_t i = 0; i < d; i++) mx = fmax(mx, fabs(want[i] / sqrt(norm) - e0[i]));
            CHECK_MSG(mx < 1e-5, "pooling %d: max |d| %g", (int)used, mx);
            CHECK_NEAR(n1, 1.0, 1e-5);
        }
        ll_ctx_free(c);
    }
    ll_batch_free(&b);
    free(rows);
    ll_model_free(m);
}

/* ---- a shared pool, two contexts, two threads; model references ----------------------------- */

struct worker_arg {
    const ll_model *m;
    ll_pool *pool;
    int32_t first;
    float out[512];
    int ok;
};

static void *decode_in_thread(void *p) {
    struct worker_arg *a = p;
    ll_error err = { 0 };
    ll_ctx *c = NULL;
    ll_ctx_params cp = ll_ctx_default_params();
    cp.n_ctx = 64;
    cp.pool = a->pool;
    if (ll_ctx_init(&c, a->m, &cp, &err) != LL_OK) return NULL;
    int32_t ids[20];
    for (int i = 0; i < 20; i++) ids[i] = i == 0 ? 1 : a->first + i;
    a->ok = 1;
    for (int r = 0; r < 5 && a->ok; r++) {
        ll_ctx_truncate(c, 0);
        a->ok = ll_ctx_decode(c, ids, 20, NULL, &err) == LL_OK;
        for (int i = 0; i < 10 && a->ok; i++) a->ok = ll_ctx_decode(c, &ids[i], 1, NULL, &err) == LL_OK;
    }
    if (a->ok) memcpy(a->out, ll_ctx_logits(c, -1), sizeof a->out);
    ll_ctx_free(c);
    return NULL;
}

static void test_shared_pool_two_threads(void) {
    ll_model *m = load(STORIES);
    if (!m) return;
    ll_error err = { 0 };
    ll_pool *pool = NULL;
    CHECK(ll_pool_init(&pool, 2, &err) == LL_OK);
    if (!pool) { ll_model_free(m); return; }
    static struct worker_arg a[2], solo[2];
    for (int i = 0; i < 2; i++) {
        a[i] = (struct worker_arg){ .m = m, .pool = pool, .first = 10 + 100 * i };
        solo[i] = a[i];
        solo[i].pool = NULL;
    }
    pthread_t th[2];
    for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, decode_in_thread, &a[i]);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 2; i++) {
        decode_in_thread(&solo[i]);
        CHECK(a[i].ok && solo[i].ok);
        CHECK_MSG(memcmp(a[i].out, solo[i].out, sizeof a[i].out) == 0, "thread %d", i);
    }
    ll_pool_free(pool);
    ll_model_free(m);
}

/* A context holds a reference: the model may be freed by its loader first. */
static void test_model_refcount(void) {
    ll_model *m = load(STORIES);
    if (!m) return;
    ll_error err = { 0 };
    ll_ctx *c = NULL;
    CHECK(ll_ctx_init(&c, m, NULL, &err) == LL_OK);
    CHECK(ll_model_ref(m) == m);
    ll_model_free(m);                                /* the extra reference */
    ll_model_free(m);                                /* the loader's */
    int32_t ids[3] = { 1, 50, 60 };
    CHECK(c && ll_ctx_decode(c, ids, 3, NULL, &err) == LL_OK);   /* still usable (ASan checks) */
    CHECK(c && ll_model_n_vocab(ll_ctx_model(c)) == 512);
    ll_ctx_free(c);                                  /* frees the model */
    CHECK(ll_model_ref(NULL) == NULL);
}

int main(void) {
    RUN(test_batched_equals_solo_f32);
    RUN(test_batched_equals_solo_quantized_weights);
    RUN(test_batched_equals_solo_kv_types);
    RUN(test_batch_validation);
    RUN(test_abort_rolls_back_own_cells);
    RUN(test_seq_cancel);
    RUN(test_embeddings_pooling);
    RUN(test_shared_pool_two_threads);
    RUN(test_model_refcount);
    return test_summary();
}
