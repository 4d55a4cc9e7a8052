"""Swizzled shared-memory layouts of the operands and of the epilogue tile.

Call these inside a ``@cute.jit`` function (they build CuTe layouts) and ``print`` the result to see
them, e.g. an FP8 K-major A stage of 128x128 over 4 stages prints
``S<3,4,3> o 0 o ((8,16),(128,1),(1,4)):((128,1024),(1,0),(0,16384))``: the 128-byte swizzle atom
(8 rows of 128 bytes) tiled down M, then along the stage mode.
"""

from __future__ import annotations

import cutlass
import cutlass.cute as cute
import cutlass.utils.hopper_helpers as sm90_utils
from cutlass.tensor_utils import LayoutEnum


def operand_smem_layout(
    dtype: type[cutlass.Numeric], rows: int, block_k: int, stages: int, mn_major: bool = False
) -> cute.ComposedLayout:
    """Operand tile ``(rows, block_k, stages)`` with the widest swizzle the contiguous mode allows.

    Used for A (rows = BLOCK_M) and B (rows = BLOCK_N). K-major (the default; the only form FP8
    WGMMA reads) swizzles along K; ``mn_major`` (bf16 operands stored M- or N-contiguous) swizzles
    along the rows. WGMMA reads these through smem descriptors; TMA writes them with the same
    swizzle.
    """
    layout, major_size = (LayoutEnum.COL_MAJOR, rows) if mn_major else (LayoutEnum.ROW_MAJOR, block_k)
    atom = cute.nvgpu.warpgroup.make_smem_layout_atom(
        sm90_utils.get_smem_layout_atom(layout, dtype, major_size), dtype
    )
    return cute.tile_to_shape(atom, (rows, block_k, stages), order=(1, 0, 2) if mn_major else (0, 1, 2))


def epilogue_smem_layout(
    dtype: type[cutlass.Numeric], epi_tile: tuple[int, int], stages: int
) -> cute.ComposedLayout:
    """N-major D piece ``(epi_m, epi_n, stages)``, swizzled so stmatrix writes avoid bank conflicts."""
    atom = cute.nvgpu.warpgroup.make_smem_layout_atom(
        sm90_utils.get_smem_layout_atom(LayoutEnum.ROW_MAJOR, dtype, epi_tile[1]), dtype
    )
    return cute.tile_to_shape(atom, (*epi_tile, stages), order=(0, 1, 2))


def first_rows(stage_buffer, rows: int):
    """The first ``rows`` rows of every stage of a ``(R, ..., stages)`` buffer layout (an operand
    stage, or the A scales' ``(BLOCK_M, 1, stages)``): the same offsets and swizzle, the row mode cut
    to ``rows``, which need not divide ``R``. A decoding tile's A box (8 to 56 rows of a 64-row
    stage) is this view: e.g. 48 rows of ``S<3,4,3> o 0 o ((8,8),(128,1),(1,4)):((128,1024),(1,0),
    (0,8192))`` print ``S<3,4,3> o 0 o (48,(128,1),(1,4)):(128,(1,0),(0,8192))`` (the rows' two
    modes coalesced: 8 rows of 128 bytes per 1 KB atom are 128 bytes apart throughout).
    """
    return cute.composition(stage_buffer, (cute.make_layout(rows),) + (None,) * (cute.rank(stage_buffer) - 1))
