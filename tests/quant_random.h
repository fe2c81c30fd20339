/* Random data for the quant and kernel tests: a seeded xorshift64* generator, the offsets of
 * every weight type's f16 scale fields, and random weight rows whose scales are set to sane
 * values (random bytes elsewhere), so dots stay finite.
 *
 * Define TEST_RNG_SEED before including to give a test binary its own sequence. */
#ifndef LL_TEST_QUANT_RANDOM_H
#define LL_TEST_QUANT_RANDOM_H

#include "quant/blocks.h"

#include <stdint.h>
#include <string.h>

#ifndef TEST_RNG_SEED
#define TEST_RNG_SEED 0x9E3779B97F4A7C15ull
#endif

static uint64_t rng_state = TEST_RNG_SEED;
static uint64_t rng_u64(void) {                     /* xorshift64* */
    rng_state ^= rng_state >> 12; rng_state ^= rng_state << 25; rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}
static float rng_uniform(float lo, float hi) {
    return lo + (hi - lo) * (float)(rng_u64() >> 40) / (float)(1 << 24);
}

/* Offsets of the f16 scale fields of each weight type. */
struct wfields { uint32_t type; int n; int off[2]; };
static const struct wfields wtypes[] = {
    { LL_TYPE_F32, 0, {0} }, { LL_TYPE_F16, 0, {0} }, { LL_TYPE_BF16, 0, {0} },
    { LL_TYPE_Q8_0, 1, { Q8_0_D } }, { LL_TYPE_Q4_1, 2, { Q4_1_D, Q4_1_M } },
    { LL_TYPE_Q4_0, 1, { Q4_0_D } }, { LL_TYPE_Q5_0, 1, { Q5_0_D } },
    { LL_TYPE_Q5_1, 2, { Q5_1_D, Q5_1_M } },
    { LL_TYPE_Q2_K, 2, { Q2_K_D, Q2_K_DMIN } }, { LL_TYPE_Q3_K, 1, { Q3_K_D } },
    { LL_TYPE_Q4_K, 2, { Q4_K_D, Q4_K_DMIN } }, { LL_TYPE_Q5_K, 2, { Q5_K_D, Q5_K_DMIN } },
    { LL_TYPE_Q6_K, 1, { Q6_K_D } },
};
enum { N_WTYPES = sizeof wtypes / sizeof wtypes[0] };

static inline bool is_float_type(uint32_t t) {
    return t == LL_TYPE_F32 || t == LL_TYPE_F16 || t == LL_TYPE_BF16;
}

/* n random weights of wf->type into w: float types uniform in [-1, 1]; quantized types random
 * quant bytes with every scale field set to `scale` (a random value in [-0.05, 0.05] when
 * scale is 0). */
static void random_weights(const struct wfields *wf, uint8_t *w, int64_t n, float scale) {
    const ll_type_traits *t = ll_type_traits_of(wf->type);
    int64_t nb = n / t->blck;
    for (size_t k = 0; k < (size_t)nb * t->bytes; k++) w[k] = (uint8_t)rng_u64();
    if (is_float_type(wf->type)) {
        for (int64_t k = 0; k < n; k++) {
            float v = rng_uniform(-1, 1);
            if (wf->type == LL_TYPE_F32) memcpy(w + 4 * k, &v, 4);
            else blk_put_u16(w + 2 * k, wf->type == LL_TYPE_F16 ? ll_fp32_to_fp16(v) : ll_fp32_to_bf16(v));
        }
        return;
    }
    for (int64_t b = 0; b < nb; b++)
        for (int f = 0; f < wf->n; f++)
            blk_put_u16(w + b * t->bytes + wf->off[f],
                        ll_fp32_to_fp16(scale != 0 ? scale : rng_uniform(-0.05f, 0.05f)));
}

#endif
