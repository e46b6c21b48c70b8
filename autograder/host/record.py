"""The coordinator's single writer for a clustered batch: one worker's result -> the gradebook, ``autograded/``
and the grading log.

A result is plain data (``autograder/host/worker.py``): per-cell scores and comments, the graded folder's
files, the log's records. Nothing in it is executed or followed: file names must be plain relative names,
and the gradebook gets numbers and text for the cells the assignment already has.
"""

import shutil
import warnings
from datetime import datetime
from pathlib import Path

from .. import gradelog
from .batch import EVENT_KINDS, Outcome
from .course import Course
from .gradebook import worker_db_url, zero_grades
from .worker import write_folder


def write_log(log: Path, records: list) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    for record in records:
        gradelog.append(log, record)  # a record keeps its own time


def write_scores(course: Course, assignment: str, student: str, scores: dict | None) -> None:
    """The submission's row with the worker's scores and comments; zeros if the worker had none."""
    from nbgrader.api import Gradebook
    from sqlalchemy.exc import SAWarning

    if not scores:
        zero_grades(course, assignment, student)
        return
    timestamp = datetime.fromisoformat(scores["timestamp"]) if scores.get("timestamp") else None
    with Gradebook(worker_db_url(course.db)) as gb, warnings.catch_warnings():
        # nbgrader's add_submission builds its rows outside the session; SQLAlchemy 2 warns, and adds them anyway
        warnings.simplefilter("ignore", SAWarning)
        gb.update_or_create_student(student)
        gb.update_or_create_submission(assignment, student, **({"timestamp": timestamp} if timestamp else {}))
        for g in scores["grades"]:
            grade = gb.find_grade(g["cell"], g["notebook"], assignment, student)
            grade.auto_score = g["auto_score"]
            grade.needs_manual_grade = g["needs_manual_grade"]
        for name, penalty in scores.get("late_penalties", {}).items():
            gb.find_submission_notebook(name, assignment, student).late_submission_penalty = penalty
        for c in scores["comments"]:
            comment = gb.find_comment(c["cell"], c["notebook"], assignment, student)
            comment.auto_comment = c["auto_comment"]
        gb.db.commit()


def write(course: Course, result: dict, log_root: Path, before: list = (), notes: list = ()) -> Outcome:
    """Write one result; ``before``: the coordinator's own log records for it (staging), ``notes``: its own
    notes (a lost worker). Returns the outcome the batch reports."""
    assignment, student = result["assignment"], result["student"]
    records = list(before) + list(result["log"]) + [{"kind": "graded-on", "worker": result["worker"]}]
    write_log(log_root / assignment / f"{student}.jsonl", records)
    folder = course.dir("autograded") / student / assignment
    shutil.rmtree(folder, ignore_errors=True)
    if result["files"]:
        folder.mkdir(parents=True)
        write_folder(folder, result["files"])
    write_scores(course, assignment, student, result["scores"])
    events = [r for r in records if r.get("kind") in EVENT_KINDS]
    all_notes = list(result["notes"]) + ([result["problem"]] if result["problem"] else []) + list(notes)
    return Outcome(assignment, student, result["status"], result["seconds"], all_notes, events, result["detail"])
