"""In-process command tests: a Server with no sockets, driven through the
same gate and call() that network clients go through."""

import pytest

from shardkv.config import Config
from shardkv.native import _native
from shardkv.server import Server


class Session:
    """One socketless client of a server: run(*args) returns the raw reply."""

    def __init__(self, server, proto=2):
        self.server = server
        self.client = server.attach_client(_native.Client())
        self.client.proto = proto

    def run(self, *args):
        argv = [a if isinstance(a, bytes) else str(a).encode() for a in args]
        self.server.now_ms = _native.now_ms()
        return self.server.run_argv(self.client, argv)


@pytest.fixture
def server():
    cfg = Config()
    cfg.set("enable-debug-command", "yes", startup=True)
    return Server(cfg)


@pytest.fixture
def session(server):
    return Session(server)


@pytest.fixture
def feed(server):
    """Everything the server propagates to the AOF and replicas."""
    chunks = []
    server.add_feed_consumer(chunks.append)
    return chunks
