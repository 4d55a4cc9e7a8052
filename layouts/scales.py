"""Scale-factor layouts.

Global memory (what the torch API hands the kernel):

- SFA ``[m, ceil(k/128)]`` fp32, **M-major** (stride ``(1, m_pad)``) with ``m_pad`` a multiple of 4, so
  each K-block column starts 16-byte aligned and TMA can load ``BLOCK_M`` scales of one K block in
  one box. :func:`tma_aligned_rows` gives ``m_pad``.
- SFB ``[ceil(n/128), ceil(k/128)]`` fp32 (128x128 blocks), K-major; a warp of the producer warpgroup
  (the kernel's B-scale warp) reads the one or two values a tile needs per K block from global
  memory and stores them into the stage (:func:`block_sfb_smem_layout`): too few bytes for TMA, and
  the math warps then read them with two shared-memory loads like the row scales instead of a
  global load per K block.
- SFB ``[n, ceil(k/128)]`` fp32 (1x128, the "1D1D" recipe of the training kernels), **N-major** and
  TMA-aligned like SFA: it travels through the pipeline too, ``BLOCK_N`` floats per stage.

Shared memory: SFA travels with A through the pipeline, ``BLOCK_M`` floats per stage
(:func:`sfa_smem_layout`). The promotion stage reads it through :func:`sfa_as_accumulator`, a
stride-0 view with the accumulator's shape, so that partitioning it like the accumulator gives every
thread the scale of the row of each of its accumulator values; a per-row SFB buffer is read through
:func:`sfb_as_accumulator`, the same idea along columns.
"""

from __future__ import annotations

import cutlass.cute as cute

TMA_ALIGN_FLOATS = 4
"""TMA needs 16-byte global strides: 4 fp32."""

SMEM_ALIGN_FLOATS = 32
"""A TMA destination in shared memory starts 128-byte aligned: 32 fp32."""


def tma_aligned_rows(rows: int) -> int:
    """Rows of an M-major scale tensor padded so each column starts 16-byte aligned."""
    return (rows + TMA_ALIGN_FLOATS - 1) // TMA_ALIGN_FLOATS * TMA_ALIGN_FLOATS


def sfa_smem_layout(block_m: int, stages: int) -> cute.Layout:
    """SFA pipeline buffer ``(BLOCK_M, 1, stages)``: one K block of row scales per stage."""
    return _per_row_scales_smem_layout(block_m, stages)


def sfb_smem_layout(block_n: int, stages: int) -> cute.Layout:
    """Per-row (1x128) SFB pipeline buffer ``(BLOCK_N, 1, stages)``: one K block of B row scales per
    stage, each stage starting 128-byte aligned (:func:`sfb_stage_floats` apart)."""
    return _per_row_scales_smem_layout(block_n, stages, sfb_stage_floats(block_n))


BLOCK_SFB_FLOATS = 2
"""128x128 B scales a tile needs per K block: its first scale block's and the next one's (read for
columns from the tile's split column on)."""


def block_sfb_smem_layout(stages: int) -> cute.Layout:
    """128x128 SFB stage buffer ``(2, stages)``: the tile's two B scales of each stage's K block."""
    return cute.make_layout((BLOCK_SFB_FLOATS, stages), stride=(1, BLOCK_SFB_FLOATS))


def sfb_stage_floats(block_n: int) -> int:
    """Floats between two stages of the per-row SFB buffer: BLOCK_N rounded up to 128 bytes (TMA
    writes shared memory at 128-byte aligned addresses)."""
    return (block_n + SMEM_ALIGN_FLOATS - 1) // SMEM_ALIGN_FLOATS * SMEM_ALIGN_FLOATS


def _per_row_scales_smem_layout(rows: int, stages: int, stage_stride: int | None = None) -> cute.Layout:
    return cute.make_layout((rows, 1, stages), stride=(1, 0, stage_stride or rows))


def sfa_as_accumulator(block_m: int, block_n: int, stages: int, stage_stride: int | None = None) -> cute.Layout:
    """The SFA buffer seen as a ``(BLOCK_M, BLOCK_N, stages)`` tensor: element (m, n) = scale of row m.

    ``stage_stride`` (default ``block_m``) is the buffer's rows per stage: a 256-row tile views each
    128-row wave with ``block_m=128, stage_stride=256`` from the wave's first row.

    Partition it with the **per-thread** MMA slice (``partition_C``) and index it exactly like the
    accumulator fragment. (The warpgroup-level slice would give every thread thread 0's rows.)
    """
    return cute.make_layout((block_m, block_n, stages), stride=(1, 0, stage_stride or block_m))


def sfb_as_accumulator(block_m: int, block_n: int, stages: int) -> cute.Layout:
    """A per-row SFB buffer seen as a ``(BLOCK_M, BLOCK_N, stages)`` tensor: element (m, n) = scale of
    B row (= output column) n. Partition it like :func:`sfa_as_accumulator`."""
    return cute.make_layout((block_m, block_n, stages), stride=(0, 1, sfb_stage_floats(block_n)))
