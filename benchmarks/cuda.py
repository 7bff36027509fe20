"""(f) The latency, grid and recipe benchmarks on a CUDA device, when there is one.

    python benchmarks/cuda.py [--quick]

Runs ``latency``, ``grid`` and ``recipe`` (its grid as one ``jit(vmap)``) on ``jax.devices("gpu")[0]``
and writes ``benchmarks/results_cuda.json`` / ``results_cuda.md`` with the device's name.  Without a
GPU (or without a CUDA-enabled jaxlib) it says so and exits 0.
"""

from __future__ import annotations

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def gpu_devices():
    import jax

    try:
        return jax.devices("gpu")
    except RuntimeError:
        return []


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    gpus = gpu_devices()
    if not gpus:
        print("cuda.py: no CUDA device available to JAX (jax.devices('gpu') is empty or the backend is "
              "missing); nothing to run.")
        return 0
    import run_all

    quick = "--quick" in argv
    res = run_all.run_suite(quick, modules=("latency", "grid", "recipe"))
    res["machine"]["gpu"] = [getattr(d, "device_kind", str(d)) for d in gpus]
    res = run_all._jsonable(res)
    out = os.path.join(HERE, "results_cuda")
    with open(out + ".json", "w") as fh:
        json.dump(res, fh, indent=1)
    with open(out + ".md", "w") as fh:
        title = f"# kdjax benchmarks on {res['machine']['gpu'][0]}"
        fh.write(run_all.markdown(res).replace("# kdjax benchmarks", title, 1))
    print(f"wrote {out}.json and {out}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
