import os
import sys
from pathlib import Path

import pytest

from autograder.host.course import ROOT, Course, copy_course

# nbgrader runs `alembic` from PATH; the kernel must see the grading device variable.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
os.environ.setdefault("LSTM_COURSE_DEVICE", "cpu")


@pytest.fixture(scope="session")
def repo() -> Course:
    return Course(root=ROOT)


@pytest.fixture(scope="module")
def released_course(tmp_path_factory) -> Course:
    """A throwaway course with this repository's source, released by nbgrader into its gradebook."""
    course = copy_course(tmp_path_factory.mktemp("course"))
    course.release()
    return course

sys.path.insert(0, str(Path(__file__).parent))
