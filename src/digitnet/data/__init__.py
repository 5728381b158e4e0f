"""Datasets for digitnet: the catalogue of the MNIST family, IDX files, the fetch chain and
cache, splits, scaling.

:data:`CATALOGUE` lists the datasets (``mnist``, ``fashion-mnist``, ``kmnist``,
``emnist-digits``, ``emnist-letters``: class names, files, checksums and where they come
from, mirrors); ``load_dataset(name)`` loads any of them and ``load_mnist()`` is its MNIST
case (``data_dir``, ``$DIGITNET_DATA``, or the cache, fetched into it from mirrors / the
package index; cached and fetched files are checksum-verified; the chain is a list of source
objects, :func:`default_sources`). Both return uint8 (n, 784) images with int64 labels;
:class:`Normalizer` turns batches into floats. :mod:`.formats` reads and writes the other
formats the seeds used (Kaggle CSV, Keras npz, OpenML CSV).
"""

from . import formats
from .datasets import (
    CATALOGUE,
    Dataset,
    DatasetInfo,
    UnknownDatasetError,
    dataset_info,
    dataset_names,
    load_dataset,
    load_mnist,
    select_digits,
    train_valid_split,
)
from .idx import IDXError, read_idx, write_idx
from .pickled import UnsafePickleError, load_mnist_pkl_bytes, read_mnist_pkl, write_mnist_pkl
from .scaling import Normalizer
from .sources import (
    MNIST_FILES,
    CacheDirectory,
    ChecksumError,
    DataNotFoundError,
    HTTPSMirrors,
    LocalDirectory,
    PackageIndexWheel,
    cache_dir,
    default_sources,
    locate_mnist,
    locate_mnist_pkl,
    search_dirs,
    verify_mnist_dir,
)

__all__ = [
    "IDXError",
    "read_idx",
    "write_idx",
    "MNIST_FILES",
    "DataNotFoundError",
    "ChecksumError",
    "cache_dir",
    "search_dirs",
    "default_sources",
    "LocalDirectory",
    "CacheDirectory",
    "HTTPSMirrors",
    "PackageIndexWheel",
    "locate_mnist",
    "locate_mnist_pkl",
    "formats",
    "verify_mnist_dir",
    "UnsafePickleError",
    "load_mnist_pkl_bytes",
    "read_mnist_pkl",
    "write_mnist_pkl",
    "CATALOGUE",
    "Dataset",
    "DatasetInfo",
    "UnknownDatasetError",
    "dataset_info",
    "dataset_names",
    "load_dataset",
    "load_mnist",
    "select_digits",
    "train_valid_split",
    "Normalizer",
]
