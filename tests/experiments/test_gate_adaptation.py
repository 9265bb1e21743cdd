import math

import torch

from galu.data import load_dataset
from galu.experiments.gate_adaptation import GateAdaptation
from galu.nn import DGN
from galu.paths import path_features
from galu.seeding import generator
from galu.train import accuracy, fit_classifier


def test_smoke_rows_and_epoch_zero_against_independent_computations():
    exp = GateAdaptation.from_preset("smoke")
    rows = exp.run_point(dict(dataset="digits", epochs=2), seed=0)
    by = {(r["epoch"], r["layer"], r["metric"]): r["value"] for r in rows}
    assert {e for e, _, _ in by} == {0, 1, 2}
    # Nothing has flipped before training; something has after it.
    assert by[(0, 1, "flipped")] == 0.0 and by[(0, 2, "flipped")] == 0.0
    assert 0.0 < by[(2, 1, "flipped")] < 1.0
    # Epoch-0 alignment from enumerated path features of the same initial network.
    c = exp.config
    ds = load_dataset("digits", val_fraction=c.val_fraction, seed=0)
    net = DGN(64, c.widths, 10, variant="relu", generator=generator(0, "init"))
    X = ds.X_train[: c.probe]
    phi = path_features(net, X).double()
    H = phi @ phi.T
    Y = torch.nn.functional.one_hot(ds.y_train[: c.probe], 10).double()
    Y = Y - Y.mean(0)
    T = Y @ Y.T
    expected = float((H * T).sum() / (H.norm() * T.norm()))
    assert math.isclose(by[(0, 0, "alignment")], expected, rel_tol=1e-5)
    assert math.isclose(by[(0, 0, "relu_test")], accuracy(net, ds.X_test, ds.y_test))


def test_fit_classifier_returns_the_best_validation_parameters():
    ds = load_dataset("digits", seed=1)
    splits = {"train": (ds.X_train, ds.y_train), "val": (ds.X_val, ds.y_val),
              "test": (ds.X_test, ds.y_test)}  # fmt: skip
    net = DGN(64, (16,), 10, variant="relu", generator=torch.Generator().manual_seed(0))
    out = fit_classifier(net, splits, lr=3e-3, steps=120, batch_size=32, eval_every=20, seed=0)
    # The returned numbers describe the parameters the network now holds.
    assert out["val_acc"] == accuracy(net, ds.X_val, ds.y_val)
    assert out["test_acc"] == accuracy(net, ds.X_test, ds.y_test)
    assert out["test_acc_max"] >= out["test_acc"]
    again = DGN(64, (16,), 10, variant="relu", generator=torch.Generator().manual_seed(0))
    assert fit_classifier(again, splits, lr=3e-3, steps=120, batch_size=32, eval_every=20,
                          seed=0) == out  # fmt: skip
