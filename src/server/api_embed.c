/* server/api_embed: POST /api/embed and the legacy /api/embeddings (ollama-api.md §1.3, §1.4).
 *
 * Any model embeds, chat models included (Ollama answers 501 for those): the vector is the
 * mean over the input's tokens of the final-norm hidden state (ll_ctx_params.embeddings,
 * LL_POOLING_MEAN), L2-normalised for /api/embed, raw for /api/embeddings.
 *
 * Each request gets its own embeddings context on the runner's model (which the request holds
 * through ll_runners_acquire, so it cannot be unloaded underneath), sized to the longest input
 * and computed on the server's shared pool. A context per request costs one KV allocation per
 * request; in exchange embeddings never wait for, nor disturb, the scheduler's generating
 * slots, and no lock is needed. Inputs are embedded one after the other. */
#include "server/api_internal.h"

#include <math.h>
#include <string.h>

/* One vector: tokens → ctx → pooled embedding, copied to out (n_embd floats). */
static ll_status embed_one(ll_ctx *c, const int32_t *ids, size_t n, const atomic_bool *cancel, float *out,
                           int32_t n_embd, ll_error *err) {
    ll_ctx_truncate(c, 0);
    ll_batch b;
    if (ll_batch_init(&b, (int32_t)n, err) != LL_OK) return err->code;
    for (size_t i = 0; i < n; i++) ll_batch_add(&b, ids[i], (int32_t)i, 0, true);
    ll_status st = ll_ctx_decode_batch(c, &b, err);
    ll_batch_free(&b);
    if (st != LL_OK) return st;
    if (cancel && atomic_load(cancel)) return ll_fail(err, LL_ERR_CANCELLED, "request cancelled");
    const float *e = ll_ctx_embeddings_seq(c, 0);
    if (!e) return ll_fail(err, LL_ERR_FORMAT, "no embedding was computed");
    for (int32_t i = 0; i < n_embd; i++) {
        if (!isfinite(e[i])) return ll_fail(err, LL_ERR_FORMAT, "embedding contains NaN or Inf values");
        out[i] = e[i];
    }
    return LL_OK;
}

static void normalize(float *v, int32_t n) {
    double s = 0;
    for (int32_t i = 0; i < n; i++) s += (double)v[i] * v[i];
    double norm = sqrt(s);
    if (norm < 1e-12) norm = 1e-12;
    for (int32_t i = 0; i < n; i++) v[i] = (float)(v[i] / norm);
}

static void embed_common(ll_http_req *req, ll_http_resp *resp, ll_api_ctx *ctx, bool legacy, json_t *body, api_adapter *ad) {
    const uint64_t t_req = ll_time_ns();
    ll_error err = { 0 };
    json_t *opts = NULL, *inputs = NULL, *result = NULL;
    char *model = NULL;
    api_model m;
    memset(&m, 0, sizeof m);
    api_opts o;
    memset(&o, 0, sizeof o);
    ll_runner *runner = NULL;
    ll_ctx *c = NULL;
    int32_t **toks = NULL;
    size_t *n_toks = NULL, n_in = 0;
    float *vec = NULL;
    bool found = false, truncate = true;
    int64_t keep_alive = 0, dims = 0;

    if (!body && ll_http_req_json(req, resp, &body) != LL_OK) goto out;
    if (api_body_model(body, false, &model, &err) != LL_OK ||
        ll_json_get_bool(body, "truncate", &truncate, NULL, &err) != LL_OK ||
        ll_json_get_int(body, "dimensions", INT64_MIN, INT64_MAX, &dims, NULL, &err) != LL_OK ||
        ll_json_get_object(body, "options", &opts, &err) != LL_OK) {
        ll_http_resp_error(resp, 400, "%s", err.msg);
        goto out;
    }
    if (legacy) {
        ll_str p = { "", 0 };
        if (ll_json_get_str(body, "prompt", &p, NULL, &err) != LL_OK) { ll_http_resp_error(resp, 400, "%s", err.msg); goto out; }
        inputs = json_array();
        if (p.n) json_array_append_new(inputs, json_stringn(p.p, p.n));
        if (!*model) { ll_http_resp_error(resp, 400, "model is required"); goto out; }
    } else {
        json_t *in = ll_json_field(body, "input");
        inputs = json_array();
        if (json_is_string(in)) {
            if (json_string_length(in)) json_array_append(inputs, in);
        } else if (json_is_array(in)) {
            for (size_t i = 0; i < json_array_size(in); i++) {
                json_t *v = json_array_get(in, i);
                if (!json_is_string(v)) { ll_http_resp_error(resp, 400, "invalid input type"); goto out; }
                json_array_append(inputs, v);
            }
        } else if (in) {
            ll_http_resp_error(resp, 400, "invalid input type");
            goto out;
        }
    }
    if (api_model_open(ctx, model, &m, &found, &err) != LL_OK) {
        if (api_model_refused(resp, &err, false)) goto out;
        if (err.code == LL_ERR_ARG) ll_http_resp_error(resp, *model ? 400 : 404, *model ? "invalid model name" : "model '' not found");
        else ll_http_resp_error(resp, 500, "%s", err.msg);
        goto out;
    }
    if (!found) { ll_http_resp_error(resp, 404, "model \"%s\" not found, try pulling it first", model); goto out; }
    if (api_keep_alive(ctx, body, &keep_alive, &err) != LL_OK ||
        api_opts_parse(&o, m.mf->params, opts, &err) != LL_OK) {
        ll_http_resp_error(resp, 400, "%s", err.msg);
        goto out;
    }
    if (ll_runners_acquire(ctx->runners, m.full, m.mf->from[0], (int32_t)o.num_ctx, &runner, &err) != LL_OK) {
        ll_http_resp_error(resp, 500, "%s", err.msg);
        goto out;
    }
    ll_runners_set_session(ctx->runners, runner, keep_alive);
    const uint64_t t_loaded = ll_time_ns();
    const ll_model *lm = ll_runner_model(runner);
    const ll_vocab *v = ll_model_vocab(lm);
    const int32_t n_embd = ll_model_n_embd(lm);
    n_in = json_array_size(inputs);
    if (n_in == 0) {
        ll_http_resp_json(resp, 200, legacy ? json_pack("{s:[]}", "embedding")
                                             : json_pack("{s:s, s:[]}", "model", model, "embeddings"));
        goto out;
    }
    /* §1.3: the limit is the context less the BOS/EOS the tokenizer adds. */
    int32_t limit = ll_sched_n_ctx(ll_runner_sched(runner));
    toks = ll_calloc(n_in, sizeof *toks);
    n_toks = ll_calloc(n_in, sizeof *n_toks);
    if (!toks || !n_toks) { ll_http_resp_error(resp, 500, "out of memory"); goto out; }
    size_t longest = 1;
    int64_t total = 0;
    for (size_t i = 0; i < n_in; i++) {
        ll_str s = ll_json_str(json_array_get(inputs, i));
        size_t cap = s.n + 8, got = 0;
        if (!(toks[i] = ll_malloc_array(cap, sizeof **toks))) { ll_http_resp_error(resp, 500, "out of memory"); goto out; }
        if (ll_tok_encode(v, s.p, s.n, true, true, toks[i], cap, &got, &err) != LL_OK || got > cap) {
            ll_http_resp_error(resp, 500, "%s", err.msg[0] ? err.msg : "tokenizer overflow");
            goto out;
        }
        if (got > (size_t)limit) {
            if (!truncate || legacy) {
                ll_http_resp_error(resp, legacy ? 500 : 400, "the input length exceeds the context length");
                goto out;
            }
            got = (size_t)limit;
        }
        if (got == 0) { toks[i][0] = ll_vocab_bos(v) >= 0 ? ll_vocab_bos(v) : 0; got = 1; }
        n_toks[i] = got;
        total += (int64_t)got;
        if (got > longest) longest = got;
    }
    ll_ctx_params cp = ll_ctx_default_params();
    cp.fast_products = true;                 /* within f32 rounding; logits stays exact */
    cp.n_ctx = (int32_t)longest;
    cp.n_batch = (int32_t)longest;
    cp.pool = ctx->pool;
    cp.embeddings = true;
    cp.pooling = LL_POOLING_MEAN;
    cp.embd_normalize = false;
    if (ll_ctx_init(&c, lm, &cp, &err) != LL_OK) { ll_http_resp_error(resp, 500, "%s", err.msg); goto out; }
    if (!(vec = ll_malloc_array((size_t)n_embd, sizeof *vec))) { ll_http_resp_error(resp, 500, "out of memory"); goto out; }
    int32_t keep = n_embd;
    if (!legacy && dims > 0 && dims < n_embd) keep = (int32_t)dims;
    json_t *all = json_array();
    for (size_t i = 0; i < n_in; i++) {
        if (embed_one(c, toks[i], n_toks[i], ll_http_req_cancel_flag(req), vec, n_embd, &err) != LL_OK) {
            json_decref(all);
            ll_http_resp_error(resp, legacy ? 500 : 400, "%s", err.msg);
            goto out;
        }
        if (!legacy) normalize(vec, keep);
        json_t *a = json_array();
        for (int32_t k = 0; k < keep; k++) json_array_append_new(a, json_real(vec[k]));
        json_array_append_new(all, a);
    }
    if (legacy) {
        result = json_pack("{s:o}", "embedding", json_incref(json_array_get(all, 0)));
        json_decref(all);
        ll_http_resp_json(resp, 200, result);
    } else {
        uint64_t now = ll_time_ns();
        result = json_pack("{s:s, s:o, s:I, s:I, s:I}", "model", model, "embeddings", all,
                           "total_duration", (json_int_t)(now - t_req), "load_duration", (json_int_t)(t_loaded - t_req),
                           "prompt_eval_count", (json_int_t)total);
        if (ad) ad->respond(ad, resp, result);
        else ll_http_resp_json_flags(resp, 200, result, LL_JSON_F32);
    }
out:
    ll_ctx_free(c);
    if (runner) ll_runners_release(ctx->runners, runner, keep_alive);
    for (size_t i = 0; toks && i < n_in; i++) ll_free(toks[i]);
    ll_free(toks);
    ll_free(n_toks);
    ll_free(vec);
    api_opts_clear(&o);
    api_model_close(&m);
    json_decref(inputs);
    ll_free(model);
    json_decref(body);
    if (ad) ad->free(ad);
}

void api_embed_run(ll_http_req *req, ll_http_resp *resp, ll_api_ctx *ctx, json_t *body, api_adapter *ad) {
    embed_common(req, resp, ctx, false, body, ad);
}

static void api_embed(ll_http_req *req, ll_http_resp *resp, void *ctx) { embed_common(req, resp, ctx, false, NULL, NULL); }
static void api_embeddings(ll_http_req *req, ll_http_resp *resp, void *ctx) { embed_common(req, resp, ctx, true, NULL, NULL); }

ll_status api_embed_register(ll_router *r, ll_api_ctx *ctx, ll_error *err) {
    if (ll_router_set_handler(r, "POST", "/api/embed", api_embed, ctx, err) != LL_OK ||
        ll_router_set_handler(r, "POST", "/api/embeddings", api_embeddings, ctx, err) != LL_OK)
        return err->code;
    return LL_OK;
}
