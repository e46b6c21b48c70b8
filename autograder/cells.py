"""A notebook's cells as nbgrader marks them: which are answers, and which exercise each grading cell grades.

The grader (``host/``) and its hidden tests' scan (``checks/scan.py``) read the same rule from here.
"""


def nbgrader_meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def is_solution(cell) -> bool:
    return bool(nbgrader_meta(cell).get("solution")) and not nbgrader_meta(cell).get("grade")


def exercises(source_nb) -> dict[str, str]:
    """grade cell id -> the solution cell it grades (the nearest solution cell above it)."""
    owner, current = {}, "setup"
    for cell in source_nb.cells:
        meta = nbgrader_meta(cell)
        if is_solution(cell):
            current = meta["grade_id"]
        elif meta.get("grade"):
            owner[meta["grade_id"]] = meta["grade_id"] if meta.get("solution") else current
    return owner
