"""Clients blocked on keys (BLPOP, BZPOPMIN, XREAD BLOCK...), after Redis's
blocked.c: a blocked client stops having its input read, waits in arrival
order on each of its keys, and is served when a command (or a whole
MULTI/EXEC) signals one of them ready, times out, is unblocked by CLIENT
UNBLOCK, or disconnects. Ready keys are handled before the loop sleeps, so
a push inside a transaction wakes waiters only once the transaction is done.

Data types use it through Blocker.block(...) from their handlers; their
writes reach it through ShardCore.touch -> modified_hook."""

from __future__ import annotations

from collections import OrderedDict, deque

from shardkv.native import _native

BLOCKED = _native.CLIENT_FLAGS["BLOCKED"]
ReplyError = _native.ReplyError
NULL_ARRAY = _native.NULL_ARRAY


class Waiter:
    __slots__ = ("client", "db", "keys", "on_ready", "on_timeout", "timer", "done")

    def __init__(self, client, db, keys, on_ready, on_timeout):
        self.client = client
        self.db = db
        self.keys = keys
        self.on_ready = on_ready
        self.on_timeout = on_timeout
        self.timer = None
        self.done = False


class Blocker:
    def __init__(self, server):
        self.server = server
        self.waiting: dict[tuple[int, bytes], deque[Waiter]] = {}
        self.ready: OrderedDict[tuple[int, bytes], None] = OrderedDict()
        self.by_client: dict[int, Waiter] = {}

    # ------------------------------------------------------------ blocking
    def block(self, c, keys, timeout_ms, on_ready, on_timeout):
        """Blocks client c on keys of its current database.

        on_ready(key) is called when key may have something for c: it serves
        c (writes its reply, propagates) and returns True, or returns False to
        keep waiting. on_timeout() writes the timeout reply. timeout_ms 0
        waits forever."""
        w = Waiter(c, c.db, list(dict.fromkeys(keys)), on_ready, on_timeout)
        for key in w.keys:
            self.waiting.setdefault((c.db.id, key), deque()).append(w)
        self.by_client[c.id] = w
        c.flags |= BLOCKED
        c.blocked = w
        if timeout_ms > 0:
            w.timer = self.server.loop.call_later(timeout_ms, lambda: self._timeout(w))
        self.server.modified_hook = self.server.key_modified
        return _native.NO_REPLY

    def key_modified(self, db, key):
        if (db.id, key) in self.waiting:
            self.ready[(db.id, key)] = None

    # ------------------------------------------------------------ serving
    def serve_ready(self):
        """Serves the clients waiting on keys signalled ready, in order,
        until no key is ready (serving one may make another ready)."""
        s = self.server
        while self.ready:
            (dbid, key), _ = self.ready.popitem(last=False)
            queue = self.waiting.get((dbid, key))
            if not queue:
                continue
            for w in list(queue):
                if w.done:
                    continue
                c = w.client
                s.now_ms = _native.now_ms()
                prev_db = c.db
                c.db = w.db
                served = False
                try:
                    served = self._run_ready(w, key)
                finally:
                    if not served:
                        c.db = prev_db
                s.flush_propagation()
                if served:
                    self._finish(w)
                # every waiter's handler checks its key, so a key that went
                # away still reaches them all (XREADGROUP's NOGROUP error)

    def _run_ready(self, w, key):
        """w.on_ready(key); an error it raises is the client's reply (as
        when the re-run command fails), never the loop's problem."""
        c = w.client
        try:
            return w.on_ready(key)
        except ReplyError as e:
            c.out.add_error(e.message)
        except Exception as e:
            import logging
            logging.getLogger("shardkv").error("serving a blocked client failed", exc_info=e)
            c.out.add_error("ERR internal error while serving a blocked client: %s" % type(e).__name__)
        return True

    def databases_swapped(self, a, b):
        """SWAPDB: keys of a or b that clients wait on may hold values now
        (Valkey's scanDatabaseForReadyKeys)."""
        for dbid, key in list(self.waiting):
            db = a if dbid == a.id else b if dbid == b.id else None
            if db is not None and self.server.peek(db, key) is not None:
                self.ready[(dbid, key)] = None

    def _timeout(self, w):
        if w.done:
            return
        w.timer = None
        w.on_timeout()
        self._finish(w)

    def unblock(self, c, with_error):
        """CLIENT UNBLOCK: as a timeout, or with an UNBLOCKED error."""
        w = self.by_client.get(c.id)
        if w is None or w.done:
            return False
        if with_error:
            c.out.add_error("UNBLOCKED client unblocked via CLIENT UNBLOCK")
        else:
            w.on_timeout()
        self._finish(w)
        return True

    def release(self, c):
        """Ends c's wait after its reply was written by its own machinery
        (WAIT, when enough replicas acknowledged)."""
        w = self.by_client.get(c.id)
        if w is not None and not w.done:
            self._finish(w)

    def forget(self, c):
        """The client went away: it waits no more."""
        w = self.by_client.get(c.id)
        if w is not None:
            self._finish(w, resume=False)

    def _finish(self, w, resume=True):
        w.done = True
        c = w.client
        if w.timer is not None:
            self.server.loop.cancel(w.timer)
            w.timer = None
        for key in w.keys:
            q = self.waiting.get((w.db.id, key))
            if q is not None:
                try:
                    q.remove(w)
                except ValueError:
                    pass
                if not q:
                    del self.waiting[(w.db.id, key)]
        self.by_client.pop(c.id, None)
        c.flags &= ~BLOCKED
        c.blocked = None
        if resume:
            self.server.wake_writer(c)
            self.server.resume_client(c)

    def blocked_keys(self):
        return len(self.waiting)


def pop_or_block(c, keys, timeout_ms, value_type, pop_first):
    """The blocking pops (BLPOP BRPOP BLMPOP BZPOPMIN BZPOPMAX BZMPOP): pops
    now if a key holds something, else blocks until one of them does (a
    null array inside MULTI/EXEC or a script, or at the timeout).
    pop_first() -> (reply, argv to propagate), or None when nothing is there
    (it may raise WRONGTYPE for an earlier key)."""
    r = pop_first()
    if r is not None:
        c.rewrite = [r[1]]
        return r[0]
    if c.flag(_native.CLIENT_FLAGS["EXECUTING"]):
        return NULL_ARRAY
    s = c.server

    def on_ready(key):
        if type(s.peek(c.db, key)) is not value_type:
            return False
        r = pop_first()
        if r is None:
            return False
        c.out.add(r[0])
        s.propagate(c.db.id, r[1])
        return True

    def on_timeout():
        c.out.add(NULL_ARRAY)

    return s.blocking.block(c, keys, timeout_ms, on_ready, on_timeout)
