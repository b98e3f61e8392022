"""Sets in-process: the SetValue model (encodings, order, conversions, the
SSCAN guarantee) and the set commands where the compat corpus cannot look:
random replies checked by their properties, propagation, keyspace events,
dirty counting. Byte-for-byte agreement with Valkey is tests/compat/corpus/sets.txt."""

import random

import pytest

from shardkv.native import _native
from shardkv.types.set import HASHTABLE, INTSET, LISTPACK, SetValue
from tests.commands.conftest import Session, cmds

LIMITS = (512, 128, 64)
enc = _native.py_encode_command


# ---------------------------------------------------------------- helpers

def parse(raw):
    """Decodes one RESP2/RESP3 reply (the types set commands send)."""
    value, rest = _parse(raw)
    assert rest == b"", raw
    return value


def _parse(raw):
    kind, line_end = raw[:1], raw.index(b"\r\n")
    head, rest = raw[1:line_end], raw[line_end + 2:]
    if kind in (b"+", b"-"):
        return (head if kind == b"+" else Exception(head.decode())), rest
    if kind == b":":
        return int(head), rest
    if kind == b"_":
        return None, rest
    if kind == b"$":
        n = int(head)
        if n < 0:
            return None, rest
        return rest[:n], rest[n + 2:]
    if kind in (b"*", b"~"):
        n = int(head)
        if n < 0:
            return None, rest
        out = []
        for _ in range(n):
            item, rest = _parse(rest)
            out.append(item)
        return (set(out) if kind == b"~" else out), rest
    raise AssertionError(raw)


def run(session, *args):
    return parse(session.run(*args))


def members(session, key):
    return set(run(session, "SMEMBERS", key))


def words(prefix, n):
    return [f"{prefix}{i}".encode() for i in range(n)]


@pytest.fixture
def events(server):
    seen = []
    server.keyspace_event_hook = lambda event, key, dbid: event in ("new", "keymiss") or seen.append((event, key))
    return seen


# ---------------------------------------------------------------- SetValue model

def test_create_picks_the_encoding_from_the_first_member_and_the_size_hint():
    assert SetValue.create(b"1", 3, LIMITS).encoding() == "intset"
    assert SetValue.create(b"x", 3, LIMITS).encoding() == "listpack"
    assert SetValue.create(b"1", 513, LIMITS).encoding() == "hashtable"
    assert SetValue.create(b"1", 100, (50, 128, 64)).encoding() == "listpack"
    assert SetValue.create(b"x", 129, LIMITS).encoding() == "hashtable"


def test_intset_iterates_numerically_and_listpack_in_insertion_order():
    s = SetValue(INTSET)
    for m in (b"10", b"-5", b"3", b"9223372036854775807", b"-9223372036854775808"):
        s.add(m, LIMITS)
    assert s.members() == [b"-9223372036854775808", b"-5", b"3", b"10", b"9223372036854775807"]
    s.add(b"x", LIMITS)
    assert s.encoding() == "listpack"
    assert s.members()[-1] == b"x" and s.members()[0] == b"-9223372036854775808"
    s.remove(b"3")
    s.add(b"3", LIMITS)
    assert s.members()[-1] == b"3"


def test_non_canonical_integers_leave_the_intset():
    for m in (b"01", b"+1", b"-0", b" 1", b"1.0", b"9223372036854775808", b""):
        s = SetValue(INTSET)
        s.add(b"1", LIMITS)
        s.add(m, LIMITS)
        assert s.encoding() == "listpack", m


def test_conversions_at_the_thresholds():
    s = SetValue(INTSET)
    for i in range(512):
        s.add(str(i).encode(), LIMITS)
    assert s.encoding() == "intset"
    s.add(b"512", LIMITS)
    assert s.encoding() == "hashtable" and len(s) == 513
    lp = SetValue(LISTPACK)
    for m in words("m", 128):
        lp.add(m, LIMITS)
    assert lp.encoding() == "listpack"
    lp.add(b"more", LIMITS)
    assert lp.encoding() == "hashtable"
    long = SetValue(LISTPACK)
    long.add(b"x" * 64, LIMITS)
    assert long.encoding() == "listpack"
    long.add(b"y" * 65, LIMITS)
    assert long.encoding() == "hashtable"


def test_intset_goes_to_hashtable_when_its_integers_are_too_wide():
    s = SetValue(INTSET)
    s.add(b"-1000", LIMITS)
    s.add(b"x", (512, 128, 4))
    assert s.encoding() == "hashtable"
    t = SetValue(INTSET)
    t.add(b"-100", LIMITS)
    t.add(b"x", (512, 128, 4))
    assert t.encoding() == "listpack"


def test_removal_never_converts_back():
    s = SetValue(INTSET)
    s.add(b"1", LIMITS)
    s.add(b"a", LIMITS)
    s.remove(b"a")
    assert s.encoding() == "listpack"
    h = SetValue(HASHTABLE)
    h.add(b"1", LIMITS)
    assert h.encoding() == "hashtable"


def test_hashtable_removal_keeps_the_index_consistent():
    s = SetValue(HASHTABLE)
    ms = words("m", 50)
    for m in ms:
        s.add(m, LIMITS)
    rng = random.Random(1)
    rng.shuffle(ms)
    for i, m in enumerate(ms):
        assert s.remove(m)
        assert not s.remove(m)
        assert sorted(s.members()) == sorted(ms[i + 1:])
        assert all(s.arr[s.d[x]] == x for x in s.d)


def test_copy_is_independent_and_keeps_encoding_and_order():
    s = SetValue(LISTPACK)
    for m in (b"c", b"a", b"b"):
        s.add(m, LIMITS)
    c = s.copy()
    assert c.encoding() == "listpack" and c.members() == [b"c", b"a", b"b"]
    c.add(b"d", LIMITS)
    assert len(s) == 3


def test_digest_depends_on_contents_only():
    a = SetValue(LISTPACK)
    b = SetValue(HASHTABLE)
    for m in (b"x", b"1", b"y"):
        a.add(m, LIMITS)
    for m in (b"y", b"x", b"1"):
        b.add(m, LIMITS)
    assert list(a.digest_parts()) == list(b.digest_parts())
    b.add(b"z", LIMITS)
    assert list(a.digest_parts()) != list(b.digest_parts())


def test_memory_usage_grows_with_the_set():
    s = SetValue(INTSET)
    small = s.memory_usage()
    for m in words("m", 300):
        s.add(m, LIMITS)
    assert isinstance(small, int) and s.memory_usage() > small


@pytest.mark.parametrize("enc_", [INTSET, LISTPACK, HASHTABLE])
def test_pop_many_removes_exactly_the_returned_members(enc_):
    for count in (1, 5, 15, 19):
        s = SetValue(enc_)
        ms = [str(i).encode() for i in range(20)] if enc_ == INTSET else words("w", 20)
        for m in ms:
            s.add(m, LIMITS)
        before = s.members()
        popped = s.pop_many(count, LIMITS)
        assert len(popped) == len(set(popped)) == count
        assert set(popped) | set(s.members()) == set(before)
        assert not set(popped) & set(s.members())
        if enc_ == LISTPACK:
            # a listpack keeps its order, and pops in that order
            assert s.members() == [m for m in before if m in s]
            assert popped == [m for m in before if m in set(popped)]


def test_pop_many_rebuilds_a_hashtable_with_few_survivors_as_a_listpack():
    s = SetValue(HASHTABLE)
    for m in words("m", 200):
        s.add(m, LIMITS)
    s.pop_many(150, LIMITS)
    assert s.encoding() == "hashtable" and len(s) == 50
    s.pop_many(45, LIMITS)
    assert s.encoding() == "listpack" and len(s) == 5
    i = SetValue(HASHTABLE)
    for n in range(600):
        i.add(str(n).encode(), LIMITS)
    i.pop_many(590, LIMITS)
    assert i.encoding() == "listpack"


def test_scan_returns_every_member_present_throughout():
    rng = random.Random(7)
    s = SetValue(HASHTABLE)
    stable = words("s", 300)
    for m in stable:
        s.add(m, LIMITS)
    seen = []
    cursor, first = 0, True
    n = 0
    while first or cursor != 0:
        first = False
        cursor, batch = s.scan(cursor, rng.randint(1, 20))
        seen += batch
        # churn between calls: others come and go, the stable ones stay
        for _ in range(10):
            m = b"churn%d" % rng.randrange(1000)
            if rng.random() < 0.6:
                s.add(m, LIMITS)
            else:
                s.remove(m)
        n += 1
        assert n < 10000
    assert set(stable) <= set(seen)
    stable_seen = [m for m in seen if m.startswith(b"s")]
    assert len(stable_seen) == len(set(stable_seen))


def test_scan_count_bounds_the_batch():
    s = SetValue(HASHTABLE)
    for m in words("m", 100):
        s.add(m, LIMITS)
    cursor, batch = s.scan(0, 10)
    assert len(batch) == 10 and cursor != 0
    cursor, batch = s.scan(0, 1000)
    assert len(batch) == 100 and cursor == 0


# ---------------------------------------------------------------- commands

def test_sadd_srem_basics(session):
    assert run(session, "SADD", "s", "a", "b", "a") == 2
    assert run(session, "SCARD", "s") == 2
    assert run(session, "SREM", "s", "a", "x") == 1
    assert run(session, "SREM", "s", "b") == 1
    assert run(session, "EXISTS", "s") == 0


def test_smembers_is_a_resp3_set(server):
    s = Session(server, proto=3)
    s.run("SADD", "s", "3", "1", "2")
    assert s.run("SMEMBERS", "s") == b"~3\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n"
    assert s.run("SMEMBERS", "missing") == b"~0\r\n"
    assert s.run("SRANDMEMBER", "s", "5") == b"*3\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n"
    assert s.run("SPOP", "missing", "1") == b"~0\r\n"


@pytest.mark.parametrize("n", [5, 20, 200, 600])
def test_spop_count_properties(session, n):
    ms = [str(i).encode() for i in range(n)] if n != 200 else words("m", n)
    session.run("SADD", "s", *ms)
    popped = []
    for count in (1, 3, n // 2):
        got = run(session, "SPOP", "s", count)
        assert isinstance(got, list) and len(got) == len(set(got)) == min(count, n - len(popped))
        popped += got
    rest = members(session, "s")
    assert set(popped) | set(rest) == set(ms)
    assert not set(popped) & set(rest)
    last = run(session, "SPOP", "s", n)
    assert set(last) == set(rest)
    assert run(session, "EXISTS", "s") == 0


def test_spop_single_until_empty(session):
    ms = words("m", 10)
    session.run("SADD", "s", *ms)
    got = [run(session, "SPOP", "s") for _ in range(10)]
    assert sorted(got) == sorted(ms)
    assert run(session, "EXISTS", "s") == 0
    assert run(session, "SPOP", "s") is None


@pytest.mark.parametrize("n", [6, 200])
def test_srandmember_properties(session, n):
    ms = words("m", n)
    session.run("SADD", "s", *ms)
    for count in (1, 2, n // 3, n // 2, n - 1, n, n + 5):
        got = run(session, "SRANDMEMBER", "s", count)
        assert len(got) == len(set(got)) == min(count, n)
        assert set(got) <= set(ms)
    for count in (1, 3, n, 3 * n):
        got = run(session, "SRANDMEMBER", "s", -count)
        assert len(got) == count and set(got) <= set(ms)
    assert run(session, "SRANDMEMBER", "s") in ms
    assert run(session, "SCARD", "s") == n


def test_srandmember_listpack_sample_keeps_listpack_order(session):
    ms = words("w", 20)
    session.run("SADD", "s", *ms)
    for _ in range(20):
        got = run(session, "SRANDMEMBER", "s", 7)
        assert got == sorted(got, key=ms.index)


def test_srandmember_refuses_an_absurd_negative_count(session):
    session.run("SADD", "s", "a")
    assert session.run("SRANDMEMBER", "s", "-9223372036854775807").startswith(b"-ERR out of memory")
    assert run(session, "SCARD", "s") == 1


def test_sscan_hashtable_full_iteration(session):
    ms = words("m", 500)
    session.run("SADD", "s", *ms)
    seen, cursor = [], b"0"
    while True:
        cursor, batch = run(session, "SSCAN", "s", cursor, "COUNT", "25")
        seen += batch
        if cursor == b"0":
            break
    assert sorted(seen) == sorted(ms)
    cursor, batch = run(session, "SSCAN", "s", "0", "MATCH", "m1?", "COUNT", "1000")
    assert cursor == b"0" and sorted(batch) == sorted(words("m", 20)[10:20])


def test_sscan_small_set_ignores_the_cursor(session):
    session.run("SADD", "s", "b", "a")
    assert run(session, "SSCAN", "s", "777", "COUNT", "1") == [b"0", [b"b", b"a"]]


# ---------------------------------------------------------------- propagation

def test_spop_propagates_as_srem(session, feed):
    session.run("SADD", "s", "a", "b", "c")
    feed.clear()
    m = run(session, "SPOP", "s")
    assert b"".join(feed) == cmds(["SREM", "s", m])


def test_spop_count_propagates_srem_batches_in_one_transaction(session, feed):
    session.run("SADD", "s", *words("m", 3000))
    feed.clear()
    popped = run(session, "SPOP", "s", 2500)
    batches = [popped[i:i + 1024] for i in range(0, 2500, 1024)]
    assert b"".join(feed) == cmds(["MULTI"], *[["SREM", "s", *b] for b in batches], ["EXEC"])


def test_spop_of_the_whole_set_propagates_unlink_or_del(server, session, feed):
    session.run("SADD", "s", "a", "b")
    feed.clear()
    session.run("SPOP", "s", "5")
    assert b"".join(feed) == cmds(["UNLINK", "s"])
    server.config.set("lazyfree-lazy-server-del", "no")
    session.run("SADD", "s", "a")
    feed.clear()
    session.run("SPOP", "s", "1")
    assert b"".join(feed) == cmds(["DEL", "s"])


def test_set_writes_that_change_nothing_are_not_propagated(server, session, feed):
    session.run("SADD", "s", "a")
    feed.clear()
    dirty = server.dirty
    session.run("SADD", "s", "a")
    session.run("SREM", "s", "x")
    session.run("SREM", "missing", "x")
    session.run("SPOP", "s", "0")
    session.run("SPOP", "missing")
    session.run("SMOVE", "s", "s", "a")
    session.run("SMOVE", "s", "d", "x")
    session.run("SINTERSTORE", "d", "s", "missing")
    session.run("SUNIONSTORE", "d", "missing")
    assert feed == [] and server.dirty == dirty


def test_set_writes_are_propagated_verbatim_and_counted(server, session, feed):
    dirty = server.dirty
    session.run("SADD", "s", "a", "b", "a")
    assert server.dirty == dirty + 2
    session.run("SMOVE", "s", "d", "a")
    assert server.dirty == dirty + 4
    session.run("SUNIONSTORE", "u", "s", "d")
    assert server.dirty == dirty + 5
    assert b"".join(feed) == cmds(["SELECT", "0"], ["SADD", "s", "a", "b", "a"],
                                  ["SMOVE", "s", "d", "a"], ["SUNIONSTORE", "u", "s", "d"])


# ---------------------------------------------------------------- keyspace events

def test_keyspace_events(session, events):
    session.run("SADD", "s", "a", "b")
    session.run("SADD", "s", "a")
    session.run("SREM", "s", "a")
    session.run("SMOVE", "s", "d", "b")
    session.run("SINTERSTORE", "i", "d")
    session.run("SUNIONSTORE", "u", "d")
    session.run("SDIFFSTORE", "x", "d", "missing")
    session.run("SDIFFSTORE", "x", "missing")
    session.run("SPOP", "d")
    assert events == [
        ("sadd", b"s"), ("srem", b"s"), ("srem", b"s"), ("del", b"s"), ("sadd", b"d"),
        ("sinterstore", b"i"), ("sunionstore", b"u"), ("sdiffstore", b"x"), ("del", b"x"),
        ("spop", b"d"), ("del", b"d"),
    ]


def test_spop_count_events(session, events):
    session.run("SADD", "s", "a", "b", "c")
    events.clear()
    session.run("SPOP", "s", "1")
    session.run("SPOP", "s", "5")
    assert events == [("spop", b"s"), ("spop", b"s"), ("del", b"s")]


# ---------------------------------------------------------------- stores

def test_store_replaces_any_type_and_drops_the_ttl(session):
    session.run("SET", "d", "v", "EX", "100")
    session.run("SADD", "a", "x")
    assert run(session, "SDIFFSTORE", "d", "a") == 1
    assert run(session, "TTL", "d") == -1
    assert run(session, "TYPE", "d") == b"set"


def test_store_with_the_destination_among_the_sources(session):
    session.run("SADD", "a", "1", "2", "3")
    session.run("SADD", "b", "2", "3", "4")
    assert run(session, "SINTERSTORE", "a", "a", "b") == 2
    assert members(session, "a") == {b"2", b"3"}
    assert run(session, "SUNIONSTORE", "b", "b", "a") == 3
    assert run(session, "SDIFFSTORE", "b", "b", "a") == 1
    assert members(session, "b") == {b"4"}
