"""SORT and SORT_RO, as Valkey 9.1's sort.c answers them.

SORT key [BY pattern] [LIMIT offset count] [GET pattern ...] [ASC|DESC]
[ALPHA] [STORE destination]. The source is a list, a set or (once the type
exists) a sorted set; a missing key sorts as an empty list.

What follows Valkey to the letter:
- options are parsed first (so a syntax error beats WRONGTYPE); a BY pattern
  without '*' means "don't sort" (and stays so even if a later BY has one);
- numeric sorting parses every weight as valkey_strtod does (decimal and
  inf only; blanks, hex, trailing garbage, NaN and ERANGE refused); a BY
  key that is missing (or not a string / hash) weighs 0; equal weights fall back to a
  binary comparison of the elements;
- ALPHA compares with strcoll (the C locale: bytes up to the first NUL), but
  with STORE as a binary comparison (compareStringObjects);
- a set sorted with BY nosort and STORE is sorted ALPHA so the stored list
  is deterministic; without STORE it comes out in set iteration order;
- a list with BY nosort keeps its order, DESC reads it from the tail, and
  LIMIT takes its range from that order;
- patterns: the first '*' takes the element; "#" is the element itself;
  "key*->field" reads a hash field; a pattern with no '*' finds nothing;
- STORE writes a list (replacing the destination, no TTL kept), or deletes
  the destination when the result is empty, and replies the count.

Sorted sets: ZSetValue.sort_elements() gives the members in ascending score
order (the skiplist walk); SORT uses it for both the BY nosort and sorting
paths. As Valkey does, SORT (and SORT_RO) leaves a sorted set it reads
skiplist-encoded: once the options parse and the type checks, a listpack is
converted for good.
"""

from __future__ import annotations

import math
import re

from shardkv import errors
from shardkv.commands.common import int_arg, notify
from shardkv.commands.table import command
from shardkv.errors import ReplyError
from shardkv.native import _native
from shardkv.types.list import ListValue
from shardkv.types.set import SetValue
from shardkv.types.zset import SKIPLIST

ROUTED = _native.CLIENT_FLAGS["ROUTED"]
NOT_DOUBLE = "ERR One or more scores can't be converted into double"
BY_DENIED = ("ERR BY option of SORT denied in Cluster mode when keys formed by the pattern "
             "may be in different slots.")
GET_DENIED = ("ERR GET option of SORT denied in Cluster mode when keys formed by the pattern "
              "may be in different slots.")
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1

_NUMBER = re.compile(rb"[+-]?(?:([0-9]+)\.?([0-9]*)|\.([0-9]+))(?:[eE][+-]?[0-9]+)?\Z")
_INFINITY = re.compile(rb"[+-]?(?:inf|infinity)\Z", re.IGNORECASE)


def _score(b):
    """A weight as Valkey 9.1 reads it (valkey_strtod over the bytes before
    the first NUL, then the end/ERANGE/NaN checks): None when SORT would
    report a conversion error. Decimal only: no blanks, no hex, no NaN; a
    nonzero value that rounds to 0 or to infinity is out of range."""
    b = _cstr(bytes(b))
    m = _NUMBER.match(b)
    if m is None:
        if _INFINITY.match(b):
            return -math.inf if b[:1] == b"-" else math.inf
        return None
    v = float(b)
    if math.isinf(v):
        return None
    if v == 0.0 and any(ch not in b"0" for g in m.groups() if g for ch in g):
        return None
    return v


def _cstr(b):
    """What strcmp/strcoll (C locale) compares: the bytes before the first NUL."""
    i = b.find(b"\0")
    return b if i < 0 else b[:i]


def _pattern_slot(p):
    """patternHashSlot: the slot every key a pattern can form falls in, or
    -1 when they may be anywhere."""
    s = -1
    for i, ch in enumerate(p):
        if ch in b"*?[\\":
            return -1
        if s == -1 and ch == 0x7B:          # '{'
            s = i
        elif s >= 0 and ch == 0x7D:         # '}'
            if i == s + 1:
                s = -2
            else:
                return _native.key_slot(b"{" + p[s + 1:i] + b"}")
    return _native.key_slot(p)


def _lookup_pattern(c, pattern, subst):
    """lookupKeyByPattern: the value a pattern names for one element, or None."""
    if pattern[:1] == b"#" and (len(pattern) == 1 or pattern[1] == 0):
        return subst
    cpat = _cstr(pattern)
    p = cpat.find(b"*")
    if p < 0:
        return None
    f = cpat.find(b"->", p + 1)
    field = None
    fieldlen = 0
    if f >= 0 and f + 2 < len(cpat):
        field = pattern[f + 2:]
        fieldlen = len(field)
    postfixlen = len(pattern) - (p + 1) - (fieldlen + 2 if fieldlen else 0)
    key = pattern[:p] + bytes(subst) + pattern[p + 1:p + 1 + postfixlen]
    s = c.server
    v = s.lookup_read(c.db, key)
    if v is None:
        return None
    if field is not None:
        if getattr(v, "TYPE_NAME", None) != "hash":
            return None
        r = v.get(field, s.now_ms)
        return None if r is None else bytes(r)
    t = type(v)
    if t is bytes:
        return v
    if t is bytearray:
        return bytes(v)
    return None


def _elements(v):
    if type(v) is ListValue:
        return list(v)
    if type(v) is SetValue:
        return v.members()
    # a sorted set: ascending score order; Valkey converts it to a skiplist
    # to read it (zsetConvert in sortCommandGeneric), which OBJECT ENCODING shows
    v.convert(SKIPLIST)
    return list(v.sort_elements())


def _sort(c, argv, readonly):
    s = c.server
    desc = alpha = dontsort = False
    limit_start, limit_count = 0, -1
    sortby = storekey = None
    gets = []
    cluster_check = s.cluster_enabled and not c.flag(ROUTED)
    argc = len(argv)
    j = 2
    while j < argc:
        left = argc - j - 1
        word = argv[j].lower()
        if word == b"asc":
            desc = False
        elif word == b"desc":
            desc = True
        elif word == b"alpha":
            alpha = True
        elif word == b"limit" and left >= 2:
            limit_start = int_arg(argv[j + 1])
            limit_count = int_arg(argv[j + 2])
            j += 2
        elif not readonly and word == b"store" and left >= 1:
            storekey = argv[j + 1]
            j += 1
        elif word == b"by" and left >= 1:
            sortby = argv[j + 1]
            if b"*" not in _cstr(sortby):
                dontsort = True
            elif cluster_check and _pattern_slot(sortby) != _native.key_slot(argv[1]):
                raise ReplyError(BY_DENIED)
            j += 1
        elif word == b"get" and left >= 1:
            if cluster_check and _pattern_slot(argv[j + 1]) != _native.key_slot(argv[1]):
                raise ReplyError(GET_DENIED)
            gets.append(argv[j + 1])
            j += 1
        else:
            raise ReplyError(errors.SYNTAX)
        j += 1

    v = s.lookup_read(c.db, argv[1])
    if v is None:
        kind = "list"
        elements = []
    else:
        kind = getattr(v, "TYPE_NAME", None)
        if kind not in ("list", "set", "zset"):
            raise ReplyError(errors.WRONGTYPE)
        elements = _elements(v)

    if dontsort and kind == "set" and storekey is not None:
        dontsort, alpha, sortby = False, True, None

    n = len(elements)
    start = min(max(limit_start, 0), n)
    limit_count = min(max(limit_count, -1), n)
    end = n - 1 if limit_count < 0 else start + limit_count - 1
    if start >= n:
        start, end = n - 1, n - 2
    if end >= n:
        end = n - 1

    if dontsort:
        if desc and kind != "set":
            elements.reverse()
    else:
        store = storekey is not None
        if alpha:
            if sortby is not None:
                keys = []
                for e in elements:
                    w = _lookup_pattern(c, sortby, e)
                    if w is None:
                        keys.append((0, b""))
                    else:
                        keys.append((1, w if store else _cstr(w)))
            else:
                keys = [e if store else _cstr(e) for e in elements]
        else:
            keys = []
            bad = False
            for e in elements:
                if sortby is not None:
                    w = _lookup_pattern(c, sortby, e)
                    if w is None:
                        keys.append((0.0, e))
                        continue
                else:
                    w = e
                sc = _score(w)
                if sc is None:
                    bad = True
                    sc = 0.0
                keys.append((sc, e))
            if bad:
                raise ReplyError(NOT_DOUBLE)
        order = sorted(range(n), key=keys.__getitem__, reverse=desc)
        elements = [elements[i] for i in order]

    chosen = elements[start:end + 1] if end >= start else []
    if storekey is None:
        if not gets:
            return chosen
        out = []
        for e in chosen:
            for g in gets:
                out.append(_lookup_pattern(c, g, e))
        return out

    if gets:
        result = []
        for e in chosen:
            for g in gets:
                val = _lookup_pattern(c, g, e)
                result.append(b"" if val is None else val)
    else:
        result = chosen
    count = len(result)
    if count:
        lv = ListValue()
        lv.grow_check(s.config.values["list-max-listpack-size"], sum(map(len, result)), count)
        for e in result:
            lv.push_tail(bytes(e))
        s.lookup_write(c.db, storekey)    # expires a stale destination first, as setKey
        s.store(c.db, storekey, lv)
        notify(c, "sortstore", storekey)
        s.dirty += count
    elif s.delete(c.db, storekey):
        notify(c, "del", storekey)
        s.dirty += 1
    return count


def _sort_getkeys(argv):
    """sortGetKeys: the sorted key, and the destination of the last STORE
    (options that take arguments are skipped as Valkey skips them)."""
    keys = [1]
    store = None
    argc = len(argv)
    i = 2
    while i < argc:
        w = argv[i].lower()
        if w == b"limit":
            i += 2
        elif w in (b"get", b"by"):
            i += 1
        elif w == b"store" and i + 1 < argc:
            store = i + 1
        i += 1
    if store is not None:
        keys.append(store)
    return keys


SORT_COMPLEXITY = ("O(N+M*log(M)) where N is the number of elements in the list or set to sort, "
                   "and M the number of returned elements. When the elements are not sorted, "
                   "complexity is O(N).")


@command("sort", -2, flags="write denyoom movablekeys", acl="write set sortedset list slow dangerous",
         keys=(1, 1, 1),
         specs=["RO access: index 1, range 0 1 0", "RO access: unknown, unknown",
                "OW update: unknown, unknown"],
         getkeys=_sort_getkeys, complexity=SORT_COMPLEXITY,
         key_flags=lambda argv, i: ["RO", "access"] if i == 1 else ["OW", "update"],
         summary="Sorts the elements of a list, set or sorted set, optionally storing the result.")
def sort(c, argv):
    return _sort(c, argv, False)


@command("sort_ro", -2, flags="readonly movablekeys", acl="read set sortedset list slow dangerous",
         keys=(1, 1, 1),
         specs=["RO access: index 1, range 0 1 0", "RO access: unknown, unknown"],
         getkeys=lambda argv: [1], since="7.0.0", complexity=SORT_COMPLEXITY,
         summary="Sorts the elements of a list, set or sorted set (read-only SORT).")
def sort_ro(c, argv):
    return _sort(c, argv, True)
