import numpy as np
import pandas as pd
import pytest
import torch

from galu.data import load_dataset, write_cifar10_batch
from galu.data.datasets import CIFAR10_FILES
from galu.experiments import ConfigError
from galu.experiments.dgn_variants import VARIANTS, DGNVariants


def test_smoke_run_rows_and_the_test_split_never_selects():
    exp = DGNVariants.from_preset("smoke", {"variants": ("relu", "flnpf", "dlgn")})
    rows = {
        v: {r["metric"]: r["value"] for r in exp.run_point(dict(variant=v, lr=3e-3), seed=0)}
        for v in ("relu", "flnpf", "dlgn")
    }
    for metrics in rows.values():
        assert set(metrics) == {"train_loss", "train_acc", "val_acc", "test_acc", "test_acc_max"}
        assert metrics["test_acc_max"] >= metrics["test_acc"]
    # Seeded: the same point twice gives the same numbers.
    again = {r["metric"]: r["value"] for r in exp.run_point(dict(variant="dlgn", lr=3e-3), seed=0)}
    assert again == rows["dlgn"]
    # Selection is by validation accuracy: a fake table where the better-validation lr has the
    # worse test accuracy must select it anyway.
    table = pd.DataFrame(
        [
            dict(dataset="digits", arch="fc", variant="relu", lr=lr, seed=0, metric=k, value=v)
            for lr, val, test in ((1e-3, 0.9, 0.5), (3e-3, 0.8, 0.99))
            for k, v in (
                ("val_acc", val),
                ("test_acc", test),
                ("test_acc_max", test),
                ("train_acc", 1.0),
                ("train_loss", 0.0),
            )
        ]
    )
    best = DGNVariants.select(table)
    assert best["lr"].tolist() == [1e-3] and best["test_acc"].tolist() == [0.5]


def test_conv_variants_on_image_data_and_config_errors():
    exp = DGNVariants.from_preset("smoke", {"arch": "conv", "widths": (4,), "steps": 10})
    ds = exp.data(0)
    assert tuple(exp.view(ds.X_train).shape[1:]) == (1, 8, 8)
    rows = exp.run_point(dict(variant="frnpf-di", lr=3e-3), seed=0)
    assert {r["metric"] for r in rows} >= {"test_acc"}
    with pytest.raises(ConfigError, match="needs an image data set"):
        DGNVariants.from_preset("smoke", {"arch": "conv", "dataset": "mnist1d"})
    with pytest.raises(ConfigError, match="`variants`"):
        DGNVariants.from_preset("smoke", {"variants": ("gelu",)})
    assert "galu" not in VARIANTS  # listed once, as frnpf-ii


def test_cifar10_loader_reads_small_files_the_test_writes(tmp_path):
    rng = np.random.default_rng(0)
    raw = {f: rng.integers(0, 256, (6, 3072)) for f in CIFAR10_FILES}
    for f, data in raw.items():
        write_cifar10_batch(tmp_path / f, data, np.arange(6) % 10)
    ds = load_dataset("cifar10", root=tmp_path, val_fraction=0.2, seed=0)
    assert len(ds.X_train) + len(ds.X_val) == 30 and len(ds.X_test) == 6
    assert ds.X_train.shape[1] == 3072 and float(ds.X_train.max()) <= 1.0
    # Pixel values survive the round trip (channel-major order, divided by 255).
    torch.testing.assert_close(ds.X_test, torch.from_numpy(raw["test_batch"] / 255.0).float())
    (tmp_path / "test_batch").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing test_batch in .*cifar-10-batches-py"):
        load_dataset("cifar10", root=tmp_path)
