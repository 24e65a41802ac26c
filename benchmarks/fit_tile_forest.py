"""Fit the tile model's random-forest correction to a GPU's measured tile sweep and save it where
the tile model loads it (torch_lowbit/data/gpu_policy/tile_forest_<gpu>.json).

    python benchmarks/gpu_kernels.py --only tiles     # on the GPU: writes results/gpu_tile_sweep.json
    python benchmarks/fit_tile_forest.py              # anywhere: fit, report, save

The report is leave-one-shape-out: for each swept shape, a forest fitted on the other shapes picks
a config, and its measured time is compared with the analytic model's pick and with the best
measured (the issue's goal: within 10% of the best on >= 90% of shapes). Pass --dry-run to report
without saving.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys

from harness import RESULTS
from torch_lowbit.backends.triton import tile_model
from torch_lowbit.backends.triton.tile_forest import Forest, features, path_for


def load(path):
    data = json.loads(open(path).read())
    spec = tile_model.GPU_SPECS.get(data["spec"]) or tile_model.GPU_SPECS["H100"]
    rows = []
    for r in data["rows"]:
        cfg = tile_model.TileConfig(r["block_m"], r["block_n"], r["block_k"], r["num_warps"], r["num_stages"], r["split_k"], r["group_m"])
        predicted = tile_model.predict_ms(r["m"], r["n"], r["k"], cfg, spec, 2, r["weight_bits"], r["group_size"])
        if math.isfinite(predicted) and r["ms"] > 0:
            rows.append((r, cfg, predicted))
    return data["device"], spec, rows


def design(rows):
    x = [features(r["m"], r["n"], r["k"], cfg, r["weight_bits"], p) for r, cfg, p in rows]
    y = [math.log(r["ms"] / p) for r, cfg, p in rows]
    return x, y


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sweep", default=str(RESULTS / "gpu_tile_sweep.json"))
    ap.add_argument("--trees", type=int, default=50)
    ap.add_argument("--dry-run", action="store_true")
    args = ap.parse_args()
    device, spec, rows = load(args.sweep)
    shapes = sorted({(r["m"], r["n"], r["k"], r["weight_bits"]) for r, _, _ in rows})
    print(f"{device}: {len(rows)} measured configs over {len(shapes)} shapes")
    within = {"analytic": 0, "forest": 0}
    for shape in shapes:
        train = [t for t in rows if (t[0]["m"], t[0]["n"], t[0]["k"], t[0]["weight_bits"]) != shape]
        test = [t for t in rows if (t[0]["m"], t[0]["n"], t[0]["k"], t[0]["weight_bits"]) == shape]
        best = min(t[0]["ms"] for t in test)
        analytic = min(test, key=lambda t: t[2])[0]["ms"]
        if len(train) >= 6:
            forest = Forest.fit(*design(train), trees=args.trees)
            x, _ = design(test)
            corrected = [t[2] * math.exp(c) for t, c in zip(test, forest.predict(x))]
            picked = test[min(range(len(test)), key=corrected.__getitem__)][0]["ms"]
        else:
            picked = analytic
        within["analytic"] += analytic <= 1.1 * best
        within["forest"] += picked <= 1.1 * best
        print(f"  m={shape[0]} {shape[1]}x{shape[2]} {shape[3]}-bit: best {best:.4f} ms, analytic pick x{analytic / best:.2f}, "
              f"forest pick x{picked / best:.2f}")
    print(f"within 10% of the best: analytic {within['analytic']}/{len(shapes)}, forest (held-out shape) {within['forest']}/{len(shapes)}")
    if not args.dry_run:
        x, y = design(rows)
        forest = Forest.fit(x, y, trees=args.trees)
        out = path_for(spec.name)
        forest.save(out, device, f"benchmarks/fit_tile_forest.py on {args.sweep} ({len(rows)} runs, median residual "
                                 f"{statistics.median(abs(v) for v in y):.3f})")
        print(f"saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
