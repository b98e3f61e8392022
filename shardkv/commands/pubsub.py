"""Pub/sub: SUBSCRIBE UNSUBSCRIBE PSUBSCRIBE PUNSUBSCRIBE SSUBSCRIBE
SUNSUBSCRIBE PUBLISH SPUBLISH and PUBSUB (CHANNELS NUMSUB NUMPAT
SHARDCHANNELS SHARDNUMSUB HELP), over the worker's shardkv.pubsub.PubSub.

A (un)subscribe command answers one confirmation per channel, which the
handler writes itself (RESP2 arrays, RESP3 pushes). In RESP2 a client with
subscriptions may only run the (P|S)(UN)SUBSCRIBE, PING, QUIT and RESET
commands: the gate enforces that from the pubsub_context flag declared here."""

from shardkv import errors
from shardkv.commands.common import NO_REPLY
from shardkv.commands.keys import help_reply
from shardkv.commands.table import command, container
from shardkv.errors import ReplyError
from shardkv.native import _native

GROUP = "pubsub"
ROUTED = _native.CLIENT_FLAGS["ROUTED"]
SUBSCRIBE_FLAGS = "pubsub noscript loading stale"


def _confirm(c, pushes):
    for p in pushes:
        c.out.add(p)
    return NO_REPLY


def _pubsub(c):
    return c.server.pubsub


@command("subscribe", -2, flags=SUBSCRIBE_FLAGS, acl="pubsub slow", group=GROUP, since="2.0.0",
         internal="pubsub_context", complexity="O(N) where N is the number of channels to subscribe to.",
         summary="Listens for messages published to channels.")
def subscribe(c, argv):
    if c.flag(_native.CLIENT_FLAGS["MULTI"]):
        raise ReplyError("ERR Command 'subscribe' not allowed inside a transaction")
    return _confirm(c, _pubsub(c).add(c, "subscribe", argv[1:]))


@command("unsubscribe", -1, flags=SUBSCRIBE_FLAGS, acl="pubsub slow", group=GROUP, since="2.0.0",
         internal="pubsub_context", complexity="O(N) where N is the number of channels to unsubscribe.",
         summary="Stops listening to channels (all of them without arguments).")
def unsubscribe(c, argv):
    return _confirm(c, _pubsub(c).remove(c, "unsubscribe", argv[1:]))


@command("psubscribe", -2, flags=SUBSCRIBE_FLAGS, acl="pubsub slow", group=GROUP, since="2.0.0",
         internal="pubsub_context", complexity="O(N) where N is the number of patterns to subscribe to.",
         summary="Listens for messages published to channels that match glob-style patterns.")
def psubscribe(c, argv):
    if c.flag(_native.CLIENT_FLAGS["MULTI"]):
        raise ReplyError("ERR Command 'psubscribe' not allowed inside a transaction")
    return _confirm(c, _pubsub(c).add(c, "psubscribe", argv[1:]))


@command("punsubscribe", -1, flags=SUBSCRIBE_FLAGS, acl="pubsub slow", group=GROUP, since="2.0.0",
         internal="pubsub_context",
         complexity="O(N) where N is the number of patterns to unsubscribe.",
         summary="Stops listening to patterns (all of them without arguments).")
def punsubscribe(c, argv):
    return _confirm(c, _pubsub(c).remove(c, "punsubscribe", argv[1:]))


@command("ssubscribe", -2, flags=SUBSCRIBE_FLAGS, acl="pubsub slow", keys=(1, -1, 1),
         specs=["not_key: index 1, range -1 1 0"], group=GROUP, since="7.0.0",
         internal="pubsub_context",
         complexity="O(N) where N is the number of shard channels to subscribe to.",
         summary="Listens for messages published to shard channels.")
def ssubscribe(c, argv):
    if c.flag(_native.CLIENT_FLAGS["MULTI"]):
        raise ReplyError("ERR Command 'ssubscribe' not allowed inside a transaction")
    return _confirm(c, _pubsub(c).add(c, "ssubscribe", argv[1:]))


@command("sunsubscribe", -1, flags=SUBSCRIBE_FLAGS, acl="pubsub slow", keys=(1, -1, 1),
         specs=["not_key: index 1, range -1 1 0"], group=GROUP, since="7.0.0",
         internal="pubsub_context",
         complexity="O(N) where N is the number of shard channels to unsubscribe.",
         summary="Stops listening to shard channels (all of them without arguments).")
def sunsubscribe(c, argv):
    return _confirm(c, _pubsub(c).remove(c, "sunsubscribe", argv[1:]))


@command("publish", 3, flags="pubsub loading stale fast", acl="pubsub fast", group=GROUP,
         since="2.0.0",
         complexity=("O(N+M) where N is the number of clients subscribed to the receiving channel "
                     "and M is the total number of subscribed patterns (by any client)."),
         summary="Posts a message to a channel; returns how many subscribers received it.")
def publish(c, argv):
    n = _pubsub(c).publish(argv[1], argv[2])
    s = c.server
    if s.topology is None or c.flag(ROUTED):
        # a standalone server, or the router / a peer worker asking this
        # worker to deliver to its own subscribers
        return n
    n = s.peers.publish(c, argv[1], argv[2], n)
    return NO_REPLY if n is None else n


@command("spublish", 3, flags="pubsub loading stale fast", acl="pubsub fast", keys=(1, 1, 1),
         specs=["not_key: index 1, range 0 1 0"], group=GROUP, since="7.0.0",
         complexity="O(N) where N is the number of clients subscribed to the receiving shard channel.",
         summary="Posts a message to a shard channel; returns how many subscribers received it.")
def spublish(c, argv):
    return _pubsub(c).spublish(argv[1], argv[2])


container("pubsub", -2, acl="slow", group=GROUP, since="2.8.0",
          summary="A container for the pub/sub introspection commands.")

PUBSUB_SUB = dict(flags="pubsub loading stale", acl="pubsub slow", group=GROUP)


@command("pubsub|channels", -2, since="2.8.0",
         complexity="O(N) where N is the number of active channels, and assuming constant time "
                    "pattern matching (relatively short channels and patterns)",
         summary="Lists the channels that have subscribers, optionally those matching a pattern.",
         **PUBSUB_SUB)
def pubsub_channels(c, argv):
    if len(argv) > 3:
        raise ReplyError(errors.subcommand_syntax(argv))
    ps = _pubsub(c)
    return ps.channel_names(ps.channels, argv[2] if len(argv) == 3 else None)


@command("pubsub|shardchannels", -2, since="7.0.0",
         complexity="O(N) where N is the number of active shard channels, and assuming constant "
                    "time pattern matching (relatively short shard channels).",
         summary="Lists the shard channels that have subscribers, optionally those matching a pattern.",
         **PUBSUB_SUB)
def pubsub_shardchannels(c, argv):
    if len(argv) > 3:
        raise ReplyError(errors.subcommand_syntax(argv))
    ps = _pubsub(c)
    return ps.channel_names(ps.shard_channels, argv[2] if len(argv) == 3 else None)


@command("pubsub|numsub", -2, since="2.8.0",
         complexity="O(N) for the NUMSUB subcommand, where N is the number of requested channels",
         summary="Counts the subscribers of channels.", **PUBSUB_SUB)
def pubsub_numsub(c, argv):
    return _counts(_pubsub(c).channels, argv[2:])


@command("pubsub|shardnumsub", -2, since="7.0.0",
         complexity="O(N) for the SHARDNUMSUB subcommand, where N is the number of requested shard channels",
         summary="Counts the subscribers of shard channels.", **PUBSUB_SUB)
def pubsub_shardnumsub(c, argv):
    return _counts(_pubsub(c).shard_channels, argv[2:])


def _counts(table, names):
    """name, count, name, count ...: a flat array in RESP3 too, as Valkey sends it."""
    out = []
    for name in names:
        out += [name, len(table.get(name, ()))]
    return out


@command("pubsub|numpat", 2, since="2.8.0", complexity="O(1)",
         summary="Counts the patterns that clients are subscribed to.", **PUBSUB_SUB)
def pubsub_numpat(c, argv):
    return len(_pubsub(c).patterns)


@command("pubsub|help", 2, flags="loading stale", acl="slow", group=GROUP, since="6.2.0",
         complexity="O(1)", summary="Describes the PUBSUB subcommands.")
def pubsub_help(c, argv):
    return help_reply("PUBSUB", [
        "CHANNELS [<pattern>]",
        "    Return the currently active channels matching a <pattern> (default: '*').",
        "NUMPAT",
        "    Return number of subscriptions to patterns.",
        "NUMSUB [<channel> ...]",
        "    Return the number of subscribers for the specified channels, excluding",
        "    pattern subscriptions(default: no channels).",
        "SHARDCHANNELS [<pattern>]",
        "    Return the currently active shard level channels matching a <pattern> (default: '*').",
        "SHARDNUMSUB [<shardchannel> ...]",
        "    Return the number of subscribers for the specified shard level channel(s)",
    ])
