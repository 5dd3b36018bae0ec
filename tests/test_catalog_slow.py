"""A PCam-shaped training split of 262,144 random 96x96 patches (7.2 GB) is read in bounded memory.

Slow (about 3 minutes: writing the file takes most of it) and needs about 8 GB of free disk in the temporary
folder; run with ``tox -e slow`` or ``pytest -m slow tests/test_catalog_slow.py -s`` to see the figures.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.catalog_files import write_pcam_split

REPO = Path(__file__).resolve().parents[1]
N = 262_144


@pytest.mark.slow
def test_full_size_pcam_training_split_is_read_in_bounded_memory(tmp_path):
    free = shutil.disk_usage(tmp_path).free
    if free < 10 * 2**30:
        pytest.skip(f"needs 10 GiB free in {tmp_path} for the 7.2 GB file, has {free / 2**30:.1f} GiB")
    root = tmp_path / "pcam"
    try:
        write_pcam_split(root, "train", np.arange(N) % 2, slides=[f"s{i // 1024:03d}" for i in range(N)])
        out = subprocess.run(
            [sys.executable, "-m", "tests.pcam_rss", str(root), str(tmp_path / "pixels")],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        )
        figures = json.loads(out.stdout)
        print("\nPCam-shaped 262,144-patch split:", json.dumps(figures, indent=1))
        assert figures["patches"] == N and figures["pixel_bytes"] == N * 96 * 96 * 3
        assert figures["block_reads"] == N
        # the pixels are 6.75 GiB; reading them must not add more than a little to the loaded samples
        for step in ("one_by_one_mib", "blocks_mib", "pixel_cache_mib"):
            assert figures[step] - figures["loaded_mib"] < 256, (step, figures)
        assert figures["loaded_mib"] < 1024, figures
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)
