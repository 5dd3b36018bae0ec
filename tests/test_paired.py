"""``cellbench paired``: two results folders on the same folds, per model and champion vs champion."""

from __future__ import annotations

import re

import pytest

from cellbench.core.errors import ConfigError
from cellbench.tools.paired import paired_report
from tests.stores import SKILLS, FakeData, write_store


def test_paired_report_finds_the_better_run_and_refuses_unrelated_ones(tmp_path):
    better = {**SKILLS, ("logistic_regression", "none"): 0.97}
    a = write_store(tmp_path / "a", [FakeData(n=120, skills=better)])
    b = write_store(tmp_path / "b", [FakeData(n=120)])  # same data and folds, same job keys
    text = paired_report(a, b)
    row = next(line for line in text.splitlines() if line.startswith("| logistic_regression"))
    assert float(row.split("|")[6]) > 0.05  # A − B of the better model
    ci = re.search(r"A − B = \+([\d.]+), 95% bootstrap CI \[([+-][\d.]+), ([+-][\d.]+)\]", text)
    assert ci and float(ci.group(2)) > 0 and "A better by" in text
    same = paired_report(b, b)
    assert "A − B = +0.000" in same and "no significant difference" in same
    other = write_store(tmp_path / "c", [FakeData(name="beta", n=120)])
    with pytest.raises(ConfigError, match="share no data set"):
        paired_report(a, other)
    with pytest.raises(ConfigError, match="unknown arm 'cnn'; known arms: handcrafted"):
        paired_report(a, b, arm="cnn")
