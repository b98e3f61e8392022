"""The RDB format at the record level: which type byte each value is saved
as, how a whole snapshot is laid out, and how one is read back. The bytes
of each encoding (lengths, strings, LZF, listpacks, intsets, CRC64) are
shardkv._rdbcodec's; this module decides what to write and rebuilds values.

Files are written as Redis 7.0 writes them ("REDIS0010"), so that
redis-server 7.0, redis-check-rdb and Valkey all load them: strings (integer
or LZF encodings), lists as QUICKLIST_2 of listpacks, intset-encoded sets as
INTSET and the other sets as SET (RDB 10 has no listpack sets; the loader
gives them back their listpack encoding), hashes as LISTPACK or HASH, sorted
sets as ZSET_LISTPACK or ZSET_2, streams as STREAM_LISTPACKS_2 (one listpack per
node, as Redis lays them out, consumer groups and their pending entries).
A hash with field TTLs can only be written as Valkey 9's HASH_2 type, which
needs Valkey's own format: a snapshot that holds one is written as Valkey
9.1 writes it ("VALKEY080", where listpack sets are SET_LISTPACK and
streams STREAM_LISTPACKS_3, with the consumers' active times), and a DUMP
of such a hash carries RDB version 80.

Loading accepts Redis RDB 1-11 and Valkey's 80/81 files, with every
encoding Redis 7 may have written (ziplists, intsets, quicklists v1 and v2,
listpacks). Values get the encoding Valkey would give them when loading
(the size thresholds of the config), so OBJECT ENCODING agrees. Nothing of
the server is touched until the whole file has been read and checked."""

from __future__ import annotations

import math
import time

from shardkv import REDIS_VERSION
from shardkv._rdbcodec import (RdbError, Reader, Writer, crc64, intset_decode, intset_encode,
                               listpack_decode, listpack_encode, ziplist_decode)
from shardkv.native import _native
from shardkv.types.hash import Hash
from shardkv.types.list import FILL_MAX, ListValue, Node, exceeds_limit
from shardkv.types.set import HASHTABLE, INTSET, LISTPACK, SetValue, intset_limit

from shardkv.types import stream as st
from shardkv.types.zset import ZSetValue

RDB_VERSION = 10            # what redis-server 7.0 writes and the newest it reads
VALKEY_RDB_VERSION = 80     # Valkey 9.0/9.1: needed for hash field TTLs
MAX_LOADABLE_REDIS = 11
VALKEY_VERSIONS = (80, 81)

# object types
T_STRING, T_LIST, T_SET, T_ZSET, T_HASH, T_ZSET_2 = 0, 1, 2, 3, 4, 5
T_MODULE_PRE_GA, T_MODULE_2 = 6, 7
T_HASH_ZIPMAP, T_LIST_ZIPLIST, T_SET_INTSET, T_ZSET_ZIPLIST, T_HASH_ZIPLIST = 9, 10, 11, 12, 13
T_LIST_QUICKLIST, T_STREAM_LISTPACKS, T_HASH_LISTPACK, T_ZSET_LISTPACK = 14, 15, 16, 17
T_LIST_QUICKLIST_2, T_STREAM_LISTPACKS_2, T_SET_LISTPACK, T_STREAM_LISTPACKS_3 = 18, 19, 20, 21
T_HASH_2 = 22

# opcodes
OP_SLOT_INFO = 244
OP_FUNCTION2 = 245
OP_FUNCTION_PRE_GA = 246
OP_MODULE_AUX = 247
OP_IDLE = 248
OP_FREQ = 249
OP_AUX = 250
OP_RESIZEDB = 251
OP_EXPIRETIME_MS = 252
OP_EXPIRETIME = 253
OP_SELECTDB = 254
OP_EOF = 255

QUICKLIST_PLAIN, QUICKLIST_PACKED = 1, 2
CHUNK = 1 << 20             # bytes buffered before a write to the file


class EmptyKey(RdbError):
    """A value with no elements (Redis skips such keys when loading)."""


class Limits:
    """The encoding thresholds of the config, read once per load."""

    __slots__ = ("set", "hash_entries", "hash_value", "zset", "list_fill")

    def __init__(self, config=None):
        g = (lambda name, default: config[name]) if config is not None else (lambda name, default: default)
        self.set = (g("set-max-intset-entries", 512), g("set-max-listpack-entries", 128),
                    g("set-max-listpack-value", 64))
        self.hash_entries = g("hash-max-listpack-entries", 512)
        self.hash_value = g("hash-max-listpack-value", 64)
        self.zset = (g("zset-max-listpack-entries", 128), g("zset-max-listpack-value", 64))
        self.list_fill = g("list-max-listpack-size", -2)


# ================================================================ writing

def format_score(d):
    """A score as a listpack holds it (Redis's d2string): integral values
    in +-2^52 as integers, infinities as inf/-inf, others in the shortest
    form that reads back to the same double."""
    if math.isinf(d):
        return b"inf" if d > 0 else b"-inf"
    if -4503599627370495 < d < 4503599627370496 and d == int(d):
        return b"%d" % int(d)
    return repr(d).encode()


def needs_valkey_format(value, now_ms):
    """True for a value only Valkey's RDB 80 can hold (a hash with live
    field TTLs)."""
    if type(value) is Hash and value.ttl:
        return any(w > now_ms for w in value.ttl.values())
    return False


def write_object(w, value, now_ms, key=None, v3=False):
    """Writes the type byte, the key (when given) and the value. Returns
    False, having written nothing, when there is nothing to write (a hash
    whose fields are all past their time). v3: the encodings of RDB 11 and
    later (listpack sets, STREAM_LISTPACKS_3), for Valkey-format files."""
    t = type(value)
    if t is bytes or t is bytearray:
        _head(w, T_STRING, key)
        w.write_string(value)
    elif t is ListValue:
        _head(w, T_LIST_QUICKLIST_2, key)
        nodes = value.nodes
        w.write_len(len(nodes))
        for node in nodes:
            if node.plain:
                w.write_len(QUICKLIST_PLAIN)
                w.write_string(node[0])
            else:
                w.write_len(QUICKLIST_PACKED)
                w.write_string(listpack_encode(node))
    elif t is SetValue:
        if value.enc == INTSET:
            _head(w, T_SET_INTSET, key)
            w.write_string(intset_encode(value.d.values()))
        elif value.enc == LISTPACK and v3:
            _head(w, T_SET_LISTPACK, key)
            w.write_string(listpack_encode(value.members()))
        else:
            _head(w, T_SET, key)
            members = value.members()
            w.write_len(len(members))
            w.write_strings(members)
    elif t is Hash:
        return _write_hash(w, value, now_ms, key)
    elif t is ZSetValue:
        _write_zset(w, value, key)
    elif t is st.StreamValue:
        _write_stream(w, value, key, v3)
    else:
        raise RdbError(f"cannot serialize a value of type {t.__name__}")
    return True


def _head(w, t, key):
    w.write_byte(t)
    if key is not None:
        w.write_string(key)


def _live_hash_fields(h, now_ms):
    """(field, value, expiry ms or -1) of the fields not past their time."""
    ttl = h.ttl
    if not ttl:
        return [(f, v, -1) for f, v in h.d.items()]
    out = []
    for f, v in h.d.items():
        when = ttl.get(f, -1)
        if when == -1 or when > now_ms:
            out.append((f, v, when))
    return out


def _write_hash(w, h, now_ms, key):
    fields = _live_hash_fields(h, now_ms)
    if not fields:
        return False
    if any(when != -1 for _, _, when in fields):
        _head(w, T_HASH_2, key)
        w.write_len(len(fields))
        for f, v, when in fields:
            w.write_string(f)
            w.write_string(v)
            w.write_ms(when)
    elif not h.ht:
        _head(w, T_HASH_LISTPACK, key)
        flat = []
        for f, v, _ in fields:
            flat.append(f)
            flat.append(v)
        w.write_string(listpack_encode(flat))
    else:
        _head(w, T_HASH, key)
        w.write_len(len(fields))
        for f, v, _ in fields:
            w.write_string(f)
            w.write_string(v)
    return True


def _write_zset(w, z, key):
    if z.encoding() == "listpack":
        _head(w, T_ZSET_LISTPACK, key)
        flat = []
        for m, sc in z.items():
            flat.append(m)
            flat.append(format_score(sc))
        w.write_string(listpack_encode(flat))
    else:
        _head(w, T_ZSET_2, key)
        items = z.items()
        w.write_len(len(items))
        # highest first, as Redis writes them (a loader inserting at the
        # head of a skiplist then never walks it)
        for m, sc in reversed(items):
            w.write_string(m)
            w.write_double(sc)


# ---------------------------------------------------------------- streams

def _id16(i):
    return i.to_bytes(16, "big")


def _stream_node_listpack(node):
    """A node as the listpack Redis keeps it: the master entry (live and
    deleted counts, master fields, a 0), then each entry: flags, ID
    differences from the master ID, values (or fields and values), and
    the entry's element count. shardkv keeps no payload for a deleted
    entry, so one is written with no fields (valid for every reader)."""
    master_ms, master_seq = node.key >> 64, node.key & st.U64
    fields = node.fields
    nf = len(fields)
    out = [node.live, node.deleted, nf]
    out.extend(fields)
    out.append(0)
    signed = st._signed64
    for j, blob in enumerate(node.vals):
        msd = signed(node.ms[j] - master_ms)
        seqd = signed(node.seq[j] - master_seq)
        if blob is None:
            out += [st.FLAG_DELETED, msd, seqd, 0, 4]
            continue
        flat = st._decode(blob, fields)
        if blob[0] == 0:
            out += [st.FLAG_SAMEFIELDS, msd, seqd]
            out.extend(flat[1::2])
            out.append(nf + 3)
        else:
            n = len(flat) // 2
            out += [0, msd, seqd, n]
            out.extend(flat)
            out.append(2 * n + 4)
    return listpack_encode(out)


def _write_stream(w, v, key, v3):
    _head(w, T_STREAM_LISTPACKS_3 if v3 else T_STREAM_LISTPACKS_2, key)
    w.write_len(len(v.nodes))
    for node in v.nodes:
        w.write_string(_id16(node.key))
        w.write_string(_stream_node_listpack(node))
    w.write_len(v.length)
    for i in (v.last_id, v.first_id, v.max_deleted):
        w.write_len(i >> 64)
        w.write_len(i & st.U64)
    w.write_len(v.entries_added)
    groups = v.groups or {}
    w.write_len(len(groups))
    for name, g in groups.items():
        w.write_string(name)
        w.write_len(g.last_id >> 64)
        w.write_len(g.last_id & st.U64)
        w.write_len(g.entries_read & st.U64)
        w.write_len(len(g.pel))
        for i, nack in g.pel.items():
            w.write_bytes(_id16(i))
            w.write_ms(nack.delivery_time)
            w.write_len(nack.delivery_count)
        w.write_len(len(g.consumers))
        for cname, cons in g.consumers.items():
            w.write_string(cname)
            w.write_ms(cons.seen_time)
            if v3:
                w.write_ms(cons.active_time)
            w.write_len(len(cons.pel))
            for i in cons.pel:
                w.write_bytes(_id16(i))


def _read_stream(r, t):
    v = st.StreamValue()
    n_nodes = _count(r)
    for _ in range(n_nodes):
        k = r.read_string()
        if len(k) != 16:
            raise RdbError("Stream node key entry is not the size of a stream ID")
        key = int.from_bytes(k, "big")
        lp = r.read_string()
        node = _stream_node_from_listpack(key, lp)
        if v.keys and key <= v.keys[-1]:
            raise RdbError("Stream node keys out of order")
        v.nodes.append(node)
        v.keys.append(key)
    v.length = r.read_len()
    last = (r.read_len() << 64) | r.read_len()
    v.last_id = last
    if t >= T_STREAM_LISTPACKS_2:
        v.first_id = (r.read_len() << 64) | r.read_len()
        v.max_deleted = (r.read_len() << 64) | r.read_len()
        v.entries_added = r.read_len()
    else:
        v.first_id = v.first_live_id() or 0
        v.max_deleted = 0
        v.entries_added = v.length
    if sum(node.live for node in v.nodes) != v.length:
        raise RdbError("Stream length does not match its entries")
    if v.nodes and v.nodes[-1].last_id() > last:
        raise RdbError("Stream entry ID greater than the last ID")
    n_groups = _count(r)
    if n_groups:
        v.groups = {}
    for _ in range(n_groups):
        name = r.read_string()
        g_last = (r.read_len() << 64) | r.read_len()
        entries_read = st.INVALID_ENTRIES_READ
        if t >= T_STREAM_LISTPACKS_2:
            entries_read = r.read_len()
            if entries_read == st.U64:
                entries_read = st.INVALID_ENTRIES_READ
        g = st.Group(g_last, entries_read)
        nacks = {}
        for _ in range(_count(r)):
            i = int.from_bytes(r.read_raw(16), "big")
            nack = st.Nack(None, r.read_ms())
            nack.delivery_count = r.read_len()
            if i in nacks:
                raise RdbError("Duplicated global PEL entry loading stream consumer group")
            nacks[i] = nack
        for _ in range(_count(r)):
            cname = r.read_string()
            cons = st.Consumer(cname, r.read_ms())
            cons.active_time = r.read_ms() if t >= T_STREAM_LISTPACKS_3 else -1
            for _ in range(_count(r)):
                i = int.from_bytes(r.read_raw(16), "big")
                nack = nacks.get(i)
                if nack is None or nack.consumer is not None:
                    raise RdbError("Consumer entry not found in group global PEL")
                nack.consumer = cons
                cons.pel[i] = nack
            if cname in g.consumers:
                raise RdbError("Duplicated consumer name in stream group")
            g.consumers[cname] = cons
        for i, nack in nacks.items():
            if nack.consumer is None:
                raise RdbError("Stream group PEL entry without a consumer")
            g.pel[i] = nack
        if name in v.groups:
            raise RdbError("Duplicated consumer group name")
        v.groups[name] = g
    return v


def _stream_node_from_listpack(key, lp):
    items = listpack_decode(lp)
    try:
        live, deleted, nf = int(items[0]), int(items[1]), int(items[2])
        if nf < 0 or 3 + nf >= len(items) or items[3 + nf] != b"0":
            raise RdbError("bad stream master entry")
        fields = items[3:3 + nf]
        node = st.Node(key, fields)
        master_ms, master_seq = key >> 64, key & st.U64
        p = 4 + nf
        n = len(items)
        while p < n:
            flags, msd, seqd = int(items[p]), int(items[p + 1]), int(items[p + 2])
            p += 3
            if flags & st.FLAG_SAMEFIELDS:
                values = items[p:p + nf]
                p += nf
                blob = st._encode(values, True)
            else:
                k = int(items[p])
                flat = items[p + 1:p + 1 + 2 * k]
                if k < 0 or len(flat) != 2 * k:
                    raise RdbError("bad stream entry")
                p += 1 + 2 * k
                blob = st._encode(flat, False)
            p += 1      # the entry's element count
            if p > n:
                raise RdbError("truncated stream entry")
            node.ms.append((master_ms + msd) & st.U64)
            node.seq.append((master_seq + seqd) & st.U64)
            if flags & st.FLAG_DELETED:
                node.vals.append(None)
                node.deleted += 1
            else:
                node.vals.append(blob)
                node.live += 1
    except (ValueError, IndexError):
        raise RdbError("Stream listpack integrity check failed") from None
    if not node.vals:
        raise RdbError("Empty listpack inside stream")
    if node.live != live or node.deleted != deleted:
        raise RdbError("Stream listpack counters do not match its entries")
    ids = [(a << 64) | b for a, b in zip(node.ms, node.seq, strict=True)]
    if ids[0] < key or any(x >= y for x, y in zip(ids, ids[1:], strict=False)):
        raise RdbError("Stream entry IDs out of order")
    # the node's byte accounting is the listpack's own size
    node.rest = len(lp) - st.lp_int_size(node.live) - st.lp_int_size(node.deleted)
    return node


def dump_payload(value, now_ms, compress=True):
    """DUMP's serialization: the value, a 2-byte RDB version, the CRC64."""
    w = Writer(compress, True)
    if not write_object(w, value, now_ms):
        return None
    version = VALKEY_RDB_VERSION if needs_valkey_format(value, now_ms) else RDB_VERSION
    w.write_bytes(version.to_bytes(2, "little"))
    body = w.take()
    return body + crc64(body).to_bytes(8, "little")


def _aux(w, key, value):
    w.write_byte(OP_AUX)
    w.write_string(key)
    w.write_string(value)


def write_snapshot(server, out, compress=True, checksum=True, aof_base=False, used_mem=0, aux=None):
    """Writes every database of server as an RDB file to out (anything
    with write()); aux: more aux fields (a replication snapshot's id and
    offset). Returns the number of keys written."""
    now_ms = _native.now_ms()
    dbs = [db for db in server.dbs if len(db.data)]
    valkey = _any_valkey_only(server, dbs, now_ms)
    w = Writer(compress, checksum)
    if valkey:
        w.write_bytes(b"VALKEY%03d" % VALKEY_RDB_VERSION)
        _aux(w, b"valkey-ver", b"9.1.0")
    else:
        w.write_bytes(b"REDIS%04d" % RDB_VERSION)
        _aux(w, b"redis-ver", REDIS_VERSION.encode())
    _aux(w, b"redis-bits", b"64")
    _aux(w, b"ctime", b"%d" % int(time.time()))
    _aux(w, b"used-mem", b"%d" % used_mem)
    _aux(w, b"aof-base", b"1" if aof_base else b"0")
    for key, value in (aux or {}).items():
        _aux(w, key, value)
    # function libraries, before the keys, as Valkey writes them
    engine = getattr(server, "_scripting", None)
    for lib in (engine.libraries.values() if engine is not None else ()):
        w.write_byte(OP_FUNCTION2)
        w.write_string(lib.code)
    written = 0
    for db in dbs:
        w.write_byte(OP_SELECTDB)
        w.write_len(db.id)
        w.write_byte(OP_RESIZEDB)
        w.write_len(len(db.data))
        w.write_len(len(db.expires))
        get_meta = db.expires.get_meta if len(db.expires) else None
        items = db.data.items()
        # strings in compiled code; the other types here
        rest = w.write_string_entries(items, get_meta, out.write, CHUNK)
        written += len(items) - len(rest)
        for key, value, when in rest:
            if type(value) is Hash and value.ttl and not _live_hash_fields(value, now_ms):
                continue
            if when >= 0:
                w.write_byte(OP_EXPIRETIME_MS)
                w.write_ms(when)
            write_object(w, value, now_ms, key, v3=valkey)
            written += 1
            if len(w) >= CHUNK:
                out.write(w.take())
    w.write_byte(OP_EOF)
    out.write(w.take())
    out.write(w.crc_value().to_bytes(8, "little"))
    return written


def _any_valkey_only(server, dbs, now_ms):
    """Whether a hash with field TTLs is about (then the file must be
    Valkey's format). The hash commands keep a registry of such keys, so
    this does not walk the keyspace."""
    from shardkv.commands.hashes import keys_with_volatile_items
    return any(keys_with_volatile_items(server, db) for db in dbs)


# ================================================================ reading

def parse_header(data):
    """(version, offset of the first record); RdbError if not an RDB file."""
    if data[:5] == b"REDIS" and len(data) >= 9:
        ver = data[5:9]
        if not ver.isdigit():
            raise RdbError("Wrong signature trying to load DB from file")
        version = int(ver)
        if version < 1 or version > MAX_LOADABLE_REDIS:
            raise RdbError(f"Can't handle RDB format version {version}")
        return version, 9
    if data[:6] == b"VALKEY" and len(data) >= 9:
        ver = data[6:9]
        if not ver.isdigit() or int(ver) not in VALKEY_VERSIONS:
            raise RdbError(f"Can't handle RDB format version {ver.decode('latin-1')}")
        return int(ver), 9
    raise RdbError("Wrong signature trying to load DB from file")


class Snapshot:
    """What a file holds: per database, (key, value, expire ms or -1) in
    file order, and the aux fields."""

    def __init__(self):
        self.dbs = {}
        self.aux = {}
        self.functions = []   # the code of each function library, in file order
        self.keys = 0
        self.expired_skipped = 0
        self.end = 0


def load_snapshot(data, limits=None, now_ms=None, databases=16, check_crc=True, skip_expired=True,
                  log=None):
    """Parses a whole RDB file (bytes). RdbError on anything wrong: a
    truncated file, a bad checksum, an unknown type, duplicate members."""
    limits = limits or Limits()
    now_ms = _native.now_ms() if now_ms is None else now_ms
    version, pos = parse_header(data)
    r = Reader(data, pos)
    snap = Snapshot()
    dbid = 0
    when = -1
    current = snap.dbs.setdefault(0, [])
    while True:
        if when == -1:
            before = len(current)
            snap.expired_skipped += r.read_string_records(current, now_ms, skip_expired)
            snap.keys += len(current) - before
        op = r.read_byte()
        if op == OP_EXPIRETIME_MS:
            when = r.read_ms()
            continue
        if op == OP_EXPIRETIME:
            when = r.read_i32le() * 1000
            continue
        if op == OP_SELECTDB:
            dbid = r.read_len()
            if dbid >= databases:
                raise RdbError(f"FATAL: Data file was created with a Redis server configured to handle "
                               f"more than {databases} databases. Exiting")
            current = snap.dbs.setdefault(dbid, [])
            continue
        if op == OP_RESIZEDB:
            r.read_len()
            r.read_len()
            continue
        if op == OP_AUX:
            k = r.read_string()
            snap.aux[k] = r.read_string()
            continue
        if op == OP_IDLE:
            r.read_len()
            continue
        if op == OP_FREQ:
            r.read_byte()
            continue
        if op == OP_SLOT_INFO:
            r.read_len()
            r.read_len()
            r.read_len()
            continue
        if op == OP_FUNCTION2:
            snap.functions.append(r.read_string())
            continue
        if op == OP_EOF:
            break
        if op in (OP_MODULE_AUX, OP_FUNCTION_PRE_GA):
            raise RdbError("module data and pre-release functions in RDB files are not supported")
        key = r.read_string()
        try:
            value = read_object(r, op, limits, now_ms, version)
        except EmptyKey:
            when = -1
            continue
        if skip_expired and when != -1 and when <= now_ms:
            snap.expired_skipped += 1
        else:
            current.append((key, value, when))
            snap.keys += 1
        when = -1
    snap.end = r.pos
    for empty in [d for d, entries in snap.dbs.items() if not entries]:
        del snap.dbs[empty]
    if version >= 5:
        expected = r.read_raw(8)
        if check_crc and expected != bytes(8):
            actual = crc64(memoryview(data)[:r.pos - 8])
            if actual.to_bytes(8, "little") != expected:
                raise RdbError("Wrong RDB checksum. Aborting now.")
    return snap


def check_dump_payload(payload):
    """The RDB version of a DUMP payload, or None if its footer is wrong
    (too short, a version we cannot read, a bad CRC64)."""
    if len(payload) < 10:
        return None
    version = int.from_bytes(payload[-10:-8], "little")
    if version > MAX_LOADABLE_REDIS and version not in VALKEY_VERSIONS:
        return None
    if crc64(memoryview(payload)[:-8]).to_bytes(8, "little") != payload[-8:]:
        return None
    return version


def restore_value(payload, version, limits, now_ms):
    """The value a verified DUMP payload holds; RdbError if it is malformed."""
    r = Reader(bytes(payload[:-10]))
    t = r.read_byte()
    value = read_object(r, t, limits, now_ms, version)
    return value


# ---------------------------------------------------------------- objects

def read_object(r, t, limits, now_ms, version):
    if t == T_STRING:
        return r.read_string()
    if t in (T_LIST, T_LIST_ZIPLIST, T_LIST_QUICKLIST):
        if t == T_LIST:
            items = r.read_strings(r.read_len())
        elif t == T_LIST_ZIPLIST:
            items = ziplist_decode(r.read_string())
        else:
            items = []
            for _ in range(_count(r)):
                items.extend(ziplist_decode(r.read_string()))
        return _list_from_items(items, limits)
    if t == T_LIST_QUICKLIST_2:
        return _read_quicklist2(r, limits)
    if t == T_SET:
        return _set_from_members(r.read_strings(r.read_len()), limits, from_set=True)
    if t == T_SET_INTSET:
        values = intset_decode(r.read_string())
        if not values:
            raise EmptyKey("empty intset")
        s = SetValue(INTSET if len(values) <= intset_limit(limits.set) else HASHTABLE)
        return _fill_set(s, [b"%d" % v for v in values])
    if t == T_SET_LISTPACK:
        members = listpack_decode(r.read_string())
        return _set_from_members(members, limits, from_set=False)
    if t in (T_HASH, T_HASH_2):
        n = _count(r)
        h = Hash()
        ttl = {}
        for _ in range(n):
            f = r.read_string()
            v = r.read_string()
            if t == T_HASH_2:
                when = r.read_ms()
                if when != -1:
                    if when <= now_ms:
                        continue
                    ttl[f] = when
            if f in h.d:
                raise RdbError("Duplicate hash fields detected")
            h.d[f] = v
        if t == T_HASH_2 and version < 80:
            raise RdbError("hash field TTLs in an RDB file older than version 80")
        return _finish_hash(h, ttl, limits, now_ms, force_ht=(t == T_HASH_2))
    if t in (T_HASH_LISTPACK, T_HASH_ZIPLIST):
        flat = (listpack_decode if t == T_HASH_LISTPACK else ziplist_decode)(r.read_string())
        if len(flat) % 2:
            raise RdbError("hash listpack with an odd number of entries")
        h = Hash()
        for i in range(0, len(flat), 2):
            if flat[i] in h.d:
                raise RdbError("Duplicate hash fields detected")
            h.d[flat[i]] = flat[i + 1]
        return _finish_hash(h, {}, limits, now_ms, force_ht=False)
    if t in (T_ZSET, T_ZSET_2, T_ZSET_LISTPACK, T_ZSET_ZIPLIST):
        pairs = []
        if t in (T_ZSET, T_ZSET_2):
            n = _count(r)
            for _ in range(n):
                m = r.read_string()
                sc = r.read_double() if t == T_ZSET_2 else r.read_string_double()
                pairs.append((m, sc))
        else:
            flat = (listpack_decode if t == T_ZSET_LISTPACK else ziplist_decode)(r.read_string())
            if len(flat) % 2:
                raise RdbError("zset listpack with an odd number of entries")
            for i in range(0, len(flat), 2):
                try:
                    sc = float(flat[i + 1])
                except ValueError:
                    raise RdbError("bad zset score") from None
                pairs.append((flat[i], sc))
        if not pairs:
            raise EmptyKey("empty sorted set")
        seen = set()
        for m, sc in pairs:
            if math.isnan(sc):
                raise RdbError("Zset with NAN score detected")
            if m in seen:
                raise RdbError("Duplicate zset fields detected")
            seen.add(m)
        return ZSetValue.for_result(pairs, limits.zset)
    if t in (T_STREAM_LISTPACKS, T_STREAM_LISTPACKS_2, T_STREAM_LISTPACKS_3):
        return _read_stream(r, t)
    if t == T_HASH_ZIPMAP:
        raise RdbError("zipmap-encoded hashes (Redis 2.x files) are not supported")
    if t in (T_MODULE_PRE_GA, T_MODULE_2):
        raise RdbError("module values are not supported")
    raise RdbError(f"Unknown RDB encoding type {t}")


def _count(r):
    n = r.read_len()
    if n > r.remaining:
        # every element takes at least one byte
        raise RdbError("Unexpected EOF reading RDB file")
    return n


def _list_from_items(items, limits):
    if not items:
        raise EmptyKey("empty list")
    lst = ListValue()
    lst.grow_check(limits.list_fill, sum(len(v) for v in items), len(items))
    for v in items:
        lst.push_tail(v)
    return lst


def _read_quicklist2(r, limits):
    n = _count(r)
    nodes = []
    count = 0
    for _ in range(n):
        container = r.read_len()
        raw = r.read_string()
        if container == QUICKLIST_PLAIN:
            nodes.append(Node.plain_node(raw))
            count += 1
        elif container == QUICKLIST_PACKED:
            items = listpack_decode(raw)
            if not items:
                continue            # Redis skips empty nodes
            nodes.append(Node.packed(items))
            count += len(items)
        else:
            raise RdbError(f"Quicklist integrity check failed: unknown container {container}")
    if not count:
        raise EmptyKey("empty list")
    lst = ListValue()
    lst.nodes = nodes
    lst.count = count
    lst.fill = max(min(limits.list_fill, FILL_MAX), -5)
    lst.quick = True
    # listTypeTryConvertQuicklist: one packed node within the node limit
    # is a listpack
    if len(nodes) == 1 and not nodes[0].plain and \
            not exceeds_limit(limits.list_fill, nodes[0].sz, count):
        lst.quick = False
    return lst


def _fill_set(s, members):
    never = (1 << 62, 1 << 62, 1 << 62)
    for m in members:
        if not s.add(m, never):
            raise RdbError("Duplicate set members detected")
    return s


def _set_from_members(members, limits, from_set):
    if not members:
        raise EmptyKey("empty set")
    n = len(members)
    intset_max, lp_entries, lp_value = limits.set
    if from_set:
        if n > intset_limit(limits.set):
            enc = HASHTABLE
        elif all(_native.parse_int(m) is not None for m in members):
            enc = INTSET
        elif n <= lp_entries and max(map(len, members)) <= lp_value:
            enc = LISTPACK
        else:
            enc = HASHTABLE
    else:
        enc = LISTPACK if n <= lp_entries else HASHTABLE
    return _fill_set(SetValue(enc), members)


def _finish_hash(h, ttl, limits, now_ms, force_ht):
    if not h.d:
        raise EmptyKey("empty hash")
    if force_ht or len(h.d) > limits.hash_entries or \
            any(len(f) > limits.hash_value or len(v) > limits.hash_value for f, v in h.d.items()):
        h.ht = True
    for f, when in ttl.items():
        h.set_expire(f, when, now_ms, False)
    return h
