/* quant: activation conversion to the dot type (gguf-and-quants.md C.2), as llama.cpp's x86
 * CPU backend does it, so our integer sums see the same quants as its kernels.
 *
 * Q8_0/Q8_1 follow the x86 (AVX) build: id = 127/amax and ties to even. The scalar build of
 * llama.cpp uses id = 1/d and rounds half away from zero; the two differ only on exact ties.
 *
 * Non-finite input (R17): a block holding a NaN or an infinity has no meaningful scale, and
 * llama.cpp's result for it depends on where the NaN sits (max_ps drops a NaN in one operand
 * but not the other) and on the build (scalar or AVX2). We define it instead: the block's
 * scale d (and Q8_1's s) is a quiet NaN, every quant and Q8_K bsum is 0. Every dot product
 * that touches the block is then NaN, so the logits are NaN and the engine reports R17,
 * rather than a finite block quietly standing in for the NaN. The AVX2 versions
 * (kernels/x86/quantize_avx2.c) do the same, bit for bit. Finite input is unaffected. */
#include "quant/blocks.h"

#include <float.h>
#include <math.h>

/* The NaN a non-finite block gets as its scale: the default quiet NaN, positive. */
enum { ACT_NAN_F16 = 0x7E00 };
#define ACT_NAN_F32 0x7FC00000u

/* Round to nearest, ties to even: the default rounding mode, which we never change. Products
 * are at most 127.01 in magnitude, except when amax is so small (below 127 / FLT_MAX) that
 * 127/amax overflows: then x * id is +-Inf, or NaN for x = 0. Those must not reach the int
 * conversion, which would be undefined: they become the clamp or 0. */
static int round_even(float v) {
    if (!(v > -128.5f && v < 127.5f)) return v >= 127.5f ? 127 : v <= -128.5f ? -128 : 0;
    return (int)nearbyintf(v);
}

/* The largest |x[j]| into *amax; false when some x[j] is NaN or infinite. */
static bool block_amax(const float *x, int n, float *amax) {
    float m = 0.0f;
    bool finite = true;
    for (int j = 0; j < n; j++) {
        float ax = fabsf(x[j]);
        if (ax > m) m = ax;
        finite &= ax <= FLT_MAX;      /* false for NaN too */
    }
    *amax = m;
    return finite;
}

void ll_quantize_q8_0_ref(const float *x, void *dst, int64_t n) {
    uint8_t *b = dst;
    for (int64_t i = 0; i < n / QK; i++, x += QK, b += Q8_0_BYTES) {
        float amax;
        if (!block_amax(x, QK, &amax)) {
            blk_put_u16(b + Q8_0_D, ACT_NAN_F16);
            memset(b + Q8_0_QS, 0, QK);
            continue;
        }
        float d = amax / 127.0f;
        float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        blk_put_u16(b + Q8_0_D, ll_fp32_to_fp16(d));
        for (int j = 0; j < QK; j++) b[Q8_0_QS + j] = (uint8_t)(int8_t)round_even(x[j] * id);
    }
}

/* As Q8_0, plus s = f16(d * sum of quants) with the f32 d (before its f16 rounding). */
void ll_quantize_q8_1_ref(const float *x, void *dst, int64_t n) {
    uint8_t *b = dst;
    for (int64_t i = 0; i < n / QK; i++, x += QK, b += Q8_1_BYTES) {
        float amax;
        if (!block_amax(x, QK, &amax)) {
            blk_put_u16(b + Q8_1_D, ACT_NAN_F16);
            blk_put_u16(b + Q8_1_S, ACT_NAN_F16);
            memset(b + Q8_1_QS, 0, QK);
            continue;
        }
        float d = amax / 127.0f;
        float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        int sum = 0;
        for (int j = 0; j < QK; j++) {
            int q = round_even(x[j] * id);
            b[Q8_1_QS + j] = (uint8_t)(int8_t)q;
            sum += q;
        }
        blk_put_u16(b + Q8_1_D, ll_fp32_to_fp16(d));
        blk_put_u16(b + Q8_1_S, ll_fp32_to_fp16(d * (float)sum));
    }
}

/* Q8_K (C.2): the scale comes from the element of largest magnitude (the first on ties, with
 * its sign), iscale = -127/max, so that element becomes -127; d = 1/iscale is kept as f32. */
void ll_quantize_q8_k_ref(const float *x, void *dst, int64_t n) {
    uint8_t *b = dst;
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K, b += Q8_K_BYTES) {
        float amax = 0.0f, max = 0.0f;
        bool finite = true;
        for (int j = 0; j < QK_K; j++) {
            float ax = fabsf(x[j]);
            if (ax > amax) { amax = ax; max = x[j]; }
            finite &= ax <= FLT_MAX;
        }
        int16_t bsums[16] = {0};
        float d = 0.0f;
        if (!finite) {
            uint32_t nan_bits = ACT_NAN_F32;
            memcpy(&d, &nan_bits, 4);
            memset(b + Q8_K_QS, 0, QK_K);
        } else if (amax == 0.0f) {
            memset(b + Q8_K_QS, 0, QK_K);
        } else {
            float iscale = -127.0f / max;
            for (int j = 0; j < QK_K; j++) {
                int q = round_even(iscale * x[j]);
                if (q > 127) q = 127;
                b[Q8_K_QS + j] = (uint8_t)(int8_t)q;
                bsums[j / 16] = (int16_t)(bsums[j / 16] + q);
            }
            d = 1.0f / iscale;
        }
        memcpy(b + Q8_K_D, &d, 4);
        memcpy(b + Q8_K_BSUMS, bsums, sizeof bsums);
    }
}

void ll_quantize_f16_ref(const float *x, void *dst, int64_t n) {
    uint8_t *b = dst;
    for (int64_t i = 0; i < n; i++) blk_put_u16(b + 2 * i, ll_fp32_to_fp16(x[i]));
}

void ll_quantize_bf16_ref(const float *x, void *dst, int64_t n) {
    uint8_t *b = dst;
    for (int64_t i = 0; i < n; i++) blk_put_u16(b + 2 * i, ll_fp32_to_bf16(x[i]));
}

void ll_quantize_f32_ref(const float *x, void *dst, int64_t n) {
    memcpy(dst, x, (size_t)n * sizeof(float));
}

void ll_quantize_act_ref(uint32_t dot_type, const float *x, void *dst, int64_t n) {
    switch (dot_type) {
    case LL_TYPE_Q8_0: ll_quantize_q8_0_ref(x, dst, n); return;
    case LL_TYPE_Q8_1: ll_quantize_q8_1_ref(x, dst, n); return;
    case LL_TYPE_Q8_K: ll_quantize_q8_k_ref(x, dst, n); return;
    case LL_TYPE_F16:  ll_quantize_f16_ref(x, dst, n); return;
    case LL_TYPE_BF16: ll_quantize_bf16_ref(x, dst, n); return;
    case LL_TYPE_F32:  ll_quantize_f32_ref(x, dst, n); return;
    default: return;   /* not an activation type; callers pick dot_type from the table */
    }
}
