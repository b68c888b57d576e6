"""In-process implementations of the ``state/base.py`` protocols (one edge process).

Each method mutates its dictionaries synchronously and never awaits, so two exchanges on
the event loop cannot interleave between a check and an update.
"""

from __future__ import annotations

from originguard.state.base import WindowSample, window_start

# Bound on distinct keys (rule x characteristics); past it, keys idle for two periods are
# dropped first and then the oldest ones (rule G7: bounded everything).
MAX_KEYS = 1_000_000


class _Windows:
    __slots__ = ("start", "current", "previous", "period")

    def __init__(self, start: float, period: float) -> None:
        self.start = start
        self.current = 0
        self.previous = 0
        self.period = period

    def roll(self, period: float, now: float) -> None:
        start = window_start(period, now)
        if start == self.start and period == self.period:
            return
        if period == self.period and start - self.start == period:
            self.previous = self.current
        else:  # more than one window passed (or the rule's period changed): nothing recent
            self.previous = 0
        self.current = 0
        self.start = start
        self.period = period

    def snapshot(self) -> WindowSample:
        return WindowSample(self.start, self.current, self.previous)


class MemoryWindowCounter:
    """``WindowCounter`` in a dict: O(1) per hit, idle keys swept as the dict grows."""

    def __init__(self, max_keys: int = MAX_KEYS) -> None:
        self.max_keys = max_keys
        self._windows: dict[str, _Windows] = {}
        self._mitigated: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._windows)

    async def sample(self, key: str, period: float, now: float) -> WindowSample:
        windows = self._windows.get(key)
        if windows is None:
            return WindowSample(window_start(period, now), 0, 0)
        windows.roll(period, now)
        return windows.snapshot()

    async def add(self, key: str, period: float, now: float, amount: int = 1) -> WindowSample:
        windows = self._get(key, period, now)
        windows.current += amount
        return windows.snapshot()

    async def add_within(
        self, key: str, period: float, limit: int, now: float
    ) -> tuple[bool, WindowSample]:
        windows = self._get(key, period, now)
        before = windows.snapshot()
        if before.estimate(period, now) + 1 > limit:
            return False, before
        windows.current += 1
        return True, windows.snapshot()

    async def mitigate(self, key: str, until: float) -> None:
        if until > self._mitigated.get(key, 0.0):
            self._mitigated[key] = until

    async def mitigated_until(self, key: str, now: float) -> float | None:
        until = self._mitigated.get(key)
        if until is None:
            return None
        if until <= now:
            del self._mitigated[key]
            return None
        return until

    def _get(self, key: str, period: float, now: float) -> _Windows:
        windows = self._windows.get(key)
        if windows is None:
            if len(self._windows) >= self.max_keys:
                self._sweep(now)
            windows = self._windows[key] = _Windows(window_start(period, now), period)
        else:
            windows.roll(period, now)
        return windows

    def _sweep(self, now: float) -> None:
        """Drop keys whose windows can no longer affect an estimate; if none, the oldest."""
        stale = [k for k, w in self._windows.items() if now - w.start >= 2 * w.period]
        for key in stale:
            del self._windows[key]
        for key in [k for k, until in self._mitigated.items() if until <= now]:
            del self._mitigated[key]
        if len(self._windows) >= self.max_keys:
            # dicts keep insertion order: the first keys are the longest-lived.
            for key in list(self._windows)[: max(1, self.max_keys // 10)]:
                del self._windows[key]
