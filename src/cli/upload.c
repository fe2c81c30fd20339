/* cli/upload: file hashing, streamed blob upload and NDJSON reading for `create` (upload.h).
 *
 * The file goes to the server straight from disk through libcurl's read callback with a
 * Content-Length, so a multi-gigabyte GGUF never sits in memory; Ollama's client sends it
 * chunked, which the server accepts as well. */
#include "cli/upload.h"

#include "cli/cli.h"
#include "cli/client.h"

#include <curl/curl.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Ollama reads NDJSON lines of up to 8 MB (§1.3); a longer one is a broken server. */
#define LINE_MAX_BYTES (8u << 20)

static int curl_ready;

static CURL *easy_init(const char *path, struct curl_slist **hdr, char *errbuf) {
    if (!curl_ready) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) return NULL;
        curl_ready = 1;
    }
    CURL *h = curl_easy_init();
    if (!h) return NULL;
    char url[1024], ua[64];
    snprintf(url, sizeof url, "%s%s", cli_base_url(), path);
    snprintf(ua, sizeof ua, "locallama/%s", LL_VERSION);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_USERAGENT, ua);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");   /* the server is ours, as in client.c */
    /* no "Expect: 100-continue" round trip before the body */
    *hdr = curl_slist_append(*hdr, "Expect:");
    return h;
}

static int transport_fail(CURLcode rc, const char *errbuf) {
    if (rc == CURLE_COULDNT_CONNECT)
        return cli_fail("could not connect to locallama server at %s; start it with 'locallama serve'",
                        cli_base_url());
    return cli_fail("%s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
}

// ---------------------------------------------------------------------------------------------
// hashing

int cli_sha256_file(const char *path, char hex[65], uint64_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return cli_fail("open %s: %s", path, strerror(errno));
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char *buf = malloc(1u << 20);
    int ret = 0;
    uint64_t total = 0;
    if (!md || !buf || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        ret = cli_fail("cannot hash %s: out of memory", path);
        goto out;
    }
    size_t n;
    while ((n = fread(buf, 1, 1u << 20, f)) > 0) {
        EVP_DigestUpdate(md, buf, n);
        total += n;
    }
    if (ferror(f)) { ret = cli_fail("read %s: %s", path, strerror(errno)); goto out; }
    unsigned char d[32];
    unsigned int dn = 0;
    EVP_DigestFinal_ex(md, d, &dn);
    for (unsigned i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
    *size = total;
out:
    EVP_MD_CTX_free(md);
    free(buf);
    fclose(f);
    return ret;
}

// ---------------------------------------------------------------------------------------------
// blob upload (§1.13)

typedef struct {
    FILE *f;
    uint64_t size;
    cli_upload_progress_fn progress;
    void *user;
    char *body;          /* the server's answer, for its error message */
    size_t n_body;
} upload;

static size_t upload_read(char *p, size_t size, size_t nmemb, void *ud) {
    upload *u = ud;
    size_t n = fread(p, 1, size * nmemb, u->f);
    if (n == 0 && ferror(u->f)) return CURL_READFUNC_ABORT;
    return n;
}

static int upload_xfer(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow) {
    (void)dltotal; (void)dlnow; (void)ultotal;
    upload *u = ud;
    if (u->progress) u->progress(u->user, (uint64_t)ulnow, u->size);
    return 0;
}

static size_t collect_body(char *p, size_t size, size_t nmemb, void *ud) {
    upload *u = ud;
    size_t n = size * nmemb;
    if (u->n_body + n > 65536) return n;         /* an error message is short; drop the rest */
    char *nb = realloc(u->body, u->n_body + n + 1);
    if (!nb) return 0;
    memcpy(nb + u->n_body, p, n);
    u->n_body += n;
    nb[u->n_body] = 0;
    u->body = nb;
    return n;
}

int cli_blob_upload(const char *path, const char *digest, uint64_t size,
                    cli_upload_progress_fn progress, void *user) {
    upload u = { .size = size, .progress = progress, .user = user };
    if (!(u.f = fopen(path, "rb"))) return cli_fail("open %s: %s", path, strerror(errno));
    char api[128], errbuf[CURL_ERROR_SIZE] = "";
    snprintf(api, sizeof api, "/api/blobs/%s", digest);
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/octet-stream");
    CURL *h = easy_init(api, &hdr, errbuf);
    int ret = 0;
    if (!h) { ret = cli_fail("cannot initialise libcurl"); goto out; }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, upload_read);
    curl_easy_setopt(h, CURLOPT_READDATA, &u);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)size);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, upload_xfer);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, &u);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &u);
    CURLcode rc = curl_easy_perform(h);
    long status = 0;
    if (rc == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK) {
        /* A server that already has the blob answers 200 without reading the body (S3) and
         * may close while we still send: that is success, not a broken upload. */
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        if (status != 200) { ret = transport_fail(rc, errbuf); goto out; }
    }
    if (status == 200 || status == 201) goto out;
    cli_resp r = { .status = status, .body = u.body, .n_body = u.n_body };
    ret = cli_resp_fail(&r);
out:
    if (h) curl_easy_cleanup(h);
    curl_slist_free_all(hdr);
    free(u.body);
    fclose(u.f);
    return ret;
}

// ---------------------------------------------------------------------------------------------
// NDJSON answers (§1.3)

typedef struct {
    CURL *h;
    cli_line_fn fn;
    void *user;
    char *line;          /* the incomplete line so far */
    size_t n, cap;
    long status;         /* HTTP status, read at the first byte */
    int ret;             /* 0, or the exit status once an error was printed */
    bool first_done;
} ndjson;

/* One complete line: JSON with "error" ends the call; a non-JSON line is an error only when
 * it is the first line of a failed response. Returns false to stop. */
static bool ndjson_line(ndjson *s, const char *p, size_t n) {
    while (n && (p[n - 1] == '\r')) n--;
    if (n == 0) return true;
    bool first = !s->first_done;
    s->first_done = true;
    json_t *j = json_loadb(p, n, 0, NULL);
    if (!j) {
        if (first && s->status >= 400) { s->ret = cli_fail("%.*s", (int)n, p); return false; }
        return true;
    }
    const char *msg = json_string_value(json_object_get(j, "error"));
    if (msg) {
        s->ret = cli_fail("%s", msg);
        json_decref(j);
        return false;
    }
    if (s->status >= 400) {
        s->ret = cli_fail("server answered HTTP %ld", s->status);
        json_decref(j);
        return false;
    }
    int r = s->fn(s->user, j);
    json_decref(j);
    if (r) { s->ret = r; return false; }
    return true;
}

static size_t ndjson_write(char *p, size_t size, size_t nmemb, void *ud) {
    ndjson *s = ud;
    size_t n = size * nmemb;
    if (!s->status) curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &s->status);
    for (size_t i = 0; i < n;) {
        const char *nl = memchr(p + i, '\n', n - i);
        size_t take = nl ? (size_t)(nl - (p + i)) : n - i;
        if (s->n + take > LINE_MAX_BYTES) { s->ret = cli_fail("a line of the server's answer exceeds 8 MB"); return 0; }
        if (s->n + take + 1 > s->cap) {
            size_t nc = s->cap ? s->cap : 4096;
            while (nc < s->n + take + 1) nc *= 2;
            char *nb = realloc(s->line, nc);
            if (!nb) { s->ret = cli_fail("out of memory reading the server's answer"); return 0; }
            s->line = nb;
            s->cap = nc;
        }
        memcpy(s->line + s->n, p + i, take);
        s->n += take;
        i += take;
        if (nl) {
            i++;
            bool go = ndjson_line(s, s->line, s->n);
            s->n = 0;
            if (!go) return 0;              /* curl stops with CURLE_WRITE_ERROR */
        }
    }
    return n;
}

int cli_stream_call(const char *path, json_t *req, cli_line_fn fn, void *user) {
    char errbuf[CURL_ERROR_SIZE] = "";
    struct curl_slist *hdr = NULL;
    hdr = curl_slist_append(hdr, "Content-Type: application/json");
    hdr = curl_slist_append(hdr, "Accept: application/x-ndjson");
    CURL *h = easy_init(path, &hdr, errbuf);
    char *data = json_dumps(req, JSON_COMPACT);
    ndjson s = { .h = h, .fn = fn, .user = user };
    int ret = 0;
    if (!h || !data) { ret = cli_fail("cannot initialise libcurl"); goto out; }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, data);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(data));
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, ndjson_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
    CURLcode rc = curl_easy_perform(h);
    if (s.ret) { ret = s.ret; goto out; }
    if (rc != CURLE_OK) { ret = transport_fail(rc, errbuf); goto out; }
    if (!s.status) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &s.status);
    if (s.n && !ndjson_line(&s, s.line, s.n)) { ret = s.ret; goto out; }   /* no final "\n" */
    if (s.status >= 400) ret = cli_fail("server answered HTTP %ld", s.status);
out:
    if (h) curl_easy_cleanup(h);
    curl_slist_free_all(hdr);
    free(data);
    free(s.line);
    return ret;
}
