/* store/registry: bearer tokens, Ollama's signed token request and its ed25519 key, Location
 * resolution. See registry.h for the protocol; the file runs: small text helpers, the key
 * file, signing, the token request, URLs. */
#include "store/registry.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define KEY_FILE_MAX   (16 * 1024)       /* an ed25519 key file is ~400 bytes */
#define TOKEN_BODY_MAX (64 * 1024)

static const char PEM_BEGIN[] = "-----BEGIN OPENSSH PRIVATE KEY-----";
static const char PEM_END[]   = "-----END OPENSSH PRIVATE KEY-----";
static const char KEY_MAGIC[] = "openssh-key-v1";     /* followed by its NUL in the file */
static const char KEY_TYPE[]  = "ssh-ed25519";

// ---- base64 ------------------------------------------------------------------------------------

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Standard alphabet with padding (url: the URL alphabet without padding, Go's RawURLEncoding). */
static size_t b64_encode(const unsigned char *p, size_t n, char *out, bool url) {
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        size_t k = n - i >= 3 ? 4 : n - i + 1;
        for (size_t j = 0; j < 4; j++) {
            char c = B64[(v >> (18 - 6 * j)) & 63];
            if (url) c = c == '+' ? '-' : c == '/' ? '_' : c;
            if (j < k) out[o++] = c;
            else if (!url) out[o++] = '=';
        }
    }
    out[o] = 0;
    return o;
}

/* Decode standard base64, skipping whitespace; padding only at the end. false on anything
 * else or when the result would pass cap. */
static bool b64_decode(const char *s, size_t n, unsigned char *out, size_t cap, size_t *got) {
    uint32_t v = 0;
    int bits = 0, pad = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
        if (c == '=') { pad++; continue; }
        if (pad) return false;
        const char *q = c ? strchr(B64, c) : NULL;
        if (!q) return false;
        v = v << 6 | (uint32_t)(q - B64);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= cap) return false;
            out[o++] = (unsigned char)(v >> bits);
        }
    }
    if (pad > 2) return false;
    *got = o;
    return true;
}

// ---- SSH wire strings -------------------------------------------------------------------------

typedef struct { const unsigned char *p; size_t n; } rd;

static bool rd_u32(rd *r, uint32_t *v) {
    if (r->n < 4) return false;
    *v = (uint32_t)r->p[0] << 24 | (uint32_t)r->p[1] << 16 | (uint32_t)r->p[2] << 8 | r->p[3];
    r->p += 4;
    r->n -= 4;
    return true;
}

static bool rd_str(rd *r, rd *s) {
    uint32_t len;
    if (!rd_u32(r, &len) || len > r->n) return false;
    *s = (rd){ r->p, len };
    r->p += len;
    r->n -= len;
    return true;
}

static bool rd_is(const rd *s, const char *text) {
    return s->n == strlen(text) && !memcmp(s->p, text, s->n);
}

static size_t put_u32(unsigned char *o, uint32_t v) {
    o[0] = (unsigned char)(v >> 24); o[1] = (unsigned char)(v >> 16);
    o[2] = (unsigned char)(v >> 8);  o[3] = (unsigned char)v;
    return 4;
}

static size_t put_str(unsigned char *o, const void *p, size_t n) {
    put_u32(o, (uint32_t)n);
    memcpy(o + 4, p, n);
    return 4 + n;
}

/* string "ssh-ed25519", string pk: 51 bytes */
static size_t pub_blob(const unsigned char pk[32], unsigned char out[51]) {
    size_t o = put_str(out, KEY_TYPE, sizeof KEY_TYPE - 1);
    return o + put_str(out + o, pk, 32);
}

// ---- the key ----------------------------------------------------------------------------------

static ll_status seed_public(const unsigned char seed[32], unsigned char pk[32], ll_error *err) {
    EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, 32);
    size_t n = 32;
    bool ok = k && EVP_PKEY_get_raw_public_key(k, pk, &n) == 1 && n == 32;
    EVP_PKEY_free(k);
    return ok ? LL_OK : ll_fail(err, LL_ERR_NOMEM, "ed25519: cannot derive the public key");
}

ll_status ll_registry_key_parse(const char *text, size_t n, unsigned char seed[32], ll_error *err) {
    const char *end = text + n;
    const char *b = memmem(text, n, PEM_BEGIN, sizeof PEM_BEGIN - 1);
    if (!b) return ll_fail(err, LL_ERR_FORMAT, "ssh key: no \"%s\" line", PEM_BEGIN);
    b += sizeof PEM_BEGIN - 1;
    const char *e = memmem(b, (size_t)(end - b), PEM_END, sizeof PEM_END - 1);
    if (!e) return ll_fail(err, LL_ERR_FORMAT, "ssh key: no \"%s\" line", PEM_END);
    unsigned char buf[KEY_FILE_MAX];
    size_t len;
    if (!b64_decode(b, (size_t)(e - b), buf, sizeof buf, &len))
        return ll_fail(err, LL_ERR_FORMAT, "ssh key: the body is not base64");
    if (len < sizeof KEY_MAGIC || memcmp(buf, KEY_MAGIC, sizeof KEY_MAGIC))
        return ll_fail(err, LL_ERR_FORMAT, "ssh key: not an OpenSSH private key (no \"%s\" header)", KEY_MAGIC);
    rd r = { buf + sizeof KEY_MAGIC, len - sizeof KEY_MAGIC }, cipher, kdf, kdfopt, pub, priv;
    uint32_t nkeys;
    if (!rd_str(&r, &cipher) || !rd_str(&r, &kdf) || !rd_str(&r, &kdfopt) || !rd_u32(&r, &nkeys) ||
        !rd_str(&r, &pub) || !rd_str(&r, &priv))
        return ll_fail(err, LL_ERR_FORMAT, "ssh key: truncated");
    if (!rd_is(&cipher, "none") || !rd_is(&kdf, "none"))
        return ll_fail(err, LL_ERR_UNSUPPORTED, "ssh key: encrypted keys are not supported");
    if (nkeys != 1) return ll_fail(err, LL_ERR_FORMAT, "ssh key: %u keys in the file, expected 1", nkeys);
    uint32_t c1, c2;
    rd type, pk, sk;
    if (!rd_u32(&priv, &c1) || !rd_u32(&priv, &c2) || !rd_str(&priv, &type))
        return ll_fail(err, LL_ERR_FORMAT, "ssh key: truncated private section");
    if (c1 != c2) return ll_fail(err, LL_ERR_FORMAT, "ssh key: check numbers differ (an encrypted or damaged key)");
    if (!rd_is(&type, KEY_TYPE)) return ll_fail(err, LL_ERR_UNSUPPORTED, "ssh key: only ssh-ed25519 keys are supported");
    if (!rd_str(&priv, &pk) || !rd_str(&priv, &sk) || pk.n != 32 || sk.n != 64 || memcmp(sk.p + 32, pk.p, 32))
        return ll_fail(err, LL_ERR_FORMAT, "ssh key: malformed ed25519 key");
    unsigned char derived[32], blob[51];
    pub_blob(pk.p, blob);
    if (pub.n != sizeof blob || memcmp(pub.p, blob, sizeof blob))
        return ll_fail(err, LL_ERR_FORMAT, "ssh key: the public key does not match the private one");
    if (seed_public(sk.p, derived, err) != LL_OK) return err->code;
    if (memcmp(derived, pk.p, 32)) return ll_fail(err, LL_ERR_FORMAT, "ssh key: the private key does not match its public key");
    memcpy(seed, sk.p, 32);
    return LL_OK;
}

ll_status ll_registry_key_format(const unsigned char seed[32], char **priv, char **pub, ll_error *err) {
    *priv = *pub = NULL;
    unsigned char pk[32], blob[51];
    if (seed_public(seed, pk, err) != LL_OK) return err->code;
    pub_blob(pk, blob);
    /* the private section: check numbers, type, pk, seed||pk, comment "", padding 1,2,3… */
    unsigned char sec[256];
    uint32_t check;
    if (RAND_bytes((unsigned char *)&check, sizeof check) != 1) return ll_fail(err, LL_ERR_IO, "ssh key: no random bytes");
    size_t s = put_u32(sec, check);
    s += put_u32(sec + s, check);
    s += put_str(sec + s, KEY_TYPE, sizeof KEY_TYPE - 1);
    s += put_str(sec + s, pk, 32);
    unsigned char both[64];
    memcpy(both, seed, 32);
    memcpy(both + 32, pk, 32);
    s += put_str(sec + s, both, 64);
    s += put_str(sec + s, "", 0);
    for (unsigned char i = 1; s % 8; i++) sec[s++] = i;
    unsigned char raw[512];
    size_t o = 0;
    memcpy(raw, KEY_MAGIC, sizeof KEY_MAGIC);
    o += sizeof KEY_MAGIC;
    o += put_str(raw + o, "none", 4);
    o += put_str(raw + o, "none", 4);
    o += put_str(raw + o, "", 0);
    o += put_u32(raw + o, 1);
    o += put_str(raw + o, blob, sizeof blob);
    o += put_str(raw + o, sec, s);
    char b64[700];
    size_t nb = b64_encode(raw, o, b64, false);
    size_t cap = sizeof PEM_BEGIN + sizeof PEM_END + nb + nb / 64 + 8;
    char *p = malloc(cap), *q = malloc(12 + 4 * sizeof blob / 3 + 8);
    if (!p || !q) { free(p); free(q); return ll_fail(err, LL_ERR_NOMEM, "out of memory"); }
    size_t w = (size_t)snprintf(p, cap, "%s\n", PEM_BEGIN);
    for (size_t i = 0; i < nb; i += 64) w += (size_t)snprintf(p + w, cap - w, "%.64s\n", b64 + i);
    snprintf(p + w, cap - w, "%s\n", PEM_END);
    memcpy(q, "ssh-ed25519 ", 12);
    b64_encode(blob, sizeof blob, q + 12, false);
    *priv = p;
    *pub = q;
    return LL_OK;
}

static ll_status write_new(const char *path, const char *text, mode_t mode, ll_error *err) {
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0) return ll_fail(err, LL_ERR_IO, "creating %s: %s", path, strerror(errno));
    size_t n = strlen(text), off = 0;
    while (off < n) {
        ssize_t w = write(fd, text + off, n - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            int e = errno;
            close(fd);
            unlink(path);
            return ll_fail(err, LL_ERR_IO, "writing %s: %s", path, strerror(e));
        }
        off += (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) return ll_fail(err, LL_ERR_IO, "writing %s: %s", path, strerror(errno));
    return LL_OK;
}

ll_status ll_registry_key_load(const char *path, unsigned char seed[32], ll_error *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        char buf[KEY_FILE_MAX];
        size_t n = 0;
        ssize_t r;
        while (n < sizeof buf && (r = read(fd, buf + n, sizeof buf - n)) != 0) {
            if (r < 0) {
                if (errno == EINTR) continue;
                int e = errno;
                close(fd);
                return ll_fail(err, LL_ERR_IO, "reading %s: %s", path, strerror(e));
            }
            n += (size_t)r;
        }
        close(fd);
        if (n == sizeof buf) return ll_fail(err, LL_ERR_FORMAT, "%s: larger than %d bytes, not an ed25519 key", path, KEY_FILE_MAX);
        if (ll_registry_key_parse(buf, n, seed, err) == LL_OK) return LL_OK;
        char inner[sizeof err->msg];
        snprintf(inner, sizeof inner, "%s", err->msg);
        ll_status code = err->code;
        *err = (ll_error){ 0 };
        return ll_fail(err, code, "%s: %s", path, inner);
    }
    if (errno != ENOENT) return ll_fail(err, LL_ERR_IO, "opening %s: %s", path, strerror(errno));
    /* first use: a new key, as Ollama creates one at start-up */
    unsigned char fresh[32];
    if (RAND_bytes(fresh, sizeof fresh) != 1) return ll_fail(err, LL_ERR_IO, "ssh key: no random bytes");
    char *priv, *pub;
    if (ll_registry_key_format(fresh, &priv, &pub, err) != LL_OK) return err->code;
    char pubpath[4096 + 8], line[200];
    snprintf(pubpath, sizeof pubpath, "%s.pub", path);
    snprintf(line, sizeof line, "%s\n", pub);
    ll_status st = write_new(path, priv, 0600, err);
    if (st == LL_OK) {
        unlink(pubpath);                     /* a stale public half of an older key */
        st = write_new(pubpath, line, 0644, err);
    }
    free(priv);
    free(pub);
    if (st != LL_OK) return st;
    memcpy(seed, fresh, 32);
    return LL_OK;
}

// ---- signing ----------------------------------------------------------------------------------

ll_status ll_registry_sign(const unsigned char seed[32], const void *data, size_t n, char *out,
                           size_t cap, ll_error *err) {
    unsigned char pk[32], blob[51], sig[64];
    if (seed_public(seed, pk, err) != LL_OK) return err->code;
    pub_blob(pk, blob);
    EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, 32);
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    size_t sl = sizeof sig;
    bool ok = k && c && EVP_DigestSignInit(c, NULL, NULL, NULL, k) == 1 &&
              EVP_DigestSign(c, sig, &sl, data, n) == 1 && sl == 64;
    EVP_MD_CTX_free(c);
    EVP_PKEY_free(k);
    if (!ok) return ll_fail(err, LL_ERR_IO, "ed25519: signing failed");
    char a[80], b[100];
    b64_encode(blob, sizeof blob, a, false);
    b64_encode(sig, sizeof sig, b, false);
    if ((size_t)snprintf(out, cap, "%s:%s", a, b) >= cap) return ll_fail(err, LL_ERR_LIMIT, "signature buffer too small");
    return LL_OK;
}

/* Go's url.QueryEscape: unreserved bytes kept, space as '+', the rest %XX. */
static size_t query_escape(const char *s, char *out, size_t cap) {
    size_t o = 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char tmp[4];
        size_t k;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("-_.~", c)) {
            tmp[0] = (char)c; k = 1;
        } else if (c == ' ') {
            tmp[0] = '+'; k = 1;
        } else {
            snprintf(tmp, sizeof tmp, "%%%02X", c); k = 3;
        }
        if (o + k >= cap) break;
        memcpy(out + o, tmp, k);
        o += k;
    }
    if (cap) out[o < cap ? o : cap - 1] = 0;
    return o;
}

void ll_registry_token_url(const char *realm, const char *service, const char *scope,
                           const char *nonce, int64_t ts, char *out, size_t cap) {
    char en[256], esc[1024], ese[1024];
    query_escape(nonce, en, sizeof en);
    query_escape(scope ? scope : "", esc, sizeof esc);
    query_escape(service ? service : "", ese, sizeof ese);
    /* url.Values.Encode sorts the keys: nonce, scope, service, ts. A realm that has a query of
     * its own keeps it in front (Go would merge and sort it in; no registry we know does). */
    snprintf(out, cap, "%s%snonce=%s&scope=%s&service=%s&ts=%lld", realm, strchr(realm, '?') ? "&" : "?",
             en, esc, ese, (long long)ts);
}

void ll_registry_sign_text(const char *url, char *out, size_t cap) {
    /* base64 of the hex SHA-256 of an empty body */
    static const char empty_hex[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    char b[96];
    b64_encode((const unsigned char *)empty_hex, 64, b, false);
    snprintf(out, cap, "GET,%s,%s", url, b);
}

// ---- the token request ------------------------------------------------------------------------

bool ll_registry_challenge_param(const char *ch, const char *key, char *out, size_t cap) {
    size_t kl = strlen(key);
    for (const char *p = ch; (p = strcasestr(p, key)); p += kl) {
        if (p != ch && p[-1] != ' ' && p[-1] != ',') continue;
        const char *v = p + kl;
        if (*v != '=') continue;
        v++;
        bool quoted = *v == '"';
        if (quoted) v++;
        size_t n = 0;
        while (v[n] && (quoted ? v[n] != '"' : v[n] != ',')) n++;
        if (n >= cap) return false;
        memcpy(out, v, n);
        out[n] = 0;
        return true;
    }
    return false;
}

typedef struct { char *p; size_t n; bool over; } membuf;

static size_t on_token_body(char *b, size_t sz, size_t n, void *ud) {
    membuf *m = ud;
    size_t len = sz * n;
    if (m->n + len > TOKEN_BODY_MAX) { m->over = true; return 0; }
    char *q = realloc(m->p, m->n + len + 1);
    if (!q) return 0;
    memcpy(q + m->n, b, len);
    m->p = q;
    m->n += len;
    q[m->n] = 0;
    return len;
}

ll_status ll_registry_fetch_token(CURL *c, const char *challenge, const char *scope,
                                  const char *key_path, char *token, size_t cap, ll_error *err) {
    char realm[1024], service[512] = "", own_scope[512] = "";
    if (strncasecmp(challenge, "Bearer ", 7) || !ll_registry_challenge_param(challenge + 7, "realm", realm, sizeof realm))
        return ll_fail(err, LL_ERR_IO, "unauthorized: unsupported authentication challenge \"%s\"", challenge);
    ll_registry_challenge_param(challenge + 7, "service", service, sizeof service);
    ll_registry_challenge_param(challenge + 7, "scope", own_scope, sizeof own_scope);
    if (!scope) scope = own_scope;
    if (strncasecmp(realm, "https://", 8) && strncasecmp(realm, "http://", 7))
        return ll_fail(err, LL_ERR_IO, "unauthorized: token realm \"%s\" is not an http(s) URL", realm);
    char url[4096], auth[512] = "";
    if (key_path) {
        unsigned char seed[32], raw[16];
        char nonce[32], text[4096 + 128];
        if (ll_registry_key_load(key_path, seed, err) != LL_OK) return err->code;
        if (RAND_bytes(raw, sizeof raw) != 1) return ll_fail(err, LL_ERR_IO, "no random bytes for a nonce");
        b64_encode(raw, sizeof raw, nonce, true);
        ll_registry_token_url(realm, service, scope, nonce, (int64_t)time(NULL), url, sizeof url);
        ll_registry_sign_text(url, text, sizeof text);
        char sig[300];
        ll_status st = ll_registry_sign(seed, text, strlen(text), sig, sizeof sig, err);
        memset(seed, 0, sizeof seed);
        if (st != LL_OK) return st;
        snprintf(auth, sizeof auth, "Authorization: %s", sig);
    } else {
        char *es = curl_easy_escape(c, service, 0), *ec = curl_easy_escape(c, scope, 0);
        snprintf(url, sizeof url, "%s%sservice=%s&scope=%s", realm, strchr(realm, '?') ? "&" : "?",
                 es ? es : "", ec ? ec : "");
        curl_free(es);
        curl_free(ec);
    }
    curl_easy_reset(c);
    struct curl_slist *h = curl_slist_append(NULL, "Accept: application/json");
    if (auth[0]) h = curl_slist_append(h, auth);
    membuf m = { 0 };
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "locallama");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_token_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &m);
    CURLcode rc = curl_easy_perform(c);
    curl_slist_free_all(h);
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    ll_status st = LL_OK;
    if (m.over) st = ll_fail(err, LL_ERR_LIMIT, "unauthorized: the token answer is larger than %d bytes", TOKEN_BODY_MAX);
    else if (rc != CURLE_OK) st = ll_fail(err, LL_ERR_IO, "Get \"%s\": %s", realm, curl_easy_strerror(rc));
    else if (code != 200) st = ll_fail(err, LL_ERR_IO, "unauthorized: token request answered %ld", code);
    if (st != LL_OK) { free(m.p); return st; }
    json_t *j = json_loadb(m.p ? m.p : "", m.n, 0, NULL);
    const char *t = json_string_value(json_object_get(j, "token"));
    if (!t || !*t) t = json_string_value(json_object_get(j, "access_token"));
    if (!t || !*t || strlen(t) >= cap) st = ll_fail(err, LL_ERR_IO, "unauthorized: no token in the registry's answer");
    else snprintf(token, cap, "%s", t);
    json_decref(j);
    free(m.p);
    return st;
}

// ---- URLs -------------------------------------------------------------------------------------

bool ll_registry_resolve(const char *base, const char *loc, char *out, size_t cap) {
    while (*loc == ' ' || *loc == '\t') loc++;
    size_t ll = strlen(loc);
    while (ll && (loc[ll - 1] == ' ' || loc[ll - 1] == '\t' || loc[ll - 1] == '\r' || loc[ll - 1] == '\n')) ll--;
    if (!ll) return false;
    int w;
    if (!strncasecmp(loc, "http://", 7) || !strncasecmp(loc, "https://", 8)) {
        w = snprintf(out, cap, "%.*s", (int)ll, loc);
        return w >= 0 && (size_t)w < cap;
    }
    const char *colon = memchr(loc, ':', ll), *slash = memchr(loc, '/', ll);
    if (colon && (!slash || colon < slash)) return false;          /* another scheme */
    const char *sep = strstr(base, "://");
    if (!sep || (strncasecmp(base, "http://", 7) && strncasecmp(base, "https://", 8))) return false;
    size_t scheme_len = (size_t)(sep - base);
    const char *host = sep + 3;
    size_t host_len = strcspn(host, "/?#");
    if (ll >= 2 && loc[0] == '/' && loc[1] == '/')
        w = snprintf(out, cap, "%.*s:%.*s", (int)scheme_len, base, (int)ll, loc);
    else if (loc[0] == '/')
        w = snprintf(out, cap, "%.*s%.*s", (int)(host + host_len - base), base, (int)ll, loc);
    else {
        /* relative to the base's directory (its path up to the last '/') */
        const char *path = host + host_len;
        size_t path_len = strcspn(path, "?#");
        size_t dir = path_len;
        while (dir && path[dir - 1] != '/') dir--;
        if (!dir) w = snprintf(out, cap, "%.*s/%.*s", (int)(path - base), base, (int)ll, loc);
        else w = snprintf(out, cap, "%.*s%.*s", (int)(path + dir - base), base, (int)ll, loc);
    }
    return w >= 0 && (size_t)w < cap;
}
