"""One constructor vocabulary across galu.nn: in_features / hidden_features / out_features,
gate slope ``scale``, the all-ones gate ``"one"``; old names still work (with a warning) until
galu 0.3 and build the same module."""

import pytest
import torch

from galu.nn import DGN, GGDLN, FeedForward, GlobalGates, ReLUNet


def _same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def _g() -> torch.Generator:
    return torch.Generator().manual_seed(3)


@pytest.mark.parametrize(
    ("build_new", "build_old"),
    [
        (
            lambda: FeedForward(6, 4, "swiglu", scale=1.5, generator=_g()),
            lambda: FeedForward(d_model=6, d_hidden=4, variant="swiglu", beta=1.5, generator=_g()),
        ),
        (
            lambda: DGN(5, (4, 3), 2, variant="dlgn", scale=2.0, generator=_g()),
            lambda: DGN(5, widths=(4, 3), out_features=2, variant="dlgn", beta=2.0, generator=_g()),
        ),
        (
            lambda: GGDLN(5, 4, 2, 3, generator=_g()),
            lambda: GGDLN(5, width=4, depth=2, n_gates=3, generator=_g()),
        ),
        (
            lambda: GlobalGates(5, 1, "one"),
            lambda: GlobalGates(5, 1, "ones"),
        ),
    ],
)
def test_old_names_warn_and_build_the_same_module(build_new, build_old):
    new = build_new()
    with pytest.warns(DeprecationWarning, match="galu 0.3"):
        old = build_old()
    _same_state(new, old)
    x = torch.randn(7, 6 if isinstance(new, FeedForward) else 5, generator=_g(),
                    dtype=next(iter(new.state_dict().values())).dtype)  # fmt: skip
    assert torch.equal(new(x), old(x))


def test_old_attribute_names_stay_readable():
    ffn = FeedForward(6, 4, scale=1.5)
    assert (ffn.d_model, ffn.d_hidden, ffn.beta) == (6, 4, 1.5)
    assert (ffn.in_features, ffn.out_features, ffn.hidden_features, ffn.scale) == (6, 6, 4, 1.5)
    net = DGN(5, (4, 3), variant="dlgn", scale=2.0)
    assert (net.widths, net.beta) == ((4, 3), 2.0) == (net.hidden_features, net.scale)


def test_new_and_old_name_together_is_an_error():
    with pytest.raises(TypeError, match="pass `hidden_features` only"):
        DGN(5, (4,), widths=(4,))
    with pytest.raises(TypeError, match="missing required argument `depth`"):
        GGDLN(5, 4)


@pytest.mark.parametrize("bias", [False, True])
def test_dgn_relu_is_relunet(bias):
    """DGN(variant="relu") is built on ReLUNet: same parameters, same outputs (float64)."""
    kw = dict(bias=bias, dtype=torch.float64)
    dgn = DGN(5, (4, 3), 2, variant="relu", generator=_g(), **kw)
    ref = ReLUNet(5, (4, 3), 2, generator=_g(), **kw)
    for mine, theirs in zip([*dgn.value, dgn.readout], [*ref.layers, ref.readout], strict=True):
        assert torch.equal(mine.weight, theirs.weight)
    x = torch.randn(9, 5, generator=_g(), dtype=torch.float64)
    assert torch.equal(dgn(x), ref(x))
    # ... and both are the gated network written out: z_l = (W_l z + b_l) ⊙ 1[W_l z + b_l > 0]
    z = x
    for layer in dgn.value:
        a = z @ layer.weight.T + (layer.bias if bias else 0)
        z = a * (a > 0)
    out = z @ dgn.readout.weight.T + (dgn.readout.bias if bias else 0)
    torch.testing.assert_close(dgn(x), out, rtol=0, atol=1e-14)


def test_deep_linear_and_load_stream_take_their_old_keywords(tmp_path):
    with pytest.warns(DeprecationWarning, match="`width` is now `hidden_features`"):
        old = GGDLN.deep_linear(4, width=(3, 2), depth=2, generator=_g())
    _same_state(GGDLN.deep_linear(4, (3, 2), 2, generator=_g()), old)
    from galu.data import load_stream

    with pytest.warns(DeprecationWarning, match="`root` is now `data_dir`"):
        s = load_stream("digits", 0, root=str(tmp_path), limit=20)
    assert s.X.shape[0] == 20


def test_a_missing_width_is_a_type_error_naming_it():
    with pytest.raises(TypeError, match="missing required argument `in_features`"):
        FeedForward(hidden_features=16)
