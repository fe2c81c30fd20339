/* store/push: send a model of the store to a Docker Registry v2 server (spec ollama-api.md
 * §1.12; ollama-cli.md §13; issue 12). The protocol as Ollama speaks it, for each layer and
 * then the config blob:
 *
 *     HEAD /v2/<ns>/<model>/blobs/<digest>          200: the registry has it, nothing to send
 *     POST /v2/<ns>/<model>/blobs/uploads/          202 + Location: an upload session
 *          ?mount=<digest>&from=<ns2>/<model2>      (when the store holds another model of the
 *                                                    same registry with that blob: 201 means
 *                                                    the registry linked it, nothing to send)
 *     PUT  <Location>&digest=<digest>               the whole blob, when it fits one chunk
 *     PATCH <Location>  Content-Range: a-b          otherwise chunk by chunk, each to the
 *                                                    Location the previous answer gave,
 *     PUT  <Location>&digest=<digest>               then an empty PUT closes the upload
 *
 * and last  PUT /v2/<ns>/<model>/manifests/<tag>  with the manifest bytes exactly as stored
 * and their media type. Location headers may be relative (resolved against the request's
 * URL); a 307/308 answer to an upload request is followed once with the same body (a registry
 * that sends the bytes to storage elsewhere).
 *
 * Authentication: a 401 with a Bearer challenge is answered with a token for the scope
 * "repository:<ns>/<model>:push,pull" and the request retried once. For registry.ollama.ai
 * and *.ollama.com the token request is signed with Ollama's ed25519 key (registry.h), kept
 * at <store parent>/id_ed25519 and created on first use; that part cannot be tested here
 * (no ollama.com offline) and whether ollama.com accepts a push also depends on the key being
 * registered with an account. LOCALLAMA_REGISTRY_SIGNED_HOSTS (comma-separated host[:port])
 * adds hosts whose token requests are signed the same way (a self-hosted registry that checks
 * Ollama keys; the tests use it to check the signed request end to end on loopback). Other
 * registries get anonymous token requests; user name and password logins are not supported.
 *
 * Chunk size: 64 MiB, or LOCALLAMA_PUSH_CHUNK bytes (≥ 1024) when set — the tests use a small
 * one to exercise PATCH on small models. Blocking; run it on a worker thread. */
#ifndef LL_STORE_PUSH_H
#define LL_STORE_PUSH_H

#include "store/store.h"

#define LL_PUSH_CHUNK_DEFAULT (64ull << 20)

/* Progress: "retrieving manifest", "pushing <12 hex>" (digest "sha256:<hex>", total and
 * completed in bytes; a blob the registry already has or mounted reports completed = total
 * at once), "pushing manifest", "success"; on an unknown model "couldn't retrieve manifest"
 * before the error, as Ollama does. Throttled to about one line per blob every 60 ms. Return
 * false to cancel (LL_ERR_CANCELLED). */
typedef bool (*ll_push_progress_fn)(void *user, const char *status, const char *digest,
                                    uint64_t total, uint64_t completed);

typedef struct {
    bool insecure;                  /* plain http (Ollama's --insecure / "insecure": true) */
    ll_push_progress_fn progress;   /* may be NULL */
    bool (*cancelled)(void *user);  /* polled during transfers; may be NULL */
    void *user;
} ll_push_opts;

/* Push the model n of s to the registry its name names. Errors: "insecure protocol http"
 * (LL_ERR_ARG), "open <manifest path>: no such file or directory" (an unknown model, Ollama's
 * text), "unauthorized: push requires registry credentials" (401/403 after a token),
 * "upload sha256:<hex>: <what the registry said>", "push manifest: …". */
ll_status ll_store_push(ll_store *s, const ll_model_name *n, const ll_push_opts *o, ll_error *err);

/* The chunk size in use (LOCALLAMA_PUSH_CHUNK or the default). */
uint64_t ll_push_chunk_size(void);

#endif
