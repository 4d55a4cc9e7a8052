"""The promotion stage: fine-grained scales applied on CUDA cores, once per 128-deep K block.

WGMMA accumulates FP8 products with limited precision, so each K block (= one 128-wide scale
block) is computed into a fresh fp32 ``partial`` and then *promoted*::

    acc[i] += partial[i] * (sfa[row(i), kb] * sfb[col_block(i), kb])

``sfa`` arrives per row through the pipeline (viewed as the accumulator, so element ``i`` of the
view is the scale of element ``i``'s row). ``sfb`` is one value per 128 columns: a tile reads at
most two, ``sfb_first`` for its columns before ``split_col`` and ``sfb_second`` from there on.

NOTES: the column of each accumulator element is known at compile time up to the thread's offset
inside an 8-column chunk, and scale blocks split on multiples of 8 columns, so the chunk's static
column decides which B scale an element takes. ``split_col`` itself depends on the tile when
BLOCK_N neither divides nor is a multiple of 128 (112, 144, 160, 192); it then takes one of a few
values known at compile time, and the kernel branches once per tile into a K loop compiled for that
value. With per-row B scales (:func:`promote_per_column`) every column has its own scale, read from
the pipeline stage like ``sfa``, and there is nothing to dispatch. A per-element select cost ~100 extra instructions per K block at BLOCK_N = 192 (FMUL + FSEL
+ predicate shuffling) and ~25% of the speed; a warp-uniform branch per K block into one of several
copies of the promotion cost 25-33% at BLOCK_N = 112 (H200, docs/notes.md).
"""

from __future__ import annotations

import cutlass
import cutlass.cute as cute
from cutlass import Float32


def split_candidates(block_n: int, scale_block: int = 128) -> tuple[int, ...]:
    """Every value ``split_col = 128 - (n0 % 128)`` takes over tiles starting at ``n0 = j * block_n``."""
    return tuple(sorted({scale_block - (j * block_n) % scale_block for j in range(scale_block)}))


@cute.jit
def promote(
    acc: cute.Tensor,
    partial: cute.Tensor,
    sfa_as_acc: cute.Tensor,
    sfb_first: Float32,
    sfb_second: Float32,
    split_col: cutlass.Constexpr,
    chunk_cols: cutlass.Constexpr,
):
    """One K block's promotion, ``acc += partial * sfa * sfb``, fully unrolled over the fragment.

    :param acc: the fp32 accumulator fragment of this thread, ``(MMA, MMA_M, MMA_N)``.
    :param partial: the WGMMA result of this K block, same shape.
    :param sfa_as_acc: this K block's SFA partitioned like ``acc`` (per-thread slice).
    :param sfb_first: B scale of the tile's first 128-column scale block at this K block.
    :param sfb_second: B scale of the next scale block (read for columns >= ``split_col``).
    :param split_col: first tile column in the second scale block, known at compile time (the
        kernel dispatches once per tile over :func:`split_candidates` when it varies by tile).
    :param chunk_cols: static tuple, for each fragment element, the tile column of its 8-column
        chunk as seen by thread 0 (every thread's differs only inside the chunk).
    """
    for i in cutlass.range_constexpr(cute.size(acc)):
        sfb = sfb_first
        if cutlass.const_expr(chunk_cols[i] >= split_col):
            sfb = sfb_second
        acc[i] = acc[i] + partial[i] * (sfa_as_acc[i] * sfb)


@cute.jit
def promote_per_column(
    acc: cute.Tensor, partial: cute.Tensor, sfa_as_acc: cute.Tensor, sfb_as_acc: cute.Tensor
):
    """One K block's promotion with per-row B scales (1x128 x 1x128, the training recipe):
    ``acc += partial * sfa[row] * sfb[col]``, fully unrolled over the fragment.

    :param sfb_as_acc: this K block's B row scales partitioned like ``acc`` (per-thread slice):
        element ``i`` is the scale of element ``i``'s output column.
    """
    for i in cutlass.range_constexpr(cute.size(acc)):
        acc[i] = acc[i] + partial[i] * (sfa_as_acc[i] * sfb_as_acc[i])
