"""The package as a wheel: built from pyproject.toml and installed (not editable) into a scratch environment, it
releases and grades a course directory of its own, in the sandbox, with no checkout on its path.

The scratch environment reuses this environment's dependencies without copying them: a venv whose own
site-packages holds the wheel, then a ``.pth`` line naming this environment's site-packages. A ``.pth`` line
only appends a folder to ``sys.path``; the ``.pth`` files inside that folder (the checkout's editable finder
among them) are not run, so ``autograder`` can only come from the wheel.
"""

import os
import shutil
import subprocess
import sys
import sysconfig
import types
import zipfile
from pathlib import Path

import pytest
from corpus import FULL, LIMITS, A

from autograder.host import report
from autograder.host.course import ROOT, Course
from autograder.host.submissions import reference_submission, submit


def _run(cmd, cwd, env=None, timeout=300) -> str:
    done = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def _build_wheel(tmp: Path) -> Path:
    """The wheel of a copy of the package (so that the build's scratch, build/ and *.egg-info, stays out of the
    checkout)."""
    src = tmp / "src"
    src.mkdir()
    shutil.copy(ROOT / "pyproject.toml", src)
    shutil.copytree(ROOT / "autograder", src / "autograder", ignore=shutil.ignore_patterns("__pycache__"))
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
          "-w", tmp / "dist", src], cwd=tmp)
    (wheel,) = (tmp / "dist").glob("*.whl")
    return wheel


def _scratch_env(tmp: Path, wheel: Path) -> tuple[Path, Path]:
    """A venv with the wheel in its site-packages and this environment's packages after it: (python, site)."""
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp)
    python = venv / "bin" / "python"
    site = Path(_run([python, "-I", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     cwd=tmp).strip())
    _run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", site, wheel], cwd=tmp)
    ours = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    (site / "zz_course_dependencies.pth").write_text("".join(f"{p}\n" for p in ours))
    # nbgrader runs `alembic` from PATH: the console script an install of the dependencies would put here
    alembic = venv / "bin" / "alembic"
    alembic.write_text(f"#!{python}\nimport sys\nfrom alembic.config import main\nsys.exit(main())\n")
    alembic.chmod(0o755)
    return python, site


def _env(**extra) -> dict:
    """The caller's environment without its checkout, course or gradebook; grading limits; the sandbox required."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "COURSE_ROOT", "DB_URL", "VIRTUAL_ENV")}
    return {**env, **LIMITS, "LSTM_SANDBOX": "bwrap", **extra}


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    wheel = _build_wheel(tmp)
    python, site = _scratch_env(tmp, wheel)
    return types.SimpleNamespace(tmp=tmp, wheel=wheel, python=python, site=site)


def test_the_wheel_holds_every_module_of_the_package(installed):
    with zipfile.ZipFile(installed.wheel) as whl:
        shipped = {name for name in whl.namelist() if name.startswith("autograder/")}
    source = {p.relative_to(installed.tmp / "src").as_posix() for p in (installed.tmp / "src" / "autograder").rglob("*")
              if p.is_file()}
    assert {"autograder/host/sandbox.py", "autograder/kernel/probe.py", "autograder/checks/lstm_cell.py"} <= source
    assert shipped == source, f"missing from the wheel: {sorted(source - shipped)}; extra: {sorted(shipped - source)}"


def test_autograder_comes_from_the_wheel(installed):
    code = "import autograder.host.sandbox as s, autograder.kernel.probe as p; print(s.__file__); print(p.__file__)"
    for flags in (["-I"], []):  # -I: as the sandbox's launcher runs
        found = _run([installed.python, *flags, "-c", code], cwd=installed.tmp, env=_env()).split()
        assert found and all(Path(f).is_relative_to(installed.site) for f in found), found


def test_the_sandbox_binds_the_installed_package(installed):
    code = "from autograder.host import sandbox; print('\\n'.join(sandbox._python_roots()))"
    roots = _run([installed.python, "-I", "-c", code], cwd=installed.tmp, env=_env()).split()
    assert any(installed.site.is_relative_to(root) for root in roots), roots


def test_the_installed_package_grades_a_course_of_its_own(installed):
    """Release from the course directory (no COURSE_ROOT: the current directory is the course), then grade the
    reference answers of notebook 1 with COURSE_ROOT from elsewhere: full marks."""
    course = Course(root=installed.tmp / "course", db_url=f"sqlite:///{installed.tmp / 'course' / 'gradebook.db'}")
    shutil.copytree(ROOT / "source" / A, course.dir("source") / A)
    shutil.copy(ROOT / "nbgrader_config.py", course.root)
    cli = [installed.python, "-m", "autograder"]
    _run([*cli, "release"], cwd=course.root, env=_env())
    submit(course, "reference", A, reference_submission(course, A))
    out = _run([*cli, "autograde", A], cwd=installed.tmp, env=_env(COURSE_ROOT=str(course.root), GRADING_JOBS="1"))
    assert "reference: graded" in out, out
    rows = report.scores(course)
    got = {ex: score for (_, _, ex), (score, _) in report.by_exercise(rows).items()}
    assert got == FULL, out
    assert sum(r.score for r in rows) == sum(r.max_score for r in rows) == 13
