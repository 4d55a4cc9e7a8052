"""Time every tile configuration on a few shapes (GPU): what the heuristic should pick.

    python tools/sweep.py --shapes 4096x7168x16384 128x7168x16384 [--block-m 128] [--json out]
    python tools/sweep.py --shapes 64x4096x7168 --split-k 1 2 4   # split-K where the tile allows it

Ragged M runs as the heuristic runs it: the last M tile moved up, an A box of fewer rows for few rows;
tiles that promote in place get N and K compiled in (``/nk`` in the listing; ``--runtime-nk``: not).
"""
import argparse, json, sys

import torch

import cute_gemm
from cute_gemm.jit import GemmConfig
from cute_gemm.kernels.fp8_gemm_sm90 import max_stages, split_k_divides_tile
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
    ap.add_argument("--split-k", type=int, nargs="*", default=[1],
                    help="also time each tile split along K over this many CTAs (where it divides the pieces)")
    ap.add_argument("--runtime-nk", action="store_true",
                    help="keep N and K run-time arguments (by default tiles that promote in place get them "
                         "compiled in, as the heuristic builds them)")
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
                settings = [(g, tuple(map(int, c.split("x"))), f, s) for g in args.groups for c in args.clusters
                            for f in args.fewer_stages for s in args.split_k]
                for g, cluster, fewer, split in settings:
                    if split > 1 and (cluster != (1, 1) or not split_k_divides_tile(bm, bn, split)):
                        continue
                    stages = max_stages(bm, bn, split_k=split) - fewer
                    if stages < 2:  # --fewer-stages past what the tile has
                        continue
                    cfg = GemmConfig(bm, bn, stages, cluster[0], cluster[1], g, split_k=split)
                    if args.runtime_nk:  # ragged M as the heuristic runs it
                        cfg = cute_gemm.heuristics.fit_rows(cfg, m)
                    else:  # and N and K compiled in where it would
                        cfg = cute_gemm.heuristics.fit_problem(cfg, m, n, k)
                    fn = lambda: cute_gemm.fp8_gemm_nt((p.a, p.sfa), (p.b, p.sfb), p.d, config=cfg)
                    us = time_cuda(fn, iters=20)
                    tf = 2 * m * n * k / us / 1e6
                    rows.append({"m": m, "n": n, "k": k, "block_m": bm, "block_n": bn, "stages": cfg.stages, "group": g, "cluster": cluster, "split_k": split, "static_nk": cfg.static_nk is not None, "us": us, "tflops": tf,
                                 "gbps": (m * k + n * k + 2 * m * n) / us / 1e3})
                    nk = "/nk" if cfg.static_nk else ""
                    line.append((tf, f"{bm}x{bn}/s{cfg.stages}/g{g}/c{cluster[0]}x{cluster[1]}/k{split}{nk}"))
        line.sort(reverse=True)
        from cute_gemm import peers
        (a_pt, sa), (b_pt, sb) = peers.per_tensor_cast(p.x), peers.per_tensor_cast(p.y)
        pt_us = time_cuda(peers.cublas_per_tensor(a_pt, sa, b_pt, sb), iters=20)
        print(f"{shape}: cuBLAS per-tensor {2 * m * n * k / pt_us / 1e6:.0f} TFLOPS", flush=True)
        gb = (m * k + n * k + 2 * m * n) / 1e3  # A + B + D bytes / 1e3: GB/s = gb / us
        print(f"{shape}: heuristic {chosen.describe()}; best: " + ", ".join(
            f"{c} {t:.0f} TFLOPS {gb * t / (2 * m * n * k / 1e6):.0f} GB/s" for t, c in line[:8]), flush=True)
    if args.json:
        json.dump(rows, open(args.json, "w"), indent=1)


if __name__ == "__main__":
    sys.exit(main())
