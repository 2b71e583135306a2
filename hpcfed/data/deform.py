"""Seeded deformations of digit images, vectorised over a batch with torch on the CPU.

Infinite-MNIST style (Loosli, Canu & Bottou, "Training invariant support vector machines using
selective sampling", 2007): every sample is a random deformation of a real digit. One sample is a
pure function of its base image and a vector of ``num_draws(size)`` standard normal draws ``z``
(and of its style's offsets), laid out as

* ``z[0:6]``: rotation, log-scale, shear, shift x, shift y, stroke thickness (each clipped to
  +-2 standard deviations);
* ``z[6:6 + 2*S*S]``: the elastic displacement field, x then y, each S x S;
* ``z[6 + 2*S*S:]``: the additive pixel noise, S x S.

The deformation, in this order (strengths at ``strength`` 1, image size S = 16; lengths in pixels
scale with S / 16):

1. **affine** (rotation ``ROTATION_DEG``, isotropic scale ``exp(SCALE * z)``, shear ``SHEAR``, shift
   ``SHIFT`` of the half-width) and
2. **elastic distortion** (Simard, Steinkraus & Platt, ICDAR 2003): a field of independent normals
   smoothed by a Gaussian of ``ELASTIC_SIGMA`` pixels, rescaled to an RMS displacement of
   ``ELASTIC_ALPHA`` pixels, added to the affine sampling grid; the base image is resampled through
   the grid (bilinear, zeros outside);
3. **stroke thickness**: ``t = THICKNESS * z`` (plus the style's bias, clipped to [-1, 1]) blends the
   image towards its 3x3 dilation (t > 0, a max pool: thicker) or erosion (t < 0, a min pool:
   thinner) by ``|t|``;
4. **noise**: ``NOISE * z`` added to every pixel; the result is clipped to [0, 1].

``strength`` multiplies every magnitude (0 gives the upsampled base digit, styles aside). Every
operation is elementwise or per sample (the Gaussian blur is a sum of shifted copies, the affine
grid is built elementwise), so a sample's bits do not depend on the other samples of its batch.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

ROTATION_DEG = 12.0     # standard deviation of the rotation, degrees
SCALE = 0.10            # standard deviation of the log scale factor
SHEAR = 0.15            # standard deviation of the shear (x += shear * y)
SHIFT = 0.08            # standard deviation of the shift, as a share of the half-width
ELASTIC_SIGMA = 2.0     # Gaussian smoothing of the displacement field, pixels at size 16
ELASTIC_ALPHA = 0.8     # RMS displacement of the elastic field, pixels at size 16
THICKNESS = 0.5         # standard deviation of the stroke-thickness blend t (clipped to [-1, 1])
NOISE = 0.15            # standard deviation of the additive pixel noise (images in [0, 1])
PARAMS = 6              # rotation, log scale, shear, shift x, shift y, thickness
CLIP = 2.0              # affine and thickness draws are clipped to +-CLIP standard deviations


def num_draws(size: int) -> int:
    """Standard normal draws one sample of an S x S image needs."""
    return PARAMS + 3 * size * size


def upsample(images: torch.Tensor, size: int) -> torch.Tensor:
    """Base digits (N, 1, 8, 8) with values 0..16 as float32 (N, 1, size, size) in [0, 1] (bilinear)."""
    x = images.to(torch.float32) / 16.0
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp_(0.0, 1.0)


def _blur(field: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur (zero padding) of (N, C, S, S) as a sum of shifted copies, so that
    every output element is computed the same way whatever the batch."""
    radius = max(1, math.ceil(3 * sigma))
    taps = [math.exp(-0.5 * (t / sigma) ** 2) for t in range(-radius, radius + 1)]
    total = sum(taps)
    size = field.shape[-1]
    for dim in (-1, -2):
        padded = F.pad(field, (radius, radius, 0, 0) if dim == -1 else (0, 0, radius, radius))
        out = torch.zeros_like(field)
        for i, w in enumerate(taps):
            out += (w / total) * padded.narrow(dim, i, size)
        field = out
    return field


def _blur_rms(sigma: float) -> float:
    """RMS of one blurred unit-normal field's elements away from the border (2-D: per axis squared)."""
    radius = max(1, math.ceil(3 * sigma))
    taps = [math.exp(-0.5 * (t / sigma) ** 2) for t in range(-radius, radius + 1)]
    return (math.sqrt(sum(w * w for w in taps)) / sum(taps)) ** 2


def deform(base: torch.Tensor, z: torch.Tensor, strength: float = 1.0, rotation_offset: torch.Tensor | None = None,
           thickness_bias: torch.Tensor | None = None) -> torch.Tensor:
    """Deformed images (N, 1, S, S) in [0, 1] of ``base`` (N, 1, S, S, in [0, 1]) from draws ``z``
    (N, ``num_draws(S)``); optional per-sample style offsets: degrees added to the rotation and a
    bias added to the thickness blend."""
    n, size = base.shape[0], base.shape[-1]
    z = z.to(torch.float32)
    p = z[:, :PARAMS].clamp(-CLIP, CLIP) * strength
    pixels = size / 16.0
    angle = p[:, 0] * ROTATION_DEG
    if rotation_offset is not None:
        angle = angle + rotation_offset
    angle = angle * (math.pi / 180.0)
    scale = torch.exp(p[:, 1] * SCALE)
    shear, tx, ty = p[:, 2] * SHEAR, p[:, 3] * SHIFT, p[:, 4] * SHIFT
    # output (u, v) in [-1, 1] samples the input at A (u, v) + b: inverse scale, rotation, shear
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    a11, a12, a21, a22 = cos, cos * shear - sin, sin, sin * shear + cos
    coords = (torch.arange(size, dtype=torch.float32) * 2 + 1) / size - 1   # pixel centres, align_corners=False
    u, v = coords.view(1, 1, size), coords.view(1, size, 1)
    gx = a11.view(n, 1, 1) * u + a12.view(n, 1, 1) * v + tx.view(n, 1, 1)
    gy = a21.view(n, 1, 1) * u + a22.view(n, 1, 1) * v + ty.view(n, 1, 1)
    area = size * size
    if strength > 0 and ELASTIC_ALPHA > 0:
        sigma = ELASTIC_SIGMA * pixels
        field = _blur(z[:, PARAMS:PARAMS + 2 * area].reshape(n, 2, size, size), sigma)
        field = field * (ELASTIC_ALPHA * pixels * strength / _blur_rms(sigma) * 2.0 / size)
        gx, gy = gx + field[:, 0], gy + field[:, 1]
    grid = torch.stack((gx, gy), dim=-1)
    x = F.grid_sample(base, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    t = p[:, 5] * THICKNESS
    if thickness_bias is not None:
        t = t + thickness_bias
    t = t.clamp(-1.0, 1.0).view(n, 1, 1, 1)
    thick = F.max_pool2d(x, 3, stride=1, padding=1)
    thin = -F.max_pool2d(-x, 3, stride=1, padding=1)
    x = x + t.clamp(min=0) * (thick - x) + (-t).clamp(min=0) * (thin - x)
    noise = z[:, PARAMS + 2 * area:].reshape(n, 1, size, size)
    return (x + noise * (NOISE * strength)).clamp_(0.0, 1.0)
