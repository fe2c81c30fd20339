/* sched tests: concurrent requests get the tokens each gets alone (greedy, bit-exact engine),
 * requests join and leave between steps, a cancelled request leaves within one step without
 * disturbing the others, a cached prefix is reused (in place and copied from a busy slot),
 * the queue is bounded, a full context shifts, and shutdown cancels everything. */
#include "../test.h"

#include "server/sched.h"

#include <pthread.h>
#include <stdatomic.h>

#define TINY LL_SHARED_DIR "/reference/llama3.2-tiny/llama3.2-tiny-v2k-Q4_K_M.gguf"
#define STORIES LL_SHARED_DIR "/reference/stories260K/stories260K.gguf"

enum { MAX_GEN = 256 };

typedef struct {
    int32_t         ids[MAX_GEN];
    int             n;
    int             cancel_after;   /* > 0: raise cancel after this many tokens */
    atomic_bool     cancel;
    bool            done;
    ll_sched_result res;
} tracker;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;

static bool on_token(void *user, int32_t id) {
    tracker *t = user;
    pthread_mutex_lock(&mu);
    if (t->n < MAX_GEN) t->ids[t->n] = id;
    t->n++;
    if (t->cancel_after > 0 && t->n == t->cancel_after) atomic_store(&t->cancel, true);
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    return true;
}

static void wait_tokens(tracker *t, int k) {
    pthread_mutex_lock(&mu);
    while (t->n < k && !t->done) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
}

static void on_done(void *user, const ll_sched_result *r) {
    tracker *t = user;
    pthread_mutex_lock(&mu);
    t->res = *r;
    t->done = true;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void wait_done(tracker *t, int n) {
    pthread_mutex_lock(&mu);
    for (int i = 0; i < n; i++)
        while (!t[i].done) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
}

static ll_model *load(const char *path) {
    ll_error err = { 0 };
    ll_model *m = NULL;
    CHECK_MSG(ll_model_load(&m, path, NULL, &err) == LL_OK, "%s", err.msg);
    return m;
}

static ll_sched_req greedy_req(const int32_t *p, size_t n, int64_t num_predict, tracker *t) {
    ll_sched_req r = { 0 };
    r.prompt = p;
    r.n_prompt = n;
    r.sp = ll_sampler_default_params();
    r.sp.temperature = 0;
    r.sp.repeat_penalty = 1.0f;
    r.num_predict = num_predict;
    r.num_keep = 4;
    r.on_token = on_token;
    r.on_done = on_done;
    r.user = t;
    r.cancel = &t->cancel;
    return r;
}

/* The greedy path of a prompt alone, with plain ll_ctx_decode: what every request must get. */
static int solo_greedy(ll_model *m, const int32_t *p, int n, int n_gen, int32_t *out) {
    ll_error err = { 0 };
    ll_ctx *c = NULL;
    ll_ctx_params cp = ll_ctx_default_params();
    cp.n_ctx = 256;
    if (ll_ctx_init(&c, m, &cp, &err) != LL_OK) return 0;
    int k = 0;
    if (ll_ctx_decode(c, p, (size_t)n, NULL, &err) == LL_OK) {
        const ll_vocab *v = ll_model_vocab(m);
        for (; k < n_gen; k++) {
            const float *lg = ll_ctx_logits(c, -1);
            int32_t best = 0;
            for (int32_t i = 1; i < ll_model_n_vocab(m); i++) if (lg[i] > lg[best]) best = i;
            if (ll_vocab_is_eog(v, best)) break;
            out[k] = best;
            if (k + 1 < n_gen && ll_ctx_decode(c, &best, 1, NULL, &err) != LL_OK) break;
        }
    }
    ll_ctx_free(c);
    return k;
}

static void make_prompt(int32_t *p, int n, uint32_t seed, int32_t bos, int32_t n_vocab) {
    for (int i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = i == 0 && bos >= 0 ? bos : (int32_t)(seed >> 8) % 1700;
    }
    (void)n_vocab;
}

static void test_concurrent_requests_equal_solo(void) {
    ll_model *m = load(TINY);
    if (!m) return;
    const int32_t bos = ll_vocab_bos(ll_model_vocab(m));
    enum { N = 6 };
    static int32_t prompts[N][64];
    const int lens[N] = { 5, 40, 9, 17, 3, 60 }, gens[N] = { 12, 5, 20, 9, 30, 7 };
    static int32_t want[N][MAX_GEN];
    int n_want[N];
    for (int i = 0; i < N; i++) {
        make_prompt(prompts[i], lens[i], 77u + (uint32_t)i, bos, ll_model_n_vocab(m));
        n_want[i] = solo_greedy(m, prompts[i], lens[i], gens[i], want[i]);
    }
    ll_error err = { 0 };
    ll_sched *s = NULL;
    ll_sched_params sp = { .n_parallel = 4, .n_ctx = 128, .n_batch = 24, .prompt_chunk = 8, .n_threads = 2 };
    CHECK_MSG(ll_sched_init(&s, m, &sp, &err) == LL_OK, "%s", err.msg);
    if (!s) { ll_model_free(m); return; }
    static tracker t[N];
    memset(t, 0, sizeof t);
    for (int i = 0; i < N; i++) {       /* 6 requests on 4 slots: two wait, then join */
        ll_sched_req r = greedy_req(prompts[i], (size_t)lens[i], gens[i], &t[i]);
        CHECK(ll_sched_submit(s, &r, &err) == LL_OK);
    }
    wait_done(t, N);
    for (int i = 0; i < N; i++) {
        CHECK_EQ_INT(t[i].n, n_want[i]);
        CHECK_MSG(memcmp(t[i].ids, want[i], (size_t)n_want[i] * sizeof(int32_t)) == 0, "request %d", i);
        CHECK_EQ_INT(t[i].res.reason, t[i].n == gens[i] ? LL_DONE_LENGTH : LL_DONE_STOP);
        CHECK_EQ_INT(t[i].res.n_prompt, lens[i]);
        CHECK(t[i].res.t_end_ns >= t[i].res.t_prompt_ns && t[i].res.t_prompt_ns >= t[i].res.t_start_ns);
    }
    CHECK_EQ_INT(ll_sched_n_busy(s), 0);
    ll_sched_free(s);
    ll_model_free(m);
}

/* One request cancels itself after 3 tokens: it ends CANCELLED with exactly 3 (the flag is
 * read before the next step), and the others are untouched. */
static void test_cancel_within_one_step(void) {
    ll_model *m = load(STORIES);
    if (!m) return;
    enum { N = 3 };
    static int32_t prompts[N][16];
    static int32_t want[N][MAX_GEN];
    int n_want[N];
    for (int i = 0; i < N; i++) {
        make_prompt(prompts[i], 8, 5u + (uint32_t)i, 1, 512);
        for (int k = 1; k < 8; k++) prompts[i][k] %= 500;
        n_want[i] = solo_greedy(m, prompts[i], 8, 40, want[i]);
    }
    ll_error err = { 0 };
    ll_sched *s = NULL;
    ll_sched_params sp = { .n_parallel = 3, .n_ctx = 64, .n_threads = 2 };
    CHECK(ll_sched_init(&s, m, &sp, &err) == LL_OK);
    if (!s) { ll_model_free(m); return; }
    static tracker t[N];
    memset(t, 0, sizeof t);
    t[1].cancel_after = 3;
    for (int i = 0; i < N; i++) {
        ll_sched_req r = greedy_req(prompts[i], 8, 40, &t[i]);
        CHECK(ll_sched_submit(s, &r, &err) == LL_OK);
    }
    wait_done(t, N);
    CHECK_EQ_INT(t[1].res.reason, LL_DONE_CANCELLED);
    CHECK_EQ_INT(t[1].n, 3);
    for (int i = 0; i < N; i += 2) {
        CHECK_EQ_INT(t[i].n, n_want[i]);
        CHECK(memcmp(t[i].ids, want[i], (size_t)n_want[i] * sizeof(int32_t)) == 0);
    }
    /* A request cancelled before it starts never runs. */
    tracker late;
    memset(&late, 0, sizeof late);
    atomic_store(&late.cancel, true);
    ll_sched_req r = greedy_req(prompts[0], 8, 40, &late);
    CHECK(ll_sched_submit(s, &r, &err) == LL_OK);
    wait_done(&late, 1);
    CHECK_EQ_INT(late.res.reason, LL_DONE_CANCELLED);
    CHECK_EQ_INT(late.n, 0);
    ll_sched_free(s);
    ll_model_free(m);
}

/* A second request sharing a prefix with a finished one reuses its cells (in place), and a
 * third sharing it with a running one gets them copied; all give the solo tokens. */
static void test_prefix_reuse(void) {
    ll_model *m = load(TINY);
    if (!m) return;
    const int32_t bos = ll_vocab_bos(ll_model_vocab(m));
    static int32_t a[80], b[90], want[MAX_GEN];
    make_prompt(a, 80, 999u, bos, 0);
    memcpy(b, a, 70 * sizeof(int32_t));
    make_prompt(b + 70, 20, 4242u, -1, 0);
    ll_error err = { 0 };
    ll_sched *s = NULL;
    ll_sched_params sp = { .n_parallel = 2, .n_ctx = 160, .prompt_chunk = 16, .n_threads = 2 };
    CHECK(ll_sched_init(&s, m, &sp, &err) == LL_OK);
    if (!s) { ll_model_free(m); return; }
    tracker t[3];
    memset(t, 0, sizeof t);
    ll_sched_req r = greedy_req(a, 80, 4, &t[0]);
    CHECK(ll_sched_submit(s, &r, &err) == LL_OK);
    wait_done(&t[0], 1);
    CHECK_EQ_INT(t[0].res.n_prompt_cached, 0);
    r = greedy_req(b, 90, 6, &t[1]);
    CHECK(ll_sched_submit(s, &r, &err) == LL_OK);
    wait_done(&t[1], 1);
    CHECK_EQ_INT(t[1].res.n_prompt_cached, 70);          /* in place */
    int n = solo_greedy(m, b, 90, 6, want);
    CHECK(t[1].n == n && memcmp(t[1].ids, want, (size_t)n * sizeof(int32_t)) == 0);

    /* t[2] runs long in one slot; the other slot's cache is unrelated; a request with b's
     * prefix must copy it from the busy slot. */
    static int32_t c[40];
    make_prompt(c, 40, 31337u, bos, 0);
    tracker busy;
    memset(&busy, 0, sizeof busy);
    r = greedy_req(b, 90, 60, &busy);                    /* reuses b's slot in place */
    r.sp.repeat_penalty = 1.0f;
    CHECK(ll_sched_submit(s, &r, &err) == LL_OK);
    tracker other;
    memset(&other, 0, sizeof other);
    r = greedy_req(c, 40, 1, &other);                   /* fills the other slot with c */
    CHECK(ll_sched_submit(s, &r, &err) == LL_OK);
    wait_done(&other, 1);
    r = greedy_req(b, 90, 3, &t[2]);
    CHECK(ll_sched_submit(s, &r, &err) == LL_OK);
    wait_done(&t[2], 1);
    pthread_mutex_lock(&mu);
    const bool was_busy = !busy.done;
    pthread_mutex_unlock(&mu);
    fprintf(stderr, "note %s: third request reused %d cached tokens (busy slot still running: %d)\n",
            test_cur_name, t[2].res.n_prompt_cached, was_busy);
    if (was_busy) CHECK_EQ_INT(t[2].res.n_prompt_cached, 89);   /* copied from the busy slot */
    n = solo_greedy(m, b, 90, 3, want);
    CHECK(t[2].n == n && memcmp(t[2].ids, want, (size_t)n * sizeof(int32_t)) == 0);
    wait_done(&busy, 1);
    ll_sched_free(s);
    ll_model_free(m);
}

/* A full context shifts and generation goes on (R3); without shifting it ends LENGTH. */
static void test_context_shift_and_limits(void) {
    ll_model *m = load(STORIES);
    if (!m) return;
    ll_error err = { 0 };
    ll_sched *s = NULL;
    ll_sched_params sp = { .n_parallel = 2, .n_ctx = 32, .n_threads = 1 };
    CHECK(ll_sched_init(&s, m, &sp, &err) == LL_OK);
    if (!s) { ll_model_free(m); return; }
    int32_t p[10];
    make_prompt(p, 10, 1u, 1, 0);
    for (int k = 1; k < 10; k++) p[k] %= 500;
    tracker t[2];
    memset(t, 0, sizeof t);
    ll_sched_req r = greedy_req(p, 10, 100, &t[0]);
    r.sp.repeat_penalty = 1.3f;                          /* keeps it from an early EOG */
    CHECK(ll_sched_submit(s, &r, &err) == LL_OK);
    r = greedy_req(p, 10, 100, &t[1]);
    r.sp.repeat_penalty = 1.3f;
    r.no_shift = true;
    CHECK(ll_sched_submit(s, &r, &err) == LL_OK);
    wait_done(t, 2);
    fprintf(stderr, "note %s: shifting request ended %d after %d tokens and %d shifts; the other "
            "ended %d after %d\n", test_cur_name, t[0].res.reason, t[0].n, t[0].res.n_shifts,
            t[1].res.reason, t[1].n);
    if (t[0].res.reason == LL_DONE_LENGTH) {
        CHECK_EQ_INT(t[0].n, 100);
        CHECK(t[0].res.n_shifts >= 3);
    }
    /* The last token is emitted but never decoded: n_ctx - n_prompt + 1 tokens. */
    if (t[1].res.reason == LL_DONE_LENGTH) CHECK_EQ_INT(t[1].n, 32 - 10 + 1);
    /* Bad requests are refused at submit. */
    int32_t big[40] = { 1 };
    r = greedy_req(big, 32, 1, &t[0]);
    CHECK(ll_sched_submit(s, &r, &err) == LL_ERR_ARG);
    r = greedy_req(big, 0, 1, &t[0]);
    CHECK(ll_sched_submit(s, &r, &err) == LL_ERR_ARG);
    big[1] = 9999;
    r = greedy_req(big, 2, 1, &t[0]);
    CHECK(ll_sched_submit(s, &r, &err) == LL_ERR_ARG);
    ll_sched_free(s);
    ll_model_free(m);
}

static bool block_token(void *user, int32_t id) {
    tracker *t = user;
    on_token(user, id);
    pthread_mutex_lock(&mu);
    bool more = t->n < 200;
    pthread_mutex_unlock(&mu);
    return more;
}

/* The queue is bounded (503 upstream); shutdown cancels the running and the waiting. */
static void test_queue_limit_and_shutdown(void) {
    ll_model *m = load(STORIES);
    if (!m) return;
    ll_error err = { 0 };
    ll_sched *s = NULL;
    ll_sched_params sp = { .n_parallel = 1, .n_ctx = 64, .max_queue = 2, .n_threads = 1 };
    CHECK(ll_sched_init(&s, m, &sp, &err) == LL_OK);
    if (!s) { ll_model_free(m); return; }
    int32_t p[4] = { 1, 20, 30, 40 };
    static tracker t[4];
    memset(t, 0, sizeof t);
    ll_sched_req r = greedy_req(p, 4, -1, &t[0]);
    r.on_token = block_token;
    CHECK(ll_sched_submit(s, &r, &err) == LL_OK);
    wait_tokens(&t[0], 1);                          /* in its slot: the queue is empty */
    for (int i = 1; i <= 2; i++) {
        r = greedy_req(p, 4, 5, &t[i]);
        CHECK(ll_sched_submit(s, &r, &err) == LL_OK);
    }
    r = greedy_req(p, 4, 5, &t[3]);
    ll_status st = ll_sched_submit(s, &r, &err);
    if (st == LL_OK) t[3].done = false;              /* the first finished already: fine */
    else {
        CHECK_EQ_INT(st, LL_ERR_LIMIT);
        CHECK_STR_CONTAINS(err.msg, "maximum pending requests");
        t[3].done = true;
    }
    ll_sched_free(s);                               /* everyone gets on_done */
    pthread_mutex_lock(&mu);
    for (int i = 0; i < 4; i++) CHECK(t[i].done);
    CHECK(t[0].res.reason == LL_DONE_CANCELLED || t[0].res.reason == LL_DONE_STOP);
    pthread_mutex_unlock(&mu);
    ll_model_free(m);
}


/* ll_sched_reserve takes a queue place before the request exists (streamed answers learn of a
 * full queue before their status line): reserved places count against max_queue, a submit
 * with .reserved uses its place even when the queue is otherwise full, a failed submit and
 * ll_sched_unreserve give the place back. */
static bool gate_open;   /* guarded by mu */

static bool gated_token(void *user, int32_t id) {   /* holds its slot until the gate opens */
    on_token(user, id);
    pthread_mutex_lock(&mu);
    while (!gate_open) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    return false;
}

static void test_reserve(void) {
    ll_model *m = load(STORIES);
    if (!m) return;
    ll_error err = { 0 };
    ll_sched *s = NULL;
    ll_sched_params sp = { .n_parallel = 1, .n_ctx = 64, .max_queue = 2, .n_threads = 1 };
    CHECK(ll_sched_init(&s, m, &sp, &err) == LL_OK);
    if (!s) { ll_model_free(m); return; }
    int32_t p[4] = { 1, 20, 30, 40 };
    static tracker t[4];
    memset(t, 0, sizeof t);
    gate_open = false;
    ll_sched_req r = greedy_req(p, 4, -1, &t[0]);
    r.on_token = gated_token;
    CHECK(ll_sched_submit(s, &r, &err) == LL_OK);
    wait_tokens(&t[0], 1);                          /* in its slot, holding it: the queue is empty */
    CHECK(ll_sched_reserve(s, &err) == LL_OK);
    CHECK(ll_sched_reserve(s, &err) == LL_OK);
    CHECK(ll_sched_reserve(s, &err) == LL_ERR_LIMIT);      /* two places, both taken */
    r = greedy_req(p, 4, 5, &t[1]);
    CHECK(ll_sched_submit(s, &r, &err) == LL_ERR_LIMIT);   /* an unreserved request finds it full */
    r.reserved = true;
    CHECK(ll_sched_submit(s, &r, &err) == LL_OK);          /* the reserved one gets in */
    r = greedy_req(p, 0, 5, &t[2]);                        /* a bad request gives its place back */
    r.reserved = true;
    CHECK(ll_sched_submit(s, &r, &err) == LL_ERR_ARG);
    CHECK(ll_sched_reserve(s, &err) == LL_OK);
    ll_sched_unreserve(s);
    ll_sched_unreserve(s);                                 /* nothing reserved now: harmless */
    r = greedy_req(p, 4, 5, &t[2]);
    CHECK(ll_sched_submit(s, &r, &err) == LL_OK);          /* queue: t[1], t[2] */
    CHECK(ll_sched_reserve(s, &err) == LL_ERR_LIMIT);
    pthread_mutex_lock(&mu);
    gate_open = true;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    ll_sched_free(s);
    pthread_mutex_lock(&mu);
    CHECK(t[0].done && t[1].done && t[2].done);
    pthread_mutex_unlock(&mu);
    ll_model_free(m);
}

typedef struct {
    tracker             t;
    ll_sched_token_info info[MAX_GEN];
    int                 n_info, n_null;
} lp_tracker;

static bool on_token_lp(void *user, int32_t id, const ll_sched_token_info *info) {
    lp_tracker *l = user;
    pthread_mutex_lock(&mu);
    if (!info) l->n_null++;
    else if (l->n_info < MAX_GEN) l->info[l->n_info++] = *info;
    pthread_mutex_unlock(&mu);
    return on_token(&l->t, id);
}

static void on_done_lp(void *user, const ll_sched_result *r) { on_done(&((lp_tracker *)user)->t, r); }

/* Logprobs (§1.0.3): log_softmax of the raw logits of the step, checked against a solo
 * context's logits for the same tokens; greedy picks the top alternative; alternatives come
 * sorted; on_token_info without want_logprobs gets NULL. */
static void test_logprobs(void) {
    ll_model *m = load(TINY);
    if (!m) return;
    ll_error err = { 0 };
    ll_sched *s = NULL;
    ll_sched_params sp = { .n_parallel = 2, .n_ctx = 256, .n_threads = 1 };
    CHECK(ll_sched_init(&s, m, &sp, &err) == LL_OK);
    if (!s) { ll_model_free(m); return; }
    int32_t p[12];
    make_prompt(p, 12, 5u, ll_vocab_bos(ll_model_vocab(m)), ll_model_n_vocab(m));
    static lp_tracker a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    ll_sched_req r = greedy_req(p, 12, 6, &a.t);
    r.on_token = NULL;
    r.on_token_info = on_token_lp;
    r.on_done = on_done_lp;
    r.user = &a;
    r.want_logprobs = true;
    r.top_logprobs = 5;
    CHECK(ll_sched_submit(s, &r, &err) == LL_OK);
    r.user = &b;
    r.cancel = &b.t.cancel;
    r.want_logprobs = false;
    CHECK(ll_sched_submit(s, &r, &err) == LL_OK);
    pthread_mutex_lock(&mu);
    while (!a.t.done || !b.t.done) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    CHECK_EQ_INT(a.n_info, a.t.n);
    CHECK_EQ_INT(b.n_null, b.t.n);
    CHECK(a.t.n > 0);
    /* The reference: the same tokens through a plain context, one at a time. */
    ll_ctx *c = NULL;
    ll_ctx_params cp = ll_ctx_default_params();
    cp.n_ctx = 256;
    CHECK(ll_ctx_init(&c, m, &cp, &err) == LL_OK);
    CHECK(c && ll_ctx_decode(c, p, 12, NULL, &err) == LL_OK);
    const int32_t V = ll_model_n_vocab(m);
    for (int k = 0; c && k < a.t.n && k < a.n_info; k++) {
        const float *lg = ll_ctx_logits(c, -1);
        double mx = lg[0], sum = 0;
        for (int32_t i = 1; i < V; i++) if (lg[i] > mx) mx = lg[i];
        for (int32_t i = 0; i < V; i++) sum += exp(lg[i] - mx);
        const double lz = mx + log(sum);
        const ll_sched_token_info *in = &a.info[k];
        CHECK_NEAR(in->logprob, lg[a.t.ids[k]] - lz, 1e-4);
        CHECK_EQ_INT(in->n_top, 5);
        CHECK_EQ_INT(in->top_id[0], a.t.ids[k]);
        double tot = 0;
        for (int i = 0; i < in->n_top; i++) {
            CHECK_NEAR(in->top_logprob[i], lg[in->top_id[i]] - lz, 1e-4);
            if (i) CHECK(in->top_logprob[i] <= in->top_logprob[i - 1]);
            tot += exp(in->top_logprob[i]);
        }
        CHECK(tot <= 1.0 + 1e-6);
        CHECK(ll_ctx_decode(c, &a.t.ids[k], 1, NULL, &err) == LL_OK);
    }
    ll_ctx_free(c);
    ll_sched_free(s);
    ll_model_free(m);
}

int main(void) {
    RUN(test_concurrent_requests_equal_solo);
    RUN(test_cancel_within_one_step);
    RUN(test_prefix_reuse);
    RUN(test_context_shift_and_limits);
    RUN(test_queue_limit_and_shutdown);
    RUN(test_reserve);
    RUN(test_logprobs);
    return test_summary();
}
