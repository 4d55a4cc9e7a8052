"""Writes and executes the example notebooks (no GPU needed); the outputs are saved in the .ipynb.

    python tools/make_notebooks.py            # both notebooks
    python tools/make_notebooks.py 03         # only those whose name starts with 03

The cells live here, as plain strings, so a change to a notebook is a reviewable diff of this file;
``tests/test_notebooks.py`` re-executes the committed notebooks in CI.
"""

import sys
import textwrap
import time
from pathlib import Path

import nbformat
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent


def md(text):
    return nbformat.v4.new_markdown_cell(textwrap.dedent(text).strip())


def code(text):
    return nbformat.v4.new_code_cell(textwrap.dedent(text).strip())


# ------------------------------------------------------------------------------------------------
LAYOUTS = [
    md("""
    # 01 · Layouts: swizzled operands and the scale factors

    What this notebook shows, all from the code the kernel itself uses:

    1. the shared-memory layouts of the operands and of the epilogue tile (`layouts/smem.py`) and of
       the scale factors (`layouts/scales.py`), **printed by the CuTe DSL**;
    2. the 128-byte swizzle of an FP8 K-major stage, evaluated through the DSL's own layout and
       drawn as a bank map: 8 rows reading the same 16-byte column hit 8 different bank groups;
    3. the A scales (SFA) in global memory (M-major, TMA-aligned), in a pipeline stage, and **as the
       promotion stage sees them**: a stride-0 view partitioned like the WGMMA accumulator, so each
       thread reads the scales of exactly its own two rows;
    4. the B scales (SFB) for BLOCK_N = 112, where tiles straddle 128-column scale blocks.

    **No GPU needed**: the DSL traces and compiles for `sm_90a` on the CPU. CuTe layouts are built
    while a `@cute.jit` function is traced, so the layouts are printed from inside such functions
    (each is called once; `print` there prints the static layout).
    """),
    code("""
    import cute_gemm  # first: sets CUTE_DSL_ARCH=sm_90a before cutlass is imported (docs/notes.md)
    import numpy as np
    import matplotlib.pyplot as plt
    import torch
    import cutlass
    import cutlass.cute as cute
    import cutlass.utils.hopper_helpers as sm90_utils
    from cutlass.cute.nvgpu import OperandMajorMode
    from cutlass.tensor_utils import LayoutEnum
    from layouts import scales, smem, tiles

    plt.rcParams["figure.dpi"] = 80
    FP8 = cutlass.Float8E4M3FN
    """),
    md("""
    ## 1. The layouts, printed

    A CuTe layout prints as `shape:stride`; a swizzled one as `S<B,M,S> o offset o shape:stride`, a
    swizzle function applied to the offsets the `shape:stride` layout computes. `operand_smem_layout`
    tiles the 128-byte swizzle atom (8 rows x 128 bytes of FP8, K-major) down M and then along the
    stage mode: for the A stage below, rows `(8,16):(128,1024)` (128 bytes apart inside an atom, 1 KB
    between atoms), K `(128,1):(1,0)` contiguous, stages `(1,4):(0,16384)` (16 KB each).
    """),
    code("""
    @cute.jit
    def show_layouts():
        atom = cute.nvgpu.warpgroup.make_smem_layout_atom(
            sm90_utils.get_smem_layout_atom(LayoutEnum.ROW_MAJOR, FP8, 128), FP8)
        print("swizzle atom, fp8 K-major 128 wide:", atom)
        print("A stages, fp8 128x128 x 4:         ", smem.operand_smem_layout(FP8, 128, 128, 4))
        print("B stages, fp8 112x128 x 4:         ", smem.operand_smem_layout(FP8, 112, 128, 4))
        print("D pieces, bf16 128x32 x 2:         ", smem.epilogue_smem_layout(cutlass.BFloat16, (128, 32), 2))
        print("SFA stages, BLOCK_M=128 x 4:       ", scales.sfa_smem_layout(128, 4))
        print("SFA seen as the accumulator:       ", scales.sfa_as_accumulator(128, 128, 4))

    show_layouts()
    """),
    md("""
    ## 2. The 128-byte swizzle, evaluated

    `Swizzle<B=3, M=4, S=3>` acts on byte offsets (one FP8 element = one byte): bits 4-6 (which
    16-byte chunk of a 128-byte row) are XORed with bits 7-9 (which row of the 8-row atom). Below,
    the DSL's layout is evaluated at static coordinates `(row, k, stage)` inside a jit function, and
    the result is checked against that XOR written in plain Python for 16 rows x 128 columns.
    """),
    code("""
    offset = {}  # (row, k) -> byte offset inside the A buffer, as the DSL computes it

    @cute.jit
    def evaluate_a_stage():
        a = smem.operand_smem_layout(FP8, 128, 128, 4)
        for r in cutlass.range_constexpr(16):
            for k in cutlass.range_constexpr(128):
                offset[r, k] = a((r, k, 1))  # stage 1: the stage offset (16384) is not swizzled
        print("a((0, 16, 1)) =", a((0, 16, 1)), "   a((1, 16, 1)) =", a((1, 16, 1)),
              "   a((1, 0, 1)) =", a((1, 0, 1)))

    evaluate_a_stage()

    def swizzle_343(byte_offset):
        \"\"\"Swizzle<3,4,3>: bits [4,7) ^= bits [7,10).\"\"\"
        return byte_offset ^ ((byte_offset >> 3) & 0b1110000)

    def plain_offset(r, k, stage):  # the layout without its swizzle: ((8,16),(128,1),(1,4)):((128,1024),(1,0),(0,16384))
        return (r % 8) * 128 + (r // 8) * 1024 + k + stage * 16384

    assert all(offset[r, k] == swizzle_343(plain_offset(r, k, 1)) for r, k in offset)
    print(f"the DSL's layout equals the XOR arithmetic at all {len(offset)} points")
    """),
    md("""
    ## 3. Bank groups: no swizzle vs swizzled

    Shared memory has 32 banks of 4 bytes, so a 16-byte chunk covers 4 banks: the 8 chunks of a
    128-byte row are the 8 **bank groups** (banks 4g .. 4g+3). Each cell below is (row, logical
    16-byte chunk of K) and shows the bank group it is stored in. The tensor core (and TMA) read 8
    rows of the same logical chunk together: without the swizzle they all sit in one bank group, an
    8-way bank conflict; with `S<3,4,3>` every column is a permutation of the 8 bank groups.
    """),
    code("""
    rows, chunks = range(8), range(8)
    plain = np.array([[(plain_offset(r, 16 * c, 1) // 16) % 8 for c in chunks] for r in rows])
    swizzled = np.array([[(offset[r, 16 * c] // 16) % 8 for c in chunks] for r in rows])

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
    for ax, grid, title in zip(axes, (plain, swizzled), ("no swizzle", "Swizzle<3,4,3> (the DSL's layout)")):
        ax.imshow(grid, cmap="tab10", vmin=0, vmax=9)
        for r in rows:
            for c in chunks:
                ax.text(c, r, f"{grid[r, c]}", ha="center", va="center", fontsize=11)
        ax.set_title(f"{title}\\nbank group (banks 4g..4g+3) of each 16-byte chunk")
        ax.set_xlabel("logical chunk of the row: k // 16")
        ax.set_ylabel("row m (inside the 8-row atom)")
        ax.set_xticks(range(8)); ax.set_yticks(range(8))
    plt.tight_layout(); plt.show()

    for name, grid in (("no swizzle", plain), ("swizzled ", swizzled)):
        print(f"{name}: distinct bank groups hit by the 8 rows of each column:",
              [len(set(grid[:, c])) for c in chunks])
    """),
    md("""
    ## 4. The A scales in global memory: M-major, TMA-aligned

    SFA is `[m, ceil(k/128)]` fp32: one scale per row per 128-wide K block. The kernel wants it
    **M-major** (stride `(1, m_pad)`) with `m_pad` a multiple of 4, so that the scales of one K block
    are contiguous and start 16-byte aligned: one TMA box then loads the `BLOCK_M` scales of a tile's
    K block. `get_mn_major_tma_aligned_tensor` makes that layout (one copy; an aligned tensor is
    returned as is). Below, m = 5 rows and k = 384 (3 K blocks); the value `r.b` is the scale of row
    r, K block b, so the memory picture shows where each lands.
    """),
    code("""
    m, kb = 5, 3
    sfa = (torch.arange(m)[:, None] + torch.arange(kb)[None, :] / 10).float()   # value r.b
    aligned = cute_gemm.get_mn_major_tma_aligned_tensor(sfa)
    m_pad = scales.tma_aligned_rows(m)
    print("row-major input :", tuple(sfa.shape), "strides", sfa.stride())
    print("TMA-aligned     :", tuple(aligned.shape), "strides", aligned.stride(),
          f"(m = {m} padded to {m_pad}); same values: {torch.equal(aligned, sfa)}")
    print("aligned input is returned as is:", cute_gemm.get_mn_major_tma_aligned_tensor(aligned) is aligned)

    # The memory behind it: K block b occupies floats [b * m_pad, (b + 1) * m_pad); the rest is padding.
    memory = np.full((kb, m_pad), np.nan)
    memory[:, :m] = aligned.T.numpy()
    fig, ax = plt.subplots(figsize=(8, 2.4))
    ax.imshow(np.isnan(memory), cmap="Pastel1", vmin=0, vmax=8)
    for b in range(kb):
        for i in range(m_pad):
            ax.text(i, b, "pad" if i >= m else f"{memory[b, i]:.1f}", ha="center", va="center")
    ax.set_yticks(range(kb), [f"K block {b}\\nfloat {b * m_pad}" for b in range(kb)])
    ax.set_xticks(range(m_pad)); ax.set_xlabel("float within the K block's column (16-byte aligned start)")
    ax.set_title("SFA in global memory, M-major: each K block's scales are one contiguous, aligned run")
    plt.tight_layout(); plt.show()
    """),
    md("""
    ## 5. How the promotion stage sees the scales

    Per K block, TMA copies the tile's `BLOCK_M` row scales into the stage's SFA buffer
    (`sfa_smem_layout`: `(BLOCK_M, 1, stages):(1, 0, BLOCK_M)`). The promotion computes
    `acc[i] += partial[i] * sfa[row(i)] * sfb`, so each thread needs the scale of the row of each of
    its accumulator elements. `sfa_as_accumulator` views the buffer as a `(BLOCK_M, BLOCK_N, stages)`
    tensor whose N stride is 0 (element (m, n) = scale of row m) and the kernel partitions it with the
    **per-thread** slice of the tiled MMA, exactly like the accumulator.

    Below: the tiled MMA of the kernel for a 128x128 tile (two math warpgroups, `atom_layout (2,1,1)`,
    tiler `(64, BLOCK_N)`), and the view partitioned for a few threads. To see *which* scale each
    element reads, the view is built on a counting iterator (`cute.make_tensor(0, layout)`): each
    element's value is its offset in the SFA buffer, i.e. the row whose scale it reads. Each
    thread's view has stride 0 except along the mode of 8 rows: two distinct scales per thread.
    """),
    code("""
    BLOCK_M, BLOCK_N, STAGES = 128, 128, 4
    scale_row, acc_coord = {}, {}   # thread -> per fragment element: SFA row read; accumulator (row, col)

    @cute.jit
    def promotion_view():
        tiled_mma = sm90_utils.make_trivial_tiled_mma(
            FP8, FP8, OperandMajorMode.K, OperandMajorMode.K, cutlass.Float32,
            atom_layout_mnk=(2, 1, 1), tiler_mn=(64, BLOCK_N))
        print(tiled_mma)
        sfa_view = cute.make_tensor(0, scales.sfa_as_accumulator(BLOCK_M, BLOCK_N, STAGES))
        identity = cute.make_identity_tensor((BLOCK_M, BLOCK_N))
        for t in cutlass.range_constexpr(2 * 128):  # unrolled while tracing: everything is static
            thr_mma = tiled_mma.get_slice(t)
            view = thr_mma.partition_C(sfa_view)[(None, None, None, 0)]  # stage 0
            coords = thr_mma.partition_C(identity)
            if cutlass.const_expr(t in (0, 5, 33, 130)):
                print(f"thread {t:3d}: SFA view", view)
            scale_row[t] = [int(view[i]) for i in range(cute.size(view))]
            acc_coord[t] = [tuple(int(x) for x in coords[i]) for i in range(cute.size(coords))]

    promotion_view()
    """),
    md("""
    Reading it back in Python: thread t of warp w (of its warpgroup) reads rows
    `16 w + (t % 32) // 4` and 8 rows below, plus 64 for the second warpgroup, and every fragment
    element reads the scale of its own accumulator row. (Partitioning with one slice for the whole
    warpgroup would give every thread thread 0's rows 0 and 8: a silent wrong-scale bug that
    `tests/test_compile.py` guards against by checking the SFA loads use per-thread addresses.)
    """),
    code("""
    for t in (0, 1, 2, 3, 4, 5, 31, 32, 33, 127, 128, 130, 255):
        print(f"thread {t:3d} (warpgroup {t // 128}, warp {t // 32 % 4}, lane {t % 32:2d}): "
              f"{len(scale_row[t])} accumulator values, scales of rows {sorted(set(scale_row[t]))}")

    assert all(s == r for t in scale_row for s, (r, _) in zip(scale_row[t], acc_coord[t]))
    assert all(set(scale_row[t]) == {64 * (t // 128) + 16 * (t // 32 % 4) + t % 32 // 4 + d for d in (0, 8)}
               for t in scale_row)
    print("every element reads the scale of its own row; thread t reads rows r and r + 8 of its warp's 16-row slab")
    """),
    md("""
    The accumulator fragment drawn: which thread owns each (row, column) of the tile's top-left
    64x32 corner (the first warpgroup). Left: the whole corner, coloured by thread, with thread 5's
    elements marked (rows 1 and 9, columns 2-3 of every 8). Middle: warp 0's top-left 16x16 with the
    owning thread written in each cell: 4 threads share a row, 2 columns each, repeating every 8
    columns. Right: the SFA rows each of the 256 threads reads.
    """),
    code("""
    owner = np.full((64, 32), -1)
    for t in range(128):
        for r, c in acc_coord[t]:
            if r < 64 and c < 32:
                owner[r, c] = t
    assert (owner >= 0).all()

    fig, axes = plt.subplots(1, 3, figsize=(16, 6), gridspec_kw={"width_ratios": [1.2, 1.5, 1.6]})
    ax = axes[0]
    im = ax.imshow(owner, cmap="nipy_spectral", aspect="auto", vmin=0, vmax=127)
    fig.colorbar(im, ax=ax, shrink=0.8, label="owning thread")
    r5, c5 = np.nonzero(owner == 5)
    ax.scatter(c5, r5, marker="s", s=14, facecolor="white", edgecolor="black", label="thread 5")
    for w in range(4):
        ax.axhline(16 * w - 0.5, color="white", linewidth=1.5)
        ax.text(31.4, 16 * w + 7.5, f"warp {w}", ha="right", va="center", fontsize=9, color="white")
    ax.set_title("64x32 corner: owning thread"); ax.set_xlabel("column n"); ax.set_ylabel("row m")
    ax.legend(loc="lower left", fontsize=8)

    ax = axes[1]
    zoom = owner[:16, :16]
    ax.imshow(zoom % 4, cmap="Pastel1", vmin=0, vmax=8)
    for r in range(16):
        for c in range(16):
            ax.text(c, r, zoom[r, c], ha="center", va="center", fontsize=8)
    ax.set_title("warp 0, top-left 16x16: owning thread"); ax.set_xlabel("column n"); ax.set_ylabel("row m")
    ax.set_xticks(range(0, 16, 2)); ax.set_yticks(range(0, 16, 2))

    ax = axes[2]
    for t in range(256):
        ax.scatter([t, t], sorted(set(scale_row[t])), s=4, color="C0" if t < 128 else "C1")
    ax.set_xlabel("math thread (0-127: warpgroup 0, 128-255: warpgroup 1)")
    ax.set_ylabel("SFA row whose scale it reads"); ax.set_title("each thread reads 2 scales (rows r, r + 8)")
    plt.tight_layout(); plt.show()
    """),
    md("""
    ## 6. The B scales: tiles straddling 128-column scale blocks (BLOCK_N = 112)

    SFB has one scale per 128x128 block of B, so a tile reads one scale per 128 output columns it
    overlaps (`layouts.tiles.max_scale_blocks_touched`: at most two for every legal BLOCK_N). Tile
    j starts at column `n0 = 112 j`; its columns from `split_col = 128 - n0 % 128` on belong to the
    next scale block. When BLOCK_N neither divides 128 nor is a multiple of it, `split_col` depends
    on the tile, so the kernel branches once per K block into a copy of the promotion specialised
    for one of the few values it can take (`cute_gemm.promotion.split_candidates`; a value >=
    BLOCK_N means the tile does not straddle). All of them are multiples of 16, so an 8-column chunk
    of the accumulator never straddles: which scale each fragment element takes is known at compile
    time.
    """),
    code("""
    from cute_gemm.promotion import split_candidates

    BN = 112
    print(f"BLOCK_N={BN}: touches at most {tiles.max_scale_blocks_touched(BN)} scale blocks; "
          f"split static: {tiles.scale_split_is_static(BN)}; split_col candidates: {split_candidates(BN)}")
    NUM_TILES = 9
    for j in range(NUM_TILES):
        n0 = j * BN
        split = tiles.SCALE_BLOCK - n0 % tiles.SCALE_BLOCK
        second = (f"tile columns {split}..{BN - 1} (global {n0 + split}..{n0 + BN - 1}) read scale block {n0 // 128 + 1}"
                  if split < BN else "no straddle")
        print(f"tile {j}: columns {n0:4d}..{n0 + BN - 1:4d}, scale block {n0 // 128}, split_col {split:3d}: {second}")

    print()
    for bn in tiles.BLOCK_N_CHOICES:
        kind = "static" if tiles.scale_split_is_static(bn) else f"run time, one of {split_candidates(bn)}"
        print(f"BLOCK_N {bn:3d}: split column {kind}")
    """),
    code("""
    width = NUM_TILES * BN
    picture = np.full((NUM_TILES, width), np.nan)
    for j in range(NUM_TILES):
        n0 = j * BN
        split = tiles.SCALE_BLOCK - n0 % tiles.SCALE_BLOCK
        picture[j, n0:n0 + BN] = 0
        picture[j, n0 + min(split, BN):n0 + BN] = 1
    fig, ax = plt.subplots(figsize=(13, 3.6))
    ax.imshow(picture, aspect="auto", cmap="coolwarm", interpolation="nearest")
    for b in range(1, width // 128 + 1):
        ax.axvline(128 * b - 0.5, color="black", linestyle="--", linewidth=1)
    for b in range(width // 128 + 1):
        ax.text(128 * b + 64, -0.75, f"SFB block {b}", ha="center", fontsize=9)
    ax.set_yticks(range(NUM_TILES), [f"tile {j}" for j in range(NUM_TILES)])
    ax.set_ylim(NUM_TILES - 0.5, -1.2)
    ax.set_xlabel("output column n (dashed: 128-column scale-block boundaries)")
    ax.set_title("BLOCK_N = 112: blue columns read the tile's first B scale, red ones the second")
    plt.tight_layout(); plt.show()
    """),
]


# ------------------------------------------------------------------------------------------------
SCHEDULER = [
    md("""
    # 03 · The persistent schedule

    Which CTA (one per SM) computes which output tile, in which order, for a dense GEMM and for the
    two MoE layouts (m-grouped contiguous and masked), and what the L2 rasterisation group changes.
    Everything here runs the plain-Python twin of the kernel's scheduler
    (`schedulers/reference.py`), which calls the very `rasterize` function the kernel calls
    (`schedulers/raster.py`). At the end, the tile the heuristic picks for DeepSeek-V3 shapes.
    **No GPU needed.**
    """),
    code("""
    import numpy as np
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    import schedulers.raster as raster
    from schedulers.reference import (ceil_div, contiguous_schedule, masked_grid_size,
                                      masked_rows_in_tile, masked_schedule, normal_schedule)

    plt.rcParams["figure.dpi"] = 80
    print(raster.__doc__)
    """),
    md("""
    ## 1. A small dense problem, every tile labelled

    6 x 5 tiles on 8 CTAs with `group = 2`. Left: the linear tile id (the order of the grouped
    raster: bands of 2 M blocks, M fastest inside a band). Right: the CTA computing each tile
    (colour) and its iteration (text). Tile id = iteration x 8 + CTA id, so the 8 tiles in flight
    together are 8 consecutive ids: a compact patch of the output.
    """),
    code("""
    def tile_grid(tiles, field, shape):
        \"\"\"(m_block, n_block) -> a field of the ScheduledTile; NaN where no tile is computed.\"\"\"
        out = np.full(shape, np.nan)
        for t in tiles:
            out[t.m_block, t.n_block] = getattr(t, field)
        return out

    def annotate(ax, grid, fmt="{:.0f}", fontsize=9, **text):
        \"\"\"Write fmt.format(value) in every cell of an imshow'd grid that is not NaN.\"\"\"
        for (r, c), v in np.ndenumerate(grid):
            if not np.isnan(v):
                ax.text(c, r, fmt.format(v), ha="center", va="center", fontsize=fontsize, **text)

    NUM_CTAS, SHAPE = 8, (6, 5)
    toy = normal_schedule(SHAPE[0] * 128, SHAPE[1] * 128, 128, 128, num_sms=NUM_CTAS, group=2, along_m=True)
    tile_id = tile_grid(toy, "iteration", SHAPE) * NUM_CTAS + tile_grid(toy, "cta", SHAPE)

    fig, axes = plt.subplots(1, 2, figsize=(10, 5))
    axes[0].imshow(tile_id, cmap="Blues", vmin=-10, vmax=40); annotate(axes[0], tile_id, fontsize=11)
    axes[0].set_title("linear tile id (group = 2, along M)")
    axes[1].imshow(tile_grid(toy, "cta", SHAPE), cmap="Pastel1", vmin=0, vmax=8)
    for t in toy:
        axes[1].text(t.n_block, t.m_block, f"CTA {t.cta}\\nit {t.iteration}", ha="center", va="center")
    axes[1].set_title("CTA (colour, first line) and iteration (second line)")
    for ax in axes:
        ax.set_xlabel("N block"); ax.set_ylabel("M block")
    plt.tight_layout(); plt.show()
    for cta in (0, 1):
        print(f"CTA {cta} computes, in order:", [(t.m_block, t.n_block) for t in toy if t.cta == cta])
    """),
    md("""
    ## 2. A DeepSeek-V3-sized dense GEMM

    M = 4096, N = 7168 with the heuristic's 128x160 tiles and raster group 16 on 132 SMs: 32 x 45 =
    1440 tiles, 11 waves (the last one partial). Left: the iteration (wave) of each tile: the waves
    sweep bands of 16 M blocks. Right: the CTA of each tile.
    """),
    code("""
    M, N, BM, BN, SMS = 4096, 7168, 128, 160, 132
    shape = (ceil_div(M, BM), ceil_div(N, BN))
    dense = normal_schedule(M, N, BM, BN, num_sms=SMS, group=16, along_m=True)
    print(f"{shape[0]} x {shape[1]} = {len(dense)} tiles, {max(t.iteration for t in dense) + 1} waves on {SMS} CTAs")

    fig, axes = plt.subplots(1, 2, figsize=(14, 5))
    for ax, field, cmap in zip(axes, ("iteration", "cta"), ("viridis", "nipy_spectral")):
        im = ax.imshow(tile_grid(dense, field, shape), cmap=cmap)
        ax.set_title(f"{field} of each tile"); ax.set_xlabel("N block"); ax.set_ylabel("M block")
        fig.colorbar(im, ax=ax, shrink=0.8)
    plt.tight_layout(); plt.show()
    """),
    md("""
    ## 3. What the raster group changes

    The 132 tiles of one wave run together, and tiles in the same M block read the same A rows
    (tiles in the same N block, the same B rows) at the same time: what they share is read from DRAM
    once and then hit in L2. A proxy for a wave's L2 footprint is the number of distinct A tiles
    (M blocks) and B tiles (N blocks) it touches, or the operand rows it streams,
    `A tiles x BLOCK_M + B tiles x BLOCK_N` (times K bytes in FP8). With `group = 1` a wave covers
    ~3 M blocks and all 45 N blocks; bands of 8 or 16 M blocks make it a near-square patch with
    less than half the footprint. The kernel uses 16 along M (`GemmConfig.raster_group`).
    """),
    code("""
    GROUPS = (1, 2, 4, 8, 16, 32)
    stats = {}
    for group in GROUPS:
        tiles = normal_schedule(M, N, BM, BN, num_sms=SMS, group=group, along_m=True)
        waves = max(t.iteration for t in tiles) + 1
        per_wave = []
        for w in range(waves):
            wave = [t for t in tiles if t.iteration == w]
            a, b = len({t.m_block for t in wave}), len({t.n_block for t in wave})
            per_wave.append((a, b, a * BM + b * BN))
        stats[group] = (tiles, per_wave)
        a, b, rows = per_wave[0]
        mean_rows = np.mean([p[2] for p in per_wave[:-1]])
        print(f"group {group:2d}: first wave touches {a:2d} A tiles + {b:2d} B tiles = {rows:5d} operand rows "
              f"({rows * 7168 / 2**20:5.1f} MiB at K = 7168); mean over full waves {mean_rows:6.0f} rows")
    """),
    code("""
    fig = plt.figure(figsize=(15, 4.8))
    grid_spec = fig.add_gridspec(1, 4, width_ratios=[1, 1, 1, 1.3])
    for i, group in enumerate((1, 8, 16)):
        ax = fig.add_subplot(grid_spec[0, i])
        tiles, per_wave = stats[group]
        first = np.zeros(shape)
        for t in tiles:
            if t.iteration == 0:
                first[t.m_block, t.n_block] = 1
        ax.imshow(first, cmap="Blues", vmin=0, vmax=1.3)
        a, b, _ = per_wave[0]
        ax.set_title(f"group {group}: first wave\\n{a} A tiles x {b} B tiles")
        ax.set_xlabel("N block"); ax.set_ylabel("M block")
    ax = fig.add_subplot(grid_spec[0, 3])
    x = np.arange(len(GROUPS))
    first_a = [stats[g][1][0][0] for g in GROUPS]
    first_b = [stats[g][1][0][1] for g in GROUPS]
    rows = [stats[g][1][0][2] for g in GROUPS]
    ax.bar(x - 0.2, first_a, 0.4, label="distinct A tiles (M blocks)")
    ax.bar(x + 0.2, first_b, 0.4, label="distinct B tiles (N blocks)")
    ax.set_xticks(x, [str(g) for g in GROUPS]); ax.set_xlabel("raster group (along M)")
    ax.set_ylabel("tiles touched by the first wave"); ax.set_ylim(0, 75)
    twin = ax.twinx()
    twin.plot(x, rows, "k.-", label="operand rows: A tiles x 128 + B tiles x 160")
    twin.set_ylabel("operand rows streamed by the first wave"); twin.set_ylim(0, max(rows) * 1.6)
    handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    ax.legend(handles, [h.get_label() for h in handles], loc="upper right", fontsize=8)
    ax.set_title("first-wave footprint, 4096x7168, 128x160 tiles, 132 CTAs")
    plt.tight_layout(); plt.show()
    """),
    md("""
    ## 4. MoE, m-grouped contiguous: padding blocks are skipped

    Experts' tokens stacked along M, each expert padded to a multiple of 128 rows (`m_indices = -1`
    on padding rows). Four experts with 300, 0, 130 and 64 tokens, 64x128 tiles, 16 SMs (to keep the
    picture readable). A tile whose first row is padding is skipped: no math, nothing written (blank
    below). It still uses its slot: its CTA just moves on to its next iteration, so no other tile's
    (CTA, iteration) changes (there is no compaction).
    """),
    code("""
    tokens = [300, 0, 130, 64]
    m_indices = []
    for expert, rows_e in enumerate(tokens):
        m_indices += [expert] * rows_e + [-1] * (-rows_e % 128)
    CBM, CBN, CN, CSMS = 64, 128, 1024, 16
    cshape = (ceil_div(len(m_indices), CBM), ceil_div(CN, CBN))
    contiguous = contiguous_schedule(m_indices, CN, CBM, CBN, num_sms=CSMS, group=16, along_m=True)
    block_owner = [m_indices[b * CBM] for b in range(cshape[0])]
    print(f"{len(m_indices)} stacked rows, {cshape[0]} M blocks x {cshape[1]} N blocks = {cshape[0] * cshape[1]} tiles; "
          f"{len(contiguous)} computed, {cshape[0] * cshape[1] - len(contiguous)} skipped")
    print("expert of each M block's first row:", block_owner)

    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5))
    labels = [f"block {b}: " + (f"expert {e}" if e >= 0 else "padding") for b, e in enumerate(block_owner)]
    axes[0].imshow(tile_grid(contiguous, "group", cshape), cmap=ListedColormap(["C0", "C1", "C2", "C3"]),
                   vmin=-0.5, vmax=3.5, aspect="auto")
    annotate(axes[0], tile_grid(contiguous, "group", cshape), fmt="e{:.0f}")
    axes[0].set_title("expert of each computed tile (blank: skipped)")
    axes[1].imshow(tile_grid(contiguous, "cta", cshape), cmap="tab20", vmin=0, vmax=19, aspect="auto")
    annotate(axes[1], tile_grid(contiguous, "iteration", cshape), fmt="it {:.0f}", fontsize=8)
    axes[1].set_title(f"CTA (colour) and iteration (text), {CSMS} CTAs")
    for ax in axes:
        ax.set_yticks(range(cshape[0]), labels, fontsize=8); ax.set_xlabel("N block")
    plt.tight_layout(); plt.show()
    for cta in (0, 5):
        its = [t.iteration for t in contiguous if t.cta == cta]
        print(f"CTA {cta} computes iterations {its} (missing ones were padding)")
    """),
    md("""
    ## 5. MoE, m-grouped masked: units numbered expert by expert

    Decoding layout: `a` is `[G, M_max, K]` and expert g has `masked_m[g]` valid rows, known only on
    the device. The host sizes the grid as if every expert were full (`masked_grid_size`); the CTAs
    then number the units expert by expert, each expert rasterised on its own, and an empty expert
    owns none. `masked_m = [37, 0, 256, 129]`, M_max = 256, N = 1024, 64x128 tiles, 20 SMs. Grey:
    blocks past `masked_m[g]`, never computed; the row count of each block is in its label.
    """),
    code("""
    masked_m, M_MAX, MN, MBM, MBN, MSMS = [37, 0, 256, 129], 256, 1024, 64, 128, 20
    masked = masked_schedule(masked_m, M_MAX, MN, MBM, MBN, num_sms=MSMS, group=16, along_m=True)
    grid_ctas = masked_grid_size(len(masked_m), M_MAX, MN, MBM, MBN, MSMS)
    mshape = (ceil_div(M_MAX, MBM), ceil_div(MN, MBN))
    busy = {t.cta for t in masked}
    print(f"grid: {grid_ctas} CTAs (for {len(masked_m)} x {mshape[0]} x {mshape[1]} possible tiles); "
          f"{len(masked)} tiles to compute; {grid_ctas - len(busy)} CTAs find no unit and exit at once")

    fig, axes = plt.subplots(1, len(masked_m), figsize=(16, 3.6))
    for g, ax in enumerate(axes):
        mine = [t for t in masked if t.group == g]
        ax.imshow(np.ones(mshape), cmap="Greys", vmin=0, vmax=4)  # grey background: not computed
        ax.imshow(tile_grid(mine, "cta", mshape), cmap="tab20", vmin=0, vmax=19)
        annotate(ax, tile_grid(mine, "iteration", mshape), fmt="it {:.0f}", fontsize=8)
        ax.set_yticks(range(mshape[0]), [f"{n} rows" if (n := masked_rows_in_tile(masked_m[g], b, MBM)) > 0
                                         else "masked" for b in range(mshape[0])], fontsize=8)
        ax.set_title(f"expert {g}: masked_m = {masked_m[g]}, {len(mine)} tiles", fontsize=10)
        ax.set_xlabel("N block")
    plt.tight_layout(); plt.show()
    prefix = 0
    for g, rows_g in enumerate(masked_m):
        units = ceil_div(rows_g, MBM) * mshape[1]
        print(f"expert {g}: units {prefix}..{prefix + units - 1}" if units else f"expert {g}: no units")
        prefix += units

    few = masked_schedule([5, 0, 0, 3], M_MAX, MN, MBM, MBN, num_sms=MSMS, group=16, along_m=True)
    print(f"masked_m = [5, 0, 0, 3]: still {grid_ctas} CTAs launched, {len(few)} tiles, "
          f"{grid_ctas - len({t.cta for t in few})} CTAs find no unit and exit at once")
    """),
    md("""
    ## 6. The configuration the heuristic picks, and why

    `cute_gemm.heuristics.explain` ranks the candidate tiles of a shape by a modelled time
    (waves x BLOCK_N / measured efficiency of that width). First the choice for every DeepSeek-V3
    (N, K) of the benchmark at M = 64, 128 and 4096, then the full reasoning for two of them.
    """),
    code("""
    from cute_gemm import heuristics
    from cute_gemm.bench import DEEPSEEK_V3_M, DEEPSEEK_V3_NK

    for m in DEEPSEEK_V3_M:
        picks = [f"{n}x{k}: {(c := heuristics.choose_config(m, n, k, 132)).block_m}x{c.block_n}"
                 for n, k in DEEPSEEK_V3_NK]
        print(f"M={m:4d}  " + "   ".join(picks))
    print()
    for m, n, k in ((64, 2112, 7168), (4096, 7168, 16384)):
        print(heuristics.explain(m, n, k, 132))
        print()
    """),
]


NOTEBOOKS = {"01_layouts.ipynb": LAYOUTS, "03_scheduler.ipynb": SCHEDULER}


class ThisInterpreter(KernelSpecManager):
    """Every kernel name resolves to an IPython kernel on this interpreter (as in the CI test)."""

    def get_kernel_spec(self, kernel_name):
        argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        return KernelSpec(argv=argv, display_name="Python 3", language="python", resource_dir=str(ROOT))


def build(path: Path, cells) -> None:
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    start = time.perf_counter()
    km = KernelManager(kernel_name="python3", kernel_spec_manager=ThisInterpreter())
    NotebookClient(
        nb, km=km, timeout=600, record_timing=False, resources={"metadata": {"path": str(ROOT)}}
    ).execute()
    seconds = time.perf_counter() - start
    nbformat.write(nb, path)
    print(f"wrote {path.relative_to(ROOT)}: {path.stat().st_size // 1024} KB, executed in {seconds:.1f} s")


if __name__ == "__main__":
    prefixes = sys.argv[1:] or [""]
    for name, cells in NOTEBOOKS.items():
        if any(name.startswith(p) for p in prefixes):
            build(ROOT / "examples" / name, cells)
