/* kernels/x86: AVX2 generation products of Q4_0 and Q8_0 weights: rows [r0, r1) against one
 * Q8_0 token (kernels.h, ll_gemv_fn).
 *
 * The single dot (dot_legacy_avx2.c) spends most of its time on work that is the same for
 * every row: the token's f16 scales converted again per row, and for Q4_0 the "- 8" applied to
 * the weights by the sign trick. Here the token is prepared once per call:
 *   da[b]    f16(a.d) of block b as f32,
 *   corr[b]  8 * sum(a over block b) (Q4_0),
 *   for Q4_0 the activation bytes regrouped so that one 256-bit maddubs takes the low (or the
 *            high) nibbles of two blocks, loaded as one 16-byte half each.
 * Two rows then run side by side and share the activation loads and the reduction of their
 * block sums to one i32 per block.
 *
 * Integer sums, exact: Q4_0 multiplies the unsigned nibbles q (0..15) by a; a lane of maddubs
 * is at most 2 * 15 * 127 and the low- and high-nibble lanes add up in i16 (< 32767), then
 * sum(q * a) - corr = sum((q - 8) * a). Q8_0 uses the sign trick (|w| against a with w's sign),
 * widening each block's lanes by madd. Float order: the one in avx2_util.h (LEGACY_CHAINS),
 * with the block products s_b = f16(w.d) * f16(a.d) and four FMA chains by block index per
 * row, so y[r] is bit-identical to the single dot, dot_multi and gemm
 * (tests/kernels: test_gemv_bit_identical). */
#include "kernels/x86/avx2_util.h"

#include <stdlib.h>

enum { GEMV_ROWS = 2 };

static inline __m256i load32(const uint8_t *p) { return _mm256_loadu_si256((const __m256i *)p); }

/* The four f16 weight scales of blocks b .. b + 3 of a row (stride bytes apart) in one u64,
 * lowest block in the low bits; built with scalar loads and shifts, which run beside the
 * vector work. */
static inline uint64_t scales4(const uint8_t *p, size_t stride) {
    return (uint64_t)blk_u16(p) | (uint64_t)blk_u16(p + stride) << 16 | (uint64_t)blk_u16(p + 2 * stride) << 32 |
           (uint64_t)blk_u16(p + 3 * stride) << 48;
}

/* The token, prepared once per call. Per group g of 4 blocks (b = 4g .. 4g + 3):
 *   act[g * 128 ...]  Q4_0: four 32-byte vectors, pair p = 0, 1 holds blocks (4g + p, 4g + p + 2):
 *                     [a_{4g+p}[0..15] | a_{4g+p+2}[0..15]], then the same with [16..31];
 *                     Q8_0: the four blocks' quants in order.
 *   d[g * 4 + j]      f16(a.d) of block 4g + j as f32,
 *   corr[g * 4 + j]   8 * sum(a over block 4g + j) (Q4_0). */
struct gemv_token {
    uint8_t *act;
    float   *d;
    int32_t *corr;
};

static void prep_token(int q4, const uint8_t *x, int64_t nb, struct gemv_token *tk) {
    const __m256i ones8 = _mm256_set1_epi8(1);
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = x + (size_t)b * Q8_0_BYTES;
        tk->d[b] = f16_at(blk + Q8_0_D);
        if (q4) tk->corr[b] = 8 * hsum_i32(mul_sum_u8_i8(ones8, load32(blk + Q8_0_QS)));
    }
    for (int64_t g = 0; g < nb / 4; g++) {
        const uint8_t *x0 = x + (size_t)(4 * g) * Q8_0_BYTES + Q8_0_QS;
        uint8_t *dst = tk->act + (size_t)g * 128;
        if (!q4) {
            for (int j = 0; j < 4; j++) memcpy(dst + 32 * j, x0 + j * Q8_0_BYTES, 32);
            continue;
        }
        for (int p = 0; p < 2; p++) {
            const uint8_t *lo = x0 + p * Q8_0_BYTES, *hi = x0 + (p + 2) * Q8_0_BYTES;
            memcpy(dst + 64 * p, lo, 16);
            memcpy(dst + 64 * p + 16, hi, 16);
            memcpy(dst + 64 * p + 32, lo + 16, 16);
            memcpy(dst + 64 * p + 48, hi + 16, 16);
        }
    }
}

/* One row's group of 4 blocks at w: Q4_0 -> [b0 b0 b1 b1 | b2 b2 b3 b3], two parts of each
 * block's exact sum of q * a (q the unsigned nibbles); one more hadd with another row's
 * finishes both. */
static inline __attribute__((always_inline)) __m256i q4_0_group(const uint8_t *w, const uint8_t *act) {
    const __m256i m4 = _mm256_set1_epi8(15), ones16 = _mm256_set1_epi16(1);
    __m256i v[2];
    _Pragma("GCC unroll 2")
    for (int p = 0; p < 2; p++) {
        const uint8_t *b = w + (size_t)p * Q4_0_BYTES + Q4_0_QS;
        __m256i q = _mm256_loadu2_m128i((const __m128i *)(b + 2 * Q4_0_BYTES), (const __m128i *)b);
        __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
        __m256i s16 = _mm256_add_epi16(_mm256_maddubs_epi16(lo, load32(act + 64 * p)),
                                       _mm256_maddubs_epi16(hi, load32(act + 64 * p + 32)));
        v[p] = _mm256_madd_epi16(s16, ones16);      /* [blk p: 4 parts | blk p + 2: 4 parts] */
    }
    return _mm256_hadd_epi32(v[0], v[1]);
}

/* Q8_0 -> [b0 b1 b2 b3 | b0 b1 b2 b3]: each block's exact sum of w * a in two parts, one per
 * 128-bit half. */
static inline __attribute__((always_inline)) __m256i q8_0_group(const uint8_t *w, const uint8_t *act) {
    const __m256i ones16 = _mm256_set1_epi16(1);
    __m256i v[4];
    _Pragma("GCC unroll 4")
    for (int j = 0; j < 4; j++) {
        __m256i q = load32(w + (size_t)j * Q8_0_BYTES + Q8_0_QS);
        __m256i a = _mm256_sign_epi8(load32(act + 32 * j), q);
        v[j] = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(q), a), ones16);
    }
    return _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
}

/* The exact block sums of a group of 4 blocks for rows w and w + rb (nr = 2; with nr = 1 the
 * upper half repeats row 0): [row 0: b0 b1 b2 b3 | row 1: b0 b1 b2 b3]. */
static inline __attribute__((always_inline)) __m256i
group_isums(int q4, int nr, const uint8_t *w, size_t rb, const uint8_t *act, const int32_t *corr) {
    if (q4) {
        __m256i h0 = q4_0_group(w, act), h1 = nr > 1 ? q4_0_group(w + rb, act) : h0;
        /* [r0 b0, r0 b1, r1 b0, r1 b1 | r0 b2, r0 b3, r1 b2, r1 b3] -> one row per half */
        __m256i is = _mm256_permute4x64_epi64(_mm256_hadd_epi32(h0, h1), 0xD8);
        return _mm256_sub_epi32(is, _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)corr)));
    }
    __m256i h0 = q8_0_group(w, act), h1 = nr > 1 ? q8_0_group(w + rb, act) : h0;
    return _mm256_add_epi32(_mm256_permute2x128_si256(h0, h1, 0x20), _mm256_permute2x128_si256(h0, h1, 0x31));
}

/* nr (1 or 2) rows from w (rb bytes apart) against the prepared token x: y[0 .. nr - 1]. */
static inline __attribute__((always_inline)) void
legacy_rows(int q4, int nr, int64_t nb, const uint8_t *w, size_t rb, const uint8_t *x, const struct gemv_token *tk,
            float *y) {
    const size_t wbytes = q4 ? Q4_0_BYTES : Q8_0_BYTES;
    __m256 acc = _mm256_setzero_ps();               /* lanes 0..3: row 0's chains, 4..7: row 1's */
    int64_t g = 0;
    for (; g < nb / 4; g++) {
        const uint8_t *wg = w + (size_t)(4 * g) * wbytes;
        __m256i is = group_isums(q4, nr, wg, rb, tk->act + (size_t)g * 128, tk->corr + 4 * g);
        __m128i dw16 = _mm_cvtsi64_si128((long long)scales4(wg, wbytes));
        if (nr > 1) dw16 = _mm_insert_epi64(dw16, (long long)scales4(wg + rb, wbytes), 1);
        __m256 s = _mm256_mul_ps(_mm256_cvtph_ps(dw16), _mm256_broadcast_ps((const __m128 *)(tk->d + 4 * g)));
        acc = _mm256_fmadd_ps(s, _mm256_cvtepi32_ps(is), acc);
    }
    float ch[GEMV_ROWS][LEGACY_CHAINS];
    _mm_storeu_ps(ch[0], _mm256_castps256_ps128(acc));
    _mm_storeu_ps(ch[1], _mm256_extractf128_ps(acc, 1));
    for (int r = 0; r < nr; r++) {
        /* The last nb % 4 blocks: chains 0.. in turn, one scalar FMA each, as the single dot. */
        for (int64_t b = 4 * g; b < nb; b++) {
            const uint8_t *wb = w + (size_t)r * rb + (size_t)b * wbytes;
            __m256i q = q4 ? _mm256_sub_epi8(nibbles_32(wb + Q4_0_QS), _mm256_set1_epi8(8)) : load32(wb + Q8_0_QS);
            int32_t is = hsum_i32(mul_sum_i8(q, load32(x + (size_t)b * Q8_0_BYTES + Q8_0_QS)));
            __m128 s = _mm_set_ss(f16_at(wb) * tk->d[b]);
            int j = (int)(b - 4 * g);
            ch[r][j] = _mm_cvtss_f32(_mm_fmadd_ss(s, _mm_cvtsi32_ss(_mm_setzero_ps(), is), _mm_set_ss(ch[r][j])));
        }
        y[r] = legacy_chains_sum(ch[r]);
    }
}

static bool gemv_legacy(int q4, int64_t n_in, const void *w, int64_t r0, int64_t r1, const void *xq, float *y) {
    const int64_t nb = n_in / QK;
    const size_t rb = (size_t)nb * (q4 ? Q4_0_BYTES : Q8_0_BYTES);
    /* The model loader bounds n_in, so this size does not overflow. */
    uint8_t *buf = aligned_alloc(64, ((size_t)nb * (32 + 8) + 63) & ~(size_t)63);
    if (!buf) return false;
    struct gemv_token tk = { buf, (float *)(buf + (size_t)nb * 32), (int32_t *)(buf + (size_t)nb * 36) };
    prep_token(q4, xq, nb, &tk);
    const uint8_t *wb = w;
    int64_t r = r0;
    if (q4) {
        for (; r + GEMV_ROWS <= r1; r += GEMV_ROWS) legacy_rows(1, 2, nb, wb + (size_t)r * rb, rb, xq, &tk, y + r);
        for (; r < r1; r++) legacy_rows(1, 1, nb, wb + (size_t)r * rb, rb, xq, &tk, y + r);
    } else {
        for (; r + GEMV_ROWS <= r1; r += GEMV_ROWS) legacy_rows(0, 2, nb, wb + (size_t)r * rb, rb, xq, &tk, y + r);
        for (; r < r1; r++) legacy_rows(0, 1, nb, wb + (size_t)r * rb, rb, xq, &tk, y + r);
    }
    free(buf);
    return true;
}

bool ll_gemv_q4_0_avx2(int64_t n_in, const void *w, int64_t r0, int64_t r1, const void *xq, float *y) {
    return gemv_legacy(1, n_in, w, r0, r1, xq, y);
}

bool ll_gemv_q8_0_avx2(int64_t n_in, const void *w, int64_t r0, int64_t r1, const void *xq, float *y) {
    return gemv_legacy(0, n_in, w, r0, r1, xq, y);
}
