# The event loop: one epoll instance, non-blocking sockets through plain
# system calls (no Python socket objects on the hot path), one read per ready
# connection per pass, and replies flushed once per pass for every connection
# that produced output. Timers are a heap of (when, seq, callback) checked
# after every pass; epoll_wait sleeps until the earliest one.
#
# What a connection's bytes mean is not decided here: a LoopHandler (the shard
# server, and later the router) owns each listening socket, makes the
# Connection objects for it and is told when data arrives or a peer goes away.

from libc.errno cimport errno, EAGAIN, EINTR
from posix.unistd cimport read, write, close
from libc.stdint cimport uint32_t
from cpython.exc cimport PyErr_CheckSignals
import heapq as _heapq
import os as _os

cdef extern from "sys/epoll.h":
    ctypedef union epoll_data_t:
        void *ptr
        int fd
        uint32_t u32
        uint64_t u64
    cdef struct epoll_event:
        uint32_t events
        epoll_data_t data
    int epoll_create1(int flags)
    int epoll_ctl(int epfd, int op, int fd, epoll_event *event)
    int epoll_wait(int epfd, epoll_event *events, int maxevents, int timeout) nogil
    enum:
        EPOLLIN
        EPOLLOUT
        EPOLLERR
        EPOLLHUP
        EPOLL_CTL_ADD
        EPOLL_CTL_MOD
        EPOLL_CTL_DEL
        EPOLL_CLOEXEC

cdef extern from "sys/socket.h":
    ctypedef unsigned int socklen_t
    struct sockaddr:
        pass
    struct sockaddr_storage:
        pass
    int accept4(int fd, sockaddr *addr, socklen_t *len, int flags)
    int setsockopt(int fd, int level, int optname, const void *optval, socklen_t optlen)
    enum:
        SOCK_NONBLOCK
        SOCK_CLOEXEC
        SOL_SOCKET
        SO_KEEPALIVE

cdef extern from "netinet/in.h":
    enum:
        IPPROTO_TCP

cdef extern from "netinet/tcp.h":
    enum:
        TCP_NODELAY

cdef extern from "time.h":
    struct timespec:
        long tv_sec
        long tv_nsec
    int clock_gettime(int clk, timespec *ts)
    enum:
        CLOCK_REALTIME
        CLOCK_MONOTONIC

DEF MAX_EVENTS = 1024
DEF READ_SIZE = 16384

cdef inline int64_t mstime():
    cdef timespec ts
    clock_gettime(CLOCK_REALTIME, &ts)
    return <int64_t>ts.tv_sec * 1000 + ts.tv_nsec // 1000000

cdef inline int64_t ustime():
    cdef timespec ts
    clock_gettime(CLOCK_REALTIME, &ts)
    return <int64_t>ts.tv_sec * 1000000 + ts.tv_nsec // 1000

cdef inline int64_t monotonic_us():
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <int64_t>ts.tv_sec * 1000000 + ts.tv_nsec // 1000


def now_ms():
    return mstime()


def now_us():
    return ustime()


cdef class Connection:
    """A socket with its request parser and reply buffer."""

    def __cinit__(self, *args, **kwargs):
        self.fd = -1
        self.parser = RequestParser()
        self.out = ReplyBuffer()

    @property
    def fileno(self):
        return self.fd

    @property
    def output_pending(self):
        return self.out.length - self.out.sent

    @property
    def input_pending(self):
        return self.parser.end - self.parser.start


cdef class LoopHandler:
    """Decides what a listening socket's connections mean."""

    cdef Connection make_connection(self, int fd):
        return Connection()

    cdef int after_accept(self, Connection c) except -1:
        return 0

    cdef int on_data(self, Connection c) except -1:
        return 0

    cdef int on_close(self, Connection c) except -1:
        return 0

    cdef int after_write(self, Connection c) except -1:
        return 0

    cdef int before_sleep(self) except -1:
        return 0


cdef class EventLoop:
    """epoll, connections, timers."""

    def __cinit__(self):
        self.epfd = epoll_create1(EPOLL_CLOEXEC)
        if self.epfd < 0:
            raise OSError(errno, "epoll_create1 failed")
        self.conns = {}
        self.listeners = {}
        self.readers = {}
        self.pending = []
        self.timers = []
        self.timer_seq = 0

    def __dealloc__(self):
        if self.epfd >= 0:
            close(self.epfd)

    def add_listener(self, int fd, LoopHandler handler):
        """Accepts connections on fd (a listening, non-blocking socket)."""
        cdef epoll_event ev
        ev.events = EPOLLIN
        ev.data.fd = fd
        if epoll_ctl(self.epfd, EPOLL_CTL_ADD, fd, &ev) < 0:
            raise OSError(errno, "epoll_ctl failed")
        self.listeners[fd] = handler

    def remove_listener(self, int fd):
        if self.listeners.pop(fd, None) is not None:
            epoll_ctl(self.epfd, EPOLL_CTL_DEL, fd, NULL)

    def add_reader(self, int fd, callback):
        """Calls callback() whenever fd is readable (for rare, slow fds)."""
        cdef epoll_event ev
        ev.events = EPOLLIN
        ev.data.fd = fd
        if epoll_ctl(self.epfd, EPOLL_CTL_ADD, fd, &ev) < 0:
            raise OSError(errno, "epoll_ctl failed")
        self.readers[fd] = callback

    def remove_reader(self, int fd):
        if self.readers.pop(fd, None) is not None:
            epoll_ctl(self.epfd, EPOLL_CTL_DEL, fd, NULL)

    def call_later(self, double delay_ms, callback):
        """Runs callback() once, after delay_ms; returns a handle for cancel()."""
        cdef list handle = [monotonic_us() + <int64_t>(delay_ms * 1000), self.timer_seq, callback]
        self.timer_seq += 1
        _heapq.heappush(self.timers, handle)
        return handle

    def cancel(self, list handle):
        handle[2] = None

    def stop(self):
        self.stopping = True

    cdef int add_connection(self, Connection c, int fd, LoopHandler handler) except -1:
        cdef epoll_event ev
        cdef int one = 1
        c.fd = fd
        c.handler = handler
        c.loop = self
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one))
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one))
        ev.events = EPOLLIN
        ev.data.fd = fd
        if epoll_ctl(self.epfd, EPOLL_CTL_ADD, fd, &ev) < 0:
            raise OSError(errno, "epoll_ctl failed")
        self.conns[fd] = c
        return 0

    cdef int want_write(self, Connection c) except -1:
        """Queues c to be flushed at the end of this loop pass."""
        if not c.pending and c.fd >= 0:
            c.pending = True
            self.pending.append(c)
        return 0

    cdef int set_writable_interest(self, Connection c, bint on) except -1:
        cdef epoll_event ev
        if c.epollout == on or c.fd < 0:
            return 0
        c.epollout = on
        ev.events = EPOLLIN | EPOLLOUT if on else EPOLLIN
        if c.paused_reading:
            ev.events &= ~EPOLLIN
        ev.data.fd = c.fd
        epoll_ctl(self.epfd, EPOLL_CTL_MOD, c.fd, &ev)
        return 0

    cdef int pause_reading(self, Connection c, bint paused) except -1:
        """Stops (or resumes) reading c's socket, e.g. while it is blocked."""
        cdef epoll_event ev
        if c.paused_reading == paused or c.fd < 0:
            return 0
        c.paused_reading = paused
        ev.events = 0 if paused else EPOLLIN
        if c.epollout:
            ev.events |= EPOLLOUT
        ev.data.fd = c.fd
        epoll_ctl(self.epfd, EPOLL_CTL_MOD, c.fd, &ev)
        return 0

    cdef int close_connection(self, Connection c) except -1:
        if c.fd < 0:
            return 0
        cdef int fd = c.fd
        epoll_ctl(self.epfd, EPOLL_CTL_DEL, fd, NULL)
        self.conns.pop(fd, None)
        close(fd)
        c.fd = -1
        c.closed = True
        c.handler.on_close(c)
        return 0

    cdef int flush(self, Connection c) except -1:
        """Writes as much of c's output as the socket takes."""
        cdef ReplyBuffer out = c.out
        cdef ssize_t n
        while out.length > out.sent:
            n = write(c.fd, out.data + out.sent, out.length - out.sent)
            if n < 0:
                if errno == EINTR:
                    continue
                if errno == EAGAIN:
                    self.set_writable_interest(c, True)
                    return 0
                self.close_connection(c)
                return 0
            c.bytes_out += n
            out.consume(n)
        self.set_writable_interest(c, False)
        if c.close_after_reply:
            self.close_connection(c)
        else:
            c.handler.after_write(c)
        return 0

    cdef int read_from(self, Connection c) except -1:
        cdef char *dst = c.parser.reserve(READ_SIZE)
        cdef ssize_t n = read(c.fd, dst, READ_SIZE)
        if n > 0:
            c.parser.commit(n)
            c.bytes_in += n
            c.handler.on_data(c)
            return 0
        if n < 0 and (errno == EAGAIN or errno == EINTR):
            return 0
        self.close_connection(c)
        return 0

    cdef int accept_from(self, int lfd, LoopHandler handler) except -1:
        cdef int fd
        cdef Connection c
        cdef int i
        for i in range(64):   # drain the backlog, a bounded amount per pass
            fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)
            if fd < 0:
                return 0
            c = handler.make_connection(fd)
            if c is None:
                close(fd)
                continue
            self.add_connection(c, fd, handler)
            handler.after_accept(c)
        return 0

    cdef int run_timers(self) except -1:
        cdef int64_t now = monotonic_us()
        cdef list t
        while self.timers and (<list>self.timers[0])[0] <= now:
            t = _heapq.heappop(self.timers)
            cb = t[2]
            if cb is not None:
                t[2] = None
                try:
                    cb()
                except Exception:
                    _log_exception("timer callback failed")
        return 0

    cdef int flush_pending(self) except -1:
        cdef Connection c
        cdef list pend
        while self.pending:
            pend = self.pending
            self.pending = []
            for c in pend:
                c.pending = False
                if c.fd >= 0 and not c.epollout:
                    self.flush(c)
        return 0

    def process_events_once(self, Connection skip=None):
        """One pass that does not wait, for a command that runs long (a
        script): accepts, reads and flushes every connection except `skip`,
        whose input waits for the command to end; runs no timers (Valkey's
        processEventsWhileBlocked)."""
        cdef epoll_event events[MAX_EVENTS]
        cdef int n, i, fd
        cdef uint32_t ev
        cdef Connection c
        n = epoll_wait(self.epfd, events, MAX_EVENTS, 0)
        for i in range(n if n > 0 else 0):
            fd = events[i].data.fd
            ev = events[i].events
            obj = self.conns.get(fd)
            if obj is not None:
                c = <Connection>obj
                if ev & EPOLLOUT:
                    self.flush(c)
                    if c.fd < 0:
                        continue
                if c is not skip and (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) and not c.paused_reading:
                    self.read_from(c)
                continue
            obj = self.listeners.get(fd)
            if obj is not None:
                self.accept_from(fd, <LoopHandler>obj)
        self.flush_pending()

    def run(self, LoopHandler handler=None):
        """Runs until stop() is called."""
        cdef epoll_event events[MAX_EVENTS]
        cdef int n, i, fd, timeout, wait_errno
        cdef uint32_t ev
        cdef Connection c
        cdef int64_t now
        self.stopping = False
        while not self.stopping:
            if handler is not None:
                handler.before_sleep()
            self.flush_pending()
            timeout = 100
            if self.timers:
                now = monotonic_us()
                timeout = <int>(((<list>self.timers[0])[0] - now + 999) // 1000)
                if timeout < 0:
                    timeout = 0
                elif timeout > 100:
                    timeout = 100
            if self.pending:
                timeout = 0
            with nogil:
                n = epoll_wait(self.epfd, events, MAX_EVENTS, timeout)
            wait_errno = errno
            # run Python-level signal handlers (SIGTERM...) even when no
            # Python code would otherwise run between passes
            PyErr_CheckSignals()
            if n < 0:
                if wait_errno == EINTR:
                    self.run_timers()
                    continue
                raise OSError(wait_errno, "epoll_wait failed")
            for i in range(n):
                fd = events[i].data.fd
                ev = events[i].events
                obj = self.conns.get(fd)
                if obj is not None:
                    c = <Connection>obj
                    if ev & EPOLLOUT:
                        self.flush(c)
                        if c.fd < 0:
                            continue
                    if ev & (EPOLLIN | EPOLLERR | EPOLLHUP):
                        if not c.paused_reading:
                            self.read_from(c)
                    continue
                obj = self.listeners.get(fd)
                if obj is not None:
                    self.accept_from(fd, <LoopHandler>obj)
                    continue
                obj = self.readers.get(fd)
                if obj is not None:
                    try:
                        obj()
                    except Exception:
                        _log_exception("reader callback failed")
            self.run_timers()
        if handler is not None:
            handler.before_sleep()
        self.flush_pending()


cdef object _log_exception_impl = None

cdef void _log_exception(str what):
    import logging
    logging.getLogger("shardkv").exception(what)
