"""Pre-flight: the notebook nbgrader grades for one submission, read without trusting it.

An empty file, invalid JSON, something that is not a notebook, a notebook for another assignment or a missing
notebook becomes the release notebook (every answer unanswered, so zero) with a note saying why. A real notebook
is rebuilt in the release's order: the student's code goes into the solution cells it belongs to (the last copy,
if a cell was duplicated; turned back into code if it became markdown) and cells the student added stay after the
answer they followed; every test and given cell comes from the release, so deleted, duplicated, reordered or
retyped test cells are back. A markdown cell at the top lists what was changed. ``submitted/`` is never touched.
"""

import copy
import json
import os
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .. import gradelog
from . import datafiles
from .course import Course

MAX_NOTEBOOK_BYTES = 64 * 2**20


@dataclass
class Job:
    assignment: str
    student: str
    notes: list = field(default_factory=list)
    problem: str = ""  # set when the submission could not be used at all
    tries: int = 0  # nbgrader processes that stopped before reaching this notebook
    prestaged: str = ""  # a folder already staged elsewhere (the coordinator of a clustered batch): graded as is


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


def _sort_submitted(release_cells, submitted) -> tuple[dict, dict, list]:
    """The submitted cells by the release cell they copy (grade_id -> copies, in order), the cells the student
    added (grade_id of the release cell they followed, "" for the top -> new cells), and the grade_ids in
    submitted order."""
    by_gid = {_meta(c)["grade_id"]: c for c in release_cells if _meta(c).get("grade_id")}
    by_id = {c.get("id"): c for c in release_cells if c.get("id")}
    seen: dict[str, list] = {}
    extras: dict[str, list] = {}
    anchor, order = "", []
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
    return seen, extras, order


def _restore(cell, gid: str, copies: list, is_answer: bool, notes: list):
    """The release cell ``cell`` as graded: an answer with the student's last copy in it, anything else as
    released; what was changed goes into ``notes``."""
    new = copy.deepcopy(cell)
    if is_answer:
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
    return new


def normalize(release, submitted, assignment: str) -> tuple:
    """The release with the student's answers and extra cells in place; and notes on what changed."""
    notes = []
    release_cells = list(release.cells)
    by_gid = {_meta(c)["grade_id"]: c for c in release_cells if _meta(c).get("grade_id")}
    answer_ids = {g for g, c in by_gid.items() if _meta(c).get("solution")}
    seen, extras, order = _sort_submitted(release_cells, submitted)
    out = list(extras.get("", []))
    for cell in release_cells:
        gid = _meta(cell).get("grade_id")
        out.append(_restore(cell, gid, seen.get(gid, []), gid in answer_ids, notes))
        out.extend(extras.get(gid, []))
    first_seen = list(dict.fromkeys(g for g in order if g in by_gid))
    if first_seen != [g for g in by_gid if g in first_seen]:
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

    Everything the student submitted is read as data (``autograder/host/datafiles.py``): the notebook only if
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
