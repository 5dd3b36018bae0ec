"""``export``: tables read back equal the store; every format writes only inside its folder; bad input is one
message and exit 2; ``leaderboard``/``export`` take a suite file as ``run`` does."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pandas as pd
import pytest

from cellbench.report.export import FORMATS
from cellbench.run.store import Store
from cellbench.stats.metrics import METRICS
from cellbench.tools.cli import main
from tests.stores import FakeData, write_store

SKILLS = {("logistic_regression", "none"): 0.9, ("logistic_regression", "class_weight"): 0.85,
          ("dummy", "none"): 0.5, ("cnn", "none"): 0.7}  # fmt: skip


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """A results root holding the store of a suite named ``smoke`` (two data sets, no training)."""
    root = tmp_path_factory.mktemp("results")
    data = [FakeData(name="alpha", skills=SKILLS), FakeData(name="beta", skills=SKILLS, patients=None)]
    write_store(root / "smoke", data, suite="smoke")
    return root


def _store_frames(folder):
    with Store.open(folder, write=False) as store:
        return store.jobs(), store.predictions(), store.conn.execute("SELECT COUNT(*) FROM folds").fetchone()[0]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_exported_tables_read_back_equal_the_store(results, tmp_path, fmt, capsys):
    out = tmp_path / fmt
    assert main(["export", "--suite", "smoke", "--results", str(results), "--format", fmt, "--out", str(out)]) == 0
    read = pd.read_csv if fmt == "csv" else pd.read_parquet
    jobs, preds, n_folds = _store_frames(results / "smoke")
    got = read(out / f"jobs.{fmt}")
    assert len(got) == len(jobs) and sorted(got.key) == sorted(jobs.key)
    got = got.set_index("key").loc[jobs.key]
    assert {k for x in jobs.metrics for k in x} <= set(got.columns)  # every stored metric, not only the shown ones
    for m in METRICS:
        want = np.array([np.nan if x.get(m) is None else x[m] for x in jobs.metrics], dtype=float)
        np.testing.assert_array_equal(got[m].to_numpy(float), want, err_msg=m)
    p = read(out / f"predictions.{fmt}")
    assert len(p) == len(preds)
    merged = p.merge(preds, on=["job_key", "sample_id"], suffixes=("", "_store"))
    assert len(merged) == len(preds)
    assert (merged.y_pred == merged.y_pred_store).all() and (merged.y_true == merged.y_true_store).all()
    proba = np.array(merged.proba.tolist())
    np.testing.assert_array_equal(merged[[f"proba_{i}" for i in range(proba.shape[1])]].to_numpy(), proba)
    # patients: known for alpha, unknown for beta
    assert p[p.dataset == "alpha"].patient.notna().all() and p[p.dataset == "beta"].patient.isna().all()
    assert len(read(out / f"folds.{fmt}")) == n_folds
    # the leaderboard's tables in full: the answer names both data sets, the ranking every row
    answer = read(out / f"answer.{fmt}")
    assert set(answer.dataset) == {"alpha", "beta"}
    ranking = read(out / f"alpha-given-ranking.{fmt}")
    assert len(ranking) == len(jobs[(jobs.dataset == "alpha")].groupby(["model", "imbalance"]))


def test_every_format_writes_only_inside_its_folder(results, tmp_path):
    before = {p for p in results.rglob("*")}
    for fmt in FORMATS:
        out = tmp_path / "exports" / fmt
        assert main(["export", "--suite", "smoke", "--results", str(results), "--format", fmt, "--out", str(out)]) == 0
        assert any(out.iterdir())
    assert {p for p in results.rglob("*")} == before
    assert {p.name for p in tmp_path.iterdir()} == {"exports"}
    tex = (tmp_path / "exports" / "latex" / "answer.tex").read_text()
    assert "\\toprule" in tex and "logistic\\_regression" in tex
    records = json.loads((tmp_path / "exports" / "json" / "answer.json").read_text())
    assert {r["dataset"] for r in records} == {"alpha", "beta"}
    html = (tmp_path / "exports" / "html" / "report.html").read_text()
    assert 'id="answer-table"' in html and "data:image/png;base64," in html and "<script>" in html
    assert 'src="figures/' not in html  # self-contained: no link to a file beside it


def test_export_defaults_to_the_results_folder(results):
    assert main(["export", "--suite", "smoke", "--results", str(results), "--format", "json"]) == 0
    assert (results / "smoke" / "export" / "json" / "jobs.json").is_file()


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--format", "xlsx"], ["'xlsx'", "csv, parquet, json, latex, html"]),
        (["--suite", "nosuch"], ["no result store", "unknown suite 'nosuch'", "quick"]),
        (["--suite", "quick"], ["no result store", "store.sqlite"]),
        (["--suite", "missing.toml"], ["suite file not found", "missing.toml"]),
    ],
)
def test_bad_export_input_is_one_message_and_exit_2(results, tmp_path, capsys, argv, words):
    args = {"--suite": "smoke", "--results": str(results), "--format": "csv", "--out": str(tmp_path / "o")}
    args |= dict(zip(argv[::2], argv[1::2]))
    assert main(["export", *(x for kv in args.items() for x in kv)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err
    for w in words:
        assert w in err
    assert not (tmp_path / "o").exists()


def test_a_store_that_is_not_sqlite_is_refused(tmp_path, capsys):
    (tmp_path / "smoke").mkdir()
    (tmp_path / "smoke" / "store.sqlite").write_text("not a database")
    assert main(["export", "--suite", "smoke", "--results", str(tmp_path)]) == 2
    assert "error: " in capsys.readouterr().err


def test_leaderboard_and_export_take_a_suite_file_as_run_does(results, tmp_path, capsys):
    from cellbench.run.suite import SUITES_DIR

    suite_file = SUITES_DIR / "smoke.toml"
    assert main(["leaderboard", "--suite", str(suite_file), "--results", str(results)]) == 0
    assert (results / "smoke" / "LEADERBOARD.md").is_file()
    out = tmp_path / "x"
    assert main(["export", "--suite", str(suite_file), "--results", str(results), "--out", str(out)]) == 0
    assert (out / "jobs.csv").is_file()


def test_the_documented_pandas_one_liner_loads_the_store(results):
    # README: pd.read_sql("SELECT * FROM jobs", sqlite3.connect("results/quick/store.sqlite"))
    jobs = pd.read_sql("SELECT * FROM jobs", sqlite3.connect(results / "smoke" / "store.sqlite"))
    with Store.open(results / "smoke", write=False) as store:
        assert len(jobs) == len(store.jobs())


def test_leaderboard_out_writes_elsewhere_and_a_read_only_folder_says_so(results, tmp_path, capsys, monkeypatch):
    own = results / "smoke" / "LEADERBOARD.md"
    before = own.read_bytes() if own.exists() else None
    out = tmp_path / "board"
    assert main(["leaderboard", "--suite", "smoke", "--results", str(results), "--out", str(out)]) == 0
    assert f"leaderboard: {out / 'LEADERBOARD.md'}" in capsys.readouterr().out
    assert "## The answer" in (out / "LEADERBOARD.md").read_text() and (out / "figures").is_dir()
    assert (own.read_bytes() if own.exists() else None) == before  # the results folder is left as it was

    import errno

    from cellbench.tools import cli

    def read_only(store, *, out_dir):
        raise OSError(errno.EROFS, "Read-only file system", str(out_dir / "LEADERBOARD.md"))

    monkeypatch.setattr(cli, "write_leaderboard", read_only)
    assert main(["leaderboard", "--suite", "smoke", "--results", str(results)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Read-only file system" in err and "--out DIR" in err


def test_an_export_into_a_read_only_folder_points_to_out(results, capsys, monkeypatch):
    import errno

    from cellbench.tools import cli

    def read_only(*a, out, **k):
        raise OSError(errno.EROFS, "Read-only file system", str(out))

    monkeypatch.setattr(cli, "export_results", read_only)
    assert main(["export", "--suite", "smoke", "--results", str(results), "--format", "csv"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write the export" in err and "--out DIR" in err
