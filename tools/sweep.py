"""Time every tile configuration on a few shapes (GPU): what the heuristic should pick.

    python tools/sweep.py --shapes 4096x7168x16384 128x7168x16384 [--block-m 128] [--json out]
"""
import argparse, json, sys

import torch

import cute_gemm
from cute_gemm.jit import GemmConfig
from cute_gemm.kernels.fp8_gemm_sm90 import max_stages
from cute_gemm.testing import make_fp8_gemm_problem
from cute_gemm.timing import time_kernels as time_cuda
from layouts.tiles import BLOCK_M_CHOICES, BLOCK_N_CHOICES, legal_tiles


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", nargs="+", required=True)
    ap.add_argument("--block-m", type=int, nargs="*", default=list(BLOCK_M_CHOICES))
    ap.add_argument("--block-n", type=int, nargs="*", default=list(BLOCK_N_CHOICES))
    ap.add_argument("--groups", type=int, nargs="*", default=[16])
    ap.add_argument("--clusters", nargs="*", default=["1x1"])
    ap.add_argument("--fewer-stages", type=int, nargs="*", default=[0],
                    help="also time each tile with this many stages fewer than fit (frees smem for the epilogue)")
    ap.add_argument("--json")
    args = ap.parse_args()
    rows = []
    for shape in args.shapes:
        m, n, k = map(int, shape.split("x"))
        p = make_fp8_gemm_problem(m, n, k)
        chosen = cute_gemm.heuristics.choose_config(m, n, k, cute_gemm.get_num_sms())
        line = []
        for bm in args.block_m:
            for bn in args.block_n:
                if (bm, bn) not in legal_tiles():
                    continue
                for g, cluster, fewer in [(g, tuple(map(int, c.split("x"))), f) for g in args.groups for c in args.clusters for f in args.fewer_stages]:
                    cfg = GemmConfig(bm, bn, max_stages(bm, bn) - fewer, cluster[0], cluster[1], g)
                    fn = lambda: cute_gemm.fp8_gemm_nt((p.a, p.sfa), (p.b, p.sfb), p.d, config=cfg)
                    us = time_cuda(fn, iters=20)
                    tf = 2 * m * n * k / us / 1e6
                    rows.append({"m": m, "n": n, "k": k, "block_m": bm, "block_n": bn, "stages": cfg.stages, "group": g, "cluster": cluster, "us": us, "tflops": tf})
                    line.append((tf, f"{bm}x{bn}/s{cfg.stages}/g{g}/c{cluster[0]}x{cluster[1]}"))
        line.sort(reverse=True)
        from cute_gemm import peers
        (a_pt, sa), (b_pt, sb) = peers.per_tensor_cast(p.x), peers.per_tensor_cast(p.y)
        pt_us = time_cuda(peers.cublas_per_tensor(a_pt, sa, b_pt, sb), iters=20)
        print(f"{shape}: cuBLAS per-tensor {2 * m * n * k / pt_us / 1e6:.0f} TFLOPS", flush=True)
        print(f"{shape}: heuristic {chosen.block_m}x{chosen.block_n}; best: " + ", ".join(f"{c} {t:.0f}" for t, c in line[:8]), flush=True)
    if args.json:
        json.dump(rows, open(args.json, "w"), indent=1)


if __name__ == "__main__":
    sys.exit(main())
