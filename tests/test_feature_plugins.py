"""Feature families from installed packages: the ``cellbench.features`` entry-point group."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from cellbench.core.errors import ConfigError, UnknownNameError
from cellbench.features import FeatureConfig, extract_features, feature_names
from cellbench.features.catalog import FEATURES, get_family, installed_families
from cellbench.run.suite import parse_suite

MODULE = '''
from cellbench.features.family import family


def _names(config):
    return ("demo_red_mean", "demo_area")


@family("demo_redness", names=_names)
def demo_redness(cell, config):
    """Mean red inside the cell and the cell's pixel count: a pure function of the cell."""
    red = cell.rgb[..., 0][cell.mask > 0]
    return {"demo_red_mean": float(red.mean()), "demo_area": float(red.size)}


not_a_family = 42
'''


@pytest.fixture()
def installed(tmp_path, monkeypatch):
    """A fake distribution ``cbfeat-demo`` 0.3 on sys.path with two entry points (one bad)."""
    (tmp_path / "cbfeat_demo.py").write_text(textwrap.dedent(MODULE))
    info = tmp_path / "cbfeat_demo-0.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: cbfeat-demo\nVersion: 0.3\n")
    (info / "entry_points.txt").write_text(
        "[cellbench.features]\ndemo_redness = cbfeat_demo:demo_redness\ndemo_bad = cbfeat_demo:not_a_family\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(FEATURES, "_items", dict(FEATURES._items))  # what a test loads leaves with it
    feature_names.cache_clear()
    yield
    feature_names.cache_clear()


def _image():
    img = np.full((40, 40, 3), 220, np.uint8)
    img[10:30, 12:28] = (150, 40, 120)
    mask = np.zeros((40, 40), bool)
    mask[10:30, 12:28] = True
    return img, mask


def test_an_installed_family_is_selectable_in_features_families(installed):
    assert {"demo_redness", "demo_bad"} <= set(installed_families())
    suite = parse_suite(
        {
            "name": "p",
            "datasets": {"synthetic": {}},
            "models": {"knn": {}},
            "features": {"families": ["intensity", "demo_redness"]},
        },
        source="t.toml",
    )
    config = FeatureConfig.from_table("cell", suite.features)
    names = feature_names(config)
    assert names[-2:] == ("demo_red_mean", "demo_area") and names[0].startswith("int_")
    img, mask = _image()
    values = extract_features(img, mask, config=config)
    assert values["demo_red_mean"] == 150.0 and values["demo_area"] == 20 * 16
    # the package's name and version are part of the family's cache key: an upgrade extracts again
    assert get_family("demo_redness").key(config)["source"] == "cbfeat-demo 0.3"


def test_a_bad_or_missing_entry_point_is_refused_with_the_reason(installed):
    with pytest.raises(ConfigError, match=r"'cbfeat_demo:not_a_family' of feature family 'demo_bad' must be a Family"):
        get_family("demo_bad")
    with pytest.raises(UnknownNameError, match="no_such_family"):
        get_family("no_such_family")
    with pytest.raises(Exception, match="no_such_family"):
        parse_suite(
            {
                "name": "p",
                "datasets": {"synthetic": {}},
                "models": {"knn": {}},
                "features": {"families": ["no_such_family"]},
            },
            source="t.toml",
        )


def test_built_in_families_keep_their_cache_keys():
    config = FeatureConfig.for_kind("cell")
    assert "source" not in get_family("intensity").key(config)
