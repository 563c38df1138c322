"""Our own processes for the fault tests: AI workers that can be killed and replaced."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def wait_until(
    predicate: Callable[[], object],
    timeout: float,
    what: str,
    state: Callable[[], str] = lambda: "",
) -> None:
    """Poll until ``predicate()``; on timeout fail with ``state()`` in the message."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{state()}")


class Workers:
    """``manage.py agent_worker`` processes sharing one environment."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = {**os.environ, **env}
        self.log_dir = log_dir
        self.alive: list[subprocess.Popen[bytes]] = []
        self.killed: list[subprocess.Popen[bytes]] = []
        self.started = 0

    def start(self) -> subprocess.Popen[bytes]:
        self.started += 1
        log = open(self.log_dir / f"worker-{self.started}.log", "wb")  # noqa: SIM115
        process = subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "agent_worker",
                "--interval",
                "0.05",
                "--sweep-every",
                "0.5",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        log.close()
        self.alive.append(process)
        return process

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        self.alive.remove(process)
        self.killed.append(process)

    def lease_prefix(self, process: subprocess.Popen[bytes]) -> str:
        """How the turns this process claims name their lease owner (agent.tasks)."""
        return f"{socket.gethostname()[:20]}-{process.pid}:"

    def logs(self, limit: int = 4000) -> str:
        """The end of every worker's stderr (for a failing test's message)."""
        parts = []
        for path in sorted(self.log_dir.glob("worker-*.log")):
            text = path.read_text(errors="replace").strip()
            if text:
                parts.append(f"--- {path.name}\n{text[-limit:]}")
        return "\n".join(parts)

    def stop_all(self) -> None:
        for process in self.alive:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=30)
        self.alive.clear()


def postgres_bin() -> Path | None:
    """The PostgreSQL server binaries: ``PG_BIN``, else ``pg_config --bindir``."""
    if os.environ.get("PG_BIN"):
        return Path(os.environ["PG_BIN"])
    pg_config = shutil.which("pg_config")
    if pg_config is None:
        return None
    try:
        found = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=30
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return Path(found) if (Path(found) / "initdb").exists() else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PrivatePostgres:
    """A throw-away PostgreSQL cluster on a free loopback port (never the shared one),
    stopped and started again by the test. As root, its commands run as ``postgres``
    (initdb refuses root)."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.dir = Path(tempfile.mkdtemp(prefix="sd-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]

    @staticmethod
    def available(bindir: Path | None) -> str | None:
        """Why a private cluster cannot run here, or None."""
        if bindir is None or not (bindir / "initdb").exists():
            return "the PostgreSQL server binaries (initdb, pg_ctl) are not installed"
        if os.geteuid() == 0 and (shutil.which("runuser") is None or not _has_user("postgres")):
            return "running as root without a postgres user to run initdb as"
        return None

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        subprocess.run(
            [*self.as_user, *args], check=True, capture_output=True, timeout=120, cwd=self.dir
        )

    def init(self) -> None:
        self._run(
            str(self.bindir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres"
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"
            " -c fsync=off -c shared_buffers=16MB -c max_connections=50"
        )
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.dir / "server.log"),
            "-w",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            self.stop("immediate")  # unless it is not running
        shutil.rmtree(self.dir, ignore_errors=True)


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
