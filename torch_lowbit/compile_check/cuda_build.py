"""The CUDA C++ kernels of the built extension, checked from its embedded binaries (the CI build
compiles sm_80 and sm_90): no spills, registers within each variant's budget, and for LUT-GEMM the
shuffle-based table lookups (SHFL), no local-memory traffic and no byte-wide weight loads."""
from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess

from torch_lowbit.compile_check import resources

# (pattern on the demangled name, most registers per thread, why). Launch bounds already cap
# every kernel at what one block may use; these are the occupancy each variant is meant to keep.
REGISTER_BUDGETS = [
    (re.compile(r"lut_gemm_kernel<\d+, 1>"), 128,
     "the decode GEMV: >= 4 blocks of 128 threads per SM keep 16 warps of weight loads in flight"),
    (re.compile(r"lut_gemm_kernel<\d+, 4>"), 255, "4 activation rows: 128 threads under launch bounds"),
    (re.compile(r"."), 255, "the hardware limit"),
]


def extension_path() -> str:
    spec = importlib.util.find_spec("torch_lowbit._C")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("torch_lowbit._C: the extension is not built (pip install -e .)")
    return spec.origin


def demangle(names: list[str]) -> dict[str, str]:
    if not names or shutil.which("c++filt") is None:
        return {n: n for n in names}
    done = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True)
    return dict(zip(names, done.stdout.splitlines())) if done.returncode == 0 else {n: n for n in names}


def short(name: str) -> str:
    name = name.replace("torch_lowbit::cuda::", "").replace("(anonymous namespace)::", "").split("(")[0]
    return name[5:] if name.startswith("void ") else name


def check(path: str | None = None) -> list[dict]:
    """One record per (arch, kernel) of the extension's fatbinaries; [] when it has no CUDA code."""
    path = path or extension_path()
    usage = resources.resource_usage(path)
    if not usage:
        return []
    names = demangle(sorted({r.function for r in usage}))
    opcodes = resources.sass_opcodes(path)
    out = []
    for res in usage:
        name = short(names[res.function])
        ops = opcodes.get((res.arch, res.function), {})
        budget, why = next((b, w) for p, b, w in REGISTER_BUDGETS if p.search(name))
        problems = []
        spilled = resources.spills(res, ops)
        if spilled:
            problems.append(f"spills / local memory: stack {res.stack} B, local {res.local} B per thread")
        if res.registers > budget:
            problems.append(f"{res.registers} registers > budget {budget} ({why})")
        if "lut_gemm_kernel" in name:
            if not any(o.startswith("SHFL") for o in ops):
                problems.append("no SHFL: the register-table lookups are gone")
            if any(o.startswith("LDG") and (".U8" in o or ".S8" in o) for o in ops):
                problems.append("byte-wide global loads: the weight stream is read 1 byte at a time")
        loads = {o: n for o, n in sorted(ops.items()) if o.startswith(("LDG", "LDGSTS"))}
        out.append(dict(arch=res.arch, kernel=name, registers=res.registers, budget=budget, shared=res.shared,
                        stack=res.stack, local=res.local, spills=spilled, global_loads=loads, problems=problems))
    return out
