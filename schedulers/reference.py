"""Plain-Python twin of the persistent scheduler, for CPU tests and pictures.

It calls the very :func:`schedulers.raster.rasterize` the kernel calls, and adds the persistent loop
(tile id = iteration * num_ctas + cta id) around it.
"""

from __future__ import annotations

from dataclasses import dataclass

from schedulers.raster import rasterize


def ceil_div(a: int, b: int) -> int:
    return (a + b - 1) // b


@dataclass(frozen=True)
class ScheduledTile:
    """One tile of a schedule: which CTA computes it, in which of its iterations, and where."""

    cta: int
    iteration: int
    m_block: int
    n_block: int


def grid_size(num_tiles: int, num_sms: int) -> int:
    """CTAs launched: one per SM, but never more than there are tiles (at least one)."""
    return max(1, min(num_tiles, num_sms))


def normal_schedule(
    m: int, n: int, block_m: int, block_n: int, num_sms: int, group: int, along_m: bool
) -> list[ScheduledTile]:
    """Every tile of a dense ``m x n`` output in launch order (by iteration, then CTA)."""
    num_m_blocks, num_n_blocks = ceil_div(m, block_m), ceil_div(n, block_n)
    num_tiles = num_m_blocks * num_n_blocks
    num_ctas = grid_size(num_tiles, num_sms)
    tiles = []
    for tile_idx in range(num_tiles):
        m_block, n_block = rasterize(tile_idx, num_m_blocks, num_n_blocks, group, along_m)
        tiles.append(ScheduledTile(tile_idx % num_ctas, tile_idx // num_ctas, m_block, n_block))
    return tiles
