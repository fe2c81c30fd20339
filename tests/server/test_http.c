/* Unit tests for src/server: router decisions (§0.2), Host/Origin rules (§0.3), the JSON
 * helpers (§0.5, H21-H29), env parsing (§0.4) and streams. The wire-level rows are in
 * tests/py/test_server_http.py. */
#include "server/http_internal.h"

#include "core/core.h"

#include "../test.h"

#include <stdlib.h>
#include <string.h>

static ll_router *mk_router(const char *origins, const char *hosts) {
    ll_http_config cfg;
    ll_http_config_default(&cfg);
    snprintf(cfg.origins, sizeof cfg.origins, "%s", origins ? origins : "");
    snprintf(cfg.allowed_hosts, sizeof cfg.allowed_hosts, "%s", hosts ? hosts : "");
    ll_router *r = NULL;
    ll_error err = { 0 };
    if (ll_router_init(&r, &cfg, &err) != LL_OK) { fprintf(stderr, "router: %s\n", err.msg); exit(1); }
    return r;
}

/* Route one request; returns the status, fills body (NUL-terminated, truncated to cap). */
typedef struct { int status; char body[512]; char ctype[64]; char allow[64]; char location[128];
                 char acao[128]; int n_vary; bool handler; } result;

static result route(ll_router *r, const char *method, const char *uri, const char *host, const char *origin,
                    const char *body) {
    const char *hdrs[6];
    size_t n = 0;
    if (host) { hdrs[2 * n] = "Host"; hdrs[2 * n + 1] = host; n++; }
    if (origin) { hdrs[2 * n] = "Origin"; hdrs[2 * n + 1] = origin; n++; }
    ll_http_req req;
    ll_http_resp resp;
    memset(&resp, 0, sizeof resp);
    ll_error err = { 0 };
    result out;
    memset(&out, 0, sizeof out);
    if (ll_http_req_init_test(&req, method, uri, hdrs, n, &err) != LL_OK) { out.status = -1; return out; }
    if (body) {
        req.body = strdup(body);
        req.body_n = strlen(body);
    }
    ll_route_decision d = ll_router_prepare(r, &req, &resp);
    if (d == LL_ROUTE_HANDLER) {
        out.handler = true;
        ll_router_run(r, &req, &resp);
    }
    out.status = resp.status;
    if (resp.body) snprintf(out.body, sizeof out.body, "%.*s", (int)resp.body_n, resp.body);
    if (resp.content_type) snprintf(out.ctype, sizeof out.ctype, "%s", resp.content_type);
    for (size_t i = 0; i < resp.n_hdrs; i++) {
        if (!strcmp(resp.hdrs[i].name, "Allow")) snprintf(out.allow, sizeof out.allow, "%s", resp.hdrs[i].value);
        if (!strcmp(resp.hdrs[i].name, "Location")) snprintf(out.location, sizeof out.location, "%s", resp.hdrs[i].value);
        if (!strcmp(resp.hdrs[i].name, "Access-Control-Allow-Origin")) snprintf(out.acao, sizeof out.acao, "%s", resp.hdrs[i].value);
        if (!strcmp(resp.hdrs[i].name, "Vary")) out.n_vary++;
    }
    if (body) { free(req.body); req.body = NULL; }
    ll_http_req_release(&req);
    ll_http_resp_release(&resp);
    return out;
}

#define LH "127.0.0.1:11434"

/* ---- router ---- */

static void test_root_and_version(void) {
    ll_router *r = mk_router(NULL, NULL);
    result x = route(r, "GET", "/", LH, NULL, NULL);
    CHECK_EQ_INT(x.status, 200);
    CHECK(!strcmp(x.body, "Ollama is running"));
    CHECK(!strcmp(x.ctype, "text/plain; charset=utf-8"));
    x = route(r, "HEAD", "/", LH, NULL, NULL);
    CHECK_EQ_INT(x.status, 200);
    CHECK(!strcmp(x.body, "Ollama is running"));   /* libmicrohttpd drops it, keeps the length */
    x = route(r, "GET", "/api/version", LH, NULL, NULL);
    CHECK_EQ_INT(x.status, 200);
    CHECK_STR_CONTAINS(x.body, "{\"version\":\"0.33.0\"");
    CHECK(!strcmp(x.ctype, "application/json; charset=utf-8"));
    x = route(r, "GET", "/api/version?x=1", LH, NULL, NULL);
    CHECK_EQ_INT(x.status, 200);
    ll_router_free(r);
}

static void test_H17_unknown_path_404(void) {
    ll_router *r = mk_router(NULL, NULL);
    result x = route(r, "GET", "/api/nope", LH, NULL, NULL);
    CHECK_EQ_INT(x.status, 404);
    CHECK(!strcmp(x.body, "404 page not found"));   /* §0.2, byte for byte (18 bytes) */
    CHECK(!strcmp(x.ctype, "text/plain"));
    x = route(r, "PUT", "/nope", LH, NULL, NULL);
    CHECK_EQ_INT(x.status, 404);
    ll_router_free(r);
}

static void test_H18_wrong_method_405(void) {
    ll_router *r = mk_router(NULL, NULL);
    result x = route(r, "GET", "/api/generate", LH, NULL, NULL);
    CHECK_EQ_INT(x.status, 405);
    CHECK(!strcmp(x.body, "405 method not allowed"));
    CHECK(!strcmp(x.allow, "POST"));
    x = route(r, "POST", "/api/tags", LH, NULL, NULL);
    CHECK_EQ_INT(x.status, 405);
    CHECK(!strcmp(x.allow, "GET"));
    x = route(r, "HEAD", "/api/ps", LH, NULL, NULL);
    CHECK_EQ_INT(x.status, 405);
    CHECK(!strcmp(x.allow, "GET"));
    x = route(r, "GET", "/api/blobs/sha256:abc", LH, NULL, NULL);
    CHECK_EQ_INT(x.status, 405);
    CHECK(!strcmp(x.allow, "POST, HEAD"));
    x = route(r, "POST", "/api/delete", LH, NULL, NULL);
    CHECK(!strcmp(x.allow, "DELETE"));
    ll_router_free(r);
}

static void test_trailing_slash_redirect(void) {
    ll_router *r = mk_router(NULL, NULL);
    result x = route(r, "GET", "/api/tags/", LH, NULL, NULL);
    CHECK_EQ_INT(x.status, 301);
    CHECK(!strcmp(x.location, "/api/tags"));
    x = route(r, "POST", "/api/chat/?a=b", LH, NULL, NULL);
    CHECK_EQ_INT(x.status, 307);
    CHECK(!strcmp(x.location, "/api/chat?a=b"));
    x = route(r, "POST", "/api/tags/", LH, NULL, NULL);   /* gin: no POST route, no redirect */
    CHECK_EQ_INT(x.status, 404);
    x = route(r, "GET", "/v1/models/", LH, NULL, NULL);
    CHECK_EQ_INT(x.status, 301);
    CHECK(!strcmp(x.location, "/v1/models"));
    ll_router_free(r);
}

static void test_H19_path_tricks(void) {
    ll_router *r = mk_router(NULL, NULL);
    CHECK_EQ_INT(route(r, "POST", "/api/%67enerate", LH, NULL, NULL).status, 404);
    CHECK_EQ_INT(route(r, "GET", "//api/tags", LH, NULL, NULL).status, 404);
    CHECK_EQ_INT(route(r, "GET", "/api/../api/tags", LH, NULL, NULL).status, 404);
    CHECK_EQ_INT(route(r, "GET", "/api/tags%2F", LH, NULL, NULL).status, 404);
    CHECK_EQ_INT(route(r, "GET", "http://127.0.0.1/api/tags", LH, NULL, NULL).status, 404);
    CHECK_EQ_INT(route(r, "GET", "", LH, NULL, NULL).status, 404);
    ll_router_free(r);
}

static void test_H20_no_debug_routes(void) {
    ll_router *r = mk_router(NULL, NULL);
    CHECK_EQ_INT(route(r, "GET", "/debug/pprof", LH, NULL, NULL).status, 404);
    CHECK_EQ_INT(route(r, "GET", "/debug/vars", LH, NULL, NULL).status, 404);
    CHECK_EQ_INT(route(r, "POST", "/__test/echo", LH, NULL, "{}").status, 404);   /* off by default */
    ll_router_free(r);
}

static void test_stubs_and_1_16(void) {
    ll_router *r = mk_router(NULL, NULL);
    result x = route(r, "POST", "/api/generate", LH, NULL, "{}");
    CHECK_EQ_INT(x.status, 501);
    CHECK_STR_CONTAINS(x.body, "not implemented yet");
    x = route(r, "GET", "/api/status", LH, NULL, NULL);
    CHECK(x.status == 200 && !strcmp(x.body, "{\"cloud\":{\"disabled\":true,\"source\":\"config\"}}"));
    x = route(r, "POST", "/api/me", LH, NULL, NULL);
    CHECK(x.status == 401 && !strcmp(x.body, "{\"error\":\"unauthorized\"}"));
    x = route(r, "POST", "/api/signout", LH, NULL, NULL);
    CHECK(x.status == 401 && !strcmp(x.body, "{\"error\":\"you are not currently signed in\"}"));
    x = route(r, "DELETE", "/api/user/keys/abc", LH, NULL, NULL);
    CHECK_EQ_INT(x.status, 401);
    x = route(r, "POST", "/api/experimental/web_search", LH, NULL, NULL);
    CHECK(x.status == 403 && !strcmp(x.body, "{\"error\":\"ollama cloud is disabled: web search is unavailable\"}"));
    x = route(r, "POST", "/api/experimental/web_fetch", LH, NULL, NULL);
    CHECK(x.status == 403 && !strcmp(x.body, "{\"error\":\"ollama cloud is disabled: web fetch is unavailable\"}"));
    x = route(r, "GET", "/api/experimental/model-recommendations", LH, NULL, NULL);
    CHECK(x.status == 200 && !strcmp(x.body, "{\"recommendations\":[]}"));
    x = route(r, "POST", "/v1/responses", LH, NULL, NULL);
    CHECK_EQ_INT(x.status, 404);
    CHECK(!strcmp(x.body, "{\"error\":{\"message\":\"endpoint not supported\",\"type\":\"not_found_error\","
                          "\"param\":null,\"code\":null}}\n"));
    x = route(r, "POST", "/v1/messages", LH, NULL, NULL);
    CHECK_EQ_INT(x.status, 501);
    CHECK_STR_CONTAINS(x.body, "{\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":");
    CHECK_STR_CONTAINS(x.body, "\"request_id\":\"req_");
    ll_router_free(r);
}

static ll_str seen_param;
static char seen_param_buf[128];
static void h_capture(ll_http_req *req, ll_http_resp *resp, void *ctx) {
    ll_str p = ll_http_req_param(req);
    snprintf(seen_param_buf, sizeof seen_param_buf, "%.*s", LL_STR(p));
    seen_param = p;
    *(int *)ctx += 1;
    ll_http_resp_empty(resp, 200);
}

static void test_set_handler_and_params(void) {
    ll_router *r = mk_router(NULL, NULL);
    int calls = 0;
    ll_error err = { 0 };
    CHECK(ll_router_set_handler(r, "GET", "/v1/models/{model}", h_capture, &calls, &err) == LL_OK);
    CHECK(ll_router_set_handler(r, "POST", "/api/blobs/:digest", h_capture, &calls, &err) == LL_OK);
    CHECK(ll_router_set_handler(r, "GET", "/api/tags", h_capture, &calls, &err) == LL_OK);
    CHECK(ll_router_set_handler(r, "GET", "/api/nope", h_capture, &calls, &err) == LL_ERR_ARG);
    result x = route(r, "GET", "/v1/models/hf.co%2Forg/repo:Q4", LH, NULL, NULL);   /* D11 */
    CHECK_EQ_INT(x.status, 200);
    CHECK(!strcmp(seen_param_buf, "hf.co/org/repo:Q4"));
    x = route(r, "POST", "/api/blobs/sha256:%2e%2e", LH, NULL, NULL);
    CHECK(!strcmp(seen_param_buf, "sha256:.."));
    CHECK_EQ_INT(route(r, "POST", "/api/blobs/a/b", LH, NULL, NULL).status, 404);
    CHECK_EQ_INT(route(r, "HEAD", "/api/tags", LH, NULL, NULL).status, 200);   /* HEAD follows GET */
    CHECK_EQ_INT(calls, 3);
    ll_router_free(r);
}

static void test_api_key(void) {
    ll_http_config cfg;
    ll_http_config_default(&cfg);
    snprintf(cfg.api_key, sizeof cfg.api_key, "s3cret");
    ll_router *r;
    ll_error err = { 0 };
    CHECK(ll_router_init(&r, &cfg, &err) == LL_OK);
    CHECK_EQ_INT(route(r, "GET", "/", LH, NULL, NULL).status, 200);
    CHECK_EQ_INT(route(r, "GET", "/api/version", LH, NULL, NULL).status, 200);
    result x = route(r, "GET", "/api/tags", LH, NULL, NULL);
    CHECK(x.status == 401 && !strcmp(x.body, "{\"error\":\"unauthorized\"}"));
    const char *h[] = { "Host", LH, "Authorization", "Bearer s3cret" };
    ll_http_req req;
    ll_http_resp resp;
    memset(&resp, 0, sizeof resp);
    CHECK(ll_http_req_init_test(&req, "GET", "/api/tags", h, 2, &err) == LL_OK);
    CHECK(ll_router_prepare(r, &req, &resp) == LL_ROUTE_HANDLER);
    ll_http_req_release(&req);
    ll_http_resp_release(&resp);
    ll_router_free(r);
}

/* ---- Host and Origin (§0.3) ---- */

static void test_H46_host_check(void) {
    ll_router *r = mk_router(NULL, NULL);
    bool named;
    const char *ok[] = { "localhost:11434", "LOCALHOST", "127.0.0.1", "127.0.0.1:11434", "[::1]:11434",
                         "[::1]", "::1", "10.1.2.3", "192.168.0.9:80", "172.16.0.1", "172.31.255.255",
                         "0.0.0.0", "foo.local", "a.b.localhost", "x.internal", "[fc00::1]:1" };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        CHECK_MSG(ll_router_host_allowed(r, ok[i], &named), "%s", ok[i]);
    const char *bad[] = { "evil.example", ":11434", "", "8.8.8.8", "172.32.0.1", "localhost.evil.com",
                          "127.0.0.1.nip.io", "[::1", "[::1]x", "local", "xlocalhost" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_MSG(!ll_router_host_allowed(r, bad[i], &named), "%s", bad[i]);
    CHECK(!ll_router_host_allowed(r, NULL, &named));
    result x = route(r, "GET", "/", "evil.example", NULL, NULL);
    CHECK(x.status == 403 && x.body[0] == 0 && x.ctype[0] == 0);
    CHECK_EQ_INT(route(r, "GET", "/", NULL, NULL, NULL).status, 400);
    CHECK_EQ_INT(route(r, "OPTIONS", "/api/tags", "localhost:11434", NULL, NULL).status, 204);
    CHECK_EQ_INT(route(r, "GET", "/nope", "evil.example", NULL, NULL).status, 403);   /* before 404 */
    ll_router_set_loopback(r, false);
    CHECK_EQ_INT(route(r, "GET", "/", "evil.example", NULL, NULL).status, 200);
    ll_router_free(r);

    r = mk_router(NULL, "proxy.example.com, *.ts.net");
    CHECK(ll_router_host_allowed(r, "proxy.example.com:443", &named));
    CHECK(ll_router_host_allowed(r, "box.tail1.ts.net", &named));
    CHECK(!ll_router_host_allowed(r, "evil.example", &named));
    ll_router_free(r);
    r = mk_router(NULL, "*");
    CHECK(ll_router_host_allowed(r, "evil.example", &named));
    ll_router_free(r);
}

static void test_H47_origin_check(void) {
    ll_router *r = mk_router(NULL, NULL);
    CHECK_EQ_INT(ll_router_origin_allowed(r, "http://localhost"), 1);
    CHECK_EQ_INT(ll_router_origin_allowed(r, "http://localhost:5173"), 1);
    CHECK_EQ_INT(ll_router_origin_allowed(r, "https://127.0.0.1:8443"), 1);
    CHECK_EQ_INT(ll_router_origin_allowed(r, "app://anything"), 1);
    CHECK_EQ_INT(ll_router_origin_allowed(r, "vscode-webview://abc"), 1);
    CHECK_EQ_INT(ll_router_origin_allowed(r, "https://evil.example"), 0);
    CHECK_EQ_INT(ll_router_origin_allowed(r, "chrome-extension://abc"), 0);
    CHECK_EQ_INT(ll_router_origin_allowed(r, "null"), 0);
    CHECK_EQ_INT(ll_router_origin_allowed(r, "http://localhost.evil.example"), 0);

    result x = route(r, "OPTIONS", "/api/chat", LH, "http://localhost:5173", NULL);
    CHECK_EQ_INT(x.status, 204);
    CHECK(!strcmp(x.acao, "http://localhost:5173"));
    CHECK_EQ_INT(x.n_vary, 3);
    x = route(r, "GET", "/api/version", LH, "http://localhost:5173", NULL);
    CHECK_EQ_INT(x.status, 200);
    CHECK(!strcmp(x.acao, "http://localhost:5173"));
    CHECK_EQ_INT(x.n_vary, 1);
    x = route(r, "GET", "/", LH, "https://evil.example", NULL);
    CHECK(x.status == 403 && x.body[0] == 0);
    x = route(r, "OPTIONS", "/api/chat", LH, "https://evil.example", NULL);
    CHECK_EQ_INT(x.status, 403);
    x = route(r, "GET", "/", "myhost.local:11434", "http://myhost.local:11434", NULL);   /* same origin */
    CHECK(x.status == 200 && x.acao[0] == 0);
    ll_router_free(r);

    /* D12: entries trimmed, any scheme, "null", a malformed entry dropped without failing. */
    r = mk_router(" chrome-extension://* , null,*.example.com, a**b ,  Tauri-ish://X ", NULL);
    CHECK_EQ_INT(ll_router_origin_allowed(r, "chrome-extension://abcdef"), 1);
    CHECK_EQ_INT(ll_router_origin_allowed(r, "null"), 1);
    CHECK_EQ_INT(ll_router_origin_allowed(r, "https://app.example.com"), 1);
    CHECK_EQ_INT(ll_router_origin_allowed(r, "tauri-ish://x"), 1);
    CHECK_EQ_INT(ll_router_origin_allowed(r, "a**b"), 0);
    ll_router_free(r);
    r = mk_router("*", NULL);
    CHECK_EQ_INT(ll_router_origin_allowed(r, "https://evil.example"), 2);
    x = route(r, "OPTIONS", "/api/chat", LH, "https://evil.example", NULL);
    CHECK(x.status == 204 && !strcmp(x.acao, "*") && x.n_vary == 0);
    ll_router_free(r);
}

/* ---- JSON (§0.5, H21-H29) ---- */

static json_t *parse_ok(const char *s) {
    json_t *v = NULL;
    ll_error e = { 0 };
    ll_status st = ll_json_parse(s, strlen(s), &v, &e);
    CHECK_MSG(st == LL_OK, "%s: %s", s, e.msg);
    return v;
}

static void parse_bad(const char *s, size_t n, const char *want) {
    json_t *v = NULL;
    ll_error e = { 0 };
    ll_status st = ll_json_parse(s, n, &v, &e);
    CHECK_MSG(st != LL_OK && v == NULL, "accepted %s", s);
    CHECK_MSG(strstr(e.msg, want) != NULL, "'%s': got '%s', want '%s'", s, e.msg, want);
}

static void test_H21_malformed_json(void) {
    parse_bad("{\"model\":", 9, "invalid JSON at byte 9: unexpected end of input");
    parse_bad("{\"a\":1,}", 8, "invalid JSON at byte 7");
    parse_bad("{'a':1}", 7, "invalid JSON at byte 1");
    parse_bad("{\"a\":NaN}", 9, "invalid JSON at byte 5");
    parse_bad("{\"a\":1 /* c */}", 15, "invalid JSON at byte 7");
    parse_bad("[1,2", 4, "unexpected end of input");
    parse_bad("{\"a\":\"x\ny\"}", 11, "control character");
    parse_bad("{\"a\":01}", 8, "invalid JSON");
    parse_bad("{\"a\":\"\\x\"}", 10, "invalid escape");
    parse_bad("{\"a\":tru}", 9, "invalid JSON");
}

static void test_H22_empty_body(void) {
    parse_bad("", 0, "missing request body");
    parse_bad(" \n\t ", 4, "missing request body");
}

static void test_H23_deep_nesting(void) {
    char buf[600];
    for (int i = 0; i < 128; i++) buf[i] = '[';
    for (int i = 0; i < 128; i++) buf[128 + i] = ']';
    buf[256] = 0;
    json_t *v = parse_ok(buf);
    json_decref(v);
    for (int i = 0; i < 129; i++) buf[i] = '[';
    buf[129] = 0;
    parse_bad(buf, 129, "nesting deeper than 128");
    /* a million '[' does not recurse: the scanner stops at 129 */
    size_t big = 1 << 20;
    char *deep = malloc(big);
    memset(deep, '[', big);
    parse_bad(deep, big, "nesting deeper than 128");
    free(deep);
}

static void test_H24_data_after_json(void) {
    parse_bad("{}{}", 4, "invalid JSON at byte 2: unexpected data after JSON");
    parse_bad("{} x", 4, "unexpected data after JSON");
    json_decref(parse_ok("{\"a\":1}  \r\n\t "));
}

static void test_H25_duplicate_keys(void) {
    json_t *v = parse_ok("{\"model\":\"a\",\"model\":\"b\"}");
    ll_str s = { 0 };
    ll_error e = { 0 };
    CHECK(ll_json_get_str(v, "model", &s, NULL, &e) == LL_OK && ll_str_eq_c(s, "b"));
    json_decref(v);
}

static void test_H26_number_overflow(void) {
    parse_bad("{\"options\":{\"seed\":1e999}}", 26, "field 'options.seed'");
    parse_bad("{\"a\":[1,1e999]}", 15, "field 'a[1]'");
    /* 2^64 is a fine real (Go reads it into float64 fields); int fields refuse it by name */
    json_t *big = parse_ok("{\"seed\":18446744073709551616,\"options\":{\"seed\":18446744073709551616}}");
    int64_t bi = 0;
    ll_error be = { 0 };
    CHECK(ll_json_get_int(big, "seed", INT64_MIN, INT64_MAX, &bi, NULL, &be) == LL_ERR_ARG);
    CHECK_STR_CONTAINS(be.msg, "field 'seed'");
    be = (ll_error){ 0 };
    CHECK(ll_json_opt_int(ll_json_field(big, "options"), "seed", &bi, NULL, &be) == LL_ERR_ARG);
    CHECK_STR_CONTAINS(be.msg, "option \"seed\" is out of range");
    json_decref(big);
    parse_bad("-1e400", 6, "out of range");
    json_t *v = parse_ok("{\"n\":9223372036854775807,\"m\":-9223372036854775808,\"x\":1e-400}");
    int64_t n = 0;
    ll_error e = { 0 };
    CHECK(ll_json_get_int(v, "n", INT64_MIN, INT64_MAX, &n, NULL, &e) == LL_OK && n == INT64_MAX);
    CHECK(ll_json_get_int(v, "n", 0, 100, &n, NULL, &e) == LL_ERR_ARG);
    CHECK_STR_CONTAINS(e.msg, "field 'n' must be between 0 and 100");
    json_decref(v);
    v = parse_ok("{\"top_logprobs\":1.5,\"k\":2.0}");
    e = (ll_error){ 0 };
    CHECK(ll_json_get_int(v, "top_logprobs", 0, 20, &n, NULL, &e) == LL_ERR_ARG);
    CHECK_STR_CONTAINS(e.msg, "field 'top_logprobs' must be an integer");
    CHECK(ll_json_get_int(v, "k", 0, 20, &n, NULL, &e) == LL_OK && n == 2);
    json_decref(v);
}

static void test_H27_invalid_utf8_replaced(void) {
    const char in[] = "{\"p\":\"a\xff" "b\xc3\x28" "c\\ud800d\\udc00e\\ud83d\\ude00\xed\xa0\x80\"}";
    json_t *v = parse_ok(in);
    ll_str s = { 0 };
    ll_error e = { 0 };
    CHECK(ll_json_get_str(v, "p", &s, NULL, &e) == LL_OK);
    const char want[] = "a\xEF\xBF\xBD" "b\xEF\xBF\xBD(c\xEF\xBF\xBD" "d\xEF\xBF\xBD" "e\xF0\x9F\x98\x80"
                        "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD";
    CHECK_MSG(s.n == sizeof want - 1 && !memcmp(s.p, want, s.n), "got %zu bytes", s.n);
    json_decref(v);
}

static void test_H28_nul_kept(void) {
    json_t *v = parse_ok("{\"prompt\":\"a\\u0000b\"}");
    ll_str s = { 0 };
    ll_error e = { 0 };
    CHECK(ll_json_get_str(v, "prompt", &s, NULL, &e) == LL_OK);
    CHECK(s.n == 3 && s.p[1] == 0 && s.p[2] == 'b');
    char *out;
    size_t n;
    CHECK(ll_json_dump(v, 0, &out, &n, &e) == LL_OK);
    CHECK(!strcmp(out, "{\"prompt\":\"a\\u0000b\"}"));
    ll_free(out);
    json_decref(v);
}

static void test_H29_wrong_types(void) {
    json_t *v = parse_ok("{\"model\":5,\"stream\":\"true\",\"messages\":\"hi\",\"options\":[],\"Prompt\":\"p\",\"raw\":null}");
    ll_error e = { 0 };
    ll_str s;
    bool b = true, has = true;
    json_t *a;
    CHECK(ll_json_get_str(v, "model", &s, NULL, &e) == LL_ERR_ARG);
    CHECK(!strcmp(e.msg, "field 'model' must be a string"));
    e = (ll_error){ 0 };
    CHECK(ll_json_get_bool(v, "stream", &b, NULL, &e) == LL_ERR_ARG);
    CHECK(!strcmp(e.msg, "field 'stream' must be a boolean"));
    e = (ll_error){ 0 };
    CHECK(ll_json_get_array(v, "messages", &a, &e) == LL_ERR_ARG);
    CHECK(!strcmp(e.msg, "field 'messages' must be an array"));
    e = (ll_error){ 0 };
    CHECK(ll_json_get_object(v, "options", &a, &e) == LL_ERR_ARG);
    CHECK(!strcmp(e.msg, "field 'options' must be an object"));
    /* §0.5.4: case-insensitive keys, null = absent */
    e = (ll_error){ 0 };
    CHECK(ll_json_get_str(v, "prompt", &s, &has, &e) == LL_OK && has && ll_str_eq_c(s, "p"));
    CHECK(ll_json_get_bool(v, "raw", &b, &has, &e) == LL_OK && !has && b);
    CHECK(ll_json_get_bool(v, "absent", &b, &has, &e) == LL_OK && !has);
    json_decref(v);
}

static void test_options_lenient(void) {
    json_t *o = parse_ok("{\"num_ctx\":2048.9,\"temperature\":\"0.7\",\"top_k\":\"x\",\"stop\":\"\\n\\n\","
                         "\"stop2\":[\"a\",\"b\"],\"stop3\":[1],\"seed\":null,\"use_mmap\":1,\"Num_ctx\":5}");
    ll_error e = { 0 };
    int64_t i = 0;
    double d = 0;
    bool b, has;
    json_t *l;
    CHECK(ll_json_opt_int(o, "num_ctx", &i, NULL, &e) == LL_OK && i == 2048);
    CHECK(ll_json_opt_float(o, "temperature", &d, NULL, &e) == LL_OK && d == 0.7);
    CHECK(ll_json_opt_int(o, "top_k", &i, NULL, &e) == LL_ERR_ARG);
    CHECK(!strcmp(e.msg, "option \"top_k\" must be of type integer"));
    e = (ll_error){ 0 };
    CHECK(ll_json_opt_strlist(o, "stop", &l, &e) == LL_OK && ll_json_strlist_n(l) == 1);
    CHECK(ll_str_eq_c(ll_json_strlist_at(l, 0), "\n\n"));
    CHECK(ll_json_opt_strlist(o, "stop2", &l, &e) == LL_OK && ll_json_strlist_n(l) == 2);
    CHECK(ll_json_opt_strlist(o, "stop3", &l, &e) == LL_ERR_ARG);
    e = (ll_error){ 0 };
    CHECK(ll_json_opt_int(o, "seed", &i, &has, &e) == LL_OK && !has);
    CHECK(ll_json_opt_bool(o, "use_mmap", &b, NULL, &e) == LL_ERR_ARG);
    json_decref(o);
}

static void check_f64(double v, const char *want) {
    char buf[40];
    ll_json_fmt_f64(buf, v);
    CHECK_MSG(!strcmp(buf, want), "%.17g: got %s want %s", v, buf, want);
}

static void check_f32(float v, const char *want) {
    char buf[40];
    ll_json_fmt_f32(buf, v);
    CHECK_MSG(!strcmp(buf, want), "%.9g: got %s want %s", (double)v, buf, want);
}

static void test_go_number_format(void) {
    check_f64(0, "0");
    check_f64(1, "1");
    check_f64(-2.5, "-2.5");
    check_f64(0.1, "0.1");
    check_f64(0.010071029, "0.010071029");
    check_f64(1e-7, "1e-7");
    check_f64(1.5e-7, "1.5e-7");
    check_f64(1e-6, "0.000001");
    check_f64(123456789012345678.0, "123456789012345680");
    check_f64(1e20, "100000000000000000000");
    check_f64(1e21, "1e+21");
    check_f64(1.2345e25, "1.2345e+25");
    check_f64(5e-324, "5e-324");
    check_f64(0.5670403838157654, "0.5670403838157654");
    check_f64((double)0.56704038f, "0.5670403838157654");
    check_f32(0.56704038f, "0.5670404");
    check_f32(0.1f, "0.1");
    check_f32(1e-7f, "1e-7");
    check_f32(16777216.0f, "16777216");
    check_f64(1.0 / 0.0, "0");
}

static void test_go_string_escaping(void) {
    json_t *v = json_pack("{s:s,s:s}", "a", "<b>&\"\\\n\r\t\b\f\x01\x7f/", "u", "x\xE2\x80\xA8y\xE2\x80\xA9z\xC2\x85\xC3\xA9");
    char *out;
    size_t n;
    ll_error e = { 0 };
    CHECK(ll_json_dump(v, LL_JSON_NEWLINE, &out, &n, &e) == LL_OK);
    const char want[] = "{\"a\":\"\\u003cb\\u003e\\u0026\\\"\\\\\\n\\r\\t\\b\\f\\u0001\x7f/\","
                        "\"u\":\"x\\u2028y\\u2029z\\u0085\xC3\xA9\"}\n";
    CHECK_MSG(!strcmp(out, want), "got %s", out);
    CHECK_EQ_INT(n, strlen(want));
    ll_free(out);
    json_decref(v);
    v = json_pack("{s:f,s:[f,i]}", "x", 0.5670403838157654, "e", 1e-7, 7);
    CHECK(ll_json_dump(v, LL_JSON_F32, &out, &n, &e) == LL_OK);
    CHECK_MSG(!strcmp(out, "{\"x\":0.5670404,\"e\":[1e-7,7]}"), "got %s", out);
    ll_free(out);
    json_decref(v);
}

static void test_durations(void) {
    int64_t ns;
    ll_error e = { 0 };
    struct { const char *s; int64_t ns; } ok[] = {
        { "5m", 300000000000LL }, { "1h30m", 5400000000000LL }, { "1.5h", 5400000000000LL },
        { "-1m", -60000000000LL }, { "0", 0 }, { "300", 300000000000LL }, { "-1", -1000000000LL },
        { "2.5", 2500000000LL }, { "PT15M", 900000000000LL }, { "P1DT1H", 90000000000000LL },
        { "10ms", 10000000 }, { "1\xC2\xB5s", 1000 }, { "1h2m3.5s", 3723500000000LL },
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        e = (ll_error){ 0 };
        CHECK_MSG(ll_parse_duration(ok[i].s, strlen(ok[i].s), &ns, &e) == LL_OK && ns == ok[i].ns,
                  "%s -> %lld (%s)", ok[i].s, (long long)ns, e.msg);
    }
    e = (ll_error){ 0 };
    CHECK(ll_parse_duration("abc", 3, &ns, &e) == LL_ERR_ARG);
    CHECK(!strcmp(e.msg, "time: invalid duration \"abc\""));
    e = (ll_error){ 0 };
    CHECK(ll_parse_duration("5x", 2, &ns, &e) == LL_ERR_ARG);
    CHECK_STR_CONTAINS(e.msg, "unknown unit");
    json_t *v = parse_ok("[true,300,-5,\"5m\",\"-1m\",1.5,{}]");
    e = (ll_error){ 0 };
    CHECK(ll_json_keep_alive(json_array_get(v, 0), &ns, &e) == LL_ERR_ARG);
    CHECK(!strcmp(e.msg, "Unsupported type: 'bool'"));
    CHECK(ll_json_keep_alive(json_array_get(v, 1), &ns, &e) == LL_OK && ns == 300000000000LL);
    CHECK(ll_json_keep_alive(json_array_get(v, 2), &ns, &e) == LL_OK && ns == -1);
    CHECK(ll_json_keep_alive(json_array_get(v, 3), &ns, &e) == LL_OK && ns == 300000000000LL);
    CHECK(ll_json_keep_alive(json_array_get(v, 4), &ns, &e) == LL_OK && ns == -1);
    CHECK(ll_json_keep_alive(json_array_get(v, 5), &ns, &e) == LL_OK && ns == 1500000000LL);
    json_decref(v);
    char b[32];
    CHECK(!strcmp(ll_fmt_go_duration(b, sizeof b, 300000000000LL), "5m0s"));
    CHECK(!strcmp(ll_fmt_go_duration(b, sizeof b, 5400000000000LL), "1h30m0s"));
    CHECK(!strcmp(ll_fmt_go_duration(b, sizeof b, 1500000000LL), "1.5s"));
    CHECK(!strcmp(ll_fmt_go_duration(b, sizeof b, 250000000LL), "250ms"));
    CHECK(!strcmp(ll_fmt_go_duration(b, sizeof b, 1500), "1.5\xC2\xB5s"));
    CHECK(!strcmp(ll_fmt_go_duration(b, sizeof b, 0), "0s"));
    CHECK(!strcmp(ll_fmt_go_duration(b, sizeof b, -90000000000LL), "-1m30s"));
}

static void test_timestamps(void) {
    char b[48];
    ll_json_fmt_time(b, sizeof b, 1704164645120000000LL, true);
    CHECK_MSG(!strcmp(b, "2024-01-02T03:04:05.12Z"), "%s", b);
    ll_json_fmt_time(b, sizeof b, 1704164645000000000LL, true);
    CHECK(!strcmp(b, "2024-01-02T03:04:05Z"));
    ll_json_fmt_time(b, sizeof b, 1704164645000000001LL, true);
    CHECK(!strcmp(b, "2024-01-02T03:04:05.000000001Z"));
    ll_json_fmt_time(b, sizeof b, LL_TIME_ZERO, false);
    CHECK(!strcmp(b, "0001-01-01T00:00:00Z"));
    setenv("TZ", "America/Los_Angeles", 1);
    tzset();
    ll_json_fmt_time(b, sizeof b, 1746889608639712648LL, false);
    CHECK_MSG(!strcmp(b, "2025-05-10T08:06:48.639712648-07:00"), "%s", b);
    setenv("TZ", "UTC", 1);
    tzset();
    ll_json_fmt_time(b, sizeof b, 1746889608639712648LL, false);
    CHECK_MSG(!strcmp(b, "2025-05-10T15:06:48.639712648Z"), "%s", b);
}

/* ---- environment (§0.4) ---- */

static void check_addr(const char *v, const char *host, int port) {
    char h[256];
    int p = -1;
    ll_parse_listen_addr(v, h, sizeof h, &p);
    CHECK_MSG(!strcmp(h, host) && p == port, "'%s' -> '%s' %d, want '%s' %d", v, h, p, host, port);
}

static void test_env_host_parsing(void) {
    check_addr("", "127.0.0.1", 11434);
    check_addr("127.0.0.1:8080", "127.0.0.1", 8080);
    check_addr("0.0.0.0", "0.0.0.0", 11434);
    check_addr(":8080", "", 8080);
    check_addr("[::1]:9000", "::1", 9000);
    check_addr("[::1]", "::1", 11434);
    check_addr("::1", "::1", 11434);
    check_addr("http://example.com", "example.com", 80);
    check_addr("https://example.com", "example.com", 443);
    check_addr("https://example.com:8443/path", "example.com", 8443);
    check_addr("localhost", "localhost", 11434);
    check_addr("localhost:99999", "localhost", 11434);   /* bad port: default, warned */
    check_addr("1.2.3.4:abc", "1.2.3.4", 11434);
    check_addr("host:", "host", 11434);

    char buf[64];
    unsetenv("LOCALLAMA_HOST");
    setenv("OLLAMA_HOST", "  \"'0.0.0.0:1234'\"  ", 1);
    CHECK(!strcmp(ll_env_get("HOST", buf, sizeof buf), "0.0.0.0:1234"));
    setenv("LOCALLAMA_HOST", "", 1);   /* empty: the OLLAMA_ twin applies */
    CHECK(!strcmp(ll_env_get("HOST", buf, sizeof buf), "0.0.0.0:1234"));
    setenv("LOCALLAMA_HOST", "127.0.0.1:5", 1);
    CHECK(!strcmp(ll_env_get("HOST", buf, sizeof buf), "127.0.0.1:5"));
    ll_http_config cfg;
    ll_http_config_default(&cfg);
    setenv("OLLAMA_API_KEY", "client-side-key", 1);   /* a client's ollama.com key: not ours */
    setenv("LOCALLAMA_MAX_BODY_BYTES", "-5", 1);
    setenv("LOCALLAMA_HTTP_IDLE_TIMEOUT", "2s", 1);
    ll_http_config_from_env(&cfg);
    CHECK(!strcmp(cfg.listen_host, "127.0.0.1") && cfg.listen_port == 5);
    CHECK(cfg.api_key[0] == 0);
    CHECK_EQ_INT(cfg.max_body_bytes, 64u << 20);
    CHECK_EQ_INT(cfg.keepalive_idle_ns, 2000000000LL);
    unsetenv("LOCALLAMA_HOST");
    unsetenv("OLLAMA_HOST");
    unsetenv("OLLAMA_API_KEY");
    unsetenv("LOCALLAMA_MAX_BODY_BYTES");
    unsetenv("LOCALLAMA_HTTP_IDLE_TIMEOUT");
}

/* ---- streams ---- */

static void test_stream_queue(void) {
    ll_http_stream *s = ll_http_stream_new(LL_API_NATIVE, 16);
    s->streaming = true;
    s->kind = LL_STREAM_NDJSON;
    char buf[64];
    bool eof;
    CHECK(ll_http_stream_write(s, "0123456789", 10) == LL_OK);
    CHECK(ll_http_stream_write(s, "abcdefghij", 10) == LL_ERR_CANCELLED);   /* H49: over the cap */
    CHECK(ll_http_stream_cancelled(s));
    long n = ll_http_stream_read(s, buf, sizeof buf, &eof);
    CHECK(n == 10 && !memcmp(buf, "0123456789", 10));
    CHECK_EQ_INT(ll_http_stream_read(s, buf, sizeof buf, &eof), -1);
    ll_http_stream_unref(s);

    s = ll_http_stream_new(LL_API_OPENAI, 1 << 20);
    s->streaming = true;
    s->kind = LL_STREAM_SSE;
    json_t *o = json_pack("{s:i}", "a", 1);
    CHECK(ll_http_stream_sse(s, NULL, o, 0) == LL_OK);
    CHECK(ll_http_stream_error(s, "boom") == LL_OK);
    CHECK(ll_http_stream_sse(s, NULL, o, 0) == LL_ERR_CANCELLED);   /* ended */
    json_decref(o);
    char sbuf[256];
    n = ll_http_stream_read(s, sbuf, sizeof sbuf - 1, &eof);
    sbuf[n > 0 ? n : 0] = 0;
    CHECK(!strcmp(sbuf, "data: {\"a\":1}\n\ndata: {\"error\":{\"message\":\"boom\",\"type\":\"api_error\","
                        "\"param\":null,\"code\":null}}\n\n"));
    ll_http_stream_unref(s);

    s = ll_http_stream_new(LL_API_ANTHROPIC, 1 << 20);
    s->streaming = true;
    s->kind = LL_STREAM_SSE;
    ll_http_stream_error(s, "x");
    char big[256];
    n = ll_http_stream_read(s, big, sizeof big - 1, &eof);
    big[n] = 0;
    CHECK(!strcmp(big, "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"x\"}}\n\n"));
    CHECK_EQ_INT(ll_http_stream_read(s, big, sizeof big, &eof), 0);
    CHECK(eof);
    ll_http_stream_unref(s);
}

static void test_req_json_errors(void) {
    ll_router *r = mk_router(NULL, NULL);
    ll_http_config cfg;
    (void)cfg;
    ll_http_req req;
    ll_http_resp resp;
    memset(&resp, 0, sizeof resp);
    ll_error err = { 0 };
    const char *h[] = { "Host", LH };
    CHECK(ll_http_req_init_test(&req, "POST", "/v1/chat/completions", h, 1, &err) == LL_OK);
    CHECK(ll_router_prepare(r, &req, &resp) == LL_ROUTE_HANDLER);
    req.body = strdup("[1]");
    req.body_n = 3;
    json_t *v;
    CHECK(ll_http_req_json(&req, &resp, &v) != LL_OK);
    CHECK_EQ_INT(resp.status, 400);
    CHECK(resp.body && strstr(resp.body, "\"type\":\"invalid_request_error\"") && strstr(resp.body, "must be an object"));
    free(req.body);
    req.body = NULL;
    req.body_n = 0;
    CHECK(ll_http_req_json(&req, &resp, &v) != LL_OK);
    CHECK(strstr(resp.body, "missing request body"));
    ll_http_req_release(&req);
    ll_http_resp_release(&resp);
    ll_router_free(r);
}

int main(void) {
    setenv("LOCALLAMA_LOG_LEVEL", "0", 1);
    ll_log_set_level(0);
    RUN(test_root_and_version);
    RUN(test_H17_unknown_path_404);
    RUN(test_H18_wrong_method_405);
    RUN(test_trailing_slash_redirect);
    RUN(test_H19_path_tricks);
    RUN(test_H20_no_debug_routes);
    RUN(test_stubs_and_1_16);
    RUN(test_set_handler_and_params);
    RUN(test_api_key);
    RUN(test_H46_host_check);
    RUN(test_H47_origin_check);
    RUN(test_H21_malformed_json);
    RUN(test_H22_empty_body);
    RUN(test_H23_deep_nesting);
    RUN(test_H24_data_after_json);
    RUN(test_H25_duplicate_keys);
    RUN(test_H26_number_overflow);
    RUN(test_H27_invalid_utf8_replaced);
    RUN(test_H28_nul_kept);
    RUN(test_H29_wrong_types);
    RUN(test_options_lenient);
    RUN(test_go_number_format);
    RUN(test_go_string_escaping);
    RUN(test_durations);
    RUN(test_timestamps);
    RUN(test_env_host_parsing);
    RUN(test_stream_queue);
    RUN(test_req_json_errors);
    return test_summary();
}
