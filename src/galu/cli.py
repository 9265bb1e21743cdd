"""The ``galu`` command line: list, run, plot, info. No experiment logic lives here."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="galu: gated linear networks — run, resume and plot reproducible experiments.",
)
console = Console()
err = Console(stderr=True)


def _fail(message: str) -> None:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code=2)


def _print_frame(df, title: str) -> None:
    table = Table(title=title, show_lines=False)
    for col in df.columns:
        table.add_column(str(col), justify="right")
    for row in df.itertuples(index=False):
        table.add_row(*[f"{v:.4f}" if isinstance(v, float) else str(v) for v in row])
    console.print(table)


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
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
) -> None:
    """Run (or resume) an experiment and write results.csv, figures and config.json."""
    from galu.experiments import ConfigError
    from galu.runner import RunDirError, run_experiment

    try:
        result = run_experiment(
            name, preset=preset, out=out, seed=seed, overrides=set_ or [], progress=progress
        )
    except (ConfigError, RunDirError) as exc:
        _fail(str(exc))
        return
    if result.summary is not None:
        _print_frame(result.summary, f"{name} ({preset}): mean over seeds")
    state = "interrupted" if result.interrupted else ("resumed" if result.resumed else "finished")
    console.print(f"{state}: {result.done}/{result.total} (point, seed) pairs done")
    # Paths go out unwrapped so they can be copied or parsed.
    typer.echo(f"results table: {result.path / 'results.csv'}")
    for fig in result.figures:
        typer.echo(f"figure:        {fig}")
    if result.interrupted:
        typer.echo(f"re-run with --out {result.path} to resume.")
        raise typer.Exit(code=130)


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
) -> None:
    """Run every experiment of a paper: one folder per experiment plus index.md."""
    from galu.experiments import ConfigError
    from galu.runner import RunDirError, reproduce

    try:
        root, results = reproduce(paper, preset=preset, out=out, seed=seed, progress=progress)
    except (ConfigError, RunDirError, FileNotFoundError) as exc:
        _fail(str(exc))
        return
    for res in results:
        typer.echo(f"{res.path.name:>15}: {res.done}/{res.total} done, {res.path / 'results.csv'}")
    typer.echo(f"index: {root / 'index.md'}")
    if any(r.interrupted for r in results):
        typer.echo(f"re-run with --out {root} to resume.")
        raise typer.Exit(code=130)


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
        _print_frame(summary, str(run_dir))
    for fig in figures:
        typer.echo(f"figure: {fig}")


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
