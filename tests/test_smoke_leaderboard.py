"""The smoke suite's leaderboard and job keys are the checked-in ones.

Made at 50df44d (before the layered refactor) and regenerated once for the fair-fight changes of issue 14 (nested
verdict, inner scores, the clustered bootstrap instead of McNemar, deep refit): only the three ``cnn_tiny`` keys
changed then (its training parameters gained ``refit``, ``refit_ema`` and ``min_delta``). Regenerated for issue 18
(presentation only, no number changed): the answer table first, identical ranking rows and Δ = 0 strategy rows
folded, the strategy-vs-none header named.

Timings are left out (``render_markdown(timings=False)``) and the run manifest is masked: it names the machine,
the commit and the package versions. Everything else — scores, tests, notes, figures' links — must match byte for
byte, so a refactor that changes a number, a job key or a sentence fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cellbench.report.leaderboard import write_leaderboard
from cellbench.report.markdown import render_markdown
from cellbench.report.summary import summarise
from cellbench.run.runner import run_suite
from cellbench.run.store import Store
from cellbench.run.suite import load_suite

EXPECTED = Path(__file__).parent / "expected" / "smoke_leaderboard.md"
KEYS = Path(__file__).parent / "expected" / "smoke_job_keys.txt"  # the job keys of the smoke suite
MASK = "## Run manifest\n\n(masked: machine, commit and package versions)\n"


def masked(text: str) -> str:
    """The leaderboard with its run-manifest section replaced by a fixed line."""
    return re.sub(r"## Run manifest\n.*?(?=\n## )", MASK, text, count=1, flags=re.S)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> Path:
    """The results folder of one smoke run."""
    tmp = tmp_path_factory.mktemp("smoke")
    summary = run_suite(load_suite("smoke"), results_root=tmp, cache=tmp / "cache", progress=False)
    assert summary.failed == 0
    return summary.results_dir


def test_smoke_leaderboard_matches_the_checked_in_one(smoke):
    with Store.open(smoke, write=False) as store:
        text = render_markdown(summarise(store), timings=False)
        keys = sorted(store.jobs().key)
    # the same jobs as before the refactor: stores written then resume without rerunning anything
    assert keys == KEYS.read_text().split()
    expected = EXPECTED.read_text(encoding="utf-8")
    got = masked(text)
    if got != expected:
        diff = [f"expected: {a}\n     got: {b}" for a, b in zip(expected.splitlines(), got.splitlines()) if a != b]
        raise AssertionError(f"{len(diff)} line(s) differ; first:\n" + "\n".join(diff[:3]))


def test_the_verdict_of_every_data_set_is_on_the_first_screen(smoke):
    with Store.open(smoke, write=False) as store:
        lines = write_leaderboard(store, out_dir=smoke).read_text(encoding="utf-8").splitlines()
        names = {d for d, _ in store.data_sets()}
    first = lines[:40]
    assert "## The answer" in first
    start = first.index("## The answer")
    head = next(i for i in range(start, len(first)) if first[i].startswith("| data set"))
    rows = [line for line in first[head + 2 :] if line.startswith("|")]
    rows = rows[: next((i for i, r in enumerate(rows) if not r.startswith("| **")), len(rows))]
    assert {r.split("|")[1].strip().strip("*") for r in rows} == names
    # each row holds a verdict against the handcrafted arm, in words
    assert all(("better by" in r or "no significant difference" in r) for r in rows)
