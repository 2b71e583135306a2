"""What several runs are doing while a tool waits for them (tools/compare.py, tools/reproduce.py):
each run's log path when it starts, and every ``HPCFED_WATCH_EVERY`` seconds (default 20) one line
with every running run's round and ETA (read from its progress lines) and the whole set's ETA.

The set's ETA adds the running runs' ETAs and, for each run not started yet, the mean duration of
the finished ones (else the longest expected total of a running one), divided by the runs at once
(and never below the longest running ETA); it is "unknown" while a running run cannot know its own
end (a search).
"""
from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

PROGRESS = re.compile(r"^round +(\d+)/(\d+) \|.* \| +([\d.]+) s, ETA (?:<= )?(?:([\d.]+) s|unknown)")


class Watch:
    def __init__(self, runs: list[tuple[str, Path]], tool: str, parallel: int):
        self.tool, self.parallel = tool, parallel
        several = len({out for _, out in runs}) > 1
        self.names = {(label, out): f"{out.name}/{label}" if several else label for label, out in runs}
        self.pending = set(self.names)
        self.running: dict[tuple[str, Path], tuple[float, str, float | None]] = {}   # started, round, ETA
        self.durations: list[float] = []
        self.lock, self.done = threading.Lock(), threading.Event()
        self.every = float(os.environ.get("HPCFED_WATCH_EVERY", "20"))

    def __enter__(self) -> "Watch":
        threading.Thread(target=self._report, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.done.set()

    def started(self, key: tuple[str, Path], log: Path) -> None:
        with self.lock:
            self.pending.discard(key)
            self.running[key] = (time.perf_counter(), "starting", None)
        print(f"{self.tool}: {self.names[key]}: started, progress in {log}", flush=True)

    def saw(self, key: tuple[str, Path], line: str) -> None:
        """A line of the run's output: its progress lines set its round and ETA."""
        m = PROGRESS.match(line)
        if m:
            with self.lock:
                self.running[key] = (self.running[key][0], f"round {m.group(1)}/{m.group(2)}",
                                     float(m.group(4)) if m.group(4) else None)

    def finished(self, key: tuple[str, Path]) -> None:
        with self.lock:
            started, _, _ = self.running.pop(key)
            self.durations.append(time.perf_counter() - started)

    def line(self) -> str:
        """Where the set stands, in one line."""
        with self.lock:
            now = time.perf_counter()
            parts = [f"{self.names[k]} {where}, ETA {'unknown' if eta is None else f'{eta:.0f} s'}"
                     for k, (_, where, eta) in self.running.items()]
            etas = [eta for _, _, eta in self.running.values()]
            typical = (sum(self.durations) / len(self.durations) if self.durations else
                       max([now - s + e for s, _, e in self.running.values() if e is not None], default=None))
            if any(e is None for e in etas) or (self.pending and typical is None):
                total = "unknown"
            else:
                work = (sum(etas) + len(self.pending) * (typical or 0.0)) / self.parallel
                total = f"{max([work, *etas]):.0f} s"
            done = len(self.durations)
            return (f"{self.tool}: {done} of {len(self.names)} runs done, {len(self.pending)} waiting; "
                    f"{'; '.join(parts) or 'none running'}; all done in about {total}")

    def _report(self) -> None:
        while not self.done.wait(self.every):
            print(self.line(), flush=True)
