/* The kernel under study: C = A * B for n x n single-precision row-major matrices.
 *
 * Edit freely (this file and the Makefile); harness.c is read-only.
 * The knobs below are what the offline search changes; a model may rewrite anything.
 */
#include "matmul.h"

/* 0 = ijk (naive, B walked by column), 1 = ikj (rows streamed),
 * 2 = blocked ikj (BLOCK x BLOCK tiles), 3 = blocked ikj, 4 rows of C at a time */
#define LOOP_ORDER 0
#define BLOCK 64
/* how far the compiler unrolls the innermost loop (1 = leave it to the compiler) */
#define UNROLL 1
/* 1 = promise the compiler that A, B and C do not overlap */
#define RESTRICT 0

#if RESTRICT
#define RST restrict
#else
#define RST
#endif

/* two steps, so that UNROLL is expanded before it is turned into the pragma's text */
#define PRAGMA(x) _Pragma(#x)
#define UNROLL_PRAGMA(n) PRAGMA(GCC unroll n)
#if UNROLL > 1
#define INNER UNROLL_PRAGMA(UNROLL)
#else
#define INNER
#endif

static inline int min_int(int a, int b) { return a < b ? a : b; }

void matmul(int n, const float *RST A, const float *RST B, float *RST C)
{
#if LOOP_ORDER == 0
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            float sum = 0.0f;
            INNER
            for (int k = 0; k < n; k++)
                sum += A[i * n + k] * B[k * n + j];
            C[i * n + j] = sum;
        }
#elif LOOP_ORDER == 1
    for (int i = 0; i < n; i++) {
        float *RST c = C + i * n;
        for (int j = 0; j < n; j++)
            c[j] = 0.0f;
        for (int k = 0; k < n; k++) {
            const float a = A[i * n + k];
            const float *RST b = B + k * n;
            INNER
            for (int j = 0; j < n; j++)
                c[j] += a * b[j];
        }
    }
#elif LOOP_ORDER == 2
    for (int i = 0; i < n * n; i++)
        C[i] = 0.0f;
    for (int kk = 0; kk < n; kk += BLOCK)
        for (int jj = 0; jj < n; jj += BLOCK) {
            const int kend = min_int(kk + BLOCK, n), jend = min_int(jj + BLOCK, n);
            for (int i = 0; i < n; i++) {
                float *RST c = C + i * n;
                for (int k = kk; k < kend; k++) {
                    const float a = A[i * n + k];
                    const float *RST b = B + k * n;
                    INNER
                    for (int j = jj; j < jend; j++)
                        c[j] += a * b[j];
                }
            }
        }
#elif LOOP_ORDER == 3
    for (int i = 0; i < n * n; i++)
        C[i] = 0.0f;
    for (int kk = 0; kk < n; kk += BLOCK)
        for (int jj = 0; jj < n; jj += BLOCK) {
            const int kend = min_int(kk + BLOCK, n), jend = min_int(jj + BLOCK, n);
            int i = 0;
            for (; i + 4 <= n; i += 4) {
                float *RST c0 = C + i * n, *RST c1 = c0 + n, *RST c2 = c1 + n, *RST c3 = c2 + n;
                for (int k = kk; k < kend; k++) {
                    const float a0 = A[i * n + k], a1 = A[(i + 1) * n + k];
                    const float a2 = A[(i + 2) * n + k], a3 = A[(i + 3) * n + k];
                    const float *RST b = B + k * n;
                    INNER
                    for (int j = jj; j < jend; j++) {
                        const float bj = b[j];
                        c0[j] += a0 * bj;
                        c1[j] += a1 * bj;
                        c2[j] += a2 * bj;
                        c3[j] += a3 * bj;
                    }
                }
            }
            for (; i < n; i++) {
                float *RST c = C + i * n;
                for (int k = kk; k < kend; k++) {
                    const float a = A[i * n + k];
                    const float *RST b = B + k * n;
                    for (int j = jj; j < jend; j++)
                        c[j] += a * b[j];
                }
            }
        }
#else
#error "LOOP_ORDER must be 0, 1, 2 or 3"
#endif
}
