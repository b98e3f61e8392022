"""The keyspace: commands over keys whatever their type (DEL, EXISTS, TYPE,
RENAME, COPY, MOVE, KEYS, SCAN...), expiry (EXPIRE and friends, TTL,
PERSIST), OBJECT, and the numbered databases (SELECT, SWAPDB, FLUSHDB)."""

from shardkv import errors
from shardkv.commands.common import (
    LLONG_MAX, LLONG_MIN, OK, Status, format_int, int_arg, notify, parse_int, string_encoding,
    type_name,
)
from shardkv.commands.table import command, container
from shardkv.errors import ReplyError
from shardkv.glob import glob_match
from shardkv.native import _native

KEYSPACE = "keyspace"
ROUTED = _native.CLIENT_FLAGS["ROUTED"]


def _delete_keys(c, argv, event="del"):
    s = c.server
    deleted = 0
    for key in argv[1:]:
        if s.lookup_write(c.db, key) is not None and s.delete(c.db, key):
            deleted += 1
            notify(c, event, key)
    s.dirty += deleted
    return deleted


@command("del", -2, flags="write", acl="keyspace write slow", keys=(1, -1, 1),
         specs=["RM delete: index 1, range -1 1 0"],
         tips="request_policy:multi_shard response_policy:agg_sum", group=KEYSPACE,
         complexity="O(N) where N is the number of keys that will be removed.",
         summary="Deletes keys; returns how many existed.")
def del_(c, argv):
    return _delete_keys(c, argv)


@command("unlink", -2, flags="write fast", acl="keyspace write fast", keys=(1, -1, 1),
         specs=["RM delete: index 1, range -1 1 0"],
         tips="request_policy:multi_shard response_policy:agg_sum", group=KEYSPACE, since="4.0.0",
         complexity="O(1) for each key removed regardless of its size.",
         summary="Deletes keys, freeing their memory later; returns how many existed.")
def unlink(c, argv):
    return _delete_keys(c, argv)


@command("exists", -2, flags="readonly fast", acl="keyspace read fast", keys=(1, -1, 1),
         specs=["RO: index 1, range -1 1 0"],
         tips="request_policy:multi_shard response_policy:agg_sum", group=KEYSPACE,
         complexity="O(N) where N is the number of keys to check.",
         summary="Counts how many of the given keys exist (repeats count again).")
def exists(c, argv):
    s = c.server
    return sum(1 for key in argv[1:] if s.lookup_read(c.db, key) is not None)


@command("type", 2, flags="readonly fast", acl="keyspace read fast", keys=(1, 1, 1),
         specs=["RO: index 1, range 0 1 0"], group=KEYSPACE,
         summary="Names the type of the value stored at a key.")
def type_(c, argv):
    v = c.server.lookup_read(c.db, argv[1])
    return Status(b"none" if v is None else type_name(v).encode())


@command("touch", -2, flags="readonly fast", acl="keyspace read fast", keys=(1, -1, 1),
         specs=["RO: index 1, range -1 1 0"],
         tips="request_policy:multi_shard response_policy:agg_sum", group=KEYSPACE, since="3.2.1",
         complexity="O(N) where N is the number of keys that will be touched.",
         summary="Updates the last access time of keys; returns how many exist.")
def touch(c, argv):
    s = c.server
    return sum(1 for key in argv[1:] if s.lookup_read(c.db, key) is not None)


def after_store(server, db, key, value):
    """Lets a value that keeps per-item state (hash field TTLs) know it now
    lives at db/key (after RENAME, COPY, MOVE)."""
    hook = getattr(value, "after_store", None)
    if hook is not None:
        hook(server, db, key)


def copy_value(v):
    """An independent copy of a stored value (for COPY)."""
    t = type(v)
    if t is bytes:
        return v
    if t is bytearray:
        return bytearray(v)
    return v.copy()


def _rename(c, argv, nx):
    s, src, dst = c.server, argv[1], argv[2]
    value = s.lookup_write(c.db, src)
    if value is None:
        raise ReplyError(errors.NO_SUCH_KEY)
    if src == dst:
        return 0 if nx else OK
    expire = s.get_expire(c.db, src)
    if s.lookup_write(c.db, dst) is not None:
        if nx:
            return 0
        s.delete(c.db, dst)
    s.delete(c.db, src)
    s.add_new(c.db, dst, value)
    if expire != -1:
        s.set_expire(c.db, dst, expire)
    after_store(s, c.db, dst, value)
    notify(c, "rename_from", src)
    notify(c, "rename_to", dst)
    s.dirty += 1
    return 1 if nx else OK


@command("rename", 3, flags="write", acl="keyspace write slow", keys=(1, 2, 1),
         specs=["RW access delete: index 1, range 0 1 0", "OW update: index 2, range 0 1 0"],
         group=KEYSPACE, summary="Renames a key, replacing any key of the new name.")
def rename(c, argv):
    return _rename(c, argv, False)


@command("renamenx", 3, flags="write fast", acl="keyspace write fast", keys=(1, 2, 1),
         specs=["RW access delete: index 1, range 0 1 0", "OW insert: index 2, range 0 1 0"],
         group=KEYSPACE, summary="Renames a key only if the new name is free.")
def renamenx(c, argv):
    return _rename(c, argv, True)


def c_int_arg(b, not_integer=errors.NOT_INTEGER):
    """An argument Redis reads as a C int: an integer, then within int range."""
    n = parse_int(b)
    if n is None:
        raise ReplyError(not_integer)
    if n < -(2**31) or n >= 2**31:
        raise ReplyError("ERR value is out of range, value must between -2147483648 and 2147483647")
    return n


def _db_index(c, b):
    """A database number argument: an integer, then a valid index."""
    n = int_arg(b)
    if n < 0 or n >= len(c.server.dbs):
        raise ReplyError(errors.DB_INDEX_OUT_OF_RANGE)
    return c.server.dbs[n]


@command("copy", -3, flags="write denyoom", acl="keyspace write slow", keys=(1, 2, 1),
         specs=["RO access: index 1, range 0 1 0", "OW update: index 2, range 0 1 0"],
         group=KEYSPACE, since="6.2.0",
         complexity="O(N) worst case for collections, where N is the number of nested items. O(1) for string values.",
         summary="Copies the value of a key to another key, optionally in another database.")
def copy(c, argv):
    s, src, dst = c.server, argv[1], argv[2]
    target = c.db
    replace = False
    i = 3
    while i < len(argv):
        opt = argv[i].lower()
        if opt == b"replace":
            replace = True
        elif opt == b"db" and i + 1 < len(argv):
            n = int_arg(argv[i + 1])
            if n < 0 or n >= len(s.dbs):
                raise ReplyError(errors.DB_INDEX_OUT_OF_RANGE)
            target = s.dbs[n]
            i += 1
        else:
            raise ReplyError(errors.SYNTAX)
        i += 1
    if target is not c.db and s.cluster_enabled and not c.flag(ROUTED):
        raise ReplyError("ERR Copying to another database is not allowed in cluster mode")
    if target is c.db and src == dst:
        raise ReplyError(errors.SOURCE_DEST_SAME)
    value = s.lookup_read(c.db, src)
    if value is None:
        return 0
    expire = s.get_expire(c.db, src)
    if s.lookup_write(target, dst) is not None:
        if not replace:
            return 0
        s.delete(target, dst)
    copied = copy_value(value)
    s.add_new(target, dst, copied)
    if expire != -1:
        s.set_expire(target, dst, expire)
    after_store(s, target, dst, copied)
    notify_db(c, "copy_to", dst, target.id)
    s.dirty += 1
    return 1


def notify_db(c, event, key, dbid):
    hook = c.server.keyspace_event_hook
    if hook is not None:
        hook(event, key, dbid)


@command("move", 3, flags="write fast", acl="keyspace write fast", keys=(1, 1, 1),
         specs=["RW access update: index 1, range 0 1 0"], group=KEYSPACE,
         summary="Moves a key to another database.")
def move(c, argv):
    s, key = c.server, argv[1]
    n = c_int_arg(argv[2])
    if s.cluster_enabled and not c.flag(ROUTED):
        raise ReplyError("ERR MOVE is not allowed in cluster mode")
    if n < 0 or n >= len(s.dbs):
        raise ReplyError(errors.DB_INDEX_OUT_OF_RANGE)
    target = s.dbs[n]
    if target is c.db:
        raise ReplyError(errors.SOURCE_DEST_SAME)
    value = s.lookup_write(c.db, key)
    if value is None:
        return 0
    expire = s.get_expire(c.db, key)
    if s.lookup_write(target, key) is not None:
        return 0
    s.add_new(target, key, value)
    if expire != -1:
        s.set_expire(target, key, expire)
    after_store(s, target, key, value)
    s.delete(c.db, key)
    notify(c, "move_from", key)
    notify_db(c, "move_to", key, target.id)
    s.dirty += 1
    return 1


@command("keys", 2, flags="readonly", acl="keyspace read slow dangerous", tips=(
    "request_policy:all_shards nondeterministic_output_order"), group=KEYSPACE,
    complexity="O(N) with N being the number of keys in the database, under the assumption that the key names in the database and the given pattern have limited length.",
    summary="Lists the keys that match a glob pattern.")
def keys_(c, argv):
    s, pattern = c.server, argv[1]
    out = []
    for key in c.db.data.keys():
        if (pattern == b"*" or glob_match(pattern, key)) and not s.key_expired(c.db, key):
            out.append(key)
    return out


def scan_arguments(argv, start):
    """MATCH/COUNT/TYPE options of the SCAN family: (pattern, count, type)."""
    pattern, count, typ = None, 10, None
    i = start
    while i < len(argv):
        opt = argv[i].lower()
        if opt == b"novalues" and start == 2:
            raise ReplyError("ERR NOVALUES option can only be used in HSCAN")
        if i + 1 >= len(argv):
            raise ReplyError(errors.SYNTAX)
        if opt == b"count":
            count = int_arg(argv[i + 1])
            if count < 1:
                raise ReplyError(errors.SYNTAX)
        elif opt == b"match":
            pattern = argv[i + 1]
            if pattern == b"*":
                pattern = None
        elif opt == b"novalues" and start == 2:
            raise ReplyError("ERR NOVALUES option can only be used in HSCAN")
        elif opt == b"type" and start == 2:
            typ = argv[i + 1]
        else:
            raise ReplyError(errors.SYNTAX)
        i += 2
    return pattern, count, typ


def collection_scan_options(argv, own_flag=None):
    """MATCH, COUNT and the family's own flag of HSCAN/SSCAN/ZSCAN
    (argv[3:]): (pattern or None, count, whether own_flag was given).
    own_flag: b"novalues" for HSCAN, b"noscores" for ZSCAN, None for SSCAN;
    the other family's flag gets Valkey's error."""
    pattern, count, flag = None, 10, False
    i = 3
    while i < len(argv):
        opt = argv[i].lower()
        more = len(argv) - i
        if opt == b"count" and more >= 2:
            count = int_arg(argv[i + 1])
            if count < 1:
                raise ReplyError(errors.SYNTAX)
            i += 2
        elif opt == b"match" and more >= 2:
            pattern = None if argv[i + 1] == b"*" else argv[i + 1]
            i += 2
        elif opt in (b"novalues", b"noscores"):
            if opt != own_flag:
                raise ReplyError("ERR NOVALUES option can only be used in HSCAN" if opt == b"novalues"
                                 else "ERR NOSCORES option can only be used in ZSCAN")
            flag = True
            i += 1
        else:
            raise ReplyError(errors.SYNTAX)
    return pattern, count, flag


def parse_cursor(b):
    """A cursor as Valkey reads it: leading spaces, an optional '+', digits,
    below 2**64."""
    b = b.lstrip(b" \t\n\r\v\f")
    digits = b[1:] if b[:1] == b"+" else b
    if not digits or not digits.isdigit():
        raise ReplyError(errors.INVALID_CURSOR)
    v = int(digits)
    if v >= 2**64:
        raise ReplyError(errors.INVALID_CURSOR)
    return v


KNOWN_TYPES = {"string", "list", "set", "zset", "hash", "stream"}


@command("scan", -2, flags="readonly", acl="keyspace read slow", tips=(
    "nondeterministic_output request_policy:special response_policy:special"), group=KEYSPACE,
    since="2.8.0",
    complexity="O(1) for every call. O(N) for a complete iteration, including enough command calls for the cursor to return back to 0. N is the number of elements inside the collection.",
    summary="Iterates over the keys with a cursor, a batch per call.")
def scan(c, argv):
    s = c.server
    cursor = parse_cursor(argv[1])
    pattern, count, typ = scan_arguments(argv, 2)
    if typ is not None:
        if typ.decode("latin-1").lower() not in KNOWN_TYPES:
            raise ReplyError(f"ERR unknown type name '{typ.decode('latin-1')}'")
        typ = typ.decode("latin-1").lower()
    cursor, batch = c.db.data.scan(cursor, count)
    out = []
    for key in batch:
        if pattern is not None and not glob_match(pattern, key):
            continue
        if s.expire_if_needed(c.db, key):
            continue
        if typ is not None:
            v = s.peek(c.db, key)
            if v is None or type_name(v) != typ:
                continue
        out.append(key)
    return [format_int(cursor), out]


@command("randomkey", 1, flags="readonly", acl="keyspace read slow", tips=(
    "request_policy:all_shards response_policy:special nondeterministic_output"), group=KEYSPACE,
    summary="Returns a key chosen at random.")
def randomkey(c, argv):
    s = c.server
    data = c.db.data
    for _ in range(100):
        key = data.random_key()
        if key is None:
            return None
        if not s.expire_if_needed(c.db, key):
            return key
    # every key tried was volatile and past its time: answer with one anyway,
    # as Redis does after too many tries
    return data.random_key()


@command("dbsize", 1, flags="readonly fast", acl="keyspace read fast",
         tips="request_policy:all_shards response_policy:agg_sum", group="server",
         summary="Counts the keys of the selected database.")
def dbsize(c, argv):
    return len(c.db.data)


def _flush_option(argv):
    if len(argv) > 2 or (len(argv) == 2 and argv[1].lower() not in (b"sync", b"async")):
        raise ReplyError(errors.SYNTAX)


def flush_database(s, db):
    removed = len(db.data)
    s.touch_all_watched(db)
    db.data.clear()
    db.expires.clear()
    return removed


@command("flushdb", -1, flags="write", acl="keyspace write slow dangerous",
         tips="request_policy:all_shards response_policy:all_succeeded", group="server",
         complexity="O(N) where N is the number of keys in the selected database",
         summary="Deletes every key of the selected database.")
def flushdb(c, argv):
    _flush_option(argv)
    s = c.server
    s.dirty += flush_database(s, c.db) + 1
    hook = getattr(s, "after_flush", None)
    if hook is not None:
        hook()
    return OK


@command("flushall", -1, flags="write", acl="keyspace write slow dangerous",
         tips="request_policy:all_shards response_policy:all_succeeded", group="server",
         complexity="O(N) where N is the total number of keys in all databases",
         summary="Deletes every key of every database.")
def flushall(c, argv):
    _flush_option(argv)
    s = c.server
    removed = sum(flush_database(s, db) for db in s.dbs)
    s.dirty += removed + 1
    hook = getattr(s, "after_flushall", None)
    if hook is not None:
        hook()
    return OK


# ---------------------------------------------------------------- expiry

def expire_flags(opts):
    """The NX/XX/GT/LT options of EXPIRE and HEXPIRE families."""
    nx = xx = gt = lt = False
    for opt in opts:
        o = opt.lower()
        if o == b"nx":
            nx = True
        elif o == b"xx":
            xx = True
        elif o == b"gt":
            gt = True
        elif o == b"lt":
            lt = True
        else:
            raise ReplyError("ERR Unsupported option " + opt.decode("latin-1"))
    if nx and (xx or gt or lt):
        raise ReplyError(errors.NX_XX_GT_LT)
    if gt and lt:
        raise ReplyError(errors.GT_AND_LT)
    return nx, xx, gt, lt


def _expire_generic(c, argv, relative, unit_ms):
    s, key = c.server, argv[1]
    name = c.current_cmd.name
    nx, xx, gt, lt = expire_flags(argv[3:])
    when = int_arg(argv[2])
    if unit_ms == 1000:
        if when > LLONG_MAX // 1000 or when < -(-LLONG_MIN // 1000):
            raise ReplyError(errors.invalid_expire(name))
        when *= 1000
    basetime = s.now_ms if relative else 0
    if when > LLONG_MAX - basetime:
        raise ReplyError(errors.invalid_expire(name))
    when += basetime
    if s.lookup_write(c.db, key) is None:
        return 0
    current = s.get_expire(c.db, key)
    if nx and current != -1:
        return 0
    if xx and current == -1:
        return 0
    if gt and (current == -1 or when <= current):
        return 0
    if lt and current != -1 and when >= current:
        return 0
    s.dirty += 1
    if when <= s.now_ms and not s.is_replica:
        s.delete(c.db, key)
        c.rewrite = [[b"DEL", key]]
        notify(c, "del", key)
        return 1
    s.set_expire(c.db, key, when)
    s.touch(c.db, key)
    c.rewrite = [[b"PEXPIREAT", key, format_int(when)]]
    notify(c, "expire", key)
    return 1


EXPIRE_SPECS = ["RW update: index 1, range 0 1 0"]


@command("expire", -3, flags="write fast", acl="keyspace write fast", keys=(1, 1, 1),
         specs=EXPIRE_SPECS, group=KEYSPACE, summary="Sets a key's time to live in seconds.")
def expire(c, argv):
    return _expire_generic(c, argv, True, 1000)


@command("pexpire", -3, flags="write fast", acl="keyspace write fast", keys=(1, 1, 1),
         specs=EXPIRE_SPECS, group=KEYSPACE, since="2.6.0",
         summary="Sets a key's time to live in milliseconds.")
def pexpire(c, argv):
    return _expire_generic(c, argv, True, 1)


@command("expireat", -3, flags="write fast", acl="keyspace write fast", keys=(1, 1, 1),
         specs=EXPIRE_SPECS, group=KEYSPACE, since="1.2.0",
         summary="Sets a key's expiry as a Unix time in seconds.")
def expireat(c, argv):
    return _expire_generic(c, argv, False, 1000)


@command("pexpireat", -3, flags="write fast", acl="keyspace write fast", keys=(1, 1, 1),
         specs=EXPIRE_SPECS, group=KEYSPACE, since="2.6.0",
         summary="Sets a key's expiry as a Unix time in milliseconds.")
def pexpireat(c, argv):
    return _expire_generic(c, argv, False, 1)


def _ttl(c, argv, ms, absolute):
    s, key = c.server, argv[1]
    if s.lookup_read(c.db, key) is None:
        return -2
    expire = s.get_expire(c.db, key)
    if expire == -1:
        return -1
    ttl = expire if absolute else expire - s.now_ms
    ttl = max(ttl, 0)
    return ttl if ms else (ttl + 500) // 1000


TTL_SPECS = ["RO access: index 1, range 0 1 0"]


@command("ttl", 2, flags="readonly fast", acl="keyspace read fast", keys=(1, 1, 1),
         specs=TTL_SPECS, tips="nondeterministic_output", group=KEYSPACE,
         summary="Returns a key's remaining time to live in seconds.")
def ttl(c, argv):
    return _ttl(c, argv, False, False)


@command("pttl", 2, flags="readonly fast", acl="keyspace read fast", keys=(1, 1, 1),
         specs=TTL_SPECS, tips="nondeterministic_output", group=KEYSPACE, since="2.6.0",
         summary="Returns a key's remaining time to live in milliseconds.")
def pttl(c, argv):
    return _ttl(c, argv, True, False)


@command("expiretime", 2, flags="readonly fast", acl="keyspace read fast", keys=(1, 1, 1),
         specs=TTL_SPECS, group=KEYSPACE, since="7.0.0",
         summary="Returns a key's expiry as a Unix time in seconds.")
def expiretime(c, argv):
    return _ttl(c, argv, False, True)


@command("pexpiretime", 2, flags="readonly fast", acl="keyspace read fast", keys=(1, 1, 1),
         specs=TTL_SPECS, group=KEYSPACE, since="7.0.0",
         summary="Returns a key's expiry as a Unix time in milliseconds.")
def pexpiretime(c, argv):
    return _ttl(c, argv, True, True)


@command("persist", 2, flags="write fast", acl="keyspace write fast", keys=(1, 1, 1),
         specs=EXPIRE_SPECS, group=KEYSPACE, since="2.2.0",
         summary="Removes a key's expiry, keeping the key.")
def persist(c, argv):
    s, key = c.server, argv[1]
    if s.lookup_write(c.db, key) is None:
        return 0
    if not s.remove_expire(c.db, key):
        return 0
    s.touch(c.db, key)
    notify(c, "persist", key)
    s.dirty += 1
    return 1


# ---------------------------------------------------------------- OBJECT

container("object", -2, acl="slow", group=KEYSPACE, since="2.2.3",
          summary="A container for commands that inspect how a value is stored.")

OBJECT_SPECS = ["RO: index 2, range 0 1 0"]
LFU_NOT_SELECTED = (
    "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note "
    "that when switching between policies at runtime LRU and LFU data will take some time to "
    "adjust.")
LFU_SELECTED = (
    "ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that when "
    "switching between policies at runtime LRU and LFU data will take some time to adjust.")


def _object_value(c, key):
    return c.server.peek(c.db, key)


def value_encoding(v, key=b"", has_ttl=False):
    if type(v) is bytes or type(v) is bytearray:
        return string_encoding(v, len(key) + (8 if has_ttl else 0))
    return v.encoding().encode()


@command("object|encoding", 3, flags="readonly", acl="keyspace read slow", keys=(2, 2, 1),
         specs=OBJECT_SPECS, tips="nondeterministic_output", group=KEYSPACE, since="2.2.3",
         summary="Names the internal encoding Redis would use for the value at a key.")
def object_encoding(c, argv):
    v = _object_value(c, argv[2])
    if v is None:
        return None
    return value_encoding(v, argv[2], c.server.get_expire(c.db, argv[2]) != -1)


@command("object|freq", 3, flags="readonly", acl="keyspace read slow", keys=(2, 2, 1),
         specs=OBJECT_SPECS, tips="nondeterministic_output", group=KEYSPACE, since="4.0.0",
         summary="Returns the logarithmic access frequency counter of a key (LFU policies).")
def object_freq(c, argv):
    v = _object_value(c, argv[2])
    if v is None:
        return None
    if not c.server.lfu_mode:
        raise ReplyError(LFU_NOT_SELECTED)
    return c.server.key_frequency(c.db, argv[2])


@command("object|idletime", 3, flags="readonly", acl="keyspace read slow", keys=(2, 2, 1),
         specs=OBJECT_SPECS, tips="nondeterministic_output", group=KEYSPACE, since="2.2.3",
         summary="Returns the seconds since a key was last read or written.")
def object_idletime(c, argv):
    s = c.server
    v = _object_value(c, argv[2])
    if v is None:
        return None
    if s.lfu_mode:
        raise ReplyError(LFU_SELECTED)
    return s.key_idle_seconds(c.db, argv[2])


@command("object|refcount", 3, flags="readonly", acl="keyspace read slow", keys=(2, 2, 1),
         specs=OBJECT_SPECS, tips="nondeterministic_output", group=KEYSPACE, since="2.2.3",
         summary="Returns the reference count of the value at a key.")
def object_refcount(c, argv):
    v = _object_value(c, argv[2])
    if v is None:
        return None
    # Valkey 9.1 answers 1 for every value, shared small integers included
    return 1


@command("object|help", 2, flags="loading stale", acl="keyspace slow", group=KEYSPACE,
         since="6.2.0", summary="Describes the OBJECT subcommands.")
def object_help(c, argv):
    return help_reply("OBJECT", [
        "ENCODING <key>",
        "    Name of the internal encoding of the value at <key>.",
        "FREQ <key>",
        "    Access frequency counter of <key> (needs an LFU maxmemory-policy).",
        "IDLETIME <key>",
        "    Seconds since <key> was last accessed (not with an LFU maxmemory-policy).",
        "REFCOUNT <key>",
        "    Number of references to the value at <key>.",
    ])


def help_reply(container_name, lines):
    """The reply of a CONTAINER HELP subcommand: status lines, framed the way
    Redis frames them."""
    out = [f"{container_name} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"]
    out += lines
    out += ["HELP", "    Print this help."]
    return [Status(x.encode()) for x in out]


# ---------------------------------------------------------------- databases

@command("select", 2, flags="loading stale fast allow_busy", acl="fast connection",
         group="connection", summary="Switches the connection to another numbered database.")
def select(c, argv):
    n = c_int_arg(argv[1])
    s = c.server
    if s.cluster_enabled and n != 0 and not c.flag(ROUTED):
        raise ReplyError("ERR SELECT is not allowed in cluster mode")
    if n < 0 or n >= len(s.dbs):
        raise ReplyError(errors.DB_INDEX_OUT_OF_RANGE)
    c.db = s.dbs[n]
    return OK


@command("swapdb", 3, flags="write fast", acl="keyspace write fast dangerous", group="server",
         since="4.0.0", complexity="O(N) where N is the count of clients watching or blocking on keys from both databases.",
         summary="Exchanges the contents of two databases.")
def swapdb(c, argv):
    s = c.server
    a = parse_int(argv[1])
    if a is None or a < -(2**31) or a >= 2**31:
        raise ReplyError("ERR invalid first DB index")
    b = parse_int(argv[2])
    if b is None or b < -(2**31) or b >= 2**31:
        raise ReplyError("ERR invalid second DB index")
    if s.cluster_enabled and not c.flag(ROUTED):
        raise ReplyError("ERR SWAPDB is not allowed in cluster mode")
    if a < 0 or a >= len(s.dbs) or b < 0 or b >= len(s.dbs):
        raise ReplyError(errors.DB_INDEX_OUT_OF_RANGE)
    if a != b:
        da, db_ = s.dbs[a], s.dbs[b]
        s.touch_all_watched(da, db_)
        s.touch_all_watched(db_, da)
        da.data, db_.data = db_.data, da.data
        da.expires, db_.expires = db_.expires, da.expires
        hook = getattr(s, "after_swapdb", None)
        if hook is not None:
            hook(da, db_)
    s.dirty += 1
    return OK
