/* store internals shared by store.c (files, blobs), manifest.c (manifests, listing) and
 * create.c (create, copy, delete, GC). Not part of the API. */
#ifndef LL_STORE_IMPL_H
#define LL_STORE_IMPL_H

#include "store/store.h"

#include <pthread.h>

#define PATH_MAX_STORE 4352   /* root (PATH_MAX) + "/blobs/sha256-<64 hex>" */

typedef struct { ll_digest d; int n; } store_pin;
typedef struct { ll_digest d; int64_t ctx, embd, ftype; } store_lens;   /* ftype -1: absent */

struct ll_store {
    char *root;             /* resolved absolute path */
    int   root_fd, manifests_fd, blobs_fd;   /* opened once, O_DIRECTORY, symlinks refused */
    int   lock_fd;          /* -1 until ll_store_lock */
    bool  read_only;
    int64_t grace;          /* seconds */

    pthread_mutex_t mu;     /* guards everything below, and every decision to write or remove a
                               manifest or blob (delete, GC, manifest write, copy) */
    store_pin *pins;        /* blobs in use by operations in flight (counted) */
    size_t n_pins, cap_pins;
    char (*temps)[64];      /* names of live temp files in blobs/ (GC keeps them: S16) */
    size_t n_temps, cap_temps;
    store_lens *lens;       /* GGUF context/embedding lengths by model blob, for listing */
    size_t n_lens, cap_lens;
    char **logged;          /* corrupt manifests already logged ("path@mtime"), S7 "logs once" */
    size_t n_logged;
};

/* errno of the last failed store write, for the test hook and ENOSPC mapping */
ll_status store_write_all(int fd, const void *p, size_t n, const char *what, ll_error *err);
/* open <dir_fd>/<name> as a directory without following a symlink; mkdir first if create */
int  store_open_dir(int dir_fd, const char *name, bool create);
bool store_is_digest_name(const char *name, ll_digest *d);   /* sha256-<64 lowercase hex> */
bool store_is_temp_name(const char *name);                   /* sha256-<1..40 digits> */
bool store_pinned_locked(ll_store *s, const ll_digest *d);
bool store_temp_live_locked(ll_store *s, const char *name);
ll_status store_pin_locked(ll_store *s, const ll_digest *d, ll_error *err);
void store_unpin_locked(ll_store *s, const ll_digest *d);
/* Read a whole blob (≤ cap bytes) into a NUL-terminated heap buffer. */
ll_status store_blob_read(ll_store *s, const ll_digest *d, size_t cap, char **out, size_t *n,
                          ll_error *err);
/* Commit variant that pins the digest (under the mutex, before its existence check), so no
 * GC can remove the blob until store_unpin. */
ll_status store_writer_commit_pin(ll_blob_writer *w, const ll_digest *expect, ll_digest *got,
                                  uint64_t *size, bool *existed, bool pin, ll_error *err);
ll_status store_put_file_pin(ll_store *s, const char *path, ll_digest *got, uint64_t *size,
                             bool *existed, ll_error *err);
ll_status store_put_mem_pin(ll_store *s, const void *p, size_t n, ll_digest *got, bool *existed,
                            ll_error *err);

/* create.c: under s->mu, delete the blobs among cand[] that no manifest references and nothing
 * pins (what a replaced or deleted manifest leaves behind, §4.9); returns how many went. */
size_t store_gc_candidates_locked(ll_store *s, const ll_digest *cand, size_t n_cand);
/* A pull fragment: sha256-<64 hex>-partial or sha256-<64 hex>-partial-<digits> (pull.c). */
bool store_is_fragment_name(const char *name, ll_digest *d);

/* manifest.c */
typedef struct { int dir_fd; char tag[LL_NAME_PART_MAX + 1]; } store_mpath;
/* Open the directory holding a manifest, parts matched case-insensitively; *found false when
 * some part is missing (dir_fd -1). With create, missing directories are made (caller's
 * spelling). */
ll_status store_manifest_dir(ll_store *s, const ll_model_name *n, bool create, store_mpath *mp,
                             ll_model_name *resolved, bool *found, ll_error *err);
/* Read a manifest file's raw bytes (≤ 1 MiB, O_NOFOLLOW) and its mtime. */
ll_status store_manifest_bytes(int dir_fd, const char *tag, const char *display, char **buf,
                               size_t *n, struct timespec *mtime, ll_error *err);
/* Atomic write of raw manifest bytes into dir_fd/tag (temp beside it, fsync, rename). */
ll_status store_manifest_put(ll_store *s, int dir_fd, const char *tag, const void *buf, size_t n,
                             const char *display, ll_error *err);
/* Every digest a manifest's raw bytes mention (for corrupt ones: a scan). Appends to *v. */
bool store_collect_digests(const char *buf, size_t n, ll_digest **v, size_t *nv, size_t *cap);
/* Every digest referenced by any manifest (sorted, unique). */
ll_status store_referenced_locked(ll_store *s, ll_digest **v, size_t *n, ll_error *err);
/* Visit manifests/<host>/<ns>/<model>/<tag> files (manifest.c walk_level); prune removes
 * empty directories on the way back. */
int  store_walk_manifests(ll_store *s, int (*fn)(void *, const char *[4], int), void *user, bool prune);
void store_sha256_hex(const void *p, size_t n, char hex[65]);

#endif
