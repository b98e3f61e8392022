# Declarations of shardkv's compiled core: the contract between its parts.
# Field layouts and cdef signatures live here; bodies live in the .pxi files
# that native.pyx includes. Python code sees only what is declared public or
# exposed through def methods.

from libc.stdint cimport int64_t, uint64_t, uint32_t
from cpython.object cimport PyObject


# ---------------------------------------------------------------- keyspace.pxi
cdef struct Entry:
    PyObject *key
    PyObject *val
    Entry *next
    int64_t meta          # data table: size estimate << 24 | access word (LRU/LFU); expires table: when, in ms


cdef class Table:
    cdef Entry **buckets
    cdef size_t size      # number of buckets: 0 or a power of two
    cdef Py_ssize_t used
    cdef uint64_t version # bumped by every structural change (insert, delete)
    cdef public bint sized # entries carry a size estimate (data tables)
    cdef int64_t mem      # sized: sum of the entries' size estimates

    cdef Entry *find(self, object key) except? NULL
    cdef Entry *insert_new(self, object key, object val, int64_t meta) except NULL
    cdef int put(self, object key, object val) except -1
    cdef int set_value(self, Entry *e, object val) except -1
    cdef int refresh_size(self, Entry *e) except -1
    cdef object take(self, object key)
    cdef int discard(self, object key) except -1
    cdef void clear_all(self)
    cdef void _resize(self, size_t newsize)
    cdef Entry *random_entry(self)


cdef class Database:
    cdef readonly int id
    cdef public Table data
    cdef public Table expires


# ---------------------------------------------------------------- resp_parser.pxi
cdef class RequestParser:
    cdef char *buf
    cdef Py_ssize_t cap
    cdef Py_ssize_t start          # first unparsed byte
    cdef Py_ssize_t end            # one past the last byte received
    cdef Py_ssize_t cmd_start      # where the command being (or last) parsed begins
    cdef public long long max_bulk_len
    cdef public bint auth_required # unauthenticated clients get tighter limits
    cdef int kind                  # 0 none, 1 multibulk, 2 inline
    cdef long long mb_remaining    # bulks still to read in the current multibulk
    cdef long long bulk_len        # -1 while the next $<len> header is unread
    cdef list argv                 # arguments of the command being parsed
    cdef public str error          # set when the stream is malformed

    cdef char *reserve(self, Py_ssize_t n) except NULL
    cdef inline void commit(self, Py_ssize_t n)
    cdef Py_ssize_t buffered(self)
    cdef object parse_next(self)
    cdef object _parse_inline(self)
    cdef object _parse_multibulk(self)
    cdef int _fail(self, str msg) except -1


# ---------------------------------------------------------------- resp_writer.pxi
cdef class ReplyBuffer:
    cdef char *data
    cdef Py_ssize_t length
    cdef Py_ssize_t cap
    cdef Py_ssize_t sent           # bytes of data already written to the socket
    cdef public int proto          # 2 or 3

    cdef int reserve(self, Py_ssize_t n) except -1
    cdef int raw(self, const char *s, Py_ssize_t n) except -1
    cdef int simple(self, bytes s) except -1
    cdef int error(self, object msg) except -1
    cdef int integer(self, long long v) except -1
    cdef int bulk(self, object v) except -1
    cdef int bulk_cstr(self, const char *s, Py_ssize_t n) except -1
    cdef int null(self) except -1
    cdef int null_array(self) except -1
    cdef int header(self, char kind, long long n) except -1
    cdef int array(self, long long n) except -1
    cdef int map(self, long long n) except -1
    cdef int set_header(self, long long n) except -1
    cdef int push(self, long long n) except -1
    cdef int double(self, double d) except -1
    cdef int double_text(self, bytes s) except -1
    cdef int boolean(self, bint b) except -1
    cdef int verbatim(self, object text, bytes fmt) except -1
    cdef int value(self, object v) except -1
    cdef void consume(self, Py_ssize_t n)


# ---------------------------------------------------------------- loop.pxi
cdef class Connection:
    cdef public int fd
    cdef public RequestParser parser
    cdef public ReplyBuffer out
    cdef LoopHandler handler
    cdef EventLoop loop
    cdef bint pending              # queued for a flush at the end of this pass
    cdef bint epollout             # waiting for the socket to take more output
    cdef public bint paused_reading
    cdef public bint close_after_reply
    cdef public bint closed
    cdef public long long bytes_in
    cdef public long long bytes_out


cdef class LoopHandler:
    cdef Connection make_connection(self, int fd)
    cdef int after_accept(self, Connection c) except -1
    cdef int on_data(self, Connection c) except -1
    cdef int on_close(self, Connection c) except -1
    cdef int after_write(self, Connection c) except -1
    cdef int before_sleep(self) except -1


cdef class EventLoop:
    cdef int epfd
    cdef dict conns
    cdef dict listeners
    cdef dict readers
    cdef list pending
    cdef list timers
    cdef long long timer_seq
    cdef public bint stopping

    cdef int add_connection(self, Connection c, int fd, LoopHandler handler) except -1
    cdef int want_write(self, Connection c) except -1
    cdef int set_writable_interest(self, Connection c, bint on) except -1
    cdef int pause_reading(self, Connection c, bint paused) except -1
    cdef int close_connection(self, Connection c) except -1
    cdef int flush(self, Connection c) except -1
    cdef int read_from(self, Connection c) except -1
    cdef int accept_from(self, int lfd, LoopHandler handler) except -1
    cdef int run_timers(self) except -1
    cdef int flush_pending(self) except -1


# ---------------------------------------------------------------- core.pxi
cdef class Command:
    cdef public str name
    cdef public int arity
    cdef public long long flags
    cdef public int first_key
    cdef public int last_key
    cdef public int key_step
    cdef public object handler
    cdef public int fast
    cdef public dict subcommands
    cdef public object parent
    cdef public object meta
    cdef public long long calls
    cdef public long long usec
    cdef public long long rejected_calls
    cdef public long long failed_calls
    cdef long long latency_buckets[48]    # calls by duration: bucket k holds <= 1024 * 2**k ns


cdef class Client(Connection):
    cdef public long long id
    cdef public object server
    cdef public Database db
    cdef public long long flags
    cdef public object name
    cdef public object lib_name
    cdef public object lib_ver
    cdef public bint authenticated
    cdef public object user
    cdef public list multi_queue
    cdef public list watched
    cdef public long long created_ms
    cdef public long long last_interaction_ms
    cdef public Command last_cmd
    cdef public Command current_cmd
    cdef public str addr
    cdef public str laddr
    cdef public list rewrite       # argv lists to propagate instead of this call's argv
    cdef public long long obuf_soft_since
    cdef public object blocked     # blocking state, owned by the blocking machinery
    cdef public long long commands_processed
    cdef public int argv_mem
    cdef public long long woff     # the replication offset after its last command (WAIT)
    cdef public object repl        # replication state of a replica's link or a primary's replica


cdef class ShardCore(LoopHandler):
    cdef public EventLoop loop
    cdef public list dbs
    cdef public dict commands
    cdef public dict clients
    cdef public long long next_client_id
    cdef public dict watched_keys          # (db id, key) -> [clients]
    cdef public list feed_consumers
    cdef public list feed_pending
    cdef public int feed_db
    cdef public long long feed_offset
    cdef public long long dirty
    cdef public long long now_ms
    cdef public long long lru_clock
    cdef public int lru_tenth              # tenth of a second of the cron's clock (LRU scores)
    cdef public object requirepass
    cdef public bint is_replica
    cdef public bint replica_read_only     # replica-read-only: normal clients may not write
    cdef public long long master_repl_offset
    cdef public bint repl_feed_on          # a primary's replication stream takes the feed (repl_outbox)
    cdef public ReplyBuffer repl_outbox    # stream bytes for the backlog and replicas, delivered per pass
    cdef ReplyBuffer feed_scratch
    cdef public object replica_read_slots  # bytearray(16384): slots a READONLY client may read here
    cdef public bint active_expire_enabled
    cdef public bint cluster_mode
    cdef public list slot_targets          # per slot: None if served here, else "host:port" ("" unserved)
    cdef public long long proto_max_bulk_len
    cdef public int list_fill              # list-max-listpack-size, for the hot list commands
    cdef public long long maxclients
    cdef public long long query_buffer_limit
    cdef public long long obuf_hard
    cdef public long long obuf_soft
    cdef public long long obuf_soft_seconds
    cdef public long long slowlog_threshold
    cdef public int call_depth
    cdef public Client current_client
    cdef public object exec_cmd
    cdef public dict error_stats
    cdef public long long stat_numcommands
    cdef public long long stat_numconnections
    cdef public long long stat_rejected_conn
    cdef public long long stat_expired_keys
    cdef public long long stat_keyspace_hits
    cdef public long long stat_keyspace_misses
    cdef public long long stat_total_error_replies
    # Python-level extension points, None when unused
    cdef public object gate_hook           # (client, cmd, argv) -> error text or None
    cdef public object exec_gate_hook
    cdef public object pause_hook          # (client, cmd, argv) -> True if the command is held
    cdef public bint expire_deletes_paused # keys past their time read as gone but stay (CLIENT PAUSE)
    cdef public object slowlog_hook
    cdef public object keyspace_event_hook # (event, key, db id)
    cdef public object modified_hook       # (db, key): blocked clients, tracking
    cdef public object after_call_hook     # (): after the outermost call's reply (deferred pushes)
    cdef public object tracking_hook       # (client, cmd, argv) after a read-only command, while clients track
    cdef public object before_sleep_hook

    # memory accounting and eviction (see "maxmemory" in core.pxi)
    cdef public long long maxmemory
    cdef public int maxmemory_policy       # EVICT_* in core.pxi
    cdef public int maxmemory_samples
    cdef public int eviction_tenacity
    cdef public int lfu_log_factor
    cdef public int lfu_decay_time
    cdef public bint lfu_mode              # the access word holds LFU data
    cdef public long long lfu_minutes      # LFU clock: minutes, mod 2**16
    cdef public long long mem_startup      # used_memory_startup: a fixed base (eviction.STARTUP_BYTES)
    cdef public long long mem_clients      # client query and output buffers (cron)
    cdef public long long mem_peak
    cdef public long long stat_evicted_keys
    cdef public long long stat_evicted_clients
    cdef public long long stat_eviction_exceeded_us
    cdef public long long stat_oom_rejections
    cdef public set size_pending           # (db, key) of values changed in place, to re-measure
    cdef public bint evicting              # performEvictions left work for the next call
    cdef public long long mem_checked_dirty # dirty when the gate last summed used_memory (-1: sum again)
    cdef public int mem_state              # what that check returned (EVICT_*)
    cdef int ev_next_db                    # random policies: round-robin over databases
    cdef Entry *looked_up                  # the entry lookup_write last found, and
    cdef long long looked_up_cmd           # the command (stat_numcommands) that did: store() counts no second LFU access
    cdef unsigned long long ev_idle[16]    # the eviction pool, best candidate last
    cdef PyObject *ev_key[16]
    cdef int ev_db[16]

    cdef int process_input(self, Client c) except -1
    cdef int protocol_error(self, Client c) except -1
    cdef bint obuf_limit_reached(self, Client c)
    cdef Command lookup_command(self, list argv)
    cpdef int process_command(self, Client c, list argv) except -1
    cdef object cluster_redirect(self, Client c, Command cmd, list argv)
    cdef int reject(self, Client c, Command cmd, str msg) except -1
    cdef int error_reply(self, Client c, str msg) except -1
    cpdef int call(self, Client c, Command cmd, list argv) except -1
    cdef int run_fast(self, int which, Client c, list argv) except -1
    cpdef int propagate(self, int dbid, list argv) except -1
    cdef int flush_feed(self) except -1
    cpdef bint key_expired(self, Database db, object key)
    cpdef bint expire_if_needed(self, Database db, object key) except -1
    cpdef int delete_expired(self, Database db, object key) except -1
    cpdef object lookup_read(self, Database db, object key)
    cpdef object lookup_write(self, Database db, object key)
    cpdef object peek(self, Database db, object key)
    cpdef int store(self, Database db, object key, object value, bint keep_ttl=*) except -1
    cpdef int add_new(self, Database db, object key, object value) except -1
    cpdef bint delete(self, Database db, object key) except -1
    cpdef long long get_expire(self, Database db, object key)
    cpdef int set_expire(self, Database db, object key, long long when) except -1
    cpdef bint remove_expire(self, Database db, object key) except -1
    cpdef int touch(self, Database db, object key) except -1
    cdef int signal_key(self, Database db, object key) except -1
    cdef inline int64_t access_update(self, int64_t meta)
    cdef inline int64_t access_new(self)
    cdef inline int64_t lru_word(self)
    cdef long long used_memory_c(self)
    cdef int drain_pending_c(self) except -1
    cdef int evict_c(self) except -1
    cdef unsigned long long evict_score(self, Database db, Entry *e, object key)
    cdef int pool_populate(self, Database db) except -1
    cdef int evict_key(self, Database db, object key) except -1
    cdef bint rejects_on_oom(self, Client c, Command cmd)
    cpdef int unwatch_all(self, Client c) except -1
    cdef bint watched_key_expired(self, Client c)
