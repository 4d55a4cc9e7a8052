"""Writes and executes the example notebooks that need no GPU (outputs saved in the .ipynb)."""
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell

SCHEDULER = [
    md("# 03 · The persistent schedule\n\nWhich CTA (one per SM) computes which output tile, in which order, "
       "for a dense GEMM and the two MoE layouts, and what the L2 rasterisation group changes. "
       "Everything here is the plain-Python twin of the kernel's scheduler (`schedulers/reference.py`), "
       "which calls the very `rasterize` function the kernel calls; **no GPU needed**."),
    code("import numpy as np\nimport matplotlib.pyplot as plt\n"
         "from schedulers.reference import normal_schedule, contiguous_schedule, masked_schedule\n"
         "import schedulers.raster as raster\n"
         "print(raster.__doc__)"),
    md("## Dense: tile id = iteration × num_CTAs + CTA id\n\n"
       "M = 4096, N = 7168 with 128×160 tiles on 132 SMs: 32 × 45 = 1440 tiles, 11 waves. "
       "Left: the iteration (wave) in which each tile is computed. Right: the CTA that computes it."),
    code("def grid(tiles, field):\n"
         "    out = np.full((max(t.m_block for t in tiles) + 1, max(t.n_block for t in tiles) + 1), np.nan)\n"
         "    for t in tiles:\n"
         "        out[t.m_block, t.n_block] = getattr(t, field)\n"
         "    return out\n\n"
         "tiles = normal_schedule(4096, 7168, 128, 160, num_sms=132, group=16, along_m=True)\n"
         "fig, ax = plt.subplots(1, 2, figsize=(12, 4.5))\n"
         "for a, field in zip(ax, ('iteration', 'cta')):\n"
         "    im = a.imshow(grid(tiles, field), cmap='viridis' if field == 'iteration' else 'tab20')\n"
         "    a.set_title(f'{field} per tile (rows: M blocks, columns: N blocks)'); fig.colorbar(im, ax=a)\n"
         "plt.tight_layout(); plt.show()"),
    md("## What the raster group changes\n\nThe 132 tiles in flight at once share A tiles (same M block) and B tiles "
       "(same N block) through L2. Bands of `group` M blocks keep the first wave on a few rows of A while B streams: "
       "fewer distinct operand tiles per wave means a smaller L2 working set."),
    code("for group in (1, 2, 4, 8, 16, 32):\n"
         "    tiles = normal_schedule(4096, 7168, 128, 160, num_sms=132, group=group, along_m=True)\n"
         "    first = [t for t in tiles if t.iteration == 0]\n"
         "    a_tiles = len({t.m_block for t in first}); b_tiles = len({t.n_block for t in first})\n"
         "    mb = (a_tiles * 128 + b_tiles * 160) * 7168 / 2**20\n"
         "    print(f'group {group:2d}: first wave touches {a_tiles:2d} A tiles + {b_tiles:2d} B tiles = {mb:6.1f} MB of operands')"),
    md("## m-grouped contiguous: padding blocks are skipped\n\nFour experts with 300, 0, 130 and 64 tokens, "
       "each padded to 128 rows (`m_indices = -1`). Blank cells: blocks whose first row is padding — no work, no write."),
    code("group_rows = [300, 0, 130, 64]\nm_indices = []\nfor g, rows in enumerate(group_rows):\n"
         "    m_indices += [g] * rows + [-1] * (-rows % 128)\n"
         "tiles = contiguous_schedule(m_indices, 1024, 64, 128, num_sms=16, group=16, along_m=True)\n"
         "fig, ax = plt.subplots(1, 2, figsize=(10, 4))\n"
         "for a, field in zip(ax, ('group', 'iteration')):\n"
         "    im = a.imshow(grid(tiles, field) if field == 'iteration' else grid(tiles, 'group'), cmap='tab10')\n"
         "    a.set_title(f'{field} per tile (64x128 tiles)'); fig.colorbar(im, ax=a)\n"
         "plt.tight_layout(); plt.show()\nprint(len(m_indices), 'rows,', len(tiles), 'tiles computed')"),
    md("## m-grouped masked: units numbered expert by expert\n\n`masked_m = [37, 0, 256, 129]` rows valid out of "
       "M_max = 256. Expert 1 owns no units; the last tile of each expert stores only its valid rows."),
    code("tiles = masked_schedule([37, 0, 256, 129], 256, 1024, 64, 128, num_sms=20, group=16, along_m=True)\n"
         "for g in range(4):\n"
         "    mine = [t for t in tiles if t.group == g]\n"
         "    print(f'expert {g}: {len(mine):2d} tiles, M blocks {sorted({t.m_block for t in mine})}')"),
    md("## The configuration the heuristic picks, and why"),
    code("from cute_gemm import heuristics\nfor m, n, k in ((64, 2112, 7168), (4096, 7168, 16384)):\n"
         "    print(heuristics.explain(m, n, k, 132)); print()"),
]


LAYOUTS = [
    md("# 01 · Layouts: swizzled operands and the scale factors\n\nThe shared-memory layouts the kernel uses "
       "(`layouts/smem.py`, `layouts/scales.py`), printed by the CuTe DSL and drawn, and how the promotion stage "
       "sees the scales. CuTe layouts are built while a `@cute.jit` function is traced, so we print them from "
       "inside one. **No GPU needed** (the DSL compiles for `sm_90a` on the CPU)."),
    code("import cute_gemm  # first: sets CUTE_DSL_ARCH=sm_90a before the DSL is imported\n"
         "import numpy as np\nimport matplotlib.pyplot as plt\nimport cutlass, cutlass.cute as cute\n"
         "import cutlass.utils.hopper_helpers as sm90_utils\nfrom cutlass.cute.nvgpu import OperandMajorMode\n"
         "from layouts import smem, scales\n\n"
         "@cute.jit\ndef show_layouts():\n"
         "    print('A stage, fp8 128x128, 4 stages:', smem.operand_smem_layout(cutlass.Float8E4M3FN, 128, 128, 4))\n"
         "    print('B stage, fp8 112x128, 4 stages:', smem.operand_smem_layout(cutlass.Float8E4M3FN, 112, 128, 4))\n"
         "    print('D piece, bf16 128x32, 2 buffers:', smem.epilogue_smem_layout(cutlass.BFloat16, (128, 32), 2))\n"
         "    print('SFA stage buffer:', scales.sfa_smem_layout(128, 4))\n"
         "    print('SFA seen as the accumulator:', scales.sfa_as_accumulator(128, 128, 4))\n\n"
         "show_layouts()"),
    md("## The 128-byte swizzle\n\n`S<3,4,3>`: the 16-byte chunk index (address bits 4-6) is XORed with the row "
       "within the 8-row atom (bits 7-9). A K-major FP8 row is 128 bytes = 8 chunks. Without the swizzle all 8 rows "
       "of a column would sit in the same 16-byte bank group (an 8-way conflict for the tensor core's reads); with it "
       "each row of a column lands in a different one."),
    code("rows, chunks = np.arange(8)[:, None], np.arange(8)[None, :]\nplain = np.broadcast_to(chunks, (8, 8))\n"
         "swizzled = chunks ^ rows   # Swizzle<3,4,3> on byte addresses: chunk ^= row (mod 8)\n"
         "fig, ax = plt.subplots(1, 2, figsize=(9, 4))\n"
         "for a, grid, title in zip(ax, (plain, swizzled), ('no swizzle', 'Swizzle<3,4,3>')):\n"
         "    a.imshow(grid, cmap='tab10'); a.set_title(title + ': bank group of (row, 16-B chunk)')\n"
         "    a.set_xlabel('logical 16-byte chunk (k / 16)'); a.set_ylabel('row (m)')\n"
         "    for r in range(8):\n        for c in range(8):\n            a.text(c, r, int(grid[r, c]), ha='center', va='center')\n"
         "plt.tight_layout(); plt.show()\n"
         "print('distinct bank groups per logical column:', [len(set(swizzled[:, c])) for c in range(8)])"),
    md("## Scale factors in global memory\n\nSFA is `[m, ceil(k/128)]` stored **M-major** with `m` padded to a "
       "multiple of 4, so each K block's column of scales starts 16-byte aligned and TMA can load `BLOCK_M` of them "
       "in one box."),
    code("import torch\nsfa = torch.arange(5 * 3, dtype=torch.float32).view(5, 3)\n"
         "aligned = cute_gemm.get_mn_major_tma_aligned_tensor(sfa)\n"
         "print('shape', tuple(aligned.shape), 'strides', aligned.stride(), '(m = 5 padded to 8)')\n"
         "print('same values:', torch.equal(aligned, sfa))"),
    md("## How the promotion stage sees the scales\n\nThe SFA stage is viewed as a `(BLOCK_M, BLOCK_N)` tensor "
       "with column stride 0 and partitioned exactly like the WGMMA accumulator, so element *i* of a thread's view "
       "is the scale of the row of its accumulator element *i*. Below: which rows each thread's accumulator (and so "
       "its scales) covers, for a 128x32 corner of a 128x128 tile with two math warpgroups. Each thread owns rows "
       "r and r + 8 of its warp's 16-row slab. (Partitioning with the warpgroup's slice instead would give every "
       "thread thread 0's rows: a silent wrong-scale bug that `tests/test_compile.py` guards against.)"),
    code("coords = {}\n\n@cute.jit\ndef ownership():\n"
         "    mma = sm90_utils.make_trivial_tiled_mma(cutlass.Float8E4M3FN, cutlass.Float8E4M3FN, OperandMajorMode.K,\n"
         "        OperandMajorMode.K, cutlass.Float32, atom_layout_mnk=(2, 1, 1), tiler_mn=(64, 128))\n"
         "    ident = cute.make_identity_tensor((128, 128))\n"
         "    for t in cutlass.range_constexpr(256):  # unrolled while tracing: coordinates are static\n"
         "        part = mma.get_slice(t).partition_C(ident)\n"
         "        coords[t] = [tuple(int(x) for x in part[i]) for i in range(cute.size(part))]\n\n"
         "ownership()\nowner = np.zeros((128, 32), dtype=int)\n"
         "for t, cs in coords.items():\n    for r, c in cs:\n        if c < 32:\n            owner[r, c] = t\n"
         "for t in (0, 5, 33, 130):\n    print(f'thread {t:3d} rows:', sorted({r for r, _ in coords[t]}))\n"
         "plt.figure(figsize=(5, 8)); plt.imshow(owner, cmap='nipy_spectral', aspect='auto')\n"
         "plt.title('thread owning each accumulator element'); plt.xlabel('column'); plt.ylabel('row'); plt.colorbar(); plt.show()"),
    md("## B scales when a tile straddles two 128-column blocks\n\nWith BLOCK_N = 112, tile *j* starts at column "
       "112*j; its columns from `split_col = 128 - (112 j mod 128)` on read the next B scale. The kernel branches "
       "once per K block into a copy of the promotion specialised for that split (`promotion.split_candidates`)."),
    code("from cute_gemm.promotion import split_candidates\nprint('possible split columns for BLOCK_N=112:', split_candidates(112))\n"
         "img = np.zeros((8, 112))\nfor j in range(8):\n    split = 128 - (112 * j) % 128\n    img[j, min(split, 112):] = 1\n"
         "plt.figure(figsize=(8, 2.5)); plt.imshow(img, aspect='auto', cmap='coolwarm')\n"
         "plt.xlabel('column within the tile'); plt.ylabel('tile j'); plt.title('red: columns reading the second B scale'); plt.show()"),
]


def build(path, cells):
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    nbformat.write(nb, path)
    print(f"wrote {path} ({Path(path).stat().st_size // 1024} KB)")


if __name__ == "__main__":
    build(ROOT / "examples" / "01_layouts.ipynb", LAYOUTS)
    build(ROOT / "examples" / "03_scheduler.ipynb", SCHEDULER)
    sys.exit(0)
