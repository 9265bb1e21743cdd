"""split-R̂ and ESS against known answers (AR(1) chains) and a direct NumPy computation."""

import numpy as np
import pytest
import torch

from galu.train import effective_sample_size, split_rhat


def _ar1(phi, draws, chains, quantities=3, seed=0):
    rng = np.random.default_rng(seed)
    x = np.empty((draws, chains, quantities))
    x[0] = rng.standard_normal((chains, quantities))
    noise = np.sqrt(1 - phi**2) * rng.standard_normal((draws, chains, quantities))
    for t in range(1, draws):
        x[t] = phi * x[t - 1] + noise[t]
    return torch.from_numpy(x)


@pytest.mark.parametrize("phi", [0.0, 0.5, 0.9])
def test_ess_of_ar1_chains_matches_the_integrated_autocorrelation_time(phi):
    draws, chains = 4000, 8
    ess = effective_sample_size(_ar1(phi, draws, chains))
    expected = draws * chains * (1 - phi) / (1 + phi)  # τ = (1 + φ) / (1 − φ)
    # The estimate's relative sd is about sqrt(2τ·(lags summed)/S·C): a few % here.
    np.testing.assert_allclose(ess.numpy(), expected, rtol=0.12)


def test_ess_equals_a_direct_lag_by_lag_computation():
    x = _ar1(0.6, 200, 4, quantities=1, seed=3).numpy()[..., 0]
    S, C = x.shape
    chain_mean = x.mean(0)
    acov = np.array(
        [[((x[: S - t, c] - chain_mean[c]) * (x[t:, c] - chain_mean[c])).sum() / S
          for c in range(C)] for t in range(S)]
    )  # fmt: skip
    W = (acov[0] * S / (S - 1)).mean()
    var_plus = (S - 1) / S * W + chain_mean.var(ddof=1)
    rho = 1 - (W - acov.mean(1)) / var_plus
    rho[0] = 1.0
    total, prev = 0.0, np.inf
    for t in range(0, S - 1, 2):
        pair = rho[t] + rho[t + 1]
        if pair <= 0:
            break
        prev = min(prev, pair)
        total += prev
    expected = S * C / (-1 + 2 * total)
    ess = float(effective_sample_size(torch.from_numpy(x[..., None]))[0])
    assert ess == pytest.approx(expected, rel=1e-10)


def test_split_rhat_is_one_for_mixed_chains_and_flags_stuck_ones():
    x = _ar1(0.3, 2000, 6, seed=1)
    direct = []
    for q in range(3):
        y = x[..., q].numpy()
        n = y.shape[0] // 2
        halves = np.concatenate([y[:n], y[-n:]], axis=1)
        W = halves.var(0, ddof=1).mean()
        B = n * halves.mean(0).var(ddof=1)
        direct.append(np.sqrt(((n - 1) / n * W + B / n) / W))
    rhat = split_rhat(x)
    np.testing.assert_allclose(rhat.numpy(), direct, rtol=1e-12)
    assert (rhat < 1.01).all()
    stuck = x.clone()
    stuck[:, :3] += 1.0  # half the chains sit one sd away
    assert (split_rhat(stuck) > 1.1).all()
    drift = x + torch.linspace(0, 2, x.shape[0])[:, None, None]  # not stationary
    assert (split_rhat(drift) > 1.05).all()


def test_bad_traces_are_refused():
    with pytest.raises(ValueError, match=r"`trace` must be \(draws, chains, ...\)"):
        split_rhat(torch.zeros(10))
    with pytest.raises(ValueError, match="at least 4 are needed"):
        effective_sample_size(torch.zeros(3, 2))


def test_a_constant_quantity_is_converged_and_has_no_error():
    x = torch.zeros(50, 4, 2)
    x[..., 1] = torch.randn(50, 4)
    assert split_rhat(x)[0] == 1.0
    assert effective_sample_size(x)[0] == 200
    x[:, 0, 0] = 1.0  # one chain stuck elsewhere
    assert split_rhat(x)[0] == float("inf")
