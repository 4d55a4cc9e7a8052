"""Choosing a kernel configuration for a problem shape (plain Python, explainable).

BLOCK_M is 64 when M <= 64, else 128 or 256 (256 from :data:`BLOCK_M_256_MIN_K_BLOCKS` K blocks
on). The tile minimises a modelled time::

    waves x (K blocks + overhead(BLOCK_M)) x BLOCK_M x BLOCK_N / efficiency(BLOCK_M, BLOCK_N)

with ``waves = ceil(tiles / SMs)``: the rounds of tiles the SMs run, times the time of one tile (its
FLOPs over the rate such a tile reaches, plus a fixed per-tile cost, the epilogue, the scale
loads and the B-scale split dispatch, counted in K blocks). The efficiencies and overheads were fitted to H200 sweeps
(docs/notes.md; ``tools/sweep.py``): 128x128 (lagged promotion) and 128x160 run fastest per FLOP,
256x128 4% and 128x112 10% slower once the 256-row tile's smaller fixed cost is counted; at small M
the extra parallelism of narrow tiles wins.
Ties go to the wider tile, then the taller. Stages: :func:`choose_stages`. 256-row FP8 tiles that
promote in place, and 256-row BF16 tiles, run in 1x2 clusters sharing A by TMA multicast from 32 K
blocks on (:func:`multicasts_a`, modelled :data:`A_MULTICAST_GAIN` faster); no other tile takes a
cluster (2-CTA multicast measured within noise or slower on them).

Split-K (:data:`SPLIT_K`): when even one wave of tiles leaves SMs idle, a tile may be split along K
over a cluster of 2 CTAs (partials summed through distributed shared memory), modelled as the same
tile with ``ceil(K blocks / 2)`` per CTA and twice the CTAs; only for M <= 128 (where 64-row tiles
are then tried for 65..128 rows too), while every split CTA fits in one wave, with
:data:`SPLIT_K_MIN_K_BLOCKS` to :data:`SPLIT_K_MAX_K_BLOCKS` K blocks per CTA (the measured window),
and for tiles at most 128 wide (wider ones spill registers around the reduction). Measured on the H200: 64x4096x7168 64x64 split 2
346-350 TFLOPS vs 312 for 64x32, 128x4096x7168 128x64 split 2 543 vs 508 for 128x32, 128x2112x7168
64x64 split 2 341 vs 278; at 8 K blocks per CTA (K = 2048) splitting lost 30%; 32-wide tiles
(two 16-column epilogue pieces) split too: 64x2112x7168 64x32 split 2 8.05 us vs 9.1 for 64x16
(docs/notes.md). Dense tiles that promote in place get N and K compiled in
(:func:`compiles_shape_in`). ``CUTE_GEMM_PRINT_CONFIGS=1`` prints
:func:`explain`'s table to stderr the first time a shape is seen.

The training variants (per-row B scales, fp32 output, accumulation; :class:`Variant`) use the same
model over the tiles legal for them (per-row B scales: BLOCK_M <= 128, BLOCK_N <= 160) and the
stages that fit their larger stages and epilogue pieces.
"""

from __future__ import annotations

import functools
import os
import sys
from dataclasses import dataclass


from cute_gemm.jit import GemmConfig, Variant
from cute_gemm.kernels.fp8_gemm_sm90 import (
    A_BOX_ROWS,
    ROW_SHIFT_ALIGN,
    epilogue_buffers, epilogue_pieces, lagged_promotion, max_stages, split_k_divides_tile,
    whole_tile_epilogue_stages,
)
from layouts.tiles import block_k, check_tile, scale_split_is_static
from schedulers.raster import GemmKind


INFERENCE = Variant()

EFFICIENCY = {
    64: {16: 0.40, 32: 0.70, 64: 0.70, 96: 0.90, 128: 0.95, 160: 1.00, 192: 0.93},
    128: {32: 0.75, 64: 0.75, 96: 0.79, 112: 0.87, 128: 1.01, 144: 0.94, 160: 1.00, 192: 0.93},
    256: {96: 0.94, 112: 0.90, 128: 1.025},
}
"""Relative FLOP rate of a tile, by BLOCK_M then BLOCK_N (128x160 = 1): the candidates tried.

Refitted (2026-11-29) on an H200 sweep of the 18 dense DeepSeek-V3 shapes, 4 contiguous and 7
masked ones with the current kernel (B-scale warp, N and K compiled into in-place tiles, split-column
K loops rolled: ``benchmarks/results/sweep-h200-2026-11-29-rolled-loops.json``): on every shape the
model's choice is within 2% of the fastest tile measured, except masked 4x256x7168x2048 (256x112
3% behind 128x160; the model sees the same 1024 rows as 1x1024x7168x2048, where 256x112 is the
fastest). What moved, each confirmed by alternating same-process rounds:

- 128x32 above 64x64 (both at 0.70-0.75 before): 64x4096x7168 64x32 3594 GB/s vs the old choice
  64x64 split 2 3265; 128x2112x7168 128x32 split 2 1793 vs 64x64 split 2 1662 (and two unsplit
  64x32 tiles 1946, chosen through :data:`SPLIT_K_OVERHEAD_K_BLOCKS`); 128x4096x7168 128x32 2735
  vs 128x64 split 2 2576.
- 128x128 from 1.00 to 1.01 and 256x128 from 1.03 to 1.025: at 4096x4096x7168 128x128 ran
  1409-1411 TFLOPS against 256x128 with N and K compiled in 1390-1397; 4096x7168x16384 keeps
  256x128 (1441 vs 128x128 1395, 128x160 1304) and the masked N = 7168, K = 2048 shapes keep
  128x160 for a typical count (1037 vs 128x128 978 at 1x1024).
- 128x112 from 0.90 to 0.87 (1106-1192 TFLOPS at M = 4096, 128x128 1289-1412).
- 256x112 from 0.85 back to 0.90: with its K loops rolled it is again the fastest tile for full
  masked experts at N = 7168, K = 2048 (1043 vs 256x128 1037 at 1x1024; 925 before the loops were
  rolled).

Tiles up to 128 wide with at most 128 rows promote one K block while the next one's WGMMAs run
(the lagged promotion, :func:`cute_gemm.kernels.fp8_gemm_sm90.lagged_promotion`); 256-row tiles up
to 96 wide promote one wave while the other runs. 256x128 runs its K blocks faster per FLOP than
128x128 (fitted over K = 1024-8192, ``benchmarks/results/tile-overhead-h200-2026-11-29.json``) but
pays a ring epilogue (:data:`RING_EPILOGUE_OVERHEAD_K_BLOCKS`) once K is long enough for 4 stages."""

_FP8_EFFICIENCY_2026_11_28 = {
    64: {16: 0.40, 32: 0.70, 64: 0.75, 96: 0.90, 128: 0.95, 160: 1.00, 192: 0.93},
    128: {32: 0.70, 64: 0.75, 96: 0.79, 112: 0.90, 128: 1.00, 144: 0.94, 160: 1.00, 192: 0.93},
}
"""The FP8 table before the 2026-11-29 refit: the BF16 and per-row-B tables below were fitted
against it and are not refitted with it."""

BF16_EFFICIENCY = {
    64: _FP8_EFFICIENCY_2026_11_28[64],
    128: {**_FP8_EFFICIENCY_2026_11_28[128], 112: 0.83, 128: 0.92},
    256: {96: 0.945, 112: 0.98, 128: 0.98},
}
"""The table BF16 tiles are modelled with: the FP8 one as it was before the lagged promotion (not
refitted for bf16, whose mainloop has no promotion; its choices were measured, docs/notes.md)."""

PER_ROW_B_EFFICIENCY = {
    64: _FP8_EFFICIENCY_2026_11_28[64],
    128: {**_FP8_EFFICIENCY_2026_11_28[128], 112: 0.95, 128: 1.00, 144: 0.95, 160: 1.01},
}
"""The same with per-row B scales and an fp32 output accumulated into (the weight-gradient kernel):
128x128 and 128x160 run at about the same rate per FLOP there, so the wave count decides (H200, K =
2048-8192, 7 dense and 5 k-grouped shapes: the model's choice within 1% of the better of the two,
docs/notes.md); 160 at 1.01 breaks the near-ties of the k-grouped (8|16, 4096, 7168) shapes, where
128x160 measured 2-4% faster (846-850 vs 815-830 TFLOPS at (16, 4096, 7168, 2048)); 128x160 is 6-8%
slower than 128x128 per FLOP in the inference table."""


def efficiency_table(variant: Variant) -> dict:
    """The :data:`EFFICIENCY` table a variant's tiles are modelled with."""
    if variant.ab_dtype == "bf16":
        return BF16_EFFICIENCY
    return PER_ROW_B_EFFICIENCY if variant.b_scale_rows == 1 else EFFICIENCY

TILE_OVERHEAD_K_BLOCKS = {64: 3.0, 128: 3.0, 256: 2.4}
"""Fixed cost of one tile (epilogue, scale loads, schedule step) in K blocks of that tile."""

SPLIT_DISPATCH_OVERHEAD_K_BLOCKS = 1.0
"""Extra per-tile cost when the B-scale split column depends on the tile (BLOCK_N = 96, 112, 144,
160, 192): the branch into the K loop compiled for it (fitted at K = 512)."""


RING_EPILOGUE_OVERHEAD_K_BLOCKS = 0.35
"""Extra per-tile cost, per epilogue piece that has no buffer of its own at the chosen stages (the
ring then waits for a TMA store to finish reading before each reuse): 256x128 at 4 stages stages 3
of its 8 pieces, 5 x 0.35 = 1.75 of its K blocks, as measured (1.8 us a tile, docs/notes.md)."""


def tile_overhead_k_blocks(
    block_m: int, block_n: int, variant: Variant = INFERENCE, k: int | None = None, split_k: int = 1,
) -> float:
    """Fixed cost of one tile (of each CTA of a split tile) in K blocks: the split dispatch only
    with 128x128 B scale blocks; the ring epilogue, given ``k``, only for the inference variant it
    was fitted on and unsplit (a split tile's epilogue goes through the cluster's reduction
    instead, :data:`SPLIT_K_OVERHEAD_K_BLOCKS`)."""
    dispatches = variant.ab_dtype == "fp8" and variant.b_scale_rows == 128
    dispatch = SPLIT_DISPATCH_OVERHEAD_K_BLOCKS if dispatches and not scale_split_is_static(block_n) else 0.0
    ring = 0.0
    if split_k > 1:
        ring = SPLIT_K_OVERHEAD_K_BLOCKS
    elif k is not None and variant == INFERENCE:
        stages = choose_stages(block_m, block_n, k, variant)
        pieces = epilogue_pieces(block_m, block_n)
        unbuffered = max(0, pieces - epilogue_buffers(block_m, block_n, stages))
        ring = RING_EPILOGUE_OVERHEAD_K_BLOCKS * unbuffered
    return TILE_OVERHEAD_K_BLOCKS[block_m] + dispatch + ring


SPLIT_K = 2
"""CTAs a split tile is spread over. 3 and 4 are supported by the kernel but not offered: the H200
runs at most 39 clusters of 3 and 30 of 4 CTAs at once (117 and 120 SMs; 66 clusters of 2), so the
launches that would pay (43 clusters of 3, 32-33 of 4) ran in two waves (docs/notes.md)."""
SPLIT_K_MIN_K_BLOCKS = 16
"""Fewest K blocks each CTA of a split tile must read for the split to be offered (at 8, K = 2048,
splitting lost 30%)."""
SPLIT_K_MAX_K_BLOCKS = 32
"""Most K blocks per CTA of a split tile: at K = 16384 (64 per CTA) the split tiles ran 1-4% below
the unsplit best (64x7168x16384: 419-426 vs 431-435 TFLOPS), at K = 7168 7-25% above."""
SPLIT_K_MAX_M = 128
"""Largest M offered split-K (the measured regime; larger M fills the SMs with tiles anyway)."""
SPLIT_K_MAX_BLOCK_N = 128
"""Widest tile offered with split-K (64x192 with split 2 spills registers)."""
EXTRA_64_ROW_MAX_BLOCK_N = 128
"""Widest 64-row tile offered for 65..128 rows (dense FP8). Unsplit 64x128 tiles are the fastest
tile there at N = 7168 for up to ~110 rows (one wave of 112 CTAs where 64x64 needs two and a
128-row tile reads up to 63 rows past M): 7168x2048 7.1-7.2 us vs 64x64 8.0 at M = 65-80,
7168x16384 41.9-42.7 vs 49.1-50.2 at M = 65-96 (H200, ``sweep-h200-2026-11-30-ragged-m.json``).
Wider ones were never the fastest (64x192 at N = 24576 1.2-1.4x behind 128x192)."""
EXTRA_64_ROW_SPLIT_MAX_BLOCK_N = 64
"""Widest of those 64-row tiles offered split along K, and priced at the table's efficiency: 64x64
split 2 won at N = 2048-2112 (331-341 TFLOPS vs 286-296 for 128x64 split 2), 64x128 split 2 lost
at N = 3584-4096 (443-490 vs 481-543: two math warpgroups hide more load latency than one);
unsplit, 64x32 won at 128x2112x7168 (1946 GB/s vs 128x32 split 2 1802)."""
EXTRA_64_ROW_WIDE_PRICE = 1.32
"""The wider ones (up to :data:`EXTRA_64_ROW_MAX_BLOCK_N`) are priced at their table efficiency
divided by this: one math warpgroup per tile hides less load latency than 128-row tiles' two, so
64x128 runs slower per FLOP here than the table's 0.95 (fitted for M <= 64) says. At
112x7168x16384 64x128 took 42.1 us against 128x64's 40.2 (~0.72 against the table's 0.95 / 0.75).
Fitted with :data:`ROWS_PAST_M_COST` and :data:`ROWS_PAST_M_FREE` on 30 shapes of 65..120 rows
(H200, every candidate tile timed, ``sweep-h200-2026-11-30-ragged-m.json``): any price from 1.29 to
1.33 takes the fastest measured tile on 29 of them and 64x128 at 112x7168x16384 (4.6% behind
128x64); below 1.29 64x128 also wins at 65x24576x1536 (12% behind 128x192), below 1.27 at
128x7168 too (where 64x112 lost: 2852-2900 GB/s vs 128x64 3392-3459); from 1.36 two waves of
64x64 beat one of 64x128 at N = 7168 again (11-20% behind). The choices at 1..64, 128, 129 and
4096 rows on the DeepSeek-V3 (N, K) are the same as without the wider tiles."""
ROWS_PAST_M_COST = 120.0
"""Cost per K block (units of :attr:`TileChoice.cost`: BLOCK_M x BLOCK_N / efficiency per K block)
of each row of a dense tile's A box past row M, beyond the first :data:`ROWS_PAST_M_FREE`. NOTES:
TMA is slow on a box's rows past the tensor's edge, about 3.9 ns per row per K block whatever
the tile: 128x32 at N = 4096, K = 7168 and 128x64 at N = 7168, K = 16384 both took about 220 ns
more per K block at M = 65 than at M = 128, and 115-135 ns at M = 96; 128x192 at N = 24576,
K = 1536 250 ns at M = 65 (H200, docs/notes.md). A K block of an in-bounds tile costs about
0.03 ns per unit in these memory-bound shapes (128x32: 202 ns for 5461 units), so a row costs
~130 units; 120 fitted with :data:`EXTRA_64_ROW_WIDE_PRICE`."""
ROWS_PAST_M_FREE = 10
"""Rows past M the model does not charge: fitted, not measured (M = 127 and 120 on a 128-row
tile ran within 3% of M = 128), with :data:`ROWS_PAST_M_COST` (from 147 and 12 before the
2026-11-30 refit, :data:`EXTRA_64_ROW_WIDE_PRICE`). The moved last tile leaves up to 3
(:data:`cute_gemm.kernels.fp8_gemm_sm90.ROW_SHIFT_ALIGN`)."""
SPLIT_K_OVERHEAD_K_BLOCKS = 2.0
"""Extra cost of each CTA of a split tile (its partial sums exchanged through the cluster), in K
blocks: without it the model took 128x32 split 2 over the unsplit 64x32 at 128x2112x7168 (1802 vs
1946 GB/s); any value from 1 to 6 keeps every other choice of the 2026-11-29 sweep."""


LONG_K_BLOCKS = 8
"""Beyond this many K blocks a 3-stage pipeline starves 256x128 tiles (see :func:`choose_stages`)."""
LAGGED_LONG_K_BLOCKS = 16
"""Beyond this many K blocks a 3-stage pipeline starves 256-row lagged tiles (256x96: 4 stages
1-4% faster at K = 4096-7168 with N = 2112, 1% slower at K = 2048; H200, docs/notes.md)."""


def ceil_div(a: int, b: int) -> int:
    return (a + b - 1) // b


def choose_stages(block_m: int, block_n: int, k: int, variant: Variant = INFERENCE, split_k: int = 1) -> int:
    """Pipeline stages: the most that leave shared memory for a whole-tile epilogue (every piece
    staged, then stored: measured 2-10% faster than a ring of 2-3 pieces, most at short K), unless
    that leaves only 3 stages for a tile at least 128 wide and K is long: then as many stages as
    fit beside a ring (256x128 at K >= 7168: 4 stages 6-9% faster than 3). The same for a lagged
    tile (its math warps hold two stages) past :data:`LAGGED_LONG_K_BLOCKS`. An fp32 tile is twice
    as large: there the most stages beside a ring win (128x128 with per-row B scales: 5 stages and
    a ring 1-7% faster than 4 and the whole tile, K = 2048-4096). With split-K the reduction slots
    take their share of shared memory first.
    """
    smem_variant = (variant.b_scale_rows, variant.out_dtype, variant.ab_dtype, split_k)
    whole = whole_tile_epilogue_stages(block_m, block_n, *smem_variant)
    most = max_stages(block_m, block_n, *smem_variant)
    if variant.out_dtype == "fp32":
        return most
    if whole >= 4:
        return min(whole, most)
    if whole == 3:
        k_blocks = ceil_div(k, block_k(variant.ab_dtype))
        if lagged_promotion(block_m, block_n, whole, variant.b_scale_rows, variant.ab_dtype):
            long_k = k_blocks > LAGGED_LONG_K_BLOCKS
        else:
            long_k = block_n >= 128 and k_blocks > LONG_K_BLOCKS
        if not long_k:
            return min(whole, most)
    return most


BLOCK_M_256_MIN_K_BLOCKS = 5
"""Fewest K blocks (FP8) for which 256-row tiles are tried. NOTES: at K = 512 (4 K blocks) 128x128
ran faster than the 256x128 the model preferred at every M past 256 measured (H200, N = 32768,
kernel time: 512 rows 19.6 vs 20.6 us, 1024 35.0 vs 38.5, 1536 51.7 vs 56.4, 2048 67.0 vs 75.4,
3072 105.8 vs 113.2; ``sweep-h200-2026-11-30-mid-m.json``; at 4096 1018 vs 1001 TFLOPS in
``sweep-h200-2026-11-29-rolled-loops.json``; at exactly 256 rows 256x128 was 2% ahead, 10.5 vs
10.8). Such a short 256-row tile runs 3 stages (a whole-tile epilogue), fewer than its 4 K
blocks, so the next tile's loads cannot all be in flight while it stores; 128x128 holds 5."""


def block_m_candidates(m: int, num_k_blocks: int | None = None) -> tuple[int, ...]:
    """BLOCK_M values tried for ``m`` rows: 64 for decoding sizes, else 128 and (past 128, given
    at least :data:`BLOCK_M_256_MIN_K_BLOCKS` K blocks or ``num_k_blocks`` None) 256."""
    if m <= 64:
        return (64,)
    short_k = num_k_blocks is not None and num_k_blocks < BLOCK_M_256_MIN_K_BLOCKS
    return (128,) if m <= 128 or short_k else (128, 256)


def _rule_k_blocks(k: int, variant: Variant) -> int | None:
    """K blocks for :func:`block_m_candidates`'s short-K rule: measured for FP8 only (None: no rule)."""
    return ceil_div(k, block_k(variant.ab_dtype)) if variant.ab_dtype == "fp8" else None


def _takes_256_rows(variant: Variant) -> bool:
    """Whether the variant has 256-row tiles at all (not with per-row B scales)."""
    return variant.b_scale_rows != 1


@dataclass(frozen=True)
class TileChoice:
    """One candidate tile with the numbers the choice is made on."""

    block_m: int
    block_n: int
    num_k_blocks: int
    num_tiles: int
    waves: int
    last_wave_tiles: int
    efficiency: float  # relative FLOP rate of the tile (efficiency_table)
    overhead_k_blocks: float  # fixed cost of one tile (tile_overhead_k_blocks)
    split_k: int = 1  # CTAs per tile along K (waves and last_wave_tiles count CTAs)
    rows_past_m: int = 0  # rows of the last M tile's A box past M (dense; rows_past_m)

    @property
    def cost(self) -> float:
        """Modelled time in units of one full-efficiency 1x1 tile K block."""
        k_blocks = ceil_div(self.num_k_blocks, self.split_k)
        per_k_block = self.block_m * self.block_n / self.efficiency
        past_m = ROWS_PAST_M_COST * max(0, self.rows_past_m - ROWS_PAST_M_FREE)
        return self.waves * ((k_blocks + self.overhead_k_blocks) * per_k_block + k_blocks * past_m)

    def key(self):
        """Smaller is better: lowest modelled time, then the wider tile, then the taller, then unsplit."""
        return (round(self.cost, 3), -self.block_n, -self.block_m, self.split_k)


BF16_BLOCK_N_MULTIPLE = 64
"""BF16 tiles the heuristic offers: BLOCK_N a multiple of 64 elements, in every layout. An N-major
B tile gets the 128-byte swizzle only then (narrower ones made TN 1.5x slower at 4096x2112x7168);
with either major of A, 256x128 / 128x192 ran 2-10% above 256x112, 256x96 and 128x160 (TT with
256-row tiles: 8192^3 1416 us against 1563 at 256x112 with 3 stages, 4096x7168x16384 1217 against
1298 at 128x160; H200, docs/notes.md)."""


BF16_MIN_BLOCK_N = 48
"""Narrowest BF16 tile the heuristic offers: at BLOCK_N = 16 and 32 ptxas serialises the BF16
kernel's WGMMAs (remark C7514, a full wait after each; ``tests/test_compile.py``)."""


def _legal(block_m: int, block_n: int, variant: Variant) -> bool:
    if variant.ab_dtype == "bf16" and (block_n % BF16_BLOCK_N_MULTIPLE or block_n < BF16_MIN_BLOCK_N):
        return False
    try:
        check_tile(block_m, block_n, variant.b_scale_rows)
    except ValueError:
        return False
    return True


def candidates(
    m: int, n: int, k: int, num_sms: int, block_m: int | None = None,
    variant: Variant = INFERENCE, num_groups: int = 1, split_k_allowed: bool = False, dense: bool = False,
) -> list[TileChoice]:
    """Every candidate tile for ``num_groups`` problems of ``m x n x k`` with its wave count, best
    first; with ``split_k_allowed`` (dense FP8) also the tiles split along K where they may be,
    and for 65..128 rows two 64-row tiles up to :data:`EXTRA_64_ROW_MAX_BLOCK_N` wide (split only
    up to :data:`EXTRA_64_ROW_SPLIT_MAX_BLOCK_N`, wider ones priced up by
    :data:`EXTRA_64_ROW_WIDE_PRICE`). ``dense``:
    a dense (not grouped) problem, whose tiles pay for rows of A's box past M
    (:func:`rows_past_m`)."""
    out = []
    num_k_blocks = ceil_div(k, block_k(variant.ab_dtype))
    block_ms = (block_m,) if block_m else block_m_candidates(m, _rule_k_blocks(k, variant))
    if not _takes_256_rows(variant):  # fall back to 128
        block_ms = tuple(dict.fromkeys(min(bm, 128) for bm in block_ms))
    table = efficiency_table(variant)
    split_k_allowed = split_k_allowed and m <= SPLIT_K_MAX_M
    extra_64 = split_k_allowed and 64 not in block_ms
    if extra_64:
        block_ms = (64,) + block_ms  # two 64-row tiles of a 65..128-row problem
    for bm in block_ms:
        for block_n, efficiency in table[bm].items():
            if not _legal(bm, block_n, variant):
                continue
            extra_wide = extra_64 and bm == 64 and block_n > EXTRA_64_ROW_SPLIT_MAX_BLOCK_N
            if extra_wide and block_n > EXTRA_64_ROW_MAX_BLOCK_N:
                continue
            if extra_wide:
                efficiency /= EXTRA_64_ROW_WIDE_PRICE
            if dense and multicasts_a(bm, block_n, m, k, variant):
                efficiency *= A_MULTICAST_GAIN
            num_tiles = num_groups * ceil_div(m, bm) * ceil_div(n, block_n)
            splits = (1,)
            if (split_k_allowed and not extra_wide
                    and _split_k_fits(bm, block_n, num_tiles, num_k_blocks, num_sms)):
                splits += (SPLIT_K,)
            for split_k in splits:
                ctas = num_tiles * split_k
                waves = ceil_div(ctas, num_sms)
                out.append(TileChoice(bm, block_n, num_k_blocks, num_tiles, waves,
                                      ctas - (waves - 1) * num_sms, efficiency,
                                      tile_overhead_k_blocks(bm, block_n, variant, k, split_k),
                                      split_k, rows_past_m(m, bm, split_k, variant) if dense else 0))
    return sorted(out, key=TileChoice.key)


def _split_k_fits(block_m: int, block_n: int, num_tiles: int, num_k_blocks: int, num_sms: int) -> bool:
    """Whether a tile may be offered split along K (see the module docstring)."""
    return (block_m <= 128 and block_n <= SPLIT_K_MAX_BLOCK_N
            and split_k_divides_tile(block_m, block_n, SPLIT_K)
            and num_tiles * SPLIT_K <= num_sms
            and SPLIT_K_MIN_K_BLOCKS <= ceil_div(num_k_blocks, SPLIT_K) <= SPLIT_K_MAX_K_BLOCKS)


A_MULTICAST_MIN_K_BLOCKS = 32
"""Fewest K blocks for which a 256-row tile takes a 1x2 cluster (:func:`multicasts_a`): measured
from 32 on (FP8 K = 4096-16384: +1.8-2.6%; BF16 K = 2048, 64-deep blocks: +1.3-1.6%), not below."""
A_MULTICAST_GAIN = 1.02
"""Rate of such a tile with the cluster over its :data:`EFFICIENCY` without one (H200, same
process, two rounds, N and K compiled in, TFLOPS): 256x128 at 4096x7168x16384 1462 -> 1486-1488,
8192x7168x16384 1432 -> 1469, 2048x7168x16384 1330 -> 1342; 256x112 at 512x7168x16384 1266 ->
1289; at 4096x4096x7168 256x128 with it ran 1431 against 128x128's 1402-1406
(``sweep-h200-2026-11-30-clusters.json``)."""


def multicasts_a(block_m: int, block_n: int, m: int, k: int, variant: Variant = INFERENCE, split_k: int = 1) -> bool:
    """Whether a dense tile runs in a 1x2 cluster whose two CTAs (neighbours along N) share each A
    tile through a TMA multicast: 256-row tiles of FP8 inference that promote in place, or of BF16
    with a bf16 output (either major), unsplit, from :data:`A_MULTICAST_MIN_K_BLOCKS` K blocks on,
    where the last M tile need not move up (a cluster takes whole tiles).

    NOTES: such a tile reads 256 rows of A per K block for 112-128 columns of B; with the pair
    sharing A, a CTA pulls 25% less from L2 per K block. BF16 256x128 with it (H200, same process,
    NT and TN alike): 8192^3 779 -> 798-801 TFLOPS, 4096x7168x16384 791-795 -> 809-814,
    4096x7168x2048 743 -> 752-756. On 128-row tiles and at small M the cluster was within noise or
    slower (128x4096x7168 128x32 11.6 -> 14.2 us; docs/notes.md).
    """
    if variant.ab_dtype == "bf16":
        takes = variant.out_dtype == "bf16" and not variant.accumulate
    else:
        takes = variant == INFERENCE and not lagged_promotion(
            block_m, block_n, choose_stages(block_m, block_n, k, variant))
    return (takes and block_m == 256 and split_k == 1
            and ceil_div(k, block_k(variant.ab_dtype)) >= A_MULTICAST_MIN_K_BLOCKS
            and not shifts_last_m_tile(m, block_m, split_k, variant))


def _config(best: TileChoice, k: int, variant: Variant, **fields) -> GemmConfig:
    stages = choose_stages(best.block_m, best.block_n, k, variant, best.split_k)
    if best.split_k > 1:
        fields["split_k"] = best.split_k
    return GemmConfig(best.block_m, best.block_n, stages, **fields, **variant._asdict())


STATIC_NK_ENV = "CUTE_GEMM_STATIC_NK"
"""Set to 0 to keep N and K run-time arguments everywhere (one compile per tile for every shape)."""


def compiles_shape_in(config: GemmConfig) -> bool:
    """Whether a dense configuration gets its problem's N and K compiled in (``static_nk``).

    NOTES: only FP8 tiles with 128x128 B scales that promote in place, unsplit. With N and K
    constant, ptxas shortens their K loop (256x128: 183 instead of 194 instructions per K block and
    math warp; 128x192: 134 instead of 146) and they ran 1-8% faster on the H200 (256x128 with 4
    stages: 4096x7168x16384 1448 vs 1425 TFLOPS, 4096x32768x512 1020 vs 940; 128x24576x1536
    128x192 924 vs 892; 64x24576x1536 64x192 594 vs 580; docs/notes.md). Lagged tiles mostly lost
    (4096x24576x1536 128x128 1130 vs 1300, 4096x2112x7168 256x96 983 vs 1238). The
    price is one compile per (N, K) and tile instead of one per tile (about 2 s each, cached on
    disk); ``CUTE_GEMM_STATIC_NK=0`` turns it off.
    """
    if os.environ.get(STATIC_NK_ENV, "1") == "0":
        return False
    return (config.kind == GemmKind.NORMAL and config.ab_dtype == "fp8" and config.b_scale_rows == 128
            and config.split_k == 1
            and not lagged_promotion(config.block_m, config.block_n, config.stages, config.b_scale_rows))


def shifts_last_m_tile(m: int, block_m: int, split_k: int = 1, variant: Variant = INFERENCE) -> bool:
    """Whether a dense problem's last M tile moves up to end at row ``m`` (``GemmConfig.
    shift_last_m_tile``): M past BLOCK_M and not a multiple of it, unsplit, not accumulating."""
    return m > block_m and m % block_m != 0 and split_k == 1 and not variant.accumulate


def fit_rows(config: GemmConfig, m: int, variant: Variant = INFERENCE) -> GemmConfig:
    """``config`` set up for a dense problem of ``m`` rows: an A box of :func:`a_box_rows` and the
    last M tile moved up where :func:`shifts_last_m_tile`; a cluster takes whole tiles (unchanged)."""
    if (config.cluster_m, config.cluster_n) != (1, 1):
        return config
    return config._replace(
        a_box_rows=a_box_rows(m, config.block_m, variant),
        shift_last_m_tile=shifts_last_m_tile(m, config.block_m, config.split_k, variant),
    )


def fit_problem(config: GemmConfig, m: int, n: int, k: int, variant: Variant = INFERENCE) -> GemmConfig:
    """``config`` set up for a dense ``m x n x k`` problem as :func:`choose_config` runs it: N and K
    compiled in where :func:`compiles_shape_in`, then :func:`fit_rows`."""
    if compiles_shape_in(config):
        config = config._replace(static_nk=(n, k))
    return fit_rows(config, m, variant)


def rows_past_m(m: int, block_m: int, split_k: int = 1, variant: Variant = INFERENCE) -> int:
    """Rows of a dense problem's last M tile's A box past row ``m``: the box is BLOCK_M rows, or
    :func:`a_box_rows` for few rows; the last tile moves up to end near row ``m`` where
    :func:`shifts_last_m_tile`."""
    if shifts_last_m_tile(m, block_m, split_k, variant):
        return (ceil_div(m, block_m) * block_m - m) % ROW_SHIFT_ALIGN
    box = a_box_rows(m, block_m, variant)
    return box - m if box else ceil_div(m, block_m) * block_m - m


def a_box_rows(m: int, block_m: int, variant: Variant = INFERENCE) -> int | None:
    """Rows of A a dense FP8 inference tile loads per K block for ``m`` rows: the fewest of
    :data:`cute_gemm.kernels.fp8_gemm_sm90.A_BOX_ROWS` that hold them, or None (BLOCK_M rows; and
    for every other variant).

    NOTES: TMA is slow on rows past the tensor's edge (``A_BOX_ROWS``). With boxes that fit M,
    decoding batches of 1-56 rows ran 1.04-2.2x faster, about as fast as M = 64: 1x4096x7168
    17.5 -> 8.1 us, 16x7168x2048 7.3 -> 4.4, 8x2112x7168 10.7 -> 6.7, 32x24576x1536 9.4 -> 7.6,
    33x4096x7168 11.5 -> 8.5, 33x2112x7168 10.9 -> 7.0 (H200, docs/notes.md).
    """
    if variant != INFERENCE:
        return None
    return next((rows for rows in A_BOX_ROWS if m <= rows < block_m), None)


@functools.lru_cache(maxsize=4096)
def choose_config(m: int, n: int, k: int, num_sms: int, variant: Variant = INFERENCE) -> GemmConfig:
    """The configuration :func:`cute_gemm.fp8_gemm_nt` runs for an ``m x n x k`` problem."""
    dense_fp8 = variant.ab_dtype == "fp8"
    config = _config(candidates(m, n, k, num_sms, variant=variant, split_k_allowed=dense_fp8, dense=True)[0], k, variant)
    if multicasts_a(config.block_m, config.block_n, m, k, variant, config.split_k):
        config = config._replace(cluster_n=2)
    config = fit_problem(config, m, n, k, variant)
    if os.environ.get("CUTE_GEMM_PRINT_CONFIGS", "0") not in ("", "0"):
        print(_explanation(m, n, k, num_sms, config), file=sys.stderr)  # once per shape (cached)
    return config


@functools.lru_cache(maxsize=4096)
def choose_k_grouped_config(
    m: int, n: int, k_per_group: int, num_groups: int, num_sms: int, accumulate: bool
) -> GemmConfig:
    """Configuration of the k-grouped GEMM: every expert's ``m x n`` tiles, each of
    ``k_per_group`` (the mean) deep, under the dense model; per-row B scales, fp32 out."""
    variant = Variant(1, "fp32", accumulate)
    best = candidates(m, n, k_per_group, num_sms, variant=variant, num_groups=num_groups)[0]
    return _config(best, k_per_group, variant, kind=GemmKind.K_GROUPED)


@functools.lru_cache(maxsize=4096)
def choose_grouped_config(
    kind: GemmKind, rows_per_group: int, num_groups: int, n: int, k: int, num_sms: int,
    variant: Variant = INFERENCE, experts_full: bool = False,
) -> GemmConfig:
    """Configuration of a grouped GEMM: the dense rule applied to all experts' rows together.

    BLOCK_M follows the rows of one expert (64 when an expert has at most 64 rows, as in masked
    decoding; 256 for masked FP8 experts said to be full, :func:`masked_full_tiles`); BLOCK_N
    minimises the modelled time of every expert's tiles. ``experts_full``: every expert is expected
    to hold ``rows_per_group`` rows, its whole capacity (masked: ``expected_m >= M_max``).
    """
    block_m = 64 if rows_per_group <= 64 else 128
    if masked_full_tiles(kind, rows_per_group, experts_full, variant):
        block_m = 256
    rows = num_groups * ceil_div(rows_per_group, block_m) * block_m
    best = candidates(rows, n, k, num_sms, block_m, variant=variant)[0]
    return _config(best, k, variant, kind=kind)


def masked_full_tiles(kind: GemmKind, rows_per_group: int, experts_full: bool, variant: Variant) -> bool:
    """Whether masked FP8 experts take 256-row tiles: only when the caller says every expert is
    full (``expected_m >= M_max``) and 256-row tiles pad an expert to no more rows than 128-row
    ones (more than 128 rows, the last 256-row tile more than half full).

    NOTES: with every expert full, the best 256-row tile beat the best 128-row one on all six
    masked shapes of issue 4 (1x1024x4096x7168: 256x128 1225-1239 vs 128x128 1176-1181 TFLOPS;
    4x256x4096x7168 1173-1198 vs 1115-1122; 1x1024x7168x2048 256x112 978-1003 vs 128x160 965-973;
    with the B-scale warp, 256x128 1042 vs 128x160 1035 vs 256x112 925).
    With uneven counts 256 rows lost on 7 of 8 cases (4 experts of 450-538 rows: 671 vs 762; the
    notebook's 8 experts of 89-1146 rows: 885 vs 919): fewer, unequal tiles balance worse. A typical
    count below the capacity (the usual ``expected_m``) therefore keeps 128 rows
    (``benchmarks/results/sweep-h200-2026-11-29-masked-256.json``).
    """
    if kind != GemmKind.M_GROUPED_MASKED or variant.ab_dtype != "fp8" or not experts_full:
        return False
    return rows_per_group > 128 and ceil_div(rows_per_group, 256) * 256 == ceil_div(rows_per_group, 128) * 128


def explain(m: int, n: int, k: int, num_sms: int, variant: Variant = INFERENCE) -> str:
    """A short text saying which configuration is chosen for the shape and why."""
    return _explanation(m, n, k, num_sms, choose_config(m, n, k, num_sms, variant))


def _explanation(m: int, n: int, k: int, num_sms: int, config: GemmConfig) -> str:
    ranked = candidates(m, n, k, num_sms, variant=config.variant, split_k_allowed=config.ab_dtype == "fp8", dense=True)
    lines = [f"m={m} n={n} k={k} on {num_sms} SMs -> {config.describe()}"]
    lines.append(
        "  tile      tiles  waves  last-wave tiles  efficiency  promotion  past M  modelled time "
        "(waves x ((K blocks + overhead) x BLOCK_M x BLOCK_N / efficiency + K blocks x cost of the "
        "rows past M), relative to the best)"
    )
    best = ranked[0].cost
    for c in ranked:
        chosen = (c.block_m, c.block_n, c.split_k) == (config.block_m, config.block_n, config.split_k)
        mark = "  <- chosen" if chosen else ""
        split = f" split {c.split_k}" if c.split_k > 1 else ""
        stages = choose_stages(c.block_m, c.block_n, k, config.variant, c.split_k)
        lagged = lagged_promotion(c.block_m, c.block_n, stages, config.b_scale_rows)
        promotion = "none" if config.ab_dtype == "bf16" else ("lagged" if lagged else "in place")
        lines.append(
            f"  {c.block_m}x{c.block_n:<4d} {c.num_tiles:6d} {c.waves:6d} {c.last_wave_tiles:16d}"
            f"  {c.efficiency:10.3f}  {promotion:>9s}  {c.rows_past_m:6d}  {c.cost / best:8.3f}{split}{mark}"
        )
    if multicasts_a(config.block_m, config.block_n, m, k, config.variant, config.split_k):
        lines.append(f"  (256-row tiles run in 1x2 clusters sharing A by TMA multicast: efficiency x {A_MULTICAST_GAIN})")
    k_blocks = _rule_k_blocks(k, config.variant)
    if _takes_256_rows(config.variant) and block_m_candidates(m, k_blocks) != block_m_candidates(m):
        lines.append(f"  (no 256-row tiles: {k_blocks} K blocks, < BLOCK_M_256_MIN_K_BLOCKS)")
    return "\n".join(lines)
