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
 * 3B Q4_K_M tg64 8.33/8.43/8.60 -> 8.57/8.57/8.96 t/s. Then the scale unpacking of the four
 * rows in one zmm, the activations re-ordered once per call so one 64-byte load of nibbles
 * feeds two VPDPBUSD (about 40% fewer instructions per super-block: 38.5 vs 39.4 ms, the
 * limit being memory latency, not work), and the prefetch of gemv_q4_k_avx2.c into L2 two
 * blocks ahead (37.5 -> 30.3 ms, 22.8 GB/s against membw's 23.5). */
#include "kernels/x86/avx512.h"
#include "kernels/x86/kquants_util.h"

#include <stdlib.h>

enum { GEMV_ROWS = 4, PAIRED_BYTES = 256 };

/* The token's quants re-ordered once per call so that one 64-byte load of weight nibbles
 * meets its activations: per super-block and half h, [a(4h) | a(4h+2)] then [a(4h+1) |
 * a(4h+3)] (a(j): sub-block j's 32 bytes), the order of the low and high nibbles of qs bytes
 * 64h..64h+63. */
static void act_pairs(const uint8_t *a, int64_t nb, uint8_t *out) {
    static const int order[8] = { 0, 2, 1, 3, 4, 6, 5, 7 };
    for (int64_t i = 0; i < nb; i++)
        for (int k = 0; k < 8; k++)
            memcpy(out + (size_t)i * PAIRED_BYTES + 32 * k, a + (size_t)i * Q8_K_BYTES + Q8_K_QS + 32 * order[k], 32);
}

/* The 12 scale bytes of four rows' super-blocks unpacked at once (the AVX2 k4 scale
 * unpacking, one 128-bit lane per row): lane r = row r's 8 six-bit scales (low qword), then
 * its 8 six-bit mins (high qword). */
static inline __m512i scales4(const uint8_t *w0, const uint8_t *w1, const uint8_t *w2, const uint8_t *w3) {
    __m512i v = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(w0 + Q4_K_SCALES)));
    v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(w1 + Q4_K_SCALES)), 1);
    v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(w2 + Q4_K_SCALES)), 2);
    v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(w3 + Q4_K_SCALES)), 3);
    /* dwords per lane: a = bytes 0-3, b = 4-7, c = 8-11 */
    const __m512i lo6 = _mm512_and_si512(v, _mm512_set1_epi8(0x3F));                 /* sc 0-3, m 0-3 */
    const __m512i cc = _mm512_shuffle_epi32(v, _MM_PERM_CCCC);
    const __m512i ab = _mm512_shuffle_epi32(v, _MM_PERM_BABA);
    const __m512i low4 = _mm512_and_si512(_mm512_srlv_epi32(cc, _mm512_setr_epi32(0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0, 4)),
                                          _mm512_set1_epi8(0x0F));
    const __m512i hi = _mm512_or_si512(low4, _mm512_and_si512(_mm512_srli_epi32(ab, 2), _mm512_set1_epi8(0x30)));
    const __m512i sm = _mm512_mask_blend_epi32(0xCCCC, lo6, hi);          /* sc 0-3, m 0-3, sc 4-7, m 4-7 */
    return _mm512_shuffle_epi32(sm, _MM_PERM_DBCA);                        /* sc 0-7, m 0-7 */
}

/* One row's super-block: its 8 sub-block sums scaled by their scales, in 16 i32 lanes. */
static inline __attribute__((always_inline)) __m512i
q4_k_sb512(const uint8_t *wb, const uint8_t *ap, __m128i scales) {
    const __m512i sc = _mm512_castsi256_si512(_mm256_cvtepu8_epi32(scales));     /* lanes 0-7 */
    const __m512i m15 = _mm512_set1_epi8(15);
    __m512i isum = _mm512_setzero_si512();
    _Pragma("GCC unroll 2")
    for (int h = 0; h < 2; h++) {
        const __m512i v = _mm512_loadu_si512((const void *)(wb + Q4_K_QS + 64 * h));
        const __m512i pl = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_and_si512(v, m15),
                                               _mm512_load_si512((const void *)(ap + 128 * h)));
        const __m512i ph = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_and_si512(_mm512_srli_epi16(v, 4), m15),
                                               _mm512_load_si512((const void *)(ap + 128 * h + 64)));
        const int j = 4 * h;
        isum = _mm512_dpwssd_epi32(isum, pl, _mm512_permutexvar_epi32(
            _mm512_setr_epi32(j, j, j, j, j, j, j, j, j + 2, j + 2, j + 2, j + 2, j + 2, j + 2, j + 2, j + 2), sc));
        isum = _mm512_dpwssd_epi32(isum, ph, _mm512_permutexvar_epi32(
            _mm512_setr_epi32(j + 1, j + 1, j + 1, j + 1, j + 1, j + 1, j + 1, j + 1, j + 3, j + 3, j + 3, j + 3, j + 3, j + 3,
                              j + 3, j + 3), sc));
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

/* Rows w, w + rb, .. (nr <= 4; missing rows repeat the last, their results dropped). */
static inline __attribute__((always_inline)) void
q4_k_rows512(int nr, int64_t nb, const uint8_t *w, size_t rb, const uint8_t *a, const uint8_t *ap, float *y,
             const uint8_t *pf) {
    const uint8_t *row[GEMV_ROWS];
    for (int r = 0; r < GEMV_ROWS; r++) row[r] = w + (size_t)(r < nr ? r : nr - 1) * rb;
    __m128 sum = _mm_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *ab = a + (size_t)i * Q8_K_BYTES, *api = ap + (size_t)i * PAIRED_BYTES;
        const size_t o = (size_t)i * Q4_K_BYTES;
        if (pf) {
            const uint8_t *p = pf + (size_t)i * GEMV_ROWS * Q4_K_BYTES;
            for (int q = 0; q < GEMV_ROWS * Q4_K_BYTES; q += 64) _mm_prefetch((const char *)(p + q), _MM_HINT_T1);
        }
        const __m512i sm = scales4(row[0] + o, row[1] + o, row[2] + o, row[3] + o);
        const __m128i sml[GEMV_ROWS] = { _mm512_castsi512_si128(sm), _mm512_extracti32x4_epi32(sm, 1),
                                         _mm512_extracti32x4_epi32(sm, 2), _mm512_extracti32x4_epi32(sm, 3) };
        __m512i is[GEMV_ROWS];
        _Pragma("GCC unroll 4")
        for (int r = 0; r < GEMV_ROWS; r++) is[r] = q4_k_sb512(row[r] + o, api, sml[r]);
        /* mins: row r's 8 against the 8 sub-block sums of the activations, in lane r */
        const __m128i pairs = _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)(ab + Q8_K_BSUMS)),
                                             _mm_loadu_si128((const __m128i *)(ab + Q8_K_BSUMS + 16)));
        const __m512i mins = _mm512_cvtepu8_epi16(_mm512_castsi512_si256(
            _mm512_permutexvar_epi64(_mm512_setr_epi64(1, 3, 5, 7, 1, 3, 5, 7), sm)));
        __m512i mp = _mm512_madd_epi16(mins, _mm512_broadcast_i32x4(pairs));
        mp = _mm512_add_epi32(mp, _mm512_shuffle_epi32(mp, _MM_PERM_BADC));
        mp = _mm512_add_epi32(mp, _mm512_shuffle_epi32(mp, _MM_PERM_CDAB));
        const __m128i msv = _mm512_castsi512_si128(_mm512_permutexvar_epi32(
            _mm512_setr_epi32(0, 4, 8, 12, 0, 4, 8, 12, 0, 4, 8, 12, 0, 4, 8, 12), mp));
        const __m128i isv = hsum4_512(is[0], is[1], is[2], is[3]);
        uint16_t dh[2 * GEMV_ROWS];
        for (int r = 0; r < GEMV_ROWS; r++) {
            dh[r] = blk_u16(row[r] + o + Q4_K_D);
            dh[GEMV_ROWS + r] = blk_u16(row[r] + o + Q4_K_DMIN);
        }
        sum = _mm_add_ps(sum, k4_scale4(dh, ab, isv, msv));
    }
    float out[GEMV_ROWS];
    _mm_storeu_ps(out, sum);
    for (int r = 0; r < nr; r++) y[r] = out[r];
}

bool ll_gemv_q4_k_avx512vnni(int64_t n_in, const void *w, int64_t r0, int64_t r1, const void *xq, float *y) {
    const int64_t nb = n_in / QK_K;
    const size_t rb = (size_t)nb * Q4_K_BYTES;
    const uint8_t *wb = w;
    uint8_t *ap = aligned_alloc(64, (size_t)(nb > 0 ? nb : 1) * PAIRED_BYTES);
    if (!ap) return false;
    act_pairs(xq, nb, ap);
    int64_t r = r0;
    for (; r + GEMV_ROWS <= r1; r += GEMV_ROWS)
        q4_k_rows512(GEMV_ROWS, nb, wb + (size_t)r * rb, rb, xq, ap, y + r,
                     r + 3 * GEMV_ROWS <= r1 ? wb + (size_t)(r + 2 * GEMV_ROWS) * rb : NULL);
    switch (r1 - r) {
    case 3: q4_k_rows512(3, nb, wb + (size_t)r * rb, rb, xq, ap, y + r, NULL); break;
    case 2: q4_k_rows512(2, nb, wb + (size_t)r * rb, rb, xq, ap, y + r, NULL); break;
    case 1: q4_k_rows512(1, nb, wb + (size_t)r * rb, rb, xq, ap, y + r, NULL); break;
    default: break;
    }
    free(ap);
    return true;
}
