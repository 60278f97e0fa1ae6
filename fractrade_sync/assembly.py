"""The service's parts, built in one place at start, each given what it uses (narrow callables, never the service)."""

from __future__ import annotations

import functools
import logging
import queue
import threading
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from fractrade_sync.channels.hub import Channels
from fractrade_sync.channels.probe import ServiceProbe
from fractrade_sync.config.settings import Settings
from fractrade_sync.exchange.client import HyperliquidClient, expiry_window
from fractrade_sync.exchange.signing import ActionSigner
from fractrade_sync.execution.admission import Admission, guard
from fractrade_sync.execution.hooks import Hook
from fractrade_sync.execution.orders import Execution
from fractrade_sync.execution.pipeline import Pipeline
from fractrade_sync.execution.protection import Protection
from fractrade_sync.execution.sending import Requests, Sender
from fractrade_sync.execution.waves import Waves
from fractrade_sync.execution.worker import Worker
from fractrade_sync.feeds.exchange_feed import ExchangeFeed
from fractrade_sync.feeds.receiver import Intake, Receiver
from fractrade_sync.storage.journal import Journal
from fractrade_sync.storage.ledger import Ledger
from fractrade_sync.watchdog import Watchdog


@dataclass(frozen=True)
class Parts:
    """What a start builds: the feeds, the exchange client, the journal and ledger, the pipeline, the threads."""

    feed: ExchangeFeed
    client: HyperliquidClient
    journal: Journal
    ledger: Ledger
    execution: Execution
    pipeline: Pipeline
    worker: Worker
    intake: Intake
    receiver: Receiver
    watchdog: Watchdog
    resumed: list  # what the journal resumes, oldest first


def assemble(
    settings: Settings,
    actions: queue.Queue,
    channels: Channels,
    hooks: Mapping[str, Hook],
    *,
    clock: Callable[[], float],
    stopping: threading.Event,
    unclean_since: float | None,
    on_storage: Callable[[str | None], None],
    on_connection: Callable[[bool, str], None],
    on_fatal: Callable[[Exception], None],
    fatal: tuple[type[Exception], ...],
    on_thread_failed: Callable[[str], None],
    storage_problem: Callable[[], Any],
) -> Parts:
    """Every part of a start, in the order they need each other."""
    ledger: Ledger | None = None  # (built once the journal is open; the feed's fills reach it from then on)
    feed = ExchangeFeed(
        settings.api_url,
        logging.getLogger("fractrade_sync.market"),
        user=settings.account_address,
        on_fills=lambda fills: ledger and ledger.pushed(fills),
    )
    window = expiry_window(settings.http_timeout)
    signing = ActionSigner(settings.private_key.reveal(), settings.is_mainnet, window)
    client = HyperliquidClient(settings, feed, on_request=channels.request_listener, signing=signing)
    journal, resumed = Journal.open(settings.paths.journal, window, clock=clock)
    ledger = Ledger(journal, client, feed, clock)
    listeners = [*channels.listeners, ledger.outcome]
    execution, pipeline = _execution(
        settings, client, signing, journal, hooks, listeners, on_storage, clock, stopping, unclean_since
    )
    worker = Worker(
        actions,
        pipeline,
        prepare=pipeline.prepare,
        idle=(client.keep_warm, pipeline.recheck, ledger.idle),
        drained=pipeline.drained,
        on_fatal=on_fatal,
        fatal=fatal,
        stopping=stopping,
    )
    intake = Intake(journal, actions, worker.idle_now, clock, on_storage, mid_of=feed.get)
    receiver = Receiver(settings, intake, on_connection)
    watchdog = Watchdog(
        settings,
        receiver,
        worker,
        actions.qsize,
        journal.checkpoint,
        on_thread_failed,
        storage=storage_problem,
        ticks=(channels.tick,),
    )
    return Parts(feed, client, journal, ledger, execution, pipeline, worker, intake, receiver, watchdog, resumed)


def _execution(
    settings: Settings,
    client: HyperliquidClient,
    signing: ActionSigner,
    journal: Journal,
    hooks: Mapping[str, Hook],
    listeners: list[Callable[[Any, Any], None]],
    on_storage: Callable[[str | None], None],
    clock: Callable[[], float],
    stopping: threading.Event,
    unclean_since: float | None,
) -> tuple[Execution, Pipeline]:
    """The worker's pipeline and what it uses: sending, planning, protection, admission, waves and requests."""
    logger = logging.getLogger("fractrade_sync")
    sender = Sender(settings, client, signing, client.endpoint, journal, logger, clock, stopping)
    execution = Execution(settings, client, logger, sender.expired, functools.partial(guard, settings), stopping)
    protection = Protection(client, journal, logger, settings.dry_run, execution.with_retries)
    admission = Admission(
        settings, journal, sender, execution.with_retries, signing.expiry_window, clock, unclean_since
    )
    requests = Requests(sender)
    waves = Waves()
    pipeline = Pipeline(journal, admission, execution, waves, requests, protection, hooks, listeners, on_storage, clock)
    return execution, pipeline


def probe_of(service: Any) -> ServiceProbe:
    """What the operator's channels read of a service, as narrow callables: each part as it is when read (None: not
    built yet; the channels are built before the parts, so that the status port is bound first)."""
    return ServiceProbe(
        connected=lambda: None if service.receiver is None else service.receiver.connected.is_set(),
        reconnects=lambda: None if service.receiver is None else service.receiver.reconnects,
        exchange_ready=lambda: None if service.worker is None else service.worker.ready.is_set(),
        queue_depth=service.queue.qsize,
        clock_offset=lambda: None if service.client is None else service.client.clock_offset,
        threads=lambda: None if service.watchdog is None else service.watchdog.threads(),
        live_status=lambda: None if service.watchdog is None else service.watchdog.status(),
        recent_actions=lambda n: [] if service.journal is None else service.journal.recent(n),
    )
