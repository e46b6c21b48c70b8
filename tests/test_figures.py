"""The cell diagram is drawn by code in notebook 1 and reused unchanged by notebooks 3 and 4."""

from autograder.host.course import ROOT
from autograder.host.submissions import nbgrader_meta, read


def diagram_code(assignment):
    nb = read(ROOT / "source" / assignment / f"{assignment}.ipynb")
    cells = [c for c in nb.cells if nbgrader_meta(c).get("grade_id") == "cell_diagram"]
    assert len(cells) == 1, f"{assignment} should have one cell_diagram cell"
    assert cells[0].cell_type == "code" and nbgrader_meta(cells[0])["locked"]
    source = cells[0].source
    start, call = source.index("def draw_cell("), source.rindex("\ndraw_cell(")
    return source[start:call].strip(), source[call:].strip()


def test_notebooks_3_and_4_draw_notebook_1s_cell():
    function, call = diagram_code("01_lstm_cell")
    assert call == "draw_cell()"
    for assignment, variant in (("03_coupled_gate", "coupled"), ("04_peepholes", "peephole")):
        theirs, their_call = diagram_code(assignment)
        assert theirs == function, f"{assignment}'s draw_cell differs from notebook 1's: copy it again"
        assert their_call == f'draw_cell("{variant}")'
        assert f'variant == "{variant}"' in function
