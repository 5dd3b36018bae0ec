"""Deterministic, group-wise subsampling for quick runs (``--max-per-class N``, ``--max-groups N``).

Whole groups (patients, slides) are kept or dropped, never split, so a subsample keeps the data's
patient structure and patient-disjoint CV stays meaningful. Without group ids every sample is its own
group. The choice depends only on the sample and group ids and the seed (the suite's): groups are visited
in a seeded random order of their sorted ids.

- ``max_groups=N`` keeps N groups (all when there are fewer). Where the release has predefined folds
  (PCam's, MedMNIST's splits) the N are shared out over the folds in proportion to their groups (at least
  one each when N allows), and within a fold every class is covered first when it can be.
- ``max_per_class=N`` keeps, per class, at most N samples: groups are taken in the seeded order when all
  their samples still fit under every class's cap, else skipped. Large groups can leave a class short of N
  (the note says what was kept); for data with big slides, combine it with ``max_groups``. With predefined
  folds each fold first keeps one group that fits the overall cap, then each class's cap is shared out over
  the folds in proportion to their samples of that class.

Both together: groups first, then the per-class cap among them. The result's fingerprint differs from the
full data's, so caches never mix, and the leaderboard gets a note that a subsample was used.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from cellbench.core.errors import ConfigError
from cellbench.core.hashing import stable_hash
from cellbench.core.types import Dataset, Sample

_STREAM = 0x5EB5  # seeds the subsample's random stream apart from other uses of the suite seed


def check_limit(name: str, value: int | None) -> int | None:
    """A valid limit: None or a positive integer."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return value


def _unit(s: Sample) -> str:
    return f"g:{s.group}" if s.group is not None else f"s:{s.id}"


def _largest_remainder(total: int, weights: Sequence[int], *, at_least_one: bool = False) -> list[int]:
    weights = list(weights)
    if not weights or total <= 0 or sum(weights) == 0:
        return [0] * len(weights)
    if at_least_one and total >= len(weights):
        base = [1] * len(weights)
        rest = _largest_remainder(total - len(weights), [max(w - 1, 0) for w in weights])
        return [b + r for b, r in zip(base, rest)]
    raw = [total * w / sum(weights) for w in weights]
    out = [int(r) for r in raw]
    for i in sorted(range(len(raw)), key=lambda i: (out[i] - raw[i], i))[: total - sum(out)]:
        out[i] += 1
    return out


def subsample(
    samples: Sequence[Sample],
    *,
    max_per_class: int | None = None,
    max_groups: int | None = None,
    seed: int = 0,
    classes: Sequence[str] = (),
) -> tuple[list[Sample], list[str]]:
    """The kept samples (in their original order) and notes saying what was done.

    Parameters
    ----------
    max_per_class, max_groups
        Limits (``None`` = no limit); see the module docstring.
    seed
        The suite seed: the same seed and ids give the same subsample.
    classes
        Class order, for the notes and for covering classes first (default: sorted labels).
    """
    max_per_class = check_limit("--max-per-class", max_per_class)
    max_groups = check_limit("--max-groups", max_groups)
    samples = list(samples)
    if not samples or (max_per_class is None and max_groups is None):
        return samples, []
    classes = list(classes) or sorted({s.label for s in samples})
    has_groups = all(s.group is not None for s in samples)
    predefined = all(s.meta.get("fold") is not None for s in samples)
    stratum = [str(s.meta["fold"]) if predefined else "" for s in samples]
    rng = np.random.default_rng([seed, _STREAM])
    units = sorted({_unit(s) for s in samples})
    order = {u: r for r, u in enumerate(rng.permutation(len(units)).tolist())}
    rank = {u: order[i] for i, u in enumerate(units)}

    members: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, s in enumerate(samples):
        members[(stratum[i], _unit(s))].append(i)
    strata = sorted(set(stratum))
    by_stratum = {st: sorted((u for (t, u) in members if t == st), key=rank.__getitem__) for st in strata}
    notes: list[str] = []
    keep = set(range(len(samples)))

    if max_groups is not None and not has_groups:
        notes.append(f"--max-groups {max_groups} ignored: this data set has no group ids (use --max-per-class)")
    elif max_groups is not None and len(units) > max_groups:
        quotas = _largest_remainder(max_groups, [len(by_stratum[st]) for st in strata], at_least_one=True)
        chosen: set[tuple[str, str]] = set()
        for st, quota in zip(strata, quotas):
            chosen |= {(st, u) for u in _cover_then_fill(by_stratum[st], quota, st, members, samples, classes)}
        keep = {i for key in chosen for i in members[key]}

    if max_per_class is not None:
        counts = Counter((stratum[i], samples[i].label) for i in keep)
        caps: dict[tuple[str, str], int] = {}
        for c in classes:
            shares = _largest_remainder(max_per_class, [counts[(st, c)] for st in strata])
            caps.update({(st, c): min(q, counts[(st, c)]) for st, q in zip(strata, shares)})
        taken: Counter = Counter()  # (stratum, class) -> samples kept
        total: Counter = Counter()  # class -> samples kept
        kept: set[int] = set()
        done: set[tuple[str, str]] = set()

        def take(st: str, u: str, *, share: bool) -> bool:
            rows = [i for i in members[(st, u)] if i in keep]
            need = Counter(samples[i].label for i in rows)
            if not rows or any(total[c] + n > max_per_class for c, n in need.items()):
                return False
            if share and any(taken[(st, c)] + n > caps.get((st, c), 0) for c, n in need.items()):
                return False
            taken.update({(st, c): n for c, n in need.items()})
            total.update(need)
            kept.update(rows)
            done.add((st, u))
            return True

        if len(strata) > 1:  # every predefined fold keeps at least one group that fits the overall cap
            for st in strata:
                next((u for u in by_stratum[st] if take(st, u, share=False)), None)
        for st in strata:
            for u in by_stratum[st]:
                if (st, u) not in done:
                    take(st, u, share=True)
        keep = kept

    out = [s for i, s in enumerate(samples) if i in keep]
    if len(out) == len(samples) and not notes:
        return samples, []
    if len(out) < len(samples):
        counts = Counter(s.label for s in out)
        n_units, n_all = len({_unit(s) for s in out}), len(units)
        limits = ", ".join(
            f"{flag} {v}" for flag, v in (("--max-groups", max_groups), ("--max-per-class", max_per_class)) if v
        )
        what = f"{n_units} of {n_all} groups kept whole" if has_groups else "image-level (no group ids)"
        notes.append(
            f"SUBSAMPLE for a quick run ({limits}, seed {seed}): {len(out)} of {len(samples)} samples, {what}; "
            f"{', '.join(f'{c} {counts.get(c, 0)}' for c in classes)}; scores are not those of the full data set"
        )
        short = [c for c in classes if max_per_class and counts.get(c, 0) < max_per_class // 2]
        if short:
            notes.append(
                f"class(es) {', '.join(short)} got fewer than half of --max-per-class {max_per_class}: their groups "
                "are larger than the cap allows (add --max-groups or raise the cap)"
            )
    return out, notes


def _cover_then_fill(units, quota, st, members, samples, classes) -> list[str]:
    """``quota`` units from ``units`` (in order), first one unit for each class not yet covered."""
    chosen: list[str] = []
    covered: set[str] = set()
    for c in classes:
        if len(chosen) >= quota or c in covered:
            continue
        for u in units:
            labels = {samples[i].label for i in members[(st, u)]}
            if c in labels and u not in chosen:
                chosen.append(u)
                covered |= labels
                break
    for u in units:
        if len(chosen) >= quota:
            break
        if u not in chosen:
            chosen.append(u)
    return chosen


def subsample_dataset(
    dataset: Dataset, *, max_per_class: int | None = None, max_groups: int | None = None, seed: int = 0
) -> Dataset:
    """``dataset`` with its samples subsampled (:func:`subsample`), a new fingerprint and the notes added.

    Fields (whole images) are kept for the groups that remain where groups are known.
    """
    kept, notes = subsample(
        dataset.samples, max_per_class=max_per_class, max_groups=max_groups, seed=seed, classes=dataset.classes
    )
    if not notes:
        return dataset
    fields = dataset.fields
    if fields and len(kept) < len(dataset.samples) and dataset.has_groups:
        groups = {s.group for s in kept}
        fields = tuple(f for f in fields if f.group in groups)
    fingerprint = stable_hash(
        {
            "data": dataset.fingerprint,
            "max_per_class": max_per_class,
            "max_groups": max_groups,
            "seed": seed,
            "ids": stable_hash([s.id for s in kept]),
        }
    )
    return replace(
        dataset, samples=tuple(kept), fields=fields, fingerprint=fingerprint, notes=(*dataset.notes, *notes)
    )
