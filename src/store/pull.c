/* store/pull: a model from a Docker Registry v2 server into the store. See pull.h for the
 * protocol; this file is laid out in the order a pull runs: HTTP transfers (libcurl), the
 * bearer-token dance, one blob in parallel ranged parts, then the whole pull. */
#include "store/pull.h"
#include "store/registry.h"
#include "store/store_impl.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/mman.h>
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

/* One blocking GET for manifests: the body goes to memory (capped). Blobs go through the
 * parts below; tokens through store/registry. */
typedef struct {
    CURL     *c;
    char     *mem;  size_t n_mem, cap_mem, max_mem;
    bool      cancelled;
    char      auth[PULL_AUTH_MAX];   /* the last WWW-Authenticate header */
    void     *user;
    bool    (*is_cancelled)(void *user);
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
 * *code gets the final status; a transport failure is LL_ERR_IO with curl's text in err (the
 * caller adds its prefix). */
static ll_status http_get(xfer *x, const char *url, const char *accept, const char *token,
                          long *code, ll_error *err) {
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
    x->n_mem = 0;
    if (x->mem) x->mem[0] = 0;
    CURLcode rc = curl_easy_perform(c);
    curl_slist_free_all(h);
    *code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, code);
    if (x->cancelled) return ll_fail(err, LL_ERR_CANCELLED, "pull cancelled");
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
static ll_status get_authed(pull *p, const char *url, const char *accept, long *code, ll_error *err) {
    if (http_get(&p->x, url, accept, p->token, code, err) != LL_OK) return err->code;
    if (*code != 401 || !p->x.auth[0]) return LL_OK;
    char challenge[PULL_AUTH_MAX];
    snprintf(challenge, sizeof challenge, "%s", p->x.auth);
    ll_status st = ll_registry_fetch_token(p->x.c, challenge, NULL, NULL, p->token, sizeof p->token, err);
    if (st != LL_OK) return st;
    return http_get(&p->x, url, accept, p->token, code, err);
}

// ---- one blob in parallel ranged parts --------------------------------------------------------
//
// A blob is cut into parts (part_plan); up to n_conns of them download at once over one curl
// multi handle, each GET asking with Range for the part's remaining bytes (once one connection
// is chosen, for those of the untouched parts after it too: span_parts) and writing them with
// pwrite at their offset into blobs/sha256-<hex>-partial, which is sized to the whole blob up
// front. Each part's progress is kept in blobs/sha256-<hex>-partial-<n> (Ollama's name for the
// same thing), written after the bytes it counts, so a pull killed at any point resumes every
// part where its saved count ends. A hasher thread follows the contiguous prefix of finished
// bytes, reading them in place through a mapping of the partial (the one read of the blob, no
// copy), so the SHA-256 is mostly done when the last byte lands, and a flusher thread writes
// the landed bytes to disk meanwhile, so the fdatasync before the rename finds little left.

#define PULL_PART_MIN     (32ull << 20)  /* below this a blob is one part */
#define PULL_PARTS_MAX    64             /* bigger blobs get bigger parts */
#define PULL_CONNS        8              /* parts in flight at once, at most */
#define PULL_PROBE_NS     (250000000LL)  /* a connection count is measured this long */
#define PULL_PROBE_FAST   (512e6)        /* bytes/s: one connection this fast is not probed further */
#define PULL_RETRIES      5              /* attempts in a row without progress, per part */
#define PULL_STATE_NS     (1000000000LL) /* a part's progress is saved about once a second */
#define PULL_STATE_BYTES  160            /* fixed-size record: one pwrite replaces it whole */
#define PULL_PARTS_READ   4096           /* more part files than this are not ours */
#define PULL_DISCARD_MAX  (1u << 20)     /* a non-2xx body is read and dropped up to this */
#define PULL_HASH_BUF     (1u << 20)      /* the pread fallback's buffer */
#define PULL_HASH_WINDOW  (64ull << 20)   /* the hasher maps the partial this much at a time */
#define PULL_FLUSH_BYTES  (8u << 20)      /* the flusher writes back 8 MiB at a time */

struct blob_dl;

typedef struct {
    struct blob_dl *b;
    int       n;                 /* index, the <n> of its state file */
    uint64_t  offset, size;      /* bytes [offset, offset + size) of the blob */
    uint64_t  done;              /* bytes from offset written to the partial */
    uint64_t  landed;            /* done as the flusher sees it (under b->mu) */
    uint64_t  flushed;           /* bytes from offset whose write-back was started (under b->mu) */
    uint64_t  saved;             /* done as last written to the state file */
    int64_t   saved_ns;
    int       state_fd;
    CURL     *c;                 /* non-NULL while in flight */
    struct curl_slist *hdr;
    uint64_t  done_at_start;     /* done of the parts it spans when this attempt began */
    int       span_end;          /* this attempt runs on into parts [n + 1, span_end) (span_parts) */
    int       cur;               /* the part its bytes go to now */
    bool      claimed;           /* in another part's span: not started on its own */
    int       tries;             /* attempts in a row that made no progress */
    bool      flowing;           /* this attempt has written body bytes */
    int64_t   retry_ns;          /* not started again before this time */
    unsigned  token_gen;         /* b->token_gen when this attempt began */
    /* this attempt's response (the header callback resets it for each response) */
    long      code;
    bool      to_file, decided, overflow;
    bool      cut;               /* its span was cut short (span_cut): stops at the end of part cur */
    bool      has_range;  uint64_t range_start;   /* Content-Range: bytes <start>-… */
    size_t    discarded;
    char      auth[PULL_AUTH_MAX];
    char      errbuf[CURL_ERROR_SIZE];
} part;

/* The connection count of a blob's download (probe_step): level parts in flight, measured
 * while not settled. */
typedef struct {
    int      level, prev;        /* parts in flight now; before the last step (0: none) */
    int      most;               /* the most that were in flight at once */
    double   prev_rate;          /* bytes/s measured at prev */
    bool     settled, open;      /* open: a measuring window runs since t0, at bytes0 */
    int64_t  t0;
    uint64_t bytes0;
    char     log[160];           /* "1: 410 MB/s, 2: 395 MB/s" for the log line */
} conn_probe;

typedef struct blob_dl {
    pull     *p;
    const ll_layer *l;
    char      dg[80], status[32], url[LL_NAME_HOST_MAX + 512];
    int       fd;                /* the partial, flock-ed by us */
    part     *parts;
    int       n_parts, n_conns;  /* n_conns: the most in flight at once */
    bool      conns_fixed;       /* LOCALLAMA_PULL_CONNECTIONS: always n_conns */
    conn_probe probe;            /* how many of them (parts_run) */
    bool      io_failed;  int io_errno;
    bool      no_ranges;         /* the registry answered a ranged GET with the whole blob */
    int       n_gets;            /* blob GETs started (a GET may span several parts) */
    unsigned  token_gen;         /* bumped each time p->token is renewed */
    /* the hasher thread; mu guards frontier, stop and abandon */
    pthread_t       th, fl;      /* hasher, flusher */
    bool            th_started, fl_started;
    pthread_mutex_t mu;
    pthread_cond_t  cv;
    uint64_t        frontier;    /* bytes [0, frontier) are final */
    bool            stop;        /* hash up to frontier, then exit */
    bool            abandon;     /* exit now */
    /* the thread's alone until joined */
    uint64_t        hashed;
    _Atomic uint64_t hashed_pub; /* hashed, for the log line */
    bool            hash_failed;
    int             hash_errno;
    EVP_MD_CTX     *md;
} blob_dl;

static uint64_t env_u64(const char *name, uint64_t lo, uint64_t hi) {
    const char *v = getenv(name);
    if (!v || !*v) return 0;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    uint64_t mul = 1;
    if (*end == 'k' || *end == 'K') { mul = 1ull << 10; end++; }
    else if (*end == 'm' || *end == 'M') { mul = 1ull << 20; end++; }
    else if (*end == 'g' || *end == 'G') { mul = 1ull << 30; end++; }
    if (errno || *end || x == 0 || x > hi / mul || x * mul < lo) {
        LL_WARN("pull: ignoring %s=%s (want a number from %llu to %llu, K/M/G allowed)", name, v,
                (unsigned long long)lo, (unsigned long long)hi);
        return 0;
    }
    return x * mul;
}

/* How a blob is cut (pull.h): parts of max(32 MiB, size / 64) rounded up to a MiB, or of
 * LOCALLAMA_PULL_PART_SIZE bytes; n_conns of them in flight, 8 or LOCALLAMA_PULL_CONNECTIONS. */
static void part_plan(blob_dl *b, uint64_t *part_size) {
    uint64_t size = b->l->size, ps = env_u64("LOCALLAMA_PULL_PART_SIZE", 4096, 1ull << 50);
    if (!ps) {
        ps = (size / PULL_PARTS_MAX + (1u << 20) - 1) & ~(uint64_t)((1u << 20) - 1);
        if (ps < PULL_PART_MIN) ps = PULL_PART_MIN;
    }
    if (size / ps >= PULL_PARTS_READ) ps = size / (PULL_PARTS_READ - 1) + 1;
    *part_size = ps;
}

static int blob_conns(bool *fixed) {
    uint64_t c = env_u64("LOCALLAMA_PULL_CONNECTIONS", 1, 64);
    *fixed = c != 0;
    return c ? (int)c : PULL_CONNS;
}

/* The state record: Ollama's part-file fields, so either program sees the other's layout.
 * Ollama keeps Completed in an atomic its JSON encoder writes as {}; our count is "Done". */
static void part_save(part *t) {
    char rec[PULL_STATE_BYTES];
    int k = snprintf(rec, sizeof rec, "{\"N\":%d,\"Offset\":%llu,\"Size\":%llu,\"Completed\":{},\"Done\":%llu}",
                     t->n, (unsigned long long)t->offset, (unsigned long long)t->size,
                     (unsigned long long)t->done);
    if (t->state_fd < 0 || k < 0 || k >= (int)sizeof rec - 1) return;
    memset(rec + k, ' ', sizeof rec - 1 - (size_t)k);
    rec[sizeof rec - 1] = '\n';
    if (pwrite(t->state_fd, rec, sizeof rec, 0) == (ssize_t)sizeof rec) {
        t->saved = t->done;
        t->saved_ns = now_ns();
    }
}

/* Remove state files n = from, from + 1, … until one is missing. */
static void parts_unlink(ll_store *s, const ll_digest *d, int from) {
    char name[112];
    for (int n = from; n < PULL_PARTS_READ; n++) {
        snprintf(name, sizeof name, "sha256-%s-partial-%d", d->hex, n);
        if (unlinkat(s->blobs_fd, name, 0) != 0 && errno == ENOENT) break;
    }
}

static void parts_free(blob_dl *b) {
    for (int i = 0; i < b->n_parts; i++)
        if (b->parts[i].state_fd >= 0) close(b->parts[i].state_fd);
    free(b->parts);
    b->parts = NULL;
    b->n_parts = 0;
}

/* The state files an earlier pull left. true (b->parts filled) when they cover the whole blob
 * in order and the partial has the blob's size, as a layout we wrote always does. */
static bool parts_load(blob_dl *b, uint64_t st_size) {
    ll_store *s = b->p->s;
    uint64_t size = b->l->size, at = 0;
    int cap = 0;
    for (int n = 0; n < PULL_PARTS_READ; n++) {
        char name[112];
        snprintf(name, sizeof name, "sha256-%s-partial-%d", b->l->digest.hex, n);
        int fd = openat(s->blobs_fd, name, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) break;
        char buf[1024];
        ssize_t r = pread(fd, buf, sizeof buf, 0);
        json_t *j = r > 0 ? json_loadb(buf, (size_t)r, JSON_DISABLE_EOF_CHECK, NULL) : NULL;
        json_int_t jn = json_integer_value(json_object_get(j, "N")),
                   jo = json_integer_value(json_object_get(j, "Offset")),
                   js = json_integer_value(json_object_get(j, "Size")),
                   jd = json_integer_value(json_object_get(j, "Done"));
        json_decref(j);
        if (!j || jn != n || jo < 0 || js <= 0 || jd < 0 || (uint64_t)jo != at ||
            (uint64_t)js > size - at || jd > js) { close(fd); goto bad; }
        if (b->n_parts == cap) {
            part *v = realloc(b->parts, (size_t)(cap = cap ? 2 * cap : 16) * sizeof *v);
            if (!v) { close(fd); goto bad; }
            b->parts = v;
        }
        b->parts[b->n_parts++] = (part){ .b = b, .n = n, .offset = (uint64_t)jo, .size = (uint64_t)js,
                                         .done = (uint64_t)jd, .saved = (uint64_t)jd, .state_fd = fd };
        at += (uint64_t)js;
    }
    if (b->n_parts > 0 && at == size && st_size == size) return true;
bad:
    parts_free(b);
    return false;
}

/* A fresh layout: bytes [0, have) already in the partial (a single-stream partial of an older
 * pull, or none) count as done. A blob above one part size is cut so that the first n_conns
 * parts ramp up (P/n, 2P/n, … P) and the rest are P: parts that run side by side at one speed
 * then end one after another, so the finished prefix, and the hash behind it, moves on
 * steadily instead of jumping a whole window at a time (which left up to n_conns - 1 parts to
 * hash after the last byte). State files are written before the partial is sized. */
static ll_status parts_create(blob_dl *b, uint64_t part_size, uint64_t have, ll_error *err) {
    ll_store *s = b->p->s;
    uint64_t size = b->l->size;
    uint64_t n_conns = size > part_size ? (uint64_t)b->n_conns : 1;
    parts_unlink(s, &b->l->digest, 0);
    size_t cap = 0;
    for (uint64_t off = 0, i = 0; off < size || (size == 0 && i == 0); i++) {
        uint64_t len = i < n_conns ? part_size / n_conns * (i + 1) : part_size;
        if (i + 1 == n_conns) len = part_size;
        if (len == 0) len = 1;
        if (len > size - off || b->n_parts + 1 == PULL_PARTS_READ) len = size - off;
        if ((size_t)b->n_parts == cap) {
            part *v = realloc(b->parts, (cap = cap ? 2 * cap : 16) * sizeof *v);
            if (!v) return ll_fail(err, LL_ERR_NOMEM, "out of memory");
            b->parts = v;
        }
        part *t = &b->parts[b->n_parts];
        *t = (part){ .b = b, .n = b->n_parts, .offset = off, .size = len, .state_fd = -1 };
        t->done = have <= off ? 0 : have - off < len ? have - off : len;
        char name[112];
        snprintf(name, sizeof name, "sha256-%s-partial-%d", b->l->digest.hex, t->n);
        t->state_fd = openat(s->blobs_fd, name, O_RDWR | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (t->state_fd < 0) return ll_fail(err, LL_ERR_IO, "creating %s: %s", name, strerror(errno));
        b->n_parts++;
        part_save(t);
        off += len;
    }
    return LL_OK;
}

// -- the hasher

/* SHA-256 over n bytes that lie in memory but mostly not in this core's caches (the receiving
 * thread wrote them): 4 KiB at a time, the next 4 KiB prefetched meanwhile. The CPU's own
 * prefetcher stops at each page's end, and the hash then waits on memory at every page: 1 GiB
 * of page cache hashed in 0.78 s one update at a time, 0.57 s this way, against 0.53 s from
 * L1 (this VM's Xeon with SHA extensions; bench of Dec 3). */
static void hash_mapped(EVP_MD_CTX *md, const unsigned char *p, size_t n) {
    enum { STEP = 4096, LINE = 64 };
    while (n > STEP) {
        size_t ahead = n - STEP < STEP ? n - STEP : STEP;
        for (size_t k = 0; k < ahead; k += LINE) __builtin_prefetch(p + STEP + k, 0, 3);
        EVP_DigestUpdate(md, p, STEP);
        p += STEP;
        n -= STEP;
    }
    EVP_DigestUpdate(md, p, n);
}

/* Hash bytes [b->hashed, to) of the partial. They are read where they lie, in the page cache,
 * through a read-only mapping of the file in PULL_HASH_WINDOW windows (*win, *win_at), whose
 * page tables are filled for each landed range at once (MADV_POPULATE_READ: no fault per 64
 * KiB). This is the only read of the blob, and it copies nothing: a pread into a buffer cost
 * a tenth of the hashing CPU again, on two cores shared with the registry. Where the file
 * cannot be mapped, pread it is. false on a read error (b->hash_errno). */
static bool hash_range(blob_dl *b, uint64_t to, unsigned char **win, uint64_t *win_at, size_t *win_len,
                       unsigned char *buf) {
    static const long page_size = 4096;
    uint64_t size = b->l->size;
    while (b->hashed < to) {
        size_t k;
        if (*win || !buf) {
            uint64_t at = b->hashed / PULL_HASH_WINDOW * PULL_HASH_WINDOW;
            uint64_t len = size - at < PULL_HASH_WINDOW ? size - at : PULL_HASH_WINDOW;
            if (*win && *win_at != at) { munmap(*win, *win_len); *win = NULL; }
            if (!*win) {
                void *m = mmap(NULL, (size_t)len, PROT_READ, MAP_SHARED, b->fd, (off_t)at);
                if (m == MAP_FAILED) { b->hash_errno = errno; return false; }
                *win = m;
                *win_at = at;
                *win_len = (size_t)len;
            }
            uint64_t end = to < at + len ? to : at + len;
            k = (size_t)(end - b->hashed);
            uint64_t lo = (b->hashed - at) / page_size * page_size;
            madvise(*win + lo, (size_t)(end - at - lo), MADV_POPULATE_READ);   /* a hint: faults do it otherwise */
            hash_mapped(b->md, *win + (b->hashed - at), k);
        } else {
            k = to - b->hashed < PULL_HASH_BUF ? (size_t)(to - b->hashed) : PULL_HASH_BUF;
            ssize_t r = pread(b->fd, buf, k, (off_t)b->hashed);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) { b->hash_errno = r < 0 ? errno : EIO; return false; }
            k = (size_t)r;
            EVP_DigestUpdate(b->md, buf, k);
        }
        b->hashed += k;
        atomic_store_explicit(&b->hashed_pub, b->hashed, memory_order_relaxed);
    }
    return true;
}

/* The hasher: follows the end of the finished prefix (b->frontier). */
static void *hasher_main(void *arg) {
    blob_dl *b = arg;
    unsigned char *win = NULL, *buf = NULL;
    uint64_t win_at = 0;
    size_t win_len = 0;
    /* one probe mapping decides the way: a file system without mmap gets the pread path */
    if (b->l->size) {
        void *m = mmap(NULL, 1, PROT_READ, MAP_SHARED, b->fd, 0);
        if (m == MAP_FAILED && !(buf = malloc(PULL_HASH_BUF))) { b->hash_failed = true; b->hash_errno = ENOMEM; }
        if (m != MAP_FAILED) munmap(m, 1);
    }
    for (;;) {
        pthread_mutex_lock(&b->mu);
        while (!b->abandon && !b->stop && b->frontier == b->hashed) pthread_cond_wait(&b->cv, &b->mu);
        uint64_t to = b->frontier;
        bool quit = b->abandon || (b->stop && to == b->hashed) || b->hash_failed;
        pthread_mutex_unlock(&b->mu);
        if (quit) break;
        if (!hash_range(b, to, &win, &win_at, &win_len, buf)) b->hash_failed = true;
    }
    if (win) munmap(win, win_len);
    free(buf);
    return NULL;
}

/* The next write-back the flusher owes (b->mu held): the first part with PULL_FLUSH_BYTES
 * landed beyond its flushed bytes, or finished with any. */
static bool flush_next(blob_dl *b, part **out, uint64_t *to) {
    for (int i = 0; i < b->n_parts; i++) {
        part *t = &b->parts[i];
        uint64_t end = t->landed == t->size ? t->size : t->landed / PULL_FLUSH_BYTES * PULL_FLUSH_BYTES;
        if (end > t->flushed) { *out = t; *to = end; return true; }
    }
    return false;
}

/* The flusher: starts the write-back of every region as its bytes land, in each part (not
 * only the finished prefix: with parts in flight side by side that left each one's bytes
 * dirty until its prefix closed, up to a part per connection, 1.5 s of fdatasync at the end
 * of a 1 GiB pull). The page cache would otherwise hold the whole blob dirty and the disk
 * start only after the last byte; this way the disk writes while the network delivers, and
 * the fdatasync before the rename finds little left. Each region is written and waited for
 * (WRITE alone is WB_SYNC_NONE, which may skip pages: the end fdatasync then found as much
 * left as before), which blocks at disk speed, hence a thread of its own (in the hasher it
 * held the hash back to disk speed). */
static void *flusher_main(void *arg) {
    blob_dl *b = arg;
    pthread_mutex_lock(&b->mu);
    for (;;) {
        part *t = NULL;
        uint64_t to = 0;
        while (!b->abandon && !b->stop && !flush_next(b, &t, &to)) pthread_cond_wait(&b->cv, &b->mu);
        if (b->abandon || b->stop) break;          /* the fdatasync after does the rest */
        uint64_t from = t->flushed;
        t->flushed = to;
        pthread_mutex_unlock(&b->mu);
        sync_file_range(b->fd, (off_t)(t->offset + from), (off_t)(to - from),
                        SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
        pthread_mutex_lock(&b->mu);
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

/* Tell the threads what landed: the end of the finished prefix (whole parts, then the done
 * bytes of the first unfinished) for the hasher, each part's count for the flusher. */
static void hasher_advance(blob_dl *b) {
    uint64_t f = 0;
    bool prefix = true, wake = false;
    pthread_mutex_lock(&b->mu);
    for (int i = 0; i < b->n_parts; i++) {
        part *t = &b->parts[i];
        if (prefix) f = t->offset + t->done;
        if (t->done < t->size) prefix = false;
        if (t->done != t->landed) {
            wake |= t->done == t->size || t->done / PULL_FLUSH_BYTES != t->landed / PULL_FLUSH_BYTES;
            t->landed = t->done;
        }
    }
    if (f > b->frontier) {
        b->frontier = f;
        wake = true;
    }
    if (wake) pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

/* LOCALLAMA_PULL_SYNC=0: no write-back while downloading and no fdatasync before the rename,
 * as Ollama (its blobs reach the disk when the kernel writes them back; a power cut soon after
 * a pull can leave a named blob without its data). The default flushes. */
static bool pull_sync(void) {
    const char *v = getenv("LOCALLAMA_PULL_SYNC");
    return !(v && !strcmp(v, "0"));
}

/* Start the hasher and the flusher. */
static bool hasher_start(blob_dl *b) {
    if (pthread_create(&b->th, NULL, hasher_main, b) != 0) return false;
    b->th_started = true;
    if (pull_sync())
        b->fl_started = pthread_create(&b->fl, NULL, flusher_main, b) == 0;   /* optional */
    return true;
}

/* Stop both threads: with finish, after the hasher hashed up to the frontier. */
static void hasher_join(blob_dl *b, bool finish) {
    if (!b->th_started) return;
    pthread_mutex_lock(&b->mu);
    if (finish) b->stop = true; else b->abandon = true;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
    pthread_join(b->th, NULL);
    if (b->fl_started) pthread_join(b->fl, NULL);
    b->th_started = b->fl_started = false;
}

// -- one part's transfer

static size_t part_on_header(char *h, size_t sz, size_t nm, void *ud) {
    part *t = ud;
    size_t len = sz * nm;
    if (len >= 5 && !strncmp(h, "HTTP/", 5)) {                 /* a new response (redirects) */
        t->auth[0] = 0;
        t->has_range = false;
        t->decided = false;
    } else if (len > 17 && !strncasecmp(h, "www-authenticate:", 17)) {
        size_t i = 17;
        while (i < len && (h[i] == ' ' || h[i] == '\t')) i++;
        size_t k = len - i;
        while (k && (h[i + k - 1] == '\r' || h[i + k - 1] == '\n')) k--;
        if (k >= sizeof t->auth) k = sizeof t->auth - 1;
        memcpy(t->auth, h + i, k);
        t->auth[k] = 0;
    } else if (len > 14 && !strncasecmp(h, "content-range:", 14)) {
        char tmp[128];
        size_t k = len - 14 < sizeof tmp - 1 ? len - 14 : sizeof tmp - 1;
        memcpy(tmp, h + 14, k);
        tmp[k] = 0;
        unsigned long long a;
        if (sscanf(tmp, " bytes %llu-", &a) == 1) { t->has_range = true; t->range_start = a; }
    }
    return len;
}

static size_t part_on_body(char *data, size_t sz, size_t nm, void *ud) {
    part *t = ud;
    blob_dl *b = t->b;
    size_t len = sz * nm;
    if (!t->decided) {
        t->decided = true;
        curl_easy_getinfo(t->c, CURLINFO_RESPONSE_CODE, &t->code);
        uint64_t want = t->offset + t->done;
        if (t->code == 206) t->to_file = t->has_range && t->range_start == want;
        /* a whole-blob answer is only usable by a single part asking from byte 0 */
        else if (t->code == 200) {
            t->to_file = want == 0 && t->size == b->l->size;
            if (!t->to_file) { b->no_ranges = true; return 0; }
        } else t->to_file = false;
        if (t->code == 206 && !t->to_file) return 0;          /* not the bytes we asked for */
    }
    if (!t->to_file) {                                        /* an error body: dropped */
        t->discarded += len;
        return t->discarded > PULL_DISCARD_MAX ? 0 : len;
    }
    /* the bytes run on from part to part of the span: each counted and saved as its own */
    for (size_t w = 0; w < len;) {
        part *c = &b->parts[t->cur];
        if (c->done == c->size) {
            if (t->cur + 1 >= t->span_end) { t->overflow = !t->cut; return 0; }
            c = &b->parts[++t->cur];
            if (c->done) { t->overflow = true; return 0; }     /* span_parts took fresh ones only */
        }
        /* written as libcurl hands them over, 16 KiB at a time, as curl -o writes: gathered
         * into 256 KiB writes (fewer calls) the same 1 GiB pull took twice as long on the
         * project's 2-core VM (Dec 3, 8 interleaved runs, nearly all its time more in the
         * page-cache copy), though dd alone writes 256 KiB pieces faster than 16 KiB ones
         * there; the cause, likely in how the kernel's folios meet the hasher's mapping, is
         * not pinned down */
        size_t k = len - w < c->size - c->done ? len - w : (size_t)(c->size - c->done);
        ssize_t r = pwrite(b->fd, data + w, k, (off_t)(c->offset + c->done));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) { b->io_failed = true; b->io_errno = r < 0 ? errno : EIO; return 0; }
        w += (size_t)r;
        c->done += (uint64_t)r;
        if (c->done == c->size || now_ns() - c->saved_ns >= PULL_STATE_NS) part_save(c);
    }
    t->flowing = true;
    return len;
}

static ll_status part_start(blob_dl *b, part *t, CURLM *m, ll_error *err) {
    pull *p = b->p;
    if (!t->c && !(t->c = curl_easy_init())) return ll_fail(err, LL_ERR_NOMEM, "curl: out of memory");
    CURL *c = t->c;
    curl_easy_reset(c);
    curl_slist_free_all(t->hdr);
    t->hdr = NULL;
    if (p->token[0]) {
        char line[PULL_TOKEN_MAX + 32];
        snprintf(line, sizeof line, "Authorization: Bearer %s", p->token);
        if (!(t->hdr = curl_slist_append(NULL, line))) return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    }
    char range[48];
    const part *last = &b->parts[t->span_end - 1];
    snprintf(range, sizeof range, "%llu-%llu", (unsigned long long)(t->offset + t->done),
             (unsigned long long)(last->offset + last->size - 1));
    /* one part spanning the whole blob asks without Range (and takes a 200) when it starts at 0 */
    bool whole = t->offset == 0 && t->done == 0 && t->size == b->l->size;
    if (!whole) curl_easy_setopt(c, CURLOPT_RANGE, range);
    curl_easy_setopt(c, CURLOPT_URL, b->url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, t->hdr);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "locallama");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);         /* D22: storage redirects */
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);        /* stalled a minute: retried */
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(c, CURLOPT_BUFFERSIZE, 256L * 1024);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, t->errbuf);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, part_on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, t);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, part_on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(c, CURLOPT_PRIVATE, t);
    t->errbuf[0] = 0;
    t->auth[0] = 0;
    t->code = 0;
    t->decided = t->to_file = t->overflow = t->has_range = t->flowing = t->cut = false;
    t->discarded = 0;
    t->cur = t->n;
    t->done_at_start = 0;
    for (int i = t->n; i < t->span_end; i++) t->done_at_start += b->parts[i].done;
    t->token_gen = b->token_gen;
    if (curl_multi_add_handle(m, c) != CURLM_OK) return ll_fail(err, LL_ERR_NOMEM, "curl: cannot add a transfer");
    return LL_OK;
}

/* A transfer ended: the part is done, will be retried (retry_ns set), or the blob fails. */
static ll_status part_finish(blob_dl *b, part *t, CURLcode rc, ll_error *err) {
    pull *p = b->p;
    long code = 0;
    curl_easy_getinfo(t->c, CURLINFO_RESPONSE_CODE, &code);
    uint64_t span_done = 0;
    for (int i = t->n; i < t->span_end; i++) {
        part *c = &b->parts[i];
        if (c->done != c->saved) part_save(c);
        span_done += c->done;
    }
    const part *last = &b->parts[t->span_end - 1];
    if (b->io_failed)
        return ll_fail(err, LL_ERR_IO, "download %s: writing %s-partial: %s", b->dg, b->dg, strerror(b->io_errno));
    if (b->no_ranges) return LL_OK;                           /* the caller starts over */
    if (t->overflow) return ll_fail(err, LL_ERR_IO, "download %s: the registry sent more bytes than asked for", b->dg);
    if (t->cut && last->done == last->size) return LL_OK;     /* stopped on purpose */
    if (code == 206 && t->decided && !t->to_file)
        return ll_fail(err, LL_ERR_IO, "download %s: the registry answered a different range", b->dg);
    if (rc == CURLE_OK && (code == 200 || code == 206)) {
        if (last->done == last->size) return LL_OK;
    } else if (rc == CURLE_OK && code == 401 && t->auth[0]) {
        if (t->token_gen == b->token_gen) {                   /* nobody renewed it meanwhile */
            char challenge[PULL_AUTH_MAX];
            snprintf(challenge, sizeof challenge, "%s", t->auth);
            if (ll_registry_fetch_token(p->x.c, challenge, NULL, NULL, p->token, sizeof p->token, err) != LL_OK) {
                char prefix[112];
                snprintf(prefix, sizeof prefix, "download %s", b->dg);
                return fail_prefixed(err, prefix);
            }
            b->token_gen++;
        }
        if (++t->tries > 2) return ll_fail(err, LL_ERR_IO, "download %s: unauthorized", b->dg);
        t->retry_ns = 0;
        return LL_OK;
    } else if (rc == CURLE_OK && code == 404) {
        return ll_fail(err, LL_ERR_IO, "download %s: file does not exist", b->dg);
    } else if (rc == CURLE_OK && code >= 400 && code < 500 && code != 408 && code != 429) {
        return ll_fail(err, LL_ERR_IO, "download %s: registry answered %ld", b->dg, code);
    }
    /* a dropped connection, a stall, a 5xx or 429: again from where the bytes end */
    if (span_done > t->done_at_start) t->tries = 0;
    if (++t->tries > PULL_RETRIES) {
        if (rc != CURLE_OK)
            return ll_fail(err, LL_ERR_IO, "download %s: Get \"%s\": %s", b->dg, b->url,
                           t->errbuf[0] ? t->errbuf : curl_easy_strerror(rc));
        return ll_fail(err, LL_ERR_IO, "download %s: registry answered %ld", b->dg, code);
    }
    LL_INFO("pull: %s part %d: %s; retrying", b->dg, t->n,
            rc != CURLE_OK ? (t->errbuf[0] ? t->errbuf : curl_easy_strerror(rc)) : "server error");
    t->retry_ns = now_ns() + (250000000LL << (t->tries - 1));
    return LL_OK;
}

static uint64_t blob_done(const blob_dl *b) {
    uint64_t d = 0;
    for (int i = 0; i < b->n_parts; i++) d += b->parts[i].done;
    return d;
}

/* The count rises from one: a GET running on through parts (span_parts) stops at the end of
 * the part it is in, and the parts after it are free for the added connections. */
static void span_cut(blob_dl *b) {
    for (int i = 0; i < b->n_parts; i++) {
        part *t = &b->parts[i];
        if (!t->c || t->retry_ns != -1 || t->span_end <= t->cur + 1) continue;
        for (int j = t->cur + 1; j < t->span_end; j++) b->parts[j].claimed = false;
        t->span_end = t->cur + 1;
        t->cut = true;
    }
}

/* How many parts run at once. More connections multiply a per-connection cap (a CDN's), but
 * where one connection already gets all there is (loopback, a LAN, a fast link) more only cost
 * CPU and scatter the bytes: on 2 cores, 8 loopback connections got a 1 GiB blob no sooner
 * than one, and left 0.2-0.6 s of hashing after the last byte where one left none (the hasher
 * follows the finished prefix, which grows steadily only when bytes come in order). So a
 * blob starts with one connection and doubles the count while that pays: each count is
 * measured for PULL_PROBE_NS from when all its connections deliver bytes, and a step is kept
 * only when the doubled count gets at least 1.5x the rate (the added connections got half
 * their share or more); a step that gained under 15% is taken back. Through a 20 MB/s cap per
 * connection that reaches 8 in about a second. One connection that already gets 512 MB/s or
 * more is kept alone: no CDN caps a connection that high, and on loopback (1.1 GB/s) a second
 * one, though it raised the download rate ~20%, left the pull slower (a 1 GiB pull took
 * 0.96 s when the probe kept two against 0.90 with one, medians of 8 interleaved runs, Dec 3):
 * its receiving competes for the CPU with the hash, and its out-of-order parts leave more
 * hashing after the last byte. Measured once per blob, at its start (a resumed blob too);
 * LOCALLAMA_PULL_CONNECTIONS fixes the count. */
static void probe_step(blob_dl *b, int64_t t_now) {
    conn_probe *pr = &b->probe;
    if (pr->settled) return;
    int running = 0, waiting = 0;
    bool flowing = true;
    for (int i = 0; i < b->n_parts; i++) {
        part *t = &b->parts[i];
        if (t->c && t->retry_ns == -1) { running++; flowing &= t->flowing; }
        else if (t->done < t->size) waiting++;
    }
    if (!pr->open) {
        if (running >= pr->level && flowing) {
            pr->open = true;
            pr->t0 = t_now;
            pr->bytes0 = blob_done(b);
        } else if (running < pr->level && !waiting) pr->settled = true;   /* fewer parts left */
        return;
    }
    if (t_now - pr->t0 < PULL_PROBE_NS) return;
    pr->open = false;
    double rate = (double)(blob_done(b) - pr->bytes0) * 1e9 / (double)(t_now - pr->t0);
    size_t k = strlen(pr->log);
    snprintf(pr->log + k, sizeof pr->log - k, "%s%d: %.3g MB/s", k ? ", " : "", pr->level, rate / 1e6);
    if (!pr->prev && rate >= PULL_PROBE_FAST) {
        pr->settled = true;                                   /* no cap to multiply */
    } else if (pr->prev && rate < pr->prev_rate * 1.5) {     /* the added ones did not pay */
        if (rate < pr->prev_rate * 1.15) pr->level = pr->prev;
        pr->settled = true;
    } else if (pr->level >= b->n_conns) {
        pr->settled = true;
    } else {
        if (pr->level == 1) span_cut(b);
        pr->prev = pr->level;
        pr->prev_rate = rate;
        pr->level = 2 * pr->level < b->n_conns ? 2 * pr->level : b->n_conns;
    }
}

/* The parts a transfer starting at part i covers, [i, returned): i alone, unless the count is
 * one connection (settled there, or the first step of the probe). Then the parts after i that
 * nothing has touched yet are asked for in the same GET, which runs on from part to part
 * (part_on_body): on loopback, 32 GETs of 32 MiB on one connection cost the registry 0.15-0.2 s
 * more CPU per GiB than one GET, and each left the connection idle for a round trip (while the
 * probe measured one connection part by part, a 1 GiB loopback pull took 0.94 s against 0.88
 * for one GET). When the probe adds connections the GET is cut short (span_cut). Each part's
 * bytes are still counted and saved in its own state file, so a crash resumes the same way. */
static int span_parts(blob_dl *b, int i, int64_t t_now) {
    int end = i + 1;
    if (b->probe.level != 1) return end;
    while (end < b->n_parts) {
        const part *t = &b->parts[end];
        if (t->done || t->c || t->claimed || t->retry_ns > t_now) break;
        end++;
    }
    return end;
}

/* A transfer of part t ended: the parts of its span are free again, and the first one left
 * unfinished inherits the retry time and count (the next GET starts there). */
static void span_release(blob_dl *b, part *t) {
    part *next = t->done < t->size ? t : NULL;
    for (int i = t->n + 1; i < t->span_end; i++) {
        part *c = &b->parts[i];
        c->claimed = false;
        if (!next && c->done < c->size) next = c;
    }
    if (next && next != t) {
        next->retry_ns = t->retry_ns;
        next->tries = t->tries;
    }
    t->span_end = t->n + 1;
}

/* Run every unfinished part to its end, probe.level at a time. */
static ll_status parts_run(blob_dl *b, ll_error *err) {
    pull *p = b->p;
    CURLM *m = curl_multi_init();
    if (!m) return ll_fail(err, LL_ERR_NOMEM, "curl: out of memory");
    b->probe.level = b->conns_fixed ? b->n_conns : 1;
    b->probe.prev = b->probe.most = 0;
    b->probe.settled = b->conns_fixed;
    b->probe.open = false;
    b->probe.log[0] = 0;
    ll_status st = LL_OK;
    int64_t last = now_ns();
    for (;;) {
        int running = 0, left = 0;
        int64_t t_now = now_ns();
        for (int i = 0; i < b->n_parts; i++) {
            part *t = &b->parts[i];
            if (t->done == t->size && !t->c) continue;
            left++;
            if (t->c && t->retry_ns == -1) running++;
        }
        if (!left) break;
        for (int i = 0; i < b->n_parts && running < b->probe.level && st == LL_OK; i++) {   /* in order */
            part *t = &b->parts[i];
            if (t->done == t->size || t->claimed || (t->c && t->retry_ns == -1) || t->retry_ns > t_now) continue;
            t->span_end = span_parts(b, i, t_now);
            for (int j = i + 1; j < t->span_end; j++) b->parts[j].claimed = true;
            if ((st = part_start(b, t, m, err)) == LL_OK) { t->retry_ns = -1; running++; b->n_gets++; }
        }
        if (running > b->probe.most) b->probe.most = running;
        if (st != LL_OK) break;
        int still;
        curl_multi_perform(m, &still);
        CURLMsg *msg;
        int q;
        bool ended = false;
        while ((msg = curl_multi_info_read(m, &q))) {
            ended = true;
            if (msg->msg != CURLMSG_DONE) continue;
            part *t = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
            CURLcode rc = msg->data.result;
            curl_multi_remove_handle(m, msg->easy_handle);
            t->retry_ns = 0;
            if (st == LL_OK) st = part_finish(b, t, rc, err);
            span_release(b, t);
            curl_easy_cleanup(t->c);
            t->c = NULL;
        }
        if (st != LL_OK || b->no_ranges) break;
        hasher_advance(b);
        t_now = now_ns();
        probe_step(b, t_now);
        if (t_now - last >= PULL_PROGRESS_NS) {
            last = t_now;
            if (!report(p, b->status, b->dg, b->l->size, blob_done(b))) { st = ll_fail(err, LL_ERR_CANCELLED, "pull cancelled"); break; }
        }
        /* a part that just ended is replaced at once: a wait here idles its connection (with
         * one connection, 100 ms per part, half the time of a loopback pull) */
        if (!ended) curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    for (int i = 0; i < b->n_parts; i++) {
        part *t = &b->parts[i];
        if (t->c) {
            curl_multi_remove_handle(m, t->c);
            curl_easy_cleanup(t->c);
            t->c = NULL;
        }
        curl_slist_free_all(t->hdr);
        t->hdr = NULL;
        if (t->done != t->saved) part_save(t);
    }
    curl_multi_cleanup(m);
    return st;
}

// -- the blob

/* Wait for the partial's lock while another pull of this blob holds it (its progress, read
 * from its state files, is reported as ours), then make sure the locked file is still the one
 * named so (a GC may have removed a stale partial between our open and our lock). */
static ll_status blob_lock(blob_dl *b, const char *pname, bool *have, ll_error *err) {
    ll_store *s = b->p->s;
    int64_t last = 0;
    for (;;) {
        uint64_t size = 0;
        if (ll_store_blob_exists(s, &b->l->digest, &size) && size == b->l->size) { *have = true; return LL_OK; }
        int fd = openat(s->blobs_fd, pname, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0) return ll_fail(err, LL_ERR_IO, "opening %s: %s", pname, strerror(errno));
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
            struct stat a, n;
            if (fstat(fd, &a) == 0 && fstatat(s->blobs_fd, pname, &n, AT_SYMLINK_NOFOLLOW) == 0 &&
                a.st_ino == n.st_ino && a.st_dev == n.st_dev) {
                b->fd = fd;
                return LL_OK;
            }
            close(fd);
            continue;
        }
        close(fd);
        if (errno != EWOULDBLOCK && errno != EINTR) return ll_fail(err, LL_ERR_IO, "locking %s: %s", pname, strerror(errno));
        int64_t t = now_ns();
        if (t - last >= PULL_PROGRESS_NS) {
            last = t;
            blob_dl peek = { .p = b->p, .l = b->l };
            uint64_t done = 0;
            if (parts_load(&peek, b->l->size)) done = blob_done(&peek);
            parts_free(&peek);
            if (!report(b->p, b->status, b->dg, b->l->size, done)) return ll_fail(err, LL_ERR_CANCELLED, "pull cancelled");
        }
        struct timespec ts = { 0, 50 * 1000000L };
        nanosleep(&ts, NULL);
    }
}

/* Remove the partial we hold locked and its part files (nothing in them to resume). */
static void blob_discard(blob_dl *b, const char *pname) {
    unlinkat(b->p->s->blobs_fd, pname, 0);
    parts_unlink(b->p->s, &b->l->digest, 0);
}

/* Download and verify one blob, then rename it into place (pinned until the manifest is
 * written: *pinned). A blob the store holds is reported complete at once (*pinned false). */
static ll_status blob_pull(pull *p, const ll_layer *l, bool *pinned, ll_error *err) {
    ll_store *s = p->s;
    blob_dl *b = calloc(1, sizeof *b);
    if (!b) return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    b->p = p;
    b->l = l;
    b->fd = -1;
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
    ll_digest_str(&l->digest, b->dg, sizeof b->dg);
    snprintf(b->status, sizeof b->status, "pulling %.12s", l->digest.hex);
    snprintf(b->url, sizeof b->url, "%s/v2/%s/blobs/%s", p->base, p->repo, b->dg);
    char pname[96], fname[80];
    snprintf(pname, sizeof pname, "sha256-%s-partial", l->digest.hex);
    snprintf(fname, sizeof fname, "sha256-%s", l->digest.hex);
    *pinned = false;
    bool have = false;
    uint64_t size = 0;
    ll_status st = LL_OK;
    if (ll_store_blob_exists(s, &l->digest, &size) && size == l->size) have = true;
    else st = blob_lock(b, pname, &have, err);
    if (st == LL_OK && b->fd >= 0 && ll_store_blob_exists(s, &l->digest, &size) && size == l->size) {
        /* another pull finished it between our check and our lock: what we opened is an
         * empty leftover (we hold its lock, so nobody else writes it) */
        blob_discard(b, pname);
        have = true;
    }
    if (st != LL_OK || have) {
        if (st == LL_OK && !report(p, b->status, b->dg, l->size, l->size)) st = ll_fail(err, LL_ERR_CANCELLED, "pull cancelled");
        goto out;
    }

    /* resume what an earlier pull left, or lay the parts out afresh */
    struct stat sb;
    if (fstat(b->fd, &sb) != 0) { st = ll_fail(err, LL_ERR_IO, "%s: %s", pname, strerror(errno)); goto out; }
    uint64_t part_size;
    part_plan(b, &part_size);
    b->n_conns = blob_conns(&b->conns_fixed);
    /* the space is checked before anything is laid out: a manifest that claims more than the
     * disk holds gets no part files and no sized partial (a fresh one is removed again) */
    bool loaded = parts_load(b, (uint64_t)sb.st_size);
    uint64_t prefix = (uint64_t)sb.st_size <= l->size ? (uint64_t)sb.st_size : 0;
    uint64_t need = l->size - (loaded ? blob_done(b) : prefix);
    struct statvfs vfs;
    if (fstatvfs(b->fd, &vfs) == 0 && (uint64_t)vfs.f_bavail * vfs.f_frsize < need) {
        st = ll_fail(err, LL_ERR_IO, "insufficient disk space: need %llu bytes for %s, %llu available",
                     (unsigned long long)need, b->dg, (unsigned long long)vfs.f_bavail * vfs.f_frsize);
        if (!loaded && !prefix) blob_discard(b, pname);
        goto out;
    }
    if (!loaded && (st = parts_create(b, part_size, prefix, err)) != LL_OK) goto out;
    if (ftruncate(b->fd, (off_t)l->size) != 0) { st = ll_fail(err, LL_ERR_IO, "sizing %s: %s", pname, strerror(errno)); goto out; }
    if (l->size && fallocate(b->fd, 0, 0, (off_t)l->size) != 0 && errno == ENOSPC) {
        st = ll_fail(err, LL_ERR_IO, "insufficient disk space: need %llu bytes for %s", (unsigned long long)need, b->dg);
        if (!loaded && !prefix) blob_discard(b, pname);
        goto out;
    }

    if (!(b->md = EVP_MD_CTX_new()) || EVP_DigestInit_ex(b->md, EVP_sha256(), NULL) != 1) { st = ll_fail(err, LL_ERR_NOMEM, "sha256: out of memory"); goto out; }
    if (!hasher_start(b)) { st = ll_fail(err, LL_ERR_NOMEM, "cannot start the hashing thread"); goto out; }
    if (!report(p, b->status, b->dg, l->size, blob_done(b))) { st = ll_fail(err, LL_ERR_CANCELLED, "pull cancelled"); goto out; }
    int64_t t0 = now_ns();
    uint64_t resumed = blob_done(b);
    st = parts_run(b, err);
    if (st == LL_OK && b->no_ranges) {                       /* D22: any registry; one stream then */
        LL_INFO("pull: %s: the registry ignores Range; one connection from the start", b->dg);
        hasher_join(b, false);
        EVP_DigestInit_ex(b->md, EVP_sha256(), NULL);
        b->hashed = b->frontier = 0;
        atomic_store(&b->hashed_pub, 0);
        b->stop = b->abandon = b->no_ranges = false;
        parts_free(b);
        if ((st = parts_create(b, l->size ? l->size : 1, 0, err)) != LL_OK) goto out;
        if (!hasher_start(b)) { st = ll_fail(err, LL_ERR_NOMEM, "cannot start the hashing thread"); goto out; }
        st = parts_run(b, err);
        if (st == LL_OK && b->no_ranges) st = ll_fail(err, LL_ERR_IO, "download %s: the registry answered a different range", b->dg);
    }
    if (st != LL_OK) goto out;
    int64_t t1 = now_ns();
    uint64_t hashed_t1 = atomic_load_explicit(&b->hashed_pub, memory_order_relaxed);
    hasher_advance(b);
    hasher_join(b, true);
    int64_t t2 = now_ns();
    if (!report(p, b->status, b->dg, l->size, l->size)) { st = ll_fail(err, LL_ERR_CANCELLED, "pull cancelled"); goto out; }

    /* verify, then rename into place */
    unsigned char md[32];
    char hex[65];
    EVP_DigestFinal_ex(b->md, md, NULL);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
    if (b->hash_failed) { st = ll_fail(err, LL_ERR_IO, "reading %s: %s", pname, strerror(b->hash_errno)); goto out; }
    if (b->hashed != l->size || strcmp(hex, l->digest.hex)) {
        unlinkat(s->blobs_fd, pname, 0);
        parts_unlink(s, &l->digest, 0);
        st = ll_fail(err, LL_ERR_FORMAT, "digest mismatch, file must be downloaded again: %s", b->dg);
        goto out;
    }
    if (pull_sync()) fdatasync(b->fd);
    LL_INFO("pull: %s: %llu bytes in %d parts by %d GET%s (%llu resumed), at most %d connection%s at once%s%s%s in %.2f s "
            "(%llu hashed by then), then %.2f s hashing and %.2f s syncing", b->dg, (unsigned long long)l->size,
            b->n_parts, b->n_gets, b->n_gets == 1 ? "" : "s", (unsigned long long)resumed, b->probe.most, b->probe.most == 1 ? "" : "s",
            b->conns_fixed ? " (fixed)" : "", b->probe.log[0] ? "; measured " : "", b->probe.log,
            (t1 - t0) / 1e9, (unsigned long long)hashed_t1, (t2 - t1) / 1e9, (now_ns() - t2) / 1e9);
    pthread_mutex_lock(&s->mu);
    if (renameat(s->blobs_fd, pname, s->blobs_fd, fname) != 0)
        st = ll_fail(err, LL_ERR_IO, "renaming %s: %s", pname, strerror(errno));
    else if ((st = store_pin_locked(s, &l->digest, err)) == LL_OK) *pinned = true;
    pthread_mutex_unlock(&s->mu);
    if (st == LL_OK) {
        parts_unlink(s, &l->digest, 0);
        if (pull_sync()) fsync(s->blobs_fd);
    }
out:
    hasher_join(b, false);
    parts_free(b);
    EVP_MD_CTX_free(b->md);
    if (b->fd >= 0) close(b->fd);                            /* and with it the lock */
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv);
    free(b);
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
    p->x.user = o->user;
    p->x.is_cancelled = o->cancelled;
    ll_manifest *m = NULL;
    bool *pinned = NULL;
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
    if (get_authed(p, url, LL_MEDIA_MANIFEST, &code, err) != LL_OK) {
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
    if (!(pinned = calloc(n_blobs, sizeof *pinned))) { free(raw); st = ll_fail(err, LL_ERR_NOMEM, "out of memory"); goto out; }
    /* Each blob is verified and renamed right after its download, so a pull holds the lock
     * of one partial at a time: two pulls whose manifests share blobs in different orders
     * cannot wait on each other. Ollama's "verifying sha256 digest" phase line follows. */
    for (size_t i = 0; i < n_blobs && st == LL_OK; i++)
        st = blob_pull(p, i < m->n_layers ? &m->layers[i] : &m->config, &pinned[i], err);
    if (st == LL_OK && !report(p, "verifying sha256 digest", NULL, 0, 0)) st = ll_fail(err, LL_ERR_CANCELLED, "pull cancelled");
    if (st == LL_OK && !report(p, "writing manifest", NULL, 0, 0)) st = ll_fail(err, LL_ERR_CANCELLED, "pull cancelled");
    ll_digest *old = NULL;
    size_t n_old = 0, cap_old = 0, n_freed = 0;
    if (st == LL_OK) {                                   /* byte for byte as received (§4.2) */
        char display[LL_NAME_FULL_MAX];
        ll_name_display(n, display, sizeof display);
        pthread_mutex_lock(&s->mu);
        store_mpath mp;
        bool found;
        st = store_manifest_dir(s, n, true, &mp, NULL, &found, err);
        if (st == LL_OK) {
            /* the manifest this one replaces: its layers may be unused after it (§4.9) */
            char *prev = NULL;
            size_t prev_n = 0;
            ll_error e2 = { 0 };
            if (found && store_manifest_bytes(mp.dir_fd, mp.tag, display, &prev, &prev_n, NULL, &e2) == LL_OK) {
                if (!store_collect_digests(prev, prev_n, &old, &n_old, &cap_old)) n_old = 0;
                ll_free(prev);
            }
            st = store_manifest_put(s, mp.dir_fd, mp.tag, raw, n_raw, display, err);
            close(mp.dir_fd);
        }
        for (size_t i = 0; i < n_blobs; i++)          /* referenced by the manifest now */
            if (pinned[i]) store_unpin_locked(s, i < m->n_layers ? &m->layers[i].digest : &m->config.digest);
        memset(pinned, 0, n_blobs * sizeof *pinned);
        if (st == LL_OK && !o->noprune) n_freed = store_gc_candidates_locked(s, old, n_old);
        pthread_mutex_unlock(&s->mu);
    }
    ll_free(old);
    free(raw);
    if (st == LL_OK && n_freed && !report(p, "removing unused layers", NULL, 0, 0)) st = LL_OK;
    if (st == LL_OK && !report(p, "success", NULL, 0, 0)) st = LL_OK;   /* done anyway */
out:
    for (size_t i = 0; pinned && i < n_blobs; i++)
        if (pinned[i]) ll_store_unpin(s, i < m->n_layers ? &m->layers[i].digest : &m->config.digest);
    free(pinned);
    ll_manifest_free(m);
    if (p->x.c) curl_easy_cleanup(p->x.c);
    free(p->x.mem);
    free(p);
    return st;
}
