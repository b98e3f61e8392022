"""Hashes in process: the Hash value protocol, what hash writes propagate
(checked against what valkey 9.1 writes to its append-only file), keyspace
events, the active expiry of fields, HSCAN's guarantee over a changing hash
and HRANDFIELD's rules (by property: its choices are random)."""

import pytest

from shardkv.commands import hashes
from shardkv.native import _native
from shardkv.types.hash import Hash
from tests.commands.conftest import Session, cmds

enc = _native.py_encode_command


def fed(feed):
    """The propagated commands after the first SELECT."""
    data = b"".join(feed)
    select = cmds(["SELECT", "0"])
    return data[len(select):] if data.startswith(select) else data


def parse(raw):
    """A RESP reply as Python values (enough for these tests)."""
    def one(i):
        t = raw[i:i + 1]
        j = raw.index(b"\r\n", i)
        head = raw[i + 1:j]
        if t in (b"+", b"-"):
            return head, j + 2
        if t == b":":
            return int(head), j + 2
        if t == b"$":
            n = int(head)
            if n < 0:
                return None, j + 2
            return raw[j + 2:j + 2 + n], j + 4 + n
        if t == b"_":
            return None, j + 2
        if t in (b"*", b"%", b"~"):
            n = int(head) * (2 if t == b"%" else 1)
            out, k = [], j + 2
            for _ in range(n):
                v, k = one(k)
                out.append(v)
            return out, k
        raise AssertionError(raw[i:])
    value, end = one(0)
    assert end == len(raw)
    return value


def run(session, *args):
    return parse(session.run(*args))


def hash_at(server, key, db=0):
    return server.peek(server.dbs[db], key)


def expire_now(server, key, *fields):
    """Puts fields of the hash at key past their time (1 ms after the epoch)."""
    h = hash_at(server, key)
    for f in fields:
        assert h.set_expire(f, 1, 0, False) == 1


@pytest.fixture
def events(server):
    seen = []
    server.keyspace_event_hook = lambda event, key, dbid: event in ("new", "keymiss") or seen.append((event, key))
    return seen


# ---------------------------------------------------------------- the value

def test_value_protocol():
    h = Hash()
    assert h.TYPE_NAME == "hash"
    assert h.encoding() == "listpack"
    h.set(b"a", b"1", 0, 512, 64)
    h.set(b"b", b"2", 0, 512, 64)
    assert h.memory_usage() > 0
    c = h.copy()
    c.set(b"a", b"changed", 0, 512, 64)
    c.set_expire(b"b", 10**15, 0, False)
    assert h.get(b"a", 0) == b"1" and not h.ttl
    assert c.encoding() == "hashtable" and h.encoding() == "listpack"
    other = Hash()
    other.set(b"b", b"2", 0, 512, 64)
    other.set(b"a", b"1", 0, 512, 64)
    assert list(h.digest_parts()) == list(other.digest_parts())
    assert list(c.digest_parts()) != list(h.digest_parts())


def test_hashtable_encoding_is_sticky(server, session):
    server.config.set("hash-max-listpack-entries", "2")
    session.run("HSET", "h", "a", "1", "b", "2", "c", "3")
    assert run(session, "OBJECT", "ENCODING", "h") == b"hashtable"
    session.run("HDEL", "h", "b", "c")
    assert run(session, "OBJECT", "ENCODING", "h") == b"hashtable"
    assert run(session, "TYPE", "h") == b"hash"


def test_listpack_order_follows_insertion(session):
    session.run("HSET", "h", "z", "1", "y", "2", "x", "3")
    session.run("HSET", "h", "y", "20")
    session.run("HDEL", "h", "z")
    session.run("HSET", "h", "z", "4")
    assert run(session, "HKEYS", "h") == [b"y", b"x", b"z"]


def test_resp3_hgetall_is_a_map(server):
    s = Session(server, proto=3)
    s.run("HSET", "h", "a", "1")
    assert s.run("HGETALL", "h") == b"%1\r\n$1\r\na\r\n$1\r\n1\r\n"
    assert s.run("HGETALL", "missing") == b"%0\r\n"


# ---------------------------------------------------------------- propagation

def test_plain_writes_propagate_as_sent(session, feed):
    session.run("HSET", "h", "a", "1")
    session.run("HSET", "h", "a", "1")
    session.run("HINCRBY", "h", "a", "1")
    session.run("HSETNX", "h", "n", "1")
    session.run("HDEL", "h", "n")
    session.run("HGETDEL", "h", "FIELDS", "1", "a")
    assert fed(feed) == cmds(["HSET", "h", "a", "1"], ["HSET", "h", "a", "1"],
                             ["HINCRBY", "h", "a", "1"], ["HSETNX", "h", "n", "1"],
                             ["HDEL", "h", "n"], ["HGETDEL", "h", "FIELDS", "1", "a"])


def test_writes_that_change_nothing_are_not_propagated(server, session, feed):
    session.run("HSET", "h", "a", "1")
    feed.clear()
    dirty = server.dirty
    session.run("HDEL", "h", "zz")
    session.run("HDEL", "missing", "a")
    session.run("HSETNX", "h", "a", "2")
    session.run("HPERSIST", "h", "FIELDS", "1", "a")
    session.run("HEXPIRE", "h", "100", "XX", "FIELDS", "1", "a")
    session.run("HEXPIRE", "missing", "100", "FIELDS", "1", "a")
    session.run("HGETEX", "h", "PERSIST", "FIELDS", "1", "a")
    session.run("HGETDEL", "h", "FIELDS", "1", "zz")
    session.run("HSETEX", "h", "NX", "FIELDS", "1", "a", "1")
    session.run("HINCRBY", "h", "a", "x")
    assert feed == [] and server.dirty == dirty


def test_hset_counts_every_pair_as_a_change(server, session):
    session.run("HSET", "h", "a", "1", "b", "2")
    before = server.dirty
    session.run("HSET", "h", "a", "1", "b", "2")
    assert server.dirty == before + 2


def test_hincrbyfloat_propagates_its_result(session, feed):
    session.run("HINCRBYFLOAT", "h", "f", "1.5")
    session.run("HINCRBYFLOAT", "h", "f", "0.25")
    assert fed(feed) == cmds(["HSET", "h", "f", "1.5"], ["HSET", "h", "f", "1.75"])


def test_counters_on_a_field_with_a_ttl_propagate_hsetex_pxat(session, feed):
    session.run("HSET", "h", "a", "1", "b", "2")
    session.run("HPEXPIREAT", "h", "4000000000000", "FIELDS", "1", "a")
    feed.clear()
    session.run("HINCRBY", "h", "a", "1")
    session.run("HINCRBYFLOAT", "h", "a", "1")
    session.run("HINCRBY", "h", "b", "1")
    session.run("HSETNX", "h", "zz", "1")
    assert fed(feed) == cmds(
        ["HSETEX", "h", "PXAT", "4000000000000", "FIELDS", "1", "a", "2"],
        ["HSETEX", "h", "PXAT", "4000000000000", "FIELDS", "1", "a", "3"],
        ["HSET", "h", "b", "3"],
        ["HSET", "h", "zz", "1"])


def test_relative_field_expiry_becomes_hpexpireat(server, session, feed):
    session.run("HSET", "h", "a", "1")
    feed.clear()
    session.run("HEXPIRE", "h", "100", "fields", "2", "a", "zz")
    data = fed(feed)
    assert data.startswith(b"*7\r\n$10\r\nHPEXPIREAT\r\n$1\r\nh\r\n$13\r\n")
    assert data.endswith(cmds(["fields", "2", "a", "zz"])[4:])
    feed.clear()
    session.run("HEXPIREAT", "h", "4000000000", "NX", "FIELDS", "1", "a")
    session.run("HEXPIREAT", "h", "4000000000", "FIELDS", "1", "a")
    session.run("hpexpireat", "h", "4000000000000", "FIELDS", "1", "a")
    assert fed(feed) == cmds(["HPEXPIREAT", "h", "4000000000000", "FIELDS", "1", "a"],
                             ["hpexpireat", "h", "4000000000000", "FIELDS", "1", "a"])


def test_past_expiry_propagates_hdel(session, feed, events):
    session.run("HSET", "h", "a", "1", "b", "2", "c", "3")
    feed.clear()
    events.clear()
    assert run(session, "HEXPIRE", "h", "0", "FIELDS", "3", "b", "zz", "c") == [2, -2, 2]
    assert fed(feed) == cmds(["HDEL", "h", "b", "c"])
    assert events == [("hexpired", b"h")]
    feed.clear()
    events.clear()
    session.run("HPEXPIREAT", "h", "1", "FIELDS", "1", "a")
    assert fed(feed) == cmds(["HDEL", "h", "a"])
    assert events == [("hexpired", b"h"), ("del", b"h")]
    assert run(session, "EXISTS", "h") == 0


def test_hsetex_propagation(session, feed):
    session.run("HSETEX", "h", "EX", "100", "FIELDS", "1", "c", "3")
    session.run("HSETEX", "h", "xx", "fnx", "FIELDS", "1", "q", "3")
    session.run("HSETEX", "h", "KEEPTTL", "FIELDS", "1", "c", "4")
    session.run("HSETEX", "h", "PXAT", "4000000000000", "FIELDS", "1", "c", "4")
    session.run("HSETEX", "h", "NX", "FIELDS", "1", "z", "4")
    session.run("HSETEX", "h", "EX", "0", "FIELDS", "2", "c", "5", "zz", "1")
    session.run("HSETEX", "h", "EX", "0", "FIELDS", "1", "zz", "1")
    out = fed(feed)
    rest = cmds(
        ["HSETEX", "h", "FIELDS", "1", "q", "3"],
        ["HSETEX", "h", "KEEPTTL", "FIELDS", "1", "c", "4"],
        ["HSETEX", "h", "PXAT", "4000000000000", "FIELDS", "1", "c", "4"],
        ["HDEL", "h", "c"])
    first = out[:len(out) - len(rest)]
    assert first.startswith(b"*8\r\n$6\r\nHSETEX\r\n$1\r\nh\r\n$4\r\nPXAT\r\n")
    assert first.endswith(cmds(["FIELDS", "1", "c", "3"])[4:])
    assert out.endswith(rest)


def test_hsetex_keepttl_over_an_expired_field_deletes_it_first(server, session, feed):
    session.run("HSET", "h", "a", "1", "b", "2")
    expire_now(server, b"h", b"a")
    feed.clear()
    session.run("HSETEX", "h", "KEEPTTL", "FIELDS", "1", "a", "9")
    # two writes of one command reach replicas as one transaction
    assert fed(feed) == cmds(["MULTI"], ["HDEL", "h", "a"],
                             ["HSETEX", "h", "KEEPTTL", "FIELDS", "1", "a", "9"], ["EXEC"])
    assert run(session, "HTTL", "h", "FIELDS", "1", "a") == [-1]


def test_hgetex_propagation(session, feed):
    session.run("HSET", "h", "a", "1", "b", "2")
    feed.clear()
    session.run("HGETEX", "h", "EXAT", "4000000000", "FIELDS", "2", "a", "zz")
    session.run("HGETEX", "h", "PERSIST", "FIELDS", "3", "a", "b", "zz")
    session.run("HGETEX", "h", "EX", "0", "FIELDS", "2", "zz", "b")
    assert fed(feed) == cmds(["HPEXPIREAT", "h", "4000000000000", "FIELDS", "1", "a"],
                             ["HPERSIST", "h", "FIELDS", "1", "a"],
                             ["HDEL", "h", "b"])


# ---------------------------------------------------------------- events

def test_keyspace_events(server, session, events):
    session.run("HSET", "h", "a", "1", "b", "2")
    session.run("HINCRBY", "h", "a", "1")
    session.run("HINCRBYFLOAT", "h", "a", "1")
    session.run("HSETEX", "h", "EX", "100", "FIELDS", "1", "a", "1")
    session.run("HPERSIST", "h", "FIELDS", "1", "a")
    session.run("HDEL", "h", "a")
    session.run("HGETDEL", "h", "FIELDS", "1", "b")
    assert events == [("hset", b"h"), ("hincrby", b"h"), ("hincrbyfloat", b"h"),
                      ("hset", b"h"), ("hexpire", b"h"), ("hpersist", b"h"),
                      ("hdel", b"h"), ("hdel", b"h"), ("del", b"h")]


def test_overwriting_an_expired_field_reports_hexpired(server, session, events):
    session.run("HSET", "h", "a", "1", "b", "2")
    expire_now(server, b"h", b"a")
    events.clear()
    assert run(session, "HSET", "h", "a", "3") == 1
    assert events == [("hexpired", b"h"), ("hset", b"h")]
    assert hashes.expired_fields(server) == 1


def test_watch_sees_field_changes(server):
    a, b = Session(server), Session(server)
    a.run("HSET", "h", "f", "1")
    a.run("WATCH", "h")
    b.run("HDEL", "h", "zz")          # no change: the transaction still runs
    a.run("MULTI")
    a.run("HGET", "h", "f")
    assert a.run("EXEC") == b"*1\r\n$1\r\n1\r\n"
    a.run("WATCH", "h")
    b.run("HEXPIRE", "h", "100", "FIELDS", "1", "f")
    a.run("MULTI")
    a.run("HGET", "h", "f")
    assert a.run("EXEC") == b"*-1\r\n"


# ---------------------------------------------------------------- field expiry

def test_expired_fields_are_invisible_but_counted_until_reclaimed(server, session):
    session.run("HSET", "h", "a", "1", "b", "2")
    expire_now(server, b"h", b"a", b"b")
    assert run(session, "HGETALL", "h") == []
    assert run(session, "HLEN", "h") == 2
    assert run(session, "EXISTS", "h") == 1
    assert run(session, "HDEL", "h", "a") == 0


def test_active_expiry_reclaims_fields_and_the_key(server, session, feed, events):
    session.run("HSET", "h", "a", "1", "b", "2", "c", "3")
    session.run("HSET", "g", "a", "1")
    session.run("HEXPIRE", "h", "100000", "FIELDS", "1", "c")
    session.run("HEXPIRE", "g", "100000", "FIELDS", "1", "a")
    expire_now(server, b"h", b"a", b"b")
    expire_now(server, b"g", b"a")
    feed.clear()
    events.clear()
    assert hashes.active_expire_fields(server) == 3
    data = fed(feed)
    assert cmds(["HDEL", "h", "a", "b"]) in data
    assert cmds(["MULTI"], ["HDEL", "g", "a"], ["DEL", "g"], ["EXEC"]) in data
    assert ("hexpired", b"h") in events and ("del", b"g") in events
    assert run(session, "HLEN", "h") == 1
    assert run(session, "EXISTS", "g") == 0
    assert hashes.keys_with_volatile_items(server, server.dbs[0]) == 1
    assert hashes.expired_fields(server) == 3


def test_active_expiry_reclaims_many_fields_in_batches(server, session, feed):
    fields = [f"f{i}" for i in range(200)]
    session.run("HSET", "h", "keep", "1", *[x for f in fields for x in (f, "v")])
    session.run("HEXPIRE", "h", "100000", "FIELDS", "200", *fields)
    expire_now(server, b"h", *[f.encode() for f in fields])
    feed.clear()
    assert hashes.active_expire_fields(server, 1_000_000) == 200
    assert fed(feed).count(b"$4\r\nHDEL\r\n") == 3
    assert run(session, "HLEN", "h") == 1


def test_the_timer_honours_debug_set_active_expire(server, session):
    session.run("HSET", "h", "a", "1", "b", "2")
    session.run("HEXPIRE", "h", "100000", "FIELDS", "1", "a")
    state = server.hash_state
    assert state.timer is not None
    expire_now(server, b"h", b"a")
    session.run("DEBUG", "SET-ACTIVE-EXPIRE", "0")
    hashes._timer_fired(server)
    assert run(session, "HLEN", "h") == 2
    assert state.timer is not None        # still armed: the key still has a TTL
    session.run("DEBUG", "SET-ACTIVE-EXPIRE", "1")
    hashes._timer_fired(server)
    assert run(session, "HLEN", "h") == 1
    assert state.timer is None            # nothing left to watch


def test_renamed_and_copied_hashes_keep_their_field_ttls(server, session):
    session.run("HSET", "{t}h", "a", "1", "b", "2")
    session.run("HEXPIRE", "{t}h", "100000", "FIELDS", "1", "a")
    session.run("COPY", "{t}h", "{t}c")
    session.run("RENAME", "{t}h", "{t}r")
    assert run(session, "HTTL", "{t}c", "FIELDS", "2", "a", "b") == [100000, -1]
    assert run(session, "HTTL", "{t}r", "FIELDS", "1", "a") == [100000]
    expire_now(server, b"{t}c", b"a")
    expire_now(server, b"{t}r", b"a")
    assert hashes.active_expire_fields(server) == 2
    assert run(session, "HLEN", "{t}c") == 1 and run(session, "HLEN", "{t}r") == 1


def test_flushall_forgets_tracked_keys(server, session):
    session.run("HSET", "h", "a", "1")
    session.run("HEXPIRE", "h", "100000", "FIELDS", "1", "a")
    session.run("FLUSHALL")
    assert hashes.active_expire_fields(server) == 0
    assert hashes.keys_with_volatile_items(server, server.dbs[0]) == 0


def test_field_ttl_on_a_replica_is_kept_not_deleted(server, session):
    session.run("HSET", "h", "a", "1")
    server.is_replica = True
    server.replica_read_only = False   # a writable replica: its own client may write
    try:
        assert run(session, "HPEXPIREAT", "h", "1", "FIELDS", "1", "a") == [1]
        assert run(session, "HLEN", "h") == 1
    finally:
        server.is_replica = False
        server.replica_read_only = True


# ---------------------------------------------------------------- HSCAN

def scan_all(session, key, count, between=None):
    cursor, seen, calls = b"0", [], 0
    while True:
        cursor, items = run(session, "HSCAN", key, cursor, "COUNT", count, "NOVALUES")
        seen.extend(items)
        calls += 1
        if between is not None:
            between(calls)
        if cursor == b"0":
            return seen, calls


def test_hscan_of_a_big_hash_returns_every_field_once(server, session):
    args = []
    for i in range(1000):
        args += [f"f{i}", str(i)]
    session.run("HSET", "h", *args)
    assert run(session, "OBJECT", "ENCODING", "h") == b"hashtable"
    seen, calls = scan_all(session, "h", 10)
    assert sorted(seen) == sorted(f"f{i}".encode() for i in range(1000))
    assert calls > 50


def test_hscan_guarantee_while_the_hash_changes(server, session):
    args = []
    for i in range(600):
        args += [f"f{i}", str(i)]
    session.run("HSET", "h", *args)
    other = Session(server)
    stable = {f"f{i}".encode() for i in range(600) if i % 3}

    def churn(call):
        # delete some fields that are not stable, add new ones, re-add
        for i in range(call * 3, call * 3 + 3):
            if i % 3 == 0 and i < 600:
                other.run("HDEL", "h", f"f{i}")
        other.run("HSET", "h", f"new{call}", "x")
        if call % 5 == 0:
            other.run("HDEL", "h", f"new{call - 1}")
            other.run("HSET", "h", f"new{call - 1}", "again")

    seen, _ = scan_all(session, "h", 7, churn)
    assert stable <= set(seen)
    stable_seen = [f for f in seen if f in stable]
    assert len(stable_seen) == len(set(stable_seen))


def test_hscan_match_and_values_on_a_hashtable(server, session):
    server.config.set("hash-max-listpack-entries", "1")
    session.run("HSET", "h", "a1", "x", "a2", "y", "b1", "z")
    reply = run(session, "HSCAN", "h", "0", "MATCH", "a*", "COUNT", "100")
    assert reply[0] == b"0"
    pairs = dict(zip(reply[1][::2], reply[1][1::2], strict=True))
    assert pairs == {b"a1": b"x", b"a2": b"y"}


def test_hscan_skips_expired_fields(server, session):
    server.config.set("hash-max-listpack-entries", "1")
    session.run("HSET", "h", "a", "1", "b", "2")
    expire_now(server, b"h", b"a")
    assert run(session, "HSCAN", "h", "0") == [b"0", [b"b", b"2"]]


# ---------------------------------------------------------------- HRANDFIELD

@pytest.fixture(params=["listpack", "hashtable"])
def filled(request, server, session):
    if request.param == "hashtable":
        server.config.set("hash-max-listpack-entries", "4")
    args = []
    for i in range(20):
        args += [f"f{i}", f"v{i}"]
    session.run("HSET", "h", *args)
    assert run(session, "OBJECT", "ENCODING", "h") == request.param.encode()
    return {f"f{i}".encode(): f"v{i}".encode() for i in range(20)}


def test_hrandfield_positive_count_is_distinct(session, filled):
    for count in (1, 5, 19, 20, 25):
        got = run(session, "HRANDFIELD", "h", count)
        assert len(got) == min(count, 20)
        assert len(set(got)) == len(got)
        assert set(got) <= set(filled)


def test_hrandfield_negative_count_repeats(session, filled):
    got = run(session, "HRANDFIELD", "h", -200)
    assert len(got) == 200
    assert set(got) <= set(filled)
    assert len(set(got)) < 200


def test_hrandfield_withvalues_pairs(server, session, filled):
    flat = run(session, "HRANDFIELD", "h", -30, "WITHVALUES")
    assert len(flat) == 60
    for f, v in zip(flat[::2], flat[1::2], strict=True):
        assert filled[f] == v
    s3 = Session(server, proto=3)
    nested = run(s3, "HRANDFIELD", "h", 7, "WITHVALUES")
    assert len(nested) == 7 and len({f for f, _ in nested}) == 7
    assert all(filled[f] == v for f, v in nested)


def test_hrandfield_without_count(session, filled):
    assert run(session, "HRANDFIELD", "h") in filled


def test_hrandfield_ignores_expired_fields(server, session):
    session.run("HSET", "h", "a", "1", "b", "2")
    expire_now(server, b"h", b"a")
    assert run(session, "HRANDFIELD", "h", -20) == [b"b"] * 20
    assert run(session, "HRANDFIELD", "h") == b"b"
    expire_now(server, b"h", b"b")
    assert run(session, "HRANDFIELD", "h") is None
    assert run(session, "HRANDFIELD", "h", -5) == []


def test_hrandfield_refuses_a_reply_no_one_could_hold(session):
    session.run("HSET", "h", "a", "1")
    assert session.run("HRANDFIELD", "h", -(1 << 40)).startswith(b"-ERR HRANDFIELD count")
