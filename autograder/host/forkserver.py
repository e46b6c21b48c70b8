"""A warm parent for grading kernels: it imports what every kernel imports once, then forks each kernel into
the sandbox that bubblewrap made for it.

A kernel spends about two CPU seconds importing PyTorch, IPython and matplotlib before its first cell; a
batch pays that once here, and the same for what its notebooks import (``sandbox.warm_imports``). The server
runs as a script (``python -P -s -B forkserver.py SOCKET PARENT [MODULE ...]``, started by
``autograder/host/batch.py``, as root only), in the kernels' environment, and imports nothing of the grader.
For each connection from a kernel launcher (``autograder/host/sandbox.py``), on a socket in a folder only
root can open, it forks a helper that

1. joins the namespaces of the sandbox bubblewrap started for that kernel, once it is ready (mount, PID,
   network, IPC, UTS, cgroup): the same file system view, no network, its own PIDs;
2. forks a waiter there, which forks the kernel. The kernel drops what root has (the capability bounding set,
   its groups, then its uid to the kernel's own), takes the kernel's limits, ``no_new_privs``,
   the descriptors the launcher passed (standard streams and the channel to the launcher) and no other, the
   kernel's environment, and runs the kernel's first line (``sandbox.COPY_IN + sandbox.BOOT``) as
   ``python -c`` would;
3. tells the launcher the waiter's process id (its memory is the server's, not the kernel's: the watchdog
   leaves it out), and the waiter then tells it the kernel's exit status.

The kernel dies with its sandbox: when the launcher stops bubblewrap, the sandbox's first process goes and
the kernel, a process of its PID namespace, is killed with it. The server stops when its parent does.
"""

import ctypes
import gc
import json
import os
import resource
import select
import signal
import socket
import sys
import types

gc.disable()
PRELOAD = ("torch", "numpy", "ipykernel.kernelapp", "matplotlib.pyplot", "matplotlib_inline.backend_inline")
NAMESPACES = ("cgroup", "ipc", "uts", "net", "pid", "mnt")  # all opened and checked before the first is joined
PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 1, 24, 38
libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        raise OSError(ctypes.get_errno(), f"{what}: {os.strerror(ctypes.get_errno())}")


def _send(conn: socket.socket, message: dict) -> None:
    try:
        conn.sendall((json.dumps(message) + "\n").encode())
    except OSError:
        pass


def _drop_root(uid: int) -> None:
    last = int(open("/proc/sys/kernel/cap_last_cap").read())
    for cap in range(last + 1):
        _check(libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), "dropping the capability bounding set")
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")


def kernel(request: dict, fds: list[int]) -> int:
    """In the sandbox, as the kernel: become it, run its first line; its exit status."""
    waiter = os.getppid()
    _check(libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "parent death signal")
    if os.getppid() != waiter:
        os._exit(1)
    stdin, stdout, stderr, channel = fds
    for fd, target in ((stdin, 0), (stdout, 1), (stderr, 2)):
        os.dup2(fd, target)
    keep = {0, 1, 2, channel}
    for name in os.listdir("/proc/self/fd"):
        if int(name) not in keep:
            try:
                os.close(int(name))
            except OSError:
                pass
    os.chdir(request["cwd"])
    for name, (soft, hard) in request["limits"].items():  # sandbox.rlimits, as the launcher sends them
        resource.setrlimit(getattr(resource, name), (soft, hard))
    _drop_root(int(request["uid"]))
    os.environ.clear()
    os.environ.update(request["env"])
    _forget_the_servers_folders()
    sys.argv = ["-c", *(arg.replace("{channel}", str(channel)) for arg in request["argv"])]
    main = types.ModuleType("__main__")
    main.__builtins__ = __builtins__
    sys.modules["__main__"] = main
    gc.enable()
    status = 0
    try:
        exec(compile(request["code"], "<string>", "exec"), main.__dict__)
    except SystemExit as stop:
        code = stop.code
        status = code if isinstance(code, int) else (0 if code is None else 1)
        if not isinstance(code, int) and code is not None:
            print(code, file=sys.stderr)
    except BaseException:
        import traceback

        traceback.print_exc()
        status = 1
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    return status


def _forget_the_servers_folders() -> None:
    """Folders the imports looked up in the server's environment, looked up again in the kernel's."""
    import tempfile

    tempfile.tempdir = None
    mpl = sys.modules.get("matplotlib")
    for name in ("get_configdir", "get_cachedir"):
        clear = getattr(getattr(mpl, name, None), "cache_clear", None)
        if clear:
            clear()


def helper(conn: socket.socket) -> None:
    """Forked per launcher: read its request, join its sandbox, start the kernel's waiter there. Never returns."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    status = 1
    try:
        data, fds, _flags, _addr = socket.recv_fds(conn, 1 << 20, 8)
        while chunk := conn.recv(1 << 20):  # the launcher closes its side once the request is sent
            data += chunk
        request = json.loads(data)
        if len(fds) != 4:
            raise ValueError(f"expected 4 descriptors, got {len(fds)}")
        if not int(request["uid"]):
            raise ValueError("a kernel runs as a uid of its own, never as root")
        pid = int(request["pid"])
        host_root = os.stat("/")
        # the namespaces bubblewrap made (its --info-fd names them; a cgroup namespace only where it can), each
        # checked: a request come to late, its sandbox gone and the number taken, must not join another's
        joined = [ns for ns in NAMESPACES if ns in request["namespaces"]]
        if not {"mnt", "pid", "net"} <= set(joined):
            raise OSError(f"the sandbox's namespaces are not named: {sorted(request['namespaces'])}")
        handles = [os.open(f"/proc/{pid}/ns/{ns}", os.O_RDONLY) for ns in joined]
        for ns, fd in zip(joined, handles, strict=True):
            if os.fstat(fd).st_ino != int(request["namespaces"][ns]):
                raise OSError(f"process {pid} is not in the sandbox's {ns} namespace")
        for ns, fd in zip(joined, handles, strict=True):
            _check(libc.setns(fd, 0), f"joining the sandbox's {ns} namespace")
            os.close(fd)
        root = os.stat("/")
        if (root.st_dev, root.st_ino) == (host_root.st_dev, host_root.st_ino):
            raise OSError("the sandbox's root is the host's: it was not set up")
        waiter = os.fork()
        if waiter == 0:
            wait_for_the_kernel(conn, request, fds)
        _send(conn, {"waiter": waiter})
        status = 0
    except BaseException as err:
        _send(conn, {"error": f"{type(err).__name__}: {err}"})
    finally:
        os._exit(status)


def wait_for_the_kernel(conn: socket.socket, request: dict, fds: list[int]) -> None:
    """In the sandbox, as root: fork the kernel, wait for it, report its exit status. Never returns.

    The kernel's parent is this process of the sandbox, as a fresh kernel's is bubblewrap's: one it cannot
    signal. (The helper that forked this one leaves at once: a parent outside the sandbox's PID namespace
    would be process 0 to the kernel, and ``kill(0, ...)`` signals the caller's own group.)"""
    try:
        os.setsid()  # the sandbox's session, which the kernel joins, as bubblewrap's --new-session makes it
        child = os.fork()
        if child == 0:
            try:
                os._exit(kernel(request, fds))
            except BaseException as err:
                try:
                    os.write(2, f"grading kernel: could not start: {err}\n".encode())
                finally:
                    os._exit(71)
        for fd in fds:
            os.close(fd)
        _, wait_status = os.waitpid(child, 0)
        _send(conn, {"status": os.waitstatus_to_exitcode(wait_status)})
    finally:
        os._exit(0)


def serve(path: str, parent: int, preload: list[str]) -> None:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(64)  # launchers that come while the imports run wait here
    for name in PRELOAD + tuple(preload):
        try:
            __import__(name)
        except Exception:  # the kernel that needs it will say why
            pass
    gc.collect()
    gc.freeze()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # helpers are reaped by the system
    while os.getppid() == parent:
        ready, _, _ = select.select([server], [], [], 1.0)
        if not ready:
            continue
        conn, _ = server.accept()
        if os.fork() == 0:
            server.close()
            helper(conn)
        conn.close()


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]), sys.argv[3:])
