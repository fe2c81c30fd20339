/* quant: weight quantizers guided by an importance matrix (quantize.h,
 * ll_quantize_rows_imatrix).
 *
 * An importance matrix holds, for each column of a weight matrix, the mean square of the
 * activation that column multiplies (collected by running the model on text). A column that
 * sees large activations matters more, so the searches minimize the error weighted by
 * qw[i] * sqrt(sigma2 + x[i]^2) (sigma2: the mean square of the row or super-block) instead of
 * the plain weights of the reference quantizers. These are ggml's quantize_row_*_impl with
 * quant_weights set, the path llama-quantize takes with --imatrix; rewritten from the
 * formulas, evaluated in the same f32 order so the bytes agree. Differences from the plain
 * path: the K types quantize their sub-block scales with a weighted search too (make_qp /
 * weighted make_qx in ggml), and the affine types use the finer 37-step scale search.
 * Q8_0, F16 and BF16 ignore the matrix. */
#include "quant/quantize.h"
#include "quant/blocks.h"
#include "quant/quantize_impl.h"

#include <math.h>

/* ---- searches ------------------------------------------------------------------------- */

/* Non-negative codes 0..nmax for the sub-block scales or mins of a super-block, weighted by
 * each sub-block's total weight: 9 trial scales, then up to five passes moving single codes
 * (ggml: make_qp_quants). */
static float scale_search(int n, int nmax, const float *x, uint8_t *L, const float *qw) {
    float max = 0;
    for (int i = 0; i < n; i++) max = max > x[i] ? max : x[i];
    if (max < GROUP_MAX_EPS) {
        for (int i = 0; i < n; i++) L[i] = 0;
        return 0.f;
    }
    float iscale = nmax / max;
    for (int i = 0; i < n; i++) L[i] = (uint8_t)nearest_int(iscale * x[i]);
    float scale = 1 / iscale;
    float best_mse = 0;
    for (int i = 0; i < n; i++) {
        float diff = x[i] - scale * L[i];
        best_mse += qw[i] * diff * diff;
    }
    for (int is = -4; is <= 4; is++) {
        if (is == 0) continue;
        float iscale_is = (0.1f * is + nmax) / max;
        float scale_is = 1 / iscale_is;
        float mse = 0;
        for (int i = 0; i < n; i++) {
            int l = imin(nmax, nearest_int(iscale_is * x[i]));
            float diff = x[i] - scale_is * l;
            mse += qw[i] * diff * diff;
        }
        if (mse < best_mse) {
            best_mse = mse;
            iscale = iscale_is;
        }
    }
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = imin(nmax, nearest_int(iscale * x[i]));
        L[i] = (uint8_t)l;
        float w = qw[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    for (int itry = 0; itry < 5; itry++) {
        int n_changed = 0;
        for (int i = 0; i < n; i++) {
            float w = qw[i];
            float slx = sumlx - w * x[i] * L[i];
            float sl2 = suml2 - w * L[i] * L[i];
            if (slx > 0 && sl2 > 0) {
                int new_l = imin(nmax, nearest_int(x[i] * sl2 / slx));
                if (new_l != L[i]) {
                    slx += w * x[i] * new_l;
                    sl2 += w * new_l * new_l;
                    if (slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (uint8_t)new_l;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed++;
                    }
                }
            }
        }
        if (!n_changed) break;
    }
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/* sum of squares of n values, accumulated in order */
static float sum_sq(const float *x, int64_t n) {
    float s = 0;
    for (int64_t j = 0; j < n; j++) s += x[j] * x[j];
    return s;
}

/* ---- legacy types: sigma2 is the mean square of the whole row ----------------------------- */

static void q4_0_row(const float *x, uint8_t *b, int64_t n, const float *qw) {
    float weight[QK];
    int8_t L[QK];
    float sigma2 = sum_sq(x, n) / n;
    for (int64_t ib = 0; ib < n / QK; ib++, b += Q4_0_BYTES) {
        const float *xb = x + QK * ib, *w = qw + QK * ib;
        for (int j = 0; j < QK; j++) weight[j] = w[j] * sqrtf(sigma2 + xb[j] * xb[j]);
        float d = ll_qsearch_sym(QK, 8, xb, L, weight);
        put_f16(b + Q4_0_D, d);
        for (int j = 0; j < 16; j++) b[Q4_0_QS + j] = (uint8_t)(L[j] | L[j + 16] << 4);
    }
}

static void q5_0_row(const float *x, uint8_t *b, int64_t n, const float *qw) {
    float weight[QK];
    int8_t L[QK];
    float sigma2 = sum_sq(x, n) / n;
    for (int64_t ib = 0; ib < n / QK; ib++, b += Q5_0_BYTES) {
        const float *xb = x + QK * ib, *w = qw + QK * ib;
        for (int j = 0; j < QK; j++) weight[j] = w[j] * sqrtf(sigma2 + xb[j] * xb[j]);
        float d = ll_qsearch_sym(QK, 16, xb, L, weight);
        put_f16(b + Q5_0_D, d);
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            const uint8_t u0 = (uint8_t)L[j], u1 = (uint8_t)L[j + 16];
            b[Q5_0_QS + j] = (uint8_t)((u0 & 0x0F) | (u1 & 0x0F) << 4);
            qh |= (uint32_t)((u0 & 0x10u) >> 4) << j;
            qh |= (uint32_t)((u1 & 0x10u) >> 4) << (j + 16);
        }
        memcpy(b + Q5_0_QH, &qh, 4);
    }
}

/* Q4_1 (nmax 15) and Q5_1 (nmax 31): codes and min from the weighted affine search. */
static void q_1_row(const float *x, uint8_t *b, int64_t n, const float *qw, int nmax) {
    float weight[QK];
    uint8_t L[QK], Laux[QK];
    const size_t bytes = nmax == 15 ? Q4_1_BYTES : Q5_1_BYTES;
    float sigma2 = sum_sq(x, n) / n;
    for (int64_t ib = 0; ib < n / QK; ib++, b += bytes) {
        const float *xb = x + QK * ib, *w = qw + QK * ib;
        for (int j = 0; j < QK; j++) weight[j] = w[j] * sqrtf(sigma2 + xb[j] * xb[j]);
        float min;
        float d = ll_qsearch_affine(QK, nmax, xb, weight, L, &min, Laux, -0.9f, 0.05f, 36, false);
        put_f16(b + 0, d);      /* d and m sit at the same offsets in Q4_1 and Q5_1 */
        put_f16(b + 2, -min);
        if (nmax == 15) {
            for (int j = 0; j < 16; j++) b[Q4_1_QS + j] = (uint8_t)(L[j] | L[j + 16] << 4);
        } else {
            uint32_t qh = 0;
            for (int j = 0; j < 16; j++) {
                b[Q5_1_QS + j] = (uint8_t)((L[j] & 0x0F) | (L[j + 16] & 0x0F) << 4);
                qh |= (uint32_t)((L[j] & 0x10u) >> 4) << j;
                qh |= (uint32_t)((L[j + 16] & 0x10u) >> 4) << (j + 16);
            }
            memcpy(b + Q5_1_QH, &qh, 4);
        }
    }
}

/* ---- K types: sigma2 per super-block ------------------------------------------------------ */

static void q2_k_row(const float *x, uint8_t *b, int64_t n, const float *qw) {
    uint8_t L[QK_K], Laux[16], Ls[QK_K / 16], Lm[QK_K / 16];
    float mins[QK_K / 16], scales[QK_K / 16], sw[QK_K / 16], weight[16];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K, b += Q2_K_BYTES) {
        memset(sw, 0, sizeof sw);
        float sigma2 = sum_sq(x, QK_K) / QK_K;
        for (int j = 0; j < QK_K / 16; j++) {
            const float *w = qw + QK_K * i + 16 * j;
            for (int l = 0; l < 16; l++) weight[l] = w[l] * sqrtf(sigma2 + x[16 * j + l] * x[16 * j + l]);
            for (int l = 0; l < QK_K / 16; l++) sw[j] += weight[l];
            scales[j] = ll_qsearch_affine(16, 3, x + 16 * j, weight, L + 16 * j, &mins[j], Laux,
                                          -0.9f, 0.05f, 36, false);
        }
        float dm = scale_search(QK_K / 16, 15, scales, Ls, sw);
        float mm = scale_search(QK_K / 16, 15, mins, Lm, sw);
        put_f16(b + Q2_K_D, dm);
        put_f16(b + Q2_K_DMIN, mm);
        uint8_t *sc = b + Q2_K_SCALES;
        for (int j = 0; j < QK_K / 16; j++) sc[j] = (uint8_t)(Ls[j] | Lm[j] << 4);
        ll_qpack_q2_k(x, L, b);
    }
}

static void q3_k_row(const float *x, uint8_t *b, int64_t n, const float *qw) {
    int8_t L[QK_K], Ls[QK_K / 16];
    float scales[QK_K / 16], weight[16], sw[QK_K / 16];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K, b += Q3_K_BYTES) {
        float sigma2 = 2 * sum_sq(x, QK_K) / QK_K;
        for (int j = 0; j < QK_K / 16; j++) {
            const float *w = qw + QK_K * i + 16 * j;
            for (int l = 0; l < 16; l++) weight[l] = w[l] * sqrtf(sigma2 + x[16 * j + l] * x[16 * j + l]);
            float sumw = 0;
            for (int l = 0; l < 16; l++) sumw += weight[l];
            sw[j] = sumw;
            scales[j] = ll_qsearch_sym(16, 4, x + 16 * j, L + 16 * j, weight);
        }
        float d_block = ll_qsearch_sym(QK_K / 16, 32, scales, Ls, sw);
        ll_qpack_q3_k(x, (const uint8_t *)Ls, d_block, L, b);
    }
}

/* Q4_K (nmax 15) and Q5_K (nmax 31). */
static void q45_k_row(const float *x, uint8_t *b, int64_t n, const float *qw, int nmax) {
    uint8_t L[QK_K], Laux[32], Ls[QK_K / 32], Lm[QK_K / 32];
    float weights[32], sw[QK_K / 32], mins[QK_K / 32], scales[QK_K / 32];
    const bool q5 = nmax == 31;
    const size_t bytes = q5 ? Q5_K_BYTES : Q4_K_BYTES;
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K, b += bytes) {
        float sigma2 = 2 * sum_sq(x, QK_K) / QK_K;
        for (int j = 0; j < QK_K / 32; j++) {
            const float *w = qw + QK_K * i + 32 * j;
            for (int l = 0; l < 32; l++) weights[l] = w[l] * sqrtf(sigma2 + x[32 * j + l] * x[32 * j + l]);
            float sumw = 0;
            for (int l = 0; l < 32; l++) sumw += weights[l];
            sw[j] = sumw;
            scales[j] = ll_qsearch_affine(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux,
                                          -0.9f, 0.05f, 36, false);
        }
        float d_block = scale_search(QK_K / 32, 63, scales, Ls, sw);
        float m_block = scale_search(QK_K / 32, 63, mins, Lm, sw);
        ll_qpack_k4(x, Ls, Lm, d_block, m_block, nmax, L, b);
    }
}

/* Q6_K: the sub-block search is weighted by the importance values themselves. */
static void q6_k_row(const float *x, uint8_t *b, int64_t n, const float *qw) {
    int8_t L[QK_K];
    float scales[QK_K / 16];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K, b += Q6_K_BYTES) {
        for (int ib = 0; ib < QK_K / 16; ib++)
            scales[ib] = ll_qsearch_sym(16, 32, x + 16 * ib, L + 16 * ib, qw + QK_K * i + 16 * ib);
        ll_qpack_q6_k(x, scales, L, b);
    }
}

void ll_quantize_rows_imatrix(uint32_t type, const float *src, void *dst, int64_t nrows,
                              int64_t n_per_row, const float *qw) {
    if (!qw) { ll_quantize_rows(type, src, dst, nrows, n_per_row); return; }
    uint64_t rb = 0;
    ll_type_row_bytes(type, n_per_row, &rb);
    uint8_t *out = dst;
    for (int64_t r = 0; r < nrows; r++, src += n_per_row, out += rb) {
        switch (type) {
        case LL_TYPE_Q4_0: q4_0_row(src, out, n_per_row, qw); break;
        case LL_TYPE_Q5_0: q5_0_row(src, out, n_per_row, qw); break;
        case LL_TYPE_Q4_1: q_1_row(src, out, n_per_row, qw, 15); break;
        case LL_TYPE_Q5_1: q_1_row(src, out, n_per_row, qw, 31); break;
        case LL_TYPE_Q2_K: q2_k_row(src, out, n_per_row, qw); break;
        case LL_TYPE_Q3_K: q3_k_row(src, out, n_per_row, qw); break;
        case LL_TYPE_Q4_K: q45_k_row(src, out, n_per_row, qw, 15); break;
        case LL_TYPE_Q5_K: q45_k_row(src, out, n_per_row, qw, 31); break;
        case LL_TYPE_Q6_K: q6_k_row(src, out, n_per_row, qw); break;
        default: ll_quantize_rows(type, src, out, 1, n_per_row); break;   /* Q8_0, floats */
        }
    }
}
