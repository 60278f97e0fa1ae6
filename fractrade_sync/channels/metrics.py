"""Prometheus metrics of one service (`/metrics`): counted on the worker thread without a lock a scrape takes, read
at scrape time from plain attributes of the live parts. Each Metrics owns its registry (never the global one)."""

from __future__ import annotations

import bisect
import logging
import threading
from decimal import Decimal
from typing import TYPE_CHECKING, Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from fractrade_sync.actions import KIND_OF
from fractrade_sync.outcome import TERMINAL_STATES, UNKNOWN

if TYPE_CHECKING:
    from fractrade_sync.actions import Action
    from fractrade_sync.outcome import Outcome

# frame received -> the exchange's answer, in seconds: 1 ms to 30 s (what a healthy order takes: BENCHMARKS.md)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
KINDS = tuple(KIND_OF.values())  # trade, stop_loss, take_profit
# what the live service is read through at scrape time (each a callable; a missing or failing one leaves its metric
# out of that scrape): name -> (metric, type, help)
READINGS = {
    "reconnects": ("fractrade_reconnects", "counter", "Reconnects to the Fractrade WebSocket since the start."),
    "queue_depth": ("fractrade_queue_depth", "gauge", "Actions queued for the worker, not yet taken."),
    "clock_offset": (
        "fractrade_clock_offset_seconds",
        "gauge",
        "Seconds the exchange's clock is ahead of this machine's (absent until measured).",
    ),
    "connected": ("fractrade_connected", "gauge", "1 while the Fractrade WebSocket is connected, else 0."),
    "heartbeat_age": (
        "fractrade_heartbeat_age_seconds",
        "gauge",
        "Seconds since the watchdog last wrote the heartbeat file (absent before the first).",
    ),
}
THREADS_HELP = "1 while the thread runs and is not stuck, else 0 (the watchdog's verdict)."
# slippage of a trade's average fill price, in basis points (positive: worse for the trader): -50 to +100 bps
SLIPPAGE_BUCKETS = (-50.0, -20.0, -10.0, -5.0, -2.0, -1.0, 0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)
# the journal's totals by coin (report.money_by_coin), read at scrape time: gauges, since PnL and funding fall as
# well as rise (a Prometheus counter must never go down); fees a counter (they only add up, at the base tiers)
REALIZED_HELP = "Realized PnL of this service's fills (the exchange's closedPnl, before fees), USDC, by coin."
MONEY = {
    "realized_pnl": ("fractrade_realized_pnl_usdc", GaugeMetricFamily, REALIZED_HELP),
    "fees": ("fractrade_fees_usdc", CounterMetricFamily, "Fees charged on this service's fills, USDC, by coin."),
    "funding": ("fractrade_funding_usdc", GaugeMetricFamily, "Funding settled (negative: paid), USDC, by coin."),
}
LATENCY_HELP = "Seconds from a frame's arrival to the exchange's answer, by coin."
SLIPPAGE_HELP = (
    "A trade's average fill price against the signal's price or the mid at its arrival, in basis points (positive: "
    "worse for the trader), by coin."
)


class Metrics:
    """The service's metrics. `outcome` (a pipeline listener) and `request` (the exchange endpoint's on_request) run on
    the worker thread: a dict update each. Readings (keyword arguments) are callables called at scrape time from the
    HTTP thread: reconnects, queue_depth, clock_offset, connected, heartbeat_age (each None: absent), threads (name
    -> 'ok' / 'dead' / 'stuck'), money_by_coin. A trade's slippage is against its signal's price and its arrival mid
    (the Action's)."""

    def __init__(self, **readings: Callable[..., object]):
        unknown = set(readings) - set(READINGS) - {"threads", "money_by_coin"}
        if unknown:
            raise TypeError(f"unknown readings: {', '.join(sorted(unknown))}")
        self.registry = CollectorRegistry(auto_describe=False)
        self.logger = logging.getLogger("fractrade_sync.metrics")
        self.readings: dict[str, Callable[..., object]] = dict(readings)
        # only writers take it (they may be two: the worker, and a script's own client): a scrape copies the dicts,
        # which is atomic under the GIL, and never waits for a writer
        self._write = threading.Lock()
        self._actions = {(kind, state): 0 for kind in KINDS for state in (*TERMINAL_STATES, UNKNOWN)}
        self._requests: dict[tuple[str, str, str], int] = {}
        self._buckets = [0] * (len(LATENCY_BUCKETS) + 1)  # per bucket, not cumulative; the last is +Inf
        self._latency_sum = 0.0
        # by coin: (histogram name, coin, label) -> [per-bucket counts, sum]
        self._by_coin: dict[tuple[str, str, str], list] = {}
        self.registry.register(_Collector(self))

    # ---- the worker's side: cheap, never raises ------------------------------------------------
    def outcome(self, action: Action, outcome: Outcome) -> None:
        """Count an action's outcome by kind; observe its frame-to-answer latency when it has one."""
        try:
            key = (action.kind, outcome.state)
            latency = outcome.latency_ms
            with self._write:
                self._actions[key] = self._actions.get(key, 0) + 1
                if latency is not None:
                    seconds = max(0.0, float(latency) / 1000.0)  # a wall-clock step may make it negative
                    self._buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
                    self._latency_sum += seconds
                    self._observe("latency", action.symbol, "", seconds, LATENCY_BUCKETS)
                if outcome.avg_px and action.kind == "trade":
                    self._slippage(action, Decimal(str(outcome.avg_px)))
        except Exception:
            self.logger.debug("could not count an outcome", exc_info=True)

    def _slippage(self, action: Action, avg_px: Decimal) -> None:
        """A trade's slippage against the signal's price and the mid at its arrival (the caller holds the lock)."""
        for against, reference in (("signal", action.ref_price), ("mid", action.arrival_mid)):
            if reference:
                moved = (avg_px - reference) if action.is_buy else (reference - avg_px)
                self._observe("slippage", action.symbol, against, float(moved / reference * 10_000), SLIPPAGE_BUCKETS)

    def _observe(self, name: str, coin: str, label: str, value: float, bounds: tuple[float, ...]) -> None:
        counts = self._by_coin.setdefault((name, coin, label), [[0] * (len(bounds) + 1), 0.0])
        counts[0][bisect.bisect_left(bounds, value)] += 1
        counts[1] += value

    def request(self, path: str, kind: str, status: str) -> None:
        """Count one exchange request: its path (/info, /exchange), type and HTTP status (or network, not_sent)."""
        key = (path, kind, status)
        with self._write:
            self._requests[key] = self._requests.get(key, 0) + 1

    # ---- the scrape's side -----------------------------------------------------------------------
    def exposition(self) -> bytes:
        """The Prometheus text format of everything (prometheus_client.CONTENT_TYPE_LATEST)."""
        return generate_latest(self.registry)

    def families(self) -> Iterator[Metric]:
        """Every family, from copies of the counts and fresh readings."""
        actions = dict(self._actions)
        requests = dict(self._requests)
        buckets = list(self._buckets)
        total = self._latency_sum
        family = CounterMetricFamily(
            "fractrade_actions", "Actions by kind and terminal outcome.", labels=("kind", "outcome")
        )
        for (kind, state), count in sorted(actions.items()):
            family.add_metric((kind, state), count)
        yield family
        cumulative = []
        seen = 0
        for bound, count in zip((*LATENCY_BUCKETS, float("inf")), buckets, strict=True):
            seen += count
            cumulative.append((floatToGoString(bound), seen))
        yield HistogramMetricFamily(
            "fractrade_frame_to_answer_seconds",
            "Seconds from a frame's arrival to the exchange's answer to its order.",
            buckets=cumulative,
            sum_value=total,
        )
        family = CounterMetricFamily(
            "fractrade_exchange_requests",
            "Requests to Hyperliquid by path, type and HTTP status (network: no answer; not_sent: no connection).",
            labels=("path", "type", "status"),
        )
        for labels, count in sorted(requests.items()):
            family.add_metric(labels, count)
        yield family
        yield from self._by_coin_families()
        yield from self._readings()

    def _by_coin_families(self) -> Iterator[Metric]:
        observed = {key: (list(counts), total) for key, (counts, total) in list(self._by_coin.items())}
        latency = HistogramMetricFamily("fractrade_order_latency_seconds", LATENCY_HELP, labels=("coin",))
        slippage = HistogramMetricFamily("fractrade_slippage_bps", SLIPPAGE_HELP, labels=("coin", "against"))
        for (name, coin, label), (counts, total) in sorted(observed.items()):
            bounds = LATENCY_BUCKETS if name == "latency" else SLIPPAGE_BUCKETS
            cumulative = []
            seen = 0
            for bound, count in zip((*bounds, float("inf")), counts, strict=True):
                seen += count
                cumulative.append((floatToGoString(bound), seen))
            if name == "latency":
                latency.add_metric((coin,), cumulative, total)
            else:
                slippage.add_metric((coin, label), cumulative, total)
        yield latency
        yield slippage
        money = self._read("money_by_coin")
        if isinstance(money, Mapping):
            for key, (metric, family_type, text) in MONEY.items():
                family = family_type(metric, text, labels=("coin",))
                for coin, figures in sorted(money.items()):
                    family.add_metric((coin,), float(figures[key]))
                yield family

    def _readings(self) -> Iterator[Metric]:
        for name, (metric, kind, text) in READINGS.items():
            value = self._read(name)
            if isinstance(value, (bool, int, float)):
                family = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
                yield family(metric, text, value=float(value))
        threads = self._read("threads")
        if isinstance(threads, Mapping):
            family = GaugeMetricFamily("fractrade_thread_ok", THREADS_HELP, labels=("thread",))
            for thread, state in sorted(threads.items()):
                family.add_metric((str(thread),), 1.0 if state == "ok" else 0.0)
            yield family

    def _read(self, name: str) -> object:
        reading = self.readings.get(name)
        if reading is None:
            return None
        try:
            return reading()
        except Exception:  # a part not built yet, or gone: that metric is absent from this scrape
            self.logger.debug("reading %s failed", name, exc_info=True)
            return None


class _Collector:
    """The registry's view of a Metrics."""

    def __init__(self, metrics: Metrics):
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return self.metrics.families()
