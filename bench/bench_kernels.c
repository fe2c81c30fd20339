/* bench_kernels: one matrix-vector product per weight type, 2048 rows x 8192 inputs, with the
 * scalar reference kernels and with the AVX2 ones. Prints weight bandwidth (GB/s) and time
 * per row; the best of a few repetitions counts. A micro-benchmark, not a test.
 *
 *     build/bench/bench_kernels [rows] [n_in]    (defaults 2048 8192) */
#include "kernels/kernels.h"

#include <stdio.h>
#include <stdlib.h>

static uint64_t rng = 88172645463325252ull;
static uint64_t next_u64(void) { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return rng; }

/* Random bytes with every f16 scale field (and F16/BF16 element) replaced by a small finite
 * value, so no kernel meets inf or NaN. Offsets per type as in gguf-and-quants.md B.3/B.4. */
static void fill_weights(uint32_t type, uint8_t *w, int64_t rows, int64_t n_in) {
    const ll_type_traits *t = ll_type_traits_of(type);
    uint64_t row_bytes = 0;
    ll_type_row_bytes(type, n_in, &row_bytes);
    size_t total = (size_t)(row_bytes * (uint64_t)rows);
    for (size_t i = 0; i < total; i++) w[i] = (uint8_t)next_u64();
    static const struct { uint32_t type; int off[2]; } f16_fields[] = {
        { LL_TYPE_Q4_0, { 0, -1 } }, { LL_TYPE_Q4_1, { 0, 2 } }, { LL_TYPE_Q5_0, { 0, -1 } },
        { LL_TYPE_Q5_1, { 0, 2 } }, { LL_TYPE_Q8_0, { 0, -1 } }, { LL_TYPE_Q2_K, { 80, 82 } },
        { LL_TYPE_Q3_K, { 108, -1 } }, { LL_TYPE_Q4_K, { 0, 2 } }, { LL_TYPE_Q5_K, { 0, 2 } },
        { LL_TYPE_Q6_K, { 208, -1 } },
    };
    if (type == LL_TYPE_F32) {
        for (size_t i = 0; i < total / 4; i++) { float v = (float)(next_u64() % 1000) * 1e-3f; memcpy(w + 4 * i, &v, 4); }
        return;
    }
    if (type == LL_TYPE_F16 || type == LL_TYPE_BF16) {
        for (size_t i = 0; i < total / 2; i++) {
            float v = (float)(next_u64() % 1000) * 1e-3f;
            uint16_t h = type == LL_TYPE_F16 ? ll_fp32_to_fp16(v) : ll_fp32_to_bf16(v);
            memcpy(w + 2 * i, &h, 2);
        }
        return;
    }
    for (size_t f = 0; f < sizeof f16_fields / sizeof f16_fields[0]; f++) {
        if (f16_fields[f].type != type) continue;
        for (size_t b = 0; b < total / t->bytes; b++)
            for (int k = 0; k < 2; k++) {
                if (f16_fields[f].off[k] < 0) continue;
                uint16_t h = ll_fp32_to_fp16(0.01f);
                memcpy(w + b * t->bytes + (size_t)f16_fields[f].off[k], &h, 2);
            }
    }
}

static double bench_one(const struct ll_kernels *k, uint32_t type, const uint8_t *w, int64_t rows,
                        int64_t n_in, const void *xq, float *y, float *checksum) {
    double best = 1e30;
    for (int rep = 0; rep < 5; rep++) {
        uint64_t t0 = ll_time_ns();
        ll_matmul_rows(k, type, w, n_in, 0, rows, xq, 0, 1, y, rows);
        double dt = (double)(ll_time_ns() - t0) * 1e-9;
        if (dt < best) best = dt;
        if (best > 0.5) break;                           /* slow reference: enough */
    }
    float s = 0;
    for (int64_t r = 0; r < rows; r++) s += y[r];
    *checksum = s;
    return best;
}

int main(int argc, char **argv) {
    int64_t rows = argc > 1 ? atoll(argv[1]) : 2048, n_in = argc > 2 ? atoll(argv[2]) : 8192;
    if (rows <= 0 || n_in <= 0 || n_in % 256) { fprintf(stderr, "n_in must be a multiple of 256\n"); return 2; }
    struct ll_kernels k_ref, k_simd;
    ll_kernels_init_isa(&k_ref, "scalar");
    bool have_simd = ll_kernels_init_isa(&k_simd, "avx2");
    static const uint32_t types[] = { LL_TYPE_Q8_0, LL_TYPE_Q4_1, LL_TYPE_Q4_K, LL_TYPE_Q6_K, LL_TYPE_F16,
                                      LL_TYPE_Q4_0, LL_TYPE_Q5_0, LL_TYPE_Q5_1, LL_TYPE_Q5_K, LL_TYPE_Q2_K,
                                      LL_TYPE_Q3_K, LL_TYPE_BF16, LL_TYPE_F32 };
    float *x = malloc((size_t)n_in * sizeof(float)), *y = malloc((size_t)rows * sizeof(float));
    uint8_t *xq = malloc((size_t)n_in * 4);
    if (!x || !y || !xq) return 1;
    for (int64_t i = 0; i < n_in; i++) x[i] = (float)((int64_t)(next_u64() % 2001) - 1000) * 1e-3f;
    printf("matrix %lld x %lld, one token, single thread; kernels: scalar vs %s\n",
           (long long)rows, (long long)n_in, have_simd ? "avx2" : "(none)");
    printf("%-5s %10s %9s %9s %9s %9s %8s\n", "type", "MB", "ref GB/s", "ref ns/r", "simd GB/s", "simd ns/r", "speedup");
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        uint32_t type = types[ti];
        const ll_type_traits *t = ll_type_traits_of(type);
        uint64_t row_bytes = 0;
        ll_type_row_bytes(type, n_in, &row_bytes);
        double mb = (double)row_bytes * (double)rows;
        uint8_t *w = malloc((size_t)(row_bytes * (uint64_t)rows));
        if (!w) return 1;
        fill_weights(type, w, rows, n_in);
        k_ref.quantize_act[t->dot_type](x, xq, n_in);
        float c_ref, c_simd = 0;
        double t_ref = bench_one(&k_ref, type, w, rows, n_in, xq, y, &c_ref), t_simd = 0;
        if (have_simd) t_simd = bench_one(&k_simd, type, w, rows, n_in, xq, y, &c_simd);
        printf("%-5s %10.1f %9.2f %9.0f %9.2f %9.0f %7.1fx   (checksums %.6g %.6g)\n", t->name, mb / 1e6,
               mb / t_ref / 1e9, t_ref / (double)rows * 1e9,
               have_simd ? mb / t_simd / 1e9 : 0.0, have_simd ? t_simd / (double)rows * 1e9 : 0.0,
               have_simd ? t_ref / t_simd : 0.0, c_ref, c_simd);
        free(w);
    }
    free(x); free(y); free(xq);
    return 0;
}
