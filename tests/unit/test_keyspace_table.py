"""The keyspace hash table, shardkv._native.Table: dict behaviour, metadata,
random sampling and SCAN with Redis's reverse-binary cursor."""

import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (Bundle, RuleBasedStateMachine, initialize, invariant,
                                 precondition, rule)

import shardkv._native as n

SETTINGS = settings(max_examples=100, deadline=None)


def make(keys, value=None):
    t = n.Table()
    for k in keys:
        t[k] = k if value is None else value
    return t


def full_scan(t, count=10, between=None):
    """Runs SCAN from cursor 0 until it returns 0; returns every key seen
    (with duplicates). between(step) runs after each call but the last."""
    seen, cursor, step = [], 0, 0
    while True:
        cursor, keys = t.scan(cursor, count)
        seen.extend(keys)
        if cursor == 0:
            return seen
        if between is not None:
            between(step)
        step += 1
        assert step < 10_000_000


def keyset(count, prefix=b"key:"):
    return [prefix + b"%d" % i for i in range(count)]


# ------------------------------------------------------------------ mapping behaviour


def test_new_table_is_empty():
    t = n.Table()
    assert len(t) == 0
    assert t.keys() == []
    assert t.items() == []


def test_set_then_get():
    t = n.Table()
    t[b"k"] = b"v"
    assert t[b"k"] == b"v"


def test_set_increases_len():
    t = make([b"a", b"b"])
    assert len(t) == 2


def test_contains():
    t = make([b"a"])
    assert b"a" in t
    assert b"b" not in t


def test_empty_key_is_a_valid_key():
    t = n.Table()
    t[b""] = 1
    assert t[b""] == 1
    assert b"" in t


def test_binary_keys_are_distinct():
    t = n.Table()
    t[b"a\x00"] = 1
    t[b"a"] = 2
    t[b"a\x00b"] = 3
    assert (t[b"a\x00"], t[b"a"], t[b"a\x00b"]) == (1, 2, 3)


def test_lookup_uses_key_value_not_identity():
    t = n.Table()
    t[b"abc"] = 1
    other = bytes(bytearray(b"abc"))
    assert t[other] == 1


def test_overwrite_replaces_value_and_keeps_len():
    t = n.Table()
    t[b"k"] = 1
    t[b"k"] = 2
    assert t[b"k"] == 2
    assert len(t) == 1


def test_any_object_can_be_a_value():
    t = n.Table()
    value = {"nested": [1, 2]}
    t[b"k"] = value
    assert t[b"k"] is value


def test_none_can_be_a_value():
    t = n.Table()
    t[b"k"] = None
    assert b"k" in t
    assert t[b"k"] is None


def test_getitem_missing_raises_key_error():
    with pytest.raises(KeyError):
        n.Table()[b"missing"]


def test_getitem_missing_in_non_empty_table_raises_key_error():
    with pytest.raises(KeyError):
        make([b"a"])[b"missing"]


def test_get_missing_returns_none():
    assert make([b"a"]).get(b"missing") is None


def test_get_missing_returns_default():
    assert make([b"a"]).get(b"missing", 42) == 42


def test_get_present_ignores_default():
    t = n.Table()
    t[b"a"] = 1
    assert t.get(b"a", 42) == 1


def test_delete_removes_key():
    t = make([b"a", b"b"])
    del t[b"a"]
    assert b"a" not in t
    assert len(t) == 1


def test_delete_missing_raises_key_error():
    t = make([b"a"])
    with pytest.raises(KeyError):
        del t[b"missing"]
    assert len(t) == 1


def test_delete_from_empty_table_raises_key_error():
    with pytest.raises(KeyError):
        del n.Table()[b"x"]


def test_pop_returns_value_and_removes():
    t = n.Table()
    t[b"a"] = 7
    assert t.pop(b"a") == 7
    assert b"a" not in t
    assert len(t) == 0


def test_pop_missing_returns_default():
    assert make([b"a"]).pop(b"missing", "d") == "d"
    assert make([b"a"]).pop(b"missing") is None


def test_pop_of_none_value_returns_none_and_removes():
    t = n.Table()
    t[b"a"] = None
    assert t.pop(b"a", "d") is None
    assert b"a" not in t


def test_keys_lists_every_key_once():
    keys = keyset(100)
    assert sorted(make(keys).keys()) == sorted(keys)


def test_items_pairs_keys_with_values():
    t = n.Table()
    for i in range(50):
        t[b"k%d" % i] = i
    assert sorted(t.items()) == sorted((b"k%d" % i, i) for i in range(50))


def test_iter_yields_keys():
    keys = keyset(20)
    assert sorted(iter(make(keys))) == sorted(keys)


def test_clear_empties_the_table():
    t = make(keyset(100))
    t.clear()
    assert len(t) == 0
    assert t.keys() == []
    assert b"key:1" not in t


def test_table_is_usable_after_clear():
    t = make(keyset(100))
    t.clear()
    t[b"x"] = 1
    assert t[b"x"] == 1
    assert len(t) == 1


def test_many_keys():
    t = n.Table()
    for i in range(20000):
        t[b"%d" % i] = i
    assert len(t) == 20000
    assert all(t[b"%d" % i] == i for i in range(0, 20000, 97))


# ------------------------------------------------------------------ metadata


def test_meta_of_new_key_is_zero():
    t = n.Table()
    t[b"k"] = 1
    assert t.get_meta(b"k") == 0


def test_set_meta_then_get_meta():
    t = make([b"k"])
    t.set_meta(b"k", 1234567890123)
    assert t.get_meta(b"k") == 1234567890123


def test_meta_holds_negative_and_64_bit_values():
    t = make([b"a", b"b"])
    t.set_meta(b"a", -(2**63))
    t.set_meta(b"b", 2**63 - 1)
    assert (t.get_meta(b"a"), t.get_meta(b"b")) == (-(2**63), 2**63 - 1)


def test_set_meta_out_of_range_raises_overflow_error():
    t = make([b"a"])
    with pytest.raises(OverflowError):
        t.set_meta(b"a", 2**63)


def test_get_meta_missing_returns_default():
    t = n.Table()
    assert t.get_meta(b"x") is None
    assert t.get_meta(b"x", -1) == -1


def test_set_meta_on_missing_key_adds_it_with_none_value():
    t = n.Table()
    t.set_meta(b"k", 99)
    assert b"k" in t
    assert t[b"k"] is None
    assert t.get_meta(b"k") == 99
    assert len(t) == 1


def test_overwriting_value_keeps_meta():
    t = make([b"k"])
    t.set_meta(b"k", 5)
    t[b"k"] = b"new"
    assert t.get_meta(b"k") == 5


def test_set_meta_keeps_value():
    t = n.Table()
    t[b"k"] = b"v"
    t.set_meta(b"k", 5)
    assert t[b"k"] == b"v"


def test_meta_survives_table_growth():
    t = n.Table()
    for i in range(1000):
        t.set_meta(b"%d" % i, i * 3)
    assert all(t.get_meta(b"%d" % i) == i * 3 for i in range(1000))


def test_readding_deleted_key_resets_meta():
    t = make([b"k"])
    t.set_meta(b"k", 5)
    del t[b"k"]
    t[b"k"] = 1
    assert t.get_meta(b"k") == 0


# ------------------------------------------------------------------ reference counting


def _refs(obj):
    return sys.getrefcount(obj)


def test_table_holds_a_reference_to_the_value():
    value = object()
    before = _refs(value)
    t = n.Table()
    t[b"k"] = value
    assert _refs(value) == before + 1


def test_delete_releases_the_value():
    value = object()
    before = _refs(value)
    t = n.Table()
    t[b"k"] = value
    del t[b"k"]
    assert _refs(value) == before


def test_overwrite_releases_the_old_value():
    old = object()
    before = _refs(old)
    t = n.Table()
    t[b"k"] = old
    t[b"k"] = 1
    assert _refs(old) == before


def test_pop_hands_over_the_value():
    value = object()
    before = _refs(value)
    t = n.Table()
    t[b"k"] = value
    got = t.pop(b"k")
    assert got is value
    del got
    assert _refs(value) == before


def test_clear_releases_keys_and_values():
    key = b"a key that is not interned %d" % 12345
    value = object()
    kb, vb = _refs(key), _refs(value)
    t = n.Table()
    t[key] = value
    t.clear()
    assert (_refs(key), _refs(value)) == (kb, vb)


def test_deleting_the_table_releases_keys_and_values():
    key = b"another key that is not interned %d" % 54321
    value = object()
    kb, vb = _refs(key), _refs(value)
    t = n.Table()
    t[key] = value
    del t
    assert (_refs(key), _refs(value)) == (kb, vb)


def test_delete_releases_the_key():
    key = b"key object %d" % 777
    before = _refs(key)
    t = n.Table()
    t[key] = 1
    del t[bytes(bytearray(key))]
    assert _refs(key) == before


def test_overwrite_keeps_the_original_key_object():
    key = b"key object %d" % 778
    t = n.Table()
    t[key] = 1
    t[bytes(bytearray(key))] = 2
    assert t.keys()[0] is key


@pytest.mark.parametrize("key", ["text", 12345678901234567890, (1, 2)])
def test_non_bytes_key_is_refused(key):
    t = n.Table()
    with pytest.raises(TypeError):
        t[key] = 1


# ------------------------------------------------------------------ sizing


def test_bucket_count_is_zero_for_new_table():
    assert n.Table().buckets_count == 0


def test_bucket_count_is_a_power_of_two():
    t = n.Table()
    for i in range(3000):
        t[b"%d" % i] = i
        size = t.buckets_count
        assert size & (size - 1) == 0


def test_table_grows_to_hold_its_keys():
    t = make(keyset(5000))
    assert t.buckets_count >= len(t)


def test_table_shrinks_after_mass_deletion():
    keys = keyset(5000)
    t = make(keys)
    grown = t.buckets_count
    for k in keys[10:]:
        del t[k]
    assert t.buckets_count < grown // 8
    assert sorted(t.keys()) == sorted(keys[:10])


# ------------------------------------------------------------------ random keys


def test_random_key_of_empty_table_is_none():
    assert n.Table().random_key() is None


def test_random_key_of_emptied_table_is_none():
    t = make(keyset(100))
    for k in keyset(100):
        del t[k]
    assert t.random_key() is None


def test_random_key_is_a_present_key():
    keys = set(keyset(50))
    t = make(keys)
    for _ in range(200):
        assert t.random_key() in keys


def test_random_key_reaches_every_key_of_a_small_table():
    keys = set(keyset(8))
    t = make(keys)
    assert {t.random_key() for _ in range(2000)} == keys


def test_random_key_after_mass_deletion_finds_the_survivor():
    keys = keyset(2000)
    t = make(keys)
    for k in keys[1:]:
        del t[k]
    assert t.random_key() == keys[0]


def test_sample_of_empty_table_is_empty():
    assert n.Table().sample(5) == []


def test_sample_returns_count_pairs_of_key_and_meta():
    t = make(keyset(10))
    for i, k in enumerate(keyset(10)):
        t.set_meta(k, i)
    got = t.sample(25)
    assert len(got) == 25
    for key, meta in got:
        assert t.get_meta(key) == meta


def test_sample_with_zero_or_negative_count_is_empty():
    t = make(keyset(10))
    assert t.sample(0) == []
    assert t.sample(-3) == []


# ------------------------------------------------------------------ scan


def test_scan_of_empty_table_returns_cursor_zero():
    assert n.Table().scan(0, 10) == (0, [])


def test_scan_of_emptied_table_returns_cursor_zero():
    t = make(keyset(10))
    t.clear()
    assert t.scan(0, 10) == (0, [])


def test_scan_returns_every_key_of_a_static_table_exactly_once():
    keys = keyset(1000)
    seen = full_scan(make(keys), count=10)
    assert sorted(seen) == sorted(keys)


@pytest.mark.parametrize("count", [1, 3, 100, 100000])
def test_scan_with_any_count_covers_the_table(count):
    keys = keyset(300)
    assert sorted(full_scan(make(keys), count=count)) == sorted(keys)


def test_scan_with_big_count_finishes_in_one_call():
    keys = keyset(100)
    cursor, got = make(keys).scan(0, 1000)
    assert cursor == 0
    assert sorted(got) == sorted(keys)


def test_scan_returns_about_count_keys_per_call():
    t = make(keyset(10000))
    cursor, got = t.scan(0, 10)
    assert cursor != 0
    assert 10 <= len(got) < 40


def test_scan_cursor_sequence_is_deterministic():
    t = make(keyset(500))
    c1 = t.scan(0, 5)
    c2 = t.scan(0, 5)
    assert c1 == c2


def test_scan_survives_growth_between_calls():
    initial = keyset(16, b"old:")
    t = make(initial)
    extra = iter(keyset(20000, b"new:"))

    def grow(step):
        for _ in range(500):
            k = next(extra, None)
            if k is not None:
                t[k] = 1

    seen = set(full_scan(t, count=2, between=grow))
    assert set(initial) <= seen


def test_scan_survives_shrinking_between_calls():
    keep = keyset(20, b"keep:")
    doomed = keyset(20000, b"gone:")
    t = make(keep + doomed)
    big = t.buckets_count
    doomed_iter = iter(doomed)

    def shrink(step):
        for _ in range(2000):
            k = next(doomed_iter, None)
            if k is not None:
                del t[k]

    seen = set(full_scan(t, count=5, between=shrink))
    assert t.buckets_count < big
    assert set(keep) <= seen


def test_scan_survives_grow_then_shrink_between_calls():
    keep = keyset(50, b"keep:")
    t = make(keep)
    sizes = set()

    def churn(step):
        temp = keyset(3000, b"tmp%d:" % step)
        for k in temp:
            t[k] = 1
        sizes.add(t.buckets_count)
        for k in temp:
            del t[k]
        sizes.add(t.buckets_count)

    seen = set(full_scan(t, count=3, between=churn))
    assert len(sizes) > 1
    assert set(keep) <= seen


scan_plan = st.lists(st.one_of(
    st.tuples(st.just("add"), st.integers(min_value=1, max_value=3000)),
    st.tuples(st.just("del_temp"), st.sampled_from([0.5, 0.9, 1.0])),
    st.tuples(st.just("del_original"), st.integers(min_value=1, max_value=5)),
), max_size=30)


@SETTINGS
@given(st.integers(min_value=1, max_value=100), scan_plan,
       st.lists(st.integers(min_value=1, max_value=20), min_size=1, max_size=5))
def test_property_scan_returns_keys_present_for_the_whole_scan(start_size, plan, counts):
    """Between SCAN calls the plan adds fresh keys (growing the table) or
    deletes temporary keys or originals (shrinking it). Every original that
    was never deleted must be returned."""
    originals = keyset(start_size, b"o:")
    t = make(originals)
    temp, deleted = [], set()
    fresh = 0
    steps = iter(plan)
    seen, cursor, step = set(), 0, 0
    while True:
        cursor, got = t.scan(cursor, counts[step % len(counts)])
        step += 1
        seen.update(got)
        if cursor == 0:
            break
        op, arg = next(steps, ("none", 0))
        if op == "add":
            for _ in range(arg):
                k = b"t:%d" % fresh
                fresh += 1
                t[k] = 1
                temp.append(k)
        elif op == "del_temp":
            doomed, temp = temp[:int(len(temp) * arg)], temp[int(len(temp) * arg):]
            for k in doomed:
                del t[k]
        elif op == "del_original":
            for k in originals[len(deleted):len(deleted) + arg]:
                del t[k]
                deleted.add(k)
    assert set(originals) - deleted <= seen
    # nothing that was never in the table is returned
    assert seen <= set(originals) | {b"t:%d" % i for i in range(fresh)}


# ------------------------------------------------------------------ stateful model


class TableMachine(RuleBasedStateMachine):
    """Random operations against a dict model. A SCAN runs alongside: keys
    present from the start of the current scan until its end must be seen."""

    keys = Bundle("keys")

    @initialize()
    def setup(self):
        self.t = n.Table()
        self.model = {}
        self.meta = {}
        self.counter = 0
        self._start_scan()

    def _start_scan(self):
        self.cursor = 0
        self.scan_seen = set()
        self.stable = set(self.model)   # present since the scan began

    def _drop(self, k):
        self.stable.discard(k)

    @rule(target=keys, k=st.binary(max_size=6))
    def new_key(self, k):
        return k

    @rule(k=keys, v=st.integers())
    def set_value(self, k, v):
        self.t[k] = v
        self.model[k] = v
        self.meta.setdefault(k, 0)

    @rule(k=keys)
    def delete(self, k):
        if k in self.model:
            del self.t[k]
            del self.model[k]
            del self.meta[k]
            self._drop(k)
        else:
            with pytest.raises(KeyError):
                del self.t[k]

    @rule(k=keys)
    def pop(self, k):
        assert self.t.pop(k, "absent") == self.model.pop(k, "absent")
        self.meta.pop(k, None)
        self._drop(k)

    @rule(k=keys)
    def get(self, k):
        assert self.t.get(k, "absent") == self.model.get(k, "absent")
        assert (k in self.t) == (k in self.model)

    @rule(k=keys, m=st.integers(min_value=-(2**63), max_value=2**63 - 1))
    def set_meta(self, k, m):
        self.t.set_meta(k, m)
        self.model.setdefault(k, None)
        self.meta[k] = m

    @rule(k=keys)
    def get_meta(self, k):
        assert self.t.get_meta(k) == self.meta.get(k)

    @rule(many=st.sampled_from([1, 50, 500, 3000]))
    def add_many(self, many):
        for _ in range(many):
            k = b"bulk:%d" % self.counter
            self.counter += 1
            self.t[k] = 0
            self.model[k] = 0
            self.meta[k] = 0

    @rule(fraction=st.sampled_from([0.5, 0.95, 1.0]))
    def delete_many(self, fraction):
        victims = [k for k in self.model if k.startswith(b"bulk:")]
        for k in victims[:int(len(victims) * fraction)]:
            del self.t[k]
            del self.model[k]
            del self.meta[k]
            self._drop(k)

    @precondition(lambda self: len(self.model) < 5000)
    @rule()
    def clear(self):
        self.t.clear()
        self.model.clear()
        self.meta.clear()
        self._start_scan()

    def _scan_once(self, count):
        self.cursor, got = self.t.scan(self.cursor, count)
        self.scan_seen.update(got)
        assert all(k in self.model for k in got)
        if self.cursor == 0:
            assert self.stable <= self.scan_seen
            self._start_scan()
            return True
        return False

    @rule(count=st.integers(min_value=1, max_value=20), calls=st.integers(min_value=1, max_value=30))
    def scan_steps(self, count, calls):
        for _ in range(calls):
            if self._scan_once(count):
                break

    @rule()
    def restart_scan(self):
        # a client may abandon a scan at any time and start a new one
        self._start_scan()

    def teardown(self):
        # finish the scan in progress without further changes
        if getattr(self, "t", None) is not None:
            while not self._scan_once(10):
                pass

    @rule()
    def random_key(self):
        k = self.t.random_key()
        if self.model:
            assert k in self.model
        else:
            assert k is None

    @invariant()
    def advance_scan(self):
        # a SCAN client makes one small call after every operation
        self._scan_once(3)

    @invariant()
    def same_len(self):
        assert len(self.t) == len(self.model)

    @invariant()
    def same_contents(self):
        if len(self.model) < 200:
            assert sorted(self.t.items(), key=lambda kv: kv[0]) == \
                sorted(self.model.items(), key=lambda kv: kv[0])


TableMachine.TestCase.settings = settings(max_examples=100, stateful_step_count=50, deadline=None)
test_table_state_machine = TableMachine.TestCase
