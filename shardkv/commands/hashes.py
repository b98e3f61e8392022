"""Hashes: HSET and the other commands over hash values (shardkv.types.hash),
including per-field expiry (HEXPIRE and friends, HSETEX, HGETEX, HGETDEL) as
Valkey 9.1 has it, and the active expiry of hash fields.

Field expiry follows Valkey 9.1 exactly: a field past its time is invisible
to every command that looks at fields but stays stored, and counted by HLEN,
until the active cycle reclaims it; only then is the key deleted when no
field is left. The cycle (active_expire_fields) walks the keys known to hold
fields with a TTL, removes what is due, and propagates HDEL (and DEL when
the hash is gone) like Valkey. It runs from a timer of its own, armed while
such keys exist, and honours DEBUG SET-ACTIVE-EXPIRE, replicas and CLIENT
PAUSE as the key expiry cycle does.

Writes that replicas could not redo identically are rewritten before
propagation: relative times become HPEXPIREAT/PXAT, HINCRBYFLOAT becomes
HSET (or HSETEX PXAT when the field has a TTL), fields deleted because their
new time is already over become HDEL."""

import time
from collections import OrderedDict

from shardkv import errors
from shardkv.commands.common import (
    LLONG_MAX, OK, format_int, int_arg, notify, parse_int,
)
from shardkv.commands.keys import collection_scan_options, expire_flags, parse_cursor
from shardkv.commands.table import command
from shardkv.errors import ReplyError
from shardkv.glob import glob_match
from shardkv.native import _native
from shardkv.types.hash import Hash

HASH = "hash"

NUMFIELDS = "ERR numfields should be greater than 0 and match the provided number of fields"
HASH_NOT_INTEGER = "ERR hash value is not an integer"
HASH_NOT_FLOAT = "ERR hash value is not a float"
NAN_OR_INFINITY = "ERR value is NaN or Infinity"
OUT_OF_RANGE = "ERR value is out of range"
COUNT_OUT_OF_RANGE = ("ERR value is out of range, value must between -9223372036854775807 "
                      "and 9223372036854775807")
RANDFIELD_TOO_MANY = "ERR HRANDFIELD count is too large for one reply"

LONG_MAX = LLONG_MAX
# A negative HRANDFIELD count repeats fields: Valkey streams such a reply
# until the client's output limit stops it; we build replies whole, so we
# refuse counts no reply could hold.
RANDFIELD_MAX_REPLY = 1 << 25
# The active cycle (Valkey's numbers): keys visited per round, the share of
# them with fields due (%) below which a pass stops, fields per HDEL batch.
ACTIVE_EXPIRE_KEYS_PER_LOOP = 20
ACTIVE_EXPIRE_STALE_PERCENT = 10
ACTIVE_EXPIRE_FIELDS_PER_KEY = 80

RW_UPDATE = ["RW update: index 1, range 0 1 0"]
RW_ACCESS_UPDATE = ["RW access update: index 1, range 0 1 0"]
RO_ACCESS = ["RO access: index 1, range 0 1 0"]
RO = ["RO: index 1, range 0 1 0"]
PER_FIELD = "O(N) where N is the number of specified fields."
WHOLE_HASH = "O(N) where N is the size of the hash."


# ---------------------------------------------------------------- lookups

def _limits(c):
    cfg = c.server.config
    return cfg["hash-max-listpack-entries"], cfg["hash-max-listpack-value"]


def _checked(c, key, v):
    if v is None:
        return None
    if type(v) is not Hash:
        raise ReplyError(errors.WRONGTYPE)
    if v.ttl:
        track_volatile(c.server, c.db, key, v)
    return v


def _read(c, key):
    """The hash at key for a reading command (None if absent)."""
    return _checked(c, key, c.server.lookup_read(c.db, key))


def _write(c, key):
    """The hash at key for a writing command (None if absent)."""
    return _checked(c, key, c.server.lookup_write(c.db, key))


def _create(c, key):
    h = Hash()
    c.server.add_new(c.db, key, h)
    return h


def _delete_if_empty(c, key, h):
    """A hash left without fields is deleted, with a "del" event."""
    if h.d:
        return False
    c.server.delete(c.db, key)
    notify(c, "del", key)
    return True


def _count_expired(s, n):
    _state(s).expired_fields += n


# ---------------------------------------------------------------- active expiry

class _State:
    """Per-server hash bookkeeping: keys holding fields with a TTL (by
    keyspace table, so that SWAPDB carries them along), the expired_fields
    statistic and the active expiry timer."""

    __slots__ = ("volatile", "expired_fields", "timer")

    def __init__(self):
        self.volatile = {}          # keyspace Table -> OrderedDict key -> Hash (visit order)
        self.expired_fields = 0
        self.timer = None


def _state(s):
    st = getattr(s, "hash_state", None)
    if st is None:
        st = _State()
        s.hash_state = st
    return st


def track_volatile(s, db, key, h):
    """Makes the active cycle visit key (which holds h, a hash with field
    TTLs). Called on every access to such a hash, so that keys renamed or
    copied are found again."""
    st = _state(s)
    keys = st.volatile.get(db.data)
    if keys is None:
        keys = st.volatile[db.data] = OrderedDict()
    keys[key] = h
    if st.timer is None:
        _arm_timer(s, st)


def keys_with_volatile_items(s, db):
    """How many keys of db hold fields with a TTL (INFO keyspace)."""
    keys = _state(s).volatile.get(db.data)
    if not keys:
        return 0
    return sum(1 for key, h in keys.items() if h.ttl and s.peek(db, key) is h)


def expired_fields(s):
    """Fields deleted by expiry so far (INFO stats expired_fields)."""
    return _state(s).expired_fields


def reset_stats(s):
    """CONFIG RESETSTAT: zeroes expired_fields."""
    _state(s).expired_fields = 0


def _arm_timer(s, st):
    hz = max(s.config["hz"], 1)
    st.timer = s.loop.call_later(1000 / hz, lambda: _timer_fired(s))


def _timer_fired(s):
    st = _state(s)
    st.timer = None
    if s.active_expire_enabled and not s.is_replica and not s.expire_deletes_paused:
        s.tick()
        hz = max(s.config["hz"], 1)
        active_expire_fields(s, int(1_000_000 / hz * 0.25))
    if any(st.volatile.values()):
        _arm_timer(s, st)


def active_expire_fields(s, budget_us=None):
    """One active expiry pass over hash fields: visits the tracked keys of
    every database in turn (round robin across passes), reclaims fields past
    their time, propagates HDEL (and DEL for a hash left empty). A database
    is left once a round of keys finds few with fields due; the pass stops
    when the time budget is spent. Returns the number of fields reclaimed."""
    st = _state(s)
    now = s.now_ms
    start = time.monotonic()
    limit = None if budget_us is None else budget_us / 1_000_000

    def out_of_time():
        return limit is not None and time.monotonic() - start > limit

    hook = s.keyspace_event_hook
    total = 0
    for table in list(st.volatile):
        keys = st.volatile[table]
        db = next((d for d in s.dbs if d.data is table), None)
        if db is None or not keys:
            del st.volatile[table]
            continue
        visited = with_expired = 0
        for _ in range(len(keys)):
            if visited == ACTIVE_EXPIRE_KEYS_PER_LOOP:
                # like Valkey: go on only while many keys had fields due
                if with_expired * 100 <= visited * ACTIVE_EXPIRE_STALE_PERCENT:
                    break
                visited = with_expired = 0
            visited += 1
            key, h = keys.popitem(last=False)
            if not h.ttl or s.peek(db, key) is not h:
                continue
            before = total
            while True:
                # one HDEL per batch, like Valkey's bulk limit
                fields = h.pop_expired(now, ACTIVE_EXPIRE_FIELDS_PER_KEY)
                if not fields:
                    break
                total += len(fields)
                st.expired_fields += len(fields)
                s.propagate(db.id, [b"HDEL", key] + fields)
                s.touch(db, key)
                if hook is not None:
                    hook("hexpired", key, db.id)
                if not h.d:
                    s.delete(db, key)
                    s.propagate(db.id, [b"DEL", key])
                    if hook is not None:
                        hook("del", key, db.id)
                s.flush_propagation()
                if len(fields) < ACTIVE_EXPIRE_FIELDS_PER_KEY or out_of_time():
                    break
            if total != before:
                with_expired += 1
            if h.ttl and h.d:
                keys[key] = h      # back at the end: the next pass starts elsewhere
            if out_of_time():
                return total
        if not keys:
            st.volatile.pop(table, None)
    return total


# ---------------------------------------------------------------- HSET and friends

def _hset(c, argv):
    if len(argv) % 2:
        raise ReplyError(errors.wrong_arity(c.current_cmd.name))
    s, key = c.server, argv[1]
    h = _write(c, key)
    if h is None:
        h = _create(c, key)
    max_entries, max_value = _limits(c)
    h.try_conversion(argv[2:], max_entries, max_value)
    now = s.now_ms
    created = replaced_expired = 0
    for i in range(2, len(argv), 2):
        new, expired = h.set(argv[i], argv[i + 1], now, max_entries, max_value)
        created += new
        replaced_expired += expired
    s.touch(c.db, key)
    if replaced_expired:
        _count_expired(s, replaced_expired)
        notify(c, "hexpired", key)
    notify(c, "hset", key)
    s.dirty += (len(argv) - 2) // 2
    return created


@command("hset", -4, flags="write denyoom fast", acl="write hash fast", keys=(1, 1, 1),
         specs=RW_UPDATE, group=HASH, since="2.0.0",
         complexity="O(1) for each field/value pair added, so O(N) to add N field/value pairs when the command is called with multiple field/value pairs.",
         summary="Sets fields of a hash; returns how many were new.")
def hset(c, argv):
    return _hset(c, argv)


@command("hmset", -4, flags="write denyoom fast", acl="write hash fast", keys=(1, 1, 1),
         specs=RW_UPDATE, group=HASH, since="2.0.0",
         complexity="O(N) where N is the number of fields being set.",
         summary="Sets fields of a hash and answers OK (older form of HSET).")
def hmset(c, argv):
    _hset(c, argv)
    return OK


@command("hsetnx", 4, flags="write denyoom fast", acl="write hash fast", keys=(1, 1, 1),
         specs=["RW insert: index 1, range 0 1 0"], group=HASH, since="2.0.0",
         summary="Sets a field of a hash only if the field does not exist.")
def hsetnx(c, argv):
    s, key, field, value = c.server, argv[1], argv[2], argv[3]
    now = s.now_ms
    h = _write(c, key)
    if h is None:
        h = _create(c, key)
    elif h.alive(field, now):
        return 0
    max_entries, max_value = _limits(c)
    had_volatile = h.has_volatile()
    h.try_conversion(argv[2:4], max_entries, max_value)
    _, expired = h.set(field, value, now, max_entries, max_value)
    s.touch(c.db, key)
    if expired:
        _count_expired(s, 1)
        notify(c, "hexpired", key)
    notify(c, "hset", key)
    s.dirty += 1
    if had_volatile:
        # a replica might still see the field (not yet past its time there)
        c.rewrite = [[b"HSET", key, field, value]]
    return 1


@command("hget", 3, flags="readonly fast", acl="read hash fast", keys=(1, 1, 1),
         specs=RO_ACCESS, group=HASH, since="2.0.0",
         summary="Returns the value of a field of a hash.")
def hget(c, argv):
    h = _read(c, argv[1])
    return None if h is None else h.get(argv[2], c.server.now_ms)


@command("hmget", -3, flags="readonly fast", acl="read hash fast", keys=(1, 1, 1),
         specs=RO_ACCESS, group=HASH, since="2.0.0",
         complexity="O(N) where N is the number of fields being requested.",
         summary="Returns the values of several fields of a hash.")
def hmget(c, argv):
    h = _read(c, argv[1])
    if h is None:
        return [None] * (len(argv) - 2)
    now = c.server.now_ms
    return [h.get(f, now) for f in argv[2:]]


@command("hdel", -3, flags="write fast", acl="write hash fast", keys=(1, 1, 1),
         specs=["RW delete: index 1, range 0 1 0"], group=HASH, since="2.0.0",
         complexity="O(N) where N is the number of fields to be removed.",
         summary="Deletes fields of a hash; returns how many existed.")
def hdel(c, argv):
    s, key = c.server, argv[1]
    h = _write(c, key)
    if h is None:
        return 0
    now = s.now_ms
    deleted = 0
    removed = False
    for f in argv[2:]:
        if h.delete(f, now):
            deleted += 1
            if not h.d:
                s.delete(c.db, key)
                removed = True
                break
    if deleted:
        s.touch(c.db, key)
        notify(c, "hdel", key)
        if removed:
            notify(c, "del", key)
        s.dirty += deleted
    return deleted


@command("hlen", 2, flags="readonly fast", acl="read hash fast", keys=(1, 1, 1),
         specs=RO, group=HASH, since="2.0.0",
         summary="Returns the number of fields of a hash.")
def hlen(c, argv):
    h = _read(c, argv[1])
    return 0 if h is None else len(h)


@command("hstrlen", 3, flags="readonly fast", acl="read hash fast", keys=(1, 1, 1),
         specs=RO, group=HASH, since="3.2.0",
         summary="Returns the length in bytes of the value of a field of a hash.")
def hstrlen(c, argv):
    h = _read(c, argv[1])
    v = None if h is None else h.get(argv[2], c.server.now_ms)
    return 0 if v is None else len(v)


@command("hexists", 3, flags="readonly fast", acl="read hash fast", keys=(1, 1, 1),
         specs=RO, group=HASH, since="2.0.0",
         summary="Tells whether a field exists in a hash.")
def hexists(c, argv):
    h = _read(c, argv[1])
    return 1 if h is not None and h.alive(argv[2], c.server.now_ms) else 0


@command("hkeys", 2, flags="readonly", acl="read hash slow", keys=(1, 1, 1),
         specs=RO_ACCESS, tips="nondeterministic_output_order", group=HASH, since="2.0.0",
         complexity=WHOLE_HASH, summary="Returns all field names of a hash.")
def hkeys(c, argv):
    h = _read(c, argv[1])
    return [] if h is None else h.fields(c.server.now_ms)


@command("hvals", 2, flags="readonly", acl="read hash slow", keys=(1, 1, 1),
         specs=RO_ACCESS, tips="nondeterministic_output_order", group=HASH, since="2.0.0",
         complexity=WHOLE_HASH, summary="Returns all values of a hash.")
def hvals(c, argv):
    h = _read(c, argv[1])
    return [] if h is None else [v for _, v in h.items(c.server.now_ms)]


@command("hgetall", 2, flags="readonly", acl="read hash slow", keys=(1, 1, 1),
         specs=RO_ACCESS, tips="nondeterministic_output_order", group=HASH, since="2.0.0",
         complexity=WHOLE_HASH, summary="Returns all fields and values of a hash.")
def hgetall(c, argv):
    h = _read(c, argv[1])
    return {} if h is None else dict(h.items(c.server.now_ms))


def _set_counter(c, key, h, field, value, expiry):
    """Stores the result of HINCRBY/HINCRBYFLOAT, keeping the field's TTL;
    returns the propagated form (HSETEX PXAT keeps the TTL on replicas)."""
    s = c.server
    max_entries, max_value = _limits(c)
    _, expired = h.set(field, value, s.now_ms, max_entries, max_value, expiry=expiry)
    s.touch(c.db, key)
    if expired:
        _count_expired(s, 1)
        notify(c, "hexpired", key)
    s.dirty += 1
    if expiry is None:
        return [b"HSET", key, field, value]
    return [b"HSETEX", key, b"PXAT", format_int(expiry), b"FIELDS", b"1", field, value]


def _counter(h, field, now):
    """(current value or None, its expiry time or None) of a field."""
    if h is None:
        return None, None
    v = h.get(field, now)
    if v is None or not h.ttl:
        return v, None
    return v, h.ttl.get(field)


@command("hincrby", 4, flags="write denyoom fast", acl="write hash fast", keys=(1, 1, 1),
         specs=RW_ACCESS_UPDATE, group=HASH, since="2.0.0",
         summary="Adds an integer to the integer value of a field of a hash.")
def hincrby(c, argv):
    s, key, field = c.server, argv[1], argv[2]
    incr = int_arg(argv[3])
    h = _write(c, key)
    cur, expiry = _counter(h, field, s.now_ms)
    if cur is None:
        value = 0
    else:
        value = parse_int(cur)
        if value is None:
            raise ReplyError(HASH_NOT_INTEGER)
    value += incr
    if value > LLONG_MAX or value < -LLONG_MAX - 1:
        raise ReplyError(errors.OVERFLOW)
    if h is None:
        h = _create(c, key)
    had_volatile = h.has_volatile()
    new = format_int(value)
    rewrite = _set_counter(c, key, h, field, new, expiry)
    notify(c, "hincrby", key)
    if had_volatile:
        # the field may be past its time on a replica, or not yet
        c.rewrite = [rewrite]
    return value


@command("hincrbyfloat", 4, flags="write denyoom fast", acl="write hash fast", keys=(1, 1, 1),
         specs=RW_ACCESS_UPDATE, group=HASH, since="2.6.0",
         summary="Adds a floating point number to the value of a field of a hash.")
def hincrbyfloat(c, argv):
    s, key, field, incr = c.server, argv[1], argv[2], argv[3]
    try:
        _native.incr_by_float(None, incr)
    except ReplyError as e:
        if e.message == errors.INCR_NAN_OR_INF:
            raise ReplyError(NAN_OR_INFINITY) from None
        raise
    h = _write(c, key)
    cur, expiry = _counter(h, field, s.now_ms)
    try:
        new = _native.incr_by_float(cur, incr)
    except ReplyError as e:
        # the increment was checked above: the stored value is the bad one
        if e.message == errors.NOT_FLOAT:
            raise ReplyError(HASH_NOT_FLOAT) from None
        raise
    if h is None:
        h = _create(c, key)
    # replicas get the result, never the float arithmetic
    c.rewrite = [_set_counter(c, key, h, field, new, expiry)]
    notify(c, "hincrbyfloat", key)
    return new


# ---------------------------------------------------------------- HRANDFIELD

@command("hrandfield", -2, flags="readonly", acl="read hash slow", keys=(1, 1, 1),
         specs=RO_ACCESS, tips="nondeterministic_output", group=HASH, since="6.2.0",
         complexity="O(N) where N is the number of fields returned",
         summary="Returns random fields of a hash, optionally with their values.")
def hrandfield(c, argv):
    now = c.server.now_ms
    if len(argv) == 2:
        h = _read(c, argv[1])
        return None if h is None else h.random_field(now)
    count = parse_int(argv[2])
    if count is None:
        raise ReplyError(errors.NOT_INTEGER)
    if count < -LONG_MAX:
        raise ReplyError(COUNT_OUT_OF_RANGE)
    if len(argv) > 4 or (len(argv) == 4 and argv[3].lower() != b"withvalues"):
        raise ReplyError(errors.SYNTAX)
    withvalues = len(argv) == 4
    if withvalues and (count < -(LONG_MAX // 2) or count > LONG_MAX // 2):
        raise ReplyError(OUT_OF_RANGE)
    h = _read(c, argv[1])
    if h is None or count == 0:
        return []
    if count > 0:
        chosen = h.random_distinct(count, now)
    else:
        if -count * (2 if withvalues else 1) > RANDFIELD_MAX_REPLY:
            raise ReplyError(RANDFIELD_TOO_MANY)
        chosen = h.random_repeated(-count, now)
    if not withvalues:
        return chosen
    d = h.d
    if c.proto == 3:
        return [[f, d[f]] for f in chosen]
    out = []
    for f in chosen:
        out.append(f)
        out.append(d[f])
    return out


# ---------------------------------------------------------------- HSCAN

@command("hscan", -3, flags="readonly", acl="read hash slow", keys=(1, 1, 1),
         specs=RO_ACCESS, tips="nondeterministic_output", group=HASH, since="2.8.0",
         complexity="O(1) for every call. O(N) for a complete iteration, including enough command calls for the cursor to return back to 0. N is the number of elements inside the collection.",
         summary="Iterates over the fields and values of a hash with a cursor.")
def hscan(c, argv):
    cursor = parse_cursor(argv[2])
    h = _read(c, argv[1])
    if h is None:
        return [b"0", []]
    pattern, count, novalues = collection_scan_options(argv, b"novalues")
    now = c.server.now_ms
    if not h.ht:
        # small hashes come back whole, whatever the cursor (as in Redis)
        nxt, fields = 0, h.fields(now)
    else:
        nxt, fields = h.scan(cursor, count, now)
    out = []
    for f in fields:
        if pattern is not None and not glob_match(pattern, f):
            continue
        out.append(f)
        if not novalues:
            out.append(h.d[f])
    return [format_int(nxt), out]


# ---------------------------------------------------------------- field expiry

def _find_fields(argv, start):
    """Index of the first FIELDS keyword at or after start that still has an
    argument after it, or None."""
    for i in range(start, len(argv) - 1):
        if argv[i].lower() == b"fields":
            return i
    return None


def _expire_time(c, raw, seconds, relative, name):
    """Valkey's convertExpireArgumentToUnixTime: a non-negative integer in
    seconds or ms, relative to now or absolute; absolute ms out."""
    when = int_arg(raw)
    if when < 0:
        raise ReplyError(errors.invalid_expire(name))
    if seconds:
        if when > LLONG_MAX // 1000:
            raise ReplyError(errors.invalid_expire(name))
        when *= 1000
    base = c.server.now_ms if relative else 0
    if when > LLONG_MAX - base:
        raise ReplyError(errors.invalid_expire(name))
    return when + base


def _past(s, when):
    """Valkey's checkAlreadyExpired: a time already over deletes at once,
    except on a replica (which waits for its primary's HDEL)."""
    return when <= s.now_ms and not s.is_replica


def _hexpire(c, argv, seconds, relative):
    s, key = c.server, argv[1]
    name = c.current_cmd.name
    fi = _find_fields(argv, 3)
    numfields = 0
    if fi is not None:
        nx, xx, gt, lt = expire_flags(argv[3:fi])
        numfields = int_arg(argv[fi + 1])
    if numfields == 0 or numfields != len(argv) - fi - 2:
        raise ReplyError(NUMFIELDS)
    fields = argv[fi + 2:]
    when = _expire_time(c, argv[2], seconds, relative, name)
    h = _write(c, key)
    if h is None:
        return [-2] * numfields
    now = s.now_ms
    past = _past(s, when)
    results = []
    deleted = []
    updated = 0
    for f in fields:
        r = h.set_expire(f, when, now, past, nx, xx, gt, lt)
        results.append(r)
        if r == 1:
            updated += 1
        elif r == 2:
            deleted.append(f)
    if deleted:
        _count_expired(s, len(deleted))
        c.rewrite = [[b"HDEL", key] + deleted]
        notify(c, "hexpired", key)
    elif updated:
        if name != "hpexpireat":
            c.rewrite = [[b"HPEXPIREAT", key, format_int(when)] + argv[3:]]
        notify(c, "hexpire", key)
        track_volatile(s, c.db, key, h)
    if deleted or updated:
        s.dirty += len(deleted) + updated
        s.touch(c.db, key)
        _delete_if_empty(c, key, h)
    return results


HEXPIRE_DECL = dict(flags="write fast", acl="write hash fast", keys=(1, 1, 1), specs=RW_UPDATE,
                    group=HASH, since="9.0.0", complexity=PER_FIELD)


@command("hexpire", -6, summary="Sets the time to live of fields of a hash, in seconds.",
         **HEXPIRE_DECL)
def hexpire(c, argv):
    return _hexpire(c, argv, True, True)


@command("hpexpire", -6, summary="Sets the time to live of fields of a hash, in milliseconds.",
         **HEXPIRE_DECL)
def hpexpire(c, argv):
    return _hexpire(c, argv, False, True)


@command("hexpireat", -6, summary="Sets the expiry of fields of a hash as a Unix time in seconds.",
         **HEXPIRE_DECL)
def hexpireat(c, argv):
    return _hexpire(c, argv, True, False)


@command("hpexpireat", -6,
         summary="Sets the expiry of fields of a hash as a Unix time in milliseconds.",
         **HEXPIRE_DECL)
def hpexpireat(c, argv):
    return _hexpire(c, argv, False, False)


def _fields_clause(argv, mismatch):
    """The FIELDS numfields field... clause at argv[2] of HTTL, HPERSIST,
    HGETDEL and friends: the field list, or the command's errors."""
    if argv[2].lower() != b"fields":
        raise ReplyError(errors.SYNTAX)
    n = int_arg(argv[3])
    if n == 0 or n != len(argv) - 4:
        raise ReplyError(mismatch)
    return argv[4:]


def _httl(c, argv, ms, absolute):
    fields = _fields_clause(argv, errors.SYNTAX)
    h = _read(c, argv[1])
    now = c.server.now_ms
    out = []
    for f in fields:
        when = None if h is None else h.expiry_of(f, now)
        if when is None:
            out.append(-2)
        elif when == -1:
            out.append(-1)
        else:
            t = max(when if absolute else when - now, 0)
            out.append(t if ms else (t + 500) // 1000)
    return out


HTTL_DECL = dict(flags="readonly fast", acl="read hash fast", keys=(1, 1, 1), specs=RO_ACCESS,
                 group=HASH, since="9.0.0", complexity=PER_FIELD)


@command("httl", -5, summary="Returns the time to live of fields of a hash, in seconds.",
         **HTTL_DECL)
def httl(c, argv):
    return _httl(c, argv, False, False)


@command("hpttl", -5, summary="Returns the time to live of fields of a hash, in milliseconds.",
         **HTTL_DECL)
def hpttl(c, argv):
    return _httl(c, argv, True, False)


@command("hexpiretime", -5,
         summary="Returns the expiry of fields of a hash as a Unix time in seconds.", **HTTL_DECL)
def hexpiretime(c, argv):
    return _httl(c, argv, False, True)


@command("hpexpiretime", -5,
         summary="Returns the expiry of fields of a hash as a Unix time in milliseconds.",
         **HTTL_DECL)
def hpexpiretime(c, argv):
    return _httl(c, argv, True, True)


@command("hpersist", -5, flags="write fast", acl="write hash fast", keys=(1, 1, 1),
         specs=RW_UPDATE, group=HASH, since="9.0.0", complexity=PER_FIELD,
         summary="Removes the time to live of fields of a hash.")
def hpersist(c, argv):
    s, key = c.server, argv[1]
    fields = _fields_clause(argv, NUMFIELDS)
    h = _write(c, key)
    if h is None:
        return [-2] * len(fields)
    now = s.now_ms
    out = [h.persist(f, now) for f in fields]
    changes = out.count(1)
    if changes:
        s.dirty += changes
        s.touch(c.db, key)
        notify(c, "hpersist", key)
    return out


# ---------------------------------------------------------------- HSETEX / HGETEX / HGETDEL

_UNITS = {b"ex": (True, True), b"px": (False, True), b"exat": (True, False), b"pxat": (False, False)}


def _ex_options(argv, start, end, for_set):
    """The options of HSETEX (NX XX FNX FXX KEEPTTL and a time) or HGETEX
    (PERSIST and a time) in argv[start:end], by Valkey's rules for SET-like
    options: (set of flags, time unit word or None, its raw value)."""
    flags = set()
    unit = raw = None
    i = start
    while i < end:
        o = argv[i].lower()
        has_value = i + 1 < end
        if for_set and o in (b"nx", b"xx") and (b"xx" if o == b"nx" else b"nx") not in flags:
            flags.add(o)
        elif for_set and o in (b"fnx", b"fxx") and (b"fxx" if o == b"fnx" else b"fnx") not in flags:
            flags.add(o)
        elif for_set and o == b"keepttl" and unit is None:
            flags.add(o)
        elif not for_set and o == b"persist" and unit is None:
            flags.add(o)
        elif o in _UNITS and has_value and unit in (None, o) and not flags & {b"keepttl", b"persist"}:
            unit = o
            raw = argv[i + 1]
            i += 1
        else:
            raise ReplyError(errors.SYNTAX)
        i += 1
    return flags, unit, raw


@command("hsetex", -6, flags="write denyoom fast", acl="write hash fast", keys=(1, 1, 1),
         specs=["RW insert: index 1, range 0 1 0"], group=HASH, since="9.0.0",
         complexity=PER_FIELD,
         summary="Sets fields of a hash with a time to live, with conditions on the key and fields.")
def hsetex(c, argv):
    s, key = c.server, argv[1]
    # Valkey looks for FIELDS from the key on: a key named "fields" is taken
    # for the keyword (and the command then fails on the count)
    fi = _find_fields(argv, 1)
    numfields = 0
    if fi is not None:
        flags, unit, raw = _ex_options(argv, 2, fi, True)
        numfields = int_arg(argv[fi + 1])
    if numfields <= 0 or numfields * 2 != len(argv) - fi - 2:
        raise ReplyError(NUMFIELDS)
    h = _write(c, key)
    if (b"nx" in flags and h is not None) or (b"xx" in flags and h is None):
        return 0
    when = None
    past = False
    if unit is not None:
        seconds, relative = _UNITS[unit]
        when = _expire_time(c, raw, seconds, relative, "hsetex")
        past = _past(s, when)
    keepttl = b"keepttl" in flags
    now = s.now_ms
    pairs = [(argv[i], argv[i + 1]) for i in range(fi + 2, len(argv), 2)]
    if b"fnx" in flags or b"fxx" in flags:
        if h is None:
            if b"fxx" in flags:
                return 0
        else:
            for f, _ in pairs:
                if (b"fnx" in flags) == h.alive(f, now):
                    return 0
    if h is None and past:
        # Valkey creates the hash, deletes nothing and drops it again
        for event in ("hset", "hexpire", "hexpired", "del"):
            notify(c, event, key)
        return 1
    if h is None:
        h = _create(c, key)
    changes = 0
    propagate = []
    if past:
        # Valkey deletes these ignoring TTLs: a field past its time goes too
        deleted = []
        for f, _ in pairs:
            if f in h.d:
                h.remove(f)
                deleted.append(f)
        changes = len(deleted)
        _count_expired(s, len(pairs))
        if deleted:
            propagate.append([b"HDEL", key] + deleted)
    else:
        max_entries, max_value = _limits(c)
        overwritten = []
        for f, v in pairs:
            _, expired = h.set(f, v, now, max_entries, max_value, expiry=when, keep_ttl=keepttl)
            if expired:
                overwritten.append(f)
        changes = len(pairs)
        if overwritten:
            _count_expired(s, len(overwritten))
            notify(c, "hexpired", key)
            if keepttl:
                # the replica may still hold these fields with their TTL,
                # which KEEPTTL would keep: delete them there first
                propagate.append([b"HDEL", key] + overwritten)
        if flags & {b"nx", b"xx", b"fnx", b"fxx"} or unit in (b"ex", b"px", b"exat"):
            out = [argv[0], key]
            if unit is not None:
                out += [b"PXAT", format_int(when)]
            elif keepttl:
                out.append(b"KEEPTTL")
            out += argv[fi:]
            propagate.append(out)
        else:
            propagate.append(argv)
        if h.ttl:
            track_volatile(s, c.db, key, h)
    if changes:
        c.rewrite = propagate
        s.touch(c.db, key)
        s.dirty += changes
    notify(c, "hset", key)
    if unit is not None:
        notify(c, "hexpire", key)
    if past:
        notify(c, "hexpired", key)
    _delete_if_empty(c, key, h)
    return 1


@command("hgetex", -5, flags="write fast", acl="write hash fast", keys=(1, 1, 1),
         specs=["RW access update: index 1, range 0 1 0"], group=HASH, since="9.0.0",
         complexity=PER_FIELD,
         summary="Returns values of fields of a hash and sets or removes their time to live.")
def hgetex(c, argv):
    s, key = c.server, argv[1]
    fi = _find_fields(argv, 1)
    numfields = -1
    if fi is not None:
        flags, unit, raw = _ex_options(argv, 2, fi, False)
        numfields = int_arg(argv[fi + 1])
    if numfields == 0 or fi is None or numfields != len(argv) - fi - 2:
        raise ReplyError(NUMFIELDS)
    fields = argv[fi + 2:]
    h = _read(c, key)
    persist = b"persist" in flags
    when = None
    past = False
    if not persist and unit is not None:
        seconds, relative = _UNITS[unit]
        when = _expire_time(c, raw, seconds, relative, "hgetex")
        past = _past(s, when)
    now = s.now_ms
    out = []
    changed = []
    for f in fields:
        if h is None:
            out.append(None)
            continue
        out.append(h.get(f, now))
        if past:
            ok = h.delete(f, now)
        elif when is not None:
            ok = h.set_expire(f, when, now, False) == 1
        elif persist:
            ok = h.persist(f, now) == 1
        else:
            ok = False
        if ok:
            changed.append(f)
    if changed:
        n = format_int(len(changed))
        if past:
            _count_expired(s, len(changed))
            c.rewrite = [[b"HDEL", key] + changed]
            notify(c, "hexpired", key)
        elif persist:
            c.rewrite = [[b"HPERSIST", key, b"FIELDS", n] + changed]
            notify(c, "hpersist", key)
        else:
            c.rewrite = [[b"HPEXPIREAT", key, format_int(when), b"FIELDS", n] + changed]
            notify(c, "hexpire", key)
            track_volatile(s, c.db, key, h)
        s.dirty += len(changed)
        s.touch(c.db, key)
        _delete_if_empty(c, key, h)
    return out


@command("hgetdel", -5, flags="write fast", acl="write hash fast", keys=(1, 1, 1),
         specs=["RW access delete: index 1, range 0 1 0"], group=HASH, since="9.1.0",
         complexity="O(N) where N is the number of fields to be retrieved and deleted.",
         summary="Returns values of fields of a hash and deletes the fields.")
def hgetdel(c, argv):
    s, key = c.server, argv[1]
    fields = _fields_clause(argv, NUMFIELDS)
    h = _write(c, key)
    now = s.now_ms
    out = []
    deleted = 0
    removed = False
    for f in fields:
        v = None if h is None else h.get(f, now)
        out.append(v)
        if v is not None:
            h.delete(f, now)
            deleted += 1
            if not h.d:
                s.delete(c.db, key)
                removed = True
                h = None
    if deleted:
        s.touch(c.db, key)
        notify(c, "hdel", key)
        if removed:
            notify(c, "del", key)
        s.dirty += deleted
    return out
