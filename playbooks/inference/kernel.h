/* Read-only: the kernel's contract with the harness. */
#ifndef KERNEL_H
#define KERNEL_H

#include <stdint.h>

#define GS 64         /* quantization group size: dim is always a multiple of it */
#define MAX_DIM 8192  /* the largest dim the harness uses */

/* The output head of a tiny transformer: final RMSNorm, int8 classifier, softmax. */
typedef struct {
    int dim;                  /* model width, a multiple of GS */
    int rows;                 /* number of logits (vocabulary size) */
    const float *norm_weight; /* [dim] RMSNorm gain */
    const int8_t *w;          /* [rows][dim] quantized weights, row-major */
    const float *w_scale;     /* [rows][dim / GS] one scale per group of GS weights */
} Head;

/* One step for one token:
 *   xn      = x / sqrt(mean(x^2) + 1e-5) * norm_weight
 *   s[g]    = max |xn| over group g / 127;  q[j] = round(xn[j] / s[j / GS])  (q = 0 where s = 0)
 *   logits  = sum over groups g of w_scale[i][g] * s[g] * sum_{j in g} w[i][j] * q[j]
 *   probs   = softmax(logits)
 * The harness checks logits and probs against a double-precision reference. */
void head_step(const Head *h, const float *x, float *logits, float *probs);

#endif
