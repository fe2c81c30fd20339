/* pretok: the pre-tokenizers of spec 2.3, as hand-written matchers over code points.
 *
 * Each matcher walks one window [beg, end) of code points and records where every
 * pre-token ends. They follow the regex semantics (first alternative that matches wins,
 * greedy quantifiers); lookahead never sees past the window, so a whitespace run that ends
 * the window counts as "not followed by non-whitespace". */
#include "tokenizer/unicode.h"
#include "tokenizer/vocab_impl.h"

static uint16_t cpt_flags_fast(uint32_t cp) {
    return cp < 128 ? ll_unicode_ascii_flags[cp] : ll_cpt_flags(cp);
}

typedef struct {
    const uint32_t *cpts;
    size_t beg, end;
    size_t *ends;
    size_t n_ends;
} splitter;

#define OUT_OF_RANGE 0xFFFFFFFFu

static uint32_t sp_cpt(const splitter *s, size_t i) {
    return i < s->end ? s->cpts[i] : OUT_OF_RANGE;
}
static uint16_t sp_flags(const splitter *s, size_t i) {
    return i < s->end ? cpt_flags_fast(s->cpts[i]) : 0;
}
static void sp_add(splitter *s, size_t end) {
    if (s->n_ends == 0 ? end > s->beg : end > s->ends[s->n_ends - 1]) s->ends[s->n_ends++] = end;
}

#define IS_L(f)  ((f) & LL_CPT_LETTER)
#define IS_N(f)  ((f) & LL_CPT_NUMBER)
#define IS_WS(f) ((f) & LL_CPT_WHITESPACE)
/* "other" for [^\s\p{L}\p{N}]: any code point in the window that is none of the three */
#define IS_OTHER(f) (!((f) & (LL_CPT_LETTER | LL_CPT_NUMBER | LL_CPT_WHITESPACE)) && (f) != 0)

static uint32_t ascii_lower(uint32_t c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

/* Contractions at pos (an apostrophe): returns the match length (2 or 3) or 0.
 * fold: case-insensitive (Llama 3) or lower case only (GPT-2). */
static size_t match_contraction(const splitter *s, size_t pos, int fold) {
    if (sp_cpt(s, pos) != '\'' || pos + 1 >= s->end) return 0;
    uint32_t a = sp_cpt(s, pos + 1);
    if (fold) a = ascii_lower(a);
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if (pos + 2 >= s->end) return 0;
    uint32_t b = sp_cpt(s, pos + 2);
    if (fold) b = ascii_lower(b);
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    return 0;
}

/* Llama 3 (spec 2.3, rules 1-7). */
static void split_llama3(splitter *s) {
    size_t pos = s->beg;
    while (pos < s->end) {
        uint32_t c = sp_cpt(s, pos);
        uint16_t f = sp_flags(s, pos);

        /* 1. (?i:'s|'t|'re|'ve|'m|'ll|'d) */
        size_t k = match_contraction(s, pos, 1);
        if (k) { pos += k; sp_add(s, pos); continue; }

        /* 2. [^\r\n\p{L}\p{N}]?\p{L}+ */
        if (!(c == '\r' || c == '\n' || IS_N(f)) && (IS_L(f) || IS_L(sp_flags(s, pos + 1)))) {
            pos++;
            while (IS_L(sp_flags(s, pos))) pos++;
            sp_add(s, pos);
            continue;
        }

        /* 3. \p{N}{1,3} */
        if (IS_N(f)) {
            size_t start = pos;
            while (IS_N(sp_flags(s, pos))) {
                pos++;
                if (pos - start == 3) { sp_add(s, pos); start = pos; }
            }
            sp_add(s, pos);
            continue;
        }

        /* 4. ' '?[^\s\p{L}\p{N}]+[\r\n]* (a lone space at the window end falls through to
         * the same single-space pre-token rule 6/7 would give) */
        uint16_t f2 = c == ' ' ? sp_flags(s, pos + 1) : f;
        if (IS_OTHER(f2) || (c == ' ' && f2 == 0)) {
            if (c == ' ') pos++;
            while (IS_OTHER(sp_flags(s, pos))) pos++;
            while (sp_cpt(s, pos) == '\r' || sp_cpt(s, pos) == '\n') pos++;
            sp_add(s, pos);
            continue;
        }

        /* whitespace run, and where its last CR/LF ends */
        size_t n_ws = 0, last_crlf_end = 0;
        while (IS_WS(sp_flags(s, pos + n_ws))) {
            uint32_t w = sp_cpt(s, pos + n_ws);
            n_ws++;
            if (w == '\r' || w == '\n') last_crlf_end = pos + n_ws;
        }
        /* 5. \s*[\r\n]+ */
        if (last_crlf_end) { pos = last_crlf_end; sp_add(s, pos); continue; }
        /* 6. \s+(?!\S): before a non-space, leave the last whitespace to the next match */
        if (n_ws > 1 && pos + n_ws < s->end) { pos += n_ws - 1; sp_add(s, pos); continue; }
        /* 7. \s+ */
        if (n_ws) { pos += n_ws; sp_add(s, pos); continue; }

        pos++;   /* nothing matched: one code point alone */
        sp_add(s, pos);
    }
}

/* GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static void split_gpt2(splitter *s) {
    size_t pos = s->beg;
    while (pos < s->end) {
        uint32_t c = sp_cpt(s, pos);
        uint16_t f = sp_flags(s, pos);

        size_t k = match_contraction(s, pos, 0);
        if (k) { pos += k; sp_add(s, pos); continue; }

        uint16_t f2 = c == ' ' ? sp_flags(s, pos + 1) : f;
        if (IS_L(f2)) {
            if (c == ' ') pos++;
            while (IS_L(sp_flags(s, pos))) pos++;
            sp_add(s, pos);
            continue;
        }
        if (IS_N(f2)) {
            if (c == ' ') pos++;
            while (IS_N(sp_flags(s, pos))) pos++;
            sp_add(s, pos);
            continue;
        }
        if (IS_OTHER(f2)) {
            if (c == ' ') pos++;
            while (IS_OTHER(sp_flags(s, pos))) pos++;
            sp_add(s, pos);
            continue;
        }

        size_t n_ws = 0;
        while (IS_WS(sp_flags(s, pos + n_ws))) n_ws++;
        if (n_ws > 1 && pos + n_ws < s->end) { pos += n_ws - 1; sp_add(s, pos); continue; }
        if (n_ws) { pos += n_ws; sp_add(s, pos); continue; }

        pos++;
        sp_add(s, pos);
    }
}

size_t ll_pretok_split(ll_pre_kind pre, const uint32_t *cpts, size_t n, size_t *ends) {
    splitter s = { cpts, 0, n, ends, 0 };
    switch (pre) {
    case LL_PRE_LLAMA3:
        split_llama3(&s);
        break;
    case LL_PRE_SMOLLM:
        /* pass 1: \p{N} — every number is its own piece, the text between stays whole;
         * pass 2: GPT-2 inside each piece. */
        for (size_t i = 0; i < n;) {
            size_t j = i;
            if (IS_N(cpt_flags_fast(cpts[i]))) j = i + 1;
            else while (j < n && !IS_N(cpt_flags_fast(cpts[j]))) j++;
            s.beg = i;
            s.end = j;
            split_gpt2(&s);
            i = j;
        }
        break;
    case LL_PRE_DEFAULT:
    default:
        split_gpt2(&s);
        break;
    }
    return s.n_ends;
}
