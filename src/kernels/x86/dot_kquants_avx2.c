/* kernels/x86: AVX2 dots of the K-quants against Q8_K (gguf-and-quants.md B.4, C.3).
 *
 * Per super-block the whole integer part is computed exactly in i32 lanes (unsigned quants on
 * the unsigned side of maddubs, sub-block scales applied with madd), reduced to one i32, and
 * then scaled and accumulated in the same f32 expression, in the same order, as
 * quant/dot_ref.c. Offsets (Q3_K: 4, Q6_K: 32) and mins come out of the integer sums through
 * the activation's bsums instead of per-element subtraction.
 *
 * 2-bit planes (Q2_K, Q3_K, Q6_K's high bits): a 32-byte load of qs[32*half ..] holds plane p
 * of that half in bits 2p..2p+1, i.e. elements 128*half + 32p + l, which are the two 16-element
 * sub-blocks 8*half + 2p (128-bit lane 0) and 8*half + 2p + 1 (lane 1). */
#include "kernels/x86/kquants_util.h"

float ll_dot_q2_k_avx2(int64_t n, const void *w, const void *a) {
    const uint8_t *wb = w, *ab = a;
    const __m256i m3 = _mm256_set1_epi8(3);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++, wb += Q2_K_BYTES, ab += Q8_K_BYTES) {
        __m128i raw = _mm_loadu_si128((const __m128i *)(wb + Q2_K_SCALES));
        __m128i mins = _mm_and_si128(_mm_srli_epi16(raw, 4), _mm_set1_epi8(15));
        int32_t msum = scales_dot_bsums(mins, ab);
        __m256i s8 = _mm256_broadcastsi128_si256(_mm_and_si128(raw, _mm_set1_epi8(15)));
        __m256i isum = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            __m256i qv = load32(wb + Q2_K_QS + 32 * h);
            for (int p = 0; p < 4; p++) {
                __m256i q = _mm256_and_si256(_mm256_srli_epi16(qv, 2 * p), m3);
                __m256i av = load32(ab + Q8_K_QS + 128 * h + 32 * p);
                __m256i p16 = _mm256_maddubs_epi16(q, av);
                isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p16, scale_pair(s8, 4 * h + p)));
            }
        }
        sum += k4_scale(wb + Q2_K_D, wb + Q2_K_DMIN, ab, hsum_i32(isum), msum);
    }
    return sum;
}

/* Q3_K: q + 4 = low2 | (high bit << 2) is unsigned 0..7; the 4 comes back as 4 * sc_j * bsum_j. */
float ll_dot_q3_k_avx2(int64_t n, const void *w, const void *a) {
    const uint8_t *wb = w, *ab = a;
    const __m256i m3 = _mm256_set1_epi8(3), m1 = _mm256_set1_epi8(1);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++, wb += Q3_K_BYTES, ab += Q8_K_BYTES) {
        __m128i sc = q3_k_scales_vec(wb + Q3_K_SCALES);
        int32_t offs = scales_dot_bsums(sc, ab);
        __m256i s8 = _mm256_broadcastsi128_si256(sc);
        __m256i hm = load32(wb + Q3_K_HMASK);
        __m256i isum = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            __m256i qv = load32(wb + Q3_K_QS + 32 * h);
            for (int p = 0; p < 4; p++) {
                __m256i low = _mm256_and_si256(_mm256_srli_epi16(qv, 2 * p), m3);
                __m256i hb = _mm256_and_si256(_mm256_srli_epi16(hm, 4 * h + p), m1);
                __m256i q = _mm256_or_si256(low, _mm256_slli_epi16(hb, 2));
                __m256i av = load32(ab + Q8_K_QS + 128 * h + 32 * p);
                __m256i p16 = _mm256_maddubs_epi16(q, av);
                isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p16, scale_pair(s8, 4 * h + p)));
            }
        }
        sum += kq_scale_offs(wb + Q3_K_D, ab, hsum_i32(isum), offs, 4);
    }
    return sum;
}

/* Q4_K/Q5_K: one 64-element group, sub-blocks 2g (lo) and 2g+1 (hi) as unsigned quants,
 * against the group's 64 activation bytes aq, each sub-block's sum times its 6-bit scale. */
static inline __m256i k4_group(__m256i lo, __m256i hi, const uint8_t *aq, const uint8_t *sc) {
    __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, load32(aq)), _mm256_set1_epi16(sc[0]));
    __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, load32(aq + 32)), _mm256_set1_epi16(sc[1]));
    return _mm256_add_epi32(p0, p1);
}

/* Q4_K/Q5_K: a super-block's value from its integer parts. */
static inline float k4_block(const uint8_t *d, const uint8_t *dmin, const uint8_t *ab,
                             __m256i isum, int32_t msum) {
    return k4_scale(d, dmin, ab, hsum_i32(isum), msum);
}

/* Q4_K: a super-block's integer sums, the scaled quants' isum as 8 lanes and the min
 * correction's 8 i16 x bsum products as 4 lanes (their totals are k4_scale's isum and msum).
 * 64-element groups g: the low nibbles of qs[32g..] are sub-block 2g, the high nibbles
 * sub-block 2g+1, each one whole vector with one scale. */
static inline __attribute__((always_inline)) __m256i
q4_k_isum(const uint8_t *wb, const uint8_t *ab, __m128i *mprod) {
    const __m256i m15 = _mm256_set1_epi8(15);
    uint8_t sc[8];
    __m128i mins = k4_unpack_scales_mins(wb + Q4_K_SCALES, sc);
    __m128i b0 = _mm_loadu_si128((const __m128i *)(ab + Q8_K_BSUMS));
    __m128i b1 = _mm_loadu_si128((const __m128i *)(ab + Q8_K_BSUMS + 16));
    *mprod = _mm_madd_epi16(_mm_hadd_epi16(b0, b1), mins);   /* as k4_mins_dot_bsums */
    __m256i isum = _mm256_setzero_si256();
    _Pragma("GCC unroll 4")
    for (int g = 0; g < 4; g++) {
        __m256i qv = load32(wb + Q4_K_QS + 32 * g);
        __m256i lo = _mm256_and_si256(qv, m15);
        __m256i hi = _mm256_and_si256(_mm256_srli_epi16(qv, 4), m15);
        isum = _mm256_add_epi32(isum, k4_group(lo, hi, ab + Q8_K_QS + 64 * g, sc + 2 * g));
    }
    return isum;
}

/* The totals of four 8-lane and four 4-lane i32 vectors, one hadd tree each (exact). */
static inline __m128i hsum4_i32(__m256i v0, __m256i v1, __m256i v2, __m256i v3) {
    __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(v0, v1), _mm256_hadd_epi32(v2, v3));
    return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}
static inline __m128i hsum4_i32x4(__m128i v0, __m128i v1, __m128i v2, __m128i v3) {
    return _mm_hadd_epi32(_mm_hadd_epi32(v0, v1), _mm_hadd_epi32(v2, v3));
}

/* Four super-blocks' integer parts are computed before any is reduced, and reduced together:
 * one super-block's reduction and f32 tail is a long latency chain, and with one block at a
 * time the next block's work could not start under it. The f32 sum still takes the blocks in
 * order, each through k4_scale, so the result is unchanged. */
float ll_dot_q4_k_avx2(int64_t n, const void *w, const void *a) {
    const uint8_t *wb = w, *ab = a;
    int64_t nb = n / QK_K, i = 0;
    float sum = 0.0f;
    for (; i + 4 <= nb; i += 4, wb += 4 * Q4_K_BYTES, ab += 4 * Q8_K_BYTES) {
        __m128i m0, m1, m2, m3;
        __m256i v0 = q4_k_isum(wb, ab, &m0);
        __m256i v1 = q4_k_isum(wb + Q4_K_BYTES, ab + Q8_K_BYTES, &m1);
        __m256i v2 = q4_k_isum(wb + 2 * Q4_K_BYTES, ab + 2 * Q8_K_BYTES, &m2);
        __m256i v3 = q4_k_isum(wb + 3 * Q4_K_BYTES, ab + 3 * Q8_K_BYTES, &m3);
        int32_t is[4], ms[4];
        _mm_storeu_si128((__m128i *)is, hsum4_i32(v0, v1, v2, v3));
        _mm_storeu_si128((__m128i *)ms, hsum4_i32x4(m0, m1, m2, m3));
        for (int j = 0; j < 4; j++)
            sum += k4_scale(wb + j * Q4_K_BYTES + Q4_K_D, wb + j * Q4_K_BYTES + Q4_K_DMIN,
                            ab + j * Q8_K_BYTES, is[j], ms[j]);
    }
    for (; i < nb; i++, wb += Q4_K_BYTES, ab += Q8_K_BYTES) {
        __m128i m;
        __m256i v = q4_k_isum(wb, ab, &m);
        __m128i t = hsum4_i32(v, v, v, v), mt = hsum4_i32x4(m, m, m, m);
        sum += k4_scale(wb + Q4_K_D, wb + Q4_K_DMIN, ab, _mm_cvtsi128_si32(t), _mm_cvtsi128_si32(mt));
    }
    return sum;
}

float ll_dot_q5_k_avx2(int64_t n, const void *w, const void *a) {
    const uint8_t *wb = w, *ab = a;
    const __m256i m15 = _mm256_set1_epi8(15), m1 = _mm256_set1_epi8(1);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++, wb += Q5_K_BYTES, ab += Q8_K_BYTES) {
        uint8_t sc[8];
        int32_t msum = k4_scales_mins(wb + Q5_K_SCALES, ab, sc);
        __m256i qh = load32(wb + Q5_K_QH);              /* bit j of qh[l]: element 32j + l */
        __m256i isum = _mm256_setzero_si256();
        for (int g = 0; g < 4; g++) {
            __m256i qv = load32(wb + Q5_K_QS + 32 * g);
            __m256i hlo = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * g), m1);
            __m256i hhi = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * g + 1), m1);
            __m256i lo = _mm256_or_si256(_mm256_and_si256(qv, m15), _mm256_slli_epi16(hlo, 4));
            __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qv, 4), m15),
                                         _mm256_slli_epi16(hhi, 4));
            isum = _mm256_add_epi32(isum, k4_group(lo, hi, ab + Q8_K_QS + 64 * g, sc + 2 * g));
        }
        sum += k4_block(wb + Q5_K_D, wb + Q5_K_DMIN, ab, isum, msum);
    }
    return sum;
}

/* The 8 i16 scales of half h (sub-blocks 8h..8h+7) in both 128-bit lanes, from the 16 scales
 * as i16 (sc16, lanes s0..7 | s8..15); q6_k_scale_pair then picks plane p's pair with one
 * shuffle: lane 0 = s[8h + 2p], lane 1 = s[8h + 2p + 1]. */
static inline __m256i q6_k_scales_half(__m256i sc16, int h) {
    /* two literal immediates: at -O1 (the sanitizer build) a folded `h ? a : b` is not one */
    if (h) return _mm256_permute4x64_epi64(sc16, 0xEE);
    return _mm256_permute4x64_epi64(sc16, 0x44);
}
static inline __attribute__((always_inline)) __m256i q6_k_scale_pair(__m256i s16, int p) {
    const int a = 4 * p, b = 4 * p + 2;    /* byte offsets of s[2p] and s[2p+1] in a lane */
    const __m256i ctrl = _mm256_setr_epi8(a, a + 1, a, a + 1, a, a + 1, a, a + 1, a, a + 1, a, a + 1,
                                          a, a + 1, a, a + 1, b, b + 1, b, b + 1, b, b + 1, b, b + 1,
                                          b, b + 1, b, b + 1, b, b + 1, b, b + 1);
    return _mm256_shuffle_epi8(s16, ctrl);
}

/* Q6_K: q + 32 = low4 | high2 << 4 is unsigned 0..63; the 32 comes back as 32 * sc_j * bsum_j,
 * subtracted in the lanes here (the total is kq_scale_offs's isum - 32 * offs, exactly).
 * Plane p of a half takes its low nibbles from ql[64*half + 32*(p%2) ..] (low for p < 2,
 * high for p >= 2) and its high bits from bits 2p..2p+1 of qh[32*half ..]. */
static inline __attribute__((always_inline)) __m256i q6_k_isum(const uint8_t *wb, const uint8_t *ab) {
    __m128i sc = _mm_loadu_si128((const __m128i *)(wb + Q6_K_SCALES));
    __m256i sc16 = _mm256_cvtepi8_epi16(sc);
    __m256i offs = _mm256_madd_epi16(sc16, load32(ab + Q8_K_BSUMS));
    __m256i isum = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(offs, 5));
    _Pragma("GCC unroll 2")
    for (int h = 0; h < 2; h++) {
        __m256i s16 = q6_k_scales_half(sc16, h);
        __m256i ql0 = load32(wb + Q6_K_QL + 64 * h), ql1 = load32(wb + Q6_K_QL + 64 * h + 32);
        __m256i qhv = load32(wb + Q6_K_QH + 32 * h);
        _Pragma("GCC unroll 4")
        for (int p = 0; p < 4; p++) {
            __m256i q = q6_k_plane(ql0, ql1, qhv, p);
            __m256i p16 = _mm256_maddubs_epi16(q, load32(ab + Q8_K_QS + 128 * h + 32 * p));
            isum = add_i32_chain(isum, _mm256_madd_epi16(p16, q6_k_scale_pair(s16, p)));
        }
    }
    return isum;
}

/* As ll_dot_q4_k_avx2: four super-blocks' integer parts, then one reduction, then the f32
 * tail of each in order. q6_k_isum keeps its sum as a pinned running sum (add_i32_chain):
 * with a plain add GCC evaluated the 8 products of each of the four blocks first and spilled
 * them to the stack (callgrind on bench_kernels batch Q6_K 1: 107 -> 96 instructions per
 * super-block). pf > 0 (the gemv): each group of four first prefetches the weight bytes pf
 * ahead. */
static inline __attribute__((always_inline)) float q6_k_row(int64_t n, const uint8_t *wb, const uint8_t *ab, size_t pf) {
    int64_t nb = n / QK_K, i = 0;
    float sum = 0.0f;
    for (; i + 4 <= nb; i += 4, wb += 4 * Q6_K_BYTES, ab += 4 * Q8_K_BYTES) {
        if (pf)
            _Pragma("GCC unroll 16") for (int l = 0; l < 4 * Q6_K_BYTES; l += 64) _mm_prefetch((const char *)(wb + pf + l), _MM_HINT_T1);
        __m256i v0 = q6_k_isum(wb, ab);
        __m256i v1 = q6_k_isum(wb + Q6_K_BYTES, ab + Q8_K_BYTES);
        __m256i v2 = q6_k_isum(wb + 2 * Q6_K_BYTES, ab + 2 * Q8_K_BYTES);
        __m256i v3 = q6_k_isum(wb + 3 * Q6_K_BYTES, ab + 3 * Q8_K_BYTES);
        int32_t t[4];
        _mm_storeu_si128((__m128i *)t, hsum4_i32(v0, v1, v2, v3));
        for (int j = 0; j < 4; j++)
            sum += (f16_at(wb + j * Q6_K_BYTES + Q6_K_D) * blk_f32(ab + j * Q8_K_BYTES + Q8_K_D)) * (float)t[j];
    }
    for (; i < nb; i++, wb += Q6_K_BYTES, ab += Q8_K_BYTES)
        sum += (f16_at(wb + Q6_K_D) * blk_f32(ab + Q8_K_D)) * (float)hsum_i32(q6_k_isum(wb, ab));
    return sum;
}

float ll_dot_q6_k_avx2(int64_t n, const void *w, const void *a) { return q6_k_row(n, w, a, 0); }

/* ---- Q6_K generation: rows against one token (kernels.h, ll_gemv_fn) -------------------------
 *
 * The rows of [r0, r1) lie one after another, and one dot per row in that order reads them as
 * one sequential stream. Generation streams every weight from memory once per token, and the
 * dot then waits on it: the gemv is the single dot's body (so y[r] is bit-identical to it)
 * with a software prefetch into L2 of the bytes 2 KB ahead of each group of four super-blocks
 * (about ten super-blocks ahead, running into the next rows; into L2 rather than L1, which
 * leaves L1's few line-fill buffers to the loads: a 1 GB product on 2 threads of the AMX
 * Xeon 48.7 -> 43.5-46.5 ms, A B A B). bench_kernels batch Q6_K 1 (one
 * thread, CPU time), against the dot without prefetch: 8192 x 2048 about -20%, 2048 x 8192
 * about -10%; on weights already in L2 it costs about 3%. Running four rows side by side
 * instead (four streams 1.6 KB apart) was a third slower. */
enum { Q6_K_GEMV_PREFETCH = 2048 };

bool ll_gemv_q6_k_avx2(int64_t n_in, const void *w, int64_t r0, int64_t r1, const void *xq, float *y) {
    const size_t rb = (size_t)(n_in / QK_K) * Q6_K_BYTES;
    for (int64_t r = r0; r < r1; r++) y[r] = q6_k_row(n_in, (const uint8_t *)w + (size_t)r * rb, xq, Q6_K_GEMV_PREFETCH);
    return true;
}

/* ---- several activation columns per weight row (kernels.h, ll_dot_multi_fn) ------------------
 *
 * The bodies below are the single dots above with the weight side hoisted out of a loop over
 * the columns: quants unpacked and scales extracted once per super-block, then used for every
 * column c (activation row a + c * as). Per column the integer sums are the same exact values
 * and the f32 expressions are the same, evaluated in the same order, so out[c] is
 * bit-identical to the single dot (tests/kernels compares them with memcmp): a sequence
 * decoded inside a batch gets the logits it gets alone. */

/* Q4_K: the min correction m_j * (bsum_2j + bsum_2j+1) is one madd of the 16 bsums against
 * the mins each repeated twice; the per-column reductions share one hadd tree. */
DOT_MULTI_BODY q4_k_cols(int64_t n, const uint8_t *wb, const uint8_t *a, size_t as, int nc, float *out) {
    const __m256i m15 = _mm256_set1_epi8(15);
    float sum[LL_DOT_MULTI_MAX];
    COLS(c) sum[c] = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++, wb += Q4_K_BYTES, a += Q8_K_BYTES) {
        uint8_t sc[8];
        __m128i mins = k4_unpack_scales_mins(wb + Q4_K_SCALES, sc);
        __m256i isum[LL_DOT_MULTI_MAX];
        COLS(c) isum[c] = _mm256_setzero_si256();
        /* As the gemv (gemv_q4_k_avx2.c): per column the two maddubs of group g (sub-blocks
         * 2g, 2g+1) are folded by one hadd into pair sums (at most 7620: exact in i16), and one
         * madd applies both scales, lane i16 0..3 of each 128-bit half s[2g], 4..7 s[2g+1]. */
        __m256i s16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)sc)));
        _Pragma("GCC unroll 4")
        for (int g = 0; g < 4; g++) {
            __m256i qv = load32(wb + Q4_K_QS + 32 * g);
            __m256i lo = _mm256_and_si256(qv, m15), hi = _mm256_and_si256(_mm256_srli_epi16(qv, 4), m15);
            const char x = (char)(4 * g), y = (char)(4 * g + 2);
            const __m256i ctrl = _mm256_setr_epi8(x, x + 1, x, x + 1, x, x + 1, x, x + 1, y, y + 1, y, y + 1, y, y + 1,
                                                  y, y + 1, x, x + 1, x, x + 1, x, x + 1, x, x + 1, y, y + 1, y, y + 1,
                                                  y, y + 1, y, y + 1);
            __m256i sp = _mm256_shuffle_epi8(s16, ctrl);
            COLS(c) {
                __m256i plo = _mm256_maddubs_epi16(lo, load32(a + c * as + Q8_K_QS + 64 * g));
                __m256i phi = _mm256_maddubs_epi16(hi, load32(a + c * as + Q8_K_QS + 64 * g + 32));
                isum[c] = add_i32_chain(isum[c], _mm256_madd_epi16(_mm256_hadd_epi16(plo, phi), sp));
            }
        }
        int32_t is[LL_DOT_MULTI_MAX], ms[LL_DOT_MULTI_MAX];
        hsum_i32_cols(isum, nc, is);
        __m256i mins2 = _mm256_set_m128i(_mm_unpackhi_epi16(mins, mins), _mm_unpacklo_epi16(mins, mins));
        COLS(c) isum[c] = _mm256_madd_epi16(load32(a + c * as + Q8_K_BSUMS), mins2);
        hsum_i32_cols(isum, nc, ms);
        COLS(c) sum[c] += k4_scale(wb + Q4_K_D, wb + Q4_K_DMIN, a + c * as, is[c], ms[c]);
    }
    COLS(c) out[c] = sum[c];
}
DOT_MULTI_DEFINE(ll_dot_multi_q4_k_avx2, q4_k_cols)

DOT_MULTI_BODY q6_k_cols(int64_t n, const uint8_t *wb, const uint8_t *a, size_t as, int nc, float *out) {
    float sum[LL_DOT_MULTI_MAX];
    COLS(c) sum[c] = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++, wb += Q6_K_BYTES, a += Q8_K_BYTES) {
        __m128i sc = _mm_loadu_si128((const __m128i *)(wb + Q6_K_SCALES));
        __m256i sc16h = _mm256_cvtepi8_epi16(sc);
        __m256i isum[LL_DOT_MULTI_MAX];
        COLS(c) isum[c] = _mm256_setzero_si256();
        _Pragma("GCC unroll 2")
        for (int h = 0; h < 2; h++) {
            __m256i sh = q6_k_scales_half(sc16h, h);
            __m256i ql0 = load32(wb + Q6_K_QL + 64 * h), ql1 = load32(wb + Q6_K_QL + 64 * h + 32);
            __m256i qhv = load32(wb + Q6_K_QH + 32 * h);
            _Pragma("GCC unroll 4")
            for (int p = 0; p < 4; p++) {
                __m256i q = q6_k_plane(ql0, ql1, qhv, p);
                __m256i s16 = q6_k_scale_pair(sh, p);
                COLS(c) {
                    __m256i p16 = _mm256_maddubs_epi16(q, load32(a + c * as + Q8_K_QS + 128 * h + 32 * p));
                    isum[c] = add_i32_chain(isum[c], _mm256_madd_epi16(p16, s16));
                }
            }
        }
        int32_t is[LL_DOT_MULTI_MAX], offs[LL_DOT_MULTI_MAX];
        hsum_i32_cols(isum, nc, is);
        __m256i sc16 = _mm256_cvtepi8_epi16(sc);          /* as scales_dot_bsums */
        COLS(c) isum[c] = _mm256_madd_epi16(sc16, load32(a + c * as + Q8_K_BSUMS));
        hsum_i32_cols(isum, nc, offs);
        COLS(c) sum[c] += kq_scale_offs(wb + Q6_K_D, a + c * as, is[c], offs[c], 32);
    }
    COLS(c) out[c] = sum[c];
}
DOT_MULTI_DEFINE(ll_dot_multi_q6_k_avx2, q6_k_cols)

/* Q5_K: Q4_K with the fifth bit of each quant from qh (bit 2g of qh[l]: sub-block 2g). */
DOT_MULTI_BODY q5_k_cols(int64_t n, const uint8_t *wb, const uint8_t *a, size_t as, int nc, float *out) {
    const __m256i m15 = _mm256_set1_epi8(15), m1 = _mm256_set1_epi8(1);
    float sum[LL_DOT_MULTI_MAX];
    COLS(c) sum[c] = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++, wb += Q5_K_BYTES, a += Q8_K_BYTES) {
        uint8_t sc[8];
        __m128i mins = k4_unpack_scales_mins(wb + Q5_K_SCALES, sc);
        __m256i qh = load32(wb + Q5_K_QH);
        __m256i isum[LL_DOT_MULTI_MAX];
        COLS(c) isum[c] = _mm256_setzero_si256();
        _Pragma("GCC unroll 4")
        for (int g = 0; g < 4; g++) {
            __m256i qv = load32(wb + Q5_K_QS + 32 * g);
            __m256i hlo = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * g), m1);
            __m256i lo = _mm256_or_si256(_mm256_and_si256(qv, m15), _mm256_slli_epi16(hlo, 4));
            __m256i s_lo = _mm256_set1_epi16(sc[2 * g]);
            COLS(c) {
                __m256i p16 = _mm256_maddubs_epi16(lo, load32(a + c * as + Q8_K_QS + 64 * g));
                isum[c] = add_i32_chain(isum[c], _mm256_madd_epi16(p16, s_lo));
            }
            __m256i hhi = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * g + 1), m1);
            __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qv, 4), m15),
                                         _mm256_slli_epi16(hhi, 4));
            __m256i s_hi = _mm256_set1_epi16(sc[2 * g + 1]);
            COLS(c) {
                __m256i p16 = _mm256_maddubs_epi16(hi, load32(a + c * as + Q8_K_QS + 64 * g + 32));
                isum[c] = add_i32_chain(isum[c], _mm256_madd_epi16(p16, s_hi));
            }
        }
        int32_t is[LL_DOT_MULTI_MAX], ms[LL_DOT_MULTI_MAX];
        hsum_i32_cols(isum, nc, is);
        __m256i mins2 = _mm256_set_m128i(_mm_unpackhi_epi16(mins, mins), _mm_unpacklo_epi16(mins, mins));
        COLS(c) isum[c] = _mm256_madd_epi16(load32(a + c * as + Q8_K_BSUMS), mins2);
        hsum_i32_cols(isum, nc, ms);
        COLS(c) sum[c] += k4_scale(wb + Q5_K_D, wb + Q5_K_DMIN, a + c * as, is[c], ms[c]);
    }
    COLS(c) out[c] = sum[c];
}
DOT_MULTI_DEFINE(ll_dot_multi_q5_k_avx2, q5_k_cols)

/* Q2_K and Q3_K: 2-bit planes as in the single dots; per column one maddubs and one madd per
 * plane, and the min (Q2_K) or offset (Q3_K) sums through one hadd tree. */
DOT_MULTI_BODY q2_k_cols(int64_t n, const uint8_t *wb, const uint8_t *a, size_t as, int nc, float *out) {
    const __m256i m3 = _mm256_set1_epi8(3);
    float sum[LL_DOT_MULTI_MAX];
    COLS(c) sum[c] = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++, wb += Q2_K_BYTES, a += Q8_K_BYTES) {
        __m128i raw = _mm_loadu_si128((const __m128i *)(wb + Q2_K_SCALES));
        __m256i s8 = _mm256_broadcastsi128_si256(_mm_and_si128(raw, _mm_set1_epi8(15)));
        __m256i isum[LL_DOT_MULTI_MAX];
        COLS(c) isum[c] = _mm256_setzero_si256();
        _Pragma("GCC unroll 2")
        for (int h = 0; h < 2; h++) {
            __m256i qv = load32(wb + Q2_K_QS + 32 * h);
            _Pragma("GCC unroll 4")
            for (int p = 0; p < 4; p++) {
                __m256i q = _mm256_and_si256(_mm256_srli_epi16(qv, 2 * p), m3);
                __m256i s16 = scale_pair(s8, 4 * h + p);
                COLS(c) {
                    __m256i p16 = _mm256_maddubs_epi16(q, load32(a + c * as + Q8_K_QS + 128 * h + 32 * p));
                    isum[c] = add_i32_chain(isum[c], _mm256_madd_epi16(p16, s16));
                }
            }
        }
        int32_t is[LL_DOT_MULTI_MAX], ms[LL_DOT_MULTI_MAX];
        hsum_i32_cols(isum, nc, is);
        __m256i mins16 = _mm256_cvtepi8_epi16(_mm_and_si128(_mm_srli_epi16(raw, 4), _mm_set1_epi8(15)));
        COLS(c) isum[c] = _mm256_madd_epi16(mins16, load32(a + c * as + Q8_K_BSUMS));
        hsum_i32_cols(isum, nc, ms);
        COLS(c) sum[c] += k4_scale(wb + Q2_K_D, wb + Q2_K_DMIN, a + c * as, is[c], ms[c]);
    }
    COLS(c) out[c] = sum[c];
}
DOT_MULTI_DEFINE(ll_dot_multi_q2_k_avx2, q2_k_cols)

DOT_MULTI_BODY q3_k_cols(int64_t n, const uint8_t *wb, const uint8_t *a, size_t as, int nc, float *out) {
    const __m256i m3 = _mm256_set1_epi8(3), m1 = _mm256_set1_epi8(1);
    float sum[LL_DOT_MULTI_MAX];
    COLS(c) sum[c] = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++, wb += Q3_K_BYTES, a += Q8_K_BYTES) {
        __m128i sc = q3_k_scales_vec(wb + Q3_K_SCALES);
        __m256i s8 = _mm256_broadcastsi128_si256(sc);
        __m256i hm = load32(wb + Q3_K_HMASK);
        __m256i isum[LL_DOT_MULTI_MAX];
        COLS(c) isum[c] = _mm256_setzero_si256();
        _Pragma("GCC unroll 2")
        for (int h = 0; h < 2; h++) {
            __m256i qv = load32(wb + Q3_K_QS + 32 * h);
            _Pragma("GCC unroll 4")
            for (int p = 0; p < 4; p++) {
                __m256i low = _mm256_and_si256(_mm256_srli_epi16(qv, 2 * p), m3);
                __m256i hb = _mm256_and_si256(_mm256_srli_epi16(hm, 4 * h + p), m1);
                __m256i q = _mm256_or_si256(low, _mm256_slli_epi16(hb, 2));
                __m256i s16 = scale_pair(s8, 4 * h + p);
                COLS(c) {
                    __m256i p16 = _mm256_maddubs_epi16(q, load32(a + c * as + Q8_K_QS + 128 * h + 32 * p));
                    isum[c] = add_i32_chain(isum[c], _mm256_madd_epi16(p16, s16));
                }
            }
        }
        int32_t is[LL_DOT_MULTI_MAX], offs[LL_DOT_MULTI_MAX];
        hsum_i32_cols(isum, nc, is);
        __m256i sc16 = _mm256_cvtepi8_epi16(sc);
        COLS(c) isum[c] = _mm256_madd_epi16(sc16, load32(a + c * as + Q8_K_BSUMS));
        hsum_i32_cols(isum, nc, offs);
        COLS(c) sum[c] += kq_scale_offs(wb + Q3_K_D, a + c * as, is[c], offs[c], 4);
    }
    COLS(c) out[c] = sum[c];
}
DOT_MULTI_DEFINE(ll_dot_multi_q3_k_avx2, q3_k_cols)
