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
 * Rows then run side by side (Q4_0: four, in pairs that share the last step of reducing their
 * block sums to one i32 per block; Q8_0: two) and share the activation loads, with each row
 * stream prefetched a little ahead. Streaming 2048 x 8192 from memory, one thread, busy
 * machine: Q4_0 ~1050 -> ~690 ns per row, Q8_0 ~1190 -> ~960 (bench_kernels batch TYPE 1);
 * in L2 (64 rows): Q4_0 ~1000 -> ~610, Q8_0 unchanged at ~760.
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

/* Rows per pass; PF_DIST: bytes ahead in each row stream that the loop prefetches. Measured
 * with both threads streaming, as the model runs (bench_kernels gemm Q8_0 128256 2048 1 2):
 * 512 17.0 ms, 1024 16.6, 2048 14.2, 3072 12.4, 4096 12.5, 8192 12.9 (Q4_0: 12.8 at 512,
 * 9.0 at 4096); one thread alone had favoured 512. */
enum { Q4_0_ROWS = 4, Q8_0_ROWS = 2, PF_DIST = 4096 };

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

/* The blocks from 4 * g0 on (fewer than 4) of one row, into its chains ch and then the row's
 * result: chains 0.. in turn, one scalar FMA each, as the single dot. */
static float finish_row(int q4, int64_t nb, int64_t g0, const uint8_t *w, const uint8_t *x, const struct gemv_token *tk,
                        float ch[LEGACY_CHAINS]) {
    const size_t wbytes = q4 ? Q4_0_BYTES : Q8_0_BYTES;
    for (int64_t b = 4 * g0; b < nb; b++) {
        const uint8_t *wb = w + (size_t)b * wbytes;
        __m256i q = q4 ? _mm256_sub_epi8(nibbles_32(wb + Q4_0_QS), _mm256_set1_epi8(8)) : load32(wb + Q8_0_QS);
        int32_t is = hsum_i32(mul_sum_i8(q, load32(x + (size_t)b * Q8_0_BYTES + Q8_0_QS)));
        __m128 s = _mm_set_ss(f16_at(wb) * tk->d[b]);
        int j = (int)(b - 4 * g0);
        ch[j] = _mm_cvtss_f32(_mm_fmadd_ss(s, _mm_cvtsi32_ss(_mm_setzero_ps(), is), _mm_set_ss(ch[j])));
    }
    return legacy_chains_sum(ch);
}

/* Q4_0, nr (1 .. 4) rows from w (rb bytes apart) against the prepared token x: y[0 .. nr - 1].
 * Rows go in pairs, each pair's chains in one vector (lanes 0..3 row 2k, 4..7 row 2k + 1), and
 * a pair shares the last hadd of its block sums. */
static inline __attribute__((always_inline)) void
q4_0_rows(int nr, int64_t nb, const uint8_t *w, size_t rb, const uint8_t *x, const struct gemv_token *tk, float *y) {
    const int np = (nr + 1) / 2;
    __m256 acc[Q4_0_ROWS / 2];
    _Pragma("GCC unroll 2") for (int k = 0; k < np; k++) acc[k] = _mm256_setzero_ps();
    int64_t g = 0;
    for (; g < nb / 4; g++) {
        const uint8_t *wg = w + (size_t)(4 * g) * Q4_0_BYTES, *ag = tk->act + (size_t)g * 128;
        const __m256 da = _mm256_broadcast_ps((const __m128 *)(tk->d + 4 * g));
        const __m256i corr = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(tk->corr + 4 * g)));
        _Pragma("GCC unroll 2")
        for (int k = 0; k < np; k++) {
            const int two = 2 * k + 1 < nr;
            const uint8_t *w0 = wg + (size_t)(2 * k) * rb, *w1 = two ? w0 + rb : w0;
            for (int l = 0; l < 2; l++) {
                _mm_prefetch((const char *)(w0 + PF_DIST + 64 * l), _MM_HINT_T0);
                if (two) _mm_prefetch((const char *)(w1 + PF_DIST + 64 * l), _MM_HINT_T0);
            }
            __m256i h0 = q4_0_group(w0, ag), h1 = two ? q4_0_group(w1, ag) : h0;
            /* [r0 b0, r0 b1, r1 b0, r1 b1 | r0 b2, r0 b3, r1 b2, r1 b3] -> one row per half */
            __m256i is = _mm256_sub_epi32(_mm256_permute4x64_epi64(_mm256_hadd_epi32(h0, h1), 0xD8), corr);
            __m128i dw16 = _mm_cvtsi64_si128((long long)scales4(w0, Q4_0_BYTES));
            if (two) dw16 = _mm_insert_epi64(dw16, (long long)scales4(w1, Q4_0_BYTES), 1);
            __m256 s = _mm256_mul_ps(_mm256_cvtph_ps(dw16), da);
            acc[k] = _mm256_fmadd_ps(s, _mm256_cvtepi32_ps(is), acc[k]);
        }
    }
    for (int r = 0; r < nr; r++) {
        float ch[LEGACY_CHAINS];
        _mm_storeu_ps(ch, r % 2 ? _mm256_extractf128_ps(acc[r / 2], 1) : _mm256_castps256_ps128(acc[r / 2]));
        y[r] = finish_row(1, nb, g, w + (size_t)r * rb, x, tk, ch);
    }
}

/* Q8_0, nr (1 .. 2) rows: each row's chains in one 128-bit vector (the 256-bit pairing of
 * Q4_0 measured slower here: Q8_0's sums need a full hadd tree per row anyway). */
static inline __attribute__((always_inline)) void
q8_0_rows(int nr, int64_t nb, const uint8_t *w, size_t rb, const uint8_t *x, const struct gemv_token *tk, float *y) {
    __m128 acc[Q8_0_ROWS];
    _Pragma("GCC unroll 2") for (int r = 0; r < nr; r++) acc[r] = _mm_setzero_ps();
    int64_t g = 0;
    for (; g < nb / 4; g++) {
        const uint8_t *wg = w + (size_t)(4 * g) * Q8_0_BYTES;
        const __m128 da = _mm_load_ps(tk->d + 4 * g);
        _Pragma("GCC unroll 2")
        for (int r = 0; r < nr; r++) {
            const uint8_t *wr = wg + (size_t)r * rb;
            for (int l = 0; l < 3; l++) _mm_prefetch((const char *)(wr + PF_DIST + 64 * l), _MM_HINT_T0);
            __m256i h = q8_0_group(wr, tk->act + (size_t)g * 128);
            __m128i is = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
            __m128 s = _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi64_si128((long long)scales4(wr, Q8_0_BYTES))), da);
            acc[r] = _mm_fmadd_ps(s, _mm_cvtepi32_ps(is), acc[r]);
        }
    }
    for (int r = 0; r < nr; r++) {
        float ch[LEGACY_CHAINS];
        _mm_storeu_ps(ch, acc[r]);
        y[r] = finish_row(0, nb, g, w + (size_t)r * rb, x, tk, ch);
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
        for (; r + Q4_0_ROWS <= r1; r += Q4_0_ROWS) q4_0_rows(Q4_0_ROWS, nb, wb + (size_t)r * rb, rb, xq, &tk, y + r);
        for (; r < r1; r++) q4_0_rows(1, nb, wb + (size_t)r * rb, rb, xq, &tk, y + r);
    } else {
        for (; r + Q8_0_ROWS <= r1; r += Q8_0_ROWS) q8_0_rows(Q8_0_ROWS, nb, wb + (size_t)r * rb, rb, xq, &tk, y + r);
        for (; r < r1; r++) q8_0_rows(1, nb, wb + (size_t)r * rb, rb, xq, &tk, y + r);
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
