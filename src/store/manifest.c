/* store: manifests (§4.2, §4.6), case-insensitive lookup (§0.8.3), listing and derived
 * metadata (§1.5, §4.4, §4.7). */
#include "store/store_impl.h"
#include "store/gofmt.h"
#include "gguf/gguf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

// ---------------------------------------------------------------------------------------------
// parse / serialize

void ll_manifest_free(ll_manifest *m) {
    if (!m) return;
    ll_free(m->config.media_type);
    ll_free(m->config.from);
    ll_free(m->config.name);
    for (size_t i = 0; i < m->n_layers; i++) {
        ll_free(m->layers[i].media_type);
        ll_free(m->layers[i].from);
        ll_free(m->layers[i].name);
    }
    ll_free(m->layers);
    ll_free(m);
}

static ll_status parse_layer(json_t *o, ll_layer *l, const char *where, ll_error *err) {
    if (!json_is_object(o)) return ll_fail(err, LL_ERR_FORMAT, "%s is not an object", where);
    json_t *mt = json_object_get(o, "mediaType"), *dg = json_object_get(o, "digest");
    json_t *sz = json_object_get(o, "size"), *fr = json_object_get(o, "from");
    json_t *nm = json_object_get(o, "name");
    if (mt && !json_is_string(mt) && !json_is_null(mt))
        return ll_fail(err, LL_ERR_FORMAT, "%s mediaType is not a string", where);
    if (!json_is_string(dg)) return ll_fail(err, LL_ERR_FORMAT, "%s has no digest", where);
    ll_error e2 = {0};
    if (ll_digest_parse(&l->digest, json_string_value(dg), &e2) != LL_OK)   /* S9 */
        return ll_fail(err, LL_ERR_FORMAT, "%s digest \"%.80s\" is not sha256:<64 hex>", where,
                       json_string_value(dg));
    if (sz && !json_is_null(sz) && (!json_is_integer(sz) || json_integer_value(sz) < 0))
        return ll_fail(err, LL_ERR_FORMAT, "%s size is not a non-negative integer", where);
    l->size = sz && json_is_integer(sz) ? (uint64_t)json_integer_value(sz) : 0;
    l->media_type = ll_str_dup(ll_str_c(json_is_string(mt) ? json_string_value(mt) : ""));
    if (!l->media_type) return ll_fail(err, LL_ERR_NOMEM, "out of memory parsing a manifest");
    if (json_is_string(fr) && json_string_length(fr) &&
        !(l->from = ll_str_dup((ll_str){ json_string_value(fr), json_string_length(fr) })))
        return ll_fail(err, LL_ERR_NOMEM, "out of memory parsing a manifest");
    if (json_is_string(nm) && json_string_length(nm) &&
        !(l->name = ll_str_dup((ll_str){ json_string_value(nm), json_string_length(nm) })))
        return ll_fail(err, LL_ERR_NOMEM, "out of memory parsing a manifest");
    return LL_OK;
}

ll_status ll_manifest_parse(ll_manifest **out, const void *buf, size_t n, ll_error *err) {
    *out = NULL;
    if (n > LL_MANIFEST_MAX_BYTES)
        return ll_fail(err, LL_ERR_LIMIT, "manifest is %zu bytes, the limit is %u", n, LL_MANIFEST_MAX_BYTES);
    json_error_t je;
    json_t *root = json_loadb(buf, n, JSON_ALLOW_NUL, &je);
    if (!root) return ll_fail(err, LL_ERR_FORMAT, "not JSON (%s at byte %d)", je.text, je.position);
    ll_status st = LL_OK;
    ll_manifest *m = ll_calloc(1, sizeof *m);
    if (!m) { st = ll_fail(err, LL_ERR_NOMEM, "out of memory parsing a manifest"); goto fail; }
    if (!json_is_object(root)) { st = ll_fail(err, LL_ERR_FORMAT, "not a JSON object"); goto fail; }
    if ((st = parse_layer(json_object_get(root, "config"), &m->config, "config", err))) goto fail;
    json_t *layers = json_object_get(root, "layers");
    if (layers && !json_is_null(layers)) {
        if (!json_is_array(layers)) { st = ll_fail(err, LL_ERR_FORMAT, "layers is not an array"); goto fail; }
        size_t k = json_array_size(layers);
        if (k && !(m->layers = ll_calloc(k, sizeof *m->layers))) {
            st = ll_fail(err, LL_ERR_NOMEM, "out of memory parsing a manifest");
            goto fail;
        }
        for (size_t i = 0; i < k; i++) {
            char where[32];
            snprintf(where, sizeof where, "layer %zu", i);
            m->n_layers = i + 1;
            if ((st = parse_layer(json_array_get(layers, i), &m->layers[i], where, err))) goto fail;
        }
    }
    uint64_t total = m->config.size;
    for (size_t i = 0; i < m->n_layers; i++)
        if (!ll_add_u64(total, m->layers[i].size, &total)) {
            st = ll_fail(err, LL_ERR_FORMAT, "layer sizes overflow");
            goto fail;
        }
    m->total_size = total;
    json_decref(root);
    *out = m;
    return LL_OK;
fail:
    json_decref(root);
    ll_manifest_free(m);
    return st;
}

static void put_layer(gobuf *b, const ll_layer *l) {
    char d[80];
    ll_digest_str(&l->digest, d, sizeof d);
    gobuf_puts(b, "{\"mediaType\":");
    gobuf_json_str(b, l->media_type ? l->media_type : "", l->media_type ? strlen(l->media_type) : 0);
    gobuf_printf(b, ",\"digest\":\"%s\",\"size\":%llu", d, (unsigned long long)l->size);
    if (l->from && *l->from) { gobuf_puts(b, ",\"from\":"); gobuf_json_str(b, l->from, strlen(l->from)); }
    if (l->name && *l->name) { gobuf_puts(b, ",\"name\":"); gobuf_json_str(b, l->name, strlen(l->name)); }
    gobuf_puts(b, "}");
}

char *ll_manifest_serialize(const ll_manifest *m, size_t *n) {
    gobuf b = {0};
    gobuf_puts(&b, "{\"schemaVersion\":2,\"mediaType\":\"" LL_MEDIA_MANIFEST "\",\"config\":");
    put_layer(&b, &m->config);
    gobuf_puts(&b, ",\"layers\":[");
    for (size_t i = 0; i < m->n_layers; i++) {
        if (i) gobuf_puts(&b, ",");
        put_layer(&b, &m->layers[i]);
    }
    gobuf_puts(&b, "]}\n");
    return gobuf_take(&b, n);
}

const ll_layer *ll_manifest_find(const ll_manifest *m, const char *media_type) {
    for (size_t i = 0; i < m->n_layers; i++)
        if (m->layers[i].media_type && !strcmp(m->layers[i].media_type, media_type)) return &m->layers[i];
    return NULL;
}

// ---------------------------------------------------------------------------------------------
// names to paths

/* The entry of dir_fd matching name ignoring case (exact spelling preferred) into out.
 * Returns false when there is none. */
static bool match_entry(int dir_fd, const char *name, char *out, size_t cap) {
    struct stat st;
    if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        snprintf(out, cap, "%s", name);
        return true;
    }
    int fd = dup(dir_fd);
    if (fd < 0) return false;
    DIR *d = fdopendir(fd);
    if (!d) { close(fd); return false; }
    rewinddir(d);
    bool found = false;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (!strcasecmp(e->d_name, name) && strlen(e->d_name) < cap) {
            snprintf(out, cap, "%s", e->d_name);
            found = true;
            break;
        }
    }
    closedir(d);
    return found;
}

ll_status store_manifest_dir(ll_store *s, const ll_model_name *n, bool create, store_mpath *mp,
                             ll_model_name *resolved, bool *found, ll_error *err) {
    char display[LL_NAME_FULL_MAX];
    ll_name_display(n, display, sizeof display);
    mp->dir_fd = -1;
    *found = false;
    ll_model_name r = *n;
    if (s->manifests_fd < 0) {
        if (create) return ll_fail(err, LL_ERR_IO, "model store is read-only");
        return LL_OK;
    }
    char *parts[3] = { r.host, r.ns, r.model };
    size_t caps[3] = { sizeof r.host, sizeof r.ns, sizeof r.model };
    int fd = s->manifests_fd;
    for (int i = 0; i < 3; i++) {
        char on_disk[LL_NAME_HOST_MAX + 1];
        bool have = match_entry(fd, parts[i], on_disk, sizeof on_disk);
        if (have) snprintf(parts[i], caps[i], "%s", on_disk);
        else if (!create) { if (fd != s->manifests_fd) close(fd); return LL_OK; }
        int nfd = store_open_dir(fd, parts[i], create);
        int e = errno;
        if (fd != s->manifests_fd) close(fd);
        if (nfd < 0) {
            if (e == ENOENT && !create) return LL_OK;
            if (e == ELOOP || e == ENOTDIR)   /* S21 */
                return ll_fail(err, LL_ERR_FORMAT, "manifest for '%s' is corrupt: '%s' is a symlink "
                               "or not a directory", display, parts[i]);
            if (e == EROFS || e == EACCES)
                return ll_fail(err, LL_ERR_IO, create ? "model store is read-only" :
                               "manifest for '%s': permission denied", display);
            return ll_fail(err, LL_ERR_IO, "manifest for '%s': %s", display, strerror(e));
        }
        fd = nfd;
    }
    char tag[LL_NAME_PART_MAX + 1];
    bool have = match_entry(fd, r.tag, tag, sizeof tag);
    if (have) memcpy(r.tag, tag, sizeof r.tag);
    mp->dir_fd = fd;
    snprintf(mp->tag, sizeof mp->tag, "%s", r.tag);
    if (resolved) *resolved = r;
    *found = have;
    return LL_OK;
}

ll_status store_manifest_bytes(int dir_fd, const char *tag, const char *display, char **buf,
                               size_t *n, struct timespec *mtime, ll_error *err) {
    *buf = NULL;
    *n = 0;
    int fd = openat(dir_fd, tag, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        if (errno == ELOOP)
            return ll_fail(err, LL_ERR_FORMAT, "manifest for '%s' is corrupt: it is a symlink", display);
        if (errno == EACCES)   /* S20: the name, not the path */
            return ll_fail(err, LL_ERR_IO, "manifest for '%s' is unreadable: permission denied", display);
        return ll_fail(err, LL_ERR_IO, "manifest for '%s': %s", display, strerror(errno));
    }
    struct stat st;
    ll_status rc = LL_OK;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        rc = ll_fail(err, LL_ERR_FORMAT, "manifest for '%s' is corrupt: not a regular file", display);
        goto out;
    }
    if (st.st_size > (off_t)LL_MANIFEST_MAX_BYTES) {
        rc = ll_fail(err, LL_ERR_FORMAT, "manifest for '%s' is corrupt: %lld bytes, over the 1 MiB limit",
                     display, (long long)st.st_size);
        goto out;
    }
    size_t len = (size_t)st.st_size;
    char *b = ll_malloc(len + 1);
    if (!b) { rc = ll_fail(err, LL_ERR_NOMEM, "out of memory reading manifest for '%s'", display); goto out; }
    size_t got = 0;
    while (got < len) {
        ssize_t k = read(fd, b + got, len - got);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) {
            ll_free(b);
            rc = ll_fail(err, LL_ERR_IO, "manifest for '%s': %s", display,
                         errno == EACCES ? "permission denied" : strerror(errno));
            goto out;
        }
        if (k == 0) break;          /* shrank while reading: take what is there */
        got += (size_t)k;
    }
    b[got] = 0;
    *buf = b;
    *n = got;
    if (mtime) *mtime = st.st_mtim;
out:
    close(fd);
    return rc;
}

static atomic_uint manifest_seq;

ll_status store_manifest_put(ll_store *s, int dir_fd, const char *tag, const void *buf, size_t n,
                             const char *display, ll_error *err) {
    /* S6: temp beside the target, never a valid tag (leading '.'), so a crash leaves the old
     * manifest or the new one and a stray temp that listing ignores. */
    char tmp[128];
    snprintf(tmp, sizeof tmp, ".%s.tmp-%ld-%u", tag, (long)getpid(), atomic_fetch_add(&manifest_seq, 1));
    int fd = openat(dir_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0)
        return ll_fail(err, LL_ERR_IO, "writing manifest for '%s': %s", display,
                       errno == EROFS || errno == EACCES ? "model store is read-only" : strerror(errno));
    char what[LL_NAME_FULL_MAX + 32];
    snprintf(what, sizeof what, "manifest for '%s'", display);
    ll_status st = store_write_all(fd, buf, n, what, err);
    if (st == LL_OK && fsync(fd) < 0)
        st = ll_fail(err, LL_ERR_IO, "fsync of manifest for '%s': %s", display, strerror(errno));
    close(fd);
    if (st == LL_OK && renameat(dir_fd, tmp, dir_fd, tag) < 0)
        st = ll_fail(err, LL_ERR_IO, "renaming manifest for '%s' into place: %s", display, strerror(errno));
    if (st != LL_OK) { unlinkat(dir_fd, tmp, 0); return st; }
    fsync(dir_fd);
    (void)s;
    return LL_OK;
}

ll_status ll_store_resolve(ll_store *s, const ll_model_name *n, ll_model_name *resolved,
                           bool *found, ll_error *err) {
    store_mpath mp;
    ll_status st = store_manifest_dir(s, n, false, &mp, resolved, found, err);
    if (mp.dir_fd >= 0) close(mp.dir_fd);
    return st;
}

ll_status ll_store_manifest_read(ll_store *s, const ll_model_name *n, ll_manifest **out,
                                 bool *found, ll_error *err) {
    *out = NULL;
    char display[LL_NAME_FULL_MAX];
    ll_name_display(n, display, sizeof display);
    store_mpath mp;
    ll_status st = store_manifest_dir(s, n, false, &mp, NULL, found, err);
    if (st != LL_OK || !*found) { if (mp.dir_fd >= 0) close(mp.dir_fd); return st; }
    char *buf;
    size_t len;
    struct timespec mt;
    st = store_manifest_bytes(mp.dir_fd, mp.tag, display, &buf, &len, &mt, err);
    close(mp.dir_fd);
    if (st != LL_OK) return st;
    ll_error e2 = {0};
    ll_manifest *m;
    if (ll_manifest_parse(&m, buf, len, &e2) != LL_OK) {
        ll_free(buf);
        if (e2.code == LL_ERR_NOMEM) return ll_fail(err, LL_ERR_NOMEM, "%s", e2.msg);
        return ll_fail(err, LL_ERR_FORMAT, "manifest for '%s' is corrupt: %s", display, e2.msg);
    }
    store_sha256_hex(buf, len, m->digest);
    m->mtime = mt;
    ll_free(buf);
    *out = m;
    return LL_OK;
}

/* Callers hold s->mu. Every blob a manifest names must be present (S13, S14). */
static ll_status blobs_present_locked(ll_store *s, const ll_manifest *m, const char *display, ll_error *err) {
    if (!ll_store_blob_exists(s, &m->config.digest, NULL))
        return ll_fail(err, LL_ERR_IO, "model '%s': config blob sha256-%s is missing", display, m->config.digest.hex);
    for (size_t i = 0; i < m->n_layers; i++)
        if (!ll_store_blob_exists(s, &m->layers[i].digest, NULL))
            return ll_fail(err, LL_ERR_IO, "model '%s': blob sha256-%s is missing", display,
                           m->layers[i].digest.hex);
    return LL_OK;
}

ll_status ll_store_manifest_write(ll_store *s, const ll_model_name *n, const ll_manifest *m,
                                  ll_error *err) {
    if (s->read_only) return ll_fail(err, LL_ERR_IO, "model store is read-only");
    char display[LL_NAME_FULL_MAX];
    ll_name_display(n, display, sizeof display);
    size_t len;
    char *buf = ll_manifest_serialize(m, &len);
    if (!buf) return ll_fail(err, LL_ERR_NOMEM, "out of memory writing manifest for '%s'", display);
    pthread_mutex_lock(&s->mu);
    store_mpath mp;
    bool found;
    ll_status st = blobs_present_locked(s, m, display, err);
    if (st == LL_OK) st = store_manifest_dir(s, n, true, &mp, NULL, &found, err);
    if (st == LL_OK) {
        st = store_manifest_put(s, mp.dir_fd, mp.tag, buf, len, display, err);
        close(mp.dir_fd);
    }
    pthread_mutex_unlock(&s->mu);
    ll_free(buf);
    return st;
}

ll_status ll_store_model_check(ll_store *s, const ll_model_name *n, const ll_manifest *m,
                               ll_error *err) {
    char display[LL_NAME_FULL_MAX];
    ll_name_display(n, display, sizeof display);
    for (size_t i = 0; i <= m->n_layers; i++) {
        const ll_layer *l = i < m->n_layers ? &m->layers[i] : &m->config;
        char name[80];
        struct stat st;
        snprintf(name, sizeof name, "sha256-%s", l->digest.hex);
        if (s->blobs_fd < 0 || fstatat(s->blobs_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            if (s->blobs_fd < 0 || errno == ENOENT)   /* S8 */
                return ll_fail(err, LL_ERR_IO, "model '%s' is missing blob sha256-%s; re-create or pull it",
                               display, l->digest.hex);
            return ll_fail(err, LL_ERR_IO, "model '%s': blob sha256-%s: %s", display, l->digest.hex,
                           errno == EACCES ? "permission denied" : strerror(errno));
        }
        if (!S_ISREG(st.st_mode))   /* S21 */
            return ll_fail(err, LL_ERR_FORMAT, "model '%s': blob sha256-%s is not a regular file",
                           display, l->digest.hex);
        if ((uint64_t)st.st_size != l->size)   /* S10 */
            return ll_fail(err, LL_ERR_FORMAT, "model '%s': blob sha256-%s is %lld bytes, the manifest says %llu",
                           display, l->digest.hex, (long long)st.st_size, (unsigned long long)l->size);
    }
    return LL_OK;
}

// ---------------------------------------------------------------------------------------------
// walking manifests/<host>/<ns>/<model>/<tag>

typedef int (*walk_fn)(void *user, const char *parts[4], int dir_fd);

/* Visit every regular file exactly four levels down whose path parts are valid name parts;
 * symlinks and other entries are skipped. With prune, empty directories are removed on the
 * way back up. Stops when fn returns non-zero and returns that. */
static int walk_level(int dir_fd, int depth, const char *parts[4], walk_fn fn, void *user, bool prune) {
    int fd = dup(dir_fd);
    if (fd < 0) return 0;
    DIR *d = fdopendir(fd);
    if (!d) { close(fd); return 0; }
    rewinddir(d);
    struct dirent *e;
    int rc = 0;
    /* collect names first: the callback and pruning change the directory */
    char **names = NULL;
    size_t nn = 0, cap = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (nn == cap) {
            size_t nc = cap ? cap * 2 : 32;
            char **v = ll_realloc(names, nc * sizeof *v);
            if (!v) break;
            names = v;
            cap = nc;
        }
        if (!(names[nn] = ll_str_dup(ll_str_c(e->d_name)))) break;
        nn++;
    }
    closedir(d);
    for (size_t i = 0; i < nn && !rc; i++) {
        struct stat st;
        if (fstatat(dir_fd, names[i], &st, AT_SYMLINK_NOFOLLOW) < 0) continue;
        parts[depth] = names[i];
        if (depth == 3) {
            if (!S_ISREG(st.st_mode)) continue;
            rc = fn(user, parts, dir_fd);
        } else if (S_ISDIR(st.st_mode)) {
            int sub = store_open_dir(dir_fd, names[i], false);
            if (sub < 0) continue;
            rc = walk_level(sub, depth + 1, parts, fn, user, prune);
            close(sub);
            if (prune) unlinkat(dir_fd, names[i], AT_REMOVEDIR);   /* fails unless empty */
        }
    }
    for (size_t i = 0; i < nn; i++) ll_free(names[i]);
    ll_free(names);
    return rc;
}

static int walk_manifests(ll_store *s, walk_fn fn, void *user, bool prune) {
    if (s->manifests_fd < 0) return 0;
    const char *parts[4] = {0};
    return walk_level(s->manifests_fd, 0, parts, fn, user, prune);
}

/* A path's parts form a valid name whose parts are exactly these spellings. */
static bool parts_name(const char *parts[4], ll_model_name *n) {
    char full[LL_NAME_FULL_MAX + 8];
    ll_error e = {0};
    if (strlen(parts[0]) > LL_NAME_HOST_MAX) return false;
    snprintf(full, sizeof full, "%s/%s/%s:%s", parts[0], parts[1], parts[2], parts[3]);
    if (ll_name_parse(n, full, &e) != LL_OK) return false;
    return !strcmp(n->host, parts[0]) && !strcmp(n->ns, parts[1]) && !strcmp(n->model, parts[2]) &&
           !strcmp(n->tag, parts[3]);
}

// ---------------------------------------------------------------------------------------------
// referenced digests (for delete and GC)

static bool push_digest(ll_digest **v, size_t *n, size_t *cap, const ll_digest *d) {
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        ll_digest *nv = ll_realloc(*v, nc * sizeof *nv);
        if (!nv) return false;
        *v = nv;
        *cap = nc;
    }
    (*v)[(*n)++] = *d;
    return true;
}

bool store_collect_digests(const char *buf, size_t n, ll_digest **v, size_t *nv, size_t *cap) {
    ll_error e = {0};
    ll_manifest *m;
    if (ll_manifest_parse(&m, buf, n, &e) == LL_OK) {
        bool ok = push_digest(v, nv, cap, &m->config.digest);
        for (size_t i = 0; ok && i < m->n_layers; i++) ok = push_digest(v, nv, cap, &m->layers[i].digest);
        ll_manifest_free(m);
        return ok;
    }
    if (e.code == LL_ERR_NOMEM) return false;
    /* corrupt: anything that looks like a digest counts as a reference (S7: never block GC,
     * never delete what a damaged manifest might still name) */
    for (size_t i = 0; i + 71 <= n; i++) {
        if (memcmp(buf + i, "sha256", 6) || (buf[i + 6] != ':' && buf[i + 6] != '-')) continue;
        char tmp[72];
        memcpy(tmp, buf + i, 71);
        tmp[71] = 0;
        ll_digest d;
        if (ll_digest_parse(&d, tmp, &e) == LL_OK && !push_digest(v, nv, cap, &d)) return false;
    }
    return true;
}

typedef struct {
    ll_digest *v;
    size_t n, cap;
    bool oom, unreadable;
} ref_walk;

static int ref_visit(void *user, const char *parts[4], int dir_fd) {
    ref_walk *r = user;
    char *buf;
    size_t len;
    ll_error e = {0};
    if (store_manifest_bytes(dir_fd, parts[3], parts[2], &buf, &len, NULL, &e) != LL_OK) {
        if (e.code == LL_ERR_NOMEM) { r->oom = true; return 1; }
        if (e.code == LL_ERR_IO) r->unreadable = true;   /* cannot know its references */
        return 0;
    }
    if (!store_collect_digests(buf, len, &r->v, &r->n, &r->cap)) r->oom = true;
    ll_free(buf);
    return r->oom;
}

static int cmp_digest(const void *a, const void *b) {
    return strcmp(((const ll_digest *)a)->hex, ((const ll_digest *)b)->hex);
}

ll_status store_referenced_locked(ll_store *s, ll_digest **v, size_t *n, ll_error *err) {
    ref_walk r = {0};
    walk_manifests(s, ref_visit, &r, false);
    if (r.oom) { ll_free(r.v); return ll_fail(err, LL_ERR_NOMEM, "out of memory collecting blob references"); }
    if (r.unreadable) {
        ll_free(r.v);
        return ll_fail(err, LL_ERR_IO, "a manifest could not be read: blobs are not collected");
    }
    if (r.n) qsort(r.v, r.n, sizeof *r.v, cmp_digest);
    size_t k = 0;
    for (size_t i = 0; i < r.n; i++)
        if (k == 0 || strcmp(r.v[k - 1].hex, r.v[i].hex)) r.v[k++] = r.v[i];
    *v = r.v;
    *n = k;
    return LL_OK;
}

// ---------------------------------------------------------------------------------------------
// details (§4.4, §4.7.3)

void ll_model_details_clear(ll_model_details *d) {
    ll_free(d->parent_model);
    ll_free(d->format);
    ll_free(d->family);
    for (size_t i = 0; i < d->n_families; i++) ll_free(d->families[i]);
    ll_free(d->families);
    ll_free(d->parameter_size);
    ll_free(d->quantization_level);
    memset(d, 0, sizeof *d);
}

static char *json_str_dup(json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    return ll_str_dup(json_is_string(v) ? (ll_str){ json_string_value(v), json_string_length(v) } : ll_str_c(""));
}

/* GGUF lengths and file type of a model blob, cached by digest (S24: listing stays cheap). */
static void model_lens(ll_store *s, const ll_digest *d, int64_t *ctx, int64_t *embd, int64_t *ftype) {
    *ctx = *embd = 0;
    *ftype = -1;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->n_lens; i++)
        if (!strcmp(s->lens[i].d.hex, d->hex)) {
            *ctx = s->lens[i].ctx; *embd = s->lens[i].embd; *ftype = s->lens[i].ftype;
            pthread_mutex_unlock(&s->mu);
            return;
        }
    pthread_mutex_unlock(&s->mu);
    char path[PATH_MAX_STORE];
    ll_store_blob_path(s, d, path, sizeof path);
    if (!ll_store_blob_exists(s, d, NULL)) return;   /* S8: listed, without lengths */
    ll_gguf *g;
    ll_error e = {0};
    if (ll_gguf_open(&g, path, &e) != LL_OK) return;
    ll_str arch = {0};
    bool found = false;
    ll_gguf_get_str(g, "general.architecture", &arch, &found, &e);
    if (found && arch.n < 64) {
        char key[96];
        int64_t v;
        bool f2 = false;
        snprintf(key, sizeof key, "%.*s.context_length", LL_STR(arch));
        if (ll_gguf_get_i64(g, key, &v, &f2, &e) == LL_OK && f2) *ctx = v;
        f2 = false;
        snprintf(key, sizeof key, "%.*s.embedding_length", LL_STR(arch));
        if (ll_gguf_get_i64(g, key, &v, &f2, &e) == LL_OK && f2) *embd = v;
    }
    int64_t ft;
    bool f3 = false;
    if (ll_gguf_get_i64(g, "general.file_type", &ft, &f3, &e) == LL_OK && f3) *ftype = ft;
    ll_gguf_close(g);
    pthread_mutex_lock(&s->mu);
    if (s->n_lens == s->cap_lens) {
        size_t nc = s->cap_lens ? 2 * s->cap_lens : 16;
        store_lens *v = ll_realloc(s->lens, nc * sizeof *v);
        if (v) { s->lens = v; s->cap_lens = nc; }
    }
    if (s->n_lens < s->cap_lens) s->lens[s->n_lens++] = (store_lens){ *d, *ctx, *embd, *ftype };
    pthread_mutex_unlock(&s->mu);
}

ll_status ll_store_details(ll_store *s, const ll_manifest *m, ll_model_details *d, ll_error *err) {
    memset(d, 0, sizeof *d);
    const ll_layer *model = ll_manifest_find(m, LL_MEDIA_MODEL);
    char *cfg_text = NULL;
    size_t cfg_n = 0;
    json_t *cfg = NULL;
    ll_error e = {0};
    if (store_blob_read(s, &m->config.digest, LL_MANIFEST_MAX_BYTES, &cfg_text, &cfg_n, &e) == LL_OK)
        cfg = json_loadb(cfg_text, cfg_n, 0, NULL);
    ll_free(cfg_text);
    if (!json_is_object(cfg)) { json_decref(cfg); cfg = json_object(); }
    if (!cfg) return ll_fail(err, LL_ERR_NOMEM, "out of memory reading model details");

    d->parent_model = ll_str_dup(ll_str_c(model && model->from ? model->from : ""));
    d->format = json_str_dup(cfg, "model_format");
    d->family = json_str_dup(cfg, "model_family");
    d->parameter_size = json_str_dup(cfg, "model_type");
    d->quantization_level = json_str_dup(cfg, "file_type");
    json_t *fams = json_object_get(cfg, "model_families");
    bool ok = d->parent_model && d->format && d->family && d->parameter_size && d->quantization_level;
    if (ok && json_is_array(fams)) {
        size_t k = json_array_size(fams);
        d->families = ll_calloc(k ? k : 1, sizeof *d->families);
        ok = d->families != NULL;
        for (size_t i = 0; ok && i < k; i++) {
            json_t *f = json_array_get(fams, i);
            if (!json_is_string(f)) continue;
            if (!(d->families[d->n_families] = ll_str_dup(ll_str_c(json_string_value(f))))) ok = false;
            else d->n_families++;
        }
    }
    json_decref(cfg);
    if (!ok) { ll_model_details_clear(d); return ll_fail(err, LL_ERR_NOMEM, "out of memory reading model details"); }
    if (model) {
        int64_t ft;
        model_lens(s, &model->digest, &d->context_length, &d->embedding_length, &ft);
        if ((!*d->quantization_level || !strcmp(d->quantization_level, "unknown")) && ft >= 0) {
            char *q = ll_str_dup(ll_str_c(ll_file_type_name(ft)));
            if (q) { ll_free(d->quantization_level); d->quantization_level = q; }
        }
    }
    return LL_OK;
}

// ---------------------------------------------------------------------------------------------
// listing (/api/tags)

typedef struct {
    ll_store *s;
    ll_model_info *v;
    size_t n, cap;
    ll_status st;
    ll_error *err;
} list_walk;

/* S7: log a corrupt manifest once per (path, mtime). */
static void log_corrupt_once(ll_store *s, const char *full, const struct timespec *mt, const char *why) {
    char key[LL_NAME_FULL_MAX + 48];
    snprintf(key, sizeof key, "%s@%lld.%09ld", full, mt ? (long long)mt->tv_sec : 0LL, mt ? mt->tv_nsec : 0L);
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->n_logged; i++)
        if (!strcmp(s->logged[i], key)) { pthread_mutex_unlock(&s->mu); return; }
    char **v = ll_realloc(s->logged, (s->n_logged + 1) * sizeof *v);
    if (v) {
        s->logged = v;
        if ((v[s->n_logged] = ll_str_dup(ll_str_c(key)))) s->n_logged++;
    }
    pthread_mutex_unlock(&s->mu);
    LL_WARN("model store: skipping %s: %s", full, why);
}

static int list_visit(void *user, const char *parts[4], int dir_fd) {
    list_walk *w = user;
    ll_model_name n;
    if (!parts_name(parts, &n)) return 0;
    char display[LL_NAME_FULL_MAX], full[LL_NAME_FULL_MAX];
    ll_name_display(&n, display, sizeof display);
    ll_name_full(&n, full, sizeof full);
    char *buf;
    size_t len;
    struct timespec mt;
    ll_error e = {0};
    if (store_manifest_bytes(dir_fd, parts[3], display, &buf, &len, &mt, &e) != LL_OK) {
        if (e.code == LL_ERR_NOMEM) { w->st = ll_fail(w->err, LL_ERR_NOMEM, "%s", e.msg); return 1; }
        log_corrupt_once(w->s, full, NULL, e.msg);
        return 0;
    }
    ll_manifest *m;
    if (ll_manifest_parse(&m, buf, len, &e) != LL_OK) {
        ll_free(buf);
        if (e.code == LL_ERR_NOMEM) { w->st = ll_fail(w->err, LL_ERR_NOMEM, "%s", e.msg); return 1; }
        log_corrupt_once(w->s, full, &mt, e.msg);
        return 0;
    }
    if (w->n == w->cap) {
        size_t nc = w->cap ? 2 * w->cap : 16;
        ll_model_info *v = ll_realloc(w->v, nc * sizeof *v);
        if (!v) { ll_free(buf); ll_manifest_free(m); w->st = ll_fail(w->err, LL_ERR_NOMEM, "out of memory listing models"); return 1; }
        w->v = v;
        w->cap = nc;
    }
    ll_model_info *info = &w->v[w->n];
    memset(info, 0, sizeof *info);
    snprintf(info->name, sizeof info->name, "%s", display);
    info->parsed = n;
    info->size = m->total_size;
    store_sha256_hex(buf, len, info->digest);
    info->modified_at = mt;
    ll_free(buf);
    ll_status st = ll_store_details(w->s, m, &info->details, w->err);
    ll_manifest_free(m);
    if (st != LL_OK) { w->st = st; return 1; }
    w->n++;
    return 0;
}

static int cmp_info(const void *a, const void *b) {
    const ll_model_info *x = a, *y = b;
    if (x->modified_at.tv_sec != y->modified_at.tv_sec) return x->modified_at.tv_sec > y->modified_at.tv_sec ? -1 : 1;
    return strcmp(x->name, y->name);
}

ll_status ll_store_list(ll_store *s, ll_model_info **out, size_t *n, ll_error *err) {
    *out = NULL;
    *n = 0;
    list_walk w = { .s = s, .err = err };
    walk_manifests(s, list_visit, &w, false);
    if (w.st != LL_OK) { ll_model_info_free(w.v, w.n); return w.st; }
    if (w.n) qsort(w.v, w.n, sizeof *w.v, cmp_info);
    *out = w.v;
    *n = w.n;
    return LL_OK;
}

void ll_model_info_free(ll_model_info *v, size_t n) {
    if (!v) return;
    for (size_t i = 0; i < n; i++) ll_model_details_clear(&v[i].details);
    ll_free(v);
}

// ---------------------------------------------------------------------------------------------
// layers as a Modelfile (/api/show)

static ll_status read_text(ll_store *s, const ll_layer *l, char **out, ll_error *err) {
    size_t n;
    return store_blob_read(s, &l->digest, LL_MODELFILE_MAX_BYTES, out, &n, err);
}

static bool push_owned(char ***v, size_t *n, char *s) {
    if (!s) return false;
    char **nv = ll_realloc(*v, (*n + 1) * sizeof *nv);
    if (!nv) { ll_free(s); return false; }
    nv[(*n)++] = s;
    *v = nv;
    return true;
}

ll_status ll_store_modelfile(ll_store *s, const ll_manifest *m, ll_modelfile **out, ll_error *err) {
    *out = NULL;
    ll_modelfile *mf = ll_modelfile_new();
    if (!mf) return ll_fail(err, LL_ERR_NOMEM, "out of memory building a Modelfile");
    ll_status st = LL_OK;
    char path[PATH_MAX_STORE];
    const ll_layer *model = ll_manifest_find(m, LL_MEDIA_MODEL);
    if (model) {
        ll_store_blob_path(s, &model->digest, path, sizeof path);
        if (!push_owned(&mf->from, &mf->n_from, ll_str_dup(ll_str_c(path)))) goto oom;
    }
    for (size_t i = 0; i < m->n_layers; i++) {
        const ll_layer *l = &m->layers[i];
        const char *mt = l->media_type;
        char *text = NULL;
        if (!strcmp(mt, LL_MEDIA_PROJECTOR) || !strcmp(mt, LL_MEDIA_ADAPTER) || !strcmp(mt, LL_MEDIA_DRAFT)) {
            ll_store_blob_path(s, &l->digest, path, sizeof path);
            char *p = ll_str_dup(ll_str_c(path));
            if (!p) goto oom;
            if (!strcmp(mt, LL_MEDIA_PROJECTOR)) { if (!push_owned(&mf->from, &mf->n_from, p)) goto oom; }
            else if (!strcmp(mt, LL_MEDIA_ADAPTER)) { if (!push_owned(&mf->adapters, &mf->n_adapters, p)) goto oom; }
            else { ll_free(mf->draft); mf->draft = p; }
            continue;
        }
        bool is_text = !strcmp(mt, LL_MEDIA_TEMPLATE) || !strcmp(mt, LL_MEDIA_PROMPT) ||
                       !strcmp(mt, LL_MEDIA_SYSTEM) || !strcmp(mt, LL_MEDIA_LICENSE) ||
                       !strcmp(mt, LL_MEDIA_PARAMS) || !strcmp(mt, LL_MEDIA_MESSAGES);
        if (!is_text) continue;
        if ((st = read_text(s, l, &text, err))) goto fail;
        if (!strcmp(mt, LL_MEDIA_TEMPLATE) || !strcmp(mt, LL_MEDIA_PROMPT)) { ll_free(mf->template_text); mf->template_text = text; }
        else if (!strcmp(mt, LL_MEDIA_SYSTEM)) { ll_free(mf->system); mf->system = text; }
        else if (!strcmp(mt, LL_MEDIA_LICENSE)) { if (!push_owned(&mf->licenses, &mf->n_licenses, text)) goto oom; }
        else {
            json_error_t je;
            json_t *j = json_loads(text, 0, &je);
            ll_free(text);
            if (!strcmp(mt, LL_MEDIA_PARAMS)) {
                if (!json_is_object(j)) {
                    json_decref(j);
                    st = ll_fail(err, LL_ERR_FORMAT, "params blob sha256-%s is not a JSON object", l->digest.hex);
                    goto fail;
                }
                json_decref(mf->params);
                mf->params = j;
            } else {
                if (!json_is_array(j)) {
                    json_decref(j);
                    st = ll_fail(err, LL_ERR_FORMAT, "messages blob sha256-%s is not a JSON array", l->digest.hex);
                    goto fail;
                }
                size_t k;
                json_t *msg;
                json_array_foreach(j, k, msg) {
                    json_t *r = json_object_get(msg, "role"), *c = json_object_get(msg, "content");
                    ll_mf_message *v = ll_realloc(mf->messages, (mf->n_messages + 1) * sizeof *v);
                    if (!v) { json_decref(j); goto oom; }
                    mf->messages = v;
                    char *role = ll_str_dup(ll_str_c(json_is_string(r) ? json_string_value(r) : ""));
                    char *content = ll_str_dup(json_is_string(c) ? (ll_str){ json_string_value(c), json_string_length(c) } : ll_str_c(""));
                    if (!role || !content) { ll_free(role); ll_free(content); json_decref(j); goto oom; }
                    v[mf->n_messages++] = (ll_mf_message){ role, content };
                }
                json_decref(j);
            }
        }
    }
    *out = mf;
    return LL_OK;
oom:
    st = ll_fail(err, LL_ERR_NOMEM, "out of memory building a Modelfile");
fail:
    ll_modelfile_free(mf);
    return st;
}

int store_walk_manifests(ll_store *s, int (*fn)(void *, const char *[4], int), void *user, bool prune) {
    return walk_manifests(s, fn, user, prune);
}
