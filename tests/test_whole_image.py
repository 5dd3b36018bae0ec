"""Whole-image and stain-separated texture families: columns, kinds, and what they see that the cell does not."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from cellbench.core.errors import ConfigError
from cellbench.features import FeatureConfig, extract_features, feature_names
from cellbench.features.config import CELL_FAMILIES, DEFAULT_FAMILIES
from tests.conftest import shared
from tests.test_features import synthetic_cell

# the background tint of each class: a few grey levels of red against blue, nothing else differs
TINTS = {0: (234, 205, 210), 1: (226, 205, 218)}


def multi_cell_crop(label: int, seed: int, size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """A crop with one large white cell (drawn the same way for both classes), small red cells and background.

    Returns ``(image, mask of the large cell)``.
    """
    rng = np.random.default_rng(seed)
    img = np.empty((size, size, 3))
    img[:] = TINTS[label]
    yy, xx = np.mgrid[:size, :size]
    for _ in range(rng.integers(4, 8)):  # red cells: same count and colour distribution in both classes
        cy, cx, r = rng.uniform(0, size), rng.uniform(0, size), rng.uniform(6, 10)
        img[np.hypot(yy - cy, xx - cx) <= r] = (205, 140, 150)
    img += rng.normal(0, 4, img.shape)
    cell, cyto, _ = synthetic_cell(64, seed=1000 + seed)
    y0, x0 = rng.integers(0, size - 64, 2)
    tile = img[y0 : y0 + 64, x0 : x0 + 64]
    tile[cyto] = cell[cyto]
    mask = np.zeros((size, size), bool)
    mask[y0 : y0 + 64, x0 : x0 + 64] = cyto
    return np.clip(img, 0, 255).astype(np.uint8), mask


def _cv_balanced_accuracy(X: np.ndarray, y: np.ndarray) -> float:
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    pred = cross_val_predict(model, X, y, cv=StratifiedKFold(5, shuffle=True, random_state=0))
    return balanced_accuracy_score(y, pred)


@pytest.mark.slow
def test_default_crop_families_see_the_background_that_the_cell_families_miss():
    y = np.array([i % 2 for i in range(60)])
    crops = [multi_cell_crop(int(label), seed=i) for i, label in enumerate(y)]
    cell_only = FeatureConfig(families=CELL_FAMILIES)
    default = FeatureConfig.for_kind("crop")
    X_cell = np.array([list(extract_features(img, m, config=cell_only, kind="crop").values()) for img, m in crops])
    X_default = np.array([list(extract_features(img, m, config=default, kind="crop").values()) for img, m in crops])
    cell_score, default_score = _cv_balanced_accuracy(X_cell, y), _cv_balanced_accuracy(X_default, y)
    assert default_score >= 0.95, default_score
    assert cell_score < 0.8, cell_score  # inside the largest cell the classes are drawn alike


def test_kinds_have_their_default_families_and_columns():
    assert FeatureConfig.for_kind("cell").families == CELL_FAMILIES
    assert FeatureConfig.for_kind("crop").families == DEFAULT_FAMILIES["crop"]
    assert FeatureConfig.for_kind("patch").families == ("whole_image", "hed_texture")
    assert FeatureConfig.for_kind("cell", families=("lbp",)).families == ("lbp",)  # a card's families win
    names = feature_names(FeatureConfig.for_kind("patch"))
    assert len(names) == len(set(names)) and {n.split("_")[0] for n in names} == {"img", "hed"}
    for col in (
        "img_hem_p90",
        "img_hue_h0",
        "img_s2_haralick_d3_contrast",
        "img_s1_edge_density",
        "hed_e_lbp_p16r2_u17",
    ):
        assert col in names
    with pytest.raises(ConfigError, match=r"unknown data kind 'slide'; allowed kinds: cell \(.*\); crop .*; patch"):
        FeatureConfig.for_kind("slide")


def test_whole_image_values_follow_the_image_not_the_mask():
    img, mask = multi_cell_crop(0, seed=3)
    config = FeatureConfig(families=("whole_image",))
    a = extract_features(img, mask, config=config, kind="crop")
    b = extract_features(img, np.roll(mask, 20, axis=1), config=config, kind="crop")
    assert a == b  # the whole image, wherever the cell is
    flat = np.full((50, 50, 3), 128, np.uint8)
    f = extract_features(flat, config=FeatureConfig.for_kind("patch"), kind="patch")
    assert np.isfinite(list(f.values())).all()
    assert f["img_r_mean"] == 128 and f["img_r_std"] == 0 and f["img_s1_edge_density"] == 0
    redder = extract_features(multi_cell_crop(0, seed=3)[0], config=config, kind="crop")
    bluer = extract_features(multi_cell_crop(1, seed=3)[0], config=config, kind="crop")
    assert redder["img_r_mean"] > bluer["img_r_mean"] and redder["img_b_mean"] < bluer["img_b_mean"]


def test_a_crops_small_cell_is_its_mask_not_the_whole_crop():
    """One 64-px white cell in a 450-px crop (about 1 % of it): a crop's cell families measure that cell; a single
    cell crop (kind ``cell``) keeps the whole-image fallback of ``datasets.masks`` rule 3."""
    from cellbench.datasets.masks import cell_mask
    from cellbench.features.extract import feature_vector

    image, truth = multi_cell_crop(0, seed=3, size=450)
    assert cell_mask(image).all()  # the single-cell rule: under 1 % of the crop, the whole image
    found = cell_mask(image, small_cells=True)
    assert 0 < found.mean() < 0.05
    assert (found & truth).sum() / truth.sum() > 0.8 and (found & ~truth).sum() / found.sum() < 0.3
    config = FeatureConfig.for_kind("crop", families=(*CELL_FAMILIES, *DEFAULT_FAMILIES["crop"]))
    names = feature_names(config)
    crop = dict(zip(names, feature_vector(image, config=config, kind="crop")))
    given = dict(zip(names, feature_vector(image, found, config=config, kind="crop")))
    assert crop == given  # the crop's mask is the one found for its small cell
    assert crop["morph_area"] < 0.05 * image.shape[0] * image.shape[1]


def test_hue_is_measured_from_cyan_so_reds_do_not_straddle_the_wrap():
    """Half the pixels at OpenCV hue 175, half at 5 (two reds): measured from cyan they are 85 and 95, mean 90 and
    spread 5 — read from OpenCV's 0 they would be 175 and 5, mean 90 (cyan) and spread 85."""
    hsv = np.zeros((64, 64, 3), np.uint8)
    hsv[:, :32] = (175, 200, 200)
    hsv[:, 32:] = (5, 200, 200)
    rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    f = extract_features(rgb, config=FeatureConfig(families=("whole_image",)), kind="patch")
    assert abs(f["img_hue_mean"] - 90) < 2 and f["img_hue_std"] < 8, (f["img_hue_mean"], f["img_hue_std"])
    # the 8 hue bins from cyan: both reds in the middle bins (levels 67..89 and 90..112)
    assert f["img_hue_h3"] + f["img_hue_h4"] == pytest.approx(1.0)
    cyan = cv2.cvtColor(np.full((8, 8, 3), (90, 200, 200), np.uint8), cv2.COLOR_HSV2RGB)
    assert extract_features(cyan, config=FeatureConfig(families=("whole_image",)), kind="patch")["img_hue_mean"] < 2


def test_edge_values_do_not_depend_on_where_the_image_lies_in_memory():
    """The same grey pixels at 64 offsets of one buffer give the same bits. On this idc patch cv2.magnitude's vector
    path did not (img_s1_gradient_mean differed in its last bits between two runs of one suite)."""
    from cellbench.datasets.io import read_image
    from cellbench.features.whole import pattern_values

    path = shared("idc_dev") / "12910" / "0" / "12910_idx5_x401_y701_class0.png"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    grey = cv2.cvtColor(np.ascontiguousarray(read_image(path)[..., :3]), cv2.COLOR_RGB2GRAY)
    values = set()
    for offset in range(64):
        buffer = np.empty(grey.size + 64, np.uint8)[offset : offset + grey.size].reshape(grey.shape)
        buffer[:] = grey
        values.add(tuple(pattern_values(buffer)))
    assert len(values) == 1
