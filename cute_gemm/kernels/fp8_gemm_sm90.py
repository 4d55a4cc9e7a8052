"""Persistent, warp-specialized FP8 GEMM with fine-grained scaling for Hopper (sm_90a).

    D[M, N] (bf16) = (A[M, K] fp8 e4m3 * SFA[M, ceil(K/128)]) @ (B[N, K] fp8 e4m3 * SFB[ceil(N/128), ceil(K/128)])^T

A is scaled per row per 128-wide K block (1x128), B per 128x128 block.
"""

from __future__ import annotations

import cutlass
import cutlass.cute as cute
import cutlass.pipeline as pipeline
import cutlass.utils.hopper_helpers as sm90_utils
from cutlass import Float32, Int32
from cutlass.cute.nvgpu import OperandMajorMode, cpasync, warpgroup
from cutlass.memory import SmemAllocator, get_smem_capacity_in_bytes
from cutlass.tensor_utils import LayoutEnum

from cute_gemm.promotion import promote, split_candidates
from layouts import scales as scale_layouts
from layouts import smem as smem_layouts
from layouts import tiles
from schedulers.persistent import PersistentTileScheduler

SMEM_CAPACITY = get_smem_capacity_in_bytes("sm_90")  # 232448 B = 227 KB per CTA
EPILOGUE_STAGES = 2
BARRIER_BYTES = 1024  # mbarriers and alignment slack


def _stage_bytes(block_m: int, block_n: int) -> int:
    """Bytes of one pipeline stage: A and B tiles (1 B per fp8) plus BLOCK_M fp32 A scales."""
    return (block_m + block_n) * tiles.BLOCK_K + block_m * 4


def shared_memory_bytes(block_m: int, block_n: int, stages: int) -> int:
    """Upper bound of the kernel's shared memory for a configuration (plain Python)."""
    epi_m, epi_n = tiles.epilogue_tile(block_m, block_n)
    return stages * _stage_bytes(block_m, block_n) + EPILOGUE_STAGES * epi_m * epi_n * 2 + BARRIER_BYTES


def max_stages(block_m: int, block_n: int) -> int:
    """Most pipeline stages that fit in 227 KB of shared memory."""
    fixed = shared_memory_bytes(block_m, block_n, 0)
    return (SMEM_CAPACITY - fixed) // _stage_bytes(block_m, block_n)


class Fp8GemmSm90:
    """FP8 1x128/128x128-scaled GEMM: one TMA producer warpgroup, one or two math warpgroups.

    Roles (threads = 128 * (1 + BLOCK_M / 64)):

    - warpgroup 0, the **producer** (``setmaxnreg`` down to 40): warp 0's elected thread walks the
      tile schedule and, per K block, issues TMA loads of the A tile, the B tile and the tile's
      BLOCK_M scales of A into one stage of the mainloop pipeline. Warps 1-3 only give registers back.
    - warpgroups 1.., the **math** warpgroups (``setmaxnreg`` up; 64 rows of the tile each): per K
      block, 4 x ``wgmma m64nNk32`` into a fresh fp32 ``partial``, wait, release the stage, then the
      promotion stage (:func:`cute_gemm.promotion.promote`) adds ``partial * sfa * sfb`` to the
      tile accumulator. After the last K block: the **epilogue** converts to bf16, writes pieces of
      ``(BLOCK_M, 32 or 16)`` to swizzled smem with stmatrix, and one warp stores each by TMA.

    Pipelines:

    - ``mainloop`` (``PipelineTmaAsync``, ``stages`` deep): producer = 1 thread (arrive + tx bytes
      = A + B + SFA bytes of a stage); consumer arrive count = number of math warps (one elected
      lane per warp releases a stage).
    - ``epilogue store`` (``PipelineTmaStore``, 2 buffers): the storing warp commits a TMA store
      per piece and waits until a buffer is free before the next; math warps sync on named
      barrier 1 around each piece.

    Both roles walk the same :class:`schedulers.persistent.PersistentTileScheduler` sequence, so no
    tile information passes between them.
    """

    def __init__(
        self,
        block_m: int,
        block_n: int,
        stages: int,
        cluster_m: int = 1,
        cluster_n: int = 1,
        raster_group: int = 16,
        raster_along_m: bool = True,
    ):
        tiles.check_tile(block_m, block_n)
        if (cluster_m, cluster_n) not in ((1, 1), (2, 1), (1, 2)):
            raise ValueError(f"cluster (m, n) must be (1, 1), (2, 1) or (1, 2), got {(cluster_m, cluster_n)}")
        if not 2 <= stages <= max_stages(block_m, block_n):
            raise ValueError(
                f"stages must be in [2, {max_stages(block_m, block_n)}] for a "
                f"{block_m}x{block_n} tile, got {stages}"
            )
        self.block_m, self.block_n, self.stages = block_m, block_n, stages
        # A cluster of 2 CTAs along M shares (multicasts) B; along N it shares A and SFA.
        self.cluster_mn = (cluster_m, cluster_n)
        self.raster_group, self.raster_along_m = raster_group, raster_along_m
        self.tile_shape_mnk = (block_m, block_n, tiles.BLOCK_K)
        self.epi_tile = tiles.epilogue_tile(block_m, block_n)

        self.num_math_warpgroups = block_m // tiles.ROWS_PER_MATH_WARPGROUP
        self.num_math_threads = 128 * self.num_math_warpgroups
        self.threads_per_cta = 128 + self.num_math_threads
        # NOTES: 40 + n * R registers per thread of each warpgroup must fit 64K: 232 for two math
        # warpgroups (DeepGEMM's choice), 240 for one.
        self.producer_registers = 40
        self.math_registers = 232 if self.num_math_warpgroups == 2 else 240
        self.epilogue_barrier = pipeline.NamedBarrier(barrier_id=1, num_threads=self.num_math_threads)
        self.store_warp = 4  # first warp of the first math warpgroup

    # ------------------------------------------------------------------------------------------
    # host side
    # ------------------------------------------------------------------------------------------
    @cute.jit
    def __call__(
        self,
        a: cute.Tensor,  # (M, K) fp8, K-major
        b: cute.Tensor,  # (N, K) fp8, K-major
        d: cute.Tensor,  # (M, N) bf16, N-major
        sfa: cute.Tensor,  # (M, ceil(K/128)) fp32, M-major, column stride % 4 == 0
        sfb: cute.Tensor,  # (ceil(N/128), ceil(K/128)) fp32
        num_sms: Int32,
        stream,
    ):
        bM, bN, bK = self.tile_shape_mnk
        tiled_mma = sm90_utils.make_trivial_tiled_mma(
            a.element_type,
            b.element_type,
            OperandMajorMode.K,
            OperandMajorMode.K,
            Float32,
            atom_layout_mnk=(self.num_math_warpgroups, 1, 1),
            tiler_mn=(64, bN),
        )
        # (bM, bK, stages), (bN, bK, stages), (epi_m, epi_n, 2)
        a_smem_layout = smem_layouts.operand_smem_layout(a.element_type, bM, bK, self.stages)
        b_smem_layout = smem_layouts.operand_smem_layout(b.element_type, bN, bK, self.stages)
        epi_smem_layout = smem_layouts.epilogue_smem_layout(d.element_type, self.epi_tile, EPILOGUE_STAGES)
        sfa_smem_layout = scale_layouts.sfa_smem_layout(bM, self.stages)

        cm, cn = self.cluster_mn
        tma_atom_a, tma_a = cpasync.make_tiled_tma_atom(
            self._g2s_op(cn), a, cute.slice_(a_smem_layout, (None, None, 0)), (bM, bK), num_multicast=cn
        )
        tma_atom_b, tma_b = cpasync.make_tiled_tma_atom(
            self._g2s_op(cm), b, cute.slice_(b_smem_layout, (None, None, 0)), (bN, bK), num_multicast=cm
        )
        tma_atom_sfa, tma_sfa = cpasync.make_tiled_tma_atom(
            self._g2s_op(cn), sfa, cute.slice_(sfa_smem_layout, (None, None, 0)), (bM, 1), num_multicast=cn
        )
        tma_atom_d, tma_d = cpasync.make_tiled_tma_atom(
            cpasync.CopyBulkTensorTileS2GOp(),
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
            sSFA: cute.struct.Align[cute.struct.MemRange[Float32, bM * self.stages], 128]

        self.shared_storage = SharedStorage

        num_units = cute.ceil_div(d.shape[0], bM * cm) * cute.ceil_div(d.shape[1], bN * cn)
        num_clusters = cutlass.max(cutlass.min(num_units, num_sms // (cm * cn)), 1)
        self.kernel(
            tiled_mma,
            tma_atom_a, tma_a,
            tma_atom_b, tma_b,
            tma_atom_sfa, tma_sfa,
            tma_atom_d, tma_d,
            sfb,
            a_smem_layout, b_smem_layout, epi_smem_layout,
        ).launch(
            grid=[num_clusters * cm, cn, 1],
            block=[self.threads_per_cta, 1, 1],
            cluster=[cm, cn, 1],
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
        tma_atom_d: cute.CopyAtom,
        mD_mn: cute.Tensor,
        mSFB_nk: cute.Tensor,
        a_smem_layout: cute.ComposedLayout,
        b_smem_layout: cute.ComposedLayout,
        epi_smem_layout: cute.ComposedLayout,
    ):
        bM, bN, bK = self.tile_shape_mnk
        tidx, _, _ = cute.arch.thread_idx()
        warp_idx = cute.arch.make_warp_uniform(cute.arch.warp_idx())
        warpgroup_idx = cute.arch.make_warp_uniform(tidx // 128)

        if warp_idx == 0:
            cpasync.prefetch_descriptor(tma_atom_a)
            cpasync.prefetch_descriptor(tma_atom_b)
            cpasync.prefetch_descriptor(tma_atom_sfa)
            cpasync.prefetch_descriptor(tma_atom_d)

        cta_layout_mnk = cute.make_layout((*self.cluster_mn, 1))
        cluster_coord_mnk = cta_layout_mnk.get_flat_coord(
            cute.arch.make_warp_uniform(cute.arch.block_idx_in_cluster())
        )
        storage = SmemAllocator().allocate(self.shared_storage)
        mainloop = self.make_mainloop_pipeline(storage.mainloop_barriers.data_ptr())
        pipeline.pipeline_init_arrive(cluster_shape_mn=self.cluster_mn, is_relaxed=True)

        # (bM, bK, stages), (bN, bK, stages), (epi_m, epi_n, 2), (bM, 1, stages)
        sA = storage.sA.get_tensor(a_smem_layout.outer, swizzle=a_smem_layout.inner)
        sB = storage.sB.get_tensor(b_smem_layout.outer, swizzle=b_smem_layout.inner)
        sD = storage.sD.get_tensor(epi_smem_layout.outer, swizzle=epi_smem_layout.inner)
        sSFA = storage.sSFA.get_tensor(scale_layouts.sfa_smem_layout(bM, self.stages))

        num_m_blocks = cute.ceil_div(mD_mn.shape[0], bM)
        num_n_blocks = cute.ceil_div(mD_mn.shape[1], bN)
        num_k_blocks = cute.ceil_div(mA_mk.shape[1], bK)
        sched = PersistentTileScheduler(
            num_m_blocks, num_n_blocks, self.raster_group, self.raster_along_m, self.cluster_mn
        )
        pipeline.pipeline_init_wait(cluster_shape_mn=self.cluster_mn)

        if warpgroup_idx == 0:
            cute.arch.setmaxregister_decrease(self.producer_registers)
            if warp_idx == 0:
                self.load(
                    sched, num_k_blocks, mainloop, cta_layout_mnk, cluster_coord_mnk,
                    tma_atom_a, mA_mk, sA,
                    tma_atom_b, mB_nk, sB,
                    tma_atom_sfa, mSFA_mk, sSFA,
                )
        else:
            cute.arch.setmaxregister_increase(self.math_registers)
            self.mma_and_epilogue(
                sched, num_k_blocks, mainloop, tiled_mma,
                sA, sB, sSFA, mSFB_nk,
                tma_atom_d, mD_mn, sD, tidx - 128, warp_idx,
            )

    def make_mainloop_pipeline(self, barrier_ptr) -> pipeline.PipelineTmaAsync:
        """The A/B/SFA pipeline: 1 producer thread; a stage is free once every math warp of every
        CTA that received it by multicast has released it (one arrive per warp per such CTA)."""
        cm, cn = self.cluster_mn
        return pipeline.PipelineTmaAsync.create(
            barrier_storage=barrier_ptr,
            num_stages=self.stages,
            producer_group=pipeline.CooperativeGroup(pipeline.Agent.Thread),
            consumer_group=pipeline.CooperativeGroup(
                pipeline.Agent.Thread, (cm + cn - 1) * self.num_math_threads // 32
            ),
            tx_count=_stage_bytes(self.block_m, self.block_n),
            cta_layout_vmnk=cute.make_layout((1, cm, cn, 1)),
            defer_sync=True,
        )

    @staticmethod
    def _g2s_op(num_multicast: int):
        if num_multicast == 1:
            return cpasync.CopyBulkTensorTileG2SOp()
        return cpasync.CopyBulkTensorTileG2SMulticastOp()

    @cute.jit
    def load(
        self,
        sched: PersistentTileScheduler,
        num_k_blocks: Int32,
        mainloop: pipeline.PipelineTmaAsync,
        cta_layout_mnk: cute.Layout,
        cluster_coord_mnk,
        tma_atom_a: cute.CopyAtom, mA_mk: cute.Tensor, sA: cute.Tensor,
        tma_atom_b: cute.CopyAtom, mB_nk: cute.Tensor, sB: cute.Tensor,
        tma_atom_sfa: cute.CopyAtom, mSFA_mk: cute.Tensor, sSFA: cute.Tensor,
    ):
        """Producer role: per tile, per K block, TMA A, B and SFA into the next free stage.

        In a cluster each CTA loads its slice of the shared operand and multicasts it to its peer.
        """
        bM, bN, bK = self.tile_shape_mnk
        cm, cn = self.cluster_mn
        # A (and SFA) is shared along N; B along M.
        a_mcast_mask = cute.make_layout_image_mask(cta_layout_mnk, cluster_coord_mnk, mode=1) if cn > 1 else 0
        b_mcast_mask = cute.make_layout_image_mask(cta_layout_mnk, cluster_coord_mnk, mode=0) if cm > 1 else 0
        a_cta_layout = cute.make_layout(cn)
        b_cta_layout = cute.make_layout(cm)
        # (bM, bK, RestM, RestK), (bN, bK, RestN, RestK), (bM, 1, RestM, RestK)
        gA = cute.local_tile(mA_mk, (bM, bK), (None, None))
        gB = cute.local_tile(mB_nk, (bN, bK), (None, None))
        gSFA = cute.local_tile(mSFA_mk, (bM, 1), (None, None))
        # ((atom), stages) and ((atom), RestM, RestK)
        tAsA, tAgA = cpasync.tma_partition(
            tma_atom_a, cluster_coord_mnk[1], a_cta_layout,
            cute.group_modes(sA, 0, 2), cute.group_modes(gA, 0, 2),
        )
        tBsB, tBgB = cpasync.tma_partition(
            tma_atom_b, cluster_coord_mnk[0], b_cta_layout,
            cute.group_modes(sB, 0, 2), cute.group_modes(gB, 0, 2),
        )
        tSsSFA, tSgSFA = cpasync.tma_partition(
            tma_atom_sfa, cluster_coord_mnk[1], a_cta_layout,
            cute.group_modes(sSFA, 0, 2), cute.group_modes(gSFA, 0, 2),
        )
        state = pipeline.make_pipeline_state(pipeline.PipelineUserType.Producer, self.stages)
        unit = sched.first_unit()
        while unit < sched.num_units:
            m_block, n_block = sched.tile_coords(unit)
            for k_block in range(num_k_blocks):
                mainloop.producer_acquire(state)
                barrier = mainloop.producer_get_barrier(state)
                cute.copy(tma_atom_a, tAgA[(None, m_block, k_block)], tAsA[(None, state.index)],
                          tma_bar_ptr=barrier, mcast_mask=a_mcast_mask)
                cute.copy(tma_atom_b, tBgB[(None, n_block, k_block)], tBsB[(None, state.index)],
                          tma_bar_ptr=barrier, mcast_mask=b_mcast_mask)
                cute.copy(tma_atom_sfa, tSgSFA[(None, m_block, k_block)], tSsSFA[(None, state.index)],
                          tma_bar_ptr=barrier, mcast_mask=a_mcast_mask)
                mainloop.producer_commit(state)
                state.advance()
            unit += sched.stride
        mainloop.producer_tail(state)

    @cute.jit
    def mma_and_epilogue(
        self,
        sched: PersistentTileScheduler,
        num_k_blocks: Int32,
        mainloop: pipeline.PipelineTmaAsync,
        tiled_mma: cute.TiledMma,
        sA: cute.Tensor, sB: cute.Tensor, sSFA: cute.Tensor, mSFB_nk: cute.Tensor,
        tma_atom_d: cute.CopyAtom, mD_mn: cute.Tensor, sD: cute.Tensor,
        math_tidx: Int32,
        warp_idx: Int32,
    ):
        """Math role: WGMMA per K block, promotion, and the bf16 TMA-store epilogue per tile."""
        bM, bN, bK = self.tile_shape_mnk
        # Operand fragments come from the warpgroup's slice (smem descriptors are per warpgroup);
        # anything read by value per accumulator element needs the per-thread slice.
        thr_mma = tiled_mma.get_slice(math_tidx)
        # (MMA, MMA_M, MMA_K, stages), (MMA, MMA_N, MMA_K, stages)
        tCrA = tiled_mma.make_fragment_A(thr_mma.partition_A(sA))
        tCrB = tiled_mma.make_fragment_B(thr_mma.partition_B(sB))
        # (bM, bN, stages) SFA seen as C -> (MMA, MMA_M, MMA_N, stages)
        sSFA_as_C = cute.make_tensor(sSFA.iterator, scale_layouts.sfa_as_accumulator(bM, bN, self.stages))
        tCsSFA = thr_mma.partition_C(sSFA_as_C)
        # (bM, bN, RestM, RestN)
        gD = cute.local_tile(mD_mn, (bM, bN), (None, None))
        acc_shape = thr_mma.partition_C(gD[(None, None, 0, 0)]).shape
        acc = cute.make_rmem_tensor(acc_shape, Float32)
        partial = cute.make_rmem_tensor(acc_shape, Float32)
        tCrSFA = cute.make_rmem_tensor(acc_shape, Float32)
        chunk_cols = self._chunk_columns(tiled_mma, bM, bN)
        candidates = split_candidates(bN)
        num_mma_k = cute.size(tCrA, mode=[2])
        num_scale_n = mSFB_nk.shape[0]

        store = self.make_epilogue_store()
        state = pipeline.make_pipeline_state(pipeline.PipelineUserType.Consumer, self.stages)
        num_tiles_done = Int32(0)
        unit = sched.first_unit()
        while unit < sched.num_units:
            m_block, n_block = sched.tile_coords(unit)
            first_col = n_block * bN
            # Clamped: a cluster's tile past the N edge computes on zeros and stores nothing.
            scale_n0 = cutlass.min(first_col // tiles.SCALE_BLOCK, num_scale_n - 1)
            scale_n1 = cutlass.min(scale_n0 + 1, num_scale_n - 1)
            split_col = self._split_column(first_col)
            acc.fill(0.0)
            for k_block in range(num_k_blocks):
                # Issued before the wait so the global loads overlap it.
                sfb_first = mSFB_nk[scale_n0, k_block]
                sfb_second = mSFB_nk[scale_n1, k_block]
                mainloop.consumer_wait(state)
                warpgroup.fence()
                for kk in cutlass.range_constexpr(num_mma_k):
                    # NOTES: a fresh atom per issue; mutating ACCUMULATE on the shared tiled_mma
                    # inside the dynamic K loop fails IR verification.
                    mma = cute.make_mma_atom(tiled_mma.op)
                    mma.set(warpgroup.Field.ACCUMULATE, kk != 0)
                    cute.gemm(mma, partial, tCrA[(None, None, kk, state.index)], tCrB[(None, None, kk, state.index)], partial)
                warpgroup.commit_group()
                warpgroup.wait_group(0)
                # NOTES: copy this stage's row scales to registers (the compiler keeps 2 loads) and
                # release the stage before the FFMAs: the producer refills it while we promote.
                tCsSFA_stage = tCsSFA[(None, None, None, state.index)]
                for i in cutlass.range_constexpr(cute.size(tCrSFA)):
                    tCrSFA[i] = tCsSFA_stage[i]
                mainloop.consumer_release(state)
                state.advance()
                promote(acc, partial, tCrSFA, sfb_first, sfb_second, split_col, chunk_cols, candidates)

            self.epilogue(acc, tiled_mma, tma_atom_d, gD[(None, None, m_block, n_block)], sD, store, num_tiles_done, math_tidx, warp_idx)
            num_tiles_done += 1
            unit += sched.stride
        store.producer_tail()

    def make_epilogue_store(self) -> pipeline.PipelineTmaStore:
        return pipeline.PipelineTmaStore.create(
            num_stages=EPILOGUE_STAGES,
            producer_group=pipeline.CooperativeGroup(pipeline.Agent.Thread, self.num_math_threads),
        )

    @cute.jit
    def epilogue(
        self,
        acc: cute.Tensor,
        tiled_mma: cute.TiledMma,
        tma_atom_d: cute.CopyAtom,
        gD_tile: cute.Tensor,  # (bM, bN)
        sD: cute.Tensor,  # (epi_m, epi_n, 2)
        store: pipeline.PipelineTmaStore,
        num_tiles_done: Int32,
        math_tidx: Int32,
        warp_idx: Int32,
    ):
        """bf16 conversion, stmatrix into swizzled smem, TMA store, one ``epi_tile`` at a time."""
        d_dtype = sD.element_type
        copy_atom_r2s = sm90_utils.get_smem_store_op(LayoutEnum.ROW_MAJOR, d_dtype, Float32)
        copy_atom_c = cute.make_copy_atom(cute.nvgpu.warp.StMatrix8x8x16bOp(False, 4), d_dtype)
        tiled_copy_r2s = cute.make_tiled_copy_S(copy_atom_r2s, cute.make_tiled_copy_C_atom(copy_atom_c, tiled_mma))
        thr_copy_r2s = tiled_copy_r2s.get_slice(math_tidx)
        # (R2S, R2S_M, R2S_N, 2)
        tRS_sD = thr_copy_r2s.partition_D(sD)
        tRS_rAcc = tiled_copy_r2s.retile(acc)
        rD_shape = cute.shape(thr_copy_r2s.partition_S(sD))[:3]
        tRS_rD = cute.make_rmem_tensor(rD_shape, Float32)
        tRS_rD_out = cute.make_rmem_tensor(rD_shape, d_dtype)
        piece_size = cute.size(tRS_rD)

        # ((epi_m, epi_n), (RestM, RestN))
        gD_pieces = cute.zipped_divide(gD_tile, self.epi_tile)
        bSG_sD, bSG_gD = cpasync.tma_partition(
            tma_atom_d, 0, cute.make_layout(1), cute.group_modes(sD, 0, 2), gD_pieces
        )
        num_pieces = cute.size(gD_pieces, mode=[1])
        pieces_layout = cute.make_layout(gD_pieces.shape[1], stride=(gD_pieces.shape[1][1], 1))
        for piece in cutlass.range_constexpr(num_pieces):
            for v in cutlass.range_constexpr(piece_size):
                tRS_rD[v] = tRS_rAcc[piece * piece_size + v]
            tRS_rD_out.store(tRS_rD.load().to(d_dtype))
            buffer = (num_tiles_done * num_pieces + piece) % EPILOGUE_STAGES
            cute.copy(tiled_copy_r2s, tRS_rD_out, tRS_sD[(None, None, None, buffer)])
            # stmatrix writes are generic-proxy; TMA reads through the async proxy.
            cute.arch.fence_proxy("async.shared", space="cta")
            self.epilogue_barrier.arrive_and_wait()
            if warp_idx == self.store_warp:
                cute.copy(tma_atom_d, bSG_sD[(None, buffer)], bSG_gD[(None, pieces_layout.get_hier_coord(piece))])
                store.producer_commit()
                store.producer_acquire()
            self.epilogue_barrier.arrive_and_wait()

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
