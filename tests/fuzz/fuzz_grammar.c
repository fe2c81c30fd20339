/* libFuzzer target for the JSON Schema compiler and the byte matcher (src/grammar/; issue 11).
 *
 * The input is a schema. Checks: no crash, no hang, bounded memory (the compiler's caps); a
 * refused schema has a message; an accepted one yields sentences (gr_sample) that the matcher
 * accepts byte by byte, that are complete at their end, and that parse as JSON: the grammar
 * never allows invalid JSON whatever the schema. The input is also fed as output text to the
 * format-"json" grammar, which must stop at the first bad byte without error codes other than
 * LL_ERR_ARG (a rejected byte) or LL_ERR_LIMIT. The input is also a tool's parameters in a
 * tool-call grammar (check_tool). */
#include "grammar/grammar.h"

#include <jansson.h>
#include <stdlib.h>

/* Feed p byte by byte. must_complete (a sentence the grammar produced): every byte is taken
 * and the grammar may end there, except that a grammar so ambiguous that the matcher reaches
 * its parse-stack cap stops with LL_ERR_LIMIT (its documented bound; returns false, the
 * sentence is not checked further). */
static bool check_matcher(ll_grammar *g, const char *p, size_t n, bool must_complete) {
    ll_error err = { 0 };
    ll_grammar_reset(g);
    for (size_t i = 0; i < n; i++) {
        ll_status st = ll_grammar_accept_bytes(g, p + i, 1, &err);
        if (st != LL_OK) {
            if (st == LL_ERR_LIMIT) return false;
            if (must_complete || st != LL_ERR_ARG) abort();
            return false;
        }
    }
    if (must_complete && !ll_grammar_can_end(g)) abort();
    return true;
}

/* The input as a tool's parameters (ll_grammar_init_tools): a tool that is not strict never
 * fails on its schema (only on the caps), and its calls are JSON objects naming the tool. */
static void check_tool(const uint8_t *data, size_t size) {
    json_error_t je;
    json_t *params = json_loadb((const char *)data, size, JSON_DECODE_ANY, &je);
    if (!params) return;
    json_t *spec = json_pack("{s:[{s:s, s:o}], s:s, s:s}", "tools", "name", "f", "parameters", params,
                             "name_key", "name", "args_key", "arguments");
    char *text = spec ? json_dumps(spec, JSON_COMPACT) : NULL;
    json_decref(spec);
    if (!text) return;
    ll_grammar *g = NULL;
    ll_error err = { 0 };
    ll_status st = ll_grammar_init_tools(&g, NULL, text, strlen(text), &err);
    free(text);
    if (st != LL_OK) {
        if (st != LL_ERR_LIMIT && st != LL_ERR_NOMEM) abort();
        return;
    }
    static char buf[1 << 16];
    uint64_t rng = size;
    size_t n;
    if (gr_sample(gr_of(g), &rng, 64, buf, sizeof buf, &n, &err) == LL_OK) {
        if (!check_matcher(g, buf, n, true)) { ll_grammar_free(g); return; }
        json_t *j = json_loadb(buf, n, JSON_ALLOW_NUL, &je);
        if (!j || strcmp(json_string_value(json_object_get(j, "name")) ? json_string_value(json_object_get(j, "name")) : "", "f"))
            abort();
        json_decref(j);
    }
    ll_grammar_free(g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    check_tool(data, size);
    static ll_grammar *json_any;
    ll_error err = { 0 };
    if (!json_any && ll_grammar_init_json(&json_any, NULL, false, &err) != LL_OK) abort();
    check_matcher(json_any, (const char *)data, size, false);

    ll_grammar *g = NULL;
    err = (ll_error){ 0 };
    ll_status st = ll_grammar_init_schema(&g, NULL, (const char *)data, size, &err);
    if (st != LL_OK) {
        if (err.msg[0] == 0 || g) abort();
        return 0;
    }
    static char buf[1 << 16];
    for (uint64_t k = 0; k < 3; k++) {
        uint64_t rng = k * 7919 + size;
        size_t n;
        err = (ll_error){ 0 };
        if (gr_sample(gr_of(g), &rng, 64, buf, sizeof buf, &n, &err) != LL_OK) continue;   /* too long: fine */
        if (!check_matcher(g, buf, n, true)) continue;
        json_error_t je;
        json_t *j = json_loadb(buf, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
        if (!j) abort();
        json_decref(j);
    }
    ll_grammar_free(g);
    return 0;
}
