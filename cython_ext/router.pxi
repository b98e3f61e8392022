# The front router: clients connect to it as to a standalone Redis. Each
# command is parsed only as far as its keys, hashed to a slot, and its raw
# bytes are forwarded to the worker that owns the slot.
#
# A client starts out "shared": its commands travel on one connection per
# worker that every such client uses, so the batches of many clients reach a
# worker in one write and their replies come back in one read. The first
# command that needs a connection of its own (connection state such as SELECT,
# HELLO, AUTH, CLIENT SETNAME; MULTI/WATCH; a blocking command; CLIENT ...)
# makes the client "dedicated" for good: it gets its own connection to every
# worker, so connection state is simply sent to all of them, a MULTI lives on
# one worker, and a blocking command blocks only its own connection. The
# switch waits until the client's commands on the shared connections have
# been answered, so a worker never sees a client's commands out of order.
#
# Replies come back in command order: each command appends a Pending to the
# client's FIFO, each worker connection keeps the Pendings it owes replies
# for, and the FIFO is drained from its head as they complete. Commands over
# keys of several shards (MGET, MSET, DEL, EXISTS, ...) and server-wide ones
# (DBSIZE, KEYS, SCAN, FLUSHALL, ...) are split and their replies merged.

cimport cython
from collections import deque as _deque
import random as _random
import socket as _socket

DEF R_KEYED = 1
DEF R_ANY = 2
DEF R_STATE = 3
DEF R_ALL_OK = 4
DEF R_SUM = 5
DEF R_KEYS = 6
DEF R_SPLIT_SUM = 7
DEF R_MGET = 8
DEF R_MSET = 9
DEF R_SCAN = 10
DEF R_RANDOMKEY = 11
DEF R_MULTI = 12
DEF R_EXEC = 13
DEF R_DISCARD = 14
DEF R_WATCH = 15
DEF R_UNWATCH = 16
DEF R_QUIT = 17
DEF R_MOVABLE = 18
DEF R_REFUSED = 19
DEF R_INFO = 20
DEF R_SLOT = 21          # argument 2 is a slot number (CLUSTER COUNTKEYSINSLOT ...)
DEF R_CLIENT_REPLY = 22  # CLIENT REPLY: the router itself holds back replies
DEF R_DEBUG = 23         # DEBUG: by key, XOR of digests, or every shard
DEF R_SUBSCRIBE = 24     # (P|S)(UN)SUBSCRIBE: one reply per channel (see pubsub below)
DEF R_MIN = 25           # every shard; the smallest integer (WAIT: acknowledged by every shard)

# how a Pending turns its parts into the client's reply
DEF M_PASS = 0
DEF M_FIRST = 1
DEF M_ALL_OK = 2
DEF M_SUM = 3
DEF M_CONCAT = 4
DEF M_MGET = 5
DEF M_SCAN = 6
DEF M_RANDOM = 7
DEF M_DONE = 8
DEF M_INFO = 9
DEF M_XOR = 10
DEF M_FRAMES = 11        # several reply frames of one command, sent together
DEF M_MIN = 12

DEF NOT_IN_MULTI = -2
DEF UNBOUND = -1
DEF CROSS = -2

ROUTE_KINDS = dict(keyed=R_KEYED, any=R_ANY, state=R_STATE, all_ok=R_ALL_OK, sum=R_SUM,
                   keys=R_KEYS, split_sum=R_SPLIT_SUM, mget=R_MGET, mset=R_MSET, scan=R_SCAN,
                   randomkey=R_RANDOMKEY, multi=R_MULTI, exec=R_EXEC, discard=R_DISCARD,
                   watch=R_WATCH, unwatch=R_UNWATCH, quit=R_QUIT, movable=R_MOVABLE,
                   refused=R_REFUSED, info=R_INFO, slot=R_SLOT, client_reply=R_CLIENT_REPLY, debug=R_DEBUG,
                   subscribe=R_SUBSCRIBE, min=R_MIN)

cdef bytes CROSSSLOT = b"-CROSSSLOT Keys in request don't hash to the same slot\r\n"
cdef bytes SHARD_DOWN = b"-ERR shard unavailable, try again\r\n"


cdef class Route:
    """How the router handles one command name."""
    cdef public int kind
    cdef public int first
    cdef public int last
    cdef public int step
    cdef public object decl
    cdef public bytes refusal
    cdef public dict subroutes   # for containers: lower-case subcommand -> Route
    cdef public bint shareable   # may run on a connection shared by many clients
    cdef public bint pubsub_context   # allowed to a RESP2 client with subscriptions

    def __init__(self, int kind, int first=0, int last=0, int step=0, decl=None, refusal=None,
                 subroutes=None, bint shareable=False, bint pubsub_context=False):
        self.kind, self.first, self.last, self.step = kind, first, last, step
        self.decl = decl
        self.refusal = refusal
        self.subroutes = subroutes
        self.shareable = shareable
        self.pubsub_context = pubsub_context


@cython.no_gc
cdef class Pending:
    """One reply a client is owed, possibly assembled from several shards."""
    cdef int merge
    cdef int remaining
    cdef list parts
    cdef object extra
    cdef bytes reply
    cdef bint suppressed       # CLIENT REPLY OFF/SKIP: computed, never sent
    cdef RouterClient client   # who is owed the reply


cdef class Backend(Connection):
    """A connection to one worker: a dedicated client's own, or (client
    None) the one shared by every client still in shared mode."""
    cdef RouterClient client
    cdef int shard
    cdef object waiting        # deque of (Pending or None, part index)


cdef class RouterClient(Connection):
    cdef list backends
    cdef object fifo
    cdef dict state            # command name -> raw bytes, replayed on reconnect
    cdef public int multi_shard
    cdef public bint multi_dirty
    cdef list multi_buffer     # (raw, Pending) held until the MULTI binds to a shard
    cdef public int watch_shard
    cdef public bint reply_off
    cdef public bint skip_next
    cdef public bint dedicated       # has its own worker connections (see the top)
    cdef object subs                 # pub/sub: {kind: {name: None}}, as the workers will have it
    cdef public int sub_shard        # the worker holding its shard-channel subscriptions, -1 none
    cdef public Py_ssize_t sub_total # how many subscriptions the model holds
    cdef public int proto            # 2 or 3, as its last successful-looking HELLO said
    cdef list held_messages          # messages that wait for the replies owed before them
    cdef public bint switching       # waits for its shared replies before it becomes dedicated
    cdef Py_ssize_t shared_inflight  # its replies still owed on shared connections

    def __cinit__(self, *args, **kwargs):
        self.fifo = _deque()
        self.state = {}
        self.multi_shard = NOT_IN_MULTI
        self.watch_shard = -1
        self.backends = []
        self.subs = {b"subscribe": {}, b"psubscribe": {}, b"ssubscribe": {}}
        self.sub_shard = -1
        self.proto = 2


cdef inline object waiting_entry(Pending pend, int part):
    """What a worker connection remembers per reply it owes: the Pending
    itself for a whole reply (the common case, no allocation), a (Pending,
    part) pair for a part of a split command, None for a reply to drop."""
    if pend is None:
        return None
    if part == 0:
        return pend
    return (pend, part)


cdef class BackendSide(LoopHandler):
    """Handles the router's connections to workers: replies coming back."""
    cdef Router router

    cdef int on_data(self, Connection conn) except -1:
        self.router.backend_data(<Backend>conn)
        return 0

    cdef int on_close(self, Connection conn) except -1:
        self.router.backend_closed(<Backend>conn)
        return 0


cdef inline bint is_message_frame(const char *p, Py_ssize_t n):
    """A pub/sub message (message, pmessage, smessage), RESP2 or RESP3, or a
    client-side caching invalidation (a RESP3 push)."""
    if n < 16 or (p[0] != c'>' and p[0] != c'*') or p[2] != c'\r':
        return False
    if p[0] == c'>' and p[1] == c'2':
        return memcmp(p + 4, b"$10\r\ninvalidate\r\n", 17) == 0 or \
            memcmp(p + 4, b"$21\r\ntracking-redir-broken\r\n", 28) == 0
    if p[1] == c'3':
        return memcmp(p + 4, b"$7\r\nmessage\r\n", 13) == 0 or memcmp(p + 4, b"$8\r\nsmessage\r\n", 14) == 0
    if p[1] == c'4':
        return memcmp(p + 4, b"$8\r\npmessage\r\n", 14) == 0
    return False


cdef inline bint is_null_reply(bytes r):
    return r == b"$-1\r\n" or r == b"_\r\n" or r == b"*-1\r\n"


cdef class Router(LoopHandler):
    """The router's state: the slot map, the routes, the clients."""
    cdef public EventLoop loop
    cdef public list shard_addrs
    cdef unsigned short owner[16384]
    cdef public dict routes
    cdef public int nshards
    cdef public long long stat_commands
    cdef public long long stat_connections
    cdef BackendSide backend_side
    cdef list shared                   # per shard: the shared Backend, or None
    cdef public dict clients
    cdef public long long next_id
    cdef public object queue_check     # argv -> error reply bytes or None (the gate's checks)

    def __cinit__(self, *args, **kwargs):
        self.loop = EventLoop()
        self.routes = {}
        self.clients = {}
        self.backend_side = BackendSide()
        self.backend_side.router = self

    def set_topology(self, list shard_addrs, list slot_ranges):
        """shard_addrs[i] = (host, port) or a unix socket path; slot_ranges[i] = [(first, last), ...]."""
        cdef int i, s
        self.shard_addrs = shard_addrs
        self.nshards = len(shard_addrs)
        self.shared = [None] * self.nshards
        for i, ranges in enumerate(slot_ranges):
            for first, last in ranges:
                for s in range(first, last + 1):
                    self.owner[s] = i

    def retarget(self, int shard, addr):
        """From now on shard's commands go to the worker at addr (a failover
        promoted it). Every connection to the old worker is closed, so what
        was in flight there fails with an error reply rather than waiting on
        a worker that may never answer; a client's own connection is made
        again, with its state, by its next command. A client whose
        subscriptions lived on that worker is disconnected, as Redis Cluster
        disconnects it with its node, so that it subscribes again."""
        cdef RouterClient c
        cdef object b
        if self.shard_addrs[shard] == addr:
            return False
        self.shard_addrs[shard] = addr
        b = self.shared[shard]
        if b is not None and not (<Backend>b).closed:
            self.loop.close_connection(<Backend>b)
        self.shared[shard] = None
        for c in list(self.clients.values()):
            if c.closed or not c.backends:
                continue
            b = c.backends[shard]
            if b is not None and not (<Backend>b).closed:
                self.loop.close_connection(<Backend>b)
            if (c.sub_shard == shard or (shard == 0 and (c.subs[b"subscribe"] or c.subs[b"psubscribe"]))) \
                    and not c.close_after_reply:
                c.close_after_reply = True
                self.drain(c)
        return True

    def shard_of_slot(self, int slot):
        return self.owner[slot & 16383]

    def listen_fd(self, int fd):
        self.loop.add_listener(fd, self)

    def run(self):
        self.loop.run(self)

    def stop(self):
        self.loop.stop()

    # ------------------------------------------------------------ clients
    cdef Connection make_connection(self, int fd):
        cdef RouterClient c = RouterClient()
        return c

    cdef int after_accept(self, Connection conn) except -1:
        cdef RouterClient c = <RouterClient>conn
        cdef int i
        self.stat_connections += 1
        self.next_id += 1
        self.clients[self.next_id] = c
        c.backends = [None] * self.nshards    # connected when the client becomes dedicated
        return 0

    cdef Backend connect_backend(self, RouterClient c, int shard):
        """A new connection to worker `shard`: the client's own, or with c
        None the shared one."""
        cdef Backend b = Backend()
        addr = self.shard_addrs[shard]
        if isinstance(addr, str):
            # a unix socket path: cheaper per batch than loopback TCP
            s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        else:
            s = _socket.socket(_socket.AF_INET6 if ":" in addr[0] else _socket.AF_INET, _socket.SOCK_STREAM)
        s.setblocking(False)
        err = s.connect_ex(addr)
        if err not in (0, 115):   # 115: EINPROGRESS
            s.close()
            return None
        b.client = c
        b.shard = shard
        b.waiting = _deque()
        self.loop.add_connection(b, s.detach(), self.backend_side)
        if c is None:
            self.shared[shard] = b
            return b
        c.backends[shard] = b
        # a reconnected worker connection gets the client's state again
        for raw in c.state.values():
            b.out.raw(raw, len(raw))
            b.waiting.append(None)
        return b

    cdef Backend backend(self, RouterClient c, int shard):
        cdef object b
        if not c.dedicated:
            b = self.shared[shard]
            if b is None or (<Backend>b).closed:
                b = self.connect_backend(None, shard)
            return <Backend>b if b is not None else None
        b = c.backends[shard]
        if b is None or (<Backend>b).closed:
            b = self.connect_backend(c, shard)
        return <Backend>b if b is not None else None

    cdef int on_close(self, Connection conn) except -1:
        cdef RouterClient c = <RouterClient>conn
        for b in c.backends:
            if b is not None and not (<Backend>b).closed:
                (<Backend>b).client = None
                self.loop.close_connection(<Backend>b)
        for k, v in list(self.clients.items()):
            if v is c:
                del self.clients[k]
                break
        return 0

    cdef int on_data(self, Connection conn) except -1:
        cdef RouterClient c = <RouterClient>conn
        cdef RequestParser p = c.parser
        cdef object argv
        while not c.close_after_reply and c.fd >= 0 and not c.switching:
            argv = p.parse_next()
            if argv is None:
                break
            self.stat_commands += 1
            self.route(c, <list>argv, p)
        if p.error is not None and not c.close_after_reply:
            self.local_reply(c, ("-ERR " + p.error + "\r\n").encode("latin-1"))
            c.close_after_reply = True
        self.drain(c)
        return 0

    # ------------------------------------------------------------ routing
    cdef int shard_for_keys(self, list argv, Route r):
        """The one shard all keys of argv live on; -1 if none; CROSS if several."""
        cdef Py_ssize_t argc = len(argv), i, last, step
        cdef int shard = -1, s
        if r.kind == R_MOVABLE:
            try:
                idx = r.decl.key_indexes(argv)
            except Exception:
                return -1
            for i in idx:
                s = self.key_shard(<bytes>argv[i])
                if shard == -1:
                    shard = s
                elif s != shard:
                    return CROSS
            return shard
        # the common case, in C: first/last/step key positions
        if r.first <= 0 or argc <= r.first:
            return -1
        last = r.last if r.last >= 0 else argc + r.last
        if last >= argc:
            last = argc - 1
        step = r.step if r.step > 0 else 1
        i = r.first
        while i <= last:
            s = self.key_shard(<bytes>PyList_GET_ITEM(argv, i))
            if shard == -1:
                shard = s
            elif s != shard:
                return CROSS
            i += step
        return shard

    cdef inline int key_shard(self, bytes key):
        cdef Py_ssize_t n = PyBytes_GET_SIZE(key)
        if n == 0:
            return self.owner[0]
        return self.owner[key_slot_c(<const unsigned char *>PyBytes_AS_STRING(key), n)]

    cdef int send(self, RouterClient c, int shard, bytes raw, Pending pend, int part) except -1:
        cdef Backend b = self.backend(c, shard)
        if b is None:
            if pend is not None:
                self.complete_part(c, pend, part, SHARD_DOWN)
            return 0
        b.out.raw(PyBytes_AS_STRING(raw), len(raw))
        b.waiting.append(waiting_entry(pend, part))
        if b.client is None:
            c.shared_inflight += 1
        self.loop.want_write(b)
        return 0

    cdef int forward_raw(self, RouterClient c, int shard, const char *raw, Py_ssize_t n) except -1:
        """forward() straight from the client's input buffer, no copy object."""
        cdef Pending pend = self.expect(c, M_PASS, 1)
        cdef Backend b = self.backend(c, shard)
        if b is None:
            return self.complete_part(c, pend, 0, SHARD_DOWN)
        b.out.raw(raw, n)
        b.waiting.append(pend)
        if b.client is None:
            c.shared_inflight += 1
        self.loop.want_write(b)
        return 0

    cdef Pending expect(self, RouterClient c, int merge, int parts):
        cdef Pending pend = Pending()
        pend.client = c
        pend.merge = merge
        if c.reply_off or c.skip_next:
            pend.suppressed = True
            c.skip_next = False
        pend.remaining = parts
        if merge != M_PASS:
            pend.parts = [None] * parts
        c.fifo.append(pend)
        return pend

    cdef int local_reply(self, RouterClient c, bytes reply) except -1:
        cdef Pending pend = self.expect(c, M_DONE, 0)
        pend.reply = reply
        return 0

    cdef int forward(self, RouterClient c, int shard, bytes raw) except -1:
        return self.send(c, shard, raw, self.expect(c, M_PASS, 1), 0)

    cdef int broadcast(self, RouterClient c, bytes raw, int merge) except -1:
        cdef Pending pend = self.expect(c, merge, self.nshards)
        cdef int i
        for i in range(self.nshards):
            self.send(c, i, raw, pend, i)
        return 0

    cdef int route(self, RouterClient c, list argv, RequestParser p) except -1:
        cdef object ro = self.routes.get(argv[0])
        cdef Route r
        cdef int shard
        cdef bytes raw
        if ro is None:
            ro = self.routes.get((<bytes>argv[0]).lower())
        r = <Route>ro if ro is not None else None
        if r is not None and r.kind == R_KEYED and c.multi_shard == NOT_IN_MULTI \
                and (r.shareable or c.dedicated) and not (c.sub_total and c.proto == 2):
            # the hot path: one shard, the command's bytes copied as they came
            shard = self.shard_for_keys(argv, r)
            if shard != CROSS:
                return self.forward_raw(c, shard if shard >= 0 else 0, p.buf + p.cmd_start,
                                        p.start - p.cmd_start)
        if r is not None and r.subroutes is not None and len(argv) > 1:
            ro = r.subroutes.get((<bytes>argv[1]).lower())
            if ro is not None:
                r = <Route>ro
        if c.sub_total and c.proto == 2 and r is not None and not r.pubsub_context:
            # a RESP2 client with subscriptions: the rule of its worker, here
            # (its other commands go to other workers)
            return self.local_reply(c, b"-ERR Can't execute '%s': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / "
                                       b"PING / QUIT / RESET are allowed in this context\r\n"
                                    % (<str>r.decl.name).encode())
        if not c.dedicated and r is not None and not r.shareable:
            if c.shared_inflight:
                # its earlier commands are still on the shared connections:
                # leave this one in the buffer and stop reading until they
                # are answered (backend_data resumes)
                p.start = p.cmd_start
                self.stat_commands -= 1
                c.switching = True
                self.loop.pause_reading(c, True)
                return 0
            c.dedicated = True
        raw = PyBytes_FromStringAndSize(p.buf + p.cmd_start, p.start - p.cmd_start)
        if r is not None and ((r.kind >= R_MULTI and r.kind <= R_REFUSED and r.kind != R_MOVABLE)
                              or r.kind == R_CLIENT_REPLY):
            # commands the router answers itself: check them as the gate would
            err = self.queue_check(argv)
            if err is not None:
                if r.kind == R_EXEC:
                    # Valkey: a rejected EXEC ends the transaction (if any)
                    # and says why, as an EXECABORT even outside MULTI
                    if c.multi_shard != NOT_IN_MULTI:
                        self.end_multi(c, b"", False, True)
                    return self.local_reply(c, b"-EXECABORT Transaction discarded because of: " + err[5:])
                if c.multi_shard != NOT_IN_MULTI:
                    c.multi_dirty = True
                return self.local_reply(c, err)
        if c.multi_shard != NOT_IN_MULTI:
            return self.route_in_multi(c, argv, raw, r)
        if r is None or r.kind == R_ANY:
            return self.forward(c, 0, raw)
        if r.kind == R_KEYED or r.kind == R_MOVABLE:
            shard = self.shard_for_keys(argv, r)
            if shard == CROSS:
                # a malformed command gets the worker's error, not CROSSSLOT
                err = self.queue_check(argv)
                return self.local_reply(c, err if err is not None else CROSSSLOT)
            return self.forward(c, shard if shard >= 0 else 0, raw)
        if r.kind == R_STATE:
            name = (<bytes>argv[0]).lower()
            if name == b"hello" and len(argv) > 1 and argv[1] in (b"2", b"3"):
                c.proto = 2 if argv[1] == b"2" else 3
            elif name == b"reset":
                c.proto = 2
                for table in (<dict>c.subs).values():
                    (<dict>table).clear()
                c.sub_total = 0
                c.sub_shard = -1
            c.state[(<bytes>argv[0]).lower() + b" " + (argv[1].lower() if len(argv) > 1 else b"")] = raw
            return self.broadcast(c, raw, M_FIRST)
        if r.kind == R_ALL_OK:
            return self.broadcast(c, raw, M_ALL_OK)
        if r.kind == R_SUM:
            return self.broadcast(c, raw, M_SUM)
        if r.kind == R_MIN:
            return self.broadcast(c, raw, M_MIN)
        if r.kind == R_KEYS:
            return self.broadcast(c, raw, M_CONCAT)
        if r.kind == R_RANDOMKEY:
            return self.broadcast(c, raw, M_RANDOM)
        if r.kind == R_INFO:
            return self.broadcast(c, raw, M_INFO)
        if r.kind == R_SPLIT_SUM:
            return self.split(c, argv, raw, 1, M_SUM)
        if r.kind == R_MGET:
            return self.split(c, argv, raw, 1, M_MGET)
        if r.kind == R_MSET:
            if len(argv) % 2 == 0:
                return self.forward(c, 0, raw)   # the worker answers the arity error
            return self.split(c, argv, raw, 2, M_ALL_OK)
        if r.kind == R_SCAN:
            return self.route_scan(c, argv, raw)
        if r.kind == R_SUBSCRIBE:
            return self.route_subscribe(c, argv, raw)
        if r.kind == R_CLIENT_REPLY:
            mode = (<bytes>argv[2]).lower() if len(argv) > 2 else b""
            if mode == b"on":
                c.reply_off = c.skip_next = False
                return self.local_reply(c, b"+OK\r\n")
            if mode == b"off":
                c.reply_off = True
                return 0
            if mode == b"skip":
                c.skip_next = not c.reply_off
                return 0
            return self.local_reply(c, b"-ERR syntax error\r\n")
        if r.kind == R_DEBUG:
            sub = (<bytes>argv[1]).lower() if len(argv) > 1 else b""
            if sub in (b"object", b"digest-value") and len(argv) > 2:
                shard = self.shard_for_keys(argv, Route(R_KEYED, 2, -1, 1))
                if shard == CROSS:
                    return self.local_reply(c, CROSSSLOT)
                return self.forward(c, shard if shard >= 0 else 0, raw)
            if sub == b"digest":
                return self.broadcast(c, raw, M_XOR)
            return self.broadcast(c, raw, M_FIRST)
        if r.kind == R_SLOT:
            slot = _native_parse_slot(argv[2] if len(argv) > 2 else b"")
            return self.forward(c, self.owner[slot] if slot >= 0 else 0, raw)
        if r.kind == R_MULTI:
            c.multi_shard = UNBOUND
            c.multi_dirty = False
            c.multi_buffer = []
            return self.local_reply(c, b"+OK\r\n")
        if r.kind == R_EXEC:
            return self.local_reply(c, b"-ERR EXEC without MULTI\r\n")
        if r.kind == R_DISCARD:
            return self.local_reply(c, b"-ERR DISCARD without MULTI\r\n")
        if r.kind == R_WATCH:
            shard = self.shard_for_keys(argv, r)
            if shard == CROSS or (c.watch_shard >= 0 and shard >= 0 and shard != c.watch_shard):
                return self.local_reply(c, CROSSSLOT)
            if shard >= 0:
                c.watch_shard = shard
            return self.forward(c, shard if shard >= 0 else 0, raw)
        if r.kind == R_UNWATCH:
            c.watch_shard = -1
            return self.broadcast(c, raw, M_FIRST)
        if r.kind == R_QUIT:
            self.local_reply(c, b"+OK\r\n")
            c.close_after_reply = True
            return 0
        if r.kind == R_REFUSED:
            return self.local_reply(c, r.refusal)
        return self.forward(c, 0, raw)

    cdef int route_in_multi(self, RouterClient c, list argv, bytes raw, Route r) except -1:
        cdef int kind = r.kind if r is not None else R_ANY
        cdef int shard = -1
        if kind == R_EXEC or kind == R_DISCARD:
            return self.end_multi(c, raw, kind == R_EXEC)
        if kind == R_MULTI or kind == R_WATCH:
            c.multi_dirty = True
            return self.local_reply(c, b"-ERR Command '%s' not allowed inside a transaction\r\n" % (
                b"multi" if kind == R_MULTI else b"watch"))
        if kind == R_QUIT:
            return self._quit(c)
        if kind == R_CLIENT_REPLY:
            c.multi_dirty = True
            return self.local_reply(c, b"-ERR Command 'client|reply' not allowed inside a transaction\r\n")
        if kind == R_KEYED or kind == R_MOVABLE or kind == R_MGET or kind == R_MSET or kind == R_SPLIT_SUM:
            if r.first > 0 or kind == R_MOVABLE:
                shard = self.shard_for_keys(argv, r)
            elif kind in (R_MGET, R_SPLIT_SUM):
                shard = self.shard_for_keys(argv, Route(R_KEYED, 1, -1, 1))
            else:
                shard = self.shard_for_keys(argv, Route(R_KEYED, 1, -1, 2))
        elif kind != R_ANY and kind != R_STATE and kind != R_UNWATCH:
            # server-wide commands cannot join a transaction that lives on one shard
            c.multi_dirty = True
            return self.local_reply(c, CROSSSLOT)
        if shard == CROSS or (shard >= 0 and c.multi_shard >= 0 and shard != c.multi_shard) \
                or (shard >= 0 and c.watch_shard >= 0 and shard != c.watch_shard):
            c.multi_dirty = True
            return self.local_reply(c, CROSSSLOT)
        if c.multi_shard == UNBOUND:
            if shard < 0:
                # no key yet says which worker the transaction lives on: the
                # router checks and queues the command itself, and replays it
                # there once a key (or EXEC) decides
                err = self.queue_check(argv)
                if err is not None:
                    c.multi_dirty = True
                    return self.local_reply(c, err)
                c.multi_buffer.append(raw)
                return self.local_reply(c, b"+QUEUED\r\n")
            self.bind_multi(c, shard)
        return self.forward(c, c.multi_shard, raw)

    cdef int _quit(self, RouterClient c) except -1:
        self.local_reply(c, b"+OK\r\n")
        c.close_after_reply = True
        return 0

    cdef int bind_multi(self, RouterClient c, int shard) except -1:
        c.multi_shard = shard
        self.send(c, shard, b"*1\r\n$5\r\nMULTI\r\n", None, -1)
        for raw in c.multi_buffer:
            self.send(c, shard, raw, None, -1)
        c.multi_buffer = []
        return 0

    cdef int end_multi(self, RouterClient c, bytes raw, bint is_exec, bint silent=False) except -1:
        if c.multi_shard == UNBOUND and (c.multi_buffer or (is_exec and c.watch_shard >= 0)):
            # the worker holding the WATCHed keys decides whether EXEC runs
            self.bind_multi(c, c.watch_shard if c.watch_shard >= 0 else 0)
        if silent:
            if c.multi_shard >= 0:
                self.send(c, c.multi_shard, b"*1\r\n$7\r\nDISCARD\r\n", None, -1)
        elif c.multi_dirty and is_exec:
            if c.multi_shard >= 0:
                self.send(c, c.multi_shard, b"*1\r\n$7\r\nDISCARD\r\n", None, -1)
            self.local_reply(c, b"-EXECABORT Transaction discarded because of previous errors.\r\n")
        elif c.multi_shard >= 0:
            self.forward(c, c.multi_shard, raw)
        else:
            if c.watch_shard >= 0:
                # DISCARD forgets the WATCHed keys on their worker too
                self.send(c, c.watch_shard, b"*1\r\n$7\r\nUNWATCH\r\n", None, -1)
            self.local_reply(c, b"*0\r\n" if is_exec else b"+OK\r\n")
        c.multi_shard = NOT_IN_MULTI
        c.multi_dirty = False
        c.multi_buffer = None
        c.watch_shard = -1
        return 0

    cdef int split(self, RouterClient c, list argv, bytes raw, int group, int merge) except -1:
        """Sends each shard the part of a multi-key command that concerns it."""
        cdef dict by_shard = {}
        cdef Py_ssize_t i
        cdef int s
        cdef Pending pend
        for i in range(1, len(argv), group):
            key = <bytes>argv[i]
            s = self.owner[key_slot_c(<const unsigned char *>PyBytes_AS_STRING(key), len(key))] if len(key) else self.owner[0]
            by_shard.setdefault(s, []).append(i)
        if len(by_shard) <= 1:
            return self.forward(c, next(iter(by_shard)) if by_shard else 0, raw)
        pend = self.expect(c, merge, len(by_shard))
        if merge == M_MGET:
            pend.extra = (len(argv) - 1, [positions for positions in by_shard.values()])
        part = 0
        for s, positions in by_shard.items():
            sub = [argv[0]]
            for i in positions:
                sub.extend(argv[i:i + group])
            self.send(c, s, encode_command(sub), pend, part)
            part += 1
        return 0

    # ------------------------------------------------------------ pub/sub
    # Channel and pattern subscriptions live on worker 0, shard channels on
    # the worker of their slot; PUBLISH goes to every worker (each delivers
    # to its own subscribers), so a router client hears every message once.
    # The router keeps a model of each client's subscriptions, so that it
    # knows how many confirmations a command brings (one per channel) and
    # when a RESP2 client is in the subscribed context. Messages are
    # recognised in the worker's stream and passed on at once.

    cdef int route_subscribe(self, RouterClient c, list argv, bytes raw) except -1:
        cdef bytes name = (<bytes>argv[0]).lower()
        cdef bint adding = not name.startswith(b"un") and not name.startswith(b"pun") \
            and not name.startswith(b"sun")
        cdef bytes kind = name if adding else (b"subscribe" if name == b"unsubscribe" else
                                               b"psubscribe" if name == b"punsubscribe" else b"ssubscribe")
        cdef dict mine = <dict>(<dict>c.subs)[kind]
        cdef int shard = 0
        cdef Py_ssize_t n
        cdef Pending pend
        err = self.queue_check(argv)
        if err is not None:
            return self.local_reply(c, err)
        if kind == b"ssubscribe":
            if len(argv) > 1:
                shard = self.shard_for_keys(argv, Route(R_KEYED, 1, -1, 1))
                if shard == CROSS or (adding and c.sub_shard >= 0 and shard != c.sub_shard):
                    return self.local_reply(c, CROSSSLOT)
            if c.sub_shard >= 0:
                shard = c.sub_shard
        names = argv[1:]
        n = len(names) if names else max(1, len(mine))
        if adding:
            for ch in names:
                mine[ch] = None
            if kind == b"ssubscribe":
                c.sub_shard = shard
        elif names:
            for ch in names:
                mine.pop(ch, None)
        else:
            mine.clear()
        c.sub_total = sum(len(<dict>t) for t in (<dict>c.subs).values())
        if not (<dict>c.subs)[b"ssubscribe"]:
            c.sub_shard = -1
        pend = self.expect(c, M_FRAMES, n)
        b = self.backend(c, shard)
        if b is None:
            for i in range(n):
                self.complete_part(c, pend, i, SHARD_DOWN)
            return 0
        (<Backend>b).out.raw(PyBytes_AS_STRING(raw), len(raw))
        for i in range(n):
            (<Backend>b).waiting.append(waiting_entry(pend, i))
        self.loop.want_write(<Backend>b)
        return 0

    cdef int route_scan(self, RouterClient c, list argv, bytes raw) except -1:
        """SCAN over every shard in turn: the cursor's low bits name the shard."""
        cdef int bits = 0, shard
        cdef Pending pend
        while (1 << bits) < self.nshards:
            bits += 1
        cur = argv[1] if len(argv) > 1 else b""
        # the worker's cursor syntax: leading spaces, an optional '+', digits
        stripped = cur.lstrip(b" \t\n\r\v\f")
        digits = stripped[1:] if stripped[:1] == b"+" else stripped
        value = int(digits) if digits and digits.isdigit() else -1
        if value < 0 or value >= 2**64:
            return self.forward(c, 0, raw)   # the worker answers "invalid cursor"
        shard = value & ((1 << bits) - 1)
        if shard >= self.nshards:
            return self.local_reply(c, b"*2\r\n$1\r\n0\r\n*0\r\n")   # past the last shard: done
        count = 10
        for i in range(2, len(argv) - 1):
            if (<bytes>argv[i]).lower() == b"count":
                try:
                    count = int(argv[i + 1])
                except ValueError:
                    pass
        sub = list(argv)
        sub[1] = str(value >> bits).encode()
        pend = self.expect(c, M_SCAN, 1)
        pend.parts = [None]
        pend.extra = [shard, bits, list(argv), [], count]
        return self.send(c, shard, encode_command(sub), pend, 0)

    # ------------------------------------------------------------ replies
    cdef int backend_data(self, Backend b) except -1:
        cdef RequestParser p = b.parser
        cdef Py_ssize_t end
        cdef RouterClient c, last = None
        cdef Pending pend
        cdef int part
        cdef list touched = []
        cdef bint shared = b.client is None
        while p.start < p.end:
            try:
                end = scan_reply(<const unsigned char *>p.buf, p.start, p.end)
            except ValueError:
                self.loop.close_connection(b)
                return 0
            if end == -1:
                break
            if not shared and is_message_frame(p.buf + p.start, end - p.start) \
                    and (p.buf[p.start] == c'>' or b.client.sub_total):
                # a published message: to its subscriber, after the replies
                # it is still owed (its own PUBLISH's, as Valkey orders them)
                c = b.client
                if not c.closed:
                    if c.fifo:
                        if c.held_messages is None:
                            c.held_messages = []
                        c.held_messages.append(PyBytes_FromStringAndSize(p.buf + p.start, end - p.start))
                    else:
                        c.out.raw(p.buf + p.start, end - p.start)
                    if c is not last:
                        touched.append(c)
                        last = c
                p.start = end
                continue
            if not b.waiting:
                p.start = end
                continue
            item = b.waiting.popleft()
            if type(item) is tuple:
                po = (<tuple>item)[0]
                part = (<tuple>item)[1]
            else:
                po = item
                part = 0
            if po is None:
                p.start = end
                continue
            pend = <Pending>po
            c = pend.client
            if shared:
                c.shared_inflight -= 1
            if c.closed:
                p.start = end
                continue
            if c is not last:
                touched.append(c)
                last = c
            if pend.merge == M_PASS and c.fifo and c.fifo[0] is pend and not pend.suppressed:
                c.out.raw(p.buf + p.start, end - p.start)
                c.fifo.popleft()
            else:
                self.complete_part(c, pend, part, PyBytes_FromStringAndSize(p.buf + p.start, end - p.start))
            p.start = end
        for c in touched:
            self.drain(c)
            if c.switching and not c.shared_inflight:
                self.finish_switch(c)
        return 0

    cdef int finish_switch(self, RouterClient c) except -1:
        """Its shared replies are all in: the client goes on, dedicated,
        with the command that waited."""
        c.switching = False
        c.dedicated = True
        if c.closed:
            return 0
        self.loop.pause_reading(c, False)
        return self.on_data(c)

    cdef int complete_part(self, RouterClient c, Pending pend, int part, bytes reply) except -1:
        if pend.merge == M_PASS:
            pend.reply = reply
            pend.remaining = 0
            return 0
        pend.parts[part] = reply
        pend.remaining -= 1
        if pend.remaining == 0:
            if pend.merge == M_SCAN and self.scan_continues(c, pend):
                return 0
            pend.reply = self.merge_parts(c, pend)
        return 0

    cdef bint scan_continues(self, RouterClient c, Pending pend) except -1:
        """A shard's SCAN finished with room left in COUNT: go on with the next
        shard in the same call, as one server would have gone on."""
        cdef list st = pend.extra
        reply = <bytes>pend.parts[0]
        if reply[:1] == b"-":
            return False
        elements = array_elements(reply)
        cursor = int(elements[0].split(b"\r\n")[1])
        keys = array_elements(elements[1])
        (<list>st[3]).extend(keys)
        if cursor != 0 or st[0] + 1 >= self.nshards or len(<list>st[3]) >= st[4]:
            st.append(cursor)
            return False
        st[0] += 1
        sub = list(st[2])
        sub[1] = b"0"
        pend.remaining = 1
        self.send(c, st[0], encode_command(sub), pend, 0)
        return True

    cdef int drain(self, RouterClient c) except -1:
        cdef Pending pend
        while c.fifo:
            pend = <Pending>c.fifo[0]
            if pend.reply is None:
                break
            c.fifo.popleft()
            if not pend.suppressed:
                c.out.raw(PyBytes_AS_STRING(pend.reply), len(pend.reply))
        if not c.fifo and c.held_messages:
            for m in c.held_messages:
                c.out.raw(PyBytes_AS_STRING(<bytes>m), len(<bytes>m))
            c.held_messages = None
        if c.out.length > c.out.sent:
            self.loop.want_write(c)
        elif c.close_after_reply and not c.fifo:
            self.loop.want_write(c)
        return 0

    cdef int backend_closed(self, Backend b) except -1:
        """A worker went away: what clients still wait for from it fails."""
        cdef RouterClient c = b.client
        cdef Pending pend
        cdef list touched = []
        if c is None and self.shared[b.shard] is b:
            self.shared[b.shard] = None
        while b.waiting:
            item = b.waiting.popleft()
            if item is None:
                continue
            pend = <Pending>((<tuple>item)[0] if type(item) is tuple else item)
            if c is None:
                pend.client.shared_inflight -= 1
            if pend.client.closed:
                continue
            self.complete_part(pend.client, pend, (<tuple>item)[1] if type(item) is tuple else 0, SHARD_DOWN)
            if pend.client not in touched:
                touched.append(pend.client)
        if c is not None and c.multi_shard == b.shard:
            c.multi_dirty = True
        for other in touched:
            self.drain(<RouterClient>other)
            if (<RouterClient>other).switching and not (<RouterClient>other).shared_inflight:
                self.finish_switch(<RouterClient>other)
        return 0

    cdef bytes merge_parts(self, RouterClient c, Pending pend):
        cdef list parts = pend.parts
        if pend.merge == M_FRAMES:
            return b"".join(parts)
        if pend.merge == M_FIRST:
            return parts[0]
        for r in parts:
            if (<bytes>r)[:1] == b"-":
                return r
        if pend.merge == M_ALL_OK:
            return parts[0]
        if pend.merge == M_SUM:
            return b":%d\r\n" % sum(int((<bytes>r)[1:-2]) for r in parts)
        if pend.merge == M_MIN:
            return b":%d\r\n" % min(int((<bytes>r)[1:-2]) for r in parts)
        if pend.merge == M_RANDOM:
            alive = [r for r in parts if not is_null_reply(r)]
            return _random.choice(alive) if alive else parts[0]
        if pend.merge == M_CONCAT:
            return merge_arrays(parts)
        if pend.merge == M_MGET:
            return merge_mget(parts, pend.extra)
        if pend.merge == M_SCAN:
            return merge_scan(pend.extra, self.nshards)
        if pend.merge == M_INFO:
            return merge_info(parts)
        if pend.merge == M_XOR:
            acc = 0
            for r in parts:
                acc ^= int((<bytes>r)[1:-2], 16)
            return b"+%040x\r\n" % acc
        return parts[0]


cdef int _native_parse_slot(bytes b):
    cdef long long v
    if parse_ll(PyBytes_AS_STRING(b), len(b), &v) and 0 <= v <= 16383:
        return <int>v
    return -1


cdef list array_elements(bytes reply):
    """The raw bytes of each element of an array (or set) reply."""
    cdef const unsigned char *p = reply
    cdef Py_ssize_t n = len(reply)
    cdef Py_ssize_t hdr = reply.index(b"\r\n") + 2
    cdef long long count = int(reply[1:hdr - 2])
    cdef Py_ssize_t i = hdr, end
    cdef list out = []
    for _ in range(count):
        end = scan_reply(p, i, n)
        out.append(reply[i:end])
        i = end
    return out


cdef bytes merge_arrays(list parts):
    cdef list items = []
    for r in parts:
        items.extend(array_elements(r))
    return (b"%c%d\r\n" % ((<bytes>parts[0])[0], len(items))) + b"".join(items)


cdef bytes merge_mget(list parts, tuple extra):
    cdef Py_ssize_t total = extra[0]
    cdef list slots = [None] * total
    for part, positions in zip(parts, extra[1]):
        for pos, item in zip(positions, array_elements(part)):
            slots[pos - 1] = item
    return b"*%d\r\n" % total + b"".join(slots)


cdef bytes merge_scan(list st, int nshards):
    """The router's SCAN reply: keys gathered from one or more shards, and a
    cursor whose low bits name the shard to go on with."""
    shard, bits, argv, keys, count, cursor = st
    if cursor == 0:
        shard += 1
        cursor = 0 if shard >= nshards else shard
    else:
        cursor = (cursor << bits) | shard
    text = str(cursor).encode()
    return b"*2\r\n$%d\r\n%s\r\n*%d\r\n" % (len(text), text, len(keys)) + b"".join(keys)


cdef bytes merge_info(list parts):
    """INFO through the router: the first shard's text with a Keyspace
    section summed over every shard."""
    dbs = {}
    texts = []
    for r in parts:
        header_end = r.index(b"\r\n") + 2
        body = r[header_end:-2]
        if r[:1] == b"=":
            body = body[4:]
        texts.append((r[:1], body))
        for line in body.split(b"\r\n"):
            if line.startswith(b"db") and b":keys=" in line:
                name, _, fields = line.partition(b":")
                kv = dict(f.split(b"=") for f in fields.split(b","))
                acc = dbs.setdefault(name, [0, 0, 0, 0])
                acc[0] += int(kv[b"keys"])
                acc[1] += int(kv[b"expires"])
                acc[2] += int(kv.get(b"avg_ttl", b"0")) * int(kv[b"expires"])
    kind, body = texts[0]
    lines = body.split(b"\r\n")
    out = []
    for line in lines:
        if line.startswith(b"db") and b":keys=" in line:
            continue
        out.append(line)
        if line == b"# Keyspace":
            for name in sorted(dbs, key=lambda n: int(n[2:])):
                k, e, ttl_sum, _ = dbs[name]
                out.append(b"%s:keys=%d,expires=%d,avg_ttl=%d" % (name, k, e, ttl_sum // e if e else 0))
    text = b"\r\n".join(out)
    if kind == b"=":
        return b"=%d\r\ntxt:%s\r\n" % (len(text) + 4, text)
    return b"$%d\r\n%s\r\n" % (len(text), text)
