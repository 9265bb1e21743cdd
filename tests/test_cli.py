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


def test_reproduce_writes_one_folder_per_experiment_and_an_index(tmp_path):
    res = runner.invoke(
        app, ["reproduce", "galu", "--preset", "smoke", "--out", str(tmp_path), "--no-progress"]
    )
    assert res.exit_code == 0, res.output
    index = json.loads((tmp_path / "index.json").read_text())
    assert [e["experiment"] for e in index] == [
        "memorization",
        "min-width",
        "generalization",
        "real-data",
    ]
    for entry in index:
        assert entry["done"] == entry["total"] > 0
        assert all((tmp_path / f).exists() for f in entry["figures"])
    text = (tmp_path / "index.md").read_text()
    assert "## real-data" in text and "| kd/m | 1 - kd/m |" in text
    bad = runner.invoke(app, ["reproduce", "glu"])
    assert bad.exit_code == 2 and "unknown paper 'glu'; valid papers: galu" in bad.output


def test_bench_lists_benchmarks_and_passes_options_through(tmp_path, monkeypatch):
    import subprocess
    import sys

    res = runner.invoke(app, ["bench", "nope"])
    assert res.exit_code == 2
    # benchmarks/_gln_anchors.py is a helper, not listed
    want = (
        "unknown benchmark 'nope'; available: auto, channels, dgn, ensemble, ggdln, gln, glu, "
        "paths, solvers"
    )
    assert want in " ".join(res.output.split())
    # Extra options reach the benchmark script (run for real: `--help` only parses).
    proc = subprocess.run(
        [sys.executable, "-m", "galu", "bench", "solvers", "--", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--sizes {issue,small}" in proc.stdout
    monkeypatch.setattr("galu.cli.benchmarks_dir", lambda: tmp_path)
    res = runner.invoke(app, ["bench", "solvers"])
    assert res.exit_code == 2 and "ship with the source checkout" in " ".join(res.output.split())
