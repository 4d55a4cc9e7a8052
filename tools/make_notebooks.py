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


def build(path, cells):
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    nbformat.write(nb, path)
    print(f"wrote {path} ({Path(path).stat().st_size // 1024} KB)")


if __name__ == "__main__":
    build(ROOT / "examples" / "03_scheduler.ipynb", SCHEDULER)
    sys.exit(0)
