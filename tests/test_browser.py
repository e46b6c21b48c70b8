"""The student's and the instructor's day in a real browser (Playwright driving chromium).

Student: `make lab`'s JupyterLab (and Notebook 7) on a copy of the release, answers typed into the solution
cells, Run All, the visible checks' output under their cells, and nbgrader's Validate button.
Instructor: the Formgrader on a graded demo class, a written answer graded by hand, `make grades`, and the
class report (a file opened in the browser: no server, no console errors).

Expected texts come from the notebooks at run time (the executed solutions' success lines, the error a
planted bug raises when the release runs), not from this file. On a failure the message gives the page's
address, a screenshot and the last console lines. `make screenshots` copies the README's pictures to
docs/screenshots/ (LSTM_SCREENSHOTS).
"""

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from nbclient import NotebookClient
from nbgrader.api import Gradebook
from playwright.sync_api import Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from autograder.demo import CLASS, CLASS_ASSIGNMENT, PLANTED, STUDENTS, make_class, make_submissions
from autograder.host import class_report, report
from autograder.host.batch import autograde, grade
from autograder.host.course import ROOT, Course, copy_course
from autograder.host.submissions import fill, is_solution, nbgrader_meta, read, reference_answers

CHROMIUM = os.environ.get("LSTM_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
STUDENT_NB = "01_lstm_cell"
MANUAL_NB, MANUAL_CELL = "05_training_lab", "greff_discussion"
# What the instructor's flow needs graded (the whole demo takes minutes): notebook 1 for the demo's three
# students, and notebook 5, with the written answer to grade by hand, for the one whose grading trains no
# network (a training run costs a core for most of a minute; no demo student writes the answer anyway).
GRADED = {STUDENT_NB: STUDENTS, MANUAL_NB: ("untouched",)}
SERVER_LIFETIME = 900  # seconds: a server the tests start stops by itself after this, whatever happens
KERNEL_WAIT = 120_000  # ms: kernel start with a torch import, on a busy machine
RUN_WAIT = 240_000  # ms: Run All, or Validate (which runs the notebook again in a fresh kernel)
ERROR_MIME = "application/vnd.jupyter.stderr"


# ---------------------------------------------------------------------------------------- the browser


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """pytest-playwright's launch arguments, with the system's chromium (`playwright install` is not used)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"the browser tests need chromium at {CHROMIUM} (Debian: apt-get install chromium; "
                    f".ci/run installs it; LSTM_CHROMIUM=/path/to/chromium picks another)", pytrace=False)
    return {**browser_type_launch_args, "executable_path": CHROMIUM}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1280, "height": 800}}


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


class Watch:
    """Screenshots of a flow, and on a failure where the page stood: address, screenshot, console, server log."""

    def __init__(self, page: Page, shots: Path, name: str):
        self.page, self.shots, self.name = page, shots, name
        self.console: list[str] = []
        self.server: JupyterServer | None = None
        page.on("console", lambda m: self.console.append(f"[{m.type}] {m.text}"))
        page.on("pageerror", lambda e: self.console.append(f"[pageerror] {e}"))

    def shot(self, name: str, publish: str = "") -> Path:
        path = self.shots / f"{self.name}-{name}.png"
        self.page.screenshot(path=str(path))
        print(f"screenshot: {path}")
        if publish and os.environ.get("LSTM_SCREENSHOTS"):  # `make screenshots`: the README's pictures
            from PIL import Image  # matplotlib's dependency

            out = Path(os.environ["LSTM_SCREENSHOTS"])
            out.mkdir(parents=True, exist_ok=True)
            Image.open(path).convert("RGB").quantize(256).save(out / publish, optimize=True)  # a third the size
        return path

    @contextlib.contextmanager
    def flow(self):
        try:
            yield self
        except Exception as err:
            try:
                where = str(self.shot("FAILED"))
            except Exception as shot_err:  # the page itself may be gone
                where = f"(no screenshot: {shot_err})"
            console = "\n".join(self.console[-15:]) or "(none)"
            log = self.server.log_tail() if self.server else ""
            raise AssertionError(f"{type(err).__name__}: {err}\n\nthe page stood at {self.page.url}\n"
                                 f"screenshot: {where}\nlast console lines:\n{console}\n{log}") from err


@pytest.fixture
def watch(page: Page, shots: Path, request) -> Watch:
    return Watch(page, shots, request.node.originalname.removeprefix("test_")[:48])


# ---------------------------------------------------------------------------------------- the servers


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_lab() -> list[str]:
    """What `make lab` runs after `jupyter` (the Makefile's recipe), e.g. ["lab", "notebooks/"]."""
    recipe = re.search(r"^lab:.*\n\t(.+)$", (ROOT / "Makefile").read_text(), re.M)
    assert recipe and "/bin/jupyter " in recipe.group(1), "the Makefile has no `lab` target running jupyter"
    return recipe.group(1).split("/bin/jupyter ", 1)[1].split()


class JupyterServer:
    """`jupyter lab DIR` (or `jupyter notebook DIR`) as `make lab` runs it, on 127.0.0.1 with a token."""

    def __init__(self, app: str, cwd: Path, root_dir: str, home: Path):
        self.port, self.token = _free_port(), secrets.token_hex(16)
        settings = home / "lab-settings"
        # No news pop-up over the page; every cell rendered (no windowing), so cells can be found by index.
        for plugin, values in {"apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
                               "notebook-extension/tracker": {"windowingMode": "none"}}.items():
            path = settings / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        env = {k: v for k, v in os.environ.items() if k != "DB_URL"}  # the course's own gradebook
        env.update(JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_RUNTIME_DIR=str(home / "runtime"),
                   JUPYTERLAB_SETTINGS_DIR=str(settings), JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
                   IPYTHONDIR=str(home / "ipython"))
        cmd = ["timeout", "--kill-after=10", str(SERVER_LIFETIME), str(Path(sys.executable).parent / "jupyter"),
               app, root_dir, "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}",
               "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}",
               "--ServerApp.open_browser=False", "--ServerApp.shutdown_no_activity_timeout=600"]
        if os.geteuid() == 0:
            cmd.append("--allow-root")  # CI containers run as root
        self.log = home / f"{app}-server.log"
        self.proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=self.log.open("w"), stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                req = urllib.request.Request(f"{self.base}/api/status",
                                             headers={"Authorization": f"token {self.token}"})
                with urllib.request.urlopen(req, timeout=2):
                    break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"jupyter {app} did not start\n{self.log_tail()}") from None
                time.sleep(0.3)

    def url(self, path: str) -> str:
        return f"{self.base}/{path}?token={self.token}"

    def log_tail(self, lines: int = 15) -> str:
        text = self.log.read_text(errors="replace").splitlines() if self.log.exists() else []
        return "last server log lines:\n" + "\n".join(text[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


@contextlib.contextmanager
def serving(app: str, cwd: Path, root_dir: str, home: Path):
    server = JupyterServer(app, cwd, root_dir, home)
    try:
        yield server
    finally:
        server.stop()


# ---------------------------------------------------------------------------------------- the student


def student_copy(tmp: Path) -> Course:
    """The release and the course's nbgrader config, as a student's clone has them, in a throwaway directory."""
    course = copy_course(tmp, with_release=True)
    shutil.copy(ROOT / "nbgrader_config.py", tmp / "nbgrader_config.py")
    return course


@pytest.fixture(scope="module")
def notebook_one():
    """What the pages must show for notebook 1, derived from the notebooks themselves."""
    release = read(ROOT / "notebooks" / STUDENT_NB / f"{STUDENT_NB}.ipynb")
    answers = reference_answers(read(ROOT / "source" / STUDENT_NB / f"{STUDENT_NB}.ipynb"))
    planted = PLANTED[STUDENT_NB].apply(answers)
    # The success line each visible check prints in the executed solution (up to its first number).
    solved = read(ROOT / "solutions" / STUDENT_NB / f"{STUDENT_NB}.ipynb")
    success = {}
    for k, cell in enumerate(solved.cells):
        out = "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("name") == "stdout")
        visible_check = not (is_solution(cell) or nbgrader_meta(cell).get("grade"))  # grading cells are empty
        if cell.cell_type == "code" and out.strip() and visible_check:
            success[k] = re.split(r"[-\d(\[]", out.strip().splitlines()[0])[0].strip()
    assert success and all(success.values()), f"notebook 1's executed solution prints no success line: {success}"
    # Where the planted bug stops the notebook, and with which error: run the release with it, headless.
    nb = fill(release, planted)
    NotebookClient(nb, kernel_name="lstm-course", allow_errors=True, timeout=180).execute()
    failing = next(k for k, c in enumerate(nb.cells) if any(o.output_type == "error" for o in c.get("outputs", [])))
    error = next(o for o in nb.cells[failing].outputs if o.output_type == "error")
    return dict(release=release, reference=answers, planted=planted, success=success, failing=failing,
                ename=error.ename, evalue=error.evalue, kernel=release.metadata.kernelspec.display_name)


def loose(text: str) -> re.Pattern:
    """``text`` as a pattern in which every number may differ (floating-point noise across machines)."""
    parts = re.split(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?", text.strip().splitlines()[-1])
    return re.compile(r"[-+.\deE]+".join(re.escape(p) for p in parts))


def open_notebook(page: Page, server: JupyterServer, ui: str, expected: dict):
    page.goto(server.url(f"{'lab/tree' if ui == 'lab' else 'notebooks'}/{STUDENT_NB}/{STUDENT_NB}.ipynb"))
    cells = page.locator(".jp-Notebook .jp-Cell")
    expect(cells).to_have_count(len(expected["release"].cells), timeout=KERNEL_WAIT)
    # The course kernel starts from the notebook's kernelspec: no "Select Kernel" dialog in the way.
    expect(page.locator(".jp-Toolbar-kernelName").first).to_have_text(expected["kernel"], timeout=KERNEL_WAIT)
    expect(page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").first).to_be_attached(
        timeout=KERNEL_WAIT)
    expect(page.locator(".jp-Dialog")).to_have_count(0)
    return cells


def type_answers(page: Page, cells, release, answers: dict[str, str]) -> None:
    """Click each solution cell's editor, select all, and type the answer in, as a student would."""
    ids = [nbgrader_meta(c).get("grade_id") for c in release.cells]
    for grade_id, code in answers.items():
        editor = cells.nth(ids.index(grade_id)).locator(".cm-content")
        editor.scroll_into_view_if_needed()
        editor.click()
        page.keyboard.press("Control+a")
        page.keyboard.insert_text(code)
        page.keyboard.press("Escape")


def run_all(page: Page) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu li[data-command='runmenu:run-all']").click()


def save_and_wait(page: Page, course: Course, answers: dict[str, str]) -> None:
    """Save from the page, then wait until the file on disk holds what was typed."""
    page.keyboard.press("Control+s")
    path = course.notebook("notebooks", STUDENT_NB)
    deadline = time.monotonic() + 60
    while True:
        saved = {nbgrader_meta(c)["grade_id"]: c.source for c in read(path).cells if is_solution(c)}
        if all(saved.get(k) == v for k, v in answers.items()):
            return
        assert time.monotonic() < deadline, f"the typed answers did not reach {path}: {saved}"
        time.sleep(0.5)


def validate(page: Page) -> tuple[str, str]:
    """Click nbgrader's Validate button; return ("success" or "error", the dialog's text); close the dialog."""
    page.locator("jp-button.validate-button").click()
    dialog = page.locator(".nbgrader-SuccessDialog, .nbgrader-ErrorDialog")
    expect(dialog).to_have_count(1, timeout=RUN_WAIT)
    kind = "success" if "nbgrader-SuccessDialog" in (dialog.get_attribute("class") or "") else "error"
    return kind, dialog.inner_text()


def close_dialog(page: Page) -> None:
    page.locator(".jp-Dialog button.jp-Dialog-button").last.click()
    expect(page.locator(".jp-Dialog")).to_have_count(0)


def expect_success_lines(cells, expected: dict, upto: int | None = None) -> None:
    for k, line in expected["success"].items():
        if upto is None or k < upto:
            expect(cells.nth(k).locator(".jp-OutputArea-output").first).to_contain_text(line, timeout=RUN_WAIT)


def expect_planted_failure(cells, expected: dict) -> None:
    error = cells.nth(expected["failing"]).locator(f".jp-OutputArea-output[data-mime-type='{ERROR_MIME}']")
    expect(error).to_have_count(1, timeout=RUN_WAIT)
    expect(error).to_contain_text(expected["ename"])
    expect(error).to_contain_text(loose(expected["evalue"]))
    # No other cell shows an error: the bug stops the notebook at the check that catches it.
    expect(cells.locator(f".jp-OutputArea-output[data-mime-type='{ERROR_MIME}']")).to_have_count(1)


def expect_validation_names_the_failing_cell(kind: str, text: str, expected: dict) -> None:
    assert kind == "error", f"Validate passed a notebook with a planted bug:\n{text}"
    first_line = expected["release"].cells[expected["failing"]].source.strip().splitlines()[0]
    assert first_line in text, f"the Validate dialog does not name the failing cell ({first_line!r}):\n{text}"
    assert loose(expected["evalue"]).search(text), f"the Validate dialog lacks the error:\n{text}"


@contextlib.contextmanager
def answered(page: Page, watch, tmp_path: Path, notebook_one: dict, ui: str, answers: dict):
    """A student's copy served in ``ui`` ("lab": what `make lab` runs; "notebook": Notebook 7), notebook 1
    open with ``answers`` typed into its solution cells and run: (the course, the page's cells)."""
    course = student_copy(tmp_path / "course")
    app, root_dir = make_lab()
    with serving(app if ui == "lab" else "notebook", course.root, root_dir, tmp_path) as server, watch.flow():
        watch.server = server
        cells = open_notebook(page, server, ui, notebook_one)
        watch.shot("opened")
        type_answers(page, cells, notebook_one["release"], answers)
        run_all(page)
        yield course, cells


def test_lab_reference_answer_passes_the_visible_checks_and_validate(page, watch, notebook_one, tmp_path):
    with answered(page, watch, tmp_path, notebook_one, "lab", notebook_one["reference"]) as (course, cells):
        expect_success_lines(cells, notebook_one)
        expect(page.locator(f".jp-OutputArea-output[data-mime-type='{ERROR_MIME}']")).to_have_count(0)
        last = max(notebook_one["success"])
        cells.nth(last).scroll_into_view_if_needed()
        watch.shot("checks-pass")
        save_and_wait(page, course, notebook_one["reference"])
        kind, text = validate(page)
        watch.shot("validate")
        assert kind == "success", f"Validate failed the reference answer:\n{text}"
        close_dialog(page)


def test_lab_planted_bug_shows_under_its_check_and_validate_names_the_cell(page, watch, notebook_one, tmp_path):
    with answered(page, watch, tmp_path, notebook_one, "lab", notebook_one["planted"]) as (course, cells):
        expect_planted_failure(cells, notebook_one)
        expect_success_lines(cells, notebook_one, upto=notebook_one["failing"])
        # the check's message at the bottom of the page, with as much of the cell above it as fits
        cells.nth(notebook_one["failing"]).locator(f".jp-OutputArea-output[data-mime-type='{ERROR_MIME}']").evaluate(
            """e => { let box = e.parentElement;
                      while (box && box.scrollHeight <= box.clientHeight) box = box.parentElement;
                      if (box) box.scrollTop += e.getBoundingClientRect().bottom - box.getBoundingClientRect().bottom
                                                + 24; }""")
        watch.shot("failing-check", publish="student-failing-check.png")
        save_and_wait(page, course, notebook_one["planted"])
        kind, text = validate(page)
        watch.shot("validate", publish="student-validate-failed.png")
        expect_validation_names_the_failing_cell(kind, text, notebook_one)
        close_dialog(page)


def test_notebook7_planted_bug_then_the_fix(page, watch, notebook_one, tmp_path):
    """In Notebook 7's UI: the planted bug fails its check and Validate; fixed and run again, both pass."""
    bug = PLANTED[STUDENT_NB]
    with answered(page, watch, tmp_path, notebook_one, "notebook", notebook_one["planted"]) as (course, cells):
        expect_planted_failure(cells, notebook_one)
        cells.nth(notebook_one["failing"]).evaluate("e => e.scrollIntoView({block: 'start'})")
        watch.shot("failing-check")
        save_and_wait(page, course, notebook_one["planted"])
        kind, text = validate(page)
        expect_validation_names_the_failing_cell(kind, text, notebook_one)
        close_dialog(page)
        # The student fixes the one cell and runs everything again.
        fixed = {bug.cell: notebook_one["reference"][bug.cell]}
        type_answers(page, cells, notebook_one["release"], fixed)
        run_all(page)
        expect(page.locator(f".jp-OutputArea-output[data-mime-type='{ERROR_MIME}']")).to_have_count(
            0, timeout=RUN_WAIT)
        expect_success_lines(cells, notebook_one)
        save_and_wait(page, course, notebook_one["reference"])
        kind, text = validate(page)
        watch.shot("validate-fixed")
        assert kind == "success", f"Validate failed the fixed notebook:\n{text}"
        close_dialog(page)


# ---------------------------------------------------------------------------------------- the instructor


@pytest.fixture(scope="module")
def demo_class(tmp_path_factory) -> Course:
    """`make demo` in a throwaway course, cut to what the instructor's flow looks at: the assignments of
    GRADED built, the demo's students' notebooks submitted and graded through nbgrader. (The Formgrader lists
    every assignment in source/.)"""
    root = tmp_path_factory.mktemp("demo")
    course = copy_course(root)
    shutil.copy(ROOT / "nbgrader_config.py", root / "nbgrader_config.py")
    for assignment in GRADED:
        course.nbgrader("generate_assignment", assignment, "--force")
    make_submissions(course, list(GRADED))
    for assignment, students in GRADED.items():
        for student in set(STUDENTS) - set(students):
            shutil.rmtree(course.notebook("submitted", assignment, student).parent)
        result = grade(course, assignment)
        assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    return course


@pytest.fixture(scope="module")
def formgrader(demo_class, tmp_path_factory):
    """JupyterLab started in the course directory, as an instructor runs it: the Formgrader reads its config."""
    with serving("lab", demo_class.root, ".", tmp_path_factory.mktemp("formgrader-home")) as server:
        yield server


def make_grades(course: Course) -> tuple[dict[tuple[str, str], str], str]:
    """`make grades` on the course: ({(exercise, student): "score/max"}, the printed output)."""
    env = {k: v for k, v in os.environ.items() if k not in ("DB_URL", "MAKEFLAGS", "MFLAGS")}
    out = subprocess.run(["make", "-s", "grades", f"COURSE_ROOT={course.root}"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    header = next(k for k, line in enumerate(lines) if line.startswith("exercise"))
    students = lines[header].split()[1:]
    table = {}
    for line in lines[header + 2:]:
        if line.startswith("-"):
            break
        label, *cells = line.split()
        cells = [c for c in cells if "/" in c or c == "-"]  # "-": not handed in
        table.update({(label, s): c for s, c in zip(students, cells, strict=True)})
    return table, out.stdout


def test_formgrader_lists_our_assignments_and_the_demo_students_with_scores(page, watch, demo_class, formgrader):
    with watch.flow():
        watch.server = formgrader
        page.goto(formgrader.url("formgrader/manage_assignments"))
        names = page.locator("td.name")
        expect(names).to_have_count(len(demo_class.assignments), timeout=60_000)
        assert sorted(n.strip() for n in names.all_inner_texts()) == demo_class.assignments
        for assignment, students in GRADED.items():
            row = page.locator("tr", has=page.locator("td.name", has_text=assignment))
            expect(row.locator("td.num-submissions")).to_have_text(str(len(students)))
        watch.shot("assignments")

        page.goto(formgrader.url("formgrader/manage_students"))
        expect(page.locator("td.id")).to_have_count(len(STUDENTS), timeout=60_000)
        with Gradebook(demo_class.db) as gb:
            top = sum(a.max_score for a in gb.assignments)
        totals = {s: sum(r.score for r in report.scores(demo_class) if r.student == s) for s in STUDENTS}
        assert len(set(totals.values())) == len(STUDENTS), f"the demo's students should differ: {totals}"
        for student in STUDENTS:
            row = page.locator("tr", has=page.locator("td.id", has_text=re.compile(f"^{student}$")))
            score, of = (float(x) for x in row.locator("td.score").inner_text().split("/"))
            assert (score, of) == (pytest.approx(totals[student]), pytest.approx(top)), (student, score, of)
        watch.shot("students", publish="formgrader-students.png")


def test_written_answer_graded_in_the_formgrader_reaches_make_grades(page, watch, demo_class, formgrader):
    (student,), given = GRADED[MANUAL_NB], 1.5
    key = (f"{MANUAL_NB}:{MANUAL_CELL}", student)
    before, printed = make_grades(demo_class)
    top = before[key].split("/")[1]
    assert before[key] == f"0/{top}", printed
    with Gradebook(demo_class.db) as gb:
        submission = gb.find_submission_notebook(MANUAL_NB, MANUAL_NB, student).id
    with watch.flow():
        watch.server = formgrader
        page.goto(formgrader.url("formgrader/gradebook"))
        page.locator("td a", has_text=MANUAL_NB).first.click()
        page.locator("td a", has_text=MANUAL_NB).first.click()
        page.locator(f"a[href$='/submissions/{submission}']").first.click()
        score = page.locator(f"input.score#{MANUAL_CELL}")
        expect(score).to_be_visible(timeout=60_000)
        score.scroll_into_view_if_needed()
        # the Formgrader may still be filling the page from its API (the score with the stored 0) on a busy
        # machine: a value typed before that is overwritten and never saved, so wait, and type it again if so
        page.wait_for_load_state("networkidle")
        for attempt in range(3):
            try:
                with page.expect_response(lambda r: "/formgrader/api/grade/" in r.url and r.request.method == "PUT",
                                          timeout=20_000) as saved:
                    score.fill(str(given))
                    score.press("Tab")
                break
            except PlaywrightTimeoutError:
                if attempt == 2:
                    raise
        assert saved.value.ok, saved.value.status
        page.locator(f"#{MANUAL_CELL}").evaluate("e => e.closest('.nbgrader_cell').scrollIntoView({block: 'center'})")
        watch.shot("manual-grade", publish="formgrader-manual-grading.png")
    after, printed = make_grades(demo_class)
    assert after[key] == f"{given:g}/{top}", printed
    assert {k: v for k, v in after.items() if k != key} == {k: v for k, v in before.items() if k != key}
    rows = (demo_class.root / "grades.csv").read_text().splitlines()
    assert f"{student},{MANUAL_NB},{MANUAL_CELL},{MANUAL_CELL},{given},{float(top)}" in rows, rows


def _verdicts(course: Course, assignment: str, student: str) -> dict[str, tuple]:
    """The grading log's last verdict of each grading cell: grade_id -> (passed, bug id), which a fresh draw of
    the hidden tests' inputs does not change."""
    path = course.dir("autograded") / ".grading" / "logs" / assignment / f"{student}.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    return {r["cell"]: (r["passed"], r.get("bug")) for r in records if r.get("kind") == "verdict"}


def test_the_autograde_and_feedback_buttons_grade_as_make_autograde(page, watch, demo_class, formgrader):
    """The Formgrader's Autograde button (one student) and Generate Feedback button (the assignment) run nbgrader
    in the server's process: they grade through the batch (sandbox, probe, verdicts here), as `make autograde`."""
    by_make = {k: v for k, v in report.by_exercise(report.scores(demo_class)).items() if k[1] == STUDENT_NB}
    verdicts = {s: _verdicts(demo_class, STUDENT_NB, s) for s in ("planted_bug", "reference")}
    assert any(not passed for passed, _ in verdicts["planted_bug"].values()), verdicts
    graded = demo_class.notebook("autograded", STUDENT_NB, "planted_bug")
    graded.unlink()  # what the button writes, not what the batch wrote before
    with watch.flow():
        watch.server = formgrader
        page.goto(formgrader.url("formgrader/manage_assignments"))
        assignment = page.locator("tr", has=page.locator("td.name", has_text=STUDENT_NB))
        assignment.locator("td.num-submissions a").click()
        for student in ("planted_bug", "reference"):
            row = page.locator("#main-table tr", has=page.locator("td.student-id", has_text=re.compile(f"^{student}$")))
            row.locator("td.autograde a").click()
            modal = page.locator("#success-modal, #error-modal")
            expect(modal).to_have_class(re.compile(r"\bin\b"), timeout=RUN_WAIT)  # shown, faded in
            text = modal.inner_text()
            watch.shot(f"autograde-{student}", publish="formgrader-autograde.png" if student == "planted_bug" else "")
            assert "Successfully autograded" in text and "sandbox: bubblewrap" in text, text
            modal.locator(".modal-footer button").click()
            expect(modal).to_have_count(0)
        page.goto(formgrader.url("formgrader/manage_assignments"))
        assignment.locator("td.generate-feedback a").click()
        modal = page.locator("#success-modal, #error-modal")
        expect(modal).to_be_visible(timeout=RUN_WAIT)
        assert "Successfully generated feedback" in modal.inner_text(), modal.inner_text()
    assert graded.is_file()
    after = {k: v for k, v in report.by_exercise(report.scores(demo_class)).items() if k[1] == STUDENT_NB}
    assert after == by_make
    assert {s: _verdicts(demo_class, STUDENT_NB, s) for s in verdicts} == verdicts
    assert "the grader got no answer from your kernel" not in graded.read_text()
    page_html = (demo_class.dir("feedback") / "planted_bug" / STUDENT_NB / f"{STUDENT_NB}.html").read_text()
    assert "GradingFailure" in page_html and "BEGIN HIDDEN TESTS" not in page_html


def _with_the_class(course: Course, root: Path) -> Course:
    """A copy of the graded course with the demo's notebook-1 class added and graded (only the class)."""
    shutil.copytree(course.root, root, dirs_exist_ok=True)
    bigger = Course(root=root, db_url=f"sqlite:///{root / 'gradebook.db'}")
    make_class(bigger)
    result = autograde(bigger, [CLASS_ASSIGNMENT], list(CLASS), say=lambda _: None)
    assert result.returncode == 0, [o.detail for o in result.outcomes if o.status != "graded"]
    return bigger


def test_class_report_opens_without_console_errors(page, watch, demo_class, tmp_path):
    # `make screenshots`: the README's picture shows the demo's whole class, graded here on top of this one
    course = _with_the_class(demo_class, tmp_path / "class") if os.environ.get("LSTM_SCREENSHOTS") else demo_class
    written = class_report.write(course, tmp_path / "class-report.html")
    planted = PLANTED[CLASS_ASSIGNMENT].bug_id
    with watch.flow():
        page.goto(f"file://{written.written}")
        expect(page.locator("h1")).to_have_text("What the class got wrong")
        row = page.locator(f"tr[data-bug='{planted}']")
        expect(row.locator("td.who")).to_contain_text("planted_bug")
        expect(page.locator("img")).to_have_count(len(written.assignments))
        assert page.evaluate("[...document.images].every(i => i.complete && i.naturalWidth > 100)")
        assert page.evaluate("document.scripts.length") == 0
        watch.shot("first-screen", publish="class-report.png")
        errors = [line for line in watch.console if line.startswith(("[error]", "[pageerror]", "[warning]"))]
        assert not errors, errors
