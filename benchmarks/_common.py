"""Shared settings, jitted solves and timing helpers of the benchmark suite.

Every benchmark imports this module first: it turns on float64 (the library never does), and
holds the single jitted teacher / student solves, so that a suite run compiles each of them once
(``first_call`` measures that compilation once; later benchmarks in the same process reuse it),
and the timing helpers every benchmark uses.
"""

from __future__ import annotations

import os
import platform
import statistics
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import kdjax  # noqa: E402

# The benchmark point (issue 6): logistic teacher, lam_t = 0.1, alpha = 2.
MIXTURE = dict(alpha=2.0, delta=1.0, rho=0.5)
TEACHER_LAM = 0.1
STUDENT = dict(gamma=0.5, temperature=2.0, hard_weight=0.3, lam=0.01)
FRESH_ALPHA = 2.0


def mixture(**over) -> kdjax.Mixture:
    return kdjax.Mixture(**{k: float(v) for k, v in (MIXTURE | over).items()})


def teacher(lam=TEACHER_LAM) -> kdjax.Teacher:
    return kdjax.Teacher("logistic", float(lam))


def student(data="same", **over) -> kdjax.Student:
    kw = {k: float(v) for k, v in (STUDENT | over).items()}
    if data == "fresh":
        kw["alpha"] = float(kw.get("alpha", FRESH_ALPHA))
    return kdjax.Student(data=data, **kw)


# Params are traced arguments: one compilation serves every parameter value (and the "fresh"
# student, whose data mode is static metadata, has its own).
teacher_jit = jax.jit(lambda mix, t: kdjax.solve_teacher(mix, t, throw=False))
student_jit = jax.jit(lambda mix, t, s: kdjax.solve_student(mix, t, s, throw=False))


def timed(fn, *args):
    """(result, seconds) of one call, waiting for the device."""
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return out, time.perf_counter() - t0


def repeat(fn, args, n: int):
    """Wall times of ``n`` calls (results ready), and the last result."""
    times, out = [], None
    for _ in range(n):
        out, dt = timed(fn, *args)
        times.append(dt)
    return times, out


_FIRST_CALLS: dict = {}


def first_call(fn, *args) -> float:
    """Seconds of the first call of ``fn`` in this process for the structure of ``args`` (trace +
    XLA compile + one solve), measured once and remembered, so that every benchmark that uses the
    shared jitted solves reports the same compilation, whichever ran first."""
    key = (fn, jax.tree_util.tree_structure(args))
    if key not in _FIRST_CALLS:
        _FIRST_CALLS[key] = timed(fn, *args)[1]
    return _FIRST_CALLS[key]


def solve_timing(fn, args, n: int) -> tuple[dict, object]:
    """Median (and min, max) of ``n`` warm calls, with ``compile_s`` = first call minus median."""
    first = first_call(fn, *args)
    times, out = repeat(fn, args, n)
    row = summary(times)
    row.update(first_call_s=first, compile_s=first - row["median_s"])
    return row, out


def cold_warm(thunk) -> tuple[object, dict]:
    """Two calls of ``thunk`` (a cached compiled path: the second reuses the first's
    compilation): ``first_call_s`` (compile + run), ``seconds`` (the second, the run alone) and
    ``compile_s`` (their difference)."""
    _, first = timed(thunk)
    out, second = timed(thunk)
    return out, dict(first_call_s=first, seconds=second, compile_s=first - second)


def summary(times) -> dict:
    times = [float(t) for t in times]
    return dict(
        median_s=statistics.median(times),
        min_s=min(times),
        max_s=max(times),
        repeats=len(times),
    )


def device_name() -> str:
    d = jax.devices()[0]
    return f"{d.platform}:{getattr(d, 'device_kind', str(d))}"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def source_digest() -> str:
    """sha256 (first 16 hex digits) of kdjax's source files as imported: identifies the library
    version a run measured (the tree may be edited between runs)."""
    import hashlib

    root = os.path.dirname(kdjax.__file__)
    h = hashlib.sha256()
    for name in sorted(os.listdir(root)):
        if name.endswith(".py"):
            with open(os.path.join(root, name), "rb") as fh:
                h.update(name.encode() + b"\0" + fh.read())
    return h.hexdigest()[:16]


def machine_info() -> dict:
    import scipy

    try:
        import jaxlib

        jaxlib_version = jaxlib.__version__
    except Exception:  # pragma: no cover
        jaxlib_version = "unknown"
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        affinity = os.cpu_count()
    return dict(
        kdjax_source_sha256=source_digest(),
        cpu_model=cpu_model(),
        cpu_cores_available=affinity,
        platform=platform.platform(),
        python=platform.python_version(),
        jax=jax.__version__,
        jaxlib=jaxlib_version,
        numpy=np.__version__,
        scipy=scipy.__version__,
        kdjax=getattr(kdjax, "__version__", "?"),
        backend=jax.default_backend(),
        devices=[str(d) for d in jax.devices()],
        device=device_name(),
        x64=bool(jax.config.jax_enable_x64),
    )


__all__ = [
    "jax", "jnp", "np", "kdjax", "mixture", "teacher", "student", "teacher_jit", "student_jit",
    "timed", "repeat", "first_call", "solve_timing", "cold_warm", "summary", "machine_info",
    "device_name",
]
