"""The atomic file writers: nothing half-written, and a failed write names the file the user asked for."""

from __future__ import annotations

import errno

import pytest

from cellbench.core.files import write_atomic, write_text
from cellbench.tools import cli


def _full_disk(fh) -> None:
    fh.write(b"partial")
    raise OSError(errno.ENOSPC, "No space left on device")  # as write() raises it: no file name


def test_a_failed_write_names_the_final_file_and_leaves_the_old_content(tmp_path):
    target = write_text(tmp_path / "board.md", "old")
    with pytest.raises(OSError) as info:
        write_atomic(target, _full_disk)
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(target)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["board.md"], "a temporary file was left behind"


def test_the_cli_says_the_disk_is_full_and_names_the_file(tmp_path, monkeypatch, capsys):
    target = tmp_path / "figure.png"

    def run(args) -> int:
        write_atomic(target, _full_disk)
        return 0

    monkeypatch.setitem(cli.COMMANDS, "leaderboard", run)
    assert cli.main(["leaderboard", "--suite", "smoke"]) == 2
    err = capsys.readouterr().err
    assert "disk is full" in err and str(target) in err and "rerun" in err, err
    assert "Traceback" not in err
