"""Shared timing and reporting for the benchmarks: medians of repeated runs, machine info,
JSON + markdown output. Ratios are always taken within one run of one process."""
from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Callable

import torch

RESULTS = Path(__file__).parent / "results"


def median_ms(fn: Callable[[], object], min_repeats: int = 5, max_repeats: int = 50, budget_s: float = 1.0, setup: Callable[[int], None] | None = None) -> float:
    """Median wall time of fn() in ms, after one warm-up; `setup(i)` runs untimed before call i."""
    if setup:
        setup(-1)
    fn()
    times: list[float] = []
    start = time.perf_counter()
    i = 0
    while len(times) < min_repeats or (len(times) < max_repeats and time.perf_counter() - start < budget_s):
        if setup:
            setup(i)
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        i += 1
    return statistics.median(times) * 1e3


def _amd_core(family: int, model: int) -> str | None:
    """AMD's core generation from cpuid family/model (family 0x19: Zen 3 or Zen 4 by model range)."""
    if family == 0x17:
        return "Zen 2" if model >= 0x30 else "Zen 1"
    if family == 0x19:
        return "Zen 4" if 0x10 <= model <= 0x1F or 0x60 <= model <= 0x7F or 0xA0 <= model <= 0xAF else "Zen 3"
    if family == 0x1A:
        return "Zen 5"
    return None


def cpu_name() -> str:
    """The CPU's model name. Cloud guests often report a bare "AMD EPYC" for every generation
    (Zen 3 with AVX2 only and Zen 5 with AVX-512 alike), so for AMD the core generation from the
    cpuid family and model is added: "AMD EPYC (Zen 5, family 26 model 2)"."""
    try:
        info: dict[str, str] = {}
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
            if key.strip() == "flags":
                break
        name = info.get("model name")
        if name:
            if info.get("vendor_id") == "AuthenticAMD" and info.get("cpu family", "").isdigit():
                family, model = int(info["cpu family"]), int(info.get("model", "0"))
                core = _amd_core(family, model)
                name += f" ({core + ', ' if core else ''}family {family} model {model})"
            return name
    except (OSError, ValueError):
        pass
    return platform.processor() or platform.machine()


def machine_tag() -> str:
    """A short file-name tag for the CPU ("amd-epyc", "intel-xeon-..."): results are kept per machine."""
    name = cpu_name().lower().replace("(r)", "").replace("(tm)", "")
    words = [w for w in "".join(c if c.isalnum() else " " for c in name).split() if w not in ("cpu", "processor", "with")]
    return "-".join(words[:4]) or "unknown-cpu"


def machine() -> dict:
    import torch_lowbit

    info = torch_lowbit.build_info()
    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cpu_isa": info["cpu_isa"],
        "cpu_lut_tables": info["cpu_lut_tables"],
        "cpu_lut_lookup": info["cpu_lut_lookup"],
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "date": time.strftime("%Y-%m-%d"),
    }


def write(name: str, rows: list[dict], markdown: str, meta: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps({"machine": meta, "rows": rows}, indent=1))
    (RESULTS / f"{name}.md").write_text(markdown + "\n")
    return RESULTS
