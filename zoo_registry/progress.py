"""A plain progress bar on stderr, for slow steps (building hunyuan-tiny, reading shards).

No dependency: on a terminal it redraws one line (``\\r``); when stderr is not a terminal (logs,
CI, tests) it stays quiet and prints one summary line at the end, so captured output is stable.
``ZOO_PROGRESS=0`` silences it entirely, ``ZOO_PROGRESS=1`` forces the live bar.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Optional, TextIO


def _mode(stream) -> str:
    value = os.environ.get("ZOO_PROGRESS", "").strip().lower()
    if value in ("0", "false", "no", "off"):
        return "off"
    if value in ("1", "true", "yes", "on"):
        return "live"
    return "live" if getattr(stream, "isatty", lambda: False)() else "summary"


class Progress:
    """``Progress(title, total)``; call :meth:`update` (or pass :attr:`callback` on), then :meth:`close`.

    Usable as a context manager. ``total`` may be unknown (``None``) until the first callback.
    """

    WIDTH = 24

    def __init__(self, title: str, total: Optional[int] = None, stream: Optional[TextIO] = None, unit: str = "", delay: float = 0.0):
        self.title, self.total, self.unit = title, total, unit
        self.delay = delay  # seconds before anything is shown: fast steps stay silent
        self._drawn = False
        self.stream = stream or sys.stderr
        self.mode = _mode(self.stream)
        self.done, self.what = 0, ""
        self.start = time.perf_counter()
        self._closed = False
        self._last_draw = 0.0

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close(ok=exc_type is None)

    def callback(self, done: int, total: Optional[int] = None, what: str = "") -> None:
        """``callback(done, total, what)``: the form generators and loaders report progress in."""
        if total is not None:
            self.total = total
        self.done, self.what = done, what
        self._draw()

    def update(self, n: int = 1, what: str = "") -> None:
        self.callback(self.done + n, None, what or self.what)

    def _line(self) -> str:
        elapsed = time.perf_counter() - self.start
        if self.total:
            frac = min(max(self.done / self.total, 0.0), 1.0)
            filled = int(round(frac * self.WIDTH))
            bar = "[" + "#" * filled + "." * (self.WIDTH - filled) + "]"
            count = f"{self.done}/{self.total}{self.unit}"
        else:
            bar, count = "", f"{self.done}{self.unit}"
        what = f" {self.what}" if self.what else ""
        return f"{self.title} {bar} {count}{what} {elapsed:.1f}s".replace("  ", " ")

    def _draw(self, force: bool = False) -> None:
        if self.mode != "live" or self._closed:
            return
        now = time.perf_counter()
        if now - self.start < self.delay:
            return
        if not force and now - self._last_draw < 0.05 and self.done != self.total:
            return
        self._last_draw, self._drawn = now, True
        self.stream.write("\r\033[K" + self._line())
        self.stream.flush()

    def close(self, ok: bool = True) -> None:
        if self._closed:
            return
        elapsed = time.perf_counter() - self.start
        if self.mode == "live" and (self._drawn or elapsed >= self.delay):
            self._draw(force=True)
            self.stream.write("\n" if ok else " (failed)\n")
        elif self.mode == "summary" and ok and elapsed >= self.delay:
            self.stream.write(f"{self.title}: done in {elapsed:.1f}s\n")
        self.stream.flush()
        self._closed = True
