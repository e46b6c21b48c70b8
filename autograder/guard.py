"""The grading kernel's guard: what runs inside each grading kernel before any student code.

``python -m autograder.sandbox kernel`` (the kernelspec the grader uses) starts every kernel through
``main`` below. Before the first cell runs it

1. imports PyTorch, the harness, the oracles and every hidden-test module, so each of them binds the
   real ``torch.allclose``, ``nn.LSTMCell``, ... before student code could replace them, then deletes
   the archive it imported them from (the hidden tests' source is not on disk once cells run);
2. seeds torch (CPU and CUDA), numpy and random, and fixes the number of threads;
3. installs a Python audit hook. Audit hooks cannot be removed, and this one is built only from
   references captured here, so student code cannot switch it off or feed it replaced functions.
   It blocks what graded code has no business doing when the student's own code asks for it
   (inspecting the grader's stack frames, tracing, ``gc`` object walks, ctypes, processes, signals to
   other processes, sockets, new audit hooks) and reports reads and writes outside the kernel's scratch
   directory, all on a channel to the launcher outside the sandbox (the grading log);
4. snapshots the namespaces the hidden tests rely on (builtins, torch, torch.nn, numpy.testing, the
   grader's own modules, ...). The harness asks the hook to check this snapshot at the start of every
   hidden test and after every call into student code: a change is undone and the test fails with a
   message saying what was changed;
5. signs every record it sends with a key only the hook holds. A hidden test counts as passed only if
   the hook saw the real ``hidden_test`` wrapper finish the real check with the snapshot intact and sent
   a signed ``pass`` record: ``autograder.execute.VerifyHiddenTests`` checks that outside the kernel, so
   a submission that swallows errors, rewrites cells or fakes the "✓" line still scores zero.
"""

import os
import sys

CHECKPOINT_EVENT = "lstm_course.checkpoint"  # harness: verify (and restore) the snapshot, raise on change
PASS_EVENT = "lstm_course.pass"  # harness: the check in the calling wrapper passed
REPORT_EVENT = "lstm_course.report"  # harness: something for the grading log (a ready-made LSTM, ...)

# Modules whose namespaces the hidden tests rely on: changes are undone and fail the test.
CORE_MODULES = (
    "builtins", "math", "operator", "functools", "numbers", "copy",
    "torch", "torch.nn", "torch.nn.functional", "torch.nn.init", "torch.nn.parameter", "torch.nn.modules",
    "torch.nn.modules.module", "torch.nn.modules.rnn", "torch.nn.modules.linear", "torch.nn.modules.activation",
    "torch.nn.modules.container", "torch.functional", "torch._tensor", "torch._VF", "torch.overrides",
    "torch.autograd", "torch.autograd.grad_mode", "torch.autograd.function", "torch.testing",
    "torch.testing._comparison", "torch.special", "torch.linalg", "torch.random", "torch._C", "torch._C._nn",
    "numpy", "numpy.testing", "numpy.testing._private.utils", "numpy.linalg",
)
CORE_CLASSES = (
    "torch.Tensor", "torch.nn.Module", "torch.nn.Parameter", "torch.nn.LSTM", "torch.nn.LSTMCell",
    "torch.nn.RNNBase", "torch.nn.RNNCellBase", "torch.nn.Linear", "torch.nn.ModuleList",
    "torch.autograd.Function", "torch.Size", "torch.overrides.TorchFunctionMode",
)
# Names that change during normal operation (IPython swaps some builtins around every cell).
VOLATILE = {
    "builtins": {"_", "__", "___", "get_ipython", "exit", "quit", "display", "__IPYTHON__", "__builtins__",
                 "__debug__", "copyright", "credits", "license", "help", "input"},
}
# Events the student's own code may not cause (the hook raises PermissionError).
BLOCKED = {
    "sys._getframe": "inspecting the call stack (sys._getframe, inspect.currentframe)",
    "sys._current_frames": "inspecting other threads' stacks",
    "sys.settrace": "tracing (sys.settrace)",
    "sys.setprofile": "profiling hooks (sys.setprofile)",
    "gc.get_objects": "walking the garbage collector (gc.get_objects)",
    "gc.get_referrers": "walking the garbage collector (gc.get_referrers)",
    "gc.get_referents": "walking the garbage collector (gc.get_referents)",
    "function.__new__": "building functions from code objects",
    "code.__new__": "building code objects",
    "object.__getattr__": "reading the grader's frames (tb_frame, gi_frame)",
    "subprocess.Popen": "starting programs",
    "os.system": "starting programs (os.system)",
    "os.exec": "replacing the kernel process (os.exec*)",
    "os.posix_spawn": "starting programs (os.posix_spawn)",
    "os.spawn": "starting programs (os.spawn*)",
    "os.fork": "forking processes (os.fork)",
    "os.forkpty": "forking processes (os.forkpty)",
    "os.killpg": "signalling process groups",
    "signal.pthread_kill": "signalling threads",
    "sqlite3.connect": "opening databases (the gradebook is off limits)",
    "urllib.Request": "network access",
    "http.client.connect": "network access",
    "ftplib.connect": "network access",
    "smtplib.connect": "network access",
    "poplib.connect": "network access",
    "imaplib.open": "network access",
    "telnetlib.Telnet.open": "network access",
    "webbrowser.open": "starting programs",
    "pty.spawn": "starting programs",
}
BLOCKED_PREFIXES = (("ctypes.", "calling C code through ctypes"), ("socket.", "network access"))
# Libraries that may start processes, load C code or build functions while student code runs
# (torch.compile does all three); any other library (IPython's `!cmd`, ...) is treated like the student.
TRUSTED_LIBRARIES = ("torch", "torchgen", "functorch", "triton", "numpy", "matplotlib", "matplotlib_inline", "PIL",
                     "ipykernel", "zmq", "jupyter_client", "jupyter_core", "traitlets", "tornado", "comm",
                     "sympy", "mpmath", "networkx", "filelock", "fsspec", "jinja2", "markupsafe", "packaging",
                     "typing_extensions", "contourpy", "kiwisolver", "fontTools", "cycler", "pyparsing",
                     "dateutil", "six")
WATCHED_FS = {"open", "os.listdir", "os.scandir", "glob.glob", "os.remove", "os.rename", "os.rmdir",
              "os.mkdir", "os.symlink", "os.link", "os.truncate", "os.chmod", "os.chown", "shutil.rmtree",
              "shutil.copyfile", "shutil.move", "os.chdir"}
READ_OK = ("/usr/", "/etc/", "/proc/self", "/proc/thread-self", "/dev/", "/sys/", "/tmp/", "/grader/", "/opt/")


def signature(key: bytes, line: str) -> str:
    import _hashlib

    return _hashlib.hmac_digest(key, line.encode("utf-8", "backslashreplace"), "sha256").hex()[:32]


def parse_record(line: str, key: bytes) -> dict | None:
    """A channel line as a dict, or None if its signature does not match (a forged or garbled line)."""
    import hmac

    body, _, mac = line.rstrip("\n").rpartition("\t")
    if not body or not hmac.compare_digest(signature(key, body), mac):
        return None
    fields = body.split("\t")
    record = {"seq": fields[0], "kind": fields[1]}
    for field in fields[2:]:
        name, _, value = field.partition("=")
        record[name] = value
    return record


# --------------------------------------------------------------------------- snapshot


def _resolve(dotted: str):
    obj = None
    parts = dotted.split(".")
    for k in range(len(parts), 0, -1):
        name = ".".join(parts[:k])
        if name in sys.modules:
            obj = sys.modules[name]
            for attr in parts[k:]:
                obj = getattr(obj, attr, None)
            return obj
    return obj


def _functions_of(namespace: dict, out: list):
    import types

    for value in list(namespace.values()):
        fn = value
        if isinstance(value, (staticmethod, classmethod)):
            fn = value.__func__
        elif isinstance(value, property):
            for part in (value.fget, value.fset, value.fdel):
                if isinstance(part, types.FunctionType):
                    out.append(part)
            continue
        if isinstance(fn, types.FunctionType):
            out.append(fn)


def take_snapshot(extra_modules=()):
    """What the hidden tests rely on, as (label, owner, frozen copy) records; see ``make_guard``."""
    import types

    modules, classes, functions, seen = [], [], [], set()
    names = list(CORE_MODULES) + [n for n in sys.modules if n == "autograder" or n.startswith("autograder.")]
    names += list(extra_modules)
    for name in names:
        mod = sys.modules.get(name)
        if mod is None or id(mod) in seen or not hasattr(mod, "__dict__"):
            continue
        seen.add(id(mod))
        d = mod.__dict__
        modules.append((name, mod, d, dict(d), type(mod), name.startswith("autograder") or name == "builtins"))
        _functions_of(d, functions)
        for value in list(d.values()):
            if isinstance(value, type) and name.startswith("autograder") and value.__module__ == name:
                classes.append((f"{name}.{value.__name__}", value, dict(value.__dict__), value.__bases__))
                _functions_of(value.__dict__, functions)
    for dotted in CORE_CLASSES:
        cls = _resolve(dotted)
        if isinstance(cls, type) and id(cls) not in seen:
            seen.add(id(cls))
            classes.append((dotted, cls, dict(cls.__dict__), cls.__bases__))
            _functions_of(cls.__dict__, functions)
    frozen_fns = []
    seen_fn = set()
    for fn in functions:
        if id(fn) in seen_fn:
            continue
        seen_fn.add(id(fn))
        cells = tuple(c.cell_contents if _cell_full(c) else _EMPTY for c in (fn.__closure__ or ()))
        kw = dict(fn.__kwdefaults__) if fn.__kwdefaults__ else None
        frozen_fns.append((fn, fn.__code__, fn.__defaults__, kw, cells))
    entries = {name: sys.modules[name] for name in names if name in sys.modules}
    return {"modules": modules, "classes": classes, "functions": frozen_fns, "sys_modules": entries,
            "types": types}


_EMPTY = object()


def _cell_full(cell) -> bool:
    try:
        _ = cell.cell_contents
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------- the hook


def make_guard(key: bytes, channel_fd: int, zip_path: str, tampering_error, scratch: str):
    """Build the audit hook and its helpers.

    Everything the returned functions use is a local of this function, captured now: they look up no
    module globals and no builtins at run time, so replacing ``builtins.len``, ``os.write`` or this
    module's constants from student code changes nothing they do (``tests/test_hostile.py`` checks
    that their code has no global lookups).
    """
    import _hashlib
    import _thread
    import sysconfig

    _write, _getframe, _getpid = os.write, sys._getframe, os.getpid
    _hmac, _get_ident = _hashlib.hmac_digest, _thread.get_ident
    _len, _isinstance, _str, _int, _tuple, _dict = len, isinstance, str, int, tuple, dict
    _setattr, _delattr, _type, _repr, _sorted = setattr, delattr, type, repr, sorted
    _bytes, _list, _zip, _any, _id, _getattr = bytes, list, zip, any, id, getattr
    _PermissionError, _Exception, _ValueError = PermissionError, Exception, ValueError
    _RuntimeError, _OSError = RuntimeError, OSError
    _take_snapshot, _EMPTY_ = take_snapshot, _EMPTY
    sys_modules = sys.modules
    checkpoint_event, pass_event, report_event = CHECKPOINT_EVENT, PASS_EVENT, REPORT_EVENT
    volatile_names = {k: frozenset(v) for k, v in VOLATILE.items()}
    no_names = frozenset()
    blocked, blocked_prefixes, watched_fs = _dict(BLOCKED), _tuple(BLOCKED_PREFIXES), frozenset(WATCHED_FS)
    builtins_names = frozenset(vars(sys.modules["builtins"]))
    skip_class_keys = frozenset(("__dict__", "__weakref__", "__doc__", "__abstractmethods__", "_abc_impl"))

    sep = os.sep
    stdlib = sysconfig.get_paths()["stdlib"] + sep
    site_roots = _tuple(_sorted({p + sep for p in sys.path if "-packages" in p}))
    zip_prefix = zip_path + sep
    boot_file = zip_prefix + "autograder" + sep + "guard.py"  # the kernel's own bottom frames
    prefixes = _tuple(_sorted({sys.prefix + sep, sys.base_prefix + sep, sys.exec_prefix + sep}))
    scratch_dir = scratch.rstrip(sep)
    scratch_prefix = scratch_dir + sep
    read_ok = _tuple(READ_OK) + prefixes + site_roots
    frame_events = frozenset(("sys._getframe", "sys._current_frames", "object.__getattr__"))
    special = frozenset(("os.kill", "compile", "sys.addaudithook", "object.__setattr__"))
    frame_attrs = frozenset(("tb_frame", "gi_frame", "cr_frame", "ag_frame", "f_back"))
    trusted_libs = frozenset(TRUSTED_LIBRARIES)
    read_events = frozenset(("os.listdir", "os.scandir", "glob.glob", "os.chdir"))
    quiet_devices = frozenset(("/dev/null", "/dev/urandom", "/dev/random", "/dev/shm", "/dev/tty"))
    state = {"seq": 0, "armed": False, "wrapper": None, "checks": {}, "snapshot": None}
    busy = set()

    def send(kind, **fields):
        state["seq"] += 1
        parts = [f"{state['seq']}", kind]
        for name in _sorted(fields):
            value = _str(fields[name]).replace("\t", " ").replace("\n", "\\n")[:600]
            parts.append(f"{name}={value}")
        body = "\t".join(parts)
        mac = _hmac(key, body.encode("utf-8", "backslashreplace"), "sha256").hex()[:32]
        try:
            _write(channel_fd, f"{body}\t{mac}\n".encode("utf-8", "backslashreplace"))
        except _OSError:
            pass  # the student closed or redirected the channel: nothing more gets counted

    def kind_of(filename):
        if filename.startswith(zip_prefix):
            return "stdlib" if filename == boot_file else "grader"
        if filename.startswith("<frozen") or (filename.startswith(stdlib) and "-packages" not in filename):
            return "stdlib"
        for root in site_roots:
            if filename.startswith(root):
                return "library"
        return "student"

    def library_of(filename):
        for root in site_roots:
            if filename.startswith(root):
                return filename[_len(root):].split(sep, 1)[0].split(".", 1)[0]
        return ""

    def survey(frame):
        """(initiator kind, its frame, its library, any student frame, student code inside a grader call).

        The initiator is the innermost frame, from ``frame`` outward, that is not the standard library.
        """
        kind, where_frame, lib = "", None, ""
        student_seen = student_in_grader = False
        while frame is not None:
            name = frame.f_code.co_filename
            k = kind_of(name)
            if not kind and k == "stdlib" and name.startswith("<frozen importlib"):
                kind, where_frame, lib = "import", frame, "importlib"
            if not kind and k != "stdlib":
                kind, where_frame = k, frame
                if k == "library":
                    lib = library_of(frame.f_code.co_filename)
            if k == "student":
                student_seen = True
            elif k == "grader" and student_seen:
                student_in_grader = True
            frame = frame.f_back
        return kind or "library", where_frame, lib, student_seen, student_in_grader

    def reaches_grader(event, args):
        """Whether the frame this event hands out is, or leads to, a frame of the grader."""
        if event == "sys._current_frames":
            return True
        if event == "sys._getframe":
            frame = args[0] if args else None
        else:
            name = args[1] if _len(args) > 1 else ""
            if name not in frame_attrs:
                return False
            try:
                frame = _getattr(args[0], name)
            except _Exception:
                return False
        while frame is not None:
            filename = frame.f_code.co_filename
            if filename.startswith(zip_prefix) and filename != boot_file:
                return True
            frame = frame.f_back
        return False

    def initiator(frame):
        kind, where_frame, _lib, _student, _inside = survey(frame)
        return kind, where_frame

    def where(frame):
        if frame is None:
            return "?"
        return f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}"

    def cell_value(cell):
        try:
            return cell.cell_contents
        except _ValueError:
            return _EMPTY_

    def diff(restore, exempt):
        """Names whose values changed since the snapshot (put back when ``restore``).

        ``exempt`` maps (id(owner), name) to the value the grader itself put there for the moment
        (a blocker for torch.sigmoid while the student's sigmoid runs, ...).
        """
        snapshot = state["snapshot"]
        changed = []
        for name, mod, d, frozen, mtype, strict in snapshot["modules"]:
            if _type(mod) is not mtype:
                changed.append(f"{name} (its type)")
                if restore:
                    try:
                        mod.__class__ = mtype
                    except _Exception:
                        pass
            if _len(d) == _len(frozen):
                same = True
                for k, v in frozen.items():
                    if d.get(k, _EMPTY_) is not v:
                        same = False
                        break
                if same:
                    continue
            volatile = volatile_names.get(name, no_names)
            for k, v in frozen.items():
                v = exempt.get((_id(mod), k), v)
                if k not in volatile and d.get(k, _EMPTY_) is not v:
                    changed.append(f"{name}.{k}")
                    if restore:
                        d[k] = v
            for k in _list(d.keys()):
                if (_id(mod), k) in exempt:
                    if d[k] is not exempt[(_id(mod), k)]:
                        changed.append(f"{name}.{k}")
                        if restore:
                            d[k] = exempt[(_id(mod), k)]
                    continue
                if k not in frozen and k not in volatile and (strict or k in builtins_names):
                    changed.append(f"{name}.{k} (added)")
                    if restore:
                        del d[k]
        for name, cls, frozen, bases in snapshot["classes"]:
            current = cls.__dict__
            if cls.__bases__ is not bases:
                changed.append(f"{name}.__bases__")
                if restore:
                    try:
                        cls.__bases__ = bases
                    except _Exception:
                        pass
            for k, v in frozen.items():
                v = exempt.get((_id(cls), k), v)
                if k not in skip_class_keys and current.get(k, _EMPTY_) is not v:
                    changed.append(f"{name}.{k}")
                    if restore:
                        try:
                            _setattr(cls, k, v)
                        except _Exception:
                            pass
            for k in _list(current.keys()):
                if (_id(cls), k) in exempt:
                    if current[k] is not exempt[(_id(cls), k)]:
                        changed.append(f"{name}.{k}")
                    continue
                if k not in frozen:
                    changed.append(f"{name}.{k} (added)")
                    if restore:
                        try:
                            _delattr(cls, k)
                        except _Exception:
                            pass
        for fn, code, defaults, kwdefaults, cells in snapshot["functions"]:
            if fn.__code__ is not code:
                changed.append(f"{fn.__module__}.{fn.__qualname__}.__code__")
            if fn.__defaults__ is not defaults:
                changed.append(f"{fn.__module__}.{fn.__qualname__}.__defaults__")
                if restore:
                    fn.__defaults__ = defaults
            kw = fn.__kwdefaults__
            if (kw is None) != (kwdefaults is None) or (kw is not None and (_len(kw) != _len(kwdefaults) or _any(
                    kw.get(k, _EMPTY_) is not v for k, v in kwdefaults.items()))):
                changed.append(f"{fn.__module__}.{fn.__qualname__}.__kwdefaults__")
                if restore:
                    fn.__kwdefaults__ = _dict(kwdefaults) if kwdefaults is not None else None
            for cell, value in _zip(fn.__closure__ or (), cells):
                if cell_value(cell) is not value:
                    changed.append(f"{fn.__module__}.{fn.__qualname__} (closure)")
                    if restore and value is not _EMPTY_:
                        cell.cell_contents = value
        for name, mod in snapshot["sys_modules"].items():
            if sys_modules.get(name) is not mod:
                changed.append(f"sys.modules[{name!r}]")
                if restore:
                    sys_modules[name] = mod
        return changed

    def restore_builtins():
        name, mod, d, frozen, mtype, strict = state["snapshot"]["modules"][0]
        volatile = volatile_names.get(name, no_names)
        changed = []
        for k, v in frozen.items():
            if k not in volatile and d.get(k, _EMPTY_) is not v:
                changed.append(f"builtins.{k}")
                d[k] = v
        if changed:
            send("tampering", at="the start of a cell", changed=", ".join(changed[:12]), count=_len(changed))

    def on_checkpoint(args):
        label = args[0] if args else "?"
        exempt = {}
        if _len(args) > 1 and _type(args[1]) is _tuple:
            for item in args[1]:
                if _type(item) is _tuple and _len(item) == 3:
                    exempt[(_id(item[0]), item[1])] = item[2]
        changed = diff(True, exempt)
        if changed:
            send("tampering", at=label, changed=", ".join(changed[:12]), count=_len(changed))
            shown = ", ".join(n.replace(" (added)", "") for n in changed[:4])
            more = f" and {_len(changed) - 4} more" if _len(changed) > 4 else ""
            raise tampering_error(
                f"your code changed {shown}{more}, which the grader relies on. The grader has put them back; "
                "a submission that changes PyTorch, Python or the grader earns no points for this test."
            )

    def on_pass(args, frame):
        fn = frame.f_locals.get("fn", None) if frame is not None else None
        known = state["checks"].get(_id(fn))
        if frame is None or frame.f_code is not state["wrapper"] or known is None or known[0] is not fn:
            send("forged-pass", claimed=_repr(args[0] if args else None), at=where(frame))
            return
        if fn.__code__ is not known[2]:
            send("forged-pass", claimed=known[1], at="check code replaced")
            return
        changed = diff(True, {})
        if changed:
            send("tampering", at=f"end of {known[1]}", changed=", ".join(changed[:12]), count=_len(changed))
            raise tampering_error(
                f"while this test ran, your code changed {', '.join(changed[:4])}. The grader does not count "
                "a test during which PyTorch, Python or the grader were changed."
            )
        send("pass", test=known[1])

    def on_report(args, frame):
        kind, frame = initiator(frame)
        if kind != "grader":
            send("forged-report", at=where(frame), text=_repr(args))
            return
        send("report", what=args[0] if args else "", detail=args[1] if _len(args) > 1 else "", at=where(frame))

    def fs_event(event, args, frame):
        path = args[0] if args else None
        if _isinstance(path, _bytes):
            path = path.decode("utf-8", "surrogateescape")
        if not _isinstance(path, _str) or not path.startswith("/"):
            return  # a file descriptor, or a path relative to the scratch directory
        mode = args[1] if _len(args) > 1 else None
        if event == "open":
            writing = _isinstance(mode, _str) and _any(ch in mode for ch in "wax+")
        else:
            writing = event not in read_events
        if path == scratch_dir or path.startswith(scratch_prefix) or path.startswith("/tmp/"):
            return
        if path in quiet_devices or path.startswith("/dev/shm/"):
            return
        if not writing and path.startswith(read_ok):
            return
        send("outside-scratch", event=event, path=path, write=writing, at=where(frame))

    def hook(event, args):
        if not state["armed"]:
            return
        tid = _get_ident()
        if tid in busy:
            return
        if event.startswith("lstm_course."):
            busy.add(tid)
            try:
                frame = _getframe(1)
                if event == checkpoint_event:
                    on_checkpoint(args)
                elif event == pass_event:
                    on_pass(args, frame)
                elif event == report_event:
                    on_report(args, frame)
            finally:
                busy.discard(tid)
            return
        what = blocked.get(event)
        if what is None:
            for prefix, text in blocked_prefixes:
                if event.startswith(prefix):
                    what = text
                    break
        if what is None and event not in watched_fs and event not in special:
            return
        busy.add(tid)
        try:
            kind, frame, lib, student_seen, student_in_grader = survey(_getframe(1))
            if event == "sys.addaudithook":
                what = "adding an audit hook"
            elif kind == "import" and event not in watched_fs:
                return  # the import system compiling and loading modules
            elif event in frame_events:
                # A frame of the grader (its locals hold the expected answers) may reach student code
                # neither directly nor through a library called from student code inside a hidden test.
                if kind == "grader" or not (kind == "student" or student_in_grader):
                    return
                if not reaches_grader(event, args):
                    return
            elif event == "os.kill":
                if kind != "student" and (not student_seen or lib in trusted_libs):
                    return
                if args and args[0] == _getpid():
                    return
                what = "signalling other processes"
            elif event == "compile":
                if kind == "library" and lib == "IPython" and not student_seen:
                    restore_builtins()  # between cells: a kernel with replaced builtins cannot even run
                    return
                filename = args[1] if _len(args) > 1 else None
                if _isinstance(filename, _bytes):
                    filename = filename.decode("utf-8", "surrogateescape")
                if kind != "student" or not _isinstance(filename, _str) or kind_of(filename) == "student":
                    return
                what = f"compiling code that claims to come from {filename}"
            elif event == "object.__setattr__":
                if kind == "student" and _len(args) > 1 and args[1] == "__code__":
                    what = "replacing code objects (__code__)"
                else:
                    return
            elif what is None:
                if student_seen:
                    fs_event(event, args, frame)
                return
            elif event.startswith("socket.") and kind != "student":
                if event not in ("socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg"):
                    if not student_seen or lib in trusted_libs:
                        return
                else:
                    address = args[1] if _len(args) > 1 else None
                    if _isinstance(address, (_str, _bytes)) and (not student_seen or lib in trusted_libs):
                        return  # unix sockets for libraries (the network itself is gone)
            elif kind == "grader" or (kind == "library" and (not student_seen or lib in trusted_libs)):
                return
            send("blocked", event=event, what=what, by=f"{kind} {lib}".strip(), at=where(frame))
            if event == "sys.addaudithook":
                raise _RuntimeError("the grading kernel does not allow new audit hooks")  # not added, quietly
            raise _PermissionError(
                f"the grading kernel does not allow {what} in submitted code (audit event {event})."
            )
        finally:
            busy.discard(tid)

    def arm(wrapper_code, checks):
        state["snapshot"] = _take_snapshot()
        state["wrapper"] = wrapper_code
        state["checks"] = checks
        state["armed"] = True

    return hook, arm, send


# --------------------------------------------------------------------------- boot


def _import_grader(zip_path: str, assignment: str = "") -> list:
    """The harness and the hidden tests (and what they import), from the archive.

    Only the hidden-test module of the notebook being graded when there is one by its name
    (``06_speed_ladder`` -> ``autograder.checks.speed_ladder``): some import heavy parts of PyTorch.
    """
    import importlib
    import zipfile

    with zipfile.ZipFile(zip_path) as zf:
        stems = sorted(n[len("autograder/checks/"):-3] for n in zf.namelist()
                       if n.startswith("autograder/checks/") and n.endswith(".py") and n.count("/") == 2)
    stems = [s for s in stems if s != "__init__"]
    mine = assignment.split("_", 1)[1] if assignment[:2].isdigit() and "_" in assignment else assignment
    names = ["autograder.harness", "autograder.checks"]
    names += [f"autograder.checks.{mine}"] if mine in stems else [f"autograder.checks.{s}" for s in stems]
    loaded = []
    for mod in names:
        try:
            loaded.append(importlib.import_module(mod))
        except Exception as err:  # a broken check module must not stop the other notebooks' grading
            print(f"grading kernel: could not import {mod}: {err!r}", file=sys.stderr)
    return loaded


def foreign_modules(scratch: str) -> list[str]:
    """Modules loaded from the kernel's scratch directory, or from a relative path (which is there).

    The kernel's Python puts no such directory on ``sys.path`` (``sandbox.KERNEL_FLAGS``), so this list is
    empty unless that protection failed; then the kernel must not grade, since such a module ran before
    the guard and its changes would become the guard's baseline.
    """
    root = os.path.realpath(scratch) + os.sep
    found = []
    for name, module in list(sys.modules.items()):
        # read the module's own dict: some modules (torch.classes, ...) answer any attribute
        own = getattr(module, "__dict__", None)
        own = own if isinstance(own, dict) else {}
        more = own.get("__path__")
        listed = isinstance(more, (list, tuple)) or type(more).__name__ == "_NamespacePath"
        paths = [own.get("__file__")] + (list(more) if listed else [])
        for path in paths:
            if not isinstance(path, str) or not path or path.startswith("<"):
                continue
            if not os.path.isabs(path) or os.path.realpath(path).startswith(root):
                found.append(f"{name} ({path})")
                break
    entries = [p for p in sys.path if not p or not os.path.isabs(p) or os.path.realpath(p) + os.sep == root
               or os.path.realpath(p).startswith(root)]
    found += [f"sys.path entry {p!r}" for p in entries]
    return sorted(found)


def seed_everything(seed: int) -> None:
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def main(argv: list[str]) -> None:
    """Inside the sandbox: ``python -c BOOT ZIP CHANNEL_FD KEY_FD CONNECTION_FILE [kernel args]``."""
    zip_path, channel_fd, key_fd, connection_file, *kernel_args = argv
    channel_fd, key_fd = int(channel_fd), int(key_fd)
    key = b""
    while True:
        chunk = os.read(key_fd, 4096)
        if not chunk:
            break
        key += chunk
    os.close(key_fd)
    os.set_inheritable(channel_fd, False)

    threads = int(os.environ.get("LSTM_KERNEL_THREADS", "0") or 0)
    import torch

    if threads > 0:
        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(max(1, min(threads, 2)))
        except RuntimeError:
            pass
    import numpy  # noqa: F401
    import numpy.testing  # noqa: F401
    import torch.nn  # noqa: F401
    import torch.nn.functional  # noqa: F401
    import torch.testing  # noqa: F401

    modules = _import_grader(zip_path, os.environ.get("LSTM_ASSIGNMENT", ""))
    from autograder import harness

    seed_everything(harness.SEED)
    wrapper_code, checks = None, {}
    for mod in modules:
        if not mod.__name__.startswith("autograder.checks."):
            continue
        for name, value in list(vars(mod).items()):
            inner = getattr(value, "__wrapped__", None)
            code = getattr(value, "__code__", None)
            if inner is None or code is None or getattr(inner, "__code__", None) is None:
                continue
            if getattr(value, "__module__", None) != mod.__name__:
                continue
            wrapper_code = wrapper_code or code
            if code is wrapper_code:
                checks[id(inner)] = (inner, f"{mod.__name__}.{name}", inner.__code__)
    scratch = os.getcwd()
    hook, arm, send = make_guard(key, channel_fd, zip_path, harness.GraderTampering, scratch)
    del key
    sys.addaudithook(hook)
    try:
        os.unlink(zip_path)
    except OSError:
        pass

    from ipykernel.kernelapp import IPKernelApp

    app = IPKernelApp.instance()
    app.initialize(["-f", connection_file, *kernel_args])
    import gc

    gc.collect()
    shadowed = foreign_modules(scratch)
    if shadowed:
        send("refused", modules=", ".join(shadowed[:8]))
        print("grading kernel: refusing to grade, these were loaded from the submission's folder before any "
              f"cell ran: {', '.join(shadowed[:8])}", file=sys.stderr, flush=True)
        os._exit(70)
    arm(wrapper_code, checks)
    send("boot", pid=os.getpid(), checks=len(checks), torch=torch.__version__,
         device=os.environ.get(harness.DEVICE_ENV, "cpu"))
    app.start()
