"""MedMNIST ``.npz`` files: any 2D flag, the file's train/val/test splits as predefined folds.

A MedMNIST file (``<flag>.npz`` at 28 px, ``<flag>_<size>.npz`` for the 64/128/224 px MedMNIST+ files, as
the ``medmnist`` package downloads them) holds ``train_images, train_labels, val_images, val_labels,
test_images, test_labels``; images are N x H x W (grey) or N x H x W x 3 (RGB) uint8, labels N x 1.
Class names come from a built-in copy of MedMNIST's INFO labels for the known flags (shortened to
identifiers; the full names are in the cards), else ``0..K-1``. Multi-label (chestmnist) and 3D flags are
refused with a message naming the file.

``pathmnist``, ``bloodmnist``, ``breastmnist`` and ``dermamnist`` are catalogued with their own cards;
``medmnist`` reads any other 2D flag (``flag=`` or the only ``*mnist*.npz`` in the folder). The files
carry no patient ids, so CV is over the splits (``meta["fold"]``; ``meta["split"]`` names the file's
split). Arrays up to :data:`IN_MEMORY_BYTES` are read into memory; larger ones (224 px files) are
decompressed once into the cache folder and memory-mapped, so they are never held in memory whole.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from numpy.lib import format as npy

from cellbench.core.errors import ConfigError, DataError
from cellbench.core.files import atomic_path
from cellbench.core.hashing import stable_hash
from cellbench.core.types import Dataset, DatasetInfo, Sample
from cellbench.datasets.entry import DatasetEntry
from cellbench.datasets.fingerprint import quick_fingerprint, sample_fingerprint_lines
from cellbench.datasets.layout import BadFiles, check_options, check_root, entries, release_dataset, require_classes

SPLITS = ("train", "val", "test")
KEYS = tuple(f"{s}_{part}" for s in SPLITS for part in ("images", "labels"))
SIZES = (28, 64, 128, 224)
IN_MEMORY_BYTES = 1 << 30
_FILE = re.compile(r"(?P<flag>[a-z0-9]+mnist(?:3d)?)(?:_(?P<size>\d+))?\.npz", re.IGNORECASE)

MEDMNIST_CITATION = (
    "Yang J, Shi R, Wei D, Liu Z, Zhao L, Ke B, Pfister H, Ni B. MedMNIST v2 - A large-scale lightweight "
    "benchmark for 2D and 3D biomedical image classification. Scientific Data 2023;10:41. "
    "doi:10.1038/s41597-022-01721-8"
)
MEDMNIST_SOURCE = "https://medmnist.com (files: https://doi.org/10.5281/zenodo.10519652)"


def _download(flag: str) -> str:
    return (
        f"`pip install medmnist` and `python -m medmnist download` (or fetch {flag}.npz / {flag}_<size>.npz from "
        "Zenodo, doi:10.5281/zenodo.10519652); put the file in <data root>/medmnist/ (the package stores it in "
        "~/.medmnist/), then pass --data-root."
    )


@dataclass(frozen=True)
class Flag:
    """What the built-in table knows about a MedMNIST flag (from MedMNIST v2's INFO)."""

    classes: tuple[str, ...]
    labels: str  # MedMNIST's own label names, for the card
    kind: str
    channels: int
    splits: tuple[int, int, int] | None  # train, val, test counts at every size, where known here
    licence: str
    about: str
    positive: str | None = None


_ORGAN = (
    "bladder",
    "femur_left",
    "femur_right",
    "heart",
    "kidney_left",
    "kidney_right",
    "liver",
    "lung_left",
    "lung_right",
    "pancreas",
    "spleen",
)
FLAGS: dict[str, Flag] = {
    "pathmnist": Flag(
        classes=(
            "adipose",
            "background",
            "debris",
            "lymphocytes",
            "mucus",
            "smooth_muscle",
            "normal_colon_mucosa",
            "cancer_associated_stroma",
            "colorectal_adenocarcinoma_epithelium",
        ),
        labels="adipose, background, debris, lymphocytes, mucus, smooth muscle, normal colon mucosa, "
        "cancer-associated stroma, colorectal adenocarcinoma epithelium",
        kind="patch",
        channels=3,
        splits=(89996, 10004, 7180),
        licence="CC BY 4.0 as stated by MedMNIST (not verified here)",
        about="colorectal cancer histology tiles (H&E), from NCT-CRC-HE-100K (train/val) and CRC-VAL-HE-7K (test); "
        "Kather JN et al., PLoS Med 2019;16(1):e1002730. doi:10.1371/journal.pmed.1002730",
    ),
    "bloodmnist": Flag(
        classes=(
            "basophil",
            "eosinophil",
            "erythroblast",
            "immature_granulocytes",
            "lymphocyte",
            "monocyte",
            "neutrophil",
            "platelet",
        ),
        labels="basophil, eosinophil, erythroblast, immature granulocytes (myelocytes, metamyelocytes and "
        "promyelocytes), lymphocyte, monocyte, neutrophil, platelet",
        kind="cell",
        channels=3,
        splits=(11959, 1712, 3421),
        licence="CC BY 4.0 as stated by MedMNIST (not verified here)",
        about="single normal blood cells from peripheral blood smears; Acevedo A et al. A dataset of microscopic "
        "peripheral blood cell images for development of automatic recognition systems. Data in Brief "
        "2020;30:105474. doi:10.1016/j.dib.2020.105474",
    ),
    "breastmnist": Flag(
        classes=("malignant", "normal_benign"),
        labels="malignant, normal/benign",
        kind="patch",
        channels=1,
        splits=(546, 78, 156),
        licence="CC BY 4.0 as stated by MedMNIST (not verified here)",
        about="breast ULTRASOUND images (not microscopy), malignant vs normal or benign; Al-Dhabyani W et al. "
        "Dataset of breast ultrasound images. Data in Brief 2020;28:104863. doi:10.1016/j.dib.2019.104863",
        positive="malignant",
    ),
    "dermamnist": Flag(
        classes=(
            "actinic_keratosis",
            "basal_cell_carcinoma",
            "benign_keratosis",
            "dermatofibroma",
            "melanoma",
            "melanocytic_nevus",
            "vascular_lesion",
        ),
        labels="actinic keratoses and intraepithelial carcinoma, basal cell carcinoma, benign keratosis-like "
        "lesions, dermatofibroma, melanoma, melanocytic nevi, vascular lesions",
        kind="patch",
        channels=3,
        splits=(7007, 1003, 2005),
        licence="CC BY-NC 4.0 as stated by MedMNIST (not verified here)",
        about="dermatoscopic images of pigmented skin lesions (HAM10000); Tschandl P et al. Sci Data "
        "2018;5:180161. doi:10.1038/sdata.2018.161",
    ),
    "pneumoniamnist": Flag(
        classes=("normal", "pneumonia"),
        labels="normal, pneumonia",
        kind="patch",
        channels=1,
        splits=(4708, 524, 624),
        licence="CC BY 4.0 as stated by MedMNIST (not verified here)",
        about="paediatric chest X-rays",
        positive="pneumonia",
    ),
    "octmnist": Flag(
        classes=("choroidal_neovascularization", "diabetic_macular_edema", "drusen", "normal"),
        labels="choroidal neovascularization, diabetic macular edema, drusen, normal",
        kind="patch",
        channels=1,
        splits=(97477, 10832, 1000),
        licence="CC BY 4.0 as stated by MedMNIST (not verified here)",
        about="retinal optical coherence tomography",
    ),
    "retinamnist": Flag(
        classes=("grade_0", "grade_1", "grade_2", "grade_3", "grade_4"),
        labels="0, 1, 2, 3, 4 (diabetic retinopathy grade; ordinal, treated as classes here)",
        kind="patch",
        channels=3,
        splits=(1080, 120, 400),
        licence="CC BY 4.0 as stated by MedMNIST (not verified here)",
        about="retinal fundus images",
    ),
    "tissuemnist": Flag(
        classes=(
            "collecting_duct_connecting_tubule",
            "distal_convoluted_tubule",
            "glomerular_endothelial_cells",
            "interstitial_endothelial_cells",
            "leukocytes",
            "podocytes",
            "proximal_tubule_segments",
            "thick_ascending_limb",
        ),
        labels="Collecting Duct, Connecting Tubule; Distal Convoluted Tubule; Glomerular endothelial cells; "
        "Interstitial endothelial cells; Leukocytes; Podocytes; Proximal Tubule Segments; Thick Ascending Limb",
        kind="cell",
        channels=1,
        splits=(165466, 23640, 47280),
        licence="CC BY 4.0 as stated by MedMNIST (not verified here)",
        about="kidney cortex cells (microscopy)",
    ),
    **{
        f"organ{view}mnist": Flag(
            classes=_ORGAN,
            labels=", ".join(c.replace("_", "-") for c in _ORGAN),
            kind="patch",
            channels=1,
            splits=None,
            licence="CC BY 4.0 as stated by MedMNIST (not verified here)",
            about=f"abdominal CT slices ({plane} view)",
        )
        for view, plane in (("a", "axial"), ("c", "coronal"), ("s", "sagittal"))
    },
}
MULTI_LABEL = frozenset({"chestmnist"})
REGISTERED = ("pathmnist", "bloodmnist", "breastmnist", "dermamnist")


def flag_info(flag: str, *, name: str | None = None) -> DatasetInfo:
    """The card of a known flag (catalogued as ``name``, default the flag itself)."""
    f = FLAGS[flag]
    counts = dict(zip(SPLITS, f.splits, strict=True)) if f.splits else {}
    return DatasetInfo(
        name=name or flag,
        title=f"MedMNIST {flag}: {f.about.split(';')[0]}",
        description=(
            f"MedMNIST v2 {flag}: {f.about}. {len(f.classes)} classes ({f.labels}); "
            f"{'RGB' if f.channels == 3 else 'grey'} images, 28x28 px ({flag}.npz) or 64/128/224 px in the "
            f"MedMNIST+ files ({flag}_<size>.npz, option size=). The file's train/val/test splits are the predefined "
            "CV folds (each the test fold once; meta['split'] names them); there are no patient ids, so images of "
            "one patient can sit in several splits as MedMNIST released them."
        ),
        task="binary" if len(f.classes) == 2 else "multiclass",
        kind=f.kind,
        classes=f.classes,
        positive_class=f.positive,
        primary_metric="balanced_accuracy",
        default_cv="predefined",
        source=MEDMNIST_SOURCE,
        licence=f.licence,
        citation=MEDMNIST_CITATION + (f". Source data: {f.about.split('; ', 1)[1]}" if "; " in f.about else ""),
        expected_counts={"total": sum(f.splits)} if f.splits else {},
        expected_split_counts=counts,
        group_kind=None,
        image_size=f"28x28 {'RGB' if f.channels == 3 else 'grey'} (64, 128, 224 in MedMNIST+)",
        layout=f"{flag}.npz or {flag}_<size>.npz with keys {', '.join(KEYS)}",
        download=_download(flag),
        folder_names=("medmnist", "MedMNIST", ".medmnist", flag),
    )


GENERIC = DatasetInfo(
    name="medmnist",
    title="MedMNIST: any 2D flag from its .npz file",
    description=(
        "Any 2D MedMNIST v2 / MedMNIST+ file (<flag>.npz, <flag>_<size>.npz), chosen with flag= (and size=) or the "
        "only *mnist*.npz in the folder (file= names another file). Class names come from MedMNIST's INFO labels "
        f"for the flags known here ({', '.join(sorted(FLAGS))}), else 0..K-1. The file's train/val/test splits are "
        "the predefined CV folds; no patient ids. chestmnist (multi-label) and the 3D flags are not supported. "
        "pathmnist, bloodmnist, breastmnist and dermamnist have their own cards."
    ),
    task="multiclass",
    kind="patch",
    classes=(),
    positive_class=None,
    primary_metric="balanced_accuracy",
    default_cv="predefined",
    source=MEDMNIST_SOURCE,
    licence="per flag, as stated by MedMNIST (CC BY 4.0 for most, CC BY-NC 4.0 for dermamnist)",
    citation=MEDMNIST_CITATION,
    image_size="28x28 (64, 128, 224 in MedMNIST+), grey or RGB",
    layout=f"<flag>.npz or <flag>_<size>.npz with keys {', '.join(KEYS)}",
    download=_download("<flag>"),
    folder_names=("medmnist", "MedMNIST", ".medmnist"),
)


def npz_files(path: Path, *, named: bool = True) -> list[Path]:
    """``.npz`` files directly in ``path`` (MedMNIST-named ones only when ``named``), sorted."""
    return sorted(
        Path(e.path)
        for e in entries(path, limit=2000)
        if e.is_file() and (_FILE.fullmatch(e.name) if named else e.name.lower().endswith(".npz"))
    )


def _file_name(flag: str, size: int) -> list[str]:
    return [f"{flag}.npz", f"{flag}_28.npz"] if size == 28 else [f"{flag}_{size}.npz"]


def _detect_flag(flag: str):
    def detect(path: Path) -> bool:
        return any(_FILE.fullmatch(p.name)["flag"].lower() == flag for p in npz_files(path))

    return detect


def _flag_entry(flag: str) -> DatasetEntry:
    info = flag_info(flag)

    def load(
        root: Path,
        *,
        cache_dir: Path,
        size: int = 28,
        splits: Sequence[str] | None = None,
        on_bad_label: str = "raise",
        **options,
    ) -> Dataset:
        check_options(flag, options, on_bad_label=on_bad_label, allowed=("size", "splits"))
        root = check_root(flag, root)
        path = _find(root, flag, _check_size(flag, size))
        return load_npz(
            path, flag=flag, name=flag, info=info, splits=splits, on_bad_label=on_bad_label, cache_dir=cache_dir
        )

    load.__doc__ = f"Load MedMNIST {flag} (``size=`` 28, 64, 128 or 224; ``splits=`` a subset of train, val, test)."
    return DatasetEntry(info=info, load=load, detect=_detect_flag(flag), uses_cache=True)


def _detect_any(path: Path) -> bool:
    return bool(npz_files(path, named=False))


def load_generic(
    root: Path,
    *,
    cache_dir: Path,
    flag: str | None = None,
    size: int = 28,
    file: str | None = None,
    kind: str | None = None,
    splits: Sequence[str] | None = None,
    on_bad_label: str = "raise",
    **options,
) -> Dataset:
    """Load one MedMNIST file from ``root``.

    Parameters
    ----------
    cache_dir
        Where arrays too large for memory are decompressed to (see the module docstring).
    flag, size
        Which file: ``<flag>.npz`` (28 px) or ``<flag>_<size>.npz``; by default the only MedMNIST file there.
    file
        A file name (in ``root``) or path to read instead, e.g. a renamed copy; its flag is read from the name
        when it looks like ``<flag>[_<size>].npz``.
    kind
        ``cell`` or ``patch`` (how features and pixels treat the images; default: the flag's, else ``patch``).
    splits
        A subset of ``train``, ``val``, ``test`` (default: all three).
    """
    check_options(GENERIC.name, options, on_bad_label=on_bad_label, allowed=("flag", "size", "file", "kind", "splits"))
    root = check_root(GENERIC.name, root)
    size = _check_size(GENERIC.name, size)
    if kind is not None and kind not in ("cell", "patch"):
        raise ConfigError(f"data set 'medmnist': kind must be 'cell' or 'patch', got {kind!r}")
    if file is not None:
        path = Path(file) if Path(file).is_absolute() else root / file
        if not path.is_file():
            raise DataError(f"data set 'medmnist': file {path} not found")
        m = _FILE.fullmatch(path.name)
        flag = flag or (m["flag"].lower() if m else None)
    elif flag is not None:
        path = _find(root, flag.lower(), size)
    else:
        found = npz_files(root) or npz_files(root, named=False)
        if len(found) != 1:
            listed = ", ".join(p.name for p in found) or "none"
            raise DataError(
                f"data set 'medmnist': {len(found)} .npz files in {root} ({listed}); choose one with "
                "flag=NAME (and size=) or file=NAME"
            )
        path = found[0]
        m = _FILE.fullmatch(path.name)
        flag = m["flag"].lower() if m else None
    flag = flag.lower() if flag else None
    base = replace(flag_info(flag, name=GENERIC.name), folder_names=GENERIC.folder_names) if flag in FLAGS else GENERIC
    if kind is not None:
        base = replace(base, kind=kind)
    return load_npz(
        path, flag=flag, name=GENERIC.name, info=base, splits=splits, on_bad_label=on_bad_label, cache_dir=cache_dir
    )


ENTRIES: tuple[DatasetEntry, ...] = (
    *(_flag_entry(flag) for flag in REGISTERED),
    DatasetEntry(info=GENERIC, load=load_generic, detect=_detect_any, uses_cache=True),
)


def _check_size(name: str, size: int) -> int:
    if isinstance(size, bool) or size not in SIZES:
        raise ConfigError(f"data set {name!r}: size must be one of {', '.join(map(str, SIZES))}, got {size!r}")
    return size


def _find(root: Path, flag: str, size: int) -> Path:
    for name in _file_name(flag, size):
        if (root / name).is_file():
            return root / name
    others = ", ".join(p.name for p in npz_files(root)) or "none"
    raise DataError(f"{root / _file_name(flag, size)[0]} not found (MedMNIST files there: {others})")


def load_npz(
    path: Path,
    *,
    flag: str | None,
    name: str,
    info: DatasetInfo,
    cache_dir: Path,
    splits: Sequence[str] | None = None,
    on_bad_label: str = "raise",
) -> Dataset:
    """Samples of a MedMNIST ``.npz`` file (see the module docstring); large arrays go to ``cache_dir``.

    Raises
    ------
    DataError
        For a file that is not a readable ``.npz``, lacks one of :data:`KEYS`, holds multi-label or 3D data,
        images and labels of different lengths, or labels outside the flag's classes; each names the file.
    """
    chosen = _choose(splits, name)
    if flag in MULTI_LABEL:
        raise DataError(f"{path}: {flag} is multi-label (14 findings per image); only single-label files are supported")
    if flag and flag.endswith("3d"):
        raise DataError(f"{path}: {flag} holds 3D volumes; only the 2D MedMNIST flags are supported")
    arrays = _read_arrays(path, chosen, cache_dir=cache_dir)
    labels = {s: _labels(arrays[f"{s}_labels"], path, f"{s}_labels") for s in chosen}
    images = {s: arrays[f"{s}_images"] for s in chosen}
    for s in chosen:
        _check_images(images[s], path, f"{s}_images", len(labels[s]))
    top = max(int(v.max()) for v in labels.values() if len(v))
    classes = info.classes if info.classes else tuple(str(k) for k in range(top + 1))
    bad = BadFiles(on_bad_label, path.parent)
    predefined = len(chosen) >= 2
    samples: list[Sample] = []
    for s in chosen:
        for i, value in enumerate(labels[s].tolist()):
            if not 0 <= value < len(classes):
                bad(
                    path,
                    "label out of range",
                    f"{path}: {s}_labels[{i}] = {value}, but {flag or 'this file'} has {len(classes)} classes "
                    f"(0..{len(classes) - 1})",
                )
                continue
            meta = {"split": s, "index": i, **({"fold": s} if predefined else {})}
            samples.append(Sample(id=f"{s}/{i:06d}", label=classes[value], image=images[s][i], meta=meta))
    require_classes(name, samples, classes, path)
    task = "binary" if len(classes) == 2 else "multiclass"
    positive = info.positive_class if info.positive_class in classes else (classes[-1] if task == "binary" else None)
    info = replace(info, name=name, classes=classes, task=task, positive_class=positive)
    notes = [f"read {path.name} ({flag or 'unknown flag'}): splits {', '.join(chosen)}; no patient ids"]
    if not predefined:
        notes.append(f"only split {chosen[0]} loaded: no predefined folds, image-level CV within it")
        info = replace(info, default_cv="stratified_kfold")
    if not info.classes or flag not in FLAGS:
        notes.append(f"class names 0..{len(classes) - 1}: flag {flag!r} is not in the built-in label table")
    fingerprint = quick_fingerprint(
        [path], extra=[f"medmnist|{flag}|{','.join(chosen)}|{info.kind}", *sample_fingerprint_lines(samples)]
    )
    return release_dataset(info, path.parent, fingerprint=fingerprint, samples=samples, notes=[*notes, *bad.notes()])


def _choose(splits: Sequence[str] | None, name: str) -> list[str]:
    if splits is None:
        return list(SPLITS)
    if isinstance(splits, str):
        splits = [splits]
    if not splits or any(s not in SPLITS for s in splits):
        raise ConfigError(f"data set {name!r}: splits must be chosen from {', '.join(SPLITS)}; got {list(splits)!r}")
    return [s for s in SPLITS if s in splits]


def _read_arrays(path: Path, chosen: list[str], *, cache_dir: Path) -> dict[str, np.ndarray]:
    """The arrays of the chosen splits: in memory when small, else decompressed once into the cache and mapped."""
    try:
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise DataError(f"cannot read {path}: not a valid .npz file ({exc})") from None
    with zf:
        members = {n.removesuffix(".npy"): n for n in zf.namelist()}
        missing = [k for k in KEYS if k not in members]
        if missing:
            raise DataError(
                f"{path}: not a MedMNIST file: missing key(s) {', '.join(missing)} (keys found: "
                f"{', '.join(sorted(members)) or 'none'}); a MedMNIST .npz holds {', '.join(KEYS)}"
            )
        out = {}
        for key in (f"{s}_{part}" for s in chosen for part in ("images", "labels")):
            out[key] = _member(path, zf, members[key], key, cache_dir=cache_dir)
    return out


def _member(path: Path, zf: zipfile.ZipFile, member: str, key: str, *, cache_dir: Path) -> np.ndarray:

    try:
        with zf.open(member) as f:
            version = npy.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = npy.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = npy.read_array_header_2_0(f)
            else:
                raise DataError(f"{path}: {key} uses .npy format version {version}; 1.0 or 2.0 expected")
            if dtype.hasobject:
                raise DataError(f"{path}: {key} holds Python objects; numeric arrays expected")
            nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            if nbytes <= IN_MEMORY_BYTES:
                data = np.frombuffer(f.read(nbytes), dtype=dtype)
                if data.size != int(np.prod(shape, dtype=np.int64)):
                    raise DataError(f"{path}: {key} is truncated")
                return data.reshape(shape, order="F" if fortran else "C")
            return _to_cache(path, f, key, shape, dtype, fortran, folder=Path(cache_dir) / "medmnist")
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"cannot read {key} from {path}: {exc}") from None


def _to_cache(path: Path, f, key: str, shape, dtype, fortran: bool, *, folder: Path) -> np.ndarray:
    """Stream a large member into ``<folder>/<hash>.npy`` (once) and memory-map it read-only."""
    st = path.stat()
    target = folder / f"{stable_hash([str(path.resolve()), st.st_size, st.st_mtime_ns, key])}.npy"
    if not target.is_file():
        with atomic_path(target) as tmp:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape, fortran_order=fortran)
            flat = out.reshape(-1, order="F" if fortran else "C")
            step, done = 64 * 2**20 // dtype.itemsize, 0
            while done < flat.size:
                chunk = np.frombuffer(f.read(min(step, flat.size - done) * dtype.itemsize), dtype=dtype)
                if not chunk.size:
                    raise DataError(f"{path}: {key} is truncated")
                flat[done : done + chunk.size] = chunk
                done += chunk.size
            out.flush()
            del out, flat
    return np.load(target, mmap_mode="r")


def _labels(y: np.ndarray, path: Path, key: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        raise DataError(f"{path}: {key} has shape {y.shape}: multi-label files are not supported (one label per image)")
    if y.ndim not in (1, 2) or not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{path}: {key} has shape {y.shape} and type {y.dtype}; integer labels N x 1 expected")
    return y.reshape(-1).astype(np.int64)


def _check_images(x: np.ndarray, path: Path, key: str, n: int) -> None:
    if x.ndim == 4 and x.shape[3] not in (1, 3):
        raise DataError(f"{path}: {key} has shape {x.shape}: 3D volumes are not supported (N x H x W [x 3] expected)")
    if x.ndim not in (3, 4):
        raise DataError(f"{path}: {key} has shape {x.shape}; N x H x W (grey) or N x H x W x 3 (RGB) expected")
    if len(x) != n:
        raise DataError(f"{path}: {key} holds {len(x)} images but {key.replace('images', 'labels')} {n} labels")
