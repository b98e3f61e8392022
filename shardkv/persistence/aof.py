"""The append-only file, laid out as Redis 7 lays it out: a directory
(`appenddirname`) holding one base file (an RDB snapshot: the "RDB
preamble"), the incremental files written since (RESP commands), and a
manifest naming them:

    file appendonly.aof.1.base.rdb seq 1 type b
    file appendonly.aof.1.incr.aof seq 1 type i

Writes reach the file through the server's command feed (the one
propagation point, already deterministic: SET EX -> SET PXAT, SELECT when
the database changes, MULTI/EXEC around multi-write calls). The feed is
buffered and written before the loop sleeps, which is also before any
reply of this loop pass is sent: with appendfsync always the fsync happens
there too, so an acknowledged write is on disk. With everysec a helper
thread fsyncs once a second; with no the kernel decides.

A rewrite (BGREWRITEAOF, the automatic rewrite, CONFIG SET appendonly yes)
first opens a new incremental file and records it in the manifest, so new
writes never wait for the child; the child writes the new base; when it
succeeds the manifest is replaced by one naming the new base and the new
incremental file, and the old files are deleted.

Loading reads and checks every file before running any command: a file
that ends in the middle of a command is cut back to its last complete
command when it is the last file and aof-load-truncated is yes; anything
else malformed stops the server with the file and offset, touching
nothing."""

from __future__ import annotations

import logging
import os
import threading
import time

from shardkv._rdbcodec import RdbError, scan_commands
from shardkv.native import _native
from shardkv.persistence.snapshot import atomic_write, fsync_dir

log = logging.getLogger("shardkv")

LOADER_FLAGS = _native.CLIENT_FLAGS["MASTER"] | _native.CLIENT_FLAGS["ROUTED"]


class AofError(Exception):
    """An append-only file that cannot be loaded; the text says why."""


def parse_manifest(text):
    """[(name, seq, type)] from a manifest; AofError on a malformed line."""
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        words = line.split()
        if len(words) % 2:
            raise AofError(f"Invalid AOF manifest file format (line {number})")
        kv = dict(zip(words[0::2], words[1::2], strict=True))
        try:
            name, seq, kind = kv["file"], int(kv["seq"]), kv["type"]
        except (KeyError, ValueError):
            raise AofError(f"Invalid AOF manifest file format (line {number})") from None
        if kind not in ("b", "i", "h") or "/" in name:
            raise AofError(f"Invalid AOF manifest file format (line {number})")
        out.append((name, seq, kind))
    if sum(1 for _, _, k in out if k == "b") > 1:
        raise AofError("Found duplicate base file information in the AOF manifest")
    return out


def format_manifest(base, incrs):
    lines = []
    if base is not None:
        lines.append(f"file {base[0]} seq {base[1]} type b\n")
    for name, seq in incrs:
        lines.append(f"file {name} seq {seq} type i\n")
    return "".join(lines)


class AppendOnlyFile:
    def __init__(self, persistence, offline=False):
        self.offline = offline      # a one-off rewrite while appendonly is off
        self.p = persistence
        self.s = persistence.s
        cfg = self.s.config
        self.dirname = os.path.join(cfg["dir"], cfg["appenddirname"])
        self.basename = cfg["appendfilename"]
        self.buf = bytearray()
        self.fd = -1
        self.base = None            # (name, seq)
        self.incrs = []             # [(name, seq)]
        self.write_error = None
        self.unsynced = False
        self.last_fsync = time.monotonic()
        self._fsync_thread = None
        self.rewrite_scheduled = False
        self.last_rewrite_ok = True
        self.rewrites = 0
        self.rewrite_failures = 0
        self.last_rewrite_time_sec = -1
        self.current_size = 0
        self.base_size = 0
        self.rewrite_base_size = 0
        self.rewrite_pending = None  # (new incr name, its seq) while a child runs
        self.attached = False

    # ------------------------------------------------------------ paths
    def path(self, name):
        return os.path.join(self.dirname, name)

    def manifest_path(self):
        return self.path(self.basename + ".manifest")

    def _write_manifest(self, base, incrs):
        text = format_manifest(base, incrs).encode()
        atomic_write(self.manifest_path(), lambda f: f.write(text))

    # ------------------------------------------------------------ start-up
    def load_or_create(self):
        """Loads the AOF if its manifest exists; otherwise creates one from
        the current data (an RDB file is loaded first, so turning AOF on
        keeps what the snapshot held). Then starts appending."""
        keys = 0
        if os.path.exists(self.manifest_path()):
            keys = self.load()
        else:
            rdb_path = self.p.rdb_path()
            if os.path.exists(rdb_path):
                try:
                    keys = self.p.load_rdb_file(rdb_path)
                except (RdbError, OSError) as e:
                    raise AofError(f"cannot load the RDB file {rdb_path}: {e}") from None
            os.makedirs(self.dirname, exist_ok=True)
            self._create_fresh()
        self.attach()
        return keys

    def _create_fresh(self, seq=1):
        """A new base from the current data and an empty incremental file,
        both numbered seq, and the manifest naming them."""
        base = (f"{self.basename}.{seq}.base.rdb", seq)
        self.p.write_rdb(self.path(base[0]), aof_base=True)
        incr = (f"{self.basename}.{seq}.incr.aof", seq)
        with open(self.path(incr[0]), "wb") as f:
            os.fsync(f.fileno())
        self._write_manifest(base, [incr])
        self.base, self.incrs = base, [incr]
        self.base_size = os.path.getsize(self.path(base[0]))
        self.current_size = self.rewrite_base_size = self.base_size
        self._open_incr(incr[0])

    def create_replacing_old(self):
        """CONFIG SET appendonly yes: files of an earlier run no longer
        describe the data; new ones (numbered after them) replace them."""
        old = []
        if os.path.exists(self.manifest_path()):
            try:
                with open(self.manifest_path(), encoding="utf-8") as f:
                    old = parse_manifest(f.read())
            except (OSError, AofError):
                old = []
        seq = max((q for _, q, _ in old), default=0) + 1
        self._create_fresh(seq)
        for name, _, _ in old:
            try:
                os.unlink(self.path(name))
            except OSError:
                pass

    def load(self):
        """Reads the manifest and every file it names, checks them all, then
        applies them. AofError (with the reason) on anything wrong."""
        try:
            with open(self.manifest_path(), encoding="utf-8") as f:
                entries = parse_manifest(f.read())
        except OSError as e:
            raise AofError(f"cannot read the AOF manifest {self.manifest_path()}: {e}") from None
        base = next(((n, q) for n, q, k in entries if k == "b"), None)
        incrs = sorted(((n, q) for n, q, k in entries if k == "i"), key=lambda e: e[1])
        if base is None and not incrs:
            raise AofError("The AOF manifest names no file")
        # read and check everything before touching the dataset
        snap = None
        base_cmds = None      # a base written as commands (older Redis)
        if base is not None:
            data = self._read(base[0])
            if data[:5] == b"REDIS" or data[:6] == b"VALKEY":
                try:
                    snap = self.p.parse_rdb(data)
                except RdbError as e:
                    raise AofError(f"Bad file format reading the append only file {base[0]}: {e}. "
                                   f"make a backup of your AOF file, then fix it") from None
            else:
                end = self._check_file(base[0], data, last=False)
                base_cmds = data[:end]
        incr_cmds = []
        truncated_at = None
        for i, (name, _) in enumerate(incrs):
            data = self._read(name)
            last = i == len(incrs) - 1
            end = self._check_file(name, data, last)
            if end < len(data):
                truncated_at = end
            incr_cmds.append(data[:end])
        if truncated_at is not None:
            name = incrs[-1][0]
            log.warning("!!! Warning: short read while loading the AOF file %s!!!", name)
            log.warning("AOF %s loaded anyway because aof-load-truncated is enabled", name)
            os.truncate(self.path(name), truncated_at)
        keys = 0
        if snap is not None:
            try:
                self.p.check_slots(snap, self.path(base[0]))
            except RdbError as e:
                raise AofError(str(e)) from None
            keys = self.p.apply_snapshot(snap)
        loader = self.s.attach_client(_native.Client())
        loader.flags |= LOADER_FLAGS
        loader.authenticated = True
        replayed = 0
        try:
            for data in ([base_cmds] if base_cmds else []) + incr_cmds:
                replayed += self._replay(loader, data)
        finally:
            self.s.close_client(loader)
        self.base = base
        self.incrs = incrs
        self.base_size = os.path.getsize(self.path(base[0])) if base else 0
        self.current_size = self.base_size + sum(os.path.getsize(self.path(n)) for n, _ in incrs)
        self.rewrite_base_size = self.current_size
        if incrs:
            self._open_incr(incrs[-1][0])
        else:
            self._start_new_incr()
        log.info("AOF: %d keys from the base, %d commands replayed", keys, replayed)
        return keys + replayed

    def _read(self, name):
        try:
            with open(self.path(name), "rb") as f:
                return f.read()
        except OSError as e:
            raise AofError(f"cannot open the append only file {self.path(name)}: {e.strerror}") from None

    def _check_file(self, name, data, last):
        """The length of data made of whole commands. A file cut inside its
        last command is accepted (up to there) only when it is the last
        file and aof-load-truncated is yes; anything malformed is refused."""
        count, end, status, offset = scan_commands(data)
        if status == 0:
            return end
        if status == 1:
            if last and self.s.config["aof-load-truncated"]:
                return end
            raise AofError(
                f"Unexpected end of file reading the append only file {name} (offset {end}). You can: "
                f"1) Make a backup of your AOF file, then use ./redis-check-aof --fix <filename.manifest>. "
                f"2) Alternatively you can set the 'aof-load-truncated' configuration option to yes and "
                f"restart the server.")
        raise AofError(f"Bad file format reading the append only file {name} (offset {offset}, after "
                       f"{count} good commands): make a backup of your AOF file, then use "
                       f"./redis-check-aof --fix <filename.manifest>")

    def _replay(self, loader, data):
        """Runs the (checked) commands of data through the gate, as the
        compiled parser reads them; returns how many ran."""
        s = self.s
        s.run_argv(loader, [b"SELECT", b"0"])
        before = s.stat_numcommands
        s.now_ms = _native.now_ms()
        step = 1 << 22
        pos = 0
        while pos < len(data):
            # whole commands per feed, so that the clock moves on between them
            count, end, _, _ = scan_commands(data[pos:pos + step])
            if count == 0:
                end = len(data) - pos
            s.feed_client(loader, data[pos:pos + end])
            pos += end
            s.now_ms = _native.now_ms()
        if loader.flags & _native.CLIENT_FLAGS["MULTI"]:
            log.warning("Revert incomplete MULTI/EXEC transaction in AOF file")
            s.run_argv(loader, [b"DISCARD"])
        return s.stat_numcommands - before

    # ------------------------------------------------------------ appending
    def attach(self):
        if not self.attached:
            self.s.add_feed_consumer(self.feed)
            self.attached = True

    def feed(self, data):
        self.buf += data

    def _open_incr(self, name):
        self._wait_fsync()
        if self.fd >= 0:
            os.close(self.fd)
        self.fd = os.open(self.path(name), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        # the next write of the feed starts with a SELECT
        self.s.feed_db = -1

    def _start_new_incr(self):
        seq = max((q for _, q in self.incrs), default=0) + 1
        incr = (f"{self.basename}.{seq}.incr.aof", seq)
        self.flush(force=True)
        open(self.path(incr[0]), "ab").close()
        self._write_manifest(self.base, self.incrs + [incr])
        self.incrs = self.incrs + [incr]
        self._open_incr(incr[0])
        return incr

    def flush(self, force=False):
        """Writes what the feed buffered; with appendfsync always, fsyncs."""
        if not self.buf or self.fd < 0:
            return
        data = bytes(self.buf)
        written = 0
        try:
            while written < len(data):
                written += os.write(self.fd, data[written:])
        except OSError as e:
            del self.buf[:written]
            self.current_size += written
            if self.write_error is None:
                log.warning("Error writing to the AOF file: %s", e.strerror)
            self.write_error = e.strerror
            self.p._update_misconf()
            return
        del self.buf[:written]
        self.current_size += written
        self.unsynced = True
        if self.s.config["appendfsync"] == "always":
            self.fsync_now()
        if self.write_error is not None:
            log.warning("AOF write error looks solved, Redis can write again.")
            self.write_error = None
            self.p._update_misconf()

    def fsync_now(self):
        if self.fd < 0 or not self.unsynced:
            return
        self._wait_fsync()
        try:
            os.fsync(self.fd)
        except OSError as e:
            self.write_error = e.strerror
            self.p._update_misconf()
            return
        self.unsynced = False
        self.last_fsync = time.monotonic()

    def _wait_fsync(self):
        t = self._fsync_thread
        if t is not None:
            t.join()
            self._fsync_thread = None

    def fsync_pending(self):
        t = self._fsync_thread
        return t is not None and t.is_alive()

    def _background_fsync(self):
        fd = self.fd

        def work():
            try:
                os.fsync(fd)
            except OSError as e:
                log.warning("fsync of the AOF failed: %s", e.strerror)
        self._fsync_thread = threading.Thread(target=work, name="aof-fsync", daemon=True)
        self._fsync_thread.start()

    def before_sleep(self):
        if self.buf:
            self.flush()

    def cron(self):
        cfg = self.s.config
        if self.buf:
            self.flush()
        if cfg["appendfsync"] == "everysec" and self.unsynced and \
                time.monotonic() - self.last_fsync >= 1 and not self.fsync_pending():
            self._fsync_thread = None
            self.unsynced = False
            self.last_fsync = time.monotonic()
            self._background_fsync()
        if self.p.child_pid:
            return
        if self.rewrite_scheduled:
            self.rewrite_scheduled = False
            self.start_rewrite()
            return
        perc = cfg["auto-aof-rewrite-percentage"]
        if perc and self.current_size > cfg["auto-aof-rewrite-min-size"]:
            base = self.rewrite_base_size or 1
            growth = self.current_size * 100 // base - 100
            if growth >= perc:
                log.info("Starting automatic rewriting of AOF on %d%% growth", growth)
                self.start_rewrite()

    # ------------------------------------------------------------ rewriting
    def start_rewrite(self):
        """Opens a new incremental file, then forks a child that writes the
        new base. Raises OSError if that cannot be done."""
        if self.offline:
            os.makedirs(self.dirname, exist_ok=True)
            if os.path.exists(self.manifest_path()):
                with open(self.manifest_path(), encoding="utf-8") as f:
                    entries = parse_manifest(f.read())
                self.base = next(((n, q) for n, q, k in entries if k == "b"), None)
                self.incrs = [(n, q) for n, q, k in entries if k == "i"]
            new_incr = None
        else:
            new_incr = self._start_new_incr()

        def work():
            self.p.write_rdb(self.path("temp-rewriteaof-bg-%d.aof" % os.getpid()), aof_base=True)
        pid = self.p.fork_child("aof", work)
        tmp_name = "temp-rewriteaof-bg-%d.aof" % pid
        self.rewrite_pending = (new_incr, tmp_name)
        log.info("Background append only file rewriting started by pid %d", pid)
        return pid

    def rewrite_done(self, pid, elapsed):
        new_incr, tmp_name = self.rewrite_pending
        self.rewrite_pending = None
        base_seq = (self.base[1] if self.base else 0) + 1
        base = (f"{self.basename}.{base_seq}.base.rdb", base_seq)
        if new_incr is None:
            keep = []
        else:
            keep = [e for e in self.incrs if e[1] >= new_incr[1]]
        old = ([self.base[0]] if self.base else []) + [n for n, _ in self.incrs if (n, _) not in keep]
        try:
            os.replace(self.path(tmp_name), self.path(base[0]))
            fsync_dir(self.dirname)
            self._write_manifest(base, keep)
        except OSError as e:
            log.warning("Error trying to install the rewritten AOF: %s", e)
            self.rewrite_failed(cancelled=False)
            return
        self.base, self.incrs = base, keep
        for name in old:
            try:
                os.unlink(self.path(name))
            except OSError:
                pass
        self.base_size = os.path.getsize(self.path(base[0]))
        self.current_size = self.base_size + sum(os.path.getsize(self.path(n)) for n, _ in keep)
        self.rewrite_base_size = self.current_size
        self.rewrites += 1
        self.rewrite_failures = 0
        self.last_rewrite_ok = True
        self.last_rewrite_time_sec = int(elapsed)
        log.info("Background AOF rewrite finished successfully")

    def rewrite_failed(self, cancelled):
        self.rewrite_pending = None
        if not cancelled:
            self.rewrite_failures += 1
            self.last_rewrite_ok = False
            log.warning("Background AOF rewrite terminated with error")

    def remove_temp(self, pid):
        try:
            os.unlink(self.path("temp-rewriteaof-bg-%d.aof" % pid))
        except OSError:
            pass

    # ------------------------------------------------------------ stopping
    def close(self):
        self.flush(force=True)
        self.fsync_now()
        self._wait_fsync()
        if self.attached:
            self.s.remove_feed_consumer(self.feed)
            self.attached = False
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
