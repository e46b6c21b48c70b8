"""Feedback on submit: seconds from a student's Submit to his feedback in the exchange, notebook 1, median of 5.

    .venv/bin/python benchmarks/feedback_on_submit.py --out bench-results [--submissions 5]

A throwaway course (this repository's source; notebook 1 generated, then released into a throwaway exchange
by nbgrader) and the feedback service of `make hub` (autograder/hub/feedback.py) running on it, with its
per-student limit off. This user is the student: each round puts the reference answers into the fetched
notebook, submits it with nbgrader's submit (with the hub's config: PrivateSubmit), and waits until the
feedback file named by that submission's secret is in the exchange. The clock runs from the submit command's
start to that file. Results are printed and written to OUT/feedback_on_submit.json.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import nbformat  # noqa: E402

from autograder.host.course import ROOT, Course, copy_course  # noqa: E402
from autograder.host.submissions import fill, read, reference_answers  # noqa: E402
from autograder.hub.feedback import Policy, write_policy  # noqa: E402

ASSIGNMENT = "01_lstm_cell"
COURSE_ID = "lstm-course"
WAIT = 900  # seconds for one submission's feedback before the benchmark gives up


def nbgrader(*args: str, cwd: Path, env: dict) -> None:
    done = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"nbgrader {' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")


def setup(tmp: Path) -> tuple[Course, Path, dict]:
    """The course (notebook 1 released), the exchange, and the environment every nbgrader here runs with."""
    course = copy_course(tmp / "course")
    shutil.copy(ROOT / "nbgrader_config.py", course.root / "nbgrader_config.py")
    exchange, config = tmp / "exchange", tmp / "jupyter"
    exchange.mkdir(mode=0o1777)
    config.mkdir()
    (config / "nbgrader_config.json").write_text(json.dumps({
        "CourseDirectory": {"course_id": COURSE_ID},
        "Exchange": {"root": str(exchange), "path_includes_course": True, "cache": str(tmp / "cache")},
        "ExchangeFactory": {"submit": "autograder.hub.exchange.PrivateSubmit"},
    }))
    extra = {"JUPYTER_CONFIG_PATH": str(config)}
    course.nbgrader("generate_assignment", ASSIGNMENT, "--force", env=extra)
    course.nbgrader("release_assignment", ASSIGNMENT, env=extra)
    # nbgrader runs `alembic` from PATH: this environment's scripts first
    return course, exchange, {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                              **extra}


def feedback_file(exchange: Path, submission: Path) -> Path:
    from nbgrader.utils import notebook_hash

    secret = (submission / "submission_secret.txt").read_text().strip()
    return exchange / COURSE_ID / "feedback" / f"{notebook_hash(secret=secret, notebook_id=ASSIGNMENT)}.html"


def one_round(student: Path, exchange: Path, env: dict, answers: dict) -> float:
    """Answer, submit, wait for the feedback: the seconds from Submit to feedback."""
    path = student / COURSE_ID / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    nbformat.write(fill(read(path), answers), path)
    inbound = exchange / COURSE_ID / "inbound"
    before = set(inbound.iterdir())
    start = time.monotonic()
    nbgrader("submit", ASSIGNMENT, "--course", COURSE_ID, cwd=student, env=env)
    (submission,) = set(inbound.iterdir()) - before
    target = feedback_file(exchange, submission)
    while not target.exists():
        if time.monotonic() - start > WAIT:
            raise SystemExit(f"no feedback for {submission.name} after {WAIT} s")
        time.sleep(0.2)
    return time.monotonic() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="bench-results")
    parser.add_argument("--submissions", type=int, default=5)
    args = parser.parse_args()
    answers = reference_answers(read(ROOT / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"))
    with tempfile.TemporaryDirectory(prefix="feedback-on-submit-") as scratch:
        tmp = Path(scratch)
        course, exchange, env = setup(tmp)
        write_policy(course.root, Policy(enabled=True, minutes_between=0))
        student = tmp / "student"
        student.mkdir()
        nbgrader("fetch_assignment", ASSIGNMENT, "--course", COURSE_ID, cwd=student, env=env)
        service = subprocess.Popen([sys.executable, "-m", "autograder.hub.feedback", "--course", str(course.root),
                                    "--exchange", str(exchange), "--course-id", COURSE_ID], cwd=course.root,
                                   env=env, stdout=(tmp / "service.log").open("w"), stderr=subprocess.STDOUT)
        try:
            seconds = []
            for k in range(args.submissions):
                seconds.append(one_round(student, exchange, env, answers))
                print(f"submission {k + 1}: feedback {seconds[-1]:.1f} s after Submit", flush=True)
        finally:
            service.terminate()
            service.wait(30)
    result = {"assignment": ASSIGNMENT, "submissions": len(seconds), "seconds": [round(s, 2) for s in seconds],
              "median_submit_to_feedback_s": round(statistics.median(seconds), 2), "cores": os.cpu_count()}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "feedback_on_submit.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"median Submit-to-feedback over {len(seconds)} submissions of {ASSIGNMENT}: "
          f"{result['median_submit_to_feedback_s']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
