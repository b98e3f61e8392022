"""Client-side caching: CLIENT TRACKING's bookkeeping in one worker.

Default mode remembers, for each key a tracking client read, which clients
may cache it; the first change of the key sends them one invalidation and
forgets them (they read it again to track it again). BCAST mode needs no
reads: every change of a key under one of the client's prefixes is sent,
gathered per client and sent before the loop sleeps. OPTIN/OPTOUT decide
per command (after CLIENT CACHING yes/no) whether reads are remembered;
NOLOOP leaves out the changes the client made itself.

An invalidation is a RESP3 push `invalidate [keys]` (null for a flush), or,
for a client that redirects, a message on `__redis__:invalidate` sent to the
redirect client (which in RESP2 subscribed to that channel). As with other
pushes, the client whose command made the change gets it after its reply."""

from __future__ import annotations

from shardkv.errors import ReplyError
from shardkv.native import _native

Push = _native.Push
PUBSUB = _native.CLIENT_FLAGS["PUBSUB"]
INVALIDATE_CHANNEL = b"__redis__:invalidate"


class State:
    """One tracking client's options."""
    __slots__ = ("redirect", "bcast", "prefixes", "optin", "optout", "noloop", "caching",
                 "caching_cmd", "broken")

    def __init__(self):
        self.redirect = 0
        self.bcast = False
        self.prefixes = []
        self.optin = self.optout = self.noloop = False
        self.caching = None        # True/False after CLIENT CACHING yes/no, for the next command
        self.caching_cmd = -1      # commands_processed when CLIENT CACHING ran
        self.broken = False        # the redirect client went away


def _overlap(p, which, q):
    return (f"ERR Prefix '{p.decode('latin-1')}' overlaps with {which} prefix "
            f"'{q.decode('latin-1')}'. Prefixes for a single client must not overlap.")


class Tracking:
    def __init__(self, server):
        self.server = server
        self.clients = {}          # client -> State
        self.table = {}            # key -> {client id: None}, default mode
        self.prefixes = {}         # prefix -> {client: None}, BCAST mode
        self.bcast_pending = {}    # client -> [keys], sent before the loop sleeps

    # ------------------------------------------------------------ options
    def state(self, c):
        return self.clients.get(c)

    def enable(self, c, redirect, bcast, prefixes, optin, optout, noloop):
        st = self.clients.get(c)
        if st is not None and st.bcast != bcast:
            raise ReplyError("ERR You can't switch BCAST mode on/off before disabling tracking for "
                             "this client, and then re-enabling it with a different mode.")
        if prefixes and not bcast:
            raise ReplyError("ERR PREFIX option requires BCAST mode to be enabled")
        if optin and optout:
            raise ReplyError("ERR You can't specify both OPTIN mode and OPTOUT mode")
        if (optin or optout) and bcast:
            raise ReplyError("ERR OPTIN and OPTOUT are not compatible with BCAST")
        if st is not None and ((optin and st.optout) or (optout and st.optin)):
            raise ReplyError("ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for "
                             "this client, and then re-enabling it with a different mode.")
        if redirect and redirect not in self.server.clients:
            raise ReplyError("ERR The client ID you want redirect to does not exist")
        mine = st.prefixes if st is not None else []
        for i, p in enumerate(prefixes):
            for q in mine:
                if p != q and (p.startswith(q) or q.startswith(p)):
                    raise ReplyError(_overlap(p, "an existing", q))
            for q in prefixes[i + 1:]:
                if p.startswith(q) or q.startswith(p):
                    raise ReplyError(_overlap(p, "another provided", q))
        if st is None:
            st = self.clients[c] = State()
            self.server.modified_hook = self.server.key_modified
            self.server.tracking_hook = self.after_read
        st.redirect = redirect
        st.bcast = bcast
        st.optin, st.optout, st.noloop = optin, optout, noloop
        if bcast:
            for p in prefixes or [b""]:
                if p not in st.prefixes:
                    st.prefixes.append(p)
                    self.prefixes.setdefault(p, {})[c] = None

    def disable(self, c):
        st = self.clients.pop(c, None)
        if st is None:
            return
        if not self.clients:
            self.server.tracking_hook = None
        for p in st.prefixes:
            members = self.prefixes.get(p)
            if members is not None:
                members.pop(c, None)
                if not members:
                    del self.prefixes[p]
        self.bcast_pending.pop(c, None)

    def forget(self, c):
        """A client closed: it tracks nothing, and clients redirecting to it
        are told their redirect broke (once, as Valkey does)."""
        self.disable(c)
        for other, st in self.clients.items():
            if st.redirect == c.id and not st.broken:
                st.broken = True
                if other.proto == 3:
                    other.out.add(Push([b"tracking-redir-broken", c.id]))
                    self.server.wake_writer(other)

    # ------------------------------------------------------------ reads
    def after_read(self, c, cmd, argv):
        """The core's tracking_hook: after a read-only command."""
        if c in self.clients:
            decl = cmd.meta
            try:
                keys = [argv[i] for i in decl.key_indexes(argv)]
            except Exception:
                return
            if keys:
                self.remember(c, keys)

    def remember(self, c, keys):
        """After a read-only command of a tracking client (default mode)."""
        st = self.clients.get(c)
        if st is None or st.bcast:
            return
        if st.optin or st.optout:
            fresh = st.caching_cmd == c.commands_processed - 1
            caching = st.caching if fresh else None
            if st.optin and caching is not True:
                return
            if st.optout and caching is False:
                return
        for key in keys:
            self.table.setdefault(key, {})[c.id] = None

    # ------------------------------------------------------------ writes
    def key_modified(self, key):
        members = self.table.pop(key, None)
        if members:
            me = self.server.current_client
            for cid in members:
                c = self.server.clients.get(cid)
                if c is None or c.closed:
                    continue
                st = self.clients.get(c)
                if st is None or (st.noloop and c is me):
                    continue
                self._send(c, st, [key])
        if self.prefixes:
            me = self.server.current_client
            for p, clients in self.prefixes.items():
                if key.startswith(p):
                    for c in clients:
                        st = self.clients[c]
                        if st.noloop and c is me:
                            continue
                        self.bcast_pending.setdefault(c, []).append(key)

    def flushed(self):
        """FLUSHALL/FLUSHDB: every tracking client forgets everything."""
        self.table.clear()
        for c, st in list(self.clients.items()):
            self._send(c, st, None)

    def before_sleep(self):
        pending, self.bcast_pending = self.bcast_pending, {}
        for c, keys in pending.items():
            st = self.clients.get(c)
            if st is not None and not c.closed:
                self._send(c, st, list(dict.fromkeys(keys)))

    def _send(self, c, st, keys):
        target = c
        if st.redirect:
            target = self.server.clients.get(st.redirect)
            if target is None or target.closed:
                return
        if target.proto == 3:
            push = Push([b"invalidate", keys])
        elif st.redirect and target.flags & PUBSUB:
            push = Push([b"message", INVALIDATE_CHANNEL, keys])
        else:
            return      # RESP2 without a subscribed redirect: nowhere to send it
        self.server.pubsub.deliver(target, push)

    # ------------------------------------------------------------ introspection
    def info(self, c):
        st = self.clients.get(c)
        if st is None:
            return {b"flags": _native.RespSet([b"off"]), b"redirect": -1, b"prefixes": []}
        flags = [b"on"]
        if st.bcast:
            flags.append(b"bcast")
        if st.optin:
            flags.append(b"optin")
        if st.optout:
            flags.append(b"optout")
        if st.caching_cmd == c.commands_processed - 1 and st.caching is not None:
            flags.append(b"caching-yes" if st.caching else b"caching-no")
        if st.noloop:
            flags.append(b"noloop")
        if st.broken:
            flags.append(b"broken_redirect")
        return {b"flags": _native.RespSet(flags), b"redirect": st.redirect,
                b"prefixes": sorted(st.prefixes)}
