"""Every setting of the grader, in one place: read from the environment once per process, then passed down.

The environment is how settings travel between the grader's processes (the batch, the nbgrader processes
it starts, their kernel launchers), so each reads them here, once, with ``load()``; nothing else in the
grader reads the environment for a setting. (The kernel's own package, which may import nothing of the
grader, reads the two it needs, ``LSTM_COURSE_DEVICE`` and ``LSTM_KERNEL_THREADS``, from the environment
the launcher gives it.) This module imports nothing heavy: ``make grades`` does not import torch.
"""

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    device: str = "cpu"  # DEVICE / LSTM_COURSE_DEVICE: where student code runs (references stay on CPU)
    jobs: int | None = None  # GRADING_JOBS: notebooks graded at once (default: one per core)
    cell_timeout: int = 180  # CELL_TIMEOUT: seconds for one cell, or one hidden test
    notebook_budget: int = 600  # NOTEBOOK_BUDGET: seconds for a whole notebook, restarts included
    grading_timeout: int | None = None  # GRADING_TIMEOUT: wall-clock limit of an nbgrader process, per notebook
    feedback_timeout: float = 600.0  # FEEDBACK_TIMEOUT: seconds for one assignment's feedback
    db_url: str = ""  # DB_URL: the gradebook (default: sqlite in the course root)
    show_hidden_tests: bool = False  # SHOW_HIDDEN_TESTS=1: feedback shows the hidden tests' source
    grader_seed: int | None = None  # LSTM_GRADER_SEED: reproduce a grading run's inputs (default: fresh each run)
    grading_log: str = ""  # LSTM_GRADING_LOG: directory of the grading logs (the batch sets it)
    sandbox: str = "auto"  # LSTM_SANDBOX: auto | bwrap | none
    memory_mb: int = 6144  # LSTM_KERNEL_MEMORY_MB: resident memory plus the kernel's files in memory (its folders)
    cpu_seconds: int = 1800  # LSTM_KERNEL_CPU_SECONDS
    procs: int = 256  # LSTM_KERNEL_PROCS
    threads: int = 0  # LSTM_KERNEL_THREADS (0: cores / jobs)
    uid: int = 0  # LSTM_SANDBOX_UID (run as root: the kernels' uid)
    tmp_mb: int = 512  # LSTM_KERNEL_TMP_MB: the kernel's private /tmp
    scratch_mb: int = 512  # LSTM_KERNEL_SCRATCH_MB: what the kernel may write in its own folder, beyond the data files
    grading_kernel: str = "lstm-course"  # GRADING_KERNEL: the kernelspec nbgrader grades in (the batch sets it)
    ipc_prefix: str = ""  # LSTM_IPC_PREFIX: the kernels' socket path prefix (the batch sets it)
    forkserver: str = ""  # LSTM_FORKSERVER: the socket of the batch's warm parent of kernels (the batch sets it)
    warm_kernels: bool = True  # LSTM_WARM_KERNELS=0: every kernel starts a fresh Python instead (slower)
    course_root: str = ""  # COURSE_ROOT: the course directory (default: this repository)
    cluster: str = ""  # CLUSTER (else DASK_SCHEDULER_ADDRESS): a Dask scheduler's address or scheduler file
    cluster_resources: str = ""  # CLUSTER_RESOURCES: what a task needs of a worker, e.g. GPU=1 (DEVICE=cuda: GPU=1)
    task_timeout: int | None = None  # CLUSTER_TASK_TIMEOUT: seconds a task may run on a worker before it is cancelled


ENV = {  # field -> environment variable
    "device": "LSTM_COURSE_DEVICE", "jobs": "GRADING_JOBS", "cell_timeout": "CELL_TIMEOUT",
    "notebook_budget": "NOTEBOOK_BUDGET", "grading_timeout": "GRADING_TIMEOUT", "feedback_timeout": "FEEDBACK_TIMEOUT",
    "db_url": "DB_URL", "show_hidden_tests": "SHOW_HIDDEN_TESTS", "grader_seed": "LSTM_GRADER_SEED",
    "grading_log": "LSTM_GRADING_LOG", "sandbox": "LSTM_SANDBOX", "memory_mb": "LSTM_KERNEL_MEMORY_MB",
    "cpu_seconds": "LSTM_KERNEL_CPU_SECONDS", "procs": "LSTM_KERNEL_PROCS", "threads": "LSTM_KERNEL_THREADS",
    "uid": "LSTM_SANDBOX_UID", "tmp_mb": "LSTM_KERNEL_TMP_MB",
    "scratch_mb": "LSTM_KERNEL_SCRATCH_MB", "grading_kernel": "GRADING_KERNEL",
    "ipc_prefix": "LSTM_IPC_PREFIX", "forkserver": "LSTM_FORKSERVER", "warm_kernels": "LSTM_WARM_KERNELS",
    "course_root": "COURSE_ROOT", "cluster": "CLUSTER",
    "cluster_resources": "CLUSTER_RESOURCES", "task_timeout": "CLUSTER_TASK_TIMEOUT",
}
FALLBACK_ENV = {"cluster": "DASK_SCHEDULER_ADDRESS"}  # field -> a standard variable read when its own is unset


def from_environment(env=None) -> Settings:
    env = os.environ if env is None else env
    defaults = Settings()
    values = {}
    for field, name in ENV.items():
        raw = env.get(name, "") or env.get(FALLBACK_ENV.get(field, ""), "")
        if raw == "":
            continue
        default = getattr(defaults, field)
        if isinstance(default, bool):
            values[field] = raw == "1"
        elif default is None:  # an optional number: 0 means unset
            values[field] = int(raw) or None
        elif isinstance(default, (int, float)):
            values[field] = type(default)(raw)
        else:
            values[field] = raw
    return Settings(**values)


def load() -> Settings:
    """The settings as the environment has them now: an entry point reads them once and passes them down."""
    return from_environment()
