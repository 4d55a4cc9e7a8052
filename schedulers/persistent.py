"""The DSL side of the persistent scheduler: what a kernel's producer and consumers both walk.

Producer and math warpgroups each build one :class:`PersistentTileScheduler` and walk the same
static sequence; nothing is communicated between them. Usage inside a ``@cute.kernel``::

    sched = PersistentTileScheduler(num_m_blocks, num_n_blocks, group, along_m)
    tile_idx = sched.first_tile()
    while tile_idx < sched.num_tiles:
        m_block, n_block = sched.tile_coords(tile_idx)
        ...
        tile_idx += sched.stride
"""

from __future__ import annotations

import cutlass
import cutlass.cute as cute
from cutlass import Int32
from cutlass.cutlass_dsl import extract_mlir_values, new_from_mlir_values

from schedulers.raster import rasterize


class PersistentTileScheduler:
    """Dense (``GemmKind.NORMAL``) schedule over ``num_m_blocks x num_n_blocks`` tiles.

    ``group`` and ``along_m`` are compile-time; the block counts are run-time ``Int32``. The object
    can be passed to ``@cute.jit`` role methods: only the run-time fields cross as IR values.
    """

    def __init__(self, num_m_blocks, num_n_blocks, group: int, along_m: bool):
        self.num_m_blocks = Int32(num_m_blocks)
        self.num_n_blocks = Int32(num_n_blocks)
        self.group = group
        self.along_m = along_m

    def __extract_mlir_values__(self):
        return extract_mlir_values(self.num_m_blocks) + extract_mlir_values(self.num_n_blocks)

    def __new_from_mlir_values__(self, values):
        return PersistentTileScheduler(
            new_from_mlir_values(self.num_m_blocks, [values[0]]),
            new_from_mlir_values(self.num_n_blocks, [values[1]]),
            self.group,
            self.along_m,
        )

    @property
    def num_tiles(self) -> Int32:
        return self.num_m_blocks * self.num_n_blocks

    @property
    def stride(self) -> Int32:
        """Tiles between two iterations of one CTA: the number of CTAs."""
        return Int32(cute.arch.grid_dim()[0])

    def first_tile(self) -> Int32:
        return Int32(cute.arch.block_idx()[0])

    def tile_coords(self, tile_idx: Int32) -> tuple[Int32, Int32]:
        """(m_block, n_block) of linear tile ``tile_idx``; see :mod:`schedulers.raster`."""
        return rasterize(
            tile_idx, self.num_m_blocks, self.num_n_blocks, self.group, self.along_m, cutlass.min
        )
