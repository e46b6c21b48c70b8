"""The disk a kernel can fill (autograder/host/sandbox.py): its folder and /tmp are bounded tmpfs, its socket
folder is its own, what they hold counts as memory, and nothing it writes reaches the host's disk. Without
the sandbox, the launcher's watch stops a kernel whose folder grows past its limit."""

import os
import socket
import subprocess
import time

import pytest
from corpus.disk_fill import FILL  # the measured attack: ten files of 500 MB in 8 MB writes

from autograder.host import sandbox

UID = 61998
MB = 2**20


def _filled(line: str) -> tuple[int, str]:
    """FILL's report (``N MB written, stopped by [errors]``) as (N, the errors' list as printed)."""
    written, _, errors = line.partition(" MB written, stopped by ")
    return int(written), errors


def _start(scratch, code, ipc_dir=None, data=None, **cfg):
    """``code`` run by the kernels' Python in a sandbox like a kernel's (no kernel); (process, sandbox pid)."""
    settings = {**sandbox.settings(), "device": "cpu", **cfg}
    root = os.geteuid() == 0
    zr, zw = os.pipe()
    cr, cw = os.pipe()
    for w in (zw, cw):
        os.write(w, b"{}")
        os.close(w)
    info_r, info_w = os.pipe()
    fds = {"zip": zr, "connection": cr, "info": info_w}
    size = sandbox.scratch_bytes(settings)
    argv = sandbox.bwrap_argv(str(scratch), ipc_dir, settings, fds, root, data=data, size=size)
    argv += ["--"] + (["/usr/bin/setpriv", f"--reuid={UID}", f"--regid={UID}", "--clear-groups", "--inh-caps=-all",
                       "--bounding-set=-all", "--"] if root else [])
    argv += [sandbox.interpreter(), *sandbox.KERNEL_FLAGS, "-c", (sandbox.COPY_IN if data else "") + code]
    if root and data:
        sandbox._chown_tree(data, UID)
    limits = sandbox._limits(settings, UID if root else os.getuid())
    try:
        # stdin stays open: a sandbox may wait on it
        proc = subprocess.Popen(argv, pass_fds=(zr, cr, info_w), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, preexec_fn=limits)
    finally:
        for fd in (zr, cr, info_w):
            os.close(fd)
    return proc, sandbox.sandbox_pid(info_r)


def _run(scratch, code, **kw):
    proc, _ = _start(scratch, code, **kw)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return out.splitlines()


def _host_bytes(path) -> int:
    return sandbox.folder_bytes([str(path)], 2**62)


@pytest.fixture
def bwrap():
    ok, why = sandbox.bwrap_works()
    assert ok, f"these tests need bubblewrap: {why}"


def test_the_folder_and_tmp_fill_up_in_the_kernel_and_not_on_the_host(tmp_path, bwrap):
    data = tmp_path / "data" / "01_lstm_cell"  # the launcher's copy of the data files; the folder's path inside
    (data / "sub").mkdir(parents=True)
    (data / "weights.txt").write_text("the student's data")
    (data / "sub" / "more.txt").write_text("nested")
    before = _host_bytes(tmp_path)
    lines = _run(data, FILL + """
print(open("weights.txt").read(), open("sub/more.txt").read(), sep="|")
try:
    open("/grader/data/weights.txt", "w")
except OSError as err:
    print(errno.errorcode[err.errno])
print(fill("."))
print(fill("/tmp"))
print(os.path.realpath("."))
""", data=str(data), scratch_mb=48, tmp_mb=32)
    assert lines[0] == "the student's data|nested"  # copied in
    assert lines[1] == "EROFS"  # the launcher's copy stays as it was
    written, errors = _filled(lines[2])
    assert errors == "['ENOSPC']" and 40 <= written <= 48, lines[2]
    written, errors = _filled(lines[3])
    assert errors == "['ENOSPC']" and 24 <= written <= 32, lines[3]
    assert lines[4] == str(data)
    # 10 x 500 MB attempted: the host lost nothing, its copy of the data is untouched
    assert _host_bytes(tmp_path) == before
    assert sorted(p.name for p in data.rglob("*")) == ["more.txt", "sub", "weights.txt"]
    assert (data / "weights.txt").read_text() == "the student's data"


def test_the_socket_folder_is_the_kernels_own(tmp_path, bwrap):
    ipc = tmp_path / "ipc"
    ipc.mkdir(mode=0o700)
    connection = {"ip": str(ipc / "k"), "shell_port": 1, "iopub_port": 2, "stdin_port": 3, "control_port": 4,
                  "hb_port": 5}
    proc, pid = _start(tmp_path / "scratch", FILL + f"""
import socket
server = socket.socket(socket.AF_UNIX)
server.bind({str(ipc / "k-1")!r})
server.listen(1)
print(fill({str(ipc)!r}, files=5), flush=True)
made = 0
try:
    for made in range(2000):
        open(os.path.join({str(ipc)!r}, f"empty{{made}}"), "w").close()
except OSError as err:
    print(errno.errorcode[err.errno])
print("files", made + 1, flush=True)
conn, _ = server.accept()
conn.sendall(b"reached through the link")
conn.close()
""", ipc_dir=str(ipc))
    links = sandbox.link_sockets(connection, str(ipc), pid)
    try:
        got = b""
        for _ in range(600):  # the sandbox binds its socket when it is ready
            with socket.socket(socket.AF_UNIX) as client:
                try:
                    client.connect(str(ipc / "k-1"))
                    got = client.recv(100)
                    break
                except OSError:
                    time.sleep(0.1)
        out, err = proc.communicate(timeout=120)
    finally:
        sandbox._unlink_links(links)
    assert got == b"reached through the link", out + err
    written, errors = _filled(out.splitlines()[0])
    assert errors == "['ENOSPC']" and written <= 1, out
    assert out.splitlines()[1] == "files 2000"
    assert sorted(os.listdir(ipc)) == [], "nothing of the kernel's reached the host's socket folder"
    assert sorted(links) == [f"{ipc}/k-{n}" for n in range(1, 6)]


def test_files_in_memory_count_as_the_kernels_memory(tmp_path, bwrap):
    """The watchdog adds the sandbox's tmpfs to resident memory: 96 MB in /tmp stops a kernel limited to 64 MB,
    and not one limited to 4096 MB (the control)."""
    proc, pid = _start(tmp_path / "scratch", """
import sys
open("/tmp/big", "wb").write(bytes(96 * 2**20))
print("written", flush=True)
sys.stdin.read()
""", tmp_mb=128)
    try:
        assert proc.stdout.readline().strip() == "written"
        size = sandbox.scratch_bytes({"scratch_mb": sandbox.settings()["scratch_mb"]})
        loose = sandbox.Watchdog.for_kernel({"memory_mb": 4096}, "bwrap", str(tmp_path / "scratch"), None, size, pid)
        tight = sandbox.Watchdog.for_kernel({"memory_mb": 64}, "bwrap", str(tmp_path / "scratch"), None, size, pid)
        assert loose.why_stop(proc.pid) == ""
        assert 96 * MB <= loose.files_in_memory() < 100 * MB
        assert "files in memory 96 MB" in tight.why_stop(proc.pid)
    finally:
        proc.kill()
        proc.communicate()


def test_without_the_sandbox_the_watch_stops_a_full_folder(tmp_path):
    folder, ipc = tmp_path / "scratch", tmp_path / "ipc"
    folder.mkdir()
    ipc.mkdir()
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(ipc / "k-1"))  # sockets do not count
        watch = sandbox.Watchdog.for_kernel({"memory_mb": 2**20}, "none", str(folder), str(ipc), 16 * MB, None)
        (folder / "data.bin").write_bytes(bytes(8 * MB))
        assert watch.why_stop(os.getpid()) == ""  # the control: under the limit
        (ipc / "stash.bin").write_bytes(bytes(12 * MB))
        assert watch.why_stop(os.getpid()) == "killed: its files went over the limit of 16 MB"
    (ipc / "stash.bin").unlink()
    for k in range(5000):  # empty files count a block each
        (folder / f"e{k}").touch()
    assert watch.why_stop(os.getpid()) == "killed: its files went over the limit of 16 MB"
