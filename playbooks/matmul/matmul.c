/* The kernel under study: C = A * B for n x n single-precision row-major matrices.
 *
 * Edit freely (this file and the Makefile); harness.c is read-only.
 * The knobs below are what the offline search changes; a model may rewrite anything.
 */
#include "matmul.h"

/* 0 = ijk (naive, B walked by column), 1 = ikj (rows streamed),
 * 2 = blocked ikj (BLOCK x BLOCK tiles), 3 = blocked ikj, 4 rows of C at a time,
 * 4 = packed panels and a register-blocked micro-kernel (the GotoBLAS/BLIS shape; knobs below) */
#define LOOP_ORDER 0
#define BLOCK 64
/* how far the compiler unrolls the innermost loop (1 = leave it to the compiler) */
#define UNROLL 1
/* 1 = promise the compiler that A, B and C do not overlap */
#define RESTRICT 0

/* LOOP_ORDER 4: C is computed in MR x (NV * VEC) tiles held in registers; A is packed in MR-row
 * panels of MC x KC blocks, B in (NV * VEC)-column panels of KC x NC blocks, so that the
 * micro-kernel streams both from cache. VEC is the vector width in floats (8: AVX2, 16: AVX-512),
 * PREFETCH how many k steps ahead the packed B is prefetched (0: no prefetch). */
#define MR 4
#define NV 1
#define VEC 8
#define KC 256
#define MC 128
#define NC 1024
#define PREFETCH 0

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

#if LOOP_ORDER == 4
#include <string.h>

#define NRW (NV * VEC) /* the tile's width in floats */
#define MC_PAD ((MC + MR - 1) / MR * MR)
#define NC_PAD ((NC + NRW - 1) / NRW * NRW)
typedef float vf __attribute__((vector_size(VEC * sizeof(float))));

static float packed_a[MC_PAD * KC] __attribute__((aligned(64)));
static float packed_b[KC * NC_PAD] __attribute__((aligned(64)));

/* A[ic.., pc..] (mc x kc) into MR-row panels, k-major inside a panel; rows past mc are zero. */
static void pack_a(int n, const float *RST A, int mc, int kc, float *RST out)
{
    for (int ir = 0; ir < mc; ir += MR)
        for (int k = 0; k < kc; k++)
            for (int i = 0; i < MR; i++)
                *out++ = ir + i < mc ? A[(ir + i) * n + k] : 0.0f;
}

/* B[pc.., jc..] (kc x nc) into NRW-column panels, k-major inside a panel; columns past nc are zero. */
static void pack_b(int n, const float *RST B, int kc, int nc, float *RST out)
{
    for (int jr = 0; jr < nc; jr += NRW)
        for (int k = 0; k < kc; k++) {
            const float *RST b = B + k * n + jr;
            if (jr + NRW <= nc) {
                memcpy(out, b, NRW * sizeof(float));
            } else {
                for (int j = 0; j < NRW; j++)
                    out[j] = jr + j < nc ? b[j] : 0.0f;
            }
            out += NRW;
        }
}

/* C[mr x nr] += a (MR x kc panel) * b (kc x NRW panel); the MR x NV accumulators stay in registers. */
static void micro_kernel(int kc, const float *RST a, const float *RST b, float *RST C, int n, int mr, int nr)
{
    vf acc[MR][NV];
    for (int i = 0; i < MR; i++)
        for (int v = 0; v < NV; v++)
            acc[i][v] = (vf){0};
    INNER
    for (int k = 0; k < kc; k++) {
#if PREFETCH > 0
        __builtin_prefetch(b + (k + PREFETCH) * NRW);
#endif
        vf bv[NV];
        for (int v = 0; v < NV; v++)
            bv[v] = *(const vf *)(b + k * NRW + v * VEC);
        for (int i = 0; i < MR; i++) {
            const float ai = a[k * MR + i];
            for (int v = 0; v < NV; v++)
                acc[i][v] += ai * bv[v];
        }
    }
    if (mr == MR && nr == NRW) {
        for (int i = 0; i < MR; i++)
            for (int v = 0; v < NV; v++) {
                vf c;
                memcpy(&c, C + i * n + v * VEC, sizeof c);
                c += acc[i][v];
                memcpy(C + i * n + v * VEC, &c, sizeof c);
            }
    } else {
        float tile[MR][NRW];
        memcpy(tile, acc, sizeof tile);
        for (int i = 0; i < mr; i++)
            for (int j = 0; j < nr; j++)
                C[i * n + j] += tile[i][j];
    }
}
#endif

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
#elif LOOP_ORDER == 4
    for (int i = 0; i < n * n; i++)
        C[i] = 0.0f;
    for (int jc = 0; jc < n; jc += NC) {
        const int nc = min_int(NC, n - jc);
        for (int pc = 0; pc < n; pc += KC) {
            const int kc = min_int(KC, n - pc);
            pack_b(n, B + pc * n + jc, kc, nc, packed_b);
            for (int ic = 0; ic < n; ic += MC) {
                const int mc = min_int(MC, n - ic);
                pack_a(n, A + ic * n + pc, mc, kc, packed_a);
                for (int jr = 0; jr < nc; jr += NRW)
                    for (int ir = 0; ir < mc; ir += MR)
                        micro_kernel(kc, packed_a + ir * kc, packed_b + jr * kc, C + (ic + ir) * n + jc + jr, n,
                                     min_int(MR, mc - ir), min_int(NRW, nc - jr));
            }
        }
    }
#else
#error "LOOP_ORDER must be 0, 1, 2, 3 or 4"
#endif
}
