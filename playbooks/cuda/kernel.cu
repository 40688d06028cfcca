// The kernel under study: C = A * B on the GPU, n x n single precision, row-major.
//
// Edit freely (this file and the Makefile); harness.cu and matmul.h are read-only.
// The knobs below are what the offline search changes; a model may rewrite anything.
#include "matmul.h"

// 0 = naive (one thread per element, operands straight from global memory),
// 1 = shared-memory tiles, 2 = shared-memory tiles, each thread computes WORK rows of C
#define KERNEL 0
// tile width in elements (8, 16 or 32): blocks are TILE x TILE threads (x TILE / WORK for 2)
#define TILE 16
// rows of C per thread in kernel 2 (1, 2, 4 or 8; must divide TILE)
#define WORK 4
// unroll factor of the inner product loop (1 = not unrolled at all)
#define UNROLL 1

#define PRAGMA(x) _Pragma(#x)
#define UNROLL_PRAGMA(n) PRAGMA(unroll n)

static_assert(TILE == 8 || TILE == 16 || TILE == 32, "TILE must be 8, 16 or 32");
static_assert(TILE % WORK == 0, "WORK must divide TILE");

__global__ void matmul_naive(int n, const float *__restrict__ A, const float *__restrict__ B,
                             float *__restrict__ C)
{
    const int row = blockIdx.y * blockDim.y + threadIdx.y;
    const int col = blockIdx.x * blockDim.x + threadIdx.x;
    if (row >= n || col >= n)
        return;
    float sum = 0.0f;
    UNROLL_PRAGMA(UNROLL)
    for (int k = 0; k < n; k++)
        sum += A[row * n + k] * B[k * n + col];
    C[row * n + col] = sum;
}

__global__ void matmul_tiled(int n, const float *__restrict__ A, const float *__restrict__ B,
                             float *__restrict__ C)
{
    __shared__ float As[TILE][TILE];
    __shared__ float Bs[TILE][TILE];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int row = blockIdx.y * TILE + ty, col = blockIdx.x * TILE + tx;
    float sum = 0.0f;
    for (int k0 = 0; k0 < n; k0 += TILE) {
        As[ty][tx] = (row < n && k0 + tx < n) ? A[row * n + k0 + tx] : 0.0f;
        Bs[ty][tx] = (k0 + ty < n && col < n) ? B[(k0 + ty) * n + col] : 0.0f;
        __syncthreads();
        UNROLL_PRAGMA(UNROLL)
        for (int k = 0; k < TILE; k++)
            sum += As[ty][k] * Bs[k][tx];
        __syncthreads();
    }
    if (row < n && col < n)
        C[row * n + col] = sum;
}

// Each thread owns WORK rows of one column of the tile: a value of Bs loaded into a register
// serves WORK multiply-adds.
__global__ void matmul_tiled_rows(int n, const float *__restrict__ A,
                                  const float *__restrict__ B, float *__restrict__ C)
{
    __shared__ float As[TILE][TILE];
    __shared__ float Bs[TILE][TILE];
    const int tx = threadIdx.x, ty = threadIdx.y;  // ty in [0, TILE / WORK)
    const int row0 = blockIdx.y * TILE + ty * WORK, col = blockIdx.x * TILE + tx;
    float sum[WORK];
    for (int w = 0; w < WORK; w++)
        sum[w] = 0.0f;
    for (int k0 = 0; k0 < n; k0 += TILE) {
        for (int w = 0; w < WORK; w++) {
            const int r = ty * WORK + w, grow = row0 + w;
            As[r][tx] = (grow < n && k0 + tx < n) ? A[grow * n + k0 + tx] : 0.0f;
            Bs[r][tx] = (k0 + r < n && col < n) ? B[(k0 + r) * n + col] : 0.0f;
        }
        __syncthreads();
        UNROLL_PRAGMA(UNROLL)
        for (int k = 0; k < TILE; k++) {
            const float b = Bs[k][tx];
            for (int w = 0; w < WORK; w++)
                sum[w] += As[ty * WORK + w][k] * b;
        }
        __syncthreads();
    }
    for (int w = 0; w < WORK; w++)
        if (row0 + w < n && col < n)
            C[(row0 + w) * n + col] = sum[w];
}

void matmul(int n, const float *A, const float *B, float *C)
{
    const dim3 grid((n + TILE - 1) / TILE, (n + TILE - 1) / TILE);
#if KERNEL == 0
    matmul_naive<<<grid, dim3(TILE, TILE)>>>(n, A, B, C);
#elif KERNEL == 1
    matmul_tiled<<<grid, dim3(TILE, TILE)>>>(n, A, B, C);
#elif KERNEL == 2
    matmul_tiled_rows<<<grid, dim3(TILE, TILE / WORK)>>>(n, A, B, C);
#else
#error "KERNEL must be 0, 1 or 2"
#endif
}
