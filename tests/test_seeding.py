import numpy as np
import pytest

from galu.seeding import derive_seed, generator


def test_same_inputs_same_seed_and_keys_separate_streams():
    assert derive_seed(3, "data", 5, 8) == derive_seed(3, "data", 5, 8)
    seeds = {
        derive_seed(3, "data", 5, 8),
        derive_seed(3, "gates", 5, 8),
        derive_seed(4, "data", 5, 8),
        derive_seed(3, "data", 8, 5),
    }
    assert len(seeds) == 4
    assert 0 <= derive_seed(0) < 2**63


def test_key_types_do_not_change_the_stream():
    assert derive_seed(0, "data", 5) == derive_seed(0, "data", np.int64(5))
    assert derive_seed(0, 0.5) == derive_seed(0, np.float32(0.5))
    assert derive_seed(0, True) != derive_seed(0, 1)


def test_generators_are_reproducible():
    a, b = generator(1, "x").initial_seed(), generator(1, "x").initial_seed()
    assert a == b == derive_seed(1, "x")


@pytest.mark.parametrize("seed", [-1, 1.5, True])
def test_bad_seed(seed):
    with pytest.raises(ValueError, match=r"`seed` \(=.*\) must be a non-negative integer"):
        derive_seed(seed)
