/* kernels/x86: AVX2 dots of the 32-element types against Q8_0 / Q8_1 (gguf-and-quants.md C.3).
 *
 * One block = one 256-bit vector of 32 byte quants. The integer dot of a block is exact (the
 * same sum as quant/dot_ref.c); its 8 partial i32 sums are scaled by f16(w.d) * f16(a.d) and
 * accumulated in 8 f32 lanes, reduced at the end, so results differ from the reference only
 * in summation order. Two blocks per iteration give the FMA chains some independence. */
#include "kernels/x86/avx2_util.h"

float ll_dot_q8_0_avx2(int64_t n, const void *w, const void *a) {
    const uint8_t *wb = w, *ab = a;
    int64_t nb = n / QK;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++, wb += Q8_0_BYTES, ab += Q8_0_BYTES) {
        __m256i p = mul_sum_i8(_mm256_loadu_si256((const __m256i *)(wb + Q8_0_QS)),
                               _mm256_loadu_si256((const __m256i *)(ab + Q8_0_QS)));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(f16_at(wb) * f16_at(ab)), _mm256_cvtepi32_ps(p), acc);
    }
    return hsum_ps(acc);
}

/* Q4_0: nibbles - 8 as signed bytes (-8..7). */
static inline __m256i q4_0_block(const uint8_t *b) {
    return _mm256_sub_epi8(nibbles_32(b + Q4_0_QS), _mm256_set1_epi8(8));
}

float ll_dot_q4_0_avx2(int64_t n, const void *w, const void *a) {
    const uint8_t *wb = w, *ab = a;
    int64_t nb = n / QK, i = 0;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    for (; i + 1 < nb; i += 2, wb += 2 * Q4_0_BYTES, ab += 2 * Q8_0_BYTES) {
        const uint8_t *wb1 = wb + Q4_0_BYTES, *ab1 = ab + Q8_0_BYTES;
        __m256i p0 = mul_sum_i8(q4_0_block(wb), _mm256_loadu_si256((const __m256i *)(ab + Q8_0_QS)));
        __m256i p1 = mul_sum_i8(q4_0_block(wb1), _mm256_loadu_si256((const __m256i *)(ab1 + Q8_0_QS)));
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(f16_at(wb) * f16_at(ab)), _mm256_cvtepi32_ps(p0), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_set1_ps(f16_at(wb1) * f16_at(ab1)), _mm256_cvtepi32_ps(p1), acc1);
    }
    for (; i < nb; i++, wb += Q4_0_BYTES, ab += Q8_0_BYTES) {
        __m256i p = mul_sum_i8(q4_0_block(wb), _mm256_loadu_si256((const __m256i *)(ab + Q8_0_QS)));
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(f16_at(wb) * f16_at(ab)), _mm256_cvtepi32_ps(p), acc0);
    }
    return hsum_ps(_mm256_add_ps(acc0, acc1));
}

/* Q5_0: (nibble | fifth bit << 4) - 16 as signed bytes (-16..15). */
static inline __m256i q5_0_block(const uint8_t *b) {
    __m256i hb = _mm256_and_si256(bits_32(blk_u32(b + Q5_0_QH)), _mm256_set1_epi8(16));
    return _mm256_sub_epi8(_mm256_or_si256(nibbles_32(b + Q5_0_QS), hb), _mm256_set1_epi8(16));
}

float ll_dot_q5_0_avx2(int64_t n, const void *w, const void *a) {
    const uint8_t *wb = w, *ab = a;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK; i++, wb += Q5_0_BYTES, ab += Q8_0_BYTES) {
        __m256i p = mul_sum_i8(q5_0_block(wb), _mm256_loadu_si256((const __m256i *)(ab + Q8_0_QS)));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(f16_at(wb) * f16_at(ab)), _mm256_cvtepi32_ps(p), acc);
    }
    return hsum_ps(acc);
}

/* x Q8_1: (w.d * a.d) * isum + w.m * a.s; the min terms are summed as scalars. Weights are
 * unsigned (0..15 or 0..31), so they go straight to the unsigned side of maddubs. */
float ll_dot_q4_1_avx2(int64_t n, const void *w, const void *a) {
    const uint8_t *wb = w, *ab = a;
    int64_t nb = n / QK;
    __m256 acc = _mm256_setzero_ps();
    float mins = 0.0f;
    for (int64_t i = 0; i < nb; i++, wb += Q4_1_BYTES, ab += Q8_1_BYTES) {
        mins += f16_at(wb + Q4_1_M) * f16_at(ab + Q8_1_S);
        __m256i p = mul_sum_u8_i8(nibbles_32(wb + Q4_1_QS), _mm256_loadu_si256((const __m256i *)(ab + Q8_1_QS)));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(f16_at(wb) * f16_at(ab)), _mm256_cvtepi32_ps(p), acc);
    }
    return hsum_ps(acc) + mins;
}

float ll_dot_q5_1_avx2(int64_t n, const void *w, const void *a) {
    const uint8_t *wb = w, *ab = a;
    __m256 acc = _mm256_setzero_ps();
    float mins = 0.0f;
    for (int64_t i = 0; i < n / QK; i++, wb += Q5_1_BYTES, ab += Q8_1_BYTES) {
        __m256i hb = _mm256_and_si256(bits_32(blk_u32(wb + Q5_1_QH)), _mm256_set1_epi8(16));
        __m256i q = _mm256_or_si256(nibbles_32(wb + Q5_1_QS), hb);
        __m256i p = mul_sum_u8_i8(q, _mm256_loadu_si256((const __m256i *)(ab + Q8_1_QS)));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(f16_at(wb) * f16_at(ab)), _mm256_cvtepi32_ps(p), acc);
        mins += f16_at(wb + Q5_1_M) * f16_at(ab + Q8_1_S);
    }
    return hsum_ps(acc) + mins;
}

/* ---- several activation columns per weight row (kernels.h, ll_dot_multi_fn) ------------------
 *
 * The single dots above with the weight block loaded and decoded (Q8_0 |w|, Q4_0 nibbles - 8,
 * ...) once for all columns c (activation row a + c * as), and the scale products
 * w.d * a_c.d formed for all columns in one vector. Each column keeps its own f32
 * accumulators, fed in the same block order by the same fmadd as the single dot, so out[c] is
 * bit-identical to it (tests/kernels compares them with memcmp). */

/* dw * f16(scale of column c's block) for the columns c < nc, lane c: the f32 products the
 * single dots form one at a time (f16 -> f32 is exact, the product rounds alike in a lane),
 * with one conversion and one multiply for all columns. */
static inline __m256 col_scales(const uint8_t *a, size_t as, int nc, float dw) {
    __m128i h = _mm_cvtsi32_si128(blk_u16(a));
    if (nc > 1) h = _mm_insert_epi16(h, blk_u16(a + 1 * as), 1);
    if (nc > 2) h = _mm_insert_epi16(h, blk_u16(a + 2 * as), 2);
    if (nc > 3) h = _mm_insert_epi16(h, blk_u16(a + 3 * as), 3);
    if (nc > 4) h = _mm_insert_epi16(h, blk_u16(a + 4 * as), 4);
    if (nc > 5) h = _mm_insert_epi16(h, blk_u16(a + 5 * as), 5);
    if (nc > 6) h = _mm_insert_epi16(h, blk_u16(a + 6 * as), 6);
    if (nc > 7) h = _mm_insert_epi16(h, blk_u16(a + 7 * as), 7);
    return _mm256_mul_ps(_mm256_set1_ps(dw), _mm256_cvtph_ps(h));
}

/* Lane c of v in all 8 lanes. */
static inline __m256 lane_ps(__m256 v, int c) { return _mm256_permutevar8x32_ps(v, _mm256_set1_epi32(c)); }

DOT_MULTI_BODY q8_0_cols(int64_t n, const uint8_t *wb, const uint8_t *a, size_t as, int nc, float *out) {
    __m256 acc[LL_DOT_MULTI_MAX];
    COLS(c) acc[c] = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK; i++, wb += Q8_0_BYTES, a += Q8_0_BYTES) {
        /* mul_sum_i8(w, a) = mul_sum_u8_i8(|w|, sign(a, w)), with |w| shared. */
        __m256i wv = _mm256_loadu_si256((const __m256i *)(wb + Q8_0_QS)), wabs = _mm256_abs_epi8(wv);
        __m256 d = col_scales(a, as, nc, f16_at(wb));
        COLS(c) {
            __m256i av = _mm256_loadu_si256((const __m256i *)(a + c * as + Q8_0_QS));
            __m256i p = mul_sum_u8_i8(wabs, _mm256_sign_epi8(av, wv));
            acc[c] = _mm256_fmadd_ps(lane_ps(d, c), _mm256_cvtepi32_ps(p), acc[c]);
        }
    }
    COLS(c) out[c] = hsum_ps(acc[c]);
}
DOT_MULTI_DEFINE(ll_dot_multi_q8_0_avx2, q8_0_cols)

/* Q4_0: the single dot sends block i to acc0 when i is even and to acc1 when odd (its tail
 * block, when the count is odd, has an even index), so block i goes to acc[i % 2] here. */
DOT_MULTI_BODY q4_0_cols(int64_t n, const uint8_t *wb, const uint8_t *a, size_t as, int nc, float *out) {
    __m256 acc0[LL_DOT_MULTI_MAX], acc1[LL_DOT_MULTI_MAX];
    COLS(c) acc0[c] = acc1[c] = _mm256_setzero_ps();
    int64_t nb = n / QK, i = 0;
    for (; i + 1 < nb; i += 2, wb += 2 * Q4_0_BYTES, a += 2 * Q8_0_BYTES) {
        __m256i w0 = q4_0_block(wb), w1 = q4_0_block(wb + Q4_0_BYTES);
        __m256i w0abs = _mm256_abs_epi8(w0), w1abs = _mm256_abs_epi8(w1);
        __m256 d0 = col_scales(a, as, nc, f16_at(wb)), d1 = col_scales(a + Q8_0_BYTES, as, nc, f16_at(wb + Q4_0_BYTES));
        COLS(c) {
            const uint8_t *ab = a + c * as, *ab1 = ab + Q8_0_BYTES;
            __m256i p0 = mul_sum_u8_i8(w0abs, _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)(ab + Q8_0_QS)), w0));
            __m256i p1 = mul_sum_u8_i8(w1abs, _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)(ab1 + Q8_0_QS)), w1));
            acc0[c] = _mm256_fmadd_ps(lane_ps(d0, c), _mm256_cvtepi32_ps(p0), acc0[c]);
            acc1[c] = _mm256_fmadd_ps(lane_ps(d1, c), _mm256_cvtepi32_ps(p1), acc1[c]);
        }
    }
    if (i < nb) {
        __m256i w0 = q4_0_block(wb), w0abs = _mm256_abs_epi8(w0);
        __m256 d0 = col_scales(a, as, nc, f16_at(wb));
        COLS(c) {
            const uint8_t *ab = a + c * as;
            __m256i p = mul_sum_u8_i8(w0abs, _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)(ab + Q8_0_QS)), w0));
            acc0[c] = _mm256_fmadd_ps(lane_ps(d0, c), _mm256_cvtepi32_ps(p), acc0[c]);
        }
    }
    COLS(c) out[c] = hsum_ps(_mm256_add_ps(acc0[c], acc1[c]));
}
DOT_MULTI_DEFINE(ll_dot_multi_q4_0_avx2, q4_0_cols)

DOT_MULTI_BODY q5_0_cols(int64_t n, const uint8_t *wb, const uint8_t *a, size_t as, int nc, float *out) {
    __m256 acc[LL_DOT_MULTI_MAX];
    COLS(c) acc[c] = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK; i++, wb += Q5_0_BYTES, a += Q8_0_BYTES) {
        __m256i wv = q5_0_block(wb), wabs = _mm256_abs_epi8(wv);
        __m256 d = col_scales(a, as, nc, f16_at(wb));
        COLS(c) {
            __m256i av = _mm256_loadu_si256((const __m256i *)(a + c * as + Q8_0_QS));
            __m256i p = mul_sum_u8_i8(wabs, _mm256_sign_epi8(av, wv));
            acc[c] = _mm256_fmadd_ps(lane_ps(d, c), _mm256_cvtepi32_ps(p), acc[c]);
        }
    }
    COLS(c) out[c] = hsum_ps(acc[c]);
}
DOT_MULTI_DEFINE(ll_dot_multi_q5_0_avx2, q5_0_cols)

/* Q4_1 / Q5_1 x Q8_1: unsigned quants shared by all columns; each column keeps the single
 * dot's vector accumulator and its scalar sum of the min terms. */
DOT_MULTI_BODY q4_1_cols(int64_t n, const uint8_t *wb, const uint8_t *a, size_t as, int nc, float *out) {
    __m256 acc[LL_DOT_MULTI_MAX], mins = _mm256_setzero_ps();   /* mins: lane c, column c */
    COLS(c) acc[c] = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK; i++, wb += Q4_1_BYTES, a += Q8_1_BYTES) {
        __m256i q = nibbles_32(wb + Q4_1_QS);
        mins = _mm256_add_ps(mins, col_scales(a + Q8_1_S, as, nc, f16_at(wb + Q4_1_M)));
        __m256 d = col_scales(a, as, nc, f16_at(wb));
        COLS(c) {
            __m256i p = mul_sum_u8_i8(q, _mm256_loadu_si256((const __m256i *)(a + c * as + Q8_1_QS)));
            acc[c] = _mm256_fmadd_ps(lane_ps(d, c), _mm256_cvtepi32_ps(p), acc[c]);
        }
    }
    float m[8];
    _mm256_storeu_ps(m, mins);
    COLS(c) out[c] = hsum_ps(acc[c]) + m[c];
}
DOT_MULTI_DEFINE(ll_dot_multi_q4_1_avx2, q4_1_cols)

DOT_MULTI_BODY q5_1_cols(int64_t n, const uint8_t *wb, const uint8_t *a, size_t as, int nc, float *out) {
    __m256 acc[LL_DOT_MULTI_MAX], mins = _mm256_setzero_ps();
    COLS(c) acc[c] = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK; i++, wb += Q5_1_BYTES, a += Q8_1_BYTES) {
        __m256i hb = _mm256_and_si256(bits_32(blk_u32(wb + Q5_1_QH)), _mm256_set1_epi8(16));
        __m256i q = _mm256_or_si256(nibbles_32(wb + Q5_1_QS), hb);
        __m256 d = col_scales(a, as, nc, f16_at(wb));
        COLS(c) {
            __m256i p = mul_sum_u8_i8(q, _mm256_loadu_si256((const __m256i *)(a + c * as + Q8_1_QS)));
            acc[c] = _mm256_fmadd_ps(lane_ps(d, c), _mm256_cvtepi32_ps(p), acc[c]);
        }
        mins = _mm256_add_ps(mins, col_scales(a + Q8_1_S, as, nc, f16_at(wb + Q5_1_M)));
    }
    float m[8];
    _mm256_storeu_ps(m, mins);
    COLS(c) out[c] = hsum_ps(acc[c]) + m[c];
}
DOT_MULTI_DEFINE(ll_dot_multi_q5_1_avx2, q5_1_cols)
