"""ImageNet weight files shipped inside cellbench (package data), so the quick suite runs offline from any install.

``README.md`` in this folder says where each file comes from; ``LICENSE`` is the files' licence (Apache-2.0);
``SHA256SUMS`` holds their hashes (``sha256sum -c SHA256SUMS`` checks them), read once into :data:`SHA256`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from cellbench.core.errors import CellbenchError

FOLDER = Path(__file__).resolve().parent  # where the shipped files lie (tests point it elsewhere)


def _read_sums(path: Path) -> dict[str, str]:
    sums = {}
    for line in path.read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            sums[name.lstrip("*")] = digest.lower()
    return sums


SHA256: dict[str, str] = _read_sums(FOLDER / "SHA256SUMS")  # file name -> SHA-256 of its bytes


def sha256_of(path: Path) -> str:
    """The SHA-256 (hex) of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def packaged(file: str) -> Path | None:
    """The shipped copy of weight file ``file``, its SHA-256 checked; ``None`` when cellbench ships no such file.

    Raises
    ------
    CellbenchError
        When the shipped copy's bytes do not match :data:`SHA256` (a damaged install), naming the file and both
        hashes.
    """
    path = FOLDER / file
    if file not in SHA256 or not path.is_file():
        return None
    got = sha256_of(path)
    if got != SHA256[file]:
        raise CellbenchError(
            f"the ImageNet weight file shipped with cellbench, {path}, is damaged: its SHA-256 is {got}, expected "
            f"{SHA256[file]}; reinstall cellbench, or put the right file in $KERAS_HOME/models"
        )
    return path
