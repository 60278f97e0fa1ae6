"""The shipped deployments for real: supervisord.conf under supervisord, and the cron watchdog script."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli, trade_frame, wait_for

SUPERVISORD = Path(sys.executable).with_name("supervisord")
SUPERVISORCTL = Path(sys.executable).with_name("supervisorctl")
CRON = ROOT / "scripts" / "fractrade-sync-cron"

pytestmark = pytest.mark.skipif(not SUPERVISORD.exists() or not shutil.which("flock"), reason="needs supervisor, flock")


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any service variable: the service must read its .env."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("FRAC_", "HYPERLIQUID_"))}
    return {**base, **extra}


def write_dotenv(directory: Path, env: dict[str, str]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / ".env"
    path.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    path.chmod(0o600)


def healthy(home: Path, max_age: float = 2.0) -> bool:
    return run_cli(["health", "--max-age", str(max_age)], {}, cwd=home).returncode == 0


def alive(pid: int) -> bool:
    """The process exists and has not exited (a zombie nobody reaped yet counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def kill_and_wait(pid: int) -> None:
    for sig in (signal.SIGCONT, signal.SIGTERM):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
    try:
        wait_for(lambda: not alive(pid), timeout=15, what=f"pid {pid} to exit")
    except AssertionError:
        os.kill(pid, signal.SIGKILL)
        raise


# ---- supervisord --------------------------------------------------------------------------------------
class Supervisor:
    """supervisord started from a copy of the shipped supervisord.conf in a temporary directory."""

    def __init__(self, home: Path):
        self.home = home
        self.conf = home / "supervisord.conf"

    def configure(self, startsecs: int = 1) -> None:
        """The shipped file with two local edits: this virtualenv's interpreter, and a shorter startsecs."""
        text = (ROOT / "supervisord.conf").read_text()
        text = text.replace(
            "\ncommand=python -m fractrade_sync run\n", f"\ncommand={sys.executable} -m fractrade_sync run\n"
        )
        text = text.replace("\nstartsecs=10\n", f"\nstartsecs={startsecs}\n")
        assert text.count(sys.executable) == 1 and f"\nstartsecs={startsecs}\n" in text
        self.conf.write_text(text)

    def ctl(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(SUPERVISORCTL), "-c", str(self.conf), *args], capture_output=True, text=True,
                              timeout=60, env=clean_env())  # fmt: skip

    def status(self) -> str:
        return self.ctl("status", "fractrade-sync").stdout

    def start(self) -> None:
        subprocess.run([str(SUPERVISORD), "-c", str(self.conf)], check=True, timeout=30, cwd=self.home,
                       env=clean_env())  # fmt: skip

    def service_pid(self) -> int | None:
        status = self.status()
        return int(status.split("pid ", 1)[1].split(",")[0]) if "RUNNING" in status else None

    def pid(self) -> int | None:
        try:
            return int((self.home / "supervisord.pid").read_text())
        except (OSError, ValueError):
            return None

    def shutdown(self) -> None:
        pid = self.pid()
        if pid is None:
            return
        self.ctl("shutdown")
        try:
            wait_for(lambda: not alive(pid), timeout=40, what="supervisord to exit")
        except AssertionError:
            kill_and_wait(pid)
            raise


@pytest.fixture
def supervisor(tmp_path):
    home = tmp_path / "svc"
    home.mkdir()
    sup = Supervisor(home)
    yield sup
    sup.shutdown()


def test_supervisord_runs_and_stops_the_service_in_order(supervisor, env, sim, signals, wallet):
    home = supervisor.home
    write_dotenv(home, {**env, "LOGLEVEL": "INFO"})
    supervisor.configure()
    supervisor.start()
    first_pid = wait_for(supervisor.service_pid, timeout=20, what="supervisorctl status RUNNING")
    wait_for(lambda: healthy(home), timeout=15, interval=0.2, what="health OK")
    assert signals.wait_for_clients(1, timeout=10)

    signals.push(trade_frame())
    wait_for(lambda: sim.applied_orders(wallet.address), what="the simulator to apply the order")
    assert sim.positions(wallet.address) == {"BTC": "0.01"}

    # a crash (here kill -9, as the OOM killer would) is restarted: autorestart=unexpected
    os.kill(first_pid, signal.SIGKILL)
    service_pid = wait_for(lambda: (supervisor.service_pid() or first_pid) != first_pid and supervisor.service_pid(),
                           timeout=20, what="a restart after kill -9")  # fmt: skip
    wait_for(lambda: healthy(home), timeout=15, interval=0.2, what="health OK after the restart")
    signals.push(trade_frame(symbol="ETH"))
    wait_for(lambda: len(sim.applied_orders(wallet.address)) == 2, what="an order from the restarted service")

    stopped = supervisor.ctl("stop", "fractrade-sync")
    assert "stopped" in stopped.stdout, stopped
    status = supervisor.status()
    assert "STOPPED" in status and "FATAL" not in status, status
    assert not alive(service_pid)
    log = (home / "fractrade-sync.log").read_text()
    assert "stopping: no new actions" in log and "stopped: nothing left to execute" in log, log[-2000:]
    sup_log = (home / "supervisord.log").read_text()
    assert "stopped: fractrade-sync (exit status 0)" in sup_log, sup_log[-2000:]
    assert "with SIGKILL" not in sup_log.split("waiting for fractrade-sync to stop")[-1]  # no stopwaitsecs kill
    assert not (Path(env["FRAC_STATE_DIR"]) / "heartbeat.json").exists()
    assert env["HYPERLIQUID_PRIVATE_KEY"][2:] not in log and env["FRAC_USER_TOKEN"] not in log


def test_supervisord_does_not_restart_a_configuration_error(supervisor, env, signals):
    # Exit 78 is in exitcodes, so autorestart=unexpected leaves it EXITED. startsecs=0 so that the quick exit
    # counts as "after start-up" (with the shipped 10 s, supervisord's own rule applies instead: a process dead
    # before startsecs is retried startretries times, then FATAL; also bounded, but slower to test).
    write_dotenv(supervisor.home, {**env, "FRAC_WS_URL": "ftp://example.com"})
    supervisor.configure(startsecs=0)
    supervisor.start()
    wait_for(lambda: "EXITED" in supervisor.status(), timeout=20, interval=0.1, what="EXITED")
    sup_log = (supervisor.home / "supervisord.log").read_text()
    assert "exited: fractrade-sync (exit status 78; expected)" in sup_log, sup_log[-2000:]
    assert sup_log.count("spawned: 'fractrade-sync'") == 1  # EXITED is final: no second spawn can follow
    log = (supervisor.home / "fractrade-sync.log").read_text()
    assert "configuration error: FRAC_WS_URL: scheme 'ftp' is not supported" in log
    assert signals.connections_total == 0


# ---- cron ------------------------------------------------------------------------------------------------
class Cron:
    def __init__(self, home: Path):
        self.home = home
        self.pid_file = home / "fractrade-sync.pid"
        self.log_file = home / "fractrade-sync.log"

    def run(self, **settings: str) -> subprocess.CompletedProcess:
        defaults = {"FRAC_HOME": str(self.home), "PYTHON": sys.executable, "LOG_FILE": str(self.log_file),
                    "PID_FILE": str(self.pid_file), "STOP_WAIT": "15", "HEALTH_MAX_AGE": "2"}  # fmt: skip
        env = clean_env(**{**defaults, **settings})
        return subprocess.run(["bash", str(CRON)], env=env, capture_output=True, text=True, timeout=60)

    def pid(self) -> int:
        return int(self.pid_file.read_text())


@pytest.fixture
def cron(tmp_path, env):
    home = tmp_path / "home"
    write_dotenv(home, env)
    job = Cron(home)
    yield job
    if job.pid_file.exists():
        kill_and_wait(job.pid())


def test_cron_starts_a_dead_service_leaves_a_healthy_one_and_restarts_a_stale_one(cron, sim, signals, wallet):
    # dead (never started) -> started
    first = cron.run()
    assert first.returncode == 0 and "started fractrade-sync" in first.stdout, first
    pid = cron.pid()
    wait_for(lambda: healthy(cron.home), timeout=15, interval=0.2, what="health OK after a start")

    # healthy -> left alone, silently
    again = cron.run()
    assert again.returncode == 0 and again.stdout == "", again
    assert cron.pid() == pid and alive(pid)

    # it works: a frame becomes an order
    signals.push(trade_frame())
    wait_for(lambda: sim.applied_orders(wallet.address), what="the simulator to apply the order")

    # stale: a frozen process stops writing its heartbeat
    os.kill(pid, signal.SIGSTOP)
    wait_for(lambda: not healthy(cron.home, max_age=1), timeout=10, interval=0.2, what="a stale heartbeat")
    restarted = cron.run(HEALTH_MAX_AGE="1")
    assert restarted.returncode == 0 and f"stopping pid {pid}" in restarted.stdout, restarted
    assert "still running after" not in restarted.stdout  # TERM + CONT: the frozen one still shut down in order
    new_pid = cron.pid()
    assert new_pid != pid and not alive(pid)
    wait_for(lambda: healthy(cron.home), timeout=15, interval=0.2, what="health OK after the restart")
    log = cron.log_file.read_text()
    assert "stopped: nothing left to execute" in log
    assert len(sim.applied_orders(wallet.address)) == 1  # the restart repeated nothing


# a wedged "service": it holds the state dir's lock with its pid in it (as the service does), ignores SIGTERM and
# writes no heartbeat
WEDGED = """
import fcntl, os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
os.ftruncate(fd, 0)
os.pwrite(fd, str(os.getpid()).encode(), 0)
print("ready", flush=True)
time.sleep(60)
"""


def spawn(argv: list[str], **kwargs) -> subprocess.Popen:
    """A process that prints 'ready' once it is set up."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, **kwargs)
    assert proc.stdout.readline() == "ready\n"
    return proc


def end(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(5)


def test_cron_kills_a_process_that_ignores_sigterm(cron, env):
    # SIGKILL after STOP_WAIT, then a start (which finds the pid left under the lock: an unclean stop)
    lock = Path(env["FRAC_STATE_DIR"]) / "lock"
    lock.parent.mkdir(mode=0o700)
    wedged = spawn([sys.executable, "-c", WEDGED, str(lock), "fractrade_sync"])
    try:
        result = cron.run(STOP_WAIT="1")
        assert result.returncode == 0, result
        assert f"pid {wedged.pid} still running after 1s: SIGKILL" in result.stdout
        assert wedged.wait(5) == -signal.SIGKILL
        assert cron.pid() != wedged.pid
        wait_for(lambda: healthy(cron.home), timeout=15, interval=0.2, what="health OK after the start")
        assert "the last run did not stop in order" in cron.log_file.read_text()
    finally:
        end(wedged)


def test_cron_never_signals_a_stranger_named_like_the_service(cron, env):
    # The service is down and its pid has gone to `tail -f fractrade-sync.log` (here: a sleep by that name), the
    # pid file still naming it. A name match would stop it; the cron script starts the service and leaves it be.
    stranger = spawn(["bash", "-c", 'echo ready; exec -a "tail -f fractrade-sync.log" sleep 30'])
    try:
        wait_for(lambda: "tail -f fractrade-sync.log" in Path(f"/proc/{stranger.pid}/cmdline").read_text(),
                 what="the exec")  # fmt: skip
        cron.pid_file.write_text(str(stranger.pid))
        result = cron.run(STOP_WAIT="1")
        assert result.returncode == 0 and "started fractrade-sync" in result.stdout, result
        assert f"stopping pid {stranger.pid}" not in result.stdout
        assert stranger.poll() is None and alive(stranger.pid)
        service = cron.pid()
        assert service != stranger.pid
        wait_for(lambda: healthy(cron.home), timeout=15, interval=0.2, what="health OK after the start")
        assert run_cli(["pid"], {}, cwd=cron.home).stdout.strip() == str(service)
        assert stranger.poll() is None
    finally:
        end(stranger)


def test_cron_never_signals_a_stale_pid_under_the_lock(cron, env):
    # kill -9 left the service's pid in <state dir>/lock (and in the pid file); the pid now belongs to another
    # process, alive and even named fractrade_sync, but the lock is free: not the service, never signalled.
    state = Path(env["FRAC_STATE_DIR"])
    state.mkdir(mode=0o700)
    stranger = spawn([sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(30)",
                      "-m", "fractrade_sync", "run"])  # fmt: skip
    try:
        (state / "lock").write_text(str(stranger.pid))
        cron.pid_file.write_text(str(stranger.pid))
        result = cron.run(STOP_WAIT="1")
        assert result.returncode == 0 and "started fractrade-sync" in result.stdout, result
        assert "stopping pid" not in result.stdout and "SIGKILL" not in result.stdout
        assert stranger.poll() is None and alive(stranger.pid)
        wait_for(lambda: healthy(cron.home), timeout=15, interval=0.2, what="health OK after the start")
        assert cron.pid() != stranger.pid
        assert int((state / "lock").read_text()) == cron.pid()  # the new service took the lock, the stale pid gone
        assert "the last run did not stop in order" in cron.log_file.read_text()
        assert stranger.poll() is None
    finally:
        end(stranger)


def test_cron_does_nothing_while_another_run_holds_the_lock(cron):
    with open(cron.home / "fractrade-sync.pid.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = cron.run()
    assert result.returncode == 0 and "another run holds" in result.stderr, result
    assert not cron.pid_file.exists()


def test_cron_reports_a_service_that_cannot_start(cron, env):
    write_dotenv(cron.home, {**env, "HYPERLIQUID_PUBLIC_ADDRESS": "not-an-address"})
    result = cron.run(START_CHECK="8")  # generous: a loaded CI machine may take seconds to start Python
    assert result.returncode == 1 and "exited at once with status 78" in result.stdout, result
    assert not cron.pid_file.exists()
    assert "HYPERLIQUID_PUBLIC_ADDRESS" in cron.log_file.read_text()


def test_cron_gives_a_disconnected_service_time_to_reconnect(cron, signals):
    cron.run()
    pid = cron.pid()
    wait_for(lambda: healthy(cron.home), timeout=15, interval=0.2, what="health OK after a start")
    signals.refuse_with = 503  # Fractrade is down: the service keeps reconnecting with backoff
    signals.drop_all()
    wait_for(lambda: "not connected" in run_cli(["health"], {}, cwd=cron.home).stdout, interval=0.2,
             what="health to say 'not connected'")  # fmt: skip
    within_grace = cron.run(DISCONNECTED_GRACE="300")
    assert within_grace.returncode == 0 and within_grace.stdout == "", within_grace
    assert cron.pid() == pid and alive(pid)
    past_grace = cron.run(DISCONNECTED_GRACE="0")
    assert f"stopping pid {pid}" in past_grace.stdout and "started fractrade-sync" in past_grace.stdout, past_grace
    assert cron.pid() != pid and not alive(pid)
