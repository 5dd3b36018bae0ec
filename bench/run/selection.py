"""The results folder of a (suite, data selection): runs on unrelated data never share a store.

A suite run on its own data sets writes to ``RESULTS/<suite>``. A run that chooses other data (``--datasets``,
``--option``, ``--positive-class``, ``--max-per-class``, ``--max-groups``) writes to
``RESULTS/<suite>--<data sets>-<hash>``: the hash covers those choices and the folder each chosen data set was read
from, so the same flags give the same folder (``leaderboard`` and ``export`` take them too) and another folder of
one's own images never merges into a store of other data. ``selection.json`` in the folder says what it holds.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cellbench.core import paths
from cellbench.core.errors import ConfigError
from cellbench.core.files import write_json
from cellbench.core.hashing import stable_hash
from cellbench.datasets import DATASETS, locate
from cellbench.run.store import STORE_NAME
from cellbench.run.suite import Suite

SELECTION_FILE = "selection.json"
# narrowing keys that change which data a run reads (models, strategies, folds and seed do not: a store holds many)
# nor does --test-data: the store keeps the jobs of each external test set apart (cellbench.run.external)
DATA_KEYS = ("datasets", "options", "positive_class", "max_per_class", "max_groups")
FLAGS = {"datasets": "--datasets", "options": "--option", "positive_class": "--positive-class",
         "max_per_class": "--max-per-class", "max_groups": "--max-groups"}  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class Selection:
    """A run's data selection: the results folder's ``name`` and what it holds (``choices``, data ``folders``)."""

    suite: str
    name: str
    choices: dict[str, Any]
    folders: dict[str, str]

    def as_json(self) -> dict[str, Any]:
        return {"suite": self.suite, "name": self.name, "choices": self.choices, "folders": self.folders}

    def describe(self) -> str:
        """``--datasets folder --positive-class leukemic (folder: /data/mine)``, or the suite's own data."""
        if not self.choices:
            return "the suite's own data sets"
        flags = " ".join(_flag(k, v) for k, v in self.choices.items())
        where = ", ".join(f"{k} at {v}" for k, v in self.folders.items())
        return flags + (f" (data read from {where})" if where else "")


def selection(suite: Suite, *, data_root: Path | None) -> Selection:
    """The data selection of ``suite`` (narrowed by the command line) read from ``data_root``."""
    choices = {k: suite.narrowing[k] for k in DATA_KEYS if k in suite.narrowing}
    own_list = list(suite.raw.get("datasets", {}))  # a list of names or a table by name
    if "datasets" in choices and list(choices["datasets"]) == own_list and len(choices) == 1:
        choices = {}  # the suite's own list, named again
    if not choices:
        return Selection(suite=suite.name, name=suite.name, choices={}, folders={})
    folders = {}
    for name in suite.datasets:
        if DATASETS[name].needs_data and (where := locate(name, data_root)) is not None:
            folders[name] = str(where)
    label = "-".join(suite.datasets)
    own = [Path(f).name for n, f in folders.items() if DATASETS[n].info.source == "user-supplied"]
    label = "-".join([label, *own])
    digest = stable_hash({"choices": choices, "folders": folders}, length=8)
    head = f"{suite.name}--"
    room = 64 - len(head) - len(digest) - 1
    label = re.sub(r"[^A-Za-z0-9._-]+", "_", label)[: max(room, 0)].rstrip("._-")
    name = f"{head}{label}-{digest}" if label else f"{head}{digest}"
    return Selection(suite=suite.name, name=paths.check_name(name, what="results folder name"), choices=choices,
                     folders=folders)  # fmt: skip


def results_folder(results_root: str | Path, suite: Suite, *, data_root: Path | None) -> Path:
    """The results folder of ``suite``'s data selection, checked to lie inside ``results_root``."""
    paths.check_name(suite.name, what="suite name")
    return paths.inside(results_root, selection(suite, data_root=data_root).name, what="results folder")


def record(folder: Path, chosen: Selection) -> None:
    """Write ``selection.json`` (what the folder holds) into the results folder."""
    write_json(folder / SELECTION_FILE, chosen.as_json())


def stored_selections(results_root: str | Path, suite: str) -> list[tuple[str, str]]:
    """``(folder name, description)`` of every results folder of ``suite`` under ``results_root``."""
    root = Path(results_root)
    out = []
    for folder in sorted(root.glob(f"{suite}--*")) + ([root / suite] if (root / suite).is_dir() else []):
        try:
            data = json.loads((folder / SELECTION_FILE).read_text())
            text = Selection(**data).describe()
        except (OSError, ValueError, TypeError):
            text = "the suite's own data sets" if folder.name == suite else "selection unknown"
        out.append((folder.name, text))
    return out


def missing_store_error(results_root: str | Path, suite: str, folder: Path) -> ConfigError:
    """The error for no store at ``folder``: the suite's stored folders with the flags that select each."""
    found = stored_selections(results_root, suite)
    listed = "; ".join(f"{name}: {text}" for name, text in found) if found else "none"
    return ConfigError(
        f"no result store at {folder / STORE_NAME}; give the data flags the run was given (--datasets, --data-root, "
        f"--option, --positive-class, --max-per-class, --max-groups). Results of suite {suite} under "
        f"{results_root}: {listed}"
    )


def _flag(key: str, value: Any) -> str:
    if key == "options":
        return " ".join(f"--option {k}={json.dumps(v)}" for k, v in value.items())
    if isinstance(value, list):
        value = ",".join(map(str, value))
    return f"{FLAGS[key]} {value}"
