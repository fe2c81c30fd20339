/* server/api_options: the `options` object of §0.9 and the small request helpers the native
 * handlers share (keep_alive, model field, created_at).
 *
 * Layers, later wins per key: built-in defaults → the model's params layer → the request's
 * options. `stop` is the exception: the model's list and the request's are united (§5 D5;
 * Ollama replaces the model's list, which loses e.g. <|eot_id|> stops on a request that only
 * adds "\n"). Wrong types are 400 with Ollama's texts (Ollama answers 500: §5 D9). */
#include "server/api_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static ll_status opts_layer(api_opts *o, const json_t *j, ll_error *err) {
    if (!j) return LL_OK;
    if (!json_is_object(j)) return ll_fail(err, LL_ERR_ARG, "options must be an object");
    int64_t i; double f; bool has;
#define OPT_INT(name, dst) \
    if (ll_json_opt_int(j, name, &i, &has, err) != LL_OK) return err->code; \
    if (has) dst = i;
#define OPT_F(name, dst) \
    if (ll_json_opt_float(j, name, &f, &has, err) != LL_OK) return err->code; \
    if (has) { if (!isfinite(f)) return ll_fail(err, LL_ERR_ARG, "option \"%s\" must be finite", name); dst = (float)f; }
    OPT_INT("num_predict", o->num_predict);
    OPT_INT("num_ctx", o->num_ctx);
    OPT_INT("num_keep", o->num_keep);
    int64_t top_k = o->sp.top_k, rln = o->sp.repeat_last_n, seed = -2;
    OPT_INT("top_k", top_k);
    OPT_INT("repeat_last_n", rln);
    OPT_INT("seed", seed);
    OPT_F("temperature", o->sp.temperature);
    OPT_F("top_p", o->sp.top_p);
    OPT_F("min_p", o->sp.min_p);
    OPT_F("typical_p", o->sp.typical_p);
    OPT_F("repeat_penalty", o->sp.repeat_penalty);
    OPT_F("presence_penalty", o->sp.presence_penalty);
    OPT_F("frequency_penalty", o->sp.frequency_penalty);
    int64_t nt = 0;
    OPT_INT("num_thread", nt);
    if (has && nt < 0) return ll_fail(err, LL_ERR_ARG, "option \"num_thread\" must not be negative");   /* R18 */
    /* Runner options we accept and do not use (one pool serves every model). */
    OPT_INT("num_batch", nt);
    OPT_INT("num_gpu", nt);
    OPT_INT("main_gpu", nt);
#undef OPT_INT
#undef OPT_F
    if (top_k < INT32_MIN || top_k > INT32_MAX) return ll_fail(err, LL_ERR_ARG, "option \"top_k\" out of range");
    o->sp.top_k = (int32_t)top_k;
    if (rln < -1 || rln > INT32_MAX) return ll_fail(err, LL_ERR_ARG, "option \"repeat_last_n\" must be -1 or more");
    o->sp.repeat_last_n = (int32_t)rln;
    if (seed != -2) o->sp.seed = seed < 0 ? LL_SAMPLER_SEED_RANDOM : (uint64_t)seed;
    json_t *stop = NULL;
    if (ll_json_opt_strlist(j, "stop", &stop, err) != LL_OK) return err->code;
    for (size_t k = 0; stop && k < ll_json_strlist_n(stop); k++) {
        ll_str s = ll_json_strlist_at(stop, k);
        if (s.n == 0) continue;
        bool dup = false;
        for (size_t q = 0; q < o->n_stop; q++)
            if (strlen(o->stop[q]) == s.n && !memcmp(o->stop[q], s.p, s.n)) dup = true;
        if (dup) continue;
        if (o->n_stop == API_MAX_STOPS) return ll_fail(err, LL_ERR_LIMIT, "too many stop sequences (at most %d)", API_MAX_STOPS);
        if (!(o->stop[o->n_stop] = ll_str_dup(s))) return ll_fail(err, LL_ERR_NOMEM, "out of memory");
        o->n_stop++;
    }
    return LL_OK;
}

ll_status api_opts_parse(api_opts *o, const json_t *params, const json_t *req, ll_error *err) {
    memset(o, 0, sizeof *o);
    o->sp = ll_sampler_default_params();
    o->sp.repeat_penalty = 1.0f;     /* §0.9: 1.0 (disabled) */
    o->num_predict = -1;
    o->num_keep = 4;
    if (opts_layer(o, params, err) != LL_OK || opts_layer(o, req, err) != LL_OK) {
        api_opts_clear(o);
        return err->code;
    }
    if (o->sp.repeat_penalty <= 0) {
        api_opts_clear(o);
        return ll_fail(err, LL_ERR_ARG, "option \"repeat_penalty\" must be greater than 0");
    }
    if (o->num_ctx < 0) o->num_ctx = 0;
    else if (o->num_ctx > 0 && o->num_ctx < 4) o->num_ctx = 4;          /* §0.9: max(requested, 4) */
    if (o->num_ctx > INT32_MAX) o->num_ctx = INT32_MAX;
    return LL_OK;
}

void api_opts_clear(api_opts *o) {
    for (size_t i = 0; i < o->n_stop; i++) ll_free(o->stop[i]);
    o->n_stop = 0;
}

ll_status api_keep_alive(ll_api_ctx *ctx, const json_t *body, int64_t *ns, ll_error *err) {
    *ns = ctx->keep_alive_ns;
    json_t *v = ll_json_field(body, "keep_alive");
    if (!v) return LL_OK;
    return ll_json_keep_alive(v, ns, err);
}

ll_status api_body_model(const json_t *body, bool allow_name, char **out, ll_error *err) {
    ll_str s = { "", 0 };
    bool has = false;
    *out = NULL;
    if (ll_json_get_str(body, "model", &s, &has, err) != LL_OK) return err->code;
    if ((!has || s.n == 0) && allow_name && ll_json_get_str(body, "name", &s, &has, err) != LL_OK)
        return err->code;
    if (!(*out = ll_str_dup(s))) return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    return LL_OK;
}

json_t *api_now_utc(void) {
    char buf[48];
    size_t n = ll_json_fmt_time(buf, sizeof buf, ll_time_unix_ns(), true);
    return json_stringn(buf, n);
}
