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

#include <math.h>

#define GROUP_MAX_EPS 1e-15f

static inline void put_f16(uint8_t *p, float f) { blk_put_u16(p, ll_fp32_to_fp16(f)); }
static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int imax(int a, int b) { return a > b ? a : b; }

/* as in quantize_kquants.c: round half to even for |f| < 2^22 */
static inline int nearest_int(float f) {
    float v = f + 12582912.f;
    int32_t i;
    memcpy(&i, &v, 4);
    return (i & 0x007fffff) - 0x00400000;
}

/* ---- searches ------------------------------------------------------------------------- */

/* Signed codes -nmax..nmax-1 stored as L + nmax, weighted by qw (x^2 when NULL); tries 19
 * scales around nmax / max (ggml: make_qx_quants, rmse_type 1). */
static float wsym_search(int n, int nmax, const float *x, int8_t *L, const float *qw) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) {
        float ax = fabsf(x[i]);
        if (ax > amax) { amax = ax; max = x[i]; }
    }
    if (amax < GROUP_MAX_EPS) {
        for (int i = 0; i < n; i++) L[i] = 0;
        return 0.f;
    }
    float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i])));
        L[i] = (int8_t)(l + nmax);
        float w = qw ? qw[i] : x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            int l = imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i])));
            float w = qw ? qw[i] : x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++) {
                int l = nearest_int(iscale * x[i]);
                L[i] = (int8_t)(nmax + imax(-nmax, imin(nmax - 1, l)));
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* Codes 0..nmax with a min, weighted squared error (ggml: make_qkx3_quants). Same shape as
 * the reference's affine search, but `max <= min` ends it and weights may default to x^2. */
static float waffine_search(int n, int nmax, const float *x, const float *weights, uint8_t *L,
                            float *the_min, uint8_t *Laux, float rmin, float rdelta, int nstep,
                            bool use_mad) {
    float min = x[0], max = x[0];
    float sum_w = weights ? weights[0] : x[0] * x[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        float w = weights ? weights[i] : x[i] * x[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0) min = 0;
    if (max <= min) {
        memset(L, 0, (size_t)n);
        *the_min = -min;
        return 0.f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    float best_mad = 0;
    for (int i = 0; i < n; i++) {
        int l = nearest_int(iscale * (x[i] - min));
        L[i] = (uint8_t)imax(0, imin(nmax, l));
        float diff = scale * L[i] + min - x[i];
        diff = use_mad ? fabsf(diff) : diff * diff;
        float w = weights ? weights[i] : x[i] * x[i];
        best_mad += w * diff;
    }
    if (nstep < 1) {
        *the_min = -min;
        return scale;
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            int l = imax(0, imin(nmax, nearest_int(iscale * (x[i] - min))));
            Laux[i] = (uint8_t)l;
            float w = weights ? weights[i] : x[i] * x[i];
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float mad = 0;
            for (int i = 0; i < n; i++) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                diff = use_mad ? fabsf(diff) : diff * diff;
                float w = weights ? weights[i] : x[i] * x[i];
                mad += w * diff;
            }
            if (mad < best_mad) {
                for (int i = 0; i < n; i++) L[i] = Laux[i];
                best_mad = mad;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

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

static void pack_2bit(const uint8_t *L, uint8_t *qs) {
    for (int j = 0; j < QK_K; j += 128)
        for (int l = 0; l < 32; l++)
            qs[j / 4 + l] = (uint8_t)(L[j + l] | L[j + l + 32] << 2 | L[j + l + 64] << 4 | L[j + l + 96] << 6);
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
        float d = wsym_search(QK, 8, xb, L, weight);
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
        float d = wsym_search(QK, 16, xb, L, weight);
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
        float d = waffine_search(QK, nmax, xb, weight, L, &min, Laux, -0.9f, 0.05f, 36, false);
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
            scales[j] = waffine_search(16, 3, x + 16 * j, weight, L + 16 * j, &mins[j], Laux,
                                       -0.9f, 0.05f, 36, false);
        }
        float dm = scale_search(QK_K / 16, 15, scales, Ls, sw);
        float mm = scale_search(QK_K / 16, 15, mins, Lm, sw);
        put_f16(b + Q2_K_D, dm);
        put_f16(b + Q2_K_DMIN, mm);
        dm = blk_f16(b + Q2_K_D);
        mm = blk_f16(b + Q2_K_DMIN);
        uint8_t *sc = b + Q2_K_SCALES;
        for (int j = 0; j < QK_K / 16; j++) sc[j] = (uint8_t)(Ls[j] | Lm[j] << 4);
        for (int j = 0; j < QK_K / 16; j++) {
            const float d = dm * (sc[j] & 0xF);
            if (!d) continue;
            const float m = mm * (sc[j] >> 4);
            for (int ii = 0; ii < 16; ii++)
                L[16 * j + ii] = (uint8_t)imax(0, imin(3, nearest_int((x[16 * j + ii] + m) / d)));
        }
        pack_2bit(L, b + Q2_K_QS);
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
            scales[j] = wsym_search(16, 4, x + 16 * j, L + 16 * j, weight);
        }
        uint8_t *sc = b + Q3_K_SCALES;
        memset(sc, 0, 12);
        float d_block = wsym_search(QK_K / 16, 32, scales, Ls, sw);
        for (int j = 0; j < QK_K / 16; j++) {
            int l = Ls[j];
            if (j < 8) sc[j] = (uint8_t)(l & 0xF);
            else sc[j - 8] |= (uint8_t)((l & 0xF) << 4);
            l >>= 4;
            sc[j % 4 + 8] |= (uint8_t)(l << (2 * (j / 4)));
        }
        put_f16(b + Q3_K_D, d_block);
        int8_t sv[16];
        blk_q3_k_scales(sc, sv);
        for (int j = 0; j < QK_K / 16; j++) {
            float d = blk_f16(b + Q3_K_D) * sv[j];
            if (!d) continue;
            for (int ii = 0; ii < 16; ii++)
                L[16 * j + ii] = (int8_t)(imax(-4, imin(3, nearest_int(x[16 * j + ii] / d))) + 4);
        }
        uint8_t *hmask = b + Q3_K_HMASK;
        memset(hmask, 0, QK_K / 8);
        int m = 0;
        uint8_t hm = 1;
        for (int j = 0; j < QK_K; j++) {
            if (L[j] > 3) { hmask[m] |= hm; L[j] -= 4; }
            if (++m == QK_K / 8) { m = 0; hm <<= 1; }
        }
        pack_2bit((const uint8_t *)L, b + Q3_K_QS);
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
            scales[j] = waffine_search(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux,
                                       -0.9f, 0.05f, 36, false);
        }
        float d_block = scale_search(QK_K / 32, 63, scales, Ls, sw);
        float m_block = scale_search(QK_K / 32, 63, mins, Lm, sw);
        uint8_t *s = b + (q5 ? Q5_K_SCALES : Q4_K_SCALES);
        for (int j = 0; j < QK_K / 32; j++) {
            uint8_t ls = Ls[j], lm = Lm[j];
            if (q5) {
                if (ls > 63) ls = 63;
                if (lm > 63) lm = 63;
            }
            if (j < 4) {
                s[j] = ls;
                s[j + 4] = lm;
            } else {
                s[j + 4] = (uint8_t)((ls & 0xF) | (lm & 0xF) << 4);
                s[j - 4] |= (uint8_t)((ls >> 4) << 6);
                s[j] |= (uint8_t)((lm >> 4) << 6);
            }
        }
        uint8_t *dp = b + (q5 ? Q5_K_D : Q4_K_D), *dminp = b + (q5 ? Q5_K_DMIN : Q4_K_DMIN);
        put_f16(dp, d_block);
        put_f16(dminp, m_block);
        for (int j = 0; j < QK_K / 32; j++) {
            uint8_t sc, m;
            blk_k4_scale_min(s, j, &sc, &m);
            const float d = blk_f16(dp) * sc;
            if (!d) continue;
            const float dm = blk_f16(dminp) * m;
            for (int ii = 0; ii < 32; ii++)
                L[32 * j + ii] = (uint8_t)imax(0, imin(nmax, nearest_int((x[32 * j + ii] + dm) / d)));
        }
        if (!q5) {
            uint8_t *q = b + Q4_K_QS;
            for (int j = 0; j < QK_K; j += 64, q += 32)
                for (int l = 0; l < 32; l++) q[l] = (uint8_t)(L[j + l] | L[j + l + 32] << 4);
        } else {
            uint8_t *qh = b + Q5_K_QH, *ql = b + Q5_K_QS;
            memset(qh, 0, QK_K / 8);
            uint8_t m1 = 1, m2 = 2;
            for (int nn = 0; nn < QK_K; nn += 64, ql += 32) {
                for (int j = 0; j < 32; j++) {
                    int l1 = L[nn + j], l2 = L[nn + j + 32];
                    if (l1 > 15) { l1 -= 16; qh[j] |= m1; }
                    if (l2 > 15) { l2 -= 16; qh[j] |= m2; }
                    ql[j] = (uint8_t)(l1 | l2 << 4);
                }
                m1 <<= 2;
                m2 <<= 2;
            }
        }
    }
}

/* Q6_K: the sub-block search is weighted by the importance values themselves. */
static void q6_k_row(const float *x, uint8_t *b, int64_t n, const float *qw) {
    int8_t L[QK_K];
    float scales[QK_K / 16];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K, b += Q6_K_BYTES) {
        float max_scale = 0, max_abs_scale = 0;
        for (int ib = 0; ib < QK_K / 16; ib++) {
            const float scale = wsym_search(16, 32, x + 16 * ib, L + 16 * ib, qw + QK_K * i + 16 * ib);
            scales[ib] = scale;
            const float a = fabsf(scale);
            if (a > max_abs_scale) { max_abs_scale = a; max_scale = scale; }
        }
        if (max_abs_scale < GROUP_MAX_EPS) {
            memset(b, 0, Q6_K_BYTES);
            continue;
        }
        int8_t *sc = (int8_t *)(b + Q6_K_SCALES);
        float iscale = -128.f / max_scale;
        put_f16(b + Q6_K_D, 1 / iscale);
        for (int ib = 0; ib < QK_K / 16; ib++) sc[ib] = (int8_t)imin(127, nearest_int(iscale * scales[ib]));
        for (int j = 0; j < QK_K / 16; j++) {
            float d = blk_f16(b + Q6_K_D) * sc[j];
            if (!d) continue;
            for (int ii = 0; ii < 16; ii++)
                L[16 * j + ii] = (int8_t)(imax(-32, imin(31, nearest_int(x[16 * j + ii] / d))) + 32);
        }
        uint8_t *ql = b + Q6_K_QL, *qh = b + Q6_K_QH;
        for (int j = 0; j < QK_K; j += 128, ql += 64, qh += 32) {
            for (int l = 0; l < 32; l++) {
                const uint8_t q1 = L[j + l] & 0xF, q2 = L[j + l + 32] & 0xF;
                const uint8_t q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
                ql[l] = (uint8_t)(q1 | q3 << 4);
                ql[l + 32] = (uint8_t)(q2 | q4 << 4);
                qh[l] = (uint8_t)((L[j + l] >> 4) | (L[j + l + 32] >> 4) << 2 |
                                  (L[j + l + 64] >> 4) << 4 | (L[j + l + 96] >> 4) << 6);
            }
        }
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
