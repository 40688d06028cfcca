/* Read-only benchmark harness: checks matmul() against a reference, then times it.
 *
 *   ./bench --check    verify on small, awkward sizes (exit 1 on a wrong answer)
 *   ./bench [N]        time C = A * B for N x N (default 512): best of several runs,
 *                      spot-check the result, print "GFLOP/s: X"
 */
#define _POSIX_C_SOURCE 200112L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "matmul.h"

#define MIN_SECONDS 0.5 /* keep timing until this much time is spent ... */
#define MIN_RUNS 3      /* ... and at least this many runs */
#define MAX_RUNS 200

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static unsigned long long rng_state = 0x9E3779B97F4A7C15ull;

static float random_float(void) /* uniform in [-1, 1) */
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) * (1.0 / (1ull << 24)) * 2.0 - 1.0);
}

static float *alloc_matrix(int n)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, (size_t)n * (size_t)n * sizeof(float)) != 0) {
        fprintf(stderr, "error: out of memory for n=%d\n", n);
        exit(2);
    }
    return p;
}

static void fill_random(float *m, int n)
{
    for (long i = 0; i < (long)n * n; i++)
        m[i] = random_float();
}

static void fill_nan(float *m, int n)
{
    for (long i = 0; i < (long)n * n; i++)
        m[i] = NAN;
}

/* Compare C[i][j] with a double-precision dot product; the tolerance scales with
 * sum |a||b|, so reordered (even -ffast-math) float sums pass and wrong ones do not. */
static int check_entry(int n, const float *A, const float *B, const float *C, int i, int j)
{
    double exact = 0.0, scale = 0.0;
    for (int k = 0; k < n; k++) {
        exact += (double)A[i * n + k] * (double)B[k * n + j];
        scale += fabs((double)A[i * n + k] * (double)B[k * n + j]);
    }
    const double got = C[i * n + j];
    const double tolerance = 1e-5 * scale + 1e-6;
    if (!(fabs(got - exact) <= tolerance)) {
        fprintf(stderr, "error: wrong result for n=%d at C[%d][%d]: got %.7g, expected %.7g\n",
                n, i, j, got, exact);
        return 0;
    }
    return 1;
}

static int check_size(int n)
{
    float *A = alloc_matrix(n), *B = alloc_matrix(n), *C = alloc_matrix(n);
    fill_random(A, n);
    fill_random(B, n);
    fill_nan(C, n);
    matmul(n, A, B, C);
    int ok = 1;
    for (int i = 0; i < n && ok; i++)
        for (int j = 0; j < n && ok; j++)
            ok = check_entry(n, A, B, C, i, j);
    free(A);
    free(B);
    free(C);
    return ok;
}

static int run_check(void)
{
    static const int sizes[] = {1, 2, 3, 7, 16, 31, 64, 65, 100, 129, 200, 257};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        if (!check_size(sizes[s]))
            return 1;
    }
    printf("check: ok (%zu sizes)\n", sizeof sizes / sizeof sizes[0]);
    return 0;
}

static int run_bench(int n)
{
    float *A = alloc_matrix(n), *B = alloc_matrix(n), *C = alloc_matrix(n);
    fill_random(A, n);
    fill_random(B, n);
    double best = INFINITY, spent = 0.0;
    int runs = 0;
    while (runs < MAX_RUNS && (runs < MIN_RUNS || spent < MIN_SECONDS)) {
        fill_nan(C, n); /* the kernel must write every entry, every time */
        const double start = now();
        matmul(n, A, B, C);
        const double elapsed = now() - start;
        spent += elapsed;
        runs++;
        if (elapsed < best)
            best = elapsed;
    }
    /* spot-check the last result: rows and columns at the edges and in between */
    for (int s = 0; s < 64; s++) {
        random_float(); /* advances rng_state */
        int i = (int)((rng_state >> 20) % (unsigned)n), j = (int)((rng_state >> 40) % (unsigned)n);
        if (s < 4) { /* the four corners */
            i = (s & 1) ? n - 1 : 0;
            j = (s & 2) ? n - 1 : 0;
        }
        if (!check_entry(n, A, B, C, i, j))
            return 1;
    }
    const double gflops = 2.0 * n * (double)n * n / best * 1e-9;
    printf("n=%d runs=%d best=%.3f ms\n", n, runs, best * 1e3);
    printf("GFLOP/s: %.2f\n", gflops);
    free(A);
    free(B);
    free(C);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--check") == 0)
        return run_check();
    const int n = argc > 1 ? atoi(argv[1]) : 512;
    if (n < 1 || n > 8192) {
        fprintf(stderr, "usage: %s [--check | N]  (1 <= N <= 8192)\n", argv[0]);
        return 2;
    }
    return run_bench(n);
}
