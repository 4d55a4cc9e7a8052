"""The A box of a decoding tile, on the CPU (layouts evaluated by the DSL at compile time).

Proves, for every box of :data:`cute_gemm.kernels.fp8_gemm_sm90.A_BOX_ROWS` (8 to 56 rows, 24/40/48/56
not dividing the 64-row stage): ``layouts.smem.first_rows`` of the 64-row A stages gives, at every
row of the box, the offset the full stage buffer gives (what WGMMA reads), and that offset is where
TMA writes that row with the box layout the kernel builds its TMA atom from (the stage's start
plus the box's own swizzled offset); likewise for the A scales.
"""

import cutlass
import cutlass.cute as cute
import pytest

from cute_gemm.kernels.fp8_gemm_sm90 import A_BOX_ROWS
from layouts import scales, smem

STAGES, BLOCK_M, BLOCK_K = 4, 64, 128
SAMPLE_K = (0, 15, 16, 77, 127)  # each 16-byte chunk class the swizzle permutes, both ends


def _offsets(rows: int) -> dict:
    found = {}

    @cute.jit
    def evaluate():
        full = smem.operand_smem_layout(cutlass.Float8E4M3FN, BLOCK_M, BLOCK_K, STAGES)
        view = smem.first_rows(full, rows)
        box = cute.slice_(smem.operand_smem_layout(cutlass.Float8E4M3FN, rows, BLOCK_K, 1), (None, None, 0))
        sfa_full = scales.sfa_smem_layout(BLOCK_M, STAGES)
        sfa_view = smem.first_rows(sfa_full, rows)
        sfa_box = cute.slice_(scales.sfa_smem_layout(rows, 1), (None, None, 0))
        for s in cutlass.range_constexpr(STAGES):
            for r in cutlass.range_constexpr(rows):
                for k in SAMPLE_K:
                    found["a", r, k, s] = (view((r, k, s)), full((r, k, s)), full((0, 0, s)) + box((r, k)))
                found["sfa", r, 0, s] = (sfa_view((r, 0, s)), sfa_full((r, 0, s)), sfa_full((0, 0, s)) + sfa_box((r, 0)))

    evaluate()
    return found


@pytest.mark.parametrize("rows", A_BOX_ROWS)
def test_a_box_is_the_first_rows_of_each_stage(rows):
    offsets = _offsets(rows)
    assert len(offsets) == STAGES * rows * (len(SAMPLE_K) + 1)
    for key, (view, full, tma) in offsets.items():
        assert view == full == tma, (key, view, full, tma)
