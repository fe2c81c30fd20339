/* server/api_pull: POST /api/pull (spec ollama-api.md §1.11). The download runs on a worker
 * thread, as /api/create does (api_models.c): the connection's thread waits until the worker
 * has opened the NDJSON stream with "pulling manifest" (or answered without a stream), then
 * returns so MHD sends each progress line as the worker writes it. The worker is counted in
 * ctx->n_background, so shutdown (ll_api_ollama_drain) waits for it before the store closes. */
#include "server/api_internal.h"
#include "store/pull.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct {
    ll_api_ctx     *ctx;
    ll_http_req    *req;        /* valid until released */
    ll_http_resp   *resp;       /* valid until released */
    pthread_mutex_t mu;
    pthread_cond_t  cv;
    bool            released;   /* the handler may return: resp is answered or streaming */
    int             refs;       /* handler + worker; the last frees */
    /* progress state, the worker's alone */
    ll_http_stream *s;          /* NULL until the first line when streaming */
    bool            stream;
} pull_job;

static void job_release(pull_job *j) {
    pthread_mutex_lock(&j->mu);
    j->released = true;
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

static void job_unref(pull_job *j) {
    pthread_mutex_lock(&j->mu);
    bool last = --j->refs == 0;
    pthread_mutex_unlock(&j->mu);
    if (!last) return;
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    free(j);
}

/* One progress object; "completed" is left out while 0, as Ollama's omitempty does. false
 * when the client has gone (the pull stops; its partial files stay for the next pull). */
static bool on_progress(void *user, const char *status, const char *digest, uint64_t total,
                        uint64_t completed) {
    pull_job *j = user;
    if (!j->stream) return true;
    if (!j->s) {
        if (!(j->s = ll_http_resp_stream(j->resp, LL_STREAM_NDJSON))) return false;
        job_release(j);
    }
    json_t *o = json_pack("{s:s}", "status", status);
    if (!o) return true;
    if (digest) {
        json_object_set_new(o, "digest", json_string(digest));
        json_object_set_new(o, "total", json_integer((json_int_t)total));
        if (completed) json_object_set_new(o, "completed", json_integer((json_int_t)completed));
    }
    bool ok = ll_http_stream_ndjson(j->s, o, 0) == LL_OK;
    json_decref(o);
    return ok;
}

/* The client went away or the server is stopping: the request's flag until the stream is
 * open (the handler waits, so req is valid), the stream's after. */
static bool is_cancelled(void *user) {
    pull_job *j = user;
    return atomic_load(j->s ? ll_http_stream_cancel_flag(j->s) : ll_http_req_cancel_flag(j->req));
}

static void pull_run(pull_job *j) {
    ll_error err = { 0 };
    json_t *body;
    if (ll_http_req_json(j->req, j->resp, &body) != LL_OK) return;
    char *model = NULL;
    int status = 400;
    json_t *js = json_object_get(body, "stream"), *ji = json_object_get(body, "insecure");
    if ((js && !json_is_boolean(js) && !json_is_null(js)) || (ji && !json_is_boolean(ji) && !json_is_null(ji))) {
        ll_fail(&err, LL_ERR_ARG, "invalid request: stream and insecure must be booleans");
        goto fail;
    }
    j->stream = !json_is_false(js);
    if (api_body_model(body, true, &model, &err) != LL_OK) goto fail;
    if (!*model) { ll_fail(&err, LL_ERR_ARG, "model is required"); goto fail; }
    ll_model_name n;
    if (ll_name_parse(&n, model, &err) != LL_OK) { ll_fail(&err, LL_ERR_ARG, "invalid model name"); goto fail; }
    /* OLLAMA_NOPRUNE as Ollama reads a boolean: unset, "", or a false spelling is false,
     * anything else (even unparsable) true */
    char nb[32];
    const char *np = ll_env_get("NOPRUNE", nb, sizeof nb);
    bool noprune = np && *np && strcmp(np, "0") && strcasecmp(np, "false") && strcmp(np, "f") &&
                   strcmp(np, "F");
    ll_pull_opts o = { .insecure = json_is_true(ji), .noprune = noprune, .progress = on_progress,
                       .cancelled = is_cancelled, .user = j };
    status = 500;
    if (ll_store_pull(j->ctx->store, &n, &o, &err) != LL_OK) {
        if (err.code == LL_ERR_ARG) status = 400;
        goto fail;
    }
    if (j->s) ll_http_stream_end(j->s);
    else ll_http_resp_json(j->resp, 200, json_pack("{s:s}", "status", "success"));
    j->s = NULL;
    goto out;
fail:
    if (j->s) {                         /* §0.6.2: after the first line, errors are inline */
        ll_http_stream_error(j->s, err.msg);
        ll_http_stream_end(j->s);
        j->s = NULL;
    } else {
        ll_http_resp_error(j->resp, ll_store_err_is_nospace(&err) ? 507 : status, "%s", err.msg);
    }
out:
    ll_free(model);
    json_decref(body);
}

static void *pull_main(void *arg) {
    pull_job *j = arg;
    ll_api_ctx *ctx = j->ctx;
    pull_run(j);
    job_release(j);                     /* answered without a stream: the handler sends it */
    job_unref(j);
    atomic_fetch_sub(&ctx->n_background, 1);
    return NULL;
}

static void api_pull(ll_http_req *req, ll_http_resp *resp, void *arg) {
    ll_api_ctx *ctx = arg;
    pull_job *j = calloc(1, sizeof *j);
    if (!j) { ll_http_resp_error(resp, 500, "out of memory"); return; }
    *j = (pull_job){ .ctx = ctx, .req = req, .resp = resp, .refs = 2 };
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    atomic_fetch_add(&ctx->n_background, 1);
    pthread_t t;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &a, pull_main, j) != 0) {   /* no thread: do it here */
        atomic_fetch_sub(&ctx->n_background, 1);
        j->refs = 1;
        pull_run(j);
        job_unref(j);
        pthread_attr_destroy(&a);
        return;
    }
    pthread_attr_destroy(&a);
    pthread_mutex_lock(&j->mu);
    while (!j->released) pthread_cond_wait(&j->cv, &j->mu);
    pthread_mutex_unlock(&j->mu);
    job_unref(j);
}

ll_status api_pull_register(ll_router *r, ll_api_ctx *ctx, ll_error *err) {
    return ll_router_set_handler(r, "POST", "/api/pull", api_pull, ctx, err);
}
