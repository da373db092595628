"""Which frames to infer: every Nth (``FixedInterval``), or as a latency budget allows (``LatencyBudget``).

Both answer :meth:`decide` for each frame in order and count how many frames
each setting (interval, input size) served. Frames between inferences get
propagated labels (streamseg.temporal.propagate).

``LatencyBudget`` chooses from measured stage times. With camera frame
period ``T``, inference time ``I`` (at an input size) and propagation time
``P`` per frame, running inference on one frame in ``N`` costs
``I + (N - 1) * P`` per ``N`` frames when the stages share the CPU
(``parallel=False``), or needs ``I <= N * T`` and ``P <= T`` when they run on
separate hardware (``parallel=True``). To keep up at a utilization of at most
``headroom``, the smallest such ``N`` is chosen; an inferred frame's own
latency is about ``I`` plus the other stages (``overhead_ms``), and the frames
after it wait at most that long, so a size is only used if ``I + overhead``
fits the budget, and an interval only if ``N * T`` does (a carried mask is
as old as the frames since its key). Sizes are tried in the order given
(best first), so the largest input that fits wins, at the smallest interval
that keeps up. The time at a size not in use is the time at the size in use
scaled by their ratio from :meth:`calibrate` (one timed inference per size
before frames flow), or by pixel count.

Stage times are exponentially weighted moving averages: a slowdown counts at
once (weight ``rise`` on the newest), a speed-up gradually (``smoothing``), so
load changes show within one or a few inferences. Moving to a cheaper
setting happens at once; moving back to a dearer one only when it fits with
``upgrade_margin`` to spare, so the choice does not flap. At most one
inference is in flight: a frame is only inferred once the previous
inference has reported (:meth:`observe_infer`), so a sudden slowdown delays
the next inference instead of queueing several behind it.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass
from typing import Literal

from streamseg.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Setting:
    """Infer one frame in ``interval``, at model input short side ``size`` (None: the model's own)."""

    interval: int
    size: int | None = None

    def __str__(self) -> str:
        return f"interval {self.interval}" + (f", size {self.size}" if self.size is not None else "")


class FixedInterval:
    """Infer the first frame and then every ``interval``-th one (by index; counted from the last inferred)."""

    def __init__(self, interval: int = 1, size: int | None = None):
        if interval < 1:
            raise ConfigError(f"interval must be at least 1, got {interval}")
        self.current = Setting(interval, size)
        self.usage: Counter[Setting] = Counter()  # frames decided under each setting
        self.inferred = 0
        self.propagated = 0
        self._last_key: int | None = None

    def reset(self) -> None:
        """After a reconnect: the next frame is inferred."""
        self._last_key = None

    def decide(self, index: int) -> bool:
        """True when frame ``index`` (increasing) should be inferred; its setting is :attr:`current` now."""
        self._update()
        infer = self._last_key is None or index - self._last_key >= self.current.interval or index < self._last_key
        if infer:
            self._last_key = index
            self.inferred += 1
        else:
            self.propagated += 1
        self.usage[self.current] += 1
        return infer

    def observe_infer(self, ms: float, size: int | None = None) -> None:
        """Time one inference took (preprocess, model, decode), at input ``size``."""

    def observe_propagate(self, ms: float) -> None:
        """Time one propagated frame took (flow and warp)."""

    def histogram(self) -> dict[str, float]:
        """Share of frames (0-1) each setting served, most used first."""
        total = sum(self.usage.values()) or 1
        return {str(s): n / total for s, n in self.usage.most_common()}

    def describe(self) -> str:
        """One line for the summary: how often each setting was used."""
        parts = [f"{name}: {share:.0%}" for name, share in self.histogram().items()]
        return f"{self.inferred} inferred, {self.propagated} propagated; " + "; ".join(parts)

    def _update(self) -> None:
        """Fixed: nothing to adapt."""


class LatencyBudget(FixedInterval):
    """Chooses interval (and input size) from measured stage times so every frame is out within ``budget_ms``."""

    def __init__(
        self,
        budget_ms: float,
        frame_ms: float,
        *,
        sizes: tuple[int | None, ...] = (None,),
        max_interval: int = 30,
        headroom: float = 0.85,
        upgrade_margin: float = 0.8,
        smoothing: float = 0.3,
        rise: float = 0.7,
        overhead_ms: float = 0.0,
        parallel: bool = False,
        prefer: Literal["detail", "fresh"] = "detail",
    ):
        # budget_ms > 0 and prefer are the config's to check (RunConfig); the frame period comes from the source
        if frame_ms <= 0:
            raise ConfigError(f"latency budget: the frame period must be > 0 ms, got {frame_ms}")
        if not sizes:
            raise ConfigError("latency budget: give at least one input size")
        if None in sizes and len(sizes) > 1:
            raise ConfigError("latency budget: sizes are all numbers, or the single default (None)")
        if max_interval < 1 or not all(0 < x <= 1 for x in (headroom, upgrade_margin, smoothing, rise)):
            raise ConfigError("latency budget: max_interval >= 1, headroom/upgrade_margin/smoothing/rise in (0, 1]")
        super().__init__(1, sizes[0])
        self.budget_ms, self.frame_ms = budget_ms, frame_ms
        self.sizes = tuple(sizes)
        self.max_interval, self.headroom, self.upgrade_margin = max_interval, headroom, upgrade_margin
        self.smoothing, self.rise, self.overhead_ms, self.parallel = smoothing, rise, overhead_ms, parallel
        self.prefer = prefer  # detail: the largest size that fits; fresh: the shortest interval, then the largest size
        self.in_flight = 0  # inferences decided and not yet reported
        self.infer_ms: dict[int | None, float] = {}  # EWMA per measured size
        self.calibrated_ms: dict[int | None, float] = {}  # one quiet inference per size, before frames flow
        self._estimated: set[int | None] = set()  # sizes whose time is an estimate: the next measurement replaces it
        self.propagate_ms = 0.0
        self.over_budget = False  # even the cheapest setting misses the budget or the frame rate
        self.changes = 0

    def reset(self) -> None:
        super().reset()
        self.in_flight = 0

    def decide(self, index: int) -> bool:
        """As :meth:`FixedInterval.decide`, but never with an inference still in flight."""
        if self.in_flight and self._last_key is not None and index > self._last_key:
            self._update()
            self.propagated += 1
            self.usage[self.current] += 1
            return False
        infer = super().decide(index)
        self.in_flight += infer
        return infer

    def observe_infer(self, ms: float, size: int | None = None) -> None:
        """Call once per inferred frame, when its labels are ready (this also frees the next inference)."""
        self.in_flight = max(0, self.in_flight - 1)
        size = size if size is not None else self.current.size
        if size in self._estimated:
            self._estimated.discard(size)
            self.infer_ms[size] = ms
        else:
            self.infer_ms[size] = self._average(self.infer_ms.get(size), ms)

    def calibrate(self, size: int | None, ms: float) -> None:
        """One inference's time at ``size`` before frames flow: the sizes' relative costs, and a first estimate."""
        self.calibrated_ms[size] = ms
        self.infer_ms.setdefault(size, ms)

    def observe_propagate(self, ms: float) -> None:
        self.propagate_ms = self._average(self.propagate_ms or None, ms)

    def _average(self, old: float | None, new: float) -> float:
        if old is None:
            return new
        return old + (self.rise if new > old else self.smoothing) * (new - old)

    def estimate_infer_ms(self, size: int | None) -> float | None:
        """Inference time at ``size``: measured at the size in use, scaled to the others.

        The scale is the ratio of the sizes' calibrated times where both were calibrated, else their pixel
        counts. Scaling from the size in use keeps every estimate as fresh as the latest measurement: a size
        left when the machine was busy is tried again once the load goes (its own old time would never update).
        """
        current = self.current.size
        if size == current or size is None or current is None or current not in self.infer_ms:
            if size in self.infer_ms:
                return self.infer_ms[size]
            if size is None or not self.infer_ms:
                return None
            current = min(self.infer_ms, key=lambda s: abs((s or 0) - size))
        base = self.calibrated_ms
        if size in base and current in base and base[current] > 0:
            return self.infer_ms[current] * base[size] / base[current]
        return self.infer_ms[current] * (size / (current or size)) ** 2

    def required_interval(self, infer_ms: float, headroom: float) -> int | None:
        """Smallest interval that keeps up with the camera at ``headroom`` utilization, or None."""
        period, prop = headroom * self.frame_ms, self.propagate_ms
        if self.parallel:
            return max(1, math.ceil(infer_ms / period)) if prop <= period else None
        if prop >= period:
            return 1 if infer_ms <= period else None
        return max(1, math.ceil((infer_ms - prop) / (period - prop)))

    def choose(self, headroom: float) -> tuple[Setting, bool]:
        """The best setting at ``headroom`` and whether it meets the budget (else: the cheapest there is).

        Sizes are tried largest first: ``detail`` takes the first that fits, ``fresh`` the one inferring most often
        (a smaller picture, inferred on more frames, for masks that follow motion more closely)."""
        cheapest, fitting = None, []
        for size in self.sizes:
            infer = self.estimate_infer_ms(size)
            if infer is None:
                continue
            n = self.required_interval(infer, headroom)
            # a carried mask is as old as the frames since its key: N - 1 periods, and one more while it runs
            fresh = n is not None and n * self.frame_ms <= max(self.budget_ms, self.frame_ms)
            if n is not None and n <= self.max_interval and fresh and infer + self.overhead_ms <= self.budget_ms:
                if self.prefer == "detail":
                    return Setting(n, size), True
                fitting.append(Setting(n, size))
            cheapest = Setting(min(n or self.max_interval, self.max_interval), size)
        if fitting:
            return min(fitting, key=lambda s: s.interval), True  # min keeps the largest size among equals
        return (cheapest, False) if cheapest is not None else (self.current, True)

    def _load(self, setting: Setting) -> float:
        """Estimated busy fraction of a setting (higher = dearer)."""
        infer = self.estimate_infer_ms(setting.size) or 0.0
        return (infer + (setting.interval - 1) * self.propagate_ms) / (setting.interval * self.frame_ms)

    def _update(self) -> None:
        if not self.infer_ms:
            return  # nothing measured yet: interval 1 at the first size until the first inference reports
        target, fits = self.choose(self.headroom)
        if target != self.current and self._load(target) > self._load(self.current):
            strict, _ = self.choose(self.headroom * self.upgrade_margin)  # dearer: only with margin to spare
            target = strict if self._load(strict) > self._load(self.current) else self.current
        if target != self.current:
            self.changes += 1
            log.info(
                "latency budget %.0f ms: %s -> %s (infer %.0f ms, propagate %.1f ms, frame %.1f ms)",
                self.budget_ms,
                self.current,
                target,
                self.estimate_infer_ms(target.size) or 0,
                self.propagate_ms,
                self.frame_ms,
            )
            if target.size != self.current.size:  # its own time is from when it was last used: start from now's
                estimate = self.estimate_infer_ms(target.size)
                if estimate is not None:  # until its first measurement, which replaces it
                    self.infer_ms[target.size] = estimate
                    self._estimated.add(target.size)
            self.current = target
        if fits == self.over_budget:
            self.over_budget = not fits
            if self.over_budget:
                log.warning(
                    "latency budget %.0f ms: no setting keeps up (infer %.0f ms at %s); using %s",
                    self.budget_ms,
                    self.estimate_infer_ms(self.current.size) or 0,
                    self.current.size,
                    self.current,
                )
