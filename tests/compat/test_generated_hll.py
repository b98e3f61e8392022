"""Hypothesis-generated command sequences over HyperLogLogs, compared
reply-by-reply (and byte for byte: GET of the HLL keys is among the commands)
with valkey.

Four HLL keys and two keys every program first sets to other strings (a
plain word and an integer, so the "not a valid HyperLogLog" errors come up).
Elements come from a small alphabet (so PFADD often changes nothing) plus
"bulk" PFADDs of hundreds of generated elements, enough for a sparse value to
pass hll-sparse-max-bytes (3000) and turn dense after a few of them.
SETRANGE into a key's header or registers makes corrupt or hand-made values,
and SET copies one key's bytes to another (an HLL written elsewhere).

test_generated_hll_sparse_max_bytes runs the same programs under small
hll-sparse-max-bytes values; it is skipped while shardkv lacks the
directive.

Profiles (HYPOTHESIS_PROFILE env var, applied to these tests only):
  ci   (default) 40 examples, derandomized, no example database
  long           2000 examples, random, example database on
"""

from __future__ import annotations


import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from . import harness
from .test_generated import run_program

pytestmark = pytest.mark.compat

PROFILE = harness.hypothesis_profile("hll", 40)
# the variant under small limits runs fewer examples
SMALL_LIMITS = settings(PROFILE, max_examples=max(10, PROFILE.max_examples // 4))

# ---------------------------------------------------------------- strategies

HLL_KEYS = [b"{t}a", b"{t}b", b"{t}c", b"{t}\x00h"]
WRONG_KEYS = [b"{t}str", b"{t}num"]
PROLOGUE = [[b"SET", b"{t}str", b"v"], [b"SET", b"{t}num", b"10"]]

key = st.sampled_from(HLL_KEYS * 3 + WRONG_KEYS + [b"{t}missing"])
element = st.one_of(
    st.sampled_from([b"", b"a", b"b", b"c", b"foo", b"1", b"2", b"\x00", b"\xff\xfe",
                     b"hello world", b"abcdefgh", b"abcdefghi"]),
    st.binary(min_size=1, max_size=10),
)


def b(x) -> bytes:
    return str(x).encode()


@st.composite
def bulk_pfadd(draw):
    """Hundreds of distinct-looking elements at once."""
    n = draw(st.sampled_from([50, 200, 600, 1200]))
    start = draw(st.integers(0, 3000))
    prefix = draw(st.sampled_from([b"e", b"f"]))
    return [b"PFADD", draw(key), *[prefix + b(i) for i in range(start, start + n)]]


@st.composite
def setrange_cmd(draw):
    """Pokes bytes into a key: the cached cardinality, the encoding byte, the
    sparse code or dense registers."""
    offset = draw(st.sampled_from([4, 8, 15, 16, 17, 20, 100, 12303]))
    data = draw(st.sampled_from([b"\x80", b"\x00", b"\x01", b"\x7f", b"\xff\xff",
                                 b"\x05\x00\x00\x00\x00\x00\x00\x00"]))
    return [b"SETRANGE", draw(key), b(offset), data]


hll_command = st.one_of(
    st.tuples(key, st.lists(element, max_size=5)).map(lambda t: [b"PFADD", t[0], *t[1]]),
    st.tuples(key, st.lists(element, max_size=5)).map(lambda t: [b"PFADD", t[0], *t[1]]),
    key.map(lambda k: [b"PFCOUNT", k]),
    key.map(lambda k: [b"PFCOUNT", k]),
    st.lists(key, min_size=2, max_size=4).map(lambda ks: [b"PFCOUNT", *ks]),
    st.lists(key, min_size=1, max_size=4).map(lambda ks: [b"PFMERGE", *ks]),
    key.map(lambda k: [b"GET", k]),
    key.map(lambda k: [b"GET", k]),
    st.tuples(st.sampled_from([b"ENCODING", b"DECODE", b"TODENSE", b"encoding", b"nosuch"]),
              key).map(lambda t: [b"PFDEBUG", *t]),
    key.map(lambda k: [b"OBJECT", b"ENCODING", k]),
    st.tuples(key, key).map(lambda t: [b"COPY", t[0], t[1], b"REPLACE"]),
    key.map(lambda k: [b"DEL", k]),
)
command = st.one_of(hll_command, hll_command, hll_command, hll_command, bulk_pfadd(),
                    setrange_cmd())


@st.composite
def multi_block(draw):
    body = draw(st.lists(hll_command, max_size=4))
    end = draw(st.sampled_from([b"EXEC", b"EXEC", b"DISCARD"]))
    return [[b"MULTI"], *body, [end]]


step = st.one_of(command.map(lambda c: [c]), command.map(lambda c: [c]),
                 command.map(lambda c: [c]), multi_block())
program = st.lists(step, min_size=4, max_size=30).map(
    lambda steps: PROLOGUE + [c for s in steps for c in s])

# ---------------------------------------------------------------- comparison


@PROFILE
@given(commands=program, protocol=st.sampled_from([2, 3]))
def test_generated_hll(valkey_server, target_server, commands, protocol):
    run_program(valkey_server, target_server, commands, protocol)


def _set_limit(server, value: bytes) -> bytes:
    c = harness.prepare_connection(server, 2)
    try:
        return harness.run_command(c, [b"CONFIG", b"SET", b"hll-sparse-max-bytes", value])
    finally:
        c.close()


def test_generated_hll_sparse_max_bytes(valkey_server, target_server):
    """The programs under small limits (restored to 3000 afterwards)."""
    if _set_limit(target_server, b"3000") != b"+OK\r\n":
        pytest.skip("the target does not have the hll-sparse-max-bytes directive")

    @SMALL_LIMITS
    @given(commands=program, protocol=st.sampled_from([2, 3]),
           limit=st.sampled_from([b"0", b"20", b"21", b"40", b"100", b"300", b"1kb"]))
    def under_limit(commands, protocol, limit):
        for srv in (valkey_server, target_server):
            assert _set_limit(srv, limit) == b"+OK\r\n", limit
        run_program(valkey_server, target_server, commands, protocol)

    try:
        under_limit()
    finally:
        for srv in (valkey_server, target_server):
            _set_limit(srv, b"3000")
