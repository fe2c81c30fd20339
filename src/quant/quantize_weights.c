/* quant: weight quantizers for the 32-element legacy types and the float types, the row
 * dispatcher, the validity check and the error measure (quantize.h).
 *
 * Legacy blocks (gguf-and-quants.md B.3). Q4_0 / Q5_0 are symmetric: the element of largest
 * magnitude, sign included, maps to the most negative code (-8 or -16), so d = max / -8 and
 * that element is stored exactly. Q4_1 / Q5_1 map [min, max] onto 0..15 / 0..31. Codes are
 * taken by truncating x/d + offset + 0.5 toward zero, which is round-half-up for the
 * non-negative values that occur, and clamped at the top. Q8_0 scales max|x| to 127 and rounds
 * with roundf (half away from zero): the reference rule, not the x86 activation rounding. */
#include "quant/quantize.h"
#include "quant/blocks.h"
#include "quant/quantize_impl.h"

#include <float.h>
#include <stdint.h>
#include <math.h>

/* Float to int, truncating, as x86's cvttss2si does: a value outside the int range (or NaN)
 * gives INT32_MIN. The reference converts float straight to int8_t / uint8_t, which compiles
 * to that instruction; this gives the same bits without undefined behaviour when a block of
 * denormals makes 1/d infinite (such a block has d = 0 in F16, so its codes decode to 0). */
static inline int trunc_to_int(float f) {
    return f > -2147483648.0f && f < 2147483648.0f ? (int)f : INT32_MIN;
}

/* Symmetric 4/5-bit: largest magnitude keeps its sign; nmax = 8 or 16. */
static void find_signed_max(const float *x, float *max_out) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < QK; j++) {
        float a = fabsf(x[j]);
        if (amax < a) { amax = a; max = x[j]; }
    }
    *max_out = max;
}

static void find_min_max(const float *x, float *min_out, float *max_out) {
    float min = FLT_MAX, max = -FLT_MAX;
    for (int j = 0; j < QK; j++) {
        if (x[j] < min) min = x[j];
        if (x[j] > max) max = x[j];
    }
    *min_out = min;
    *max_out = max;
}

void ll_quantize_w_q4_0(const float *x, void *vy, int64_t k) {
    uint8_t *b = vy;
    for (int64_t i = 0; i < k / QK; i++, x += QK, b += Q4_0_BYTES) {
        float max;
        find_signed_max(x, &max);
        const float d = max / -8;
        const float id = d ? 1.0f / d : 0.0f;
        put_f16(b + Q4_0_D, d);
        for (int j = 0; j < QK / 2; j++) {
            const float x0 = x[j] * id, x1 = x[j + QK / 2] * id;
            int q0 = (int8_t)trunc_to_int(x0 + 8.5f), q1 = (int8_t)trunc_to_int(x1 + 8.5f);
            if (q0 > 15) q0 = 15;
            if (q1 > 15) q1 = 15;
            b[Q4_0_QS + j] = (uint8_t)((q0 & 0xFF) | (q1 & 0xFF) << 4);
        }
    }
}

void ll_quantize_w_q4_1(const float *x, void *vy, int64_t k) {
    uint8_t *b = vy;
    for (int64_t i = 0; i < k / QK; i++, x += QK, b += Q4_1_BYTES) {
        float min, max;
        find_min_max(x, &min, &max);
        const float d = (max - min) / 15;
        const float id = d ? 1.0f / d : 0.0f;
        put_f16(b + Q4_1_D, d);
        put_f16(b + Q4_1_M, min);
        for (int j = 0; j < QK / 2; j++) {
            const float x0 = (x[j] - min) * id, x1 = (x[j + QK / 2] - min) * id;
            int q0 = (int8_t)trunc_to_int(x0 + 0.5f), q1 = (int8_t)trunc_to_int(x1 + 0.5f);
            if (q0 > 15) q0 = 15;
            if (q1 > 15) q1 = 15;
            b[Q4_1_QS + j] = (uint8_t)((q0 & 0xFF) | (q1 & 0xFF) << 4);
        }
    }
}

/* Q5: low nibbles in qs as Q4, the fifth bits of elements 0..31 in the 32-bit qh. */
void ll_quantize_w_q5_0(const float *x, void *vy, int64_t k) {
    uint8_t *b = vy;
    for (int64_t i = 0; i < k / QK; i++, x += QK, b += Q5_0_BYTES) {
        float max;
        find_signed_max(x, &max);
        const float d = max / -16;
        const float id = d ? 1.0f / d : 0.0f;
        put_f16(b + Q5_0_D, d);
        uint32_t qh = 0;
        for (int j = 0; j < QK / 2; j++) {
            const float x0 = x[j] * id, x1 = x[j + QK / 2] * id;
            int q0 = (int8_t)trunc_to_int(x0 + 16.5f), q1 = (int8_t)trunc_to_int(x1 + 16.5f);
            if (q0 > 31) q0 = 31;
            if (q1 > 31) q1 = 31;
            uint8_t u0 = (uint8_t)q0, u1 = (uint8_t)q1;
            b[Q5_0_QS + j] = (uint8_t)((u0 & 0x0F) | (u1 & 0x0F) << 4);
            qh |= (uint32_t)((u0 & 0x10u) >> 4) << j;
            qh |= (uint32_t)((u1 & 0x10u) >> 4) << (j + QK / 2);
        }
        memcpy(b + Q5_0_QH, &qh, 4);          /* little-endian host */
    }
}

void ll_quantize_w_q5_1(const float *x, void *vy, int64_t k) {
    uint8_t *b = vy;
    for (int64_t i = 0; i < k / QK; i++, x += QK, b += Q5_1_BYTES) {
        float min, max;
        find_min_max(x, &min, &max);
        const float d = (max - min) / 31;
        const float id = d ? 1.0f / d : 0.0f;
        put_f16(b + Q5_1_D, d);
        put_f16(b + Q5_1_M, min);
        uint32_t qh = 0;
        for (int j = 0; j < QK / 2; j++) {
            const float x0 = (x[j] - min) * id, x1 = (x[j + QK / 2] - min) * id;
            /* no clamp here in the reference: (max - min) * id rounds to at most 31.000004 */
            uint8_t u0 = (uint8_t)trunc_to_int(x0 + 0.5f), u1 = (uint8_t)trunc_to_int(x1 + 0.5f);
            b[Q5_1_QS + j] = (uint8_t)((u0 & 0x0F) | (u1 & 0x0F) << 4);
            qh |= (uint32_t)((u0 & 0x10u) >> 4) << j;
            qh |= (uint32_t)((u1 & 0x10u) >> 4) << (j + QK / 2);
        }
        memcpy(b + Q5_1_QH, &qh, 4);
    }
}

void ll_quantize_w_q8_0(const float *x, void *vy, int64_t k) {
    uint8_t *b = vy;
    for (int64_t i = 0; i < k / QK; i++, x += QK, b += Q8_0_BYTES) {
        float amax = 0.0f;
        for (int j = 0; j < QK; j++) {
            float a = fabsf(x[j]);
            amax = amax > a ? amax : a;
        }
        const float d = amax / 127;
        const float id = d ? 1.0f / d : 0.0f;
        put_f16(b + Q8_0_D, d);
        for (int j = 0; j < QK; j++)
            b[Q8_0_QS + j] = (uint8_t)trunc_to_int(roundf(x[j] * id));
    }
}

/* ---- dispatch ------------------------------------------------------------------------- */

bool ll_quantize_supported(uint32_t type) {
    switch (type) {
    case LL_TYPE_F32: case LL_TYPE_F16: case LL_TYPE_BF16:
    case LL_TYPE_Q4_0: case LL_TYPE_Q4_1: case LL_TYPE_Q5_0: case LL_TYPE_Q5_1: case LL_TYPE_Q8_0:
    case LL_TYPE_Q2_K: case LL_TYPE_Q3_K: case LL_TYPE_Q4_K: case LL_TYPE_Q5_K: case LL_TYPE_Q6_K:
        return true;
    default:
        return false;
    }
}

void ll_quantize_rows(uint32_t type, const float *src, void *dst, int64_t nrows, int64_t n_per_row) {
    const int64_t k = nrows * n_per_row;
    uint8_t *out = dst;
    switch (type) {
    case LL_TYPE_F32:  memcpy(dst, src, (size_t)k * sizeof(float)); return;
    case LL_TYPE_F16:  for (int64_t i = 0; i < k; i++) put_f16(out + 2 * i, src[i]); return;
    case LL_TYPE_BF16: for (int64_t i = 0; i < k; i++) blk_put_u16(out + 2 * i, ll_fp32_to_bf16(src[i])); return;
    case LL_TYPE_Q4_0: ll_quantize_w_q4_0(src, dst, k); return;
    case LL_TYPE_Q4_1: ll_quantize_w_q4_1(src, dst, k); return;
    case LL_TYPE_Q5_0: ll_quantize_w_q5_0(src, dst, k); return;
    case LL_TYPE_Q5_1: ll_quantize_w_q5_1(src, dst, k); return;
    case LL_TYPE_Q8_0: ll_quantize_w_q8_0(src, dst, k); return;
    case LL_TYPE_Q2_K: ll_quantize_w_q2_k(src, dst, k); return;
    case LL_TYPE_Q3_K: ll_quantize_w_q3_k(src, dst, k); return;
    case LL_TYPE_Q4_K: ll_quantize_w_q4_k(src, dst, k); return;
    case LL_TYPE_Q5_K: ll_quantize_w_q5_k(src, dst, k); return;
    case LL_TYPE_Q6_K: ll_quantize_w_q6_k(src, dst, k); return;
    default: return;   /* callers check ll_quantize_supported */
    }
}

/* ---- validity: ggml_validate_row_data's rule ------------------------------------------- */

static bool f16_finite(const uint8_t *p) { return (blk_u16(p) & 0x7C00) != 0x7C00; }

bool ll_quantize_check(uint32_t type, const void *data, size_t n_bytes, size_t *bad_elem) {
    const uint8_t *p = data;
    const ll_type_traits *t = ll_type_traits_of(type);
    if (!t || n_bytes % t->bytes) { if (bad_elem) *bad_elem = 0; return false; }
    size_t nb = n_bytes / t->bytes;
    /* offsets of the F16 scale(s) in each block; -1 for none */
    int d_off = -1, m_off = -1;
    switch (type) {
    case LL_TYPE_F32:
        for (size_t i = 0; i < nb; i++)
            if ((blk_u32(p + 4 * i) & 0x7F800000u) == 0x7F800000u) { if (bad_elem) *bad_elem = i; return false; }
        return true;
    case LL_TYPE_F16:
        for (size_t i = 0; i < nb; i++)
            if (!f16_finite(p + 2 * i)) { if (bad_elem) *bad_elem = i; return false; }
        return true;
    case LL_TYPE_BF16:
        for (size_t i = 0; i < nb; i++)
            if ((blk_u16(p + 2 * i) & 0x7F80) == 0x7F80) { if (bad_elem) *bad_elem = i; return false; }
        return true;
    case LL_TYPE_Q4_0: d_off = Q4_0_D; break;
    case LL_TYPE_Q5_0: d_off = Q5_0_D; break;
    case LL_TYPE_Q8_0: d_off = Q8_0_D; break;
    case LL_TYPE_Q4_1: d_off = Q4_1_D; m_off = Q4_1_M; break;
    case LL_TYPE_Q5_1: d_off = Q5_1_D; m_off = Q5_1_M; break;
    case LL_TYPE_Q2_K: d_off = Q2_K_D; m_off = Q2_K_DMIN; break;
    case LL_TYPE_Q3_K: d_off = Q3_K_D; break;
    case LL_TYPE_Q4_K: d_off = Q4_K_D; m_off = Q4_K_DMIN; break;
    case LL_TYPE_Q5_K: d_off = Q5_K_D; m_off = Q5_K_DMIN; break;
    case LL_TYPE_Q6_K: d_off = Q6_K_D; break;
    default: return true;   /* types we never write: nothing to check here */
    }
    for (size_t i = 0; i < nb; i++, p += t->bytes)
        if (!f16_finite(p + d_off) || (m_off >= 0 && !f16_finite(p + m_off))) {
            if (bad_elem) *bad_elem = i;
            return false;
        }
    return true;
}

/* ---- error measure ---------------------------------------------------------------------- */

void ll_quantize_error(uint32_t type, const float *x, const void *q, int64_t n, float *scratch,
                       double *err2, double *ref2) {
    ll_dequantize_row(type, q, scratch, n);
    double e = 0, r = 0;
    for (int64_t i = 0; i < n; i++) {
        double dx = (double)scratch[i] - (double)x[i];
        e += dx * dx;
        r += (double)x[i] * (double)x[i];
    }
    *err2 += e;
    *ref2 += r;
}
