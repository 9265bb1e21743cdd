"""minibatch_epochs is the hand-written shuffle/split/step loop, step for step."""

import torch

from galu.train import minibatch_epochs


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2)
    ).double()


def test_same_parameters_as_the_written_out_loop():
    g = torch.Generator().manual_seed(1)
    X, y = (
        torch.randn(23, 3, generator=g, dtype=torch.float64),
        torch.randint(0, 2, (23,), generator=g),
    )
    seen: list[int] = []

    a = _net()
    opt = torch.optim.Adam(a.parameters(), lr=1e-2)
    minibatch_epochs(opt, lambda i: torch.nn.functional.cross_entropy(a(X[i]), y[i]), 23,
                     epochs=3, batch_size=5, generator=torch.Generator().manual_seed(7),
                     after_epoch=seen.append)  # fmt: skip

    b = _net()
    opt = torch.optim.Adam(b.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(7)
    for _ in range(3):
        perm = torch.randperm(23, generator=gen)
        for start in range(0, 23, 5):  # the last batch has 3 examples
            idx = perm[start : start + 5]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(b(X[idx]), y[idx]).backward()
            opt.step()
    assert seen == [1, 2, 3]
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)


def test_no_shuffle_keeps_the_order():
    batches: list[list[int]] = []
    w = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([w], lr=0.1)

    def loss(idx: torch.Tensor) -> torch.Tensor:
        batches.append(idx.tolist())
        return (w - 1).pow(2).sum()

    minibatch_epochs(opt, loss, 5, epochs=1, batch_size=2, shuffle=False)
    assert batches == [[0, 1], [2, 3], [4]]
