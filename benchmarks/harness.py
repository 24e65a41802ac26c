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


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
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
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "date": time.strftime("%Y-%m-%d"),
    }


def write(name: str, rows: list[dict], markdown: str, meta: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps({"machine": meta, "rows": rows}, indent=1))
    (RESULTS / f"{name}.md").write_text(markdown + "\n")
    return RESULTS
