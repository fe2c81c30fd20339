/* server/sched: continuous batching over one model's context (issue 9).
 *
 * A scheduler owns one context with n_parallel sequences ("slots") and one thread that issues
 * every decode step. Requests wait in a bounded FIFO queue; between steps, waiting requests
 * take free slots, finished or cancelled ones leave. Each step is one ll_ctx_decode_batch
 * holding the next token of every generating slot plus chunks of newcomers' prompts (at most
 * prompt_chunk tokens per slot per step), so a long prompt never stalls the streams already
 * running. A new request reuses the longest cached prefix of any slot: in place when that slot
 * is free, else copied (ll_ctx_seq_cp) into a free slot, without recomputing it.
 *
 * Callbacks run on the scheduler thread: on_token (or on_token_info, which also gets the
 * token's logprobs when asked) for every generated token (return false to stop: a stop string,
 * a client gone), then on_done exactly once. A request's cancel flag is
 * read between steps: a cancelled request leaves within one decode step and the others go on.
 * The scheduler never tokenizes, renders or detokenizes: the API layer does. */
#ifndef LL_SCHED_H
#define LL_SCHED_H

#include "locallama.h"

#include <stdatomic.h>

typedef struct ll_sched ll_sched;

typedef struct {
    int32_t    n_parallel;    /* slots (sequences); 0 = 4 */
    int32_t    n_ctx;         /* cells per slot; 0 = min(4096, training context) */
    int32_t    n_batch;       /* entries per step; 0 = 512 */
    int32_t    prompt_chunk;  /* prompt tokens per slot per step; 0 = 128 */
    int32_t    max_queue;     /* waiting requests beyond the slots; 0 = MAX_QUEUE env, else 512 */
    ll_kv_type type_k, type_v;
    ll_pool   *pool;          /* shared compute pool (borrowed); NULL: the context's own */
    int32_t    n_threads;     /* for an own pool */
} ll_sched_params;

typedef enum {
    LL_DONE_STOP = 0,         /* end-of-generation token, or on_token returned false */
    LL_DONE_LENGTH,           /* num_predict reached, or the context is full and may not shift */
    LL_DONE_CANCELLED,        /* the cancel flag, or the scheduler shut down */
    LL_DONE_ERROR,            /* see err */
} ll_done_reason;

typedef struct {
    ll_done_reason reason;
    ll_error       err;             /* LL_DONE_ERROR: what failed */
    int32_t        n_prompt;        /* prompt tokens */
    int32_t        n_prompt_cached; /* of which reused from a cached prefix, not computed */
    int32_t        n_gen;           /* tokens passed to on_token */
    int32_t        n_shifts;        /* context shifts */
    uint64_t       t_queued_ns, t_start_ns, t_prompt_ns, t_end_ns;   /* ll_time_ns() */
} ll_sched_result;

typedef bool (*ll_sched_token_fn)(void *user, int32_t id);

/* What a request that asked for logprobs (§1.0.3) learns with each token: the natural-log
 * probabilities of the distribution the model gave at this position, i.e. log_softmax of the
 * raw logits, before temperature, penalties or truncation (as Ollama reports them). */
#define LL_SCHED_MAX_TOP_LOGPROBS 20
typedef struct {
    float   logprob;                                   /* of the chosen token */
    int32_t n_top;                                     /* entries below, most likely first */
    int32_t top_id[LL_SCHED_MAX_TOP_LOGPROBS];
    float   top_logprob[LL_SCHED_MAX_TOP_LOGPROBS];
} ll_sched_token_info;
typedef bool (*ll_sched_token_info_fn)(void *user, int32_t id, const ll_sched_token_info *info);
typedef void (*ll_sched_done_fn)(void *user, const ll_sched_result *r);

typedef struct {
    const int32_t *prompt;    /* copied by submit; at least 1 token, fewer than n_ctx */
    size_t         n_prompt;
    ll_sampler_params sp;
    int64_t        num_predict;   /* < 0: until end of generation, at most 10 x n_ctx (R4) */
    int32_t        num_keep;      /* tokens kept from the start by a context shift (R3) */
    bool           no_shift;      /* a full context ends the request (LENGTH) instead */
    ll_sched_token_fn on_token;
    ll_sched_done_fn  on_done;
    void          *user;
    const atomic_bool *cancel;    /* may be NULL */
    /* Logprobs: when on_token_info is set it is called instead of on_token; info is filled
     * only when want_logprobs (else NULL), with top_logprobs (0..20) alternatives. */
    ll_sched_token_info_fn on_token_info;
    bool           want_logprobs;
    int32_t        top_logprobs;
    bool           reserved;      /* the queue place was taken by ll_sched_reserve */
    /* Constrained output (format, §1.0.6): each token is sampled among those the grammar
     * allows, end of generation only where it may end, and the request stops once the grammar
     * is done. Taken by a successful submit (freed when the request ends); the caller keeps it
     * when submit fails. Built for this model's vocabulary. NULL: unconstrained. */
    ll_grammar    *grammar;
    /* With a grammar: NULL = constrain from the first token; else only while *grammar_gate
     * is true (a thinking model's answer after its free trace; on_token raises it, on the
     * scheduler thread, after feeding the grammar the answer's bytes so far). */
    atomic_bool   *grammar_gate;
    /* With a gate: once the grammar is done, lower the gate (the scheduler thread stores
     * false) and go on unconstrained, instead of ending the request. A tool call constrained
     * from its marker on: text may follow it (§1.2.5). */
    bool           grammar_release;
} ll_sched_req;

ll_status ll_sched_init(ll_sched **out, const ll_model *m, const ll_sched_params *p, ll_error *err);
/* Cancels everything (each on_done gets CANCELLED), then stops the thread. NULL-safe. */
void      ll_sched_free(ll_sched *s);
/* Queue a request. LL_ERR_LIMIT: the queue is full (HTTP 503); LL_ERR_ARG: an empty prompt or
 * one that does not fit the context (the caller truncates first, R1). On success on_done will
 * be called exactly once, from the scheduler thread. */
ll_status ll_sched_submit(ll_sched *s, const ll_sched_req *r, ll_error *err);
/* Take a queue place now for a request submitted later: a streamed answer must know that the
 * queue has room (else HTTP 503) before it sends its status line, and its callbacks must not
 * run before the stream exists. LL_ERR_LIMIT when full or shutting down. The place is used by
 * a submit with .reserved set (which gives it back if it fails) or returned by
 * ll_sched_unreserve. */
ll_status ll_sched_reserve(ll_sched *s, ll_error *err);
void      ll_sched_unreserve(ll_sched *s);
int32_t   ll_sched_n_ctx(const ll_sched *s);
int32_t   ll_sched_n_parallel(const ll_sched *s);
int32_t   ll_sched_n_busy(ll_sched *s);   /* requests in slots or waiting */
uint64_t  ll_sched_kv_bytes(const ll_sched *s);

#endif
