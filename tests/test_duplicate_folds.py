"""Copies of one image in two predefined folds are refused (on 50df44d they passed with a note), kept only with
``[cv] allow_duplicates_across_folds = true`` and then flagged; ``datasets verify`` lists them as a problem."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from cellbench.core.errors import ConfigError, DataError
from cellbench.core.types import Dataset, Sample
from cellbench.datasets.synthetic import INFO
from cellbench.datasets.verify import verify_dataset
from cellbench.run.cv import make_folds
from cellbench.run.prepare import Settings, _folds
from cellbench.run.suite import parse_suite

RNG = np.random.default_rng(0)


def _dataset() -> Dataset:
    """Twelve images in three predefined folds; ``b2`` (fold b) is a copy of ``a0`` (fold a)."""
    images = [RNG.integers(0, 255, (12, 12, 3), dtype=np.uint8) for _ in range(12)]
    images[5] = images[0].copy()
    samples = tuple(
        Sample(id=f"{'abc'[i // 4]}{i % 4}", label="ab"[i % 2], image=img, meta={"fold": "abc"[i // 4]})
        for i, img in enumerate(images)
    )
    info = replace(INFO, name="toy", classes=("a", "b"), positive_class="b", default_cv="predefined")
    return Dataset(name="toy", classes=("a", "b"), positive_class="b", info=info, fingerprint="toy", samples=samples)


def _folds_of(ds: Dataset, tmp_path, **cv) -> tuple[object, list[str]]:
    suite = parse_suite(
        {"name": "t", "datasets": {"synthetic": {}}, "models": {"knn": {}}, "cv": {"scheme": "predefined", **cv}}
    )
    y = np.asarray([ds.classes.index(s.label) for s in ds.samples])
    notes: list[str] = []
    folds = _folds(suite, ds, "given", list(ds.samples), y, settings=Settings(cache_dir=tmp_path, progress=False),
                   notes=notes)  # fmt: skip
    return folds, notes


def test_copies_across_predefined_folds_are_refused_naming_them_and_the_option(tmp_path):
    with pytest.raises(DataError) as err:
        _folds_of(_dataset(), tmp_path)
    msg = str(err.value)
    assert "a0 (fold a) = b1 (fold b)" in msg and "allow_duplicates_across_folds = true" in msg


def test_with_the_option_they_are_kept_as_released_and_flagged(tmp_path):
    folds, notes = _folds_of(_dataset(), tmp_path, allow_duplicates_across_folds=True)
    assert len(folds.test) == 3
    assert any("⚠ 1 set(s) span the release's predefined folds" in n for n in notes)


def test_copies_inside_one_fold_pass(tmp_path):
    ds = _dataset()
    samples = list(ds.samples)
    samples[5] = replace(samples[5], image=samples[4].image)  # b1 = b0: same fold
    folds, notes = _folds_of(replace(ds, samples=tuple(samples)), tmp_path)
    assert len(folds.test) == 3 and not any("⚠" in n for n in notes)


def test_make_folds_refuses_them_without_the_suite():
    keys = ["k0", "k1", "k0", "k2"]
    args = dict(ids=["p", "q", "r", "s"], y=np.asarray([0, 1, 0, 1]), groups=None, predefined=["x", "x", "y", "y"],
                scheme="predefined", duplicates=keys)  # fmt: skip
    with pytest.raises(DataError, match=r"p \(fold x\) = r \(fold y\)"):
        make_folds(**args)
    assert len(make_folds(**args, allow_duplicates_across_folds=True).test) == 2


def test_verify_lists_copies_across_folds_as_a_problem():
    report = verify_dataset(_dataset(), progress=False)
    assert any("across the release's predefined folds" in p for p in report.problems)
    assert "problems: none" not in report.render()


def test_the_option_must_be_a_boolean():
    with pytest.raises(ConfigError, match="cv.allow_duplicates_across_folds must be true or false, got 'yes'"):
        parse_suite(
            {
                "name": "t",
                "datasets": {"synthetic": {}},
                "models": {"knn": {}},
                "cv": {"allow_duplicates_across_folds": "yes"},
            }
        )
