/* server/api_anthropic: POST /v1/messages (§3) — placeholder until the adapter lands. */
#include "server/api_internal.h"

ll_status api_anthropic_register(ll_router *r, ll_api_ctx *ctx, ll_error *err) {
    (void)r; (void)ctx; (void)err;
    return LL_OK;
}
