/* libFuzzer target for the lenient request JSON parser and the Go-style encoder
 * (src/server/json.c; fault rows H21-H29).
 *
 * The input is a request body. Checks: no crash; a parse either fails with a message or yields
 * a value whose Go-style dump parses again to a value that dumps to the same bytes (the output
 * is always valid JSON and valid UTF-8); the getters and option getters never fail on anything
 * but a type or range error. */
#include "server/json.h"

#include "core/core.h"

#include <stdlib.h>
#include <string.h>

static void use_getters(const json_t *v) {
    static const char *const keys[] = { "model", "prompt", "stream", "options", "messages", "keep_alive",
                                        "think", "format", "Model", "top_logprobs" };
    ll_error e = { 0 };
    ll_str s;
    bool b;
    int64_t i;
    double d;
    json_t *a;
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        e = (ll_error){ 0 };
        (void)ll_json_get_str(v, keys[k], &s, NULL, &e);
        (void)ll_json_get_bool(v, keys[k], &b, NULL, &e);
        (void)ll_json_get_int(v, keys[k], -5, 20, &i, NULL, &e);
        (void)ll_json_get_num(v, keys[k], &d, NULL, &e);
        (void)ll_json_get_array(v, keys[k], &a, &e);
        (void)ll_json_get_object(v, keys[k], &a, &e);
    }
    json_t *opts = ll_json_field(v, "options");
    static const char *const onames[] = { "num_ctx", "temperature", "stop", "use_mmap", "seed" };
    for (size_t k = 0; k < sizeof onames / sizeof onames[0]; k++) {
        e = (ll_error){ 0 };
        (void)ll_json_opt_int(opts, onames[k], &i, NULL, &e);
        (void)ll_json_opt_float(opts, onames[k], &d, NULL, &e);
        (void)ll_json_opt_bool(opts, onames[k], &b, NULL, &e);
        if (ll_json_opt_strlist(opts, onames[k], &a, &e) == LL_OK && a)
            for (size_t j = 0; j < ll_json_strlist_n(a); j++) (void)ll_json_strlist_at(a, j);
    }
    json_t *ka = ll_json_field(v, "keep_alive");
    if (ka) { e = (ll_error){ 0 }; (void)ll_json_keep_alive(ka, &i, &e); }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    json_t *v = NULL;
    ll_error e = { 0 };
    if (ll_json_parse((const char *)data, size, &v, &e) != LL_OK) {
        if (v || !e.msg[0]) abort();
        return 0;
    }
    use_getters(v);
    for (int flags = 0; flags < 2; flags++) {
        /* dump, parse, dump, parse, dump: every output parses, and the text is stable after
         * one round (the first round may turn a real -0 into the integer 0) */
        char *out[3] = { 0 };
        size_t n[3];
        json_t *cur = json_incref(v);
        int k;
        for (k = 0; k < 3; k++) {
            if (ll_json_dump(cur, flags ? LL_JSON_F32 : 0, &out[k], &n[k], &e) != LL_OK) break;
            json_t *w = NULL;
            if (ll_json_parse(out[k], n[k], &w, &e) != LL_OK) abort();
            json_decref(cur);
            cur = w;
        }
        json_decref(cur);
        if (k == 3 && !flags && (n[1] != n[2] || memcmp(out[1], out[2], n[1]))) abort();
        if (k > 0 && k < 3) abort();   /* only the first dump may hit the depth cap */
        for (int i = 0; i < 3; i++) ll_free(out[i]);
    }
    json_decref(v);
    /* durations from arbitrary text */
    int64_t ns;
    e = (ll_error){ 0 };
    (void)ll_parse_duration((const char *)data, size < 64 ? size : 64, &ns, &e);
    return 0;
}
