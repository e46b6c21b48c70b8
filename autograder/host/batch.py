"""Grade every submission: parallel nbgrader processes, each notebook in its own sandboxed kernel.

For each (assignment, student):

1. **Pre-flight** (``autograder/host/staging.py``): read the submitted file without trusting it; a broken
   one becomes the release notebook with a note saying why, a real one is rebuilt in the release's order.
   The staged copy goes to ``autograded/.grading/staged``; ``submitted/`` is never touched.
2. **Grading**: ``nbgrader autograde ASSIGNMENT`` with ``--CourseDirectory.submitted_directory`` pointing
   at the staged copies of a few submissions (nbgrader's start-up costs seconds; a chunk shares it), the
   sandboxed kernel of ``autograder/host/sandbox.py``, its own socket directory, and a wall-clock limit per
   notebook. ``jobs`` such processes run at once (default: one per core); each kernel gets cores/jobs
   threads. A notebook counts as graded when ``autograder.host.execute.MarkGraded`` logged it, after nbgrader
   saved its grades.
3. **Fallback**: a notebook nbgrader could not finish (its process died or ran out of time) is graded
   again from the release notebook with a note saying what happened (zero points, feedback that
   explains); if even that fails, the gradebook gets zeros directly. The batch always finishes.
4. **Report**: what the grading log holds (``autograder/gradelog.py``: what the kernel reported of the
   submission's attempts, what the grader noticed, cells that killed the kernel) goes to
   ``autograded/.grading/grading-log.txt`` and to the console.

The gradebook is written only by the grader (the nbgrader processes, and ``autograder/host/gradebook.py`` for
students and last-resort zeros), never from inside a kernel, which cannot even see it.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import gradelog
from ..settings import ENV
from ..settings import load as load_settings
from . import sandbox
from .course import ROOT, Course, nbgrader_errors
from .gradebook import prepare_gradebook, worker_db_url, zero_grades
from .staging import Job, stage, stage_safely

GRADING_DIR = ".grading"  # under autograded/: staged copies, logs, the kernelspec
UID_BASE = 61000
MAX_TRIES = 2  # a notebook whose nbgrader process stopped before reaching it is tried again, then falls back
# nbgrader's command line, minus a 3-second import nobody here needs (jsonschema's IRI grammar, built at
# import time by rfc3987_syntax; nbformat only validates notebooks, which never contain IRIs).
# Collecting nothing while nbgrader and torch (the checks' oracles) load, then leaving them out of every later
# collection (gc.freeze), saves about a tenth of the process's CPU time.
NBGRADER_MAIN = ("import gc; gc.disable(); import sys; sys.modules['rfc3987_syntax'] = None; sys.argv[0] = 'nbgrader'; "
                 "from nbgrader.apps.nbgraderapp import main; import torch; gc.freeze(); gc.enable(); sys.exit(main())")
HOSTILE_KINDS = gradelog.ATTEMPTS
# the log records an outcome carries: attempts, and what happened to the grading itself
EVENT_KINDS = HOSTILE_KINDS | {"cell-skipped", "exit", "grading-failed", "gave-up", "staging-failed"}


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

    @contextlib.contextmanager
    def warm(self):
        """While in it, the kernels start from the batch's fork server (``sandbox.forkserver``), where there is one."""
        notebooks = [self.course.notebook("source", a) for a in sorted({j.assignment for j in self.pending})]
        with sandbox.forkserver(self.mode, self.env(0, ""), sandbox.warm_imports(notebooks)) as pointer:
            self.extra_env.update(pointer)
            try:
                yield
            finally:
                for name in pointer:
                    self.extra_env.pop(name, None)

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
    """How many notebooks one nbgrader process grades. Its start-up (nbgrader, the checks, torch) costs about
    as much CPU as grading a notebook: share it among up to 8, in a number of chunks that is a multiple of the
    workers, so that they finish together (4 notebooks, 2 workers: 2 chunks of 2; 42 notebooks: 6 chunks of 7)."""
    submissions, workers = max(1, submissions), max(1, workers)
    chunks = -(-submissions // 8)
    chunks = -(-chunks // workers) * workers
    return -(-submissions // chunks)


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
    with runner.warm():
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
