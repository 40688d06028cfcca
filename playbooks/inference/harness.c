/* Read-only benchmark harness: checks head_step() against a double-precision reference,
 * then times it.
 *
 *   ./head-bench --check    verify on small and awkward shapes (exit 1 on a wrong answer)
 *   ./head-bench            time one step of a dim=2048, rows=4096 head: best of many
 *                           steps, verify the result, print "tokens/s: X"
 */
#define _POSIX_C_SOURCE 200112L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernel.h"

#define BENCH_DIM 2048
#define BENCH_ROWS 4096
#define MIN_SECONDS 0.5 /* keep timing until this much time is spent ... */
#define MIN_RUNS 5      /* ... and at least this many steps */
#define MAX_RUNS 5000

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static unsigned long long rng_state = 0x2545F4914F6CDD1Dull;

static double random_unit(void) /* uniform in [0, 1) */
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) * (1.0 / 9007199254740992.0);
}

static void *xalloc(size_t bytes)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0) {
        fprintf(stderr, "error: out of memory (%zu bytes)\n", bytes);
        exit(2);
    }
    return p;
}

typedef struct {
    Head head;
    float *x;
} Problem;

/* Weights are random int8 with per-group scales chosen so logits spread over a few units:
 * softmax then has a real shape (neither uniform nor one-hot). */
static Problem make_problem(int dim, int rows, double x_scale)
{
    Problem p;
    float *norm_weight = xalloc(sizeof(float) * dim);
    int8_t *w = xalloc((size_t)rows * dim);
    float *w_scale = xalloc(sizeof(float) * (size_t)rows * (dim / GS));
    p.x = xalloc(sizeof(float) * dim);
    for (int j = 0; j < dim; j++) {
        norm_weight[j] = (float)(0.5 + random_unit());
        p.x[j] = (float)((random_unit() * 2.0 - 1.0) * x_scale);
    }
    for (long k = 0; k < (long)rows * dim; k++)
        w[k] = (int8_t)(int)floor(random_unit() * 255.0 - 127.0);
    const double base = 3.0 / (127.0 * sqrt((double)dim) * 0.6);
    for (long k = 0; k < (long)rows * (dim / GS); k++)
        w_scale[k] = (float)(base * (0.5 + random_unit()));
    if (dim >= 2 * GS) /* one all-zero group of activations: its scale must come out 0 */
        memset(p.x + GS, 0, sizeof(float) * GS);
    p.head = (Head){dim, rows, norm_weight, w, w_scale};
    return p;
}

static void free_problem(Problem *p)
{
    free((void *)p->head.norm_weight);
    free((void *)p->head.w);
    free((void *)p->head.w_scale);
    free(p->x);
}

static void reference(const Head *h, const float *x, double *logits, double *probs)
{
    const int dim = h->dim, groups = dim / GS;
    double ss = 0.0;
    for (int j = 0; j < dim; j++)
        ss += (double)x[j] * x[j];
    const double inv = 1.0 / sqrt(ss / dim + 1e-5);
    double *xn = xalloc(sizeof(double) * dim), *xs = xalloc(sizeof(double) * groups);
    int *q = xalloc(sizeof(int) * dim);
    for (int j = 0; j < dim; j++)
        xn[j] = x[j] * inv * h->norm_weight[j];
    for (int g = 0; g < groups; g++) {
        double maxabs = 0.0;
        for (int j = g * GS; j < (g + 1) * GS; j++)
            maxabs = fmax(maxabs, fabs(xn[j]));
        xs[g] = maxabs / 127.0;
        for (int j = g * GS; j < (g + 1) * GS; j++)
            q[j] = xs[g] > 0.0 ? (int)lround(xn[j] / xs[g]) : 0;
    }
    double max = -INFINITY;
    for (int i = 0; i < h->rows; i++) {
        double sum = 0.0;
        for (int g = 0; g < groups; g++) {
            long isum = 0;
            for (int j = g * GS; j < (g + 1) * GS; j++)
                isum += (long)h->w[(long)i * dim + j] * q[j];
            sum += (double)isum * h->w_scale[(long)i * groups + g] * xs[g];
        }
        logits[i] = sum;
        max = fmax(max, sum);
    }
    double total = 0.0;
    for (int i = 0; i < h->rows; i++)
        total += probs[i] = exp(logits[i] - max);
    for (int i = 0; i < h->rows; i++)
        probs[i] /= total;
    free(xn);
    free(xs);
    free(q);
}

/* A rounding tie may quantize one activation differently (off by one step): that moves a
 * logit by far less than 0.02, while any real mistake moves it by much more. */
static int verify(const Head *h, const float *x, const float *logits, const float *probs)
{
    double *ref_logits = xalloc(sizeof(double) * h->rows), *ref_probs = xalloc(sizeof(double) * h->rows);
    reference(h, x, ref_logits, ref_probs);
    int ok = 1;
    double total = 0.0;
    for (int i = 0; i < h->rows && ok; i++) {
        total += probs[i];
        if (!(fabs(logits[i] - ref_logits[i]) <= 0.02 + 1e-3 * fabs(ref_logits[i]))) {
            fprintf(stderr, "error: wrong logit for dim=%d rows=%d at %d: got %.6g, expected %.6g\n",
                    h->dim, h->rows, i, logits[i], ref_logits[i]);
            ok = 0;
        } else if (!(fabs(probs[i] - ref_probs[i]) <= 0.05 * ref_probs[i] + 1e-7)) {
            fprintf(stderr, "error: wrong probability for dim=%d rows=%d at %d: got %.6g, expected %.6g\n",
                    h->dim, h->rows, i, probs[i], ref_probs[i]);
            ok = 0;
        }
    }
    if (ok && !(fabs(total - 1.0) <= 1e-3)) {
        fprintf(stderr, "error: probabilities for dim=%d rows=%d sum to %.6g, not 1\n", h->dim, h->rows, total);
        ok = 0;
    }
    free(ref_logits);
    free(ref_probs);
    return ok;
}

static int check_shape(int dim, int rows, double x_scale)
{
    Problem p = make_problem(dim, rows, x_scale);
    float *logits = xalloc(sizeof(float) * rows), *probs = xalloc(sizeof(float) * rows);
    for (int i = 0; i < rows; i++)
        logits[i] = probs[i] = NAN;
    head_step(&p.head, p.x, logits, probs);
    int ok = verify(&p.head, p.x, logits, probs);
    free(logits);
    free(probs);
    free_problem(&p);
    return ok;
}

static int run_check(void)
{
    static const struct { int dim, rows; double x_scale; } shapes[] = {
        {64, 1, 1.0}, {64, 3, 0.01}, {128, 5, 100.0}, {192, 7, 1.0}, {256, 33, 3.0},
        {512, 130, 1.0}, {1024, 257, 0.1}, {GS * 3, 1001, 10.0},
    };
    const int count = (int)(sizeof shapes / sizeof shapes[0]);
    for (int s = 0; s < count; s++) {
        if (!check_shape(shapes[s].dim, shapes[s].rows, shapes[s].x_scale))
            return 1;
    }
    printf("check: ok (%d shapes)\n", count);
    return 0;
}

/* The bound a memory-bound step cannot beat: how fast this machine reads a buffer the size of what
 * one step must read (the weights, their scales, x), timed with glibc's memchr (vectorised, reads
 * only) on a buffer holding no match: best of several passes, in bytes per second. */
static double read_bandwidth(size_t bytes)
{
    unsigned char *buf = xalloc(bytes);
    memset(buf, 0, bytes);
    double best = INFINITY;
    for (int pass = 0; pass < 40; pass++) {
        const double start = now();
        const void *found = memchr(buf, 1, bytes);
        const double elapsed = now() - start;
        if (found != NULL)
            abort();
        if (elapsed < best)
            best = elapsed;
    }
    free(buf);
    return (double)bytes / best;
}

static int run_bench(void)
{
    Problem p = make_problem(BENCH_DIM, BENCH_ROWS, 1.0);
    float *logits = xalloc(sizeof(float) * BENCH_ROWS), *probs = xalloc(sizeof(float) * BENCH_ROWS);
    double best = INFINITY, spent = 0.0;
    int runs = 0;
    while (runs < MAX_RUNS && (runs < MIN_RUNS || spent < MIN_SECONDS)) {
        for (int i = 0; i < BENCH_ROWS; i++) /* the kernel must write every entry, every time */
            logits[i] = probs[i] = NAN;
        const double start = now();
        head_step(&p.head, p.x, logits, probs);
        const double elapsed = now() - start;
        spent += elapsed;
        runs++;
        if (elapsed < best)
            best = elapsed;
    }
    if (!verify(&p.head, p.x, logits, probs))
        return 1;
    const double gops = 2.0 * BENCH_ROWS * (double)BENCH_DIM / best * 1e-9;
    printf("dim=%d rows=%d steps=%d best=%.3f ms (%.2f GOP/s int8)\n", BENCH_DIM, BENCH_ROWS, runs,
           best * 1e3, gops);
    printf("tokens/s: %.1f\n", 1.0 / best);
    /* What one step must read, and how close it came to reading it at the machine's rate. */
    const size_t step_bytes = (size_t)BENCH_ROWS * BENCH_DIM + sizeof(float) * ((size_t)BENCH_ROWS * (BENCH_DIM / GS)
                              + 2 * (size_t)BENCH_DIM);
    const double bandwidth = read_bandwidth(step_bytes);
    printf("memory: a step reads %.1f MB; this machine reads that much at %.1f GB/s; the kernel reached %.1f GB/s,"
           " %.0f%% of it\n", step_bytes / 1e6, bandwidth / 1e9, step_bytes / best / 1e9, 100.0 * step_bytes / best / bandwidth);
    free(logits);
    free(probs);
    free_problem(&p);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--check") == 0)
        return run_check();
    if (argc > 1) {
        fprintf(stderr, "usage: %s [--check]\n", argv[0]);
        return 2;
    }
    return run_bench();
}
