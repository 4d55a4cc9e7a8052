"""Writes and executes the example notebooks (no GPU needed); the outputs are saved in the .ipynb.

    python tools/make_notebooks.py            # every notebook
    python tools/make_notebooks.py 02 04      # only those whose name starts with 02 or 04

Cells that need a CUDA GPU (timings in 02 and 04) check for one and say so when there is none;
``tools/execute_notebooks.sh`` re-executes the committed notebooks in place on a GPU host.

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
    4. the B scales (SFB) for BLOCK_N = 112, where tiles straddle 128-column scale blocks;
    5. a decoding tile's A box: the first 8 to 56 rows of each 64-row stage, where TMA writes what
       WGMMA reads.

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
    md("""
    ## 7. A decoding tile's A box: the first rows of each 64-row stage

    TMA is slow on the rows of a load box that lie past the last row of the tensor (about 4 ns per
    row per K block on the H200), so a dense problem with few rows (decoding) loads A in a box of the
    next multiple of 8 rows instead of all 64 (`GemmConfig.a_box_rows`, chosen by
    `cute_gemm.heuristics.a_box_rows`). WGMMA still reads the whole 64-row stage; the rows past the
    box hold stale shared memory and the rows of D they make are never stored. The box is the
    stage's first rows, `layouts.smem.first_rows`: the stage buffer's layout with its row mode cut,
    even when the box does not divide the stage (24, 40, 48, 56 rows). Below, for a 48-row box:
    the view the kernel partitions, the box layout its TMA atom is built from, and a check that
    every row of the box lands where WGMMA reads it, in every stage.
    """),
    code("""
    from cute_gemm import heuristics
    from cute_gemm.kernels.fp8_gemm_sm90 import A_BOX_ROWS

    ROWS, STAGES = 48, 4
    box_offsets = {}

    @cute.jit
    def a_box():
        stages = smem.operand_smem_layout(FP8, 64, 128, STAGES)
        view = smem.first_rows(stages, ROWS)
        box = cute.slice_(smem.operand_smem_layout(FP8, ROWS, 128, 1), (None, None, 0))
        print("A stages, 64x128 x 4:    ", stages)
        print(f"first {ROWS} rows (the view):", view)
        print(f"TMA box, {ROWS}x128:         ", box)
        for s in cutlass.range_constexpr(STAGES):
            for r in cutlass.range_constexpr(ROWS):
                for k in (0, 16, 127):
                    box_offsets[r, k, s] = (stages((r, k, s)), stages((0, 0, s)) + box((r, k)), view((r, k, s)))

    a_box()
    assert all(full == tma == view for full, tma, view in box_offsets.values())
    print(f"{len(box_offsets)} (row, k, stage) points: WGMMA's offset == TMA's offset == the view's")
    print()
    print("boxes:", A_BOX_ROWS)
    for m in (1, 8, 9, 20, 33, 48, 56, 57, 64):
        print(f"M = {m:2d}: loads {heuristics.a_box_rows(m, 64) or 64} rows of A per K block")
    """),
]


# ------------------------------------------------------------------------------------------------
TILE_CHANGES = [
    md("""
    # 02 · Changing the tile: waves, SASS and speed of one GEMM

    One problem, `D[M, N] = A[M, K] @ B[N, K]^T` with **M = 256, N = 7168, K = 7168** (a DeepSeek-V3
    projection at a small batch of tokens), run with a handful of kernel configurations. For each
    one this notebook shows

    - **(a) tiles and waves**: how the output is cut into tiles and which SM computes each tile in
      which round (*wave*), drawn, and how busy the 132 SMs of an H200 are in the last wave;
    - **(b) what the compiler built**: registers per thread, tensor-core instructions, register
      spills and shared memory, read from the compiled machine code (SASS) for `sm_90a`;
    - **(c) measured speed** on the GPU (only where a CUDA GPU is present; otherwise the cell says
      so). Parts (a) and (b) need no GPU.

    **Vocabulary, for readers new to GPU GEMMs and CuTe.** The output is cut into *tiles* of
    `BLOCK_M x BLOCK_N` elements; one *CTA* (a thread block, here 256 or 384 threads) computes one
    tile at a time, walking K in steps of `BLOCK_K = 128`. An H200 has 132 *SMs* (streaming
    multiprocessors); the kernel is *persistent*: it launches one CTA per SM and each CTA loops
    over tiles `cta, cta + 132, cta + 264, ...`. So tiles run in **waves** of 132, and when the tile
    count is not a multiple of 132 the last wave leaves SMs idle. Inside a CTA, a *producer* warp
    copies A and B tiles from global to shared memory with the TMA engine into a ring of
    **stages** (buffers), while one or two *math warpgroups* (128 threads each) multiply them on
    the tensor cores (`wgmma`, which compiles to the SASS instruction `QGMMA` for FP8) and apply the
    FP8 scale factors. A **cluster** of 2 CTAs runs on two SMs at once and lets one TMA load feed
    both (*multicast*), halving the L2 reads of the shared operand. CuTe is NVIDIA's layout algebra
    (and Python DSL) in which the kernel is written; nothing below needs CuTe itself.
    """),
    code("""
    import cute_gemm  # first: sets CUTE_DSL_ARCH=sm_90a before cutlass is imported (docs/notes.md)
    import numpy as np
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    import torch
    from cute_gemm import heuristics
    from cute_gemm.jit import GemmConfig
    from cute_gemm.kernels.fp8_gemm_sm90 import Fp8GemmSm90, max_stages
    from cute_gemm.waves import plan_waves, render_waves

    plt.rcParams["figure.dpi"] = 80
    M, N, K = 256, 7168, 7168
    SMS = cute_gemm.get_num_sms()   # 132 on an H200 (and without a GPU)
    HAS_GPU = torch.cuda.is_available()
    print(f"problem: M={M} N={N} K={K}: {2 * M * N * K / 1e9:.1f} GFLOP, "
          f"A {M * K / 2**20:.1f} MiB + B {N * K / 2**20:.1f} MiB of FP8, D {2 * M * N / 2**20:.1f} MiB of bf16")
    print(f"{SMS} SMs; GPU: {torch.cuda.get_device_name() if HAS_GPU else 'none (parts a and b only)'}")
    print()
    print(heuristics.explain(M, N, K, SMS))
    """),
    md("""
    The heuristic's table above is the model the library chooses tiles with: for every candidate
    tile, the waves it needs times the modelled time of one tile (its FLOPs at a rate measured for
    that tile shape, plus a fixed cost per tile). At M = 256 the output has only 2 rows of 128-row
    tiles, so *how many tiles there are*, compared with 132 SMs, decides most of it.

    Note the operands: B (the weights, 49 MiB) is 28 times larger than A. Every tile reads a
    `BLOCK_N x K` slice of B, and the two 128-row tiles of one N block read the same slice, so B
    comes from DRAM about once and from L2 twice.

    ## The configurations

    Starting from the 128x128 tile, one change at a time: BLOCK_N 128 -> 112, BLOCK_M 128 -> 64 and
    -> 256, fewer and more pipeline stages, and a 2-CTA cluster. `stages` defaults to the
    library's choice (`heuristics.choose_stages`). A configuration this version of the kernel
    rejects (its constructor raises `ValueError`) is kept in the tables as *not supported by this
    version* instead of stopping the notebook.
    """),
    code("""
    def make_config(block_m, block_n, stages=None, cluster=(1, 1)):
        \"\"\"(GemmConfig, None), or (None, why) when this version of the kernel rejects it.\"\"\"
        try:
            if stages is None:
                stages = heuristics.choose_stages(block_m, block_n, K)
            config = GemmConfig(block_m, block_n, stages, *cluster)
            Fp8GemmSm90(**config.kernel_arguments())  # the kernel's own checks (tile, stages, cluster); compiles nothing
            return config, None
        except (ValueError, NotImplementedError) as error:
            return None, f"not supported by this version ({error})"

    def most_stages(block_m, block_n):
        try:
            return max_stages(block_m, block_n)
        except (ValueError, KeyError):
            return None

    CHANGES = {   # label -> (what changed, (config or None, why not))
        "128x128":         ("the start",                          make_config(128, 128)),
        "128x112":         ("BLOCK_N 128 -> 112",                 make_config(128, 112)),
        "64x128":          ("BLOCK_M 128 -> 64",                  make_config(64, 128)),
        "256x128":         ("BLOCK_M 128 -> 256",                 make_config(256, 128)),
        "128x112 s3":      ("3 stages",                           make_config(128, 112, 3)),
        "128x112 s-max":   ("as many stages as fit",              make_config(128, 112, most_stages(128, 112))),
        "128x112 2x1":     ("cluster of 2 CTAs along M",          make_config(128, 112, cluster=(2, 1))),
    }
    for label, (change, (config, why)) in CHANGES.items():
        print(f"{label:14s} {change:28s} {config.describe() if config else why}")
    """),
    md("""
    ## (a) Tiles and waves

    First as text: `cute_gemm.waves.render_waves` prints the tile grid with one character per tile,
    the wave it runs in (the same picture `python -m cute_gemm explain --m 256 --n 7168 --k 7168`
    prints for the tile it chooses). It enumerates the kernel's own schedule, with its plain-Python
    twin (`schedulers/reference.py`, notebook 03).
    """),
    code("""
    plans = {}
    for label, (change, (config, why)) in CHANGES.items():
        print(f"== {label} ({change})")
        if config is None:
            print(why, end="\\n\\n")
            plans[label] = None
            continue
        cluster = (config.cluster_m, config.cluster_n)
        plans[label] = plan_waves(M, N, config.block_m, config.block_n, SMS, cluster=cluster,
                                  group=config.raster_group, along_m=config.raster_along_m)
        print(render_waves(M, N, config.block_m, config.block_n, SMS, cluster=cluster,
                           group=config.raster_group, along_m=config.raster_along_m), end="\\n\\n")
    """),
    md("""
    Then drawn. Left: the 256 x 7168 output at its true proportions (x: column n, y: row m), cut
    into the configuration's tiles (white lines), each coloured by its wave and labelled with the
    CTA (= SM) that computes it. Right: the SMs in each wave, coloured where busy and grey where
    idle. Things to see: BLOCK_N = 112 cuts N into 64 tiles instead of 56, so 128 tiles keep 128 of
    132 SMs busy instead of 112; BLOCK_M = 64 needs 224 tiles, one full wave and a second at 70%;
    BLOCK_M = 256 gives only 56 tiles, so 76 SMs have nothing to do; stages change nothing here
    (they act inside a tile); a 2x1 cluster pairs the two M blocks of each N block on two SMs
    (black outlines), which then load their common B tile once, multicast to both.
    """),
    code("""
    wave_colors = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860"]
    rows = list(plans)
    fig, axes = plt.subplots(len(rows), 2, figsize=(16, 1.35 * len(rows) + 0.8),
                             gridspec_kw={"width_ratios": [4.3, 1.3]}, squeeze=False)
    for (ax, occupancy), label in zip(axes, rows):
        plan = plans[label]
        if plan is None:
            for a in (ax, occupancy):
                a.axis("off")
            ax.text(0.01, 0.5, f"{label}: not supported by this version", fontsize=11, va="center")
            continue
        bm, bn, waves = plan.block_m, plan.block_n, plan.num_waves
        cmap = ListedColormap([wave_colors[w % len(wave_colors)] for w in range(waves)])
        cmap.set_bad("#dddddd")
        extent = (0, plan.num_n_blocks * bn, plan.num_m_blocks * bm, 0)
        ax.imshow(np.array(plan.wave), cmap=cmap, vmin=-0.5, vmax=waves - 0.5, aspect="auto",
                  extent=extent, interpolation="nearest")
        for c in range(plan.num_n_blocks + 1):
            ax.axvline(c * bn, color="white", linewidth=0.7)
        for r in range(plan.num_m_blocks + 1):
            ax.axhline(r * bm, color="white", linewidth=1.5)
        for r in range(plan.num_m_blocks):
            for c in range(plan.num_n_blocks):
                ax.text((c + 0.5) * bn, (r + 0.5) * bm, plan.cta[r][c], rotation=90, fontsize=5.5,
                        ha="center", va="center", color="white")
        cm, cn = plan.cluster
        if cm * cn > 1:  # outline the tiles of each cluster: they run at once on a pair of SMs
            for r in range(0, plan.num_m_blocks, cm):
                for c in range(0, plan.num_n_blocks, cn):
                    ax.add_patch(plt.Rectangle((c * bn, r * bm), cn * bn, cm * bm, fill=False,
                                               edgecolor="black", linewidth=1.5, zorder=3))
        ax.set_xlim(0, N); ax.set_ylim(M, 0); ax.set_yticks([0, 128, 256])
        change = CHANGES[label][0]
        ax.set_title(f"{label} ({change}): {plan.num_tiles} tiles of {bm}x{bn}, "
                     f"{waves} wave{'s' if waves > 1 else ''}; colour = wave, text = CTA (SM)",
                     loc="left", fontsize=10)
        busy = np.full((waves, SMS), np.nan)
        for r in range(plan.num_m_blocks):
            for c in range(plan.num_n_blocks):
                busy[plan.wave[r][c], plan.cta[r][c]] = plan.wave[r][c]
        occupancy.imshow(np.ma.masked_invalid(busy), cmap=cmap, vmin=-0.5, vmax=waves - 0.5,
                         aspect="auto", interpolation="nearest")
        occupancy.set_yticks(range(waves), [f"wave {w}" for w in range(waves)], fontsize=8)
        occupancy.set_title(f"last wave: {plan.last_wave_tiles} of {SMS} SMs busy "
                            f"({100 * plan.last_wave_occupancy:.0f}%)", fontsize=10)
    axes[-1][0].set_xlabel("output column n")
    axes[-1][1].set_xlabel("SM (CTA id); grey: idle")
    plt.tight_layout(); plt.show()
    """),
    md("""
    ## (b) What the compiler built

    `cute_gemm.sass.compile_report` compiles a configuration for `sm_90a` (no GPU needed: the CuTe
    DSL traces the kernel in Python, lowers it to PTX, and NVIDIA's `ptxas` turns that into SASS,
    the GPU's machine code), then reads the cubin with `nvdisasm` and `cuobjdump`:

    - **regs**: registers per thread at launch (`ptxas`'s figure; at run time `setmaxnreg` moves
      registers from the producer warpgroup (down to 40) to the math warpgroups (up to 232 or 240));
    - **QGMMA**: FP8 tensor-core instructions in the code (`wgmma m64nNk32`: 4 per 128-deep K block
      and 128-row wave; the K loop is compiled once per B-scale split case, so tiles whose B scale
      block boundary moves from tile to tile (BLOCK_N = 112) carry several copies; tiles up to 128
      wide with one wave promote *lagged*: block k's WGMMAs run while block k-1 is promoted from a
      second partial, in a loop unrolled by two with a first and a last block around it, so each
      copy holds 4 x 4 QGMMA; 256-row tiles up to 96 wide lag too, one 128-row wave promoted while
      the other's WGMMAs run);
    - **FFMA**: fused multiply-adds, mostly the *promotion* (`acc += partial * sfa * sfb` after every
      K block, on the CUDA cores);
    - **instr/K**: instructions per K block and math warp in the main K loop
      (`report.k_loop()`: the innermost loop with the most WGMMAs, divided by the K blocks it
      holds): the promotion's FFMAs (BLOCK_N / 2 per 128-row wave), 4 WGMMAs per wave, and the
      loop's bookkeeping (barrier waits, scale loads, WGMMA descriptors). Everything but the FFMAs
      and WGMMAs is overhead the tensor cores wait behind; DeepGEMM's 256x128 loop runs 192;
    - **spills**: local-memory loads/stores (`LDL`/`STL`): registers that did not fit. Must be 0;
    - **smem**: shared memory per CTA (stages x (A + B + A-scale tiles) + epilogue buffers), out of
      227 KB; **UTMALDG / UTMASTG**: TMA loads and stores.

    Each compile takes one to a few seconds on a CPU; tiles with many K-loop copies (128x112: 8 split
    cases, each lagged) take longest.
    """),
    code("""
    from cute_gemm.sass import compile_report

    reports = {}
    print(f"{'config':14s} {'regs':>5s} {'QGMMA':>6s} {'FFMA':>6s} {'instr/K':>8s} {'spills':>7s} {'stack':>6s} "
          f"{'smem KB':>8s} {'UTMALDG':>8s} {'UTMASTG':>8s} {'compile s':>10s}")
    for label, (change, (config, why)) in CHANGES.items():
        if config is None:
            print(f"{label:14s} {why}")
            continue
        try:
            r = reports[label] = compile_report(config)
        except (ValueError, NotImplementedError) as error:
            print(f"{label:14s} not supported by this version ({error})")
            continue
        except FileNotFoundError as error:  # nvdisasm / cuobjdump missing
            print(f"{label:14s} {error}")
            continue
        o = r.opcodes
        per_k = r.k_loop().instructions_per_k_block()
        print(f"{label:14s} {r.registers:5d} {o['QGMMA']:6d} {o['FFMA']:6d} {per_k:8.1f} {r.spills:7d} {r.stack_bytes:6d} "
              f"{r.shared_memory_bytes / 1024:8.1f} {o['UTMALDG']:8d} {o['UTMASTG']:8d} {r.compile_seconds:10.1f}")
    """),
    md("""
    One line of the SASS itself: the first tensor-core instruction of the 128x112 kernel. `QGMMA.64x112x32.F32.E4M3.E4M3`
    is one warpgroup's `m64 n112 k32` FP8 product into fp32 registers; its A and B operands are
    read straight from shared memory through matrix *descriptors* (`gdesc[...]`).
    """),
    code("""
    first = next((r for r in reports.values() if r.config.block_n == 112), None)
    if first is None:
        print("no 128x112 report")
    else:
        lines = [line.strip() for line in first.sass.splitlines() if "QGMMA" in line]
        print(lines[0] if lines else "no QGMMA found")
        print(f"... {len(lines)} QGMMA lines in all; the most frequent opcodes:",
              ", ".join(f"{op} {n}" for op, n in first.opcodes.most_common(12)))
    """),
    md("""
    ## (c) Measured speed (GPU)

    With a CUDA GPU, each configuration is run through the public API (`cute_gemm.fp8_gemm_nt(...,
    config=...)`), checked against the fp32 product of the dequantised inputs (`calc_diff`,
    DeepGEMM's metric: about 1e-6 is right, above 1e-5 is a bug) and timed with
    `cute_gemm.timing.time_kernels`: the torch profiler's device time of the kernel, median of 30
    calls, L2 flushed before each (the library's benchmark method). TFLOPS = 2 M N K / time. The
    last row is the library's own choice (no `config`). For scale: moving the 55 MB of operands
    and output at the H200's 4.8 TB/s takes at least ~11 us, and the 26 GFLOP at the FP8 dense
    datasheet peak (~1980 TFLOPS) ~13 us, so this shape sits where both memory and tensor cores
    matter.
    """),
    code("""
    measured = {}
    if not HAS_GPU:
        print("no CUDA GPU here: nothing timed. Run this notebook on an H100/H200 "
              "(tools/execute_notebooks.sh) to fill this table.")
    else:
        from cute_gemm.testing import make_fp8_gemm_problem
        from cute_gemm.timing import time_kernels

        p = make_fp8_gemm_problem(M, N, K, seed=0)
        reference = p.dequantized_reference()
        runs = {label: config for label, (change, (config, why)) in CHANGES.items()}
        runs["library's choice"] = None
        print(f"{'config':18s} {'time us':>8s} {'TFLOPS':>7s} {'calc_diff':>10s}")
        for label, config in runs.items():
            if config is None and label in CHANGES:
                print(f"{label:18s} {CHANGES[label][1][1]}")
                continue
            run = lambda config=config: cute_gemm.fp8_gemm_nt((p.a, p.sfa), (p.b, p.sfb), p.d, config=config)
            try:
                p.d.fill_(float("nan"))
                run()
            except (ValueError, NotImplementedError) as error:
                print(f"{label:18s} not supported by this version ({error})")
                continue
            diff = cute_gemm.calc_diff(p.d, reference)
            us = time_kernels(run, iters=30)
            measured[label] = (us, 2 * M * N * K / us / 1e6, diff)
            print(f"{label:18s} {us:8.1f} {measured[label][1]:7.0f} {diff:10.1e}")
        print("library's choice:", heuristics.choose_config(M, N, K, SMS).describe())
    """),
    code("""
    if measured:
        labels = list(measured)
        tflops = [measured[label][1] for label in labels]
        occupancy = [plans[label].last_wave_occupancy if plans.get(label) else np.nan for label in labels]
        fig, ax = plt.subplots(figsize=(12, 4))
        bars = ax.bar(range(len(labels)), tflops, color=["#4c72b0"] * (len(labels) - 1) + ["#55a868"])
        for bar, t, occ in zip(bars, tflops, occupancy):
            text = f"{t:.0f}" + ("" if np.isnan(occ) else f"\\nlast wave {100 * occ:.0f}%")
            ax.text(bar.get_x() + bar.get_width() / 2, t, text, ha="center", va="bottom", fontsize=9)
        ax.set_xticks(range(len(labels)), labels, rotation=15)
        ax.set_ylabel("TFLOPS"); ax.set_ylim(0, max(tflops) * 1.25)
        ax.set_title(f"fp8_gemm_nt {M}x{N}x{K} on {torch.cuda.get_device_name()}")
        plt.tight_layout(); plt.show()
    else:
        print("no measurements (no GPU here), no chart")
    """),
    md("""
    ## Reading the results

    - **Tile count against SM count** is the first-order effect at small M: a tile shape whose
      tiles fill the 132 SMs in whole waves wastes nothing; 56 tiles of 256x128 leave most SMs idle,
      however efficient each tile is.
    - **Per-tile efficiency** is the second: wider and taller tiles reuse each loaded byte for more
      FLOPs, and tiles up to 128 wide (256-row ones up to 96) hide their promotion under the next
      WGMMAs (128x128 and 128x160 run fastest per FLOP on the H200, `docs/notes.md`); BLOCK_N = 112
      pays for tiles that straddle two B scale blocks (the run-time split, more code).
      The heuristic weighs the two (the table at the top); part (c) shows how well it guessed.
    - **Stages** hide memory latency: each stage is one K block in flight. Too few starve the
      tensor cores; the most that fit leave no room to stage the whole output tile for the TMA
      store (a ring of pieces is used instead), which the library found slower at short K.
    - **Clusters** halve the L2 traffic of the shared operand; at this shape the B loads are mostly
      reused from L2 already, so expect little change (the library measured clusters within noise
      on 128-row tiles). 256-row tiles, which read 256 rows of A per K block, gained about 2% from
      a 1x2 cluster sharing A at large M, and the heuristic gives them one (`docs/notes.md`).
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


# ------------------------------------------------------------------------------------------------
MOE = [
    md("""
    # 04 · A mixture-of-experts layer with the grouped GEMMs

    In a mixture-of-experts (MoE) layer every token is sent to a few of many *experts* (here
    top-2 of 8), each a small MLP with its own weights. The work is therefore many GEMMs of
    different, data-dependent sizes, one per expert. This notebook computes one MoE layer's expert
    MLPs (DeepSeek-V3 sizes: hidden 7168, expert intermediate size 2048; the gate and up projections
    fused into one 7168 -> 4096 GEMM, SwiGLU, then the 2048 -> 7168 down projection) three ways:

    1. `cute_gemm.m_grouped_fp8_gemm_nt_contiguous`: all experts' tokens stacked along M in one
       tensor, each expert padded to a multiple of 128 rows: **one launch for all experts**
       (prefill and training);
    2. `cute_gemm.m_grouped_fp8_gemm_nt_masked`: a `[experts, M_max, K]` buffer with the valid row
       count of each expert in a device tensor, **one launch, no host synchronisation**, CUDA-graph
       friendly (decoding);
    3. a Python loop over experts calling the dense `cute_gemm.fp8_gemm_nt` (FP8), and one calling
       `torch.matmul` in bf16 (the unquantised reference).

    They are checked against each other with `calc_diff` and timed on the GPU. The routing and the
    two memory layouts are built and drawn on the CPU; **the GEMMs need a CUDA GPU** (those cells
    say so and skip without one).
    """),
    code("""
    import cute_gemm  # first: sets CUTE_DSL_ARCH=sm_90a before cutlass is imported (docs/notes.md)
    import numpy as np
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    import torch
    import torch.nn.functional as F
    from cute_gemm import heuristics, moe
    from schedulers.raster import GemmKind

    plt.rcParams["figure.dpi"] = 80
    TOKENS, HIDDEN, INTER, EXPERTS, TOP_K = 2048, 7168, 2048, 8, 2
    HAS_GPU = torch.cuda.is_available()
    SMS = cute_gemm.get_num_sms()
    ALIGN = moe.get_m_alignment_for_contiguous_layout()
    expert_colors = ListedColormap([plt.cm.tab10.colors[i] for i in (0, 1, 2, 3, 4, 5, 6, 8)])  # no grey
    print(f"{TOKENS} tokens, hidden {HIDDEN}, {EXPERTS} experts (intermediate {INTER}), top-{TOP_K}; "
          f"GPU: {torch.cuda.get_device_name() if HAS_GPU else 'none (layouts only)'}")
    """),
    md("""
    ## 1. Routing

    A router (a `HIDDEN x EXPERTS` linear layer) scores every token for every expert; each token
    goes to its `TOP_K` best experts, with gate weights from a softmax over those scores. The
    tokens here are random; a per-expert bias makes the load uneven, as it is in real models, so
    the experts get different numbers of rows.
    """),
    code("""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(TOKENS, HIDDEN, generator=gen).bfloat16()
    router = torch.randn(HIDDEN, EXPERTS, generator=gen) / HIDDEN ** 0.5
    bias = torch.linspace(-1.0, 1.0, EXPERTS)
    scores, topk_ids = (x.float() @ router + bias).topk(TOP_K, dim=1)   # [TOKENS, TOP_K]
    gates = scores.softmax(dim=1)

    # For each expert: the tokens routed to it (ascending) and their gate weights.
    expert_tokens, expert_gates = [], []
    for e in range(EXPERTS):
        token, slot = (topk_ids == e).nonzero(as_tuple=True)
        expert_tokens.append(token)
        expert_gates.append(gates[token, slot])
    counts = [len(t) for t in expert_tokens]
    print("tokens per expert:", counts, f"(sum {sum(counts)} = {TOP_K} x {TOKENS})")

    fig, axes = plt.subplots(1, 2, figsize=(14, 3.6), gridspec_kw={"width_ratios": [1, 2]})
    axes[0].bar(range(EXPERTS), counts, color=expert_colors.colors)
    axes[0].axhline(TOP_K * TOKENS / EXPERTS, color="black", linestyle="--", linewidth=1, label="balanced")
    axes[0].set_xlabel("expert"); axes[0].set_ylabel("tokens"); axes[0].legend()
    axes[0].set_title("tokens routed to each expert")
    first = 48
    routed = np.zeros((EXPERTS, first))
    for k in range(TOP_K):
        routed[topk_ids[:first, k].numpy(), np.arange(first)] = gates[:first, k].numpy()
    im = axes[1].imshow(routed, cmap="Greys", vmin=0, vmax=1, aspect="auto")
    fig.colorbar(im, ax=axes[1], label="gate weight")
    axes[1].set_xlabel("token"); axes[1].set_ylabel("expert")
    axes[1].set_title(f"the first {first} tokens: each goes to {TOP_K} experts")
    plt.tight_layout(); plt.show()
    """),
    md("""
    ## 2. The contiguous layout (prefill)

    `cute_gemm.moe.pack_contiguous` stacks the experts' token rows into one `[M_sum, K]` tensor.
    Each expert starts on a multiple of 128 rows (`get_m_alignment_for_contiguous_layout()`) and is
    followed by zero padding up to the next multiple; `m_indices[M_sum]` (int32) names each row's
    expert, `-1` for padding. The kernel cuts M into blocks of BLOCK_M rows (64 or 128, both divide
    128), reads the expert of each block from its first row, multiplies it by that expert's
    weights, and skips blocks that are all padding. It never writes padding rows.
    """),
    code("""
    packed, m_indices, row_offsets = moe.pack_contiguous([x[t] for t in expert_tokens])
    moe.check_contiguous_m_indices(m_indices, EXPERTS)   # the layout rule (reads m_indices on the host)
    m_sum = packed.shape[0]
    padding = m_sum - sum(counts)
    print(f"packed: {tuple(packed.shape)} {packed.dtype}; M_sum = {m_sum} rows, {padding} of them padding "
          f"({100 * padding / m_sum:.1f}%)")
    print("row_offsets:", row_offsets.tolist())
    print("m_indices around the end of expert 0:", m_indices[counts[0] - 3:counts[0] + 3].tolist(), "...")

    # Each packed row's token and gate weight, to combine the experts' outputs at the end (-1: padding).
    row_token = torch.full((m_sum,), -1, dtype=torch.int64)
    row_gate = torch.zeros(m_sum)
    for e in range(EXPERTS):
        start = int(row_offsets[e])
        row_token[start:start + counts[e]] = expert_tokens[e]
        row_gate[start:start + counts[e]] = expert_gates[e]
    assert torch.equal(packed[row_token >= 0], x[row_token[row_token >= 0]])
    """),
    md("""
    The picture: every 128-row block of the packed tensor (left to right), coloured by the expert
    of its rows, grey where the rows are padding; the bars on the right count each expert's valid
    and padding rows.
    """),
    code("""
    blocks = m_sum // ALIGN
    grid = np.full((ALIGN, blocks), np.nan)
    for b in range(blocks):
        grid[:, b] = m_indices[b * ALIGN:(b + 1) * ALIGN].numpy()
    grid[grid < 0] = np.nan
    cmap = expert_colors.copy(); cmap.set_bad("#cccccc")

    fig, axes = plt.subplots(1, 2, figsize=(15, 3.8), gridspec_kw={"width_ratios": [2.4, 1]})
    axes[0].imshow(grid, cmap=cmap, vmin=-0.5, vmax=EXPERTS - 0.5, aspect="auto", interpolation="nearest")
    for b in range(blocks + 1):
        axes[0].axvline(b - 0.5, color="white", linewidth=1)
    for b in range(blocks):
        axes[0].text(b, ALIGN / 2, f"e{int(m_indices[b * ALIGN])}", ha="center", va="center", fontsize=8)
    axes[0].set_xlabel(f"128-row block of the packed tensor (rows 128 b .. 128 b + 127), {blocks} blocks")
    axes[0].set_ylabel("row within the block")
    axes[0].set_title("m_indices: the expert of every row (grey: padding, -1)")
    pads = [int(row_offsets[e + 1] - row_offsets[e]) - counts[e] for e in range(EXPERTS)]
    axes[1].barh(range(EXPERTS), counts, color=expert_colors.colors, label="token rows")
    axes[1].barh(range(EXPERTS), pads, left=counts, color="#cccccc", label="padding rows")
    axes[1].invert_yaxis(); axes[1].set_yticks(range(EXPERTS), [f"expert {e}" for e in range(EXPERTS)])
    axes[1].set_xlabel("rows"); axes[1].legend(loc="upper right", fontsize=8)
    axes[1].set_title("rows per expert in the packed tensor")
    plt.tight_layout(); plt.show()
    """),
    md("""
    ## 3. The masked layout (decoding)

    In decoding the token counts change every step and live on the GPU; reading them on the host
    would stall the stream (and break CUDA-graph capture). The masked layout gives every expert a
    fixed slot of `M_max` rows, `a[EXPERTS, M_max, K]`, and the counts go in a device tensor
    `masked_m[EXPERTS]`. The grid is sized for full slots; rows at or past `masked_m[e]` are
    neither computed nor written. `expected_m` (a host hint: the typical count) picks the tile.
    The price is memory: every slot is `M_max` rows, whatever its count.
    """),
    code("""
    M_MAX = -(-max(counts) // ALIGN) * ALIGN   # every expert's slot: the largest count, rounded up to 128
    masked_m = torch.tensor(counts, dtype=torch.int32)
    expected_m = round(sum(counts) / EXPERTS)
    slots = torch.zeros(EXPERTS, M_MAX, HIDDEN, dtype=torch.bfloat16)
    for e in range(EXPERTS):
        slots[e, :counts[e]] = x[expert_tokens[e]]
    print(f"a: {tuple(slots.shape)}, masked_m = {masked_m.tolist()}, expected_m = {expected_m}")
    print(f"rows held: masked {EXPERTS * M_MAX}, contiguous {m_sum}, tokens x top-k {sum(counts)}")

    valid = np.full((EXPERTS, M_MAX), np.nan)
    for e in range(EXPERTS):
        valid[e, :counts[e]] = e
    fig, ax = plt.subplots(figsize=(14, 3.2))
    ax.imshow(valid, cmap=cmap, vmin=-0.5, vmax=EXPERTS - 0.5, aspect="auto", interpolation="nearest")
    for e in range(EXPERTS):
        inside = counts[e] > 0.8 * M_MAX
        ax.text(counts[e] + (-6 if inside else 6), e, f"masked_m = {counts[e]}", va="center", fontsize=8,
                ha="right" if inside else "left", color="white" if inside else "black")
    for r in range(ALIGN, M_MAX, ALIGN):
        ax.axvline(r - 0.5, color="white", linewidth=1)
    ax.set_yticks(range(EXPERTS), [f"expert {e}" for e in range(EXPERTS)])
    ax.set_xlabel(f"row of the expert's slot (0 .. M_max - 1 = {M_MAX - 1}; white lines every 128 rows)")
    ax.set_title("masked layout: valid rows coloured, rows past masked_m (grey) are never computed or written")
    plt.tight_layout(); plt.show()
    """),
    md("""
    ## 4. The configurations the library picks

    Plain Python, no GPU: `heuristics.choose_grouped_config` applies the dense tile rule to all
    experts' rows together; BLOCK_M follows the rows per expert (64 when an expert has at most 64
    rows). Next to it, the tiles each form computes. The contiguous kernel visits every tile of the
    packed tensor and skips the M blocks that are all padding (with 128-row alignment and BLOCK_M =
    128 only an empty expert has such blocks); a block that is partly padding is computed whole and
    only its token rows are stored, so the padding costs its share of the math. The masked kernel
    numbers only the row blocks below each `masked_m[e]` (the last one partly masked).
    """),
    code("""
    ceil_div = lambda a, b: -(-a // b)  # noqa: E731
    gemms = {"up (gate+up, 7168 -> 4096)": (2 * INTER, HIDDEN), "down (2048 -> 7168)": (HIDDEN, INTER)}
    for name, (n, k) in gemms.items():
        contiguous = heuristics.choose_grouped_config(GemmKind.M_GROUPED_CONTIGUOUS, m_sum, 1, n, k, SMS)
        masked = heuristics.choose_grouped_config(GemmKind.M_GROUPED_MASKED, min(expected_m, M_MAX),
                                                  EXPERTS, n, k, SMS)
        c_tiles = ceil_div(m_sum, contiguous.block_m) * ceil_div(n, contiguous.block_n)
        c_pad = sum(1 for b in range(ceil_div(m_sum, contiguous.block_m))
                    if m_indices[b * contiguous.block_m] < 0) * ceil_div(n, contiguous.block_n)
        m_tiles = sum(ceil_div(c, masked.block_m) for c in counts) * ceil_div(n, masked.block_n)
        print(f"{name}:")
        print(f"  contiguous: {contiguous.describe()}")
        print(f"              {c_tiles} tiles, {c_pad} of them padding (skipped): "
              f"{c_tiles - c_pad} computed, {ceil_div(c_tiles - c_pad, SMS)} waves on {SMS} SMs")
        print(f"  masked:     {masked.describe()}")
        print(f"              {m_tiles} tiles computed, {ceil_div(m_tiles, SMS)} waves on {SMS} SMs")
    """),
    md("""
    ## 5. The layer on the GPU: three ways, checked against each other

    The weights are random, quantised once like DeepSeek-V3's (`per_block_cast_to_fp8`: one scale
    per 128x128 block); activations are quantised per token (`per_token_cast_to_fp8`: one scale
    per row per 128 columns) before each GEMM. Each way computes, for every expert `e` and its rows
    `X_e`: `H_e = X_e W_up,e^T` (4096 wide: gate | up), `A_e = silu(gate) * up`,
    `Y_e = A_e W_down,e^T`, and the layer output is `out[t] = sum over t's experts of gate weight x
    Y_e[t]`.
    """),
    code("""
    DEV = "cuda" if HAS_GPU else None
    if not HAS_GPU:
        print("no CUDA GPU here: the GEMM cells below print this and skip")
    else:
        torch.manual_seed(0)
        w_up = (torch.randn(EXPERTS, 2 * INTER, HIDDEN, device=DEV) / HIDDEN ** 0.5).bfloat16()
        w_down = (torch.randn(EXPERTS, HIDDEN, INTER, device=DEV) / INTER ** 0.5).bfloat16()

        def quantize_experts(w):
            pairs = [cute_gemm.per_block_cast_to_fp8(w[e]) for e in range(EXPERTS)]
            return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])

        def quantize_tokens(t):
            \"\"\"Per-token FP8 of [..., K] (any leading dims), scales M-major and TMA-aligned.\"\"\"
            a, sfa = cute_gemm.per_token_cast_to_fp8(t.reshape(-1, t.shape[-1]))
            a, sfa = a.view(*t.shape), sfa.view(*t.shape[:-1], sfa.shape[-1])
            return a, cute_gemm.get_mn_major_tma_aligned_tensor(sfa)

        def swiglu(h):
            gate, up = h.float().chunk(2, dim=-1)
            return (F.silu(gate) * up).bfloat16()

        b_up, sfb_up = quantize_experts(w_up)
        b_down, sfb_down = quantize_experts(w_down)
        x_dev = x.to(DEV)
        tokens_dev = [t.to(DEV) for t in expert_tokens]
        gates_dev = [g.to(DEV) for g in expert_gates]
        print(f"weights: up {tuple(b_up.shape)}, down {tuple(b_down.shape)} FP8, "
              f"{(b_up.numel() + b_down.numel()) / 2**20:.0f} MiB")
    """),
    code("""
    if HAS_GPU:
        # 1. Contiguous: one launch per GEMM for all experts.
        m_indices_dev = m_indices.to(DEV)
        a_c, sfa_c = quantize_tokens(packed.to(DEV))
        h_c = torch.zeros(m_sum, 2 * INTER, dtype=torch.bfloat16, device=DEV)   # padding rows stay 0
        up_contiguous = lambda: cute_gemm.m_grouped_fp8_gemm_nt_contiguous(  # noqa: E731
            (a_c, sfa_c), (b_up, sfb_up), h_c, m_indices_dev)
        up_contiguous()
        a2_c, sfa2_c = quantize_tokens(swiglu(h_c))
        y_c = torch.zeros(m_sum, HIDDEN, dtype=torch.bfloat16, device=DEV)
        down_contiguous = lambda: cute_gemm.m_grouped_fp8_gemm_nt_contiguous(  # noqa: E731
            (a2_c, sfa2_c), (b_down, sfb_down), y_c, m_indices_dev)
        down_contiguous()
        y_contiguous = [y_c[int(row_offsets[e]):int(row_offsets[e]) + counts[e]] for e in range(EXPERTS)]

        # 2. Masked: [EXPERTS, M_MAX, K] slots, counts on the device.
        masked_m_dev = masked_m.to(DEV)
        a_m, sfa_m = quantize_tokens(slots.to(DEV))
        h_m = torch.zeros(EXPERTS, M_MAX, 2 * INTER, dtype=torch.bfloat16, device=DEV)
        up_masked = lambda: cute_gemm.m_grouped_fp8_gemm_nt_masked(  # noqa: E731
            (a_m, sfa_m), (b_up, sfb_up), h_m, masked_m_dev, expected_m)
        up_masked()
        a2_m, sfa2_m = quantize_tokens(swiglu(h_m))
        y_m = torch.zeros(EXPERTS, M_MAX, HIDDEN, dtype=torch.bfloat16, device=DEV)
        down_masked = lambda: cute_gemm.m_grouped_fp8_gemm_nt_masked(  # noqa: E731
            (a2_m, sfa2_m), (b_down, sfb_down), y_m, masked_m_dev, expected_m)
        down_masked()
        y_masked = [y_m[e, :counts[e]] for e in range(EXPERTS)]

        # 3a. A loop of dense FP8 GEMMs, one per expert (one launch each).
        loop_a = [quantize_tokens(x_dev[t]) for t in tokens_dev]
        loop_h = [torch.empty(c, 2 * INTER, dtype=torch.bfloat16, device=DEV) for c in counts]
        up_loop = lambda: [cute_gemm.fp8_gemm_nt(loop_a[e], (b_up[e], sfb_up[e]), loop_h[e])  # noqa: E731
                           for e in range(EXPERTS)]
        up_loop()
        loop_a2 = [quantize_tokens(swiglu(h)) for h in loop_h]
        y_loop = [torch.empty(c, HIDDEN, dtype=torch.bfloat16, device=DEV) for c in counts]
        down_loop = lambda: [cute_gemm.fp8_gemm_nt(loop_a2[e], (b_down[e], sfb_down[e]), y_loop[e])  # noqa: E731
                             for e in range(EXPERTS)]
        down_loop()

        # 3b. A loop of bf16 torch.matmul on the unquantised tensors: the reference.
        x_experts = [x_dev[t] for t in tokens_dev]
        up_torch = lambda: [torch.matmul(x_experts[e], w_up[e].T) for e in range(EXPERTS)]  # noqa: E731
        h_torch = up_torch()
        act_torch = [swiglu(h) for h in h_torch]
        down_torch = lambda: [torch.matmul(act_torch[e], w_down[e].T) for e in range(EXPERTS)]  # noqa: E731
        y_torch = down_torch()

        def combine(y_experts):
            out = torch.zeros(TOKENS, HIDDEN, dtype=torch.float32, device=DEV)
            for e in range(EXPERTS):
                out.index_add_(0, tokens_dev[e], y_experts[e].float() * gates_dev[e][:, None])
            return out

        outputs = {"contiguous": combine(y_contiguous), "masked": combine(y_masked),
                   "fp8_gemm_nt loop": combine(y_loop), "torch bf16 loop": combine(y_torch)}
        print("calc_diff of the layer outputs (0 = identical; FP8 vs bf16 ~1e-3 is quantisation error):")
        names = list(outputs)
        print(" " * 18 + "".join(f"{n:>18s}" for n in names))
        for a in names:
            print(f"{a:18s}" + "".join(f"{cute_gemm.calc_diff(outputs[a], outputs[b]):18.1e}" for b in names))
        assert max(cute_gemm.calc_diff(outputs[a], outputs["fp8_gemm_nt loop"]) for a in names[:2]) < 1e-5
        assert cute_gemm.calc_diff(outputs["contiguous"], outputs["torch bf16 loop"]) < 1e-2
        print("the three FP8 ways agree; all are within FP8 quantisation error of bf16")
    else:
        print("no CUDA GPU here: skipped")
    """),
    md("""
    ## 6. Time

    Each GEMM of each way is timed with `cute_gemm.timing.time_kernels`: the profiler's device time
    of the kernels one call launches (1 for a grouped GEMM, 8 for a loop), median of 30 calls with
    L2 flushed before each. TFLOPS count only the useful work, `2 x (tokens x top-k) x N x K`: no
    padding, no masked rows. The host time of launching 8 GEMMs from Python is *not* included, so
    a loop looks better here than in a real model.
    """),
    code("""
    if HAS_GPU:
        from cute_gemm.timing import time_kernels

        routed = sum(counts)
        ways = {"contiguous": (up_contiguous, down_contiguous), "masked": (up_masked, down_masked),
                "fp8_gemm_nt loop": (up_loop, down_loop), "torch bf16 loop": (up_torch, down_torch)}
        timing = {}
        print(f"{'':18s}{'up us':>9s}{'TFLOPS':>8s}{'down us':>10s}{'TFLOPS':>8s}")
        for name, fns in ways.items():
            row = []
            for fn, (n, k) in zip(fns, gemms.values()):
                us = time_kernels(fn, iters=30)
                row.append((us, 2 * routed * n * k / us / 1e6))
            timing[name] = row
            print(f"{name:18s}{row[0][0]:9.1f}{row[0][1]:8.0f}{row[1][0]:10.1f}{row[1][1]:8.0f}")

        fig, ax = plt.subplots(figsize=(10, 4))
        width = 0.2
        for i, name in enumerate(timing):
            values = [timing[name][g][1] for g in range(2)]
            bars = ax.bar(np.arange(2) + (i - 1.5) * width, values, width, label=name)
            ax.bar_label(bars, fmt="%.0f", fontsize=8)
        ax.set_xticks(range(2), list(gemms)); ax.set_ylabel("TFLOPS (useful work)")
        ax.set_title(f"MoE experts, {TOKENS} tokens, top-{TOP_K} of {EXPERTS}, on {torch.cuda.get_device_name()}")
        ax.legend(fontsize=8); plt.tight_layout(); plt.show()
    else:
        print("no CUDA GPU here: nothing timed. Run this notebook on an H100/H200 "
              "(tools/execute_notebooks.sh) to fill this table.")
    """),
    md("""
    ## What to take away

    - Both grouped forms compute exactly what a loop of dense FP8 GEMMs computes (`calc_diff` ~0
      between them), in **one launch** instead of one per expert, and fill the SMs with tiles of all
      experts at once; a loop runs each expert's few tiles on its own and pays a launch (and, in a
      model, Python) per expert.
    - **Contiguous** costs padding up to a multiple of 128 rows per expert (skipped by the kernel,
      but held in memory) and needs the counts on the host to pack; **masked** holds `M_max` rows
      per expert but never reads the counts on the host, so a decoding step can be captured once
      in a CUDA graph and replayed with new counts.
    - The schedule behind both, tile by tile, is drawn in notebook 03; the layouts' helpers are in
      `cute_gemm/moe.py`.
    """),
]


NOTEBOOKS = {
    "01_layouts.ipynb": LAYOUTS,
    "02_tile_changes.ipynb": TILE_CHANGES,
    "03_scheduler.ipynb": SCHEDULER,
    "04_moe.ipynb": MOE,
}


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
