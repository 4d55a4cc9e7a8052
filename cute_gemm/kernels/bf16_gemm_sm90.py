"""Persistent, warp-specialized BF16 GEMM for Hopper (sm_90a), on the FP8 kernel's roles.

    D[M, N] (bf16 or fp32) [+]= A[M, K] (bf16) @ B[N, K]^T (bf16)

Everything but the mainloop's math is :class:`cute_gemm.kernels.fp8_gemm_sm90.Fp8GemmSm90`: the
producer role, the mainloop and epilogue pipelines, the unified scheduler (dense and both m-grouped
kinds), the epilogue (bf16 or fp32 out, TMA store or reduce-add). The difference: no scales, so
no SFA in the pipeline and no promotion. WGMMA (``m64nNk16``, 4 per 64-deep K block) accumulates
straight into the tile's accumulator, and one K block's WGMMAs stay in flight while the next is
issued.
"""

from __future__ import annotations

import cutlass
import cutlass.cute as cute
import cutlass.pipeline as pipeline
from cutlass import Int32
from cutlass.cute.nvgpu import warpgroup

from cute_gemm.kernels.fp8_gemm_sm90 import Fp8GemmSm90


class Bf16GemmSm90(Fp8GemmSm90):
    """BF16 GEMM: :class:`Fp8GemmSm90`'s roles and pipelines with bf16 operands, BLOCK_K = 64
    (128-byte rows, as FP8's 128) and an unscaled mainloop (:meth:`mma_tile`).

    Pipelines as the FP8 kernel, with a stage's tx bytes = A + B tiles only. The math warpgroups
    release a stage once the WGMMAs that read it completed: the K block after it has been issued
    (``wait_group(waves)``), so the tensor cores always have one K block queued.
    """

    AB_DTYPE = "bf16"

    @cute.jit
    def __call__(
        self,
        a: cute.Tensor,  # (M, K) bf16, K-major
        b: cute.Tensor,  # (N, K) bf16, K-major
        d: cute.Tensor,  # (M, N) bf16 or fp32, N-major
        num_sms: Int32,
        stream,
    ):
        """Dense launch (``GemmKind.NORMAL``)."""
        self._launch(a, b, d, None, None, None, num_sms, stream)

    @cute.jit
    def grouped(
        self,
        a: cute.Tensor,  # contiguous: (M_sum, K); masked: (M_max, K, G)
        b: cute.Tensor,  # (N, K, G)
        d: cute.Tensor,  # contiguous: (M_sum, N); masked: (M_max, N, G)
        group_info: cute.Tensor,  # int32 m_indices (M_sum,) or masked_m (G,)
        num_sms: Int32,
        stream,
    ):
        """Grouped launch (``M_GROUPED_CONTIGUOUS`` / ``M_GROUPED_MASKED``)."""
        self._launch(a, b, d, None, None, group_info, num_sms, stream)

    @cute.jit
    def mma_tile(
        self, tile, k_blocks_done: Int32, mainloop: pipeline.PipelineTmaAsync,
        tiled_mma: cute.TiledMma, tCrA: list, tCrB: cute.Tensor, tCsSFA, tCrSFA,
        tCsSFB, tCrSFB, accs: list, partials, chunk_cols: cutlass.Constexpr,
        candidates: cutlass.Constexpr,
    ):
        """All K blocks of one tile into ``accs`` (the scale arguments are unused: no scales)."""
        num_mma_k = cute.size(tCrA[0], mode=[2])
        num_k_blocks = tile.num_k_blocks
        state = pipeline.PipelineState(
            self.stages, k_blocks_done, k_blocks_done % self.stages, (k_blocks_done // self.stages) % 2
        )
        release = state.clone()
        for w in cutlass.range_constexpr(self.num_waves):
            accs[w].fill(0.0)
        warpgroup.fence()
        for k_block in range(num_k_blocks):
            mainloop.consumer_wait(state)
            for w in cutlass.range_constexpr(self.num_waves):
                for kk in cutlass.range_constexpr(num_mma_k):
                    # A fresh atom that accumulates (the tile started from zeros), as in the FP8 loop.
                    mma = cute.make_mma_atom(tiled_mma.op)
                    mma.set(warpgroup.Field.ACCUMULATE, True)
                    cute.gemm(
                        mma, accs[w], tCrA[w][(None, None, kk, state.index)],
                        tCrB[(None, None, kk, state.index)], accs[w],
                    )
                warpgroup.commit_group()
            # The previous K block's WGMMAs are done: its stage can be refilled.
            warpgroup.wait_group(self.num_waves)
            if k_block > 0:
                self.release_stage(mainloop, release)
                release.advance()
            state.advance()
        warpgroup.wait_group(0)
        if num_k_blocks > 0:
            self.release_stage(mainloop, release)
