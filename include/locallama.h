/* locallama.h — the one public header of the locallama engine.
 *
 * A walk through one generation, the way the CLI does it:
 *
 *     ll_error err = {0};
 *     ll_model *m;
 *     if (ll_model_load(&m, "model.gguf", NULL, &err) != LL_OK) { puts(err.msg); return 1; }
 *     ll_ctx *c;
 *     ll_ctx_params cp = ll_ctx_default_params();   // n_ctx 4096, threads = cores
 *     ll_ctx_init(&c, m, &cp, &err);
 *     int32_t ids[512]; size_t n;
 *     ll_tok_encode(ll_model_vocab(m), text, strlen(text), true, true, ids, 512, &n, &err);
 *     ll_ctx_decode(c, ids, n, NULL, &err);            // prompt, in one batch
 *     const float *logits = ll_ctx_logits(c, -1);      // n_vocab floats, last position
 *     ... pick a token with an ll_sampler, feed it back with ll_ctx_decode(c, &tok, 1, ...)
 *     ll_ctx_free(c); ll_model_free(m);
 *
 * Library code never prints, exits or aborts: every fallible call returns an ll_status and,
 * on failure, fills the caller's ll_error with a message naming what, where and the value.
 */
#ifndef LOCALLAMA_H
#define LOCALLAMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LL_VERSION "0.1.0"

/* ---- status and errors ------------------------------------------------------------------ */

typedef enum {
    LL_OK = 0,
    LL_ERR_IO,          /* open/read/mmap failed, not a regular file */
    LL_ERR_FORMAT,      /* input is malformed */
    LL_ERR_UNSUPPORTED, /* well formed, but not something we implement */
    LL_ERR_LIMIT,       /* over one of our caps (fault-cases.md, "Default caps") */
    LL_ERR_NOMEM,       /* allocation failed */
    LL_ERR_CANCELLED,   /* the caller's cancel flag was raised */
    LL_ERR_ARG,         /* the caller passed something invalid (bad option, id out of range) */
    LL_ERR_MASKED,      /* a sampler's allow-mask permits no token (constrained decoding) */
} ll_status;

typedef struct {
    ll_status code;     /* LL_OK until the first failure */
    char msg[256];      /* the first failure's message (root cause), printable ASCII */
} ll_error;

const char *ll_status_name(ll_status s);

/* A length-delimited byte string; usually a view into a model mapping (not NUL-terminated). */
typedef struct { const char *p; size_t n; } ll_str;
#define LL_STR(s) (int)(s).n, (s).p     /* for printf("%.*s", LL_STR(s)) */

/* ---- logging ------------------------------------------------------------------------------ */

/* Levels: 0 errors, 1 warnings (the default; LOCALLAMA_LOG_LEVEL overrides it at startup),
 * 2 info, 3 debug. Messages are one line, without the trailing newline.
 * Thread-safe: any thread may log while another changes the level or the callback. Calls to
 * the callback are serialized; once ll_log_set_callback returns, the previous callback is
 * not running and will not be called again. The callback must not call ll_log_set_callback. */
typedef void (*ll_log_fn)(int level, const char *msg, void *user);
void ll_log_set_callback(ll_log_fn fn, void *user);   /* NULL: write to stderr (the default) */
void ll_log_set_level(int level);
int  ll_log_level(void);

/* ---- opaque types ----------------------------------------------------------------------- */

typedef struct ll_model   ll_model;    /* weights + hparams + vocab; immutable after load */
typedef struct ll_vocab   ll_vocab;    /* tokenizer; owned by a model or loaded alone */
typedef struct ll_ctx     ll_ctx;      /* KV cells of up to n_seq_max sequences + scratch */
typedef struct ll_sampler ll_sampler;  /* sampling chain with its RNG and history */
typedef struct ll_pool    ll_pool;     /* compute threads, shareable by many contexts */

/* ---- concurrency contract ------------------------------------------------------------------
 *
 * - ll_model: immutable after load and reference-counted. Any number of threads may read it
 *   and create contexts on it at once. ll_model_ref/ll_model_free are thread-safe; a model is
 *   freed when its last reference goes, so it outlives every context created on it.
 * - ll_pool: thread-safe. Several contexts (of one or several models) may share one pool and
 *   decode from different threads at the same time: their jobs are serialized, one job (one
 *   matrix product, one attention pass) at a time, each on every worker.
 * - ll_ctx: one thread at a time, the "scheduling thread" of that context: decode, logits,
 *   embeddings and the ll_ctx_seq_* cache operations must not overlap on one context. Two
 *   threads may each own a context. Exceptions that any thread may call at any time:
 *   ll_ctx_seq_cancel (an atomic flag read between steps) and the abort callback's own flag.
 * - ll_sampler, ll_batch: owned by one thread at a time. ll_vocab: read-only, shareable.
 * - Logging: ll_log_set_callback and ll_log_set_level may be called from any thread; the
 *   callback itself may be called from any thread that runs library code, so it must be
 *   thread-safe.
 */

/* ---- thread pool ------------------------------------------------------------------------------ */

/* n_threads >= 1 compute threads in all, the calling thread included (n_threads - 1 workers).
 * Free it only after every context using it is freed. */
ll_status ll_pool_init(ll_pool **out, int n_threads, ll_error *err);
void      ll_pool_free(ll_pool *p);                       /* NULL-safe */
int       ll_pool_n_threads(const ll_pool *p);
int       ll_cpu_count(void);                             /* online CPUs, >= 1 */

/* ---- model ------------------------------------------------------------------------------- */

typedef struct {
    bool check_tensors;   /* scan every weight for NaN/Inf (slow); norms are always scanned */
} ll_model_params;

ll_status ll_model_load(ll_model **out, const char *path, const ll_model_params *p, ll_error *err);
/* Reference counting: load gives one reference; ll_model_ref adds one (returns m) and
 * ll_model_free drops one, freeing the model with the last. Contexts hold a reference. */
ll_model *ll_model_ref(ll_model *m);
void      ll_model_free(ll_model *m);                    /* NULL-safe */
int32_t   ll_model_n_embd(const ll_model *m);
const ll_vocab *ll_model_vocab(const ll_model *m);       /* borrowed, lives as long as m */
int32_t   ll_model_n_vocab(const ll_model *m);
int32_t   ll_model_n_ctx_train(const ll_model *m);
/* A GGUF metadata string (e.g. "tokenizer.chat_template"); {NULL,0} when absent. */
ll_str    ll_model_meta_str(const ll_model *m, const char *key);
/* One line describing the model: "llama 1B Q4_K - Medium" style, for bench and logs. */
void      ll_model_desc(const ll_model *m, char *buf, size_t cap);
uint64_t  ll_model_size_bytes(const ll_model *m);        /* bytes of all tensors */
uint64_t  ll_model_n_params(const ll_model *m);

/* ---- inference context -------------------------------------------------------------------- */

/* KV cache element types. F32 is exact (the references were made with it; the default);
 * F16 halves the memory (llama.cpp's and Ollama's default); Q8_0 quarters it (blocks of 32
 * along the head dimension, so the head dimensions must be multiples of 32). */
typedef enum { LL_KV_F32 = 0, LL_KV_F16 = 1, LL_KV_Q8_0 = 2 } ll_kv_type;

/* How embeddings of a sequence's tokens become one vector (llama.cpp's pooling types). */
typedef enum {
    LL_POOLING_UNSPECIFIED = -1,  /* the model's {arch}.pooling_type, else MEAN */
    LL_POOLING_NONE = 0,          /* one vector per output token: ll_ctx_embeddings_ith */
    LL_POOLING_MEAN = 1,          /* mean over the sequence's tokens of the decode call */
    LL_POOLING_CLS  = 2,          /* its first token */
    LL_POOLING_LAST = 3,          /* its last token */
} ll_pooling;

/* Polled between layers; returning true cancels the step (LL_ERR_CANCELLED). */
typedef bool (*ll_abort_fn)(void *user);

typedef struct {
    int32_t    n_ctx;         /* KV cells per sequence; 0 = min(4096, n_ctx_train) */
    int32_t    n_batch;       /* max tokens per forward pass; longer batches are split */
    int32_t    n_seq_max;     /* sequences with their own cells; 0 = 1. Memory is
                               * n_seq_max x n_ctx cells, allocated (or refused) at init */
    int32_t    n_threads;     /* threads of the context's own pool (pool NULL); 0 = CPUs */
    ll_pool   *pool;          /* borrowed shared pool, or NULL for a pool of its own */
    bool       all_logits;    /* ll_ctx_decode keeps every position's logits, not the last */
    ll_kv_type type_k;        /* LL_KV_F32 (default), LL_KV_F16, LL_KV_Q8_0 */
    ll_kv_type type_v;
    bool       embeddings;    /* keep final-norm hidden states instead of logits */
    ll_pooling pooling;       /* with embeddings */
    bool       embd_normalize;/* L2-normalise every embedding returned */
    ll_abort_fn abort_cb;     /* NULL: none */
    void      *abort_data;
    bool       fast_products; /* prompts' products may take a faster kernel whose sums are
                               * within f32 rounding of the exact one's, not bit-identical
                               * (F16 weights on AMX-BF16); a sequence's logits still do not
                               * depend on what shares its batch. false: every product gives
                               * the single dot's bits (logits, the reference checks) */
} ll_ctx_params;

ll_ctx_params ll_ctx_default_params(void);
/* Takes a reference on m: the caller may free its own reference while the context lives. */
ll_status ll_ctx_init(ll_ctx **out, const ll_model *m, const ll_ctx_params *p, ll_error *err);
void      ll_ctx_free(ll_ctx *c);                         /* NULL-safe */
int32_t   ll_ctx_n_ctx(const ll_ctx *c);                  /* cells per sequence */
int32_t   ll_ctx_n_seq_max(const ll_ctx *c);
uint64_t  ll_ctx_kv_bytes(const ll_ctx *c);               /* bytes of the KV cache */
const ll_model *ll_ctx_model(const ll_ctx *c);

/* One sequence (seq 0), the simple way: append n tokens after the sequence's last position
 * and run the forward pass. cancel, when not NULL, is polled between layers (as is the abort
 * callback); a cancelled or failed call leaves the cache as it was. */
ll_status ll_ctx_decode(ll_ctx *c, const int32_t *ids, size_t n, const volatile bool *cancel,
                        ll_error *err);
/* Logits of position i of the last ll_ctx_decode call (i < 0 counts from the end); n_vocab
 * floats. Without all_logits only i = -1 is available; other i return NULL. */
const float *ll_ctx_logits(const ll_ctx *c, int32_t i);
int32_t   ll_ctx_pos(const ll_ctx *c);                    /* seq 0: last position + 1 */
void      ll_ctx_truncate(ll_ctx *c, int32_t pos);        /* seq 0: forget positions >= pos */

/* A batch: n_tokens entries of (token, position, sequence, wants-output), any mix of
 * sequences (llama.cpp's llama_batch). Within one sequence positions must increase along the
 * batch and start after the sequence's last cached position. */
typedef struct {
    int32_t  n_tokens;
    int32_t  cap;             /* entries allocated */
    int32_t *token;           /* (cap) */
    int32_t *pos;             /* (cap) */
    int32_t *seq_id;          /* (cap) */
    bool    *output;          /* (cap) keep this entry's logits (or embedding) */
} ll_batch;

ll_status ll_batch_init(ll_batch *b, int32_t cap, ll_error *err);
void      ll_batch_free(ll_batch *b);                     /* NULL-safe, idempotent */
void      ll_batch_clear(ll_batch *b);                    /* n_tokens = 0 */
bool      ll_batch_add(ll_batch *b, int32_t token, int32_t pos, int32_t seq, bool output); /* false when full */

/* Compute a batch in one forward pass per n_batch entries: every weight product is one
 * product over all rows, attention per token over its own sequence's cells only. A sequence
 * decoded inside a batch gives the same logits, bit for bit, as decoded alone.
 * Entries of a sequence whose cancel flag is raised (ll_ctx_seq_cancel) are skipped: not
 * computed, no cells, no output. On failure or cancellation (abort callback) the cells this
 * call added are removed again; cells cached before stay. Errors: LL_ERR_ARG (bad token,
 * sequence or position), LL_ERR_LIMIT (a sequence's cells would exceed n_ctx),
 * LL_ERR_CANCELLED, LL_ERR_FORMAT (numerical error: non-finite hidden state, fault R17). */
ll_status ll_ctx_decode_batch(ll_ctx *c, const ll_batch *b, ll_error *err);
/* Logits (n_vocab) of entry i of the last decode_batch call; NULL unless it wanted output. */
const float *ll_ctx_logits_ith(const ll_ctx *c, int32_t i);
/* With embeddings: entry i's vector (LL_POOLING_NONE), or a sequence's pooled vector from the
 * last decode call that had tokens of it; n_embd floats, NULL when there is none. */
const float *ll_ctx_embeddings_ith(const ll_ctx *c, int32_t i);
const float *ll_ctx_embeddings_seq(const ll_ctx *c, int32_t seq);
ll_pooling   ll_ctx_pooling(const ll_ctx *c);             /* the pooling actually used */

/* ---- KV cells per sequence ----
 * Each sequence owns n_ctx cells; each cell holds a position, a token id, and K and V for
 * every layer. Ranges are positions [p0, p1); p1 < 0 means "to the end". */
int32_t   ll_ctx_seq_len(const ll_ctx *c, int32_t seq);       /* cells in use; 0 if seq invalid */
int32_t   ll_ctx_seq_pos_max(const ll_ctx *c, int32_t seq);   /* -1 when empty or invalid */
/* Token ids of the cells in order; returns the count, writes at most cap. */
size_t    ll_ctx_seq_tokens(const ll_ctx *c, int32_t seq, int32_t *ids, size_t cap);
/* Remove the cells with positions in [p0, p1); the others keep their positions. */
ll_status ll_ctx_seq_rm(ll_ctx *c, int32_t seq, int32_t p0, int32_t p1, ll_error *err);
/* dst's cells are replaced by copies of src's cells with positions in [p0, p1) (prefix reuse
 * without recomputation). dst's cancel flag is cleared. */
ll_status ll_ctx_seq_cp(ll_ctx *c, int32_t src, int32_t dst, int32_t p0, int32_t p1, ll_error *err);
/* Add delta to the positions in [p0, p1), rotating their cached keys by delta (RoPE is a
 * rotation, so this equals having computed them at the new positions up to rounding). Cells
 * that would get a negative position are removed. */
ll_status ll_ctx_seq_add(ll_ctx *c, int32_t seq, int32_t p0, int32_t p1, int32_t delta, ll_error *err);
/* Context shift (llama.cpp's and Ollama's): keep the first n_keep cells, drop half of the
 * rest (the oldest), move the newer ones down. *n_discard gets the count dropped. */
ll_status ll_ctx_seq_shift(ll_ctx *c, int32_t seq, int32_t n_keep, int32_t *n_discard, ll_error *err);
/* Raise or clear a sequence's cancel flag; any thread, any time. Clearing all its cells
 * (ll_ctx_seq_rm(c, seq, 0, -1)) also clears it. */
void      ll_ctx_seq_cancel(ll_ctx *c, int32_t seq, bool on);

/* ---- tokenizer ----------------------------------------------------------------------------- */

/* Load only the tokenizer of a GGUF file (vocab-only files are fine). */
ll_status ll_vocab_load(ll_vocab **out, const char *path, ll_error *err);
void      ll_vocab_free(ll_vocab *v);                     /* NULL-safe; only for ll_vocab_load */
int32_t   ll_vocab_n_tokens(const ll_vocab *v);
int32_t   ll_vocab_bos(const ll_vocab *v);                /* -1 when the model has none */
int32_t   ll_vocab_eos(const ll_vocab *v);
bool      ll_vocab_is_eog(const ll_vocab *v, int32_t id); /* end of generation (eos, eot, eom…) */
bool      ll_vocab_add_bos(const ll_vocab *v);

/* Tokenize text (raw bytes, any content). add_special: add BOS/EOS as the vocab says;
 * parse_special: text spelling a control token becomes that token.
 * Writes at most cap ids; *n_ids gets the full count (call again with more room if larger). */
ll_status ll_tok_encode(const ll_vocab *v, const char *text, size_t len, bool add_special,
                        bool parse_special, int32_t *ids, size_t cap, size_t *n_ids,
                        ll_error *err);
/* Bytes of one token (special: render control tokens). Returns the piece's length; writes
 * at most cap bytes. Never fails: an out-of-range id gives 0. */
size_t    ll_tok_piece(const ll_vocab *v, int32_t id, bool special, char *buf, size_t cap);
/* Whole-sequence detokenization (llama_detokenize): returns the full byte count, writes at
 * most cap bytes. */
size_t    ll_tok_decode(const ll_vocab *v, const int32_t *ids, size_t n, bool remove_special,
                        bool unparse_special, char *buf, size_t cap);

/* ---- sampler ------------------------------------------------------------------------------- */

/* The chain is llama.cpp's: penalties over the last repeat_last_n accepted tokens, then top_k,
 * typical_p, top_p, min_p, temperature, and a draw from the softmax with a seeded xoshiro256**.
 * Same seed + same logits + same history -> same tokens (but not llama.cpp's tokens: its RNG
 * differs). */
#define LL_SAMPLER_SEED_RANDOM UINT64_MAX   /* seed value meaning "seed from the clock" */

typedef struct {
    float    temperature;     /* <= 0: greedy (argmax after penalties, ties to the lowest id) */
    int32_t  top_k;           /* <= 0: off */
    float    top_p;           /* >= 1: off */
    float    min_p;           /* <= 0: off */
    float    typical_p;       /* >= 1: off */
    float    repeat_penalty;  /* 1: off; must be > 0 */
    float    presence_penalty;
    float    frequency_penalty;
    int32_t  repeat_last_n;   /* 0: off, -1: every token accepted since init/reset */
    uint64_t seed;            /* LL_SAMPLER_SEED_RANDOM (the default): a different seed per run */
} ll_sampler_params;

/* Ollama's defaults: temperature 0.8, top_k 40, top_p 0.9, min_p 0, typical_p 1,
 * repeat_penalty 1.1, presence 0, frequency 0, repeat_last_n 64, seed random. */
ll_sampler_params ll_sampler_default_params(void);
/* p NULL = defaults. Fails with LL_ERR_ARG on a non-finite float, repeat_penalty <= 0,
 * repeat_last_n < -1 or n_vocab <= 0, LL_ERR_NOMEM when the n_vocab buffers do not fit.
 * All memory is allocated here; sampling does not allocate. */
ll_status ll_sampler_init(ll_sampler **out, const ll_sampler_params *p, int32_t n_vocab,
                          ll_error *err);
void      ll_sampler_free(ll_sampler *s);                 /* NULL-safe */
/* Record a token in the penalty history. Call it for every prompt token; sampled tokens are
 * recorded by ll_sampler_sample itself. Ids outside [0, n_vocab) are ignored. */
void      ll_sampler_accept(ll_sampler *s, int32_t id);
/* Forget the history (new conversation). The RNG continues; it is not reseeded. */
void      ll_sampler_reset(ll_sampler *s);
/* Pick the next token from n_vocab logits (not modified) and accept it into the history.
 * A NaN or +Inf logit fails with LL_ERR_FORMAT "numerical error: NaN logits ..." (fault R17);
 * -Inf is a legal mask, but all -Inf fails the same way when sampling. */
ll_status ll_sampler_sample(ll_sampler *s, const float *logits, int32_t *id, ll_error *err);
/* The same, over only the tokens whose bit is set in allow (bit i % 64 of allow[i / 64];
 * (n_vocab + 63) / 64 words; NULL = all): for constrained decoding. When no token is allowed,
 * or every allowed one has -Inf logit, fails with LL_ERR_MASKED, not the NaN error. */
ll_status ll_sampler_sample_masked(ll_sampler *s, const float *logits, const uint64_t *allow,
                                   int32_t *id, ll_error *err);

/* ---- constrained decoding (grammar; issue 11) ------------------------------------------------
 *
 * An ll_grammar allows, step by step, exactly the tokens that keep the output a prefix of a
 * language: any JSON value (format "json") or the instances of a JSON Schema. One generation:
 *
 *     ll_grammar *g;
 *     if (ll_grammar_init_schema(&g, vocab, schema, strlen(schema), &err) != LL_OK) -> 400 err.msg
 *     uint64_t *allow = calloc((n_vocab + 63) / 64, 8);
 *     for (;;) {
 *         ll_grammar_mask(g, allow, (n_vocab + 63) / 64, &err);
 *         ll_sampler_sample_masked(s, logits, allow, &tok, &err);   // LL_ERR_MASKED: nothing fits
 *         ll_grammar_accept(g, tok, &err);
 *         if (ll_vocab_is_eog(vocab, tok) || ll_grammar_is_done(g)) break;
 *         ... decode tok ...
 *     }
 *     ll_grammar_free(g);
 *
 * Tokens are matched by their bytes (ll_tok_piece without special rendering), so a token may
 * span several grammar symbols and a multi-byte UTF-8 character may span tokens. Control tokens
 * are never allowed; end-of-generation tokens (ll_vocab_is_eog) exactly when the output so far
 * is complete. The first grammar for a vocabulary sorts it into a trie (~50 ms for 128K
 * tokens), which later grammars for the same vocabulary object share. Building a grammar sorts
 * the tokens of each of its positions into always/never/depends-on-context, for at most ~40 ms;
 * the remaining positions are sorted the first time a mask meets them (up to a few ms each),
 * under a lock shared by clones. Compiled grammars are cached (ll_grammar_cache_clear), so calling
 * ll_grammar_init_* per request is fine; ll_grammar_clone shares the compiled tables (thread-
 * safe refcount) with a fresh copy of the parse state. Masks of repeated states are remembered
 * per grammar object. Mask cost: bench/bench_grammar.c.
 *
 * Grammars are bounded: nesting deeper than 512 levels is not allowed, and a grammar or input
 * that would need more than 2048 simultaneous parse stacks or 4M parse nodes fails with
 * LL_ERR_LIMIT instead of growing. An ll_grammar is used by one thread at a time.
 */
typedef struct ll_grammar ll_grammar;

/* Any JSON value with bounded whitespace (at most one space, or a newline and up to 20 spaces
 * or tabs, between tokens; none before the value or after it). object_only: the value must be
 * an object, which is what Ollama's format "json" asks for. v may be NULL for a byte-level
 * grammar (ll_grammar_accept_bytes only; ll_grammar_mask and ll_grammar_accept then fail). */
ll_status ll_grammar_init_json(ll_grammar **out, const ll_vocab *v, bool object_only, ll_error *err);
/* A JSON Schema given as JSON text (len bytes). Supported: type (and unions), enum, const,
 * properties/required/additionalProperties, items/prefixItems/minItems/maxItems, anyOf, oneOf
 * (as anyOf), allOf (merged), $ref/$defs/definitions (local, recursion allowed), string
 * minLength/maxLength/pattern/format (date, time, date-time, uuid, email), integer and number
 * minimum/maximum/exclusiveMinimum/exclusiveMaximum (integers: any int64 range; numbers: only
 * integer-valued bounds). Annotations (title, description, default, examples, $schema, $id,
 * $comment, deprecated, readOnly, writeOnly) are ignored. Properties come out in the schema's
 * order. A keyword we cannot enforce fails with LL_ERR_UNSUPPORTED and a message naming it and
 * its place (`unsupported keyword 'multipleOf' at #/properties/n`); bad JSON or a bad value
 * fails with LL_ERR_FORMAT; a schema no value can satisfy with LL_ERR_UNSUPPORTED; size caps
 * with LL_ERR_LIMIT. Never silently weaker: what the grammar allows always validates. */
ll_status ll_grammar_init_schema(ll_grammar **out, const ll_vocab *v, const char *schema,
                                 size_t len, ll_error *err);
/* A tool call as a model's template writes it (issue 11): spec is JSON
 *     {"tools": [{"name": "get_weather", "parameters": {JSON Schema}, "strict": false}, ...],
 *      "name_key": "name", "args_key": "arguments", "args_first": false, "array": false,
 *      "prefix": "", "lead_ws": false}
 * and the language is prefix, then (lead_ws) optional whitespace, then one call object
 * {name_key: <one of the tool names>, args_key: <that tool's parameters>} with the two keys
 * in that order (args first when args_first), or with array a JSON array of one or more such
 * calls. A strict tool's parameters are compiled exactly, and a keyword we cannot enforce
 * fails as ll_grammar_init_schema does, the message starting with "tool 'NAME': ". Other
 * tools never fail on their schema: a subschema that uses an unsupported keyword allows any
 * JSON value there, and parameters that do not compile at all (or are missing) allow any
 * JSON object. Cached like the others (keyed by the spec text). */
ll_status ll_grammar_init_tools(ll_grammar **out, const ll_vocab *v, const char *spec, size_t len,
                                ll_error *err);
/* The constructors keep the last 8 compiled grammars (per vocabulary object and exact
 * format/schema/spec text) and return a fresh parse state over a cached one when they can, so a
 * repeated schema costs a clone. This drops the cache and the vocabularies' token tables
 * (grammars in use stay valid). */
void      ll_grammar_cache_clear(void);
/* Another grammar in the same state, sharing the compiled tables. */
ll_status ll_grammar_clone(ll_grammar **out, const ll_grammar *g, ll_error *err);
void      ll_grammar_free(ll_grammar *g);                         /* NULL-safe */
/* Back to the start (no output yet). */
void      ll_grammar_reset(ll_grammar *g);
/* Set bit i of allow ((n_vocab + 63) / 64 words, n_words at least that) for every token that
 * may come next; clears the rest. All zero once an end-of-generation token was accepted.
 * Does not allocate in steady state. */
ll_status ll_grammar_mask(ll_grammar *g, uint64_t *allow, size_t n_words, ll_error *err);
/* Feed the sampled token. A token the mask would not allow fails with LL_ERR_ARG and leaves
 * the state unchanged. */
ll_status ll_grammar_accept(ll_grammar *g, int32_t id, ll_error *err);
/* Feed raw bytes (text that is not a token, tests); same contract. */
ll_status ll_grammar_accept_bytes(ll_grammar *g, const char *p, size_t n, ll_error *err);
/* Undo the last n accepts (n <= 32 and no more than were made since init/reset). */
ll_status ll_grammar_rollback(ll_grammar *g, int32_t n, ll_error *err);
/* The output so far is a complete value (an end-of-generation token would be allowed). */
bool      ll_grammar_can_end(const ll_grammar *g);
/* Nothing but end of generation can follow (or it was accepted): the caller may stop. */
bool      ll_grammar_is_done(const ll_grammar *g);

#ifdef __cplusplus
}
#endif
#endif /* LOCALLAMA_H */
