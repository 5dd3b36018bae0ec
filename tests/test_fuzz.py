"""Fuzzing: random suite files and mutated images; every outcome is a result or one clear error, never a traceback.

A seeded generator (reproducible: a failure names its case number) mutates a valid suite (values of other types,
unknown and missing keys, hostile names, broken TOML) and valid images (truncations, flipped and wrong headers,
odd sizes, bit depths and channel counts). A suite must load or raise :class:`CellbenchError`; an image must read,
fit and give finite-or-NaN features, or raise :class:`DataError`. The default run tries a short series; the slow
tests the full one (1,000 suites, 300 images).
"""

from __future__ import annotations

import copy
import random
import struct
import tomllib
from collections import Counter

import cv2
import numpy as np
import pytest

from cellbench.core.errors import CellbenchError
from cellbench.datasets.io import read_image
from cellbench.features import FeatureConfig
from cellbench.features.extract import feature_vector
from cellbench.models.pixels import fit_to_square
from cellbench.run.suite import load_suite, parse_suite

BASE = load_suite("smoke")
ODD_VALUES = [
    "no", "yes", "three", "", "../../x", "/abs", "a" * 300, 0, -1, 1, 2**63, 1.5, float("nan"), float("inf"), True,
    False, [], [1], ["none", 3], {}, {"a": 1}, [{"x": 1}], "1:4", "smote", "random_forest", "synthetic",
]  # fmt: skip
NAMES = ["knn", "svm", "cnn_tiny", "mobilenet_v2_lr", "nope", "../evil", "", "synthetic", "allidb2", "x" * 80]


def _paths(obj, prefix=()):
    """Every (path, value) in a nested table."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield (*prefix, k), v
            yield from _paths(v, (*prefix, k))


def _set(obj, path, value):
    for k in path[:-1]:
        obj = obj[k]
    obj[path[-1]] = value


def _delete(obj, path):
    for k in path[:-1]:
        obj = obj[k]
    obj.pop(path[-1], None)


def mutated_suite(rng: random.Random) -> dict:
    raw = copy.deepcopy(dict(BASE.raw))
    for _ in range(rng.randint(1, 3)):
        paths = list(_paths(raw))
        path, _ = rng.choice(paths)
        action = rng.random()
        if action < 0.55:
            _set(raw, path, copy.deepcopy(rng.choice(ODD_VALUES)))
        elif action < 0.7:
            _delete(raw, path)
        elif action < 0.85:
            table = [p for p, v in paths if isinstance(v, dict)] or [()]
            where = rng.choice(table)
            target = raw
            for k in where:
                target = target[k]
            target[rng.choice(["colour", "gpu", "optional", "max_epochs", "extractions", "n_estimators"])] = (
                copy.deepcopy(rng.choice(ODD_VALUES))
            )
        else:
            table = rng.choice(["models", "datasets", "strategies", "metrics"])
            raw[table] = {rng.choice(NAMES): {}} if table in ("models", "datasets") else [rng.choice(NAMES)]
    if rng.random() < 0.1:
        raw["name"] = rng.choice(["../../../../victim", "/etc", "", "ok-name", "a b", "x" * 70])
    return raw


def broken_toml(rng: random.Random) -> str:
    text = BASE.text
    cut = rng.randint(0, len(text))
    choice = rng.random()
    if choice < 0.4:
        return text[:cut]
    if choice < 0.7:
        return text[:cut] + rng.choice(["[", "]]", "= =", '"', "\x00", "[models\n", "x = [1, 'a'\n"]) + text[cut:]
    return "".join(rng.choice(["[", "]", "=", '"', "a", "\n", " ", "1", ".", "#"]) for _ in range(rng.randint(1, 200)))


def _suite_outcome(case: int) -> str:
    rng = random.Random(case)
    if rng.random() < 0.2:
        text = broken_toml(rng)
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            return "malformed TOML (refused by load_suite)"
    else:
        raw = mutated_suite(rng)
    try:
        parse_suite(raw, source=f"fuzz-{case}.toml")
    except CellbenchError:
        return "clear error"
    return "loaded"


def _run_suites(n: int) -> Counter:
    counts: Counter = Counter()
    for case in range(n):
        try:
            counts[_suite_outcome(case)] += 1
        except Exception as exc:  # a traceback a user would see
            pytest.fail(f"suite case {case}: {type(exc).__name__}: {exc}")
    return counts


# -- images ---------------------------------------------------------------------------------------------------


def _valid_images(rng: np.random.Generator) -> list[tuple[str, bytes]]:
    rgb = rng.integers(0, 256, size=(48, 40, 3), dtype=np.uint8)
    out = []
    for ext, img in [
        (".png", rgb),
        (".jpg", rgb),
        (".bmp", rgb),
        (".tif", rgb),
        (".png", (rgb.astype(np.uint16) * 257)),
        (".tif", rgb[:, :, 0].astype(np.float32) / 255.0),
        (".png", rgb[:, :, 0]),
        (".png", np.dstack([rgb, rgb[:, :, :1]])),  # RGBA
        (".png", np.zeros((1, 1, 3), np.uint8)),
        (".png", np.zeros((1, 300, 3), np.uint8)),
    ]:
        ok, buf = cv2.imencode(ext, img)
        assert ok, ext
        out.append((ext, buf.tobytes()))
    from io import BytesIO

    from PIL import Image

    for mode, ext in (("LA", ".png"), ("I;16", ".tif"), ("P", ".png"), ("1", ".png")):  # grey+alpha, 16-bit...
        buf = BytesIO()
        Image.fromarray(rgb[:, :, :2] if mode == "LA" else rgb[:, :, 0]).convert(mode).save(
            buf, format=ext[1:].upper().replace("TIF", "TIFF")
        )
        out.append((ext, buf.getvalue()))
    return out


def mutated_image(case: int, bases) -> tuple[str, bytes]:
    rng = random.Random(case)
    ext, data = rng.choice(bases)
    data = bytearray(data)
    kind = rng.random()
    if kind < 0.3:
        data = data[: rng.randint(0, len(data))]
    elif kind < 0.6:
        for _ in range(rng.randint(1, 8)):
            if data:
                data[rng.randrange(min(len(data), 64))] = rng.randrange(256)  # the header
    elif kind < 0.75:
        for _ in range(rng.randint(1, 30)):
            if data:
                data[rng.randrange(len(data))] = rng.randrange(256)
    elif kind < 0.85:
        data = bytearray(rng.choice([b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"BM", b"II*\x00", b"GIF89a"])) + data[8:]
    elif kind < 0.95 and ext == ".png" and b"IHDR" in data:
        at = data.index(b"IHDR") + 4
        data[at : at + 8] = struct.pack(">II", rng.choice([0, 1, 70000, 2**31 - 1]), rng.choice([0, 1, 70000]))
    else:
        data = bytearray(rng.randbytes(rng.randint(0, 2000)))
    return ext, bytes(data)


def _image_outcome(path) -> str:
    try:
        img = read_image(path)
    except CellbenchError:
        return "clear error"
    fit_to_square(img, 32, keep_aspect=True)
    try:
        values = feature_vector(img, config=FeatureConfig(), kind="cell", sample=path.name)
    except CellbenchError:
        return "read, features refused clearly"
    assert values.dtype == np.float64 and not np.isinf(values).any()
    return "read and featurised"


def _run_images(n: int, tmp_path) -> Counter:
    bases = _valid_images(np.random.default_rng(0))
    counts: Counter = Counter()
    for case in range(n):
        ext, data = mutated_image(case, bases)
        path = tmp_path / f"case{case}{ext}"
        path.write_bytes(data)
        try:
            counts[_image_outcome(path)] += 1
        except Exception as exc:
            pytest.fail(f"image case {case} ({path.name}, {len(data)} bytes): {type(exc).__name__}: {exc}")
        path.unlink()
    return counts


def test_random_suites_load_or_fail_clearly_short():
    counts = _run_suites(150)
    assert counts["clear error"] > 50 and counts["loaded"] > 5, counts


def test_mutated_images_read_or_fail_clearly_short(tmp_path):
    counts = _run_images(60, tmp_path)
    assert counts["clear error"] > 10, counts


@pytest.mark.slow
def test_random_suites_load_or_fail_clearly_full():
    counts = _run_suites(1000)
    print(f"\nsuite fuzz: 1000 cases, {dict(counts)}, tracebacks 0")
    assert sum(counts.values()) == 1000


@pytest.mark.slow
def test_mutated_images_read_or_fail_clearly_full(tmp_path):
    counts = _run_images(300, tmp_path)
    print(f"\nimage fuzz: 300 cases, {dict(counts)}, tracebacks 0")
    assert sum(counts.values()) == 300
