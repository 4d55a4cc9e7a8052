"""Tile shapes and the rules that make a tile legal (plain Python, no DSL needed).

BLOCK_K is always 128: one K tile is exactly one 128-wide scale block, so the promotion stage runs
once per K tile. BLOCK_M is 64 per math warpgroup (one or two warpgroups); BLOCK_M = 256 runs two
128-row *waves* per K block on the two math warpgroups. BLOCK_N is a multiple of
16 (the stmatrix epilogue writes 16-column pieces; WGMMA itself allows steps of 8) and must never
let a tile touch more than two 128-column scale blocks of B.
"""

from __future__ import annotations

import math

BLOCK_K = 128
"""K depth of one FP8 tile; equal to the scale-block width so each K tile is promoted once."""

BF16_BLOCK_K = 64
"""K depth of one bf16 tile (the BF16 GEMMs, no scales): the same 128-byte rows as FP8."""

ROW_BYTES = 128
"""Bytes of one operand row of a K tile (the 128-byte swizzle atom's width)."""


def block_k(ab_dtype: str) -> int:
    """K depth of one tile for operands of ``ab_dtype`` ("fp8" or "bf16")."""
    return BLOCK_K if ab_dtype == "fp8" else BF16_BLOCK_K

SCALE_BLOCK = 128
"""Width of a scale block: A has one scale per row per 128 K; B one per 128x128 block."""

ROWS_PER_MATH_WARPGROUP = 64
"""Each math warpgroup owns 64 rows of the tile (one ``m64nNk32`` WGMMA row block)."""

WAVE_BLOCK_M = 128
"""Rows one round of WGMMAs covers with both math warpgroups; a 256-row tile runs two such waves."""

BLOCK_M_CHOICES = (64, 128, 256)
GROUPED_BLOCK_M_CHOICES = (64, 128)
"""BLOCK_M of the contiguous kinds (an M block must lie inside one expert of the 128-row-aligned
layout) and of the k-grouped kind (its per-row B scales already rule out 256 rows: :func:`check_tile`)."""
MASKED_BLOCK_M_CHOICES = BLOCK_M_CHOICES
"""BLOCK_M of the masked kind: every expert has its own ``M_max`` rows, so any tile height fits."""
BLOCK_N_CHOICES = tuple(range(16, 129, 16)) + (144, 160, 192)
"""Multiples of 16 up to 128, then the wide tiles that still touch at most two B scale blocks
(:func:`max_scale_blocks_touched`) and whose two fp32 accumulators (tile and partial) fit in a math
warpgroup's 232 registers without spilling (256 spills)."""


def max_scale_blocks_touched(block_n: int) -> int:
    """Most 128-column B scale blocks one tile of width ``block_n`` can overlap.

    Tiles start at multiples of ``block_n``, so the start's offset inside a scale block is a multiple
    of ``gcd(block_n, 128)``; the worst offset is ``128 - gcd``.
    """
    worst_offset = SCALE_BLOCK - math.gcd(block_n, SCALE_BLOCK)
    return math.ceil((worst_offset + block_n) / SCALE_BLOCK)


def scale_split_is_static(block_n: int) -> bool:
    """True when every tile reads one scale block per 128 columns at fixed columns.

    That holds when BLOCK_N divides 128 (a tile never crosses a boundary) or 128 divides BLOCK_N
    (tiles start on a boundary). Otherwise (112, 144, 160, 192...) the column where the tile crosses
    into the next scale block depends on the tile and is chosen at run time.
    """
    return SCALE_BLOCK % block_n == 0 or block_n % SCALE_BLOCK == 0


B_SCALE_ROWS_CHOICES = (128, 1)
"""Rows of B one scale covers (times 128 K): 128 (128x128 blocks, inference) or 1 (1x128 per row,
the training kernels' "1D1D" recipe, where every output column has its own scale)."""

PER_ROW_B_MAX_BLOCK_N = 160
"""Widest tile with per-row B scales: the accumulator, the partial and the tile's column scales
(BLOCK_N / 4 per thread) must fit a math warpgroup's registers (DeepGEMM's 1D1D also stops at 160)."""


def num_waves(block_m: int) -> int:
    """WGMMA waves per K block: 1 up to 128 rows, 2 for a 256-row tile."""
    return max(1, block_m // WAVE_BLOCK_M)


def check_tile(block_m: int, block_n: int, b_scale_rows: int = 128) -> None:
    """Raise ``ValueError`` unless (block_m, block_n) is a tile the kernel supports with B scaled per
    ``b_scale_rows`` rows."""
    if b_scale_rows not in B_SCALE_ROWS_CHOICES:
        raise ValueError(f"b_scale_rows must be one of {B_SCALE_ROWS_CHOICES}, got {b_scale_rows}")
    if block_m not in BLOCK_M_CHOICES:
        raise ValueError(f"block_m must be one of {BLOCK_M_CHOICES}, got {block_m}")
    if block_n not in BLOCK_N_CHOICES:
        raise ValueError(f"block_n must be one of {BLOCK_N_CHOICES}, got {block_n}")
    if block_m > WAVE_BLOCK_M and block_n > SCALE_BLOCK:
        # Two waves' accumulators plus one partial: 3 x BLOCK_N / 2 registers per thread.
        raise ValueError(f"block_n must be <= 128 when block_m is {block_m}, got {block_n}")
    if b_scale_rows == 1 and (block_m > WAVE_BLOCK_M or block_n > PER_ROW_B_MAX_BLOCK_N):
        raise ValueError(
            f"per-row B scales need block_m <= {WAVE_BLOCK_M} and block_n <= {PER_ROW_B_MAX_BLOCK_N}, "
            f"got {block_m}x{block_n}"
        )


def legal_tiles(b_scale_rows: int = 128) -> list[tuple[int, int]]:
    """Every (block_m, block_n) :func:`check_tile` accepts for ``b_scale_rows``."""
    def legal(m, n):
        try:
            check_tile(m, n, b_scale_rows)
        except ValueError:
            return False
        return True
    return [(m, n) for m in BLOCK_M_CHOICES for n in BLOCK_N_CHOICES if legal(m, n)]


def epilogue_tile(block_m: int, block_n: int) -> tuple[int, int]:
    """The (rows, cols) of one epilogue piece written to smem and stored by one TMA store: 32
    columns where they divide the tile, else 16; a 32-wide tile takes two 16-column pieces, so
    that the two CTAs of a split-K pair can each store one."""
    return (min(block_m, WAVE_BLOCK_M), 32 if block_n % 32 == 0 and block_n > 32 else 16)
