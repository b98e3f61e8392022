"""The command line: `shardkv server [CONFIG-FILE] [--port N] [--DIRECTIVE VALUE ...]`
runs one shard in the foreground, the way redis-server runs."""

from __future__ import annotations

import argparse
import logging
import sys


def parse_server_args(argv):
    """Splits redis-server-style arguments: an optional config file, then
    --directive value [value ...] pairs, in order."""
    config_file = None
    directives = []
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
    return config_file, directives


def run_server(argv):
    from shardkv.config import Config
    from shardkv.native import _native  # noqa: F401  refuses to start without the core
    from shardkv.server import Server

    config_file, directives = parse_server_args(argv)
    config = Config()
    if config_file:
        config.load_file(config_file)
    for words in directives:
        config.apply_words(words, "(command line)", 0, "--" + " ".join(words))
    level = {"debug": logging.DEBUG, "verbose": logging.INFO, "notice": logging.INFO,
             "warning": logging.WARNING, "nothing": logging.CRITICAL}[config["loglevel"]]
    handler = logging.FileHandler(config["logfile"]) if config["logfile"] else logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(process)d:M %(asctime)s %(levelname)s %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])
    server = Server(config)
    server.config_file = config_file
    server.listen()
    try:
        import setproctitle
        setproctitle.setproctitle(f"shardkv server {config['bind'].split()[0]}:{server.port}")
    except ImportError:
        pass
    server.serve_forever()
    return 0


def run_router(argv):
    parser = argparse.ArgumentParser(prog="shardkv router")
    parser.add_argument("--port", type=int, default=6379)
    parser.add_argument("--bind", default="127.0.0.1")
    parser.add_argument("--shards", required=True, help="host:port of each worker, comma separated, in shard order")
    parser.add_argument("--title", default=None)
    args = parser.parse_args(argv)
    from shardkv.router import RouterServer, parse_shards
    logging.basicConfig(level=logging.INFO, format="%(process)d:R %(asctime)s %(levelname)s %(message)s")
    router = RouterServer(parse_shards(args.shards), args.bind, args.port)
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


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="shardkv", description="A Redis-compatible data store.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("server", help="run one shard server in the foreground", add_help=False)
    sub.add_parser("router", help="run a front router for running shards", add_help=False)
    if argv and argv[0] == "server":
        return run_server(argv[1:])
    if argv and argv[0] == "router":
        return run_router(argv[1:])
    parser.parse_args(argv)
    return 2


if __name__ == "__main__":
    sys.exit(main())
