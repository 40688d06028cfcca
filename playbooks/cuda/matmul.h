/* Read-only: the kernel's contract with the harness. */
#ifndef MATMUL_H
#define MATMUL_H

/* C = A * B on the GPU: device pointers to n x n row-major single-precision matrices.
 * Launches whatever kernels it likes on the default stream; C's old contents are garbage. */
void matmul(int n, const float *A, const float *B, float *C);

#endif
