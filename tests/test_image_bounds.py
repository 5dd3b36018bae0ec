"""Image size bound: a file whose header declares more pixels than allowed is refused before decoding."""

import struct
import zlib

import numpy as np
import pytest

from cellbench.core.errors import ConfigError, DataError
from cellbench.datasets.io import MAX_PIXELS, max_pixels, read_image, read_mask, write_png


def _png_claiming(path, width, height):
    """A small valid PNG whose IHDR is rewritten to claim ``width`` x ``height`` (CRC fixed)."""
    write_png(path, np.zeros((8, 8, 3), np.uint8))
    data = bytearray(path.read_bytes())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr : ihdr + 17])) & 0xFFFFFFFF
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", crc)
    path.write_bytes(bytes(data))
    return path


def test_a_header_claiming_16000_squared_pixels_is_refused_naming_the_file_and_the_limit(tmp_path, monkeypatch):
    monkeypatch.delenv("CELLBENCH_MAX_PIXELS", raising=False)
    big = _png_claiming(tmp_path / "huge.png", 16000, 16000)
    with pytest.raises(DataError, match=r"image .*huge\.png is 16000 x 16000 = 256,000,000 pixels, more than the "
                                         r"64,000,000 allowed; set CELLBENCH_MAX_PIXELS"):  # fmt: skip
        read_image(big)
    with pytest.raises(DataError, match=r"mask .*huge\.png is 16000 x 16000"):
        read_mask(big)


def test_the_bound_is_configurable_and_checked(tmp_path, monkeypatch):
    img = tmp_path / "a.png"
    write_png(img, np.zeros((40, 50, 3), np.uint8))
    assert max_pixels() == MAX_PIXELS and read_image(img).shape == (40, 50, 3)
    monkeypatch.setenv("CELLBENCH_MAX_PIXELS", "1999")
    with pytest.raises(DataError, match="is 50 x 40 = 2,000 pixels, more than the 1,999 allowed"):
        read_image(img)
    monkeypatch.setenv("CELLBENCH_MAX_PIXELS", "2000")
    assert read_image(img).shape == (40, 50, 3)
    monkeypatch.setenv("CELLBENCH_MAX_PIXELS", "lots")
    with pytest.raises(ConfigError, match="CELLBENCH_MAX_PIXELS must be a positive integer"):
        read_image(img)
