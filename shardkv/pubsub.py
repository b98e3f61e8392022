"""Publish/subscribe inside one worker: who listens to which channel,
pattern and shard channel, delivering messages to them, and keyspace
notifications (notify-keyspace-events), which are messages published by the
server itself.

A subscriber's messages are written into its output buffer as they are
published (RESP2 arrays, RESP3 pushes: the writer's Push type is both); the
`pubsub` class of client-output-buffer-limit bounds what a slow subscriber
may hold, and a subscriber past it is disconnected, as Redis does.

Delivery order follows Valkey: a channel's subscribers first, then the
subscribers of every matching pattern. The commands are in
shardkv/commands/pubsub.py."""

from __future__ import annotations

from shardkv.glob import glob_match
from shardkv.native import _native

PUBSUB = _native.CLIENT_FLAGS["PUBSUB"]
Push = _native.Push

# ---------------------------------------------------------------- keyspace events

# notify-keyspace-events classes, in the order Valkey prints them
CLASS_CHARS = "g$lshzxetdn"
GENERIC, STRING, LIST, SET, HASH, ZSET, EXPIRED, EVICTED, STREAM, MODULE, NEW = (
    1 << i for i in range(len(CLASS_CHARS)))
KEYSPACE = 1 << 16        # K: __keyspace@<db>__:<key> <event>
KEYEVENT = 1 << 17        # E: __keyevent@<db>__:<event> <key>
KEY_MISS = 1 << 18        # m
ALL = GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE
EVENTS_ERROR = "Invalid event class character. Use 'Ag$lshzxeKEtmdn'."

# the class of every event shardkv emits that is not generic
_EVENT_CLASS = {
    "set": STRING, "setrange": STRING, "incrby": STRING, "incrbyfloat": STRING,
    "append": STRING, "setbit": STRING, "pfadd": STRING,
    "lpush": LIST, "rpush": LIST, "lpop": LIST, "rpop": LIST, "linsert": LIST, "lset": LIST,
    "lrem": LIST, "ltrim": LIST, "sortstore": LIST,
    "sadd": SET, "srem": SET, "spop": SET, "sinterstore": SET, "sunionstore": SET,
    "sdiffstore": SET,
    "georadiusstore": ZSET, "geosearchstore": ZSET,
    "expired": EXPIRED, "evicted": EVICTED, "new": NEW, "keymiss": KEY_MISS,
}


def event_class(event):
    cls = _EVENT_CLASS.get(event)
    if cls is not None:
        return cls
    first = event[:1]
    if first == "h" and event not in ("hello",):
        return HASH           # hset hdel hincrby hexpire hpersist hexpired ...
    if first == "z":
        return ZSET           # zadd zincr zrem zpopmin zremrangebyscore zunionstore ...
    if first == "x":
        return STREAM         # xadd xtrim xdel xsetid xgroup-* ...
    return GENERIC            # del expire persist rename_* move_* copy_to restore ...


def parse_events(text):
    """notify-keyspace-events text -> flags (ConfigError text on a bad char)."""
    flags = 0
    for ch in text:
        if ch == "A":
            flags |= ALL
        elif ch == "K":
            flags |= KEYSPACE
        elif ch == "E":
            flags |= KEYEVENT
        elif ch == "m":
            flags |= KEY_MISS
        elif ch in CLASS_CHARS:
            flags |= 1 << CLASS_CHARS.index(ch)
        else:
            raise ValueError(EVENTS_ERROR)
    return flags


def format_events(flags):
    """Valkey's canonical text: A (or the classes), then K, E, m."""
    if flags & ALL == ALL:
        out = "A"
    else:
        out = "".join(ch for i, ch in enumerate(CLASS_CHARS) if flags & (1 << i))
    if flags & KEYSPACE:
        out += "K"
    if flags & KEYEVENT:
        out += "E"
    if flags & KEY_MISS:
        out += "m"
    return out


# ---------------------------------------------------------------- subscriptions

SUBSCRIBE_OF = {"unsubscribe": "subscribe", "punsubscribe": "psubscribe",
                "sunsubscribe": "ssubscribe"}

class Subscriptions:
    """What one client listens to, in subscription order."""
    __slots__ = ("channels", "patterns", "shard_channels")

    def __init__(self):
        self.channels = {}
        self.patterns = {}
        self.shard_channels = {}

    def count(self):
        """The count SUBSCRIBE/PSUBSCRIBE replies carry."""
        return len(self.channels) + len(self.patterns)


class PubSub:
    def __init__(self, server):
        self.server = server
        self.channels = {}         # channel -> {client: None}, in subscription order
        self.patterns = {}         # pattern -> {client: None}
        self.shard_channels = {}
        self.clients = {}          # client -> Subscriptions
        self.event_flags = 0
        self.deferred = []         # pushes for the client whose command is running

    # ------------------------------------------------------------ client state
    def subs(self, c):
        s = self.clients.get(c)
        if s is None:
            s = self.clients[c] = Subscriptions()
        return s

    def _update_flag(self, c, s):
        if s.channels or s.patterns or s.shard_channels:
            c.flags |= PUBSUB
        else:
            c.flags &= ~PUBSUB
            self.clients.pop(c, None)

    def add(self, c, kind, names):
        """(P|S)SUBSCRIBE: the confirmation pushes, one per name."""
        s = self.subs(c)
        mine, table = self._tables(s, kind)
        out = []
        for name in names:
            if name not in mine:
                mine[name] = None
                table.setdefault(name, {})[c] = None
            out.append(Push([kind.encode(), name, self._count(s, kind)]))
        self._update_flag(c, s)
        return out

    def remove(self, c, kind, names):
        """(P|S)UNSUBSCRIBE: one push per name, or per subscription when
        names is empty (a nil name with count 0 when there were none)."""
        s = self.clients.get(c) or Subscriptions()
        mine, table = self._tables(s, SUBSCRIBE_OF[kind])
        if not names:
            names = list(mine)
            if not names:
                return [Push([kind.encode(), None, self._count(s, kind)])]
        out = []
        for name in names:
            if name in mine:
                del mine[name]
                members = table.get(name)
                if members is not None:
                    members.pop(c, None)
                    if not members:
                        del table[name]
            out.append(Push([kind.encode(), name, self._count(s, kind)]))
        self._update_flag(c, s)
        return out

    def _tables(self, s, kind):
        if kind == "subscribe":
            return s.channels, self.channels
        if kind == "psubscribe":
            return s.patterns, self.patterns
        return s.shard_channels, self.shard_channels

    @staticmethod
    def _count(s, kind):
        return len(s.shard_channels) if kind in ("ssubscribe", "sunsubscribe") else s.count()

    def forget(self, c):
        """A client that closed or sent RESET listens to nothing any more."""
        s = self.clients.pop(c, None)
        if s is None:
            return
        for mine, table in ((s.channels, self.channels), (s.patterns, self.patterns),
                            (s.shard_channels, self.shard_channels)):
            for name in mine:
                members = table.get(name)
                if members is not None:
                    members.pop(c, None)
                    if not members:
                        del table[name]
        c.flags &= ~PUBSUB

    # ------------------------------------------------------------ delivery
    def publish(self, channel, message):
        """Delivers to the channel's subscribers, then to the subscribers of
        every matching pattern; returns how many deliveries were made. Each
        message is encoded once per protocol, not once per subscriber."""
        n = 0
        members = self.channels.get(channel)
        if members:
            n += self._fan_out(members, [b"message", channel, message])
        if self.patterns:
            for pattern, members in list(self.patterns.items()):
                if glob_match(pattern, channel):
                    n += self._fan_out(members, [b"pmessage", pattern, channel, message])
        return n

    def spublish(self, channel, message):
        members = self.shard_channels.get(channel)
        return self._fan_out(members, [b"smessage", channel, message]) if members else 0

    def _fan_out(self, members, parts):
        body = b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)
        encoded = {2: b"*%d\r\n" % len(parts) + body, 3: b">%d\r\n" % len(parts) + body}
        limits = self.server.config["client-output-buffer-limit"]["pubsub"]
        me = self.server.current_client
        n = 0
        for c in list(members):
            if c.closed:
                continue
            n += 1
            if c is me:
                # the command's own reply comes first, as in Valkey
                self.deferred.append((c, Push(parts)))
                self.server.after_call_hook = self._flush_deferred
                continue
            c.out.add_encoded(encoded[c.proto])
            self._after_write(c, limits)
        return n

    def deliver(self, c, push):
        """Writes one push (or RESP2 message) to c; 1 if it was delivered."""
        return self._deliver(c, push)

    def _deliver(self, c, push):
        if c.closed:
            return 0
        if c is self.server.current_client:
            # the command's own reply comes first, as in Valkey
            self.deferred.append((c, push))
            self.server.after_call_hook = self._flush_deferred
            return 1
        c.out.add(push)
        self._after_write(c, self.server.config["client-output-buffer-limit"]["pubsub"])
        return 1

    def _after_write(self, c, limits):
        if self._over_limit(c, limits):
            self.server.log_warning(
                "Client id=%d scheduled to be closed ASAP for overcoming of output buffer limits." % c.id)
            self.server.close_client(c)
        else:
            self.server.wake_writer(c)

    def _flush_deferred(self):
        pending, self.deferred = self.deferred, []
        self.server.after_call_hook = None
        for c, push in pending:
            if not c.closed:
                c.out.add(push)
                self.server.wake_writer(c)

    def _over_limit(self, c, limits):
        """client-output-buffer-limit pubsub: hard at once, soft after
        soft-seconds over it in a row."""
        hard, soft, seconds = limits
        used = c.output_pending
        if hard and used >= hard:
            return True
        if soft and used >= soft:
            now = self.server.now_ms
            if not c.obuf_soft_since:
                c.obuf_soft_since = now
            elif now - c.obuf_soft_since > seconds * 1000:
                return True
        else:
            c.obuf_soft_since = 0
        return False

    # ------------------------------------------------------------ keyspace events
    def set_event_flags(self, flags):
        self.event_flags = flags
        enabled = flags & (KEYSPACE | KEYEVENT) and flags & ~(KEYSPACE | KEYEVENT)
        self.server.keyspace_event_hook = self.keyspace_event if enabled else None

    def keyspace_event(self, event, key, dbid):
        """notifyKeyspaceEvent: publishes on __keyspace@<db>__:<key> and
        __keyevent@<db>__:<event> as the classes and K/E ask."""
        flags = self.event_flags
        if not flags & event_class(event):
            return
        ev = event.encode()
        peers = self.server.peers if self.server.topology is not None else None
        if flags & KEYSPACE:
            channel = b"__keyspace@%d__:" % dbid + key
            self.publish(channel, ev)
            if peers is not None:
                peers.forward_event(channel, ev)
        if flags & KEYEVENT:
            channel = b"__keyevent@%d__:" % dbid + ev
            self.publish(channel, key)
            if peers is not None:
                peers.forward_event(channel, key)

    # ------------------------------------------------------------ introspection
    def channel_names(self, table, pattern):
        return [name for name in table if pattern is None or glob_match(pattern, name)]
