"""COMMAND and its subcommands: what the command table says about itself."""

from shardkv import errors
from shardkv.commands.common import RespSet, Status
from shardkv.commands.keys import help_reply
from shardkv.commands.table import FLAG_ORDER, REGISTRY, command, container, find_decl
from shardkv.errors import ReplyError
from shardkv.glob import glob_match

COMMAND_SUB = dict(flags="loading stale", acl="slow connection", group="server")


def command_info(decl):
    return [
        decl.name.encode(),
        decl.arity,
        RespSet([Status(f.encode()) for f in sorted(decl.flags, key=FLAG_ORDER.index)]),
        decl.first_key,
        decl.last_key,
        decl.key_step,
        RespSet([Status(a.encode()) for a in decl.acl]),
        RespSet([t.encode() for t in decl.tips]),
        RespSet([ks.reply() for ks in decl.key_specs]),
        [command_info(sub) for sub in decl.subcommands.values()],
    ]


def command_docs(decl):
    doc = {b"summary": decl.summary.encode(), b"since": decl.since.encode(),
           b"group": decl.group.encode(), b"complexity": decl.complexity.encode()}
    if decl.subcommands:
        doc[b"subcommands"] = {sub.name.encode(): command_docs(sub) for sub in decl.subcommands.values()}
    return doc


container("command", -1, acl="slow connection", flags="loading stale", group="server", since="2.8.13",
          complexity="O(N) where N is the total number of Redis commands",
          summary="Describes every command.")


def command_(c, argv):
    return [command_info(d) for d in REGISTRY.values()]


REGISTRY["command"].handler = command_
REGISTRY["command"].tips = ["nondeterministic_output_order"]


@command("command|count", 2, since="2.8.13", summary="Counts the commands the server knows.", **COMMAND_SUB)
def command_count(c, argv):
    return len(REGISTRY)


@command("command|info", -2, tips="nondeterministic_output_order", since="2.8.13",
         complexity="O(N) where N is the number of commands to look up",
         summary="Describes the named commands.", **COMMAND_SUB)
def command_info_(c, argv):
    if len(argv) == 2:
        return [command_info(d) for d in REGISTRY.values()]
    out = []
    for name in argv[2:]:
        decl = _lookup(name)
        out.append(command_info(decl) if decl is not None else None)
    return out


def _lookup(name):
    text = name.decode("latin-1").lower()
    if "|" in text:
        parent, sub = text.split("|", 1)
        p = REGISTRY.get(parent)
        return p.subcommands.get(sub) if p is not None else None
    return REGISTRY.get(text)


@command("command|docs", -2, tips="nondeterministic_output_order", since="7.0.0",
         complexity="O(N) where N is the number of commands to look up",
         summary="Describes the named commands in words.", **COMMAND_SUB)
def command_docs_(c, argv):
    names = argv[2:] or [n.encode() for n in REGISTRY]
    out = {}
    for name in names:
        decl = _lookup(name)
        if decl is not None:
            out[decl.name.encode()] = command_docs(decl)
    return out


@command("command|list", -2, tips="nondeterministic_output_order", since="7.0.0",
         complexity="O(N) where N is the total number of Redis commands",
         summary="Lists command names, optionally filtered.", **COMMAND_SUB)
def command_list(c, argv):
    decls = list(REGISTRY.values())
    if len(argv) > 2:
        if len(argv) != 5 or argv[2].lower() != b"filterby":
            raise ReplyError(errors.SYNTAX)
        kind, value = argv[3].lower(), argv[4]
        if kind == b"pattern":
            names = [d.name for d in decls] + [s.name for d in decls for s in d.subcommands.values()]
            return [n.encode() for n in names if glob_match(value, n.encode(), nocase=True)]
        if kind == b"aclcat":
            cat = "@" + value.decode("latin-1").lower()
            return [d.name.encode() for d in decls if cat in d.acl]
        if kind == b"module":
            return []
        raise ReplyError(errors.SYNTAX)
    return [d.name.encode() for d in decls]


def _getkeys(argv):
    decl = find_decl(argv[2])
    if decl is None:
        raise ReplyError("ERR Invalid command specified")
    cmd_argv = argv[2:]
    if decl.subcommands and len(cmd_argv) >= 2:
        sub = decl.subcommands.get(cmd_argv[1].decode("latin-1").lower())
        if sub is None:
            raise ReplyError("ERR Invalid command specified")
        decl = sub
    # Valkey's order: a command without keys, then the arity, then the keys
    if not decl.key_specs and decl.first_key == 0 and decl.getkeys is None:
        raise ReplyError("ERR The command has no key arguments")
    if (decl.arity > 0 and len(cmd_argv) != decl.arity) or len(cmd_argv) < -decl.arity:
        raise ReplyError("ERR Invalid number of arguments specified for command")
    optional = "no_mandatory_keys" in decl.flags
    try:
        idx = decl.key_indexes(cmd_argv)
    except ReplyError:
        if not optional:
            raise
        idx = []        # EVAL with a numkeys past the end: as with 0 keys
    if not idx and not optional:
        raise ReplyError("ERR Invalid arguments specified for command")
    return decl, cmd_argv, idx


@command("command|getkeys", -3, since="2.8.13", complexity="O(N) where N is the number of arguments to the command",
         summary="Extracts the key names from a full command line.", **COMMAND_SUB)
def command_getkeys(c, argv):
    _, cmd_argv, idx = _getkeys(argv)
    return [cmd_argv[i] for i in idx]


@command("command|getkeysandflags", -3, since="7.0.0",
         complexity="O(N) where N is the number of arguments to the command",
         summary="Extracts the key names from a full command line, with their key-spec flags.", **COMMAND_SUB)
def command_getkeysandflags(c, argv):
    decl, cmd_argv, idx = _getkeys(argv)
    out = []
    for i in idx:
        flags = []
        if decl.key_flags is not None:
            flags = decl.key_flags(cmd_argv, i)
        for spec in decl.key_specs if not flags else ():
            if i in spec.keys(cmd_argv):
                flags = spec.flags
                break
        out.append([cmd_argv[i], RespSet([Status(f.encode()) for f in flags])])
    return out


@command("command|help", 2, since="5.0.0", summary="Describes the COMMAND subcommands.", **COMMAND_SUB)
def command_help(c, argv):
    return help_reply("COMMAND", [
        "(no subcommand)", "    Return details about all commands.",
        "COUNT", "    Return the total number of commands.",
        "LIST [FILTERBY (MODULE <name>|ACLCAT <cat>|PATTERN <pattern>)]", "    Return command names.",
        "INFO [<command-name> ...]", "    Return details about the named commands.",
        "DOCS [<command-name> ...]", "    Return documentation of the named commands.",
        "GETKEYS <full-command>", "    Return the keys of a full command line.",
        "GETKEYSANDFLAGS <full-command>", "    Return the keys and their flags.",
    ])
