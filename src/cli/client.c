/* cli/client: HTTP + JSON over libcurl for the client commands (client.h).
 *
 * One easy handle per request: a command makes a handful of requests (a REPL one per turn),
 * so connection reuse would buy nothing worth the shared state. Streaming calls run through
 * the multi interface so that a Ctrl-C flag is looked at every 100 ms while the server is
 * still thinking, rather than at libcurl's once-a-second progress callback. */
#include "cli/client.h"

#include "cli/cli.h"
#include "server/http.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static char base_url[512];

const char *cli_base_url(void) {
    if (base_url[0]) return base_url;
    char buf[400], host[256];
    const char *v = ll_env_get("HOST", buf, sizeof buf);
    if (!v) v = "";
    int port = 11434;
    ll_parse_listen_addr(v, host, sizeof host, &port);
    const char *sep = strstr(v, "://");
    const char *scheme = sep && (size_t)(sep - v) == 5 && !strncasecmp(v, "https", 5) ? "https" : "http";
    const char *rest = sep ? sep + 3 : v;
    const char *path = strchr(rest, '/');        /* §3.1 step 2: a base path */
    if (!host[0]) snprintf(host, sizeof host, "127.0.0.1");
    int v6 = strchr(host, ':') != NULL;
    snprintf(base_url, sizeof base_url, "%s://%s%s%s:%d%s", scheme, v6 ? "[" : "", host,
             v6 ? "]" : "", port, path ? path : "");
    size_t n = strlen(base_url);                 /* paths we append start with '/' */
    while (n && base_url[n - 1] == '/') base_url[--n] = 0;
    return base_url;
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud) {
    cli_resp *r = ud;
    size_t n = size * nmemb;
    char *nb = realloc(r->body, r->n_body + n + 1);
    if (!nb) return 0;                           /* curl reports CURLE_WRITE_ERROR */
    memcpy(nb + r->n_body, p, n);
    r->n_body += n;
    nb[r->n_body] = 0;
    r->body = nb;
    return n;
}

static int curl_ready;

static int call(const char *method, const char *path, json_t *req, cli_resp *r, int heartbeat) {
    memset(r, 0, sizeof *r);
    if (!curl_ready) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) return cli_fail("cannot initialise libcurl");
        curl_ready = 1;
    }
    CURL *h = curl_easy_init();
    if (!h) return cli_fail("cannot initialise libcurl");
    char url[1024], ua[64], errbuf[CURL_ERROR_SIZE] = "";
    snprintf(url, sizeof url, "%s%s", cli_base_url(), path);
    snprintf(ua, sizeof ua, "locallama/%s", LL_VERSION);
    char *data = req ? json_dumps(req, JSON_COMPACT) : NULL;
    struct curl_slist *hdr = NULL;
    hdr = curl_slist_append(hdr, "Content-Type: application/json");
    hdr = curl_slist_append(hdr, "Accept: application/json");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_USERAGENT, ua);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");   /* the server is ours, never behind a proxy */
    if (!strcmp(method, "HEAD")) curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    else if (strcmp(method, "GET")) curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    if (data) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, data);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(data));
    }
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    CURLcode rc = curl_easy_perform(h);
    int ret = 0;
    if (rc == CURLE_OK) {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    } else if (rc == CURLE_COULDNT_CONNECT || (heartbeat && rc == CURLE_COULDNT_RESOLVE_HOST)) {
        /* §1.2: Ollama's "could not connect to ollama server", in our words with the address */
        ret = cli_fail("could not connect to locallama server at %s; start it with 'locallama serve'",
                       cli_base_url());
    } else {
        ret = cli_fail("%s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
    }
    if (ret) cli_resp_free(r);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    free(data);
    return ret;
}

int cli_call(const char *method, const char *path, json_t *req, cli_resp *r) {
    return call(method, path, req, r, 0);
}

int cli_heartbeat(void) {
    cli_resp r;
    if (call("HEAD", "/", NULL, &r, 1)) return 1;
    cli_resp_free(&r);
    return 0;
}

json_t *cli_resp_json(const cli_resp *r) {
    if (!r->body) return NULL;
    return json_loadb(r->body, r->n_body, JSON_ALLOW_NUL, NULL);
}

int cli_resp_fail(const cli_resp *r) {
    json_t *j = cli_resp_json(r);
    const char *msg = json_string_value(json_object_get(j, "error"));
    int ret;
    if (msg) ret = cli_fail("%s", msg);
    else if (r->body && r->n_body) {
        size_t n = r->n_body;                    /* non-JSON body: used verbatim (§1.3) */
        while (n && (r->body[n - 1] == '\n' || r->body[n - 1] == '\r')) n--;
        ret = cli_fail("%.*s", (int)n, r->body);
    } else ret = cli_fail("server answered HTTP %ld", r->status);
    json_decref(j);
    return ret;
}

void cli_resp_free(cli_resp *r) {
    free(r->body);
    r->body = NULL;
    r->n_body = 0;
}

// ---------------------------------------------------------------------------------------------
// streaming

#define STREAM_LINE_MAX (8u << 20)   /* Ollama's scanner buffer (§1.3) */

typedef struct {
    CURL        *h;
    cli_chunk_fn fn;
    void        *ud;
    char        *line;       /* the line being assembled (not NUL-terminated while growing) */
    size_t       n_line, cap_line;
    int          result;     /* set when the stream must stop: 1 error printed, fn's result */
    int          stopped;    /* result is final */
    int          n_lines;
    char        *err;        /* where a server error goes instead of stderr; NULL = print */
    size_t       err_cap;
} stream_state;

/* A server-side error: printed ("Error: ..."), or kept for the caller (cli_stream_err). */
static int server_fail(stream_state *s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (s->err) vsnprintf(s->err, s->err_cap, fmt, ap);
    else {
        fputs("Error: ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
    }
    va_end(ap);
    return s->err ? 2 : 1;
}

/* One complete line: blank lines are skipped, {"error"} ends the call, JSON goes to fn. */
static void stream_line(stream_state *s, const char *p, size_t n) {
    while (n && (p[n - 1] == '\r' || p[n - 1] == ' ')) n--;
    if (n == 0) return;
    long status = 0;
    curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &status);
    json_t *j = json_loadb(p, n, JSON_ALLOW_NUL, NULL);
    s->n_lines++;
    if (!j || !json_is_object(j)) {
        json_decref(j);
        if (status >= 400 && s->n_lines == 1) s->result = server_fail(s, "%.*s", (int)n, p);
        else s->result = cli_fail("the server sent a line that is not a JSON object: %.*s",
                                  (int)(n > 200 ? 200 : n), p);
        s->stopped = 1;
        return;
    }
    const char *err = json_string_value(json_object_get(j, "error"));
    if (err) {
        s->result = server_fail(s, "%s", err);
        s->stopped = 1;
    } else if (status >= 400) {
        s->result = server_fail(s, "server answered HTTP %ld", status);
        s->stopped = 1;
    } else {
        int r = s->fn(j, s->ud);
        if (r) { s->result = r; s->stopped = 1; }
    }
    json_decref(j);
}

static size_t on_stream(char *p, size_t size, size_t nmemb, void *ud) {
    stream_state *s = ud;
    size_t n = size * nmemb;
    for (size_t i = 0; i < n && !s->stopped; ) {
        const char *nl = memchr(p + i, '\n', n - i);
        size_t take = nl ? (size_t)(nl - (p + i)) : n - i;
        if (s->n_line + take > STREAM_LINE_MAX) {
            s->result = cli_fail("a line of the server's answer is longer than %u bytes", STREAM_LINE_MAX);
            s->stopped = 1;
            break;
        }
        if (s->n_line + take > s->cap_line) {
            size_t c = s->cap_line ? s->cap_line : 4096;
            while (c < s->n_line + take) c *= 2;
            char *q = realloc(s->line, c);
            if (!q) { s->result = cli_fail("out of memory"); s->stopped = 1; break; }
            s->line = q;
            s->cap_line = c;
        }
        memcpy(s->line + s->n_line, p + i, take);
        s->n_line += take;
        i += take;
        if (nl) {
            i++;
            stream_line(s, s->line, s->n_line);
            s->n_line = 0;
        }
    }
    return s->stopped ? 0 : n;                   /* 0: curl aborts with CURLE_WRITE_ERROR */
}

int cli_stream(const char *path, json_t *req, cli_chunk_fn fn, void *ud,
               volatile sig_atomic_t *cancel) {
    return cli_stream_err(path, req, fn, ud, cancel, NULL, 0);
}

int cli_stream_err(const char *path, json_t *req, cli_chunk_fn fn, void *ud,
                   volatile sig_atomic_t *cancel, char *errout, size_t errcap) {
    if (!curl_ready) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) return cli_fail("cannot initialise libcurl");
        curl_ready = 1;
    }
    stream_state s = { .fn = fn, .ud = ud, .err = errout, .err_cap = errcap };
    CURL *h = curl_easy_init();
    CURLM *m = curl_multi_init();
    if (!h || !m) {
        if (h) curl_easy_cleanup(h);
        if (m) curl_multi_cleanup(m);
        return cli_fail("cannot initialise libcurl");
    }
    s.h = h;
    char url[1024], ua[64], errbuf[CURL_ERROR_SIZE] = "";
    snprintf(url, sizeof url, "%s%s", cli_base_url(), path);
    snprintf(ua, sizeof ua, "locallama/%s", LL_VERSION);
    char *data = json_dumps(req, JSON_COMPACT);
    struct curl_slist *hdr = NULL;
    hdr = curl_slist_append(hdr, "Content-Type: application/json");
    hdr = curl_slist_append(hdr, "Accept: application/x-ndjson");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_USERAGENT, ua);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, data ? data : "{}");
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(data ? data : "{}"));
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_stream);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
    curl_multi_add_handle(m, h);

    int ret = 0, running = 1;
    CURLcode rc = CURLE_OK;
    while (running) {
        if (cancel && *cancel) { ret = CLI_STREAM_CANCELLED; break; }
        CURLMcode mc = curl_multi_perform(m, &running);
        if (mc != CURLM_OK) { ret = cli_fail("%s", curl_multi_strerror(mc)); break; }
        if (!running) break;
        /* a signal cuts the wait short (EINTR is not an error here) */
        mc = curl_multi_poll(m, NULL, 0, 100, NULL);
        if (mc != CURLM_OK && !(mc == CURLM_UNRECOVERABLE_POLL && errno == EINTR)) {
            ret = cli_fail("%s", curl_multi_strerror(mc));
            break;
        }
    }
    if (!running && ret == 0) {
        int left;
        CURLMsg *msg;
        while ((msg = curl_multi_info_read(m, &left)))
            if (msg->msg == CURLMSG_DONE) rc = msg->data.result;
        if (s.stopped) ret = s.result;
        else if (rc == CURLE_COULDNT_CONNECT)
            ret = cli_fail("could not connect to locallama server at %s; start it with 'locallama serve'",
                           cli_base_url());
        else if (rc != CURLE_OK) ret = cli_fail("%s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
        else if (s.n_line > 0) {                 /* a last line without its newline */
            stream_line(&s, s.line, s.n_line);
            if (s.stopped) ret = s.result;
        } else {
            long status = 0;
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
            if (status >= 400 && s.n_lines == 0) ret = server_fail(&s, "server answered HTTP %ld", status);
        }
    }
    curl_multi_remove_handle(m, h);
    curl_easy_cleanup(h);
    curl_multi_cleanup(m);
    curl_slist_free_all(hdr);
    free(data);
    free(s.line);
    return ret;
}
