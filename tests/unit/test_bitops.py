"""shardkv._bitops against a plain Python model of Redis's bit semantics:
bit 0 is the most significant bit of byte 0, bytes past the end read as
zeros, BITFIELD's overflow follows Redis's wrap/sat/fail rules.

Most tests are sans-IO calls of the compiled functions; the last section
runs BITOP's Redis 8.2 operations (DIFF, DIFF1, ANDOR, ONE) through an
in-process server, since valkey 9.1 (the compat reference) lacks them.
Hypothesis runs the tests/conftest.py profile (small in CI)."""

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from shardkv import _bitops as b

# ---------------------------------------------------------------- the model


def bits_of(v):
    return [(byte >> (7 - i)) & 1 for byte in v for i in range(8)]


def model_count(v, start, end):
    return sum(bits_of(v)[start:end + 1])


def model_pos(v, bit, start, end):
    for i, x in enumerate(bits_of(v)[start:end + 1]):
        if x == bit:
            return start + i
    return -1


def model_bitop(op, sources):
    sources = [s or b"" for s in sources]
    n = max(len(s) for s in sources)
    padded = [s + bytes(n - len(s)) for s in sources]
    out = bytearray(n)
    for i in range(n):
        col = [p[i] for p in padded]
        first, rest = col[0], col[1:]
        anyrest = 0
        for x in rest:
            anyrest |= x
        if op == b.OP_AND:
            r = 0xFF
            for x in col:
                r &= x
        elif op == b.OP_OR:
            r = first | anyrest
        elif op == b.OP_XOR:
            r = 0
            for x in col:
                r ^= x
        elif op == b.OP_NOT:
            r = ~first & 0xFF
        elif op == b.OP_DIFF:
            r = first & ~anyrest & 0xFF
        elif op == b.OP_DIFF1:
            r = ~first & anyrest & 0xFF
        elif op == b.OP_ANDOR:
            r = first & anyrest
        else:  # ONE: set in exactly one source
            r = 0
            for bit in range(8):
                if sum((x >> bit) & 1 for x in col) == 1:
                    r |= 1 << bit
        out[i] = r
    return out


def model_get(v, offset, bits, signed):
    allbits = bits_of(v or b"")
    u = 0
    for i in range(offset, offset + bits):
        u = (u << 1) | (allbits[i] if i < len(allbits) else 0)
    if signed and u >> (bits - 1):
        u -= 1 << bits
    return u


def model_set(buf, offset, bits, value):
    for j in range(bits):
        bit = (value >> (bits - 1 - j)) & 1
        pos = offset + j
        if bit:
            buf[pos >> 3] |= 0x80 >> (pos & 7)
        else:
            buf[pos >> 3] &= ~(0x80 >> (pos & 7)) & 0xFF


def model_overflow(value, incr, bits, signed, owtype):
    """Redis's checks, over their domain: either incr == 0 (SET of any
    64-bit value) or value is a field's value (INCRBY)."""
    if signed:
        hi, lo = (1 << (bits - 1)) - 1, -(1 << (bits - 1))
    else:
        value &= (1 << 64) - 1
        hi, lo = (1 << bits) - 1, 0
    # Valkey quirk: a value so far below the minimum that maximum - value
    # does not fit in 64 bits is taken for an overflow, not an underflow.
    if value > hi or value + incr > hi or (signed and bits < 64 and hi - value > (1 << 63) - 1):
        code, sat = 1, hi
    elif value < lo or value + incr < lo:
        code, sat = -1, lo
    else:
        return 0, None
    if owtype == b.OVERFLOW_FAIL:
        return code, None
    if owtype == b.OVERFLOW_SAT:
        return code, sat
    wrapped = (value + incr) & ((1 << bits) - 1)
    if signed and wrapped >> (bits - 1):
        wrapped -= 1 << bits
    return code, wrapped


def model_bitfield(v, ops, grown):
    buf = None if v is None else bytearray(v)
    replies, changes = [], 0
    for opcode, offset, bits, signed, val, owtype in ops:
        if opcode == b.BF_GET:
            replies.append(model_get(buf, offset, bits, signed))
            continue
        old = model_get(buf, offset, bits, signed)
        incr = val if opcode == b.BF_INCRBY else 0
        base = old if opcode == b.BF_INCRBY else val
        code, limit = model_overflow(base, incr, bits, signed, owtype)
        if code and owtype == b.OVERFLOW_FAIL:
            replies.append(None)
            continue
        new = limit if code else base + incr
        if not signed:
            new &= (1 << 64) - 1
        replies.append(new if opcode == b.BF_INCRBY else old)
        model_set(buf, offset, bits, new & ((1 << 64) - 1))
        if grown or model_get(buf, offset, bits, signed) != old:
            changes += 1
    return replies, changes, buf


# ---------------------------------------------------------------- strategies

data = st.binary(max_size=80)
nonempty = st.binary(min_size=1, max_size=80)
# runs of equal bytes exercise the word-skipping paths
runs = st.lists(st.tuples(st.sampled_from([0, 0xFF, 0x01, 0x80, 0x7F]), st.integers(1, 40)),
                min_size=1, max_size=4).map(lambda rs: b"".join(bytes([x]) * n for x, n in rs))
buffers = st.one_of(nonempty, runs)


def unaligned(v, shift):
    """The same bytes at another alignment in memory (a slice copy of a
    longer bytearray would not move them: build a fresh object)."""
    return bytes(bytearray(shift) + v)[shift:]


@st.composite
def bit_range(draw, buffers=buffers):
    v = draw(buffers)
    n = len(v) * 8
    start = draw(st.integers(0, n - 1))
    end = draw(st.integers(start, n - 1))
    return v, start, end


# ---------------------------------------------------------------- counting


@given(data)
def test_popcount_matches_model(v):
    assert b.popcount(v) == sum(bits_of(v))
    assert b.popcount(bytearray(v)) == sum(bits_of(v))


@given(bit_range(), st.integers(0, 7))
def test_bitcount_ranges(r, shift):
    v, start, end = r
    assert b.bitcount(unaligned(v, shift), start, end) == model_count(v, start, end)


def test_bitcount_empty_and_bad_ranges():
    assert b.bitcount(b"\xff", 5, 4) == 0
    with pytest.raises(ValueError):
        b.bitcount(b"\xff", 0, 8)
    with pytest.raises(ValueError):
        b.bitcount(b"\xff", -1, 3)
    with pytest.raises(TypeError):
        b.bitcount("text", 0, 1)


def test_popcount_large_buffer():
    v = bytes(range(256)) * 32768 + b"\x07"
    assert b.popcount(v) == int.from_bytes(v, "big").bit_count()
    assert b.bitcount(v, 3, len(v) * 8 - 2) == model_count(v[:1], 3, 7) + \
        int.from_bytes(v[1:-1], "big").bit_count() + 2


@given(bit_range(), st.sampled_from([0, 1]), st.integers(0, 7))
def test_bitpos_ranges(r, bit, shift):
    v, start, end = r
    assert b.bitpos(unaligned(v, shift), bit, start, end) == model_pos(v, bit, start, end)


def test_bitpos_edges():
    assert b.bitpos(b"\x00" * 100 + b"\x01", 1, 0, 807) == 807
    assert b.bitpos(b"\xff" * 100 + b"\xfe", 0, 0, 807) == 807
    assert b.bitpos(b"\xff" * 101, 0, 0, 807) == -1
    assert b.bitpos(b"\x00" * 101, 1, 3, 800) == -1
    assert b.bitpos(b"\x0f", 1, 0, 3) == -1
    assert b.bitpos(b"\x0f", 1, 5, 5) == 5
    assert b.bitpos(b"\x0f", 0, 5, 4) == -1


# ---------------------------------------------------------------- single bits


@given(nonempty, st.data())
def test_getbit_setbit(v, d):
    buf = bytearray(v)
    offset = d.draw(st.integers(0, len(v) * 8 - 1))
    on = d.draw(st.sampled_from([0, 1]))
    old = b.setbit(buf, offset, on)
    assert old == bits_of(v)[offset]
    expect = bits_of(v)
    expect[offset] = on
    assert bits_of(buf) == expect
    assert b.getbit(buf, offset) == on
    assert b.getbit(bytes(buf), len(v) * 8 + d.draw(st.integers(0, 100))) == 0


def test_setbit_needs_room_and_a_bytearray():
    with pytest.raises(IndexError):
        b.setbit(bytearray(1), 8, 1)
    with pytest.raises(TypeError):
        b.setbit(b"\x00", 0, 1)


# ---------------------------------------------------------------- BITOP

ALL_OPS = [b.OP_AND, b.OP_OR, b.OP_XOR, b.OP_DIFF, b.OP_DIFF1, b.OP_ANDOR, b.OP_ONE]
sources = st.lists(st.one_of(data, runs, st.none()), min_size=1, max_size=5)


@given(st.sampled_from(ALL_OPS), sources)
def test_bitop_matches_model(op, srcs):
    assume(op not in (b.OP_DIFF, b.OP_DIFF1, b.OP_ANDOR) or len(srcs) >= 2)
    got = b.bitop(op, srcs)
    assert type(got) is bytearray
    assert got == model_bitop(op, srcs)


@given(st.one_of(data, st.none()))
def test_bitop_not(v):
    assert b.bitop(b.OP_NOT, [v]) == model_bitop(b.OP_NOT, [v])


def test_bitop_documented_examples():
    # Redis's documentation example for the 8.2 operations
    a, bb, c = b"\xf0", b"\x55", b"\x3c"
    assert b.bitop(b.OP_DIFF, [a, bb, c]) == model_bitop(b.OP_DIFF, [a, bb, c])
    assert b.bitop(b.OP_ONE, [b"\x01", b"\x03", b"\x06"]) == b"\x04"
    assert b.bitop(b.OP_AND, [b"\xff\xff", b"\x0f"]) == b"\x0f\x00"
    assert b.bitop(b.OP_DIFF1, [b"\x0f", b"\xff\xff"]) == b"\xf0\xff"
    assert b.bitop(b.OP_ANDOR, [b"\xff", b"\x01\xff", None]) == b"\x01\x00"
    assert b.bitop(b.OP_OR, [None, b""]) == b""


def test_bitop_rejects_bad_calls():
    with pytest.raises(ValueError):
        b.bitop(b.OP_NOT, [b"a", b"b"])
    with pytest.raises(ValueError):
        b.bitop(99, [b"a"])
    with pytest.raises(ValueError):
        b.bitop(b.OP_OR, [])
    with pytest.raises(ValueError):
        b.bitop(b.OP_DIFF, [b"a"])


# ---------------------------------------------------------------- BITFIELD

widths = st.integers(1, 64)


@given(st.one_of(data, st.none()), st.integers(0, 700), widths, st.booleans())
def test_get_field(v, offset, bits, signed):
    assert b.get_field(v, offset, bits, signed) == model_get(v, offset, bits, signed)


@given(nonempty, st.data())
def test_set_field(v, d):
    bits = d.draw(widths)
    buf = bytearray(v + bytes(8))
    offset = d.draw(st.integers(0, len(buf) * 8 - bits))
    value = d.draw(st.integers(-(1 << 63), (1 << 64) - 1))
    expect = bytearray(buf)
    model_set(expect, offset, bits, value & ((1 << 64) - 1))
    b.set_field(buf, offset, bits, value)
    assert buf == expect
    assert b.get_field(buf, offset, bits, False) == value & ((1 << bits) - 1)


int64 = st.one_of(st.integers(-(1 << 63), (1 << 63) - 1),
                  st.sampled_from([0, 1, -1, (1 << 63) - 1, -(1 << 63), 127, -128, 255, 256]))
owtypes = st.sampled_from([b.OVERFLOW_WRAP, b.OVERFLOW_SAT, b.OVERFLOW_FAIL])


@given(int64, st.integers(1, 64), st.booleans(), owtypes)
def test_overflow_of_set(value, bits, signed, owtype):
    assume(signed or bits < 64)
    assert b.overflow(value, 0, bits, signed, owtype) == model_overflow(value, 0, bits, signed, owtype)


@given(st.data(), int64, st.integers(1, 64), st.booleans(), owtypes)
def test_overflow_of_incrby(d, incr, bits, signed, owtype):
    assume(signed or bits < 64)
    if signed:
        value = d.draw(st.integers(-(1 << (bits - 1)), (1 << (bits - 1)) - 1))
    else:
        value = d.draw(st.integers(0, (1 << bits) - 1))
    assert b.overflow(value, incr, bits, signed, owtype) == model_overflow(value, incr, bits, signed, owtype)


def test_overflow_known_answers():
    # values checked against valkey 9.1
    assert b.overflow(-1, 0, 8, False, b.OVERFLOW_SAT) == (1, 255)
    assert b.overflow(-1, 0, 8, False, b.OVERFLOW_WRAP) == (1, 255)
    assert b.overflow(0, -1000, 8, False, b.OVERFLOW_SAT) == (-1, 0)
    assert b.overflow(100, 100, 8, True, b.OVERFLOW_WRAP) == (1, -56)
    assert b.overflow((1 << 63) - 1, 1, 64, True, b.OVERFLOW_WRAP) == (1, -(1 << 63))
    assert b.overflow(-(1 << 63), -1, 64, True, b.OVERFLOW_SAT) == (-1, -(1 << 63))
    assert b.overflow(5, 3, 8, True, b.OVERFLOW_FAIL) == (0, None)
    assert b.overflow(300, 0, 8, False, b.OVERFLOW_FAIL) == (1, None)
    assert b.overflow(-(1 << 63), 0, 1, True, b.OVERFLOW_SAT) == (1, 0)
    assert b.overflow(-(1 << 63) + 8, 0, 8, True, b.OVERFLOW_SAT) == (1, 127)
    assert b.overflow(-(1 << 63) + 808, 0, 8, True, b.OVERFLOW_SAT) == (-1, -128)


@st.composite
def bitfield_program(draw):
    v = draw(st.binary(max_size=12))
    ops, highest, writes = [], 0, False
    owtype = b.OVERFLOW_WRAP
    for _ in range(draw(st.integers(0, 6))):
        if draw(st.integers(0, 4)) == 0:
            owtype = draw(owtypes)
        opcode = draw(st.sampled_from([b.BF_GET, b.BF_SET, b.BF_INCRBY]))
        signed = draw(st.booleans())
        bits = draw(st.integers(1, 64 if signed else 63))
        offset = draw(st.integers(0, 130))
        value = draw(int64) if opcode != b.BF_GET else 0
        if opcode != b.BF_GET:
            writes = True
            highest = max(highest, offset + bits - 1)
        ops.append((opcode, offset, bits, signed, value, owtype))
    return v, ops, highest, writes


@given(bitfield_program())
def test_bitfield_program(prog):
    v, ops, highest, writes = prog
    if not writes:
        replies, changes = b.bitfield(v or None, ops, False)
        assert (replies, changes) == model_bitfield(v or None, ops, False)[:2]
        return
    need = (highest >> 3) + 1
    buf = bytearray(v)
    grown = len(buf) < need
    if grown:
        buf.extend(bytes(need - len(buf)))
    start = bytes(buf)
    replies, changes = b.bitfield(buf, ops, grown)
    m_replies, m_changes, m_buf = model_bitfield(start, ops, grown)
    assert replies == m_replies
    assert changes == m_changes
    assert buf == m_buf


def test_bitfield_write_needs_room():
    with pytest.raises(IndexError):
        b.bitfield(bytearray(1), [(b.BF_SET, 4, 8, False, 1, b.OVERFLOW_WRAP)], False)
    with pytest.raises(TypeError):
        b.bitfield(b"\x00\x00", [(b.BF_SET, 0, 8, False, 1, b.OVERFLOW_WRAP)], False)


def test_bitfield_known_answers():
    buf = bytearray(2)
    ops = [(b.BF_SET, 7, 5, False, 23, b.OVERFLOW_WRAP),
           (b.BF_GET, 0, 16, False, 0, b.OVERFLOW_WRAP),
           (b.BF_INCRBY, 0, 8, True, 200, b.OVERFLOW_SAT),
           (b.BF_INCRBY, 0, 8, True, 1, b.OVERFLOW_FAIL)]
    assert b.bitfield(buf, ops, True) == ([0, 0x0170, 127, None], 2)
    assert buf == b"\x7f\x70"


# ---------------------------------------------------------------- Redis 8.2 BITOP operations


@pytest.fixture
def run():
    from shardkv.commands.table import load_all
    from shardkv.config import Config
    from shardkv.native import _native
    from shardkv.server import Server

    load_all()
    server = Server(Config())
    client = server.attach_client(_native.Client())

    def run(*args):
        server.now_ms = _native.now_ms()
        return server.run_argv(client, [a if isinstance(a, bytes) else str(a).encode() for a in args])
    return run


def test_bitop_redis82_operations(run):
    # Redis's documentation example: A, B, C
    run("SET", "{t}A", b"\xf0")   # 11110000
    run("SET", "{t}B", b"\x55")   # 01010101
    run("SET", "{t}C", b"\x3c")   # 00111100
    assert run("BITOP", "DIFF", "{t}R", "{t}A", "{t}B", "{t}C") == b":1\r\n"
    assert run("GET", "{t}R") == b"$1\r\n\x80\r\n"
    assert run("BITOP", "DIFF1", "{t}R", "{t}A", "{t}B", "{t}C") == b":1\r\n"
    assert run("GET", "{t}R") == b"$1\r\n\x0d\r\n"
    assert run("BITOP", "ANDOR", "{t}R", "{t}A", "{t}B", "{t}C") == b":1\r\n"
    assert run("GET", "{t}R") == b"$1\r\n\x70\r\n"
    assert run("BITOP", "ONE", "{t}R", "{t}A", "{t}B", "{t}C") == b":1\r\n"
    assert run("GET", "{t}R") == b"$1\r\n\x89\r\n"
    assert run("BITOP", "one", "{t}R", "{t}A") == b":1\r\n"
    assert run("GET", "{t}R") == b"$1\r\n\xf0\r\n"
    assert run("OBJECT", "ENCODING", "{t}R") == b"$3\r\nraw\r\n"


def test_bitop_redis82_lengths_and_missing_keys(run):
    run("SET", "{t}a", b"\xff\xff\xff")
    assert run("BITOP", "DIFF", "{t}d", "{t}a", "{t}missing") == b":3\r\n"
    assert run("GET", "{t}d") == b"$3\r\n\xff\xff\xff\r\n"
    assert run("BITOP", "DIFF1", "{t}d", "{t}missing", "{t}a") == b":3\r\n"
    assert run("GET", "{t}d") == b"$3\r\n\xff\xff\xff\r\n"
    assert run("BITOP", "ANDOR", "{t}d", "{t}missing", "{t}a") == b":3\r\n"
    assert run("GET", "{t}d") == b"$3\r\n\x00\x00\x00\r\n"
    assert run("BITOP", "ANDOR", "{t}d", "{t}missing", "{t}missing2") == b":0\r\n"
    assert run("EXISTS", "{t}d") == b":0\r\n"


def test_bitop_redis82_errors(run):
    run("SET", "{t}a", "x")
    run("RPUSH", "{t}l", "y")
    for op in ("DIFF", "diff1", "AndOr"):
        assert run("BITOP", op, "{t}d", "{t}a") == \
            b"-ERR BITOP %s must be called with at least two source keys.\r\n" % op.upper().encode()
    assert run("BITOP", "DIFF", "{t}d", "{t}a", "{t}l") == \
        b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
    assert run("BITOP", "ONE", "{t}d", "{t}l") == \
        b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
    assert run("BITOP", "DIFF2", "{t}d", "{t}a", "{t}a") == b"-ERR syntax error\r\n"
    assert run("EXISTS", "{t}d") == b":0\r\n"


# ---------------------------------------------------------------- bookkeeping (in process)


@pytest.fixture
def server():
    from shardkv.commands.table import load_all
    from shardkv.config import Config
    from shardkv.server import Server

    load_all()
    return Server(Config())


def test_writes_propagate_and_notify_only_when_something_changed(server):
    from shardkv.native import _native

    client = server.attach_client(_native.Client())
    feed, events = [], []
    server.add_feed_consumer(feed.append)
    server.keyspace_event_hook = lambda event, key, db: event in ("new", "keymiss") or events.append((event, key))

    def run(*args):
        argv = [a.encode() for a in args]
        del feed[:], events[:]
        dirty = server.dirty
        server.now_ms = _native.now_ms()
        reply = server.run_argv(client, argv)
        return reply, server.dirty - dirty, b"".join(feed).count(b"\r\n$%d\r\n%s\r\n" % (
            len(argv[0]), argv[0])), list(events)

    assert run("SETBIT", "k", "1", "1") == (b":0\r\n", 1, 1, [("setbit", b"k")])
    assert run("SETBIT", "k", "1", "1") == (b":1\r\n", 0, 0, [])
    assert run("SETBIT", "k", "20", "0") == (b":0\r\n", 1, 1, [("setbit", b"k")])  # grew
    assert run("BITFIELD", "k", "GET", "u8", "0") == (b"*1\r\n:64\r\n", 0, 0, [])
    assert run("BITFIELD", "k", "OVERFLOW", "FAIL", "INCRBY", "u2", "0", "9") == \
        (b"*1\r\n$-1\r\n", 0, 0, [])
    # two changing writes: dirty moves by two, one event, the command propagated as is
    assert run("BITFIELD", "k", "SET", "u8", "0", "7", "INCRBY", "u8", "0", "1") == \
        (b"*2\r\n:64\r\n:8\r\n", 2, 1, [("setbit", b"k")])
    assert run("BITFIELD", "k", "SET", "u8", "0", "8") == (b"*1\r\n:8\r\n", 0, 0, [])
    assert run("BITOP", "OR", "d", "k") == (b":3\r\n", 1, 1, [("set", b"d")])
    assert run("BITOP", "OR", "d", "nope") == (b":0\r\n", 1, 1, [("del", b"d")])
    assert run("BITOP", "OR", "d", "nope") == (b":0\r\n", 0, 0, [])
    # a new key whose only write FAILed stays, zero-filled, with no event; it is
    # propagated so that replicas hold it too (Valkey leaves them without it)
    assert run("BITFIELD", "new", "OVERFLOW", "FAIL", "SET", "u2", "0", "9") == \
        (b"*1\r\n$-1\r\n", 1, 1, [])
    assert run("GET", "new")[0] == b"$1\r\n\x00\r\n"
    assert run("BITFIELD_RO", "k", "GET", "u8", "0") == (b"*1\r\n:8\r\n", 0, 0, [])
