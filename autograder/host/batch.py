"""Grade every submission: parallel nbgrader processes, each notebook in its own sandboxed kernel.

For each (assignment, student):

1. **Pre-flight** (``stage``): read the submitted file without trusting it. An empty file, invalid
   JSON, something that is not a notebook, a notebook for another assignment or a missing notebook
   becomes the release notebook (every answer unanswered, so zero) with a note saying why. A real
   notebook is rebuilt in the release's order: the student's code goes into the solution cells it
   belongs to (the last copy, if a cell was duplicated; turned back into code if it became markdown)
   and cells the student added stay after the answer they followed; every test and given cell comes
   from the release, so deleted, duplicated, reordered or retyped test cells are back. A markdown
   cell at the top lists what was changed. The staged copy goes to ``autograded/.grading/staged``;
   ``submitted/`` is never touched.
2. **Grading**: ``nbgrader autograde ASSIGNMENT`` with ``--CourseDirectory.submitted_directory`` pointing
   at the staged copies of a few submissions (nbgrader's start-up costs seconds; a chunk shares it), the
   sandboxed kernel of ``autograder/sandbox.py``, its own socket directory, and a wall-clock limit per
   notebook. ``jobs`` such processes run at once (default: one per core); each kernel gets cores/jobs
   threads. A notebook counts as graded when ``autograder.host.execute.MarkGraded`` logged it, after nbgrader
   saved its grades.
3. **Fallback**: a notebook nbgrader could not finish (its process died or ran out of time) is graded
   again from the release notebook with a note saying what happened (zero points, feedback that
   explains); if even that fails, the gradebook gets zeros directly. The batch always finishes.
4. **Report**: what the grading log holds (``autograder/gradelog.py``: what the kernel reported of the
   submission's attempts, what the grader noticed, cells that killed the kernel) goes to
   ``autograded/.grading/grading-log.txt`` and to the console.

The gradebook is written only by the grader (the nbgrader processes, and this module for students and
last-resort zeros), never from inside a kernel, which cannot even see it. SQLite gets a busy timeout so
that parallel writers wait for each other; ``DB_URL=postgresql+psycopg://...`` works the same way.
"""

import contextlib
import copy
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .. import gradelog
from ..settings import ENV
from ..settings import load as load_settings
from . import datafiles, sandbox
from .course import ROOT, Course, nbgrader_errors

GRADING_DIR = ".grading"  # under autograded/: staged copies, logs, the kernelspec
UID_BASE = 61000
SQLITE_TIMEOUT = 120
MAX_TRIES = 2  # a notebook whose nbgrader process stopped before reaching it is tried again, then falls back
# nbgrader's command line, minus a 3-second import nobody here needs (jsonschema's IRI grammar, built at
# import time by rfc3987_syntax; nbformat only validates notebooks, which never contain IRIs).
NBGRADER_MAIN = ("import sys; sys.modules['rfc3987_syntax'] = None; sys.argv[0] = 'nbgrader'; "
                 "from nbgrader.apps.nbgraderapp import main; sys.exit(main())")
HOSTILE_KINDS = gradelog.ATTEMPTS
# the log records an outcome carries: attempts, and what happened to the grading itself
EVENT_KINDS = HOSTILE_KINDS | {"cell-skipped", "exit", "grading-failed", "gave-up", "staging-failed"}


@dataclass
class Job:
    assignment: str
    student: str
    notes: list = field(default_factory=list)
    problem: str = ""  # set when the submission could not be used at all
    tries: int = 0  # nbgrader processes that stopped before reaching this notebook
    prestaged: str = ""  # a folder already staged elsewhere (the coordinator of a clustered batch): graded as is


@dataclass
class Outcome:
    assignment: str
    student: str
    status: str  # graded | fallback | failed | lost (a cluster lost it: graded as the release, counts as failed)
    seconds: float
    notes: list
    events: list
    detail: str = ""


@dataclass
class BatchResult:
    outcomes: list
    mode: str
    seconds: float
    missing: list = field(default_factory=list)  # (assignment, student) that got no outcome at all

    @property
    def failed(self) -> int:
        return sum(1 for o in self.outcomes if o.status in ("failed", "lost")) + len(self.missing)

    @property
    def returncode(self) -> int:
        return 1 if self.failed else 0


# --------------------------------------------------------------------------- pre-flight


def _meta(cell) -> dict:
    """A cell's nbgrader metadata; {} for anything that is not a well-formed cell (a student's notebook
    can hold any JSON: a string for metadata, a number for a cell, ...)."""
    meta = cell.get("metadata") if isinstance(cell, dict) else None
    meta = meta.get("nbgrader") if isinstance(meta, dict) else None
    if not isinstance(meta, dict):
        return {}
    gid = meta.get("grade_id")
    return meta if gid is None or isinstance(gid, str) else {}


def _text(value) -> str:
    """A cell's source as nbformat means it: a string, or a list of strings."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "".join(value)
    return ""


def _release_ids(nb) -> set:
    return {_meta(c).get("grade_id") for c in nb.cells if _meta(c).get("grade_id")}


def _other_assignment(course: Course, assignment: str, ids: set) -> str:
    best, overlap = "", 0
    for other in course.assignments:
        path = course.notebook("notebooks", other)
        if other == assignment or not path.exists():
            continue
        try:
            common = len(ids & _release_ids(nbformat.read(path, as_version=4)))
        except Exception:
            continue
        if common > overlap:
            best, overlap = other, common
    return best


MAX_NOTEBOOK_BYTES = 64 * 2**20


def _plain_cell(cell: dict) -> dict:
    """A cell with the fields nbformat relies on made well-typed (what a field held that was not is lost)."""
    cell = dict(cell)
    if not isinstance(cell.get("id"), str):
        cell.pop("id", None)
    if not isinstance(cell.get("metadata"), dict):
        cell["metadata"] = {}
    cell["source"] = _text(cell.get("source"))
    if cell.get("cell_type") not in ("code", "markdown", "raw"):
        cell["cell_type"] = "raw"
    if cell["cell_type"] == "code":
        cell["outputs"], cell["execution_count"] = [], None
    else:
        cell.pop("outputs", None)
        cell.pop("execution_count", None)
    return cell


def read_submission(path: Path):
    """(notebook, problem, notes): the problem says in words why the file cannot be graded; the notes, what
    was left out of a notebook that can.

    The file is opened without following a link and without blocking (a FIFO), and read only if it is a
    regular file of reasonable size: the grader never reads anything but the student's own file.
    """
    data, why = datafiles.open_regular(str(path), MAX_NOTEBOOK_BYTES)
    if why == "missing":
        try:
            others = sorted(datafiles.shown(p.name) for p in path.parent.iterdir()) if path.parent.is_dir() else []
        except OSError:
            others = []
        found = f" (the folder has: {', '.join(others[:20])})" if others else ""
        return None, f"no notebook named {path.name} was submitted{found}", []
    if why:
        return None, f"{path.name} {why}, not a notebook file", []
    if not data.strip():
        return None, f"{path.name} is empty ({len(data)} bytes)", []
    try:
        raw = json.loads(data.decode("utf-8", errors="strict"))
    except UnicodeDecodeError as err:
        return None, f"{path.name} is not UTF-8 text ({err.reason} at byte {err.start})", []
    except json.JSONDecodeError as err:
        return None, f"{path.name} is not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})", []
    except RecursionError:
        return None, f"{path.name} is JSON nested too deeply to be a notebook", []
    if not isinstance(raw, dict) or "cells" not in raw or not isinstance(raw.get("cells"), list):
        return None, f"{path.name} is JSON but not a notebook (no list of cells)", []
    junk = [c for c in raw["cells"] if not isinstance(c, dict)]
    raw["cells"] = [_plain_cell(c) for c in raw["cells"] if isinstance(c, dict)]
    try:
        nb = nbformat.reads(json.dumps(raw), as_version=4)
    except RecursionError:
        return None, f"{path.name} is nested too deeply to be a notebook", []
    except Exception as err:
        return None, f"{path.name} is not a notebook nbformat can read ({type(err).__name__}: {err})", []
    return nb, "", [f"{len(junk)} of its cells are not cells at all: they were left out."] if junk else []


def normalize(release, submitted, assignment: str) -> tuple:
    """The release with the student's answers and extra cells in place; and notes on what changed."""
    notes = []
    release_cells = list(release.cells)
    by_gid = {_meta(c)["grade_id"]: c for c in release_cells if _meta(c).get("grade_id")}
    by_id = {c.get("id"): c for c in release_cells if c.get("id")}
    answer_ids = [g for g, c in by_gid.items() if _meta(c).get("solution")]
    seen: dict[str, list] = {}
    extras: dict[str, list] = {}
    anchor = ""
    order = []
    for cell in submitted.cells:
        gid = _meta(cell).get("grade_id")
        release_cell = by_gid.get(gid) if gid else None
        cell_id = cell.get("id") if isinstance(cell.get("id"), str) else None
        if release_cell is None and cell_id in by_id and not gid:
            release_cell = by_id[cell_id]
            gid = _meta(release_cell).get("grade_id")
        if release_cell is not None and gid:
            seen.setdefault(gid, []).append(cell)
            order.append(gid)
            anchor = gid
            continue
        extra = nbformat.v4.new_code_cell(_text(cell.get("source"))) if cell.get("cell_type") == "code" else \
            nbformat.v4.new_markdown_cell(_text(cell.get("source")))
        extras.setdefault(anchor, []).append(extra)
    out = list(extras.get("", []))
    for cell in release_cells:
        gid = _meta(cell).get("grade_id")
        copies = seen.get(gid, [])
        new = copy.deepcopy(cell)
        if gid in answer_ids:
            if copies:
                chosen = copies[-1]
                new.source = _text(chosen.get("source"))
                if len(copies) > 1:
                    notes.append(f"answer cell `{gid}` appears {len(copies)} times: the last copy was graded.")
                if chosen.get("cell_type") != cell.cell_type:
                    notes.append(f"answer cell `{gid}` had been turned into {chosen.get('cell_type')}: it was "
                                 f"graded as {cell.cell_type} again.")
            else:
                notes.append(f"answer cell `{gid}` is missing: graded as unanswered.")
        elif gid:
            if not copies:
                what = "test cell" if _meta(cell).get("grade") else "cell"
                notes.append(f"{what} `{gid}` was deleted: the original was put back.")
            else:
                if len(copies) > 1:
                    notes.append(f"cell `{gid}` appears {len(copies)} times: it was kept once.")
                if any(c.get("cell_type") != cell.cell_type for c in copies):
                    notes.append(f"cell `{gid}` had been turned into {copies[-1].get('cell_type')}: the original "
                                 "was put back.")
        out.append(new)
        out.extend(extras.get(gid, []))
    kept = [g for g in order if g in by_gid]
    first_seen = list(dict.fromkeys(kept))
    release_order = [g for g in by_gid if g in first_seen]
    if first_seen != release_order:
        notes.append("cells had been moved: they were graded in the order of the assignment.")
    nb = copy.deepcopy(release)
    nb.cells = out
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return nb, notes


def notes_cell(notes: list, problem: str = ""):
    lines = ["**Notes from the grader**", ""]
    if problem:
        lines.append(f"- Your submission could not be graded: {problem}. It was graded as the unanswered "
                     "assignment (no points).")
    lines += [f"- {n}" for n in notes]
    cell = nbformat.v4.new_markdown_cell("\n".join(lines))
    cell.metadata["lstm_course_notes"] = True
    return cell


def _submitted_dir_problem(course: Course, job: Job) -> str:
    """Why the submission's folders cannot be used, if they are links (to another student's work, ...)."""
    for path in (course.dir("submitted") / job.student, course.dir("submitted") / job.student / job.assignment):
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            return ""
        if not stat.S_ISDIR(mode):
            return f"`{path.relative_to(course.root)}` is {datafiles.kind_of(mode)}, not a folder"
    return ""


def stage(course: Course, job: Job, staged_root: Path, force_release: str = "") -> Path:
    """Write the notebook nbgrader will grade for this job, and the student's data files; returns its path.

    Everything the student submitted is read as data (``autograder/datafiles.py``): the notebook only if
    it is a regular file, the files beside it only as regular files and folders.
    """
    release_path = course.notebook("notebooks", job.assignment)
    release = nbformat.read(release_path, as_version=4)
    submitted_dir = course.dir("submitted") / job.student / job.assignment
    dest_dir = staged_root / job.student / job.assignment
    shutil.rmtree(dest_dir, ignore_errors=True)
    dest_dir.parent.mkdir(parents=True, exist_ok=True)
    notes = []
    problem = force_release or _submitted_dir_problem(course, job)
    if problem:
        dest_dir.mkdir()
        nb = None
    else:
        _, dropped = datafiles.copy_data(str(submitted_dir), str(dest_dir), skip=frozenset({f"{job.assignment}.ipynb"}))
        notes += dropped
        nb, problem, more = read_submission(submitted_dir / f"{job.assignment}.ipynb")
        notes += more
    if nb is not None:
        ids = {_meta(c).get("grade_id") for c in nb.cells if _meta(c).get("grade_id")}
        answers = {_meta(c)["grade_id"] for c in release.cells if _meta(c).get("solution")}
        if not ids & _release_ids(release):
            other = _other_assignment(course, job.assignment, ids)
            problem = (f"it is a notebook for another assignment ({other})" if other else
                       f"none of its cells belong to {job.assignment} (their nbgrader metadata is missing)")
            nb = None
        elif not ids & answers:
            notes.append("none of the answer cells were found: graded as unanswered.")
    if nb is None:
        graded = copy.deepcopy(release)
    else:
        graded, more = normalize(release, nb, job.assignment)
        notes += more
    if problem or notes:
        graded.cells.insert(0, notes_cell(notes, problem))
    job.notes, job.problem = notes, problem
    path = dest_dir / f"{job.assignment}.ipynb"
    nbformat.write(graded, path)
    return path


def stage_safely(course: Course, job: Job, staged_root: Path, log: Path) -> Path:
    """``stage``, and if reading the submission fails in a way nobody foresaw, the unanswered release with a
    note: one submission never stops the others."""
    try:
        return stage(course, job, staged_root)
    except Exception as err:
        why = f"the grader could not read it ({type(err).__name__}: {str(err)[:200]})"
        gradelog.append(log, {"kind": "staging-failed", "detail": f"{type(err).__name__}: {err}"[:800]})
        return stage(course, job, staged_root, force_release=why)


# --------------------------------------------------------------------------- the gradebook


def worker_db_url(db_url: str) -> str:
    """SQLite: wait for other writers instead of failing with 'database is locked'."""
    if db_url.startswith("sqlite") and "timeout=" not in db_url:
        return db_url + ("&" if "?" in db_url else "?") + f"timeout={SQLITE_TIMEOUT}"
    return db_url


def prepare_gradebook(course: Course, jobs: list) -> None:
    """Create the gradebook and every student once, before parallel writers start."""
    from nbgrader.api import Gradebook

    with Gradebook(worker_db_url(course.db)) as gb:
        for student in sorted({j.student for j in jobs}):
            gb.update_or_create_student(student)


def zero_grades(course: Course, assignment: str, student: str) -> None:
    """Last resort: zeros in the gradebook for a submission nbgrader could not grade at all."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(worker_db_url(course.db)) as gb:
        gb.update_or_create_student(student)
        try:
            submission = gb.find_submission(assignment, student)
        except MissingEntry:
            submission = gb.add_submission(assignment, student)
        for notebook in submission.notebooks:
            for grade in notebook.grades:
                grade.auto_score = 0
                grade.needs_manual_grade = False
        gb.db.commit()


# --------------------------------------------------------------------------- one job


class Runner:
    """``jobs`` workers; each grades a few submissions of one assignment per nbgrader process."""

    def __init__(self, course: Course, todo: list, jobs: int, mode: str, cell_timeout: int, budget: int,
                 grading: Path, say, extra_env: dict | None = None, per_notebook: int | None = None):
        self.course, self.jobs, self.mode = course, jobs, mode
        self.cell_timeout, self.budget = cell_timeout, budget
        self.grading, self.log_root = grading, grading / "logs"
        self.spec_root = grading / "jupyter"
        self.say = say
        self.threads = max(1, (os.cpu_count() or 1) // jobs)
        self.chunk = chunk_size(len(todo), jobs)
        # wall-clock limit of an nbgrader process, per notebook (the budget covers the notebook and its restarts)
        self.per_notebook = per_notebook or load_settings().grading_timeout or budget + 140
        self.extra_env = dict(extra_env or {})  # settings a clustered batch's coordinator hands its workers
        self.pending = list(todo)
        # run as root, each worker's kernels get their own uid; batches running side by side, their own range
        self.uid_base = UID_BASE + (os.getpid() % 2000) * 16
        self.lock = threading.Lock()
        self.outcomes: list = []

    def env(self, slot: int, ipc_dir: str) -> dict:
        jupyter_path = os.pathsep.join(p for p in [str(self.spec_root), os.environ.get("JUPYTER_PATH", "")] if p)
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        env = {
            **os.environ, **self.extra_env, "PATH": path, "JUPYTER_PATH": jupyter_path,
            ENV["grading_kernel"]: sandbox.KERNEL_NAME,
            ENV["ipc_prefix"]: os.path.join(ipc_dir, "k"), ENV["grading_log"]: str(self.log_root),
            sandbox.MODE_ENV: self.mode, sandbox.THREADS_ENV: str(self.threads),
            ENV["cell_timeout"]: str(self.cell_timeout), ENV["notebook_budget"]: str(self.budget),
            "PYTHONUNBUFFERED": "1",
        }
        if os.geteuid() == 0:
            env[sandbox.UID_ENV] = str(self.uid_base + slot)
        env.setdefault(sandbox.CPU_ENV, str(max(sandbox.DEFAULT_CPU_SECONDS, 3 * self.budget * self.threads)))
        return env

    def nbgrader(self, assignment: str, staged: Path, env: dict, timeout: float, student: str = ""):
        cmd = [sys.executable, "-c", NBGRADER_MAIN, "autograde", assignment, "--force",
               f"--CourseDirectory.root={self.course.root}",
               f"--CourseDirectory.db_url={worker_db_url(self.course.db)}",
               f"--CourseDirectory.submitted_directory={staged}"] + ([f"--student={student}"] if student else [])
        # Output to a file, not a pipe: a kernel that outlives nbgrader must not keep the batch waiting.
        with tempfile.TemporaryFile("w+") as out:
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, text=True,
                                    start_new_session=True)
            try:
                rc = proc.wait(timeout=timeout)
                note = ""
            except subprocess.TimeoutExpired:
                rc, note = -1, f"\n[batch: nbgrader ran past {timeout:.0f} s and was stopped]"
            finally:
                with contextlib.suppress(OSError):
                    os.killpg(proc.pid, signal.SIGKILL)  # and anything it left behind in its group
                proc.wait()
            out.seek(0)
            return rc, out.read()[-200_000:] + note

    def graded(self, job: Job) -> bool:
        """nbgrader went all the way (autograder.host.execute.MarkGraded logged it after saving the grades)."""
        return any(r.get("kind") == "graded" for r in gradelog.read(self.log_of(job)))

    def log_of(self, job: Job) -> Path:
        return log_file(self.course, job.assignment, job.student)

    def take(self) -> list:
        with self.lock:
            if not self.pending:
                return []
            first = self.pending.pop(0)
            chunk = [first]
            size = 1 if first.tries else self.chunk  # a notebook tried again goes alone
            for job in list(self.pending):
                if len(chunk) >= size:
                    break
                if job.assignment == first.assignment and not job.tries:
                    self.pending.remove(job)
                    chunk.append(job)
            return chunk

    def worker(self, slot: int) -> None:
        while True:
            chunk = self.take()
            if not chunk:
                return
            try:
                outcomes = self.run(slot, chunk)
            except Exception as err:  # a bug of ours, or the machine: these students still get a row
                with self.lock:
                    waiting = {id(j) for j in self.pending}
                outcomes = [self.last_resort(job, f"the grader failed: {type(err).__name__}: {err}")
                            for job in chunk if id(job) not in waiting]
            for outcome in outcomes:
                with self.lock:
                    self.outcomes.append(outcome)
                    self.say(summary_line(outcome))

    def run(self, slot: int, chunk: list) -> list:
        assignment = chunk[0].assignment
        staged = self.grading / "staged" / f"w{slot}"
        shutil.rmtree(staged, ignore_errors=True)
        ipc_dir = tempfile.mkdtemp(prefix="lstm-ipc-")
        os.chmod(ipc_dir, 0o700)
        try:
            for job in chunk:
                self.log_of(job).parent.mkdir(parents=True, exist_ok=True)
                self.log_of(job).write_text("")
                if job.prestaged:
                    shutil.copytree(job.prestaged, staged / job.student / job.assignment)
                else:
                    stage_safely(self.course, job, staged, self.log_of(job))
            env = self.env(slot, ipc_dir)
            rc, out = self.nbgrader(assignment, staged, env, self.per_notebook * len(chunk))
            if rc != 0:  # a notebook nbgrader could not finish must not keep a sanitized, unexecuted copy
                for job in chunk:
                    if not self.graded(job):
                        shutil.rmtree(self.course.dir("autograded") / job.student / job.assignment,
                                      ignore_errors=True)
            outcomes = []
            for job in chunk:
                try:
                    if self.graded(job):
                        outcomes.append(self.outcome(job, "graded", ""))
                    elif not any(r.get("kind") == "start" for r in gradelog.read(self.log_of(job))) and \
                            job.tries < MAX_TRIES:
                        job.tries += 1
                        why = (nbgrader_errors(out).strip().splitlines() or ["no detail"])[-1]
                        with self.lock:  # never reached (the process stopped early): try it again, on its own
                            self.pending.append(job)
                            self.say(f"  {job.assignment} / {job.student}: not reached, nbgrader stopped first "
                                     f"({why}); trying again, {job.tries} of {MAX_TRIES}")
                    else:
                        outcomes.append(self.fallback(slot, job, env, _why_not_graded(self.log_of(job), out)))
                except Exception as err:
                    outcomes.append(self.last_resort(job, f"the grader failed: {type(err).__name__}: {err}"))
            return outcomes
        finally:
            shutil.rmtree(ipc_dir, ignore_errors=True)
            shutil.rmtree(staged, ignore_errors=True)

    def last_resort(self, job: Job, detail: str) -> Outcome:
        """Zeros in the gradebook and a failed outcome, whatever else has gone wrong."""
        try:
            gradelog.append(self.log_of(job), {"kind": "grading-failed", "detail": detail[-800:]})
        except OSError:
            pass
        try:
            zero_grades(self.course, job.assignment, job.student)
        except Exception as err:
            detail += f"\nzeros could not be recorded either: {type(err).__name__}: {err}"
        return Outcome(job.assignment, job.student, "failed", 0.0, job.notes, [], detail)

    def fallback(self, slot: int, job: Job, env: dict, detail: str) -> Outcome:
        """Grade the unanswered release with a note saying why; zeros in the gradebook if even that fails."""
        gradelog.append(self.log_of(job), {"kind": "grading-failed", "detail": detail[-800:]})
        last = detail.strip().splitlines()[-1] if detail.strip() else "no detail"
        staged = self.grading / "staged" / f"w{slot}-fallback"
        shutil.rmtree(staged, ignore_errors=True)
        stage(self.course, job, staged, force_release=f"grading it failed ({last})")
        env = {**env, ENV["notebook_budget"]: str(min(self.budget, 120))}
        rc, out = self.nbgrader(job.assignment, staged, env, max(self.per_notebook, 300), job.student)
        shutil.rmtree(staged, ignore_errors=True)
        if self.graded(job):
            return self.outcome(job, "fallback", detail)
        zero_grades(self.course, job.assignment, job.student)
        return self.outcome(job, "failed", detail + "\nfallback grading failed too:\n" + nbgrader_errors(out))

    def outcome(self, job: Job, status: str, detail: str) -> Outcome:
        records = gradelog.read(self.log_of(job))
        times = [r["time"] for r in records if "time" in r]
        seconds = (max(times) - min(times)) if len(times) > 1 else 0.0
        events = [r for r in records if r.get("kind") in EVENT_KINDS]
        notes = job.notes + ([job.problem] if job.problem else [])
        return Outcome(job.assignment, job.student, status, seconds, notes, events, detail)


def _why_not_graded(log: Path, out: str) -> str:
    """What stopped a notebook, for the note: the kernel's refusal if it refused, else nbgrader's error."""
    for record in gradelog.read(log):
        if record.get("kind") == "refused" and record.get("from") == "kernel":
            return ("the grading kernel refused to start: these were loaded from the submission's folder before "
                    f"any cell ran: {record.get('modules')}")
    return nbgrader_errors(out)




# --------------------------------------------------------------------------- the batch


def log_file(course: Course, assignment: str, student: str) -> Path:
    """The grading log of one (assignment, student) in ``course`` (``autograder/gradelog.py``)."""
    return course.dir("autograded") / GRADING_DIR / "logs" / assignment / f"{student}.jsonl"


def chunk_size(submissions: int, workers: int) -> int:
    """How many notebooks one nbgrader process grades. Its start-up (nbgrader, the checks, torch) costs a few
    CPU seconds: share it among up to 8, but leave each worker at least two chunks, to stay balanced at the end."""
    return max(1, min(8, submissions // (2 * max(1, workers))))


def default_jobs() -> int:
    return max(1, os.cpu_count() or 1)


def submissions(course: Course, assignments: list, students: list | None = None) -> list:
    jobs = []
    for assignment in assignments:
        for student in students or course.students():
            if (course.dir("submitted") / student / assignment).is_dir():
                jobs.append(Job(assignment, student))
    return jobs


def autograde(course: Course, assignments: list, students: list | None = None, jobs: int | None = None,
              say=print) -> BatchResult:
    """Grade every submitted (assignment, student); see the module docstring."""
    start = time.monotonic()
    todo = submissions(course, assignments, students)
    mode, why = sandbox.resolve_mode()
    say(sandbox.describe(mode, why))
    if not todo:
        return BatchResult([], mode, 0.0)
    grading = course.dir("autograded") / GRADING_DIR
    for d in ("staged", "logs", "jupyter"):
        (grading / d).mkdir(parents=True, exist_ok=True)
    sandbox.write_kernelspec(grading / "jupyter")
    for assignment in {j.assignment for j in todo}:
        if not course.notebook("notebooks", assignment).exists():
            course.nbgrader("generate_assignment", assignment, "--force")
    prepare_gradebook(course, todo)
    n = max(1, min(jobs or default_jobs(), len(todo)))
    config = load_settings()
    runner = Runner(course, todo, n, mode, config.cell_timeout, config.notebook_budget, grading, say)
    say(f"grading {len(todo)} submission(s) of {', '.join(sorted({j.assignment for j in todo}))} with "
        f"{n} job(s) at a time, {runner.threads} thread(s) per kernel")
    threads = [threading.Thread(target=runner.worker, args=(slot,)) for slot in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return conclude(course, todo, runner.outcomes, mode, start, say)


def conclude(course: Course, todo: list, outcomes: list, mode: str, start: float, say=print) -> BatchResult:
    """The batch's result, local or clustered: outcomes in order, the submissions left without one named, the
    grading log's report written, the students whose code tried something listed."""
    outcomes = sorted(outcomes, key=lambda o: (o.assignment, o.student))
    done = {(o.assignment, o.student) for o in outcomes}
    missing = sorted({(j.assignment, j.student) for j in todo} - done)
    result = BatchResult(outcomes, mode, time.monotonic() - start, missing)
    if missing:
        say(f"NO OUTCOME for {len(missing)} submission(s): " + ", ".join(f"{a} / {s}" for a, s in missing))
    grading = course.dir("autograded") / GRADING_DIR
    write_report(grading / "grading-log.txt", result)
    hostile = [o for o in outcomes if any(e.get("kind") in HOSTILE_KINDS for e in o.events)]
    if hostile:
        say(f"attempts on the grader or the sandbox by: {', '.join(sorted({o.student for o in hostile}))} "
            f"(details: {grading / 'grading-log.txt'})")
    return result


def summary_line(o: Outcome) -> str:
    flags = sorted({e.get("kind") for e in o.events if e.get("kind") in HOSTILE_KINDS})
    extra = f"  [{', '.join(flags)}]" if flags else ""
    skipped = sum(1 for e in o.events if e.get("kind") == "cell-skipped")
    extra += f"  [{skipped} cell(s) skipped]" if skipped else ""
    note = f"  ({o.notes[-1]})" if o.notes and o.status != "graded" else ""
    return f"  {o.assignment} / {o.student}: {o.status} in {o.seconds:.1f} s{extra}{note}"


def write_report(path: Path, result: BatchResult) -> None:
    lines = [f"== grading run {time.strftime('%Y-%m-%d %H:%M:%S')} ({result.mode}, {result.seconds:.1f} s) =="]
    for o in result.outcomes:
        lines.append(summary_line(o).strip())
        for note in o.notes:
            lines.append(f"    note: {note}")
        for e in o.events:
            if e.get("kind") == "exit" and (e.get("requested") or str(e.get("status")) in ("0", "None")):
                continue
            lines.append(f"    {gradelog.describe(e)}")
        if o.detail:
            lines += [f"    | {ln}" for ln in o.detail.splitlines()[-8:]]
    with open(path, "a") as fh:
        fh.write("\n".join(lines) + "\n")


def grade(course: Course, assignment: str, student: str = "", jobs: int | None = None) -> subprocess.CompletedProcess:
    """Grade one assignment (one student, or all) like ``make autograde``, ``jobs`` at a time (default: GRADING_JOBS,
    else one per core). The CompletedProcess's stdout is the batch's report."""
    lines: list[str] = []
    result = autograde(course, [assignment], [student] if student else None, jobs=jobs or load_settings().jobs,
                       say=lines.append)
    failed = "\n".join(o.detail for o in result.outcomes if o.status == "failed")
    return subprocess.CompletedProcess(["autograde", assignment, student], result.returncode, "\n".join(lines), failed)
