/* kernels/x86: small AVX2 helpers shared by the *_avx2.c files (and only by them: including
 * this from a file built without -mavx2 would not compile). */
#ifndef LL_KERNELS_X86_AVX2_UTIL_H
#define LL_KERNELS_X86_AVX2_UTIL_H

#include "kernels/kernels.h"
#include "kernels/x86/avx2.h"
#include "quant/blocks.h"

#include <immintrin.h>
#include <string.h>

/* f16 scale at p (any alignment) to f32, exactly, with the F16C instruction. */
static inline float f16_at(const uint8_t *p) { return _cvtsh_ss(blk_u16(p)); }

/* 32 bytes at p (any alignment). */
static inline __m256i load32(const uint8_t *p) { return _mm256_loadu_si256((const __m256i *)p); }

static inline float hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline int32_t hsum_i32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

static inline float hmax_ps(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

/* Unsigned bytes u (0..255) times signed bytes s, summed in groups of 4 into 8 i32. The pair
 * sums of maddubs saturate at 32767; every caller keeps u * |s| * 2 below that. */
static inline __m256i mul_sum_u8_i8(__m256i u, __m256i s) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

/* Signed weights w times signed activations a (|a| <= 127, as our quantizers make them), in
 * groups of 4 into 8 i32. |w| goes to the unsigned side, so even w = -128 is exact. */
static inline __m256i mul_sum_i8(__m256i w, __m256i a) {
    return mul_sum_u8_i8(_mm256_abs_epi8(w), _mm256_sign_epi8(a, w));
}

/* 16 bytes of nibble pairs -> 32 bytes: the low nibbles (elements 0..15), then the high ones
 * (16..31), the legacy-type element order of B.3. */
static inline __m256i nibbles_32(const uint8_t *qs) {
    __m128i t = _mm_loadu_si128((const __m128i *)qs);
    __m256i v = _mm256_set_m128i(_mm_srli_epi16(t, 4), t);
    return _mm256_and_si256(v, _mm256_set1_epi8(15));
}

/* Bit j of h -> byte j is 0xFF when set, 0 when clear. */
static inline __m256i bits_32(uint32_t h) {
    const __m256i pick = _mm256_setr_epi64x(0x0000000000000000, 0x0101010101010101,
                                            0x0202020202020202, 0x0303030303030303);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)h), pick);
    return _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
}

/* acc + v as a running sum. The empty asm pins acc in a register at this point: without it GCC
 * reassociates the integer sums of a multi-column body into one tree per column, evaluating
 * every product first, and spills most of them. */
static inline __m256i add_i32_chain(__m256i acc, __m256i v) {
    acc = _mm256_add_epi32(acc, v);
    __asm__("" : "+x"(acc));
    return acc;
}

/* acc + v in i16 lanes as a running sum, pinned like add_i32_chain so GCC does
 * not evaluate a sub-block's products first and spill them. */
static inline __m256i add_i16_chain(__m256i acc, __m256i v) {
    acc = _mm256_add_epi16(acc, v);
    __asm__("" : "+x"(acc));
    return acc;
}

/* The horizontal sums of v[0..nc-1] (nc <= 8) into out[0..nc-1]: one hadd tree for all of
 * them instead of a reduction per vector. Integer sums, so the grouping does not matter. */
static inline void hsum_i32_cols(const __m256i *v, int nc, int32_t *out) {
    __m256i z = _mm256_setzero_si256();
    __m256i h01 = _mm256_hadd_epi32(v[0], nc > 1 ? v[1] : z);
    __m256i h23 = nc > 2 ? _mm256_hadd_epi32(v[2], nc > 3 ? v[3] : z) : z;
    __m256i a = _mm256_hadd_epi32(h01, h23);    /* v0..v3: low-lane part | high-lane part */
    if (nc <= 4) {
        __m128i s = _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
        int32_t t[4];
        _mm_storeu_si128((__m128i *)t, s);
        for (int c = 0; c < nc; c++) out[c] = t[c];
        return;
    }
    __m256i h45 = _mm256_hadd_epi32(v[4], nc > 5 ? v[5] : z);
    __m256i h67 = nc > 6 ? _mm256_hadd_epi32(v[6], nc > 7 ? v[7] : z) : z;
    __m256i b = _mm256_hadd_epi32(h45, h67);
    __m256i s = _mm256_add_epi32(_mm256_permute2x128_si256(a, b, 0x20), _mm256_permute2x128_si256(a, b, 0x31));
    int32_t t[8];
    _mm256_storeu_si256((__m256i *)t, s);
    for (int c = 0; c < nc; c++) out[c] = t[c];
}

/* v[i] holds dword j of row i; afterwards v[j] holds dword j of rows 0..7 (8x8 transpose); with 4-byte groups of 8 rows in, v[j] gets group j of
 * every row, the "lanes = rows" layout of the legacy gemm. */
static inline void transpose8_epi32(__m256i v[8]) {
    __m256i t0 = _mm256_unpacklo_epi32(v[0], v[1]), t1 = _mm256_unpackhi_epi32(v[0], v[1]);
    __m256i t2 = _mm256_unpacklo_epi32(v[2], v[3]), t3 = _mm256_unpackhi_epi32(v[2], v[3]);
    __m256i t4 = _mm256_unpacklo_epi32(v[4], v[5]), t5 = _mm256_unpackhi_epi32(v[4], v[5]);
    __m256i t6 = _mm256_unpacklo_epi32(v[6], v[7]), t7 = _mm256_unpackhi_epi32(v[6], v[7]);
    __m256i u0 = _mm256_unpacklo_epi64(t0, t2), u1 = _mm256_unpackhi_epi64(t0, t2);
    __m256i u2 = _mm256_unpacklo_epi64(t1, t3), u3 = _mm256_unpackhi_epi64(t1, t3);
    __m256i u4 = _mm256_unpacklo_epi64(t4, t6), u5 = _mm256_unpackhi_epi64(t4, t6);
    __m256i u6 = _mm256_unpacklo_epi64(t5, t7), u7 = _mm256_unpackhi_epi64(t5, t7);
    v[0] = _mm256_permute2x128_si256(u0, u4, 0x20);
    v[1] = _mm256_permute2x128_si256(u1, u5, 0x20);
    v[2] = _mm256_permute2x128_si256(u2, u6, 0x20);
    v[3] = _mm256_permute2x128_si256(u3, u7, 0x20);
    v[4] = _mm256_permute2x128_si256(u0, u4, 0x31);
    v[5] = _mm256_permute2x128_si256(u1, u5, 0x31);
    v[6] = _mm256_permute2x128_si256(u2, u6, 0x31);
    v[7] = _mm256_permute2x128_si256(u3, u7, 0x31);
}

/* The 4 bytes at p (any alignment) in every dword lane. */
static inline __m256i bcast4(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

/* Q4_0 and Q8_0 against Q8_0 (dot_legacy_avx2.c: dot, dot_multi; gemm_legacy_avx2.c: gemm)
 * share one order of the float operations, so all three give the same bits:
 *   isum_b  the exact integer dot of block b (integers: any order)
 *   s_b     f16(w.d) * f16(a.d), one f32 multiply
 *   c_j     = fma(s_b, (float)isum_b, c_j) for the blocks b = j, j + 4, j + 8, ... in turn,
 *           four chains j = 0..3 starting at 0 (|isum_b| < 2^24, so the conversion is exact)
 *   y       = (c_0 + c_2) + (c_1 + c_3)
 * Four chains because the single dot (generation) would otherwise wait on one FMA latency per
 * block; the gemm keeps one accumulator per chain and token. */
enum { LEGACY_CHAINS = 4 };
static inline float legacy_chains_sum(const float c[LEGACY_CHAINS]) { return (c[0] + c[2]) + (c[1] + c[3]); }

/* Multi-column dots (kernels.h, ll_dot_multi_fn) are written once as a body taking the column
 * count nc, always inlined into one instance per constant count 1..LL_DOT_MULTI_MAX so the
 * per-column accumulators (arrays indexed by unrolled COLS loops) live in registers. */
#define DOT_MULTI_BODY static inline __attribute__((always_inline)) void
#define COLS(c) _Pragma("GCC unroll 8") for (int c = 0; c < nc; c++)

/* The exported ll_dot_multi_fn around BODY(n, w, a, a_stride, nc, out). Counts above the
 * maximum are done in chunks, so any n_cols >= 1 is accepted. */
#define DOT_MULTI_DEFINE(NAME, BODY)                                                        \
    void NAME(int64_t n, const void *w, const void *a, size_t a_stride, int n_cols, float *out) { \
        const uint8_t *ac = a;                                                              \
        for (; n_cols > 0; n_cols -= LL_DOT_MULTI_MAX, ac += LL_DOT_MULTI_MAX * a_stride,    \
                           out += LL_DOT_MULTI_MAX) {                                       \
            switch (n_cols < LL_DOT_MULTI_MAX ? n_cols : LL_DOT_MULTI_MAX) {                \
            case 1: BODY(n, w, ac, a_stride, 1, out); break;                                \
            case 2: BODY(n, w, ac, a_stride, 2, out); break;                                \
            case 3: BODY(n, w, ac, a_stride, 3, out); break;                                \
            case 4: BODY(n, w, ac, a_stride, 4, out); break;                                \
            case 5: BODY(n, w, ac, a_stride, 5, out); break;                                \
            case 6: BODY(n, w, ac, a_stride, 6, out); break;                                \
            case 7: BODY(n, w, ac, a_stride, 7, out); break;                                \
            default: BODY(n, w, ac, a_stride, 8, out); break;                               \
            }                                                                               \
        }                                                                                   \
    }
_Static_assert(LL_DOT_MULTI_MAX == 8, "DOT_MULTI_DEFINE instantiates counts 1..8");

#endif
