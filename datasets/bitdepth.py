"""16-bit files that hold fewer bits: 12-bit camera data saved in a 16-bit TIFF or PNG.

The reader scales every 16-bit image by 1/257 (65535 -> 255), the one rule that keeps images comparable; data
that never exceeds 4095 then uses only 0..16 of the 0..255 range, and texture features see almost nothing.
:func:`low_range_16bit` finds such files for ``datasets verify`` so that this is said, not silent.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

TWELVE_BIT_MAX = 4095


def bits_per_sample(path: str | Path) -> int | None:
    """Bits per channel declared in a PNG or TIFF header (``None`` for other formats or an unreadable header)."""
    try:
        with warnings.catch_warnings(), Image.open(path) as im:
            warnings.simplefilter("ignore")
            if im.format == "PNG":
                with open(path, "rb") as fh:
                    return fh.read(25)[24]  # IHDR bit depth: 8 + 4 (length) + 4 ("IHDR") + 8 (width, height)
            if im.format == "TIFF":
                bits = im.tag_v2.get(258)
                return int(max(bits) if isinstance(bits, tuple) else bits) if bits else None
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError, IndexError):
        return None
    return None


def low_range_16bit(paths: Iterable[Path]) -> list[Path]:
    """The 16-bit files among ``paths`` whose pixel values all lie within 12 bits (0..4095)."""
    found = []
    for path in paths:
        if bits_per_sample(path) != 16:
            continue
        raw = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
        if raw is not None and raw.dtype == np.uint16 and int(raw.max()) <= TWELVE_BIT_MAX:
            found.append(Path(path))
    return found
