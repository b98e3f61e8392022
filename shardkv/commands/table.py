"""The command table: the single source of truth for every command shardkv
serves. A command is declared once, next to its handler, with @command(...):
name, arity, flags, key positions (first/last/step and key specs), ACL
categories, group and a summary in our own words. The gate (arity, auth,
MULTI) and call() read the compiled Command objects built from here; COMMAND
INFO/DOCS/GETKEYS and the router's key lookup read the declarations.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shardkv.native import _native

# COMMAND INFO lists flags in this order; the bit of each is its index.
FLAG_ORDER = [
    "write", "readonly", "denyoom", "module", "admin", "pubsub", "noscript",
    "blocking", "loading", "stale", "skip_monitor", "skip_commandlog", "asking",
    "fast", "no_auth", "may_replicate", "no_mandatory_keys", "no_async_loading",
    "no_multi", "movablekeys", "allow_busy",
]
FLAG_BITS = {name: 1 << i for i, name in enumerate(FLAG_ORDER)}
# shardkv-internal flags, never shown by COMMAND
INTERNAL_FLAGS = {"tx_control": _native.TX_CONTROL, "pubsub_context": _native.PUBSUB_CONTEXT}


@dataclass
class KeySpec:
    """One key specification, as COMMAND INFO shows it.

    begin: ("index", n) or ("keyword", word, startfrom) or ("unknown",)
    find:  ("range", lastkey, keystep, limit) or ("keynum", keynumidx, firstkey, keystep)
           or ("unknown",)
    notes: Valkey's free-text remark on the spec ("" for none)
    """
    flags: list[str]
    begin: tuple
    find: tuple
    notes: str = ""

    @classmethod
    def parse(cls, text: str) -> "KeySpec":
        """'RO access: index 1, range 0 1 0' and friends, optionally followed
        by ' | notes text'."""
        text, _, notes = text.partition(" | ")
        flags_part, _, rest = text.partition(":")
        begin_text, _, find_text = rest.partition(",")
        b = begin_text.split()
        if b[0] == "index":
            begin = ("index", int(b[1]))
        elif b[0] == "keyword":
            begin = ("keyword", b[1], int(b[2]))
        else:
            begin = ("unknown",)
        f = find_text.split()
        if f[0] == "range":
            find = ("range", int(f[1]), int(f[2]), int(f[3]))
        elif f[0] == "keynum":
            find = ("keynum", int(f[1]), int(f[2]), int(f[3]))
        else:
            find = ("unknown",)
        return cls(flags_part.split(), begin, find, notes)

    def reply(self):
        if self.begin[0] == "index":
            begin = {b"type": b"index", b"spec": {b"index": self.begin[1]}}
        elif self.begin[0] == "keyword":
            begin = {b"type": b"keyword",
                     b"spec": {b"keyword": self.begin[1].encode(), b"startfrom": self.begin[2]}}
        else:
            begin = {b"type": b"unknown", b"spec": {}}
        if self.find[0] == "range":
            find = {b"type": b"range", b"spec": {b"lastkey": self.find[1], b"keystep": self.find[2],
                                                 b"limit": self.find[3]}}
        elif self.find[0] == "keynum":
            find = {b"type": b"keynum", b"spec": {b"keynumidx": self.find[1], b"firstkey": self.find[2],
                                                  b"keystep": self.find[3]}}
        else:
            find = {b"type": b"unknown", b"spec": {}}
        reply = {b"notes": self.notes.encode()} if self.notes else {}
        reply.update({b"flags": _native.RespSet([_native.Status(f.encode()) for f in self.flags]),
                      b"begin_search": begin, b"find_keys": find})
        return reply

    def keys(self, argv: list[bytes]) -> list[int]:
        """Indexes of argv that this spec says are keys."""
        argc = len(argv)
        if self.begin[0] == "index":
            start = self.begin[1]
        elif self.begin[0] == "keyword":
            word, startfrom = self.begin[1].lower().encode(), self.begin[2]
            if startfrom >= 0:
                rng = range(startfrom, argc)
            else:
                rng = range(argc + startfrom, 0, -1)
            for i in rng:
                if 0 < i < argc and argv[i].lower() == word:
                    start = i + 1
                    break
            else:
                return []
        else:
            return []
        if start >= argc:
            return []
        if self.find[0] == "range":
            lastkey, step, limit = self.find[1:]
            if lastkey >= 0:
                last = start + lastkey
            elif limit > 1 and lastkey == -1:
                last = start + (argc - start) // limit - 1
            else:
                last = argc + lastkey
            return list(range(start, min(last, argc - 1) + 1, step))
        if self.find[0] == "keynum":
            idx, first, step = self.find[1:]
            try:
                n = int(argv[start + idx])
            except (ValueError, IndexError):
                raise _native.ReplyError("ERR Invalid arguments specified for command") from None
            first_key = start + first
            out = list(range(first_key, first_key + n * step, step))
            if out and out[-1] >= argc:
                raise _native.ReplyError("ERR Invalid arguments specified for command")
            return out
        return []


@dataclass
class CommandDecl:
    name: str                       # lower case; "container|sub" for subcommands
    arity: int
    flags: list[str]
    acl: list[str]
    first_key: int = 0
    last_key: int = 0
    key_step: int = 0
    key_specs: list[KeySpec] = field(default_factory=list)
    handler: object = None
    fast: int = 0
    group: str = "generic"
    summary: str = ""
    since: str = "1.0.0"
    complexity: str = "O(1)"
    tips: list[str] = field(default_factory=list)
    internal: list[str] = field(default_factory=list)
    subcommands: dict = field(default_factory=dict)
    getkeys: object = None          # custom key finder for movablekeys commands
    key_flags: object = None        # (argv, key index) -> key-spec flags, where the specs can't tell
    compiled: object = None

    @property
    def full_name(self):
        return self.name

    def key_indexes(self, argv):
        """The positions of the keys in argv, from the key specs (or getkeys)."""
        if self.getkeys is not None:
            return self.getkeys(argv)
        if self.key_specs:
            seen = []
            for spec in self.key_specs:
                for i in spec.keys(argv):
                    if i not in seen:
                        seen.append(i)
            return sorted(seen) if len(self.key_specs) > 1 else seen
        if self.first_key <= 0:
            return []
        last = self.last_key if self.last_key >= 0 else len(argv) + self.last_key
        return list(range(self.first_key, last + 1, self.key_step))


REGISTRY: dict[str, CommandDecl] = {}

# Summaries of container commands (written with their subcommands' modules)
CONTAINERS: dict[str, CommandDecl] = {}


def command(name, arity, flags="", acl="", keys=None, specs=(), group="generic",
            summary="", since="1.0.0", complexity="O(1)", tips="", internal="",
            fast=False, getkeys=None, key_flags=None):
    """Declares a command; used as a decorator on its handler.

    keys: (first, last, step) as in COMMAND INFO; specs: key spec strings
    (see KeySpec.parse). A name "container|sub" declares a subcommand.
    fast=True marks one of the hot commands implemented in Cython (hot.pxi):
    then the decorated function is not called and only documents it.
    """
    def register(fn):
        first, last, step = keys if keys else (0, 0, 0)
        acl_list = [("@" + a if not a.startswith("@") else a) for a in acl.split()]
        decl = CommandDecl(
            name=name, arity=arity, flags=flags.split(), acl=acl_list,
            first_key=first, last_key=last, key_step=step,
            key_specs=[KeySpec.parse(s) for s in specs],
            handler=None if fast else fn,
            fast=_native.FAST_IDS[name] if fast else 0,
            group=group, summary=summary, since=since, complexity=complexity,
            tips=tips.split(), internal=internal.split(), getkeys=getkeys, key_flags=key_flags,
        )
        if "|" in name:
            parent, sub = name.split("|", 1)
            CONTAINERS[parent].subcommands[sub] = decl
        else:
            REGISTRY[name] = decl
        return fn
    return register


def container(name, arity=-2, flags="", acl="slow", group="generic", summary="", since="1.0.0",
              complexity="Depends on subcommand."):
    """Declares a command made of subcommands (OBJECT, CONFIG, CLIENT...)."""
    decl = CommandDecl(name=name, arity=arity, flags=flags.split(),
                       acl=["@" + a for a in acl.split()], group=group, summary=summary,
                       since=since, complexity=complexity)
    REGISTRY[name] = decl
    CONTAINERS[name] = decl
    return decl


def _compile(decl: CommandDecl, parent=None):
    cmd = _native.Command()
    cmd.name = decl.name
    cmd.arity = decl.arity
    bits = 0
    for f in decl.flags:
        bits |= FLAG_BITS[f]
    for f in decl.internal:
        bits |= INTERNAL_FLAGS[f]
    cmd.flags = bits
    cmd.first_key, cmd.last_key, cmd.key_step = decl.first_key, decl.last_key, decl.key_step
    cmd.handler = decl.handler
    cmd.fast = decl.fast
    cmd.meta = decl
    cmd.parent = parent
    if decl.subcommands:
        cmd.subcommands = {}
        for sub_name, sub in decl.subcommands.items():
            sc = _compile(sub, cmd)
            cmd.subcommands[sub_name.encode()] = sc
    decl.compiled = cmd
    return cmd


def load_all():
    """Imports every module of shardkv.commands: each registers its commands,
    so a new data type is one new module."""
    import importlib
    import pkgutil

    import shardkv.commands as package
    for info in pkgutil.iter_modules(package.__path__):
        if info.name not in ("table", "common"):
            importlib.import_module(f"shardkv.commands.{info.name}")
    return REGISTRY


def build_dispatch_table():
    """bytes name (lower and upper case) -> compiled Command, for the gate."""
    load_all()
    table = {}
    for name, decl in REGISTRY.items():
        cmd = _compile(decl)
        table[name.encode()] = cmd
        table[name.upper().encode()] = cmd
    return table


def all_commands():
    load_all()
    return REGISTRY


def find_decl(name: bytes):
    load_all()
    return REGISTRY.get(name.decode("latin-1").lower())
