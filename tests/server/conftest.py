"""kinfer-server's end-to-end suite: real server processes, the real openai client.

Environment:
  KINFER_SERVER_BIN   the server binary (default build/bin/kinfer-server)
  KINFER_CLI_BIN      kinfer-cli, for the greedy reference text
                      (default: kinfer-cli next to the server binary)
  KINFER_SYNTH_BIN    synth-model, for test_infill.py's FIM model (default: next to the server)
  KINFER_MODELS_DIR   where SmolLM2-135M-Instruct.Q4_1.gguf is (default models/)
  KINFER_TEST_SLOW    a factor for every timeout (set it >1 under sanitizers;
                      the suite sets 3 by itself when the binary has ASan in it)

Each server is started on a free loopback port (--port 0; the port is read from
its stderr), waited for until GET /health answers 200, and at teardown sent
SIGTERM: it must exit 0 (under ASan a leak makes the exit status nonzero).
"""

import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest

ROOT = Path(__file__).resolve().parents[2]
MODEL_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
ALIAS = "smollm2-test"


def _path(env, default):
    p = Path(os.environ.get(env, default))
    return p if p.is_absolute() else ROOT / p


SERVER_BIN = _path("KINFER_SERVER_BIN", "build/bin/kinfer-server")
CLI_BIN = _path("KINFER_CLI_BIN", str(SERVER_BIN.parent / "kinfer-cli"))
MODELS_DIR = _path("KINFER_MODELS_DIR", "models")
MODEL = MODELS_DIR / MODEL_NAME
GEMMA = MODELS_DIR / "gemma-3-270m-q4_k_m.gguf"


def _has_sanitizer(binary, init):
    try:
        return init in binary.read_bytes()
    except OSError:
        return False


ASAN = _has_sanitizer(SERVER_BIN, b"__asan_init")
TSAN = _has_sanitizer(SERVER_BIN, b"__tsan_init")
SLOW = float(os.environ.get("KINFER_TEST_SLOW", "5" if TSAN else "3" if ASAN else "1"))


def timeout(seconds):
    """A wall-clock bound scaled for slow (sanitizer) builds."""
    return seconds * SLOW


SANITIZER_ENV = {
    # a leak or an error makes the server's exit status nonzero: the teardown sees it
    "ASAN_OPTIONS": "detect_leaks=1:halt_on_error=1:abort_on_error=0:exitcode=23",
    "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1:exitcode=24",
    "LSAN_OPTIONS": "exitcode=23",
    "TSAN_OPTIONS": "halt_on_error=1:exitcode=25",
}


class Server:
    """One kinfer-server process on a free loopback port."""

    def __init__(self, *args, name="server", models=None):
        """models: the flags that give the models (default: -m SmolLM2)."""
        models = ["-m", str(MODEL)] if models is None else list(map(str, models))
        self.args = [str(SERVER_BIN), *models, "--port", "0", "-t", "2", *map(str, args)]
        self.name = name
        self.stderr_lines = []
        self.proc = None
        self.port = None
        self.saw_503_before_ready = False

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def stderr_tail(self, n=40):
        return "\n".join(self.stderr_lines[-n:])

    def _read_stderr(self):
        for raw in self.proc.stderr:
            self.stderr_lines.append(raw.decode("utf-8", "replace").rstrip("\n"))

    def start(self):
        env = dict(os.environ, **SANITIZER_ENV)
        env.pop("KINFER_API_KEY", None)
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, env=env)
        threading.Thread(target=self._read_stderr, daemon=True).start()
        deadline = time.monotonic() + timeout(30)
        while self.port is None:
            for line in list(self.stderr_lines):
                m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
                if m:
                    self.port = int(m.group(1))
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.proc.returncode} before listening:\n"
                                   + self.stderr_tail())
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"{self.name} printed no 'listening on' line:\n" + self.stderr_tail())
            time.sleep(0.02)
        while True:
            try:
                r = httpx.get(self.url + "/health", timeout=5)
                if r.status_code == 200:
                    return self
                if r.status_code == 503:
                    self.saw_503_before_ready = True
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.proc.returncode} while loading:\n"
                                   + self.stderr_tail())
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"{self.name}: /health not 200 in time:\n" + self.stderr_tail())
            time.sleep(0.05)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self):
        """SIGTERM; returns the exit status (None: it had to be killed)."""
        if self.proc.poll() is not None:
            return self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout(20))
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    # -- helpers -------------------------------------------------------------------
    def http(self, **kw):
        return httpx.Client(base_url=self.url, timeout=timeout(60), **kw)

    def post(self, path, body=None, **kw):
        with self.http() as c:
            return c.post(path, json=body, **kw)

    def get(self, path, **kw):
        with self.http() as c:
            return c.get(path, **kw)

    def tokenize(self, text, add_special=False, headers=None, model=None):
        body = {"content": text, "add_special": add_special}
        if model:
            body["model"] = model
        r = self.post("/tokenize", body, headers=headers)
        assert r.status_code == 200, r.text
        return r.json()["tokens"]

    def slots(self, headers=None):
        r = self.get("/slots", headers=headers)
        assert r.status_code == 200, r.text
        return r.json()

    def wait_idle(self, seconds=5, headers=None):
        """True once every slot is idle (within seconds, scaled)."""
        deadline = time.monotonic() + timeout(seconds)
        while time.monotonic() < deadline:
            if not any(s["is_processing"] for s in self.slots(headers)):
                return True
            time.sleep(0.05)
        return False

    def openai(self, api_key="none", cls=openai.OpenAI):
        # max_retries=0: the client must not hide a 503 or a 5xx behind retries
        return cls(base_url=self.url + "/v1", api_key=api_key, max_retries=0, timeout=timeout(60))


def _server_fixture(*args, name):
    if not MODEL.is_file():
        pytest.skip(f"kinfer-server tests need {MODEL} (make models, or set KINFER_MODELS_DIR)")
    if not SERVER_BIN.is_file():
        pytest.fail(f"no server binary at {SERVER_BIN} (make build/bin/kinfer-server, or set KINFER_SERVER_BIN)")
    srv = Server(*args, name=name).start()
    try:
        yield srv
    finally:
        status = srv.stop()
        tail = srv.stderr_tail()
        assert status == 0, f"{name} exited {status} after SIGTERM (a leak under ASan?):\n{tail}"
        assert not any("ERROR: AddressSanitizer" in l or "runtime error:" in l or
                       "WARNING: ThreadSanitizer" in l for l in srv.stderr_lines), tail


@pytest.fixture(scope="session")
def server():
    """The main server: 4 slots of 1024 tokens, metrics on, an alias."""
    yield from _server_fixture("-np", 4, "-c", 4096, "--metrics", "-a", ALIAS, name="server")


@pytest.fixture(scope="session")
def auth_server():
    """--api-key, no --metrics."""
    yield from _server_fixture("-np", 1, "-c", 512, "--api-key", "sekrit", name="auth_server")


@pytest.fixture(scope="session")
def tight_server():
    """One slot, a one-request queue, a 2 KiB body limit."""
    yield from _server_fixture("-np", 1, "-c", 512, "--max-queue", 1, "--max-body", 2048, "--metrics",
                               name="tight_server")


@pytest.fixture(scope="session")
def client(server):
    with server.openai() as c:
        yield c


@pytest.fixture(scope="session")
def cli_greedy():
    """kinfer-cli's greedy text for a prompt (memoized): the reference the server must match."""
    cache = {}

    def run(prompt, n):
        if (prompt, n) not in cache:
            if not CLI_BIN.is_file():
                pytest.fail(f"no kinfer-cli at {CLI_BIN} (set KINFER_CLI_BIN)")
            out = subprocess.run([str(CLI_BIN), "-m", str(MODEL), "-p", prompt, "-n", str(n), "--temp", "0",
                                  "--no-display-prompt", "-t", "2"],
                                 capture_output=True, env=dict(os.environ, **SANITIZER_ENV),
                                 timeout=timeout(60), check=True)
            text = out.stdout.decode("utf-8")
            assert text.endswith("\n")  # kinfer-cli ends its output with one newline
            cache[(prompt, n)] = text[:-1]
        return cache[(prompt, n)]

    return run


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory):
    """A --models-dir: SmolLM2 and Gemma 3 (symlinks), a truncated .gguf, and a
    models.json giving SmolLM2 an alias."""
    for m in (MODEL, GEMMA):
        if not m.is_file():
            pytest.skip(f"the router tests need {m} (make models, or set KINFER_MODELS_DIR)")
    d = tmp_path_factory.mktemp("models")
    (d / "smollm2.gguf").symlink_to(MODEL)
    (d / "gemma3.gguf").symlink_to(GEMMA)
    (d / "broken.gguf").write_bytes(MODEL.read_bytes()[:100000])  # a truncated copy
    (d / "models.json").write_text('{"smollm2": {"aliases": ["smol"], "keep_alive": "10m"}}')
    return d


def start_server(*args, name, models):
    """A server for one test (the caller stops it with stop_server)."""
    if not SERVER_BIN.is_file():
        pytest.fail(f"no server binary at {SERVER_BIN}")
    return Server(*args, name=name, models=models).start()


def stop_server(srv):
    status = srv.stop()
    tail = srv.stderr_tail()
    assert status == 0, f"{srv.name} exited {status} after SIGTERM (a leak under ASan?):\n{tail}"
    assert not any("ERROR: AddressSanitizer" in l or "runtime error:" in l or
                   "WARNING: ThreadSanitizer" in l for l in srv.stderr_lines), tail


@pytest.fixture(scope="session")
def router_server(models_dir):
    """--models-dir with room for both models: 2 slots of 512 tokens each."""
    srv = start_server("-np", 2, "-c", 1024, "--metrics", name="router_server", models=["--models-dir", models_dir])
    try:
        yield srv
    finally:
        stop_server(srv)
