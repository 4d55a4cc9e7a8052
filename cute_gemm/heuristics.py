"""Choosing a kernel configuration for a problem shape (plain Python, explainable).

Rule (DeepGEMM's): BLOCK_M = 64 when M <= 64, else 128. Among the legal BLOCK_N values, take the one
with the fewest waves of tiles over the SMs, then the fullest last wave, then the larger tile. Stages:
as many as fit 227 KB of shared memory.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from cute_gemm.jit import GemmConfig
from cute_gemm.kernels.fp8_gemm_sm90 import max_stages
from layouts.tiles import BLOCK_N_CHOICES


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

    def key(self):
        """Smaller is better: fewest waves, fullest last wave, then larger tiles."""
        return (self.waves, -self.last_wave_tiles, -self.block_n)


def candidates(m: int, n: int, num_sms: int) -> list[TileChoice]:
    """Every legal tile for ``m x n`` with its wave count, best first."""
    block_m = 64 if m <= 64 else 128
    out = []
    for block_n in BLOCK_N_CHOICES:
        num_tiles = ceil_div(m, block_m) * ceil_div(n, block_n)
        waves = ceil_div(num_tiles, num_sms)
        out.append(TileChoice(block_m, block_n, num_tiles, waves, num_tiles - (waves - 1) * num_sms))
    return sorted(out, key=TileChoice.key)


@functools.lru_cache(maxsize=4096)
def choose_config(m: int, n: int, k: int, num_sms: int) -> GemmConfig:
    """The configuration :func:`cute_gemm.fp8_gemm_nt` runs for an ``m x n x k`` problem."""
    best = candidates(m, n, num_sms)[0]
    return GemmConfig(best.block_m, best.block_n, max_stages(best.block_m, best.block_n))


def explain(m: int, n: int, k: int, num_sms: int) -> str:
    """A short text saying which configuration is chosen for the shape and why."""
    ranked = candidates(m, n, num_sms)
    config = choose_config(m, n, k, num_sms)
    lines = [f"m={m} n={n} k={k} on {num_sms} SMs -> {config.describe()}"]
    lines.append("  block_n  tiles  waves  last-wave tiles")
    for c in ranked[:6]:
        mark = " <- chosen" if c.block_n == config.block_n else ""
        lines.append(f"  {c.block_n:7d}  {c.num_tiles:5d}  {c.waves:5d}  {c.last_wave_tiles:15d}{mark}")
    return "\n".join(lines)
