"""Blocking list commands against a real server (and through the router):
arrival order, timeouts, disconnects, CLIENT UNBLOCK, transactions, LMOVE
chains, and that a blocked client holds up nobody else. Runs against
valkey-server too (INTEGRATION_TARGET=valkey), except the router test."""

from __future__ import annotations

import time

import pytest
import redis

from tests.integration.conftest import Raw, wait_blocked
from tests.integration.test_sharded import Deployment, owner

pytestmark = pytest.mark.integration

NULL_ARRAY = b"*-1\r\n"


def bulk_pair(key, value):
    return b"*2\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(key), key, len(value), value)


def test_waiters_are_served_in_arrival_order(r, raw):
    waiters = []
    for i in range(3):
        w = raw()
        w.send("BLPOP", "q", "0")
        wait_blocked(r, i + 1)
        waiters.append(w)
    assert r.rpush("q", "a", "b", "c") == 3
    assert [w.reply() for w in waiters] == [bulk_pair(b"q", v) for v in (b"a", b"b", b"c")]
    assert r.exists("q") == 0
    wait_blocked(r, 0)


def test_one_push_serves_as_many_waiters_as_it_has_elements(r, raw):
    first, second = raw(), raw()
    first.send("BRPOP", "q", "0")
    wait_blocked(r, 1)
    second.send("BRPOP", "q", "0")
    wait_blocked(r, 2)
    r.rpush("q", "x")
    assert first.reply() == bulk_pair(b"q", b"x")
    assert not second.pending(0.1)
    r.rpush("q", "y")
    assert second.reply() == bulk_pair(b"q", b"y")


@pytest.mark.parametrize("proto,null", [(2, NULL_ARRAY), (3, b"_\r\n")])
def test_float_timeout(r, raw, proto, null):
    w = raw(proto)
    start = time.monotonic()
    assert w.call("BLPOP", "q", "0.2") == null
    elapsed = time.monotonic() - start
    assert 0.18 <= elapsed < 2.0
    start = time.monotonic()
    assert w.call("BLMOVE", "q", "d", "LEFT", "LEFT", "0.1") == null
    assert w.call("BLMPOP", "0.1", "1", "q", "LEFT") == null
    assert 0.18 <= time.monotonic() - start < 3.0
    assert w.call("PING") == b"+PONG\r\n"


def test_timeout_zero_waits_until_data_comes(r, raw):
    w = raw()
    w.send("BLMPOP", "0", "2", "a", "b", "RIGHT", "COUNT", "2")
    wait_blocked(r, 1)
    assert not w.pending(0.5)
    r.rpush("b", "1", "2", "3")
    assert w.reply() == b"*2\r\n$1\r\nb\r\n*2\r\n$1\r\n3\r\n$1\r\n2\r\n"
    assert r.lrange("b", 0, -1) == [b"1"]


def test_a_client_that_disconnects_while_blocked_is_forgotten(r, raw):
    gone = raw()
    gone.send("BLPOP", "q", "0")
    wait_blocked(r, 1)
    gone.close()
    wait_blocked(r, 0)
    stays = raw()
    stays.send("BLPOP", "q", "0")
    wait_blocked(r, 1)
    r.rpush("q", "x", "y")
    assert stays.reply() == bulk_pair(b"q", b"x")
    assert r.lrange("q", 0, -1) == [b"y"]


def test_client_unblock_timeout_and_error(r, raw):
    w = raw()
    wid = int(w.call("CLIENT", "ID")[1:-2])
    w.send("BRPOPLPUSH", "q", "d", "0")
    wait_blocked(r, 1)
    assert r.client_unblock(wid) == 1
    assert w.reply() == NULL_ARRAY
    w.send("BLPOP", "q", "0")
    wait_blocked(r, 1)
    assert r.client_unblock(wid, error=True) == 1
    assert w.reply() == b"-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n"
    assert r.client_unblock(wid) == 0
    assert w.call("PING") == b"+PONG\r\n"


def test_a_push_inside_multi_wakes_after_exec(r, raw):
    w = raw()
    w.send("BLPOP", "q", "0")
    wait_blocked(r, 1)
    tx = raw()
    assert tx.call("MULTI") == b"+OK\r\n"
    tx.call("RPUSH", "q", "first")
    tx.call("RPUSH", "q", "second")
    tx.call("LPOP", "q")
    assert not w.pending(0.1)
    assert tx.call("EXEC") == b"*3\r\n:1\r\n:2\r\n$5\r\nfirst\r\n"
    # served with what the whole transaction left, not in the middle of it
    assert w.reply() == bulk_pair(b"q", b"second")


def test_an_lmove_chain_wakes_blmove_waiters(r, raw):
    mover = raw()
    mover.send("BLMOVE", "mid", "end", "LEFT", "RIGHT", "0")
    wait_blocked(r, 1)
    popper = raw()
    popper.send("BLPOP", "end", "0")
    wait_blocked(r, 2)
    r.rpush("src", "v")
    assert r.lmove("src", "mid", "LEFT", "RIGHT") == b"v"
    assert mover.reply() == b"$1\r\nv\r\n"
    assert popper.reply() == bulk_pair(b"end", b"v")
    assert r.exists("src", "mid", "end") == 0


def test_a_wrong_type_key_before_the_ready_one_fails_the_waiter(r, raw):
    w = raw()
    w.send("BLPOP", "a", "b", "0")
    wait_blocked(r, 1)
    r.set("a", "string")
    assert not w.pending(0.1)
    r.rpush("b", "x")
    assert w.reply() == b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
    assert r.llen("b") == 1


def test_a_blocked_client_does_not_delay_others(r, raw):
    w = raw()
    w.send("BLPOP", "q", "0")
    wait_blocked(r, 1)
    start = time.monotonic()
    for i in range(200):
        r.set(f"k{i}", i)
        assert r.get(f"k{i}") == str(i).encode()
    assert time.monotonic() - start < 2.0
    assert not w.pending(0)
    r.lpush("q", "done")
    assert w.reply() == bulk_pair(b"q", b"done")


def test_commands_pipelined_after_a_blocked_one_wait_for_it(r, raw):
    w = raw()
    w.send("BLPOP", "q", "0")
    w.send("RPUSH", "q", "own")
    w.send("LPOP", "q")
    wait_blocked(r, 1)
    assert not w.pending(0.1)
    r.rpush("q", "other")
    assert w.reply() == bulk_pair(b"q", b"other")
    assert w.reply() == b":1\r\n"
    assert w.reply() == b"$3\r\nown\r\n"


# ---------------------------------------------------------------- router

@pytest.fixture(scope="module")
def two_shards():
    d = Deployment(shards=2)
    yield d
    d.stop()


def test_blpop_through_the_router_stalls_no_other_key(two_shards):
    port = two_shards.port
    redis.Redis(port=port).flushall()
    # a key to block on, another key of the same worker, a key of the other worker
    by_port = {}
    i = 0
    while len(by_port) < 2 or max(len(v) for v in by_port.values()) < 2:
        k = f"key:{i}".encode()
        by_port.setdefault(owner(two_shards, k)["port"], []).append(k)
        i += 1
    first = max(by_port, key=lambda p: len(by_port[p]))
    second = next(p for p in by_port if p != first)
    blocked_key, same_worker_key = by_port[first][:2]
    other_worker_key = by_port[second][0]

    w = Raw(port)
    other = redis.Redis(port=port)
    try:
        w.send("BLPOP", blocked_key, "0")
        wait_blocked(redis.Redis(port=first), 1)
        start = time.monotonic()
        for k in (other_worker_key, same_worker_key):
            for n in range(50):
                other.set(k, n)
                assert other.get(k) == str(n).encode()
        assert time.monotonic() - start < 3.0
        assert not w.pending(0)
        other.rpush(blocked_key, "v")
        assert w.reply() == bulk_pair(blocked_key, b"v")
        # the waiter's connection goes on normally, on every worker
        assert w.call("SET", other_worker_key, "after") == b"+OK\r\n"
        assert w.call("BLPOP", other_worker_key + b"-list", "0.05") == NULL_ARRAY
    finally:
        w.close()
        other.close()
