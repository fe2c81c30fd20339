/* store: opening the store, the lock file, blobs and the streaming blob writer (store.h). */
#include "store/store_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

// ---------------------------------------------------------------------------------------------
// file helpers

static atomic_int test_fail_errno, test_fail_count;

void ll_store_test_fail_writes(int e, int count) {
    atomic_store(&test_fail_errno, e);
    atomic_store(&test_fail_count, e ? count : 0);
}

ll_status store_write_all(int fd, const void *p, size_t n, const char *what, ll_error *err) {
    const char *c = p;
    while (n > 0) {
        ssize_t k;
        if (atomic_load(&test_fail_count) > 0) {
            atomic_fetch_sub(&test_fail_count, 1);
            errno = atomic_load(&test_fail_errno);
            k = -1;
        } else {
            k = write(fd, c, n > (1u << 30) ? (1u << 30) : n);
        }
        if (k < 0) {
            if (errno == EINTR) continue;
            if (errno == ENOSPC || errno == EDQUOT)
                return ll_fail(err, LL_ERR_IO, "no space left on device while writing %s", what);
            return ll_fail(err, LL_ERR_IO, "writing %s: %s", what, strerror(errno));
        }
        c += k;
        n -= (size_t)k;
    }
    return LL_OK;
}

bool ll_store_err_is_nospace(const ll_error *err) {
    return err && strncmp(err->msg, "no space left on device", 23) == 0;
}

int store_open_dir(int dir_fd, const char *name, bool create) {
    if (create && mkdirat(dir_fd, name, 0755) < 0 && errno != EEXIST) return -1;
    return openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

static bool is_lower_hex(const char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f'))) return false;
    return true;
}

bool store_is_digest_name(const char *name, ll_digest *d) {
    if (strncmp(name, "sha256-", 7) || strlen(name) != 71 || !is_lower_hex(name + 7, 64)) return false;
    if (d) { memcpy(d->hex, name + 7, 64); d->hex[64] = 0; }
    return true;
}

bool store_is_temp_name(const char *name) {
    if (strncmp(name, "sha256-", 7)) return false;
    size_t n = strlen(name + 7);
    if (n == 0 || n > 40) return false;
    for (size_t i = 0; i < n; i++)
        if (name[7 + i] < '0' || name[7 + i] > '9') return false;
    return true;
}

bool store_is_fragment_name(const char *name, ll_digest *d) {
    if (strncmp(name, "sha256-", 7) || strlen(name) < 79 || !is_lower_hex(name + 7, 64) ||
        strncmp(name + 71, "-partial", 8)) return false;
    const char *t = name + 79;
    if (*t) {
        if (*t++ != '-' || !*t || strlen(t) > 6) return false;
        for (; *t; t++) if (*t < '0' || *t > '9') return false;
    }
    if (d) { memcpy(d->hex, name + 7, 64); d->hex[64] = 0; }
    return true;
}

void store_sha256_hex(const void *p, size_t n, char hex[65]) {
    unsigned char md[32];
    unsigned int len = 0;
    EVP_Digest(p, n, md, &len, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
    hex[64] = 0;
}

// ---------------------------------------------------------------------------------------------
// open / close / lock

/* mkdir -p for the store root (absolute or relative path). */
static int mkdir_p(const char *path) {
    char tmp[PATH_MAX];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof tmp) { errno = ENAMETOOLONG; return -1; }
    memcpy(tmp, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (tmp[i] == '/' || tmp[i] == 0) {
            char c = tmp[i];
            tmp[i] = 0;
            if (mkdir(tmp, 0755) < 0 && errno != EEXIST) return -1;
            tmp[i] = c;
        }
    }
    return 0;
}

ll_status ll_store_open(ll_store **out, const char *root, const ll_store_opts *opts, ll_error *err) {
    *out = NULL;
    if (!root || !*root) return ll_fail(err, LL_ERR_ARG, "model store: empty root path");
    ll_store *s = ll_calloc(1, sizeof *s);
    if (!s) return ll_fail(err, LL_ERR_NOMEM, "out of memory opening the model store");
    s->root_fd = s->manifests_fd = s->blobs_fd = s->lock_fd = -1;
    s->read_only = opts && opts->read_only;
    s->grace = opts && opts->grace_seconds > 0 ? opts->grace_seconds : 24 * 3600;
    pthread_mutex_init(&s->mu, NULL);
    ll_status st;

    if (!s->read_only && mkdir_p(root) < 0 && errno != EROFS && errno != EACCES) {
        st = ll_fail(err, LL_ERR_IO, "model store %s: cannot create: %s", root, strerror(errno));
        goto fail;
    }
    if (!(s->root = realpath(root, NULL))) {
        st = ll_fail(err, LL_ERR_IO, "model store %s: %s", root, strerror(errno));
        goto fail;
    }
    s->root_fd = open(s->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->root_fd < 0) {
        st = ll_fail(err, LL_ERR_IO, "model store %s: %s", s->root, strerror(errno));
        goto fail;
    }
    if (!s->read_only && faccessat(s->root_fd, ".", W_OK, 0) < 0) {
        LL_WARN("model store %s is read-only: create, copy, delete and pull will fail", s->root);
        s->read_only = true;
    }
    const char *sub[2] = { "manifests", "blobs" };
    int *fds[2] = { &s->manifests_fd, &s->blobs_fd };
    for (int i = 0; i < 2; i++) {
        *fds[i] = store_open_dir(s->root_fd, sub[i], !s->read_only);
        if (*fds[i] < 0 && errno == ENOENT && s->read_only) continue;   /* empty read-only store */
        if (*fds[i] < 0) {
            st = ll_fail(err, LL_ERR_IO, "model store %s/%s: %s", s->root, sub[i],
                         errno == ELOOP || errno == ENOTDIR ? "not a directory (symlinks are not followed)"
                                                            : strerror(errno));
            goto fail;
        }
    }
    *out = s;
    return LL_OK;
fail:
    ll_store_close(s);
    return st;
}

void ll_store_close(ll_store *s) {
    if (!s) return;
    if (s->root_fd >= 0) close(s->root_fd);
    if (s->manifests_fd >= 0) close(s->manifests_fd);
    if (s->blobs_fd >= 0) close(s->blobs_fd);
    if (s->lock_fd >= 0) close(s->lock_fd);          /* releases the flock */
    for (size_t i = 0; i < s->n_logged; i++) ll_free(s->logged[i]);
    ll_free(s->logged);
    ll_free(s->pins);
    ll_free(s->temps);
    ll_free(s->lens);
    free(s->root);                                    /* from realpath */
    pthread_mutex_destroy(&s->mu);
    ll_free(s);
}

const char *ll_store_root(const ll_store *s) { return s->root; }
bool ll_store_read_only(const ll_store *s) { return s->read_only; }

ll_status ll_store_lock(ll_store *s, ll_error *err) {
    if (s->lock_fd >= 0) return LL_OK;
    int fd = openat(s->root_fd, "locallama.lock", (s->read_only ? O_RDONLY : O_RDWR | O_CREAT) |
                    O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) return ll_fail(err, LL_ERR_IO, "model store lock file: %s", strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        char buf[32] = {0};
        ssize_t k = pread(fd, buf, sizeof buf - 1, 0);
        long pid = k > 0 ? strtol(buf, NULL, 10) : 0;
        close(fd);
        return ll_fail(err, LL_ERR_IO, "model store locked by pid %ld", pid);
    }
    if (!s->read_only) {
        char buf[32];
        int n = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
        if (ftruncate(fd, 0) == 0 && pwrite(fd, buf, (size_t)n, 0) != n)
            LL_WARN("model store lock file: could not record the pid");
    }
    s->lock_fd = fd;
    return LL_OK;
}

// ---------------------------------------------------------------------------------------------
// pins and live temps (callers hold s->mu)

bool store_pinned_locked(ll_store *s, const ll_digest *d) {
    for (size_t i = 0; i < s->n_pins; i++)
        if (!strcmp(s->pins[i].d.hex, d->hex)) return true;
    return false;
}

ll_status store_pin_locked(ll_store *s, const ll_digest *d, ll_error *err) {
    for (size_t i = 0; i < s->n_pins; i++)
        if (!strcmp(s->pins[i].d.hex, d->hex)) { s->pins[i].n++; return LL_OK; }
    if (s->n_pins == s->cap_pins) {
        size_t cap = s->cap_pins ? 2 * s->cap_pins : 16;
        store_pin *p = ll_realloc(s->pins, cap * sizeof *p);
        if (!p) return ll_fail(err, LL_ERR_NOMEM, "out of memory pinning blob sha256-%s", d->hex);
        s->pins = p;
        s->cap_pins = cap;
    }
    s->pins[s->n_pins++] = (store_pin){ *d, 1 };
    return LL_OK;
}

void store_unpin_locked(ll_store *s, const ll_digest *d) {
    for (size_t i = 0; i < s->n_pins; i++)
        if (!strcmp(s->pins[i].d.hex, d->hex)) {
            if (--s->pins[i].n == 0) s->pins[i] = s->pins[--s->n_pins];
            return;
        }
}

ll_status ll_store_pin(ll_store *s, const ll_digest *d, ll_error *err) {
    pthread_mutex_lock(&s->mu);
    ll_status st = store_pin_locked(s, d, err);
    pthread_mutex_unlock(&s->mu);
    return st;
}

void ll_store_unpin(ll_store *s, const ll_digest *d) {
    pthread_mutex_lock(&s->mu);
    store_unpin_locked(s, d);
    pthread_mutex_unlock(&s->mu);
}

bool store_temp_live_locked(ll_store *s, const char *name) {
    for (size_t i = 0; i < s->n_temps; i++)
        if (!strcmp(s->temps[i], name)) return true;
    return false;
}

static bool temp_register(ll_store *s, const char *name) {
    pthread_mutex_lock(&s->mu);
    bool ok = true;
    if (s->n_temps == s->cap_temps) {
        size_t cap = s->cap_temps ? 2 * s->cap_temps : 8;
        char (*t)[64] = ll_realloc(s->temps, cap * sizeof *t);
        if (t) { s->temps = t; s->cap_temps = cap; } else ok = false;
    }
    if (ok) snprintf(s->temps[s->n_temps++], 64, "%s", name);
    pthread_mutex_unlock(&s->mu);
    return ok;
}

static void temp_forget(ll_store *s, const char *name) {
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->n_temps; i++)
        if (!strcmp(s->temps[i], name)) { memcpy(s->temps[i], s->temps[--s->n_temps], 64); break; }
    pthread_mutex_unlock(&s->mu);
}

// ---------------------------------------------------------------------------------------------
// blobs

void ll_store_blob_path(const ll_store *s, const ll_digest *d, char *buf, size_t cap) {
    snprintf(buf, cap, "%s/blobs/sha256-%s", s->root, d->hex);
}

bool ll_store_blob_exists(ll_store *s, const ll_digest *d, uint64_t *size) {
    char name[80];
    struct stat st;
    snprintf(name, sizeof name, "sha256-%s", d->hex);
    if (s->blobs_fd < 0 || fstatat(s->blobs_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
        return false;
    if (size) *size = (uint64_t)st.st_size;
    return true;
}

static int blob_open_read(ll_store *s, const ll_digest *d) {
    char name[80];
    snprintf(name, sizeof name, "sha256-%s", d->hex);
    if (s->blobs_fd < 0) { errno = ENOENT; return -1; }
    return openat(s->blobs_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
}

ll_status store_blob_read(ll_store *s, const ll_digest *d, size_t cap, char **out, size_t *n,
                          ll_error *err) {
    *out = NULL;
    *n = 0;
    int fd = blob_open_read(s, d);
    if (fd < 0)
        return ll_fail(err, LL_ERR_IO, "blob sha256-%s: %s", d->hex,
                       errno == ELOOP ? "is a symlink (not followed)" : strerror(errno));
    struct stat st;
    ll_status rc = LL_OK;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        rc = ll_fail(err, LL_ERR_FORMAT, "blob sha256-%s is not a regular file", d->hex);
        goto out;
    }
    if ((uint64_t)st.st_size > cap) {
        rc = ll_fail(err, LL_ERR_LIMIT, "blob sha256-%s is %lld bytes, the limit here is %zu",
                     d->hex, (long long)st.st_size, cap);
        goto out;
    }
    size_t len = (size_t)st.st_size;
    char *buf = ll_malloc(len + 1);
    if (!buf) { rc = ll_fail(err, LL_ERR_NOMEM, "out of memory reading blob sha256-%s", d->hex); goto out; }
    size_t got = 0;
    while (got < len) {
        ssize_t k = read(fd, buf + got, len - got);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            ll_free(buf);
            rc = ll_fail(err, LL_ERR_IO, "reading blob sha256-%s: %s", d->hex, k < 0 ? strerror(errno) : "short read");
            goto out;
        }
        got += (size_t)k;
    }
    buf[len] = 0;
    *out = buf;
    *n = len;
out:
    close(fd);
    return rc;
}

ll_status ll_store_blob_verify(ll_store *s, const ll_digest *d, uint64_t expect_size, ll_error *err) {
    int fd = blob_open_read(s, d);
    if (fd < 0)
        return ll_fail(err, LL_ERR_IO, "blob sha256-%s: %s", d->hex,
                       errno == ENOENT ? "missing" : errno == ELOOP ? "is a symlink (not followed)" : strerror(errno));
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    ll_status rc = LL_OK;
    unsigned char *buf = ll_malloc(1 << 20);
    if (!md || !buf || !EVP_DigestInit_ex(md, EVP_sha256(), NULL)) {
        rc = ll_fail(err, LL_ERR_NOMEM, "out of memory verifying blob sha256-%s", d->hex);
        goto out;
    }
    uint64_t total = 0;
    for (;;) {
        ssize_t k = read(fd, buf, 1 << 20);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) { rc = ll_fail(err, LL_ERR_IO, "reading blob sha256-%s: %s", d->hex, strerror(errno)); goto out; }
        if (k == 0) break;
        EVP_DigestUpdate(md, buf, (size_t)k);
        total += (uint64_t)k;
    }
    unsigned char h[32];
    unsigned int hl = 0;
    EVP_DigestFinal_ex(md, h, &hl);
    char hex[65];
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", h[i]);
    if (expect_size != UINT64_MAX && total != expect_size)
        rc = ll_fail(err, LL_ERR_FORMAT, "blob sha256-%s is %llu bytes, expected %llu", d->hex,
                     (unsigned long long)total, (unsigned long long)expect_size);
    else if (strcmp(hex, d->hex))
        rc = ll_fail(err, LL_ERR_FORMAT, "blob sha256-%s is damaged: its content hashes to sha256:%s",
                     d->hex, hex);
out:
    ll_free(buf);
    EVP_MD_CTX_free(md);
    close(fd);
    return rc;
}

// ---------------------------------------------------------------------------------------------
// the streaming writer

struct ll_blob_writer {
    ll_store   *s;
    int         fd;
    char        tmp[64];      /* sha256-<digits> in blobs/ */
    EVP_MD_CTX *md;
    uint64_t    n, max;
    bool        failed;       /* a write failed: only abort remains */
};

static atomic_uint writer_seq;

ll_status ll_blob_writer_open(ll_blob_writer **out, ll_store *s, uint64_t max_bytes, ll_error *err) {
    *out = NULL;
    if (s->read_only || s->blobs_fd < 0) return ll_fail(err, LL_ERR_IO, "model store is read-only");
    ll_blob_writer *w = ll_calloc(1, sizeof *w);
    if (!w) return ll_fail(err, LL_ERR_NOMEM, "out of memory opening a blob writer");
    w->s = s;
    w->fd = -1;
    w->max = max_bytes;
    if (!(w->md = EVP_MD_CTX_new()) || !EVP_DigestInit_ex(w->md, EVP_sha256(), NULL)) {
        ll_blob_writer_abort(w);
        return ll_fail(err, LL_ERR_NOMEM, "out of memory opening a blob writer");
    }
    /* Ollama's temp names (os.CreateTemp(blobs, "sha256-")) are sha256-<digits>; so are ours,
     * so each program's GC recognises the other's temporaries. */
    for (int attempt = 0; attempt < 100 && w->fd < 0; attempt++) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        unsigned seq = atomic_fetch_add(&writer_seq, 1);
        snprintf(w->tmp, sizeof w->tmp, "sha256-%u%09ld%u", (unsigned)getpid(), ts.tv_nsec, seq % 1000u);
        w->fd = openat(s->blobs_fd, w->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (w->fd < 0 && errno != EEXIST) break;
    }
    if (w->fd < 0) {
        ll_status st = ll_fail(err, LL_ERR_IO, "creating a temp file in %s/blobs: %s", s->root,
                               errno == EROFS ? "model store is read-only" : strerror(errno));
        w->tmp[0] = 0;
        ll_blob_writer_abort(w);
        return st;
    }
    if (!temp_register(s, w->tmp)) {
        ll_blob_writer_abort(w);
        return ll_fail(err, LL_ERR_NOMEM, "out of memory opening a blob writer");
    }
    *out = w;
    return LL_OK;
}

ll_status ll_blob_writer_write(ll_blob_writer *w, const void *p, size_t n, ll_error *err) {
    if (w->failed) return ll_fail(err, LL_ERR_IO, "blob writer: an earlier write failed");
    uint64_t total;
    if (!ll_add_u64(w->n, n, &total) || (w->max && total > w->max)) {
        w->failed = true;
        return ll_fail(err, LL_ERR_LIMIT, "blob is larger than the %llu bytes allowed",
                       (unsigned long long)w->max);
    }
    ll_status st = store_write_all(w->fd, p, n, "blob", err);
    if (st != LL_OK) { w->failed = true; return st; }
    EVP_DigestUpdate(w->md, p, n);
    w->n = total;
    return LL_OK;
}

void ll_blob_writer_abort(ll_blob_writer *w) {
    if (!w) return;
    if (w->fd >= 0) close(w->fd);
    if (w->tmp[0]) {
        unlinkat(w->s->blobs_fd, w->tmp, 0);
        temp_forget(w->s, w->tmp);
    }
    EVP_MD_CTX_free(w->md);
    ll_free(w);
}

ll_status store_writer_commit_pin(ll_blob_writer *w, const ll_digest *expect, ll_digest *got,
                                  uint64_t *size, bool *existed, bool pin, ll_error *err) {
    ll_store *s = w->s;
    ll_status st = LL_OK;
    if (existed) *existed = false;
    if (w->failed) { st = ll_fail(err, LL_ERR_IO, "blob writer: an earlier write failed"); goto fail; }
    if (fsync(w->fd) < 0) {
        st = errno == ENOSPC ? ll_fail(err, LL_ERR_IO, "no space left on device while writing blob")
                             : ll_fail(err, LL_ERR_IO, "fsync of blob temp file: %s", strerror(errno));
        goto fail;
    }
    close(w->fd);
    w->fd = -1;
    unsigned char h[32];
    unsigned int hl = 0;
    EVP_DigestFinal_ex(w->md, h, &hl);
    ll_digest d;
    for (int i = 0; i < 32; i++) snprintf(d.hex + 2 * i, 3, "%02x", h[i]);
    if (expect && strcmp(expect->hex, d.hex)) {
        /* S2: nothing is kept, under either digest (Ollama keeps an orphan) */
        st = ll_fail(err, LL_ERR_FORMAT, "digest mismatch, expected \"sha256:%s\", got \"sha256:%s\"",
                     expect->hex, d.hex);
        goto fail;
    }
    char final[80];
    snprintf(final, sizeof final, "sha256-%s", d.hex);
    pthread_mutex_lock(&s->mu);
    if (pin && (st = store_pin_locked(s, &d, err)) != LL_OK) {
        pthread_mutex_unlock(&s->mu);
        goto fail;
    }
    /* S4: the first complete rename wins; a later writer finds the blob and drops its temp.
     * RENAME_NOREPLACE makes "exists" and "rename" one step. */
    bool was_there = false;
    if (renameat2(s->blobs_fd, w->tmp, s->blobs_fd, final, RENAME_NOREPLACE) < 0) {
        int e = errno;
        if (e == EINVAL || e == ENOSYS) {      /* filesystem without RENAME_NOREPLACE */
            if (ll_store_blob_exists(s, &d, NULL)) was_there = true;
            else if (renameat(s->blobs_fd, w->tmp, s->blobs_fd, final) < 0) e = errno;
            else e = 0;
        }
        if (e == EEXIST) was_there = true;
        else if (e && !was_there) {
            if (pin) store_unpin_locked(s, &d);
            pthread_mutex_unlock(&s->mu);
            st = ll_fail(err, LL_ERR_IO, "renaming blob sha256-%s into place: %s", d.hex, strerror(e));
            goto fail;
        }
        if (was_there) {
            struct stat sb;
            if (fstatat(s->blobs_fd, final, &sb, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(sb.st_mode)) {
                if (pin) store_unpin_locked(s, &d);
                pthread_mutex_unlock(&s->mu);
                st = ll_fail(err, LL_ERR_FORMAT, "blob sha256-%s exists but is not a regular file", d.hex);
                goto fail;
            }
            unlinkat(s->blobs_fd, w->tmp, 0);
        }
    }
    pthread_mutex_unlock(&s->mu);
    temp_forget(s, w->tmp);
    w->tmp[0] = 0;
    fsync(s->blobs_fd);
    if (got) *got = d;
    if (size) *size = w->n;
    if (existed) *existed = was_there;
    ll_blob_writer_abort(w);
    return LL_OK;
fail:
    ll_blob_writer_abort(w);
    return st;
}

ll_status ll_blob_writer_commit(ll_blob_writer *w, const ll_digest *expect, ll_digest *got,
                                uint64_t *size, bool *existed, ll_error *err) {
    return store_writer_commit_pin(w, expect, got, size, existed, false, err);
}

static ll_status put_mem(ll_store *s, const void *p, size_t n, ll_digest *got, bool *existed,
                         bool pin, ll_error *err) {
    ll_blob_writer *w;
    ll_status st = ll_blob_writer_open(&w, s, 0, err);
    if (st) return st;
    if ((st = ll_blob_writer_write(w, p, n, err))) { ll_blob_writer_abort(w); return st; }
    return store_writer_commit_pin(w, NULL, got, NULL, existed, pin, err);
}

ll_status ll_store_blob_put_mem(ll_store *s, const void *p, size_t n, ll_digest *got,
                                bool *existed, ll_error *err) {
    return put_mem(s, p, n, got, existed, false, err);
}

ll_status store_put_mem_pin(ll_store *s, const void *p, size_t n, ll_digest *got, bool *existed,
                            ll_error *err) {
    return put_mem(s, p, n, got, existed, true, err);
}

static ll_status put_file(ll_store *s, const char *path, ll_digest *got, uint64_t *size,
                          bool *existed, bool pin, ll_error *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ll_fail(err, LL_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return ll_fail(err, LL_ERR_IO, "%s: not a regular file", path);
    }
    ll_blob_writer *w;
    ll_status st = ll_blob_writer_open(&w, s, 0, err);
    if (st) { close(fd); return st; }
    enum { CHUNK = 1 << 20 };
    char *buf = ll_malloc(CHUNK);
    if (!buf) { st = ll_fail(err, LL_ERR_NOMEM, "out of memory copying %s", path); goto fail; }
    for (;;) {
        ssize_t k = read(fd, buf, CHUNK);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) { st = ll_fail(err, LL_ERR_IO, "reading %s: %s", path, strerror(errno)); goto fail; }
        if (k == 0) break;
        if ((st = ll_blob_writer_write(w, buf, (size_t)k, err))) goto fail;
    }
    ll_free(buf);
    close(fd);
    return store_writer_commit_pin(w, NULL, got, size, existed, pin, err);
fail:
    ll_free(buf);
    close(fd);
    ll_blob_writer_abort(w);
    return st;
}

ll_status ll_store_blob_put_file(ll_store *s, const char *path, ll_digest *got, uint64_t *size,
                                 bool *existed, ll_error *err) {
    return put_file(s, path, got, size, existed, false, err);
}

ll_status store_put_file_pin(ll_store *s, const char *path, ll_digest *got, uint64_t *size,
                             bool *existed, ll_error *err) {
    return put_file(s, path, got, size, existed, true, err);
}
