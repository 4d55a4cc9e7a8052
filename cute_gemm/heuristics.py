"""Choosing a kernel configuration for a problem shape (plain Python, explainable).

BLOCK_M is 64 when M <= 64, else 128. BLOCK_N minimises a modelled time::

    waves x BLOCK_N / efficiency(BLOCK_N)        waves = ceil(tiles / SMs)

i.e. the number of rounds of tiles the SMs run, times the relative time of one tile. A tile's time
grows with BLOCK_N, but less than linearly: wide tiles amortise the per-K-block overhead (barrier
waits, the A load, the promotion's scale loads) over more columns. The efficiencies were measured on
an H200 (docs/notes.md, benchmarks/results/): at M = 4096, 128x160 tiles are the fastest per column,
128x128 5% and 128x192 7% slower; at small M the extra parallelism of narrow tiles wins. Ties go to
the wider tile. Stages: as many as fit 227 KB of shared memory. No cluster by default (2-CTA
multicast measured within noise on these shapes).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from cute_gemm.jit import GemmConfig
from cute_gemm.kernels.fp8_gemm_sm90 import max_stages
from schedulers.raster import GemmKind

BLOCK_N_EFFICIENCY = {32: 0.70, 64: 0.75, 96: 0.90, 128: 0.95, 160: 1.00, 192: 0.93}
"""Relative throughput of one tile per column, by BLOCK_N (the candidates the heuristic tries)."""


def ceil_div(a: int, b: int) -> int:
    return (a + b - 1) // b


@dataclass(frozen=True)
class TileChoice:
    """One candidate tile with the numbers the choice is made on."""

    block_m: int
    block_n: int
    num_tiles: int
    waves: int
    last_wave_tiles: int

    @property
    def cost(self) -> float:
        """Modelled time in units of one full-efficiency column-wave."""
        return self.waves * self.block_n / BLOCK_N_EFFICIENCY[self.block_n]

    def key(self):
        """Smaller is better: lowest modelled time, then the wider tile."""
        return (round(self.cost, 6), -self.block_n)


def candidates(m: int, n: int, num_sms: int, block_m: int | None = None) -> list[TileChoice]:
    """Every candidate tile for ``m x n`` with its wave count, best first."""
    block_m = block_m or (64 if m <= 64 else 128)
    out = []
    for block_n in BLOCK_N_EFFICIENCY:
        num_tiles = ceil_div(m, block_m) * ceil_div(n, block_n)
        waves = ceil_div(num_tiles, num_sms)
        out.append(TileChoice(block_m, block_n, num_tiles, waves, num_tiles - (waves - 1) * num_sms))
    return sorted(out, key=TileChoice.key)


@functools.lru_cache(maxsize=4096)
def choose_config(m: int, n: int, k: int, num_sms: int) -> GemmConfig:
    """The configuration :func:`cute_gemm.fp8_gemm_nt` runs for an ``m x n x k`` problem."""
    best = candidates(m, n, num_sms)[0]
    return GemmConfig(best.block_m, best.block_n, max_stages(best.block_m, best.block_n))


@functools.lru_cache(maxsize=4096)
def choose_grouped_config(
    kind: GemmKind, rows_per_group: int, num_groups: int, n: int, k: int, num_sms: int
) -> GemmConfig:
    """Configuration of a grouped GEMM: the dense rule applied to all experts' rows together.

    BLOCK_M follows the rows of one expert (64 when an expert has at most 64 rows, as in masked
    decoding); BLOCK_N minimises the modelled time of every expert's tiles.
    """
    block_m = 64 if rows_per_group <= 64 else 128
    rows = num_groups * ceil_div(rows_per_group, block_m) * block_m
    best = candidates(rows, n, num_sms, block_m)[0]
    return GemmConfig(block_m, best.block_n, max_stages(block_m, best.block_n), kind=kind)


def explain(m: int, n: int, k: int, num_sms: int) -> str:
    """A short text saying which configuration is chosen for the shape and why."""
    ranked = candidates(m, n, num_sms)
    config = choose_config(m, n, k, num_sms)
    lines = [f"m={m} n={n} k={k} on {num_sms} SMs -> {config.describe()}"]
    lines.append("  tile      tiles  waves  last-wave tiles  modelled cost (waves x BLOCK_N / efficiency)")
    for c in ranked:
        mark = "  <- chosen" if c.block_n == config.block_n else ""
        lines.append(
            f"  {c.block_m}x{c.block_n:<4d} {c.num_tiles:6d} {c.waves:6d} {c.last_wave_tiles:16d}"
            f"  {c.cost:8.1f}{mark}"
        )
    return "\n".join(lines)
