"""The gradebook as the batch writes it: students created once before parallel writers start, and the last-resort
zeros for a submission nbgrader could not grade. SQLite gets a busy timeout so that parallel writers wait for each
other; ``DB_URL=postgresql+psycopg://...`` works the same way."""

from .course import Course

SQLITE_TIMEOUT = 120


def worker_db_url(db_url: str) -> str:
    """SQLite: wait for other writers instead of failing with 'database is locked'."""
    if db_url.startswith("sqlite") and "timeout=" not in db_url:
        return db_url + ("&" if "?" in db_url else "?") + f"timeout={SQLITE_TIMEOUT}"
    return db_url


def alembic_head() -> str:
    """The newest revision of nbgrader's gradebook schema, read from its migration scripts."""
    from alembic.script import ScriptDirectory
    from nbgrader.dbutil import ALEMBIC_DIR

    return ScriptDirectory(ALEMBIC_DIR).get_current_head()


def stamp_in_process() -> None:
    """nbgrader stamps a new gradebook with that revision by running ``alembic heads`` in a subprocess, which
    costs two CPU seconds of start-up for each new course; in this process, read it here instead."""
    import nbgrader.api

    nbgrader.api.get_alembic_version = alembic_head


def prepare_gradebook(course: Course, jobs: list) -> None:
    """Create the gradebook and every student once, before parallel writers start."""
    from nbgrader.api import Gradebook

    stamp_in_process()
    with Gradebook(worker_db_url(course.db)) as gb:
        for student in sorted({j.student for j in jobs}):
            gb.update_or_create_student(student)


def zero_grades(course: Course, assignment: str, student: str) -> None:
    """Last resort: zeros in the gradebook for a submission nbgrader could not grade at all."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(worker_db_url(course.db)) as gb:
        gb.update_or_create_student(student)
        try:
            submission = gb.find_submission(assignment, student)
        except MissingEntry:
            submission = gb.add_submission(assignment, student)
        for notebook in submission.notebooks:
            for grade in notebook.grades:
                grade.auto_score = 0
                grade.needs_manual_grade = False
        gb.db.commit()
