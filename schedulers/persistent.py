"""The DSL side of the persistent scheduler: what a kernel's producer and consumers both walk.

Producer and math warpgroups each build one :class:`PersistentTileScheduler` and walk the same
static sequence; nothing is communicated between them. Usage inside a ``@cute.kernel``::

    sched = PersistentTileScheduler(num_m_blocks, num_n_blocks, group, along_m, cluster_mn)
    unit = sched.first_unit()
    while unit < sched.num_units:
        m_block, n_block = sched.tile_coords(unit)
        ...
        unit += sched.stride

With a CTA cluster of ``cluster_mn = (cm, cn)`` the schedule walks *cluster tiles* (``cm x cn``
adjacent tiles computed by the CTAs of one cluster, which share A or B through TMA multicast); CTA
``(rank_m, rank_n)`` of the cluster takes tile ``(cluster_m_block * cm + rank_m, ...)``. At an
odd edge that tile can lie past the matrix: the CTA still runs the main loop (its peer needs its
half of the multicast) on zero-filled TMA loads, and its TMA store writes nothing.
"""

from __future__ import annotations

import cutlass
import cutlass.cute as cute
from cutlass import Int32
from cutlass.cutlass_dsl import extract_mlir_values, new_from_mlir_values

from schedulers.raster import rasterize


class PersistentTileScheduler:
    """Dense (``GemmKind.NORMAL``) schedule over ``num_m_blocks x num_n_blocks`` tiles.

    ``group``, ``along_m`` and ``cluster_mn`` are compile-time; the block counts are run-time
    ``Int32``. The object can be passed to ``@cute.jit`` role methods: only the run-time fields
    cross as IR values.
    """

    def __init__(self, num_m_blocks, num_n_blocks, group: int, along_m: bool, cluster_mn=(1, 1)):
        self.num_m_blocks = Int32(num_m_blocks)
        self.num_n_blocks = Int32(num_n_blocks)
        self.group = group
        self.along_m = along_m
        self.cluster_mn = tuple(cluster_mn)

    def __extract_mlir_values__(self):
        return extract_mlir_values(self.num_m_blocks) + extract_mlir_values(self.num_n_blocks)

    def __new_from_mlir_values__(self, values):
        return PersistentTileScheduler(
            new_from_mlir_values(self.num_m_blocks, [values[0]]),
            new_from_mlir_values(self.num_n_blocks, [values[1]]),
            self.group,
            self.along_m,
            self.cluster_mn,
        )

    @property
    def cluster_size(self) -> int:
        return self.cluster_mn[0] * self.cluster_mn[1]

    @property
    def num_m_units(self) -> Int32:
        return (self.num_m_blocks + self.cluster_mn[0] - 1) // self.cluster_mn[0]

    @property
    def num_n_units(self) -> Int32:
        return (self.num_n_blocks + self.cluster_mn[1] - 1) // self.cluster_mn[1]

    @property
    def num_units(self) -> Int32:
        """Cluster tiles in the problem (tiles, without clusters)."""
        return self.num_m_units * self.num_n_units

    @property
    def stride(self) -> Int32:
        """Units between two iterations of one cluster: the number of clusters."""
        return Int32(cute.arch.grid_dim()[0]) // self.cluster_mn[0]

    def first_unit(self) -> Int32:
        return Int32(cute.arch.block_idx()[0]) // self.cluster_mn[0]

    def tile_coords(self, unit: Int32) -> tuple[Int32, Int32]:
        """(m_block, n_block) this CTA computes for cluster tile ``unit`` (see :mod:`schedulers.raster`)."""
        m_unit, n_unit = rasterize(
            unit, self.num_m_units, self.num_n_units, self.group, self.along_m, cutlass.min
        )
        if cutlass.const_expr(self.cluster_size == 1):
            return m_unit, n_unit
        rank_m = Int32(cute.arch.block_idx()[0]) % self.cluster_mn[0]
        rank_n = Int32(cute.arch.block_idx()[1])
        return m_unit * self.cluster_mn[0] + rank_m, n_unit * self.cluster_mn[1] + rank_n
