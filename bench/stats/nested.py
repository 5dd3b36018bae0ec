"""The classical-vs-deep verdict by nested model selection: no test fold chooses a champion.

Every job stores its inner-validation score (a model fitted on the inner training part of its training fold,
scored on the inner validation part; see :mod:`cellbench.run.jobs`). Per outer fold, an *arm*'s champion is its
configuration (model × strategy) with the best inner-validation score of the primary metric (nested selection,
Cawley & Talbot 2010); its score on that outer fold's test part is the arm's score there. Arms are then compared
on the outer folds, paired: the difference of their mean scores, a patient-level cluster bootstrap CI of the
difference of their pooled champion predictions, the corrected resampled t-test and the Bayesian correlated
t-test of the per-fold scores.

Arms follow what a model reads (:data:`ARMS`): handcrafted features + classical models; deep models trained end
to end on pixels; heads on frozen-backbone embeddings; heads on the user's embeddings; heads on both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from cellbench.core.values import as_float
from cellbench.models import MODELS
from cellbench.stats import tests as stats
from cellbench.stats.metrics import LOWER_IS_BETTER, metric_function

# what a model reads -> its arm, in the order the verdict lists them
ARMS = {
    "features": "handcrafted",
    "pixels": "deep",
    "embeddings": "embedding",
    "user_embeddings": "user embedding",
    "combined": "combined",
}
ARM_TITLES = {
    "handcrafted": "handcrafted features + classical model",
    "deep": "deep model trained end to end",
    "embedding": "frozen ImageNet embeddings + head",
    "user embedding": "user embeddings + head",
    "combined": "handcrafted ∥ embeddings + head",
}
BASELINE = "handcrafted"
N_BOOT = 1000
ROPE = stats.ROPE


def arm_of(model: str, kind: str = "classical") -> str:
    """The arm of ``model`` (models no longer in the catalog: by their stored ``kind``)."""
    if model in MODELS:
        return ARMS[MODELS[model].input]
    return "deep" if kind == "deep" else BASELINE


@dataclass(frozen=True, kw_only=True, eq=False)
class Champion:
    """An arm's nested champions: per outer fold the chosen model × strategy, its inner and outer scores.

    ``folds`` has columns fold, model, strategy, key, inner, outer, converged; ``mean`` is the mean outer score.
    """

    arm: str
    folds: pd.DataFrame
    mean: float

    @property
    def choices(self) -> str:
        """``svm / smote (3 folds), knn / none (2 folds)``: which configurations the inner scores chose."""
        counts = self.folds.groupby(["model", "strategy"]).size().sort_values(ascending=False)
        return ", ".join(f"{m} / {s} ({n} fold{'s' if n > 1 else ''})" for (m, s), n in counts.items())

    @property
    def not_converged(self) -> int:
        """Folds whose chosen deep model stopped at ``max_epochs`` while still improving."""
        return int((self.folds.converged == False).sum())  # noqa: E712 (None: not a deep model)


@dataclass(frozen=True, kw_only=True)
class ArmComparison:
    """Arm ``a`` vs arm ``b`` over the outer folds both have: difference a - b in the primary metric and its tests.

    ``ci_low``/``ci_high`` bound the difference by a cluster bootstrap of the pooled champion predictions (patients
    resampled when known, ``clustered``); ``boot_p`` its two-sided p; ``t_p`` the corrected resampled t-test;
    ``p_a_better``/``p_rope``/``p_b_better`` the Bayesian correlated t-test.
    """

    a: str
    b: str
    mean_a: float
    mean_b: float
    diff: float
    ci_low: float
    ci_high: float
    boot_p: float
    clustered: bool
    lower_is_better: bool
    t_p: float
    p_a_better: float
    p_rope: float
    p_b_better: float
    folds: int

    @property
    def significant(self) -> bool:
        """Whether the bootstrap CI of the difference excludes 0."""
        return bool(np.isfinite(self.ci_low) and (self.ci_low > 0 or self.ci_high < 0))

    def wording(self) -> str:
        """``deep better by 0.031`` or ``no significant difference``, from the CI of the difference."""
        if not self.significant:
            return "no significant difference"
        better = self.a if (self.diff > 0) != self.lower_is_better else self.b
        return f"{better} better by {abs(self.diff):.3f}"


@dataclass(frozen=True, kw_only=True, eq=False)
class Verdict:
    """The nested champions of every arm present, their comparisons with the baseline arm, a like-for-like table.

    ``like_for_like`` has one row per strategy and one column per arm: the mean outer score of the arm's nested
    champion among its models under that strategy only.
    """

    primary: str
    champions: tuple[Champion, ...]
    comparisons: tuple[ArmComparison, ...]
    like_for_like: pd.DataFrame
    notes: tuple[str, ...] = field(default_factory=tuple)

    def champion(self, arm: str) -> Champion | None:
        return next((c for c in self.champions if c.arm == arm), None)


def nested_verdict(
    ok: pd.DataFrame,
    preds: pd.DataFrame,
    samples: pd.DataFrame,
    *,
    primary: str,
    positive: int | None,
    n_classes: int,
) -> Verdict | None:
    """The verdict of one (data set, extraction) from its finished natural-ratio CV jobs and their predictions.

    ``None`` when no arm has jobs with stored inner-validation scores (stores written before they were recorded).
    """
    if ok.empty:
        return None
    ok = ok.assign(arm=[arm_of(m, k) for m, k in zip(ok.model, ok.kind)])
    notes = []
    without = ok[ok.extra.map(lambda e: not e.inner or primary not in e.inner)]
    if len(without):
        notes.append(
            f"{len(without)} job(s) without an inner-validation {primary} (stored before it was recorded) are left "
            "out of the nested selection"
        )
    scored = ok.drop(without.index)
    champions = arm_champions(scored, primary=primary)
    if not champions:
        return None
    base = next((c for c in champions if c.arm == BASELINE), None)
    comparisons = ()
    if base is not None:
        comparisons = tuple(
            _compare(c, base, ok, preds, samples, primary=primary, positive=positive, n_classes=n_classes)
            for c in champions
            if c.arm != BASELINE
        )
    notes += [f"{c.arm}: the chosen deep model did not converge on {c.not_converged} fold(s)"
              for c in champions if c.not_converged]  # fmt: skip
    return Verdict(
        primary=primary,
        champions=champions,
        comparisons=tuple(c for c in comparisons if c is not None),
        like_for_like=_like_for_like(scored, primary=primary),
        notes=tuple(notes),
    )


def compare_runs(
    jobs_a: pd.DataFrame,
    jobs_b: pd.DataFrame,
    preds: pd.DataFrame,
    samples: pd.DataFrame,
    *,
    primary: str,
    positive: int | None,
    n_classes: int,
    arm: str = BASELINE,
    names: tuple[str, str] = ("a", "b"),
) -> tuple[Champion, Champion, ArmComparison | None] | None:
    """One arm's nested champion in two runs on the same folds (e.g. two feature sets), compared a - b.

    ``jobs_a``/``jobs_b`` are finished natural-ratio CV jobs of one (data set, extraction) from each run, ``preds``
    the predictions of both. ``None`` when either run has no job of ``arm`` with an inner-validation score.
    """
    found = []
    for jobs, name in zip((jobs_a, jobs_b), names):
        jobs = jobs[[arm_of(m, k) == arm for m, k in zip(jobs.model, jobs.kind)]]
        jobs = jobs[jobs.extra.map(lambda e: bool(e.inner) and primary in e.inner)]
        champion = _champion(jobs, name, primary=primary)
        if champion is None:
            return None
        found.append(champion)
    a, b = found
    both = pd.concat([jobs_a, jobs_b], ignore_index=True)
    return a, b, _compare(a, b, both, preds, samples, primary=primary, positive=positive, n_classes=n_classes)


def arm_champions(jobs: pd.DataFrame, *, primary: str) -> tuple[Champion, ...]:
    """Each arm's :class:`Champion` among stored ``jobs`` (rows of :meth:`cellbench.run.store.Store.jobs`), in
    :data:`ARMS` order: per fold the job with the best inner-validation ``primary``.

    The final models (:mod:`cellbench.run.final`) apply the same rule to the refits on the whole development set,
    whose one "fold" is -1.
    """
    if jobs.empty:
        return ()
    arms = pd.Series([arm_of(m, k) for m, k in zip(jobs.model, jobs.kind)], index=jobs.index)
    return tuple(
        c
        for arm in dict.fromkeys(ARMS.values())
        if (c := _champion(jobs[arms == arm], arm, primary=primary)) is not None
    )


def _champion(jobs: pd.DataFrame, arm: str, *, primary: str) -> Champion | None:
    """Per fold, the job with the best inner-validation score (ties: the first model × strategy by name)."""
    if jobs.empty:
        return None
    sign = -1.0 if primary in LOWER_IS_BETTER else 1.0
    rows = []
    for fold, grp in jobs.groupby("fold", sort=True):
        inner = grp.extra.map(lambda e: as_float(e.inner.get(primary)))
        grp = grp.assign(_inner=inner, _key=-sign * inner).dropna(subset=["_inner"])
        if grp.empty:
            continue
        best = grp.sort_values(["_key", "model", "imbalance"]).iloc[0]
        rows.append(
            {
                "fold": int(fold),
                "model": best.model,
                "strategy": best.imbalance,
                "key": best.key,
                "inner": float(best._inner),
                "outer": as_float(best.metrics.get(primary)),
                "converged": best.extra.converged,
            }
        )
    if not rows:
        return None
    folds = pd.DataFrame(rows)
    return Champion(arm=arm, folds=folds, mean=float(np.nanmean(folds.outer)))


def _compare(a: Champion, b: Champion, ok: pd.DataFrame, preds: pd.DataFrame, samples: pd.DataFrame, *,
             primary: str, positive: int | None, n_classes: int) -> ArmComparison | None:  # fmt: skip
    """Arm ``a`` vs arm ``b`` on their common outer folds."""
    fa, fb = a.folds.set_index("fold"), b.folds.set_index("fold")
    common = fa.index.intersection(fb.index)
    if len(common) < 2:
        return None
    sa, sb = fa.outer.loc[common].to_numpy(float), fb.outer.loc[common].to_numpy(float)
    sign = -1.0 if primary in LOWER_IS_BETTER else 1.0
    sizes = ok[ok.key.isin(fb.key.loc[common])].extra
    n_train = float(np.nanmean([as_float(e.n_train) for e in sizes]))
    n_test = float(np.nanmean([as_float(e.n_test) for e in sizes]))
    t = stats.corrected_resampled_ttest(sign * sa, sign * sb, n_train=n_train, n_test=n_test)
    bay = stats.bayesian_correlated_ttest(sign * sa, sign * sb, rho=n_test / (n_train + n_test), rope=ROPE)
    boot = _bootstrap(fa.key.loc[common], fb.key.loc[common], preds, samples, primary=primary, positive=positive,
                      n_classes=n_classes)  # fmt: skip
    return ArmComparison(
        a=a.arm,
        b=b.arm,
        mean_a=float(np.nanmean(sa)),
        mean_b=float(np.nanmean(sb)),
        diff=float(np.nanmean(sa) - np.nanmean(sb)),
        ci_low=boot.ci_low if boot else float("nan"),
        ci_high=boot.ci_high if boot else float("nan"),
        boot_p=boot.p_value if boot else float("nan"),
        clustered=bool(boot.clustered) if boot else False,
        lower_is_better=primary in LOWER_IS_BETTER,
        t_p=t.p_value,
        p_a_better=bay["p_left"],
        p_rope=bay["p_rope"],
        p_b_better=bay["p_right"],
        folds=len(common),
    )


def _pooled(keys: Sequence[str], preds: pd.DataFrame) -> pd.DataFrame:
    """The champions' test predictions over the folds, one row per sample (its first fold: the first repeat)."""
    order = {k: i for i, k in enumerate(keys)}
    sub = preds[preds.job_key.isin(order)].assign(_order=lambda d: d.job_key.map(order))
    return sub.sort_values(["_order", "sample_id"]).drop_duplicates("sample_id").set_index("sample_id")


def _bootstrap(keys_a, keys_b, preds: pd.DataFrame, samples: pd.DataFrame, *, primary: str, positive: int | None,
               n_classes: int):  # fmt: skip
    """Cluster bootstrap of the difference in ``primary`` between the pooled champion predictions of two arms."""
    pa, pb = _pooled(list(keys_a), preds), _pooled(list(keys_b), preds)
    ids = pa.index.intersection(pb.index).sort_values()
    if not len(ids):
        return None
    pa, pb = pa.loc[ids], pb.loc[ids]
    packed_a = np.c_[pa.y_pred.to_numpy(int), np.vstack(pa.proba.to_numpy())]
    packed_b = np.c_[pb.y_pred.to_numpy(int), np.vstack(pb.proba.to_numpy())]
    groups = dict(zip(samples.sample_id, samples.grp)) if len(samples) else {}
    g = np.array([groups.get(i) for i in ids], dtype=object)
    return stats.paired_bootstrap(
        pa.y_true.to_numpy(int),
        packed_a,
        packed_b,
        metric_function(primary, positive=positive, n_classes=n_classes),
        groups=g if all(x is not None for x in g) else None,
        n_resamples=N_BOOT,
        seed=0,
    )


def _like_for_like(scored: pd.DataFrame, *, primary: str) -> pd.DataFrame:
    """Per strategy, each arm's nested champion among its models under that strategy only (mean outer score)."""
    rows = []
    for strategy in sorted(scored.imbalance.unique()):
        row = {"strategy": strategy}
        sub = scored[scored.imbalance == strategy]
        for arm in dict.fromkeys(ARMS.values()):
            c = _champion(sub[sub.arm == arm], arm, primary=primary)
            if c is not None:
                row[arm] = c.mean
        rows.append(row)
    return pd.DataFrame(rows)
