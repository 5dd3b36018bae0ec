"""Shared helpers of the adapters that read a release's own folders and names.

Option checks, the data folder, listing image files, the raise-or-skip policies for files and annotations that
break a layout (``on_bad_label``, ``on_bad_annotation``) and building the :class:`Dataset`.
"""

from __future__ import annotations

import itertools
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from cellbench.core.errors import ConfigError, DataError
from cellbench.core.types import Dataset, DatasetInfo, Field, Sample
from cellbench.datasets.fingerprint import fingerprint_samples
from cellbench.datasets.io import IMAGE_SUFFIXES

POLICIES = ("raise", "skip")  # on_bad_label, on_bad_annotation
ON_BAD_LABEL = POLICIES
_IGNORED_DIRS = frozenset({"__macosx", "__pycache__"})


# -- options and the data folder ----------------------------------------------------------------------------


def check_policy_options(name: str, options: Mapping[str, object], *, option: str, policy: str, allowed=()) -> None:
    """Refuse unknown loader options, and a ``policy`` (the value of option ``option``) outside :data:`POLICIES`.

    Raises
    ------
    ConfigError
        Naming the unknown options and listing the allowed ones, or the bad policy and the allowed ones.
    """
    if options:
        known = ", ".join((option, *allowed))
        raise ConfigError(
            f"unknown option(s) for data set {name!r}: {', '.join(sorted(options))}; allowed options: {known}"
        )
    if policy not in POLICIES:
        raise ConfigError(
            f"data set {name!r}: {option}={policy!r} is not allowed; use one of {', '.join(map(repr, POLICIES))}"
        )


def check_options(name: str, options: Mapping[str, object], *, on_bad_label: str, allowed=()) -> None:
    """Refuse unknown option names and a bad ``on_bad_label`` value (:func:`check_policy_options`)."""
    check_policy_options(name, options, option="on_bad_label", policy=on_bad_label, allowed=allowed)


def check_root(name: str, root: str | os.PathLike | None) -> Path:
    """The data folder as an absolute path, or a DataError saying it is missing."""
    if root is None:
        raise DataError(f"data set {name!r}: no data folder given; pass --data-root PATH")
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DataError(f"data set {name!r}: data folder not found: {path}")
    return path.resolve()


def open_release(
    info: DatasetInfo, root: str | os.PathLike | None, options: Mapping[str, object], *, on_bad_label: str, allowed=()
) -> tuple[Path, BadFiles]:
    """A loader's first steps: check its options and data folder; the folder and its ``on_bad_label`` policy."""
    check_options(info.name, options, on_bad_label=on_bad_label, allowed=allowed)
    root = check_root(info.name, root)
    return root, BadFiles(on_bad_label, root)


# -- listing files ------------------------------------------------------------------------------------------


def is_hidden(name: str) -> bool:
    """Dot-files (macOS ``._x`` copies, ``.DS_Store``) and archive leftovers such as ``__MACOSX``."""
    return name.startswith(".") or name.lower() in _IGNORED_DIRS


def is_image(name: str, suffixes: Sequence[str] = IMAGE_SUFFIXES) -> bool:
    """Whether ``name`` is a visible file with one of ``suffixes`` (case-insensitive)."""
    return not is_hidden(name) and os.path.splitext(name)[1].lower() in suffixes


def entries(path: Path, *, limit: int | None = None) -> list[os.DirEntry]:
    """Visible entries of ``path`` (at most ``limit``, in directory order); ``[]`` if unreadable."""
    try:
        with os.scandir(path) as it:
            return list(itertools.islice((e for e in it if not is_hidden(e.name)), limit))
    except OSError:
        return []


def subdirs(path: Path, *, limit: int | None = None) -> list[Path]:
    """Visible sub-folders of ``path``, sorted by name (at most ``limit`` looked at)."""
    return sorted(Path(e.path) for e in entries(path, limit=limit) if e.is_dir())


def walk_images(root: Path, suffixes: Sequence[str] = IMAGE_SUFFIXES) -> Iterator[Path]:
    """Image files under ``root`` (recursively, hidden folders skipped), in sorted path order."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not is_hidden(d))
        for f in sorted(filenames):
            if is_image(f, suffixes):
                yield Path(dirpath) / f


def relpath(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def sample_id(path: Path, root: Path) -> str:
    """Readable, stable id: the path relative to the data folder, without suffix."""
    return path.relative_to(root).with_suffix("").as_posix()


def check_unique(keys: Iterable[tuple[str, Path]], *, what: str) -> None:
    """Refuse two files with the same key (e.g. one image stored twice under the data folder)."""
    seen: dict[str, Path] = {}
    for key, path in keys:
        if key in seen:
            raise DataError(f"{what} {key!r} appears twice: {seen[key]} and {path}; point the data root at one copy")
        seen[key] = path


# -- raise or skip ------------------------------------------------------------------------------------------


class Skips:
    """A raise-or-skip policy: raise a :class:`DataError` on what breaks the layout, or skip it and count it.

    Subclasses say which option sets the policy, what is skipped (for the notes), how a refusal reads and how a
    skipped place is named.
    """

    option = ""
    what = ""

    def __init__(self, policy: str):
        self.policy = policy
        self.skipped: list[tuple[object, str]] = []

    def __call__(self, where, problem: str, message: str) -> None:
        """Report a problem at ``where``; ``problem`` is a short kind ("bad name"), ``message`` the full error."""
        if self.policy == "raise":
            raise DataError(self.refusal(message))
        self.skipped.append((where, problem))

    def refusal(self, message: str) -> str:
        return message

    def place(self, where) -> str:
        return str(where)

    def notes(self) -> list[str]:
        """One note counting the skipped problems by kind, with the first places (none when nothing was skipped)."""
        if not self.skipped:
            return []
        kinds = Counter(problem for _, problem in self.skipped)
        summary = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
        first = ", ".join(self.place(w) for w, _ in self.skipped[:3]) + (", ..." if len(self.skipped) > 3 else "")
        return [f"{len(self.skipped)} {self.what} skipped ({self.option}='skip'): {summary}; e.g. {first}"]


class BadFiles(Skips):
    """The ``on_bad_label`` policy for files under the data folder ``root`` (named relative to it in the notes)."""

    option, what = "on_bad_label", "file(s)"

    def __init__(self, policy: str, root: Path):
        super().__init__(policy)
        self.root = root

    def refusal(self, message: str) -> str:
        return f"{message} (or load with on_bad_label='skip' to skip such files)"

    def place(self, where) -> str:
        return relpath(where, self.root)


# -- the data set -------------------------------------------------------------------------------------------


def require_classes(name: str, samples: Iterable[Sample], classes: tuple[str, ...], where: Path) -> None:
    """Refuse a data set where fewer than two classes have samples, naming the folder."""
    present = sorted({s.label for s in samples})
    if len(present) < 2:
        raise DataError(
            f"data set {name!r} at {where}: found samples of {len(present)} class(es) "
            f"({', '.join(present) or 'none'}); at least two of {', '.join(classes)} are needed"
        )


def release_dataset(
    info: DatasetInfo,
    root: Path,
    *,
    fingerprint: str,
    samples: Iterable[Sample] = (),
    fields: Iterable[Field] = (),
    notes: Iterable[str] = (),
) -> Dataset:
    """The :class:`Dataset` of ``info`` (its name, classes and positive class) read from ``root``."""
    return Dataset(
        name=info.name,
        classes=info.classes,
        positive_class=info.positive_class,
        info=info,
        fingerprint=fingerprint,
        samples=tuple(samples),
        fields=tuple(fields),
        root=root,
        notes=tuple(notes),
    )


def make_dataset(info: DatasetInfo, root: Path, samples: Iterable[Sample], *, notes: Iterable[str] = ()) -> Dataset:
    """Sort samples by relative path, check ids and classes, fingerprint, and build the Dataset.

    Raises
    ------
    DataError
        If no samples were found, two files share an id, or fewer than two classes have samples.
    """
    samples = sorted(samples, key=lambda s: relpath(s.image_path, root))
    if not samples:
        raise DataError(f"data set {info.name!r}: no images found under {root}; expected {info.layout}")
    check_unique(((s.id, s.image_path) for s in samples), what="sample id")
    require_classes(info.name, samples, info.classes, root)
    return release_dataset(info, root, fingerprint=fingerprint_samples(samples), samples=samples, notes=notes)
