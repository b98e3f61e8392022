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


# ---------------------------------------------------------------- helpers

def cmds(*argvs):
    """Commands as one RESP request stream (arguments: bytes, or anything str() encodes)."""
    return b"".join(_native.py_encode_command([a if isinstance(a, bytes) else str(a).encode() for a in argv])
                    for argv in argvs)


def settle(server):
    """What the loop does before it sleeps: serve clients whose keys are ready."""
    server._before_sleep()


def blocked(session):
    return session.client.flag(_native.CLIENT_FLAGS["BLOCKED"])


def registered(session):
    """Makes a socketless session findable by CLIENT UNBLOCK."""
    session.server.clients[session.client.id] = session.client
    return session


def value(server, key, db=0):
    return server.peek(server.dbs[db], key)
