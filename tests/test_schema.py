"""The suite schema: keys and types checked at load time, each message naming the key; the reference is generated."""

import copy
from pathlib import Path

import pytest

from cellbench.core.errors import ConfigError
from cellbench.models.deep import TRAINING_DEFAULTS
from cellbench.run.schema import DeepTable, schema_markdown
from cellbench.run.suite import SUITES_DIR, load_suite, parse_suite
from cellbench.tools.cli import main

REPO = Path(__file__).resolve().parents[1]


def _with(patch):
    raw = copy.deepcopy(load_suite("smoke").raw)
    for key, value in patch.items():
        raw[key] = {**raw[key], **value} if isinstance(value, dict) and isinstance(raw.get(key), dict) else value
    return raw


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"deep": {"gpu": "no"}}, "deep.gpu must be true or false, got 'no'"),
        ({"datasets": {"synthetic": {"optional": "no"}}}, "datasets.synthetic.optional must be true or false"),
        ({"deep": {"max_epochs": "three"}}, "deep.max_epochs must be an integer, got 'three'"),
        ({"models": {"cnn_tiny": {"max_epochs": "three"}}}, "parameter max_epochs must be an integer, got 'three'"),
        ({"models": {"random_forest": {"n_estimators": 1.5}}}, "parameter n_estimators must be an integer, got 1.5"),
        ({"deep": {"refit": "yes"}}, "deep.refit must be true or false, got 'yes'"),
        ({"save_models": 1}, "save_models must be true or false, got 1"),
        ({"description": 3}, "description must be text (a quoted string), got 3"),
        ({"features": {"haralick_level": 3}}, "unknown key(s) haralick_level; allowed keys: families"),
        ({"deep": {"epochs": 3}}, "unknown key 'deep.epochs'; allowed keys in [deep]: size, max_epochs"),
        ({"colour": "blue"}, "unknown key 'colour'; allowed keys in the top level: name, description"),
        ({"cv": {"folds": "5"}}, "cv.folds must be an integer, got '5'"),
        ({"strategies": [1]}, "strategies.0 must be text (a quoted string), got 1"),
    ],
)
def test_bad_values_are_refused_at_load_naming_the_key(patch, message):
    with pytest.raises(ConfigError) as err:
        parse_suite(_with(patch), source="bad.toml")
    assert str(err.value).startswith("suite bad.toml: ") and message in str(err.value)


def test_the_shorthands_still_parse():
    suite = parse_suite(_with({"strategies": "none", "deep": {"strategies": "none", "refit_ema": False}}), source="t")
    assert suite.strategies == ("none",) and suite.deep_strategies == ("none",) and suite.deep["refit_ema"] is False


def test_every_built_in_suite_fits_the_schema():
    for path in sorted(SUITES_DIR.glob("*.toml")):
        load_suite(path)


def test_the_deep_table_knows_every_training_setting_with_its_default():
    fields = DeepTable.model_fields
    assert {k: fields[k].default for k in TRAINING_DEFAULTS} == TRAINING_DEFAULTS


def test_the_suite_format_reference_is_generated_from_the_schema(capsys):
    assert main(["suite-format"]) == 0
    assert capsys.readouterr().out == schema_markdown() == (REPO / "docs" / "SUITE_FORMAT.md").read_text()


def test_a_malformed_suite_is_one_line_on_the_command_line(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('datasets = ["synthetic"]\nmodels = ["dummy"]\n[deep]\ngpu = "no"\n')
    assert main(["run", "--suite", str(bad), "--results", str(tmp_path / "r"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "deep.gpu must be true or false, got 'no'" in err
    assert not (tmp_path / "r").exists()
