"""Hypothesis-generated command sequences over sorted sets, compared
reply-by-reply with valkey (the companion of test_generated_collections.py).

Four keys any command may use (so zsets, a plain set and strings mix and
WRONGTYPE errors come up), members from a small alphabet (with a 70-byte
one over the 64-byte listpack value limit) and "bulk" ZADDs of 130 members
(over the 128-entry limit), so OBJECT ENCODING sees every conversion.
Scores are small integers, halves and infinities, so sums are exact.

Every reply of these commands has a defined order except ZRANDMEMBER and
ZSCAN over a skiplist, which are left out. Lexicographic ranges are only
defined on members of one score: they run on a key of their own ("lx")
that only ever gets score 0.

Profiles (HYPOTHESIS_PROFILE env var): ci (default) 30 examples,
derandomized; long 2000 examples."""

from __future__ import annotations


import pytest
from hypothesis import given
from hypothesis import strategies as st

from . import harness
from .test_generated import run_program

pytestmark = pytest.mark.compat

PROFILE = harness.hypothesis_profile("zset", 30)

KEYS = [b"{t}a", b"{t}b", b"{t}c", b"{t}d"]
LEX = b"{t}lx"
PROLOGUE = [[b"SET", b"{t}str", b"v"], [b"SADD", b"{t}set", b"1", b"a", b"x"]]
key = st.sampled_from(KEYS * 4 + [b"{t}str", b"{t}set"])
member = st.one_of(st.sampled_from([b"a", b"b", b"c", b"1", b"x", b"", b"\x00\xff", b"hello"]),
                   st.just(b"L" * 70))
score = st.sampled_from([b"0", b"1", b"-1", b"2.5", b"-0.5", b"3", b"10", b"inf", b"-inf", b"(1",
                         b"x"])
plain_score = st.sampled_from([b"0", b"1", b"-1", b"2.5", b"-0.5", b"3", b"10", b"inf", b"-inf"])
rng_end = st.sampled_from([b"-inf", b"+inf", b"0", b"1", b"(1", b"2.5", b"(3", b"10", b"x"])
lex_end = st.sampled_from([b"-", b"+", b"[a", b"(a", b"[b", b"(c", b"[x", b"[", b"a"])
idx = st.integers(-4, 4).map(lambda i: str(i).encode())
count = st.integers(-1, 4).map(lambda i: str(i).encode())


@st.composite
def zadd_cmd(draw):
    opts = draw(st.lists(st.sampled_from([b"NX", b"XX", b"GT", b"LT", b"CH", b"INCR"]),
                         max_size=2, unique=True))
    pairs = draw(st.lists(st.tuples(plain_score, member), min_size=1, max_size=3))
    return [b"ZADD", draw(key), *opts, *[x for p in pairs for x in p]]


@st.composite
def range_cmd(draw):
    kind = draw(st.sampled_from([b"rank", b"BYSCORE"]))
    args = [b"ZRANGE", draw(key)]
    if kind == b"rank":
        args += [draw(idx), draw(idx)]
    else:
        args += [draw(rng_end), draw(rng_end), b"BYSCORE"]
        if draw(st.booleans()):
            args += [b"LIMIT", draw(count), draw(count)]
    if draw(st.booleans()):
        args.append(b"REV")
    if draw(st.booleans()):
        args.append(b"WITHSCORES")
    return args


@st.composite
def setop_cmd(draw):
    name = draw(st.sampled_from([b"ZUNION", b"ZINTER", b"ZDIFF", b"ZUNIONSTORE", b"ZINTERSTORE",
                                 b"ZDIFFSTORE", b"ZINTERCARD"]))
    ks = draw(st.lists(key, min_size=1, max_size=3))
    args = [name]
    if name.endswith(b"STORE"):
        args.append(draw(st.sampled_from(KEYS)))
    args += [str(len(ks)).encode(), *ks]
    if name in (b"ZUNION", b"ZINTER", b"ZUNIONSTORE", b"ZINTERSTORE"):
        if draw(st.booleans()):
            args += [b"WEIGHTS", *[draw(st.sampled_from([b"1", b"2", b"-1", b"0.5"])) for _ in ks]]
        if draw(st.booleans()):
            args += [b"AGGREGATE", draw(st.sampled_from([b"SUM", b"MIN", b"MAX"]))]
    if name in (b"ZUNION", b"ZINTER", b"ZDIFF") and draw(st.booleans()):
        args.append(b"WITHSCORES")
    if name == b"ZINTERCARD" and draw(st.booleans()):
        args += [b"LIMIT", draw(st.sampled_from([b"0", b"1", b"2"]))]
    return args


lex_command = st.one_of(
    st.lists(member, min_size=1, max_size=3).map(lambda ms: [b"ZADD", LEX, *[x for m in ms for x in (b"0", m)]]),
    st.tuples(lex_end, lex_end).map(lambda t: [b"ZRANGEBYLEX", LEX, *t]),
    st.tuples(lex_end, lex_end, count, count).map(lambda t: [b"ZREVRANGEBYLEX", LEX, t[0], t[1], b"LIMIT", t[2], t[3]]),
    st.tuples(lex_end, lex_end).map(lambda t: [b"ZLEXCOUNT", LEX, *t]),
    st.tuples(lex_end, lex_end).map(lambda t: [b"ZREMRANGEBYLEX", LEX, *t]),
    st.tuples(lex_end, lex_end).map(lambda t: [b"ZRANGE", LEX, *t, b"BYLEX"]),
    st.just([b"ZRANGE", LEX, b"0", b"-1"]),
    st.just([b"OBJECT", b"ENCODING", LEX]),
)

zset_command = st.one_of(
    zadd_cmd(),
    st.tuples(key, score, member).map(lambda t: [b"ZINCRBY", *t]),
    st.tuples(key, st.lists(member, min_size=1, max_size=3)).map(lambda t: [b"ZREM", t[0], *t[1]]),
    key.map(lambda k: [b"ZCARD", k]),
    st.tuples(key, rng_end, rng_end).map(lambda t: [b"ZCOUNT", *t]),
    st.tuples(key, member).map(lambda t: [b"ZSCORE", *t]),
    st.tuples(key, st.lists(member, min_size=1, max_size=3)).map(lambda t: [b"ZMSCORE", t[0], *t[1]]),
    st.tuples(st.sampled_from([b"ZRANK", b"ZREVRANK"]), key, member, st.booleans()).map(
        lambda t: [t[0], t[1], t[2]] + ([b"WITHSCORE"] if t[3] else [])),
    range_cmd(),
    st.tuples(key, rng_end, rng_end).map(lambda t: [b"ZREVRANGEBYSCORE", *t, b"WITHSCORES"]),
    st.tuples(st.sampled_from(KEYS), key, idx, idx).map(lambda t: [b"ZRANGESTORE", *t]),
    st.tuples(key, idx, idx).map(lambda t: [b"ZREMRANGEBYRANK", *t]),
    st.tuples(key, rng_end, rng_end).map(lambda t: [b"ZREMRANGEBYSCORE", *t]),
    st.tuples(st.sampled_from([b"ZPOPMIN", b"ZPOPMAX"]), key, st.one_of(st.none(), count)).map(
        lambda t: [t[0], t[1]] + ([t[2]] if t[2] is not None else [])),
    st.tuples(st.lists(key, min_size=1, max_size=2), st.sampled_from([b"MIN", b"MAX"]), count).map(
        lambda t: [b"ZMPOP", str(len(t[0])).encode(), *t[0], t[1], b"COUNT", t[2]]),
    st.tuples(st.sampled_from([b"BZPOPMIN", b"BZPOPMAX"]), key).map(lambda t: [t[0], t[1], b"0.01"]),
    setop_cmd(),
    st.tuples(key, st.sampled_from([b"0", b"100", b"-1"])).map(lambda t: [b"ZRANDMEMBER", t[0], t[1]])
    .filter(lambda a: a[2] == b"0"),
    key.map(lambda k: [b"OBJECT", b"ENCODING", k]),
    key.map(lambda k: [b"TYPE", k]),
    st.lists(key, min_size=1, max_size=2).map(lambda ks: [b"DEL", *ks]),
    st.sampled_from(KEYS).map(lambda k: [b"ZADD", k, *[x for i in range(130) for x in (str(i).encode(), b"m%d" % i)]]),
)

command = st.one_of(zset_command, zset_command, zset_command, lex_command)


@st.composite
def multi_block(draw):
    body = draw(st.lists(command, max_size=4))
    return [[b"MULTI"], *body, [draw(st.sampled_from([b"EXEC", b"EXEC", b"DISCARD"]))]]


step = st.one_of(command.map(lambda c: [c]), command.map(lambda c: [c]), multi_block())
program = st.lists(step, min_size=4, max_size=25).map(lambda steps: PROLOGUE + [c for s in steps for c in s])


@PROFILE
@given(commands=program, protocol=st.sampled_from([2, 3]))
def test_generated_zsets(valkey_server, target_server, commands, protocol):
    run_program(valkey_server, target_server, commands, protocol)
