"""SORT / SORT_RO in-process: what the compat corpus cannot look at —
propagation, dirty counting, keyspace events, cluster-mode pattern checks,
key extraction and the weight parser. Byte-for-byte agreement with Valkey is
tests/compat/corpus/sort.txt."""

import pytest

from shardkv.commands.sort import _lookup_pattern, _pattern_slot, _score, _sort_getkeys
from shardkv.native import _native
from tests.commands.test_sets import cmds, parse

ROUTED = _native.CLIENT_FLAGS["ROUTED"]


def run(session, *args):
    return parse(session.run(*args))


@pytest.fixture
def events(server):
    seen = []
    server.keyspace_event_hook = lambda event, key, dbid: event in ("new", "keymiss") or seen.append((event, key))
    return seen


# ---------------------------------------------------------------- weights

@pytest.mark.parametrize("text,value", [
    (b"1", 1.0), (b"+3", 3.0), (b"-0", 0.0), (b".5", 0.5), (b"1.", 1.0), (b"1e3", 1000.0),
    (b"inf", float("inf")), (b"-INFINITY", float("-inf")), (b"1e-310", 1e-310),
    (b"1\x00garbage", 1.0), (b"0e-999", 0.0),
])
def test_score_accepts(text, value):
    assert _score(text) == value


@pytest.mark.parametrize("text", [
    b"", b" 1", b"1 ", b"0x10", b"nan", b"-nan", b"1e", b".e1", b"1_0", b"+-1",
    b"1e400", b"-1e400", b"2e-324", b"\x001", b"infin",
])
def test_score_rejects(text):
    assert _score(text) is None


def test_pattern_slot():
    slot = _native.key_slot
    assert _pattern_slot(b"w_*") == -1
    assert _pattern_slot(b"{t}w_*") == slot(b"t")  # the tag closes before the wildcard
    assert _pattern_slot(b"{t*}w_") == -1           # a wildcard first: any slot
    assert _pattern_slot(b"{t}w_") == slot(b"t")
    assert _pattern_slot(b"#") == slot(b"#")
    assert _pattern_slot(b"a{}b{c}") == slot(b"a{}b{c}")
    assert _pattern_slot(b"a\\b") == -1


def test_getkeys():
    a = lambda *w: [x.encode() for x in w]  # noqa: E731
    assert _sort_getkeys(a("SORT", "k")) == [1]
    assert _sort_getkeys(a("SORT", "k", "STORE", "d")) == [1, 3]
    assert _sort_getkeys(a("SORT", "k", "STORE", "d", "store", "e")) == [1, 5]
    assert _sort_getkeys(a("SORT", "k", "LIMIT", "0", "1", "BY", "store", "GET", "store")) == [1]
    assert _sort_getkeys(a("SORT", "k", "STORE")) == [1]


def test_lookup_pattern(server, session):
    c = session.client
    session.run("SET", "w_1", "x")
    session.run("HSET", "h_1", "f", "v")
    assert _lookup_pattern(c, b"#", b"1") == b"1"
    assert _lookup_pattern(c, b"w_*", b"1") == b"x"
    assert _lookup_pattern(c, b"w_", b"1") is None
    assert _lookup_pattern(c, b"h_*->f", b"1") == b"v"
    assert _lookup_pattern(c, b"h_*->g", b"1") is None
    assert _lookup_pattern(c, b"w_*->f", b"1") is None      # not a hash
    assert _lookup_pattern(c, b"h_*", b"1") is None         # not a string


# ---------------------------------------------------------------- propagation

def test_plain_sort_is_not_propagated(session, feed):
    session.run("RPUSH", "l", "2", "1")
    feed.clear()
    assert run(session, "SORT", "l") == [b"1", b"2"]
    assert run(session, "SORT_RO", "l", "DESC") == [b"2", b"1"]
    assert feed == []


def test_sort_store_propagates_as_is(server, session, feed, events):
    session.run("RPUSH", "l", "2", "1", "3")
    feed.clear()
    events.clear()
    dirty = server.dirty
    assert run(session, "SORT", "l", "STORE", "d") == 3
    assert b"".join(feed) == cmds(["SORT", "l", "STORE", "d"])
    assert server.dirty - dirty == 3
    assert events == [("sortstore", b"d")]
    assert run(session, "LRANGE", "d", "0", "-1") == [b"1", b"2", b"3"]


def test_sort_store_empty_deletes_and_propagates(server, session, feed, events):
    session.run("SET", "d", "x")
    feed.clear()
    events.clear()
    assert run(session, "SORT", "nokey", "STORE", "d") == 0
    assert b"".join(feed) == cmds(["SORT", "nokey", "STORE", "d"])
    assert events == [("del", b"d")]
    feed.clear()
    assert run(session, "SORT", "nokey", "STORE", "d") == 0
    assert feed == []                       # nothing changed


def test_sort_store_conversion_error_writes_nothing(session, feed):
    session.run("RPUSH", "l", "1", "x")
    feed.clear()
    assert isinstance(run(session, "SORT", "l", "STORE", "d"), Exception)
    assert run(session, "EXISTS", "d") == 0
    assert feed == []


def test_sort_store_of_hashtable_set_with_nosort_is_deterministic(server, session):
    server.config.set("set-max-listpack-entries", "2")
    session.run("SADD", "s", "c", "a", "b", "10")
    assert run(session, "SORT", "s", "BY", "nosort", "STORE", "d") == 4
    assert run(session, "LRANGE", "d", "0", "-1") == [b"10", b"a", b"b", b"c"]


# ---------------------------------------------------------------- cluster mode

def test_cluster_mode_patterns(server, session):
    server.cluster_enabled = True
    session.run("RPUSH", "{a}l", "1", "2", "3")
    session.run("MSET", "{a}w_1", "3", "{a}w_2", "2", "{a}w_3", "1", "{a}o_1", "x")
    err = run(session, "SORT", "{a}l", "BY", "w_*")
    assert str(err).startswith("ERR BY option of SORT denied in Cluster mode when")
    err = run(session, "SORT_RO", "{a}l", "BY", "{a}w_*", "GET", "o_*")
    assert str(err).startswith("ERR GET option of SORT denied in Cluster mode when")
    # a BY pattern without '*' is "don't sort": never refused
    assert run(session, "SORT", "{a}l", "BY", "nosort") == [b"1", b"2", b"3"]
    # a pattern whose hash tag pins it to the sorted key's slot is accepted
    assert run(session, "SORT", "{a}l", "BY", "{a}w_*") == [b"3", b"2", b"1"]
    assert isinstance(run(session, "SORT", "{a}l", "BY", "{b}w_*"), Exception)
    assert isinstance(run(session, "SORT", "{a}l", "GET", "#"), Exception)   # "#" hashes as a key
    # the router's own connections (ROUTED) are trusted: it checked the slots
    session.client.flags |= ROUTED
    assert run(session, "SORT", "{a}l", "BY", "w_*", "GET", "#") == [b"1", b"2", b"3"]
