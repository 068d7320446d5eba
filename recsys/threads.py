"""Thread pools sized by the library itself, so ``Engine.build`` from Python costs what the CLI costs.

On a small machine whose other core is busy, BLAS threads that spin-wait and OpenMP runtimes that
busy-wait turn a 25-s build into minutes (measured: scipy L-BFGS 4 ms -> 61 ms per call). Two layers:

* :func:`passive_waits` (called by ``import recsys``) makes OpenMP runtimes sleep instead of spin
  unless the user chose otherwise: they read the environment once, when they load, which in a
  process that imports recsys first is later. The command line calls :func:`configure` (that plus
  one BLAS thread for the whole process) first thing.
* :func:`limited` wraps the heavy entry points (``Engine.build``, ``Engine.load``): inside, BLAS runs
  on one thread and OpenMP on at most the usable cores (``threadpoolctl``), restored afterwards.
* :func:`one_thread` wraps the serving path (``recommend``): its work is small (a 128 x 128 solve, a
  FAISS search of a few queries), where a second BLAS or OpenMP thread only waits for a busy core
  (measured on the 23k-track index with the other core busy: FAISS search p99 15-140 ms on 2 OpenMP
  threads, 0.3-0.9 ms on one; the ALS solve 0.1 ms on one BLAS thread, 0.4 ms on two).

Set ``RECSYS_THREADS=off`` to keep full control of your own process.
"""
from __future__ import annotations

import contextlib
import functools
import os
import sys
from typing import Any, Callable, Iterator, TypeVar

#: Environment defaults applied unless the user set them.
DEFAULTS = {
    "OMP_WAIT_POLICY": "PASSIVE",  # OpenMP (LightGBM, FAISS, torch) sleeps instead of spinning
    "OPENBLAS_NUM_THREADS": "1",  # small dense problems: one BLAS thread beats two fighting for a core
    "MKL_NUM_THREADS": "1",
    "KMP_BLOCKTIME": "0",
}
#: Modules that start an OpenMP runtime when imported: after them, OMP_WAIT_POLICY no longer applies.
_OPENMP_MODULES = ("lightgbm", "faiss", "torch", "sklearn", "implicit")

F = TypeVar("F", bound=Callable[..., Any])


def _off() -> bool:
    return os.environ.get("RECSYS_THREADS", "").lower() in ("off", "0", "no")


def passive_waits() -> None:
    """Default OMP_WAIT_POLICY=PASSIVE and KMP_BLOCKTIME=0 (idle OpenMP threads sleep); harmless to others."""
    if not _off():
        for key in ("OMP_WAIT_POLICY", "KMP_BLOCKTIME"):
            os.environ.setdefault(key, DEFAULTS[key])


def configure() -> dict[str, str]:
    """Apply :data:`DEFAULTS` where unset; if BLAS is already loaded, limit it too. Returns what applies."""
    if _off():
        return {}
    for key, value in DEFAULTS.items():
        os.environ.setdefault(key, value)
    if "numpy" in sys.modules:
        try:
            from threadpoolctl import threadpool_limits

            threadpool_limits(limits=int(os.environ["OPENBLAS_NUM_THREADS"]), user_api="blas")
        except (ImportError, ValueError):
            pass
    return {k: os.environ[k] for k in DEFAULTS}


def openmp_loaded() -> list[str]:
    """OpenMP-using modules already imported (their wait policy was fixed when they loaded)."""
    return [m for m in _OPENMP_MODULES if m in sys.modules]


def cores() -> int:
    """Cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def limits() -> Iterator[None]:
    """BLAS on one thread and OpenMP on at most :func:`cores` threads inside the block (threadpoolctl)."""
    if _off():
        yield
        return
    try:
        import scipy.linalg  # noqa: F401  (scipy's own OpenBLAS: loaded now, so it is limited too)
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    blas = int(os.environ.get("OPENBLAS_NUM_THREADS", "1") or 1)
    with threadpool_limits(limits={"blas": blas, "openmp": cores()}):
        yield


def limited(fn: F) -> F:
    """Decorator: run ``fn`` inside :func:`limits` (re-entrant; cheap when nested)."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with limits():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


_controller: dict = {}


def _threadpools():
    """A threadpoolctl controller over the libraries loaded so far (made again after any new import, which
    is when a new BLAS or OpenMP library can arrive; a warm server imports nothing more)."""
    key = len(sys.modules)
    if key not in _controller:
        _controller.clear()
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _controller[key] = None
        else:
            _controller[key] = ThreadpoolController()
    return _controller[key]


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """BLAS and OpenMP on one thread inside the block (OpenMP's setting is per calling thread, so
    concurrent requests do not fight over it); ~10 us, for per-request code paths."""
    pools = None if _off() else _threadpools()
    if pools is None:
        yield
        return
    with pools.limit(limits={"blas": 1, "openmp": 1}):
        yield
