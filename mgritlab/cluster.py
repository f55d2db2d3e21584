"""MPI from notebooks and tests: ipyparallel MPI engines, and a guarded ``mpiexec`` runner.

Everything here cleans up after itself: every remote call and every ``mpiexec`` run has a
timeout; a failed or timed-out run leaves no engine, controller or ``mpiexec`` behind (each
process is tagged with a run id in its environment and killed by that tag as a last resort);
an engine cluster is stopped on errors, on ``with``-block exit and when the kernel exits.

    from mgritlab.cluster import start_engines
    with start_engines(4) as engines:                 # MPI engines, or a serial fallback
        results = engines.run(mgritlab.cluster.mpi_hello, timeout=30)
"""
from __future__ import annotations

import atexit
import contextlib
import io
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
import warnings
from pathlib import Path

RUN_ID_ENV = "MGRITLAB_RUN_ID"
INSTALL_HINT = ("install an MPI library and mpi4py into this environment: "
                "`pip install mpich mpi4py` (or run `make setup`)")


class MPIUnavailable(RuntimeError):
    """No usable mpiexec / mpi4py in this environment."""


class MPITimeout(TimeoutError):
    """An MPI run or a remote call did not finish in time (its processes were killed)."""


class EngineError(RuntimeError):
    """A function raised on an MPI engine: the remote exception, its rank and traceback."""


# -- mpiexec -------------------------------------------------------------------------------
def mpiexec_path() -> str:
    """The mpiexec of the running Python environment (a kernel started from a venv does not
    have the venv's bin/ on PATH), else the first one on PATH."""
    here = Path(sys.prefix) / "bin" / "mpiexec"
    if here.exists():
        return str(here)
    found = shutil.which("mpiexec")
    if found:
        return found
    raise MPIUnavailable(f"mpiexec was not found in {here.parent} nor on PATH; {INSTALL_HINT}")


def mpiexec_flags(mpiexec: str | None = None, n: int | None = None) -> list[str]:
    """Extra flags the MPI implementation needs: Open MPI wants ``--oversubscribe`` for more
    ranks than cores and ``--allow-run-as-root`` as root; MPICH needs none."""
    mpiexec = mpiexec or mpiexec_path()
    try:
        out = subprocess.run([mpiexec, "--version"], capture_output=True, text=True,
                             timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    if "Open MPI" in out or "OpenRTE" in out:
        flags = ["--oversubscribe"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            flags.append("--allow-run-as-root")
        return flags
    return []


def new_run_id() -> str:
    """A fresh run id, nested under the caller's (``parent/child``) when there is one, so
    that killing a parent's tag (e.g. a whole test session's) also kills its children."""
    parent = os.environ.get(RUN_ID_ENV)
    child = f"mgritlab-{uuid.uuid4().hex[:10]}"
    return f"{parent}/{child}" if parent else child


def tagged_pids(run_id: str) -> list[int]:
    """Pids of the processes (this one left out) whose environment carries
    ``MGRITLAB_RUN_ID=run_id`` or a run id nested under it (Linux; elsewhere none)."""
    key = f"{RUN_ID_ENV}=".encode()
    want = run_id.encode()
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    pids = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:  # gone, or not ours to read
            continue
        for var in environ:
            if var.startswith(key):
                value = var[len(key):]
                if value == want or value.startswith(want + b"/"):
                    pids.append(int(entry.name))
                break
    return pids


def kill_tagged(run_id: str, sig: int = signal.SIGKILL) -> int:
    """Send ``sig`` to every process of :func:`tagged_pids` (``sig=0`` only counts them).
    Returns how many were signalled."""
    killed = 0
    for pid in tagged_pids(run_id):
        try:
            os.kill(pid, sig)
        except OSError:  # it ended meanwhile
            continue
        killed += 1
    return killed


def reap_tagged(run_id: str, seconds: float = 10.0) -> int:
    """:func:`kill_tagged` until no tagged process is left (killed processes take a moment to
    go) or ``seconds`` have passed; returns how many are left (0: none)."""
    end = time.monotonic() + seconds
    while kill_tagged(run_id) and time.monotonic() < end:
        time.sleep(0.1)
    return kill_tagged(run_id, 0)


def run_mpi(command: list[str], n: int, *, timeout: float | None = 120.0,
            run_id: str | None = None, env: dict | None = None,
            mpi_args: list[str] | None = None, cwd=None, capture: bool = True
            ) -> subprocess.CompletedProcess:
    """Run ``mpiexec -n n command...``, capturing output, killed whole after ``timeout``.

    Raises :class:`MPITimeout` (with the output so far) when it runs too long, and
    :class:`MPIUnavailable` when mpiexec is missing. ``capture=False`` lets the ranks write to
    this terminal (long runs with progress bars; ``timeout=None`` waits for as long as they
    run); Ctrl-C is then passed on to the ranks (SIGINT: a training run finishes its epoch
    and checkpoints), and a second Ctrl-C kills them.
    """
    mpiexec = mpiexec_path()
    run_id = run_id or new_run_id()
    full_env = dict(os.environ if env is None else env)
    full_env[RUN_ID_ENV] = run_id
    args = [mpiexec, "-n", str(n), *mpiexec_flags(mpiexec), *(mpi_args or []), *command]
    pipe = subprocess.PIPE if capture else None
    proc = subprocess.Popen(args, stdout=pipe, stderr=subprocess.STDOUT if capture else None,
                            text=True, env=full_env, cwd=cwd, start_new_session=True)
    try:
        try:
            out, _ = proc.communicate(timeout=timeout)
        except KeyboardInterrupt:
            if capture:
                raise
            _signal_group(proc, signal.SIGINT)
            out, _ = proc.communicate()  # a second Ctrl-C lands in `finally`
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, _ = proc.communicate()
        kill_tagged(run_id)
        raise MPITimeout(f"`{' '.join(args)}` did not finish in {timeout:g} s and was killed; "
                         f"output so far:\n{out}") from None
    finally:
        if proc.poll() is None:
            _kill_group(proc)
    kill_tagged(run_id)  # stragglers (e.g. a rank stuck after another failed)
    return subprocess.CompletedProcess(args, proc.returncode, out, "")


def mpi_call(function: str, ranks: int, *, timeout: float | None = 600.0, **options):
    """``function(**options)`` — ``"module:name"`` of a package function — on every rank of
    ``mpiexec -n ranks`` (one process per rank, killed whole after ``timeout``); returns rank
    0's return value, which must be JSON-serialisable (a record). A failed run raises a
    RuntimeError with the end of its output. The one launcher of the package's MPI timing
    runs (``python -m mgritlab.cluster`` is its worker)."""
    import json
    import tempfile

    if function.count(":") != 1:
        raise ValueError(f"function={function!r}: give 'package.module:function'")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp, "result.json")
        proc = run_mpi([sys.executable, "-m", "mgritlab.cluster", function,
                        json.dumps(options), str(out)], ranks, timeout=timeout)
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(f"{function} on {ranks} MPI rank(s) failed (exit "
                               f"{proc.returncode}):\n{(proc.stdout or '')[-3000:]}")
        return json.loads(out.read_text())


def _call_worker(argv: list[str]) -> int:
    """``python -m mgritlab.cluster MODULE:FUNCTION OPTIONS_JSON OUT`` under mpiexec: every
    rank calls the function; rank 0 writes its return value to OUT (:func:`mpi_call`)."""
    import importlib
    import json

    from mpi4py import MPI

    function, options, out = argv
    module, name = function.split(":")
    try:
        result = getattr(importlib.import_module(module), name)(**json.loads(options))
    except BaseException:  # noqa: BLE001 - any failure of one rank must stop them all
        import traceback

        traceback.print_exc()
        sys.stdout.flush()
        sys.stderr.flush()
        MPI.COMM_WORLD.Abort(1)  # the other ranks may wait on this one in a collective
    if MPI.COMM_WORLD.Get_rank() == 0:
        tmp = Path(f"{out}.part")
        tmp.write_text(json.dumps(result))
        os.replace(tmp, out)  # a complete file or none
    return 0


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def _kill_group(proc: subprocess.Popen) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            proc.wait(timeout=3)
            return
        except subprocess.TimeoutExpired:
            continue


# -- ipyparallel engines ----------------------------------------------------------------------
class MPIEngines:
    """A running ipyparallel cluster of ``n`` MPI engines (one MPI rank each)."""

    parallel = True

    def __init__(self, n: int = 2, *, timeout: float = 60.0, mpi_args: list[str] | None = None,
                 heartbeat_ms: int = 200, log_level: int = logging.WARNING):
        try:
            import ipyparallel as ipp
            from traitlets.config import Config
        except ImportError as err:
            raise MPIUnavailable(f"ipyparallel is not installed; {INSTALL_HINT}") from err
        _require_mpi4py()
        if n < 1:
            raise ValueError(f"n must be >= 1 engines, got {n}")
        self.n, self.timeout = n, timeout
        self.run_id = new_run_id()
        mpiexec = mpiexec_path()
        config = Config()
        config.MPILauncher.mpi_cmd = [mpiexec]
        config.MPILauncher.mpi_args = [*mpiexec_flags(mpiexec), *(mpi_args or [])]
        # an engine gives up on registering when the controller has not answered in 5 s
        # (ipyparallel's default); on a loaded machine the controller can be that slow, and
        # then no engine ever comes up: let the engines wait as long as we do
        config.MPIEngineSetLauncher.engine_args = [f"--IPEngine.timeout={max(timeout, 5.0):g}"]
        self.cluster = ipp.Cluster(
            engines="mpi", n=n, config=config, log_level=log_level,
            cluster_id=self.run_id.replace("/", "-"),
            # a short heartbeat: engines are registered in ~1-2 s instead of ~7 s
            controller_args=[f"--ping={heartbeat_ms}", "--ip=127.0.0.1"])
        self.client = None
        self._stopped = False
        self._watchdog = None
        self._pending: list = []
        atexit.register(self.stop)
        old = os.environ.get(RUN_ID_ENV)
        os.environ[RUN_ID_ENV] = self.run_id  # inherited by controller, mpiexec and engines
        try:
            self._watchdog = _start_watchdog(self.run_id)
            with _quiet():
                self.cluster.start_cluster_sync(n=n)
                self.client = self.cluster.connect_client_sync()
                self._wait_for_engines(timeout)
        except BaseException as err:
            self.stop()
            if isinstance(err, (KeyboardInterrupt, SystemExit)):
                raise
            raise MPIUnavailable(f"could not start {n} MPI engines within {timeout:g} s: "
                                 f"{type(err).__name__}: {err}") from err
        finally:
            if old is None:
                os.environ.pop(RUN_ID_ENV, None)
            else:
                os.environ[RUN_ID_ENV] = old

    def _wait_for_engines(self, timeout: float) -> None:
        """Wait until all ``n`` engines are registered, for at most ``timeout`` s; raise at
        once, with the engines' last output, when ``mpiexec`` has exited before that (the
        engines died: waiting longer cannot help)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                self.client.wait_for_engines(self.n, timeout=max(min(0.5, left), 0.0),
                                             interactive=False)
                return
            except TimeoutError:
                if not self._engines_alive():
                    raise RuntimeError(f"mpiexec exited with {len(self.client.ids)} of "
                                       f"{self.n} engines registered; its last output:\n"
                                       f"{self._engine_output()}") from None
                if left <= 0:
                    raise TimeoutError(f"{len(self.client.ids)} of {self.n} engines "
                                       f"registered; the engines' last output:\n"
                                       f"{self._engine_output()}") from None

    def _engines_alive(self) -> bool:
        for es in self.cluster.engines.values():
            proc = getattr(es, "process", None)  # a psutil.Process
            try:
                if proc is not None and (not proc.is_running() or proc.status() == "zombie"):
                    return False
            except Exception:  # noqa: BLE001 - gone between the two questions
                return False
        return True

    def _engine_output(self, lines: int = 15) -> str:
        out = []
        for es in self.cluster.engines.values():
            with contextlib.suppress(Exception):
                out.extend(es.get_output().splitlines())
        return "\n".join(out[-lines:]) or "(none)"

    def run(self, f, *args, timeout: float | None = None, **kwargs) -> list:
        """Call ``f(*args, **kwargs)`` on every engine; results in rank order.

        ``f`` must be importable on the engines (defined in an installed module). When ``f``
        raises on an engine, :class:`EngineError` shows that engine's exception and traceback
        as soon as it arrives; if other engines are then still busy (waiting for the failed
        one in a collective, for ever), the cluster is stopped. On a timeout the call is
        aborted, the cluster stopped and :class:`MPITimeout` raised. A stopped cluster leaves
        no process behind: MPI ranks stuck in a collective cannot be recovered.
        """
        import ipyparallel as ipp

        timeout = self.timeout if timeout is None else timeout
        name = getattr(f, "__name__", f)
        parts = self.client[:].apply_async(_with_rank, f, *args, **kwargs).split()
        self._pending = parts
        deadline = time.monotonic() + timeout
        failed = None
        while failed is None and not all(p.ready() for p in parts):
            left = deadline - time.monotonic()
            if left <= 0:
                self.stop(force=True)
                raise MPITimeout(f"{name} did not finish on the engines in {timeout:g} s; the "
                                 f"engines were stopped")
            time.sleep(min(0.05, left))
            failed = next((k for k, p in enumerate(parts) if p.ready() and not p.successful()),
                          None)
        if failed is not None:
            # the others may still finish (every rank raised); else they wait for the failed
            # one in a collective and only stopping the cluster ends them
            grace = min(_FAILURE_GRACE, max(deadline - time.monotonic(), 0.0))
            end = time.monotonic() + grace
            while not all(p.ready() for p in parts) and time.monotonic() < end:
                time.sleep(0.05)
            stuck = not all(p.ready() for p in parts)
            if stuck:
                self.stop(force=True)
            try:
                parts[failed].get(0)
            except ipp.error.RemoteError as err:
                raise EngineError(_remote_message(name, failed, err, stuck)) from None
        results = [p.get(0) for p in parts]
        return [r for _, r in sorted(results, key=lambda p: p[0])]

    def stop(self, force: bool = False) -> None:
        """Close the client, stop engines and controller; kill anything left by its tag.

        ``force``: engines may be busy (stuck in a collective), so do not ask them to exit —
        a shutdown request then waits for ever — but kill them, mpiexec and the controller
        by their run id at once.
        """
        if self._stopped:
            return
        self._stopped = True
        if force:
            kill_tagged(self.run_id)
        try:
            if self.client is not None:
                # ask idle engines to exit first: mpiexec then ends by itself, and stopping
                # the cluster needs no TERM/KILL round (quiet and a few seconds faster)
                if not force and not self._busy():
                    with contextlib.suppress(Exception):
                        # not block=True: a shutdown reply can be lost (the engine exits
                        # first) and then that waits for ever; wait a bounded time instead
                        self.client.shutdown(targets="all", hub=False, block=False)
                        end = time.monotonic() + _SHUTDOWN_WAIT
                        while self.client.ids and time.monotonic() < end:
                            time.sleep(0.05)
                self.client.close()
        except Exception:  # noqa: BLE001 - best effort on the way out
            pass
        try:
            # the engine set logs each engine's output when it exits (a WARNING from the
            # launcher's thread, after _quiet's redirection has ended): not for notebooks
            with contextlib.suppress(Exception):
                self.cluster.log.setLevel(logging.ERROR)
                for launcher in getattr(self.cluster, "engines", {}).values():
                    launcher.log.setLevel(logging.ERROR)
            with warnings.catch_warnings(), _quiet():
                warnings.simplefilter("ignore")
                # engines first, then the controller: stopping both at once (stop_cluster)
                # leaves the engines waiting for the controller and takes seconds longer
                self.cluster.stop_engines_sync()
                self.cluster.stop_controller_sync()
        except Exception:  # noqa: BLE001
            pass
        reap_tagged(self.run_id)
        if self._watchdog is not None:
            with contextlib.suppress(Exception):
                self._watchdog.wait(timeout=5)
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)

    def _busy(self) -> bool:
        """Whether an engine is still running a call of :meth:`run` (it would not answer a
        shutdown request then; e.g. after Ctrl-C in run). No hub query: that can itself
        leave a following shutdown waiting."""
        return any(not p.ready() for p in self._pending)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False


class SerialEngines:
    """The fallback when MPI engines cannot start: one local 'engine', same ``run`` API."""

    parallel = False
    n = 1

    def __init__(self, reason: str = ""):
        self.reason = reason

    def run(self, f, *args, timeout: float | None = None, **kwargs) -> list:
        return [f(*args, **kwargs)]

    def stop(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def start_engines(n: int = 2, *, timeout: float = 60.0, fallback: bool = True, **kwargs):
    """Start ``n`` MPI engines; with ``fallback`` return :class:`SerialEngines` (and say why)
    when MPI is missing or the engines do not come up, so that a lesson still runs."""
    try:
        return MPIEngines(n, timeout=timeout, **kwargs)
    except MPIUnavailable as err:
        if not fallback:
            raise
        warnings.warn(f"{err}\nFalling back to the serial solver (one process).",
                      RuntimeWarning, stacklevel=2)
        return SerialEngines(str(err))


@contextlib.contextmanager
def _quiet():
    """Keep ipyparallel's start/stop chatter (logs, engine output on stop) out of notebooks."""
    loggers = [logging.getLogger(n) for n in ("ipyparallel", "ipyparallel.cluster")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _require_mpi4py() -> None:
    try:
        import mpi4py  # noqa: F401
    except ImportError as err:
        raise MPIUnavailable(f"mpi4py is not installed; {INSTALL_HINT}") from err


_FAILURE_GRACE = 3.0  # seconds the other engines get to finish after one has raised
_SHUTDOWN_WAIT = 5.0  # seconds idle engines get to exit on request before they are stopped


def _remote_message(name, rank: int, err, stopped: bool) -> str:
    """What an engine's exception was, where, and with which traceback."""
    tb = re.sub(r"\x1b\[[0-9;]*m", "", getattr(err, "traceback", "") or "")  # no colours
    what = f"{getattr(err, 'ename', type(err).__name__)}: {getattr(err, 'evalue', err)}"
    after = (" The other engines were still waiting for it (e.g. in a collective) and were "
             "stopped with the cluster." if stopped else "")
    return f"{name} raised on engine rank {rank}: {what}.{after}\nRemote traceback:\n{tb}"


def _start_watchdog(run_id: str) -> subprocess.Popen:
    """A small process that kills everything tagged ``run_id`` once this process is gone,
    however it ended (a killed kernel runs no atexit): no controller, mpiexec or engine
    outlives the kernel that started them. It carries the tag, so a normal stop ends it."""
    code = ("import sys; from mgritlab.cluster import _watch; "
            "_watch(int(sys.argv[1]), sys.argv[2])")
    return subprocess.Popen([sys.executable, "-c", code, str(os.getpid()), run_id],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def _watch(parent: int, run_id: str, poll: float = 0.5) -> None:
    """Wait until process ``parent`` is gone, then kill every process tagged ``run_id``."""
    while True:
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            break
        except PermissionError:  # pid reused by another user's process: the parent is gone
            break
        if Path(f"/proc/{parent}/stat").is_file():
            # a zombie parent (killed, not yet reaped) counts as gone
            with contextlib.suppress(OSError):
                if Path(f"/proc/{parent}/stat").read_text().split(")")[-1].split()[0] == "Z":
                    break
        time.sleep(poll)
    kill_tagged(run_id)


# -- functions that run on the engines (importable there) ------------------------------------
def _with_rank(f, *args, **kwargs):
    """(MPI rank, f(*args, **kwargs)): results come back in rank order, in one call."""
    from mpi4py import MPI

    return MPI.COMM_WORLD.Get_rank(), f(*args, **kwargs)


def mpi_hello() -> dict:
    """rank, size and an allreduce of the ranks: the smallest check that MPI works."""
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    return dict(rank=comm.Get_rank(), size=comm.Get_size(),
                allreduce=comm.allreduce(comm.Get_rank() + 1))


if __name__ == "__main__":
    raise SystemExit(_call_worker(sys.argv[1:]))
