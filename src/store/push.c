/* store/push: a model of the store to a Docker Registry v2 server. See push.h for the
 * protocol; this file runs in the order a push does: one HTTP request (libcurl, body from a
 * file range or memory), authentication, one blob, then the whole push. */
#include "store/push.h"
#include "store/pull.h"
#include "store/registry.h"
#include "store/store_impl.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define PUSH_TOKEN_MAX   8192
#define PUSH_URL_MAX     4096
#define PUSH_PROGRESS_NS (60 * 1000000LL)   /* Ollama's ~60 ms between progress lines */

uint64_t ll_push_chunk_size(void) {
    const char *e = getenv("LOCALLAMA_PUSH_CHUNK");
    if (e && *e) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(e, &end, 10);
        if (!errno && !*end && v >= 1024) return v;
    }
    return LL_PUSH_CHUNK_DEFAULT;
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

// ---- one request --------------------------------------------------------------------------------

typedef struct push push;

/* A request and what came back. The body is a range of an open blob (fd ≥ 0) or memory. */
typedef struct {
    const char *method;
    char        url[PUSH_URL_MAX];
    const char *content_type;   /* NULL: none */
    const char *content_range;  /* NULL: none */
    int         fd;  uint64_t off, len;     /* file body */
    const char *mem; size_t n_mem;          /* memory body (fd < 0) */
    uint64_t    pos;                        /* bytes of the body handed to curl */
    bool        has_body;
    /* progress of the blob this request carries: completed = base + bytes sent */
    const char *status, *digest;
    uint64_t    total, base;
    /* answer */
    long code;
    char location[PUSH_URL_MAX];
    char auth[2048];
    char body[4096];  size_t n_body;        /* the first 4 KiB (error texts) */
    bool cancelled, io_failed;
    int  io_errno;
} req;

struct push {
    ll_store *s;
    const ll_push_opts *o;
    CURL *c;
    char base[LL_NAME_HOST_MAX + 16];
    char repo[2 * LL_NAME_PART_MAX + 2];          /* ns/model */
    char scope[2 * LL_NAME_PART_MAX + 64];        /* repository:ns/model:push,pull */
    char key_path[PATH_MAX_STORE];                /* "" unless the registry is Ollama's */
    char token[PUSH_TOKEN_MAX];
    int64_t last_ns;
};

static bool report(push *p, const char *status, const char *digest, uint64_t total, uint64_t done) {
    if (p->o->cancelled && p->o->cancelled(p->o->user)) return false;
    return !p->o->progress || p->o->progress(p->o->user, status, digest, total, done);
}

static size_t on_header(char *b, size_t sz, size_t n, void *ud) {
    req *r = ud;
    size_t len = sz * n;
    char *dst = NULL;
    size_t cap = 0, skip = 0;
    if (len > 9 && !strncasecmp(b, "location:", 9)) { dst = r->location; cap = sizeof r->location; skip = 9; }
    else if (len > 17 && !strncasecmp(b, "www-authenticate:", 17)) { dst = r->auth; cap = sizeof r->auth; skip = 17; }
    else if (len > 5 && !strncasecmp(b, "HTTP/", 5)) { r->location[0] = r->auth[0] = 0; }   /* a new status line */
    if (dst) {
        while (skip < len && (b[skip] == ' ' || b[skip] == '\t')) skip++;
        size_t k = len - skip;
        while (k && (b[skip + k - 1] == '\r' || b[skip + k - 1] == '\n')) k--;
        if (k >= cap) k = cap - 1;                  /* a cut Location fails to resolve: an error */
        memcpy(dst, b + skip, k);
        dst[k] = 0;
    }
    return len;
}

static size_t on_body(char *b, size_t sz, size_t n, void *ud) {
    req *r = ud;
    size_t len = sz * n, room = sizeof r->body - 1 - r->n_body;
    size_t k = len < room ? len : room;
    memcpy(r->body + r->n_body, b, k);
    r->n_body += k;
    r->body[r->n_body] = 0;
    return len;                                     /* the rest is dropped, not an error */
}

static size_t on_read(char *b, size_t sz, size_t n, void *ud) {
    req *r = ud;
    uint64_t left = r->len - r->pos;
    size_t want = sz * n < left ? sz * n : (size_t)left;
    if (!want) return 0;
    if (r->fd < 0) {
        memcpy(b, r->mem + r->pos, want);
        r->pos += want;
        return want;
    }
    ssize_t got;
    do got = pread(r->fd, b, want, (off_t)(r->off + r->pos));
    while (got < 0 && errno == EINTR);
    if (got <= 0) {
        r->io_failed = true;
        r->io_errno = got < 0 ? errno : EIO;        /* the blob shrank under us */
        return CURL_READFUNC_ABORT;
    }
    r->pos += (uint64_t)got;
    return (size_t)got;
}

typedef struct { push *p; req *r; } xfer_ctx;

static int on_xferinfo(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un) {
    xfer_ctx *x = ud;
    push *p = x->p;
    req *r = x->r;
    if (p->o->cancelled && p->o->cancelled(p->o->user)) { r->cancelled = true; return 1; }
    if (r->status && un > 0) {
        int64_t t = now_ns();
        if (t - p->last_ns >= PUSH_PROGRESS_NS) {
            p->last_ns = t;
            uint64_t done = r->base + (uint64_t)un;
            if (done > r->total) done = r->total;
            if (p->o->progress && !p->o->progress(p->o->user, r->status, r->digest, r->total, done)) {
                r->cancelled = true;
                return 1;
            }
        }
    }
    return 0;
}

/* Send r once (token: the bearer token or ""). A transport failure is LL_ERR_IO with curl's
 * text; any HTTP status is LL_OK with r->code set. */
static ll_status send_once(push *p, req *r, const char *token, ll_error *err) {
    CURL *c = p->c;
    curl_easy_reset(c);
    struct curl_slist *h = curl_slist_append(NULL, "Expect:");   /* no 100-continue round trip */
    char line[PUSH_TOKEN_MAX + 64];
    if (token && *token) {
        snprintf(line, sizeof line, "Authorization: Bearer %s", token);
        h = curl_slist_append(h, line);
    }
    if (r->content_type) {
        snprintf(line, sizeof line, "Content-Type: %s", r->content_type);
        h = curl_slist_append(h, line);
    } else if (!r->has_body) {
        h = curl_slist_append(h, "Content-Type:");       /* not curl's form type on an empty POST */
    }
    if (r->content_range) {
        snprintf(line, sizeof line, "Content-Range: %s", r->content_range);
        h = curl_slist_append(h, line);
    }
    xfer_ctx x = { p, r };
    r->pos = 0;
    r->code = 0;
    r->location[0] = r->auth[0] = r->body[0] = 0;
    r->n_body = 0;
    curl_easy_setopt(c, CURLOPT_URL, r->url);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "locallama");
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);     /* stalled a minute: give up */
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_xferinfo);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &x);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    if (!strcmp(r->method, "HEAD")) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else if (r->has_body) {
        curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(c, CURLOPT_READDATA, r);
        curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)r->len);
        if (strcmp(r->method, "PUT")) curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, r->method);
    } else {                                               /* POST, PUT, PATCH without a body */
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
        if (strcmp(r->method, "POST")) curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, r->method);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    CURLcode rc = curl_easy_perform(c);
    curl_slist_free_all(h);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->code);
    if (r->cancelled) return ll_fail(err, LL_ERR_CANCELLED, "push cancelled");
    if (r->io_failed) return ll_fail(err, LL_ERR_IO, "reading blob %s: %s", r->digest ? r->digest : "", strerror(r->io_errno));
    if (rc != CURLE_OK) {
        char u[160];
        snprintf(u, sizeof u, "%.*s", (int)strcspn(r->url, "?"), r->url);   /* no upload state */
        /* Go's net/http spelling: Head "…": …, Put "…": … */
        const char *gm = !strcmp(r->method, "HEAD") ? "Head" : !strcmp(r->method, "POST") ? "Post"
                       : !strcmp(r->method, "PUT") ? "Put" : "Patch";
        return ll_fail(err, LL_ERR_IO, "%s \"%s\": %s", gm, u, curl_easy_strerror(rc));
    }
    return LL_OK;
}

/* send_once, answering one Bearer challenge; then a 307/308 to an upload request is followed
 * once (same method and body, no token: storage elsewhere). 401/403 at the end is the
 * registry refusing us: Ollama's text. */
static ll_status send_req(push *p, req *r, ll_error *err) {
    if (send_once(p, r, p->token, err) != LL_OK) return err->code;
    if (r->code == 401 && !strncasecmp(r->auth, "Bearer ", 7)) {
        char challenge[sizeof r->auth];
        snprintf(challenge, sizeof challenge, "%s", r->auth);
        if (ll_registry_fetch_token(p->c, challenge, p->scope, p->key_path[0] ? p->key_path : NULL,
                                    p->token, sizeof p->token, err) != LL_OK) {
            if (!strncmp(err->msg, "unauthorized", 12) && err->code == LL_ERR_IO) {
                *err = (ll_error){ 0 };
                return ll_fail(err, LL_ERR_IO, "unauthorized: push requires registry credentials");
            }
            return err->code;
        }
        if (send_once(p, r, p->token, err) != LL_OK) return err->code;
    }
    if ((r->code == 307 || r->code == 308) && r->location[0] && strcmp(r->method, "HEAD")) {
        char to[PUSH_URL_MAX];
        if (!ll_registry_resolve(r->url, r->location, to, sizeof to))
            return ll_fail(err, LL_ERR_IO, "registry redirected to an unusable location \"%.200s\"", r->location);
        snprintf(r->url, sizeof r->url, "%s", to);
        if (send_once(p, r, NULL, err) != LL_OK) return err->code;
    }
    if (r->code == 401 || r->code == 403)
        return ll_fail(err, LL_ERR_IO, "unauthorized: push requires registry credentials");
    return LL_OK;
}

/* The registry's own words for a failure: errors[0].message (or code) of its JSON body. */
static void registry_said(const req *r, char *out, size_t cap) {
    json_t *j = json_loadb(r->body, r->n_body, 0, NULL);
    json_t *e0 = json_array_get(json_object_get(j, "errors"), 0);
    const char *msg = json_string_value(json_object_get(e0, "message"));
    const char *code = json_string_value(json_object_get(e0, "code"));
    if (msg && code) snprintf(out, cap, "registry answered %ld: %s: %s", r->code, code, msg);
    else if (msg || code) snprintf(out, cap, "registry answered %ld: %s", r->code, msg ? msg : code);
    else snprintf(out, cap, "registry answered %ld", r->code);
    json_decref(j);
}

// ---- one blob -----------------------------------------------------------------------------------

/* Another model of the store on the same registry whose manifest holds a digest: the
 * repository a registry can mount the blob from. */
typedef struct { char repo[2 * LL_NAME_PART_MAX + 2]; ll_manifest *m; } mount_src;

static const char *mount_from(const mount_src *v, size_t n, const ll_digest *d) {
    for (size_t i = 0; i < n; i++) {
        const ll_manifest *m = v[i].m;
        if (!strcmp(m->config.digest.hex, d->hex)) return v[i].repo;
        for (size_t k = 0; k < m->n_layers; k++)
            if (!strcmp(m->layers[k].digest.hex, d->hex)) return v[i].repo;
    }
    return NULL;
}

static bool url_join_digest(char *url, size_t cap, const char *loc, const char *dg) {
    int w = snprintf(url, cap, "%s%sdigest=sha256%%3A%s", loc, strchr(loc, '?') ? "&" : "?", dg + 7);
    return w >= 0 && (size_t)w < cap;
}

static ll_status blob_push(push *p, const ll_layer *l, const mount_src *ms, size_t n_ms, ll_error *err) {
    char dg[80], status[32];
    ll_digest_str(&l->digest, dg, sizeof dg);
    snprintf(status, sizeof status, "pushing %.12s", l->digest.hex);
    req *r = calloc(1, sizeof *r);
    if (!r) return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    r->fd = -1;
    r->digest = dg;
    r->total = l->size;
    ll_status st = LL_OK;
    char said[600];
    int fd = -1;
    if (!report(p, status, dg, l->size, 0)) { st = ll_fail(err, LL_ERR_CANCELLED, "push cancelled"); goto out; }

    /* 1. does the registry have it already? */
    r->method = "HEAD";
    snprintf(r->url, sizeof r->url, "%s/v2/%s/blobs/%s", p->base, p->repo, dg);
    if ((st = send_req(p, r, err)) != LL_OK) goto fail;
    if (r->code == 200) {
        if (!report(p, status, dg, l->size, l->size)) st = ll_fail(err, LL_ERR_CANCELLED, "push cancelled");
        goto out;
    }
    if (r->code != 404) { registry_said(r, said, sizeof said); st = ll_fail(err, LL_ERR_IO, "%s", said); goto fail; }

    /* 2. an upload session, or a mount from a repository that has it */
    const char *from = mount_from(ms, n_ms, &l->digest);
    r->method = "POST";
    if (from) {
        char ef[3 * sizeof ((mount_src *)0)->repo];
        size_t o = 0;
        for (const char *c = from; *c && o + 4 < sizeof ef; c++)
            o += (size_t)(*c == '/' ? snprintf(ef + o, sizeof ef - o, "%%2F") : snprintf(ef + o, sizeof ef - o, "%c", *c));
        snprintf(r->url, sizeof r->url, "%s/v2/%s/blobs/uploads/?mount=sha256%%3A%s&from=%s", p->base, p->repo,
                 l->digest.hex, ef);
    } else {
        snprintf(r->url, sizeof r->url, "%s/v2/%s/blobs/uploads/", p->base, p->repo);
    }
    if ((st = send_req(p, r, err)) != LL_OK) goto fail;
    if (from && r->code == 201) {                  /* mounted: nothing to send */
        if (!report(p, status, dg, l->size, l->size)) st = ll_fail(err, LL_ERR_CANCELLED, "push cancelled");
        goto out;
    }
    if (r->code != 202) { registry_said(r, said, sizeof said); st = ll_fail(err, LL_ERR_IO, "%s", said); goto fail; }
    char loc[PUSH_URL_MAX];
    if (!r->location[0] || !ll_registry_resolve(r->url, r->location, loc, sizeof loc)) {
        st = ll_fail(err, LL_ERR_IO, "the registry's upload answer has no usable Location (\"%.200s\")", r->location);
        goto fail;
    }

    /* 3. the bytes: one PUT, or PATCH chunks then an empty PUT */
    char path[PATH_MAX_STORE];
    ll_store_blob_path(p->s, &l->digest, path, sizeof path);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) { st = ll_fail(err, LL_ERR_IO, "opening blob %s: %s", dg, strerror(errno)); goto fail; }
    uint64_t chunk = ll_push_chunk_size();
    r->status = status;
    r->fd = fd;
    r->content_type = "application/octet-stream";
    if (l->size > chunk) {
        for (uint64_t off = 0; off < l->size; off += chunk) {
            uint64_t len = l->size - off < chunk ? l->size - off : chunk;
            char range[64];
            snprintf(range, sizeof range, "%llu-%llu", (unsigned long long)off, (unsigned long long)(off + len - 1));
            r->method = "PATCH";
            snprintf(r->url, sizeof r->url, "%s", loc);
            r->has_body = true;
            r->off = r->base = off;
            r->len = len;
            r->content_range = range;
            if ((st = send_req(p, r, err)) != LL_OK) goto fail;
            r->content_range = NULL;
            if (r->code != 202 && r->code != 204) { registry_said(r, said, sizeof said); st = ll_fail(err, LL_ERR_IO, "%s", said); goto fail; }
            if (r->location[0] && !ll_registry_resolve(r->url, r->location, loc, sizeof loc)) {
                st = ll_fail(err, LL_ERR_IO, "the registry's upload answer has no usable Location (\"%.200s\")", r->location);
                goto fail;
            }
            if (!report(p, status, dg, l->size, off + len)) { st = ll_fail(err, LL_ERR_CANCELLED, "push cancelled"); goto out; }
        }
        r->has_body = false;
        r->len = 0;
    } else {
        r->has_body = true;
        r->off = r->base = 0;
        r->len = l->size;
    }
    r->method = "PUT";
    if (!url_join_digest(r->url, sizeof r->url, loc, dg)) {
        st = ll_fail(err, LL_ERR_IO, "the registry's upload Location is too long");
        goto fail;
    }
    if ((st = send_req(p, r, err)) != LL_OK) goto fail;
    if (r->code != 201 && r->code != 200 && r->code != 204) {
        registry_said(r, said, sizeof said);
        st = ll_fail(err, LL_ERR_IO, "%s", said);
        goto fail;
    }
    if (!report(p, status, dg, l->size, l->size)) st = ll_fail(err, LL_ERR_CANCELLED, "push cancelled");
    goto out;
fail:
    if (st != LL_ERR_CANCELLED && strncmp(err->msg, "unauthorized", 12)) {
        char inner[sizeof err->msg];
        snprintf(inner, sizeof inner, "%s", err->msg);
        ll_status code = err->code;
        *err = (ll_error){ 0 };
        st = ll_fail(err, code, "upload %s: %s", dg, inner);
    }
out:
    if (fd >= 0) close(fd);
    free(r);
    return st;
}

// ---- the push -----------------------------------------------------------------------------------

/* Ollama's registry, or a host listed in LOCALLAMA_REGISTRY_SIGNED_HOSTS (comma-separated
 * host[:port] entries, compared case-insensitively): token requests are signed. */
static bool is_signed_host(const char *host) {
    const char *list = getenv("LOCALLAMA_REGISTRY_SIGNED_HOSTS");
    for (const char *q = list; q && *q;) {
        size_t k = strcspn(q, ",");
        if (k && k == strlen(host) && !strncasecmp(q, host, k)) return true;
        q += k + (q[k] == ',');
    }
    size_t n = strcspn(host, ":");
    static const char *const hosts[] = { "registry.ollama.ai", "ollama.com", ".ollama.com", ".ollama.ai" };
    for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++) {
        size_t k = strlen(hosts[i]);
        if (hosts[i][0] == '.' ? n > k && !strncasecmp(host + n - k, hosts[i], k)
                               : n == k && !strncasecmp(host, hosts[i], k)) return true;
    }
    return false;
}

/* Other models of the store on n's registry (same host, another repository). */
static ll_status mount_sources(ll_store *s, const ll_model_name *n, mount_src **out, size_t *n_out, ll_error *err) {
    *out = NULL;
    *n_out = 0;
    ll_model_info *v;
    size_t nv;
    if (ll_store_list(s, &v, &nv, err) != LL_OK) return err->code;
    mount_src *ms = calloc(nv ? nv : 1, sizeof *ms);
    if (!ms) { ll_model_info_free(v, nv); return ll_fail(err, LL_ERR_NOMEM, "out of memory"); }
    size_t k = 0;
    for (size_t i = 0; i < nv; i++) {
        const ll_model_name *m = &v[i].parsed;
        if (strcasecmp(m->host, n->host)) continue;
        if (!strcasecmp(m->ns, n->ns) && !strcasecmp(m->model, n->model)) continue;
        char rp[sizeof ms->repo];
        snprintf(rp, sizeof rp, "%s/%s", m->ns, m->model);
        bool dup = false;
        for (size_t j = 0; j < k && !dup; j++) dup = !strcmp(ms[j].repo, rp);
        if (dup) continue;
        bool found;
        ll_error e2 = { 0 };
        if (ll_store_manifest_read(s, m, &ms[k].m, &found, &e2) != LL_OK || !found) continue;
        memcpy(ms[k].repo, rp, sizeof rp);
        k++;
    }
    ll_model_info_free(v, nv);
    *out = ms;
    *n_out = k;
    return LL_OK;
}

ll_status ll_store_push(ll_store *s, const ll_model_name *n, const ll_push_opts *o, ll_error *err) {
    static const ll_push_opts none = { 0 };
    if (!o) o = &none;
    if (!strcmp(n->scheme, "http") && !o->insecure) return ll_fail(err, LL_ERR_ARG, "insecure protocol http");
    push *p = calloc(1, sizeof *p);
    if (!p) return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    p->s = s;
    p->o = o;
    ll_manifest *m = NULL;
    char *raw = NULL;
    size_t n_raw = 0;
    mount_src *ms = NULL;
    size_t n_ms = 0;
    bool *pinned = NULL;
    json_t *mj = NULL;
    ll_status st = LL_OK;
    if (!(p->c = curl_easy_init())) { st = ll_fail(err, LL_ERR_NOMEM, "curl: out of memory"); goto out; }
    ll_pull_base_url(n, o->insecure, p->base, sizeof p->base);
    snprintf(p->repo, sizeof p->repo, "%s/%s", n->ns, n->model);
    snprintf(p->scope, sizeof p->scope, "repository:%s:push,pull", p->repo);
    if (is_signed_host(n->host)) {
        /* Ollama keeps its key in ~/.ollama, the parent of the default store */
        const char *root = ll_store_root(s);
        const char *slash = strrchr(root, '/');
        size_t len = slash ? (size_t)(slash - root) : 0;
        snprintf(p->key_path, sizeof p->key_path, "%.*s/id_ed25519", (int)len, root);
    }

    if (!report(p, "retrieving manifest", NULL, 0, 0)) { st = ll_fail(err, LL_ERR_CANCELLED, "push cancelled"); goto out; }
    ll_model_name rn;
    bool found;
    if ((st = ll_store_resolve(s, n, &rn, &found, err)) != LL_OK) goto out;
    if (found) {
        char display[LL_NAME_FULL_MAX];
        ll_name_display(&rn, display, sizeof display);
        pthread_mutex_lock(&s->mu);
        store_mpath mp;
        st = store_manifest_dir(s, &rn, false, &mp, NULL, &found, err);
        if (st == LL_OK && found) {
            st = store_manifest_bytes(mp.dir_fd, mp.tag, display, &raw, &n_raw, &(struct timespec){ 0 }, err);
            close(mp.dir_fd);
        }
        pthread_mutex_unlock(&s->mu);
        if (st != LL_OK) goto out;
    }
    if (!found) {
        report(p, "couldn't retrieve manifest", NULL, 0, 0);
        st = ll_fail(err, LL_ERR_IO, "open %s/manifests/%s/%s/%s/%s: no such file or directory", ll_store_root(s),
                     n->host, n->ns, n->model, n->tag);
        goto out;
    }
    if ((st = ll_manifest_parse(&m, raw, n_raw, err)) != LL_OK) goto out;
    if ((st = ll_store_model_check(s, &rn, m, err)) != LL_OK) goto out;
    size_t n_blobs = m->n_layers + 1;
    if (!(pinned = calloc(n_blobs, sizeof *pinned))) { st = ll_fail(err, LL_ERR_NOMEM, "out of memory"); goto out; }
    for (size_t i = 0; i < n_blobs && st == LL_OK; i++) {   /* no GC under our feet */
        st = ll_store_pin(s, i < m->n_layers ? &m->layers[i].digest : &m->config.digest, err);
        pinned[i] = st == LL_OK;
    }
    if (st != LL_OK) goto out;
    if ((st = mount_sources(s, n, &ms, &n_ms, err)) != LL_OK) goto out;

    /* the layers, then the config, as Ollama orders them */
    for (size_t i = 0; i < n_blobs && st == LL_OK; i++)
        st = blob_push(p, i < m->n_layers ? &m->layers[i] : &m->config, ms, n_ms, err);
    if (st != LL_OK) goto out;

    if (!report(p, "pushing manifest", NULL, 0, 0)) { st = ll_fail(err, LL_ERR_CANCELLED, "push cancelled"); goto out; }
    mj = json_loadb(raw, n_raw, 0, NULL);
    const char *mt = json_string_value(json_object_get(mj, "mediaType"));
    req *r = calloc(1, sizeof *r);
    if (!r) { st = ll_fail(err, LL_ERR_NOMEM, "out of memory"); goto out; }
    r->fd = -1;
    r->method = "PUT";
    r->content_type = mt && *mt ? mt : LL_MEDIA_MANIFEST;
    r->mem = raw;
    r->len = n_raw;
    r->has_body = true;
    snprintf(r->url, sizeof r->url, "%s/v2/%s/manifests/%s", p->base, p->repo, n->tag);
    st = send_req(p, r, err);
    if (st == LL_OK && r->code != 201 && r->code != 200) {
        char said[600];
        registry_said(r, said, sizeof said);
        st = ll_fail(err, LL_ERR_IO, "push manifest: %s", said);
    } else if (st != LL_OK && st != LL_ERR_CANCELLED && strncmp(err->msg, "unauthorized", 12)) {
        char inner[sizeof err->msg];
        snprintf(inner, sizeof inner, "%s", err->msg);
        *err = (ll_error){ 0 };
        st = ll_fail(err, st, "push manifest: %s", inner);
    }
    free(r);
    if (st == LL_OK) report(p, "success", NULL, 0, 0);   /* done anyway */
out:
    for (size_t i = 0; pinned && i < m->n_layers + 1; i++)
        if (pinned[i]) ll_store_unpin(s, i < m->n_layers ? &m->layers[i].digest : &m->config.digest);
    free(pinned);
    for (size_t i = 0; i < n_ms; i++) ll_manifest_free(ms[i].m);
    free(ms);
    json_decref(mj);
    ll_manifest_free(m);
    ll_free(raw);
    if (p->c) curl_easy_cleanup(p->c);
    free(p);
    return st;
}
