"""Memory accounting and eviction, the Python half: what a value costs in this
process (the footprint the keyspace tables keep per entry, see keyspace.pxi),
the eviction directives wired to the core (maxmemory, maxmemory-policy,
maxmemory-samples, maxmemory-eviction-tenacity, lfu-log-factor,
lfu-decay-time, maxmemory-clients), the cron's share (client buffers, peak,
eviction left over by the time limit, client eviction), and the numbers INFO
memory and MEMORY STATS/DOCTOR report. The eviction itself (the sampled pool,
the LRU/LFU access words, the gate's OOM check) is compiled: it runs before
every command while maxmemory is set.

used_memory is an estimate kept by counters, not a measure: a fixed start-up
figure (STARTUP_BYTES) plus the size of every entry of the data tables as
allocated by CPython (bytes objects exactly, collections from their
containers' sizes and a sample of their elements), the hash tables' buckets,
the expiry entries and the client buffers. Redis's used_memory counts what it
allocates, and starts under 1 MB; the Python interpreter a worker starts with
(about 30 MB resident: libpython, the modules, the command table) is no
allocation a user's data asked for, so it is left out the same way, and a
maxmemory chosen for redis-server leaves shardkv the same room for data. That
memory stays visible: used_memory_rss is the real resident size, and
mem_fragmentation_ratio is rss / used_memory, as in Redis (large on an almost
empty server, for both). MEMORY DOCTOR judges the growth of RSS since start-up
against the growth of used_memory instead."""

from __future__ import annotations

import resource
import sys
from itertools import islice

from shardkv.native import _native

getsizeof = sys.getsizeof
POLICIES = _native.MAXMEMORY_POLICIES
ENTRY_BYTES = 32          # an Entry struct (key, value, next, metadata word)
EXPIRE_ENTRY_BYTES = 32   # its twin in the expires table
SAMPLES = 5               # elements measured per collection, as Redis's MEMORY USAGE
# used_memory_startup: about what redis-server 7.0 reports at start (876,128
# bytes on Debian's build), see the module's comment
STARTUP_BYTES = 880 * 1024


def rss_bytes():
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize()
    except OSError:
        return 0


# ---------------------------------------------------------------- footprints
def _alloc(x):
    """getsizeof(x) as the allocator rounds it (16-byte classes; glibc's
    8-byte header above pymalloc's 512-byte limit)."""
    n = getsizeof(x)
    return (n + 15) & ~15 if n <= 512 else (n + 23) & ~15


def _int_cost(v):
    # ints from -5 to 256 are shared objects
    return _alloc(v) if type(v) is int and not -5 <= v <= 256 else 0


def _sample_avg(it, n, measure):
    """The mean of measure() over the first n items of it (0 if none)."""
    total = count = 0
    for x in islice(it, n):
        total += measure(x)
        count += 1
    return total / count if count else 0


def _hash_fp(v, samples):
    d = v.d
    n = len(d)
    size = getsizeof(v) + getsizeof(d)
    if n:
        size += n * _sample_avg(iter(d.items()), samples or n, lambda kv: _alloc(kv[0]) + _alloc(kv[1]))
    if v.ttl:
        size += getsizeof(v.ttl) + len(v.ttl) * 32
    if v._heap:
        size += getsizeof(v._heap) + len(v._heap) * 88
    if v._flist:
        size += getsizeof(v._flist)
    return size


def _set_fp(v, samples):
    d = v.d
    n = len(d)
    size = getsizeof(v) + getsizeof(d)
    if n:
        size += n * _sample_avg(iter(d.items()), samples or n,
                                lambda kv: _alloc(kv[0]) + _int_cost(kv[1]))
    if v.arr is not None:
        size += getsizeof(v.arr)
    if v._sorted is not None:
        size += getsizeof(v._sorted)
    return size


def _zset_fp(v, samples):
    d = v.d
    n = len(d)
    # the dict member -> score, and the sorted list of (score, member) pairs
    # (a tuple, a float and a pointer each)
    size = getsizeof(v) + getsizeof(d) + 200
    if n:
        size += n * (_sample_avg(iter(d), samples or n, _alloc) + 32 + 64 + 8)
    return size


def _list_fp(v, samples):
    nodes = v.nodes
    size = getsizeof(v) + getsizeof(nodes)
    if nodes:
        first = nodes[0]
        size += len(nodes) * (getsizeof(first) - 8 * len(first))
        if v.count:
            size += v.count * (8 + _sample_avg(iter(first), samples or len(first), _alloc))
    return size


def _stream_fp(v, samples):
    # Valkey's layout estimate (listpacks, radix tree, PELs), plus what this
    # process adds per entry: a bytes object per payload, its list slot, two
    # 8-byte id slots, and per node the arrays and the list
    return v.memory_usage() + len(v) * (33 + 8 + 16) + len(v.nodes) * 400


def _footprints():
    from shardkv.types.hash import Hash
    from shardkv.types.set import SetValue
    from shardkv.types.stream import StreamValue
    from shardkv.types.zset import ZSetValue
    return {Hash: _hash_fp, SetValue: _set_fp, ZSetValue: _zset_fp,
            _native.ListValue: _list_fp, StreamValue: _stream_fp}


FOOTPRINTS = {}


def footprint(v, samples=SAMPLES):
    """The bytes a value takes in this process: exact for strings, for
    collections their containers plus `samples` elements measured and scaled
    to all of them (0: every element)."""
    t = type(v)
    if t is bytes:
        return _alloc(v)
    if t is bytearray:
        return getsizeof(v)
    if not FOOTPRINTS:
        FOOTPRINTS.update(_footprints())
    fn = FOOTPRINTS.get(t)
    try:
        if fn is not None:
            return int(fn(v, samples))
        if hasattr(v, "memory_usage"):
            return v.memory_usage()
    except Exception:
        # a measure must never make the write that triggered it fail
        import logging
        logging.getLogger("shardkv").exception("measuring a %s failed", t.__name__)
    return getsizeof(v)


def entry_footprint(key, v, samples=SAMPLES):
    """What MEMORY USAGE reports: the value, the key, the entry linking them."""
    return footprint(v, samples) + _alloc(key) + ENTRY_BYTES


_native.set_footprint_function(footprint)


# ---------------------------------------------------------------- wiring
DIRECTIVES = ("maxmemory", "maxmemory-policy", "maxmemory-samples", "maxmemory-eviction-tenacity",
              "lfu-log-factor", "lfu-decay-time", "maxmemory-clients", "replica-ignore-maxmemory")


def install(server):
    """Connects a server to the eviction directives, sets the start-up base
    of used_memory and notes the process's resident size before any data
    (for MEMORY DOCTOR)."""
    server.mem_startup = STARTUP_BYTES
    server.mem_peak = server.mem_startup
    server.rss_startup = rss_bytes()
    server.config.listeners.append(lambda name, value, old: config_changed(server, name, value, old))
    for name in DIRECTIVES:
        config_changed(server, name, server.config[name], None)


def config_changed(server, name, value, old):
    if name == "maxmemory":
        server.maxmemory = value
        server.mem_checked_dirty = -1
        if value:
            # as Redis's eviction timer: the cron frees what it can when the
            # limit drops, and the gate before the next command
            server.evicting = True
    elif name == "maxmemory-policy":
        # keys keep their access words: after a switch between LRU and LFU
        # they read as noise until accessed again, as in Redis
        server.maxmemory_policy = POLICIES[value]
        server.lfu_mode = "lfu" in value
        server.clear_eviction_pool()
    elif name == "maxmemory-samples":
        server.maxmemory_samples = value
    elif name == "maxmemory-eviction-tenacity":
        server.eviction_tenacity = value
    elif name == "lfu-log-factor":
        server.lfu_log_factor = value
    elif name == "lfu-decay-time":
        server.lfu_decay_time = value


def lfu_enabled(server):
    return server.lfu_mode


def maxmemory_clients_limit(server):
    """maxmemory-clients in bytes (a percentage is of maxmemory); 0: none."""
    v = server.config["maxmemory-clients"]
    if v < 0:
        return server.maxmemory * -v // 100
    return v


def cron(server):
    """Once per cron tick: client buffers, pending re-measures, the peak,
    eviction the time limit cut short, and client eviction."""
    server.refresh_client_memory()
    server.mem_checked_dirty = -1        # the client buffers moved: the gate sums again
    if server.size_pending:
        server.drain_size_pending()
    used = server.used_memory_estimate()
    if used > server.mem_peak:
        server.mem_peak = used
    if server.maxmemory and server.evicting and not server.is_replica:
        server.perform_evictions()
    limit = maxmemory_clients_limit(server)
    if limit:
        evict_clients(server, limit)


NO_EVICT = _native.CLIENT_FLAGS["NO_EVICT"]
MASTER = _native.CLIENT_FLAGS["MASTER"]
REPLICA = _native.CLIENT_FLAGS["REPLICA"]


def client_memory(c):
    return c.buffers_memory


def evict_clients(server, limit):
    """maxmemory-clients: while the clients' buffers together exceed the
    limit, closes the client using the most (never one with CLIENT NO-EVICT
    on, nor a primary or replica link)."""
    total = server.mem_clients
    if total <= limit:
        return 0
    candidates = sorted((c for c in server.clients.values()
                         if not c.flags & (NO_EVICT | MASTER | REPLICA)),
                        key=client_memory, reverse=True)
    closed = 0
    for c in candidates:
        if total <= limit:
            break
        total -= client_memory(c)
        server.log_warning(f"Evicting client: id={c.id} addr={c.addr} (client-eviction)")
        server.close_client(c)
        server.stat_evicted_clients += 1
        closed += 1
    server.refresh_client_memory()
    return closed


# ---------------------------------------------------------------- reports
def human_bytes(n):
    for unit, size in (("G", 1024**3), ("M", 1024**2), ("K", 1024)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return f"{n}B"


def overhead(server):
    """Bytes that are not the entries themselves: the base, the buckets,
    the expiry entries, the client buffers."""
    total = server.mem_startup + server.mem_clients
    for db in server.dbs:
        total += 8 * db.data.buckets_count + db.expires.memory
    return total


def info_memory(server):
    if server.size_pending:
        server.drain_size_pending()
    used = server.used_memory_estimate()
    rss = rss_bytes()
    peak = max(server.mem_peak, used)
    server.mem_peak = peak
    over = overhead(server)
    dataset = max(used - over, 0)
    maxmem = server.maxmemory
    scripts = getattr(getattr(server, "scripting", None), "memory", 0) or 0
    return [
        ("used_memory", str(used)),
        ("used_memory_human", human_bytes(used)),
        ("used_memory_rss", str(rss)),
        ("used_memory_rss_human", human_bytes(rss)),
        ("used_memory_peak", str(peak)),
        ("used_memory_peak_human", human_bytes(peak)),
        ("used_memory_peak_perc", f"{100.0 * used / peak:.2f}%" if peak else "100.00%"),
        ("used_memory_overhead", str(over)),
        ("used_memory_startup", str(server.mem_startup)),
        ("used_memory_dataset", str(dataset)),
        ("used_memory_dataset_perc", f"{100.0 * dataset / max(used - server.mem_startup, 1):.2f}%"),
        ("allocator_allocated", str(used)),
        ("allocator_resident", str(rss)),
        ("total_system_memory", str(_total_system_memory())),
        ("total_system_memory_human", human_bytes(_total_system_memory())),
        ("used_memory_lua", str(scripts)),
        ("used_memory_scripts", "0"),
        ("maxmemory", str(maxmem)),
        ("maxmemory_human", human_bytes(maxmem)),
        ("maxmemory_policy", server.config["maxmemory-policy"]),
        ("maxmemory_clients", str(maxmemory_clients_limit(server))),
        ("mem_fragmentation_ratio", f"{rss / used:.2f}" if used else "1.00"),
        ("mem_fragmentation_bytes", str(rss - used)),
        ("mem_not_counted_for_evict", "0"),
        ("mem_clients_slaves", "0"),
        ("mem_clients_normal", str(server.mem_clients)),
        ("mem_aof_buffer", "0"),
        ("mem_allocator", "pymalloc"),
        ("lazyfree_pending_objects", "0"),
    ]


def _total_system_memory():
    try:
        import os
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 0


def memory_stats(server):
    """MEMORY STATS, from the same counters as INFO memory."""
    if server.size_pending:
        server.drain_size_pending()
    used = server.used_memory_estimate()
    rss = rss_bytes()
    peak = max(server.mem_peak, used)
    over = overhead(server)
    keys = sum(len(db.data) for db in server.dbs)
    out = {
        b"peak.allocated": peak,
        b"total.allocated": used,
        b"startup.allocated": server.mem_startup,
        b"replication.backlog": 0,
        b"clients.slaves": 0,
        b"clients.normal": server.mem_clients,
        b"cluster.links": 0,
        b"aof.buffer": 0,
        b"lua.caches": 0,
        b"functions.caches": 0,
    }
    for db in server.dbs:
        if len(db.data):
            out[b"db.%d" % db.id] = {
                b"overhead.hashtable.main": 8 * db.data.buckets_count + ENTRY_BYTES * len(db.data),
                b"overhead.hashtable.expires": db.expires.memory,
            }
    out[b"overhead.total"] = over
    out[b"keys.count"] = keys
    out[b"keys.bytes-per-key"] = (used - server.mem_startup) // keys if keys else 0
    out[b"dataset.bytes"] = max(used - over, 0)
    out[b"dataset.percentage"] = 100.0 * max(used - over, 0) / max(used - server.mem_startup, 1)
    out[b"peak.percentage"] = 100.0 * used / max(peak, 1)
    out[b"allocator.allocated"] = used
    out[b"allocator.resident"] = rss
    out[b"fragmentation"] = rss / used if used else 1.0
    out[b"fragmentation.bytes"] = rss - used
    return out


def memory_doctor(server):
    """MEMORY DOCTOR's diagnosis, in the spirit of Redis's: too small to
    say, or the problems seen (peak far above current use, fragmentation,
    big client buffers, over maxmemory)."""
    stats = memory_stats(server)
    used = stats[b"total.allocated"]
    if used - server.mem_startup < 5 * 1024 * 1024:
        return ("Hi Sam, this instance is empty or is using very little memory, my issues detector "
                "can't be used in these conditions. Please, leave for your mission on Earth and fill "
                "it with some data. The new Sam and I will be back to our programming as soon as I "
                "finished rebooting.")
    notes = []
    if stats[b"peak.allocated"] > used * 3 // 2:
        notes.append(" * Peak memory: In the past this instance used more than 150% the memory "
                     "that is currently using. The allocator is normally not able to release memory "
                     "after a peak, so you can expect to see a big fragmentation ratio.")
    # the interpreter's start-up memory is no fragmentation: compare growths
    grown_rss = stats[b"allocator.resident"] - getattr(server, "rss_startup", 0)
    grown_used = used - server.mem_startup
    if grown_rss > 1.4 * grown_used and grown_rss - grown_used > 10 * 1024 * 1024:
        notes.append(f" * High process RSS overhead: since start-up the resident size grew "
                     f"{grown_rss / max(grown_used, 1):.2f} times as much as the memory counted as used "
                     "(allocator overhead, freed memory the allocator keeps).")
    big = [c for c in server.clients.values() if client_memory(c) > 8 * 1024 * 1024]
    if big:
        notes.append(f" * Big client buffers: {len(big)} client(s) use more than 8 MB of query "
                     "or output buffers.")
    if server.maxmemory and used > server.maxmemory:
        notes.append(" * Over maxmemory: used_memory is above maxmemory and "
                     f"the policy ({server.config['maxmemory-policy']}) cannot bring it down.")
    if not notes:
        return "Hi Sam, I can't find any memory issue in your instance. I can only account for what occurs on this base."
    return "Sam, I detected a few issues in this instance memory implants:\n\n" + "\n\n".join(notes) + \
        "\n\nI'm here to keep you safe, Sam. I want to help you.\n"
