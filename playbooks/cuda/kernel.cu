// The kernel under study: C = A * B on the GPU, n x n single precision, row-major.
//
// Edit freely (this file and the Makefile); harness.cu and matmul.h are read-only.
// The knobs below are what the offline search changes; a model may rewrite anything.
#include "matmul.h"

// 0 = naive (one thread per element, operands straight from global memory),
// 1 = shared-memory tiles, 2 = shared-memory tiles, each thread computes WORK rows of C,
// 3 = block tiles BM x BN (over BK at a time) in shared memory, each thread a TM x TN tile of C in
//     registers; float4 global loads (VEC4) and double-buffered shared memory (DBUF) are knobs
#define KERNEL 0
// tile width in elements (8, 16 or 32): blocks are TILE x TILE threads (x TILE / WORK for 2)
#define TILE 16
// rows of C per thread in kernel 2 (1, 2, 4 or 8; must divide TILE)
#define WORK 4
// unroll factor of the inner product loop (1 = not unrolled at all)
#define UNROLL 1

// kernel 3: the block tile, its depth, the thread tile, float4 loads (1) and double buffering (1)
#define BM 64
#define BN 64
#define BK 8
#define TM 4
#define TN 4
#define VEC4 0
#define DBUF 0
// kernel 3: the warp tile's width in columns of C (0: threads laid out row by row across the block).
// A warp's 32 threads then cover a (32 * TM * TN / WARP_N) x WARP_N tile of C together, so the
// shared-memory reads of one warp fall on fewer, nearby addresses.
#define WARP_N 0

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

#if KERNEL == 3
static_assert(BM % TM == 0 && BN % TN == 0 && BK % 4 == 0 && BN % 4 == 0, "tiles must divide");
constexpr int THREADS = (BM / TM) * (BN / TN);
constexpr int A_LOADS = (BM * BK / 4 + THREADS - 1) / THREADS; // float4s of A each thread stages
constexpr int B_LOADS = (BK * BN / 4 + THREADS - 1) / THREADS;

// Four consecutive floats of a row starting at (r, c): one float4 load where the row has them all
// and is aligned (vec), else one by one; zeros outside the matrix.
__device__ __forceinline__ float4 load4(const float *__restrict__ M, int n, int r, int c, bool vec)
{
    if (r >= n)
        return make_float4(0.f, 0.f, 0.f, 0.f);
    const float *p = M + (size_t)r * n + c;
    if (vec && c + 3 < n)
        return *reinterpret_cast<const float4 *>(p);
    return make_float4(c < n ? p[0] : 0.f, c + 1 < n ? p[1] : 0.f, c + 2 < n ? p[2] : 0.f, c + 3 < n ? p[3] : 0.f);
}

struct Stage {
    float4 a[A_LOADS], b[B_LOADS];
};

__device__ __forceinline__ void fetch(Stage &s, const float *__restrict__ A, const float *__restrict__ B, int n,
                                      int row0, int col0, int k0, bool vec)
{
#pragma unroll
    for (int l = 0; l < A_LOADS; l++) {
        const int i = threadIdx.x + l * THREADS; // float4 i of the BM x BK tile of A
        s.a[l] = i < BM * BK / 4 ? load4(A, n, row0 + i / (BK / 4), k0 + i % (BK / 4) * 4, vec)
                                 : make_float4(0.f, 0.f, 0.f, 0.f);
    }
#pragma unroll
    for (int l = 0; l < B_LOADS; l++) {
        const int i = threadIdx.x + l * THREADS; // float4 i of the BK x BN tile of B
        s.b[l] = i < BK * BN / 4 ? load4(B, n, k0 + i / (BN / 4), col0 + i % (BN / 4) * 4, vec)
                                 : make_float4(0.f, 0.f, 0.f, 0.f);
    }
}

// A's tile is stored transposed (k-major), so a thread reads its TM rows of A at one k together.
__device__ __forceinline__ void store(const Stage &s, float (*As)[BM], float (*Bs)[BN])
{
#pragma unroll
    for (int l = 0; l < A_LOADS; l++) {
        const int i = threadIdx.x + l * THREADS;
        if (i < BM * BK / 4) {
            const int r = i / (BK / 4), c = i % (BK / 4) * 4;
            As[c][r] = s.a[l].x;
            As[c + 1][r] = s.a[l].y;
            As[c + 2][r] = s.a[l].z;
            As[c + 3][r] = s.a[l].w;
        }
    }
#pragma unroll
    for (int l = 0; l < B_LOADS; l++) {
        const int i = threadIdx.x + l * THREADS;
        if (i < BK * BN / 4)
            *reinterpret_cast<float4 *>(&Bs[i / (BN / 4)][i % (BN / 4) * 4]) = s.b[l];
    }
}

__global__ void __launch_bounds__(THREADS) matmul_blocktiled(int n, const float *__restrict__ A,
                                                             const float *__restrict__ B, float *__restrict__ C)
{
    __shared__ __align__(16) float As[1 + DBUF][BK][BM];
    __shared__ __align__(16) float Bs[1 + DBUF][BK][BN];
#if WARP_N > 0
    constexpr int WARP_M = 32 * TM * TN / WARP_N; // the warp tile's height
    static_assert(WARP_N % TN == 0 && WARP_M % TM == 0 && BN % WARP_N == 0 && BM % WARP_M == 0 &&
                      (WARP_M / TM) * (WARP_N / TN) == 32,
                  "the warp tile must hold 32 thread tiles and divide the block tile");
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int tx = warp % (BN / WARP_N) * (WARP_N / TN) + lane % (WARP_N / TN);
    const int ty = warp / (BN / WARP_N) * (WARP_M / TM) + lane / (WARP_N / TN);
#else
    const int tx = threadIdx.x % (BN / TN), ty = threadIdx.x / (BN / TN);
#endif
    const int row0 = blockIdx.y * BM, col0 = blockIdx.x * BN;
    const bool vec = VEC4 && n % 4 == 0; // float4 loads need 16-byte aligned rows
    float acc[TM][TN] = {};
    float ra[TM], rb[TN];
    Stage s;
    fetch(s, A, B, n, row0, col0, 0, vec);
    store(s, As[0], Bs[0]);
    __syncthreads();
    const int tiles = (n + BK - 1) / BK;
    for (int t = 0; t < tiles; t++) {
        const int cur = DBUF ? t & 1 : 0;
        const bool next = t + 1 < tiles;
        if (DBUF && next)
            fetch(s, A, B, n, row0, col0, (t + 1) * BK, vec); // in flight while this tile is used
        UNROLL_PRAGMA(BK)
        for (int k = 0; k < BK; k++) {
#pragma unroll
            for (int m = 0; m < TM; m++)
                ra[m] = As[cur][k][ty * TM + m];
#pragma unroll
            for (int j = 0; j < TN; j++)
                rb[j] = Bs[cur][k][tx * TN + j];
#pragma unroll
            for (int m = 0; m < TM; m++)
#pragma unroll
                for (int j = 0; j < TN; j++)
                    acc[m][j] += ra[m] * rb[j];
        }
        if (DBUF) {
            if (next)
                store(s, As[cur ^ 1], Bs[cur ^ 1]); // its buffer was last read before the last barrier
            __syncthreads();
        } else if (next) {
            __syncthreads();
            fetch(s, A, B, n, row0, col0, (t + 1) * BK, vec);
            store(s, As[0], Bs[0]);
            __syncthreads();
        }
    }
#pragma unroll
    for (int m = 0; m < TM; m++) {
        const int r = row0 + ty * TM + m;
#pragma unroll
        for (int j = 0; j < TN; j++) {
            const int c = col0 + tx * TN + j;
            if (r < n && c < n)
                C[(size_t)r * n + c] = acc[m][j];
        }
    }
}
#endif

void matmul(int n, const float *A, const float *B, float *C)
{
    const dim3 grid((n + TILE - 1) / TILE, (n + TILE - 1) / TILE);
#if KERNEL == 0
    matmul_naive<<<grid, dim3(TILE, TILE)>>>(n, A, B, C);
#elif KERNEL == 1
    matmul_tiled<<<grid, dim3(TILE, TILE)>>>(n, A, B, C);
#elif KERNEL == 2
    matmul_tiled_rows<<<grid, dim3(TILE, TILE / WORK)>>>(n, A, B, C);
#elif KERNEL == 3
    (void)grid;
    matmul_blocktiled<<<dim3((n + BN - 1) / BN, (n + BM - 1) / BM), THREADS>>>(n, A, B, C);
#else
#error "KERNEL must be 0, 1, 2 or 3"
#endif
}
