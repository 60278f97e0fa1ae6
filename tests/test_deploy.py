"""The shipped deployments for real: supervisord.conf under supervisord (two agents), the cron watchdog script under
cron's own environment, the systemd template unit, and what CI installs them with."""

from __future__ import annotations

import fcntl
import getpass
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from eth_account import Account

from tests.conftest import ROOT, run_cli, trade_frame, wait_for

SUPERVISORD = Path(sys.executable).with_name("supervisord")
SUPERVISORCTL = Path(sys.executable).with_name("supervisorctl")
CRON = ROOT / "scripts" / "fractrade-sync-cron"
UNIT = ROOT / "scripts" / "fractrade-sync@.service"


def under_ci() -> bool:
    """CI is set (.ci/run sets it): a deployment test that cannot run fails there, it never skips."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def need(tool: str | Path, install: str) -> str:
    """The path of a tool a deployment test runs. Missing: a failure under CI, else a skip; both say how to get it."""
    found = str(tool) if Path(tool).is_absolute() and os.access(tool, os.X_OK) else shutil.which(str(tool))
    if found:
        return found
    message = f"{tool} is not installed: {install}"
    if under_ci():
        pytest.fail(f"{message} (CI is set: deployment tests must run, not skip; .ci/run installs it)")
    pytest.skip(message)


def need_cron_tools() -> None:
    for tool in ("bash", "flock", "setsid"):
        need(tool, "apt-get install util-linux bash")
    need("ps", "apt-get install procps")
    need("/bin/sh", "a POSIX shell at /bin/sh")


def test_a_missing_tool_fails_under_ci_and_only_skips_elsewhere(monkeypatch):
    def outcome(ci: str | None, tool: str | Path = "no-such-tool-x") -> tuple[type, str]:
        """What need() raises for a missing tool (caught here: a skip must not skip this test)."""
        if ci is None:
            monkeypatch.delenv("CI", raising=False)
        else:
            monkeypatch.setenv("CI", ci)
        try:
            need(tool, "get it")
        except BaseException as exc:  # pytest's Failed and Skipped are not Exceptions
            return type(exc), str(exc)
        raise AssertionError("need() returned for a missing tool")

    failed, message = outcome("true")
    assert failed is pytest.fail.Exception and message.startswith("no-such-tool-x is not installed: get it (CI is set")
    assert outcome("1", Path("/nonexistent/bin/no-such-tool-x"))[0] is pytest.fail.Exception
    for ci in (None, "", "false", "0"):
        assert outcome(ci) == (pytest.skip.Exception, "no-such-tool-x is not installed: get it")
    assert need("sh", "") == shutil.which("sh")


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any service variable: the service must read its .env."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("FRAC_", "HYPERLIQUID_"))}
    return {**base, **extra}


def write_dotenv(directory: Path, env: dict[str, str], name: str = ".env") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    path.chmod(0o600)
    return path


def second_agent(env: dict[str, str], sim, state_dir: Path) -> dict[str, str]:
    """Another agent's settings: its own account and key (funded on the simulator), its own state dir."""
    wallet = Account.create()
    sim.add_account(wallet.address, 100_000)
    key = "0x" + wallet.key.hex().removeprefix("0x")
    return {
        **env,
        "HYPERLIQUID_PRIVATE_KEY": key,
        "HYPERLIQUID_PUBLIC_ADDRESS": wallet.address,
        "FRAC_STATE_DIR": str(state_dir),
    }


def healthy(home: Path, max_age: float = 2.0, env_file: str | None = None) -> bool:
    flags = ["--env-file", env_file] if env_file else []
    return run_cli(["health", "--max-age", str(max_age), *flags], {}, cwd=home).returncode == 0


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
AGENTS = ("agent-a", "agent-b")


class Supervisor:
    """supervisord started from a copy of the shipped supervisord.conf in a temporary directory."""

    def __init__(self, home: Path):
        self.home = home
        self.conf = home / "supervisord.conf"

    def configure(self, startsecs: int = 1) -> None:
        """The shipped file with two local edits: this virtualenv's interpreter, and a shorter startsecs."""
        text = (ROOT / "supervisord.conf").read_text()
        text = text.replace("\ncommand=python -m fractrade_sync ", f"\ncommand={sys.executable} -m fractrade_sync ")
        text = text.replace("\nstartsecs=10\n", f"\nstartsecs={startsecs}\n")
        assert text.count(f"\ncommand={sys.executable} ") == len(AGENTS)
        assert text.count(f"\nstartsecs={startsecs}\n") == len(AGENTS)
        self.conf.write_text(text)

    def ctl(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(SUPERVISORCTL), "-c", str(self.conf), *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=clean_env(),
        )

    def status(self, program: str) -> str:
        return self.ctl("status", program).stdout

    def start(self) -> None:
        subprocess.run([str(SUPERVISORD), "-c", str(self.conf)], check=True, timeout=30, cwd=self.home, env=clean_env())

    def service_pid(self, program: str) -> int | None:
        status = self.status(program)
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
    need(SUPERVISORD, "pip install -e '.[test]' -c constraints.txt")
    home = tmp_path / "svc"
    home.mkdir()
    sup = Supervisor(home)
    yield sup
    sup.shutdown()


def test_supervisord_runs_two_agents_and_stops_them_in_order(supervisor, env, sim, signals, wallet, tmp_path):
    # One install, two agents: each its own env file (its own account, key and state dir) and log file. No .env.
    home = supervisor.home
    states = {"agent-a": tmp_path / "state-a", "agent-b": tmp_path / "state-b"}
    agents = {
        "agent-a": {**env, "FRAC_STATE_DIR": str(states["agent-a"])},
        "agent-b": second_agent(env, sim, states["agent-b"]),
    }
    for name, settings in agents.items():
        write_dotenv(home, {**settings, "LOGLEVEL": "INFO"}, f"{name}.env")
    supervisor.configure()
    supervisor.start()
    pids = {
        name: wait_for(lambda n=name: supervisor.service_pid(n), timeout=20, what=f"{name} RUNNING") for name in AGENTS
    }
    assert pids["agent-a"] != pids["agent-b"]
    for name in AGENTS:
        wait_for(lambda n=name: healthy(home, env_file=f"{n}.env"), timeout=15, interval=0.2, what=f"{name} healthy")
        pid = run_cli(["pid", "--env-file", f"{name}.env"], {}, cwd=home)
        assert pid.stdout == f"{pids[name]}\n", pid  # each env file names its own agent's state dir
    assert not (home / ".env").exists() and not healthy(home)
    assert signals.wait_for_clients(2, timeout=10)

    signals.push(trade_frame())  # both agents get it; each trades its own account
    accounts = {name: settings["HYPERLIQUID_PUBLIC_ADDRESS"] for name, settings in agents.items()}
    for name in AGENTS:
        wait_for(lambda n=name: sim.applied_orders(accounts[n]), what=f"{name}'s order")
        assert sim.positions(accounts[name]) == {"BTC": "0.01"}

    # a crash of one agent (kill -9, as the OOM killer would) restarts that one; the other runs on
    os.kill(pids["agent-a"], signal.SIGKILL)
    restarted = wait_for(
        lambda: (
            (supervisor.service_pid("agent-a") or pids["agent-a"]) != pids["agent-a"]
            and supervisor.service_pid("agent-a")
        ),
        timeout=20,
        what="agent-a restarted",
    )
    assert supervisor.service_pid("agent-b") == pids["agent-b"]
    wait_for(lambda: healthy(home, env_file="agent-a.env"), timeout=15, interval=0.2, what="agent-a healthy again")
    signals.push(trade_frame(symbol="ETH"))
    for name in AGENTS:
        wait_for(lambda n=name: len(sim.applied_orders(accounts[n])) == 2, what=f"{name}'s second order")

    stopped = supervisor.ctl("stop", "all")
    assert "agent-a: stopped" in stopped.stdout and "agent-b: stopped" in stopped.stdout, stopped
    assert not alive(restarted) and not alive(pids["agent-b"])
    sup_log = (home / "supervisord.log").read_text()
    for name in AGENTS:
        status = supervisor.status(name)
        assert "STOPPED" in status and "FATAL" not in status, status
        log = (home / f"{name}.log").read_text()
        assert "stopping: no new actions" in log and "stopped: nothing left to execute" in log, log[-2000:]
        assert f"stopped: {name} (exit status 0)" in sup_log, sup_log[-2000:]
        assert not (states[name] / "heartbeat.json").exists() and (states[name] / "journal.sqlite3").exists()
        for secret in (agents[name]["HYPERLIQUID_PRIVATE_KEY"][2:], agents[name]["FRAC_USER_TOKEN"]):
            assert secret not in log
    assert "with SIGKILL" not in sup_log.split("waiting for agent-")[-1]  # no stopwaitsecs kill
    assert not (tmp_path / "state").exists()  # the fixture's state dir: nobody fell back to it


def test_supervisord_does_not_restart_a_configuration_error(supervisor, env, signals):
    # Exit 78 is in exitcodes, so autorestart=unexpected leaves it EXITED. startsecs=0 so that the quick exit
    # counts as "after start-up" (with the shipped 10 s, supervisord's own rule applies instead: a process dead
    # before startsecs is retried startretries times, then FATAL; also bounded, but slower to test).
    # agent-a: a bad value in its env file; agent-b: no env file at all (a missing --env-file is exit 78 too).
    write_dotenv(supervisor.home, {**env, "FRAC_WS_URL": "ftp://example.com"}, "agent-a.env")
    write_dotenv(supervisor.home, env)  # a .env next to it is never read in place of a missing agent-b.env
    supervisor.configure(startsecs=0)
    supervisor.start()
    for name in AGENTS:
        wait_for(lambda n=name: "EXITED" in supervisor.status(n), timeout=20, interval=0.1, what=f"{name} EXITED")
    sup_log = (supervisor.home / "supervisord.log").read_text()
    for name in AGENTS:
        assert f"exited: {name} (exit status 78; expected)" in sup_log, sup_log[-2000:]
        assert sup_log.count(f"spawned: '{name}'") == 1  # EXITED is final: no second spawn can follow
    log_a = (supervisor.home / "agent-a.log").read_text()
    assert "configuration error: FRAC_WS_URL: scheme 'ftp' is not supported" in log_a
    log_b = (supervisor.home / "agent-b.log").read_text()
    assert f"configuration error: --env-file: {supervisor.home / 'agent-b.env'}: no such file" in log_b, log_b
    assert signals.connections_total == 0


# ---- cron ------------------------------------------------------------------------------------------------
EXAMPLE_HOME = "/home/trader/fractrade-sync"  # the deployment directory scripts/crontab.example is written for


def cron_env(home: Path, **settings: str) -> dict[str, str]:
    """The environment cron gives a job: nearly nothing (as `env -i PATH=/usr/bin:/bin HOME=... SHELL=/bin/sh`
    leaves it; no virtualenv, no FRAC_ or HYPERLIQUID_ variable), plus the crontab line's own assignments."""
    return {"PATH": "/usr/bin:/bin", "HOME": str(home), "SHELL": "/bin/sh", "LOGNAME": getpass.getuser(), **settings}


class Cron:
    """One agent's cron job; its files are named after NAME (fractrade-sync, or fractrade-sync-<env file name>)."""

    def __init__(self, home: Path, name: str = "fractrade-sync"):
        self.home = home
        self.pid_file = home / f"{name}.pid"
        self.log_file = home / f"{name}.log"

    def run(self, *args: str, **settings: str) -> subprocess.CompletedProcess:
        """The script as cron starts it: by its #! line, in cron's environment, from another directory."""
        defaults = {"FRAC_HOME": str(self.home), "PYTHON": sys.executable, "STOP_WAIT": "15", "HEALTH_MAX_AGE": "2"}
        return subprocess.run(
            [str(CRON), *args],
            env=cron_env(self.home, **{**defaults, **settings}),
            cwd="/",
            capture_output=True,
            text=True,
            timeout=60,
        )

    def pid(self) -> int:
        return int(self.pid_file.read_text())


@pytest.fixture
def cron(tmp_path, env):
    need_cron_tools()
    home = tmp_path / "home"
    write_dotenv(home, env)
    job = Cron(home)
    yield job
    if job.pid_file.exists():
        kill_and_wait(job.pid())


def crontab_jobs(home: Path) -> tuple[list[str], dict[str, str]]:
    """scripts/crontab.example's job commands with this test's paths, and its variable lines (SHELL among them)."""
    jobs, variables = [], {}
    for line in (ROOT / "scripts" / "crontab.example").read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if assignment := re.fullmatch(r"\s*([A-Za-z_]\w*)\s*=\s*(.*)", line):
            variables[assignment[1]] = assignment[2]
            continue
        command = line.split(None, 5)[5]
        assert "%" not in command, "cron turns % in a command into a newline: escape it as \\%"
        for theirs, ours in (
            (f"{EXAMPLE_HOME}/.venv/bin/python", sys.executable),
            (f"{EXAMPLE_HOME}/scripts/fractrade-sync-cron", str(CRON)),
            (EXAMPLE_HOME, str(home)),
        ):
            assert theirs in command, (theirs, line)
            command = command.replace(theirs, ours)
        jobs.append(command)
    return jobs, variables


def test_cron_runs_each_agent_of_the_crontab_example_as_cron_would(tmp_path, env, sim, signals):
    # The example's lines, run the way cron runs them: cron's near-empty environment, and /bin/sh (cron's default
    # SHELL, which the example does not change) running each line. One line per agent, its env file the argument.
    need_cron_tools()
    home = tmp_path / "home"
    states = {"agent-a": tmp_path / "state-a", "agent-b": tmp_path / "state-b"}
    agents = {
        "agent-a": {**env, "FRAC_STATE_DIR": str(states["agent-a"])},
        "agent-b": second_agent(env, sim, states["agent-b"]),
    }
    for name, settings in agents.items():
        write_dotenv(home, settings, f"{name}.env")
    jobs, variables = crontab_jobs(home)
    shell = variables.pop("SHELL", "/bin/sh")
    assert shell == "/bin/sh", "the example must work with cron's default shell"
    assert [shlex.split(job)[-1] for job in jobs] == ["agent-a.env", "agent-b.env"]
    crons = {name: Cron(home, f"fractrade-sync-{name}") for name in AGENTS}

    def run_jobs() -> list[subprocess.CompletedProcess]:
        return [
            subprocess.run(
                [shell, "-c", job],
                env=cron_env(home, **variables),
                cwd=str(tmp_path),
                capture_output=True,
                text=True,
                timeout=60,
            )
            for job in jobs
        ]

    try:
        for name, result in zip(AGENTS, run_jobs(), strict=True):
            assert result.returncode == 0 and "started fractrade-sync" in result.stdout, (name, result)
        for name, job in crons.items():
            wait_for(lambda n=name: healthy(home, env_file=f"{n}.env"), timeout=15, interval=0.2, what=f"{name} ok")
            pid = run_cli(["pid", "--env-file", f"{name}.env"], {}, cwd=home)
            assert pid.stdout == f"{job.pid()}\n", pid  # each line started its own agent, on its own state dir
            assert (states[name] / "lock").exists()
        assert crons["agent-a"].pid() != crons["agent-b"].pid()
        assert not (home / "fractrade-sync.pid").exists() and not (tmp_path / "state").exists()

        signals.push(trade_frame())
        for name, settings in agents.items():
            wait_for(lambda a=settings["HYPERLIQUID_PUBLIC_ADDRESS"]: sim.applied_orders(a), what=f"{name}'s order")

        for name, again in zip(AGENTS, run_jobs(), strict=True):  # both healthy: left alone, silently
            assert again.returncode == 0 and again.stdout == "" and again.stderr == "", (name, again)
        for job in crons.values():
            assert alive(job.pid()) and "started fractrade-sync" in job.log_file.read_text()
    finally:
        for job in crons.values():
            if job.pid_file.exists():
                kill_and_wait(job.pid())


def test_cron_restarts_a_stale_agent_found_through_its_env_file(tmp_path, env, sim, signals):
    # health, pid and the start all read the env file given (no .env here): the stale agent is the one stopped
    need_cron_tools()
    home = tmp_path / "home"
    write_dotenv(home, env, "agent-a.env")
    job = Cron(home, "fractrade-sync-agent-a")
    pid = None
    try:
        first = job.run("agent-a.env")
        assert first.returncode == 0 and "started fractrade-sync" in first.stdout, first
        pid = job.pid()
        wait_for(lambda: healthy(home, env_file="agent-a.env"), timeout=15, interval=0.2, what="health OK")
        os.kill(pid, signal.SIGSTOP)
        wait_for(
            lambda: not healthy(home, max_age=1, env_file="agent-a.env"),
            timeout=10,
            interval=0.2,
            what="a stale heartbeat",
        )
        restarted = job.run("agent-a.env", HEALTH_MAX_AGE="1")
        assert restarted.returncode == 0 and f"stopping pid {pid}" in restarted.stdout, restarted
        assert "started fractrade-sync" in restarted.stdout and job.pid() != pid and not alive(pid)
        wait_for(lambda: healthy(home, env_file="agent-a.env"), timeout=15, interval=0.2, what="health OK again")
        assert not (home / ".env").exists() and not (home / "fractrade-sync.pid").exists()
    finally:
        if job.pid_file.exists():
            kill_and_wait(job.pid())
        if pid is not None and alive(pid):  # the frozen one, should the cron script have lost it
            kill_and_wait(pid)


def test_cron_names_a_missing_env_file_and_starts_nothing(cron, env):
    # ENV_FILE given as the variable this time (the crontab example gives it as the argument). A .env is right
    # there, but a named env file replaces it: nothing falls back to it.
    agent = Cron(cron.home, "fractrade-sync-agent-c")
    result = agent.run(ENV_FILE="agent-c.env")
    assert result.returncode == 1, result
    expected = (
        f"fractrade-sync-cron: configuration error, nothing done: fractrade-sync: configuration error: "
        f"--env-file: {cron.home / 'agent-c.env'}: no such file\n"
    )
    assert result.stdout.endswith(expected) and result.stdout.count("\n") == 1, result
    assert not agent.pid_file.exists() and "no such file" in agent.log_file.read_text()
    assert not cron.pid_file.exists() and not (Path(env["FRAC_STATE_DIR"]) / "lock").exists()
    assert run_cli(["pid"], {}, cwd=cron.home).returncode == 1


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
        wait_for(
            lambda: "tail -f fractrade-sync.log" in Path(f"/proc/{stranger.pid}/cmdline").read_text(), what="the exec"
        )
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
    stranger = spawn(
        [sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(30)", "-m", "fractrade_sync", "run"]
    )
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
    wait_for(
        lambda: "not connected" in run_cli(["health"], {}, cwd=cron.home).stdout,
        interval=0.2,
        what="health to say 'not connected'",
    )
    within_grace = cron.run(DISCONNECTED_GRACE="300")
    assert within_grace.returncode == 0 and within_grace.stdout == "", within_grace
    assert cron.pid() == pid and alive(pid)
    past_grace = cron.run(DISCONNECTED_GRACE="0")
    assert f"stopping pid {pid}" in past_grace.stdout and "started fractrade-sync" in past_grace.stdout, past_grace
    assert cron.pid() != pid and not alive(pid)


# ---- systemd ------------------------------------------------------------------------------------------------
EXEC = "/opt/fractrade-sync/.venv/bin/fractrade-sync"  # the unit's ExecStart binary: a venv outside /home (ProtectHome)


def unit_settings(text: str) -> dict[str, dict[str, list[str]]]:
    """[section] -> key -> every value it is given, in order (Environment= may come more than once)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, value = line.split("=", 1)
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def test_systemd_unit_passes_systemd_analyze_verify_without_a_warning(tmp_path):
    # verify checks that ExecStart's binary exists and is executable: the copy points it at a stand-in that does
    analyze = need("systemd-analyze", "apt-get install systemd")
    fake = tmp_path / "bin" / "fractrade-sync"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    text = UNIT.read_text()
    assert text.count(f"\nExecStart={EXEC} ") == 1
    instance = tmp_path / "fractrade-sync@agent-a.service"  # an instance: verify expands %i as for agent-a
    instance.write_text(text.replace(f"\nExecStart={EXEC} ", f"\nExecStart={fake} "))
    result = subprocess.run(
        [analyze, "verify", "--man=no", str(instance)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert result.returncode == 0 and result.stdout == "" and result.stderr == "", result


def test_systemd_unit_restarts_crashes_not_config_errors_and_outwaits_the_drain():
    from fractrade_sync.config.settings import Settings

    unit = unit_settings(UNIT.read_text())
    service, one = unit["Service"], lambda key: unit["Service"][key][-1]
    assert one("ExecStart").startswith(f"{EXEC} run --env-file ")
    # the instance name selects the env file (handed over as a credential) and the state dir
    assert "env:/etc/fractrade-sync/%i.env" in service["LoadCredential"]
    assert one("ExecStart") == f"{EXEC} run --env-file ${{CREDENTIALS_DIRECTORY}}/env"
    assert unit["Unit"]["AssertPathExists"] == ["/etc/fractrade-sync/%i.env"]
    assert one("StateDirectory") == "fractrade-sync/%i" and one("StateDirectoryMode") == "0700"
    assert "FRAC_STATE_DIR=%S/fractrade-sync/%i" in service["Environment"]
    # restarts: a crash yes, a configuration error (78) never, and not in a loop
    assert one("Restart") == "on-failure" and one("RestartPreventExitStatus").split() == ["78"]
    assert int(unit["Unit"]["StartLimitBurst"][-1]) > 0 and int(unit["Unit"]["StartLimitIntervalSec"][-1]) > 0
    # the stop: SIGTERM, and SIGKILL only well after the whole drain may have taken (FRAC_DRAIN_TIMEOUT)
    assert one("KillSignal") == "SIGTERM"
    drain = Settings.__dataclass_fields__["drain_timeout"].default
    assert float(one("TimeoutStopSec")) == 30 >= drain + 5
    assert "FRAC_DRAIN_TIMEOUT=20\n" in (ROOT / "scripts" / "env.example").read_text()
    # its own user, no privileges, a read-only system but for its state dir
    assert service.get("DynamicUser") == ["yes"] or service.get("User", ["root"])[-1] not in ("root", "0")
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "UMask": "0077",
    }.items():
        assert one(key) == value, key
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def test_systemd_unit_command_runs_an_instance_as_systemd_would_start_it(tmp_path, env, sim, signals):
    # What systemd does for fractrade-sync@agent-a, without systemd: the specifiers expanded, the env file copied
    # to a credentials directory (mode 0400), the unit's Environment= only, ExecStart, then KillSignal.
    unit = unit_settings(UNIT.read_text())["Service"]
    expand = {"%i": "agent-a", "%S": str(tmp_path / "var-lib"), "%%": "%"}

    def specifiers(value: str) -> str:
        return re.sub(r"%[iS%]", lambda m: expand[m[0]], value)

    credentials = tmp_path / "credentials"
    credentials.mkdir()
    elsewhere = tmp_path / "env-file-state"  # the env file's own FRAC_STATE_DIR: the unit's setting wins
    write_dotenv(credentials, {**env, "FRAC_STATE_DIR": str(elsewhere)}, "env").chmod(0o400)
    state = Path(specifiers(unit["Environment"][0].split("=", 1)[1]))
    assert unit["Environment"][0].startswith("FRAC_STATE_DIR=") and state == tmp_path / "var-lib/fractrade-sync/agent-a"
    state.mkdir(parents=True, mode=0o700)  # StateDirectory=, made by systemd before the start
    process_env = {"PATH": "/usr/bin:/bin", "CREDENTIALS_DIRECTORY": str(credentials)}
    process_env.update(specifiers(e).split("=", 1) for e in unit["Environment"])
    command = shlex.split(specifiers(unit["ExecStart"][-1]).replace("${CREDENTIALS_DIRECTORY}", str(credentials)))
    assert command[0] == EXEC
    command[0] = shutil.which("fractrade-sync", path=str(Path(sys.executable).parent))
    prevent = {int(code) for code in unit["RestartPreventExitStatus"][-1].split()}

    with open(tmp_path / "journal.log", "wb") as journal:
        proc = subprocess.Popen(
            command, env=process_env, cwd="/", stdin=subprocess.DEVNULL, stdout=journal, stderr=subprocess.STDOUT
        )
    try:
        wait_for(
            lambda: (
                run_cli(["health", "--state-dir", str(state)], {}, tmp_path).returncode == 0 or proc.poll() is not None
            ),
            timeout=30,
            interval=0.2,
            what="the instance healthy",
        )
        assert proc.poll() is None, (tmp_path / "journal.log").read_text()
        signals.push(trade_frame())
        wait_for(lambda: sim.applied_orders(env["HYPERLIQUID_PUBLIC_ADDRESS"]), what="the order")
        proc.send_signal(signal.Signals[unit["KillSignal"][-1]])
        code = proc.wait(float(unit["TimeoutStopSec"][-1]))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    log = (tmp_path / "journal.log").read_text()
    assert code == 0, log  # an orderly stop: not a failure, so Restart=on-failure leaves it stopped
    assert "stopped: nothing left to execute" in log and "open to other users" not in log
    assert (state / "journal.sqlite3").exists() and not elsewhere.exists()

    (credentials / "env").unlink()  # no env file (systemd < 247 has no credentials: the same)
    missing = subprocess.run(command, env=process_env, cwd="/", capture_output=True, text=True, timeout=60)
    assert missing.returncode == 78 and missing.returncode in prevent, missing
    assert f"--env-file: {credentials / 'env'}: no such file" in missing.stderr


# ---- CI and the versions it installs ---------------------------------------------------------------------------
def test_constraints_pin_the_dependency_tree_as_installed():
    # constraints.txt is `pip freeze` of this venv cut to our dependency tree; regenerate it when setup.cfg or the
    # venv changes (after the tests passed): .venv/bin/python scripts/constraints > constraints.txt
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "constraints")], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr

    def pins(text: str) -> list[str]:
        return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]

    shipped = pins((ROOT / "constraints.txt").read_text())
    assert shipped == pins(result.stdout), "regenerate: .venv/bin/python scripts/constraints > constraints.txt"
    names = {re.sub(r"[-_.]+", "-", line.split("==")[0]).lower() for line in shipped}
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+==[^=\s]+", line) for line in shipped), shipped
    assert "fractrade-sync" not in names and {"websocket-client", "hyperliquid-python-sdk", "pytest"} <= names
    setup = (ROOT / "setup.cfg").read_text()
    assert "==" not in setup  # setup.cfg keeps its ranges; the pins live in constraints.txt only


def test_ci_makes_its_own_venv_and_installs_with_the_constraints():
    ci = (ROOT / ".ci" / "run").read_text()
    commands = [line.strip() for line in ci.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert "python3 -m venv .venv" in commands
    installs = [c for c in commands if re.search(r"\bpip3? install\b", c) and "--upgrade pip" not in c]
    assert installs == [".venv/bin/pip install --quiet -e '.[test]' -c constraints.txt"], installs
    assert 'export CI="${CI:-true}"' in commands  # the deployment tests fail rather than skip (need())
    assert any(c.startswith(".venv/bin/pytest ") and "--junitxml=" in c for c in commands)
    assert "constraints.txt" in UNIT.read_text() and "pip install" in UNIT.read_text()


def test_ci_fails_when_a_test_was_skipped(tmp_path):
    # The check .ci/run runs after pytest, as written there, on a report with a skip and on one without.
    ci = (ROOT / ".ci" / "run").read_text()
    check = ci.split("<<'NO_SKIPS'\n", 1)[1].split("\nNO_SKIPS\n", 1)[0]
    case = '<testcase classname="tests.test_deploy" name="test_{0}">{1}</testcase>'
    skipped = case.format("b", '<skipped type="pytest.skip" message="flock is not installed" />')
    for cases, expect in (([case.format("a", "")], 0), ([case.format("a", ""), skipped], 1)):
        report = tmp_path / "report.xml"
        report.write_text(f'<testsuites><testsuite name="pytest">{"".join(cases)}</testsuite></testsuites>')
        result = subprocess.run(
            [sys.executable, "-", str(report)], input=check, capture_output=True, text=True, timeout=30
        )
        assert result.returncode == expect, result
    assert "skipped: tests.test_deploy.test_b: flock is not installed" in result.stderr
    assert "1 test(s) skipped; CI runs every test" in result.stderr
