"""A PostgreSQL gradebook by one setting (DB_URL=postgresql+psycopg://...): a real PostgreSQL 15 server,
started here on 127.0.0.1, takes the place of SQLite, with parallel writers, through `make autograde`."""

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest
from corpus import LIMITS, A, make_autograde, release

from autograder.demo import PLANTED
from autograder.host import report
from autograder.host.course import Course, copy_course
from autograder.host.submissions import reference_submission, submit

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres():
    """A throwaway PostgreSQL server (initdb refuses root: as root it runs as the `postgres` user)."""
    assert (PG_BIN / "initdb").exists(), f"PostgreSQL 15 is needed ({PG_BIN}/initdb): apt-get install postgresql-15"
    base = Path(tempfile.mkdtemp(prefix="lstm-pg-"))
    data, sock, log = base / "data", base / "sock", base / "server.log"
    sock.mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        for path in (base, sock):
            os.chown(path, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    port = _free_port()

    def run(*cmd):
        done = subprocess.run(as_user + list(cmd), capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{cmd[0]} failed:\n{done.stdout}\n{done.stderr}"

    run(str(PG_BIN / "initdb"), "-D", str(data), "-U", "grader", "--auth=trust", "-E", "UTF8", "--no-sync")
    run(str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o",
        f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50", "start")
    try:
        run(str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "grader", "gradebook")
        yield f"postgresql+psycopg://grader@127.0.0.1:{port}/gradebook"
    finally:
        subprocess.run(as_user + [str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def graded(postgres, tmp_path_factory):
    copy = copy_course(tmp_path_factory.mktemp("pg"))
    course = Course(root=copy.root, db_url=postgres)  # the one setting: the gradebook's URL
    course.nbgrader("generate_assignment", A, "--force")
    submit(course, "reference", A, reference_submission(course, A))
    submit(course, "untouched", A, release(course))
    submit(course, "planted_bug", A, reference_submission(course, A, PLANTED[A]))
    done = make_autograde(course, jobs=2, env={**LIMITS, "DB_URL": postgres})
    return course, done


def test_grading_into_postgres_works(graded):
    course, done = graded
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 job(s) at a time" in done.stdout
    totals = report.by_exercise(report.scores(course))
    total = {s: sum(v[0] for k, v in totals.items() if k[0] == s) for s in ("reference", "untouched", "planted_bug")}
    assert total == {"reference": 13.0, "untouched": 0.0, "planted_bug": 7.0}


def test_the_grades_are_in_postgres_and_not_in_sqlite(graded, postgres):
    import psycopg

    course, _ = graded
    assert not (course.root / "gradebook.db").exists()
    with psycopg.connect(postgres.replace("postgresql+psycopg", "postgresql")) as conn:
        rows = conn.execute("SELECT count(*) FROM grade WHERE auto_score IS NOT NULL").fetchone()[0]
        students = {r[0] for r in conn.execute("SELECT id FROM student")}
    cells = sum(1 for c in release(course).cells if c.metadata.get("nbgrader", {}).get("grade"))
    assert rows == 3 * cells  # every grading cell of notebook 1, for each of the three students
    assert students == {"reference", "untouched", "planted_bug"}
