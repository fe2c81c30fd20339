/* kernels/x86: attention's softmax, 8 lanes at a time: the exponentials (kernels.h,
 * ll_exp_sum_fn) and, at the end of this file, the passes before and after them.
 *
 * exp(t) for t = x - max <= 0: t = k ln2 + r with k = round(t / ln2) and |r| <= ln2 / 2 (ln2
 * split in a high part exact in f32 and a low part, so r is accurate), e^r by its Taylor
 * polynomial to degree 7 (truncation below 2e-9 relative on that interval) in Horner form with
 * FMAs, times 2^k built in the exponent bits. Within 2 ulp of expf over [-87, 0] (tests/kernels
 * checks it against the reference). Below -87 (and for -inf) the result is 0, where expf would
 * give a denormal under 2^-125: nothing a softmax over a maximum of e^0 = 1 can see. The sum
 * is kept in two double accumulators (4 lanes each), so it differs from the reference's
 * sequential double sum only in double rounding. */
#include "kernels/x86/avx2_util.h"

#include <math.h>

static inline __m256 exp_neg(__m256 t) {
    const __m256 lo = _mm256_set1_ps(-87.0f);
    __m256 keep = _mm256_cmp_ps(t, lo, _CMP_GE_OQ);          /* false for NaN and -inf too */
    t = _mm256_max_ps(t, lo);
    __m256 k = _mm256_round_ps(_mm256_mul_ps(t, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(0.693145751953125f), t);      /* ln2 high */
    r = _mm256_fnmadd_ps(k, _mm256_set1_ps(1.428606765330187e-06f), r);         /* ln2 low */
    __m256 p = _mm256_set1_ps(1.0f / 5040.0f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
    return _mm256_and_ps(_mm256_mul_ps(p, _mm256_castsi256_ps(e)), keep);
}

double ll_exp_sum_avx2(float *x, int64_t n, float max) {
    const __m256 m = _mm256_set1_ps(max);
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = exp_neg(_mm256_sub_ps(_mm256_loadu_ps(x + i), m));
        _mm256_storeu_ps(x + i, v);
        s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
        s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
    }
    __m256d s = _mm256_add_pd(s0, s1);
    __m128d h = _mm_add_pd(_mm256_castpd256_pd128(s), _mm256_extractf128_pd(s, 1));
    double sum = _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
    for (; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += (double)x[i];
    }
    return sum;
}

/* The softmax's pass before the exponentials (kernels.h, ll_att_scale_mask_fn), 8 keys at a
 * time. max_ps(v, mx) returns mx when v is NaN, as the reference's v > mx skips it; the lanes'
 * maxima then meet in any order (a maximum does not depend on it; only the sign of a zero
 * maximum could, and exp(x - 0) equals exp(x + 0) for every x the exponentials see). */
float ll_att_scale_mask_avx2(float *s, const int32_t *pos, int64_t n, int32_t p, float scale, int64_t *hi) {
    const __m256 vs = _mm256_set1_ps(scale), ninf = _mm256_set1_ps(-INFINITY);
    const __m256i vp = _mm256_set1_epi32(p);
    __m256 mx = ninf;
    int64_t last = 0, i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 hid = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_loadu_si256((const __m256i *)(pos + i)), vp));
        const __m256 v = _mm256_blendv_ps(_mm256_mul_ps(_mm256_loadu_ps(s + i), vs), ninf, hid);
        _mm256_storeu_ps(s + i, v);
        mx = _mm256_max_ps(v, mx);
        const unsigned vis = ~(unsigned)_mm256_movemask_ps(hid) & 0xFFu;
        if (vis) last = i + 32 - __builtin_clz(vis);
    }
    float m = hmax_ps(mx);
    int64_t tail_hi;                                    /* the last n % 8 keys: the reference */
    const float tm = ll_att_scale_mask_ref(s + i, pos + i, n - i, p, scale, &tail_hi);
    if (tm > m) m = tm;
    *hi = tail_hi ? i + tail_hi : last;
    return m;
}

/* The softmax's pass after them (kernels.h, ll_att_weights_fn): normalize, zero the keys from
 * hi on, and round through F16 with the F16C conversions (round to nearest even, as
 * ll_fp32_to_fp16), 8 keys at a time. */
void ll_att_weights_avx2(float *s, int64_t hi, int64_t n, float inv, bool round16, uint16_t *h) {
    const __m256 vi = _mm256_set1_ps(inv);
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_mul_ps(_mm256_loadu_ps(s + i), vi);
        if (i + 8 > hi) {                               /* lanes i + j >= hi become +0 */
            const int64_t keep = hi > i ? hi - i : 0;
            const __m256 m = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32((int)keep), lane));
            v = _mm256_and_ps(v, m);
        }
        if (round16) {
            const __m128i r = _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT);
            if (h) _mm_storeu_si128((__m128i *)(h + i), r);
            v = _mm256_cvtph_ps(r);
        }
        _mm256_storeu_ps(s + i, v);
    }
    ll_att_weights_ref(s + i, hi > i ? hi - i : 0, n - i, inv, round16, h ? h + i : NULL);   /* the tail */
}
