"""Sets: SADD SREM SMEMBERS SISMEMBER SMISMEMBER SCARD SPOP SRANDMEMBER SMOVE
SINTER SINTERCARD SINTERSTORE SUNION SUNIONSTORE SDIFF SDIFFSTORE SSCAN, over
shardkv.types.set.SetValue.

Replies list members in the order Valkey 9.1 would: the iteration order of
the encoding the set has (see SetValue), and for SUNION/SDIFF the order of
the temporary set Valkey builds (an intset when every input is one, else a
hashtable). SINTERSTORE/SUNIONSTORE/SDIFFSTORE build their result with the
same encoding steps as Valkey, so OBJECT ENCODING agrees afterwards.

SPOP is not repeatable: it propagates as SREM of the members it popped (in
batches of 1024), or as UNLINK/DEL when it emptied the set."""

from shardkv import errors
from shardkv.commands.common import LLONG_MAX, RespSet, format_int, int_arg, notify, parse_int, typed_lookup
from shardkv.commands.keys import collection_scan_options, parse_cursor
from shardkv.commands.table import command
from shardkv.errors import ReplyError
from shardkv.glob import glob_match
from shardkv.types.set import HASHTABLE, INTSET, LISTPACK, SetValue

GROUP = "set"
SREM_BATCH = 1024
# SRANDMEMBER with a negative count repeats members: refuse to build replies
# no client could hold rather than exhaust the worker's memory.
MAX_RANDOM_REPLY = 1 << 27

NOT_POSITIVE = "ERR value is out of range, must be positive"
SRANDMEMBER_RANGE = ("ERR value is out of range, value must between -9223372036854775807 "
                     "and 9223372036854775807")
NUMKEYS = "ERR numkeys should be greater than 0"
TOO_MANY_KEYS = "ERR Number of keys can't be greater than number of args"
LIMIT_NEGATIVE = "ERR LIMIT can't be negative"

INTER_COMPLEXITY = ("O(N*M) worst case where N is the cardinality of the smallest set and M is "
                    "the number of sets.")
UNION_COMPLEXITY = "O(N) where N is the total number of elements in all given sets."


def limits(s):
    """The encoding thresholds, as SetValue takes them."""
    cfg = s.config
    return (cfg["set-max-intset-entries"], cfg["set-max-listpack-entries"],
            cfg["set-max-listpack-value"])


def read_set(c, key):
    return typed_lookup(c, key, SetValue)


def write_set(c, key):
    return typed_lookup(c, key, SetValue, for_write=True)


# ---------------------------------------------------------------- one set

@command("sadd", -3, flags="write denyoom fast", acl="write set fast", keys=(1, 1, 1),
         specs=["RW insert: index 1, range 0 1 0"], group=GROUP,
         complexity=("O(1) for each element added, so O(N) to add N elements when the command "
                     "is called with multiple arguments."),
         summary="Adds members to a set, creating it if needed; returns how many were new.")
def sadd(c, argv):
    s, key = c.server, argv[1]
    st = write_set(c, key)
    lim = limits(s)
    if st is None:
        st = SetValue.create(argv[2], len(argv) - 2, lim)
        s.add_new(c.db, key, st)
    else:
        st.maybe_convert(len(argv) - 2, lim)
    added = 0
    for member in argv[2:]:
        if st.add(member, lim):
            added += 1
    if added:
        s.touch(c.db, key)
        notify(c, "sadd", key)
        s.dirty += added
    return added


@command("srem", -3, flags="write fast", acl="write set fast", keys=(1, 1, 1),
         specs=["RW delete: index 1, range 0 1 0"], group=GROUP,
         complexity="O(N) where N is the number of members to be removed.",
         summary="Removes members from a set; returns how many were there.")
def srem(c, argv):
    s, key = c.server, argv[1]
    st = write_set(c, key)
    if st is None:
        return 0
    deleted = 0
    emptied = False
    for member in argv[2:]:
        if st.remove(member):
            deleted += 1
            if not len(st):
                s.delete(c.db, key)
                emptied = True
                break
    if deleted:
        s.touch(c.db, key)
        notify(c, "srem", key)
        if emptied:
            notify(c, "del", key)
        s.dirty += deleted
    return deleted


@command("smembers", 2, flags="readonly", acl="read set slow", keys=(1, 1, 1),
         specs=["RO access: index 1, range 0 1 0"], tips="nondeterministic_output_order",
         group=GROUP, complexity="O(N) where N is the set cardinality.",
         summary="Returns every member of a set.")
def smembers(c, argv):
    return _sinter(c, argv[1:])


@command("sismember", 3, flags="readonly fast", acl="read set fast", keys=(1, 1, 1),
         specs=["RO: index 1, range 0 1 0"], group=GROUP,
         summary="Tells whether a value is a member of a set.")
def sismember(c, argv):
    st = read_set(c, argv[1])
    return 1 if st is not None and argv[2] in st else 0


@command("smismember", -3, flags="readonly fast", acl="read set fast", keys=(1, 1, 1),
         specs=["RO access: index 1, range 0 1 0"], group=GROUP, since="6.2.0",
         complexity="O(N) where N is the number of elements being checked for membership",
         summary="Tells, for each of several values, whether it is a member of a set.")
def smismember(c, argv):
    st = read_set(c, argv[1])
    if st is None:
        return [0] * (len(argv) - 2)
    return [1 if m in st else 0 for m in argv[2:]]


@command("scard", 2, flags="readonly fast", acl="read set fast", keys=(1, 1, 1),
         specs=["RO: index 1, range 0 1 0"], group=GROUP,
         summary="Counts the members of a set.")
def scard(c, argv):
    st = read_set(c, argv[1])
    return 0 if st is None else len(st)


@command("spop", -2, flags="write fast", acl="write set fast", keys=(1, 1, 1),
         specs=["RW access delete: index 1, range 0 1 0"], tips="nondeterministic_output",
         group=GROUP,
         complexity=("Without the count argument O(1), otherwise O(N) where N is the value of "
                     "the passed count."),
         summary="Removes and returns random members of a set.")
def spop(c, argv):
    if len(argv) == 3:
        return _spop_count(c, argv)
    if len(argv) > 3:
        raise ReplyError(errors.SYNTAX)
    s, key = c.server, argv[1]
    st = write_set(c, key)
    if st is None:
        return None
    member = st.pop_random()
    notify(c, "spop", key)
    c.rewrite = [[b"SREM", key, member]]
    if not len(st):
        s.delete(c.db, key)
        notify(c, "del", key)
    s.touch(c.db, key)
    s.dirty += 1
    return member


def _spop_count(c, argv):
    s, key = c.server, argv[1]
    count = parse_int(argv[2])
    if count is None or count < 0:
        raise ReplyError(NOT_POSITIVE)
    st = write_set(c, key)
    if st is None or count == 0:
        return RespSet([])
    size = len(st)
    notify(c, "spop", key)
    s.dirty += min(count, size)
    if count >= size:
        # the whole set, in the order SUNION of it would give
        reply = _union_diff(c, [key], False, False).members()
        s.delete(c.db, key)
        notify(c, "del", key)
        c.rewrite = [[b"UNLINK" if s.config["lazyfree-lazy-server-del"] else b"DEL", key]]
        return RespSet(reply)
    popped = st.pop_many(count, limits(s))
    c.rewrite = [[b"SREM", key, *popped[i:i + SREM_BATCH]]
                 for i in range(0, len(popped), SREM_BATCH)]
    s.touch(c.db, key)
    return RespSet(popped)


@command("srandmember", -2, flags="readonly", acl="read set slow", keys=(1, 1, 1),
         specs=["RO access: index 1, range 0 1 0"], tips="nondeterministic_output",
         group=GROUP,
         complexity=("Without the count argument O(1), otherwise O(N) where N is the absolute "
                     "value of the passed count."),
         summary="Returns random members of a set without removing them.")
def srandmember(c, argv):
    if len(argv) == 3:
        return _srandmember_count(c, argv)
    if len(argv) > 3:
        raise ReplyError(errors.SYNTAX)
    st = read_set(c, argv[1])
    return None if st is None else st.random_member()


def _srandmember_count(c, argv):
    n = int_arg(argv[2])
    if n < -LLONG_MAX:
        raise ReplyError(SRANDMEMBER_RANGE)
    st = read_set(c, argv[1])
    if st is None or n == 0:
        return []
    if n < 0 or n == 1:
        # members drawn independently: repeats allowed, random order
        if -n > MAX_RANDOM_REPLY:
            raise MemoryError
        return st.random_members(abs(n))
    if n >= len(st):
        return st.members()
    return st.random_sample(n)


@command("smove", 4, flags="write fast", acl="write set fast", keys=(1, 2, 1),
         specs=["RW access delete: index 1, range 0 1 0", "RW insert: index 2, range 0 1 0"],
         group=GROUP, summary="Moves a member from one set to another.")
def smove(c, argv):
    s, src_key, dst_key, member = c.server, argv[1], argv[2], argv[3]
    src = s.lookup_write(c.db, src_key)
    dst = s.lookup_write(c.db, dst_key)
    if src is None:
        return 0
    if type(src) is not SetValue or (dst is not None and type(dst) is not SetValue):
        raise ReplyError(errors.WRONGTYPE)
    if src is dst:
        return 1 if member in src else 0
    if not src.remove(member):
        return 0
    notify(c, "srem", src_key)
    if not len(src):
        s.delete(c.db, src_key)
        notify(c, "del", src_key)
    lim = limits(s)
    if dst is None:
        dst = SetValue.create(member, 1, lim)
        s.add_new(c.db, dst_key, dst)
    s.touch(c.db, src_key)
    s.dirty += 1
    if dst.add(member, lim):
        s.dirty += 1
        s.touch(c.db, dst_key)
        notify(c, "sadd", dst_key)
    return 1


# ---------------------------------------------------------------- several sets

def _inter_inputs(c, keys):
    """The sets of an intersection, smallest first (a stable sort, as
    Valkey's qsort is on a few keys); None when a key is missing. Every key
    is type-checked first."""
    sets = []
    missing = False
    for key in keys:
        st = read_set(c, key)
        if st is None:
            missing = True
        else:
            sets.append(st)
    if missing:
        return None
    sets.sort(key=len)
    return sets


def _intersection(sets, limit=0):
    """Members of sets[0] (the smallest) found in every other set, in
    sets[0]'s order; stops after `limit` members if limit > 0."""
    first = sets[0]
    others = [st for st in sets[1:] if st is not first]
    out = []
    for member in first.members():
        for st in others:
            if member not in st:
                break
        else:
            out.append(member)
            if limit and len(out) >= limit:
                break
    return out


def _sinter(c, keys):
    sets = _inter_inputs(c, keys)
    return RespSet([] if sets is None else _intersection(sets))


@command("sinter", -2, flags="readonly", acl="read set slow", keys=(1, -1, 1),
         specs=["RO access: index 1, range -1 1 0"], tips="nondeterministic_output_order",
         group=GROUP, complexity=INTER_COMPLEXITY,
         summary="Returns the members common to every given set.")
def sinter(c, argv):
    return _sinter(c, argv[1:])


@command("sintercard", -3, flags="readonly movablekeys", acl="read set slow",
         specs=["RO access: index 1, keynum 0 1 1"], group=GROUP, since="7.0.0",
         complexity=INTER_COMPLEXITY,
         summary="Counts the members common to every given set, optionally up to a limit.")
def sintercard(c, argv):
    numkeys = parse_int(argv[1])
    if numkeys is None or numkeys < 1:
        raise ReplyError(NUMKEYS)
    if numkeys > len(argv) - 2:
        raise ReplyError(TOO_MANY_KEYS)
    limit = 0
    i = 2 + numkeys
    while i < len(argv):
        if argv[i].lower() == b"limit" and i + 1 < len(argv):
            i += 1
            limit = parse_int(argv[i])
            if limit is None or limit < 0:
                raise ReplyError(LIMIT_NEGATIVE)
        else:
            raise ReplyError(errors.SYNTAX)
        i += 1
    sets = _inter_inputs(c, argv[2:2 + numkeys])
    if sets is None:
        return 0
    return len(_intersection(sets, limit))


def store_result(c, dst_key, result, event):
    """The *STORE commands' ending: the result replaces the destination
    (no TTL kept), or an empty result deletes it."""
    s = c.server
    if len(result):
        s.lookup_write(c.db, dst_key)   # expires a stale destination first, as Valkey's setKey
        s.store(c.db, dst_key, result)
        notify(c, event, dst_key)
        s.dirty += 1
        return len(result)
    if s.delete(c.db, dst_key):
        s.dirty += 1
        notify(c, "del", dst_key)
    return 0


@command("sinterstore", -3, flags="write denyoom", acl="write set slow", keys=(1, -1, 1),
         specs=["OW update: index 1, range 0 1 0", "RO access: index 2, range -1 1 0"],
         group=GROUP, complexity=INTER_COMPLEXITY,
         summary="Stores the members common to every given set in a key.")
def sinterstore(c, argv):
    sets = _inter_inputs(c, argv[2:])
    if sets is None:
        return store_result(c, argv[1], (), "sinterstore")
    lim = limits(c.server)
    # Valkey starts from the smallest set's encoding (a listpack for a
    # hashtable), grows it as usual, and makes an all-integer result an intset.
    result = SetValue(INTSET if sets[0].enc == INTSET else LISTPACK)
    only_integers = True
    for member in _intersection(sets):
        if only_integers and parse_int(member) is None:
            only_integers = False
        result.add(member, lim)
    if len(result) and only_integers:
        result.maybe_to_intset(lim)
    return store_result(c, argv[1], result, "sinterstore")


def _union_diff(c, keys, diff, store):
    """The SUNION/SDIFF result as a new SetValue built the way Valkey builds
    it: an intset to start with when storing or when every input is an
    intset, else a hashtable; for a diff, the algorithm Valkey would pick."""
    sets = []
    all_intsets = True
    for key in keys:
        st = read_set(c, key)
        if st is not None and st.enc != INTSET:
            all_intsets = False
        sets.append(st)
    lim = limits(c.server)
    result = SetValue(INTSET if store or all_intsets else HASHTABLE)
    present = [st for st in sets if st is not None]
    if not diff:
        for st in present:
            for member in st.members():
                result.add(member, lim)
        return result
    first = sets[0]
    if first is None or any(st is first for st in present[1:]):
        return result
    # algorithm 1 (look each member of the first set up in the others) unless
    # walking every set once is clearly less work
    if len(first) * len(present) // 2 <= sum(len(st) for st in present):
        others = present[1:]
        for member in first.members():
            for st in others:
                if member in st:
                    break
            else:
                result.add(member, lim)
    else:
        for member in first.members():
            result.add(member, lim)
        for st in present[1:]:
            if not len(result):
                break
            for member in st.members():
                result.remove(member)
    return result


@command("sunion", -2, flags="readonly", acl="read set slow", keys=(1, -1, 1),
         specs=["RO access: index 1, range -1 1 0"], tips="nondeterministic_output_order",
         group=GROUP, complexity=UNION_COMPLEXITY,
         summary="Returns the members found in any of the given sets.")
def sunion(c, argv):
    return RespSet(_union_diff(c, argv[1:], False, False).members())


@command("sunionstore", -3, flags="write denyoom", acl="write set slow", keys=(1, -1, 1),
         specs=["OW update: index 1, range 0 1 0", "RO access: index 2, range -1 1 0"],
         group=GROUP, complexity=UNION_COMPLEXITY,
         summary="Stores the members found in any of the given sets in a key.")
def sunionstore(c, argv):
    return store_result(c, argv[1], _union_diff(c, argv[2:], False, True), "sunionstore")


@command("sdiff", -2, flags="readonly", acl="read set slow", keys=(1, -1, 1),
         specs=["RO access: index 1, range -1 1 0"], tips="nondeterministic_output_order",
         group=GROUP, complexity=UNION_COMPLEXITY,
         summary="Returns the members of the first set found in none of the others.")
def sdiff(c, argv):
    return RespSet(_union_diff(c, argv[1:], True, False).members())


@command("sdiffstore", -3, flags="write denyoom", acl="write set slow", keys=(1, -1, 1),
         specs=["OW update: index 1, range 0 1 0", "RO access: index 2, range -1 1 0"],
         group=GROUP, complexity=UNION_COMPLEXITY,
         summary="Stores the members of the first set found in none of the others in a key.")
def sdiffstore(c, argv):
    return store_result(c, argv[1], _union_diff(c, argv[2:], True, True), "sdiffstore")


# ---------------------------------------------------------------- SSCAN

@command("sscan", -3, flags="readonly", acl="read set slow", keys=(1, 1, 1),
         specs=["RO access: index 1, range 0 1 0"], tips="nondeterministic_output",
         group=GROUP, since="2.8.0",
         complexity=("O(1) for every call. O(N) for a complete iteration, including enough "
                     "command calls for the cursor to return back to 0. N is the number of "
                     "elements inside the collection."),
         summary="Iterates over the members of a set with a cursor, a batch per call.")
def sscan(c, argv):
    cursor = parse_cursor(argv[2])
    st = read_set(c, argv[1])
    if st is None:
        return [b"0", []]
    pattern, count, _ = collection_scan_options(argv)
    if st.enc == HASHTABLE:
        cursor, batch = st.scan(cursor, count)
    else:
        # small encodings answer everything at once, whatever the cursor
        cursor, batch = 0, st.members()
    if pattern is not None:
        batch = [m for m in batch if glob_match(pattern, m)]
    return [format_int(cursor), batch]
