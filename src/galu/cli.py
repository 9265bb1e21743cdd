"""The ``galu`` command line: list, run, reproduce, plot, bench, info. No experiment logic
lives here."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    # Help texts are plain text: `[bench]` in an install hint must print as written.
    rich_markup_mode=None,
    help="galu: gated linear networks — run, resume and plot reproducible experiments.",
)
console = Console()
err = Console(stderr=True)


def _fail(message: str) -> None:
    # Messages quote user input and exceptions: printed as text, never parsed as markup.
    err.print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(code=2)


def _print_frame(df, title: str) -> None:
    table = Table(title=escape(title), show_lines=False)
    for col in df.columns:
        table.add_column(escape(str(col)), justify="right")
    for row in df.itertuples(index=False):
        table.add_row(*[escape(f"{v:.4f}" if isinstance(v, float) else str(v)) for v in row])
    console.print(table)


def _version(value: bool) -> None:
    if value:
        from galu import __version__

        typer.echo(f"galu {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="print the version"),
    ] = False,
) -> None:
    """galu: gated linear networks — run, resume and plot reproducible experiments."""


def _show_config(name: str, preset: str) -> None:
    from galu.experiments import ConfigError, config_table, get_experiment

    try:
        frame = config_table(get_experiment(name), preset)
    except ConfigError as exc:
        _fail(str(exc))
    typer.echo(f"{name}: config keys at preset {preset!r} (value, then the class default)")
    value_col = f"value ({preset})"
    for row in frame.to_dict("records"):
        typer.echo(f"  {row['key']}: {row['type']} = {row[value_col]}  (default {row['default']})")
        about = "; ".join(
            t for t in (row["description"], row["valid"] and f"valid: {row['valid']}") if t
        )
        if about:
            typer.echo(f"      {about}")
    typer.echo("change a key with --set key=value; sweep it with galu sweep --grid key=v1,v2")


def _report_outcome(result, name: str, preset: str) -> None:
    """What `run` and `sweep` print after the engine returns (summary, failures, paths)."""
    from galu.runner.engine import summary_title
    from galu.runner.lock import describe_holder
    from galu.runner.sweep import read_failures

    if result.took_over is not None:
        err.print(f"took over a stale lock left by {escape(describe_holder(result.took_over))}")
    if result.summary is not None:
        title = summary_title(_axes_of(result.path))
        _print_frame(result.summary, f"{name} ({preset}): {title}")
    state = "interrupted" if result.interrupted else ("resumed" if result.resumed else "finished")
    workers = f" on {result.backend} × {result.workers}" if result.workers else ""
    console.print(
        f"{state}: {result.done}/{result.total} (point, seed) pairs done, {result.failed} "
        f"failed; this call ran {result.ran}{workers} in {result.seconds:.1f} s",
        markup=False,
    )
    for rec in read_failures(result.path)[:5]:
        text = escape(f"seed={rec['seed']} {rec['params']}: {rec['error']}")
        err.print(f"[red]failed[/] {text}")
    if result.failed:
        err.print(
            escape(
                f"{result.failed} failed: tracebacks in {result.path / 'failed'}; "
                "--retry-failed reruns them."
            )
        )
    # Paths go out unwrapped so they can be copied or parsed.
    typer.echo(f"results table: {result.path / 'results.csv'}")
    for fig in result.figures:
        typer.echo(f"figure:        {fig}")
    if result.interrupted:
        typer.echo(f"re-run the same command (--out {result.path}) to resume.")
        raise typer.Exit(code=130)
    if result.failed:
        raise typer.Exit(code=1)


def _axes_of(path: Path) -> dict:
    from galu.runner.rundir import RunDir

    return RunDir(path).read_config().get("grid") or {}


_PROGRESS_EVERY = typer.Option(
    help="seconds between plain progress lines when stderr is not a terminal (logs, nohup)"
)


@app.command("list")
def list_cmd() -> None:
    """List the experiments and their presets."""
    from galu.experiments import experiments

    table = Table(title="galu experiments")
    table.add_column("name")
    table.add_column("presets")
    table.add_column("what it reproduces")
    for name, cls in experiments().items():
        table.add_row(name, ", ".join(cls.presets), cls.summary)
    console.print(table)


@app.command("run")
def run_cmd(
    name: Annotated[str, typer.Argument(help="experiment name (see `galu list`)")],
    preset: Annotated[str, typer.Option(help="named preset: smoke, quick or paper")] = "quick",
    out: Annotated[
        Path | None,
        typer.Option(help="run directory; re-use it to resume (default runs/NAME-TIMESTAMP)"),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="base seed (repeat r uses seed + r)")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="override a config key: --set key=value (repeatable)"),
    ] = None,
    threads: Annotated[
        int | None, typer.Option(help="torch threads (default: torch's, all cores)")
    ] = None,
    retry_failed: Annotated[bool, typer.Option(help="run failed points again")] = False,
    show_config: Annotated[
        bool, typer.Option(help="list the experiment's config keys, types and values; run nothing")
    ] = False,
    progress: Annotated[bool, typer.Option(help="show progress")] = True,
    progress_every: Annotated[float, _PROGRESS_EVERY] = 30.0,
) -> None:
    """Run (or resume) an experiment and write results.csv, figures and config.json."""
    from galu.experiments import ConfigError
    from galu.runner import RunDirError, run_experiment

    if show_config:
        _show_config(name, preset)
        return
    try:
        result = run_experiment(
            name, preset=preset, out=out, seed=seed, overrides=set_ or [], progress=progress,
            progress_every=progress_every, threads=threads, retry_failed=retry_failed,
        )  # fmt: skip
    except (ConfigError, RunDirError, ValueError, RuntimeError) as exc:
        _fail(str(exc))
        return
    _report_outcome(result, name, preset)


@app.command("reproduce")
def reproduce_cmd(
    paper: Annotated[str, typer.Argument(help="paper whose experiments to run, e.g. galu")],
    preset: Annotated[str, typer.Option(help="preset for every experiment")] = "quick",
    out: Annotated[
        Path | None,
        typer.Option(help="folder; re-use it to resume (default runs/PAPER-PRESET-TIME)"),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="base seed for every experiment")] = None,
    progress: Annotated[bool, typer.Option(help="show progress bars")] = True,
    retry_failed: Annotated[bool, typer.Option(help="run failed points again")] = False,
) -> None:
    """Run every experiment of a paper: one folder per experiment plus index.md."""
    from galu.experiments import ConfigError
    from galu.runner import RunDirError, reproduce

    try:
        root, results = reproduce(
            paper, preset=preset, out=out, seed=seed, progress=progress, retry_failed=retry_failed
        )
    except (ConfigError, RunDirError, FileNotFoundError, ValueError, RuntimeError) as exc:
        _fail(str(exc))
        return
    for res in results:
        failed = f", {res.failed} failed" if res.failed else ""
        typer.echo(
            f"{res.path.name:>15}: {res.done}/{res.total} done{failed}, {res.path / 'results.csv'}"
        )
    typer.echo(f"index: {root / 'index.md'}")
    if any(r.interrupted for r in results):
        typer.echo(f"re-run with --out {root} to resume.")
        raise typer.Exit(code=130)
    if any(r.failed for r in results):
        typer.echo(f"some points failed: tracebacks in {root}/*/failed/; --retry-failed reruns")
        raise typer.Exit(code=1)


@app.command("sweep")
def sweep_cmd(
    name: Annotated[str, typer.Argument(help="experiment name (see `galu list`)")],
    out: Annotated[Path, typer.Option(help="sweep directory; re-run the same command to resume")],
    preset: Annotated[str, typer.Option(help="named preset the grid starts from")] = "smoke",
    grid: Annotated[
        list[str] | None,
        typer.Option(help="grid axis key=v1,v2,... (repeatable); list keys are replaced"),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="override a config key: --set key=value (repeatable)"),
    ] = None,
    backend: Annotated[str, typer.Option(help="inline, process or ray")] = "inline",
    workers: Annotated[
        int | None, typer.Option(help="processes (process) or CPUs of a local Ray instance")
    ] = None,
    address: Annotated[
        str | None,
        typer.Option(help="Ray cluster to join: auto or ray://HOST:10001 (default: start one)"),
    ] = None,
    threads: Annotated[
        int, typer.Option(help="torch threads per point (same on every backend)")
    ] = 1,
    retry_failed: Annotated[bool, typer.Option(help="run failed points again")] = False,
    progress: Annotated[bool, typer.Option(help="show progress")] = True,
    progress_every: Annotated[float, _PROGRESS_EVERY] = 30.0,
) -> None:
    """Run (or resume) a grid of an experiment's points on a backend; rows land as they finish."""
    from galu.experiments import ConfigError
    from galu.runner import RunDirError
    from galu.runner.sweep import run_sweep

    try:
        res = run_sweep(
            name,
            preset=preset,
            grid=grid or [],
            overrides=set_ or [],
            out=out,
            backend=backend,
            workers=workers,
            address=address,
            threads=threads,
            retry_failed=retry_failed,
            progress=progress,
            progress_every=progress_every,
        )
    except (ConfigError, RunDirError, ValueError, RuntimeError) as exc:
        _fail(str(exc))
        return
    _report_outcome(res, name, preset)


@app.command("report")
def report_cmd(
    run_dirs: Annotated[list[Path], typer.Argument(help="run or sweep directories")],
    out: Annotated[Path, typer.Option(help="the HTML file to write")] = Path("report.html"),
    max_rows: Annotated[int, typer.Option(help="rows shown per results table")] = 2000,
) -> None:
    """Build one self-contained HTML page: figures, sortable tables, config, versions, timings."""
    from galu.report import build_report
    from galu.runner import RunDirError

    try:
        path = build_report(run_dirs, out, max_rows=max_rows)
    except (RunDirError, ValueError) as exc:
        _fail(str(exc))
        return
    typer.echo(f"report: {path}")


@app.command("plot")
def plot_cmd(
    run_dir: Annotated[Path, typer.Argument(help="a run directory written by `galu run`")],
) -> None:
    """Redraw a run's figures (and rewrite results.csv) from its finished points."""
    from galu.experiments import ConfigError
    from galu.runner import RunDirError, plot_run

    try:
        figures, summary = plot_run(run_dir)
    except (ConfigError, RunDirError) as exc:
        _fail(str(exc))
        return
    if summary is not None:
        from galu.runner.engine import summary_title

        _print_frame(summary, f"{run_dir}: {summary_title(_axes_of(run_dir))}")
    for fig in figures:
        typer.echo(f"figure: {fig}")


def benchmarks_dir() -> Path:
    """``benchmarks/`` of the source checkout this galu was installed from (editable install)."""
    import galu

    return Path(galu.__file__).resolve().parents[2] / "benchmarks"


@app.command(
    "bench",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def bench_cmd(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="benchmark: a file benchmarks/NAME.py")],
) -> None:
    """Run a benchmark from the source checkout; extra options go to it (`-- --help` for its own).

    `galu bench solvers --sizes small` compares the exact solvers with scnn and Adam (needs
    `pip install -e '.[bench]'`); `galu bench paths` checks every solver path against numpy;
    `galu bench gln` times exact online GLN training against pygln and DeepMind's code.
    """
    import subprocess
    import sys

    folder = benchmarks_dir()
    # benchmarks/_name.py are helpers (e.g. the GLN anchors' runners), not benchmarks
    available = (
        sorted(p.stem for p in folder.glob("*.py") if not p.stem.startswith("_"))
        if folder.is_dir()
        else []
    )
    if not available:
        _fail(
            f"no benchmarks found at {folder}: they ship with the source checkout, not the "
            "wheel. Clone the repository and `pip install -e '.[bench]'` there."
        )
    if name not in available:
        _fail(f"unknown benchmark {name!r}; available: {', '.join(available)}.")
    code = subprocess.call([sys.executable, str(folder / f"{name}.py"), *ctx.args])
    raise typer.Exit(code=code)


@app.command("info")
def info_cmd() -> None:
    """Versions, device and thread count (what config.json records)."""
    import json

    from galu.runner.rundir import environment

    console.print_json(json.dumps(environment()))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
