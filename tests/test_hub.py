"""A class on the course's JupyterHub (`make hub`), in a real browser, with several Unix users.

The hub, its proxy and the course service are started and stopped here, on free ports of 127.0.0.1; the class
(an instructor, three students, the grader account) is made by `autograder/hub/make_class.py` under a name
prefix of this run and removed at the end. Every process the hub starts runs under `timeout`, so nothing
outlives the test.

The loop: the instructor generates and releases notebook 1 in the Formgrader (the course service); two
students log in and fetch it from the Assignments tab; the notebooks are written into their fetched folders
as those Unix users (typing two whole notebooks in the browser costs minutes), one with the reference
answers, one with the planted bug; both submit from the Assignments tab; the instructor collects, autogrades
each (through the sandboxed batch), generates and releases feedback; each student fetches his feedback and
reads his own score, which is the gradebook's; `make grades` and `make report` read the same gradebook.
On the way, what a student must not do, as his Unix user and in the browser, each next to the same act by
someone allowed to (the control): read another's submission or secret, list the exchange's inbound or
feedback, read or write the course directory, open the Formgrader or another student's server; and what
one may not change for another: a submission forged in another's name, a FIFO left in the inbound folder.

Feedback on submit: the course's second service grades a student's submissions as they come, one per slot,
and grades again what it was grading when it was killed.
"""

import contextlib
import json
import os
import pwd
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import nbformat
import pytest
import requests
from nbgrader.api import Gradebook
from nbgrader.utils import notebook_hash
from playwright.sync_api import Browser, Page, expect
from test_browser import Watch, browser_type_launch_args  # noqa: F401 (a fixture)

from autograder.demo import PLANTED
from autograder.host.course import ROOT
from autograder.host.submissions import fill, read, reference_answers
from autograder.hub import layout
from autograder.hub.feedback import POLICY_FILE, Policy, Service

ASSIGNMENT = "01_lstm_cell"
LIFETIME = 900  # seconds: the hub, its proxy, the service and every server stop by themselves after this
HUB_WAIT = 300  # seconds for the hub and the course service to start on a busy machine
SPAWN_WAIT = 240_000  # ms: a student's server starting
GRADE_WAIT = 300_000  # ms: one notebook graded in the sandbox, or feedback generated
VIEWPORT = {"width": 1280, "height": 800}


# ---------------------------------------------------------------------------------------- the hub


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


class Hub:
    """The class (``layout.Class``) and its running hub."""

    def __init__(self, klass: layout.Class, proc: subprocess.Popen, log: Path):
        self.klass, self.proc, self.log = klass, proc, log

    def url(self, path: str) -> str:
        return f"{self.klass.url}/{path.lstrip('/')}"

    def service(self, path: str = "") -> str:
        return self.url(f"services/{self.klass.course_id}/{path}")

    def password(self, user: str) -> str:
        return json.loads(self.klass.passwords.read_text())[user]

    def log_tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace").splitlines() if self.log.exists() else []
        return "last hub log lines:\n" + "\n".join(text[-lines:])


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _up(hub: Hub) -> bool:
    """The hub answers and the course service's route is in the proxy (it sends a visitor to log in)."""
    try:
        api = requests.get(hub.url("hub/api/"), timeout=3)
        service = requests.get(hub.service(), timeout=3, allow_redirects=False)
    except requests.RequestException:
        return False
    return api.status_code == 200 and service.status_code == 302


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the hub (it stops its servers, service and proxy), SIGKILL if it lingers."""
    for sig, wait in ((signal.SIGTERM, 60), (signal.SIGKILL, 10)):
        if proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(wait)


def _make_class(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "autograder.hub.make_class", *args], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, f"make_class {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="module")
def hub():
    if os.geteuid() != 0:
        pytest.skip("the hub's class is made of Unix users (useradd, chpasswd): run the tests as root")
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS")}
    setup = subprocess.run(["make", "-s", "hub-setup"], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=600)
    assert setup.returncode == 0, f"`make hub-setup` (the proxy, from npm) failed:\n{setup.stdout}\n{setup.stderr}"
    home = Path(tempfile.mkdtemp(prefix="lstm-hub-"))
    home.chmod(0o755)  # the users' homes are in it
    prefix = f"t{secrets.token_hex(2)}-"  # this run's Unix names: t1a2b-s1, t1a2b-instructor, ...
    _make_class("--home", str(home), "--port", str(_free_port()), "--prefix", prefix, "--homes",
                str(home / "homes"), "--lifetime", str(LIFETIME), "--on-submit", "off")  # the loop grades by hand
    klass = layout.load(home)
    log = klass.hub_dir / "hub.log"
    proc = subprocess.Popen([sys.executable, "-m", "autograder.hub.run", "--home", str(home)], stdout=log.open("w"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    running = Hub(klass, proc, log)
    try:
        deadline = time.monotonic() + HUB_WAIT
        while not _up(running):
            assert proc.poll() is None, f"the hub stopped (exit {proc.returncode})\n{running.log_tail()}"
            assert time.monotonic() < deadline, f"the hub did not start in {HUB_WAIT} s\n{running.log_tail()}"
            time.sleep(1)
        yield running
    finally:
        _stop(proc)
        _make_class("--home", str(home), "--remove")


# ---------------------------------------------------------------------------------------- as a Unix user


def as_user(user: str, *cmd: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["runuser", "-u", user, "--", *cmd], input=stdin, capture_output=True, text=True,
                          timeout=60, cwd="/")


def denied(user: str, *cmd: str) -> None:
    done = as_user(user, *cmd)
    assert done.returncode != 0, f"{user} could run `{' '.join(cmd)}`:\n{done.stdout[:500]}"


def allowed(user: str, *cmd: str) -> None:
    done = as_user(user, *cmd)
    assert done.returncode == 0, f"{user} could not run `{' '.join(cmd)}` (the control):\n{done.stderr}"


def home_of(user: str) -> Path:
    return Path(pwd.getpwnam(user).pw_dir)


# ---------------------------------------------------------------------------------------- in the browser


def log_in(browser: Browser, hub: Hub, user: str, next_path: str = "") -> Page:
    """A new browser (its own cookies) at the hub's login page, the user's name and password sent."""
    page = browser.new_context(viewport=VIEWPORT).new_page()
    page.goto(hub.url("hub/login") + (f"?next={quote(next_path)}" if next_path else ""))
    page.fill("#username_input", user)
    page.fill("#password_input", hub.password(user))
    page.click("#login_submit")
    return page


def formgrader_button(page: Page, column: str, success: str, row=None) -> str:
    """Click the Formgrader's button in ``column`` of the assignment's row; the success dialog's text."""
    row = row or page.locator("#main-table tr", has=page.locator("td.name", has_text=ASSIGNMENT))
    row.locator(f"td.{column} a").click()
    modal = page.locator("#success-modal, #error-modal")
    expect(modal).to_be_visible(timeout=GRADE_WAIT)
    text = modal.inner_text()
    assert success in text, text
    modal.locator(".modal-footer button").first.click()
    expect(modal).to_have_count(0)
    return text


def assignments_tab(page: Page) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Nbgrader$")).click()
    page.locator(".lm-Menu-item[data-command='nbgrader:open-assignment-list']").click()
    expect(page.locator("#released_assignments_list")).to_be_visible()


def listed(page: Page, listing: str):
    """The assignment's row in the Assignments tab's list ``listing``: released, fetched or submitted."""
    return page.locator(f"#{listing}_assignments_list > .list_item", has_text=ASSIGNMENT)


def press(page: Page, listing: str, button: str) -> None:
    listed(page, listing).locator("button", has_text=re.compile(f"^{button}$")).click()


# ---------------------------------------------------------------------------------------- the loop


def release(hub: Hub, page: Page, watch: Watch) -> None:
    """The instructor, logged in straight into the Formgrader: Generate, then Release."""
    with watch.flow():
        expect(page.locator("td.name", has_text=ASSIGNMENT)).to_be_visible(timeout=SPAWN_WAIT)
        formgrader_button(page, "assign", "Successfully created the student version")
        formgrader_button(page, "release", "Successfully released")
        watch.shot("released")


def fetch(page: Page, watch: Watch, user: str) -> None:
    with watch.flow():
        page.wait_for_url(re.compile(f"/user/{re.escape(user)}/tree"), timeout=SPAWN_WAIT)
        assignments_tab(page)
        page.locator("#refresh_assignments_list").click()  # the server may have started before the release
        expect(page.locator(".list_loading:visible")).to_have_count(0, timeout=60_000)
        expect(listed(page, "released")).to_have_count(1, timeout=60_000)
        watch.shot("released", publish="hub-assignments.png" if watch.name.endswith("s1") else "")
        press(page, "released", "Fetch")
        expect(listed(page, "fetched")).to_have_count(1, timeout=60_000)


def write_answers(hub: Hub, user: str, answers: dict[str, str]) -> Path:
    """The fetched notebook with ``answers`` in it, written as ``user`` into his fetched folder."""
    path = home_of(user) / hub.klass.course_id / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    nb = fill(read(path), answers)
    written = as_user(user, "tee", str(path), stdin=nbformat.writes(nb))
    assert written.returncode == 0, written.stderr
    return path


def submit(page: Page, watch: Watch) -> None:
    with watch.flow():
        press(page, "fetched", "Submit")
        expect(listed(page, "submitted")).to_have_count(1, timeout=60_000)


def grade(hub: Hub, page: Page, watch: Watch, students: list[str]) -> None:
    """The instructor: Collect, Autograde each submission (the sandboxed batch), Generate and Release feedback."""
    with watch.flow():
        page.reload()
        formgrader_button(page, "collect", "Successfully collected")
        row = page.locator("#main-table tr", has=page.locator("td.name", has_text=ASSIGNMENT))
        expect(row.locator("td.num-submissions")).to_have_text(str(len(students)))
        page.goto(hub.service(f"formgrader/manage_submissions/{ASSIGNMENT}"))
        for student in students:
            row = page.locator("#main-table tr", has=page.locator("td.student-id", has_text=re.compile(f"^{student}$")))
            expect(row).to_have_count(1, timeout=60_000)
            row.locator("td.autograde a").click()
            modal = page.locator("#success-modal, #error-modal")
            expect(modal).to_be_visible(timeout=GRADE_WAIT)
            text = modal.inner_text()
            watch.shot(f"autograde-{student}", publish="hub-autograde.png" if student == students[-1] else "")
            assert "Successfully autograded" in text and "sandbox: bubblewrap" in text, text
            modal.locator(".modal-footer button").first.click()
            expect(modal).to_have_count(0)
        page.goto(hub.service("formgrader/manage_assignments"))
        formgrader_button(page, "generate-feedback", "Successfully generated feedback")
        formgrader_button(page, "release-feedback", "Successfully released feedback")


def read_feedback(hub: Hub, page: Page, watch: Watch, user: str) -> str:
    """The student fetches his feedback in the Assignments tab and opens the page: its text."""
    with watch.flow():
        page.locator("#refresh_assignments_list").click()
        press(page, "submitted", "Fetch Feedback")
        view = page.locator("#submitted_assignments_list a", has_text="view feedback")
        expect(view).to_have_count(1, timeout=60_000)
        view.click()
        watch.shot("feedback-folder")
        fetched = home_of(user) / hub.klass.course_id / ASSIGNMENT / "feedback"
        (html,) = fetched.glob(f"*/{ASSIGNMENT}.html")
        page.goto(hub.url(f"user/{user}/files/{quote(str(html.relative_to(home_of(user))))}"))
        heading = page.locator("h1, h2, h3, h4", has_text=f"{ASSIGNMENT} (Score:").first
        expect(heading).to_be_visible(timeout=60_000)
        heading.scroll_into_view_if_needed()
        watch.shot("feedback", publish="hub-feedback.png" if user.endswith("s2") else "")
        return page.locator("body").inner_text()


def score_in(text: str) -> tuple[float, float]:
    found = re.search(rf"{ASSIGNMENT} \(Score: ([\d.]+) / ([\d.]+)\)", text)
    assert found, f"the feedback page shows no score for {ASSIGNMENT}:\n{text[:1500]}"
    return float(found.group(1)), float(found.group(2))


def gradebook_scores(hub: Hub, students: list[str]) -> dict[str, tuple[float, float]]:
    with Gradebook(f"sqlite:///{hub.klass.course_dir / 'gradebook.db'}") as gb:
        return {s: (gb.find_submission(ASSIGNMENT, s).score, gb.find_submission(ASSIGNMENT, s).max_score)
                for s in students}


# ---------------------------------------------------------------------------------------- isolation


def inbound_submission(hub: Hub, user: str) -> Path:
    (found,) = (hub.klass.exchange / hub.klass.course_id / "inbound").glob(f"{user}+{ASSIGNMENT}+*")
    return found


def students_are_kept_apart(hub: Hub, victim: str, intruder: str) -> None:
    """What ``intruder`` may not do with ``victim``'s work and the course, each next to someone who may."""
    klass, grader = hub.klass, hub.klass.grader
    exchange = klass.exchange / klass.course_id
    submission = inbound_submission(hub, victim)
    notebook = submission / f"{ASSIGNMENT}.ipynb"
    allowed(grader, "cat", str(notebook))
    allowed(victim, "cat", str(notebook))
    denied(intruder, "cat", str(notebook))  # even knowing its name
    denied(intruder, "cat", str(submission / "submission_secret.txt"))  # what names his feedback
    denied(intruder, "ls", str(exchange / "inbound"))
    allowed(grader, "ls", str(exchange / "inbound"))
    denied(intruder, "rm", "-rf", str(submission))
    assert submission.is_dir()
    fetched = home_of(victim) / klass.course_id / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    allowed(victim, "cat", str(fetched))
    denied(intruder, "cat", str(fetched))
    cache = home_of(victim) / ".local/share/jupyter/nbgrader_cache"
    denied(intruder, "ls", str(cache))
    for user in (intruder, klass.instructors[0]):  # the course directory: the grader account's alone
        denied(user, "ls", str(klass.course_dir))
        denied(user, "cat", str(klass.course_dir / "gradebook.db"))
        denied(user, "touch", str(klass.course_dir / "source" / "planted.py"))
    allowed(grader, "touch", str(klass.course_dir / ".probe"))
    denied(intruder, "touch", str(exchange / "outbound" / ASSIGNMENT / "planted.ipynb"))
    allowed(grader, "touch", str(exchange / "outbound" / ".probe"))
    # the checkout the course runs from: what gives answers away is the grader account's to read, not a student's
    for rel in (f"source/{ASSIGNMENT}/{ASSIGNMENT}.ipynb", f"solutions/{ASSIGNMENT}/{ASSIGNMENT}.ipynb",
                "autograder/zoo/lstm_cell.py", "autograder/checks/mistakes/lstm_cell.py", "autograder/ladder.py",
                ".git/HEAD", "tests/zoo_common.py"):
        denied(intruder, "cat", str(ROOT / rel))
        allowed(grader, "cat", str(ROOT / rel))
    denied(intruder, "ls", str(ROOT / "source"))
    allowed(intruder, "cat", str(ROOT / "notebooks" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"))  # the release is public
    allowed(intruder, "cat", str(ROOT / "autograder" / "hub" / "exchange.py"))  # what a server imports to submit


def plant_in_inbound(hub: Hub, forger: str, victim: str) -> None:
    """As ``forger``, in the world-writable inbound folder: his right answers in a submission named for ``victim``
    and dated after it (nbgrader's collect would take it as the victim's), and a FIFO in his own submission
    (nbgrader's copy would block on it, and with it the collect of the whole class)."""
    inbound = hub.klass.exchange / hub.klass.course_id / "inbound"
    own = inbound_submission(hub, forger)
    forged = inbound / f"{victim}+{ASSIGNMENT}+2099-01-01 00:00:00.000000 UTC+forged"
    allowed(forger, "mkdir", str(forged))
    for name in (f"{ASSIGNMENT}.ipynb", "timestamp.txt", "submission_secret.txt"):
        allowed(forger, "cp", str(own / name), str(forged / name))
    allowed(forger, "mkfifo", str(own / "trap"))


def feedback_is_kept_apart(hub: Hub, intruder: str) -> None:
    folder = hub.klass.exchange / hub.klass.course_id / "feedback"
    denied(intruder, "ls", str(folder))
    allowed(hub.klass.grader, "ls", str(folder))


def formgrader_is_closed(page: Page, watch: Watch, hub: Hub, instructor_page: Page, other: str) -> None:
    """A student gets 403 for another student's server and for the Formgrader; the instructor gets in."""
    for url in (hub.url(f"user/{other}/tree"), hub.service("formgrader/api/assignments"),
                hub.service("formgrader/manage_assignments")):
        response = page.goto(url)
        assert response.status == 403, f"a student opened {url}: {response.status}"
    watch.shot("forbidden", publish="hub-formgrader-403.png")
    response = instructor_page.goto(hub.service("formgrader/manage_assignments"))
    assert response.status == 200, response.status


# ---------------------------------------------------------------------------------------- the test


def test_a_class_on_the_hub_from_release_to_feedback(browser, hub, shots):
    klass = hub.klass
    instructor, (good, buggy) = klass.instructors[0], klass.students[:2]
    answers = reference_answers(read(ROOT / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"))
    planted = PLANTED[ASSIGNMENT]
    pages = {s: log_in(browser, hub, s) for s in (good, buggy)}  # their servers start while the instructor works
    teacher = log_in(browser, hub, instructor, next_path=f"/services/{klass.course_id}/formgrader/manage_assignments")
    watches = {instructor: Watch(teacher, shots, "hub-instructor")}
    watches[instructor].server = hub
    release(hub, teacher, watches[instructor])
    for student, page in pages.items():
        watches[student] = Watch(page, shots, f"hub-{'s1' if student == good else 's2'}")
        watches[student].server = hub
        fetch(page, watches[student], student)
    write_answers(hub, good, answers)
    write_answers(hub, buggy, planted.apply(answers))
    for student, page in pages.items():
        submit(page, watches[student])
    students_are_kept_apart(hub, victim=good, intruder=buggy)
    students_are_kept_apart(hub, victim=buggy, intruder=good)
    plant_in_inbound(hub, forger=good, victim=buggy)  # the scores below show it changed nothing

    grade(hub, teacher, watches[instructor], [good, buggy])
    books = gradebook_scores(hub, [good, buggy])
    assert books[good][0] == books[good][1] > books[buggy][0], books
    texts = {s: read_feedback(hub, pages[s], watches[s], s) for s in (good, buggy)}
    for student, text in texts.items():
        assert score_in(text) == pytest.approx(books[student]), (student, books)
    assert "GradingFailure" in texts[buggy] and "GradingFailure" not in texts[good]
    assert "BEGIN HIDDEN TESTS" not in texts[buggy]
    feedback_is_kept_apart(hub, intruder=buggy)

    formgrader_is_closed(pages[buggy], watches[buggy], hub, teacher, other=good)

    # `make grades` and `make report` read the gradebook the Formgrader wrote
    env = {k: v for k, v in os.environ.items() if k not in ("DB_URL", "MAKEFLAGS", "MFLAGS")}
    runs = [subprocess.Popen(["make", "-s", target, f"COURSE_ROOT={klass.course_dir}"], cwd=ROOT, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for target in ("grades", "report")]
    for run in runs:
        out, _ = run.communicate(timeout=300)
        assert run.returncode == 0, f"{' '.join(run.args)}:\n{out}"
    rows = [line.split(",") for line in (klass.course_dir / "grades.csv").read_text().splitlines()[1:]]
    for student in (good, buggy):
        total = sum(float(r[4]) for r in rows if r[0] == student and r[1] == ASSIGNMENT)
        assert total == pytest.approx(books[student][0]), (student, rows)
    html = (klass.course_dir / "class-report.html").read_text()
    row = re.search(rf"<tr[^>]*data-bug=['\"]{re.escape(planted.bug_id)}['\"].*?</tr>", html, re.S)
    assert row and buggy in row.group(0) and good not in row.group(0), planted.bug_id


# ---------------------------------------------------------------------------------------- feedback on submit


def set_policy(hub: Hub, policy: Policy) -> None:
    """What the instructor writes into the course directory (as the grader account, whose it is)."""
    text = json.dumps({"enabled": policy.enabled, "minutes_between": policy.minutes_between})
    done = as_user(hub.klass.grader, "tee", str(hub.klass.course_dir / POLICY_FILE), stdin=text)
    assert done.returncode == 0, done.stderr


def feedback_file(hub: Hub, submission: Path) -> Path:
    secret = (submission / "submission_secret.txt").read_text().strip()
    name = notebook_hash(secret=secret, notebook_id=ASSIGNMENT)
    return hub.klass.exchange / hub.klass.course_id / "feedback" / f"{name}.html"


def wait_for(what: str, check, timeout: float, hub: Hub):
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"no {what} after {timeout:.0f} s\n{hub.log_tail(40)}"
        time.sleep(1)
    return found


def feedback_service(hub: Hub) -> int | None:
    """The feedback service's Python process (the grader account's), if it runs."""
    uid = pwd.getpwnam(hub.klass.grader).pw_uid
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if entry.name.isdigit() and entry.stat().st_uid == uid and b"autograder.hub.feedback" in argv \
                    and not argv[0].endswith(b"timeout"):
                return int(entry.name)
    return None


def kill_tree(pid: int) -> None:
    """SIGKILL to a process and everything it started (its grading too): a crash."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    todo, tree = [pid], []
    while todo:
        tree.append(todo.pop())
        todo += children.get(tree[-1], [])
    for each in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(each, signal.SIGKILL)


def ensure_released(browser: Browser, hub: Hub, shots: Path) -> None:
    """Notebook 1 released by the instructor (the loop test does it; this test may run alone)."""
    page = log_in(browser, hub, hub.klass.instructors[0],
                  next_path=f"/services/{hub.klass.course_id}/formgrader/manage_assignments")
    row = page.locator("#main-table tr", has=page.locator("td.name", has_text=ASSIGNMENT))
    expect(row.locator("td.status")).not_to_be_empty(timeout=SPAWN_WAIT)
    if "released" not in row.locator("td.status").inner_text():
        release(hub, page, Watch(page, shots, "hub-instructor-again"))
    page.context.close()


def test_feedback_on_submit_one_per_slot_and_after_a_crash(browser, hub, shots):
    """Feedback on submit: the service grades a student's first submission at once; killed mid-grading (with its
    grading), it is started again by the hub and grades that submission then; the second submission, made within
    the per-student limit, waits for its slot and gets its own feedback."""
    klass, slot = hub.klass, 40.0  # seconds between two graded submissions of one student
    student = klass.students[2]
    answers = reference_answers(read(ROOT / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"))
    ensure_released(browser, hub, shots)
    set_policy(hub, Policy(enabled=True, minutes_between=slot / 60))
    page = log_in(browser, hub, student)
    watch = Watch(page, shots, "hub-s3")
    watch.server = hub
    fetch(page, watch, student)
    write_answers(hub, student, answers)
    submit(page, watch)
    first = inbound_submission(hub, student)
    staged = klass.course_dir / "submitted" / student / ASSIGNMENT
    wait_for("grading of the first submission", lambda: (staged / "submission_secret.txt").exists(), 60, hub)
    crashed = wait_for("feedback service", lambda: feedback_service(hub), 30, hub)
    time.sleep(3)  # mid-grading: its kernel is starting
    kill_tree(crashed)
    assert not feedback_file(hub, first).exists()
    wait_for("feedback service started again", lambda: feedback_service(hub) not in (None, crashed), 60, hub)

    write_answers(hub, student, PLANTED[ASSIGNMENT].apply(answers))
    submit(page, watch)
    inbound = klass.exchange / klass.course_id / "inbound"
    second = wait_for("the second submission", lambda: next(iter(set(inbound.glob(f"{student}+*")) - {first}), None),
                      60, hub)
    one = wait_for("feedback on the first submission", lambda: feedback_file(hub, first).exists(), 300, hub)
    assert one and not feedback_file(hub, second).exists()  # its slot has not come
    wait_for("feedback on the second submission", lambda: feedback_file(hub, second).exists(), slot + 300, hub)
    gap = feedback_file(hub, second).stat().st_mtime - feedback_file(hub, first).stat().st_mtime
    assert gap >= slot, f"two graded submissions {gap:.0f} s apart, within the {slot:.0f} s limit"
    texts = {sub: feedback_file(hub, sub).read_text() for sub in (first, second)}
    (good,), (buggy,) = (re.findall(rf"{ASSIGNMENT} \(Score: ([\d.]+) / ([\d.]+)\)", texts[s]) for s in (first, second))
    assert good[0] == good[1] and float(buggy[0]) < float(buggy[1]), (good, buggy)
    with watch.flow():
        page.locator("#refresh_assignments_list").click()
        press(page, "submitted", "Fetch Feedback")
        expect(page.locator("#submitted_assignments_list a", has_text="view feedback")).to_have_count(2, timeout=60_000)
        watch.shot("feedback-on-submit", publish="hub-feedback-on-submit.png")


# ---------------------------------------------------------------------------------------- which submission is due


def _course_and_exchange(tmp_path: Path) -> tuple[Path, Path]:
    course, exchange = tmp_path / "course", tmp_path / "exchange"
    (course / "notebooks" / ASSIGNMENT).mkdir(parents=True)
    (course / "notebooks" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").write_text("{}")
    (exchange / "c" / "inbound").mkdir(parents=True)
    (exchange / "c" / "feedback").mkdir()
    return course, exchange


def _submit(exchange: Path, student: str, timestamp: str, secret: str | None = "s") -> Path:
    folder = exchange / "c" / "inbound" / f"{student}+{ASSIGNMENT}+{timestamp}+r{timestamp[-2:]}"
    folder.mkdir()
    (folder / f"{ASSIGNMENT}.ipynb").write_text("{}")
    if secret is not None:
        (folder / "submission_secret.txt").write_text(secret + timestamp)
    return folder


def _release(exchange: Path, folder: Path, when: float) -> None:
    secret = (folder / "submission_secret.txt").read_text()
    path = exchange / "c" / "feedback" / f"{notebook_hash(secret=secret, notebook_id=ASSIGNMENT)}.html"
    path.write_text("feedback")
    os.utime(path, (when, when))


def test_a_submission_within_the_limit_waits_for_its_slot_and_none_is_dropped(tmp_path):
    me = pwd.getpwuid(os.getuid()).pw_name  # the submissions' folders are this user's own
    course, exchange = _course_and_exchange(tmp_path)
    service = Service(course, exchange, "c", say=lambda _: None)
    first = _submit(exchange, me, "2026-01-01 10:00:00.000001")
    assert service.due(Policy(), now=1000.0).path == first  # a first submission: at once
    assert service.due(Policy(enabled=False), now=1000.0) is None  # turned off: it waits, kept
    _release(exchange, first, when=1000.0)
    second = _submit(exchange, me, "2026-01-01 10:01:00.000002")
    third = _submit(exchange, me, "2026-01-01 10:02:00.000003")
    assert service.due(Policy(minutes_between=10), now=1000.0 + 599) is None  # within the limit
    assert service.due(Policy(minutes_between=0), now=1000.0 + 1).path == second  # the limit off: at once
    assert service.due(Policy(minutes_between=10), now=1000.0 + 600).path == second  # its slot: the oldest first
    _release(exchange, second, when=1600.0)
    assert service.due(Policy(minutes_between=10), now=1600.0 + 599) is None
    assert service.due(Policy(minutes_between=10), now=1600.0 + 600).path == third  # not dropped


def test_a_forged_or_unfinished_submission_is_not_graded(tmp_path):
    me = pwd.getpwuid(os.getuid()).pw_name
    other = next(u.pw_name for u in pwd.getpwall() if u.pw_uid != os.getuid())
    course, exchange = _course_and_exchange(tmp_path)
    service = Service(course, exchange, "c", say=lambda _: None)
    _submit(exchange, other, "2026-01-01 09:00:00.000001")  # named for another student, made by this user
    unfinished = _submit(exchange, me, "2026-01-01 09:30:00.000002", secret=None)  # nbgrader writes the secret last
    assert service.due(Policy(minutes_between=0), now=1000.0) is None
    (unfinished / "submission_secret.txt").write_text("s")
    assert service.due(Policy(minutes_between=0), now=1000.0).path == unfinished
