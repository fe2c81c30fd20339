/* cli/client: HTTP + JSON over libcurl for the client commands (client.h).
 *
 * One easy handle per request: the commands make at most three requests, so connection reuse
 * would buy nothing worth the shared state. */
#include "cli/client.h"

#include "cli/cli.h"
#include "server/http.h"

#include <curl/curl.h>
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
    return json_loadb(r->body, r->n_body, 0, NULL);
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
