"""`python -m shardkv server`: config files, command-line overrides, start-up
errors, signals, and the refusal to run without the compiled core."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .conftest import HOST, REPO_ROOT, free_port, shardkv_command, subprocess_env

pytestmark = pytest.mark.integration


def run_and_fail(argv, cwd=REPO_ROOT, env=None, timeout=15, port=None):
    """Runs a server that must refuse to start; returns (returncode, output).
    If it answers PING on `port` instead, it is stopped and the test fails at once."""
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(argv, cwd=str(cwd), env=env or subprocess_env(),
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout
            while proc.poll() is None and time.monotonic() < deadline:
                if port is not None and not port_is_closed(port):
                    break   # listening: it did start
                time.sleep(0.05)
        finally:
            running = proc.poll() is None
            if running:
                proc.kill()
            proc.wait(10)
            log.seek(0)
            out = log.read().decode("utf-8", "replace")
    if running:
        pytest.fail(f"the server started instead of refusing to (exit code expected):\n{out}")
    return proc.returncode, out


def write_config(tmp_path: Path, text: str, name="shardkv.conf") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def no_retry(port, **kw) -> redis.Redis:
    return redis.Redis(host=HOST, port=port, socket_timeout=10, retry=Retry(NoBackoff(), 0), **kw)


def port_is_closed(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((HOST, port)) != 0


# ---------------------------------------------------------------------------
# config files and overrides
# ---------------------------------------------------------------------------


def test_config_file(tmp_path, start_shardkv):
    port = free_port()
    conf = write_config(tmp_path, f"""# shardkv test configuration
port {port}

bind {HOST}
   requirepass "s3cret pass"
maxclients 77
hz 20
""")
    srv = start_shardkv([], config_file=str(conf), port=port, pass_port=False,
                        password="s3cret pass")
    r = redis.Redis(host=HOST, port=port, password="s3cret pass", socket_timeout=10)
    try:
        assert r.ping()
        assert r.config_get("maxclients") == {"maxclients": "77"}
        assert r.config_get("hz") == {"hz": "20"}
        assert r.config_get("port") == {"port": str(port)}
        assert r.config_get("requirepass") == {"requirepass": "s3cret pass"}
        with pytest.raises(redis.AuthenticationError):
            no_retry(port).get("k")
    finally:
        r.close()
    assert srv.alive()


def test_command_line_overrides_config_file(tmp_path, start_shardkv):
    file_port, flag_port = free_port(), free_port()
    while flag_port == file_port:
        flag_port = free_port()
    conf = write_config(tmp_path, f"port {file_port}\nbind {HOST}\nrequirepass secret\n"
                                  "maxclients 77\nhz 20\n")
    srv = start_shardkv([str(conf), "--port", str(flag_port), "--requirepass", "other",
                         "--maxclients", "99"],
                        port=flag_port, pass_port=False, password="other")
    r = redis.Redis(host=HOST, port=flag_port, password="other", socket_timeout=10)
    try:
        assert r.config_get("port") == {"port": str(flag_port)}
        assert r.config_get("maxclients") == {"maxclients": "99"}
        assert r.config_get("hz") == {"hz": "20"}            # from the file, not overridden
        assert r.config_get("requirepass") == {"requirepass": "other"}
        with pytest.raises(redis.AuthenticationError):
            no_retry(flag_port, password="secret").ping()
    finally:
        r.close()
    assert port_is_closed(file_port), "the port of the config file must not be used"
    assert srv.alive()


def test_command_line_only(start_shardkv):
    srv = start_shardkv(["--bind", HOST, "--maxclients", "123", "--save", "",
                         "--client-output-buffer-limit", "normal", "1mb", "0", "0"])
    r = redis.Redis(host=HOST, port=srv.port, socket_timeout=10)
    try:
        assert r.config_get("maxclients") == {"maxclients": "123"}
        assert r.config_get("save") == {"save": ""}
        assert r.config_get("client-output-buffer-limit")["client-output-buffer-limit"] \
            .startswith("normal 1048576 0 0")
    finally:
        r.close()


# ---------------------------------------------------------------------------
# start-up errors
# ---------------------------------------------------------------------------

BAD_LINES = [
    pytest.param("foo bar", "Bad directive or wrong number of arguments", id="unknown-directive"),
    pytest.param("maxclients abc", "argument couldn't be parsed into an integer", id="maxclients-abc"),
    pytest.param("port 70000", "argument must be between 0 and 65535 inclusive", id="port-range"),
    pytest.param("appendonly maybe", "argument must be 'yes' or 'no'", id="bool"),
    pytest.param("maxmemory 12xb", "argument must be a memory value", id="memory"),
    pytest.param("loglevel loud", "argument(s) must be one of the following: debug, verbose, "
                                  "notice, warning, nothing", id="enum"),
    pytest.param('requirepass "abc', "Unbalanced quotes in configuration line", id="quotes"),
    # what redis-server 7.0 and valkey-server 9.1 both answer:
    pytest.param("maxclients 1 2", "wrong number of arguments", id="int-two-values"),
    pytest.param("maxclients", "wrong number of arguments", id="int-no-value"),
    pytest.param("requirepass a b", "wrong number of arguments", id="string-two-values"),
    pytest.param("requirepass", "wrong number of arguments", id="string-no-value"),
]


@pytest.mark.parametrize("line, reason", BAD_LINES)
def test_bad_config_line_stops_start_up(tmp_path, line, reason):
    port = free_port()
    conf = write_config(tmp_path, f"# comment\nport {port}\n\nbind {HOST}\n{line}\nhz 10\n",
                        name="broken.conf")
    code, out = run_and_fail(shardkv_command(str(conf)), port=port)
    assert code != 0, out
    assert str(conf) in out, out
    assert "line 5" in out, out
    assert f">>> '{line}'" in out, out
    assert reason in out, out
    assert "Traceback" not in out, out
    assert port_is_closed(port)


def test_bad_line_in_included_file(tmp_path):
    inner = write_config(tmp_path, "hz 10\nmaxclients abc\n", name="inner.conf")
    outer = write_config(tmp_path, f"bind {HOST}\ninclude {inner}\n", name="outer.conf")
    code, out = run_and_fail(shardkv_command(str(outer), "--port", str(free_port())))
    assert code != 0
    assert str(inner) in out and "line 2" in out and "couldn't be parsed into an integer" in out, out


@pytest.mark.parametrize("args, reason", [
    (["--maxclients", "abc"], "argument couldn't be parsed into an integer"),
    (["--no-such-directive", "1"], "Bad directive or wrong number of arguments"),
    (["--port", "-1"], "argument must be between 0 and 65535 inclusive"),
])
def test_bad_command_line_value_stops_start_up(args, reason):
    code, out = run_and_fail(shardkv_command("--bind", HOST, *args))
    assert code != 0, out
    assert reason in out, out
    assert "Traceback" not in out, out


def test_missing_config_file():
    code, out = run_and_fail(shardkv_command("/nonexistent/shardkv.conf", "--port", str(free_port())))
    assert code != 0
    assert "/nonexistent/shardkv.conf" in out, out


def test_port_in_use(start_shardkv):
    srv = start_shardkv(["--bind", HOST])
    code, out = run_and_fail(shardkv_command("--port", str(srv.port), "--bind", HOST))
    assert code != 0
    assert str(srv.port) in out, out
    assert "Traceback" not in out, out
    assert srv.alive()


# ---------------------------------------------------------------------------
# signals
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_cleanly(start_shardkv, sig):
    srv = start_shardkv(["--bind", HOST])
    idle = socket.create_connection((HOST, srv.port), timeout=5)
    busy = redis.Redis(host=HOST, port=srv.port, socket_timeout=5)
    stuck = socket.create_connection((HOST, srv.port), timeout=5)
    try:
        busy.set("k", b"v" * (1024 * 1024))
        # a client that never reads 20 MB of replies, one in the middle of a transaction
        stuck.sendall(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n" * 20)
        busy.execute_command("MULTI")
        time.sleep(0.1)
        started = time.monotonic()
        srv.proc.send_signal(sig)
        try:
            code = srv.proc.wait(5)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{sig.name} did not stop the server within 5 seconds")
        assert code == 0, srv.output()
        assert time.monotonic() - started < 5
        assert port_is_closed(srv.port)
        idle.settimeout(2)
        try:
            assert idle.recv(1) == b""          # the server closed our connection
        except ConnectionResetError:
            pass
        assert sig.name in srv.output()
    finally:
        idle.close()
        busy.close()
        stuck.close()


# ---------------------------------------------------------------------------
# the compiled core is required
# ---------------------------------------------------------------------------

HIDE_NATIVE = """
import sys
class HideNative:
    def find_spec(self, name, path=None, target=None):
        if name == "shardkv._native":
            raise ImportError("hidden by the test")
        return None
sys.meta_path.insert(0, HideNative())
import shardkv.native
print("imported anyway")
"""


def _assert_clear_missing_core_message(code, out):
    assert code not in (0, None), out
    assert "compiled core" in out, out
    assert "shardkv._native" in out, out
    assert "build_ext" in out or "pip install" in out, out
    assert "Traceback" not in out, out
    assert "imported anyway" not in out


def test_missing_native_module_via_import_hook():
    code, out = run_and_fail([sys.executable, "-c", HIDE_NATIVE])
    _assert_clear_missing_core_message(code, out)


def test_missing_native_module_in_a_copy_without_the_extension(tmp_path):
    pkg = tmp_path / "shardkv"
    shutil.copytree(REPO_ROOT / "shardkv", pkg,
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))
    assert not list(pkg.glob("_native*.so"))
    env = subprocess_env()
    # -S keeps site-packages out, so an editable install of the real package
    # cannot shadow the copy
    env["PYTHONPATH"] = str(tmp_path)
    port = free_port()
    code, out = run_and_fail([sys.executable, "-S", "-m", "shardkv", "server", "--port", str(port),
                              "--bind", HOST], cwd=tmp_path, env=env, port=port)
    _assert_clear_missing_core_message(code, out)
    assert port_is_closed(port)
    # and a plain import of shardkv.native from that copy says the same
    code, out = run_and_fail([sys.executable, "-S", "-c", "import shardkv.native"], cwd=tmp_path, env=env)
    _assert_clear_missing_core_message(code, out)


def test_failover_with_nothing_running(tmp_path):
    out = subprocess.run([sys.executable, "-m", "shardkv", "failover", "--shard", "0", "--port", "1",
                          "--dir", str(tmp_path)], capture_output=True, text=True, timeout=30, env=subprocess_env())
    assert out.returncode != 0 and "nothing running on port 1" in out.stderr
    out = subprocess.run([sys.executable, "-m", "shardkv", "failover", "--port", "1"],
                         capture_output=True, text=True, timeout=30, env=subprocess_env())
    assert out.returncode == 2 and "--shard" in out.stderr
