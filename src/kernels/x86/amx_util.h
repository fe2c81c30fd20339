/* kernels/x86: what the AMX product files share: one tile layout and its configuration.
 * Only for files built with the AMX flags (Makefile: *_amx.c).
 *
 * Every product here multiplies kb = 32 bytes per row (one legacy block or one Q4_K
 * sub-block; 16 for a Q6_K sub-block): tile A holds 16 tokens x kb bytes, tile B the matching
 * kb bytes of 16 weight rows interleaved as the instruction wants them (kb / 4 rows of 64
 * bytes: row g = bytes 4g..4g+3 of weight rows 0..15 in turn), tile C the 16 x 16 i32 sums (token m = row m of C, a 64-byte
 * vector of the 16 weight rows). Four C tiles and two pairs of A and B tiles let products run
 * ahead of the vector code that scales their sums: tile registers are not renamed, so a tile
 * can only be reloaded once the product reading it is done. */
#ifndef LL_KERNELS_X86_AMX_UTIL_H
#define LL_KERNELS_X86_AMX_UTIL_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

enum {
    AMX_ROWS = 16,                      /* weight rows per panel: the 16 i32 columns of tile C */
    AMX_TOKS = 16,                      /* tokens per tile A */
    AMX_K = 32,                         /* bytes per row of tile A */
    AMX_B_BYTES = AMX_K / 4 * 64,       /* one tile B: 512 bytes */
    AMX_A_BYTES = AMX_TOKS * AMX_K,     /* one packed tile A: 512 bytes */
};
/* Tile registers (the intrinsics paste these into the instruction: literals, not enums). */
#define T_C0 0
#define T_C1 1
#define T_C2 2
#define T_C3 3
#define T_A0 4
#define T_A1 5
#define T_B0 6
#define T_B1 7

/* The 64-byte tile configuration, palette 1. */
struct amx_tile_config {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
};

/* kb bytes per row of tile A (32, or 16 for Q6_K's 16-element sub-blocks). */
static inline void amx_tiles_configure(int kb) {
    struct amx_tile_config c __attribute__((aligned(64)));
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int t = T_C0; t <= T_C3; t++) { c.rows[t] = AMX_TOKS; c.colsb[t] = AMX_ROWS * 4; }
    for (int t = T_A0; t <= T_A1; t++) { c.rows[t] = AMX_TOKS; c.colsb[t] = (uint16_t)kb; }
    for (int t = T_B0; t <= T_B1; t++) { c.rows[t] = (uint8_t)(kb / 4); c.colsb[t] = AMX_ROWS * 4; }
    _tile_loadconfig(&c);
}

/* 16 rows of kb bytes (row n at src + kb n) interleaved into one tile B of kb / 4 rows. */
static inline void amx_interleave_b(const int32_t *src, int kb, uint8_t *dst) {
    const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                           _mm512_set1_epi32(kb / 4));
    for (int g = 0; g < kb / 4; g++)
        _mm512_store_si512((__m512i *)(dst + 64 * g), _mm512_i32gather_epi32(_mm512_add_epi32(idx, _mm512_set1_epi32(g)), src, 4));
}

#endif
