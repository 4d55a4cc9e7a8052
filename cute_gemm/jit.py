"""JIT compilation of kernel configurations, cached in memory.

A compiled kernel is keyed by everything that changes the binary: the kernel family and its
constructor arguments (tile, stages, rasterisation). Shapes, strides, pointers and the SM count are
run-time arguments, so a new problem shape of an already-compiled configuration never recompiles.

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

from cute_gemm.kernels.fp8_gemm_sm90 import Fp8GemmSm90  # noqa: E402

ARCH = "sm_90a"
COMPILE_OPTIONS = f"--gpu-arch {ARCH} --enable-tvm-ffi"


class GemmConfig(NamedTuple):
    """Everything static about one dense FP8 GEMM kernel."""

    block_m: int
    block_n: int
    stages: int
    cluster_m: int = 1
    cluster_n: int = 1
    raster_group: int = 16
    raster_along_m: bool = True

    def describe(self) -> str:
        order = "M" if self.raster_along_m else "N"
        return (
            f"BLOCK_M={self.block_m} BLOCK_N={self.block_n} BLOCK_K=128 stages={self.stages} "
            f"cluster={self.cluster_m}x{self.cluster_n} raster={self.raster_group} along {order}"
        )


def fake_fp8_gemm_arguments():
    """Fake (a, b, d, sfa, sfb) with symbolic shapes: one compile serves every M, N, K.

    Shared symbols make the compiled function check at call time that A, D and SFA agree on M, etc.
    Divisibility hints keep the 16-byte TMA paths: K % 16 (fp8 rows), N % 8 (bf16 rows), SFA's column
    stride % 4 (fp32).
    """
    m, n = cute.sym_int(symbol="m"), cute.sym_int(symbol="n")
    k = cute.sym_int(divisibility=16, symbol="k")
    kb, nb = cute.sym_int(symbol="k_blocks"), cute.sym_int(symbol="n_blocks")
    fp8 = cutlass.Float8E4M3FN
    a = make_fake_tensor(fp8, (m, k), stride=(cute.sym_int64(divisibility=16), 1), assumed_align=16)
    b = make_fake_tensor(fp8, (n, k), stride=(cute.sym_int64(divisibility=16), 1), assumed_align=16)
    d = make_fake_tensor(
        cutlass.BFloat16, (m, n), stride=(cute.sym_int64(divisibility=8), 1), assumed_align=16
    )
    sfa = make_fake_tensor(
        cutlass.Float32, (m, kb), stride=(1, cute.sym_int64(divisibility=4)), assumed_align=16
    )
    sfb = make_fake_tensor(cutlass.Float32, (nb, kb), stride=(cute.sym_int64(), 1), assumed_align=4)
    return a, b, d, sfa, sfb


def compile_fp8_gemm(config: GemmConfig, extra_options: str = ""):
    """Compile one configuration for sm_90a (no GPU needed). Returns ``(compiled_fn, kernel)``."""
    kernel = Fp8GemmSm90(*config)
    with warnings.catch_warnings():
        # NOTES: the promotion stage unrolls over the whole accumulator on purpose (register
        # fragments must be indexed with compile-time indices); the DSL warns about long loops.
        warnings.filterwarnings("ignore", message="This static loop has")
        fn = cute.compile(
            kernel,
            *fake_fp8_gemm_arguments(),
            cutlass.Int32(132),
            make_fake_stream(use_tvm_ffi_env_stream=True),
            options=f"{COMPILE_OPTIONS} {extra_options}".strip(),
        )
    return fn, kernel


_cache: dict[GemmConfig, object] = {}
_lock = threading.Lock()


def get_fp8_gemm(config: GemmConfig):
    """The compiled kernel for ``config``, compiling it on first use (thread-safe)."""
    fn = _cache.get(config)
    if fn is None:
        # NOTES: cute.compile is not thread-safe (MLIR thread-local state): one compile at a time.
        with _lock:
            fn = _cache.get(config)
            if fn is None:
                fn, _ = compile_fp8_gemm(config)
                _cache[config] = fn
    return fn


def compiled_configs() -> list[GemmConfig]:
    """Configurations compiled in this process so far."""
    return list(_cache)
