"""``cellbench paired A B``: two results folders run on the same folds, compared model by model and champion vs
champion.

Made for comparing two feature sets (or any two settings of one arm): run the same suite twice with one change
into two results folders, then compare. Per (data set, extraction) both hold, with the same folds: each model ×
strategy's per-fold primary metric (mean in A, in B, the difference and the corrected resampled t-test), and the
arm's nested champions (chosen per outer fold by inner-validation score, :func:`cellbench.stats.nested.compare_runs`)
with the patient-clustered bootstrap CI of the difference of their pooled predictions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from tabulate import tabulate

from cellbench.core.errors import ConfigError
from cellbench.core.values import as_float
from cellbench.report.format import num, p_value, signed
from cellbench.run.store import Store
from cellbench.stats import tests as stats
from cellbench.stats.nested import ARM_TITLES, BASELINE, compare_runs


def paired_report(a: Path, b: Path, *, arm: str = BASELINE) -> str:
    """The comparison of results folders ``a`` and ``b`` as markdown text.

    Raises
    ------
    ConfigError
        For an unknown ``arm`` (naming the known ones), or folders that share no (data set, extraction) with the
        same folds.
    """
    if arm not in ARM_TITLES:
        raise ConfigError(f"unknown arm {arm!r}; known arms: {', '.join(ARM_TITLES)}")
    with Store.open(a, write=False) as sa, Store.open(b, write=False) as sb:
        records_a, records_b = sa.data_sets(), sb.data_sets()
        out = [f"# Paired comparison: A = `{a}`, B = `{b}` ({ARM_TITLES[arm]})", ""]
        done = 0
        for coords in sorted(set(records_a) & set(records_b)):
            section = _section(sa, sb, records_a[coords], records_b[coords], arm=arm)
            if section:
                out += section
                done += 1
    if not done:
        raise ConfigError(f"{a} and {b} share no data set and extraction run on the same folds")
    return "\n".join(out)


def _natural(store: Store, dataset: str, extraction: str) -> pd.DataFrame:
    jobs = store.jobs(status="ok")
    jobs = jobs[(jobs.dataset == dataset) & (jobs.extraction == extraction) & (jobs.fold >= 0)]
    jobs = jobs[jobs.ratio == "natural"]
    # a coordinate run again under a new key: the newest result stands for it (as in the leaderboard)
    return jobs.sort_values(["written", "key"]).drop_duplicates(["model", "imbalance", "fold", "seed"], keep="last")


def _section(sa: Store, sb: Store, ra, rb, *, arm: str) -> list[str]:
    ja, jb = _natural(sa, ra.dataset, ra.extraction), _natural(sb, rb.dataset, rb.extraction)
    if ja.empty or jb.empty or set(ja.folds_key) != set(jb.folds_key) or len(set(ja.folds_key)) != 1:
        return []
    primary = ra.primary_metric
    lines = [f"## {ra.dataset} — extraction `{ra.extraction}`", ""]
    lines += [
        f"Primary metric {primary}; folds `{ja.folds_key.iloc[0]}` in both. A: {ra.n_features} features "
        f"({', '.join(ra.families) or 'families not recorded'}); B: {rb.n_features} features "
        f"({', '.join(rb.families) or 'families not recorded'}).",
        "",
    ]
    rows = []
    for (model, strategy), ga in ja.groupby(["model", "imbalance"], sort=True):
        gb = jb[(jb.model == model) & (jb.imbalance == strategy)]
        both = ga.merge(gb, on="fold", suffixes=("_a", "_b"))
        if len(both) < 2:
            continue
        sa_ = both.metrics_a.map(lambda m: as_float(m.get(primary))).to_numpy(float)
        sb_ = both.metrics_b.map(lambda m: as_float(m.get(primary))).to_numpy(float)
        n_train = float(np.nanmean([as_float(e.n_train) for e in both.extra_b]))
        n_test = float(np.nanmean([as_float(e.n_test) for e in both.extra_b]))
        t = stats.corrected_resampled_ttest(sa_, sb_, n_train=n_train, n_test=n_test)
        rows.append([model, strategy, len(both), num(np.nanmean(sa_)), num(np.nanmean(sb_)),
                     signed(np.nanmean(sa_ - sb_)), p_value(t.p_value)])  # fmt: skip
    lines += [tabulate(rows, headers=["model", "strategy", "folds", "A", "B", "A − B", "corrected t p"],
                       tablefmt="github"), ""]  # fmt: skip
    # job keys leave out the feature set, so both runs may hold the same keys: each run's are marked with its name
    preds = pd.concat(
        [
            sa.predictions(ja.key.tolist()).assign(job_key=lambda d: "A:" + d.job_key),
            sb.predictions(jb.key.tolist()).assign(job_key=lambda d: "B:" + d.job_key),
        ],
        ignore_index=True,
    )
    ja, jb = ja.assign(key="A:" + ja.key), jb.assign(key="B:" + jb.key)
    found = compare_runs(ja, jb, preds, sa.samples(ra.dataset, ra.extraction), primary=primary,
                         positive=ra.positive, n_classes=ra.n_classes, arm=arm, names=("A", "B"))  # fmt: skip
    if found is None:
        return [*lines, "No nested champion: jobs without inner-validation scores.", ""]
    ca, cb, cmp = found
    lines += [f"**Nested champion** — A: {num(ca.mean)} ({ca.choices}); B: {num(cb.mean)} ({cb.choices}).", ""]
    if cmp is not None:
        unit = "patients resampled" if cmp.clustered else "samples resampled (no patient ids)"
        lines += [
            f"A − B = {signed(cmp.diff)}, 95% bootstrap CI [{signed(cmp.ci_low)}, {signed(cmp.ci_high)}] of the "
            f"pooled champion predictions ({unit}; p {p_value(cmp.boot_p)}), corrected t p {p_value(cmp.t_p)}, "
            f"Bayesian P(A better) {num(cmp.p_a_better)}, P(rope) {num(cmp.p_rope)}, P(B better) "
            f"{num(cmp.p_b_better)}; {cmp.folds} folds: {cmp.wording()}.",
            "",
        ]
    return lines
