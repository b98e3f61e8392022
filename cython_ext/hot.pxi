# The hot string commands, as cdef code: GET SET INCR DECR INCRBY DECRBY MGET
# MSET. They are the commands caches and counters run millions of times, so
# they parse their own options and write their replies straight into the
# client's buffer. Everything else in strings lives in commands/strings.py.

from cpython.bytes cimport PyBytes_FromStringAndSize as _bytes_from

cdef extern from *:
    """
    #define SHARDKV_LLONG_MAX 9223372036854775807LL
    #define SHARDKV_LLONG_MIN (-SHARDKV_LLONG_MAX - 1LL)
    """
    long long SHARDKV_LLONG_MAX
    long long SHARDKV_LLONG_MIN

DEF SET_NX = 1
DEF SET_XX = 2
DEF SET_GET = 4
DEF SET_KEEPTTL = 8
DEF SET_EX = 16
DEF SET_PX = 32
DEF SET_EXAT = 64
DEF SET_PXAT = 128


cdef inline int unit_flag(bytes lowered):
    if lowered == b"ex":
        return SET_EX
    if lowered == b"px":
        return SET_PX
    if lowered == b"exat":
        return SET_EXAT
    return SET_PXAT


cdef inline bint is_string(object v):
    cdef type t = type(v)
    return t is bytes or t is bytearray


cdef inline bint value_to_ll(object v, long long *out):
    """Parses a stored string value as a 64-bit integer, strictly."""
    if type(v) is bytes:
        return parse_ll(PyBytes_AS_STRING(v), PyBytes_GET_SIZE(v), out)
    cdef bytes b = bytes(v)
    return parse_ll(PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b), out)


cdef inline bytes ll_to_bytes(long long v):
    cdef char buf[24]
    cdef Py_ssize_t n = fmt_ll(buf, v)
    return _bytes_from(buf, n)


def parse_int(object b):
    """Parses bytes as a strict 64-bit integer (Redis's string2ll); None if not one."""
    cdef long long v
    if not isinstance(b, bytes):
        b = bytes(b)
    if parse_ll(PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b), &v):
        return v
    return None


def format_int(long long v):
    return ll_to_bytes(v)


cdef int hot_get(ShardCore s, Client c, list argv) except -1:
    cdef object v = s.lookup_read(c.db, <object>PyList_GET_ITEM(argv, 1))
    if v is None:
        return c.out.null()
    if type(v) is bytes:
        return c.out.bulk_cstr(PyBytes_AS_STRING(v), PyBytes_GET_SIZE(v))
    if type(v) is bytearray:
        return c.out.bulk(v)
    return s.error_reply(c, WRONGTYPE)


cdef int hot_set(ShardCore s, Client c, list argv) except -1:
    cdef Py_ssize_t argc = PyList_GET_SIZE(argv), i
    cdef int flags = 0
    cdef object expire_arg = None
    cdef bytes opt
    cdef long long when = 0, now
    cdef object key = <object>PyList_GET_ITEM(argv, 1)
    cdef object val = <object>PyList_GET_ITEM(argv, 2)
    cdef object old
    cdef const char *o
    if argc == 3:
        # plain SET: no condition to check, so no lookup before the store
        s.store(c.db, key, val, False)
        s.dirty += 1
        if s.keyspace_event_hook is not None:
            s.keyspace_event_hook("set", key, c.db.id)
        return c.out.raw("+OK\r\n", 5)
    i = 3
    while i < argc:
        opt = <bytes>PyList_GET_ITEM(argv, i)
        o = PyBytes_AS_STRING(opt)
        if PyBytes_GET_SIZE(opt) == 2 and (o[0] | 32) == c'n' and (o[1] | 32) == c'x' and not (flags & SET_XX):
            flags |= SET_NX
        elif PyBytes_GET_SIZE(opt) == 2 and (o[0] | 32) == c'x' and (o[1] | 32) == c'x' and not (flags & SET_NX):
            flags |= SET_XX
        elif PyBytes_GET_SIZE(opt) == 3 and (o[0] | 32) == c'g' and (o[1] | 32) == c'e' and (o[2] | 32) == c't':
            flags |= SET_GET
        elif opt.lower() == b"keepttl" and not (flags & (SET_EX | SET_PX | SET_EXAT | SET_PXAT)):
            flags |= SET_KEEPTTL
        elif i + 1 < argc and PyBytes_GET_SIZE(opt) in (2, 4) and opt.lower() in (b"ex", b"px", b"exat", b"pxat") \
                and not (flags & (SET_KEEPTTL | SET_EX | SET_PX | SET_EXAT | SET_PXAT) & ~unit_flag(opt.lower())):
            flags |= unit_flag(opt.lower())
            i += 1
            expire_arg = <object>PyList_GET_ITEM(argv, i)
        else:
            return s.error_reply(c, SYNTAX)
        i += 1
    if expire_arg is not None:
        if not parse_ll(PyBytes_AS_STRING(expire_arg), PyBytes_GET_SIZE(expire_arg), &when):
            return s.error_reply(c, NOT_INTEGER)
        if when <= 0 or ((flags & (SET_EX | SET_EXAT)) and when > SHARDKV_LLONG_MAX // 1000):
            return s.error_reply(c, "ERR invalid expire time in 'set' command")
        if flags & (SET_EX | SET_EXAT):
            when *= 1000
        if flags & (SET_EX | SET_PX):
            now = s.now_ms
            if when > SHARDKV_LLONG_MAX - now:
                return s.error_reply(c, "ERR invalid expire time in 'set' command")
            when += now
    if flags & SET_GET:
        old = s.lookup_read(c.db, key)
        if old is not None and not is_string(old):
            return s.error_reply(c, WRONGTYPE)
        found = old is not None
    else:
        found = s.lookup_write(c.db, key) is not None
    if (flags & SET_NX and found) or (flags & SET_XX and not found):
        if flags & SET_GET:
            return c.out.value(old)
        return c.out.null()
    s.store(c.db, key, val, (flags & SET_KEEPTTL) != 0)
    s.dirty += 1
    if expire_arg is not None:
        s.set_expire(c.db, key, when)
        if not (flags & SET_PXAT):
            c.rewrite = [[b"SET", key, val, b"PXAT", ll_to_bytes(when)]]
    if s.keyspace_event_hook is not None:
        s.keyspace_event_hook("set", key, c.db.id)
        if expire_arg is not None:
            s.keyspace_event_hook("expire", key, c.db.id)
    if flags & SET_GET:
        return c.out.value(old)
    return c.out.raw("+OK\r\n", 5)


cdef int hot_incr(ShardCore s, Client c, list argv, long long by) except -1:
    cdef object key = <object>PyList_GET_ITEM(argv, 1)
    cdef object v = s.lookup_write(c.db, key)
    cdef long long cur = 0
    cdef bytes nv
    if v is not None:
        if not is_string(v):
            return s.error_reply(c, WRONGTYPE)
        if not value_to_ll(v, &cur):
            return s.error_reply(c, NOT_INTEGER)
    if (by < 0 and cur < 0 and by < SHARDKV_LLONG_MIN - cur) or \
            (by > 0 and cur > 0 and by > SHARDKV_LLONG_MAX - cur):
        return s.error_reply(c, "ERR increment or decrement would overflow")
    cur += by
    nv = ll_to_bytes(cur)
    s.store(c.db, key, nv, True)
    s.dirty += 1
    if s.keyspace_event_hook is not None:
        s.keyspace_event_hook("incrby", key, c.db.id)
    return c.out.integer(cur)


cdef int hot_incrby(ShardCore s, Client c, list argv, bint negate) except -1:
    cdef object arg = <object>PyList_GET_ITEM(argv, 2)
    cdef long long by
    if not parse_ll(PyBytes_AS_STRING(arg), PyBytes_GET_SIZE(arg), &by):
        return s.error_reply(c, NOT_INTEGER)
    if negate:
        if by == SHARDKV_LLONG_MIN:
            return s.error_reply(c, "ERR decrement would overflow")
        by = -by
    return hot_incr(s, c, argv, by)


cdef int hot_mget(ShardCore s, Client c, list argv) except -1:
    cdef Py_ssize_t argc = PyList_GET_SIZE(argv), i
    cdef object v
    c.out.array(argc - 1)
    for i in range(1, argc):
        v = s.lookup_read(c.db, <object>PyList_GET_ITEM(argv, i))
        if v is None or not is_string(v):
            c.out.null()
        else:
            c.out.bulk(v)
    return 0


cdef int hot_mset(ShardCore s, Client c, list argv) except -1:
    cdef Py_ssize_t argc = PyList_GET_SIZE(argv), i
    if argc % 2 == 0:
        return s.error_reply(c, "ERR wrong number of arguments for 'mset' command")
    i = 1
    while i < argc:
        s.store(c.db, <object>PyList_GET_ITEM(argv, i), <object>PyList_GET_ITEM(argv, i + 1), False)
        if s.keyspace_event_hook is not None:
            s.keyspace_event_hook("set", <object>PyList_GET_ITEM(argv, i), c.db.id)
        i += 2
    s.dirty += (argc - 1) // 2
    return c.out.raw("+OK\r\n", 5)


# ---------------------------------------------------------------- lists
# LPUSH RPUSH LPUSHX RPUSHX LPOP RPOP run here on the compiled ListValue
# (listtype.pxi); the other list commands (shardkv/commands/lists.py) share
# its methods, so the layout rules live in one place.

cdef inline bint is_head_command(int which):
    return which == FAST_LPUSH or which == FAST_LPUSHX or which == FAST_LPOP


cdef int hot_push(ShardCore s, Client c, list argv, int which) except -1:
    cdef object key = <object>PyList_GET_ITEM(argv, 1)
    cdef object v = s.lookup_write(c.db, key)
    cdef ListValue lv
    cdef Py_ssize_t argc = PyList_GET_SIZE(argv), i, total = 0
    cdef bint head = is_head_command(which)
    if v is None:
        if which == FAST_LPUSHX or which == FAST_RPUSHX:
            return c.out.integer(0)
        lv = ListValue()
        s.add_new(c.db, key, lv)
    elif type(v) is not ListValue:
        return s.error_reply(c, WRONGTYPE)
    else:
        lv = <ListValue>v
        s.touch(c.db, key)
    for i in range(2, argc):
        total += PyBytes_GET_SIZE(<object>PyList_GET_ITEM(argv, i))
    lv.grow_check(s.list_fill, total, argc - 2)
    for i in range(2, argc):
        if head:
            lv.push_head(<object>PyList_GET_ITEM(argv, i))
        else:
            lv.push_tail(<object>PyList_GET_ITEM(argv, i))
    s.dirty += argc - 2
    if s.keyspace_event_hook is not None:
        s.keyspace_event_hook("lpush" if head else "rpush", key, c.db.id)
    return c.out.integer(lv.count)


cdef int list_elements_removed(ShardCore s, Client c, object key, ListValue lv, bint head,
                               Py_ssize_t n) except -1:
    """listElementsRemoved: the key goes when the list is empty, else the
    list may become a listpack again."""
    if s.keyspace_event_hook is not None:
        s.keyspace_event_hook("lpop" if head else "rpop", key, c.db.id)
    if lv.count == 0:
        s.delete(c.db, key)
        if s.keyspace_event_hook is not None:
            s.keyspace_event_hook("del", key, c.db.id)
    else:
        lv.shrink_check(s.list_fill)
        s.touch(c.db, key)
    s.dirty += n
    return 0


def list_removed(ShardCore s, Client c, object key, ListValue lv, bint head, Py_ssize_t n):
    """list_elements_removed for the list commands written in Python."""
    list_elements_removed(s, c, key, lv, head, n)


cdef int hot_pop(ShardCore s, Client c, list argv, int which) except -1:
    cdef Py_ssize_t argc = PyList_GET_SIZE(argv), i, n
    cdef bint head = which == FAST_LPOP
    cdef long long count = 0
    cdef object key = <object>PyList_GET_ITEM(argv, 1)
    cdef object arg, v
    cdef ListValue lv
    cdef list out
    if argc > 3:
        return s.error_reply(c, "ERR wrong number of arguments for '%s' command" % ("lpop" if head else "rpop"))
    if argc == 3:
        arg = <object>PyList_GET_ITEM(argv, 2)
        if not parse_ll(PyBytes_AS_STRING(arg), PyBytes_GET_SIZE(arg), &count) or count < 0:
            return s.error_reply(c, "ERR value is out of range, must be positive")
    v = s.lookup_write(c.db, key)
    if v is None:
        return c.out.null_array() if argc == 3 else c.out.null()
    if type(v) is not ListValue:
        return s.error_reply(c, WRONGTYPE)
    lv = <ListValue>v
    if argc == 2:
        v = lv.pop_head() if head else lv.pop_tail()
        list_elements_removed(s, c, key, lv, head, 1)
        return c.out.bulk(v)
    if count == 0:
        return c.out.array(0)
    out = lv.pop_range(head, count)
    n = len(out)
    list_elements_removed(s, c, key, lv, head, n)
    c.out.array(n)
    for v in out:
        c.out.bulk(v)
    return 0


cdef int run_fast_command(ShardCore s, int which, Client c, list argv) except -1:
    if which == FAST_GET:
        return hot_get(s, c, argv)
    if which == FAST_SET:
        return hot_set(s, c, argv)
    if which == FAST_INCR:
        return hot_incr(s, c, argv, 1)
    if which == FAST_DECR:
        return hot_incr(s, c, argv, -1)
    if which == FAST_INCRBY:
        return hot_incrby(s, c, argv, False)
    if which == FAST_DECRBY:
        return hot_incrby(s, c, argv, True)
    if which == FAST_MGET:
        return hot_mget(s, c, argv)
    if which == FAST_MSET:
        return hot_mset(s, c, argv)
    if which >= FAST_LPUSH and which <= FAST_RPUSHX:
        return hot_push(s, c, argv, which)
    if which == FAST_LPOP or which == FAST_RPOP:
        return hot_pop(s, c, argv, which)
    return 0


cdef extern from "stdio.h":
    int snprintf_ld "snprintf"(char *buf, size_t n, const char *fmt, long double v)

cdef extern from "math.h":
    bint isinf_ld "isinf"(long double v)
    bint isnan_ld "isnan"(long double v)

DEF MAX_LONG_DOUBLE_CHARS = 5120


cdef bint parse_long_double(object b, long double *out):
    """Redis's string2ld: the whole string must be a number strtold reads,
    with no leading space, no overflow to infinity and no NaN."""
    cdef bytes s = b if type(b) is bytes else bytes(b)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(s)
    cdef char *end
    cdef const char *p = PyBytes_AS_STRING(s)
    cdef long double v
    if n == 0 or n >= MAX_LONG_DOUBLE_CHARS:
        return False
    if p[0] == c' ' or p[0] == c'\t' or p[0] == c'\n' or p[0] == c'\r' or p[0] == c'\v' or p[0] == c'\f':
        return False
    if memchr(p, 0, n) != NULL:
        return False
    errno_reset()
    v = strtold(p, &end)
    if end != p + n or isnan_ld(v):
        return False
    if errno_is_range() and (isinf_ld(v) or v == 0):
        return False
    out[0] = v
    return True


cdef extern from *:
    """
    #include <errno.h>
    static inline void errno_reset(void) { errno = 0; }
    static inline int errno_is_range(void) { return errno == ERANGE; }
    """
    void errno_reset()
    bint errno_is_range()


cdef bytes format_long_double_human(long double v):
    """Redis's ld2string in human mode: "%.17Lf" without trailing zeros."""
    cdef char buf[MAX_LONG_DOUBLE_CHARS]
    cdef int n = snprintf_ld(buf, MAX_LONG_DOUBLE_CHARS, "%.17Lf", v)
    cdef int i
    if n < 0 or n >= MAX_LONG_DOUBLE_CHARS:
        return None
    if memchr(buf, c'.', n) != NULL:
        i = n - 1
        while buf[i] == c'0':
            i -= 1
            n -= 1
        if buf[i] == c'.':
            n -= 1
    if n == 2 and buf[0] == c'-' and buf[1] == c'0':
        return b"0"
    return buf[:n]


def incr_by_float(current, increment):
    """INCRBYFLOAT's arithmetic in long double, formatted as Redis does.
    current is the stored value (or None); raises ReplyError on bad input."""
    cdef long double cur = 0, inc
    if current is not None and not parse_long_double(current, &cur):
        raise ReplyError("ERR value is not a valid float")
    if not parse_long_double(increment, &inc):
        raise ReplyError("ERR value is not a valid float")
    cur += inc
    if isnan_ld(cur) or isinf_ld(cur):
        raise ReplyError("ERR increment would produce NaN or Infinity")
    out = format_long_double_human(cur)
    if out is None:
        raise ReplyError("ERR increment would produce NaN or Infinity")
    return out


def parse_float(b):
    """A double from bytes, as Redis's getDoubleFromObject (strtod, whole
    string, no leading space, no NaN); None if it is not one."""
    cdef long double v
    if not parse_long_double(b, &v):
        return None
    return <double>v


def lcs_lengths(bytes a, bytes b):
    """The LCS dynamic-programming table as a flat list of (len(a)+1)*(len(b)+1)
    lengths, row i for a[:i]."""
    cdef Py_ssize_t alen = len(a), blen = len(b), i, j, w = blen + 1
    cdef const unsigned char *pa = a
    cdef const unsigned char *pb = b
    cdef unsigned int[:] t
    import array
    arr = array.array("I", bytes(4 * (alen + 1) * (blen + 1)))
    t = arr
    for i in range(1, alen + 1):
        for j in range(1, blen + 1):
            if pa[i - 1] == pb[j - 1]:
                t[i * w + j] = t[(i - 1) * w + j - 1] + 1
            elif t[(i - 1) * w + j] > t[i * w + j - 1]:
                t[i * w + j] = t[(i - 1) * w + j]
            else:
                t[i * w + j] = t[i * w + j - 1]
    return arr
