"""Shared plumbing of the benchmarks: databases, the gunicorn server, the load generator.

Everything here talks to loopback only, and every wait and loop is bounded in count and
time. Benchmarks compare endpoints measured side by side in one run (short alternating
rounds), so the noise of a shared machine hits both sides of a ratio alike.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
PYTHON = sys.executable
HOST = "127.0.0.1"
DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/bench"
WRK_SCRIPT = BENCH_DIR / "wrk.lua"
Headers = Mapping[str, str]  # request headers, e.g. {"Authorization": "Token …"}


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- Databases ---------------------------------------------------------------------


class Database:
    """One dedicated, throw-away database of the bench (created empty, then migrated),
    and the Redis its servers use (``redis_url``; None: the in-memory channel layer and
    cache, as in the embedded default)."""

    url: str
    label: str
    redis_url: str | None = None

    def create(self) -> None:
        raise NotImplementedError

    def drop(self) -> None:
        raise NotImplementedError


@dataclass
class SqliteDatabase(Database):
    path: Path
    label: str = "sqlite"

    @property
    def url(self) -> str:  # type: ignore[override]
        return f"sqlite:///{self.path}"

    def create(self) -> None:
        self.drop()

    def drop(self) -> None:
        for suffix in ("", "-wal", "-shm", "-journal"):
            with contextlib.suppress(FileNotFoundError):
                Path(f"{self.path}{suffix}").unlink()


@dataclass
class PostgresDatabase(Database):
    server_url: str
    name: str
    label: str = "postgres"

    @property
    def url(self) -> str:  # type: ignore[override]
        parts = urlsplit(self.server_url)
        return urlunsplit((parts.scheme, parts.netloc, f"/{self.name}", parts.query, ""))

    def _admin(self, sql: str) -> None:
        import psycopg

        parts = urlsplit(self.server_url)
        with psycopg.connect(
            host=parts.hostname or HOST,
            port=parts.port or 5432,
            user=parts.username or "postgres",
            password=parts.password or None,
            dbname="postgres",
            autocommit=True,
            connect_timeout=10,
        ) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def create(self) -> None:
        self.drop()
        self._admin(f'CREATE DATABASE "{self.name}"')

    def drop(self) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


class Databases:
    """Makes the bench's databases: SQLite files in a temp dir, or PostgreSQL databases
    whose names always contain ``bench`` (so a DATABASE_URL naming a real database is
    only used for its server and credentials, never dropped)."""

    def __init__(self, postgres_url: str | None, redis_url: str | None = None) -> None:
        self.postgres_url = postgres_url
        self.redis_url = redis_url or None
        self.tmpdir: Path | None = None
        self.made: list[Database] = []
        if postgres_url:
            name = urlsplit(postgres_url).path.lstrip("/") or "bench"
            self.prefix = name if "bench" in name else f"{name}_bench"
        else:
            self.tmpdir = Path(tempfile.mkdtemp(prefix="supportdesk-bench-"))

    @property
    def kind(self) -> str:
        return "postgres" if self.postgres_url else "sqlite"

    @property
    def label(self) -> str:
        """The set-up as the results table names it: ``sqlite``, ``postgres+redis``, …"""
        return self.kind + ("+redis" if self.redis_url else "")

    def new(self, suffix: str) -> Database:
        database: Database
        if self.postgres_url:
            database = PostgresDatabase(self.postgres_url, f"{self.prefix}_{suffix}")
        else:
            assert self.tmpdir is not None
            database = SqliteDatabase(self.tmpdir / f"{suffix}.sqlite3")
        database.redis_url = self.redis_url
        database.create()
        self.made.append(database)
        return database

    def cleanup(self, keep: bool = False) -> None:
        if keep:
            log(f"keeping databases: {', '.join(d.url for d in self.made)}")
            return
        for database in self.made:
            with contextlib.suppress(Exception):
                database.drop()
        if self.tmpdir is not None:
            shutil.rmtree(self.tmpdir, ignore_errors=True)


def redis_url_from_env() -> str | None:
    """The Redis of REDIS_URL (redis:// or rediss://), if one is set."""
    url = os.environ.get("REDIS_URL", "")
    return url if urlsplit(url).scheme in {"redis", "rediss"} else None


def postgres_url_from(args_postgres: bool) -> str | None:
    """The PostgreSQL server to use: ``--postgres``, or a postgres DATABASE_URL."""
    env_url = os.environ.get("DATABASE_URL", "")
    if urlsplit(env_url).scheme in {"postgres", "postgresql", "pgsql"}:
        return env_url
    return DEFAULT_POSTGRES_URL if args_postgres else None


# --- Django subprocesses ---------------------------------------------------------


def server_env(database: Database, **extra: str) -> dict[str, str]:
    """The environment of the bench's Django processes on ``database``: its own
    DATABASE_URL, and REDIS_URL only when the run uses Redis (with key prefixes of the
    bench's own, so nothing mixes with a deployment sharing that Redis database)."""
    env = dict(os.environ)
    env.pop("REDIS_URL", None)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "supportdesk.settings",
            "SECRET_KEY": "bench",
            "DEBUG": "0",
            "SUPPORTDESK_BENCH_ENDPOINTS": "1",
            "SUPPORTDESK_RATE_LIMITS": "off",
            "DATABASE_URL": database.url,
            "LOG_LEVEL": "WARNING",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    if database.redis_url:
        env["REDIS_URL"] = database.redis_url
        env["CACHE_KEY_PREFIX"] = "supportdesk-bench"
        env["CHANNEL_LAYER_PREFIX"] = "supportdesk-bench"
    env.update(extra)
    return env


def migrate(database: Database) -> None:
    subprocess.run(
        [PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=server_env(database),
        check=True,
        timeout=300,
    )


def run_seed(
    database: Database,
    *args: str,
    timeout: float = 600,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run ``bench/seed.py`` with the server's environment (or ``env``); its last stdout
    line is JSON."""
    result = subprocess.run(
        [PYTHON, str(BENCH_DIR / "seed.py"), *args],
        cwd=ROOT,
        env=env if env is not None else server_env(database),
        check=False,
        timeout=timeout,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-4000:] + result.stderr[-4000:])
        raise RuntimeError(f"bench/seed.py {' '.join(args)} failed ({result.returncode})")
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    return dict(json.loads(lines[-1]))


# --- CPU accounting (Linux /proc; None elsewhere) -------------------------------------


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds a process has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def machine_cpu_seconds() -> tuple[float, float] | None:
    """(busy, total) CPU seconds of the whole machine since boot, over all cores."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])
    return (total - idle) / tick, total / tick


# --- The server --------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def request(
    port: int,
    method: str,
    path: str,
    *,
    headers: Headers | None = None,
    body: Any = None,
    timeout: float = 10.0,
) -> tuple[int, Any]:
    """One request over a fresh loopback connection; returns (status, parsed JSON or text)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        payload = None if body is None else json.dumps(body).encode()
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        conn.request(method, path, body=payload, headers=all_headers)
        response = conn.getresponse()
        raw = response.read()
    finally:
        conn.close()
    try:
        return response.status, json.loads(raw)
    except ValueError:
        return response.status, raw.decode("utf-8", "replace")


class Gunicorn:
    """``gunicorn supportdesk.wsgi:application`` with N sync workers on a free port."""

    def __init__(self, database: Database, *, workers: int = 2, name: str = "") -> None:
        self.database = database
        self.workers = workers
        self.port = free_port()
        self.name = name or database.label
        self.logfile = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in stop()
            prefix="supportdesk-bench-gunicorn-", suffix=".log", delete=False
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, ready_timeout: float = 60.0) -> None:
        gunicorn = Path(PYTHON).with_name("gunicorn")
        command = [str(gunicorn)] if gunicorn.exists() else [PYTHON, "-m", "gunicorn"]
        command += [
            "supportdesk.wsgi:application",
            "--workers",
            str(self.workers),
            "--bind",
            f"{HOST}:{self.port}",
            "--log-level",
            "warning",
            "--backlog",
            "256",
        ]
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=server_env(self.database),
            stdout=self.logfile,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + ready_timeout
        for _ in range(int(ready_timeout / 0.2) + 1):
            if self.process.poll() is not None:
                break
            # Any answer means the workers are serving (health may report a missing AI
            # worker or channel layer, which the bench does not need).
            with contextlib.suppress(OSError, http.client.HTTPException):
                request(self.port, "GET", "/healthz", timeout=2.0)
                return
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        tail = self.log_tail()  # stop() deletes the log
        self.stop()
        raise RuntimeError(f"gunicorn did not start; log:\n{tail}")

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return Path(self.logfile.name).read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            # The master is the leader of its own session: stop exactly it and its workers.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.logfile.close()
        with contextlib.suppress(FileNotFoundError):
            Path(self.logfile.name).unlink()

    def __enter__(self) -> Gunicorn:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Service:
    """A long-running helper process of the bench (a model server, ``runserver``, an AI
    worker): the leader of its own session, so ``stop()`` ends exactly it and its
    children. Its output goes to a temp log file, except that with ``pipe_stdout`` the
    first stdout line can be read (``first_line``)."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        env: dict[str, str],
        *,
        pipe_stdout: bool = False,
    ) -> None:
        self.name = name
        self.command = list(command)
        self.env = env
        self.pipe_stdout = pipe_stdout
        self.logfile = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in stop()
            prefix=f"supportdesk-bench-{name}-", suffix=".log", delete=False
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Service:
        self.process = subprocess.Popen(
            self.command,
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE if self.pipe_stdout else self.logfile,
            stderr=self.logfile if self.pipe_stdout else subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def first_line(self, timeout: float = 30.0) -> str:
        """The first line the process writes to stdout (``pipe_stdout`` only)."""
        import select

        assert self.process is not None and self.process.stdout is not None
        stream = self.process.stdout
        buffer = b""
        deadline = time.monotonic() + timeout
        for _ in range(int(timeout / 0.05) + 2):
            if b"\n" in buffer:
                break
            left = deadline - time.monotonic()
            if left <= 0 or self.process.poll() is not None:
                break
            ready, _, _ = select.select([stream], [], [], min(left, 0.5))
            if ready:
                chunk = os.read(stream.fileno(), 4096)
                if not chunk:
                    break
                buffer += chunk
        if b"\n" not in buffer:
            tail = self.log_tail()
            self.stop()
            raise RuntimeError(f"{self.name} printed no line; log:\n{tail}")
        return buffer.split(b"\n", 1)[0].decode().strip()

    def wait_for_log(self, text: str, timeout: float = 60.0) -> float:
        """Wait until ``text`` appears in the log; returns the seconds waited."""
        started = time.monotonic()
        for _ in range(int(timeout / 0.05) + 1):
            if text in self.log_tail(100_000):
                return time.monotonic() - started
            if self.process is None or self.process.poll() is not None:
                break
            if time.monotonic() - started > timeout:
                break
            time.sleep(0.05)
        tail = self.log_tail()
        self.stop()
        raise RuntimeError(f"{self.name}: no {text!r} in its output; log:\n{tail}")

    def wait_for_http(self, port: int, timeout: float = 60.0) -> float:
        """Wait until the process answers HTTP on ``port`` (any status)."""
        started = time.monotonic()
        for _ in range(int(timeout / 0.1) + 1):
            if self.process is None or self.process.poll() is not None:
                break
            with contextlib.suppress(OSError, http.client.HTTPException):
                request(port, "GET", "/healthz", timeout=2.0)
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                break
            time.sleep(0.1)
        tail = self.log_tail()
        self.stop()
        raise RuntimeError(f"{self.name} did not answer on port {port}; log:\n{tail}")

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return Path(self.logfile.name).read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        if process is not None and process.stdout is not None:
            process.stdout.close()
        if not self.logfile.closed:
            self.logfile.close()
        with contextlib.suppress(FileNotFoundError):
            Path(self.logfile.name).unlink()

    def __enter__(self) -> Service:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- Load generation ---------------------------------------------------------------


def auth_header(value: str) -> dict[str, str]:
    """The headers of a request authenticated by an ``Authorization`` value."""
    return {"Authorization": value}


def cookie_header(cookies: Mapping[str, str]) -> dict[str, str]:
    """The headers of a request that sends ``cookies`` (e.g. an admin session)."""
    return {"Cookie": "; ".join(f"{name}={value}" for name, value in cookies.items())}


@dataclass
class Scenario:
    """Requests to fire at one server: a method, a body, and (path, headers) targets
    that are used in rotation (e.g. one per thread with its token, so no row is a hot
    spot). The headers are whatever authenticates the request: ``Authorization``, a
    session ``Cookie``."""

    name: str
    port: int
    method: str
    targets: Sequence[tuple[str, Headers]]
    body: Any = None
    expect: int = 200
    connections: int | None = None  # None: the load generator's default
    _file: Path | None = field(default=None, repr=False)

    def request_file(self, directory: Path) -> Path:
        """One line per target for wrk.lua: the path, then one tab-separated
        ``Name: value`` field per header."""
        if self._file is None:
            self._file = directory / f"{self.name}.requests"
            lines = []
            for path, headers in self.targets:
                fields = [path]
                for name, value in headers.items():
                    if "\t" in name + value or "\n" in name + value or ":" in name:
                        raise ValueError(f"header {name!r} cannot be passed to wrk")
                    fields.append(f"{name}: {value}")
                lines.append("\t".join(fields))
            self._file.write_text("\n".join(lines) + "\n")
            body_file = directory / f"{self.name}.body"
            body_file.write_text("" if self.body is None else json.dumps(self.body))
        return self._file


@dataclass
class RoundResult:
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0


class LoadGenerator:
    """wrk when it is installed (a Lua script rotates paths and tokens), else a Python
    client with one keep-alive-capable connection per worker thread."""

    def __init__(self, *, connections: int = 4, use_wrk: bool | None = None) -> None:
        self.connections = connections
        self.wrk = shutil.which("wrk") if use_wrk is not False else None
        self.tmpdir = Path(tempfile.mkdtemp(prefix="supportdesk-bench-load-"))

    @property
    def tool(self) -> str:
        return "wrk" if self.wrk else "python"

    def run(self, scenario: Scenario, seconds: float) -> RoundResult:
        if self.wrk:
            return self._run_wrk(scenario, seconds)
        return self._run_python(scenario, seconds)

    def close(self) -> None:
        shutil.rmtree(self.tmpdir, ignore_errors=True)

    def _run_wrk(self, scenario: Scenario, seconds: float) -> RoundResult:
        assert self.wrk is not None
        requests_file = scenario.request_file(self.tmpdir)
        body_file = requests_file.with_suffix(".body")
        duration = max(1, round(seconds))
        command = [
            self.wrk,
            "-t1",
            f"-c{scenario.connections or self.connections}",
            f"-d{duration}s",
            "--timeout",
            "10s",
            "-s",
            str(WRK_SCRIPT),
            f"http://{HOST}:{scenario.port}",
            "--",
            str(requests_file),
            scenario.method,
            str(body_file),
            str(scenario.expect),
        ]
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=duration + 30, check=False
        )
        stats = None
        for line in result.stdout.splitlines():
            if line.startswith("BENCH_JSON "):
                stats = json.loads(line[len("BENCH_JSON ") :])
        if result.returncode != 0 or stats is None:
            raise RuntimeError(f"wrk failed for {scenario.name}:\n{result.stdout}{result.stderr}")
        return RoundResult(
            requests=int(stats["requests"]),
            seconds=float(stats["duration_us"]) / 1e6,
            errors=int(stats["errors"]) + int(stats["unexpected"]),
            p50_ms=float(stats["p50_us"]) / 1000,
            p99_ms=float(stats["p99_us"]) / 1000,
        )

    def _run_python(self, scenario: Scenario, seconds: float) -> RoundResult:
        payload = None if scenario.body is None else json.dumps(scenario.body).encode()
        latencies: list[float] = []
        errors = [0]
        lock = threading.Lock()
        deadline = time.monotonic() + seconds
        targets = list(scenario.targets)

        def worker(offset: int) -> None:
            conn: http.client.HTTPConnection | None = None
            index = offset
            local: list[float] = []
            bad = 0
            # Bounded by time and, as a backstop, by count.
            for _ in range(1_000_000):
                if time.monotonic() >= deadline:
                    break
                path, target_headers = targets[index % len(targets)]
                index += 1
                headers = dict(target_headers)
                if payload is not None:
                    headers["Content-Type"] = "application/json"
                started = time.perf_counter()
                try:
                    if conn is None:
                        conn = http.client.HTTPConnection(HOST, scenario.port, timeout=10)
                    conn.request(scenario.method, path, body=payload, headers=headers)
                    response = conn.getresponse()
                    response.read()
                    if response.status != scenario.expect:
                        bad += 1
                    if response.will_close:
                        conn.close()
                        conn = None
                except (OSError, http.client.HTTPException):
                    bad += 1
                    if conn is not None:
                        conn.close()
                    conn = None
                    continue
                local.append(time.perf_counter() - started)
            if conn is not None:
                conn.close()
            with lock:
                latencies.extend(local)
                errors[0] += bad

        started = time.monotonic()
        workers = [
            threading.Thread(target=worker, args=(i * 7919,), daemon=True)
            for i in range(scenario.connections or self.connections)
        ]
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join(timeout=seconds + 30)
        elapsed = time.monotonic() - started
        latencies.sort()
        if not latencies:
            return RoundResult(0, elapsed, errors[0], 0.0, 0.0)
        return RoundResult(
            requests=len(latencies),
            seconds=elapsed,
            errors=errors[0],
            p50_ms=latencies[len(latencies) // 2] * 1000,
            p99_ms=latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        )


@dataclass
class Comparison:
    """Throughput of a measured scenario over its baseline, round by round."""

    name: str
    baseline: str
    ratios: list[float] = field(default_factory=list)
    measured_rps: list[float] = field(default_factory=list)
    baseline_rps: list[float] = field(default_factory=list)
    measured_p50: list[float] = field(default_factory=list)
    baseline_p50: list[float] = field(default_factory=list)
    errors: int = 0

    @property
    def median(self) -> float:
        return statistics.median(self.ratios) if self.ratios else float("nan")

    @property
    def spread(self) -> tuple[float, float]:
        return (min(self.ratios), max(self.ratios)) if self.ratios else (0.0, 0.0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "baseline": self.baseline,
            "median_ratio": round(self.median, 3),
            "min_ratio": round(self.spread[0], 3),
            "max_ratio": round(self.spread[1], 3),
            "measured_rps": round(statistics.median(self.measured_rps), 1),
            "baseline_rps": round(statistics.median(self.baseline_rps), 1),
            "measured_p50_ms": round(statistics.median(self.measured_p50), 2),
            "baseline_p50_ms": round(statistics.median(self.baseline_p50), 2),
            "rounds": len(self.ratios),
            "errors": self.errors,
        }


def interleaved(
    load: LoadGenerator,
    pairs: Sequence[tuple[str, Scenario, Scenario]],
    *,
    rounds: int,
    seconds: float,
    warmup_seconds: float = 1.0,
) -> list[Comparison]:
    """Measure every (name, measured, baseline) pair in short alternating rounds.

    Each round runs every distinct scenario once, in an order reversed on odd rounds
    (ABBA), and a ratio is taken within the round, so slow spells of a shared machine
    land on both sides. Returns one Comparison per pair, with per-round ratios.
    """
    scenarios: dict[str, Scenario] = {}
    for _, measured, baseline in pairs:
        scenarios.setdefault(measured.name, measured)
        scenarios.setdefault(baseline.name, baseline)
    order = list(scenarios)
    for name in order:
        warm = load.run(scenarios[name], warmup_seconds)
        log(f"warm-up {name}: {warm.rps:.0f} req/s, {warm.errors} errors")
    comparisons = [Comparison(name, baseline.name) for name, _, baseline in pairs]
    for index in range(rounds):
        results: dict[str, RoundResult] = {}
        for name in order if index % 2 == 0 else reversed(order):
            results[name] = load.run(scenarios[name], seconds)
        summary = ", ".join(f"{name} {results[name].rps:.0f}/s" for name in order)
        log(f"round {index + 1}/{rounds}: {summary}")
        for comparison, (_, measured, baseline) in zip(comparisons, pairs, strict=True):
            m, b = results[measured.name], results[baseline.name]
            comparison.errors += m.errors + b.errors
            if m.rps > 0 and b.rps > 0:
                comparison.ratios.append(m.rps / b.rps)
            comparison.measured_rps.append(m.rps)
            comparison.baseline_rps.append(b.rps)
            comparison.measured_p50.append(m.p50_ms)
            comparison.baseline_p50.append(b.p50_ms)
    return comparisons


@contextlib.contextmanager
def load_generator(connections: int, use_wrk: bool | None) -> Iterator[LoadGenerator]:
    load = LoadGenerator(connections=connections, use_wrk=use_wrk)
    try:
        yield load
    finally:
        load.close()
