/* server/http_internal: the structures behind http.h, shared by http.c (libmicrohttpd glue,
 * streams, watchdog), router.c (routing, Host/Origin checks, responses) and their tests.
 * Handlers use http.h only. */
#ifndef LL_SERVER_HTTP_INTERNAL_H
#define LL_SERVER_HTTP_INTERNAL_H

#include "server/http.h"

#include <pthread.h>

/* ---- streams -------------------------------------------------------------------------------
 * Every request has one ll_http_stream ("call"): it carries the cancel flag from the first
 * header on, and, once a response body exists, the byte queue the connection thread drains.
 * Non-streamed bodies go through the same queue (filled at once and ended) so the watchdog
 * measures write progress the same way for both. References: the request, the connection entry
 * of the watchdog, libmicrohttpd's response, and a producer each hold one. */
struct ll_http_stream {
    pthread_mutex_t mu;
    pthread_cond_t  cv;          /* signalled on data, end and cancel */
    atomic_int      refs;
    atomic_bool     cancel;      /* client gone, stall, overflow or shutdown */
    ll_stream_kind  kind;
    ll_api_family   family;
    bool            streaming;   /* started by ll_http_resp_stream (mu) */
    bool            ended;       /* no more bytes will be queued (mu) */
    bool            producer;    /* the producer's reference is still out (mu) */
    char           *buf;         /* queued bytes [head, head + len) (mu) */
    size_t          head, len, cap;
    size_t          max_queue;   /* H49 cap for streamed bodies */
    bool            in_reader;   /* the connection thread waits in the reader (mu) */
    uint64_t        last_read_ns;/* last time the connection thread took bytes (mu) */
};

ll_http_stream *ll_http_stream_new(ll_api_family family, size_t max_queue);
/* Raise the cancel flag and wake the reader. */
void ll_http_stream_cancel(ll_http_stream *s);
/* The connection side's read: copies up to max bytes; 0 with *eof when ended, -1 when
 * cancelled with nothing left to send. Waits (bounded ticks) while the queue is empty. */
long ll_http_stream_read(ll_http_stream *s, char *buf, size_t max, bool *eof);

/* ---- requests and responses ---------------------------------------------------------------- */

struct ll_http_hdr { const char *name, *value; };

struct ll_route;

struct ll_http_req {
    const char *method;
    const char *raw_uri;             /* request target as sent (NUL-terminated) */
    const char *version;             /* "HTTP/1.1" */
    ll_str      path, query;         /* views into raw_uri */
    char       *param;               /* decoded route parameter (ll_malloc) */
    size_t      param_n;
    struct ll_http_hdr *hdrs;        /* strings borrowed from the connection (ll_malloc array) */
    size_t      n_hdrs, cap_hdrs;
    char       *body;                /* accumulated body (ll_malloc), NUL-terminated */
    size_t      body_n, body_cap;
    const struct ll_route *route;    /* set by ll_router_prepare when a handler will run */
    ll_http_stream *call;            /* cancel flag (and body queue); one reference */
    void       *user;
    void      (*user_free)(void *);
};

struct ll_resp_hdr { char *name, *value; };

struct ll_http_resp {
    int         status;              /* 0 until answered */
    ll_api_family family;
    const char *content_type;        /* static string or NULL */
    char       *body;                /* ll_malloc */
    size_t      body_n;
    struct ll_resp_hdr *hdrs;
    size_t      n_hdrs, cap_hdrs;
    bool        close;
    bool        is_stream;           /* the body is req->call's queue, streamed */
    ll_http_stream *call;            /* borrowed from the request, for ll_http_resp_stream */
};

void ll_http_req_release(ll_http_req *req);     /* frees owned parts, drops the call reference */
void ll_http_resp_release(ll_http_resp *resp);
void ll_http_resp_clear_body(ll_http_resp *resp);

/* ---- router internals ---------------------------------------------------------------------- */

typedef enum {
    LL_ROUTE_DECIDED,   /* resp holds the final answer (404, 405, 403, redirect, preflight...) */
    LL_ROUTE_HANDLER,   /* req->route is set: read the body, then ll_router_run */
} ll_route_decision;

/* Everything that can be decided from the request line and headers, in Ollama's order: CORS
 * (§0.3.2), Host (§0.3.1), API key (§0.3.3), then routing (§0.2). Sets req->route, req->param
 * and resp->family; adds the CORS headers a normal answer carries. */
ll_route_decision ll_router_prepare(ll_router *r, ll_http_req *req, ll_http_resp *resp);
/* Run the route's handler (after the body is read). */
void ll_router_run(ll_router *r, ll_http_req *req, ll_http_resp *resp);
/* The route's body sink, or NULL. */
ll_body_fn ll_router_body_sink(const ll_http_req *req, void **ctx);

/* Set by the server once bound: the Host check applies only to loopback listeners. */
void ll_router_set_loopback(ll_router *r, bool loopback);

/* Host check (§0.3.1, D13): true when host (the Host header) may reach a loopback listener.
 * *named is set when it passed by name (an OPTIONS request then gets 204). */
bool ll_router_host_allowed(const ll_router *r, const char *host, bool *named);
/* Origin allow list (§0.3.2, D12): 0 refused, 1 allowed, 2 allowed by a "*" entry. */
int  ll_router_origin_allowed(const ll_router *r, const char *origin);
/* The error object of a family: native {"error":msg}, OpenAI §2.0.3, Anthropic §3.5 (with a
 * request_id unless in_stream). NULL on allocation failure. */
json_t *ll_http_error_body(ll_api_family family, int status, const char *msg, bool in_stream);
/* Build a request from parts without libmicrohttpd (tests, fuzzing). hdrs alternate name,
 * value; all strings must outlive req. */
ll_status ll_http_req_init_test(ll_http_req *req, const char *method, const char *raw_uri,
                                const char *const *hdrs, size_t n_hdr_pairs, ll_error *err);

#endif
