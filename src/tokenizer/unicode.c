/* unicode: flag lookup over the generated range table, lenient UTF-8 (spec 2.1). */
#include "tokenizer/unicode.h"

uint16_t ll_cpt_flags(uint32_t cp) {
    if (cp > 0x10FFFF) return LL_CPT_UNDEFINED;
    /* largest i with start_i <= cp; ranges[0].start is 0 */
    size_t lo = 0, hi = ll_unicode_n_ranges;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (ll_unicode_ranges[mid].start <= cp) lo = mid;
        else hi = mid;
    }
    return ll_unicode_ranges[lo].flags;
}

size_t ll_utf8_decode1(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned char c = s[0];
    size_t len;
    uint32_t v;
    if (c < 0x80) { *cp = c; return 1; }
    if ((c & 0xE0) == 0xC0) { len = 2; v = c & 0x1F; }
    else if ((c & 0xF0) == 0xE0) { len = 3; v = c & 0x0F; }
    else if ((c & 0xF8) == 0xF0) { len = 4; v = c & 0x07; }
    else { *cp = LL_CPT_REPLACEMENT; return 1; }   /* stray continuation, F8-FF */
    if (len > n) { *cp = LL_CPT_REPLACEMENT; return 1; }
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) { *cp = LL_CPT_REPLACEMENT; return 1; }
        v = (v << 6) | (s[i] & 0x3F);
    }
    *cp = v;
    return len;
}

size_t ll_utf8_decode_lenient(const unsigned char *s, size_t n, uint32_t *out) {
    size_t i = 0, k = 0;
    while (i < n) {
        uint32_t cp;
        size_t len = ll_utf8_decode1(s + i, n - i, &cp);
        if (cp > 0x10FFFF) { cp = LL_CPT_REPLACEMENT; len = 1; }
        out[k++] = cp;
        i += len;
    }
    return k;
}

size_t ll_utf8_encode(uint32_t cp, unsigned char *out) {
    if (cp < 0x80) { out[0] = (unsigned char)cp; return 1; }
    if (cp < 0x800) {
        out[0] = (unsigned char)(0xC0 | (cp >> 6));
        out[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (unsigned char)(0xE0 | (cp >> 12));
        out[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (unsigned char)(0xF0 | ((cp >> 18) & 0x07));
    out[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}
