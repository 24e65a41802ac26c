"""im2win convolution in Triton (arXiv 2306.14316), the window buffer built on the GPU inside the op.

1. transform: win[n][g][oh][col][r][c] = x_pad[n, g*Cg + c, oh*sh + r*dh, col] (NHWC input).
2. implicit GEMM over windows, per group: rows = output pixels (n, oh, ow), columns = the
   group's output channels, reduction k = (q, r, c) over S runs of R*Cg contiguous window values.
   The weight tile is read dense, or decoded from BCQ bit-planes (QUANT) in registers.
"""
import torch
import triton
import triton.language as tl

from torch_lowbit.conv_geometry import conv_out_hw

from . import Launch, dot_in_fp32, new_output


@triton.jit
def _im2win_transform_kernel(x_ptr, win_ptr, total, C, H, W, Cg, R, Wwin, OH, groups,
                             sh, pt, pl, dh, BLOCK: tl.constexpr):
    i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    ok = i < total
    c = i % Cg
    rest = i // Cg
    r = rest % R
    rest = rest // R
    col = rest % Wwin
    rest = rest // Wwin
    oh = rest % OH
    rest = rest // OH
    g = rest % groups
    n = rest // groups
    ih = oh * sh - pt + r * dh
    iw = col - pl
    inside = ok & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
    v = tl.load(x_ptr + ((n * H + ih) * W + iw) * C + g * Cg + c, mask=inside, other=0.0)
    tl.store(win_ptr + i, v, mask=ok)


@triton.jit
def _im2win_conv_kernel(
    win_ptr, w_ptr, planes_ptr, alpha_ptr, offset_ptr, bias_ptr, out_ptr,
    P, O, Og, Cg, R, S, OH, OW, Wwin, groups, sw, dw, Kp, G, NG,
    QUANT: tl.constexpr, BITS: tl.constexpr, HAS_BIAS: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, DOT_FP32: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    g = tl.program_id(2)
    offs_p = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_o = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    p_ok = offs_p < P
    o_ok = offs_o < Og
    ow = offs_p % OW
    oh = (offs_p // OW) % OH
    n = offs_p // (OW * OH)
    run = R * Cg
    row_base = (((n * groups + g) * OH + oh) * Wwin) * run
    o_glob = g * Og + offs_o
    Kred = S * run
    Kfilter = Cg * R * S
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, Kred, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        k_ok = offs_k < Kred
        q = offs_k // run
        rc = offs_k % run
        a = tl.load(win_ptr + row_base[:, None] + (ow[:, None] * sw + q[None, :] * dw) * run + rc[None, :],
                    mask=p_ok[:, None] & k_ok[None, :], other=0.0)
        # index of (c, r, q) in the PyTorch filter order [Cg][R][S]
        kk = ((rc % Cg) * R + rc // Cg) * S + q
        wmask = k_ok[:, None] & o_ok[None, :]
        if QUANT:
            gk = kk // G
            w = tl.load(offset_ptr + gk[:, None] * O + o_glob[None, :], mask=wmask, other=0.0).to(tl.float32)
            shift = (kk % 8).to(tl.uint8)
            for b in tl.static_range(BITS):
                # panel-major planes [bits, ceil(O/16), Kp/8, 16]
                byte = tl.load(planes_ptr + (b * ((O + 15) // 16) + o_glob[None, :] // 16) * (Kp // 8) * 16
                               + (kk[:, None] // 8) * 16 + o_glob[None, :] % 16, mask=wmask, other=0)
                al = tl.load(alpha_ptr + (b * NG + gk[:, None]) * O + o_glob[None, :], mask=wmask, other=0.0).to(tl.float32)
                w += tl.where(((byte >> shift[:, None]) & 1) != 0, al, -al)
            w = tl.where(wmask, w, 0.0)
        else:
            w = tl.load(w_ptr + o_glob[None, :] * Kfilter + kk[:, None], mask=wmask, other=0.0).to(tl.float32)
        if DOT_FP32:
            acc += tl.dot(a.to(tl.float32), w)
        else:
            acc += tl.dot(a, w.to(a.dtype))
    if HAS_BIAS:
        acc += tl.load(bias_ptr + o_glob, mask=o_ok, other=0.0).to(tl.float32)[None, :]
    tl.store(out_ptr + offs_p[:, None] * O + o_glob[None, :], acc.to(out_ptr.dtype.element_ty),
             mask=p_ok[:, None] & o_ok[None, :])


def im2win_conv2d_launches(x_shape, weight_shape, stride, padding, dilation, groups: int, act_dtype: torch.dtype,
                           has_bias: bool, bias_dtype: torch.dtype | None = None, bits: int | None = None,
                           Kp: int = 8, group_size: int = 8, scale_dtype: torch.dtype = torch.float16,
                           weight_dtype: torch.dtype | None = None, block_m: int = 64, block_n: int = 32,
                           block_k: int = 32, num_warps: int = 4, num_stages: int = 3):
    """(transform launch, conv launch, window numel, output shape NHWC) for an NHWC input of
    `x_shape`. Low-bit filters when `bits` is given (planes padded to Kp, group_size), else dense
    ones of `weight_dtype`. Transform tensors: x, win. Conv tensors: win, w, planes, alpha, offset,
    bias, out; a variant's unused pointers get the window buffer (never read)."""
    N, H, W, C = x_shape
    O, Cg, R, S = weight_shape
    sh, sw = stride
    pt, _, pl, _ = padding
    dh, dw = dilation
    OH, OW = conv_out_hw(H, W, R, S, stride, padding, dilation)
    Wwin = (OW - 1) * sw + (S - 1) * dw + 1
    Og = O // groups
    P = N * OH * OW
    win_numel = N * groups * OH * Wwin * R * Cg
    block = 1024
    transform = Launch(_im2win_transform_kernel, (triton.cdiv(win_numel, block),), (act_dtype, act_dtype),
                       (win_numel, C, H, W, Cg, R, Wwin, OH, groups, sh, pt, pl, dh), dict(BLOCK=block))
    fp32 = dot_in_fp32() or act_dtype == torch.float32
    quant = bits is not None
    if quant:
        weights = (act_dtype, torch.uint8, scale_dtype, scale_dtype)
        wbits, G, NG = bits, group_size, Kp // group_size
    else:
        weights = (weight_dtype or act_dtype, act_dtype, act_dtype, act_dtype)
        wbits, Kp, G, NG = 1, 8, 8, 1
    pointers = (act_dtype, *weights, bias_dtype if has_bias else act_dtype, act_dtype)
    grid = (triton.cdiv(P, block_m), triton.cdiv(Og, block_n), groups)
    conv = Launch(_im2win_conv_kernel, grid, pointers, (P, O, Og, Cg, R, S, OH, OW, Wwin, groups, sw, dw, Kp, G, NG),
                  dict(QUANT=quant, BITS=wbits, HAS_BIAS=has_bias, BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=block_k,
                       DOT_FP32=fp32, num_warps=num_warps, num_stages=num_stages))
    return transform, conv, win_numel, (N, OH, OW, O)


def im2win_conv2d(x_nhwc: torch.Tensor, weight_shape, bias, stride, padding, dilation, groups: int,
                  weight: torch.Tensor | None = None, bcq=None, block_m: int = 64, block_n: int = 32,
                  block_k: int = 32, num_warps: int = 4, num_stages: int = 3) -> torch.Tensor:
    """x_nhwc [N, H, W, C] contiguous -> out NHWC [N, OH, OW, O] in x's dtype.

    Pass a dense `weight` [O, C/g, R, S] or `bcq` = (planes, alpha, offset, group_size).
    """
    quant = {}
    if bcq is not None:
        planes, alpha, offset, group_size = bcq
        quant = dict(bits=planes.shape[0], Kp=planes.shape[2] * 8, group_size=group_size, scale_dtype=alpha.dtype)
    transform, conv, win_numel, out_shape = im2win_conv2d_launches(
        tuple(x_nhwc.shape), weight_shape, stride, padding, dilation, groups, x_nhwc.dtype, bias is not None,
        None if bias is None else bias.dtype, weight_dtype=None if weight is None else weight.dtype,
        block_m=block_m, block_n=block_n, block_k=block_k, num_warps=num_warps, num_stages=num_stages, **quant)
    out = new_output(out_shape, x_nhwc.dtype, x_nhwc.device)
    if out.numel() == 0:
        return out
    win = new_output((win_numel,), x_nhwc.dtype, x_nhwc.device)
    transform(x_nhwc, win)
    weights = (win, planes, alpha, offset) if bcq is not None else (weight, win, win, win)
    conv(win, *weights, bias if bias is not None else win, out)
    return out
