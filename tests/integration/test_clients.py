"""Real client programs against a real shardkv process: redis-py (RESP2 and
RESP3, pipelines, optimistic locking), redis-cli and redis-benchmark."""

from __future__ import annotations

import re
import shutil
import subprocess
import threading

import pytest
import redis

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"


@pytest.fixture
def r(shardkv_port):
    client = redis.Redis(host=HOST, port=shardkv_port, socket_timeout=10)
    yield client
    client.close()


@pytest.fixture
def r3(shardkv_port):
    client = redis.Redis(host=HOST, port=shardkv_port, socket_timeout=10, protocol=3)
    yield client
    client.close()


# ---------------------------------------------------------------------------
# redis-py
# ---------------------------------------------------------------------------


def test_redis_py_basic_commands(r):
    r.delete("cl:k", "cl:n")
    assert r.set("cl:k", "v") is True
    assert r.get("cl:k") == b"v"
    assert r.set("cl:k", "w", nx=True) is None
    assert r.set("cl:k", "w", xx=True, get=True) == b"v"
    assert r.incr("cl:n") == 1
    assert r.incrby("cl:n", 41) == 42
    assert r.decr("cl:n") == 41
    assert r.append("cl:k", "xyz") == 4
    assert r.mget("cl:k", "cl:n", "cl:missing") == [b"wxyz", b"41", None]
    assert r.expire("cl:k", 100) is True
    assert 0 < r.ttl("cl:k") <= 100
    assert r.exists("cl:k", "cl:n", "cl:missing") == 2
    with pytest.raises(redis.ResponseError, match="not an integer"):
        r.incr("cl:k")
    assert r.delete("cl:k", "cl:n") == 2
    decoded = redis.Redis(host=HOST, port=r.connection_pool.connection_kwargs["port"],
                          decode_responses=True)
    try:
        assert decoded.set("cl:ü", "wert ü") and decoded.get("cl:ü") == "wert ü"
        decoded.delete("cl:ü")
    finally:
        decoded.close()


@pytest.mark.parametrize("transaction", [True, False])
def test_redis_py_pipeline(r, transaction):
    key = f"cl:pipe:{transaction}"
    r.delete(key, key + ":s")
    pipe = r.pipeline(transaction=transaction)
    pipe.set(key + ":s", "a").append(key + ":s", "bc").get(key + ":s")
    for _ in range(100):
        pipe.incr(key)
    pipe.get(key)
    result = pipe.execute()
    assert result[:3] == [True, 3, b"abc"]
    assert result[3:103] == list(range(1, 101))
    assert result[103] == b"100"
    # an error inside the pipeline is reported in place
    pipe = r.pipeline(transaction=transaction)
    pipe.set(key + ":s", "text").incr(key + ":s").get(key + ":s")
    res = pipe.execute(raise_on_error=False)
    assert res[0] is True and isinstance(res[1], redis.ResponseError) and res[2] == b"text"
    r.delete(key, key + ":s")


def test_redis_py_transaction_aborts_on_queue_error(r):
    # a syntax error while queueing discards the whole transaction (EXECABORT)
    r.delete("cl:abort")
    with r.pipeline(transaction=True) as pipe:
        pipe.set("cl:abort", "1")
        pipe.execute_command("SET", "cl:abort")          # wrong number of arguments
        with pytest.raises(redis.ResponseError):
            pipe.execute()
    assert r.get("cl:abort") is None


def test_watch_multi_exec_conflict_then_retry(shardkv_port, r):
    key = "cl:watch"
    r.set(key, 10)
    other = redis.Redis(host=HOST, port=shardkv_port, socket_timeout=10)
    try:
        attempts = 0
        with r.pipeline() as pipe:
            while True:
                attempts += 1
                try:
                    pipe.watch(key)
                    value = int(pipe.get(key))
                    if attempts == 1:
                        other.incr(key, 5)     # another client changes the key meanwhile
                    pipe.multi()
                    pipe.set(key, value * 2)
                    pipe.execute()
                    break
                except redis.WatchError:
                    continue
        assert attempts == 2
        assert r.get(key) == b"30"   # (10 + 5) * 2: the first attempt was aborted
    finally:
        other.close()
        r.delete(key)


def test_optimistic_locking_between_two_clients(shardkv_port, r):
    key = "cl:counter"
    r.set(key, 0)
    per_client = 150
    failures = []
    conflicts = [0, 0]

    def worker(idx):
        c = redis.Redis(host=HOST, port=shardkv_port, socket_timeout=10)
        try:
            for _ in range(per_client):
                while True:
                    with c.pipeline() as pipe:
                        try:
                            pipe.watch(key)
                            value = int(pipe.get(key))
                            pipe.multi()
                            pipe.set(key, value + 1)
                            pipe.execute()
                            break
                        except redis.WatchError:
                            conflicts[idx] += 1
        except Exception as e:  # pragma: no cover - reported below
            failures.append(e)
        finally:
            c.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not failures, failures
    assert r.get(key) == str(2 * per_client).encode(), f"lost updates (conflicts: {conflicts})"
    r.delete(key)


def test_resp3_hello_and_types(r3, shardkv_port):
    hello = r3.execute_command("HELLO", 3)
    assert isinstance(hello, dict)
    assert hello[b"proto"] == 3
    assert hello[b"server"] in (b"redis", b"valkey")
    assert b"version" in hello and b"id" in hello and b"mode" in hello
    assert r3.connection_pool.connection_kwargs.get("protocol") == 3
    assert r3.set("cl:r3", "v") is True
    assert r3.get("cl:r3") == b"v"
    assert r3.get("cl:r3:missing") is None
    assert r3.incr("cl:r3:n") == 1
    cfg = r3.config_get("port")
    assert cfg == {"port": str(shardkv_port)} or cfg == {b"port": str(shardkv_port).encode()}
    with r3.pipeline(transaction=True) as pipe:
        assert pipe.set("cl:r3", "w").get("cl:r3").execute() == [True, b"w"]
    with pytest.raises(redis.ResponseError, match="NOPROTO"):
        r3.execute_command("HELLO", 4)
    r3.delete("cl:r3", "cl:r3:n")


def test_resp3_raw_wire_format(shardkv_port):
    import socket
    with socket.create_connection((HOST, shardkv_port), timeout=5) as s:
        s.sendall(b"HELLO 3\r\n")
        data = b""
        while b"modules" not in data or not data.endswith(b"*0\r\n"):
            chunk = s.recv(4096)
            assert chunk
            data += chunk
        assert data.startswith(b"%")
        assert b"$5\r\nproto\r\n:3\r\n" in data
        # back to RESP2 on the same connection: HELLO 2 is a flat array
        s.sendall(b"HELLO 2\r\n")
        data = b""
        while b"modules" not in data or not data.endswith(b"*0\r\n"):
            chunk = s.recv(4096)
            assert chunk
            data += chunk
        assert data.startswith(b"*") and b"$5\r\nproto\r\n:2\r\n" in data
        s.sendall(b"HELLO 3\r\n")
        data = b""
        while b"modules" not in data or not data.endswith(b"*0\r\n"):
            chunk = s.recv(4096)
            assert chunk
            data += chunk
        s.sendall(b"GET cl:raw:missing\r\nCONFIG GET maxclients\r\nDEL cl:raw:missing\r\n")
        expected = b"_\r\n%1\r\n$10\r\nmaxclients\r\n$5\r\n10000\r\n:0\r\n"
        got = b""
        while len(got) < len(expected):
            chunk = s.recv(4096)
            assert chunk
            got += chunk
        assert got == expected


# ---------------------------------------------------------------------------
# redis-cli
# ---------------------------------------------------------------------------


def _tool(name):
    path = shutil.which(name)
    if not path:
        pytest.skip(f"{name} is not installed (apt-get install redis-tools)")
    return path


def cli(port, *args, input=None, timeout=20):
    proc = subprocess.run([_tool("redis-cli"), "-h", HOST, "-p", str(port), *args],
                          input=input, capture_output=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return proc.stdout.decode("utf-8", "replace")


def test_redis_cli_set_get(shardkv_port):
    assert cli(shardkv_port, "set", "cli:k", "v") == "OK\n"
    assert cli(shardkv_port, "get", "cli:k") == "v\n"
    assert cli(shardkv_port, "--no-raw", "get", "cli:k") == '"v"\n'
    assert cli(shardkv_port, "--no-raw", "incr", "cli:n") == "(integer) 1\n"
    assert cli(shardkv_port, "--no-raw", "get", "cli:missing") == "(nil)\n"
    assert cli(shardkv_port, "--no-raw", "mget", "cli:k", "cli:missing") == '1) "v"\n2) (nil)\n'
    assert cli(shardkv_port, "--no-raw", "set", "cli:k") == \
        "(error) ERR wrong number of arguments for 'set' command\n"
    assert cli(shardkv_port, "ping") == "PONG\n"
    assert cli(shardkv_port, "-3", "--no-raw", "get", "cli:missing") == "(nil)\n"
    # binary-safe through -x (value from stdin)
    assert cli(shardkv_port, "-x", "set", "cli:x", input=b"line1\nline2\x00") == "OK\n"
    assert cli(shardkv_port, "--no-raw", "get", "cli:x") == '"line1\\nline2\\x00"\n'
    assert cli(shardkv_port, "del", "cli:k", "cli:n", "cli:x") == "3\n"


def test_redis_cli_piped_commands(shardkv_port):
    script = b"SET cli:p 10\nINCRBY cli:p 5\nGET cli:p\nAPPEND cli:p \"x y\"\nGET cli:p\nDEL cli:p\n"
    assert cli(shardkv_port, input=script) == "OK\n15\n15\n5\n15x y\n1\n"


def test_redis_cli_pipe_mode_with_inline_commands(shardkv_port):
    lines = [b"SET cli:pipe:%d v%d" % (i, i) for i in range(500)]
    lines += [b"INCR cli:pipe:ctr"] * 500
    data = b"\r\n".join(lines) + b"\r\n"
    out = cli(shardkv_port, "--pipe", input=data)
    assert "errors: 0, replies: 1000" in out, out
    assert cli(shardkv_port, "get", "cli:pipe:ctr") == "500\n"
    assert cli(shardkv_port, "get", "cli:pipe:499") == "v499\n"
    cli(shardkv_port, "del", "cli:pipe:ctr", *[f"cli:pipe:{i}" for i in range(500)])


# ---------------------------------------------------------------------------
# redis-benchmark
# ---------------------------------------------------------------------------


def test_redis_benchmark(shardkv_port):
    proc = subprocess.run([_tool("redis-benchmark"), "-h", HOST, "-p", str(shardkv_port),
                           "-n", "2000", "-c", "10", "-t", "set,get,incr,mset", "-q"],
                          capture_output=True, timeout=60)
    out = proc.stdout.decode("utf-8", "replace")
    assert proc.returncode == 0, out + proc.stderr.decode(errors="replace")
    # -q prints progress lines ending in \r and one final line per test
    results = {}
    for m in re.finditer(r"([A-Z]+)(?: \([^)]*\))?: ([\d.]+) requests per second", out):
        results[m.group(1)] = float(m.group(2))
    assert set(results) == {"SET", "GET", "INCR", "MSET"}, out
    assert all(rps > 0 for rps in results.values()), results
