"""Grading throughput: seconds per notebook against the floor, the speed-up of 2 jobs over 1, and a Dask cluster.

    .venv/bin/python benchmarks/grading.py --out bench-results [--submissions 20]

First, each notebook's own cost, one job, heavy cells on their short schedule under nbgrader: one reference
submission of every assignment graded alone, then four in one batch (per submission: what grading a class of
it costs a core per student, nbgrader's start-up shared by the notebooks one process grades).
The floor is what no grader can beat: a fresh kernel that imports torch (the course's plain kernel, and
the sandboxed one the grader uses, which also loads the probe and its audit hook). Grading is
the whole of `python -m autograder autograde` on notebook 1 (pre-flight, nbgrader, the sandboxed kernel,
the gradebook), on a throwaway course with N submissions, with 1 and then 2 jobs at a time, and then on a
local Dask cluster of 2 one-thread workers (`make autograde CLUSTER=...`; the workers' one-time generation of
the assignment included); submissions per minute for each, and what a Dask task costs on its own (a task that
does nothing, submitted and awaited through the scheduler).
Results are printed and written to OUT/grading.json and OUT/grading.txt.
"""

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from autograder.demo import PLANTED  # noqa: E402
from autograder.host import batch, sandbox  # noqa: E402
from autograder.host.course import copy_course  # noqa: E402
from autograder.host.submissions import fill, read, reference_answers, reference_submission, submit  # noqa: E402

A = "01_lstm_cell"


async def _kernel_with_torch(kernel_name: str, ipc_dir: str | None) -> float:
    from jupyter_client.manager import AsyncKernelManager

    extra = {"transport": "ipc", "ip": os.path.join(ipc_dir, "k")} if ipc_dir else {}
    km = AsyncKernelManager(kernel_name=kernel_name, **extra)
    scratch = tempfile.mkdtemp(prefix="lstm-floor-")
    start = time.perf_counter()
    await km.start_kernel(cwd=scratch, extra_arguments=["--HistoryManager.hist_file=:memory:"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # the kernels' banners
    kc = km.client()
    kc.start_channels()
    try:
        await kc.wait_for_ready(timeout=120)
        msg_id = kc.execute("import torch")
        while True:
            msg = await kc.get_iopub_msg(timeout=120)
            if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "status" \
                    and msg["content"]["execution_state"] == "idle":
                break
        return time.perf_counter() - start
    finally:
        kc.stop_channels()
        await km.shutdown_kernel(now=True)
        shutil.rmtree(scratch, ignore_errors=True)
        if ipc_dir:
            shutil.rmtree(ipc_dir, ignore_errors=True)


def floor(kernel_name: str, sandboxed: bool, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        ipc = tempfile.mkdtemp(prefix="lstm-ipc-") if sandboxed else None
        times.append(asyncio.run(_kernel_with_torch(kernel_name, ipc)))
    return statistics.median(times)


def make_course(n: int):
    course = copy_course(Path(tempfile.mkdtemp(prefix="lstm-bench-")))
    course.nbgrader("generate_assignment", A, "--force")
    answers = reference_answers(read(course.notebook("source", A)))
    release = read(course.notebook("notebooks", A))
    kinds = [
        lambda: reference_submission(course, A),
        lambda: release,
        lambda: reference_submission(course, A, PLANTED[A]),
        lambda: fill(release, {**answers, "sigmoid": "def sigmoid(x):\n    return 1 / (1 + torch.exp(-x))\n"}),
    ]
    for k in range(n):
        submit(course, f"student{k:02d}", A, kinds[k % len(kinds)]())
    return course


def per_notebook(batch_of: int = 4) -> dict[str, tuple[float, float]]:
    """Seconds per reference submission of each assignment, one job: graded alone, and in a batch of
    ``batch_of``."""
    from autograder.registry import NOTEBOOKS

    course = copy_course(Path(tempfile.mkdtemp(prefix="lstm-bench-each-")))
    try:
        seconds = {}
        for assignment in NOTEBOOKS:
            course.nbgrader("generate_assignment", assignment, "--force")
            timed = []
            for students in (["reference"], [f"copy{k}" for k in range(batch_of)]):
                for student in students:
                    submit(course, student, assignment, reference_submission(course, assignment))
                start = time.perf_counter()
                result = batch.autograde(course, [assignment], students, jobs=1, say=lambda line: None)
                timed.append((time.perf_counter() - start) / len(students))
                if result.returncode != 0:
                    raise SystemExit(f"grading {assignment} failed (exit {result.returncode})")
            seconds[assignment] = tuple(timed)
            print(f"{assignment}: {timed[0]:.1f} s alone, {timed[1]:.1f} s per submission in a batch of {batch_of}",
                  flush=True)
        return seconds
    finally:
        shutil.rmtree(course.root, ignore_errors=True)


def _nothing():
    return None


def task_overhead(address: str, repeat: int = 30) -> float:
    """Median seconds of a task that does nothing, submitted and awaited one at a time."""
    from distributed import Client

    with Client(address, timeout=30) as client:
        client.submit(_nothing, pure=False).result()
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            client.submit(_nothing, pure=False).result()
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def grade(n: int, jobs: int, address: str = "") -> tuple[float, dict]:
    from autograder.host import cluster, report

    course = make_course(n)
    try:
        start = time.perf_counter()
        if address:
            outcome = cluster.autograde(course, [A], address=address, say=lambda line: None)
            result = subprocess.CompletedProcess([], outcome.returncode, "", "")
        else:
            result = batch.grade(course, A, jobs=jobs)
        seconds = time.perf_counter() - start
        if result.returncode != 0:
            raise SystemExit(f"grading failed:\n{result.stdout}\n{result.stderr}")
        totals = {}
        for r in report.scores(course):
            totals[r.student] = totals.get(r.student, 0.0) + r.score
        return seconds, totals
    finally:
        shutil.rmtree(course.root, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench-results")
    parser.add_argument("--submissions", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3, help="kernel starts for each floor")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    spec_root = Path(tempfile.mkdtemp(prefix="lstm-spec-"))
    sandbox.write_kernelspec(spec_root)
    os.environ["JUPYTER_PATH"] = os.pathsep.join(p for p in [str(spec_root), os.environ.get("JUPYTER_PATH")] if p)
    mode, why = sandbox.resolve_mode()
    print(sandbox.describe(mode, why), flush=True)

    plain = floor("lstm-course", False, args.repeat)
    boxed = floor(sandbox.KERNEL_NAME, True, args.repeat)
    print(f"floor: fresh kernel + import torch: {plain:.2f} s (plain kernel), {boxed:.2f} s (sandboxed, "
          "the probe loaded, its watch hook on)", flush=True)
    each = per_notebook()
    n = args.submissions
    one, scores_one = grade(n, 1)
    print(f"1 job : {n} notebooks in {one:.1f} s = {one / n:.2f} s per notebook", flush=True)
    two, scores_two = grade(n, 2)
    print(f"2 jobs: {n} notebooks in {two:.1f} s = {two / n:.2f} s per notebook", flush=True)
    from autograder.host import localcluster

    with localcluster.running(2) as local:
        dask_seconds, scores_dask = grade(n, 0, local.address)
        noop = task_overhead(local.address)
    print(f"Dask, 2 workers: {n} notebooks in {dask_seconds:.1f} s = {dask_seconds / n:.2f} s per notebook", flush=True)
    same = scores_one == scores_two == scores_dask
    results = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "sandbox": mode},
        "seconds_per_submission_by_notebook": {a: round(t[0], 2) for a, t in each.items()},
        "seconds_per_submission_in_a_batch_of_4_by_notebook": {a: round(t[1], 2) for a, t in each.items()},
        "submissions": n,
        "floor_seconds": {"plain_kernel_import_torch": round(plain, 3), "sandboxed_kernel_import_torch":
                          round(boxed, 3)},
        "jobs_1": {"seconds": round(one, 2), "seconds_per_notebook": round(one / n, 3),
                   "per_notebook_over_floor": round(one / n / plain, 2)},
        "jobs_2": {"seconds": round(two, 2), "seconds_per_notebook": round(two / n, 3),
                   "per_notebook_over_floor": round(two / n / plain, 2)},
        "dask_2_workers": {"seconds": round(dask_seconds, 2), "seconds_per_notebook": round(dask_seconds / n, 3)},
        "submissions_per_minute": {"jobs_1": round(60 * n / one, 2), "jobs_2": round(60 * n / two, 2),
                                   "dask_2_workers": round(60 * n / dask_seconds, 2)},
        "dask_noop_task_seconds": round(noop, 4),
        "dask_over_jobs_2_seconds_per_notebook": round((dask_seconds - two) / n, 3),
        "speedup_2_over_1": round(one / two, 2),
        "same_scores_1_and_2_jobs_and_dask": same,
    }
    text = "\n".join([
        "seconds to grade a submission of each notebook (1 job): alone, and in a batch of 4",
        *(f"  {a:<18} {t[0]:6.1f} s {t[1]:6.1f} s" for a, t in each.items()),
        f"grading benchmark ({n} submissions of {A}, {os.cpu_count()} CPUs, sandbox: {mode})",
        f"  floor (fresh kernel + import torch):  {plain:6.2f} s plain, {boxed:6.2f} s sandboxed",
        f"  1 job : {one / n:6.2f} s per notebook  ({one / n / plain:.1f}x the floor)",
        f"  2 jobs: {two / n:6.2f} s per notebook  ({two / n / plain:.1f}x the floor)",
        f"  speed-up of 2 jobs over 1: {one / two:.2f}x; same scores (1 job, 2 jobs, Dask): {same}",
        "  submissions per minute:",
        f"    local JOBS=1           {60 * n / one:6.1f}",
        f"    local JOBS=2           {60 * n / two:6.1f}",
        f"    Dask, 2 local workers  {60 * n / dask_seconds:6.1f}",
        f"  Dask's own cost: {1000 * noop:.1f} ms a task that does nothing; {(dask_seconds - two) / n:+.2f} s per "
        "notebook against JOBS=2 (pre-flight, private course, template, data both ways)",
    ])
    print(text)
    (out / "grading.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "grading.txt").write_text(text + "\n")
    shutil.rmtree(spec_root, ignore_errors=True)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
