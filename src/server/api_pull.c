/* server/api_pull: POST /api/pull (spec ollama-api.md §1.11). The download runs on a worker
 * thread (api_job.c, as /api/create and /api/push do): the connection's thread waits until the
 * worker has opened the NDJSON stream with "pulling manifest" (or answered without a stream),
 * then returns so MHD sends each progress line as the worker writes it. */
#include "server/api_internal.h"
#include "store/pull.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* One progress object; "completed" is left out while 0, as Ollama's omitempty does. false
 * when the client has gone (the pull stops; its partial files stay for the next pull). */
bool api_transfer_progress(void *user, const char *status, const char *digest, uint64_t total,
                           uint64_t completed) {
    api_transfer *j = user;
    if (!j->stream) return true;
    if (!j->s) {
        if (!(j->s = ll_http_resp_stream(j->job->resp, LL_STREAM_NDJSON))) return false;
        api_job_release(j->job);
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
bool api_transfer_cancelled(void *user) {
    api_transfer *j = user;
    return atomic_load(j->s ? ll_http_stream_cancel_flag(j->s) : ll_http_req_cancel_flag(j->job->req));
}

static void pull_run(api_job *job) {
    api_transfer jj = { .job = job }, *j = &jj;
    ll_error err = { 0 };
    json_t *body;
    if (ll_http_req_json(job->req, job->resp, &body) != LL_OK) return;
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
    ll_pull_opts o = { .insecure = json_is_true(ji), .noprune = noprune, .progress = api_transfer_progress,
                       .cancelled = api_transfer_cancelled, .user = j };
    status = 500;
    if (ll_store_pull(job->ctx->store, &n, &o, &err) != LL_OK) {
        if (err.code == LL_ERR_ARG) status = 400;
        goto fail;
    }
    if (j->s) ll_http_stream_end(j->s);
    else ll_http_resp_json(job->resp, 200, json_pack("{s:s}", "status", "success"));
    j->s = NULL;
    goto out;
fail:
    if (j->s) {                         /* §0.6.2: after the first line, errors are inline */
        ll_http_stream_error(j->s, err.msg);
        ll_http_stream_end(j->s);
        j->s = NULL;
    } else {
        ll_http_resp_error(job->resp, ll_store_err_is_nospace(&err) ? 507 : status, "%s", err.msg);
    }
out:
    ll_free(model);
    json_decref(body);
}

static void api_pull(ll_http_req *req, ll_http_resp *resp, void *arg) {
    api_job_run(arg, req, resp, pull_run, NULL);
}

ll_status api_pull_register(ll_router *r, ll_api_ctx *ctx, ll_error *err) {
    return ll_router_set_handler(r, "POST", "/api/pull", api_pull, ctx, err);
}
