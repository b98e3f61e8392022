"""Strings: GET SET and the other commands over string values. GET, SET,
INCR, DECR, INCRBY, DECRBY, MGET and MSET run as cdef code (cython_ext/hot.pxi);
they are declared here with fast=True so that the table stays complete.

Values are bytes, or bytearray once modified in place (APPEND, SETRANGE),
which is also what makes OBJECT ENCODING answer "raw" as Redis does."""

from shardkv import errors
from shardkv.commands.common import (
    LLONG_MAX, NO_REPLY, OK, format_int, get_string, get_string_for_write, int_arg, is_string,
    check_string_length, notify,
)
from shardkv.commands.table import command
from shardkv.errors import ReplyError
from shardkv.native import _native

RW_ACCESS_UPDATE = ["RW access update: index 1, range 0 1 0"]


@command("get", 2, flags="readonly fast", acl="read string fast", keys=(1, 1, 1),
         specs=["RO access: index 1, range 0 1 0"], group="string", fast=True,
         summary="Returns the value stored at a key.")
def get(c, argv):
    pass


@command("set", -3, flags="write denyoom", acl="write string slow", keys=(1, 1, 1),
         specs=["RW access update variable_flags: index 1, range 0 1 0 | "
                "RW and ACCESS due to the optional `GET` argument"], group="string", fast=True,
         key_flags=lambda argv, i: (["RW", "access", "update"] if any(a.lower() == b"get" for a in argv[3:])
                                 else ["OW", "update"]),
         summary="Stores a value at a key, with optional expiry and conditions.")
def set_(c, argv):
    pass


@command("incr", 2, flags="write denyoom fast", acl="write string fast", keys=(1, 1, 1),
         specs=RW_ACCESS_UPDATE, group="string", fast=True,
         summary="Adds one to the integer stored at a key.")
def incr(c, argv):
    pass


@command("decr", 2, flags="write denyoom fast", acl="write string fast", keys=(1, 1, 1),
         specs=RW_ACCESS_UPDATE, group="string", fast=True,
         summary="Subtracts one from the integer stored at a key.")
def decr(c, argv):
    pass


@command("incrby", 3, flags="write denyoom fast", acl="write string fast", keys=(1, 1, 1),
         specs=RW_ACCESS_UPDATE, group="string", fast=True,
         summary="Adds an integer to the integer stored at a key.")
def incrby(c, argv):
    pass


@command("decrby", 3, flags="write denyoom fast", acl="write string fast", keys=(1, 1, 1),
         specs=RW_ACCESS_UPDATE, group="string", fast=True,
         summary="Subtracts an integer from the integer stored at a key.")
def decrby(c, argv):
    pass


@command("mget", -2, flags="readonly fast", acl="read string fast", keys=(1, -1, 1),
         specs=["RO access: index 1, range -1 1 0"], tips="request_policy:multi_shard",
         group="string", fast=True, complexity="O(N) where N is the number of keys to retrieve.",
         summary="Returns the values of several keys.")
def mget(c, argv):
    pass


@command("mset", -3, flags="write denyoom", acl="write string slow", keys=(1, -1, 2),
         specs=["OW update: index 1, range -1 2 0"],
         tips="request_policy:multi_shard response_policy:all_succeeded", group="string",
         fast=True, complexity="O(N) where N is the number of keys to set.",
         summary="Stores several key-value pairs at once.")
def mset(c, argv):
    pass


@command("setnx", 3, flags="write denyoom fast", acl="write string fast", keys=(1, 1, 1),
         specs=["OW insert: index 1, range 0 1 0"], group="string",
         summary="Stores a value only if the key does not exist yet.")
def setnx(c, argv):
    s, key = c.server, argv[1]
    if s.lookup_write(c.db, key) is not None:
        return 0
    s.add_new(c.db, key, argv[2])
    s.dirty += 1
    notify(c, "set", key)
    return 1


def _set_with_expiry(c, argv, unit_ms, name):
    s, key = c.server, argv[1]
    ttl = int_arg(argv[2])
    if ttl <= 0 or (unit_ms == 1000 and ttl > LLONG_MAX // 1000):
        raise ReplyError(errors.invalid_expire(name))
    ttl *= unit_ms
    if ttl > LLONG_MAX - s.now_ms:
        raise ReplyError(errors.invalid_expire(name))
    when = s.now_ms + ttl
    s.store(c.db, key, argv[3])
    s.set_expire(c.db, key, when)
    s.dirty += 1
    c.rewrite = [[b"SET", key, argv[3], b"PXAT", format_int(when)]]
    notify(c, "set", key)
    notify(c, "expire", key)
    return OK


@command("setex", 4, flags="write denyoom", acl="write string slow", keys=(1, 1, 1),
         specs=["OW update: index 1, range 0 1 0"], group="string",
         summary="Stores a value with a time to live in seconds.")
def setex(c, argv):
    return _set_with_expiry(c, argv, 1000, "setex")


@command("psetex", 4, flags="write denyoom", acl="write string slow", keys=(1, 1, 1),
         specs=["OW update: index 1, range 0 1 0"], group="string",
         summary="Stores a value with a time to live in milliseconds.")
def psetex(c, argv):
    return _set_with_expiry(c, argv, 1, "psetex")


@command("msetnx", -3, flags="write denyoom", acl="write string slow", keys=(1, -1, 2),
         specs=["OW insert: index 1, range -1 2 0"], group="string",
         complexity="O(N) where N is the number of keys to set.",
         summary="Stores several key-value pairs only if none of the keys exists.")
def msetnx(c, argv):
    if len(argv) % 2 == 0:
        raise ReplyError(errors.wrong_arity("msetnx"))
    s = c.server
    for i in range(1, len(argv), 2):
        if s.lookup_write(c.db, argv[i]) is not None:
            return 0
    for i in range(1, len(argv), 2):
        s.store(c.db, argv[i], argv[i + 1])
        notify(c, "set", argv[i])
    s.dirty += (len(argv) - 1) // 2
    return 1


@command("getset", 3, flags="write denyoom fast", acl="write string fast", keys=(1, 1, 1),
         specs=RW_ACCESS_UPDATE, group="string",
         summary="Stores a value and returns the previous one.")
def getset(c, argv):
    s, key = c.server, argv[1]
    old = get_string(c, key)
    s.store(c.db, key, argv[2])
    s.dirty += 1
    notify(c, "set", key)
    return old


@command("getdel", 2, flags="write fast", acl="write string fast", keys=(1, 1, 1),
         specs=["RW access delete: index 1, range 0 1 0"], group="string",
         summary="Returns the value of a key and deletes the key.")
def getdel(c, argv):
    s, key = c.server, argv[1]
    old = get_string(c, key)
    if old is not None:
        s.delete(c.db, key)
        s.dirty += 1
        c.rewrite = [[b"DEL", key]]
        notify(c, "del", key)
    return old


def parse_expiry_options(c, argv, start, name, allow_persist):
    """EX/PX/EXAT/PXAT (and PERSIST) as GETEX takes them: returns
    (absolute ms or None, persist flag)."""
    s = c.server
    unit = None
    raw = None
    persist = False
    i = start
    while i < len(argv):
        opt = argv[i].lower()
        has_next = i + 1 < len(argv)
        if opt in (b"ex", b"px", b"exat", b"pxat") and has_next and unit in (None, opt) and not persist:
            unit = opt
            raw = argv[i + 1]
            i += 2
            continue
        if opt == b"persist" and allow_persist and unit is None:
            persist = True
            i += 1
            continue
        raise ReplyError(errors.SYNTAX)
    if unit is None:
        return None, persist
    when = int_arg(raw)
    seconds = unit in (b"ex", b"exat")
    if when <= 0 or (seconds and when > LLONG_MAX // 1000):
        raise ReplyError(errors.invalid_expire(name))
    if seconds:
        when *= 1000
    if unit in (b"ex", b"px"):
        if when > LLONG_MAX - s.now_ms:
            raise ReplyError(errors.invalid_expire(name))
        when += s.now_ms
    return when, persist


@command("getex", -2, flags="write fast", acl="write string fast", keys=(1, 1, 1),
         specs=RW_ACCESS_UPDATE, group="string",
         summary="Returns the value of a key and optionally changes its expiry.")
def getex(c, argv):
    s, key = c.server, argv[1]
    when, persist = parse_expiry_options(c, argv, 2, "getex", True)
    value = get_string(c, key)
    if value is None:
        return None
    if when is not None:
        if when <= s.now_ms and not s.is_replica:
            s.delete(c.db, key)
            c.rewrite = [[b"DEL", key]]
            notify(c, "del", key)
        else:
            s.set_expire(c.db, key, when)
            c.rewrite = [[b"PEXPIREAT", key, format_int(when)]]
            notify(c, "expire", key)
            s.touch(c.db, key)
        s.dirty += 1
    elif persist and s.remove_expire(c.db, key):
        c.rewrite = [[b"PERSIST", key]]
        notify(c, "persist", key)
        s.touch(c.db, key)
        s.dirty += 1
    return value


@command("append", 3, flags="write denyoom fast", acl="write string fast", keys=(1, 1, 1),
         specs=["RW insert: index 1, range 0 1 0"], group="string",
         summary="Appends bytes to the value of a key, creating it if needed.")
def append(c, argv):
    s, key, tail = c.server, argv[1], argv[2]
    v = get_string_for_write(c, key)
    if v is None:
        s.add_new(c.db, key, tail)
        length = len(tail)
    else:
        check_string_length(c, len(v) + len(tail))
        if type(v) is not bytearray:
            v = bytearray(v)
            s.store(c.db, key, v, True)
        else:
            s.touch(c.db, key)
        v += tail
        length = len(v)
    s.dirty += 1
    notify(c, "append", key)
    return length


@command("strlen", 2, flags="readonly fast", acl="read string fast", keys=(1, 1, 1),
         specs=["RO: index 1, range 0 1 0"], group="string",
         summary="Returns the length in bytes of the value of a key.")
def strlen(c, argv):
    v = get_string(c, argv[1])
    return 0 if v is None else len(v)


@command("incrbyfloat", 3, flags="write denyoom fast", acl="write string fast", keys=(1, 1, 1),
         specs=RW_ACCESS_UPDATE, group="string",
         summary="Adds a floating point number to the number stored at a key.")
def incrbyfloat(c, argv):
    s, key = c.server, argv[1]
    cur = get_string_for_write(c, key)
    new = _native.incr_by_float(cur, argv[2])
    s.store(c.db, key, new, True)
    s.dirty += 1
    # replicas must not redo float arithmetic: they get the result
    c.rewrite = [[b"SET", key, new, b"KEEPTTL"]]
    notify(c, "incrbyfloat", key)
    return new


def _getrange(c, argv):
    start = int_arg(argv[2])
    end = int_arg(argv[3])
    v = get_string(c, argv[1])
    if v is None:
        return b""
    n = len(v)
    if start < 0 and end < 0 and start > end:
        return b""
    if start < 0:
        start += n
    if end < 0:
        end += n
    start = max(start, 0)
    end = max(end, 0)
    if end >= n:
        end = n - 1
    if start > end or n == 0:
        return b""
    return bytes(v[start:end + 1])


@command("getrange", 4, flags="readonly", acl="read string slow", keys=(1, 1, 1),
         specs=["RO access: index 1, range 0 1 0"], group="string",
         complexity="O(N) where N is the length of the returned string.",
         summary="Returns a substring of the value of a key.")
def getrange(c, argv):
    return _getrange(c, argv)


@command("substr", 4, flags="readonly", acl="read string slow", keys=(1, 1, 1),
         specs=["RO access: index 1, range 0 1 0"], group="string",
         complexity="O(N) where N is the length of the returned string.",
         summary="Returns a substring of the value of a key (old name of GETRANGE).")
def substr(c, argv):
    return _getrange(c, argv)


@command("setrange", 4, flags="write denyoom", acl="write string slow", keys=(1, 1, 1),
         specs=["RW update: index 1, range 0 1 0"], group="string",
         summary="Overwrites part of a string value at an offset, padding with zero bytes.")
def setrange(c, argv):
    s, key, patch = c.server, argv[1], argv[3]
    offset = int_arg(argv[2])
    if offset < 0:
        raise ReplyError(errors.OFFSET_OUT_OF_RANGE)
    v = get_string_for_write(c, key)
    if v is None:
        if not patch:
            return 0
        check_string_length(c, offset + len(patch))
        v = bytearray(offset)
        v += patch
        s.add_new(c.db, key, v)
    else:
        if not patch:
            return len(v)
        check_string_length(c, offset + len(patch))
        if type(v) is not bytearray:
            v = bytearray(v)
            s.store(c.db, key, v, True)
        else:
            s.touch(c.db, key)
        if len(v) < offset + len(patch):
            v.extend(bytes(offset + len(patch) - len(v)))
        v[offset:offset + len(patch)] = patch
    s.dirty += 1
    notify(c, "setrange", key)
    return len(v)


@command("lcs", -3, flags="readonly", acl="read string slow", keys=(1, 2, 1),
         specs=["RO access: index 1, range 1 1 0"], group="string",
         complexity="O(N*M) where N and M are the lengths of s1 and s2, respectively",
         since="7.0.0", summary="Finds the longest common subsequence of two string values.")
def lcs(c, argv):
    s = c.server
    a = s.lookup_read(c.db, argv[1])
    b = s.lookup_read(c.db, argv[2])
    if (a is not None and not is_string(a)) or (b is not None and not is_string(b)):
        raise ReplyError("ERR The specified keys must contain string values")
    a = bytes(a) if a is not None else b""
    b = bytes(b) if b is not None else b""
    getlen = getidx = withmatchlen = False
    minmatchlen = 0
    i = 3
    while i < len(argv):
        opt = argv[i].lower()
        if opt == b"idx":
            getidx = True
        elif opt == b"len":
            getlen = True
        elif opt == b"withmatchlen":
            withmatchlen = True
        elif opt == b"minmatchlen" and i + 1 < len(argv):
            minmatchlen = max(int_arg(argv[i + 1]), 0)
            i += 1
        else:
            raise ReplyError(errors.SYNTAX)
        i += 1
    if getidx and getlen:
        raise ReplyError("ERR If you want both the length and indexes, please just use IDX.")
    if (len(a) + 1) * (len(b) + 1) * 4 > s.proto_max_bulk_len:
        raise ReplyError("ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len")
    alen, blen, w = len(a), len(b), len(b) + 1
    t = _native.lcs_lengths(a, b)
    total = t[alen * w + blen]
    if getlen:
        return total
    # Walk back from the end, collecting the LCS and its matching ranges the
    # way Redis does, so that IDX lists the same ranges in the same order.
    result = bytearray(total)
    idx = total
    matches = []
    i, j = alen, blen
    a_start = alen
    a_end = b_start = b_end = 0
    while i > 0 and j > 0:
        emit = False
        if a[i - 1] == b[j - 1]:
            result[idx - 1] = a[i - 1]
            if a_start == alen:
                a_start = a_end = i - 1
                b_start = b_end = j - 1
            elif a_start == i and b_start == j:
                a_start -= 1
                b_start -= 1
            else:
                emit = True
            if a_start == 0 or b_start == 0:
                emit = True
            idx -= 1
            i -= 1
            j -= 1
        else:
            if t[(i - 1) * w + j] > t[i * w + j - 1]:
                i -= 1
            else:
                j -= 1
            if a_start != alen:
                emit = True
        match_len = a_end - a_start + 1
        if emit:
            if getidx and (minmatchlen == 0 or match_len >= minmatchlen):
                m = [[a_start, a_end], [b_start, b_end]]
                if withmatchlen:
                    m.append(match_len)
                matches.append(m)
            a_start = alen
    if getidx:
        return {b"matches": matches, b"len": total}
    return bytes(result)


__all__ = ["NO_REPLY"]
