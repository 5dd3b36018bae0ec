"""The quick suite's ImageNet weights ship inside the package: found offline from a fresh install, hash-checked."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from fnmatch import fnmatch
from pathlib import Path

import pytest

import cellbench.models.deep as deep
import cellbench.models.weights as shipped
from cellbench.core.errors import CellbenchError

REPO = Path(__file__).resolve().parents[1]
FILE = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5"
SHA = "df1c3db1d0d9193719c4c70f707c56f7021f999f825bdc57454c275cf6def19f"


@pytest.fixture
def fresh_install(tmp_path, monkeypatch):
    """An empty Keras cache, downloads forbidden and no ../shared folder (as a wheel installed elsewhere)."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("CELLBENCH_OFFLINE", "1")
    monkeypatch.setattr(deep, "checkout_root", lambda: None)
    return tmp_path


def test_the_shipped_file_is_the_published_one_and_small():
    path = shipped.FOLDER / FILE
    assert shipped.SHA256 == {FILE: SHA}
    assert shipped.sha256_of(path) == SHA
    assert path.stat().st_size <= 2_100_000
    assert "Apache License" in (shipped.FOLDER / "LICENSE").read_text()
    assert SHA in (shipped.FOLDER / "README.md").read_text()


def test_offline_fresh_install_uses_the_shipped_weights(fresh_install):
    assert deep.weights_path("mobilenet_v2", {"alpha": 0.35}) == str(shipped.FOLDER / FILE)


def test_the_keras_cache_comes_first(fresh_install):
    own = fresh_install / "keras" / "models" / FILE
    own.parent.mkdir(parents=True)
    own.write_bytes(b"the user's own copy")  # not checked: it is the user's file
    assert deep.weights_path("mobilenet_v2", {"alpha": 0.35}) == str(own)


def test_a_damaged_shipped_copy_is_refused_naming_it_and_both_hashes(fresh_install, monkeypatch):
    folder = fresh_install / "damaged"
    folder.mkdir()
    data = bytearray((shipped.FOLDER / FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / FILE).write_bytes(bytes(data))
    monkeypatch.setattr(shipped, "FOLDER", folder)
    with pytest.raises(CellbenchError) as err:
        deep.weights_path("mobilenet_v2", {"alpha": 0.35})
    message = str(err.value)
    assert str(folder / FILE) in message and SHA in message
    assert shipped.sha256_of(folder / FILE) in message


def test_other_widths_and_backbones_still_need_the_network(fresh_install):
    for name, params in (("mobilenet_v2", {"alpha": 0.5}), ("mobilenet", {"alpha": 0.25}), ("resnet50", {})):
        with pytest.raises(CellbenchError, match=r"not found in .*CELLBENCH_OFFLINE=1 forbids downloading"):
            deep.weights_path(name, params)


def test_the_shipped_files_are_package_data():
    """Every file of the weights folder matches a package-data pattern, so a wheel carries it."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "cellbench.models.weights" in config["packages"]
    patterns = config["package-data"]["cellbench.models.weights"]
    files = [p.name for p in (REPO / "models" / "weights").iterdir() if p.is_file() and p.suffix not in (".py", ".pyc")]
    assert FILE in files and "LICENSE" in files
    assert [f for f in files if not any(fnmatch(f, pat) for pat in patterns)] == []


@pytest.mark.slow
def test_the_wheel_carries_the_weights(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(REPO), "-w", str(tmp_path), "--no-deps", "-q"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("cellbench-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in (FILE, "LICENSE", "README.md", "SHA256SUMS", "__init__.py"):
        assert f"cellbench/models/weights/{name}" in names
