/* kernels/x86: AVX2 Q4_K rows against one Q8_K token, for generation (kernels.h, ll_gemv_fn).
 *
 * The single dot (dot_kquants_avx2.c) spends per 32-element sub-block one maddubs and one
 * madd (the sub-block scale), and both run on the one integer-multiply pipe of Zen 1, where a
 * 256-bit op takes it for two cycles. Here the two maddubs of a 64-element group (sub-blocks
 * 2g and 2g+1) are folded by one hadd into a vector whose 128-bit lanes hold four pair sums of
 * each sub-block, and a single madd applies both scales: 3 multiplies per 64 elements instead
 * of 4 (the hadd's shuffles and add run on the other pipes). Pair sums are at most
 * 2 * 2 * 15 * 127 = 7620, so the i16 hadd is exact.
 *
 * GEMV_ROWS rows run side by side: they share the token's loads and its bsum pair sums (the
 * min correction's activation side), and their four super-block reductions share one hadd
 * tree (the accumulations are pinned with add_i32_chain: GCC otherwise builds a tree of
 * products per row and spills them). The f32 tail of the four rows is one 4-lane evaluation
 * of k4_scale's expression, (d * a.d) * isum - (dmin * a.d) * msum, added to each row's sum
 * super-block by super-block in order (-std=c11: no contraction into FMA), so y[r] is bit-identical to
 * ll_dot_q4_k_avx2(row r); tests/kernels (test_gemv_bit_identical) compares them with memcmp.
 * Rows run super-block by super-block, so four rows are four interleaved streams rb apart,
 * which the hardware prefetcher follows worse than the single dot's one sequential stream
 * (short rows: 2 threads, 8192 x 2048, were ~25% slower than the dot without help). Four
 * rows are one contiguous block, so each pass prefetches the block after the next one into
 * L2, a 1/nb share per super-block (into L1 and one block ahead it was ~20% slower on the
 * AMX Xeon: a 691 MB product on 2 threads 37.5 -> 30.3 ms, one thread 74 -> 60 ms, where L1's
 * few line-fill buffers then serve the loads alone). Prefetching within each row, a few
 * super-blocks ahead, measured no better than none. */
#include "kernels/x86/kquants_util.h"

enum { GEMV_ROWS = 4 };

#define GROWS(r) _Pragma("GCC unroll 4") for (int r = 0; r < nr; r++)

/* Row r's super-block integer parts: the scaled quants' sum as 8 i32 lanes and the min
 * products as 4 (their totals are k4_scale's isum and msum). pairs: the token's 8
 * 32-element bsums (bsum_2j + bsum_2j+1) as i16. */
static inline __attribute__((always_inline)) __m256i
q4_k_sb(const uint8_t *wb, const uint8_t *ab, __m128i pairs, __m128i *mprod) {
    const __m256i m15 = _mm256_set1_epi8(15);
    uint32_t a = blk_u32(wb + Q4_K_SCALES), b = blk_u32(wb + Q4_K_SCALES + 4), c = blk_u32(wb + Q4_K_SCALES + 8);
    uint32_t sc_lo = a & 0x3F3F3F3Fu, m_lo = b & 0x3F3F3F3Fu;
    uint32_t sc_hi = (c & 0x0F0F0F0Fu) | ((a >> 2) & 0x30303030u);
    uint32_t m_hi = ((c >> 4) & 0x0F0F0F0Fu) | ((b >> 2) & 0x30303030u);
    *mprod = _mm_madd_epi16(pairs, _mm_cvtepu8_epi16(_mm_set_epi32(0, 0, (int)m_hi, (int)m_lo)));
    __m256i s16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_set_epi32(0, 0, (int)sc_hi, (int)sc_lo)));
    __m256i isum = _mm256_setzero_si256();
    _Pragma("GCC unroll 4")
    for (int g = 0; g < 4; g++) {
        __m256i qv = load32(wb + Q4_K_QS + 32 * g);
        __m256i lo = _mm256_and_si256(qv, m15);
        __m256i hi = _mm256_and_si256(_mm256_srli_epi16(qv, 4), m15);
        __m256i plo = _mm256_maddubs_epi16(lo, load32(ab + Q8_K_QS + 64 * g));
        __m256i phi = _mm256_maddubs_epi16(hi, load32(ab + Q8_K_QS + 64 * g + 32));
        /* per 128-bit lane: i16 0..3 pair sums of sub-block 2g, 4..7 of sub-block 2g+1 */
        __m256i h = _mm256_hadd_epi16(plo, phi);
        const char x = (char)(4 * g), y = (char)(4 * g + 2);
        const __m256i ctrl = _mm256_setr_epi8(x, x + 1, x, x + 1, x, x + 1, x, x + 1, y, y + 1, y, y + 1, y, y + 1,
                                              y, y + 1, x, x + 1, x, x + 1, x, x + 1, x, x + 1, y, y + 1, y, y + 1,
                                              y, y + 1, y, y + 1);
        isum = add_i32_chain(isum, _mm256_madd_epi16(h, _mm256_shuffle_epi8(s16, ctrl)));
    }
    return isum;
}

/* The totals of four 8-lane i32 vectors, one hadd tree (exact). */
static inline __m128i gemv_hsum4(__m256i v0, __m256i v1, __m256i v2, __m256i v3) {
    __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(v0, v1), _mm256_hadd_epi32(v2, v3));
    return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

/* nr (1..GEMV_ROWS) rows at w, rb apart, against the token at a: y[r] = dot(row r, a). */
static inline __attribute__((always_inline)) void
q4_k_rows(int nr, int64_t nb, const uint8_t *w, size_t rb, const uint8_t *a, float *y, const uint8_t *pf) {
    __m128 sum = _mm_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *ab = a + (size_t)i * Q8_K_BYTES, *wb = w + (size_t)i * Q4_K_BYTES;
        if (pf) {       /* the rows after the next GEMV_ROWS (contiguous) into L2, a 1/nb share per super-block */
            const uint8_t *p = pf + (size_t)i * GEMV_ROWS * Q4_K_BYTES;
            for (int o = 0; o < GEMV_ROWS * Q4_K_BYTES; o += 64) _mm_prefetch((const char *)(p + o), _MM_HINT_T1);
        }
        __m128i b0 = _mm_loadu_si128((const __m128i *)(ab + Q8_K_BSUMS));
        __m128i b1 = _mm_loadu_si128((const __m128i *)(ab + Q8_K_BSUMS + 16));
        __m128i pairs = _mm_hadd_epi16(b0, b1);              /* bsum_2j + bsum_2j+1, j = 0..7 */
        __m256i is[GEMV_ROWS];
        __m128i ms[GEMV_ROWS];
        uint16_t dh[2 * GEMV_ROWS] = { 0 };
        GROWS(r) {
            const uint8_t *wr = wb + (size_t)r * rb;
            is[r] = q4_k_sb(wr, ab, pairs, &ms[r]);
            dh[r] = blk_u16(wr + Q4_K_D);
            dh[GEMV_ROWS + r] = blk_u16(wr + Q4_K_DMIN);
        }
        for (int r = nr; r < GEMV_ROWS; r++) { is[r] = is[0]; ms[r] = ms[0]; }
        __m128i isv = gemv_hsum4(is[0], is[1], is[2], is[3]);
        __m128i msv = _mm_hadd_epi32(_mm_hadd_epi32(ms[0], ms[1]), _mm_hadd_epi32(ms[2], ms[3]));
        sum = _mm_add_ps(sum, k4_scale4(dh, ab, isv, msv));
    }
    float out[GEMV_ROWS];
    _mm_storeu_ps(out, sum);
    GROWS(r) y[r] = out[r];
}

bool ll_gemv_q4_k_avx2(int64_t n_in, const void *w, int64_t r0, int64_t r1, const void *xq, float *y) {
    const int64_t nb = n_in / QK_K;
    const size_t rb = (size_t)nb * Q4_K_BYTES;
    const uint8_t *wb = w;
    int64_t r = r0;
    for (; r + GEMV_ROWS <= r1; r += GEMV_ROWS)
        q4_k_rows(GEMV_ROWS, nb, wb + (size_t)r * rb, rb, xq, y + r,
                  r + 3 * GEMV_ROWS <= r1 ? wb + (size_t)(r + 2 * GEMV_ROWS) * rb : NULL);
    switch (r1 - r) {
    case 3: q4_k_rows(3, nb, wb + (size_t)r * rb, rb, xq, y + r, NULL); break;
    case 2: q4_k_rows(2, nb, wb + (size_t)r * rb, rb, xq, y + r, NULL); break;
    case 1: q4_k_rows(1, nb, wb + (size_t)r * rb, rb, xq, y + r, NULL); break;
    default: break;
    }
    return true;
}
