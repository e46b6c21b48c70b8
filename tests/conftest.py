"""Shared fixtures: the repository's course, and courses released by nbgrader, generated once per test session.

``nbgrader generate_assignment`` costs a few CPU seconds a call (an nbgrader start-up, the gradebook's
migrations), and most modules need the same release: the ``released`` fixture generates each set of assignments
once per session, in a folder every xdist worker shares (under a lock), and copies it.

The slowest modules are collected first: pytest-xdist (``--dist loadfile --no-loadscope-reorder``) hands modules
to its workers in collection order, so the longest start first and the short ones fill the end.
"""

import fcntl
import gc
import os
import shutil
import sys
from pathlib import Path

import pytest

from autograder.host.course import ROOT, Course, copy_course

# The environment's scripts (nbgrader, jupyter, alembic) first on PATH; the kernel must see the grading device.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
os.environ.setdefault("LSTM_COURSE_DEVICE", "cpu")

# The modules that take the most CPU time, most first (measured one at a time; the rest follow in their order).
SLOWEST_FIRST = (
    "test_demo.py", "test_hostile.py", "test_zoo_02_stacked_lstm.py", "test_zoo_01_lstm_cell.py", "test_hub.py",
    "test_zoo_07_real_data.py", "test_bad_submissions.py", "test_boundary.py", "test_browser.py", "test_cluster.py",
    "test_gpu_check.py", "test_flood.py", "test_zoo_03_coupled_gate.py", "test_notebooks.py", "test_parallel.py",
    "test_zoo_06_speed_ladder.py", "test_nbgrader_route.py", "test_wheel.py", "test_zoo_04_peepholes.py",
    "test_visible_checks.py",
)


def pytest_collection_finish(session):
    gc.freeze()  # what collection imported (torch, nbgrader, playwright) stays out of every later collection


def pytest_collection_modifyitems(items):
    """The modules of SLOWEST_FIRST first, in that order; the order of the tests in a module is kept."""
    rank = {name: k for k, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


def session_dir(tmp_path_factory) -> Path:
    """This test session's temporary folder, the same for every xdist worker (each has its own below it)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def generated_once(shared: Path, assignments: tuple[str, ...]) -> Path:
    """A course with this repository's source in which nbgrader generated ``assignments``, in order: made by
    the first worker that asks for it, under a lock, in ``shared``."""
    shared.mkdir(parents=True, exist_ok=True)
    done = shared / "+".join(assignments)
    with open(shared / f"{done.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            building = shared / f"{done.name}.building"
            shutil.rmtree(building, ignore_errors=True)
            course = copy_course(building)
            for assignment in assignments:
                course.nbgrader("generate_assignment", assignment, "--force")
            building.rename(done)
    return done


@pytest.fixture(scope="session")
def released(tmp_path_factory):
    """``released(dest, *assignments)``: in ``dest``, the course that ``copy_course(dest)`` and then ``nbgrader
    generate_assignment`` of each of ``assignments`` make (source/, notebooks/, a SQLite gradebook), copied."""
    shared = session_dir(tmp_path_factory) / "released"

    def make(dest: Path, *assignments: str) -> Course:
        shutil.copytree(generated_once(shared, assignments), dest, dirs_exist_ok=True)
        return Course(root=dest, db_url=f"sqlite:///{dest / 'gradebook.db'}")

    return make


@pytest.fixture(scope="session")
def repo() -> Course:
    return Course(root=ROOT)


@pytest.fixture(scope="module")
def released_course(tmp_path_factory, released) -> Course:
    """A throwaway course with this repository's source, released by nbgrader into its gradebook."""
    return released(tmp_path_factory.mktemp("course"), *Course().assignments)

sys.path.insert(0, str(Path(__file__).parent))
