"""What a compiled GPU binary uses and contains, read with NVIDIA's own tools (no GPU needed):
per-function registers, stack, shared and local memory (`cuobjdump --dump-resource-usage`),
the SASS instruction mix (`cuobjdump -sass`), and whether a launch of it fits a card.

The tools come from Triton's wheel (triton/backends/nvidia/bin/), else from $CUDA_HOME/bin.
"""
from __future__ import annotations

import collections
import dataclasses
import os
import re
import shutil
import subprocess
import tempfile

from torch_lowbit.backends.triton import tile_model


def tool(name: str) -> str:
    """Path of an NVIDIA binary tool (cuobjdump, nvdisasm, ptxas)."""
    try:
        import triton

        path = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", name)
        if os.access(path, os.X_OK):
            return path
    except ImportError:
        pass
    cuda_home = os.environ.get("CUDA_HOME", "/usr/local/cuda")
    for path in (os.path.join(cuda_home, "bin", name), shutil.which(name)):
        if path and os.access(path, os.X_OK):
            return path
    raise FileNotFoundError(f"{name}: not in Triton's wheel (triton/backends/nvidia/bin) nor in {cuda_home}/bin nor on PATH")


@dataclasses.dataclass(frozen=True)
class Resources:
    """One compiled function's per-thread registers and stack, its static shared memory and its
    local memory (spilled registers and local arrays) in bytes."""

    function: str
    arch: int  # 80 for sm_80
    registers: int
    stack: int
    shared: int
    local: int


_FUNCTION = re.compile(r"^\s*Function (\S+):")
_ARCH = re.compile(r"arch = sm_(\d+)")
_FIELDS = re.compile(r"(REG|STACK|SHARED|LOCAL):(\d+)")


def parse_resource_usage(text: str, default_arch: int | None = None) -> list[Resources]:
    """Parse `cuobjdump --dump-resource-usage` output (a cubin, or a fatbinary with one section per arch)."""
    out, arch, function = [], default_arch, None
    for line in text.splitlines():
        if m := _ARCH.search(line):
            arch = int(m.group(1))
        elif m := _FUNCTION.match(line):
            function = m.group(1)
        elif function is not None and "REG:" in line:
            f = dict((k, int(v)) for k, v in _FIELDS.findall(line))
            out.append(Resources(function, arch or 0, f.get("REG", 0), f.get("STACK", 0), f.get("SHARED", 0), f.get("LOCAL", 0)))
            function = None
    return out


def _cuobjdump(args: list[str], binary: bytes | str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        path = binary
        if isinstance(binary, bytes):
            path = os.path.join(tmp, "kernel.cubin")
            with open(path, "wb") as f:
                f.write(binary)
        done = subprocess.run([tool("cuobjdump"), *args, path], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"cuobjdump {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def resource_usage(binary: bytes | str, arch: int | None = None) -> list[Resources]:
    """Resources of every function in a cubin (bytes) or in the fatbinaries of a shared library (path)."""
    return parse_resource_usage(_cuobjdump(["--dump-resource-usage"], binary), arch)


_OPCODE = re.compile(r"/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]+)")


def sass_opcodes(binary: bytes | str, function: str | None = None, arch: int | None = None) -> dict[tuple[int, str], collections.Counter]:
    """Opcode counts (with modifiers, e.g. LDG.E.128) per (arch, function name), from `cuobjdump
    -sass` (a fatbinary has one section per arch; a lone cubin takes `arch`). With `function`,
    only the functions whose name contains it."""
    counts: dict[tuple[int, str], collections.Counter] = {}
    current = None
    for line in _cuobjdump(["-sass"], binary).splitlines():
        if m := _ARCH.search(line):
            arch = int(m.group(1))
        elif "Function :" in line:
            name = line.split("Function :", 1)[1].strip()
            wanted = function is None or function in name
            current = counts.setdefault((arch or 0, name), collections.Counter()) if wanted else None
        elif current is not None and (m := _OPCODE.search(line)):
            current[m.group(1)] += 1
    return counts


def spills(res: Resources, opcodes=()) -> bool:
    """Whether the function spills: ptxas puts spilled registers in the stack frame (LOCAL counts
    local arrays), and any LDL/STL in its SASS is local-memory traffic."""
    return bool(res.stack or res.local) or any(o.startswith(("LDL", "STL")) for o in opcodes)


def launch_problems(res: Resources, threads: int, dynamic_shared: int, spec) -> list[str]:
    """Why a block of `threads` threads with `dynamic_shared` bytes of dynamic shared memory cannot
    launch on `spec` (a tile_model.GpuSpec), or would spill; empty when it fits."""
    problems = []
    if spills(res):
        problems.append(f"spills: {res.stack} bytes of stack frame and {res.local} bytes of local memory per thread")
    if threads > spec.max_threads_per_block:
        problems.append(f"{threads} threads per block > {spec.max_threads_per_block}")
    if res.registers > spec.max_regs_per_thread:
        problems.append(f"{res.registers} registers per thread > {spec.max_regs_per_thread}")
    block_regs = tile_model.block_registers(res.registers, threads)
    if block_regs > spec.regs_per_sm:
        problems.append(f"{block_regs} registers per block ({res.registers} x {threads} threads) > {spec.regs_per_sm} per SM")
    shared = res.shared + dynamic_shared
    if shared > spec.smem_per_block:
        problems.append(f"{shared} bytes of shared memory per block > {spec.smem_per_block} ({spec.name})")
    return problems
