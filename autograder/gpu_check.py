"""``make gpu-check``: the hidden tests give the same verdicts on ``DEVICE`` as on the CPU, through the real grader.

``python -m autograder.gpu_check [--assignments A ...] [--mutants N] [--seed S] [--out DIR]``

1. *Same verdicts.* Each notebook's reference solution and a sample of its zoo mutants (``SAMPLE``: the mistakes
   a device changes, such as states created with a fixed dtype or device, plain tensors, the ready-made LSTM that
   becomes cuDNN's on a GPU) are submitted to a throwaway course and graded twice by the batch of ``make
   autograde`` (staging, nbgrader, the sandboxed kernel, the hidden tests on the grader's side) with the same
   ``LSTM_GRADER_SEED``: once with ``DEVICE=cpu``, once with ``DEVICE``. Every grading cell's score, bug id and
   message must be identical, and every kernel of the second run must have booted on ``DEVICE``.
2. *TF32 off.* One more submission, the reference of notebook 1 with a cell of its own (``PROBE_CELL``), reports
   from inside the grading kernel PyTorch's TF32 switches for matmul and cuDNN and the error of a float32 matmul
   and convolution on the GPU against float64, with TF32 as the kernel has it (must be float32's) and, as the
   control that shows the measurement can see TF32, switched on for a moment. On the CPU: n/a.
3. *End to end.* That submission is graded by ``nbgrader autograde`` itself (the route of
   ``autograder/host/nbgrader_route.py``: the sandbox, on a GPU with its device nodes bound) and must get full marks
   from a kernel that booted on ``DEVICE``.
4. One summary table, printed and written to ``DIR/summary.md``; exit status 0 when every row holds, else 1.

With ``DEVICE=cpu`` the second run is on the CPU too: a check that grading is reproducible under one seed and that
the comparison works, by default on notebook 1 and two mutants (``CPU_SAMPLE``). The GPU machines this runs on have
Python 3.12 and a CUDA build of PyTorch but none of the course's other packages and no network: ``make gpu-wheels``
(``wheels``, here) downloads what they lack (``CARRY``) into ``.whl/``, and there ``make gpu-install`` (``install``,
run by the machine's ``python3``) makes ``.venv`` over that Python and its PyTorch with those wheels in it.
"""

import argparse
import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .settings import ENV
from .settings import load as load_settings

ROOT = Path(__file__).resolve().parents[1]
PROBE_STUDENT, PROBE_ASSIGNMENT = "gpu-probe", "01_lstm_cell"
PROBE_MARK = "GPU-CHECK "
SHOWN = 4  # differences of one submission spelled out in the table
E2E_TIMEOUT = 900  # seconds for `nbgrader autograde` on the probe student (one notebook, CUDA start-up included)
TF32_FREE = 1e-5  # float32 matmul error relative to the result: float32's is ~1e-7, TF32's (10-bit mantissa) ~1e-4
# Per notebook, the mutants worth grading on a device (zoo mutants, or the demo's planted bug where a notebook has
# no zoo), most telling first: `--mutants N` takes the first N.
SAMPLE = {
    "01_lstm_cell": ("default_state_hardcoded_dtype", "plain_tensor_weights", "ready_made_lstm"),
    "02_stacked_lstm": ("zeros_fixed_dtype", "ready_made", "default_state_assumes_batch"),
    "03_coupled_gate": ("fixed_dtype_states", "standard_lstm"),
    "04_peepholes": ("V_plain_tensors", "peephole_detached"),
    "05_training_lab": ("generator_not_passed",),
    "06_speed_ladder": ("gate_order_fi_swapped",),
    "07_real_data": ("generator_ignored", "state_not_detached"),
}
# On the CPU the second run only repeats the first (a check of the check): by default notebook 1 and 2 mutants.
CPU_SAMPLE = {"01_lstm_cell": 2}

# A cell the probe student adds to notebook 1: it reports from inside the grading kernel (a claim of the kernel,
# read by this check only, never by grading).
PROBE_CELL = '''\
import json as _json, warnings as _warnings
import torch as _torch
import torch.nn.functional as _F


def _gpu_check_errors():
    """Relative error of a float32 matmul and convolution on the GPU against float64 on the CPU."""
    g = _torch.Generator().manual_seed(0)

    def draw(*shape):
        return _torch.randn(*shape, generator=g, dtype=_torch.float64)

    errors = {}
    for name, fn, args in (("matmul", _torch.matmul, (draw(512, 512), draw(512, 512))),
                           ("conv", _F.conv1d, (draw(4, 64, 128), draw(64, 64, 5)))):
        want = fn(*args)
        got = fn(*(t.float().cuda() for t in args)).double().cpu()
        errors[name] = ((got - want).abs().max() / want.abs().max()).item()
    return errors


def _gpu_check():
    out = {"cuda": _torch.cuda.is_available(), "torch": _torch.__version__}
    with _warnings.catch_warnings():
        _warnings.simplefilter("ignore")
        out["matmul_allow_tf32"] = bool(_torch.backends.cuda.matmul.allow_tf32)
        out["cudnn_allow_tf32"] = bool(_torch.backends.cudnn.allow_tf32)
        out["float32_matmul_precision"] = _torch.get_float32_matmul_precision()
        if out["cuda"]:
            out["gpu"] = _torch.cuda.get_device_name()
            out["errors"] = _gpu_check_errors()
            kept = (_torch.backends.cuda.matmul.allow_tf32, _torch.backends.cudnn.allow_tf32)
            try:
                _torch.backends.cuda.matmul.allow_tf32 = _torch.backends.cudnn.allow_tf32 = True
                out["errors_tf32_on"] = _gpu_check_errors()
            finally:
                _torch.backends.cuda.matmul.allow_tf32, _torch.backends.cudnn.allow_tf32 = kept
    return out


try:
    print("GPU-CHECK " + _json.dumps(_gpu_check()))
except Exception as _err:
    print("GPU-CHECK " + _json.dumps({"error": f"{type(_err).__name__}: {_err}"}))
'''


# --------------------------------------------------------------------------- what a grading run gave


@dataclass(frozen=True)
class Verdict:
    """One grading cell as graded: its score, the bug id of its failure ("" when it passed) and its message."""

    score: float
    max_score: float
    bug: str
    message: str


@dataclass
class Graded:
    """One submission graded on one device: the batch's status, each grading cell's verdict, the devices its
    kernels booted on (their own report, from the grading log) and the text of the student's cells' outputs."""

    status: str
    cells: dict[str, Verdict] = field(default_factory=dict)
    booted: list[str] = field(default_factory=list)
    sandbox: str = ""
    printed: str = ""


@dataclass(frozen=True)
class Row:
    check: str
    result: str
    ok: bool
    detail: str = ""


def _cell_text(cell) -> str:
    """A cell's outputs as text: an error as ``Name: message``, streams as printed."""
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            parts.append(f"{out.get('ename')}: {out.get('evalue')}")
        elif out.get("output_type") == "stream":
            parts.append(str(out.get("text", "")).strip())
    return "\n".join(parts)


def collect(course, assignment: str, student: str, status: str) -> Graded:
    """What the gradebook, the graded notebook and the grading log hold for one submission."""
    from . import gradelog
    from .host import report
    from .host.batch import log_file
    from .host.submissions import nbgrader_meta, read

    graded = Graded(status)
    log = gradelog.read(log_file(course, assignment, student))
    graded.booted = [str(r.get("device", "?")) for r in log if r.get("kind") == "boot"]
    graded.sandbox = next((str(r.get("detail", "")) for r in log if r.get("kind") == "start"), "")
    verdicts = gradelog.verdicts(log_file(course, assignment, student))
    path = course.notebook("autograded", assignment, student)
    nb = read(path) if path.exists() else None
    messages = {nbgrader_meta(c).get("grade_id"): _cell_text(c) for c in (nb.cells if nb else [])}
    graded.printed = "\n".join(_cell_text(c) for c in (nb.cells if nb else []) if not nbgrader_meta(c))
    for row in report.scores(course, [student]):
        if row.assignment == assignment:
            bug = str(verdicts.get(row.grade_id, {}).get("bug", ""))
            graded.cells[row.grade_id] = Verdict(row.score, row.max_score, bug, messages.get(row.grade_id, ""))
    return graded


def differences(base: Graded, other: Graded, names: tuple[str, str] = ("cpu", "device")) -> list[str]:
    """Every way ``other`` was graded differently from ``base``, in words; empty when they are identical."""
    a, b = names
    found = [f"status {a}: {base.status}, {b}: {other.status}"] if base.status != other.status else []
    for gid in list(base.cells) + [g for g in other.cells if g not in base.cells]:
        x, y = base.cells.get(gid), other.cells.get(gid)
        if x is None or y is None:
            found.append(f"{gid}: graded on {a if y is None else b} only")
            continue
        if (x.score, x.max_score) != (y.score, y.max_score):
            found.append(f"{gid}: score {x.score:g}/{x.max_score:g} on {a}, {y.score:g}/{y.max_score:g} on {b}")
        if x.bug != y.bug:
            found.append(f"{gid}: bug id {x.bug or '(passed)'} on {a}, {y.bug or '(passed)'} on {b}")
        if x.message != y.message:
            found.append(f"{gid}: message on {a}: {x.message[:160]!r}; on {b}: {y.message[:160]!r}")
    return found


def compare(name: str, base: Graded, other: Graded, names: tuple[str, str]) -> Row:
    """The table's row for one submission graded on two devices."""
    score = sum(v.score for v in other.cells.values())
    top = sum(v.max_score for v in other.cells.values())
    found = differences(base, other, names)
    if not other.cells:
        found.append(f"no grades on {names[1]} (status {other.status})")
    if found:
        more = f"; and {len(found) - SHOWN} more" if len(found) > SHOWN else ""
        return Row(name, "DIFFERENT", False, "; ".join(found[:SHOWN]) + more)
    return Row(name, "identical", True, f"{len(other.cells)} grading cells, {score:g}/{top:g}, {other.status}")


def booted_row(device: str, graded: dict) -> Row:
    """Every kernel of the run on ``device`` booted there (the kernels' own report in the grading log)."""
    seen = [d for g in graded.values() for d in g.booted]
    wrong = sorted({f"{a} / {s}" for (a, s), g in graded.items() if not g.booted or set(g.booted) != {device}})
    if wrong:
        return Row(f"kernels booted on {device}", "NO", False, f"{len(wrong)} submission(s) not: {', '.join(wrong)}")
    return Row(f"kernels booted on {device}", "yes", True, f"{len(seen)} kernel(s), {len(graded)} submission(s)")


# --------------------------------------------------------------------------- TF32 and the end-to-end run


def probe_report(printed: str) -> dict | None:
    """The JSON the probe cell printed, if it did."""
    for line in printed.splitlines():
        if line.startswith(PROBE_MARK):
            with contextlib.suppress(ValueError):
                return json.loads(line[len(PROBE_MARK):])
    return None


def tf32_row(device: str, report: dict | None) -> Row:
    """TF32 is off for matmul and cuDNN in the grading kernel: its switches, and a float32 matmul as exact as
    float32 (the control: with TF32 switched on for a moment, the same matmul shows it)."""
    name = "TF32 off in the grading kernel (matmul, cuDNN)"
    if not device.startswith("cuda"):
        return Row(name, "n/a (cpu)", True, "TF32 is a GPU matmul mode")
    if not report or "error" in report or not report.get("cuda"):
        return Row(name, "NOT SHOWN", False, f"the probe cell reported {report!r}")
    errors, control = report.get("errors", {}), report.get("errors_tf32_on", {})
    switches = f"allow_tf32: matmul {report['matmul_allow_tf32']}, cuDNN {report['cudnn_allow_tf32']}"
    numbers = ", ".join(f"{k} {errors.get(k, float('nan')):.1e} (TF32 on: {control.get(k, float('nan')):.1e})"
                        for k in ("matmul", "conv"))
    detail = f"{switches}; float32 error vs float64 on {report.get('gpu', '?')}: {numbers}"
    off = not report["matmul_allow_tf32"] and not report["cudnn_allow_tf32"] and \
        all(errors.get(k, 1.0) < TF32_FREE for k in ("matmul", "conv"))
    if off and not control.get("matmul", 0.0) >= TF32_FREE:
        detail += " (the control did not show TF32 either: this GPU may not use it)"
    return Row(name, "off" if off else "ON", off, detail)


def end_to_end(course, device: str, env: dict) -> tuple[Row, Graded]:
    """``nbgrader autograde`` on the probe student, as an instructor runs it: full marks, on ``device``."""
    name = f"nbgrader autograde {PROBE_ASSIGNMENT} --student={PROBE_STUDENT}"
    try:
        with environment(env):
            done = course.nbgrader("autograde", PROBE_ASSIGNMENT, f"--student={PROBE_STUDENT}", "--force",
                                   check=False, timeout=E2E_TIMEOUT)
    except subprocess.TimeoutExpired:
        done = subprocess.CompletedProcess([], 1, "", f"nbgrader autograde ran past {E2E_TIMEOUT} s")
    graded = collect(course, PROBE_ASSIGNMENT, PROBE_STUDENT, "graded" if done.returncode == 0 else "failed")
    score = sum(v.score for v in graded.cells.values())
    top = sum(v.max_score for v in graded.cells.values())
    problems = []
    if done.returncode != 0:
        problems.append(f"exit {done.returncode}: {(done.stdout + done.stderr).strip()[-600:]}")
    if not graded.cells or score != top:
        lost = [f"{g}: {v.message[:120]}" for g, v in graded.cells.items() if v.score < v.max_score]
        problems.append(f"{score:g}/{top:g}" + (f" ({'; '.join(lost)})" if lost else ""))
    if set(graded.booted) != {device}:
        problems.append(f"kernel booted on {graded.booted or 'nothing'}, not {device}")
    sandbox = graded.sandbox or "no kernel started"
    if problems:
        return Row(name, "FAILED", False, "; ".join(problems) + f" [{sandbox}]"), graded
    return Row(name, "full marks", True, f"{score:g}/{top:g} on {device}; kernel {sandbox}"), graded


# --------------------------------------------------------------------------- the grading runs


@contextlib.contextmanager
def environment(values: dict):
    """``os.environ`` with ``values`` set while the block runs (the batch hands its environment to nbgrader)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def sample(assignments: list[str], per_notebook: int | None) -> dict:
    """assignment -> the mutants of ``SAMPLE`` to grade (``per_notebook`` of them; None: all)."""
    from . import zoo
    from .demo import PLANTED

    chosen = {}
    for assignment in assignments:
        known = {m.name: m for m in zoo.mutants(assignment)}
        if assignment in PLANTED:
            known.setdefault(PLANTED[assignment].name, PLANTED[assignment])
        names = SAMPLE.get(assignment, ())[:per_notebook]
        missing = [n for n in names if n not in known]
        if missing:
            raise SystemExit(f"gpu_check.SAMPLE names mutants {assignment} does not have: {', '.join(missing)}")
        chosen[assignment] = [known[n] for n in names]
    return chosen


def prepare(root: Path, plan: dict, say):
    """A throwaway course: the release of each planned assignment, its reference and mutants submitted, and the
    probe student on notebook 1."""
    import nbformat

    from .host.course import copy_course
    from .host.submissions import fill, read, reference_answers, submit

    course = copy_course(root)
    for assignment, mutants in plan.items():
        say(f"releasing {assignment} and submitting its reference and {len(mutants)} mutant(s) ...")
        course.nbgrader("generate_assignment", assignment, "--force")
        answers = reference_answers(read(course.notebook("source", assignment)))
        release = read(course.notebook("notebooks", assignment))
        submit(course, "reference", assignment, fill(release, answers))
        for m in mutants:
            submit(course, f"bug-{m.name}", assignment, fill(release, m.apply(answers)))
    if PROBE_ASSIGNMENT not in plan:
        course.nbgrader("generate_assignment", PROBE_ASSIGNMENT, "--force")
    release = read(course.notebook("notebooks", PROBE_ASSIGNMENT))
    nb = fill(release, reference_answers(read(course.notebook("source", PROBE_ASSIGNMENT))))
    nb.cells.append(nbformat.v4.new_code_cell(PROBE_CELL))
    submit(course, PROBE_STUDENT, PROBE_ASSIGNMENT, nb)
    return course


def grade_on(course, device: str, env: dict, say) -> dict:
    """Grade every submission but the probe student's with ``DEVICE=device``: (assignment, student) -> Graded."""
    from .host.batch import autograde

    with environment({**env, ENV["device"]: device}):
        students = [s for s in course.students() if s != PROBE_STUDENT]
        result = autograde(course, _released(course), students, jobs=load_settings().jobs, say=say)
    return {(o.assignment, o.student): collect(course, o.assignment, o.student, o.status) for o in result.outcomes}


def _released(course) -> list[str]:
    return [a for a in course.assignments if course.notebook("notebooks", a).exists()]


def check(assignments: list[str], per_notebook: int | None, seed: int, say, out: Path) -> list[Row]:
    """Steps 1 to 3 of the module's docstring, on the settings' ``DEVICE``: the table's rows. The grading logs of
    both runs go to ``out`` (``grading-log-cpu.txt``, ``grading-log-device.txt``)."""
    from .host import nbgrader_route, sandbox
    from .host.batch import GRADING_DIR
    from .host.course import Course

    device = load_settings().device
    why = nbgrader_route.device_problem()
    if why:
        return [Row(f"DEVICE={device}", "MISSING", False, why)]
    mode, why = sandbox.resolve_mode()
    rows = [Row("sandbox", mode, True, why)]
    plan = sample(assignments, per_notebook)
    env = {ENV["grader_seed"]: str(seed)}
    names = ("cpu", device if device != "cpu" else "cpu again")
    with tempfile.TemporaryDirectory(prefix="lstm-gpu-check-") as tmp:
        base = prepare(Path(tmp) / "cpu", plan, say)
        shutil.copytree(base.root, Path(tmp) / "device")
        other = Course(root=Path(tmp) / "device", db_url=f"sqlite:///{Path(tmp) / 'device' / 'gradebook.db'}")
        say("grading on cpu ...")
        on_cpu = grade_on(base, "cpu", env, say)
        say(f"grading on {device} ...")
        on_device = grade_on(other, device, env, say)
        for key in sorted(set(on_cpu) | set(on_device)):
            rows.append(compare(" / ".join(key), on_cpu.get(key, Graded("not graded")),
                                on_device.get(key, Graded("not graded")), names))
        rows.append(booted_row(device, on_device))
        say(f"grading the probe student through nbgrader autograde on {device} ...")
        e2e, graded = end_to_end(other, device, {**env, ENV["device"]: device})
        rows += [tf32_row(device, probe_report(graded.printed)), e2e]
        for course, name in ((base, "cpu"), (other, "device")):
            log = course.dir("autograded") / GRADING_DIR / "grading-log.txt"
            if log.exists():
                shutil.copyfile(log, out / f"grading-log-{name}.txt")
    return rows


def table(rows: list[Row], heading: str) -> str:
    """The summary: a markdown table, one line per row, and whether all of them hold."""
    def cell(text: str) -> str:
        return " ".join(str(text).split()).replace("|", "\\|")

    lines = [heading, "", "| | check | result | detail |", "|---|---|---|---|"]
    lines += [f"| {'ok' if r.ok else '!!'} | {cell(r.check)} | {cell(r.result)} | {cell(r.detail)} |" for r in rows]
    failed = sum(not r.ok for r in rows)
    lines += ["", "all rows hold" if not failed else f"{failed} row(s) do NOT hold"]
    return "\n".join(lines)


def run_check(args) -> int:
    """The check with the command line's choices (on the CPU, by default only ``CPU_SAMPLE``); the table printed
    and written; 0 when every row holds."""
    import time

    import torch

    device = load_settings().device
    on_cpu = device == "cpu"
    assignments = args.assignments or (list(CPU_SAMPLE) if on_cpu else list(SAMPLE))
    mutants = args.mutants if args.mutants is not None else (CPU_SAMPLE.get(assignments[0]) if on_cpu else None)
    seed = args.seed or secrets.randbits(62)
    start = time.monotonic()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # nbgrader runs `alembic` from PATH, and the sandbox looks for bwrap there: this environment's scripts first
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    rows = check(assignments, mutants, seed, say=lambda line: print(line, flush=True), out=out)
    heading = (f"# gpu-check: DEVICE={device} against cpu (LSTM_GRADER_SEED={seed}, torch {torch.__version__}, "
               f"{time.monotonic() - start:.0f} s)")
    text = table(rows, heading)
    (out / "summary.md").write_text(text + "\n")
    print(text)
    print(f"written to {out / 'summary.md'}")
    return 0 if all(r.ok for r in rows) else 1


# --------------------------------------------------------------------------- what the GPU machine needs carried

# What this check imports that the GPU machines lack (they have PyTorch, NumPy, matplotlib, scikit-learn, Jinja2,
# PyYAML, requests, psutil, Pygments, ...): the modules a whole `make gpu-check` loaded in a run traced on an
# environment like theirs, and what IPython needs to show a traceback. Not carried: nbgrader's requirements that no
# grading step imports (JupyterLab, Notebook, ipywidgets, jupyter_server's own requirements).
CARRY = (
    # the grader: nbgrader, the gradebook, nbclient and nbconvert
    "nbgrader", "nbclient", "nbconvert", "nbformat", "jupyter_client", "jupyter_core", "jupyter_server", "traitlets",
    "pyzmq", "tornado", "platformdirs", "SQLAlchemy", "alembic", "Mako", "RapidFuzz", "fastjsonschema", "jsonschema",
    "jsonschema-specifications", "referencing", "rpds-py", "mistune", "bleach", "tinycss2", "webencodings",
    "beautifulsoup4", "soupsieve", "defusedxml", "pandocfilters", "jupyterlab_pygments",
    # jsonschema's format checkers, loaded when present
    "arrow", "tzdata", "fqdn", "isoduration", "jsonpointer", "rfc3339-validator", "rfc3986-validator",
    "rfc3987-syntax", "lark", "uri-template", "webcolors",
    # the kernel: ipykernel and IPython
    "ipykernel", "ipython", "ipython_pygments_lexers", "comm", "debugpy", "matplotlib-inline", "nest-asyncio2",
    "jedi", "parso", "prompt_toolkit", "wcwidth", "pexpect", "ptyprocess", "stack-data", "executing", "asttokens",
    "pure_eval",
)
NEVER_CARRIED = ("torch", "triton", "nvidia-")  # the machine's own CUDA build is what the check is about
GPU_PYTHON = "3.12"
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
CARRY_LIMIT_MB = 50  # the checkout travels too, in 64 MiB
MACHINE_PTH = "gpu-machine.pth"  # in the .venv `install` makes: the machine's own site-packages, PyTorch's


def pinned(names, requirements: Path = ROOT / "requirements.txt") -> dict[str, str]:
    """name -> version: the pin of requirements.txt, else the version installed here (a dependency of a pin, as
    ``make setup`` resolved it)."""
    from importlib.metadata import PackageNotFoundError, version

    pins = {}
    for line in requirements.read_text().splitlines():
        spec = line.split("#")[0].strip()
        if "==" in spec:
            name, _, ver = spec.partition("==")
            pins[_canonical(name.split("[")[0])] = ver.strip()
    found = {}
    for name in names:
        try:
            found[name] = pins.get(_canonical(name)) or version(name)
        except PackageNotFoundError:
            raise SystemExit(f"{name} is neither pinned in requirements.txt nor installed here (make setup)") from None
    return found


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def gather(dest: Path, python: str = GPU_PYTHON) -> int:
    """Download the wheels of ``CARRY`` for the GPU machine's Python (``python``) into ``dest``, and bubblewrap's
    Debian package where apt-get can fetch it; fail when they take more than ``CARRY_LIMIT_MB``."""
    dest.mkdir(parents=True, exist_ok=True)
    wanted = [f"{name}=={ver}" for name, ver in pinned(CARRY).items()
              if not list(dest.glob(f"{_canonical(name).replace('-', '_')}-{ver}-*.whl"))]
    if wanted:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
                        "--only-binary=:all:", "--python-version", python, "--implementation", "cp",
                        *[f"--platform={p}" for p in PLATFORMS], "-d", str(dest), *wanted], check=True)
    if shutil.which("apt-get") and not list(dest.glob("bubblewrap_*.deb")):
        done = subprocess.run(["apt-get", "download", "bubblewrap"], cwd=dest, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"bubblewrap's package not fetched (the GPU machine grades without a sandbox unless it has "
                  f"bwrap): {done.stderr.strip()[-300:]}")
    files = sorted(p for p in dest.iterdir() if p.is_file())
    total = sum(p.stat().st_size for p in files)
    for p in files:
        print(f"{p.stat().st_size / 2**20:8.2f} MiB  {p.name}")
    print(f"{total / 2**20:8.2f} MiB  in all, {len(files)} files in {dest} (limit {CARRY_LIMIT_MB} MiB)")
    return 0 if total <= CARRY_LIMIT_MB * 2**20 else 1


def install(wheels: Path, venv: Path = ROOT / ".venv") -> int:
    """On the GPU machine, run by its own ``python3``: ``.venv`` made over that Python, its PyTorch and packages seen
    through a ``.pth`` file (never replaced), the carried wheels installed into it (no index, no dependencies), the
    checkout on its path (the kernel launcher runs ``python -I``) and bwrap from the carried package where the
    machine has none; then ``make setup`` counts as done, and ``make gpu-check`` runs there as it does here."""
    found = sorted(wheels.glob("*.whl"))
    own = [w.name for w in found if _canonical(w.name.split("-")[0]).startswith(NEVER_CARRIED)]
    if not found or own:
        raise SystemExit(f"{wheels}: " + (f"never carried, the machine has its own: {', '.join(own)}" if own else
                                          "no wheels: run `make gpu-wheels` where pip can download them"))
    python = venv / "bin" / "python"
    made = python.exists() and list(venv.glob(f"lib/python*/site-packages/{MACHINE_PTH}"))
    if python.exists() and not made:
        raise SystemExit(f"{venv} exists and is not one `make gpu-install` made: this machine has the course's "
                         "environment already")
    if not made:
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    theirs = [p for p in dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib")) if os.path.isdir(p)]
    (site / MACHINE_PTH).write_text("".join(f"{p}\n" for p in theirs))
    (site / "lstm-course-checkout.pth").write_text(f"{ROOT}\n")
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-index",
                    "--no-deps", "--no-compile", "--upgrade", *map(str, found)], check=True)
    path = f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"  # the Makefile's PATH
    debs = sorted(wheels.glob("bubblewrap_*.deb"))
    if not shutil.which("bwrap", path=path) and debs:
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(["dpkg-deb", "-x", str(debs[-1]), tmp], check=True)
            shutil.copy2(Path(tmp) / "usr" / "bin" / "bwrap", venv / "bin" / "bwrap")
    (venv / ".ready").touch()  # `make setup` is done: a later run of the Makefile does not try to download
    print(f"{venv}: {len(found)} carried wheels, and {', '.join(theirs)} (PyTorch) of {sys.executable}; "
          f"bwrap: {shutil.which('bwrap', path=path) or 'none (grading without a sandbox)'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder.gpu_check", description=__doc__.splitlines()[0])
    parser.add_argument("command", nargs="?", default="check", choices=["check", "wheels", "install"])
    parser.add_argument("--assignments", nargs="*",
                        help="check: these notebooks (default: every one; with DEVICE=cpu, CPU_SAMPLE's)")
    parser.add_argument("--mutants", type=int, default=None,
                        help="check: mutants per notebook (default: all of SAMPLE's; with DEVICE=cpu, CPU_SAMPLE's)")
    parser.add_argument("--seed", type=int, default=0, help="check: LSTM_GRADER_SEED of both runs (default: fresh)")
    parser.add_argument("--out", default="gpu-check", help="check: where summary.md goes")
    parser.add_argument("--dest", default=str(ROOT / ".whl"), help="wheels, install: the folder of wheels")
    parser.add_argument("--python-version", default=GPU_PYTHON, help="wheels: for this Python (the GPU machine's)")
    args = parser.parse_args(argv)
    if args.command == "wheels":
        return gather(Path(args.dest), args.python_version)
    if args.command == "install":
        return install(Path(args.dest))
    return run_check(args)


if __name__ == "__main__":
    sys.exit(main())
