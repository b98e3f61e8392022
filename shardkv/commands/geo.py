"""Geospatial indexes: GEOADD GEOPOS GEODIST GEOHASH GEOSEARCH GEOSEARCHSTORE
GEORADIUS GEORADIUSBYMEMBER GEORADIUS_RO GEORADIUSBYMEMBER_RO, over sorted
sets whose scores are 52-bit geohashes (the arithmetic is in shardkv.geohash).

As in Valkey, GEOADD is ZADD with the positions turned into scores: the
handler rewrites its argv into a ZADD and runs the ZADD handler, so the
encoding, the "zadd" keyspace event and the propagated command (ZADD) come
out as Valkey's. Every search command goes through one function
(`_search`, Valkey's georadiusGeneric) that parses the options in Valkey's
order, so the first error a command meets is Valkey's first error; results
are sorted as Valkey sorts them (glibc's stable merge sort for a full sort,
Valkey's partial quicksort, pqsort, when COUNT keeps fewer than found), so
equal distances come out in the same order.

Distances are printed with 4 decimals; coordinates as Redis prints long
doubles for humans (17 decimals, no trailing zeros): a RESP3 double made
from that text in RESP3 (`DoubleText`, see `_coord`)."""

from __future__ import annotations

from shardkv import errors
from shardkv import geohash as gh
from shardkv.commands.common import NULL_ARRAY, int_arg, typed_lookup
from shardkv.commands.table import command
from shardkv.commands.zsets import parse_score, zadd, zset_store
from shardkv.errors import ReplyError
from shardkv.native import _native
from shardkv.types.zset import ZSetValue

GROUP = "geo"

UNIT_ERROR = "ERR unsupported unit provided. please use M, KM, FT, MI"
NEED_RADIUS = "ERR need numeric radius"
NEED_WIDTH = "ERR need numeric width"
NEED_HEIGHT = "ERR need numeric height"
NEGATIVE_RADIUS = "ERR radius cannot be negative"
NEGATIVE_BOX = "ERR height or width cannot be negative"
COUNT_POSITIVE = "ERR COUNT must be > 0"
ANY_NEEDS_COUNT = "ERR the ANY argument requires COUNT argument"
VERTICES_NUMBER = "ERR invalid number of vertices"
VERTICES_FEW = "ERR GEOSEARCH BYPOLYGON must have at least 3 vertices"
STORE_WITH = "ERR %s is not compatible with WITHDIST, WITHHASH and WITHCOORD options"
NEED_FROM = "ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for %s"
NEED_BY = "ERR exactly one of BYRADIUS, BYBOX and BYPOLYGON can be specified for %s"

# meters per unit
UNITS = {b"m": 1.0, b"km": 1000.0, b"ft": 0.3048, b"mi": 1609.34}

INT_MIN, INT_MAX = -(2**31), 2**31 - 1

# A double already printed, sent as a RESP3 double (a bulk string in RESP2).
DoubleText = _native.DoubleText

SEARCH_COMPLEXITY = ("O(N+log(M)) where N is the number of elements in the grid-aligned bounding "
                     "box area around the shape provided as the filter and M is the number of "
                     "items inside the shape")
RADIUS_COMPLEXITY = ("O(N+log(M)) where N is the number of elements inside the bounding box of the "
                     "circular area delimited by center and radius and M is the number of items "
                     "inside the index.")


def read_zset(c, key):
    return typed_lookup(c, key, ZSetValue)


# ---------------------------------------------------------------- arguments

def _lonlat(b_lon, b_lat):
    """A position argument pair, checked against the indexable limits."""
    lon = parse_score(b_lon)
    lat = parse_score(b_lat)
    if lon < gh.LONG_MIN or lon > gh.LONG_MAX or lat < gh.LAT_MIN or lat > gh.LAT_MAX:
        raise ReplyError(gh.format_pair_error(lon, lat))
    return lon, lat


def _unit(b):
    factor = UNITS.get(b.lower())
    if factor is None:
        raise ReplyError(UNIT_ERROR)
    return factor


def _radius(b_value, b_unit):
    """(meters per unit, radius) of "<radius> <unit>"."""
    radius = parse_score(b_value, NEED_RADIUS)
    if radius < 0:
        raise ReplyError(NEGATIVE_RADIUS)
    return _unit(b_unit), radius


def _box(b_width, b_height, b_unit):
    """(meters per unit, width, height) of "<width> <height> <unit>"."""
    width = parse_score(b_width, NEED_WIDTH)
    height = parse_score(b_height, NEED_HEIGHT)
    if height < 0 or width < 0:
        raise ReplyError(NEGATIVE_BOX)
    return _unit(b_unit), width, height


def _member_position(z, member):
    score = z.score(member)
    if score is None:
        # Valkey prints the member with %s: up to its first NUL
        name = member.split(b"\0", 1)[0].decode("latin-1")
        raise ReplyError("ERR member %s does not exist" % name)
    return gh.decode_score(score)


# ---------------------------------------------------------------- replies

def _coord(c, x):
    """A coordinate as Valkey sends it (addReplyHumanLongDouble)."""
    return DoubleText(gh.format_coord(x))


# ---------------------------------------------------------------- GEOADD

@command("geoadd", -5, flags="write denyoom", acl="write geo slow", keys=(1, 1, 1),
         specs=["RW update: index 1, range 0 1 0"], group=GROUP, since="3.2.0",
         complexity="O(log(N)) for each item added, where N is the number of elements in the sorted set.",
         summary="Adds members at given positions to a geospatial index, creating it if needed.")
def geoadd(c, argv):
    argc = len(argv)
    first = 2
    nx = xx = False
    while first < argc:
        opt = argv[first].lower()
        if opt == b"nx":
            nx = True
        elif opt == b"xx":
            xx = True
        elif opt != b"ch":     # CH is ZADD's business
            break
        first += 1
    if (argc - first) % 3 or (nx and xx):
        raise ReplyError(errors.SYNTAX)
    zargv = [b"zadd", *argv[1:first]]
    for i in range(first, argc, 3):
        lon, lat = _lonlat(argv[i], argv[i + 1])
        zargv.append(b"%d" % gh.encode_score(lon, lat))
        zargv.append(argv[i + 2])
    # propagated as the ZADD it became, as Valkey's replaceClientCommandVector
    c.rewrite = [zargv]
    return zadd(c, zargv)


# ---------------------------------------------------------------- GEOPOS GEODIST GEOHASH

@command("geopos", -2, flags="readonly", acl="read geo slow", keys=(1, 1, 1),
         specs=["RO access: index 1, range 0 1 0"], group=GROUP, since="3.2.0",
         complexity="O(1) for each member requested.",
         summary="Returns the positions of members of a geospatial index.")
def geopos(c, argv):
    z = read_zset(c, argv[1])
    out = []
    for member in argv[2:]:
        score = None if z is None else z.score(member)
        if score is None:
            out.append(NULL_ARRAY)
        else:
            lon, lat = gh.decode_score(score)
            out.append([_coord(c, lon), _coord(c, lat)])
    return out


@command("geodist", -4, flags="readonly", acl="read geo slow", keys=(1, 1, 1),
         specs=["RO access: index 1, range 0 1 0"], group=GROUP, since="3.2.0",
         summary="Returns the distance between two members of a geospatial index.")
def geodist(c, argv):
    to_meters = 1.0
    if len(argv) == 5:
        to_meters = _unit(argv[4])
    elif len(argv) > 5:
        raise ReplyError(errors.SYNTAX)
    z = read_zset(c, argv[1])
    if z is None:
        return None
    s1 = z.score(argv[2])
    s2 = z.score(argv[3])
    if s1 is None or s2 is None:
        return None
    lon1, lat1 = gh.decode_score(s1)
    lon2, lat2 = gh.decode_score(s2)
    return gh.format_distance(gh.distance(lon1, lat1, lon2, lat2) / to_meters)


@command("geohash", -2, flags="readonly", acl="read geo slow", keys=(1, 1, 1),
         specs=["RO access: index 1, range 0 1 0"], group=GROUP, since="3.2.0",
         complexity="O(1) for each member requested.",
         summary="Returns members' positions in a geospatial index as geohash strings.")
def geohash(c, argv):
    z = read_zset(c, argv[1])
    out = []
    for member in argv[2:]:
        score = None if z is None else z.score(member)
        out.append(None if score is None else gh.geohash_string(score))
    return out


# ---------------------------------------------------------------- searches

COORDS = 1          # GEORADIUS: the centre is a position argument
MEMBER = 2          # GEORADIUSBYMEMBER: the centre is a member
NOSTORE = 4         # the _RO variants: no STORE / STOREDIST
SEARCH = 8          # GEOSEARCH syntax (FROM... BY...)
SEARCHSTORE = 16    # GEOSEARCHSTORE: the destination comes first, STOREDIST is a flag

SORT_NONE, SORT_ASC, SORT_DESC = 0, 1, 2


class _Found:
    """One member inside the search area."""
    __slots__ = ("member", "score", "dist", "lon", "lat")

    def __init__(self, member, score, dist, lon, lat):
        self.member, self.score, self.dist, self.lon, self.lat = member, score, dist, lon, lat


def _search(c, argv, flags):
    src_index = 2 if flags & SEARCHSTORE else 1
    z = read_zset(c, argv[src_index])
    argc = len(argv)
    storekey = None
    storedist = False
    kind = None
    lon = lat = 0.0
    radius = width = height = 0.0
    conversion = 0.0
    vertices = None
    if flags & COORDS:
        base = 6
        kind = gh.RADIUS
        lon, lat = _lonlat(argv[2], argv[3])
        conversion, radius = _radius(argv[4], argv[5])
    elif flags & MEMBER:
        base = 5
        if z is not None:   # without a key, only the options are checked
            kind = gh.RADIUS
            lon, lat = _member_position(z, argv[2])
            conversion, radius = _radius(argv[3], argv[4])
    else:
        base = 2
        if flags & SEARCHSTORE:
            base = 3
            storekey = argv[1]

    withdist = withhash = withcoord = anyflag = False
    frommember = fromloc = byradius = bybox = bypolygon = False
    sort = SORT_NONE
    count = 0
    search = bool(flags & SEARCH)
    store_ok = not (flags & NOSTORE) and not search
    remaining = argc - base
    i = 0
    while i < remaining:
        arg = argv[base + i].lower()
        left = remaining - i - 1          # arguments after this one
        if arg == b"withdist":
            withdist = True
        elif arg == b"withhash":
            withhash = True
        elif arg == b"withcoord":
            withcoord = True
        elif arg == b"any":
            anyflag = True
        elif arg == b"asc":
            sort = SORT_ASC
        elif arg == b"desc":
            sort = SORT_DESC
        elif arg == b"count" and left >= 1:
            count = int_arg(argv[base + i + 1])
            if count <= 0:
                raise ReplyError(COUNT_POSITIVE)
            i += 1
        elif arg in (b"store", b"storedist") and left >= 1 and store_ok:
            storekey = argv[base + i + 1]
            storedist = arg == b"storedist"
            i += 1
        elif arg == b"storedist" and search and flags & SEARCHSTORE:
            storedist = True
        elif arg == b"frommember" and left >= 1 and search and not fromloc and not bypolygon:
            if z is not None:
                lon, lat = _member_position(z, argv[base + i + 1])
            frommember = True
            i += 1
        elif arg == b"fromlonlat" and left >= 2 and search and not frommember and not bypolygon:
            lon, lat = _lonlat(argv[base + i + 1], argv[base + i + 2])
            fromloc = True
            i += 2
        elif arg == b"byradius" and left >= 2 and search and not bybox and not bypolygon:
            conversion, radius = _radius(argv[base + i + 1], argv[base + i + 2])
            kind = gh.RADIUS
            byradius = True
            i += 2
        elif arg == b"bybox" and left >= 3 and search and not byradius and not bypolygon:
            conversion, width, height = _box(argv[base + i + 1], argv[base + i + 2],
                                             argv[base + i + 3])
            kind = gh.BOX
            bybox = True
            i += 3
        elif (arg == b"bypolygon" and left >= 2 and search and not byradius and not bybox
              and not frommember and not fromloc):
            n = int_arg(argv[base + i + 1], VERTICES_NUMBER)
            if n < INT_MIN or n > INT_MAX:
                raise ReplyError(VERTICES_NUMBER)
            possible = (left - 1) // 2
            if n < 3 or possible < n:
                raise ReplyError(VERTICES_FEW)
            first = base + i + 2
            vertices = [_lonlat(argv[first + 2 * k], argv[first + 2 * k + 1]) for k in range(n)]
            conversion = 1.0
            kind = gh.POLYGON
            bypolygon = True
            i += 1 + 2 * n
        else:
            raise ReplyError(errors.SYNTAX)
        i += 1

    if storekey is not None and (withdist or withhash or withcoord):
        what = "GEOSEARCHSTORE" if flags & SEARCHSTORE else "STORE option in GEORADIUS"
        raise ReplyError(STORE_WITH % what)
    name = argv[0].decode("latin-1")
    if search and not (frommember or fromloc) and not bypolygon:
        raise ReplyError(NEED_FROM % name)
    if search and not (byradius or bybox or bypolygon):
        raise ReplyError(NEED_BY % name)
    if anyflag and not count:
        raise ReplyError(ANY_NEEDS_COUNT)

    if z is None:
        if storekey is not None:
            return zset_store(c, storekey, (), event=_store_event(flags))
        return []

    # COUNT means "the nearest N" unless ANY: it needs an order
    if count and sort == SORT_NONE and not anyflag:
        sort = SORT_ASC

    shape = gh.Shape(kind, lon, lat, radius=radius, width=width, height=height,
                     conversion=conversion, vertices=vertices)
    found = _points_in_shape(z, shape, count if anyflag else 0)
    if not found and storekey is None:
        return []

    returned = len(found) if count == 0 or len(found) < count else count
    if sort != SORT_NONE:
        found = _sorted(found, sort == SORT_DESC, returned)

    if storekey is None:
        opts = withdist + withhash + withcoord
        out = []
        for p in found[:returned]:
            if not opts:
                out.append(p.member)
                continue
            item = [p.member]
            if withdist:
                item.append(gh.format_distance(p.dist / shape.conversion))
            if withhash:
                item.append(int(p.score))
            if withcoord:
                item.append([_coord(c, p.lon), _coord(c, p.lat)])
            out.append(item)
        return out
    pairs = [(p.member, p.dist / shape.conversion if storedist else p.score)
             for p in found[:returned]]
    return zset_store(c, storekey, pairs, event=_store_event(flags), dirty=len(pairs))


def _store_event(flags):
    return "geosearchstore" if flags & SEARCH else "georadiusstore"


def _points_in_shape(z, shape, limit):
    """The members inside the shape, in the order Valkey finds them: the
    nine cells in turn, each in score order; with a limit (ANY), stop once
    that many are found."""
    found = []
    last = 0            # index of the last cell scanned, once past the centre
    cells = gh.search_cells(shape)
    for i, cell in enumerate(cells):
        if cell is None:
            continue
        # huge areas can make neighbouring cells the same cell: scan it once
        # (as Valkey, only comparing with the last neighbour scanned)
        if last and cell == cells[last]:
            continue
        if found and limit and len(found) >= limit:
            break
        lo, hi = gh.score_range(*cell)
        for member, score in z.range_by_score(float(lo), False, float(hi), True):
            lon, lat = gh.decode_score(score)
            dist = shape.contains(lon, lat)
            if dist is not None:
                found.append(_Found(member, score, dist, lon, lat))
            if found and limit and len(found) >= limit:
                break
        last = i
    return found


def _cmp(a, b):
    """Valkey's sort_gp_asc: 1, 0 or -1 (NaN compares as smaller)."""
    if a.dist > b.dist:
        return 1
    if a.dist == b.dist:
        return 0
    return -1


def _sorted(found, desc, returned):
    """found sorted by distance as Valkey sorts it: everything with qsort
    (glibc: a stable merge sort) when all are returned, else pqsort, which
    only orders the first `returned` places."""
    if returned == len(found):
        if not any(p.dist != p.dist for p in found):
            return sorted(found, key=lambda p: p.dist, reverse=desc)
        cmp = (lambda a, b: -_cmp(a, b)) if desc else _cmp
        return _merge_sort(found, cmp)
    items = list(found)
    cmp = (lambda a, b: -_cmp(a, b)) if desc else _cmp
    _pqsort(items, 0, len(items), cmp, 0, returned - 1)
    return items


def _merge_sort(items, cmp):
    """glibc's msort: halves (the first one the smaller), merged taking from
    the left while cmp(left, right) <= 0."""
    n = len(items)
    if n <= 1:
        return list(items)
    n1 = n // 2
    left = _merge_sort(items[:n1], cmp)
    right = _merge_sort(items[n1:], cmp)
    out = []
    i = j = 0
    while i < len(left) and j < len(right):
        if cmp(left[i], right[j]) <= 0:
            out.append(left[i])
            i += 1
        else:
            out.append(right[j])
            j += 1
    out.extend(left[i:])
    out.extend(right[j:])
    return out


def _med3(a, i, j, k, cmp):
    if cmp(a[i], a[j]) < 0:
        if cmp(a[j], a[k]) < 0:
            return j
        return k if cmp(a[i], a[k]) < 0 else i
    if cmp(a[j], a[k]) > 0:
        return j
    return i if cmp(a[i], a[k]) < 0 else k


def _swap_blocks(a, i, j, n):
    for k in range(n):
        a[i + k], a[j + k] = a[j + k], a[i + k]


def _pqsort(a, lo, n, cmp, lrange, rrange):
    """Valkey's pqsort (Bentley & McIlroy's quicksort that skips the
    partitions outside places lrange..rrange) on a[lo:lo + n], in place."""
    while True:
        if n < 7:
            for m in range(lo + 1, lo + n):
                p = m
                while p > lo and cmp(a[p - 1], a[p]) > 0:
                    a[p], a[p - 1] = a[p - 1], a[p]
                    p -= 1
            return
        pm = lo + n // 2
        if n > 7:
            pl = lo
            pn = lo + n - 1
            if n > 40:
                d = n // 8
                pl = _med3(a, pl, pl + d, pl + 2 * d, cmp)
                pm = _med3(a, pm - d, pm, pm + d, cmp)
                pn = _med3(a, pn - 2 * d, pn - d, pn, cmp)
            pm = _med3(a, pl, pm, pn, cmp)
        a[lo], a[pm] = a[pm], a[lo]
        pa = pb = lo + 1
        pc = pd = lo + n - 1
        while True:
            while pb <= pc:
                r = cmp(a[pb], a[lo])
                if r > 0:
                    break
                if r == 0:
                    a[pa], a[pb] = a[pb], a[pa]
                    pa += 1
                pb += 1
            while pb <= pc:
                r = cmp(a[pc], a[lo])
                if r < 0:
                    break
                if r == 0:
                    a[pc], a[pd] = a[pd], a[pc]
                    pd -= 1
                pc -= 1
            if pb > pc:
                break
            a[pb], a[pc] = a[pc], a[pb]
            pb += 1
            pc -= 1
        pn = lo + n
        r = min(pa - lo, pb - pa)
        _swap_blocks(a, lo, pb - r, r)
        r = min(pd - pc, pn - pd - 1)
        _swap_blocks(a, pb, pn - r, r)
        r = pb - pa
        if r > 1 and not (rrange < lo or lrange >= lo + r):
            _pqsort(a, lo, r, cmp, lrange, rrange)
        r = pd - pc
        if r <= 1:
            return
        lo = pn - r
        n = r
        if rrange < lo or lrange >= lo + n:
            return


@command("geosearch", -7, flags="readonly", acl="read geo slow", keys=(1, 1, 1),
         specs=["RO access: index 1, range 0 1 0"], group=GROUP, since="6.2.0",
         complexity=SEARCH_COMPLEXITY,
         summary="Returns members of a geospatial index inside a circle, box or polygon.")
def geosearch(c, argv):
    return _search(c, argv, SEARCH)


@command("geosearchstore", -8, flags="write denyoom", acl="write geo slow", keys=(1, 2, 1),
         specs=["OW update: index 1, range 0 1 0", "RO access: index 2, range 0 1 0"],
         group=GROUP, since="6.2.0", complexity=SEARCH_COMPLEXITY,
         summary="Stores the members of a geospatial index inside a circle, box or polygon in a key.")
def geosearchstore(c, argv):
    return _search(c, argv, SEARCH | SEARCHSTORE)


def _georadius_getkeys(argv):
    """georadiusGetKeys: the index, and the key after the last STORE or
    STOREDIST (looked for from the sixth argument on)."""
    keys = [1]
    store = None
    i = 5
    argc = len(argv)
    while i < argc:
        if argv[i].lower() in (b"store", b"storedist") and i + 1 < argc:
            store = i + 1
            i += 1
        i += 1
    if store is not None:
        keys.append(store)
    return keys


def _georadius_key_flags(argv, index):
    """The flags COMMAND GETKEYSANDFLAGS gives each key of GEORADIUS*, as
    georadiusGetKeys sets them: the index is read, the STORE destination
    overwritten."""
    return ["RO", "access"] if index == 1 else ["OW", "update"]


def _radius_specs(start):
    return ["RO access: index 1, range 0 1 0",
            f"OW update variable_flags: keyword STORE {start}, range 0 1 0",
            f"OW update variable_flags: keyword STOREDIST {start}, range 0 1 0"]


@command("georadius", -6, flags="write denyoom movablekeys", acl="write geo slow", keys=(1, 1, 1),
         specs=_radius_specs(6), getkeys=_georadius_getkeys,
         key_flags=_georadius_key_flags, group=GROUP, since="3.2.0",
         complexity=RADIUS_COMPLEXITY,
         summary="Returns (or stores) members of a geospatial index within a distance of a position.")
def georadius(c, argv):
    return _search(c, argv, COORDS)


@command("georadiusbymember", -5, flags="write denyoom movablekeys", acl="write geo slow",
         keys=(1, 1, 1), specs=_radius_specs(5), getkeys=_georadius_getkeys,
         key_flags=_georadius_key_flags, group=GROUP,
         since="3.2.0", complexity=RADIUS_COMPLEXITY,
         summary="Returns (or stores) members of a geospatial index within a distance of a member.")
def georadiusbymember(c, argv):
    return _search(c, argv, MEMBER)


@command("georadius_ro", -6, flags="readonly", acl="read geo slow", keys=(1, 1, 1),
         specs=["RO access: index 1, range 0 1 0"], group=GROUP, since="3.2.10",
         complexity=RADIUS_COMPLEXITY,
         summary="Returns members of a geospatial index within a distance of a position.")
def georadius_ro(c, argv):
    return _search(c, argv, COORDS | NOSTORE)


@command("georadiusbymember_ro", -5, flags="readonly", acl="read geo slow", keys=(1, 1, 1),
         specs=["RO access: index 1, range 0 1 0"], group=GROUP, since="3.2.10",
         complexity=RADIUS_COMPLEXITY,
         summary="Returns members of a geospatial index within a distance of a member.")
def georadiusbymember_ro(c, argv):
    return _search(c, argv, MEMBER | NOSTORE)
