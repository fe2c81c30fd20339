/* server/http: libmicrohttpd glue for `locallama serve` (http.h).
 *
 * Threads. libmicrohttpd runs one thread per connection (MHD_USE_THREAD_PER_CONNECTION): a
 * handler may block for minutes (model load, non-streamed generation) and a streamed body is
 * read by that connection's thread from the request's queue, which any producer thread fills.
 * The road not taken: the internal select/epoll mode with suspend/resume would save threads,
 * but it lets no handler block, and libmicrohttpd cannot notice a disconnect while a connection
 * is suspended; 512 mostly idle threads cost little next to a model.
 *
 * A watchdog thread does what libmicrohttpd's single inactivity timeout cannot (fault rows):
 *   - headers of a new connection complete within 10 s in total, however slowly they drip (H3);
 *     a kept-alive connection must start its next request within 60 s (H6);
 *   - body bytes keep arriving, at most 30 s apart, else 408 and close (H4);
 *   - while a handler runs or a response is sent, a peer that closed its end is noticed within
 *     one tick and the request's cancel flag raised (H48); a client that stops reading for 30 s
 *     has its request cancelled and its connection closed (H49).
 * It acts on sockets only with shutdown(2), under the registry lock; entries leave the registry
 * in libmicrohttpd's "connection closed" notification, before the descriptor is closed.
 *
 * libmicrohttpd's own inactivity timeout is off: §0.1 wants no timeout on a request in progress.
 */
#include "server/http_internal.h"

#include "core/core.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define REQUEST_LINE_MAX   8192      /* H1 */
#define HEADER_BYTES_MAX   65536     /* H2 */
#define HEADER_FIELDS_MAX  100       /* H2 */
#define WATCHDOG_TICK_NS   50000000ULL
#define OVERFLOW_HEADROOM  64        /* connections past the soft cap that still get a 503 */

/* ---- configuration (§0.4) ------------------------------------------------------------------ */

/* Trim spaces, then any run of '"' and '\'' at both ends (Go: strings.Trim(s, "\"'")). */
static const char *env_clean(const char *v, char *buf, size_t cap) {
    const char *a = v, *b = v + strlen(v);
    while (a < b && isspace((unsigned char)*a)) a++;
    while (b > a && isspace((unsigned char)b[-1])) b--;
    while (a < b && (*a == '"' || *a == '\'')) a++;
    while (b > a && (b[-1] == '"' || b[-1] == '\'')) b--;
    if ((size_t)(b - a) >= cap) {
        LL_WARN("environment value too long (%zu bytes, limit %zu); ignored", (size_t)(b - a), cap - 1);
        return NULL;
    }
    memcpy(buf, a, (size_t)(b - a));
    buf[b - a] = 0;
    return buf;
}

const char *ll_env_get(const char *name, char *buf, size_t cap) {
    char key[128];
    snprintf(key, sizeof key, "LOCALLAMA_%s", name);
    const char *v = getenv(key);
    if (!v || !*v) {
        snprintf(key, sizeof key, "OLLAMA_%s", name);
        v = getenv(key);
    }
    return v ? env_clean(v, buf, cap) : NULL;
}

/* locallama-only settings have no OLLAMA_ twin (OLLAMA_API_KEY is a client's ollama.com key). */
static const char *env_own(const char *name, char *buf, size_t cap) {
    char key[128];
    snprintf(key, sizeof key, "LOCALLAMA_%s", name);
    const char *v = getenv(key);
    return v && *v ? env_clean(v, buf, cap) : NULL;
}

static void env_duration(const char *name, uint64_t *out) {
    char buf[64];
    const char *v = env_own(name, buf, sizeof buf);
    if (!v || !*v) return;
    int64_t ns;
    ll_error e = { 0 };
    if (ll_parse_duration(v, strlen(v), &ns, &e) != LL_OK || ns <= 0) {
        LL_WARN("LOCALLAMA_%s='%s' is not a positive duration; using the default", name, v);
        return;
    }
    *out = (uint64_t)ns;
}

static void env_uint(const char *name, uint64_t min, uint64_t max, uint64_t *out) {
    char buf[64];
    const char *v = env_own(name, buf, sizeof buf);
    if (!v || !*v) return;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (*end || errno || v[0] == '-' || x < min || x > max) {
        LL_WARN("LOCALLAMA_%s='%s' is not a number in [%" PRIu64 ", %" PRIu64 "]; using the default",
                name, v, min, max);
        return;
    }
    *out = x;
}

void ll_http_config_default(ll_http_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->listen_host, sizeof cfg->listen_host, "127.0.0.1");
    cfg->listen_port = 11434;
    snprintf(cfg->version, sizeof cfg->version, "0.33.0");   /* §1.14: the API we implement */
    cfg->max_body_bytes = 64u << 20;
    cfg->max_stream_buffer = 1u << 20;
    cfg->max_connections = 512;
    cfg->header_timeout_ns = 10000000000ULL;
    cfg->body_idle_ns = 30000000000ULL;
    cfg->keepalive_idle_ns = 60000000000ULL;
    cfg->write_stall_ns = 30000000000ULL;
    cfg->shutdown_grace_ns = 10000000000ULL;
}

void ll_http_config_from_env(ll_http_config *cfg) {
    char buf[4096];
    const char *v;
    if ((v = ll_env_get("HOST", buf, sizeof buf)))
        ll_parse_listen_addr(v, cfg->listen_host, sizeof cfg->listen_host, &cfg->listen_port);
    if ((v = ll_env_get("ORIGINS", buf, sizeof buf))) snprintf(cfg->origins, sizeof cfg->origins, "%s", v);
    if ((v = env_own("ALLOWED_HOSTS", buf, sizeof cfg->allowed_hosts)))
        snprintf(cfg->allowed_hosts, sizeof cfg->allowed_hosts, "%s", v);
    if ((v = env_own("API_KEY", buf, sizeof cfg->api_key))) snprintf(cfg->api_key, sizeof cfg->api_key, "%s", v);
    if ((v = env_own("REPORTED_VERSION", buf, sizeof cfg->version)) && *v)
        snprintf(cfg->version, sizeof cfg->version, "%s", v);
    uint64_t x = cfg->max_body_bytes;
    env_uint("MAX_BODY_BYTES", 1024, (uint64_t)1 << 40, &x);
    cfg->max_body_bytes = (size_t)x;
    x = (uint64_t)cfg->max_connections;
    env_uint("MAX_CONNECTIONS", 1, 65536, &x);
    cfg->max_connections = (int)x;
    env_duration("HTTP_HEADER_TIMEOUT", &cfg->header_timeout_ns);
    env_duration("HTTP_BODY_TIMEOUT", &cfg->body_idle_ns);
    env_duration("HTTP_IDLE_TIMEOUT", &cfg->keepalive_idle_ns);
    env_duration("HTTP_WRITE_TIMEOUT", &cfg->write_stall_ns);
    env_duration("SHUTDOWN_GRACE", &cfg->shutdown_grace_ns);
    cfg->test_routes = (v = env_own("HTTP_TEST_ROUTES", buf, sizeof buf)) && !strcmp(v, "1");
}

static int parse_port(const char *s, size_t n, int *port) {
    /* Go's strconv.ParseInt(port, 10, 32), then 0..65535. */
    size_t i = 0;
    int neg = 0;
    if (i < n && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
    if (i == n || n - i > 10) return 0;
    long long v = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return 0;
        v = v * 10 + (s[i] - '0');
    }
    if (neg) v = -v;
    if (v < 0 || v > 65535) return 0;
    *port = (int)v;
    return 1;
}

void ll_parse_listen_addr(const char *value, char *host, size_t host_cap, int *port) {
    int def_port = 11434;
    const char *s = value, *sep = strstr(value, "://");
    if (sep) {
        if ((size_t)(sep - value) == 4 && !strncasecmp(value, "http", 4)) def_port = 80;
        else if ((size_t)(sep - value) == 5 && !strncasecmp(value, "https", 5)) def_port = 443;
        s = sep + 3;
    }
    size_t n = strcspn(s, "/");              /* the path part is ignored by the server */
    const char *h = NULL, *p = NULL;
    size_t hn = 0, pn = 0;
    int split = 0;                           /* net.SplitHostPort succeeded */
    if (n && s[0] == '[') {
        const char *rb = memchr(s, ']', n);
        if (rb && (size_t)(rb - s) + 1 < n && rb[1] == ':') {
            h = s + 1; hn = (size_t)(rb - s - 1);
            p = rb + 2; pn = n - (size_t)(rb - s) - 2;
            split = !memchr(p, ':', pn) && !memchr(h, '[', hn);
        }
    } else {
        const char *c = memchr(s, ':', n);
        if (c && !memchr(c + 1, ':', n - (size_t)(c - s) - 1)) {
            h = s; hn = (size_t)(c - s);
            p = c + 1; pn = n - hn - 1;
            split = 1;
        }
    }
    char tmp[256];
    int pt = def_port;
    if (split) {
        if (hn >= sizeof tmp) hn = sizeof tmp - 1;
        memcpy(tmp, h, hn);
        tmp[hn] = 0;
        if (!parse_port(p, pn, &pt)) {
            LL_WARN("invalid port '%.*s' in OLLAMA_HOST, using the default %d", (int)pn, p, def_port);
            pt = def_port;
        }
    } else {
        /* Not host:port: the whole thing is an address (brackets dropped) or a name. */
        const char *a = s, *b = s + n;
        while (a < b && *a == '[') a++;
        while (b > a && b[-1] == ']') b--;
        size_t an = (size_t)(b - a) < sizeof tmp ? (size_t)(b - a) : sizeof tmp - 1;
        memcpy(tmp, a, an);
        tmp[an] = 0;
        unsigned char ip[16];
        if (inet_pton(AF_INET, tmp, ip) == 1) inet_ntop(AF_INET, ip, tmp, sizeof tmp);
        else if (inet_pton(AF_INET6, tmp, ip) == 1) inet_ntop(AF_INET6, ip, tmp, sizeof tmp);
        else if (n == 0) snprintf(tmp, sizeof tmp, "127.0.0.1");
        else { memcpy(tmp, s, n < sizeof tmp ? n : sizeof tmp - 1); tmp[n < sizeof tmp ? n : sizeof tmp - 1] = 0; }
    }
    snprintf(host, host_cap, "%s", tmp);
    *port = pt;
}

/* ---- streams --------------------------------------------------------------------------------- */

ll_http_stream *ll_http_stream_new(ll_api_family family, size_t max_queue) {
    ll_http_stream *s = ll_calloc(1, sizeof *s);
    if (!s) return NULL;
    if (pthread_mutex_init(&s->mu, NULL) != 0) { ll_free(s); return NULL; }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (rc != 0) { pthread_mutex_destroy(&s->mu); ll_free(s); return NULL; }
    atomic_init(&s->refs, 1);
    atomic_init(&s->cancel, false);
    s->family = family;
    s->max_queue = max_queue;
    s->last_read_ns = ll_time_ns();
    return s;
}

ll_http_stream *ll_http_stream_ref(ll_http_stream *s) {
    atomic_fetch_add(&s->refs, 1);
    return s;
}

void ll_http_stream_unref(ll_http_stream *s) {
    if (!s || atomic_fetch_sub(&s->refs, 1) != 1) return;
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    ll_free(s->buf);
    ll_free(s);
}

void ll_http_stream_cancel(ll_http_stream *s) {
    atomic_store(&s->cancel, true);
    pthread_mutex_lock(&s->mu);
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

bool ll_http_stream_cancelled(const ll_http_stream *s) { return atomic_load(&s->cancel); }
const atomic_bool *ll_http_stream_cancel_flag(const ll_http_stream *s) { return &s->cancel; }

/* Append under s->mu. force: the end-of-stream terminator, allowed past the cap. */
static ll_status stream_append_locked(ll_http_stream *s, const char *p, size_t n, bool force) {
    if (s->ended || (!force && atomic_load(&s->cancel))) return LL_ERR_CANCELLED;
    if (s->streaming && !force && s->len > 0 && s->len + n > s->max_queue) {
        /* H49: the client reads slower than we write; it gets cancelled, not buffered. */
        atomic_store(&s->cancel, true);
        pthread_cond_broadcast(&s->cv);
        return LL_ERR_CANCELLED;
    }
    if (s->head > 0 && s->head + s->len + n > s->cap) {
        memmove(s->buf, s->buf + s->head, s->len);
        s->head = 0;
    }
    if (s->head + s->len + n > s->cap) {
        size_t need;
        if (!ll_add_size(s->len, n, &need)) return LL_ERR_NOMEM;
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
        char *nb = ll_realloc(s->buf, cap);
        if (!nb) return LL_ERR_NOMEM;
        s->buf = nb;
        s->cap = cap;
    }
    memcpy(s->buf + s->head + s->len, p, n);
    s->len += n;
    pthread_cond_broadcast(&s->cv);
    return LL_OK;
}

ll_status ll_http_stream_write(ll_http_stream *s, const char *p, size_t n) {
    pthread_mutex_lock(&s->mu);
    ll_status st = stream_append_locked(s, p, n, false);
    pthread_mutex_unlock(&s->mu);
    return st;
}

ll_status ll_http_stream_ndjson(ll_http_stream *s, const json_t *obj, int flags) {
    char *txt;
    size_t n;
    if (ll_json_dump(obj, flags | LL_JSON_NEWLINE, &txt, &n, NULL) != LL_OK) return LL_ERR_NOMEM;
    ll_status st = ll_http_stream_write(s, txt, n);
    ll_free(txt);
    return st;
}

/* "event: EV\ndata: JSON\n\n" built in one buffer, so an event is never split by a flush. */
static char *sse_event(const char *event, const json_t *data, int flags, size_t *n) {
    char *txt;
    size_t tn;
    if (ll_json_dump(data, flags & ~LL_JSON_NEWLINE, &txt, &tn, NULL) != LL_OK) return NULL;
    size_t en = event ? strlen(event) + 8 : 0, total = en + 6 + tn + 2;
    char *out = ll_malloc(total + 1);
    if (!out) { ll_free(txt); return NULL; }
    size_t k = 0;
    if (event) k += (size_t)sprintf(out, "event: %s\n", event);
    memcpy(out + k, "data: ", 6); k += 6;
    memcpy(out + k, txt, tn); k += tn;
    out[k++] = '\n';
    out[k++] = '\n';
    out[k] = 0;
    ll_free(txt);
    *n = k;
    return out;
}

ll_status ll_http_stream_sse(ll_http_stream *s, const char *event, const json_t *data, int flags) {
    size_t n;
    char *ev = sse_event(event, data, flags, &n);
    if (!ev) return LL_ERR_NOMEM;
    ll_status st = ll_http_stream_write(s, ev, n);
    ll_free(ev);
    return st;
}

ll_status ll_http_stream_sse_done(ll_http_stream *s) {
    static const char done[] = "data: [DONE]\n\n";
    return ll_http_stream_write(s, done, sizeof done - 1);
}

/* The terminator of a failed stream, in the family's shape (H51, §5 D6/D7). */
static char *stream_error_text(const ll_http_stream *s, const char *msg, size_t *n) {
    json_t *o = ll_http_error_body(s->family, 500, msg, true);
    if (!o) return NULL;
    char *txt = NULL;
    if (s->kind == LL_STREAM_NDJSON) {
        if (ll_json_dump(o, LL_JSON_NEWLINE, &txt, n, NULL) != LL_OK) txt = NULL;
    } else {
        txt = sse_event(s->family == LL_API_ANTHROPIC ? "error" : NULL, o, 0, n);
    }
    json_decref(o);
    return txt;
}

static ll_status stream_terminate_locked(ll_http_stream *s, const char *msg) {
    if (s->ended) return LL_ERR_CANCELLED;
    size_t n;
    char *txt = stream_error_text(s, msg, &n);
    ll_status st = txt ? stream_append_locked(s, txt, n, true) : LL_ERR_NOMEM;
    ll_free(txt);
    s->ended = true;
    pthread_cond_broadcast(&s->cv);
    return st;
}

ll_status ll_http_stream_error(ll_http_stream *s, const char *msg) {
    pthread_mutex_lock(&s->mu);
    ll_status st = stream_terminate_locked(s, msg);
    pthread_mutex_unlock(&s->mu);
    return st;
}

void ll_http_stream_end(ll_http_stream *s) {
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->ended = true;
    s->producer = false;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    ll_http_stream_unref(s);
}

long ll_http_stream_read(ll_http_stream *s, char *buf, size_t max, bool *eof) {
    *eof = false;
    pthread_mutex_lock(&s->mu);
    s->in_reader = true;
    while (s->len == 0 && !s->ended && !atomic_load(&s->cancel)) {
        /* Bounded waits: a wake-up lost to a bug costs a quarter second, not a hung thread. */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += 250000000;
        if (ts.tv_nsec >= 1000000000) { ts.tv_sec++; ts.tv_nsec -= 1000000000; }
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    long r;
    if (s->len > 0) {
        size_t k = s->len < max ? s->len : max;
        memcpy(buf, s->buf + s->head, k);
        s->head += k;
        s->len -= k;
        if (s->len == 0) s->head = 0;
        r = (long)k;
    } else if (s->ended) {
        *eof = true;
        r = 0;
    } else {
        r = -1;   /* cancelled with nothing left to say */
    }
    s->in_reader = false;
    s->last_read_ns = ll_time_ns();
    pthread_mutex_unlock(&s->mu);
    return r;
}

ll_http_stream *ll_http_resp_stream(ll_http_resp *resp, ll_stream_kind kind) {
    if (resp->is_stream || !resp->call) return NULL;
    ll_http_stream *s = resp->call;
    ll_http_resp_clear_body(resp);
    resp->status = 200;
    resp->is_stream = true;
    resp->content_type = kind == LL_STREAM_NDJSON ? "application/x-ndjson" : "text/event-stream";
    if (kind == LL_STREAM_SSE && resp->family == LL_API_ANTHROPIC)
        ll_http_resp_header(resp, "Cache-Control", "no-cache");   /* §3.4 */
    pthread_mutex_lock(&s->mu);
    s->kind = kind;
    s->family = resp->family;
    s->streaming = true;
    s->producer = true;
    pthread_mutex_unlock(&s->mu);
    return ll_http_stream_ref(s);
}

/* ---- server state ---------------------------------------------------------------------------- */

enum { CONN_WAIT_HEADERS, CONN_BODY, CONN_BUSY };

/* One accepted connection, for the watchdog. Guarded by the server's reg_mu. */
struct http_conn {
    struct http_conn *prev, *next;
    int       fd;
    int       state;
    uint64_t  since_ns;       /* WAIT_HEADERS: since when; BODY: last body bytes */
    bool      first;          /* no request seen yet: the 10 s header budget applies */
    int       shut;           /* 0, 1 = 408 sent + write side shut, 2 = fully shut */
    uint64_t  shut_ns;
    bool      overflow;       /* past max_connections: answered 503 at accept (H5) */
    ll_http_stream *call;     /* current request's call (one reference), or NULL */
};

struct ll_http_server {
    ll_http_config     cfg;
    ll_router         *router;
    struct MHD_Daemon *mhd;
    int                listen_fd;
    char               addr[300];
    int                port;
    pthread_mutex_t    reg_mu;
    struct http_conn  *conns;       /* reg_mu */
    int                n_conns;     /* reg_mu */
    pthread_t          watchdog;
    bool               watchdog_started;
    atomic_bool        watchdog_stop;
    atomic_bool        shutting_down;
    bool               stopped;
};

/* Per request: libmicrohttpd's *con_cls. Only the connection's thread touches it. */
struct http_request {
    ll_http_req      req;
    ll_http_resp     resp;
    ll_http_server  *srv;
    struct http_conn *conn;
    char            *uri;           /* copy of the request target */
    bool             headers_done;
    bool             decided;       /* resp is final before the body (router said so) */
    bool             queued;        /* a response went to libmicrohttpd */
    bool             sink;          /* the body goes to the route's sink */
    uint64_t         body_seen;
    uint64_t         start_ns;
    bool             lingering;     /* answered mid-body (raw); draining before the close */
    uint64_t         linger_ns;
};

static void conn_set_state(ll_http_server *srv, struct http_conn *c, int state) {
    if (!c) return;
    pthread_mutex_lock(&srv->reg_mu);
    c->state = state;
    c->since_ns = ll_time_ns();
    pthread_mutex_unlock(&srv->reg_mu);
}

/* ---- libmicrohttpd callbacks ----------------------------------------------------------------- */

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c) {
    ll_http_server *srv = cls;
    struct http_request *hr = ll_calloc(1, sizeof *hr);
    if (!hr) return NULL;
    hr->srv = srv;
    hr->start_ns = ll_time_ns();
    hr->uri = ll_str_dup(ll_str_c(uri ? uri : ""));
    hr->req.call = ll_http_stream_new(LL_API_NATIVE, srv->cfg.max_stream_buffer);
    if (!hr->uri || !hr->req.call) {
        ll_free(hr->uri);
        if (hr->req.call) ll_http_stream_unref(hr->req.call);
        ll_free(hr);
        return NULL;
    }
    return hr;
}

static void request_free(struct http_request *hr) {
    if (!hr) return;
    ll_http_req_release(&hr->req);
    ll_http_resp_release(&hr->resp);
    ll_free(hr->uri);
    ll_free(hr);
}

static ssize_t body_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    bool eof;
    long r = ll_http_stream_read(cls, buf, max, &eof);
    if (r > 0) return (ssize_t)r;
    return eof ? MHD_CONTENT_READER_END_OF_STREAM : MHD_CONTENT_READER_END_WITH_ERROR;
}

static void body_reader_free(void *cls) {
    ll_http_stream *s = cls;
    pthread_mutex_lock(&s->mu);
    bool cut = !s->ended || s->len > 0;   /* the connection died before the body was out */
    pthread_mutex_unlock(&s->mu);
    if (cut) ll_http_stream_cancel(s);
    ll_http_stream_unref(s);
}

/* Hand hr->resp to libmicrohttpd. */
static enum MHD_Result queue_resp(struct http_request *hr, struct MHD_Connection *c) {
    ll_http_resp *resp = &hr->resp;
    ll_http_stream *call = hr->req.call;
    struct MHD_Response *r = NULL;
    if (resp->status == 0) ll_http_resp_error(resp, 500, "internal error: no response");
    if (resp->is_stream) {
        r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, body_reader,
                                              ll_http_stream_ref(call), body_reader_free);
    } else if (resp->body_n > 0) {
        /* The body moves into the call's queue: the reader then measures write progress. */
        pthread_mutex_lock(&call->mu);
        ll_free(call->buf);
        call->buf = resp->body;
        call->cap = resp->body_n + 1;
        call->head = 0;
        call->len = resp->body_n;
        call->ended = true;
        pthread_mutex_unlock(&call->mu);
        resp->body = NULL;
        r = MHD_create_response_from_callback(resp->body_n, 32768, body_reader,
                                              ll_http_stream_ref(call), body_reader_free);
    } else {
        r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    }
    if (!r) return MHD_NO;
    if (resp->content_type) MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, resp->content_type);
    for (size_t i = 0; i < resp->n_hdrs; i++) MHD_add_response_header(r, resp->hdrs[i].name, resp->hdrs[i].value);
    if (resp->close) MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    pthread_mutex_lock(&call->mu);
    call->last_read_ns = ll_time_ns();
    pthread_mutex_unlock(&call->mu);
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)resp->status, r);
    MHD_destroy_response(r);
    hr->queued = true;
    conn_set_state(hr->srv, hr->conn, CONN_BUSY);
    return ok;
}

/* An answer sent before the body is read: the connection closes after it. */
static enum MHD_Result reject(struct http_request *hr, struct MHD_Connection *c, int status, const char *msg) {
    ll_http_resp_release(&hr->resp);
    if (msg) ll_http_resp_error(&hr->resp, status, "%s", msg);
    else ll_http_resp_empty(&hr->resp, status);
    hr->resp.close = true;
    return queue_resp(hr, c);
}

/* A NUL inside a field (H12, H28) hides from C strings; the sized iterator reveals it. */
static enum MHD_Result find_nul(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size,
                                const char *value, size_t value_size) {
    bool *bad = cls;
    if ((key && strlen(key) != key_size) || (value && strlen(value) != value_size)) *bad = true;
    return MHD_YES;
}

static enum MHD_Result collect_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
    ll_http_req *req = cls;
    if (req->n_hdrs == req->cap_hdrs) {
        size_t cap = req->cap_hdrs ? req->cap_hdrs * 2 : 16;
        if (cap > HEADER_FIELDS_MAX * 2) { req->n_hdrs++; return MHD_YES; }   /* counted only */
        struct ll_http_hdr *h = ll_realloc(req->hdrs, cap * sizeof *h);
        if (!h) return MHD_NO;
        req->hdrs = h;
        req->cap_hdrs = cap;
    }
    req->hdrs[req->n_hdrs++] = (struct ll_http_hdr){ key ? key : "", value ? value : "" };
    return MHD_YES;
}

static bool is_tchar(unsigned char c) {
    return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* RFC 9112 framing checks libmicrohttpd 0.9.75 leaves to us (H9-H12). Returns the status to
 * answer with (and a message), or 0; *body_len gets Content-Length or -1 for chunked/none. */
static int check_framing(const ll_http_req *req, int64_t *body_len, bool *chunked, const char **msg) {
    size_t bytes = 0;
    *body_len = -1;
    *chunked = false;
    if (req->n_hdrs > HEADER_FIELDS_MAX) { *msg = "too many header fields (limit 100)"; return 431; }
    const char *cl = NULL, *te = NULL;
    int n_te = 0;
    for (size_t i = 0; i < req->n_hdrs; i++) {
        const char *k = req->hdrs[i].name, *v = req->hdrs[i].value;
        bytes += strlen(k) + strlen(v) + 4;
        if (!*k) { *msg = "empty header name"; return 400; }
        for (const unsigned char *p = (const unsigned char *)k; *p; p++)
            if (!is_tchar(*p)) { *msg = "invalid character in a header name"; return 400; }
        for (const unsigned char *p = (const unsigned char *)v; *p; p++)
            if ((*p < 0x20 && *p != '\t') || *p == 0x7F) { *msg = "invalid character in a header value"; return 400; }
        if (!strcasecmp(k, "Content-Length")) {
            if (cl && strcmp(cl, v)) { *msg = "conflicting Content-Length headers"; return 400; }
            cl = v;
        } else if (!strcasecmp(k, "Transfer-Encoding")) {
            te = v;
            n_te++;
        }
    }
    if (bytes > HEADER_BYTES_MAX) { *msg = "request header section too large (limit 64 KiB)"; return 431; }
    if (cl && te) { *msg = "both Content-Length and Transfer-Encoding"; return 400; }
    if (cl) {
        size_t n = strlen(cl);
        if (n == 0 || n > 19 || strspn(cl, "0123456789") != n) { *msg = "invalid Content-Length"; return 400; }
        errno = 0;
        unsigned long long v = strtoull(cl, NULL, 10);
        if (errno || v > (unsigned long long)INT64_MAX) { *msg = "invalid Content-Length"; return 400; }
        *body_len = (int64_t)v;
    }
    if (te) {
        if (n_te > 1) { *msg = "more than one Transfer-Encoding header"; return 400; }
        /* Codings in order; only "chunked", once, last, is understood. */
        int n_codings = 0, chunked_at = -1, n_chunked = 0;
        const char *p = te;
        while (*p) {
            while (*p == ' ' || *p == '\t' || *p == ',') p++;
            if (!*p) break;
            const char *e = p;
            while (*e && *e != ',') e++;
            const char *t = e;
            while (t > p && (t[-1] == ' ' || t[-1] == '\t')) t--;
            if ((size_t)(t - p) == 7 && !strncasecmp(p, "chunked", 7)) { chunked_at = n_codings; n_chunked++; }
            n_codings++;
            p = e;
        }
        if (n_chunked > 1 || (n_chunked == 1 && chunked_at != n_codings - 1)) {
            *msg = "Transfer-Encoding must end with a single chunked";
            return 400;
        }
        if (n_chunked == 0 || n_codings > 1) { *msg = "unsupported transfer coding"; return 501; }
        *chunked = true;
    }
    return 0;
}

static enum MHD_Result on_headers(ll_http_server *srv, struct MHD_Connection *c, struct http_request *hr,
                                  const char *method, const char *version) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    hr->conn = ci ? ci->socket_context : NULL;
    if (hr->conn) {
        pthread_mutex_lock(&srv->reg_mu);
        if (hr->conn->overflow) { pthread_mutex_unlock(&srv->reg_mu); return MHD_NO; }
        hr->conn->state = CONN_BODY;
        hr->conn->since_ns = ll_time_ns();
        hr->conn->first = false;
        if (hr->conn->call) ll_http_stream_unref(hr->conn->call);
        hr->conn->call = ll_http_stream_ref(hr->req.call);
        pthread_mutex_unlock(&srv->reg_mu);
    }
    ll_http_req *req = &hr->req;
    req->method = method;
    req->version = version;
    req->raw_uri = hr->uri;
    const char *q = strchr(hr->uri, '?');
    req->path = (ll_str){ hr->uri, q ? (size_t)(q - hr->uri) : strlen(hr->uri) };
    req->query = q ? ll_str_c(q + 1) : (ll_str){ "", 0 };
    hr->resp.family = LL_API_NATIVE;

    if (atomic_load(&srv->shutting_down)) return reject(hr, c, 503, "server shutting down");
    if (strcmp(version, MHD_HTTP_VERSION_1_1) && strcmp(version, MHD_HTTP_VERSION_1_0))
        return reject(hr, c, 505, "HTTP version not supported");                  /* H16 */
    if (strlen(hr->uri) > REQUEST_LINE_MAX) return reject(hr, c, 414, "request target longer than 8 KiB");
    if (MHD_get_connection_values(c, MHD_HEADER_KIND, collect_header, req) < 0 ||
        (req->n_hdrs && !req->hdrs))
        return reject(hr, c, 500, "out of memory");
    int64_t body_len;
    bool chunked;
    const char *msg = NULL;
    bool nul = false;
    MHD_get_connection_values_n(c, MHD_HEADER_KIND, find_nul, &nul);
    if (nul) return reject(hr, c, 400, "NUL byte in a header field");
    int bad = check_framing(req, &body_len, &chunked, &msg);
    if (bad) return reject(hr, c, bad, msg);
    if (req->n_hdrs > req->cap_hdrs) req->n_hdrs = req->cap_hdrs;

    ll_route_decision d = ll_router_prepare(srv->router, req, &hr->resp);
    bool has_body = chunked || body_len > 0;
    if (d == LL_ROUTE_DECIDED) {
        hr->decided = true;
        /* Answered without the body: read and drop a small one so the connection stays
         * usable (as Go's server does); a large one is not worth reading. */
        if (has_body && (chunked || (uint64_t)body_len > srv->cfg.max_body_bytes)) {
            hr->resp.close = true;
            return queue_resp(hr, c);
        }
        return MHD_YES;
    }
    void *sctx;
    ll_body_fn sink = ll_router_body_sink(req, &sctx);
    if (sink) {
        hr->sink = true;
        if (!sink(req, &hr->resp, NULL, 0, sctx)) {
            hr->resp.close = has_body;
            return queue_resp(hr, c);
        }
        return MHD_YES;
    }
    if (body_len >= 0 && (uint64_t)body_len > srv->cfg.max_body_bytes) {
        /* H14, H15: before reading a byte, and before any "100 Continue". */
        char m[128];
        snprintf(m, sizeof m, "request body too large: %" PRId64 " bytes, limit %zu", body_len,
                 srv->cfg.max_body_bytes);
        hr->resp.family = ll_http_req_family(req);
        return reject(hr, c, 413, m);
    }
    if (body_len > 0) {
        req->body = ll_malloc((size_t)body_len + 1);
        if (!req->body) return reject(hr, c, 500, "out of memory for the request body");
        req->body_cap = (size_t)body_len + 1;
        req->body[0] = 0;
    }
    return MHD_YES;
}

/* libmicrohttpd 0.9.75 accepts a response only before the body or after all of it, so an
 * answer in the middle of a body (413 for a chunked body past the cap, a failing upload sink)
 * is written to the socket here, on the connection's own thread while libmicrohttpd is only
 * reading. The write side is then shut (the client sees the answer and EOF) and the body is
 * drained for up to 1 MiB or 2 s, so our close does not turn into a reset that would destroy
 * the answer before the client reads it (the lingering close of Go's server). */
static enum MHD_Result answer_mid_body(struct http_request *hr) {
    ll_http_resp *resp = &hr->resp;
    struct http_conn *conn = hr->conn;
    if (!conn || conn->fd < 0) return MHD_NO;
    const char *reason = MHD_get_reason_phrase_for((unsigned)resp->status);
    char head[2048];
    int n = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\n", resp->status, reason ? reason : "");
    if (resp->content_type)
        n += snprintf(head + n, sizeof head - (size_t)n, "Content-Type: %s\r\n", resp->content_type);
    for (size_t i = 0; i < resp->n_hdrs && n < (int)sizeof head - 256; i++)
        n += snprintf(head + n, sizeof head - (size_t)n, "%.200s: %.800s\r\n", resp->hdrs[i].name, resp->hdrs[i].value);
    n += snprintf(head + n, sizeof head - (size_t)n, "Connection: close\r\nContent-Length: %zu\r\n\r\n",
                  resp->is_stream ? (size_t)0 : resp->body_n);
    if (n > 0 && n < (int)sizeof head) (void)!send(conn->fd, head, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (resp->body_n && !resp->is_stream) (void)!send(conn->fd, resp->body, resp->body_n, MSG_NOSIGNAL | MSG_DONTWAIT);
    pthread_mutex_lock(&hr->srv->reg_mu);
    shutdown(conn->fd, SHUT_WR);
    conn->shut = 1;
    conn->shut_ns = ll_time_ns();
    pthread_mutex_unlock(&hr->srv->reg_mu);
    hr->lingering = true;
    hr->linger_ns = ll_time_ns();
    hr->queued = true;
    ll_http_stream_cancel(hr->req.call);
    return MHD_YES;
}

static enum MHD_Result on_body(ll_http_server *srv, struct MHD_Connection *c, struct http_request *hr,
                               const char *data, size_t n) {
    if (hr->conn) {
        pthread_mutex_lock(&srv->reg_mu);
        hr->conn->since_ns = ll_time_ns();
        pthread_mutex_unlock(&srv->reg_mu);
    }
    hr->body_seen += n;
    if (hr->lingering)
        return hr->body_seen > srv->cfg.max_body_bytes + (1u << 20) ||
               ll_time_ns() - hr->linger_ns > 2000000000ULL ? MHD_NO : MHD_YES;
    if (hr->queued) return MHD_YES;
    ll_http_req *req = &hr->req;
    if (hr->sink) {
        void *sctx;
        ll_body_fn sink = ll_router_body_sink(req, &sctx);
        if (!sink(req, &hr->resp, data, n, sctx)) {
            if (hr->resp.status == 0) ll_http_resp_error(&hr->resp, 500, "upload failed");
            return answer_mid_body(hr);
        }
        return MHD_YES;
    }
    if (hr->body_seen > srv->cfg.max_body_bytes) {
        if (!hr->decided) {
            char m[128];
            snprintf(m, sizeof m, "request body too large: more than %zu bytes", srv->cfg.max_body_bytes);
            ll_http_resp_release(&hr->resp);
            hr->resp.family = ll_http_req_family(req);
            ll_http_resp_error(&hr->resp, 413, "%s", m);                           /* H15 */
        }
        return answer_mid_body(hr);
    }
    if (hr->decided) return MHD_YES;   /* read and dropped */
    if (req->body_n + n + 1 > req->body_cap) {
        size_t cap = req->body_cap ? req->body_cap : 4096;
        while (cap < req->body_n + n + 1) cap *= 2;
        if (cap > srv->cfg.max_body_bytes + 1) cap = srv->cfg.max_body_bytes + 1;
        char *nb = ll_realloc(req->body, cap);
        if (!nb) return reject(hr, c, 500, "out of memory for the request body");
        req->body = nb;
        req->body_cap = cap;
    }
    memcpy(req->body + req->body_n, data, n);
    req->body_n += n;
    req->body[req->body_n] = 0;
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
    ll_http_server *srv = cls;
    struct http_request *hr = *con_cls;
    if (!hr) {
        hr = on_uri(srv, url, c);
        if (!hr) return MHD_NO;
        *con_cls = hr;
    }
    if (!hr->headers_done) {
        hr->headers_done = true;
        return on_headers(srv, c, hr, method, version);
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        return on_body(srv, c, hr, upload_data, n);
    }
    if (hr->lingering) return MHD_NO;   /* answered mid-body; the body has ended: close */
    if (hr->queued) return MHD_YES;
    conn_set_state(srv, hr->conn, CONN_BUSY);
    if (!hr->decided) ll_router_run(srv->router, &hr->req, &hr->resp);
    return queue_resp(hr, c);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    ll_http_server *srv = cls;
    struct http_request *hr = *con_cls;
    *con_cls = NULL;
    if (!hr) return;
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK) ll_http_stream_cancel(hr->req.call);
    if (hr->headers_done && hr->req.method) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        char ip[INET6_ADDRSTRLEN] = "?";
        if (ci && ci->client_addr) {
            const struct sockaddr *sa = ci->client_addr;
            if (sa->sa_family == AF_INET) inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, ip, sizeof ip);
            else if (sa->sa_family == AF_INET6) inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, ip, sizeof ip);
        }
        char dur[32];
        uint64_t ns = ll_time_ns() - hr->start_ns;   /* gin prints µs; the log is ASCII */
        if (ns < 1000000) snprintf(dur, sizeof dur, "%.3fus", (double)ns / 1e3);
        else if (ns < 1000000000) snprintf(dur, sizeof dur, "%.6fms", (double)ns / 1e6);
        else snprintf(dur, sizeof dur, "%.6fs", (double)ns / 1e9);
        /* gin's access log line, which Ollama prints for every request. */
        LL_INFO("[GIN] | %3d | %13s | %15s | %-7s \"%.*s\"%s", hr->resp.status, dur, ip, hr->req.method,
                (int)(hr->req.path.n > 200 ? 200 : hr->req.path.n), hr->req.path.p,
                toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (cut off)");
    }
    if (hr->conn) {
        pthread_mutex_lock(&srv->reg_mu);
        hr->conn->state = CONN_WAIT_HEADERS;
        hr->conn->since_ns = ll_time_ns();
        if (hr->conn->call) ll_http_stream_unref(hr->conn->call);
        hr->conn->call = NULL;
        pthread_mutex_unlock(&srv->reg_mu);
    }
    request_free(hr);
}

static void send_raw(int fd, const char *status_line, const char *extra, const char *json) {
    char buf[512];
    int n = snprintf(buf, sizeof buf,
                     "HTTP/1.1 %s\r\nContent-Type: application/json; charset=utf-8\r\n%s"
                     "Connection: close\r\nContent-Length: %zu\r\n\r\n%s",
                     status_line, extra, strlen(json), json);
    if (n > 0) (void)!send(fd, buf, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
    ll_http_server *srv = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        struct http_conn *hc = ll_calloc(1, sizeof *hc);
        *socket_context = hc;
        if (!hc) return;
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        hc->fd = ci ? ci->connect_fd : -1;
        hc->first = true;
        hc->since_ns = ll_time_ns();
        pthread_mutex_lock(&srv->reg_mu);
        hc->next = srv->conns;
        if (srv->conns) srv->conns->prev = hc;
        srv->conns = hc;
        srv->n_conns++;
        if (srv->n_conns > srv->cfg.max_connections && hc->fd >= 0) {
            /* H5: accept, say 503 with Retry-After, close. Never blocks the accept loop. */
            hc->overflow = true;
            send_raw(hc->fd, "503 Service Unavailable", "Retry-After: 1\r\n",
                     "{\"error\":\"server busy: too many open connections\"}");
            shutdown(hc->fd, SHUT_WR);
            hc->shut = 1;
            hc->shut_ns = ll_time_ns();
        }
        pthread_mutex_unlock(&srv->reg_mu);
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        struct http_conn *hc = *socket_context;
        *socket_context = NULL;
        if (!hc) return;
        pthread_mutex_lock(&srv->reg_mu);
        if (hc->prev) hc->prev->next = hc->next;
        else srv->conns = hc->next;
        if (hc->next) hc->next->prev = hc->prev;
        srv->n_conns--;
        if (hc->call) ll_http_stream_unref(hc->call);
        pthread_mutex_unlock(&srv->reg_mu);
        ll_free(hc);
    }
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
    char msg[256];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = 0;
    LL_DEBUG("libmicrohttpd: %s", msg);
}

/* ---- watchdog -------------------------------------------------------------------------------- */

/* True when the peer has closed or reset the connection (H48). Peeks; consumes nothing. */
static bool peer_gone(int fd) {
    char b;
    ssize_t r = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (r == 0) return true;
    if (r < 0) return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
    return false;
}

/* Time since t; 0 when another thread stamped t after we read the clock (no wrap-around). */
static uint64_t since(uint64_t now, uint64_t t) { return now > t ? now - t : 0; }

static void watchdog_tick(ll_http_server *srv) {
    uint64_t now = ll_time_ns();
    const ll_http_config *cfg = &srv->cfg;
    pthread_mutex_lock(&srv->reg_mu);
    for (struct http_conn *c = srv->conns; c; c = c->next) {
        if (c->fd < 0) continue;
        if (c->shut == 1 && since(now, c->shut_ns) > 2000000000ULL) {
            shutdown(c->fd, SHUT_RDWR);   /* the client had 2 s to take its last answer */
            c->shut = 2;
            continue;
        }
        if (c->shut) continue;
        if (c->state == CONN_WAIT_HEADERS) {
            uint64_t limit = c->first ? cfg->header_timeout_ns : cfg->keepalive_idle_ns;
            if (since(now, c->since_ns) > limit) {
                /* H3 (slow headers) and H6 (idle keep-alive): close without a word. */
                shutdown(c->fd, SHUT_RDWR);
                c->shut = 2;
            }
        } else if (c->state == CONN_BODY) {
            if (since(now, c->since_ns) > cfg->body_idle_ns) {
                /* H4. libmicrohttpd is reading, not writing: the 408 cannot interleave. */
                send_raw(c->fd, "408 Request Timeout", "", "{\"error\":\"request body timed out\"}");
                shutdown(c->fd, SHUT_WR);
                c->shut = 1;
                c->shut_ns = now;
                if (c->call) ll_http_stream_cancel(c->call);
            }
        } else if (c->call) {
            ll_http_stream *s = c->call;
            if (!atomic_load(&s->cancel) && peer_gone(c->fd)) {
                LL_INFO("http: client went away; cancelling its request");
                ll_http_stream_cancel(s);
            }
            pthread_mutex_lock(&s->mu);
            bool stalled = !s->in_reader && s->len > 0 && since(now, s->last_read_ns) > cfg->write_stall_ns;
            pthread_mutex_unlock(&s->mu);
            if (stalled) {
                LL_INFO("http: client stopped reading for %" PRIu64 " s; closing", (uint64_t)(cfg->write_stall_ns / 1000000000ULL));
                ll_http_stream_cancel(s);
                shutdown(c->fd, SHUT_RDWR);
                c->shut = 2;
            }
        }
    }
    pthread_mutex_unlock(&srv->reg_mu);
}

static void *watchdog_main(void *arg) {
    ll_http_server *srv = arg;
    while (!atomic_load(&srv->watchdog_stop)) {
        watchdog_tick(srv);
        struct timespec ts = { 0, (long)WATCHDOG_TICK_NS };
        nanosleep(&ts, NULL);
    }
    return NULL;
}

/* ---- listening -------------------------------------------------------------------------------- */

static void join_host_port(char *out, size_t cap, const char *host, int port) {
    if (strchr(host, ':')) snprintf(out, cap, "[%s]:%d", host, port);
    else snprintf(out, cap, "%s:%d", host, port);
}

static bool sockaddr_loopback(const struct sockaddr_storage *ss) {
    if (ss->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
    if (ss->ss_family == AF_INET6) {
        const unsigned char *a = ((const struct sockaddr_in6 *)ss)->sin6_addr.s6_addr;
        static const unsigned char one[16] = { [15] = 1 };
        if (!memcmp(a, one, 16)) return true;
        return !memcmp(a, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) && a[12] == 127;
    }
    return false;
}

/* Bind and listen ourselves (rather than through libmicrohttpd) to report R19's message and
 * to learn the bound address: the Host check depends on it being loopback. */
static ll_status listen_open(ll_http_server *srv, ll_error *err) {
    const ll_http_config *cfg = &srv->cfg;
    char shown[300], port_s[16];
    join_host_port(shown, sizeof shown, cfg->listen_host, cfg->listen_port);
    snprintf(port_s, sizeof port_s, "%d", cfg->listen_port);
    struct addrinfo hints = { 0 }, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int gai = getaddrinfo(cfg->listen_host[0] ? cfg->listen_host : NULL, port_s, &hints, &res);
    if (gai != 0) return ll_fail(err, LL_ERR_IO, "listen %s: %s", shown, gai_strerror(gai));
    /* All interfaces: prefer one dual-stack IPv6 socket, as Go's net.Listen(":port") does. */
    if (!cfg->listen_host[0]) {
        struct addrinfo **pp = &res;
        for (struct addrinfo *a = res, *prev = NULL; a; prev = a, a = a->ai_next)
            if (a->ai_family == AF_INET6 && prev) {
                prev->ai_next = a->ai_next;
                a->ai_next = *pp;
                *pp = a;
                break;
            }
    }
    int fd = -1, first_errno = 0;
    for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) { if (!first_errno) first_errno = errno; continue; }
        int one = 1, zero = 0;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (a->ai_family == AF_INET6 && !cfg->listen_host[0])
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
        if (bind(fd, a->ai_addr, a->ai_addrlen) != 0 || listen(fd, 1024) != 0) {
            if (!first_errno) first_errno = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        char why[128];
        snprintf(why, sizeof why, "%s", strerror(first_errno ? first_errno : EINVAL));
        why[0] = (char)tolower((unsigned char)why[0]);   /* Go's wording: "address already in use" */
        return ll_fail(err, LL_ERR_IO, "listen %s: %s", shown, why);
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char ip[INET6_ADDRSTRLEN] = "";
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET) {
            inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, ip, sizeof ip);
            srv->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, ip, sizeof ip);
            srv->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        }
        ll_router_set_loopback(srv->router, sockaddr_loopback(&ss));
    }
    join_host_port(srv->addr, sizeof srv->addr, ip[0] ? ip : cfg->listen_host, srv->port);
    srv->listen_fd = fd;
    return LL_OK;
}

/* ---- server lifecycle -------------------------------------------------------------------------- */

ll_status ll_http_server_start(ll_http_server **out, const ll_http_config *cfg, ll_router *router, ll_error *err) {
    *out = NULL;
    ll_http_server *srv = ll_calloc(1, sizeof *srv);
    if (!srv) return ll_fail(err, LL_ERR_NOMEM, "out of memory starting the server");
    srv->cfg = *cfg;
    srv->router = router;
    srv->listen_fd = -1;
    atomic_init(&srv->watchdog_stop, false);
    atomic_init(&srv->shutting_down, false);
    if (pthread_mutex_init(&srv->reg_mu, NULL) != 0) { ll_free(srv); return ll_fail(err, LL_ERR_NOMEM, "mutex"); }
    ll_status st = listen_open(srv, err);
    if (st != LL_OK) goto fail;
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
                     MHD_USE_ITC | MHD_USE_ERROR_LOG;
    srv->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, srv,
        MHD_OPTION_LISTEN_SOCKET, (MHD_socket)srv->listen_fd,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)(cfg->max_connections + OVERFLOW_HEADROOM),
        MHD_OPTION_CONNECTION_TIMEOUT, 0u,
        /* request line 8 KiB + headers 64 KiB must fit before we can answer 414/431 ourselves */
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(160 * 1024),
        MHD_OPTION_URI_LOG_CALLBACK, on_uri, srv,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv,
        MHD_OPTION_STRICT_FOR_CLIENT, 1,
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, srv,
        MHD_OPTION_END);
    if (!srv->mhd) {
        st = ll_fail(err, LL_ERR_IO, "listen %s: libmicrohttpd could not start", srv->addr);
        goto fail;
    }
    if (pthread_create(&srv->watchdog, NULL, watchdog_main, srv) != 0) {
        st = ll_fail(err, LL_ERR_NOMEM, "could not start the connection watchdog thread");
        goto fail;
    }
    srv->watchdog_started = true;
    *out = srv;
    return LL_OK;
fail:
    if (srv->mhd) MHD_stop_daemon(srv->mhd);
    if (srv->listen_fd >= 0) close(srv->listen_fd);
    pthread_mutex_destroy(&srv->reg_mu);
    ll_free(srv);
    return st;
}

const char *ll_http_server_addr(const ll_http_server *s) { return s->addr; }
int ll_http_server_port(const ll_http_server *s) { return s->port; }

static int count_busy(ll_http_server *srv) {
    int n = 0;
    pthread_mutex_lock(&srv->reg_mu);
    for (struct http_conn *c = srv->conns; c; c = c->next)
        if (c->state != CONN_WAIT_HEADERS && !c->overflow) n++;
    pthread_mutex_unlock(&srv->reg_mu);
    return n;
}

static void sleep_ms(long ms) {
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

void ll_http_server_shutdown(ll_http_server *srv) {
    if (!srv || srv->stopped) return;
    atomic_store(&srv->shutting_down, true);
    /* R12: stop accepting first; the listening socket is ours to close. */
    MHD_socket lfd = MHD_quiesce_daemon(srv->mhd);
    if (lfd != MHD_INVALID_SOCKET) close(lfd);
    srv->listen_fd = -1;
    uint64_t deadline = ll_time_ns() + srv->cfg.shutdown_grace_ns;
    int busy;
    while ((busy = count_busy(srv)) > 0 && ll_time_ns() < deadline) sleep_ms(20);
    if (busy > 0) {
        LL_WARN("shutting down: %d request%s still running after the grace period; ending them",
                busy, busy == 1 ? "" : "s");
        pthread_mutex_lock(&srv->reg_mu);
        for (struct http_conn *c = srv->conns; c; c = c->next) {
            if (!c->call) continue;
            ll_http_stream *s = c->call;
            pthread_mutex_lock(&s->mu);
            if (s->streaming && !s->ended) stream_terminate_locked(s, "server shutting down");
            pthread_mutex_unlock(&s->mu);
            ll_http_stream_cancel(s);
        }
        pthread_mutex_unlock(&srv->reg_mu);
        uint64_t last = ll_time_ns() + 3000000000ULL;
        while (count_busy(srv) > 0 && ll_time_ns() < last) sleep_ms(20);
    }
    atomic_store(&srv->watchdog_stop, true);
    if (srv->watchdog_started) pthread_join(srv->watchdog, NULL);
    srv->watchdog_started = false;
    MHD_stop_daemon(srv->mhd);   /* closes idle keep-alive connections, joins their threads */
    srv->mhd = NULL;
    srv->stopped = true;
}

void ll_http_server_free(ll_http_server *srv) {
    if (!srv) return;
    ll_http_server_shutdown(srv);
    pthread_mutex_destroy(&srv->reg_mu);
    ll_free(srv);
}
