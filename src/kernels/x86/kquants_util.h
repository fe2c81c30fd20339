/* kernels/x86: the K-quant helpers shared by the AVX2 and AVX-512 dot files (scale unpacking,
 * the min and offset corrections through the activation's bsums, and the one f32 expression
 * that turns a super-block's integer sums into its value). Only for files built with AVX2 or
 * wider: the helpers use AVX2 intrinsics. */
#ifndef LL_KERNELS_X86_KQUANTS_UTIL_H
#define LL_KERNELS_X86_KQUANTS_UTIL_H

#include "kernels/x86/avx2_util.h"

#include <string.h>

/* i16 scale vector for a 32-element plane: lane 0 = s[2k], lane 1 = s[2k+1], from the 16
 * signed byte scales s broadcast to both lanes. Each byte is copied into both halves of its
 * i16, then an arithmetic shift sign-extends it. */
static inline __m256i scale_pair(__m256i s8x2, int k) {
    __m256i ctrl = _mm256_set_m128i(_mm_set1_epi8((char)(2 * k + 1)), _mm_set1_epi8((char)(2 * k)));
    return _mm256_srai_epi16(_mm256_shuffle_epi8(s8x2, ctrl), 8);
}

/* sum_j s_j * bsum_j over the 16 sub-blocks: signed byte scales against the activation's
 * i16 block sums. */
static inline int32_t scales_dot_bsums(__m128i s8, const uint8_t *ab) {
    __m256i s16 = _mm256_cvtepi8_epi16(s8);
    __m256i bs = _mm256_loadu_si256((const __m256i *)(ab + Q8_K_BSUMS));
    return hsum_i32(_mm256_madd_epi16(s16, bs));
}

/* Q3_K: the 16 signed scales (B.4) as bytes. Words of bytes 0-3 and 4-7 give the low nibbles
 * of scales 0-7 (low) and 8-15 (high); bytes 8-11 give the top two bits, scales 4k..4k+3 in
 * bits 2k..2k+1. */
static inline __m128i q3_k_scales_vec(const uint8_t *s) {
    uint32_t a0 = blk_u32(s), a1 = blk_u32(s + 4), c = blk_u32(s + 8);
    const uint32_t m4 = 0x0F0F0F0Fu, m2 = 0x03030303u;
    __m128i v = _mm_setr_epi32((int)((a0 & m4) | (c & m2) << 4),
                               (int)((a1 & m4) | ((c >> 2) & m2) << 4),
                               (int)(((a0 >> 4) & m4) | ((c >> 4) & m2) << 4),
                               (int)(((a1 >> 4) & m4) | ((c >> 6) & m2) << 4));
    return _mm_sub_epi8(v, _mm_set1_epi8(32));
}

/* Q4_K / Q5_K: the 8 scales and 8 mins (B.4 packing) four bytes at a time: with words a, b, c
 * of bytes 0-3, 4-7, 8-11, scales 0-3 = a & 63, mins 0-3 = b & 63, scales 4-7 = low nibbles of
 * c | top two bits of a moved to bits 4-5, mins 4-7 = high nibbles of c | top bits of b. The
 * scales go to sc, the mins come back as 8 i16; k4_scales_mins also returns
 * sum_j m_j * (bsum_2j + bsum_2j+1), the integer part of the min correction. */
static inline __m128i k4_unpack_scales_mins(const uint8_t *s, uint8_t sc[8]) {
    uint32_t a = blk_u32(s), b = blk_u32(s + 4), c = blk_u32(s + 8);
    uint32_t sc_lo = a & 0x3F3F3F3Fu, m_lo = b & 0x3F3F3F3Fu;
    uint32_t sc_hi = (c & 0x0F0F0F0Fu) | ((a >> 2) & 0x30303030u);
    uint32_t m_hi = ((c >> 4) & 0x0F0F0F0Fu) | ((b >> 2) & 0x30303030u);
    memcpy(sc, &sc_lo, 4);
    memcpy(sc + 4, &sc_hi, 4);
    return _mm_cvtepu8_epi16(_mm_set_epi32(0, 0, (int)m_hi, (int)m_lo));
}

/* sum_j m_j * (bsum_2j + bsum_2j+1) for the 8 i16 mins from k4_unpack_scales_mins. */
static inline int32_t k4_mins_dot_bsums(__m128i mins, const uint8_t *ab) {
    __m128i b0 = _mm_loadu_si128((const __m128i *)(ab + Q8_K_BSUMS));
    __m128i b1 = _mm_loadu_si128((const __m128i *)(ab + Q8_K_BSUMS + 16));
    __m128i pairs = _mm_hadd_epi16(b0, b1);             /* bsum_2j + bsum_2j+1, j = 0..7 */
    __m128i p = _mm_madd_epi16(pairs, mins);
    p = _mm_add_epi32(p, _mm_unpackhi_epi64(p, p));
    p = _mm_add_epi32(p, _mm_shuffle_epi32(p, 0xB1));
    return _mm_cvtsi128_si32(p);
}

static inline int32_t k4_scales_mins(const uint8_t *s, const uint8_t *ab, uint8_t sc[8]) {
    return k4_mins_dot_bsums(k4_unpack_scales_mins(s, sc), ab);
}

/* Q6_K plane p (0..3) of a half as unsigned bytes low4 | high2 << 4: the low nibbles of ql0
 * (p = 0) or ql1 (p = 1), or their high nibbles (p = 2, 3); the high two bits are bits
 * 2p..2p+1 of qh, moved to bits 4..5 with one shift and one mask. */
static inline __attribute__((always_inline)) __m256i q6_k_plane(__m256i ql0, __m256i ql1, __m256i qh, int p) {
    const __m256i m15 = _mm256_set1_epi8(15), m48 = _mm256_set1_epi8(48);
    __m256i src = p % 2 ? ql1 : ql0;
    __m256i low = _mm256_and_si256(p < 2 ? src : _mm256_srli_epi16(src, 4), m15);
    __m256i high = p == 2 ? qh : p < 2 ? _mm256_slli_epi16(qh, 4 - 2 * p) : _mm256_srli_epi16(qh, 2);
    return _mm256_or_si256(low, _mm256_and_si256(high, m48));
}

/* A super-block's value from its integer parts, in quant/dot_ref.c's f32 order: with mins
 * (Q2_K, Q4_K, Q5_K) or with a constant offset folded into the quants (Q3_K: 4, Q6_K: 32).
 * The one f32 expression of the single and the multi-column dots, so both round alike. */
static inline float k4_scale(const uint8_t *d, const uint8_t *dmin, const uint8_t *ab,
                             int32_t isum, int32_t msum) {
    float ad = blk_f32(ab + Q8_K_D);
    return (f16_at(d) * ad) * (float)isum - (f16_at(dmin) * ad) * (float)msum;
}

static inline float kq_scale_offs(const uint8_t *d, const uint8_t *ab, int32_t isum, int32_t offs,
                                  int32_t off) {
    return (f16_at(d) * blk_f32(ab + Q8_K_D)) * (float)(isum - off * offs);
}

/* k4_scale's expression for four rows at once (the Q4_K gemvs), lane r:
 * (d_r * a.d) * isum_r - (dmin_r * a.d) * msum_r, d_r and dmin_r the f16 at dh[r], dh[4 + r]. */
static inline __m128 k4_scale4(const uint16_t dh[8], const uint8_t *ab, __m128i isv, __m128i msv) {
    const __m128 dd = _mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)dh));
    const __m128 dm = _mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)(dh + 4)));
    const __m128 ad = _mm_set1_ps(blk_f32(ab + Q8_K_D));
    return _mm_sub_ps(_mm_mul_ps(_mm_mul_ps(dd, ad), _mm_cvtepi32_ps(isv)),
                      _mm_mul_ps(_mm_mul_ps(dm, ad), _mm_cvtepi32_ps(msv)));
}

#endif
