"""Blocking sorted-set pops (BZPOPMIN, BZPOPMAX, BZMPOP) against a real
server: arrival order, float timeouts, timeout 0, disconnects, CLIENT
UNBLOCK, transactions, and replies in RESP2 and RESP3. Runs against
valkey-server too (INTEGRATION_TARGET=valkey)."""

from __future__ import annotations

import time

import pytest

from tests.integration.conftest import wait_blocked
from tests.integration.test_blocking import NULL_ARRAY

pytestmark = pytest.mark.integration


def triple(key, member, score):
    return b"*3\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (
        len(key), key, len(member), member, len(score), score)


def test_waiters_are_served_in_arrival_order(r, raw):
    waiters = []
    for i in range(3):
        w = raw()
        w.send("BZPOPMIN", "q", "0")
        wait_blocked(r, i + 1)
        waiters.append(w)
    assert r.zadd("q", {"a": 1, "b": 2, "c": 3}) == 3
    assert [w.reply() for w in waiters] == [triple(b"q", m, s) for m, s in
                                            ((b"a", b"1"), (b"b", b"2"), (b"c", b"3"))]
    assert r.exists("q") == 0
    wait_blocked(r, 0)


def test_one_zadd_serves_as_many_waiters_as_it_has_members(r, raw):
    first, second = raw(), raw()
    first.send("BZPOPMAX", "q", "0")
    wait_blocked(r, 1)
    second.send("BZPOPMAX", "q", "0")
    wait_blocked(r, 2)
    r.zadd("q", {"x": 1.5})
    assert first.reply() == triple(b"q", b"x", b"1.5")
    assert not second.pending(0.1)
    r.zadd("q", {"y": 2})
    assert second.reply() == triple(b"q", b"y", b"2")


@pytest.mark.parametrize("proto,null", [(2, NULL_ARRAY), (3, b"_\r\n")])
def test_float_timeout(r, raw, proto, null):
    w = raw(proto)
    start = time.monotonic()
    assert w.call("BZPOPMIN", "q", "0.2") == null
    assert 0.18 <= time.monotonic() - start < 2.0
    start = time.monotonic()
    assert w.call("BZMPOP", "0.1", "1", "q", "MIN") == null
    assert w.call("BZPOPMAX", "q", "0.1") == null
    assert 0.18 <= time.monotonic() - start < 3.0
    assert w.call("PING") == b"+PONG\r\n"


@pytest.mark.parametrize("proto", [2, 3])
def test_timeout_zero_waits_until_data_comes(r, raw, proto):
    w = raw(proto)
    w.send("BZMPOP", "0", "2", "a", "b", "MAX", "COUNT", "2")
    wait_blocked(r, 1)
    assert not w.pending(0.5)
    r.zadd("b", {"m1": 1, "m2": 2, "m3": 3})
    if proto == 2:
        expected = b"*2\r\n$1\r\nb\r\n*2\r\n*2\r\n$2\r\nm3\r\n$1\r\n3\r\n*2\r\n$2\r\nm2\r\n$1\r\n2\r\n"
    else:
        expected = b"*2\r\n$1\r\nb\r\n*2\r\n*2\r\n$2\r\nm3\r\n,3\r\n*2\r\n$2\r\nm2\r\n,2\r\n"
    assert w.reply() == expected
    assert r.zrange("b", 0, -1) == [b"m1"]


def test_a_client_that_disconnects_while_blocked_is_forgotten(r, raw):
    gone = raw()
    gone.send("BZPOPMIN", "q", "0")
    wait_blocked(r, 1)
    gone.close()
    wait_blocked(r, 0)
    stays = raw()
    stays.send("BZPOPMIN", "q", "0")
    wait_blocked(r, 1)
    r.zadd("q", {"x": 1, "y": 2})
    assert stays.reply() == triple(b"q", b"x", b"1")
    assert r.zrange("q", 0, -1) == [b"y"]


def test_client_unblock_timeout_and_error(r, raw):
    w = raw()
    wid = int(w.call("CLIENT", "ID")[1:-2])
    w.send("BZPOPMIN", "q", "0")
    wait_blocked(r, 1)
    assert r.client_unblock(wid) == 1
    assert w.reply() == NULL_ARRAY
    w.send("BZMPOP", "0", "1", "q", "MIN")
    wait_blocked(r, 1)
    assert r.client_unblock(wid, error=True) == 1
    assert w.reply() == b"-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n"
    assert w.call("PING") == b"+PONG\r\n"


def test_a_zadd_in_a_transaction_wakes_after_exec(r, raw):
    w = raw()
    w.send("BZPOPMIN", "q", "0")
    wait_blocked(r, 1)
    p = r.pipeline(transaction=True)
    p.zadd("q", {"a": 1})
    p.zrem("q", "a")
    p.zadd("q", {"b": 2})
    p.execute()
    assert w.reply() == triple(b"q", b"b", b"2")


def test_blocking_inside_multi_does_not_block(r, raw):
    w = raw()
    assert w.call("MULTI") == b"+OK\r\n"
    w.call("BZPOPMIN", "q", "0")
    w.call("BZMPOP", "0", "1", "q", "MAX")
    assert w.call("EXEC") == b"*2\r\n*-1\r\n*-1\r\n"


def test_a_blocked_client_holds_up_nobody_else(r, raw):
    w = raw()
    w.send("BZPOPMAX", "q", "0")
    wait_blocked(r, 1)
    other = raw()
    assert other.call("ZADD", "z", "1", "a") == b":1\r\n"
    assert other.call("ZRANGE", "z", "0", "-1") == b"*1\r\n$1\r\na\r\n"
    r.zadd("q", {"m": 5})
    assert w.reply() == triple(b"q", b"m", b"5")
