"""Memory accounting and eviction in one server, without sockets: the size
estimate the keyspace keeps, maxmemory in the gate (OOM, every policy, the
eviction pool), the LRU and LFU access words behind OBJECT IDLETIME/FREQ,
and what an eviction tells the rest of the server (DEL in the feed,
"evicted" events, INFO stats)."""

import sys

import pytest

from shardkv import eviction
from shardkv.native import _native

OOM = b"-OOM command not allowed when used memory > 'maxmemory'.\r\n"


def _alloc(n):
    return (n + 15) & ~15 if n <= 512 else (n + 23) & ~15


def string_entry(key, value):
    """What the table counts for a string: the Entry, the key, the value."""
    return 32 + _alloc(33 + len(key)) + _alloc(33 + len(value))


def info_field(session, name):
    text = session.run("INFO", "all").decode()
    for line in text.split("\r\n"):
        if line.startswith(name + ":"):
            return line.split(":", 1)[1]
    raise KeyError(name)


def limit_to(server, session, extra, policy):
    """maxmemory `extra` bytes above what is used now."""
    session.run("CONFIG", "SET", "maxmemory-policy", policy)
    session.run("CONFIG", "SET", "maxmemory", str(server.used_memory_estimate() + extra))


# ---------------------------------------------------------------- accounting
def test_a_string_entry_is_counted_exactly_and_given_back(server, session):
    session.run("SET", "warm", "x")       # the first bucket array
    before = server.dataset_memory()
    session.run("SET", "key", "v" * 100)
    assert server.dataset_memory() - before == string_entry(b"key", b"v" * 100)
    session.run("SET", "key", "v" * 1000)
    assert server.dataset_memory() - before == string_entry(b"key", b"v" * 1000)
    session.run("DEL", "key")
    assert server.dataset_memory() == before


def test_in_place_changes_are_measured_again(server, session):
    session.run("RPUSH", "l", "a")
    session.run("INFO", "memory")            # drains the re-measures
    small = server.dbs[0].data.get_size(b"l")
    for _ in range(200):
        session.run("RPUSH", "l", "x" * 50)
    session.run("APPEND", "s", "abc")
    session.run("INFO", "memory")
    assert server.dbs[0].data.get_size(b"l") > small + 200 * 50
    session.run("SETRANGE", "s", "1000", "z")
    session.run("INFO", "memory")
    assert server.dbs[0].data.get_size(b"s") > 1000


def test_flushall_and_swapdb_keep_the_counters_right(server, session):
    base = server.dataset_memory()
    for i in range(100):
        session.run("SET", f"k{i}", "v" * i)
    session.run("HSET", "h", "f", "v")
    session.run("SELECT", "1")
    session.run("SET", "other", "x")
    session.run("SWAPDB", "0", "1")
    session.run("INFO")
    total = server.dataset_memory()
    session.run("FLUSHALL")
    assert server.dataset_memory() == base
    assert total > base


def test_memory_usage_is_the_counted_size(server, session):
    session.run("SET", "k", "v" * 300)
    assert session.run("MEMORY", "USAGE", "k") == b":%d\r\n" % server.dbs[0].data.get_size(b"k")
    for i in range(50):
        session.run("HSET", "h", f"field{i}", "value" * 3)
    session.run("INFO", "memory")
    exact = int(session.run("MEMORY", "USAGE", "h", "SAMPLES", "0")[1:-2])
    assert abs(exact - server.dbs[0].data.get_size(b"h")) < exact * 0.1
    assert session.run("MEMORY", "USAGE", "nokey") == b"$-1\r\n"
    assert session.run("MEMORY", "USAGE", "k", "SAMPLES", "-1").startswith(b"-ERR syntax")


def test_info_memory_adds_up(server, session):
    for i in range(1000):
        session.run("SET", f"k{i}", "x" * 100)
    used = int(info_field(session, "used_memory"))
    assert used == server.used_memory_estimate()
    assert int(info_field(session, "used_memory_dataset")) + int(info_field(session, "used_memory_overhead")) == used
    assert int(info_field(session, "used_memory_startup")) == server.mem_startup
    assert int(info_field(session, "used_memory_peak")) >= used
    assert info_field(session, "maxmemory_policy") == "noeviction"
    float(info_field(session, "mem_fragmentation_ratio"))


def test_memory_stats_and_doctor_answer(server, session):
    session.run("SET", "k", "v")
    stats = session.run("MEMORY", "STATS")
    assert b"total.allocated" in stats and b"dataset.bytes" in stats and b"keys.count" in stats
    assert b"Sam" in session.run("MEMORY", "DOCTOR")


# ---------------------------------------------------------------- OOM
def test_noeviction_refuses_denyoom_commands_and_serves_the_rest(server, session):
    session.run("SET", "k", "v")
    session.run("CONFIG", "SET", "maxmemory", "1")
    assert session.run("SET", "k2", "v") == OOM
    assert session.run("LPUSH", "l", "a") == OOM
    assert session.run("GET", "k") == b"$1\r\nv\r\n"
    assert session.run("DEL", "k") == b":1\r\n"       # DEL is not denyoom
    assert session.run("PING") == b"+PONG\r\n"
    assert "errorstat_OOM:count=2" in session.run("INFO", "errorstats").decode()
    session.run("CONFIG", "SET", "maxmemory", "0")
    assert session.run("SET", "k2", "v") == b"+OK\r\n"


def test_oom_inside_multi_aborts_the_transaction(server, session):
    session.run("CONFIG", "SET", "maxmemory", "1")
    assert session.run("MULTI") == b"+OK\r\n"
    assert session.run("GET", "k") == b"+QUEUED\r\n"   # reads queue (Valkey)
    assert session.run("SET", "k", "v") == OOM
    assert session.run("EXEC") == b"-EXECABORT Transaction discarded because of previous errors.\r\n"


def test_exec_of_a_queued_write_is_refused_once_over_the_limit(server, session):
    session.run("MULTI")
    session.run("SET", "k", "v")
    server.maxmemory = 1                             # as another client's CONFIG SET would
    assert session.run("EXEC") == b"-EXECABORT Transaction discarded because of: " + OOM[1:]
    assert session.run("GET", "k") == b"$-1\r\n"


# ---------------------------------------------------------------- policies
def fill(session, n, prefix="k", size=200, ttl=None):
    for i in range(n):
        if ttl is None:
            session.run("SET", f"{prefix}{i}", "x" * size)
        else:
            session.run("SET", f"{prefix}{i}", "x" * size, "EX", str(ttl(i)))


@pytest.mark.parametrize("policy", ["allkeys-lru", "allkeys-lfu", "allkeys-random",
                                    "volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl"])
def test_each_policy_stays_within_the_limit(server, session, policy):
    limit_to(server, session, 200_000, policy)
    for i in range(3000):
        if policy.startswith("volatile"):
            session.run("SET", f"k{i}", "x" * (i % 500), "EX", "1000")
        else:
            session.run("SET", f"k{i}", "x" * (i % 500))
        # one write over the limit at most (and a hash table doubling: 8
        # bytes a bucket, in the data and the expires tables)
        db = server.dbs[0]
        slack = 1000 + 8 * (db.data.buckets_count + db.expires.buckets_count)
        assert server.used_memory_estimate() <= server.maxmemory + slack
    assert server.stat_evicted_keys > 0
    assert server.used_memory_estimate() > server.maxmemory - 20_000
    assert int(info_field(session, "evicted_keys")) == server.stat_evicted_keys


@pytest.mark.parametrize("policy", ["volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl"])
def test_volatile_policies_evict_only_keys_with_a_ttl(server, session, policy):
    fill(session, 200, prefix="keep")
    limit_to(server, session, 50_000, policy)
    fill(session, 500, prefix="vol", ttl=lambda i: 1000)
    for i in range(200):
        assert session.run("EXISTS", f"keep{i}") == b":1\r\n"
    assert server.stat_evicted_keys > 0
    # once no key has a TTL, writes are refused
    for i in range(500):
        session.run("PERSIST", f"vol{i}")
    assert session.run("SET", "more", "x" * 100_000) in (OOM, b"+OK\r\n")
    assert session.run("SET", "more2", "x" * 100) == OOM


def test_volatile_ttl_evicts_the_nearest_expiries(server, session):
    session.run("CONFIG", "SET", "maxmemory-samples", "10")
    limit_to(server, session, 60_000, "volatile-ttl")
    fill(session, 400, prefix="v", ttl=lambda i: 100_000 - i * 100)   # later keys expire sooner
    survivors = [i for i in range(400) if session.run("EXISTS", f"v{i}") == b":1\r\n"]
    assert server.stat_evicted_keys > 100
    # the survivors are mostly the early keys, which expire last
    assert sum(survivors) / len(survivors) < 150


def test_allkeys_lru_keeps_recently_read_keys(server, session):
    session.run("CONFIG", "SET", "maxmemory-samples", "10")
    limit_to(server, session, 200_000, "allkeys-lru")
    server.lru_clock = 1000
    fill(session, 500, prefix="cold")
    hot = [f"cold{i}" for i in range(0, 500, 10)]
    for second in range(1001, 1031):
        server.lru_clock = second
        for k in hot:
            session.run("GET", k)
        fill(session, 100, prefix=f"new{second}-")
    kept_hot = sum(session.run("EXISTS", k) == b":1\r\n" for k in hot)
    kept_cold = sum(session.run("EXISTS", f"cold{i}") == b":1\r\n" for i in range(500) if i % 10)
    assert kept_hot >= 48
    assert kept_cold < 20


def test_allkeys_lfu_keeps_frequently_read_keys(server, session):
    session.run("CONFIG", "SET", "maxmemory-samples", "10")
    limit_to(server, session, 200_000, "allkeys-lfu")
    fill(session, 500, prefix="k")
    hot = [f"k{i}" for i in range(0, 500, 10)]
    for _ in range(50):
        for k in hot:
            session.run("GET", k)
    fill(session, 3000, prefix="new")
    kept_hot = sum(session.run("EXISTS", k) == b":1\r\n" for k in hot)
    assert kept_hot >= 48
    assert server.stat_evicted_keys > 2000


def test_lru_tells_apart_reads_within_one_second(server, session):
    # Redis's idle times are whole seconds; the tenth kept beside them orders
    # keys read in the same second, and OBJECT IDLETIME still says seconds
    session.run("CONFIG", "SET", "maxmemory-policy", "allkeys-lru")
    fill(session, 10)
    server.lru_clock = 5000
    for tenth in range(10):
        server.lru_tenth = tenth
        session.run("GET", f"k{tenth}")
    assert session.run("OBJECT", "IDLETIME", "k0") == b":0\r\n"
    server.maxmemory = server.used_memory_estimate() - 1
    server.maxmemory_samples = 1000        # every key sampled (all but surely): the order is exact
    server.perform_evictions()
    assert session.run("EXISTS", "k0") == b":0\r\n"
    assert all(session.run("EXISTS", f"k{i}") == b":1\r\n" for i in range(1, 10))


def test_the_pool_stays_sorted_and_holds_at_most_16(server, session):
    fill(session, 300)
    session.run("CONFIG", "SET", "maxmemory-policy", "allkeys-lru")
    for i in range(300):
        server.dbs[0].data.set_meta(b"k%d" % i, (server.lru_clock - i) & 0xFFFFFF)
    server.maxmemory = 1
    server.maxmemory_samples = 10
    server.perform_evictions()
    pool = server.eviction_pool()
    assert len(pool) <= 16
    assert [p[0] for p in pool] == sorted(p[0] for p in pool)


# ---------------------------------------------------------------- LRU / LFU words
def test_object_freq_and_idletime_follow_the_policy(server, session):
    session.run("SET", "k", "v")
    assert session.run("OBJECT", "FREQ", "k").startswith(b"-ERR An LFU maxmemory policy is not selected")
    server.lru_clock = (server.lru_clock + 7) & 0xFFFFFF
    assert session.run("OBJECT", "IDLETIME", "k") == b":7\r\n"
    session.run("CONFIG", "SET", "maxmemory-policy", "allkeys-lfu")
    assert session.run("OBJECT", "IDLETIME", "k").startswith(b"-ERR An LFU maxmemory policy is selected")
    session.run("SET", "n", "v")
    assert session.run("OBJECT", "FREQ", "n") == b":5\r\n"      # LFU_INIT_VAL
    session.run("GET", "n")
    assert session.run("OBJECT", "FREQ", "n") == b":6\r\n"      # p = 1 at the initial value
    assert session.run("OBJECT", "FREQ", "missing") == b"$-1\r\n"


def test_lfu_counter_grows_logarithmically_and_decays(server, session):
    session.run("CONFIG", "SET", "maxmemory-policy", "allkeys-lfu")
    session.run("SET", "k", "v")
    for _ in range(1000):
        session.run("GET", "k")
    freq = int(session.run("OBJECT", "FREQ", "k")[1:-2])
    assert 13 <= freq <= 25        # lfu-log-factor 10: about 18 after 1000 hits
    server.lfu_minutes = (server.lfu_minutes + 3) & 0xFFFF
    assert int(session.run("OBJECT", "FREQ", "k")[1:-2]) == freq - 3
    session.run("CONFIG", "SET", "lfu-decay-time", "0")
    assert int(session.run("OBJECT", "FREQ", "k")[1:-2]) == freq


def test_lfu_counts_accesses_per_lookup_as_redis(server, session):
    # Redis counts an access per lookup and a new value keeps the old one's
    # counter: one for SET, SET EX, INCR, APPEND, two for SET GET and GETSET
    # (a read lookup, then a write one). The counts are redis-server 7.0's,
    # with lfu-log-factor 0 (every access increments).
    session.run("CONFIG", "SET", "maxmemory-policy", "allkeys-lfu")
    session.run("CONFIG", "SET", "lfu-log-factor", "0")
    session.run("SET", "k", "v")
    for argv, freq in ((("SET", "k", "v2"), 6), (("SET", "k", "v3", "EX", "100"), 7),
                       (("SET", "k", "v4", "GET"), 9), (("GETSET", "k", "v5"), 11),
                       (("APPEND", "k", "x"), 12), (("INCR", "n"), 5), (("INCR", "n"), 6)):
        session.run(*argv)
        assert session.run("OBJECT", "FREQ", argv[1]) == b":%d\r\n" % freq, argv


def test_lfu_log_incr_matches_the_probability():
    n = 20000
    # at counter 15 with factor 10 the probability is 1/101
    hits = sum(_native.lfu_log_incr_py(15, 10) == 16 for _ in range(n))
    assert 0.5 * n / 101 < hits < 1.6 * n / 101
    assert _native.lfu_log_incr_py(255, 10) == 255


def test_no_touch_client_leaves_the_lru_clock(server, session):
    session.run("SET", "k", "v")
    server.lru_clock = (server.lru_clock + 50) & 0xFFFFFF
    session.run("CLIENT", "NO-TOUCH", "on")
    session.run("GET", "k")
    session.run("CLIENT", "NO-TOUCH", "off")
    assert session.run("OBJECT", "IDLETIME", "k") == b":50\r\n"


# ---------------------------------------------------------------- what evictions tell
def test_evictions_are_propagated_as_del_outside_the_command(server, session, feed):
    fill(session, 50, size=1000)
    feed.clear()
    limit_to(server, session, -20_000, "allkeys-random")
    session.run("SET", "new", "v")
    data = b"".join(feed)
    assert data.count(b"$3\r\nDEL\r\n") == server.stat_evicted_keys > 0
    assert b"MULTI" not in data
    assert data.endswith(_native.py_encode_command([b"SET", b"new", b"v"]))


def test_evictions_raise_evicted_keyspace_events(server, session):
    listener = server.attach_client(_native.Client())
    session.run("CONFIG", "SET", "notify-keyspace-events", "Ee")
    server.run_argv(listener, [b"SUBSCRIBE", b"__keyevent@0__:evicted"])
    fill(session, 20, size=1000)
    limit_to(server, session, -5_000, "allkeys-lru")
    session.run("SET", "x", "y")
    out = listener.out.take()
    assert out.count(b"__keyevent@0__:evicted") == server.stat_evicted_keys > 0


def test_lowering_maxmemory_evicts_in_the_cron(server, session):
    fill(session, 200, size=500)
    session.run("CONFIG", "SET", "maxmemory-policy", "allkeys-random")
    session.run("CONFIG", "SET", "maxmemory", str(server.used_memory_estimate() - 50_000))
    assert server.stat_evicted_keys == 0
    eviction.cron(server)
    assert server.stat_evicted_keys >= 50_000 // 700
    assert server.used_memory_estimate() <= server.maxmemory


def test_tenacity_limits_the_time_spent_per_command(server, session):
    fill(session, 20000, size=10)
    session.run("CONFIG", "SET", "maxmemory-eviction-tenacity", "0")
    session.run("CONFIG", "SET", "maxmemory-policy", "allkeys-lru")
    server.maxmemory = server.mem_startup + 1000
    assert server.evict() == "running"
    assert server.evicting
    assert 16 <= server.stat_evicted_keys < 20000


def test_client_memory_counts_and_maxmemory_clients_evicts(server, session):
    other = server.attach_client(_native.Client())
    server.clients[other.id] = other
    server.clients[session.client.id] = session.client
    server.refresh_client_memory()
    assert server.mem_clients >= 2 * 16384
    session.run("CLIENT", "NO-EVICT", "on")
    session.run("CONFIG", "SET", "maxmemory-clients", str(session.client.buffers_memory + 1))
    assert session.run("CONFIG", "GET", "maxmemory-clients").endswith(b"\r\n")
    eviction.cron(server)
    assert other.id not in server.clients and session.client.id in server.clients
    assert server.stat_evicted_clients == 1
    session.run("CONFIG", "SET", "maxmemory-clients", "10%")
    assert session.run("CONFIG", "GET", "maxmemory-clients") == b"*2\r\n$17\r\nmaxmemory-clients\r\n$3\r\n10%\r\n"
    session.run("CONFIG", "SET", "maxmemory-clients", "0")


def test_footprint_of_collections_is_near_their_real_size():
    from shardkv.types.hash import Hash
    h = Hash()
    for i in range(1000):
        h.d[b"field%d" % i] = b"value%d" % i
    real = sys.getsizeof(h) + sys.getsizeof(h.d) + sum(sys.getsizeof(k) + sys.getsizeof(v) for k, v in h.d.items())
    assert abs(eviction.footprint(h) - real) < real * 0.15


def test_an_evicted_key_invalidates_client_side_caches(server):
    from commands.conftest import Session
    reader = Session(server, proto=3)
    writer = Session(server)
    server.clients[reader.client.id] = reader.client     # as a connected client is
    writer.run("SET", "cached", "v" * 1000)
    assert reader.run("CLIENT", "TRACKING", "on") == b"+OK\r\n"
    reader.run("GET", "cached")
    writer.run("CONFIG", "SET", "maxmemory-policy", "allkeys-lru")
    server.maxmemory = server.used_memory_estimate() - 100
    writer.run("SET", "x", "y")          # the gate evicts the only key
    assert server.stat_evicted_keys == 1
    out = reader.run("EXISTS", "cached")
    assert b">2\r\n$10\r\ninvalidate\r\n*1\r\n$6\r\ncached\r\n" in out
    assert out.endswith(b":0\r\n")
