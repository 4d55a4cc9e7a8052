"""What the compiler built: registers, spills, shared memory and the SASS instruction mix.

Needs no GPU: the kernel is compiled for sm_90a with ``--keep-cubin`` and the cubin is read with
``nvdisasm`` and ``cuobjdump`` (pip packages ``nvidia-cuda-nvdisasm`` / ``nvidia-cuda-cuobjdump``, in
the ``test`` extra).
"""

from __future__ import annotations

import collections
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from cute_gemm.jit import GemmConfig, compile_fp8_gemm

_OPCODE = re.compile(r"^\s*/\*[0-9a-f]+\*/\s+(?:@!?U?P[T0-9]+\s+)?([A-Z][A-Z0-9_]*)")


def find_tool(name: str) -> str:
    """Path of ``nvdisasm``/``cuobjdump``: the pip-installed CUDA 13 copy, else ``PATH``."""
    try:
        import nvidia

        for root in nvidia.__path__:
            candidate = Path(root) / "cu13" / "bin" / name
            if candidate.exists():
                return str(candidate)
    except ImportError:
        pass
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found: pip install nvidia-cuda-{name}")
    return found


@dataclass
class CompileReport:
    """The compile-time facts of one kernel configuration."""

    config: GemmConfig
    compile_seconds: float
    cubin_bytes: int
    registers: int  # ptxas's launch-time figure; setmaxnreg moves it per warpgroup at run time
    stack_bytes: int
    shared_memory_bytes: int
    opcodes: collections.Counter = field(repr=False)
    sass: str = field(repr=False)

    @property
    def spills(self) -> int:
        """Local-memory instructions (register spills or indexed register arrays)."""
        return self.opcodes["LDL"] + self.opcodes["STL"]

    def summary(self) -> str:
        o = self.opcodes
        return (
            f"{self.config.describe()}: {self.compile_seconds:.1f} s, regs {self.registers}, "
            f"stack {self.stack_bytes} B, spills {self.spills}, smem {self.shared_memory_bytes} B, "
            f"QGMMA {o['QGMMA']}, FFMA {o['FFMA']}, UTMALDG {o['UTMALDG']}, UTMASTG {o['UTMASTG']}"
        )


def opcode_counts(sass: str) -> collections.Counter:
    """Count SASS instructions by base opcode (``QGMMA.64x128x32...`` counts as ``QGMMA``)."""
    counts = collections.Counter()
    for line in sass.splitlines():
        match = _OPCODE.match(line)
        if match:
            counts[match.group(1)] += 1
    return counts


def compile_report(config: GemmConfig) -> CompileReport:
    """Compile ``config`` for sm_90a and inspect the cubin."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        fn, kernel = compile_fp8_gemm(config, extra_options=f"--keep-cubin --dump-dir {tmp}")
        seconds = time.perf_counter() - start
        cubin = fn.artifacts.CUBIN
        if not isinstance(cubin, (bytes, bytearray)):
            cubin = Path(cubin).read_bytes()
        path = os.path.join(tmp, "kernel.cubin")
        Path(path).write_bytes(cubin)
        sass = subprocess.run(
            [find_tool("nvdisasm"), "-c", path], check=True, capture_output=True, text=True
        ).stdout
        usage = subprocess.run(
            [find_tool("cuobjdump"), "-res-usage", path], check=True, capture_output=True, text=True
        ).stdout
    registers = int(re.search(r"REG:(\d+)", usage).group(1))
    stack = int(re.search(r"STACK:(\d+)", usage).group(1))
    return CompileReport(
        config=config,
        compile_seconds=seconds,
        cubin_bytes=len(cubin),
        registers=registers,
        stack_bytes=stack,
        shared_memory_bytes=kernel.shared_storage.size_in_bytes(),
        opcodes=opcode_counts(sass),
        sass=sass,
    )
