"""A real Dask cluster on this machine: ``dask scheduler`` and ``dask worker`` processes on 127.0.0.1.

What the tests and ``make bench`` grade on; an instructor trying the cluster path on one machine can use it
too (``python -m autograder.host.localcluster 2``: prints the address, stops on Ctrl-C). Every process
listens on 127.0.0.1 only, on a free port, without a dashboard, and is stopped when the block ends.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..settings import ENV

DASK = str(Path(sys.executable).parent / "dask")


class LocalCluster:
    def __init__(self, env: dict | None = None):
        self.base = Path(tempfile.mkdtemp(prefix="lstm-dask-"))
        self.env = {**os.environ, **(env or {})}
        self.env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{self.env.get('PATH', '')}"
        self.scheduler = None
        self.workers: dict = {}  # name -> Popen
        self.address = ""

    def _spawn(self, name: str, argv: list, env: dict) -> subprocess.Popen:
        log = open(self.base / f"{name}.log", "w")
        return subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                cwd=self.base)

    def start_scheduler(self, timeout: float = 60) -> str:
        sched_file = self.base / "scheduler.json"
        self.scheduler = self._spawn("scheduler", [DASK, "scheduler", "--host", "127.0.0.1", "--port", "0",
                                                   "--no-dashboard", "--scheduler-file", str(sched_file)], self.env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sched_file.exists():
                with contextlib.suppress(json.JSONDecodeError):
                    self.address = json.loads(sched_file.read_text())["address"]
                    return self.address
            if self.scheduler.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError(f"the scheduler did not start:\n{self.log('scheduler')}")

    def start_worker(self, name: str, resources: str = "", env: dict | None = None) -> None:
        argv = [DASK, "worker", self.address, "--name", name, "--nthreads", "1", "--no-nanny", "--no-dashboard",
                "--host", "127.0.0.1", "--memory-limit", "0", "--local-directory", str(self.base / name)]
        if resources:
            argv += ["--resources", resources]
        self.workers[name] = self._spawn(name, argv, {**self.env, **(env or {})})

    def wait_for(self, n: int, timeout: float = 90) -> dict:
        """{worker name: address} once ``n`` workers are connected."""
        from distributed import Client

        with Client(self.address, timeout=timeout) as client:
            client.wait_for_workers(n, timeout=timeout)
            return {w["name"]: a for a, w in client.scheduler_info(n_workers=-1)["workers"].items()}

    def kill(self, name: str) -> None:
        proc = self.workers.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def close(self, name: str, timeout: float = 20) -> None:
        """Stop a worker as an operator would (SIGTERM: it closes and exits, its clean-up runs); killed only if
        it has not gone after ``timeout`` seconds."""
        proc = self.workers[name]
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        self.kill(name)

    def log(self, name: str) -> str:
        path = self.base / f"{name}.log"
        return path.read_text()[-4000:] if path.exists() else ""

    def stop(self) -> None:
        for name in list(self.workers):
            self.close(name, timeout=10)
        if self.scheduler is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.scheduler.pid, signal.SIGKILL)
            self.scheduler.wait()
            self.scheduler = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


@contextlib.contextmanager
def running(workers: int = 2, resources: dict | None = None, env: dict | None = None):
    """A scheduler and ``workers`` workers (``resources``: name -> ``GPU=1``-style flags); yields the cluster."""
    threads = str(max(1, (os.cpu_count() or 1) // max(1, workers)))  # the kernels of all workers share this machine
    with LocalCluster({ENV["threads"]: threads, **(env or {})}) as cluster:
        cluster.start_scheduler()
        for i in range(workers):
            name = f"w{i + 1}"
            cluster.start_worker(name, (resources or {}).get(name, ""))
        cluster.wait_for(workers)
        yield cluster


if __name__ == "__main__":
    with running(int(sys.argv[1]) if len(sys.argv) > 1 else 2) as c:
        print(f"CLUSTER={c.address}  (logs in {c.base}; Ctrl-C stops it)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
