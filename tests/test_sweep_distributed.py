"""``kdjax sweep`` on two CPU processes (jax.distributed over localhost, gloo) equals one process."""

import os
import pathlib
import socket
import subprocess
import sys

import numpy as np

from kdjax.cli import main

SRC = str(pathlib.Path(__file__).resolve().parents[1] / "src")
# A square-loss teacher (the cheapest solve to compile): 6 points, 3 per process.
SWEEP = ["sweep", "--teacher-loss", "square", "--grid", "lam_t=0.01,0.1,1", "--grid", "alpha=0.5,2"]


def free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def table(path):
    lines = pathlib.Path(path).read_text().splitlines()
    return lines[0], np.array([[float(c) for c in line.split(",")] for line in lines[1:]])


def test_two_processes_give_the_one_process_table(tmp_path):
    env = dict(os.environ, PYTHONPATH=SRC, JAX_PLATFORMS="cpu", XLA_FLAGS="",
               JAX_COMPILATION_CACHE_DIR=str(tmp_path / "cache"))
    out, port = tmp_path / "two.csv", free_port()
    flags = lambda i: ["--out", str(out), "--coordinator", f"localhost:{port}", "--num-processes", "2",
                       "--process-id", str(i)]
    procs = [subprocess.Popen([sys.executable, "-m", "kdjax.cli", *SWEEP, *flags(i)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in (0, 1)]
    one = tmp_path / "one.csv"
    assert main([*SWEEP, "--chunk-size", "3", "--out", str(one)]) == 0  # meanwhile, in this process
    errs = [p.communicate(timeout=240)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs[0][-2000:] + errs[1][-2000:]
    (head2, two_table), (head1, one_table) = table(out), table(one)
    assert head2 == head1 and two_table.shape == (6, one_table.shape[1])
    np.testing.assert_allclose(two_table, one_table, rtol=1e-10, atol=1e-10)
