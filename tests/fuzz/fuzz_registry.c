/* libFuzzer target for what a registry or a key file hands store/registry.c: OpenSSH private
 * key text (ll_registry_key_parse), WWW-Authenticate parameter lists and Location headers.
 *
 * Checks: no crash; a key that parses formats back to a file that parses to the same seed; a
 * challenge value found fits its buffer; a resolved Location is an http(s) URL that fits. */
#include "store/registry.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ll_error e = { 0 };
    unsigned char seed[32], again[32];
    if (ll_registry_key_parse((const char *)data, size, seed, &e) == LL_OK) {
        char *priv, *pub;
        if (ll_registry_key_format(seed, &priv, &pub, &e) != LL_OK) abort();
        if (ll_registry_key_parse(priv, strlen(priv), again, &e) != LL_OK || memcmp(seed, again, 32)) abort();
        free(priv);
        free(pub);
    } else if (!e.msg[0]) {
        abort();
    }
    char *s = malloc(size + 1);
    if (!s) return 0;
    memcpy(s, data, size);
    s[size] = 0;
    char v[64];
    static const char *const keys[] = { "realm", "service", "scope", "error" };
    for (size_t k = 0; k < 4; k++)
        if (ll_registry_challenge_param(s, keys[k], v, sizeof v) && strlen(v) >= sizeof v) abort();
    char out[256];
    static const char *const bases[] = { "http://127.0.0.1:5000/v2/a/b/blobs/uploads/", "https://h", "https://h/x?y" };
    for (size_t b = 0; b < 3; b++)
        if (ll_registry_resolve(bases[b], s, out, sizeof out) &&
            (strlen(out) >= sizeof out || (strncasecmp(out, "http://", 7) && strncasecmp(out, "https://", 8))))
            abort();
    free(s);
    return 0;
}
