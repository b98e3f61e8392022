# The shard server core: clients, the command gate and call(), the keyspace
# primitives every command uses (lookups with lazy expiry, stores, deletes),
# WATCH bookkeeping, MULTI/EXEC, and the propagation point.
#
# One gate before every command, as in Redis's processCommand: look up the
# command (and subcommand), check arity, authentication and the transaction
# state, then call(). call() runs the handler, times it, counts it, and if the
# keyspace moved (`dirty`) hands the command, or the deterministic rewrite its
# handler asked for, to the command feed that the append-only file and the
# replicas consume. Handlers never check arity and never propagate.
#
# With maxmemory set, the gate first frees memory as Redis's performEvictions
# does (the sampled eviction pool, LRU/LFU/TTL/random policies, a time limit
# from maxmemory-eviction-tenacity) and refuses commands flagged denyoom with
# -OOM when nothing is left to evict. used_memory is a sum of counters: the
# process's memory before the dataset, the data tables' size estimates (kept
# by the table on every change, see keyspace.pxi), the hash tables' overhead
# and the client buffers.

from cpython.list cimport PyList_GET_SIZE, PyList_GET_ITEM
from libc.stdlib cimport strtold

# Client flags
DEF CF_MULTI = 1
DEF CF_DIRTY_CAS = 2
DEF CF_DIRTY_EXEC = 4
DEF CF_REPLY_OFF = 8
DEF CF_REPLY_SKIP_NEXT = 16
DEF CF_REPLY_SKIP = 32
DEF CF_NO_EVICT = 64
DEF CF_NO_TOUCH = 128
DEF CF_READONLY = 256
DEF CF_BLOCKED = 512
DEF CF_PUBSUB = 1024
DEF CF_MASTER = 2048
DEF CF_REPLICA = 4096
DEF CF_EXECUTING = 8192
DEF CF_PROTECTED = 16384
DEF CF_ROUTED = 32768      # connected through the router port: standalone semantics
DEF CF_ASKING = 65536

# Command flags, in the order COMMAND INFO lists them (see commands/table.py)
DEF CMD_WRITE = 1 << 0
DEF CMD_READONLY = 1 << 1
DEF CMD_DENYOOM = 1 << 2
DEF CMD_MODULE = 1 << 3
DEF CMD_ADMIN = 1 << 4
DEF CMD_PUBSUB = 1 << 5
DEF CMD_NOSCRIPT = 1 << 6
DEF CMD_BLOCKING = 1 << 7
DEF CMD_LOADING = 1 << 8
DEF CMD_STALE = 1 << 9
DEF CMD_SKIP_MONITOR = 1 << 10
DEF CMD_SKIP_COMMANDLOG = 1 << 11
DEF CMD_ASKING = 1 << 12
DEF CMD_FAST = 1 << 13
DEF CMD_NO_AUTH = 1 << 14
DEF CMD_MAY_REPLICATE = 1 << 15
DEF CMD_NO_MANDATORY_KEYS = 1 << 16
DEF CMD_NO_ASYNC_LOADING = 1 << 17
DEF CMD_NO_MULTI = 1 << 18
DEF CMD_MOVABLE_KEYS = 1 << 19
DEF CMD_ALLOW_BUSY = 1 << 20
DEF CMD_TX_CONTROL = 1 << 40     # runs even inside MULTI (EXEC, DISCARD, MULTI, WATCH, QUIT, RESET)
DEF CMD_PUBSUB_CONTEXT = 1 << 41 # allowed in a RESP2 subscribed context

# Ids of the commands that run as cdef code (see hot.pxi)
DEF FAST_GET = 1
DEF FAST_SET = 2
DEF FAST_INCR = 3
DEF FAST_DECR = 4
DEF FAST_INCRBY = 5
DEF FAST_DECRBY = 6
DEF FAST_MGET = 7
DEF FAST_MSET = 8
DEF FAST_LPUSH = 9
DEF FAST_RPUSH = 10
DEF FAST_LPUSHX = 11
DEF FAST_RPUSHX = 12
DEF FAST_LPOP = 13
DEF FAST_RPOP = 14

# maxmemory-policy values
DEF EVICT_NOEVICTION = 0
DEF EVICT_ALLKEYS_LRU = 1
DEF EVICT_ALLKEYS_LFU = 2
DEF EVICT_ALLKEYS_RANDOM = 3
DEF EVICT_VOLATILE_LRU = 4
DEF EVICT_VOLATILE_LFU = 5
DEF EVICT_VOLATILE_RANDOM = 6
DEF EVICT_VOLATILE_TTL = 7
# results of perform_evictions
DEF EVICT_OK = 0
DEF EVICT_RUNNING = 1
DEF EVICT_FAIL = 2
DEF EVPOOL_SIZE = 16
DEF LFU_INIT_VAL = 5
DEF ACCESS_MASK_C = 0xFFFFFF      # Redis's access word (robj.lru)
DEF WORD_MASK_C = 0xFFFFFFF       # with the LRU clock's tenth of a second

MAXMEMORY_POLICIES = {
    "noeviction": EVICT_NOEVICTION, "allkeys-lru": EVICT_ALLKEYS_LRU,
    "allkeys-lfu": EVICT_ALLKEYS_LFU, "allkeys-random": EVICT_ALLKEYS_RANDOM,
    "volatile-lru": EVICT_VOLATILE_LRU, "volatile-lfu": EVICT_VOLATILE_LFU,
    "volatile-random": EVICT_VOLATILE_RANDOM, "volatile-ttl": EVICT_VOLATILE_TTL}
EVICT_RESULTS = dict(ok=EVICT_OK, running=EVICT_RUNNING, fail=EVICT_FAIL)
cdef str OOM_TEXT = "OOM command not allowed when used memory > 'maxmemory'."

cdef extern from "stdlib.h":
    int RAND_MAX

CLIENT_FLAGS = dict(MULTI=CF_MULTI, DIRTY_CAS=CF_DIRTY_CAS, DIRTY_EXEC=CF_DIRTY_EXEC,
                    REPLY_OFF=CF_REPLY_OFF, REPLY_SKIP_NEXT=CF_REPLY_SKIP_NEXT,
                    REPLY_SKIP=CF_REPLY_SKIP, NO_EVICT=CF_NO_EVICT, NO_TOUCH=CF_NO_TOUCH,
                    READONLY=CF_READONLY, BLOCKED=CF_BLOCKED, PUBSUB=CF_PUBSUB,
                    MASTER=CF_MASTER, REPLICA=CF_REPLICA, EXECUTING=CF_EXECUTING,
                    PROTECTED=CF_PROTECTED, ROUTED=CF_ROUTED, ASKING=CF_ASKING)
FAST_IDS = dict(get=FAST_GET, set=FAST_SET, incr=FAST_INCR, decr=FAST_DECR,
                incrby=FAST_INCRBY, decrby=FAST_DECRBY, mget=FAST_MGET, mset=FAST_MSET,
                lpush=FAST_LPUSH, rpush=FAST_RPUSH, lpushx=FAST_LPUSHX, rpushx=FAST_RPUSHX,
                lpop=FAST_LPOP, rpop=FAST_RPOP)
TX_CONTROL = CMD_TX_CONTROL
PUBSUB_CONTEXT = CMD_PUBSUB_CONTEXT


class _NoReply:
    """Returned by a handler that wrote its reply itself (or will, later)."""
    __slots__ = ()

NO_REPLY = _NoReply()
cdef object _NO_REPLY = NO_REPLY

cdef str WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
cdef str NOT_INTEGER = "ERR value is not an integer or out of range"
cdef str SYNTAX = "ERR syntax error"


cdef class Command:
    """One entry of the command table, as the gate and call() need it. The
    Python-side declaration (commands/table.py) fills these fields and keeps
    the rest (ACL categories, key specs, docs) in `meta`."""

    def __repr__(self):
        return "<Command %s>" % self.name

    def latency_histogram(self):
        """Counts per log2 bucket (bucket k: up to 1024 * 2**k ns)."""
        return [self.latency_buckets[i] for i in range(48)]

    def reset_latency(self):
        cdef int i
        for i in range(48):
            self.latency_buckets[i] = 0


cdef class Client(Connection):
    """A connected client's session state."""

    def __cinit__(self, *args, **kwargs):
        self.multi_queue = None
        self.watched = []
        self.authenticated = True

    def flag(self, int bit):
        return (self.flags & bit) != 0

    @property
    def buffers_memory(self):
        """Bytes allocated for the query and output buffers (maxmemory counts them)."""
        return self.parser.cap + self.out.cap

    @property
    def proto(self):
        return self.out.proto

    @proto.setter
    def proto(self, int value):
        self.out.proto = value


cdef inline int latency_bucket(long long usec):
    """The log2 bucket of a duration: the smallest k with usec*1000 <= 1024 << k."""
    cdef long long ns = usec * 1000
    cdef int k = 0
    while k < 47 and ns > (<long long>1024 << k):
        k += 1
    return k


cpdef str unknown_command_text(list argv):
    """Redis's error for an unknown command: its name and the start of its
    arguments, each cut at a NUL byte, 128 characters in all."""
    cdef str args = ""
    for a in argv[1:]:
        if len(args) >= 128:
            break
        args += "'%s' " % _printable_prefix(a, 128 - len(args))
    return "ERR unknown command '%s', with args beginning with: %s" % (_printable_prefix(argv[0], 128), args)


cpdef str unknown_subcommand_text(list argv):
    return "ERR unknown subcommand '%s'. Try %s HELP." % (
        _printable_prefix(argv[1], 128), (<bytes>argv[0]).decode("latin-1").upper())


cdef inline str _printable_prefix(bytes b, Py_ssize_t limit):
    """The first `limit` bytes of b up to any NUL byte, as C's %.*s prints."""
    cdef Py_ssize_t nul = b.find(b"\0")
    if nul >= 0:
        b = b[:nul]
    return b[:limit].decode("latin-1")


cdef class ShardCore(LoopHandler):
    """State and hot logic of one shard server; subclassed in shardkv.server."""

    def __cinit__(self, *args, **kwargs):
        self.loop = EventLoop()
        self.dbs = [Database(i) for i in range(16)]
        self.commands = {}
        self.clients = {}
        self.next_client_id = 1
        self.watched_keys = {}
        self.feed_consumers = []
        self.feed_pending = []
        self.feed_db = -1
        self.feed_scratch = ReplyBuffer()
        self.repl_outbox = ReplyBuffer()
        self.error_stats = {}
        self.proto_max_bulk_len = 512 * 1024 * 1024
        self.list_fill = -2
        self.maxclients = 10000
        self.active_expire_enabled = True
        self.now_ms = mstime()
        self.lru_clock = (self.now_ms // 1000) & ACCESS_MASK_C
        self.lru_tenth = (self.now_ms // 100) % 10
        self.lfu_minutes = (self.now_ms // 60000) & 0xFFFF
        self.maxmemory_samples = 5
        self.eviction_tenacity = 10
        self.lfu_log_factor = 10
        self.lfu_decay_time = 1
        self.size_pending = set()
        self.mem_checked_dirty = -1
        self.call_depth = 0
        self.obuf_hard = 0
        self.obuf_soft = 0
        self.obuf_soft_seconds = 0
        self.query_buffer_limit = 1024 * 1024 * 1024
        self.exec_cmd = None

    # ------------------------------------------------------------ connections
    cdef Connection make_connection(self, int fd):
        cdef Client c = Client()
        c.id = self.next_client_id
        self.next_client_id += 1
        c.server = self
        c.db = <Database>self.dbs[0]
        c.created_ms = c.last_interaction_ms = mstime()
        c.parser.max_bulk_len = self.proto_max_bulk_len
        c.authenticated = self.requirepass is None
        c.parser.auth_required = not c.authenticated
        self.stat_numconnections += 1
        return c

    cdef int after_accept(self, Connection conn) except -1:
        cdef Client c = <Client>conn
        if len(self.clients) >= self.maxclients:
            self.stat_rejected_conn += 1
            c.out.raw("-ERR max number of clients reached\r\n", 36)
            c.close_after_reply = True
            self.loop.want_write(c)
            return 0
        self.clients[c.id] = c
        self.client_connected(c)
        return 0

    def adopt_socket(self, int fd, long long flags):
        """Serves a socket this server connected itself (a replica's link to
        its primary) as a client with the given flags."""
        cdef Client c = <Client>self.make_connection(fd)
        c.flags |= flags
        self.loop.add_connection(c, fd, self)
        self.clients[c.id] = c
        self.client_connected(c)
        return c

    def inject_input(self, Client c, data):
        """Processes bytes as if they had been read from c's socket."""
        if data:
            c.parser.feed(data)
            self.process_input(c)

    def client_connected(self, Client c):
        """Fills the client's addresses; overridden in Python."""
        pass

    def attach_client(self, Client c):
        """Registers a client that has no socket (tests, scripts, the AOF loader)."""
        c.id = self.next_client_id
        self.next_client_id += 1
        c.server = self
        c.db = <Database>self.dbs[0]
        c.created_ms = c.last_interaction_ms = mstime()
        c.authenticated = self.requirepass is None
        c.parser.auth_required = not c.authenticated
        c.parser.max_bulk_len = self.proto_max_bulk_len
        return c

    cdef int on_close(self, Connection conn) except -1:
        cdef Client c = <Client>conn
        self.clients.pop(c.id, None)
        self.unwatch_all(c)
        self.client_closed(c)
        return 0

    def client_closed(self, Client c):
        """Releases what a client held (blocked keys, pub/sub); in Python."""
        pass

    def close_client(self, Client c, bint after_reply=False):
        if after_reply:
            c.close_after_reply = True
            self.loop.want_write(c)
        elif c.fd >= 0:
            self.loop.close_connection(c)
        else:
            self.clients.pop(c.id, None)
            self.unwatch_all(c)
            self.client_closed(c)

    cdef int on_data(self, Connection conn) except -1:
        cdef Client c = <Client>conn
        self.process_input(c)
        return 0

    cdef int process_input(self, Client c) except -1:
        cdef RequestParser p = c.parser
        cdef object argv
        cdef Py_ssize_t n
        c.last_interaction_ms = self.now_ms
        while not c.close_after_reply and c.fd >= 0 and not (c.flags & CF_BLOCKED):
            argv = p.parse_next()
            if argv is None:
                break
            if c.flags & CF_MASTER:
                # the primary's stream: its bytes, as applied, go on to this
                # replica's backlog and replicas and count in its offset
                n = p.start - p.cmd_start
                self.repl_outbox.raw(p.buf + p.cmd_start, n)
                self.process_command(c, <list>argv)
                self.master_repl_offset += n
                continue
            self.process_command(c, <list>argv)
            if (self.obuf_hard or self.obuf_soft) and c.out.length > c.out.sent \
                    and self.obuf_limit_reached(c):
                # checked per command: a pipeline of big replies must not
                # grow the buffer far past the limit before it is enforced
                self.log_warning("Client id=%d closed for overcoming of output buffer limits." % c.id)
                self.loop.close_connection(c)
                return 0
        if p.error is not None and not c.close_after_reply:
            self.protocol_error(c)
        if c.fd >= 0:
            if p.end - p.start > self.query_buffer_limit:
                self.log_warning("Closing client that reached max query buffer length")
                self.loop.close_connection(c)
                return 0
            if c.out.length > c.out.sent:
                if self.obuf_limit_reached(c):
                    self.log_warning("Client id=%d scheduled to be closed ASAP for overcoming of output buffer limits." % c.id)
                    self.loop.close_connection(c)
                    return 0
                self.loop.want_write(c)
        return 0

    cdef int protocol_error(self, Client c) except -1:
        c.out.error("ERR " + c.parser.error)
        c.close_after_reply = True
        self.loop.want_write(c)
        return 0

    cdef bint obuf_limit_reached(self, Client c):
        """client-output-buffer-limit for normal clients: a hard limit that
        closes at once, a soft one that closes after being exceeded for
        `soft_seconds` in a row."""
        cdef long long used = c.out.length - c.out.sent
        if self.obuf_hard and used >= self.obuf_hard:
            return True
        if self.obuf_soft and used >= self.obuf_soft:
            if c.obuf_soft_since == 0:
                c.obuf_soft_since = self.now_ms
            elif self.now_ms - c.obuf_soft_since > self.obuf_soft_seconds * 1000:
                return True
        else:
            c.obuf_soft_since = 0
        return False

    def resume_client(self, Client c):
        """Continues with a client's buffered commands after it was unblocked."""
        if c.fd >= 0 and not (c.flags & CF_BLOCKED):
            self.process_input(c)
            if c.out.length > c.out.sent:
                self.loop.want_write(c)

    def wake_writer(self, Client c):
        if c.fd >= 0:
            self.loop.want_write(c)

    cdef int before_sleep(self) except -1:
        if self.before_sleep_hook is not None:
            self.before_sleep_hook()
        return 0

    def log_warning(self, str msg):
        import logging
        logging.getLogger("shardkv").warning(msg)

    # ------------------------------------------------------------ the gate
    cdef Command lookup_command(self, list argv):
        cdef object name = <object>PyList_GET_ITEM(argv, 0)
        cdef object cmd = self.commands.get(name)
        if cmd is None:
            cmd = self.commands.get(name.lower())
            if cmd is None:
                return None
        return <Command>cmd

    cpdef int process_command(self, Client c, list argv) except -1:
        cdef Command cmd = self.lookup_command(argv)
        cdef Command sub
        cdef Py_ssize_t argc = PyList_GET_SIZE(argv)
        cdef str args
        cdef object s
        self.now_ms = mstime()
        if c.flags & CF_REPLY_SKIP_NEXT:
            c.flags = (c.flags & ~CF_REPLY_SKIP_NEXT) | CF_REPLY_SKIP
        if cmd is None:
            return self.reject(c, None, unknown_command_text(argv))
        if cmd.subcommands is not None and argc >= 2:
            s = cmd.subcommands.get((<bytes>argv[1]).lower())
            if s is None:
                return self.reject(c, cmd, unknown_subcommand_text(argv))
            cmd = <Command>s
        if (cmd.arity > 0 and argc != cmd.arity) or argc < -cmd.arity:
            return self.reject(c, cmd, "ERR wrong number of arguments for '%s' command" % cmd.name)
        if not c.authenticated and not (cmd.flags & CMD_NO_AUTH):
            return self.reject(c, cmd, "NOAUTH Authentication required.")
        if c.flags & CF_MASTER:
            # the primary's stream is obeyed: no redirects, limits or refusals
            if (c.flags & CF_MULTI) and not (cmd.flags & CMD_TX_CONTROL):
                c.multi_queue.append((cmd, argv))
            else:
                self.call(c, cmd, argv)
                c.last_cmd = cmd
            return 0
        if self.cluster_mode and not (c.flags & CF_ROUTED) \
                and (cmd.first_key > 0 or (cmd.flags & CMD_MOVABLE_KEYS)):
            s = self.cluster_redirect(c, cmd, argv)
            if s is not None:
                return self.reject(c, cmd, s)
        if self.gate_hook is not None:
            s = self.gate_hook(c, cmd, argv)
            if s is not None:
                return self.reject(c, cmd, s)
        if self.is_replica and self.replica_read_only and (cmd.flags & CMD_WRITE):
            return self.reject(c, cmd, "READONLY You can't write against a read only replica.")
        if self.maxmemory and self.call_depth == 0 and not self.is_replica \
                and not self.expire_deletes_paused:
            # memory only grows through writes (dirty) and re-measures: a
            # stream of reads under the limit skips the sum
            if self.dirty != self.mem_checked_dirty or self.mem_state != EVICT_OK \
                    or self.evicting or self.size_pending:
                self.mem_state = self.evict_c()
                self.mem_checked_dirty = self.dirty
            if self.mem_state == EVICT_FAIL and self.rejects_on_oom(c, cmd):
                self.stat_oom_rejections += 1
                return self.reject(c, cmd, OOM_TEXT)
        if (c.flags & CF_PUBSUB) and c.out.proto == 2 and not (cmd.flags & CMD_PUBSUB_CONTEXT):
            return self.reject(c, cmd, "ERR Can't execute '%s': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context" % cmd.name)
        if self.pause_hook is not None and self.pause_hook(c, cmd, argv):
            return 0   # CLIENT PAUSE holds the command until the pause ends
        if (c.flags & CF_MULTI) and (cmd.flags & CMD_NO_MULTI):
            return self.reject(c, cmd, "ERR Command '%s' not allowed inside a transaction" % cmd.name)
        if (c.flags & CF_MULTI) and not (cmd.flags & CMD_TX_CONTROL):
            c.multi_queue.append((cmd, argv))
            if not (c.flags & (CF_REPLY_OFF | CF_REPLY_SKIP)):
                c.out.raw("+QUEUED\r\n", 9)
            c.flags &= ~CF_REPLY_SKIP
            return 0
        self.call(c, cmd, argv)
        c.last_cmd = cmd
        return 0

    cdef object cluster_redirect(self, Client c, Command cmd, list argv):
        """Redis Cluster's rules for a client talking to this worker directly:
        all keys in one slot (else CROSSSLOT), and that slot served here
        (else MOVED to the worker that serves it)."""
        cdef Py_ssize_t argc = len(argv), i, last
        cdef int slot = -1, s
        cdef bytes key
        if cmd.flags & CMD_MOVABLE_KEYS:
            try:
                idx = cmd.meta.key_indexes(argv)
            except Exception:
                return None     # the handler reports the bad arguments
        else:
            last = cmd.last_key if cmd.last_key >= 0 else argc + cmd.last_key
            if last >= argc:
                last = argc - 1
            idx = range(cmd.first_key, last + 1, cmd.key_step if cmd.key_step > 0 else 1)
        for i in idx:
            key = <bytes>argv[i]
            s = key_slot_c(<const unsigned char *>PyBytes_AS_STRING(key), len(key)) if len(key) else 0
            if slot == -1:
                slot = s
            elif s != slot:
                return "CROSSSLOT Keys in request don't hash to the same slot"
        if slot == -1:
            return None
        target = self.slot_targets[slot]
        if target is None:
            return None
        if not target:
            return "CLUSTERDOWN Hash slot not served"
        if (c.flags & CF_READONLY) and not (cmd.flags & CMD_WRITE) \
                and self.replica_read_slots is not None and self.replica_read_slots[slot]:
            return None     # a replica of the slot's primary serves READONLY reads
        return "MOVED %d %s" % (slot, target)

    cdef int reject(self, Client c, Command cmd, str msg) except -1:
        """Refuses a command before it runs: counts it, and poisons an open
        transaction so that EXEC aborts."""
        if cmd is not None:
            cmd.rejected_calls += 1
        if cmd is not None and cmd is self.exec_cmd:
            # Valkey: a rejected EXEC ends the transaction (if any) and says
            # why, as an EXECABORT even outside MULTI
            if c.flags & CF_MULTI:
                self.discard_transaction(c)
            msg = "EXECABORT Transaction discarded because of: " + (msg[4:] if msg.startswith("ERR ") else msg)
        elif c.flags & CF_MULTI:
            c.flags |= CF_DIRTY_EXEC
        self.error_reply(c, msg)
        c.flags &= ~CF_REPLY_SKIP
        return 0

    cdef int error_reply(self, Client c, str msg) except -1:
        cdef Py_ssize_t sp = msg.find(" ")
        cdef str code = msg[:sp] if sp > 0 else msg
        self.stat_total_error_replies += 1
        self.error_stats[code] = self.error_stats.get(code, 0) + 1
        if not (c.flags & (CF_REPLY_OFF | CF_REPLY_SKIP)):
            c.out.error(msg)
        return 0

    cpdef int call(self, Client c, Command cmd, list argv) except -1:
        """Runs one command and propagates its effect."""
        cdef long long dirty_before = self.dirty
        cdef Py_ssize_t reply_mark = c.out.length
        cdef long long errors_before = self.stat_total_error_replies
        cdef int64_t start
        cdef long long duration
        cdef object ret
        cdef Client prev_client = self.current_client
        self.call_depth += 1
        self.current_client = c
        c.current_cmd = cmd
        c.rewrite = None
        start = monotonic_us()
        try:
            if cmd.fast:
                self.run_fast(cmd.fast, c, argv)
                if self.tracking_hook is not None and (cmd.flags & CMD_READONLY):
                    self.tracking_hook(c, cmd, argv)
            else:
                try:
                    ret = cmd.handler(c, argv)
                    if ret is not _NO_REPLY:
                        c.out.value(ret)
                    if self.tracking_hook is not None and (cmd.flags & CMD_READONLY):
                        # client-side caching remembers the keys it read
                        self.tracking_hook(c, cmd, argv)
                except ReplyError as e:
                    self.error_reply(c, e.message)
                except MemoryError:
                    self.error_reply(c, "ERR out of memory while running '%s'" % cmd.name)
                except Exception as e:
                    self.report_handler_bug(cmd, argv, e)
                    self.error_reply(c, "ERR internal error while running '%s': %s" % (cmd.name, type(e).__name__))
        finally:
            duration = monotonic_us() - start
            self.call_depth -= 1
            self.current_client = prev_client
        cmd.calls += 1
        cmd.usec += duration
        cmd.latency_buckets[latency_bucket(duration)] += 1
        self.stat_numcommands += 1
        c.commands_processed += 1
        if self.stat_total_error_replies != errors_before:
            cmd.failed_calls += 1
        # what moved the dirty counter is propagated, whatever the command's
        # flags say (PFCOUNT is read-only but may rewrite its key's cache);
        # EXEC's writes were propagated one by one, inside MULTI ... EXEC
        if self.dirty != dirty_before and not (cmd.flags & CMD_TX_CONTROL):
            if c.rewrite is not None:
                for r in c.rewrite:
                    self.propagate(c.db.id, <list>r)
            else:
                self.propagate(c.db.id, argv)
        if self.call_depth == 0:
            if self.feed_pending:
                self.flush_feed()
            c.woff = self.master_repl_offset
        if c.flags & (CF_REPLY_OFF | CF_REPLY_SKIP):
            c.out.length = reply_mark if reply_mark >= c.out.sent else c.out.length
            c.flags &= ~CF_REPLY_SKIP
        if self.call_depth == 0 and self.after_call_hook is not None:
            # pushes for the client that ran the command go after its reply
            self.after_call_hook()
        if self.slowlog_threshold >= 0 and duration >= self.slowlog_threshold and self.slowlog_hook is not None \
                and not (cmd.flags & CMD_SKIP_COMMANDLOG):
            self.slowlog_hook(c, argv, duration)
        return 0

    def report_handler_bug(self, Command cmd, list argv, exc):
        import logging
        logging.getLogger("shardkv").error("handler of %s failed", cmd.name, exc_info=exc)

    cdef int run_fast(self, int which, Client c, list argv) except -1:
        return run_fast_command(self, which, c, argv)

    # ------------------------------------------------------------ propagation
    cpdef int propagate(self, int dbid, list argv) except -1:
        """The one propagation point: queues a deterministic write for the
        append-only file and the replicas. Flushed after the outermost call,
        wrapped in MULTI/EXEC when one call produced several writes."""
        if self.feed_consumers or self.repl_feed_on:
            self.feed_pending.append((dbid, argv))
        return 0

    cdef int flush_feed(self) except -1:
        """Encodes the queued writes once (in C, into a scratch buffer): a
        primary's replication stream takes them straight into its outbox
        (the replication module delivers it to the backlog and the replicas
        once per loop pass); the other consumers (the AOF) get bytes."""
        cdef list pending = self.feed_pending
        cdef bint wrap = len(pending) > 1
        cdef ReplyBuffer ob = self.feed_scratch
        cdef Py_ssize_t n
        cdef tuple item
        cdef int dbid
        self.feed_pending = []
        if not self.feed_consumers and not self.repl_feed_on:
            return 0
        ob.length = ob.sent = 0
        if wrap:
            feed_encode(ob, [b"MULTI"])
        for item in pending:
            dbid = item[0]
            if dbid != self.feed_db:
                feed_encode(ob, [b"SELECT", str(dbid).encode()])
                self.feed_db = dbid
            feed_encode(ob, <list>item[1])
        if wrap:
            feed_encode(ob, [b"EXEC"])
        n = ob.length
        self.feed_offset += n
        if self.repl_feed_on and not self.is_replica:
            # a replica's stream is its primary's, proxied in process_input
            self.repl_outbox.raw(ob.data, n)
            self.master_repl_offset += n
        if self.feed_consumers:
            data = PyBytes_FromStringAndSize(ob.data, n)
            for consumer in self.feed_consumers:
                consumer(data)
        if ob.cap > 1 << 20:
            self.feed_scratch = ReplyBuffer()   # a huge write: do not keep its room
        return 0

    def flush_propagation(self):
        """Sends what propagate() queued (for writes made outside call(),
        such as serving a blocked client)."""
        if self.feed_pending and self.call_depth == 0:
            self.flush_feed()

    def add_feed_consumer(self, consumer):
        """consumer(bytes) receives every propagated write, as RESP commands.
        A new consumer starts with a SELECT of the next write's database."""
        self.feed_consumers.append(consumer)
        self.feed_db = -1

    def remove_feed_consumer(self, consumer):
        self.feed_consumers.remove(consumer)

    # ------------------------------------------------------------ keyspace
    cpdef bint key_expired(self, Database db, object key):
        cdef Entry *e = db.expires.find(key)
        return e != NULL and e.meta <= self.now_ms

    cpdef bint expire_if_needed(self, Database db, object key) except -1:
        """Deletes key if its time has passed. True if the key is (logically)
        gone. A replica never deletes on its own: it waits for its primary's
        DEL but already answers as if the key were gone."""
        cdef Entry *e = db.expires.find(key)
        if e == NULL or e.meta > self.now_ms:
            return False
        if self.is_replica:
            # the primary decides when a key expires: its own commands still
            # see the key, everyone else already reads it as gone
            return self.current_client is None or not (self.current_client.flags & CF_MASTER)
        if self.expire_deletes_paused:
            return True
        self.delete_expired(db, key)
        return True

    cpdef int delete_expired(self, Database db, object key) except -1:
        db.data.take(key)
        db.expires.take(key)
        self.stat_expired_keys += 1
        self.propagate(db.id, [b"DEL", key])
        self.signal_key(db, key)
        if self.keyspace_event_hook is not None:
            self.keyspace_event_hook("expired", key, db.id)
        return 0

    cpdef object lookup_read(self, Database db, object key):
        """The value at key, or None; counts a hit or a miss."""
        cdef Entry *e
        if db.expires.used and self.expire_if_needed(db, key):
            self.stat_keyspace_misses += 1
            if self.keyspace_event_hook is not None:
                self.keyspace_event_hook("keymiss", key, db.id)
            return None
        e = db.data.find(key)
        if e == NULL:
            self.stat_keyspace_misses += 1
            if self.keyspace_event_hook is not None:
                self.keyspace_event_hook("keymiss", key, db.id)
            return None
        self.stat_keyspace_hits += 1
        if not (self.current_client is not None and (self.current_client.flags & CF_NO_TOUCH)):
            if self.lfu_mode:
                e.meta = self.access_update(e.meta)
            else:
                e.meta = (e.meta & ~(<int64_t>WORD_MASK_C)) | self.lru_word()
        return <object>e.val

    cpdef object lookup_write(self, Database db, object key):
        """The value at key, or None, for a command that will change it."""
        cdef Entry *e
        if db.expires.used and self.expire_if_needed(db, key):
            return None
        e = db.data.find(key)
        if e == NULL:
            return None
        if self.lfu_mode:
            e.meta = self.access_update(e.meta)
        else:
            e.meta = (e.meta & ~(<int64_t>WORD_MASK_C)) | self.lru_word()
        self.looked_up = e
        self.looked_up_cmd = self.stat_numcommands
        return <object>e.val

    cpdef object peek(self, Database db, object key):
        """The value at key without expiring, counting or touching anything."""
        cdef Entry *e = db.data.find(key)
        if e == NULL or self.key_expired(db, key):
            return None
        return <object>e.val

    cpdef int store(self, Database db, object key, object value, bint keep_ttl=False) except -1:
        """Sets key to value; drops its TTL unless keep_ttl. Signals the change."""
        cdef Entry *e = db.data.find(key)
        if e == NULL:
            db.data.insert_new(key, value, self.access_new())
            if self.keyspace_event_hook is not None:
                self.keyspace_event_hook("new", key, db.id)
        else:
            table_set_value(db.data, e, value)
            # Redis counts an LFU access per lookup, and a new value keeps
            # the old one's LFU data (dbSetValue): a write looks its key up
            # for writing once (lookupKeyWrite). store() counts that lookup
            # unless the command's lookup_write already did (INCR, SET EX);
            # a plain SET or MSET did none, SET GET and GETSET read first,
            # and Redis counts their read lookup as well
            if not self.lfu_mode:
                e.meta = (e.meta & ~(<int64_t>WORD_MASK_C)) | self.lru_word()
            elif e != self.looked_up or self.looked_up_cmd != self.stat_numcommands:
                e.meta = self.access_update(e.meta)
        if type(value) is not bytes:
            self.size_pending.add((db, key))
        if not keep_ttl and db.expires.used:
            db.expires.discard(key)
        self.signal_key(db, key)
        return 0

    cpdef int add_new(self, Database db, object key, object value) except -1:
        """Adds a key known to be absent (after a lookup), keeping no TTL."""
        db.data.insert_new(key, value, self.access_new())
        if self.keyspace_event_hook is not None:
            self.keyspace_event_hook("new", key, db.id)
        if type(value) is not bytes:
            # collections are often created empty and filled afterwards
            self.size_pending.add((db, key))
        self.signal_key(db, key)
        return 0

    cpdef bint delete(self, Database db, object key) except -1:
        """Removes key; True if it existed. Signals the change."""
        if db.data.find(key) == NULL:
            return False
        db.data.take(key)
        if db.expires.used:
            db.expires.discard(key)
        self.signal_key(db, key)
        return True

    cpdef long long get_expire(self, Database db, object key):
        """The key's expiry time in ms, or -1."""
        cdef Entry *e = db.expires.find(key)
        return -1 if e == NULL else e.meta

    cpdef int set_expire(self, Database db, object key, long long when) except -1:
        cdef Entry *e = db.expires.find(key)
        if e == NULL:
            db.expires.insert_new(key, None, when)
        else:
            e.meta = when
        return 0

    cpdef bint remove_expire(self, Database db, object key) except -1:
        return db.expires.discard(key) == 1

    # ------------------------------------------------------------ maxmemory
    # The access word of a data entry (the low 24 bits of its metadata) is
    # Redis's robj.lru: the LRU clock in seconds, or, under an LFU policy,
    # the minute of the last decrement (16 bits) and a logarithmic access
    # counter (8 bits) that starts at LFU_INIT_VAL, grows with probability
    # 1 / ((counter - LFU_INIT_VAL) * lfu-log-factor + 1) on each access and
    # loses one per lfu-decay-time minutes without access.
    #
    # One departure from Redis: under an LRU policy, the 4 bits above the
    # word keep the tenth of a second of the access (the cron's clock, hz 10
    # by default). Redis's idle times are whole seconds, so a cache that turns
    # over within a few seconds (tens of thousands of writes a second into a
    # limit of some thousands of keys) sees most sampled keys tie at idle 0
    # or 1, and the pool then picks among equals: close to random eviction.
    # The eviction score is the idle time in tenths; OBJECT IDLETIME, DEBUG
    # OBJECT and get_meta still see Redis's seconds.

    cdef inline int64_t lru_word(self):
        return (self.lru_tenth << 24) | self.lru_clock

    cdef inline int64_t access_new(self):
        if self.lfu_mode:
            return (self.lfu_minutes << 8) | LFU_INIT_VAL
        return self.lru_word()

    cdef inline int64_t access_update(self, int64_t meta):
        cdef int counter
        if not self.lfu_mode:
            return (meta & ~(<int64_t>WORD_MASK_C)) | self.lru_word()
        counter = lfu_log_incr(lfu_decrement(meta, self.lfu_minutes, self.lfu_decay_time),
                               self.lfu_log_factor)
        return (meta & ~(<int64_t>WORD_MASK_C)) | (self.lfu_minutes << 8) | counter

    def key_frequency(self, Database db, object key):
        """OBJECT FREQ: the key's LFU counter after the decay due by now."""
        cdef Entry *e = db.data.find(key)
        if e == NULL:
            return None
        return lfu_decrement(e.meta, self.lfu_minutes, self.lfu_decay_time)

    def key_idle_seconds(self, Database db, object key):
        """OBJECT IDLETIME: seconds since the key's last access (LRU clock)."""
        cdef Entry *e = db.data.find(key)
        if e == NULL:
            return None
        return (self.lru_clock - (e.meta & ACCESS_MASK_C)) & ACCESS_MASK_C

    def used_memory_estimate(self):
        """used_memory: the memory the process held before the dataset, the
        entries' size estimates, both hash tables' buckets and expiry
        entries, and the client buffers."""
        return self.used_memory_c()

    cdef long long used_memory_c(self):
        cdef long long total = self.mem_startup + self.mem_clients
        cdef list dbs = self.dbs
        cdef Py_ssize_t i
        for i in range(PyList_GET_SIZE(dbs)):
            total += db_memory(<Database>PyList_GET_ITEM(dbs, i))
        return total

    def dataset_memory(self):
        """The entries' size estimates alone (used_memory_dataset's core)."""
        cdef long long total = 0
        cdef Database db
        for db in self.dbs:
            total += db.data.mem
        return total

    def drain_size_pending(self):
        """Re-measures the values changed in place since the last drain."""
        self.drain_pending_c()

    cdef int drain_pending_c(self) except -1:
        cdef set pending = self.size_pending
        cdef Entry *e
        cdef Database db
        if not pending:
            return 0
        self.size_pending = set()
        for item in pending:
            db = <Database>(<tuple>item)[0]
            e = db.data.find((<tuple>item)[1])
            if e != NULL:
                db.data.refresh_size(e)
        return 0

    def refresh_client_memory(self):
        """The client buffers' allocations (query and output), as Redis
        counts them in used_memory; refreshed by the cron."""
        cdef long long total = 0
        cdef Client c
        for x in self.clients.values():
            c = <Client>x
            total += c.parser.cap + c.out.cap
        self.mem_clients = total
        return total

    cdef bint rejects_on_oom(self, Client c, Command cmd):
        """Valkey's rule: commands flagged denyoom (queued or not), and EXEC
        of a transaction that queued one."""
        if cmd.flags & CMD_DENYOOM:
            return True
        if cmd is self.exec_cmd and c.multi_queue:
            for q in c.multi_queue:
                if (<Command>(<tuple>q)[0]).flags & CMD_DENYOOM:
                    return True
        return False

    def perform_evictions(self):
        """Evicts keys by the policy until used_memory is at most maxmemory.
        Returns EVICT_OK, EVICT_FAIL (over the limit with nothing left to
        evict, or noeviction) or EVICT_RUNNING (the time limit of
        maxmemory-eviction-tenacity ran out first; the cron and the next
        commands carry on)."""
        return self.evict_c()

    cdef int evict_c(self) except -1:
        cdef long long used
        cdef int64_t start, limit
        cdef long long freed_keys = 0
        cdef int policy = self.maxmemory_policy
        cdef bint volatile = policy >= EVICT_VOLATILE_LRU
        cdef bint pooled = policy != EVICT_ALLKEYS_RANDOM and policy != EVICT_VOLATILE_RANDOM
        cdef int result = EVICT_OK, k, i, ndb = len(self.dbs)
        cdef Py_ssize_t total_keys
        cdef Database db, best_db
        cdef Table t
        cdef Entry *e
        cdef object best_key
        cdef PyObject *pk
        if self.size_pending:
            self.drain_pending_c()
        used = self.used_memory_c()
        if used <= self.maxmemory:
            self.evicting = False
            return EVICT_OK
        if policy == EVICT_NOEVICTION:
            return EVICT_FAIL
        start = monotonic_us()
        limit = eviction_time_limit_us(self.eviction_tenacity)
        while used > self.maxmemory:
            best_key = None
            best_db = None
            if pooled:
                while best_key is None:
                    total_keys = 0
                    for db in self.dbs:
                        t = db.expires if volatile else db.data
                        if t.used:
                            total_keys += t.used
                            self.pool_populate(db)
                    if total_keys == 0:
                        break
                    # the best candidate is the last one; ghosts (keys gone
                    # since they were sampled) are dropped on the way
                    for k in range(EVPOOL_SIZE - 1, -1, -1):
                        pk = self.ev_key[k]
                        if pk == NULL:
                            continue
                        self.ev_key[k] = NULL
                        db = <Database>self.dbs[self.ev_db[k]]
                        t = db.expires if volatile else db.data
                        if t.find(<object>pk) != NULL:
                            best_key = <object>pk
                            best_db = db
                        Py_DECREF(<object>pk)
                        if best_key is not None:
                            break
            else:
                for i in range(ndb):
                    self.ev_next_db = (self.ev_next_db + 1) % ndb
                    db = <Database>self.dbs[self.ev_next_db]
                    t = db.expires if volatile else db.data
                    if t.used:
                        e = t.random_entry()
                        best_key = <object>e.key
                        best_db = db
                        break
            if best_key is None:
                result = EVICT_FAIL
                break
            # what the eviction gives back, from the one database it touched
            used -= db_memory(best_db)
            self.evict_key(best_db, best_key)
            used += db_memory(best_db)
            freed_keys += 1
            if freed_keys % 16 == 0 and used > self.maxmemory and monotonic_us() - start > limit:
                result = EVICT_RUNNING
                self.stat_eviction_exceeded_us += monotonic_us() - start
                break
        self.evicting = result == EVICT_RUNNING
        if self.call_depth == 0 and self.feed_pending:
            # the DELs go out on their own, not inside the command's MULTI/EXEC
            self.flush_feed()
        return result

    cdef unsigned long long evict_score(self, Database db, Entry *e, object key):
        """How good a candidate a sampled entry is (higher: evict sooner).
        e is the sampled entry: of the expires table for volatile policies."""
        cdef int policy = self.maxmemory_policy
        cdef Entry *d
        if policy == EVICT_VOLATILE_TTL:
            return 0xFFFFFFFFFFFFFFFFULL - <unsigned long long>e.meta
        d = e if policy < EVICT_VOLATILE_LRU else db.data.find(key)
        if d == NULL:
            return 0
        if policy == EVICT_ALLKEYS_LFU or policy == EVICT_VOLATILE_LFU:
            return 255 - lfu_decrement(d.meta, self.lfu_minutes, self.lfu_decay_time)
        return lru_idle_tenths(d.meta, self.lru_clock, self.lru_tenth)

    cdef int pool_populate(self, Database db) except -1:
        """Samples maxmemory-samples keys of db into the eviction pool, which
        stays sorted by score, best last (evictionPoolPopulate)."""
        cdef Table t = db.expires if self.maxmemory_policy >= EVICT_VOLATILE_LRU else db.data
        cdef int n, k, j
        cdef Entry *e
        cdef unsigned long long score
        cdef object key
        for n in range(self.maxmemory_samples):
            e = t.random_entry()
            if e == NULL:
                return 0
            key = <object>e.key
            score = self.evict_score(db, e, key)
            k = 0
            while k < EVPOOL_SIZE and self.ev_key[k] != NULL and self.ev_idle[k] < score:
                k += 1
            if k == 0 and self.ev_key[EVPOOL_SIZE - 1] != NULL:
                continue        # worse than every candidate of a full pool
            if k < EVPOOL_SIZE and self.ev_key[k] == NULL:
                pass            # an empty slot
            elif self.ev_key[EVPOOL_SIZE - 1] == NULL:
                # room on the right: shift k.. one place right
                for j in range(EVPOOL_SIZE - 1, k, -1):
                    self.ev_key[j] = self.ev_key[j - 1]
                    self.ev_idle[j] = self.ev_idle[j - 1]
                    self.ev_db[j] = self.ev_db[j - 1]
            else:
                # full: drop the worst (first) and shift ..k-1 left
                k -= 1
                Py_DECREF(<object>self.ev_key[0])
                for j in range(k):
                    self.ev_key[j] = self.ev_key[j + 1]
                    self.ev_idle[j] = self.ev_idle[j + 1]
                    self.ev_db[j] = self.ev_db[j + 1]
            Py_INCREF(key)
            self.ev_key[k] = <PyObject *>key
            self.ev_idle[k] = score
            self.ev_db[k] = db.id
        return 0

    def clear_eviction_pool(self):
        cdef int k
        for k in range(EVPOOL_SIZE):
            if self.ev_key[k] != NULL:
                Py_DECREF(<object>self.ev_key[k])
                self.ev_key[k] = NULL

    def eviction_pool(self):
        """(score, db id, key) of the pool's candidates, worst first (tests)."""
        cdef int k
        return [(self.ev_idle[k], self.ev_db[k], <object>self.ev_key[k])
                for k in range(EVPOOL_SIZE) if self.ev_key[k] != NULL]

    cdef int evict_key(self, Database db, object key) except -1:
        """Deletes an evicted key: a DEL for the AOF and the replicas, an
        "evicted" keyspace event, WATCHers signalled, the stat counted."""
        db.data.take(key)
        if db.expires.used:
            db.expires.discard(key)
        self.stat_evicted_keys += 1
        if self.feed_consumers or self.repl_feed_on:
            self.propagate(db.id, [b"DEL", key])
            if self.call_depth == 0:
                # each eviction goes out on its own, not in a MULTI with others
                self.flush_feed()
        # WATCHers and client-side caches see the change
        self.signal_key(db, key)
        if self.keyspace_event_hook is not None:
            self.keyspace_event_hook("evicted", key, db.id)
        return 0

    def evict(self):
        """Runs perform_evictions from Python: 'ok', 'running' or 'fail'."""
        return ("ok", "running", "fail")[self.evict_c()]

    # ------------------------------------------------------------ WATCH
    cpdef int touch(self, Database db, object key) except -1:
        """Signals that key changed (WATCHers' transactions will abort) and
        has its size measured again: a string now, a collection (changed in
        place by its command) before the next eviction check or cron."""
        cdef Entry *e = db.data.find(key)
        if e != NULL:
            if type(<object>e.val) is bytes:
                table_refresh_size(db.data, e)
            else:
                self.size_pending.add((db, key))
        return self.signal_key(db, key)

    cdef int signal_key(self, Database db, object key) except -1:
        cdef object watchers
        if self.watched_keys:
            watchers = self.watched_keys.get((db.id, key))
            if watchers is not None:
                for c in <list>watchers:
                    (<Client>c).flags |= CF_DIRTY_CAS
        if self.modified_hook is not None:
            self.modified_hook(db, key)
        return 0

    def touch_all_watched(self, Database db, Database other=None):
        """FLUSHDB/FLUSHALL/SWAPDB: dirties WATCHers of keys of db that exist
        (or, for SWAPDB, exist in the other db)."""
        for (dbid, key), watchers in list(self.watched_keys.items()):
            if dbid != db.id:
                continue
            if db.data.find(key) != NULL or (other is not None and other.data.find(key) != NULL):
                for c in watchers:
                    (<Client>c).flags |= CF_DIRTY_CAS

    def watch(self, Client c, object key):
        cdef tuple wk = (c.db.id, key)
        for w in c.watched:
            if w[0] == wk[0] and w[1] == key:
                return
        watchers = self.watched_keys.get(wk)
        if watchers is None:
            watchers = self.watched_keys[wk] = []
        watchers.append(c)
        # remember whether it was alive: a key that expires after WATCH aborts EXEC
        c.watched.append((wk[0], key, self.key_expired(c.db, key) or c.db.data.find(key) == NULL))

    cpdef int unwatch_all(self, Client c) except -1:
        for dbid, key, _ in c.watched:
            watchers = self.watched_keys.get((dbid, key))
            if watchers is not None:
                watchers.remove(c)
                if not watchers:
                    del self.watched_keys[(dbid, key)]
        c.watched = []
        c.flags &= ~CF_DIRTY_CAS
        return 0

    cdef bint watched_key_expired(self, Client c):
        for dbid, key, was_gone in c.watched:
            if not was_gone and self.key_expired(<Database>self.dbs[dbid], key):
                return True
        return False

    # ------------------------------------------------------------ MULTI/EXEC
    def exec_transaction(self, Client c):
        """EXEC: runs the queued commands, or aborts (EXECABORT, or a null
        array when a WATCHed key changed)."""
        cdef list queue
        if not (c.flags & CF_MULTI):
            raise ReplyError("ERR EXEC without MULTI")
        if self.watched_key_expired(c):
            c.flags |= CF_DIRTY_CAS
        if c.flags & (CF_DIRTY_CAS | CF_DIRTY_EXEC):
            if c.flags & CF_DIRTY_EXEC:
                self.error_reply(c, "EXECABORT Transaction discarded because of previous errors.")
            else:
                c.out.null_array()
            self.discard_transaction(c)
            return _NO_REPLY
        queue = c.multi_queue
        self.unwatch_all(c)
        c.flags &= ~CF_MULTI
        c.multi_queue = None
        c.flags |= CF_EXECUTING
        c.out.array(len(queue))
        try:
            for cmd, argv in queue:
                if self.exec_gate_hook is not None:
                    err = self.exec_gate_hook(c, cmd, argv)
                    if err is not None:
                        self.error_reply(c, err)
                        continue
                self.call(c, <Command>cmd, <list>argv)
        finally:
            c.flags &= ~CF_EXECUTING
        return _NO_REPLY

    def discard_transaction(self, Client c):
        c.multi_queue = None
        c.flags &= ~(CF_MULTI | CF_DIRTY_CAS | CF_DIRTY_EXEC)
        self.unwatch_all(c)

    # ------------------------------------------------------------ tests
    def run_argv(self, Client c, list argv):
        """Runs one command for a socketless client and returns its reply bytes."""
        self.process_command(c, argv)
        return c.out.take()

    def feed_client(self, Client c, bytes data):
        """Feeds raw request bytes to a socketless client and returns the reply bytes."""
        c.parser.feed(data)
        cdef object argv
        while not c.close_after_reply and not (c.flags & CF_BLOCKED):
            argv = c.parser.parse_next()
            if argv is None:
                break
            self.process_command(c, <list>argv)
        if c.parser.error is not None and not c.close_after_reply:
            c.out.error("ERR " + c.parser.error)
            c.close_after_reply = True
        return c.out.take()

    def run_loop(self):
        self.loop.run(self)

    def stop_loop(self):
        self.loop.stop()

    def listen_fd(self, int fd):
        self.loop.add_listener(fd, self)

    def tick(self):
        """Refreshes the cached clocks (called by the cron)."""
        self.now_ms = mstime()
        self.lru_clock = (self.now_ms // 1000) & ACCESS_MASK_C
        self.lru_tenth = (self.now_ms // 100) % 10
        self.lfu_minutes = (self.now_ms // 60000) & 0xFFFF

    def active_expire_cycle(self, Database db, int64_t time_limit_us):
        """Deletes expired keys of db found by random sampling, Redis-style:
        keeps sampling batches of 20 while more than a tenth of a batch was
        expired and time remains. Returns (sampled, expired)."""
        cdef int64_t start = monotonic_us()
        cdef Entry *e
        cdef long long sampled = 0, expired = 0
        cdef int batch_expired, i
        cdef list dead
        self.now_ms = mstime()
        while db.expires.used:
            dead = []
            for i in range(20 if db.expires.used > 20 else db.expires.used):
                e = db.expires.random_entry()
                sampled += 1
                if e.meta <= self.now_ms:
                    dead.append(<object>e.key)
            batch_expired = 0
            for key in dead:
                if db.expires.find(key) != NULL:
                    self.delete_expired(db, key)
                    batch_expired += 1
            expired += batch_expired
            if self.feed_pending:
                self.flush_feed()
            if batch_expired <= 2 or monotonic_us() - start > time_limit_us:
                break
        return sampled, expired


cdef inline long long db_memory(Database db):
    """A database's share of used_memory_estimate."""
    return db.data.mem + 8 * <long long>db.data.size \
        + 32 * <long long>db.expires.used + 8 * <long long>db.expires.size


cdef inline unsigned long long lru_idle_tenths(int64_t meta, long long clock, int tenth):
    """The idle time of an LRU access word in tenths of a second: Redis's
    seconds (mod 2**24, so a clock that wrapped still reads right) and the
    tenths beside them (0 for words set without one: RESTORE IDLETIME)."""
    cdef unsigned long long secs = (clock - (meta & ACCESS_MASK_C)) & ACCESS_MASK_C
    cdef int then = (meta >> 24) & 15
    if secs == 0 and then >= tenth:
        return 0
    return secs * 10 + tenth - then


cdef inline int lfu_decrement(int64_t meta, long long now_minutes, int decay_time):
    """The LFU counter of an access word after the decay due by now: one per
    decay_time minutes since its last decrement (none with decay_time 0)."""
    cdef long long ldt = (meta & ACCESS_MASK_C) >> 8
    cdef int counter = meta & 255
    cdef long long elapsed = now_minutes - ldt if now_minutes >= ldt else 65535 - ldt + now_minutes
    cdef long long periods = elapsed // decay_time if decay_time > 0 else 0
    if periods:
        counter = 0 if periods > counter else counter - periods
    return counter


cdef inline int lfu_log_incr(int counter, int log_factor):
    """Increments the LFU counter with a probability that falls as it grows,
    so 255 stands for about a million accesses at lfu-log-factor 10."""
    cdef double r, p
    cdef int base
    if counter >= 255:
        return 255
    r = <double>random() / <double>RAND_MAX
    base = counter - LFU_INIT_VAL
    if base < 0:
        base = 0
    p = 1.0 / (base * log_factor + 1)
    if r < p:
        counter += 1
    return counter


cdef inline int64_t eviction_time_limit_us(int tenacity):
    """maxmemory-eviction-tenacity: 50 us a step up to 10 (500 us), then 15%
    more a step, no limit at 100."""
    if tenacity <= 10:
        return 50 * tenacity
    if tenacity < 100:
        return <int64_t>(500.0 * (1.15 ** (tenacity - 10.0)))
    return 0x7FFFFFFFFFFFFFFF


def lfu_log_incr_py(int counter, int log_factor):
    return lfu_log_incr(counter, log_factor)


cdef int feed_encode(ReplyBuffer ob, list argv) except -1:
    """Appends argv as a RESP multibulk request."""
    cdef object a
    ob.array(len(argv))
    for a in argv:
        if type(a) is not bytes:
            a = bytes(a) if not isinstance(a, str) else (<str>a).encode()
        ob.bulk_cstr(PyBytes_AS_STRING(a), PyBytes_GET_SIZE(a))
    return 0


cdef bytes encode_command(list argv):
    """argv as a RESP multibulk request."""
    cdef list parts = [b"*%d\r\n" % len(argv)]
    for a in argv:
        if type(a) is not bytes:
            a = bytes(a) if not isinstance(a, str) else (<str>a).encode()
        parts.append(b"$%d\r\n" % len(<bytes>a))
        parts.append(a)
        parts.append(b"\r\n")
    return b"".join(parts)


def py_encode_command(list argv):
    return encode_command(argv)
