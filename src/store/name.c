/* store: model names (§0.8), digests (§4.5), the store root from the environment (§0.4) and
 * the human-readable metadata names of §4.7.3. */
#include "store/store.h"

#include <ctype.h>
#include <math.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <unistd.h>

// ---------------------------------------------------------------------------------------------
// names

enum name_part { PART_HOST, PART_NS, PART_MODEL, PART_TAG };
static const char *const part_names[] = { "host", "namespace", "model", "tag" };

static bool name_char_ok(enum name_part k, char c, bool first) {
    bool alnum_ = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    if (alnum_) return true;
    switch (k) {
    /* Ollama allows any of [A-Za-z0-9_.:-] in a host; we also refuse a leading '.' so that no
     * host can be "." or ".." and climb out of manifests/ (S rows: paths built safely). */
    case PART_HOST: return c == ':' || c == '-' || (c == '.' && !first);
    case PART_NS: return c == '-' && !first;
    case PART_MODEL:
    case PART_TAG: return (c == '-' || c == '.') && !first;
    }
    return false;
}

static ll_status name_part_check(enum name_part k, const char *s, size_t n, const char *input,
                                 ll_error *err) {
    size_t max = k == PART_HOST ? LL_NAME_HOST_MAX : LL_NAME_PART_MAX;
    if (n == 0)
        return ll_fail(err, LL_ERR_ARG, "invalid model name \"%s\": empty %s", input, part_names[k]);
    if (n > max)
        return ll_fail(err, LL_ERR_ARG, "invalid model name \"%.64s...\": %s is %zu characters, "
                       "the limit is %zu", input, part_names[k], n, max);
    for (size_t i = 0; i < n; i++)
        if (!name_char_ok(k, s[i], i == 0))
            return ll_fail(err, LL_ERR_ARG, "invalid model name \"%s\": %s \"%.*s\" may not %s '%c'",
                           input, part_names[k], (int)n, s, i == 0 ? "start with" : "contain", s[i]);
    return LL_OK;
}

ll_status ll_name_parse(ll_model_name *out, const char *s, ll_error *err) {
    memset(out, 0, sizeof *out);
    size_t a = 0, e = strlen(s);
    while (a < e && isspace((unsigned char)s[a])) a++;
    while (e > a && isspace((unsigned char)s[e - 1])) e--;
    const char *p = s + a;
    size_t n = e - a;
    char shown[128];
    snprintf(shown, sizeof shown, "%.*s", (int)(n < 100 ? n : 100), p);
    if (n == 0) return ll_fail(err, LL_ERR_ARG, "invalid model name: empty");
    if (n > LL_NAME_FULL_MAX + 16)
        return ll_fail(err, LL_ERR_ARG, "invalid model name \"%s...\": %zu characters", shown, n);

    strcpy(out->scheme, "https");
    for (size_t i = 0; i + 2 < n; i++) {
        if (p[i] == ':' && p[i + 1] == '/' && p[i + 2] == '/') {
            if (i == 4 && !strncasecmp(p, "http", 4)) strcpy(out->scheme, "http");
            else if (!(i == 5 && !strncasecmp(p, "https", 5)))
                return ll_fail(err, LL_ERR_ARG, "invalid model name \"%s\": unknown scheme", shown);
            p += i + 3;
            n -= i + 3;
            break;
        }
        if (p[i] == '/') break;
    }

    /* right to left: tag, model, namespace, host */
    const char *slash = NULL, *colon = NULL;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '/') slash = p + i;
        if (p[i] == ':') colon = p + i;
    }
    size_t body = n;
    const char *tag = "latest";
    size_t tag_n = 6;
    if (colon && (!slash || colon > slash)) {
        tag = colon + 1;
        tag_n = (size_t)(p + n - tag);
        body = (size_t)(colon - p);
        ll_status st = name_part_check(PART_TAG, tag, tag_n, shown, err);
        if (st) return st;
    }
    size_t m_start = 0;
    for (size_t i = body; i > 0; i--)
        if (p[i - 1] == '/') { m_start = i; break; }
    ll_status st = name_part_check(PART_MODEL, p + m_start, body - m_start, shown, err);
    if (st) return st;
    const char *ns = "library", *host = "registry.ollama.ai";
    size_t ns_n = 7, host_n = 18;
    if (m_start > 0) {
        size_t ns_end = m_start - 1, ns_start = 0;
        for (size_t i = ns_end; i > 0; i--)
            if (p[i - 1] == '/') { ns_start = i; break; }
        ns = p + ns_start;
        ns_n = ns_end - ns_start;
        if ((st = name_part_check(PART_NS, ns, ns_n, shown, err))) return st;
        if (ns_start > 0) {
            host = p;
            host_n = ns_start - 1;
            if ((st = name_part_check(PART_HOST, host, host_n, shown, err))) return st;
        }
    }
    memcpy(out->host, host, host_n);
    memcpy(out->ns, ns, ns_n);
    memcpy(out->model, p + m_start, body - m_start);
    memcpy(out->tag, tag, tag_n);
    return LL_OK;
}

void ll_name_full(const ll_model_name *n, char *buf, size_t cap) {
    snprintf(buf, cap, "%s/%s/%s:%s", n->host, n->ns, n->model, n->tag);
}

void ll_name_display(const ll_model_name *n, char *buf, size_t cap) {
    if (strcasecmp(n->host, "registry.ollama.ai")) ll_name_full(n, buf, cap);
    else if (strcasecmp(n->ns, "library")) snprintf(buf, cap, "%s/%s:%s", n->ns, n->model, n->tag);
    else snprintf(buf, cap, "%s:%s", n->model, n->tag);
}

bool ll_name_equal(const ll_model_name *a, const ll_model_name *b) {
    return !strcasecmp(a->host, b->host) && !strcasecmp(a->ns, b->ns) &&
           !strcasecmp(a->model, b->model) && !strcasecmp(a->tag, b->tag);
}

// ---------------------------------------------------------------------------------------------
// digests

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

ll_status ll_digest_parse(ll_digest *out, const char *s, ll_error *err) {
    if (strncmp(s, "sha256", 6) || (s[6] != ':' && s[6] != '-') || strlen(s) != 71)
        return ll_fail(err, LL_ERR_ARG, "invalid digest format");
    for (size_t i = 0; i < 64; i++) {
        int v = hexval(s[7 + i]);
        if (v < 0) return ll_fail(err, LL_ERR_ARG, "invalid digest format");
        out->hex[i] = "0123456789abcdef"[v];
    }
    out->hex[64] = 0;
    return LL_OK;
}

void ll_digest_str(const ll_digest *d, char *buf, size_t cap) {
    snprintf(buf, cap, "sha256:%s", d->hex);
}

// ---------------------------------------------------------------------------------------------
// environment (§0.4.1)

/* Trim spaces, then surrounding quotes (strings.Trim(s, "\"'")): OLLAMA_MODELS="'/x'" works. */
static char *env_value(const char *name) {
    const char *v = getenv(name);
    if (!v) return NULL;
    size_t a = 0, e = strlen(v);
    while (a < e && isspace((unsigned char)v[a])) a++;
    while (e > a && isspace((unsigned char)v[e - 1])) e--;
    while (a < e && (v[a] == '"' || v[a] == '\'')) a++;
    while (e > a && (v[e - 1] == '"' || v[e - 1] == '\'')) e--;
    if (a == e) return NULL;
    return ll_str_dup((ll_str){ v + a, e - a });
}

char *ll_store_root_from_env(void) {
    char *v = env_value("LOCALLAMA_MODELS");
    if (!v) v = env_value("OLLAMA_MODELS");
    if (v) return v;
    const char *home = getenv("HOME");
    if (!home || !*home) {
        struct passwd *pw = getpwuid(getuid());
        home = pw ? pw->pw_dir : NULL;
    }
    if (!home) return NULL;
    size_t n = strlen(home) + sizeof "/.locallama/models";
    char *r = ll_malloc(n);
    if (r) snprintf(r, n, "%s/.locallama/models", home);
    return r;
}

// ---------------------------------------------------------------------------------------------
// §4.7.3 names

void ll_format_param_count(uint64_t n, char *buf, size_t cap) {
    /* Ollama's format.HumanNumber */
    if (n >= 1000000000ull) {
        double x = (double)n / 1e9;
        snprintf(buf, cap, x == floor(x) ? "%.0fB" : "%.1fB", x);
    } else if (n >= 1000000ull) {
        double x = (double)n / 1e6;
        snprintf(buf, cap, x == floor(x) ? "%.0fM" : "%.2fM", x);
    } else if (n >= 1000ull) {
        snprintf(buf, cap, "%.0fK", (double)n / 1e3);
    } else {
        snprintf(buf, cap, "%llu", (unsigned long long)n);
    }
}

const char *ll_file_type_name(int64_t t) {
    static const char *const names[] = {
        [0] = "F32", [1] = "F16", [2] = "Q4_0", [3] = "Q4_1", [7] = "Q8_0", [8] = "Q5_0",
        [9] = "Q5_1", [10] = "Q2_K", [11] = "Q3_K_S", [12] = "Q3_K_M", [13] = "Q3_K_L",
        [14] = "Q4_K_S", [15] = "Q4_K_M", [16] = "Q5_K_S", [17] = "Q5_K_M", [18] = "Q6_K",
        [19] = "IQ2_XXS", [20] = "IQ2_XS", [21] = "Q2_K_S", [22] = "IQ3_XS", [23] = "IQ3_XXS",
        [24] = "IQ1_S", [25] = "IQ4_NL", [26] = "IQ3_S", [27] = "IQ3_M", [28] = "IQ2_S",
        [29] = "IQ2_M", [30] = "IQ4_XS", [31] = "IQ1_M", [32] = "BF16", [36] = "TQ1_0",
        [37] = "TQ2_0", [38] = "MXFP4_MOE", [39] = "NVFP4", [40] = "Q1_0",
    };
    if (t < 0 || t >= (int64_t)(sizeof names / sizeof names[0]) || !names[t]) return "unknown";
    return names[t];
}
