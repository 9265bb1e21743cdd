"""Classification data sets as train / validation / test tensors, loaded without downloading.

Four data sets, all with 10 classes:

* ``"digits"`` — the 8×8 handwritten digits shipped with scikit-learn (1797 images, 64 pixels;
  the UCI "Optical Recognition of Handwritten Digits" set, Alpaydin & Kaynak 1998).
* ``"mnist1d"`` — MNIST-1D (Greydanus 2020, "Scaling down deep learning", arXiv:2011.14439),
  generated locally by the ``mnist1d`` package (40 features per example).
* ``"mnist"`` — MNIST (LeCun, Bottou, Bengio & Haffner 1998), 28×28 images, read from the
  standard IDX files in a directory the user gives.
* ``"fashion-mnist"`` — Fashion-MNIST (Xiao, Rasul & Vollgraf 2017, arXiv:1708.07747), same
  format and file names as MNIST.

The validation split is always carved out of the training split, so hyper-parameters can be
chosen without looking at the test set.
"""

from __future__ import annotations

import gzip
import math
import os
import random
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from galu.seeding import derive_seed

__all__ = ["DATASETS", "Dataset", "DatasetName", "load_dataset", "read_idx", "write_idx"]

#: The names :func:`load_dataset` accepts.
DatasetName = Literal["digits", "mnist1d", "mnist", "fashion-mnist", "cifar10"]
DATASETS: tuple[str, ...] = typing.get_args(DatasetName)

#: Image shape (channels, height, width) of each dataset's flattened inputs (None: not images).
IMAGE_SHAPES: dict[str, tuple[int, int, int] | None] = {
    "digits": (1, 8, 8),
    "mnist1d": None,
    "mnist": (1, 28, 28),
    "fashion-mnist": (1, 28, 28),
    "cifar10": (3, 32, 32),
}

# CIFAR-10's "python version" files (the folder cifar-10-batches-py of the official archive).
CIFAR10_FILES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch")

#: Fraction of the 1797 digits images held out as the test split (digits has no official split).
DIGITS_TEST_FRACTION = 0.2

# The four files of MNIST and Fashion-MNIST (each may also be present gzipped, with ".gz").
IDX_FILES: dict[str, str] = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

_SOURCES: dict[str, tuple[str, str]] = {
    "mnist": ("MNIST (LeCun et al. 1998)", "http://yann.lecun.com/exdb/mnist/"),
    "fashion-mnist": (
        "Fashion-MNIST (Xiao et al. 2017)",
        "https://github.com/zalandoresearch/fashion-mnist",
    ),
    "cifar10": (
        "CIFAR-10 (Krizhevsky 2009)",
        "https://www.cs.toronto.edu/~kriz/cifar.html (the 'python version')",
    ),
}


@dataclass(frozen=True, eq=False)
class Dataset:
    """A classification data set split three ways.

    Inputs ``X_*`` are floating tensors of shape ``(n_split, n_features)``; labels ``y_*`` are
    ``int64`` tensors of shape ``(n_split,)`` with values in ``[0, n_classes)``. The validation
    split is disjoint from the training split and drawn from the original training data.
    """

    name: str
    X_train: torch.Tensor
    y_train: torch.Tensor
    X_val: torch.Tensor
    y_val: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int

    def __post_init__(self) -> None:
        d = self.X_train.shape[-1] if self.X_train.ndim == 2 else None
        for split in ("train", "val", "test"):
            X, y = getattr(self, f"X_{split}"), getattr(self, f"y_{split}")
            if X.ndim != 2 or X.shape[1] != d or not X.is_floating_point():
                raise ValueError(
                    f"X_{split} must be a floating (n, {d}) tensor, got {X.dtype} "
                    f"of shape {tuple(X.shape)}."
                )
            if y.dtype != torch.int64 or y.shape != (X.shape[0],):
                raise ValueError(
                    f"y_{split} must be an int64 tensor of shape ({X.shape[0]},), got {y.dtype} "
                    f"of shape {tuple(y.shape)}."
                )

    @property
    def n_features(self) -> int:
        """Number of input features (columns of ``X_*``)."""
        return int(self.X_train.shape[1])

    def summary(self) -> str:
        """One line: name, classes, features and the size of each split."""
        return (
            f"{self.name}: {self.n_classes} classes, {self.n_features} features; "
            f"train {len(self.y_train)}, val {len(self.y_val)}, test {len(self.y_test)}"
        )


def load_dataset(
    name: str,
    *,
    root: str | os.PathLike[str] | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    mnist1d_samples: int | None = None,
) -> Dataset:
    """Load one of :data:`DATASETS` as a :class:`Dataset`; nothing is ever downloaded.

    ``val_fraction`` of the training split (rounded to the nearest integer count) becomes the
    validation split, stratified by class and chosen by ``numpy.random.default_rng`` seeded from
    ``seed``; the test split is never touched.

    * ``"digits"``: ``sklearn.datasets.load_digits``; pixels divided by 16 (to ``[0, 1]``),
      ``X`` of shape ``(n, 64)``. The test split (:data:`DIGITS_TEST_FRACTION`, stratified) is
      drawn with a fixed seed, so it is the same for every ``seed``.
    * ``"mnist1d"``: generated by ``mnist1d.data.make_dataset`` with the package's default
      arguments and ``args.seed = seed`` (the package's own default seed is 42);
      ``mnist1d_samples`` (a multiple of 10) replaces the default 5000 examples, of which the
      generator keeps 80% for training. ``X`` of shape ``(n, 40)``, standardised
      by the generator.
    * ``"mnist"``, ``"fashion-mnist"``: the four IDX files (``train-images-idx3-ubyte``,
      ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each
      optionally gzipped as ``*.gz``) from the directory ``root``; images flattened to
      ``(n, 784)`` and divided by 255 (to ``[0, 1]``). A :class:`FileNotFoundError` says where
      to get the files when ``root`` is missing or incomplete.
    * ``"cifar10"``: the six pickled batches of CIFAR-10's python version (``data_batch_1`` …
      ``data_batch_5``, ``test_batch``) from ``root``; images ``(n, 3072)`` in channel-major
      order (reshape to ``(n, 3, 32, 32)``), divided by 255. The files are unpickled: load
      only files you trust (the official archive).

    ``dtype`` (floating) is the dtype of the inputs; labels are ``int64``.
    """
    if name not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; valid names are {', '.join(DATASETS)}.")
    if not isinstance(val_fraction, int | float) or not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"`val_fraction` (={val_fraction!r}) must be in [0, 1).")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"`seed` (={seed!r}) must be a non-negative integer.")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"`dtype` (={dtype!r}) must be a floating torch dtype.")
    if mnist1d_samples is not None and name != "mnist1d":
        raise ValueError("`mnist1d_samples` only applies to the 'mnist1d' dataset.")

    if name == "digits":
        X, y, X_test, y_test = _digits()
    elif name == "mnist1d":
        X, y, X_test, y_test = _mnist1d(int(seed), mnist1d_samples)
    elif name == "cifar10":
        X, y, X_test, y_test = _cifar10(root)
    else:
        X, y, X_test, y_test = _mnist_like(name, root)

    rng = np.random.default_rng(derive_seed(int(seed), "data", name, "val-split"))
    val = _stratified_subset(y, round(val_fraction * len(y)), rng)
    if len(val) == len(y):
        raise ValueError(f"`val_fraction` (={val_fraction}) leaves no training examples.")
    train = np.setdiff1d(np.arange(len(y)), val)  # sorted: original order of the training data

    def inputs(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a)).to(dtype)

    def labels(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.int64))

    return Dataset(
        name=name,
        X_train=inputs(X[train]),
        y_train=labels(y[train]),
        X_val=inputs(X[val]),
        y_val=labels(y[val]),
        X_test=inputs(X_test),
        y_test=labels(y_test),
        n_classes=10,
    )


def _stratified_subset(y: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of ``k`` of the ``len(y)`` examples, each class getting its share ±1.

    The indices are shuffled, grouped by class (random order within each class) and ``k``
    evenly spaced positions of that sequence are taken, so a class of ``n_c`` examples
    contributes ``floor`` or ``ceil`` of ``k·n_c/len(y)``.
    """
    n = len(y)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    perm = rng.permutation(n)
    grouped = perm[np.argsort(y[perm], kind="stable")]
    positions = ((np.arange(k) + 0.5) * n / k).astype(np.int64)
    return np.sort(grouped[positions])


def _digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch: Any = load_digits()
    X = np.asarray(bunch.data, dtype=np.float64) / 16.0
    y = np.asarray(bunch.target, dtype=np.int64)
    rng = np.random.default_rng(derive_seed(0, "data", "digits", "test-split"))
    test = _stratified_subset(y, round(DIGITS_TEST_FRACTION * len(y)), rng)
    train = np.setdiff1d(np.arange(len(y)), test)
    return X[train], y[train], X[test], y[test]


def _mnist1d(
    seed: int, num_samples: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    if seed >= 2**32:
        raise ValueError(f"`seed` (={seed}) must be below 2**32 for 'mnist1d' (NumPy's seed).")
    if num_samples is not None and (
        isinstance(num_samples, bool)
        or not isinstance(num_samples, int)
        or num_samples < 10
        or num_samples % 10
    ):
        raise ValueError(
            f"`mnist1d_samples` (={num_samples!r}) must be a positive multiple of 10 "
            "(the generator makes the same number of examples for each of the 10 classes)."
        )
    import mnist1d.data

    args = mnist1d.data.get_dataset_args()
    args.seed = seed
    if num_samples is not None:
        args.num_samples = num_samples
    # make_dataset seeds and draws from the global `random` and `numpy.random` generators;
    # put their states back so that loading data does not change anybody else's random stream.
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        data = mnist1d.data.make_dataset(args)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    return (
        np.asarray(data["x"], dtype=np.float64),
        np.asarray(data["y"], dtype=np.int64),
        np.asarray(data["x_test"], dtype=np.float64),
        np.asarray(data["y_test"], dtype=np.int64),
    )


def _mnist_like(
    name: str, root: str | os.PathLike[str] | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    base = None if root is None else Path(root).expanduser()
    paths: dict[str, Path] = {}
    missing: list[str] = []
    for key, fname in IDX_FILES.items():
        found = None
        if base is not None:
            for candidate in (base / fname, base / f"{fname}.gz"):
                if candidate.is_file():
                    found = candidate
                    break
        if found is None:
            missing.append(fname)
        else:
            paths[key] = found
    if missing:
        title, url = _SOURCES[name]
        if base is None:
            where = "no directory was given (`root=None`)"
        else:
            where = f"missing {', '.join(missing)} in {os.fspath(base.resolve())}"
        raise FileNotFoundError(
            f"{title} not found: {where}. load_dataset({name!r}, root=DIR) reads the four IDX "
            f"files {', '.join(IDX_FILES.values())} (each may be gzipped, '*.gz') from the "
            f"directory DIR; download them from {url} and put them there."
        )

    arrays = {key: read_idx(path) for key, path in paths.items()}
    images: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    for split in ("train", "test"):
        im, lab = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if im.dtype != np.uint8 or im.ndim != 3 or lab.dtype != np.uint8 or lab.ndim != 1:
            raise ValueError(
                f"{name} {split} files must hold uint8 images (n, rows, cols) and uint8 labels "
                f"(n,); got {im.dtype} {im.shape} in {paths[f'{split}_images']} and {lab.dtype} "
                f"{lab.shape} in {paths[f'{split}_labels']}."
            )
        if len(im) != len(lab):
            raise ValueError(
                f"{name} {split} split: {len(im)} images but {len(lab)} labels "
                f"({paths[f'{split}_images']}, {paths[f'{split}_labels']})."
            )
        if lab.size and lab.max() >= 10:
            raise ValueError(
                f"{name} {split} labels must be in 0..9; found {int(lab.max())} "
                f"in {paths[f'{split}_labels']}."
            )
        images.append(im.reshape(len(im), -1).astype(np.float64) / 255.0)
        labels.append(lab.astype(np.int64))
    if images[0].shape[1] != images[1].shape[1]:
        raise ValueError(
            f"{name} train and test images differ in size: {arrays['train_images'].shape[1:]} "
            f"vs {arrays['test_images'].shape[1:]}."
        )
    return images[0], labels[0], images[1], labels[1]


def _cifar10(root: str | os.PathLike[str] | None) -> tuple[np.ndarray, ...]:
    import pickle

    base = None if root is None else Path(root).expanduser()
    missing = [f for f in CIFAR10_FILES if base is None or not (base / f).is_file()]
    if missing:
        title, url = _SOURCES["cifar10"]
        where = (
            "no directory was given (`root=None`)"
            if base is None
            else f"missing {', '.join(missing)} in {os.fspath(base.resolve())}"
        )
        raise FileNotFoundError(
            f"{title} not found: {where}. load_dataset('cifar10', root=DIR) reads "
            f"{', '.join(CIFAR10_FILES)} from DIR (the folder cifar-10-batches-py of the "
            f"archive); download it from {url} and unpack it there."
        )
    assert base is not None
    parts: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for fname in CIFAR10_FILES:
        with open(base / fname, "rb") as fh:
            batch = pickle.load(fh, encoding="bytes")
        data = np.asarray(batch[b"data"])
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            raise ValueError(
                f"{base / fname}: b'data' must be uint8 (n, 3072); got {data.dtype} {data.shape}."
            )
        if len(labels) != len(data) or (labels.size and not 0 <= labels.min() <= labels.max() < 10):
            raise ValueError(f"{base / fname}: b'labels' must be n integers in 0..9.")
        parts[fname] = (data.astype(np.float64) / 255.0, labels)
    X = np.concatenate([parts[f][0] for f in CIFAR10_FILES[:5]])
    y = np.concatenate([parts[f][1] for f in CIFAR10_FILES[:5]])
    return X, y, *parts["test_batch"]


def write_cifar10_batch(path: str | os.PathLike[str], data: np.ndarray, labels: np.ndarray) -> None:
    """Write one CIFAR-10 python-version batch (a pickled dict), e.g. small files for tests."""
    import pickle

    with open(path, "wb") as fh:
        pickle.dump(
            {b"data": np.asarray(data, dtype=np.uint8), b"labels": list(map(int, labels))}, fh
        )


# IDX type codes (third byte of the magic number) and the big-endian dtypes they stand for.
_IDX_DTYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _open(path: str | os.PathLike[str], mode: str) -> Any:
    """A binary file object, through gzip when the name ends in ``.gz``."""
    if os.fspath(path).endswith(".gz"):
        # mtime=0: the same array always gives the same bytes.
        return gzip.GzipFile(filename=os.fspath(path), mode=mode, mtime=0)
    return open(path, mode)


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an array from an IDX file (the format of the MNIST files; gzipped if ``*.gz``).

    The file starts with the magic number — two zero bytes, a type code (``0x08`` uint8,
    ``0x09`` int8, ``0x0B`` int16, ``0x0C`` int32, ``0x0D`` float32, ``0x0E`` float64) and the
    number of dimensions — then each dimension as a big-endian 32-bit integer, then the data,
    big-endian, in C order. Returns an array of that shape in native byte order.
    """
    with _open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        hint = " It looks gzipped: give it a '.gz' name." if raw[:2] == b"\x1f\x8b" else ""
        raise ValueError(
            f"{os.fspath(path)} is not an IDX file: bad magic number {raw[:4].hex() or '(empty)'} "
            "(expected 0000 followed by a type code 08/09/0b/0c/0d/0e and the number of "
            f"dimensions).{hint}"
        )
    dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{os.fspath(path)}: truncated IDX header ({ndim} dimensions).")
    shape = tuple(int(s) for s in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = math.prod(shape) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(
            f"{os.fspath(path)}: IDX header says shape {shape} ({expected} bytes of data) but "
            f"the file holds {len(raw) - header} bytes after the header."
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write ``array`` (1 to 255 dimensions) as an IDX file, gzipped if ``path`` ends in ``.gz``.

    Supported dtypes: uint8, int8, int16, int32, float32, float64 (see :func:`read_idx`).
    """
    a = np.asarray(array)
    code = next(
        (
            c
            for c, dt in _IDX_DTYPES.items()
            if (dt.kind, dt.itemsize) == (a.dtype.kind, a.dtype.itemsize)
        ),
        None,
    )
    if code is None:
        raise ValueError(
            f"IDX cannot store dtype {a.dtype}; use uint8, int8, int16, int32, float32 or float64."
        )
    if not 1 <= a.ndim <= 255:
        raise ValueError(f"IDX stores 1 to 255 dimensions, got {a.ndim}.")
    if any(s >= 2**32 for s in a.shape):
        raise ValueError(f"IDX dimensions must be below 2**32, got shape {a.shape}.")
    header = bytes([0, 0, code, a.ndim]) + np.asarray(a.shape, dtype=">u4").tobytes()
    with _open(path, "wb") as f:
        f.write(header)
        f.write(np.ascontiguousarray(a, dtype=_IDX_DTYPES[code]).tobytes())
