import json

from typer.testing import CliRunner

from galu.cli import app

runner = CliRunner()


def test_list_shows_experiments_and_presets():
    res = runner.invoke(app, ["list"])
    assert res.exit_code == 0
    assert "memorization" in res.output and "smoke, quick, paper" in res.output


def test_run_prints_table_and_paths_then_plot_redraws(tmp_path):
    out = tmp_path / "run"
    res = runner.invoke(
        app,
        [
            "run",
            "memorization",
            "--preset",
            "smoke",
            "--out",
            str(out),
            "--seed",
            "7",
            "--set",
            "k=2,8",
            "--set",
            "steps=20",
            "--no-progress",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "results table:" in res.output and "figure:" in res.output and "1 - kd/m" in res.output
    assert json.loads((out / "config.json").read_text())["config"]["seed"] == 7
    res = runner.invoke(app, ["plot", str(out)])
    assert res.exit_code == 0 and "memorization.png" in res.output


def test_bad_input_exits_2_with_a_clear_message(tmp_path):
    cases = [
        (["run", "memorisation"], "unknown experiment 'memorisation'"),
        (["run", "memorization", "--preset", "huge"], "unknown preset 'huge'"),
        (["run", "memorization", "--set", "kk=3"], "unknown config key 'kk'"),
        (["run", "memorization", "--set", "k=0"], "must list integers >= 1"),
        (["plot", str(tmp_path)], "is not a galu run directory"),
    ]
    for args, message in cases:
        res = runner.invoke(app, args)
        assert res.exit_code == 2, (args, res.output)
        assert message in " ".join(res.output.split()), (args, res.output)


def test_info_reports_versions():
    res = runner.invoke(app, ["info"])
    assert res.exit_code == 0 and '"torch"' in res.output
