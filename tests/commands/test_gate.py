"""The gate before every command: lookup, arity, auth, MULTI queuing."""

from tests.commands.conftest import Session


def test_unknown_command_names_the_command_and_its_first_args(session):
    assert session.run("FOO", "bar", "a b") == (
        b"-ERR unknown command 'FOO', with args beginning with: 'bar' 'a b' \r\n")


def test_unknown_command_args_are_cut_at_128_characters(session):
    reply = session.run("nope", "x" * 200)
    assert reply == b"-ERR unknown command 'nope', with args beginning with: '" + b"x" * 128 + b"' \r\n"


def test_wrong_arity_uses_the_lower_case_name(session):
    assert session.run("GET") == b"-ERR wrong number of arguments for 'get' command\r\n"


def test_subcommand_arity_uses_the_full_name(session):
    assert session.run("object", "encoding") == (
        b"-ERR wrong number of arguments for 'object|encoding' command\r\n")


def test_unknown_subcommand(session):
    assert session.run("object", "foo") == b"-ERR unknown subcommand 'foo'. Try OBJECT HELP.\r\n"


def test_commands_are_case_insensitive(session):
    assert session.run("SeT", "k", "v") == b"+OK\r\n"
    assert session.run("gEt", "k") == b"$1\r\nv\r\n"


def test_noauth_until_auth(server):
    server.config.set("requirepass", "secret")
    s = Session(server)
    assert s.run("GET", "k") == b"-NOAUTH Authentication required.\r\n"
    assert s.run("AUTH", "wrong") == (
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n")
    assert s.run("AUTH", "secret") == b"+OK\r\n"
    assert s.run("GET", "k") == b"$-1\r\n"


def test_multi_queues_and_exec_runs(session):
    assert session.run("MULTI") == b"+OK\r\n"
    assert session.run("SET", "a", "1") == b"+QUEUED\r\n"
    assert session.run("INCR", "a") == b"+QUEUED\r\n"
    assert session.run("EXEC") == b"*2\r\n+OK\r\n:2\r\n"


def test_queuing_error_aborts_exec(session):
    session.run("MULTI")
    assert session.run("GET") == b"-ERR wrong number of arguments for 'get' command\r\n"
    assert session.run("EXEC") == (
        b"-EXECABORT Transaction discarded because of previous errors.\r\n")


def test_multi_inside_multi_is_refused_and_poisons_the_transaction(session):
    session.run("MULTI")
    assert session.run("MULTI") == b"-ERR Command 'multi' not allowed inside a transaction\r\n"
    assert session.run("EXEC").startswith(b"-EXECABORT")


def test_watch_aborts_when_another_client_writes(server):
    a, b = Session(server), Session(server)
    a.run("SET", "k", "1")
    a.run("WATCH", "k")
    b.run("SET", "k", "2")
    a.run("MULTI")
    a.run("SET", "k", "3")
    assert a.run("EXEC") == b"*-1\r\n"
    assert a.run("GET", "k") == b"$1\r\n2\r\n"


def test_watch_aborts_when_the_key_expires(server):
    a = Session(server)
    a.run("SET", "k", "1", "PX", "1")
    server.now_ms = 0  # make sure the key is alive when WATCHed
    a.client.db.expires.set_meta(b"k", _far_future())
    a.run("WATCH", "k")
    a.client.db.expires.set_meta(b"k", 1)  # now it is past its time
    a.run("MULTI")
    a.run("PING")
    assert a.run("EXEC") == b"*-1\r\n"


def _far_future():
    return 2**62


def test_resp3_null_and_map(server):
    s = Session(server, proto=3)
    assert s.run("GET", "missing") == b"_\r\n"
    assert s.run("LCS", "a", "b", "IDX") == b"%2\r\n$7\r\nmatches\r\n*0\r\n$3\r\nlen\r\n:0\r\n"


def test_client_reply_off_suppresses_replies(session):
    assert session.run("CLIENT", "REPLY", "OFF") == b""
    assert session.run("SET", "k", "v") == b""
    assert session.run("CLIENT", "REPLY", "ON") == b"+OK\r\n"
    assert session.run("GET", "k") == b"$1\r\nv\r\n"


def test_client_reply_skip_skips_one_reply(session):
    assert session.run("CLIENT", "REPLY", "SKIP") == b""
    assert session.run("SET", "k", "v") == b""
    assert session.run("GET", "k") == b"$1\r\nv\r\n"


def test_command_statistics_count_calls_and_failures(session):
    session.run("SET", "k", "v")
    session.run("INCR", "k")
    text = session.run("INFO", "commandstats")
    assert b"cmdstat_set:calls=1,usec=" in text
    assert b"cmdstat_incr:calls=1," in text
    assert b"rejected_calls=0,failed_calls=1" in text.split(b"cmdstat_incr:")[1].split(b"\r\n")[0]
