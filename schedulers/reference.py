"""Plain-Python twin of the persistent scheduler, for CPU tests and pictures.

It calls the very :func:`schedulers.raster.rasterize` the kernel calls, and adds the persistent loop
(unit id = iteration * num_clusters + cluster id) and the CTA clusters around it.
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
    """CTAs launched without clusters: one per SM, never more than there are tiles (at least one)."""
    return max(1, min(num_tiles, num_sms))


def num_clusters(num_units: int, num_sms: int, cluster_size: int) -> int:
    """Clusters launched: as many as fit on the SMs, never more than there are cluster tiles."""
    return max(1, min(num_units, num_sms // cluster_size))


def normal_schedule(
    m: int,
    n: int,
    block_m: int,
    block_n: int,
    num_sms: int,
    group: int,
    along_m: bool,
    cluster_mn: tuple[int, int] = (1, 1),
) -> list[ScheduledTile]:
    """Every tile of a dense ``m x n`` output in launch order (by iteration, then CTA).

    CTA ids follow the launch: ``cta = cluster * cm + rank_m`` along grid x, ``rank_n`` along
    grid y (reported as ``cta + rank_n * cm * num_clusters``). Tiles a cluster computes past the
    matrix edge (zero-filled, never stored) are left out.
    """
    cm, cn = cluster_mn
    num_m_blocks, num_n_blocks = ceil_div(m, block_m), ceil_div(n, block_n)
    m_units, n_units = ceil_div(num_m_blocks, cm), ceil_div(num_n_blocks, cn)
    num_units = m_units * n_units
    clusters = num_clusters(num_units, num_sms, cm * cn)
    tiles = []
    for unit in range(num_units):
        m_unit, n_unit = rasterize(unit, m_units, n_units, group, along_m)
        cluster, iteration = unit % clusters, unit // clusters
        for rank_n in range(cn):
            for rank_m in range(cm):
                m_block, n_block = m_unit * cm + rank_m, n_unit * cn + rank_n
                if m_block < num_m_blocks and n_block < num_n_blocks:
                    cta = cluster * cm + rank_m + rank_n * cm * clusters
                    tiles.append(ScheduledTile(cta, iteration, m_block, n_block))
    return tiles
