"""Which GLU variant to pick: a small byte-level language model with a swappable FFN
(Shazeer 2020; Huang 2024; ``science/glu.md``).

A decoder-only transformer (learned positions, pre-LayerNorm, causal multi-head attention,
untied output head) is trained on bytes of text that needs no download: by default the Python
standard library's own ``.py`` files (sorted by path, concatenated), or any local file
(``text_file=``). Every variant gets the same budget: non-gated FFNs have hidden size ``d_ff``,
gated ones ``gated_hidden_size(d_ff)`` (the 2/3 rule), so parameter counts match to rounding.
The last ``val_fraction`` of the bytes is held out; training batches are random windows of the
rest, drawn from the seed (the same batches for every variant).

Rows per variant and seed: ``val_loss`` (nats per byte) at each evaluation step (column
``step``), the final ``val_loss`` and ``train_loss`` (``step = steps``), and ``params``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from galu.data.text import load_text, stdlib_text  # noqa: F401  (stdlib_text: re-exported)
from galu.experiments.base import Experiment, Row, register, save_figure
from galu.experiments.config import BaseConfig, Count, Fraction, Positive
from galu.nn import FFN_VARIANTS, gated_hidden_size
from galu.nn._lm import Block, ByteLM  # noqa: F401  (Block: re-exported)
from galu.seeding import derive_seed, generator


@dataclass(frozen=True)
class GLULMConfig(BaseConfig):
    """Model size, training budget and data for the FFN-variant study."""

    variants: tuple[str, ...] = (
        "relu",
        "gelu",
        "swish",
        "glu",
        "bilinear",
        "reglu",
        "geglu",
        "swiglu",
        "xgelu",
        "xsilu",
        "xatlu",
        "xglu-silu",
        "xglu2-silu",
    )
    d_model: Count = 64
    n_layers: Count = 2
    n_heads: Count = 4
    d_ff: Count = 192  # non-gated hidden size; gated variants use 2/3 of it (128)
    context: Count = 64
    batch: Count = 16
    steps: Count = 300
    lr: Positive = 3e-3
    eval_every: Count = 50
    eval_batches: Count = 8
    max_bytes: Count = 2_000_000
    val_fraction: Fraction = 0.1
    text_file: str | None = None
    repeats: Count = 2

    def __post_init__(self) -> None:
        super().__post_init__()
        bad = [v for v in self.variants if v not in FFN_VARIANTS]
        if not self.variants or bad:
            raise ValueError(f"`variants` has unknown {bad}; valid: {FFN_VARIANTS}.")
        if self.d_model % self.n_heads:
            raise ValueError(f"`d_model` ({self.d_model}) must be a multiple of `n_heads`.")


PRESETS: dict[str, dict[str, Any]] = {
    "smoke": dict(
        variants=("relu", "swiglu", "xglu2-silu"),
        d_model=16,
        n_layers=1,
        n_heads=2,
        d_ff=48,
        context=16,
        batch=4,
        steps=20,
        eval_every=10,
        eval_batches=2,
        max_bytes=50_000,
        repeats=1,
    ),
    "quick": dict(),
    "paper": dict(
        d_model=256,
        n_layers=6,
        n_heads=8,
        d_ff=1024,
        context=256,
        batch=32,
        steps=5000,
        lr=1e-3,
        eval_every=250,
        eval_batches=32,
        max_bytes=20_000_000,
        repeats=3,
    ),
}


@register
class GLULM(Experiment):
    name = "glu-lm"
    summary = "Byte-level LM with a swappable FFN: held-out loss per GLU variant (equal budget)"
    Config = GLULMConfig
    presets = PRESETS
    config: GLULMConfig

    def points(self) -> list[dict[str, Any]]:
        return [dict(variant=v) for v in self.config.variants]

    def _data(self) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.config
        data = load_text(c.text_file, c.max_bytes)
        if len(data) < 4 * (c.context + 1):
            raise ValueError(f"the text has only {len(data)} bytes; need more than the context.")
        cut = int(len(data) * (1 - c.val_fraction))
        if min(cut, len(data) - cut) <= c.context + 1:
            raise ValueError(
                f"the text ({len(data)} bytes) leaves a train or held-out split of at most "
                f"`context` + 1 = {c.context + 1} bytes; use more text or a smaller context."
            )
        return data[:cut], data[cut:]

    def _batch(self, data: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.config
        start = torch.randint(0, len(data) - c.context - 1, (c.batch,), generator=g)
        idx = start[:, None] + torch.arange(c.context + 1)
        chunk = data[idx]
        return chunk[:, :-1], chunk[:, 1:]

    def _eval(self, model: ByteLM, data: torch.Tensor, seed: int) -> float:
        g = generator(seed, "eval")  # the same held-out batches at every evaluation
        total = 0.0
        with torch.no_grad():
            for _ in range(self.config.eval_batches):
                x, y = self._batch(data, g)
                total += float(nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten()))
        return total / self.config.eval_batches

    def run_point(self, params: dict[str, Any], seed: int) -> list[Row]:
        c = self.config
        variant = params["variant"]
        train, val = self._data()
        model = ByteLM(
            variant,
            d_model=c.d_model,
            n_layers=c.n_layers,
            n_heads=c.n_heads,
            d_ff=c.d_ff,
            context=c.context,
            generator=generator(seed, "glu-lm-init"),  # shared by every variant
            ffn_generator=generator(seed, "glu-lm-ffn", variant),
        )
        opt = torch.optim.AdamW(model.parameters(), lr=c.lr, weight_decay=0.0)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: min(1.0, (s + 1) / 20) * 0.5 * (1 + math.cos(math.pi * s / c.steps))
        )
        g = generator(seed, "glu-lm-batches")  # same batches for every variant
        eval_seed = derive_seed(seed, "glu-lm-eval")
        rows: list[Row] = []
        recent: list[float] = []
        for step in range(1, c.steps + 1):
            x, y = self._batch(train, g)
            loss = nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            recent = [*recent, float(loss.detach())][-c.eval_every :]
            if step % c.eval_every == 0 or step == c.steps:
                rows.append(
                    dict(metric="val_loss", step=step, value=self._eval(model, val, eval_seed))
                )
        rows.append(dict(metric="train_loss", step=c.steps, value=float(np.mean(recent))))
        n_params = sum(p.numel() for p in model.parameters())
        rows.append(dict(metric="params", step=c.steps, value=float(n_params)))
        return rows

    def summarize(self, table: pd.DataFrame) -> pd.DataFrame:
        """Final held-out loss per variant: mean, spread (sd over seeds), parameters."""
        final = table[(table.metric == "val_loss") & (table.step == table.step.max())]
        out = final.groupby("variant")["value"].agg(["mean", "std", "count"]).reset_index()
        params = table[table.metric == "params"].groupby("variant")["value"].first()
        out["params"] = out.variant.map(params).astype(int)
        return out.rename(columns={"mean": "val_loss", "std": "sd", "count": "seeds"}).sort_values(
            "val_loss"
        )

    def plot(self, table: pd.DataFrame, fig_dir: Path) -> list[Path]:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        c = self.config
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2), dpi=120)
        curves = table[table.metric == "val_loss"]
        for i, (variant, part) in enumerate(curves.groupby("variant")):
            m = part.groupby("step")["value"].mean()
            ax1.plot(
                m.index, m.values, color=f"C{i % 10}", ls="-" if i < 10 else "--", label=variant
            )
        ax1.set_xlabel("step")
        ax1.set_ylabel("held-out loss (nats / byte)")
        ax1.set_title("learning curves (mean over seeds)", fontsize=9)
        ax1.grid(alpha=0.3)
        ax1.legend(fontsize=7, ncol=2)
        s = self.summarize(table)
        # Points, not bars: the differences are a few % of the loss, and a bar's length would
        # only be honest from 0.
        ax2.errorbar(s.val_loss, s.variant, xerr=s.sd.fillna(0), fmt="o", color="C0", capsize=2)
        lo, hi = float(s.val_loss.min()), float(s.val_loss.max())
        ax2.set_xlim(lo - 0.1 * (hi - lo + 1e-3) - 0.02, hi + 0.1 * (hi - lo + 1e-3) + 0.02)
        ax2.set_xlabel("final held-out loss (± sd over seeds)")
        ax2.invert_yaxis()
        ax2.grid(alpha=0.3, axis="x")
        fig.suptitle(
            f"byte LM, d={c.d_model}, {c.n_layers} layers, d_ff={c.d_ff} (gated: "
            f"{gated_hidden_size(c.d_ff)}), {c.steps} steps × {c.batch}×{c.context} bytes, "
            f"{c.repeats} seeds",
            fontsize=9,
        )
        return [save_figure(fig, fig_dir / "glu_lm.png")]
