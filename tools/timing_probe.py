"""Host cost of one warm eager call of fp8_gemm_nt next to a trivial torch op (GPU)."""
import time

import torch

import cute_gemm
from cute_gemm.testing import make_fp8_gemm_problem

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
