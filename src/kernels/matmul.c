/* kernels: rows of a matrix product, the loop every weight multiplication goes through. */
#include "kernels/kernels.h"

/* Weight bytes kept hot while the token groups stream past: a tile of rows this large stays in
 * L2 beside one group's activations (8 rows of Q8_K at n_in = 8192: 75 KB), so for a prompt
 * every weight row is read from memory once for all tokens, while the activations are reread
 * from cache once per tile instead of once per row. With dot_multi the tile matters more:
 * at 16 KB (3 rows of an 8192-wide Q4_K) a 512-token prompt spent ~30% longer streaming
 * activations than at 128 KB (bench on a 2 MB-L2 Xeon; 256 KB measured the same). */
enum { MATMUL_TILE_BYTES = 128 * 1024, MATMUL_TILE_MAX_ROWS = 64 };

void ll_matmul_rows_mode(const struct ll_kernels *k, uint32_t w_type, const void *w, int64_t n_in,
                         int64_t r0, int64_t r1, const void *xq, size_t xq_stride, int64_t n_tok,
                         float *y, int64_t y_stride, int mode) {
    uint64_t row_bytes;
    ll_dot_fn dot = w_type < LL_TYPE_COUNT ? k->dot[w_type] : NULL;
    /* The model loader has checked type and shape; this only guards against misuse. */
    if (!dot || !ll_type_row_bytes(w_type, n_in, &row_bytes) || r1 <= r0 || n_tok <= 0) return;
    const uint8_t *wb = w, *xb = xq;

    ll_gemm_fn fast = k->gemm_fast[w_type];
    if (mode == LL_MM_FAST && fast && fast(n_in, w, r0, r1, xq, xq_stride, n_tok, y, y_stride)) return;
    if (n_tok == 1) {                                   /* generation: one pass over W */
        ll_gemv_fn gemv = k->gemv[w_type];
        if (gemv && gemv(n_in, w, r0, r1, xq, y)) return;
        for (int64_t r = r0; r < r1; r++) y[r] = dot(n_in, wb + (uint64_t)r * row_bytes, xb);
        return;
    }
    /* Prompts: the type's register-tiled product where there is one. */
    ll_gemm_fn gemm = k->gemm[w_type];
    if (gemm && n_tok >= LL_GEMM_MIN_TOK && gemm(n_in, w, r0, r1, xq, xq_stride, n_tok, y, y_stride))
        return;
    /* Batches (and prompts of types without one): each weight row is decoded once per group of up to
     * LL_DOT_MULTI_MAX tokens (dot_multi), not once per token. Bit-identical to the per-token
     * dots, so a sequence gets the same logits inside a batch as alone. */
    ll_dot_multi_fn multi = k->dot_multi[w_type];
    int64_t tile = row_bytes > 0 ? (int64_t)(MATMUL_TILE_BYTES / row_bytes) : 1;
    if (tile < 1) tile = 1;
    if (tile > MATMUL_TILE_MAX_ROWS) tile = MATMUL_TILE_MAX_ROWS;
    for (int64_t rt = r0; rt < r1; rt += tile) {
        int64_t re = rt + tile < r1 ? rt + tile : r1;
        for (int64_t t = 0; t < n_tok; t += LL_DOT_MULTI_MAX) {
            int nc = n_tok - t < LL_DOT_MULTI_MAX ? (int)(n_tok - t) : LL_DOT_MULTI_MAX;
            const uint8_t *x = xb + (size_t)t * xq_stride;
            float *yt = y + t * y_stride;
            for (int64_t r = rt; r < re; r++) {
                const uint8_t *wr = wb + (uint64_t)r * row_bytes;
                float out[LL_DOT_MULTI_MAX];
                if (multi) multi(n_in, wr, x, xq_stride, nc, out);
                else for (int c = 0; c < nc; c++) out[c] = dot(n_in, wr, x + (size_t)c * xq_stride);
                for (int c = 0; c < nc; c++) yt[c * y_stride + r] = out[c];
            }
        }
    }
}

void ll_matmul_rows(const struct ll_kernels *k, uint32_t w_type, const void *w, int64_t n_in,
                    int64_t r0, int64_t r1, const void *xq, size_t xq_stride, int64_t n_tok,
                    float *y, int64_t y_stride) {
    ll_matmul_rows_mode(k, w_type, w, n_in, r0, r1, xq, xq_stride, n_tok, y, y_stride, LL_MM_EXACT);
}
