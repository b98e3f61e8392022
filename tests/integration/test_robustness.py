"""Robustness of a real shardkv process against hostile or careless clients.

Every test attacks the server through one or more raw "victim" sockets while
a healthy redis-py client works alongside: before each test it stores values,
after it reads them back (they must be intact, on the same connection) and
the server must still answer PING with no victim connection left behind.

Expected replies are Redis's (checked against valkey-server 9.1 and
redis-server 7.0): run with INTEGRATION_TARGET=valkey to see them pass there.
"""

from __future__ import annotations

import random
import socket
import threading
import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .conftest import integration_target

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


class Victim:
    """A raw client socket."""

    def __init__(self, port: int, timeout: float = 5.0):
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_until_closed(self, timeout: float = 5.0) -> tuple[bytes, bool]:
        """Everything received until the server closes the connection; the
        flag is False if it was still open after `timeout` seconds."""
        data = bytearray()
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return bytes(data), False
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(1 << 20)
            except socket.timeout:
                return bytes(data), False
            except (ConnectionResetError, BrokenPipeError):
                return bytes(data), True
            if not chunk:
                return bytes(data), True
            data += chunk

    def read_exactly(self, n: int, timeout: float = 10.0) -> bytes:
        data = bytearray()
        deadline = time.monotonic() + timeout
        while len(data) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(min(1 << 20, n - len(data)))
            except (socket.timeout, ConnectionResetError):
                break
            if not chunk:
                break
            data += chunk
        return bytes(data)

    def nothing_arrives(self, wait: float = 0.3) -> bool:
        """True if the connection stays open and silent for `wait` seconds."""
        self.sock.settimeout(wait)
        try:
            self.sock.recv(1)
        except socket.timeout:
            return True
        except ConnectionResetError:
            return False
        return False   # a reply, or EOF

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def resp(*args) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def connected_clients(r: redis.Redis) -> int:
    return int(r.info("clients")["connected_clients"])


def wait_for_clients(r: redis.Redis, n: int, timeout: float = 5.0) -> int:
    deadline = time.monotonic() + timeout
    count = connected_clients(r)
    while count != n and time.monotonic() < deadline:
        time.sleep(0.02)
        count = connected_clients(r)
    return count


# ---------------------------------------------------------------------------
# the healthy client, checked around every test
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def healthy(shardkv_port):
    # No retries: if the server dropped this connection the test must see it.
    r = redis.Redis(host=HOST, port=shardkv_port, socket_timeout=20,
                    single_connection_client=True, retry=Retry(NoBackoff(), 0))
    r.client_setname("healthy")
    r.healthy_id = r.client_id()
    yield r
    r.close()


@pytest.fixture(autouse=True)
def intact(request, shardkv, healthy):
    rng = random.Random(request.node.name)
    prefix = f"healthy:{request.node.name}:".encode()
    data = {prefix + str(i).encode() + b"\r\n\x00": rng.randbytes(rng.randint(0, 3000)) + b"\x00\r\n"
            for i in range(20)}
    assert healthy.mset(data)
    healthy.set(prefix + b"counter", 41)
    yield data
    assert shardkv.alive(), "the server process died:\n" + shardkv.output()[-3000:]
    assert healthy.ping() is True
    assert healthy.client_id() == healthy.healthy_id, "the healthy connection was replaced"
    assert healthy.mget(list(data)) == list(data.values())
    assert healthy.incr(prefix + b"counter") == 42
    assert wait_for_clients(healthy, 1) == 1, healthy.client_list()
    healthy.delete(*data, prefix + b"counter")


# ---------------------------------------------------------------------------
# malformed RESP
# ---------------------------------------------------------------------------

PROTOCOL_ERRORS = [
    pytest.param(b"*abc\r\n", "invalid multibulk length", id="multibulk-not-a-number"),
    pytest.param(b"*1 \r\n", "invalid multibulk length", id="multibulk-trailing-space"),
    pytest.param(b"*2147483648\r\n", "invalid multibulk length", id="multibulk-over-int-max"),
    pytest.param(b"*1\r\n$x\r\n", "invalid bulk length", id="bulk-not-a-number"),
    pytest.param(b"*1\r\n$-1\r\n", "invalid bulk length", id="bulk-negative"),
    pytest.param(b"*1\r\n$+4\r\nPING\r\n", "invalid bulk length", id="bulk-plus-sign"),
    pytest.param(b"*1\r\nfoo\r\n", "expected '$', got 'f'", id="expected-dollar"),
    pytest.param(b"*2\r\n$4\r\nECHO\r\n:1\r\n", "expected '$', got ':'", id="expected-dollar-2nd"),
    pytest.param(b"*1\r\n$999999999999\r\n", "invalid bulk length", id="bulk-over-proto-max-bulk-len"),
    pytest.param(b"*1\r\n$536870913\r\n", "invalid bulk length", id="bulk-512mb-plus-one"),
    pytest.param(b'SET "abc def\r\n', "unbalanced quotes in request", id="inline-unbalanced-double"),
    pytest.param(b"SET 'abc def\r\n", "unbalanced quotes in request", id="inline-unbalanced-single"),
    pytest.param(b"A" * 70_000, "too big inline request", id="inline-70kb-no-newline"),
    pytest.param(b"SET k " + b"v" * 70_000, "too big inline request", id="inline-70kb-set"),
    pytest.param(b"*1\r\n$" + b"1" * 70_000, "too big bulk count string", id="bulk-count-70kb"),
    pytest.param(b"*" + b"1" * 70_000, "too big mbulk count string", id="mbulk-count-70kb"),
]


@pytest.mark.parametrize("payload, reason", PROTOCOL_ERRORS)
def test_protocol_error_replies_and_closes(shardkv_port, payload, reason):
    with Victim(shardkv_port) as v:
        v.send(payload)
        data, closed = v.read_until_closed()
    assert data == b"-ERR Protocol error: " + reason.encode() + b"\r\n"
    assert closed, "the server must close the connection after a protocol error"


def test_commands_before_bad_bytes_are_executed_first(shardkv_port, healthy):
    key = b"robust:before-bad"
    healthy.delete(key)
    with Victim(shardkv_port) as v:
        # inline and multibulk commands, then garbage, then a command that must not run
        v.send(b"SET robust:before-bad 1\r\nINCR robust:before-bad\r\n"
               + resp("INCR", key) + resp("PING") + b"*abc\r\n" + resp("INCR", key) + b"PING\r\n")
        data, closed = v.read_until_closed()
    assert data == b"+OK\r\n:2\r\n:3\r\n+PONG\r\n-ERR Protocol error: invalid multibulk length\r\n"
    assert closed
    assert healthy.get(key) == b"3"

    with Victim(shardkv_port) as v:
        v.send(resp("INCR", key) + b"*1\r\nfoo\r\n" + resp("INCR", key))
        data, closed = v.read_until_closed()
    assert data == b":4\r\n-ERR Protocol error: expected '$', got 'f'\r\n"
    assert closed
    assert healthy.get(key) == b"4"
    healthy.delete(key)


def test_commands_split_across_packets_before_error(shardkv_port, healthy):
    key = b"robust:split"
    healthy.delete(key)
    with Victim(shardkv_port) as v:
        whole = resp("SET", key, "x" * 100) + resp("APPEND", key, "yz")
        for i in range(0, len(whole), 7):
            v.send(whole[i:i + 7])
            time.sleep(0.001)
        v.send(b"*1\r\n$x\r\n")
        data, closed = v.read_until_closed()
    assert data == b"+OK\r\n:102\r\n-ERR Protocol error: invalid bulk length\r\n"
    assert closed
    assert healthy.get(key) == b"x" * 100 + b"yz"
    healthy.delete(key)


def test_huge_announced_lengths_do_not_allocate(shardkv, shardkv_port, healthy):
    before = shardkv.rss_kb()
    with Victim(shardkv_port) as v:
        v.send(b"*1\r\n$999999999999\r\n")
        data, closed = v.read_until_closed()
    assert data == b"-ERR Protocol error: invalid bulk length\r\n" and closed

    # Within the limits but never sent: the server must wait for the bytes
    # without setting the announced amount aside.
    victims = [Victim(shardkv_port) for _ in range(4)]
    try:
        victims[0].send(b"*2\r\n$3\r\nSET\r\n$400000000\r\nabc")       # 400 MB bulk
        victims[1].send(b"*2000000000\r\n$4\r\nPING\r\n")             # 2e9 arguments
        victims[2].send(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$536870912\r\n")  # exactly 512 MB
        victims[3].send(b"*1048576\r\n")
        for v in victims:
            assert v.nothing_arrives(0.2), "no reply is due before the data has arrived"
        assert healthy.ping()
        after = shardkv.rss_kb()
        assert after - before < 32 * 1024, f"RSS grew from {before} kB to {after} kB"
    finally:
        for v in victims:
            v.close()
    assert shardkv.rss_kb() - before < 32 * 1024


def test_lowered_proto_max_bulk_len(shardkv_port, healthy):
    healthy.config_set("proto-max-bulk-len", "1mb")
    try:
        with Victim(shardkv_port) as v:
            v.send(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1048577\r\n")
            data, closed = v.read_until_closed()
        assert data == b"-ERR Protocol error: invalid bulk length\r\n" and closed
        with Victim(shardkv_port) as v:
            value = b"v" * (1024 * 1024)
            v.send(resp("SET", "robust:1mb", value) + resp("STRLEN", "robust:1mb"))
            assert v.read_exactly(len(b"+OK\r\n:1048576\r\n")) == b"+OK\r\n:1048576\r\n"
    finally:
        healthy.config_set("proto-max-bulk-len", "512mb")
        healthy.delete("robust:1mb")


def test_unbalanced_quotes_in_inline_command(shardkv_port, healthy):
    with Victim(shardkv_port) as v:
        v.send(b'SET robust:q "ok"\r\nSET robust:q "bad\r\nSET robust:q later\r\n')
        data, closed = v.read_until_closed()
    assert data == b"+OK\r\n-ERR Protocol error: unbalanced quotes in request\r\n"
    assert closed
    assert healthy.get("robust:q") == b"ok"
    # balanced quotes and escapes are fine
    with Victim(shardkv_port) as v:
        v.send(b'SET robust:q "a\\r\\n\\x00b" \r\nGET robust:q\r\nECHO \'it\\\'s\'\r\n')
        assert v.read_exactly(len(b"+OK\r\n$5\r\na\r\n\x00b\r\n$4\r\nit's\r\n")) == \
            b"+OK\r\n$5\r\na\r\n\x00b\r\n$4\r\nit's\r\n"
    healthy.delete("robust:q")


# ---------------------------------------------------------------------------
# truncated commands, random bytes
# ---------------------------------------------------------------------------


def test_truncated_commands_then_disconnect(shardkv_port, healthy):
    key = b"robust:truncated"
    healthy.delete(key)
    full = resp("SET", key, "value")
    payloads = [full[:i] for i in range(1, len(full))]
    payloads += [b"SET robust:truncated value", b"SET robust:truncated value\r"]
    payloads += [resp("PING") + full[:i] for i in (5, 20, len(full) - 1)]
    for payload in payloads:
        with Victim(shardkv_port) as v:
            v.send(payload)
    # half-closed: the server sees EOF while the command is incomplete
    for payload in payloads[::5]:
        with Victim(shardkv_port) as v:
            v.send(payload)
            v.sock.shutdown(socket.SHUT_WR)
            data, closed = v.read_until_closed()
            assert closed
            assert data in (b"", b"+PONG\r\n")
    assert healthy.exists(key) == 0, "a truncated SET must never run"
    assert wait_for_clients(healthy, 1) == 1


SAFE_COMMANDS = [
    [b"SET", b"fuzz:a", b"hello"], [b"GET", b"fuzz:a"], [b"INCR", b"fuzz:n"],
    [b"APPEND", b"fuzz:s", b"xy"], [b"ECHO", b"\r\n\x00"], [b"PING"],
    [b"MGET", b"fuzz:a", b"fuzz:b"], [b"STRLEN", b"fuzz:s"], [b"EXISTS", b"fuzz:a"],
    [b"GETRANGE", b"fuzz:a", b"0", b"-1"], [b"DEL", b"fuzz:b"], [b"TTL", b"fuzz:a"],
]
PROTO_TOKENS = [b"*", b"$", b"\r\n", b"\r", b"\n", b"-1", b"0", b"1", b"3", b"99999", b"\"", b"'",
                b"\\x", b" ", b"\x00", b"PING", b"SET", b"GET", b"fuzz:k", b"*2\r\n", b"$4\r\n"]


def fuzz_case(rng: random.Random) -> bytes:
    kind = rng.randrange(4)
    if kind == 0:    # plain random bytes
        return rng.randbytes(rng.randint(1, 3000))
    if kind == 1:    # protocol-looking tokens
        return b"".join(rng.choice(PROTO_TOKENS) for _ in range(rng.randint(1, 60)))
    # mutated valid commands (multibulk or inline)
    cmds = [rng.choice(SAFE_COMMANDS) for _ in range(rng.randint(1, 8))]
    if kind == 2:
        data = bytearray(b"".join(resp(*c) for c in cmds))
    else:
        data = bytearray(b"".join(b" ".join(c).replace(b"\r\n\x00", b"x") + b"\r\n" for c in cmds))
    for _ in range(rng.randint(1, 5)):
        op = rng.randrange(5)
        pos = rng.randrange(len(data) + 1)
        if op == 0 and data:
            data[min(pos, len(data) - 1)] = rng.randrange(256)
        elif op == 1:
            data[pos:pos] = rng.randbytes(rng.randint(1, 8))
        elif op == 2:
            del data[pos:pos + rng.randint(1, 8)]
        elif op == 3:
            data[pos:pos] = rng.choice(PROTO_TOKENS)
        else:
            del data[pos:]
    return bytes(data) or b"\x00"


@pytest.mark.parametrize("seed", range(4))
def test_random_bytes_on_fresh_connections(shardkv, shardkv_port, healthy, seed):
    rng = random.Random(1000 + seed)
    for case in range(50):
        payload = fuzz_case(rng)
        with Victim(shardkv_port) as v:
            try:
                v.send(payload)
                v.sock.shutdown(socket.SHUT_WR)
            except (BrokenPipeError, ConnectionResetError):
                pass   # the server may already have closed on a protocol error
            _, closed = v.read_until_closed(5.0)
        assert closed, f"seed {seed} case {case}: connection not closed after EOF: {payload[:200]!r}"
        assert shardkv.alive(), f"seed {seed} case {case} killed the server: {payload[:200]!r}"
        if case % 10 == 9:
            assert healthy.ping()


# ---------------------------------------------------------------------------
# pipelines and slow readers
# ---------------------------------------------------------------------------


def _send_in_thread(v: Victim, data: bytes) -> threading.Thread:
    t = threading.Thread(target=v.send, args=(data,), daemon=True)
    t.start()
    return t


def test_huge_pipeline_multibulk(shardkv_port, healthy):
    key = b"robust:pipeline"
    healthy.delete(key)
    n = 10_000
    expected = b"".join(b":%d\r\n" % i for i in range(1, n + 1))
    with Victim(shardkv_port) as v:
        t = _send_in_thread(v, resp("INCR", key) * n)
        got = v.read_exactly(len(expected), timeout=30)
        t.join(5)
    assert len(got) == len(expected)
    assert got == expected
    assert healthy.get(key) == b"%d" % n
    healthy.delete(key)


def test_huge_pipeline_inline_and_mixed(shardkv_port, healthy):
    n = 10_000
    payload = b"".join(b"PING\r\n" if i % 2 else resp("ECHO", b"e%d" % i) for i in range(n))
    expected = b"".join(b"+PONG\r\n" if i % 2 else b"$%d\r\ne%d\r\n" % (len(b"e%d" % i), i)
                        for i in range(n))
    with Victim(shardkv_port) as v:
        t = _send_in_thread(v, payload)
        got = v.read_exactly(len(expected), timeout=30)
        t.join(5)
    assert got == expected


def test_client_that_never_reads_large_replies(shardkv, shardkv_port, healthy):
    key = b"robust:1mb"
    healthy.set(key, b"\xab" * (1024 * 1024))
    victim = Victim(shardkv_port)
    try:
        victim.send(resp("GET", key) * 64)      # 64 MB of replies, never read
        time.sleep(0.2)
        worst = 0.0
        for i in range(50):
            t0 = time.monotonic()
            assert healthy.set(b"robust:slow:%d" % i, i)
            assert healthy.get(b"robust:slow:%d" % i) == b"%d" % i
            assert healthy.ping()
            worst = max(worst, time.monotonic() - t0)
        assert worst < 2.0, f"the healthy client waited {worst:.2f}s for a reply"
        # no output limit for normal clients by default: the reader stays connected
        assert connected_clients(healthy) == 2
    finally:
        victim.close()
    assert wait_for_clients(healthy, 1) == 1
    # the buffered replies die with the connection: more such clients, one
    # after the other, do not make the server grow
    rss = []
    for _ in range(3):
        with Victim(shardkv_port) as v:
            v.send(resp("GET", key) * 64)
            assert healthy.ping()
            time.sleep(0.2)
        assert wait_for_clients(healthy, 1) == 1
        rss.append(shardkv.rss_kb())
    assert rss[-1] - rss[0] < 32 * 1024, f"RSS kept growing: {rss} kB"
    healthy.delete(key, *[b"robust:slow:%d" % i for i in range(50)])


def test_output_buffer_limit_disconnects_slow_reader(shardkv_port, healthy):
    key = b"robust:100kb"
    healthy.set(key, b"z" * 100_000)
    healthy.config_set("client-output-buffer-limit", "normal 1mb 0 0")
    try:
        assert "normal 1048576 0 0" in healthy.config_get("client-output-buffer-limit")[
            "client-output-buffer-limit"]
        with Victim(shardkv_port) as v:
            v.send(resp("GET", key) * 200)          # 20 MB of replies
            # the healthy client carries on while the victim is being dropped
            for i in range(20):
                assert healthy.incr(b"robust:obuf:ctr") == i + 1
            assert wait_for_clients(healthy, 1) == 1, "the slow reader must be disconnected"
            data, closed = v.read_until_closed(10)
        assert closed
        assert len(data) < 200 * 100_000, "the server sent every reply despite the limit"
    finally:
        healthy.config_set("client-output-buffer-limit", "normal 0 0 0")
        healthy.delete(key, b"robust:obuf:ctr")
    # a client reading normally is not affected by the restored limit
    with Victim(shardkv_port) as v:
        v.send(resp("ECHO", b"q" * 2_000_000))
        assert v.read_exactly(2_000_000 + 12) == b"$2000000\r\n" + b"q" * 2_000_000 + b"\r\n"


def test_output_buffer_limit_bounds_memory(start_shardkv):
    """The hard limit is enforced as replies are added, as Redis does, not
    after a whole batch of pipelined commands has been answered: 400 GETs of
    a 600 KB value arrive in one 14 KB read and must not cost 240 MB. (A
    server of its own, so that the peak RSS is this test's.)"""
    srv = start_shardkv(["--bind", HOST], target=integration_target())
    r = redis.Redis(host=HOST, port=srv.port, socket_timeout=20)
    try:
        key = b"robust:obuf:600kb"
        value = b"m" * 600_000
        r.set(key, value)
        r.config_set("client-output-buffer-limit", "normal 1mb 0 0")
        before = srv.rss_kb()
        with Victim(srv.port) as v:
            v.send(resp("GET", key) * 400)
            data, closed = v.read_until_closed(10)
        assert closed
        assert len(data) < 400 * 600_000
        assert wait_for_clients(r, 1) == 1
        assert r.get(key) == value   # a reader under the limit is fine
        grown = srv.peak_rss_kb() - before
        assert grown < 64 * 1024, f"peak RSS grew by {grown // 1024} MB with a 1 MB output limit"
    finally:
        r.close()


def test_query_buffer_limit_disconnects(shardkv_port, healthy):
    healthy.config_set("client-query-buffer-limit", "1mb")
    try:
        # a 3 MB bulk of which 1.5 MB arrive, then a complete 1.5 MB one
        for payload in (b"*3\r\n$3\r\nSET\r\n$13\r\nrobust:qbuf:a\r\n$3000000\r\n" + b"a" * 1_500_000,
                        resp("SET", "robust:qbuf:b", b"b" * 1_500_000)):
            with Victim(shardkv_port) as v:
                try:
                    v.send(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                data, closed = v.read_until_closed(5)
            assert closed and data == b""
            assert healthy.ping()
        assert wait_for_clients(healthy, 1) == 1
        assert healthy.exists("robust:qbuf:a", "robust:qbuf:b") == 0
    finally:
        healthy.config_set("client-query-buffer-limit", "1gb")


# ---------------------------------------------------------------------------
# connections, binary data
# ---------------------------------------------------------------------------


def test_connect_and_disconnect_200_times(shardkv_port, healthy):
    before = int(healthy.info("stats")["total_connections_received"])
    for i in range(200):
        s = socket.create_connection((HOST, shardkv_port), timeout=5)
        try:
            if i % 3 == 0:
                s.sendall(b"PING\r\n")
                assert s.recv(7) == b"+PONG\r\n"
            elif i % 3 == 1:
                s.sendall(resp("SET", b"robust:conn", i))
        finally:
            if i % 7 == 0:   # an abortive close (RST) now and then
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.close()
    assert wait_for_clients(healthy, 1) == 1
    after = int(healthy.info("stats")["total_connections_received"])
    # valkey does not count a connection reset before it was set up, so not == 200
    assert after - before > 150
    healthy.delete("robust:conn")


def test_disconnect_inside_multi_and_watch(shardkv_port, healthy):
    key = b"robust:multi"
    healthy.set(key, b"before")
    with Victim(shardkv_port) as v:
        v.send(resp("WATCH", key) + resp("MULTI") + resp("SET", key, "queued")
               + resp("INCR", "robust:multi:n"))
        assert v.read_exactly(len(b"+OK\r\n+OK\r\n+QUEUED\r\n+QUEUED\r\n")) == \
            b"+OK\r\n+OK\r\n+QUEUED\r\n+QUEUED\r\n"
        # EXEC never comes: the connection goes away (abortively)
        v.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    assert wait_for_clients(healthy, 1) == 1
    assert healthy.get(key) == b"before", "a transaction without EXEC must not run"
    assert healthy.exists("robust:multi:n") == 0
    # the dead client's WATCH is gone: touching the key is harmless
    assert healthy.set(key, b"after")
    with Victim(shardkv_port) as v:
        v.send(resp("MULTI") + resp("SET", key, "x") + b"*1\r\n$x\r\n" + resp("EXEC"))
        data, closed = v.read_until_closed()
    assert data == b"+OK\r\n+QUEUED\r\n-ERR Protocol error: invalid bulk length\r\n" and closed
    assert healthy.get(key) == b"after"
    healthy.delete(key)


def test_maxclients_reached(shardkv_port, healthy):
    healthy.config_set("maxclients", "4")
    others = []
    try:
        others = [Victim(shardkv_port) for _ in range(3)]
        for v in others:
            v.send(b"PING\r\n")
            assert v.read_exactly(7) == b"+PONG\r\n"
        with Victim(shardkv_port) as v:
            v.send(b"PING\r\n")
            data, closed = v.read_until_closed()
        assert data == b"-ERR max number of clients reached\r\n" and closed
    finally:
        for v in others:
            v.close()
        healthy.config_set("maxclients", "10000")
    assert wait_for_clients(healthy, 1) == 1
    with Victim(shardkv_port) as v:
        v.send(b"PING\r\n")
        assert v.read_exactly(7) == b"+PONG\r\n"


def test_binary_keys_and_values_round_trip(shardkv_port, healthy):
    every_byte = bytes(range(256))
    pairs = {
        b"bin:\r\n": b"\r\n",
        b"bin:\x00": b"\x00",
        b"\x00\r\n\x00": b"value\r\nwith\x00nul",
        b"bin:all" + every_byte: every_byte * 4,
        b"bin:crlf-only": b"\r\n" * 1000,
        b"bin:star": b"*1\r\n$4\r\nPING\r\n",
        b"bin:empty": b"",
    }
    for k, val in pairs.items():
        assert healthy.set(k, val)
    assert healthy.mget(list(pairs)) == list(pairs.values())
    for k, val in pairs.items():
        assert healthy.strlen(k) == len(val)
        assert healthy.exists(k) == 1
    assert healthy.append(b"bin:\x00", b"\r\n\x00") == 4
    assert healthy.get(b"bin:\x00") == b"\x00\r\n\x00"
    assert healthy.getrange(b"bin:all" + every_byte, 10, 13) == bytes([10, 11, 12, 13])
    # the same through a raw multibulk request
    with Victim(shardkv_port) as v:
        v.send(resp("SET", b"\r\n\x00raw", b"\x00\r\n") + resp("GET", b"\r\n\x00raw"))
        assert v.read_exactly(len(b"+OK\r\n$3\r\n\x00\r\n\r\n")) == b"+OK\r\n$3\r\n\x00\r\n\r\n"
    assert healthy.get(b"\r\n\x00raw") == b"\x00\r\n"
    healthy.delete(*pairs, b"\r\n\x00raw")


# ---------------------------------------------------------------------------
# requirepass
# ---------------------------------------------------------------------------


def test_requirepass(shardkv_port, healthy):
    healthy.set("robust:auth", "guarded")
    healthy.config_set("requirepass", "secret")
    try:
        with Victim(shardkv_port) as v:
            v.send(b"GET robust:auth\r\n")
            assert v.read_exactly(34) == b"-NOAUTH Authentication required.\r\n"
            v.send(resp("GET", "robust:auth"))
            assert v.read_exactly(34) == b"-NOAUTH Authentication required.\r\n"
            # at the limits (10 arguments, 16 KB bulks) the command is parsed and refused
            v.send(resp("MSET", *[b"robust:auth:x"] * 9) + resp("ECHO", b"e" * 16384))
            assert v.read_exactly(68) == b"-NOAUTH Authentication required.\r\n" * 2
            v.send(b"*20\r\n")
            data, closed = v.read_until_closed()
        assert data == b"-ERR Protocol error: unauthenticated multibulk length\r\n"
        assert closed
        with Victim(shardkv_port) as v:
            v.send(b"*2\r\n$3\r\nGET\r\n$20000\r\n")
            data, closed = v.read_until_closed()
        assert data == b"-ERR Protocol error: unauthenticated bulk length\r\n"
        assert closed
        with Victim(shardkv_port) as v:
            v.send(resp("AUTH", "wrong"))
            expected = b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
            assert v.read_exactly(len(expected)) == expected
            v.send(resp("AUTH", "secret") + resp("GET", "robust:auth"))
            assert v.read_exactly(18) == b"+OK\r\n$7\r\nguarded\r\n"
            # authenticated: long requests are fine again
            args = [b"MSET"] + [b"robust:auth:%d" % (i // 2) for i in range(20)]
            v.send(resp(*args) + resp("ECHO", b"e" * 20000))
            assert v.read_exactly(5 + 20000 + 10) == b"+OK\r\n$20000\r\n" + b"e" * 20000 + b"\r\n"
        # the already-connected healthy client stays authenticated
        assert healthy.get("robust:auth") == b"guarded"
        authed = redis.Redis(host=HOST, port=shardkv_port, password="secret", socket_timeout=10)
        try:
            assert authed.get("robust:auth") == b"guarded"
        finally:
            authed.close()
    finally:
        healthy.config_set("requirepass", "")
    with Victim(shardkv_port) as v:
        v.send(b"GET robust:auth\r\n")
        assert v.read_exactly(13) == b"$7\r\nguarded\r\n"
    healthy.delete("robust:auth", *[b"robust:auth:%d" % i for i in range(10)])
