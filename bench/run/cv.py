"""Cross-validation folds, computed once per (data set, extraction, scheme, seed) and shared by every model.

Folds are patient-disjoint wherever groups are known, and a leakage guard refuses any split in which
a group appears on both sides.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, StratifiedShuffleSplit

from cellbench.core.errors import ConfigError, DataError
from cellbench.core.hashing import stable_hash

SCHEMES = ("auto", "stratified_kfold", "group_kfold", "predefined")


@dataclass(frozen=True, kw_only=True, eq=False)
class Folds:
    """Test-fold assignments over ``ids``: ``test[f]`` holds the positions of fold ``f``'s test samples.

    ``scheme`` is the resolved scheme (never ``auto``); ``description`` is a sentence for the leaderboard.
    """

    key: str
    scheme: str
    ids: tuple[str, ...]
    test: tuple[np.ndarray, ...]
    description: str
    n_splits: int
    repeats: int

    def train_test(self, fold: int) -> tuple[np.ndarray, np.ndarray]:
        test = self.test[fold]
        mask = np.ones(len(self.ids), bool)
        mask[test] = False
        return np.flatnonzero(mask), test

    def __len__(self) -> int:
        return len(self.test)


def resolve_scheme(scheme: str, *, has_groups: bool, has_predefined: bool) -> str:
    """Turn ``auto`` into predefined folds, group k-fold or stratified k-fold, in that order of preference."""
    if scheme not in SCHEMES:
        raise ConfigError(f"unknown CV scheme {scheme!r}; known schemes: {', '.join(SCHEMES)}")
    if scheme == "auto":
        return "predefined" if has_predefined else "group_kfold" if has_groups else "stratified_kfold"
    if scheme == "group_kfold" and not has_groups:
        raise ConfigError("CV scheme 'group_kfold' needs patient/group ids, and this data set has none")
    if scheme == "predefined" and not has_predefined:
        raise ConfigError("CV scheme 'predefined' needs predefined folds, and this data set has none")
    return scheme


def make_folds(
    *,
    ids: Sequence[str],
    y: np.ndarray,
    groups: Sequence[str | None] | None,
    predefined: Sequence[object] | None,
    scheme: str,
    n_splits: int = 5,
    repeats: int = 1,
    seed: int = 0,
    context: str = "",
    duplicates: Sequence[str | None] | None = None,
    group_kind: str | None = None,
    allow_duplicates_across_folds: bool = False,
) -> Folds:
    """Compute folds for samples with class indices ``y``.

    ``group_kind`` names what the groups are in the description ("field-disjoint" where the groups are fields,
    e.g. ALL-IDB1; patient-disjoint otherwise).

    ``duplicates`` gives each sample's content key (e.g. a hash of its pixels; ``None`` = unknown): samples
    with the same key are kept on the same side of every k-fold split, by merging their groups (or, without
    groups, the copies themselves) into one unit of the group-aware splitter. Predefined folds are kept as
    released, so copies of one image in two predefined folds (a copy trains the model that is tested on the other)
    are refused unless ``allow_duplicates_across_folds`` (the suite's ``[cv] allow_duplicates_across_folds``);
    the leaderboard then flags them.

    Raises
    ------
    DataError
        If there are too few samples or groups for ``n_splits``, a training part would hold a single
        class, or a group (or, for k-fold schemes, an image with a copy) would appear on both sides of a split.
    """
    y = np.asarray(y)
    ids = tuple(ids)
    has_groups = groups is not None and all(g is not None for g in groups)
    has_predefined = predefined is not None and all(p is not None for p in predefined)
    scheme = resolve_scheme(scheme, has_groups=has_groups, has_predefined=has_predefined)
    if n_splits < 2:
        raise ConfigError(f"folds must be at least 2, got {n_splits}")
    if repeats < 1:
        raise ConfigError(f"repeats must be at least 1, got {repeats}")
    grp = np.asarray(groups, dtype=object) if has_groups else None
    where = f" in {context}" if context else ""
    dup = _duplicate_units(duplicates, grp, len(y)) if duplicates is not None and scheme != "predefined" else None

    tests: list[np.ndarray] = []
    if scheme == "predefined":
        labels = np.asarray([str(p) for p in predefined], dtype=object)
        for value in sorted(set(labels)):
            tests.append(np.flatnonzero(labels == value))
        n_splits, repeats = len(tests), 1
        if n_splits < 2:
            raise DataError(f"predefined folds{where}: only one fold ({labels[0]}) found; at least 2 are needed")
        if duplicates is not None and not allow_duplicates_across_folds:
            _refuse_copies_across_folds(ids, labels, duplicates, where)
        description = f"predefined folds ({', '.join(sorted(set(labels)))}) from the data set's release"
    else:
        for rep in range(repeats):
            if dup is not None:  # copies of one image (and their groups) form one unit of the splitter
                units = dup if scheme == "group_kfold" else _duplicate_units(duplicates, None, len(y))
                tests.extend(_kfold(y, units, n_splits, seed + rep, where))
                continue
            tests.extend(_kfold(y, grp if scheme == "group_kfold" else None, n_splits, seed + rep, where))
        if scheme == "group_kfold":
            unit = group_kind if group_kind in ("field", "slide", "image") else "patient"
            description = (
                f"{unit}-disjoint StratifiedGroupKFold, {n_splits} folds × {repeats} repeat(s), seed {seed}, "
                f"{len(set(grp))} groups"
            )
        else:
            description = f"image-level StratifiedKFold, {n_splits} folds × {repeats} repeat(s), seed {seed}" + (
                "" if has_groups else " — no patient ids known, so cells of one patient may sit on both sides"
            )
    folds = Folds(
        key=stable_hash(
            {
                "ids": stable_hash(list(ids)),
                "y": y.tolist(),
                "groups": None if grp is None else grp.tolist(),
                "scheme": scheme,
                "n_splits": n_splits,
                "repeats": repeats,
                "seed": seed,
                "predefined": None if not has_predefined else [str(p) for p in predefined],
                # only when copies exist, so the keys of folds without duplicates stay as they were
                **({"duplicates": stable_hash(dup.tolist())} if dup is not None else {}),
            },
        ),
        scheme=scheme,
        ids=ids,
        test=tuple(np.sort(t) for t in tests),
        description=description,
        n_splits=n_splits,
        repeats=repeats,
    )
    if dup is not None:
        folds = replace(folds, description=folds.description + "; copies of an image kept on one side")
    check_folds(folds, y=y, groups=grp, context=context, duplicates=duplicates if dup is not None else None)
    return folds


def copies_across_folds(
    ids: Sequence[str], folds: Sequence[object], duplicates: Sequence[str | None]
) -> list[list[tuple[str, str]]]:
    """Sets of identical images (same content key) whose copies lie in different folds, as ``(id, fold)`` pairs."""
    sets: dict[str, list[int]] = {}
    for i, key in enumerate(duplicates):
        if key is not None:
            sets.setdefault(key, []).append(i)
    return [
        [(ids[i], str(folds[i])) for i in members]
        for members in sets.values()
        if len({str(folds[i]) for i in members}) > 1
    ]


def _refuse_copies_across_folds(ids, labels, duplicates, where: str) -> None:
    spans = copies_across_folds(ids, labels, duplicates)
    if not spans:
        return
    # each example pairs the set's first copy with its first copy in another fold (a set can hold several per fold)
    pairs = [(s[0], next(c for c in s if c[1] != s[0][1])) for s in spans[:3]]
    examples = "; ".join(" = ".join(f"{i} (fold {f})" for i, f in pair) for pair in pairs)
    raise DataError(
        f"predefined folds{where}: {len(spans)} image(s) have identical copies in different folds (e.g. {examples}); "
        "a model trained on one copy is tested on the other, so the scores would be optimistic. Remove the copies, "
        "or set [cv] allow_duplicates_across_folds = true to keep them as released (flagged in the leaderboard)"
    )


def _duplicate_units(duplicates: Sequence[str | None], groups: np.ndarray | None, n: int) -> np.ndarray | None:
    """Each sample's unit for a group-aware splitter: connected components of "same group" and "same content".

    Returns ``None`` when no content key is shared by two samples (nothing to merge).
    """
    keys = list(duplicates)
    if len(keys) != n:
        raise DataError(f"{len(keys)} content keys for {n} samples")
    seen: dict[str, int] = {}
    pairs = []
    for i, k in enumerate(keys):
        if k is None:
            continue
        if k in seen:
            pairs.append((seen[k], i))
        else:
            seen[k] = i
    if not pairs:
        return None

    rows, cols = [a for a, _ in pairs], [b for _, b in pairs]
    if groups is not None:  # link every sample to the first sample of its group
        first: dict[object, int] = {}
        for i, g in enumerate(groups):
            j = first.setdefault(g, i)
            if j != i:
                rows.append(j)
                cols.append(i)
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def _kfold(y, groups, n_splits, seed, where) -> list[np.ndarray]:

    counts = np.bincount(y)
    if groups is not None:
        n_groups = len(set(groups))
        if n_groups < n_splits:
            raise DataError(
                f"patient-disjoint CV{where} needs at least {n_splits} groups for {n_splits} folds; found {n_groups}. "
                "Lower the number of folds"
            )
        splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        return [test for _, test in splitter.split(np.zeros(len(y)), y, groups)]
    if counts[counts > 0].min() < n_splits:
        raise DataError(
            f"stratified {n_splits}-fold CV{where} needs at least {n_splits} samples of every class; "
            f"the smallest class has {int(counts[counts > 0].min())}. Lower the number of folds"
        )
    splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return [test for _, test in splitter.split(np.zeros(len(y)), y)]


def check_folds(
    folds: Folds,
    *,
    y: np.ndarray,
    groups: np.ndarray | None,
    context: str = "",
    duplicates: Sequence[str | None] | None = None,
) -> None:
    """The leakage guard and the single-class guard; raise a DataError naming the fold and group.

    With ``duplicates`` (content keys per sample) an image whose copy sits on the other side is leakage too.
    """
    keys = np.asarray(duplicates, dtype=object) if duplicates is not None else None
    where = f" in {context}" if context else ""
    for f in range(len(folds)):
        train, test = folds.train_test(f)
        if len(test) == 0:
            raise DataError(f"fold {f}{where} has no test samples; lower the number of folds")
        present = np.unique(y[train])
        if len(present) < 2:
            raise DataError(
                f"fold {f}{where} has a single class ({int(present[0]) if len(present) else 'none'}) in its "
                "training part; a model cannot be trained on it. Lower the number of folds or add data"
            )
        if groups is not None:
            shared = set(groups[train]) & set(groups[test])
            if shared:
                name = sorted(map(str, shared))[0]
                raise DataError(
                    f"leakage{where}: group {name!r} appears in both the training and the test part of fold {f} "
                    f"({len(shared)} shared group(s))"
                )
        if keys is not None:
            copies = {k for k in keys[train] if k is not None} & {k for k in keys[test] if k is not None}
            if copies:
                k = sorted(copies)[0]
                a, b = (folds.ids[i] for i in (train[keys[train] == k][0], test[keys[test] == k][0]))
                raise DataError(
                    f"leakage{where}: identical images {a!r} (training) and {b!r} (test) in fold {f} "
                    f"({len(copies)} image(s) with a copy on the other side)"
                )


def inner_split(
    y: np.ndarray, groups: np.ndarray | None, *, seed: int, val_fraction: float = 0.2
) -> list[tuple[np.ndarray, np.ndarray]]:
    """One stratified (and group-aware where groups are known) train/validation split of a training fold.

    Used for nested model selection, threshold tuning and early stopping: the test fold is never looked at. See
    :func:`inner_split_grouped` for whether the split kept the groups apart.
    """
    return inner_split_grouped(y, groups, seed=seed, val_fraction=val_fraction)[0]


def inner_split_grouped(
    y: np.ndarray, groups: np.ndarray | None, *, seed: int, val_fraction: float = 0.2
) -> tuple[list[tuple[np.ndarray, np.ndarray]], bool | None]:
    """:func:`inner_split` and whether it is group-disjoint (``None`` without groups).

    With groups, the first group-disjoint split holding both classes on each side is used; where there is none
    (too few patients, or each patient holds one class) the split falls back to a stratified split of samples,
    returned with ``False`` so that the leaderboard can say so.
    """

    def both_sides(tr, va) -> bool:
        return len(np.unique(y[va])) >= 2 and len(np.unique(y[tr])) >= 2

    n_splits = max(2, round(1 / val_fraction))
    if groups is not None and len(set(groups)) >= n_splits:
        splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        with warnings.catch_warnings():  # "least populated class has only k members": expected on small folds
            warnings.simplefilter("ignore", UserWarning)
            # the first group-disjoint split with both classes on each side (patients often hold one class)
            for tr, va in splitter.split(np.zeros(len(y)), y, groups):
                if both_sides(tr, va):
                    return [(np.sort(tr), np.sort(va))], True
    splitter = StratifiedShuffleSplit(n_splits=1, test_size=val_fraction, random_state=seed)
    tr, va = next(splitter.split(np.zeros(len(y)), y))
    return [(np.sort(tr), np.sort(va))], (None if groups is None else False)
