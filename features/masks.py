"""Cell and nucleus masks from colour, for crops that come without a mask.

Rules (in order) for :func:`cell_mask`:

1. Cells on a black background (C-NMC style: over 15 % of the pixels are near black): the non-black pixels.
2. A stained white cell among red cells (ALL-IDB2 style): white cells stain blue-violet, red cells and the
   background pink to grey, so ``B - R`` separates them; Otsu's threshold on it, holes filled, and the
   connected component nearest the centre kept (slightly dilated to take in pale cytoplasm).
3. Otherwise (nothing found, or under 1 % of the image): the whole image.
"""

from __future__ import annotations

import cv2
import numpy as np

BLACK = 15


def cell_mask(image: np.ndarray) -> np.ndarray:
    """A boolean mask of the cell in a single-cell crop (see the module docstring for the rules)."""
    h, w = image.shape[:2]
    dark = image.max(axis=2) <= BLACK
    if dark.mean() > 0.15:
        return _largest(~dark) if (~dark).any() else np.ones((h, w), bool)
    stain = image[:, :, 2].astype(np.int16) - image[:, :, 0].astype(np.int16)
    stain = cv2.GaussianBlur(np.clip(stain + 128, 0, 255).astype(np.uint8), (5, 5), 0)
    t, _ = cv2.threshold(stain, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    fg = stain > max(t, 128 + 8)  # at least slightly bluer than red
    fg = fill_holes(cv2.morphologyEx(fg.view(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)) > 0)
    n, labels = cv2.connectedComponents(fg.view(np.uint8))
    if n <= 1:
        return np.ones((h, w), bool)
    cy, cx = (h - 1) / 2, (w - 1) / 2
    best, best_d = 0, np.inf
    for k in range(1, n):
        ys, xs = np.nonzero(labels == k)
        if len(ys) < 0.002 * h * w:
            continue
        d = np.min((ys - cy) ** 2 + (xs - cx) ** 2)
        if d < best_d:
            best, best_d = k, d
    mask = labels == best if best else np.zeros((h, w), bool)
    if mask.mean() < 0.01:
        return np.ones((h, w), bool)
    mask = cv2.dilate(mask.view(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))) > 0
    return fill_holes(mask)


def nucleus_mask(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The darker-stained nucleus inside a cell mask: Otsu's threshold on the green channel within the cell.

    Nuclei of stained white cells absorb green most strongly (they look dark violet), cytoplasm is paler.
    Small specks (under 5 % of the largest part) are dropped. Returns an empty mask when the cell has no
    contrast at all.
    """
    g = image[:, :, 1]
    inside = g[mask]
    if inside.size < 4 or int(inside.max()) - int(inside.min()) < 4:
        return np.zeros_like(mask)
    t, _ = cv2.threshold(inside.reshape(-1, 1), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    nuc = (g <= t) & mask
    nuc = cv2.morphologyEx(nuc.view(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)) > 0
    n, labels, stats, _ = cv2.connectedComponentsWithStats(nuc.view(np.uint8))
    if n <= 1:
        return nuc
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.flatnonzero(areas >= 0.05 * areas.max()) + 1
    return np.isin(labels, keep)


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill the holes of every outer contour (the same result as scipy's fill, much faster on large crops)."""
    m = mask.astype(np.uint8)
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    out = np.zeros_like(m)
    cv2.drawContours(out, contours, -1, 1, thickness=cv2.FILLED)
    return out > 0


def _largest(mask: np.ndarray) -> np.ndarray:
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8))
    if n <= 1:
        return mask
    k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return fill_holes(labels == k)
