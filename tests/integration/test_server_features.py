"""Server features that need a running event loop: active expiry, CLIENT
PAUSE, the slow log and latency histograms, CLIENT KILL, idle timeouts."""

import os
import socket
import threading
import time

import pytest
import redis

pytestmark = pytest.mark.integration


@pytest.fixture
def r(shardkv_port):
    client = redis.Redis(port=shardkv_port)
    client.flushall()
    yield client
    client.config_set("slowlog-log-slower-than", 10000)
    client.config_set("timeout", 0)
    client.close()


def test_active_expiry_removes_keys_nobody_reads(r):
    pipe = r.pipeline(transaction=False)
    for i in range(2000):
        pipe.set(f"volatile:{i}", "x", px=50)
    pipe.set("stays", "y")
    pipe.execute()
    deadline = time.time() + 5
    while r.dbsize() > 1 and time.time() < deadline:
        time.sleep(0.1)
    # nothing read the volatile keys: only the active cycle could remove them
    assert r.dbsize() == 1
    assert int(r.info("stats")["expired_keys"]) >= 2000


def test_client_pause_write_holds_writes_but_not_reads(r, shardkv_port):
    r.set("k", "before")
    r.client_pause(600, all=False)
    other = redis.Redis(port=shardkv_port)
    started = time.time()
    assert other.get("k") == b"before"
    assert time.time() - started < 0.3
    other.set("k", "after")
    assert time.time() - started >= 0.45
    assert r.get("k") == b"after"
    other.close()


def test_client_unpause_releases_held_commands_in_order(r, shardkv_port):
    r.client_pause(10000, all=False)
    results = []

    def writer(value):
        c = redis.Redis(port=shardkv_port)
        results.append(c.append("log", value))
        c.close()

    threads = [threading.Thread(target=writer, args=(v,)) for v in ("a", "b")]
    for t in threads:
        t.start()
        time.sleep(0.1)
    assert r.get("log") is None
    r.client_unpause()
    for t in threads:
        t.join(5)
    assert r.get("log") == b"ab"


def test_slowlog_records_commands_over_the_threshold(r):
    r.slowlog_reset()
    r.config_set("slowlog-log-slower-than", 0)
    r.set("slow", "1")
    entries = r.slowlog_get(10)
    commands = [e["command"] for e in entries]
    assert b"SET slow 1" in commands
    assert r.slowlog_len() >= 1
    r.config_set("slowlog-log-slower-than", -1)
    r.slowlog_reset()
    r.get("slow")
    assert r.slowlog_len() == 0


def test_latency_histogram_counts_calls(r):
    r.config_resetstat()
    for _ in range(5):
        r.get("x")
    reply = r.execute_command("LATENCY", "HISTOGRAM", "get")
    if isinstance(reply, list):  # RESP2: a flat array of name, details
        reply = {reply[0]: reply[1]}
    details = reply[b"get"]
    if isinstance(details, list):
        details = dict(zip(details[::2], details[1::2], strict=True))
    assert details[b"calls"] == 5
    buckets = details[b"histogram_usec"]
    counts = buckets[1::2] if isinstance(buckets, list) else list(buckets.values())
    assert counts[-1] == 5  # cumulative: the last bucket holds every call


def test_client_kill_by_id_closes_the_connection(r, shardkv_port):
    victim = socket.create_connection(("127.0.0.1", shardkv_port))
    victim.sendall(b"CLIENT ID\r\n")
    victim_id = int(victim.recv(100)[1:-2])
    assert r.client_kill_filter(_id=victim_id) == 1
    victim.settimeout(2)
    assert victim.recv(100) == b""  # the server closed it
    victim.close()


def test_idle_clients_are_closed_after_timeout(r, shardkv_port):
    r.config_set("timeout", 1)
    idle = redis.Redis(port=shardkv_port, single_connection_client=True)
    idle_id = idle.client_id()
    deadline = time.time() + 5
    while time.time() < deadline:
        ids = [c["id"] for c in r.client_list()]
        if idle_id not in ids:
            break
        r.ping()  # keeps this connection busy
        time.sleep(0.2)
    assert idle_id not in [c["id"] for c in r.client_list()]
    idle.close()


def test_unixsocket_serves_clients_with_the_socket_path_as_address(tmp_path):
    from tests.integration.conftest import launch

    path = str(tmp_path / "shardkv.sock")
    srv = launch(["--unixsocket", path, "--unixsocketperm", "700"])
    try:
        client = redis.Redis(unix_socket_path=path)
        assert client.set("k", "v") and client.get("k") == b"v"
        me = client.client_info()
        assert me["addr"] == f"{path}:0" and me["laddr"] == f"{path}:0"
        assert "U" in me["flags"]
        assert client.config_get("unixsocketperm") == {"unixsocketperm": "700"}
        assert oct(os.stat(path).st_mode & 0o777) == "0o700"
        client.close()
    finally:
        srv.cleanup()
    assert not os.path.exists(path)   # removed on shutdown, as Redis does
