/* quant internals: byte offsets of every block layout (gguf-and-quants.md B.3, B.4) and the
 * unaligned readers and scale unpackers shared by the reference code and the SIMD kernels.
 *
 * Blocks are addressed as bytes, never through a struct pointer: GGUF data is only 32-byte
 * aligned and blocks are 18, 20, 22, ... bytes, so a field may sit at any address. */
#ifndef LL_QUANT_BLOCKS_H
#define LL_QUANT_BLOCKS_H

#include "quant/quant.h"

#include <string.h>

/* Legacy 32-element blocks: offsets of d, m (or s), qh, qs and the block size. */
enum {
    QK = 32,                                           /* elements per legacy block */
    Q4_0_D = 0, Q4_0_QS = 2, Q4_0_BYTES = 18,
    Q4_1_D = 0, Q4_1_M = 2, Q4_1_QS = 4, Q4_1_BYTES = 20,
    Q5_0_D = 0, Q5_0_QH = 2, Q5_0_QS = 6, Q5_0_BYTES = 22,
    Q5_1_D = 0, Q5_1_M = 2, Q5_1_QH = 4, Q5_1_QS = 8, Q5_1_BYTES = 24,
    Q8_0_D = 0, Q8_0_QS = 2, Q8_0_BYTES = 34,
    Q8_1_D = 0, Q8_1_S = 2, Q8_1_QS = 4, Q8_1_BYTES = 36,
};

/* K-quant 256-element super-blocks. */
enum {
    QK_K = 256,
    Q2_K_SCALES = 0, Q2_K_QS = 16, Q2_K_D = 80, Q2_K_DMIN = 82, Q2_K_BYTES = 84,
    Q3_K_HMASK = 0, Q3_K_QS = 32, Q3_K_SCALES = 96, Q3_K_D = 108, Q3_K_BYTES = 110,
    Q4_K_D = 0, Q4_K_DMIN = 2, Q4_K_SCALES = 4, Q4_K_QS = 16, Q4_K_BYTES = 144,
    Q5_K_D = 0, Q5_K_DMIN = 2, Q5_K_SCALES = 4, Q5_K_QH = 16, Q5_K_QS = 48, Q5_K_BYTES = 176,
    Q6_K_QL = 0, Q6_K_QH = 128, Q6_K_SCALES = 192, Q6_K_D = 208, Q6_K_BYTES = 210,
    Q8_K_D = 0, Q8_K_QS = 4, Q8_K_BSUMS = 260, Q8_K_BYTES = 292,
};

static inline uint16_t blk_u16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t blk_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline float blk_f16(const uint8_t *p) { return ll_fp16_to_fp32(blk_u16(p)); }
static inline float blk_f32(const uint8_t *p) { float f; memcpy(&f, p, 4); return f; }
static inline int16_t blk_i16(const uint8_t *p) { int16_t v; memcpy(&v, p, 2); return v; }
static inline void blk_put_u16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }

/* Q4_K / Q5_K: the 6-bit scale and min of sub-block j (0..7) from the 12 packed bytes (B.4). */
static inline void blk_k4_scale_min(const uint8_t *s, int j, uint8_t *sc, uint8_t *m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m  = s[j + 4] & 63;
    } else {
        *sc = (uint8_t)((s[j + 4] & 15) | ((s[j - 4] >> 6) << 4));
        *m  = (uint8_t)((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
    }
}

/* Q3_K: the 16 signed 6-bit scales (-32..31) from the 12 packed bytes (B.4). */
static inline void blk_q3_k_scales(const uint8_t *s, int8_t out[16]) {
    for (int j = 0; j < 16; j++) {
        int low  = j < 8 ? s[j] & 15 : s[j - 8] >> 4;
        int high = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
        out[j] = (int8_t)((low | high << 4) - 32);
    }
}

#endif
