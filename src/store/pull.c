/* store/pull: a model from a Docker Registry v2 server into the store. See pull.h for the
 * protocol; this file is laid out in the order a pull runs: HTTP transfers (libcurl), the
 * bearer-token dance, one blob, then the whole pull. */
#include "store/pull.h"
#include "store/registry.h"
#include "store/store_impl.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#define PULL_TOKEN_MAX  8192
#define PULL_AUTH_MAX   2048
#define PULL_PROGRESS_NS (60 * 1000000LL)   /* Ollama's ~60 ms between progress lines */

/* ll_fail keeps the first failure; this puts a prefix in front of it (Ollama's "pull model
 * manifest: …", "download sha256:…: …") and keeps its code. */
static ll_status fail_prefixed(ll_error *err, const char *prefix) {
    char inner[sizeof err->msg];
    snprintf(inner, sizeof inner, "%s", err->msg);
    ll_status code = err->code;
    *err = (ll_error){ 0 };
    return ll_fail(err, code, "%s: %s", prefix, inner);
}

// ---- one HTTP transfer ------------------------------------------------------------------------

/* Where a response body goes: memory (manifests, tokens, error bodies, capped) or, for a blob
 * answered 200/206, the partial file. Progress is reported from the write callback. */
typedef struct {
    CURL     *c;
    char     *mem;  size_t n_mem, cap_mem, max_mem;
    int       fd;               /* the partial file, or -1 */
    uint64_t  base;             /* bytes the partial held before this transfer */
    uint64_t  written;          /* bytes written to fd by this transfer */
    bool      to_file;          /* decided at the first body byte from the status */
    bool      decided, truncated, io_failed, cancelled;
    int       io_errno;
    char      auth[PULL_AUTH_MAX];   /* the last WWW-Authenticate header */
    /* progress */
    ll_pull_progress_fn fn;  void *user;
    bool    (*is_cancelled)(void *user);
    const char *status, *digest;
    uint64_t  total;
    int64_t   last_ns;
} xfer;

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static size_t on_header(char *b, size_t sz, size_t n, void *ud) {
    xfer *x = ud;
    size_t len = sz * n;
    if (len > 17 && !strncasecmp(b, "www-authenticate:", 17)) {
        size_t i = 17;
        while (i < len && (b[i] == ' ' || b[i] == '\t')) i++;
        size_t k = len - i;
        while (k && (b[i + k - 1] == '\r' || b[i + k - 1] == '\n')) k--;
        if (k >= sizeof x->auth) k = sizeof x->auth - 1;
        memcpy(x->auth, b + i, k);
        x->auth[k] = 0;
    }
    return len;
}

static size_t on_body(char *b, size_t sz, size_t n, void *ud) {
    xfer *x = ud;
    size_t len = sz * n;
    if (!x->decided) {
        long code = 0;
        curl_easy_getinfo(x->c, CURLINFO_RESPONSE_CODE, &code);
        x->decided = true;
        x->to_file = x->fd >= 0 && (code == 200 || code == 206);
        if (x->to_file && code == 200 && x->base > 0) {   /* the server ignored our Range */
            if (ftruncate(x->fd, 0) != 0) { x->io_failed = true; x->io_errno = errno; return 0; }
            x->base = 0;
            x->truncated = true;
        }
    }
    if (!x->to_file) {                                   /* memory, capped */
        if (x->n_mem + len > x->max_mem) return 0;
        if (x->n_mem + len + 1 > x->cap_mem) {
            size_t cap = x->cap_mem ? x->cap_mem : 4096;
            while (cap < x->n_mem + len + 1) cap *= 2;
            char *p = realloc(x->mem, cap);
            if (!p) return 0;
            x->mem = p;
            x->cap_mem = cap;
        }
        memcpy(x->mem + x->n_mem, b, len);
        x->n_mem += len;
        x->mem[x->n_mem] = 0;
        return len;
    }
    if (store_write_all(x->fd, b, len, "partial blob", &(ll_error){0}) != LL_OK) {
        x->io_failed = true;
        x->io_errno = errno ? errno : EIO;
        return 0;
    }
    x->written += len;
    int64_t t = now_ns();
    if (x->fn && t - x->last_ns >= PULL_PROGRESS_NS) {
        x->last_ns = t;
        if (!x->fn(x->user, x->status, x->digest, x->total, x->base + x->written)) {
            x->cancelled = true;
            return 0;
        }
    }
    return len;
}

/* libcurl calls this often during a transfer, also while it waits for bytes. */
static int on_xferinfo(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un) {
    xfer *x = ud;
    if (x->is_cancelled && x->is_cancelled(x->user)) {
        x->cancelled = true;
        return 1;
    }
    return 0;
}

/* GET url. Redirects are followed (D22: a registry may redirect to storage or answer itself).
 * from > 0 asks for the bytes from there on. *code gets the final status; a transport failure
 * is LL_ERR_IO with curl's text in err (the caller adds its prefix). */
static ll_status http_get(xfer *x, const char *url, const char *accept, const char *token,
                          uint64_t from, long *code, ll_error *err) {
    CURL *c = x->c;
    curl_easy_reset(c);
    struct curl_slist *h = NULL;
    char line[PULL_TOKEN_MAX + 32];
    if (accept) {
        snprintf(line, sizeof line, "Accept: %s", accept);
        h = curl_slist_append(h, line);
    }
    if (token && *token) {
        snprintf(line, sizeof line, "Authorization: Bearer %s", token);
        h = curl_slist_append(h, line);
    }
    char range[48];
    if (from > 0) {
        snprintf(range, sizeof range, "%llu-", (unsigned long long)from);
        curl_easy_setopt(c, CURLOPT_RANGE, range);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "locallama");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);     /* stalled a minute: give up */
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_xferinfo);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, x);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    x->auth[0] = 0;
    x->decided = x->to_file = false;
    x->n_mem = 0;
    if (x->mem) x->mem[0] = 0;
    CURLcode rc = curl_easy_perform(c);
    curl_slist_free_all(h);
    *code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, code);
    if (x->cancelled) return ll_fail(err, LL_ERR_CANCELLED, "pull cancelled");
    if (x->io_failed) {
        errno = x->io_errno;
        return ll_fail(err, LL_ERR_IO, "writing partial blob: %s", strerror(x->io_errno));
    }
    if (rc != CURLE_OK)
        return ll_fail(err, LL_ERR_IO, "Get \"%s\": %s", url, curl_easy_strerror(rc));
    return LL_OK;
}

// ---- the pull ---------------------------------------------------------------------------------

typedef struct {
    ll_store *s;
    const ll_pull_opts *o;
    xfer x;
    char base[LL_NAME_HOST_MAX + 16];
    char repo[2 * LL_NAME_PART_MAX + 2];     /* ns/model */
    char token[PULL_TOKEN_MAX];
} pull;

static bool report(pull *p, const char *status, const char *digest, uint64_t total, uint64_t done) {
    if (p->o->cancelled && p->o->cancelled(p->o->user)) return false;
    return !p->o->progress || p->o->progress(p->o->user, status, digest, total, done);
}

/* A GET that answers one Bearer challenge with a token and retries once. */
static ll_status get_authed(pull *p, const char *url, const char *accept, uint64_t from, long *code,
                            ll_error *err) {
    if (http_get(&p->x, url, accept, p->token, from, code, err) != LL_OK) return err->code;
    if (*code != 401 || !p->x.auth[0]) return LL_OK;
    char challenge[PULL_AUTH_MAX];
    snprintf(challenge, sizeof challenge, "%s", p->x.auth);
    int fd = p->x.fd;
    p->x.fd = -1;                                        /* the token body goes to memory */
    ll_status st = ll_registry_fetch_token(p->x.c, challenge, NULL, NULL, p->token, sizeof p->token, err);
    p->x.fd = fd;
    if (st != LL_OK) return st;
    return http_get(&p->x, url, accept, p->token, from, code, err);
}

static ll_status sha256_fd(int fd, char hex[65], uint64_t *size, ll_error *err) {
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    if (!c || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1) { EVP_MD_CTX_free(c); return ll_fail(err, LL_ERR_NOMEM, "sha256: out of memory"); }
    static __thread unsigned char buf[1 << 16];
    uint64_t total = 0;
    ssize_t r;
    if (lseek(fd, 0, SEEK_SET) != 0) { EVP_MD_CTX_free(c); return ll_fail(err, LL_ERR_IO, "partial blob: %s", strerror(errno)); }
    while ((r = read(fd, buf, sizeof buf)) != 0) {
        if (r < 0) {
            if (errno == EINTR) continue;
            EVP_MD_CTX_free(c);
            return ll_fail(err, LL_ERR_IO, "reading partial blob: %s", strerror(errno));
        }
        EVP_DigestUpdate(c, buf, (size_t)r);
        total += (uint64_t)r;
    }
    unsigned char md[32];
    EVP_DigestFinal_ex(c, md, NULL);
    EVP_MD_CTX_free(c);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
    *size = total;
    return LL_OK;
}

/* Download one blob into blobs/sha256-<hex>-partial (resuming from its size). *have is true
 * when the store already holds it (nothing to verify). The partial's descriptor stays open and
 * flock-ed in *pfd until blob_commit, so two pulls of one blob never write it together: the
 * second waits, then finds the blob in place and downloads nothing. */
static ll_status blob_fetch(pull *p, const ll_layer *l, bool *have, int *pfd, ll_error *err) {
    ll_store *s = p->s;
    char dg[80], status[32], pname[96];
    ll_digest_str(&l->digest, dg, sizeof dg);
    snprintf(status, sizeof status, "pulling %.12s", l->digest.hex);
    snprintf(pname, sizeof pname, "sha256-%s-partial", l->digest.hex);
    uint64_t size = 0;
    *pfd = -1;
    *have = false;
    if (ll_store_blob_exists(s, &l->digest, &size) && size == l->size) {
        *have = true;
        return report(p, status, dg, l->size, l->size) ? LL_OK : ll_fail(err, LL_ERR_CANCELLED, "pull cancelled");
    }
    int fd = openat(s->blobs_fd, pname, O_RDWR | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) return ll_fail(err, LL_ERR_IO, "opening %s: %s", pname, strerror(errno));
    if (flock(fd, LOCK_EX) != 0) { close(fd); return ll_fail(err, LL_ERR_IO, "locking %s: %s", pname, strerror(errno)); }
    if (ll_store_blob_exists(s, &l->digest, &size) && size == l->size) {   /* another pull won */
        close(fd);
        *have = true;
        return report(p, status, dg, l->size, l->size) ? LL_OK : ll_fail(err, LL_ERR_CANCELLED, "pull cancelled");
    }
    struct stat st;
    if (fstat(fd, &st) != 0) { close(fd); return ll_fail(err, LL_ERR_IO, "%s: %s", pname, strerror(errno)); }
    uint64_t from = (uint64_t)st.st_size;
    if (from > l->size) {                                /* not ours to trust: start again */
        if (ftruncate(fd, 0) != 0) { close(fd); return ll_fail(err, LL_ERR_IO, "%s: %s", pname, strerror(errno)); }
        from = 0;
    }
    struct statvfs vfs;
    if (fstatvfs(fd, &vfs) == 0) {
        uint64_t avail = (uint64_t)vfs.f_bavail * vfs.f_frsize, need = l->size - from;
        if (avail < need) {
            close(fd);
            return ll_fail(err, LL_ERR_IO, "insufficient disk space: need %llu bytes for %s, %llu available",
                           (unsigned long long)need, dg, (unsigned long long)avail);
        }
    }
    *pfd = fd;
    if (!report(p, status, dg, l->size, from)) return ll_fail(err, LL_ERR_CANCELLED, "pull cancelled");
    if (from == l->size) return LL_OK;                   /* a finished partial: verify it */
    char url[LL_NAME_HOST_MAX + 512];
    snprintf(url, sizeof url, "%s/v2/%s/blobs/%s", p->base, p->repo, dg);
    xfer *x = &p->x;
    x->fd = fd;
    x->base = from;
    x->written = 0;
    x->status = status;
    x->digest = dg;
    x->total = l->size;
    x->last_ns = now_ns();
    x->max_mem = 64 * 1024;
    long code;
    ll_status rc = get_authed(p, url, NULL, from, &code, err);
    x->fd = -1;
    if (rc != LL_OK) {
        char prefix[96];
        snprintf(prefix, sizeof prefix, "download %s", dg);
        return rc == LL_ERR_CANCELLED ? rc : fail_prefixed(err, prefix);
    }
    if (code != 200 && code != 206) {
        if (code == 404) return ll_fail(err, LL_ERR_IO, "download %s: file does not exist", dg);
        return ll_fail(err, LL_ERR_IO, "download %s: registry answered %ld", dg, code);
    }
    if (!report(p, status, dg, l->size, x->base + x->written)) return ll_fail(err, LL_ERR_CANCELLED, "pull cancelled");
    return LL_OK;
}

/* Hash the partial; on a match rename it into place (pinned until the manifest is written),
 * on a mismatch delete it. Closes fd. */
static ll_status blob_commit(pull *p, const ll_layer *l, int fd, ll_error *err) {
    ll_store *s = p->s;
    char dg[80], pname[96], fname[80], hex[65];
    ll_digest_str(&l->digest, dg, sizeof dg);
    snprintf(pname, sizeof pname, "sha256-%s-partial", l->digest.hex);
    snprintf(fname, sizeof fname, "sha256-%s", l->digest.hex);
    uint64_t got = 0;
    ll_status st = sha256_fd(fd, hex, &got, err);
    if (st == LL_OK && (got != l->size || strcmp(hex, l->digest.hex))) {
        unlinkat(s->blobs_fd, pname, 0);
        st = ll_fail(err, LL_ERR_FORMAT, "digest mismatch, file must be downloaded again: %s", dg);
    }
    if (st == LL_OK) fsync(fd);
    if (st == LL_OK) {
        pthread_mutex_lock(&s->mu);
        if (renameat(s->blobs_fd, pname, s->blobs_fd, fname) != 0)
            st = ll_fail(err, LL_ERR_IO, "renaming %s: %s", pname, strerror(errno));
        else st = store_pin_locked(s, &l->digest, err);
        pthread_mutex_unlock(&s->mu);
        if (st == LL_OK) fsync(s->blobs_fd);
    }
    close(fd);
    return st;
}

void ll_pull_base_url(const ll_model_name *n, bool insecure, char *buf, size_t cap) {
    snprintf(buf, cap, "%s://%s", insecure ? "http" : (n->scheme[0] ? n->scheme : "https"), n->host);
}

ll_status ll_store_pull(ll_store *s, const ll_model_name *n, const ll_pull_opts *o, ll_error *err) {
    static const ll_pull_opts none = { 0 };
    if (!o) o = &none;
    if (ll_store_read_only(s)) return ll_fail(err, LL_ERR_IO, "model store is read-only");
    pull *p = calloc(1, sizeof *p);
    if (!p) return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    p->s = s;
    p->o = o;
    p->x.fd = -1;
    p->x.fn = o->progress;
    p->x.user = o->user;
    p->x.is_cancelled = o->cancelled;
    ll_manifest *m = NULL;
    int *fds = NULL;
    bool *have = NULL, *pinned = NULL;
    size_t n_blobs = 0;
    ll_status st = LL_OK;
    if (!(p->x.c = curl_easy_init())) { st = ll_fail(err, LL_ERR_NOMEM, "curl: out of memory"); goto out; }
    if (!strcmp(n->scheme, "http") && !o->insecure) { st = ll_fail(err, LL_ERR_ARG, "insecure protocol http"); goto out; }
    ll_pull_base_url(n, o->insecure, p->base, sizeof p->base);
    snprintf(p->repo, sizeof p->repo, "%s/%s", n->ns, n->model);

    if (!report(p, "pulling manifest", NULL, 0, 0)) { st = ll_fail(err, LL_ERR_CANCELLED, "pull cancelled"); goto out; }
    char url[LL_NAME_HOST_MAX + 512];
    snprintf(url, sizeof url, "%s/v2/%s/manifests/%s", p->base, p->repo, n->tag);
    long code;
    p->x.max_mem = LL_MANIFEST_MAX_BYTES;
    if (get_authed(p, url, LL_MEDIA_MANIFEST, 0, &code, err) != LL_OK) {
        st = err->code == LL_ERR_CANCELLED ? err->code : fail_prefixed(err, "pull model manifest");
        goto out;
    }
    if (code == 404) { st = ll_fail(err, LL_ERR_IO, "pull model manifest: file does not exist"); goto out; }
    if (code == 401 || code == 403) { st = ll_fail(err, LL_ERR_IO, "pull model manifest: unauthorized"); goto out; }
    if (code != 200) { st = ll_fail(err, LL_ERR_IO, "pull model manifest: registry answered %ld", code); goto out; }
    size_t n_raw = p->x.n_mem;
    char *raw = p->x.mem;
    p->x.mem = NULL;
    p->x.n_mem = p->x.cap_mem = 0;
    if (!raw) { st = ll_fail(err, LL_ERR_FORMAT, "pull model manifest: empty answer"); goto out; }
    if (ll_manifest_parse(&m, raw, n_raw, err) != LL_OK) {
        free(raw);
        st = fail_prefixed(err, "pull model manifest");
        goto out;
    }

    /* the layers, then the config, as Ollama orders them */
    n_blobs = m->n_layers + 1;
    fds = calloc(n_blobs, sizeof *fds);
    have = calloc(n_blobs, sizeof *have);
    pinned = calloc(n_blobs, sizeof *pinned);
    if (!fds || !have || !pinned) { free(raw); st = ll_fail(err, LL_ERR_NOMEM, "out of memory"); goto out; }
    for (size_t i = 0; i < n_blobs; i++) fds[i] = -1;
    /* Each blob is verified and renamed right after its download, so a pull holds the lock
     * of one partial at a time: two pulls whose manifests share blobs in different orders
     * cannot wait on each other. Ollama's "verifying sha256 digest" phase line follows. */
    for (size_t i = 0; i < n_blobs && st == LL_OK; i++) {
        const ll_layer *l = i < m->n_layers ? &m->layers[i] : &m->config;
        st = blob_fetch(p, l, &have[i], &fds[i], err);
        if (st != LL_OK || have[i]) continue;
        int fd = fds[i];
        fds[i] = -1;
        st = blob_commit(p, l, fd, err);
        pinned[i] = st == LL_OK;
    }
    if (st == LL_OK && !report(p, "verifying sha256 digest", NULL, 0, 0)) st = ll_fail(err, LL_ERR_CANCELLED, "pull cancelled");
    if (st == LL_OK && !report(p, "writing manifest", NULL, 0, 0)) st = ll_fail(err, LL_ERR_CANCELLED, "pull cancelled");
    if (st == LL_OK) {                                   /* byte for byte as received (§4.2) */
        char display[LL_NAME_FULL_MAX];
        ll_name_display(n, display, sizeof display);
        pthread_mutex_lock(&s->mu);
        store_mpath mp;
        bool found;
        st = store_manifest_dir(s, n, true, &mp, NULL, &found, err);
        if (st == LL_OK) {
            st = store_manifest_put(s, mp.dir_fd, mp.tag, raw, n_raw, display, err);
            close(mp.dir_fd);
        }
        pthread_mutex_unlock(&s->mu);
    }
    free(raw);
    if (st == LL_OK && !report(p, "success", NULL, 0, 0)) st = LL_OK;   /* done anyway */
out:
    for (size_t i = 0; i < n_blobs; i++) if (fds && fds[i] >= 0) close(fds[i]);
    for (size_t i = 0; pinned && i < n_blobs; i++)
        if (pinned[i]) ll_store_unpin(s, i < m->n_layers ? &m->layers[i].digest : &m->config.digest);
    free(fds);
    free(have);
    free(pinned);
    ll_manifest_free(m);
    if (p->x.c) curl_easy_cleanup(p->x.c);
    free(p->x.mem);
    free(p);
    return st;
}
