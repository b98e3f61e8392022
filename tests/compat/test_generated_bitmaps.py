"""Hypothesis-generated command sequences over bitmaps (SETBIT GETBIT
BITCOUNT BITPOS BITOP BITFIELD BITFIELD_RO) mixed with the string commands
that make or reshape their values (SET APPEND SETRANGE GETRANGE), compared
reply-by-reply with valkey (the companion of test_generated.py and
test_generated_collections.py).

Four keys any command may use, so values of many lengths and encodings
(int, embstr, raw) meet every command, and one list key for WRONGTYPE.
Offsets are mostly small (values stay short and transcripts readable) with
the odd larger one, "#n" BITFIELD offsets, negative and out-of-range
indexes, and now and then a malformed argument, so error texts and their
order are compared too. BITOP here uses only the operations valkey 9.1 has
(AND OR XOR NOT).

Profiles (HYPOTHESIS_PROFILE env var, applied to these tests only):
  ci   (default) 100 examples, derandomized, no example database
  long           2000 examples, random, example database on
"""

from __future__ import annotations


import pytest
from hypothesis import given
from hypothesis import strategies as st

from . import harness
from . import test_generated as generated

pytestmark = pytest.mark.compat

PROFILE = harness.hypothesis_profile("bits", 100)

# ---------------------------------------------------------------- strategies

KEYS = [b"a", b"b", b"c", b"\x00k"]
WRONG_KEY = b"l"
PROLOGUE = [[b"RPUSH", WRONG_KEY, b"x"]]

key = st.sampled_from(KEYS * 4 + [WRONG_KEY])


def b(x) -> bytes:
    return str(x).encode()


value = st.one_of(
    st.sampled_from([b"", b"0", b"7", b"123", b"-5", b"foobar", b"\x00", b"\xff\xff",
                     b"\xff" * 40, b"\x00" * 33 + b"\x01", b"hello world"]),
    st.binary(max_size=12),
)
# mostly small; sometimes past a 32-byte word block, or far
offset = st.one_of(st.integers(0, 40), st.integers(0, 300), st.sampled_from([1000, 4095, 65535]))
index = st.one_of(st.integers(-12, 12), st.sampled_from([-1000, 1000, -9223372036854775808,
                                                         9223372036854775807]))
bad_int = st.sampled_from([b"x", b"", b"1.5", b"+1", b"01", b"9223372036854775808"])


def maybe_bad(strategy, p_bad=8):
    """strategy's value as bytes, or now and then a malformed integer."""
    return st.one_of(*([strategy.map(b)] * p_bad), bad_int)


@st.composite
def range_args(draw, unit_ok=True):
    """[] or [start] or [start end] or [start end BIT|BYTE] (sometimes a bad unit)."""
    n = draw(st.integers(0, 3 if unit_ok else 2))
    args = []
    if n >= 1:
        args.append(draw(maybe_bad(index, 20)))
    if n >= 2:
        args.append(draw(maybe_bad(index, 20)))
    if n >= 3:
        args.append(draw(st.sampled_from([b"BIT", b"BYTE", b"bit", b"byte", b"BIT", b"bits"])))
    return args


@st.composite
def bf_type(draw):
    if draw(st.integers(0, 15)) == 0:
        return draw(st.sampled_from([b"u64", b"i65", b"u0", b"x8", b"U8", b"i", b""]))
    signed = draw(st.booleans())
    bits = draw(st.one_of(st.integers(1, 16), st.integers(1, 64 if signed else 63)))
    return (b"i" if signed else b"u") + b(bits)


@st.composite
def bf_offset(draw):
    if draw(st.integers(0, 5)) == 0:
        return b"#" + b(draw(st.integers(0, 12)))
    return draw(maybe_bad(offset, 30))


field_value = st.one_of(st.integers(-300, 300),
                        st.sampled_from([9223372036854775807, -9223372036854775808, 255, 256,
                                         -129, 127, 128, 65535]))


@st.composite
def bitfield_cmd(draw, ro=False):
    args = [b"BITFIELD_RO" if ro else b"BITFIELD", draw(key)]
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["get", "get", "set", "incrby", "overflow"]))
        if ro and kind != "get" and draw(st.integers(0, 3)):
            kind = "get"
        if kind == "overflow":
            args += [b"OVERFLOW", draw(st.sampled_from([b"WRAP", b"SAT", b"FAIL", b"sat", b"bogus"]))]
        elif kind == "get":
            args += [b"GET", draw(bf_type()), draw(bf_offset())]
        else:
            args += [kind.upper().encode(), draw(bf_type()), draw(bf_offset()),
                     draw(maybe_bad(field_value, 30))]
    if draw(st.integers(0, 20)) == 0:
        args.append(draw(st.sampled_from([b"GET", b"BOGUS", b"SET"])))  # truncated / unknown
    return args


@st.composite
def bitop_cmd(draw):
    op = draw(st.sampled_from([b"AND", b"OR", b"XOR", b"NOT", b"and", b"xor"]))
    n = 1 if op.upper() == b"NOT" and draw(st.integers(0, 5)) else draw(st.integers(1, 4))
    return [b"BITOP", op, draw(key), *[draw(key) for _ in range(n)]]


setbit_cmd = st.tuples(key, maybe_bad(offset, 30), st.sampled_from([b"0", b"1", b"1", b"2", b"x"])).map(
    lambda t: [b"SETBIT", *t])
getbit_cmd = st.tuples(key, maybe_bad(offset, 30)).map(lambda t: [b"GETBIT", *t])
bitcount_cmd = st.tuples(key, range_args()).map(lambda t: [b"BITCOUNT", t[0], *t[1]])
bitpos_cmd = st.tuples(key, st.sampled_from([b"0", b"1", b"1", b"0", b"2"]), range_args()).map(
    lambda t: [b"BITPOS", t[0], t[1], *t[2]])

string_commands = [
    st.tuples(key, value).map(lambda t: [b"SET", *t]),
    st.tuples(key, value).map(lambda t: [b"APPEND", *t]),
    st.tuples(key, st.integers(0, 40), value).map(lambda t: [b"SETRANGE", t[0], b(t[1]), t[2]]),
    st.tuples(key, index, index).map(lambda t: [b"GETRANGE", t[0], b(t[1]), b(t[2])]),
    key.map(lambda k: [b"GET", k]),
    key.map(lambda k: [b"STRLEN", k]),
    key.map(lambda k: [b"OBJECT", b"ENCODING", k]),
    key.map(lambda k: [b"DEL", k]),
]

# Explicit weights: bit commands (BITFIELD above all, it has the most
# paths) far more often than the string commands that shape the values.
WEIGHTED = ([setbit_cmd] * 3 + [getbit_cmd] + [bitcount_cmd] * 2 + [bitpos_cmd] * 2
            + [bitop_cmd()] * 2 + [bitfield_cmd()] * 5 + [bitfield_cmd(ro=True)]
            + string_commands)
command = st.sampled_from(WEIGHTED).flatmap(lambda s: s)


@st.composite
def multi_block(draw):
    body = draw(st.lists(command, max_size=5))
    end = draw(st.sampled_from([b"EXEC", b"EXEC", b"EXEC", b"DISCARD"]))
    return [[b"MULTI"], *body, [end]]


step = st.one_of(command.map(lambda c: [c]), command.map(lambda c: [c]), multi_block())
program = st.lists(step, min_size=8, max_size=30).map(
    lambda steps: PROLOGUE + [c for s in steps for c in s])

# ---------------------------------------------------------------- comparison


def run_program(valkey, target, commands, protocol):
    def final_values(ca, cb):
        """The values themselves, whatever the replies said."""
        for k in KEYS:
            ra = harness.run_command(ca, [b"GET", k])
            rb = harness.run_command(cb, [b"GET", k])
            assert ra == rb, f"RESP{protocol}: final value of {k!r} differs: {ra!r} vs {rb!r}"
    generated.run_program(valkey, target, commands, protocol, after=final_values)


@PROFILE
@given(commands=program, protocol=st.sampled_from([2, 3]))
def test_generated_bitmaps(valkey_server, target_server, commands, protocol):
    run_program(valkey_server, target_server, commands, protocol)
