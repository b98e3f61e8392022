"""Blocking stream reads against a real server (and through the router):
XREAD BLOCK and XREADGROUP BLOCK with several clients, served in arrival
order, '$' fixed when the read blocks, timeouts, a deleted key or group
or a changed type waking group readers with Valkey's error, MULTI not
blocking. Runs against valkey-server too (INTEGRATION_TARGET=valkey),
except the router test."""

from __future__ import annotations

import time

import pytest
import redis

from tests.integration.conftest import Raw, wait_blocked
from tests.integration.test_blocking import NULL_ARRAY
from tests.integration.test_sharded import Deployment, owner

pytestmark = pytest.mark.integration


def bulk(b):
    return b"$%d\r\n%s\r\n" % (len(b), b)


def entries(*items):
    """RESP2 of a list of (id, [field, value...]) entries."""
    out = b"*%d\r\n" % len(items)
    for i, fv in items:
        out += b"*2\r\n" + bulk(i) + b"*%d\r\n" % len(fv) + b"".join(bulk(x) for x in fv)
    return out


def read_reply(*streams):
    """RESP2 XREAD/XREADGROUP reply: [[key, entries]...]."""
    out = b"*%d\r\n" % len(streams)
    for key, items in streams:
        out += b"*2\r\n" + bulk(key) + entries(*items)
    return out


def test_xread_waiters_all_get_the_new_entry(r, raw):
    r.xadd("s", {"a": "1"}, id="1-1")
    waiters = []
    for i in range(3):
        w = raw()
        w.send("XREAD", "BLOCK", "0", "STREAMS", "s", "$")
        wait_blocked(r, i + 1)
        waiters.append(w)
    r.xadd("s", {"b": "2"}, id="2-1")
    expected = read_reply((b"s", [(b"2-1", [b"b", b"2"])]))
    assert [w.reply() for w in waiters] == [expected] * 3
    wait_blocked(r, 0)


def test_dollar_is_fixed_when_the_read_blocks(r, raw):
    r.xadd("s", {"a": "1"}, id="5-1")
    w = raw()
    w.send("XREAD", "BLOCK", "0", "STREAMS", "s", "$")
    wait_blocked(r, 1)
    # an entry at or below the ID the read waits after does not serve it
    r.delete("s")
    r.xadd("s", {"a": "1"}, id="3-1")
    assert not w.pending(0.1)
    r.xadd("s", {"b": "2"}, id="6-1")
    assert w.reply() == read_reply((b"s", [(b"6-1", [b"b", b"2"])]))


def test_xread_on_several_keys_is_served_by_the_first_with_data(r, raw):
    w = raw()
    w.send("XREAD", "BLOCK", "0", "STREAMS", "{t}a", "{t}b", "0", "0")
    wait_blocked(r, 1)
    r.xadd("{t}b", {"f": "v"}, id="1-1")
    assert w.reply() == read_reply((b"{t}b", [(b"1-1", [b"f", b"v"])]))


def test_xread_timeout_and_resp3(r, raw):
    w = raw()
    start = time.monotonic()
    assert w.call("XREAD", "BLOCK", "100", "STREAMS", "s", "$") == NULL_ARRAY
    assert time.monotonic() - start >= 0.09
    w3 = raw(3)
    assert w3.call("XREAD", "BLOCK", "50", "STREAMS", "s", "$") == b"_\r\n"
    w3.send("XREAD", "BLOCK", "0", "STREAMS", "s", "0")
    wait_blocked(r, 1)
    r.xadd("s", {"f": "v"}, id="1-1")
    assert w3.reply() == b"%1\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n1-1\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n"


def test_group_readers_share_entries_in_arrival_order(r, raw):
    r.xgroup_create("s", "g", id="$", mkstream=True)
    waiters = []
    for i, name in enumerate(("alice", "bob")):
        w = raw()
        w.send("XREADGROUP", "GROUP", "g", name, "COUNT", "1", "BLOCK", "0", "STREAMS", "s", ">")
        wait_blocked(r, i + 1)
        waiters.append(w)
    # one XADD at a time: each entry goes to the next waiter in line
    r.xadd("s", {"n": "1"}, id="1-1")
    assert waiters[0].reply() == read_reply((b"s", [(b"1-1", [b"n", b"1"])]))
    assert not waiters[1].pending(0.05)
    r.xadd("s", {"n": "2"}, id="2-1")
    assert waiters[1].reply() == read_reply((b"s", [(b"2-1", [b"n", b"2"])]))
    pending = r.xpending("s", "g")
    assert pending["pending"] == 2
    assert sorted((c["name"], c["pending"]) for c in pending["consumers"]) == \
        [(b"alice", 1), (b"bob", 1)]


def test_a_batch_in_multi_goes_to_the_first_group_waiter(r, raw):
    r.xgroup_create("s", "g", id="$", mkstream=True)
    first, second = raw(), raw()
    first.send("XREADGROUP", "GROUP", "g", "c1", "BLOCK", "0", "STREAMS", "s", ">")
    wait_blocked(r, 1)
    second.send("XREADGROUP", "GROUP", "g", "c2", "BLOCK", "0", "STREAMS", "s", ">")
    wait_blocked(r, 2)
    p = r.pipeline(transaction=True)
    p.xadd("s", {"n": "1"}, id="1-1")
    p.xadd("s", {"n": "2"}, id="2-1")
    p.execute()
    assert first.reply() == read_reply((b"s", [(b"1-1", [b"n", b"1"]), (b"2-1", [b"n", b"2"])]))
    # nothing left for the second one: it keeps waiting
    assert not second.pending(0.1)
    r.xadd("s", {"n": "3"}, id="3-1")
    assert second.reply() == read_reply((b"s", [(b"3-1", [b"n", b"3"])]))


@pytest.mark.parametrize("how", ["del", "destroy", "set"])
def test_group_readers_are_woken_when_the_key_or_group_goes(r, raw, how):
    r.xgroup_create("s", "g", id="$", mkstream=True)
    w = raw()
    w.send("XREADGROUP", "GROUP", "g", "c", "BLOCK", "0", "STREAMS", "s", ">")
    wait_blocked(r, 1)
    if how == "del":
        r.delete("s")
    elif how == "destroy":
        r.xgroup_destroy("s", "g")
    else:
        r.set("s", "x")
    reply = w.reply()
    if how == "set":
        assert reply == b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
    else:
        assert reply == (b"-NOGROUP No such key 's' or consumer group 'g' in XREADGROUP "
                         b"with GROUP option\r\n")
    wait_blocked(r, 0)


def test_plain_readers_keep_waiting_when_the_key_goes(r, raw):
    r.xadd("s", {"a": "1"}, id="1-1")
    w = raw()
    w.send("XREAD", "BLOCK", "0", "STREAMS", "s", "$")
    wait_blocked(r, 1)
    r.delete("s")
    r.set("s", "x")
    assert not w.pending(0.1)
    r.delete("s")
    r.xadd("s", {"b": "2"}, id="2-1")
    assert w.reply() == read_reply((b"s", [(b"2-1", [b"b", b"2"])]))


def test_blocking_reads_in_multi_do_not_block(r, raw):
    r.xgroup_create("s", "g", id="$", mkstream=True)
    w = raw()
    assert w.call("MULTI") == b"+OK\r\n"
    assert w.call("XREAD", "BLOCK", "0", "STREAMS", "s", "$") == b"+QUEUED\r\n"
    assert w.call("XREADGROUP", "GROUP", "g", "c", "BLOCK", "0", "STREAMS", "s", ">") == b"+QUEUED\r\n"
    assert w.call("EXEC") == b"*2\r\n" + NULL_ARRAY + NULL_ARRAY


def test_client_unblock_of_a_stream_reader(r, raw):
    w = raw()
    cid = int(w.call("CLIENT", "ID")[1:-2])
    w.send("XREAD", "BLOCK", "0", "STREAMS", "s", "$")
    wait_blocked(r, 1)
    assert r.client_unblock(cid) == 1
    assert w.reply() == NULL_ARRAY
    w.send("XREAD", "BLOCK", "0", "STREAMS", "s", "$")
    wait_blocked(r, 1)
    assert r.client_unblock(cid, error=True) == 1
    assert w.reply() == b"-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n"


# ---------------------------------------------------------------- router

@pytest.fixture(scope="module")
def two_shards():
    d = Deployment(shards=2)
    yield d
    d.stop()


def test_blocking_stream_reads_through_the_router(two_shards):
    port = two_shards.port
    client = redis.Redis(port=port)
    client.flushall()
    # two keys on different workers
    keys = {}
    i = 0
    while len(keys) < 2:
        k = f"stream:{i}".encode()
        keys.setdefault(owner(two_shards, k)["port"], k)
        i += 1
    (port_a, ka), (_, kb) = keys.items()
    client.xgroup_create(ka, "g", id="$", mkstream=True)
    reader, group_reader = Raw(port), Raw(port)
    try:
        reader.send("XREAD", "BLOCK", "0", "STREAMS", ka, "$")
        group_reader.send("XREADGROUP", "GROUP", "g", "c", "BLOCK", "0", "STREAMS", ka, ">")
        wait_blocked(redis.Redis(port=port_a), 2)
        # the other worker and the same worker still answer
        for n in range(20):
            client.xadd(kb, {"n": n})
        assert client.xlen(kb) == 20
        assert not reader.pending(0) and not group_reader.pending(0)
        client.xadd(ka, {"f": "v"}, id="1-1")
        expected = read_reply((ka, [(b"1-1", [b"f", b"v"])]))
        assert reader.reply() == expected
        assert group_reader.reply() == expected
        assert client.xpending(ka, "g")["pending"] == 1
        # the readers' connections go on normally
        assert reader.call("XLEN", kb) == b":20\r\n"
        assert group_reader.call("XREAD", "BLOCK", "50", "STREAMS", kb, "$") == NULL_ARRAY
    finally:
        reader.close()
        group_reader.close()
        client.close()


def test_every_group_reader_is_woken_when_the_key_goes(r, raw):
    r.xgroup_create("s", "g", id="$", mkstream=True)
    waiters = []
    for i in range(2):
        w = raw()
        w.send("XREADGROUP", "GROUP", "g", "c%d" % i, "BLOCK", "0", "STREAMS", "s", ">")
        wait_blocked(r, i + 1)
        waiters.append(w)
    r.delete("s")
    nogroup = b"-NOGROUP No such key 's' or consumer group 'g' in XREADGROUP with GROUP option\r\n"
    assert [w.reply() for w in waiters] == [nogroup, nogroup]
