/* quant: weight quantizers for the 256-element K-quant super-blocks (gguf-and-quants.md B.4).
 *
 * Every K type quantizes a super-block in two levels: first each sub-block (16 or 32
 * elements) gets its own best float scale (and min) from a small search, then those scales
 * are themselves quantized to 4, 6 or 8 bits against one F16 super-scale, and finally every
 * element is re-rounded against the scale it will really be decoded with. The searches are
 * the ones ggml's reference quantizers use without an importance matrix:
 *
 *   sym_search    (ggml: make_qx_quants, rmse_type 1)  Q6_K: signed codes, weights x^2, tries
 *                 19 scales around nmax / max and keeps the best weighted least-squares fit.
 *   q3_search     (ggml: make_q3_quants, do_rmse)     Q3_K: signed codes, then up to five
 *                 passes that move single codes while the weighted fit improves.
 *   affine_search (ggml: make_qkx2_quants)            Q2_K, Q4_K, Q5_K: codes 0..nmax with a
 *                 min, tries nstep+1 scales and solves scale and min by least squares.
 *
 * Arithmetic is in f32, written in the reference's evaluation order (a*b*c is (a*b)*c), so
 * the results are the same bits. */
#include "quant/quantize.h"
#include "quant/blocks.h"

#include <math.h>

#define GROUP_MAX_EPS 1e-15f   /* a sub-block with max|x| below this is all zeros */

static inline void put_f16(uint8_t *p, float f) { blk_put_u16(p, ll_fp32_to_fp16(f)); }
static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int imax(int a, int b) { return a > b ? a : b; }

/* Round to nearest, ties to even, for |f| < 2^22: adding 1.5 * 2^23 puts the integer in the
 * low mantissa bits (the add rounds). Outside that range the result is meaningless but
 * deterministic, and ggml computes the same. */
static inline int nearest_int(float f) {
    float v = f + 12582912.f;
    int32_t i;
    memcpy(&i, &v, 4);
    return (i & 0x007fffff) - 0x00400000;
}

/* ---- searches --------------------------------------------------------------------------- */

/* Signed codes -nmax..nmax-1 stored as L + nmax; weights x^2. Returns the scale. */
static float sym_search(int n, int nmax, const float *x, int8_t *L) {
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
        float w = x[i] * x[i];
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
            float w = x[i] * x[i];
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

/* Codes 0..nmax with x ~ scale * L - the_min. Tries iscale = (rmin + rdelta*is + nmax) /
 * (max - min) for is = 0..nstep and keeps the fit with the least weighted error (absolute
 * when use_mad, squared otherwise). Laux is scratch of n bytes. */
static float affine_search(int n, int nmax, const float *x, const float *weights, uint8_t *L,
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

/* Pack 2-bit codes: byte l of each 32-byte group holds elements l, l+32, l+64, l+96. */
static void pack_2bit(const uint8_t *L, uint8_t *qs) {
    for (int j = 0; j < QK_K; j += 128)
        for (int l = 0; l < 32; l++)
            qs[j / 4 + l] = (uint8_t)(L[j + l] | L[j + l + 32] << 2 | L[j + l + 64] << 4 | L[j + l + 96] << 6);
}

/* ---- Q2_K: 16 sub-blocks of 16, 4-bit scale and min each, 2-bit codes ------------------- */

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
            scales[j] = affine_search(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux,
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
        /* re-round every element against the scale and min it will be decoded with */
        for (int j = 0; j < QK_K / 16; j++) {
            const float d = blk_f16(b + Q2_K_D) * (sc[j] & 0xF);
            if (!d) continue;
            const float dm = blk_f16(b + Q2_K_DMIN) * (sc[j] >> 4);
            for (int ii = 0; ii < 16; ii++)
                L[16 * j + ii] = (uint8_t)imax(0, imin(3, nearest_int((x[16 * j + ii] + dm) / d)));
        }
        pack_2bit(L, b + Q2_K_QS);
    }
}

/* ---- Q3_K: 16 sub-blocks of 16, signed 6-bit scales, 3-bit codes (2 low bits + hmask) --- */

void ll_quantize_w_q3_k(const float *x, void *vy, int64_t k) {
    uint8_t *b = vy;
    int8_t L[QK_K];
    float scales[QK_K / 16];
    for (int64_t i = 0; i < k / QK_K; i++, x += QK_K, b += Q3_K_BYTES) {
        uint8_t *sc = b + Q3_K_SCALES;
        float max_scale = 0, amax = 0;
        for (int j = 0; j < QK_K / 16; j++) {
            scales[j] = q3_search(16, 4, x + 16 * j, L + 16 * j);
            float a = fabsf(scales[j]);
            if (a > amax) { amax = a; max_scale = scales[j]; }
        }
        memset(sc, 0, 12);
        if (max_scale) {
            float iscale = -32.f / max_scale;
            for (int j = 0; j < QK_K / 16; j++) {
                int8_t l = (int8_t)nearest_int(iscale * scales[j]);
                l = (int8_t)(imax(-32, imin(31, l)) + 32);
                /* low 4 bits: bytes 0..7 (j < 8 low nibble, else high); top 2 bits: bytes 8..11 */
                if (j < 8) sc[j] = (uint8_t)(l & 0xF);
                else sc[j - 8] |= (uint8_t)((l & 0xF) << 4);
                l = (int8_t)(l >> 4);
                sc[j % 4 + 8] |= (uint8_t)(l << (2 * (j / 4)));
            }
            put_f16(b + Q3_K_D, 1 / iscale);
        } else {
            put_f16(b + Q3_K_D, 0.f);
        }
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
        pack_2bit((const uint8_t *)L, b + Q3_K_QS);
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
        scales[j] = affine_search(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux,
                                  rmin, rdelta, nstep, false);
        if (scales[j] > *max_scale) *max_scale = scales[j];
        if (mins[j] > *max_min) *max_min = mins[j];
    }
}

/* 6-bit scales and mins into the 12 packed bytes (B.4), then d and dmin; the codes are then
 * re-rounded against the decoded scales. nmax is 15 (Q4_K) or 31 (Q5_K). */
static void k4_pack_scales(const float *x, uint8_t *s, uint8_t *dp, uint8_t *dminp, int nmax,
                           const float *scales, const float *mins, float max_scale, float max_min,
                           uint8_t *L) {
    float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    for (int j = 0; j < QK_K / 32; j++) {
        uint8_t ls = (uint8_t)nearest_int(inv_scale * scales[j]);
        uint8_t lm = (uint8_t)nearest_int(inv_min * mins[j]);
        if (ls > 63) ls = 63;
        if (lm > 63) lm = 63;
        if (j < 4) {
            s[j] = ls;
            s[j + 4] = lm;
        } else {
            s[j + 4] = (uint8_t)((ls & 0xF) | (lm & 0xF) << 4);
            s[j - 4] |= (uint8_t)((ls >> 4) << 6);
            s[j] |= (uint8_t)((lm >> 4) << 6);
        }
    }
    put_f16(dp, max_scale / 63.f);
    put_f16(dminp, max_min / 63.f);
    for (int j = 0; j < QK_K / 32; j++) {
        uint8_t sc, m;
        blk_k4_scale_min(s, j, &sc, &m);
        const float d = blk_f16(dp) * sc;
        if (!d) continue;
        const float dm = blk_f16(dminp) * m;
        for (int ii = 0; ii < 32; ii++)
            L[32 * j + ii] = (uint8_t)imax(0, imin(nmax, nearest_int((x[32 * j + ii] + dm) / d)));
    }
}

void ll_quantize_w_q4_k(const float *x, void *vy, int64_t k) {
    uint8_t *b = vy;
    uint8_t L[QK_K];
    float scales[QK_K / 32], mins[QK_K / 32];
    for (int64_t i = 0; i < k / QK_K; i++, x += QK_K, b += Q4_K_BYTES) {
        float max_scale, max_min;
        k4_search(x, 15, -1.f, 0.1f, 20, L, scales, mins, &max_scale, &max_min);
        memset(b + Q4_K_SCALES, 0, 12);
        k4_pack_scales(x, b + Q4_K_SCALES, b + Q4_K_D, b + Q4_K_DMIN, 15, scales, mins,
                       max_scale, max_min, L);
        /* 64 elements per 32 bytes: element l in the low nibble, l + 32 in the high one */
        uint8_t *q = b + Q4_K_QS;
        for (int j = 0; j < QK_K; j += 64, q += 32)
            for (int l = 0; l < 32; l++) q[l] = (uint8_t)(L[j + l] | L[j + l + 32] << 4);
    }
}

void ll_quantize_w_q5_k(const float *x, void *vy, int64_t k) {
    uint8_t *b = vy;
    uint8_t L[QK_K];
    float scales[QK_K / 32], mins[QK_K / 32];
    for (int64_t i = 0; i < k / QK_K; i++, x += QK_K, b += Q5_K_BYTES) {
        float max_scale, max_min;
        k4_search(x, 31, -0.5f, 0.1f, 15, L, scales, mins, &max_scale, &max_min);
        memset(b + Q5_K_SCALES, 0, 12);
        k4_pack_scales(x, b + Q5_K_SCALES, b + Q5_K_D, b + Q5_K_DMIN, 31, scales, mins,
                       max_scale, max_min, L);
        /* as Q4_K, plus the fifth bits: pair p of 64 elements uses qh bits 2p and 2p+1 */
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
}

/* ---- Q6_K: 16 sub-blocks of 16, signed 8-bit scales, 6-bit codes ------------------------ */

void ll_quantize_w_q6_k(const float *x, void *vy, int64_t k) {
    uint8_t *b = vy;
    int8_t L[QK_K];
    float scales[QK_K / 16];
    for (int64_t i = 0; i < k / QK_K; i++, x += QK_K, b += Q6_K_BYTES) {
        float max_scale = 0, max_abs_scale = 0;
        for (int ib = 0; ib < QK_K / 16; ib++) {
            const float scale = sym_search(16, 32, x + 16 * ib, L + 16 * ib);
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
}
