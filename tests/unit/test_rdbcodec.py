"""The RDB codec without sockets: CRC64, LZF, listpacks, intsets, lengths,
strings, and DUMP payloads checked against bytes valkey 9.1 and redis 7.0
produced for the same values."""

import os
import random

import pytest

from shardkv import _rdbcodec as codec
from shardkv.persistence import rdb
from shardkv.types.hash import Hash
from shardkv.types.set import SetValue

# DUMP outputs of valkey 9.1 (RDB version 80) and redis-server 7.0 (version 10)
VALKEY_DUMPS = {
    b"hello": b"\x00\x05helloP\x00\xacX\x16\xe7\xfbfG\xfe",
    b"12345": b"\x00\xc190P\x00R\xbe#\xb6\r\xaeoM",
}
REDIS_DUMP_HELLO = b"\x00\x05hello\n\x00cr\xdfve4 \n"
VALKEY_LIST = b"\x12\x01\x02\x10\x10\x00\x00\x00\x03\x00\x81a\x02\x01\x01\x82bb\x03\xffP\x00\x10 :\x81 \xcf\xf9i"
VALKEY_INTSET = b"\x0b\x0e\x02\x00\x00\x00\x03\x00\x00\x00\x01\x00\x02\x00\x03\x00P\x00j(\x95s\xf3<*\xef"
VALKEY_SET_LISTPACK = b"\x14\r\r\x00\x00\x00\x02\x00\x81a\x02\x81b\x02\xffP\x00\xac\x19~V*nX)"
VALKEY_HASH = (b"\x10\x12\x12\x00\x00\x00\x04\x00\x81f\x02\x81v\x02\x81g\x02\x01\x01\xffP\x00"
               b"\xec\xeblr\xc3\xa8\x8f\xe8")
VALKEY_HASH_TTL = (b"\x16\x02\x01f\x01v\x00\xd8\xc3,\xbb\x03\x00\x00\x01g\xc0\x01\xff\xff\xff\xff\xff"
                   b"\xff\xff\xffP\x00\xb9\xfc\xc2CZ\xbd8\xe8")
VALKEY_ZSET = (b"\x11\x14\x14\x00\x00\x00\x04\x00\x81a\x02\x831.5\x04\x81b\x02\x02\x01\xffP\x00"
               b"5(}\xb41J\xe0\x97")


def test_crc64_check_value():
    assert codec.crc64(b"123456789") == 0xe9c6d914c4b8d9ca
    assert codec.crc64(b"") == 0


def test_crc64_continues_across_chunks():
    data = os.urandom(1000)
    assert codec.crc64(data[300:], codec.crc64(data[:300])) == codec.crc64(data)


@pytest.mark.parametrize("payload", list(VALKEY_DUMPS.values()) + [REDIS_DUMP_HELLO, VALKEY_LIST, VALKEY_HASH])
def test_crc64_of_real_dump_payloads(payload):
    assert codec.crc64(payload[:-8]).to_bytes(8, "little") == payload[-8:]


@pytest.mark.parametrize("n", [4, 21, 100, 5000, 70000])
def test_lzf_round_trip(n):
    rng = random.Random(n)
    for data in (b"a" * n, bytes(rng.choice(b"abc") for _ in range(n)), (b"hello world %d " * n)[:n]):
        packed = codec.lzf_compress(data)
        if n >= 100:
            assert packed is not None and len(packed) < len(data)
        if packed is not None:
            assert codec.lzf_decompress(packed, len(data)) == data


def test_lzf_incompressible_is_none():
    assert codec.lzf_compress(os.urandom(100)) is None


def test_lzf_decompress_rejects_garbage():
    with pytest.raises(codec.RdbError):
        codec.lzf_decompress(b"\xe0\xff\xff", 100)
    with pytest.raises(codec.RdbError):
        codec.lzf_decompress(b"\x05ab", 6)


def test_listpack_matches_valkey_bytes():
    # the listpack inside valkey's DUMP of RPUSH l a 1 bb
    assert codec.listpack_encode([b"a", b"1", b"bb"]) == VALKEY_LIST[4:4 + 16]


@pytest.mark.parametrize("values", [
    [b"0", b"127", b"128", b"-1", b"-4096", b"4095", b"4096", b"-4097", b"32767", b"-32768",
     b"32768", b"8388607", b"-8388608", b"8388608", b"2147483647", b"-2147483648", b"2147483648",
     b"9223372036854775807", b"-9223372036854775808", b"9223372036854775808"],
    [b"", b"x" * 63, b"y" * 64, b"z" * 4095, b"w" * 4096, b"01", b"-0", b"+1", b" 1", b"1.0"],
])
def test_listpack_round_trip(values):
    assert codec.listpack_decode(codec.listpack_encode(values)) == values


def test_listpack_integers_are_stored_as_integers():
    lp = codec.listpack_encode([b"5"])
    assert lp[6] == 5 and len(lp) == 6 + 2 + 1


@pytest.mark.parametrize("bad", [b"", b"\x07\x00\x00\x00\x00\x00", b"\x08\x00\x00\x00\x01\x00\x81\xff",
                                 b"\x09\x00\x00\x00\x01\x00\x81a\x05\xff"])
def test_listpack_rejects_malformed(bad):
    with pytest.raises(codec.RdbError):
        codec.listpack_decode(bad)


def test_intset_matches_valkey_and_round_trips():
    assert codec.intset_encode([3, 1, 2]) == VALKEY_INTSET[2:2 + 14]
    for values in ([1, -70000], [2**40, -1], [0]):
        assert codec.intset_decode(codec.intset_encode(values)) == sorted(values)
    with pytest.raises(codec.RdbError):
        codec.intset_decode(b"\x02\x00\x00\x00\x02\x00\x00\x00\x02\x00\x01\x00")   # not sorted


def test_ziplist_decode():
    # zlbytes zltail zllen, entries "a" and 12 (immediate) and 300 (int16), end
    body = b"\x00\x01a" + b"\x03\xfd" + b"\x02\xc0\x2c\x01"
    total = 10 + len(body) + 1
    zl = total.to_bytes(4, "little") + b"\x00\x00\x00\x00" + b"\x03\x00" + body + b"\xff"
    assert codec.ziplist_decode(zl) == [b"a", b"12", b"300"]


def test_reader_lengths_and_strings():
    w = codec.Writer(True, True)
    for n in (0, 63, 64, 16383, 16384, 2**32 - 1, 2**32):
        w.write_len(n)
    for s in (b"-128", b"127", b"32767", b"-2147483648", b"2147483648", b"007", b"x" * 200):
        w.write_string(s)
    r = codec.Reader(w.take())
    assert [r.read_len() for _ in range(7)] == [0, 63, 64, 16383, 16384, 2**32 - 1, 2**32]
    assert [r.read_string() for _ in range(7)] == [b"-128", b"127", b"32767", b"-2147483648",
                                                   b"2147483648", b"007", b"x" * 200]
    assert r.remaining == 0


def test_reader_refuses_wild_lengths():
    # a 4 GB string announced in 5 bytes: refused before any allocation
    with pytest.raises(codec.RdbError):
        codec.Reader(b"\x80\xff\xff\xff\xff").read_string()
    # LZF claiming to expand 1 byte into a terabyte
    with pytest.raises(codec.RdbError):
        codec.Reader(b"\xc3\x01\x81\x00\x00\x01\x00\x00\x00\x00\x00a").read_string()


@pytest.mark.parametrize("payload,check", [
    (VALKEY_DUMPS[b"hello"], lambda v: v == b"hello"),
    (VALKEY_DUMPS[b"12345"], lambda v: v == b"12345"),
    (REDIS_DUMP_HELLO, lambda v: v == b"hello"),
    (VALKEY_LIST, lambda v: list(v) == [b"a", b"1", b"bb"] and v.encoding() == "listpack"),
    (VALKEY_INTSET, lambda v: sorted(v.members()) == [b"1", b"2", b"3"] and v.encoding() == "intset"),
    (VALKEY_SET_LISTPACK, lambda v: v.members() == [b"a", b"b"] and v.encoding() == "listpack"),
    (VALKEY_HASH, lambda v: dict(v.d) == {b"f": b"v", b"g": b"1"} and v.encoding() == "listpack"),
    (VALKEY_HASH_TTL, lambda v: v.ttl == {b"f": 4102444800000} and v.encoding() == "hashtable"),
    (VALKEY_ZSET, lambda v: v.items() == [(b"a", 1.5), (b"b", 2.0)]),
])
def test_restore_valkey_and_redis_payloads(payload, check):
    version = rdb.check_dump_payload(payload)
    assert version in (10, 80)
    assert check(rdb.restore_value(payload, version, rdb.Limits(), 0))


def test_dump_payloads_match_redis_7_bytes():
    # strings and listpack hashes are written exactly as redis 7.0 writes them
    assert rdb.dump_payload(b"hello", 0) == REDIS_DUMP_HELLO
    h = Hash()
    h.d = {b"f": b"v", b"g": b"1"}
    redis_hash = VALKEY_HASH[:-10] + b"\n\x00"
    assert rdb.dump_payload(h, 0) == redis_hash + codec.crc64(redis_hash).to_bytes(8, "little")


def test_hash_with_field_ttl_dumps_as_valkey_does():
    h = Hash()
    h.set(b"f", b"v", 0, 512, 64, expiry=4102444800000)
    h.set(b"g", b"1", 0, 512, 64)
    assert rdb.dump_payload(h, 0) == VALKEY_HASH_TTL


def test_bad_payloads():
    assert rdb.check_dump_payload(b"short") is None
    assert rdb.check_dump_payload(REDIS_DUMP_HELLO[:-1] + b"\x00") is None
    future = b"\x00\x01a" + (99).to_bytes(2, "little")
    assert rdb.check_dump_payload(future + codec.crc64(future).to_bytes(8, "little")) is None
    # a set announcing 2**32 members in a few bytes
    wild = b"\x02\x80\xff\xff\xff\xff" + (10).to_bytes(2, "little")
    wild += codec.crc64(wild).to_bytes(8, "little")
    with pytest.raises(codec.RdbError):
        rdb.restore_value(wild, 10, rdb.Limits(), 0)
    # duplicate set members
    dup = b"\x02\x02\x01a\x01a" + (10).to_bytes(2, "little")
    dup += codec.crc64(dup).to_bytes(8, "little")
    with pytest.raises(codec.RdbError):
        rdb.restore_value(dup, 10, rdb.Limits(), 0)


def test_set_encodings_after_load():
    limits = rdb.Limits()
    many = SetValue()
    for i in range(200):
        many.add(b"m%d" % i, limits.set)
    v = rdb.restore_value(rdb.dump_payload(many, 0), 10, limits, 0)
    assert v.encoding() == "hashtable" and sorted(v.members()) == sorted(many.members())


def test_snapshot_rejects_bad_crc_and_truncation():
    class S:
        dbs = []
    import io
    from shardkv.native import _native
    s = S()
    db = _native.Database(0)
    db.data[b"k"] = b"v"
    s.dbs = [db]
    out = io.BytesIO()
    rdb.write_snapshot(s, out)
    data = out.getvalue()
    snap = rdb.load_snapshot(data)
    assert snap.dbs[0] == [(b"k", b"v", -1)]
    with pytest.raises(codec.RdbError, match="checksum"):
        rdb.load_snapshot(data[:-1] + bytes([data[-1] ^ 1]))
    for cut in (5, 20, len(data) - 9, len(data) - 1):
        with pytest.raises(codec.RdbError):
            rdb.load_snapshot(data[:cut])


def test_stream_round_trip_keeps_nodes_tombstones_and_groups():
    from shardkv.types.stream import Group, Nack, StreamValue, pack
    v = StreamValue()
    for i in range(250):
        flat = [b"a", b"%d" % i, b"b", b"x" * (i % 7)] if i % 3 else [b"c", b"%d" % i]
        v.append(pack(1000 + i // 5, i % 5), flat, 100, 4096)
    assert v.delete(pack(1000, 1))
    g = v.groups = {b"g1": Group(pack(1000, 4), 4)}
    cons = g[b"g1"].create_consumer(b"alice", 123)
    for i in (pack(1000, 0), pack(1000, 2)):
        nack = Nack(cons, 456)
        g[b"g1"].pel[i] = cons.pel[i] = nack
    payload = rdb.dump_payload(v, 0)
    back = rdb.restore_value(payload, rdb.check_dump_payload(payload), rdb.Limits(), 0)
    assert back.range(0, 2**128 - 1) == v.range(0, 2**128 - 1)
    assert back.keys == v.keys and [n.live for n in back.nodes] == [n.live for n in v.nodes]
    assert [n.deleted for n in back.nodes] == [n.deleted for n in v.nodes]
    assert [n.lp_bytes() for n in back.nodes][1:] == [n.lp_bytes() for n in v.nodes][1:]
    assert (back.length, back.last_id, back.entries_added) == (v.length, v.last_id, v.entries_added)
    bg = back.groups[b"g1"]
    assert list(bg.pel) == [pack(1000, 0), pack(1000, 2)] and bg.pel[pack(1000, 0)].consumer.name == b"alice"
    assert bg.pel[pack(1000, 0)].delivery_time == 456 and bg.entries_read == 4


# ---------------------------------------------------------------- the AOF's command stream

def _resp(*argv):
    return b"".join([b"*%d\r\n" % len(argv)] + [b"$%d\r\n%s\r\n" % (len(a), a) for a in argv])


def test_aof_scan_every_prefix_is_whole_commands_or_truncated():
    cmds = [[b"SELECT", b"0"], [b"SET", b"k", b"v\r\n"], [b"MULTI"], [b"INCR", b"n"], [b"EXEC"]]
    data = b"".join(_resp(*c) for c in cmds)
    bounds = [0]
    for c in cmds:
        bounds.append(bounds[-1] + len(_resp(*c)))
    for cut in range(len(data) + 1):
        count, end, status, _ = codec.scan_commands(data[:cut])
        last = max(b for b in bounds if b <= cut)
        assert (count, end) == (bounds.index(last), last)
        assert status == (0 if cut in bounds else 1)


@pytest.mark.parametrize("bad", [b"+OK\r\n", b"*1\r\n+SET\r\n", b"*x\r\n", b"*1\r\n$3\r\nabcd\r\n",
                                 b"*0\r\n", b"*1\r\n$-1\r\n", b"*1\r\n$1\n"])
def test_aof_scan_rejects_malformed_streams(bad):
    count, end, status, offset = codec.scan_commands(_resp(b"PING") + bad)
    assert (count, end, status) == (1, 14, 2) and offset >= 14


def test_manifest_round_trip_and_errors():
    from shardkv.persistence.aof import AofError, format_manifest, parse_manifest
    text = format_manifest(("appendonly.aof.2.base.rdb", 2), [("appendonly.aof.2.incr.aof", 2)])
    assert text == ("file appendonly.aof.2.base.rdb seq 2 type b\n"
                    "file appendonly.aof.2.incr.aof seq 2 type i\n")
    assert parse_manifest(text) == [("appendonly.aof.2.base.rdb", 2, "b"), ("appendonly.aof.2.incr.aof", 2, "i")]
    for bad in ("file a seq x type b\n", "file a seq 1\n", "file ../a seq 1 type i\n",
                "file a seq 1 type b\nfile b seq 2 type b\n"):
        with pytest.raises(AofError):
            parse_manifest(bad)
