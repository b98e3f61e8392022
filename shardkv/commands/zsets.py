"""Sorted sets: the Z* commands (and BZPOPMIN BZPOPMAX BZMPOP) over
shardkv.types.zset.ZSetValue, with Valkey 9.1's replies, error texts,
argument parsing order and keyspace events.

Scores are doubles parsed as Valkey parses them (decimal or inf only, no
NaN, no blanks, no hex, no overflow or underflow to zero); a Python float
returned from a handler is written by the reply writer as Valkey prints a
double (a RESP3 double, a bulk string in RESP2).

Two functions are shared with other modules (GEO):
* `zadd(c, argv)`: the ZADD handler itself (GEOADD calls it with a
  rewritten argv, as Valkey's geoadd does);
* `zset_store(c, dest_key, pairs, ...)`: replaces dest_key by a new set
  built from (member, score) pairs, as the *STORE commands do.

Propagation: ZPOPMIN/ZPOPMAX/ZMPOP and the blocking pops propagate what they
did as ZPOPMIN/ZPOPMAX key count, as Valkey rewrites them; everything else
propagates as it came."""

from __future__ import annotations

import math
import re

from shardkv import errors
from shardkv.blocking import pop_or_block
from shardkv.commands.common import (
    LLONG_MAX, NULL_ARRAY, mpop_arguments, numkeys_getkeys, format_double, format_int, int_arg, notify, parse_int, parse_timeout,
    typed_lookup,
)
from shardkv.commands.table import command
from shardkv.errors import ReplyError
from shardkv.glob import glob_match
from shardkv.native import _native
from shardkv.types.set import SetValue
from shardkv.types.zset import LISTPACK, SKIPLIST, ZSetValue

GROUP = "sorted-set"
EXECUTING = _native.CLIENT_FLAGS["EXECUTING"]
INF = math.inf

NAN_RESULT = "ERR resulting score is not a number (NaN)"
XX_NX = "ERR XX and NX options at the same time are not compatible"
GT_LT_NX = "ERR GT, LT, and/or NX options at the same time are not compatible"
INCR_PAIR = "ERR INCR option supports a single increment-element pair"
MINMAX_NOT_FLOAT = "ERR min or max is not a float"
MINMAX_NOT_STRING = "ERR min or max not valid string range item"
WEIGHT_NOT_FLOAT = "ERR weight value is not a float"
NUMKEYS_ZERO = "ERR numkeys should be greater than 0"
AT_LEAST_1_KEY = "ERR at least 1 input key is needed for '%s' command"
TOO_MANY_KEYS = "ERR Number of keys can't be greater than number of args"
LIMIT_NEGATIVE = "ERR LIMIT can't be negative"
MUST_BE_POSITIVE = "ERR value is out of range, must be positive"
RANDMEMBER_RANGE = ("ERR value is out of range, value must between -9223372036854775807 and "
                    "9223372036854775807")
WITHSCORES_BYLEX = "ERR syntax error, WITHSCORES not supported in combination with BYLEX"
LIMIT_ONLY_BY = ("ERR syntax error, LIMIT is only supported in combination with either BYSCORE "
                 "or BYLEX")
# ZRANDMEMBER with a negative count repeats members: refuse replies no client could hold
MAX_RANDOM_REPLY = 1 << 27

# ---------------------------------------------------------------- scores

_DECIMAL = re.compile(rb"[+-]?(?:([0-9]+)\.?([0-9]*)|\.([0-9]+))(?:[eE][+-]?[0-9]+)?\Z")
_INFINITY = re.compile(rb"[+-]?(?:inf|infinity)\Z", re.IGNORECASE)


def _strtod(b):
    """valkey_strtod over the whole of b: the double, or None if b is not
    entirely a decimal number or an infinity. Overflow gives None, a value
    too small gives 0.0 (the caller decides what ERANGE means)."""
    m = _DECIMAL.match(b)
    if m is None:
        if _INFINITY.match(b):
            return -INF if b[:1] == b"-" else INF
        return None
    return float(b)


def _underflows(b, v):
    """A decimal with a nonzero digit that became 0.0 (ERANGE)."""
    if v != 0.0:
        return False
    m = _DECIMAL.match(b)
    return any(ch != 0x30 for g in m.groups() if g for ch in g)


def parse_score(b, error=errors.NOT_FLOAT):
    """getDoubleFromObject: the whole argument is a double, not NaN, and
    neither overflows nor underflows to zero."""
    v = _strtod(b)
    if v is None or _underflows(b, v) or (math.isinf(v) and not _INFINITY.match(b)):
        raise ReplyError(error)
    return v


def _range_item(b):
    """One end of a score range (zslParseRange): (value, exclusive), None
    when invalid. The text ends at its first NUL, and out of range values
    are accepted (as infinities or zero)."""
    excl = b[:1] == b"("
    if excl:
        b = b[1:]
    nul = b.find(b"\0")
    if nul >= 0:
        b = b[:nul]
    if not b:
        return 0.0, excl
    m = _DECIMAL.match(b)
    if m is None:
        if _INFINITY.match(b):
            return (-INF if b[:1] == b"-" else INF), excl
        return None
    return float(b), excl


def parse_score_range(lo, hi):
    """(lo, lo_excl, hi, hi_excl) of a score range, or ERR min or max is not a float."""
    a = _range_item(lo)
    b = _range_item(hi)
    if a is None or b is None:
        raise ReplyError(MINMAX_NOT_FLOAT)
    return a[0], a[1], b[0], b[1]


def _lex_item(b, is_min):
    """One end of a lex range: (bytes or None for the open end, exclusive,
    empty) where empty says the range can hold nothing ('+' as min, '-' as max)."""
    head = b[:1]
    if head in (b"+", b"-"):
        if len(b) != 1:
            raise ReplyError(MINMAX_NOT_STRING)
        empty = (head == b"+") if is_min else (head == b"-")
        return None, True, empty
    if head == b"(":
        return b[1:], True, False
    if head == b"[":
        return b[1:], False, False
    raise ReplyError(MINMAX_NOT_STRING)


def parse_lex_range(lo, hi):
    """(lo, lo_excl, hi, hi_excl, empty) of ZRANGEBYLEX and friends."""
    a = _lex_item(lo, True)
    b = _lex_item(hi, False)
    # '-' '-' or '+' '+' compare equal and exclusive: empty as well
    return a[0], a[1], b[0], b[1], a[2] or b[2]


# ---------------------------------------------------------------- helpers

def limits(s):
    """(zset-max-listpack-entries, zset-max-listpack-value), as ZSetValue takes them."""
    v = s.config.values
    return v["zset-max-listpack-entries"], v["zset-max-listpack-value"]


def read_zset(c, key):
    return typed_lookup(c, key, ZSetValue)


def write_zset(c, key):
    return typed_lookup(c, key, ZSetValue, for_write=True)


def _with_scores(c, pairs):
    """A reply of (member, score) pairs: flat in RESP2, [member, score]
    pairs in RESP3."""
    if c.proto == 3:
        return [[m, sc] for m, sc in pairs]
    out = []
    for m, sc in pairs:
        out.append(m)
        out.append(sc)
    return out


def _removed(c, key, z, event, n):
    """Bookkeeping after n members left z (n > 0)."""
    s = c.server
    notify(c, event, key)
    if not len(z):
        s.delete(c.db, key)
        notify(c, "del", key)
    else:
        s.touch(c.db, key)
    s.dirty += n


# ---------------------------------------------------------------- ZADD

ZADD_FLAGS = {b"nx": "nx", b"xx": "xx", b"ch": "ch", b"incr": "incr", b"gt": "gt", b"lt": "lt"}


@command("zadd", -4, flags="write denyoom fast", acl="write sortedset fast", keys=(1, 1, 1),
         specs=["RW update: index 1, range 0 1 0"], group=GROUP, since="1.2.0",
         complexity="O(log(N)) for each item added, where N is the number of elements in the sorted set.",
         summary="Adds members with scores to a sorted set, or updates their scores; creates the set if needed.")
def zadd(c, argv):
    return _zadd(c, argv, False)


@command("zincrby", 4, flags="write denyoom fast", acl="write sortedset fast", keys=(1, 1, 1),
         specs=["RW access update: index 1, range 0 1 0"], group=GROUP, since="1.2.0",
         complexity="O(log(N)) where N is the number of elements in the sorted set.",
         summary="Adds a number to a member's score in a sorted set; returns the new score.")
def zincrby(c, argv):
    return _zadd(c, argv, True)


def _zadd(c, argv, incr):
    opts = set()
    if incr:
        opts.add("incr")
    i = 2
    argc = len(argv)
    while i < argc:
        o = ZADD_FLAGS.get(argv[i].lower())
        if o is None:
            break
        opts.add(o)
        i += 1
    incr = "incr" in opts
    nx, xx, gt, lt = "nx" in opts, "xx" in opts, "gt" in opts, "lt" in opts
    rest = argc - i
    if rest % 2 or not rest:
        raise ReplyError(errors.SYNTAX)
    count = rest // 2
    if nx and xx:
        raise ReplyError(XX_NX)
    if (gt and nx) or (lt and nx) or (gt and lt):
        raise ReplyError(GT_LT_NX)
    if incr and count > 1:
        raise ReplyError(INCR_PAIR)
    pairs = []
    maxlen = 0
    for j in range(i, argc, 2):
        score = parse_score(argv[j])
        member = argv[j + 1]
        if len(member) > maxlen:
            maxlen = len(member)
        pairs.append((score, member))

    s, key = c.server, argv[1]
    z = write_zset(c, key)
    lim = limits(s)
    if z is None:
        if xx:
            return None if incr else 0
        z = ZSetValue.create(count, maxlen, lim)
        s.add_new(c.db, key, z)
    else:
        z.maybe_convert(count, maxlen, lim)

    added = updated = processed = 0
    result = None
    nan = False
    for score, member in pairs:
        cur = z.d.get(member)
        if cur is not None:
            if nx:
                continue
            if incr:
                score += cur
                if math.isnan(score):
                    nan = True
                    break
            if (lt and score >= cur) or (gt and score <= cur):
                continue
            result = score
            processed += 1
            if score != cur:
                z.add(member, score, lim)
                updated += 1
        else:
            if xx:
                continue
            result = score
            processed += 1
            z.add(member, score, lim)
            added += 1
    if not nan:
        s.dirty += added + updated
    if added or updated:
        s.touch(c.db, key)
        notify(c, "zincr" if incr else "zadd", key)
    if nan:
        raise ReplyError(NAN_RESULT)
    if incr:
        return result if processed else None
    return added + updated if "ch" in opts else added


# ---------------------------------------------------------------- storing results

def zset_store(c, dest_key, pairs, event=None, dirty=None):
    """Replaces dest_key by a sorted set of the (member, score) pairs (a
    later pair of a member wins), encoded as Valkey encodes a stored result
    (a listpack when it fits one); an empty result deletes dest_key. Sends
    the keyspace event (`event`, by default the command's: zunionstore,
    zinterstore, zdiffstore, zrangestore, geosearchstore or georadiusstore)
    and moves the dirty counter (`dirty`, by default 1, or the count for
    the GEO commands, as Valkey does). Returns how many members were stored."""
    s = c.server
    z = ZSetValue.for_result(pairs, limits(s))
    n = len(z)
    name = c.current_cmd.name if c.current_cmd is not None else ""
    if isinstance(name, bytes):
        name = name.decode()
    name = name.lower()
    geo = name.startswith("geo")
    if event is None:
        if geo:
            event = "geosearchstore" if name == "geosearchstore" else "georadiusstore"
        else:
            event = name
    if n:
        s.lookup_write(c.db, dest_key)     # expires a stale destination first, as setKey
        s.store(c.db, dest_key, z)
        notify(c, event, dest_key)
        s.dirty += dirty if dirty is not None else (n if geo else 1)
    elif s.delete(c.db, dest_key):
        notify(c, "del", dest_key)
        s.dirty += 1
    return n


# ---------------------------------------------------------------- removing

@command("zrem", -3, flags="write fast", acl="write sortedset fast", keys=(1, 1, 1),
         specs=["RW delete: index 1, range 0 1 0"], group=GROUP, since="1.2.0",
         complexity=("O(M*log(N)) with N being the number of elements in the sorted set and M the "
                     "number of elements to be removed."),
         summary="Removes members from a sorted set; returns how many were there.")
def zrem(c, argv):
    key = argv[1]
    z = write_zset(c, key)
    if z is None:
        return 0
    deleted = 0
    for member in argv[2:]:
        if z.remove(member):
            deleted += 1
        if not len(z):
            break
    if deleted:
        _removed(c, key, z, "zrem", deleted)
    return deleted


def _zremrange(c, argv, kind):
    key = argv[1]
    if kind == "rank":
        start = int_arg(argv[2])
        end = int_arg(argv[3])
    elif kind == "score":
        rng = parse_score_range(argv[2], argv[3])
    else:
        lex = parse_lex_range(argv[2], argv[3])
    z = write_zset(c, key)
    if z is None:
        return 0
    n = len(z)
    if kind == "rank":
        if start < 0:
            start += n
        if end < 0:
            end += n
        if start < 0:
            start = 0
        if start > end or start >= n:
            return 0
        if end >= n:
            end = n - 1
        i, j = start, end + 1
    elif kind == "score":
        i, j = z.score_bounds(*rng)
    elif lex[4]:
        i = j = 0
    else:
        i, j = z.lex_bounds(*lex[:4])
    deleted = z.delete_slice(i, j)
    if deleted:
        _removed(c, key, z, "zremrangeby" + kind, deleted)
    return deleted


REMRANGE_COMPLEXITY = ("O(log(N)+M) with N being the number of elements in the sorted set and M the "
                       "number of elements removed by the operation.")


@command("zremrangebyrank", 4, flags="write", acl="write sortedset slow", keys=(1, 1, 1),
         specs=["RW delete: index 1, range 0 1 0"], group=GROUP, since="2.0.0",
         complexity=REMRANGE_COMPLEXITY,
         summary="Removes the members of a sorted set between two ranks.")
def zremrangebyrank(c, argv):
    return _zremrange(c, argv, "rank")


@command("zremrangebyscore", 4, flags="write", acl="write sortedset slow", keys=(1, 1, 1),
         specs=["RW delete: index 1, range 0 1 0"], group=GROUP, since="1.2.0",
         complexity=REMRANGE_COMPLEXITY,
         summary="Removes the members of a sorted set whose scores are in a range.")
def zremrangebyscore(c, argv):
    return _zremrange(c, argv, "score")


@command("zremrangebylex", 4, flags="write", acl="write sortedset slow", keys=(1, 1, 1),
         specs=["RW delete: index 1, range 0 1 0"], group=GROUP, since="2.8.9",
         complexity=REMRANGE_COMPLEXITY,
         summary="Removes the members of a sorted set in a lexicographical range.")
def zremrangebylex(c, argv):
    return _zremrange(c, argv, "lex")


# ---------------------------------------------------------------- reading

@command("zcard", 2, flags="readonly fast", acl="read sortedset fast", keys=(1, 1, 1),
         specs=["RO: index 1, range 0 1 0"], group=GROUP, since="1.2.0",
         summary="Counts the members of a sorted set.")
def zcard(c, argv):
    z = read_zset(c, argv[1])
    return 0 if z is None else len(z)


@command("zscore", 3, flags="readonly fast", acl="read sortedset fast", keys=(1, 1, 1),
         specs=["RO access: index 1, range 0 1 0"], group=GROUP, since="1.2.0",
         summary="Returns the score of a member of a sorted set.")
def zscore(c, argv):
    z = read_zset(c, argv[1])
    return None if z is None else z.score(argv[2])


@command("zmscore", -3, flags="readonly fast", acl="read sortedset fast", keys=(1, 1, 1),
         specs=["RO access: index 1, range 0 1 0"], group=GROUP, since="6.2.0",
         complexity="O(N) where N is the number of members being requested.",
         summary="Returns the scores of several members of a sorted set.")
def zmscore(c, argv):
    z = read_zset(c, argv[1])
    if z is None:
        return [None] * (len(argv) - 2)
    return [z.score(m) for m in argv[2:]]


def _zrank(c, argv, reverse):
    if len(argv) > 4:
        raise ReplyError(errors.wrong_arity(c.current_cmd.name))
    withscore = False
    if len(argv) == 4:
        if argv[3].lower() != b"withscore":
            raise ReplyError(errors.SYNTAX)
        withscore = True
    z = read_zset(c, argv[1])
    rank = None if z is None else z.rank(argv[2])
    if rank is None:
        return NULL_ARRAY if withscore else None
    if reverse:
        rank = len(z) - 1 - rank
    return [rank, z.score(argv[2])] if withscore else rank


@command("zrank", -3, flags="readonly fast", acl="read sortedset fast", keys=(1, 1, 1),
         specs=["RO access: index 1, range 0 1 0"], group=GROUP, since="2.0.0",
         complexity="O(log(N))",
         summary="Returns the rank of a member in a sorted set, lowest score first.")
def zrank(c, argv):
    return _zrank(c, argv, False)


@command("zrevrank", -3, flags="readonly fast", acl="read sortedset fast", keys=(1, 1, 1),
         specs=["RO access: index 1, range 0 1 0"], group=GROUP, since="2.0.0",
         complexity="O(log(N))",
         summary="Returns the rank of a member in a sorted set, highest score first.")
def zrevrank(c, argv):
    return _zrank(c, argv, True)


@command("zcount", 4, flags="readonly fast", acl="read sortedset fast", keys=(1, 1, 1),
         specs=["RO access: index 1, range 0 1 0"], group=GROUP, since="2.0.0",
         complexity="O(log(N)) with N being the number of elements in the sorted set.",
         summary="Counts the members of a sorted set whose scores are in a range.")
def zcount(c, argv):
    rng = parse_score_range(argv[2], argv[3])
    z = read_zset(c, argv[1])
    if z is None:
        return 0
    i, j = z.score_bounds(*rng)
    return j - i


@command("zlexcount", 4, flags="readonly fast", acl="read sortedset fast", keys=(1, 1, 1),
         specs=["RO access: index 1, range 0 1 0"], group=GROUP, since="2.8.9",
         complexity="O(log(N)) with N being the number of elements in the sorted set.",
         summary="Counts the members of a sorted set in a lexicographical range.")
def zlexcount(c, argv):
    lex = parse_lex_range(argv[2], argv[3])
    z = read_zset(c, argv[1])
    if z is None or lex[4]:
        return 0
    i, j = z.lex_bounds(*lex[:4])
    return j - i


# ---------------------------------------------------------------- ZRANGE and friends

RANK, SCORE, LEX = "rank", "score", "lex"


def _window(z, i, j, offset, limit, reverse):
    """LIMIT offset count over the ranks [i, j) a score or lex range covers,
    read upwards or (reverse) downwards. A negative offset finds nothing in
    a listpack, while a skiplist counts it from the other end of the range,
    as Valkey's zslNthInRange does."""
    if limit == 0 or i >= j:
        return []
    if offset < 0:
        if z.enc == LISTPACK:
            return []
        if reverse:
            top = i + (-offset - 1)
            if top >= j:
                return []
            hi = top + 1
            lo = i if limit < 0 else max(i, hi - limit)
            return z.slice(lo, hi, reverse=True)
        start = j + offset
        if start < i:
            return []
        end = j if limit < 0 else min(j, start + limit)
        return z.slice(start, end)
    if reverse:
        hi = j - offset
        if hi <= i:
            return []
        lo = i if limit < 0 else max(i, hi - limit)
        return z.slice(lo, hi, reverse=True)
    start = i + offset
    if start >= j:
        return []
    end = j if limit < 0 else min(j, start + limit)
    return z.slice(start, end)


def _zrange(c, argv, src_idx, store, rangetype, reverse):
    """ZRANGE, ZRANGESTORE and the older range commands (zrangeGenericCommand):
    the (member, score) pairs of the range, or for ZRANGESTORE the count stored.
    rangetype/reverse None mean "from the options"."""
    withscores = False
    offset, limit = 0, -1
    argc = len(argv)
    j = src_idx + 3
    while j < argc:
        w = argv[j].lower()
        left = argc - j - 1
        if not store and w == b"withscores":
            withscores = True
        elif w == b"limit" and left >= 2:
            offset = int_arg(argv[j + 1])
            limit = int_arg(argv[j + 2])
            j += 2
        elif reverse is None and w == b"rev":
            reverse = True
        elif rangetype is None and w == b"bylex":
            rangetype = LEX
        elif rangetype is None and w == b"byscore":
            rangetype = SCORE
        else:
            raise ReplyError(errors.SYNTAX)
        j += 1
    reverse = bool(reverse)
    rangetype = rangetype or RANK
    if limit != -1 and rangetype == RANK:
        raise ReplyError(LIMIT_ONLY_BY)
    if withscores and rangetype == LEX:
        raise ReplyError(WITHSCORES_BYLEX)
    lo_arg, hi_arg = argv[src_idx + 1], argv[src_idx + 2]
    if reverse and rangetype != RANK:
        lo_arg, hi_arg = hi_arg, lo_arg
    if rangetype == RANK:
        start = int_arg(lo_arg)
        end = int_arg(hi_arg)
    elif rangetype == SCORE:
        rng = parse_score_range(lo_arg, hi_arg)
    else:
        lex = parse_lex_range(lo_arg, hi_arg)

    z = read_zset(c, argv[src_idx])
    if z is None:
        pairs = []
    elif rangetype == RANK:
        n = len(z)
        if start < 0:
            start += n
        if end < 0:
            end += n
        if start < 0:
            start = 0
        if start > end or start >= n:
            pairs = []
        else:
            if end >= n:
                end = n - 1
            pairs = z.range_by_rank(start, end, reverse)
    elif rangetype == SCORE:
        i, k = z.score_bounds(*rng)
        pairs = _window(z, i, k, offset, limit, reverse)
    elif lex[4]:
        pairs = []
    else:
        bounds = z.lex_bounds_reverse if reverse else z.lex_bounds
        i, k = bounds(*lex[:4])
        pairs = _window(z, i, k, offset, limit, reverse)
    if store:
        return zset_store(c, argv[1], pairs)
    if withscores:
        return _with_scores(c, pairs)
    return [m for m, _ in pairs]


RANGE_COMPLEXITY = ("O(log(N)+M) with N being the number of elements in the sorted set and M the "
                    "number of elements returned.")
RANGEBY_COMPLEXITY = ("O(log(N)+M) with N being the number of elements in the sorted set and M the "
                      "number of elements being returned. If M is constant (e.g. always asking for "
                      "the first 10 elements with LIMIT), you can consider it O(log(N)).")
RANGE_SPECS = ["RO access: index 1, range 0 1 0"]


@command("zrange", -4, flags="readonly", acl="read sortedset slow", keys=(1, 1, 1),
         specs=RANGE_SPECS, group=GROUP, since="1.2.0", complexity=RANGE_COMPLEXITY,
         summary="Returns the members of a sorted set in a range of ranks, scores or lexicographical values.")
def zrange(c, argv):
    return _zrange(c, argv, 1, False, None, None)


@command("zrangestore", -5, flags="write denyoom", acl="write sortedset slow", keys=(1, 2, 1),
         specs=["OW update: index 1, range 0 1 0", "RO access: index 2, range 0 1 0"],
         group=GROUP, since="6.2.0",
         complexity=("O(log(N)+M) with N being the number of elements in the sorted set and M the "
                     "number of elements stored into the destination key."),
         summary="Stores a range of a sorted set in another key.")
def zrangestore(c, argv):
    return _zrange(c, argv, 2, True, None, None)


@command("zrevrange", -4, flags="readonly", acl="read sortedset slow", keys=(1, 1, 1),
         specs=RANGE_SPECS, group=GROUP, since="1.2.0", complexity=RANGE_COMPLEXITY,
         summary="Returns the members of a sorted set in a range of ranks, highest score first.")
def zrevrange(c, argv):
    return _zrange(c, argv, 1, False, RANK, True)


@command("zrangebyscore", -4, flags="readonly", acl="read sortedset slow", keys=(1, 1, 1),
         specs=RANGE_SPECS, group=GROUP, since="1.0.5", complexity=RANGEBY_COMPLEXITY,
         summary="Returns the members of a sorted set whose scores are in a range.")
def zrangebyscore(c, argv):
    return _zrange(c, argv, 1, False, SCORE, False)


@command("zrevrangebyscore", -4, flags="readonly", acl="read sortedset slow", keys=(1, 1, 1),
         specs=RANGE_SPECS, group=GROUP, since="2.2.0", complexity=RANGEBY_COMPLEXITY,
         summary="Returns the members of a sorted set whose scores are in a range, highest first.")
def zrevrangebyscore(c, argv):
    return _zrange(c, argv, 1, False, SCORE, True)


@command("zrangebylex", -4, flags="readonly", acl="read sortedset slow", keys=(1, 1, 1),
         specs=RANGE_SPECS, group=GROUP, since="2.8.9", complexity=RANGEBY_COMPLEXITY,
         summary="Returns the members of a sorted set in a lexicographical range.")
def zrangebylex(c, argv):
    return _zrange(c, argv, 1, False, LEX, False)


@command("zrevrangebylex", -4, flags="readonly", acl="read sortedset slow", keys=(1, 1, 1),
         specs=RANGE_SPECS, group=GROUP, since="2.8.9", complexity=RANGEBY_COMPLEXITY,
         summary="Returns the members of a sorted set in a lexicographical range, in reverse order.")
def zrevrangebylex(c, argv):
    return _zrange(c, argv, 1, False, LEX, True)


# ---------------------------------------------------------------- popping

def _pop_reply(c, pairs, nested):
    """ZPOPMIN/ZPOPMAX pairs: flat, or nested [member, score] pairs."""
    if nested:
        return [[m, sc] for m, sc in pairs]
    out = []
    for m, sc in pairs:
        out.append(m)
        out.append(sc)
    return out


def _pop_from(c, key, z, highest, count):
    """Pops up to count members of z (non-empty, at key): their pairs, and
    the ZPOPMIN/ZPOPMAX command that repeats it on a replica."""
    s = c.server
    pairs = z.pop(count, highest)
    notify(c, "zpopmax" if highest else "zpopmin", key)
    if not len(z):
        s.delete(c.db, key)
        notify(c, "del", key)
    s.touch(c.db, key)
    s.dirty += len(pairs)
    return pairs, [b"ZPOPMAX" if highest else b"ZPOPMIN", key, format_int(len(pairs))]


def _zpop(c, argv, highest):
    if len(argv) > 3:
        raise ReplyError(errors.SYNTAX)
    count = None
    if len(argv) == 3:
        count = parse_int(argv[2])
        if count is None or count < 0:
            raise ReplyError(MUST_BE_POSITIVE)
    key = argv[1]
    z = write_zset(c, key)
    if z is None or count == 0:
        return []
    pairs, _ = _pop_from(c, key, z, highest, 1 if count is None else count)
    return _pop_reply(c, pairs, c.proto == 3 and count is not None)


POP_COMPLEXITY = ("O(log(N)*M) with N being the number of elements in the sorted set, and M being "
                  "the number of elements popped.")


@command("zpopmin", -2, flags="write fast", acl="write sortedset fast", keys=(1, 1, 1),
         specs=["RW access delete: index 1, range 0 1 0"], group=GROUP, since="5.0.0",
         complexity=POP_COMPLEXITY,
         summary="Removes and returns the members with the lowest scores of a sorted set.")
def zpopmin(c, argv):
    return _zpop(c, argv, False)


@command("zpopmax", -2, flags="write fast", acl="write sortedset fast", keys=(1, 1, 1),
         specs=["RW access delete: index 1, range 0 1 0"], group=GROUP, since="5.0.0",
         complexity=POP_COMPLEXITY,
         summary="Removes and returns the members with the highest scores of a sorted set.")
def zpopmax(c, argv):
    return _zpop(c, argv, True)


def _pop_first(c, keys, highest, count, with_key_nested):
    """Pops from the first key of keys holding a non-empty sorted set
    (WRONGTYPE if the first present key is another type). Returns (reply,
    command to propagate), or None if no key has members. with_key_nested:
    the ZMPOP reply [key, [[member, score]...]], else BZPOPMIN's flat
    [key, member, score]."""
    for key in keys:
        z = write_zset(c, key)
        if z is None or not len(z):
            continue
        pairs, rewrite = _pop_from(c, key, z, highest, count)
        if with_key_nested:
            return [key, [[m, sc] for m, sc in pairs]], rewrite
        m, sc = pairs[0]
        return [key, m, sc], rewrite[:2]
    return None


def _min_max(word):
    """MIN (False) or MAX (True: the highest scores first)."""
    word = word.lower()
    if word not in (b"min", b"max"):
        raise ReplyError(errors.SYNTAX)
    return word == b"max"


def _mpop_arguments(argv, numkeys_idx):
    """numkeys, keys, MIN|MAX and COUNT of ZMPOP/BZMPOP."""
    keys, highest, count = mpop_arguments(argv, numkeys_idx, _min_max)
    return keys, highest, count or 1


MPOP_COMPLEXITY = ("O(K) + O(M*log(N)) where K is the number of provided keys, N being the number "
                   "of elements in the sorted set, and M being the number of elements popped.")


@command("zmpop", -4, flags="write movablekeys", acl="write sortedset slow",
         specs=["RW access delete: index 1, keynum 0 1 1"], group=GROUP, since="7.0.0",
         getkeys=numkeys_getkeys(1), complexity=MPOP_COMPLEXITY,
         summary="Pops members with the lowest or highest scores from the first non-empty sorted set among keys.")
def zmpop(c, argv):
    keys, highest, count = _mpop_arguments(argv, 1)
    r = _pop_first(c, keys, highest, count, True)
    if r is None:
        return NULL_ARRAY
    c.rewrite = [r[1]]
    return r[0]


# ---------------------------------------------------------------- blocking pops

def _blocking_pop(c, keys, highest, count, nested, timeout_ms):
    """BZPOPMIN/BZPOPMAX/BZMPOP."""
    return pop_or_block(c, keys, timeout_ms, ZSetValue, lambda: _pop_first(c, keys, highest, count, nested))


@command("bzpopmin", -3, flags="write blocking fast", acl="write sortedset fast blocking",
         keys=(1, -2, 1), specs=["RW access delete: index 1, range -2 1 0"], group=GROUP,
         since="5.0.0", complexity="O(log(N)) with N being the number of elements in the sorted set.",
         summary="Pops the member with the lowest score from the first non-empty sorted set among keys, "
                 "waiting for one if all are empty.")
def bzpopmin(c, argv):
    timeout = parse_timeout(c, argv[-1])
    return _blocking_pop(c, argv[1:-1], False, 1, False, timeout)


@command("bzpopmax", -3, flags="write blocking fast", acl="write sortedset fast blocking",
         keys=(1, -2, 1), specs=["RW access delete: index 1, range -2 1 0"], group=GROUP,
         since="5.0.0", complexity="O(log(N)) with N being the number of elements in the sorted set.",
         summary="Pops the member with the highest score from the first non-empty sorted set among keys, "
                 "waiting for one if all are empty.")
def bzpopmax(c, argv):
    timeout = parse_timeout(c, argv[-1])
    return _blocking_pop(c, argv[1:-1], True, 1, False, timeout)


@command("bzmpop", -5, flags="write blocking movablekeys", acl="write sortedset slow blocking",
         specs=["RW access delete: index 2, keynum 0 1 1"], group=GROUP, since="7.0.0",
         getkeys=numkeys_getkeys(2), complexity=MPOP_COMPLEXITY,
         summary="Pops members with the lowest or highest scores from the first non-empty sorted set "
                 "among keys, waiting for one if all are empty.")
def bzmpop(c, argv):
    keys, highest, count = _mpop_arguments(argv, 2)
    timeout = parse_timeout(c, argv[1])
    return _blocking_pop(c, keys, highest, count, True, timeout)


# ---------------------------------------------------------------- union, intersection, difference

UNION, INTER, DIFF = "union", "inter", "diff"


def _aggregate(op):
    if op == b"sum":
        def agg(a, b):
            r = a + b
            return 0.0 if r != r else r
    elif op == b"min":
        def agg(a, b):
            return b if b < a else a
    else:
        def agg(a, b):
            return b if b > a else a
    return agg


def _source_scores(v):
    """A source of ZUNION & co: a dict member -> score (1 for a plain set)."""
    if type(v) is ZSetValue:
        return v.d
    return dict.fromkeys(v.members(), 1.0)


def _zsetop(c, argv, numkeys_idx, op, store, card_only=False):
    """zunionInterDiffGenericCommand: the result as a list of (member,
    score) pairs in ascending order, the count stored, or (ZINTERCARD) the
    cardinality."""
    setnum = int_arg(argv[numkeys_idx])
    if setnum < 1:
        raise ReplyError(AT_LEAST_1_KEY % c.current_cmd.name)
    argc = len(argv)
    if setnum > argc - (numkeys_idx + 1):
        raise ReplyError(errors.SYNTAX)
    s = c.server
    sources = []
    for key in argv[numkeys_idx + 1:numkeys_idx + 1 + setnum]:
        v = s.lookup_read(c.db, key)
        if v is not None and type(v) is not ZSetValue and type(v) is not SetValue:
            raise ReplyError(errors.WRONGTYPE)
        sources.append(v)
    weights = [1.0] * setnum
    agg_name = b"sum"
    withscores = False
    limit = 0
    j = numkeys_idx + 1 + setnum
    while j < argc:
        remaining = argc - j
        w = argv[j].lower()
        if op != DIFF and not card_only and remaining >= setnum + 1 and w == b"weights":
            for i in range(setnum):
                weights[i] = parse_score(argv[j + 1 + i], WEIGHT_NOT_FLOAT)
            j += setnum + 1
        elif op != DIFF and not card_only and remaining >= 2 and w == b"aggregate":
            a = argv[j + 1].lower()
            if a not in (b"sum", b"min", b"max"):
                raise ReplyError(errors.SYNTAX)
            agg_name = a
            j += 2
        elif not store and not card_only and w == b"withscores":
            withscores = True
            j += 1
        elif card_only and remaining >= 2 and w == b"limit":
            limit = parse_int(argv[j + 1])
            if limit is None or limit < 0:
                raise ReplyError(LIMIT_NEGATIVE)
            j += 2
        else:
            raise ReplyError(errors.SYNTAX)

    agg = _aggregate(agg_name)
    srcs = [(len(v) if v is not None else 0, v, wt) for v, wt in zip(sources, weights, strict=True)]
    result = {}
    if op != DIFF:
        srcs.sort(key=lambda t: t[0])     # smallest first, as Valkey (stable here)
    if op == INTER:
        if srcs[0][0] > 0:
            first = _source_scores(srcs[0][1])
            w0 = srcs[0][2]
            others = [(_source_scores(v), wt) for _, v, wt in srcs[1:]]
            count = 0
            for member, sc in first.items():
                score = w0 * sc
                if score != score:
                    score = 0.0
                for d, wt in others:
                    value = d.get(member)
                    if value is None:
                        break
                    score = agg(score, value * wt)
                else:
                    if card_only:
                        count += 1
                        if limit and count >= limit:
                            break
                    else:
                        result[member] = score
            if card_only:
                return count
        elif card_only:
            return 0
    elif op == UNION:
        for n, v, wt in srcs:
            if not n:
                continue
            for member, sc in _source_scores(v).items():
                score = wt * sc
                if score != score:
                    score = 0.0
                cur = result.get(member)
                result[member] = score if cur is None else agg(cur, score)
    else:
        first = srcs[0][1]
        if first is not None and len(first) and not any(v is first for _, v, _ in srcs[1:]):
            others = [_source_scores(v) for _, v, _ in srcs[1:] if v is not None]
            for member, sc in _source_scores(first).items():
                if not any(member in d for d in others):
                    result[member] = sc
    if store:
        return zset_store(c, argv[1], result.items())
    pairs = sorted((sc, m) for m, sc in result.items())
    if withscores:
        return _with_scores(c, [(m, sc) for sc, m in pairs])
    return [m for _, m in pairs]


UNION_COMPLEXITY = ("O(N)+O(M*log(M)) with N being the sum of the sizes of the input sorted sets, and "
                    "M being the number of elements in the resulting sorted set.")
INTER_COMPLEXITY = ("O(N*K)+O(M*log(M)) worst case with N being the smallest input sorted set, K being "
                    "the number of input sorted sets and M being the number of elements in the "
                    "resulting sorted set.")
DIFF_COMPLEXITY = ("O(L + (N-K)log(N)) worst case where L is the total number of elements in all the "
                   "sets, N is the size of the first set, and K is the size of the result set.")
OP_SPECS = ["RO access: index 1, keynum 0 1 1"]
STORE_SPECS = ["OW update: index 1, range 0 1 0", "RO access: index 2, keynum 0 1 1"]


@command("zunion", -3, flags="readonly movablekeys", acl="read sortedset slow", specs=OP_SPECS,
         getkeys=numkeys_getkeys(1), group=GROUP, since="6.2.0", complexity=UNION_COMPLEXITY,
         summary="Returns the union of sorted sets (and sets), scores combined.")
def zunion(c, argv):
    return _zsetop(c, argv, 1, UNION, False)


@command("zinter", -3, flags="readonly movablekeys", acl="read sortedset slow", specs=OP_SPECS,
         getkeys=numkeys_getkeys(1), group=GROUP, since="6.2.0", complexity=INTER_COMPLEXITY,
         summary="Returns the intersection of sorted sets (and sets), scores combined.")
def zinter(c, argv):
    return _zsetop(c, argv, 1, INTER, False)


@command("zdiff", -3, flags="readonly movablekeys", acl="read sortedset slow", specs=OP_SPECS,
         getkeys=numkeys_getkeys(1), group=GROUP, since="6.2.0", complexity=DIFF_COMPLEXITY,
         summary="Returns the members of the first sorted set found in none of the others.")
def zdiff(c, argv):
    return _zsetop(c, argv, 1, DIFF, False)


@command("zintercard", -3, flags="readonly movablekeys", acl="read sortedset slow", specs=OP_SPECS,
         getkeys=numkeys_getkeys(1), group=GROUP, since="7.0.0",
         complexity=("O(N*K) worst case with N being the smallest input sorted set, K being the "
                     "number of input sorted sets."),
         summary="Counts the members common to sorted sets (and sets), optionally up to a limit.")
def zintercard(c, argv):
    return _zsetop(c, argv, 1, INTER, False, card_only=True)


@command("zunionstore", -4, flags="write denyoom movablekeys", acl="write sortedset slow",
         keys=(1, 1, 1), specs=STORE_SPECS, getkeys=numkeys_getkeys(2, 1), group=GROUP,
         since="2.0.0",
         complexity=("O(N)+O(M log(M)) with N being the sum of the sizes of the input sorted sets, "
                     "and M being the number of elements in the resulting sorted set."),
         summary="Stores the union of sorted sets (and sets) in a key.")
def zunionstore(c, argv):
    return _zsetop(c, argv, 2, UNION, True)


@command("zinterstore", -4, flags="write denyoom movablekeys", acl="write sortedset slow",
         keys=(1, 1, 1), specs=STORE_SPECS, getkeys=numkeys_getkeys(2, 1), group=GROUP,
         since="2.0.0", complexity=INTER_COMPLEXITY,
         summary="Stores the intersection of sorted sets (and sets) in a key.")
def zinterstore(c, argv):
    return _zsetop(c, argv, 2, INTER, True)


@command("zdiffstore", -4, flags="write denyoom movablekeys", acl="write sortedset slow",
         keys=(1, 1, 1), specs=STORE_SPECS, getkeys=numkeys_getkeys(2, 1), group=GROUP,
         since="6.2.0", complexity=DIFF_COMPLEXITY,
         summary="Stores the members of the first sorted set found in none of the others in a key.")
def zdiffstore(c, argv):
    return _zsetop(c, argv, 2, DIFF, True)


# ---------------------------------------------------------------- ZRANDMEMBER, ZSCAN

@command("zrandmember", -2, flags="readonly", acl="read sortedset slow", keys=(1, 1, 1),
         specs=["RO access: index 1, range 0 1 0"], tips="nondeterministic_output", group=GROUP,
         since="6.2.0", complexity="O(N) where N is the number of members returned",
         summary="Returns random members of a sorted set, optionally with their scores.")
def zrandmember(c, argv):
    argc = len(argv)
    if argc >= 3:
        n = int_arg(argv[2])
        if n < -LLONG_MAX:
            raise ReplyError(RANDMEMBER_RANGE)
        if argc > 4 or (argc == 4 and argv[3].lower() != b"withscores"):
            raise ReplyError(errors.SYNTAX)
        withscores = argc == 4
        if withscores and (n < -(LLONG_MAX // 2) or n > LLONG_MAX // 2):
            raise ReplyError("ERR value is out of range")
        return _zrandmember_count(c, argv[1], n, withscores)
    z = read_zset(c, argv[1])
    if z is None:
        return None
    return z.random_pairs(1)[0][0]


def _zrandmember_count(c, key, n, withscores):
    z = read_zset(c, key)
    if z is None or n == 0:
        return []
    size = len(z)
    if n < 0 or n == 1:
        count = abs(n)
        if count > MAX_RANDOM_REPLY:
            raise MemoryError
        pairs = z.random_pairs(count)
    elif n >= size:
        # the whole set, walked from the highest score down as Valkey does
        pairs = z.range_by_rank(0, size - 1, reverse=True)
    else:
        pairs = z.random_sample(n)
    if withscores:
        return _with_scores(c, pairs)
    return [m for m, _ in pairs]


@command("zscan", -3, flags="readonly", acl="read sortedset slow", keys=(1, 1, 1),
         specs=["RO access: index 1, range 0 1 0"], tips="nondeterministic_output", group=GROUP,
         since="2.8.0",
         complexity=("O(1) for every call. O(N) for a complete iteration, including enough command "
                     "calls for the cursor to return back to 0. N is the number of elements inside "
                     "the collection."),
         summary="Iterates over the members and scores of a sorted set with a cursor, a batch per call.")
def zscan(c, argv):
    from shardkv.commands.keys import collection_scan_options, parse_cursor
    cursor = parse_cursor(argv[2])
    z = read_zset(c, argv[1])
    if z is None:
        return [b"0", []]
    pattern, count, noscores = collection_scan_options(argv, b"noscores")
    if z.enc == SKIPLIST:
        cursor, batch = z.scan(cursor, count)
    else:
        # a listpack answers everything at once, whatever the cursor
        cursor, batch = 0, z.items()
    out = []
    for m, sc in batch:
        if pattern is not None and not glob_match(pattern, m):
            continue
        out.append(m)
        if not noscores:
            out.append(format_double(sc))
    return [format_int(cursor), out]
