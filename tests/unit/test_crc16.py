"""CRC16 (XMODEM) and Redis Cluster hash slots: shardkv._native.crc16 / key_slot.

The expected slots in VALKEY_SLOTS were read from `CLUSTER KEYSLOT` on
valkey-server 9.1.2 for the keys that _sample_keys() generates.
"""

import binascii
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import shardkv._native as n

SETTINGS = settings(max_examples=200, deadline=None)


def reference_crc16(data: bytes) -> int:
    """Bit-by-bit CRC16-XMODEM: polynomial 0x1021, initial value 0, no reflection."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def reference_key_slot(key: bytes) -> int:
    """Redis's keyHashSlot(): hash the part between the first '{' and the first
    '}' after it, when that part is not empty; otherwise the whole key."""
    start = key.find(b"{")
    if start != -1:
        end = key.find(b"}", start + 1)
        if end != -1 and end != start + 1:
            key = key[start + 1:end]
    return reference_crc16(key) & 16383


# ------------------------------------------------------------------ crc16


def test_crc16_check_value_of_123456789():
    assert n.crc16(b"123456789") == 0x31C3


def test_crc16_of_empty_input_is_zero():
    assert n.crc16(b"") == 0


def test_crc16_of_single_zero_byte_is_zero():
    assert n.crc16(b"\x00") == 0


def test_crc16_of_single_byte_a():
    assert n.crc16(b"A") == reference_crc16(b"A") == 0x58E5


def test_crc16_accepts_bytearray_and_memoryview():
    assert n.crc16(bytearray(b"123456789")) == 0x31C3
    assert n.crc16(memoryview(b"123456789")) == 0x31C3


def test_crc16_rejects_str():
    with pytest.raises(TypeError):
        n.crc16("123456789")


def test_crc16_result_fits_in_16_bits_for_high_bytes():
    value = n.crc16(b"\xff" * 1000)
    assert 0 <= value <= 0xFFFF
    assert value == reference_crc16(b"\xff" * 1000)


@SETTINGS
@given(st.binary(max_size=300))
def test_crc16_matches_bitwise_reference(data):
    assert n.crc16(data) == reference_crc16(data)


@SETTINGS
@given(st.binary(max_size=2000))
def test_crc16_matches_binascii_crc_hqx(data):
    assert n.crc16(data) == binascii.crc_hqx(data, 0)


# ------------------------------------------------------------------ key_slot


def test_key_slot_of_foo():
    assert n.key_slot(b"foo") == 12182


def test_key_slot_of_empty_key_is_zero():
    assert n.key_slot(b"") == 0


def test_key_slot_is_crc16_mod_16384_without_braces():
    key = b"somekey:without:tags"
    assert n.key_slot(key) == n.crc16(key) % 16384


def test_key_slot_hash_tag_makes_keys_share_a_slot():
    assert n.key_slot(b"{user1000}.following") == n.key_slot(b"{user1000}.followers")


def test_key_slot_hash_tag_hashes_only_the_tag():
    assert n.key_slot(b"{user1000}.following") == n.key_slot(b"user1000")


def test_key_slot_tag_in_the_middle_of_the_key():
    assert n.key_slot(b"prefix{tag}suffix") == n.key_slot(b"tag")


def test_key_slot_empty_tag_hashes_whole_key():
    assert n.key_slot(b"foo{}{bar}") == n.crc16(b"foo{}{bar}") % 16384
    assert n.key_slot(b"foo{}{bar}") != n.key_slot(b"bar")


def test_key_slot_first_close_brace_after_first_open_brace_ends_tag():
    # "foo{{bar}}zap": the tag is "{bar"
    assert n.key_slot(b"foo{{bar}}zap") == n.crc16(b"{bar") % 16384


def test_key_slot_only_first_tag_counts():
    assert n.key_slot(b"foo{bar}{zap}") == n.key_slot(b"bar")


def test_key_slot_open_brace_without_close_hashes_whole_key():
    assert n.key_slot(b"foo{bar") == n.crc16(b"foo{bar") % 16384


def test_key_slot_close_brace_before_open_brace_is_not_a_tag():
    assert n.key_slot(b"foo}bar{") == n.crc16(b"foo}bar{") % 16384


def test_key_slot_close_before_open_then_real_tag():
    # the '}' before the first '{' is ignored; the tag is "x"
    assert n.key_slot(b"}a{x}") == n.key_slot(b"x")


def test_key_slot_lone_braces():
    assert n.key_slot(b"{") == n.crc16(b"{") % 16384
    assert n.key_slot(b"}") == n.crc16(b"}") % 16384
    assert n.key_slot(b"{}") == n.crc16(b"{}") % 16384


def test_key_slot_tag_at_end_of_key():
    assert n.key_slot(b"abc{d}") == n.key_slot(b"d")


def test_key_slot_binary_tag():
    assert n.key_slot(b"\x00{\xff\x00}\x01") == n.crc16(b"\xff\x00") % 16384


def test_key_slot_accepts_bytearray():
    assert n.key_slot(bytearray(b"foo")) == 12182


@SETTINGS
@given(st.binary(max_size=64))
def test_key_slot_matches_reference_on_binary_keys(key):
    assert n.key_slot(key) == reference_key_slot(key)


@SETTINGS
@given(st.lists(st.sampled_from([b"{", b"}", b"a", b"b", b"\x00", b"\xff"]), max_size=16))
def test_key_slot_matches_reference_on_brace_heavy_keys(parts):
    key = b"".join(parts)
    assert n.key_slot(key) == reference_key_slot(key)


@SETTINGS
@given(st.binary(min_size=1, max_size=20).filter(lambda t: b"}" not in t),
       st.binary(max_size=20).filter(lambda p: b"{" not in p),
       st.binary(max_size=20))
def test_key_slot_of_tagged_key_equals_slot_of_tag(tag, prefix, suffix):
    assert n.key_slot(prefix + b"{" + tag + b"}" + suffix) == n.key_slot(tag)


@SETTINGS
@given(st.binary(max_size=64))
def test_key_slot_is_in_range(key):
    assert 0 <= n.key_slot(key) < 16384


# ------------------------------------------------------------------ valkey cross-check


def _sample_keys(seed, count):
    rnd = random.Random(seed)
    alphabet = b"{}{}ab_:xyz0189"
    keys = []
    for i in range(count):
        size = rnd.randrange(0, 20)
        if i % 3 == 2:
            keys.append(bytes(rnd.randrange(256) for _ in range(size)))
        else:
            keys.append(bytes(rnd.choice(alphabet) for _ in range(size)))
    return keys


# CLUSTER KEYSLOT on valkey-server 9.1.2 for _sample_keys(20240517, 300)
VALKEY_SLOTS = [
    8148, 8287, 0, 11825, 1375, 3265, 2671, 2276, 16141, 8944, 16111, 14722, 14040, 8252, 3720,
    840, 6619, 983, 11471, 0, 12523, 0, 14171, 13262, 5102, 5010, 8699, 11854, 15787, 8088, 4857,
    4965, 241, 11681, 2824, 10097, 5966, 15677, 9880, 13029, 16287, 508, 16287, 6002, 12358, 0,
    209, 10231, 14770, 13025, 2158, 178, 8119, 8030, 15172, 976, 4774, 11078, 3043, 3141, 9581,
    2628, 603, 1978, 5569, 6425, 151, 3344, 8960, 5130, 127, 6975, 13701, 3084, 0, 13559, 0, 4148,
    10276, 5569, 12091, 11034, 7875, 16235, 13907, 9067, 130, 11493, 8157, 4057, 12222, 5865,
    3267, 7118, 14886, 3548, 2728, 12610, 5096, 10660, 8457, 1386, 9991, 4415, 2727, 624, 7116,
    472, 8984, 7605, 5666, 11070, 4677, 16021, 3003, 4219, 12018, 0, 13479, 11700, 2610, 626,
    14881, 7873, 6347, 9256, 4034, 0, 14307, 10106, 10331, 2100, 8157, 12807, 7128, 5266, 7168,
    15978, 13320, 11795, 10279, 2243, 12482, 173, 13803, 4092, 15969, 11684, 6069, 9929, 3116,
    7870, 0, 7845, 8733, 4353, 6151, 11460, 0, 12222, 11128, 3828, 3596, 803, 0, 10877, 10589,
    3938, 8684, 1939, 8790, 15257, 5566, 5232, 16259, 960, 13938, 9660, 2271, 15163, 15133, 11032,
    13272, 13101, 2135, 5830, 11060, 11170, 14179, 828, 11831, 9025, 9645, 15571, 3804, 3420,
    12944, 8829, 12203, 366, 9919, 7262, 500, 262, 9842, 11864, 6873, 2534, 14171, 9704, 2802,
    1989, 12387, 0, 2417, 7808, 9127, 5708, 3204, 7675, 13019, 15989, 764, 6772, 13612, 4561,
    13048, 8848, 2907, 7625, 6664, 12090, 11369, 10301, 16273, 15429, 4550, 11048, 12478, 12886,
    10617, 6100, 2725, 6238, 14312, 6358, 7455, 9643, 3483, 121, 6667, 15344, 11128, 10052, 6052,
    15232, 14491, 10195, 4885, 8157, 12977, 12528, 8047, 15363, 11876, 5374, 15020, 1353, 2686,
    5590, 9902, 15392, 11826, 2532, 12222, 3427, 13009, 2212, 6654, 8835, 14171, 4215, 12222,
    14311, 4846, 7445, 8391, 0, 14623, 11115, 9224, 6926, 12205, 11726, 16316, 14814, 11714, 6098,
    0, 12302,
]


def test_key_slot_matches_valkey_cluster_keyslot_on_300_keys():
    keys = _sample_keys(20240517, 300)
    assert len(VALKEY_SLOTS) == len(keys)
    mismatches = [(k, want, n.key_slot(k)) for k, want in zip(keys, VALKEY_SLOTS, strict=True)
                  if n.key_slot(k) != want]
    assert mismatches == []
