/* The ggml type table (gguf-and-quants.md B.1): block size and bytes of every type id, so the
 * GGUF reader can size any tensor, and which of them the engine computes with. */
#include "quant/quant.h"

#include <assert.h>

#define T(id, nm, blck, bytes, sup, dot) [id] = { nm, blck, bytes, sup, dot }

static const ll_type_traits type_table[LL_TYPE_COUNT] = {
    T(LL_TYPE_F32,  "F32",  1,   4,   true,  LL_TYPE_F32),
    T(LL_TYPE_F16,  "F16",  1,   2,   true,  LL_TYPE_F16),
    T(LL_TYPE_Q4_0, "Q4_0", 32,  18,  true,  LL_TYPE_Q8_0),
    T(LL_TYPE_Q4_1, "Q4_1", 32,  20,  true,  LL_TYPE_Q8_1),
    /* 4, 5: Q4_2, Q4_3, removed upstream */
    T(LL_TYPE_Q5_0, "Q5_0", 32,  22,  true,  LL_TYPE_Q8_0),
    T(LL_TYPE_Q5_1, "Q5_1", 32,  24,  true,  LL_TYPE_Q8_1),
    T(LL_TYPE_Q8_0, "Q8_0", 32,  34,  true,  LL_TYPE_Q8_0),
    T(LL_TYPE_Q8_1, "Q8_1", 32,  36,  false, LL_TYPE_Q8_1),
    T(LL_TYPE_Q2_K, "Q2_K", 256, 84,  true,  LL_TYPE_Q8_K),
    T(LL_TYPE_Q3_K, "Q3_K", 256, 110, true,  LL_TYPE_Q8_K),
    T(LL_TYPE_Q4_K, "Q4_K", 256, 144, true,  LL_TYPE_Q8_K),
    T(LL_TYPE_Q5_K, "Q5_K", 256, 176, true,  LL_TYPE_Q8_K),
    T(LL_TYPE_Q6_K, "Q6_K", 256, 210, true,  LL_TYPE_Q8_K),
    T(LL_TYPE_Q8_K, "Q8_K", 256, 292, false, LL_TYPE_Q8_K),
    /* Valid ggml types without kernels here (G35: refused by name at model load). */
    T(16, "IQ2_XXS", 256, 66,  false, 0),
    T(17, "IQ2_XS",  256, 74,  false, 0),
    T(18, "IQ3_XXS", 256, 98,  false, 0),
    T(19, "IQ1_S",   256, 50,  false, 0),
    T(20, "IQ4_NL",  32,  18,  false, 0),
    T(21, "IQ3_S",   256, 110, false, 0),
    T(22, "IQ2_S",   256, 82,  false, 0),
    T(23, "IQ4_XS",  256, 136, false, 0),
    T(24, "I8",      1,   1,   false, 0),
    T(25, "I16",     1,   2,   false, 0),
    T(26, "I32",     1,   4,   false, 0),
    T(27, "I64",     1,   8,   false, 0),
    T(28, "F64",     1,   8,   false, 0),
    T(29, "IQ1_M",   256, 56,  false, 0),
    T(LL_TYPE_BF16, "BF16", 1, 2, true, LL_TYPE_BF16),
    /* 31-33: Q4_0_4_4, Q4_0_4_8, Q4_0_8_8, removed upstream */
    T(34, "TQ1_0",   256, 54,  false, 0),
    T(35, "TQ2_0",   256, 66,  false, 0),
    /* 36-38: IQ4_NL_4_4, IQ4_NL_4_8, IQ4_NL_8_8, removed upstream */
    T(39, "MXFP4",   32,  17,  false, 0),
};
static_assert(sizeof type_table / sizeof type_table[0] == LL_TYPE_COUNT, "type table length");

const ll_type_traits *ll_type_traits_of(uint32_t type) {
    if (type >= LL_TYPE_COUNT || type_table[type].name == NULL) return NULL;
    return &type_table[type];
}

bool ll_type_row_bytes(uint32_t type, int64_t n, uint64_t *bytes) {
    const ll_type_traits *t = ll_type_traits_of(type);
    if (!t || n < 0 || n % t->blck != 0) return false;
    return ll_mul_u64((uint64_t)(n / t->blck), t->bytes, bytes);
}
