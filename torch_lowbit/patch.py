"""patch(model, bits=3): swap a model's nn.Linear, HF Conv1D and nn.Conv2d layers in place for
low-bit modules."""
from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from torch_lowbit.config import DEFAULT_METHOD, QuantConfig
from torch_lowbit.modules import LowBitConv2d, LowBitLinear, is_hf_conv1d, is_low_bit, skeleton
from torch_lowbit.quantize.calibration import collect_hessians, plan_stages
from torch_lowbit.quantize.synthetic import synthetic_batches
from torch_lowbit.serialization import record_in_hf_config

DEFAULT_SKIP: tuple[str, ...] = ()  # embeddings are never targets
# A causal LM's output projection: at decode it is the largest single read (TinyLlama's fp32
# lm_head is 262 MB of a 3-bit model's 686 MB per token). Quantized at 6 bits by default, as
# llama.cpp keeps its output tensor at Q6_K: the head's error goes straight into the logits.
HEAD_PATTERNS = ("lm_head", "*.lm_head")
DEFAULT_HEAD_BITS = 6


@dataclass
class PatchReport:
    """What patch() did: one row per replaced module, one per skipped candidate with the reason."""

    replaced: list[dict] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)

    @property
    def bytes_before(self) -> int:
        return sum(r["bytes_before"] for r in self.replaced)

    @property
    def bytes_after(self) -> int:
        return sum(r["bytes_after"] for r in self.replaced)

    def __str__(self) -> str:
        lines = [f"torch_lowbit.patch: replaced {len(self.replaced)} modules, skipped {len(self.skipped)}"]
        if self.replaced:
            ratio = self.bytes_before / max(self.bytes_after, 1)
            lines.append(f"  weight bytes {self.bytes_before:,} -> {self.bytes_after:,} ({ratio:.1f}x smaller)")
        lines += [f"  skipped {name}: {why}" for name, why in self.skipped]
        lines += [f"  note {name}: {what}" for name, what in self.notes]
        return "\n".join(lines)


def _is_target(module: nn.Module) -> str | None:
    if is_low_bit(module):
        return None
    if isinstance(module, nn.Linear):
        return "linear"
    if is_hf_conv1d(module):
        return "conv1d"
    if isinstance(module, nn.Conv2d):
        return "conv2d"
    return None


def _settings_for(name: str, defaults: QuantConfig, overrides: Mapping[str, Any] | None, head_bits: int | None) -> QuantConfig | None:
    """The settings of one target (None: it stays float): the first matching override, else the
    output head's bits for an lm_head, else the defaults."""
    for pattern, value in (overrides or {}).items():
        if fnmatch.fnmatchcase(name, pattern):
            return defaults.with_override(value, pattern)
    if _is_head(name):
        return None if head_bits is None else defaults.replace(bits=max(defaults.bits, head_bits))
    return defaults


def _is_head(name: str) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in HEAD_PATTERNS)


def check_head_bits(head_bits: int | None) -> None:
    if head_bits is not None and (isinstance(head_bits, bool) or not isinstance(head_bits, int) or not 1 <= head_bits <= 8):
        raise ValueError(f"head_bits: expected an int in 1..8 or None (output head stays float), got {head_bits!r}")


def _tied_sources(model: nn.Module, names: Iterable[str]) -> dict[str, str]:
    """{target name: qualified name of another parameter holding the same tensor}: heads tied to
    the input embedding (GPT-2, Llama-3.2-1B, Qwen2.5-0.5B)."""
    by_id: dict[int, str] = {}
    for pname, param in model.named_parameters(remove_duplicate=False):
        by_id.setdefault(id(param), pname)
    out = {}
    for name in names:
        weight = getattr(model.get_submodule(name), "weight", None) if name else None
        source = by_id.get(id(weight)) if isinstance(weight, torch.Tensor) else None
        if source is not None and source != f"{name}.weight":
            out[name] = source
    return out


def _untie_hf_config(model: nn.Module, heads: Mapping[str, str]) -> None:
    """A low-bit head is no longer the embedding's tensor: tell transformers so, or
    from_pretrained and tie_weights() look for a float `lm_head.weight` to tie."""
    config = getattr(model, "config", None)
    if config is None or not heads:
        return
    configs = [config]
    get_text = getattr(config, "get_text_config", None)
    if callable(get_text) and get_text() is not config:
        configs.append(get_text())
    for c in configs:
        if getattr(c, "tie_word_embeddings", False):
            c.tie_word_embeddings = False
    drop_tied_keys(model, heads)


def drop_tied_keys(model: nn.Module, names: Iterable[str]) -> None:
    """Take the low-bit layers `names` out of transformers' tied-weight map: they have no float
    `weight` to tie (from_pretrained would look one up)."""
    tied = getattr(model, "all_tied_weights_keys", None)
    if isinstance(tied, dict):
        for name in names:
            tied.pop(f"{name}.weight", None)


def _weight_of(module: nn.Module) -> torch.Tensor:
    return module.weight


def _build(kind: str, module: nn.Module, config: QuantConfig, hessian: torch.Tensor | None) -> nn.Module:
    weight = _weight_of(module)
    if weight.is_meta:  # a skeleton (e.g. for load()): right shapes, no values
        return skeleton(kind, module, tuple(weight.t().shape) if kind == "conv1d" else tuple(weight.shape), config)
    kwargs = {"scale_dtype": config.scale_dtype}
    if config.method == "gptq":
        kwargs["hessian"] = hessian
    cls = LowBitConv2d if kind == "conv2d" else LowBitLinear
    return cls.from_float(module, bits=config.bits, group_size=config.group_size, method=config.method, **kwargs)


def _move_accelerate_hook(old: nn.Module, new: nn.Module) -> None:
    hook = getattr(old, "_hf_hook", None)
    if hook is None:
        return
    from accelerate.hooks import add_hook_to_module

    add_hook_to_module(new, hook)


def patch(
    model: nn.Module,
    bits: int = 3,
    group_size: int = 128,
    method: str | None = None,
    *,
    skip: Iterable[str] = DEFAULT_SKIP,
    head_bits: int | None = DEFAULT_HEAD_BITS,
    overrides: Mapping[str, int | Mapping[str, Any]] | None = None,
    filter_fn: Callable[[nn.Module, str], bool] | None = None,
    calibration: Iterable[Any] | str | None = None,
    scale_dtype: torch.dtype = torch.float16,
    progress: bool | None = None,
    verbose: bool = False,
) -> nn.Module:
    """Replace the model's nn.Linear, HF Conv1D and nn.Conv2d layers in place; returns the model
    (given a bare layer, e.g. one nn.Linear, its low-bit replacement).

    - skip: glob patterns on qualified module names to leave float (default: none).
    - head_bits: bits of the output head (modules named `lm_head`), at least `bits`; default 6
      (llama.cpp's Q6_K output tensor); None leaves the head float. A head tied to the input
      embedding becomes its own low-bit copy (the embedding stays float for the lookup) and
      the transformers config is marked untied (`tie_word_embeddings=False`).
    - overrides: {pattern: bits} or {pattern: {"bits", "group_size", "method"}}; first match
      wins, over head_bits too.
    - filter_fn(module, name) -> bool: only modules it accepts are replaced.
    - method: "mse" by default (data-free), "gptq" when calibration is given; "rtn", "bcq".
    - calibration: batches for method="gptq" (dicts are passed as model(**batch), tuples as
      model(*batch), tensors as model(batch)); with a dict's "attention_mask", padding tokens
      are left out of the statistics. "synthetic": batches of random tokens the library makes
      (synthetic_batches(model); models with a token embedding), no data needed.
    - Modules already low-bit are skipped (patching twice changes nothing more). Models on the
      meta device get empty low-bit skeletons (what load() fills). Accelerate hooks move over.
    The report (modules replaced, bytes before and after, skips) is `model.torch_lowbit_report`;
    transformers models also get `model.config.quantization_config` (so save_pretrained writes a
    checkpoint that from_pretrained loads back low-bit).

    Example:
        >>> import torch, torch_lowbit
        >>> m = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
        >>> m = torch_lowbit.patch(m, bits=3, group_size=32, overrides={"2": 4})
        >>> [getattr(layer, "bits", None) for layer in m]
        [3, None, 4]
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected an nn.Module, got {type(model).__name__}")
    if isinstance(calibration, str):
        if calibration != "synthetic":
            raise ValueError(f"calibration: expected batches or 'synthetic', got {calibration!r}")
        calibration = synthetic_batches(model)
    if method is None:
        method = "gptq" if calibration is not None else DEFAULT_METHOD
    defaults = QuantConfig(bits, group_size, method, scale_dtype)  # validates them
    check_head_bits(head_bits)
    skip = tuple(skip)
    report = PatchReport()
    targets = []  # (name, kind, module, settings)
    for name, module in model.named_modules():
        if is_low_bit(module):
            report.skipped.append((name, "already low-bit"))
            continue
        kind = _is_target(module)
        if kind is None:
            continue
        if any(fnmatch.fnmatchcase(name, p) for p in skip):
            report.skipped.append((name, "matched skip"))
            continue
        if filter_fn is not None and not filter_fn(module, name):
            report.skipped.append((name, "rejected by filter_fn"))
            continue
        if kind == "conv2d" and module.padding_mode != "zeros":
            report.skipped.append((name, f"padding_mode={module.padding_mode!r} (only 'zeros' is supported)"))
            continue
        if getattr(module, "_hf_hook", None) is not None and getattr(module._hf_hook, "offload", False):
            raise ValueError(f"model: {name} is offloaded by accelerate (weights not in memory); dispatch it to CPU/GPU memory before patch()")
        settings = _settings_for(name, defaults, overrides, head_bits)
        if settings is None:
            report.skipped.append((name, "output head (head_bits=None)"))
            continue
        targets.append((name, kind, module, settings))

    gptq_names = {name for name, _, _, cfg in targets if cfg.method == "gptq"}
    if gptq_names and calibration is None:
        raise ValueError("calibration: method='gptq' needs calibration batches, e.g. patch(model, method='gptq', calibration=[batch, ...])")
    if calibration is not None and not gptq_names:
        raise ValueError("calibration: only method='gptq' uses calibration batches")
    if gptq_names and any(_weight_of(m).is_meta for n, _, m, _ in targets if n in gptq_names):
        raise ValueError("model: method='gptq' needs real weights, the model is on the meta device")

    tied_heads = _tied_sources(model, [t[0] for t in targets])
    show = progress if progress is not None else len(targets) > 50
    bar = _progress(len(targets), show)
    calibration = list(calibration) if calibration is not None else None
    by_name = {t[0]: t for t in targets}
    order = [t[0] for t in targets if t[0] not in gptq_names]
    for name in order:
        model = _replace(model, by_name[name], None, report)
        bar.update(1)
    # GPTQ: stages of layers whose Hessians fit the memory budget, in module order, so later
    # stages see the outputs of the already-quantized earlier ones.
    gptq_targets = [t for t in targets if t[0] in gptq_names]
    for stage in plan_stages(gptq_targets):
        hessians, notes = collect_hessians(model, stage, calibration)
        for target in stage:
            model = _replace(model, target, hessians.get(target[0]), report, notes.get(target[0]))
            bar.update(1)
        del hessians
    bar.close()
    for name, source in tied_heads.items():
        report.notes.append((name, f"was tied to {source}; now its own low-bit copy ({source} stays float)"))
    _untie_hf_config(model, tied_heads)
    record_in_hf_config(model)
    model.torch_lowbit_report = report
    if verbose:
        print(report)
    return model


def _replace(model: nn.Module, target, hessian, report: PatchReport, note: str | None = None) -> nn.Module:
    """Swap one layer; returns the model (the new module itself when the model is that layer)."""
    name, kind, module, config = target
    if config.method == "gptq" and hessian is None:
        # No statistics for this layer (a grouped conv, or it never ran on the calibration data):
        # quantize it with GPTQ's own data-free grid and say so.
        config = config.replace(method="bcq")
        report.notes.append((name, f"gptq fell back to bcq: {note or 'no calibration inputs reached it'}"))
    weight = _weight_of(module)
    new = _build(kind, module, config, hessian)
    _move_accelerate_hook(module, new)
    parent_name, _, attr = name.rpartition(".")
    if name:
        setattr(model.get_submodule(parent_name) if parent_name else model, attr, new)
    settings = {"bits": config.bits, "group_size": config.group_size, "method": config.method}
    report.replaced.append(
        {"name": name, "kind": kind, **settings, "bytes_before": weight.numel() * weight.element_size(), "bytes_after": new.packed_nbytes}
    )
    return model if name else new


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, show: bool):
    if not show:
        return _NoBar()
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, desc="torch_lowbit.patch", unit="layer")
