"""Connection commands: PING ECHO QUIT RESET HELLO AUTH and CLIENT."""

import hmac

from shardkv import errors
from shardkv.commands.common import NO_REPLY, OK, Status, Verbatim, int_arg, parse_int
from shardkv.commands.keys import help_reply
from shardkv.commands.table import command, container
from shardkv.errors import ReplyError
from shardkv.native import _native

F = _native.CLIENT_FLAGS
CONN = "connection"

# HELLO's version: redis-py enables its client-side cache only for a server
# that says it is Redis 7.4 or later (the tracking shardkv serves is 7.4's);
# INFO keeps the 7.2.4 that Valkey reports.
HELLO_VERSION = "7.4.0"


@command("ping", -1, flags="fast", acl="fast connection",
         tips="request_policy:all_shards response_policy:all_succeeded", group=CONN,
         internal="pubsub_context", summary="Answers PONG, or echoes its argument.")
def ping(c, argv):
    if len(argv) > 2:
        raise ReplyError(errors.wrong_arity("ping"))
    if c.flag(F["PUBSUB"]) and c.proto == 2:
        return [b"pong", argv[1] if len(argv) == 2 else b""]
    return argv[1] if len(argv) == 2 else _native.PONG


@command("echo", 2, flags="loading stale fast", acl="fast connection", group=CONN,
         summary="Returns its argument.")
def echo(c, argv):
    return argv[1]


@command("quit", -1, flags="noscript loading stale fast no_auth allow_busy", acl="fast connection",
         group=CONN, internal="tx_control pubsub_context",
         summary="Closes the connection once the reply is sent.")
def quit_(c, argv):
    c.out.add(OK) if not c.flag(F["REPLY_OFF"]) else None
    c.server.close_client(c, True)
    return NO_REPLY


def reset_client(c):
    s = c.server
    if c.flag(F["MULTI"]):
        s.discard_transaction(c)
    s.unwatch_all(c)
    c.db = s.dbs[0]
    c.proto = 2
    c.name = None
    c.flags &= ~(F["REPLY_OFF"] | F["REPLY_SKIP"] | F["REPLY_SKIP_NEXT"] | F["NO_EVICT"]
                 | F["NO_TOUCH"] | F["READONLY"])
    c.authenticated = s.requirepass is None
    c.parser.auth_required = not c.authenticated
    hook = getattr(s, "on_client_reset", None)
    if hook is not None:
        hook(c)


@command("reset", 1, flags="noscript loading stale fast no_auth allow_busy", acl="fast connection",
         group=CONN, since="6.2.0", internal="tx_control pubsub_context",
         summary="Returns the connection to its initial state.")
def reset(c, argv):
    reset_client(c)
    return Status(b"RESET")


def check_password(s, username, password):
    if username is not None and username != b"default":
        return False
    if s.requirepass is None:
        return True
    return hmac.compare_digest(password, s.requirepass)


def _authenticate(c, username, password):
    if not check_password(c.server, username, password):
        raise ReplyError(errors.WRONGPASS)
    c.authenticated = True
    c.parser.auth_required = False
    c.user = b"default"


@command("auth", -2, flags="noscript loading stale fast no_auth allow_busy", acl="fast connection",
         group=CONN, complexity="O(N) where N is the number of passwords defined for the user",
         summary="Authenticates the connection.")
def auth(c, argv):
    if len(argv) > 3:
        raise ReplyError(errors.SYNTAX)
    if len(argv) == 2:
        if c.server.requirepass is None:
            raise ReplyError(errors.AUTH_NOT_CONFIGURED)
        _authenticate(c, None, argv[1])
    else:
        _authenticate(c, argv[1], argv[2])
    return OK


def valid_client_name(name):
    """Printable ASCII without spaces. Like Valkey, the check stops at a NUL
    byte (it walks the name as a C string)."""
    nul = name.find(b"\0")
    if nul >= 0:
        name = name[:nul]
    return all(0x21 <= b <= 0x7E for b in name)


@command("hello", -1, flags="noscript loading stale fast no_auth allow_busy", acl="fast connection",
         group=CONN, since="6.0.0",
         summary="Chooses the protocol version (2 or 3), optionally authenticating and naming the connection.")
def hello(c, argv):
    s = c.server
    ver = None
    if len(argv) >= 2:
        ver = parse_int(argv[1])
        if ver is None:
            raise ReplyError("ERR Protocol version is not an integer or out of range")
        if ver < 2 or ver > 3:
            raise ReplyError(errors.NOPROTO)
    auth_args = name = None
    i = 2
    while i < len(argv):
        opt = argv[i].lower()
        if opt == b"auth" and i + 2 < len(argv):
            auth_args = (argv[i + 1], argv[i + 2])
            i += 3
        elif opt == b"setname" and i + 1 < len(argv):
            name = argv[i + 1]
            i += 2
        else:
            raise ReplyError("ERR Syntax error in HELLO option '%s'" % argv[i].decode("latin-1"))
    if auth_args is not None:
        _authenticate(c, *auth_args)
    if not c.authenticated:
        raise ReplyError(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the "
            "HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and "
            "select the RESP protocol version at the same time")
    if name is not None:
        if not valid_client_name(name):
            raise ReplyError("ERR Client names cannot contain spaces, newlines or special characters.")
        c.name = name or None
    if ver is not None:
        c.proto = ver
    return {
        b"server": b"redis",
        b"version": HELLO_VERSION.encode(),
        b"proto": c.proto,
        b"id": c.id,
        b"mode": b"cluster" if s.cluster_enabled else b"standalone",
        b"role": b"replica" if s.is_replica else b"master",
        b"modules": [],
    }


# ---------------------------------------------------------------- CLIENT

container("client", -2, acl="slow", group=CONN, since="2.4.0",
          summary="A container for commands that inspect and change connections.")

CLIENT_SUB = dict(flags="noscript loading stale allow_busy", acl="slow connection", group=CONN)
CLIENT_ADMIN = dict(flags="admin noscript loading stale", acl="admin slow dangerous connection",
                    group=CONN)


@command("client|id", 2, since="5.0.0", summary="Returns the connection's unique id.", **CLIENT_SUB)
def client_id(c, argv):
    return c.id


@command("client|setname", 3, since="2.6.9", tips="request_policy:all_nodes response_policy:all_succeeded",
         summary="Names the connection.", **CLIENT_SUB)
def client_setname(c, argv):
    name = argv[2]
    if not valid_client_name(name):
        raise ReplyError("ERR Client names cannot contain spaces, newlines or special characters.")
    c.name = name or None
    return OK


@command("client|getname", 2, since="2.6.9", summary="Returns the connection's name.", **CLIENT_SUB)
def client_getname(c, argv):
    return c.name


@command("client|setinfo", 4, since="7.2.0", tips="request_policy:all_nodes response_policy:all_succeeded",
         summary="Records the client library's name or version.", **CLIENT_SUB)
def client_setinfo(c, argv):
    attr, value = argv[2].lower(), argv[3]
    if attr not in (b"lib-name", b"lib-ver"):
        raise ReplyError("ERR Unrecognized option '%s'" % argv[2].decode("latin-1"))
    if not all(0x21 <= b <= 0x7E for b in value):
        raise ReplyError("ERR %s cannot contain spaces, newlines or special characters." % argv[2].decode("latin-1"))
    if attr == b"lib-name":
        c.lib_name = value
    else:
        c.lib_ver = value
    return OK


def _onoff(argv):
    v = argv[2].lower()
    if v == b"on":
        return True
    if v == b"off":
        return False
    raise ReplyError(errors.SYNTAX)


@command("client|no-evict", 3, flags="admin noscript loading stale allow_busy",
         acl="admin slow dangerous connection", group=CONN, since="7.0.0",
         summary="Exempts the connection from client eviction, or not.")
def client_no_evict(c, argv):
    if _onoff(argv):
        c.flags |= F["NO_EVICT"]
    else:
        c.flags &= ~F["NO_EVICT"]
    return OK


@command("client|no-touch", 3, since="7.2.0",
         summary="Stops (or resumes) this connection's commands updating keys' access times.",
         **CLIENT_SUB)
def client_no_touch(c, argv):
    if _onoff(argv):
        c.flags |= F["NO_TOUCH"]
    else:
        c.flags &= ~F["NO_TOUCH"]
    return OK


@command("client|reply", 3, flags="noscript loading stale no_multi allow_busy", acl="slow connection",
         group=CONN, since="3.2.0", summary="Turns the server's replies to this connection on, off, or off for one command.")
def client_reply(c, argv):
    mode = argv[2].lower()
    if mode == b"on":
        c.flags &= ~(F["REPLY_OFF"] | F["REPLY_SKIP_NEXT"])
        return OK
    if mode == b"off":
        c.flags |= F["REPLY_OFF"]
        return NO_REPLY
    if mode == b"skip":
        if not c.flag(F["REPLY_OFF"]):
            c.flags |= F["REPLY_SKIP_NEXT"]
        return NO_REPLY
    raise ReplyError(errors.SYNTAX)


def _redirect(c):
    st = c.server.tracking.state(c)
    return -1 if st is None else st.redirect


def client_flags_text(c):
    st = c.server.tracking.state(c)
    out = ""
    if c.flag(F["REPLICA"]):
        out += "S"
    if c.flag(F["MASTER"]):
        out += "M"
    if c.flag(F["PUBSUB"]):
        out += "P"
    if c.flag(F["MULTI"]):
        out += "x"
    if c.flag(F["BLOCKED"]):
        out += "b"
    if st is not None:
        out += "t"
        if st.broken:
            out += "R"
        if st.bcast:
            out += "B"
    if c.flag(F["DIRTY_CAS"]):
        out += "d"
    if c.close_after_reply:
        out += "c"
    if c.addr.startswith("/"):
        out += "U"    # a unix socket client: its addr is the socket's path
    if c.flag(F["READONLY"]):
        out += "r"
    if c.flag(F["NO_EVICT"]):
        out += "e"
    if c.flag(F["NO_TOUCH"]):
        out += "T"
    return out or "N"


def client_info_line(s, c):
    now = s.now_ms
    cmd = c.last_cmd.name if c.last_cmd is not None else "NULL"
    if c.current_cmd is not None and s.current_client is c:
        cmd = c.current_cmd.name
    multi = len(c.multi_queue) if c.multi_queue is not None else -1
    fields = [
        ("id", c.id), ("addr", c.addr or ""), ("laddr", c.laddr or ""), ("fd", c.fd),
        ("name", (c.name or b"").decode("latin-1")), ("age", (now - c.created_ms) // 1000),
        ("idle", (now - c.last_interaction_ms) // 1000), ("flags", client_flags_text(c)),
        ("db", c.db.id), ("sub", 0), ("psub", 0), ("ssub", 0), ("multi", multi),
        ("watch", len(c.watched)), ("qbuf", c.input_pending), ("qbuf-free", 0), ("argv-mem", 0),
        ("multi-mem", 0), ("rbs", 16384), ("rbp", 0), ("obl", 0), ("oll", 0),
        ("omem", c.output_pending), ("tot-mem", c.input_pending + c.output_pending),
        ("events", "r"), ("cmd", cmd), ("user", "default"),
        ("redir", _redirect(c)), ("resp", c.proto),
        ("lib-name", (c.lib_name or b"").decode("latin-1")),
        ("lib-ver", (c.lib_ver or b"").decode("latin-1")),
        ("tot-net-in", c.bytes_in), ("tot-net-out", c.bytes_out), ("tot-cmds", c.commands_processed),
    ]
    return " ".join(f"{k}={v}" for k, v in fields)


@command("client|info", 2, tips="nondeterministic_output", since="6.2.0",
         summary="Describes this connection.", **CLIENT_SUB)
def client_info(c, argv):
    return Verbatim((client_info_line(c.server, c) + "\n").encode())


def client_type(c):
    if c.flag(F["MASTER"]):
        return "master"
    if c.flag(F["REPLICA"]):
        return "replica"
    if c.flag(F["PUBSUB"]):
        return "pubsub"
    return "normal"


CLIENT_TYPES = ("normal", "master", "replica", "slave", "pubsub")


@command("client|list", -2, tips="nondeterministic_output", since="2.4.0",
         summary="Describes every connection.", **CLIENT_ADMIN)
def client_list(c, argv):
    s = c.server
    clients = sorted(s.clients.values(), key=lambda x: x.id)
    i = 2
    while i < len(argv):
        opt = argv[i].lower()
        if opt == b"type" and i + 1 < len(argv):
            t = argv[i + 1].decode("latin-1").lower()
            if t not in CLIENT_TYPES:
                raise ReplyError("ERR Unknown client type '%s'" % argv[i + 1].decode("latin-1"))
            t = "replica" if t == "slave" else t
            clients = [x for x in clients if client_type(x) == t]
            i += 2
        elif opt == b"id" and i + 1 < len(argv):
            ids = set()
            for a in argv[i + 1:]:
                n = parse_int(a)
                if n is None or n <= 0:
                    raise ReplyError("ERR Invalid client ID")
                ids.add(n)
            clients = [x for x in clients if x.id in ids]
            i = len(argv)
        else:
            raise ReplyError(errors.SYNTAX)
    return Verbatim("".join(client_info_line(s, x) + "\n" for x in clients).encode())


@command("client|kill", -3, since="2.4.0", summary="Closes connections chosen by address, id, type, user or age.",
         **CLIENT_ADMIN)
def client_kill(c, argv):
    s = c.server
    if len(argv) == 3:
        addr = argv[2].decode("latin-1")
        for x in list(s.clients.values()):
            if x.addr == addr:
                s.close_client(x, x is c)
                return OK
        raise ReplyError("ERR No such client")
    filters = []
    skipme = True
    i = 2
    while i < len(argv):
        if i + 1 >= len(argv):
            raise ReplyError(errors.SYNTAX)
        opt, val = argv[i].lower(), argv[i + 1]
        text = val.decode("latin-1")
        if opt == b"id":
            n = parse_int(val)
            if n is None:
                raise ReplyError(errors.SYNTAX)
            if n <= 0:
                raise ReplyError("ERR client-id should be greater than 0")
            filters.append(lambda x, n=n: x.id == n)
        elif opt == b"type":
            t = text.lower()
            if t not in CLIENT_TYPES:
                raise ReplyError("ERR Unknown client type '%s'" % text)
            t = "replica" if t == "slave" else t
            filters.append(lambda x, t=t: client_type(x) == t)
        elif opt == b"addr":
            filters.append(lambda x, a=text: x.addr == a)
        elif opt == b"laddr":
            filters.append(lambda x, a=text: x.laddr == a)
        elif opt == b"user":
            if val != b"default":
                raise ReplyError("ERR No such user '%s'" % text)
            filters.append(lambda x: True)
        elif opt == b"skipme":
            if val.lower() == b"yes":
                skipme = True
            elif val.lower() == b"no":
                skipme = False
            else:
                raise ReplyError(errors.SYNTAX)
        elif opt == b"maxage":
            n = parse_int(val)
            if n is None:
                raise ReplyError(errors.SYNTAX)
            filters.append(lambda x, n=n: (s.now_ms - x.created_ms) // 1000 >= n)
        else:
            raise ReplyError(errors.SYNTAX)
        i += 2
    killed = 0
    for x in list(s.clients.values()):
        if skipme and x is c:
            continue
        if all(f(x) for f in filters):
            s.close_client(x, x is c)
            killed += 1
    return killed


@command("client|pause", -3, since="3.0.0",
         complexity="O(N) Where N is the number of paused clients",
         summary="Holds back clients' commands (all, or writes only) for a while.", **CLIENT_ADMIN)
def client_pause(c, argv):
    s = c.server
    timeout = parse_int(argv[2])
    if timeout is None:
        raise ReplyError("ERR timeout is not an integer or out of range")
    if timeout < 0:
        raise ReplyError("ERR timeout is negative")
    mode = "all"
    if len(argv) >= 4:
        m = argv[3].lower()
        if m == b"write":
            mode = "write"
        elif m != b"all":
            raise ReplyError("ERR CLIENT PAUSE mode must be WRITE or ALL")
    s.pause_clients(mode, s.now_ms + timeout)
    return OK


@command("client|unpause", 2, since="6.2.0", complexity="O(N) Where N is the number of paused clients",
         summary="Ends a CLIENT PAUSE at once.", **CLIENT_ADMIN)
def client_unpause(c, argv):
    c.server.unpause_clients()
    return OK


@command("client|unblock", -3, since="5.0.0", summary="Wakes a client blocked in a blocking command.",
         **CLIENT_ADMIN)
def client_unblock(c, argv):
    s = c.server
    target_id = int_arg(argv[2])
    how = b"timeout"
    if len(argv) == 4:
        how = argv[3].lower()
        if how not in (b"timeout", b"error"):
            raise ReplyError("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR")
    elif len(argv) > 4:
        raise ReplyError(errors.SYNTAX)
    target = s.clients.get(target_id)
    unblock = getattr(s, "unblock_client", None)
    if target is None or unblock is None or not target.flag(F["BLOCKED"]):
        return 0
    return 1 if unblock(target, how == b"error") else 0


@command("client|getredir", 2, since="6.0.0",
         summary="Returns the id of the client receiving this connection's tracking invalidations, or -1.",
         **CLIENT_SUB)
def client_getredir(c, argv):
    st = c.server.tracking.state(c)
    return -1 if st is None else st.redirect


@command("client|help", 2, flags="loading stale", acl="slow connection", group=CONN, since="5.0.0",
         summary="Describes the CLIENT subcommands.")
def client_help(c, argv):
    return help_reply("CLIENT", [
        "ID", "    Return the ID of the current connection.",
        "INFO", "    Return information about the current client connection.",
        "LIST [TYPE <type>] [ID <id> [<id> ...]]", "    Describe every connection.",
        "KILL <ip:port> | <filter> <value> ...", "    Close connections.",
        "SETNAME <name> / GETNAME", "    Name the connection / return its name.",
        "SETINFO <LIB-NAME|LIB-VER> <value>", "    Record the client library and its version.",
        "REPLY <ON|OFF|SKIP>", "    Control the replies sent to this connection.",
        "NO-EVICT <ON|OFF> / NO-TOUCH <ON|OFF>", "    Client eviction and key access time options.",
        "PAUSE <timeout> [WRITE|ALL] / UNPAUSE", "    Hold back clients' commands / release them.",
        "UNBLOCK <id> [TIMEOUT|ERROR]", "    Wake a client blocked in a blocking command.",
    ])
