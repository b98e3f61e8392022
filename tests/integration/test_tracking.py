"""Client-side caching with real processes: BCAST invalidations, RESP2
redirection to a subscribed client, and redis-py's client-side cache
(RESP3) through the router and on a worker."""

import socket
import time

import pytest
import redis
from redis.cache import CacheConfig

from tests.integration.conftest import launch
from tests.integration.test_sharded import Deployment

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server():
    srv = launch()
    yield srv
    srv.cleanup()


@pytest.fixture(scope="module")
def deployment():
    d = Deployment()
    yield d
    d.stop()


def _read_pushes(sock, timeout=2.0):
    """Everything a RESP3 connection receives until it stays quiet."""
    data = b""
    sock.settimeout(0.3)
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            if data:
                break
            continue
        if not chunk:
            break
        data += chunk
    return data


def test_bcast_sends_the_changes_under_its_prefixes(server):
    sock = socket.create_connection(("127.0.0.1", server.port))
    try:
        sock.sendall(b"HELLO 3\r\nCLIENT TRACKING ON BCAST PREFIX user: PREFIX cart:\r\n")
        assert _read_pushes(sock).endswith(b"+OK\r\n")
        writer = redis.Redis(port=server.port)
        writer.set("user:1", "a")
        writer.set("other", "b")
        writer.set("cart:9", "c")
        got = _read_pushes(sock)
        assert b"$6\r\nuser:1\r\n" in got and b"$6\r\ncart:9\r\n" in got
        assert b"other" not in got and got.startswith(b">2\r\n$10\r\ninvalidate\r\n")
    finally:
        sock.close()


def test_resp2_redirect_to_a_subscribed_client(server):
    listener = redis.Redis(port=server.port, protocol=2)
    ps = listener.pubsub()
    ps.subscribe("__redis__:invalidate")
    deadline = time.time() + 5
    while ps.get_message(timeout=0.1) is None and time.time() < deadline:
        pass
    listener_id = listener.execute_command("CLIENT", "ID")   # another connection: find the subscriber's id
    ids = [c["id"] for c in listener.client_list() if c.get("cmd") == "subscribe"]
    assert ids, "the subscriber shows in CLIENT LIST"
    reader = redis.Redis(port=server.port, protocol=2)
    reader.execute_command("CLIENT", "TRACKING", "ON", "REDIRECT", ids[0])
    assert reader.execute_command("CLIENT", "GETREDIR") == int(ids[0])
    reader.get("cached")
    redis.Redis(port=server.port).set("cached", "new")
    msg = None
    deadline = time.time() + 5
    while msg is None and time.time() < deadline:
        m = ps.get_message(timeout=0.1)
        if m is not None and m["type"] == "message":
            msg = m
    assert msg is not None and msg["data"] == [b"cached"]
    assert listener_id != int(ids[0])
    ps.close()


@pytest.mark.parametrize("where", ["worker", "router"])
def test_redis_py_client_side_cache_sees_other_clients_writes(server, deployment, where):
    port = server.port if where == "worker" else deployment.port
    cached = redis.Redis(port=port, protocol=3, cache_config=CacheConfig())
    other = redis.Redis(port=port)
    keys = [f"csc:{i}" for i in range(12)]        # through the router: several workers
    for k in keys:
        other.set(k, "v1")
    for k in keys:
        assert cached.get(k) == b"v1"
        assert cached.get(k) == b"v1"            # now served from the local cache
    for k in keys:
        other.set(k, "v2")
    deadline = time.time() + 5
    values = None
    while time.time() < deadline:
        values = [cached.get(k) for k in keys]
        if values == [b"v2"] * len(keys):
            break
        time.sleep(0.05)
    assert values == [b"v2"] * len(keys)
    cached.close()
