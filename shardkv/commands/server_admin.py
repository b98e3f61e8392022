"""Server commands: CONFIG, INFO, TIME, LASTSAVE, MEMORY, SHUTDOWN, DEBUG,
SLOWLOG, LATENCY."""

import gc
import hashlib
import time

from shardkv import errors, eviction
from shardkv.commands.common import OK, Status, Verbatim, int_arg, format_int, is_string
from shardkv.commands import hashes
from shardkv.commands.keys import help_reply, value_encoding
from shardkv.commands.table import command, container
from shardkv.config import BY_NAME, ConfigError
from shardkv.errors import ReplyError
from shardkv.info import build_info
from shardkv.native import _native

SERVER = "server"
ADMIN = dict(flags="admin noscript loading stale", acl="admin slow dangerous", group=SERVER)

container("config", -2, acl="slow", group=SERVER, since="2.0.0",
          summary="A container for commands that read and change the configuration.")


@command("config|get", -3, since="2.0.0", complexity="O(N) when N is the number of configuration parameters provided",
         summary="Returns the values of the directives matching glob patterns.", **ADMIN)
def config_get(c, argv):
    out = {}
    for pattern in argv[2:]:
        for k, v in c.server.config.get_matching(pattern).items():
            out[k.encode()] = v.encode()
    return out


@command("config|set", -4, since="2.0.0", tips="request_policy:all_nodes response_policy:all_succeeded",
         complexity="O(N) when N is the number of configuration parameters provided",
         summary="Changes directives at run time, all or none.", **ADMIN)
def config_set(c, argv):
    cfg = c.server.config
    if len(argv) % 2:
        raise ReplyError(errors.SYNTAX)
    pairs = []
    seen = set()
    for i in range(2, len(argv), 2):
        name = argv[i].decode("latin-1")
        d = BY_NAME.get(name.lower())
        if d is None:
            raise ReplyError(f"ERR Unknown option or number of arguments for CONFIG SET - '{name}'")
        if d.name in seen:
            raise ReplyError(f"ERR CONFIG SET failed (possibly related to argument '{name}') - duplicate parameter")
        seen.add(d.name)
        if not d.mutable:
            raise ReplyError(f"ERR CONFIG SET failed (possibly related to argument '{name}') - can't set immutable config")
        pairs.append((name, argv[i + 1].decode("latin-1")))
    old = {BY_NAME[n.lower()].name: cfg[n] for n, _ in pairs}
    try:
        for name, value in pairs:
            try:
                cfg.set(name, value)
            except ConfigError as e:
                raise ReplyError(f"ERR CONFIG SET failed (possibly related to argument '{name}') - {e}") from None
    except ReplyError:
        for name, value in old.items():
            cfg.values[name] = value
            for cb in cfg.listeners:
                cb(name, value, None)
        raise
    return OK


@command("config|resetstat", 2, since="2.0.0", tips="request_policy:all_nodes response_policy:all_succeeded",
         summary="Zeroes the statistics INFO reports.", **ADMIN)
def config_resetstat(c, argv):
    s = c.server
    s.stat_numcommands = s.stat_numconnections = s.stat_rejected_conn = 0
    s.stat_expired_keys = s.stat_keyspace_hits = s.stat_keyspace_misses = 0
    s.stat_total_error_replies = 0
    s.error_stats = {}
    seen = set()
    for cmd in s.commands.values():
        for x in [cmd] + list((cmd.subcommands or {}).values()):
            if id(x) not in seen:
                seen.add(id(x))
                x.calls = x.usec = x.rejected_calls = x.failed_calls = 0
                x.reset_latency()
    s.slowlog.entries.clear()
    hashes.reset_stats(s)
    return OK


@command("config|rewrite", 2, since="2.8.0", tips="request_policy:all_nodes response_policy:all_succeeded",
         summary="Writes the running configuration back to the config file.", **ADMIN)
def config_rewrite(c, argv):
    from shardkv.config import rewrite_config_file
    path = getattr(c.server, "config_file", None)
    if not path:
        raise ReplyError("ERR The server is running without a config file")
    try:
        rewrite_config_file(c.server.config, path)
    except OSError as e:
        raise ReplyError(f"ERR Rewriting config file: {e.strerror}") from None
    return OK


@command("config|help", 2, flags="loading stale", acl="slow", group=SERVER, since="5.0.0",
         summary="Describes the CONFIG subcommands.")
def config_help(c, argv):
    return help_reply("CONFIG", [
        "GET <pattern>", "    Return parameters matching the glob-like <pattern> and their values.",
        "SET <directive> <value>", "    Set the configuration <directive> to <value>.",
        "RESETSTAT", "    Reset statistics reported by the INFO command.",
        "REWRITE", "    Rewrite the configuration file with the running configuration.",
    ])


@command("info", -1, flags="loading stale", acl="slow dangerous",
         tips="nondeterministic_output request_policy:all_shards response_policy:special",
         group=SERVER, summary="Reports the server's state and statistics, by section.")
def info(c, argv):
    return Verbatim(build_info(c.server, [a.decode("latin-1") for a in argv[1:]]))


@command("time", 1, flags="loading stale fast", acl="fast", tips="nondeterministic_output",
         group=SERVER, since="2.6.0", summary="Returns the server's clock: seconds and microseconds.")
def time_(c, argv):
    us = _native.now_us()
    return [format_int(us // 1_000_000), format_int(us % 1_000_000)]


@command("lastsave", 1, flags="loading stale fast", acl="admin fast dangerous",
         tips="nondeterministic_output", group=SERVER,
         summary="Returns the Unix time of the last successful save to disk.")
def lastsave(c, argv):
    return c.server.persistence.lastsave


container("memory", -2, acl="slow", group=SERVER, since="4.0.0",
          summary="A container for memory inspection commands.")


def value_size(v):
    """An estimate of the bytes a value takes in this process (see shardkv.eviction)."""
    return eviction.footprint(v)


@command("memory|usage", -3, flags="readonly", acl="read slow", keys=(2, 2, 1),
         specs=["RO: index 2, range 0 1 0"], group=SERVER, since="4.0.0",
         complexity="O(N) where N is the number of samples.",
         summary="Estimates the bytes a key and its value take.")
def memory_usage(c, argv):
    samples = eviction.SAMPLES
    i = 3
    while i < len(argv):
        if argv[i].lower() == b"samples" and i + 1 < len(argv):
            samples = int_arg(argv[i + 1])
            if samples < 0:
                raise ReplyError(errors.SYNTAX)
            i += 2
        else:
            raise ReplyError(errors.SYNTAX)
    key = argv[2]
    v = c.server.peek(c.db, key)
    if v is None:
        return None
    # the same measure used_memory sums (key, value, table entry); SAMPLES 0
    # measures every element of a collection
    return eviction.entry_footprint(key, v, samples)


@command("memory|stats", 2, tips="nondeterministic_output request_policy:all_shards response_policy:special",
         flags="", acl="slow", group=SERVER, since="4.0.0",
         summary="Reports how the server's memory is used.")
def memory_stats(c, argv):
    return eviction.memory_stats(c.server)


@command("memory|doctor", 2, tips="nondeterministic_output request_policy:all_shards response_policy:special",
         flags="", acl="slow", group=SERVER, since="4.0.0",
         summary="Describes memory problems the server sees, in words.")
def memory_doctor(c, argv):
    return _native.Verbatim((eviction.memory_doctor(c.server) + "\n").encode())


@command("memory|malloc-stats", 2, tips="nondeterministic_output request_policy:all_shards response_policy:special",
         flags="loading", acl="slow", group=SERVER, since="4.0.0",
         summary="Reports the memory allocator's statistics.")
def memory_malloc_stats(c, argv):
    return _native.Verbatim(b"Stats not supported for the current allocator")


@command("memory|purge", 2, tips="request_policy:all_shards response_policy:all_succeeded",
         flags="loading", acl="slow", group=SERVER, since="4.0.0",
         summary="Asks the allocator to return free memory to the system.")
def memory_purge(c, argv):
    gc.collect()
    return OK


@command("memory|help", 2, flags="loading stale", acl="slow", group=SERVER, since="4.0.0",
         summary="Describes the MEMORY subcommands.")
def memory_help(c, argv):
    return help_reply("MEMORY", [
        "DOCTOR", "    Describe memory problems, in words.",
        "MALLOC-STATS", "    Report the allocator's statistics.",
        "PURGE", "    Give free memory back to the system.",
        "STATS", "    Report how memory is used.",
        "USAGE <key> [SAMPLES <count>]", "    Estimate the memory a key and its value take.",
    ])


@command("shutdown", -1, flags="admin noscript loading stale no_multi allow_busy",
         acl="admin slow dangerous", group=SERVER,
         complexity="O(N) when saving, where N is the total number of keys in all databases when saving data, otherwise O(1)",
         summary="Stops the server (optionally saving first).")
def shutdown(c, argv):
    for a in argv[1:]:
        if a.lower() not in (b"nosave", b"save", b"now", b"force", b"abort"):
            raise ReplyError(errors.SYNTAX)
    opts = {a.lower() for a in argv[1:]}
    if b"nosave" in opts and b"save" in opts:
        raise ReplyError(errors.SYNTAX)
    if b"abort" in opts:
        if len(opts) > 1:
            raise ReplyError(errors.SYNTAX)
        raise ReplyError("ERR No shutdown in progress.")
    save = True if b"save" in opts else (False if b"nosave" in opts else None)
    # a server that cannot write the snapshot it was asked for keeps running
    if not c.server.persistence.prepare_shutdown(save, force=b"force" in opts):
        raise ReplyError("ERR Errors trying to SHUTDOWN. Check logs.")
    c.server.request_shutdown()
    return _native.NO_REPLY


# ---------------------------------------------------------------- DEBUG

def is_local_client(c):
    """A connection from the loopback interface, a unix socket (its addr is
    the socket's path) or without a socket."""
    addr = c.addr or ""
    return (not addr or addr.startswith(("127.", "::1", "[::1]", "/")))


def _digest_value(v):
    h = hashlib.sha1()
    if is_string(v):
        h.update(bytes(v))
    else:
        for part in v.digest_parts():
            h.update(part)
    return h.digest()


def _xor_into(acc, d):
    return bytes(a ^ b for a, b in zip(acc, d, strict=True))


def database_digest(s):
    """A digest of the whole dataset that two servers holding the same data
    agree on: key order does not matter (XOR of per-key digests), expiry
    times are included."""
    total = bytes(20)
    for db in s.dbs:
        for key, value in db.data.items():
            if s.key_expired(db, key):
                continue
            h = hashlib.sha1()
            h.update(db.id.to_bytes(4, "little"))
            h.update(key)
            h.update(_digest_value(value))
            exp = s.get_expire(db, key)
            if exp != -1:
                h.update(b"!!expire!!" + str(exp).encode())
            total = _xor_into(total, h.digest())
    return total


@command("debug", -2, summary="Debugging and testing helpers.", **ADMIN)
def debug(c, argv):
    s = c.server
    mode = s.config["enable-debug-command"]
    if mode == "no" or (mode == "local" and not is_local_client(c)):
        raise ReplyError(
            "ERR DEBUG command not allowed. If the enable-debug-command option is set to \"local\", "
            "you can run it from a local connection, otherwise you need to set this option in the "
            "configuration file, and then restart the server.")
    sub = argv[1].lower()
    if sub == b"sleep" and len(argv) == 3:
        from shardkv.commands.common import float_arg
        secs = float_arg(argv[2])
        time.sleep(max(secs, 0))
        return OK
    if sub == b"set-active-expire" and len(argv) == 3:
        s.active_expire_enabled = int_arg(argv[2]) != 0
        return OK
    if sub == b"populate" and 3 <= len(argv) <= 5:
        count = int_arg(argv[2])
        if count < 0:
            raise ReplyError("ERR Invalid count")
        prefix = argv[3] if len(argv) >= 4 else b"key"
        size = int_arg(argv[4]) if len(argv) == 5 else None
        data = c.db.data
        for i in range(count):
            key = b"%s:%d" % (prefix, i)
            if key in data:
                continue
            val = b"value:%d" % i
            if size is not None:
                val = val[:size] + bytes(max(size - len(val), 0))
            data[key] = val
        return OK
    if sub == b"object" and len(argv) == 3:
        v = s.peek(c.db, argv[2])
        if v is None:
            raise ReplyError(errors.NO_SUCH_KEY)
        enc = value_encoding(v).decode()
        ser = len(v) if is_string(v) else 0
        idle = max(s.lru_clock - c.db.data.get_meta(argv[2], s.lru_clock), 0)
        return Status(f"Value at:0x0 refcount:1 encoding:{enc} serializedlength:{ser} lru:{s.lru_clock & 0xFFFFFF} lru_seconds_idle:{idle}".encode())
    if sub == b"digest" and len(argv) == 2:
        d = database_digest(s)
        return Status(b"0" * 40 if d == bytes(20) else d.hex().encode())
    if sub == b"digest-value":
        out = []
        for key in argv[2:]:
            v = s.peek(c.db, key)
            out.append(Status(b"0" * 40 if v is None else _digest_value(v).hex().encode()))
        return out
    if sub == b"reload":
        return _debug_reload(s, argv[2:])
    if sub == b"protocol" and len(argv) == 3:
        return _debug_protocol(c, argv[2].lower())
    if sub == b"jmap" or sub == b"gc":
        gc.collect()
        return OK
    if sub == b"help":
        return help_reply("DEBUG", [
            "SLEEP <seconds>", "SET-ACTIVE-EXPIRE <0|1>", "POPULATE <count> [<prefix>] [<size>]",
            "OBJECT <key>", "DIGEST", "DIGEST-VALUE <key> [<key> ...]", "PROTOCOL <type>",
            "RELOAD [MERGE] [NOFLUSH] [NOSAVE]",
        ])
    raise ReplyError(errors.subcommand_syntax(argv))


def _debug_reload(s, args):
    """DEBUG RELOAD [MERGE] [NOFLUSH] [NOSAVE]: saves the RDB file (unless
    NOSAVE), empties the databases (unless NOFLUSH) and loads the file back."""
    from shardkv._rdbcodec import RdbError
    opts = {a.lower() for a in args}
    if not opts <= {b"merge", b"noflush", b"nosave"}:
        raise ReplyError("ERR DEBUG RELOAD only supports the MERGE, NOFLUSH and NOSAVE options.")
    p = s.persistence
    if b"nosave" not in opts:
        try:
            p.save()
        except (OSError, RdbError):
            raise ReplyError("ERR") from None
    try:
        with open(p.rdb_path(), "rb") as f:
            snap = p.parse_rdb(f.read())
    except (OSError, RdbError) as e:
        s.log_warning(f"DEBUG RELOAD: cannot load the RDB file: {e}")
        raise ReplyError("ERR Error trying to load the RDB dump, check server logs.") from None
    if b"noflush" not in opts:
        for db in s.dbs:
            db.data.clear()
            db.expires.clear()
    p.apply_snapshot(snap, replace=False)
    return OK


def _debug_protocol(c, name):
    table = {
        b"string": b"Hello World",
        b"integer": 12345,
        b"double": 3.141,
        b"bignum": None,
        b"null": None,
        b"array": [0, 1, 2],
        b"set": _native.RespSet([0, 1, 2]),
        b"map": {0: False, 1: True, 2: False},
        b"attrib": None,
        b"push": None,
        b"true": True,
        b"false": False,
        b"verbatim": Verbatim(b"This is a verbatim\nstring"),
    }
    if name not in table:
        raise ReplyError("ERR Wrong protocol type name. Please use one of the following: "
                         "string|integer|double|bignum|null|array|set|map|attrib|push|verbatim|true|false")
    if name in (b"bignum", b"attrib", b"push"):
        raise ReplyError("ERR DEBUG PROTOCOL %s is not supported by shardkv" % name.decode())
    return table[name]

