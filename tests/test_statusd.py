"""The status endpoint (FRAC_STATUS_ADDR, SPEC §10): /health and /metrics over real sockets, the setting, and one
service end to end."""

from __future__ import annotations

import http.client
import json
import queue
import socket
import threading
import time
from types import SimpleNamespace

import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from fractrade_sync.channels import statusd
from fractrade_sync.channels.heartbeat import write_heartbeat
from fractrade_sync.channels.metrics import LATENCY_BUCKETS, Metrics
from fractrade_sync.channels.probe import ServiceProbe
from fractrade_sync.channels.statusd import StatusServer, heartbeat_age, service_health, status_endpoint
from fractrade_sync.config.settings import settings_from_mapping
from fractrade_sync.errors import ConfigError, TransientError
from fractrade_sync.exchange.client import HyperliquidClient
from fractrade_sync.frames import parse_frame
from fractrade_sync.outcome import EXPIRED, FILLED, PARTIALLY_FILLED, REJECTED, SKIPPED, Outcome

from .conftest import protect_frame, run_frame, trade_frame, wait_for

LOCAL = ("127.0.0.1", 0)


def get(address, path: str, timeout: float = 5.0) -> tuple[int, str, bytes]:
    """GET over a real socket: (status, Content-Type, body)."""
    conn = http.client.HTTPConnection(address[0], address[1], timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type"), response.read()
    finally:
        conn.close()


def families(body: bytes) -> dict:
    """name -> {(sample name, sorted labels): value}, parsed as Prometheus parses it."""
    parsed = {}
    for family in text_string_to_metric_families(body.decode()):
        parsed[family.name] = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples}
    return parsed


def action(frame: dict):
    return parse_frame(json.dumps(frame), time.time())


@pytest.fixture
def serve():
    """Start StatusServers on 127.0.0.1 (a free port); stop them at teardown."""
    servers: list[StatusServer] = []

    def start(health=lambda: (True, {"problem": None}), metrics=None, addr=LOCAL) -> StatusServer:
        server = StatusServer(addr, health, metrics if metrics is not None else Metrics())
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop(timeout=2)


# ---- the setting ---------------------------------------------------------------------------------------
def _settings(wallet, **extra):
    base = {
        "FRAC_WS_URL": "wss://fractrade.example/ws/executor/",
        "FRAC_USER_TOKEN": "token-of-the-test",
        "HYPERLIQUID_PRIVATE_KEY": "0x" + bytes(wallet.key).hex(),
        "HYPERLIQUID_PUBLIC_ADDRESS": wallet.address,
    }
    return settings_from_mapping({**base, **extra})


@pytest.mark.parametrize(
    "raw, addr",
    [
        (":9108", ("127.0.0.1", 9108)),
        (" 127.0.0.1:1 ", ("127.0.0.1", 1)),
        ("0.0.0.0:9108", ("0.0.0.0", 9108)),
        ("localhost:9108", ("localhost", 9108)),
        ("status-1.internal:65535", ("status-1.internal", 65535)),
        ("[::1]:9108", ("::1", 9108)),
    ],
)
def test_status_addr_is_parsed(wallet, raw, addr):
    assert _settings(wallet, FRAC_STATUS_ADDR=raw).status_addr == addr


def test_status_addr_is_off_by_default(wallet):
    assert _settings(wallet).status_addr is None
    assert _settings(wallet, FRAC_STATUS_ADDR="  ").status_addr is None


@pytest.mark.parametrize(
    "raw, why",
    [
        ("9108", "is not host:port"),
        ("localhost:0", "port must be a number from 1 to 65535"),
        ("localhost:65536", "port must be a number from 1 to 65535"),
        ("localhost:http", "port must be a number from 1 to 65535"),
        ("localhost:" + "9" * 5000, "port must be a number from 1 to 65535"),
        ("::1:9108", "an IPv6 address goes in brackets"),
        ("[nothost]:9108", "not an IPv6 address"),
        ("bad_host:9108", "not a name or an IP address"),
        ("300.1.1.1:9108", "not a name or an IP address"),
        ("a" * 300 + ":9108", "not a name or an IP address"),
        ("0x" + "ab" * 32 + ":9108", "not a name or an IP address"),
        ("deadbeef" * 4 + ".example:9108", "looks like a key or token"),
    ],
)
def test_a_bad_status_addr_is_one_line_naming_the_variable_never_echoing_a_long_value(wallet, raw, why):
    with pytest.raises(ConfigError) as err:
        _settings(wallet, FRAC_STATUS_ADDR=raw)
    text = str(err.value)
    assert text.startswith("FRAC_STATUS_ADDR: ") and why in text and "\n" not in text
    assert "aaaaaaaaaaaaa" not in text and "abababababab" not in text and "deadbeefdeadbeef" not in text
    assert "9" * 20 not in text


# ---- /health, /metrics, 404 ------------------------------------------------------------------------------
def test_health_is_200_when_healthy_and_503_with_the_same_json_and_its_problem_when_not(serve):
    verdict = {"ok": True}

    def health():
        problem = None if verdict["ok"] else "not connected to Fractrade"
        return verdict["ok"], {"problem": problem, "connected": verdict["ok"], "queue_depth": 2}

    server = serve(health)
    status, kind, body = get(server.address, "/health")
    assert (status, kind) == (200, "application/json")
    assert json.loads(body) == {"ok": True, "problem": None, "connected": True, "queue_depth": 2}
    verdict["ok"] = False
    status, kind, body = get(server.address, "/health?verbose=1")
    assert (status, kind) == (503, "application/json")
    assert json.loads(body) == {
        "ok": False,
        "problem": "not connected to Fractrade",
        "connected": False,
        "queue_depth": 2,
    }


def test_a_failing_health_check_is_a_503_saying_so(serve):
    server = serve(lambda: 1 / 0)
    status, _, body = get(server.address, "/health")
    assert status == 503 and json.loads(body) == {"ok": False, "problem": "the health check failed (ZeroDivisionError)"}


def test_anything_else_is_404(serve):
    server = serve()
    for path in ("/", "/healthz", "/metrics/x", "/health/"):
        assert get(server.address, path)[0] == 404


def _fed_metrics(**readings) -> Metrics:
    metrics = Metrics(**readings)
    trade, stop = action(trade_frame()), action(protect_frame("stop_loss"))
    metrics.outcome(trade, Outcome(FILLED, oid=1, filled_sz="0.01", avg_px="50000", latency_ms=0.4))
    metrics.outcome(trade, Outcome(FILLED, oid=2, filled_sz="0.01", avg_px="50000", latency_ms=20.0))
    metrics.outcome(trade, Outcome(PARTIALLY_FILLED, oid=3, filled_sz="0.005", avg_px="50000", latency_ms=100.0))
    metrics.outcome(trade, Outcome(REJECTED, "no liquidity", latency_ms=45_000.0))
    metrics.outcome(trade, Outcome(EXPIRED, "too old"))  # no answer: counted, not observed
    metrics.outcome(stop, Outcome(SKIPPED, "no position"))
    for request in (
        ("/info", "meta", "200"),
        ("/exchange", "order", "200"),
        ("/exchange", "order", "200"),
        ("/exchange", "order", "429"),
        ("/exchange", "cancel", "network"),
    ):
        metrics.request(*request)
    return metrics


def test_metrics_are_prometheus_text_with_each_family_its_labels_and_values(serve):
    offset = {"value": None}
    metrics = _fed_metrics(
        reconnects=lambda: 3,
        queue_depth=lambda: 2,
        clock_offset=lambda: offset["value"],
        connected=lambda: True,
        threads=lambda: {"worker": "ok", "receiver": "dead"},
        heartbeat_age=lambda: 0.7,
    )
    server = serve(metrics=metrics)
    status, kind, body = get(server.address, "/metrics")
    assert (status, kind) == (200, CONTENT_TYPE_LATEST)
    got = families(body)
    actions = got["fractrade_actions"]
    assert actions[("fractrade_actions_total", (("kind", "trade"), ("outcome", "filled")))] == 2
    assert actions[("fractrade_actions_total", (("kind", "trade"), ("outcome", "partially_filled")))] == 1
    assert actions[("fractrade_actions_total", (("kind", "trade"), ("outcome", "rejected")))] == 1
    assert actions[("fractrade_actions_total", (("kind", "trade"), ("outcome", "expired")))] == 1
    assert actions[("fractrade_actions_total", (("kind", "stop_loss"), ("outcome", "skipped")))] == 1
    assert actions[("fractrade_actions_total", (("kind", "take_profit"), ("outcome", "filled")))] == 0  # from 0
    assert got["fractrade_exchange_requests"] == {
        ("fractrade_exchange_requests_total", (("path", "/info"), ("status", "200"), ("type", "meta"))): 1,
        ("fractrade_exchange_requests_total", (("path", "/exchange"), ("status", "200"), ("type", "order"))): 2,
        ("fractrade_exchange_requests_total", (("path", "/exchange"), ("status", "429"), ("type", "order"))): 1,
        ("fractrade_exchange_requests_total", (("path", "/exchange"), ("status", "network"), ("type", "cancel"))): 1,
    }
    assert got["fractrade_reconnects"] == {("fractrade_reconnects_total", ()): 3}
    assert got["fractrade_queue_depth"] == {("fractrade_queue_depth", ()): 2}
    assert got["fractrade_connected"] == {("fractrade_connected", ()): 1}
    assert got["fractrade_heartbeat_age_seconds"] == {("fractrade_heartbeat_age_seconds", ()): 0.7}
    assert got["fractrade_thread_ok"] == {
        ("fractrade_thread_ok", (("thread", "receiver"),)): 0,
        ("fractrade_thread_ok", (("thread", "worker"),)): 1,
    }
    assert "fractrade_clock_offset_seconds" not in got  # not measured yet: absent, not 0
    offset["value"] = -1.25
    got = families(get(server.address, "/metrics")[2])
    assert got["fractrade_clock_offset_seconds"] == {("fractrade_clock_offset_seconds", ()): -1.25}


def test_the_latency_histogram_counts_each_answer_in_its_bucket(serve):
    server = serve(metrics=_fed_metrics())
    hist = families(get(server.address, "/metrics")[2])["fractrade_frame_to_answer_seconds"]
    buckets = {dict(labels)["le"]: value for (name, labels), value in hist.items() if name.endswith("_bucket")}
    assert list(buckets) == [*(str(float(b)) for b in LATENCY_BUCKETS), "+Inf"]
    assert LATENCY_BUCKETS[0] == 0.001 and LATENCY_BUCKETS[-1] == 30.0
    assert buckets["0.001"] == 1  # 0.4 ms
    assert buckets["0.01"] == 1 and buckets["0.025"] == 2  # 20 ms
    assert buckets["0.075"] == 2 and buckets["0.1"] == 3  # 100 ms: a bound is in its own bucket (le)
    assert buckets["30.0"] == 3 and buckets["+Inf"] == 4  # 45 s: past the last bound
    assert hist[("fractrade_frame_to_answer_seconds_count", ())] == 4
    assert hist[("fractrade_frame_to_answer_seconds_sum", ())] == pytest.approx(0.0004 + 0.020 + 0.1 + 45.0)


def test_a_reading_that_fails_leaves_its_metric_out_and_the_scrape_answers(serve):
    metrics = _fed_metrics(reconnects=lambda: None.reconnects, queue_depth=lambda: 4)  # a part not built yet
    got = families(get(serve(metrics=metrics).address, "/metrics")[2])
    assert "fractrade_reconnects" not in got and got["fractrade_queue_depth"] == {("fractrade_queue_depth", ()): 4}


def test_a_scrape_never_waits_for_the_worker(serve):
    """The worker's counting takes a lock of its own; a scrape copies without it: a worker stalled inside an update
    (or a thousand of them) cannot hold /metrics, and /metrics cannot hold the worker."""
    metrics = _fed_metrics(queue_depth=lambda: 1)
    server = serve(metrics=metrics)
    with metrics._write:  # the worker, in the middle of counting
        status, _, body = get(server.address, "/metrics", timeout=3)
    assert status == 200 and b"fractrade_actions_total" in body


def test_a_binding_failure_is_a_clear_error_at_start(serve):
    first = serve()
    with pytest.raises(ConfigError) as err:  # another fractrade-sync on the same port: never a silent share
        StatusServer(first.address, lambda: (True, {}), Metrics()).start()
    assert str(err.value).startswith("FRAC_STATUS_ADDR: cannot listen on 127.0.0.1:")
    assert "already in use" in str(err.value)
    with socket.socket() as other:  # any other program
        other.bind(("127.0.0.1", 0))
        other.listen()
        with pytest.raises(ConfigError, match="already in use"):
            StatusServer(other.getsockname(), lambda: (True, {}), Metrics()).start()


def test_stop_is_bounded_with_a_silent_client_and_a_hung_health_check():
    release = threading.Event()
    entered = threading.Event()

    def hung():
        entered.set()
        release.wait(30)
        return True, {}

    server = StatusServer(LOCAL, hung, Metrics()).start()
    address = server.address
    silent = socket.create_connection(address)  # connects, never sends a request
    caller = threading.Thread(target=lambda: get(address, "/health", timeout=30), daemon=True)
    caller.start()
    try:
        assert entered.wait(5)
        began = time.monotonic()
        server.stop(timeout=1.0)
        assert time.monotonic() - began < 1.5
        again = StatusServer(address, lambda: (True, {}), Metrics()).start()  # the port is free at once
        again.stop()
    finally:
        release.set()
        silent.close()


def closed_by_server(sock: socket.socket, within: float, trickle: float | None = None) -> float:
    """Seconds until the server closes `sock` (EOF or a reset), sending one byte every `trickle` seconds meanwhile
    (a request line that never ends); fails when it is still open after `within` seconds."""
    began = time.monotonic()
    while time.monotonic() - began < within:
        try:
            if trickle is not None:
                sock.sendall(b"G")
            sock.settimeout(trickle or within)
            if sock.recv(100) == b"":
                return time.monotonic() - began
        except TimeoutError:
            continue  # still open: trickle on
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - began
        raise AssertionError("the server answered a request that was never sent")
    raise AssertionError(f"the connection was still open after {within} s")


def test_a_silent_client_is_cut_after_the_request_timeout(monkeypatch):
    monkeypatch.setattr(statusd, "REQUEST_TIMEOUT", 0.3)  # the default, read at construction
    server = StatusServer(LOCAL, lambda: (True, {}), Metrics()).start()
    try:
        with socket.create_connection(server.address, timeout=5) as silent:  # connects, never sends a request
            assert closed_by_server(silent, within=3) < 3  # closed by the server, not held open (nor a thread for it)
    finally:
        server.stop()


def test_a_client_that_trickles_its_request_is_cut_at_the_deadline_while_health_answers():
    """Slowloris: a byte every 0.1 s never lets a per-read timeout expire; the request's deadline (0.5 s in all)
    closes it, and a silent one, while a normal GET /health is answered at once meanwhile."""
    server = StatusServer(LOCAL, lambda: (True, {"problem": None}), Metrics(), request_timeout=0.5).start()
    try:
        with socket.create_connection(server.address) as trickler, socket.create_connection(server.address) as silent:
            began = time.monotonic()
            asked = time.monotonic()
            assert get(server.address, "/health", timeout=2)[0] == 200
            assert time.monotonic() - asked < 0.4  # not queued behind the slow ones
            assert 0.4 < closed_by_server(trickler, within=3, trickle=0.1) < 1.5
            closed_by_server(silent, within=3)
            assert time.monotonic() - began < 1.5  # both cut at about 0.5 s
    finally:
        server.stop()


def test_a_non_loopback_address_is_allowed_and_said(serve, caplog):
    server = serve(addr=("0.0.0.0", 0))
    assert get(("127.0.0.1", server.address[1]), "/health")[0] == 200
    assert any(r.levelname == "WARNING" and "reachable from other machines" in r.getMessage() for r in caplog.records)


# ---- the health of a service: the watchdog's status and the heartbeat file -----------------------------------
class FakeWatchdog:
    def __init__(self, **changes):
        self.data = {
            "pid": 1,
            "time": 0.0,
            "connected": True,
            "seconds_since_activity": 0.5,
            "worker_alive": True,
            "threads": {"worker": "ok", "receiver": "ok"},
            "exchange_ready": True,
            "queue_depth": 0,
            "reconnects": 0,
            "heartbeat_interval": 5.0,
            "storage": None,
            **changes,
        }

    def status(self):
        return dict(self.data, pid=__import__("os").getpid(), time=time.time())


def test_service_health_judges_the_live_status_and_the_heartbeat_files_age(tmp_path):
    beat = tmp_path / "heartbeat"
    dog = FakeWatchdog()
    health = service_health(dog.status, beat, lambda: 0.0123)
    ok, data = health()
    assert not ok and data["problem"].startswith("no heartbeat file yet")
    write_heartbeat(beat, dog.status())
    ok, data = health()
    assert ok and data["problem"] is None and data["clock_offset"] == 0.012 and 0 <= data["heartbeat_age"] < 5
    assert {k: data[k] for k in ("connected", "threads", "queue_depth", "exchange_ready", "storage")} == {
        "connected": True,
        "threads": {"worker": "ok", "receiver": "ok"},
        "queue_depth": 0,
        "exchange_ready": True,
        "storage": None,
    }
    dog.data["storage"] = "the disk is full"
    ok, data = health()
    assert not ok and data["problem"] == "actions are not executed: the disk is full"
    dog.data.update(storage=None, threads={"worker": "stuck", "receiver": "ok"}, worker_alive=False)
    assert health()[1]["problem"] == "the worker thread is stuck"
    dog.data.update(threads={"worker": "ok", "receiver": "ok"}, worker_alive=True, connected=False)
    assert health()[1]["problem"] == "not connected to Fractrade"
    dog.data["connected"] = True
    write_heartbeat(beat, {**dog.status(), "time": time.time() - 60})  # the watchdog stopped writing it
    ok, data = health()
    assert not ok and data["problem"].startswith("heartbeat is 60s old") and data["heartbeat_age"] >= 60
    assert heartbeat_age(beat) >= 60 and heartbeat_age(tmp_path / "none") is None
    assert service_health(lambda: None, beat)() == (False, {"problem": "starting: the service is not built yet"})


def test_the_parts_of_a_service_not_built_yet_are_starting_and_absent(tmp_path, serve):
    paths = SimpleNamespace(heartbeat=tmp_path / "heartbeat", journal=tmp_path / "journal.sqlite3")
    settings = SimpleNamespace(paths=paths, status_addr=LOCAL)
    metrics, server = status_endpoint(settings, ServiceProbe(queue_depth=queue.Queue().qsize))
    server.start()
    try:
        status, _, body = get(server.address, "/health")
        assert status == 503 and json.loads(body) == {"ok": False, "problem": "starting: the service is not built yet"}
        got = families(get(server.address, "/metrics")[2])
        assert got["fractrade_queue_depth"] == {("fractrade_queue_depth", ()): 0}
        assert "fractrade_connected" not in got and "fractrade_thread_ok" not in got and "fractrade_actions" in got
    finally:
        server.stop()


# ---- the exchange's hook ---------------------------------------------------------------------------------
def test_every_exchange_request_is_told_to_the_hook_and_a_failing_hook_changes_nothing(env, sim):
    seen = []
    client = HyperliquidClient(settings_from_mapping(env), on_request=lambda *request: seen.append(request))
    try:
        client.load_meta()
        client.endpoint.post(client.signing.noop(client.signing.nonces.next()))
        assert seen == [("/info", "meta", "200"), ("/exchange", "noop", "200")]
        client.endpoint.on_request = lambda *request: 1 / 0
        assert client.load_meta()
    finally:
        client.close()
    dead_env = {**env, "HYPERLIQUID_API_URL": "http://127.0.0.1:9"}
    dead = HyperliquidClient(settings_from_mapping(dead_env), on_request=lambda *request: seen.append(request))
    try:
        with pytest.raises(TransientError):
            dead.load_meta()
    finally:
        dead.close()
    assert seen[-1][:2] == ("/info", "meta") and seen[-1][2] in ("not_sent", "network")


# ---- end to end ------------------------------------------------------------------------------------------
def test_a_running_service_shows_a_filled_trade_and_its_health(make_service, signals):
    service = make_service()
    # the wiring service.py gets (FRAC_STATUS_ADDR is not set here)
    metrics, server = status_endpoint(service.settings, service.channels.probe, LOCAL)
    service.client.endpoint.on_request = metrics.request
    pipeline = service.worker.handle
    pipeline.on_outcome = (*pipeline.on_outcome, metrics.outcome)
    server.start()
    try:
        row = run_frame(service, signals, trade_frame())
        assert row["state"] == FILLED
        wait_for(lambda: get(server.address, "/health")[0] == 200, what="healthy")
        data = json.loads(get(server.address, "/health")[2])
        assert data["ok"] and data["problem"] is None and data["connected"] and data["exchange_ready"]
        assert data["threads"] == {"worker": "ok", "receiver": "ok"} and data["queue_depth"] == 0
        assert isinstance(data["clock_offset"], float) and 0 <= data["heartbeat_age"] < 15
        got = families(get(server.address, "/metrics")[2])
        assert got["fractrade_actions"][("fractrade_actions_total", (("kind", "trade"), ("outcome", "filled")))] == 1
        hist = got["fractrade_frame_to_answer_seconds"]
        assert hist[("fractrade_frame_to_answer_seconds_count", ())] == 1
        assert hist[("fractrade_frame_to_answer_seconds_sum", ())] == pytest.approx(row["latency_ms"] / 1000, abs=1e-3)
        order = ("fractrade_exchange_requests_total", (("path", "/exchange"), ("status", "200"), ("type", "order")))
        assert got["fractrade_exchange_requests"][order] >= 1
        assert got["fractrade_connected"] == {("fractrade_connected", ()): 1}
        assert got["fractrade_reconnects"] == {("fractrade_reconnects_total", ()): 0}
        assert got["fractrade_thread_ok"][("fractrade_thread_ok", (("thread", "worker"),))] == 1
        assert got["fractrade_queue_depth"] == {("fractrade_queue_depth", ()): 0}
        assert "fractrade_clock_offset_seconds" in got and "fractrade_heartbeat_age_seconds" in got
        signals.stop()  # Fractrade goes away: unhealthy, said, and the reconnects counted
        wait_for(lambda: get(server.address, "/health")[0] == 503, what="unhealthy")
        assert json.loads(get(server.address, "/health")[2])["problem"] == "not connected to Fractrade"
        assert families(get(server.address, "/metrics")[2])["fractrade_connected"] == {("fractrade_connected", ()): 0}
        wait_for(
            lambda: (
                families(get(server.address, "/metrics")[2])["fractrade_reconnects"][("fractrade_reconnects_total", ())]
                >= 1
            ),
            what="a reconnect counted",
        )
    finally:
        server.stop()
