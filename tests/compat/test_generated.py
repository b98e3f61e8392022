"""Hypothesis-generated command sequences compared reply-by-reply with valkey.

Strings, keys and expiry over a small key alphabet (including binary and
empty keys).  Expiry uses only large TTLs (1000..100000 s, or past absolute
times that delete at once), so nothing expires mid-test and TTL replies are
compared exactly; PTTL is never generated.

Profiles (HYPOTHESIS_PROFILE env var, applied to these tests only):
  ci   (default) 60 examples, derandomized, no example database
  long           2000 examples, random, example database on
"""

from __future__ import annotations


import pytest
from hypothesis import given
from hypothesis import strategies as st

from . import harness

pytestmark = pytest.mark.compat

PROFILE = harness.hypothesis_profile("strings", 60)

# ---------------------------------------------------------------- strategies

KEYS = [b"a", b"b", b"c", b"\x00\xff", b"k:{1}", b""]
key = st.sampled_from(KEYS)
value = st.one_of(
    st.sampled_from([b"", b"0", b"1", b"10", b"-7", b"42", b"007", b"+5", b" 1", b"3.5",
                     b"abc", b"hello world", b"\x00\xff\r\n",
                     b"9223372036854775807", b"-9223372036854775808"]),
    st.binary(max_size=6),
)
small_int = st.integers(-1000, 1000)
float_incr = st.sampled_from([b"0", b"1", b"-1", b"0.5", b"-0.5", b"0.25", b"1.5", b"-2.5",
                              b"10.5", b"3", b"100", b"1e2", b"abc", b"inf"])
ttl_s = st.integers(1000, 100000)


def b(x) -> bytes:
    return str(x).encode()


@st.composite
def set_cmd(draw):
    args = [b"SET", draw(key), draw(value)]
    cond = draw(st.sampled_from([None, b"NX", b"XX"]))
    exp = draw(st.sampled_from([None, "EX", "PX", "KEEPTTL", "EXAT-PAST", "PXAT-PAST"]))
    get = draw(st.booleans())
    opts = []
    if cond:
        opts.append([cond])
    if exp == "EX":
        opts.append([b"EX", b(draw(ttl_s))])
    elif exp == "PX":
        opts.append([b"PX", b(draw(ttl_s) * 1000)])
    elif exp == "KEEPTTL":
        opts.append([b"KEEPTTL"])
    elif exp == "EXAT-PAST":
        opts.append([b"EXAT", b"1"])
    elif exp == "PXAT-PAST":
        opts.append([b"PXAT", b"1"])
    if get:
        opts.append([b"GET"])
    for o in draw(st.permutations(opts)):
        args.extend(o)
    return args


@st.composite
def getex_cmd(draw):
    args = [b"GETEX", draw(key)]
    opt = draw(st.sampled_from([None, "EX", "PX", "PERSIST", "EXAT-PAST"]))
    if opt == "EX":
        args += [b"EX", b(draw(ttl_s))]
    elif opt == "PX":
        args += [b"PX", b(draw(ttl_s) * 1000)]
    elif opt == "PERSIST":
        args += [b"PERSIST"]
    elif opt == "EXAT-PAST":
        args += [b"EXAT", b"1"]
    return args


@st.composite
def expire_cmd(draw):
    args = [b"EXPIRE", draw(key), b(draw(ttl_s))]
    opt = draw(st.sampled_from([None, None, b"NX", b"XX", b"GT", b"LT"]))
    if opt:
        args.append(opt)
    return args


def _pairs(n_max=3):
    return st.lists(st.tuples(key, value), min_size=1, max_size=n_max).map(
        lambda ps: [x for p in ps for x in p])


simple_command = st.one_of(
    set_cmd(),
    key.map(lambda k: [b"GET", k]),
    st.tuples(key, value).map(lambda t: [b"APPEND", *t]),
    key.map(lambda k: [b"INCR", k]),
    key.map(lambda k: [b"DECR", k]),
    st.tuples(key, small_int).map(lambda t: [b"INCRBY", t[0], b(t[1])]),
    st.tuples(key, small_int).map(lambda t: [b"DECRBY", t[0], b(t[1])]),
    st.tuples(key, float_incr).map(lambda t: [b"INCRBYFLOAT", *t]),
    st.tuples(key, st.integers(-12, 12), st.integers(-12, 12)).map(
        lambda t: [b"GETRANGE", t[0], b(t[1]), b(t[2])]),
    st.tuples(key, st.integers(0, 20), value).map(
        lambda t: [b"SETRANGE", t[0], b(t[1]), t[2]]),
    key.map(lambda k: [b"STRLEN", k]),
    _pairs().map(lambda kv: [b"MSET", *kv]),
    _pairs().map(lambda kv: [b"MSETNX", *kv]),
    st.lists(key, min_size=1, max_size=4).map(lambda ks: [b"MGET", *ks]),
    st.lists(key, min_size=1, max_size=3).map(lambda ks: [b"DEL", *ks]),
    st.lists(key, min_size=1, max_size=3).map(lambda ks: [b"EXISTS", *ks]),
    key.map(lambda k: [b"TYPE", k]),
    st.tuples(key, key).map(lambda t: [b"RENAME", *t]),
    expire_cmd(),
    key.map(lambda k: [b"TTL", k]),
    key.map(lambda k: [b"PERSIST", k]),
    key.map(lambda k: [b"GETDEL", k]),
    getex_cmd(),
    st.tuples(key, value).map(lambda t: [b"SETNX", *t]),
    st.tuples(key, value).map(lambda t: [b"GETSET", *t]),
    st.tuples(key, ttl_s, value).map(lambda t: [b"SETEX", t[0], b(t[1]), t[2]]),
)


@st.composite
def multi_block(draw):
    body = draw(st.lists(simple_command, max_size=5))
    end = draw(st.sampled_from([b"EXEC", b"EXEC", b"EXEC", b"DISCARD"]))
    return [[b"MULTI"], *body, [end]]


step = st.one_of(simple_command.map(lambda c: [c]), multi_block())
program = st.lists(step, min_size=1, max_size=25).map(lambda steps: [c for s in steps for c in s])


def _show(args) -> str:
    out = []
    for a in args:
        try:
            s = a.decode("ascii")
            ok = s.isprintable() and " " not in s and s != "" and '"' not in s and "'" not in s
        except UnicodeDecodeError:
            ok = False
        out.append(s if ok else '"' + "".join(
            chr(c) if 32 <= c < 127 and c not in (34, 92) else f"\\x{c:02x}" for c in a) + '"')
    return " ".join(out)


def run_program(valkey, target, commands, protocol, same=None, after=None):
    """Runs commands on both servers, reply by reply; the first difference
    fails with the transcript. same(args, valkey_reply, target_reply,
    valkey_connection) decides what counts as equal (default: the bytes);
    after(valkey_connection, target_connection) checks more at the end."""
    ca = harness.prepare_connection(valkey, protocol)
    cb = harness.prepare_connection(target, protocol)
    transcript = []
    try:
        for args in commands:
            ra = harness.run_command(ca, args)
            rb = harness.run_command(cb, args)
            transcript.append((args, ra, rb))
            if not (ra == rb if same is None else same(args, ra, rb, ca)):
                lines = [f"RESP{protocol}: reply differs at step {len(transcript)}:"]
                for i, (a, x, y) in enumerate(transcript, 1):
                    lines.append(f"  {i:2}. {_show(a)[:300]}")
                    lines.append(f"        valkey: {harness.format_bytes(x, 300)}")
                    if x != y:
                        lines.append(f"        target: {harness.format_bytes(y, 300)}")
                raise AssertionError("\n".join(lines))
        if after is not None:
            after(ca, cb)
    finally:
        ca.close()
        cb.close()


@PROFILE
@given(commands=program, protocol=st.sampled_from([2, 3]))
def test_generated_strings_keys_expiry(valkey_server, target_server, commands, protocol):
    run_program(valkey_server, target_server, commands, protocol)


def _tagged(commands, tag):
    """The program with every key given the hash tag {tag}, so that all its
    keys live on one worker (which worker depends on the tag)."""
    keys = set(KEYS)
    return [[b"{" + tag + b"}" + a if i > 0 and a in keys else a for i, a in enumerate(args)]
            for args in commands]


@PROFILE
@given(commands=program, protocol=st.sampled_from([2, 3]), tag=st.sampled_from([b"t0", b"t1", b"t2", b"x"]))
def test_generated_through_router(valkey_server, sharded_server, commands, protocol, tag):
    """The same programs through `shardkv start --shards 3`, each on the
    worker its hash tag picks: routing, per-client worker connections and
    MULTI on one worker must not change a single reply."""
    run_program(valkey_server, sharded_server, _tagged(commands, tag), protocol)
