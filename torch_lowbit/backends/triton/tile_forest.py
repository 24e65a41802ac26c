"""A random-forest correction to the analytic tile model, fitted to measured runs on one GPU (the
GEMM-on-Ada study's approach: learn runtime from tile parameters on the card itself).

The forest predicts log(measured / analytic prediction) from the shape, the tile config and the
analytic prediction, so with few measurements it falls back to the analytic model (a correction
near 0) instead of extrapolating raw runtimes. Trees are plain arrays in JSON (no pickles, no
scikit-learn needed to load or fit), one file per GPU next to the kernel-family policies:
torch_lowbit/data/gpu_policy/tile_forest_<gpu>.json, written by benchmarks/fit_tile_forest.py from
`python benchmarks/gpu_kernels.py --only tiles` (benchmarks/results/gpu_tile_sweep.json).
tile_model.rank_configs applies it when the file for the running GPU exists.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.uniform(0, 1, (200, 3)); y = np.where(x[:, 0] > 0.5, 1.0, -1.0)
    >>> forest = Forest.fit(x, y, trees=10, seed=0)
    >>> bool(abs(forest.predict(np.array([[0.9, 0.2, 0.3]]))[0] - 1.0) < 0.2)
    True
"""
from __future__ import annotations

import json
import math
import os
import re

import numpy as np

FEATURES = ("log2_m", "log2_n", "log2_k", "log2_block_m", "log2_block_n", "log2_block_k", "num_warps", "num_stages",
            "log2_split_k", "weight_bits", "log_predicted_ms")
POLICY_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "data", "gpu_policy")


def features(m: int, n: int, k: int, cfg, weight_bits: int, predicted_ms: float) -> list[float]:
    return [math.log2(m), math.log2(n), math.log2(k), math.log2(cfg.block_m), math.log2(cfg.block_n), math.log2(cfg.block_k),
            cfg.num_warps, cfg.num_stages, math.log2(cfg.split_k), weight_bits, math.log(predicted_ms)]


class Forest:
    """Regression trees as arrays: per node a feature (-1 at a leaf), a threshold, children, a value."""

    def __init__(self, trees: list[dict]):
        self.trees = [{k: np.asarray(v) for k, v in t.items()} for t in trees]

    @staticmethod
    def _grow(x, y, rng, max_depth, min_leaf, max_features):
        feature, threshold, left, right, value = [], [], [], [], []

        def node(idx, depth):
            i = len(feature)
            feature.append(-1); threshold.append(0.0); left.append(-1); right.append(-1); value.append(float(y[idx].mean()))
            if depth >= max_depth or len(idx) < 2 * min_leaf or np.ptp(y[idx]) == 0:
                return i
            best = None
            for f in rng.choice(x.shape[1], size=max_features, replace=False):
                order = idx[np.argsort(x[idx, f], kind="stable")]
                xs, ys = x[order, f], y[order]
                csum, csq = np.cumsum(ys), np.cumsum(ys ** 2)
                total, total_sq, cnt = csum[-1], csq[-1], len(ys)
                for j in range(min_leaf, cnt - min_leaf + 1):
                    if xs[j - 1] == xs[j]:
                        continue
                    sse = (csq[j - 1] - csum[j - 1] ** 2 / j) + ((total_sq - csq[j - 1]) - (total - csum[j - 1]) ** 2 / (cnt - j))
                    if best is None or sse < best[0]:
                        best = (sse, f, (xs[j - 1] + xs[j]) / 2, order[:j], order[j:])
            if best is None:
                return i
            _, f, t, lo, hi = best
            feature[i], threshold[i] = int(f), float(t)
            left[i] = node(lo, depth + 1)
            right[i] = node(hi, depth + 1)
            return i

        node(np.arange(len(y)), 0)
        return dict(feature=feature, threshold=threshold, left=left, right=right, value=value)

    @classmethod
    def fit(cls, x, y, trees: int = 50, max_depth: int = 8, min_leaf: int = 3, seed: int = 0) -> "Forest":
        """Bagged trees, each split over a random third of the features (at least 2)."""
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        if len(x) < 2 * min_leaf:
            raise ValueError(f"x: expected at least {2 * min_leaf} measurements to fit a forest, got {len(x)}")
        rng = np.random.default_rng(seed)
        max_features = max(2, x.shape[1] // 3)
        grown = [cls._grow(x[s], y[s], rng, max_depth, min_leaf, min(max_features, x.shape[1]))
                 for s in (rng.integers(0, len(y), len(y)) for _ in range(trees))]
        return cls(grown)

    def predict(self, x) -> np.ndarray:
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        out = np.zeros(len(x))
        for t in self.trees:
            for r, row in enumerate(x):
                i = 0
                while t["feature"][i] >= 0:
                    i = t["left"][i] if row[t["feature"][i]] <= t["threshold"][i] else t["right"][i]
                out[r] += t["value"][i]
        return out / len(self.trees)

    def save(self, path: str, device: str, source: str) -> None:
        trees = [{k: v.tolist() for k, v in t.items()} for t in self.trees]
        with open(path + ".tmp", "w") as f:
            json.dump({"device": device, "source": source, "features": list(FEATURES), "trees": trees}, f)
        os.replace(path + ".tmp", path)

    @classmethod
    def load(cls, path: str) -> "Forest":
        with open(path) as f:
            data = json.load(f)
        if data.get("features") != list(FEATURES):
            raise ValueError(f"{path}: fitted on features {data.get('features')}, this version uses {list(FEATURES)}")
        return cls(data["trees"])


def path_for(gpu_name: str) -> str:
    return os.path.join(POLICY_DIR, "tile_forest_" + re.sub(r"[^a-z0-9]+", "_", gpu_name.lower()).strip("_") + ".json")


_loaded: dict[str, Forest | None] = {}


def for_gpu(gpu_name: str) -> Forest | None:
    """The installed forest of this GPU, or None."""
    if gpu_name not in _loaded:
        path = path_for(gpu_name)
        _loaded[gpu_name] = Forest.load(path) if os.path.exists(path) else None
    return _loaded[gpu_name]
