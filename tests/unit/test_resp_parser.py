"""The request parser, shardkv._native.RequestParser, fed bytes directly (no sockets).

Expected behaviour is Redis's networking.c (processMultibulkBuffer,
processInlineBuffer) and sds.c (sdssplitargs), including the exact text of
every protocol error.
"""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import shardkv._native as n

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

INLINE_MAX = 64 * 1024


# ------------------------------------------------------------------ helpers


def encode(args):
    """A command as a RESP multibulk request."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def encode_inline_hex(args):
    """A command as an inline request, every byte of every argument written as
    a \\xHH escape inside double quotes."""
    return b" ".join(b'"' + b"".join(b"\\x%02x" % c for c in a) + b'"' for a in args) + b"\r\n"


def drain(parser):
    """Every complete command available now."""
    out = []
    while True:
        cmd = parser.next_command()
        if cmd is None:
            return out
        out.append(cmd)


def parse_all(data, **attrs):
    p = n.RequestParser()
    for k, v in attrs.items():
        setattr(p, k, v)
    p.feed(data)
    return drain(p)


def parse_error(data, **attrs):
    """The ProtocolError message raised while parsing data in one piece."""
    p = n.RequestParser()
    for k, v in attrs.items():
        setattr(p, k, v)
    p.feed(data)
    with pytest.raises(n.ProtocolError) as info:
        drain(p)
    return str(info.value)


def run_chunks(chunks, **attrs):
    """Feeds the chunks one by one, draining after each. Returns (commands,
    error message or None). After an error nothing more is fed."""
    p = n.RequestParser()
    for k, v in attrs.items():
        setattr(p, k, v)
    cmds = []
    for chunk in chunks:
        p.feed(chunk)
        try:
            cmds.extend(drain(p))
        except n.ProtocolError as e:
            return cmds, str(e)
    return cmds, None


def split_at(data, cuts):
    cuts = sorted(set(c for c in cuts if 0 < c < len(data)))
    pieces, prev = [], 0
    for c in cuts:
        pieces.append(data[prev:c])
        prev = c
    pieces.append(data[prev:])
    return pieces


# ------------------------------------------------------------------ basics


def test_new_parser_has_no_command():
    assert n.RequestParser().next_command() is None


def test_new_parser_defaults():
    p = n.RequestParser()
    assert p.max_bulk_len == 512 * 1024 * 1024
    assert p.auth_required is False
    assert p.pending_bytes == 0


def test_max_bulk_len_constructor_argument():
    assert n.RequestParser(max_bulk_len=100).max_bulk_len == 100


def test_feed_empty_bytes_is_a_no_op():
    p = n.RequestParser()
    p.feed(b"")
    assert p.pending_bytes == 0
    assert p.next_command() is None


def test_feed_accepts_bytearray():
    p = n.RequestParser()
    p.feed(bytearray(encode([b"PING"])))
    assert p.next_command() == [b"PING"]


def test_feed_accepts_memoryview():
    p = n.RequestParser()
    p.feed(memoryview(encode([b"GET", b"k"])))
    assert p.next_command() == [b"GET", b"k"]


def test_feed_rejects_str():
    with pytest.raises(TypeError):
        n.RequestParser().feed("PING\r\n")


def test_arguments_are_bytes():
    cmd = parse_all(encode([b"SET", b"k", b"v"]))[0]
    assert all(type(a) is bytes for a in cmd)


# ------------------------------------------------------------------ multibulk


def test_multibulk_single_command():
    assert parse_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n") == [[b"SET", b"k", b"value"]]


def test_multibulk_pipelined_commands_come_out_in_order():
    data = encode([b"A"]) + encode([b"B", b"1"]) + encode([b"C", b"2", b"3"])
    assert parse_all(data) == [[b"A"], [b"B", b"1"], [b"C", b"2", b"3"]]


def test_next_command_returns_one_command_per_call():
    p = n.RequestParser()
    p.feed(encode([b"A"]) + encode([b"B"]))
    assert p.next_command() == [b"A"]
    assert p.next_command() == [b"B"]
    assert p.next_command() is None


def test_multibulk_incomplete_header_returns_none():
    p = n.RequestParser()
    p.feed(b"*2")
    assert p.next_command() is None


def test_multibulk_header_cr_without_lf_waits():
    p = n.RequestParser()
    p.feed(b"*1\r")
    assert p.next_command() is None
    p.feed(b"\n$4\r\nPING\r\n")
    assert p.next_command() == [b"PING"]


def test_multibulk_bulk_header_cr_without_lf_waits():
    p = n.RequestParser()
    p.feed(b"*1\r\n$4\r")
    assert p.next_command() is None
    p.feed(b"\nPING\r\n")
    assert p.next_command() == [b"PING"]


def test_multibulk_missing_bulk_data_returns_none_then_completes():
    p = n.RequestParser()
    p.feed(b"*2\r\n$3\r\nGET\r\n$3\r\nke")
    assert p.next_command() is None
    p.feed(b"y\r\n")
    assert p.next_command() == [b"GET", b"key"]


def test_multibulk_data_without_trailing_crlf_waits():
    p = n.RequestParser()
    p.feed(b"*1\r\n$4\r\nPING")
    assert p.next_command() is None
    p.feed(b"\r")
    assert p.next_command() is None
    p.feed(b"\n")
    assert p.next_command() == [b"PING"]


def test_multibulk_bulk_is_binary_safe():
    value = b"a\r\nb\x00c\n\r*$\xff"
    assert parse_all(encode([b"SET", b"k", value])) == [[b"SET", b"k", value]]


def test_multibulk_empty_bulk():
    assert parse_all(b"*2\r\n$4\r\nECHO\r\n$0\r\n\r\n") == [[b"ECHO", b""]]


def test_multibulk_empty_bulk_as_only_argument_is_a_command():
    assert parse_all(b"*1\r\n$0\r\n\r\n") == [[b""]]


def test_multibulk_zero_count_produces_no_command():
    assert parse_all(b"*0\r\n") == []


def test_multibulk_zero_count_is_skipped_before_next_command():
    assert parse_all(b"*0\r\n" + encode([b"PING"])) == [[b"PING"]]


def test_multibulk_minus_one_count_produces_no_command():
    assert parse_all(b"*-1\r\n" + encode([b"PING"])) == [[b"PING"]]


def test_multibulk_other_negative_count_produces_no_command():
    # Redis accepts any count <= 0 as an empty request
    assert parse_all(b"*-5\r\n" + encode([b"PING"])) == [[b"PING"]]


@pytest.mark.parametrize("trailer", [b"xy", b"\rx", b"x\n", b"\n\r"])
def test_multibulk_bytes_after_bulk_data_must_be_crlf(trailer):
    # Valkey 9.1 refuses anything but CRLF there (Redis 7.0 skipped the two bytes)
    p = n.RequestParser()
    p.feed(b"*1\r\n$4\r\nPING" + trailer)
    with pytest.raises(n.ProtocolError, match="^Protocol error: invalid CRLF in request$"):
        p.next_command()


def test_multibulk_large_bulk_fed_in_chunks():
    value = bytes(range(256)) * 4096  # 1 MiB
    data = encode([b"SET", b"k", value])
    p = n.RequestParser()
    for i in range(0, len(data), 65536):
        p.feed(data[i:i + 65536])
        if i + 65536 < len(data):
            assert p.next_command() is None
    assert p.next_command() == [b"SET", b"k", value]


def test_multibulk_large_argument_count():
    args = [b"%d" % i for i in range(5000)]
    assert parse_all(encode(args)) == [args]


def test_multibulk_count_of_int_max_is_accepted_as_header():
    p = n.RequestParser()
    p.feed(b"*2147483647\r\n")
    assert p.next_command() is None


def test_shrink_after_large_request_keeps_parsing():
    p = n.RequestParser()
    p.feed(encode([b"SET", b"k", b"v" * 1_000_000]))
    assert p.next_command() == [b"SET", b"k", b"v" * 1_000_000]
    p.shrink()
    p.feed(encode([b"GET", b"k"]))
    assert p.next_command() == [b"GET", b"k"]


def test_shrink_between_arguments_of_a_partial_command_keeps_state():
    p = n.RequestParser()
    p.feed(b"*2\r\n$3\r\nSET\r\n")
    assert p.next_command() is None
    p.shrink()
    p.feed(b"$1\r\nk\r\n")
    assert p.next_command() == [b"SET", b"k"]


def test_shrink_with_buffered_bytes_keeps_them():
    p = n.RequestParser()
    p.feed(b"x" * 300_000)
    p.shrink()
    p.feed(b"\r\n")
    assert p.next_command() == [b"x" * 300_000]


# ------------------------------------------------------------------ multibulk errors


@pytest.mark.parametrize("header", [
    b"*\r\n",            # empty
    b"*x\r\n",           # not a number
    b"*01\r\n",          # leading zero
    b"*+1\r\n",          # explicit plus
    b"*-0\r\n",          # negative zero
    b"*-\r\n",           # lone minus
    b"* 1\r\n",          # leading space
    b"*1 \r\n",          # trailing space
    b"*1x\r\n",          # trailing garbage
    b"*2147483648\r\n",  # INT_MAX + 1
    b"*9223372036854775808\r\n",   # LLONG_MAX + 1
    b"*99999999999999999999999\r\n",  # far too long
    b"*1\x00\r\n",       # NUL inside the number
])
def test_multibulk_invalid_count(header):
    assert parse_error(header) == "Protocol error: invalid multibulk length"


def test_multibulk_count_line_needs_cr():
    # the count runs to the first CR, so "*1\n$4" is not a number
    assert parse_error(b"*1\n$4\r\nPING\r\n") == "Protocol error: invalid multibulk length"


@pytest.mark.parametrize("header", [
    b"$\r\n",
    b"$x\r\n",
    b"$-1\r\n",          # null bulks are not allowed in requests
    b"$-2\r\n",
    b"$+4\r\n",
    b"$04\r\n",
    b"$-0\r\n",
    b"$ 4\r\n",
    b"$4 \r\n",
    b"$9223372036854775808\r\n",
])
def test_multibulk_invalid_bulk_length(header):
    assert parse_error(b"*1\r\n" + header + b"PING\r\n") == "Protocol error: invalid bulk length"


@pytest.mark.parametrize("first, shown", [
    (b"x", "x"), (b":", ":"), (b"*", "*"), (b"+", "+"), (b"4", "4"),
])
def test_multibulk_expected_dollar(first, shown):
    msg = parse_error(b"*1\r\n" + first + b"4\r\nPING\r\n")
    assert msg == "Protocol error: expected '$', got '%s'" % shown


def test_multibulk_expected_dollar_in_second_argument():
    msg = parse_error(b"*2\r\n$3\r\nGET\r\n%1\r\nk\r\n")
    assert msg == "Protocol error: expected '$', got '%'"


def test_multibulk_error_is_raised_only_once_the_header_line_is_complete():
    p = n.RequestParser()
    p.feed(b"*1\r\nx")
    assert p.next_command() is None
    p.feed(b"4\r\n")
    with pytest.raises(n.ProtocolError, match=r"^Protocol error: expected '\$', got 'x'$"):
        p.next_command()


def test_bulk_length_equal_to_max_bulk_len_is_accepted():
    assert parse_all(encode([b"abcdefghij"]), max_bulk_len=10) == [[b"abcdefghij"]]


def test_bulk_length_above_max_bulk_len_is_refused():
    assert parse_error(encode([b"abcdefghijk"]), max_bulk_len=10) == "Protocol error: invalid bulk length"


def test_bulk_length_above_max_bulk_len_is_refused_before_the_data_arrives():
    p = n.RequestParser(max_bulk_len=1000)
    p.feed(b"*1\r\n$1001\r\n")
    with pytest.raises(n.ProtocolError, match="^Protocol error: invalid bulk length$"):
        p.next_command()


def test_huge_bulk_length_is_refused_at_header_time_with_default_limit():
    p = n.RequestParser()
    p.feed(b"*1\r\n$%d\r\n" % (512 * 1024 * 1024 + 1))
    with pytest.raises(n.ProtocolError, match="^Protocol error: invalid bulk length$"):
        p.next_command()


def test_max_bulk_len_is_settable():
    p = n.RequestParser()
    p.max_bulk_len = 3
    assert p.max_bulk_len == 3
    p.feed(encode([b"abcd"]))
    with pytest.raises(n.ProtocolError, match="^Protocol error: invalid bulk length$"):
        p.next_command()


def test_mbulk_count_line_of_64k_without_cr_waits():
    p = n.RequestParser()
    p.feed(b"*" + b"1" * (INLINE_MAX - 1))  # exactly INLINE_MAX bytes buffered
    assert p.next_command() is None


def test_mbulk_count_line_over_64k_without_cr_is_too_big():
    assert parse_error(b"*" + b"1" * INLINE_MAX) == "Protocol error: too big mbulk count string"


def test_bulk_count_line_of_64k_without_cr_waits():
    p = n.RequestParser()
    p.feed(b"*1\r\n$" + b"1" * (INLINE_MAX - 1))
    assert p.next_command() is None


def test_bulk_count_line_over_64k_without_cr_is_too_big():
    assert parse_error(b"*1\r\n$" + b"1" * INLINE_MAX) == "Protocol error: too big bulk count string"


# ------------------------------------------------------------------ unauthenticated limits


def test_unauthenticated_ten_arguments_are_accepted():
    args = [b"x"] * 10
    assert parse_all(encode(args), auth_required=True) == [args]


def test_unauthenticated_more_than_ten_arguments_are_refused():
    assert parse_error(encode([b"x"] * 11), auth_required=True) == \
        "Protocol error: unauthenticated multibulk length"


def test_unauthenticated_multibulk_length_is_refused_at_header_time():
    p = n.RequestParser()
    p.auth_required = True
    p.feed(b"*11\r\n")
    with pytest.raises(n.ProtocolError, match="^Protocol error: unauthenticated multibulk length$"):
        p.next_command()


def test_unauthenticated_bulk_of_16384_bytes_is_accepted():
    value = b"v" * 16384
    assert parse_all(encode([b"AUTH", value]), auth_required=True) == [[b"AUTH", value]]


def test_unauthenticated_bulk_over_16384_bytes_is_refused():
    assert parse_error(encode([b"AUTH", b"v" * 16385]), auth_required=True) == \
        "Protocol error: unauthenticated bulk length"


def test_unauthenticated_bulk_length_is_refused_at_header_time():
    p = n.RequestParser()
    p.auth_required = True
    p.feed(b"*2\r\n$4\r\nAUTH\r\n$16385\r\n")
    with pytest.raises(n.ProtocolError, match="^Protocol error: unauthenticated bulk length$"):
        p.next_command()


def test_invalid_bulk_length_wins_over_unauthenticated_bulk_length():
    p = n.RequestParser(max_bulk_len=20000)
    p.auth_required = True
    p.feed(b"*1\r\n$20001\r\n")
    with pytest.raises(n.ProtocolError, match="^Protocol error: invalid bulk length$"):
        p.next_command()


def test_authenticated_parser_accepts_many_arguments_and_big_bulks():
    args = [b"x"] * 11 + [b"v" * 16385]
    assert parse_all(encode(args), auth_required=False) == [args]


def test_auth_required_can_be_cleared_between_commands():
    p = n.RequestParser()
    p.auth_required = True
    p.feed(encode([b"AUTH", b"pw"]))
    assert p.next_command() == [b"AUTH", b"pw"]
    p.auth_required = False
    big = [b"MSET"] + [b"k"] * 20
    p.feed(encode(big))
    assert p.next_command() == big


def test_unauthenticated_inline_command_is_not_limited_to_ten_arguments():
    # Redis checks the unauthenticated limits only for multibulk requests
    args = [b"x"] * 20
    assert parse_all(b" ".join(args) + b"\r\n", auth_required=True) == [args]


# ------------------------------------------------------------------ errors are final


def test_parser_stays_failed_after_a_protocol_error():
    p = n.RequestParser()
    p.feed(b"*x\r\n")
    with pytest.raises(n.ProtocolError):
        p.next_command()
    p.feed(encode([b"PING"]))
    with pytest.raises(n.ProtocolError, match="^Protocol error: invalid multibulk length$"):
        p.next_command()


def test_commands_before_a_protocol_error_are_returned_first():
    p = n.RequestParser()
    p.feed(encode([b"A"]) + encode([b"B"]) + b"*1\r\n?1\r\n")
    assert p.next_command() == [b"A"]
    assert p.next_command() == [b"B"]
    with pytest.raises(n.ProtocolError):
        p.next_command()


def test_protocol_error_sets_error_attribute():
    p = n.RequestParser()
    assert p.error is None
    p.feed(b"*x\r\n")
    with pytest.raises(n.ProtocolError):
        p.next_command()
    assert p.error == "Protocol error: invalid multibulk length"


def test_protocol_error_is_an_exception_subclass():
    assert issubclass(n.ProtocolError, Exception)


# ------------------------------------------------------------------ pending_bytes


def test_pending_bytes_counts_unparsed_input():
    p = n.RequestParser()
    data = encode([b"SET", b"k", b"v"])
    p.feed(data)
    assert p.pending_bytes == len(data)


def test_pending_bytes_is_zero_after_all_commands_are_consumed():
    p = n.RequestParser()
    p.feed(encode([b"SET", b"k", b"v"]) + b"PING\r\n")
    drain(p)
    assert p.pending_bytes == 0


def test_pending_bytes_keeps_the_partial_tail():
    p = n.RequestParser()
    tail = b"PIN"
    p.feed(encode([b"A"]) + tail)
    assert p.next_command() == [b"A"]
    assert p.next_command() is None
    assert p.pending_bytes == len(tail)


# ------------------------------------------------------------------ inline


def test_inline_crlf():
    assert parse_all(b"PING\r\n") == [[b"PING"]]


def test_inline_bare_lf():
    assert parse_all(b"PING\n") == [[b"PING"]]


def test_inline_without_newline_waits():
    p = n.RequestParser()
    p.feed(b"PING")
    assert p.next_command() is None
    p.feed(b"\r\n")
    assert p.next_command() == [b"PING"]


def test_inline_cr_alone_does_not_end_the_line():
    p = n.RequestParser()
    p.feed(b"PING\r")
    assert p.next_command() is None


def test_inline_multiple_arguments():
    assert parse_all(b"SET key value\r\n") == [[b"SET", b"key", b"value"]]


def test_inline_runs_of_spaces_and_tabs_separate_arguments():
    assert parse_all(b"SET \t  key\t\tvalue\r\n") == [[b"SET", b"key", b"value"]]


def test_inline_leading_and_trailing_whitespace_is_ignored():
    assert parse_all(b"  \t SET k v \t \r\n") == [[b"SET", b"k", b"v"]]


def test_inline_empty_line_is_skipped():
    assert parse_all(b"\r\n\n" + b"PING\r\n") == [[b"PING"]]


def test_inline_whitespace_only_line_is_skipped():
    assert parse_all(b"   \t \r\nPING\r\n") == [[b"PING"]]


def test_inline_cr_inside_line_separates_arguments():
    assert parse_all(b"ECHO a\rb\r\n") == [[b"ECHO", b"a", b"b"]]


def test_inline_vertical_tab_and_form_feed_are_kept_inside_unquoted_argument():
    assert parse_all(b"ECHO a\x0bb\x0cc\r\n") == [[b"ECHO", b"a\x0bb\x0cc"]]


def test_inline_vertical_tab_and_form_feed_are_skipped_between_arguments():
    assert parse_all(b"ECHO \x0b\x0ca\r\n") == [[b"ECHO", b"a"]]


def test_inline_pipelined_lines():
    assert parse_all(b"PING\r\nECHO x\nGET k\r\n") == [[b"PING"], [b"ECHO", b"x"], [b"GET", b"k"]]


def test_inline_and_multibulk_mixed_in_one_stream():
    data = b"PING\r\n" + encode([b"ECHO", b"a b"]) + b"GET k\r\n"
    assert parse_all(data) == [[b"PING"], [b"ECHO", b"a b"], [b"GET", b"k"]]


def test_inline_high_bytes_are_kept():
    assert parse_all(b"ECHO \xff\xfe\x80\r\n") == [[b"ECHO", b"\xff\xfe\x80"]]


def test_inline_double_quotes_group_spaces():
    assert parse_all(b'SET k "hello world"\r\n') == [[b"SET", b"k", b"hello world"]]


def test_inline_single_quotes_group_spaces():
    assert parse_all(b"SET k 'hello world'\r\n") == [[b"SET", b"k", b"hello world"]]


def test_inline_empty_double_quotes_are_an_empty_argument():
    assert parse_all(b'ECHO ""\r\n') == [[b"ECHO", b""]]


def test_inline_empty_single_quotes_are_an_empty_argument():
    assert parse_all(b"ECHO ''\r\n") == [[b"ECHO", b""]]


@pytest.mark.parametrize("escape, byte", [
    (b"\\n", b"\n"), (b"\\r", b"\r"), (b"\\t", b"\t"), (b"\\b", b"\b"), (b"\\a", b"\a"),
    (b"\\\\", b"\\"), (b'\\"', b'"'),
])
def test_inline_double_quote_escapes(escape, byte):
    assert parse_all(b'ECHO "<' + escape + b'>"\r\n') == [[b"ECHO", b"<" + byte + b">"]]


def test_inline_double_quote_unknown_escape_is_the_character_itself():
    assert parse_all(b'ECHO "\\q\\\'"\r\n') == [[b"ECHO", b"q'"]]


def test_inline_double_quote_hex_escape_lowercase():
    assert parse_all(b'ECHO "\\x41\\x0a\\xff"\r\n') == [[b"ECHO", b"A\n\xff"]]


def test_inline_double_quote_hex_escape_uppercase():
    assert parse_all(b'ECHO "\\xAB\\xcD"\r\n') == [[b"ECHO", b"\xab\xcd"]]


def test_inline_double_quote_hex_escape_needs_two_hex_digits():
    assert parse_all(b'ECHO "\\x4g"\r\n') == [[b"ECHO", b"x4g"]]


def test_inline_double_quote_hex_escape_truncated_at_end_of_quote():
    assert parse_all(b'ECHO "\\x4"\r\n') == [[b"ECHO", b"x4"]]


def test_inline_double_quote_hex_zero_byte():
    assert parse_all(b'ECHO "a\\x00b"\r\n') == [[b"ECHO", b"a\x00b"]]


def test_inline_backslash_before_closing_quote_escapes_it():
    # "a\" has no closing quote: the request is unbalanced
    assert parse_error(b'ECHO "a\\"\r\n') == "Protocol error: unbalanced quotes in request"


def test_inline_single_quote_escaped_single_quote():
    assert parse_all(b"ECHO 'it\\'s'\r\n") == [[b"ECHO", b"it's"]]


def test_inline_single_quote_other_escapes_are_literal():
    assert parse_all(b"ECHO 'a\\nb\\x41'\r\n") == [[b"ECHO", b"a\\nb\\x41"]]


def test_inline_double_quote_inside_single_quotes_is_literal():
    assert parse_all(b"ECHO 'say \"hi\"'\r\n") == [[b"ECHO", b'say "hi"']]


def test_inline_single_quote_inside_double_quotes_is_literal():
    assert parse_all(b"ECHO \"it's\"\r\n") == [[b"ECHO", b"it's"]]


def test_inline_quote_in_the_middle_of_an_argument_opens_a_quoted_section():
    assert parse_all(b'SET foo"bar baz"\r\n') == [[b"SET", b"foobar baz"]]


def test_inline_closing_quote_followed_by_space_ends_argument():
    assert parse_all(b'ECHO "a" b\r\n') == [[b"ECHO", b"a", b"b"]]


def test_inline_closing_quote_at_end_of_line():
    assert parse_all(b'ECHO "a"\r\n') == [[b"ECHO", b"a"]]


def test_inline_closing_quote_followed_by_bare_lf_line_end():
    assert parse_all(b'ECHO "a"\n') == [[b"ECHO", b"a"]]


def test_inline_closing_quote_followed_by_vertical_tab_ends_argument():
    # isspace() accepts \v after a closing quote
    assert parse_all(b'ECHO "a"\x0bb\r\n') == [[b"ECHO", b"a", b"b"]]


def test_inline_closing_double_quote_followed_by_letter_is_unbalanced():
    assert parse_error(b'ECHO "a"b\r\n') == "Protocol error: unbalanced quotes in request"


def test_inline_closing_single_quote_followed_by_letter_is_unbalanced():
    assert parse_error(b"ECHO 'a'b\r\n") == "Protocol error: unbalanced quotes in request"


def test_inline_adjacent_quoted_sections_are_unbalanced():
    assert parse_error(b"ECHO \"a\"'b'\r\n") == "Protocol error: unbalanced quotes in request"


def test_inline_unterminated_double_quote_is_unbalanced():
    assert parse_error(b'ECHO "abc\r\n') == "Protocol error: unbalanced quotes in request"


def test_inline_unterminated_single_quote_is_unbalanced():
    assert parse_error(b"ECHO 'abc\r\n") == "Protocol error: unbalanced quotes in request"


def test_inline_lone_quote_is_unbalanced():
    assert parse_error(b'"\r\n') == "Protocol error: unbalanced quotes in request"


def test_inline_unbalanced_quotes_after_valid_commands():
    p = n.RequestParser()
    p.feed(b"PING\r\nECHO \"x\r\nPING\r\n")
    assert p.next_command() == [b"PING"]
    with pytest.raises(n.ProtocolError, match="^Protocol error: unbalanced quotes in request$"):
        p.next_command()


def test_inline_line_of_64k_without_newline_waits():
    p = n.RequestParser()
    p.feed(b"a" * INLINE_MAX)
    assert p.next_command() is None


def test_inline_line_over_64k_without_newline_is_too_big():
    assert parse_error(b"a" * (INLINE_MAX + 1)) == "Protocol error: too big inline request"


def test_inline_line_over_64k_with_newline_is_parsed():
    arg = b"a" * (INLINE_MAX + 100)
    assert parse_all(b"ECHO " + arg + b"\r\n") == [[b"ECHO", arg]]


def test_inline_too_big_counts_bytes_fed_in_pieces():
    p = n.RequestParser()
    p.feed(b"a" * INLINE_MAX)
    assert p.next_command() is None
    p.feed(b"a")
    with pytest.raises(n.ProtocolError, match="^Protocol error: too big inline request$"):
        p.next_command()


def test_inline_nul_byte_before_newline_hides_the_newline():
    assert parse_all(b"ECHO a\x00b\r\n") == []


def test_inline_lone_nul_byte_does_not_produce_an_empty_command():
    assert [b""] not in parse_all(b"\x00\r\nPING\r\n")


# ------------------------------------------------------------------ properties

arg_strategy = st.binary(max_size=40)
command_strategy = st.lists(arg_strategy, min_size=1, max_size=6)
commands_strategy = st.lists(command_strategy, min_size=1, max_size=8)


@SETTINGS
@given(commands_strategy, st.lists(st.integers(min_value=0, max_value=4000), max_size=30))
def test_property_multibulk_split_at_random_points_yields_the_same_commands(cmds, cuts):
    data = b"".join(encode(c) for c in cmds)
    got, err = run_chunks(split_at(data, cuts))
    assert err is None
    assert got == cmds


@settings(max_examples=60, deadline=None)
@given(commands_strategy)
def test_property_multibulk_fed_one_byte_at_a_time_yields_the_same_commands(cmds):
    data = b"".join(encode(c) for c in cmds)
    got, err = run_chunks([data[i:i + 1] for i in range(len(data))])
    assert err is None
    assert got == cmds


@SETTINGS
@given(commands_strategy, st.lists(st.integers(min_value=0, max_value=8000), max_size=30))
def test_property_inline_hex_escaped_commands_round_trip(cmds, cuts):
    data = b"".join(encode_inline_hex(c) for c in cmds)
    got, err = run_chunks(split_at(data, cuts))
    assert err is None
    assert got == cmds


plain_word = st.binary(min_size=1, max_size=12).map(
    lambda b: bytes(c for c in b if c not in b" \t\r\n\x0b\x0c\x00\"'*") or b"x")


@SETTINGS
@given(st.lists(st.one_of(
    st.lists(arg_strategy, min_size=1, max_size=5).map(lambda c: ("mb", c)),
    st.lists(plain_word, min_size=1, max_size=5).map(lambda c: ("inline", c)),
    st.just(("empty", [])),
), min_size=1, max_size=8), st.lists(st.integers(min_value=0, max_value=2000), max_size=20))
def test_property_mixed_inline_multibulk_and_empty_requests(reqs, cuts):
    parts, expected = [], []
    for kind, args in reqs:
        if kind == "mb":
            parts.append(encode(args))
            expected.append(args)
        elif kind == "inline":
            parts.append(b" ".join(args) + b"\r\n")
            expected.append(args)
        else:
            parts.append(b"*0\r\n")
    got, err = run_chunks(split_at(b"".join(parts), cuts))
    assert err is None
    assert got == expected


def _run_garbage(chunks, auth_required=False, max_bulk_len=512 * 1024 * 1024):
    p = n.RequestParser(max_bulk_len=max_bulk_len)
    p.auth_required = auth_required
    cmds, err = [], None
    for chunk in chunks:
        p.feed(chunk)
        try:
            while True:
                cmd = p.next_command()
                if cmd is None:
                    break
                assert isinstance(cmd, list) and cmd
                assert all(type(a) is bytes for a in cmd)
                cmds.append(cmd)
        except n.ProtocolError as e:
            err = str(e)
            assert err.startswith("Protocol error: ")
            # the parser stays failed
            with pytest.raises(n.ProtocolError):
                p.next_command()
            break
    return cmds, err


garbage_alphabet = st.sampled_from(
    [b"*", b"$", b"\r", b"\n", b"\r\n", b"0", b"1", b"2", b"-", b"9", b" ", b'"', b"'",
     b"\\", b"x", b"a", b"\x00", b"\xff", b"PING"])
garbage = st.one_of(
    st.binary(max_size=200),
    st.lists(garbage_alphabet, max_size=80).map(b"".join),
)


@SETTINGS
@given(garbage, st.lists(st.integers(min_value=0, max_value=300), max_size=10), st.booleans(),
       st.integers(min_value=0, max_value=100))
def test_property_random_garbage_never_crashes(data, cuts, auth_required, max_bulk_len):
    _run_garbage(split_at(data, cuts), auth_required, max_bulk_len)


@SETTINGS
@given(garbage, st.lists(st.integers(min_value=0, max_value=300), max_size=10))
def test_property_result_of_garbage_does_not_depend_on_how_it_is_split(data, cuts):
    # inputs stay far below the 64 KiB limits, whose checks depend on buffering
    whole = _run_garbage([data])
    assert _run_garbage(split_at(data, cuts)) == whole
    assert _run_garbage([data[i:i + 1] for i in range(len(data))]) == whole


@SETTINGS
@given(commands_strategy, st.data())
def test_property_mutated_valid_stream_never_crashes(cmds, data):
    raw = bytearray(b"".join(encode(c) for c in cmds))
    for _ in range(data.draw(st.integers(min_value=1, max_value=5))):
        pos = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
        raw[pos] = data.draw(st.integers(min_value=0, max_value=255))
    cuts = data.draw(st.lists(st.integers(min_value=0, max_value=len(raw)), max_size=8))
    _run_garbage(split_at(bytes(raw), cuts))
