"""maxmemory under load, on real server processes: a write load of random
sizes far beyond the limit, and what each policy keeps. Also how close
used_memory (an estimate kept by counters) stays to the process's real
growth in resident memory, and `shardkv start --maxmemory` splitting a
total over the shards. The measured numbers are printed (pytest -s)."""

import os
import random
import subprocess
import sys
import tempfile
import time

import pytest
import redis

pytestmark = pytest.mark.integration

OOM = "command not allowed when used memory > 'maxmemory'."
MB = 1024 * 1024


def used(r):
    return int(r.info("memory")["used_memory"])


def set_limit(r, extra, policy, samples=5):
    r.config_set("maxmemory-policy", policy)
    r.config_set("maxmemory-samples", samples)
    limit = used(r) + extra
    r.config_set("maxmemory", limit)
    return limit


def flood(r, total, prefix, rnd, ttl=None, batch=500, pace=None, between=None):
    """Writes about `total` bytes of values of random sizes (16 B to 4 KB)."""
    written = n = 0
    while written < total:
        p = r.pipeline(transaction=False)
        for _ in range(batch):
            size = rnd.randint(16, 4096)
            if ttl is None:
                p.set(f"{prefix}{n}", b"x" * size)
            else:
                p.set(f"{prefix}{n}", b"x" * size, ex=ttl(n))
            written += size
            n += 1
        p.execute(raise_on_error=False)
        if between is not None:
            between()
        if pace:
            time.sleep(pace)
    return n


def exists_each(r, keys):
    p = r.pipeline(transaction=False)
    for k in keys:
        p.exists(k)
    return p.execute()


@pytest.fixture
def server(start_shardkv):
    def start(policy="noeviction"):
        srv = start_shardkv(["--bind", "127.0.0.1", "--save", "", "--maxmemory-policy", policy])
        return srv, redis.Redis(port=srv.port)
    return start


@pytest.mark.parametrize("policy", ["allkeys-lru", "allkeys-lfu", "allkeys-random",
                                    "volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl"])
def test_policy_keeps_used_memory_at_the_limit(server, policy):
    srv, r = server()
    rnd = random.Random(policy)
    volatile = policy.startswith("volatile")
    # keys without a TTL, which volatile policies must never evict
    persistent = [f"keep{i}" for i in range(1000)]
    p = r.pipeline(transaction=False)
    for k in persistent:
        p.set(k, b"p" * 1000)
    p.execute()
    limit = set_limit(r, 8 * MB, policy)
    flood(r, 48 * MB, "k", rnd, ttl=(lambda i: 1000 + i % 5000) if volatile else None)
    info = r.info()
    u = int(info["used_memory"])
    print(f"\n{policy}: used_memory {u} maxmemory {limit} ({100.0 * (u - limit) / limit:+.2f}%) "
          f"evicted {info['evicted_keys']} keys {r.dbsize()}")
    assert u <= limit * 1.02
    assert u >= limit * 0.95
    assert info["evicted_keys"] > 5000
    kept = sum(exists_each(r, persistent))
    if volatile:
        assert kept == len(persistent)
    else:
        assert kept < len(persistent)


def test_allkeys_lru_keeps_recently_read_keys(server):
    srv, r = server()
    rnd = random.Random(1)
    p = r.pipeline(transaction=False)
    for i in range(2000):
        p.set(f"cold{i}", b"c" * 1000)
    for i in range(200):
        p.set(f"hot{i}", b"h" * 1000)
    p.execute()
    hot = [f"hot{i}" for i in range(200)]
    limit = set_limit(r, 8 * MB, "allkeys-lru", samples=10)
    time.sleep(1.1)      # the LRU clock counts seconds

    def read_hot():
        p = r.pipeline(transaction=False)
        for k in hot:
            p.get(k)
        p.execute()
    read_hot()
    # about 4 MB a second: keys written this second stay a minority
    flood(r, 12 * MB, "new", rnd, batch=250, pace=0.08, between=read_hot)
    hot_kept = sum(exists_each(r, hot))
    cold_kept = sum(exists_each(r, [f"cold{i}" for i in range(2000)]))
    print(f"\nallkeys-lru: hot kept {hot_kept}/200, cold kept {cold_kept}/2000, used {used(r)} limit {limit}")
    assert hot_kept >= 190
    assert cold_kept < 100


def test_allkeys_lfu_keeps_frequently_read_keys(server):
    srv, r = server()
    rnd = random.Random(2)
    p = r.pipeline(transaction=False)
    for i in range(2000):
        p.set(f"cold{i}", b"c" * 1000)
    for i in range(200):
        p.set(f"hot{i}", b"h" * 1000)
    p.execute()
    hot = [f"hot{i}" for i in range(200)]
    set_limit(r, 6 * MB, "allkeys-lfu", samples=10)
    for _ in range(30):
        p = r.pipeline(transaction=False)
        for k in hot:
            p.get(k)
        p.execute()
    flood(r, 32 * MB, "new", rnd)
    hot_kept = sum(exists_each(r, hot))
    freqs = [r.object("freq", k) for k in hot[:20] if r.exists(k)]
    print(f"\nallkeys-lfu: hot kept {hot_kept}/200, their OBJECT FREQ {min(freqs)}..{max(freqs)}")
    assert hot_kept >= 190


def test_volatile_ttl_evicts_the_nearest_expiries(server):
    srv, r = server()
    rnd = random.Random(3)
    set_limit(r, 8 * MB, "volatile-ttl", samples=10)
    ttls = {}

    def ttl(i):
        ttls[i] = rnd.randint(1000, 100000)
        return ttls[i]
    n = flood(r, 32 * MB, "v", rnd, ttl=ttl)
    alive = exists_each(r, [f"v{i}" for i in range(n)])
    kept = [ttls[i] for i in range(n) if alive[i]]
    gone = [ttls[i] for i in range(n) if not alive[i]]
    print(f"\nvolatile-ttl: kept {len(kept)} keys, mean TTL {sum(kept) / len(kept):.0f}s; "
          f"evicted {len(gone)}, mean TTL {sum(gone) / len(gone):.0f}s")
    # the late keys have not been sampled much yet; the early ones that
    # remain are those with the furthest expiries
    early = [ttls[i] for i in range(n // 2) if alive[i]]
    assert sum(early) / len(early) > 75000


def test_noeviction_refuses_writes_and_serves_reads(server):
    srv, r = server()
    r.set("first", "v")
    set_limit(r, 4 * MB, "noeviction")
    refused = 0
    for i in range(3000):
        try:
            r.set(f"k{i}", b"x" * 4000)
        except redis.ResponseError as e:
            assert str(e) == OOM
            refused += 1
    assert refused > 1500
    assert r.get("first") == b"v"
    assert r.info()["evicted_keys"] == 0
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        r.lpush("l", "a")
    r.delete("first")       # DEL frees memory without asking for any


def test_used_memory_tracks_the_real_growth_of_the_process(server):
    srv, r = server()
    rss0 = srv.rss_kb() * 1024
    u0 = used(r)
    rnd = random.Random(4)
    flood(r, 40 * MB, "grow", rnd)       # no limit: everything stays
    rss1 = srv.rss_kb() * 1024
    u1 = used(r)
    ratio = (u1 - u0) / (rss1 - rss0)
    print(f"\nno limit, 40 MB of values: used_memory grew {(u1 - u0) / MB:.1f} MB, "
          f"RSS grew {(rss1 - rss0) / MB:.1f} MB (used/RSS {ratio:.3f}); "
          f"used_memory {u1 / MB:.1f} MB vs RSS {rss1 / MB:.1f} MB")
    assert 0.9 < ratio < 1.1
    # at the limit: RSS stays bounded while far more is written
    r.flushall()
    limit = set_limit(r, 24 * MB, "allkeys-lru")
    flood(r, 160 * MB, "over", rnd)
    rss2 = srv.rss_kb() * 1024
    u2 = used(r)
    print(f"limit {limit / MB:.1f} MB after 160 MB written: used_memory {u2 / MB:.1f} MB, "
          f"RSS {rss2 / MB:.1f} MB (peak of the run {srv.peak_rss_kb() / 1024:.1f} MB)")
    assert u2 <= limit * 1.02
    assert rss2 <= rss1 * 1.1


def test_start_splits_maxmemory_over_the_shards():
    d = tempfile.mkdtemp(prefix="shardkv-evict-")
    with __import__("socket").socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(os.path.join(d, "log"), "w+")
    proc = subprocess.Popen([sys.executable, "-m", "shardkv", "start", "--shards", "2", "--replicas", "0", "--port", str(port),
                             "--worker-port", "0", "--dir", d, "--maxmemory", "64mb",
                             "--maxmemory-policy", "allkeys-lru"], stdout=log, stderr=subprocess.STDOUT)
    try:
        import json
        state = None
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                with open(os.path.join(d, f"shardkv-{port}.state.json")) as f:
                    state = json.load(f)
                if redis.Redis(port=port).ping():
                    break
            except (OSError, ValueError, redis.ConnectionError):
                pass
            time.sleep(0.1)
        assert state is not None
        workers = [p for p in state["processes"] if p["role"] == "primary"]
        assert len(workers) == 2
        for w in workers:
            wr = redis.Redis(port=w["port"])
            assert wr.config_get("maxmemory")["maxmemory"] == str(32 * MB)
            assert wr.config_get("maxmemory-policy")["maxmemory-policy"] == "allkeys-lru"
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_rss_stays_near_maxmemory_under_a_load_far_beyond_it(server):
    # used_memory leaves out the interpreter's start-up memory (as Redis's
    # leaves out its binary): what must stay near maxmemory is the growth
    srv, r = server()
    rss0 = srv.rss_kb() * 1024
    u0 = used(r)
    limit = set_limit(r, 24 * MB, "allkeys-lru")
    flood(r, 200 * MB, "over", random.Random(5))
    rss = srv.rss_kb() * 1024
    u = used(r)
    room, grown = limit - u0, rss - rss0
    print(f"\nfresh server, maxmemory {limit / MB:.1f} MB ({room / MB:.1f} MB above used_memory at start), "
          f"200 MB written: used_memory {u / MB:.1f} MB, RSS {rss / MB:.1f} MB, grown by {grown / MB:.1f} MB "
          f"({100.0 * (grown - room) / room:+.1f}% of the room), peak RSS {srv.peak_rss_kb() / 1024:.1f} MB")
    assert u <= limit * 1.02
    assert grown <= room * 1.15
