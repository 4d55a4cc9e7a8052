"""JIT compilation of kernel configurations, cached in memory and on disk.

A compiled kernel is keyed by everything that changes the binary: the kernel family and its
constructor arguments (tile, stages, rasterisation), and for dense FP8 tiles that promote in place
the problem's N and K (``GemmConfig.static_nk``: compiled in as constants, M stays at run time).
Strides, pointers and the SM count are run-time arguments, and so are all shapes of the other
configurations: a new problem shape of those never recompiles.

Compilation needs no GPU: everything is traced with fake tensors of symbolic shape and lowered for
``sm_90a``. The compiled function takes torch tensors directly (TVM-FFI) and launches on torch's
current stream.
"""

from __future__ import annotations

import os
import threading
import warnings
from typing import NamedTuple

os.environ.setdefault("CUTE_DSL_ARCH", "sm_90a")

import cutlass  # noqa: E402
import cutlass.cute as cute  # noqa: E402
from cutlass.cute.runtime import make_fake_stream, make_fake_tensor  # noqa: E402

from cute_gemm import cache  # noqa: E402
from cute_gemm.kernels.bf16_gemm_sm90 import Bf16GemmSm90  # noqa: E402
from cute_gemm.kernels.fp8_gemm_sm90 import OUT_DTYPES, Fp8GemmSm90  # noqa: E402
from layouts import tiles  # noqa: E402
from schedulers.raster import M_GROUPED_KINDS, GemmKind  # noqa: E402

ARCH = "sm_90a"
COMPILE_OPTIONS = f"--gpu-arch {ARCH} --enable-tvm-ffi"


class Variant(NamedTuple):
    """The output, scaling and operand options of a GEMM: the last fields of :class:`GemmConfig`."""

    b_scale_rows: int = 128
    out_dtype: str = "bf16"
    accumulate: bool = False
    ab_dtype: str = "fp8"
    a_major: str = "k"
    b_major: str = "k"


class GemmConfig(NamedTuple):
    """Everything static about one FP8 GEMM kernel.

    ``split_k``: 1, or 2 / 4 CTAs (a cluster) computing each tile over a share of K and summing
    their partials through distributed shared memory (dense only; for few tiles and long K).
    ``b_scale_rows``: 128 (B scaled per 128x128 block) or 1 (per row per 128 K, the training
    recipe); ``out_dtype``: "bf16" or "fp32"; ``accumulate``: D += A @ B^T (fp32 only);
    ``ab_dtype``: "fp8" (scaled, :class:`Fp8GemmSm90`) or "bf16" (no scales, BLOCK_K = 64,
    :class:`Bf16GemmSm90`); ``a_major``/``b_major``: "k" or (bf16 only) "mn", the operand's
    contiguous mode. ``static_nk``: ``(n, k)`` compiled into the kernel as constants (dense FP8 only;
    M, strides and pointers stay run-time arguments), or None: one compile serves every shape. The
    heuristic sets it where it pays (:func:`cute_gemm.heuristics.compiles_shape_in`).
    ``a_box_rows``: None, or a multiple of 8 below 64 rows of A loaded per K block instead of BLOCK_M, for
    dense problems with at most that many rows (decoding; TMA is slow on a box's rows past M).
    ``shift_last_m_tile``: the last M tile of a dense problem moves up to end at row M when M >=
    BLOCK_M (for M not a multiple of BLOCK_M; not with split-K, accumulation or a cluster).
    """

    block_m: int
    block_n: int
    stages: int
    cluster_m: int = 1
    cluster_n: int = 1
    raster_group: int = 16
    raster_along_m: bool = True
    kind: GemmKind = GemmKind.NORMAL
    split_k: int = 1
    b_scale_rows: int = 128
    out_dtype: str = "bf16"
    accumulate: bool = False
    ab_dtype: str = "fp8"
    a_major: str = "k"
    b_major: str = "k"
    static_nk: tuple[int, int] | None = None
    a_box_rows: int | None = None
    shift_last_m_tile: bool = False

    @property
    def block_k(self) -> int:
        return tiles.block_k(self.ab_dtype)

    @property
    def variant(self) -> Variant:
        return Variant(*(getattr(self, field) for field in Variant._fields))

    def kernel_arguments(self) -> dict:
        """The kernel class's constructor arguments: every field but the compiled-in shape."""
        fields = self._asdict()
        del fields["static_nk"]
        return fields

    def describe(self) -> str:
        order = "M" if self.raster_along_m else "N"
        kind = "" if self.kind == GemmKind.NORMAL else f" {self.kind.name.lower()}"
        kind += f" split_k={self.split_k}" if self.split_k > 1 else ""
        variant = ""
        if (self.b_scale_rows, self.out_dtype, self.accumulate) != (128, "bf16", False):
            variant = f" B scales 1x128 (per row)" if self.b_scale_rows == 1 else ""
            variant += f" out={self.out_dtype}" + (" accumulate" if self.accumulate else "")
        if (self.a_major, self.b_major) != ("k", "k"):
            variant += f" A {self.a_major.upper()}-major, B {self.b_major.upper()}-major"
        if self.static_nk is not None:
            variant += " N={} K={} compiled in".format(*self.static_nk)
        if self.a_box_rows is not None:
            variant += f" A box {self.a_box_rows} rows"
        if self.shift_last_m_tile:
            variant += " last M tile moved up"
        return (
            f"{'BF16 ' if self.ab_dtype == 'bf16' else ''}BLOCK_M={self.block_m} BLOCK_N={self.block_n} "
            f"BLOCK_K={self.block_k} stages={self.stages} cluster={self.cluster_m}x{self.cluster_n} "
            f"raster={self.raster_group} along {order}{kind}{variant}"
        )


def fake_fp8_gemm_arguments(config: GemmConfig):
    """Fake tensors with symbolic shapes for one configuration: one compile serves every shape.

    Shared symbols make the compiled function check at call time that A, D and SFA agree on M, etc.
    Divisibility hints keep the 16-byte TMA paths: K % 16 (fp8 rows; bf16 operands: K % 8), N % 8
    (bf16 rows; fp32 rows need N % 4), SFA's column stride % 4 (fp32). Dense: ``(a, b, d, sfa, sfb)`` as 2-D tensors, SFB
    ``(N/128, Kb)`` K-major or, with per-row B scales, ``(N, Kb)`` N-major like SFA. Contiguous: B
    and SFB gain an expert mode and ``m_indices (M_sum,)`` follows. Masked: every operand has an
    expert mode (``(M_max, K, G)`` etc.) and ``masked_m (G,)`` follows. Contiguous with prefix sums:
    as contiguous, with ``psum (G,)``. K-grouped: A, B, SFA and SFB are 2-D over the stacked K, D
    has an expert mode, ``ks (G,)`` follows. With ``config.static_nk``, N and K (and the scale
    blocks they make) are the given constants; strides stay symbolic.
    """
    kind = config.kind
    bf16_operands = config.ab_dtype == "bf16"
    m = cute.sym_int(symbol="m")
    if config.static_nk is None:
        n = cute.sym_int(symbol="n")
        k = cute.sym_int(divisibility=8 if config.ab_dtype == "bf16" else 16, symbol="k")
        kb, nb = cute.sym_int(symbol="k_blocks"), cute.sym_int(symbol="n_blocks")
    else:
        if kind != GemmKind.NORMAL or bf16_operands or config.split_k != 1:
            raise ValueError(f"static_nk is for dense FP8 kernels without split-K, got {config.describe()}")
        n, k = config.static_nk
        kb, nb = -(-k // config.block_k), -(-n // tiles.SCALE_BLOCK)
    g = cute.sym_int(symbol="groups")
    fp8, f32, i32 = cutlass.Float8E4M3FN, cutlass.Float32, cutlass.Int32

    def row_major(dtype, rows, cols, row_div, batched, align=16):
        shape, stride = (rows, cols), (cute.sym_int64(divisibility=row_div), 1)
        if batched:
            shape, stride = shape + (g,), stride + (cute.sym_int64(divisibility=row_div),)
        return make_fake_tensor(dtype, shape, stride=stride, assumed_align=align)

    def mn_major(dtype, rows, cols):
        """A dense operand stored rows-contiguous: (rows, cols):(1, ld), ld % 8 (16 bytes)."""
        return make_fake_tensor(dtype, (rows, cols), stride=(1, cute.sym_int64(divisibility=8)),
                                assumed_align=16)

    def m_major(rows, cols, batched):
        shape, stride = (rows, cols), (1, cute.sym_int64(divisibility=4))
        if batched:
            shape, stride = shape + (g,), stride + (cute.sym_int64(divisibility=4),)
        return make_fake_tensor(f32, shape, stride=stride, assumed_align=16)

    masked = kind == GemmKind.M_GROUPED_MASKED
    m_grouped = kind in M_GROUPED_KINDS
    out_dtype = OUT_DTYPES[config.out_dtype]
    ab, ab_row_div = (cutlass.BFloat16, 8) if bf16_operands else (fp8, 16)
    a = (mn_major(ab, m, k) if config.a_major == "mn" else row_major(ab, m, k, ab_row_div, masked))
    b = (mn_major(ab, n, k) if config.b_major == "mn" else row_major(ab, n, k, ab_row_div, m_grouped))
    d = row_major(out_dtype, m, n, 128 // out_dtype.width, masked or kind == GemmKind.K_GROUPED)
    sfa = m_major(m, kb, masked)
    if config.b_scale_rows == 1:
        sfb = m_major(n, kb, False)
    else:
        sfb = row_major(f32, nb, kb, 1, m_grouped, align=4)
    tensors = (a, b, d) if bf16_operands else (a, b, d, sfa, sfb)
    if kind == GemmKind.NORMAL:
        return tensors
    info_len = g if kind != GemmKind.M_GROUPED_CONTIGUOUS else m
    return tensors + (make_fake_tensor(i32, (info_len,), stride=(1,), assumed_align=4),)


def compile_fp8_gemm(config: GemmConfig, extra_options: str = ""):
    """Compile one configuration for sm_90a (no GPU needed). Returns ``(compiled_fn, kernel)``."""
    kernel = (Bf16GemmSm90 if config.ab_dtype == "bf16" else Fp8GemmSm90)(**config.kernel_arguments())
    entry = kernel if config.kind == GemmKind.NORMAL else kernel.grouped
    with warnings.catch_warnings():
        # NOTES: the promotion stage unrolls over the whole accumulator on purpose (register
        # fragments must be indexed with compile-time indices); the DSL warns about long loops.
        warnings.filterwarnings("ignore", message="This static loop has")
        fn = cute.compile(
            entry,
            *fake_fp8_gemm_arguments(config),
            cutlass.Int32(132),
            make_fake_stream(use_tvm_ffi_env_stream=True),
            options=f"{COMPILE_OPTIONS} {extra_options}".strip(),
        )
    return fn, kernel


_cache: dict[GemmConfig, object] = {}
_lock = threading.Lock()


def get_fp8_gemm(config: GemmConfig):
    """The compiled kernel for ``config``: from memory, else from the disk cache, else compiled
    now and stored on disk (see :mod:`cute_gemm.cache`). Thread-safe."""
    fn = _cache.get(config)
    if fn is None:
        # NOTES: cute.compile is not thread-safe (MLIR thread-local state): one compile at a time.
        with _lock:
            fn = _cache.get(config)
            if fn is None:
                fn = _load_or_compile(config)
                _cache[config] = fn
    return fn


def _load_or_compile(config: GemmConfig):
    if not cache.enabled():
        return compile_fp8_gemm(config)[0]
    key = cache.entry_key(config, ARCH)
    path = cache.lookup(key)
    if path is None:
        fn, _ = compile_fp8_gemm(config)
        path = cache.publish(key, lambda p: fn.export_to_c(p, function_name=cache.FUNCTION_NAME))
    return cache.load(path)


def compiled_configs() -> list[GemmConfig]:
    """Configurations compiled in this process so far."""
    return list(_cache)
