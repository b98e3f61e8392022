"""Scripting in process: effects propagation, the sandbox, conversions."""

from tests.commands.conftest import cmds


def test_script_writes_propagate_as_commands_in_multi_exec(session, feed):
    session.run("EVAL", "redis.call('set', KEYS[1], 'a') redis.call('incr', KEYS[2]) return 1", "2", "x", "n")
    assert b"".join(feed) == cmds(["MULTI"], ["SELECT", "0"], ["set", "x", "a"], ["incr", "n"], ["EXEC"])


def test_single_write_is_not_wrapped_and_reads_are_not_propagated(session, feed):
    session.run("EVAL", "redis.call('get', 'x') return redis.call('set', 'x', '1')", "0")
    assert b"".join(feed) == cmds(["SELECT", "0"], ["set", "x", "1"])


def test_set_repl_none_drops_propagation(session, feed):
    session.run("EVAL", "redis.set_repl(redis.REPL_NONE) redis.call('set', 'x', '1')", "0")
    assert feed == []


def test_sandbox_refuses_globals_and_escapes(session):
    assert session.run("EVAL", "x = 1", "0").startswith(b"-ERR user_script:1: Attempt to modify a readonly table")
    for name in ("os.execute", "io", "loadfile", "require", "dofile", "debug", "setfenv", "getfenv"):
        r = session.run("EVAL", "return %s" % name, "0")
        assert r.startswith(b"-ERR user_script:1: Script attempted to access nonexistent global") or r == b"$-1\r\n", r
    assert session.run("EVAL", "return loadstring(string.dump(function() return 1 end))", "0") == b"$-1\r\n"
    r = session.run("EVAL", "getmetatable('').__index.upper = nil", "0")
    assert b"readonly table" in r
    assert session.run("EVAL", "return ('a'):upper()", "0") == b"$1\r\nA\r\n"


def test_loadstring_code_stays_in_the_sandbox(session):
    r = session.run("EVAL", "return loadstring('y = 1')()", "0")
    assert b"Attempt to modify a readonly table" in r


def test_conversions_resp2(session):
    assert session.run("EVAL", "return {1, 2.9, 'x', true, false, nil, 5}", "0") == \
        b"*5\r\n:1\r\n:2\r\n$1\r\nx\r\n:1\r\n$-1\r\n"
    assert session.run("EVAL", "return {ok='fine'}", "0") == b"+fine\r\n"
    assert session.run("EVAL", "return {err='BAD thing'}", "0") == b"-BAD thing\r\n"
    assert session.run("EVAL", "return 1e100", "0") == b":-9223372036854775808\r\n"


def test_conversions_resp3(server):
    from tests.commands.conftest import Session
    s = Session(server, proto=3)
    assert s.run("EVAL", "return {double=3.5}", "0") == b",3.5\r\n"
    assert s.run("EVAL", "return {map={a=1}}", "0") == b"%1\r\n$1\r\na\r\n:1\r\n"
    assert s.run("EVAL", "return {set={a=true}}", "0") == b"~1\r\n$1\r\na\r\n"
    assert s.run("EVAL", "return false", "0") == b"_\r\n"
    assert s.run("EVAL", "redis.setresp(3) return false", "0") == b"#f\r\n"
    s.run("HSET", "h", "f", "v")
    assert s.run("EVAL", "redis.setresp(3) local t = redis.call('hgetall','h') return t.map.f", "0") == \
        b"$1\r\nv\r\n"


def test_redis_call_errors(session):
    session.run("SET", "k", "v")
    assert session.run("EVAL", "return redis.pcall('incr', 'k')", "0") == \
        b"-ERR value is not an integer or out of range\r\n"
    assert session.run("EVAL", "local ok, e = pcall(redis.call, 'incr', 'k') return e", "0") == \
        b"$43\r\nERR value is not an integer or out of range\r\n"
    assert session.run("EVAL_RO", "redis.call('set', 'k', 'v')", "0") == \
        b"-ERR Write commands are not allowed from read-only scripts. script: on @user_script:1.\r\n"
    assert session.run("EVAL", "redis.call('multi')", "0") == \
        b"-ERR This Valkey command is not allowed from script script: on @user_script:1.\r\n"


def test_libraries(session):
    assert session.run("EVAL", "return cjson.encode({1, 'a', {b=0.1}})", "0") == b'$17\r\n[1,"a",{"b":0.1}]\r\n'
    assert session.run("EVAL", "return cjson.decode('{\"a\":[1,2]}').a[2]", "0") == b":2\r\n"
    assert session.run("EVAL", "return cmsgpack.unpack(cmsgpack.pack({1,2,3}))[3]", "0") == b":3\r\n"
    assert session.run("EVAL", "return bit.bxor(5, 3)", "0") == b":6\r\n"
    assert session.run("EVAL", "return bit.tohex(-1)", "0") == b"$8\r\nffffffff\r\n"
    assert session.run("EVAL", "return {struct.unpack('>I2', struct.pack('>I2', 258))}", "0") == b"*2\r\n:258\r\n:3\r\n"


def test_functions_load_call_and_propagate(session, feed):
    code = "#!lua name=lib\nredis.register_function('setit', function(k, a) return redis.call('set', k[1], a[1]) end)"
    assert session.run("FUNCTION", "LOAD", code) == b"$3\r\nlib\r\n"
    feed.clear()
    assert session.run("FCALL", "setit", "1", "k", "v") == b"+OK\r\n"
    assert b"".join(feed) == cmds(["set", "k", "v"])
    dump = session.run("FUNCTION", "DUMP")
    payload = dump[dump.index(b"\r\n") + 2:-2]
    assert session.run("FUNCTION", "FLUSH") == b"+OK\r\n"
    assert session.run("FUNCTION", "RESTORE", payload) == b"+OK\r\n"
    assert session.run("FCALL", "setit", "1", "k", "w") == b"+OK\r\n"


def test_script_cache(session):
    sha = session.run("SCRIPT", "LOAD", "return 7")[5:-2]
    assert session.run("EVALSHA", sha, "0") == b":7\r\n"
    assert session.run("EVALSHA", sha.upper(), "0") == b":7\r\n"
    session.run("SCRIPT", "FLUSH")
    assert session.run("EVALSHA", sha, "0") == b"-NOSCRIPT No matching script.\r\n"


def test_runaway_recursion_is_an_error(session):
    r = session.run("EVAL", "local function f() return 1 + f() end return f()", "0")
    assert r.startswith(b"-ERR") and b"stack overflow" in r
