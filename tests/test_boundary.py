"""The sandbox boundary, through `make autograde` and `make feedback`: nothing a student submits, and
nothing a kernel leaves behind, runs or is followed outside the sandbox (tests/corpus/boundary.py).

For the whole batch: a manifest (path, type, size, hash, mode) of the course outside the grader's own
outputs, of the repository's grader and source, and of submitted/ is the same before and after; a
student graded earlier keeps their gradebook row; a listener on 127.0.0.1 sees no connection; every
student gets a row and the batch exits 0; feedback holds no student script and no file that was not
the student's own. Then feedback on its own: one assignment that fails does not stop the others, and
a folder holding a FIFO does not hang it. Then a course whose .venv is reached through a link.
"""

import hashlib
import html.parser
import os
import shutil
import stat
import subprocess
from pathlib import Path

import nbformat
import pytest
from corpus import VENV, A, Listener, expect_case, make
from corpus.boundary import cases
from corpus.hostile import CONTROLS, planted
from nbgrader.api import Gradebook

from autograder.host import report
from autograder.host.course import ROOT, copy_course
from autograder.host.submissions import reference_submission, submit
from autograder.kernel import boot

A2 = "02_stacked_lstm"  # a second assignment, for feedback that fails in one assignment only
OUTPUTS = {"autograded", "feedback", "gradebook.db", "gradebook.db-journal", "grades.csv"}


def manifest(root: Path, skip=frozenset()) -> dict:
    """path -> (type, size, sha256 or link target, mode) for everything under ``root``, links not followed."""
    out = {}
    for here, dirs, files in os.walk(root):
        rel_here = Path(here).relative_to(root)
        dirs[:] = [d for d in dirs if d != "__pycache__" and not (rel_here == Path(".") and d in skip)]
        for name in dirs + files:
            if rel_here == Path(".") and name in skip:
                continue
            path = Path(here) / name
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode):
                what = hashlib.sha256(path.read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                what = os.readlink(path)
            else:
                what = ""
            out[str(path.relative_to(root))] = (stat.S_IFMT(st.st_mode), st.st_size if what else 0, what,
                                                stat.S_IMODE(st.st_mode))
    return out


def manifests(course) -> dict:
    return {"course": manifest(course.root, OUTPUTS), "earlier": manifest(course.dir("autograded") / "earlier"),
            "grader": manifest(ROOT / "autograder"), "source": manifest(ROOT / "source"),
            "submitted": manifest(course.dir("submitted"))}


def rows(course, student: str) -> list:
    with Gradebook(course.db) as gb:
        sub = gb.find_submission(A, student)
        return sorted((nb.name, g.name, g.auto_score, g.manual_score, g.needs_manual_grade)
                      for nb in sub.notebooks for g in nb.grades) + [("timestamp", str(sub.timestamp))]


@pytest.fixture(scope="module")
def boundary(tmp_path_factory, released):
    course = released(tmp_path_factory.mktemp("boundary"), A, A2)
    secret = course.root / "instructor_secret.txt"
    secret.write_text("INSTRUCTOR-SECRET-" + os.urandom(8).hex())
    # a student graded in an earlier batch, whose submission has since been archived
    submit(course, "earlier", A, reference_submission(course, A))
    first = make(course, "autograde")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    shutil.move(course.dir("submitted") / "earlier", tmp_path_factory.mktemp("archived") / "earlier")
    earlier = rows(course, "earlier")

    listener = Listener()
    corpus = cases(course.root, listener.port, secret)
    for case in corpus:
        case.build(course, case.name)
    submit(course, "reference", A, reference_submission(course, A))
    submit(course, "reference", A2, reference_submission(course, A2))
    submit(course, "honest_planted_bug", A, planted(course))
    before = manifests(course)
    try:
        done = make(course, "autograde")
        fed = make(course, "feedback", env={"FEEDBACK_TIMEOUT": "300"}, timeout=900)
    finally:
        listener.close()
    return type("Graded", (), dict(course=course, corpus=corpus, done=done, fed=fed, before=before,
                                   earlier=earlier, listener=listener, secret=secret.read_text(),
                                   scores=report.by_exercise(report.scores(course))))


def _graded(course, student) -> str:
    path = course.notebook("autograded", A, student)
    return path.read_text() if path.exists() and not path.is_symlink() else ""


def test_the_batch_ends_with_a_row_for_every_student(boundary):
    done = boundary.done
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "sandbox: bubblewrap" in done.stdout
    students = [c.name for c in boundary.corpus] + list(CONTROLS)
    for student in students:
        assert f"{A} / {student}: graded" in done.stdout, (student, done.stdout[-4000:])
        assert {k[2] for k in boundary.scores if k[:2] == (student, A)} == {"sigmoid", "lstm_cell",
                                                                           "load_from_torch"}, student


@pytest.mark.parametrize("name", [c.name for c in cases(Path("/x"), 0, Path("/x"))])
def test_the_attack_gains_nothing(boundary, name):
    case = next(c for c in boundary.corpus if c.name == name)
    text = _graded(boundary.course, name)
    expect_case(case, boundary.scores, text)
    assert boundary.secret not in text and "def _checked_params" not in text and "BEGIN SOLUTION" not in text


def test_the_controls_keep_their_grades(boundary):
    for student, want in CONTROLS.items():
        assert {ex: boundary.scores[(student, A, ex)][0] for ex in want} == want, student


def test_nothing_outside_the_sandbox_ran_changed_or_connected(boundary):
    after = manifests(boundary.course)
    for part, files in boundary.before.items():
        changed = sorted(set(files.items()) ^ set(after[part].items()))
        assert not changed, f"{part}: {changed[:6]}"
    assert not list(boundary.course.root.glob("PWNED-*"))
    assert boundary.listener.connections == []


def test_a_student_graded_earlier_keeps_their_row(boundary):
    assert rows(boundary.course, "earlier") == boundary.earlier


class _Tags(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.scripts, self.handlers, self.frames, self.urls = [], [], [], []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        if tag == "script":
            self.scripts.append(dict(attrs).get("src") or "")
            self._in_script = True
        if tag in ("iframe", "frame", "object", "embed"):
            self.frames.append(tag)
        for name, value in attrs:
            if name.startswith("on"):
                self.handlers.append(f"{tag} {name}")
            if value and value.strip().lower().startswith("javascript:"):
                self.urls.append(f"{tag} {name}")

    def handle_endtag(self, tag):
        self._in_script = self._in_script and tag != "script"

    def handle_data(self, data):
        if self._in_script:
            self.scripts[-1] += data


def _tags(path: Path) -> _Tags:
    parser = _Tags()
    parser.feed(path.read_text())
    return parser


def test_feedback_holds_no_student_script(boundary):
    course = boundary.course
    assert boundary.fed.returncode == 0, boundary.fed.stdout[-3000:] + boundary.fed.stderr[-3000:]
    control = _tags(course.dir("feedback") / "reference" / A / f"{A}.html")
    page = course.dir("feedback") / "script_in_feedback" / A / f"{A}.html"
    attacked = _tags(page)
    assert set(attacked.scripts) <= set(control.scripts), "a student's script reached the feedback"
    assert not any("PWNED_JS" in s for s in attacked.scripts)
    assert (attacked.handlers, attacked.frames, attacked.urls) == (control.handlers, control.frames, control.urls)
    assert "<b>bold is fine</b>" in page.read_text()  # cleaned, not thrown away


def test_feedback_holds_only_the_students_own_files(boundary):
    course = boundary.course
    for case in boundary.corpus:
        folder = course.dir("feedback") / case.name / A
        if not folder.exists():
            continue
        submitted = course.dir("submitted") / case.name / A
        for path in folder.rglob("*"):
            assert not path.is_symlink() and (path.is_dir() or stat.S_ISREG(os.lstat(path).st_mode)), path
            if path.is_dir() or path.name == f"{A}.html":
                continue
            own = submitted / path.relative_to(folder)
            assert own.is_file() and not own.is_symlink() and own.read_bytes() == path.read_bytes(), (
                f"{case.name}: {path.relative_to(folder)} in feedback is not the student's own file")


def test_feedback_that_fails_in_one_assignment_still_writes_the_others(boundary):
    course = boundary.course
    # what an older grader could have let a kernel leave: a FIFO and a link in a graded folder
    graded = course.dir("autograded") / "reference" / A
    os.mkfifo(graded / "left_fifo")
    os.symlink(course.root / "gradebook.db", graded / "left_link")
    # and one assignment whose feedback cannot be written: a graded notebook that is not JSON
    broken = course.dir("autograded") / "reference" / A2 / f"{A2}.ipynb"
    assert broken.exists()
    broken.write_text("{ not a notebook")
    shutil.rmtree(course.dir("feedback"))
    done = make(course, "feedback", env={"FEEDBACK_TIMEOUT": "300"}, timeout=900)
    assert done.returncode != 0, done.stdout[-2000:]
    assert f"feedback for {A2}" in done.stdout and "1 assignment(s) failed" in done.stdout, done.stdout[-3000:]
    assert (course.dir("feedback") / "reference" / A / f"{A}.html").exists()
    assert not os.path.lexists(graded / "left_fifo") and not os.path.lexists(graded / "left_link")
    assert not list(course.dir("feedback").rglob("left_*"))
    assert "removed" in done.stdout and "left_fifo" in done.stdout


def test_the_kernel_refuses_to_grade_after_a_module_from_its_folder_was_loaded(tmp_path, monkeypatch):
    folder = tmp_path / "scratch"
    folder.mkdir()
    (folder / "shadowing_module_for_the_test.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(folder))
    import shadowing_module_for_the_test  # noqa: F401

    try:
        found = boot.foreign_modules(str(folder))
        assert any(f.startswith("shadowing_module_for_the_test ") for f in found), found
        assert any(f.startswith("sys.path entry") for f in found), found
        assert not any("shadowing_module_for_the_test" in f for f in boot.foreign_modules(str(tmp_path / "x")))
    finally:
        del __import__("sys").modules["shadowing_module_for_the_test"]


def test_a_course_whose_venv_is_reached_through_a_link_grades(tmp_path):
    course = copy_course(tmp_path / "course")
    course.nbgrader("generate_assignment", A, "--force")
    submit(course, "reference", A, reference_submission(course, A))
    link = tmp_path / "linked-venv"
    os.symlink(VENV, link)
    done = make(course, "autograde", jobs=1, venv=link)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "sandbox: bubblewrap" in done.stdout, done.stdout[:2000]
    got = {k[2]: v[0] for k, v in report.by_exercise(report.scores(course)).items()}
    assert got == {"sigmoid": 2.0, "lstm_cell": 9.0, "load_from_torch": 2.0}, done.stdout[-3000:]
    nb = nbformat.read(course.notebook("autograded", A, "reference"), as_version=4)
    assert not any(o.get("output_type") == "error" for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def test_the_sandbox_probe_runs_what_a_kernel_runs():
    """The probe starts the same interpreter path with the same flags as a kernel, in a fresh folder."""
    from autograder.host import sandbox

    assert sandbox.interpreter() == os.path.join(os.path.realpath(os.path.dirname(os.sys.executable)),
                                                 os.path.basename(os.sys.executable))
    done = subprocess.run([str(VENV / "bin" / "python"), "-I", "-m", "autograder.host.sandbox", "probe"],
                          capture_output=True, text=True, cwd="/", timeout=120)
    assert "sandbox: bubblewrap" in done.stdout, done.stdout + done.stderr
