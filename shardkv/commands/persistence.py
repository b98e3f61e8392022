"""Persistence commands: DUMP and RESTORE (one value in RDB form, with its
RDB version and CRC64), SAVE, BGSAVE, BGREWRITEAOF. The formats are in
shardkv/persistence/rdb.py, the scheduling in persistence/snapshot.py and
persistence/aof.py; LASTSAVE, SHUTDOWN and DEBUG RELOAD are in
server_admin.py."""

from shardkv import errors
from shardkv._rdbcodec import RdbError
from shardkv.commands.common import OK, Status, int_arg, notify
from shardkv.commands.keys import after_store
from shardkv.commands.table import command
from shardkv.errors import ReplyError
from shardkv.native import _native
from shardkv.persistence import rdb

BAD_PAYLOAD = "ERR DUMP payload version or checksum are wrong"
BAD_DATA = "ERR Bad data format"
BUSYKEY = "BUSYKEY Target key name already exists."
BAD_TTL = "ERR Invalid TTL value, must be >= 0"
BAD_IDLETIME = "ERR Invalid IDLETIME value, must be >= 0"
BAD_FREQ = "ERR Invalid FREQ value, must be >= 0 and <= 255"
BGSAVE_IN_PROGRESS = "ERR Background save already in progress"
BGSAVE_CHILD_ACTIVE = ("ERR Another child process is active (AOF?): can't BGSAVE right now. "
                       "Use BGSAVE SCHEDULE in order to schedule a BGSAVE whenever possible.")
BGSAVE_NOT_RUNNING = "ERR Background saving is currently not in progress or scheduled"
AOFRW_IN_PROGRESS = "ERR Background append only file rewriting already in progress"
AOFRW_FAILED = ("ERR Can't execute an AOF background rewriting. Please check the server logs for more "
                "information.")
SERVER = "server"


@command("dump", 2, flags="readonly", acl="keyspace read slow", keys=(1, 1, 1),
         specs=["RO access: index 1, range 0 1 0"], tips="nondeterministic_output", since="2.6.0",
         complexity="O(1) to access the key and additional O(N*M) to serialize it, where N is the number "
                    "of objects composing the value and M their average size.",
         summary="Serializes the value at a key in the RDB format, for RESTORE.")
def dump(c, argv):
    s = c.server
    value = s.lookup_read(c.db, argv[1])
    if value is None:
        return None
    try:
        payload = rdb.dump_payload(value, s.now_ms, s.config["rdbcompression"])
    except RdbError as e:
        raise ReplyError(f"ERR {e}") from None
    return payload


def _restore_options(argv):
    replace = absttl = False
    idle = freq = -1
    j = 4
    while j < len(argv):
        opt = argv[j].lower()
        more = j + 1 < len(argv)
        if opt == b"replace":
            replace = True
        elif opt == b"absttl":
            absttl = True
        elif opt == b"idletime" and more and freq == -1:
            idle = int_arg(argv[j + 1])
            if idle < 0:
                raise ReplyError(BAD_IDLETIME)
            j += 1
        elif opt == b"freq" and more and idle == -1:
            freq = int_arg(argv[j + 1])
            if not 0 <= freq <= 255:
                raise ReplyError(BAD_FREQ)
            j += 1
        else:
            raise ReplyError(errors.SYNTAX)
        j += 1
    return replace, absttl, idle, freq


@command("restore", -4, flags="write denyoom", acl="keyspace write slow dangerous", keys=(1, 1, 1),
         specs=["OW update: index 1, range 0 1 0"], since="2.6.0",
         complexity="O(1) to create the new key and additional O(N*M) to reconstruct the serialized value.",
         summary="Creates a key from a DUMP payload, with a TTL, optionally replacing what is there.")
def restore(c, argv):
    s = c.server
    key = argv[1]
    replace, absttl, idle, freq = _restore_options(argv)
    if not replace and s.lookup_write(c.db, key) is not None:
        raise ReplyError(BUSYKEY)
    ttl = int_arg(argv[2])
    if ttl < 0:
        raise ReplyError(BAD_TTL)
    payload = argv[3]
    version = rdb.check_dump_payload(payload)
    if version is None:
        raise ReplyError(BAD_PAYLOAD)
    cfg = s.config
    try:
        value = rdb.restore_value(payload, version, rdb.Limits(cfg), s.now_ms)
    except RdbError:
        raise ReplyError(BAD_DATA) from None
    deleted = False
    if replace:
        deleted = s.delete(c.db, key)
    if ttl and not absttl:
        ttl += s.now_ms
    if ttl and ttl <= s.now_ms:
        # already past its time: the key is gone (and a replaced one deleted)
        if deleted:
            c.rewrite = [[b"DEL", key]]
            notify(c, "del", key)
            s.dirty += 1
        return OK
    s.add_new(c.db, key, value)
    if ttl:
        s.set_expire(c.db, key, ttl)
        if not absttl:
            # replicas and the AOF get the absolute time
            c.rewrite = [argv[:2] + [b"%d" % ttl] + argv[3:] + [b"ABSTTL"]]
    if idle >= 0:
        c.db.data.set_meta(key, max(s.lru_clock - idle, 0))
    # FREQ sets an LFU counter; shardkv keeps none (OBJECT FREQ answers 0)
    after_store(s, c.db, key, value)
    notify(c, "restore", key)
    s.dirty += 1
    return OK


# ---------------------------------------------------------------- snapshots

@command("save", 1, flags="admin noscript no_async_loading no_multi", acl="admin slow dangerous",
         group=SERVER, complexity="O(N) where N is the total number of keys in all databases",
         summary="Writes the dataset to the RDB file, blocking the shard until done.")
def save(c, argv):
    p = c.server.persistence
    if p.child_kind == "rdb":
        raise ReplyError(BGSAVE_IN_PROGRESS)
    try:
        p.save()
    except (OSError, RdbError):
        raise ReplyError("ERR") from None
    return OK


@command("bgsave", -1, flags="admin noscript no_async_loading", acl="admin slow dangerous",
         group=SERVER, summary="Writes the dataset to the RDB file from a forked child.")
def bgsave(c, argv):
    p = c.server.persistence
    schedule = cancel = False
    if len(argv) > 1:
        opt = argv[1].lower()
        if len(argv) == 2 and opt == b"schedule":
            schedule = True
        elif len(argv) == 2 and opt == b"cancel":
            cancel = True
        else:
            raise ReplyError(errors.SYNTAX)
    in_exec = bool(c.flag(_native.CLIENT_FLAGS["EXECUTING"]))
    if cancel:
        if p.child_kind == "rdb":
            p.kill_child()
            return Status(b"Background saving cancelled")
        if p.bgsave_scheduled:
            p.bgsave_scheduled = False
            return Status(b"Scheduled background saving cancelled")
        raise ReplyError(BGSAVE_NOT_RUNNING)
    if p.child_kind == "rdb":
        raise ReplyError(BGSAVE_IN_PROGRESS)
    if p.child_pid or in_exec:
        if schedule or in_exec:
            p.bgsave_scheduled = True
            return Status(b"Background saving scheduled")
        raise ReplyError(BGSAVE_CHILD_ACTIVE)
    try:
        p.bgsave()
    except OSError:
        raise ReplyError("ERR") from None
    return Status(b"Background saving started")


@command("bgrewriteaof", 1, flags="admin noscript no_async_loading", acl="admin slow dangerous",
         group=SERVER, summary="Rewrites the append-only file from a forked child.")
def bgrewriteaof(c, argv):
    p = c.server.persistence
    if p.child_kind == "aof":
        raise ReplyError(AOFRW_IN_PROGRESS)
    aof = p.aof
    if aof is None:
        # without appendonly Valkey still writes a base and a manifest
        from shardkv.persistence.aof import AppendOnlyFile
        aof = p.offline_aof = AppendOnlyFile(p, offline=True)
    in_exec = bool(c.flag(_native.CLIENT_FLAGS["EXECUTING"]))
    if p.child_pid or in_exec:
        aof.rewrite_scheduled = True
        aof.rewrite_failures = 0
        return Status(b"Background append only file rewriting scheduled")
    try:
        aof.start_rewrite()
    except OSError:
        raise ReplyError(AOFRW_FAILED) from None
    return Status(b"Background append only file rewriting started")
