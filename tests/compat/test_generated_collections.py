"""Hypothesis-generated command sequences over lists, hashes and sets,
compared reply-by-reply with valkey (the companion of test_generated.py,
which covers strings, keys and expiry).

The key alphabet is small: four keys any command may use (so the types mix
and WRONGTYPE errors come up naturally) and two keys every program first
sets to strings.  Members and fields come
from a small alphabet of integers (intset, integer listpack entries,
HINCRBY), words, empty and binary strings, plus an occasional 70-byte one
(over the 64-byte listpack value limit) and "bulk" commands that add 130 or
520 members at once (over the 128-entry listpack and 512-entry intset
limits), so OBJECT ENCODING sees every conversion.

Replies whose order Redis leaves unspecified (SMEMBERS, SINTER, SUNION,
SDIFF, HKEYS, HVALS, HGETALL) are compared exactly first and, only if the
bytes differ, as multisets (elements sorted; HGETALL as field/value pairs),
which is accepted only when one of the command's keys is a hashtable in
valkey: shardkv reproduces intset (sorted) and listpack (insertion) order
exactly.  Inside MULTI/EXEC the encodings are not checked (per queued
command multiset comparison).

Profiles (HYPOTHESIS_PROFILE env var, applied to these tests only):
  ci   (default) 40 examples, derandomized, no example database
  long           2000 examples, random, example database on
"""

from __future__ import annotations


import pytest
from hypothesis import given
from hypothesis import strategies as st

from . import harness
from . import test_generated as generated

pytestmark = pytest.mark.compat

PROFILE = harness.hypothesis_profile("coll", 40)

# ---------------------------------------------------------------- strategies

KEYS = [b"a", b"b", b"c", b"\x00k"]
# Strings (embstr and int encoded), set by every program's prologue: the
# wrong types are strings (sorted sets have their own generated test).
WRONG_KEYS = [b"str", b"num"]
PROLOGUE = [[b"SET", b"str", b"v"], [b"SET", b"num", b"10"]]

# Collection keys three times as often as the wrong-type ones.
key = st.sampled_from(KEYS * 3 + WRONG_KEYS)
LONG = b"L" * 70
member = st.one_of(
    st.sampled_from([b"0", b"1", b"2", b"10", b"-3", b"007", b"1.5", b"a", b"b", b"foo",
                     b"", b"\x00\xff", b"hello world",
                     b"9223372036854775807", b"-9223372036854775808",
                     b"9223372036854775808"]),
    st.sampled_from([b"1", b"2", b"3", b"a", b"b"]),  # repeats, so members collide
    st.just(LONG),
)
idx = st.integers(-6, 6)
small_int = st.integers(-5, 5)
incr = st.one_of(st.integers(-100, 100),
                 st.sampled_from([9223372036854775807, -9223372036854775808]))


def b(x) -> bytes:
    return str(x).encode()


def members(n_max=4):
    return st.lists(member, min_size=1, max_size=n_max)


def keys(n_max=3):
    return st.lists(key, min_size=1, max_size=n_max)


@st.composite
def pop_cmd(draw):
    args = [draw(st.sampled_from([b"LPOP", b"RPOP"])), draw(key)]
    count = draw(st.one_of(st.none(), st.integers(0, 4), st.just(-1)))
    if count is not None:
        args.append(b(count))
    return args


@st.composite
def lpos_cmd(draw):
    args = [b"LPOS", draw(key), draw(member)]
    opts = []
    if draw(st.booleans()):
        opts.append([b"RANK", b(draw(st.sampled_from([-3, -2, -1, 1, 2, 3, 0])))])
    if draw(st.booleans()):
        opts.append([b"COUNT", b(draw(st.integers(0, 3)))])
    if draw(st.booleans()):
        opts.append([b"MAXLEN", b(draw(st.integers(0, 5)))])
    for o in draw(st.permutations(opts)):
        args.extend(o)
    return args


@st.composite
def hset_cmd(draw):
    pairs = draw(st.lists(st.tuples(member, member), min_size=1, max_size=3))
    return [b"HSET", draw(key), *[x for p in pairs for x in p]]


@st.composite
def bulk_cmd(draw):
    """Enough members at once to pass the listpack / intset limits."""
    kind = draw(st.sampled_from(["sadd-int-130", "sadd-int-520", "sadd-str-130",
                                 "hset-130", "rpush-130"]))
    k = draw(key)
    if kind == "sadd-int-130":
        return [b"SADD", k, *[b(i) for i in range(130)]]
    if kind == "sadd-int-520":
        return [b"SADD", k, *[b(i) for i in range(520)]]
    if kind == "sadd-str-130":
        return [b"SADD", k, *[b"m%d" % i for i in range(130)]]
    if kind == "hset-130":
        return [b"HSET", k, *[x for i in range(130) for x in (b"f%d" % i, b(i))]]
    return [b"RPUSH", k, *[b"e%d" % i for i in range(130)]]


list_command = st.one_of(
    st.tuples(key, members()).map(lambda t: [b"LPUSH", t[0], *t[1]]),
    st.tuples(key, members()).map(lambda t: [b"RPUSH", t[0], *t[1]]),
    pop_cmd(),
    key.map(lambda k: [b"LLEN", k]),
    st.tuples(key, idx, idx).map(lambda t: [b"LRANGE", t[0], b(t[1]), b(t[2])]),
    st.tuples(key, idx).map(lambda t: [b"LINDEX", t[0], b(t[1])]),
    st.tuples(key, small_int, member).map(lambda t: [b"LSET", t[0], b(t[1]), t[2]]),
    st.tuples(key, st.sampled_from([b"BEFORE", b"AFTER"]), member, member).map(
        lambda t: [b"LINSERT", *t]),
    st.tuples(key, st.integers(-3, 3), member).map(lambda t: [b"LREM", t[0], b(t[1]), t[2]]),
    st.tuples(key, idx, idx).map(lambda t: [b"LTRIM", t[0], b(t[1]), b(t[2])]),
    lpos_cmd(),
    st.tuples(key, key, st.sampled_from([b"LEFT", b"RIGHT"]),
              st.sampled_from([b"LEFT", b"RIGHT"])).map(lambda t: [b"LMOVE", *t]),
)

hash_command = st.one_of(
    hset_cmd(),
    st.tuples(key, member).map(lambda t: [b"HGET", *t]),
    st.tuples(key, members(3)).map(lambda t: [b"HDEL", t[0], *t[1]]),
    key.map(lambda k: [b"HLEN", k]),
    st.tuples(key, member).map(lambda t: [b"HEXISTS", *t]),
    st.tuples(key, member, incr).map(lambda t: [b"HINCRBY", t[0], t[1], b(t[2])]),
    st.tuples(key, members(3)).map(lambda t: [b"HMGET", t[0], *t[1]]),
    st.tuples(key, member).map(lambda t: [b"HSTRLEN", *t]),
    key.map(lambda k: [b"HKEYS", k]),
    key.map(lambda k: [b"HVALS", k]),
    key.map(lambda k: [b"HGETALL", k]),
)

set_command = st.one_of(
    st.tuples(key, members()).map(lambda t: [b"SADD", t[0], *t[1]]),
    st.tuples(key, members(3)).map(lambda t: [b"SREM", t[0], *t[1]]),
    st.tuples(key, member).map(lambda t: [b"SISMEMBER", *t]),
    key.map(lambda k: [b"SCARD", k]),
    key.map(lambda k: [b"SMEMBERS", k]),
    keys().map(lambda ks: [b"SINTER", *ks]),
    keys().map(lambda ks: [b"SUNION", *ks]),
    keys().map(lambda ks: [b"SDIFF", *ks]),
    st.tuples(key, keys()).map(lambda t: [b"SINTERSTORE", t[0], *t[1]]),
    st.tuples(key, key, member).map(lambda t: [b"SMOVE", *t]),
)

key_command = st.one_of(
    keys().map(lambda ks: [b"DEL", *ks]),
    keys().map(lambda ks: [b"EXISTS", *ks]),
    key.map(lambda k: [b"TYPE", k]),
    key.map(lambda k: [b"OBJECT", b"ENCODING", k]),
)

encoding_cmd = key.map(lambda k: [b"OBJECT", b"ENCODING", k])
simple_command = st.one_of(list_command, hash_command, set_command, key_command, encoding_cmd)
# Bulk commands are rare: they make long transcripts.
command = st.one_of(simple_command, simple_command, simple_command, bulk_cmd())


@st.composite
def multi_block(draw):
    body = draw(st.lists(command, max_size=5))
    end = draw(st.sampled_from([b"EXEC", b"EXEC", b"EXEC", b"DISCARD"]))
    return [[b"MULTI"], *body, [end]]


step = st.one_of(command.map(lambda c: [c]), command.map(lambda c: [c]), multi_block())
program = st.lists(step, min_size=4, max_size=30).map(
    lambda steps: PROLOGUE + [c for s in steps for c in s])

# ---------------------------------------------------------------- comparison

UNORDERED = {b"SMEMBERS", b"SINTER", b"SUNION", b"SDIFF", b"HKEYS", b"HVALS", b"HGETALL"}


def _normalize(args, raw: bytes) -> bytes:
    """A reply in canonical form if its order is unspecified, else as is."""
    name = args[0].upper()
    if name not in UNORDERED:
        return raw
    parts = harness.split_reply(raw)
    if parts is None:
        return raw
    header, elems = parts
    if name == b"HGETALL":  # RESP2 array or RESP3 map: field/value pairs
        pairs = sorted(zip(elems[0::2], elems[1::2], strict=True))
        return header + b"".join(k + v for k, v in pairs)
    return header + b"".join(sorted(elems))


def _normalize_exec(queued, raw: bytes) -> bytes:
    parts = harness.split_reply(raw)
    if parts is None or len(parts[1]) != len(queued):
        return raw
    header, elems = parts
    return header + b"".join(_normalize(a, e) for a, e in zip(queued, elems, strict=True))


def same(args, queued, ra: bytes, rb: bytes, reference=None) -> bool:
    """reference: valkey's connection, outside MULTI: an unordered reply
    then only counts as the same if its bytes match, unless one of its keys
    is a hashtable in valkey (intset and listpack orders are reproducible).
    Inside MULTI the encodings at EXEC time are gone, so EXEC replies are
    always compared as multisets (per queued command)."""
    if ra == rb:
        return True
    name = args[0].upper()
    if name == b"EXEC":
        return _normalize_exec(queued or [], ra) == _normalize_exec(queued or [], rb)
    if _normalize(args, ra) != _normalize(args, rb):
        return False
    if reference is None or queued is not None:
        return True
    return any(harness.run_command(reference, [b"OBJECT", b"ENCODING", k]).endswith(
        b"hashtable\r\n") for k in args[1:])


def run_program(valkey, target, commands, protocol):
    queued = None  # commands queued since MULTI (None: not in MULTI)

    def compare(args, ra, rb, ca):
        nonlocal queued
        ok = same(args, queued, ra, rb, reference=ca)
        name = args[0].upper()
        if name == b"MULTI":
            queued = []
        elif name in (b"EXEC", b"DISCARD"):
            queued = None
        elif queued is not None:
            queued.append(args)
        return ok
    generated.run_program(valkey, target, commands, protocol, same=compare)


@PROFILE
@given(commands=program, protocol=st.sampled_from([2, 3]))
def test_generated_collections(valkey_server, target_server, commands, protocol):
    run_program(valkey_server, target_server, commands, protocol)
