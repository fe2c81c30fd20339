/* store/registry and the pure parts of store/push: Bearer challenge parameters, Location
 * resolution, Ollama's ed25519 key file (written, read back, checked against ssh-keygen when
 * it is installed), the signed token request's URL and text, and signatures verified with
 * libcrypto's ed25519 public key. The requests themselves are tested against Debian's
 * docker-registry in tests/py/test_registry_push.py. */
#include "store/registry.h"
#include "store/push.h"
#include "../test.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void test_challenge_param(void) {
    const char *ch = "realm=\"https://auth.example/token\",service=\"registry.example\",scope=\"repository:a/b:pull\"";
    char v[128];
    CHECK(ll_registry_challenge_param(ch, "realm", v, sizeof v) && !strcmp(v, "https://auth.example/token"));
    CHECK(ll_registry_challenge_param(ch, "service", v, sizeof v) && !strcmp(v, "registry.example"));
    CHECK(ll_registry_challenge_param(ch, "scope", v, sizeof v) && !strcmp(v, "repository:a/b:pull"));
    CHECK(!ll_registry_challenge_param(ch, "error", v, sizeof v));
    /* unquoted values, and a key that only appears inside another value */
    CHECK(ll_registry_challenge_param("realm=x,service=y", "service", v, sizeof v) && !strcmp(v, "y"));
    CHECK(!ll_registry_challenge_param("realm=\"myservice=1\"", "service", v, sizeof v));
    CHECK(!ll_registry_challenge_param(ch, "realm", v, 8));            /* does not fit: refused */
}

static void test_resolve(void) {
    const char *base = "http://127.0.0.1:5000/v2/library/x/blobs/uploads/";
    char out[512];
    CHECK(ll_registry_resolve(base, "http://other:1/v2/u?_state=a", out, sizeof out) && !strcmp(out, "http://other:1/v2/u?_state=a"));
    CHECK(ll_registry_resolve(base, "/v2/library/x/blobs/uploads/abc?_state=s%3D", out, sizeof out) &&
          !strcmp(out, "http://127.0.0.1:5000/v2/library/x/blobs/uploads/abc?_state=s%3D"));
    CHECK(ll_registry_resolve(base, "//cdn.example/put/1", out, sizeof out) && !strcmp(out, "http://cdn.example/put/1"));
    CHECK(ll_registry_resolve(base, "abc?x=1", out, sizeof out) &&
          !strcmp(out, "http://127.0.0.1:5000/v2/library/x/blobs/uploads/abc?x=1"));
    CHECK(ll_registry_resolve("https://h/v2/a/b?q=1", "c", out, sizeof out) && !strcmp(out, "https://h/v2/a/c"));
    CHECK(ll_registry_resolve("https://h", "c", out, sizeof out) && !strcmp(out, "https://h/c"));
    CHECK(ll_registry_resolve(base, "  /p \r\n", out, sizeof out) && !strcmp(out, "http://127.0.0.1:5000/p"));
    CHECK(!ll_registry_resolve(base, "file:///etc/passwd", out, sizeof out));
    CHECK(!ll_registry_resolve(base, "", out, sizeof out));
    CHECK(!ll_registry_resolve("ftp://h/x", "/y", out, sizeof out));
    CHECK(!ll_registry_resolve(base, "/a-long-path", out, 20));
}

/* the raw public key out of "<base64 blob>:<base64 sig>" (blob = string type, string pk) */
static int b64val(char c) {
    const char *t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *p = strchr(t, c);
    return c && p ? (int)(p - t) : -1;
}
static size_t b64dec(const char *s, size_t n, unsigned char *out) {
    uint32_t v = 0; int bits = 0; size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int d = b64val(s[i]);
        if (d < 0) continue;
        v = v << 6 | (uint32_t)d; bits += 6;
        if (bits >= 8) { bits -= 8; out[o++] = (unsigned char)(v >> bits); }
    }
    return o;
}

static bool verify(const char *auth, const char *data) {
    const char *colon = strchr(auth, ':');
    if (!colon) return false;
    unsigned char blob[128], sig[128];
    size_t nb = b64dec(auth, (size_t)(colon - auth), blob), ns = b64dec(colon + 1, strlen(colon + 1), sig);
    if (nb != 51 || ns != 64 || memcmp(blob + 4, "ssh-ed25519", 11)) return false;
    EVP_PKEY *k = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, blob + 19, 32);
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    bool ok = k && c && EVP_DigestVerifyInit(c, NULL, NULL, NULL, k) == 1 &&
              EVP_DigestVerify(c, sig, 64, (const unsigned char *)data, strlen(data)) == 1;
    EVP_MD_CTX_free(c);
    EVP_PKEY_free(k);
    return ok;
}

static void test_key_roundtrip_and_signature(void) {
    ll_error err = { 0 };
    unsigned char seed[32], back[32];
    for (int i = 0; i < 32; i++) seed[i] = (unsigned char)(i * 7 + 1);
    char *priv, *pub;
    CHECK(ll_registry_key_format(seed, &priv, &pub, &err) == LL_OK);
    CHECK(!strncmp(priv, "-----BEGIN OPENSSH PRIVATE KEY-----\n", 36));
    CHECK(strstr(priv, "\n-----END OPENSSH PRIVATE KEY-----\n") != NULL);
    for (const char *l = strchr(priv, '\n') + 1; *l != '-'; l = strchr(l, '\n') + 1)
        CHECK(strcspn(l, "\n") <= 64);                       /* PEM lines as Go writes them */
    CHECK(!strncmp(pub, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI", 37));
    CHECK(ll_registry_key_parse(priv, strlen(priv), back, &err) == LL_OK && !memcmp(seed, back, 32));

    const char *data = "GET,https://ollama.com/token?nonce=x&scope=repository%3Ame%2Fm%3Apush%2Cpull&service=ollama.com&ts=1,ZTNi";
    char auth[300];
    CHECK(ll_registry_sign(seed, data, strlen(data), auth, sizeof auth, &err) == LL_OK);
    CHECK(verify(auth, data));
    /* the public half in the signature is the .pub line's */
    CHECK(!strncmp(auth, pub + 12, strlen(pub + 12)) && auth[strlen(pub + 12)] == ':');
    char other[300];
    snprintf(other, sizeof other, "%s", data);
    other[0] = 'P';
    CHECK(!verify(auth, other));                             /* a signature of that text only */

    /* damaged files are refused with a reason */
    char *bad = strdup(priv);
    bad[60] = bad[60] == 'A' ? 'B' : 'A';
    err = (ll_error){ 0 };
    CHECK(ll_registry_key_parse(bad, strlen(bad), back, &err) != LL_OK && err.msg[0]);
    err = (ll_error){ 0 };
    CHECK(ll_registry_key_parse("hello", 5, back, &err) == LL_ERR_FORMAT && strstr(err.msg, "BEGIN"));
    err = (ll_error){ 0 };
    const char *truncated = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEA\n-----END OPENSSH PRIVATE KEY-----\n";
    CHECK(ll_registry_key_parse(truncated, strlen(truncated), back, &err) == LL_ERR_FORMAT);
    free(bad);
    free(priv);
    free(pub);
}

static void test_key_file_created_once(void) {
    char dir[] = "/tmp/ll_regkey_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[256], pubpath[260];
    snprintf(path, sizeof path, "%s/id_ed25519", dir);
    snprintf(pubpath, sizeof pubpath, "%s.pub", path);
    ll_error err = { 0 };
    unsigned char a[32], b[32];
    CHECK(ll_registry_key_load(path, a, &err) == LL_OK);
    struct stat st;
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
    CHECK(stat(pubpath, &st) == 0);
    CHECK(ll_registry_key_load(path, b, &err) == LL_OK && !memcmp(a, b, 32));   /* read, not replaced */
    /* the .pub line is the public half of the key file */
    char *priv, *pub, line[256] = "";
    CHECK(ll_registry_key_format(a, &priv, &pub, &err) == LL_OK);
    FILE *f = fopen(pubpath, "r");
    CHECK(f && fgets(line, sizeof line, f));
    if (f) fclose(f);
    CHECK(!strncmp(line, pub, strlen(pub)) && line[strlen(pub)] == '\n');
    /* OpenSSH itself reads the file and derives the same public key */
    if (access("/usr/bin/ssh-keygen", X_OK) == 0) {
        char cmd[400], got[256] = "";
        snprintf(cmd, sizeof cmd, "/usr/bin/ssh-keygen -y -f %s 2>&1", path);
        FILE *p = popen(cmd, "r");
        CHECK(p && fgets(got, sizeof got, p));
        if (p) pclose(p);
        CHECK_MSG(!strncmp(got, pub, strlen(pub)), "ssh-keygen said: %s", got);
    } else {
        fprintf(stderr, "note: /usr/bin/ssh-keygen missing, the OpenSSH cross-check is skipped\n");
    }
    free(priv);
    free(pub);
    /* a file that is not a key: an error naming the file, never replaced */
    f = fopen(path, "w");
    if (f) { fputs("not a key\n", f); fclose(f); }
    err = (ll_error){ 0 };
    CHECK(ll_registry_key_load(path, a, &err) == LL_ERR_FORMAT && strstr(err.msg, path));
    unlink(path);
    unlink(pubpath);
    rmdir(dir);
}

static void test_token_url_and_text(void) {
    char url[512], text[700];
    ll_registry_token_url("https://ollama.com/token", "ollama.com", "repository:me/my model:push,pull",
                          "AbC-_x", 1700000000, url, sizeof url);
    CHECK(!strcmp(url, "https://ollama.com/token?nonce=AbC-_x&scope=repository%3Ame%2Fmy+model%3Apush%2Cpull"
                       "&service=ollama.com&ts=1700000000"));
    ll_registry_sign_text("https://x/t?a=1", text, sizeof text);
    /* base64 of the 64 hex digits of SHA-256("") */
    CHECK(!strcmp(text, "GET,https://x/t?a=1,ZTNiMGM0NDI5OGZjMWMxNDlhZmJmNGM4OTk2ZmI5MjQyN2FlNDFlNDY0OWI5MzRjYTQ5NTk5MWI3ODUyYjg1NQ=="));
}

static void test_chunk_env(void) {
    unsetenv("LOCALLAMA_PUSH_CHUNK");
    CHECK(ll_push_chunk_size() == LL_PUSH_CHUNK_DEFAULT);
    setenv("LOCALLAMA_PUSH_CHUNK", "1048576", 1);
    CHECK(ll_push_chunk_size() == 1048576);
    setenv("LOCALLAMA_PUSH_CHUNK", "12", 1);                 /* too small: the default */
    CHECK(ll_push_chunk_size() == LL_PUSH_CHUNK_DEFAULT);
    setenv("LOCALLAMA_PUSH_CHUNK", "1M", 1);                 /* not a number: the default */
    CHECK(ll_push_chunk_size() == LL_PUSH_CHUNK_DEFAULT);
    unsetenv("LOCALLAMA_PUSH_CHUNK");
}

int main(void) {
    RUN(test_challenge_param);
    RUN(test_resolve);
    RUN(test_key_roundtrip_and_signature);
    RUN(test_key_file_created_once);
    RUN(test_token_url_and_text);
    RUN(test_chunk_env);
    return test_summary();
}
