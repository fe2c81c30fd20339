/* utf8: a code-point range as alternatives of byte-class sequences.
 *
 * [lo, hi] is cut until every piece has one encoded length and, byte by byte, spans a full
 * range of continuation bytes wherever a later byte varies; then each piece is one sequence of
 * byte ranges (the method of RE2's and Rust regex-syntax's UTF-8 compilers). Surrogates
 * (U+D800..U+DFFF) are never produced: UTF-8 cannot carry them. At most a few dozen
 * alternatives for any range. */
#include "grammar/grammar.h"

static int utf8_encode(uint32_t c, unsigned char *o) {
    if (c < 0x80) { o[0] = (unsigned char)c; return 1; }
    if (c < 0x800) { o[0] = (unsigned char)(0xC0 | (c >> 6)); o[1] = (unsigned char)(0x80 | (c & 63)); return 2; }
    if (c < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (c >> 12)); o[1] = (unsigned char)(0x80 | ((c >> 6) & 63));
        o[2] = (unsigned char)(0x80 | (c & 63)); return 3;
    }
    o[0] = (unsigned char)(0xF0 | (c >> 18)); o[1] = (unsigned char)(0x80 | ((c >> 12) & 63));
    o[2] = (unsigned char)(0x80 | ((c >> 6) & 63)); o[3] = (unsigned char)(0x80 | (c & 63));
    return 4;
}

static void utf8_split(gr_builder *b, int32_t rule, uint32_t lo, uint32_t hi, int32_t tail, int rec) {
    if (lo > hi || b->st != LL_OK || rec > 64) return;
    if (hi > 0x10FFFF) hi = 0x10FFFF;
    if (lo > hi) return;
    if (lo <= 0xDFFF && hi >= 0xD800) {
        if (lo < 0xD800) utf8_split(b, rule, lo, 0xD7FF, tail, rec + 1);
        if (hi > 0xDFFF) utf8_split(b, rule, 0xE000, hi, tail, rec + 1);
        return;
    }
    static const uint32_t len_max[3] = { 0x7F, 0x7FF, 0xFFFF };
    for (int i = 0; i < 3; i++)
        if (lo <= len_max[i] && hi > len_max[i]) {
            utf8_split(b, rule, lo, len_max[i], tail, rec + 1);
            utf8_split(b, rule, len_max[i] + 1, hi, tail, rec + 1);
            return;
        }
    unsigned char el[4], eh[4];
    int n = utf8_encode(lo, el);
    for (int i = 1; i < n; i++) {
        uint32_t m = (1u << (6 * i)) - 1;
        if ((lo & ~m) != (hi & ~m)) {
            if ((lo & m) != 0) {
                utf8_split(b, rule, lo, lo | m, tail, rec + 1);
                utf8_split(b, rule, (lo | m) + 1, hi, tail, rec + 1);
                return;
            }
            if ((hi & m) != m) {
                utf8_split(b, rule, lo, (hi & ~m) - 1, tail, rec + 1);
                utf8_split(b, rule, hi & ~m, hi, tail, rec + 1);
                return;
            }
        }
    }
    utf8_encode(hi, eh);
    gr_seq s = {0};
    for (int i = 0; i < n; i++) {
        uint64_t bits[4] = {0};
        gr_class_range(bits, el[i], eh[i]);
        gr_seq_char(b, &s, bits);
    }
    if (tail >= 0) gr_seq_ref(b, &s, tail);
    gr_add_alt(b, rule, &s);
    gr_seq_free(&s);
}

void gr_utf8_range(gr_builder *b, int32_t rule, uint32_t lo, uint32_t hi, int32_t tail) {
    utf8_split(b, rule, lo, hi, tail, 0);
}
