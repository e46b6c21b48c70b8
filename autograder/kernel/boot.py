"""Inside the sandbox: start the grading kernel. ``python -c BOOT ARCHIVE CHANNEL_FD CONNECTION_FILE ...``.

1. imports PyTorch and the probe from the archive (this package, nothing else of the grader), then
   deletes the archive;
2. refuses to grade if any module was loaded from the submission's folder before the first cell (the
   kernel's Python puts no such folder on ``sys.path``, so this only fires if that protection failed);
3. installs ``watch``: an audit hook that reports, never blocks, what submitted code has no business
   doing (new audit hooks, tracing, C calls, processes, sockets, grabbing its frames) on the channel to
   the launcher, which writes the grading log. The records are claims of the kernel, logged as such:
   nothing that decides a score comes from here.
"""

import gc
import os
import sys

WATCHED = {
    "sys.addaudithook": "adding an audit hook",
    "sys.settrace": "tracing (sys.settrace)",
    "sys.setprofile": "profiling hooks (sys.setprofile)",
    "sys._current_frames": "reading other threads' stacks",
    "gc.get_objects": "walking the garbage collector",
    "gc.get_referrers": "walking the garbage collector",
    "ctypes.dlopen": "loading C code through ctypes",
    "ctypes.dlsym": "calling C code through ctypes",
    "subprocess.Popen": "starting programs",
    "os.system": "starting programs",
    "os.exec": "replacing the kernel process",
    "os.fork": "forking",
    "socket.connect": "network access",
    "sys._getframe": "grabbing stack frames",
}
MAX_RECORDS = 200


def make_watch(channel_fd: int):
    """The audit hook and the function that sends a record (tab-separated ``kind name=value ...``)."""
    import _thread

    from .probe import from_notebook

    write, get_ident, getframe = os.write, _thread.get_ident, sys._getframe
    busy, state = set(), {"sent": 0, "seen": set()}

    def send(kind, **fields):
        if state["sent"] >= MAX_RECORDS:
            return
        state["sent"] += 1
        parts = [kind] + [f"{k}={str(v).replace(chr(9), ' ').replace(chr(10), ' ')[:300]}"
                          for k, v in sorted(fields.items())]
        try:
            write(channel_fd, ("\t".join(parts) + "\n").encode("utf-8", "backslashreplace"))
        except OSError:
            pass

    def hook(event, args):
        what = WATCHED.get(event)
        if what is None:
            return
        tid = get_ident()
        if tid in busy:
            return
        busy.add(tid)
        try:
            if event == "sys._getframe":
                frame = args[0] if args else None
                student = frame is not None and from_notebook(frame.f_code.co_filename)
            else:
                frame, student = getframe(1), False
                for _ in range(40):
                    if frame is None:
                        break
                    if from_notebook(frame.f_code.co_filename):
                        student = True
                        break
                    frame = frame.f_back
            if student and event not in state["seen"]:
                state["seen"].add(event)
                send("attempt", event=event, what=what, code=frame.f_code.co_name)
        finally:
            busy.discard(tid)

    return hook, send


def foreign_modules(scratch: str) -> list[str]:
    """Modules loaded from the kernel's scratch directory, or from a relative path (which is there)."""
    root = os.path.realpath(scratch) + os.sep
    found = []
    for name, module in list(sys.modules.items()):
        own = getattr(module, "__dict__", None)  # some modules (torch.classes) answer any attribute
        own = own if isinstance(own, dict) else {}
        more = own.get("__path__")
        listed = isinstance(more, (list, tuple)) or type(more).__name__ == "_NamespacePath"
        for path in [own.get("__file__")] + (list(more) if listed else []):
            if not isinstance(path, str) or not path or path.startswith("<"):
                continue
            if not os.path.isabs(path) or os.path.realpath(path).startswith(root):
                found.append(f"{name} ({path})")
                break
    entries = [p for p in sys.path if not p or not os.path.isabs(p) or os.path.realpath(p) + os.sep == root
               or os.path.realpath(p).startswith(root)]
    return sorted(found + [f"sys.path entry {p!r}" for p in entries])


def main(argv: list[str]) -> None:
    archive, channel_fd, connection_file, *kernel_args = argv
    channel_fd = int(channel_fd)
    os.set_inheritable(channel_fd, False)
    threads = int(os.environ.get("LSTM_KERNEL_THREADS", "0") or 0)
    # Start-up makes a million objects and no garbage worth a collection: collect nothing until the first cell,
    # then leave what start-up made out of every later collection (gc.freeze).
    gc.disable()
    import torch

    if threads > 0:
        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(max(1, min(threads, 2)))
        except RuntimeError:
            pass
    if os.environ.get("LSTM_COURSE_DEVICE", "cpu").startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = False  # float64 tests do not care; float32 ones do
        torch.backends.cudnn.allow_tf32 = False
    from . import probe, wire  # imported before the archive goes

    hook, send = make_watch(channel_fd)
    sys.addaudithook(hook)
    try:
        os.unlink(archive)
    except OSError:
        pass
    from ipykernel.kernelapp import IPKernelApp

    app = IPKernelApp.instance()
    app.initialize(["-f", connection_file, *kernel_args])
    app.kernel.comm_manager.register_target(wire.COMM_TARGET, probe.open_comm)
    scratch = os.getcwd()
    shadowed = foreign_modules(scratch)
    if shadowed:
        send("refused", modules=", ".join(shadowed[:8]))
        print("grading kernel: refusing to grade, these were loaded from the submission's folder before any "
              f"cell ran: {', '.join(shadowed[:8])}", file=sys.stderr, flush=True)
        os._exit(70)
    send("boot", pid=os.getpid(), torch=torch.__version__, device=os.environ.get("LSTM_COURSE_DEVICE", "cpu"))
    gc.freeze()
    gc.enable()
    app.start()
