"""Diagnose event timing: one small cuBLAS FP8 GEMM timed several ways."""
import statistics, torch
from cute_gemm import peers
from cute_gemm.testing import make_fp8_gemm_problem
import cute_gemm

p = make_fp8_gemm_problem(64, 2112, 7168)
a, sa = peers.per_tensor_cast(p.x); b, sb = peers.per_tensor_cast(p.y)
fns = {"pt": peers.cublas_per_tensor(a, sa, b, sb),
       "ours": lambda: cute_gemm.fp8_gemm_nt((p.a, p.sfa), (p.b, p.sfb), p.d)}
buf = torch.empty(256 << 18, dtype=torch.int32, device="cuda")
for name, fn in fns.items():
    for _ in range(3): fn()
    torch.cuda.synchronize()
    for mode in ("none", "flush", "flush+sleep", "sleep", "flush+sync"):
        ts = []
        for _ in range(20):
            if "flush" in mode: buf.zero_()
            if mode == "flush+sync": torch.cuda.synchronize()
            if "sleep" in mode: torch.cuda._sleep(20000)
            s = torch.cuda.Event(enable_timing=True); e = torch.cuda.Event(enable_timing=True)
            s.record(); fn(); e.record()
            ts.append((s, e))
        torch.cuda.synchronize()
        print(name, mode, round(statistics.median(s.elapsed_time(e) * 1e3 for s, e in ts), 1))
    from torch.profiler import profile, ProfilerActivity
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(10):
            buf.zero_(); fn()
        torch.cuda.synchronize()
    for ev in prof.key_averages():
        print("  prof", ev.key[:60], round(ev.device_time_total / ev.count, 1) if ev.count else 0)
