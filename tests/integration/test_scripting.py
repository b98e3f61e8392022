"""Scripts against a real server process: a runaway script makes other
clients get -BUSY and SCRIPT KILL / FUNCTION KILL stop it; redis-py's
Script objects and Lock (which run EVALSHA) work."""

import threading
import time

import pytest
import redis

pytestmark = pytest.mark.integration

BUSY = "Valkey is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."


def _run_in_thread(fn):
    out = {}

    def target():
        try:
            out["result"] = fn()
        except Exception as e:  # noqa: BLE001 - the test inspects it
            out["error"] = e
    t = threading.Thread(target=target)
    t.start()
    return t, out


def test_busy_then_script_kill(shardkv_port):
    r = redis.Redis(port=shardkv_port, socket_timeout=10)
    other = redis.Redis(port=shardkv_port, socket_timeout=10)
    other.ping()
    t, out = _run_in_thread(lambda: r.eval("local i = 0 while true do i = i + 1 end", 0))
    deadline = time.time() + 10
    while True:
        try:
            other.get("x")
            assert time.time() < deadline, "never busy"
            time.sleep(0.1)
        except redis.exceptions.BusyLoadingError:
            break
        except redis.ResponseError as e:
            assert BUSY in str(e)
            break
    assert other.script_kill()
    t.join(10)
    assert "Script killed by user with SCRIPT KILL." in str(out.get("error"))
    assert other.ping()


def test_unkillable_after_a_write(shardkv_port):
    r = redis.Redis(port=shardkv_port, socket_timeout=10)
    other = redis.Redis(port=shardkv_port, socket_timeout=10)
    other.ping()
    t, out = _run_in_thread(lambda: r.eval(
        "redis.call('set', 'w', '1') local t0 = redis.call('time')[1] "
        "while redis.call('time')[1] - t0 < 7 do end return 1", 0))
    deadline = time.time() + 12
    saw = None
    while time.time() < deadline:
        try:
            other.script_kill()
        except redis.ResponseError as e:
            if "UNKILLABLE" in str(e):
                saw = str(e)
                break
        time.sleep(0.2)
    t.join(15)
    assert saw and "Sorry the script already executed write commands" in saw
    assert out.get("result") == 1


def test_redis_py_script_and_lock(shardkv_port):
    r = redis.Redis(port=shardkv_port)
    r.script_flush()
    incr = r.register_script("return redis.call('incrby', KEYS[1], ARGV[1])")
    assert incr(keys=["counter"], args=[5]) == 5
    assert incr(keys=["counter"], args=[2]) == 7
    lock = r.lock("resource", timeout=5)
    assert lock.acquire(blocking=False)
    assert lock.extend(5)
    lock.release()
    assert r.get("resource") is None


def test_token_bucket_under_concurrency(shardkv_port):
    script = """
    local tokens = tonumber(redis.call('get', KEYS[1]) or ARGV[1])
    if tokens > 0 then redis.call('set', KEYS[1], tokens - 1) return 1 end
    return 0
    """
    r = redis.Redis(port=shardkv_port)
    r.delete("bucket")
    take = r.register_script(script)
    granted = []

    def worker():
        c = redis.Redis(port=shardkv_port)
        s = c.register_script(script)
        granted.extend(s(keys=["bucket"], args=[50]) for _ in range(40))
    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(granted) == 50
    assert take(keys=["bucket"], args=[50]) == 0
