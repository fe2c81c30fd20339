/* kernels/x86: AVX-512 (F, BW, DQ, VL) dots of Q6_K against Q8_K, single and multi-column
 * (issue 10). Q6_K is the output/embedding type and the attn_v/ffn_down type of half the
 * layers of a Q4_K_M model.
 *
 * The AVX2 version (dot_kquants_avx2.c) works on one 32-quant plane per vector; this one takes
 * two planes (64 quants, four 16-element sub-blocks, one per 128-bit lane), so every maddubs,
 * madd, add and activation load covers twice the elements. The integer sums of a super-block
 * are the same exact values (only grouped differently across lanes), and they go through the
 * same f32 expression (kquants_util.h), so every output is bit-identical to the AVX2 and scalar
 * dots, and a multi-column output to the single dot.
 *
 * Measured on this project's 2-core AVX-512 Xeon (bench/bench_kernels 1024 4096 batch Q6_K 8,
 * AVX2 and AVX-512 interleaved): 8 columns 71-76 ns per (row x token) against 113-120 for
 * AVX2. The same treatment of Q4_K (64 nibbles per vector) measured no faster than AVX2 here
 * (80-95 vs 81-88 ns), so Q4_K keeps its AVX2 kernels. */
#include "kernels/x86/avx512.h"
#include "kernels/x86/kquants_util.h"

static inline __m512i load64(const uint8_t *p) { return _mm512_loadu_si512((const void *)p); }

/* acc + v as a running sum, pinned in a register (as add_i32_chain in avx2_util.h: without it
 * GCC evaluates every product of a multi-column body first and spills them). */
static inline __m512i add_i32_chain512(__m512i acc, __m512i v) {
    acc = _mm512_add_epi32(acc, v);
    __asm__("" : "+v"(acc));
    return acc;
}

/* 512 -> 256 bits, keeping every i32 sum (for the shared hadd trees of avx2_util.h). */
static inline __m256i fold_i32(__m512i v) {
    return _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
}

/* ---- Q6_K ----------------------------------------------------------------------------------- */

/* The 16 signed scales as i16 (a zmm whose low 256 bits hold them), for vpermw. */
static inline __m512i q6k_scales16(__m128i sc8) { return _mm512_castsi256_si512(_mm256_cvtepi8_epi16(sc8)); }

/* i16 index vector: sub-block k0 + lane for each of the four 128-bit lanes. */
static inline __m512i q6k_scale_idx(int k0) {
    const long long one = 0x0001000100010001LL;
    return _mm512_set_epi64((k0 + 3) * one, (k0 + 3) * one, (k0 + 2) * one, (k0 + 2) * one,
                            (k0 + 1) * one, (k0 + 1) * one, k0 * one, k0 * one);
}

/* Half h, plane pair pp (0: planes 0,1; 1: planes 2,3) as unsigned quants q + 32 (0..63):
 * low four bits from ql[64h .. 64h+63] (low nibbles for pp 0, high for pp 1), top two bits
 * from qh[32h ..] bits 4pp + 2·(lane half) .. +1. */
static inline __m512i q6k_pair_quants(const uint8_t *wb, int h, int pp) {
    const __m512i m15 = _mm512_set1_epi8(15), m3 = _mm512_set1_epi8(3);
    __m512i ql = load64(wb + Q6_K_QL + 64 * h);
    __m512i low = _mm512_and_si512(pp ? _mm512_srli_epi16(ql, 4) : ql, m15);
    __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(wb + Q6_K_QH + 32 * h)));
    __m512i shift = _mm512_inserti64x4(_mm512_set1_epi16((short)(4 * pp)), _mm256_set1_epi16((short)(4 * pp + 2)), 1);
    __m512i high = _mm512_and_si512(_mm512_srlv_epi16(qh, shift), m3);
    return _mm512_or_si512(low, _mm512_slli_epi16(high, 4));
}

float ll_dot_q6_k_avx512(int64_t n, const void *w, const void *a) {
    const uint8_t *wb = w, *ab = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++, wb += Q6_K_BYTES, ab += Q8_K_BYTES) {
        __m128i sc = _mm_loadu_si128((const __m128i *)(wb + Q6_K_SCALES));
        int32_t offs = scales_dot_bsums(sc, ab);
        __m512i s16all = q6k_scales16(sc);
        __m512i isum = _mm512_setzero_si512();
        for (int h = 0; h < 2; h++)
            for (int pp = 0; pp < 2; pp++) {
                __m512i q = q6k_pair_quants(wb, h, pp);
                __m512i p16 = _mm512_maddubs_epi16(q, load64(ab + Q8_K_QS + 128 * h + 64 * pp));
                __m512i s16 = _mm512_permutexvar_epi16(q6k_scale_idx(8 * h + 4 * pp), s16all);
                isum = _mm512_add_epi32(isum, _mm512_madd_epi16(p16, s16));
            }
        sum += kq_scale_offs(wb + Q6_K_D, ab, _mm512_reduce_add_epi32(isum), offs, 32);
    }
    return sum;
}

DOT_MULTI_BODY q6_k_cols(int64_t n, const uint8_t *wb, const uint8_t *a, size_t as, int nc, float *out) {
    float sum[LL_DOT_MULTI_MAX];
    COLS(c) sum[c] = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++, wb += Q6_K_BYTES, a += Q8_K_BYTES) {
        __m128i sc = _mm_loadu_si128((const __m128i *)(wb + Q6_K_SCALES));
        __m512i s16all = q6k_scales16(sc);
        __m512i isum[LL_DOT_MULTI_MAX];
        COLS(c) isum[c] = _mm512_setzero_si512();
        _Pragma("GCC unroll 2")
        for (int h = 0; h < 2; h++) {
            _Pragma("GCC unroll 2")
            for (int pp = 0; pp < 2; pp++) {
                __m512i q = q6k_pair_quants(wb, h, pp);
                __m512i s16 = _mm512_permutexvar_epi16(q6k_scale_idx(8 * h + 4 * pp), s16all);
                COLS(c) {
                    __m512i p16 = _mm512_maddubs_epi16(q, load64(a + c * as + Q8_K_QS + 128 * h + 64 * pp));
                    isum[c] = add_i32_chain512(isum[c], _mm512_madd_epi16(p16, s16));
                }
            }
        }
        __m256i half[LL_DOT_MULTI_MAX];
        int32_t is[LL_DOT_MULTI_MAX], offs[LL_DOT_MULTI_MAX];
        COLS(c) half[c] = fold_i32(isum[c]);
        hsum_i32_cols(half, nc, is);
        __m256i sc16 = _mm256_cvtepi8_epi16(sc);
        COLS(c) half[c] = _mm256_madd_epi16(sc16, load32(a + c * as + Q8_K_BSUMS));
        hsum_i32_cols(half, nc, offs);
        COLS(c) sum[c] += kq_scale_offs(wb + Q6_K_D, a + c * as, is[c], offs[c], 32);
    }
    COLS(c) out[c] = sum[c];
}
DOT_MULTI_DEFINE(ll_dot_multi_q6_k_avx512, q6_k_cols)
