/* unicode: code point flags and the lenient UTF-8 codec the tokenizers use
 * (../shared/spec/tokenizers.md 2.1, 2.2). */
#ifndef LL_TOKENIZER_UNICODE_H
#define LL_TOKENIZER_UNICODE_H

#include <stddef.h>
#include <stdint.h>

/* Flags of one code point: one general category (or UNDEFINED for unassigned and anything
 * above U+10FFFF) plus WHITESPACE. A position outside the text has flags 0. */
enum {
    LL_CPT_UNDEFINED   = 0x001,
    LL_CPT_NUMBER      = 0x002,   /* \p{N} */
    LL_CPT_LETTER      = 0x004,   /* \p{L} */
    LL_CPT_SEPARATOR   = 0x008,   /* \p{Z} */
    LL_CPT_MARK        = 0x010,   /* \p{M} */
    LL_CPT_PUNCTUATION = 0x020,   /* \p{P} */
    LL_CPT_SYMBOL      = 0x040,   /* \p{S} */
    LL_CPT_CONTROL     = 0x080,   /* \p{C} other than Cn */
    LL_CPT_WHITESPACE  = 0x100,   /* \s: the spec's exact set */
};

typedef struct { uint32_t start; uint16_t flags; } ll_unicode_range;

extern const ll_unicode_range ll_unicode_ranges[];   /* unicode_data.c (generated) */
extern const size_t ll_unicode_n_ranges;
extern const char ll_unicode_version[];
extern const uint16_t ll_unicode_ascii_flags[128];

#define LL_CPT_REPLACEMENT 0xFFFDu

uint16_t ll_cpt_flags(uint32_t cp);

/* Decode one sequence at s[0..n) (n >= 1) leniently (spec 2.1): the lead byte alone sets the
 * length; the value is assembled without overlong/surrogate checks. A bad or truncated
 * sequence gives U+FFFD for the lead byte only. Returns the bytes consumed (>= 1). */
size_t ll_utf8_decode1(const unsigned char *s, size_t n, uint32_t *cp);

/* Decode a whole buffer: writes at most n code points to out (n always suffices) and returns
 * the count. Values above U+10FFFF (from F4 90.. to F7 ..) cannot be re-encoded, so each of
 * their bytes becomes U+FFFD (the lead byte and three stray continuation bytes). */
size_t ll_utf8_decode_lenient(const unsigned char *s, size_t n, uint32_t *out);

/* Encode cp (any value below 0x200000, surrogates included) as 1-4 bytes; returns the
 * length. out needs 4 bytes. */
size_t ll_utf8_encode(uint32_t cp, unsigned char *out);

#endif
