"""Zernike moment magnitudes of a mask, vectorised.

The values are mahotas' (``mahotas.features.zernike_moments(image, radius, degree, cm)``: moments of
the image normalised to unit mass, over the disc of ``radius`` around ``cm``, in mahotas' order
n = 0..degree, l = 0..n with n - l even), computed with one matrix product instead of a Python loop
per moment. The mask is first resized so its longer side spans ``size`` pixels, the disc is centred
on its centre of mass and just encloses it, so the moments are invariant to translation, scale and
(being magnitudes) rotation.
"""

from __future__ import annotations

from functools import lru_cache
from math import factorial

import cv2
import numpy as np


@lru_cache(maxsize=32)
def zernike_orders(degree: int) -> tuple[tuple[int, int], ...]:
    """(n, l) of each moment, in mahotas' order."""
    return tuple((n, l) for n in range(degree + 1) for l in range(n + 1) if (n - l) % 2 == 0)  # noqa: E741


@lru_cache(maxsize=8)
def _radial_coefficients(degree: int) -> np.ndarray:
    """Coefficients of rho**0..rho**degree of each radial polynomial R_nl, shape (moments, degree + 1)."""
    orders = zernike_orders(degree)
    coef = np.zeros((len(orders), degree + 1))
    for row, (n, l) in enumerate(orders):  # noqa: E741
        for s in range((n - l) // 2 + 1):
            coef[row, n - 2 * s] = (
                (-1) ** s
                * factorial(n - s)
                / (factorial(s) * factorial((n + l) // 2 - s) * factorial((n - l) // 2 - s))
            )
    return coef


def zernike_moments(weights: np.ndarray, *, radius: float, centre: tuple[float, float], degree: int) -> np.ndarray:
    """|A_nl| of an image (non-negative weights) over the disc of ``radius`` around ``centre`` (row, col)."""
    ys, xs = np.nonzero(weights)
    w = weights[ys, xs].astype(np.float64)
    y = (ys - centre[0]) / radius
    x = (xs - centre[1]) / radius
    rho = np.maximum(np.hypot(x, y), 1e-9)
    inside = rho <= 1.0
    rho, x, y, w = rho[inside], x[inside], y[inside], w[inside]
    orders = zernike_orders(degree)
    if w.sum() <= 0:
        return np.zeros(len(orders))
    w = w / w.sum()
    # rho**k and exp(i l theta) = ((x + i y) / rho)**l by repeated multiplication (no pow, no trig)
    powers = np.empty((degree + 1, rho.size))
    powers[0] = 1.0
    turns = np.empty((degree + 1, rho.size), np.complex128)
    turns[0] = w
    unit = (x + 1j * y) / rho
    for k in range(1, degree + 1):
        np.multiply(powers[k - 1], rho, out=powers[k])
        np.multiply(turns[k - 1], unit, out=turns[k])
    # A_nl = sum_i R_nl(rho_i) w_i exp(i l theta_i) = sum_k coef[nl, k] * (sum_i rho_i**k w_i exp(i l theta_i)):
    # one (k, l) table of weighted sums (two real matrix products), then the polynomial coefficients
    table = (powers @ turns.real.T) + 1j * (powers @ turns.imag.T)  # (degree + 1, degree + 1): [k, l]
    ls, ns = _orders_arrays(degree)
    values = np.einsum("jk,kj->j", _radial_coefficients(degree), table[:, ls])
    return (ns + 1) / np.pi * np.abs(values)


@lru_cache(maxsize=8)
def _orders_arrays(degree: int) -> tuple[np.ndarray, np.ndarray]:
    orders = zernike_orders(degree)
    return np.array([o[1] for o in orders]), np.array([o[0] for o in orders], np.float64)


def mask_zernike(mask: np.ndarray, *, degree: int, size: int) -> np.ndarray:
    """Zernike moment magnitudes of a boolean mask resized so its longer side spans ``size`` pixels."""
    ys, xs = np.nonzero(mask)
    crop = mask[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].astype(np.float32)
    s = (size - 2) / max(crop.shape)
    shape = (max(1, round(crop.shape[1] * s)), max(1, round(crop.shape[0] * s)))
    small = cv2.resize(crop, shape, interpolation=cv2.INTER_AREA) if s < 1 else crop
    small = np.clip(small, 0.0, 1.0)
    total = small.sum()
    if total <= 0:
        return np.zeros(len(zernike_orders(degree)))
    yy, xx = np.indices(small.shape)
    cy, cx = (yy * small).sum() / total, (xx * small).sum() / total
    on = small > 0
    # the disc just encloses every pixel centre with weight (so nothing is cut off)
    radius = float(np.sqrt(((yy[on] - cy) ** 2 + (xx[on] - cx) ** 2).max())) + 0.5
    return zernike_moments(small, radius=radius, centre=(cy, cx), degree=degree)
