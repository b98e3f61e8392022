"""The command feed: what the append-only file and replicas receive. Writes
are propagated once, in deterministic form; reads are not propagated."""

from shardkv.native import _native
from tests.commands.conftest import cmds

enc = _native.py_encode_command


def test_reads_are_not_propagated(session, feed):
    session.run("GET", "k")
    session.run("EXISTS", "k")
    assert feed == []


def test_plain_write_is_propagated_after_a_select(session, feed):
    session.run("SET", "k", "v")
    assert b"".join(feed) == cmds(["SELECT", "0"], ["SET", "k", "v"])


def test_failed_write_is_not_propagated(session, feed):
    session.run("SET", "k", "v", "NX")
    feed.clear()
    session.run("SET", "k", "w", "NX")
    session.run("INCR", "k")
    assert feed == []


def test_relative_expiry_becomes_absolute(server, session, feed):
    session.run("SET", "k", "v", "EX", "100")
    data = b"".join(feed)
    assert b"PXAT" in data and b"EX" not in data.replace(b"PXAT", b"")
    feed.clear()
    session.run("EXPIRE", "k", "50")
    assert b"".join(feed).startswith(b"*3\r\n$9\r\nPEXPIREAT\r\n$1\r\nk\r\n")


def test_incrbyfloat_propagates_its_result(session, feed):
    session.run("SET", "f", "1.5")
    feed.clear()
    session.run("INCRBYFLOAT", "f", "0.25")
    assert b"".join(feed) == cmds(["SET", "f", "1.75", "KEEPTTL"])


def test_getdel_propagates_as_del(session, feed):
    session.run("SET", "k", "v")
    feed.clear()
    session.run("GETDEL", "k")
    assert b"".join(feed) == cmds(["DEL", "k"])


def test_lazy_expiry_propagates_a_del(server, session, feed):
    session.run("SET", "k", "v")
    session.client.db.expires.set_meta(b"k", 1)
    feed.clear()
    assert session.run("GET", "k") == b"$-1\r\n"
    assert b"".join(feed) == cmds(["DEL", "k"])


def test_exec_with_several_writes_is_wrapped_in_multi_exec(session, feed):
    session.run("MULTI")
    session.run("SET", "a", "1")
    session.run("SET", "b", "2")
    session.run("EXEC")
    assert b"".join(feed) == cmds(["MULTI"], ["SELECT", "0"], ["SET", "a", "1"], ["SET", "b", "2"], ["EXEC"])


def test_select_is_emitted_when_the_database_changes(session, feed):
    session.run("SET", "a", "1")
    session.run("SELECT", "3")
    session.run("SET", "b", "2")
    assert b"".join(feed) == cmds(["SELECT", "0"], ["SET", "a", "1"], ["SELECT", "3"], ["SET", "b", "2"])
