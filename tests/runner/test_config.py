import pytest

from galu.experiments import ConfigError, get_experiment, parse_overrides, resolve
from galu.experiments.memorization import PRESETS, MemorizationConfig


def test_presets_then_overrides_with_types_coerced_from_strings():
    c = resolve(
        MemorizationConfig,
        PRESETS,
        "smoke",
        {"k": "2,3", "lr": "1e-3", "repeats": "5", "models": "relu,galu-exact"},
    )
    assert c.k == (2, 3) and c.lr == 1e-3 and c.repeats == 5
    assert c.models == ("relu", "galu-exact")
    assert c.m == PRESETS["smoke"]["m"]  # untouched preset value
    assert c.seeds() == [0, 1, 2, 3, 4]
    assert resolve(MemorizationConfig, PRESETS, "smoke", {"k": "[4, 8]"}).k == (4, 8)
    # Brackets around unquoted strings, as typed on a shell: the same as the comma list.
    for text in ("[relu,galu]", "[relu, 'galu']", '["relu", "galu"]', "relu, galu"):
        assert resolve(MemorizationConfig, PRESETS, "smoke", {"models": text}).models == (
            "relu",
            "galu",
        ), text
    with pytest.raises(ConfigError, match=r"`k`: cannot parse '\[4, \[8' as a list; write"):
        resolve(MemorizationConfig, PRESETS, "smoke", {"k": "[4, [8"})


def test_unknown_key_names_it_and_suggests():
    with pytest.raises(
        ConfigError,
        match=r"unknown config key 'setps' \(from --set\)\. "
        r"Did you mean 'steps'\? Valid keys: seed, repeats, m",
    ):
        resolve(MemorizationConfig, PRESETS, "quick", {"setps": "3"})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"steps": "many"}, r"`steps` expects an integer; got 'many'"),
        ({"lr": "fast"}, r"`lr` expects a number; got 'fast'"),
        (
            {"models": "relu,mlp"},
            r"`models\[1\]` must be one of \('relu', 'galu-readout', 'galu', 'galu-exact'",
        ),
        ({"k": "0,2"}, r"`k` \(=\(0, 2\)\) must list integers >= 1"),
        ({"repeats": "0"}, r"`repeats` \(=0\) must be >= 1"),
        ({"ridge": "-1"}, r"`ridge` \(=-1.0\) must be a finite number >= 0"),
        ({"ridge": "inf"}, r"`ridge` \(=inf\) must be a finite number >= 0"),
        ({"max_ratio": "0.01"}, r"the grid is empty: no \(m, d, k\) has k·d <= max_ratio·m"),
    ],
)
def test_bad_values_are_clear(overrides, message):
    with pytest.raises(ConfigError, match=message):
        resolve(MemorizationConfig, PRESETS, "smoke", overrides)


def test_unknown_preset_and_experiment():
    with pytest.raises(
        ConfigError, match=r"unknown preset 'fast'; valid presets: smoke, quick, paper"
    ):
        resolve(MemorizationConfig, PRESETS, "fast")
    with pytest.raises(
        ConfigError,
        match=r"unknown experiment 'memorisation'; valid experiments: "
        r"channels-erf, channels-jump, channels-sweep, channels-toy, dgn-depth, dgn-variants, "
        r"gate-adaptation, generalization, ggdln-curves, ggdln-gate-learning, ggdln-multitask, "
        r"ggln-regression, gln-capacity, gln-forgetting, gln-local-vs-global, gln-online, "
        r"gln-regret, glu-lm, memorization, min-width",
    ):
        get_experiment("memorisation")


def test_parse_overrides():
    assert parse_overrides(["a=1", "b = x=y"]) == {"a": "1", "b": "x=y"}
    with pytest.raises(ConfigError, match=r"--set expects key=value; got 'steps'"):
        parse_overrides(["steps"])


def test_paper_preset_is_the_authors_grid():
    c = resolve(MemorizationConfig, PRESETS, "paper")
    assert (c.m, c.d, c.k) == ((256, 512, 768, 1024), (8, 16, 24, 32), (8, 16, 24, 32))
    assert (c.repeats, c.steps, c.lr, c.batch_size, c.hill_climb_steps) == (
        16,
        100_000,
        1e-3,
        128,
        512,
    )
