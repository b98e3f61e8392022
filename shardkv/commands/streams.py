"""Streams: XADD XLEN XRANGE XREVRANGE XDEL XTRIM XSETID XREAD XREADGROUP
XGROUP (CREATE SETID DESTROY CREATECONSUMER DELCONSUMER HELP) XACK XPENDING
XCLAIM XAUTOCLAIM XINFO (STREAM GROUPS CONSUMERS HELP), over
shardkv.types.stream.StreamValue, with Valkey 9.1's replies, error texts
and argument order.

Propagation is deterministic, as Valkey makes it: XADD carries the ID it
generated and approximate trimming becomes exact (MAXLEN = <length left> or
MINID = <first ID left>); XREADGROUP, XCLAIM and XAUTOCLAIM propagate one
XCLAIM ... FORCE JUSTID LASTID per pending entry they create or move, plus
XGROUP SETID (NOACK reads, a LASTID that moved nothing) and XGROUP
CREATECONSUMER (a consumer created by a NOACK read).

XREAD and XREADGROUP with BLOCK wait through c.server.blocking
(shardkv/blocking.py); when one of their keys is signalled the read runs
again with the IDs fixed when it blocked ('$' resolved then, '>' read
afresh), as Valkey re-executes a blocked command: a group read whose key or
group went away answers NOGROUP, one whose key changed type WRONGTYPE.
Inside MULTI/EXEC nothing blocks: the read answers as if it timed out."""

from __future__ import annotations

from shardkv import errors
from shardkv.commands.common import NULL_ARRAY, OK, format_int, notify, parse_int, typed_lookup
from shardkv.commands.keys import help_reply
from shardkv.commands.table import REGISTRY, command, container
from shardkv.errors import ReplyError
from shardkv.native import _native
from shardkv.types.stream import (
    INVALID_ENTRIES_READ, MAX_ID, U64, Nack, StreamValue, id_bytes, pack,
)

GROUP = "stream"
EXECUTING = _native.CLIENT_FLAGS["EXECUTING"]
MASTER = _native.CLIENT_FLAGS["MASTER"]
LLONG_MAX = 2**63 - 1

INVALID_ID = "ERR Invalid stream ID specified as stream command argument"
XADD_ID_ZERO = "ERR The ID specified in XADD must be greater than 0-0"
XADD_ID_SMALL = "ERR The ID specified in XADD is equal or smaller than the target stream top item"
XADD_EXHAUSTED = "ERR The stream has exhausted the last possible ID, unable to add more items"
XADD_TOO_LARGE = "ERR Elements are too large to be stored"
MAXLEN_AND_MINID = "ERR syntax error, MAXLEN and MINID options at the same time are not compatible"
MAXLEN_NEGATIVE = "ERR The MAXLEN argument must be >= 0."
LIMIT_NEGATIVE = "ERR The LIMIT argument must be >= 0."
LIMIT_NO_STRATEGY = "ERR syntax error, LIMIT cannot be used without specifying a trimming strategy"
LIMIT_NO_APPROX = "ERR syntax error, LIMIT cannot be used without the special ~ option"
XTRIM_NO_STRATEGY = "ERR syntax error, XTRIM must be called with a trimming strategy"
BAD_START = "ERR invalid start ID for the interval"
BAD_END = "ERR invalid end ID for the interval"
TIMEOUT_NOT_INT = "ERR timeout is not an integer or out of range"
TIMEOUT_NEGATIVE = "ERR timeout is negative"
TIMEOUT_OUT_OF_RANGE = "ERR timeout is out of range"
GROUP_ONLY_XREADGROUP = "ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead."
NOACK_ONLY_XREADGROUP = "ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead."
MISSING_GROUP = "ERR Missing GROUP option for XREADGROUP"
DOLLAR_IN_GROUP = ("ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history "
                   "of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ "
                   "ID would just return an empty result set.")
PLUS_IN_GROUP = ("ERR The + ID is meaningless in the context of XREADGROUP: you want to read the history "
                 "of this consumer by specifying a proper ID, or use the > ID to get new messages. The + "
                 "ID would just return an empty result set.")
GT_OUTSIDE_GROUP = ("ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> "
                    "<consumer> option.")
LAST_ID_ZERO = "ERR the stream last element ID is 0-0"
XGROUP_NO_KEY = ("ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want "
                 "to use the MKSTREAM option to create an empty stream automatically.")
BUSYGROUP = "BUSYGROUP Consumer Group name already exists"
ENTRIESREAD_RANGE = "ERR value for ENTRIESREAD must be positive or -1"
ENTRIES_ADDED_NEGATIVE = "ERR entries_added must be positive"
XSETID_BELOW_MAXDELETED_ARG = "ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id"
XSETID_BELOW_MAXDELETED = "ERR The ID specified in XSETID is smaller than current max_deleted_entry_id"
XSETID_BELOW_TOP = "ERR The ID specified in XSETID is smaller than the target stream top item"
XSETID_ADDED_SMALL = "ERR The entries_added specified in XSETID is smaller than the target stream length"
COUNT_POSITIVE = "ERR COUNT must be > 0"
AUTOCLAIM_MAX_COUNT = LLONG_MAX // 16
# Valkey allocates COUNT IDs (16 bytes each) up front and fails when the
# allocator refuses; a request beyond the x86-64 address space always fails
AUTOCLAIM_ALLOC_LIMIT = 1 << 47
AUTOCLAIM_NO_MEMORY = "ERR Insufficient memory, failed allocating transient memory, COUNT too high."

# listpack limit of a whole entry (STREAM_LISTPACK_MAX_SIZE)
LISTPACK_MAX_SIZE = 1 << 30
SPACES = b" \t\n\v\f\r"
DIGITS = frozenset(b"0123456789")


# ---------------------------------------------------------------- IDs

def _strtoull(s):
    """string2ull: a strict integer first, else C's strtoull (leading
    spaces, a sign, digits, nothing after; a minus wraps around)."""
    v = parse_int(s) if s else None
    if v is not None:
        return v if v >= 0 else None
    t = s.lstrip(SPACES)
    neg = t[:1] == b"-"
    if t[:1] in (b"+", b"-"):
        t = t[1:]
    if not t or not DIGITS.issuperset(t):
        return None
    n = int(t)
    if n > U64:
        return None
    return (-n) & U64 if neg else n


def parse_id(b, missing_seq=0, strict=False, seq_star=False):
    """streamGenericParseIDOrReply: (packed ID, sequence given?). '-' and
    '+' are the smallest and largest IDs unless strict; 'ms' alone takes
    missing_seq; 'ms-*' is allowed when seq_star."""
    if len(b) > 127:
        raise ReplyError(INVALID_ID)
    nul = b.find(b"\0")
    if nul >= 0:
        b = b[:nul]
    if b == b"-" or b == b"+":
        if strict:
            raise ReplyError(INVALID_ID)
        return (0 if b == b"-" else MAX_ID), True
    dash = b.find(b"-")
    ms = _strtoull(b if dash < 0 else b[:dash])
    if ms is None:
        raise ReplyError(INVALID_ID)
    if dash < 0:
        return pack(ms, missing_seq), True
    tail = b[dash + 1:]
    if seq_star and tail == b"*":
        return pack(ms, 0), False
    seq = _strtoull(tail)
    if seq is None:
        raise ReplyError(INVALID_ID)
    return pack(ms, seq), True


def strict_id(b, missing_seq=0):
    return parse_id(b, missing_seq, True)[0]


def interval_id(b, missing_seq):
    """streamParseIntervalIDOrReply: (ID, exclusive?) for a range bound."""
    if len(b) > 1 and b[:1] == b"(":
        return parse_id(b[1:], missing_seq, True)[0], True
    return parse_id(b, missing_seq)[0], False


def range_start(b):
    i, ex = interval_id(b, 0)
    if ex:
        if i == MAX_ID:
            raise ReplyError(BAD_START)
        i += 1
    return i


def range_end(b):
    i, ex = interval_id(b, U64)
    if ex:
        if i == 0:
            raise ReplyError(BAD_END)
        i -= 1
    return i


def _ll(b, error=errors.NOT_INTEGER):
    v = parse_int(b)
    if v is None:
        raise ReplyError(error)
    return v


# ---------------------------------------------------------------- helpers

def node_limits(s):
    """(stream-node-max-entries, stream-node-max-bytes)."""
    return s.config["stream-node-max-entries"], s.config["stream-node-max-bytes"]


def read_stream(c, key):
    return typed_lookup(c, key, StreamValue)


def write_stream(c, key):
    return typed_lookup(c, key, StreamValue, for_write=True)


def entry_reply(i, flat):
    return [id_bytes(i), flat]


def entries_reply(items):
    return [[id_bytes(i), flat] for i, flat in items]


def _signal_ready(c, key):
    """signalKeyAsReady without signalModifiedKey: wakes blocked readers
    (a destroyed group answers them NOGROUP) but leaves WATCH alone."""
    c.server.blocking.key_modified(c.db, key)


def _nogroup(key, group, suffix=""):
    return ReplyError("NOGROUP No such key '%s' or consumer group '%s'%s"
                      % (key.decode("latin-1"), group.decode("latin-1"), suffix))


def _nogroup_for_key(group, key):
    return ReplyError("NOGROUP No such consumer group '%s' for key name '%s'"
                      % (group.decode("latin-1"), key.decode("latin-1")))


def _create_consumer(c, g, name, key):
    """streamCreateConsumer with its side effects (dirty, notification)."""
    cons = g.create_consumer(name, c.server.now_ms)
    if cons is not None:
        c.server.dirty += 1
        notify(c, "xgroup-createconsumer", key)
    return cons


def _xclaim_argv(key, groupname, g, id_arg, nack):
    return [b"XCLAIM", key, groupname, nack.consumer.name, b"0", id_arg, b"TIME",
            format_int(nack.delivery_time), b"RETRYCOUNT", format_int(nack.delivery_count),
            b"FORCE", b"JUSTID", b"LASTID", id_bytes(g.last_id)]


def _setid_argv(key, groupname, g):
    return [b"XGROUP", b"SETID", key, groupname, id_bytes(g.last_id), b"ENTRIESREAD",
            format_int(g.entries_read)]


# ---------------------------------------------------------------- XADD / XTRIM

class TrimArgs:
    __slots__ = ("maxlen", "minid", "approx", "limit", "arg_idx", "id", "id_given", "seq_given",
                 "nomkstream")

    def __init__(self):
        self.maxlen = None
        self.minid = None
        self.approx = False
        self.limit = 0
        self.arg_idx = 0
        self.id = 0
        self.id_given = False
        self.seq_given = True
        self.nomkstream = False

    @property
    def strategy(self):
        return self.maxlen is not None or self.minid is not None


def parse_add_trim(c, argv, xadd):
    """streamParseAddOrTrimArgsOrReply: the options, and the position of
    the ID (XADD)."""
    s = c.server
    c_obeyed = c.flag(MASTER)
    a = TrimArgs()
    argc = len(argv)
    limit_given = False
    i = 2
    while i < argc:
        more = argc - 1 - i
        opt = argv[i]
        lo = opt.lower()
        if xadd and opt == b"*":
            break
        if lo in (b"maxlen", b"minid") and more:
            if a.strategy:
                raise ReplyError(MAXLEN_AND_MINID)
            a.approx = False
            nxt = argv[i + 1]
            if more >= 2 and nxt == b"~":
                a.approx = True
                i += 1
            elif more >= 2 and nxt == b"=":
                i += 1
            if lo == b"maxlen":
                n = _ll(argv[i + 1])
                if n < 0:
                    raise ReplyError(MAXLEN_NEGATIVE)
                a.maxlen = n
            else:
                a.minid = strict_id(argv[i + 1])
            i += 1
            a.arg_idx = i
        elif lo == b"limit" and more:
            n = _ll(argv[i + 1])
            if n < 0:
                raise ReplyError(LIMIT_NEGATIVE)
            a.limit = n
            limit_given = True
            i += 1
        elif xadd and lo == b"nomkstream":
            a.nomkstream = True
        elif xadd:
            a.id, a.seq_given = parse_id(opt, 0, True, True)
            a.id_given = True
            break
        else:
            raise ReplyError(errors.SYNTAX)
        i += 1
    if a.limit and not a.strategy:
        raise ReplyError(LIMIT_NO_STRATEGY)
    if not xadd and not a.strategy:
        raise ReplyError(XTRIM_NO_STRATEGY)
    if c_obeyed:
        # from our primary: the trim was made exact before it was propagated
        a.limit = 0
    elif limit_given:
        if not a.approx:
            raise ReplyError(LIMIT_NO_APPROX)
    elif a.approx:
        a.limit = 100 * node_limits(s)[0]
        if a.limit <= 0:
            a.limit = 10000
        if a.limit > 1000000:
            a.limit = 1000000
    else:
        a.limit = 0
    return a, i


def _trim(st, a):
    return st.trim(a.maxlen, a.minid, a.approx, a.limit)


def _rewrite_trim(st, a, argv):
    """Approximate trimming propagates as the exact trim it amounted to."""
    argv[a.arg_idx - 1] = b"="
    if a.maxlen is not None:
        argv[a.arg_idx] = format_int(st.length)
    else:
        argv[a.arg_idx] = id_bytes(st.first_id_with_tombstones())


@command("xadd", -5, flags="write denyoom fast", acl="write stream fast", keys=(1, 1, 1),
         specs=["RW update: index 1, range 0 1 0 | UPDATE instead of INSERT because of the optional "
                "trimming feature"], tips="nondeterministic_output", group=GROUP,
         since="5.0.0",
         complexity="O(1) when adding a new entry, O(N) when trimming where N being the number of entries evicted.",
         summary="Appends an entry to a stream, creating the stream if needed, optionally trimming it.")
def xadd(c, argv):
    s, key = c.server, argv[1]
    a, idpos = parse_add_trim(c, argv, True)
    field_pos = idpos + 1
    nargs = len(argv) - field_pos
    if nargs < 2 or nargs % 2:
        raise ReplyError(errors.wrong_arity("xadd"))
    if a.id_given and a.seq_given and a.id == 0:
        raise ReplyError(XADD_ID_ZERO)
    st = write_stream(c, key)
    if st is None:
        if a.nomkstream:
            return None
        st = StreamValue()
        s.add_new(c.db, key, st)
    last = st.last_id
    if last == MAX_ID:
        raise ReplyError(XADD_EXHAUSTED)
    if a.id_given:
        if a.seq_given:
            new = a.id
        elif (a.id >> 64) == (last >> 64):
            if last & U64 == U64:
                raise ReplyError(XADD_ID_SMALL)
            new = last + 1
        else:
            new = a.id
    else:
        now = s.now_ms
        new = pack(now, 0) if now > (last >> 64) else last + 1
    if new <= last:
        raise ReplyError(XADD_ID_SMALL)
    flat = tuple(argv[field_pos:])
    if sum(map(len, flat)) > LISTPACK_MAX_SIZE:
        raise ReplyError(XADD_TOO_LARGE)
    max_entries, max_bytes = node_limits(s)
    st.append(new, flat, max_entries, max_bytes)
    reply = id_bytes(new)
    s.touch(c.db, key)
    notify(c, "xadd", key)
    s.dirty += 1
    rewrite = None
    if a.strategy:
        if _trim(st, a):
            notify(c, "xtrim", key)
        if a.approx:
            rewrite = list(argv)
            _rewrite_trim(st, a, rewrite)
    if not a.id_given or not a.seq_given:
        if rewrite is None:
            rewrite = list(argv)
        rewrite[idpos] = reply
    if rewrite is not None:
        c.rewrite = [rewrite]
    return reply


@command("xtrim", -4, flags="write", acl="write stream slow", keys=(1, 1, 1),
         specs=["RW delete: index 1, range 0 1 0"], tips="nondeterministic_output", group=GROUP,
         since="6.2.0", complexity="O(N), with N being the number of evicted entries. Constant times are very small however, since entries are organized in macro nodes containing multiple entries that can be released with a single deallocation.",
         summary="Removes the oldest entries of a stream, by count or by ID.")
def xtrim(c, argv):
    s, key = c.server, argv[1]
    a, _ = parse_add_trim(c, argv, False)
    st = write_stream(c, key)
    if st is None:
        return 0
    deleted = _trim(st, a)
    if deleted:
        notify(c, "xtrim", key)
        if a.approx:
            rewrite = list(argv)
            _rewrite_trim(st, a, rewrite)
            c.rewrite = [rewrite]
        s.touch(c.db, key)
        s.dirty += deleted
    return deleted


# ---------------------------------------------------------------- reading

@command("xlen", 2, flags="readonly fast", acl="read stream fast", keys=(1, 1, 1),
         specs=["RO: index 1, range 0 1 0"], group=GROUP, since="5.0.0",
         summary="Counts the entries of a stream.")
def xlen(c, argv):
    st = read_stream(c, argv[1])
    return 0 if st is None else st.length


def _xrange(c, argv, rev):
    start_arg, end_arg = (argv[3], argv[2]) if rev else (argv[2], argv[3])
    start = range_start(start_arg)
    end = range_end(end_arg)
    count = -1
    j = 4
    while j < len(argv):
        if argv[j].lower() == b"count" and len(argv) - j - 1 >= 1:
            count = max(_ll(argv[j + 1]), 0)
            j += 2
        else:
            raise ReplyError(errors.SYNTAX)
    st = read_stream(c, argv[1])
    if st is None:
        return []
    if count == 0:
        return NULL_ARRAY
    n = 0 if count == -1 else count
    items = st.rev_range(start, end, n) if rev else st.range(start, end, n)
    return entries_reply(items)


RANGE_COMPLEXITY = ("O(N) with N being the number of elements being returned. If N is constant (e.g. "
                    "always asking for the first 10 elements with COUNT), you can consider it O(1).")


@command("xrange", -4, flags="readonly", acl="read stream slow", keys=(1, 1, 1),
         specs=["RO access: index 1, range 0 1 0"], group=GROUP, since="5.0.0",
         complexity=RANGE_COMPLEXITY,
         summary="Returns the entries of a stream between two IDs, oldest first.")
def xrange(c, argv):
    return _xrange(c, argv, False)


@command("xrevrange", -4, flags="readonly", acl="read stream slow", keys=(1, 1, 1),
         specs=["RO access: index 1, range 0 1 0"], group=GROUP, since="5.0.0",
         complexity=RANGE_COMPLEXITY,
         summary="Returns the entries of a stream between two IDs, newest first.")
def xrevrange(c, argv):
    return _xrange(c, argv, True)


@command("xdel", -3, flags="write fast", acl="write stream fast", keys=(1, 1, 1),
         specs=["RW delete: index 1, range 0 1 0"], group=GROUP, since="5.0.0",
         complexity="O(1) for each single item to delete in the stream, regardless of the stream size.",
         summary="Deletes entries of a stream by ID; returns how many existed.")
def xdel(c, argv):
    s, key = c.server, argv[1]
    st = write_stream(c, key)
    if st is None:
        return 0
    ids = [strict_id(b) for b in argv[2:]]
    deleted = 0
    first = False
    for i in ids:
        if st.delete(i):
            if i == st.first_id:
                first = True
            if i > st.max_deleted:
                st.max_deleted = i
            deleted += 1
    if deleted:
        st.after_deletes(first)
        s.touch(c.db, key)
        notify(c, "xdel", key)
        s.dirty += deleted
    return deleted


@command("xsetid", -3, flags="write denyoom fast", acl="write stream fast", keys=(1, 1, 1),
         specs=["RW update: index 1, range 0 1 0"], group=GROUP, since="5.0.0",
         summary="Sets a stream's last generated ID, and optionally its added-entries counter and max deleted ID.")
def xsetid(c, argv):
    s, key = c.server, argv[1]
    new = strict_id(argv[2])
    entries_added = -1
    max_xdel = 0
    i = 3
    while i < len(argv):
        more = len(argv) - 1 - i
        opt = argv[i].lower()
        if opt == b"entriesadded" and more:
            entries_added = _ll(argv[i + 1])
            if entries_added < 0:
                raise ReplyError(ENTRIES_ADDED_NEGATIVE)
            i += 2
        elif opt == b"maxdeletedid" and more:
            max_xdel = strict_id(argv[i + 1])
            if new < max_xdel:
                raise ReplyError(XSETID_BELOW_MAXDELETED_ARG)
            i += 2
        else:
            raise ReplyError(errors.SYNTAX)
    st = write_stream(c, key)
    if st is None:
        raise ReplyError(errors.NO_SUCH_KEY)
    if new < st.max_deleted:
        raise ReplyError(XSETID_BELOW_MAXDELETED)
    if st.length > 0:
        if new < st.last_live_id():
            raise ReplyError(XSETID_BELOW_TOP)
        if entries_added != -1 and st.length > entries_added:
            raise ReplyError(XSETID_ADDED_SMALL)
    st.last_id = new
    if entries_added != -1:
        st.entries_added = entries_added
    if max_xdel:
        st.max_deleted = max_xdel
    s.dirty += 1
    notify(c, "xsetid", key)
    return OK


# ---------------------------------------------------------------- XREAD / XREADGROUP

GT = object()       # the '>' ID of XREADGROUP


def _parse_timeout(c, b):
    t = parse_int(b)
    if t is None:
        raise ReplyError(TIMEOUT_NOT_INT)
    if t < 0:
        raise ReplyError(TIMEOUT_NEGATIVE)
    if t > 0 and t > LLONG_MAX - c.server.now_ms:
        raise ReplyError(TIMEOUT_OUT_OF_RANGE)
    return t


class ReadArgs:
    __slots__ = ("group", "consumer", "count", "noack", "keys", "ids", "timeout")


def _parse_xread(c, argv, xreadgroup):
    """Options, keys and IDs of XREAD/XREADGROUP, in Valkey's order of
    checks (the IDs are resolved against the streams as they are now)."""
    r = ReadArgs()
    r.group = r.consumer = None
    r.count = 0
    r.noack = False
    r.timeout = -1
    argc = len(argv)
    streams_arg = 0
    i = 1
    while i < argc:
        more = argc - i - 1
        o = argv[i].lower()
        if o == b"block" and more:
            i += 1
            r.timeout = _parse_timeout(c, argv[i])
        elif o == b"count" and more:
            i += 1
            r.count = max(_ll(argv[i]), 0)
        elif o == b"streams" and more:
            streams_arg = i + 1
            n = argc - streams_arg
            if n % 2:
                name = "xreadgroup" if xreadgroup else "xread"
                raise ReplyError("ERR Unbalanced '%s' list of streams: for each stream key an ID or "
                                 "'%s' must be specified." % (name, ">" if xreadgroup else "$"))
            break
        elif o == b"group" and more >= 2:
            if not xreadgroup:
                raise ReplyError(GROUP_ONLY_XREADGROUP)
            r.group, r.consumer = argv[i + 1], argv[i + 2]
            i += 2
        elif o == b"noack":
            if not xreadgroup:
                raise ReplyError(NOACK_ONLY_XREADGROUP)
            r.noack = True
        else:
            raise ReplyError(errors.SYNTAX)
        i += 1
    if not streams_arg:
        raise ReplyError(errors.SYNTAX)
    if xreadgroup and r.group is None:
        raise ReplyError(MISSING_GROUP)
    n = (argc - streams_arg) // 2
    r.keys = argv[streams_arg:streams_arg + n]
    r.ids = []
    for key, arg in zip(r.keys, argv[streams_arg + n:], strict=True):
        st = read_stream(c, key)
        if r.group is not None and (st is None or st.group(r.group) is None):
            raise _nogroup(key, r.group, " in XREADGROUP with GROUP option")
        if arg == b"$":
            if xreadgroup:
                raise ReplyError(DOLLAR_IN_GROUP)
            r.ids.append(st.last_id if st is not None else 0)
        elif arg == b">":
            if not xreadgroup:
                raise ReplyError(GT_OUTSIDE_GROUP)
            r.ids.append(GT)
        elif arg == b"+":
            if xreadgroup:
                raise ReplyError(PLUS_IN_GROUP)
            if st is not None and st.length:
                if st.last_id == 0:
                    raise ReplyError(LAST_ID_ZERO)
                r.ids.append(st.last_id - 1)
            else:
                r.ids.append(0)
        else:
            r.ids.append(strict_id(arg))
    return r


def _serve_group(c, st, key, r, g, cons, start, history, rewrites):
    """streamReplyWithRange with a group: the entries after start (or the
    consumer's history from start), updating the group and the PELs."""
    s = c.server
    now = s.now_ms
    out = []
    count = r.count
    if history:
        for i, nack in cons.pel.items()[cons.pel.bisect_left(start):]:
            if count and len(out) >= count:
                break
            flat = st.get(i)
            if flat is None:
                out.append([id_bytes(i), NULL_ARRAY])
            else:
                nack.delivery_time = now
                nack.delivery_count += 1
                out.append(entry_reply(i, flat))
        return out
    moved = False
    for i, flat in st.range(start, MAX_ID, count):
        if i > g.last_id:
            if g.entries_read != INVALID_ENTRIES_READ and g.last_id >= st.first_id and \
                    not st.range_has_tombstones(g.last_id):
                g.entries_read += 1
            elif st.entries_added:
                g.entries_read = st.estimate_distance(i)
            g.last_id = i
            moved = True
        out.append(entry_reply(i, flat))
        if not r.noack:
            nack = g.pel.get(i)
            if nack is None:
                nack = Nack(cons, now)
                g.pel[i] = nack
                cons.pel[i] = nack
            else:
                del nack.consumer.pel[i]
                nack.consumer = cons
                nack.delivery_time = now
                nack.delivery_count = 1
                cons.pel[i] = nack
            cons.active_time = now
            rewrites.append(_xclaim_argv(key, r.group, g, id_bytes(i), nack))
    if r.noack and moved:
        rewrites.append(_setid_argv(key, r.group, g))
    return out


def _xread_serve(c, r, xreadgroup, rewrites):
    """One pass over the streams: the reply items ([key, entries] pairs)
    of the streams that have something, as Valkey serves synchronously.
    Raises NOGROUP/WRONGTYPE when a stream or group went away (re-run of a
    blocked XREADGROUP)."""
    s = c.server
    out = []
    for key, gt in zip(r.keys, r.ids, strict=True):
        st = read_stream(c, key)
        if st is None:
            continue
        serve = history = False
        g = cons = None
        if xreadgroup:
            g = st.group(r.group)
            if gt is not GT:
                serve = history = True
            elif st.length:
                if st.last_live_id() > g.last_id:
                    serve = True
                    gt = g.last_id
            cons = g.consumers.get(r.consumer)
            if cons is None:
                cons = _create_consumer(c, g, r.consumer, key)
                if r.noack:
                    rewrites.append([b"XGROUP", b"CREATECONSUMER", key, r.group, r.consumer])
            cons.seen_time = s.now_ms
        elif st.length and st.last_live_id() > gt:
            serve = True
        if not serve:
            continue
        start = gt + 1 if gt < MAX_ID else gt
        if xreadgroup:
            items = _serve_group(c, st, key, r, g, cons, start, history, rewrites)
            s.dirty += 1
        else:
            items = entries_reply(st.range(start, MAX_ID, r.count))
        out.append((key, items))
    return out


def _xread_reply(c, served):
    if c.proto == 3:
        return {k: v for k, v in served}
    return [[k, v] for k, v in served]


def _xread_generic(c, argv, xreadgroup):
    r = _parse_xread(c, argv, xreadgroup)
    rewrites = []
    c.rewrite = rewrites
    served = _xread_serve(c, r, xreadgroup, rewrites)
    if served:
        return _xread_reply(c, served)
    if r.timeout == -1 or c.flag(EXECUTING):
        return NULL_ARRAY
    s = c.server

    def on_ready(key):
        # XREAD wakes for a stream only; XREADGROUP for anything, and its
        # re-run fails when a key or the group went away
        if not xreadgroup and type(s.peek(c.db, key)) is not StreamValue:
            return False
        for k in r.keys:
            v = s.peek(c.db, k)
            if v is not None and type(v) is not StreamValue:
                raise ReplyError(errors.WRONGTYPE)
            if xreadgroup and (v is None or v.group(r.group) is None):
                raise _nogroup(k, r.group, " in XREADGROUP with GROUP option")
        more = []
        served = _xread_serve(c, r, xreadgroup, more)
        if not served:
            return False
        for argv_ in more:
            s.propagate(c.db.id, argv_)
        c.out.add(_xread_reply(c, served))
        return True

    def on_timeout():
        c.out.add(NULL_ARRAY)

    return s.blocking.block(c, list(dict.fromkeys(r.keys)), r.timeout, on_ready, on_timeout)


@command("xread", -4, flags="readonly blocking movablekeys", acl="read stream slow blocking",
         specs=["RO access: keyword STREAMS 1, range -1 1 2"], group=GROUP, since="5.0.0",
         complexity=("For each stream mentioned: O(N) with N being the number of elements being "
                     "returned, it means that XREAD-ing with a fixed COUNT is O(1). Note that when the "
                     "BLOCK option is used, XADD will pay O(M) time in order to serve the M clients "
                     "blocked on the stream getting new data."),
         summary="Reads entries after given IDs from one or more streams, optionally waiting for new ones.")
def xread(c, argv):
    return _xread_generic(c, argv, False)


@command("xreadgroup", -7, flags="write blocking movablekeys", acl="write stream slow blocking",
         specs=["RO access: keyword STREAMS 4, range -1 1 2"], group=GROUP, since="5.0.0",
         complexity=("For each stream mentioned: O(M) with M being the number of elements returned. If "
                     "M is constant (e.g. always asking for the first 10 elements with COUNT), you can "
                     "consider it O(1). On the other side when XREADGROUP blocks, XADD will pay the O(N) "
                     "time in order to serve the N clients blocked on the stream getting new data."),
         summary="Reads entries of streams for a consumer of a group, optionally waiting for new ones.")
def xreadgroup(c, argv):
    return _xread_generic(c, argv, True)


# ---------------------------------------------------------------- XGROUP

container("xgroup", -2, acl="slow", group=GROUP, since="5.0.0",
          summary="A container for consumer group commands.")

XGROUP_SUB = dict(group=GROUP, acl="write stream slow")


def _xgroup_prepare(c, argv):
    """The part xgroupCommand runs for every subcommand but HELP: options
    of CREATE/SETID, the key and the group. Returns (stream, group,
    mkstream, entries_read)."""
    sub = argv[1].lower()
    mkstream = False
    entries_read = INVALID_ENTRIES_READ
    i = 5
    while i < len(argv):
        o = argv[i].lower()
        if sub == b"create" and o == b"mkstream":
            mkstream = True
            i += 1
        elif sub in (b"create", b"setid") and o == b"entriesread" and i + 1 < len(argv):
            entries_read = _ll(argv[i + 1])
            if entries_read < 0 and entries_read != INVALID_ENTRIES_READ:
                raise ReplyError(ENTRIESREAD_RANGE)
            i += 2
        else:
            raise ReplyError(errors.subcommand_syntax(argv))
    st = write_stream(c, argv[2])
    g = None
    if not mkstream:
        if st is None:
            raise ReplyError(XGROUP_NO_KEY)
        g = st.group(argv[3])
        if g is None and sub in (b"setid", b"createconsumer", b"delconsumer"):
            raise _nogroup_for_key(argv[3], argv[2])
    return st, g, mkstream, entries_read


@command("xgroup|create", -5, flags="write denyoom", specs=["RW insert: index 2, range 0 1 0"],
         keys=(2, 2, 1), since="5.0.0", complexity="O(1)",
         summary="Creates a consumer group on a stream, optionally creating the stream.", **XGROUP_SUB)
def xgroup_create(c, argv):
    s, key = c.server, argv[2]
    st, _, _, entries_read = _xgroup_prepare(c, argv)
    if len(argv) > 8:
        raise ReplyError(errors.subcommand_syntax(argv))
    if argv[4] == b"$":
        last = st.last_id if st is not None else 0
    else:
        last = strict_id(argv[4])
    if st is None:
        st = StreamValue()
        s.add_new(c.db, key, st)
    if st.create_group(argv[3], last, entries_read) is None:
        raise ReplyError(BUSYGROUP)
    s.dirty += 1
    notify(c, "xgroup-create", key)
    return OK


@command("xgroup|setid", -5, flags="write", specs=["RW update: index 2, range 0 1 0"],
         keys=(2, 2, 1), since="5.0.0",
         summary="Sets a consumer group's last delivered ID (and entries-read counter).", **XGROUP_SUB)
def xgroup_setid(c, argv):
    key = argv[2]
    st, g, _, entries_read = _xgroup_prepare(c, argv)
    if len(argv) not in (5, 7):
        raise ReplyError(errors.subcommand_syntax(argv))
    if argv[4] == b"$":
        last = st.last_id
    else:
        last = parse_id(argv[4])[0]
    g.last_id = last
    g.entries_read = entries_read
    c.server.dirty += 1
    notify(c, "xgroup-setid", key)
    return OK


@command("xgroup|destroy", 4, flags="write", specs=["RW delete: index 2, range 0 1 0"],
         keys=(2, 2, 1), since="5.0.0",
         complexity="O(N) where N is the number of entries in the group's pending entries list (PEL).",
         summary="Deletes a consumer group; returns 1 if it existed.", **XGROUP_SUB)
def xgroup_destroy(c, argv):
    key = argv[2]
    st, g, _, _ = _xgroup_prepare(c, argv)
    if g is None:
        return 0
    del st.groups[argv[3]]
    c.server.dirty += 1
    notify(c, "xgroup-destroy", key)
    _signal_ready(c, key)
    return 1


@command("xgroup|createconsumer", 5, flags="write denyoom", specs=["RW insert: index 2, range 0 1 0"],
         keys=(2, 2, 1), since="6.2.0",
         summary="Creates a consumer in a consumer group; returns 1 if it is new.", **XGROUP_SUB)
def xgroup_createconsumer(c, argv):
    _, g, _, _ = _xgroup_prepare(c, argv)
    return 1 if _create_consumer(c, g, argv[4], argv[2]) is not None else 0


@command("xgroup|delconsumer", 5, flags="write", specs=["RW delete: index 2, range 0 1 0"],
         keys=(2, 2, 1), since="5.0.0",
         summary="Deletes a consumer from a consumer group; returns how many entries it had pending.",
         **XGROUP_SUB)
def xgroup_delconsumer(c, argv):
    _, g, _, _ = _xgroup_prepare(c, argv)
    cons = g.consumers.get(argv[4])
    if cons is None:
        return 0
    pending = len(cons.pel)
    g.delete_consumer(cons)
    c.server.dirty += 1
    notify(c, "xgroup-delconsumer", argv[2])
    return pending


@command("xgroup|help", 2, flags="loading stale", acl="stream slow", group=GROUP, since="5.0.0",
         summary="Describes the XGROUP subcommands.")
def xgroup_help(c, argv):
    return help_reply("XGROUP", [
        "CREATE <key> <groupname> <id|$> [option]",
        "    Create a new consumer group. Options are:",
        "    * MKSTREAM",
        "      Create the empty stream if it does not exist.",
        "    * ENTRIESREAD entries_read",
        "      Set the group's entries_read counter (internal use).",
        "CREATECONSUMER <key> <groupname> <consumer>",
        "    Create a new consumer in the specified group.",
        "DELCONSUMER <key> <groupname> <consumer>",
        "    Remove the specified consumer.",
        "DESTROY <key> <groupname>",
        "    Remove the specified group.",
        "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
        "    Set the current group ID and entries_read counter.",
    ])


# ---------------------------------------------------------------- XACK / XPENDING

@command("xack", -4, flags="write fast", acl="write stream fast", keys=(1, 1, 1),
         specs=["RW update: index 1, range 0 1 0"], group=GROUP, since="5.0.0",
         complexity="O(1) for each message ID processed.",
         summary="Acknowledges entries of a consumer group's pending list; returns how many were pending.")
def xack(c, argv):
    st = read_stream(c, argv[1])
    g = st.group(argv[2]) if st is not None else None
    if g is None:
        return 0
    ids = [strict_id(b) for b in argv[3:]]
    acked = 0
    for i in ids:
        if g.ack(i):
            acked += 1
            c.server.dirty += 1
    return acked


@command("xpending", -3, flags="readonly", acl="read stream slow", keys=(1, 1, 1),
         specs=["RO access: index 1, range 0 1 0"], tips="nondeterministic_output", group=GROUP,
         since="5.0.0",
         complexity=("O(N) with N being the number of elements returned, so asking for a small fixed "
                     "number of entries per call is O(1). O(M), where M is the total number of entries "
                     "scanned when used with the IDLE filter. When the command returns just the summary "
                     "and the list of consumers is small, it runs in O(1) time; otherwise, an additional "
                     "O(N) time for iterating every consumer."),
         summary="Describes the pending entries of a consumer group, as a summary or entry by entry.")
def xpending(c, argv):
    argc = len(argv)
    key, groupname = argv[1], argv[2]
    if argc != 3 and (argc < 6 or argc > 9):
        raise ReplyError(errors.SYNTAX)
    minidle = 0
    consumer_name = None
    if argc >= 6:
        si = 3
        if argv[3].lower() == b"idle":
            minidle = _ll(argv[4])
            if argc < 8:
                raise ReplyError(errors.SYNTAX)
            si += 2
        count = max(_ll(argv[si + 2]), 0)
        start = range_start(argv[si])
        end = range_end(argv[si + 1])
        if si + 3 < argc:
            consumer_name = argv[si + 3]
    st = read_stream(c, key)
    g = st.group(groupname) if st is not None else None
    if g is None:
        raise _nogroup(key, groupname)
    if argc == 3:
        if not g.pel:
            return [0, None, None, NULL_ARRAY]
        cons = [[x.name, format_int(len(x.pel))] for x in g.sorted_consumers() if x.pel]
        return [len(g.pel), id_bytes(g.pel.keys()[0]), id_bytes(g.pel.keys()[-1]), cons]
    if consumer_name is not None:
        cons = g.consumers.get(consumer_name)
        if cons is None:
            return []
        pel = cons.pel
    else:
        pel = g.pel
    now = c.server.now_ms
    out = []
    if count and start <= end:
        for i in pel.irange(start, end):
            nack = pel[i]
            if minidle and now - nack.delivery_time < minidle:
                continue
            out.append([id_bytes(i), nack.consumer.name, max(now - nack.delivery_time, 0),
                        nack.delivery_count])
            if len(out) == count:
                break
    return out


# ---------------------------------------------------------------- XCLAIM / XAUTOCLAIM

@command("xclaim", -6, flags="write fast", acl="write stream fast", keys=(1, 1, 1),
         specs=["RW update: index 1, range 0 1 0"], tips="nondeterministic_output", group=GROUP,
         since="5.0.0", complexity="O(log N) with N being the number of messages in the PEL of the consumer group.",
         summary="Gives pending entries of a consumer group to another consumer.")
def xclaim(c, argv):
    s, key, groupname = c.server, argv[1], argv[2]
    st = read_stream(c, key)
    g = st.group(groupname) if st is not None else None
    if g is None:
        raise _nogroup(key, groupname)
    minidle = max(_ll(argv[4], "ERR Invalid min-idle-time argument for XCLAIM"), 0)
    ids = []
    j = 5
    while j < len(argv):
        try:
            ids.append((strict_id(argv[j]), argv[j]))
        except ReplyError:
            break
        j += 1
    now = s.now_ms
    retrycount = -1
    deliverytime = -1
    force = justid = False
    last_id = 0
    rewrites = []
    while j < len(argv):
        more = len(argv) - 1 - j
        opt = argv[j].lower()
        if opt == b"force":
            force = True
        elif opt == b"justid":
            justid = True
        elif opt == b"idle" and more:
            j += 1
            deliverytime = now - _ll(argv[j], "ERR Invalid IDLE option argument for XCLAIM")
        elif opt == b"time" and more:
            j += 1
            deliverytime = _ll(argv[j], "ERR Invalid TIME option argument for XCLAIM")
        elif opt == b"retrycount" and more:
            j += 1
            retrycount = _ll(argv[j], "ERR Invalid RETRYCOUNT option argument for XCLAIM")
        elif opt == b"lastid" and more:
            j += 1
            last_id = strict_id(argv[j])
        else:
            raise ReplyError("ERR Unrecognized XCLAIM option '%s'" % argv[j].decode("latin-1"))
        j += 1
    propagate_last_id = False
    if last_id > g.last_id:
        g.last_id = last_id
        propagate_last_id = True
    if deliverytime != -1:
        if deliverytime < 0 or deliverytime > now:
            deliverytime = now
    else:
        deliverytime = now
    c.rewrite = rewrites
    cons = g.consumers.get(argv[3])
    if cons is None:
        cons = _create_consumer(c, g, argv[3], key)
    cons.seen_time = now
    out = []
    for i, arg in ids:
        nack = g.pel.get(i)
        flat = st.get(i)
        if flat is None:
            if nack is not None:
                rewrites.append(_xclaim_argv(key, groupname, g, arg, nack))
                propagate_last_id = False
                s.dirty += 1
                g.ack(i)
            continue
        if force and nack is None:
            nack = Nack(None, now)
            g.pel[i] = nack
        if nack is None:
            continue
        if nack.consumer is not None and minidle and now - nack.delivery_time < minidle:
            continue
        if nack.consumer is not cons and nack.consumer is not None:
            del nack.consumer.pel[i]
        nack.delivery_time = deliverytime
        if retrycount >= 0:
            nack.delivery_count = retrycount
        elif not justid:
            nack.delivery_count += 1
        if nack.consumer is not cons:
            cons.pel[i] = nack
            nack.consumer = cons
        out.append(id_bytes(i) if justid else entry_reply(i, flat))
        cons.active_time = now
        rewrites.append(_xclaim_argv(key, groupname, g, arg, nack))
        propagate_last_id = False
        s.dirty += 1
    if propagate_last_id:
        rewrites.append(_setid_argv(key, groupname, g))
        s.dirty += 1
    return out


@command("xautoclaim", -6, flags="write fast", acl="write stream fast", keys=(1, 1, 1),
         specs=["RW delete: index 1, range 0 1 0"], tips="nondeterministic_output", group=GROUP,
         since="6.2.0", complexity="O(1) if COUNT is small.",
         summary="Gives the pending entries idle for long enough to another consumer, scanning from an ID.")
def xautoclaim(c, argv):
    s, key, groupname = c.server, argv[1], argv[2]
    minidle = max(_ll(argv[4], "ERR Invalid min-idle-time argument for XAUTOCLAIM"), 0)
    start = range_start(argv[5])
    count = 100
    justid = False
    j = 6
    while j < len(argv):
        more = len(argv) - 1 - j
        opt = argv[j].lower()
        if opt == b"count" and more:
            n = parse_int(argv[j + 1])
            if n is None or n < 1 or n > AUTOCLAIM_MAX_COUNT:
                raise ReplyError(COUNT_POSITIVE)
            count = n
            j += 1
        elif opt == b"justid":
            justid = True
        else:
            raise ReplyError(errors.SYNTAX)
        j += 1
    st = read_stream(c, key)
    g = st.group(groupname) if st is not None else None
    if g is None:
        raise _nogroup(key, groupname)
    if count * 16 >= AUTOCLAIM_ALLOC_LIMIT:
        raise ReplyError(AUTOCLAIM_NO_MEMORY)
    rewrites = []
    c.rewrite = rewrites
    cons = g.consumers.get(argv[3])
    if cons is None:
        cons = _create_consumer(c, g, argv[3], key)
    now = s.now_ms
    cons.seen_time = now
    attempts = count * 10
    claimed = []
    deleted = []
    pel = g.pel
    pos = pel.bisect_left(start)
    keys = pel.keys()
    while attempts and count and pos < len(keys):
        attempts -= 1
        i = keys[pos]
        nack = pel[i]
        flat = st.get(i)
        if flat is None:
            rewrites.append(_xclaim_argv(key, groupname, g, id_bytes(i), nack))
            s.dirty += 1
            g.ack(i)
            deleted.append(id_bytes(i))
            count -= 1
            continue
        pos += 1
        if minidle and now - nack.delivery_time < minidle:
            continue
        if nack.consumer is not cons:
            del nack.consumer.pel[i]
        nack.delivery_time = now
        if not justid:
            nack.delivery_count += 1
        if nack.consumer is not cons:
            cons.pel[i] = nack
            nack.consumer = cons
        claimed.append(id_bytes(i) if justid else entry_reply(i, flat))
        count -= 1
        cons.active_time = now
        rewrites.append(_xclaim_argv(key, groupname, g, id_bytes(i), nack))
        s.dirty += 1
    cursor = id_bytes(keys[pos]) if pos < len(keys) else b"0-0"
    return [cursor, claimed, deleted]


# ---------------------------------------------------------------- XINFO

container("xinfo", -2, acl="slow", group=GROUP, since="5.0.0",
          summary="A container for stream introspection commands.")


def _info_stream_lookup(c, argv):
    st = read_stream(c, argv[2])
    if st is None:
        raise ReplyError(errors.NO_SUCH_KEY)
    return st


@command("xinfo|stream", -3, flags="readonly", acl="read stream slow", keys=(2, 2, 1),
         specs=["RO access: index 2, range 0 1 0"], group=GROUP, since="5.0.0",
         summary="Describes a stream: its counters, first and last entries, or everything with FULL.")
def xinfo_stream(c, argv):
    st = _info_stream_lookup(c, argv)
    opts = argv[3:]
    full = True
    count = 10
    if not opts:
        full = False
    else:
        if len(opts) not in (1, 3) or opts[0].lower() != b"full":
            raise ReplyError(errors.subcommand_syntax(argv))
        if len(opts) == 3:
            if opts[1].lower() != b"count":
                raise ReplyError(errors.subcommand_syntax(argv))
            count = _ll(opts[2])
            if count < 0:
                count = 10
    out = {
        b"length": st.length,
        b"radix-tree-keys": st.radix_tree_keys(),
        b"radix-tree-nodes": st.radix_tree_nodes(),
        b"last-generated-id": id_bytes(st.last_id),
        b"max-deleted-entry-id": id_bytes(st.max_deleted),
        b"entries-added": st.entries_added,
        b"recorded-first-entry-id": id_bytes(st.first_id),
    }
    if not full:
        out[b"groups"] = len(st.groups or ())
        first = st.range(0, MAX_ID, 1)
        last = st.rev_range(0, MAX_ID, 1)
        out[b"first-entry"] = entry_reply(*first[0]) if first else None
        out[b"last-entry"] = entry_reply(*last[0]) if last else None
        return out
    out[b"entries"] = entries_reply(st.range(0, MAX_ID, count))
    groups = []
    for name, g in st.sorted_groups():
        pel = [[id_bytes(i), n.consumer.name, n.delivery_time, n.delivery_count]
               for i, n in (g.pel.items()[:count] if count else g.pel.items())]
        consumers = []
        for cons in g.sorted_consumers():
            items = cons.pel.items()[:count] if count else cons.pel.items()
            consumers.append({
                b"name": cons.name,
                b"seen-time": cons.seen_time,
                b"active-time": cons.active_time,
                b"pel-count": len(cons.pel),
                b"pending": [[id_bytes(i), n.delivery_time, n.delivery_count] for i, n in items],
            })
        groups.append({
            b"name": name,
            b"last-delivered-id": id_bytes(g.last_id),
            b"entries-read": g.entries_read if g.entries_read != INVALID_ENTRIES_READ else None,
            b"lag": st.group_lag(g),
            b"pel-count": len(g.pel),
            b"pending": pel,
            b"consumers": consumers,
        })
    out[b"groups"] = groups
    return out


@command("xinfo|groups", 3, flags="readonly", acl="read stream slow", keys=(2, 2, 1),
         specs=["RO access: index 2, range 0 1 0"], group=GROUP, since="5.0.0",
         summary="Describes the consumer groups of a stream.")
def xinfo_groups(c, argv):
    st = _info_stream_lookup(c, argv)
    out = []
    for name, g in st.sorted_groups():
        out.append({
            b"name": name,
            b"consumers": len(g.consumers),
            b"pending": len(g.pel),
            b"last-delivered-id": id_bytes(g.last_id),
            b"entries-read": g.entries_read if g.entries_read != INVALID_ENTRIES_READ else None,
            b"lag": st.group_lag(g),
        })
    return out


@command("xinfo|consumers", 4, flags="readonly", acl="read stream slow", keys=(2, 2, 1),
         specs=["RO access: index 2, range 0 1 0"], tips="nondeterministic_output", group=GROUP,
         since="5.0.0", summary="Describes the consumers of a consumer group.")
def xinfo_consumers(c, argv):
    st = _info_stream_lookup(c, argv)
    g = st.group(argv[3])
    if g is None:
        raise _nogroup_for_key(argv[3], argv[2])
    now = c.server.now_ms
    out = []
    for cons in g.sorted_consumers():
        inactive = now - cons.active_time if cons.active_time != -1 else -1
        out.append({
            b"name": cons.name,
            b"pending": len(cons.pel),
            b"idle": max(now - cons.seen_time, 0),
            b"inactive": inactive,
        })
    return out


@command("xinfo|help", 2, flags="loading stale", acl="stream slow", group=GROUP, since="5.0.0",
         summary="Describes the XINFO subcommands.")
def xinfo_help(c, argv):
    return help_reply("XINFO", [
        "CONSUMERS <key> <groupname>",
        "    Show consumers of <groupname>.",
        "GROUPS <key>",
        "    Show the stream consumer groups.",
        "STREAM <key> [FULL [COUNT <count>]",
        "    Show information about the stream.",
    ])


# COMMAND lists subcommands in Valkey's (alphabetical) order
for _name in ("xgroup", "xinfo"):
    _subs = REGISTRY[_name].subcommands
    REGISTRY[_name].subcommands = {k: _subs[k] for k in sorted(_subs)}
