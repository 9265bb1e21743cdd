import numpy as np
import pandas as pd
import pytest
import torch

from galu.data import write_idx
from galu.experiments.real_data import RealData
from galu.runner import run_experiment


def test_selection_uses_validation_never_test():
    rows = []
    for lr, val, test in [(0.1, 0.9, 0.5), (0.2, 0.8, 0.99)]:
        for metric, value in (("val_acc", val), ("test_acc", test), ("train_loss", 0.1)):
            rows.append(
                dict(
                    dataset="digits",
                    k=8,
                    model="relu",
                    lr=lr,
                    scale=0.0,
                    seed=0,
                    metric=metric,
                    value=value,
                )
            )
    best = RealData.select(pd.DataFrame(rows))
    assert len(best) == 1 and best.loc[0, "lr"] == 0.1 and best.loc[0, "test_acc"] == 0.5


def test_whitening_uses_the_training_split_only():
    exp = RealData.from_preset("smoke")
    ds = exp.data(0)
    assert ds.X_train.shape[1] == 16
    cov = np.cov(ds.X_train.double().numpy(), rowvar=False)
    np.testing.assert_allclose(cov, np.eye(16), atol=1e-4)
    # Validation inputs are not re-standardised on their own statistics: with ~130 validation
    # samples their covariance entries deviate from I by ~1/sqrt(130) ≈ 0.09, far above 1e-2.
    assert not np.allclose(np.cov(ds.X_val.double().numpy(), rowvar=False), np.eye(16), atol=1e-2)


def test_vectorised_seeds_equal_one_at_a_time():
    exp = RealData.from_preset("smoke", {"steps": 30})
    params = dict(dataset="digits", k=8, model="galu0-sigmoid", lr=1e-2, scale=1.0)
    together = exp.run_seeds(params, [0, 1])
    for s in (0, 1):
        for a, b in zip(exp.run_point(params, s), together[s], strict=True):
            assert a["value"] == pytest.approx(b["value"], rel=1e-5, abs=1e-6)


def test_smoke_run_on_digits(tmp_path):
    res = run_experiment("real-data", preset="smoke", out=tmp_path, progress=False)
    assert res.done == res.total == 4 * 2
    assert list(res.summary.columns) == [
        "dataset",
        "k",
        "relu",
        "galu0-step",
        "galu0-sigmoid",
        "linear",
    ]
    assert (res.summary[["relu", "linear"]] > 0.5).all().all()  # far above chance (0.1)


def test_mnist_from_local_idx_files(tmp_path):
    g = np.random.default_rng(0)
    for prefix, n in (("train", 60), ("t10k", 30)):
        write_idx(
            tmp_path / f"{prefix}-images-idx3-ubyte",
            g.integers(0, 256, (n, 28, 28), dtype=np.uint8),
        )
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte", np.arange(n, dtype=np.uint8) % 10)
    res = run_experiment(
        "real-data",
        preset="smoke",
        out=tmp_path / "run",
        progress=False,
        overrides={
            "dataset": "mnist",
            "data_dir": str(tmp_path),
            "repeats": "1",
            "models": "linear",
            "components": "8",
        },
    )
    assert res.done == 1
    assert torch.isfinite(torch.tensor(res.table["value"].to_numpy())).all()


def test_missing_files_say_where_to_put_them(tmp_path):
    exp = RealData.from_preset("smoke", {"dataset": "fashion-mnist", "data_dir": str(tmp_path)})
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        exp.data(0)
