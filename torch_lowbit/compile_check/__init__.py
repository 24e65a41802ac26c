"""`python -m torch_lowbit gpu-compile-check`: the GPU kernels checked without a GPU.

Every Triton kernel configuration the tile model would pick on the benchmark shapes is compiled
ahead of time for sm_80, sm_89 and sm_90 (triton_cases.py, triton_aot.py) and its binary checked
(triton_report.py): no compile error, no spill, launchable on every card of the arch, tensor-core
instructions where tl.dot is used, 16-byte loads on the weight streams that promise them. Then the
CUDA C++ kernels of the built extension (cuda_build.py): no spills, registers within budget, the
LUT kernel's shuffles. Exit status 1 on any problem.

    python -m torch_lowbit gpu-compile-check                      # what CI runs
    python -m torch_lowbit gpu-compile-check --archs 90 --jobs 8  # one arch
    python -m torch_lowbit gpu-compile-check --update-resources   # after changing a kernel: refresh
        torch_lowbit/data/triton_resources.json, the compiled sizes the tile model trusts
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
import time


def _progress(done: int, total: int) -> None:
    if done == total or done % 50 == 0:
        print(f"  compiled {done}/{total}", flush=True)


def merge_entries(entries: dict, records: list[dict]) -> int:
    """Fold compiled records into compiled_resources entries (worst case over a key's variants);
    returns how many keys are new or changed."""
    changed = 0
    fresh: dict[str, dict] = {}
    for r in records:
        if not r.get("model_key") or "registers" not in r:
            continue
        e = fresh.setdefault(r["model_key"], {"shared": 0, "registers": 0, "spills": False})
        e["shared"] = max(e["shared"], r["shared"])
        e["registers"] = max(e["registers"], r["registers"])
        e["spills"] = e["spills"] or r["spills"]
    for key, e in fresh.items():
        if entries.get(key) != e:
            entries[key] = e
            changed += 1
    return changed


def triton_check(archs, jobs, update: bool, specializations: bool) -> list[dict]:
    from torch_lowbit.backends.triton import compiled_resources
    from torch_lowbit.compile_check import triton_cases, triton_report

    if not update:
        cases = triton_cases.cases(archs, specializations)
        print(f"Triton: {len(cases)} binaries to compile for {', '.join(f'sm_{a}' for a in archs)}", flush=True)
        return triton_report.run(cases, jobs, _progress)
    # Refresh the table: compile the picks, record what the compiler said, let the tile model
    # re-pick with it, and repeat until the picks stop changing.
    import triton

    entries = dict(compiled_resources.table())
    # Records are reused across rounds only for the identical binary (full specialization key):
    # each round's cases stand for their merged variants by whichever launch comes first, and
    # variants can differ in spills.
    done: dict[tuple, dict] = {}
    for round_ in range(20):
        compiled_resources.set_table(entries)
        cases = triton_cases.cases(archs, specializations)
        keys = [triton_cases.binary_key(c.arch, c.launch, True) for c in cases]
        todo = [c for c, k in zip(cases, keys) if k not in done]
        print(f"Triton (update, round {round_ + 1}): {len(cases)} picks, {len(todo)} new to compile", flush=True)
        for c, r in zip(todo, triton_report.run(todo, jobs, _progress)):
            done[triton_cases.binary_key(c.arch, c.launch, True)] = r
        if merge_entries(entries, list(done.values())) == 0 and not todo:
            break
    else:
        print("warning: the picks were still changing after 20 rounds; rerun --update-resources", flush=True)
    compiled_resources.write(entries, triton.__version__, "python -m torch_lowbit gpu-compile-check --update-resources")
    compiled_resources.set_table(None)
    print(f"wrote {compiled_resources.PATH} ({len(entries)} configs)")
    return [done[k] for k in keys]


def _show_problems(kind: str, records: list[dict], limit: int = 40) -> None:
    bad = [r for r in records if r["problems"]]
    for r in bad[:limit]:
        who = r.get("users", [])
        where = f" (picked for {who[0]}{f' and {len(who) - 1} more' if len(who) > 1 else ''})" if who else ""
        meta = " ".join(f"{k}={v}" for k, v in r.get("meta", {}).items())
        print(f"  FAIL {kind} sm_{r['arch']} {r['kernel']} {meta}{where}:\n       " + "\n       ".join(r["problems"]))
    if len(bad) > limit:
        print(f"  ... and {len(bad) - limit} more")


def main(argv: list[str] | None = None) -> int:
    import os

    # @triton.jit makes interpreter objects, not compilable kernels, while this is set; it is read
    # when the kernel modules are imported, which happens below
    os.environ.pop("TRITON_INTERPRET", None)
    from torch_lowbit.compile_check.triton_cases import ARCH_CARDS, DEFAULT_ARCHS

    parser = argparse.ArgumentParser(prog="python -m torch_lowbit gpu-compile-check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", type=int, nargs="+", default=list(DEFAULT_ARCHS), choices=sorted(ARCH_CARDS))
    parser.add_argument("--jobs", type=int, default=None, help="compile processes (default: every CPU)")
    parser.add_argument("--update-resources", action="store_true", help="rewrite torch_lowbit/data/triton_resources.json")
    parser.add_argument("--all-specializations", action="store_true",
                        help="compile every integer-divisibility variant separately (slower)")
    parser.add_argument("--skip-triton", action="store_true")
    parser.add_argument("--skip-cuda", action="store_true")
    parser.add_argument("--json", help="write every record here")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    summary, triton_records, cuda_records = [], [], []
    if not args.skip_triton:
        triton_records = triton_check(args.archs, args.jobs, args.update_resources, args.all_specializations)
        _show_problems("triton", triton_records)
        per_arch = collections.Counter(r["arch"] for r in triton_records)
        spills = sum(r.get("spills", False) for r in triton_records)
        failed = sum(bool(r["problems"]) for r in triton_records)
        summary.append(f"{len(triton_records)} Triton kernels x {len(per_arch)} archs compiled "
                       f"({', '.join(f'sm_{a}: {n}' for a, n in sorted(per_arch.items()))}), {spills} spills, {failed} failing")
    if not args.skip_cuda:
        from torch_lowbit.compile_check import cuda_build

        cuda_records = cuda_build.check()
        if cuda_records:
            _show_problems("cuda", cuda_records)
            archs = sorted({r["arch"] for r in cuda_records})
            spills = sum(r["spills"] for r in cuda_records)
            failed = sum(bool(r["problems"]) for r in cuda_records)
            summary.append(f"{len(cuda_records)} CUDA C++ kernels ({', '.join(f'sm_{a}' for a in archs)}), {spills} spills, {failed} failing")
        else:
            summary.append("CUDA C++: the extension has no CUDA kernels (a CPU-only build), not checked")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"triton": triton_records, "cuda": cuda_records}, f, indent=1, default=str)
    ok = not any(r["problems"] for r in triton_records + cuda_records)
    print(f"gpu-compile-check: {'; '.join(summary)}; {time.perf_counter() - start:.0f} s -> {'ok' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
