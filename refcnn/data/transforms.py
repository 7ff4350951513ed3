"""Image transforms in NumPy, after torchvision.transforms: vectorised, seeded, batch-friendly.

Every transform takes one image, ``(H, W)`` or ``(C, H, W)``, or a batch ``(N, C, H, W)``
(a 4-D array is always a batch): ``t(img)``. ``t.batch(x)`` takes a batch whose first
axis is N whatever its rank (``(N, H, W)`` or ``(N, C, H, W)``) and equals stacking
``t(x[i])`` (random transforms draw one value per item, from the same distribution).
No Python loop over items or pixels.

Random transforms draw from ``generator`` (a ``numpy.random.Generator``) if given, else
from refcnn's generator in force at call time (``refcnn.manual_seed`` seeds it).

The torchvision MNIST pipeline ``Compose([ToTensor(), Normalize((0.1307,), (0.3081,))])``
is ``Compose([ToFloat(), Normalize((0.1307,), (0.3081,))])`` here, with equal float32 results.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .._random import default_generator

__all__ = ["Transform", "Compose", "ToFloat", "Normalize", "RandomShift", "RandomRotation"]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


class Transform:
    """Base class: subclasses implement ``_apply(x)`` for a batch ``x`` (first axis N)."""

    batchable = True  # ``batch`` is vectorised (MNIST.get_batch relies on it)

    def __call__(self, img: Any) -> np.ndarray:
        x = np.asarray(img)
        if x.ndim == 4:
            return self._apply(x)
        if x.ndim in (2, 3):
            return self._apply(x[None])[0]
        raise ValueError(
            f"{type(self).__name__} expects an image (H, W) or (C, H, W), or a batch (N, C, H, W), got shape {x.shape}"
        )

    def batch(self, x: Any) -> np.ndarray:
        """Apply to every item of a batch ``(N, H, W)`` or ``(N, C, H, W)`` at once."""
        x = np.asarray(x)
        if x.ndim not in (3, 4):
            raise ValueError(f"{type(self).__name__}.batch expects (N, H, W) or (N, C, H, W), got shape {x.shape}")
        return self._apply(x)

    def _apply(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _generator(self) -> np.random.Generator:
        g: np.random.Generator | None = getattr(self, "generator", None)
        return g if g is not None else default_generator()


class Compose(Transform):
    """Apply ``transforms`` in order (torchvision.transforms.Compose). Any callable may be a
    step; ``batch`` is vectorised only if every step is a refcnn Transform."""

    def __init__(self, transforms: Sequence[Callable[[Any], Any]]) -> None:
        self.transforms = list(transforms)
        for t in self.transforms:
            if not callable(t):
                raise TypeError(f"Compose: every transform must be callable, got {t!r}")

    @property
    def batchable(self) -> bool:  # type: ignore[override]
        return all(getattr(t, "batchable", False) for t in self.transforms)

    def __call__(self, img: Any) -> Any:
        for t in self.transforms:
            img = t(img)
        return img

    def batch(self, x: Any) -> np.ndarray:
        if not self.batchable:
            steps = [t for t in self.transforms if not getattr(t, "batchable", False)]
            raise TypeError(f"Compose.batch needs refcnn transforms only; not batchable: {steps}")
        for t in self.transforms:
            x = t.batch(x)  # type: ignore[attr-defined]
        return np.asarray(x)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(" + "".join(f"\n    {t}" for t in self.transforms) + "\n)"


class ToFloat(Transform):
    """uint8 in [0, 255] -> float32 in [0, 1] (``x / 255`` in float32), adding the channel
    axis to a 2-D image: (H, W) -> (1, H, W), a batch (N, H, W) -> (N, 1, H, W); (C, H, W)
    and (N, C, H, W) keep their shape. As torchvision's ToTensor, a float32/float64 input
    is returned unscaled (with the channel axis added if missing); other dtypes are an error.
    """

    def _apply(self, x: np.ndarray) -> np.ndarray:
        if x.dtype != np.uint8 and x.dtype not in _FLOATS:
            raise TypeError(f"ToFloat expects uint8 (or float32/float64) images, got dtype {x.dtype}")
        if x.ndim == 3:
            x = x[:, None]
        if x.dtype == np.uint8:
            return x.astype(np.float32) / np.float32(255)  # torchvision: img.float().div(255)
        return x

    def __repr__(self) -> str:
        return "ToFloat()"


class Normalize(Transform):
    """``(x - mean[c]) / std[c]`` per channel, in the input's float dtype (torchvision's
    Normalize: ``tensor.sub_(mean).div_(std)``).

    Args:
        mean, std: a number or a sequence of C numbers (one per channel; a single one
            applies to every channel).
        inplace (False): overwrite the input array.
    """

    def __init__(self, mean: Any, std: Any, inplace: bool = False) -> None:
        for name, v in (("mean", mean), ("std", std)):
            vals = [v] if _is_number(v) else list(v) if isinstance(v, Sequence) else None
            if not vals or not all(_is_number(e) for e in vals):
                raise TypeError(f"Normalize: {name} must be a number or a non-empty sequence of numbers, got {v!r}")
        self.mean = mean
        self.std = std
        self.inplace = bool(inplace)

    def _apply(self, x: np.ndarray) -> np.ndarray:
        if x.dtype not in _FLOATS:
            raise TypeError(f"Normalize expects float32 or float64 images (use ToFloat first), got dtype {x.dtype}")
        if x.ndim != 4:
            raise ValueError(
                f"Normalize expects images with a channel axis, (C, H, W), got images of shape {x.shape[1:]}"
            )
        C = x.shape[1]
        mean = np.asarray(self.mean, dtype=x.dtype).reshape(-1, 1, 1)
        std = np.asarray(self.std, dtype=x.dtype).reshape(-1, 1, 1)
        for name, v in (("mean", mean), ("std", std)):
            if len(v) not in (1, C):
                raise ValueError(f"Normalize: {name} has {len(v)} values for images of {C} channels")
        if np.any(std == 0):
            raise ValueError(f"Normalize: std evaluated to zero after conversion to {x.dtype}, got std={self.std!r}")
        if self.inplace:
            x -= mean
            x /= std
            return x
        out = x - mean
        out /= std
        return out

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean}, std={self.std})"


def _pair(value: Any, name: str, owner: str) -> tuple[Any, Any]:
    if _is_number(value):
        return value, value
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(_is_number(v) for v in value):
        return value[0], value[1]
    raise TypeError(f"{owner}: {name} must be a number or a pair of numbers, got {value!r}")


def _as_4d(x: np.ndarray) -> np.ndarray:
    """(N, H, W) or (N, C, H, W) -> (N, C, H, W) view (C = 1 for 3-D)."""
    return x[:, None] if x.ndim == 3 else x


class RandomShift(Transform):
    """Shift each image by whole pixels, filling with zeros.

    ``out[..., i, j] = x[..., i - dy, j - dx]`` (0 where that falls outside), dy and dx drawn
    uniformly from the integers in ``[-max_dy, max_dy]`` and ``[-max_dx, max_dx]``, one pair
    per image; positive dy moves the content down, positive dx right.

    Args:
        max_shift: an int, or a pair ``(max_dy, max_dx)``, each >= 0.
        generator (None): a numpy Generator; None draws from refcnn's generator.
    """

    def __init__(self, max_shift: Any, generator: np.random.Generator | None = None) -> None:
        dy, dx = _pair(max_shift, "max_shift", "RandomShift")
        if not all(isinstance(v, (int, np.integer)) for v in (dy, dx)) or min(dy, dx) < 0:
            raise ValueError(f"RandomShift: max_shift must be ints >= 0, got {max_shift!r}")
        self.max_shift = (int(dy), int(dx))
        self.generator = generator

    def _apply(self, x: np.ndarray) -> np.ndarray:
        N = x.shape[0]
        my, mx = self.max_shift
        shifts = self._generator().integers([-my, -mx], [my, mx], endpoint=True, size=(N, 2))
        return shift(x, shifts)

    def __repr__(self) -> str:
        return f"RandomShift(max_shift={self.max_shift})"


def shift(x: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Shift item n of the batch ``x`` ((N, H, W) or (N, C, H, W)) by ``shifts[n] = (dy, dx)``
    whole pixels with zero fill (see RandomShift). Two gathers along H then W, then a mask."""
    x4 = _as_4d(x)
    H, W = x4.shape[-2:]
    dy, dx = shifts[:, 0], shifts[:, 1]
    rows = np.arange(H)[None, :] - dy[:, None]  # (N, H): source row of each output row
    cols = np.arange(W)[None, :] - dx[:, None]  # (N, W)
    out = np.take_along_axis(x4, np.clip(rows, 0, H - 1)[:, None, :, None], axis=2)
    out = np.take_along_axis(out, np.clip(cols, 0, W - 1)[:, None, None, :], axis=3)
    inside = ((rows >= 0) & (rows < H))[:, None, :, None] & ((cols >= 0) & (cols < W))[:, None, None, :]
    out = np.where(inside, out, np.zeros((), dtype=x.dtype))
    return out.reshape(x.shape)


class RandomRotation(Transform):
    """Rotate each image by an angle drawn uniformly from ``degrees``, counter-clockwise as
    displayed (torchvision's and PIL's sense), about the image centre ((H-1)/2, (W-1)/2),
    with bilinear interpolation and zeros outside the image.

    Output pixel (i, j), centred at (y, x) = (i - (H-1)/2, j - (W-1)/2), reads the input at
    ``(ys, xs) = (sin(a) x + cos(a) y, cos(a) x - sin(a) y)`` (+ centre): the bilinear mix of
    its four neighbours, each neighbour outside the image counting as 0. This equals
    ``torch.nn.functional.grid_sample(mode='bilinear', padding_mode='zeros',
    align_corners=False)`` on torchvision's rotation grid. (torchvision's own default is
    nearest interpolation; its bilinear tensor path also multiplies by the sampled
    in-image mask near the border, and its PIL path rounds.) uint8 input is rounded back
    to uint8; float input keeps its dtype.

    Args:
        degrees: a number d >= 0 for the range (-d, d), or a pair (min, max).
        generator (None): a numpy Generator; None draws from refcnn's generator.
    """

    def __init__(self, degrees: Any, generator: np.random.Generator | None = None) -> None:
        if _is_number(degrees):
            if degrees < 0:
                raise ValueError(f"RandomRotation: if degrees is a single number, it must be positive, got {degrees!r}")
            lo, hi = -float(degrees), float(degrees)
        else:
            a, b = _pair(degrees, "degrees", "RandomRotation")
            lo, hi = float(a), float(b)
            if lo > hi:
                raise ValueError(f"RandomRotation: degrees must be (min, max) with min <= max, got {degrees!r}")
        self.degrees = [lo, hi]
        self.generator = generator

    def _apply(self, x: np.ndarray) -> np.ndarray:
        if x.dtype != np.uint8 and x.dtype not in _FLOATS:
            raise TypeError(f"RandomRotation expects uint8, float32 or float64 images, got dtype {x.dtype}")
        lo, hi = self.degrees
        angles = np.asarray(self._generator().uniform(lo, hi, size=x.shape[0]))
        return rotate(x, angles)

    def __repr__(self) -> str:
        return f"RandomRotation(degrees={self.degrees}, interpolation=bilinear, fill=0)"


def _cos_sin_degrees(degrees: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin of angles in degrees, exact at multiples of 90 (so a quarter turn moves
    pixels exactly): a = 90 k + r with |r| <= 45, and the quarter turn k applied exactly."""
    k = np.round(degrees / 90.0)
    r = np.deg2rad(degrees - 90.0 * k)
    cr, sr = np.cos(r), np.sin(r)
    q = k.astype(np.int64) % 4
    cq = np.array([1.0, 0.0, -1.0, 0.0])[q]
    sq = np.array([0.0, 1.0, 0.0, -1.0])[q]
    return cq * cr - sq * sr, sq * cr + cq * sr


def rotate(x: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Rotate item n of the batch ``x`` ((N, H, W) or (N, C, H, W)) by ``angles[n]`` degrees
    (see RandomRotation). Source coordinates in float64; each of the four bilinear corners
    is one gather over the flattened H*W axis."""
    x4 = _as_4d(x)
    N, C, H, W = x4.shape
    work = np.float64 if x.dtype == np.float64 else np.float32
    cos, sin = _cos_sin_degrees(np.asarray(angles, dtype=np.float64))
    cos, sin = cos[:, None, None], sin[:, None, None]
    cy, cx = (H - 1) / 2.0, (W - 1) / 2.0
    y = np.arange(H, dtype=np.float64)[None, :, None] - cy
    xx = np.arange(W, dtype=np.float64)[None, None, :] - cx
    ys = sin * xx + cos * y + cy  # (N, H, W)
    xs = cos * xx - sin * y + cx
    y0, x0 = np.floor(ys), np.floor(xs)
    wy, wx = ys - y0, xs - x0
    flat: np.ndarray = x4.reshape(N, C, H * W).astype(work, copy=False)
    out = np.zeros((N, C, H * W), dtype=work)
    for oy, ox, w in ((0, 0, (1 - wy) * (1 - wx)), (0, 1, (1 - wy) * wx), (1, 0, wy * (1 - wx)), (1, 1, wy * wx)):
        r, c = y0 + oy, x0 + ox
        inside = (r >= 0) & (r < H) & (c >= 0) & (c < W)
        idx = (np.clip(r, 0, H - 1) * W + np.clip(c, 0, W - 1)).astype(np.intp).reshape(N, 1, H * W)
        weight = np.where(inside, w, 0.0).astype(work).reshape(N, 1, H * W)
        out += weight * np.take_along_axis(flat, idx, axis=2)
    if x.dtype == np.uint8:
        out = np.clip(np.rint(out), 0, 255)
    return out.astype(x.dtype, copy=False).reshape(x.shape)
