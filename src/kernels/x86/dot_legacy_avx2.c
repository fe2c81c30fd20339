/* kernels/x86: AVX2 dots of the 32-element types against Q8_0 / Q8_1 (gguf-and-quants.md C.3).
 *
 * One block = one 256-bit vector of 32 byte quants. The integer dot of a block is exact (the
 * same sum as quant/dot_ref.c), so results differ from the reference only in the order of the
 * float operations.
 *
 * Q5_0, Q4_1, Q5_1: the block's 8 partial i32 sums are scaled by f16(w.d) * f16(a.d) and
 * accumulated in 8 f32 lanes, reduced at the end.
 *
 * Q4_0 and Q8_0 (the types with a gemm, gemm_legacy_avx2.c) follow the order in avx2_util.h
 * (LEGACY_CHAINS): each block's integer sum is reduced to one i32 and the f32 products go to
 * four chains by block index, because a register-tiled gemm cannot keep 8 lane partials per
 * (row, token). Four blocks per step: their 8-lane sums meet in one hadd tree, which gives the
 * four block sums in chain order in one 128-bit vector, so one 4-lane FMA feeds all chains. */
#include "kernels/x86/avx2_util.h"

/* Q4_0: nibbles - 8 as signed bytes (-8..7). */
static inline __m256i q4_0_block(const uint8_t *b) {
    return _mm256_sub_epi8(nibbles_32(b + Q4_0_QS), _mm256_set1_epi8(8));
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

/* ---- Q4_0 and Q8_0: four chains by block index ------------------------------------------------
 *
 * One body for the single dot (nc = 1) and the multi-column dot: the weight blocks are decoded
 * once for all columns, each column runs the same operations on its own accumulator, so
 * out[c] is bit-identical to the single dot, and both to the gemm. */

/* The 4 f16 values at p, p + stride, p + 2 * stride, p + 3 * stride as f32 (exact). */
static inline __m128 f16x4(const uint8_t *p, size_t stride) {
    __m128i h = _mm_setr_epi16((short)blk_u16(p), (short)blk_u16(p + stride), (short)blk_u16(p + 2 * stride),
                               (short)blk_u16(p + 3 * stride), 0, 0, 0, 0);
    return _mm_cvtph_ps(h);
}

/* The totals of four 8-lane i32 partial sums, in order: [sum p0, sum p1, sum p2, sum p3]. */
static inline __m128i isum4(__m256i p0, __m256i p1, __m256i p2, __m256i p3) {
    __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(p0, p1), _mm256_hadd_epi32(p2, p3));
    return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

/* The signed quants of a Q4_0 (q4 != 0) or Q8_0 block. */
static inline __attribute__((always_inline)) __m256i legacy_block(int q4, const uint8_t *b) {
    return q4 ? q4_0_block(b) : _mm256_loadu_si256((const __m256i *)(b + Q8_0_QS));
}

DOT_MULTI_BODY legacy_cols(int q4, int64_t n, const uint8_t *wb, const uint8_t *a, size_t as, int nc, float *out) {
    const size_t wbytes = q4 ? Q4_0_BYTES : Q8_0_BYTES;
    const int64_t nb = n / QK;
    int64_t i = 0;
    __m128 acc[LL_DOT_MULTI_MAX];                   /* lane j: chain j of column c */
    COLS(c) acc[c] = _mm_setzero_ps();
    for (; i + LEGACY_CHAINS <= nb; i += LEGACY_CHAINS, wb += LEGACY_CHAINS * wbytes, a += LEGACY_CHAINS * Q8_0_BYTES) {
        __m256i wv[LEGACY_CHAINS], wabs[LEGACY_CHAINS];
        _Pragma("GCC unroll 4")
        for (int k = 0; k < LEGACY_CHAINS; k++) {
            wv[k] = legacy_block(q4, wb + k * wbytes);
            wabs[k] = _mm256_abs_epi8(wv[k]);
        }
        __m128 dw = f16x4(wb, wbytes);
        COLS(c) {
            const uint8_t *ac = a + c * as;
            __m256i p[LEGACY_CHAINS];
            _Pragma("GCC unroll 4")
            for (int k = 0; k < LEGACY_CHAINS; k++) {
                __m256i av = _mm256_loadu_si256((const __m256i *)(ac + k * Q8_0_BYTES + Q8_0_QS));
                p[k] = mul_sum_u8_i8(wabs[k], _mm256_sign_epi8(av, wv[k]));
            }
            __m128 s = _mm_mul_ps(dw, f16x4(ac, Q8_0_BYTES));
            acc[c] = _mm_fmadd_ps(s, _mm_cvtepi32_ps(isum4(p[0], p[1], p[2], p[3])), acc[c]);
        }
    }
    COLS(c) {
        float ch[LEGACY_CHAINS];
        _mm_storeu_ps(ch, acc[c]);
        /* The last nb % 4 blocks: chains 0.. in turn, one scalar FMA each. */
        for (int j = 0; i + j < nb; j++) {
            const uint8_t *wj = wb + j * wbytes, *aj = a + c * as + j * Q8_0_BYTES;
            int32_t is = hsum_i32(mul_sum_i8(legacy_block(q4, wj), _mm256_loadu_si256((const __m256i *)(aj + Q8_0_QS))));
            __m128 s = _mm_set_ss(f16_at(wj) * f16_at(aj));
            ch[j] = _mm_cvtss_f32(_mm_fmadd_ss(s, _mm_cvtsi32_ss(_mm_setzero_ps(), is), _mm_set_ss(ch[j])));
        }
        out[c] = legacy_chains_sum(ch);
    }
}

DOT_MULTI_BODY q8_0_cols(int64_t n, const uint8_t *wb, const uint8_t *a, size_t as, int nc, float *out) {
    legacy_cols(0, n, wb, a, as, nc, out);
}
DOT_MULTI_DEFINE(ll_dot_multi_q8_0_avx2, q8_0_cols)

DOT_MULTI_BODY q4_0_cols(int64_t n, const uint8_t *wb, const uint8_t *a, size_t as, int nc, float *out) {
    legacy_cols(1, n, wb, a, as, nc, out);
}
DOT_MULTI_DEFINE(ll_dot_multi_q4_0_avx2, q4_0_cols)

float ll_dot_q8_0_avx2(int64_t n, const void *w, const void *a) {
    float out;
    legacy_cols(0, n, w, a, 0, 1, &out);
    return out;
}

float ll_dot_q4_0_avx2(int64_t n, const void *w, const void *a) {
    float out;
    legacy_cols(1, n, w, a, 0, 1, &out);
    return out;
}
