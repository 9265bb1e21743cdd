"""Dataset loaders (IDX files written here, digits, MNIST-1D) and PCA whitening, offline."""

import gzip
import random

import numpy as np
import pytest
import torch

from galu.data import (
    DATASETS,
    Dataset,
    PCAWhitener,
    load_dataset,
    read_idx,
    whiten_dataset,
    write_idx,
)
from galu.data.datasets import IDX_FILES

N_TRAIN, N_TEST = 50, 20


def _fake_mnist(root, *, gz, seed=0, n_train=N_TRAIN, n_test=N_TEST):
    """Write the four MNIST IDX files (random uint8 images, labels cycling 0..9) into ``root``."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train_images": rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8),
        "train_labels": (np.arange(n_train) % 10).astype(np.uint8),
        "test_images": rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8),
        "test_labels": (np.arange(n_test)[::-1] % 10).astype(np.uint8),
    }
    arrays["train_images"][0, 0, 0], arrays["train_images"][0, 0, 1] = 0, 255  # both ends
    suffix = ".gz" if gz else ""
    for key, fname in IDX_FILES.items():
        write_idx(root / f"{fname}{suffix}", arrays[key])
    return arrays


def _rows(X):
    return {tuple(r) for r in X.tolist()}


# --- IDX files ----------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize(
    "array",
    [
        np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5),
        np.array([7, 0, 255, 3], dtype=np.uint8),
        np.arange(-6, 6, dtype=np.int32).reshape(3, 4),
        np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3),
        np.linspace(-1, 1, 6).reshape(3, 2),
        np.zeros((0, 28, 28), dtype=np.uint8),
    ],
    ids=["uint8-3d", "uint8-1d", "int32-2d", "float32-2d", "float64-2d", "empty"],
)
def test_idx_round_trip(tmp_path, array, gz):
    path = tmp_path / ("a.idx.gz" if gz else "a.idx")
    write_idx(path, array)
    back = read_idx(path)
    assert back.dtype == array.dtype and back.shape == array.shape
    np.testing.assert_array_equal(back, array)
    with gzip.open(path, "rb") if gz else open(path, "rb") as f:
        raw = f.read()
    # The standard header: 0x0000, type code, ndim, then big-endian 32-bit dimensions.
    assert raw[:2] == b"\x00\x00" and raw[3] == array.ndim
    assert [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(array.ndim)] == list(
        array.shape
    )


def test_idx_header_matches_the_mnist_files(tmp_path):
    # The magic numbers of the real files: 2051 for images (uint8, 3-D), 2049 for labels.
    write_idx(tmp_path / "im", np.zeros((2, 28, 28), dtype=np.uint8))
    write_idx(tmp_path / "lab", np.zeros(2, dtype=np.uint8))
    assert (tmp_path / "im").read_bytes()[:16] == (2051).to_bytes(4, "big") + (2).to_bytes(
        4, "big"
    ) + (28).to_bytes(4, "big") * 2
    assert (tmp_path / "lab").read_bytes()[:8] == (2049).to_bytes(4, "big") + (2).to_bytes(4, "big")


def test_idx_big_endian_input_is_written_correctly(tmp_path):
    a = np.arange(6, dtype=">i4").reshape(2, 3)
    write_idx(tmp_path / "a", a)
    np.testing.assert_array_equal(read_idx(tmp_path / "a"), a)


def test_idx_bad_magic_truncated_and_unsupported_dtype(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x00\x08\x01\x00\x00\x00\x01\x05")
    with pytest.raises(ValueError, match="not an IDX file: bad magic number 01000801"):
        read_idx(tmp_path / "bad")
    (tmp_path / "code").write_bytes(b"\x00\x00\x07\x01\x00\x00\x00\x01\x05")
    with pytest.raises(ValueError, match="bad magic number"):
        read_idx(tmp_path / "code")
    (tmp_path / "short").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x03\x05")
    with pytest.raises(ValueError, match=r"shape \(3,\) \(3 bytes of data\) but the file holds 1"):
        read_idx(tmp_path / "short")
    write_idx(tmp_path / "zipped.gz", np.zeros(3, dtype=np.uint8))
    (tmp_path / "zipped.gz").rename(tmp_path / "zipped")
    with pytest.raises(ValueError, match=r"bad magic number 1f8b.*looks gzipped"):
        read_idx(tmp_path / "zipped")
    with pytest.raises(ValueError, match="IDX cannot store dtype int64"):
        write_idx(tmp_path / "x", np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match="1 to 255 dimensions"):
        write_idx(tmp_path / "x", np.uint8(3))


# --- MNIST and Fashion-MNIST from IDX files ------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_mnist_like_loads_from_idx_files(tmp_path, name, gz):
    arrays = _fake_mnist(tmp_path, gz=gz)
    ds = load_dataset(name, root=tmp_path, val_fraction=0.2, seed=3)
    assert isinstance(ds, Dataset) and ds.name == name and ds.n_classes == 10
    assert ds.X_train.shape == (40, 784) and ds.X_val.shape == (10, 784)
    assert ds.X_test.shape == (N_TEST, 784)
    assert ds.n_features == 784
    assert ds.summary() == f"{name}: 10 classes, 784 features; train 40, val 10, test 20"
    for X in (ds.X_train, ds.X_val, ds.X_test):
        assert X.dtype == torch.float32
        assert float(X.min()) >= 0.0 and float(X.max()) <= 1.0
    for y in (ds.y_train, ds.y_val, ds.y_test):
        assert y.dtype == torch.int64
    # Test split: the test files as they are, pixels divided by 255, row-major flattening.
    expected_test = torch.from_numpy(arrays["test_images"].reshape(N_TEST, -1) / 255.0).float()
    torch.testing.assert_close(ds.X_test, expected_test, rtol=0, atol=0)
    assert ds.y_test.tolist() == arrays["test_labels"].tolist()
    # Train + val: a partition of the training files, each image keeping its label.
    train_images = arrays["train_images"].reshape(N_TRAIN, -1) / 255.0
    pairs = sorted(
        (tuple(np.float32(r).tolist()), int(lab))
        for r, lab in zip(train_images, arrays["train_labels"], strict=True)
    )
    X_tv = torch.cat([ds.X_train, ds.X_val]).tolist()
    y_tv = torch.cat([ds.y_train, ds.y_val]).tolist()
    assert sorted(zip(map(tuple, X_tv), y_tv, strict=True)) == pairs
    assert float(ds.X_train.max()) == 1.0 or float(ds.X_val.max()) == 1.0
    # Stratified: 5 training images per class, 1 of each goes to validation.
    assert sorted(ds.y_val.tolist()) == list(range(10))


def test_mnist_dtype_and_mixed_plain_and_gzipped_files(tmp_path):
    _fake_mnist(tmp_path, gz=False)
    (tmp_path / IDX_FILES["test_labels"]).rename(tmp_path / "unused")
    write_idx(tmp_path / f"{IDX_FILES['test_labels']}.gz", np.arange(N_TEST, dtype=np.uint8) % 10)
    ds = load_dataset("mnist", root=str(tmp_path), dtype=torch.float64, val_fraction=0.0)
    assert ds.X_train.dtype == torch.float64 and ds.X_train.shape == (N_TRAIN, 784)
    assert ds.X_val.shape == (0, 784) and ds.y_val.shape == (0,)
    assert ds.y_test.tolist() == [i % 10 for i in range(N_TEST)]


@pytest.mark.parametrize(
    ("name", "title", "url"),
    [
        ("mnist", "MNIST", "http://yann.lecun.com/exdb/mnist/"),
        ("fashion-mnist", "Fashion-MNIST", "https://github.com/zalandoresearch/fashion-mnist"),
    ],
)
def test_missing_files_error_says_what_and_where(tmp_path, name, title, url):
    names = list(IDX_FILES.values())
    with pytest.raises(FileNotFoundError, match=f"{title}.*no directory was given") as info:
        load_dataset(name)
    for part in [*names, url, "root"]:
        assert part in str(info.value)

    _fake_mnist(tmp_path, gz=True)
    (tmp_path / f"{IDX_FILES['test_images']}.gz").unlink()
    with pytest.raises(
        FileNotFoundError, match=f"{title}.*missing t10k-images-idx3-ubyte in {tmp_path}"
    ) as info:
        load_dataset(name, root=tmp_path)
    message = str(info.value)
    assert "missing t10k-images-idx3-ubyte in" in message  # only the missing one is "missing"
    for part in [*names, url]:
        assert part in message


def test_mnist_inconsistent_files_are_rejected(tmp_path):
    _fake_mnist(tmp_path, gz=False)
    write_idx(tmp_path / IDX_FILES["train_labels"], np.zeros(N_TRAIN - 1, dtype=np.uint8))
    with pytest.raises(ValueError, match="train split: 50 images but 49 labels"):
        load_dataset("mnist", root=tmp_path)
    write_idx(tmp_path / IDX_FILES["train_labels"], np.full(N_TRAIN, 10, dtype=np.uint8))
    with pytest.raises(ValueError, match=r"labels must be in 0\.\.9"):
        load_dataset("mnist", root=tmp_path)


# --- digits and MNIST-1D -------------------------------------------------------------------------


def test_bad_arguments():
    with pytest.raises(
        ValueError, match="Unknown dataset 'cifar100'; valid names are digits, mnist1d"
    ):
        load_dataset("cifar100")
    assert DATASETS == ("digits", "mnist1d", "mnist", "fashion-mnist", "cifar10")
    with pytest.raises(ValueError, match="val_fraction"):
        load_dataset("digits", val_fraction=1.0)
    with pytest.raises(ValueError, match="seed"):
        load_dataset("digits", seed=-1)
    with pytest.raises(ValueError, match="floating torch dtype"):
        load_dataset("digits", dtype=torch.int64)
    with pytest.raises(ValueError, match="only applies to the 'mnist1d'"):
        load_dataset("digits", mnist1d_samples=100)
    with pytest.raises(ValueError, match="multiple of 10"):
        load_dataset("mnist1d", mnist1d_samples=105)


def test_dataset_checks_shapes_and_dtypes():
    X, y = torch.zeros(4, 3), torch.zeros(4, dtype=torch.int64)
    Dataset("toy", X, y, X[:1], y[:1], X[:2], y[:2], n_classes=2)
    with pytest.raises(ValueError, match=r"X_val must be a floating \(n, 3\) tensor"):
        Dataset("toy", X, y, X[:1, :2], y[:1], X, y, n_classes=2)
    with pytest.raises(ValueError, match=r"y_test must be an int64 tensor of shape \(4,\)"):
        Dataset("toy", X, y, X, y, X, y.int(), n_classes=2)


@pytest.fixture(scope="module")
def digits():
    return {s: load_dataset("digits", seed=s) for s in (0, 1)} | {
        "again": load_dataset("digits", seed=0)
    }


@pytest.fixture(scope="module")
def mnist1d():
    return {s: load_dataset("mnist1d", seed=s, mnist1d_samples=500) for s in (0, 1)} | {
        "again": load_dataset("mnist1d", seed=0, mnist1d_samples=500)
    }


def _check_common(ds, d):
    assert ds.n_classes == 10 and ds.n_features == d
    for split in ("train", "val", "test"):
        X, y = getattr(ds, f"X_{split}"), getattr(ds, f"y_{split}")
        assert X.dtype == torch.float32 and X.shape == (len(y), d)
        assert y.dtype == torch.int64 and set(y.tolist()) == set(range(10))
    assert len(ds.y_val) == round(0.1 * (len(ds.y_train) + len(ds.y_val)))
    # Disjoint splits (no input vector appears in two of them).
    train, val, test = _rows(ds.X_train), _rows(ds.X_val), _rows(ds.X_test)
    assert not (train & val) and not (train & test) and not (val & test)


def test_digits(digits):
    ds = digits[0]
    _check_common(ds, 64)
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (1294, 144, 359)
    assert float(ds.X_train.min()) == 0.0 and float(ds.X_train.max()) == 1.0
    # All 1797 images, each once.
    from sklearn.datasets import load_digits

    all_rows = _rows(torch.from_numpy(load_digits().data / 16.0).float())
    X = torch.cat([ds.X_train, ds.X_val, ds.X_test])
    assert len(X) == 1797 and _rows(X) == all_rows  # the 1797 images are distinct


def test_mnist1d(mnist1d):
    ds = mnist1d[0]
    _check_common(ds, 40)
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (360, 40, 100)


@pytest.mark.parametrize("name", ["digits", "mnist1d"])
def test_splits_reproducible_per_seed(name, digits, mnist1d):
    loaded = {"digits": digits, "mnist1d": mnist1d}[name]
    a, b, other = loaded[0], loaded["again"], loaded[1]
    for field in ("X_train", "y_train", "X_val", "y_val", "X_test", "y_test"):
        assert torch.equal(getattr(a, field), getattr(b, field))
    assert _rows(a.X_val) != _rows(other.X_val)
    if name == "digits":  # one fixed test split; only the validation split moves with the seed
        assert torch.equal(a.X_test, other.X_test)
        assert _rows(torch.cat([a.X_train, a.X_val])) == _rows(
            torch.cat([other.X_train, other.X_val])
        )
    else:  # MNIST-1D is generated from the seed
        assert not torch.equal(a.X_test, other.X_test)


def test_mnist1d_leaves_global_random_state_alone():
    random.seed(123)
    np.random.seed(123)
    before = (random.random(), np.random.random())
    random.seed(123)
    np.random.seed(123)
    load_dataset("mnist1d", mnist1d_samples=20)
    assert (random.random(), np.random.random()) == before


# --- PCA whitening -------------------------------------------------------------------------------


def _correlated(n, d, seed):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(d, d, generator=g, dtype=torch.float64)
    return torch.randn(n, d, generator=g, dtype=torch.float64) @ A + 3.0


def _numpy_whitening(train, k):
    """Independent reference: eigendecomposition of the sample covariance."""
    mu = train.mean(axis=0)
    evals, evecs = np.linalg.eigh(np.cov(train, rowvar=False))
    order = np.argsort(evals)[::-1][:k]
    V = evecs[:, order].T
    V *= np.sign(V[np.arange(k), np.abs(V).argmax(axis=1)])[:, None]
    return lambda X: (X - mu) @ V.T / np.sqrt(evals[order])


def test_pca_whitened_training_inputs_have_identity_covariance():
    X = _correlated(300, 12, seed=0)
    pca = PCAWhitener(8)
    Z = pca.fit_transform(X)
    assert Z.shape == (300, 8) and Z.dtype == torch.float64
    torch.testing.assert_close(Z.mean(0), torch.zeros(8, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(
        torch.cov(Z.T), torch.eye(8, dtype=torch.float64), rtol=0, atol=1e-10
    )
    # Fitted statistics are kept: orthonormal components by decreasing variance.
    assert (
        pca.mean_.shape == (12,) and pca.components_.shape == (8, 12) and pca.scale_.shape == (8,)
    )
    torch.testing.assert_close(
        pca.components_ @ pca.components_.T, torch.eye(8, dtype=torch.float64), rtol=0, atol=1e-12
    )
    assert bool((pca.scale_[:-1] >= pca.scale_[1:]).all())


def test_pca_float32_inputs():
    X = _correlated(400, 10, seed=1).float()
    Z = PCAWhitener(10).fit_transform(X)
    assert Z.dtype == torch.float32
    torch.testing.assert_close(
        torch.cov(Z.double().T), torch.eye(10, dtype=torch.float64), rtol=0, atol=1e-4
    )


def test_pca_val_and_test_use_training_statistics():
    train, val, test = (
        _correlated(200, 9, seed=2),
        _correlated(50, 9, seed=3),
        _correlated(30, 9, 4),
    )
    pca = PCAWhitener(5).fit(train)
    reference = _numpy_whitening(train.numpy(), 5)
    for X in (train, val, test):
        np.testing.assert_allclose(pca.transform(X).numpy(), reference(X.numpy()), atol=1e-9)
    # Not refitted on the other splits: their covariance is not the identity.
    assert not torch.allclose(torch.cov(pca.transform(val).T), torch.eye(5, dtype=torch.float64))


def test_whiten_dataset_and_sign_convention(digits):
    ds, pca = whiten_dataset(digits[0], n_components=20)
    assert ds.X_train.shape == (1294, 20) and ds.X_val.shape == (144, 20)
    assert ds.X_test.shape == (359, 20) and ds.X_train.dtype == torch.float32
    assert torch.equal(ds.y_test, digits[0].y_test) and ds.name == "digits"
    torch.testing.assert_close(
        torch.cov(ds.X_train.double().T), torch.eye(20, dtype=torch.float64), rtol=0, atol=1e-4
    )
    V = pca.components_
    assert bool((V.gather(1, V.abs().argmax(1, keepdim=True)) > 0).all())
    torch.testing.assert_close(ds.X_val, pca.transform(digits[0].X_val), rtol=0, atol=0)


def test_pca_too_many_components_and_rank_deficiency(digits):
    X = _correlated(30, 6, seed=5)
    with pytest.raises(ValueError, match="n_components=7 is more than the 6 input features"):
        PCAWhitener(7).fit(X)
    with pytest.raises(ValueError, match="n_components=6 needs more than 5 training examples"):
        PCAWhitener(6).fit(X[:5])
    with pytest.raises(ValueError, match="positive integer"):
        PCAWhitener(0)
    with pytest.raises(RuntimeError, match="not fitted"):
        PCAWhitener(2).transform(X)
    with pytest.raises(ValueError, match=r"shape \(m, 6\)"):
        PCAWhitener(2).fit(X).transform(X[:, :5])
    # Digits has 3 always-blank pixels: rank 61 < 64 features.
    with pytest.raises(ValueError, match=r"numerical rank 61.*Choose n_components <= 61"):
        whiten_dataset(digits[0], n_components=64)
    ds, pca = whiten_dataset(digits[0], n_components=None)
    assert ds.n_features == 61 and pca.components_.shape == (61, 64)
