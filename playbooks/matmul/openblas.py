"""Read-only: OpenBLAS's single-threaded SGEMM on the same size, measured in the same run as the kernel.

`make bench` pipes the kernel's output through this script: it passes the output on unchanged (the
metric is read from it), then times NumPy's float32 matmul (OpenBLAS, one thread) at n = N and says
what fraction of it the kernel reached. It exits 1 when the kernel printed no result.
"""

import os
import re
import sys
import time

kernel_output = sys.stdin.read()
sys.stdout.write(kernel_output)
found = re.findall(r"GFLOP/s: ([0-9.]+)", kernel_output)
if not found:
    sys.exit(1)
n = int(sys.argv[1]) if len(sys.argv) > 1 else 512
try:
    import numpy as np
except ImportError:
    print("OpenBLAS: not measured (numpy is not installed for this python3)")
    sys.exit(0)
if os.environ.get("OPENBLAS_NUM_THREADS") != "1":
    print("OpenBLAS: not measured (run with OPENBLAS_NUM_THREADS=1, as `make bench` does)")
    sys.exit(0)
rng = np.random.default_rng(0)
a = rng.standard_normal((n, n), dtype=np.float32)
b = rng.standard_normal((n, n), dtype=np.float32)
a @ b  # warm up: load the library, fault in the pages
best, spent = float("inf"), 0.0
while spent < 0.5:
    start = time.perf_counter()
    a @ b
    took = time.perf_counter() - start
    best, spent = min(best, took), spent + took
blas = 2.0 * n**3 / best / 1e9
ours = float(found[-1])
print(f"OpenBLAS sgemm, 1 thread, n={n}: {blas:.2f} GFLOP/s; the kernel reached {ours / blas:.1%} of it")
