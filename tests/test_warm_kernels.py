"""Kernels forked from the batch's warm parent (``autograder/host/forkserver.py``) live in the sandbox that a
freshly started kernel gets: one submission prints what its kernel sees and may do, graded both ways; the
two views agree, and so do the scores."""

import json
import os
import sys
from collections import Counter

import nbformat
import pytest
from corpus import LIMITS, A, environ, planted, reference, with_cell_after

from autograder import gradelog
from autograder.host import report, sandbox
from autograder.host.batch import grade, log_file
from autograder.host.submissions import submit

VIEW = r'''
import json, os, resource, socket, stat, sys
status = dict(line.split(":\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\t" in line)

def opened(fd):
    try:
        return stat.S_IFMT(os.stat(f"/proc/self/fd/{fd}").st_mode), os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None, ""

view = {
    "ids": [os.getuid(), os.geteuid(), os.getgid(), os.getegid(), os.getgroups()],
    "status": {k: status[k].strip() for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs")},
    "limits": {n: resource.getrlimit(getattr(resource, n))
               for n in ("RLIMIT_AS", "RLIMIT_CPU", "RLIMIT_NPROC", "RLIMIT_FSIZE", "RLIMIT_CORE")},
    "host": socket.gethostname(), "net": [name for _, name in socket.if_nameindex()],
    "parent": os.stat(f"/proc/{os.getppid()}").st_uid if os.getppid() else None,
    "root": sorted(os.listdir("/")), "cwd": os.path.basename(os.getcwd()), "here": sorted(os.listdir(".")),
    "tmp": sorted(name.rsplit("-", 1)[0] for name in os.listdir("/tmp")), "session_leader": os.getsid(0) == os.getpid(),
    "env": {k: os.path.basename(v) if k == "PWD" else v for k, v in os.environ.items() if not k.startswith("JPY_")},
    "init": open("/proc/1/cmdline").read().split("\0")[0],
    "files_open": sorted({target for kind, target in map(opened, os.listdir("/proc/self/fd"))
                          if kind in (stat.S_IFREG, stat.S_IFDIR) and not target.endswith(" (deleted)")}),
    "grader": sorted(name for name in sys.modules if name.split(".")[0] == "autograder"),
    "descriptors": sorted(target.split(":")[0] if target.startswith(("pipe:", "socket:")) else target
                          for _, target in map(opened, os.listdir("/proc/self/fd"))
                          if target and not target.startswith("/")),
}
print("VIEW", json.dumps(view, sort_keys=True))
'''


def _graded(course, dest, warm: str):
    course = course(dest, A)
    submit(course, "view", A, with_cell_after(reference(course), "lstm_cell", VIEW))
    submit(course, "honest_planted_bug", A, planted(course))
    with environ(**LIMITS, LSTM_WARM_KERNELS=warm):
        done = grade(course, A, jobs=2)
    assert done.returncode == 0, done.stdout
    return course


@pytest.fixture(scope="module")
def both(tmp_path_factory, released):
    return {warm: _graded(released, tmp_path_factory.mktemp(f"warm{warm}"), warm) for warm in ("1", "0")}


def _view(course) -> dict:
    nb = nbformat.read(course.notebook("autograded", A, "view"), as_version=4)
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            for line in str(out.get("text", "")).splitlines():
                if line.startswith("VIEW "):
                    return json.loads(line[5:])
    raise AssertionError("the view cell printed nothing")


def _forked(course, student) -> list:
    return [r.get("forked") for r in gradelog.read(log_file(course, A, student)) if r.get("kind") == "exit"]


def test_kernels_are_forked_as_root_and_started_fresh_when_switched_off(both):
    if os.geteuid() != 0:
        pytest.skip("the fork server runs as root only")
    for student in ("view", "honest_planted_bug"):
        assert _forked(both["1"], student) == [True], student
        assert _forked(both["0"], student) == [False], student


def test_a_forked_kernel_sees_and_may_do_what_a_fresh_one_does(both):
    warm, fresh = _view(both["1"]), _view(both["0"])
    # descriptors: none that a fresh kernel does not have too (it has a few more: pipes and event queues)
    extra = Counter(warm.pop("descriptors")) - Counter(fresh.pop("descriptors"))
    assert not extra, extra
    assert warm == fresh
    if os.geteuid() == 0:  # run as root: the kernel's own uid, no capabilities, no way to gain any
        assert warm["ids"][0] != 0 and warm["status"]["CapEff"] == "0000000000000000"
        assert warm["status"]["CapBnd"] == "0000000000000000" and warm["status"]["NoNewPrivs"] == "1"
    assert warm["net"] == ["lo"] and warm["host"] == "grading"
    assert warm["parent"] == 0  # its parent is the sandbox's, as root: not one it can signal
    # open: its own history and matplotlib's fonts, nothing of the grader or of the fork server
    assert all(p.startswith(("/tmp/home/", sandbox.interpreter().rsplit("/bin/", 1)[0], sys.base_prefix))
               for p in warm["files_open"]), warm["files_open"]


def test_the_server_imports_what_the_notebooks_import_and_nothing_of_the_grader(repo):
    preload = sandbox.warm_imports([repo.notebook("source", a) for a in repo.assignments])
    assert {"sklearn.datasets", "torch._dynamo", "matplotlib.pyplot"} <= set(preload)
    assert not [name for name in preload if name.startswith("autograder")], preload
    assert any("autograder.checks" in cell for cell in repo.notebook("source", A).read_text().split('"cell_type"'))


def test_the_scores_agree(both):
    scores = {warm: report.by_exercise(report.scores(course)) for warm, course in both.items()}
    assert scores["1"] == scores["0"]
    got, top = scores["1"][("honest_planted_bug", A, "lstm_cell")]
    assert got < top


@pytest.mark.parametrize("named", ["other namespaces", "the host's own"])
def test_the_server_starts_no_kernel_outside_the_sandbox_it_was_asked_for(tmp_path, named):
    """A request whose sandbox is gone (its process number taken by another) or that names the host: refused."""
    if os.geteuid() != 0:
        pytest.skip("the fork server runs as root only")
    ns = {name: os.stat(f"/proc/self/ns/{name}").st_ino for name in ("cgroup", "ipc", "uts", "net", "pid", "mnt")}
    if named == "other namespaces":
        ns = {name: inode + 1 for name, inode in ns.items()}
    info = {"child-pid": os.getpid(), **{f"{name}-namespace": inode for name, inode in ns.items()}}
    cfg = {**sandbox.settings(), "device": "cpu"}
    request = sandbox.kernel_request(cfg, str(tmp_path), 61998, info, [])
    request["code"] = f"open({str(tmp_path / 'ran')!r}, 'w').write('ran')"
    r, w = os.pipe()
    try:
        with sandbox.forkserver("bwrap", dict(os.environ, LSTM_WARM_KERNELS="1")) as pointer:
            assert pointer, "no fork server started"
            got = sandbox.Forked.start(next(iter(pointer.values())), None, request, [0, 1, 2, w])
    finally:
        os.close(r)
        os.close(w)
    assert isinstance(got, str), got
    assert ("is not in the sandbox's" if named == "other namespaces" else "the sandbox's root is the host's") in got
    assert not (tmp_path / "ran").exists()
