"""Every choice in every experiment's config is checked before anything is written (issue 18)."""

import json
import typing

import pytest

from galu.experiments.base import experiments, get_experiment
from galu.experiments.config import ConfigError, _field_types
from galu.runner import run_experiment


def _string_fields():
    for name, cls in experiments().items():
        for key, tp in _field_types(cls.Config).items():
            origin = typing.get_origin(tp)
            item = typing.get_args(tp)[0] if origin in (tuple, list) else tp
            if item is str or typing.get_origin(item) is typing.Literal:
                yield name, key, origin in (tuple, list)


@pytest.mark.parametrize(("name", "key", "is_list"), list(_string_fields()))
def test_every_string_choice_refuses_a_typo_at_resolve(name, key, is_list):
    cls = get_experiment(name)
    with pytest.raises((ConfigError, ValueError), match=f"`{key}|{key}|'zzz'"):
        cls.from_preset("smoke", {key: ("zzz",) if is_list else "zzz"})


def test_a_typo_writes_no_run_directory_and_the_fixed_command_runs(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match=r"`gates` must be one of \('halfspace'"):
        run_experiment("ggdln-curves", preset="smoke", out=out, overrides=["gates=halfspce"])
    assert not out.exists()
    with pytest.raises(ConfigError, match=r"`data_dir` \(='/nonexistent'\) is not an existing"):
        run_experiment("real-data", preset="smoke", out=out, overrides=["data_dir=/nonexistent"])
    assert not out.exists()


def test_the_old_data_directory_key_still_works_for_one_release(tmp_path):
    cls = get_experiment("real-data")
    with pytest.warns(DeprecationWarning, match="'root' is now 'data_dir'"):
        config = cls.from_preset("smoke", {"root": str(tmp_path)}).config
    assert config.data_dir == str(tmp_path)
    # a config.json written before the rename resumes (read silently, same run)
    saved = {**cls.from_preset("smoke").config.to_dict()}
    saved["root"] = saved.pop("data_dir")
    assert cls.from_saved(json.loads(json.dumps(saved))).config == cls.from_preset("smoke").config


def test_a_run_directory_written_before_the_rename_resumes(tmp_path):
    out = tmp_path / "run"
    first = run_experiment("real-data", preset="smoke", out=out, progress=False)
    record = json.loads((out / "config.json").read_text())
    record["config"]["root"] = record["config"].pop("data_dir")
    (out / "config.json").write_text(json.dumps(record))
    again = run_experiment("real-data", preset="smoke", out=out, progress=False)
    assert again.ran == 0 and len(again.table) == len(first.table)


def test_experiments_load_from_the_entry_point_group(monkeypatch):
    from importlib.metadata import EntryPoint

    import galu.experiments.base as base

    good = EntryPoint("toy", "tests.runner.toy_experiment", base.ENTRY_POINT_GROUP)
    calls = []

    def fake(*, group):
        calls.append(group)
        return [good]

    import sys

    monkeypatch.delitem(base._REGISTRY, "toy", raising=False)  # loaded by no other route here
    monkeypatch.delitem(sys.modules, "tests.runner.toy_experiment", raising=False)
    monkeypatch.delenv("GALU_EXPERIMENTS", raising=False)
    assert "toy" not in base.experiments()  # the real group has no toy
    monkeypatch.setattr(base, "entry_points", fake)
    assert "toy" in base.experiments() and calls == ["galu.experiments"]
    broken = EntryPoint("bad", "no_such_module_xyz", base.ENTRY_POINT_GROUP)
    monkeypatch.setattr(base, "entry_points", lambda *, group: [broken])
    with pytest.raises(ConfigError, match=r"entry point 'bad' = 'no_such_module_xyz' cannot be"):
        base.experiments()


def test_a_run_directory_with_the_old_empty_root_resumes(tmp_path):
    """galu 0.1 wrote ``"root": ""`` (its default); that is ``data_dir=None`` now, the same run."""
    out = tmp_path / "run"
    first = run_experiment("real-data", preset="smoke", out=out, progress=False)
    record = json.loads((out / "config.json").read_text())
    assert record["config"].pop("data_dir") is None
    record["config"]["root"] = ""
    (out / "config.json").write_text(json.dumps(record))
    again = run_experiment("real-data", preset="smoke", out=out, progress=False)
    assert again.ran == 0 and len(again.table) == len(first.table)


def test_a_saved_config_whose_data_directory_is_gone_still_loads(tmp_path):
    """Re-plotting or reporting a finished run does not need its data any more."""
    cls = get_experiment("real-data")
    gone = tmp_path / "gone"
    gone.mkdir()
    saved = cls.from_preset("smoke", {"data_dir": str(gone)}).config.to_dict()
    gone.rmdir()
    assert cls.from_saved(saved).config.data_dir == str(gone)
    with pytest.raises(ConfigError, match=r"`data_dir` \(=.*gone'\) is not an existing directory"):
        cls.from_preset("smoke", {"data_dir": str(gone)})


def test_old_names_in_a_grid_and_old_values_are_upgraded(tmp_path):
    from galu.runner.plan import make_plan

    with pytest.warns(DeprecationWarning, match="'root' is now 'data_dir'"):
        plan = make_plan("real-data", "smoke", grid=[f"root={tmp_path}"])
    assert {p.config["data_dir"] for p in plan.points} == {str(tmp_path)}
    with pytest.warns(DeprecationWarning, match="gates='ones' is now gates='one'"):
        config = get_experiment("ggdln-curves").from_preset("smoke", {"gates": "ones"}).config
    assert config.gates == "one"
