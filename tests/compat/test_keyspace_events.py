"""Keyspace notifications compared with valkey: the same scripted commands
of every family, run on each server while a subscriber listens to every
keyspace and keyevent channel (notify-keyspace-events KEA), must produce
the same messages in the same order."""

from __future__ import annotations

import time

import pytest
import redis

pytestmark = pytest.mark.compat

SCRIPT = [
    # strings
    ["SET", "s", "1"], ["APPEND", "s", "2"], ["INCR", "s"], ["INCRBY", "s", "5"],
    ["INCRBYFLOAT", "s", "1.5"], ["SETRANGE", "s", "0", "9"], ["GETDEL", "s"],
    ["SET", "t", "v", "EX", "100"], ["PERSIST", "t"], ["EXPIRE", "t", "100"], ["GETEX", "t", "PERSIST"],
    ["RENAME", "t", "t2"], ["COPY", "t2", "t3"], ["DEL", "t2", "t3"], ["SETBIT", "b", "7", "1"],
    ["PFADD", "h", "a"],
    # lists
    ["RPUSH", "l", "a", "b", "c"], ["LPUSH", "l", "z"], ["LSET", "l", "0", "y"],
    ["LINSERT", "l", "BEFORE", "a", "x"], ["LREM", "l", "1", "x"], ["LTRIM", "l", "0", "2"],
    ["LPOP", "l"], ["RPOP", "l"], ["LMOVE", "l", "l2", "LEFT", "RIGHT"], ["RPOP", "l2"],
    # sets
    ["SADD", "st", "a", "b", "c"], ["SREM", "st", "a"], ["SMOVE", "st", "st2", "b"],
    ["SINTERSTORE", "st3", "st", "st2"], ["SPOP", "st"], ["SPOP", "st2"],
    # hashes
    ["HSET", "hh", "f", "1", "g", "2"], ["HINCRBY", "hh", "f", "2"], ["HINCRBYFLOAT", "hh", "f", "0.5"],
    ["HDEL", "hh", "f"], ["HEXPIRE", "hh", "100", "FIELDS", "1", "g"], ["HPERSIST", "hh", "FIELDS", "1", "g"],
    ["HDEL", "hh", "g"],
    # sorted sets
    ["ZADD", "z", "1", "a", "2", "b", "3", "c"], ["ZINCRBY", "z", "1", "a"], ["ZREM", "z", "a"],
    ["ZREMRANGEBYSCORE", "z", "0", "2"], ["ZUNIONSTORE", "z2", "1", "z"], ["ZPOPMIN", "z"],
    ["ZPOPMAX", "z2"], ["GEOADD", "g", "13.36", "38.11", "p"],
    ["GEOSEARCHSTORE", "g2", "g", "FROMLONLAT", "13", "38", "BYRADIUS", "100", "km"],
    # streams
    ["XADD", "x", "1-1", "f", "v"], ["XGROUP", "CREATE", "x", "grp", "0"], ["XTRIM", "x", "MAXLEN", "0"],
    ["XSETID", "x", "5-5"], ["XGROUP", "DESTROY", "x", "grp"], ["XDEL", "x", "5-5"],
    # generic
    ["SET", "m", "1"], ["MOVE", "m", "1"], ["SORT", "l2", "STORE", "sorted"], ["FLUSHDB"],
]


def _events(server):
    sub = redis.Redis(host=server.host, port=server.port, protocol=2)
    run = redis.Redis(host=server.host, port=server.port, protocol=2)
    run.flushall()
    run.config_set("notify-keyspace-events", "KEA")
    try:
        ps = sub.pubsub()
        ps.psubscribe("__key*__:*")
        deadline = time.time() + 5
        while time.time() < deadline:
            m = ps.get_message(timeout=0.1)
            if m is not None and m["type"] == "psubscribe":
                break
        replies = []
        for cmd in SCRIPT:
            try:
                replies.append(run.execute_command(*cmd))
            except redis.ResponseError as e:
                replies.append(f"error: {e}")
        run.execute_command("PUBLISH", "__keyevent@0__:end", "end")   # the last message
        out = []
        deadline = time.time() + 5
        while time.time() < deadline:
            m = ps.get_message(timeout=0.2)
            if m is None or m["type"] != "pmessage":
                continue
            if m["channel"] == b"__keyevent@0__:end":
                break
            out.append((m["channel"], m["data"]))
        ps.close()
        return replies, out
    finally:
        run.config_set("notify-keyspace-events", "")
        run.flushall()


def test_keyspace_events_match_valkey(valkey_server, target_server):
    _, v_events = _events(valkey_server)
    _, t_events = _events(target_server)
    assert len(v_events) > 80          # the script does reach every family
    assert t_events == v_events
