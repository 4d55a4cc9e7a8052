"""Compare the two clocks on small shapes, and the host cost of one warm eager call (GPU)."""
import time

import torch

import cute_gemm
from cute_gemm import peers
from cute_gemm.testing import make_fp8_gemm_problem
from cute_gemm.timing import time_cuda, time_kernels

for m, n, k in ((64, 2112, 7168), (64, 4096, 7168), (128, 7168, 16384)):
    p = make_fp8_gemm_problem(m, n, k)
    a, sa = peers.per_tensor_cast(p.x)
    b, sb = peers.per_tensor_cast(p.y)
    for name, fn in (("ours", lambda: cute_gemm.fp8_gemm_nt((p.a, p.sfa), (p.b, p.sfb), p.d)),
                     ("cublas_pt", peers.cublas_per_tensor(a, sa, b, sb))):
        ev = [round(time_cuda(fn, iters=20), 1) for _ in range(2)]
        kn = [round(time_kernels(fn, iters=20), 1) for _ in range(2)]
        print(f"{m}x{n}x{k} {name}: events {ev} us, kernels {kn} us", flush=True)

p = make_fp8_gemm_problem(64, 2112, 7168)
x = torch.zeros(64, 2112, device="cuda")
for name, fn in (("fp8_gemm_nt", lambda: cute_gemm.fp8_gemm_nt((p.a, p.sfa), (p.b, p.sfb), p.d)),
                 ("x.add_(1)", lambda: x.add_(1))):
    for _ in range(100):
        fn()
    torch.cuda.synchronize()
    torch.cuda._sleep(100_000_000)  # ~50 ms of GPU work queued first: the host never waits on the GPU
    t = time.perf_counter()
    for _ in range(1000):
        fn()
    host = (time.perf_counter() - t) / 1000 * 1e6
    torch.cuda.synchronize()
    print(f"host time per warm eager call, {name}: {host:.1f} us", flush=True)
