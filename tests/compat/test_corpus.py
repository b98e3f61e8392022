"""Corpus-driven differential tests (tests/compat/corpus/*.txt).

``test_corpus``: every compared line of every case must give shardkv (the
COMPAT_TARGET server) the same raw reply bytes as valkey 9.1, in RESP2 and
RESP3.  Where valkey 9.1 and redis 7.0 disagree, which one the target
matched is recorded (record_property + terminal summary), informational.

``test_reference_redis``: valkey 9.1 vs redis 7.0 on the same corpus; never
fails, only reports (it validates the corpus and the harness itself).
"""

from __future__ import annotations

import pytest

from . import harness

pytestmark = pytest.mark.compat

CASES = harness.load_corpus()
PARAMS = [
    pytest.param(case, proto, id=f"{case.file}::{case.name}::resp{proto}")
    for case in CASES
    for proto in (2, 3)
]


def _label(case: harness.Case, proto: int, r: harness.LineResult) -> str:
    return f"{case.file}:{r.line.lineno} [{case.name} RESP{proto}] {r.line.text}"


@pytest.mark.parametrize("case,proto", PARAMS)
def test_corpus(case, proto, valkey_server, optional_redis_server, target_server,
                compat_report, record_property):
    if case.error:
        pytest.fail(f"corpus syntax error: {case.error}", pytrace=False)
    servers = {"valkey": valkey_server, "target": target_server}
    if optional_redis_server is not None and optional_redis_server is not target_server:
        servers["redis"] = optional_redis_server
    results = harness.run_case(case, servers, proto)

    if "redis" in servers:
        for r in harness.mismatches(results, "valkey", "redis"):
            t = r.replies["target"]
            if t == r.replies["valkey"]:
                verdict = "valkey"
            elif t == r.replies["redis"]:
                verdict = "redis"
                compat_report.matched_redis.append(_label(case, proto, r))
            else:
                verdict = "neither"
                compat_report.matched_neither.append(_label(case, proto, r))
            record_property(f"line{r.line.lineno}_matched", verdict)

    bad = harness.first_mismatch(results, "valkey", "target")
    if bad is None:
        return
    n = len(harness.mismatches(results, "valkey", "target"))
    msg = harness.describe_mismatch(case, proto, bad, "valkey", "target", results)
    if n > 1:
        msg += f"\n  ({n - 1} further differing line(s) in this case)"
    if case.key in harness.KNOWN_DIFFERENCES:
        pytest.xfail("known difference (tests/KNOWN_DIFFERENCES.md)\n" + msg)
    missing = unimplemented(case, upto=bad.line.lineno)
    if missing:
        pytest.xfail("needs commands of a later issue: " + ", ".join(sorted(missing)) + "\n" + msg)
    if case.key in OPEN_BUGS:
        pytest.xfail("open bug, listed in tests/KNOWN_DIFFERENCES.md\n" + msg)
    pytest.fail(msg, pytrace=False)


# Cases that still differ from valkey 9.1 for reasons listed under "Open" in
# tests/KNOWN_DIFFERENCES.md; each is a bug or a missing piece to fix.
OPEN_BUGS: set[tuple[str, str]] = set()


def unimplemented(case, upto=None):
    """Commands (or subcommands) of the case that shardkv's table lacks, in
    its lines up to line `upto` (the first that differs: a missing command
    after it cannot explain the difference)."""
    try:
        from shardkv.commands.table import all_commands
    except ImportError:  # e.g. COMPAT_TARGET=redis without shardkv built
        return set()

    table = all_commands()
    missing = set()
    for line in case.lines:
        if upto is not None and line.lineno > upto:
            break
        if not line.args:
            continue
        name = line.args[0].decode("latin-1").lower()
        decl = table.get(name)
        if decl is None:
            missing.add(name)
        elif decl.subcommands and len(line.args) > 1:
            sub = line.args[1].decode("latin-1").lower()
            if sub not in decl.subcommands and sub != "help":
                missing.add(f"{name}|{sub}")
    return missing


@pytest.mark.parametrize("case,proto", PARAMS)
def test_reference_redis(case, proto, valkey_server, redis_server, compat_report,
                         record_property):
    """valkey 9.1 vs redis 7.0: informational, never fails."""
    if case.error:
        pytest.skip(f"corpus syntax error: {case.error}")
    results = harness.run_case(case, {"valkey": valkey_server, "redis": redis_server}, proto)
    diffs = harness.mismatches(results, "valkey", "redis")
    known = case.key in harness.REFERENCE_VERSION_DIFFERENCES
    for r in diffs:
        compat_report.reference_diffs.append(
            f"{'(known) ' if known else ''}{_label(case, proto, r)}\n"
            f"      valkey: {harness.format_bytes(r.replies['valkey'], 300)}\n"
            f"      redis : {harness.format_bytes(r.replies['redis'], 300)}")
        record_property(f"line{r.line.lineno}_valkey", r.replies["valkey"])
        record_property(f"line{r.line.lineno}_redis", r.replies["redis"])


# ------------------------------------------------- harness self-checks (no server)


@pytest.mark.parametrize("line,expected", [
    ("SET k v", [b"SET", b"k", b"v"]),
    ('SET "a b" \'c d\'', [b"SET", b"a b", b"c d"]),
    (r'SET "\x00\xff\r\n\t" x', [b"SET", b"\x00\xff\r\n\t", b"x"]),
    (r'"\x4g" "a\"b" "\q"', [b"x4g", b'a"b', b"q"]),
    (r"'it\'s' 'a\nb'", [b"it's", b"a\\nb"]),
    ('a"b c"', [b"ab c"]),
    ('"" x', [b"", b"x"]),
    ("  x \t y  ", [b"x", b"y"]),
    ("caf\u00e9", ["caf\u00e9".encode()]),
])
def test_split_command_line(line, expected):
    assert harness.split_command_line(line) == expected


@pytest.mark.parametrize("line", ['"abc', '"a"b', "'a", "'a'b"])
def test_split_command_line_errors(line):
    with pytest.raises(harness.CommandLineError):
        harness.split_command_line(line)


def test_reply_reader_byte_by_byte():
    replies = [b"+OK\r\n", b"-ERR x\r\n", b":-5\r\n", b"$3\r\nabc\r\n", b"$-1\r\n", b"$0\r\n\r\n",
               b"*2\r\n:1\r\n*-1\r\n", b"%1\r\n+a\r\n~2\r\n,1.5\r\n#t\r\n",
               b"|1\r\n+k\r\n+v\r\n:5\r\n", b"$?\r\n;2\r\nab\r\n;0\r\n", b"*?\r\n:1\r\n.\r\n",
               b"_\r\n", b"=7\r\ntxt:abc\r\n", b">2\r\n+a\r\n(123\r\n", b"!3\r\nbad\r\n",
               b"*0\r\n"]
    r = harness.ReplyReader()
    got = []
    for byte in b"".join(replies):
        r.feed(bytes([byte]))
        while (x := r.get_reply()) is not None:
            got.append(x)
    assert got == replies
    assert r.get_reply() is None


def test_normalize_unordered():
    a = b"*3\r\n$1\r\nc\r\n$1\r\na\r\n$1\r\nb\r\n"
    assert harness.normalize_unordered(a) == b"*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n"
    m = b"%2\r\n$1\r\nb\r\n:2\r\n$1\r\na\r\n:1\r\n"
    assert harness.normalize_unordered(m) == b"%2\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n:2\r\n"
    assert harness.normalize_unordered(b"$-1\r\n") == b"$-1\r\n"


def test_parse_corpus_text():
    cases = harness.parse_corpus_text(
        "# c\n### one\nSET k v\n~ TIME\n=set KEYS *\n\n### two\nGET \"x\n### one\nPING\n", "t.txt")
    assert [c.name for c in cases] == ["one", "two", "one@9"]
    assert cases[0].error is None
    assert [(ln.mode, ln.args) for ln in cases[0].lines] == [
        (harness.COMPARE, [b"SET", b"k", b"v"]), (harness.NOCOMPARE, [b"TIME"]),
        (harness.UNORDERED, [b"KEYS", b"*"])]
    assert "unbalanced" in cases[1].error and "duplicate" in cases[2].error
