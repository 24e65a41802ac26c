"""Compile every Triton case (triton_cases.py) for its arch and check the binary: no compile
error, no local memory (spills), launchable on every card of that arch (registers, threads,
static + dynamic shared memory), tensor-core instructions in the kernels that call tl.dot, and
16-byte loads on the weight streams that promise them."""
from __future__ import annotations

import multiprocessing
import os
import time

from torch_lowbit.backends.triton import tile_model
from torch_lowbit.compile_check import resources
from torch_lowbit.compile_check.ptx_loads import global_load_widths
from torch_lowbit.compile_check.triton_aot import compile_launch
from torch_lowbit.compile_check.triton_cases import ARCH_CARDS, Case

DOT_KERNELS = {"_bcq_gemm_kernel", "_dense_gemm_kernel", "_im2win_conv_kernel"}
_CASES: list[Case] = []


def tensor_core_problem(arch: int, opcodes) -> str | None:
    names = set(opcodes)
    if arch >= 90 and any(n.startswith(("HGMMA", "HMMA")) for n in names):
        return None
    if arch < 90 and any(n.startswith("HMMA") for n in names):
        return None
    return f"no tensor-core instruction ({'HGMMA/HMMA' if arch >= 90 else 'HMMA'}) in the SASS of a tl.dot kernel"


def check_case(case: Case) -> dict:
    """Compile one case and return its record (problems empty when it passes)."""
    launch = case.launch
    record = dict(arch=case.arch, kernel=case.kernel, meta={k: v for k, v in launch.meta.items()},
                  dtypes=[str(d).replace("torch.", "") for d in launch.pointer_dtypes], model_key=case.model_key,
                  users=case.users, problems=[])
    start = time.perf_counter()
    try:
        compiled = compile_launch(launch, case.arch)
    except Exception as e:  # a compile error is a finding, reported with the case
        record["problems"].append(f"compile error: {type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else ''}")
        return record
    record["compile_s"] = round(time.perf_counter() - start, 2)
    cubin = compiled.asm["cubin"]
    res = next(r for r in resources.resource_usage(cubin, case.arch) if r.function == case.kernel)
    opcodes = next(iter(resources.sass_opcodes(cubin, case.kernel, case.arch).values()))
    dynamic = compiled.metadata.shared
    names = launch.kernel.arg_names
    widths = global_load_widths(compiled.asm["ptx"], len(launch.pointer_dtypes))
    record.update(registers=res.registers, local=res.local, stack=res.stack, spills=resources.spills(res, opcodes),
                  shared=res.shared + dynamic,
                  loads={names[i]: dict(sorted(c.items())) for i, c in sorted(widths.items())},
                  tensor_core=sorted(n for n in opcodes if n.startswith(("HMMA", "HGMMA"))))
    problems = record["problems"]
    if any(n.startswith(("LDL", "STL")) for n in opcodes):
        problems.append("local-memory loads/stores (LDL/STL) in the SASS")
    for card in ARCH_CARDS[case.arch]:
        spec = tile_model.GPU_SPECS[card]
        problems += [f"{card}: {p}" for p in resources.launch_problems(res, case.threads, dynamic, spec)]
    if case.kernel in DOT_KERNELS and (p := tensor_core_problem(case.arch, opcodes)):
        problems.append(p)
    if case.wide_weights is not None:
        narrow = {w: n for w, n in widths.get(case.wide_weights, {}).items() if w < 16}
        if narrow or not widths.get(case.wide_weights):
            problems.append(f"weight stream {names[case.wide_weights]} loaded {narrow or 'not at all'} "
                            f"(bytes per load: count), expected only 16-byte loads")
    return record


def _check_index(i: int) -> dict:
    return check_case(_CASES[i])


def run(cases: list[Case], jobs: int | None = None, progress=None) -> list[dict]:
    """Records of every case, compiled in `jobs` processes (default: every CPU)."""
    global _CASES
    _CASES = cases
    jobs = jobs or os.cpu_count() or 1
    if jobs == 1:
        out = []
        for i in range(len(cases)):
            out.append(_check_index(i))
            if progress:
                progress(i + 1, len(cases))
        return out
    # fork: the cases (JIT functions) are inherited, not pickled; no CUDA context exists to break
    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        out = []
        for record in pool.imap(_check_index, range(len(cases)), chunksize=4):
            out.append(record)
            if progress:
                progress(len(out), len(cases))
        return out
