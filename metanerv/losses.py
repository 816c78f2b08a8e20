"""Reconstruction losses shared by fine-tuning and meta-training.

``reconstruction_loss`` is meta-training's default objective (0.7 L1 + 0.3 (1 - SSIM)) and half
of the encoder's default one (``metanerv.fit.MSE_SHARE``); ``task_distortion`` is what a
meta-training task fits (``nervc meta-train --loss``: that loss, or the encoder's balanced mix);
``multiscale_loss`` is spatial guidance: every block's RGB output is compared with the target
average-pooled to that block's size.

``reconstruction_loss(..., fused=True)`` (the encoder's fit) computes the same value with a
hand-written gradient: the five SSIM blurs in one convolution, three in the backward pass
instead of autograd's graph of ~70 full-frame element-wise passes. It is differentiable
once (the gradient itself is not tracked), so meta-learning's second-order MAML keeps the
autograd form.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

C1, C2 = 0.01 ** 2, 0.03 ** 2  # SSIM's stabilisers for images in [0, 1]


def _gaussian_window(size: int, sigma: float, device, dtype) -> Tensor:
    x = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(x * x) / (2 * sigma * sigma))
    return g / g.sum()


def _window_for(x: Tensor, window: int, sigma: float) -> Tensor:
    window = min(window, x.shape[-1], x.shape[-2])
    if window % 2 == 0:
        window -= 1
    return _gaussian_window(window, sigma, x.device, x.dtype)


def ssim(x: Tensor, y: Tensor, window: int = 11, sigma: float = 1.5) -> Tensor:
    """Mean SSIM of ``[B, C, H, W]`` images in [0, 1] (Gaussian window, valid region)."""
    g = _window_for(x, window, sigma)
    c = x.shape[1]
    kh = g.view(1, 1, -1, 1).expand(c, 1, -1, 1)
    kw = g.view(1, 1, 1, -1).expand(c, 1, 1, -1)

    def blur(z: Tensor) -> Tensor:
        # Depthwise convs run ~5x faster (forward and backward, same values) on CPU in
        # channels_last layout; at 832x480 the NCHW blurs were half of a training step.
        z = z.contiguous(memory_format=torch.channels_last)
        return F.conv2d(F.conv2d(z, kh, groups=c), kw, groups=c)

    c1, c2 = C1, C2
    mx, my = blur(x), blur(y)
    sxx = blur(x * x) - mx * mx
    syy = blur(y * y) - my * my
    sxy = blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return s.mean()


def _blur_cl(z: Tensor, g: Tensor, transpose: bool = False) -> Tensor:
    """Separable Gaussian blur of a channels-last ``[N, C, H, W]`` (valid region), or with
    ``transpose`` its adjoint (full correlation with the flipped window: ``H - k + 1 -> H``)."""
    c, k = z.shape[1], g.numel() - 1
    if transpose:
        g = g.flip(0)
    kh = g.view(1, 1, -1, 1).expand(c, 1, -1, 1)
    kw = g.view(1, 1, 1, -1).expand(c, 1, 1, -1)
    z = F.conv2d(z, kh, groups=c, padding=(k, 0) if transpose else 0)
    return F.conv2d(z, kw, groups=c, padding=(0, k) if transpose else 0)


def _shift_blur(z: Tensor, g: list[float], transpose: bool = False) -> Tensor:
    """:func:`_blur_cl` written as sums of shifted slices (any layout): slow eagerly, but
    ``torch.compile`` turns it into one vectorised loop instead of a depthwise convolution."""
    k = len(g)
    if transpose:
        z, g = F.pad(z, (k - 1, k - 1, k - 1, k - 1)), g[::-1]
    h, w = z.shape[-2] - k + 1, z.shape[-1] - k + 1
    a = sum(g[i] * z[..., i:i + h, :] for i in range(k))
    return sum(g[i] * a[..., i:i + w] for i in range(k))


def _ssim_terms(mx: Tensor, my: Tensor, exx: Tensor, eyy: Tensor, exy: Tensor) -> tuple[Tensor, ...]:
    """The SSIM map ``s`` and the maps of its gradient, ``pm, u, v`` (see :class:`_L1SSIMLoss`)."""
    mxy, mxx, myy = mx * my, mx * mx, my * my
    a1, a2 = 2 * mxy + C1, 2 * (exy - mxy) + C2
    d1, d2 = mxx + myy + C1, exx - mxx + eyy - myy + C2
    s = a1 * a2 / (d1 * d2)
    u, v = s / d2, s / a2
    return s, my * (s / a1 - v) - mx * (s / d1 - u), u, v


def _compiled_forward(x: Tensor, y: Tensor, g: list[float]) -> tuple[Tensor, ...]:
    s, pm, u, v = _ssim_terms(*(_shift_blur(t, g) for t in (x, y, x * x, y * y, x * y)))
    return s.mean(), (x - y).abs().mean(), pm, u, v


def _compiled_backward(x: Tensor, y: Tensor, pm: Tensor, u: Tensor, v: Tensor, g: list[float],
                       a: Tensor, b: Tensor) -> Tensor:
    t = _shift_blur(pm, g, True) - x * _shift_blur(u, g, True) + y * _shift_blur(v, g, True)
    return t * a + torch.sign(x - y) * b


_COMPILED: dict[str, object] = {}


def _compiled(name: str):
    if name not in _COMPILED:
        fn = {"forward": _compiled_forward, "backward": _compiled_backward}[name]
        _COMPILED[name] = torch.compile(fn)
    return _COMPILED[name]


def _try_compiled_forward(x: Tensor, y: Tensor, g: list[float]) -> tuple[Tensor, ...] | None:
    """The compiled forward, or None (once warned) where torch.compile cannot build it."""
    if _COMPILED.get("failed"):
        return None
    try:
        return _compiled("forward")(x, y, g)
    except Exception as e:  # no C++ compiler, an unsupported backend, ...
        _COMPILED["failed"] = True
        warnings.warn(f"torch.compile of the loss failed, using the eager loss: {type(e).__name__}: "
                      f"{str(e).splitlines()[0] if str(e) else ''}", RuntimeWarning, stacklevel=2)
        return None


class _L1SSIMLoss(torch.autograd.Function):
    """``w * mean|x - y| + (1 - w) * (1 - SSIM(x, y))`` with its gradient for ``x`` written out.

    With ``mx = B(x)``, ``exx = B(x^2)``, ``exy = B(xy)`` (``B`` the blur) and the SSIM map
    ``s = a1 a2 / (d1 d2)``, ``a1 = 2 mx my + c1``, ``a2 = 2 (exy - mx my) + c2``,
    ``d1 = mx^2 + my^2 + c1``, ``d2 = exx - mx^2 + eyy - my^2 + c2``:
    ``ds/dexx = -u``, ``ds/dexy = 2v``, ``ds/dmx = 2 pm`` with ``u = s/d2``, ``v = s/a2``,
    ``pm = my (s/a1 - v) - mx (s/d1 - u)``, hence
    ``dSSIM/dx = 2/M [B^T(pm) - x B^T(u) + y B^T(v)]`` (``M`` = size of the map).

    Eagerly the five blurs are one depthwise convolution (channels-last, stacked along the
    batch so every map is a contiguous slice) and the element-wise passes are done in place;
    ``compiled`` runs :func:`_compiled_forward` / :func:`_compiled_backward` through
    ``torch.compile`` instead (fused loops: ~2x faster at 832x480 on CPU, after ~40 s of
    compiling per frame size).
    """

    @staticmethod
    def forward(ctx, x: Tensor, y: Tensor, g: Tensor, l1_weight: float, compiled: bool) -> Tensor:
        ctx.l1_weight = l1_weight
        terms = None
        if compiled:
            glist = g.tolist()
            x, y = x.contiguous(), y.contiguous()
            terms = _try_compiled_forward(x, y, glist)
        ctx.compiled = terms is not None
        if terms is not None:
            ssim_mean, l1, pm, u, v = terms
            ctx.glist = glist
            ctx.save_for_backward(x, y, pm, u, v)
            ctx.sizes = (pm.numel(), x.numel())
            return (1.0 - l1_weight) * (1.0 - ssim_mean) + l1_weight * l1
        cl = torch.channels_last
        n = x.shape[0]
        x, y = x.contiguous(memory_format=cl), y.contiguous(memory_format=cl)
        # The five blur inputs stacked along the batch: one convolution, contiguous slices.
        z = torch.empty((5 * n,) + tuple(x.shape[1:]), dtype=x.dtype, device=x.device, memory_format=cl)
        z[:n].copy_(x)
        z[n:2 * n].copy_(y)
        torch.mul(x, x, out=z[2 * n:3 * n])
        torch.mul(y, y, out=z[3 * n:4 * n])
        torch.mul(x, y, out=z[4 * n:])
        mx, my, exx, eyy, exy = _blur_cl(z, g).split(n, 0)
        del z
        # _ssim_terms, in place where a map is not needed again
        mxy = mx * my
        a2 = torch.sub(exy, mxy).mul_(2).add_(C2)
        a1 = mxy.mul_(2).add_(C1)
        mxx, myy = mx * mx, my * my
        d2 = torch.add(exx, eyy).sub_(mxx).sub_(myy).add_(C2)
        d1 = mxx.add_(myy).add_(C1)
        s = torch.mul(a1, a2).div_(d1 * d2)
        diff = torch.sub(x, y)
        loss = (1.0 - l1_weight) * (1.0 - s.mean())
        if l1_weight:
            loss = loss + l1_weight * diff.abs().mean()
        if ctx.needs_input_grad[0]:
            p = torch.empty((3 * n,) + tuple(s.shape[1:]), dtype=x.dtype, device=x.device, memory_format=cl)
            pm, pu, pv = p.split(n, 0)
            torch.div(s, d2, out=pu)
            torch.div(s, a2, out=pv)
            t1 = torch.div(s, a1).sub_(pv)
            t2 = torch.div(s, d1).sub_(pu)
            torch.mul(my, t1, out=pm).addcmul_(mx, t2, value=-1)
            ctx.save_for_backward(x, y, p, g, diff.sign_() if l1_weight else diff.new_zeros(()))
            ctx.sizes = (s.numel(), x.numel())
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        m_ssim, m_l1 = ctx.sizes
        w = ctx.l1_weight
        if ctx.compiled:
            x, y, pm, u, v = ctx.saved_tensors
            a = grad * (-2.0 * (1.0 - w) / m_ssim)
            return _compiled("backward")(x, y, pm, u, v, ctx.glist, a, grad * (w / m_l1)), None, None, None, None
        x, y, p, g, sign = ctx.saved_tensors
        tm, tu, tv = _blur_cl(p, g, transpose=True).split(x.shape[0], 0)
        gx = torch.addcmul(tm, x, tu, value=-1).addcmul_(y, tv)
        gx.mul_(grad * (-2.0 * (1.0 - w) / m_ssim))
        if w:
            gx.addcmul_(sign, grad, value=w / m_l1)
        return gx, None, None, None, None


def reconstruction_loss(pred: Tensor, target: Tensor, l1_weight: float = 0.7,
                        fused: bool = False, compiled: bool = False) -> Tensor:
    """``l1_weight * L1 + (1 - l1_weight) * (1 - SSIM)``.

    ``fused``: the same value from one :class:`_L1SSIMLoss` (first-order gradients only; the
    target gets none), with ``compiled`` its ``torch.compile`` form.
    """
    if fused and l1_weight < 1.0 and not target.requires_grad:
        g = _window_for(pred, 11, 1.5)
        return _L1SSIMLoss.apply(pred, target, g, float(l1_weight), bool(compiled))
    loss = l1_weight * (pred - target).abs().mean()
    if l1_weight < 1.0:
        loss = loss + (1.0 - l1_weight) * (1.0 - ssim(pred, target))
    return loss


# The PSNR term's price: MSE_PRICE * d ln(MSE), a constant price per dB of PSNR (the encoder's fit
# uses it with a running mean of the MSE, codec.finetune; a task here, with the batch's own MSE).
MSE_PRICE = 0.04
META_LOSSES = ("ssim", "balanced")  # nervc meta-train --loss


def task_distortion(pred: Tensor, target: Tensor, kind: str = "ssim", l1_weight: float = 0.7) -> Tensor:
    """What a meta-training task fits: ``"ssim"``, the L1 + SSIM ``reconstruction_loss``;
    ``"balanced"``, half that and half ``MSE_PRICE * MSE / MSE.detach()`` (the gradient of
    ``MSE_PRICE * ln MSE``), the mix the encoder fits by default (``nervc encode --tune
    balanced``), so that the init is trained for the loss it will be fine-tuned with."""
    if kind not in META_LOSSES:
        raise ValueError(f"loss {kind!r} not in {META_LOSSES}")
    base = reconstruction_loss(pred, target, l1_weight)
    if kind == "ssim":
        return base
    mse = F.mse_loss(pred, target)
    return 0.5 * MSE_PRICE * mse / mse.detach().clamp_min(1e-12) + 0.5 * base


def multiscale_loss(preds: Sequence[Tensor], target: Tensor,
                    weights: Sequence[float] | None = None, l1_weight: float = 0.7,
                    kind: str = "ssim") -> Tensor:
    """Spatial guidance: loss of each scale's output against the pooled target.

    ``preds`` are coarsest first, the last at full resolution; ``weights`` defaults to equal
    weights normalised to sum to one.
    """
    if weights is None:
        weights = [1.0] * len(preds)
    if len(weights) != len(preds):
        raise ValueError(f"{len(weights)} weights for {len(preds)} scales")
    total = sum(weights)
    loss = target.new_zeros(())
    for w, p in zip(weights, preds):
        if w == 0:
            continue
        t = target if p.shape[-2:] == target.shape[-2:] else F.adaptive_avg_pool2d(target, p.shape[-2:])
        loss = loss + (w / total) * task_distortion(p, t, kind, l1_weight)
    return loss


def psnr(pred: Tensor, target: Tensor) -> Tensor:
    """PSNR in dB of images in [0, 1] (mean MSE over the batch)."""
    mse = F.mse_loss(pred, target).clamp_min(1e-12)
    return -10.0 * torch.log10(mse)
