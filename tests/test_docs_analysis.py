"""The suites behind the README's feature-set comparisons (docs/analysis/feature-sets) load, and each pair the
run script compares differs in its feature families only."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from cellbench.run.suite import load_suite

FOLDER = Path(__file__).resolve().parents[1] / "docs" / "analysis" / "feature-sets"
PAIRS = [line.split('"')[1::2] for line in (FOLDER / "run.sh").read_text().splitlines() if line.startswith("for pair")]


def test_every_suite_the_script_runs_is_in_the_folder_and_loads():
    names = sorted(p.stem for p in FOLDER.glob("*.toml"))
    assert names and all(load_suite(FOLDER / f"{n}.toml").name == n for n in names)
    for n in names:
        assert n in (FOLDER / "run.sh").read_text()


@pytest.mark.parametrize("pair", [p.split() for p in PAIRS[0]])
def test_a_compared_pair_differs_in_its_features_only(pair):
    a, b = (load_suite(FOLDER / f"{n}.toml") for n in pair)
    assert a.features["families"] != b.features["families"]
    same = {"name": "x", "description": "", "features": {}, "source": "", "text": "", "raw": {}}
    assert replace(a, **same) == replace(b, **same)
