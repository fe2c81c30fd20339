/* quant: weight quantizers for the 256-element K-quant super-blocks (gguf-and-quants.md B.4).
 *
 * Every K type quantizes a super-block in two levels: first each sub-block (16 or 32
 * elements) gets its own best float scale (and min) from a small search, then those scales
 * are themselves quantized to 4, 6 or 8 bits against one F16 super-scale, and finally every
 * element is re-rounded against the scale it will really be decoded with. The searches are
 * the ones ggml's reference quantizers use without an importance matrix:
 *
 *   ll_qsearch_sym    (ggml: make_qx_quants, rmse_type 1)  Q6_K: signed codes, weights x^2,
 *                     tries 19 scales around nmax / max, keeps the best weighted least squares.
 *   q3_search         (ggml: make_q3_quants, do_rmse)     Q3_K: signed codes, then up to five
 *                     passes that move single codes while the weighted fit improves.
 *   ll_qsearch_affine (ggml: make_qkx2_quants)            Q2_K, Q4_K, Q5_K: codes 0..nmax with
 *                     a min, tries nstep+1 scales and solves scale and min by least squares.
 *
 * The two searches and the packing of each K type from its codes (ll_qpack_*) are shared with
 * the importance-matrix path (quantize_impl.h, quantize_imatrix.c).
 *
 * Arithmetic is in f32, written in the reference's evaluation order (a*b*c is (a*b)*c), so
 * the results are the same bits. */
#include "quant/quantize.h"
#include "quant/blocks.h"
#include "quant/quantize_impl.h"

#include <math.h>

/* ---- searches --------------------------------------------------------------------------- */

/* quantize_impl.h */
float ll_qsearch_sym(int n, int nmax, const float *x, int8_t *L, const float *qw) {
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

/* Signed codes for Q3_K (nmax 4), refined one code at a time; stored as L + nmax. */
static float q3_search(int n, int nmax, const float *x, int8_t *L) {
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
        L[i] = (int8_t)l;
        float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    for (int itry = 0; itry < 5; itry++) {
        int n_changed = 0;
        for (int i = 0; i < n; i++) {
            float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * L[i];
            if (slx > 0) {
                float sl2 = suml2 - w * L[i] * L[i];
                int new_l = imax(-nmax, imin(nmax - 1, nearest_int(x[i] * sl2 / slx)));
                if (new_l != L[i]) {
                    slx += w * x[i] * new_l;
                    sl2 += w * new_l * new_l;
                    if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (int8_t)new_l;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed++;
                    }
                }
            }
        }
        if (!n_changed) break;
    }
    for (int i = 0; i < n; i++) L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/* quantize_impl.h */
float ll_qsearch_affine(int n, int nmax, const float *x, const float *weights, uint8_t *L,
                           float *the_min, uint8_t *Laux, float rmin, float rdelta, int nstep,
                           bool use_mad) {
    float min = x[0], max = x[0];
    float sum_w = weights[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        float w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        for (int i = 0; i < n; i++) L[i] = 0;
        *the_min = -min;
        return 0.f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; i++) {
        int l = nearest_int(iscale * (x[i] - min));
        L[i] = (uint8_t)imax(0, imin(nmax, l));
        float diff = scale * L[i] + min - x[i];
        diff = use_mad ? fabsf(diff) : diff * diff;
        best_error += weights[i] * diff;
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
            float w = weights[i];
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
            float cur_error = 0;
            for (int i = 0; i < n; i++) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                diff = use_mad ? fabsf(diff) : diff * diff;
                cur_error += weights[i] * diff;
            }
            if (cur_error < best_error) {
                for (int i = 0; i < n; i++) L[i] = Laux[i];
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

void ll_qpack_2bit(const uint8_t *L, uint8_t *qs) {
    for (int j = 0; j < QK_K; j += 128)
        for (int l = 0; l < 32; l++)
            qs[j / 4 + l] = (uint8_t)(L[j + l] | L[j + l + 32] << 2 | L[j + l + 64] << 4 | L[j + l + 96] << 6);
}

/* ---- Q2_K: 16 sub-blocks of 16, 4-bit scale and min each, 2-bit codes ------------------- */

void ll_qpack_q2_k(const float *x, uint8_t *L, uint8_t *b) {
    const uint8_t *sc = b + Q2_K_SCALES;
    for (int j = 0; j < QK_K / 16; j++) {
        const float d = blk_f16(b + Q2_K_D) * (sc[j] & 0xF);
        if (!d) continue;
        const float dm = blk_f16(b + Q2_K_DMIN) * (sc[j] >> 4);
        for (int ii = 0; ii < 16; ii++)
            L[16 * j + ii] = (uint8_t)imax(0, imin(3, nearest_int((x[16 * j + ii] + dm) / d)));
    }
    ll_qpack_2bit(L, b + Q2_K_QS);
}

void ll_quantize_w_q2_k(const float *x, void *vy, int64_t k) {
    uint8_t *b = vy;
    uint8_t L[QK_K], Laux[16];
    float weights[16], mins[QK_K / 16], scales[QK_K / 16];
    const float q4scale = 15.f;
    for (int64_t i = 0; i < k / QK_K; i++, x += QK_K, b += Q2_K_BYTES) {
        uint8_t *sc = b + Q2_K_SCALES;
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < QK_K / 16; j++) {
            for (int l = 0; l < 16; l++) weights[l] = fabsf(x[16 * j + l]);
            scales[j] = ll_qsearch_affine(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux,
                                          -0.5f, 0.1f, 15, true);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        if (max_scale > 0) {
            float iscale = q4scale / max_scale;
            for (int j = 0; j < QK_K / 16; j++) sc[j] = (uint8_t)nearest_int(iscale * scales[j]);
            put_f16(b + Q2_K_D, max_scale / q4scale);
        } else {
            for (int j = 0; j < QK_K / 16; j++) sc[j] = 0;
            put_f16(b + Q2_K_D, 0.f);
        }
        if (max_min > 0) {
            float iscale = q4scale / max_min;
            for (int j = 0; j < QK_K / 16; j++) sc[j] |= (uint8_t)((unsigned)nearest_int(iscale * mins[j]) << 4);
            put_f16(b + Q2_K_DMIN, max_min / q4scale);
        } else {
            put_f16(b + Q2_K_DMIN, 0.f);
        }
        ll_qpack_q2_k(x, L, b);
    }
}

/* ---- Q3_K: 16 sub-blocks of 16, signed 6-bit scales, 3-bit codes (2 low bits + hmask) --- */

void ll_qpack_q3_k(const float *x, const uint8_t *Ls, float d_block, int8_t *L, uint8_t *b) {
    uint8_t *sc = b + Q3_K_SCALES;
    memset(sc, 0, 12);
    for (int j = 0; j < QK_K / 16; j++) {
        /* low 4 bits: bytes 0..7 (j < 8 low nibble, else high); top 2 bits: bytes 8..11 */
        const int l = Ls[j];
        if (j < 8) sc[j] = (uint8_t)(l & 0xF);
        else sc[j - 8] |= (uint8_t)((l & 0xF) << 4);
        sc[j % 4 + 8] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
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
    /* The third bit of element j goes to hmask[j % 32], bit j / 32. */
    uint8_t *hmask = b + Q3_K_HMASK;
    memset(hmask, 0, QK_K / 8);
    int m = 0;
    uint8_t hm = 1;
    for (int j = 0; j < QK_K; j++) {
        if (L[j] > 3) {
            hmask[m] |= hm;
            L[j] -= 4;
        }
        if (++m == QK_K / 8) { m = 0; hm <<= 1; }
    }
    ll_qpack_2bit((const uint8_t *)L, b + Q3_K_QS);
}

void ll_quantize_w_q3_k(const float *x, void *vy, int64_t k) {
    uint8_t *b = vy;
    int8_t L[QK_K];
    uint8_t Ls[QK_K / 16];
    float scales[QK_K / 16];
    for (int64_t i = 0; i < k / QK_K; i++, x += QK_K, b += Q3_K_BYTES) {
        float max_scale = 0, amax = 0;
        for (int j = 0; j < QK_K / 16; j++) {
            scales[j] = q3_search(16, 4, x + 16 * j, L + 16 * j);
            float a = fabsf(scales[j]);
            if (a > amax) { amax = a; max_scale = scales[j]; }
        }
        float iscale = max_scale ? -32.f / max_scale : 0.f;
        for (int j = 0; j < QK_K / 16; j++)
            Ls[j] = max_scale ? (uint8_t)(imax(-32, imin(31, (int8_t)nearest_int(iscale * scales[j]))) + 32) : 0;
        ll_qpack_q3_k(x, Ls, max_scale ? 1 / iscale : 0.f, L, b);
    }
}

/* ---- Q4_K / Q5_K: 8 sub-blocks of 32, 6-bit scale and min each --------------------------- */

/* The sub-block search both types share: weights av_x + |x| with av_x the RMS of the block. */
static void k4_search(const float *x, int nmax, float rmin, float rdelta, int nstep, uint8_t *L,
                      float *scales, float *mins, float *max_scale, float *max_min) {
    uint8_t Laux[32];
    float weights[32];
    *max_scale = 0;
    *max_min = 0;
    for (int j = 0; j < QK_K / 32; j++) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++) sum_x2 += x[32 * j + l] * x[32 * j + l];
        float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++) weights[l] = av_x + fabsf(x[32 * j + l]);
        scales[j] = ll_qsearch_affine(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux,
                                      rmin, rdelta, nstep, false);
        if (scales[j] > *max_scale) *max_scale = scales[j];
        if (mins[j] > *max_min) *max_min = mins[j];
    }
}

/* 6-bit scales and mins into the 12 packed bytes (B.4), then d and dmin; the codes are then
 * re-rounded against the decoded scales and packed: Q4_K as nibbles (element l of each 64 in
 * the low nibble, l + 32 in the high one), Q5_K the same plus the fifth bits (pair p of 64
 * elements uses qh bits 2p and 2p+1). */
void ll_qpack_k4(const float *x, const uint8_t *ls, const uint8_t *lm, float d_block, float dmin_block,
                 int nmax, uint8_t *L, uint8_t *b) {
    const bool q5 = nmax == 31;
    uint8_t *s = b + (q5 ? Q5_K_SCALES : Q4_K_SCALES);
    uint8_t *dp = b + (q5 ? Q5_K_D : Q4_K_D), *dminp = b + (q5 ? Q5_K_DMIN : Q4_K_DMIN);
    for (int j = 0; j < QK_K / 32; j++) {
        const uint8_t sj = ls[j] > 63 ? 63 : ls[j], mj = lm[j] > 63 ? 63 : lm[j];
        if (j < 4) {
            s[j] = sj;
            s[j + 4] = mj;
        } else {
            s[j + 4] = (uint8_t)((sj & 0xF) | (mj & 0xF) << 4);
            s[j - 4] |= (uint8_t)((sj >> 4) << 6);
            s[j] |= (uint8_t)((mj >> 4) << 6);
        }
    }
    put_f16(dp, d_block);
    put_f16(dminp, dmin_block);
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
        return;
    }
    uint8_t *qh = b + Q5_K_QH, *ql = b + Q5_K_QS;
    memset(qh, 0, QK_K / 8);
    uint8_t m1 = 1, m2 = 2;
    for (int n = 0; n < QK_K; n += 64, ql += 32) {
        for (int j = 0; j < 32; j++) {
            int l1 = L[n + j], l2 = L[n + j + 32];
            if (l1 > 15) { l1 -= 16; qh[j] |= m1; }
            if (l2 > 15) { l2 -= 16; qh[j] |= m2; }
            ql[j] = (uint8_t)(l1 | l2 << 4);
        }
        m1 <<= 2;
        m2 <<= 2;
    }
}

/* Q4_K (nmax 15) and Q5_K (nmax 31): the reference searches, then 6-bit codes of the
 * sub-block scales and mins against the largest of each. */
static void k4_quantize(const float *x, uint8_t *b, int64_t k, int nmax, float rmin, int nstep,
                        size_t block_bytes) {
    uint8_t L[QK_K], ls[QK_K / 32], lm[QK_K / 32];
    float scales[QK_K / 32], mins[QK_K / 32];
    for (int64_t i = 0; i < k / QK_K; i++, x += QK_K, b += block_bytes) {
        float max_scale, max_min;
        k4_search(x, nmax, rmin, 0.1f, nstep, L, scales, mins, &max_scale, &max_min);
        float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
        float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
        for (int j = 0; j < QK_K / 32; j++) {
            ls[j] = (uint8_t)nearest_int(inv_scale * scales[j]);
            lm[j] = (uint8_t)nearest_int(inv_min * mins[j]);
        }
        ll_qpack_k4(x, ls, lm, max_scale / 63.f, max_min / 63.f, nmax, L, b);
    }
}

void ll_quantize_w_q4_k(const float *x, void *vy, int64_t k) {
    k4_quantize(x, vy, k, 15, -1.f, 20, Q4_K_BYTES);
}

void ll_quantize_w_q5_k(const float *x, void *vy, int64_t k) {
    k4_quantize(x, vy, k, 31, -0.5f, 15, Q5_K_BYTES);
}

/* ---- Q6_K: 16 sub-blocks of 16, signed 8-bit scales, 6-bit codes ------------------------ */

void ll_qpack_q6_k(const float *x, const float *scales, int8_t *L, uint8_t *b) {
    float max_scale = 0, max_abs_scale = 0;
    for (int ib = 0; ib < QK_K / 16; ib++) {
        const float a = fabsf(scales[ib]);
        if (a > max_abs_scale) { max_abs_scale = a; max_scale = scales[ib]; }
    }
    if (max_abs_scale < GROUP_MAX_EPS) {
        memset(b, 0, Q6_K_BYTES);
        return;
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
    /* low 4 bits: ql[l] holds elements l (low) and l+64 (high), ql[l+32] holds l+32 and
     * l+96; the top 2 bits of l, l+32, l+64, l+96 share qh[l]. Per 128 elements. */
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

void ll_quantize_w_q6_k(const float *x, void *vy, int64_t k) {
    uint8_t *b = vy;
    int8_t L[QK_K];
    float scales[QK_K / 16];
    for (int64_t i = 0; i < k / QK_K; i++, x += QK_K, b += Q6_K_BYTES) {
        for (int ib = 0; ib < QK_K / 16; ib++)
            scales[ib] = ll_qsearch_sym(16, 32, x + 16 * ib, L + 16 * ib, NULL);
        ll_qpack_q6_k(x, scales, L, b);
    }
}
