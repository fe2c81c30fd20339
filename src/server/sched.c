/* server/sched.c: continuous batching (sched.h). One thread per scheduler runs the loop:
 *
 *   admit   waiting requests take free slots (longest cached prefix first)
 *   cancel  requests whose flag is up leave (their cells stay, as a cache for later turns)
 *   batch   the next token of every generating slot, then prompt chunks of the others
 *   decode  one ll_ctx_decode_batch
 *   emit    sample each slot's token, call on_token, finish on EOG / limits / stop
 *
 * Locking: mu guards the queue and `stopping`; everything else (slots, context, samplers) is
 * touched only by the scheduler thread. n_busy is atomic for readers on other threads. */
#include "server/sched.h"

#include "core/core.h"
#include "server/http.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>

#define SCHED_DEFAULT_PARALLEL 4
#define SCHED_DEFAULT_BATCH    512
#define SCHED_DEFAULT_CHUNK    128
#define SCHED_DEFAULT_QUEUE    512

typedef struct job {
    ll_sched_req    r;          /* r.prompt points at prompt */
    int32_t        *prompt;     /* owned copy */
    ll_sched_result res;
    struct job     *next;
} job;

typedef enum { SLOT_FREE, SLOT_PROMPT, SLOT_GEN } slot_state;

typedef struct {
    slot_state  st;
    job        *j;
    ll_sampler *smp;
    int32_t     n_done;         /* prompt tokens in the cells */
    int32_t     take;           /* prompt tokens in the current step */
    int32_t     next_tok;       /* SLOT_GEN: the token to decode next */
    int32_t     out_idx;        /* batch entry whose logits this slot reads, or -1 */
    uint64_t   *allow;          /* a grammar's token mask, (n_vocab + 63) / 64 words; lazily */
    uint64_t    last_used;      /* step of the last use, to pick which free cache to reuse */
} slot;

struct ll_sched {
    const ll_model *m;
    const ll_vocab *vocab;
    ll_ctx     *ctx;
    int32_t     n_par, n_ctx, n_batch, chunk, max_queue;
    slot       *slots;
    ll_batch    batch;
    int32_t    *toks;           /* (n_ctx) a slot's cached tokens */
    uint64_t    step;

    pthread_t       th;
    bool            th_started;
    pthread_mutex_t mu;
    pthread_cond_t  cv;
    job            *q_head, *q_tail;   /* guarded by mu */
    int32_t         n_queued;          /* guarded by mu */
    int32_t         n_reserved;        /* queue places taken by ll_sched_reserve; mu */
    bool            stopping;          /* guarded by mu */
    atomic_bool     abort;             /* raised by ll_sched_free: cancels a running step */
    atomic_int      n_busy;            /* queued + in slots */
};

static bool sched_abort_cb(void *user) {
    return atomic_load_explicit(&((ll_sched *)user)->abort, memory_order_relaxed);
}

/* ---- finishing -------------------------------------------------------------------------------- */

static void job_finish(ll_sched *s, job *j, ll_done_reason why, const ll_error *err) {
    j->res.reason = why;
    if (err) j->res.err = *err;
    j->res.t_end_ns = ll_time_ns();
    if (!j->res.t_prompt_ns) j->res.t_prompt_ns = j->res.t_end_ns;
    if (!j->res.t_start_ns) j->res.t_start_ns = j->res.t_end_ns;
    atomic_fetch_sub(&s->n_busy, 1);       /* before on_done: a waiter then sees it gone */
    if (j->r.on_done) j->r.on_done(j->r.user, &j->res);
    ll_grammar_free(j->r.grammar);
    free(j->prompt);
    free(j);
}

static void slot_finish(ll_sched *s, slot *sl, ll_done_reason why, const ll_error *err) {
    ll_sampler_free(sl->smp);
    sl->smp = NULL;
    job_finish(s, sl->j, why, err);
    sl->j = NULL;
    sl->st = SLOT_FREE;
    sl->out_idx = -1;
    sl->last_used = s->step;
}

/* ---- admission -------------------------------------------------------------------------------- */

static int32_t common_prefix(const int32_t *a, size_t na, const int32_t *b, size_t nb) {
    size_t n = 0;
    while (n < na && n < nb && a[n] == b[n]) n++;
    return (int32_t)n;
}

/* Put j in a free slot, reusing the longest cached prefix: in place when a free slot holds
 * it, else copied from the busy slot that does (when that saves more than a chunk's worth of
 * computation over the best free one). Returns false (j finished with an error) on failure. */
static bool admit(ll_sched *s, job *j) {
    ll_error err = { 0 };
    const int32_t np = (int32_t)j->r.n_prompt;
    int best_free = -1, best_any = -1;
    int32_t lcp_free = -1, lcp_any = -1;
    uint64_t oldest = UINT64_MAX;
    int lru_free = -1;
    for (int i = 0; i < s->n_par; i++) {
        size_t n = ll_ctx_seq_tokens(s->ctx, i, s->toks, (size_t)s->n_ctx);
        int32_t l = common_prefix(s->toks, n, j->prompt, (size_t)np);
        if (s->slots[i].st == SLOT_FREE) {
            if (l > lcp_free) { lcp_free = l; best_free = i; }
            if (s->slots[i].last_used < oldest) { oldest = s->slots[i].last_used; lru_free = i; }
        }
        if (l > lcp_any) { lcp_any = l; best_any = i; }
    }
    if (best_free < 0) return false;   /* the caller checked there is one */
    int dst = best_free;
    int32_t keep = lcp_free;
    if (keep == 0) dst = lru_free;     /* nothing to reuse: spare the caches that may be */
    if (s->slots[best_any].st != SLOT_FREE && lcp_any > keep + s->chunk) {
        dst = lru_free;
        keep = lcp_any;
        if (ll_ctx_seq_cp(s->ctx, best_any, dst, 0, keep, &err) != LL_OK) {
            job_finish(s, j, LL_DONE_ERROR, &err);
            return false;
        }
    }
    if (keep >= np) keep = np - 1;     /* recompute the last prompt token for its logits */
    if (ll_ctx_seq_rm(s->ctx, dst, keep, -1, &err) != LL_OK) {
        job_finish(s, j, LL_DONE_ERROR, &err);
        return false;
    }
    slot *sl = &s->slots[dst];
    if (ll_sampler_init(&sl->smp, &j->r.sp, ll_model_n_vocab(s->m), &err) != LL_OK) {
        job_finish(s, j, LL_DONE_ERROR, &err);
        return false;
    }
    /* The penalty history is the conversation as the model sees it (as `run` keeps it). */
    for (int32_t i = 0; i < np; i++) ll_sampler_accept(sl->smp, j->prompt[i]);
    ll_ctx_seq_cancel(s->ctx, dst, false);
    sl->j = j;
    sl->st = SLOT_PROMPT;
    sl->n_done = keep;
    sl->out_idx = -1;
    sl->last_used = s->step;
    j->res.n_prompt = np;
    j->res.n_prompt_cached = keep;
    j->res.t_start_ns = ll_time_ns();
    return true;
}

/* ---- one step --------------------------------------------------------------------------------- */

static bool job_cancelled(const job *j) {
    return j->r.cancel && atomic_load_explicit(j->r.cancel, memory_order_acquire);
}

/* log_softmax of the raw logits at id and the top n alternatives (§1.0.3). The sum runs in
 * double from the maximum, so no exp overflows; the top list is an insertion into n <= 20
 * entries, O(n_vocab * n), cheap next to a decode step. */
static void token_info(const float *logits, int32_t n_vocab, int32_t id, int32_t n, ll_sched_token_info *info) {
    float mx = -INFINITY;
    for (int32_t i = 0; i < n_vocab; i++) if (logits[i] > mx) mx = logits[i];
    double sum = 0;
    for (int32_t i = 0; i < n_vocab; i++) sum += exp((double)logits[i] - mx);
    const double lz = mx + log(sum);
    info->logprob = (float)(logits[id] - lz);
    if (n < 0) n = 0;
    if (n > LL_SCHED_MAX_TOP_LOGPROBS) n = LL_SCHED_MAX_TOP_LOGPROBS;
    if (n > n_vocab) n = n_vocab;
    info->n_top = 0;
    for (int32_t i = 0; i < n_vocab && n > 0; i++) {
        float v = logits[i];
        int32_t k = info->n_top;
        if (k == n && v <= logits[info->top_id[k - 1]]) continue;
        if (k < n) info->n_top++;
        else k = n - 1;
        while (k > 0 && logits[info->top_id[k - 1]] < v) { info->top_id[k] = info->top_id[k - 1]; k--; }
        info->top_id[k] = i;
    }
    for (int32_t k = 0; k < info->n_top; k++) info->top_logprob[k] = (float)(logits[info->top_id[k]] - lz);
}

/* Sample this slot's next token from the step's logits and act on it. */
static void emit(ll_sched *s, slot *sl) {
    ll_error err = { 0 };
    job *j = sl->j;
    const float *logits = ll_ctx_logits_ith(s->ctx, sl->out_idx);
    int32_t id;
    if (!logits) {
        ll_fail(&err, LL_ERR_FORMAT, "no logits for slot %d", (int)(sl - s->slots));
        slot_finish(s, sl, LL_DONE_ERROR, &err);
        return;
    }
    const bool constrained = j->r.grammar && (!j->r.grammar_gate || atomic_load(j->r.grammar_gate));
    if (constrained) {                                 /* format: only what the grammar allows */
        const size_t words = ((size_t)ll_model_n_vocab(s->m) + 63) / 64;
        if (!sl->allow && !(sl->allow = malloc(words * sizeof *sl->allow))) {
            ll_fail(&err, LL_ERR_NOMEM, "out of memory for a token mask");
            slot_finish(s, sl, LL_DONE_ERROR, &err);
            return;
        }
        if (ll_grammar_mask(j->r.grammar, sl->allow, words, &err) != LL_OK ||
            ll_sampler_sample_masked(sl->smp, logits, sl->allow, &id, &err) != LL_OK ||
            ll_grammar_accept(j->r.grammar, id, &err) != LL_OK) {
            if (err.code == LL_ERR_MASKED)
                ll_fail(&err, LL_ERR_MASKED, "the output format allows no token the model can produce here");
            slot_finish(s, sl, LL_DONE_ERROR, &err);
            return;
        }
    } else if (ll_sampler_sample(sl->smp, logits, &id, &err) != LL_OK) {
        slot_finish(s, sl, LL_DONE_ERROR, &err);       /* R17: numerical error */
        return;
    }
    if (ll_vocab_is_eog(s->vocab, id)) { slot_finish(s, sl, LL_DONE_STOP, NULL); return; }
    j->res.n_gen++;
    bool go_on = true;
    if (j->r.on_token_info) {
        ll_sched_token_info info;
        if (j->r.want_logprobs) token_info(logits, ll_model_n_vocab(s->m), id, j->r.top_logprobs, &info);
        go_on = j->r.on_token_info(j->r.user, id, j->r.want_logprobs ? &info : NULL);
    } else if (j->r.on_token) {
        go_on = j->r.on_token(j->r.user, id);
    }
    if (!go_on) { slot_finish(s, sl, LL_DONE_STOP, NULL); return; }
    /* A complete value that nothing may extend: done, without waiting for the model's EOG. */
    if (constrained && ll_grammar_is_done(j->r.grammar)) {
        if (!j->r.grammar_release || !j->r.grammar_gate) { slot_finish(s, sl, LL_DONE_STOP, NULL); return; }
        atomic_store(j->r.grammar_gate, false);
    }
    const int64_t cap = j->r.num_predict >= 0 ? j->r.num_predict : 10 * (int64_t)s->n_ctx;   /* R4 */
    if (j->res.n_gen >= cap) { slot_finish(s, sl, LL_DONE_LENGTH, NULL); return; }
    const int32_t si = (int32_t)(sl - s->slots);
    if (ll_ctx_seq_len(s->ctx, si) >= s->n_ctx) {      /* R3: shift, or stop */
        if (j->r.no_shift) { slot_finish(s, sl, LL_DONE_LENGTH, NULL); return; }
        int32_t keep = j->r.num_keep < 0 ? 0 : j->r.num_keep;
        if (ll_vocab_add_bos(s->vocab) && j->prompt[0] == ll_vocab_bos(s->vocab)) keep++;
        if (keep > s->n_ctx - 2) keep = s->n_ctx - 2;  /* H36: clamped */
        if (ll_ctx_seq_shift(s->ctx, si, keep, NULL, &err) != LL_OK) {
            slot_finish(s, sl, LL_DONE_ERROR, &err);
            return;
        }
        j->res.n_shifts++;
    }
    sl->next_tok = id;
    sl->st = SLOT_GEN;
}

static void step(ll_sched *s) {
    ll_error err = { 0 };
    s->step++;
    for (int i = 0; i < s->n_par; i++) {
        slot *sl = &s->slots[i];
        if (sl->st != SLOT_FREE && job_cancelled(sl->j)) slot_finish(s, sl, LL_DONE_CANCELLED, NULL);
    }
    ll_batch_clear(&s->batch);
    for (int i = 0; i < s->n_par; i++) {               /* generating slots first: one token each */
        slot *sl = &s->slots[i];
        sl->out_idx = -1;
        sl->take = 0;
        if (sl->st != SLOT_GEN) continue;
        sl->out_idx = s->batch.n_tokens;
        ll_batch_add(&s->batch, sl->next_tok, ll_ctx_seq_pos_max(s->ctx, i) + 1, i, true);
        sl->last_used = s->step;
    }
    int32_t budget = s->n_batch - s->batch.n_tokens;
    for (int i = 0; i < s->n_par && budget > 0; i++) { /* then prompt chunks, slot order */
        slot *sl = &s->slots[i];
        if (sl->st != SLOT_PROMPT) continue;
        const int32_t np = (int32_t)sl->j->r.n_prompt;
        int32_t take = np - sl->n_done;
        if (take > s->chunk) take = s->chunk;
        if (take > budget) take = budget;
        const int32_t p0 = ll_ctx_seq_pos_max(s->ctx, i) + 1;
        for (int32_t k = 0; k < take; k++) {
            const bool last = sl->n_done + k + 1 == np;
            if (last) sl->out_idx = s->batch.n_tokens;
            ll_batch_add(&s->batch, sl->j->prompt[sl->n_done + k], p0 + k, i, last);
        }
        sl->take = take;
        budget -= take;
        sl->last_used = s->step;
    }
    if (s->batch.n_tokens == 0) return;

    ll_status st = ll_ctx_decode_batch(s->ctx, &s->batch, &err);
    if (st != LL_OK) {                                  /* the step's cells are rolled back */
        const ll_done_reason why = st == LL_ERR_CANCELLED ? LL_DONE_CANCELLED : LL_DONE_ERROR;
        for (int i = 0; i < s->n_par; i++)
            if (s->slots[i].st != SLOT_FREE && (s->slots[i].out_idx >= 0 || s->slots[i].take > 0))
                slot_finish(s, &s->slots[i], why, &err);
        return;
    }
    for (int i = 0; i < s->n_par; i++) {
        slot *sl = &s->slots[i];
        if (sl->st == SLOT_PROMPT) {
            sl->n_done += sl->take;
            if (sl->n_done < (int32_t)sl->j->r.n_prompt) continue;
            sl->j->res.t_prompt_ns = ll_time_ns();
            emit(s, sl);
        } else if (sl->st == SLOT_GEN && sl->out_idx >= 0) {
            emit(s, sl);
        }
    }
}

/* ---- the thread ------------------------------------------------------------------------------- */

static bool any_active(const ll_sched *s) {
    for (int i = 0; i < s->n_par; i++)
        if (s->slots[i].st != SLOT_FREE) return true;
    return false;
}

static bool any_free(const ll_sched *s) {
    for (int i = 0; i < s->n_par; i++)
        if (s->slots[i].st == SLOT_FREE) return true;
    return false;
}

static void *sched_main(void *arg) {
    ll_sched *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (!s->stopping && !s->q_head && !any_active(s)) pthread_cond_wait(&s->cv, &s->mu);
        if (s->stopping) { pthread_mutex_unlock(&s->mu); break; }
        job *admitted = NULL, **tail = &admitted;       /* FIFO: the oldest first */
        int free_slots = 0;
        for (int i = 0; i < s->n_par; i++) free_slots += s->slots[i].st == SLOT_FREE;
        while (s->q_head && free_slots > 0) {
            job *j = s->q_head;
            s->q_head = j->next;
            if (!s->q_head) s->q_tail = NULL;
            s->n_queued--;
            j->next = NULL;
            *tail = j;
            tail = &j->next;
            free_slots--;
        }
        pthread_mutex_unlock(&s->mu);
        while (admitted) {                              /* context work outside the lock */
            job *j = admitted;
            admitted = j->next;
            if (job_cancelled(j)) { job_finish(s, j, LL_DONE_CANCELLED, NULL); continue; }
            if (any_free(s)) admit(s, j);
        }
        step(s);
    }
    /* Shutting down: everyone still here is cancelled. */
    for (int i = 0; i < s->n_par; i++)
        if (s->slots[i].st != SLOT_FREE) slot_finish(s, &s->slots[i], LL_DONE_CANCELLED, NULL);
    pthread_mutex_lock(&s->mu);
    job *q = s->q_head;
    s->q_head = s->q_tail = NULL;
    s->n_queued = 0;
    pthread_mutex_unlock(&s->mu);
    while (q) {
        job *n = q->next;
        job_finish(s, q, LL_DONE_CANCELLED, NULL);
        q = n;
    }
    return NULL;
}

/* ---- public ----------------------------------------------------------------------------------- */

/* OLLAMA_MAX_QUEUE (§0.4.2): read here because the runners do not pass a queue size down; a
 * value that is no positive integer falls back to the default, as Ollama's does. */
static int32_t default_max_queue(void) {
    char buf[32];
    const char *v = ll_env_get("MAX_QUEUE", buf, sizeof buf);
    if (!v || !*v) return SCHED_DEFAULT_QUEUE;
    char *end = NULL;
    long n = strtol(v, &end, 10);
    if (*end || n <= 0 || n > INT32_MAX) {
        LL_WARN("MAX_QUEUE=%s is not a positive integer; using %d", v, SCHED_DEFAULT_QUEUE);
        return SCHED_DEFAULT_QUEUE;
    }
    return (int32_t)n;
}

ll_status ll_sched_init(ll_sched **out, const ll_model *m, const ll_sched_params *p, ll_error *err) {
    *out = NULL;
    ll_sched_params dp = { 0 };
    if (!p) p = &dp;
    if (p->n_parallel < 0 || p->n_parallel > 256 || p->n_batch < 0 || p->prompt_chunk < 0 || p->max_queue < 0)
        return ll_fail(err, LL_ERR_ARG, "scheduler: bad parameters (parallel %d, batch %d, chunk %d, queue %d)",
                       p->n_parallel, p->n_batch, p->prompt_chunk, p->max_queue);
    ll_sched *s = calloc(1, sizeof *s);
    if (!s) return ll_fail(err, LL_ERR_NOMEM, "out of memory for the scheduler");
    s->m = m;
    s->vocab = ll_model_vocab(m);
    s->n_par = p->n_parallel ? p->n_parallel : SCHED_DEFAULT_PARALLEL;
    s->n_batch = p->n_batch ? p->n_batch : SCHED_DEFAULT_BATCH;
    if (s->n_batch < s->n_par + 1) s->n_batch = s->n_par + 1;   /* room for a prompt token too */
    s->chunk = p->prompt_chunk ? p->prompt_chunk : SCHED_DEFAULT_CHUNK;
    s->max_queue = p->max_queue ? p->max_queue : default_max_queue();
    atomic_init(&s->abort, false);
    atomic_init(&s->n_busy, 0);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);

    ll_ctx_params cp = ll_ctx_default_params();
    cp.fast_products = true;                 /* within f32 rounding; logits stays exact */
    cp.n_ctx = p->n_ctx;
    cp.n_seq_max = s->n_par;
    cp.n_batch = s->n_batch;
    cp.n_threads = p->n_threads;
    cp.pool = p->pool;
    cp.type_k = p->type_k;
    cp.type_v = p->type_v;
    cp.abort_cb = sched_abort_cb;
    cp.abort_data = s;
    ll_status st = ll_ctx_init(&s->ctx, m, &cp, err);
    if (st != LL_OK) goto fail;
    s->n_ctx = ll_ctx_n_ctx(s->ctx);
    s->slots = calloc((size_t)s->n_par, sizeof *s->slots);
    s->toks = malloc((size_t)s->n_ctx * sizeof *s->toks);
    if (!s->slots || !s->toks) { st = ll_fail(err, LL_ERR_NOMEM, "out of memory for the scheduler"); goto fail; }
    if ((st = ll_batch_init(&s->batch, s->n_batch, err)) != LL_OK) goto fail;
    if (pthread_create(&s->th, NULL, sched_main, s) != 0) {
        st = ll_fail(err, LL_ERR_NOMEM, "cannot start the scheduler thread");
        goto fail;
    }
    s->th_started = true;
    *out = s;
    return LL_OK;
fail:
    ll_sched_free(s);
    return st;
}

void ll_sched_free(ll_sched *s) {
    if (!s) return;
    if (s->th_started) {
        pthread_mutex_lock(&s->mu);
        s->stopping = true;
        atomic_store(&s->abort, true);
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->th, NULL);
    }
    ll_batch_free(&s->batch);
    ll_ctx_free(s->ctx);
    for (int i = 0; s->slots && i < s->n_par; i++) free(s->slots[i].allow);
    free(s->slots);
    free(s->toks);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

ll_status ll_sched_reserve(ll_sched *s, ll_error *err) {
    pthread_mutex_lock(&s->mu);
    bool stopping = s->stopping, full = s->n_queued + s->n_reserved >= s->max_queue;
    if (!stopping && !full) s->n_reserved++;
    pthread_mutex_unlock(&s->mu);
    if (stopping) return ll_fail(err, LL_ERR_LIMIT, "server shutting down");
    if (full) return ll_fail(err, LL_ERR_LIMIT, "server busy, please try again: maximum pending requests exceeded");
    return LL_OK;
}

void ll_sched_unreserve(ll_sched *s) {
    pthread_mutex_lock(&s->mu);
    if (s->n_reserved > 0) s->n_reserved--;
    pthread_mutex_unlock(&s->mu);
}

static ll_status submit_fail(ll_sched *s, const ll_sched_req *r, ll_status st) {
    if (r->reserved) ll_sched_unreserve(s);
    return st;
}

ll_status ll_sched_submit(ll_sched *s, const ll_sched_req *r, ll_error *err) {
    if (!r->prompt || r->n_prompt == 0) return submit_fail(s, r, ll_fail(err, LL_ERR_ARG, "empty prompt"));
    if (r->n_prompt >= (size_t)s->n_ctx)
        return submit_fail(s, r, ll_fail(err, LL_ERR_ARG, "prompt of %zu tokens does not fit the context of %d",
                                         r->n_prompt, s->n_ctx));
    const int32_t V = ll_model_n_vocab(s->m);
    for (size_t i = 0; i < r->n_prompt; i++)
        if (r->prompt[i] < 0 || r->prompt[i] >= V)
            return submit_fail(s, r, ll_fail(err, LL_ERR_ARG, "token id %d (at %zu) out of range [0, %d)",
                                             r->prompt[i], i, V));
    job *j = calloc(1, sizeof *j);
    int32_t *copy = malloc(r->n_prompt * sizeof *copy);
    if (!j || !copy) {
        free(j);
        free(copy);
        return submit_fail(s, r, ll_fail(err, LL_ERR_NOMEM, "out of memory for a request of %zu tokens", r->n_prompt));
    }
    memcpy(copy, r->prompt, r->n_prompt * sizeof *copy);
    j->r = *r;
    j->r.prompt = copy;
    j->prompt = copy;
    j->res.t_queued_ns = ll_time_ns();
    pthread_mutex_lock(&s->mu);
    const bool mine = r->reserved && s->n_reserved > 0;   /* the place is already ours */
    if (mine) s->n_reserved--;
    if (s->stopping || (!mine && s->n_queued + s->n_reserved >= s->max_queue)) {
        bool stopping = s->stopping;
        pthread_mutex_unlock(&s->mu);
        free(copy);
        free(j);
        return ll_fail(err, LL_ERR_LIMIT, stopping ? "server shutting down"
                                                   : "server busy, please try again: maximum pending requests exceeded");
    }
    if (s->q_tail) s->q_tail->next = j;
    else s->q_head = j;
    s->q_tail = j;
    s->n_queued++;
    atomic_fetch_add(&s->n_busy, 1);
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return LL_OK;
}

int32_t ll_sched_n_ctx(const ll_sched *s) { return s->n_ctx; }
int32_t ll_sched_n_parallel(const ll_sched *s) { return s->n_par; }
int32_t ll_sched_n_busy(ll_sched *s) { return atomic_load(&s->n_busy); }
uint64_t ll_sched_kv_bytes(const ll_sched *s) { return ll_ctx_kv_bytes(s->ctx); }
