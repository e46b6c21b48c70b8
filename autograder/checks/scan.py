"""The grader's scan of the submitted source: what the student's cells may not use, decided in the grader's
process on the text of the cells. This is what binds; the kernel's blocks (``autograder.kernel.blockers``) are
defence in depth behind it, since student code controls its own kernel.

The scan reads the code IPython really runs: each cell transformed as IPython does (``%time x``, ``!ls`` and
``%%capture`` become calls of ``get_ipython()``), then parsed; the code that the magics of ``MAGICS`` run as
Python is scanned the same way, recursively. Strings and comments do not count. Three kinds of finding:

- ``ready-made``: one of PyTorch's LSTMs (``nn.LSTM``, ``torch.lstm_cell``, ``torch.ops.aten.lstm``, ...). A type
  annotation, or the class an ``isinstance`` tests against, does not count.
- ``evasion``: code that reaches around the rules: torch's C layer and raw operators (``torch._C``, ``_VF``,
  ``torch.ops``, ``DisableTorchFunction``), code run from strings or data (``exec``, ``eval``, ``compile``,
  ``__import__``, ``importlib``, ``pickle``), the interpreter's and the kernel's internals (``sys.modules``,
  ``gc``, ``autograder``), ``getattr`` with a name built at run time on a module or on anything reached from one
  (on the student's own objects, ``getattr(self, f"W_{g}")``, it is fine), IPython's shell object, and the
  magics whose code the scan cannot see (``%run``, ``%rerun``, a magic it does not know). Shell escapes
  (``!cmd``, ``%%bash``) run in another process and are no finding.
- ``forbidden``: an exercise's own rule (``FORBIDDEN_IN``): notebook 1's ``sigmoid`` answer may not use PyTorch's
  sigmoid in any spelling (``blockers.FORBIDDEN_NAMES``), and no cell of the student's before its last grading
  cell may rebind ``sigmoid`` to one.

``withheld`` turns findings into points withheld, per grading cell. Code stays in the kernel for every test
after it, so a ready-made or evasion finding costs every exercise graded after its cell: for an answer cell,
its own exercise and the later ones; for a cell the student added, every exercise with a grading cell after it.
A forbidden finding costs its own exercise only. Not guaranteed: a module laundered through indirection the
scan does not follow (a function stored in a container, then called with ``torch``) still escapes it.
"""

import ast
import functools
import io
import tokenize
from dataclasses import dataclass
from types import SimpleNamespace

from ..cells import exercises, nbgrader_meta

READY_MADE = frozenset({"LSTM", "LSTMCell", "lstm", "lstm_cell", "_thnn_fused_lstm_cell", "mkldnn_rnn_layer",
                        "_cudnn_rnn", "miopen_rnn", "quantized_lstm", "quantized_lstm_cell", "_lstm_mps", "RNNBase"})
AMBIGUOUS = frozenset({"lstm"})  # a ready-made name only on a module (``torch.lstm``; ``self.lstm`` is the student's)

_C_LAYER = "PyTorch's C layer and raw operators, which go around the grader's watch"
_CODE = "code run from strings or data, which the grader cannot read"
_INSIDE = "the interpreter's or the kernel's internals"
_NAMES = "an attribute looked up by a name built at run time"
_IPYTHON = "IPython's shell, which runs code from strings and changes how cells are read"
# identifier (a name, an attribute, a part of an import) -> why it is evasion
EVASION = {
    **dict.fromkeys(["_C", "_VF", "_VariableFunctions", "_VariableFunctionsClass", "DisableTorchFunction",
                     "DisableTorchFunctionSubclass", "_DisableTorchDispatch"], _C_LAYER),
    **dict.fromkeys(["__import__", "importlib", "runpy", "marshal", "pickle", "dill", "cloudpickle", "codeop"], _CODE),
    **dict.fromkeys(["builtins", "__builtins__", "autograder", "gc", "ctypes", "__globals__", "__subclasses__"],
                    _INSIDE),
    **dict.fromkeys(["__getattribute__", "getattr_static", "attrgetter", "methodcaller"], _NAMES),
    **dict.fromkeys(["autocall", "ast_transformers", "input_transformers_cleanup", "input_transformers_post",
                     "input_transformer_manager"], _IPYTHON),
}
EVASION_NAMES = {"exec": _CODE, "eval": _CODE, "compile": _CODE, "get_ipython": _IPYTHON}  # as bare names only
EVASION_IMPORTS = {"code": _CODE}  # as modules only (``code`` is a fine variable name)
EVASION_ON_MODULE = {"ops": _C_LAYER, "modules": _INSIDE, "meta_path": _INSIDE, "path_hooks": _INSIDE,
                     "path_importer_cache": _INSIDE, "__dict__": _NAMES, "exec": _CODE, "eval": _CODE,
                     "sys": _INSIDE}  # as attributes of a module (``torch.ops``; ``self.modules()`` is fine)
EVASION_QUALIFIED = {"sys.path": _INSIDE, "builtins.compile": _CODE}
BY_NAME = frozenset({"getattr", "setattr", "delattr"})
MODULE_MAKERS = frozenset({"getattr", "vars", "globals", "locals", "__import__", "import_module"})

# magic -> how its code runs: "python" (its line and its cell are Python), "config" (``cfg.`` + the line is
# exec'd), "import" (the line names a module to import), "none" (no Python of the kernel's runs: display,
# files, shell, another process). A magic not listed (%run, %rerun, %macro, %store, %autocall, %alias_magic,
# %code_wrap, %edit, one the student defined) is evasion: the scan cannot see its code.
MAGICS = {
    **dict.fromkeys(["time", "timeit", "prun", "debug", "capture"], "python"),
    "config": "config",
    **dict.fromkeys(["load_ext", "reload_ext", "unload_ext"], "import"),
    **dict.fromkeys([
        "system", "sx", "sc", "!", "bash", "sh", "script", "perl", "ruby", "python", "python2", "python3", "pypy",
        "cd", "ls", "ll", "lf", "lk", "lx", "ldir", "cp", "mv", "rm", "rmdir", "mkdir", "cat", "pwd", "pushd", "popd",
        "dirs", "dhist", "bookmark", "writefile", "file", "html", "HTML", "svg", "SVG", "javascript", "js", "latex",
        "markdown", "page", "pprint", "precision", "colors", "xmode", "pinfo", "pinfo2", "pdef", "pdoc", "pfile",
        "psource", "psearch", "pycat", "who", "who_ls", "whos", "lsmagic", "magic", "quickref", "history", "hist",
        "logstate", "logstart", "logon", "logoff", "logstop", "tb", "matplotlib", "gui", "env", "set_env", "pip",
        "conda", "mamba", "micromamba", "uv", "autosave", "clear", "less", "more", "man", "connect_info",
        "doctest_mode", "autoawait", "reset", "reset_selective", "xdel", "killbgscripts", "pdb", "automagic",
        "rehashx", "alias", "unalias", "load", "loadpy", "rep", "recall", "save", "pastebin", "notebook", "pylab",
        "autoreload", "aimport"], "none"),
}
MAX_DEPTH = 8  # magics inside magics


@dataclass(frozen=True)
class Finding:
    """One use the rules do not allow, where it is (``cell``: the notebook's cell index, ``line``: 1-based)."""

    kind: str  # "ready-made", "evasion" or "forbidden"
    cell: int
    line: int
    code: str  # that line of the cell
    what: str  # what was used, and (for evasion) why it counts
    exercise: str = ""  # a forbidden finding's exercise (a key of ``FORBIDDEN_IN``)

    @property
    def bug(self) -> str:
        if self.kind == "forbidden":
            return f"forbidden_{FORBIDDEN_IN[self.exercise][0]}"
        return {"ready-made": "ready_made_lstm", "evasion": "evasion"}[self.kind]

    def where(self) -> str:
        return f"cell {self.cell + 1}, line {self.line}: `{self.code}`"

    def source_record(self) -> dict:
        """The grading-log record of the finding itself (``autograder.gradelog.KINDS``)."""
        return {"kind": f"{self.kind}-source", "cell": self.cell, "detail": f"{self.where()} ({self.what})"}

    def review_record(self) -> dict:
        """The fields a ``withheld`` record carries besides the hidden test's own outcome (the class report's
        list for review reads them)."""
        return {"finding": self.where(), "what": self.what, "rule": self.kind}

    def message(self, outputs=()) -> str:
        """What the student reads in each grading cell withheld; ``outputs``: what the hidden test gave."""
        if self.kind == "ready-made":
            text = (f"PyTorch's ready-made LSTM appears in your code ({self.where()}). Write the recurrence "
                    "yourself: the hidden tests give no points to the exercise it is in, nor to those graded after "
                    "that cell.")
        elif self.kind == "evasion":
            text = (f"Your code uses {self.what} ({self.where()}). The grader gives no points to the exercise "
                    "where such code is, nor to those graded after that cell; your instructor reviews each case "
                    "and can give the points back.")
        else:
            text = f"{FORBIDDEN_IN[self.exercise][1]}: {self.where()} uses {self.what}."
        return text + own_verdict(outputs)


def own_verdict(outputs) -> str:
    """What the hidden test said on its own, from the cell's outputs."""
    for out in outputs:
        if out.get("output_type") == "error":
            return f" On its own, the hidden test said: {out.get('ename')}: {str(out.get('evalue'))[:400]}"
    if any(out.get("output_type") == "stream" for out in outputs):
        return " On its own, the hidden test passed."
    return ""


# answer cell (grade_id) -> (rule of ``blockers.FORBIDDEN_NAMES``, what the student is told)
FORBIDDEN_IN = {"sigmoid": ("sigmoid", "sigmoid must be written from torch.exp, without PyTorch's own sigmoid")}


def _forbidden_names(rule: str) -> frozenset:
    from ..kernel.blockers import FORBIDDEN_NAMES  # torch; the grader has it loaded by then

    return FORBIDDEN_NAMES[rule]


# --------------------------------------------------------------------------- reading a cell as IPython does


@dataclass
class _Program:
    tree: ast.Module
    offset: int  # raw line of the cell = offset + line in ``tree``


def _parse(text: str):
    try:
        return compile(text, "<cell>", "exec", ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    except (SyntaxError, ValueError):
        return None


@functools.cache
def _transformer():
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager()


def _transform(text: str) -> str:
    try:
        return _transformer().transform_cell(text)
    except Exception:  # IPython could not read it: the kernel cannot run it either
        return text


def unfold(text: str, offset: int = 0, depth: int = 0) -> tuple[list, list]:
    """The Python programs a cell runs (itself, and the code inside its magics), and the findings of reading it:
    (``_Program``s, [(line, kind, what)])."""
    if depth > MAX_DEPTH:
        return [], [(offset + 1, "evasion", "magics nested deeper than the grader reads")]
    code = _transform(text)
    tree = _parse(code)
    if tree is None:
        return _unparsed(text, offset, depth)
    programs, hits = [_Program(tree, offset)], []
    for node in ast.walk(tree):
        magic = _magic_call(node)
        if magic is not None:
            more, found = _magic(*magic, offset + node.lineno, depth)
            programs += more
            hits += found
    return programs, hits


def _magic_call(node):
    """(method, [argument or None]) of a call ``get_ipython().method(...)``; None for anything else."""
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Call)
            and isinstance(node.func.value.func, ast.Name) and node.func.value.func.id == "get_ipython"):
        args = [a.value if isinstance(a, ast.Constant) and isinstance(a.value, str) else None for a in node.args]
        return node.func.attr, args
    return None


def _magic(method: str, args: list, at: int, depth: int) -> tuple[list, list]:
    """What a magic runs: ``at`` is the raw line of the magic (a cell magic's code starts on the next)."""
    if method in ("system", "getoutput"):
        return [], []  # a shell: another process
    if method not in ("run_line_magic", "run_cell_magic") or not args or args[0] is None:
        return [], [(at, "evasion", _IPYTHON)]
    name = args[0]
    how = MAGICS.get(name)
    if name.startswith("%"):  # a cell magic below a cell's first line: IPython stops with an error
        return [], []
    if how is None:
        return [], [(at, "evasion", f"the magic %{name}, whose code the grader cannot see")]
    if None in args[1:]:
        return [], [(at, "evasion", f"the magic %{name} with code built at run time")]
    line, cell = args[1] if len(args) > 1 else "", args[2] if len(args) > 2 else None
    programs, hits = [], []
    if how == "python":
        for start in _suffixes(line):  # options first (%timeit -n 3 stmt): every tail that is code
            more, found = unfold(start, at - 1, depth + 1)
            programs, hits = programs + more, hits + found
        if cell is not None:
            more, found = unfold(cell, at, depth + 1)
            programs, hits = programs + more, hits + found
    elif how == "config":
        more, found = unfold("cfg." + line, at - 1, depth + 1)
        programs, hits = more, found
    elif how == "import":
        for module in line.split():
            if not module.startswith("-") and module.replace(".", "").replace("_", "").isalnum():
                more, found = unfold(f"import {module}", at - 1, depth + 1)
                programs, hits = programs + more, hits + found
    return programs, hits


def _suffixes(line: str) -> list[str]:
    """``line`` and each of its tails after a space that parses as Python (a magic's options come first)."""
    words = line.split(" ")
    tails = [" ".join(words[k:]).strip() for k in range(len(words))]
    return [t for t in dict.fromkeys(tails) if t and _parse(t) is not None] or [line]


def _unparsed(text: str, offset: int, depth: int) -> tuple[list, list]:
    """A cell that does not parse: a one-line automagic (``time x = 1``) is read as the magic it is; otherwise
    its names still count (the kernel may read it differently once the student changed IPython)."""
    lines = text.strip().splitlines()
    if len(lines) == 1 and lines[0].split(" ")[0] in MAGICS:
        name, _, rest = lines[0].partition(" ")
        return _magic("run_line_magic", [name, rest], offset + 1, depth)
    hits, previous = [], ""
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            row, name, dotted = offset + tok.start[0], tok.string, previous == "."
            if tok.type == tokenize.NAME and (name in EVASION or (name in EVASION_NAMES and not dotted)):
                hits.append((row, "evasion", EVASION.get(name) or EVASION_NAMES[name]))
            elif tok.type == tokenize.NAME and name in READY_MADE - AMBIGUOUS and dotted:
                hits.append((row, "ready-made", name))
            if tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT):
                previous = tok.string
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass
    return [], hits


# --------------------------------------------------------------------------- what a name stands for


def _names_in(target) -> set[str]:
    """The names an assignment target binds (``a, *b = ...``; not ``self`` in ``self.x = ...``)."""
    if isinstance(target, ast.Name):
        return {target.id}
    if isinstance(target, (ast.Tuple, ast.List)):
        return set().union(*(_names_in(e) for e in target.elts))
    if isinstance(target, ast.Starred):
        return _names_in(target.value)
    return set()


class _Context:
    """What the notebook's names are: ``modules`` (name -> dotted path, bound by an import in any code cell),
    ``aliases`` (names the student's cells bind to a module or to something reached from one: by assignment,
    loop, ``with``, a parameter's default or an argument at a call) and ``returns_module`` (the student's
    functions that return one)."""

    def __init__(self, every: list, student: list):
        self.modules: dict[str, str] = {}
        for program in every:
            for node in ast.walk(program.tree):
                if isinstance(node, ast.Import):
                    for a in node.names:
                        self.modules[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
                elif isinstance(node, ast.ImportFrom) and node.module:
                    for a in node.names:
                        self.modules[a.asname or a.name] = f"{node.module}.{a.name}"
        self.aliases: set[str] = set()
        self.returns_module: set[str] = set()
        trees = [p.tree for p in student]
        functions = _functions(trees)
        for _ in range(12):  # until nothing new is learnt
            size = len(self.aliases) + len(self.returns_module)
            for tree in trees:
                for node in ast.walk(tree):
                    self._learn(node, functions)
            if len(self.aliases) + len(self.returns_module) == size:
                break

    def qualified(self, node) -> str | None:
        """``torch.nn.LSTM`` for ``nn.LSTM`` after ``import torch.nn as nn``; None if not rooted at an import."""
        if isinstance(node, ast.Name):
            return self.modules.get(node.id)
        if isinstance(node, ast.Attribute):
            base = self.qualified(node.value)
            return f"{base}.{node.attr}" if base else None
        return None

    def module_like(self, node) -> bool:
        """Whether ``node`` is, or may be, a module or a namespace (or reached from one)."""
        if isinstance(node, ast.Name):
            return node.id in self.modules or node.id in self.aliases or node.id == "__builtins__"
        if isinstance(node, (ast.Attribute, ast.Subscript, ast.Starred, ast.NamedExpr)):
            return self.module_like(node.value)
        if isinstance(node, ast.IfExp):
            return self.module_like(node.body) or self.module_like(node.orelse)
        if isinstance(node, ast.BoolOp):
            return any(self.module_like(v) for v in node.values)
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            return any(self.module_like(e) for e in node.elts)
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if name == "getattr":
                return bool(node.args) and self.module_like(node.args[0])
            return name in MODULE_MAKERS or name in self.returns_module
        return False

    def _learn(self, node, functions) -> None:
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.NamedExpr)) and node.value is not None:
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                self._learn_binding(target, node.value)
        elif isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)) and self.module_like(node.iter):
            self.aliases |= _names_in(node.target)
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            for item in node.items:
                if item.optional_vars is not None and self.module_like(item.context_expr):
                    self.aliases |= _names_in(item.optional_vars)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            args = node.args
            positional = args.posonlyargs + args.args
            for arg, default in zip(positional[len(positional) - len(args.defaults):], args.defaults, strict=True):
                if self.module_like(default):
                    self.aliases.add(arg.arg)
            for arg, default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
                if default is not None and self.module_like(default):
                    self.aliases.add(arg.arg)
            if not isinstance(node, ast.Lambda) and any(
                    isinstance(r, ast.Return) and r.value is not None and self.module_like(r.value)
                    for r in ast.walk(node)):
                self.returns_module.add(node.name)
        elif isinstance(node, ast.Call):
            self._learn_call(node, functions)

    def _learn_binding(self, target, value) -> None:
        """``target = value``: element by element where both are tuples of one length."""
        pairs = isinstance(target, (ast.Tuple, ast.List)) and isinstance(value, (ast.Tuple, ast.List))
        if pairs and len(target.elts) == len(value.elts):
            for t, v in zip(target.elts, value.elts, strict=True):
                self._learn_binding(t, v)
        elif self.module_like(value):
            self.aliases |= _names_in(target)

    def _learn_call(self, node, functions) -> None:
        """A module passed to one of the student's functions makes that parameter an alias."""
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        for params, method in functions.get(name, []):
            shift = 1 if method and isinstance(func, ast.Attribute) else 0
            for k, arg in enumerate(node.args):
                if k + shift < len(params) and self.module_like(arg):
                    self.aliases.add(params[k + shift])
            for kw in node.keywords:
                if kw.arg in params and self.module_like(kw.value):
                    self.aliases.add(kw.arg)


def _functions(trees) -> dict[str, list]:
    """name -> [(parameter names, defined in a class?)] of the functions and lambdas the student's cells bind."""
    found: dict[str, list] = {}

    def add(name, args, method):
        found.setdefault(name, []).append(([a.arg for a in args.posonlyargs + args.args + args.kwonlyargs], method))

    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        add(item.name, item.args, True)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                add(node.name, node.args, False)
            elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Lambda):
                for t in node.targets:
                    for name in _names_in(t):
                        add(name, node.value.args, False)
    return found


# --------------------------------------------------------------------------- the rules, node by node


class _Visitor(ast.NodeVisitor):
    """The findings of one program: (line in the program, kind, what, exercise)."""

    def __init__(self, ctx: _Context, forbid: dict):
        self.ctx, self.hits = ctx, []
        self.exempt: set[int] = set()  # annotations, isinstance's classes: no ready-made finding
        self.forbid = forbid  # exercise -> (names, "anywhere" or "rebinding")
        self.zone: set[int] = set()  # nodes that rebind ``sigmoid`` (where a "rebinding" rule looks)

    def run(self, tree) -> list:
        for node in ast.walk(tree):
            for part in _annotations(node):
                self.exempt |= {id(n) for n in ast.walk(part)}
            for part in _rebinding(node):
                self.zone |= {id(n) for n in ast.walk(part)}
        self.visit(tree)
        return self.hits

    def hit(self, node, kind, what, exercise=""):
        self.hits.append((getattr(node, "lineno", 1), kind, what, exercise))

    def ready_made(self, node, name, module_only):
        if name in READY_MADE and id(node) not in self.exempt and (name not in AMBIGUOUS or module_only):
            self.hit(node, "ready-made", _spelled(node, name))

    def forbidden(self, node, name, binds_sigmoid=False):
        for exercise, (names, mode) in self.forbid.items():
            if name in names and (mode == "anywhere" or id(node) in self.zone or binds_sigmoid):
                self.hit(node, "forbidden", f"`{_spelled(node, name)}`", exercise)

    def visit_Import(self, node):
        for a in node.names:
            for part in a.name.split(".") + [a.asname or ""]:
                if part in EVASION or part in EVASION_IMPORTS:
                    self.hit(node, "evasion", EVASION.get(part) or EVASION_IMPORTS[part])

    def visit_ImportFrom(self, node):
        module = node.module or ""
        for part in module.split("."):
            if part in EVASION or part in EVASION_IMPORTS:
                self.hit(node, "evasion", EVASION.get(part) or EVASION_IMPORTS[part])
        for a in node.names:
            why = (EVASION.get(a.name) or EVASION_NAMES.get(a.name) or EVASION_ON_MODULE.get(a.name)
                   or EVASION_QUALIFIED.get(f"{module}.{a.name}"))
            if why:
                self.hit(node, "evasion", why)
            self.ready_made(node, a.name, module.split(".")[0] == "torch")
            self.forbidden(node, a.name, binds_sigmoid=(a.asname or a.name) == "sigmoid")

    def visit_Name(self, node):
        if node.id in EVASION or node.id in EVASION_NAMES:
            self.hit(node, "evasion", EVASION.get(node.id) or EVASION_NAMES[node.id])
        elif node.id in BY_NAME:  # a callee is handled in visit_Call: here it is passed around
            self.hit(node, "evasion", f"{node.id} passed around as a value ({_NAMES})")

    def visit_Attribute(self, node):
        self.attribute(node, node.value, node.attr)
        self.generic_visit(node)

    def attribute(self, node, base, attr):
        """``base.attr`` (also ``getattr(base, "attr")``)."""
        qualified = self.ctx.qualified(base)
        why = EVASION.get(attr) or EVASION_QUALIFIED.get(f"{qualified}.{attr}" if qualified else "")
        if why is None and attr in EVASION_ON_MODULE and self.ctx.module_like(base):
            why = f"a module's __dict__ ({_NAMES})" if attr == "__dict__" else EVASION_ON_MODULE[attr]
        if why:
            self.hit(node, "evasion", why)
        self.ready_made(node, attr, self.ctx.module_like(base))
        self.forbidden(node, attr)

    def visit_Call(self, node):
        func = node.func
        if _magic_call(node) is not None:  # read by ``unfold``
            self._visit_all(node.args + [k.value for k in node.keywords])
            return
        if isinstance(func, ast.Name) and func.id in BY_NAME:
            name = node.args[1] if len(node.args) > 1 else None
            literal = isinstance(name, ast.Constant) and isinstance(name.value, str)
            if not literal and node.args and self.ctx.module_like(node.args[0]):
                self.hit(node, "evasion", f"{func.id} on a module with a name built at run time ({_NAMES})")
            if literal:
                self.attribute(node, node.args[0], name.value)
            self._visit_all(node.args + [k.value for k in node.keywords])
            return
        if isinstance(func, ast.Name) and func.id == "vars" and node.args and self.ctx.module_like(node.args[0]):
            self.hit(node, "evasion", f"vars() of a module ({_NAMES})")
        if isinstance(func, ast.Name) and func.id in ("isinstance", "issubclass") and len(node.args) > 1:
            self.exempt |= {id(n) for n in ast.walk(node.args[1])}
        self.generic_visit(node)

    def _visit_all(self, nodes):
        for n in nodes:
            self.visit(n)


def _spelled(node, name: str) -> str:
    """How the code spells the use (``torch.sigmoid``, ``x.clone().sigmoid_``); ``name`` for an import."""
    return ast.unparse(node)[:80] if isinstance(node, (ast.Attribute, ast.Call)) else name


def _annotations(node) -> list:
    if isinstance(node, ast.arg) and node.annotation is not None:
        return [node.annotation]
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns is not None:
        return [node.returns]
    if isinstance(node, ast.AnnAssign):
        return [node.annotation]
    return []


def _rebinding(node) -> list:
    """The parts of ``node`` that give the name ``sigmoid`` a new value (a def's body, an assignment's value)."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == "sigmoid":
        return [node]
    if isinstance(node, (ast.Assign, ast.AnnAssign, ast.NamedExpr)) and node.value is not None:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        if any("sigmoid" in _names_in(t) for t in targets):
            return [node.value]
    return []


# --------------------------------------------------------------------------- the notebook


def _graded(cells) -> list[tuple[int, str, str]]:
    """(cell index, grade_id, exercise) of each autograded cell, in order (``autograder.cells.exercises``)."""
    owner = exercises(SimpleNamespace(cells=cells))
    found = []
    for index, cell in enumerate(cells):
        meta = nbgrader_meta(cell)
        if meta.get("grade") and not meta.get("solution") and meta.get("grade_id") in owner:
            found.append((index, meta["grade_id"], owner[meta["grade_id"]]))
    return found


def _forbid_rules(cells, index: int, graded: list) -> dict:
    """exercise -> (names, mode) of the forbidden rules that apply to the student's cell ``index``."""
    rules = {}
    meta = nbgrader_meta(cells[index])
    for exercise, (rule, _) in FORBIDDEN_IN.items():
        last = max((k for k, _, ex in graded if ex == exercise), default=-1)
        if meta.get("grade_id") == exercise and meta.get("solution"):
            rules[exercise] = (_forbidden_names(rule), "anywhere")
        elif index < last:
            rules[exercise] = (_forbidden_names(rule), "rebinding")
    return rules


PRECEDENCE = {"ready-made": 0, "evasion": 1, "forbidden": 2}


def findings(cells, is_student) -> list[Finding]:
    """Every finding in the cells ``is_student(cell)`` says the student wrote, in notebook order, one a line.
    ``cells``: the whole notebook's (imports anywhere name modules; the grading cells place the rules)."""
    read = {k: unfold(c.get("source", "")) for k, c in enumerate(cells) if c.get("cell_type") == "code"}
    student = [k for k in read if is_student(cells[k])]
    ctx = _Context([p for k in read for p in read[k][0]], [p for k in student for p in read[k][0]])
    graded = _graded(cells)
    found = []
    for k in student:
        programs, hits = read[k]
        rows = [(line, kind, what, "") for line, kind, what in hits]
        rules = _forbid_rules(cells, k, graded)
        for program in programs:
            rows += [(program.offset + line, kind, what, ex)
                     for line, kind, what, ex in _Visitor(ctx, rules).run(program.tree)]
        lines = cells[k].get("source", "").splitlines()
        best: dict[int, tuple] = {}
        for row in rows:
            if row[0] not in best or PRECEDENCE[row[1]] < PRECEDENCE[best[row[0]][1]]:
                best[row[0]] = row
        for line, kind, what, ex in sorted(best.values()):
            code = lines[line - 1].strip()[:160] if 0 < line <= len(lines) else ""
            found.append(Finding(kind, k, line, code, what, ex))
    return found


def withheld(cells, is_student, found: list | None = None) -> dict[str, Finding]:
    """grade_id -> the finding that withholds the points of that grading cell (the first, in notebook order)."""
    found = findings(cells, is_student) if found is None else found
    graded = _graded(cells)
    out: dict[str, Finding] = {}
    for finding in found:
        if finding.kind == "forbidden":
            costs = {finding.exercise}
        else:
            costs = {ex for k, _, ex in graded if k > finding.cell}
        for _, grade_id, exercise in graded:
            if exercise in costs:
                out.setdefault(grade_id, finding)
    return out


# --------------------------------------------------------------------------- a library's answer (notebook 7)


def _tokens(source: str) -> list:
    """The tokens that say something (a NEWLINE kept: it ends a statement), magics and shell lines skipped."""
    lines = source.splitlines()
    text = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in lines) + "\n"
    try:
        return [t for t in tokenize.generate_tokens(io.StringIO(text).readline)
                if t.type not in (tokenize.NL, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT)]
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return []


def imported_names(source: str, package: str) -> set[str]:
    """The names ``from package[.sub] import a, b as c`` binds in ``source`` (here: a, c)."""
    names, toks = set(), _tokens(source)
    for k, tok in enumerate(toks):
        if tok.string == "from" and k + 1 < len(toks) and toks[k + 1].string == package:
            j = k + 2
            while j < len(toks) and toks[j].string != "import":
                j += 1
            j += 1
            while j < len(toks) and toks[j].type != tokenize.NEWLINE and toks[j].string != ";":
                if toks[j].type == tokenize.NAME and toks[j].string != "as":
                    last = toks[j].string
                    if j + 1 >= len(toks) or toks[j + 1].string != "as":
                        names.add(last)
                j += 1
    return names


def borrowed(solution: str, elsewhere: list[str], package: str) -> list[tuple[int, str]]:
    """(line number, line) of each line of ``solution`` that uses ``package``: the package's name itself
    (``sklearn.metrics.accuracy_score``, ``import sklearn``), or a name imported from it in ``solution`` or in
    any of the cells ``elsewhere`` (``from sklearn.metrics import accuracy_score`` in a scratch cell). Strings
    and comments do not count; a name built at run time escapes."""
    names = {package} | imported_names(solution, package)
    for source in elsewhere:
        names |= imported_names(source, package)
    toks = _tokens(solution)
    names -= {b.string for a, b in zip(toks, toks[1:], strict=False) if a.string in ("def", "class")}  # own
    lines, found = solution.splitlines(), []
    for tok in toks:
        if tok.type == tokenize.NAME and tok.string in names:
            row = tok.start[0]
            if not found or found[-1][0] != row:
                found.append((row, lines[row - 1].strip()[:160] if row <= len(lines) else ""))
    return found
