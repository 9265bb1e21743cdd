"""Deep gated networks (DGN): a gating (feature) network decides which paths are open, a value
network computes linearly along them (Lakshminarayanan & Singh 2020; ``science/dgn.md``).

Layer ``l`` of the value network computes ``z_l = (W_l z_{l-1} + b_l) ⊙ G_l(x)`` from
``z_0 = x`` (all ones for ``dlgn-ones``); the output is ``W_out z_L``. What computes the gates
``G_l`` — and what is trained — is the variant:

============  ==================================================  ======  ==============
variant       gating network                                      gates   gating trained
============  ==================================================  ======  ==============
relu          the value network itself (``G_l = 1[a_l > 0]``)      hard    (tied)
frnpf-ii      an independently initialised ReLU network           hard    no (frozen)
(``galu``)
frnpf-di      a copy of the value network's initialisation        hard    no (frozen)
flnpf         the weights of a given trained ReLU network         hard    no (frozen)
dnpfl         a ReLU network trained jointly from scratch         soft    yes
dlgn          a linear network ``q_l = F_l q_{l-1}``, ``q_0 = x``  soft    yes
dlgn-ones     as dlgn; the value network is fed all ones          soft    yes
dlgn-sf       ``q_l = F_l x`` for every layer (single feature)     soft    yes
============  ==================================================  ======  ==============

Hard gates are ``1[q > 0]``; soft gates are ``(1 + ε) σ(β q)`` with the official code's
``β = 4, ε = 0.1`` for dnpfl and ``β = 4, ε = 0`` for the DLGN family (its papers use ``σ(βq)``);
the constructor calls the slope ``β`` ``scale``, as every gate in galu does.
A trained gating network needs soft gates (hard gates pass no gradient), so asking for hard gates
there is an error. Frozen gating parameters have ``requires_grad=False``.

``variant="relu"`` with ``arch="fc"`` is :class:`galu.nn.ReLUNet` (its layers are this network's
value layers and readout: the same numbers for the same generator).

``arch="conv"`` builds the same networks from 3×3 same-padding convolutions (``hidden_features`` are
channel counts; the gate tensor of conv layer ``l`` multiplies the value network's conv layer
``l`` output) with global average pooling before the linear readout (the papers' GCONV shape).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import nn

from galu import gates
from galu._validate import positive_int, renamed
from galu.nn._init import check_last_dim, fan_in_bound, sample_uniform
from galu.nn._networks import ReLUNet

Variant = Literal[
    "relu", "galu", "frnpf-ii", "frnpf-di", "flnpf", "dnpfl", "dlgn", "dlgn-ones", "dlgn-sf"
]
VARIANTS: tuple[str, ...] = (
    "relu", "galu", "frnpf-ii", "frnpf-di", "flnpf", "dnpfl", "dlgn", "dlgn-ones", "dlgn-sf"
)  # fmt: skip
FROZEN = ("frnpf-ii", "frnpf-di", "flnpf")  # gating network fixed
SOFT_DEFAULT = {
    "dnpfl": (4.0, 0.1),
    "dlgn": (4.0, 0.0),
    "dlgn-ones": (4.0, 0.0),
    "dlgn-sf": (4.0, 0.0),
}
ARCHS = ("fc", "conv")


def _layer(arch: str, fan_in: int, width: int, *, bias: bool, kw: dict[str, Any]) -> nn.Module:
    """A seeded linear (``fc``) or 3×3 same-padding convolution (``conv``) layer, initialised as
    PyTorch's default (uniform, bound ``1/√fan_in``) from the given generator."""
    layer: nn.Linear | nn.Conv2d
    if arch == "fc":
        layer = nn.Linear(fan_in, width, bias=bias, dtype=kw["dtype"], device=kw["device"])
        fan = fan_in
    else:
        layer = nn.Conv2d(
            fan_in, width, 3, padding=1, bias=bias, dtype=kw["dtype"], device=kw["device"]
        )
        fan = fan_in * 9
    bound = fan_in_bound(fan)
    with torch.no_grad():
        layer.weight.copy_(sample_uniform(tuple(layer.weight.shape), bound, **kw))
        if layer.bias is not None:
            layer.bias.copy_(sample_uniform(tuple(layer.bias.shape), bound, **kw))
    return layer


class DGN(nn.Module):
    """A deep gated network; ``variant`` selects how gates are computed and what is trained.

    Args:
        in_features: input dimension (``fc``) or input channels (``conv``).
        hidden_features: hidden widths (``fc``) or channel counts (``conv``), one per gated
            layer.
        out_features: outputs of the linear readout.
        variant: one of :data:`VARIANTS` (``galu`` is ``frnpf-ii``).
        arch: ``"fc"`` or ``"conv"``.
        gate: ``"hard"`` or ``"soft"``; default by variant (see the module docstring).
        scale, eps: soft gate ``(1 + eps)·σ(scale·q)``; defaults by variant.
        bias: biases in both networks.
        gating_from: for ``flnpf``, a trained ReLU network of the same shape (a ``DGN`` with
            ``variant="relu"`` or a :class:`ReLUNet`) whose hidden layers become the frozen
            gating network.
        generator, dtype, device: explicit randomness and placement. The value network is drawn
            first, then the gating network, so value weights do not depend on the variant.

    ``widths`` and ``beta`` are the old names of ``hidden_features`` and ``scale`` (accepted
    with a DeprecationWarning until galu 0.3; the attributes stay readable).
    """

    def __init__(
        self,
        in_features: int,
        hidden_features: int | Sequence[int] | None = None,
        out_features: int = 1,
        *,
        variant: Variant = "relu",
        arch: Literal["fc", "conv"] = "fc",
        gate: Literal["hard", "soft"] | None = None,
        scale: float | None = None,
        eps: float | None = None,
        bias: bool = False,
        gating_from: nn.Module | None = None,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        widths: int | Sequence[int] | None = None,
        beta: float | None = None,
    ) -> None:
        super().__init__()
        hidden_features = renamed(
            "DGN", "hidden_features", hidden_features, "widths", widths, needed=True
        )
        scale = renamed("DGN", "scale", scale, "beta", beta)
        if variant not in VARIANTS:
            raise ValueError(f"`variant` (={variant!r}) must be one of {VARIANTS}.")
        if arch not in ARCHS:
            raise ValueError(f"`arch` (={arch!r}) must be one of {ARCHS}.")
        self.variant = "frnpf-ii" if variant == "galu" else variant
        self.arch = arch
        self.in_features = positive_int("in_features", in_features)
        self.out_features = positive_int("out_features", out_features)
        sizes = (hidden_features,) if isinstance(hidden_features, int) else tuple(hidden_features)
        if not sizes:
            raise ValueError("`hidden_features` must name at least one gated layer.")
        self.hidden_features = tuple(
            positive_int(f"hidden_features[{i}]", w) for i, w in enumerate(sizes)
        )
        soft_default = SOFT_DEFAULT.get(self.variant)
        self.gate = gate if gate is not None else ("soft" if soft_default else "hard")
        if self.gate not in ("hard", "soft"):
            raise ValueError(f"`gate` (={gate!r}) must be 'hard' or 'soft'.")
        if self.gate == "hard" and soft_default:
            raise ValueError(
                f"variant {self.variant!r} trains its gating network, which needs soft gates "
                "(hard gates pass no gradient); use gate='soft'."
            )
        if self.variant == "relu" and self.gate == "soft":
            raise ValueError("variant 'relu' gates each unit by its own sign: gate must be 'hard'.")
        d_beta, d_eps = soft_default or (4.0, 0.1)
        self.scale = float(scale if scale is not None else d_beta)
        self.eps = float(eps if eps is not None else d_eps)
        if not self.scale > 0 or not self.eps >= 0:
            raise ValueError(
                f"soft gates need scale > 0 and eps >= 0; got {self.scale}, {self.eps}."
            )
        if (gating_from is not None) != (self.variant == "flnpf"):
            raise ValueError("`gating_from` (a trained ReLU network) is required by, and only by, "
                             "variant 'flnpf'.")  # fmt: skip
        self.bias = bias
        kw: dict[str, Any] = dict(generator=generator, dtype=dtype, device=device)

        if self.variant == "relu" and arch == "fc":  # the ReLU network itself
            net = ReLUNet(in_features, self.hidden_features, out_features, bias=bias, **kw)
            self.value = net.layers
            self.readout: nn.Module = net.readout
        else:
            self.value = nn.ModuleList()
            fan_in = in_features
            for w in self.hidden_features:
                self.value.append(_layer(arch, fan_in, w, bias=bias, kw=kw))
                fan_in = w
            self.readout = _layer("fc", fan_in, out_features, bias=bias, kw=kw)

        self.feature = nn.ModuleList()
        if self.variant == "frnpf-di":
            self.feature = copy.deepcopy(self.value)
        elif self.variant == "flnpf":
            self.feature = _copy_relu_layers(gating_from, self)
        elif self.variant != "relu":
            fan_in = in_features
            for w in self.hidden_features:
                gate_in = in_features if self.variant == "dlgn-sf" else fan_in
                self.feature.append(_layer(arch, gate_in, w, bias=bias, kw=kw))
                fan_in = w
        if self.variant in FROZEN:
            self.feature.requires_grad_(False)

    # ------------------------------------------------------------------ gates
    def _check_input(self, x: torch.Tensor) -> None:
        """Name both widths when ``x`` does not fit the first layer (``fc``: the last dimension;
        ``conv``: the channels of ``(N, C, H, W)`` or ``(C, H, W)``)."""
        if self.arch == "fc":
            check_last_dim(f"DGN(in_features={self.in_features})", x, self.in_features)
        elif x.ndim not in (3, 4) or x.shape[-3] != self.in_features:
            got = f"{x.shape[-3]} channels" if x.ndim in (3, 4) else f"a {x.ndim}-D input"
            raise ValueError(
                f"DGN(arch='conv', in_features={self.in_features}) got {got} "
                f"(shape {tuple(x.shape)}); pass inputs of shape (N, {self.in_features}, H, W) "
                f"or ({self.in_features}, H, W)."
            )

    def _gate(self, q: torch.Tensor) -> torch.Tensor:
        if self.gate == "hard":
            return gates.step(q, at_zero=0.0)
        return (1.0 + self.eps) * gates.sigmoid(q, self.scale)

    def gates(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The gate of every layer, ``G_l(x)`` (shape of that layer's output)."""
        self._check_input(x)
        return self._gates(x)

    def _gates(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self.variant == "relu":
            out, z = [], x
            for layer in self.value:
                a = layer(z)
                g = self._gate(a)
                out.append(g)
                z = a * g
            return out
        return [self._gate(q) for q in self._preactivations(x)]

    def gate_preactivations(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The gating network's pre-activations ``q_l(x)`` (not for ``relu``, whose gates come
        from the value network)."""
        self._check_input(x)
        return self._preactivations(x)

    def _preactivations(self, x: torch.Tensor) -> list[torch.Tensor]:
        out, q = [], x
        for layer in self.feature:
            pre = layer(x if self.variant == "dlgn-sf" else q)
            out.append(pre)
            # ReLU gating networks pass relu(q) on; linear ones (DLGN) pass q itself.
            q = pre if self.variant.startswith("dlgn") else torch.relu(pre)
        return out

    def value_input(self, x: torch.Tensor) -> torch.Tensor:
        """What the value network is fed: ``x``, or all ones for ``dlgn-ones``."""
        return torch.ones_like(x) if self.variant == "dlgn-ones" else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        z = self.value_input(x)
        if self.variant == "relu":
            for layer in self.value:
                z = torch.relu(layer(z))
        else:
            if self.gate == "hard":  # no gradient through the gates: build no graph for them
                with torch.no_grad():
                    gates = self._gates(x)
                for layer, g in zip(self.value, gates, strict=True):
                    z = layer(z) * g
            else:
                for layer, g in zip(self.value, self._gates(x), strict=True):
                    z = layer(z) * g
        if self.arch == "conv":
            z = z.mean(dim=(-2, -1))  # global average pooling
        return self.readout(z)

    # The old attribute names, readable until galu 0.3.
    @property
    def widths(self) -> tuple[int, ...]:
        return self.hidden_features

    @property
    def beta(self) -> float:
        return self.scale

    def extra_repr(self) -> str:
        soft = f", scale={self.scale}, eps={self.eps}" if self.gate == "soft" else ""
        return f"variant={self.variant!r}, arch={self.arch!r}, gate={self.gate!r}{soft}"


def _copy_relu_layers(source: nn.Module | None, target: DGN) -> nn.ModuleList:
    """The hidden layers of a trained ReLU network, copied (FLNPF's frozen gating network)."""
    layers: list[Any]
    if isinstance(source, DGN) and source.variant == "relu":
        layers = list(source.value)
    elif (
        source is not None and hasattr(source, "layers") and source.__class__.__name__ == "ReLUNet"
    ):
        layers = list(source.layers)  # type: ignore[arg-type]
    else:
        raise ValueError(
            "`gating_from` must be a DGN with variant='relu' or a ReLUNet; "
            f"got {type(source).__name__}."
        )
    shapes = [tuple(layer.weight.shape) for layer in layers]
    want = [tuple(layer.weight.shape) for layer in target.value]  # type: ignore[arg-type]
    if shapes != want:
        raise ValueError(f"`gating_from` has layer shapes {shapes}; this network needs {want}.")
    out = nn.ModuleList()
    for layer in layers:
        new = copy.deepcopy(layer)
        if isinstance(new, nn.Linear | nn.Conv2d):
            out.append(new)
        else:  # galu's seeded linear layer: rebuild as nn.Linear with the same numbers
            lin = nn.Linear(new.weight.shape[1], new.weight.shape[0], bias=new.bias is not None,
                            dtype=new.weight.dtype, device=new.weight.device)  # fmt: skip
            with torch.no_grad():
                lin.weight.copy_(new.weight)
                if new.bias is not None:
                    lin.bias.copy_(new.bias)
            out.append(lin)
    if any((layer.bias is not None) != target.bias for layer in out):
        raise ValueError("`gating_from` and this network must agree on `bias`.")
    return out
