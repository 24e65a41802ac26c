"""Calibration statistics for GPTQ: the Hessian H = sum x^T x of each target layer's inputs."""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from torch_lowbit.conv_geometry import conv_padding

HESSIAN_BUDGET_BYTES = 1 << 30  # Hessians held at once (fp32 K x K per layer)


def _in_features(kind: str, module: nn.Module) -> int:
    if kind == "conv2d":
        return module.in_channels // module.groups * math.prod(module.kernel_size)
    if kind == "conv1d":
        return module.weight.shape[0]
    return module.in_features


def plan_stages(targets: list, budget: int = HESSIAN_BUDGET_BYTES) -> list[list]:
    """Split targets (in module order) into stages whose Hessians fit the budget together."""
    stages, current, used = [], [], 0
    for target in targets:
        size = 4 * _in_features(target[1], target[2]) ** 2
        if current and used + size > budget:
            stages.append(current)
            current, used = [], 0
        current.append(target)
        used += size
    if current:
        stages.append(current)
    return stages


def _conv_rows(module: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """im2col rows [L, C*R*S] of a conv input, in the weight's flattened (c, r, s) order."""
    padding = module.padding
    if isinstance(padding, str):
        top, bottom, left, right = conv_padding(padding, module.kernel_size, module.stride, module.dilation)
        x = F.pad(x, (left, right, top, bottom))
        padding = 0
    cols = F.unfold(x, module.kernel_size, dilation=module.dilation, padding=padding, stride=module.stride)
    return cols.transpose(1, 2).reshape(-1, cols.shape[1])


def text_batches(tokenizer: Any, texts: list[str], batch_size: int = 16) -> list[dict]:
    """Calibration batches (tokenizer outputs as dicts, padded, with attention masks) from texts."""
    return [dict(tokenizer(texts[i : i + batch_size], padding=True, truncation=True, return_tensors="pt")) for i in range(0, len(texts), batch_size)]


def run_model(model: nn.Module, batch: Any) -> None:
    if isinstance(batch, Mapping):
        model(**batch)
    elif isinstance(batch, (tuple, list)):
        model(*batch)
    else:
        model(batch)


def collect_hessians(model: nn.Module, stage: list, calibration: list) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Run the calibration batches once with hooks on the stage's layers; returns {name: H}
    and {name: why no H} for layers GPTQ cannot use statistics for."""
    hessians: dict[str, torch.Tensor] = {}
    notes: dict[str, str] = {}
    mask_holder: dict[str, torch.Tensor | None] = {"mask": None}
    handles = []
    for name, kind, module, _ in stage:
        if kind == "conv2d" and module.groups != 1:
            notes[name] = "grouped convolution (per-group statistics not supported)"
            continue

        def hook(mod, args, name=name, kind=kind):
            x = args[0].detach()
            if kind == "conv2d":
                rows = _conv_rows(mod, x.float())
            else:
                mask = mask_holder["mask"]
                if mask is not None and x.dim() == 3 and tuple(mask.shape) == tuple(x.shape[:2]):
                    rows = x[mask.to(x.device).bool()]
                else:
                    rows = x.reshape(-1, x.shape[-1])
                rows = rows.float()
            h = hessians.get(name)
            if h is None:
                h = hessians[name] = torch.zeros(rows.shape[1], rows.shape[1], device=rows.device)
            h.addmm_(rows.t(), rows)

        handles.append(module.register_forward_pre_hook(hook))
    try:
        with torch.no_grad():
            for batch in calibration:
                mask_holder["mask"] = batch.get("attention_mask") if isinstance(batch, Mapping) else None
                run_model(model, batch)
    finally:
        for handle in handles:
            handle.remove()
    return hessians, notes
