"""The command line: `shardkv server [CONFIG-FILE] [--port N] [--DIRECTIVE VALUE ...]`
runs one shard in the foreground, the way redis-server runs; `shardkv start`,
`stop`, `status` and `failover` drive a sharded deployment (supervisor.py),
and `shardkv router` is the front process it runs."""

from __future__ import annotations

import argparse
import logging
import os
import sys


def parse_server_args(argv):
    """Splits redis-server-style arguments: an optional config file, then
    --directive value [value ...] pairs, in order."""
    config_file = None
    directives = []
    title = None
    if "--title" in argv:
        i = argv.index("--title")
        title = argv[i + 1] if i + 1 < len(argv) else None
        argv = argv[:i] + argv[i + 2:]
    i = 0
    if argv and not argv[0].startswith("--"):
        config_file = argv[0]
        i = 1
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--") or len(arg) == 2:
            raise SystemExit(f"shardkv: unexpected argument {arg!r} (directives are --name value)")
        words = [arg[2:]]
        i += 1
        while i < len(argv) and not argv[i].startswith("--"):
            words.append(argv[i])
            i += 1
        directives.append(words)
    return config_file, directives, title


def run_server(argv):
    from shardkv.config import Config
    from shardkv.native import _native  # noqa: F401  refuses to start without the core
    from shardkv.server import Server

    config_file, directives, title = parse_server_args(argv)
    config = Config()
    if config_file:
        config.load_file(config_file)
    for words in directives:
        config.apply_words(words, "(command line)", 0, "--" + " ".join(words))
    level = {"debug": logging.DEBUG, "verbose": logging.INFO, "notice": logging.INFO,
             "warning": logging.WARNING, "nothing": logging.CRITICAL}[config["loglevel"]]
    handler = logging.FileHandler(config["logfile"]) if config["logfile"] else logging.StreamHandler()
    # one line per event, naming the process and, under `shardkv start`, its shard
    tag = " ".join(title.split()[1:3]) if title and title.startswith("shardkv shard") else "server"
    handler.setFormatter(logging.Formatter(f"%(process)d {tag} %(asctime)s %(levelname)s %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])
    server = Server(config)
    server.config_file = config_file
    server.listen()
    _set_title(title or f"shardkv server {config['bind'].split()[0]}:{server.port}")
    server.serve_forever()
    return 0


def run_router(argv):
    # a SIGHUP (the supervisor re-targeting shards) must not kill a router
    # that is still starting: it reads the routes file once it runs anyway
    import signal
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    parser = argparse.ArgumentParser(prog="shardkv router")
    parser.add_argument("--port", type=int, default=6379)
    parser.add_argument("--bind", default="127.0.0.1")
    parser.add_argument("--shards", required=True, help="host:port of each worker, comma separated, in shard order")
    parser.add_argument("--routes-file", default=None,
                        help="a file holding the --shards list, read again on SIGHUP (failover)")
    parser.add_argument("--title", default=None)
    args = parser.parse_args(argv)
    from shardkv.router import RouterServer, parse_shards
    logging.basicConfig(level=logging.INFO, format="%(process)d router %(asctime)s %(levelname)s %(message)s")
    router = RouterServer(parse_shards(args.shards), args.bind, args.port, routes_file=args.routes_file)
    port = router.listen()
    _set_title(args.title or f"shardkv router {args.bind.split()[0]}:{port}")
    router.serve_forever()
    return 0


def _set_title(title):
    try:
        import setproctitle
        setproctitle.setproctitle(title)
    except ImportError:
        pass


def cluster_args(prog, argv, with_start=False, with_failover=False):
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--port", type=int, default=6379, help="the router's port (default 6379)")
    parser.add_argument("--dir", default=".", help="working directory: state file, data files")
    if with_failover:
        parser.add_argument("--shard", type=int, required=True, help="the shard whose primary hands over")
        parser.add_argument("--replica", default=None, metavar="HOST:PORT",
                            help="the replica to promote (default: the most up-to-date one)")
        parser.add_argument("--timeout", type=float, default=10.0,
                            help="seconds the replica may take to catch up (default 10)")
    if with_start:
        parser.add_argument("--shards", type=int, default=os.cpu_count() or 1,
                            help="number of worker processes (default: number of CPUs)")
        parser.add_argument("--bind", default="127.0.0.1")
        parser.add_argument("--config", default=None, help="a redis.conf-style file for the workers")
        parser.add_argument("--replicas", type=int, default=1,
                            help="replica processes per shard (default 1; 0: none, a dead worker is restarted)")
        parser.add_argument("--failover-timeout", type=int, default=5000, metavar="MS",
                            help="a primary that answers no PING for this long is failed over (default 5000)")
        parser.add_argument("--routers", type=int, default=1, help="router processes sharing the port")
        parser.add_argument("--worker-port", type=int, default=None,
                            help="port of shard 0; shard i uses it + i (default: port + 1000; 0 picks free ports)")
        parser.add_argument("--daemonize", action="store_true", help="detach and write a pidfile")
        parser.add_argument("--pidfile", default=None)
        parser.add_argument("--logfile", default=None, help="where a daemonized supervisor logs")
        parser.add_argument("--directive", nargs="+", action="append", metavar=("NAME", "VALUE"),
                            help="a config directive for every worker (repeatable)")
        parser.add_argument("--maxmemory", default=None,
                            help="memory limit of the whole deployment (e.g. 4gb), split evenly over "
                                 "the shards as each worker's maxmemory")
        parser.add_argument("--maxmemory-policy", default=None,
                            help="eviction policy of every worker (default noeviction)")
    args = parser.parse_args(argv)
    if with_start and args.maxmemory is not None:
        from shardkv.config import ConfigError, parse_memory
        try:
            args.maxmemory = parse_memory(args.maxmemory)
        except ConfigError:
            parser.error(f"--maxmemory: not a memory value: {args.maxmemory}")
    if with_start and args.worker_port is None:
        args.worker_port = args.port + 1000
    return args


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="shardkv", description="A Redis-compatible data store.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("server", help="run one shard server in the foreground", add_help=False)
    sub.add_parser("router", help="run a front router for running shards", add_help=False)
    sub.add_parser("start", help="run a supervisor, a router and N shards", add_help=False)
    sub.add_parser("stop", help="stop what `shardkv start` runs", add_help=False)
    sub.add_parser("status", help="show the processes of `shardkv start`", add_help=False)
    sub.add_parser("failover", help="hand a shard over to its replica, losing no write", add_help=False)
    if argv and argv[0] == "server":
        return run_server(argv[1:])
    if argv and argv[0] == "router":
        return run_router(argv[1:])
    if argv and argv[0] in ("start", "stop", "status", "failover"):
        from shardkv import supervisor
        args = cluster_args(f"shardkv {argv[0]}", argv[1:], with_start=argv[0] == "start",
                            with_failover=argv[0] == "failover")
        return getattr(supervisor, argv[0])(args)
    parser.parse_args(argv)
    return 2


if __name__ == "__main__":
    sys.exit(main())
