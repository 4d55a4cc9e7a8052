"""The persistent block scheduler shared by every cute-gemm kernel.

- :mod:`schedulers.raster`: the tile-order arithmetic, written once over plain integer operators so
  that the same function runs on Python ints (CPU tests) and on DSL ``Int32`` values (the kernel).
- :mod:`schedulers.reference`: the plain-Python twin that enumerates a whole schedule.
- :mod:`schedulers.persistent`: the DSL scheduler the kernels call.

Nothing here imports ``cute_gemm``.
"""

from schedulers.raster import GemmKind, rasterize

__all__ = ["GemmKind", "rasterize"]
