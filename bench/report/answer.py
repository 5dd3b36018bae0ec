"""The answer first: per (data set, extraction) the arms' nested champions, how they compare, the best imbalance
strategy per arm and the flags a reader must see — as records (:func:`answers`) and as the leaderboard's opening
table (:func:`render_answer`).

Everything comes from the section's :class:`cellbench.stats.nested.Verdict` (champions chosen by inner-validation
scores, compared on the outer folds) and its strategy-vs-``none`` paired tests; nothing is recomputed here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cellbench.report.format import num, p_value, signed, table
from cellbench.report.summary import Leaderboard, Section
from cellbench.stats.comparisons import ALPHA
from cellbench.stats.metrics import LOWER_IS_BETTER, METRIC_LABELS
from cellbench.stats.nested import ARM_TITLES, BASELINE

ZERO = 5e-4  # a difference below this shows as ±0.000: a strategy that gains less does not beat none


@dataclass(frozen=True, kw_only=True)
class ArmAnswer:
    """One arm of one section: its nested champion's mean outer score, the configuration chosen most often, the
    comparison with the handcrafted arm (``None`` for the handcrafted arm itself) and its best strategy.

    ``strategy`` is the strategy the champion's model scores best under; ``strategy_diff``/``strategy_p`` its
    paired difference from ``none`` and the corrected t-test's p (NaN where not tested); ``beats_none`` whether
    that difference is in the better direction with p < :data:`ALPHA`.
    """

    arm: str
    mean: float
    config: str
    folds: int
    not_converged: int
    verdict: str | None = None
    diff: float = np.nan
    ci_low: float = np.nan
    ci_high: float = np.nan
    boot_p: float = np.nan
    strategy: str = "none"
    strategy_diff: float = np.nan
    strategy_p: float = np.nan
    beats_none: bool = False


@dataclass(frozen=True, kw_only=True)
class Answer:
    """The answer for one (data set, extraction): its size, metric, each arm's :class:`ArmAnswer`, flags."""

    dataset: str
    extraction: str
    primary: str
    n_samples: int
    n_groups: int
    synthetic: bool
    arms: tuple[ArmAnswer, ...]
    flags: tuple[str, ...] = ()
    stain: str = "none"  # the stain normalisation both arms' images had (cellbench.run.stain)

    @property
    def label(self) -> str:
        """``synthetic`` or ``allidb1 (segmentation)``: the extraction named where it is not ``given``."""
        return self.dataset if self.extraction == "given" else f"{self.dataset} ({self.extraction})"

    def sentence(self) -> str:
        """The answer in plain words: the best arm, then each other arm against handcrafted features."""
        metric = METRIC_LABELS.get(self.primary, self.primary)
        if not self.arms:
            return "no finished jobs yet"
        lower = self.primary in LOWER_IS_BETTER
        best = sorted(self.arms, key=lambda a: (a.mean if lower else -a.mean) if np.isfinite(a.mean) else np.inf)[0]
        parts = [f"{ARM_TITLES.get(best.arm, best.arm)} scored best ({metric} {num(best.mean)})"]
        for a in self.arms:
            if a.verdict is None or not np.isfinite(a.diff):
                continue
            worse = (a.diff > 0) if lower else (a.diff < 0)
            side = f"{abs(a.diff):.3f} {'below' if worse else 'above'} handcrafted"
            ci = f"95% CI {signed(a.ci_low)} to {signed(a.ci_high)}" if np.isfinite(a.ci_low) else "no CI"
            real = "a real difference" if a.verdict != "no significant difference" else "not a significant difference"
            parts.append(f"{a.arm} {side}, {real} ({ci})")
        return "; ".join(parts) + "."


def answers(board: Leaderboard) -> tuple[Answer, ...]:
    """One :class:`Answer` per section of ``board`` (sections without a verdict give one without arms)."""
    return tuple(answer(s) for s in board.sections)


def answer(s: Section) -> Answer:
    """The :class:`Answer` of one section."""
    info = s.record
    arms: list[ArmAnswer] = []
    flags: list[str] = []
    if info.synthetic:
        flags.append("synthetic data")
    if not info.n_groups:
        flags.append("no patient ids: samples resampled")
    v = s.verdict
    if v is not None:
        comparisons = {c.a: c for c in v.comparisons if c.b == BASELINE}
        order = {arm: i for i, arm in enumerate(ARM_TITLES)}
        for c in sorted(v.champions, key=lambda c: order.get(c.arm, len(order))):
            counts = c.folds.groupby(["model", "strategy"]).size().sort_values(ascending=False, kind="stable")
            (model, strategy), n = next(iter(counts.items()))
            cmp = comparisons.get(c.arm)
            extra = {}
            if cmp is not None:
                extra = {"verdict": cmp.wording(), "diff": cmp.diff, "ci_low": cmp.ci_low, "ci_high": cmp.ci_high,
                         "boot_p": cmp.boot_p}  # fmt: skip
            arms.append(
                ArmAnswer(
                    arm=c.arm,
                    mean=c.mean,
                    config=f"{model} / {strategy}" + (f" ({n}/{len(c.folds)} folds)" if n < len(c.folds) else ""),
                    folds=len(c.folds),
                    not_converged=c.not_converged,
                    **extra,
                    **_best_strategy(s, model),
                )
            )
            if c.not_converged:
                flags.append(f"{c.arm}: {c.not_converged} fold(s) not converged")
    if any("inner split:" in n for n in s.notes):
        flags.append("inner split not patient-disjoint in some jobs")
    if s.stats is not None and s.table is not None and len(s.table):
        incomplete = int((s.table.folds_ok < s.table.folds).sum())
        if incomplete:
            flags.append(f"{incomplete} row(s) missing folds")
    if len(s.errors):
        flags.append(f"{len(s.errors)} failed job(s)")
    return Answer(
        dataset=s.dataset,
        extraction=s.extraction,
        primary=s.primary,
        n_samples=info.n_samples,
        n_groups=info.n_groups or 0,
        synthetic=bool(info.synthetic),
        arms=tuple(arms),
        flags=tuple(flags),
        stain=info.stain.split(" ", 1)[0] if info.stain else "none",
    )


def _best_strategy(s: Section, model: str) -> dict:
    """The strategy ``model`` scores best under (section table) and its paired test against ``none``."""
    t = s.table[s.table.model == model]
    if t.empty:
        return {}
    lower = s.primary in LOWER_IS_BETTER
    scores = dict(zip(t.strategy, t[f"{s.primary}_mean"]))
    top = min(scores.values()) if lower else max(scores.values())
    tied = [st for st, x in scores.items() if x == top]
    best = "none" if "none" in tied else tied[0]  # a tie with none: none stands
    out = {"strategy": best}
    v = s.strategy_vs_none
    if best != "none" and v is not None and len(v):
        row = v[(v.model == model) & (v.strategy == best)]
        if len(row):
            r = row.iloc[0]
            if abs(r["diff"]) < ZERO:  # shown as ±0.000: no gain over none
                return {"strategy": "none"}
            better = (r["diff"] < 0) if lower else (r["diff"] > 0)
            out |= {"strategy_diff": float(r["diff"]), "strategy_p": float(r["t_p"]),
                    "beats_none": bool(better and np.isfinite(r["t_p"]) and r["t_p"] < ALPHA)}  # fmt: skip
    return out


def answer_frame(items: Sequence[Answer]) -> pd.DataFrame:
    """The answers as one long table (one row per data set × extraction × arm), for export."""
    rows = []
    for a in items:
        for arm in a.arms:
            rows.append(
                {
                    "dataset": a.dataset,
                    "extraction": a.extraction,
                    "primary": a.primary,
                    "n_samples": a.n_samples,
                    "n_groups": a.n_groups,
                    "arm": arm.arm,
                    "mean": arm.mean,
                    "chosen": arm.config,
                    "verdict_vs_handcrafted": arm.verdict or "",
                    "diff_vs_handcrafted": arm.diff,
                    "ci_low": arm.ci_low,
                    "ci_high": arm.ci_high,
                    "bootstrap_p": arm.boot_p,
                    "best_strategy": arm.strategy,
                    "strategy_diff_vs_none": arm.strategy_diff,
                    "strategy_t_p": arm.strategy_p,
                    "strategy_beats_none": arm.beats_none,
                    "not_converged_folds": arm.not_converged,
                    "flags": "; ".join(a.flags),
                    "stain": a.stain,
                }
            )
    return pd.DataFrame(rows)


def arm_cell(arm: ArmAnswer | None) -> str:
    """``0.884 svm / smote``: an arm's champion score and configuration; ``—`` without one."""
    if arm is None:
        return "—"
    return f"{num(arm.mean)} {arm.config}" + (" ⚠" if arm.not_converged else "")


def verdict_cell(a: Answer) -> str:
    """Each non-handcrafted arm against handcrafted, in words, with Δ and its CI."""
    parts = []
    for arm in a.arms:
        if arm.verdict is None:
            continue
        ci = f" [{signed(arm.ci_low)}, {signed(arm.ci_high)}]" if np.isfinite(arm.ci_low) else ""
        parts.append(f"{arm.arm}: {arm.verdict} (Δ {signed(arm.diff)}{ci}, p {p_value(arm.boot_p)})")
    return "; ".join(parts) or "—"


def strategy_cell(a: Answer) -> str:
    """Per arm, its model's best strategy and whether it beats ``none``."""
    parts = []
    for arm in a.arms:
        if arm.strategy == "none":
            parts.append(f"{arm.arm}: none")
        elif np.isfinite(arm.strategy_diff):
            word = ", beats none" if arm.beats_none else ""
            parts.append(f"{arm.arm}: {arm.strategy} {signed(arm.strategy_diff)} (p {p_value(arm.strategy_p)}{word})")
        else:
            parts.append(f"{arm.arm}: {arm.strategy} (not tested against none)")
    return "; ".join(parts) or "—"


def shown_arms(items: Sequence[Answer]) -> list[str]:
    """The arms present in any answer, in the verdict's order."""
    present = {arm.arm for a in items for arm in a.arms}
    return [arm for arm in ARM_TITLES if arm in present] + sorted(present - set(ARM_TITLES))


def render_answer(board: Leaderboard) -> list[str]:
    """The leaderboard's opening: one row per (data set, extraction) with the verdict, in a few lines."""
    items = answers(board)
    if not items:
        return []
    arms = shown_arms(items)
    metrics = sorted({METRIC_LABELS.get(a.primary, a.primary) for a in items})
    rows = []
    for a in items:
        by_arm = {arm.arm: arm for arm in a.arms}
        size = f"{a.n_samples} / {a.n_groups or '—'}"
        rows.append(
            [f"**{a.label}**", size, METRIC_LABELS.get(a.primary, a.primary),
             *(arm_cell(by_arm.get(arm)) for arm in arms), verdict_cell(a), strategy_cell(a),
             "; ".join(a.flags) or "—"]
        )  # fmt: skip
    lines = [
        "## The answer",
        "",
        f"Each arm's champion (chosen per fold by inner validation, never by a test fold) and its mean "
        f"{', '.join(metrics)} on the test folds; *vs handcrafted*: the difference with its 95% patient-level "
        f"bootstrap CI and p; *best strategy*: the champion model's best imbalance strategy, its Δ vs `none` and "
        f"the corrected t-test's p (*beats none* where p < {ALPHA}; `none` where no strategy scores above it by "
        f"{ZERO} or more); ⚠: not converged.",
        "",
    ]
    lines += table(rows, ["data set", "samples / patients", "metric", *arms, "vs handcrafted", "best strategy",
                          "flags"])  # fmt: skip
    lines += [f"- **{a.label}**: {a.sentence()}" for a in items] + [""]
    return lines
