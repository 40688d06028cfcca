/* Read-only: the kernel's contract with the harness. */
#ifndef MATMUL_H
#define MATMUL_H

/* C = A * B; A, B and C are n x n, row-major, single precision. C's old contents are garbage. */
void matmul(int n, const float *A, const float *B, float *C);

#endif
