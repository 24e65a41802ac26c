"""FSDP2 for patched models: `torch_lowbit.fsdp.fully_shard` in place of torch's
`torch.distributed.fsdp.fully_shard`, so that the packed low-bit weights are sharded too.

FSDP2 shards a module's Parameters and only moves its buffers, where a low-bit layer keeps its
packed weight: with torch's call alone every rank holds the whole quantized model. This call
first turns each low-bit layer's planes / alpha / offset into frozen Parameters (FSDP2 then
shards and all-gathers them like any other; integer parameters mix with float ones in one
all-gather), then calls torch's fully_shard with the same arguments. The scales are held as
integer views (int16 for fp16, int32 for fp32 scales): FSDP2's MixedPrecisionPolicy casts only
floating-point parameters, and a bf16 cast of the scales would lose bits the kernels need
(the activations are cast as usual). state_dict() views them back, so a state dict (full or
sharded, e.g. torch.distributed.checkpoint's get_model_state_dict) holds the saved format's
dtypes and loads into an unsharded patched model, and load_state_dict takes that format.

Example (run under `torchrun --nproc-per-node 2`, gloo on CPU or NCCL on GPUs):

    import torch, torch_lowbit, torch_lowbit.fsdp
    torch.distributed.init_process_group("gloo")
    model = torch_lowbit.patch(my_llama, bits=3)           # and LoRA adapters (PEFT) if training
    for layer in model.model.layers:
        torch_lowbit.fsdp.fully_shard(layer)
    torch_lowbit.fsdp.fully_shard(model)
    loss = model(**batch, labels=batch["input_ids"]).loss  # each rank: its part of the batch
    loss.backward()

A low-bit layer is frozen: LoRA adapters (or other float parameters) train, the packed weight
does not. Outside forward its parameters are sharded DTensors, so calls that read the whole
weight (dequantize, a LoRA merge) need a full state dict loaded into an unsharded model first.
"""
from __future__ import annotations

from typing import Any

from torch import nn

from torch_lowbit.modules import _FLOAT_OF_VIEW, is_low_bit

__all__ = ["fully_shard", "packed_as_parameters"]

_VIEW_OF_FLOAT = {f: i for i, f in _FLOAT_OF_VIEW.items()}
_SCALES = ("alpha", "offset")
# The dimension each packed tensor is sharded on: planes [bits, panels, Kp/8, 16] by panels,
# alpha [bits, groups, N] and offset [groups, N] by rows (FSDP2's default, dim 0, would split
# the 2-4 bit-planes: 2/3 of a 3-bit layer on one rank).
_SHARD_DIM = {"planes": 1, "alpha": 2, "offset": 1}


def packed_as_parameters(module: nn.Module) -> nn.Module:
    """Every low-bit layer in `module`: packed weight held as frozen Parameters (scales as
    integer views) instead of buffers, as FSDP2 needs; idempotent. fully_shard calls it."""
    for m in module.modules():
        if not is_low_bit(m) or "planes" not in m._buffers:
            continue
        for name in ("planes", *_SCALES):
            t = m._buffers.pop(name)
            if name in _SCALES:
                t = t.view(_VIEW_OF_FLOAT[t.dtype])
            param = nn.Parameter(t, requires_grad=False)
            param._torch_lowbit_shard_dim = _SHARD_DIM[name]
            m.register_parameter(name, param)
        m.__dict__.pop("_qw_cache", None)
        m._register_state_dict_hook(_scales_as_float)
        m._register_load_state_dict_pre_hook(_scales_as_views, with_module=True)
    return module


def _scales_as_float(module: nn.Module, state_dict: dict[str, Any], prefix: str, local_metadata: Any) -> None:
    dtype = module.scale_dtype
    for name in _SCALES:
        key = prefix + name
        if key in state_dict and state_dict[key].dtype in _FLOAT_OF_VIEW:
            state_dict[key] = state_dict[key].view(dtype)


def _scales_as_views(module: nn.Module, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
    for name in _SCALES:
        key = prefix + name
        if key in state_dict and state_dict[key].dtype in _VIEW_OF_FLOAT:
            state_dict[key] = state_dict[key].view(_VIEW_OF_FLOAT[state_dict[key].dtype])


def fully_shard(module: nn.Module, **kwargs: Any) -> nn.Module:
    """torch.distributed.fsdp.fully_shard(module, **kwargs) after packed_as_parameters(module):
    the low-bit layers' packed weights are sharded across the mesh like parameters.
    Call it on each block, then on the root, as with torch's."""
    from torch.distributed.fsdp import fully_shard as torch_fully_shard
    from torch.distributed.tensor import Shard

    user_fn = kwargs.pop("shard_placement_fn", None)

    def placement(param: nn.Parameter):
        dim = getattr(param, "_torch_lowbit_shard_dim", None)
        if dim is not None:
            return Shard(dim)
        return user_fn(param) if user_fn is not None else None

    return torch_fully_shard(packed_as_parameters(module), shard_placement_fn=placement, **kwargs)
