/* server/http: the HTTP layer of `locallama serve` (libmicrohttpd), its router and the
 * interface endpoint handlers plug into. Spec: ollama-api.md §0.1-§0.7; inputs we must survive:
 * fault-cases.md rows H1-H53, R12, R19.
 *
 * Plugging in an endpoint (api_ollama.c, api_openai.c, ...):
 *
 *     static void api_show(ll_http_req *req, ll_http_resp *resp, void *ctx) {
 *         json_t *body;
 *         if (ll_http_req_json(req, resp, &body) != LL_OK) return;     // 400 already set
 *         ...
 *         if (!found) { json_decref(body); ll_http_resp_error(resp, 404, "model '%s' not found", m); return; }
 *         ll_http_resp_json(resp, 200, obj);                            // takes obj
 *         json_decref(body);
 *     }
 *     ll_router_set_handler(router, "POST", "/api/show", api_show, store, &err);
 *
 * Streaming (NDJSON on /api, SSE on /v1): the handler decides the status first (errors
 * found before generation are ordinary JSON responses, §0.6.2), then
 *
 *     ll_http_stream *s = ll_http_resp_stream(resp, LL_STREAM_NDJSON);  // status 200
 *     sched_submit(job, s);           // the generation thread now owns the reference
 *     return;                         // the connection thread sends what the producer pushes
 *
 * and the producer, on any thread:
 *
 *     if (ll_http_stream_ndjson(s, chunk) != LL_OK) ... client gone: stop, free the slot
 *     if (atomic_load(ll_http_stream_cancel_flag(s))) ...  // polled between decode steps
 *     ll_http_stream_ndjson(s, done_obj);  ll_http_stream_end(s);      // always end
 *
 * A handler may also push from its own thread and end the stream before returning.
 *
 * Threads: one thread per connection (libmicrohttpd's thread-per-connection mode), so a
 * handler may block (waiting for a model load, or for a non-streamed generation) without
 * stalling other connections. While it blocks, a watchdog thread notices a client that went
 * away and raises the request's cancel flag (ll_http_req_cancel_flag). Stream writes never
 * block: they queue up to 1 MiB (H49); past that, or once the client is gone or the server is
 * shutting down, they return LL_ERR_CANCELLED and the producer should stop.
 */
#ifndef LL_SERVER_HTTP_H
#define LL_SERVER_HTTP_H

#include "locallama.h"
#include "server/json.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define LL_HTTP_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define LL_HTTP_PRINTF(a, b)
#endif

typedef struct ll_http_req    ll_http_req;     /* one request; borrowed by the handler */
typedef struct ll_http_resp   ll_http_resp;    /* the handler's answer; borrowed */
typedef struct ll_http_stream ll_http_stream;  /* a streamed body; refcounted, thread-safe */
typedef struct ll_router      ll_router;
typedef struct ll_http_server ll_http_server;

/* Which error shape a route uses (§0.7 native, §2.0.3 OpenAI, §3.5 Anthropic). */
typedef enum { LL_API_NATIVE, LL_API_OPENAI, LL_API_ANTHROPIC } ll_api_family;

typedef enum {
    LL_STREAM_NDJSON,   /* application/x-ndjson, one JSON object per line (§0.6.2) */
    LL_STREAM_SSE,      /* text/event-stream, "data: ...\n\n" events (§0.6.3, §3.4) */
} ll_stream_kind;

/* A route handler. Runs on the connection's thread once the whole body is read. It must
 * leave resp answered (any ll_http_resp_* call); an untouched resp becomes a 500. */
typedef void (*ll_route_fn)(ll_http_req *req, ll_http_resp *resp, void *ctx);

/* Optional body sink for uploads that must not be buffered (POST /api/blobs/:digest). Called
 * once with data == NULL, n == 0 when the headers are in (check the digest there, H45), then
 * per body piece. Return false after setting an error on resp to stop reading: that response
 * is sent and the connection closed. With a sink the body is not kept (ll_http_req_body is
 * empty) and no size cap applies; the handler runs after the last piece. */
typedef bool (*ll_body_fn)(ll_http_req *req, ll_http_resp *resp, const char *data, size_t n, void *ctx);

/* ---- configuration (§0.4) ------------------------------------------------------------- */

typedef struct {
    char     listen_host[256];   /* "127.0.0.1", "::1", "" (all interfaces), or a name */
    int      listen_port;        /* 0..65535 (0: any free port) */
    char     origins[4096];      /* LOCALLAMA_ORIGINS / OLLAMA_ORIGINS, raw comma list */
    char     allowed_hosts[1024];/* LOCALLAMA_ALLOWED_HOSTS (D13), raw comma list; "*" = no check */
    char     api_key[256];       /* LOCALLAMA_API_KEY (D14); empty = no authentication */
    char     version[64];        /* reported Ollama version, LOCALLAMA_REPORTED_VERSION (D18) */
    size_t   max_body_bytes;     /* JSON body cap, LOCALLAMA_MAX_BODY_BYTES (default 64 MiB) */
    size_t   max_stream_buffer;  /* queued stream bytes per response (1 MiB, H49) */
    int      max_connections;    /* LOCALLAMA_MAX_CONNECTIONS (512, H5) */
    uint64_t header_timeout_ns;  /* 10 s: request headers of a new connection (H3) */
    uint64_t body_idle_ns;       /* 30 s: body bytes stop arriving (H4) */
    uint64_t keepalive_idle_ns;  /* 60 s: idle keep-alive connections are closed (H6) */
    uint64_t write_stall_ns;     /* 30 s: the client stops reading (H49) */
    uint64_t shutdown_grace_ns;  /* 10 s: running streams on SIGTERM (R12) */
    bool     test_routes;        /* LOCALLAMA_HTTP_TEST_ROUTES=1: POST /__test/{stream,block,echo}
                                    for the HTTP tests; absent otherwise (H20) */
} ll_http_config;

/* Defaults, then the environment: LOCALLAMA_<NAME> else OLLAMA_<NAME> for HOST and ORIGINS
 * (values trimmed of spaces and quotes, §0.4.1); LOCALLAMA_ALLOWED_HOSTS, LOCALLAMA_API_KEY,
 * LOCALLAMA_REPORTED_VERSION, LOCALLAMA_MAX_BODY_BYTES, LOCALLAMA_MAX_CONNECTIONS,
 * and for tests and tuning LOCALLAMA_HTTP_HEADER_TIMEOUT,
 * LOCALLAMA_HTTP_BODY_TIMEOUT, LOCALLAMA_HTTP_IDLE_TIMEOUT, LOCALLAMA_HTTP_WRITE_TIMEOUT,
 * LOCALLAMA_SHUTDOWN_GRACE (durations) and LOCALLAMA_HTTP_TEST_ROUTES.
 * Bad numbers fall back to the default with a warning (never an error). */
void ll_http_config_default(ll_http_config *cfg);
void ll_http_config_from_env(ll_http_config *cfg);

/* §0.4.1 lookup: LOCALLAMA_<name>, else OLLAMA_<name> when the first is unset or empty;
 * trimmed of spaces, then of '"' and '\''. NULL when neither is set (or the value does not
 * fit in cap). */
const char *ll_env_get(const char *name, char *buf, size_t cap);

/* OLLAMA_HOST parsing, §0.4.2: [scheme://]host[:port][/path]; "" → 127.0.0.1:11434; ":8080" →
 * all interfaces; "0.0.0.0" → port 11434; "http://x" → port 80, "https://x" → 443; "[::1]:5"
 * and "[::1]"; a bad port → the default port. host gets "" for all interfaces. */
void ll_parse_listen_addr(const char *value, char *host, size_t host_cap, int *port);

/* ---- router ---------------------------------------------------------------------------- */

/* A router holding every route of §0.2: GET/HEAD / and /api/version answered here, the §1.16
 * stubs as that section says, §2.6 routes as 404 "endpoint not supported", everything else a
 * 501 stub until its handler is set. cfg is copied. */
ll_status ll_router_init(ll_router **out, const ll_http_config *cfg, ll_error *err);
void      ll_router_free(ll_router *r);   /* NULL-safe */

/* Replace the handler of a route of the table, e.g. ("POST", "/api/generate") or
 * ("HEAD", "/api/blobs/:digest"). Setting GET on a route that also answers HEAD (/, /api/version,
 * /api/tags) sets both. LL_ERR_ARG for a route not in §0.2. Call before serving starts. */
ll_status ll_router_set_handler(ll_router *r, const char *method, const char *pattern,
                                ll_route_fn fn, void *ctx, ll_error *err);
ll_status ll_router_set_body_sink(ll_router *r, const char *method, const char *pattern,
                                  ll_body_fn fn, ll_error *err);

/* ---- requests -------------------------------------------------------------------------- */

const char   *ll_http_req_method(const ll_http_req *req);       /* "GET", "POST", ... */
ll_str        ll_http_req_path(const ll_http_req *req);         /* raw path, query stripped */
ll_str        ll_http_req_query(const ll_http_req *req);        /* raw query without '?' */
/* The route parameter, percent-decoded: the digest of /api/blobs/:digest, the key of
 * /api/user/keys/:key, the model of /v1/models/{model} (may contain '/', §5 D11). */
ll_str        ll_http_req_param(const ll_http_req *req);
/* First header of that name (case-insensitive), NULL when absent. */
const char   *ll_http_req_header(const ll_http_req *req, const char *name);
ll_str        ll_http_req_body(const ll_http_req *req);         /* whole body (no sink) */
ll_api_family ll_http_req_family(const ll_http_req *req);
/* Raised when the client disconnects, a write stalls, or the server shuts down. Valid while the
 * request runs; a producer that outlives the handler uses its stream's flag instead. */
const atomic_bool *ll_http_req_cancel_flag(const ll_http_req *req);
bool          ll_http_req_cancelled(const ll_http_req *req);
/* Per-request user data for body sinks and handlers; free_fn runs when the request ends. */
void          ll_http_req_set_user(ll_http_req *req, void *user, void (*free_fn)(void *));
void         *ll_http_req_user(const ll_http_req *req);

/* Parse the body leniently (§0.5.4, json.h) and require an object. On failure the 400 error
 * (in the route's family shape) is already set on resp and the status is returned; on success
 * *out is a new reference. Texts: "missing request body" (H22), "invalid JSON at byte N: ..."
 * (H21, H23, H24, H26), "invalid JSON: the body must be an object". */
ll_status ll_http_req_json(ll_http_req *req, ll_http_resp *resp, json_t **out);

/* ---- responses ------------------------------------------------------------------------- */

/* JSON body (Go-formatted, json.h), Content-Type application/json; charset=utf-8. Takes the
 * reference to body. flags: LL_JSON_F32, LL_JSON_NEWLINE (the /v1 adapters end with "\n"). */
void ll_http_resp_json(ll_http_resp *resp, int status, json_t *body);
void ll_http_resp_json_flags(ll_http_resp *resp, int status, json_t *body, int flags);
/* Arbitrary body (copied); content_type NULL means none. */
void ll_http_resp_text(ll_http_resp *resp, int status, const char *content_type, const char *body, size_t n);
/* No body: Content-Length: 0 and no Content-Type (§0.2, e.g. /api/copy, /api/delete). */
void ll_http_resp_empty(ll_http_resp *resp, int status);
/* An error in the route family's shape: native {"error":"msg"}; /v1 §2.0.3 with the type
 * chosen by status; /v1/messages §3.5. msg is printf-formatted. */
void ll_http_resp_error(ll_http_resp *resp, int status, const char *fmt, ...) LL_HTTP_PRINTF(3, 4);
/* Extra header (e.g. "Retry-After", "Location"); copied. Content-Type/Length are managed. */
void ll_http_resp_header(ll_http_resp *resp, const char *name, const char *value);
/* Close the connection after this response. */
void ll_http_resp_close(ll_http_resp *resp);

/* Commit a 200 streamed response of that kind (chunked, flushed per write) and return the
 * producer's reference: the caller must end it with ll_http_stream_end, from any thread.
 * NULL on allocation failure (resp is then a 500). */
ll_http_stream *ll_http_resp_stream(ll_http_resp *resp, ll_stream_kind kind);

/* ---- streams (thread-safe; never block) ------------------------------------------------ */

/* Queue raw bytes as they are. LL_ERR_CANCELLED when the client is gone, the stream ended or
 * the queue would pass the cap (H49; one write into an empty queue always fits). */
ll_status ll_http_stream_write(ll_http_stream *s, const char *p, size_t n);
/* One NDJSON line: obj dumped Go-style (flags as ll_json_dump) plus "\n". Borrows obj. */
ll_status ll_http_stream_ndjson(ll_http_stream *s, const json_t *obj, int flags);
/* One SSE event: "event: EV\n" when event is non-NULL, then "data: <json>\n\n". */
ll_status ll_http_stream_sse(ll_http_stream *s, const char *event, const json_t *data, int flags);
ll_status ll_http_stream_sse_done(ll_http_stream *s);     /* "data: [DONE]\n\n" */
/* The stream's error terminator (H51, §5 D6/D7): NDJSON {"error":"msg"}; SSE /v1
 * data: {"error":{"message":...,"type":"api_error",...}}; SSE /v1/messages event: error.
 * The stream then counts as ended for writes; still call ll_http_stream_end. */
ll_status ll_http_stream_error(ll_http_stream *s, const char *msg);
/* Finish the body and drop the producer's reference. s must not be used afterwards. */
void ll_http_stream_end(ll_http_stream *s);
bool ll_http_stream_cancelled(const ll_http_stream *s);
const atomic_bool *ll_http_stream_cancel_flag(const ll_http_stream *s);
/* Extra references for a second user of the stream (e.g. a watchdog of the scheduler). */
ll_http_stream *ll_http_stream_ref(ll_http_stream *s);
void ll_http_stream_unref(ll_http_stream *s);

/* ---- server ---------------------------------------------------------------------------- */

/* Bind cfg's address and start serving router's routes. The router must outlive the server.
 * Bind errors are LL_ERR_IO with R19's text "listen 127.0.0.1:11434: address already in use". */
ll_status ll_http_server_start(ll_http_server **out, const ll_http_config *cfg, ll_router *router, ll_error *err);
/* The bound address as "host:port" (IPv6 in brackets) and the port (useful with port 0). */
const char *ll_http_server_addr(const ll_http_server *s);
int         ll_http_server_port(const ll_http_server *s);
/* Graceful stop (R12): stop accepting, let running requests finish for cfg->shutdown_grace_ns,
 * then end each open stream with {"error":"server shutting down"}, raise every cancel flag and
 * close. Blocks until done; ll_http_server_free then releases the rest. */
void ll_http_server_shutdown(ll_http_server *s);
void ll_http_server_free(ll_http_server *s);   /* shuts down first if needed; NULL-safe */

#endif
