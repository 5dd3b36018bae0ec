"""External test sets: the holdout rule, the leakage guard, refit and fold-model jobs, the external table."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from cellbench.core.errors import ConfigError, DataError
from cellbench.core.paths import cache_dir
from cellbench.core.types import ImbalanceSpec, Job, ModelSpec
from cellbench.report.external import render_external, summarise_external
from cellbench.report.summary import summarise
from cellbench.run.external import (
    REFIT_FOLD,
    ExternalSource,
    TestSpec,
    holdout_groups,
    parse_test_spec,
    split_external,
)
from cellbench.run.runner import run_suite
from cellbench.run.store import Store, external_predictions_key
from cellbench.run.suite import parse_suite
from cellbench.tools.cli import main
from tests.conftest import leaderboard, shared

SMALL = {"n_patients": 12, "fields_per_patient": 2}
HOLDOUT = {"holdout_groups": 4, "seed": 0}


def _suite(name="ext", *, test=HOLDOUT, models=None, strategies=("none", "threshold"), **over):
    raw = {
        "name": name,
        "seed": 0,
        "strategies": list(strategies),
        "cv": {"folds": 3},
        "datasets": {"synthetic": {**SMALL, "test": test}},
        "models": models or {"logistic_regression": {}, "random_forest": {"n_estimators": 10}},
        **over,
    }
    return parse_suite(raw, source="test")


def _write_idc(root: Path, patients: list[str], *, seed: int) -> Path:
    """A tiny folder in the IDC release's layout: <patient>/<0|1>/<patient>_idx5_x<X>_y<Y>_class<C>.png."""
    import cv2

    rng = np.random.default_rng(seed)
    for p in patients:
        for cls, n in (("0", 3), ("1", 2)):
            folder = root / p / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                img = rng.integers(0, 255, (50, 50, 3), dtype=np.uint8)
                img[..., 0] = np.clip(img[..., 0].astype(int) + 60 * int(cls), 0, 255)  # a learnable signal
                cv2.imwrite(str(folder / f"{p}_idx5_x{50 * i}_y{50 * int(cls)}_class{cls}.png"), img)
    return root


def _idc_suite(tmp_path: Path, name: str = "idcx") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(
        f'name = "{name}"\nstrategies = ["none"]\n[cv]\nfolds = 3\n[datasets.idc]\n'
        "[models]\nlogistic_regression = {}\n"
    )
    return path


# -- the rule and the suite table -------------------------------------------------------------------------


def test_holdout_rule_is_a_seeded_hash_order_independent_of_input_order():
    ids = [f"P{i:03d}" for i in range(100)]
    held = holdout_groups(ids, n=30, seed=0)
    assert len(held) == 30 and held == sorted(held)
    assert holdout_groups(list(reversed(ids)) * 2, n=30, seed=0) == held  # order and repeats do not matter
    assert holdout_groups(ids, n=0.3, seed=0) == held  # a fraction of the groups
    assert holdout_groups(ids, n=30, seed=1) != held  # the seed chooses other patients
    assert set(holdout_groups(ids, n=10, seed=0)) <= set(held)  # a prefix of the same hash order
    import hashlib

    order = sorted(ids, key=lambda g: hashlib.blake2b(f"0:{g}".encode(), digest_size=16).hexdigest())
    assert held == sorted(order[:30])  # exactly the documented rule
    with pytest.raises(ConfigError, match="at least one must stay"):
        holdout_groups(ids[:5], n=5, seed=0)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({}, "needs exactly one of"),
        ({"holdout_groups": 3, "path": "x"}, "both path and holdout_groups"),
        ({"holdout_groups": 0}, "whole number of groups"),
        ({"holdout_groups": 1.5}, "fraction in"),
        ({"holdout_groups": True}, "whole number of groups"),
        ({"holdout_groups": 3, "folds": 2}, "unknown key"),
        ({"path": ""}, "must be a folder path"),
        ({"path": "x", "seed": 1}, "seed applies to holdout_groups only"),
        ({"split": "train"}, 'split must be "official"'),
        ("holdout", 'must be "official" or a table'),
    ],
)
def test_a_bad_test_table_is_refused_naming_what_is_allowed(value, message):
    with pytest.raises(ConfigError, match=message):
        parse_test_spec("idc", value)
    with pytest.raises(ConfigError, match=message):  # at suite load, before anything runs
        _suite(test=value)


def test_official_and_path_specs():
    assert parse_test_spec("pcam", "official").rule == "official"
    assert parse_test_spec("pcam", {"split": "official"}).rule == "official"
    spec = parse_test_spec("cnmc", {"path": "/data/test", "on_bad_label": "skip"})
    assert spec.rule == "path" and spec.options == {"on_bad_label": "skip"}


def test_test_data_applies_to_one_data_set_only():
    suite = _suite(test=None, datasets={"synthetic": SMALL, "folder": {}})
    with pytest.raises(ConfigError, match="--test-data applies when one data set is run"):
        suite.narrow(test_data="/somewhere")
    one = suite.narrow(datasets=["synthetic"], test_data="/somewhere")
    assert one.datasets["synthetic"]["test"] == {"path": "/somewhere"}
    assert one.narrowing["test_data"] == "/somewhere"  # recorded for --reproduce


def test_jobs_without_an_external_set_keep_their_keys():
    base = Job(
        suite="s",
        dataset="d",
        extraction="given",
        model=ModelSpec(name="knn"),
        imbalance=ImbalanceSpec(name="none"),
        fold=0,
        seed=0,
        cv="group_kfold",
    )
    assert "external" not in base.canonical()
    tied = replace(base, external="abc")
    assert tied.canonical() == {**base.canonical(), "external": "abc"} and tied.key != base.key


def test_delong_matches_the_placement_value_definition():
    from scipy.stats import norm
    from sklearn.metrics import roc_auc_score

    from cellbench.stats.tests import delong_test

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    a = 0.8 * y + rng.normal(0, 1, 300)
    b = np.round(0.3 * y + rng.normal(0, 1, 300), 1)  # ties, which midranks must handle
    res = delong_test(y, a, b)

    def placements(s):  # DeLong et al. 1988, directly: psi over every positive-negative pair
        pos, neg = s[y == 1], s[y == 0]
        psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
        return psi.mean(), psi.mean(axis=1), psi.mean(axis=0)

    (auc_a, v10a, v01a), (auc_b, v10b, v01b) = placements(a), placements(b)
    cov = np.cov([v10a, v10b]) / (y == 1).sum() + np.cov([v01a, v01b]) / (y == 0).sum()
    z = (auc_a - auc_b) / np.sqrt(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    assert res.detail["auc_a"] == pytest.approx(roc_auc_score(y, a)) == pytest.approx(auc_a)
    assert res.detail["auc_b"] == pytest.approx(roc_auc_score(y, b))
    assert res.statistic == pytest.approx(z) and res.p_value == pytest.approx(2 * norm.sf(abs(z)))
    assert delong_test(y, a, a).p_value == 1.0
    assert np.isnan(delong_test(np.ones(5), a[:5], b[:5]).p_value)


# -- end to end on the synthetic default ------------------------------------------------------------------


@pytest.fixture(scope="module")
def holdout_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("ext")
    summary = run_suite(_suite(), results_root=root, workers=1, progress=False)
    return summary, root / "ext"


def test_cv_on_development_refit_and_fold_models_on_the_held_out_patients(holdout_run):
    summary, folder = holdout_run
    assert summary.failed == 0
    with Store.open(folder, write=False) as store:
        jobs = store.jobs()
        info = store.data_sets()[("synthetic", "given")]
        samples = store.samples("synthetic", "given")
        preds = store.predictions()
    ext = info.external
    assert ext.rule == "holdout" and ext.n_groups == 4 and info.n_groups == 8
    assert "no patient in both sets" in ext.overlap_check
    group = dict(zip(samples.sample_id, samples.grp))
    # 2 models × 2 strategies: 3 CV folds each plus one refit (fold -1)
    assert sorted(jobs.groupby(["model", "imbalance"]).fold.apply(sorted).tolist()) == [[REFIT_FOLD, 0, 1, 2]] * 4
    refits, cv = jobs[jobs.fold == REFIT_FOLD], jobs[jobs.fold >= 0]
    own = preds[~preds.job_key.str.endswith("@external")]
    ext_ids = set(own[own.job_key.isin(refits.key)].sample_id)
    dev_ids = set(own[own.job_key.isin(cv.key)].sample_id)
    assert len(ext_ids) == ext.n_samples and len(dev_ids) == info.n_samples
    assert not ext_ids & dev_ids
    assert {group[i] for i in ext_ids}.isdisjoint({group[i] for i in dev_ids})  # patient-disjoint
    for r in refits.itertuples():  # refit on the whole development set, scored on the whole external set
        assert r.extra.n_train == info.n_samples and r.extra.n_test == ext.n_samples
    for r in cv.itertuples():  # fold models: trained on development folds only, and they score the external set
        assert r.extra.n_train + r.extra.n_test == info.n_samples
        mine = preds[preds.job_key == external_predictions_key(r.key)]
        assert set(mine.sample_id) == ext_ids and r.extra.external.n == len(ext_ids)
        assert r.extra.external.metrics["balanced_accuracy"] is not None


def test_leaderboard_has_the_cv_table_and_the_external_table(holdout_run):
    summary, folder = holdout_run
    text = leaderboard(summary)
    assert "**CV**: patient-disjoint" in text and "BalAcc (primary)" in text
    assert "### External test" in text and "BalAcc external (refit)" in text and "optimism" in text
    assert "4 of 12 patients held out" in text
    with Store.open(folder, write=False) as store:
        section = summarise(store).sections[0]
        jobs = store.jobs()
    assert section.folds == 3 and set(section.table.folds) == {3}  # refits are not CV folds
    ext = section.external.table
    assert len(ext) == 4 and ext["rank"].tolist() == [1, 2, 3, 4]
    assert ext.cv_mean.is_monotonic_decreasing  # ranked by the CV estimate, not by the external score
    for r in ext.itertuples():
        refit = jobs[(jobs.fold == REFIT_FOLD) & (jobs.model == r.model) & (jobs.imbalance == r.strategy)]
        assert r.ext_balanced_accuracy == pytest.approx(refit.metrics.iloc[0]["balanced_accuracy"])
        cv = section.table[(section.table.model == r.model) & (section.table.strategy == r.strategy)]
        assert r.cv_mean == pytest.approx(cv.balanced_accuracy_mean.iloc[0])
        assert r.optimism == pytest.approx(r.cv_mean - r.ext_balanced_accuracy)
        folds = [
            e.external.metrics["balanced_accuracy"]
            for e in jobs[(jobs.fold >= 0) & (jobs.model == r.model) & (jobs.imbalance == r.strategy)].extra
        ]
        assert r.folds_mean == pytest.approx(np.mean(folds)) and r.folds_n == 3
        assert r.ci_low <= r.ext_balanced_accuracy <= r.ci_high
    assert section.external.best == (ext.model.iloc[0], ext.strategy.iloc[0])
    assert ext.cv_champion.tolist() == [True, False, False, False]
    assert "★ CV champion" in text and "boot p (Δ BalAcc, patients resampled)" in text


def test_the_external_table_follows_the_cv_ranking_and_tests_against_the_cv_champion(holdout_run):
    """Ranking or picking the reference by the external score selects on the test set: CV decides both."""
    _, folder = holdout_run
    with Store.open(folder, write=False) as store:
        section = summarise(store).sections[0]
        record = store.data_sets()[("synthetic", "given")]
        jobs = store.jobs()
        ok = jobs[jobs.status == "ok"]
        natural = ok[(ok.ratio == "natural") & (ok.fold >= 0)]
        refits = jobs[jobs.fold == REFIT_FOLD]
        # A CV table in which the external test's worst refit has the best CV estimate and the best one the worst.
        by_ext = section.external.table.sort_values("ext_balanced_accuracy", ascending=False)
        order = list(zip(by_ext.model, by_ext.strategy))
        cv_means = {key: 0.6 + 0.1 * i for i, key in enumerate(order)}  # reversed: the external-worst is CV-best
        table = section.table.copy()
        table["balanced_accuracy_mean"] = [cv_means[k] for k in zip(table.model, table.strategy)]
        ext = summarise_external(store, record=record, cv_ok=natural, refits=refits, table=table)
    assert by_ext.ext_balanced_accuracy.iloc[0] > by_ext.ext_balanced_accuracy.iloc[-1]  # the swap means something
    cv_best, ext_best = order[-1], order[0]
    assert ext.best == cv_best != ext_best
    t = ext.table
    assert list(zip(t.model, t.strategy)) == order[::-1] and t.cv_mean.is_monotonic_decreasing
    assert t.cv_champion.tolist() == [True, False, False, False]
    assert np.isnan(t.boot_p.iloc[0]) and t.boot_p.iloc[1:].notna().all()  # every other row vs the champion
    lines = render_external(ext, shown=("balanced_accuracy",))
    champion = next(line for line in lines if "★ CV champion" in line)
    assert f"| {cv_best[0]} ★ CV champion " in champion and "| champion " in champion
    assert "ranked by their CV estimate" in "\n".join(lines)


def test_the_refit_predictions_are_reproducible_with_the_same_seed(holdout_run, tmp_path):
    _, folder = holdout_run
    # a second run of the seeded random forest with the threshold tuned on an inner split: job keys do not depend
    # on the other rows of the suite, so its jobs are the same jobs as in the first run
    again = _suite(models={"random_forest": {"n_estimators": 10}}, strategies=["threshold"])
    run_suite(again, results_root=tmp_path, workers=1, progress=False)

    def refit_predictions(path):
        with Store.open(path, write=False) as store:
            jobs = store.jobs()
            refit = jobs[(jobs.fold == REFIT_FOLD) & (jobs.model == "random_forest") & (jobs.imbalance == "threshold")]
            preds = store.predictions(refit.key.tolist())
        return refit.key.tolist(), preds.assign(proba=preds.proba.map(json.dumps)).sort_values("sample_id")

    keys_a, a = refit_predictions(folder)
    keys_b, b = refit_predictions(tmp_path / "ext")
    assert keys_a == keys_b and len(keys_a) == 1 and len(a) > 0
    assert a.reset_index(drop=True).equals(b.reset_index(drop=True))


def test_rerun_resumes_and_another_test_set_in_the_same_folder_is_not_mixed_in(holdout_run, tmp_path):
    import shutil

    summary, folder = holdout_run
    again = run_suite(_suite(), results_root=folder.parent, workers=1, progress=False)
    assert again.ran == 0 and again.skipped_done == summary.planned
    shutil.copytree(folder, tmp_path / "ext", ignore=shutil.ignore_patterns("store.lock"))
    suite = _suite(test={"holdout_groups": 4, "seed": 5}, models={"logistic_regression": {}}, strategies=["none"])
    other = run_suite(suite, results_root=tmp_path, workers=1, progress=False)
    assert other.failed == 0 and other.ran == other.planned == 4  # other patients held out: all new jobs
    with Store.open(tmp_path / "ext", write=False) as store:
        assert len(store.jobs()) == summary.planned + 4  # the earlier test set's jobs are kept (resumable) ...
        section = summarise(store).sections[0]
        key = store.data_sets()[("synthetic", "given")].external.key
    # ... but neither counted as CV folds nor shown as external scores of the current test set
    assert section.table[["model", "strategy", "folds", "folds_ok"]].values.tolist() == [
        ["logistic_regression", "none", 3, 3]
    ]
    assert len(section.external.table) == 1 and section.external.table.folds_n.tolist() == [3]
    assert section.external.info.key == key


def test_an_overlapping_patient_is_refused_and_nothing_is_stored(tmp_path):
    dev = _write_idc(tmp_path / "dev", ["1001", "1002", "1003", "1004", "1005"], seed=0)
    test = _write_idc(tmp_path / "test", ["1005", "1006", "1007"], seed=1)  # patient 1005 is in both
    suite = _idc_suite(tmp_path)
    argv = ["run", "--suite", str(suite), "--data-root", str(dev), "--results", str(tmp_path / "r"), "--quiet"]
    with pytest.raises(DataError, match=r"1 patient\(s\) appear in both .*: 1005"):
        run_suite(
            parse_suite({**_raw(suite), "datasets": {"idc": {"test": {"path": str(test)}}}}, source="t"),
            results_root=tmp_path / "r",
            data_root=dev,
            workers=1,
            progress=False,
        )
    assert main([*argv, "--test-data", str(test), "--jobs", "1"]) == 2  # the CLI prints the one error
    with Store.open(tmp_path / "r" / "idcx", write=False) as store:
        assert len(store.jobs()) == 0 and len(store.runs()) == 0


def test_an_identical_image_under_another_patient_is_refused(tmp_path):
    import shutil

    dev = _write_idc(tmp_path / "idc", ["1001", "1002", "1003", "1004"], seed=0)  # found under the data root
    test = _write_idc(tmp_path / "test", ["2001", "2002"], seed=1)  # path = "test" is taken under the data root
    src = next((dev / "1002" / "1").glob("*.png"))
    shutil.copy(src, test / "2001" / "1" / src.name.replace("1002", "2001"))
    suite = parse_suite({**_raw(_idc_suite(tmp_path)), "datasets": {"idc": {"test": {"path": "test"}}}}, source="t")
    with pytest.raises(DataError, match=r"1 external image\(s\) are identical to development images.*1002/1/1002_idx5"):
        run_suite(suite, results_root=tmp_path / "r", data_root=tmp_path, workers=1, progress=False)


def test_test_data_on_the_command_line_scores_another_folder(tmp_path, capsys):
    dev = _write_idc(tmp_path / "dev", ["1001", "1002", "1003", "1004", "1005", "1006"], seed=0)
    test = _write_idc(tmp_path / "hospital_b", ["2001", "2002", "2003"], seed=1)
    argv = ["run", "--suite", str(_idc_suite(tmp_path)), "--data-root", str(dev), "--results", str(tmp_path / "r")]
    assert main([*argv, "--test-data", str(test), "--jobs", "1", "--quiet"]) == 0
    text = (tmp_path / "r" / "idcx" / "LEADERBOARD.md").read_text()
    assert "### External test" in text and "a separate folder read by the same adapter" in text
    assert "15 samples (idc 6, non_idc 9), 3 patients" in text
    with Store.open(tmp_path / "r" / "idcx", write=False) as store:
        refit = store.jobs().query("fold == -1")
        assert len(refit) == 1 and refit.status.iloc[0] == "ok"
        ids = store.predictions(refit.key.tolist()).sample_id
        assert ids.str.startswith("external:2").all() and len(ids) == 15
        manifest = json.loads(store.runs().manifest.iloc[-1])
        assert manifest["narrowing"]["test_data"] == str(test.resolve())


def test_the_official_split_is_the_samples_marked_test():
    from cellbench.datasets import load_dataset

    ds = load_dataset("synthetic", **SMALL)
    patients = sorted({s.group for s in ds.samples})
    marked = tuple(
        replace(s, meta={**s.meta, "split": "test" if s.group in patients[:3] else "train"}) for s in ds.samples
    )
    ds = replace(ds, samples=marked)
    official = ExternalSource(spec=TestSpec(dataset="synthetic", rule="official"))
    part = split_external(official, ds, "given", marked, cache_dir=cache_dir())
    ext = [s for s in part.samples if s.id in part.external_ids]
    assert {s.group for s in ext} == set(patients[:3]) and len(ext) == sum(s.group in patients[:3] for s in marked)
    assert part.samples[-len(ext) :] == tuple(ext)  # development samples first, then the external ones
    assert part.dataset.fingerprint == ds.fingerprint and part.info.rule == "official"
    unmarked = tuple(replace(s, meta={**s.meta, "split": "train"}) for s in marked)
    with pytest.raises(ConfigError, match=r"meta\['split'\] == 'test'.*splits found: train"):
        split_external(official, ds, "given", unmarked, cache_dir=cache_dir())


def test_the_real_idc_folder_as_its_own_test_set_is_refused_naming_patients(tmp_path):
    root = shared("idc_dev")
    suite = parse_suite(
        {"name": "idcr", "datasets": {"idc": {"test": {"path": str(root)}}}, "models": {"logistic_regression": {}}},
        source="t",
    )
    with pytest.raises(DataError, match=r"100 patient\(s\) appear in both the development and the external test set"):
        run_suite(suite, results_root=tmp_path, data_root=root, workers=1, progress=False)


@pytest.mark.slow
def test_idc_develop_on_70_patients_test_on_the_other_30(tmp_path):
    root = shared("idc_dev")
    raw = {
        "name": "idc70",
        "strategies": ["none", "threshold"],
        "cv": {"folds": 5},
        "datasets": {"idc": {"test": {"holdout_groups": 30, "seed": 0}}},
        "models": {"logistic_regression": {}, "random_forest": {"n_estimators": 100}},
    }
    summary = run_suite(parse_suite(raw, source="t"), results_root=tmp_path, data_root=root, workers=2, progress=False)
    assert summary.failed == 0
    with Store.open(tmp_path / "idc70", write=False) as store:
        info = store.data_sets()[("idc", "given")]
    assert info.n_groups == 70 and info.external.n_groups == 30
    assert info.n_samples + info.external.n_samples == 3873
    text = leaderboard(summary)
    assert "patient-disjoint StratifiedGroupKFold, 5 folds" in text and "### External test" in text


@pytest.mark.slow
def test_a_deep_refit_is_reproducible_with_the_same_seed(tmp_path):
    suite = _suite("deep", models={"cnn_tiny": {}}, strategies=["none"], deep={"max_epochs": 2})
    for name in ("a", "b"):
        run_suite(suite, results_root=tmp_path / name, workers=1, progress=False)
    frames = []
    for name in ("a", "b"):
        with Store.open(tmp_path / name / "deep", write=False) as store:
            jobs = store.jobs()
            assert set(jobs.status) == {"ok"} and (jobs.fold == REFIT_FOLD).sum() == 1
            frames.append(store.predictions(jobs.key.tolist()).sort_values(["job_key", "sample_id"]))
    a, b = (f.assign(proba=f.proba.map(json.dumps)).reset_index(drop=True) for f in frames)
    assert len(a) and a.equals(b)


def _raw(suite_file: Path) -> dict:
    import tomllib

    return tomllib.loads(suite_file.read_text())
