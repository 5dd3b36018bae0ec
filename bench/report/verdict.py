"""The verdict of a section as markdown: each arm's nested champion, the arms compared, the like-for-like table."""

from __future__ import annotations

import numpy as np

from cellbench.report.format import num, p_value, signed, table
from cellbench.stats.metrics import METRIC_LABELS
from cellbench.stats.nested import ARM_TITLES, ROPE, Verdict


def render_verdict(v: Verdict) -> list[str]:
    """The verdict section's lines: champions, comparisons with the handcrafted arm, like-for-like by strategy."""
    label = METRIC_LABELS.get(v.primary, v.primary)
    lines = [
        f"### Verdict — each arm's nested champion, {label} on the outer folds",
        "",
        "Per outer fold, each arm's champion is its model × strategy with the best inner-validation score (a model "
        "fitted on the inner training part of the training fold, scored on its inner validation part); no test "
        "fold chooses. The champions' test scores are then compared, paired over the folds.",
        "",
    ]
    rows = [
        [
            f"{c.arm} ({ARM_TITLES.get(c.arm, c.arm)})",
            num(c.mean),
            c.choices,
            f"⚠ {c.not_converged} fold(s) not converged" if c.not_converged else "",
        ]
        for c in sorted(v.champions, key=lambda c: -c.mean if np.isfinite(c.mean) else np.inf)
    ]
    lines += table(rows, ["arm", f"{label} (mean)", "chosen per fold by inner validation", "flags"])
    if v.comparisons:
        rows = []
        for c in v.comparisons:
            ci = f"{signed(c.ci_low)} to {signed(c.ci_high)}" if np.isfinite(c.ci_low) else "—"
            rows.append(
                [
                    f"{c.a} vs {c.b}",
                    f"**{c.wording()}**",
                    signed(c.diff),
                    ci,
                    p_value(c.boot_p),
                    p_value(c.t_p),
                    num(c.p_a_better, 2),
                    num(c.p_rope, 2),
                    num(c.p_b_better, 2),
                    c.folds,
                ]
            )
        lines += table(
            rows,
            ["comparison", "verdict", "Δ", "95% CI of Δ", "bootstrap p", "t-test p", "P(first better)",
             f"P(within ±{ROPE})", "P(second better)", "folds"],
        )  # fmt: skip
        clustered = all(c.clustered for c in v.comparisons)
        lines += [
            f"Δ = first − second in {label}. CI and bootstrap p: cluster bootstrap of the paired difference of the "
            f"pooled champion predictions, {'patients' if clustered else 'samples (patients unknown)'} resampled; "
            "t-test: corrected resampled t-test (Nadeau & Bengio 2003) of the per-fold scores; P: Bayesian "
            "correlated t-test. The verdict says \"no significant difference\" where the CI of Δ spans 0.",
            "",
        ]
    lf = v.like_for_like
    arms = [c for c in lf.columns if c != "strategy"]
    if len(lf) and len(arms) > 1:
        lines += [f"#### Like for like — each arm's nested champion under one strategy, {label}", ""]
        lines += table(
            [[r["strategy"], *(num(r.get(a)) for a in arms)] for r in lf.to_dict("records")], ["strategy", *arms]
        )
    lines += [f"- {n}" for n in v.notes] + ([""] if v.notes else [])
    return lines
