/* A plain test runner: each test is a function; the binary prints one line per failure and
 * ends with "N passed, N failed" (exit status 1 when any failed).
 *
 *     static void test_Q4_0_worked_example(void) { CHECK(x == 1.5f); CHECK_EQ_INT(n, 32); }
 *     int main(void) { RUN(test_Q4_0_worked_example); return test_summary(); }
 *
 * Golden data is read from LL_SHARED_DIR (../shared by default). */
#ifndef LL_TEST_H
#define LL_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef LL_SHARED_DIR
#define LL_SHARED_DIR "../shared"
#endif

static int test_n_pass, test_n_fail, test_cur_failed;
static const char *test_cur_name;

#define CHECK(cond) do { if (!(cond)) { test_cur_failed = 1; \
    fprintf(stderr, "FAIL %s (%s:%d): %s\n", test_cur_name, __FILE__, __LINE__, #cond); } } while (0)
#define CHECK_MSG(cond, ...) do { if (!(cond)) { test_cur_failed = 1; \
    fprintf(stderr, "FAIL %s (%s:%d): %s: ", test_cur_name, __FILE__, __LINE__, #cond); \
    fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)
#define CHECK_EQ_INT(a, b) do { long long _a = (long long)(a), _b = (long long)(b); if (_a != _b) { \
    test_cur_failed = 1; fprintf(stderr, "FAIL %s (%s:%d): %s == %s: %lld != %lld\n", \
    test_cur_name, __FILE__, __LINE__, #a, #b, _a, _b); } } while (0)
#define CHECK_NEAR(a, b, tol) do { double _a = (double)(a), _b = (double)(b); \
    if (!(fabs(_a - _b) <= (tol))) { test_cur_failed = 1; \
    fprintf(stderr, "FAIL %s (%s:%d): %s ~ %s: %.9g vs %.9g (tol %g)\n", test_cur_name, \
    __FILE__, __LINE__, #a, #b, _a, _b, (double)(tol)); } } while (0)
#define CHECK_STR_CONTAINS(hay, needle) CHECK_MSG(strstr((hay), (needle)) != NULL, \
    "'%s' does not contain '%s'", (hay), (needle))

#define RUN(fn) do { test_cur_name = #fn; test_cur_failed = 0; fn(); \
    if (test_cur_failed) test_n_fail++; else test_n_pass++; } while (0)

static inline int test_summary(void) {
    printf("%d passed, %d failed\n", test_n_pass, test_n_fail);
    return test_n_fail ? 1 : 0;
}

/* Read a whole file; returns NULL (and *n = 0) when it cannot. free() the result. */
static inline unsigned char *test_read_file(const char *path, size_t *n) {
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(len > 0 ? (size_t)len : 1);
    if (buf && len > 0 && fread(buf, 1, (size_t)len, f) != (size_t)len) { free(buf); buf = NULL; }
    fclose(f);
    if (buf) *n = (size_t)len;
    return buf;
}

#endif
