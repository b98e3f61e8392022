"""HyperLogLog: PFADD PFCOUNT PFMERGE PFDEBUG PFSELFTEST over string values
holding Redis's own HLL bytes (the representation and the register work live
in the Cython module shardkv._hll, cython_ext/hll.pyx).

An HLL is a plain string, so SET/GET/DUMP see the very bytes Valkey would
hold. What this module keeps of Valkey's behaviour around those bytes:

* Valkey "unshares" the string before changing it (dbUnshareStringValue):
  an embstr or int string becomes raw even when nothing changes, without
  signalling the key. Here a bytes value becomes a bytearray, put back in
  place (c.db.data, which keeps TTL and LRU and signals nothing).
* PFCOUNT of one key with a stale cached cardinality writes the new value
  into the header: the key is signalled and the server dirtied, though the
  command is read-only, so that replicas and the AOF get the same bytes.
  Multi-key PFCOUNT merges into a temporary register set, changing nothing.
* PFADD and PFMERGE signal the key and raise the "pfadd" keyspace event;
  PFADD dirties once per changed register (plus one for a new key).
* The sparse code is only checked when read, with Valkey's error texts."""

from shardkv import errors
from shardkv.commands.common import OK, Status, is_string, notify
from shardkv.commands.table import command
from shardkv.errors import ReplyError

try:
    from shardkv import _hll
except ImportError as exc:  # pragma: no cover - a build without the extension
    raise SystemExit(
        "shardkv: the HyperLogLog extension (shardkv._hll) is missing or does not load "
        f"({exc}).\nBuild it with `pip install .` (or `SHARDKV_ONLY=_hll python setup.py "
        "build_ext --inplace` in a source checkout); Cython and a C compiler are needed."
    ) from None

GROUP = "hyperloglog"

WRONGTYPE_HLL = "WRONGTYPE Key is not a valid HyperLogLog string value."
INVALIDOBJ = "INVALIDOBJ Corrupted HLL object detected"
NO_SUCH_KEY = "ERR The specified key does not exist"
NOT_SPARSE = "ERR HLL encoding is not sparse"
SIMD_ARG = "ERR Argument must be ON or OFF"

# Valkey's default for hll-sparse-max-bytes, used until the directive is in
# shardkv/config.py.
DEFAULT_SPARSE_MAX_BYTES = 3000


def sparse_max_bytes(s):
    try:
        return s.config["hll-sparse-max-bytes"]
    except KeyError:
        return DEFAULT_SPARSE_MAX_BYTES


def check_hll(v):
    """Valkey's isHLLObjectOrReply: a string with a valid HLL header."""
    if not is_string(v):
        raise ReplyError(errors.WRONGTYPE)
    if not _hll.is_hll(v):
        raise ReplyError(WRONGTYPE_HLL)
    return v


def unshare(c, key, v):
    """The value as a bytearray that may be changed in place, put back under
    key without signalling it (Valkey's dbUnshareStringValue)."""
    if type(v) is not bytearray:
        v = bytearray(v)
        c.db.data[key] = v
    return v


def replace(c, key, old, new):
    if new is not old:
        c.db.data[key] = new


@command("pfadd", -2, flags="write denyoom fast", acl="write hyperloglog fast", keys=(1, 1, 1),
         specs=["RW insert: index 1, range 0 1 0"], group=GROUP, since="2.8.9",
         complexity="O(1) to add every element.",
         summary="Adds elements to the HyperLogLog at a key, creating it if needed; "
                 "1 if its estimate may have changed.")
def pfadd(c, argv):
    s, key = c.server, argv[1]
    v = s.lookup_write(c.db, key)
    updated = 0
    if v is None:
        v = _hll.empty()
        s.add_new(c.db, key, v)
        updated = 1
    else:
        v = unshare(c, key, check_hll(v))
    changed, new = _hll.add(v, argv[2:], sparse_max_bytes(s))
    replace(c, key, v, new)
    if changed < 0:
        # what was changed before the corrupt opcode stays, unsignalled
        raise ReplyError(INVALIDOBJ)
    updated += changed
    if updated:
        _hll.invalidate(new)
        s.touch(c.db, key)
        notify(c, "pfadd", key)
        s.dirty += updated
    return 1 if updated else 0


def union_registers(c, keys):
    """The register-wise maximum of the HLLs at keys (missing keys count as
    empty), and whether any of them is dense."""
    s = c.server
    raw = _hll.new_raw()
    any_dense = False
    for key in keys:
        v = s.lookup_read(c.db, key)
        if v is None:
            continue
        check_hll(v)
        any_dense = any_dense or _hll.is_dense(v)
        if not _hll.merge(raw, v):
            raise ReplyError(INVALIDOBJ)
    return raw, any_dense


@command("pfcount", -2, flags="readonly", acl="read hyperloglog slow", keys=(1, -1, 1),
         specs=["RW access: index 1, range -1 1 0 | RW because it may change the internal "
                "representation of the key, and propagate to replicas"], group=GROUP, since="2.8.9",
         complexity=("O(1) with a very small average constant time when called with a single key. "
                     "O(N) with N being the number of keys, and much bigger constant times, when "
                     "called with multiple keys."),
         summary="Estimates how many distinct elements the HyperLogLogs at the keys have seen together.")
def pfcount(c, argv):
    s = c.server
    if len(argv) > 2:
        raw, _ = union_registers(c, argv[1:])
        return _hll.raw_count(raw)
    key = argv[1]
    v = s.lookup_read(c.db, key)
    if v is None:
        return 0
    v = unshare(c, key, check_hll(v))
    card, recomputed = _hll.cardinality(v)
    if card < 0:
        raise ReplyError(INVALIDOBJ)
    if recomputed:
        # the cache in the header is part of the string: a write
        s.touch(c.db, key)
        s.dirty += 1
    return card


@command("pfmerge", -2, flags="write denyoom", acl="write hyperloglog slow", keys=(1, -1, 1),
         specs=["RW access insert: index 1, range 0 1 0", "RO access: index 2, range -1 1 0"],
         group=GROUP, since="2.8.9",
         complexity="O(N) to merge N HyperLogLogs, but with high constant times.",
         summary="Stores at the first key the union of the HyperLogLogs at all the keys.")
def pfmerge(c, argv):
    s, dest = c.server, argv[1]
    # the destination takes part in the union (and is checked with the rest)
    raw, use_dense = union_registers(c, argv[1:])
    v = s.lookup_write(c.db, dest)
    if v is None:
        v = _hll.empty()
        s.add_new(c.db, dest, v)
    else:
        v = unshare(c, dest, v)
    new = _hll.store_merged(v, raw, use_dense, sparse_max_bytes(s))
    if new is None:
        raise ReplyError(INVALIDOBJ)
    replace(c, dest, v, new)
    s.touch(c.db, dest)
    # Valkey raises "pfadd" for a merge: it is a mass add
    notify(c, "pfadd", dest)
    s.dirty += 1
    return OK


def pfdebug_simd(c, arg):
    """PFDEBUG SIMD ON|OFF. shardkv's register code has no SIMD path, so it
    always answers "disabled". A bad argument gets Valkey's two replies: the
    error, then the status."""
    mode = arg.lower()
    if mode not in (b"on", b"off"):
        s = c.server
        s.stat_total_error_replies += 1
        s.error_stats["ERR"] = s.error_stats.get("ERR", 0) + 1
        c.out.add_error(SIMD_ARG)
    return Status(b"disabled")


@command("pfdebug", 3, flags="write denyoom admin", acl="write hyperloglog admin slow dangerous",
         keys=(2, 2, 1), specs=["RW access: index 2, range 0 1 0"], group=GROUP, since="2.8.9",
         complexity="N/A",
         summary="Inspects or converts the HyperLogLog at a key (GETREG, DECODE, ENCODING, TODENSE), "
                 "for debugging.")
def pfdebug(c, argv):
    s, sub, key = c.server, argv[1], argv[2]
    name = sub.lower()
    if name == b"simd":
        return pfdebug_simd(c, argv[2])
    v = s.lookup_write(c.db, key)
    if v is None:
        raise ReplyError(NO_SUCH_KEY)
    v = unshare(c, key, check_hll(v))
    if name == b"getreg":
        if not _hll.is_dense(v):
            v = convert_to_dense(c, key, v)
        return _hll.registers(v)
    if name == b"decode":
        if _hll.is_dense(v):
            raise ReplyError(NOT_SPARSE)
        return _hll.decode(v)
    if name == b"encoding":
        return Status(b"dense" if _hll.is_dense(v) else b"sparse")
    if name == b"todense":
        if _hll.is_dense(v):
            return 0
        convert_to_dense(c, key, v)
        return 1
    # printed with %s by Valkey: the name ends at a NUL byte
    shown = sub.split(b"\0", 1)[0].decode("latin-1")
    raise ReplyError(f"ERR Unknown PFDEBUG subcommand '{shown}'")


def convert_to_dense(c, key, v):
    """Stores the dense form of a sparse HLL. Valkey dirties the server (to
    propagate the new encoding) but does not signal the key."""
    dense = _hll.to_dense(v)
    if dense is None:
        raise ReplyError(INVALIDOBJ)
    c.db.data[key] = dense
    c.server.dirty += 1
    return dense


@command("pfselftest", 1, flags="admin", acl="hyperloglog admin slow dangerous", group=GROUP,
         since="2.8.9", complexity="N/A",
         summary="Tests the HyperLogLog register code and estimator from inside the server.")
def pfselftest(c, argv):
    failure = _hll.selftest(sparse_max_bytes(c.server))
    if failure is not None:
        raise ReplyError("ERR " + failure)
    return OK
