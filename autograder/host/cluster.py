"""Grade a class on a Dask cluster (``CLUSTER=tcp://host:8786`` or a scheduler file): one coordinator, many workers.

1. **Pre-flight**: every worker reports its ``worker.fingerprint`` (``Client.run``): the hashes of the
   release, the source and the grader's code, the torch, nbgrader and Python versions, its sandbox, its CUDA
   devices when ``DEVICE=cuda``. A worker that differs from the coordinator is refused, with its address and
   what differs, and gets no task; with no worker left, the batch stops before grading (the gradebook is
   untouched).
2. **Tasks**: the coordinator stages every submission itself (``staging.stage_safely``: the only reader of
   ``submitted/``) and sends the staged files as data, a few submissions of one assignment a task, to the
   accepted workers (``DEVICE=cuda``, or ``CLUSTER_RESOURCES``: only to workers started with that resource,
   ``dask worker --resources GPU=1``). A worker grades in a private course (``autograder/host/worker.py``)
   and returns plain data.
3. **One writer**: each result goes into the gradebook, ``autograded/`` and the log here
   (``autograder/host/record.py``), as it arrives.
4. **Failures**: a worker lost mid-task has its task retried elsewhere by the scheduler
   (``distributed.scheduler.allowed-failures`` times); a task that fails for good, or runs past its wall-clock
   limit (``CLUSTER_TASK_TIMEOUT``; it is then cancelled), has its submissions graded as the unanswered release
   with a note saying why, and if even that fails, zeros. Every student gets a row; such submissions count
   as failed in the exit code, so that the instructor grades them again.
"""

import contextlib
import shutil
import time
import uuid
from collections import defaultdict
from pathlib import Path

from .. import gradelog
from ..settings import ENV
from ..settings import load as load_settings
from . import batch, gradebook, record, sandbox, staging
from .batch import BatchResult, Outcome
from .course import Course
from .staging import Job
from .worker import fingerprint, grade_task, read_folder

POLL = 2.0  # seconds between looks at what the workers are running
# settings a task carries
PASSED_ON = ("device", "grader_seed", "memory_mb", "cpu_seconds", "procs", "tmp_mb", "scratch_mb")


def connect(address: str, timeout: float = 30):
    from distributed import Client

    if address.endswith(".json") or Path(address).is_file():
        return Client(scheduler_file=address, timeout=timeout)
    return Client(address, timeout=timeout)


def parse_resources(text: str) -> dict:
    """``GPU=1,MEM=2e9`` -> {"GPU": 1.0, "MEM": 2e9}."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, amount = part.partition("=")
        out[name.strip()] = float(amount or 1)
    return out


def task_resources(settings) -> dict:
    if settings.cluster_resources:
        return parse_resources(settings.cluster_resources)
    return {"GPU": 1.0} if settings.device.startswith("cuda") else {}


def expected_fingerprint(assignments: list, settings) -> dict:
    mine = fingerprint(assignments, settings.device)
    mine["sandbox"] = "none" if settings.sandbox == "none" else "bwrap"
    return mine


def differences(expected: dict, found: dict) -> list:
    out = []
    for key, want in expected.items():
        got = found.get(key, "missing")
        if key == "CUDA":
            if not str(got).split()[0].isdigit() or got.startswith("0 "):
                out.append(f"CUDA: {got}")
        elif got != want:
            out.append(f"{key}: {got or 'missing'} (the coordinator has {want or 'none'})")
    return out


def preflight(client, assignments: list, settings) -> tuple[list, list]:
    """(accepted worker addresses, one line per refused worker naming it and what differs)."""
    expected = expected_fingerprint(assignments, settings)
    found = client.run(fingerprint, assignments, settings.device, on_error="return")
    accepted, refused = [], []
    for address, report in sorted(found.items()):
        if isinstance(report, BaseException):
            refused.append(f"worker {address} refused: its pre-flight failed ({type(report).__name__}: {report})")
            continue
        diff = differences(expected, report)
        if diff:
            refused.append(f"worker {address} refused: " + "; ".join(diff))
        else:
            accepted.append(address)
    needs = task_resources(settings)
    if needs:
        info = client.scheduler_info(n_workers=-1)["workers"]
        able = [a for a in accepted if all(info.get(a, {}).get("resources", {}).get(k, 0) >= v
                                           for k, v in needs.items())]
        if not able:
            asked = settings.cluster_resources or f"DEVICE={settings.device}"
            flag = ",".join(f"{k}={v:g}" for k, v in needs.items())
            refused.append(f"no accepted worker has the resources the tasks need ({asked}: {flag}); start one "
                           f"with `dask worker ... --resources {flag}`")
            accepted = []
    return accepted, refused


def _executing(dask_worker) -> list:
    return [str(ts.key) for ts in dask_worker.state.executing]


class Coordinator:
    """Stages, submits, watches and records; the only writer of the gradebook, ``autograded/`` and the log."""

    def __init__(self, course: Course, client, workers: list, settings, say):
        self.course, self.client, self.workers, self.say = course, client, workers, say
        self.grading = course.dir("autograded") / batch.GRADING_DIR
        self.log_root = self.grading / "logs"
        self.per_notebook = settings.grading_timeout or settings.notebook_budget + 140
        self.settings = settings
        self.resources = task_resources(settings) or None
        self.env = {ENV[f]: str(getattr(settings, f)) for f in PASSED_ON if getattr(settings, f) not in (None, "")}
        self.outcomes: list = []
        self.before: dict = {}  # student key -> the coordinator's own log records (staging)
        self.seen_on: dict = defaultdict(list)  # task key -> workers seen running it, in order
        self.started: dict = {}  # task key -> when a worker was first seen running it

    def limit(self, n: int, fallback: bool = False) -> float:
        """Seconds a task of ``n`` submissions may run: CLUSTER_TASK_TIMEOUT, else its nbgrader processes'
        limits, their retries, the worker's own fallback and its first generation of the assignment. A task
        grading the unanswered release (after a first task was lost) always gets the second."""
        default = self.per_notebook * (n + batch.MAX_TRIES) + max(self.per_notebook, 300) + 300
        return default if fallback else (self.settings.task_timeout or default)

    def item(self, job: Job, force_release: str = "") -> dict:
        """A submission staged here, as the data a task carries."""
        staged_root = self.grading / "staged" / "cluster"
        log = self.log_root / job.assignment / f"{job.student}.jsonl"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("")
        if force_release:
            staging.stage(self.course, job, staged_root, force_release=force_release)
        else:
            staging.stage_safely(self.course, job, staged_root, log)
        folder = staged_root / job.student / job.assignment
        files = read_folder(folder)
        shutil.rmtree(folder, ignore_errors=True)
        self.before[(job.assignment, job.student)] = gradelog.read(log)
        return {"student": job.student, "files": files, "notes": job.notes, "problem": job.problem}

    def submit(self, assignment: str, items: list, fallback: bool = False):
        task = {"assignment": assignment, "submissions": items, "env": self.env, **self.dates(assignment, items),
                "cell_timeout": self.settings.cell_timeout, "notebook_budget": self.settings.notebook_budget,
                "per_notebook": self.per_notebook}
        key = f"lstm-{'fallback' if fallback else 'grade'}-{assignment}-{uuid.uuid4().hex[:12]}"
        return self.client.submit(grade_task, task, key=key, pure=False, workers=self.workers,
                                  allow_other_workers=False, resources=self.resources)

    def dates(self, assignment: str, items: list) -> dict:
        """The assignment's due date and these students' extensions, from the class gradebook."""
        from nbgrader.api import Gradebook, MissingEntry

        out = {"duedate": None, "extensions": {}}
        with Gradebook(gradebook.worker_db_url(self.course.db)) as gb:
            due = gb.find_assignment(assignment).duedate
            out["duedate"] = due.isoformat() if due else None
            for item in items:
                try:
                    extension = gb.find_submission(assignment, item["student"]).extension
                except MissingEntry:
                    continue
                if extension:
                    out["extensions"][item["student"]] = extension.total_seconds()
        return out

    def run(self, todo: list, chunk: int) -> None:
        pending = {}  # future -> (assignment, jobs, is it a fallback)
        by_assignment = defaultdict(list)
        for job in todo:
            by_assignment[job.assignment].append(job)
        for assignment, jobs in sorted(by_assignment.items()):
            for i in range(0, len(jobs), chunk):
                part = jobs[i:i + chunk]
                pending[self.submit(assignment, [self.item(j) for j in part])] = (assignment, part, False)
        from distributed import wait

        while pending:
            with contextlib.suppress(TimeoutError):  # distributed.wait raises when nothing finished in time
                wait(list(pending), timeout=POLL, return_when="FIRST_COMPLETED")
            for future in [f for f in pending if f.done()]:
                assignment, jobs, fallback = pending.pop(future)
                self.finish(future, assignment, jobs, fallback, pending)
            self.watch(pending)

    def watch(self, pending: dict) -> None:
        """Note which worker runs what; cancel a task past its wall-clock limit (graded as the release)."""
        try:
            running = self.client.run(_executing, on_error="return")
        except Exception:
            running = {}
        now = time.monotonic()
        for address, keys in running.items():
            for key in keys if isinstance(keys, list) else []:
                if not self.seen_on[key] or self.seen_on[key][-1] != address:  # first seen, or retried elsewhere
                    self.seen_on[key].append(address)
                    self.started[key] = now
        for future, (assignment, jobs, fallback) in list(pending.items()):
            since = self.started.get(future.key)
            limit = self.limit(len(jobs), fallback)
            if since is not None and now - since > limit:
                pending.pop(future)
                future.cancel()
                where = self.seen_on[future.key][-1] if self.seen_on[future.key] else "a worker"
                self.lost(assignment, jobs, fallback, f"it ran past {limit:.0f} s on {where} and "
                          "was cancelled", pending)

    def finish(self, future, assignment: str, jobs: list, fallback: bool, pending: dict) -> None:
        workers = self.seen_on.get(future.key, [])
        if future.status == "finished":
            note = []
            if len(workers) > 1:
                note = [f"the worker grading it ({workers[0]}) was lost; graded again on {workers[-1]}"]
            for result in future.result():
                key = (result["assignment"], result["student"])
                if fallback:
                    result["status"] = "lost"
                try:
                    outcome = record.write(self.course, result, self.log_root, self.before.get(key, []), note)
                except Exception as err:  # one result that cannot be written costs no one else a row
                    outcome = self.zeros(*key, f"its result could not be recorded: {type(err).__name__}: {err}")
                self.report(outcome)
            return
        error = future.exception()
        from distributed.scheduler import KilledWorker

        if isinstance(error, KilledWorker):
            why = f"the workers grading it were lost ({', '.join(workers) or 'no address seen'})"
        else:
            why = f"its task failed on {workers[-1] if workers else 'a worker'} ({type(error).__name__}: {error})"
        self.lost(assignment, jobs, fallback, why, pending)

    def lost(self, assignment: str, jobs: list, fallback: bool, why: str, pending: dict) -> None:
        """Grade these again as the unanswered release, with a note; if that is what failed, zeros."""
        if fallback:
            for job in jobs:
                self.say(f"  {assignment} / {job.student}: grading the unanswered release failed too ({why}): zeros")
                self.report(self.zeros(assignment, job.student, why))
            return
        for job in jobs:
            self.say(f"  {assignment} / {job.student}: {why}; grading it as the unanswered release")
        items = [self.item(Job(assignment, job.student), force_release=f"grading it failed ({why})") for job in jobs]
        pending[self.submit(assignment, items, fallback=True)] = (assignment, jobs, True)

    def zeros(self, assignment: str, student: str, why: str) -> Outcome:
        """Last resort: zeros in the gradebook and a failed outcome."""
        try:
            gradebook.zero_grades(self.course, assignment, student)
        except Exception as err:
            why += f"\nzeros could not be recorded either: {type(err).__name__}: {err}"
        return Outcome(assignment, student, "failed", 0.0, [why.splitlines()[0]], [], why)

    def report(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)
        self.say(batch.summary_line(outcome))


def autograde(course: Course, assignments: list, students: list | None = None, address: str = "",
              say=print) -> BatchResult:
    """Grade every submitted (assignment, student) on the cluster at ``address``; see the module docstring."""
    start = time.monotonic()
    settings = load_settings()
    todo = batch.submissions(course, assignments, students)
    mode = "none" if settings.sandbox == "none" else "bwrap"
    if not todo:
        return BatchResult([], mode, 0.0)
    for d in ("staged", "logs"):
        (course.dir("autograded") / batch.GRADING_DIR / d).mkdir(parents=True, exist_ok=True)
    for assignment in {j.assignment for j in todo}:
        if not course.notebook("notebooks", assignment).exists():
            course.nbgrader("generate_assignment", assignment, "--force")
    client = connect(address or settings.cluster)
    try:
        workers, refused = preflight(client, sorted({j.assignment for j in todo}), settings)
        for line in refused:
            say(line)
        if not workers:
            say(f"no worker of {client.scheduler.address} can grade this class: nothing was graded")
            return BatchResult([], mode, time.monotonic() - start, sorted((j.assignment, j.student) for j in todo))
        say(sandbox.describe(mode, "LSTM_SANDBOX=none"))
        threads = sum(w["nthreads"] for a, w in client.scheduler_info(n_workers=-1)["workers"].items() if a in workers)
        chunk = batch.chunk_size(len(todo), threads)
        say(f"grading {len(todo)} submission(s) of {', '.join(sorted({j.assignment for j in todo}))} on "
            f"{len(workers)} worker(s) of {client.scheduler.address} ({threads} thread(s)), {chunk} a task")
        gradebook.prepare_gradebook(course, todo)
        coordinator = Coordinator(course, client, workers, settings, say)
        coordinator.run(todo, chunk)
    finally:
        client.close()
    return batch.conclude(course, todo, coordinator.outcomes, mode, start, say)
