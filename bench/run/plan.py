"""Planning a suite: one job per coordinate (data set × extraction × model × strategy × ratio × fold)."""

from __future__ import annotations

from collections.abc import Sequence

from cellbench.core.types import ImbalanceSpec, Job, ModelSpec
from cellbench.models import MODELS, STRATEGIES, applicable
from cellbench.models.embeddings import HEAD_INPUT_DTYPE, embedding_id
from cellbench.run.external import add_external_jobs
from cellbench.run.final import add_final_jobs
from cellbench.run.jobs import WorkItem
from cellbench.run.prepare import Prepared
from cellbench.run.suite import Suite, model_spec


def plan(suite: Suite, prepared: Sequence[Prepared]) -> tuple[list[WorkItem], list[str]]:
    """Expand the suite over the prepared data: one job per coordinate, plus notes on skipped combinations.

    Data sets with an external test set also get one refit job per model × strategy
    (:func:`cellbench.run.external.add_external_jobs`), and so do all data sets of a suite with final models
    (:func:`cellbench.run.final.add_final_jobs`).
    """
    items: list[WorkItem] = []
    notes: list[str] = []
    seen: set[str] = set()

    def add(p: Prepared, model: str, strategy: str, ratio: str | None) -> None:
        ok, why = applicable(model, strategy)
        if not ok:
            note = f"{model} × {strategy}: not run — {why}"
            if note not in notes:
                notes.append(note)
            return
        spec = model_spec(suite, model)
        strat = ImbalanceSpec(name=strategy, params=dict(STRATEGIES[strategy].resolve({})))
        explain = (
            ratio is None
            and model in suite.explain_models
            and strategy in suite.explain_strategies
            and MODELS[model].kind == "classical"
        )
        for fold in range(len(p.folds)):
            job = Job(
                explain=explain,
                suite=suite.name,
                dataset=p.dataset,
                extraction=p.extraction,
                model=spec,
                imbalance=strat,
                fold=fold,
                seed=suite.seed,
                cv=p.folds.scheme,
                ratio=ratio,
                data_fingerprint=p.fingerprint,
                folds_key=p.folds.key,
                inputs=inputs_key(spec, p),
                features=p.features if spec.input in ("features", "combined") else "",
                stain=p.stain,
            )
            if job.key not in seen:
                seen.add(job.key)
                items.append((job, str(p.task_path)))

    for p in prepared:
        for model in suite.models:
            deep = MODELS[model].kind == "deep"
            for strategy in (suite.deep_strategies or suite.strategies) if deep else suite.strategies:
                add(p, model, strategy, None)
        if suite.sweep_ratios:
            if p.record.positive_class is None or len(p.record.classes) != 2:
                notes.append(f"{p.dataset}: imbalance sweep skipped — it applies to binary tasks only")
                continue
            for model in suite.models if suite.sweep_models is None else suite.sweep_models:
                for strategy in suite.sweep_strategies:
                    for ratio in suite.sweep_ratios:
                        add(p, model, strategy, ratio)
    items = add_external_jobs(items, prepared)
    return (add_final_jobs(items, prepared) if suite.final else items), notes


def input_name(spec: ModelSpec) -> str:
    """The task embedding an embedding head reads (:attr:`TaskData.embeddings` key); ``""`` for other models."""
    if spec.input == "user_embeddings" or (spec.input == "combined" and spec.params["embedder"] == "user"):
        return "user"
    if spec.input in ("embeddings", "combined"):
        return embedding_id(spec.params)
    return ""


def inputs_key(spec: ModelSpec, p: Prepared) -> str:
    """The cache key of the embeddings ``spec`` reads in ``p`` (part of its job key), ``""`` for other models."""
    name = input_name(spec)
    # ":float32": the heads read embeddings as computed, in float32 (they were read as float64 before)
    return f"{p.inputs[name]}:{HEAD_INPUT_DTYPE}" if name else ""
