// Read-only benchmark harness: checks matmul() against a CPU reference, then times it.
//
//   ./cuda-bench --check    verify on small and awkward sizes (exit 1 on a wrong answer)
//   ./cuda-bench [N]        time C = A * B for N x N (default 4096) with CUDA events: best of
//                           several runs, spot-check the result, print "GFLOP/s: X"
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "matmul.h"

#define MIN_SECONDS 0.5 // keep timing until this much GPU time is spent ...
#define MIN_RUNS 5      // ... and at least this many runs
#define MAX_RUNS 1000

#define CUDA_OK(call)                                                                          \
    do {                                                                                       \
        cudaError_t err_ = (call);                                                             \
        if (err_ != cudaSuccess) {                                                             \
            fprintf(stderr, "error: %s failed: %s\n", #call, cudaGetErrorString(err_));        \
            exit(2);                                                                           \
        }                                                                                      \
    } while (0)

static unsigned long long rng_state = 0x9E3779B97F4A7C15ull;

static float random_float() // uniform in [-1, 1)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) * (1.0 / (1ull << 24)) * 2.0 - 1.0);
}

struct Problem {
    int n;
    std::vector<float> A, B, C;
    float *dA = nullptr, *dB = nullptr, *dC = nullptr;

    explicit Problem(int n_) : n(n_), A((size_t)n_ * n_), B((size_t)n_ * n_), C((size_t)n_ * n_)
    {
        for (auto &a : A)
            a = random_float();
        for (auto &b : B)
            b = random_float();
        const size_t bytes = sizeof(float) * (size_t)n * n;
        CUDA_OK(cudaMalloc(&dA, bytes));
        CUDA_OK(cudaMalloc(&dB, bytes));
        CUDA_OK(cudaMalloc(&dC, bytes));
        CUDA_OK(cudaMemcpy(dA, A.data(), bytes, cudaMemcpyHostToDevice));
        CUDA_OK(cudaMemcpy(dB, B.data(), bytes, cudaMemcpyHostToDevice));
    }
    ~Problem()
    {
        cudaFree(dA);
        cudaFree(dB);
        cudaFree(dC);
    }
    void poison() { CUDA_OK(cudaMemset(dC, 0xFF, sizeof(float) * (size_t)n * n)); } // NaN
    void run()
    {
        matmul(n, dA, dB, dC);
        CUDA_OK(cudaGetLastError());
    }
    void fetch()
    {
        CUDA_OK(cudaDeviceSynchronize());
        CUDA_OK(cudaMemcpy(C.data(), dC, sizeof(float) * C.size(), cudaMemcpyDeviceToHost));
    }
    // Compare C[i][j] with a double-precision dot product; the tolerance scales with
    // sum |a||b|, so any summation order passes and wrong answers do not.
    bool check_entry(int i, int j) const
    {
        double exact = 0.0, scale = 0.0;
        for (int k = 0; k < n; k++) {
            const double p = (double)A[(size_t)i * n + k] * B[(size_t)k * n + j];
            exact += p;
            scale += fabs(p);
        }
        const double got = C[(size_t)i * n + j];
        if (!(fabs(got - exact) <= 1e-5 * scale + 1e-6)) {
            fprintf(stderr, "error: wrong result for n=%d at C[%d][%d]: got %.7g, expected %.7g\n",
                    n, i, j, got, exact);
            return false;
        }
        return true;
    }
};

static int run_check()
{
    static const int sizes[] = {1, 2, 7, 16, 31, 33, 64, 100, 129, 255, 300};
    for (int n : sizes) {
        Problem p(n);
        p.poison();
        p.run();
        p.fetch();
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
                if (!p.check_entry(i, j))
                    return 1;
    }
    printf("check: ok (%zu sizes)\n", sizeof sizes / sizeof sizes[0]);
    return 0;
}

static int run_bench(int n)
{
    Problem p(n);
    cudaEvent_t start, stop;
    CUDA_OK(cudaEventCreate(&start));
    CUDA_OK(cudaEventCreate(&stop));
    p.run(); // warm-up: module load, clocks
    CUDA_OK(cudaDeviceSynchronize());
    double best = INFINITY, spent = 0.0;
    int runs = 0;
    while (runs < MAX_RUNS && (runs < MIN_RUNS || spent < MIN_SECONDS)) {
        p.poison(); // the kernel must write every entry, every time
        CUDA_OK(cudaEventRecord(start));
        p.run();
        CUDA_OK(cudaEventRecord(stop));
        CUDA_OK(cudaEventSynchronize(stop));
        float ms = 0.0f;
        CUDA_OK(cudaEventElapsedTime(&ms, start, stop));
        spent += ms * 1e-3;
        runs++;
        if (ms * 1e-3 < best)
            best = ms * 1e-3;
    }
    p.fetch();
    for (int s = 0; s < 64; s++) { // spot-check: the corners, then random entries
        random_float();
        int i = (int)((rng_state >> 20) % (unsigned)n), j = (int)((rng_state >> 40) % (unsigned)n);
        if (s < 4) {
            i = (s & 1) ? n - 1 : 0;
            j = (s & 2) ? n - 1 : 0;
        }
        if (!p.check_entry(i, j))
            return 1;
    }
    cudaDeviceProp prop;
    CUDA_OK(cudaGetDeviceProperties(&prop, 0));
    printf("device=%s n=%d runs=%d best=%.3f ms\n", prop.name, n, runs, best * 1e3);
    const double gflops = 2.0 * n * (double)n * n / best * 1e-9;
    printf("GFLOP/s: %.1f\n", gflops);
    // The bar: cuBLAS SGEMM on the same matrices, FP32 on the CUDA cores (pedantic math: no TF32).
    cublasHandle_t handle;
    if (cublasCreate(&handle) != CUBLAS_STATUS_SUCCESS || cublasSetMathMode(handle, CUBLAS_PEDANTIC_MATH) != CUBLAS_STATUS_SUCCESS) {
        printf("cuBLAS: not measured (no handle)\n");
        return 0;
    }
    const float one = 1.0f, zero = 0.0f;
    double blas = INFINITY;
    spent = 0.0;
    for (int r = 0; r < MAX_RUNS && (r < MIN_RUNS + 1 || spent < MIN_SECONDS); r++) {
        // Row-major C = A B is column-major C^T = B^T A^T: the operands swap.
        CUDA_OK(cudaEventRecord(start));
        cublasSgemm(handle, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, p.dB, n, p.dA, n, &zero, p.dC, n);
        CUDA_OK(cudaEventRecord(stop));
        CUDA_OK(cudaEventSynchronize(stop));
        float ms = 0.0f;
        CUDA_OK(cudaEventElapsedTime(&ms, start, stop));
        if (r > 0) { // the first call picks its algorithm
            spent += ms * 1e-3;
            blas = ms * 1e-3 < blas ? ms * 1e-3 : blas;
        }
    }
    cublasDestroy(handle);
    const double blas_gflops = 2.0 * n * (double)n * n / blas * 1e-9;
    printf("cuBLAS SGEMM (FP32, pedantic, no TF32), n=%d: %.1f GFLOP/s; the kernel reached %.1f%% of it\n", n,
           blas_gflops, 100.0 * gflops / blas_gflops);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--check") == 0)
        return run_check();
    const int n = argc > 1 ? atoi(argv[1]) : 4096;
    if (n < 1 || n > 16384) {
        fprintf(stderr, "usage: %s [--check | N]  (1 <= N <= 16384)\n", argv[0]);
        return 2;
    }
    return run_bench(n);
}
