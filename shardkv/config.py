"""The configuration table: every directive shardkv understands, its type,
default and limits, whether CONFIG SET may change it, and what to do when it
changes. Config files (redis.conf syntax), command-line --directive flags,
CONFIG GET/SET and INFO all read this one table."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from shardkv.glob import glob_match

MEMORY_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1024, "m": 1000**2, "mb": 1024**2,
                "g": 1000**3, "gb": 1024**3}


class ConfigError(ValueError):
    """A value a directive does not accept; the text is Redis's reason."""


def parse_memory(text: str) -> int:
    t = text.strip().lower()
    num = t.rstrip("kmgb")
    unit = t[len(num):]
    if unit not in MEMORY_UNITS or not num or not num.isdigit() or int(num) >= 2**63:
        raise ConfigError("argument must be a memory value")
    return int(num) * MEMORY_UNITS[unit]


@dataclass
class Directive:
    name: str
    kind: str                 # bool int octal memory enum string save obuf events
    default: object
    mutable: bool = True
    lo: int = None
    hi: int = None
    choices: tuple = ()
    aliases: tuple = ()
    sensitive: bool = False

    def parse(self, text: str):
        k = self.kind
        if k == "bool":
            t = text.lower()
            if t not in ("yes", "no"):
                raise ConfigError("argument must be 'yes' or 'no'")
            return t == "yes"
        if k == "octal":
            try:
                v = int(text, 8)
            except ValueError:
                raise ConfigError("argument couldn't be parsed into an integer") from None
            if not self.lo <= v <= self.hi:
                raise ConfigError(f"argument must be between {self.lo:o} and {self.hi:o} inclusive")
            return v
        if k == "memorypct":
            # maxmemory-clients: bytes, or a percentage of maxmemory (kept negative)
            t = text.strip()
            if t.endswith("%"):
                if not t[:-1].isdigit():
                    raise ConfigError("argument must be a memory or percent value")
                v = -int(t[:-1])
                if v < self.lo:
                    raise ConfigError("percentage argument must be less or equal to 100")
                return v
            try:
                return parse_memory(t)
            except ConfigError:
                raise ConfigError("argument must be a memory or percent value") from None
        if k in ("int", "memory"):
            if k == "memory":
                try:
                    v = parse_memory(text)
                except ConfigError:
                    raise
            else:
                try:
                    if not text or text.strip() != text or "_" in text:
                        raise ValueError
                    v = int(text)
                    if not -(2**63) <= v < 2**63:
                        raise ValueError
                except ValueError:
                    raise ConfigError("argument couldn't be parsed into an integer") from None
            if (self.lo is not None and v < self.lo) or (self.hi is not None and v > self.hi):
                raise ConfigError(f"argument must be between {self.lo} and {self.hi} inclusive")
            return v
        if k == "enum":
            t = text.lower()
            if t not in self.choices:
                raise ConfigError("argument(s) must be one of the following: " + ", ".join(self.choices))
            return t
        if k == "save":
            parts = text.split()
            if len(parts) % 2:
                raise ConfigError("Invalid save parameters")
            rules = []
            for i in range(0, len(parts), 2):
                try:
                    secs, changes = int(parts[i]), int(parts[i + 1])
                except ValueError:
                    raise ConfigError("Invalid save parameters") from None
                if secs < 1 or changes < 0:
                    raise ConfigError("Invalid save parameters")
                rules.append((secs, changes))
            return rules
        if k == "obuf":
            return parse_obuf_limits(text, None)
        if k == "events":
            from shardkv.pubsub import parse_events
            try:
                return parse_events(text)
            except ValueError as e:
                raise ConfigError(str(e)) from None
        return text

    def format(self, value) -> str:
        k = self.kind
        if k == "bool":
            return "yes" if value else "no"
        if k in ("int", "memory"):
            return str(value)
        if k == "memorypct":
            return f"{-value}%" if value < 0 else str(value)
        if k == "octal":
            return f"{value:o}"
        if k == "save":
            return " ".join(f"{s} {c}" for s, c in value)
        if k == "obuf":
            return " ".join(f"{cls} {h} {s} {sec}" for cls, (h, s, sec) in value.items())
        if k == "events":
            from shardkv.pubsub import format_events
            return format_events(value)
        return value if value is not None else ""


def parse_obuf_limits(text: str, current):
    parts = text.split()
    if len(parts) % 4:
        raise ConfigError("Wrong number of arguments in buffer limit configuration.")
    limits = dict(current) if current else {"normal": (0, 0, 0), "slave": (268435456, 67108864, 60),
                                             "pubsub": (33554432, 8388608, 60)}
    for i in range(0, len(parts), 4):
        cls = parts[i].lower()
        if cls == "replica":
            cls = "slave"
        if cls not in ("normal", "slave", "pubsub", "master"):
            raise ConfigError("Invalid client class specified in buffer limit configuration.")
        try:
            hard = parse_memory(parts[i + 1])
            soft = parse_memory(parts[i + 2])
            secs = int(parts[i + 3])
        except (ConfigError, ValueError):
            raise ConfigError("Error in hard, soft or soft_seconds setting in buffer limit configuration.") from None
        if hard < 0 or soft < 0 or secs < 0:
            raise ConfigError("Error in hard, soft or soft_seconds setting in buffer limit configuration.")
        limits[cls] = (hard, soft, secs)
    return limits


LLONG = 2**63 - 1
DIRECTIVES = [
    Directive("port", "int", 6379, lo=0, hi=65535),
    Directive("bind", "string", "127.0.0.1"),
    Directive("unixsocket", "string", "", mutable=False),
    Directive("unixsocketperm", "octal", 0, mutable=False, lo=0, hi=0o777),
    Directive("maxclients", "int", 10000, lo=1, hi=4294967295),
    Directive("timeout", "int", 0, lo=0, hi=2**31 - 1),
    Directive("requirepass", "string", "", sensitive=True),
    Directive("proto-max-bulk-len", "memory", 512 * 1024 * 1024, lo=1024 * 1024, hi=LLONG),
    Directive("client-query-buffer-limit", "memory", 1024 * 1024 * 1024, lo=1024 * 1024, hi=LLONG),
    Directive("client-output-buffer-limit", "obuf", None),
    Directive("hz", "int", 10, lo=0, hi=2**31 - 1),
    Directive("databases", "int", 16, mutable=False, lo=1, hi=2**31 - 1),
    Directive("dir", "string", "."),
    Directive("dbfilename", "string", "dump.rdb"),
    Directive("save", "save", [(3600, 1), (300, 100), (60, 10000)]),
    Directive("appendonly", "bool", False),
    Directive("appendfilename", "string", "appendonly.aof", mutable=False),
    Directive("appendfsync", "enum", "everysec", choices=("always", "everysec", "no")),
    Directive("appenddirname", "string", "appendonlydir", mutable=False),
    Directive("aof-load-truncated", "bool", True),
    Directive("auto-aof-rewrite-percentage", "int", 100, lo=0, hi=2**31 - 1),
    Directive("auto-aof-rewrite-min-size", "memory", 64 * 1024 * 1024, lo=0, hi=LLONG),
    Directive("rdbcompression", "bool", True),
    Directive("rdbchecksum", "bool", True, mutable=False),
    Directive("maxmemory", "memory", 0, lo=0, hi=LLONG),
    Directive("maxmemory-policy", "enum", "noeviction", choices=(
        "volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl", "allkeys-lru",
        "allkeys-lfu", "allkeys-random", "noeviction")),
    Directive("maxmemory-samples", "int", 5, lo=1, hi=64),
    Directive("maxmemory-eviction-tenacity", "int", 10, lo=0, hi=100),
    Directive("maxmemory-clients", "memorypct", 0, lo=-100, hi=LLONG),
    Directive("lfu-log-factor", "int", 10, lo=0, hi=2**31 - 1),
    Directive("lfu-decay-time", "int", 1, lo=0, hi=2**31 - 1),
    Directive("replica-ignore-maxmemory", "bool", True, aliases=("slave-ignore-maxmemory",)),
    Directive("loglevel", "enum", "notice", choices=("debug", "verbose", "notice", "warning", "nothing")),
    Directive("logfile", "string", "", mutable=False),
    Directive("daemonize", "bool", False, mutable=False),
    Directive("pidfile", "string", "", mutable=False),
    Directive("slowlog-log-slower-than", "int", 10000, lo=-1, hi=LLONG),
    Directive("slowlog-max-len", "int", 128, lo=0, hi=2**63 - 1),
    Directive("latency-monitor-threshold", "int", 0, lo=0, hi=LLONG),
    Directive("tcp-keepalive", "int", 300, lo=0, hi=2**31 - 1),
    Directive("tcp-backlog", "int", 511, mutable=False, lo=0, hi=2**31 - 1),
    Directive("notify-keyspace-events", "events", 0),
    Directive("enable-debug-command", "enum", "no", mutable=False, choices=("no", "yes", "local")),
    Directive("protected-mode", "bool", True),
    Directive("lazyfree-lazy-expire", "bool", True),
    Directive("lazyfree-lazy-user-del", "bool", True),
    Directive("lazyfree-lazy-user-flush", "bool", True),
    Directive("lazyfree-lazy-server-del", "bool", True),
    Directive("lazyfree-lazy-eviction", "bool", True),
    Directive("busy-reply-threshold", "int", 5000, lo=0, hi=LLONG, aliases=("lua-time-limit",)),
    Directive("active-expire-effort", "int", 1, lo=1, hi=10),
    Directive("stop-writes-on-bgsave-error", "bool", True),
    Directive("replica-read-only", "bool", True, aliases=("slave-read-only",)),
    # replication (shardkv/replication.py)
    Directive("replicaof", "string", "", mutable=False, aliases=("slaveof",)),
    Directive("masterauth", "string", "", sensitive=True),
    Directive("masteruser", "string", ""),
    Directive("repl-backlog-size", "memory", 10 * 1024 * 1024, lo=1, hi=LLONG),
    Directive("repl-diskless-sync-delay", "int", 5, lo=0, hi=2**31 - 1),
    Directive("repl-ping-replica-period", "int", 10, lo=1, hi=2**31 - 1, aliases=("repl-ping-slave-period",)),
    Directive("repl-timeout", "int", 60, lo=1, hi=2**31 - 1),
    # encodings that OBJECT ENCODING reports, by Valkey's thresholds
    Directive("list-max-listpack-size", "int", -2, lo=-(2**31), hi=2**31 - 1, aliases=("list-max-ziplist-size",)),
    Directive("list-compress-depth", "int", 0, lo=0, hi=2**31 - 1),
    Directive("hash-max-listpack-entries", "int", 512, lo=0, hi=2**63 - 1, aliases=("hash-max-ziplist-entries",)),
    Directive("hash-max-listpack-value", "int", 64, lo=0, hi=2**63 - 1, aliases=("hash-max-ziplist-value",)),
    Directive("set-max-intset-entries", "int", 512, lo=0, hi=2**63 - 1),
    Directive("set-max-listpack-entries", "int", 128, lo=0, hi=2**63 - 1),
    Directive("set-max-listpack-value", "int", 64, lo=0, hi=2**63 - 1),
    Directive("zset-max-listpack-entries", "int", 128, lo=0, hi=2**63 - 1, aliases=("zset-max-ziplist-entries",)),
    Directive("zset-max-listpack-value", "int", 64, lo=0, hi=2**63 - 1, aliases=("zset-max-ziplist-value",)),
    Directive("stream-node-max-bytes", "memory", 4096, lo=0, hi=2**63 - 1),
    Directive("stream-node-max-entries", "int", 100, lo=0, hi=2**63 - 1),
    Directive("hll-sparse-max-bytes", "memory", 3000, lo=0, hi=2**63 - 1),
    Directive("cluster-enabled", "bool", False, mutable=False),
    Directive("cluster-config-file", "string", "nodes.conf", mutable=False),
    # shardkv: the port the router connects to; clients on it get standalone
    # semantics (no MOVED/CROSSSLOT, SELECT allowed), 0 = none
    Directive("shard-router-port", "int", 0, mutable=False, lo=0, hi=65535),
    # shardkv: the same as a unix socket (cheaper than loopback TCP), "" = none
    Directive("shard-router-socket", "string", "", mutable=False),
    Directive("supervised", "enum", "no", mutable=False, choices=("upstart", "systemd", "auto", "no")),
]
BY_NAME = {}
for _d in DIRECTIVES:
    BY_NAME[_d.name] = _d
    for _a in _d.aliases:
        BY_NAME[_a] = _d


class Config:
    """Current values of every directive, plus change callbacks."""

    def __init__(self):
        self.values = {d.name: d.default for d in DIRECTIVES}
        self.values["client-output-buffer-limit"] = parse_obuf_limits("", None)
        self.listeners = []

    def __getitem__(self, name):
        return self.values[BY_NAME[name.lower()].name]

    def set(self, name: str, text: str, startup=False):
        """Parses and applies one directive; raises KeyError or ConfigError."""
        d = BY_NAME[name.lower()]
        if not d.mutable and not startup:
            raise ConfigError("can't set immutable config")
        if d.kind == "obuf":
            value = parse_obuf_limits(text, self.values[d.name])
        else:
            value = d.parse(text)
        if d.name == "hz":
            value = min(max(value, 1), 500)
        old = self.values[d.name]
        self.values[d.name] = value
        for cb in self.listeners:
            cb(d.name, value, old)
        return d.name

    def get_matching(self, pattern: bytes):
        out = {}
        text = pattern.decode("latin-1")
        exact = BY_NAME.get(text.lower())
        if exact is not None and not any(ch in text for ch in "*?[\\"):
            # an exact name is echoed back as the client spelled it
            return {text: exact.format(self.values[exact.name])}
        for d in DIRECTIVES:
            for name in (d.name,) + d.aliases:
                if glob_match(pattern.lower(), name.encode(), nocase=True):
                    out[name] = d.format(self.values[d.name])
        return out

    def load_file(self, path: str):
        """Reads a redis.conf-style file; a bad line stops start-up with the
        file, the line number and the reason, as redis-server does."""
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
        for number, line in enumerate(lines, 1):
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            try:
                words = shlex.split(stripped)
            except ValueError:
                raise SystemExit(config_error(path, number, line, "Unbalanced quotes in configuration line")) from None
            self.apply_words(words, path, number, line)

    def apply_words(self, words, path="(command line)", number=0, line=""):
        name = words[0].lower()
        if name == "include" and len(words) == 2:
            self.load_file(words[1])
            return
        if name not in BY_NAME:
            raise SystemExit(config_error(path, number, line, "Bad directive or wrong number of arguments"))
        if len(words) != 2 and BY_NAME[name].kind not in MULTI_VALUE_KINDS \
                and BY_NAME[name].name not in ("bind", "replicaof"):
            raise SystemExit(config_error(path, number, line, "wrong number of arguments"))
        if len(words) < 2:
            raise SystemExit(config_error(path, number, line, "wrong number of arguments"))
        value = " ".join(words[1:])
        if name == "save" and value in ("", '""'):
            value = ""
        try:
            self.set(name, value, startup=True)
        except ConfigError as e:
            raise SystemExit(config_error(path, number, line, str(e))) from None


# directives that take several words on one line
MULTI_VALUE_KINDS = ("save", "obuf")

REWRITE_MARKER = "# Generated by CONFIG REWRITE"


def rewrite_config_file(config: Config, path: str):
    """CONFIG REWRITE: rewrites the config file in place so that it states the
    current configuration. Comments and the order of existing lines are kept;
    a directive's first line gets the current value, later duplicates go, and
    directives changed from their defaults but absent from the file are
    appended after a marker line. The new file replaces the old atomically."""
    import os
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        lines = []
    out, written = [], set()
    for line in lines:
        stripped = line.strip()
        if stripped == REWRITE_MARKER:
            continue
        words = shlex.split(stripped) if stripped and not stripped.startswith("#") else []
        d = BY_NAME.get(words[0].lower()) if words else None
        if d is None:
            out.append(line)
            continue
        if d.name in written:
            continue
        written.add(d.name)
        out.append(_directive_line(d, config.values[d.name]))
    extra = [d for d in DIRECTIVES if d.name not in written and config.values[d.name] != _default(d)]
    if extra:
        out.append(REWRITE_MARKER)
        out.extend(_directive_line(d, config.values[d.name]) for d in extra)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _default(d):
    return parse_obuf_limits("", None) if d.kind == "obuf" else d.default


def _directive_line(d, value):
    text = d.format(value)
    if d.kind == "string" or d.kind == "save":
        text = '"%s"' % text.replace("\\", "\\\\").replace('"', '\\"') if (not text or " " in text or '"' in text) else text
    return f"{d.name} {text}"


def config_error(path, number, line, reason):
    return (f"\n*** FATAL CONFIG FILE ERROR (shardkv) ***\nReading the configuration file, at "
            f"line {number}\n>>> '{line}'\n{reason}\nin {path}")
