"""Tile order of the persistent schedule: one function for Python ints and DSL Int32 alike.

A GEMM of ``num_m_blocks x num_n_blocks`` output tiles is walked as follows. CTA ``c`` of a grid of
``C`` CTAs computes the tiles ``c, c + C, c + 2C, ...`` of the linear order below (tile id =
iteration * num_ctas + cta id), so the C tiles in flight at any moment are C consecutive tiles.

The linear order is *grouped* for L2 reuse. With ``along_m=True`` the M blocks are cut into bands of
``group`` consecutive blocks; bands come one after the other, and inside a band the M block moves
fastest, then the N block::

    along_m=True, group=2, 5 x 3 tiles (m, n):
    band 0: (0,0) (1,0) (0,1) (1,1) (0,2) (1,2)
    band 1: (2,0) (3,0) (2,1) (3,1) (2,2) (3,2)
    band 2: (4,0) (4,1) (4,2)          <- a short last band has fewer M blocks

So tiles in flight share a few M blocks of A (reused from L2 across many N blocks) while B streams.
``along_m=False`` swaps the roles of M and N.
"""

from __future__ import annotations

import enum


class GemmKind(enum.IntEnum):
    """The problem shapes the one scheduler walks."""

    NORMAL = 0
    """One dense GEMM (or a batch of equal GEMMs)."""
    M_GROUPED_CONTIGUOUS = 1
    """Experts stacked along M; each M block belongs to the expert named by ``m_indices``."""
    M_GROUPED_MASKED = 2
    """``[G, M_max, K]`` with ``masked_m[g]`` valid rows per expert, known only on the device."""
    K_GROUPED = 3
    """Experts stacked along K (weight gradients): one output per expert."""
    M_GROUPED_CONTIGUOUS_PSUM = 4
    """Experts stacked along M as for ``M_GROUPED_CONTIGUOUS``, described by the end row of each
    expert (prefix sums) instead of a per-row expert index."""


M_GROUPED_KINDS = (GemmKind.M_GROUPED_CONTIGUOUS, GemmKind.M_GROUPED_CONTIGUOUS_PSUM, GemmKind.M_GROUPED_MASKED)
"""The kinds whose experts are stacked (or batched) along M: B and its scales carry an expert mode."""

CONTIGUOUS_M_ALIGNMENT = 128
"""Rows each expert of the contiguous layouts starts on a multiple of (a multiple of every BLOCK_M)."""


def psum_expert_rows(prev_end, end, alignment: int = CONTIGUOUS_M_ALIGNMENT):
    """``(first, end)`` rows of an expert of the prefix-sum contiguous layout whose predecessor ends
    at ``prev_end`` (0 for the first) and which ends at ``end`` (exclusive): it starts at
    ``prev_end`` rounded up to ``alignment``. Python ints and DSL Int32 alike."""
    return (prev_end + alignment - 1) // alignment * alignment, end


def rasterize(tile_idx, num_m_blocks, num_n_blocks, group: int, along_m: bool, minimum=min,
              band_divisor=None, last_band_divisor=None):
    """Return ``(m_block, n_block)`` of linear tile ``tile_idx`` in the grouped order above.

    ``minimum`` is ``min`` for Python ints and ``cutlass.min`` for DSL values; everything else is
    ``//``, ``%``, ``*`` and ``+``, which both understand the same way for non-negative values.
    ``band_divisor`` and ``last_band_divisor`` are the two run-time divisors, ``group`` times the
    secondary blocks and :func:`last_band_width`; ``None`` uses the plain values. The kernel passes
    FastDivmod divisors built once per launch.

    NOTES: a division by a run-time value is ~25 SASS instructions and the tile loop waits for it;
    a FastDivmod is a multiply-high and a shift. Full bands divide by ``group`` (a constant), and
    the two cases are blended arithmetically so the same code serves Python and the DSL (no branch).
    """
    primary, secondary = (num_m_blocks, num_n_blocks) if along_m else (num_n_blocks, num_m_blocks)
    band_tiles, last_width = group * secondary, last_band_width(primary, group)
    band = tile_idx // (band_tiles if band_divisor is None else band_divisor)
    in_band = tile_idx - band * band_tiles
    first = band * group
    full = minimum(primary - first, group) // group  # 1 in a band of `group`, 0 in a short last one
    s_last = in_band // (last_width if last_band_divisor is None else last_band_divisor)
    p_last = in_band - s_last * last_width
    p = first + p_last + full * (in_band % group - p_last)
    s = s_last + full * (in_band // group - s_last)
    return (p, s) if along_m else (s, p)


def last_band_width(primary, group: int):
    """Blocks of the primary mode in the last band (``group`` when it is full; 1..group, also for
    ``primary = 0``). Python ints and DSL Int32 alike."""
    return primary - (primary + group - 1) // group * group + group


def split_k_range(num_k_blocks, split_k: int, rank):
    """``(k_block0, k_blocks)`` of split ``rank`` of ``split_k`` over ``num_k_blocks`` K blocks.

    The K blocks are cut into ``split_k`` consecutive ranges whose lengths differ by at most one
    (a range may be empty when there are fewer K blocks than splits). Python ints and DSL Int32
    alike (``*`` and ``//`` only).
    """
    k_block0 = rank * num_k_blocks // split_k
    return k_block0, (rank + 1) * num_k_blocks // split_k - k_block0
