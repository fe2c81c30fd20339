/* libFuzzer target for the Modelfile parser and renderer (src/store/modelfile.c).
 *
 * The input is Modelfile text. Checks: no crash, only LL_OK / LL_ERR_FORMAT / LL_ERR_LIMIT,
 * a failure leaves *out NULL and a NUL-terminated message; a success has at least one FROM.
 * A parsed Modelfile is rendered as `show --modelfile` does and the rendering parsed again:
 * whenever the original arguments render unambiguously (no argument needing """ that itself
 * contains """, no leading/trailing blanks the bare form would trim), the round trip must give
 * the same template, system, licenses and parameters. */
#include "store/modelfile.h"

#include <stdlib.h>
#include <string.h>

static int render_safe(const char *s) {
    if (!s) return 1;
    size_t n = strlen(s);
    if (strstr(s, "\"\"\"") || strchr(s, '\r')) return 0;
    if (n && strchr("\t\n\v\f\r ", s[0]) && s[0] != ' ') return 0;
    if (n && strchr("\t\n\v\f\r ", s[n - 1]) && s[n - 1] != ' ') return 0;
    const char *t = s;
    while (*t && (unsigned char)*t <= ' ') t++;
    if (*t == '"') return 0;                       /* a bare value starting (after blanks) with a quote */
    if (n && (s[n - 1] == '"') && (strchr(s, '\n') || s[0] == ' ' || s[n - 1] == ' ')) return 0;
    return 1;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    ll_modelfile *mf = NULL;
    ll_error err = {0};
    ll_status st = ll_modelfile_parse(&mf, (const char *)data, size, &err);
    if (st != LL_OK) {
        if (mf || (st != LL_ERR_FORMAT && st != LL_ERR_LIMIT && st != LL_ERR_NOMEM)) abort();
        if (strnlen(err.msg, sizeof err.msg) == sizeof err.msg) abort();
        return 0;
    }
    if (!mf || mf->n_from == 0) abort();

    char *params = ll_modelfile_render_parameters(mf->params);
    if (!params) abort();
    free(params);
    char *text = ll_modelfile_render(mf, "fuzz:latest");
    if (!text) abort();

    int safe = render_safe(mf->template_text) && render_safe(mf->system);
    for (size_t i = 0; i < mf->n_licenses; i++) safe &= render_safe(mf->licenses[i]);
    for (size_t i = 0; i < mf->n_from; i++) safe &= render_safe(mf->from[i]) && !strchr(mf->from[i], '\n');
    for (size_t i = 0; i < mf->n_adapters; i++) safe &= render_safe(mf->adapters[i]);
    for (size_t i = 0; i < mf->n_messages; i++) safe &= render_safe(mf->messages[i].content);
    if (mf->params) {
        json_t *stop = json_object_get(mf->params, "stop");
        for (size_t i = 0; i < json_array_size(stop); i++) safe &= render_safe(json_string_value(json_array_get(stop, i)));
    }
    safe &= render_safe(mf->renderer) && render_safe(mf->parser) && render_safe(mf->draft);
    if (mf->template_text && !*mf->template_text) safe = 0;   /* rendered as {{ .Prompt }} */
    if (mf->system && !*mf->system) safe = 0;                 /* not rendered */

    ll_modelfile *again = NULL;
    ll_error err2 = {0};
    st = ll_modelfile_parse(&again, text, strlen(text), &err2);
    if (safe) {
        if (st != LL_OK) abort();
        if (mf->template_text && strcmp(mf->template_text, again->template_text)) abort();
        if (mf->system && strcmp(mf->system, again->system)) abort();
        if (mf->n_licenses != again->n_licenses) abort();
        for (size_t i = 0; i < mf->n_licenses; i++)
            if (strcmp(mf->licenses[i], again->licenses[i])) abort();
        if (mf->n_messages != again->n_messages) abort();
        if (!!mf->params != !!again->params || (mf->params && !json_equal(mf->params, again->params))) abort();
    }
    ll_modelfile_free(again);
    free(text);
    ll_modelfile_free(mf);
    return 0;
}
