"""Each grading kernel in its own sandbox, with limits, started through a kernelspec.

nbgrader starts kernels from a kernelspec; ours (``lstm-course-sandbox``, written by ``write_kernelspec``)
runs ``python -m autograder.host.sandbox kernel {connection_file}``, this module's launcher, as the grader.
The launcher starts the real kernel (``autograder.kernel.boot.main``, then ipykernel) inside bubblewrap:

- the file system holds only what the kernel needs: /usr, the Python installation and the environment,
  read-only; its own folder (its cwd, with a copy of the data files beside the notebook), a private /tmp
  and a folder for its ``ipc`` sockets, writable, all three in memory and bounded (below). Not the course:
  not source/, solutions/, the gradebook, other students' work or the grader's hidden tests: of the grader it gets only
  ``autograder/kernel`` (the probe), in an archive that it deletes before the first cell;
- no network (its own, empty network namespace: the kernel talks to nbgrader over unix sockets,
  which is why the kernel manager uses the ``ipc`` transport), its own PID, IPC and UTS namespaces,
  ``interrupt_mode: message`` (signals cannot reach into the PID namespace);
- limits: address space (memory), CPU seconds, processes, file size, bounded folders (below), and a
  watchdog on resident memory; run as root, each kernel also gets its own unprivileged uid, so process
  limits and signals cannot touch another kernel.

Disk: nothing a sandboxed kernel writes lands on the host's disk. Its folder is a tmpfs of ``scratch_mb``
(``LSTM_KERNEL_SCRATCH_MB``) on top of its data files: the launcher's copy of them (``datafiles.copy_data``, at
most 64 MB, on the host) is bound read-only at ``/grader/data`` and the kernel's first line (``COPY_IN``)
copies it into the tmpfs. /tmp is a tmpfs of ``tmp_mb``. Writing past either fails in the kernel (ENOSPC).
The sockets: ipykernel binds them (nbgrader connects), so the kernel needs a folder it can write. nbgrader's
socket folder, shared with the kernels before and after this one, would let it fill the host's disk, and
write access to it cannot be taken back in time (ipykernel binds, and the first cell can run, before the
launcher's next look); watching it would miss a file deleted while kept open. So the kernel gets a 1 MiB
tmpfs of its own at that folder's path and binds there, and the launcher puts at each socket path on the host
a symbolic link to the socket through ``/proc/<sandbox>/root``, which nbgrader's connections follow: the
kernel never sees the host's socket folder. tmpfs pages are memory:
the watchdog adds the bytes and files in the sandbox's in-memory file systems (its folder, /tmp, /grader, the
socket folder, and bubblewrap's own / and /dev, which a kernel started without root can write) to its
resident memory and stops it past ``memory_mb``.

Without bubblewrap nothing bounds the disk: the kernel can write wherever this user can. The launcher still
watches its folder and the socket folder (anything there but a socket) every half second and stops a kernel
whose files there pass the folder's limit; a file written elsewhere, or deleted while kept open, escapes it.

Without a working bubblewrap the launcher runs the kernel with the limits only and says so loudly
(``probe``, ``describe``); ``LSTM_SANDBOX=none`` asks for that on purpose, ``LSTM_SANDBOX=bwrap`` makes
a missing bubblewrap an error.

The launcher also reads the kernel's channel (``autograder/kernel/boot.py``) and appends what it reports,
as the kernel's claims, to the grading log named by ``LSTM_GRADING_LOG``.

Where the batch runs a fork server (``autograder/host/forkserver.py``: as root, ``LSTM_FORKSERVER`` set),
bubblewrap makes the same sandbox with a placeholder command, and the server forks the kernel into it, warm:
``Forked``; otherwise, or if the server cannot, bubblewrap starts a fresh Python: ``Execed``.
"""

import ast
import contextlib
import io
import json
import os
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

from .. import gradelog
from ..settings import ENV, Settings, from_environment
from ..settings import load as load_settings
from .datafiles import Copied, copy_data

KERNEL_NAME = "lstm-course-sandbox"
BOOT = "import sys; sys.path.insert(0, sys.argv[1]); import autograder.kernel.boot as b; b.main(sys.argv[1:])"
# The kernel's Python: -P puts no directory of the kernel's (its cwd, the scratch) on sys.path, -s no user
# site; -I is not used because it would also drop PYTHONHASHSEED, which keeps grading reproducible, and the
# sandbox's environment is cleared anyway.
KERNEL_FLAGS = ("-P", "-s", "-B")
PACKAGE = Path(__file__).resolve().parents[1]  # autograder/

# The environment variables the batch sets for the launchers it starts (their one definition: autograder/settings.py).
MODE_ENV, CPU_ENV, THREADS_ENV, UID_ENV, DEVICE_ENV = (ENV[k] for k in (
    "sandbox", "cpu_seconds", "threads", "uid", "device"))
BWRAP_ENV = "LSTM_BWRAP"  # the bubblewrap binary (default: bwrap on PATH)
DEFAULT_CPU_SECONDS = Settings().cpu_seconds
FILE_SIZE_MB = 512
DATA_IN = "/grader/data"  # the launcher's copy of the data files, as the sandbox sees it (read-only)
# The kernel's first line: its data files into its folder (the tmpfs it starts in), then BOOT.
COPY_IN = ("import os, shutil\n"
           f"for e in os.scandir({DATA_IN!r}):\n"
           "    (shutil.copytree if e.is_dir(follow_symlinks=False) else shutil.copy2)(e.path, e.name)\n")
IPC_TMPFS_BYTES = 2**20  # the kernel's socket folder: sockets take no space
INODE_BYTES = 1024  # what one file costs the host's memory on a tmpfs whatever its size (inode and name), roughly
FORKSERVER = Path(__file__).with_name("forkserver.py")  # the batch's warm parent of kernels (run as a script)
# The sandbox's own command while a forked kernel lives in it: it says the sandbox is ready (bubblewrap runs its
# command once every mount is in place; its --info-fd comes earlier, while they are being made), then waits.
PLACEHOLDER = "echo >&{fd}; exec {fd}>&-; exec /usr/bin/sleep infinity"
FORK_REPLY_SECONDS = 120  # how long a launcher waits for the fork server (importing, busy) before starting Python


def settings() -> dict:
    """The launcher's settings (``autograder/settings.py``), as the dict the functions below take."""
    s = load_settings()
    return {"mode": s.sandbox, "memory_mb": s.memory_mb, "cpu_seconds": s.cpu_seconds, "procs": s.procs,
            "threads": s.threads, "uid": s.uid, "log": s.grading_log, "tmp_mb": s.tmp_mb, "device": s.device,
            "scratch_mb": s.scratch_mb, "forkserver": s.forkserver}


def write_kernelspec(dest: Path) -> Path:
    """``dest/kernels/lstm-course-sandbox/kernel.json``; put ``dest`` on JUPYTER_PATH to use it."""
    spec_dir = dest / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        # -I: nbgrader starts the launcher in the notebook's folder; nothing there may shadow a module
        "argv": [sys.executable, "-I", "-m", "autograder.host.sandbox", "kernel", "{connection_file}"],
        "display_name": "Python (LSTM course, sandboxed grading)",
        "language": "python",
        "interrupt_mode": "message",
        "metadata": {"debugger": False},
        "kernel_protocol_version": "5.5",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1))
    return spec_dir


# --------------------------------------------------------------------------- what the kernel may see


def interpreter() -> str:
    """The environment's Python as the sandbox sees it: its folder resolved, because the sandbox binds
    resolved paths (a ``.venv`` reached through a symbolic link is not there under its linked name)."""
    return os.path.join(os.path.realpath(os.path.dirname(sys.executable)), os.path.basename(sys.executable))


def _python_roots() -> list[str]:
    roots = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    roots.add(os.path.dirname(os.path.dirname(os.path.realpath(sys.executable))))
    for entry in sys.path:
        if entry and os.path.isdir(entry) and ("-packages" in entry):
            roots.add(os.path.realpath(entry))
    # keep the outermost of nested roots
    kept = []
    for root in sorted(roots, key=len):
        if not any(root == k or root.startswith(k + os.sep) for k in kept):
            kept.append(root)
    return [r for r in kept if not r.startswith("/usr/") and r != "/usr"]


def scratch_bytes(cfg: dict, copied: Copied | None = None) -> int:
    """The size of the kernel's folder: ``scratch_mb`` on top of the data files (a page per entry for rounding)."""
    return cfg["scratch_mb"] * 2**20 + (copied.bytes + copied.entries * 4096 if copied else 0)


def memory_mounts(scratch: str, ipc_dir: str | None) -> list[str]:
    """The sandbox's file systems in memory (tmpfs) that the kernel can write, as paths inside it."""
    return ["/", "/dev", "/tmp", "/grader", scratch] + ([ipc_dir] if ipc_dir else [])


class _Ancestors:
    """``--dir`` arguments creating a path's missing ancestors world-traversable (bwrap would make them 0700),
    each once."""

    def __init__(self):
        self.made = {"/", "/usr", "/tmp", "/proc", "/dev", "/grader"}

    def __call__(self, path: str) -> list[str]:
        out, parts = [], Path(path).parts
        for k in range(2, len(parts)):
            anc = os.path.join(*parts[:k])
            if anc not in self.made:
                self.made.add(anc)
                out += ["--perms", "0755", "--dir", anc]
        return out


def _system(cfg: dict, parents: _Ancestors) -> list[str]:
    """What every kernel sees of the machine, read-only: /usr and the top-level links into it, a few files of
    /etc, Python's folders, /proc, /dev and the CPU (or, on a GPU, the NVIDIA devices); a private /tmp."""
    argv = ["--ro-bind", "/usr", "/usr"]
    for link in ("bin", "lib", "lib64", "sbin", "lib32", "libx32"):
        target = os.path.join("/", link)
        if os.path.islink(target):
            argv += ["--symlink", os.readlink(target), target]
        elif os.path.isdir(target):
            argv += ["--ro-bind", target, target]
    # The private /tmp comes before the read-only binds: a checkout or venv under /tmp stays visible.
    argv += ["--size", str(cfg["tmp_mb"] * 2**20), "--tmpfs", "/tmp", "--dir", "/tmp/home"]
    for etc in ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "fonts", "localtime", "nsswitch.conf",
                "passwd", "group", "hosts", "alternatives", "ssl/certs", "mime.types"):
        if os.path.exists(f"/etc/{etc}"):
            argv += parents(f"/etc/{etc}") + ["--ro-bind", f"/etc/{etc}", f"/etc/{etc}"]
    for root in _python_roots():
        argv += parents(root) + ["--ro-bind", root, root]
    argv += ["--proc", "/proc", "--dev", "/dev"]
    if cfg["device"].startswith("cuda"):
        for dev in sorted(Path("/dev").glob("nvidia*")):
            argv += ["--dev-bind", str(dev), str(dev)]
        argv += ["--ro-bind-try", "/sys", "/sys"]
    elif os.path.isdir("/sys/devices/system/cpu"):
        argv += parents("/sys/devices/system/cpu") + ["--ro-bind", "/sys/devices/system/cpu", "/sys/devices/system/cpu"]
    return argv


def bwrap_argv(scratch: str, ipc_dir: str | None, cfg: dict, fds: dict, as_root: bool,
               assignment: str = "", data: str | None = None, size: int | None = None) -> list[str]:
    """bubblewrap's command line for one kernel (everything but the command it runs).

    ``scratch`` is the kernel's folder inside (a tmpfs of ``size`` bytes, default ``scratch_bytes(cfg)``);
    ``data``, a host folder bound read-only at ``DATA_IN``; ``fds["info"]``, where bubblewrap writes the
    sandbox's process id (``--info-fd``).
    """
    bwrap = os.environ.get(BWRAP_ENV) or shutil.which("bwrap") or "bwrap"
    parents = _Ancestors()
    argv = [bwrap, "--die-with-parent", "--new-session", "--unshare-pid", "--unshare-net", "--unshare-ipc",
            "--unshare-uts", "--unshare-cgroup-try", "--hostname", "grading"]
    if not as_root:
        argv += ["--unshare-user"]
    argv += _system(cfg, parents)
    argv += ["--size", str(64 * 2**20), "--tmpfs", "/grader"]
    argv += ["--perms", "0644", "--file", str(fds["zip"]), "/grader/autograder.zip"]
    argv += ["--perms", "0666", "--file", str(fds["connection"]), "/grader/connection.json"]
    if data:
        argv += ["--ro-bind", data, DATA_IN]
    argv += ["--chmod", "0777", "/grader", "--chmod", "1777", "/tmp", "--chmod", "0777", "/tmp/home"]
    argv += parents(scratch) + _tmpfs(scratch, size or scratch_bytes(cfg))
    if ipc_dir:
        argv += parents(ipc_dir) + _tmpfs(ipc_dir, IPC_TMPFS_BYTES)
    if "info" in fds:
        argv += ["--info-fd", str(fds["info"])]
    argv += ["--chdir", scratch, "--clearenv"]
    for name, value in kernel_env(cfg, assignment).items():
        argv += ["--setenv", name, value]
    return argv


def _tmpfs(path: str, size: int) -> list[str]:
    return ["--size", str(size), "--tmpfs", path, "--chmod", "0777", path]


def kernel_env(cfg: dict, assignment: str = "") -> dict:
    threads = str(cfg["threads"] or max(1, (os.cpu_count() or 1)))
    env = {
        "HOME": "/tmp/home", "USER": "student", "LOGNAME": "student", "TMPDIR": "/tmp",
        "PATH": f"{os.path.dirname(interpreter())}:/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        "MPLCONFIGDIR": "/tmp/home/.matplotlib", "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1", "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
        "OPENBLAS_NUM_THREADS": threads, "MALLOC_ARENA_MAX": "2", THREADS_ENV: threads,
        DEVICE_ENV: cfg["device"], "CUBLAS_WORKSPACE_CONFIG": ":4096:8",
        "NBGRADER_EXECUTION": os.environ.get("NBGRADER_EXECUTION", "autograde"),
        "JUPYTER_PLATFORM_DIRS": "1", "TORCHINDUCTOR_CACHE_DIR": "/tmp/inductor",
        "LSTM_ASSIGNMENT": assignment,
    }
    for name in ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES"):
        if name in os.environ:
            env[name] = os.environ[name]
    return env


def warm_imports(notebooks: list[Path]) -> list[str]:
    """What the fork server imports beyond ``forkserver.PRELOAD`` for kernels grading these (source) notebooks:
    the modules their code cells import at the top (the grader's own package left out: kernels never get it),
    and ``torch._dynamo`` where they use ``torch.optim``, whose optimizers import it on their first step."""
    found: list[str] = []
    for path in notebooks:
        try:
            cells = [c for c in json.loads(path.read_text())["cells"] if c.get("cell_type") == "code"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        for cell in cells:
            source = "".join(cell.get("source", ""))
            try:
                body = ast.parse(source).body
            except SyntaxError:
                continue
            names = [a.name for n in body if isinstance(n, ast.Import) for a in n.names]
            names += [n.module for n in body if isinstance(n, ast.ImportFrom) and n.level == 0 and n.module]
            if "torch.optim" in source:
                names.append("torch._dynamo")
            found += [n for n in names if n.split(".")[0] != "autograder"]
    return list(dict.fromkeys(found))


@contextlib.contextmanager
def forkserver(mode: str, env: dict, preload: list[str] = ()):
    """The fork server (``autograder/host/forkserver.py``) of the kernels that launchers started with ``env`` run,
    importing ``preload`` too: yields what to add to ``env`` to point them at it; nothing where kernels start
    fresh Pythons (not root, not sandboxed, or ``LSTM_WARM_KERNELS=0``). It runs in the kernels' environment,
    with a home of its own."""
    cfg = from_environment(env)
    if mode != "bwrap" or os.geteuid() != 0 or not cfg.warm_kernels:
        yield {}
        return
    folder = tempfile.mkdtemp(prefix="lstm-fork-")  # 0700: only root can reach the socket
    path = os.path.join(folder, "socket")
    own = {"HOME": folder, "TMPDIR": folder, "MPLCONFIGDIR": os.path.join(folder, "matplotlib")}
    server_env = {**kernel_env({"threads": cfg.threads, "device": cfg.device}), **own}
    proc = subprocess.Popen([interpreter(), *KERNEL_FLAGS, str(FORKSERVER), path, str(os.getpid()), *preload], cwd="/",
                            env=server_env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):  # it listens first, then imports: launchers that come early wait in its queue
            if os.path.exists(path) or proc.poll() is not None:
                break
            time.sleep(0.05)
        yield {ENV["forkserver"]: path} if os.path.exists(path) and proc.poll() is None else {}
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(folder, ignore_errors=True)


# --------------------------------------------------------------------------- probing


_PROBED: dict = {}


def bwrap_works() -> tuple[bool, str]:
    """Whether bubblewrap can start a sandbox like the kernels' here, and why not.

    The probe is what a kernel gets: the same interpreter path, flags, mounts and a fresh scratch
    directory of its own; it checks that Python starts as this environment (its ``sys.prefix``).
    """
    binary = os.environ.get(BWRAP_ENV) or shutil.which("bwrap") or ""
    if binary in _PROBED:
        return _PROBED[binary]
    if not binary or not os.access(binary, os.X_OK):
        result = (False, f"bubblewrap ({binary or 'bwrap'}) is not installed: apt-get install bubblewrap")
    else:
        scratch = tempfile.mkdtemp(prefix="lstm-probe-")
        cfg = {**settings(), "device": "cpu"}
        zr, zw = os.pipe()
        cr, cw = os.pipe()
        os.write(zw, b"x")
        os.write(cw, b"{}")
        os.close(zw)
        os.close(cw)
        argv = bwrap_argv(scratch, None, cfg, {"zip": zr, "connection": cr}, os.geteuid() == 0)
        argv += ["--", interpreter(), *KERNEL_FLAGS, "-c", "import sys; print(sys.prefix)"]
        want = os.path.realpath(sys.prefix)
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=60, pass_fds=(zr, cr), cwd="/")
            got = done.stdout.strip()
            ok = done.returncode == 0 and os.path.realpath(got or "/nonexistent") == want
            result = (ok, "" if ok else f"bwrap failed here: {(done.stderr.strip() or got)[-500:]}")
        except (OSError, subprocess.TimeoutExpired) as err:
            result = (False, f"bwrap failed here: {err}")
        finally:
            os.close(zr)
            os.close(cr)
            shutil.rmtree(scratch, ignore_errors=True)
    _PROBED[binary] = result
    return result


def resolve_mode(requested: str | None = None) -> tuple[str, str]:
    """("bwrap" | "none", why) for the requested mode: auto, bwrap or none."""
    requested = requested or load_settings().sandbox
    if requested == "none":
        return "none", "sandbox switched off (LSTM_SANDBOX=none)"
    ok, why = bwrap_works()
    if ok:
        return "bwrap", "bubblewrap sandbox"
    if requested == "bwrap":
        raise RuntimeError(f"LSTM_SANDBOX=bwrap but {why}")
    return "none", why


def describe(mode: str, why: str) -> str:
    if mode == "bwrap":
        return ("sandbox: bubblewrap (own file system view, no network, own PID namespace) with memory, CPU, "
                "process, file-size and folder-size limits per kernel")
    bar = "!" * 78
    return (f"{bar}\n!! WARNING: grading WITHOUT a sandbox: {why}.\n"
            "!! Kernels still get memory, CPU, process and file-size limits and the in-kernel guard, but student\n"
            "!! code can read and write anything this user can (the course, the gradebook, other students).\n"
            f"!! Install bubblewrap (apt-get install bubblewrap) to grade untrusted submissions.\n{bar}")


# --------------------------------------------------------------------------- the launcher


def kernel_archive() -> bytes:
    """What the kernel gets of the grader, as a zip: ``autograder/kernel`` and an empty package above it."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("autograder/__init__.py", "")
        for path in sorted((PACKAGE / "kernel").glob("*.py")):
            zf.write(path, f"autograder/kernel/{path.name}")
    return buf.getvalue()


def _fd_with(data: bytes) -> int:
    fd = os.memfd_create("grader", 0)
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _count_tasks(uid: int) -> int:
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if os.stat(entry.path).st_uid == uid:
                total += len(os.listdir(os.path.join(entry.path, "task")))
        except OSError:
            continue
    return total


def rlimits(cfg: dict, uid: int) -> dict:
    """The kernel's limits, as ``resource`` names and (soft, hard)."""
    procs = cfg["procs"] + (0 if os.geteuid() == 0 else _count_tasks(uid))
    limits = {}
    if not cfg["device"].startswith("cuda"):  # CUDA reserves huge address ranges; the watchdog covers it
        limits["RLIMIT_AS"] = (cfg["memory_mb"] * 2**20,) * 2
    limits["RLIMIT_CPU"] = (cfg["cpu_seconds"], cfg["cpu_seconds"] + 5)
    limits["RLIMIT_NPROC"] = (procs, procs)
    limits["RLIMIT_FSIZE"] = (FILE_SIZE_MB * 2**20,) * 2
    limits["RLIMIT_CORE"] = (0, 0)
    return limits


def _limits(cfg: dict, uid: int):
    import resource

    limits = rlimits(cfg, uid)

    def apply():
        os.setsid()
        for name, value in limits.items():
            resource.setrlimit(getattr(resource, name), value)

    return apply


class GradingLog:
    """The launcher's part of the grading log (``autograder/gradelog.py``)."""

    def __init__(self, path: str, context: dict):
        self.path, self.context = path, context

    def write(self, record: dict) -> None:
        gradelog.append(self.path, {**self.context, **record})

    def pump(self, fd: int) -> None:
        """The kernel's records (``kind<TAB>name=value...``), each marked as coming from the kernel; past
        ``MAX_KERNEL_RECORDS`` one garbled record says so and the rest is read and dropped (student code can
        write to the channel: it must not fill the log)."""
        written = 0

        def write(record):
            nonlocal written
            written += 1
            if written <= MAX_KERNEL_RECORDS:
                self.write(record)
            elif written == MAX_KERNEL_RECORDS + 1:
                self.write({"kind": "garbled", "detail": f"more than {MAX_KERNEL_RECORDS} records on the kernel's "
                            "channel: the rest were dropped"})

        with os.fdopen(fd, "rb", buffering=0) as stream:
            pending = b""
            while True:
                try:
                    chunk = stream.read(65536)
                except OSError:
                    break
                if not chunk:
                    break
                pending += chunk
                while b"\n" in pending:
                    raw, pending = pending.split(b"\n", 1)
                    write(kernel_record(raw))
                if len(pending) > 65536:
                    write({"kind": "garbled", "detail": "unterminated data on the kernel's channel"})
                    pending = b""


KERNEL_KINDS = frozenset({"boot", "refused", "attempt"})
MAX_KERNEL_RECORDS = 256  # the kernel's own reports stop at 200 (boot.MAX_RECORDS); more is student code writing


def kernel_record(raw: bytes) -> dict:
    """One line from the kernel's channel as a log record; anything unexpected is logged as garbled."""
    if len(raw) > 8192:
        return {"kind": "garbled", "detail": f"{len(raw)} bytes on the kernel's channel"}
    kind, *fields = raw.decode("utf-8", "replace").split("\t")
    if kind not in KERNEL_KINDS or len(fields) > 12:
        return {"kind": "garbled", "detail": raw.decode("utf-8", "replace")[:300]}
    record = {"kind": kind, "from": "kernel"}
    for field in fields:
        name, _, value = field.partition("=")
        if name.isidentifier() and name not in ("kind", "from", "time"):
            record[name] = value[:300]
    return record


def _tree_rss_kb(roots: list[int], not_counted: set = frozenset()) -> int:
    """Resident memory of processes and their descendants (those ``not_counted`` left out, not theirs)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            pid, ppid = int(entry.name), int(fields[1])
            children.setdefault(ppid, []).append(pid)
            rss[pid] = int(fields[21]) * (os.sysconf("SC_PAGE_SIZE") // 1024)
        except (OSError, ValueError, IndexError):
            continue
    total, stack, seen = 0, list(roots), set()
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        total += 0 if pid in not_counted else rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


def _describe_exit(status: int, wrapped: bool = False) -> str:
    if wrapped and status > 128 and (status - 128) in signal.Signals._value2member_map_:
        status = -(status - 128)  # bubblewrap reports its child's death by signal N as exit status 128 + N
    if status < 0:
        sig = -status
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        why = {"SIGKILL": "killed (out of memory, or stopped by the grader)", "SIGXCPU": "out of CPU time",
               "SIGABRT": "aborted (os.abort)", "SIGSEGV": "crashed (segmentation fault)",
               "SIGXFSZ": "wrote a file over the size limit"}.get(name, "ended by a signal")
        return f"{why} [{name}]"
    return f"exited with status {status}"


class Watchdog:
    """What the launcher checks every half second: the kernel's resident memory plus its files in memory
    (``mounts``, the sandbox's tmpfs seen through ``/proc/<pid>/root``, counted once ``ready``: the kernel's
    folder is mounted, with its size), and, without the sandbox, its files in ``folders`` on the host's disk."""

    def __init__(self, memory_mb: int, mounts: list[str] = (), ready: tuple[str, int] | None = None,
                 folders: list[str] = (), disk_limit: int = 0):
        self.memory = memory_mb * 2**20
        self.mounts, self.folders, self.disk_limit = list(mounts), list(folders), disk_limit
        self.probe, self.ready = ready, False

    @classmethod
    def for_kernel(cls, cfg: dict, mode: str, scratch: str, ipc_dir: str | None, size: int,
                   pid: int | None) -> "Watchdog":
        if mode != "bwrap":
            return cls(cfg["memory_mb"], folders=[scratch] + ([ipc_dir] if ipc_dir else []), disk_limit=size)
        if pid is None:
            return cls(cfg["memory_mb"])
        root = f"/proc/{pid}/root"
        return cls(cfg["memory_mb"], [root + m for m in memory_mounts(scratch, ipc_dir)], (root + scratch, size))

    def _is_ready(self) -> bool:
        # Until bubblewrap has set the sandbox up, /proc/<pid>/root is the host's root: nothing there counts.
        if not self.ready and self.probe:
            path, size = self.probe
            with contextlib.suppress(OSError):
                st = os.statvfs(path)
                self.ready = st.f_blocks * st.f_frsize == -(-size // st.f_frsize) * st.f_frsize
        return self.ready

    def files_in_memory(self) -> int:
        """Bytes in the sandbox's tmpfs, each file counted at least ``INODE_BYTES``."""
        if not self.mounts or not self._is_ready():
            return 0
        total, seen = 0, set()
        for mount in self.mounts:
            try:
                dev, st = os.stat(mount).st_dev, os.statvfs(mount)
            except OSError:
                continue
            if dev not in seen:
                seen.add(dev)
                total += (st.f_blocks - st.f_bfree) * st.f_frsize + (st.f_files - st.f_ffree) * INODE_BYTES
        return total

    def why_stop(self, pid: int | list[int], not_counted: set = frozenset()) -> str:
        """Why the kernel (process ``pid``, or the processes listed, and their descendants, but the memory of
        ``not_counted``) must be stopped now, or ''."""
        roots = [pid] if isinstance(pid, int) else pid
        resident, files = _tree_rss_kb(roots, not_counted) * 1024, self.files_in_memory()
        if resident + files > self.memory:
            return (f"killed: its memory went over the limit of {self.memory >> 20} MB "
                    f"(resident {resident >> 20} MB, files in memory {files >> 20} MB)")
        if self.folders and folder_bytes(self.folders, self.disk_limit) > self.disk_limit:
            return f"killed: its files went over the limit of {self.disk_limit >> 20} MB"
        return ""


def folder_bytes(folders: list[str], cap: int) -> int:
    """The disk taken under ``folders`` (sockets left out, at least a block per entry, links not followed);
    the count stops once past ``cap``."""
    total, todo = 0, list(folders)
    while todo and total <= cap:
        try:
            entries = list(os.scandir(todo.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISSOCK(st.st_mode):
                continue
            total += max(st.st_blocks * 512, 4096)
            if stat.S_ISDIR(st.st_mode):
                todo.append(entry.path)
    return total


SOCKETS = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")


def socket_paths(connection: dict) -> list[str]:
    """The host's paths of a kernel's ``ipc`` sockets (``<ip>-<port>``)."""
    return [f"{connection['ip']}-{connection.get(name)}" for name in SOCKETS]


def sandbox_info(info_fd: int) -> dict:
    """Bubblewrap's ``--info-fd`` report, read to its end: the sandbox's first process (``child-pid``) and its
    namespaces (``mnt-namespace``: their inode numbers); {} if none came."""
    with os.fdopen(info_fd, "rb") as stream:
        raw = stream.read(65536)
    try:
        info = json.loads(raw)
        int(info["child-pid"])
        return info
    except (ValueError, KeyError, TypeError):
        return {}


def sandbox_pid(info_fd: int) -> int | None:
    """The sandbox's first process, from bubblewrap's ``--info-fd`` report; None if none came."""
    info = sandbox_info(info_fd)
    return int(info["child-pid"]) if info else None


def link_sockets(connection: dict, ipc_dir: str, pid: int) -> dict:
    """At each of the kernel's socket paths on the host, a link to the socket it binds in its own socket folder
    (the tmpfs at ``ipc_dir`` inside the sandbox of process ``pid``); {path: target}."""
    links = {}
    for path in socket_paths(connection):
        target = f"/proc/{pid}/root{ipc_dir}/{os.path.basename(path)}"
        _remove(path)
        os.symlink(target, path)
        links[path] = target
    return links


def _unlink_links(links: dict) -> None:
    for path, target in links.items():
        with contextlib.suppress(OSError):
            if os.readlink(path) == target:
                os.unlink(path)


def _bwrap_command(cfg: dict, connection: dict, scratch: str, ipc_dir: str | None, size: int, uid: int,
                   chan_w: int, kernel_args: list[str], ready_w: int | None = None) -> tuple[list[str], list[int], int]:
    """The sandboxed kernel's command line, the descriptors it needs, and the read end of the info pipe;
    with ``ready_w``, the sandbox alone, running ``PLACEHOLDER``, for the fork server to start the kernel in."""
    as_root = os.geteuid() == 0
    if ipc_dir:  # the kernel binds its sockets in its own socket folder, at the same path
        connection = {**connection, "ip": os.path.join(ipc_dir, os.path.basename(connection["ip"]))}
    zip_fd, conn_fd = _fd_with(kernel_archive()), _fd_with(json.dumps(connection).encode())
    info_r, info_w = os.pipe()
    fds = {"zip": zip_fd, "connection": conn_fd, "info": info_w}
    # inside, the kernel's folder is a tmpfs at the path of the launcher's copy of the data, which it copies in
    argv = bwrap_argv(scratch, ipc_dir, cfg, fds, as_root, os.path.basename(scratch), data=scratch, size=size)
    argv += ["--"]
    if as_root and uid != 0:
        _chown_tree(os.path.dirname(scratch), uid)
    if ready_w is not None:
        return argv + ["/bin/sh", "-c", PLACEHOLDER.format(fd=ready_w)], [zip_fd, conn_fd, info_w, ready_w], info_r
    if as_root and uid != 0:
        argv += ["/usr/bin/setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                 "--inh-caps=-all", "--bounding-set=-all", "--"]
    argv += [interpreter(), *KERNEL_FLAGS, "-c", COPY_IN + BOOT, "/grader/autograder.zip", str(chan_w),
             "/grader/connection.json", *kernel_args]
    return argv, [zip_fd, conn_fd, info_w], info_r


def kernel_request(cfg: dict, scratch: str, uid: int, info: dict, kernel_args: list[str]) -> dict:
    """What the fork server needs to start the kernel that ``_bwrap_command`` would start, in the sandbox that
    bubblewrap's ``info`` names: its first process and its namespaces."""
    namespaces = {key.removesuffix("-namespace"): value for key, value in info.items() if key.endswith("-namespace")}
    return {"pid": int(info["child-pid"]), "namespaces": namespaces, "cwd": scratch, "uid": uid,
            "limits": rlimits(cfg, uid),
            "env": {**kernel_env(cfg, os.path.basename(scratch)), "PWD": scratch}, "code": COPY_IN + BOOT,
            "argv": ["/grader/autograder.zip", "{channel}", "/grader/connection.json", *kernel_args]}


class Forked:
    """A kernel the fork server started in the sandbox ``sandbox`` (bubblewrap running ``PLACEHOLDER``), with its
    exit status as its waiter reports it on ``conn``. Stopping the sandbox stops the kernel: it is a process of
    the sandbox's PID namespace, which ends with its first."""

    def __init__(self, sandbox: subprocess.Popen, conn: socket.socket):
        self.sandbox, self.conn, self.waiter = sandbox, conn, 0
        self.returncode: int | None = None
        self._pending = b""

    # The watchdog counts the sandbox's processes and the waiter's (orphaned by the server's helper, the waiter
    # is the host's init's child; the kernel's orphans, bubblewrap's), but the waiter's own memory, which is the
    # fork server's.
    @property
    def roots(self) -> list[int]:
        return [self.sandbox.pid, self.waiter]

    @property
    def not_counted(self) -> set[int]:
        return {self.waiter}

    @classmethod
    def start(cls, server: str, sandbox: subprocess.Popen, request: dict, fds: list[int]) -> "Forked | str":
        """The kernel, or why the server could not start it."""
        kernel = cls(sandbox, socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
        try:
            kernel.conn.connect(server)
            socket.send_fds(kernel.conn, [json.dumps(request).encode()], fds)
            kernel.conn.shutdown(socket.SHUT_WR)
            first = kernel._message(FORK_REPLY_SECONDS)
        except OSError as err:
            first = {"error": f"{type(err).__name__}: {err}"}
        if isinstance(first.get("waiter"), int):
            kernel.waiter = first["waiter"]
            return kernel
        kernel.conn.close()
        return str(first.get("error") or "no answer")

    def _message(self, timeout: float) -> dict:
        """The helper's next message; {} if none came in ``timeout`` seconds, {"eof": True} once it is gone."""
        while b"\n" not in self._pending:
            ready, _, _ = select.select([self.conn], [], [], timeout)
            if not ready:
                return {}
            chunk = self.conn.recv(65536)
            if not chunk:
                return {"eof": True}
            self._pending += chunk
        line, self._pending = self._pending.split(b"\n", 1)
        try:
            message = json.loads(line)
        except ValueError:
            return {"error": "garbled"}
        return message if isinstance(message, dict) else {"error": "garbled"}

    def wait(self, timeout: float) -> int:
        if self.returncode is None:
            message = self._message(timeout)
            if "status" in message:
                self.returncode = int(message["status"])
            elif message:  # the waiter went without a status: it was killed with the sandbox
                self.returncode = -signal.SIGKILL
        if self.returncode is None:
            raise subprocess.TimeoutExpired("kernel", timeout)
        return self.returncode

    def poll(self) -> int | None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.wait(0)
        return self.returncode

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            os.killpg(self.sandbox.pid, signal.SIGKILL)

    def close(self) -> None:
        self.kill()
        self.sandbox.wait()
        self.conn.close()


class Execed:
    """A kernel that is bubblewrap's (or, unsandboxed, the launcher's) own child process."""

    def __init__(self, proc: subprocess.Popen):
        self.proc, self.roots, self.not_counted = proc, [proc.pid], set()

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def poll(self) -> int | None:
        return self.proc.poll()

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def close(self) -> None:
        self.proc.wait()


def _plain_command(cfg: dict, connection_file: str, scratch: str, chan_w: int,
                   kernel_args: list[str]) -> tuple[list[str], dict]:
    """The kernel's command line and environment without the sandbox (the limits only)."""
    zip_path = os.path.join(os.path.dirname(scratch), "autograder.zip")
    with open(zip_path, "wb") as fh:
        fh.write(kernel_archive())
    argv = [interpreter(), *KERNEL_FLAGS, "-c", BOOT, zip_path, str(chan_w), connection_file, *kernel_args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("JPY_")}
    env.update({k: v for k, v in kernel_env(cfg, os.path.basename(scratch)).items()
                if k not in ("HOME", "TMPDIR", "PATH", "USER")})
    return argv, env


def _supervise(kernel: "Forked | Execed", watchdog: Watchdog) -> tuple[bool, str]:
    """Wait for the kernel, stopping it when nbgrader asks or goes, or when the watchdog says so;
    (whether the grader stopped it, why the watchdog did or '')."""
    stopped, why = [], ""

    def forward(signum, _frame):
        # jupyter_client sends SIGTERM when a kernel is slow to shut down: its results are in by then
        stopped.append(signum)
        kernel.kill()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    parent = os.getppid()
    while kernel.poll() is None:
        try:
            kernel.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            if os.getppid() != parent:  # nbgrader is gone (killed at its time limit): so is the kernel
                stopped.append("orphaned")
            elif not why:
                why = watchdog.why_stop(kernel.roots, kernel.not_counted)
            if stopped or why:
                kernel.kill()
    return bool(stopped), why


def _start(cfg: dict, mode: str, connection: dict, connection_file: str, scratch: str, ipc_dir: str | None,
           size: int, uid: int, chan_w: int, kernel_args: list[str], log: "GradingLog"):
    """The kernel, forked into its sandbox by the batch's fork server where there is one (as root, with a uid
    of its own), else a fresh Python; (the kernel, the sandbox's first process or None)."""
    if mode == "bwrap" and cfg["forkserver"] and os.geteuid() == 0 and uid != 0:
        ready_r, ready_w = os.pipe()
        argv, fds, info_r = _bwrap_command(cfg, connection, scratch, ipc_dir, size, uid, chan_w, kernel_args,
                                           ready_w=ready_w)
        proc = subprocess.Popen(argv, pass_fds=fds, preexec_fn=_limits(cfg, uid), cwd=scratch)
        for fd in fds:
            os.close(fd)
        info = sandbox_info(info_r)
        pid = int(info["child-pid"]) if info else None
        with os.fdopen(ready_r, "rb") as ready:
            up = ready.read(1) == b"\n"  # nothing: bubblewrap failed
        if pid and up:
            request = kernel_request(cfg, scratch, uid, info, kernel_args)
            with open(os.devnull) as stdin:
                kernel = Forked.start(cfg["forkserver"], proc, request, [stdin.fileno(), 1, 2, chan_w])
        else:
            kernel = "bubblewrap did not start"
        if isinstance(kernel, Forked):
            return kernel, pid
        log.write({"kind": "fork-failed", "detail": kernel})
        Execed(proc).kill()
        proc.wait()
    env, info_r = None, None
    if mode == "bwrap":
        argv, fds, info_r = _bwrap_command(cfg, connection, scratch, ipc_dir, size, uid, chan_w, kernel_args)
    else:
        (argv, env), fds = _plain_command(cfg, connection_file, scratch, chan_w, kernel_args), []
    proc = subprocess.Popen(argv, pass_fds=[chan_w, *fds], preexec_fn=_limits(cfg, uid), env=env, cwd=scratch)
    for fd in fds:
        os.close(fd)
    return Execed(proc), (sandbox_pid(info_r) if info_r is not None else None)


def launch(connection_file: str, kernel_args: list[str] = ()) -> int:
    cfg = settings()
    mode, why = resolve_mode(cfg["mode"])
    # nbgrader starts us in the notebook's folder (autograded/<student>/<assignment>), which nbgrader
    # writes afterwards: the kernel never gets it. It gets a folder of its own with a copy of the data
    # files there, and nothing of that folder comes back.
    notebook_dir = os.path.realpath(os.getcwd())
    connection_file = os.path.abspath(connection_file)
    os.chdir("/")
    student, assignment = Path(notebook_dir).parts[-2:]
    with open(connection_file) as fh:
        connection = json.load(fh)
    ipc_dir = _socket_folder(connection)
    if ipc_dir is None and mode == "bwrap":
        print("sandboxed kernels need the ipc transport (c.KernelManager.transport = 'ipc')", file=sys.stderr)
        return 2
    workdir = tempfile.mkdtemp(prefix="lstm-kernel-")
    scratch = os.path.join(workdir, assignment)
    copied, dropped = copy_data(notebook_dir, scratch, skip=frozenset({f"{assignment}.ipynb"}))
    size = scratch_bytes(cfg, copied)
    log = _open_log(cfg, assignment, student, {"kernel_dir": scratch, "sandbox": mode})
    for note in dropped:
        log.write({"kind": "dropped", "detail": note})
    uid = cfg["uid"] if (os.geteuid() == 0 and cfg["uid"]) else os.geteuid()

    chan_r, chan_w = os.pipe()
    log.write({"kind": "start", "detail": f"{mode}: {why}", "uid": uid, "files": copied.files})
    kernel, pid = _start(cfg, mode, connection, connection_file, scratch, ipc_dir, size, uid, chan_w,
                         list(kernel_args), log)
    os.close(chan_w)
    links = link_sockets(connection, ipc_dir, pid) if (pid and ipc_dir) else {}
    pump = threading.Thread(target=log.pump, args=(chan_r,), daemon=True)
    pump.start()
    stopped, killed = _supervise(kernel, Watchdog.for_kernel(cfg, mode, scratch, ipc_dir, size, pid))
    status = kernel.returncode
    kernel.close()
    pump.join(timeout=5)
    wrapped = mode == "bwrap" and isinstance(kernel, Execed)
    detail = killed or ("stopped by the grader" if stopped else _describe_exit(status, wrapped=wrapped))
    log.write({"kind": "exit", "status": status, "detail": detail, "requested": stopped,
               "forked": isinstance(kernel, Forked)})
    _remove_tree(workdir)
    _unlink_links(links)
    if ipc_dir and mode != "bwrap":  # unsandboxed, the kernel could write the socket folder
        with contextlib.suppress(OSError):
            for entry in os.scandir(ipc_dir):
                _remove(entry.path, keep_sockets=True)
    return 0 if status == 0 else 1


def _socket_folder(connection: dict) -> str | None:
    """The folder of the kernel's sockets (None: not the ipc transport), cleared of whatever an earlier kernel
    left on this kernel's socket paths (the folder is shared with the kernels before and after this one)."""
    if connection.get("transport") != "ipc":
        return None
    folder = os.path.dirname(os.path.realpath(connection["ip"]))
    for path in socket_paths(connection):
        _remove(path)
    return folder


def _open_log(cfg: dict, assignment: str, student: str, header: dict) -> "GradingLog":
    """The kernel's grading log, ``<log dir>/<assignment>/<student>.jsonl`` (nowhere without a log dir)."""
    log_file = ""
    if cfg["log"]:
        os.makedirs(os.path.join(cfg["log"], assignment), exist_ok=True)
        log_file = gradelog.path_for(assignment, student, cfg["log"])
    return GradingLog(log_file, header)


def _remove(path: str, keep_sockets: bool = False) -> None:
    """Delete what is at ``path``, not following it (a unix socket stays if ``keep_sockets``)."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return
    with contextlib.suppress(OSError):
        if stat.S_ISDIR(mode):
            shutil.rmtree(path)
        elif not (keep_sockets and stat.S_ISSOCK(mode)):
            os.unlink(path)


def _remove_tree(path: str) -> None:
    """Delete what a kernel left, without following anything in it (rmtree works on file descriptors)."""
    for root, dirs, _files in os.walk(path):  # a kernel may have taken the write bit off its folders
        for name in dirs:
            with contextlib.suppress(OSError):
                full = os.path.join(root, name)
                if not os.path.islink(full):
                    os.chmod(full, 0o700)
    shutil.rmtree(path, ignore_errors=True)


def _chown_tree(path: str, uid: int) -> None:
    for root, dirs, files in os.walk(path):
        for name in [root] + [os.path.join(root, n) for n in dirs + files]:
            try:
                os.lchown(name, uid, uid)
            except OSError:
                pass


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "kernel":
        return launch(argv[1], [a for a in argv[2:] if a.startswith("--")])
    if argv == ["probe"]:
        mode, why = resolve_mode()
        print(describe(mode, why))
        return 0
    print("usage: python -m autograder.host.sandbox kernel CONNECTION_FILE | probe", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
