"""The command line: ``cellbench run|leaderboard|export|compare|predict|app|explain|datasets|extract`` (or
``python -m bench``).

Each command has a parser builder (``_add_<command>``) and a function ``cmd_<command>(args)`` that returns the
exit status. Errors the user can fix (:class:`cellbench.core.errors.CellbenchError`) are printed as one line.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import sqlite3
import sys
from importlib import metadata
from pathlib import Path

from tabulate import tabulate

from cellbench import __version__
from cellbench.core import paths
from cellbench.core.errors import ON_BAD_IMAGE, CellbenchError, ConfigError
from cellbench.datasets import DATASETS, load_dataset, locate
from cellbench.datasets.cards import render_card
from cellbench.datasets.verify import parse_options, verify
from cellbench.report.export import FORMATS, check_format, export_results
from cellbench.report.leaderboard import write_leaderboard
from cellbench.report.summary import summarise
from cellbench.run.runner import RunSummary, run_suite
from cellbench.run.schema import schema_markdown
from cellbench.run.selection import missing_store_error
from cellbench.run.selection import results_folder as selected_folder
from cellbench.run.store import STORE_NAME, Store
from cellbench.run.suite import load_suite, suite_path
from cellbench.tools.explain import ExplainOptions, explain_suite
from cellbench.tools.extract import extract_to_folder
from cellbench.tools.paired import paired_report
from cellbench.tools.predict import find_finals, find_saved, predict_finals, predict_images
from cellbench.tools.repro import compare_stores, reproduce

PREDICT = (  # (help, description) of the commands whose page says more than one line
    "class and probability per image from each arm's final model (or a saved fold model)",
    "Predict new images with the final models of a run with --final (one row per image and arm), or with one "
    "model file given by --model (a final model, or a fold model saved by `save_models = true`). Classical models "
    "extract the handcrafted features first, deep models fit the pixels to their input size, both as in training.",
)
APP = (
    "a local web page (127.0.0.1) to upload images and see each final model's class, probability and explanation",
    "Starts a Gradio page on 127.0.0.1 for the final models of a run with --final: upload an image, see each arm's "
    "class and probability (as `predict` prints them), the deep champion's Grad-CAM and the classical champion's "
    "top features. Stop it with Ctrl-C.",
)
EXPLAIN = (
    "CAM gallery of a deep fold model (Grad-CAM, HiResCAM, guided variants), linked from the leaderboard",
    "Maps of a deep model's class logit for correctly and wrongly classified test cells of one fold, a "
    "model-randomisation sanity check and, where nucleus masks exist, the share of each map's energy in the nucleus. "
    "Uses the fold model a run saved (save_models = true), else retrains that fold exactly as the run did and saves "
    "it. Writes <results>/<suite>/figures/explain-*.png and .json.",
)


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def version() -> str:
    """The installed distribution's version (the package's own when run from an uninstalled copy)."""
    try:
        return metadata.version("cellbench")
    except metadata.PackageNotFoundError:
        return __version__


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cellbench",
        description="cellbench: paired, patient-disjoint benchmarks of handcrafted-feature models and CNNs "
        "on cell and tissue microscopy.",
    )
    p.add_argument("--version", action="version", version=f"cellbench {version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (
        _add_run,
        _add_leaderboard,
        _add_export,
        _add_compare,
        _add_paired,
        _add_predict,
        _add_app,
        _add_explain,
        _add_datasets,
        _add_extract,
    ):
        add(sub)
    return p


def _add_run(sub) -> None:
    run = sub.add_parser("run", help="run a suite (resumes: jobs already stored are skipped)")
    run.add_argument(
        "--suite", default="quick", help="built-in suite name (smoke, quick, full) or a .toml path [quick]"
    )
    run.add_argument("--models", type=_csv, help="comma-separated models to run instead of the suite's")
    run.add_argument("--strategies", type=_csv, help="comma-separated imbalance strategies instead of the suite's")
    run.add_argument("--folds", type=int, help="number of CV folds (overrides the suite; ignored for predefined folds)")
    run.add_argument("--seed", type=int, help="suite seed (overrides the suite)")
    _add_selection(run)
    run.add_argument(
        "--final",
        action="store_true",
        help="after the CV grid, refit each arm's champion on all development data and save it with a model card "
        "under RESULTS/<suite>/final/ (what predict and app use); as [final] enabled = true in the suite",
    )
    run.add_argument("--jobs", type=int, help="worker processes [all cores]")
    run.add_argument(
        "--executor",
        choices=("local", "dask"),
        default="local",
        help="where jobs run: local process pool, or dask (a LocalCluster, or --scheduler) [local]",
    )
    run.add_argument("--scheduler", help="Dask scheduler address tcp://HOST:PORT (with --executor dask)")
    run.add_argument("--workers", type=int, help="LocalCluster workers (with --executor dask and no --scheduler)")
    run.add_argument(
        "--reproduce",
        metavar="RESULTS_DIR",
        help="rerun the run stored in RESULTS_DIR (e.g. results/quick) from its manifest into a fresh "
        "folder and report any difference",
    )
    _on_bad_image(run, "on an unreadable image: stop with its name (raise), or skip it and count it (skip) [raise]")
    _common(run)


def _add_leaderboard(sub) -> None:
    lb = sub.add_parser("leaderboard", help="rewrite LEADERBOARD.md from the store without retraining")
    lb.add_argument("--suite", default="quick", help="built-in suite name or a .toml path, as given to run [quick]")
    lb.add_argument("--results", default="results", help="results root folder [results]")
    lb.add_argument("--out", help="write LEADERBOARD.md and its figures into this folder instead (e.g. when the "
                    "results folder is read-only) [the results folder]")  # fmt: skip
    _add_selection(lb, data_root=True)


def _add_export(sub) -> None:
    ex = sub.add_parser(
        "export",
        help="write jobs × metrics, per-sample predictions, folds and the leaderboard's tables (csv, parquet, "
        "json), LaTeX tables, or one self-contained HTML report",
    )
    ex.add_argument("--suite", default="quick", help="built-in suite name or a .toml path, as given to run [quick]")
    ex.add_argument("--results", default="results", help="results root folder [results]")
    ex.add_argument("--format", default="csv", help=f"one of {', '.join(FORMATS)} [csv]")
    ex.add_argument("--out", help="output folder; nothing is written outside it [RESULTS/<suite>/export/<format>]")
    _add_selection(ex, data_root=True)


def _add_compare(sub) -> None:
    cmp = sub.add_parser("compare", help="compare two results folders (metrics, predictions, leaderboards)")
    cmp.add_argument("a", help="first results folder, e.g. results/smoke")
    cmp.add_argument("b", help="second results folder")


def _add_paired(sub) -> None:
    pa = sub.add_parser(
        "paired",
        help="compare two results folders run on the same folds (e.g. two feature sets): per model and nested "
        "champion, with the CI of the difference",
    )
    pa.add_argument("a", help="first results folder (A), e.g. results/a_today")
    pa.add_argument("b", help="second results folder (B)")
    pa.add_argument("--arm", default="handcrafted", help="the arm whose champions are compared [handcrafted]")


def _add_predict(sub) -> None:
    pr = sub.add_parser("predict", help=PREDICT[0], description=PREDICT[1])
    _final_source(pr)
    pr.add_argument(
        "--model",
        help="a saved model file (<results>/<suite>/final|models/<job key>.keras|.skops) or a results folder "
        "(e.g. results/quick) together with --job, instead of the suite's final models",
    )
    pr.add_argument("--job", help="with --model: job key (or a unique prefix) of the saved model in the folder")
    pr.add_argument("--masks", nargs="+", metavar="MASK", help="cell masks, one per image (classical cell models)")
    pr.add_argument("--csv", help="also write the predictions to this CSV file")
    pr.add_argument("images", nargs="+", metavar="IMAGE", help="image files to classify")


def _final_source(p: argparse.ArgumentParser) -> None:
    p.add_argument("--suite", default="quick", help="built-in suite name or a .toml path, as given to run [quick]")
    p.add_argument("--results", default="results", help="results root folder [results]")
    p.add_argument("--dataset", help="NAME or NAME/EXTRACTION whose final models to use (when there are several)")
    p.add_argument("--arm", help="only this arm's final model (handcrafted, deep, embedding, ...)")
    _add_selection(p, data_root=True)


def _add_app(sub) -> None:
    ap = sub.add_parser("app", help=APP[0], description=APP[1])
    _final_source(ap)
    ap.add_argument("--port", type=int, default=7860, help="port on 127.0.0.1 [7860]")


def _add_explain(sub) -> None:
    ex = sub.add_parser("explain", help=EXPLAIN[0], description=EXPLAIN[1])
    ex.add_argument("--suite", default="quick", help="built-in suite name or a .toml path [quick]")
    ex.add_argument("--dataset", help="data set name (need not be in the suite) [the one data set of --datasets]")
    ex.add_argument("--model", required=True, type=_csv, help="deep model(s), comma-separated, e.g. cnn,mobilenet_v2")
    ex.add_argument("--strategy", default="none", help="imbalance strategy of the job to explain [none]")
    ex.add_argument(
        "--extraction", type=_csv, help="extraction(s), comma-separated [every one the suite lists for the data set]"
    )
    ex.add_argument("--fold", type=int, default=0, help="CV fold whose model and test cells are shown [0]")
    ex.add_argument(
        "--method",
        default="all",
        help="gradcam, hirescam, guided-backprop, guided-gradcam, guided-hirescam (comma-separated) or all [all]",
    )
    ex.add_argument("--n", type=int, default=4, help="correctly and wrongly classified cells shown per class [4]")
    ex.add_argument(
        "--target", choices=("predicted", "true"), default="predicted", help="the class whose logit is explained"
    )
    ex.add_argument("--layer", help="target layer name or path [the output of the last convolutional block]")
    _add_selection(ex)
    _common(ex)


def _add_datasets(sub) -> None:
    ds = sub.add_parser("datasets", help="list data sets, where their data was found and their counts")
    ds.add_argument(
        "action",
        nargs="?",
        choices=("list", "show", "verify"),
        default="list",
        help="list (default), show NAME (its card) or verify NAME (read everything, compare with the card)",
    )
    ds.add_argument("name", nargs="?", help="data set name for `show` and `verify`")
    ds.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="adapter option for `verify` (repeatable), e.g. --option center_crop=32 --option 'splits=[\"test\"]'",
    )
    _data_options(ds)


def _add_extract(sub) -> None:
    sub.add_parser("suite-format", help="print the suite file reference (keys, types, defaults) as Markdown")
    xt = sub.add_parser(
        "extract",
        help="cut the cells of a field data set (manual: from the annotations; segmentation: found automatically) "
        "into a folder: crops, masks, index.csv, extraction.json (quality) and an overlay figure",
    )
    xt.add_argument("--dataset", required=True, help="field data set, e.g. allidb1, bccd, zheng2018, synthetic")
    xt.add_argument("--method", required=True, choices=("manual", "segmentation"), help="how cells are extracted")
    xt.add_argument("--out", required=True, help="output folder (new, empty, or a previous export)")
    xt.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extraction parameter over the data set's defaults (repeatable), e.g. --param cell_diameter=120",
    )
    xt.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="adapter option (repeatable)")
    xt.add_argument(
        "--on-bad-annotation",
        choices=("raise", "skip"),
        default="raise",
        help="on a bad annotation (unreadable file or line, outside the image, a field without any): stop with "
        "its name (raise), or skip it and count it (skip) [raise]",
    )
    _on_bad_image(xt, "on a field whose image cannot be read: stop with its name (raise), or skip it and count it "
                      "[raise]")  # fmt: skip
    xt.add_argument("--jobs", type=int, help="worker processes for the fields [1]")
    _data_options(xt)


def _add_selection(p: argparse.ArgumentParser, *, data_root: bool = False) -> None:
    """The flags that choose a run's data: ``run``, ``leaderboard``, ``export``, ``predict``, ``app`` and ``explain``
    take the same, and the same flags give the same results folder (:mod:`cellbench.run.selection`)."""
    g = p.add_argument_group(
        "data selection (a run on other data than the suite's goes to its own results folder; give the other "
        "commands the flags the run was given)"
    )
    g.add_argument(
        "--datasets",
        type=_csv,
        help="comma-separated data sets to run instead of the suite's, e.g. "
        "folder (your own <class>/<image> or <class>/<patient>/<image> folder, given with --data-root)",
    )
    g.add_argument("--positive-class", metavar="NAME", help="the positive class of the (one) two-class data set "
                   "[the data set's own; for folder the last class alphabetically]")  # fmt: skip
    g.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="adapter option of the (one) data set run (repeatable), as for `datasets verify`, e.g. "
                   "--option layout=patients")  # fmt: skip
    for flag, what in (("--max-per-class", "at most N samples per class"), ("--max-groups", "N patients/slides")):
        g.add_argument(flag, type=int, metavar="N",
                       help=f"quick run: keep {what} of each data set, whole patients/slides (seeded)")  # fmt: skip
    g.add_argument(
        "--test-data",
        metavar="PATH",
        help="an external test set for the one data set run: a folder read by the same adapter; models are "
        "cross-validated on the development data, refit on all of it and scored once on PATH",
    )
    if data_root:
        g.add_argument("--data-root", help="the data root the run was given (or $CELLBENCH_DATA)")


def _selected(args, **narrowing):
    """The suite of ``args.suite`` narrowed by the data-selection flags (and ``narrowing``)."""
    return load_suite(args.suite).narrow(
        datasets=args.datasets,
        test_data=str(Path(args.test_data).expanduser().resolve()) if args.test_data else None,
        max_per_class=args.max_per_class,
        max_groups=args.max_groups,
        options=parse_options(args.option),
        positive_class=args.positive_class,
        **narrowing,
    )


def _on_bad_image(p: argparse.ArgumentParser, text: str) -> None:
    p.add_argument("--on-bad-image", choices=ON_BAD_IMAGE, default="raise", help=text)


def _data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--data-root", help="folder holding real data sets (or $CELLBENCH_DATA)")
    p.add_argument("--cache", help="cache folder ($CELLBENCH_CACHE, default ~/.cache/cellbench)")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-root", help="folder holding real data sets, or one data set's folder (or $CELLBENCH_DATA)")
    p.add_argument("--results", default="results", help="results root folder; results go to RESULTS/<suite> [results]")
    p.add_argument(
        "--cache",
        help="cache folder for generated data, features and pixels ($CELLBENCH_CACHE, default ~/.cache/cellbench)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        return COMMANDS[args.command](args)
    except CellbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except sqlite3.DatabaseError as exc:  # disk full, damaged pages: the store could not be read or written
        print(f"error: the result store failed: {exc} (disk full, or a damaged store.sqlite?)", file=sys.stderr)
        return 2
    except OSError as exc:  # read-only folder, disk full, permissions: name the file and the reason
        where = f" {exc.filename}" if exc.filename else ""
        if exc.errno == errno.ENOSPC:
            print(f"error: the disk is full: cannot write{where}; free some space (or choose another --results or "
                  "--cache) and rerun the same command: finished jobs are stored", file=sys.stderr)  # fmt: skip
        else:
            print(f"error: cannot use{where}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished jobs are stored, rerun the same command to resume", file=sys.stderr)
        return 130


def cmd_run(args) -> int:
    cache = paths.cache_dir(args.cache)
    root = paths.data_root(args.data_root)
    if args.reproduce:
        out, diffs = reproduce(Path(args.reproduce), data_root=root, workers=args.jobs, cache=cache,
                               progress=not args.quiet, executor=args.executor)  # fmt: skip
        return _report_diffs(Path(args.reproduce), out, diffs)
    suite = _selected(
        args, models=args.models, strategies=args.strategies, folds=args.folds, seed=args.seed, final=args.final
    )
    summary = run_suite(
        suite,
        results_root=args.results,
        cache=cache,
        data_root=root,
        workers=args.workers if args.executor == "dask" and args.workers else args.jobs,
        executor=args.executor,
        executor_options={"scheduler": args.scheduler} if args.executor == "dask" else None,
        on_bad_image=args.on_bad_image,
        progress=not args.quiet,
        argv=sys.argv,
    )
    with Store.open(summary.results_dir, write=False) as store:
        leaderboard = write_leaderboard(store, out_dir=summary.results_dir)
    print(_describe(summary))
    print(f"leaderboard: {leaderboard}")
    if summary.final_index is not None:
        print(f"final models: {summary.finals} ({summary.final_index}); use them with `predict --suite` or `app`")
    return 1 if summary.failed else 0


def _describe(summary: RunSummary) -> str:
    return (
        f"suite {summary.suite}: {summary.planned} jobs planned, {summary.skipped_done} already stored, "
        f"{summary.ran} run ({summary.failed} failed) in {summary.wall_s:.0f} s"
        + (f"; {summary.warned} raised warnings (listed in the leaderboard)" if summary.warned else "")
    )


def cmd_compare(args) -> int:
    return _report_diffs(Path(args.a), Path(args.b), compare_stores(Path(args.a), Path(args.b)))


def cmd_paired(args) -> int:
    print(paired_report(Path(args.a), Path(args.b), arm=args.arm))
    return 0


def _report_diffs(a: Path, b: Path, diffs: list[str]) -> int:
    if diffs:
        print(f"{a} and {b} differ:")
        for d in diffs:
            print(f"  - {d}")
        return 1
    print(f"{a} and {b} are identical (jobs, metrics, predictions and leaderboards; timings excluded)")
    return 0


def cmd_predict(args) -> int:
    if args.model:
        saved = find_saved(args.model, job=args.job)
        table = predict_images(saved, args.images, masks=args.masks)
        print(f"model: {saved.describe()} ({saved.path})")
    else:
        if args.job:
            raise ConfigError("--job chooses a model in the folder given by --model; give --model too")
        finals = _finals(args)
        table = predict_finals(finals, args.images, masks=args.masks)
        for f in finals:
            print(f"final model: {f.describe()}")
    print(tabulate(table, headers="keys", tablefmt="github", showindex=False, floatfmt=".3f"))
    if args.csv:
        table.to_csv(args.csv, index=False)
        print(f"predictions: {args.csv}")
    return 0


def _finals(args):
    """The final models of ``args.suite`` under ``args.results``; without a store, how to make them."""
    try:
        folder = results_folder(args.suite, args.results, args=args)
    except ConfigError as exc:
        raise ConfigError(
            f"no final model in {args.results} for suite {args.suite} ({exc}); make them with "
            f"`cellbench run --suite {args.suite} --final`, or give a saved model with --model FILE"
        ) from None
    return find_finals(folder, dataset=args.dataset, arm=args.arm, suite=args.suite)


def cmd_app(args) -> int:
    try:
        from cellbench.tools.app import serve  # Gradio (and its web server) only for this command
    except ModuleNotFoundError as exc:
        if exc.name != "gradio":
            raise
        raise ConfigError("`app` needs gradio, which is not installed: pip install 'cellbench[app]'") from None

    finals = _finals(args)
    serve(finals, port=args.port)
    return 0


def cmd_explain(args) -> int:
    chosen = _selected(args)
    selected = chosen if chosen.narrowing else None  # no data flag given: the suite's own data (or --dataset's)
    dataset = args.dataset
    if dataset is None:
        if selected is None or len(selected.datasets) != 1:
            names = ", ".join(selected.datasets) if selected is not None else "any data set name"
            raise ConfigError(f"explain needs --dataset NAME (or --datasets naming one data set); allowed: {names}")
        dataset = next(iter(selected.datasets))
    galleries = explain_suite(
        suite=args.suite,
        dataset=dataset,
        selected=selected,
        models=args.model,
        strategy=args.strategy,
        extractions=args.extraction,
        fold=args.fold,
        options=ExplainOptions(methods=args.method, n=args.n, target=args.target, target_layer=args.layer),
        results_root=args.results,
        data_root=paths.data_root(args.data_root),
        cache=paths.cache_dir(args.cache),
        progress=not args.quiet,
    )
    for g in galleries:
        s = g.summary
        print(
            f"{s['model']} / {s['strategy']} on {s['dataset']}/{s['extraction']} fold {s['fold']} "
            f"({s['model_source']['how']} model, target layer {s['target_layer']}): {g.png}"
        )
        if not (g.png.parent.parent / STORE_NAME).is_file():
            print("  no result store in this folder: run the suite there to list the gallery in its leaderboard")
    return 0


def results_folder(suite: str, results: str | Path, *, args: argparse.Namespace | None = None) -> Path:
    """The results folder that ``run`` wrote for ``suite`` (a built-in name, a .toml path, or the name of a suite run
    from a file earlier) under ``results``, with the data-selection flags of ``args`` (none: the suite's own data).

    Raises
    ------
    ConfigError
        For a suite file that cannot be read, or no store for that suite and selection (naming the suite's stores).
    """
    try:
        suite_path(suite)
    except ConfigError as exc:  # the name of a suite run from a file earlier: its store, as named
        name = paths.check_name(suite, what="suite")
        folder = paths.inside(results, name, what="results folder")
        if not (folder / STORE_NAME).is_file():  # neither stored nor built-in: say both, with the built-in names
            raise ConfigError(f"no result store at {folder / STORE_NAME}, and {exc}") from None
        return folder
    flags = args or build_parser().parse_args(["leaderboard", "--suite", str(suite)])
    chosen = _selected(flags)
    folder = selected_folder(results, chosen, data_root=paths.data_root(getattr(flags, "data_root", None)))
    if not (folder / STORE_NAME).is_file():
        raise missing_store_error(results, chosen.name, folder)
    return folder


def cmd_leaderboard(args) -> int:
    folder = results_folder(args.suite, args.results, args=args)
    out = Path(args.out) if args.out else folder
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a folder for LEADERBOARD.md and its figures")
    with Store.open(folder, write=False) as store, _elsewhere_if_read_only(folder, "the leaderboard", given=args.out):
        path = write_leaderboard(store, out_dir=out)
    print(f"leaderboard: {path}")
    return 0


@contextlib.contextmanager
def _elsewhere_if_read_only(folder: Path, what: str, *, given: str | None):
    """A write into ``folder`` refused by the file system (read-only, not ours) as one error pointing to ``--out``."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM) or given:
            raise
        raise ConfigError(
            f"cannot write {what} into {folder}: {exc.strerror} ({exc.filename or folder}); the store was read: "
            f"write {what} elsewhere with --out DIR"
        ) from None


def cmd_export(args) -> int:
    fmt = check_format(args.format)
    folder = results_folder(args.suite, args.results, args=args)
    out = Path(args.out) if args.out else paths.inside(folder, "export", fmt, what="export folder")
    with Store.open(folder, write=False) as store, _elsewhere_if_read_only(folder, "the export", given=args.out):
        done = export_results(store, summarise(store), fmt=fmt, out=out)
    print(f"{len(done.files)} file(s) written to {done.folder} ({fmt})")
    return 0


def cmd_datasets(args) -> int:
    root, cache = paths.data_root(args.data_root), paths.cache_dir(args.cache)
    if args.action in ("show", "verify"):
        if not args.name:
            known = ", ".join(DATASETS.names())
            raise CellbenchError(f"`datasets {args.action}` needs a name; known data sets: {known}")
        if args.action == "verify":
            report = verify(args.name, data_root=root, cache_dir=cache, progress=not args.quiet,
                            **parse_options(args.option))  # fmt: skip
            print(report.render())
            return 1 if report.problems else 0
        print(render_card(DATASETS[args.name].info))
        return 0
    rows = [_dataset_row(name, entry, root=root, cache=cache) for name, entry in DATASETS.items()]
    print(tabulate(rows, headers=["name", "kind", "data", "samples", "classes / groups", "title"], tablefmt="github"))
    if root is None:
        print("\nReal data sets are looked for under --data-root or $CELLBENCH_DATA (none given).")
    return 0


def _dataset_row(name: str, entry, *, root: Path | None, cache: Path) -> tuple:
    """One row of ``datasets list``: where the data are and what they hold (or why they could not be read)."""
    where = locate(name, root) if entry.needs_data else None
    if entry.needs_data and where is None:
        return (name, entry.info.kind, "not found", "", "", entry.info.title)
    try:
        ds = load_dataset(name, data_root=root, cache_dir=cache)
    except CellbenchError as exc:
        return (name, entry.info.kind, str(where or "generated"), "error", str(exc)[:60], entry.info.title)
    counts = ", ".join(f"{k} {v}" for k, v in ds.class_counts().items())
    groups = len({s.group for s in ds.samples}) if ds.has_groups else "—"
    found = str(where or "generated (cache)")
    return (name, entry.info.kind, found, len(ds.samples) or len(ds.fields), f"{counts}; groups {groups}",
            entry.info.title)  # fmt: skip


def cmd_extract(args) -> int:
    export = extract_to_folder(
        args.dataset,
        method=args.method,
        out=Path(args.out),
        params=parse_options(args.param),
        options=parse_options(args.option),
        on_bad_annotation=args.on_bad_annotation,
        on_bad_image=args.on_bad_image,
        jobs=args.jobs,
        data_root=paths.data_root(args.data_root),
        cache=paths.cache_dir(args.cache),
        progress=not args.quiet,
    )
    print(tabulate(export.rows, tablefmt="github", headers=["", args.dataset]))
    for note in export.notes:
        print(f"- {note}")
    out = export.folder
    print(
        f"\n{export.cells} cells written to {out / 'cells'} (index: {out / 'index.csv'}; quality and "
        f"parameters: {out / 'extraction.json'}" + (f"; overlay: {export.figure}" if export.figure else "") + ")"
    )
    return 0


def cmd_suite_format(args) -> int:
    print(schema_markdown(), end="")
    return 0


COMMANDS = {
    "suite-format": cmd_suite_format,
    "run": cmd_run,
    "leaderboard": cmd_leaderboard,
    "export": cmd_export,
    "compare": cmd_compare,
    "paired": cmd_paired,
    "predict": cmd_predict,
    "app": cmd_app,
    "explain": cmd_explain,
    "datasets": cmd_datasets,
    "extract": cmd_extract,
}
