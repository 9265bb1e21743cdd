"""galu.paths on modules it does not define path quantities for."""

import pytest
import torch
from torch import nn

from galu.nn import DGN, ReLUNet, ShallowGaLU
from galu.paths import model_path_kernel, ntk, path_features, path_values


@pytest.mark.parametrize(
    "model",
    [ReLUNet(3, 4), ShallowGaLU(3, 4), nn.Linear(3, 4)],
    ids=lambda m: type(m).__name__,
)
def test_unsupported_modules_get_a_type_error_naming_what_is_supported(model):
    x = torch.randn(5, 3)
    name = type(model).__name__
    for fn, call in (
        ("model_path_kernel", lambda: model_path_kernel(model, x)),
        ("path_features", lambda: path_features(model, x)),
        ("path_values", lambda: path_values(model)),
        ("ntk", lambda: ntk(model, x)),
    ):
        with pytest.raises(
            TypeError,
            match=rf"{fn} supports galu.nn.DGN \(any variant, arch='fc'\); got {name}\. ",
        ):
            call()
    # The supported module still works, and a conv DGN keeps its own error.
    assert model_path_kernel(DGN(3, (4,)), x).shape == (5, 5)
    with pytest.raises(ValueError, match=r"fully connected DGNs; got arch='conv'"):
        model_path_kernel(DGN(3, (4,), arch="conv"), torch.randn(2, 3, 4, 4))
