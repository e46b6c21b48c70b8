"""The line between the kernel and the grader: what the kernel receives, what crosses, who names the tests.

The kernel runs student code; the grader judges. These tests hold the line in place: the kernel's package
imports nothing of the grader, the sandbox receives that package and nothing else, every grading cell is
judged by the hidden test of its grade_id, and no seed, expected value or oracle output is ever sent to
the kernel (every request of every hidden test, on every reference solution, is recorded and searched).
"""

import ast
import io
import json
import linecache
import os
import zipfile

import pytest
import torch

from autograder import registry
from autograder.checks import harness, link
from autograder.host import sandbox
from autograder.host.course import ROOT
from autograder.host.nbgrader_ext import HIDDEN_BEGIN
from autograder.kernel import wire

KERNEL = ROOT / "autograder" / "kernel"


def test_the_kernel_package_imports_nothing_of_the_grader():
    for path in sorted(KERNEL.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert node.level in (0, 1), f"{path.name} imports from outside autograder/kernel ({node.module})"
                assert node.level == 1 or not (node.module or "").startswith("autograder"), path.name
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith("autograder"), f"{path.name} imports {alias.name}"


def test_the_sandbox_receives_the_kernel_package_alone():
    with zipfile.ZipFile(io.BytesIO(sandbox.kernel_archive())) as zf:
        names = set(zf.namelist())
        assert zf.read("autograder/__init__.py") == b""
    assert names == {"autograder/__init__.py"} | {f"autograder/kernel/{p.name}" for p in KERNEL.glob("*.py")}
    trusted = [p for p in (ROOT / "autograder").rglob("*.py") if KERNEL not in p.parents]
    assert len(trusted) > 20 and not any(f"autograder/{p.relative_to(ROOT / 'autograder')}" in names
                                         for p in trusted if p.name != "__init__.py" or p.parent != ROOT / "autograder")


def _grading_cells(assignment):
    nb = json.loads((ROOT / "source" / assignment / f"{assignment}.ipynb").read_text())
    for cell in nb["cells"]:
        meta = cell["metadata"].get("nbgrader", {})
        source = "".join(cell["source"])
        if cell["cell_type"] == "code" and meta.get("grade") and HIDDEN_BEGIN in source:
            yield meta["grade_id"], source


@pytest.mark.parametrize("assignment", sorted(registry.NOTEBOOKS))
def test_every_grading_cell_calls_the_test_of_its_grade_id(assignment):
    module = registry.NOTEBOOKS[assignment].checks
    cells = list(_grading_cells(assignment))
    assert cells
    for grade_id, source in cells:
        assert registry.hidden_test(assignment, grade_id) is not None, f"no hidden test {module}.{grade_id}"
        hidden = source.split(HIDDEN_BEGIN, 1)[1]
        assert f"from autograder.checks import {module} as hidden" in hidden, grade_id
        assert f"hidden.{grade_id}()" in hidden, grade_id


# --------------------------------------------------------------------------- nothing secret crosses


def run_locally(assignment, tests_link, on_test=lambda grade_id: None):
    """The reference solution's cells run here; each hidden test judged through ``tests_link(namespace)``."""
    import matplotlib

    matplotlib.use("Agg")
    nb = json.loads((ROOT / "source" / assignment / f"{assignment}.ipynb").read_text())
    namespace = {"__name__": "__main__"}
    verdicts = {}
    cwd = os.getcwd()
    os.chdir(ROOT / "source" / assignment)
    try:
        for cell in nb["cells"]:
            if cell["cell_type"] != "code":
                continue
            meta = cell["metadata"].get("nbgrader", {})
            source = "".join(cell["source"])
            if meta.get("grade") and HIDDEN_BEGIN in source:
                test = registry.hidden_test(assignment, meta["grade_id"])
                on_test(meta["grade_id"])
                try:
                    with link.using(tests_link(namespace)):
                        test()
                    verdicts[meta["grade_id"]] = "pass"
                except harness.GradingFailure as failure:
                    verdicts[meta["grade_id"]] = str(failure)
                continue
            code = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
            filename = f"<cell {len(linecache.cache)}>"  # with its source, as IPython keeps it (TorchScript reads it)
            linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
            exec(compile(code, filename, "exec"), namespace)
    finally:
        os.chdir(cwd)
    return verdicts


class RecordingLink(link.LocalLink):
    """Every request as sent (``requests``), and every tensor in them (``sent``)."""

    def __init__(self, namespace, requests, sent):
        super().__init__(namespace)
        self.requests, self.sent = requests, sent

    def exchange(self, request):
        text = wire.dumps(request)
        self.requests.append(text)
        self.sent += _tensors(json.loads(text), [])
        return super().exchange(request)


def _tensors(value, found):
    if isinstance(value, dict):
        if "$t" in value:
            found.append(wire.decode_tensor(value["$t"]).to(torch.float64))
        for v in value.values():
            _tensors(v, found)
    elif isinstance(value, list):
        for v in value:
            _tensors(v, found)
    return found


# Tests whose expected value is, by design, something the grader sent: a state c passed through unchanged,
# weights loaded into a cell and read back through state_dict().
ECHO_TESTS = {"rnn_cell_forward", "fused_parameters"}


@pytest.mark.parametrize("assignment", sorted(registry.NOTEBOOKS))
def test_no_seed_expected_value_or_oracle_output_is_sent_to_the_kernel(assignment, monkeypatch):
    monkeypatch.setattr(harness, "_run_seed", 271828182845904523)
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    requests, sent, wanted, echoes, current = [], [], [], set(), [""]

    def recording(original):
        def wrapper(got, want, *args, **kwargs):
            if isinstance(want, torch.Tensor):
                w = want.detach().to(torch.float64).clone()
                if any(t.shape == w.shape and torch.equal(t, w) for t in sent):
                    echoes.add(current[0])
                else:
                    wanted.append(w)
            return original(got, want, *args, **kwargs)

        return wrapper

    import sys

    for name, module in list(sys.modules.items()):
        if name.startswith("autograder.checks"):
            for fn in ("close", "expect_close"):
                if callable(getattr(module, fn, None)):
                    monkeypatch.setattr(module, fn, recording(getattr(module, fn)))
    verdicts = run_locally(assignment, lambda ns: RecordingLink(ns, requests, sent),
                           on_test=lambda grade_id: current.__setitem__(0, grade_id))
    assert set(verdicts.values()) == {"pass"}, verdicts
    assert requests and wanted
    assert echoes <= ECHO_TESTS, f"expected values equal to what the grader sent, in {echoes - ECHO_TESTS}"

    text = "\n".join(requests)
    assert "271828182845904523" not in text
    for grade_id, _ in _grading_cells(assignment):
        assert str(harness._seed(grade_id, "inputs")) not in text, "the seed of the grader's inputs was sent"
    informative = [w for w in wanted if w.numel() >= 2 and bool((w != w.flatten()[0]).any())]
    assert informative
    for want in informative:
        for t in sent:
            assert not (t.shape == want.shape and torch.allclose(t, want, atol=1e-12, rtol=0)), (
                f"an expected value of shape {tuple(want.shape)} was sent to the kernel")


def test_the_wire_refuses_what_is_not_plain_data():
    good = wire.encode({"x": torch.arange(6.0).reshape(2, 3), "n": (1, 2.5, None)})
    back = wire.decode(json.loads(json.dumps(good)))
    assert torch.equal(back["x"], torch.arange(6.0).reshape(2, 3)) and back["n"] == (1, 2.5, None)
    bad_length = {"$t": {"dtype": "float64", "shape": [4], "data": "AAAA"}}
    for bad in (bad_length, {"$t": {"dtype": "object", "shape": [], "data": ""}}, {"$pickle": "gASV"},
                ["untagged"], {"$h": 5}, {"$tuple": [{"$list": []}] * 3, "$extra": 1}):
        with pytest.raises(wire.WireError):
            wire.decode(bad)
    with pytest.raises(wire.WireError):
        wire.encode(object())


def test_the_probe_reports_student_errors_as_data():
    ns = {}
    exec("def boom(x):\n    raise ValueError('nope')\n", ns)
    local = link.LocalLink(ns)
    fn = local.exchange({"op": "lookup", "name": "boom"})["value"]
    reply = local.exchange({"op": "call", "h": fn["$h"], "args": {"$list": [1]}})
    assert reply["raised"]["type"] == "ValueError" and reply["raised"]["message"] == "nope"
    assert "value" not in reply


