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
 * into blobs/sha256-<hex>-partial (never the final name), in parallel ranged parts:
 *
 *   parts        max(32 MiB, size / 64) each, rounded up to a MiB, so a blob under 32 MiB is one
 *                GET and a 40 GB one 64 parts of 640 MiB; at 20 MB/s a part takes over a second,
 *                which keeps a request's cost (token, redirect, TLS) small beside its transfer.
 *   connections  up to 8 parts in flight, taken in order, each over its own connection (one
 *                curl multi handle on the pull's thread). Registries and CDNs cap each
 *                connection; 8 multiply such a cap by 8 (Ollama runs 16 parts of 100 MB-1 GB).
 *                Where one connection gets all there is (loopback, LAN) more only cost CPU, so
 *                a blob starts with one and doubles the count while the doubled count gets 1.5x
 *                the rate, each measured for 250 ms (a gain under 15% is taken back).
 *   resume       each part's byte count is kept in blobs/sha256-<hex>-partial-<n> (a 160-byte
 *                JSON record with Ollama's part-file fields, rewritten in one pwrite about once
 *                a second and when the part ends, always after the bytes it counts), so a pull
 *                killed anywhere (SIGKILL, power aside) resumes each part with a Range request
 *                where its saved count ends. A -partial without part files (an older pull, one
 *                stream) counts as a finished prefix.
 *   retries      a dropped connection, a stall of a minute, a 5xx or 429 restarts the part from
 *                its count, 5 times in a row without progress at most (0.25 s, 0.5 s, … apart);
 *                a 401 with a Bearer challenge renews the token and retries.
 *   verify       a hasher thread follows the finished prefix of the file, so the SHA-256 is
 *                done about when the last byte lands, and a flusher thread writes each part's
 *                bytes to disk (sync_file_range, 8 MiB at a time) as they land, so the disk
 *                works while the network does; then fdatasync, and a match renames the
 *                partial into blobs/sha256-<hex> and removes the part files, a mismatch
 *                deletes them all and fails naming the digest. The blob is on disk
 *                before any manifest names it (curl -o and Ollama do not sync: on a slow disk
 *                a pull is bound by the disk where they are not).
 *
 * A registry that ignores Range (200 with the whole blob) gets one stream from byte 0 (D22).
 * Two pulls of one blob: the second waits on the partial's flock (reporting the first one's
 * progress from its part files), then finds the blob in place. Free space for the bytes still
 * missing is checked, and reserved with fallocate, before the first GET. The start-up GC keeps
 * fragments younger than its grace period or whose -partial is locked by a pull (S16), and
 * removes the rest. The manifest is stored byte for byte as received (§4.2), after every blob
 * is in place, so a failed pull never shows a model; then the layers of the manifest it
 * replaced that nothing references any more are removed ("removing unused layers") unless
 * noprune (OLLAMA_NOPRUNE).
 *
 * Tests and benchmarks may force the cut through the environment of the process that pulls:
 *   LOCALLAMA_PULL_PART_SIZE=<bytes>[K|M|G]   part size (4096 and up)
 *   LOCALLAMA_PULL_CONNECTIONS=<1..64>        parts in flight, fixed (1: one connection at a time)
 *
 * Anonymous tokens only (no Ollama key signing). Blocking; run it on a worker thread. */
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
    bool noprune;                   /* keep the replaced manifest's unused layers (OLLAMA_NOPRUNE) */
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
