"""The promotion stage: fine-grained scales applied on CUDA cores, once per 128-deep K block.

WGMMA accumulates FP8 products with limited precision, so each K block (= one 128-wide scale
block) is computed into a fresh fp32 ``partial`` and then *promoted*::

    acc[i] += partial[i] * (sfa[row(i), kb] * sfb[col_block(i), kb])

``sfa`` arrives per row through the pipeline (viewed as the accumulator, so element ``i`` of the
view is the scale of element ``i``'s row). ``sfb`` is one value per 128 columns: a tile reads at
most two, ``sfb_first`` for its columns before ``split_col`` and ``sfb_second`` from there on.

NOTES: the column of each accumulator element is known at compile time up to the thread's offset
inside an 8-column chunk, and scale blocks split on multiples of 8 columns, so comparing the
chunk's static column with ``split_col`` picks the right scale for every thread. When ``split_col``
is a Python int (BLOCK_N divides 128, or 128 divides BLOCK_N) the choice is made while tracing and
costs nothing; otherwise it is one compare per chunk and a select per chunk-row, shared by the
whole K loop's worth of FFMAs of that chunk.
"""

from __future__ import annotations

import cutlass
import cutlass.cute as cute
from cutlass import Float32


@cute.jit
def promote(
    acc: cute.Tensor,
    partial: cute.Tensor,
    sfa_as_acc: cute.Tensor,
    sfb_first: Float32,
    sfb_second: Float32,
    split_col,
    chunk_cols: cutlass.Constexpr,
):
    """``acc += partial * sfa * sfb`` for one K block, element by element (fully unrolled).

    :param acc: the fp32 accumulator fragment of this thread, ``(MMA, MMA_M, MMA_N)``.
    :param partial: the WGMMA result of this K block, same shape.
    :param sfa_as_acc: this K block's SFA stage partitioned like ``acc`` (per-thread slice).
    :param sfb_first: B scale of the tile's first 128-column scale block at this K block.
    :param sfb_second: B scale of the next scale block (only read for columns >= ``split_col``).
    :param split_col: first tile column that belongs to the second scale block (int or Int32).
    :param chunk_cols: static tuple, for each fragment element, the tile column of its 8-column
        chunk as seen by thread 0 (the same for every thread up to the offset inside the chunk).
    """
    for i in cutlass.range_constexpr(cute.size(acc)):
        sfb = sfb_first
        if cutlass.const_expr(isinstance(split_col, int)):
            if cutlass.const_expr(chunk_cols[i] >= split_col):
                sfb = sfb_second
        else:
            sfb = Float32(cutlass.select_(chunk_cols[i] >= split_col, sfb_second, sfb_first))
        acc[i] = acc[i] + partial[i] * (sfa_as_acc[i] * sfb)
