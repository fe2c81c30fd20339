/* libFuzzer target for the output parsers of the server: the tool-call parser (toolcall.h) and
 * the thinking splitter (thinking.h) read model output, which a prompt can steer, so any
 * bytes must be safe. The first byte picks the marker; the rest is fed once whole and once in
 * pieces whose sizes come from the input itself, and both feeds must give the same calls and
 * the same text (a mismatch aborts: the property the unit tests check on fixed strings). */
#include "server/json.h"
#include "server/thinking.h"
#include "server/toolcall.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *TOOLS = "[{\"function\":{\"name\":\"get_weather\"}},{\"function\":{\"name\":\"get\"}},"
                           "{\"function\":{\"name\":\"add\"}}]";
static const char *MARKERS[] = { "{", "[", "<tool_call>", "<|python_tag|>", "[TOOL_CALLS]" };

typedef struct { char *p; size_t n; } out_t;

static void append(out_t *o, ll_str s) {
    char *p = realloc(o->p, o->n + s.n + 1);
    if (!p) abort();
    if (s.n) memcpy(p + o->n, s.p, s.n);
    o->p = p;
    o->n += s.n;
}

/* Feed data[0, n) in pieces: piece k is (sizes[k % n_sizes] % 7) + 1 bytes; n_sizes 0: whole. */
static void feed(const char *marker, const uint8_t *data, size_t n, const uint8_t *sizes, size_t n_sizes,
                 out_t *content, out_t *thinking, char **calls_json) {
    ll_error err = { 0 };
    json_t *tools = NULL, *calls = json_array();
    ll_json_parse(TOOLS, strlen(TOOLS), &tools, &err);
    ll_toolcall *tc = NULL;
    ll_think *th = NULL;
    if (ll_toolcall_init(&tc, tools, marker, &err) != LL_OK || ll_think_init(&th, "<think>", "</think>", false, &err) != LL_OK) abort();
    size_t at = 0, k = 0;
    for (;;) {
        bool final = at >= n;
        size_t len = final ? 0 : n_sizes ? (size_t)(sizes[k++ % n_sizes] % 7) + 1 : n - at;
        if (len > n - at) len = n - at;
        ll_str t, c;
        if (ll_think_add(th, (const char *)data + at, len, final, &t, &c, &err) != LL_OK) abort();
        append(thinking, t);
        if (ll_toolcall_add(tc, c.p, c.n, final, &c, calls, &err) != LL_OK) abort();
        append(content, c);
        at += len;
        if (final) break;
    }
    *calls_json = json_dumps(calls, JSON_COMPACT);
    ll_toolcall_free(tc);
    ll_think_free(th);
    json_decref(tools);
    json_decref(calls);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2 || size > 4096) return 0;
    const char *marker = MARKERS[data[0] % (sizeof MARKERS / sizeof *MARKERS)];
    data++, size--;
    out_t c1 = { 0 }, t1 = { 0 }, c2 = { 0 }, t2 = { 0 };
    char *j1 = NULL, *j2 = NULL;
    feed(marker, data, size, NULL, 0, &c1, &t1, &j1);
    feed(marker, data, size, data, size, &c2, &t2, &j2);
    if (!j1 || !j2 || strcmp(j1, j2) || c1.n != c2.n || t1.n != t2.n ||
        (c1.n && memcmp(c1.p, c2.p, c1.n)) || (t1.n && memcmp(t1.p, t2.p, t1.n)))
        abort();
    free(j1), free(j2), free(c1.p), free(c2.p), free(t1.p), free(t2.p);
    return 0;
}
