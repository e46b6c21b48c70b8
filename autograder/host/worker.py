"""What a Dask worker runs for a clustered batch (``autograder/host/cluster.py``): plain data in, plain data out.

``grade_task`` grades a few submissions of one assignment, already staged by the coordinator, in a private
course of its own (a temporary folder with the release, a copy of a gradebook that knows the assignment,
its own ``autograded/`` and grading logs), with the same ``Runner`` as a local batch: the same sandboxed
kernels, wall-clock limits, retries and fallback. It returns, for each submission, the per-cell scores and
comments, the graded folder's files, the grading log's records and the status. It writes nothing that
outlives the task: only the coordinator writes the class's gradebook, ``autograded/`` and logs.

``fingerprint`` is what the coordinator's pre-flight compares across workers (``Client.run``).
"""

import atexit
import hashlib
import os
import platform
import shutil
import tempfile
import threading
import time
from pathlib import Path

from .. import gradelog
from ..settings import load as load_settings
from . import sandbox
from .batch import GRADING_DIR, Runner
from .course import Course
from .gradebook import prepare_gradebook
from .staging import Job

PACKAGE = Path(__file__).resolve().parents[1]  # autograder/
SLOTS = 16  # kernels of one worker process get uids of their own, slot by slot

_lock = threading.Lock()
_templates: dict = {}  # (course root, assignment, source hash) -> folder with the generated release and gradebook


@atexit.register
def _drop_templates() -> None:
    """A worker that closes (not one killed outright) leaves no template behind in /tmp."""
    for base in _templates.values():
        shutil.rmtree(base, ignore_errors=True)
_slots: set = set()


def worker_course() -> Course:
    """The course this worker grades with: COURSE_ROOT, else the default course (``course.default_root``)."""
    root = load_settings().course_root
    return Course(root=Path(root).resolve()) if root else Course()


def tree_hash(path: Path, pattern: str = "*") -> str:
    """sha256 over the relative names and bytes of the regular files under ``path`` ("" if it is missing)."""
    if not path.is_dir():
        return ""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob(pattern) if p.is_file() and "__pycache__" not in p.parts):
        digest.update(str(file.relative_to(path)).encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def fingerprint(assignments: list, device: str = "cpu") -> dict:
    """What must agree between the coordinator and every worker for a score to mean the same everywhere."""
    from importlib.metadata import version  # torch itself is imported only to look for CUDA

    course = worker_course()
    found = {
        "python": platform.python_version(),
        "torch": version("torch"),
        "nbgrader": version("nbgrader"),
        "grader code (autograder/*.py)": tree_hash(PACKAGE, "*.py"),
        "sandbox": sandbox.resolve_mode()[0],
    }
    for assignment in assignments:
        found[f"release of {assignment}"] = tree_hash(course.dir("notebooks") / assignment)
        found[f"source of {assignment}"] = tree_hash(course.dir("source") / assignment)
    if device.startswith("cuda"):
        import torch

        found["CUDA"] = f"{torch.cuda.device_count()} device(s)" if torch.cuda.is_available() else "no CUDA device"
    return found


def _template(course: Course, assignment: str) -> Path:
    """The assignment generated once per worker process into a gradebook of its own (nbgrader's autograde
    needs the assignment's cells in the gradebook it writes); each task grades into a copy of it."""
    key = (str(course.root), assignment, tree_hash(course.dir("source") / assignment))
    with _lock:
        base = _templates.get(key)
        if base is None or not (base / "gradebook.db").exists():
            base = Path(tempfile.mkdtemp(prefix=f"lstm-template-{assignment}-"))
            shutil.copytree(course.dir("source") / assignment, base / "source" / assignment)
            Course(root=base, db_url=f"sqlite:///{base / 'gradebook.db'}").nbgrader(
                "generate_assignment", assignment, "--force", timeout=600)
            _templates[key] = base
        return base


def safe_relative(name: str) -> Path:
    """A file name from a task or a result as a relative path that stays inside its folder."""
    rel = Path(name)
    if rel.is_absolute() or not rel.parts or any(part in ("", ".", "..") for part in rel.parts):
        raise ValueError(f"not a plain relative file name: {name!r}")
    return rel


def read_folder(folder: Path) -> dict:
    """{relative name: bytes} of the regular files under ``folder`` (a folder the grader wrote itself)."""
    files = {}
    for path in sorted(folder.rglob("*")) if folder.is_dir() else []:
        if path.is_file() and not path.is_symlink():
            files[str(path.relative_to(folder))] = path.read_bytes()
    return files


def write_folder(folder: Path, files: dict) -> None:
    for name, data in files.items():
        dest = folder / safe_relative(name)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)


def scores(course: Course, assignment: str, student: str) -> dict | None:
    """Per-cell scores and comments of one submission in a gradebook, as plain data (None: no submission)."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(course.db) as gb:
        try:
            submission = gb.find_submission(assignment, student)
        except MissingEntry:
            return None
        return {
            "timestamp": submission.timestamp.isoformat() if submission.timestamp else None,
            "late_penalties": {nb.name: nb.late_submission_penalty for nb in submission.notebooks},
            "grades": [{"notebook": nb.name, "cell": g.name, "auto_score": g.auto_score,
                        "needs_manual_grade": bool(g.needs_manual_grade)}
                       for nb in submission.notebooks for g in nb.grades],
            "comments": [{"notebook": nb.name, "cell": c.name, "auto_comment": c.auto_comment}
                         for nb in submission.notebooks for c in nb.comments],
        }


def set_dates(course: Course, assignment: str, duedate: str | None, extensions: dict) -> None:
    """The class gradebook's due date and the students' extensions, in a private one: late penalties are
    computed on the worker as they would be by a local batch."""
    from datetime import datetime, timedelta

    from nbgrader.api import Gradebook

    if not duedate and not extensions:
        return
    with Gradebook(course.db) as gb:
        if duedate:
            gb.update_or_create_assignment(assignment, duedate=datetime.fromisoformat(duedate))
        for student, seconds in extensions.items():
            gb.update_or_create_submission(assignment, student, extension=timedelta(seconds=seconds))


def _take_slot() -> int:
    with _lock:
        slot = next(s for s in range(SLOTS) if s not in _slots)
        _slots.add(slot)
        return slot


def _worker():
    try:
        from distributed import get_worker

        return get_worker()
    except (ImportError, ValueError):  # called outside a worker
        return None


def _address() -> str:
    worker = _worker()
    return worker.address if worker else f"{platform.node()}:{os.getpid()}"


def _nthreads() -> int:
    worker = _worker()
    return max(1, worker.state.nthreads) if worker else 1


def grade_task(task: dict) -> list:
    """Grade ``task["submissions"]`` (staged files, notes) of ``task["assignment"]``; one result each."""
    start = time.monotonic()
    course = worker_course()
    assignment = task["assignment"]
    template = _template(course, assignment)
    root = Path(tempfile.mkdtemp(prefix="lstm-task-"))
    slot = _take_slot()
    try:
        for name in ("source", "notebooks"):
            shutil.copytree(template / name / assignment, root / name / assignment)
        shutil.copy(template / "gradebook.db", root / "gradebook.db")
        private = Course(root=root, db_url=f"sqlite:///{root / 'gradebook.db'}")
        grading = private.dir("autograded") / GRADING_DIR
        for d in ("staged", "logs", "jupyter"):
            (grading / d).mkdir(parents=True, exist_ok=True)
        sandbox.write_kernelspec(grading / "jupyter")
        jobs = []
        for item in task["submissions"]:
            folder = root / "incoming" / str(safe_relative(item["student"])) / assignment
            folder.mkdir(parents=True)
            write_folder(folder, item["files"])
            jobs.append(Job(assignment, item["student"], notes=list(item["notes"]), problem=item["problem"],
                            prestaged=str(folder)))
        prepare_gradebook(private, jobs)
        set_dates(private, assignment, task.get("duedate"), task.get("extensions", {}))
        mode, why = sandbox.resolve_mode()
        said: list = []
        runner = Runner(private, jobs, 1, mode, task["cell_timeout"], task["notebook_budget"], grading,
                        said.append, extra_env=task["env"], per_notebook=task["per_notebook"])
        # LSTM_KERNEL_THREADS where the worker's machine is shared, else its cores shared by its threads
        runner.threads = load_settings().threads or max(1, (os.cpu_count() or 1) // _nthreads())
        runner.chunk = len(jobs)
        with runner.warm():
            runner.worker(slot)  # two tasks at once on one worker: their own staging folders and kernel uids
        address = _address()
        results = []
        for outcome in runner.outcomes:
            job = next(j for j in jobs if j.student == outcome.student)
            results.append({
                "assignment": assignment, "student": job.student, "status": outcome.status,
                "detail": outcome.detail, "notes": job.notes, "problem": job.problem,
                "seconds": outcome.seconds, "worker": address, "sandbox": mode,
                "task_seconds": time.monotonic() - start,
                "scores": scores(private, assignment, job.student),
                "files": read_folder(private.dir("autograded") / job.student / assignment),
                "log": gradelog.read(runner.log_of(job)),
                "said": [line for line in said if f"/ {job.student}:" in line],
            })
        return results
    finally:
        with _lock:
            _slots.discard(slot)
        shutil.rmtree(root, ignore_errors=True)
