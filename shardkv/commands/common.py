"""Helpers every command module uses: argument conversion with Redis's error
texts, typed key lookups, and value type names."""

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
