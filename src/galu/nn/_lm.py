"""A small decoder-only byte-level transformer whose feed-forward block is any GLU-family variant
(the model of the ``glu-lm`` study, ``docs/glu.md``): learned positions, pre-LayerNorm, causal
multi-head attention, untied output head, 256 byte tokens."""

from __future__ import annotations

import math

import torch
from torch import nn

from galu.nn._glu import GATED, FeedForward, gated_hidden_size


class Block(nn.Module):
    """One pre-LayerNorm transformer block: causal multi-head attention, then the FFN
    ``variant`` (gated variants at ``gated_hidden_size(d_ff)``: the 2/3 rule)."""

    def __init__(
        self,
        d: int,
        heads: int,
        d_ff: int,
        variant: str,
        g: torch.Generator,
        g_ffn: torch.Generator,
    ) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d, bias=False), nn.Linear(d, d, bias=False)
        for lin in (self.qkv, self.proj):
            with torch.no_grad():
                lin.weight.copy_(torch.randn(lin.weight.shape, generator=g) / math.sqrt(d))
        hidden = gated_hidden_size(d_ff) if variant in GATED else d_ff
        self.ffn = FeedForward(d, hidden, variant, generator=g_ffn, impl="eager")
        self.heads = heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(B, T, 3, self.heads, d // self.heads).unbind(2)
        att = nn.functional.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True
        )
        x = x + self.proj(att.transpose(1, 2).reshape(B, T, d))
        return x + self.ffn(self.ln2(x))


class ByteLM(nn.Module):
    """A decoder-only byte-level transformer whose FFN is ``variant``. Embeddings, attention and
    head are drawn from ``generator``, the FFNs from ``ffn_generator`` (default: the same), so
    that variants can share every non-FFN weight."""

    def __init__(
        self,
        variant: str,
        *,
        d_model: int,
        n_layers: int,
        n_heads: int,
        d_ff: int,
        context: int,
        generator: torch.Generator,
        ffn_generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        g = generator
        self.tok = nn.Embedding(256, d_model)
        self.pos = nn.Embedding(context, d_model)
        with torch.no_grad():
            self.tok.weight.copy_(torch.randn(self.tok.weight.shape, generator=g) * 0.02)
            self.pos.weight.copy_(torch.randn(self.pos.weight.shape, generator=g) * 0.02)
        self.blocks = nn.ModuleList(
            [Block(d_model, n_heads, d_ff, variant, g, ffn_generator or g) for _ in range(n_layers)]
        )
        self.ln = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, 256, bias=False)
        with torch.no_grad():
            self.head.weight.copy_(
                torch.randn(self.head.weight.shape, generator=g) / math.sqrt(d_model)
            )

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.tok(idx) + self.pos(torch.arange(idx.shape[1], device=idx.device))
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.ln(x))
