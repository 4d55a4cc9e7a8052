"""Persistent, warp-specialized FP8 GEMM with fine-grained scaling for Hopper (sm_90a).

    D[M, N] (bf16) = (A[M, K] fp8 e4m3 * SFA[M, ceil(K/128)]) @ (B[N, K] fp8 e4m3 * SFB[ceil(N/128), ceil(K/128)])^T

A is scaled per row per 128-wide K block (1x128), B per 128x128 block. The training variants
(:class:`Fp8GemmSm90` arguments) scale B per row too (1x128, SFB ``[N, ceil(K/128)]``), write D in
fp32, and can add the result into D (``D += ...``, TMA reduce-add).
"""

from __future__ import annotations

import cutlass
import cutlass.cute as cute
import cutlass.pipeline as pipeline
import cutlass.utils.hopper_helpers as sm90_utils
from cutlass import Float32, Int32
from cutlass._mlir.dialects.nvvm import MemScopeKind
from cutlass.cute.nvgpu import OperandMajorMode, cpasync, warpgroup
from cutlass.memory import SmemAllocator, get_smem_capacity_in_bytes
from cutlass.tensor_utils import LayoutEnum

from cute_gemm.kernels.mbarrier import wait_phase
from cute_gemm.promotion import promote, promote_per_column, split_candidates
from layouts import scales as scale_layouts
from layouts import smem as smem_layouts
from layouts import tiles
from schedulers.persistent import PersistentTileScheduler, make_raster_divisors
from schedulers.raster import M_GROUPED_KINDS, GemmKind

SMEM_CAPACITY = get_smem_capacity_in_bytes("sm_90")  # 232448 B = 227 KB per CTA
MIN_EPILOGUE_BUFFERS = 2
BARRIER_BYTES = 1024  # mbarriers and alignment slack
OUT_DTYPES = {"bf16": cutlass.BFloat16, "fp32": Float32}
"""Output element types by name (``GemmConfig.out_dtype``)."""
B_SCALE_CHUNK = 32
"""K blocks of 128x128 B scales the B-scale warp loads at once (one per lane)."""
LAGGED_PROMOTION_MAX_BLOCK_N = {1: 128, 2: 96}
"""Widest tile that promotes lagged (:meth:`Fp8GemmSm90.k_loop_lagged`), by WGMMA waves per K
block. One wave: an accumulator and two partials of BLOCK_N / 2 registers each; at 144 the second
row-scale slot spills and at 160 the partials do (786 spill instructions, 2.6x slower). Two waves
(BLOCK_M = 256): two accumulators and a partial per wave, which fits up to 96 wide. Per-row B
scales would need a second set of column scales and spill at 128 (388); lagged with the scales
read at promotion time instead, they ran 6-10% slower than promoting in place (H200,
docs/notes.md)."""


LAGGED_PROMOTION_MIN_STAGES = 3
"""Fewest pipeline stages a tile promotes lagged with: the math warps hold two stages while a wave
is promoted, so with 2 the producer cannot load ahead (2 stages lagged ran 25-45% slower than in
place: 128x128, 256x96, 256x48, H200, docs/notes.md). The heuristic always chooses 3 or more."""


def lagged_promotion(block_m: int, block_n: int, stages: int, b_scale_rows: int = 128, ab_dtype: str = "fp8") -> bool:
    """Whether a tile promotes each WGMMA wave while the next one runs
    (:meth:`Fp8GemmSm90.k_loop_lagged`): FP8 with 128x128 B scales, BLOCK_N <=
    :data:`LAGGED_PROMOTION_MAX_BLOCK_N` for its number of waves, at least
    :data:`LAGGED_PROMOTION_MIN_STAGES` stages."""
    return (ab_dtype == "fp8" and b_scale_rows == 128 and stages >= LAGGED_PROMOTION_MIN_STAGES
            and block_n <= LAGGED_PROMOTION_MAX_BLOCK_N[tiles.num_waves(block_m)])


def _stage_bytes(
    block_m: int, block_n: int, b_scale_rows: int = 128, ab_dtype: str = "fp8", a_rows: int | None = None
) -> int:
    """Bytes TMA brings in per pipeline stage: A and B tiles (128-byte rows: BLOCK_K = 128 fp8 or 64
    bf16), and for fp8 the A rows' fp32 scales and, with per-row B scales, BLOCK_N fp32 B scales.
    ``a_rows``: rows of A's box (``GemmConfig.a_box_rows``), BLOCK_M by default."""
    a_rows = a_rows or block_m
    operands = (a_rows + block_n) * tiles.ROW_BYTES
    if ab_dtype == "bf16":
        return operands
    sfb_bytes = block_n * 4 if b_scale_rows == 1 else 0
    return operands + a_rows * 4 + sfb_bytes


def _sfb_stage_floats(block_n: int, b_scale_rows: int, ab_dtype: str) -> int:
    """Floats of B scales per stage in shared memory: per-row, BLOCK_N rounded up to 128 bytes; the
    tile's two 128x128 B scales (stored by the B-scale warp); none for bf16."""
    if ab_dtype != "fp8":
        return 0
    if b_scale_rows == 1:
        return scale_layouts.sfb_stage_floats(block_n)
    return scale_layouts.BLOCK_SFB_FLOATS


def _stage_smem_bytes(block_m: int, block_n: int, b_scale_rows: int = 128, ab_dtype: str = "fp8") -> int:
    """Shared memory of one pipeline stage: A and B tiles, and for fp8 BLOCK_M A scales and the
    B scales of :func:`_sfb_stage_floats`."""
    operands = (block_m + block_n) * tiles.ROW_BYTES
    if ab_dtype != "fp8":
        return operands
    return operands + (block_m + _sfb_stage_floats(block_n, b_scale_rows, ab_dtype)) * 4


def math_threads(block_m: int) -> int:
    """Threads of the math warpgroups: 64 rows of each 128-row wave per warpgroup."""
    return 128 * (min(block_m, tiles.WAVE_BLOCK_M) // tiles.ROWS_PER_MATH_WARPGROUP)


A_BOX_ROWS = (8, 16, 24, 32, 40, 48, 56)
"""Rows of A a dense 64-row tile may load per K block instead of BLOCK_M when M is at most that
(``GemmConfig.a_box_rows``). NOTES: TMA is slow on the rows of a box past the tensor's edge: at
N = 4096, K = 7168 with 64x32 tiles, M = 1 took 17.6 us, 16 16.3, 32 12.3, 48 11.3, 63 8.8 and
64 8.5 (H200, docs/notes.md). WGMMA still reads 64 rows; those past the box hold stale shared
memory, and the rows they make are never stored. Multiples of 8: the box is the first rows of
each stage's swizzled A tile, whose swizzle repeats every 8 rows of 128 bytes; a box that does
not divide the stage is its first rows all the same (:func:`layouts.smem.first_rows`).
Every 8 rows, so at most 7 rows of a box lie past M (below ~8 they cost nothing measurable)."""


ELECTED_RELEASE_MIN_BLOCK_N = 64
"""Tiles at least this wide release a stage by an elected arrive per math warp as well as by every
lane's (with 128x128 B scales; :meth:`Fp8GemmSm90.release_stage`). NOTES: compiled for sm_90a,
16-, 32- and 48-wide tiles keep the K loop's stage arithmetic on the uniform datapath with every
lane's arrive alone; 64-wide and wider need an ``ELECT`` in the loop for that (without it: 16
``R2UR`` per K block, and 256x128 spills). ``tests/test_compile.py`` (K-loop budgets, no
``R2UR``) and ``tests/test_layouts.py`` (the rule) check it."""


ROW_SHIFT_ALIGN = 4
"""Rows a moved tile's start is a multiple of (:meth:`Fp8GemmSm90.tile_row_shift`). NOTES: SFA is
M-major, and TMA's innermost coordinate must be 16-byte aligned: an SFA box starting at an odd
row stopped the kernel with an illegal instruction (H200)."""


SPLIT_K_CHOICES = (1, 2, 3, 4)
"""CTAs one tile can be split over along K (a cluster; each stores ``1 / split_k`` of the tile)."""
SPLIT_K_ROW_PAD = 4
"""Floats after each thread's row of a split-K reduction slot, so that the 16-byte reads of 8
consecutive threads hit different banks."""


def split_k_divides_tile(block_m: int, block_n: int, split_k: int) -> bool:
    """Whether ``split_k`` CTAs can share a tile's epilogue pieces evenly (each stores its share)."""
    return epilogue_pieces(block_m, block_n) % split_k == 0


def split_k_slot_floats(block_m: int, block_n: int, split_k: int) -> int:
    """Floats one thread receives from one CTA of a split-K cluster (its share of the tile), padded."""
    epi_m, epi_n = tiles.epilogue_tile(block_m, block_n)
    per_thread_piece = epi_m * epi_n // math_threads(block_m)
    return epilogue_pieces(block_m, block_n, split_k) * per_thread_piece + SPLIT_K_ROW_PAD


def split_k_bytes(block_m: int, block_n: int, split_k: int) -> int:
    """Shared memory that receives the partial tiles of a split-K cluster: one slot per CTA (this
    one's too), one padded row per math thread; 0 without split-K."""
    if split_k == 1:
        return 0
    return split_k * math_threads(block_m) * split_k_slot_floats(block_m, block_n, split_k) * 4


def _fixed_bytes(block_m: int, block_n: int, ab_dtype: str, split_k: int = 1) -> int:
    """Shared memory besides stages and epilogue: barriers, alignment, for bf16 the 128-byte scale
    buffer it does not use, and the split-K reduction slots."""
    unused_scales = scale_layouts.SMEM_ALIGN_FLOATS * 4 if ab_dtype == "bf16" else 0
    return BARRIER_BYTES + unused_scales + split_k_bytes(block_m, block_n, split_k)


def _piece_bytes(block_m: int, block_n: int, out_dtype: str = "bf16") -> int:
    """Bytes of one epilogue piece in shared memory."""
    epi_m, epi_n = tiles.epilogue_tile(block_m, block_n)
    return epi_m * epi_n * OUT_DTYPES[out_dtype].width // 8


def epilogue_pieces(block_m: int, block_n: int, split_k: int = 1) -> int:
    """Epilogue pieces (TMA stores) one CTA stores per tile: all of them, or with split-K its
    ``1 / split_k`` share."""
    epi_m, epi_n = tiles.epilogue_tile(block_m, block_n)
    return (block_m // epi_m) * (block_n // epi_n) // split_k


# The plain-Python shared-memory budget below takes the variant as ``b_scale_rows`` (128 or 1),
# ``out_dtype`` ("bf16" or "fp32"), ``ab_dtype`` ("fp8" or "bf16") and ``split_k``, the GemmConfig
# fields of the same names.


def epilogue_buffers(
    block_m: int, block_n: int, stages: int, b_scale_rows: int = 128, out_dtype: str = "bf16",
    ab_dtype: str = "fp8", split_k: int = 1,
) -> int:
    """Epilogue pieces staged in shared memory at once: all the CTA stores when they fit beside
    the mainloop stages, else as many as fit (at least 2, a ring)."""
    stage = _stage_smem_bytes(block_m, block_n, b_scale_rows, ab_dtype)
    free = SMEM_CAPACITY - _fixed_bytes(block_m, block_n, ab_dtype, split_k) - stages * stage
    fit = free // _piece_bytes(block_m, block_n, out_dtype)
    return min(epilogue_pieces(block_m, block_n, split_k), max(MIN_EPILOGUE_BUFFERS, fit))


def shared_memory_bytes(
    block_m: int, block_n: int, stages: int, b_scale_rows: int = 128, out_dtype: str = "bf16",
    ab_dtype: str = "fp8", split_k: int = 1,
) -> int:
    """Upper bound of the kernel's shared memory for a configuration (plain Python)."""
    buffers = epilogue_buffers(block_m, block_n, stages, b_scale_rows, out_dtype, ab_dtype, split_k)
    return (stages * _stage_smem_bytes(block_m, block_n, b_scale_rows, ab_dtype)
            + buffers * _piece_bytes(block_m, block_n, out_dtype)
            + _fixed_bytes(block_m, block_n, ab_dtype, split_k))


def _stages_beside(
    block_m: int, block_n: int, pieces: int, b_scale_rows: int, out_dtype: str, ab_dtype: str,
    split_k: int = 1,
) -> int:
    """Most pipeline stages that fit in 227 KB of shared memory beside ``pieces`` epilogue pieces."""
    fixed = _fixed_bytes(block_m, block_n, ab_dtype, split_k) + pieces * _piece_bytes(block_m, block_n, out_dtype)
    return (SMEM_CAPACITY - fixed) // _stage_smem_bytes(block_m, block_n, b_scale_rows, ab_dtype)


def whole_tile_epilogue_stages(
    block_m: int, block_n: int, b_scale_rows: int = 128, out_dtype: str = "bf16", ab_dtype: str = "fp8",
    split_k: int = 1,
) -> int:
    """Most pipeline stages that leave room to stage every epilogue piece the CTA stores at once."""
    pieces = epilogue_pieces(block_m, block_n, split_k)
    return _stages_beside(block_m, block_n, pieces, b_scale_rows, out_dtype, ab_dtype, split_k)


def max_stages(
    block_m: int, block_n: int, b_scale_rows: int = 128, out_dtype: str = "bf16", ab_dtype: str = "fp8",
    split_k: int = 1,
) -> int:
    """Most pipeline stages that fit beside two epilogue pieces (a ring)."""
    return _stages_beside(block_m, block_n, MIN_EPILOGUE_BUFFERS, b_scale_rows, out_dtype, ab_dtype, split_k)


class Fp8GemmSm90:
    """FP8 1x128/128x128-scaled GEMM: one TMA producer warpgroup, one or two math warpgroups.

    Roles (threads = 128 * (1 + BLOCK_M / 64)):

    - warpgroup 0, the **producer** (``setmaxnreg`` down to 40): warp 0's elected thread walks the
      tile schedule and, per K block, issues TMA loads of the A tile, the B tile and the tile's
      BLOCK_M scales of A (with per-row B scales, its BLOCK_N scales of B too) into one stage of
      the mainloop pipeline. With 128x128 B scales, warp 1 (the **B-scale** warp) walks the same
      schedule and stores the tile's two B scales of each K block into the stage
      (:meth:`load_b_scales`). The other warps only give registers back. For few rows A (and
      SFA) may come in a box of ``a_box_rows`` rows (:data:`A_BOX_ROWS`); with
      ``shift_last_m_tile`` the last M tile's A, SFA and D boxes move up to end at row M
      (:meth:`tile_row_shift`), so no box reaches far past the tensor's edge.
    - warpgroups 1.., the **math** warpgroups (``setmaxnreg`` up; 64 rows of each 128-row wave):
      per K block and wave, 4 x ``wgmma m64nNk32`` into a fresh fp32 ``partial``, wait, then the
      promotion stage (:func:`cute_gemm.promotion.promote`) adds ``partial * sfa * sfb`` to the
      wave's accumulator; the stage is released after the last wave's WGMMAs. BLOCK_M = 256 runs
      two waves (DeepGEMM's structure: two accumulators), so B is loaded once for 256 rows. Tiles
      up to :data:`LAGGED_PROMOTION_MAX_BLOCK_N` wide with 128x128 B scales and 3 stages or more
      keep two partials and promote each wave while the next one's WGMMAs run
      (:meth:`k_loop_lagged`; the math warps then hold two stages); the others promote in place
      with one partial. After the last K block: the **epilogue** converts to bf16, writes pieces
      of ``(128 or BLOCK_M, 32 or 16)`` to swizzled smem with stmatrix, and one warp stores each
      by TMA.
      Variants: with per-row B scales (``b_scale_rows=1``) the promotion multiplies each element by
      its row's and its column's scale (:func:`cute_gemm.promotion.promote_per_column`); an fp32
      D is written to smem with plain stores; ``accumulate`` stores by TMA reduce-add (D += tile).

    Pipelines:

    - ``mainloop`` (``PipelineTmaAsync``, ``stages`` deep): producer arrive count 1, or 2 with
      128x128 B scales: the TMA thread's arrive + tx bytes (A + B + SFA (+ per-row SFB) bytes of a
      stage) and the B-scale warp's arrive after its stores; consumer arrive count = math warps x (cluster_m + cluster_n
      - 1): one elected lane per math warp releases a stage in its own CTA and in the peer that
      multicast into it.
    - ``epilogue store`` (``PipelineTmaStore``, 2 buffers): the storing warp commits a TMA store
      per piece and waits until a buffer is free before the next; math warps sync on named
      barrier 1 around each piece. Tiles with rows that must not be written (a masked expert's
      last tile, a contiguous tile ending in padding) are stored by all math threads with per-row
      predicates instead of TMA.
    - split-K only (``split_k`` CTAs per tile, one cluster along x; :meth:`reduce_split_k`): two
      mbarriers per CTA. ``split_k_full``: arrive count 1 (math thread 0's arrive + expect_tx of
      ``split_k`` x threads x share x 4 bytes), completed by the ``st.async`` writes of every CTA of
      the cluster into this CTA's slots. ``split_k_empty``: arrive count ``split_k`` (math thread 0
      of every owner, remotely, once it has read its slots); a CTA waits on it before sending the
      next tile's partials. The cluster synchronises once after barrier init and once before exit.

    Kinds (:class:`schedulers.raster.GemmKind`): ``NORMAL`` (dense, entry ``__call__``, optional
    2-CTA cluster or split-K), ``M_GROUPED_CONTIGUOUS`` (or ``_PSUM``) and ``M_GROUPED_MASKED`` (entry :meth:`grouped`; B and
    SFB carry an expert mode, and for masked A, SFA and D too; bf16 out, 128x128 B scales), and
    ``K_GROUPED`` (entry :meth:`grouped`: A, B and their per-row scales stacked along K, D with an
    expert mode, fp32; each tile reads its expert's K blocks). Both roles walk the same
    :class:`schedulers.persistent.PersistentTileScheduler` sequence, so no tile information passes
    between them.
    """

    AB_DTYPE = "fp8"
    """Operand type; :class:`cute_gemm.kernels.bf16_gemm_sm90.Bf16GemmSm90` reuses every role with
    bf16 operands and no scales."""

    def __init__(
        self,
        block_m: int,
        block_n: int,
        stages: int,
        cluster_m: int = 1,
        cluster_n: int = 1,
        raster_group: int = 16,
        raster_along_m: bool = True,
        kind: GemmKind = GemmKind.NORMAL,
        split_k: int = 1,
        b_scale_rows: int = 128,
        out_dtype: str = "bf16",
        accumulate: bool = False,
        ab_dtype: str = "fp8",
        a_major: str = "k",
        b_major: str = "k",
        a_box_rows: int | None = None,
        shift_last_m_tile: bool = False,
    ):
        if ab_dtype != self.AB_DTYPE:
            raise ValueError(f"{type(self).__name__} takes ab_dtype={self.AB_DTYPE!r}, got {ab_dtype!r}")
        for name, major in (("a_major", a_major), ("b_major", b_major)):
            if major not in ("k", "mn"):
                raise ValueError(f"{name} must be 'k' or 'mn', got {major!r}")
        # NOTES: Hopper's WGMMA transposes operands read from shared memory for 16-bit types only.
        if (a_major, b_major) != ("k", "k") and ab_dtype != "bf16":
            raise ValueError("FP8 operands must be K-major (WGMMA reads FP8 K-major only)")
        self.a_mn_major, self.b_mn_major = a_major == "mn", b_major == "mn"
        tiles.check_tile(block_m, block_n, b_scale_rows)
        if (cluster_m, cluster_n) not in ((1, 1), (2, 1), (1, 2)):
            raise ValueError(f"cluster (m, n) must be (1, 1), (2, 1) or (1, 2), got {(cluster_m, cluster_n)}")
        self.kind = GemmKind(kind)
        if self.kind != GemmKind.NORMAL and (cluster_m, cluster_n) != (1, 1):
            raise ValueError("clusters are only supported for the dense (NORMAL) kind so far")
        if a_box_rows is not None:
            if a_box_rows not in A_BOX_ROWS or a_box_rows >= block_m:
                raise ValueError(f"a_box_rows must be one of {A_BOX_ROWS} below block_m={block_m}, got {a_box_rows}")
            if self.kind != GemmKind.NORMAL or (cluster_m, cluster_n) != (1, 1) or a_major != "k":
                raise ValueError("a_box_rows is for dense K-major kernels without a cluster")
        # Rows of A (and SFA) TMA loads per K block: the tile's, or a smaller box for tiny M.
        self.a_rows = a_box_rows or block_m
        if self.kind != GemmKind.NORMAL:
            choices = (tiles.MASKED_BLOCK_M_CHOICES if self.kind == GemmKind.M_GROUPED_MASKED
                       else tiles.GROUPED_BLOCK_M_CHOICES)
            if block_m not in choices:
                raise ValueError(f"block_m must be one of {choices} for {self.kind.name}, got {block_m}")
        if out_dtype not in OUT_DTYPES:
            raise ValueError(f"out_dtype must be one of {tuple(OUT_DTYPES)}, got {out_dtype!r}")
        if accumulate and out_dtype != "fp32":
            raise ValueError("accumulate (D += A @ B^T) needs out_dtype='fp32'")
        m_grouped = self.kind in M_GROUPED_KINDS
        if m_grouped and (b_scale_rows, out_dtype) != (128, "bf16"):
            raise ValueError("the m-grouped kinds take 128x128 B scales and a bf16 output")
        if self.kind == GemmKind.K_GROUPED and (b_scale_rows, out_dtype) != (1, "fp32"):
            raise ValueError("the k-grouped kind takes per-row (1x128) B scales and an fp32 output")
        if split_k not in SPLIT_K_CHOICES:
            raise ValueError(f"split_k must be one of {SPLIT_K_CHOICES}, got {split_k}")
        if split_k > 1:
            if self.kind != GemmKind.NORMAL or (cluster_m, cluster_n) != (1, 1) or ab_dtype != "fp8":
                raise ValueError("split_k > 1 needs the dense FP8 kind without another cluster")
            if not split_k_divides_tile(block_m, block_n, split_k):
                raise ValueError(
                    f"split_k={split_k} must divide the {epilogue_pieces(block_m, block_n)} epilogue "
                    f"pieces of a {block_m}x{block_n} tile (each CTA stores its share)"
                )
        self.split_k = split_k
        # The cluster the launch asks for: split-K CTAs go along x (no other cluster then).
        self.launch_cluster_mn = (cluster_m * split_k, cluster_n)
        variant = dict(b_scale_rows=b_scale_rows, out_dtype=out_dtype, ab_dtype=ab_dtype, split_k=split_k)
        if not 2 <= stages <= max_stages(block_m, block_n, **variant):
            raise ValueError(
                f"stages must be in [2, {max_stages(block_m, block_n, **variant)}] for a "
                f"{block_m}x{block_n} tile ({variant}), got {stages}"
            )
        self.block_m, self.block_n, self.stages = block_m, block_n, stages
        self.b_scale_rows, self.accumulate = b_scale_rows, accumulate
        self.scaled = ab_dtype == "fp8"
        self.sfb_per_row = self.scaled and b_scale_rows == 1
        # 128x128 B scales: stored into the stages by the B-scale warp (:meth:`load_b_scales`)
        self.block_b_scales = self.scaled and not self.sfb_per_row
        if self.sfb_per_row and cluster_m > 1 and (block_n // cluster_m) % scale_layouts.SMEM_ALIGN_FLOATS:
            # Each CTA of the pair loads half of the tile's B scales and multicasts it: the half
            # must start 128-byte aligned in shared memory.
            raise ValueError(f"per-row B scales with a {cluster_m}-CTA cluster along M need block_n a "
                             f"multiple of {cluster_m * scale_layouts.SMEM_ALIGN_FLOATS}, got {block_n}")
        self.m_grouped = m_grouped
        # D has an expert mode ((M_max, N, G) masked, (M, N, G) k-grouped): tiles index it too.
        self.d_per_expert = self.kind in (GemmKind.M_GROUPED_MASKED, GemmKind.K_GROUPED)
        # A cluster of 2 CTAs along M shares (multicasts) B; along N it shares A and SFA.
        self.cluster_mn = (cluster_m, cluster_n)
        # A math warp releases a stage by one elected arrive, and with 128x128 B scales also by
        # every lane's arrive (:meth:`release_stage`); tiles under 64 wide without a cluster need
        # only the latter.
        self.elected_release = not (
            self.block_b_scales and self.cluster_mn == (1, 1) and block_n < ELECTED_RELEASE_MIN_BLOCK_N
        )
        self.raster_group, self.raster_along_m = raster_group, raster_along_m
        self.tile_shape_mnk = (block_m, block_n, tiles.block_k(ab_dtype))
        self.epi_tile = tiles.epilogue_tile(block_m, block_n)
        # NOTES: when every piece of the tile has its own smem buffer, the epilogue waits once for
        # the previous tile's stores and syncs the math warps twice per tile; a ring of fewer
        # buffers syncs twice per piece and waits for a store before reusing its buffer.
        self.epi_buffers = epilogue_buffers(block_m, block_n, stages, **variant)
        self.store_pieces = epilogue_pieces(block_m, block_n, split_k)  # pieces this CTA stores
        self.whole_tile_epilogue = self.epi_buffers >= self.store_pieces

        # A 256-row tile runs two 128-row waves per K block on the same two math warpgroups.
        self.num_waves = tiles.num_waves(block_m)
        self.wave_m = block_m // self.num_waves
        self.num_math_warpgroups = self.wave_m // tiles.ROWS_PER_MATH_WARPGROUP
        self.num_math_threads = math_threads(block_m)
        self.threads_per_cta = 128 + self.num_math_threads
        # NOTES: 40 + n * R registers per thread of each warpgroup must fit 64K: 232 for two math
        # warpgroups (DeepGEMM's choice), 240 for one.
        self.producer_registers = 40
        self.math_registers = 232 if self.num_math_warpgroups == 2 else 240
        self.epilogue_barrier = pipeline.NamedBarrier(barrier_id=1, num_threads=self.num_math_threads)
        self.store_warp = 4  # first warp of the first math warpgroup
        # Narrow enough FP8 tiles promote each wave while the next one runs (a second partial).
        self.lag_promotion = lagged_promotion(block_m, block_n, stages, b_scale_rows, ab_dtype)
        # NOTES: a tile whose split column depends on the tile has one K loop per candidate column
        # (``tile_k_loop``). With 4 or 8 candidates the unrolled copies made the kernel 72-163 KB of
        # SASS (128x112 163 KB, 256x112 161 KB, 256x96 137 KB); rolled, 100, 64 and 90 KB at about
        # the same instructions per K block. Rolled on the H200 (same process, two rounds): 128x112
        # 1011 -> 1167 TFLOPS at 256x7168x7168, masked 256x112 921 -> 1045 (1x1024x7168x2048) and
        # 786 -> 975 (4x256), 256x96 1232 -> 1272 (4096x2112x7168); 128x144 1184 -> 1159, dense
        # 256x112 1309 -> 1280, 128x160 and 128x96 within 1%. The rule counts split columns, so
        # 16- and 32-wide tiles (one K loop: their split is static) are rolled too: 66 instead of
        # 65 instructions per K block (64x32, 128x32); that is how they were measured since.
        self.unroll_k_loops = not (ab_dtype == "fp8" and b_scale_rows == 128
                                   and len(split_candidates(block_n)) > 2)
        self.scale_slots = 2 if self.lag_promotion else self.num_waves
        # NOTES: a TMA box that reaches past row M is slow: every K block of a tile whose A box
        # holds fewer valid rows costs more (N = 4096, K = 7168, 128x32: M = 65 25.2 us, 96 19.2,
        # 128 11.6; H200, docs/notes.md), as DeepGEMM's maintainers found too. So with
        # ``shift_last_m_tile`` the last M tile of a dense GEMM moves up to end at row M when
        # M >= BLOCK_M (:meth:`tile_row_shift`): its boxes stay in bounds and the rows it shares
        # with the tile above are written twice with the same values. Not where a row may be
        # written only once (accumulating stores, split-K shares) or where a cluster pairs M
        # tiles. A compile-time choice: the per-tile shift cost 1-2% on short kernels whose M is a
        # multiple of BLOCK_M (H200), so the heuristic asks for it only when M is not.
        if shift_last_m_tile and not (self.kind == GemmKind.NORMAL and not accumulate and split_k == 1
                                      and self.cluster_mn == (1, 1)):
            raise ValueError("shift_last_m_tile is for dense kernels without accumulation, split-K or a cluster")
        self.shift_last_m_tile = shift_last_m_tile

    # ------------------------------------------------------------------------------------------
    # host side
    # ------------------------------------------------------------------------------------------
    @cute.jit
    def __call__(
        self,
        a: cute.Tensor,  # (M, K) fp8, K-major
        b: cute.Tensor,  # (N, K) fp8, K-major
        d: cute.Tensor,  # (M, N) bf16 or fp32, N-major
        sfa: cute.Tensor,  # (M, ceil(K/128)) fp32, M-major, column stride % 4 == 0
        sfb: cute.Tensor,  # (ceil(N/128), ceil(K/128)) fp32; per-row: (N, ceil(K/128)), N-major
        num_sms: Int32,
        stream,
    ):
        """Dense launch (``GemmKind.NORMAL``)."""
        self._launch(a, b, d, sfa, sfb, sfb, num_sms, stream)

    @cute.jit
    def grouped(
        self,
        a: cute.Tensor,  # contiguous: (M_sum, K); masked: (M_max, K, G); k-grouped: (M, K_sum)
        b: cute.Tensor,  # (N, K, G); k-grouped: (N, K_sum)
        d: cute.Tensor,  # contiguous: (M_sum, N); masked: (M_max, N, G); k-grouped: (M, N, G) fp32
        sfa: cute.Tensor,  # contiguous: (M_sum, Kb); masked: (M_max, Kb, G); k-grouped: (M, Kb_sum)
        sfb: cute.Tensor,  # (ceil(N/128), Kb, G); k-grouped: (N, Kb_sum), N-major
        group_info: cute.Tensor,  # int32 m_indices (M_sum,), psum (G,), masked_m (G,) or ks (G,)
        num_sms: Int32,
        stream,
    ):
        """Grouped launch (``M_GROUPED_CONTIGUOUS`` / ``M_GROUPED_MASKED`` / ``K_GROUPED``)."""
        self._launch(a, b, d, sfa, sfb, group_info, num_sms, stream)

    @cute.jit
    def _launch(self, a, b, d, sfa, sfb, group_info, num_sms: Int32, stream):
        """Build layouts, TMA atoms and shared storage for the tensors, then launch the kernel.

        ``group_info`` is unused by the dense kind (it receives ``sfb`` as a placeholder).
        """
        bM, bN, bK = self.tile_shape_mnk
        tiled_mma = sm90_utils.make_trivial_tiled_mma(
            a.element_type,
            b.element_type,
            OperandMajorMode.MN if self.a_mn_major else OperandMajorMode.K,
            OperandMajorMode.MN if self.b_mn_major else OperandMajorMode.K,
            Float32,
            atom_layout_mnk=(self.num_math_warpgroups, 1, 1),
            tiler_mn=(64, bN),
        )
        # (bM, bK, stages), (bN, bK, stages), (epi_m, epi_n, 2)
        a_smem_layout = smem_layouts.operand_smem_layout(a.element_type, bM, bK, self.stages, self.a_mn_major)
        # (a_rows, bK) and (a_rows, 1): the first rows of a stage, where TMA writes A and SFA
        a_box_layout = cute.slice_(
            smem_layouts.operand_smem_layout(a.element_type, self.a_rows, bK, 1, self.a_mn_major), (None, None, 0)
        )
        sfa_box_layout = cute.slice_(scale_layouts.sfa_smem_layout(self.a_rows, 1), (None, None, 0))
        b_smem_layout = smem_layouts.operand_smem_layout(b.element_type, bN, bK, self.stages, self.b_mn_major)
        epi_smem_layout = smem_layouts.epilogue_smem_layout(d.element_type, self.epi_tile, self.epi_buffers)
        sfb_smem_layout = scale_layouts.sfb_smem_layout(bN, self.stages)

        cm, cn = self.cluster_mn
        tma_atom_a, tma_a = cpasync.make_tiled_tma_atom(
            self._g2s_op(cn), a, a_box_layout, (self.a_rows, bK), num_multicast=cn
        )
        tma_atom_b, tma_b = cpasync.make_tiled_tma_atom(
            self._g2s_op(cm), b, cute.slice_(b_smem_layout, (None, None, 0)), (bN, bK), num_multicast=cm
        )
        tma_atom_sfa, tma_sfa = None, None
        if cutlass.const_expr(self.scaled):
            tma_atom_sfa, tma_sfa = cpasync.make_tiled_tma_atom(
                self._g2s_op(cn), sfa, sfa_box_layout, (self.a_rows, 1),
                num_multicast=cn,
            )
        # Per-row B scales travel with B (shared along M, like B).
        tma_atom_sfb, tma_sfb = None, None
        if cutlass.const_expr(self.sfb_per_row):
            tma_atom_sfb, tma_sfb = cpasync.make_tiled_tma_atom(
                self._g2s_op(cm), sfb, cute.slice_(sfb_smem_layout, (None, None, 0)), (bN, 1),
                num_multicast=cm,
            )
        # NOTES: accumulating stores with TMA reduce-add: D += tile, one read-modify-write in L2,
        # deterministic because every element is added exactly once.
        d_store_op = cpasync.CopyBulkTensorTileS2GOp()
        if cutlass.const_expr(self.accumulate):
            d_store_op = cpasync.CopyReduceBulkTensorTileS2GOp(cute.ReductionKind.ADD)
        tma_atom_d, tma_d = cpasync.make_tiled_tma_atom(
            d_store_op,
            d,
            cute.slice_(epi_smem_layout, (None, None, 0)),
            self.epi_tile,
        )

        @cute.struct
        class SharedStorage:
            mainloop_barriers: cute.struct.MemRange[cutlass.Int64, self.stages * 2]
            sA: cute.struct.Align[
                cute.struct.MemRange[a.element_type, cute.cosize(a_smem_layout)], 1024
            ]
            sB: cute.struct.Align[
                cute.struct.MemRange[b.element_type, cute.cosize(b_smem_layout)], 1024
            ]
            sD: cute.struct.Align[
                cute.struct.MemRange[d.element_type, cute.cosize(epi_smem_layout)], 1024
            ]
            # SFA stages, then SFB stages (per-row B scales, or the tile's two 128x128 B scales)
            sScales: cute.struct.Align[cute.struct.MemRange[Float32, self.scale_floats()], 128]
            if cutlass.const_expr(self.split_k > 1):
                # partials received (full, tx-counted) and slots free again (empty)
                split_k_barriers: cute.struct.MemRange[cutlass.Int64, 2]
                # (threads x slot floats, split_k) partial shares received from the cluster
                sRed: cute.struct.Align[cute.struct.MemRange[Float32, self.split_k_floats()], 16]

        self.shared_storage = SharedStorage

        # Upper bound of the units (masked: every expert full); the launch never exceeds the SMs.
        num_units = cute.ceil_div(d.shape[0], bM * cm) * cute.ceil_div(d.shape[1], bN * cn)
        if cutlass.const_expr(self.d_per_expert):
            num_units = num_units * d.shape[2]
        cluster_x = self.launch_cluster_mn[0]
        num_clusters = cutlass.max(cutlass.min(num_units, num_sms // (cluster_x * cn)), 1)
        divisors = make_raster_divisors(
            self.kind, cute.ceil_div(d.shape[0], bM), cute.ceil_div(d.shape[1], bN), self.raster_group,
            self.raster_along_m, self.cluster_mn,
        )
        self.kernel(
            tiled_mma,
            tma_atom_a, tma_a,
            tma_atom_b, tma_b,
            tma_atom_sfa, tma_sfa,
            tma_atom_sfb, tma_sfb,
            tma_atom_d, tma_d, d,
            sfb, group_info,
            a_smem_layout, b_smem_layout, epi_smem_layout,
            divisors,
        ).launch(
            grid=[num_clusters * cluster_x, cn, 1],
            block=[self.threads_per_cta, 1, 1],
            cluster=[cluster_x, cn, 1],
            min_blocks_per_mp=1,
            stream=stream,
        )

    # ------------------------------------------------------------------------------------------
    # device side
    # ------------------------------------------------------------------------------------------
    @cute.kernel
    def kernel(
        self,
        tiled_mma: cute.TiledMma,
        tma_atom_a: cute.CopyAtom,
        mA_mk: cute.Tensor,
        tma_atom_b: cute.CopyAtom,
        mB_nk: cute.Tensor,
        tma_atom_sfa: cute.CopyAtom,
        mSFA_mk: cute.Tensor,
        tma_atom_sfb,  # per-row B scales: cute.CopyAtom, else None
        mSFB_tma,  # per-row B scales: the TMA view of SFB, else None
        tma_atom_d: cute.CopyAtom,
        mD_mn: cute.Tensor,
        d_real: cute.Tensor,
        mSFB_nk: cute.Tensor,
        group_info: cute.Tensor,
        a_smem_layout: cute.ComposedLayout,
        b_smem_layout: cute.ComposedLayout,
        epi_smem_layout: cute.ComposedLayout,
        raster_divisors: tuple,
    ):
        bM, bN, bK = self.tile_shape_mnk
        tidx, _, _ = cute.arch.thread_idx()
        warp_idx = cute.arch.make_warp_uniform(cute.arch.warp_idx())
        warpgroup_idx = cute.arch.make_warp_uniform(tidx // 128)

        if warp_idx == 0:
            cpasync.prefetch_descriptor(tma_atom_a)
            cpasync.prefetch_descriptor(tma_atom_b)
            if cutlass.const_expr(self.scaled):
                cpasync.prefetch_descriptor(tma_atom_sfa)
            if cutlass.const_expr(self.sfb_per_row):
                cpasync.prefetch_descriptor(tma_atom_sfb)
            cpasync.prefetch_descriptor(tma_atom_d)

        cta_layout_mnk = cute.make_layout((*self.cluster_mn, 1))
        cluster_coord_mnk = (0, 0, 0)  # split-K CTAs share no operand
        if cutlass.const_expr(self.split_k == 1):
            cluster_coord_mnk = cta_layout_mnk.get_flat_coord(
                cute.arch.make_warp_uniform(cute.arch.block_idx_in_cluster())
            )
        storage = SmemAllocator().allocate(self.shared_storage)
        mainloop = self.make_mainloop_pipeline(storage.mainloop_barriers.data_ptr())
        split_k_full, split_k_empty, sRed = None, None, None
        if cutlass.const_expr(self.split_k > 1):
            split_k_full = storage.split_k_barriers.data_ptr()
            split_k_empty = split_k_full + 1
            sRed = storage.sRed.data_ptr()
            if warp_idx == 0:
                with cute.arch.elect_one():
                    cute.arch.mbarrier_init(split_k_full, 1)
                    cute.arch.mbarrier_init(split_k_empty, self.split_k)
        # (the barriers of every CTA are initialised before any peer signals them)
        pipeline.pipeline_init_arrive(cluster_shape_mn=self.launch_cluster_mn, is_relaxed=True)

        # (bM, bK, stages), (bN, bK, stages), (epi_m, epi_n, 2), (bM, 1, stages)
        sA = storage.sA.get_tensor(a_smem_layout.outer, swizzle=a_smem_layout.inner)
        sB = storage.sB.get_tensor(b_smem_layout.outer, swizzle=b_smem_layout.inner)
        sD = storage.sD.get_tensor(epi_smem_layout.outer, swizzle=epi_smem_layout.inner)
        sSFA = None
        if cutlass.const_expr(self.scaled):
            sSFA = cute.make_tensor(storage.sScales.data_ptr(), scale_layouts.sfa_smem_layout(bM, self.stages))
        # per-row B scales: (bN, 1, stages); 128x128 B scales: (2, stages), stored by the B-scale warp
        sSFB = None
        if cutlass.const_expr(self.scaled):
            sfb_layout = (scale_layouts.sfb_smem_layout(bN, self.stages) if self.sfb_per_row
                          else scale_layouts.block_sfb_smem_layout(self.stages))
            sSFB = cute.make_tensor(storage.sScales.data_ptr() + bM * self.stages, sfb_layout)

        num_k_blocks = cute.ceil_div(mA_mk.shape[1], bK)
        pipeline.pipeline_init_wait(cluster_shape_mn=self.launch_cluster_mn)

        if warpgroup_idx == 0:
            cute.arch.setmaxregister_decrease(self.producer_registers)
            if warp_idx == 0:
                self.load(
                    group_info, raster_divisors, num_k_blocks, mainloop, cta_layout_mnk,
                    cluster_coord_mnk,
                    tma_atom_a, mA_mk, sA,
                    tma_atom_b, mB_nk, sB,
                    tma_atom_sfa, mSFA_mk, sSFA,
                    tma_atom_sfb, mSFB_tma, sSFB,
                    mD_mn,
                )
            if cutlass.const_expr(self.block_b_scales):
                if warp_idx == 1:
                    self.load_b_scales(group_info, raster_divisors, num_k_blocks, mainloop, mSFB_nk, sSFB, mD_mn)
        else:
            cute.arch.setmaxregister_increase(self.math_registers)
            self.mma_and_epilogue(
                group_info, raster_divisors, num_k_blocks, mainloop, tiled_mma,
                sA, sB, sSFA, sSFB,
                tma_atom_d, mD_mn, d_real, sD, tidx - 128, warp_idx,
                sRed, split_k_full, split_k_empty,
            )
        if cutlass.const_expr(self.split_k > 1):
            # NOTES: a CTA's shared memory must outlive its peers' DSMEM writes and arrives into
            # it: nobody exits before the whole cluster is done.
            cute.arch.cluster_arrive()
            cute.arch.cluster_wait()

    def scale_floats(self) -> int:
        """Floats of the scale buffers: SFA's stages, then SFB's (per-row: 128-byte aligned stages;
        128x128 blocks: two floats per stage); one 128-byte block when there are no scales (bf16)."""
        if not self.scaled:
            return scale_layouts.SMEM_ALIGN_FLOATS
        return (self.block_m + _sfb_stage_floats(self.block_n, self.b_scale_rows, self.AB_DTYPE)) * self.stages

    def split_k_floats(self) -> int:
        """Floats of the split-K reduction slots (:func:`split_k_bytes`)."""
        return split_k_bytes(self.block_m, self.block_n, self.split_k) // 4

    def make_mainloop_pipeline(self, barrier_ptr) -> pipeline.PipelineTmaAsync:
        """The A/B/SFA pipeline: a stage is full once the TMA thread (and, with 128x128 B scales,
        the B-scale warp) has arrived and its bytes have landed; it is free once every math warp of
        every CTA that received it by multicast has released it (one arrive per warp per such CTA,
        plus, with 128x128 B scales, one per math thread of this CTA: :meth:`release_stage`)."""
        cm, cn = self.cluster_mn
        releases = (cm + cn - 1) * self.num_math_threads // 32 if self.elected_release else 0
        if self.block_b_scales:
            releases += self.num_math_threads
        return pipeline.PipelineTmaAsync.create(
            barrier_storage=barrier_ptr,
            num_stages=self.stages,
            producer_group=pipeline.CooperativeGroup(pipeline.Agent.Thread, 2 if self.block_b_scales else 1),
            consumer_group=pipeline.CooperativeGroup(pipeline.Agent.Thread, releases),
            tx_count=_stage_bytes(self.block_m, self.block_n, self.b_scale_rows, self.AB_DTYPE, self.a_rows),
            cta_layout_vmnk=cute.make_layout((1, cm, cn, 1)),
            defer_sync=True,
        )

    def make_scheduler(
        self, mD: cute.Tensor, num_k_blocks: Int32, group_info: cute.Tensor, raster_divisors: tuple
    ) -> PersistentTileScheduler:
        """The tile schedule both roles walk (:mod:`schedulers.persistent`); ``raster_divisors``
        come from the host (:func:`schedulers.persistent.make_raster_divisors`)."""
        bM, bN, _ = self.tile_shape_mnk
        return PersistentTileScheduler(
            self.kind,
            cute.ceil_div(mD.shape[0], bM),
            cute.ceil_div(mD.shape[1], bN),
            num_k_blocks,
            bM,
            self.raster_group,
            self.raster_along_m,
            self.cluster_mn,
            group_info if self.kind != GemmKind.NORMAL else None,
            self.split_k,
            raster_divisors,
        )

    @cute.jit
    def real_tile(self, d: cute.Tensor, tile) -> cute.Tensor:
        """The (bM, bN) tile of the output as memory (``d`` is ``(M_max, N, G)`` or ``(M_sum, N)``).

        Its extents are what is left of ``d`` from the tile's first row and column, so the
        predicated store can bound both against them.
        """
        bM, bN = self.block_m, self.block_n
        row0, col0 = tile.m_block * bM, tile.n_block * bN
        base = d
        if cutlass.const_expr(self.kind == GemmKind.M_GROUPED_MASKED):
            base = d[(None, None, tile.expert)]
        return cute.make_tensor(
            base.iterator + row0 * base.stride[0] + col0,
            cute.make_layout((base.shape[0] - row0, base.shape[1] - col0), stride=(base.stride[0], 1)),
        )

    @staticmethod
    def _g2s_op(num_multicast: int):
        if num_multicast == 1:
            return cpasync.CopyBulkTensorTileG2SOp()
        return cpasync.CopyBulkTensorTileG2SMulticastOp()

    @cute.jit
    def load(
        self,
        group_info: cute.Tensor,
        raster_divisors: tuple,
        num_k_blocks: Int32,
        mainloop: pipeline.PipelineTmaAsync,
        cta_layout_mnk: cute.Layout,
        cluster_coord_mnk,
        tma_atom_a: cute.CopyAtom, mA_mk: cute.Tensor, sA: cute.Tensor,
        tma_atom_b: cute.CopyAtom, mB_nk: cute.Tensor, sB: cute.Tensor,
        tma_atom_sfa: cute.CopyAtom, mSFA_mk: cute.Tensor, sSFA: cute.Tensor,
        tma_atom_sfb, mSFB_tma, sSFB,
        mD_mn: cute.Tensor,
    ):
        """Producer role: per tile, per K block, TMA A, B, SFA (and per-row SFB) into the next free
        stage (the 128x128 B scales are the B-scale warp's, :meth:`load_b_scales`).

        In a cluster each CTA loads its slice of the shared operand and multicasts it to its peer.
        """
        bM, bN, bK = self.tile_shape_mnk
        cm, cn = self.cluster_mn
        # A (and SFA) is shared along N; B along M.
        a_mcast_mask = cute.make_layout_image_mask(cta_layout_mnk, cluster_coord_mnk, mode=1) if cn > 1 else 0
        b_mcast_mask = cute.make_layout_image_mask(cta_layout_mnk, cluster_coord_mnk, mode=0) if cm > 1 else 0
        a_cta_layout = cute.make_layout(cn)
        b_cta_layout = cute.make_layout(cm)
        # (bN, bK, RestN, RestK[, G])
        gB = cute.local_tile(mB_nk, (bN, bK), (None, None) + (None,) * (cute.rank(mB_nk) - 2))
        # ((atom), stages) and ((atom), RestM, RestK[, G]) of A, SFA and B
        tAsA, tAgA, tSsSFA, tSgSFA = self.partition_a_rows(
            None, tma_atom_a, mA_mk, sA, tma_atom_sfa, mSFA_mk, sSFA, cluster_coord_mnk[1], a_cta_layout
        )
        tBsB, tBgB = cpasync.tma_partition(
            tma_atom_b, cluster_coord_mnk[0], b_cta_layout,
            cute.group_modes(sB, 0, 2), cute.group_modes(gB, 0, 2),
        )
        tSsSFB, tSgSFB = None, None
        if cutlass.const_expr(self.sfb_per_row):
            # (bN, 1, RestN, RestK) -> ((atom), stages) and ((atom), RestN, RestK)
            gSFB = cute.local_tile(mSFB_tma, (bN, 1), (None, None))
            tSsSFB, tSgSFB = cpasync.tma_partition(
                tma_atom_sfb, cluster_coord_mnk[0], b_cta_layout,
                cute.group_modes(sSFB, 0, 2), cute.group_modes(gSFB, 0, 2),
            )
        state = pipeline.make_pipeline_state(pipeline.PipelineUserType.Producer, self.stages)
        sched = self.make_scheduler(mD_mn, num_k_blocks, group_info, raster_divisors)
        unit = sched.first_unit()
        num_units = sched.num_units()
        while unit < num_units:
            tile = sched.tile(unit)
            if tile.is_valid:
                tile_tAgA, tile_tSgSFA = tAgA, tSgSFA
                if cutlass.const_expr(self.shift_last_m_tile):
                    row_shift = self.tile_row_shift(tile, mA_mk.shape[0])
                    _, tile_tAgA, _, tile_tSgSFA = self.partition_a_rows(
                        row_shift, tma_atom_a, mA_mk, sA, tma_atom_sfa, mSFA_mk, sSFA,
                        cluster_coord_mnk[1], a_cta_layout,
                    )
                # (atom, RestK) slices of this tile; grouped operands also index the expert.
                a_coord = (None, tile.m_block, None)
                b_coord = (None, tile.n_block, None)
                if cutlass.const_expr(self.kind == GemmKind.M_GROUPED_MASKED):
                    a_coord = a_coord + (tile.expert,)
                if cutlass.const_expr(self.m_grouped):
                    b_coord = b_coord + (tile.expert,)
                tAgA_k, tBgB_k = tile_tAgA[a_coord], tBgB[b_coord]
                tSgSFA_k = None
                if cutlass.const_expr(self.scaled):
                    tSgSFA_k = tile_tSgSFA[a_coord]
                for tile_k_block in range(tile.num_k_blocks):
                    k_block = tile.k_block0 + tile_k_block
                    mainloop.producer_acquire(state)
                    barrier = mainloop.producer_get_barrier(state)
                    cute.copy(tma_atom_a, tAgA_k[(None, k_block)], tAsA[(None, state.index)],
                              tma_bar_ptr=barrier, mcast_mask=a_mcast_mask)
                    cute.copy(tma_atom_b, tBgB_k[(None, k_block)], tBsB[(None, state.index)],
                              tma_bar_ptr=barrier, mcast_mask=b_mcast_mask)
                    if cutlass.const_expr(self.scaled):
                        cute.copy(tma_atom_sfa, tSgSFA_k[(None, k_block)], tSsSFA[(None, state.index)],
                                  tma_bar_ptr=barrier, mcast_mask=a_mcast_mask)
                    if cutlass.const_expr(self.sfb_per_row):
                        cute.copy(tma_atom_sfb, tSgSFB[(None, tile.n_block, k_block)],
                                  tSsSFB[(None, state.index)], tma_bar_ptr=barrier, mcast_mask=b_mcast_mask)
                    mainloop.producer_commit(state)
                    state.advance()
            unit += sched.stride
        mainloop.producer_tail(state)

    @cute.jit
    def partition_a_rows(
        self, row_shift, tma_atom_a: cute.CopyAtom, mA_mk: cute.Tensor, sA: cute.Tensor,
        tma_atom_sfa, mSFA_mk, sSFA, cta_coord, a_cta_layout: cute.Layout,
    ) -> tuple:
        """TMA partitions of A and (FP8) SFA: ``((atom), stages)`` in shared memory and
        ``((atom), RestM, RestK[, G])`` in global memory, boxes of :attr:`a_rows` rows, the global
        rows moved up by ``row_shift`` (:meth:`tile_row_shift`; ``None``: not moved)."""
        bM, _, bK = self.tile_shape_mnk
        a_rows = self.a_rows
        if cutlass.const_expr(a_rows < bM):
            # the box: the first a_rows rows of each stage (M <= a_rows: one M tile), which need
            # not divide the stage: (a_rows, bK, stages), (a_rows, 1, stages)
            sA = cute.make_tensor(sA.iterator, smem_layouts.first_rows(sA.layout, a_rows))
            if cutlass.const_expr(self.scaled):
                sSFA = cute.make_tensor(sSFA.iterator, smem_layouts.first_rows(sSFA.layout, a_rows))
        if cutlass.const_expr(row_shift is not None):
            mA_mk = cute.domain_offset((-row_shift, 0), mA_mk)
        # (a_rows, bK, RestM, RestK[, G])
        gA = cute.local_tile(mA_mk, (a_rows, bK), (None, None) + (None,) * (cute.rank(mA_mk) - 2))
        tAsA, tAgA = cpasync.tma_partition(
            tma_atom_a, cta_coord, a_cta_layout, cute.group_modes(sA, 0, 2), cute.group_modes(gA, 0, 2),
        )
        tSsSFA, tSgSFA = None, None
        if cutlass.const_expr(self.scaled):
            if cutlass.const_expr(row_shift is not None):
                mSFA_mk = cute.domain_offset((-row_shift, 0), mSFA_mk)
            # (a_rows, 1, RestM, RestK[, G])
            gSFA = cute.local_tile(mSFA_mk, (a_rows, 1), (None, None) + (None,) * (cute.rank(mSFA_mk) - 2))
            tSsSFA, tSgSFA = cpasync.tma_partition(
                tma_atom_sfa, cta_coord, a_cta_layout, cute.group_modes(sSFA, 0, 2), cute.group_modes(gSFA, 0, 2),
            )
        return tAsA, tAgA, tSsSFA, tSgSFA

    @cute.jit
    def tile_row_shift(self, tile, m: Int32) -> Int32:
        """Rows a dense tile's A, SFA and D boxes move up: the last M tile ends at row ``m`` (or
        up to ``ROW_SHIFT_ALIGN - 1`` rows past it) instead of up to ``BLOCK_M - 1`` rows past it,
        when ``m >= BLOCK_M``; 0 for every other tile (:attr:`shift_last_m_tile`)."""
        row_shift = Int32(0)
        tile_end = (tile.m_block + 1) * self.block_m
        if tile_end > m and m >= self.block_m:
            row_shift = (tile_end - m) // ROW_SHIFT_ALIGN * ROW_SHIFT_ALIGN
        return row_shift

    @cute.jit
    def tile_b_scale_rows(self, mSFB_nk: cute.Tensor, tile) -> tuple:
        """The tile's two rows of 128x128 B scales, ``(Kb,)`` each: the scale block of its first
        column and the next one (clamped to the last).

        NOTES: sliced once per tile, so a K block's B scales cost two loads at base + 4 * k;
        indexing (scale_n, k) per K block rebuilt the 64-bit address from the tensor's shape and
        stride (two LDC.64, ~14 integer instructions) every K block.
        """
        num_scale_n = mSFB_nk.shape[0]
        # Clamped: a cluster's tile past the N edge computes on zeros and stores nothing.
        scale_n0 = cutlass.min(tile.n_block * self.block_n // tiles.SCALE_BLOCK, num_scale_n - 1)
        scale_n1 = cutlass.min(scale_n0 + 1, num_scale_n - 1)
        # (Nb, Kb) scales of this tile's expert
        sfb_coord = (None, None)
        if cutlass.const_expr(self.kind != GemmKind.NORMAL):
            sfb_coord = sfb_coord + (tile.expert,)
        mSFB = mSFB_nk[sfb_coord]
        return mSFB[scale_n0, None], mSFB[scale_n1, None]

    @cute.jit
    def load_b_scales(
        self, group_info: cute.Tensor, raster_divisors: tuple, num_k_blocks: Int32,
        mainloop: pipeline.PipelineTmaAsync, mSFB_nk: cute.Tensor, sSFB: cute.Tensor, mD_mn: cute.Tensor,
    ):
        """B-scale role (128x128 B scales): per tile, per K block, store the tile's two B scales into
        the next stage and arrive on its full barrier (the second of its two arrivals).

        NOTES: four bytes per scale block are too few for TMA. In shared memory the math warps
        read them like the row scales (two ``LDS``) instead of loading them from global memory per
        K block (a 64-bit address, a clamp and an ``LDG`` whose latency the lagged loop could not
        always hide). Their loads must stay off the TMA thread: loaded there, one K block ahead,
        their latency held up the TMA issue whenever the stages were free (128x128,
        32768x7168x2048: 1260-1280 TFLOPS against 1350 with no B-scale loads, H200). This warp
        loads them :data:`B_SCALE_CHUNK` K blocks at a time, one per lane, and may run
        ``stages`` K blocks ahead of the math warps, which hides a load's latency. The K block's
        two scales are shuffled from the lane that holds them; one elected lane stores them and
        arrives, so its arrive (release semantics) orders its own stores before the consumers'
        wait completes (with every lane storing the same values and one arriving, racecheck
        reported the other lanes' stores as racing with the math warps' reads).
        """
        state = pipeline.make_pipeline_state(pipeline.PipelineUserType.Producer, self.stages)
        sched = self.make_scheduler(mD_mn, num_k_blocks, group_info, raster_divisors)
        unit = sched.first_unit()
        num_units = sched.num_units()
        while unit < num_units:
            tile = sched.tile(unit)
            if tile.is_valid:
                sfb_rows = self.tile_b_scale_rows(mSFB_nk, tile)
                chunk = (Float32(0.0), Float32(0.0))
                for tile_k_block in range(tile.num_k_blocks):
                    if tile_k_block % B_SCALE_CHUNK == 0:
                        chunk = self.load_b_scale_chunk(sfb_rows, tile.k_block0 + tile_k_block)
                    chunk_k_block = tile_k_block % B_SCALE_CHUNK
                    sfb0 = cute.arch.shuffle_sync(chunk[0], chunk_k_block)
                    sfb1 = cute.arch.shuffle_sync(chunk[1], chunk_k_block)
                    mainloop.sync_object_empty.wait(state.index, state.phase)
                    with cute.arch.elect_one():
                        sSFB[0, state.index] = sfb0
                        sSFB[1, state.index] = sfb1
                        cute.arch.mbarrier_arrive(mainloop.sync_object_full.get_barrier(state.index))
                    state.advance()
            unit += sched.stride

    @cute.jit
    def load_b_scale_chunk(self, sfb_rows: tuple, k_block: Int32) -> tuple:
        """The B scales of :data:`B_SCALE_CHUNK` K blocks from ``k_block`` on, one K block per lane
        (clamped to the last K block): ``(scale of the first column's block, of the next one)``."""
        k = cutlass.min(k_block + cute.arch.lane_idx(), cute.size(sfb_rows[0]) - 1)
        return sfb_rows[0][k], sfb_rows[1][k]

    @cute.jit
    def mma_and_epilogue(
        self,
        group_info: cute.Tensor,
        raster_divisors: tuple,
        num_k_blocks: Int32,
        mainloop: pipeline.PipelineTmaAsync,
        tiled_mma: cute.TiledMma,
        sA: cute.Tensor, sB: cute.Tensor, sSFA: cute.Tensor, sSFB,
        tma_atom_d: cute.CopyAtom, mD_mn: cute.Tensor, d_real: cute.Tensor, sD: cute.Tensor,
        math_tidx: Int32,
        warp_idx: Int32,
        sRed, split_k_full, split_k_empty,
    ):
        """Math role: WGMMA per K block, promotion, and the TMA-store epilogue per tile (with
        split-K, after summing the cluster's partial tiles)."""
        bM, bN, bK = self.tile_shape_mnk
        # Operand fragments come from the warpgroup's slice (smem descriptors are per warpgroup);
        # anything read by value per accumulator element needs the per-thread slice.
        thr_mma = tiled_mma.get_slice(math_tidx)
        # WGMMA operand descriptors are per warpgroup: the operand fragments are sliced with the
        # warpgroup's first thread (warp-uniform). NOTES: sliced per thread, ptxas built every
        # descriptor in vector registers and moved it with R2UR (rematerialising the 0x40000040
        # high word per WGMMA); warp-uniform, the arithmetic stays in uniform registers (256x128:
        # 4096x4096x7168 1276 -> 1310-1314 TFLOPS, 4096x7168x16384 1317 -> 1351, H200). The lagged
        # tiles lost 1-2% that way while the math warps loaded the B scales from global memory
        # (likely cause, seen in the SASS: ptxas moved each loaded scale to a uniform register
        # within the same K block, exposing the load's latency); reading them from the stage, the
        # 128x128 tiles are faster warp-uniform (4096x7168x2048 1208 -> 1259, H200).
        operand_mma = tiled_mma.get_slice(cute.arch.make_warp_uniform(math_tidx // 128 * 128))
        wave_m = self.wave_m
        # (wave_m, waves, bK, stages): the rows of each WGMMA wave
        sA_waves = cute.flat_divide(sA, (wave_m,))
        # per wave: (MMA, MMA_M, MMA_K, stages); and (MMA, MMA_N, MMA_K, stages)
        tCrA = [
            tiled_mma.make_fragment_A(operand_mma.partition_A(sA_waves[(None, w, None, None)]))
            for w in range(self.num_waves)
        ]
        tCrB = tiled_mma.make_fragment_B(operand_mma.partition_B(sB))
        # (bM, bN, RestM, RestN[, G])
        gD = cute.local_tile(mD_mn, (bM, bN), (None, None) + (None,) * (cute.rank(mD_mn) - 2))
        acc_shape = thr_mma.partition_C(cute.make_identity_tensor((wave_m, bN))).shape
        accs = [cute.make_rmem_tensor(acc_shape, Float32) for _ in range(self.num_waves)]
        # The promotion's operands (FP8 only): the fresh per-K-block partial, the scales.
        tCsSFA, tCrSFA, partials, chunk_cols, candidates = None, None, [None], None, None
        if cutlass.const_expr(self.scaled):
            # per wave: the wave's (wave_m, bN, stages) SFA seen as C -> (MMA, MMA_M, MMA_N, stages)
            tCsSFA = [
                thr_mma.partition_C(cute.make_tensor(
                    sSFA.iterator + w * wave_m,
                    scale_layouts.sfa_as_accumulator(wave_m, bN, self.stages, stage_stride=bM),
                ))
                for w in range(self.num_waves)
            ]
            # registers of the row scales: one slot per wave, or (lagged promotion) per partial
            tCrSFA = [cute.make_rmem_tensor(acc_shape, Float32) for _ in range(self.scale_slots)]
            # one partial, or two for the lagged promotion (:meth:`k_loop_lagged`: one per wave of
            # a 256-row tile, K blocks alternating between them in a 128-row one)
            partials = [cute.make_rmem_tensor(acc_shape, Float32) for _ in range(1 + self.lag_promotion)]
            chunk_cols = self._chunk_columns(tiled_mma, wave_m, bN)
            candidates = split_candidates(bN)
        # per-row B scales: the (wave_m, bN, stages) SFB seen as C -> (MMA, MMA_M, MMA_N, stages),
        # the same for every wave (the columns do not change)
        tCsSFB, tCrSFB = None, None
        if cutlass.const_expr(self.sfb_per_row):
            tCsSFB = thr_mma.partition_C(cute.make_tensor(
                sSFB.iterator, scale_layouts.sfb_as_accumulator(wave_m, bN, self.stages)
            ))
            tCrSFB = cute.make_rmem_tensor(acc_shape, Float32)  # per-row B scales never lag
        elif cutlass.const_expr(self.block_b_scales):
            # the stage's two 128x128 B scales: read once per K block, or per slot when lagged
            tCsSFB = sSFB
            tCrSFB = [
                cute.make_rmem_tensor((scale_layouts.BLOCK_SFB_FLOATS,), Float32)
                for _ in range(self.scale_slots if self.lag_promotion else 1)
            ]

        store = self.make_epilogue_store()
        k_blocks_done = Int32(0)
        num_tiles_done = Int32(0)
        sched = self.make_scheduler(mD_mn, num_k_blocks, group_info, raster_divisors)
        unit = sched.first_unit()
        num_units = sched.num_units()
        while unit < num_units:
            tile = sched.tile(unit)
            # Accumulating, a tile with no K block (an empty k-grouped expert) would add zeros.
            has_work = tile.is_valid
            if cutlass.const_expr(self.accumulate and self.split_k == 1):
                has_work = tile.num_k_blocks > 0
            if has_work:
                self.mma_tile(
                    tile, k_blocks_done, mainloop, tiled_mma, tCrA, tCrB, tCsSFA, tCrSFA,
                    tCsSFB, tCrSFB, accs, partials, chunk_cols, candidates,
                )
                k_blocks_done += tile.num_k_blocks
                d_coord = (None, None, tile.m_block, tile.n_block)
                if cutlass.const_expr(self.d_per_expert):
                    d_coord = d_coord + (tile.expert,)
                if cutlass.const_expr(self.shift_last_m_tile):
                    # (bM, bN), moved up with the tile's A rows
                    row_shift = self.tile_row_shift(tile, mD_mn.shape[0])
                    gD_tile = cute.local_tile(
                        cute.domain_offset((-row_shift, 0), mD_mn), (bM, bN), (tile.m_block, tile.n_block)
                    )
                else:
                    gD_tile = gD[d_coord]
                gD_real_tile = gD_tile
                if cutlass.const_expr(self.m_grouped):
                    gD_real_tile = self.real_tile(d_real, tile)
                self.epilogue(
                    accs, tiled_mma, tma_atom_d, gD_tile, sD, store, num_tiles_done, math_tidx,
                    warp_idx, gD_real_tile, tile.rows, tile.m_block * bM, group_info,
                    sRed, split_k_full, split_k_empty,
                )
                num_tiles_done += 1
            unit += sched.stride
        store.producer_tail()

    @cute.jit
    def mma_tile(
        self, tile, k_blocks_done: Int32, mainloop: pipeline.PipelineTmaAsync,
        tiled_mma: cute.TiledMma, tCrA: list, tCrB: cute.Tensor, tCsSFA: list, tCrSFA: list,
        tCsSFB, tCrSFB, accs: list, partials: list,
        chunk_cols: cutlass.Constexpr, candidates: cutlass.Constexpr,
    ):
        """All K blocks of one tile into ``accs`` (one accumulator per 128-row wave).

        ``k_blocks_done`` counts the K blocks this warpgroup consumed before the tile; it places the
        tile's first stage in the mainloop ring.

        NOTES: when the column where the tile enters its second B scale block depends on the tile
        (BLOCK_N = 96, 112, 144, 160, 192), we branch *once per tile* into a K loop compiled for that
        column (DeepGEMM's ``num_former_iters`` dispatch). Branching per K block instead (one
        warp-uniform test per candidate) made 112-wide tiles 25-33% slower than 128-wide ones.
        Per-row B scales (one per column) need no dispatch.
        """
        args = (tile.num_k_blocks, k_blocks_done, mainloop, tiled_mma, tCrA, tCrB,
                tCsSFA, tCrSFA, tCsSFB, tCrSFB, accs, partials, chunk_cols)
        if cutlass.const_expr(self.sfb_per_row):
            self.k_loop(*args, None)
        else:
            split_col = self._split_column(tile.n_block * self.block_n)
            if cutlass.const_expr(isinstance(split_col, int)):
                self.k_loop(*args, split_col)
            else:
                for c in cutlass.range_constexpr(len(candidates)):
                    if split_col == candidates[c]:
                        self.k_loop(*args, candidates[c])

    @cute.jit
    def k_loop(
        self, num_k_blocks: Int32, k_blocks_done: Int32, mainloop: pipeline.PipelineTmaAsync,
        tiled_mma: cute.TiledMma, tCrA: list, tCrB: cute.Tensor, tCsSFA: list, tCrSFA: list,
        tCsSFB, tCrSFB, accs: list, partials: list, chunk_cols: cutlass.Constexpr,
        split_col: cutlass.Constexpr,
    ):
        """The mainloop of one tile: per K block and wave, WGMMA into a fresh partial, then promote.

        The B scales come from the stage (``tCsSFB``: per-row, or the two 128x128 block scales the
        B-scale warp stored), split at ``split_col``.
        """
        # Consumer position after ``k_blocks_done`` K blocks (consumers start at phase 0).
        state = pipeline.PipelineState(
            self.stages, k_blocks_done, k_blocks_done % self.stages, (k_blocks_done // self.stages) % 2
        )
        for w in cutlass.range_constexpr(self.num_waves):
            accs[w].fill(0.0)
        mma_args = (tiled_mma, tCrA, tCrB)
        promote_args = (tCsSFA, tCrSFA, tCsSFB, tCrSFB, split_col, chunk_cols)
        if cutlass.const_expr(self.lag_promotion):
            self.k_loop_lagged(num_k_blocks, mainloop, state, mma_args, promote_args, accs, partials)
        else:
            self.k_loop_serial(num_k_blocks, mainloop, state, mma_args, promote_args, accs, partials[0])

    @cute.jit
    def k_loop_serial(
        self, num_k_blocks: Int32, mainloop: pipeline.PipelineTmaAsync, state, mma_args, promote_args,
        accs: list, partial: cute.Tensor,
    ):
        """Per K block: each wave's WGMMAs into ``partial``, wait, promote (tiles wider than
        :data:`LAGGED_PROMOTION_MAX_BLOCK_N`: no registers left for a second partial).

        NOTES: unrolled by four (DeepGEMM unrolls by eight): ptxas does not schedule across the
        loop's back edge, so without unrolling the next block's barrier test (``TRYWAIT``) sits
        between the last promotion FFMA and the next WGMMA issue; inside an unrolled body it moves
        in among the FFMAs. 256x128: 203 -> 196 SASS instructions per K block and math warp
        (DeepGEMM 192). Not with per-row B scales: 64x160 spilled unrolled.
        """
        for _ in cutlass.range(num_k_blocks, unroll=4 if self.unroll_k_loops and not self.sfb_per_row else 1):
            self.wait_stage(mainloop, state)
            # NOTES: this stage's scales go to registers before the WGMMAs (the compiler keeps
            # 2 loads per wave), so their latency hides under the tensor-core work and the stage
            # can be released right after the last wave's WGMMAs complete.
            for w in cutlass.range_constexpr(self.num_waves):
                self.load_row_scales(w, w, state.index, promote_args)
            for w in cutlass.range_constexpr(self.num_waves):
                self.issue_wgmmas(w, state.index, mma_args, partial)
                warpgroup.wait_group(0)
                # After the last wave, release the stage before the FFMAs: the producer refills it
                # while we promote.
                if cutlass.const_expr(w == self.num_waves - 1):
                    self.release_stage(mainloop, state)
                self.promote_block(w, accs[w], partial, promote_args)
            state.advance()

    @cute.jit
    def k_loop_lagged(
        self, num_k_blocks: Int32, mainloop: pipeline.PipelineTmaAsync, state, mma_args, promote_args,
        accs: list, partials: list,
    ):
        """Each wave's WGMMAs run while the wave issued before them is promoted. One-wave tiles:
        K block k goes into ``partials[k % 2]`` (and its scales into slot ``k % 2``). Two-wave
        tiles: wave w into ``partials[w]`` (slot w), so block k's wave 1 runs while its wave 0 is
        promoted and block k+1's wave 0 while its wave 1 is.

        NOTES: promoting right after each block's WGMMAs leaves a warpgroup's tensor-core work
        stopped during its FFMAs unless the other warpgroup happens to be out of phase; skipping
        the promotion made 128x128 tiles 15% faster. Lagged, 128x128 ran 4-10% faster on the
        M = 4096, grouped and split-K shapes, and 256x96 2-3% faster (H200, docs/notes.md). The
        loop is unrolled by two K blocks so that each partial (and its scale slot) is a fixed
        register set. A block's scales go to their slot when it is issued, so its stage is
        released as soon as its WGMMAs are done, before its promotion: releasing after the
        promotion (scales read from the stage then) was 2-4% slower. Other loop forms of the same
        WGMMA group sequence (one turn per K block, or per wave) made ptxas serialise every WGMMA
        (remark C7514, docs/notes.md). The pair loop is unrolled by two more so that ptxas moves
        the barrier test across every other pair boundary too (as :meth:`k_loop_serial`):
        128x128 115.5 -> 113 and 256x96 184.5 -> 180.5 instructions per K block and math warp.
        """
        if num_k_blocks > 0:
            self.wait_stage(mainloop, state)
            self.load_row_scales(0, 0, state.index, promote_args)
            self.issue_wgmmas(0, state.index, mma_args, partials[0])
            last = state.clone()
            state.advance()
            for _ in cutlass.range((num_k_blocks - 1) // 2, unroll=2 if self.unroll_k_loops else 1):
                self.lagged_step(mainloop, state, last, mma_args, promote_args, accs, partials, 1)
                state.advance()
                last.advance()
                self.lagged_step(mainloop, state, last, mma_args, promote_args, accs, partials, 0)
                state.advance()
                last.advance()
            # one-wave tiles: the last block is in partials[0] when num_k_blocks is odd
            if num_k_blocks % 2 == 0:
                self.lagged_step(mainloop, state, last, mma_args, promote_args, accs, partials, 1)
                last.advance()
                self.lagged_drain(mainloop, last, mma_args, promote_args, accs, partials, 1)
            else:
                self.lagged_drain(mainloop, last, mma_args, promote_args, accs, partials, 0)

    @cute.jit
    def lagged_step(
        self, mainloop: pipeline.PipelineTmaAsync, state, last, mma_args, promote_args, accs: list,
        partials: list, new: cutlass.Constexpr,
    ):
        """Issue the K block at ``state`` (one-wave tiles: into ``partials[new]``, its scales into
        slot ``new``), then release and promote the block at ``last`` while it runs; a two-wave tile
        first issues the second wave of ``last``. The caller advances both states."""
        if cutlass.const_expr(self.num_waves == 2):
            self.lagged_second_wave(last, mma_args, promote_args, accs, partials)
        fresh = new if self.num_waves == 1 else 0
        self.wait_stage(mainloop, state)
        self.load_row_scales(0, fresh, state.index, promote_args)
        self.issue_wgmmas(0, state.index, mma_args, partials[fresh])
        warpgroup.wait_group(1)
        self.release_stage(mainloop, last)
        self.promote_block(1 - fresh, accs[self.num_waves - 1], partials[1 - fresh], promote_args)

    @cute.jit
    def lagged_second_wave(self, last, mma_args, promote_args, accs: list, partials: list):
        """Two-wave tiles: issue wave 1 of the block at ``last`` into ``partials[1]`` and promote
        its wave 0 while it runs."""
        self.load_row_scales(1, 1, last.index, promote_args)
        self.issue_wgmmas(1, last.index, mma_args, partials[1])
        warpgroup.wait_group(1)
        self.promote_block(0, accs[0], partials[0], promote_args)

    @cute.jit
    def lagged_drain(
        self, mainloop: pipeline.PipelineTmaAsync, last, mma_args, promote_args, accs: list,
        partials: list, newest: cutlass.Constexpr,
    ):
        """Finish the last block (at ``last``; one-wave tiles: in ``partials[newest]``): wait for
        its WGMMAs, release its stage, promote it."""
        if cutlass.const_expr(self.num_waves == 2):
            self.lagged_second_wave(last, mma_args, promote_args, accs, partials)
        slot = newest if self.num_waves == 1 else 1
        warpgroup.wait_group(0)
        self.release_stage(mainloop, last)
        self.promote_block(slot, accs[self.num_waves - 1], partials[slot], promote_args)

    @cute.jit
    def wait_stage(self, mainloop: pipeline.PipelineTmaAsync, state):
        """Wait until the mainloop stage at ``state`` is full (:func:`cute_gemm.kernels.mbarrier.
        wait_phase`: the barrier test stays in the K loop, its retry out of line)."""
        wait_phase(mainloop.sync_object_full.get_barrier(state.index), state.phase)

    @cute.jit
    def release_stage(self, mainloop: pipeline.PipelineTmaAsync, state):
        """Give a mainloop stage back to the producer: one arrive per math warp (in every CTA that
        received the stage by multicast).

        NOTES: the pipeline's own release tests a per-lane predicate (lane < cluster size) that
        ptxas, short of registers, recomputes every K block from ``SR_TID.X``: a long-latency S2R
        between the WGMMA issues (128x160 tiles ran 2-11% slower when it appeared there). Without
        a cluster one elected lane arrives instead (``ELECT``, no thread index needed).

        NOTES: with 128x128 B scales every lane also arrives on this CTA's barrier. Each lane reads
        the stage's B scales from smem, which the B-scale warp rewrites once the stage is free; a
        lane's own arrive is what orders its read before that store (compute-sanitizer's
        racecheck flagged the reads of the lanes the elected arrive does not cover). The elected
        arrive stays where ptxas needs an ELECT in the loop (:data:`ELECTED_RELEASE_MIN_BLOCK_N`);
        narrower tiles drop it and one ``SYNCS`` per K block (H200: 128x4096x7168, 128x32 tiles,
        11.42 -> 11.01 us).
        """
        if cutlass.const_expr(self.elected_release):
            if cutlass.const_expr(self.cluster_mn == (1, 1)):
                with cute.arch.elect_one():
                    mainloop.sync_object_empty.arrive(state.index, mainloop.consumer_mask)
            else:
                mainloop.consumer_release(state)
        if cutlass.const_expr(self.block_b_scales):
            cute.arch.mbarrier_arrive(mainloop.sync_object_empty.get_barrier(state.index))

    @cute.jit
    def issue_wgmmas(self, w: cutlass.Constexpr, stage_index: Int32, mma_args, partial: cute.Tensor):
        """Wave ``w``'s WGMMAs of one K block (one stage) into ``partial`` (fresh), committed as
        one group."""
        tiled_mma, tCrA, tCrB = mma_args
        warpgroup.fence()
        for kk in cutlass.range_constexpr(cute.size(tCrA[w], mode=[2])):
            # NOTES: a fresh atom per issue; mutating ACCUMULATE on the shared tiled_mma inside
            # the dynamic K loop fails IR verification.
            mma = cute.make_mma_atom(tiled_mma.op)
            mma.set(warpgroup.Field.ACCUMULATE, kk != 0)
            cute.gemm(mma, partial, tCrA[w][(None, None, kk, stage_index)], tCrB[(None, None, kk, stage_index)], partial)
        warpgroup.commit_group()

    @cute.jit
    def load_row_scales(self, w: cutlass.Constexpr, slot: cutlass.Constexpr, stage_index: Int32, promote_args):
        """Wave ``w``'s A row scales of one stage into register slot ``slot``, and the stage's B
        scales: per-row ones with wave 0; the two 128x128 ones with wave 0 into slot 0, or with
        every wave into its slot when the promotion lags (a lagged wave is promoted after its
        stage is released)."""
        tCsSFA, tCrSFA, tCsSFB, tCrSFB, _, _ = promote_args
        tCsSFA_stage = tCsSFA[w][(None, None, None, stage_index)]
        for i in cutlass.range_constexpr(cute.size(tCrSFA[slot])):
            tCrSFA[slot][i] = tCsSFA_stage[i]
        if cutlass.const_expr(self.sfb_per_row and w == 0):
            tCsSFB_stage = tCsSFB[(None, None, None, stage_index)]
            for i in cutlass.range_constexpr(cute.size(tCrSFB)):
                tCrSFB[i] = tCsSFB_stage[i]
        if cutlass.const_expr(not self.sfb_per_row and (w == 0 or self.lag_promotion)):
            for i in cutlass.range_constexpr(scale_layouts.BLOCK_SFB_FLOATS):
                tCrSFB[slot][i] = tCsSFB[i, stage_index]

    @cute.jit
    def promote_block(self, slot: cutlass.Constexpr, acc: cute.Tensor, partial: cute.Tensor, promote_args):
        """Promote one K block's ``partial`` into ``acc`` with the scales of register slot ``slot``
        (:mod:`cute_gemm.promotion`)."""
        _, tCrSFA, _, tCrSFB, split_col, chunk_cols = promote_args
        if cutlass.const_expr(self.sfb_per_row):
            promote_per_column(acc, partial, tCrSFA[slot], tCrSFB)
        else:
            sfb = tCrSFB[slot if self.lag_promotion else 0]
            promote(acc, partial, tCrSFA[slot], sfb[0], sfb[1], split_col, chunk_cols)

    def make_epilogue_store(self) -> pipeline.PipelineTmaStore:
        """The D store pipeline: one stage per ring buffer, or one stage for the whole tile (its
        acquire then waits until every earlier store has read shared memory)."""
        return pipeline.PipelineTmaStore.create(
            num_stages=1 if self.whole_tile_epilogue else self.epi_buffers,
            producer_group=pipeline.CooperativeGroup(pipeline.Agent.Thread, self.num_math_threads),
        )

    @cute.jit
    def epilogue(
        self,
        accs: list,
        tiled_mma: cute.TiledMma,
        tma_atom_d: cute.CopyAtom,
        gD_tile: cute.Tensor,  # (bM, bN)
        sD: cute.Tensor,  # (epi_m, epi_n, buffers)
        store: pipeline.PipelineTmaStore,
        num_tiles_done: Int32,
        math_tidx: Int32,
        warp_idx: Int32,
        gD_real_tile: cute.Tensor,  # (bM, bN) the same tile as memory (for predicated stores)
        rows: Int32,
        row0: Int32,
        group_info: cute.Tensor,
        sRed, split_k_full, split_k_empty,
    ):
        """Conversion to D's type, stmatrix (bf16) or plain stores (fp32) into swizzled smem, TMA
        store (or reduce-add) of each ``epi_tile`` piece.

        With a buffer per piece (:attr:`whole_tile_epilogue`) all pieces are written, then stored;
        otherwise the pieces go through a ring of buffers one at a time. With split-K each CTA
        first sums the cluster's partials of its share of the pieces (:meth:`reduce_split_k`) and
        stores only those.

        A masked expert's last tile has only ``rows`` valid rows, and a contiguous tile can end in
        padding rows; those rows must keep what ``d`` held, and TMA clips only at the tensor's
        edge, so such a tile is stored by the math threads with per-row predicates instead.
        """
        d_dtype = sD.element_type
        # stmatrix for bf16, plain stores for fp32; the 16-bit stmatrix atom only fixes which
        # accumulator values each thread writes (the same for both).
        copy_atom_r2s = sm90_utils.get_smem_store_op(LayoutEnum.ROW_MAJOR, d_dtype, Float32)
        copy_atom_c = cute.make_copy_atom(cute.nvgpu.warp.StMatrix8x8x16bOp(False, 4), cutlass.BFloat16)
        tiled_copy_r2s = cute.make_tiled_copy_S(copy_atom_r2s, cute.make_tiled_copy_C_atom(copy_atom_c, tiled_mma))
        thr_copy_r2s = tiled_copy_r2s.get_slice(math_tidx)
        # (R2S, R2S_M, R2S_N, 2)
        tRS_sD = thr_copy_r2s.partition_D(sD)
        tRS_rAccs = [tiled_copy_r2s.retile(acc) for acc in accs]
        rD_shape = cute.shape(thr_copy_r2s.partition_S(sD))[:3]
        tRS_rD = cute.make_rmem_tensor(rD_shape, Float32)
        tRS_rD_out = cute.make_rmem_tensor(rD_shape, d_dtype)
        piece_size = cute.size(tRS_rD)

        # ((epi_m, epi_n), (RestM, RestN)); RestM = waves (epi_m is one wave's rows)
        gD_pieces = cute.zipped_divide(gD_tile, self.epi_tile)
        bSG_sD, bSG_gD = cpasync.tma_partition(
            tma_atom_d, 0, cute.make_layout(1), cute.group_modes(sD, 0, 2), gD_pieces
        )
        num_pieces = cute.size(gD_pieces, mode=[1])
        pieces_per_wave = num_pieces // self.num_waves
        pieces_n = gD_pieces.shape[1][1]
        # What this CTA stores: (piece id, registers holding the piece, offset); pieces are
        # numbered wave by wave, N fastest (the accumulator's order).
        stored = [
            (p, tRS_rAccs[p // pieces_per_wave], (p % pieces_per_wave) * piece_size)
            for p in range(num_pieces)
        ]
        if cutlass.const_expr(self.split_k > 1):
            own = self.store_pieces
            rank = Int32(cute.arch.block_idx()[0]) % self.split_k
            reduced = self.reduce_split_k(
                stored, piece_size, sRed, split_k_full, split_k_empty, num_tiles_done, rank, math_tidx
            )
            stored = [(rank * own + j, reduced, j * piece_size) for j in range(own)]
        if cutlass.const_expr(self.whole_tile_epilogue):
            # The previous tile's stores were issued a whole mainloop ago: this wait is ~free.
            if warp_idx == self.store_warp:
                store.producer_acquire()
            self.epilogue_barrier.arrive_and_wait()
            for slot in cutlass.range_constexpr(len(stored)):
                _, values, offset = stored[slot]
                for v in cutlass.range_constexpr(piece_size):
                    tRS_rD[v] = values[offset + v]
                tRS_rD_out.store(tRS_rD.load().to(d_dtype))
                cute.copy(tiled_copy_r2s, tRS_rD_out, tRS_sD[(None, None, None, slot)])
            # stmatrix writes are generic-proxy; TMA reads through the async proxy.
            cute.arch.fence_proxy("async.shared", space="cta")
            self.epilogue_barrier.arrive_and_wait()
            for slot in cutlass.range_constexpr(len(stored)):
                piece = stored[slot][0]
                self.store_piece(
                    (piece // pieces_n, piece % pieces_n), slot, tma_atom_d, bSG_sD, bSG_gD, sD,
                    gD_real_tile, rows, row0, group_info, math_tidx, warp_idx,
                )
            if warp_idx == self.store_warp:
                store.producer_commit()
        else:
            for slot in cutlass.range_constexpr(len(stored)):
                piece, values, offset = stored[slot]
                for v in cutlass.range_constexpr(piece_size):
                    tRS_rD[v] = values[offset + v]
                tRS_rD_out.store(tRS_rD.load().to(d_dtype))
                buffer = (num_tiles_done * len(stored) + slot) % self.epi_buffers
                cute.copy(tiled_copy_r2s, tRS_rD_out, tRS_sD[(None, None, None, buffer)])
                cute.arch.fence_proxy("async.shared", space="cta")
                self.epilogue_barrier.arrive_and_wait()
                self.store_piece(
                    (piece // pieces_n, piece % pieces_n), buffer, tma_atom_d, bSG_sD, bSG_gD, sD,
                    gD_real_tile, rows, row0, group_info, math_tidx, warp_idx,
                )
                if warp_idx == self.store_warp:
                    store.producer_commit()
                    store.producer_acquire()  # the next piece's buffer has been read
                self.epilogue_barrier.arrive_and_wait()

    @cute.jit
    def reduce_split_k(
        self, stored: list, piece_size: int, sRed, split_k_full, split_k_empty,
        num_tiles_done: Int32, rank: Int32, math_tidx: Int32,
    ) -> cute.Tensor:
        """Split-K: sum this CTA's share of the tile over the cluster; returns its pieces.

        CTA ``q`` owns pieces ``[q * own, (q + 1) * own)``. Every CTA sends each owner its partial
        values of the owner's pieces by ``st.async`` into the owner's slot ``[rank][thread]``
        (tx-counted on the owner's ``split_k_full`` barrier; its own share goes through its own
        slot too). The owner waits for all ``split_k`` slots, sums them in rank order (the same
        bits whichever CTA finishes first), then tells every sender that its slots are free
        (``split_k_empty``, one arrive per owner) so the next tile's partials may come in.
        """
        split_k, threads = self.split_k, self.num_math_threads
        own = self.store_pieces
        share = own * piece_size  # floats per thread per owner
        row = split_k_slot_floats(self.block_m, self.block_n, split_k)
        if num_tiles_done > 0:
            # every owner has read the previous tile's partials out of the slots we write
            cute.arch.mbarrier_wait(split_k_empty, (num_tiles_done - 1) % 2)
        if math_tidx == 0:
            cute.arch.mbarrier_arrive_and_expect_tx(split_k_full, split_k * threads * share * 4)
        # our row of slot `rank` (the same offset in every CTA's shared memory)
        send_row = sRed + cute.assume((rank * threads + math_tidx) * row, divby=4)
        for owner in cutlass.range_constexpr(split_k):
            for chunk in cutlass.range_constexpr(share // 4):
                words = []
                for e in cutlass.range_constexpr(4):
                    f = owner * share + chunk * 4 + e  # the value's place among the tile's pieces
                    _, values, offset = stored[f // piece_size]
                    words.append(Float32(values[offset + f % piece_size]).bitcast(Int32))
                cute.arch.store_async_dsmem(send_row + chunk * 4, tuple(words), split_k_full, owner)
        cute.arch.mbarrier_wait(split_k_full, num_tiles_done % 2)
        # (share, split_k): this thread's rows of every slot
        received = cute.make_tensor(
            sRed + cute.assume(math_tidx * row, divby=4),
            cute.make_layout((share, split_k), stride=(1, threads * row)),
        )
        reduced = cute.make_rmem_tensor((share,), Float32)
        for v in cutlass.range_constexpr(share):
            reduced[v] = received[v, 0]
        for src in cutlass.range_constexpr(1, split_k):
            for v in cutlass.range_constexpr(share):
                reduced[v] = reduced[v] + received[v, src]
        self.epilogue_barrier.arrive_and_wait()  # every thread has read its rows
        if math_tidx == 0:
            # One fence orders the reads before all the arrives (a release per arrive cost a
            # MEMBAR.GPU each).
            cute.arch.fence_acq_rel_cluster()
            for sender in cutlass.range_constexpr(split_k):
                cute.arch.mbarrier_arrive(split_k_empty, sender, relaxed=True, scope=MemScopeKind.CLUSTER)
        return reduced

    @cute.jit
    def store_piece(
        self, piece_coord, buffer, tma_atom_d: cute.CopyAtom,
        bSG_sD: cute.Tensor, bSG_gD: cute.Tensor, sD: cute.Tensor, gD_real_tile: cute.Tensor,
        rows: Int32, row0: Int32, group_info: cute.Tensor, math_tidx: Int32, warp_idx: Int32,
    ):
        """Store one staged piece: by TMA from the store warp, or (a grouped tile with rows that
        must not be written) by every math thread with per-row predicates.

        ``piece_coord`` is the piece's ``(row, column)`` among the tile's pieces."""
        if cutlass.const_expr(self.m_grouped):
            if rows < self.block_m:
                self.store_piece_predicated(
                    sD[(None, None, buffer)], gD_real_tile, piece_coord, rows, row0, group_info, math_tidx
                )
            elif warp_idx == self.store_warp:
                cute.copy(tma_atom_d, bSG_sD[(None, buffer)], bSG_gD[(None, piece_coord)])
        elif warp_idx == self.store_warp:
            cute.copy(tma_atom_d, bSG_sD[(None, buffer)], bSG_gD[(None, piece_coord)])

    @cute.jit
    def store_piece_predicated(
        self, sD_piece: cute.Tensor, gD_real_tile: cute.Tensor, piece_coord, rows: Int32,
        row0: Int32, group_info: cute.Tensor, math_tidx: Int32,
    ):
        """Copy one smem piece to global memory, 16 bytes per thread-access, valid rows only.

        Valid: masked, tile rows below ``rows``; contiguous, rows whose ``m_indices`` is not -1.
        """
        epi_m, epi_n = self.epi_tile
        d_dtype = sD_piece.element_type
        vec = 128 // d_dtype.width
        threads_per_row = epi_n // vec
        copy_atom = cute.make_copy_atom(cute.nvgpu.CopyUniversalOp(), d_dtype, num_bits_per_copy=128)
        tiled_copy = cute.make_tiled_copy_tv(
            copy_atom,
            cute.make_layout(
                (self.num_math_threads // threads_per_row, threads_per_row), stride=(threads_per_row, 1)
            ),
            cute.make_layout((1, vec)),
        )
        thr_copy = tiled_copy.get_slice(math_tidx)
        # (epi_m, epi_n) piece of the tile in global memory, and its coordinates within the tile
        gD_piece = cute.local_tile(gD_real_tile, self.epi_tile, piece_coord)
        cD_piece = cute.local_tile(
            cute.make_identity_tensor((self.block_m, self.block_n)), self.epi_tile, piece_coord
        )
        # (CPY, CPY_M, CPY_N)
        tSsD = thr_copy.partition_S(sD_piece)
        tSgD = thr_copy.partition_D(gD_piece)
        tScD = thr_copy.partition_D(cD_piece)
        num_rows, num_cols = gD_real_tile.shape  # what is left of d from the tile's corner
        for i in cutlass.range_constexpr(cute.size(tSsD, mode=[1])):
            for j in cutlass.range_constexpr(cute.size(tSsD, mode=[2])):
                coord = tScD[(0, i, j)]
                row_ok = coord[0] < rows
                if cutlass.const_expr(self.kind == GemmKind.M_GROUPED_CONTIGUOUS):
                    row = cutlass.min(row0 + coord[0], cute.size(group_info) - 1)
                    row_ok = row0 + coord[0] < cute.size(group_info) and group_info[row] >= 0
                if row_ok and coord[0] < num_rows and coord[1] < num_cols:
                    cute.copy(copy_atom, tSsD[(None, i, j)], tSgD[(None, i, j)])

    # ------------------------------------------------------------------------------------------
    # trace-time helpers
    # ------------------------------------------------------------------------------------------
    def _split_column(self, first_col):
        """First tile column that reads the *next* B scale block (static when it can be)."""
        bN = self.block_n
        if tiles.SCALE_BLOCK % bN == 0:
            return bN  # never crosses: every column reads the first block
        if bN % tiles.SCALE_BLOCK == 0:
            return tiles.SCALE_BLOCK  # starts on a boundary; 256 -> second half reads the next
        return tiles.SCALE_BLOCK - first_col % tiles.SCALE_BLOCK

    @staticmethod
    def _chunk_columns(tiled_mma: cute.TiledMma, block_m: int, block_n: int) -> tuple[int, ...]:
        """Static tile column of each accumulator element's 8-column chunk.

        Thread 0's coordinates are static; every other thread's columns differ only by its offset
        inside the chunk (0..7), which never crosses a scale-block boundary.
        """
        coords = tiled_mma.get_slice(0).partition_C(cute.make_identity_tensor((block_m, block_n)))
        return tuple(coords[i][1] // 8 * 8 for i in range(cute.size(coords)))
