/* server/runners: the loaded models of a server (issue 9; ollama-api.md §0.10).
 *
 * A runner is one model file loaded with its scheduler (sched.h): n_parallel slots of n_ctx
 * cells, decoding on the server's shared pool. The registry loads a runner on first use, and
 * only once when several requests ask at the same time (R11); keeps it after its last
 * request until keep_alive runs out (a reaper thread unloads expired runners; keep_alive 0
 * unloads at once, negative never); never unloads one with requests in flight (R10); and
 * when max_loaded runners are loaded, evicts the least recently used idle one first. A
 * request that needs another context size reloads the runner once it is idle, as Ollama does.
 *
 * Thread-safe: every call may come from any server thread. */
#ifndef LL_RUNNERS_H
#define LL_RUNNERS_H

#include "server/sched.h"

typedef struct ll_runner ll_runner;
typedef struct ll_runners ll_runners;

typedef struct {
    int32_t    max_loaded;    /* runners loaded at once; 0 = 3 (Ollama's default per device) */
    int32_t    n_parallel;    /* slots per runner; 0 = 4 */
    ll_kv_type type_k, type_v;
    ll_pool   *pool;          /* shared by every runner (borrowed) */
    int64_t    reap_interval_ms;   /* how often expired runners are looked for; 0 = 250 */
} ll_runners_params;

typedef struct {
    char     key[512];        /* what the runner was acquired by (the model's name) */
    char     path[1024];      /* the GGUF file */
    int32_t  n_ctx;           /* cells per slot */
    int32_t  n_parallel;
    int32_t  in_flight;       /* requests holding it */
    uint64_t size_bytes;      /* weights + KV cache */
    int64_t  expires_at_ns;   /* CLOCK_REALTIME ns when it unloads; INT64_MAX: never; 0: in use
                                 with no session set (the server's default applies) */
    uint64_t last_used;       /* order of use: larger is more recent */
} ll_runner_info;

ll_status ll_runners_init(ll_runners **out, const ll_runners_params *p, ll_error *err);
void      ll_runners_free(ll_runners *rs);    /* unloads everything (requests are cancelled) */

/* The runner for key (a model name) on the GGUF at path with n_ctx cells per slot (0: the
 * default), loading it if needed. The caller holds it until ll_runners_release. */
ll_status ll_runners_acquire(ll_runners *rs, const char *key, const char *path, int32_t n_ctx,
                             ll_runner **out, ll_error *err);
/* Done with it: it stays loaded for keep_alive_ns (0: unload when idle; < 0: forever). */
void      ll_runners_release(ll_runners *rs, ll_runner *r, int64_t keep_alive_ns);
/* The keep-alive of the latest request holding r: while r is in use, ll_runners_list reports
 * its expiry as now + this (Ollama's session duration), so /api/ps shows what the request
 * asked for before the request has ended. */
void      ll_runners_set_session(ll_runners *rs, ll_runner *r, int64_t keep_alive_ns);
/* Unload key now if idle, or as soon as its requests end (a keep_alive 0 request). */
void      ll_runners_unload(ll_runners *rs, const char *key);
/* Loaded runners, most recently used first; returns the count (writes at most cap). */
size_t    ll_runners_list(ll_runners *rs, ll_runner_info *out, size_t cap);

ll_sched       *ll_runner_sched(ll_runner *r);
const ll_model *ll_runner_model(ll_runner *r);
/* A grammar for format (§1.0.6) on this runner's vocabulary, ready for one request (the
 * caller frees it). key is "json", the schema's compact JSON text, or "tools:" and a tool-call spec
 * (ll_grammar_init_tools). Compiling walks the whole
 * vocabulary (~100 ms on 128K tokens) and the tables fill as masks are asked for, so each
 * runner keeps the last few compiled grammars and hands out clones that share them. Errors are
 * ll_grammar_init_*'s (LL_ERR_UNSUPPORTED, LL_ERR_FORMAT: a bad schema). Thread-safe. */
ll_status ll_runner_grammar(ll_runner *r, const char *key, ll_grammar **out, ll_error *err);

#endif
