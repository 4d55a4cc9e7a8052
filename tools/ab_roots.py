"""A/B two versions of the library on the GPU, in alternating processes (what decides a change).

    git archive HEAD~1 cute_gemm layouts schedulers | (mkdir -p /tmp/old && tar -x -C /tmp/old)
    python tools/ab_roots.py --roots old=/tmp/old new=. --shapes 129x4096x7168 1x7168x2048 --rounds 2
    python tools/ab_roots.py --roots old=/tmp/old new=. --shapes 4096x7168x2048 --wgrad   # d += a @ b^T
    python tools/ab_roots.py --roots old=/tmp/old new=. --shapes 4x8192x4096x7168 --contiguous  # GxMxNxK

``--wgrad``: the training form (1x128 scales on both operands, fp32 ``d`` accumulated in place,
the bench's weight-gradient call) instead of the inference GEMM. ``--contiguous``: the m-grouped
contiguous GEMM, G experts of M rows each (``GxMxNxK``), as the bench's grouped suite.

Each round runs every root in its own process: it imports ``cute_gemm`` from that root, compiles
the configurations the root's heuristic picks for the shapes in a pool of processes (cold compiles
are what a session's device time goes to), then times each shape (kernel time, L2 flushed, median
of ``--iters``). One JSON line per measurement on stdout and in ``--json``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys


def _compile(root: str, fields: dict) -> None:
    """Compile one configuration (given as plain fields, so that unpickling it imports nothing
    before ``root`` is on the path) into the disk cache for the timing process."""
    sys.path.insert(0, root)
    from cute_gemm import jit
    from schedulers.raster import GemmKind

    jit.get_fp8_gemm(jit.GemmConfig(**(fields | {"kind": GemmKind(fields["kind"])})))


def _problem(cute_gemm, shape: tuple[int, ...], config, wgrad: bool, contiguous: bool):
    """Fresh inputs for one shape: the call to time, the row's shape fields, its FLOPs and bytes
    (A + B + D once; wgrad: D read and written; contiguous: without the scales)."""
    import torch

    from cute_gemm.testing import make_contiguous_problem, make_fp8_gemm_problem

    if contiguous:
        g, m, n, k = shape
        p = make_contiguous_problem([m] * g, n, k)
        run = lambda: cute_gemm.m_grouped_fp8_gemm_nt_contiguous(  # noqa: E731
            (p.a, p.sfa), (p.b, p.sfb), p.d, p.group_info, config=config)
        return run, dict(groups=g, m=m, n=n, k=k), 2 * g * m * n * k, g * (m * k + n * k + 2 * m * n)
    m, n, k = shape
    c, d_bytes = None, 2 * m * n
    if wgrad:
        p = make_fp8_gemm_problem(m, n, k, b_scale_rows=1, out_dtype=torch.float32)
        p.d.zero_()
        c, d_bytes = p.d, 8 * m * n
    else:
        p = make_fp8_gemm_problem(m, n, k)
    run = lambda: cute_gemm.fp8_gemm_nt((p.a, p.sfa), (p.b, p.sfb), p.d, c=c, config=config)  # noqa: E731
    return run, dict(m=m, n=n, k=k, wgrad=wgrad), 2 * m * n * k, m * k + n * k + d_bytes


def measure(
    root: str, label: str, shapes: list[tuple[int, ...]], iters: int, pool_size: int, wgrad: bool = False,
    contiguous: bool = False,
) -> list[dict]:
    """Time the heuristic's choice for every shape with the library found under ``root``."""
    sys.path.insert(0, root)
    import torch

    import cute_gemm
    from cute_gemm import heuristics
    from cute_gemm.timing import L2Flusher, time_kernels
    from schedulers.raster import GemmKind

    if not os.path.abspath(cute_gemm.__file__).startswith(os.path.abspath(root)):
        raise SystemExit(f"imported {cute_gemm.__file__}, not the library under {root}")
    num_sms = torch.cuda.get_device_properties(0).multi_processor_count
    variant = heuristics.Variant(1, "fp32", True) if wgrad else heuristics.INFERENCE
    if contiguous:  # the API's choice for G experts of M rows
        configs = [heuristics.choose_grouped_config(GemmKind.M_GROUPED_CONTIGUOUS, g * m, 1, n, k, num_sms)
                   for g, m, n, k in shapes]
    else:
        configs = [heuristics.choose_config(m, n, k, num_sms, variant) for m, n, k in shapes]
    with multiprocessing.get_context("spawn").Pool(min(pool_size, len(set(configs)))) as pool:
        pool.starmap(_compile, [(root, c._asdict() | {"kind": int(c.kind)}) for c in dict.fromkeys(configs)])
    flush, rows = L2Flusher(), []
    for shape, config in zip(shapes, configs):
        run, fields, flops, nbytes = _problem(cute_gemm, shape, config, wgrad, contiguous)
        us = time_kernels(run, iters=iters, flush=flush)
        rows.append(dict(label=label, **fields, config=config.describe(), us=round(us, 2),
                         gbs=round(nbytes / us / 1e3), tflops=round(flops / us / 1e6)))
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--roots", nargs="+", required=True, help="label=path of a tree with cute_gemm, layouts, schedulers")
    ap.add_argument("--shapes", nargs="+", required=True, help="MxNxK")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--pool", type=int, default=14, help="compile processes")
    ap.add_argument("--json", help="append the measurements here")
    ap.add_argument("--wgrad", action="store_true", help="time d += a @ b^T with 1x128 scales on both, fp32 d")
    ap.add_argument("--contiguous", action="store_true", help="shapes are GxMxNxK: m-grouped contiguous")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # label=path: measure in this process
    args = ap.parse_args()
    shapes = [tuple(map(int, s.split("x"))) for s in args.shapes]
    if args.one:
        label, root = args.one.split("=", 1)
        measure(root, label, shapes, args.iters, args.pool, args.wgrad, args.contiguous)
        return
    lines = []
    for _ in range(args.rounds):
        for spec in args.roots:
            cmd = [sys.executable, __file__, "--one", spec, "--iters", str(args.iters), "--pool", str(args.pool),
                   "--roots", spec, "--shapes", *args.shapes]
            cmd += (["--wgrad"] if args.wgrad else []) + (["--contiguous"] if args.contiguous else [])
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            lines += [line for line in out.splitlines() if line.startswith("{")]
            print(out, end="", flush=True)
    if args.json:
        with open(args.json, "a") as f:
            f.writelines(line + "\n" for line in lines)


if __name__ == "__main__":
    main()
