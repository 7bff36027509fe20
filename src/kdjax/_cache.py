"""Opt-in persistent compilation cache: later processes reuse kdjax's compiled XLA programs."""

from __future__ import annotations

import os
import sys

ENV_VAR = "KDJAX_CACHE_DIR"


def default_cache_dir() -> str:
    """``$KDJAX_CACHE_DIR`` if set and non-empty, else the user cache folder's ``kdjax``:
    ``$XDG_CACHE_HOME/kdjax`` (``~/.cache/kdjax`` when unset), on macOS ``~/Library/Caches/kdjax``."""
    env = os.environ.get(ENV_VAR)
    if env:
        return os.path.abspath(os.path.expanduser(env))
    if sys.platform == "darwin":
        return os.path.join(os.path.expanduser("~"), "Library", "Caches", "kdjax")
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        return os.path.join(os.environ["LOCALAPPDATA"], "kdjax", "Cache")
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "kdjax")


def enable_compilation_cache(path: str | os.PathLike | None = None) -> str:
    """Turn on JAX's persistent compilation cache in ``path`` and return the folder used.

    Every program JAX compiles afterwards in this process (kdjax's solves, sweeps, gradients
    and anything else) is written there, and a later process that compiles the same program
    with the same JAX/jaxlib version, backend and settings loads it instead of recompiling.
    kdjax's own programs are also kept there, traced and lowered (``kdjax-programs/``,
    kdjax._store), so a fresh process neither traces nor compiles them.

    ``path=None`` means the default folder: ``$KDJAX_CACHE_DIR`` if set and non-empty, else the
    user cache folder, ``$XDG_CACHE_HOME/kdjax`` (``~/.cache/kdjax`` when ``XDG_CACHE_HOME`` is
    unset or empty), on macOS ``~/Library/Caches/kdjax``.  The folder is created if needed;
    ``OSError`` is raised when it cannot be created or is not writable (nothing is changed then).

    It sets three global JAX options: ``jax_compilation_cache_dir`` to the folder, and
    ``jax_persistent_cache_min_compile_time_secs = 0`` and
    ``jax_persistent_cache_min_entry_size_bytes = -1`` so that every program is cached, however
    quick to compile or small.  Importing kdjax changes no JAX setting; only this call does (the
    ``kdjax`` command line calls it at start-up).  Call it before the first compilation whose
    result should be cached; calling it again with another folder moves the cache there.
    """
    import jax

    folder = os.path.abspath(os.path.expanduser(os.fspath(path))) if path is not None else default_cache_dir()
    os.makedirs(folder, exist_ok=True)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"compilation cache folder {folder} is not writable")
    previous = jax.config.jax_compilation_cache_dir
    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    if previous is not None and previous != folder:
        # JAX opens its cache once per process: drop the one opened on the previous folder.
        from jax.experimental.compilation_cache import compilation_cache

        compilation_cache.reset_cache()
    return folder
