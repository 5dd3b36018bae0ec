"""Names are names: a suite, data set or model name cannot make the harness write or delete outside its folders."""

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest

from cellbench.core.errors import ConfigError
from cellbench.core.paths import check_name, inside
from cellbench.core.registry import Registry
from cellbench.run.selection import results_folder
from cellbench.run.store import Store
from cellbench.run.suite import load_suite, parse_suite
from cellbench.tools.cli import main
from cellbench.tools.repro import reproduce

HOSTILE = ["../../../../victim", "/tmp/abs", "", ".", "..", "a/b", "a\\b", "x..y", "-rf", " lead", "n\x00ul", "é" * 3]


@pytest.mark.parametrize("name", HOSTILE)
def test_check_name_refuses_what_is_not_one_safe_path_component(name):
    with pytest.raises(ConfigError, match="is not a valid name; a name is 1-64 characters"):
        check_name(name, what="suite name")


@pytest.mark.parametrize("name", ["quick", "allidb1_subset", "mobilenet_v2_a050_lr", "v1.2-final", "A" * 64])
def test_check_name_accepts_ordinary_names(name):
    assert check_name(name, what="suite name") == name


def test_inside_refuses_climbing_absolute_parts_and_symbolic_links(tmp_path):
    root = tmp_path / "results"
    root.mkdir()
    assert inside(root, "quick", "models") == (root / "quick" / "models").resolve()
    for parts in (("..", "victim"), ("/etc",), ("a", "..", "..", "x")):
        with pytest.raises(ConfigError, match="lies outside"):
            inside(root, *parts, what="results folder")
    (root / "link").symlink_to(tmp_path)
    with pytest.raises(ConfigError, match="results folder .* lies outside"):
        inside(root, "link", "x", what="results folder")


def _smoke_raw(name):
    raw = load_suite("smoke").raw
    return {**raw, "name": name}


@pytest.mark.parametrize("name", ["../../../../victim", "/tmp/cellbench-victim", ""])
def test_a_suite_file_with_a_hostile_name_is_refused_at_load(tmp_path, name):
    with pytest.raises(ConfigError, match=r"name .* is not a valid name"):
        parse_suite(_smoke_raw(name), source="evil.toml")


def test_results_folder_checks_the_name_even_on_a_suite_built_around_validation(tmp_path):
    suite = replace(load_suite("smoke"), name="../../victim")  # replace() skips validate()
    with pytest.raises(ConfigError, match="suite name '../../victim' is not a valid name"):
        results_folder(tmp_path, suite, data_root=None)


def test_cli_run_of_a_hostile_suite_file_writes_and_deletes_nothing(tmp_path, capsys):
    text = load_suite("smoke").text
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("mine")
    suite_file = tmp_path / "deep" / "er" / "evil.toml"
    suite_file.parent.mkdir(parents=True)
    suite_file.write_text(f'name = "../../victim"\n{_strip_name(text)}')
    results, cache = tmp_path / "deep" / "results", tmp_path / "deep" / "cache"
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    code = main(["run", "--suite", str(suite_file), "--results", str(results), "--cache", str(cache), "--quiet"])
    assert code == 2
    assert "name '../../victim' is not a valid name" in capsys.readouterr().err
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert [p for p in after if p not in before and not _under(tmp_path / p, cache)] == []
    assert (victim / "keep.txt").read_text() == "mine"


def _strip_name(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.startswith("name ="))


def _under(path: Path, root: Path) -> bool:
    return path.resolve().is_relative_to(root.resolve())


def test_reproduce_refuses_a_manifest_that_carries_a_hostile_suite_name(tmp_path):
    folder = tmp_path / "shared-results" / "quick"
    raw = _smoke_raw("../../../../victim")
    with Store.open(folder) as store:
        run_id = store.start_run("quick", {"suite": "../../../../victim", "suite_raw": raw})
        store.finish_run(run_id)
    with pytest.raises(ConfigError, match="is not a valid name"):
        reproduce(folder, data_root=None, workers=1, cache=tmp_path / "cache", progress=False)
    assert not (tmp_path.parent / "victim").exists()


def test_registries_refuse_names_that_are_not_names():
    reg = Registry("model")
    with pytest.raises(ConfigError, match="model '../x' is not a valid name"):
        reg.add("../x", object())
    assert reg.add("ok_name", 1) == 1


def test_the_status_folder_of_deep_progress_stays_in_the_cache(tmp_path, monkeypatch):
    from cellbench.run import runner
    from cellbench.run.prepare import Settings

    suite = replace(load_suite("smoke"), name="../../../../escape")
    settings = Settings(cache_dir=tmp_path / "cache", workers=1, on_bad_image="raise", progress=True)

    class _Job:
        model = type("M", (), {"kind": "deep"})()

    with pytest.raises(ConfigError, match="status folder .* lies outside"):
        runner._job_options(suite, [(_Job(), None)], folder=tmp_path / "r", settings=settings)
    assert json.dumps(os.listdir(tmp_path)) == "[]"
