"""Lists in process: the value's node layout against a plain Python list, the
encodings, what the list commands propagate, and blocked clients served,
timed out, unblocked and forgotten (the server's before-sleep step is run by
hand: these sessions have no event loop)."""

import random

import pytest

from shardkv.native import _native
from shardkv.types.list import LP_EMPTY_BYTES, ListValue, entry_size
from tests.commands.conftest import Session, cmds, settle, blocked, registered, value

enc = _native.py_encode_command
BLOCKED = _native.CLIENT_FLAGS["BLOCKED"]


# ---------------------------------------------------------------- the value

def check_layout(v):
    """Invariants of a ListValue: counts and byte sizes add up, no empty
    node in a quicklist, a listpack is one packed node."""
    assert v.count == sum(len(n) for n in v.nodes)
    for n in v.nodes:
        if n.plain:
            assert len(n) == 1 and n.sz == len(n[0])
        else:
            assert n.sz == LP_EMPTY_BYTES + sum(map(entry_size, n))
        if v.quick:
            assert n
    if not v.quick:
        assert len(v.nodes) == 1 and not v.nodes[0].plain


@pytest.mark.parametrize("fill", [-2, -1, 1, 3, 16])
def test_random_operations_match_a_python_list(fill):
    rng = random.Random(fill)
    v = ListValue()
    model = []

    def element():
        k = rng.random()
        if k < 0.4:
            return str(rng.randint(-70000, 70000)).encode()
        if k < 0.8:
            return b"e" * rng.randint(0, 120)
        return b"B" * rng.randint(3000, 9000)

    for _ in range(3000):
        op = rng.random()
        if op < 0.35 or not model:
            e = element()
            v.grow_check(fill, len(e), 1)
            if rng.random() < 0.5:
                v.push_head(e)
                model.insert(0, e)
            else:
                v.push_tail(e)
                model.append(e)
        elif op < 0.5:
            head = rng.random() < 0.5
            assert v.pop(head) == model.pop(0 if head else -1)
        elif op < 0.6:
            i = rng.randrange(len(model))
            e = element()
            v.grow_check(fill, len(e), 1)
            v.replace(i, e)
            model[i] = e
        elif op < 0.7:
            i = rng.randrange(len(model))
            e = element()
            after = rng.random() < 0.5
            v.grow_check(fill, len(e), 1)
            v.insert(i, e, after)
            model.insert(i + 1 if after else i, e)
        elif op < 0.78:
            a = rng.randrange(len(model))
            b = rng.randrange(a, len(model) + 1)
            v.delete_range(a, b)
            del model[a:b]
        elif op < 0.85:
            target = rng.choice(model)
            limit = rng.choice([0, 1, 2])
            from_tail = rng.random() < 0.5
            removed = v.remove(target, limit, from_tail)
            idx = [i for i, x in enumerate(model) if x == target]
            if from_tail:
                idx.reverse()
            if limit:
                idx = idx[:limit]
            assert removed == len(idx)
            for i in sorted(idx, reverse=True):
                del model[i]
        else:
            i = rng.randrange(len(model))
            assert v.index(i) == model[i]
            assert v.index(i - len(model)) == model[i]
            j = rng.randrange(i, len(model))
            assert v.range(i, j) == model[i:j + 1]
        if model:
            v.shrink_check(fill)
        check_layout(v)
        assert list(v) == model
        assert len(v) == len(model)


def test_matches_from_both_ends():
    v = ListValue()
    v.quick, v.fill, v.nodes = True, 2, []
    for e in b"a b a c a".split():
        v.push_tail(e)
    assert len(v.nodes) == 3
    assert list(v.matches(b"a")) == [0, 2, 4]
    assert list(v.matches(b"a", reverse=True)) == [4, 2, 0]
    assert list(v.matches(b"z")) == []


def test_entry_sizes_follow_the_listpack_encoding():
    assert entry_size(b"0") == 2 and entry_size(b"127") == 2
    assert entry_size(b"128") == 3 and entry_size(b"-4096") == 3
    assert entry_size(b"32767") == 4 and entry_size(b"8388607") == 5
    assert entry_size(b"2147483647") == 6 and entry_size(b"9223372036854775807") == 10
    # not canonical integers: strings
    assert entry_size(b"01") == 4 and entry_size(b"-0") == 4 and entry_size(b"9223372036854775808") == 21
    assert entry_size(b"x" * 63) == 65 and entry_size(b"x" * 64) == 67
    assert entry_size(b"x" * 126) == 130 and entry_size(b"x" * 4095) == 4099
    assert entry_size(b"x" * 4096) == 4103
    # back length: 2 bytes up to an entry of 16383 bytes, 3 above (measured on valkey)
    assert entry_size(b"x" * 16378) == 16385 and entry_size(b"x" * 16379) == 16387


def test_copy_is_independent():
    v = ListValue()
    for e in (b"a", b"b"):
        v.push_tail(e)
    w = v.copy()
    w.push_tail(b"c")
    assert list(v) == [b"a", b"b"] and list(w) == [b"a", b"b", b"c"]
    assert w.memory_usage() > 0
    assert b"".join(v.digest_parts()) != b"".join(w.digest_parts())


def test_a_million_elements_are_indexed_without_copying(session, server):
    """LINDEX/LSET in the middle walk nodes, not elements."""
    chunk = [b"%d" % i for i in range(10000)]
    for _ in range(100):
        session.run("RPUSH", "big", *chunk)
    v = value(server, b"big")
    assert v.count == 1_000_000 and len(v.nodes) < 1000
    assert session.run("LINDEX", "big", "500001") == b"$1\r\n1\r\n"
    assert session.run("LSET", "big", "500001", "mid") == b"+OK\r\n"
    assert session.run("LINDEX", "big", "-499999") == b"$3\r\nmid\r\n"
    assert session.run("LLEN", "big") == b":1000000\r\n"


# ---------------------------------------------------------------- commands

def test_push_pop_and_range(session):
    assert session.run("RPUSH", "l", "a", "b", "c") == b":3\r\n"
    assert session.run("LPUSH", "l", "z") == b":4\r\n"
    assert session.run("LRANGE", "l", "0", "-1") == b"*4\r\n$1\r\nz\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n"
    assert session.run("RPOP", "l", "2") == b"*2\r\n$1\r\nc\r\n$1\r\nb\r\n"
    assert session.run("LPOP", "l") == b"$1\r\nz\r\n"
    assert session.run("LPOP", "l") == b"$1\r\na\r\n"
    assert session.run("EXISTS", "l") == b":0\r\n"
    assert session.run("LPOP", "l", "1") == b"*-1\r\n"


def test_wrong_type(session):
    session.run("SET", "s", "v")
    for argv in (["LPUSH", "s", "a"], ["LLEN", "s"], ["LRANGE", "s", "0", "1"], ["BLPOP", "s", "0"],
                 ["LMOVE", "s", "d", "left", "left"], ["LMPOP", "1", "s", "left"]):
        assert session.run(*argv) == b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"


def test_encoding_follows_the_configured_limit(server, session):
    server.config.set("list-max-listpack-size", "3")
    session.run("RPUSH", "l", "a", "b", "c")
    assert session.run("OBJECT", "ENCODING", "l") == b"$8\r\nlistpack\r\n"
    session.run("RPUSH", "l", "d")
    assert session.run("OBJECT", "ENCODING", "l") == b"$9\r\nquicklist\r\n"
    session.run("RPOP", "l", "3")
    assert session.run("OBJECT", "ENCODING", "l") == b"$8\r\nlistpack\r\n"


def test_timeout_arguments(session):
    assert session.run("BLPOP", "k", "x") == b"-ERR timeout is not a float or out of range\r\n"
    assert session.run("BLPOP", "k", "-1") == b"-ERR timeout is negative\r\n"
    assert session.run("BLPOP", "k", "inf") == b"-ERR timeout is out of range\r\n"
    assert session.run("BLPOP", "k", "-inf") == b"-ERR timeout is negative\r\n"
    # -0.001 s is a hair above -1 ms in long double: rounded up it is 0, wait forever
    assert session.run("BLPOP", "k", "-0.001") == b""
    assert blocked(session)


# ---------------------------------------------------------------- propagation

def test_writes_propagate_as_they_are(session, feed):
    session.run("RPUSH", "l", "a", "b", "c")
    session.run("LPOP", "l")
    session.run("LMOVE", "l", "m", "LEFT", "RIGHT")
    session.run("LLEN", "l")
    assert b"".join(feed) == cmds(["SELECT", "0"], ["RPUSH", "l", "a", "b", "c"], ["LPOP", "l"],
                                  ["LMOVE", "l", "m", "LEFT", "RIGHT"])


def test_failed_and_empty_writes_are_not_propagated(session, feed):
    session.run("LPUSHX", "l", "a")
    session.run("LPOP", "l")
    session.run("LREM", "l", "0", "a")
    session.run("RPUSH", "l", "a")
    feed.clear()
    session.run("LTRIM", "l", "0", "-1")
    session.run("LREM", "l", "0", "zz")
    session.run("LINSERT", "l", "before", "zz", "x")
    session.run("LPOP", "l", "0")
    assert feed == []


def test_pops_of_a_chosen_key_propagate_what_they_did(session, feed):
    session.run("RPUSH", "b", "1", "2", "3")
    feed.clear()
    session.run("BLPOP", "a", "b", "0")
    session.run("BLMPOP", "0", "2", "a", "b", "LEFT", "COUNT", "1")
    session.run("BLMOVE", "b", "c", "right", "left", "0")
    session.run("BRPOPLPUSH", "c", "d", "0")
    assert b"".join(feed) == cmds(["LPOP", "b"], ["LPOP", "b", "1"],
                                  ["LMOVE", "b", "c", "right", "left"], ["RPOPLPUSH", "c", "d"])


def test_lmpop_propagates_the_count_it_popped(session, feed):
    session.run("RPUSH", "b", "1", "2", "3")
    feed.clear()
    session.run("LMPOP", "2", "a", "b", "RIGHT", "COUNT", "10")
    assert b"".join(feed) == cmds(["RPOP", "b", "3"])


# ---------------------------------------------------------------- blocking

def test_blocked_clients_are_served_in_arrival_order(server):
    waiters = [Session(server) for _ in range(3)]
    for w in waiters:
        assert w.run("BLPOP", "q", "0") == b""
        assert blocked(w)
    pusher = Session(server)
    assert pusher.run("RPUSH", "q", "1", "2") == b":2\r\n"
    settle(server)
    assert waiters[0].client.out.take() == b"*2\r\n$1\r\nq\r\n$1\r\n1\r\n"
    assert waiters[1].client.out.take() == b"*2\r\n$1\r\nq\r\n$1\r\n2\r\n"
    assert blocked(waiters[2]) and not blocked(waiters[0])
    assert pusher.run("EXISTS", "q") == b":0\r\n"
    pusher.run("LPUSH", "q", "3")
    settle(server)
    assert waiters[2].client.out.take() == b"*2\r\n$1\r\nq\r\n$1\r\n3\r\n"
    assert server.blocking.blocked_keys() == 0


def test_a_served_blocked_pop_propagates_as_a_pop(server, feed):
    w = Session(server)
    w.run("BRPOP", "a", "q", "0")
    p = Session(server)
    p.run("RPUSH", "q", "x", "y")
    settle(server)
    assert w.client.out.take() == b"*2\r\n$1\r\nq\r\n$1\r\ny\r\n"
    assert b"".join(feed) == cmds(["SELECT", "0"], ["RPUSH", "q", "x", "y"], ["RPOP", "q"])


def test_a_served_blmpop_pops_up_to_count(server, feed):
    w = Session(server)
    w.run("BLMPOP", "0", "2", "a", "q", "LEFT", "COUNT", "5")
    Session(server).run("RPUSH", "q", "x", "y")
    settle(server)
    assert w.client.out.take() == b"*2\r\n$1\r\nq\r\n*2\r\n$1\r\nx\r\n$1\r\ny\r\n"
    assert b"".join(feed).endswith(cmds(["LPOP", "q", "2"]))


def test_a_served_client_pops_from_its_first_non_empty_key(server):
    """As Valkey re-runs the blocked command: the key order of the command
    wins over the order in which keys became ready."""
    w = Session(server)
    w.run("BLPOP", "a", "b", "0")
    p = Session(server)
    p.run("MULTI")
    p.run("RPUSH", "b", "from-b")
    p.run("RPUSH", "a", "from-a")
    p.run("EXEC")
    settle(server)
    assert w.client.out.take() == b"*2\r\n$1\r\na\r\n$6\r\nfrom-a\r\n"


def test_push_inside_multi_wakes_only_after_exec(server):
    w = Session(server)
    w.run("BLPOP", "q", "0")
    p = Session(server)
    p.run("MULTI")
    p.run("RPUSH", "q", "x")
    p.run("LPOP", "q")
    p.run("RPUSH", "q", "y")
    assert p.run("EXEC") == b"*3\r\n:1\r\n$1\r\nx\r\n:1\r\n"
    settle(server)
    assert w.client.out.take() == b"*2\r\n$1\r\nq\r\n$1\r\ny\r\n"


def test_wrong_type_key_does_not_serve(server):
    w = Session(server)
    w.run("BLPOP", "a", "b", "0")
    p = Session(server)
    p.run("SET", "a", "str")
    settle(server)
    assert blocked(w)
    # b gets a list: the re-run command meets the string at a first
    p.run("RPUSH", "b", "x")
    settle(server)
    assert w.client.out.take() == b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
    assert not blocked(w)
    assert p.run("LLEN", "b") == b":1\r\n"


def test_blmove_chain_wakes_the_next_waiter(server, feed):
    mover = Session(server)
    assert mover.run("BLMOVE", "src", "mid", "LEFT", "RIGHT", "0") == b""
    popper = Session(server)
    assert popper.run("BLPOP", "mid", "0") == b""
    Session(server).run("RPUSH", "src", "v")
    settle(server)
    assert mover.client.out.take() == b"$1\r\nv\r\n"
    assert popper.client.out.take() == b"*2\r\n$3\r\nmid\r\n$1\r\nv\r\n"
    assert b"".join(feed).endswith(cmds(["LMOVE", "src", "mid", "LEFT", "RIGHT"], ["LPOP", "mid"]))


def test_served_blmove_with_wrong_type_destination_fails(server):
    w = Session(server)
    w.run("BRPOPLPUSH", "src", "dst", "0")
    p = Session(server)
    p.run("SET", "dst", "str")
    p.run("RPUSH", "src", "v")
    settle(server)
    assert w.client.out.take() == b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
    assert p.run("LLEN", "src") == b":1\r\n"


def test_blocking_inside_multi_answers_at_once(session):
    session.run("MULTI")
    session.run("BLPOP", "a", "0")
    session.run("BLMOVE", "a", "b", "left", "left", "0")
    session.run("BLMPOP", "0", "1", "a", "left")
    assert session.run("EXEC") == b"*3\r\n*-1\r\n$-1\r\n*-1\r\n"
    assert not blocked(session)


def test_client_unblock_timeout_and_error(server):
    w = registered(Session(server))
    w.run("BLMOVE", "a", "b", "left", "left", "0")
    admin = Session(server)
    assert admin.run("CLIENT", "UNBLOCK", str(w.client.id)) == b":1\r\n"
    assert w.client.out.take() == b"*-1\r\n"
    w.run("BLPOP", "a", "0")
    assert admin.run("CLIENT", "UNBLOCK", str(w.client.id), "ERROR") == b":1\r\n"
    assert w.client.out.take() == b"-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n"
    assert admin.run("CLIENT", "UNBLOCK", str(w.client.id)) == b":0\r\n"


def test_resp3_timeout_reply_is_null(server):
    w = registered(Session(server, proto=3))
    w.run("BLPOP", "a", "0")
    Session(server).run("CLIENT", "UNBLOCK", str(w.client.id))
    assert w.client.out.take() == b"_\r\n"


def test_a_closed_client_is_forgotten(server):
    w = Session(server)
    w.run("BLPOP", "q", "0")
    other = Session(server)
    other.run("BLPOP", "q", "0")
    server.close_client(w.client)
    assert server.blocking.by_client.get(w.client.id) is None
    Session(server).run("RPUSH", "q", "x")
    settle(server)
    assert other.client.out.take() == b"*2\r\n$1\r\nq\r\n$1\r\nx\r\n"


def test_waiters_are_per_database(server):
    w = Session(server)
    w.run("SELECT", "1")
    w.run("BLPOP", "q", "0")
    p = Session(server)
    p.run("RPUSH", "q", "db0")
    settle(server)
    assert blocked(w)
    p.run("SELECT", "1")
    p.run("RPUSH", "q", "db1")
    settle(server)
    assert w.client.out.take() == b"*2\r\n$1\r\nq\r\n$3\r\ndb1\r\n"
    assert p.run("SELECT", "0") == b"+OK\r\n" and p.run("LLEN", "q") == b":1\r\n"


def test_swapped_databases_make_waited_keys_ready(server):
    w = Session(server)
    w.run("BLPOP", "q", "0")
    p = Session(server)
    p.run("SELECT", "1")
    p.run("RPUSH", "q", "x")
    a, b = server.dbs[0], server.dbs[1]
    a.data, b.data = b.data, a.data
    server.blocking.databases_swapped(a, b)
    settle(server)
    assert w.client.out.take() == b"*2\r\n$1\r\nq\r\n$1\r\nx\r\n"


def test_pipelined_commands_wait_for_the_blocked_one(server):
    w = Session(server)
    out = server.feed_client(w.client, cmds(["BLPOP", "q", "0"], ["PING"]))
    assert out == b""
    Session(server).run("RPUSH", "q", "x")
    settle(server)
    # a socketless client is not resumed by the loop: feed it nothing more
    assert server.feed_client(w.client, b"") == b"*2\r\n$1\r\nq\r\n$1\r\nx\r\n+PONG\r\n"
