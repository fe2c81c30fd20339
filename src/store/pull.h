/* store/pull: fetch a model from a Docker Registry v2 server into the store (spec ollama-api.md
 * §1.11, §5 D22; issue 12). The protocol as Ollama speaks it:
 *
 *     GET  <scheme>://<host>/v2/<ns>/<model>/manifests/<tag>    Accept: Ollama's manifest types
 *     401 + WWW-Authenticate: Bearer realm=…,service=…,scope=…   → GET realm?service&scope → token,
 *                                                                  retried once with the token
 *     GET  /v2/<ns>/<model>/blobs/<digest>                      200 body, 206 range, or a redirect
 *                                                                  to a storage URL (followed)
 *
 * A blob already in the store with the manifest's size is not fetched. Others are downloaded
 * into blobs/sha256-<hex>-partial (never the final name; §4.1 lists the name as a pull
 * fragment, which the start-up prune leaves alone), resumed with a Range request from the
 * partial's size, SHA-256-verified and only then renamed into blobs/sha256-<hex>. A mismatch
 * deletes the partial and fails naming the digest. The manifest is stored byte for byte as
 * received (§4.2), after every blob is in place, so a failed pull never shows a model.
 *
 * This slice uses one connection per blob (no parallel ranged parts) and anonymous tokens only
 * (no Ollama key signing). Blocking; run it on a worker thread. */
#ifndef LL_STORE_PULL_H
#define LL_STORE_PULL_H

#include "store/store.h"

/* Progress: status text ("pulling manifest", "pulling <12 hex>", "verifying sha256 digest",
 * "writing manifest", "success"); digest is "sha256:<hex>" for per-blob lines, else NULL, with
 * total/completed in bytes. Throttled to one line per blob about every 60 ms, plus the first
 * and the last. Return false to cancel (the pull then fails with LL_ERR_CANCELLED). */
typedef bool (*ll_pull_progress_fn)(void *user, const char *status, const char *digest,
                                    uint64_t total, uint64_t completed);

typedef struct {
    bool insecure;                  /* plain http (Ollama's --insecure / "insecure": true) */
    ll_pull_progress_fn progress;   /* may be NULL */
    /* Polled during transfers (several times a second, even when no byte arrives) and between
     * blobs: true cancels (LL_ERR_CANCELLED; partial files stay for the next pull). May be NULL. */
    bool (*cancelled)(void *user);
    void *user;                     /* for both callbacks */
} ll_pull_opts;

/* Pull n into s. Errors use Ollama's texts: "pull model manifest: file does not exist" (the
 * registry's 404), "pull model manifest: <transport error>", "digest mismatch, file must be
 * downloaded again: sha256:<hex>", "insufficient disk space: need N bytes, N available". */
ll_status ll_store_pull(ll_store *s, const ll_model_name *n, const ll_pull_opts *o, ll_error *err);

/* The registry base URL of a name: <scheme>://<host> (insecure forces http). */
void ll_pull_base_url(const ll_model_name *n, bool insecure, char *buf, size_t cap);

#endif
