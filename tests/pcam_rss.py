"""Peak memory of loading a PCam folder and reading every training patch: ``python -m tests.pcam_rss ROOT [DIR]``.

Run in a fresh process so that the peak resident set measures only this. Prints
one JSON object: peak RSS (MiB) after imports, after loading the samples, after reading every patch one by
one through :func:`cellbench.datasets.io.read_image` (the path feature extraction and the pixel cache take), and
after reading them again in blocks (:func:`cellbench.datasets.content.iter_images`, the path of verification and
content hashes), with the patch count, the bytes of pixels read and the wall time of each step. With a second
argument DIR, it then caches every patch at 32 px in DIR (:func:`cellbench.models.pixels.pixel_cache`) and
reports that too.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path


def peak_mib() -> float:
    """This process's peak resident set (MiB): VmHWM on Linux, which starts afresh at exec, unlike ``ru_maxrss``
    (that keeps the peak of the parent it was forked from, e.g. a large pytest process)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux, bytes on macOS


def main(root: str, *, pixel_cache_dir: str | None = None) -> dict:
    import numpy as np

    from cellbench.datasets import load_dataset
    from cellbench.datasets.content import iter_images
    from cellbench.datasets.io import read_image

    out = {"imports_mib": peak_mib()}
    t0 = time.perf_counter()
    ds = load_dataset("pcam", data_root=Path(root), splits=["train"])
    out.update(load_s=time.perf_counter() - t0, loaded_mib=peak_mib(), patches=len(ds.samples))
    t0 = time.perf_counter()
    total = 0
    checksum = 0
    for s in ds.samples:
        img = read_image(s.image_source)
        total += img.nbytes
        checksum ^= int(img[48, 48, 0])
    out.update(one_by_one_s=time.perf_counter() - t0, one_by_one_mib=peak_mib(), pixel_bytes=total)
    t0 = time.perf_counter()
    n = 0
    for img, error in iter_images(ds.samples):
        assert error is None, error
        n += int(np.asarray(img).shape[0] == 96)
    out.update(blocks_s=time.perf_counter() - t0, blocks_mib=peak_mib(), block_reads=n, checksum=checksum)
    if pixel_cache_dir:
        from cellbench.models.pixels import pixel_cache

        t0 = time.perf_counter()
        ps = pixel_cache(
            ds.samples,
            size=32,
            kind="patch",
            dataset_fingerprint=ds.fingerprint,
            extraction="given",
            cache_dir=pixel_cache_dir,
            progress=False,
        )
        out.update(
            pixel_cache_s=time.perf_counter() - t0,
            pixel_cache_mib=peak_mib(),
            pixel_cache_bytes=ps.path.stat().st_size,
        )
    return out


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], pixel_cache_dir=sys.argv[2] if len(sys.argv) > 2 else None)))
