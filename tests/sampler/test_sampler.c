/* Tests for src/sampler: each filter on small hand-computed distributions, the penalty
 * arithmetic, greedy ties, seed determinism, a chi-square check of the draw, NaN (R17), and
 * allocation-failure injection. */
#include "core/core.h"
#include "../test.h"

#include <float.h>

/* A sampler with every filter off and no penalties: only what a test turns on acts. */
static ll_sampler_params plain_params(void) {
    ll_sampler_params p = ll_sampler_default_params();
    p.temperature = 1.0f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.typical_p = 1.0f;
    p.repeat_penalty = 1.0f;
    p.presence_penalty = 0.0f;
    p.frequency_penalty = 0.0f;
    p.repeat_last_n = 64;
    p.seed = 1234;
    return p;
}

static ll_sampler *mk(const ll_sampler_params *p, int32_t n_vocab) {
    ll_error err = {0};
    ll_sampler *s = NULL;
    ll_status st = ll_sampler_init(&s, p, n_vocab, &err);
    CHECK_MSG(st == LL_OK, "%s", err.msg);
    return s;
}

/* Draw n tokens, return how often each id came up (hist has n_vocab slots). */
static void draw_hist(ll_sampler *s, const float *logits, int32_t n_vocab, int n, long *hist) {
    for (int32_t i = 0; i < n_vocab; i++) hist[i] = 0;
    for (int i = 0; i < n; i++) {
        ll_error err = {0};
        int32_t id = -1;
        ll_status st = ll_sampler_sample(s, logits, &id, &err);
        if (st != LL_OK || id < 0 || id >= n_vocab) { CHECK_MSG(0, "sample failed: %s", err.msg); return; }
        hist[id]++;
    }
}

/* Logits whose softmax is exactly probs (up to float rounding). */
static void logits_from_probs(const double *probs, float *logits, int n) {
    for (int i = 0; i < n; i++) logits[i] = probs[i] > 0 ? (float)log(probs[i]) : -INFINITY;
}

static void test_default_params_are_ollamas(void) {
    ll_sampler_params p = ll_sampler_default_params();
    CHECK_NEAR(p.temperature, 0.8, 1e-7);
    CHECK_EQ_INT(p.top_k, 40);
    CHECK_NEAR(p.top_p, 0.9, 1e-7);
    CHECK_NEAR(p.min_p, 0.0, 0);
    CHECK_NEAR(p.typical_p, 1.0, 0);
    CHECK_NEAR(p.repeat_penalty, 1.1, 1e-7);
    CHECK_NEAR(p.presence_penalty, 0.0, 0);
    CHECK_NEAR(p.frequency_penalty, 0.0, 0);
    CHECK_EQ_INT(p.repeat_last_n, 64);
    CHECK(p.seed == LL_SAMPLER_SEED_RANDOM);
}

static void test_greedy_picks_argmax_and_lowest_id_on_ties(void) {
    ll_sampler_params p = plain_params();
    p.temperature = 0.0f;
    ll_sampler *s = mk(&p, 6);
    ll_error err = {0};
    int32_t id = -1;
    const float a[6] = { -1.0f, 2.0f, 3.5f, 0.0f, 3.49f, -INFINITY };
    CHECK(ll_sampler_sample(s, a, &id, &err) == LL_OK);
    CHECK_EQ_INT(id, 2);
    const float tie[6] = { 1.0f, 5.0f, 2.0f, 5.0f, 5.0f, 0.0f };
    ll_sampler_reset(s);
    CHECK(ll_sampler_sample(s, tie, &id, &err) == LL_OK);
    CHECK_EQ_INT(id, 1);
    /* Negative temperature is greedy too, and greedy ignores the other filters. */
    ll_sampler_free(s);
    p.temperature = -1.0f;
    p.top_k = 1;
    p.top_p = 0.1f;
    s = mk(&p, 6);
    const float neg[6] = { -9.0f, -3.0f, -3.0f, -7.0f, -INFINITY, -5.0f };
    CHECK(ll_sampler_sample(s, neg, &id, &err) == LL_OK);
    CHECK_EQ_INT(id, 1);
    ll_sampler_free(s);
}

/* Greedy + penalties on a hand-computed case:
 * history [2, 2, 3] -> count(2) = 2, count(3) = 1; repeat 2, frequency 0.5, presence 1.
 *   id 2: logit 4  ->  4 / 2 - (2 * 0.5 + 1) = 0
 *   id 3: logit -1 -> -1 * 2 - (1 * 0.5 + 1) = -3.5
 *   id 1: logit 1.5 untouched -> wins over id 2 (0) */
static void test_penalties_math(void) {
    ll_sampler_params p = plain_params();
    p.temperature = 0.0f;
    p.repeat_penalty = 2.0f;
    p.frequency_penalty = 0.5f;
    p.presence_penalty = 1.0f;
    ll_sampler *s = mk(&p, 4);
    ll_error err = {0};
    int32_t id = -1;
    ll_sampler_accept(s, 2);
    ll_sampler_accept(s, 2);
    ll_sampler_accept(s, 3);
    const float a[4] = { -2.0f, 1.5f, 4.0f, -1.0f };
    CHECK(ll_sampler_sample(s, a, &id, &err) == LL_OK);
    CHECK_EQ_INT(id, 1);
    ll_sampler_free(s);

    /* Same history with id 1 at -0.5 instead: id 2 (0) beats id 1 (-0.5), id 0 (-2), id 3. */
    s = mk(&p, 4);
    ll_sampler_accept(s, 2);
    ll_sampler_accept(s, 2);
    ll_sampler_accept(s, 3);
    const float b[4] = { -2.0f, -0.5f, 4.0f, -1.0f };
    CHECK(ll_sampler_sample(s, b, &id, &err) == LL_OK);
    CHECK_EQ_INT(id, 2);
    /* That pick was accepted: count(2) = 3 now, so 4 / 2 - (1.5 + 1) = -0.5, tie with id 1:
     * the lowest id wins. */
    CHECK(ll_sampler_sample(s, b, &id, &err) == LL_OK);
    CHECK_EQ_INT(id, 1);
    ll_sampler_free(s);

    /* A negative logit is multiplied: -1 * 2 = -2 now loses to -1.5 (dividing would give -0.5
     * and win). Zero is multiplied too and stays 0. */
    p.frequency_penalty = 0.0f;
    p.presence_penalty = 0.0f;
    s = mk(&p, 3);
    ll_sampler_accept(s, 0);
    ll_sampler_accept(s, 2);
    const float c[3] = { -1.0f, -1.5f, 0.0f };
    CHECK(ll_sampler_sample(s, c, &id, &err) == LL_OK);
    CHECK_EQ_INT(id, 2);
    const float d[3] = { -1.0f, -1.5f, -3.0f };
    CHECK(ll_sampler_sample(s, d, &id, &err) == LL_OK);
    CHECK_EQ_INT(id, 1);
    ll_sampler_free(s);
}

/* Penalties at temperature 1: with repeat penalty r on a token of logit L > 0 its probability
 * must follow softmax(L / r), checked statistically on two tokens. Also checks the window:
 * a token that left the last repeat_last_n is no longer penalised. */
static void test_penalty_window(void) {
    ll_sampler_params p = plain_params();
    p.temperature = 0.0f;
    p.repeat_penalty = 100.0f;
    p.repeat_last_n = 2;
    ll_sampler *s = mk(&p, 3);
    ll_error err = {0};
    int32_t id = -1;
    const float a[3] = { 1.0f, 3.0f, 2.0f };
    ll_sampler_accept(s, 1);                         /* window [1]: 3 -> 0.03 */
    CHECK(ll_sampler_sample(s, a, &id, &err) == LL_OK);
    CHECK_EQ_INT(id, 2);                              /* window [1, 2] */
    CHECK(ll_sampler_sample(s, a, &id, &err) == LL_OK);
    CHECK_EQ_INT(id, 0);                              /* both penalised; window [2, 0] */
    CHECK(ll_sampler_sample(s, a, &id, &err) == LL_OK);
    CHECK_EQ_INT(id, 1);                              /* 1 left the window */
    ll_sampler_free(s);

    /* repeat_last_n = 0: no penalty at all. */
    p.repeat_last_n = 0;
    s = mk(&p, 3);
    ll_sampler_accept(s, 1);
    CHECK(ll_sampler_sample(s, a, &id, &err) == LL_OK);
    CHECK_EQ_INT(id, 1);
    ll_sampler_free(s);

    /* repeat_last_n = -1: everything since init counts, however long ago. */
    p.repeat_last_n = -1;
    s = mk(&p, 3);
    ll_sampler_accept(s, 1);
    for (int i = 0; i < 1000; i++) ll_sampler_accept(s, 0);
    CHECK(ll_sampler_sample(s, a, &id, &err) == LL_OK);
    CHECK_EQ_INT(id, 2);
    ll_sampler_reset(s);                              /* forgets the history */
    CHECK(ll_sampler_sample(s, a, &id, &err) == LL_OK);
    CHECK_EQ_INT(id, 1);
    ll_sampler_free(s);
}

/* Pearson chi-square of observed counts against expected probabilities. */
static double chi_square(const long *obs, const double *prob, int k, long n) {
    double x2 = 0;
    for (int i = 0; i < k; i++) {
        double e = prob[i] * (double)n;
        if (e > 0) x2 += ((double)obs[i] - e) * ((double)obs[i] - e) / e;
        else if (obs[i] != 0) return INFINITY;
    }
    return x2;
}

/* At temperature 1 with every filter off, 200000 draws from softmax = (0.1, 0.2, 0.3, 0.4).
 * With 3 degrees of freedom P(chi2 > 25) is about 1.6e-5, a generous bound that a wrong
 * distribution (e.g. uniform, or temperature applied twice) fails by orders of magnitude. */
static void test_draw_matches_softmax_chi_square(void) {
    ll_sampler_params p = plain_params();
    p.seed = 42;
    ll_sampler *s = mk(&p, 4);
    const double prob[4] = { 0.1, 0.2, 0.3, 0.4 };
    float logits[4];
    logits_from_probs(prob, logits, 4);
    for (int i = 0; i < 4; i++) logits[i] += 7.0f;   /* softmax is shift-invariant */
    long hist[4];
    const long n = 200000;
    draw_hist(s, logits, 4, (int)n, hist);
    double x2 = chi_square(hist, prob, 4, n);
    CHECK_MSG(x2 < 25.0, "chi2 %.2f, counts %ld %ld %ld %ld", x2, hist[0], hist[1], hist[2], hist[3]);
    ll_sampler_free(s);

    /* Temperature 2 flattens: p_i ∝ prob_i^(1/2). */
    p.temperature = 2.0f;
    p.seed = 7;
    s = mk(&p, 4);
    double t2[4], z = 0;
    for (int i = 0; i < 4; i++) z += (t2[i] = sqrt(prob[i]));
    for (int i = 0; i < 4; i++) t2[i] /= z;
    draw_hist(s, logits, 4, (int)n, hist);
    x2 = chi_square(hist, t2, 4, n);
    CHECK_MSG(x2 < 25.0, "T=2 chi2 %.2f", x2);
    /* ... and is far from the T = 1 distribution. */
    CHECK(chi_square(hist, prob, 4, n) > 1000.0);
    ll_sampler_free(s);
}

/* top_k = 2 on (0.1, 0.2, 0.3, 0.4): only ids 2, 3 with probabilities 3/7, 4/7. */
static void test_top_k(void) {
    ll_sampler_params p = plain_params();
    p.top_k = 2;
    ll_sampler *s = mk(&p, 4);
    const double prob[4] = { 0.1, 0.2, 0.3, 0.4 };
    float logits[4];
    logits_from_probs(prob, logits, 4);
    long hist[4];
    draw_hist(s, logits, 4, 20000, hist);
    const double expect[4] = { 0, 0, 3.0 / 7, 4.0 / 7 };
    CHECK_EQ_INT(hist[0], 0);
    CHECK_EQ_INT(hist[1], 0);
    CHECK_MSG(chi_square(hist, expect, 4, 20000) < 25.0, "%ld %ld", hist[2], hist[3]);
    ll_sampler_free(s);

    /* top_k = 1 is greedy whatever the temperature; ties go to the lowest id. */
    p.top_k = 1;
    p.temperature = 5.0f;
    s = mk(&p, 5);
    const float t[5] = { 0.0f, 9.0f, 1.0f, 9.0f, 2.0f };
    long h5[5];
    draw_hist(s, t, 5, 200, h5);
    CHECK_EQ_INT(h5[1], 200);
    ll_sampler_free(s);
}

/* top_k on a large vocabulary: k = 40 of 128256 keeps exactly the 40 best. */
static void test_top_k_large_vocab(void) {
    const int32_t nv = 128256;
    float *logits = malloc(sizeof *logits * (size_t)nv);
    uint64_t x = 99;
    for (int32_t i = 0; i < nv; i++) {            /* distinct values in [-10, 0) */
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        logits[i] = -10.0f + (float)((x >> 40) % 1000000) * 1e-5f;
    }
    /* Plant 40 clear winners with a flat distribution among them. */
    for (int32_t j = 0; j < 40; j++) logits[(j * 3203 + 17) % nv] = 20.0f;
    ll_sampler_params p = plain_params();
    p.top_k = 40;
    p.repeat_penalty = 1.0f;
    ll_sampler *s = mk(&p, nv);
    int ok = 1;
    for (int i = 0; i < 400 && ok; i++) {
        ll_error err = {0};
        int32_t id = -1;
        ok = ll_sampler_sample(s, logits, &id, &err) == LL_OK && logits[id] == 20.0f;
    }
    CHECK(ok);
    ll_sampler_free(s);
    free(logits);
}

static int cmp_float_desc(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

/* Exercises both selection paths and the tie order on a 5000-token vocabulary.
 * (a) top_k off, top_p 0.95: 300 tokens tie at logit 5, the rest sit near -20 (mass ~1e-9).
 *     The cut falls at the 285th of the tied tokens, and ties go to the lowest ids, so every
 *     draw must be among the 285 lowest-id tied tokens (grows the selection 256 -> 1024).
 * (b) top_k 2000 (> n/16: quickselect) at a huge temperature: every draw has a logit at least
 *     the 2000th best. */
static void test_selection_paths_and_tie_order(void) {
    const int32_t nv = 5000;
    float *logits = malloc(sizeof *logits * (size_t)nv), *sorted = malloc(sizeof *sorted * (size_t)nv);
    char *tied = calloc((size_t)nv, 1);
    uint64_t x = 5;
    for (int32_t i = 0; i < nv; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        logits[i] = -20.0f - (float)((x >> 33) % 50) * 0.1f;     /* many ties here too */
    }
    for (int32_t j = 0; j < 300; j++) { int32_t id = (j * 1637 + 11) % nv; logits[id] = 5.0f; tied[id] = 1; }
    int32_t allowed_max = -1, seen = 0;                          /* id of the 285th tied token */
    for (int32_t i = 0; i < nv && seen < 285; i++) if (tied[i] && ++seen == 285) allowed_max = i;

    ll_sampler_params p = plain_params();
    p.top_p = 0.95f;
    ll_sampler *s = mk(&p, nv);
    int bad = 0, hit_max = 0;
    for (int i = 0; i < 5000; i++) {
        ll_error err = {0};
        int32_t id = -1;
        if (ll_sampler_sample(s, logits, &id, &err) != LL_OK || id < 0 || !tied[id] || id > allowed_max) bad++;
        hit_max += id == allowed_max;
    }
    CHECK_EQ_INT(bad, 0);
    CHECK(hit_max > 0);          /* the boundary token itself is kept (~17 expected) */
    ll_sampler_free(s);

    memcpy(sorted, logits, sizeof *sorted * (size_t)nv);
    qsort(sorted, (size_t)nv, sizeof *sorted, cmp_float_desc);
    float kth = sorted[1999];
    p = plain_params();
    p.top_k = 2000;
    p.temperature = 1e6f;
    s = mk(&p, nv);
    bad = 0;
    int low = 0;
    for (int i = 0; i < 2000; i++) {
        ll_error err = {0};
        int32_t id = -1;
        if (ll_sampler_sample(s, logits, &id, &err) != LL_OK || id < 0 || logits[id] < kth) bad++;
        low += logits[id] < 0;
    }
    CHECK_EQ_INT(bad, 0);
    CHECK(low > 1000);          /* the flat temperature really reaches the 1700 low tokens */
    ll_sampler_free(s);
    free(logits);
    free(sorted);
    free(tied);
}

/* top_p = 0.5 on (0.4, 0.3, 0.2, 0.1) sorted: 0.4 < 0.5, 0.4 + 0.3 >= 0.5 -> keep {0.4, 0.3}.
 * top_p = 0.75: 0.7 < 0.75, 0.9 >= 0.75 -> keep three. top_p = 0.35: the best alone. */
static void test_top_p_keeps_minimal_prefix(void) {
    const double prob[4] = { 0.2, 0.4, 0.1, 0.3 };    /* unsorted on purpose */
    float logits[4];
    logits_from_probs(prob, logits, 4);
    long hist[4];
    struct { float top_p; double expect[4]; } cases[] = {
        { 0.5f,  { 0, 4.0 / 7, 0, 3.0 / 7 } },
        { 0.75f, { 2.0 / 9, 4.0 / 9, 0, 3.0 / 9 } },
        { 0.35f, { 0, 1, 0, 0 } },
        { 0.99f, { 0.2, 0.4, 0.1, 0.3 } },
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        ll_sampler_params p = plain_params();
        p.top_p = cases[c].top_p;
        p.seed = 100 + c;
        ll_sampler *s = mk(&p, 4);
        draw_hist(s, logits, 4, 20000, hist);
        double x2 = chi_square(hist, cases[c].expect, 4, 20000);
        CHECK_MSG(x2 < 25.0, "top_p %.2f: chi2 %.2f, counts %ld %ld %ld %ld", cases[c].top_p, x2,
                  hist[0], hist[1], hist[2], hist[3]);
        ll_sampler_free(s);
    }
}

/* min_p = 0.3 on (0.4, 0.3, 0.2, 0.1): keep p >= 0.12 -> {0.4, 0.3, 0.2}.
 * min_p = 0.6: keep p >= 0.24 -> {0.4, 0.3}. */
static void test_min_p(void) {
    const double prob[4] = { 0.1, 0.3, 0.4, 0.2 };
    float logits[4];
    logits_from_probs(prob, logits, 4);
    long hist[4];
    struct { float min_p; double expect[4]; } cases[] = {
        { 0.3f, { 0, 3.0 / 9, 4.0 / 9, 2.0 / 9 } },
        { 0.6f, { 0, 3.0 / 7, 4.0 / 7, 0 } },
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        ll_sampler_params p = plain_params();
        p.min_p = cases[c].min_p;
        ll_sampler *s = mk(&p, 4);
        draw_hist(s, logits, 4, 20000, hist);
        double x2 = chi_square(hist, cases[c].expect, 4, 20000);
        CHECK_MSG(x2 < 25.0, "min_p %.2f: chi2 %.2f", cases[c].min_p, x2);
        ll_sampler_free(s);
    }
}

/* min_p above 1 asks for tokens likelier than the best one; the best one stays (llama.cpp keeps
 * at least one), instead of an empty set reported as "no finite logit left". */
static void test_min_p_above_one_keeps_the_best(void) {
    const double prob[4] = { 0.1, 0.3, 0.4, 0.2 };
    float logits[4];
    logits_from_probs(prob, logits, 4);
    ll_sampler_params p = plain_params();
    p.min_p = 5.0f;
    ll_sampler *s = mk(&p, 4);
    for (int i = 0; i < 200; i++) {
        int32_t id = -1;
        ll_error err = { 0 };
        CHECK_EQ_INT(ll_sampler_sample(s, logits, &id, &err), LL_OK);
        CHECK_EQ_INT(id, 2);
    }
    ll_sampler_free(s);
}

/* typical_p on (0.5, 0.3, 0.15, 0.05). Entropy H = 1.1437 nats; surprisals -log p:
 * 0.693, 1.204, 1.897, 2.996; distances to H: 0.451, 0.060, 0.753, 1.852.
 * Order by distance: 0.3, 0.5, 0.15, 0.05. typical_p = 0.5: 0.3 <= 0.5, 0.8 > 0.5 -> keep
 * {0.3, 0.5}. typical_p = 0.25: 0.3 > 0.25 -> keep {0.3} alone (not the most likely token). */
static void test_typical_p(void) {
    const double prob[4] = { 0.5, 0.3, 0.15, 0.05 };
    float logits[4];
    logits_from_probs(prob, logits, 4);
    long hist[4];
    ll_sampler_params p = plain_params();
    p.typical_p = 0.5f;
    ll_sampler *s = mk(&p, 4);
    draw_hist(s, logits, 4, 20000, hist);
    const double e1[4] = { 5.0 / 8, 3.0 / 8, 0, 0 };
    CHECK_MSG(chi_square(hist, e1, 4, 20000) < 25.0, "%ld %ld %ld %ld", hist[0], hist[1], hist[2], hist[3]);
    ll_sampler_free(s);

    p.typical_p = 0.25f;
    s = mk(&p, 4);
    draw_hist(s, logits, 4, 500, hist);
    CHECK_EQ_INT(hist[1], 500);
    ll_sampler_free(s);
}

/* The chain order: top_k = 3 first removes 0.05; then top_p 0.6 over the renormalised
 * (0.5, 0.3, 0.15) / 0.95 = (0.526, 0.316, 0.158): 0.526 < 0.6, 0.842 >= 0.6 -> keep two. */
static void test_chain_top_k_then_top_p(void) {
    const double prob[4] = { 0.05, 0.15, 0.3, 0.5 };
    float logits[4];
    logits_from_probs(prob, logits, 4);
    long hist[4];
    ll_sampler_params p = plain_params();
    p.top_k = 3;
    p.top_p = 0.6f;
    ll_sampler *s = mk(&p, 4);
    draw_hist(s, logits, 4, 20000, hist);
    const double e[4] = { 0, 0, 3.0 / 8, 5.0 / 8 };
    CHECK_MSG(chi_square(hist, e, 4, 20000) < 25.0, "%ld %ld %ld %ld", hist[0], hist[1], hist[2], hist[3]);
    ll_sampler_free(s);
}

static void sample_seq(uint64_t seed, int32_t *out, int n) {
    ll_sampler_params p = ll_sampler_default_params();
    p.seed = seed;
    p.temperature = 1.5f;
    p.top_k = 0;
    p.top_p = 1.0f;
    const int32_t nv = 1000;
    float logits[1000];
    for (int32_t i = 0; i < nv; i++) logits[i] = (float)((i * 37) % 101) * 0.05f;
    ll_sampler *s = mk(&p, nv);
    for (int i = 0; i < n; i++) {
        ll_error err = {0};
        out[i] = -1;
        CHECK(ll_sampler_sample(s, logits, &out[i], &err) == LL_OK);
    }
    ll_sampler_free(s);
}

static void test_seed_determinism(void) {
    int32_t a[64], b[64], c[64];
    sample_seq(2024, a, 64);
    sample_seq(2024, b, 64);
    sample_seq(2025, c, 64);
    CHECK(memcmp(a, b, sizeof a) == 0);
    int differ = 0;
    for (int i = 0; i < 64; i++) differ += a[i] != c[i];
    CHECK_MSG(differ > 32, "only %d of 64 tokens differ between seeds", differ);
    /* Two random-seeded samplers differ too. */
    sample_seq(LL_SAMPLER_SEED_RANDOM, a, 64);
    sample_seq(LL_SAMPLER_SEED_RANDOM, b, 64);
    CHECK(memcmp(a, b, sizeof a) != 0);
}

static void test_R17_nan_logits_rejected(void) {
    ll_sampler_params p = plain_params();
    for (int greedy = 0; greedy < 2; greedy++) {
        p.temperature = greedy ? 0.0f : 1.0f;
        ll_sampler *s = mk(&p, 4);
        float a[4] = { 1.0f, NAN, 2.0f, 0.0f };
        ll_error err = {0};
        int32_t id = 77;
        CHECK(ll_sampler_sample(s, a, &id, &err) == LL_ERR_FORMAT);
        CHECK_STR_CONTAINS(err.msg, "numerical error: NaN logits");
        CHECK_EQ_INT(id, 77);
        a[1] = INFINITY;
        ll_error err2 = {0};
        CHECK(ll_sampler_sample(s, a, &id, &err2) == LL_ERR_FORMAT);
        CHECK_STR_CONTAINS(err2.msg, "numerical error");
        /* -Inf is a mask, not an error. */
        a[1] = -INFINITY;
        ll_error err3 = {0};
        CHECK(ll_sampler_sample(s, a, &id, &err3) == LL_OK);
        CHECK(id != 1);
        ll_sampler_free(s);
    }
    /* All masked: nothing to sample from, greedy (id 0 before) or not (locallama.h). */
    for (int greedy = 0; greedy < 2; greedy++) {
        p.temperature = greedy ? 0.0f : 1.0f;
        ll_sampler *s = mk(&p, 3);
        const float m[3] = { -INFINITY, -INFINITY, -INFINITY };
        ll_error err = {0};
        int32_t id = 77;
        CHECK(ll_sampler_sample(s, m, &id, &err) == LL_ERR_FORMAT);
        CHECK_STR_CONTAINS(err.msg, "numerical error");
        CHECK_EQ_INT(id, 77);
        ll_sampler_free(s);
    }
}

static void test_bad_params_rejected(void) {
    ll_error err = {0};
    ll_sampler *s = (ll_sampler *)1;
    ll_sampler_params p = plain_params();
    CHECK(ll_sampler_init(&s, &p, 0, &err) == LL_ERR_ARG);
    CHECK(s == NULL);
    p.temperature = NAN;
    ll_error e2 = {0};
    CHECK(ll_sampler_init(&s, &p, 10, &e2) == LL_ERR_ARG);
    CHECK_STR_CONTAINS(e2.msg, "temperature");
    p = plain_params();
    p.repeat_last_n = -2;
    ll_error e3 = {0};
    CHECK(ll_sampler_init(&s, &p, 10, &e3) == LL_ERR_ARG);
    p = plain_params();
    p.repeat_penalty = 0.0f;
    ll_error e4 = {0};
    CHECK(ll_sampler_init(&s, &p, 10, &e4) == LL_ERR_ARG);
    /* NULL params = defaults. */
    ll_error e5 = {0};
    CHECK(ll_sampler_init(&s, NULL, 10, &e5) == LL_OK);
    ll_sampler_free(s);
    ll_sampler_free(NULL);
    /* Out-of-range ids in accept are ignored. */
    p = plain_params();
    s = mk(&p, 4);
    ll_sampler_accept(s, -1);
    ll_sampler_accept(s, 4);
    ll_sampler_free(s);
}

/* Every allocation of init in turn fails: the result is NOMEM with nothing leaked (ASan). */
/* ---- allow-masks (constrained decoding) ----------------------------------------------------- */

#define MASK_VOCAB 300   /* five words, the last one partial: bits past n_vocab must be ignored */

static int mask_has(const uint64_t *allow, int32_t id) { return (int)(allow[id / 64] >> (id % 64) & 1); }
static void mask_set(uint64_t *allow, int32_t id) { allow[id / 64] |= 1ull << (id % 64); }

/* Logits where the disallowed tokens are the most likely ones, so that a mask applied late,
 * or not at all, shows up at once. */
static void mask_fixture(float *logits, uint64_t *allow) {
    memset(allow, 0, (MASK_VOCAB + 63) / 64 * sizeof *allow);
    for (int32_t i = 0; i < MASK_VOCAB; i++) {
        int ok = i % 7 == 3 || i == MASK_VOCAB - 1;
        if (ok) mask_set(allow, i);
        logits[i] = ok ? (float)(i % 11) * 0.3f - 2.0f : 5.0f + (float)(i % 5);
    }
    allow[MASK_VOCAB / 64] |= ~0ull << (MASK_VOCAB % 64);   /* junk past the vocabulary */
}

/* Every filter of the chain, each alone and all together, with and without penalties. */
static ll_sampler_params mask_config(int c) {
    ll_sampler_params p = plain_params();
    switch (c) {
    case 0: p.temperature = 0.0f; break;
    case 1: p.temperature = 1.5f; break;
    case 2: p.top_k = 3; break;
    case 3: p.top_p = 0.5f; break;
    case 4: p.min_p = 0.2f; break;
    case 5: p.typical_p = 0.5f; break;
    case 6: p.top_k = 40; p.top_p = 0.9f; p.min_p = 0.05f; p.typical_p = 0.9f; break;
    case 7: p.temperature = 0.0f; p.repeat_penalty = 1.5f; p.frequency_penalty = -3.0f; break;
    default: p.repeat_penalty = 1.3f; p.presence_penalty = -2.0f; p.frequency_penalty = -1.0f; break;
    }
    return p;
}
enum { MASK_N_CONFIGS = 9 };

static void test_mask_draws_only_allowed_ids(void) {
    float logits[MASK_VOCAB];
    uint64_t allow[(MASK_VOCAB + 63) / 64];
    mask_fixture(logits, allow);
    for (int c = 0; c < MASK_N_CONFIGS; c++) {
        for (uint64_t seed = 1; seed <= 50; seed++) {
            ll_sampler_params p = mask_config(c);
            p.seed = seed;
            ll_sampler *s = mk(&p, MASK_VOCAB);
            if (!s) return;
            /* History on disallowed ids: negative frequency/presence penalties raise their
             * logits, which must not bring them back. */
            for (int32_t i = 0; i < 20; i++) ll_sampler_accept(s, i % 3 == 0 ? 0 : 1);
            for (int k = 0; k < 20; k++) {
                ll_error err = {0};
                int32_t id = -1;
                ll_status st = ll_sampler_sample_masked(s, logits, allow, &id, &err);
                CHECK_MSG(st == LL_OK, "config %d seed %llu: %s", c, (unsigned long long)seed, err.msg);
                CHECK_MSG(id >= 0 && id < MASK_VOCAB && mask_has(allow, id),
                          "config %d seed %llu draw %d: id %d is not allowed", c,
                          (unsigned long long)seed, k, (int)id);
            }
            ll_sampler_free(s);
        }
    }
    /* Greedy is the argmax of the allowed tokens: id 283 (283 % 11 = 8, the highest). */
    ll_sampler_params p = mask_config(0);
    ll_sampler *s = mk(&p, MASK_VOCAB);
    ll_error err = {0};
    int32_t id = -1;
    CHECK(ll_sampler_sample_masked(s, logits, allow, &id, &err) == LL_OK);
    int32_t best = -1;
    for (int32_t i = 0; i < MASK_VOCAB; i++)
        if (mask_has(allow, i) && (best < 0 || logits[i] > logits[best])) best = i;
    CHECK_EQ_INT(id, best);
    /* NULL is no mask: the same sampler then picks the overall argmax. */
    CHECK(ll_sampler_sample_masked(s, logits, NULL, &id, &err) == LL_OK);
    CHECK(!mask_has(allow, id));
    ll_sampler_free(s);
}

/* One allowed token, the least likely of all: every configuration picks it, including top-k 1
 * and min-p, which would drop it if the mask came after them. */
static void test_mask_single_allowed_token_is_picked(void) {
    float logits[MASK_VOCAB];
    for (int32_t i = 0; i < MASK_VOCAB; i++) logits[i] = (float)(i % 17);
    const int32_t only[] = { 0, 63, 64, 150, MASK_VOCAB - 1 };
    for (size_t o = 0; o < sizeof only / sizeof only[0]; o++) {
        uint64_t allow[(MASK_VOCAB + 63) / 64] = {0};
        mask_set(allow, only[o]);
        float l[MASK_VOCAB];
        memcpy(l, logits, sizeof l);
        l[only[o]] = -80.0f;
        for (int c = 0; c < MASK_N_CONFIGS + 1; c++) {
            ll_sampler_params p = mask_config(c);
            if (c == MASK_N_CONFIGS) p.top_k = 1;
            for (uint64_t seed = 1; seed <= 20; seed++) {
                p.seed = seed;
                ll_sampler *s = mk(&p, MASK_VOCAB);
                if (!s) return;
                ll_error err = {0};
                int32_t id = -1;
                CHECK_MSG(ll_sampler_sample_masked(s, l, allow, &id, &err) == LL_OK, "%s", err.msg);
                CHECK_MSG(id == only[o], "config %d: picked %d, only %d is allowed", c, (int)id,
                          (int)only[o]);
                ll_sampler_free(s);
            }
        }
    }
}

/* Nothing to pick: LL_ERR_MASKED (not the R17 NaN error), *id untouched. */
static void test_mask_empty_or_all_neg_inf_is_masked_error(void) {
    float logits[MASK_VOCAB];
    for (int32_t i = 0; i < MASK_VOCAB; i++) logits[i] = (float)(i % 9);
    CHECK(strcmp(ll_status_name(LL_ERR_MASKED), "masked") == 0);
    for (int c = 0; c < MASK_N_CONFIGS; c++) {
        ll_sampler_params p = mask_config(c);
        ll_sampler *s = mk(&p, MASK_VOCAB);
        if (!s) return;
        uint64_t none[(MASK_VOCAB + 63) / 64] = {0};
        none[MASK_VOCAB / 64] = ~0ull << (MASK_VOCAB % 64);   /* only bits past the vocab */
        ll_error err = {0};
        int32_t id = 77;
        CHECK(ll_sampler_sample_masked(s, logits, none, &id, &err) == LL_ERR_MASKED);
        CHECK_EQ_INT(err.code, LL_ERR_MASKED);
        CHECK(strstr(err.msg, "NaN") == NULL);
        CHECK_EQ_INT(id, 77);

        uint64_t some[(MASK_VOCAB + 63) / 64] = {0};
        float l[MASK_VOCAB];
        memcpy(l, logits, sizeof l);
        for (int32_t i = 5; i < MASK_VOCAB; i += 40) { mask_set(some, i); l[i] = -INFINITY; }
        ll_error err2 = {0};
        CHECK(ll_sampler_sample_masked(s, l, some, &id, &err2) == LL_ERR_MASKED);
        CHECK_STR_CONTAINS(err2.msg, "-Inf");
        CHECK_EQ_INT(id, 77);
        /* One allowed token finite again: fine. */
        l[45] = -1000.0f;
        ll_error err3 = {0};
        CHECK(ll_sampler_sample_masked(s, l, some, &id, &err3) == LL_OK);
        CHECK_EQ_INT(id, 45);
        ll_sampler_free(s);
    }
}

/* R17 applies to what may be sampled: NaN or +Inf in a disallowed slot is never read. */
static void test_mask_nan_only_matters_when_allowed(void) {
    for (int c = 0; c < MASK_N_CONFIGS; c++) {
        ll_sampler_params p = mask_config(c);
        ll_sampler *s = mk(&p, MASK_VOCAB);
        if (!s) return;
        float logits[MASK_VOCAB];
        uint64_t allow[(MASK_VOCAB + 63) / 64];
        mask_fixture(logits, allow);
        logits[0] = NAN; logits[1] = INFINITY; logits[MASK_VOCAB - 2] = NAN;
        ll_error err = {0};
        int32_t id = -1;
        CHECK_MSG(ll_sampler_sample_masked(s, logits, allow, &id, &err) == LL_OK, "%s", err.msg);
        CHECK(mask_has(allow, id));
        for (int k = 0; k < 2; k++) {
            float l[MASK_VOCAB];
            memcpy(l, logits, sizeof l);
            l[3] = k ? INFINITY : NAN;                   /* id 3 is allowed */
            ll_error e2 = {0};
            id = 77;
            CHECK(ll_sampler_sample_masked(s, l, allow, &id, &e2) == LL_ERR_FORMAT);
            CHECK_STR_CONTAINS(e2.msg, "numerical error: NaN logits");
            CHECK_EQ_INT(id, 77);
        }
        ll_sampler_free(s);
    }
}

/* A masked draw is accepted into the penalty history like any other: a presence penalty of
 * 100 then keeps it from winning again. The sampled case leaves one token with any real
 * weight, so it is as deterministic as greedy. */
static void test_mask_sampled_token_enters_history(void) {
    for (int greedy = 0; greedy < 2; greedy++) {
        ll_sampler_params p = plain_params();
        p.temperature = greedy ? 0.0f : 1.0f;
        p.presence_penalty = 100.0f;
        ll_sampler *s = mk(&p, 4);
        if (!s) return;
        const float l[4] = { 0.0f, 3.0f, 2.0f, 1.0f };
        ll_error err = {0};
        int32_t id = -1;
        uint64_t allow = 1u << 2;
        CHECK(ll_sampler_sample_masked(s, l, &allow, &id, &err) == LL_OK);
        CHECK_EQ_INT(id, 2);
        allow = 1u << 2 | 1u << 3;
        CHECK(ll_sampler_sample_masked(s, l, &allow, &id, &err) == LL_OK);
        CHECK_EQ_INT(id, 3);                          /* 2 - 100 < 1 */
        allow = 1u << 1 | 1u << 2 | 1u << 3;
        CHECK(ll_sampler_sample_masked(s, l, &allow, &id, &err) == LL_OK);
        CHECK_EQ_INT(id, 1);
        allow = 1u << 0 | 1u << 1 | 1u << 2 | 1u << 3;
        CHECK(ll_sampler_sample_masked(s, l, &allow, &id, &err) == LL_OK);
        CHECK_EQ_INT(id, 0);                          /* all others are in the history */
        ll_sampler_free(s);
    }
}

static void test_alloc_failure_injection(void) {
    ll_sampler_params p = plain_params();
    int saw_ok = 0;
    for (long n = 0; n < 32 && !saw_ok; n++) {
        ll_error err = {0};
        ll_sampler *s = NULL;
        ll_alloc_fail_after(n);
        ll_status st = ll_sampler_init(&s, &p, 1000, &err);
        ll_alloc_fail_after(-1);
        if (st == LL_OK) {
            saw_ok = 1;
            CHECK(n >= 8);          /* the struct plus seven buffers */
            /* Sampling must not allocate at all. */
            float logits[1000];
            for (int i = 0; i < 1000; i++) logits[i] = (float)(i % 13);
            ll_alloc_fail_after(0);
            int32_t id = -1;
            ll_error e2 = {0};
            CHECK(ll_sampler_sample(s, logits, &id, &e2) == LL_OK);
            ll_alloc_fail_after(-1);
            ll_sampler_free(s);
        } else {
            CHECK_EQ_INT(st, LL_ERR_NOMEM);
            CHECK(s == NULL);
        }
    }
    CHECK(saw_ok);
}

int main(void) {
    RUN(test_default_params_are_ollamas);
    RUN(test_greedy_picks_argmax_and_lowest_id_on_ties);
    RUN(test_penalties_math);
    RUN(test_penalty_window);
    RUN(test_draw_matches_softmax_chi_square);
    RUN(test_top_k);
    RUN(test_top_k_large_vocab);
    RUN(test_selection_paths_and_tie_order);
    RUN(test_top_p_keeps_minimal_prefix);
    RUN(test_min_p);
    RUN(test_min_p_above_one_keeps_the_best);
    RUN(test_typical_p);
    RUN(test_chain_top_k_then_top_p);
    RUN(test_seed_determinism);
    RUN(test_R17_nan_logits_rejected);
    RUN(test_bad_params_rejected);
    RUN(test_alloc_failure_injection);
    RUN(test_mask_draws_only_allowed_ids);
    RUN(test_mask_single_allowed_token_is_picked);
    RUN(test_mask_empty_or_all_neg_inf_is_masked_error);
    RUN(test_mask_nan_only_matters_when_allowed);
    RUN(test_mask_sampled_token_enters_history);
    return test_summary();
}
