"""A thread that dies or hangs never leaves a RUNNING service that trades nothing: alert, exit 1, restart; and
`fractrade-sync health` names the thread that died."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from fractrade_sync.channels.heartbeat import health_problem
from fractrade_sync.config.settings import settings_from_mapping
from fractrade_sync.execution.worker import wait_done
from fractrade_sync.service import FractradeExecutor
from tests.conftest import key_of, run_cli, trade_frame, wait_for, wait_state
from tests.test_notify import webhook  # noqa: F401 - the fixture


class _Exits(FractradeExecutor):
    def handle_hyperliquid_perp_trade(self, config):
        sys.exit(3)  # a hook that ends its thread: SystemExit is not an Exception, no loop guard catches it


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the thread's death is the point
def test_a_worker_that_dies_stops_the_service_with_exit_1_after_an_alert(env, signals, webhook):  # noqa: F811
    service = _Exits(settings_from_mapping({**env, "FRAC_NOTIFY_URL": webhook.url}))
    codes: list[int] = []
    runner = threading.Thread(target=lambda: codes.append(service.run()))
    runner.start()
    try:
        wait_for(lambda: service.worker is not None and service.worker.ready.is_set(), what="exchange ready")
        wait_for(lambda: service.receiver.connected.is_set(), what="connected")
        frame = trade_frame()
        signals.push(frame)
        runner.join(20)
    finally:
        service.stop(timeout=1)
    assert not runner.is_alive() and codes == [1]
    (alert,) = webhook.events("alert")
    assert alert["reason"] == "the worker thread is dead" and "ALERT: the worker thread is dead" in alert["text"]
    again = FractradeExecutor(settings_from_mapping(env)).start()  # what it was doing is resumed at the next start
    try:
        assert wait_state(again, key_of(frame))["state"] == "filled"
    finally:
        again.stop(timeout=2)


STUCK_SCRIPT = textwrap.dedent("""
    import sys, threading
    from fractrade_sync import watchdog
    from fractrade_sync.logs import setup_logging
    from fractrade_sync.service import FractradeExecutor
    watchdog.STUCK_MARGIN = 0.0
    watchdog.STUCK_TIMEOUTS = 16  # stuck after 16 HTTP timeouts: 3.2 s here

    class Stuck(FractradeExecutor):
        def handle_hyperliquid_perp_trade(self, config):
            threading.Event().wait()  # a hook that never returns

    setup_logging("INFO", "text")
    sys.exit(Stuck().run())
""")


def _run_until_stuck(script_text: str, env, tmp_path, signals) -> tuple[int, str]:
    """Run a script whose trade hook never returns (HTTP timeout 0.2 s), push a trade; its exit code and stderr."""
    script = tmp_path / "stuck.py"
    script.write_text(script_text)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("FRAC_", "HYPERLIQUID_"))}
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        env={**clean, **env, "FRAC_HTTP_TIMEOUT": "0.2"},
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: signals.clients == 1, timeout=20, what="the service connected")
        time.sleep(0.5)  # the worker ready (meta, first mids)
        signals.push(trade_frame())
        _, err = proc.communicate(timeout=40)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, err


def test_a_stuck_worker_stops_the_process_with_exit_1(env, tmp_path, signals):
    code, err = _run_until_stuck(STUCK_SCRIPT, env, tmp_path, signals)
    assert code == 1, err[-2000:]
    assert "the worker thread is stuck: stopping (exit 1) so that the supervisor restarts the service" in err


def test_health_names_the_thread_that_died():
    beat = {
        "pid": os.getpid(),
        "time": time.time(),
        "connected": True,
        "worker_alive": True,
        "threads": {"worker": "ok", "receiver": "dead"},
    }
    assert health_problem(beat, None, time.time()) == "the receiver thread is dead"
    beat["threads"]["receiver"] = "ok"
    assert health_problem(beat, None, time.time()) is None


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the thread's death is the point
def test_health_reports_a_dead_worker(make_service, signals, env, tmp_path):
    """The worker thread ends (a hook raising SystemExit); the service is kept from stopping (its watchdog's verdict
    is recorded instead), so `fractrade-sync health` reads the heartbeat that says which thread died."""
    from fractrade_sync.service import FractradeExecutor

    verdicts: list[str] = []

    class Dies(FractradeExecutor):
        def handle_hyperliquid_perp_trade(self, config):
            raise SystemExit("the worker ends")

        def _thread_failed(self, problem):
            verdicts.append(problem)

    service = make_service(Dies)
    wait_for(lambda: run_cli(["health"], env, tmp_path).returncode == 0, interval=0.2, what="healthy first")
    signals.push(trade_frame())
    wait_for(lambda: not service.worker.is_alive(), what="the worker dead")
    result = wait_for(
        lambda: (r := run_cli(["health"], env, tmp_path)).returncode == 1 and r,
        timeout=10,
        interval=0.2,
        what="health failing",
    )
    assert "the worker thread is dead" in result.stdout + result.stderr, result
    assert verdicts and verdicts[0] == "the worker thread is dead"


def _aio_stuck_script() -> str:
    """The seed's Basic Usage (tests/test_aio.py), with a subclass whose async trade hook never returns."""
    from tests.test_aio import BASIC

    header = textwrap.dedent("""
        import threading
        from fractrade_sync import watchdog
        from fractrade_sync.aio import FractradeExecutor
        watchdog.STUCK_MARGIN = 0.0
        watchdog.STUCK_TIMEOUTS = 16  # stuck after 16 HTTP timeouts: 3.2 s here

        class Stuck(FractradeExecutor):
            async def handle_hyperliquid_perp_trade(self, config):
                threading.Event().wait()  # a hook that never returns (it blocks the worker's own loop)
    """)
    return header + BASIC.replace("executor = FractradeExecutor()", "executor = Stuck()")


def test_an_aio_script_with_a_stuck_worker_ends_non_zero_instead_of_hanging(env, tmp_path, signals):
    """The seed's pattern: `await stop()` re-raises the watchdog's verdict and the script ends (the worker thread is
    a daemon: the interpreter does not wait on it), so its supervisor restarts it."""
    code, err = _run_until_stuck(_aio_stuck_script(), env, tmp_path, signals)
    assert code not in (0, None), err[-2000:]
    assert "the worker thread is stuck" in err


def test_waiting_for_the_queue_to_be_done_ends_at_its_timeout_and_leaves_no_thread_behind():
    """wait_done is Queue.join with a timeout: False while an item is not done (at the timeout, or when told to give
    up), True once every item put is marked done, and no thread of it is left waiting after a timeout."""
    actions: queue.Queue = queue.Queue()
    assert wait_done(actions, 0.0)  # nothing put: done
    actions.put("a")
    actions.put("b")
    before = set(threading.enumerate())
    assert not wait_done(actions, 0.05)
    assert not wait_done(actions, 30, give_up=lambda: True)
    assert set(threading.enumerate()) - before == set()  # (no thread of its own, waiting on)
    actions.get_nowait()
    actions.task_done()
    assert not wait_done(actions, 0.01)  # one of two done
    actions.get_nowait()
    done = threading.Timer(0.05, actions.task_done)  # the last one, marked done while waited for
    done.start()
    assert wait_done(actions, 5)
    done.join()
    assert wait_done(actions, 0.0, give_up=lambda: True)  # done is done, whatever the time or the caller's patience
