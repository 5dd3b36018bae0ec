"""Rotation-invariant uniform local binary patterns, vectorised.

The same operator as ``skimage.feature.local_binary_pattern(grey, P, R, method="uniform")`` (sampling
points rounded to 5 decimals, bilinear interpolation, zero outside the image, and skimage's count of
0/1 changes along the open chain of P bits), computed with whole-image array operations: about 8x
faster on a 300 px crop. One deliberate difference: a neighbour within 1e-3 grey levels of the centre
counts as "not darker" (a tie), where skimage lets floating-point round-off decide; on real cells
this changes the code of well under 1 % of the pixels.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

TIE = 1e-3


@lru_cache(maxsize=16)
def _offsets(points: int, radius: float) -> tuple[tuple[float, float], ...]:
    angles = 2 * np.pi * np.arange(points) / points
    rr = np.round(-radius * np.sin(angles), 5)
    cc = np.round(radius * np.cos(angles), 5)
    return tuple(zip(rr.tolist(), cc.tolist()))


@lru_cache(maxsize=16)
def _taps(points: int, radius: float) -> tuple[tuple[int, int, np.ndarray | None], ...]:
    """Per sampling point: the whole-pixel offset (dy, dx) of its top-left neighbour and its 2x2 bilinear kernel
    (``None`` when the point falls on a pixel)."""
    out = []
    for dy, dx in _offsets(points, radius):
        y0, x0 = int(np.floor(dy)), int(np.floor(dx))
        fy, fx = dy - y0, dx - x0
        kernel = None
        if fy or fx:
            kernel = np.array([[(1 - fy) * (1 - fx), (1 - fy) * fx], [fy * (1 - fx), fy * fx]], np.float32)
        out.append((y0, x0, kernel))
    return tuple(out)


# pixels per block of rows: a block's P bit planes (P bytes per pixel) stay in the CPU cache
BLOCK = 1 << 14


def uniform_lbp(grey: np.ndarray, points: int, radius: float) -> np.ndarray:
    """Uniform LBP codes 0..P+1 (P+1 = not uniform) of a ``uint8`` image, as ``uint8``.

    ``grey`` is (H, W), or a (C, H, W) stack of C planes of one crop (codes of the same shape): the zero-padded
    planes are stacked into one tall image, so one pass of whole-array operations serves them all.
    """
    h, w = grey.shape[-2:]
    pad = int(np.ceil(radius)) + 1
    planes = [grey] if grey.ndim == 2 else list(grey)
    padded = np.vstack([cv2.copyMakeBorder(g, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0) for g in planes])
    padded = padded.astype(np.float32)
    # rows pad .. pad + rows: every plane's pixels and the padding between planes (whose codes are dropped)
    rows = len(planes) * (h + 2 * pad) - 2 * pad
    codes = np.empty((rows, w), np.uint8)
    step = max(BLOCK // max(w, 1), 1)
    for r0 in range(0, rows, step):
        n = min(step, rows - r0)
        codes[r0 : r0 + n] = _block_codes(padded[r0 : r0 + n + 2 * pad], pad, w, points, float(radius))
    if grey.ndim == 2:
        return codes
    stride = h + 2 * pad
    return np.stack([codes[c * stride : c * stride + h] for c in range(len(planes))])


def _block_codes(padded: np.ndarray, pad: int, w: int, points: int, radius: float) -> np.ndarray:
    """Codes of the rows ``pad .. len(padded) - pad`` of a zero-padded float32 block."""
    rows = len(padded) - 2 * pad
    centre = padded[pad : pad + rows, pad : pad + w] - np.float32(TIE)
    bits = np.empty((points, rows, w), np.uint8)  # every neighbour's bit, then counts over them
    for p, (y0, x0, kernel) in enumerate(_taps(points, radius)):
        y, x = y0 + pad, x0 + pad
        if kernel is None:
            value = padded[y : y + rows, x : x + w]
        else:  # bilinear interpolation as one 2x2 filter of the window (anchor top-left: reads stay inside it)
            window = padded[y : y + rows + 1, x : x + w + 1]
            value = cv2.filter2D(window, -1, kernel, anchor=(0, 0), borderType=cv2.BORDER_ISOLATED)[:rows, :w]
        np.greater_equal(value, centre, out=bits[p].view(bool))
    n_ones = bits.sum(axis=0, dtype=np.uint8)
    changes = np.bitwise_xor(bits[1:], bits[:-1]).sum(axis=0, dtype=np.uint8)  # 0/1 changes along the open chain
    n_ones[changes > 2] = points + 1
    return n_ones


def lbp_histogram(grey: np.ndarray, mask: np.ndarray, *, points: int, radius: float) -> np.ndarray:
    """Normalised histogram (P+2 bins) of the uniform LBP codes of the pixels inside ``mask``.

    For a (C, H, W) stack of planes, one histogram per plane: shape (C, P+2).
    """
    codes = uniform_lbp(grey, points, radius)
    n = max(int(np.count_nonzero(mask)), 1)
    if codes.ndim == 2:
        return np.bincount(codes[mask], minlength=points + 2) / n
    return np.stack([np.bincount(c[mask], minlength=points + 2) for c in codes]) / n
