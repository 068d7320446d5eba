"""Thread pools sized once per process, before numeric libraries start.

On a small machine whose other core is busy, BLAS threads that spin-wait and OpenMP runtimes that
busy-wait turn a 25-s build into minutes (measured: scipy L-BFGS 4 ms -> 61 ms per call). The
command line calls :func:`configure` first; library users keep full control of their own process.
"""
from __future__ import annotations

import os

#: Environment defaults the command line applies unless the user set them.
DEFAULTS = {
    "OMP_WAIT_POLICY": "PASSIVE",  # OpenMP (LightGBM, FAISS, torch) sleeps instead of spinning
    "OPENBLAS_NUM_THREADS": "1",  # small dense problems: one BLAS thread beats two fighting for a core
    "MKL_NUM_THREADS": "1",
    "KMP_BLOCKTIME": "0",
}


def configure() -> dict[str, str]:
    """Apply :data:`DEFAULTS` where unset; if BLAS is already loaded, limit it too. Returns what applies."""
    for key, value in DEFAULTS.items():
        os.environ.setdefault(key, value)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=int(os.environ["OPENBLAS_NUM_THREADS"]), user_api="blas")
    except (ImportError, ValueError):
        pass
    return {k: os.environ[k] for k in DEFAULTS}
