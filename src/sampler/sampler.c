/* sampler: penalties, top-k, typical-p, top-p, min-p, temperature, then a seeded draw.
 *
 * The chain and its order are llama.cpp's default (common/sampling.cpp, src/llama-sampling.cpp):
 *
 *     penalties -> top_k -> typical_p -> top_p -> min_p -> temperature -> draw from softmax
 *
 * temperature <= 0 short-cuts to greedy: argmax after the penalties, ties to the lowest id
 * (every filter keeps the maximum, so this is what the full chain would pick).
 *
 * An allow-mask (ll_sampler_sample_masked, for constrained decoding) acts before all of it:
 * a disallowed token enters the chain as a -Inf logit, whatever the model gave it.
 *
 * Cost per token for n_vocab = 128256: one copy of the logits into the candidate array, the
 * penalties over the distinct tokens of the window, an O(n log k) heap selection for top-k (k
 * = 40 by default), and softmaxes over the survivors. When top-k is off and top-p is on, the
 * candidates are sorted best first only as far as top-p needs (see apply_top_p). All buffers
 * are allocated by ll_sampler_init; sampling never calls malloc (STYLE.md §6). We write our own
 * heap routines rather than use qsort because glibc's qsort may allocate.
 *
 * Randomness: xoshiro256** (Blackman & Vigna 2018), state filled from the seed by splitmix64.
 * Same seed + same logits + same history -> same token, on every platform. llama.cpp draws
 * with std::mt19937 + std::discrete_distribution, so the same seed does not give llama.cpp's
 * tokens; only the distribution sampled from is the same.
 */
#include "core/core.h"

#include <float.h>
#include <math.h>

typedef struct {
    float   logit;
    int32_t id;
} sampler_cand;

struct ll_sampler {
    ll_sampler_params p;
    int32_t  n_vocab;
    uint64_t rng[4];          /* xoshiro256** state */

    sampler_cand *cand;       /* (n_vocab) working candidates of the current sample call */
    sampler_cand *tmp;        /* (n_vocab) scratch for typical-p */
    float        *prob;       /* (n_vocab) probabilities of cand[0..n) */
    float        *score;      /* (n_vocab) typical-p shifted scores, indexed like cand */

    /* Penalty history: the last repeat_last_n accepted tokens (all of them for -1). */
    int32_t *ring;            /* (repeat_last_n) oldest at ring_head once full; NULL for -1/0 */
    int32_t  ring_cap, ring_len, ring_head;
    int32_t *count;           /* (n_vocab) occurrences of each id in the window */
    int32_t *distinct;        /* (n_vocab) ids with count > 0, in no particular order */
    int32_t *distinct_pos;    /* (n_vocab) index of an id in distinct[], valid when count > 0 */
    int32_t  n_distinct;
};

/* ---- RNG ------------------------------------------------------------------------------------ */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint64_t rotl64(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(uint64_t s[4]) {
    uint64_t r = rotl64(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl64(s[3], 45);
    return r;
}

/* Uniform in [0, 1) with 53 random bits. */
static double rng_uniform(uint64_t s[4]) { return (double)(rng_next(s) >> 11) * 0x1.0p-53; }

static void rng_seed(uint64_t s[4], uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) s[i] = splitmix64(&x);   /* never all zero */
}

/* ---- ordering: logit descending, then id ascending (a total order, so results are exact) ---- */

static inline int cand_before(const sampler_cand *a, const sampler_cand *b) {
    return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

/* Sift down in a heap whose root is the element that sorts LAST (the "worst" candidate). */
static void heap_sift_worst(sampler_cand *h, size_t n, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, w = i;
        if (l < n && cand_before(&h[w], &h[l])) w = l;
        if (l + 1 < n && cand_before(&h[w], &h[l + 1])) w = l + 1;
        if (w == i) return;
        sampler_cand t = h[i]; h[i] = h[w]; h[w] = t;
        i = w;
    }
}

static void cand_heapsort(sampler_cand *c, size_t n) {
    for (size_t i = n / 2; i-- > 0;) heap_sift_worst(c, n, i);
    for (size_t m = n; m > 1; m--) {
        sampler_cand t = c[0]; c[0] = c[m - 1]; c[m - 1] = t;
        heap_sift_worst(c, m - 1, 0);
    }
}

static inline void cand_swap(sampler_cand *a, sampler_cand *b) { sampler_cand t = *a; *a = *b; *b = t; }

/* Hoare-style partition around the median of three; returns the pivot's final index. */
static size_t cand_partition(sampler_cand *c, size_t n) {
    size_t m = n / 2;
    if (cand_before(&c[m], &c[0])) cand_swap(&c[m], &c[0]);
    if (cand_before(&c[n - 1], &c[0])) cand_swap(&c[n - 1], &c[0]);
    if (cand_before(&c[n - 1], &c[m])) cand_swap(&c[n - 1], &c[m]);
    cand_swap(&c[m], &c[n - 1]);                   /* pivot to the end */
    sampler_cand piv = c[n - 1];
    size_t store = 0;
    for (size_t i = 0; i + 1 < n; i++)
        if (cand_before(&c[i], &piv)) cand_swap(&c[i], &c[store++]);
    cand_swap(&c[store], &c[n - 1]);
    return store;
}

/* Introsort (Musser 1997): quicksort, insertion sort below 16, heapsort when the recursion
 * depth suggests an adversarial input. Best first. */
static void cand_sort(sampler_cand *c, size_t n, int depth) {
    while (n > 16) {
        if (depth-- == 0) { cand_heapsort(c, n); return; }
        size_t p = cand_partition(c, n);
        if (p < n - p - 1) { cand_sort(c, p, depth); c += p + 1; n -= p + 1; }
        else { cand_sort(c + p + 1, n - p - 1, depth); n = p; }
    }
    for (size_t i = 1; i < n; i++) {
        sampler_cand x = c[i];
        size_t j = i;
        while (j > 0 && cand_before(&x, &c[j - 1])) { c[j] = c[j - 1]; j--; }
        c[j] = x;
    }
}

/* Put the k best of c[0..n) into c[0..k), sorted best first: a bounded heap for small k,
 * otherwise quickselect (expected O(n)) then sorting the k. The order is total (logit, then
 * id), so the result does not depend on the method. */
static void cand_top_k(sampler_cand *c, size_t n, size_t k) {
    if (k == 0) return;
    if (k <= n / 16) {
        /* Small k (top_k 40 of 128256): keep a heap of the k best whose root is the worst of
         * them; most candidates lose one comparison against the root and cost nothing more. */
        for (size_t i = k / 2; i-- > 0;) heap_sift_worst(c, k, i);
        for (size_t i = k; i < n; i++)
            if (cand_before(&c[i], &c[0])) { cand_swap(&c[0], &c[i]); heap_sift_worst(c, k, 0); }
        for (size_t m = k; m > 1; m--) { cand_swap(&c[0], &c[m - 1]); heap_sift_worst(c, m - 1, 0); }
        return;
    }
    /* Invariant: everything before b beats b[0..m), which beats everything after it; the best
     * `want` of b[0..m) are still to be moved to its front. */
    sampler_cand *b = c;
    size_t m = n, want = k;
    int depth = 2;
    for (size_t x = n; x > 1; x >>= 1) depth += 2;
    while (want < m) {
        if (m <= 16 || depth-- == 0) { cand_sort(b, m, 0); break; }  /* small or adversarial */
        size_t p = cand_partition(b, m);
        if (p == want || p + 1 == want) break;
        if (p > want) m = p;
        else { b += p + 1; m -= p + 1; want -= p + 1; }
    }
    depth = 2;
    for (size_t x = k; x > 1; x >>= 1) depth += 2;
    cand_sort(c, k, depth);
}

/* ---- API ------------------------------------------------------------------------------------ */

ll_sampler_params ll_sampler_default_params(void) {
    ll_sampler_params p = {
        .temperature = 0.8f, .top_k = 40, .top_p = 0.9f, .min_p = 0.0f, .typical_p = 1.0f,
        .repeat_penalty = 1.1f, .presence_penalty = 0.0f, .frequency_penalty = 0.0f,
        .repeat_last_n = 64, .seed = LL_SAMPLER_SEED_RANDOM,
    };
    return p;
}

void ll_sampler_free(ll_sampler *s) {
    if (!s) return;
    ll_free(s->cand);
    ll_free(s->tmp);
    ll_free(s->prob);
    ll_free(s->score);
    ll_free(s->ring);
    ll_free(s->count);
    ll_free(s->distinct);
    ll_free(s->distinct_pos);
    ll_free(s);
}

static ll_status sampler_check_params(const ll_sampler_params *p, int32_t n_vocab, ll_error *err) {
    if (n_vocab <= 0)
        return ll_fail(err, LL_ERR_ARG, "sampler: n_vocab %d must be positive", (int)n_vocab);
    const float f[] = { p->temperature, p->top_p, p->min_p, p->typical_p, p->repeat_penalty,
                        p->presence_penalty, p->frequency_penalty };
    static const char *names[] = { "temperature", "top_p", "min_p", "typical_p", "repeat_penalty",
                                   "presence_penalty", "frequency_penalty" };
    _Static_assert(sizeof f / sizeof f[0] == sizeof names / sizeof names[0], "names");
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (!isfinite(f[i]))
            return ll_fail(err, LL_ERR_ARG, "sampler: %s is not a finite number", names[i]);
    if (p->repeat_penalty <= 0.0f)
        return ll_fail(err, LL_ERR_ARG, "sampler: repeat_penalty %g must be > 0",
                       (double)p->repeat_penalty);
    if (p->repeat_last_n < -1)
        return ll_fail(err, LL_ERR_ARG, "sampler: repeat_last_n %d must be >= -1",
                       (int)p->repeat_last_n);
    return LL_OK;
}

ll_status ll_sampler_init(ll_sampler **out, const ll_sampler_params *params, int32_t n_vocab,
                          ll_error *err) {
    *out = NULL;
    ll_sampler_params p = params ? *params : ll_sampler_default_params();
    ll_status st = sampler_check_params(&p, n_vocab, err);
    if (st != LL_OK) return st;

    ll_sampler *s = ll_calloc(1, sizeof *s);
    if (!s) return ll_fail(err, LL_ERR_NOMEM, "sampler: out of memory");
    s->p = p;
    s->n_vocab = n_vocab;
    size_t nv = (size_t)n_vocab;
    s->cand = ll_malloc_array(nv, sizeof *s->cand);
    s->tmp = ll_malloc_array(nv, sizeof *s->tmp);
    s->prob = ll_malloc_array(nv, sizeof *s->prob);
    s->score = ll_malloc_array(nv, sizeof *s->score);
    s->count = ll_calloc(nv, sizeof *s->count);
    s->distinct = ll_malloc_array(nv, sizeof *s->distinct);
    s->distinct_pos = ll_malloc_array(nv, sizeof *s->distinct_pos);
    if (!s->cand || !s->tmp || !s->prob || !s->score || !s->count || !s->distinct ||
        !s->distinct_pos)
        goto nomem;
    if (p.repeat_last_n > 0) {
        s->ring_cap = p.repeat_last_n;
        s->ring = ll_malloc_array((size_t)p.repeat_last_n, sizeof *s->ring);
        if (!s->ring) goto nomem;
    }
    uint64_t seed = p.seed;
    if (seed == LL_SAMPLER_SEED_RANDOM) {
        /* Not for cryptography: distinct per process and per sampler is all we need. */
        static _Atomic uint64_t n_random;
        uint64_t x = ll_time_ns() ^ (uint64_t)(uintptr_t)s ^ (n_random++ * 0x9e3779b97f4a7c15ull);
        seed = splitmix64(&x);
    }
    rng_seed(s->rng, seed);
    *out = s;
    return LL_OK;

nomem:
    ll_sampler_free(s);
    return ll_fail(err, LL_ERR_NOMEM, "sampler: out of memory for n_vocab %d", (int)n_vocab);
}

void ll_sampler_reset(ll_sampler *s) {
    if (!s) return;
    for (int32_t i = 0; i < s->n_distinct; i++) s->count[s->distinct[i]] = 0;
    s->n_distinct = 0;
    s->ring_len = s->ring_head = 0;
}

static void history_add(ll_sampler *s, int32_t id) {
    if (s->count[id]++ == 0) {
        s->distinct_pos[id] = s->n_distinct;
        s->distinct[s->n_distinct++] = id;
    }
}

static void history_drop(ll_sampler *s, int32_t id) {
    if (--s->count[id] == 0) {          /* swap-remove from distinct[] */
        int32_t at = s->distinct_pos[id], last = s->distinct[--s->n_distinct];
        s->distinct[at] = last;
        s->distinct_pos[last] = at;
    }
}

void ll_sampler_accept(ll_sampler *s, int32_t id) {
    if (!s || id < 0 || id >= s->n_vocab || s->p.repeat_last_n == 0) return;
    if (s->p.repeat_last_n < 0) {        /* whole context: counts only grow */
        if (s->count[id] < INT32_MAX) history_add(s, id);
        return;
    }
    if (s->ring_len == s->ring_cap) {    /* full: the oldest token leaves the window */
        history_drop(s, s->ring[s->ring_head]);
        s->ring[s->ring_head] = id;
        s->ring_head = (s->ring_head + 1) % s->ring_cap;
    } else {
        s->ring[(s->ring_head + s->ring_len++) % s->ring_cap] = id;
    }
    history_add(s, id);
}

/* Repeat penalty (Keskar et al. 2019, CTRL) as llama.cpp applies it: a positive logit is
 * divided by the penalty, a non-positive one multiplied; then OpenAI-style frequency and
 * presence penalties: logit -= count * frequency + (count > 0) * presence.
 * cand[] is still indexed by id here. */
static void apply_penalties(ll_sampler *s) {
    const ll_sampler_params *p = &s->p;
    if (p->repeat_last_n == 0 ||
        (p->repeat_penalty == 1.0f && p->frequency_penalty == 0.0f && p->presence_penalty == 0.0f))
        return;
    for (int32_t i = 0; i < s->n_distinct; i++) {
        int32_t id = s->distinct[i];
        float *l = &s->cand[id].logit;
        if (*l <= 0.0f) *l *= p->repeat_penalty;
        else *l /= p->repeat_penalty;
        *l -= (float)s->count[id] * p->frequency_penalty + p->presence_penalty;
    }
}

/* Probabilities of c[0..n) into prob[0..n) (softmax over logits, double accumulation).
 * Returns false when no candidate has a finite logit. */
static int softmax(const sampler_cand *c, size_t n, float *prob) {
    float mx = -INFINITY;
    for (size_t i = 0; i < n; i++) if (c[i].logit > mx) mx = c[i].logit;
    if (!isfinite(mx)) return 0;
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) { double e = exp((double)c[i].logit - mx); prob[i] = (float)e; sum += e; }
    for (size_t i = 0; i < n; i++) prob[i] = (float)(prob[i] / sum);
    return 1;
}

/* Locally typical sampling (Meister et al. 2022): keep the tokens whose surprisal -log p is
 * closest to the entropy, in that order, until their mass exceeds typical_p (at least one).
 * The survivors are left ordered by that distance, not by logit, as llama.cpp leaves them. */
static size_t apply_typical(ll_sampler *s, size_t n) {
    if (!softmax(s->cand, n, s->prob)) return n;
    double entropy = 0.0;
    for (size_t i = 0; i < n; i++)
        if (s->prob[i] > 0.0f) entropy -= (double)s->prob[i] * log((double)s->prob[i]);
    /* Reuse tmp as (score, index) pairs: logit = shifted score, id = index into cand.
     * Sorting ascending by score = cand_top_k on the negated score. */
    for (size_t i = 0; i < n; i++) {
        float sc = s->prob[i] > 0.0f ? (float)fabs(-log((double)s->prob[i]) - entropy) : INFINITY;
        s->tmp[i].logit = -sc;
        s->tmp[i].id = (int32_t)i;
    }
    cand_top_k(s->tmp, n, n);
    double cum = 0.0;
    size_t keep = n;
    for (size_t i = 0; i < n; i++) {
        cum += s->prob[s->tmp[i].id];
        if (cum > s->p.typical_p) { keep = i + 1; break; }
    }
    /* Gather the kept candidates in score order; score[] holds their logits meanwhile. */
    for (size_t i = 0; i < keep; i++) s->score[i] = s->cand[s->tmp[i].id].logit;
    for (size_t i = 0; i < keep; i++) s->tmp[i].id = s->cand[s->tmp[i].id].id;
    for (size_t i = 0; i < keep; i++) { s->cand[i].id = s->tmp[i].id; s->cand[i].logit = s->score[i]; }
    return keep;
}

/* Nucleus sampling (Holtzman et al. 2020): the shortest best-first prefix whose mass reaches
 * top_p. Leaves that prefix sorted best first. When cand is not sorted yet (top-k off), a full
 * sort of 128k candidates would cost tens of ms per token, so select the best 256, then 1024,
 * 4096, ... until their mass reaches top_p: real distributions stop at the first step, a flat
 * one degrades to the full sort. */
static size_t apply_top_p(ll_sampler *s, size_t n, int sorted) {
    float mx = -INFINITY;
    for (size_t i = 0; i < n; i++) if (s->cand[i].logit > mx) mx = s->cand[i].logit;
    if (!isfinite(mx)) return n;
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) sum += exp((double)s->cand[i].logit - mx);
    size_t k = sorted ? n : 256, done = 0;
    double cum = 0.0;
    for (;;) {
        if (k > n) k = n;
        if (!sorted) cand_top_k(s->cand, n, k);   /* [0, k) best first; [0, done) unchanged */
        for (size_t i = done; i < k; i++) {
            cum += exp((double)s->cand[i].logit - mx) / sum;
            if (cum >= s->p.top_p) return i + 1;
        }
        if (k == n) return n;
        done = k;
        k *= 4;
    }
}

/* min-p: drop tokens whose probability is below min_p times the best one's, i.e. whose logit
 * is below max + log(min_p). Keeps the order of the survivors. */
static size_t apply_min_p(ll_sampler *s, size_t n) {
    float mx = -INFINITY;
    for (size_t i = 0; i < n; i++) if (s->cand[i].logit > mx) mx = s->cand[i].logit;
    if (!isfinite(mx)) return n;
    float floor_logit = mx + logf(s->p.min_p);
    if (floor_logit > mx) floor_logit = mx;    /* min_p > 1 keeps the best token, as llama.cpp */
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (s->cand[i].logit >= floor_logit) s->cand[k++] = s->cand[i];
    return k;
}

/* Copy the logits into cand[], disallowed ones as -Inf, so that every later step (penalties,
 * filters, greedy) sees a masked token exactly as a -Inf logit: -Inf stays -Inf under the
 * penalties (repeat_penalty > 0) and gets probability 0, so it is never picked. A disallowed
 * slot's value is never read, so NaN there is harmless. Fails when an allowed token is NaN or
 * +Inf (R17), or when nothing allowed is finite: LL_ERR_MASKED with a mask, the R17 error
 * without one (all -Inf logits are the model's fault, not the caller's). */
static ll_status sampler_load_logits(ll_sampler *s, const float *logits, const uint64_t *allow,
                                     ll_error *err) {
    size_t n = (size_t)s->n_vocab, n_allowed = 0, n_finite = 0;
    for (size_t i = 0; i < n; i++) {
        float l = -INFINITY;
        if (!allow || (allow[i / 64] >> (i % 64) & 1)) {
            l = logits[i];
            /* R17: never sample from NaN. +Inf is as bad (softmax of it is NaN); -Inf is a
             * legal mask. */
            if (isnan(l) || l == INFINITY)
                return ll_fail(err, LL_ERR_FORMAT, "numerical error: NaN logits (%s at token %zu)",
                               isnan(l) ? "NaN" : "+Inf", i);
            n_allowed++;
            n_finite += l != -INFINITY;
        }
        s->cand[i].logit = l;
        s->cand[i].id = (int32_t)i;
    }
    if (n_finite > 0) return LL_OK;
    if (!allow)
        return ll_fail(err, LL_ERR_FORMAT, "numerical error: NaN logits (no finite logit left)");
    if (n_allowed == 0)
        return ll_fail(err, LL_ERR_MASKED, "sampler: the allow-mask permits none of %zu tokens", n);
    return ll_fail(err, LL_ERR_MASKED,
                   "sampler: all %zu tokens the allow-mask permits have -Inf logits", n_allowed);
}

ll_status ll_sampler_sample(ll_sampler *s, const float *logits, int32_t *id, ll_error *err) {
    return ll_sampler_sample_masked(s, logits, NULL, id, err);
}

ll_status ll_sampler_sample_masked(ll_sampler *s, const float *logits, const uint64_t *allow,
                                   int32_t *id, ll_error *err) {
    const ll_sampler_params *p = &s->p;
    size_t n = (size_t)s->n_vocab;

    ll_status st = sampler_load_logits(s, logits, allow, err);
    if (st != LL_OK) return st;
    apply_penalties(s);

    if (p->temperature <= 0.0f) {
        size_t best = 0;              /* strict > keeps the lowest id among ties */
        for (size_t i = 1; i < n; i++) if (s->cand[i].logit > s->cand[best].logit) best = i;
        if (s->cand[best].logit == -INFINITY)   /* penalties overflowed the rest: as below */
            return ll_fail(err, LL_ERR_FORMAT, "numerical error: NaN logits (no finite logit left)");
        *id = (int32_t)best;
        ll_sampler_accept(s, *id);
        return LL_OK;
    }

    int sorted = 0;
    if (p->top_k > 0 && (size_t)p->top_k < n) {
        cand_top_k(s->cand, n, (size_t)p->top_k);
        n = (size_t)p->top_k;
        sorted = 1;
    }
    if (p->typical_p < 1.0f) { n = apply_typical(s, n); sorted = 0; }
    if (p->top_p < 1.0f) { n = apply_top_p(s, n, sorted); sorted = 1; }
    if (p->min_p > 0.0f) n = apply_min_p(s, n);

    /* Temperature and the draw together: p_i ∝ exp((l_i - max) / T), computed in double so a
     * tiny T cannot overflow. Walking the cumulative sum in candidate order. */
    float mx = -INFINITY;
    for (size_t i = 0; i < n; i++) if (s->cand[i].logit > mx) mx = s->cand[i].logit;
    if (!isfinite(mx))
        return ll_fail(err, LL_ERR_FORMAT, "numerical error: NaN logits (no finite logit left)");
    double inv_t = 1.0 / (double)p->temperature, sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        s->prob[i] = (float)exp(((double)s->cand[i].logit - mx) * inv_t);
        sum += s->prob[i];
    }
    double target = rng_uniform(s->rng) * sum, cum = 0.0;
    size_t pick = n - 1;
    for (size_t i = 0; i < n; i++) {
        cum += s->prob[i];
        if (target < cum) { pick = i; break; }
    }
    /* Rounding may leave target >= cum at the end: fall back to the last token with weight. */
    if (cum <= target) while (pick > 0 && s->prob[pick] == 0.0f) pick--;
    *id = s->cand[pick].id;
    ll_sampler_accept(s, *id);
    return LL_OK;
}
