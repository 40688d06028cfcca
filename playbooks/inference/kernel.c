/* The kernel under study: the output head of a transformer step, with int8 weights.
 * RMSNorm -> quantize the activations to int8 per group -> int8 matrix-vector -> softmax.
 *
 * Edit freely (this file and the Makefile); harness.c and kernel.h are read-only.
 * The knobs below are what the offline search changes; a model may rewrite anything.
 */
#include <math.h>

#include "kernel.h"

/* 0 = dequantize every product to float, 1 = integer dot product per group, scaled once,
 * 2 = like 1, four rows at a time (each activation load serves four rows),
 * 3 = like 2 with AVX-512 VNNI (vpdpbusd: 64 int8 products per instruction), sums kept in float
 *     vectors and reduced once per row; built without AVX-512 VNNI (-march=native here) it is 2 */
#define DOT 0
/* the type of the running float sums: double or float */
#define ACC double
/* softmax exponential: 0 = exp() in double, 1 = expf() */
#define EXP 0
/* how far the compiler unrolls the innermost loop (1 = leave it to the compiler) */
#define UNROLL 1

#if DOT == 3 && defined(__AVX512VNNI__) && defined(__AVX512BW__) && GS == 64
#include <immintrin.h>
#define VNNI 1
#else
#define VNNI 0
#endif

/* two steps, so that UNROLL is expanded before it is turned into the pragma's text */
#define PRAGMA(x) _Pragma(#x)
#define UNROLL_PRAGMA(n) PRAGMA(GCC unroll n)
#if UNROLL > 1
#define INNER UNROLL_PRAGMA(UNROLL)
#else
#define INNER
#endif

static int8_t xq[MAX_DIM];          /* quantized activations */
static float xs[MAX_DIM / GS];      /* their per-group scales */
static float xn[MAX_DIM];           /* normalised activations */

static void rmsnorm(const Head *h, const float *x)
{
    ACC ss = 0;
    for (int j = 0; j < h->dim; j++)
        ss += (ACC)x[j] * x[j];
    const float inv = 1.0f / sqrtf((float)(ss / h->dim) + 1e-5f);
    for (int j = 0; j < h->dim; j++)
        xn[j] = x[j] * inv * h->norm_weight[j];
}

static void quantize(int dim)
{
    for (int g = 0; g < dim / GS; g++) {
        float maxabs = 0.0f;
        for (int j = g * GS; j < (g + 1) * GS; j++)
            maxabs = fmaxf(maxabs, fabsf(xn[j]));
        const float scale = maxabs / 127.0f;
        xs[g] = scale;
        for (int j = g * GS; j < (g + 1) * GS; j++)
            xq[j] = scale > 0.0f ? (int8_t)roundf(xn[j] / scale) : 0;
    }
}

static void matvec(const Head *h, float *logits)
{
    const int dim = h->dim, groups = dim / GS;
#if DOT == 0
    for (int i = 0; i < h->rows; i++) {
        const int8_t *w = h->w + (long)i * dim;
        const float *ws = h->w_scale + (long)i * groups;
        ACC sum = 0;
        INNER
        for (int j = 0; j < dim; j++)
            sum += (ACC)w[j] * ws[j / GS] * (ACC)xq[j] * xs[j / GS];
        logits[i] = (float)sum;
    }
#elif DOT == 1
    for (int i = 0; i < h->rows; i++) {
        const int8_t *w = h->w + (long)i * dim;
        const float *ws = h->w_scale + (long)i * groups;
        ACC sum = 0;
        for (int g = 0; g < groups; g++) {
            int32_t isum = 0;
            INNER
            for (int j = g * GS; j < (g + 1) * GS; j++)
                isum += (int32_t)w[j] * (int32_t)xq[j];
            sum += (ACC)isum * ws[g] * xs[g];
        }
        logits[i] = (float)sum;
    }
#elif VNNI
    /* vpdpbusd multiplies unsigned by signed bytes: |q| times w with q's sign moved onto w. */
    static __m512i qa[MAX_DIM / GS];
    static __mmask64 neg[MAX_DIM / GS];
    for (int g = 0; g < groups; g++) {
        const __m512i q = _mm512_loadu_si512(xq + g * GS);
        neg[g] = _mm512_movepi8_mask(q);
        qa[g] = _mm512_abs_epi8(q);
    }
    const __m512i zero = _mm512_setzero_si512();
    int i = 0;
    for (; i + 4 <= h->rows; i += 4) {
        const int8_t *w0 = h->w + (long)i * dim;
        const float *ws0 = h->w_scale + (long)i * groups;
        __m512 f[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
        INNER
        for (int g = 0; g < groups; g++) {
            for (int r = 0; r < 4; r++) {
                __m512i w = _mm512_loadu_si512(w0 + (long)r * dim + g * GS);
                w = _mm512_mask_sub_epi8(w, neg[g], zero, w);
                const __m512i d = _mm512_dpbusd_epi32(zero, qa[g], w);
                f[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), _mm512_set1_ps(ws0[(long)r * groups + g] * xs[g]), f[r]);
            }
        }
        for (int r = 0; r < 4; r++)
            logits[i + r] = _mm512_reduce_add_ps(f[r]);
    }
    for (; i < h->rows; i++) {
        const int8_t *w = h->w + (long)i * dim;
        const float *ws = h->w_scale + (long)i * groups;
        ACC sum = 0;
        for (int g = 0; g < groups; g++) {
            int32_t isum = 0;
            for (int j = g * GS; j < (g + 1) * GS; j++)
                isum += (int32_t)w[j] * (int32_t)xq[j];
            sum += (ACC)isum * ws[g] * xs[g];
        }
        logits[i] = (float)sum;
    }
#elif DOT == 2 || DOT == 3
    int i = 0;
    for (; i + 4 <= h->rows; i += 4) {
        const int8_t *w0 = h->w + (long)i * dim, *w1 = w0 + dim, *w2 = w1 + dim, *w3 = w2 + dim;
        const float *ws0 = h->w_scale + (long)i * groups, *ws1 = ws0 + groups;
        const float *ws2 = ws1 + groups, *ws3 = ws2 + groups;
        ACC s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (int g = 0; g < groups; g++) {
            int32_t i0 = 0, i1 = 0, i2 = 0, i3 = 0;
            INNER
            for (int j = g * GS; j < (g + 1) * GS; j++) {
                const int32_t q = xq[j];
                i0 += (int32_t)w0[j] * q;
                i1 += (int32_t)w1[j] * q;
                i2 += (int32_t)w2[j] * q;
                i3 += (int32_t)w3[j] * q;
            }
            s0 += (ACC)i0 * ws0[g] * xs[g];
            s1 += (ACC)i1 * ws1[g] * xs[g];
            s2 += (ACC)i2 * ws2[g] * xs[g];
            s3 += (ACC)i3 * ws3[g] * xs[g];
        }
        logits[i] = (float)s0;
        logits[i + 1] = (float)s1;
        logits[i + 2] = (float)s2;
        logits[i + 3] = (float)s3;
    }
    for (; i < h->rows; i++) {
        const int8_t *w = h->w + (long)i * dim;
        const float *ws = h->w_scale + (long)i * groups;
        ACC sum = 0;
        for (int g = 0; g < groups; g++) {
            int32_t isum = 0;
            for (int j = g * GS; j < (g + 1) * GS; j++)
                isum += (int32_t)w[j] * (int32_t)xq[j];
            sum += (ACC)isum * ws[g] * xs[g];
        }
        logits[i] = (float)sum;
    }
#else
#error "DOT must be 0, 1, 2 or 3"
#endif
}

static void softmax(const float *logits, float *probs, int n)
{
    float max = logits[0];
    for (int i = 1; i < n; i++)
        max = logits[i] > max ? logits[i] : max;
    ACC total = 0;
    for (int i = 0; i < n; i++) {
#if EXP == 0
        probs[i] = (float)exp((double)logits[i] - max);
#else
        probs[i] = expf(logits[i] - max);
#endif
        total += probs[i];
    }
    const float inv = (float)(1.0 / total);
    for (int i = 0; i < n; i++)
        probs[i] *= inv;
}

void head_step(const Head *h, const float *x, float *logits, float *probs)
{
    rmsnorm(h, x);
    quantize(h->dim);
    matvec(h, logits);
    softmax(logits, probs, h->rows);
}
