/* libFuzzer target for the router and header handling of the HTTP layer (src/server/router.c,
 * the environment parsing of src/server/http.c; fault rows H17-H20, H46, H47, §0.2-§0.4).
 *
 * The input is split at 0xFF bytes into method, request target, Host, Origin, one extra header
 * (name 0xFF value) and a body; missing parts are absent headers. The request goes through
 * ll_router_prepare and, when a handler is chosen, ll_router_run (the built-in handlers and
 * stubs). Checks: no crash; every answer has a status in 100..599; a 405 carries Allow; a
 * redirect carries a Location that is the path without its trailing slash; Host/Origin
 * rejections have empty bodies. The parts also feed the Host/Origin matchers, the listen
 * address parser and the duration parser directly. */
#include "server/http_internal.h"

#include "core/core.h"

#include <stdlib.h>
#include <string.h>

static ll_router *router;

static char *part(const uint8_t **p, const uint8_t *end, bool *present) {
    const uint8_t *s = *p, *q = s;
    *present = s < end;
    while (q < end && *q != 0xFF) q++;
    size_t n = (size_t)(q - s);
    char *r = malloc(n + 1);
    if (!r) abort();
    memcpy(r, s, n);
    r[n] = 0;
    *p = q < end ? q + 1 : q;
    return r;
}

static const char *hdr(const ll_http_resp *resp, const char *name) {
    for (size_t i = 0; i < resp->n_hdrs; i++)
        if (!strcmp(resp->hdrs[i].name, name)) return resp->hdrs[i].value;
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!router) {
        ll_log_set_level(-1);
        ll_http_config cfg;
        ll_http_config_default(&cfg);
        snprintf(cfg.origins, sizeof cfg.origins, "chrome-extension://*, null, *.example.com, a**b");
        snprintf(cfg.allowed_hosts, sizeof cfg.allowed_hosts, "proxy.example.com, *.ts.net");
        ll_error err = { 0 };
        if (ll_router_init(&router, &cfg, &err) != LL_OK) abort();
    }
    const uint8_t *p = data, *end = data + size;
    bool has_m, has_u, has_h, has_o, has_n, has_v, has_b;
    char *method = part(&p, end, &has_m), *uri = part(&p, end, &has_u), *host = part(&p, end, &has_h);
    char *origin = part(&p, end, &has_o), *hname = part(&p, end, &has_n), *hval = part(&p, end, &has_v);
    char *body = part(&p, end, &has_b);
    if (!has_m || !method[0]) { free(method); method = strdup("GET"); }

    const char *hdrs[6];
    size_t n = 0;
    if (has_h) { hdrs[2 * n] = "Host"; hdrs[2 * n + 1] = host; n++; }
    if (has_o) { hdrs[2 * n] = "Origin"; hdrs[2 * n + 1] = origin; n++; }
    if (has_n && hname[0]) { hdrs[2 * n] = hname; hdrs[2 * n + 1] = hval; n++; }
    ll_http_req req;
    ll_http_resp resp;
    memset(&resp, 0, sizeof resp);
    ll_error err = { 0 };
    if (ll_http_req_init_test(&req, method, uri, hdrs, n, &err) != LL_OK) abort();
    if (has_b) { req.body = body; req.body_n = strlen(body); }
    if (ll_router_prepare(router, &req, &resp) == LL_ROUTE_HANDLER) ll_router_run(router, &req, &resp);
    if (resp.status < 100 || resp.status > 599) abort();
    if (resp.status == 405 && !hdr(&resp, "Allow")) abort();
    if (resp.status == 301 || resp.status == 307) {
        const char *loc = hdr(&resp, "Location");
        if (!loc || req.path.n < 2 || strncmp(loc, req.path.p, req.path.n - 1)) abort();
    }
    if (resp.status == 403 && !req.route && resp.body_n) abort();
    req.body = NULL;
    ll_http_req_release(&req);
    ll_http_resp_release(&resp);

    bool named;
    (void)ll_router_host_allowed(router, host, &named);
    (void)ll_router_origin_allowed(router, origin);
    char h[256];
    int port = -1;
    ll_parse_listen_addr(uri, h, sizeof h, &port);
    if (port < 0 || port > 65535) abort();
    int64_t ns;
    (void)ll_parse_duration(hval, strlen(hval), &ns, &err);

    free(method); free(uri); free(host); free(origin); free(hname); free(hval); free(body);
    return 0;
}
