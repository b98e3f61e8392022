"""Pub/sub with real processes: a worker on its own, and `shardkv start`
with subscribers on the router and directly on the workers."""

import time

import pytest
import redis

from tests.integration.test_sharded import Deployment

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def deployment():
    d = Deployment()
    yield d
    d.stop()


def _messages(pubsub, n, timeout=5.0):
    out = []
    deadline = time.time() + timeout
    while len(out) < n and time.time() < deadline:
        m = pubsub.get_message(timeout=0.1)
        if m is not None and m["type"] in ("message", "pmessage", "smessage"):
            out.append(m)
    return out


def _subscribed(pubsub, count):
    deadline = time.time() + 5
    seen = 0
    while seen < count and time.time() < deadline:
        m = pubsub.get_message(timeout=0.1)
        if m is not None and m["type"] in ("subscribe", "psubscribe", "ssubscribe"):
            seen += 1
    assert seen == count


@pytest.mark.parametrize("protocol", [2, 3])
def test_every_subscriber_hears_a_message_published_through_the_router_once(deployment, protocol):
    router = redis.Redis(port=deployment.port, protocol=protocol)
    on_router = router.pubsub()
    on_router.subscribe("news")
    _subscribed(on_router, 1)
    direct = []
    for w in deployment.workers():
        ps = redis.Redis(port=w["port"], protocol=protocol).pubsub()
        ps.psubscribe("ne*")
        _subscribed(ps, 1)
        direct.append(ps)
    for i in range(20):
        # the router subscriber and one pattern subscriber per worker
        assert router.publish("news", f"m{i}") == 1 + len(direct)
    got = _messages(on_router, 21, timeout=1.0)
    assert [m["data"] for m in got] == [f"m{i}".encode() for i in range(20)]
    for ps in direct:
        assert [m["data"] for m in _messages(ps, 20)] == [f"m{i}".encode() for i in range(20)]
        ps.close()
    on_router.close()


def test_resp3_subscriber_on_the_router_keeps_running_commands(deployment):
    c = redis.Redis(port=deployment.port, protocol=3)
    ps = c.pubsub()
    ps.subscribe("resp3")
    _subscribed(ps, 1)
    other = redis.Redis(port=deployment.port)
    other.set("k1", "v1")
    assert other.publish("resp3", "hello") == 1
    assert [m["data"] for m in _messages(ps, 1)] == [b"hello"]
    ps.close()


def test_shard_channels_through_the_router(deployment):
    router = redis.Redis(port=deployment.port)
    ps = router.pubsub()
    ps.ssubscribe("{orders}new")
    _subscribed(ps, 1)
    assert router.spublish("{orders}new", "o1") == 1
    assert router.spublish("{orders}other", "o2") == 0
    assert [m["data"] for m in _messages(ps, 1)] == [b"o1"]
    ps.close()


def test_resp2_subscriber_through_the_router_gets_the_subscribed_context_error(deployment):
    from redis.connection import Connection
    conn = Connection(port=deployment.port, protocol=2)
    conn.connect()
    try:
        conn.send_command("SUBSCRIBE", "ctx")
        assert conn.read_response() == [b"subscribe", b"ctx", 1]
        conn.send_command("GET", "somekey")
        with pytest.raises(redis.ResponseError, match="only .P.S.SUBSCRIBE"):
            conn.read_response()
        conn.send_command("PING")
        assert conn.read_response() == [b"pong", b""]
        conn.send_command("UNSUBSCRIBE")
        assert conn.read_response() == [b"unsubscribe", b"ctx", 0]
        conn.send_command("SET", "after", "1")
        assert conn.read_response() == b"OK"
    finally:
        conn.disconnect()


def test_publish_on_a_worker_reaches_every_worker_and_the_router(deployment):
    workers = deployment.workers()
    on_router = redis.Redis(port=deployment.port, protocol=2).pubsub()
    on_router.subscribe("spread")
    _subscribed(on_router, 1)
    direct = []
    for w in workers:
        ps = redis.Redis(port=w["port"], protocol=2).pubsub()
        ps.subscribe("spread")
        _subscribed(ps, 1)
        direct.append(ps)
    publisher = redis.Redis(port=workers[-1]["port"])
    for i in range(10):
        assert publisher.publish("spread", f"x{i}") == 1 + len(workers)
    expected = [f"x{i}".encode() for i in range(10)]
    assert [m["data"] for m in _messages(on_router, 10)] == expected
    for ps in direct:
        assert [m["data"] for m in _messages(ps, 10)] == expected
        ps.close()
    on_router.close()


def test_router_subscriber_hears_keyspace_events_of_every_worker(deployment):
    router = redis.Redis(port=deployment.port, protocol=2)
    router.config_set("notify-keyspace-events", "KEA")
    try:
        ps = router.pubsub()
        ps.psubscribe("__keyevent@0__:set")
        _subscribed(ps, 1)
        keys = [f"ev:{i}" for i in range(30)]     # spread over every worker
        for k in keys:
            router.set(k, "1")
        got = sorted(m["data"] for m in _messages(ps, len(keys)))
        assert got == sorted(k.encode() for k in keys)
        ps.close()
    finally:
        router.config_set("notify-keyspace-events", "")


def test_a_slow_subscriber_past_the_pubsub_buffer_limit_is_disconnected():
    import socket

    from tests.integration.conftest import launch
    srv = launch()
    try:
        r = redis.Redis(port=srv.port)
        r.config_set("client-output-buffer-limit", "pubsub 65536 0 0")
        slow = socket.create_connection(("127.0.0.1", srv.port))
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.sendall(b"SUBSCRIBE big\r\n")
        time.sleep(0.2)                              # never read again
        payload = "x" * 10000
        for _ in range(500):
            if r.publish("big", payload) == 0:
                break
        assert r.publish("big", payload) == 0        # the subscriber is gone
        assert r.execute_command("PUBSUB", "NUMSUB", "big") == [b"big", 0]
        assert r.ping()
        slow.close()
    finally:
        srv.cleanup()
