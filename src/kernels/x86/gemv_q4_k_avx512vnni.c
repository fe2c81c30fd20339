/* kernels/x86: Q4_K rows against one Q8_K token with AVX-512 VNNI, for generation
 * (kernels.h, ll_gemv_fn); the AVX2 version's structure (gemv_q4_k_avx2.c): four rows side by
 * side, the next four prefetched, k4_scale's f32 expression evaluated for the four rows at
 * once and added super-block by super-block in order, so y[r] is bit-identical to
 * ll_dot_q4_k_avx2(row r) (tests/kernels).
 *
 * The integer part, exact: per 64-element group g one zmm holds the group's 32 low nibbles
 * (sub-block 2g) and 32 high nibbles (2g+1), against the 64 activation bytes in order; one
 * VPDPBUSD gives 16 partial sums of four products (lanes 0..7 of sub-block 2g, 8..15 of 2g+1,
 * each at most 4 x 15 x 127 = 7620 in size, so it is its own low i16), and one VPDPWSSD
 * against the sub-block scales in the low i16 of each lane multiplies and adds them to the
 * row's running sum. Measured (A B A B, 2 threads): a 691 MB product 44.0/44.7 -> 40.4/40.9 ms,
 * 3B Q4_K_M tg64 8.33/8.43/8.60 -> 8.57/8.57/8.96 t/s; per thread it still reads only about
 * half of what the memory gives, so the limit is elsewhere (latency of the four interleaved
 * row streams, the per-super-block scale unpacking). */
#include "kernels/x86/avx512.h"
#include "kernels/x86/kquants_util.h"

enum { GEMV_ROWS = 4 };

static inline __attribute__((always_inline)) __m512i
q4_k_sb512(const uint8_t *wb, const uint8_t *ab, __m128i pairs, __m128i *mprod) {
    uint32_t a = blk_u32(wb + Q4_K_SCALES), b = blk_u32(wb + Q4_K_SCALES + 4), c = blk_u32(wb + Q4_K_SCALES + 8);
    uint32_t sc_lo = a & 0x3F3F3F3Fu, m_lo = b & 0x3F3F3F3Fu;
    uint32_t sc_hi = (c & 0x0F0F0F0Fu) | ((a >> 2) & 0x30303030u);
    uint32_t m_hi = ((c >> 4) & 0x0F0F0F0Fu) | ((b >> 2) & 0x30303030u);
    *mprod = _mm_madd_epi16(pairs, _mm_cvtepu8_epi16(_mm_set_epi32(0, 0, (int)m_hi, (int)m_lo)));
    const __m512i sc32 = _mm512_broadcast_i64x4(_mm256_cvtepu8_epi32(_mm_set_epi32(0, 0, (int)sc_hi, (int)sc_lo)));
    const __m512i m15 = _mm512_set1_epi8(15);
    const __mmask64 upper = 0xFFFFFFFF00000000ull;
    __m512i isum = _mm512_setzero_si512();
    _Pragma("GCC unroll 4")
    for (int g = 0; g < 4; g++) {
        const __m512i qv = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(wb + Q4_K_QS + 32 * g)));
        const __m512i q = _mm512_and_si512(_mm512_mask_blend_epi8(upper, qv, _mm512_srli_epi16(qv, 4)), m15);
        const __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q, _mm512_loadu_si512((const void *)(ab + Q8_K_QS + 64 * g)));
        const __m512i idx = _mm512_setr_epi32(2 * g, 2 * g, 2 * g, 2 * g, 2 * g, 2 * g, 2 * g, 2 * g, 2 * g + 1, 2 * g + 1,
                                              2 * g + 1, 2 * g + 1, 2 * g + 1, 2 * g + 1, 2 * g + 1, 2 * g + 1);
        isum = _mm512_dpwssd_epi32(isum, p, _mm512_permutexvar_epi32(idx, sc32));
    }
    return isum;
}

static inline __m128i hsum4_512(__m512i v0, __m512i v1, __m512i v2, __m512i v3) {
    __m256i a0 = _mm256_add_epi32(_mm512_castsi512_si256(v0), _mm512_extracti64x4_epi64(v0, 1));
    __m256i a1 = _mm256_add_epi32(_mm512_castsi512_si256(v1), _mm512_extracti64x4_epi64(v1, 1));
    __m256i a2 = _mm256_add_epi32(_mm512_castsi512_si256(v2), _mm512_extracti64x4_epi64(v2, 1));
    __m256i a3 = _mm256_add_epi32(_mm512_castsi512_si256(v3), _mm512_extracti64x4_epi64(v3, 1));
    __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(a0, a1), _mm256_hadd_epi32(a2, a3));
    return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

#define GROWS(r) _Pragma("GCC unroll 4") for (int r = 0; r < nr; r++)

static inline __attribute__((always_inline)) void
q4_k_rows512(int nr, int64_t nb, const uint8_t *w, size_t rb, const uint8_t *a, float *y, const uint8_t *pf) {
    __m128 sum = _mm_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *ab = a + (size_t)i * Q8_K_BYTES, *wb = w + (size_t)i * Q4_K_BYTES;
        if (pf) {
            const uint8_t *p = pf + (size_t)i * GEMV_ROWS * Q4_K_BYTES;
            for (int o = 0; o < GEMV_ROWS * Q4_K_BYTES; o += 64) _mm_prefetch((const char *)(p + o), _MM_HINT_T0);
        }
        __m128i b0 = _mm_loadu_si128((const __m128i *)(ab + Q8_K_BSUMS));
        __m128i b1 = _mm_loadu_si128((const __m128i *)(ab + Q8_K_BSUMS + 16));
        __m128i pairs = _mm_hadd_epi16(b0, b1);
        __m512i is[GEMV_ROWS];
        __m128i ms[GEMV_ROWS];
        uint16_t dh[2 * GEMV_ROWS] = { 0 };
        GROWS(r) {
            const uint8_t *wr = wb + (size_t)r * rb;
            is[r] = q4_k_sb512(wr, ab, pairs, &ms[r]);
            dh[r] = blk_u16(wr + Q4_K_D);
            dh[GEMV_ROWS + r] = blk_u16(wr + Q4_K_DMIN);
        }
        for (int r = nr; r < GEMV_ROWS; r++) { is[r] = is[0]; ms[r] = ms[0]; }
        __m128i isv = hsum4_512(is[0], is[1], is[2], is[3]);
        __m128i msv = _mm_hadd_epi32(_mm_hadd_epi32(ms[0], ms[1]), _mm_hadd_epi32(ms[2], ms[3]));
        __m128 dd = _mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)dh));
        __m128 dm = _mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)(dh + GEMV_ROWS)));
        __m128 ad = _mm_set1_ps(blk_f32(ab + Q8_K_D));
        __m128 v = _mm_sub_ps(_mm_mul_ps(_mm_mul_ps(dd, ad), _mm_cvtepi32_ps(isv)),
                              _mm_mul_ps(_mm_mul_ps(dm, ad), _mm_cvtepi32_ps(msv)));
        sum = _mm_add_ps(sum, v);
    }
    float out[GEMV_ROWS];
    _mm_storeu_ps(out, sum);
    GROWS(r) y[r] = out[r];
}

bool ll_gemv_q4_k_avx512vnni(int64_t n_in, const void *w, int64_t r0, int64_t r1, const void *xq, float *y) {
    const int64_t nb = n_in / QK_K;
    const size_t rb = (size_t)nb * Q4_K_BYTES;
    const uint8_t *wb = w;
    int64_t r = r0;
    for (; r + GEMV_ROWS <= r1; r += GEMV_ROWS)
        q4_k_rows512(GEMV_ROWS, nb, wb + (size_t)r * rb, rb, xq, y + r,
                     r + 2 * GEMV_ROWS <= r1 ? wb + (size_t)(r + GEMV_ROWS) * rb : NULL);
    switch (r1 - r) {
    case 3: q4_k_rows512(3, nb, wb + (size_t)r * rb, rb, xq, y + r, NULL); break;
    case 2: q4_k_rows512(2, nb, wb + (size_t)r * rb, rb, xq, y + r, NULL); break;
    case 1: q4_k_rows512(1, nb, wb + (size_t)r * rb, rb, xq, y + r, NULL); break;
    default: break;
    }
    return true;
}
