"""Hypothesis-generated command sequences over streams and consumer groups,
compared reply-by-reply with valkey (the companion of
test_generated_collections.py).

IDs are always explicit: '*' would take the clock. Entry IDs come from a
small range (ms 0..12, seq 0..3, plus 'ms' and 'ms-*' forms), so XADD
collides with the top item, XDEL and XTRIM hit tombstones and group reads
interleave with deletions; "bulk" XADDs of 60 entries cross the
100-entry radix-tree node boundary, so approximate trimming and XINFO
STREAM's node counts are exercised. Replies that carry times (XPENDING's
idle, XINFO CONSUMERS, XINFO STREAM FULL with groups) are not generated.

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

PROFILE = harness.hypothesis_profile("stream", 40)

# one hash tag, so that multi-key reads also run through a router
KEYS = [b"{s}a", b"{s}b", b"{s}c"]
WRONG_KEYS = [b"{s}str"]
PROLOGUE = [[b"SET", b"{s}str", b"v"]]
GROUPS = [b"g1", b"g2", b"nog"]
CONSUMERS = [b"alice", b"bob", b"carol"]

key = st.sampled_from(KEYS * 4 + WRONG_KEYS)
group = st.sampled_from(GROUPS)
consumer = st.sampled_from(CONSUMERS)
ms = st.integers(0, 12)
seq = st.integers(0, 3)


def b(x) -> bytes:
    return str(x).encode()


@st.composite
def full_id(draw):
    return b"%d-%d" % (draw(ms), draw(seq))


@st.composite
def add_id(draw):
    kind = draw(st.integers(0, 5))
    if kind == 0:
        return b(draw(ms))
    if kind == 1:
        return b"%d-*" % draw(ms)
    return draw(full_id())


@st.composite
def range_id(draw):
    kind = draw(st.integers(0, 6))
    if kind == 0:
        return b"-"
    if kind == 1:
        return b"+"
    if kind == 2:
        return b(draw(ms))
    if kind == 3:
        return b"(" + draw(full_id())
    return draw(full_id())


fields = st.lists(st.tuples(st.sampled_from([b"f", b"g", b"h", b"1"]),
                            st.sampled_from([b"v", b"", b"12", b"\x00\xff", b"x" * 70])),
                  min_size=1, max_size=3)


@st.composite
def xadd_cmd(draw):
    args = [b"XADD", draw(key)]
    if draw(st.booleans()):
        args.append(b"NOMKSTREAM")
    trim = draw(st.integers(0, 4))
    if trim == 1:
        args += [b"MAXLEN", draw(st.sampled_from([b"=", b"~", b""])), b(draw(st.integers(0, 6)))]
    elif trim == 2:
        args += [b"MINID", draw(st.sampled_from([b"=", b"~", b""])), draw(full_id())]
    args = [a for a in args if a != b""]
    args.append(draw(add_id()))
    for f, v in draw(fields):
        args += [f, v]
    return args


@st.composite
def bulk_cmd(draw):
    """60 entries at once (XADD per entry, inside MULTI so they count as one
    step): together with others they open new radix-tree nodes."""
    k = draw(st.sampled_from(KEYS))
    base = draw(st.integers(20, 40)) * 100
    cmds = [[b"MULTI"]]
    cmds += [[b"XADD", k, b"%d-1" % (base + i), b"f", b(i)] for i in range(60)]
    cmds.append([b"EXEC"])
    return cmds


@st.composite
def trim_cmd(draw):
    args = [b"XTRIM", draw(key)]
    if draw(st.booleans()):
        args += [b"MAXLEN", draw(st.sampled_from([b"=", b"~"])), b(draw(st.integers(0, 120)))]
    else:
        args += [b"MINID", draw(st.sampled_from([b"=", b"~"])), draw(full_id())]
    if args[3] == b"~" and draw(st.booleans()):
        args += [b"LIMIT", b(draw(st.integers(0, 150)))]
    return args


@st.composite
def read_cmd(draw):
    ks = draw(st.lists(key, min_size=1, max_size=2, unique=True))
    args = [b"XREAD"]
    if draw(st.booleans()):
        args += [b"COUNT", b(draw(st.integers(-1, 3)))]
    ids = [draw(st.one_of(full_id(), st.sampled_from([b"$", b"+", b"0"]))) for _ in ks]
    return args + [b"STREAMS", *ks, *ids]


@st.composite
def readgroup_cmd(draw):
    ks = draw(st.lists(key, min_size=1, max_size=2, unique=True))
    args = [b"XREADGROUP", b"GROUP", draw(group), draw(consumer)]
    if draw(st.booleans()):
        args += [b"COUNT", b(draw(st.integers(0, 3)))]
    if draw(st.integers(0, 4)) == 0:
        args.append(b"NOACK")
    ids = [draw(st.one_of(st.just(b">"), st.just(b">"), full_id(), st.just(b"0"))) for _ in ks]
    return args + [b"STREAMS", *ks, *ids]


@st.composite
def group_cmd(draw):
    k, g = draw(key), draw(group)
    sub = draw(st.integers(0, 5))
    if sub == 0:
        args = [b"XGROUP", b"CREATE", k, g, draw(st.one_of(st.just(b"$"), full_id(), st.just(b"0")))]
        if draw(st.booleans()):
            args.append(b"MKSTREAM")
        if draw(st.integers(0, 3)) == 0:
            args += [b"ENTRIESREAD", b(draw(st.integers(-1, 5)))]
        return args
    if sub == 1:
        args = [b"XGROUP", b"SETID", k, g, draw(st.one_of(st.just(b"$"), full_id()))]
        if draw(st.booleans()):
            args += [b"ENTRIESREAD", b(draw(st.integers(-1, 5)))]
        return args
    if sub == 2:
        return [b"XGROUP", b"DESTROY", k, g]
    if sub == 3:
        return [b"XGROUP", b"CREATECONSUMER", k, g, draw(consumer)]
    if sub == 4:
        return [b"XGROUP", b"DELCONSUMER", k, g, draw(consumer)]
    return [b"XINFO", b"GROUPS", k]


@st.composite
def claim_cmd(draw):
    k, g, c = draw(key), draw(group), draw(consumer)
    if draw(st.booleans()):
        args = [b"XCLAIM", k, g, c, b"0", *draw(st.lists(full_id(), min_size=1, max_size=3))]
        for opt in draw(st.lists(st.sampled_from([b"FORCE", b"JUSTID", b"RETRYCOUNT", b"LASTID"]),
                                 max_size=2, unique=True)):
            args.append(opt)
            if opt == b"RETRYCOUNT":
                args.append(b(draw(st.integers(0, 3))))
            elif opt == b"LASTID":
                args.append(draw(full_id()))
        return args
    args = [b"XAUTOCLAIM", k, g, c, b"0", draw(range_id())]
    if draw(st.booleans()):
        args += [b"COUNT", b(draw(st.integers(1, 4)))]
    if draw(st.booleans()):
        args.append(b"JUSTID")
    return args


@st.composite
def misc_cmd(draw):
    k = draw(key)
    which = draw(st.integers(0, 9))
    if which == 0:
        return [b"XLEN", k]
    if which == 1:
        args = [b"XRANGE", k, draw(range_id()), draw(range_id())]
    elif which == 2:
        args = [b"XREVRANGE", k, draw(range_id()), draw(range_id())]
    elif which == 3:
        return [b"XDEL", k, *draw(st.lists(full_id(), min_size=1, max_size=3))]
    elif which == 4:
        return [b"XACK", k, draw(group), *draw(st.lists(full_id(), min_size=1, max_size=3))]
    elif which == 5:
        return [b"XPENDING", k, draw(group)]
    elif which == 6:
        return [b"XPENDING", k, draw(group), b"IDLE", b"100000", draw(range_id()), draw(range_id()),
                b(draw(st.integers(0, 5)))]
    elif which == 7:
        return [b"XINFO", b"STREAM", k]
    elif which == 8:
        args = [b"XSETID", k, draw(full_id())]
        if draw(st.booleans()):
            args += [b"ENTRIESADDED", b(draw(st.integers(0, 8)))]
        if draw(st.booleans()):
            args += [b"MAXDELETEDID", draw(full_id())]
        return args
    else:
        return [b"DEL", k]
    if draw(st.booleans()):
        args += [b"COUNT", b(draw(st.integers(-1, 3)))]
    return args


step = st.one_of(
    xadd_cmd().map(lambda a: [a]), xadd_cmd().map(lambda a: [a]), xadd_cmd().map(lambda a: [a]),
    bulk_cmd(), trim_cmd().map(lambda a: [a]), read_cmd().map(lambda a: [a]),
    readgroup_cmd().map(lambda a: [a]), readgroup_cmd().map(lambda a: [a]),
    group_cmd().map(lambda a: [a]), group_cmd().map(lambda a: [a]),
    claim_cmd().map(lambda a: [a]), misc_cmd().map(lambda a: [a]), misc_cmd().map(lambda a: [a]),
)
program = st.lists(step, min_size=1, max_size=30).map(lambda steps: [c for s in steps for c in s])


def run_program(valkey, target, commands, protocol):
    generated.run_program(valkey, target, PROLOGUE + commands, protocol)


@PROFILE
@given(commands=program, protocol=st.sampled_from([2, 3]))
def test_generated_streams(valkey_server, target_server, commands, protocol):
    run_program(valkey_server, target_server, commands, protocol)
