/* server/router: the routing table of ollama-api.md §0.2 with gin's observable behaviour
 * (404/405 bodies, Allow, trailing-slash redirects, HEAD), the Host and Origin checks of §0.3,
 * the optional API key of §0.3.3, and the request/response helpers of http.h.
 *
 * Paths are matched on the raw request target with the query removed (fault row H19): an
 * encoded "/api/%67enerate" is a 404, not /api/generate, and nothing is normalised ("//",
 * ".."). Only route parameters are percent-decoded (§5 D11 for /v1/models/{model}). */
#include "server/http_internal.h"

#include "core/core.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <inttypes.h>
#include <pthread.h>
#include <time.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- the table ------------------------------------------------------------------------------ */

enum { PARAM_NONE, PARAM_SEGMENT, PARAM_REST };

struct ll_route {
    const char   *method;
    const char   *pattern;       /* as written in §0.2 */
    size_t        prefix_n;      /* parameter routes: bytes of the fixed prefix, incl. '/' */
    int           param;
    ll_api_family family;
    bool          head_of_get;   /* a HEAD that runs the GET handler */
    bool          open;          /* exempt from LOCALLAMA_API_KEY (§0.3.3) */
    bool          test_only;     /* exists only with LOCALLAMA_HTTP_TEST_ROUTES=1 */
    ll_route_fn   fn;
    void         *ctx;
    ll_body_fn    sink;
};

static void h_root(ll_http_req *, ll_http_resp *, void *);
static void h_version(ll_http_req *, ll_http_resp *, void *);
static void h_status(ll_http_req *, ll_http_resp *, void *);
static void h_me(ll_http_req *, ll_http_resp *, void *);
static void h_signed_out(ll_http_req *, ll_http_resp *, void *);
static void h_web_search(ll_http_req *, ll_http_resp *, void *);
static void h_web_fetch(ll_http_req *, ll_http_resp *, void *);
static void h_recommendations(ll_http_req *, ll_http_resp *, void *);
static void h_v1_unsupported(ll_http_req *, ll_http_resp *, void *);
static void h_stub(ll_http_req *, ll_http_resp *, void *);
static void h_test_stream(ll_http_req *, ll_http_resp *, void *);
static void h_test_block(ll_http_req *, ll_http_resp *, void *);
static void h_test_echo(ll_http_req *, ll_http_resp *, void *);

#define R(m, p, fn) { m, p, 0, PARAM_NONE, LL_API_NATIVE, false, false, false, fn, NULL, NULL }
/* Order matters twice: per path, GET before POST before DELETE before HEAD, which is the
 * order of the Allow header; and the first route whose pattern matches wins. */
static const struct ll_route route_table[] = {
    { "GET",  "/", 0, PARAM_NONE, LL_API_NATIVE, false, true, false, h_root, NULL, NULL },
    { "HEAD", "/", 0, PARAM_NONE, LL_API_NATIVE, true,  true, false, h_root, NULL, NULL },
    { "GET",  "/api/version", 0, PARAM_NONE, LL_API_NATIVE, false, true, false, h_version, NULL, NULL },
    { "HEAD", "/api/version", 0, PARAM_NONE, LL_API_NATIVE, true,  true, false, h_version, NULL, NULL },
    R("GET",    "/api/status", h_status),
    R("POST",   "/api/generate", h_stub),
    R("POST",   "/api/chat", h_stub),
    R("POST",   "/api/embed", h_stub),
    R("POST",   "/api/embeddings", h_stub),
    R("GET",    "/api/tags", h_stub),
    { "HEAD", "/api/tags", 0, PARAM_NONE, LL_API_NATIVE, true, false, false, h_stub, NULL, NULL },
    R("POST",   "/api/show", h_stub),
    R("GET",    "/api/ps", h_stub),
    R("POST",   "/api/create", h_stub),
    R("POST",   "/api/copy", h_stub),
    R("DELETE", "/api/delete", h_stub),
    R("POST",   "/api/pull", h_stub),
    R("POST",   "/api/push", h_stub),
    { "POST", "/api/blobs/:digest", 11, PARAM_SEGMENT, LL_API_NATIVE, false, false, false, h_stub, NULL, NULL },
    { "HEAD", "/api/blobs/:digest", 11, PARAM_SEGMENT, LL_API_NATIVE, false, false, false, h_stub, NULL, NULL },
    R("POST",   "/api/me", h_me),
    R("POST",   "/api/signout", h_signed_out),
    { "DELETE", "/api/user/keys/:key", 15, PARAM_SEGMENT, LL_API_NATIVE, false, false, false, h_signed_out, NULL, NULL },
    R("POST",   "/api/experimental/web_search", h_web_search),
    R("POST",   "/api/experimental/web_fetch", h_web_fetch),
    R("GET",    "/api/experimental/model-recommendations", h_recommendations),
    { "POST", "/v1/chat/completions", 0, PARAM_NONE, LL_API_OPENAI, false, false, false, h_stub, NULL, NULL },
    { "POST", "/v1/completions", 0, PARAM_NONE, LL_API_OPENAI, false, false, false, h_stub, NULL, NULL },
    { "GET",  "/v1/models", 0, PARAM_NONE, LL_API_OPENAI, false, false, false, h_stub, NULL, NULL },
    { "GET",  "/v1/models/{model}", 11, PARAM_REST, LL_API_OPENAI, false, false, false, h_stub, NULL, NULL },
    { "POST", "/v1/embeddings", 0, PARAM_NONE, LL_API_OPENAI, false, false, false, h_stub, NULL, NULL },
    { "POST", "/v1/responses", 0, PARAM_NONE, LL_API_OPENAI, false, false, false, h_v1_unsupported, NULL, NULL },
    { "POST", "/v1/audio/transcriptions", 0, PARAM_NONE, LL_API_OPENAI, false, false, false, h_v1_unsupported, NULL, NULL },
    { "POST", "/v1/messages", 0, PARAM_NONE, LL_API_ANTHROPIC, false, false, false, h_stub, NULL, NULL },
    { "POST", "/__test/stream", 0, PARAM_NONE, LL_API_NATIVE, false, false, true, h_test_stream, NULL, NULL },
    { "POST", "/__test/block", 0, PARAM_NONE, LL_API_NATIVE, false, false, true, h_test_block, NULL, NULL },
    { "POST", "/__test/echo", 0, PARAM_NONE, LL_API_NATIVE, false, false, true, h_test_echo, NULL, NULL },
    { "POST", "/v1/__test/stream", 0, PARAM_NONE, LL_API_OPENAI, false, false, true, h_test_stream, NULL, NULL },
};
#undef R
#define N_ROUTES (sizeof route_table / sizeof route_table[0])

#define MAX_IFADDRS 64

struct ll_router {
    ll_http_config cfg;
    struct ll_route routes[N_ROUTES];
    bool   loopback;                 /* the listener is a loopback address (set once bound) */
    char **origins;                  /* defaults + configured, lower-cased */
    size_t n_origins;
    bool   origins_any;              /* a "*" entry */
    char **hosts;                    /* LOCALLAMA_ALLOWED_HOSTS entries, lower-cased */
    size_t n_hosts;
    bool   hosts_any;
    char   hostname[256];            /* gethostname(), lower-cased */
    struct { int family; unsigned char a[16]; } ifaddrs[MAX_IFADDRS];
    size_t n_ifaddrs;
};

static const char *const default_origins[] = {
    "http://localhost", "https://localhost", "http://localhost:*", "https://localhost:*",
    "http://127.0.0.1", "https://127.0.0.1", "http://127.0.0.1:*", "https://127.0.0.1:*",
    "http://0.0.0.0", "https://0.0.0.0", "http://0.0.0.0:*", "https://0.0.0.0:*",
    "app://*", "file://*", "tauri://*", "vscode-webview://*", "vscode-file://*",
};

static const char cors_allow_headers[] =
    "Authorization,Content-Type,User-Agent,Accept,X-Requested-With,Openai-Beta,X-Stainless-Arch,"
    "X-Stainless-Async,X-Stainless-Custom-Poll-Interval,X-Stainless-Helper-Method,X-Stainless-Lang,"
    "X-Stainless-Os,X-Stainless-Package-Version,X-Stainless-Poll-Helper,X-Stainless-Retry-Count,"
    "X-Stainless-Runtime,X-Stainless-Runtime-Version,X-Stainless-Timeout";

/* ---- router construction -------------------------------------------------------------------- */

static void str_lower(char *s) { for (; *s; s++) *s = (char)tolower((unsigned char)*s); }

/* Split a comma list into trimmed, lower-cased, non-empty entries appended to *list. */
static ll_status split_list(const char *text, char ***list, size_t *n, ll_error *err) {
    const char *p = text;
    while (p && *p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        const char *a = p, *b = p + len;
        while (a < b && isspace((unsigned char)*a)) a++;
        while (b > a && isspace((unsigned char)b[-1])) b--;
        if (b > a) {
            char **nl = ll_realloc(*list, (*n + 1) * sizeof *nl);
            if (!nl) return ll_fail(err, LL_ERR_NOMEM, "out of memory reading a list setting");
            *list = nl;
            char *s = ll_str_dup((ll_str){ a, (size_t)(b - a) });
            if (!s) return ll_fail(err, LL_ERR_NOMEM, "out of memory reading a list setting");
            str_lower(s);
            nl[(*n)++] = s;
        }
        p = e ? e + 1 : NULL;
    }
    return LL_OK;
}

static void collect_ifaddrs(ll_router *r) {
    struct ifaddrs *ifa = NULL;
    if (getifaddrs(&ifa) != 0) return;
    for (struct ifaddrs *i = ifa; i && r->n_ifaddrs < MAX_IFADDRS; i = i->ifa_next) {
        if (!i->ifa_addr) continue;
        if (i->ifa_addr->sa_family == AF_INET) {
            r->ifaddrs[r->n_ifaddrs].family = AF_INET;
            memcpy(r->ifaddrs[r->n_ifaddrs++].a, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, 4);
        } else if (i->ifa_addr->sa_family == AF_INET6) {
            r->ifaddrs[r->n_ifaddrs].family = AF_INET6;
            memcpy(r->ifaddrs[r->n_ifaddrs++].a, &((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr, 16);
        }
    }
    freeifaddrs(ifa);
}

ll_status ll_router_init(ll_router **out, const ll_http_config *cfg, ll_error *err) {
    *out = NULL;
    ll_router *r = ll_calloc(1, sizeof *r);
    if (!r) return ll_fail(err, LL_ERR_NOMEM, "out of memory creating the router");
    r->cfg = *cfg;
    memcpy(r->routes, route_table, sizeof route_table);
    r->loopback = true;
    for (size_t i = 0; i < N_ROUTES; i++)
        if (r->routes[i].fn == h_version || r->routes[i].fn == h_root) r->routes[i].ctx = r;

    for (size_t i = 0; i < sizeof default_origins / sizeof default_origins[0]; i++)
        if (split_list(default_origins[i], &r->origins, &r->n_origins, err) != LL_OK) goto fail;
    size_t first_user = r->n_origins;
    if (split_list(cfg->origins, &r->origins, &r->n_origins, err) != LL_OK) goto fail;
    /* D12: never refuse to start over an entry; drop the malformed ones with a warning. */
    for (size_t i = first_user; i < r->n_origins;) {
        char *o = r->origins[i];
        const char *star = strchr(o, '*');
        if (!strcmp(o, "*")) r->origins_any = true;
        if (star && strchr(star + 1, '*')) {
            LL_WARN("OLLAMA_ORIGINS: ignoring entry '%s' (more than one '*')", o);
            ll_free(o);
            r->origins[i] = r->origins[--r->n_origins];
            continue;
        }
        i++;
    }
    if (split_list(cfg->allowed_hosts, &r->hosts, &r->n_hosts, err) != LL_OK) goto fail;
    for (size_t i = 0; i < r->n_hosts; i++)
        if (!strcmp(r->hosts[i], "*")) r->hosts_any = true;

    if (gethostname(r->hostname, sizeof r->hostname - 1) != 0) r->hostname[0] = 0;
    str_lower(r->hostname);
    collect_ifaddrs(r);
    *out = r;
    return LL_OK;
fail:
    ll_router_free(r);
    return err ? err->code : LL_ERR_NOMEM;
}

void ll_router_free(ll_router *r) {
    if (!r) return;
    for (size_t i = 0; i < r->n_origins; i++) ll_free(r->origins[i]);
    ll_free(r->origins);
    for (size_t i = 0; i < r->n_hosts; i++) ll_free(r->hosts[i]);
    ll_free(r->hosts);
    ll_free(r);
}

void ll_router_set_loopback(ll_router *r, bool loopback) { r->loopback = loopback; }

static struct ll_route *find_route(ll_router *r, const char *method, const char *pattern) {
    for (size_t i = 0; i < N_ROUTES; i++)
        if (!strcmp(r->routes[i].method, method) && !strcmp(r->routes[i].pattern, pattern))
            return &r->routes[i];
    return NULL;
}

ll_status ll_router_set_handler(ll_router *r, const char *method, const char *pattern,
                                ll_route_fn fn, void *ctx, ll_error *err) {
    struct ll_route *rt = find_route(r, method, pattern);
    if (!rt || !fn) return ll_fail(err, LL_ERR_ARG, "no route %s %s in the table of §0.2", method, pattern);
    rt->fn = fn;
    rt->ctx = ctx;
    if (!strcmp(method, "GET")) {
        struct ll_route *head = find_route(r, "HEAD", pattern);
        if (head && head->head_of_get) { head->fn = fn; head->ctx = ctx; }
    }
    return LL_OK;
}

ll_status ll_router_set_body_sink(ll_router *r, const char *method, const char *pattern,
                                  ll_body_fn fn, ll_error *err) {
    struct ll_route *rt = find_route(r, method, pattern);
    if (!rt) return ll_fail(err, LL_ERR_ARG, "no route %s %s in the table of §0.2", method, pattern);
    rt->sink = fn;
    return LL_OK;
}

ll_body_fn ll_router_body_sink(const ll_http_req *req, void **ctx) {
    if (!req->route || !req->route->sink) return NULL;
    *ctx = req->route->ctx;
    return req->route->sink;
}

/* ---- Host check (§0.3.1, D13) ------------------------------------------------------------ */

static bool ip_is_local(const ll_router *r, int family, const unsigned char *a) {
    if (family == AF_INET6 && !memcmp(a, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12)) {
        family = AF_INET;   /* IPv4-mapped: judge the IPv4 address, as netip's Unmap does */
        a += 12;
    }
    if (family == AF_INET) {
        if (a[0] == 127 || a[0] == 10) return true;                           /* loopback, 10/8 */
        if (a[0] == 172 && (a[1] & 0xF0) == 16) return true;                 /* 172.16/12 */
        if (a[0] == 192 && a[1] == 168) return true;                         /* 192.168/16 */
        if (!a[0] && !a[1] && !a[2] && !a[3]) return true;                   /* unspecified */
    } else {
        static const unsigned char zero[16], one[16] = { [15] = 1 };
        if (!memcmp(a, zero, 16) || !memcmp(a, one, 16)) return true;        /* ::, ::1 */
        if ((a[0] & 0xFE) == 0xFC) return true;                              /* fc00::/7 */
    }
    for (size_t i = 0; i < r->n_ifaddrs; i++)
        if (r->ifaddrs[i].family == family && !memcmp(r->ifaddrs[i].a, a, family == AF_INET ? 4 : 16))
            return true;
    return false;
}

static bool suffix_is(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && !strcmp(s + n - m, suf);
}

bool ll_router_host_allowed(const ll_router *r, const char *host, bool *named) {
    *named = false;
    if (r->hosts_any) return true;
    if (!host) return false;
    char h[300];
    size_t n = strlen(host);
    if (n == 0 || n >= sizeof h) return false;
    /* Strip ":port" the way Go's net.SplitHostPort would, but also accept "[::1]" (D13). */
    const char *colon = strchr(host, ':');
    if (host[0] == '[') {
        const char *rb = strchr(host, ']');
        if (!rb || (rb[1] && rb[1] != ':')) return false;
        n = (size_t)(rb - host - 1);
        memcpy(h, host + 1, n);
    } else if (colon && !strchr(colon + 1, ':')) {
        n = (size_t)(colon - host);
        memcpy(h, host, n);
    } else {
        memcpy(h, host, n);
    }
    h[n] = 0;
    if (n == 0) return false;   /* D13: "Host: :11434" is refused (Ollama lets it through) */
    unsigned char a[16];
    if (inet_pton(AF_INET, h, a) == 1) { if (ip_is_local(r, AF_INET, a)) return true; }
    else if (inet_pton(AF_INET6, h, a) == 1) { if (ip_is_local(r, AF_INET6, a)) return true; }
    str_lower(h);
    bool ok = !strcmp(h, "localhost") || (r->hostname[0] && !strcmp(h, r->hostname)) ||
              suffix_is(h, ".localhost") || suffix_is(h, ".local") || suffix_is(h, ".internal");
    for (size_t i = 0; !ok && i < r->n_hosts; i++) {
        const char *e = r->hosts[i];
        ok = !strcmp(e, h) || (e[0] == '*' && e[1] == '.' && suffix_is(h, e + 1));
    }
    *named = ok;
    return ok;
}

/* ---- Origin allow list (§0.3.2, D12) ------------------------------------------------------ */

int ll_router_origin_allowed(const ll_router *r, const char *origin) {
    if (r->origins_any) return 2;
    char o[1024];
    size_t n = strlen(origin);
    if (n >= sizeof o) return 0;
    memcpy(o, origin, n + 1);
    str_lower(o);
    for (size_t i = 0; i < r->n_origins; i++) {
        const char *e = r->origins[i], *star = strchr(e, '*');
        if (!star) {
            if (!strcmp(e, o)) return 1;
            continue;
        }
        size_t pre = (size_t)(star - e), suf = strlen(star + 1);
        if (n >= pre + suf && !memcmp(o, e, pre) && !strcmp(o + n - suf, star + 1)) return 1;
    }
    return 0;
}

/* ---- requests -------------------------------------------------------------------------------- */

const char *ll_http_req_method(const ll_http_req *req) { return req->method; }
ll_str ll_http_req_path(const ll_http_req *req) { return req->path; }
ll_str ll_http_req_query(const ll_http_req *req) { return req->query; }
ll_str ll_http_req_param(const ll_http_req *req) { return (ll_str){ req->param ? req->param : "", req->param_n }; }
ll_str ll_http_req_body(const ll_http_req *req) { return (ll_str){ req->body ? req->body : "", req->body_n }; }
ll_api_family ll_http_req_family(const ll_http_req *req) { return req->route ? req->route->family : LL_API_NATIVE; }
const atomic_bool *ll_http_req_cancel_flag(const ll_http_req *req) { return &req->call->cancel; }
bool ll_http_req_cancelled(const ll_http_req *req) { return atomic_load(&req->call->cancel); }
void *ll_http_req_user(const ll_http_req *req) { return req->user; }

void ll_http_req_set_user(ll_http_req *req, void *user, void (*free_fn)(void *)) {
    if (req->user && req->user_free && req->user != user) req->user_free(req->user);
    req->user = user;
    req->user_free = free_fn;
}

const char *ll_http_req_header(const ll_http_req *req, const char *name) {
    for (size_t i = 0; i < req->n_hdrs; i++)
        if (!strcasecmp(req->hdrs[i].name, name)) return req->hdrs[i].value;
    return NULL;
}

void ll_http_req_release(ll_http_req *req) {
    if (req->user && req->user_free) req->user_free(req->user);
    req->user = NULL;
    ll_free(req->param);
    ll_free(req->hdrs);
    ll_free(req->body);
    req->param = NULL;
    req->hdrs = NULL;
    req->body = NULL;
    if (req->call) ll_http_stream_unref(req->call);
    req->call = NULL;
}

ll_status ll_http_req_init_test(ll_http_req *req, const char *method, const char *raw_uri,
                                const char *const *hdrs, size_t n_hdr_pairs, ll_error *err) {
    memset(req, 0, sizeof *req);
    req->method = method;
    req->raw_uri = raw_uri;
    req->version = "HTTP/1.1";
    const char *q = strchr(raw_uri, '?');
    req->path = (ll_str){ raw_uri, q ? (size_t)(q - raw_uri) : strlen(raw_uri) };
    req->query = q ? ll_str_c(q + 1) : (ll_str){ "", 0 };
    if (n_hdr_pairs) {
        req->hdrs = ll_malloc_array(n_hdr_pairs, sizeof *req->hdrs);
        if (!req->hdrs) return ll_fail(err, LL_ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < n_hdr_pairs; i++) req->hdrs[i] = (struct ll_http_hdr){ hdrs[2 * i], hdrs[2 * i + 1] };
        req->n_hdrs = req->cap_hdrs = n_hdr_pairs;
    }
    req->call = ll_http_stream_new(LL_API_NATIVE, 1 << 20);
    if (!req->call) { ll_free(req->hdrs); req->hdrs = NULL; return ll_fail(err, LL_ERR_NOMEM, "out of memory"); }
    return LL_OK;
}

ll_status ll_http_req_json(ll_http_req *req, ll_http_resp *resp, json_t **out) {
    ll_error e = { 0 };
    *out = NULL;
    ll_str b = ll_http_req_body(req);
    ll_status st = ll_json_parse(b.p, b.n, out, &e);
    if (st == LL_OK && !json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        st = ll_fail(&e, LL_ERR_FORMAT, "invalid JSON: the body must be an object");
    }
    if (st != LL_OK) ll_http_resp_error(resp, st == LL_ERR_NOMEM ? 500 : 400, "%s", e.msg);
    return st;
}

/* ---- responses ------------------------------------------------------------------------------- */

void ll_http_resp_clear_body(ll_http_resp *resp) {
    ll_free(resp->body);
    resp->body = NULL;
    resp->body_n = 0;
    resp->content_type = NULL;
}

void ll_http_resp_release(ll_http_resp *resp) {
    ll_http_resp_clear_body(resp);
    for (size_t i = 0; i < resp->n_hdrs; i++) { ll_free(resp->hdrs[i].name); ll_free(resp->hdrs[i].value); }
    ll_free(resp->hdrs);
    resp->hdrs = NULL;
    resp->n_hdrs = resp->cap_hdrs = 0;
}

static void resp_oom(ll_http_resp *resp) {
    /* Last resort: a static body, no allocation. */
    ll_http_resp_clear_body(resp);
    resp->status = 500;
    resp->is_stream = false;
}

void ll_http_resp_text(ll_http_resp *resp, int status, const char *content_type, const char *body, size_t n) {
    if (resp->is_stream) return;   /* committed; the stream carries any later error */
    ll_http_resp_clear_body(resp);
    resp->status = status;
    resp->content_type = content_type;
    if (n) {
        resp->body = ll_malloc(n + 1);
        if (!resp->body) { resp_oom(resp); return; }
        memcpy(resp->body, body, n);
        resp->body[n] = 0;
        resp->body_n = n;
    }
}

void ll_http_resp_empty(ll_http_resp *resp, int status) { ll_http_resp_text(resp, status, NULL, NULL, 0); }

void ll_http_resp_json_flags(ll_http_resp *resp, int status, json_t *body, int flags) {
    char *txt;
    size_t n;
    ll_error e = { 0 };
    if (ll_json_dump(body, flags, &txt, &n, &e) != LL_OK) {
        json_decref(body);
        resp_oom(resp);
        return;
    }
    json_decref(body);
    if (resp->is_stream) { ll_free(txt); return; }
    ll_http_resp_clear_body(resp);
    resp->status = status;
    resp->content_type = "application/json; charset=utf-8";
    resp->body = txt;
    resp->body_n = n;
}

void ll_http_resp_json(ll_http_resp *resp, int status, json_t *body) { ll_http_resp_json_flags(resp, status, body, 0); }

void ll_http_resp_header(ll_http_resp *resp, const char *name, const char *value) {
    if (resp->n_hdrs == resp->cap_hdrs) {
        size_t cap = resp->cap_hdrs ? resp->cap_hdrs * 2 : 8;
        struct ll_resp_hdr *h = ll_realloc(resp->hdrs, cap * sizeof *h);
        if (!h) return;
        resp->hdrs = h;
        resp->cap_hdrs = cap;
    }
    char *n = ll_str_dup(ll_str_c(name)), *v = ll_str_dup(ll_str_c(value));
    if (!n || !v) { ll_free(n); ll_free(v); return; }
    resp->hdrs[resp->n_hdrs++] = (struct ll_resp_hdr){ n, v };
}

void ll_http_resp_close(ll_http_resp *resp) { resp->close = true; }

static const char *openai_type(int status) {
    return status == 400 ? "invalid_request_error" : status == 404 ? "not_found_error" : "api_error";
}

static const char *anthropic_type(int status) {
    switch (status) {
    case 400: return "invalid_request_error";
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 429: return "rate_limit_error";
    case 503: case 529: return "overloaded_error";
    default: return "api_error";
    }
}

/* "req_" + 24 hex digits (§3.5); not a secret, only unique enough to find in logs. */
static void anthropic_request_id(char out[32]) {
    static atomic_ulong counter;
    uint64_t x = ll_time_ns() ^ ((uint64_t)atomic_fetch_add(&counter, 1) * 0x9E3779B97F4A7C15ULL);
    uint64_t y = x * 0xBF58476D1CE4E5B9ULL ^ (x >> 31);
    snprintf(out, 32, "req_%016llx%08x", (unsigned long long)y, (unsigned)(x >> 11));
}

json_t *ll_http_error_body(ll_api_family family, int status, const char *msg, bool in_stream) {
    json_t *o = json_object();
    if (!o) return NULL;
    if (family == LL_API_NATIVE) {
        json_object_set_new(o, "error", json_string(msg));
    } else if (family == LL_API_OPENAI) {
        json_t *e = json_object();
        json_object_set_new(e, "message", json_string(msg));
        json_object_set_new(e, "type", json_string(openai_type(status)));
        json_object_set_new(e, "param", json_null());
        json_object_set_new(e, "code", json_null());
        json_object_set_new(o, "error", e);
    } else {
        json_t *e = json_object();
        json_object_set_new(o, "type", json_string("error"));
        json_object_set_new(e, "type", json_string(anthropic_type(status)));
        json_object_set_new(e, "message", json_string(msg));
        json_object_set_new(o, "error", e);
        if (!in_stream) {
            char id[32];
            anthropic_request_id(id);
            json_object_set_new(o, "request_id", json_string(id));
        }
    }
    return o;
}

void ll_http_resp_error(ll_http_resp *resp, int status, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* jansson wants valid UTF-8; a message echoing bad bytes loses them rather than the error. */
    json_t *s = json_string(msg);
    if (!s) {
        for (char *c = msg; *c; c++) if ((unsigned char)*c >= 0x80) *c = '?';
    } else {
        json_decref(s);
    }
    json_t *o = ll_http_error_body(resp->family, status, msg, false);
    if (!o) { resp_oom(resp); return; }
    ll_http_resp_json_flags(resp, status, o, resp->family == LL_API_NATIVE ? 0 : LL_JSON_NEWLINE);
    if (resp->family != LL_API_NATIVE && !resp->is_stream) resp->content_type = "application/json";
}

/* ---- built-in handlers ---------------------------------------------------------------------- */

static void h_root(ll_http_req *req, ll_http_resp *resp, void *ctx) {
    static const char text[] = "Ollama is running";   /* §1.15: health checks compare it */
    ll_http_resp_text(resp, 200, "text/plain; charset=utf-8", text, sizeof text - 1);
}

static void h_version(ll_http_req *req, ll_http_resp *resp, void *ctx) {
    const ll_router *r = ctx;
    json_t *o = json_object();
    json_object_set_new(o, "version", json_string(r->cfg.version));
    json_object_set_new(o, "locallama_version", json_string(LL_VERSION));
    ll_http_resp_json(resp, 200, o);
}

static void h_status(ll_http_req *req, ll_http_resp *resp, void *ctx) {
    ll_http_resp_json(resp, 200, json_pack("{s:{s:b,s:s}}", "cloud", "disabled", 1, "source", "config"));
}

static void h_me(ll_http_req *req, ll_http_resp *resp, void *ctx) { ll_http_resp_error(resp, 401, "unauthorized"); }

static void h_signed_out(ll_http_req *req, ll_http_resp *resp, void *ctx) {
    ll_http_resp_error(resp, 401, "you are not currently signed in");
}

static void h_web_search(ll_http_req *req, ll_http_resp *resp, void *ctx) {
    ll_http_resp_error(resp, 403, "ollama cloud is disabled: web search is unavailable");
}

static void h_web_fetch(ll_http_req *req, ll_http_resp *resp, void *ctx) {
    ll_http_resp_error(resp, 403, "ollama cloud is disabled: web fetch is unavailable");
}

static void h_recommendations(ll_http_req *req, ll_http_resp *resp, void *ctx) {
    ll_http_resp_json(resp, 200, json_pack("{s:[]}", "recommendations"));
}

static void h_v1_unsupported(ll_http_req *req, ll_http_resp *resp, void *ctx) {
    ll_http_resp_error(resp, 404, "endpoint not supported");   /* §2.6 */
}

static void h_stub(ll_http_req *req, ll_http_resp *resp, void *ctx) {
    ll_http_resp_error(resp, 501, "%s %s is not implemented yet", req->method,
                       req->route ? req->route->pattern : "?");
}

/* ---- test routes (LOCALLAMA_HTTP_TEST_ROUTES=1) --------------------------------------------
 * They let tests/py/test_server_http.py drive streaming, cancellation and shutdown before the
 * real endpoints exist. Each logs what happened at info level ("test-stream: cancelled at line
 * 3") so a test can read the server's log. */

struct test_stream_job {
    ll_http_stream *s;
    int64_t n, interval_ms, fail_after, pad;
    bool sse;
};

static void *test_stream_main(void *arg) {
    struct test_stream_job *j = arg;
    char *pad = ll_malloc((size_t)j->pad + 1);
    if (pad) { memset(pad, 'x', (size_t)j->pad); pad[j->pad] = 0; }
    int64_t i = 0;
    for (; i < j->n; i++) {
        if (ll_http_stream_cancelled(j->s)) break;
        if (j->fail_after >= 0 && i == j->fail_after) {
            ll_http_stream_error(j->s, "test failure after the stream began");
            LL_INFO("test-stream: failed at line %" PRId64, i);
            goto out;
        }
        json_t *o = json_pack("{s:I,s:s}", "i", (json_int_t)i, "pad", pad ? pad : "");
        ll_status st = j->sse ? ll_http_stream_sse(j->s, NULL, o, 0) : ll_http_stream_ndjson(j->s, o, 0);
        json_decref(o);
        if (st != LL_OK) break;
        if (j->interval_ms > 0) {
            struct timespec ts = { j->interval_ms / 1000, (long)(j->interval_ms % 1000) * 1000000L };
            nanosleep(&ts, NULL);
        }
    }
    if (i < j->n) {
        LL_INFO("test-stream: cancelled at line %" PRId64, i);
    } else {
        json_t *o = json_pack("{s:b}", "done", 1);
        if (j->sse) { ll_http_stream_sse(j->s, NULL, o, 0); ll_http_stream_sse_done(j->s); }
        else ll_http_stream_ndjson(j->s, o, 0);
        json_decref(o);
        LL_INFO("test-stream: finished %" PRId64 " lines", i);
    }
out:
    ll_http_stream_end(j->s);
    ll_free(pad);
    ll_free(j);
    return NULL;
}

/* {"n":10,"interval_ms":50,"sse":false,"fail_after":-1,"pad":0}: n lines from another thread. */
static void h_test_stream(ll_http_req *req, ll_http_resp *resp, void *ctx) {
    json_t *b;
    if (ll_http_req_json(req, resp, &b) != LL_OK) return;
    ll_error e = { 0 };
    int64_t n = 10, iv = 50, fail = -1, pad = 0;
    bool sse = false;
    if (ll_json_get_int(b, "n", 0, 1000000, &n, NULL, &e) || ll_json_get_int(b, "interval_ms", 0, 60000, &iv, NULL, &e) ||
        ll_json_get_int(b, "fail_after", -1, 1000000, &fail, NULL, &e) || ll_json_get_int(b, "pad", 0, 4 << 20, &pad, NULL, &e) ||
        ll_json_get_bool(b, "sse", &sse, NULL, &e)) {
        json_decref(b);
        ll_http_resp_error(resp, 400, "%s", e.msg);
        return;
    }
    json_decref(b);
    struct test_stream_job *j = ll_calloc(1, sizeof *j);
    if (!j) { ll_http_resp_error(resp, 500, "out of memory"); return; }
    *j = (struct test_stream_job){ NULL, n, iv, fail, pad, sse };
    j->s = ll_http_resp_stream(resp, sse ? LL_STREAM_SSE : LL_STREAM_NDJSON);
    if (!j->s) { ll_free(j); ll_http_resp_error(resp, 500, "out of memory"); return; }
    pthread_t t;
    if (pthread_create(&t, NULL, test_stream_main, j) != 0) {
        ll_http_stream_error(j->s, "could not start the producer");
        ll_http_stream_end(j->s);
        ll_free(j);
        return;
    }
    pthread_detach(t);
}

/* {"ms":1000}: block the connection thread, polling the cancel flag (as a model load would). */
static void h_test_block(ll_http_req *req, ll_http_resp *resp, void *ctx) {
    json_t *b;
    if (ll_http_req_json(req, resp, &b) != LL_OK) return;
    int64_t ms = 1000;
    ll_error e = { 0 };
    ll_status st = ll_json_get_int(b, "ms", 0, 600000, &ms, NULL, &e);
    json_decref(b);
    if (st != LL_OK) { ll_http_resp_error(resp, 400, "%s", e.msg); return; }
    uint64_t end = ll_time_ns() + (uint64_t)ms * 1000000ULL;
    while (ll_time_ns() < end) {
        if (atomic_load(ll_http_req_cancel_flag(req))) {
            LL_INFO("test-block: cancelled");
            ll_http_resp_error(resp, 499, "request canceled");
            return;
        }
        struct timespec ts = { 0, 10000000L };
        nanosleep(&ts, NULL);
    }
    ll_http_resp_json(resp, 200, json_pack("{s:I}", "slept_ms", (json_int_t)ms));
}

/* Parse the body leniently and send it back re-encoded (H21-H29 end to end). */
static void h_test_echo(ll_http_req *req, ll_http_resp *resp, void *ctx) {
    json_t *b;
    if (ll_http_req_json(req, resp, &b) != LL_OK) return;
    ll_str model = { "", 0 };
    bool stream = true;
    ll_error e = { 0 };
    if (ll_json_get_str(b, "model", &model, NULL, &e) || ll_json_get_bool(b, "stream", &stream, NULL, &e)) {
        json_decref(b);
        ll_http_resp_error(resp, 400, "%s", e.msg);
        return;
    }
    json_t *o = json_object();
    json_object_set_new(o, "model", json_stringn(model.p, model.n));
    json_object_set_new(o, "stream", json_boolean(stream));
    json_object_set_new(o, "body", b);
    ll_http_resp_json(resp, 200, o);
}

/* ---- dispatch -------------------------------------------------------------------------------- */

static bool route_matches(const struct ll_route *rt, const char *p, size_t n) {
    if (rt->param == PARAM_NONE) return strlen(rt->pattern) == n && !memcmp(rt->pattern, p, n);
    if (n <= rt->prefix_n || memcmp(rt->pattern, p, rt->prefix_n)) return false;
    return rt->param == PARAM_REST || !memchr(p + rt->prefix_n, '/', n - rt->prefix_n);
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    c = (char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decode; a '%' not followed by two hex digits stays as it is. */
static char *pct_decode(const char *p, size_t n, size_t *out_n) {
    char *o = ll_malloc(n + 1);
    if (!o) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int h, l;
        if (p[i] == '%' && i + 2 < n && (h = hexval(p[i + 1])) >= 0 && (l = hexval(p[i + 2])) >= 0) {
            o[k++] = (char)(h << 4 | l);
            i += 2;
        } else {
            o[k++] = p[i];
        }
    }
    o[k] = 0;
    *out_n = k;
    return o;
}

static ll_api_family family_of_path(ll_str p) {
    if (p.n >= 12 && !memcmp(p.p, "/v1/messages", 12)) return LL_API_ANTHROPIC;
    if (p.n >= 4 && !memcmp(p.p, "/v1/", 4)) return LL_API_OPENAI;
    return LL_API_NATIVE;
}

static bool api_key_ok(const ll_router *r, const ll_http_req *req) {
    const char *key = r->cfg.api_key;
    size_t kn = strlen(key);
    const char *auth = ll_http_req_header(req, "Authorization");
    const char *xkey = ll_http_req_header(req, "x-api-key");
    const char *given = NULL;
    if (auth && !strncasecmp(auth, "Bearer ", 7)) given = auth + 7;
    else if (xkey) given = xkey;
    if (!given || strlen(given) != kn) return false;
    unsigned char d = 0;   /* constant time over the key's length */
    for (size_t i = 0; i < kn; i++) d |= (unsigned char)(given[i] ^ key[i]);
    return d == 0;
}

ll_route_decision ll_router_prepare(ll_router *r, ll_http_req *req, ll_http_resp *resp) {
    resp->family = family_of_path(req->path);
    const char *origin = ll_http_req_header(req, "Origin");
    const char *host = ll_http_req_header(req, "Host");
    bool is_options = !strcmp(req->method, "OPTIONS");

    /* CORS first (§0.3.2), as gin-contrib/cors runs before the Host middleware. */
    if (origin) {
        bool same = false;
        if (host)
            same = (!strncmp(origin, "http://", 7) && !strcmp(origin + 7, host)) ||
                   (!strncmp(origin, "https://", 8) && !strcmp(origin + 8, host));
        if (!same) {
            int ok = ll_router_origin_allowed(r, origin);
            if (!ok) {
                LL_INFO("http: refused Origin '%s' (%s %s)", origin, req->method, req->raw_uri);
                ll_http_resp_empty(resp, 403);
                return LL_ROUTE_DECIDED;
            }
            const char *acao = ok == 2 ? "*" : origin;
            if (is_options) {
                ll_http_resp_header(resp, "Access-Control-Allow-Origin", acao);
                ll_http_resp_header(resp, "Access-Control-Allow-Methods", "GET,POST,PUT,PATCH,DELETE,HEAD,OPTIONS");
                ll_http_resp_header(resp, "Access-Control-Allow-Headers", cors_allow_headers);
                ll_http_resp_header(resp, "Access-Control-Max-Age", "43200");
                if (ok != 2) {
                    ll_http_resp_header(resp, "Vary", "Origin");
                    ll_http_resp_header(resp, "Vary", "Access-Control-Request-Method");
                    ll_http_resp_header(resp, "Vary", "Access-Control-Request-Headers");
                }
                ll_http_resp_empty(resp, 204);
                return LL_ROUTE_DECIDED;
            }
            ll_http_resp_header(resp, "Access-Control-Allow-Origin", acao);
            if (ok != 2) ll_http_resp_header(resp, "Vary", "Origin");
        }
    }

    /* Host check (§0.3.1), loopback listeners only. */
    if (r->loopback && !r->hosts_any) {
        bool named;
        if (!host) {
            ll_http_resp_error(resp, 400, "missing Host header");   /* H46 */
            return LL_ROUTE_DECIDED;
        }
        if (!ll_router_host_allowed(r, host, &named)) {
            LL_WARN("http: refused Host '%s' on a loopback listener (DNS-rebinding defence; "
                    "LOCALLAMA_ALLOWED_HOSTS adds names)", host);
            ll_http_resp_clear_body(resp);
            ll_http_resp_empty(resp, 403);
            return LL_ROUTE_DECIDED;
        }
        if (named && is_options) {
            ll_http_resp_empty(resp, 204);
            return LL_ROUTE_DECIDED;
        }
    }

    /* Routing (§0.2). */
    const char *p = req->path.p;
    size_t n = req->path.n;
    const struct ll_route *hit = NULL;
    char allow[64] = "";
    bool any_path = false, allow_get = false;
    for (size_t i = 0; i < N_ROUTES; i++) {
        const struct ll_route *rt = &r->routes[i];
        if ((rt->test_only && !r->cfg.test_routes) || !route_matches(rt, p, n)) continue;
        any_path = true;
        if (!strcmp(rt->method, req->method)) { if (!hit) hit = rt; continue; }
        if (!strcmp(rt->method, "GET")) allow_get = true;
        /* HEAD is implied by GET (RFC 9110 §9.3.2), so Allow lists GET alone: §0.2's examples. */
        if (!strcmp(rt->method, "HEAD") && (allow_get || rt->head_of_get)) continue;
        if (strstr(allow, rt->method)) continue;
        if (allow[0]) strcat(allow, ", ");
        strcat(allow, rt->method);
    }
    if (!hit && !any_path && n > 1 && p[n - 1] == '/') {
        /* gin's RedirectTrailingSlash: only when the same method has the route. */
        for (size_t i = 0; i < N_ROUTES && !hit; i++)
            if (!strcmp(r->routes[i].method, req->method) && !r->routes[i].test_only &&
                route_matches(&r->routes[i], p, n - 1)) {
                char *loc = ll_malloc(n + req->query.n + 2);
                if (!loc) { resp_oom(resp); return LL_ROUTE_DECIDED; }
                memcpy(loc, p, n - 1);
                size_t k = n - 1;
                if (req->query.n) { loc[k++] = '?'; memcpy(loc + k, req->query.p, req->query.n); k += req->query.n; }
                loc[k] = 0;
                ll_http_resp_header(resp, "Location", loc);
                if (!strcmp(req->method, "GET")) {
                    /* http.Redirect's body for GET; clients ignore it. */
                    char body[300];
                    int bn = snprintf(body, sizeof body, "<a href=\"%.200s\">Moved Permanently</a>.\n\n", loc);
                    ll_http_resp_text(resp, 301, "text/html; charset=utf-8", body, bn > 0 ? (size_t)bn : 0);
                } else {
                    ll_http_resp_empty(resp, 307);
                }
                ll_free(loc);
                return LL_ROUTE_DECIDED;
            }
    }
    if (!hit && !any_path) {
        static const char nf[] = "404 page not found";
        ll_http_resp_text(resp, 404, "text/plain", nf, sizeof nf - 1);
        return LL_ROUTE_DECIDED;
    }
    if (!hit) {
        static const char na[] = "405 method not allowed";
        ll_http_resp_header(resp, "Allow", allow);
        ll_http_resp_text(resp, 405, "text/plain", na, sizeof na - 1);
        return LL_ROUTE_DECIDED;
    }
    resp->family = hit->family;
    if (hit->param != PARAM_NONE) {
        req->param = pct_decode(p + hit->prefix_n, n - hit->prefix_n, &req->param_n);
        if (!req->param) { resp_oom(resp); return LL_ROUTE_DECIDED; }
    }
    req->route = hit;
    if (r->cfg.api_key[0] && !hit->open && !api_key_ok(r, req)) {
        ll_http_resp_error(resp, 401, "unauthorized");   /* §0.3.3, D14 */
        return LL_ROUTE_DECIDED;
    }
    if (req->call) req->call->family = hit->family;
    return LL_ROUTE_HANDLER;
}

void ll_router_run(ll_router *r, ll_http_req *req, ll_http_resp *resp) {
    const struct ll_route *rt = req->route;
    resp->call = req->call;
    if (rt && rt->fn) rt->fn(req, resp, rt->ctx);
    if (resp->status == 0 && !resp->is_stream)
        ll_http_resp_error(resp, 500, "internal error: the %s %s handler gave no answer",
                           req->method, rt ? rt->pattern : "?");
}
