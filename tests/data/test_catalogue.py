"""The dataset catalogue: its entries, named directories of any four IDX files, and fetching
the family's other layouts (MD5 of .gz files, an EMNIST-like zip archive) from a local file
server with small files made here (no network)."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

from digitnet.data import CATALOGUE, dataset_info, load_dataset
from digitnet.data.datasets import ROLES, DatasetInfo, UnknownDatasetError, dataset_sources, find_idx_files
from digitnet.data.idx import idx_header
from digitnet.data.sources import (
    MD5_GZ,
    CacheDirectory,
    ChecksumError,
    DataNotFoundError,
    HTTPSMirrors,
    ZipArchive,
    file_problem,
    http_download,
)
from digitnet.errors import SpecError
from digitnet.spec import DATASETS, RunSpec
from tests.data.test_sources import isolated, local_server  # noqa: F401  (fixtures)

FASHION = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "fashion-mnist"
requires_fashion = pytest.mark.skipif(not FASHION.is_dir(), reason=f"Fashion-MNIST not at {FASHION}")


def _arrays(n_train: int = 6, n_test: int = 4, n_classes: int = 10, offset: int = 0, seed: int = 0):
    rng = np.random.default_rng(seed)
    return {"train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
            "train_labels": (np.arange(n_train) % n_classes + offset).astype(np.uint8),
            "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
            "test_labels": (np.arange(n_test) % n_classes + offset).astype(np.uint8)}


def _content(arrays: dict[str, np.ndarray]) -> dict[str, bytes]:
    return {role: idx_header(a) + a.tobytes() for role, a in arrays.items()}


def _like(name: str, **changes) -> DatasetInfo:
    return dataclasses.replace(CATALOGUE[name], **changes)


# --------------------------------------------------------------------------- the entries
def test_every_entry_is_complete() -> None:
    for name, info in CATALOGUE.items():
        assert info.name == name and set(info.files) == set(ROLES)
        assert set(info.checksums) == set(info.files.values())
        assert info.n_train > 0 and info.n_test > 0 and len(set(info.class_names)) == info.n_classes
        assert info.checksum_source and info.homepage and info.licence
        assert info.mirrors or info.archive, f"{name} has nowhere to be fetched from"
        for url in info.mirrors + (info.archive[0] if info.archive else ()):
            assert url.startswith("https://"), url
        for checksum, size in info.checksums.values():
            assert size > 0
            if checksum is None:  # only where the archive is verified as a whole
                assert info.archive is not None and re.fullmatch("[0-9a-f]{32}", info.archive[1])
            elif checksum.startswith(MD5_GZ):
                assert re.fullmatch("[0-9a-f]{32}", checksum[len(MD5_GZ):]) and "MD5" in info.checksum_source
            else:
                assert re.fullmatch("[0-9a-f]{64}", checksum) and "SHA-256" in info.checksum_source
    assert set(CATALOGUE) >= {"mnist", "fashion-mnist", "kmnist", "emnist-digits", "emnist-letters"}
    assert CATALOGUE["emnist-letters"].n_classes == 26 and CATALOGUE["emnist-digits"].n_train == 240_000


def test_spec_datasets_come_from_the_catalogue() -> None:
    assert {k: v["classes"] for k, v in DATASETS.items()} == {k: i.n_classes for k, i in CATALOGUE.items()}
    assert RunSpec().replace(dataset="emnist-letters", digits=(0, 25)).data.digits == (0, 25)
    with pytest.raises(SpecError, match=r"data.digits: mnist has the classes 0..9"):
        RunSpec().replace(digits=(3, 12))
    with pytest.raises(SpecError, match="data.format: the kaggle format holds MNIST only"):
        RunSpec().replace(dataset="fashion-mnist", format="kaggle")
    with pytest.raises(SpecError, match="data.dataset: expected one of mnist, fashion-mnist"):
        RunSpec().replace(dataset="cifar")
    with pytest.raises(UnknownDatasetError, match="digitnet knows mnist, fashion-mnist"):
        dataset_info("cifar")


@requires_fashion
def test_real_fashion_mnist_is_verified() -> None:
    ds = load_dataset("fashion-mnist", FASHION, progress=False)
    assert ds.verified and "verified: the canonical Fashion-MNIST files" in ds.source
    assert ds.x_train.shape == (60_000, 784) and ds.x_test.shape == (10_000, 784)
    assert ds.class_names[9] == "Ankle boot" and np.bincount(ds.y_test).tolist() == [1000] * 10
    assert ds.describe()["class_names"][0] == "T-shirt/top"


# --------------------------------------------------------------------------- named directories
def test_any_four_idx_files_load_unverified(tmp_path: Path) -> None:
    arrays = _arrays()
    names = {"train_images": "my-train-images.idx3-ubyte.gz", "train_labels": "my-train-labels.idx1-ubyte",
             "test_images": "my-test-images.idx3-ubyte", "test_labels": "my-test-labels.idx1-ubyte.gz"}
    for role, data in _content(arrays).items():
        (tmp_path / names[role]).write_bytes(gzip.compress(data) if names[role].endswith(".gz") else data)
    (tmp_path / "README.txt").write_text("not an IDX file")
    assert {r: p.name for r, p in find_idx_files(tmp_path).items()} == names
    ds = load_dataset("fashion-mnist", tmp_path, progress=False)
    assert not ds.verified and ds.source.endswith("(unverified: not the canonical Fashion-MNIST files)")
    assert np.array_equal(ds.x_train, arrays["train_images"].reshape(6, -1))
    assert ds.class_names[1] == "Trouser"


def test_ambiguous_or_missing_files_are_one_line_errors(tmp_path: Path) -> None:
    for role, data in _content(_arrays()).items():
        (tmp_path / f"a-{role.replace('_', '-')}-idx").write_bytes(data)
    (tmp_path / "b-train-images-idx3").write_bytes(b"")
    with pytest.raises(DataNotFoundError, match="more than one file could be the train images"):
        load_dataset("mnist", tmp_path, progress=False)
    (tmp_path / "b-train-images-idx3").unlink()
    (tmp_path / "a-test-labels-idx").unlink()
    with pytest.raises(DataNotFoundError, match=r"is missing t10k-labels-idx1-ubyte\[.gz\] \(MNIST\)"):
        load_dataset("mnist", tmp_path, progress=False)


def test_env_dir_names_mnist_and_the_others_by_subdirectory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated: Path  # noqa: F811
) -> None:
    root = tmp_path / "data"
    for sub, seed in (("mnist", 0), ("kmnist", 1)):
        (root / sub).mkdir(parents=True)
        for role, data in _content(_arrays(seed=seed)).items():
            (root / sub / CATALOGUE["mnist"].files[role]).write_bytes(data)
    monkeypatch.setenv("DIGITNET_DATA", str(root / "mnist"))
    assert load_dataset("mnist", progress=False).source.startswith("$DIGITNET_DATA")
    with pytest.raises(DataNotFoundError, match="Kuzushiji-MNIST not found"):  # no kmnist/ under it: cache
        load_dataset("kmnist", fetch=False, progress=False)
    monkeypatch.setenv("DIGITNET_DATA", str(root))
    mnist, kmnist = (load_dataset(n, progress=False) for n in ("mnist", "kmnist"))
    assert not np.array_equal(mnist.x_train, kmnist.x_train) and f"{root / 'kmnist'}" in kmnist.source


# --------------------------------------------------------------------------- fetching
def test_md5_of_the_gz_files_from_a_local_mirror(
    isolated: Path, local_server: tuple[str, Path]  # noqa: F811
) -> None:
    base, www = local_server
    content = _content(_arrays(seed=3))
    files = CATALOGUE["kmnist"].files
    gz = {role: gzip.compress(data, mtime=0) for role, data in content.items()}
    for role, data in gz.items():
        (www / f"{files[role]}.gz").write_bytes(data)
    table = {files[r]: (MD5_GZ + hashlib.md5(gz[r]).hexdigest(), len(content[r])) for r in ROLES}
    info = _like("kmnist", checksums=table, mirrors=(base,), subdirectory="tiny-kmnist")
    ds = load_dataset(info, progress=False)
    assert ds.name == "kmnist" and ds.verified and ds.y_train.tolist() == list(range(6))
    cached = isolated.parent / "tiny-kmnist" / f"{files['train_images']}.gz"
    assert cached.read_bytes() == gz["train_images"]  # stored as received, so its MD5 still holds
    # a recompressed copy has the same content but not the maintainers' MD5: refused in the cache
    cached.write_bytes(gzip.compress(content["train_images"], compresslevel=1))
    assert "has MD5" in file_problem(cached, table[files["train_images"]])
    (www / f"{files['train_images']}.gz").write_bytes(gzip.compress(content["train_images"], compresslevel=1))
    with pytest.raises(ChecksumError, match="train-images-idx3-ubyte has MD5"):
        load_dataset(info, progress=False)  # set aside, fetched again, and the mirror's copy is refused


def _emnist_zip(arrays: dict[str, np.ndarray], info: DatasetInfo) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for role, a in arrays.items():
            stored = a.transpose(0, 2, 1) if a.ndim == 3 else a  # EMNIST stores images column by column
            zf.writestr(f"gzip/{info.files[role]}.gz", gzip.compress(idx_header(stored) + stored.tobytes()))
        zf.writestr("gzip/emnist-other-split-train-images-idx3-ubyte.gz", b"not wanted")
    return buf.getvalue()


def test_emnist_letters_from_a_zip_archive(
    isolated: Path, local_server: tuple[str, Path], capsys: pytest.CaptureFixture[str]  # noqa: F811
) -> None:
    base, www = local_server
    letters = CATALOGUE["emnist-letters"]
    arrays = _arrays(n_train=52, n_test=26, n_classes=26, offset=1)
    archive = _emnist_zip(arrays, letters)
    (www / "gzip.zip").write_bytes(archive)
    sizes = {letters.files[r]: (None, len(idx_header(a) + a.tobytes())) for r, a in arrays.items()}
    urls, _, members, _ = letters.archive
    info = _like("emnist-letters", checksums=sizes, subdirectory="tiny-letters",
                 archive=((f"{base}missing.zip", f"{base}gzip.zip"), hashlib.md5(archive).hexdigest(),
                          members, 1 << 20))
    ds = load_dataset(info, progress=True)
    assert np.array_equal(ds.x_train, arrays["train_images"].reshape(52, -1))  # turned back to rows
    assert ds.y_train.min() == 0 and ds.y_train.max() == 25 and ds.class_names[0] == "a"
    assert ds.verified and "archive" in ds.source
    assert f"downloading {base}missing.zip" in capsys.readouterr().err
    assert sorted(p.name for p in (isolated.parent / "tiny-letters").iterdir()) == sorted(
        f"{n}.gz" for n in letters.files.values())


def test_archive_with_the_wrong_md5_writes_nothing(
    isolated: Path, local_server: tuple[str, Path]  # noqa: F811
) -> None:
    base, www = local_server
    digits = CATALOGUE["emnist-digits"]
    arrays = _arrays()
    (www / "gzip.zip").write_bytes(_emnist_zip(arrays, digits))
    sizes = {digits.files[r]: (None, len(idx_header(a) + a.tobytes())) for r, a in arrays.items()}
    info = _like("emnist-digits", checksums=sizes, subdirectory="tiny-digits",
                 archive=((f"{base}gzip.zip",), "0" * 32, digits.archive[2], 1 << 20))
    with pytest.raises(ChecksumError, match=r"gzip.zip has MD5 [0-9a-f]{32}, expected 0{32}"):
        load_dataset(info, progress=False)
    cache = isolated.parent / "tiny-digits"
    assert not cache.exists() or not any(cache.iterdir())


def test_http_download_streams_to_a_file_with_a_limit(
    tmp_path: Path, local_server: tuple[str, Path]  # noqa: F811
) -> None:
    base, www = local_server
    (www / "big").write_bytes(b"y" * 5000)
    assert http_download(f"{base}big", tmp_path / "out", max_bytes=5000) == (5000, hashlib.md5(b"y" * 5000)
                                                                             .hexdigest())
    assert (tmp_path / "out").read_bytes() == b"y" * 5000
    with pytest.raises(ValueError, match="too large"):
        http_download(f"{base}big", tmp_path / "out", max_bytes=4999)
    with pytest.raises(ValueError, match="response larger than 4096 bytes"):
        http_download(f"{base}endless", tmp_path / "out", max_bytes=4096)


def test_default_chains() -> None:
    kinds = {name: [type(s).__name__ for s in dataset_sources(name)] for name in CATALOGUE}
    assert kinds["mnist"] == ["CacheDirectory", "HTTPSMirrors", "PackageIndexWheel"]
    assert kinds["fashion-mnist"] == kinds["kmnist"] == ["CacheDirectory", "HTTPSMirrors"]
    assert kinds["emnist-digits"] == kinds["emnist-letters"] == ["CacheDirectory", "ZipArchive"]
    cache = dataset_sources("fashion-mnist")[0]
    assert isinstance(cache, CacheDirectory) and cache.path.name == "fashion-mnist"
    assert isinstance(dataset_sources("kmnist")[1], HTTPSMirrors)
    assert isinstance(dataset_sources("emnist-digits")[1], ZipArchive)
    with pytest.raises(ValueError, match="not an https:// URL"):
        ZipArchive(["http://example.org/gzip.zip"], "0" * 32, {}, max_bytes=1)
