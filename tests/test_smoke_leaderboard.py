"""The smoke suite's leaderboard and job keys are the checked-in ones.

Made at 50df44d (before the layered refactor) and regenerated once for the fair-fight changes of issue 14 (nested
verdict, inner scores, the clustered bootstrap instead of McNemar, deep refit): only the three ``cnn_tiny`` keys
changed then (its training parameters gained ``refit``, ``refit_ema`` and ``min_delta``).

Timings are left out (``render_markdown(timings=False)``) and the run manifest is masked: it names the machine,
the commit and the package versions. Everything else — scores, tests, notes, figures' links — must match byte for
byte, so a refactor that changes a number, a job key or a sentence fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

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


def test_smoke_leaderboard_matches_the_checked_in_one(tmp_path):
    summary = run_suite(load_suite("smoke"), results_root=tmp_path, cache=tmp_path / "cache", progress=False)
    assert summary.failed == 0
    with Store.open(summary.results_dir, write=False) as store:
        text = render_markdown(summarise(store), timings=False)
        keys = sorted(store.jobs().key)
    # the same jobs as before the refactor: stores written then resume without rerunning anything
    assert keys == KEYS.read_text().split()
    expected = EXPECTED.read_text(encoding="utf-8")
    got = masked(text)
    if got != expected:
        diff = [f"expected: {a}\n     got: {b}" for a, b in zip(expected.splitlines(), got.splitlines()) if a != b]
        raise AssertionError(f"{len(diff)} line(s) differ; first:\n" + "\n".join(diff[:3]))
