"""The DSL side of the persistent scheduler: what a kernel's producer and consumers both walk.

Each role (producer, math) builds its own :class:`PersistentTileScheduler` from the kernel's
arguments and walks the same static sequence; nothing is communicated between roles::

    sched = PersistentTileScheduler(kind, num_m_blocks, num_n_blocks, num_k_blocks, block_m, group,
                                    along_m, cluster_mn, group_info, split_k, divisors)
    unit = sched.first_unit()
    num_units = sched.num_units()
    while unit < num_units:
        tile = sched.tile(unit)  # m_block, n_block, expert, rows, is_valid, k_block0, num_k_blocks
        if tile.is_valid: ...
        unit += sched.stride

Kinds (:class:`schedulers.raster.GemmKind`), with the same arithmetic as the plain-Python twin in
:mod:`schedulers.reference`:

- ``NORMAL``: ``num_m_blocks x num_n_blocks`` tiles in the grouped raster order. With a CTA
  cluster ``(cm, cn)`` the units are *cluster tiles*; CTA ``(rank_m, rank_n)`` takes tile
  ``(unit_m * cm + rank_m, unit_n * cn + rank_n)``; at an odd edge that tile lies past the matrix
  and is computed on zero-filled loads and never stored (its peer needs its half of the multicast).
- ``M_GROUPED_CONTIGUOUS``: the same tiles over the stacked rows; a tile's expert is
  ``m_indices[m_block * block_m]`` (``group_info``); ``-1`` (padding) makes the tile invalid. A
  valid tile whose last row is padding gets ``rows = 0``: the epilogue then stores row by row,
  skipping rows whose ``m_indices`` is ``-1``.
- ``M_GROUPED_CONTIGUOUS_PSUM``: the same tiles; ``group_info`` is ``psum [G]``, the end row of
  each expert, which starts at the previous end rounded up to 128 rows
  (:func:`schedulers.raster.psum_expert_rows`). A tile's expert is the one whose rows hold its
  first row (found by a scan over the experts); a tile starting in padding is invalid; ``rows`` is
  its number of valid rows (the epilogue stores only those).
- ``M_GROUPED_MASKED``: units numbered expert by expert; expert ``g`` owns
  ``ceil(masked_m[g] / block_m) * num_n_blocks`` units (``group_info`` is ``masked_m``), rasterised
  inside the expert; ``rows`` is the number of valid rows of the tile (the epilogue stores only
  those).
- ``K_GROUPED``: experts stacked along K (``group_info`` is ``ks``, each a multiple of 128):
  units numbered expert by expert, ``num_m_blocks * num_n_blocks`` per expert, every expert
  (an empty one too: its tiles have ``num_k_blocks = 0``); a tile reads the K blocks
  ``[k_block0, k_block0 + num_k_blocks)`` of the stacked K, ``k_block0 = sum(ks[:g]) / 128``.
- ``NORMAL`` with ``split_k = S > 1`` (split-K, no other cluster): a unit is one tile computed by
  a cluster of ``S`` CTAs along grid x; CTA ``rank`` reads the K blocks
  :func:`schedulers.raster.split_k_range` gives it, and the kernel sums the ``S`` partial tiles.

Every other kind reads K blocks ``[0, num_k_blocks)``.

The raster order's divisions by run-time values (tiles per band, the last band's width, tiles per
expert) go through FastDivmod divisors the kernel's host function builds once per launch
(:func:`make_raster_divisors`); the masked kind, whose experts each have their own M blocks, keeps
plain divisions.
"""

from __future__ import annotations

from typing import NamedTuple

import cutlass
import cutlass.cute as cute
from cutlass import Boolean, Int32
from cutlass.cutlass_dsl import extract_mlir_values, new_from_mlir_values

from schedulers.raster import GemmKind, last_band_width, psum_expert_rows, rasterize, split_k_range


class WorkTile(NamedTuple):
    m_block: Int32
    n_block: Int32
    expert: Int32
    rows: Int32  # masked: valid rows (masked_m - m_block * block_m, capped); contiguous: block_m
    # if the tile has no padding rows, else 0 (the epilogue checks m_indices row by row)
    is_valid: Boolean
    k_block0: Int32  # first K block (k-grouped: the expert's offset in the stacked K), else 0
    num_k_blocks: Int32  # K blocks of this tile


def cluster_units(num_blocks, cluster: int):
    """Units (cluster tiles) along one mode of ``num_blocks`` tiles, ``cluster`` CTAs per unit."""
    return (num_blocks + cluster - 1) // cluster


def make_raster_divisors(
    kind: GemmKind, num_m_blocks, num_n_blocks, group: int, along_m: bool, cluster_mn=(1, 1)
) -> tuple:
    """FastDivmod divisors of the raster order's run-time divisions (:func:`schedulers.raster.rasterize`):
    ``(band, last band[, tiles per expert])``; none for the masked kind, whose experts have run-time M
    blocks each. Built once per launch: the kernel's host function makes them and passes them in
    (built in the kernel they would cost every CTA a 64-bit division at start). Only the dense kind
    has clusters, so a k-grouped expert's units are its tiles."""
    if kind == GemmKind.M_GROUPED_MASKED:
        return ()
    units_m, units_n = cluster_units(num_m_blocks, cluster_mn[0]), cluster_units(num_n_blocks, cluster_mn[1])
    primary, secondary = (units_m, units_n) if along_m else (units_n, units_m)
    divisors = (
        cute.fast_divmod_create_divisor_v2(cutlass.max(secondary * group, 1)),
        cute.fast_divmod_create_divisor_v2(last_band_width(primary, group)),
    )
    if kind == GemmKind.K_GROUPED:
        divisors += (cute.fast_divmod_create_divisor_v2(cutlass.max(num_m_blocks * num_n_blocks, 1)),)
    return divisors


class PersistentTileScheduler:
    """Tile schedule of one kernel launch (see the module docstring)."""

    def __init__(
        self,
        kind: GemmKind,
        num_m_blocks,
        num_n_blocks,
        num_k_blocks,
        block_m: int,
        group: int,
        along_m: bool,
        cluster_mn=(1, 1),
        group_info: cute.Tensor | None = None,
        split_k: int = 1,
        divisors: tuple = (),
    ):
        self.kind = kind
        self.num_m_blocks = Int32(num_m_blocks)  # contiguous/normal: blocks of all rows
        self.num_n_blocks = Int32(num_n_blocks)
        self.num_k_blocks = Int32(num_k_blocks)  # unused by K_GROUPED (per expert from ks)
        self.block_m = block_m
        self.group = group
        self.along_m = along_m
        self.cluster_mn = tuple(cluster_mn)
        self.group_info = group_info
        self.split_k = split_k
        self.divisors = divisors  # make_raster_divisors's, built by the kernel's host function

    # The DSL carries the scheduler through the dynamic tile loop: only run-time fields are IR values.
    def __extract_mlir_values__(self):
        values = (extract_mlir_values(self.num_m_blocks) + extract_mlir_values(self.num_n_blocks)
                  + extract_mlir_values(self.num_k_blocks))
        self._num_info_values = 0
        if self.group_info is not None:
            info = extract_mlir_values(self.group_info)
            self._num_info_values = len(info)
            values += info
        return values

    def __new_from_mlir_values__(self, values):
        info = None
        if self.group_info is not None:
            info = new_from_mlir_values(self.group_info, values[3:3 + self._num_info_values])
        return PersistentTileScheduler(
            self.kind,
            new_from_mlir_values(self.num_m_blocks, [values[0]]),
            new_from_mlir_values(self.num_n_blocks, [values[1]]),
            new_from_mlir_values(self.num_k_blocks, [values[2]]),
            self.block_m,
            self.group,
            self.along_m,
            self.cluster_mn,
            info,
            self.split_k,
            self.divisors,  # launch constants from the host: used in the loop, not carried by it
        )

    @property
    def cluster_size(self) -> int:
        return self.cluster_mn[0] * self.cluster_mn[1]

    @property
    def ctas_per_unit_x(self) -> int:
        """CTAs of one cluster along grid x: ``cluster_m``, or the ``split_k`` CTAs of a split tile."""
        return self.cluster_mn[0] * self.split_k

    @property
    def stride(self) -> Int32:
        """Units between two iterations of one cluster: the number of clusters launched."""
        return Int32(cute.arch.grid_dim()[0]) // self.ctas_per_unit_x

    def first_unit(self) -> Int32:
        return Int32(cute.arch.block_idx()[0]) // self.ctas_per_unit_x

    def _units_m(self) -> Int32:
        return cluster_units(self.num_m_blocks, self.cluster_mn[0])

    def _units_n(self) -> Int32:
        return cluster_units(self.num_n_blocks, self.cluster_mn[1])

    def _expert_rows(self, g) -> Int32:
        """``masked_m[g]`` clamped to ``[0, M_max]``: a bad count never reaches past the expert."""
        m_max = self.num_m_blocks * self.block_m
        return cutlass.max(cutlass.min(self.group_info[g], m_max), 0)

    @cute.jit
    def num_units(self) -> Int32:
        """Units (cluster tiles) of the whole launch."""
        total = self._units_m() * self._units_n()
        if cutlass.const_expr(self.kind == GemmKind.M_GROUPED_MASKED):
            total = Int32(0)
            for g in range(cute.size(self.group_info)):
                total += (self._expert_rows(g) + self.block_m - 1) // self.block_m * self.num_n_blocks
        if cutlass.const_expr(self.kind == GemmKind.K_GROUPED):
            total = total * cute.size(self.group_info)
        return total

    def _expert_k_blocks(self, g) -> Int32:
        """K blocks of expert ``g`` (``ks[g] / 128``; a negative count reads as 0)."""
        return cutlass.max(self.group_info[g], 0) // 128

    @cute.jit
    def tile(self, unit: Int32) -> WorkTile:
        """The tile this CTA computes for ``unit``."""
        expert = Int32(0)
        rows = Int32(self.block_m)
        is_valid = Boolean(True)
        k_block0 = Int32(0)
        num_k_blocks = self.num_k_blocks
        if cutlass.const_expr(self.kind == GemmKind.K_GROUPED):
            band, last_band, expert_units = self.divisors
            expert = unit // expert_units
            m_block, n_block = rasterize(
                unit - expert * self.num_m_blocks * self.num_n_blocks, self.num_m_blocks,
                self.num_n_blocks, self.group, self.along_m, cutlass.min, band, last_band,
            )
            # The expert's first K block: the K blocks of the experts before it.
            for g in range(cute.size(self.group_info)):
                if g < expert:
                    k_block0 += self._expert_k_blocks(g)
            num_k_blocks = self._expert_k_blocks(expert)
        elif cutlass.const_expr(self.kind == GemmKind.M_GROUPED_MASKED):
            # Find the expert owning `unit` (a fixed loop of independent loads; no early exit).
            prefix = Int32(0)
            local = Int32(0)
            expert_m_blocks = Int32(1)
            expert_rows = Int32(0)
            for g in range(cute.size(self.group_info)):
                g_rows = self._expert_rows(g)
                g_m_blocks = (g_rows + self.block_m - 1) // self.block_m
                g_units = g_m_blocks * self.num_n_blocks
                if unit >= prefix and unit < prefix + g_units:
                    expert = Int32(g)
                    local = unit - prefix
                    expert_m_blocks = g_m_blocks
                    expert_rows = g_rows
                prefix += g_units
            m_block, n_block = rasterize(
                local, expert_m_blocks, self.num_n_blocks, self.group, self.along_m, cutlass.min
            )
            rows = cutlass.min(expert_rows - m_block * self.block_m, self.block_m)
        else:
            m_unit, n_unit = rasterize(
                unit, self._units_m(), self._units_n(), self.group, self.along_m, cutlass.min,
                *self.divisors,
            )
            m_block, n_block = m_unit, n_unit
            if cutlass.const_expr(self.split_k > 1):
                rank = Int32(cute.arch.block_idx()[0]) % self.split_k
                k_block0, num_k_blocks = split_k_range(self.num_k_blocks, self.split_k, rank)
            if cutlass.const_expr(self.cluster_size > 1):
                rank_m = Int32(cute.arch.block_idx()[0]) % self.cluster_mn[0]
                rank_n = Int32(cute.arch.block_idx()[1])
                m_block = m_unit * self.cluster_mn[0] + rank_m
                n_block = n_unit * self.cluster_mn[1] + rank_n
            if cutlass.const_expr(self.kind == GemmKind.M_GROUPED_CONTIGUOUS_PSUM):
                # The expert whose rows hold the tile's first row (a fixed scan; no early exit).
                row0 = m_block * self.block_m
                expert = Int32(-1)
                prev_end = Int32(0)
                for g in range(cute.size(self.group_info)):
                    first, end = psum_expert_rows(prev_end, self.group_info[g])
                    if row0 >= first and row0 < end:
                        expert = Int32(g)
                        rows = cutlass.min(end - row0, self.block_m)
                    prev_end = end
                is_valid = expert >= 0
            if cutlass.const_expr(self.kind == GemmKind.M_GROUPED_CONTIGUOUS):
                expert = self.group_info[m_block * self.block_m]
                is_valid = expert >= 0
                # A block whose last row is padding has padding rows at its end: rows = 0 flags it
                # for the epilogue's per-row predicated store.
                last_row = cutlass.min(m_block * self.block_m + self.block_m, cute.size(self.group_info)) - 1
                if self.group_info[last_row] < 0:
                    rows = Int32(0)
        return WorkTile(m_block, n_block, expert, rows, is_valid, k_block0, num_k_blocks)
