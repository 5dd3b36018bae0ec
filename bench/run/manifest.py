"""The run manifest: everything needed to say what produced a result and to reproduce it."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
from importlib import metadata
from typing import Any

from cellbench.core.hashing import canonical_json
from cellbench.core.paths import checkout_root
from cellbench.models import MODELS

PACKAGES = (
    "cellbench",
    "numpy",
    "pandas",
    "scipy",
    "scikit-learn",
    "imbalanced-learn",
    "xgboost",
    "xgboost-cpu",
    "scikit-image",
    "mahotas",
    "opencv-python-headless",
    "tensorflow",
    "tensorflow-cpu",
    "keras",
    "statsmodels",
    "scikit-posthocs",
    "dask",
    "distributed",
    "torchstain",
)


def package_versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def git_state() -> dict[str, Any]:
    """Commit and dirty flag of the repository the code runs from (``None`` outside a git checkout)."""
    root = checkout_root()
    if root is None:
        return {"commit": None, "dirty": None}

    def git(*args: str) -> str | None:
        try:
            return subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def stain_handling(suite) -> dict[str, Any]:
    """The suite's stain handling: normalisation method and the deep models' HED augmentation (empty: none)."""
    hed = {}
    for name, params in suite.models.items():
        value = {**suite.deep, **params}.get("hed_augment", 0)
        if value and MODELS[name].kind == "deep":
            hed[name] = value
    if suite.stain == "none" and not hed:
        return {}
    return {"method": suite.stain, "max_images": suite.stain_images, "hed_augment": hed}


def build_manifest(*, suite, fingerprints: dict[str, str], argv: list[str] | None = None) -> dict[str, Any]:
    """The manifest of a run of ``suite`` on data sets with the given fingerprints."""
    return {
        "suite": suite.name,
        "suite_file": suite.source,
        "suite_sha256": hashlib.sha256((suite.text or canonical_json(dict(suite.raw))).encode()).hexdigest(),
        "suite_text": suite.text,
        "suite_raw": dict(suite.raw),
        "seed": suite.seed,
        "narrowing": dict(suite.narrowing),
        "cv": {
            "scheme": suite.cv_scheme,
            "folds": suite.folds,
            "repeats": suite.repeats,
            **({"allow_duplicates_across_folds": True} if suite.allow_duplicates_across_folds else {}),
        },
        "datasets": fingerprints,
        **({"stain": stain} if (stain := stain_handling(suite)) else {}),
        "packages": package_versions(),
        "git": git_state(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "threads": {v: os.environ.get(v) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")},
        "argv": list(argv if argv is not None else sys.argv),
    }
