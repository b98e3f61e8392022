"""SLOWLOG and LATENCY: what the server remembers about slow commands.

call() (core.pxi) times every command; when one takes at least the smaller of
slowlog-log-slower-than and latency-monitor-threshold, it calls
Server.record_slow_command, which feeds the slow log and the latency monitor.
Per-command latency histograms are counted in core.pxi for every call."""

import time

from shardkv import errors
from shardkv.commands.common import OK, int_arg
from shardkv.commands.keys import help_reply
from shardkv.commands.table import REGISTRY, command, container
from shardkv.errors import ReplyError
from shardkv.native import _native

ADMIN = dict(flags="admin loading stale", acl="admin slow dangerous", group="server")
LATENCY_ADMIN = dict(flags="admin noscript loading stale", acl="admin slow dangerous", group="server")
HISTORY_LEN = 160

container("slowlog", -2, acl="slow", group="server", since="2.2.12",
          summary="A container for slow log commands.")


@command("slowlog|get", -2, tips="request_policy:all_nodes nondeterministic_output", since="2.2.12",
         complexity="O(N) where N is the number of entries returned",
         summary="Returns the most recent slow log entries.", **ADMIN)
def slowlog_get(c, argv):
    if len(argv) > 3:
        raise ReplyError(errors.subcommand_syntax(argv))
    count = 10
    if len(argv) == 3:
        count = int_arg(argv[2], errors.SLOWLOG_COUNT)
        if count < -1:
            raise ReplyError(errors.SLOWLOG_COUNT)
    entries = list(c.server.slowlog.entries)
    if count != -1:
        entries = entries[:count]
    return entries


@command("slowlog|len", 2, tips="request_policy:all_nodes response_policy:agg_sum nondeterministic_output",
         since="2.2.12", summary="Counts the entries of the slow log.", **ADMIN)
def slowlog_len(c, argv):
    return len(c.server.slowlog.entries)


@command("slowlog|reset", 2, tips="request_policy:all_nodes response_policy:all_succeeded", since="2.2.12",
         complexity="O(N) where N is the number of entries in the slowlog",
         summary="Empties the slow log.", **ADMIN)
def slowlog_reset(c, argv):
    c.server.slowlog.entries.clear()
    return OK


@command("slowlog|help", 2, flags="loading stale", acl="slow", group="server", since="6.2.0",
         summary="Describes the SLOWLOG subcommands.")
def slowlog_help(c, argv):
    return help_reply("SLOWLOG", [
        "GET [<count>]",
        "    Return the newest <count> entries (10 by default, -1 for all). Each entry is:",
        "    id, Unix time, duration in microseconds, arguments, client address, client name.",
        "LEN", "    Return the number of entries.",
        "RESET", "    Empty the slow log.",
    ])


# ---------------------------------------------------------------- latency monitor

class LatencyMonitor:
    """Latency spikes by event class ("command", "fast-command", ...): the
    newest HISTORY_LEN samples of each, one per second at most (the worst)."""

    def __init__(self):
        self.events = {}

    def add(self, event, latency_ms):
        now = int(time.time())
        history = self.events.setdefault(event, [])
        if history and history[-1][0] == now:
            history[-1][1] = max(history[-1][1], latency_ms)
        else:
            history.append([now, latency_ms])
            del history[:-HISTORY_LEN]
        self.max = max(getattr(self, "max", 0), latency_ms)


def record_slow_command(server, client, cmd, argv, duration_us):
    cfg = server.config
    slower_than = cfg["slowlog-log-slower-than"]
    if slower_than >= 0 and duration_us >= slower_than:
        server.slowlog.add(client, argv, duration_us, cfg["slowlog-max-len"])
    threshold = cfg["latency-monitor-threshold"]
    if threshold > 0 and duration_us // 1000 >= threshold:
        event = "fast-command" if cmd.flags & (1 << 13) else "command"
        server.latency.add(event, duration_us // 1000)


container("latency", -2, acl="slow", group="server", since="2.8.13",
          summary="A container for latency monitor commands.")


@command("latency|latest", 2, tips="nondeterministic_output request_policy:all_nodes response_policy:special",
         since="2.8.13", summary="Returns the newest sample of every event class.", **LATENCY_ADMIN)
def latency_latest(c, argv):
    out = []
    for event, history in c.server.latency.events.items():
        if history:
            out.append([event.encode(), history[-1][0], history[-1][1], max(h[1] for h in history)])
    return out


@command("latency|history", 3, tips="nondeterministic_output request_policy:all_nodes response_policy:special",
         since="2.8.13", summary="Returns the samples of one event class.", **LATENCY_ADMIN)
def latency_history(c, argv):
    history = c.server.latency.events.get(argv[2].decode("latin-1"), [])
    return [[t, ms] for t, ms in history]


@command("latency|reset", -2, tips="request_policy:all_nodes response_policy:agg_sum", since="2.8.13",
         summary="Forgets the samples of some or all event classes.", **LATENCY_ADMIN)
def latency_reset(c, argv):
    events = c.server.latency.events
    if len(argv) == 2:
        n = len(events)
        events.clear()
        return n
    n = 0
    for name in argv[2:]:
        if events.pop(name.decode("latin-1"), None) is not None:
            n += 1
    return n


@command("latency|graph", 3, tips="nondeterministic_output request_policy:all_nodes response_policy:special",
         since="2.8.13", summary="Draws the samples of one event class as text.", **LATENCY_ADMIN)
def latency_graph(c, argv):
    event = argv[2].decode("latin-1")
    history = c.server.latency.events.get(event)
    if not history:
        raise ReplyError(f"ERR No samples available for event '{event}'")
    top = max(ms for _, ms in history) or 1
    now = int(time.time())
    lines = [f"{event} - high {top} ms, low {min(ms for _, ms in history)} ms (all time high {top} ms)",
             "-" * 80]
    for t, ms in history[-60:]:
        bar = "#" * max(1, round(ms * 50 / top))
        lines.append(f"{now - t:>6}s ago {ms:>8} ms {bar}")
    return _native.Verbatim(("\n".join(lines) + "\n").encode())


@command("latency|doctor", 2, tips="nondeterministic_output request_policy:all_nodes response_policy:special",
         since="2.8.13", summary="Describes the recorded latency in words.", **LATENCY_ADMIN)
def latency_doctor(c, argv):
    s = c.server
    if s.config["latency-monitor-threshold"] == 0:
        text = ("The latency monitor is off in this shardkv server. Turn it on with "
                "\"CONFIG SET latency-monitor-threshold <milliseconds>\".\n")
    elif not s.latency.events:
        text = "No latency spike has been recorded since the server started.\n"
    else:
        parts = ["Latency spikes recorded:\n"]
        for event, history in s.latency.events.items():
            worst = max(ms for _, ms in history)
            avg = sum(ms for _, ms in history) / len(history)
            parts.append(f"- {event}: {len(history)} samples, worst {worst} ms, average {avg:.0f} ms.\n")
        parts.append("Slow commands are listed by SLOWLOG GET; a command that scans a big "
                     "collection or the whole keyspace (KEYS, SMEMBERS of a huge set...) "
                     "is the usual cause.\n")
        text = "".join(parts)
    return _native.Verbatim(text.encode())


def _histogram(cmd):
    """Cumulative counts at power-of-two bucket boundaries in microseconds,
    listing only boundaries where the count grows (as Redis does)."""
    buckets = cmd.latency_histogram()
    out = {}
    total = 0
    for k, n in enumerate(buckets):
        if n:
            total += n
            out[(1024 << k) // 1000] = total
    return {b"calls": cmd.calls, b"histogram_usec": out}


def _all_compiled(server):
    seen = {}
    for cmd in server.commands.values():
        seen[cmd.name] = cmd
        for sub in (cmd.subcommands or {}).values():
            seen[sub.name] = sub
    return seen


@command("latency|histogram", -2, tips="nondeterministic_output request_policy:all_nodes response_policy:special",
         since="7.0.0", complexity="O(N) where N is the number of commands with latency information being retrieved.",
         summary="Returns per-command latency histograms.", **LATENCY_ADMIN)
def latency_histogram(c, argv):
    compiled = _all_compiled(c.server)
    if len(argv) == 2:
        names = sorted(compiled)
    else:
        names = []
        for a in argv[2:]:
            name = a.decode("latin-1").lower()
            if name in compiled and name not in names:
                names.append(name)
    out = {}
    for name in names:
        cmd = compiled[name]
        if cmd.calls:
            out[name.encode()] = _histogram(cmd)
    return out


@command("latency|help", 2, flags="loading stale", acl="slow", group="server", since="2.8.13",
         summary="Describes the LATENCY subcommands.")
def latency_help(c, argv):
    return help_reply("LATENCY", [
        "DOCTOR", "    Describe the recorded latency in words.",
        "GRAPH <event>", "    Draw the samples of <event> as text.",
        "HISTORY <event>", "    Return the samples of <event>: Unix time and milliseconds.",
        "LATEST", "    Return the newest sample of every event.",
        "RESET [<event> ...]", "    Forget the samples of the given events (all by default).",
        "HISTOGRAM [<command> ...]", "    Return per-command latency histograms (all commands by default).",
    ])


__all__ = ["REGISTRY", "record_slow_command", "LatencyMonitor"]
