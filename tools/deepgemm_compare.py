"""DeepGEMM next to cute-gemm on the same inputs, timed the same way (GPU host; from the project root).

Needs DeepGEMM built from source (``tools/build_deepgemm.sh``) and its build directory in ``DG_LIB``.
Both libraries get the same fp8 operands and scales (SFA M-major and TMA-aligned, the layout
DeepGEMM's SM90 kernels read), and both are timed by :func:`cute_gemm.timing.time_kernels`
(profiler device time, L2 flushed, median of 30 calls), twice each, alternating; the best of the two
medians is kept. ``calc_diff`` of each output is against our fp32 product of the dequantised inputs.

    DG_LIB=... python3 tools/deepgemm_compare.py warm I N   # JIT-compile DeepGEMM's kernels for cases i % N == I
    DG_LIB=... python3 tools/deepgemm_compare.py time 0 1 OUT.json
"""
import json
import os
import sys
import traceback

import torch

sys.path.insert(0, os.environ["DG_LIB"])
import deep_gemm  # noqa: E402

import cute_gemm  # noqa: E402
from cute_gemm import calc_diff  # noqa: E402
from cute_gemm.bench import CONTIGUOUS_SHAPES, MASKED_SHAPES, suite_shapes  # noqa: E402
from cute_gemm.testing import make_contiguous_problem, make_fp8_gemm_problem, make_masked_problem  # noqa: E402
from cute_gemm.timing import time_kernels  # noqa: E402

# The benchmark's shapes (python -m cute_gemm.bench): the dense suite and both grouped lists.
CASES = ([("dense",) + shape for shape in suite_shapes()]
         + [("contiguous",) + shape for shape in CONTIGUOUS_SHAPES]
         + [("masked",) + shape for shape in MASKED_SHAPES])


def calls(case):
    kind = case[0]
    if kind == "dense":
        _, m, n, k = case
        p = make_fp8_gemm_problem(m, n, k)
        d2 = torch.empty_like(p.d)
        ours = lambda: cute_gemm.fp8_gemm_nt((p.a, p.sfa), (p.b, p.sfb), p.d)
        dg = lambda: deep_gemm.fp8_gemm_nt((p.a, p.sfa), (p.b, p.sfb), d2, disable_ue8m0_cast=True)
        ref = lambda: p.dequantized_reference()
        return ours, dg, p.d, d2, ref, 2 * m * n * k
    _, g, m, n, k = case
    if kind == "contiguous":
        p = make_contiguous_problem([m] * g, n, k)
        d2 = torch.empty_like(p.d)
        ours = lambda: cute_gemm.m_grouped_fp8_gemm_nt_contiguous((p.a, p.sfa), (p.b, p.sfb), p.d, p.group_info)
        dg = lambda: deep_gemm.m_grouped_fp8_gemm_nt_contiguous((p.a, p.sfa), (p.b, p.sfb), d2, p.group_info, disable_ue8m0_cast=True)
        ref = lambda: torch.cat([p.expert_reference(e) for e in range(g)])
    else:
        p = make_masked_problem([m] * g, m, n, k)
        d2 = torch.empty_like(p.d)
        ours = lambda: cute_gemm.m_grouped_fp8_gemm_nt_masked((p.a, p.sfa), (p.b, p.sfb), p.d, p.group_info, m)
        dg = lambda: deep_gemm.m_grouped_fp8_gemm_nt_masked((p.a, p.sfa), (p.b, p.sfb), d2, p.group_info, m, disable_ue8m0_cast=True)
        ref = lambda: torch.stack([p.expert_reference(e) for e in range(g)])
    return ours, dg, p.d, d2, ref, 2 * g * m * n * k


def main(mode: str, part: int, nparts: int, out_path: str | None = None):
    """``warm``: compile DeepGEMM's kernels for cases ``i % nparts == part``; ``time``: time
    both libraries on them and write the rows to ``out_path`` as JSON."""
    rows = []
    for i, case in enumerate(CASES):
        if i % nparts != part:
            continue
        try:
            ours, dg, d, d2, ref, flops = calls(case)
            dg()
            torch.cuda.synchronize()
            if mode == "warm":
                print("warm", case, flush=True)
                continue
            ours()
            r = ref()
            diffs = (calc_diff(d.float().reshape(r.shape), r), calc_diff(d2.float().reshape(r.shape), r))
            t = {"ours": [], "deepgemm": []}
            for _ in range(2):
                t["ours"].append(time_kernels(ours))
                t["deepgemm"].append(time_kernels(dg))
            us = {key: min(v) for key, v in t.items()}
            row = dict(case=list(case), us=us, tflops={k: flops / v / 1e6 for k, v in us.items()},
                       runs=t, diff=dict(ours=diffs[0], deepgemm=diffs[1]))
            rows.append(row)
            print(f"{case}: ours {us['ours']:.1f}us {row['tflops']['ours']:.0f}TF | deepgemm {us['deepgemm']:.1f}us "
                  f"{row['tflops']['deepgemm']:.0f}TF | x {us['deepgemm'] / us['ours']:.3f} | diff {diffs[0]:.1e} {diffs[1]:.1e}", flush=True)
            del r
        except Exception:
            print("FAILED", case, traceback.format_exc()[-1500:], flush=True)
    if mode == "time":
        json.dump(rows, open(out_path, "w"), indent=1)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), *sys.argv[4:5])
