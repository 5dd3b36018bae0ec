import subprocess
import sys
from pathlib import Path

from cellbench.tools.cli import main

REPO = Path(__file__).resolve().parents[1]


def test_unknown_names_are_rejected_with_the_known_ones(capsys):
    assert main(["run", "--suite", "smoke", "--models", "resnet9000", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'resnet9000'" in err and "random_forest" in err
    assert main(["run", "--suite", "smoke", "--datasets", "mnist", "--quiet"]) == 2
    assert "unknown dataset 'mnist'" in capsys.readouterr().err
    assert main(["run", "--suite", "smoke", "--strategies", "smoot", "--quiet"]) == 2
    assert "unknown imbalance strategy 'smoot'" in capsys.readouterr().err


def test_missing_real_data_is_named(capsys, tmp_path):
    assert (
        main(
            [
                "run",
                "--suite",
                "smoke",
                "--datasets",
                "allidb2",
                "--data-root",
                str(tmp_path),
                "--quiet",
                "--results",
                str(tmp_path / "r"),
            ]
        )
        == 2
    )
    assert "data set 'allidb2' not found" in capsys.readouterr().err


def test_help_explains_the_options():
    out = subprocess.run([sys.executable, "-m", "bench", "run", "--help"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0
    for opt in (
        "--suite",
        "--datasets",
        "--models",
        "--strategies",
        "--folds",
        "--seed",
        "--data-root",
        "--results",
        "--jobs",
        "--on-bad-image",
    ):
        assert opt in out.stdout


def test_leaderboard_without_a_store_says_so(capsys, tmp_path):
    assert main(["leaderboard", "--suite", "nothing", "--results", str(tmp_path)]) == 2
    assert "no result store" in capsys.readouterr().err
