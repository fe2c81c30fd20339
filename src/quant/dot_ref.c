/* quant: the reference dot products, weight row x activation row in its dot type
 * (gguf-and-quants.md C.3). Every SIMD kernel in kernels/ is tested against these.
 *
 * The integer part of each block is exact; the float scaling is applied per block (per
 * super-block for the K-quants) the way llama.cpp does it, and blocks are summed in f32 in
 * order. SIMD versions sum in another order, so they agree to rounding, not to the bit. */
#include "quant/blocks.h"

/* ---- float types: products in f32, summed in double (as ggml's scalar path) ---------------- */

float ll_dot_f32_ref(int64_t n, const void *w, const void *a) {
    const uint8_t *wb = w, *ab = a;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) sum += (double)(blk_f32(wb + 4 * i) * blk_f32(ab + 4 * i));
    return (float)sum;
}

float ll_dot_f16_ref(int64_t n, const void *w, const void *a) {
    const uint8_t *wb = w, *ab = a;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) sum += (double)(blk_f16(wb + 2 * i) * blk_f16(ab + 2 * i));
    return (float)sum;
}

float ll_dot_bf16_ref(int64_t n, const void *w, const void *a) {
    const uint8_t *wb = w, *ab = a;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)(ll_bf16_to_fp32(blk_u16(wb + 2 * i)) * ll_bf16_to_fp32(blk_u16(ab + 2 * i)));
    return (float)sum;
}

/* ---- legacy types x Q8_0 / Q8_1 -------------------------------------------------------------
 * Each helper unpacks the 32 integer weights of one block in element order. */

static void unpack_q4(const uint8_t *qs, int offset, int q[QK]) {
    for (int j = 0; j < 16; j++) {
        q[j] = (qs[j] & 15) - offset;
        q[j + 16] = (qs[j] >> 4) - offset;
    }
}

static void unpack_q5(const uint8_t *qs, uint32_t h, int offset, int q[QK]) {
    for (int j = 0; j < 16; j++) {
        q[j]      = ((qs[j] & 15) | (int)((h >> j) & 1) << 4) - offset;
        q[j + 16] = ((qs[j] >> 4) | (int)((h >> (j + 16)) & 1) << 4) - offset;
    }
}

static int32_t dot32(const int q[QK], const uint8_t *aqs) {
    int32_t s = 0;
    for (int j = 0; j < QK; j++) s += q[j] * (int8_t)aqs[j];
    return s;
}

/* x Q8_0: sum over blocks of (f16(w.d) * f16(a.d)) * isum. */
float ll_dot_q4_0_ref(int64_t n, const void *w, const void *a) {
    const uint8_t *wb = w, *ab = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK; i++, wb += Q4_0_BYTES, ab += Q8_0_BYTES) {
        int q[QK];
        unpack_q4(wb + Q4_0_QS, 8, q);
        sum += (blk_f16(wb + Q4_0_D) * blk_f16(ab + Q8_0_D)) * (float)dot32(q, ab + Q8_0_QS);
    }
    return sum;
}

float ll_dot_q5_0_ref(int64_t n, const void *w, const void *a) {
    const uint8_t *wb = w, *ab = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK; i++, wb += Q5_0_BYTES, ab += Q8_0_BYTES) {
        int q[QK];
        unpack_q5(wb + Q5_0_QS, blk_u32(wb + Q5_0_QH), 16, q);
        sum += (blk_f16(wb + Q5_0_D) * blk_f16(ab + Q8_0_D)) * (float)dot32(q, ab + Q8_0_QS);
    }
    return sum;
}

float ll_dot_q8_0_ref(int64_t n, const void *w, const void *a) {
    const uint8_t *wb = w, *ab = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK; i++, wb += Q8_0_BYTES, ab += Q8_0_BYTES) {
        int q[QK];
        for (int j = 0; j < QK; j++) q[j] = (int8_t)wb[Q8_0_QS + j];
        sum += (blk_f16(wb + Q8_0_D) * blk_f16(ab + Q8_0_D)) * (float)dot32(q, ab + Q8_0_QS);
    }
    return sum;
}

/* x Q8_1: (w.d * a.d) * isum + w.m * a.s, where a.s = a.d * (sum of a's quants) stands in for
 * the min times every activation. */
float ll_dot_q4_1_ref(int64_t n, const void *w, const void *a) {
    const uint8_t *wb = w, *ab = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK; i++, wb += Q4_1_BYTES, ab += Q8_1_BYTES) {
        int q[QK];
        unpack_q4(wb + Q4_1_QS, 0, q);
        sum += (blk_f16(wb + Q4_1_D) * blk_f16(ab + Q8_1_D)) * (float)dot32(q, ab + Q8_1_QS)
             + blk_f16(wb + Q4_1_M) * blk_f16(ab + Q8_1_S);
    }
    return sum;
}

float ll_dot_q5_1_ref(int64_t n, const void *w, const void *a) {
    const uint8_t *wb = w, *ab = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK; i++, wb += Q5_1_BYTES, ab += Q8_1_BYTES) {
        int q[QK];
        unpack_q5(wb + Q5_1_QS, blk_u32(wb + Q5_1_QH), 0, q);
        sum += (blk_f16(wb + Q5_1_D) * blk_f16(ab + Q8_1_D)) * (float)dot32(q, ab + Q8_1_QS)
             + blk_f16(wb + Q5_1_M) * blk_f16(ab + Q8_1_S);
    }
    return sum;
}

/* ---- K-quants x Q8_K --------------------------------------------------------------------------
 * Per super-block: isum = sum over sub-blocks of scale_j * (integer dot of sub-block j), then
 * d = f16(w.d) * a.d scales it. Types with mins subtract dmin * a.d * sum_j m_j * bsum_j, the
 * activation's per-16 sums standing in for "min times every activation". */

static const int8_t *q8k_qs(const uint8_t *ab) { return (const int8_t *)(ab + Q8_K_QS); }
static int16_t q8k_bsum(const uint8_t *ab, int k) { return blk_i16(ab + Q8_K_BSUMS + 2 * k); }

float ll_dot_q2_k_ref(int64_t n, const void *w, const void *a) {
    const uint8_t *wb = w, *ab = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++, wb += Q2_K_BYTES, ab += Q8_K_BYTES) {
        const uint8_t *sc = wb + Q2_K_SCALES, *qs = wb + Q2_K_QS;
        const int8_t *aq = q8k_qs(ab);
        int32_t isum = 0, msum = 0;
        for (int j = 0; j < 16; j++) {                  /* sub-blocks of 16 */
            int32_t s = 0;
            for (int e = 16 * j; e < 16 * j + 16; e++) {
                int half = e / 128, plane = (e % 128) / 32, l = e % 32;
                s += ((qs[32 * half + l] >> (2 * plane)) & 3) * aq[e];
            }
            isum += (sc[j] & 15) * s;
            msum += (sc[j] >> 4) * q8k_bsum(ab, j);
        }
        float ad = blk_f32(ab + Q8_K_D);
        sum += (blk_f16(wb + Q2_K_D) * ad) * (float)isum - (blk_f16(wb + Q2_K_DMIN) * ad) * (float)msum;
    }
    return sum;
}

float ll_dot_q3_k_ref(int64_t n, const void *w, const void *a) {
    const uint8_t *wb = w, *ab = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++, wb += Q3_K_BYTES, ab += Q8_K_BYTES) {
        const uint8_t *hm = wb + Q3_K_HMASK, *qs = wb + Q3_K_QS;
        const int8_t *aq = q8k_qs(ab);
        int8_t sc[16];
        blk_q3_k_scales(wb + Q3_K_SCALES, sc);
        int32_t isum = 0;
        for (int j = 0; j < 16; j++) {
            int32_t s = 0;
            for (int e = 16 * j; e < 16 * j + 16; e++) {
                int half = e / 128, plane = (e % 128) / 32, l = e % 32;
                int low2 = (qs[32 * half + l] >> (2 * plane)) & 3;
                int q = (hm[l] >> (e / 32)) & 1 ? low2 : low2 - 4;
                s += q * aq[e];
            }
            isum += sc[j] * s;
        }
        sum += (blk_f16(wb + Q3_K_D) * blk_f32(ab + Q8_K_D)) * (float)isum;
    }
    return sum;
}

float ll_dot_q4_k_ref(int64_t n, const void *w, const void *a) {
    const uint8_t *wb = w, *ab = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++, wb += Q4_K_BYTES, ab += Q8_K_BYTES) {
        const uint8_t *qs = wb + Q4_K_QS;
        const int8_t *aq = q8k_qs(ab);
        int32_t isum = 0, msum = 0;
        for (int j = 0; j < 8; j++) {                   /* sub-blocks of 32 */
            uint8_t sc, m;
            blk_k4_scale_min(wb + Q4_K_SCALES, j, &sc, &m);
            int32_t s = 0;
            for (int l = 0; l < 32; l++) {
                uint8_t byte = qs[32 * (j / 2) + l];
                s += (j % 2 ? byte >> 4 : byte & 15) * aq[32 * j + l];
            }
            isum += sc * s;
            msum += m * (q8k_bsum(ab, 2 * j) + q8k_bsum(ab, 2 * j + 1));
        }
        float ad = blk_f32(ab + Q8_K_D);
        sum += (blk_f16(wb + Q4_K_D) * ad) * (float)isum - (blk_f16(wb + Q4_K_DMIN) * ad) * (float)msum;
    }
    return sum;
}

float ll_dot_q5_k_ref(int64_t n, const void *w, const void *a) {
    const uint8_t *wb = w, *ab = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++, wb += Q5_K_BYTES, ab += Q8_K_BYTES) {
        const uint8_t *qh = wb + Q5_K_QH, *qs = wb + Q5_K_QS;
        const int8_t *aq = q8k_qs(ab);
        int32_t isum = 0, msum = 0;
        for (int j = 0; j < 8; j++) {
            uint8_t sc, m;
            blk_k4_scale_min(wb + Q5_K_SCALES, j, &sc, &m);
            int32_t s = 0;
            for (int l = 0; l < 32; l++) {
                uint8_t byte = qs[32 * (j / 2) + l];
                int q = (j % 2 ? byte >> 4 : byte & 15) | ((qh[l] >> j) & 1) << 4;
                s += q * aq[32 * j + l];
            }
            isum += sc * s;
            msum += m * (q8k_bsum(ab, 2 * j) + q8k_bsum(ab, 2 * j + 1));
        }
        float ad = blk_f32(ab + Q8_K_D);
        sum += (blk_f16(wb + Q5_K_D) * ad) * (float)isum - (blk_f16(wb + Q5_K_DMIN) * ad) * (float)msum;
    }
    return sum;
}

float ll_dot_q6_k_ref(int64_t n, const void *w, const void *a) {
    const uint8_t *wb = w, *ab = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++, wb += Q6_K_BYTES, ab += Q8_K_BYTES) {
        const uint8_t *ql = wb + Q6_K_QL, *qh = wb + Q6_K_QH;
        const int8_t *sc = (const int8_t *)(wb + Q6_K_SCALES), *aq = q8k_qs(ab);
        int32_t isum = 0;
        for (int j = 0; j < 16; j++) {
            int32_t s = 0;
            for (int e = 16 * j; e < 16 * j + 16; e++) {
                int half = e / 128, plane = (e % 128) / 32, l = e % 32;
                uint8_t lb = ql[64 * half + l + 32 * (plane % 2)];
                int low4 = plane < 2 ? lb & 15 : lb >> 4;
                int high2 = (qh[32 * half + l] >> (2 * plane)) & 3;
                s += ((low4 | high2 << 4) - 32) * aq[e];
            }
            isum += sc[j] * s;
        }
        sum += (blk_f16(wb + Q6_K_D) * blk_f32(ab + Q8_K_D)) * (float)isum;
    }
    return sum;
}

float ll_vec_dot_ref(uint32_t w_type, int64_t n, const void *w, const void *a) {
    switch (w_type) {
    case LL_TYPE_F32:  return ll_dot_f32_ref(n, w, a);
    case LL_TYPE_F16:  return ll_dot_f16_ref(n, w, a);
    case LL_TYPE_BF16: return ll_dot_bf16_ref(n, w, a);
    case LL_TYPE_Q4_0: return ll_dot_q4_0_ref(n, w, a);
    case LL_TYPE_Q4_1: return ll_dot_q4_1_ref(n, w, a);
    case LL_TYPE_Q5_0: return ll_dot_q5_0_ref(n, w, a);
    case LL_TYPE_Q5_1: return ll_dot_q5_1_ref(n, w, a);
    case LL_TYPE_Q8_0: return ll_dot_q8_0_ref(n, w, a);
    case LL_TYPE_Q2_K: return ll_dot_q2_k_ref(n, w, a);
    case LL_TYPE_Q3_K: return ll_dot_q3_k_ref(n, w, a);
    case LL_TYPE_Q4_K: return ll_dot_q4_k_ref(n, w, a);
    case LL_TYPE_Q5_K: return ll_dot_q5_k_ref(n, w, a);
    case LL_TYPE_Q6_K: return ll_dot_q6_k_ref(n, w, a);
    default: return 0.0f;   /* unsupported weight types are refused at load (G35) */
    }
}
