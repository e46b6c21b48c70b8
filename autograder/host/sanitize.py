"""Feedback a TA can open: no script, frame or event handler from a student reaches the HTML.

nbconvert's ``SanitizeHTML`` cleans HTML with bleach. Run on every markdown cell it would also escape
the ``<`` and ``&`` of the course's own LaTeX and code spans a second time, so this subclass cleans

- every code cell's outputs (the kernel ran student code: any output can be the student's), dropping
  JavaScript and any other type the browser would run, and
- every markdown or raw cell that is not, word for word, a markdown or raw cell of the release: the
  student's added cells, written answers and anything else the course did not write.

Where the release cannot be read, every markdown cell is cleaned (safe, if less pretty).
"""

from pathlib import Path

import nbformat
from nbconvert.preprocessors.sanitize import SanitizeHTML
from traitlets import Bool, Unicode


class SanitizeStudentHTML(SanitizeHTML):
    enabled = Bool(True, help="Clean student HTML in feedback").tag(config=True)
    release_directory = Unicode("notebooks", help="The release folder, relative to the course root").tag(config=True)

    def preprocess(self, nb, resources):
        self._trusted = self._release_sources(resources)
        return super().preprocess(nb, resources)

    def _release_sources(self, resources) -> set:
        info = (resources or {}).get("nbgrader", {})
        folder = (resources or {}).get("metadata", {}).get("path")
        assignment = info.get("assignment")
        if not folder or not assignment:
            return set()
        # the graded notebook is in <root>/autograded/<student>/<assignment>/
        release = Path(folder).resolve().parents[2] / self.release_directory / assignment / f"{assignment}.ipynb"
        try:
            cells = nbformat.read(release, as_version=4).cells
        except Exception:
            return set()
        return {(c.cell_type, c.source) for c in cells if c.cell_type in ("markdown", "raw")}

    def preprocess_cell(self, cell, resources, cell_index):
        if cell.cell_type in ("markdown", "raw") and (cell.cell_type, cell.source) in self._trusted:
            return cell, resources
        return super().preprocess_cell(cell, resources, cell_index)
