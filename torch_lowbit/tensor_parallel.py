"""Tensor parallelism for patched models: torch's ColwiseParallel / RowwiseParallel styles for
LowBitLinear, usable with `torch.distributed.tensor.parallel.parallelize_module`.

torch's own styles shard a layer's Parameters as DTensors and run F.linear on them; a
LowBitLinear's weight is packed buffers that the low-bit ops take as plain tensors. These styles
cut the packed weight itself, each rank keeping its shard as an ordinary (smaller) LowBitLinear,
and move activations between layouts in forward hooks:

- LowBitColwiseParallel: output rows split by whole 16-row panels (N / world a multiple of 16);
  input replicated, output sharded on the last dimension (torch's default layouts).
- LowBitRowwiseParallel: input columns split by whole groups with their scales (K / world a
  multiple of the group size); each rank's partial product is summed across ranks (all-reduce),
  then the bias is added once.

Layers that are not low-bit (a float lm_head, an Embedding) get torch's own style, so one plan
covers a partly patched model. `parallelize(model, mesh)` applies a HuggingFace model's own
`base_model_tp_plan` (e.g. Llama's: q/k/v/gate/up colwise, o/down rowwise) with these styles.

Example (two processes, e.g. `torchrun --nproc-per-node 2 script.py`; gloo on CPU):

    import torch, torch_lowbit
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor.parallel import parallelize_module
    from torch_lowbit.tensor_parallel import LowBitColwiseParallel, LowBitRowwiseParallel

    torch.manual_seed(0)  # every rank builds the same model; rank 0's weights are broadcast anyway
    mlp = torch.nn.Sequential(torch.nn.Linear(256, 512), torch.nn.ReLU(), torch.nn.Linear(512, 256))
    torch_lowbit.patch(mlp, bits=3, group_size=128)
    mesh = init_device_mesh("cpu", (2,))
    parallelize_module(mlp, mesh, {"0": LowBitColwiseParallel(), "2": LowBitRowwiseParallel()})
    y = mlp(torch.randn(4, 256))  # every rank: the full [4, 256] output

Each rank's state_dict holds its own shard (a consistent low-bit layer of the local shape), so
`torch_lowbit.save` per rank writes a loadable checkpoint of that rank's part; save the whole
model before parallelizing it to keep one checkpoint.
"""
from __future__ import annotations

import types
from functools import partial
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.tensor import DTensor, Partial, Placement, Replicate, Shard
from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module

from torch_lowbit import ops
from torch_lowbit.format import PANEL_ROWS, QuantizedWeight
from torch_lowbit.modules import LowBitLinear

__all__ = ["LowBitColwiseParallel", "LowBitRowwiseParallel", "parallelize"]


def _mesh_rank_world(mesh: DeviceMesh) -> tuple[int, int]:
    if mesh.ndim != 1:
        raise ValueError(f"device_mesh: expected a 1-D mesh (slice a multi-dimensional one, e.g. mesh['tp']), got {mesh.ndim}-D")
    return mesh.get_local_rank(), mesh.size()


def _broadcast_from(module: LowBitLinear, mesh: DeviceMesh, src_data_rank: int | None) -> None:
    """Every rank's packed weight and bias made rank src_data_rank's (torch's styles keep the
    single-device semantics the same way); None keeps each rank's own data."""
    if src_data_rank is None or module.planes.device.type == "meta":
        return
    group = mesh.get_group()
    src = dist.get_global_rank(group, src_data_rank)
    tensors = [module.planes, module.alpha, module.offset] + ([module.bias.data] if module.bias is not None else [])
    for t in tensors:
        dist.broadcast(t, src=src, group=group)


def _set_shard(module: LowBitLinear, qw: QuantizedWeight, bias: torch.Tensor | None) -> None:
    """Replaces the module's packed weight (and bias) by a shard of it, shapes updated."""
    module.planes, module.alpha, module.offset = qw.planes, qw.alpha, qw.offset
    module.weight_shape = tuple(qw.shape)
    module.out_features, module.in_features = qw.out_features, qw.in_features
    if bias is not None:
        module.bias = nn.Parameter(bias.detach().contiguous(), requires_grad=module.bias.requires_grad)
    module.__dict__.pop("_qw_cache", None)


def _as_layout(x: Any, mesh: DeviceMesh, given: tuple[Placement, ...], desired: tuple[Placement, ...], grad_partial: bool) -> Any:
    """The local tensor of x in the `desired` layout; x is a DTensor or a plain tensor in the
    `given` layout (torch's styles annotate plain inputs the same way). grad_partial: the
    layer's input gradient is a per-rank partial sum (a colwise shard sees a replicated input),
    so backward sums it across ranks (Megatron's "f")."""
    if not isinstance(x, DTensor):
        if not isinstance(x, torch.Tensor) or (given == desired and not (grad_partial and x.requires_grad)):
            return x
        x = DTensor.from_local(x, mesh, given, run_check=False)
    if tuple(x.placements) != desired:
        x = x.redistribute(placements=desired)
    return x.to_local(grad_placements=(Partial(),) if grad_partial else None)


def _input_hook(given, desired, grad_partial, mesh, module, inputs):
    return (_as_layout(inputs[0], mesh, given, desired, grad_partial), *inputs[1:])


def _output_hook(local_layout, output_layouts, use_local_output, add_bias, mesh, module, inputs, output):
    """The local output (in `local_layout`: Shard(-1) colwise, Partial() rowwise) moved to
    output_layouts, plus the bias where the shards left it out."""
    if local_layout == output_layouts and use_local_output and not add_bias:
        return output  # colwise's default: the local shard is already the answer
    y = DTensor.from_local(output, mesh, local_layout, run_check=False)
    if tuple(y.placements) != output_layouts:
        y = y.redistribute(placements=output_layouts)
    bias = module.bias if add_bias else None
    if use_local_output:
        y = y.to_local()
        return y if bias is None else y + bias
    return y if bias is None else y + DTensor.from_local(bias, mesh, (Replicate(),), run_check=False)


def _forward_without_bias(self: LowBitLinear, x: torch.Tensor) -> torch.Tensor:
    # Rowwise shards produce partial sums: the bias is added once, after they are summed.
    return ops.linear_prechecked(x, self.quantized_weight, None, self.backend)


class LowBitColwiseParallel(ColwiseParallel):
    """torch's ColwiseParallel for LowBitLinear: each rank keeps output rows
    [rank * N / world, (rank + 1) * N / world), whole 16-row panels; other modules get torch's
    ColwiseParallel. Same keyword arguments (input_layouts, output_layouts, use_local_output)."""

    def _apply(self, module: nn.Module, device_mesh: DeviceMesh) -> nn.Module:
        if not isinstance(module, LowBitLinear):
            return super()._apply(module, device_mesh)
        rank, world = _mesh_rank_world(device_mesh)
        n = module.out_features
        if n % world or (n // world) % PANEL_ROWS:
            raise ValueError(f"LowBitColwiseParallel: out_features {n} must split into {world} shards of whole {PANEL_ROWS}-row "
                             f"panels (out_features / world a multiple of {PANEL_ROWS})")
        _broadcast_from(module, device_mesh, self.src_data_rank)
        n0, n1 = rank * n // world, (rank + 1) * n // world
        bias = None if module.bias is None else module.bias[n0:n1]
        _set_shard(module, module.quantized_weight.row_slice(n0, n1), bias)
        module.register_forward_pre_hook(partial(_input_hook, self.input_layouts, self.desired_input_layouts, True, device_mesh))
        module.register_forward_hook(partial(_output_hook, (Shard(-1),), self.output_layouts, self.use_local_output, False, device_mesh))
        return module


class LowBitRowwiseParallel(RowwiseParallel):
    """torch's RowwiseParallel for LowBitLinear: each rank keeps input columns
    [rank * K / world, (rank + 1) * K / world), whole groups with their scales; partial outputs
    are summed across ranks and the (replicated) bias added once. Other modules get torch's
    RowwiseParallel. Same keyword arguments (input_layouts, output_layouts, use_local_output)."""

    def _apply(self, module: nn.Module, device_mesh: DeviceMesh) -> nn.Module:
        if not isinstance(module, LowBitLinear):
            return super()._apply(module, device_mesh)
        rank, world = _mesh_rank_world(device_mesh)
        k, g = module.in_features, module.quantized_weight.effective_group_size
        if module.group_size == -1:
            raise ValueError("LowBitRowwiseParallel: a per-channel weight (group_size=-1) has one group per row and cannot be "
                             "split by input columns; quantize it with a group size (e.g. 128)")
        if k % world or (k // world) % g:
            raise ValueError(f"LowBitRowwiseParallel: in_features {k} must split into {world} shards of whole groups "
                             f"(in_features / world a multiple of group_size {g})")
        _broadcast_from(module, device_mesh, self.src_data_rank)
        k0, k1 = rank * k // world, (rank + 1) * k // world
        _set_shard(module, module.quantized_weight.column_slice(k0, k1), None)
        module.forward = types.MethodType(_forward_without_bias, module)
        module.register_forward_pre_hook(partial(_input_hook, self.input_layouts, (Shard(-1),), False, device_mesh))
        module.register_forward_hook(partial(_output_hook, (Partial(),), self.output_layouts, self.use_local_output,
                                             module.bias is not None, device_mesh))
        return module


_HF_STYLES = {"colwise": LowBitColwiseParallel, "rowwise": LowBitRowwiseParallel}


def parallelize(model: nn.Module, device_mesh: DeviceMesh, plan: dict[str, str] | None = None) -> nn.Module:
    """Tensor-parallel a (patched) HuggingFace model by its config's `base_model_tp_plan`
    ({"layers.*.self_attn.q_proj": "colwise", ...}, relative to the base model), or by `plan`
    given in the same form relative to `model`. Only "colwise" and "rowwise" entries are
    supported; modules outside the plan (embeddings, norms, lm_head) stay replicated.

    Every rank must call it with the same model (rank 0's weights are broadcast to the others).
    Attention runs on each rank's heads, so the head counts must divide by the mesh size.
    """
    if plan is None:
        base_plan = getattr(getattr(model, "config", None), "base_model_tp_plan", None)
        if not base_plan:
            raise ValueError("model: has no config.base_model_tp_plan; pass plan={'module.path': 'colwise' | 'rowwise', ...}")
        prefix = getattr(model, "base_model_prefix", "")
        prefix = f"{prefix}." if prefix and hasattr(model, prefix) else ""
        plan = {prefix + path: style for path, style in base_plan.items()}
    unsupported = sorted({style for style in plan.values() if style not in _HF_STYLES})
    if unsupported:
        raise ValueError(f"plan: styles {unsupported} are not supported (only 'colwise' and 'rowwise')")
    _, world = _mesh_rank_world(device_mesh)
    config = getattr(model, "config", None)
    for name in ("num_attention_heads", "num_key_value_heads"):
        heads = getattr(config, name, None)
        if isinstance(heads, int) and heads % world:
            raise ValueError(f"model: config.{name} = {heads} does not divide into {world} tensor-parallel ranks")
    return parallelize_module(model, device_mesh, {path: _HF_STYLES[style]() for path, style in plan.items()})
