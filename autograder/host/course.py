"""The course on disk, and nbgrader run on it.

One nbgrader assignment per notebook, named like the notebook: ``source/01_lstm_cell/01_lstm_cell.ipynb``
is released to ``notebooks/01_lstm_cell/`` and solved in ``solutions/01_lstm_cell/``.
"""

import glob
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..settings import load as load_settings
from .datafiles import remove_non_regular

ROOT = Path(__file__).resolve().parents[2]  # the checkout, when the package runs from one
SCRATCH = ("submitted", "autograded", "feedback")


def default_root() -> Path:
    """The course a command works on without COURSE_ROOT: this checkout; for an installed package (no
    ``nbgrader_config.py`` beside it), the current directory."""
    return ROOT if (ROOT / "nbgrader_config.py").is_file() else Path.cwd()


@dataclass(frozen=True)
class Course:
    root: Path = field(default_factory=default_root)
    db_url: str = ""

    @property
    def db(self) -> str:
        return self.db_url or load_settings().db_url or f"sqlite:///{self.root / 'gradebook.db'}"

    def dir(self, name: str) -> Path:
        return self.root / name

    @property
    def assignments(self) -> list[str]:
        return sorted(p.name for p in self.dir("source").iterdir() if (p / f"{p.name}.ipynb").exists())

    def notebook(self, kind: str, assignment: str, student: str = "") -> Path:
        """``kind``: source, notebooks (release), solutions, submitted, autograded."""
        parts = [kind] + ([student] if student else []) + [assignment, f"{assignment}.ipynb"]
        return self.root.joinpath(*parts)

    def students(self) -> list[str]:
        submitted = self.dir("submitted")
        return sorted(p.name for p in submitted.iterdir() if p.is_dir()) if submitted.exists() else []

    def nbgrader(self, *args: str, check: bool = True, env: dict | None = None,
                 timeout: float | None = None) -> subprocess.CompletedProcess:
        """Run the nbgrader CLI with this course's root and gradebook (the config file sets the rest)."""
        cmd = [sys.executable, "-m", "nbgrader", *args,
               f"--CourseDirectory.root={self.root}", f"--CourseDirectory.db_url={self.db}"]
        # `nbgrader db upgrade` runs `alembic` from PATH: put this environment's scripts first.
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                                env={**os.environ, "PATH": path, **(env or {})})
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    # ------------------------------------------------------------------ the instructor's steps

    def release(self) -> None:
        for a in self.assignments:
            self.nbgrader("generate_assignment", a, "--force")

    def solutions(self) -> None:
        for a in self.assignments:
            self.nbgrader("generate_solution", a, "--force")

    def feedback(self, assignment: str, timeout: float | None = None) -> tuple[bool, list[str]]:
        """HTML feedback for every graded student of ``assignment``: (written, what to report).

        nbgrader copies every file of ``autograded/<student>/<assignment>`` into the feedback folder, so
        anything there that is not a regular file or a folder is deleted first (the grader writes only
        those, but this is the last step before a TA opens the pages). A run past ``timeout`` is stopped.
        """
        said, graded = self.clear_graded(assignment)
        if not graded:
            return True, said + [f"no graded submissions of {assignment}: no feedback to write"]
        try:
            done = self.nbgrader("generate_feedback", assignment, "--force", check=False, timeout=timeout)
        except subprocess.TimeoutExpired:
            return False, said + [f"feedback for {assignment} ran past {timeout:.0f} s and was stopped"]
        if done.returncode != 0:
            return False, said + [f"nbgrader generate_feedback {assignment} failed (exit {done.returncode}):",
                                  nbgrader_errors(done.stdout + done.stderr)]
        return True, said

    def clear_graded(self, assignment: str, student: str = "") -> tuple[list[str], list[str]]:
        """Delete what is not a regular file or a folder in ``autograded/<student>/<assignment>`` (every student's
        by default): (what was removed, in words; the students with a graded notebook)."""
        said, graded = [], []
        root = self.dir("autograded")
        for folder in sorted(root.glob(f"{glob.escape(student) if student else '*'}/{glob.escape(assignment)}")):
            if folder.parent.name.startswith(".") or folder.parent.is_symlink() or folder.is_symlink() or \
                    not folder.is_dir():
                continue
            said += [f"removed {p} (not a regular file) before writing feedback"
                     for p in remove_non_regular(str(folder))]
            if (folder / f"{assignment}.ipynb").is_file():
                graded.append(folder.parent.name)
        return said, graded

    def clean_scratch(self) -> None:
        for name in SCRATCH:
            shutil.rmtree(self.dir(name), ignore_errors=True)
        db = self.root / "gradebook.db"
        if db.exists():
            db.unlink()


def nbgrader_errors(out: str) -> str:
    """The lines of an nbgrader run's output that say what went wrong (its last 1500 characters if none do)."""
    lines = [ln for ln in (out or "").splitlines() if "ERROR" in ln or "Error" in ln or "[batch" in ln]
    return "\n".join(lines[-12:]) or (out or "")[-1500:]


def copy_course(dest: Path, with_release: bool = False) -> Course:
    """A fresh course directory with this repository's source (and release) in it."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(ROOT / "source", dest / "source", dirs_exist_ok=True)
    if with_release:
        shutil.copytree(ROOT / "notebooks", dest / "notebooks", dirs_exist_ok=True)
    return Course(root=dest, db_url=f"sqlite:///{dest / 'gradebook.db'}")
