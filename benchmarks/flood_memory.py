"""The grader's memory while a kernel floods it: the peak resident memory of nbgrader's processes, against the bound.

    .venv/bin/python benchmarks/flood_memory.py --out bench-results      (what `make bench` runs)

Grades notebook 1 through the batch (``python -m autograder autograde``, one job), each submission in a batch
of its own: the planted bug untouched (the control), then three floods of a gigabyte or more, each in a cell
the student added after the last grading cell:

many messages       40 prints of 25 MB (1 GB), each flushed: each is cut or dropped as it arrives
one message         one print of 1 GB, over the largest message part the grader takes: refused at its header
one message, parts  one message of 80 parts of 25 MB (2 GB), which ZMQ would receive whole: the grader's watch
                    stops the kernel once its process has grown by ResilientExecute.memory_margin_mb

While each is graded, /proc is read every 20 ms for the peak resident memory (VmHWM) of every process under
this one: the grader's processes (nbgrader's and the kernel launcher's) are summed, nbgrader's is also shown
alone, and the sandboxed kernel under the launcher, which has its own memory limit, is reported apart. The
bound: the control's peak plus memory_margin_mb plus 256 MB (what arrives between two looks of the watch, and
a message part in flight). Also reported: each graded notebook's size and its
feedback page's, and the score (a flood must score what the control scores). The report goes to
OUT/flood_memory.txt (and .json). Nothing in the test suite depends on it.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere without installing

from autograder.demo import PLANTED  # noqa: E402
from autograder.host import batch, report  # noqa: E402
from autograder.host.course import copy_course  # noqa: E402
from autograder.host.execute import ResilientExecute  # noqa: E402
from autograder.host.submissions import fill, nbgrader_meta, read, reference_answers, submit  # noqa: E402

A = "01_lstm_cell"
AFTER = "load_from_torch_stripes"  # the last grading cell of notebook 1
FLOODS = {
    "many_messages": "for _ in range(40):\n    print('x' * 25_000_000, flush=True)\n",
    "one_message": "print('h' * 1_000_000_000)\n",
    "one_message_in_parts": (
        "kernel = get_ipython().kernel\n"
        "kernel.session.send(kernel.iopub_socket, 'display_data', {'data': {}, 'metadata': {}},\n"
        "                    parent=kernel.get_parent(), buffers=[b'p' * 25_000_000] * 80)\n"),
}
SLACK_MB = 256


def _processes() -> dict:
    """pid -> (parent pid, peak resident bytes so far, command line) of every process."""
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status") as fh:
                status = dict(line.split(":", 1) for line in fh.read().splitlines() if ":" in line)
            with open(f"/proc/{entry.name}/cmdline", "rb") as fh:
                command = fh.read().replace(b"\0", b" ").decode(errors="replace")
            peak = int(status.get("VmHWM", "0 kB").split()[0]) * 1024
            found[int(entry.name)] = (int(status["PPid"]), peak, command)
        except (OSError, ValueError, KeyError, IndexError):
            continue
    return found


class Sampler:
    """The peak resident memory (VmHWM) of each process under this one, kept as the processes come and go: the
    grader's summed (``grader``), nbgrader's alone, the sandboxed kernel's (under the launcher) summed."""

    def __init__(self, interval: float = 0.02):
        self.interval = interval
        self.seen: dict[int, tuple[str, int]] = {}  # pid -> (grader | nbgrader | kernel, its peak)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join()

    @property
    def peaks(self) -> dict:
        got = {"grader": 0, "nbgrader": 0, "kernel": 0}
        for role, peak in self.seen.values():
            got["kernel" if role == "kernel" else "grader"] += peak
            got["nbgrader"] += peak if role == "nbgrader" else 0
        return got

    def _run(self):
        while not self._done.is_set():
            procs = _processes()
            children: dict[int, list[int]] = {}
            for pid, (ppid, _peak, _cmd) in procs.items():
                children.setdefault(ppid, []).append(pid)
            stack = [(pid, False) for pid in children.get(os.getpid(), [])]
            while stack:
                pid, in_kernel = stack.pop()
                _ppid, peak, command = procs[pid]
                before, top = self.seen.get(pid, ("grader", 0))  # an exiting process has no command line left
                role = "kernel" if in_kernel else "nbgrader" if "nbgrader" in command else before
                self.seen[pid] = (role, max(peak, top))
                launcher = "autograder.host.sandbox" in command
                stack += [(child, in_kernel or launcher) for child in children.get(pid, [])]
            time.sleep(self.interval)


def submission(course, code: str = ""):
    answers = reference_answers(read(course.notebook("source", A)))
    nb = fill(read(course.notebook("notebooks", A)), PLANTED[A].apply(answers))
    if code:
        import nbformat

        at = next(k for k, c in enumerate(nb.cells) if nbgrader_meta(c).get("grade_id") == AFTER)
        nb.cells.insert(at + 1, nbformat.v4.new_code_cell(code))
    return nb


def grade_one(course, student: str, code: str) -> dict:
    submit(course, student, A, submission(course, code))
    start = time.perf_counter()
    with Sampler() as sampler:
        result = batch.autograde(course, [A], [student], jobs=1, say=lambda line: None)
    seconds = time.perf_counter() - start
    scores = {ex: got[0] for (who, _a, ex), got in report.by_exercise(report.scores(course, [student])).items()
              if who == student}
    graded = course.notebook("autograded", A, student)
    outcome = result.outcomes[0] if result.outcomes else None
    skipped = [e.get("detail", "") for e in (outcome.events if outcome else []) if e.get("kind") == "cell-skipped"]
    return {"seconds": round(seconds, 1), "status": outcome.status if outcome else "none",
            "cell_skipped": skipped[0][:70] if skipped else "",
            "peak_grader_mb": sampler.peaks["grader"] >> 20, "peak_nbgrader_mb": sampler.peaks["nbgrader"] >> 20,
            "peak_kernel_mb": sampler.peaks["kernel"] >> 20, "scores": scores,
            "graded_notebook_bytes": graded.stat().st_size if graded.exists() else None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench-results")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    course = copy_course(Path(tempfile.mkdtemp(prefix="lstm-bench-flood-")))
    try:
        course.nbgrader("generate_assignment", A, "--force")
        rows = {"control": grade_one(course, "control", "")}
        print(f"control: {rows['control']}", flush=True)
        for name, code in FLOODS.items():
            rows[name] = grade_one(course, name, code)
            print(f"{name}: {rows[name]}", flush=True)
        written, said = course.feedback(A)
        for name, row in rows.items():
            page = course.dir("feedback") / name / A / f"{A}.html"
            row["feedback_bytes"] = page.stat().st_size if page.exists() else None
    finally:
        shutil.rmtree(course.root, ignore_errors=True)
    margin = ResilientExecute.memory_margin_mb.default_value
    bound = rows["control"]["peak_grader_mb"] + margin + SLACK_MB
    same = all(row["scores"] == rows["control"]["scores"] for row in rows.values())
    within = all(row["peak_grader_mb"] <= bound for row in rows.values())
    lines = [f"the grader's memory under a flood (notebook 1, one job, {os.cpu_count()} CPUs); bound: the control's "
             f"peak + {margin} MB (memory_margin_mb) + {SLACK_MB} MB = {bound} MB",
             f"  {'submission':<22} {'grader MB':>9} {'nbgrader MB':>11} {'kernel MB':>9} {'notebook':>10} "
             f"{'feedback':>10} {'seconds':>8}  status"]
    for name, row in rows.items():
        lines.append(f"  {name:<22} {row['peak_grader_mb']:>9} {row['peak_nbgrader_mb']:>11} "
                     f"{row['peak_kernel_mb']:>9} {row['graded_notebook_bytes'] or 0:>10} "
                     f"{row['feedback_bytes'] or 0:>10} {row['seconds']:>8}  {row['status']}"
                     f"{'; cell skipped: ' + row['cell_skipped'] if row['cell_skipped'] else ''}")
    lines.append(f"  every peak within the bound: {within}; every flood scores what the control scores: {same}; "
                 f"feedback written: {written}{'' if written else ' (' + '; '.join(said) + ')'}")
    text = "\n".join(lines)
    print(text)
    (out / "flood_memory.txt").write_text(text + "\n")
    (out / "flood_memory.json").write_text(json.dumps({"bound_mb": bound, "margin_mb": margin, "rows": rows,
                                                       "within_bound": within, "same_scores": same}, indent=2) + "\n")
    return 0 if within and same and written else 1


if __name__ == "__main__":
    sys.exit(main())
