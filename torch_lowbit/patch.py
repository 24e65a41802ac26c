"""patch(model, bits=3): swap a model's layers in place for low-bit ones."""
from __future__ import annotations

from torch import nn

from torch_lowbit.format import check_bits, check_group_size
from torch_lowbit.modules import LowBitLinear


def patch(model: nn.Module, bits: int = 3, group_size: int = 128, method: str = "rtn") -> nn.Module:
    """Replace every nn.Linear of `model` (in place) with a LowBitLinear; returns the model.

    Example:
        >>> import torch, torch_lowbit
        >>> m = torch_lowbit.patch(torch.nn.Sequential(torch.nn.Linear(64, 64)), bits=3, group_size=32)
        >>> type(m[0]).__name__
        'LowBitLinear'
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected an nn.Module, got {type(model).__name__}")
    check_bits(bits)
    check_group_size(group_size)
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.Linear) and not isinstance(child, LowBitLinear):
                setattr(module, child_name, LowBitLinear.from_linear(child, bits=bits, group_size=group_size, method=method))
    return model
