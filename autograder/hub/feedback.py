"""Feedback on submit: a JupyterHub service, as the course's grader account, that grades each submission as it
arrives and releases that student's feedback.

``python -m autograder.hub.feedback --course DIR --exchange DIR --course-id ID`` (the hub starts it, and starts
it again if it dies). Every couple of seconds it looks at the exchange's inbound folder. A submission is done
when its feedback is in the exchange (the file nbgrader names by the submission's own secret), so nothing
else needs to be remembered: a service killed mid-grading finds the same submission not done when it starts
again, and grades it then. Each submission is graded in its turn, oldest first: staged into
``submitted/<student>/<assignment>/`` as data (``autograder.host.datafiles``), graded through
``autograder.host.nbgrader_route`` (the sandboxed batch of ``make autograde``), its feedback generated and
released for that student alone.

The per-student limit: at most one graded submission per ``minutes_between`` minutes (default 10), counted
from the student's last released feedback; a submission past it waits for the next slot, none is dropped.
The instructor sets it in ``feedback_on_submit.json`` in the course directory (read every round; the
Formgrader's service can edit it): ``{"enabled": true, "minutes_between": 10}``; ``minutes_between: 0``
turns the limit off, ``enabled: false`` stops grading on submit (submissions wait, still kept).

A submission counts only if its folder in inbound is a real folder owned by the student it names: the inbound
folder is world-writable, and a name is easy to forge.
"""

import argparse
import fcntl
import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..host import nbgrader_route
from ..host.course import Course
from ..host.datafiles import copy_data, open_regular
from .exchange import made_by

POLICY_FILE = "feedback_on_submit.json"
POLL_SECONDS = 2.0
ATTEMPTS = 3  # a submission whose grading fails this often is left alone until the service starts again


@dataclass(frozen=True)
class Policy:
    enabled: bool = True
    minutes_between: float = 10.0


def read_policy(course: Path) -> Policy:
    """The instructor's settings in the course directory; the defaults where it is missing or unreadable."""
    path = course / POLICY_FILE
    try:
        data = json.loads(path.read_text())
        return Policy(enabled=bool(data.get("enabled", True)),
                      minutes_between=max(0.0, float(data.get("minutes_between", Policy.minutes_between))))
    except (OSError, ValueError, TypeError, AttributeError):
        return Policy()


def write_policy(course: Path, policy: Policy) -> None:
    (course / POLICY_FILE).write_text(json.dumps({"enabled": policy.enabled,
                                                  "minutes_between": policy.minutes_between}) + "\n")


@dataclass(frozen=True)
class Submission:
    """One folder in inbound: ``<student>+<assignment>+<timestamp>+<random>`` (nbgrader's submit)."""

    path: Path
    student: str
    assignment: str
    timestamp: str

    def secret(self) -> str:
        data, why = open_regular(str(self.path / "submission_secret.txt"), max_bytes=4096)
        return "" if why else data.decode(errors="replace").strip()


def inbound(exchange: Path, course_id: str) -> list[Submission]:
    """The submissions in the exchange that are what their names say, oldest first."""
    found = []
    folder = exchange / course_id / "inbound"
    for entry in sorted(folder.iterdir()) if folder.is_dir() else []:
        parts = entry.name.split("+")
        if len(parts) == 4 and made_by(entry, parts[0]):
            found.append(Submission(entry, parts[0], parts[1], parts[2]))
    return sorted(found, key=lambda s: s.timestamp)


class Service:
    """The course's feedback on submit: which submission is due, and grading it."""

    def __init__(self, course: Path, exchange: Path, course_id: str, say=print):
        self.course = Course(root=course, db_url=f"sqlite:///{course / 'gradebook.db'}")
        self.exchange, self.course_id, self.say = exchange, course_id, say
        self.failures: dict[str, int] = {}

    def feedback_files(self, sub: Submission) -> list[Path]:
        """Where nbgrader releases the feedback of each of the assignment's notebooks for this submission."""
        from nbgrader.utils import notebook_hash

        secret = sub.secret()
        release = self.course.dir("notebooks") / sub.assignment
        notebooks = sorted(p.stem for p in release.glob("*.ipynb"))
        if not secret or not notebooks:
            return []
        folder = self.exchange / self.course_id / "feedback"
        return [folder / f"{notebook_hash(secret=secret, notebook_id=nb)}.html" for nb in notebooks]

    def released_at(self, sub: Submission) -> float | None:
        """When this submission's feedback was released (None: not yet)."""
        files = self.feedback_files(sub)
        if not files or not all(f.exists() for f in files):
            return None
        return max(f.stat().st_mtime for f in files)

    def due(self, policy: Policy, now: float) -> Submission | None:
        """The next submission to grade: each student's oldest one not done, once his slot has come."""
        if not policy.enabled:
            return None
        submissions = inbound(self.exchange, self.course_id)
        released = {s: self.released_at(s) for s in submissions}
        for sub in submissions:
            if released[sub] is not None or self.failures.get(sub.path.name, 0) >= ATTEMPTS:
                continue
            if not sub.secret() or not (self.course.dir("notebooks") / sub.assignment).is_dir():
                continue  # still being written (nbgrader writes the secret last), or not this course's
            last = max((t for s, t in released.items() if t is not None and s.student == sub.student), default=None)
            if last is None or now - last >= policy.minutes_between * 60:
                return sub
        return None

    def grade(self, sub: Submission) -> bool:
        """Stage, grade, and release the feedback of one submission; whether its feedback is out."""
        started = time.monotonic()
        self.say(f"grading {sub.assignment} for {sub.student}, submitted {sub.timestamp}")
        dest = self.course.dir("submitted") / sub.student / sub.assignment
        shutil.rmtree(dest, ignore_errors=True)
        dest.parent.mkdir(parents=True, exist_ok=True)
        _, notes = copy_data(str(sub.path), str(dest))
        for note in notes:
            self.say(f"  {sub.student}: {note}")
        result = nbgrader_route.grade(self.course, [sub.assignment], [sub.student], say=self.say)
        if result.failed:
            return self._failed(sub, "grading failed")
        self.course.clear_graded(sub.assignment, sub.student)
        for step in ("generate_feedback", "release_feedback"):
            args = [step, sub.assignment, "--student", sub.student] + (["--force"] if step.startswith("gen") else [])
            done = self.course.nbgrader(*args, check=False)
            if done.returncode != 0:
                return self._failed(sub, f"{step} failed:\n{(done.stdout + done.stderr)[-1500:]}")
        self.say(f"feedback released for {sub.student} on {sub.assignment} in {time.monotonic() - started:.1f} s")
        return True

    def _failed(self, sub: Submission, why: str) -> bool:
        self.failures[sub.path.name] = self.failures.get(sub.path.name, 0) + 1
        self.say(f"{sub.student}'s submission of {sub.assignment} ({sub.timestamp}): {why}")
        return False

    def run(self) -> None:
        while True:
            sub = self.due(read_policy(self.course.root), time.time())
            if sub is None:
                time.sleep(POLL_SECONDS)
            else:
                self.grade(sub)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder.hub.feedback", description=__doc__.split("\n")[0])
    parser.add_argument("--course", required=True, type=Path, help="the course directory")
    parser.add_argument("--exchange", required=True, type=Path, help="nbgrader's exchange root")
    parser.add_argument("--course-id", required=True)
    args = parser.parse_args(argv)
    course = args.course.resolve()
    lock = open(course / ".feedback_on_submit.lock", "w")  # noqa: SIM115 (held for the process's life)
    fcntl.flock(lock, fcntl.LOCK_EX)  # one service at a time: a restarted one waits for a lingering one
    print(f"feedback on submit for {args.course_id}: watching {args.exchange / args.course_id / 'inbound'}",
          flush=True)
    Service(course, args.exchange, args.course_id, say=lambda text: print(text, flush=True)).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
