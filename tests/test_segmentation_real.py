"""Detection precision and recall of the segmentation on the real ALL-IDB1 subset (issue 17; slow: ~20 s).

Skips where ``../shared/data/allidb1_subset`` is absent. The first test guards the level measured today
(precision 0.830, recall 0.901); the second states the issue's target (precision >= 0.90 at recall >= 0.90), which
is not reached yet: it is a strict xfail, so it fails as soon as the target is met and must then become a plain test.
"""

from __future__ import annotations

import pytest

from cellbench.datasets import load_dataset
from cellbench.datasets.extraction import run_extraction
from tests.conftest import SHARED_DATA, shared

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def quality(tmp_path_factory):
    shared("allidb1_subset")
    cache = tmp_path_factory.mktemp("cache")
    ds = load_dataset("allidb1", data_root=SHARED_DATA, cache_dir=cache)
    return run_extraction("segmentation", ds, progress=False, cache_dir=cache).info["quality"]


def test_allidb1_detection_holds_its_measured_level(quality):
    assert quality["targets"] == 406, quality["targets"]
    assert quality["recall"] >= 0.90 and quality["precision"] >= 0.82, (quality["precision"], quality["recall"])


@pytest.mark.xfail(strict=True, reason="issue 17 target not reached: precision 0.830 at recall 0.901 (see README)")
def test_allidb1_detection_reaches_the_issue_target(quality):
    assert quality["precision"] >= 0.90 and quality["recall"] >= 0.90, (quality["precision"], quality["recall"])
