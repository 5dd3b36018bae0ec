"""The precision bound of docs/analysis/segmentation_bound.py, on a synthetic extraction (issue 17)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from cellbench.tools.cli import main

SCRIPT = Path(__file__).resolve().parents[1] / "docs" / "analysis" / "segmentation_bound.py"


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    out = tmp_path_factory.mktemp("bound") / "out"
    args = ["extract", "--dataset", "synthetic", "--method", "segmentation", "--out", str(out), "--quiet"]
    assert main([*args, "--option=n_patients=6", "--option=fields_per_patient=1"]) == 0
    return out


def _bound(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), str(folder)], capture_output=True, text=True, timeout=300)


def test_with_every_object_matched_there_is_nothing_to_bound(extracted):
    proc = _bound(extracted)
    assert proc.returncode == 1 and "nothing to bound" in proc.stderr, proc.stderr
    assert "as found: precision 1.000" in proc.stdout


def test_the_bound_keeps_every_matched_object_at_full_keep_and_raises_precision(extracted, tmp_path):
    # plant unmatched objects: the cells of every third annotated cell become objects nobody annotated
    folder = tmp_path / "planted"
    subprocess.run(["cp", "-r", str(extracted), str(folder)], check=True)
    with (folder / "index.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    for i, row in enumerate(rows):
        if i % 3 == 0:
            row["status"] = "unmatched"
    with (folder / "index.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    proc = _bound(folder)
    assert proc.returncode == 0, proc.stderr
    targets = json.loads((folder / "extraction.json").read_text())["quality"]["targets"]
    matched = sum(r["status"] == "sample" for r in rows)
    unmatched = len(rows) - matched
    assert f"({matched} matched, {unmatched} unmatched) of {targets} annotated cells" in proc.stdout
    table = [line.split("|")[1:-1] for line in proc.stdout.splitlines() if line.startswith("| ") and "%" in line]
    assert len(table) == 4
    kept, rejected, precision, recall = (c.strip() for c in table[0])
    assert kept == f"{matched} (100%)" and float(recall) == pytest.approx(matched / targets, abs=5e-4)
    assert float(precision) >= matched / len(rows) - 5e-4
    assert 0 <= int(rejected.split(" of ")[0]) <= unmatched
