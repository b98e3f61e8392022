"""The reply scanner frames replies in a byte stream without decoding them:
every complete reply comes out whole, whatever the split."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shardkv.native import _native as n


def frames(data, split=None):
    s = n.ReplyScanner()
    out = []
    chunks = [data] if split is None else [data[i:i + split] for i in range(0, len(data), split)]
    for chunk in chunks:
        s.feed(chunk)
        while (r := s.next_reply()) is not None:
            out.append(r)
    return out, s.pending_bytes


@pytest.mark.parametrize("reply", [
    b"+OK\r\n", b"-ERR x\r\n", b":12\r\n", b"$-1\r\n", b"$0\r\n\r\n", b"$3\r\na\r\n\r\n",
    b"*-1\r\n", b"*0\r\n", b"*2\r\n$1\r\na\r\n:1\r\n", b"_\r\n", b",3.14\r\n", b"#t\r\n",
    b"(123456789012345678901234567890\r\n", b"=8\r\ntxt:text\r\n", b"!3\r\nerr\r\n",
    b"%1\r\n+k\r\n*1\r\n:1\r\n", b"~2\r\n:1\r\n:2\r\n",
    b"|1\r\n+key-popularity\r\n:90\r\n$5\r\nvalue\r\n",
    b"*3\r\n*1\r\n*1\r\n*0\r\n%0\r\n~0\r\n",
])
def test_each_reply_is_framed_whole(reply):
    assert frames(reply) == ([(reply, False)], 0)
    assert frames(reply[:-1]) == ([], len(reply) - 1)


def test_push_is_flagged_out_of_band():
    push = b">2\r\n$7\r\nmessage\r\n$1\r\nx\r\n"
    assert frames(push + b"+OK\r\n")[0] == [(push, True), (b"+OK\r\n", False)]


def test_bulk_containing_crlf_is_not_cut():
    reply = b"$6\r\na\r\nb\r\n\r\n"
    assert frames(reply + b":1\r\n")[0] == [(reply, False), (b":1\r\n", False)]


@pytest.mark.parametrize("bad", [b"?x\r\n", b"$x\r\n", b"$2\r\nabcd", b"+no-cr\n"])
def test_bad_bytes_raise(bad):
    s = n.ReplyScanner()
    s.feed(bad)
    with pytest.raises(ValueError):
        s.next_reply()


resp_values = st.recursive(
    st.one_of(st.binary(max_size=20), st.integers(-2**63, 2**63 - 1), st.none(),
              st.booleans(), st.floats(allow_nan=False)),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.binary(max_size=5), inner, max_size=3)),
    max_leaves=12)


@given(st.lists(resp_values, min_size=1, max_size=8), st.sampled_from([2, 3]), st.integers(1, 7))
def test_any_written_replies_come_back_framed(values, proto, split):
    w = n.ReplyBuffer(proto)
    encoded = []
    for v in values:
        w.add(v)
        encoded.append((w.take(), False))
    data = b"".join(e for e, _ in encoded)
    assert frames(data, split) == (encoded, 0)
