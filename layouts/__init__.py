"""Explicit CuTe layouts used by cute-gemm's kernels.

Each function here is small, pure and printable: a researcher can call it at trace time (inside a
``@cute.jit`` function) and ``print`` the result, or edit it and recompile. Nothing here imports
``cute_gemm``.

- :mod:`layouts.smem`: swizzled shared-memory layouts of the A/B operands and the D epilogue tile.
- :mod:`layouts.scales`: the scale-factor layouts (SFA M-major and TMA-aligned, SFB blocks) and the
  "scale viewed as the accumulator" tensors the promotion stage reads.
- :mod:`layouts.tiles`: tile shapes, which BLOCK_N values are legal, and which 128-column scale
  block each column of a tile reads.
"""
