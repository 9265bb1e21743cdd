import math

import pytest

from galu.experiments.min_width import MinWidth
from galu.runner import run_experiment


def _exp(**over):
    return MinWidth.from_preset("smoke", over)


def test_search_result_is_the_smallest_width_that_reaches_the_threshold():
    # Independent check of the binary search: train k* and k* − 1 directly.
    exp = _exp()
    params = dict(m=64, d=8, d_out=4, model="galu0")
    rows = {r["metric"]: r["value"] for r in exp.run_point(params, 0)}
    k = int(rows["min_k"])
    assert 1 <= k <= exp.config.k_max
    assert exp._trial(params, k, [0])[0]
    if k > 1:
        assert not exp._trial(params, k - 1, [0])[0]
    assert rows["trials"] <= math.ceil(math.log2(exp.config.k_max)) + 1


@pytest.mark.parametrize("model", ["relu", "galu0"])
def test_lockstep_search_over_seeds_equals_one_seed_at_a_time(model):
    exp = _exp()
    params = dict(m=64, d=8, d_out=1, model=model)
    together = exp.run_seeds(params, [0, 1, 2])
    for s in (0, 1, 2):
        assert exp.run_point(params, s) == together[s]


def test_unreachable_threshold_gives_nan():
    exp = _exp(threshold=1e-6, k_max=2, steps=20)
    rows = {
        r["metric"]: r["value"] for r in exp.run_point(dict(m=64, d=8, d_out=4, model="relu"), 0)
    }
    assert math.isnan(rows["min_k"])


def test_smoke_run_writes_table_and_figure(tmp_path):
    res = run_experiment("min-width", preset="smoke", out=tmp_path, progress=False)
    assert res.done == res.total == 2 * 2 * 2
    assert [p.name for p in res.figures] == ["min_width.png"]
    assert list(res.summary.columns) == ["d_out", "m·d'/(d+d')", "relu", "galu0"]
