/* server/api_ollama: the native Ollama endpoints of `locallama serve` (ollama-api.md §1, issue 9).
 *
 *     ll_api_ctx api = { .store = store, .runners = runners, .pool = pool,
 *                        .keep_alive_ns = 5 * 60 * 1000000000LL };
 *     ll_api_ollama_register(router, &api, &err);      // before ll_http_server_start
 *
 * Routes: POST /api/generate, /api/chat (api_ollama.c); /api/embed, /api/embeddings
 * (api_embed.c); GET/HEAD /api/tags, POST /api/show, GET /api/ps, POST /api/create, /api/copy,
 * DELETE /api/delete, HEAD/POST /api/blobs/:digest (api_models.c). The option object of §0.9 is
 * read by api_options.c.
 *
 * The context is borrowed by every handler and must outlive the server. */
#ifndef LL_SERVER_API_OLLAMA_H
#define LL_SERVER_API_OLLAMA_H

#include "server/http.h"
#include "server/runners.h"
#include "store/store.h"

#include <stdatomic.h>

typedef struct {
    ll_store   *store;          /* the model store (borrowed) */
    ll_runners *runners;        /* loaded models (borrowed) */
    ll_pool    *pool;           /* the server's compute pool, also for embeddings contexts */
    int64_t     keep_alive_ns;  /* default keep_alive: LOCALLAMA_KEEP_ALIVE, else 5m; < 0 forever */
    atomic_int  n_background;   /* handlers' work still running on its own thread (creates) */
} ll_api_ctx;

/* Set the handlers of the native routes on r. LL_ERR_ARG when the router lacks a route. */
ll_status ll_api_ollama_register(ll_router *r, ll_api_ctx *ctx, ll_error *err);
/* Wait until no background work of a handler runs (a create streaming its progress): after
 * the HTTP server has stopped and before the store closes. */
void ll_api_ollama_drain(ll_api_ctx *ctx);

#endif
