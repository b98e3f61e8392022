"""Lists: the commands over list values (shardkv/types/list.py), blocking
ones included, with Valkey 9.1's replies, error texts and argument order.

Pushes and pops propagate as they are; the commands that pop from a key
chosen at run time or block (LMPOP, BLPOP, BRPOP, BLMPOP, BLMOVE,
BRPOPLPUSH) propagate what they did: LPOP/RPOP key [count], LMOVE or
RPOPLPUSH. A blocking command with nothing to pop blocks through
c.server.blocking (shardkv/blocking.py); when one of its keys is signalled
ready the command runs again, as Valkey re-executes a blocked command, so a
client blocked on several keys pops from the first of them that has
elements. Inside MULTI/EXEC nothing blocks: the command answers as if it
had timed out."""

from __future__ import annotations


from shardkv import errors
from shardkv.blocking import pop_or_block
from shardkv.commands.common import (
    NULL_ARRAY, OK, mpop_arguments, numkeys_getkeys, format_int, int_arg, notify, parse_int, parse_timeout, typed_lookup,
)
from shardkv.commands.table import command
from shardkv.errors import ReplyError
from shardkv.native import _native
from shardkv.types.list import ListValue, is_int_entry

LIST = "list"
FILL = "list-max-listpack-size"
EXECUTING = _native.CLIENT_FLAGS["EXECUTING"]
LONG_MAX = 2**63 - 1

NO_SUCH_KEY = errors.NO_SUCH_KEY
INDEX_OUT_OF_RANGE = "ERR index out of range"
MUST_BE_POSITIVE = "ERR value is out of range, must be positive"
LONG_RANGE = "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807"
RANK_ZERO = ("ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... "
             "or use negative to start from the end of the list")
COUNT_NEGATIVE = "ERR COUNT can't be negative"
MAXLEN_NEGATIVE = "ERR MAXLEN can't be negative"

PUSH_SPECS = ["RW insert: index 1, range 0 1 0"]
POP_SPECS = ["RW access delete: index 1, range 0 1 0"]
MOVE_SPECS = ["RW access delete: index 1, range 0 1 0", "RW insert: index 2, range 0 1 0"]
PUSH_COMPLEXITY = ("O(1) for each element added, so O(N) to add N elements when the command is "
                   "called with multiple arguments.")


# ---------------------------------------------------------------- helpers

def _fill(c):
    return c.server.config.values[FILL]


def get_list(c, key):
    return typed_lookup(c, key, ListValue)


def get_list_for_write(c, key):
    return typed_lookup(c, key, ListValue, for_write=True)


def _positive(b, error=MUST_BE_POSITIVE):
    """getPositiveLongFromObjectOrReply: a non-negative integer, else `error`
    (also when it is not an integer at all)."""
    n = parse_int(b)
    if n is None or n < 0:
        raise ReplyError(error)
    return n


def _long_symmetric(b):
    """An integer in -LONG_MAX..LONG_MAX (LREM's count, LPOS's RANK)."""
    n = int_arg(b)
    if n < -LONG_MAX:
        raise ReplyError(LONG_RANGE)
    return n


def _side(b):
    """LEFT (True: the head) or RIGHT (False: the tail)."""
    w = b.lower()
    if w == b"left":
        return True
    if w == b"right":
        return False
    raise ReplyError(errors.SYNTAX)


def _removed(c, key, v, head, n):
    """After n elements left v from one end (listElementsRemoved): the key
    goes when the list is empty, else the list may become a listpack."""
    _native.list_removed(c.server, c, key, v, head, n)


# ---------------------------------------------------------------- push
# LPUSH RPUSH LPUSHX RPUSHX LPOP RPOP are hot commands: their bodies are
# hot_push and hot_pop in cython_ext/hot.pxi.

@command("lpush", -3, flags="write denyoom fast", acl="write list fast", keys=(1, 1, 1),
         specs=PUSH_SPECS, group=LIST, fast=True, complexity=PUSH_COMPLEXITY,
         summary="Adds elements at the head of a list, creating it if needed; returns the new length.")
def lpush(c, argv):
    pass


@command("rpush", -3, flags="write denyoom fast", acl="write list fast", keys=(1, 1, 1),
         specs=PUSH_SPECS, group=LIST, fast=True, complexity=PUSH_COMPLEXITY,
         summary="Adds elements at the tail of a list, creating it if needed; returns the new length.")
def rpush(c, argv):
    pass


@command("lpushx", -3, flags="write denyoom fast", acl="write list fast", keys=(1, 1, 1),
         specs=PUSH_SPECS, group=LIST, fast=True, since="2.2.0", complexity=PUSH_COMPLEXITY,
         summary="Adds elements at the head of a list only if the list exists.")
def lpushx(c, argv):
    pass


@command("rpushx", -3, flags="write denyoom fast", acl="write list fast", keys=(1, 1, 1),
         specs=PUSH_SPECS, group=LIST, fast=True, since="2.2.0", complexity=PUSH_COMPLEXITY,
         summary="Adds elements at the tail of a list only if the list exists.")
def rpushx(c, argv):
    pass


# ---------------------------------------------------------------- pop

@command("lpop", -2, flags="write fast", acl="write list fast", keys=(1, 1, 1), specs=POP_SPECS,
         group=LIST, fast=True, complexity="O(N) where N is the number of elements returned",
         summary="Removes and returns the first element of a list, or the first count elements.")
def lpop(c, argv):
    pass


@command("rpop", -2, flags="write fast", acl="write list fast", keys=(1, 1, 1), specs=POP_SPECS,
         group=LIST, fast=True, complexity="O(N) where N is the number of elements returned",
         summary="Removes and returns the last element of a list, or the last count elements.")
def rpop(c, argv):
    pass


# ---------------------------------------------------------------- reading

@command("llen", 2, flags="readonly fast", acl="read list fast", keys=(1, 1, 1),
         specs=["RO: index 1, range 0 1 0"], group=LIST,
         summary="Returns how many elements a list has.")
def llen(c, argv):
    v = get_list(c, argv[1])
    return 0 if v is None else v.count


@command("lrange", 4, flags="readonly", acl="read list slow", keys=(1, 1, 1),
         specs=["RO access: index 1, range 0 1 0"], group=LIST,
         complexity=("O(S+N) where S is the distance of start offset from HEAD for small lists, from "
                     "nearest end (HEAD or TAIL) for large lists; and N is the number of elements in "
                     "the specified range."),
         summary="Returns the elements between two indexes of a list (negative ones count from the tail).")
def lrange(c, argv):
    start = int_arg(argv[2])
    end = int_arg(argv[3])
    v = get_list(c, argv[1])
    if v is None:
        return []
    n = v.count
    if start < 0:
        start += n
    if end < 0:
        end += n
    if start < 0:
        start = 0
    if start > end or start >= n:
        return []
    if end >= n:
        end = n - 1
    return v.range(start, end)


@command("lindex", 3, flags="readonly", acl="read list slow", keys=(1, 1, 1),
         specs=["RO access: index 1, range 0 1 0"], group=LIST,
         complexity=("O(N) where N is the number of elements to traverse to get to the element at "
                     "index. This makes asking for the first or the last element of the list O(1)."),
         summary="Returns the element at an index of a list.")
def lindex(c, argv):
    v = get_list(c, argv[1])
    if v is None:
        return None
    return v.index(int_arg(argv[2]))


@command("lpos", -3, flags="readonly", acl="read list slow", keys=(1, 1, 1),
         specs=["RO access: index 1, range 0 1 0"], group=LIST, since="6.0.6",
         complexity=("O(N) where N is the number of elements in the list, for the average case. When "
                     "searching for elements near the head or the tail of the list, or when the MAXLEN "
                     "option is provided, the command may run in constant time."),
         summary="Finds the index of matching elements of a list.")
def lpos(c, argv):
    element = argv[2]
    rank, count, maxlen = 1, None, 0
    i = 3
    while i < len(argv):
        opt = argv[i].lower()
        more = i + 1 < len(argv)
        if opt == b"rank" and more:
            rank = _long_symmetric(argv[i + 1])
            if rank == 0:
                raise ReplyError(RANK_ZERO)
        elif opt == b"count" and more:
            count = _positive(argv[i + 1], COUNT_NEGATIVE)
        elif opt == b"maxlen" and more:
            maxlen = _positive(argv[i + 1], MAXLEN_NEGATIVE)
        else:
            raise ReplyError(errors.SYNTAX)
        i += 2
    reverse = rank < 0
    rank = abs(rank)
    v = get_list(c, argv[1])
    if v is None:
        return [] if count is not None else None
    n = v.count
    found = []
    seen = 0
    for pos in v.matches(element, reverse):
        if maxlen and (n - 1 - pos if reverse else pos) >= maxlen:
            break
        seen += 1
        if seen >= rank:
            if count is None:
                return pos
            found.append(pos)
            if count and len(found) >= count:
                break
    return found if count is not None else None


# ---------------------------------------------------------------- in place

@command("lset", 4, flags="write denyoom", acl="write list slow", keys=(1, 1, 1),
         specs=["RW update: index 1, range 0 1 0"], group=LIST,
         complexity=("O(N) where N is the length of the list. Setting either the first or the last "
                     "element of the list is O(1)."),
         summary="Replaces the element at an index of a list.")
def lset(c, argv):
    s, key, value = c.server, argv[1], argv[3]
    v = s.lookup_write(c.db, key)
    if v is None:
        raise ReplyError(NO_SUCH_KEY)
    if type(v) is not ListValue:
        raise ReplyError(errors.WRONGTYPE)
    index = int_arg(argv[2])
    fill = _fill(c)
    v.grow_check(fill, len(value), 1)
    if index < 0:
        index += v.count
    if index < 0 or index >= v.count:
        raise ReplyError(INDEX_OUT_OF_RANGE)
    v.replace(index, value)
    v.shrink_check(fill)
    s.touch(c.db, key)
    notify(c, "lset", key)
    s.dirty += 1
    return OK


@command("linsert", 5, flags="write denyoom", acl="write list slow", keys=(1, 1, 1),
         specs=["RW insert: index 1, range 0 1 0"], group=LIST, since="2.2.0",
         complexity=("O(N) where N is the number of elements to traverse before seeing the value pivot. "
                     "This means that inserting somewhere on the left end on the list (head) can be "
                     "considered O(1) and inserting somewhere on the right end (tail) is O(N)."),
         summary="Inserts an element before or after the first occurrence of a pivot element.")
def linsert(c, argv):
    where = argv[2].lower()
    if where == b"after":
        after = True
    elif where == b"before":
        after = False
    else:
        raise ReplyError(errors.SYNTAX)
    s, key, value = c.server, argv[1], argv[4]
    v = get_list_for_write(c, key)
    if v is None:
        return 0
    # as Valkey: converted for the new element before the pivot is known to exist
    v.grow_check(_fill(c), len(value), 1)
    pos = next(v.matches(argv[3]), None)
    if pos is None:
        return -1
    v.insert(pos, value, after)
    s.touch(c.db, key)
    notify(c, "linsert", key)
    s.dirty += 1
    return v.count


@command("lrem", 4, flags="write", acl="write list slow", keys=(1, 1, 1),
         specs=["RW delete: index 1, range 0 1 0"], group=LIST,
         complexity="O(N+M) where N is the length of the list and M is the number of elements removed.",
         summary="Removes elements equal to a value: count of them from the head, from the tail if negative, or all.")
def lrem(c, argv):
    s, key = c.server, argv[1]
    count = _long_symmetric(argv[2])
    v = get_list_for_write(c, key)
    if v is None:
        return 0
    removed = v.remove(argv[3], abs(count), count < 0)
    if removed:
        notify(c, "lrem", key)
        if not v.count:
            s.delete(c.db, key)
            notify(c, "del", key)
        else:
            v.shrink_check(_fill(c))
            s.touch(c.db, key)
        s.dirty += removed
    return removed


@command("ltrim", 4, flags="write", acl="write list slow", keys=(1, 1, 1),
         specs=["RW delete: index 1, range 0 1 0"], group=LIST,
         complexity="O(N) where N is the number of elements to be removed by the operation.",
         summary="Keeps only the elements between two indexes of a list, deleting the rest.")
def ltrim(c, argv):
    s, key = c.server, argv[1]
    start = int_arg(argv[2])
    end = int_arg(argv[3])
    v = get_list_for_write(c, key)
    if v is None:
        return OK
    n = v.count
    if start < 0:
        start += n
    if end < 0:
        end += n
    if start < 0:
        start = 0
    if start > end or start >= n:
        left, right = n, 0
    else:
        if end >= n:
            end = n - 1
        left, right = start, n - end - 1
    v.delete_range(0, left)
    v.delete_range(v.count - right, v.count)
    notify(c, "ltrim", key)
    if not v.count:
        s.delete(c.db, key)
        notify(c, "del", key)
    else:
        v.shrink_check(_fill(c))
    if left + right:
        s.touch(c.db, key)
    s.dirty += left + right
    return OK


# ---------------------------------------------------------------- moving

def _lmove(c, src, dst, from_head, to_head):
    """Pops from src and pushes to dst (src may be dst); the element, or
    None when src is absent."""
    s = c.server
    sv = get_list_for_write(c, src)
    if sv is None:
        return None
    dv = get_list_for_write(c, dst)
    value = sv.pop(from_head)
    # Valkey counts the bytes of the popped element toward the conversion
    # of dst unless it came out of a quicklist as an integer object
    counted = 0 if sv.quick and is_int_entry(value) else len(value)
    if dv is None:
        dv = ListValue()
        s.add_new(c.db, dst, dv)
    dv.grow_check(_fill(c), counted, 1)
    dv.push(value, to_head)
    s.touch(c.db, dst)
    notify(c, "lpush" if to_head else "rpush", dst)
    _removed(c, src, sv, from_head, 1)
    return value


@command("lmove", 5, flags="write denyoom", acl="write list slow", keys=(1, 2, 1), specs=MOVE_SPECS,
         group=LIST, since="6.2.0",
         summary="Pops an element from one end of a list and pushes it at an end of another; returns it.")
def lmove(c, argv):
    from_head = _side(argv[3])
    to_head = _side(argv[4])
    return _lmove(c, argv[1], argv[2], from_head, to_head)


@command("rpoplpush", 3, flags="write denyoom", acl="write list slow", keys=(1, 2, 1), specs=MOVE_SPECS,
         group=LIST, since="1.2.0",
         summary="Pops the last element of a list and pushes it at the head of another; returns it.")
def rpoplpush(c, argv):
    return _lmove(c, argv[1], argv[2], False, True)


def _pop_first(c, keys, head, count):
    """Pops from the first key of keys holding a list: one element (count
    None) or up to count. Returns (reply, command to propagate), or None if
    no key has a list; WRONGTYPE if the first key present is another type."""
    for key in keys:
        v = get_list_for_write(c, key)
        if v is None:
            continue
        if count is None:
            e = v.pop(head)
            _removed(c, key, v, head, 1)
            return [key, e], [b"LPOP" if head else b"RPOP", key]
        out = v.pop_range(head, count)
        _removed(c, key, v, head, len(out))
        return [key, out], [b"LPOP" if head else b"RPOP", key, format_int(len(out))]
    return None


def _mpop_arguments(argv, numkeys_idx):
    """numkeys, keys, LEFT|RIGHT and COUNT of LMPOP/BLMPOP."""
    keys, head, count = mpop_arguments(argv, numkeys_idx, _side)
    return keys, head, count or 1


@command("lmpop", -4, flags="write movablekeys", acl="write list slow",
         specs=["RW access delete: index 1, keynum 0 1 1"], group=LIST, since="7.0.0",
         getkeys=numkeys_getkeys(1),
         complexity="O(N+M) where N is the number of provided keys and M is the number of elements returned.",
         summary="Pops elements from the first non-empty list among several keys.")
def lmpop(c, argv):
    keys, head, count = _mpop_arguments(argv, 1)
    r = _pop_first(c, keys, head, count)
    if r is None:
        return NULL_ARRAY
    c.rewrite = [r[1]]
    return r[0]


# ---------------------------------------------------------------- blocking

def _blocking_pop(c, keys, head, count, timeout_ms):
    """BLPOP/BRPOP/BLMPOP (count None: one element, [key, element]; else
    [key, [...]])."""
    return pop_or_block(c, keys, timeout_ms, ListValue, lambda: _pop_first(c, keys, head, count))


BLOCKING_POP_COMPLEXITY = "O(N) where N is the number of provided keys."


@command("blpop", -3, flags="write blocking", acl="write list slow blocking", keys=(1, -2, 1),
         specs=["RW access delete: index 1, range -2 1 0"], group=LIST, since="2.0.0",
         complexity=BLOCKING_POP_COMPLEXITY,
         summary="Pops the first element of the first non-empty list among keys, waiting for one if all are empty.")
def blpop(c, argv):
    timeout = parse_timeout(c, argv[-1])
    return _blocking_pop(c, argv[1:-1], True, None, timeout)


@command("brpop", -3, flags="write blocking", acl="write list slow blocking", keys=(1, -2, 1),
         specs=["RW access delete: index 1, range -2 1 0"], group=LIST, since="2.0.0",
         complexity=BLOCKING_POP_COMPLEXITY,
         summary="Pops the last element of the first non-empty list among keys, waiting for one if all are empty.")
def brpop(c, argv):
    timeout = parse_timeout(c, argv[-1])
    return _blocking_pop(c, argv[1:-1], False, None, timeout)


@command("blmpop", -5, flags="write blocking movablekeys", acl="write list slow blocking",
         specs=["RW access delete: index 2, keynum 0 1 1"], group=LIST, since="7.0.0",
         getkeys=numkeys_getkeys(2),
         complexity="O(N+M) where N is the number of provided keys and M is the number of elements returned.",
         summary="Pops elements from the first non-empty list among keys, waiting for one if all are empty.")
def blmpop(c, argv):
    keys, head, count = _mpop_arguments(argv, 2)
    timeout = parse_timeout(c, argv[1])
    return _blocking_pop(c, keys, head, count, timeout)


def _blocking_move(c, src, dst, from_head, to_head, timeout_ms, rewrite):
    """BLMOVE/BRPOPLPUSH: moves now if src has elements, else blocks on src."""
    s = c.server
    if get_list_for_write(c, src) is not None:
        value = _lmove(c, src, dst, from_head, to_head)
        c.rewrite = [rewrite]
        return value
    if c.flag(EXECUTING):
        return None

    def on_ready(key):
        if type(s.peek(c.db, src)) is not ListValue:
            return False
        value = _lmove(c, src, dst, from_head, to_head)   # may fail: WRONGTYPE destination
        if value is None:
            return False
        c.out.add(value)
        s.propagate(c.db.id, rewrite)
        return True

    def on_timeout():
        # Valkey answers a timed-out BLMOVE with a null array, like BLPOP
        c.out.add(NULL_ARRAY)

    return s.blocking.block(c, [src], timeout_ms, on_ready, on_timeout)


@command("blmove", 6, flags="write denyoom blocking", acl="write list slow blocking", keys=(1, 2, 1),
         specs=MOVE_SPECS, group=LIST, since="6.2.0",
         summary="Moves an element from one list to another like LMOVE, waiting for one if the source is empty.")
def blmove(c, argv):
    from_head = _side(argv[3])
    to_head = _side(argv[4])
    timeout = parse_timeout(c, argv[5])
    return _blocking_move(c, argv[1], argv[2], from_head, to_head, timeout,
                          [b"LMOVE", argv[1], argv[2], argv[3], argv[4]])


@command("brpoplpush", 4, flags="write denyoom blocking", acl="write list slow blocking", keys=(1, 2, 1),
         specs=MOVE_SPECS, group=LIST, since="2.2.0",
         summary="Moves the last element of a list to the head of another, waiting for one if the source is empty.")
def brpoplpush(c, argv):
    timeout = parse_timeout(c, argv[3])
    return _blocking_move(c, argv[1], argv[2], False, True, timeout, [b"RPOPLPUSH", argv[1], argv[2]])
