/* kernels: the table of dot products and activation quantizers, filled once from the CPU.
 *
 * Every entry starts as the scalar definition from quant/; an ISA variant replaces it only
 * when CPUID (via __builtin_cpu_supports, which also checks that the OS saves the AVX state)
 * says the CPU has every extension the variant's file was compiled for. A CPU without AVX2
 * therefore never reaches an AVX2 instruction (fault R16: never SIGILL). */
#include "kernels/kernels.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define LL_X86 1
#include "kernels/x86/avx2.h"
#include "kernels/x86/amx.h"
#include "kernels/x86/avx512.h"
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#else
#define LL_X86 0
#endif

static void kernels_fill_scalar(struct ll_kernels *k) {
    memset(k, 0, sizeof *k);
    k->dot[LL_TYPE_F32]  = ll_dot_f32_ref;
    k->dot[LL_TYPE_F16]  = ll_dot_f16_ref;
    k->dot[LL_TYPE_BF16] = ll_dot_bf16_ref;
    k->dot[LL_TYPE_Q4_0] = ll_dot_q4_0_ref;
    k->dot[LL_TYPE_Q4_1] = ll_dot_q4_1_ref;
    k->dot[LL_TYPE_Q5_0] = ll_dot_q5_0_ref;
    k->dot[LL_TYPE_Q5_1] = ll_dot_q5_1_ref;
    k->dot[LL_TYPE_Q8_0] = ll_dot_q8_0_ref;
    k->dot[LL_TYPE_Q2_K] = ll_dot_q2_k_ref;
    k->dot[LL_TYPE_Q3_K] = ll_dot_q3_k_ref;
    k->dot[LL_TYPE_Q4_K] = ll_dot_q4_k_ref;
    k->dot[LL_TYPE_Q5_K] = ll_dot_q5_k_ref;
    k->dot[LL_TYPE_Q6_K] = ll_dot_q6_k_ref;
    k->quantize_act[LL_TYPE_F32]  = ll_quantize_f32_ref;
    k->quantize_act[LL_TYPE_F16]  = ll_quantize_f16_ref;
    k->quantize_act[LL_TYPE_BF16] = ll_quantize_bf16_ref;
    k->quantize_act[LL_TYPE_Q8_0] = ll_quantize_q8_0_ref;
    k->quantize_act[LL_TYPE_Q8_1] = ll_quantize_q8_1_ref;
    k->quantize_act[LL_TYPE_Q8_K] = ll_quantize_q8_k_ref;
    k->exp_sum = ll_exp_sum_ref;
    k->att_scale_mask = ll_att_scale_mask_ref;
    k->att_weights = ll_att_weights_ref;
    k->isa = "scalar";
}

#if LL_X86
/* F16C is CPUID leaf 1, ECX bit 29; read it directly because clang 14's
 * __builtin_cpu_supports does not know the name "f16c" (it rejects the build). */
static bool cpu_has_f16c(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
    return (c >> 29) & 1u;
}

static bool cpu_has_avx2(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_has_f16c();
}

/* AVX-512 F, BW, DQ and VL (what the avx512 files are compiled for), on top of AVX2. */
static bool cpu_has_avx512(void) {
    return cpu_has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
}

/* AVX-512 VNNI, AMX-TILE and AMX-INT8 (CPUID leaf 7, EDX bits 24 and 25), the tile state enabled by the OS
 * (XCR0 bits 17 and 18) and, on Linux, granted to this process (arch_prctl
 * ARCH_REQ_XCOMP_PERM for XTILEDATA; without it the first tile instruction would kill the
 * process). Asked once, under the table's pthread_once or a test's direct call. */
static bool cpu_has_amx(void) {
    if (!cpu_has_avx512() || !__builtin_cpu_supports("avx512vnni")) return false;
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !((d >> 24) & 1u) || !((d >> 25) & 1u)) return false;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !((c >> 27) & 1u)) return false;      /* OSXSAVE */
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if (((lo >> 17) & 3u) != 3u) return false;
#if defined(__linux__) && defined(SYS_arch_prctl)
    enum { ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18 };
    return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
#else
    return false;
#endif
}

/* AMX-BF16: CPUID leaf 7, EDX bit 22 (the tile state itself is cpu_has_amx's). */
static bool cpu_has_amx_bf16(void) {
    unsigned a, b, c, d;
    return __get_cpuid_count(7, 0, &a, &b, &c, &d) && ((d >> 22) & 1u);
}

static void kernels_fill_avx2(struct ll_kernels *k) {
    k->dot[LL_TYPE_F32]  = ll_dot_f32_avx2;
    k->dot[LL_TYPE_F16]  = ll_dot_f16_avx2;
    k->dot[LL_TYPE_BF16] = ll_dot_bf16_avx2;
    k->dot[LL_TYPE_Q4_0] = ll_dot_q4_0_avx2;
    k->dot[LL_TYPE_Q4_1] = ll_dot_q4_1_avx2;
    k->dot[LL_TYPE_Q5_0] = ll_dot_q5_0_avx2;
    k->dot[LL_TYPE_Q5_1] = ll_dot_q5_1_avx2;
    k->dot[LL_TYPE_Q8_0] = ll_dot_q8_0_avx2;
    k->dot[LL_TYPE_Q2_K] = ll_dot_q2_k_avx2;
    k->dot[LL_TYPE_Q3_K] = ll_dot_q3_k_avx2;
    k->dot[LL_TYPE_Q4_K] = ll_dot_q4_k_avx2;
    k->dot[LL_TYPE_Q5_K] = ll_dot_q5_k_avx2;
    k->dot[LL_TYPE_Q6_K] = ll_dot_q6_k_avx2;
    k->dot_multi[LL_TYPE_F16]  = ll_dot_multi_f16_avx2;
    k->dot_multi_xf32[LL_TYPE_F16] = ll_dot_multi_f16_xf32_avx2;
    k->dot_rows_xf32[LL_TYPE_F16] = ll_dot_rows_f16_xf32_avx2;
    k->dot_multi[LL_TYPE_Q4_0] = ll_dot_multi_q4_0_avx2;
    k->dot_multi[LL_TYPE_Q4_1] = ll_dot_multi_q4_1_avx2;
    k->dot_multi[LL_TYPE_Q5_0] = ll_dot_multi_q5_0_avx2;
    k->dot_multi[LL_TYPE_Q5_1] = ll_dot_multi_q5_1_avx2;
    k->dot_multi[LL_TYPE_Q8_0] = ll_dot_multi_q8_0_avx2;
    k->dot_multi[LL_TYPE_Q2_K] = ll_dot_multi_q2_k_avx2;
    k->dot_multi[LL_TYPE_Q3_K] = ll_dot_multi_q3_k_avx2;
    k->dot_multi[LL_TYPE_Q4_K] = ll_dot_multi_q4_k_avx2;
    k->dot_multi[LL_TYPE_Q5_K] = ll_dot_multi_q5_k_avx2;
    k->dot_multi[LL_TYPE_Q6_K] = ll_dot_multi_q6_k_avx2;
    k->gemm[LL_TYPE_F16]  = ll_gemm_f16_avx2;
    k->gemv[LL_TYPE_F16]  = ll_gemv_f16_avx2;
    k->gemv[LL_TYPE_Q6_K] = ll_gemv_q6_k_avx2;
    k->gemv[LL_TYPE_Q4_K] = ll_gemv_q4_k_avx2;
    k->exp_sum = ll_exp_sum_avx2;
    k->att_scale_mask = ll_att_scale_mask_avx2;
    k->att_weights = ll_att_weights_avx2;
    k->gemm[LL_TYPE_Q4_K] = ll_gemm_q4_k_avx2;
    k->gemm[LL_TYPE_Q6_K] = ll_gemm_q6_k_avx2;
    k->gemm[LL_TYPE_Q4_0] = ll_gemm_q4_0_avx2;
    k->gemm[LL_TYPE_Q8_0] = ll_gemm_q8_0_avx2;
    k->gemv[LL_TYPE_Q4_0] = ll_gemv_q4_0_avx2;
    k->gemv[LL_TYPE_Q8_0] = ll_gemv_q8_0_avx2;
    k->quantize_act[LL_TYPE_F16]  = ll_quantize_f16_avx2;
    k->quantize_act[LL_TYPE_Q8_0] = ll_quantize_q8_0_avx2;
    k->quantize_act[LL_TYPE_Q8_1] = ll_quantize_q8_1_avx2;
    k->quantize_act[LL_TYPE_Q8_K] = ll_quantize_q8_k_avx2;
    k->isa = "avx2";
}

/* The AVX2 table with the AVX-512 kernels where they exist. */
static void kernels_fill_avx512(struct ll_kernels *k) {
    kernels_fill_avx2(k);
    k->dot[LL_TYPE_Q6_K]       = ll_dot_q6_k_avx512;
    k->dot_multi[LL_TYPE_Q6_K] = ll_dot_multi_q6_k_avx512;
    k->gemm[LL_TYPE_F16]       = ll_gemm_f16_avx512;
    k->dot_rows_xf32[LL_TYPE_F16] = ll_dot_rows_f16_xf32_avx512;
    if (__builtin_cpu_supports("avx512vnni")) k->gemv[LL_TYPE_Q4_K] = ll_gemv_q4_k_avx512vnni;
    k->isa = "avx512";
}

/* The AVX-512 table with the AMX matrix products. */
static void kernels_fill_amx(struct ll_kernels *k) {
    kernels_fill_avx512(k);
    k->gemm[LL_TYPE_Q4_0] = ll_gemm_q4_0_amx;
    k->gemm[LL_TYPE_Q8_0] = ll_gemm_q8_0_amx;
    k->gemm[LL_TYPE_Q4_K] = ll_gemm_q4_k_amx;
    k->gemm[LL_TYPE_Q6_K] = ll_gemm_q6_k_amx;
    if (cpu_has_amx_bf16() && __builtin_cpu_supports("avx512bf16")) {
        k->gemm_fast[LL_TYPE_F16] = ll_gemm_f16_amx;    /* within f32 rounding of the dot */
    }
    k->isa = "amx";
}
#endif

bool ll_kernels_init_isa(struct ll_kernels *k, const char *isa) {
    kernels_fill_scalar(k);
    if (strcmp(isa, "scalar") == 0) return true;
#if LL_X86
    if (strcmp(isa, "avx2") == 0 && cpu_has_avx2()) {
        kernels_fill_avx2(k);
        return true;
    }
    if (strcmp(isa, "avx512") == 0 && cpu_has_avx512()) {
        kernels_fill_avx512(k);
        return true;
    }
    if (strcmp(isa, "amx") == 0 && cpu_has_amx()) {
        kernels_fill_amx(k);
        return true;
    }
#endif
    return false;
}

/* Written once under pthread_once, read-only afterwards: safe to share between threads. */
static struct ll_kernels kernels_table;
static pthread_once_t kernels_once = PTHREAD_ONCE_INIT;

static void kernels_pick(void) {
    const char *want = getenv("LOCALLAMA_ISA");
    if (want && *want) {
        if (ll_kernels_init_isa(&kernels_table, want)) return;
        LL_WARN("LOCALLAMA_ISA=%s is not available on this CPU; choosing automatically", want);
    }
    if (!ll_kernels_init_isa(&kernels_table, "amx") && !ll_kernels_init_isa(&kernels_table, "avx512") &&
        !ll_kernels_init_isa(&kernels_table, "avx2"))
        kernels_fill_scalar(&kernels_table);
}

const struct ll_kernels *ll_kernels_get(void) {
    pthread_once(&kernels_once, kernels_pick);
    return &kernels_table;
}
