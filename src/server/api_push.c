/* server/api_push: POST /api/push (spec ollama-api.md §1.12). The upload runs on a worker
 * thread (api_job.c) and reports as /api/pull does (api_transfer_*, api_pull.c):
 * {"status":"retrieving manifest"}, {"status":"pushing <12 hex>","digest","total","completed"}
 * per blob, {"status":"pushing manifest"}, {"status":"success"}; errors after the first line
 * are inline {"error":…}. Non-streamed: the last object, or 400/500 {"error":…}. */
#include "server/api_internal.h"
#include "store/push.h"

static void push_run(api_job *job) {
    api_transfer t = { .job = job };
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
    t.stream = !json_is_false(js);
    if (api_body_model(body, true, &model, &err) != LL_OK) goto fail;
    if (!*model) { ll_fail(&err, LL_ERR_ARG, "model is required"); goto fail; }
    ll_model_name n;
    if (ll_name_parse(&n, model, &err) != LL_OK) { ll_fail(&err, LL_ERR_ARG, "invalid model name"); goto fail; }
    ll_push_opts o = { .insecure = json_is_true(ji), .progress = api_transfer_progress,
                       .cancelled = api_transfer_cancelled, .user = &t };
    status = 500;
    if (ll_store_push(job->ctx->store, &n, &o, &err) != LL_OK) {
        if (err.code == LL_ERR_ARG) status = 400;
        goto fail;
    }
    if (t.s) ll_http_stream_end(t.s);
    else ll_http_resp_json(job->resp, 200, json_pack("{s:s}", "status", "success"));
    goto out;
fail:
    if (t.s) {                          /* §0.6.2: after the first line, errors are inline */
        ll_http_stream_error(t.s, err.msg);
        ll_http_stream_end(t.s);
    } else {
        ll_http_resp_error(job->resp, status, "%s", err.msg);
    }
out:
    ll_free(model);
    json_decref(body);
}

static void api_push(ll_http_req *req, ll_http_resp *resp, void *arg) {
    api_job_run(arg, req, resp, push_run, NULL);
}

ll_status api_push_register(ll_router *r, ll_api_ctx *ctx, ll_error *err) {
    return ll_router_set_handler(r, "POST", "/api/push", api_push, ctx, err);
}
