"""Compile ahead of time every configuration the heuristic would choose, on any machine.

    python -m cute_gemm precompile --shapes deepseek-v3
    python -m cute_gemm precompile --n 4096 7168 --k 7168 2048
    python -m cute_gemm precompile --json shapes.json      # [[n, k], ...]

Kernels land in the disk cache (:mod:`cute_gemm.cache`), so a GPU host that shares the cache
directory (or gets a copy) starts warm. Reports the cold-compile time of each kernel and the time to
load it back from disk.
"""

from __future__ import annotations

import json
import sys
import time

from cute_gemm import cache, heuristics, jit
from cute_gemm.bench import DEEPSEEK_V3_NK

M_SWEEP = (1, 16, 24, 32, 40, 48, 56, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)
"""Row counts whose configurations are compiled for each (N, K): 1 to 56 for the decoding A boxes
of 8 to 56 rows (``GemmConfig.a_box_rows``). Ragged M (the moved last tile) and 65..127 rows compile their
own kernels at first use."""


def configs_for(nk_pairs, num_sms: int) -> list[jit.GemmConfig]:
    """The distinct dense configurations the heuristic picks for every M of ``M_SWEEP``."""
    seen = []
    for n, k in nk_pairs:
        for m in M_SWEEP:
            config = heuristics.choose_config(m, n, k, num_sms)
            if config not in seen:
                seen.append(config)
    return seen


def precompile(nk_pairs, num_sms: int = 132, out=sys.stdout) -> list[dict]:
    configs = configs_for(nk_pairs, num_sms)
    print(f"{len(configs)} kernel configurations for {len(nk_pairs)} (N, K) shapes "
          f"-> {cache.cache_dir()}", file=out)
    report = []
    for i, config in enumerate(configs, 1):
        key = cache.entry_key(config, jit.ARCH)
        was_cached = cache.lookup(key) is not None
        start = time.perf_counter()
        jit.get_fp8_gemm(config)
        first = time.perf_counter() - start
        jit._cache.pop(config, None)
        start = time.perf_counter()
        jit.get_fp8_gemm(config)
        load = time.perf_counter() - start
        state = "cached" if was_cached else f"compiled in {first:.2f} s"
        print(f"[{i}/{len(configs)}] {config.describe()}: {state}, loads in {load * 1e3:.1f} ms", file=out)
        report.append({"config": config._asdict() | {"kind": int(config.kind)},
                       "compile_s": None if was_cached else first, "load_ms": load * 1e3})
    return report


def parse_shapes(args) -> list[tuple[int, int]]:
    if args.json:
        with open(args.json) as f:
            return [tuple(map(int, nk)) for nk in json.load(f)]
    if args.n or args.k:
        if not (args.n and args.k):
            raise SystemExit("--n and --k go together")
        return [(n, k) for n in args.n for k in args.k]
    if args.shapes == "deepseek-v3":
        return list(DEEPSEEK_V3_NK)
    raise SystemExit(f"unknown shape set {args.shapes!r} (known: deepseek-v3)")
