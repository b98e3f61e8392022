"""INFO: the sections Redis reports, in Redis's order and format
("# Section" headers, field:value lines, CRLF), so that tools parsing INFO
(redis-py's info(), monitoring agents, redis-benchmark) work unchanged."""

import os
import platform
import resource
import sys
import time

from shardkv import REDIS_VERSION, __version__
from shardkv.commands import hashes

DEFAULT_SECTIONS = ["server", "clients", "memory", "persistence", "stats", "replication", "cpu",
                    "modules", "errorstats", "cluster", "keyspace"]
ALL_SECTIONS = DEFAULT_SECTIONS + ["commandstats", "latencystats"]


def human_bytes(n):
    for unit, size in (("G", 1024**3), ("M", 1024**2), ("K", 1024)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return f"{n}B"


def section_server(s):
    uptime = int(time.monotonic() - s.start_monotonic)
    return [
        ("redis_version", REDIS_VERSION),
        ("shardkv_version", __version__),
        ("redis_git_sha1", "00000000"),
        ("redis_git_dirty", "0"),
        ("redis_build_id", "0"),
        ("redis_mode", "cluster" if s.cluster_enabled else "standalone"),
        ("os", f"{platform.system()} {platform.release()} {platform.machine()}"),
        ("arch_bits", "64"),
        ("multiplexing_api", "epoll"),
        ("gcc_version", "0.0.0"),
        ("python_version", platform.python_version()),
        ("process_id", str(os.getpid())),
        ("run_id", s.run_id),
        ("tcp_port", str(s.config["port"])),
        ("server_time_usec", str(int(time.time() * 1e6))),
        ("uptime_in_seconds", str(uptime)),
        ("uptime_in_days", str(uptime // 86400)),
        ("hz", str(s.config["hz"])),
        ("configured_hz", str(s.config["hz"])),
        ("lru_clock", str(s.lru_clock & 0xFFFFFF)),
        ("executable", os.path.abspath(sys.argv[0])),
        ("config_file", getattr(s, "config_file", "") or ""),
    ]


def section_clients(s):
    blocked = sum(1 for c in s.clients.values() if c.flag(512))
    return [
        ("connected_clients", str(len(s.clients) - len(s.repl.replicas))),   # as Redis: replicas apart
        ("cluster_connections", "0"),
        ("maxclients", str(s.config["maxclients"])),
        ("client_recent_max_input_buffer", str(max((c.input_pending for c in s.clients.values()), default=0))),
        ("client_recent_max_output_buffer", str(max((c.output_pending for c in s.clients.values()), default=0))),
        ("blocked_clients", str(blocked)),
        ("tracking_clients", str(len(s.tracking.clients))),
        ("clients_in_timeout_table", str(blocked)),
    ]


def section_memory(s):
    from shardkv.eviction import info_memory
    return info_memory(s)


def section_persistence(s):
    return s.persistence.info_fields()


def section_stats(s):
    ops = (sum(s.stat_ops_samples) / len(s.stat_ops_samples)) if s.stat_ops_samples else 0
    net_in = sum(c.bytes_in for c in s.clients.values()) + getattr(s, "closed_bytes_in", 0)
    net_out = sum(c.bytes_out for c in s.clients.values()) + getattr(s, "closed_bytes_out", 0)
    return [
        ("total_connections_received", str(s.stat_numconnections)),
        ("total_commands_processed", str(s.stat_numcommands)),
        ("instantaneous_ops_per_sec", str(int(ops))),
        ("total_net_input_bytes", str(net_in)),
        ("total_net_output_bytes", str(net_out)),
        ("rejected_connections", str(s.stat_rejected_conn)),
        ("sync_full", str(s.repl.stat_sync_full)),
        ("sync_partial_ok", str(s.repl.stat_sync_partial_ok)),
        ("sync_partial_err", str(s.repl.stat_sync_partial_err)),
        ("expired_keys", str(s.stat_expired_keys)),
        ("expired_fields", str(hashes.expired_fields(s))),
        ("evicted_keys", str(s.stat_evicted_keys)),
        ("evicted_clients", str(s.stat_evicted_clients)),
        ("evicted_scripts", "0"),
        ("total_eviction_exceeded_time", str(s.stat_eviction_exceeded_us // 1000)),
        ("current_eviction_exceeded_time", "0"),
        ("keyspace_hits", str(s.stat_keyspace_hits)),
        ("keyspace_misses", str(s.stat_keyspace_misses)),
        ("pubsub_channels", "0"),
        ("pubsub_patterns", "0"),
        ("total_error_replies", str(s.stat_total_error_replies)),
        ("total_blocking_keys", str(s.blocking.blocked_keys())),
    ]


def section_replication(s):
    return s.repl.info_fields()


def section_cpu(s):
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return [
        ("used_cpu_sys", f"{ru.ru_stime:.6f}"),
        ("used_cpu_user", f"{ru.ru_utime:.6f}"),
        ("used_cpu_sys_children", "0.000000"),
        ("used_cpu_user_children", "0.000000"),
    ]


def section_errorstats(s):
    return [(f"errorstat_{code}", f"count={n}") for code, n in sorted(s.error_stats.items())]


def section_cluster(s):
    return [("cluster_enabled", "1" if s.cluster_enabled else "0")]


def avg_ttl(s, db, samples=64):
    """An estimate of the keys' mean remaining time to live in ms, from a
    random sample of the expires table (Redis also estimates it by sampling)."""
    if not len(db.expires):
        return 0
    ttls = [max(when - s.now_ms, 0) for _, when in db.expires.sample(samples)]
    return sum(ttls) // len(ttls)


def section_keyspace(s):
    out = []
    for db in s.dbs:
        n = len(db.data)
        if n:
            out.append((f"db{db.id}", f"keys={n},expires={len(db.expires)},avg_ttl={avg_ttl(s, db)},"
                                      f"keys_with_volatile_items={hashes.keys_with_volatile_items(s, db)}"))
    return out


def _all_commands(s):
    seen = []
    for cmd in set(s.commands.values()):
        if cmd.subcommands:
            seen.extend(cmd.subcommands.values())
        seen.append(cmd)
    return sorted(seen, key=lambda c: c.name)


def section_commandstats(s):
    out = []
    for cmd in _all_commands(s):
        if cmd.calls or cmd.rejected_calls or cmd.failed_calls:
            per = cmd.usec / cmd.calls if cmd.calls else 0
            out.append((f"cmdstat_{cmd.name}",
                        f"calls={cmd.calls},usec={cmd.usec},usec_per_call={per:.2f},"
                        f"rejected_calls={cmd.rejected_calls},failed_calls={cmd.failed_calls}"))
    return out


def section_latencystats(s):
    return []


SECTIONS = {
    "server": section_server, "clients": section_clients, "memory": section_memory,
    "persistence": section_persistence, "stats": section_stats,
    "replication": section_replication, "cpu": section_cpu, "modules": lambda s: [],
    "errorstats": section_errorstats, "cluster": section_cluster, "keyspace": section_keyspace,
    "commandstats": section_commandstats, "latencystats": section_latencystats,
}


def build_info(s, requested=None):
    """The INFO text for the requested sections (Redis's rules: none means
    default, "all" everything, "everything" too, unknown names are skipped)."""
    names = [r.lower() for r in requested or []]
    if not names or "default" in names:
        wanted = list(DEFAULT_SECTIONS)
    else:
        wanted = []
    for n in names:
        if n in ("all", "everything"):
            wanted = list(ALL_SECTIONS)
        elif n in SECTIONS and n not in wanted:
            wanted.append(n)
    parts = []
    for name in ALL_SECTIONS:
        if name not in wanted:
            continue
        lines = SECTIONS[name](s)
        title = "Keyspace" if name == "keyspace" else name.capitalize()
        if name == "cpu":
            title = "CPU"
        parts.append(f"# {title}\r\n" + "".join(f"{k}:{v}\r\n" for k, v in lines))
    return "\r\n".join(parts).encode()
