"""The one progress display of galu: a live bar on a terminal, plain lines elsewhere.

Used for a run's (point, seed) pairs (``galu.runner``), training steps (``galu.train.train``)
and sampler sweeps (``galu.train.gibbs_ggdln`` / ``langevin``).

On a terminal (stderr is a TTY) a rich bar shows, in this order, the name, the count, failures,
elapsed time, ETA, a bar that shrinks first and the current point last, so that at 80 columns the
count and the ETA stay visible and only the point's description is cut. When stderr is redirected
(``nohup``, SLURM, CI logs) a plain line is printed every ``every`` seconds and once at the end,
so a log shows where a long run is without waiting for it to finish.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from galu._validate import positive_number


def _clock(seconds: float) -> str:
    s = round(seconds)
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """Progress over ``total`` units (pairs, steps, sweeps) of which ``done`` (and ``failed``)
    are already finished.

    ``enabled=False`` shows nothing. ``stream`` (default stderr) decides the mode: a terminal gets
    the live bar, anything else a plain line every ``every`` seconds. ``width`` fixes the
    terminal width (tests); by default the terminal's own.
    """

    def __init__(
        self,
        name: str,
        total: int,
        done: int = 0,
        failed: int = 0,
        *,
        enabled: bool = True,
        stream: TextIO | None = None,
        every: float = 30.0,
        width: int | None = None,
        force_terminal: bool | None = None,
    ) -> None:
        positive_number("every", every, unit="of seconds")
        self.name, self.total = name, total
        self.done, self.failed = done, failed
        self._start_count = done + failed
        self._t0 = time.monotonic()
        self._last_line = self._t0
        self._every = every
        self._text = ""
        self._stream = stream if stream is not None else sys.stderr
        self._live: Any = None
        self._plain = False
        if not enabled:
            return
        terminal = self._stream.isatty() if force_terminal is None else force_terminal
        if terminal:
            self._start_live(width, force_terminal=force_terminal)
        else:
            self._plain = True

    # ------------------------------------------------------------------ live bar (terminal)
    def _start_live(self, width: int | None, *, force_terminal: bool | None) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.table import Column

        console = Console(file=self._stream, width=width, force_terminal=force_terminal)
        self._live = Progress(
            TextColumn(self.name, markup=False, style="bold"),
            MofNCompleteColumn(),
            TextColumn("{task.fields[failed_text]}", markup=False, style="red"),
            TimeElapsedColumn(),
            TextColumn("eta", markup=False),
            TimeRemainingColumn(),
            BarColumn(bar_width=None, table_column=Column(ratio=1, min_width=5)),
            TextColumn(
                "{task.description}",
                markup=False,
                table_column=Column(ratio=2, no_wrap=True, overflow="ellipsis", min_width=0),
            ),
            console=console,
            expand=True,
        )
        self._task = self._live.add_task(
            "", total=self.total, completed=self._start_count, failed_text=self._failed_text()
        )
        self._live.start()

    def _failed_text(self) -> str:
        return f"{self.failed} failed" if self.failed else ""

    # ------------------------------------------------------------------ API
    def describe(self, text: str) -> None:
        """What is running now, or a running figure such as the loss (shown after the bar)."""
        self._text = text
        if self._live is not None:
            self._live.update(self._task, description=text)

    def advance(self, n: int = 1, *, failed: bool = False) -> None:
        """``n`` more units finished (``failed``: they failed)."""
        if failed:
            self.failed += n
        else:
            self.done += n
        if self._live is not None:
            self._live.update(self._task, advance=n, failed_text=self._failed_text())
        elif self._plain and time.monotonic() - self._last_line >= self._every:
            self._line()

    def line(self) -> str:
        """The plain progress line: count, failures, elapsed, ETA and the current point."""
        finished = self.done + self.failed
        elapsed = time.monotonic() - self._t0
        ran = finished - self._start_count
        left = self.total - finished
        eta = _clock(elapsed / ran * left) if ran > 0 else "?"
        parts = [f"{self.name}: {finished}/{self.total} done"]
        if self.failed:
            parts.append(f"{self.failed} failed")
        parts += [f"elapsed {_clock(elapsed)}", f"eta {eta}" if left else "finished"]
        if self._text and left:
            parts.append(self._text)
        return ", ".join(parts)

    def _line(self) -> None:
        self._last_line = time.monotonic()
        print(self.line(), file=self._stream, flush=True)

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
        elif self._plain:
            self._line()
            self._plain = False

    def update(self, completed: int) -> None:
        """Set the count of finished units to ``completed`` (never backwards)."""
        n = completed - (self.done + self.failed)
        if n > 0:
            self.advance(n)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


RunProgress = Progress  # the name galu.runner used until 0.2
