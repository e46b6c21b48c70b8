"""Each grading kernel in its own sandbox, with limits, started through a kernelspec.

nbgrader starts kernels from a kernelspec; ours (``lstm-course-sandbox``, written by ``write_kernelspec``)
runs ``python -m autograder.host.sandbox kernel {connection_file}``, this module's launcher, as the grader.
The launcher starts the real kernel (``autograder.kernel.boot.main``, then ipykernel) inside bubblewrap:

- the file system holds only what the kernel needs: /usr, the Python installation and the environment,
  read-only; the notebook's own directory (``autograded/<student>/<assignment>``) and a private /tmp,
  writable; the directory of the kernel's ``ipc`` sockets. Not the course: not source/, solutions/,
  the gradebook, other students' work or the grader's hidden tests: of the grader it gets only
  ``autograder/kernel`` (the probe), in an archive that it deletes before the first cell;
- no network (its own, empty network namespace: the kernel talks to nbgrader over unix sockets,
  which is why the kernel manager uses the ``ipc`` transport), its own PID, IPC and UTS namespaces,
  ``interrupt_mode: message`` (signals cannot reach into the PID namespace);
- limits: address space (memory), CPU seconds, processes, file size, a bounded /tmp, and a watchdog on
  resident memory; run as root, each kernel also gets its own unprivileged uid, so process limits and
  signals cannot touch another kernel.

Without a working bubblewrap the launcher runs the kernel with the limits only and says so loudly
(``probe``, ``describe``); ``LSTM_SANDBOX=none`` asks for that on purpose, ``LSTM_SANDBOX=bwrap`` makes
a missing bubblewrap an error.

The launcher also reads the kernel's channel (``autograder/kernel/boot.py``) and appends what it reports,
as the kernel's claims, to the grading log named by ``LSTM_GRADING_LOG``.
"""

import contextlib
import io
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import zipfile
from pathlib import Path

from .. import gradelog
from ..settings import ENV, Settings
from ..settings import load as load_settings
from .datafiles import copy_data

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


def settings() -> dict:
    """The launcher's settings (``autograder/settings.py``), as the dict the functions below take."""
    s = load_settings()
    return {"mode": s.sandbox, "memory_mb": s.memory_mb, "cpu_seconds": s.cpu_seconds, "procs": s.procs,
            "threads": s.threads, "uid": s.uid, "log": s.grading_log, "tmp_mb": s.tmp_mb, "device": s.device}


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


def bwrap_argv(scratch: str, ipc_dir: str | None, cfg: dict, fds: dict, as_root: bool,
               assignment: str = "") -> list[str]:
    """bubblewrap's command line for one kernel (everything but the command it runs)."""
    bwrap = os.environ.get(BWRAP_ENV) or shutil.which("bwrap") or "bwrap"
    made = {"/", "/usr", "/tmp", "/proc", "/dev", "/grader"}

    def parents(path):
        """Create the path's missing ancestors world-traversable (bwrap would make them 0700)."""
        out, parts = [], Path(path).parts
        for k in range(2, len(parts)):
            anc = os.path.join(*parts[:k])
            if anc not in made:
                made.add(anc)
                out += ["--perms", "0755", "--dir", anc]
        return out

    argv = [bwrap, "--die-with-parent", "--new-session", "--unshare-pid", "--unshare-net", "--unshare-ipc",
            "--unshare-uts", "--unshare-cgroup-try", "--hostname", "grading"]
    if not as_root:
        argv += ["--unshare-user"]
    argv += ["--ro-bind", "/usr", "/usr"]
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
    argv += ["--size", str(64 * 2**20), "--tmpfs", "/grader"]
    argv += ["--perms", "0644", "--file", str(fds["zip"]), "/grader/autograder.zip"]
    argv += ["--perms", "0666", "--file", str(fds["connection"]), "/grader/connection.json"]
    argv += ["--chmod", "0777", "/grader", "--chmod", "1777", "/tmp", "--chmod", "0777", "/tmp/home"]
    argv += parents(scratch) + ["--bind", scratch, scratch]
    if ipc_dir:
        argv += parents(ipc_dir) + ["--bind", ipc_dir, ipc_dir]
    argv += ["--chdir", scratch, "--clearenv"]
    for name, value in kernel_env(cfg, assignment).items():
        argv += ["--setenv", name, value]
    return argv


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
                "process and file-size limits per kernel")
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


def _limits(cfg: dict, uid: int):
    import resource

    procs = cfg["procs"] + (0 if os.geteuid() == 0 else _count_tasks(uid))

    def apply():
        os.setsid()
        if not cfg["device"].startswith("cuda"):  # CUDA reserves huge address ranges; the watchdog covers it
            mem = cfg["memory_mb"] * 2**20
            resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        cpu = cfg["cpu_seconds"]
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
        resource.setrlimit(resource.RLIMIT_NPROC, (procs, procs))
        size = FILE_SIZE_MB * 2**20
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


class GradingLog:
    """The launcher's part of the grading log (``autograder/gradelog.py``)."""

    def __init__(self, path: str, context: dict):
        self.path, self.context = path, context

    def write(self, record: dict) -> None:
        gradelog.append(self.path, {**self.context, **record})

    def pump(self, fd: int) -> None:
        """The kernel's records (``kind<TAB>name=value...``), each marked as coming from the kernel."""
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
                    self.write(kernel_record(raw))
                if len(pending) > 65536:
                    self.write({"kind": "garbled", "detail": "unterminated data on the kernel's channel"})
                    pending = b""


KERNEL_KINDS = frozenset({"boot", "refused", "attempt"})


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


def _tree_rss_kb(root_pid: int) -> int:
    """Resident memory of a process and its descendants."""
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
    total, stack = 0, [root_pid]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
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


def launch(connection_file: str, kernel_args: list[str] = ()) -> int:
    cfg = settings()
    mode, why = resolve_mode(cfg["mode"])
    # nbgrader starts us in the notebook's folder (autograded/<student>/<assignment>), which nbgrader
    # writes afterwards: the kernel never gets it. It gets a fresh scratch directory with a copy of the
    # data files there, and nothing of the scratch directory comes back.
    notebook_dir = os.path.realpath(os.getcwd())
    connection_file = os.path.abspath(connection_file)
    os.chdir("/")
    student, assignment = Path(notebook_dir).parts[-2:]
    with open(connection_file) as fh:
        connection = json.load(fh)
    ipc_dir = None
    if connection.get("transport") == "ipc":
        ipc_dir = os.path.dirname(os.path.realpath(connection["ip"]))
        # the socket directory is shared with the kernels before and after this one: where one left a link
        # (or anything else) on a socket path nbgrader chose for this kernel, the kernel could not bind it
        for name in ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port"):
            _remove_unless_socket(f"{connection['ip']}-{connection.get(name)}")
    elif mode == "bwrap":
        print("sandboxed kernels need the ipc transport (c.KernelManager.transport = 'ipc')", file=sys.stderr)
        return 2
    workdir = tempfile.mkdtemp(prefix="lstm-kernel-")
    scratch = os.path.join(workdir, assignment)
    copied, dropped = copy_data(notebook_dir, scratch, skip=frozenset({f"{assignment}.ipynb"}))
    context = {"kernel_dir": scratch, "sandbox": mode}
    log_file = ""
    if cfg["log"]:  # <log dir>/<assignment>/<student>.jsonl
        os.makedirs(os.path.join(cfg["log"], assignment), exist_ok=True)
        log_file = gradelog.path_for(assignment, student, cfg["log"])
    log = GradingLog(log_file, context)
    for note in dropped:
        log.write({"kind": "dropped", "detail": note})
    as_root = os.geteuid() == 0
    uid = cfg["uid"] if (as_root and cfg["uid"]) else os.geteuid()

    chan_r, chan_w = os.pipe()
    archive = kernel_archive()
    pass_fds = [chan_w]
    if mode == "bwrap":
        zip_fd = _fd_with(archive)
        conn_fd = _fd_with(json.dumps(connection).encode())
        pass_fds += [zip_fd, conn_fd]
        argv = bwrap_argv(scratch, ipc_dir, cfg, {"zip": zip_fd, "connection": conn_fd}, as_root, assignment)
        argv += ["--"]
        if as_root and uid != 0:
            argv += ["/usr/bin/setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                     "--inh-caps=-all", "--bounding-set=-all", "--"]
        argv += [interpreter(), *KERNEL_FLAGS, "-c", BOOT, "/grader/autograder.zip", str(chan_w),
                 "/grader/connection.json", *kernel_args]
        env = None
        if as_root and uid != 0:
            for path in [workdir] + ([ipc_dir] if ipc_dir else []):
                _chown_tree(path, uid)
    else:
        zip_path = os.path.join(workdir, "autograder.zip")
        with open(zip_path, "wb") as fh:
            fh.write(archive)
        argv = [interpreter(), *KERNEL_FLAGS, "-c", BOOT, zip_path, str(chan_w), connection_file, *kernel_args]
        env = {k: v for k, v in os.environ.items() if not k.startswith("JPY_")}
        env.update({k: v for k, v in kernel_env(cfg, assignment).items()
                    if k not in ("HOME", "TMPDIR", "PATH", "USER")})
    log.write({"kind": "start", "detail": f"{mode}: {why}", "uid": uid, "files": copied.files})
    proc = subprocess.Popen(argv, pass_fds=pass_fds, preexec_fn=_limits(cfg, uid), env=env, cwd=scratch)
    os.close(chan_w)
    for fd in pass_fds[1:]:
        os.close(fd)
    pump = threading.Thread(target=log.pump, args=(chan_r,), daemon=True)
    pump.start()

    stopped = []

    def forward(signum, _frame):
        # jupyter_client sends SIGTERM when a kernel is slow to shut down: its results are in by then
        stopped.append(signum)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)

    limit_kb = cfg["memory_mb"] * 1024
    killed_for_memory = False
    parent = os.getppid()
    while proc.poll() is None:
        try:
            proc.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            if os.getppid() != parent:  # nbgrader is gone (killed at its time limit): so is the kernel
                stopped.append("orphaned")
                with contextlib.suppress(OSError):
                    os.killpg(proc.pid, signal.SIGKILL)
            elif _tree_rss_kb(proc.pid) > limit_kb:
                killed_for_memory = True
                with contextlib.suppress(OSError):
                    os.killpg(proc.pid, signal.SIGKILL)
    status = proc.returncode
    pump.join(timeout=5)
    if killed_for_memory:
        detail = f"killed: its resident memory went over the limit of {cfg['memory_mb']} MB"
    elif stopped:
        detail = "stopped by the grader"
    else:
        detail = _describe_exit(status, wrapped=mode == "bwrap")
    log.write({"kind": "exit", "status": status, "detail": detail, "requested": bool(stopped)})
    _remove_tree(workdir)
    if ipc_dir:
        with contextlib.suppress(OSError):
            for entry in os.scandir(ipc_dir):
                _remove_unless_socket(entry.path)
    return 0 if status == 0 else 1


def _remove_unless_socket(path: str) -> None:
    """Delete what is at ``path`` (not following it) unless it is a unix socket."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return
    with contextlib.suppress(OSError):
        if stat.S_ISDIR(mode):
            shutil.rmtree(path)
        elif not stat.S_ISSOCK(mode):
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
