"""Helpers every command module uses: argument conversion with Redis's error
texts, typed key lookups, and value type names."""

import math
from fractions import Fraction

from shardkv import errors
from shardkv.errors import ReplyError
from shardkv.native import _native

parse_int = _native.parse_int
parse_float = _native.parse_float
format_int = _native.format_int
format_double = _native.py_format_double
OK = _native.OK
NULL_ARRAY = _native.NULL_ARRAY
NO_REPLY = _native.NO_REPLY
Status = _native.Status
RespSet = _native.RespSet
Verbatim = _native.Verbatim

LLONG_MAX = 2**63 - 1
LLONG_MIN = -(2**63)


def int_arg(b, error=errors.NOT_INTEGER):
    """A 64-bit integer argument, or the command fails with `error`."""
    v = parse_int(b)
    if v is None:
        raise ReplyError(error)
    return v


def int_arg_range(b, lo, hi, error=errors.NOT_INTEGER):
    v = int_arg(b, error)
    if v < lo or v > hi:
        raise ReplyError(error)
    return v


def float_arg(b, error=errors.NOT_FLOAT):
    v = parse_float(b)
    if v is None:
        raise ReplyError(error)
    return v


def is_string(v):
    t = type(v)
    return t is bytes or t is bytearray


def type_name(v):
    """The name TYPE reports for a stored value."""
    t = type(v)
    if t is bytes or t is bytearray:
        return "string"
    return getattr(v, "TYPE_NAME", "none")


def typed_lookup(c, key, value_type, for_write=False):
    """The value of value_type at key: None if absent, WRONGTYPE if another
    type. A reading lookup counts a hit or a miss, a writing one does not."""
    s = c.server
    v = s.lookup_write(c.db, key) if for_write else s.lookup_read(c.db, key)
    if v is not None and type(v) is not value_type:
        raise ReplyError(errors.WRONGTYPE)
    return v


def get_string(c, key):
    """The string at key for a reading command: None if absent, WRONGTYPE
    if another type."""
    v = c.server.lookup_read(c.db, key)
    if v is not None and not is_string(v):
        raise ReplyError(errors.WRONGTYPE)
    return v


def get_string_for_write(c, key):
    v = c.server.lookup_write(c.db, key)
    if v is not None and not is_string(v):
        raise ReplyError(errors.WRONGTYPE)
    return v


def lower(b):
    return b.lower()


def notify(c, event, key):
    """Keyspace notification hook (pub/sub lands in a later module)."""
    hook = c.server.keyspace_event_hook
    if hook is not None:
        hook(event, key, c.db.id)


def check_string_length(c, total):
    if total > c.server.proto_max_bulk_len:
        raise ReplyError(errors.STRING_TOO_LONG)


EMBSTR_BUDGET = 113


def string_encoding(v, overhead=1):
    """OBJECT ENCODING of a string value, by Valkey 9.1's rules: integers that
    fit a long are int; a value that fits with its key (and expiry) in one
    128-byte allocation is embstr; longer values, and values modified in place
    (bytearrays here), are raw. `overhead` is the key length plus 8 bytes when
    the key has a TTL."""
    if type(v) is bytearray:
        return b"raw"
    if len(v) <= 20 and parse_int(v) is not None:
        return b"int"
    return b"embstr" if len(v) + overhead <= EMBSTR_BUDGET else b"raw"


# ---------------------------------------------------------------- blocking timeouts

TIMEOUT_NOT_FLOAT = "ERR timeout is not a float or out of range"
TIMEOUT_NEGATIVE = "ERR timeout is negative"
TIMEOUT_OUT_OF_RANGE = "ERR timeout is out of range"


def _ld_round(x):
    """x rounded to the nearest x87 long double (64-bit significand)."""
    if not x:
        return x
    a = abs(x)
    k = a.numerator.bit_length() - a.denominator.bit_length() - 64
    m = a / Fraction(2) ** k
    while m >= 2**64:
        k += 1
        m /= 2
    while m < 2**63:
        k -= 1
        m *= 2
    q = m.numerator // m.denominator
    rest = m - q
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and q & 1):
        q += 1
    r = q * Fraction(2) ** k
    return r if x > 0 else -r


def parse_timeout(c, b):
    """A timeout in seconds as Valkey reads it (getTimeoutFromObjectOrReply):
    a long double, times 1000, rounded up to whole milliseconds. Returns the
    milliseconds to wait, 0 meaning forever."""
    n = parse_int(b)
    if n is not None:
        ms = n * 1000
    else:
        f = parse_float(b)
        if f is None:
            raise ReplyError(TIMEOUT_NOT_FLOAT)
        if math.isinf(f):
            raise ReplyError(TIMEOUT_OUT_OF_RANGE if f > 0 else TIMEOUT_NEGATIVE)
        try:
            exact = Fraction(b.decode("ascii"))
        except ValueError:
            exact = Fraction(f)     # hexadecimal
        ms = _ld_round(_ld_round(exact) * 1000)
        if ms > LLONG_MAX:
            raise ReplyError(TIMEOUT_OUT_OF_RANGE)
        ms = math.ceil(ms)
    if ms > LLONG_MAX:
        raise ReplyError(TIMEOUT_OUT_OF_RANGE)
    if ms < 0:
        raise ReplyError(TIMEOUT_NEGATIVE)
    if ms > 0 and ms > LLONG_MAX - c.server.now_ms:
        raise ReplyError(TIMEOUT_OUT_OF_RANGE)
    return ms


def c_atoi(b):
    """C's atoi (Valkey reads some numkeys with it): leading blanks, a sign,
    digits; the result cut to a 32-bit int."""
    t = b.lstrip(b" \t\n\v\f\r")
    sign = 1
    if t[:1] in (b"+", b"-"):
        sign = -1 if t[:1] == b"-" else 1
        t = t[1:]
    digits = len(t) - len(t.lstrip(b"0123456789"))
    n = sign * int(t[:digits]) if digits else 0
    n = max(min(n, LLONG_MAX), -LLONG_MAX - 1)
    return ((n + 2**31) % 2**32) - 2**31


NUMKEYS_POSITIVE = "ERR numkeys should be greater than 0"
COUNT_POSITIVE = "ERR count should be greater than 0"


def mpop_arguments(argv, numkeys_idx, parse_where):
    """numkeys, keys, the side word and COUNT of LMPOP/BLMPOP/ZMPOP/BZMPOP:
    (keys, parse_where(side word), count). parse_where raises on a bad word."""
    numkeys = parse_int(argv[numkeys_idx])
    if numkeys is None or numkeys < 1:
        raise ReplyError(NUMKEYS_POSITIVE)
    where_idx = numkeys_idx + numkeys + 1
    if where_idx >= len(argv):
        raise ReplyError(errors.SYNTAX)
    where = parse_where(argv[where_idx])
    count = None
    i = where_idx + 1
    while i < len(argv):
        if count is None and argv[i].lower() == b"count" and i + 1 < len(argv):
            count = parse_int(argv[i + 1])
            if count is None or count < 1:
                raise ReplyError(COUNT_POSITIVE)
            i += 2
        else:
            raise ReplyError(errors.SYNTAX)
    return argv[numkeys_idx + 1:where_idx], where, count


def numkeys_getkeys(numkeys_idx, store_idx=0):
    """The keys of a command with a numkeys argument as Valkey finds them:
    by the key specs when numkeys reads as an integer, else by the command's
    own key finder (atoi of numkeys; the destination last)."""
    first = numkeys_idx + 1

    def getkeys(argv):
        argc = len(argv)
        if numkeys_idx >= argc:
            return []
        n = parse_int(argv[numkeys_idx])
        if n is not None and n >= 0:
            last = first + (((n + 2**31) % 2**32) - 2**31) - 1
            if first <= last < argc:
                keys = list(range(first, last + 1))
                return ([store_idx] + keys) if store_idx else keys
        n = c_atoi(argv[numkeys_idx])
        if n < 1 or n > argc - first:
            return []
        keys = list(range(first, first + n))
        return (keys + [store_idx]) if store_idx else keys
    return getkeys
