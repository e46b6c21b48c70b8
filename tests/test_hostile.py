"""Hostile submissions (tests/corpus/hostile.py) graded in one batch: none gains a point, none reads or
changes anything outside its own scratch directory, every attempt is in the grading log. Then the
sandbox on its own: what a kernel sees, its process and memory limits; the kernel's channel."""

import hashlib
import json
import os
import subprocess
import types
from pathlib import Path

import pytest
from corpus import LIMITS, A, Listener, environ, expect_case
from corpus.hostile import CONTROLS, cases, planted

from autograder.host import report, sandbox
from autograder.host.batch import grade
from autograder.host.course import ROOT
from autograder.host.submissions import reference_submission, submit

CANARY = "/tmp/lstm-course-canary.txt"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else "missing"


@pytest.fixture(scope="module")
def attacked(tmp_path_factory, released):
    course = released(tmp_path_factory.mktemp("hostile"), A)
    secret = "INSTRUCTOR-SECRET-" + os.urandom(8).hex()
    (course.root / "instructor_secret.txt").write_text(secret)
    canary = "HOST-CANARY-" + os.urandom(8).hex()
    Path(CANARY).write_text(canary)
    listener = Listener()
    corpus = cases(listener.port)
    for case in corpus:
        case.build(course, case.name)
    submit(course, "reference", A, reference_submission(course, A))
    submit(course, "honest_planted_bug", A, planted(course))
    before = {p: _digest(p) for p in [course.notebook("submitted", A, "reference"), Path(CANARY),
                                      course.root / "instructor_secret.txt"]}
    try:
        with environ(**LIMITS):
            result = grade(course, A, jobs=2)
    finally:
        listener.close()
    scores = report.by_exercise(report.scores(course))
    assert course.feedback(A)[0]
    yield types.SimpleNamespace(course=course, result=result, scores=scores, corpus=corpus, before=before,
                                secret=secret, canary=canary, listener=listener)
    Path(CANARY).unlink(missing_ok=True)


def _log(course, student):
    path = course.dir("autograded") / ".grading" / "logs" / A / f"{student}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _graded(course, student):
    path = course.notebook("autograded", A, student)
    return path.read_text() if path.exists() else ""


def test_the_batch_finishes(attacked):
    assert attacked.result.returncode == 0, attacked.result.stdout + attacked.result.stderr
    assert "sandbox: bubblewrap" in attacked.result.stdout


@pytest.mark.parametrize("name", [c.name for c in cases(0)])
def test_attack_gains_nothing_and_is_logged(attacked, name):
    case = next(c for c in attacked.corpus if c.name == name)
    expect_case(case, attacked.scores, _graded(attacked.course, name))
    kinds = {r.get("kind") for r in _log(attacked.course, name)}
    assert case.logged <= kinds, f"{case.about}: the grading log has only {sorted(kinds)}"


def test_controls_are_untouched(attacked):
    for student, want in CONTROLS.items():
        assert {ex: attacked.scores[(student, A, ex)][0] for ex in want} == want, student


def test_nothing_outside_scratch_was_read(attacked):
    for case in attacked.corpus:
        text = _graded(attacked.course, case.name)
        assert attacked.secret not in text and attacked.canary not in text, case.name
        assert "def graded_cell" not in text, f"{case.name} saw the hidden tests' source"
        assert "BEGIN SOLUTION" not in text, f"{case.name} saw the source notebook"
    secrets = _graded(attacked.course, "read_secrets")
    assert "No such file or directory" in secrets  # what it tried is simply not there


def test_nothing_outside_scratch_was_changed(attacked):
    course = attacked.course
    for path, digest in attacked.before.items():
        assert _digest(path) == digest, f"{path} changed"
    assert not (course.root / "pwned.txt").exists()
    assert not (course.dir("feedback") / "reference" / "pwned.html").exists()
    assert "PWNED" not in _graded(course, "reference")
    assert attacked.listener.connections == []


def test_attempts_are_in_the_grading_log(attacked):
    text = (attacked.course.dir("autograded") / ".grading" / "grading-log.txt").read_text()
    for name, words in [("network", "ATTEMPT"), ("frame_walk", "ATTEMPT"), ("function_mode", "TORCH MODES"),
                        ("dispatch_mode", "TORCH MODES"), ("forge_results", "GARBLED"),
                        ("probe_silenced", "NO ANSWER"), ("ready_made_lstm", "ready-made LSTM in the submitted"),
                        ("ready_made_hidden_name", "ready-made LSTM called")]:
        section = text.split(f"{A} / {name}:", 1)[1].split(f"\n{A} / ", 1)[0]
        assert words in section, (name, section[:2000])
    assert "attempts on the grader or the sandbox by" in attacked.result.stdout


def test_feedback_shows_no_hidden_test_source(attacked):
    for case in attacked.corpus:
        html = (attacked.course.dir("feedback") / case.name / A / f"{A}.html").read_text()
        assert "BEGIN HIDDEN TESTS" not in html, case.name
        assert "def graded_cell" not in html and "hidden.cell_forward()" not in html, case.name


# --------------------------------------------------------------------------- the sandbox on its own


def _run_in_sandbox(tmp_path, code, **cfg):
    """``code`` run by the sandbox's Python with the kernels' mounts and limits (no guard, no kernel)."""
    settings = {**sandbox.settings(), "device": "cpu", **cfg}
    zr, zw = os.pipe()
    cr, cw = os.pipe()
    for w in (zw, cw):
        os.write(w, b"{}")
        os.close(w)
    root = os.geteuid() == 0
    argv = sandbox.bwrap_argv(str(tmp_path), None, settings, {"zip": zr, "connection": cr}, root)
    argv += ["--"] + (["/usr/bin/setpriv", "--reuid=61999", "--regid=61999", "--clear-groups", "--inh-caps=-all",
                       "--bounding-set=-all", "--"] if root else [])
    argv += [sandbox.interpreter(), *sandbox.KERNEL_FLAGS, "-c", code]
    if root:
        sandbox._chown_tree(str(tmp_path), 61999)
    try:
        return subprocess.run(argv, pass_fds=(zr, cr), capture_output=True, text=True, timeout=120,
                              preexec_fn=sandbox._limits(settings, 61999 if root else os.getuid()))
    finally:
        os.close(zr)
        os.close(cr)


@pytest.fixture
def bwrap():
    ok, why = sandbox.bwrap_works()
    assert ok, f"these tests need bubblewrap: {why}"


def test_the_sandbox_sees_only_what_the_kernel_needs(tmp_path, bwrap):
    course_file = Path(__file__).resolve()
    listener = Listener()
    try:
        done = _run_in_sandbox(tmp_path, f"""
import os, socket
print(sorted(os.listdir({str(ROOT)!r})) if os.path.isdir({str(ROOT)!r}) else [])
print(os.path.exists({str(course_file)!r}), os.path.exists({str(Path.home())!r} + "/.bash_history"))
print(os.listdir("/tmp"))
try:
    socket.create_connection(("127.0.0.1", {listener.port}), timeout=2)
    print("connected")
except OSError as err:
    print("no network:", err.errno)
open("inside.txt", "w").write("ok")
print(open("inside.txt").read())
""")
    finally:
        listener.close()
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    # of the checkout, at most the way to a Python environment inside it: no source, solutions or gradebook
    inside = {Path(p).relative_to(ROOT).parts[0] for p in sandbox._python_roots() if Path(p).is_relative_to(ROOT)}
    assert set(eval(lines[0])) <= inside, lines[0]
    assert lines[1] == "False False"
    # /tmp is the kernel's own: only its home, the scratch dir's ancestors and, where the Python environment
    # lives under /tmp, the way to it (bound read-only)
    allowed = {"home"} | {Path(p).relative_to("/tmp").parts[0] for p in (str(tmp_path), *sandbox._python_roots())
                          if str(p).startswith("/tmp/")}
    visible = set(eval(lines[2]))
    assert visible <= allowed, visible
    assert lines[3].startswith("no network")
    assert listener.connections == []
    assert lines[4] == "ok" and not (tmp_path / "inside.txt").exists()  # the kernel's folder stays in the sandbox


def test_a_fork_bomb_stops_at_the_process_limit(tmp_path, bwrap):
    done = _run_in_sandbox(tmp_path, """
import os, time
made = 0
try:
    while True:
        if os.fork() == 0:
            time.sleep(20)
            os._exit(0)
        made += 1
except OSError as err:
    print("stopped after", made, "errno", err.errno)
""", procs=48)
    assert "stopped after" in done.stdout, done.stdout + done.stderr
    made = int(done.stdout.split()[2])
    assert made < 48 + (0 if os.geteuid() == 0 else 4096)


def test_memory_is_limited(tmp_path, bwrap):
    done = _run_in_sandbox(tmp_path, """
hog = []
try:
    while True:
        hog.append(bytearray(2**27))
except MemoryError:
    print("MemoryError after", len(hog) * 128, "MB")
""", memory_mb=1024)
    assert "MemoryError after" in done.stdout, done.stdout + done.stderr
    assert int(done.stdout.split()[2]) < 1024


def test_kernel_records_are_claims_and_forgeries_are_garbled():
    """The kernel's channel carries reports, not verdicts: known kinds are marked as the kernel's, others garbled."""
    assert sandbox.kernel_record(b"attempt\tevent=socket.connect\twhat=network access") == {
        "kind": "attempt", "from": "kernel", "event": "socket.connect", "what": "network access"}
    for forged in (b"1\tpass\ttest=autograder.checks.lstm_cell.sigmoid_values\t0123", b"graded", b"x" * 9000):
        assert sandbox.kernel_record(forged)["kind"] == "garbled"


def test_a_flood_on_the_kernels_channel_stops_at_a_bounded_log(tmp_path):
    """Student code can write to the kernel's channel: the grading log keeps a bounded number of its lines."""
    log = tmp_path / "student.jsonl"
    r, w = os.pipe()
    os.write(w, b"attempt\tevent=socket.connect\twhat=network access\n" * 3 + b"x\n" * 5000)
    os.close(w)
    sandbox.GradingLog(str(log), {}).pump(r)
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(records) == sandbox.MAX_KERNEL_RECORDS + 1
    assert [r["kind"] for r in records[:3]] == ["attempt"] * 3
    assert records[-1]["kind"] == "garbled" and "the rest were dropped" in records[-1]["detail"]
