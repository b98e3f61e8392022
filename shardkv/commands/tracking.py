"""CLIENT TRACKING, CLIENT CACHING and CLIENT TRACKINGINFO, over the worker's
shardkv.tracking.Tracking (CLIENT GETREDIR, in connection.py, reads it too)."""

from shardkv import errors
from shardkv.commands.common import OK, parse_int
from shardkv.commands.table import command
from shardkv.errors import ReplyError

TRACKING_SUB = dict(flags="noscript loading stale", acl="slow connection", group="connection")


@command("client|tracking", -3, since="6.0.0",
         complexity="O(1). Some options may introduce additional complexity.",
         summary="Turns server-assisted client-side caching on or off for the connection.",
         **TRACKING_SUB)
def client_tracking(c, argv):
    mode = argv[2].lower()
    if mode not in (b"on", b"off"):
        raise ReplyError(errors.SYNTAX)
    redirect, bcast, prefixes, optin, optout, noloop = 0, False, [], False, False, False
    i = 3
    while i < len(argv):
        opt = argv[i].lower()
        if opt == b"redirect" and i + 1 < len(argv):
            if redirect:
                raise ReplyError("ERR A client can only redirect to a single other client")
            i += 1
            n = parse_int(argv[i])
            if n is None:
                raise ReplyError("ERR value is not an integer or out of range")
            if n == c.id:
                raise ReplyError("ERR A client can't redirect to itself")
            redirect = n
        elif opt == b"bcast":
            bcast = True
        elif opt == b"optin":
            optin = True
        elif opt == b"optout":
            optout = True
        elif opt == b"noloop":
            noloop = True
        elif opt == b"prefix" and i + 1 < len(argv):
            i += 1
            prefixes.append(argv[i])
        else:
            raise ReplyError(errors.SYNTAX)
        i += 1
    tracking = c.server.tracking
    if mode == b"on":
        tracking.enable(c, redirect, bcast, prefixes, optin, optout, noloop)
    else:
        tracking.disable(c)
    return OK


@command("client|caching", 3, flags="noscript loading stale allow_busy", acl="slow connection",
         group="connection", since="6.0.0", complexity="O(1)",
         summary="Says whether the keys of the next command are tracked (OPTIN/OPTOUT modes).")
def client_caching(c, argv):
    st = c.server.tracking.state(c)
    if st is None or not (st.optin or st.optout):
        raise ReplyError("ERR CLIENT CACHING can be called only when the client is in tracking mode "
                         "with OPTIN or OPTOUT mode enabled")
    value = argv[2].lower()
    if value == b"yes":
        if not st.optin:
            raise ReplyError("ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.")
        st.caching = True
    elif value == b"no":
        if not st.optout:
            raise ReplyError("ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.")
        st.caching = False
    else:
        raise ReplyError(errors.SYNTAX)
    st.caching_cmd = c.commands_processed
    return OK


@command("client|trackinginfo", 2, since="6.2.0", complexity="O(1)",
         summary="Returns the connection's client-side caching options.", **TRACKING_SUB)
def client_trackinginfo(c, argv):
    return c.server.tracking.info(c)
