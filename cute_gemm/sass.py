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
from layouts.tiles import num_waves

_OPCODE = re.compile(r"^\s*/\*[0-9a-f]+\*/\s+(?:@!?U?P[T0-9]+\s+)?([A-Z][A-Z0-9_]*)")
_INSTRUCTION = re.compile(r"^\s*/\*([0-9a-f]+)\*/\s+(?:@!?U?P[T0-9]+\s+)?([A-Z]\S*)(.*?)\s*;")
_LABEL = re.compile(r"^(\.L_x_\d+):")
_BRANCH_TARGET = re.compile(r"`\((\.L_x_\d+)\)")


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

    def k_loop(self) -> KLoopMix:
        """The main K loop's instructions (:func:`k_loop_mix`): per K block and math warp, 4 MMAs
        per 128-row wave."""
        return k_loop_mix(self.sass, 4 * num_waves(self.config.block_m))

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


@dataclass
class KLoopMix:
    """The instructions of a kernel's main K loop: its most unrolled innermost loop holding MMAs."""

    k_blocks: int  # K blocks one turn of the loop computes
    opcodes: collections.Counter  # full opcodes (``FFMA``, ``QGMMA.64x128x32.F32.E4M3.E4M3``, ...)

    def per_k_block(self) -> dict:
        """Instructions per K block and math warp, by opcode without its modifiers."""
        counts = collections.Counter()
        for op, n in self.opcodes.items():
            counts[op.split(".")[0]] += n
        return {op: n / self.k_blocks for op, n in counts.most_common()}

    def instructions_per_k_block(self) -> float:
        """All instructions of the loop per K block and math warp."""
        return sum(self.opcodes.values()) / self.k_blocks


def k_loop_mix(sass: str, mma_per_k_block: int) -> KLoopMix:
    """Find the main K loop in ``sass`` and count its instructions.

    A loop is a backward branch and the code from its target; innermost loops contain no other.
    The wait-retry branches placed after the kernel body jump back into it, so their "loops" span
    the main loop and are not innermost. Of the innermost loops with MMAs (``QGMMA``/``HGMMA``),
    the one with the most is the unrolled main loop (others are remainders and prologues).
    """
    labels, instructions, pending = {}, [], []
    for line in sass.splitlines():
        if (label := _LABEL.match(line)) is not None:
            pending.append(label.group(1))
        elif (ins := _INSTRUCTION.match(line)) is not None:
            address = int(ins.group(1), 16)
            labels.update((name, address) for name in pending)
            pending = []
            instructions.append((address, ins.group(2), ins.group(3)))
    index_of = {address: i for i, (address, _, _) in enumerate(instructions)}
    loops = []  # (first, last) instruction indices of each backward branch's loop
    for index, (address, op, operands) in enumerate(instructions):
        target = _BRANCH_TARGET.search(operands) if op == "BRA" else None
        target_address = labels.get(target.group(1)) if target is not None else None
        if target_address is not None and target_address <= address:
            loops.append((index_of[target_address], index))
    innermost = [(a, b) for a, b in loops if not any(a <= c and d <= b and (c, d) != (a, b) for c, d in loops)]
    best = None
    for a, b in innermost:
        opcodes = collections.Counter(op for _, op, _ in instructions[a:b + 1])
        mmas = sum(n for op, n in opcodes.items() if op.startswith(("QGMMA", "HGMMA")))
        if mmas and (best is None or mmas > best[0]):
            best = (mmas, opcodes)
    if best is None:
        raise ValueError("no loop with MMA instructions found")
    return KLoopMix(best[0] // mma_per_k_block, best[1])


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
