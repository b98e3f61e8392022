"""Sorted sets in process: the value against a plain sorted Python list, the
O(log n) structure on a million members, the encodings, what the commands
propagate and notify, zset_store for the *STORE and GEO commands, and
blocked BZPOP* clients served, timed out and unblocked (the server's
before-sleep step is run by hand: these sessions have no event loop)."""

import math
import random
import time

import pytest

from shardkv.commands import zsets
from shardkv.native import _native
from shardkv.types.zset import LISTPACK, SKIPLIST, ZSetValue
from tests.commands.conftest import Session, cmds, settle, blocked, registered, value

enc = _native.py_encode_command
BLOCKED = _native.CLIENT_FLAGS["BLOCKED"]


# ---------------------------------------------------------------- the value

def reference_order(d):
    return sorted(((sc, m) for m, sc in d.items()))


def test_random_operations_match_a_sorted_list():
    rnd = random.Random(7)
    z = ZSetValue()
    ref = {}
    for _ in range(3000):
        m = bytes([rnd.randrange(97, 110)]) * rnd.randrange(1, 3)
        op = rnd.random()
        if op < 0.6:
            sc = float(rnd.randrange(-5, 6))
            assert z.add(m, sc) == (m not in ref)
            ref[m] = sc
        else:
            assert z.remove(m) == (m in ref)
            ref.pop(m, None)
        order = reference_order(ref)
        assert z.items() == [(m, sc) for sc, m in order]
    for i, (sc, m) in enumerate(reference_order(ref)):
        assert z.rank(m) == i
        assert z.score(m) == sc
    n = len(z)
    assert z.range_by_rank(0, n - 1) == z.items()
    assert z.range_by_rank(1, 2, reverse=True) == list(reversed(z.items()))[1:3]
    assert list(z.range_by_score(-1.0, True, 2.0, False)) == \
        [(m, sc) for m, sc in z.items() if -1.0 < sc <= 2.0]
    assert z.sort_elements() == [m for m, _ in z.items()]


def test_ties_are_ordered_by_member_bytes():
    z = ZSetValue()
    for m in (b"b", b"a", b"\xff", b"", b"aa", b"\x00", b"A"):
        z.add(m, 1.0)
    assert z.sort_elements() == [b"", b"\x00", b"A", b"a", b"aa", b"b", b"\xff"]


def test_score_bounds():
    z = ZSetValue()
    for i in range(10):
        z.add(str(i).encode(), float(i))
    assert z.score_bounds(2, False, 4, False) == (2, 5)
    assert z.score_bounds(2, True, 4, True) == (3, 4)
    assert z.score_bounds(-math.inf, False, math.inf, False) == (0, 10)
    assert z.score_bounds(math.inf, True, math.inf, False) == (0, 0)
    assert z.score_bounds(5, False, 1, False)[1] - z.score_bounds(5, False, 1, False)[0] == 0


def test_a_million_members_are_ranked_in_log_time(session):
    z = ZSetValue(SKIPLIST)
    n = 1_000_000
    z.sl.update((float(i), b"m%07d" % i) for i in range(n))
    z.d.update((b"m%07d" % i, float(i)) for i in range(n))
    t = time.perf_counter()
    for i in range(0, n, n // 1000):
        assert z.rank(b"m%07d" % i) == i
        assert z.range_by_rank(i, i) == [(b"m%07d" % i, float(i))]
        lo, hi = z.score_bounds(float(i), False, float(i + 10), True)
        assert hi - lo == min(10, n - i)
    # 1000 rank + range lookups: milliseconds, not the seconds a scan would take
    assert time.perf_counter() - t < 2.0
    session.server.store(session.client.db, b"big", z)
    assert session.run("ZCARD", "big") == b":1000000\r\n"
    assert session.run("ZRANK", "big", "m0999999") == b":999999\r\n"
    assert session.run("ZCOUNT", "big", "(10", "20") == b":10\r\n"
    assert session.run("ZRANGE", "big", "-2", "-1") == b"*2\r\n$8\r\nm0999998\r\n$8\r\nm0999999\r\n"
    assert session.run("ZREMRANGEBYRANK", "big", "0", "499999") == b":500000\r\n"
    assert session.run("ZRANGE", "big", "0", "0", "WITHSCORES") == b"*2\r\n$8\r\nm0500000\r\n$6\r\n500000\r\n"


def test_copy_is_independent():
    z = ZSetValue()
    z.add(b"a", 1.0)
    c = z.copy()
    c.add(b"b", 2.0)
    c.add(b"a", 5.0)
    assert z.items() == [(b"a", 1.0)]
    assert c.items() == [(b"b", 2.0), (b"a", 5.0)]


def test_listpack_never_holds_negative_zero():
    z = ZSetValue(LISTPACK)
    z.add(b"a", -0.0)
    assert math.copysign(1, z.score(b"a")) == 1
    s = ZSetValue(SKIPLIST)
    s.add(b"a", -0.0)
    assert math.copysign(1, s.score(b"a")) == -1
    s.convert(LISTPACK)
    assert math.copysign(1, s.score(b"a")) == 1


# ---------------------------------------------------------------- encodings

def test_encoding_follows_the_configured_limits(server, session):
    server.config.set("zset-max-listpack-entries", "3")
    session.run("ZADD", "z", "1", "a", "2", "b", "3", "c")
    assert value(server, b"z").encoding() == "listpack"
    session.run("ZADD", "z", "4", "d")
    assert value(server, b"z").encoding() == "skiplist"
    session.run("ZREM", "z", "d", "c")
    assert value(server, b"z").encoding() == "skiplist"
    server.config.set("zset-max-listpack-value", "2")
    session.run("ZADD", "y", "1", "abc")
    assert value(server, b"y").encoding() == "skiplist"


def test_zset_store_encodes_and_counts(server, session, feed):
    c = session.client
    session.run("SET", "d", "x")
    session.run("EXPIRE", "d", "100")
    events = []
    server.keyspace_event_hook = lambda event, key, db: event in ("new", "keymiss") or events.append((event, key))
    session.run("ZUNIONSTORE", "d", "1", "nokey")
    assert events == [("del", b"d")]
    events.clear()
    session.run("ZADD", "src", "1", "a")
    events.clear()
    # what GEOSEARCHSTORE will call, here outside a command of its own
    n = zsets.zset_store(c, b"d", [(b"a", 1.0), (b"b", 2.0), (b"a", 3.0)], event="geosearchstore")
    assert n == 2
    assert events == [("geosearchstore", b"d")]
    v = value(server, b"d")
    assert v.encoding() == "listpack" and v.items() == [(b"b", 2.0), (b"a", 3.0)]
    assert session.run("TTL", "d") == b":-1\r\n"
    server.config.set("zset-max-listpack-entries", "1")
    zsets.zset_store(c, b"d", [(b"a", 1.0), (b"b", 2.0)], event="zunionstore")
    assert value(server, b"d").encoding() == "skiplist"
    assert zsets.zset_store(c, b"d", [], event="zunionstore") == 0
    assert value(server, b"d") is None


def test_zadd_handler_with_a_rewritten_argv(session, server):
    """GEOADD calls zadd(c, argv) with its own argv rewritten to ZADD's."""
    assert session.run("ZADD", "g", "1", "x") == b":1\r\n"
    c = session.client
    assert zsets.zadd(c, [b"zadd", b"g", b"CH", b"5", b"x", b"6", b"y"]) == 2
    assert value(server, b"g").items() == [(b"x", 5.0), (b"y", 6.0)]


# ---------------------------------------------------------------- propagation and events

def test_writes_propagate_as_they_are(session, feed):
    session.run("ZADD", "z", "1", "a", "2", "b")
    session.run("ZINCRBY", "z", "1", "a")
    session.run("ZREM", "z", "a")
    session.run("ZPOPMIN", "z")
    assert b"".join(feed) == cmds(["SELECT", "0"], ["ZADD", "z", "1", "a", "2", "b"],
                                  ["ZINCRBY", "z", "1", "a"], ["ZREM", "z", "a"], ["ZPOPMIN", "z"])


def test_writes_that_change_nothing_are_not_propagated(session, feed):
    session.run("ZADD", "z", "1", "a")
    feed.clear()
    session.run("ZADD", "z", "1", "a")
    session.run("ZADD", "z", "NX", "5", "a")
    session.run("ZADD", "z", "XX", "5", "b")
    session.run("ZREM", "z", "nope")
    session.run("ZPOPMIN", "nokey")
    session.run("ZREMRANGEBYSCORE", "z", "10", "20")
    session.run("ZRANGESTORE", "d", "nokey", "0", "-1")
    session.run("ZADD", "z", "INCR", "nan", "a")
    session.run("ZADD", "z", "INCR", "+inf", "a")
    feed.clear()
    session.run("ZADD", "z", "INCR", "-inf", "a")
    assert feed == []


def test_zmpop_and_blocking_pops_propagate_as_zpop_with_count(session, feed):
    session.run("ZADD", "b", "1", "x", "2", "y", "3", "z")
    feed.clear()
    session.run("ZMPOP", "2", "a", "b", "MAX", "COUNT", "2")
    session.run("BZPOPMIN", "a", "b", "0")
    session.run("ZADD", "b", "1", "x")
    feed.clear()
    session.run("BZMPOP", "0", "1", "b", "MIN", "COUNT", "9")
    assert b"".join(feed) == cmds(["ZPOPMIN", "b", "1"])


def test_keyspace_events(server, session):
    events = []
    server.keyspace_event_hook = lambda event, key, db: event in ("new", "keymiss") or events.append(event)
    session.run("ZADD", "z", "1", "a", "2", "b", "3", "c")
    session.run("ZADD", "z", "INCR", "1", "a")
    session.run("ZINCRBY", "z", "1", "a")
    session.run("ZREMRANGEBYSCORE", "z", "3", "3")
    session.run("ZREMRANGEBYRANK", "z", "0", "0")
    session.run("ZADD", "z", "1", "x", "2", "y")
    session.run("ZPOPMAX", "z", "5")
    session.run("ZPOPMAX", "z")
    assert events == ["zadd", "zincr", "zincr", "zremrangebyscore", "zremrangebyrank", "del",
                      "zadd", "zpopmax", "del"]


# ---------------------------------------------------------------- blocking

def test_blocked_clients_are_served_in_arrival_order(server):
    waiters = [Session(server) for _ in range(3)]
    for w in waiters:
        assert w.run("BZPOPMIN", "q", "0") == b""
        assert blocked(w)
    pusher = Session(server)
    assert pusher.run("ZADD", "q", "2", "b", "1", "a") == b":2\r\n"
    settle(server)
    assert waiters[0].client.out.take() == b"*3\r\n$1\r\nq\r\n$1\r\na\r\n$1\r\n1\r\n"
    assert waiters[1].client.out.take() == b"*3\r\n$1\r\nq\r\n$1\r\nb\r\n$1\r\n2\r\n"
    assert blocked(waiters[2]) and not blocked(waiters[0])
    assert pusher.run("EXISTS", "q") == b":0\r\n"
    pusher.run("ZADD", "q", "3", "c")
    settle(server)
    assert waiters[2].client.out.take() == b"*3\r\n$1\r\nq\r\n$1\r\nc\r\n$1\r\n3\r\n"
    assert server.blocking.blocked_keys() == 0


def test_a_served_bzpop_propagates_as_a_zpop(server, feed):
    w = Session(server)
    w.run("BZPOPMAX", "a", "q", "0")
    Session(server).run("ZADD", "q", "1", "x", "2", "y")
    settle(server)
    assert w.client.out.take() == b"*3\r\n$1\r\nq\r\n$1\r\ny\r\n$1\r\n2\r\n"
    assert b"".join(feed) == cmds(["SELECT", "0"], ["ZADD", "q", "1", "x", "2", "y"], ["ZPOPMAX", "q"])


def test_a_served_bzmpop_pops_up_to_count(server, feed):
    w = Session(server, proto=3)
    w.run("BZMPOP", "0", "2", "a", "q", "MIN", "COUNT", "5")
    Session(server).run("ZADD", "q", "1", "x", "2", "y")
    settle(server)
    assert w.client.out.take() == b"*2\r\n$1\r\nq\r\n*2\r\n*2\r\n$1\r\nx\r\n,1\r\n*2\r\n$1\r\ny\r\n,2\r\n"
    assert b"".join(feed).endswith(cmds(["ZPOPMIN", "q", "2"]))


def test_wrong_type_key_does_not_serve(server):
    w = Session(server)
    w.run("BZPOPMIN", "q", "0")
    Session(server).run("SET", "q", "x")
    settle(server)
    assert blocked(w)
    Session(server).run("DEL", "q")
    Session(server).run("ZADD", "q", "1", "m")
    settle(server)
    assert not blocked(w)


def test_zadd_inside_multi_wakes_only_after_exec(server):
    w = Session(server)
    w.run("BZPOPMIN", "q", "0")
    p = Session(server)
    p.run("MULTI")
    p.run("ZADD", "q", "1", "a")
    p.run("ZREM", "q", "a")
    p.run("ZADD", "q", "2", "b")
    p.run("EXEC")
    settle(server)
    assert w.client.out.take() == b"*3\r\n$1\r\nq\r\n$1\r\nb\r\n$1\r\n2\r\n"


def test_blocking_inside_multi_answers_at_once(session):
    session.run("MULTI")
    session.run("BZPOPMIN", "q", "0")
    session.run("BZMPOP", "0", "1", "q", "MIN")
    assert session.run("EXEC") == b"*2\r\n*-1\r\n*-1\r\n"
    assert not blocked(session)


def test_client_unblock_timeout_and_error(server):
    w = registered(Session(server))
    w.run("BZPOPMIN", "a", "0")
    admin = Session(server)
    assert admin.run("CLIENT", "UNBLOCK", str(w.client.id)) == b":1\r\n"
    assert w.client.out.take() == b"*-1\r\n"
    w.run("BZMPOP", "0", "1", "a", "MAX")
    assert admin.run("CLIENT", "UNBLOCK", str(w.client.id), "ERROR") == b":1\r\n"
    assert w.client.out.take() == b"-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n"


def test_resp3_timeout_reply_is_null(server):
    w = registered(Session(server, proto=3))
    w.run("BZPOPMAX", "a", "0")
    Session(server).run("CLIENT", "UNBLOCK", str(w.client.id))
    assert w.client.out.take() == b"_\r\n"


@pytest.mark.parametrize("timeout,error", [
    ("x", b"-ERR timeout is not a float or out of range\r\n"),
    ("-1", b"-ERR timeout is negative\r\n"),
    ("inf", b"-ERR timeout is out of range\r\n"),
])
def test_timeout_arguments(session, timeout, error):
    assert session.run("BZPOPMIN", "a", timeout) == error
    assert not blocked(session)
