"""Bitmaps: SETBIT GETBIT BITCOUNT BITPOS BITOP BITFIELD BITFIELD_RO over
string values, with Valkey 9.1's argument parsing, error texts and replies.

This module parses arguments, looks keys up and keeps the keyspace
bookkeeping (dirty counter, keyspace events, WATCH); every loop over bits
runs in the compiled shardkv._bitops (cython_ext/bitops.pyx).

A command that writes bits turns the value into a bytearray first and
edits it in place, as Valkey unshares the string (which is why OBJECT
ENCODING answers "raw" afterwards even when no bit changed). Like Valkey,
the value grows with zero bytes to hold the highest bit written, and a bit
offset must stay under proto-max-bulk-len bytes.

BITOP also takes Redis 8.2's DIFF, DIFF1, ANDOR and ONE, which Valkey 9.1
does not have (it answers a syntax error): they follow Redis's
documentation and source (at least two source keys for DIFF, DIFF1 and
ANDOR, "ERR BITOP <OP> must be called with at least two source keys.").

Written values are propagated as the command itself (BITFIELD only when it
changed something, as in Valkey, since call() propagates on a dirty move).
"""

from shardkv import errors
from shardkv.commands.common import get_string, get_string_for_write, int_arg, notify, parse_int
from shardkv.commands.table import command
from shardkv.errors import ReplyError

try:
    from shardkv import _bitops
except ImportError as exc:  # pragma: no cover - only without a build
    raise SystemExit(
        "shardkv: the compiled bit operations (shardkv._bitops) are missing or do not load "
        f"({exc}).\nBuild them with `pip install .` (or `SHARDKV_ONLY=_bitops python setup.py "
        "build_ext --inplace` in a source checkout); Cython and a C compiler are needed."
    ) from None

GROUP = "bitmap"

BIT_OFFSET = "ERR bit offset is not an integer or out of range"
BIT_VALUE = "ERR bit is not an integer or out of range"
BIT_ARGUMENT = "ERR The bit argument must be 1 or 0."
BITFIELD_TYPE = ("ERR Invalid bitfield type. Use something like i16 u8. "
                 "Note that u64 is not supported but i64 is.")
OVERFLOW_TYPE = "ERR Invalid OVERFLOW type specified"
BITFIELD_RO_GET_ONLY = "ERR BITFIELD_RO only supports the GET subcommand"
BITOP_NOT_ONE_KEY = "ERR BITOP NOT must be called with a single source key."


def bitop_two_keys(op_name):
    return f"ERR BITOP {op_name} must be called with at least two source keys."


BITOPS = {
    b"and": _bitops.OP_AND, b"or": _bitops.OP_OR, b"xor": _bitops.OP_XOR, b"not": _bitops.OP_NOT,
    b"diff": _bitops.OP_DIFF, b"diff1": _bitops.OP_DIFF1, b"andor": _bitops.OP_ANDOR,
    b"one": _bitops.OP_ONE,
}
NEEDS_TWO_SOURCES = {_bitops.OP_DIFF, _bitops.OP_DIFF1, _bitops.OP_ANDOR}
OVERFLOWS = {b"wrap": _bitops.OVERFLOW_WRAP, b"sat": _bitops.OVERFLOW_SAT,
             b"fail": _bitops.OVERFLOW_FAIL}
BF_GET, BF_SET, BF_INCRBY = _bitops.BF_GET, _bitops.BF_SET, _bitops.BF_INCRBY
BF_WORDS = {b"get": (BF_GET, 2), b"set": (BF_SET, 3), b"incrby": (BF_INCRBY, 3)}


def keyword(arg):
    """An option word as Valkey compares it (strcasecmp on a C string):
    case-folded and cut at the first NUL byte."""
    return arg.split(b"\0", 1)[0].lower()


def bit_offset(c, arg, bits=0):
    """A bit offset argument; with bits > 0 (BITFIELD) "#n" means n * bits.
    It must be >= 0 and address a byte under proto-max-bulk-len."""
    usehash = bits > 0 and arg[:1] == b"#"
    v = parse_int(arg[1:] if usehash else arg)
    if v is None:
        raise ReplyError(BIT_OFFSET)
    if usehash:
        # a C long long multiplication: wraps around
        v = ((v * bits + (1 << 63)) & ((1 << 64) - 1)) - (1 << 63)
    if v < 0 or (v >> 3) >= c.server.proto_max_bulk_len:
        raise ReplyError(BIT_OFFSET)
    return v


def string_for_bits(c, key, maxbit):
    """The bytearray at key, created or zero-padded so that bit `maxbit`
    exists: (value, grown). WRONGTYPE for other types.

    Nothing is signalled here (the caller touches the key when a bit
    changed): Valkey creates the key, or swaps a shared or embstr value for
    a raw copy, without touching WATCHed keys, and a BITFIELD whose writes
    all FAIL leaves a new zero-filled key behind with WATCH intact."""
    need = (maxbit >> 3) + 1
    v = get_string_for_write(c, key)
    data = c.db.data
    if v is None:
        v = bytearray(need)
        data[key] = v
        data.set_meta(key, c.server.lru_clock)
        return v, True
    if type(v) is not bytearray:
        v = bytearray(v)
        data[key] = v
    if len(v) < need:
        v.extend(bytes(need - len(v)))
        return v, True
    return v, False


def normalize_range(start, end, totlen):
    """Valkey's conversion of negative and out-of-range indexes."""
    if start < 0:
        start += totlen
    if end < 0:
        end += totlen
    if start < 0:
        start = 0
    if end < 0:
        end = 0
    if end >= totlen:
        end = totlen - 1
    return start, end


def unit_is_bit(arg):
    u = keyword(arg)
    if u == b"bit":
        return True
    if u == b"byte":
        return False
    raise ReplyError(errors.SYNTAX)


# ---------------------------------------------------------------- single bits

@command("setbit", 4, flags="write denyoom", acl="write bitmap slow", keys=(1, 1, 1),
         specs=["RW access update: index 1, range 0 1 0"], group=GROUP, since="2.2.0",
         summary="Sets or clears one bit of a string value, growing it with zero bytes as needed.")
def setbit(c, argv):
    s, key = c.server, argv[1]
    offset = bit_offset(c, argv[2])
    on = parse_int(argv[3])
    if on is None or on & ~1:
        raise ReplyError(BIT_VALUE)
    v, grown = string_for_bits(c, key, offset)
    old = _bitops.setbit(v, offset, on)
    if grown or old != on:
        s.touch(c.db, key)
        notify(c, "setbit", key)
        s.dirty += 1
    return old


@command("getbit", 3, flags="readonly fast", acl="read bitmap fast", keys=(1, 1, 1),
         specs=["RO access: index 1, range 0 1 0"], group=GROUP, since="2.2.0",
         summary="Returns one bit of a string value (0 past its end).")
def getbit(c, argv):
    offset = bit_offset(c, argv[2])
    v = get_string(c, argv[1])
    return 0 if v is None else _bitops.getbit(v, offset)


# ---------------------------------------------------------------- scans

@command("bitcount", -2, flags="readonly", acl="read bitmap slow", keys=(1, 1, 1),
         specs=["RO access: index 1, range 0 1 0"], group=GROUP, since="2.6.0", complexity="O(N)",
         summary="Counts the set bits of a string value, optionally in a byte or bit range.")
def bitcount(c, argv):
    argc = len(argv)
    if argc > 5:
        raise ReplyError(errors.SYNTAX)
    if argc == 2:
        v = get_string(c, argv[1])
        return 0 if v is None else _bitops.popcount(v)
    start = int_arg(argv[2])
    isbit = unit_is_bit(argv[4]) if argc == 5 else False
    end = int_arg(argv[3]) if argc >= 4 else None
    v = get_string(c, argv[1])
    if v is None:
        return 0
    totlen = len(v)
    if end is None:
        end = totlen - 1
    if start < 0 and end < 0 and start > end:
        return 0
    if isbit:
        totlen <<= 3
    start, end = normalize_range(start, end, totlen)
    if start > end:
        return 0
    if not isbit:
        start, end = start << 3, (end << 3) + 7
    return _bitops.bitcount(v, start, end)


@command("bitpos", -3, flags="readonly", acl="read bitmap slow", keys=(1, 1, 1),
         specs=["RO access: index 1, range 0 1 0"], group=GROUP, since="2.8.7", complexity="O(N)",
         summary="Finds the first bit set to 1 or 0 in a string value, optionally in a range.")
def bitpos(c, argv):
    argc = len(argv)
    bit = int_arg(argv[2])
    if bit != 0 and bit != 1:
        raise ReplyError(BIT_ARGUMENT)
    if argc > 6:
        raise ReplyError(errors.SYNTAX)
    end_given = argc >= 5
    if argc >= 4:
        start = int_arg(argv[3])
        isbit = unit_is_bit(argv[5]) if argc == 6 else False
        end = int_arg(argv[4]) if end_given else None
    v = get_string(c, argv[1])
    if v is None:
        # a missing key is an endless run of zeros
        return -1 if bit else 0
    totlen = len(v)
    if argc >= 4:
        if end is None:
            end = totlen - 1
        if isbit:
            totlen <<= 3
        start, end = normalize_range(start, end, totlen)
        if start > end:
            return -1
        if not isbit:
            start, end = start << 3, (end << 3) + 7
    else:
        start, end = 0, (totlen << 3) - 1
        if end < 0:
            return -1
    pos = _bitops.bitpos(v, bit, start, end)
    if pos == -1 and bit == 0 and not end_given:
        # without an explicit end the string reads as padded with zeros
        return end + 1
    return pos


# ---------------------------------------------------------------- BITOP

@command("bitop", -4, flags="write denyoom", acl="write bitmap slow", keys=(2, -1, 1),
         specs=["OW update: index 2, range 0 1 0", "RO access: index 3, range -1 1 0"],
         group=GROUP, since="2.6.0", complexity="O(N)",
         summary="Stores the bitwise AND, OR, XOR, NOT (or DIFF, DIFF1, ANDOR, ONE) of string values.")
def bitop(c, argv):
    s, dest = c.server, argv[2]
    name = keyword(argv[1])
    op = BITOPS.get(name)
    if op is None:
        raise ReplyError(errors.SYNTAX)
    if op == _bitops.OP_NOT and len(argv) != 4:
        raise ReplyError(BITOP_NOT_ONE_KEY)
    if op in NEEDS_TWO_SOURCES and len(argv) < 5:
        raise ReplyError(bitop_two_keys(name.upper().decode("latin-1")))
    sources = [get_string(c, k) for k in argv[3:]]
    result = _bitops.bitop(op, sources)
    if result:
        # Valkey looks the destination up for writing first (an expired one
        # is deleted and propagated), then replaces it, dropping any TTL.
        s.lookup_write(c.db, dest)
        s.store(c.db, dest, result)
        notify(c, "set", dest)
        s.dirty += 1
    elif s.delete(c.db, dest):
        notify(c, "del", dest)
        s.dirty += 1
    return len(result)


# ---------------------------------------------------------------- BITFIELD

def bitfield_type(arg):
    """'i1'..'i64' or 'u1'..'u63': (signed, bits)."""
    sign = arg[:1]
    bits = parse_int(arg[1:]) if sign in (b"i", b"u") else None
    if bits is None or bits < 1 or bits > (64 if sign == b"i" else 63):
        raise ReplyError(BITFIELD_TYPE)
    return sign == b"i", bits


def parse_bitfield(c, argv):
    """The operations of a BITFIELD command line: (ops, readonly, highest
    bit written). Errors come in argument order, before the key is read."""
    ops = []
    owtype = _bitops.OVERFLOW_WRAP
    readonly = True
    highest = 0
    argc = len(argv)
    j = 2
    while j < argc:
        remaining = argc - j - 1
        word = keyword(argv[j])
        if word == b"overflow" and remaining >= 1:
            owtype = OVERFLOWS.get(keyword(argv[j + 1]))
            if owtype is None:
                raise ReplyError(OVERFLOW_TYPE)
            j += 2
            continue
        found = BF_WORDS.get(word)
        if found is None or remaining < found[1]:
            raise ReplyError(errors.SYNTAX)
        opcode = found[0]
        signed, bits = bitfield_type(argv[j + 1])
        offset = bit_offset(c, argv[j + 2], bits)
        value = 0
        if opcode != BF_GET:
            readonly = False
            highest = max(highest, offset + bits - 1)
            value = int_arg(argv[j + 3])
        ops.append((opcode, offset, bits, signed, value, owtype))
        j += 1 + found[1]
    return ops, readonly, highest


def bitfield_generic(c, argv, ro):
    s, key = c.server, argv[1]
    ops, readonly, highest = parse_bitfield(c, argv)
    if readonly:
        return _bitops.bitfield(get_string(c, key), ops, False)[0]
    if ro:
        raise ReplyError(BITFIELD_RO_GET_ONLY)
    v, grown = string_for_bits(c, key, highest)
    replies, changes = _bitops.bitfield(v, ops, grown)
    if changes:
        s.touch(c.db, key)
        notify(c, "setbit", key)
        s.dirty += changes
    elif grown:
        # the key was created or padded though every write FAILed: nothing
        # is signalled, but replicas must create it too (Valkey propagates it)
        s.dirty += 1
    return replies


def bitfield_key_flags(argv, _index):
    """The flags of BITFIELD's one key for COMMAND GETKEYSANDFLAGS, as
    Valkey decides them: read-only unless a SET or INCRBY (or anything it
    cannot parse) comes before the end."""
    i = 2
    while i < len(argv):
        remaining = len(argv) - i - 1
        word = keyword(argv[i])
        if word == b"get" and remaining >= 2:
            i += 3
        elif word == b"overflow" and remaining >= 1:
            i += 2
        else:
            return ["RW", "access", "update"]
    return ["RO", "access"]


@command("bitfield", -2, flags="write denyoom", acl="write bitmap slow", keys=(1, 1, 1),
         specs=["RW access update variable_flags: index 1, range 0 1 0 | "
                "This command allows both access and modification of the key"], group=GROUP,
         since="3.2.0", complexity="O(1) for each subcommand specified",
         key_flags=bitfield_key_flags,
         summary="Reads, writes and increments integers of any width at any bit offset of a string.")
def bitfield(c, argv):
    return bitfield_generic(c, argv, False)


@command("bitfield_ro", -2, flags="readonly fast", acl="read bitmap fast", keys=(1, 1, 1),
         specs=["RO access: index 1, range 0 1 0"], group=GROUP, since="6.0.0",
         complexity="O(1) for each subcommand specified",
         summary="Reads integers of any width at any bit offset of a string (GET only).")
def bitfield_ro(c, argv):
    return bitfield_generic(c, argv, True)
