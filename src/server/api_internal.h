/* server/api_internal: what the api_*.c files of the native endpoints share. Not installed. */
#ifndef LL_SERVER_API_INTERNAL_H
#define LL_SERVER_API_INTERNAL_H

#include "server/api_ollama.h"
#include "template/gotmpl.h"

#include <pthread.h>

/* ---- models (api_models.c) ------------------------------------------------------------- */

/* A model of the store as a request sees it: its names, blob and layers. */
typedef struct {
    ll_model_name name;                 /* as found on disk */
    char          full[LL_NAME_FULL_MAX];      /* host/ns/model:tag: runner key, tool errors */
    char          display[LL_NAME_FULL_MAX];   /* model:tag */
    ll_manifest  *manifest;
    ll_modelfile *mf;                   /* from[0] = model blob path, template, system, params */
    char         *chat_template;        /* GGUF tokenizer.chat_template, NULL when absent */
    bool          embedding_only;       /* GGUF has {arch}.pooling_type */
    const char   *template_text;        /* the active Go template (borrowed, never NULL) */
    const char   *template_source;      /* "layer", "autodetected <name>" or "default" */
} api_model;

/* Resolve a request's model string. Absent model: LL_OK with *found false. Bad name:
 * LL_ERR_ARG. */
ll_status api_model_open(ll_api_ctx *ctx, const char *model, api_model *out, bool *found,
                         ll_error *err);
void      api_model_close(api_model *m);
/* The answers §1.16 / §0.8.4 give for a cloud name (403) or ":local" with ":cloud" (400), when
 * err is api_model_open's error for one: true when resp was answered. show: /api/show's text. */
bool      api_model_refused(ll_http_resp *resp, const ll_error *err, bool show);

/* The Go template Ollama's create would autodetect for a GGUF chat template (with our
 * llama3.2 rule, llama3-prompt-format.md §10), its name and its stop list (NULL-terminated),
 * or NULL when no family matches. Heap string: ll_free it. */
char *api_template_for_gguf(const char *chat_template, const char **name,
                                  const char *const **stops);

ll_status api_models_register(ll_router *r, ll_api_ctx *ctx, ll_error *err);
ll_status api_embed_register(ll_router *r, ll_api_ctx *ctx, ll_error *err);
/* POST /api/pull (api_pull.c, §1.11) and POST /api/push (api_push.c, §1.12). */
ll_status api_pull_register(ll_router *r, ll_api_ctx *ctx, ll_error *err);
ll_status api_push_register(ll_router *r, ll_api_ctx *ctx, ll_error *err);

/* ---- long requests on a worker thread (api_job.c) ------------------------------------------- */

/* A request whose work (create, pull, push) runs on a worker thread. req and resp are valid
 * until the worker calls api_job_release or its function returns; after a release only the
 * stream opened from resp may be used. */
typedef struct {
    ll_api_ctx   *ctx;
    ll_http_req  *req;
    ll_http_resp *resp;
    void         *user;
} api_job;

/* Run fn on a worker thread (counted in ctx->n_background) and wait until it releases the
 * connection (api_job_release, right after opening its NDJSON stream) or returns. Without a
 * thread, fn runs here. */
void api_job_run(ll_api_ctx *ctx, ll_http_req *req, ll_http_resp *resp, void (*fn)(api_job *), void *user);
void api_job_release(api_job *j);

/* A pull's or push's progress as §1.11/§1.12 objects (api_pull.c): the NDJSON stream opens at
 * the first line (releasing the job); "completed" is left out while 0. false when the client
 * has gone. api_transfer_cancelled: the client went away or the server is stopping. */
typedef struct {
    api_job        *job;
    ll_http_stream *s;          /* NULL until the first line when streaming */
    bool            stream;
} api_transfer;
bool api_transfer_progress(void *user, const char *status, const char *digest, uint64_t total,
                           uint64_t completed);
bool api_transfer_cancelled(void *user);

/* ---- options (api_options.c, §0.9) ------------------------------------------------------ */

#define API_MAX_STOPS 16

typedef struct {
    ll_sampler_params sp;
    int64_t num_predict;     /* -1: until EOG (bounded by the scheduler, R4) */
    int64_t num_ctx;         /* 0: the runner's default */
    int64_t num_keep;        /* 4 */
    char   *stop[API_MAX_STOPS];   /* heap strings, union of model's and request's (§5 D5) */
    size_t  n_stop;
} api_opts;

/* defaults → params (the model's PARAMETERs, may be NULL) → req (request options, may be
 * NULL). Errors are LL_ERR_ARG with Ollama's texts (HTTP 400, §5 D9). */
ll_status api_opts_parse(api_opts *o, const json_t *params, const json_t *req, ll_error *err);
void      api_opts_clear(api_opts *o);

/* keep_alive of a request body, else the server default. */
ll_status api_keep_alive(ll_api_ctx *ctx, const json_t *body, int64_t *ns, ll_error *err);

/* Model string of a body ("model", else legacy "name" when allow_name). */
ll_status api_body_model(const json_t *body, bool allow_name, char **out, ll_error *err);

/* Current UTC time as a JSON string (created_at). */
json_t *api_now_utc(void);

/* ---- /v1 adapters (api_openai.c) ------------------------------------------------------------ */

/* How a /v1 route turns the native output of §1 back into its own (§2: thin adapters). The
 * generation owns it once passed in and calls free when it ends (on any thread). */
typedef struct api_adapter api_adapter;
struct api_adapter {
    /* A streamed native object (done false pieces, then the done:true final object): write
     * the SSE events it becomes. Borrows native. LL_ERR_CANCELLED when the client is gone. */
    ll_status (*stream)(api_adapter *a, ll_http_stream *s, const json_t *native);
    /* The whole native answer of a non-streamed request: answer resp. Takes native. */
    void (*respond)(api_adapter *a, ll_http_resp *resp, json_t *native);
    void (*free)(api_adapter *a);
};

/* /api/generate (chat false) or /api/chat on a native body (taken; NULL: the request's) with
 * the output through ad (taken; NULL: native NDJSON/JSON). Streams are SSE with an adapter. */
void api_gen_run(ll_http_req *req, ll_http_resp *resp, ll_api_ctx *ctx, bool chat, json_t *body,
                 api_adapter *ad);
/* /api/embed the same way; ad->respond gets the native {"model","embeddings",...} object. */
/* The /v1 routes of §2 (api_openai.c), set by ll_api_ollama_register. */
ll_status api_openai_register(ll_router *r, ll_api_ctx *ctx, ll_error *err);
/* POST /v1/messages, Anthropic's Messages API (§3) as an adapter (api_anthropic.c). */
ll_status api_anthropic_register(ll_router *r, ll_api_ctx *ctx, ll_error *err);
/* The /v1/messages adapter over a native chat body (its stop list, for D20) and an input-token
 * estimate for message_start; one native tool call as an Anthropic tool_use block. Exposed for
 * tests/server/test_api_anthropic.c. */
api_adapter *api_anthropic_adapter_new(const json_t *native, const json_t *stops, json_int_t est_input);
json_t      *api_anthropic_tool_use(const json_t *call);
void api_embed_run(ll_http_req *req, ll_http_resp *resp, ll_api_ctx *ctx, json_t *body, api_adapter *ad);

#endif
