"""Plain-Python twin of the persistent scheduler, for CPU tests and pictures.

It calls the very :func:`schedulers.raster.rasterize` the kernel calls, and adds the persistent loop
(unit id = iteration * num_clusters + cluster id) and the CTA clusters around it.

- :func:`normal_schedule`: one dense GEMM (optionally with CTA clusters).
- :func:`split_k_schedule`: one dense GEMM, each tile split along K over a cluster of CTAs.
- :func:`contiguous_schedule`: MoE, experts stacked along M (``m_indices``); padding blocks skipped.
- :func:`contiguous_psum_schedule`: the same layout given as the end row of each expert.
- :func:`masked_schedule`: MoE, ``[G, M_max, K]`` with ``masked_m[g]`` valid rows per expert.
- :func:`k_grouped_schedule`: MoE weight gradients, experts stacked along K (``ks``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from schedulers.raster import psum_expert_rows, rasterize, split_k_range


def ceil_div(a: int, b: int) -> int:
    return (a + b - 1) // b


@dataclass(frozen=True)
class ScheduledTile:
    """One tile of a schedule: which CTA computes it, in which of its iterations, and where.

    ``group`` is the expert of an MoE tile (``m_indices[m_block * block_m]`` for the contiguous
    layout; ``g`` for the masked one, whose ``m_block`` then counts blocks inside expert ``g``); it
    is 0 for a dense GEMM. ``k_block0`` and ``k_blocks`` are the K blocks the tile reads (set by
    :func:`k_grouped_schedule`; ``k_blocks = None`` means all of them).
    """

    cta: int
    iteration: int
    m_block: int
    n_block: int
    group: int = 0
    k_block0: int = 0
    k_blocks: int | None = None


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


def split_k_schedule(
    m: int,
    n: int,
    num_k_blocks: int,
    block_m: int,
    block_n: int,
    num_sms: int,
    group: int,
    along_m: bool,
    split_k: int,
) -> list[ScheduledTile]:
    """Every (tile, K range) of a dense ``m x n`` output split ``split_k`` ways along K, in launch
    order (by iteration, then CTA).

    A unit is one tile in :func:`normal_schedule`'s order, computed by a cluster of ``split_k``
    CTAs (``cta = cluster * split_k + rank`` along grid x); CTA ``rank`` reads the K blocks
    ``split_k_range(num_k_blocks, split_k, rank)`` (possibly none). The kernel then sums the
    cluster's partial tiles, each CTA storing ``1 / split_k`` of the tile.
    """
    num_m_blocks, num_n_blocks = ceil_div(m, block_m), ceil_div(n, block_n)
    num_units = num_m_blocks * num_n_blocks
    clusters = num_clusters(num_units, num_sms, split_k)
    tiles = []
    for unit in range(num_units):
        m_block, n_block = rasterize(unit, num_m_blocks, num_n_blocks, group, along_m)
        cluster, iteration = unit % clusters, unit // clusters
        for rank in range(split_k):
            k_block0, k_blocks = split_k_range(num_k_blocks, split_k, rank)
            tiles.append(ScheduledTile(cluster * split_k + rank, iteration, m_block, n_block,
                                       k_block0=k_block0, k_blocks=k_blocks))
    return tiles


def contiguous_schedule(
    m_indices: Sequence[int],
    n: int,
    block_m: int,
    block_n: int,
    num_sms: int,
    group: int,
    along_m: bool,
) -> list[ScheduledTile]:
    """Every tile the m-grouped *contiguous* GEMM computes, in launch order (iteration, then CTA).

    ``m_indices`` ``[M_sum]`` names each stacked row's expert (``-1``: padding). The tiles are those
    of a dense ``M_sum x n`` output, walked exactly like :func:`normal_schedule` without clusters::

        num_m_blocks = ceil(M_sum / block_m);  num_n_blocks = ceil(n / block_n)
        num_tiles = num_m_blocks * num_n_blocks;  num_ctas = grid_size(num_tiles, num_sms)
        for tile_idx in range(num_tiles):
            m_block, n_block = rasterize(tile_idx, num_m_blocks, num_n_blocks, group, along_m)
            expert = m_indices[m_block * block_m]        # the block's first row
            if expert < 0: skip                          # padding: no math, nothing written
            else: ScheduledTile(tile_idx % num_ctas, tile_idx // num_ctas, m_block, n_block, expert)

    A skipped tile still uses its slot: CTA ``tile_idx % num_ctas`` just moves on to its next
    iteration, so the (cta, iteration) of every other tile is unchanged (no compaction).
    """
    tiles = []
    for cta, iteration, m_block, n_block in _stacked_tile_slots(len(m_indices), n, block_m, block_n,
                                                                num_sms, group, along_m):
        expert = int(m_indices[m_block * block_m])
        if expert >= 0:
            tiles.append(ScheduledTile(cta, iteration, m_block, n_block, expert))
    return tiles


def _stacked_tile_slots(m_sum, n, block_m, block_n, num_sms, group, along_m):
    """``(cta, iteration, m_block, n_block)`` of every tile of an ``m_sum x n`` output in launch
    order, padding tiles included (they keep their slot: no compaction)."""
    num_m_blocks, num_n_blocks = ceil_div(m_sum, block_m), ceil_div(n, block_n)
    num_tiles = num_m_blocks * num_n_blocks
    num_ctas = grid_size(num_tiles, num_sms)
    for tile_idx in range(num_tiles):
        m_block, n_block = rasterize(tile_idx, num_m_blocks, num_n_blocks, group, along_m)
        yield tile_idx % num_ctas, tile_idx // num_ctas, m_block, n_block


def contiguous_psum_schedule(
    psum: Sequence[int],
    m_sum: int,
    n: int,
    block_m: int,
    block_n: int,
    num_sms: int,
    group: int,
    along_m: bool,
) -> list[tuple[ScheduledTile, int]]:
    """Every tile of the prefix-sum contiguous GEMM with its valid rows, in launch order.

    ``psum [G]``: the end row (exclusive) of each expert in the ``m_sum`` stacked rows; expert
    ``g`` starts at ``psum[g - 1]`` rounded up to 128 (:func:`schedulers.raster.psum_expert_rows`).
    The tiles are :func:`contiguous_schedule`'s over ``m_sum`` rows; a tile's expert is the one
    whose rows hold its first row, and it is skipped when that row is padding::

        for tile_idx in range(num_tiles):                    # as contiguous_schedule
            row0 = m_block * block_m
            g = the expert with first_g <= row0 < psum[g], else skip
            (ScheduledTile(..., g), min(psum[g] - row0, block_m))

    Returns ``(tile, rows)`` pairs: ``rows`` < ``block_m`` when the expert ends inside the tile.
    """
    experts, prev_end = [], 0
    for end in psum:
        experts.append(psum_expert_rows(prev_end, end))
        prev_end = end
    tiles = []
    for cta, iteration, m_block, n_block in _stacked_tile_slots(m_sum, n, block_m, block_n, num_sms,
                                                                group, along_m):
        row0 = m_block * block_m
        owners = [g for g, (first, end) in enumerate(experts) if first <= row0 < end]
        if owners:
            g = owners[-1]  # the kernel's scan keeps the last match (at most one for a valid psum)
            tiles.append((ScheduledTile(cta, iteration, m_block, n_block, g), min(experts[g][1] - row0, block_m)))
    return tiles


def masked_grid_size(
    num_groups: int, m_max: int, n: int, block_m: int, block_n: int, num_sms: int
) -> int:
    """CTAs launched for the masked GEMM, as if every expert were full.

    ``max(1, min(num_sms, G * ceil(m_max / block_m) * ceil(n / block_n)))``: the host never reads
    ``masked_m`` (it lives on the device), so it sizes the grid for the most work possible; CTAs
    that find no unit exit at once.
    """
    return grid_size(num_groups * ceil_div(m_max, block_m) * ceil_div(n, block_n), num_sms)


def masked_schedule(
    masked_m: Sequence[int],
    m_max: int,
    n: int,
    block_m: int,
    block_n: int,
    num_sms: int,
    group: int,
    along_m: bool,
) -> list[ScheduledTile]:
    """Every tile the m-grouped *masked* GEMM computes, in launch order (iteration, then CTA).

    ``a`` is ``[G, M_max, K]`` and expert ``g`` has ``masked_m[g]`` valid rows (``0 <= masked_m[g]
    <= m_max``). Units are numbered expert by expert; an empty expert owns none::

        num_n_blocks = ceil(n / block_n)
        num_ctas = max(1, min(num_sms, G * ceil(m_max / block_m) * num_n_blocks))
        prefix = 0
        for g in range(G):
            g_m_blocks = ceil(masked_m[g] / block_m)
            for u in range(g_m_blocks * num_n_blocks):            # unit = prefix + u
                m_block, n_block = rasterize(u, g_m_blocks, num_n_blocks, group, along_m)
                ScheduledTile(unit % num_ctas, unit // num_ctas, m_block, n_block, group=g)
            prefix += g_m_blocks * num_n_blocks

    ``m_block`` counts blocks inside expert ``g`` (rows ``m_block * block_m ..`` of ``a[g]``); the
    tile's valid rows are :func:`masked_rows_in_tile`. No tile covers only rows at or past
    ``masked_m[g]``. Raises ``ValueError`` if some ``masked_m[g]`` is outside ``[0, m_max]`` (the
    kernel's contract; it does not check).
    """
    for g, rows in enumerate(masked_m):
        if not 0 <= rows <= m_max:
            raise ValueError(f"masked_m[{g}] must be in [0, m_max={m_max}], got {rows}")
    num_n_blocks = ceil_div(n, block_n)
    num_ctas = masked_grid_size(len(masked_m), m_max, n, block_m, block_n, num_sms)
    tiles = []
    prefix = 0
    for g, rows in enumerate(masked_m):
        g_m_blocks = ceil_div(int(rows), block_m)
        g_units = g_m_blocks * num_n_blocks
        for u in range(g_units):
            m_block, n_block = rasterize(u, g_m_blocks, num_n_blocks, group, along_m)
            unit = prefix + u
            tiles.append(ScheduledTile(unit % num_ctas, unit // num_ctas, m_block, n_block, g))
        prefix += g_units
    return tiles


def masked_rows_in_tile(masked_m_g: int, m_block: int, block_m: int) -> int:
    """Valid rows of masked tile ``m_block`` of an expert with ``masked_m_g`` rows.

    ``min(block_m, masked_m_g - m_block * block_m)``: ``block_m`` for a full tile, fewer for the
    expert's last tile; the kernel stores only these rows. In ``1 .. block_m`` for every tile of
    :func:`masked_schedule` (not meaningful, <= 0, for a block past ``masked_m_g``).
    """
    return min(block_m, masked_m_g - m_block * block_m)


def k_grouped_schedule(
    ks: Sequence[int],
    m: int,
    n: int,
    block_m: int,
    block_n: int,
    num_sms: int,
    group: int,
    along_m: bool,
) -> list[ScheduledTile]:
    """Every tile the k-grouped GEMM computes, in launch order (iteration, then CTA).

    Expert ``g`` reads ``ks[g]`` (a multiple of 128) columns of the K-stacked ``a [m, sum(ks)]`` and
    ``b [n, sum(ks)]`` and owns the ``m x n`` output ``d[g]``. Units are numbered expert by expert,
    every expert owning all its tiles (an empty one too: its tiles read no K block, and store
    zeros, or nothing when accumulating into ``c``)::

        tiles_per_expert = ceil(m / block_m) * ceil(n / block_n)
        num_ctas = grid_size(G * tiles_per_expert, num_sms)
        for unit in range(G * tiles_per_expert):
            g, u = divmod(unit, tiles_per_expert)
            m_block, n_block = rasterize(u, ceil(m / block_m), ceil(n / block_n), group, along_m)
            ScheduledTile(unit % num_ctas, unit // num_ctas, m_block, n_block, g,
                          k_block0=sum(ks[:g]) // 128, k_blocks=ks[g] // 128)

    Raises ``ValueError`` if some ``ks[g]`` is negative or not a multiple of 128.
    """
    for g, k in enumerate(ks):
        if k < 0 or k % 128:
            raise ValueError(f"ks[{g}] must be a non-negative multiple of 128, got {k}")
    num_m_blocks, num_n_blocks = ceil_div(m, block_m), ceil_div(n, block_n)
    per_expert = num_m_blocks * num_n_blocks
    num_ctas = grid_size(len(ks) * per_expert, num_sms)
    tiles = []
    for unit in range(len(ks) * per_expert):
        g, u = divmod(unit, per_expert)
        m_block, n_block = rasterize(u, num_m_blocks, num_n_blocks, group, along_m)
        tiles.append(ScheduledTile(
            unit % num_ctas, unit // num_ctas, m_block, n_block, g,
            k_block0=sum(ks[:g]) // 128, k_blocks=ks[g] // 128,
        ))
    return tiles
