"""Sweeps that lose nothing: ``--out`` written per chunk, ``--resume`` (several processes:
test_sweep_distributed.py).

Every sweep here is the same teacher grid solved two points per compiled call (per process), so
that the test process compiles it once and the CLI subprocesses share one persistent compilation
cache.
"""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

import kdjax
from kdjax import sweep
from kdjax.cli import main

SRC = str(pathlib.Path(__file__).resolve().parents[1] / "src")
GRID = ["--grid", "lam_t=0.01,0.1,1", "--grid", "alpha=0.5,1,2,4"]  # 12 points
N = 12


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    cache = tmp_path_factory.mktemp("jax-cache")
    return dict(os.environ, PYTHONPATH=SRC, JAX_COMPILATION_CACHE_DIR=str(cache),
                JAX_PLATFORMS="cpu", XLA_FLAGS="")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run's table (CSV text)."""
    path = tmp_path_factory.mktemp("ref") / "ref.csv"
    assert main(["sweep", *GRID, "--chunk-size", "2", "--out", str(path)]) == 0
    return path.read_text()


def cli(*args):
    return [sys.executable, "-m", "kdjax.cli", "sweep", *GRID, *args]


def complete_lines(path):
    data = path.read_bytes() if path.exists() else b""
    return data.count(b"\n")


def test_a_killed_cli_sweep_resumes_to_the_uninterrupted_table(tmp_path, env, reference):
    out = tmp_path / "t.csv"
    proc = subprocess.Popen(cli("--chunk-size", "2", "--out", str(out)), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while complete_lines(out) < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)  # header + the first chunk's two rows
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGTERM, "the sweep ended before it was killed"
    rows = complete_lines(out) - 1
    assert 2 <= rows < N
    done = subprocess.run(cli("--chunk-size", "2", "--out", str(out), "--resume"), env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"{rows} of {N} points found, {N - rows} remain" in done.stderr
    assert out.read_text() == reference


def test_a_truncated_file_resumes(tmp_path, reference, capsys):
    out = tmp_path / "t.csv"
    lines = reference.splitlines(keepends=True)
    out.write_text("".join(lines[:4]) + lines[4][:17])  # header, three rows and a cut row
    assert main(["sweep", *GRID, "--chunk-size", "2", "--out", str(out), "--resume"]) == 0
    assert f"3 of {N} points found, {N - 3} remain" in capsys.readouterr().err
    assert out.read_text() == reference
    # resuming a complete file solves nothing and changes nothing
    assert main(["sweep", *GRID, "--chunk-size", "2", "--out", str(out), "--resume"]) == 0
    assert f"{N} of {N} points found, 0 remain" in capsys.readouterr().err
    assert out.read_text() == reference


@pytest.mark.parametrize("grid,needle", [
    (["--grid", "lam_t=0.01,0.1,1", "--grid", "alpha=0.5,1,2,5"], "point 3 has alpha = 4.0 in the file but 5.0"),
    (["--grid", "lam_t=0.01,0.1,1", "--grid", "delta=0.5,1,2,4"], "its grid is over (lam_t, alpha)"),
    (["--grid", "lam_t=0.01,0.1", "--grid", "alpha=0.5,1,2,4"], "has index 8, outside the requested grid of 8"),
])
def test_a_mismatched_grid_is_refused_on_one_line(tmp_path, reference, capsys, grid, needle):
    out = tmp_path / "t.csv"
    out.write_text(reference)
    assert main(["sweep", *grid, "--out", str(out), "--resume"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kdjax: error: cannot resume") and err.count("\n") == 1, err
    assert needle in err
    assert out.read_text() == reference  # untouched


def test_the_api_writes_per_chunk_resumes_and_returns_the_full_result(tmp_path, reference):
    mix, teacher = kdjax.Mixture(2.0, 1.0), kdjax.Teacher("logistic", 0.1)
    grid = {"lam_t": [0.01, 0.1, 1.0], "alpha": [0.5, 1.0, 2.0, 4.0]}
    out = tmp_path / "t.csv"
    out.write_text("not a table\n")  # overwritten without resume
    seen = []
    whole = sweep(mix, teacher, None, grid, chunk_size=2, out=out, progress=lambda d, t: seen.append(d))
    assert out.read_text() == reference and seen == list(range(2, N + 1, 2))
    lines = reference.splitlines(keepends=True)
    out.write_text(lines[0] + "".join(lines[5:9]))  # a hole: rows 0..3 missing, 4..7 present
    again = sweep(mix, teacher, None, grid, chunk_size=2, out=out, resume=True)
    assert out.read_text() == reference  # sorted as an uninterrupted run writes it
    assert type(again) is type(whole) and again.gen_error.shape == (3, 4)
    same = jax.tree.map(lambda a, b: a.dtype == b.dtype and np.array_equal(a, b), whole, again)
    assert all(jax.tree.leaves(same))
    with pytest.raises(ValueError, match="resume=True needs out"):
        sweep(mix, teacher, None, grid, resume=True)


def test_json_output_comes_from_the_table_at_the_end(tmp_path, reference):
    out = tmp_path / "t.json"
    assert main(["sweep", *GRID, "--chunk-size", "2", "--format", "json", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert not (tmp_path / "t.json.partial.csv").exists()
    header = reference.splitlines()[0].split(",")
    assert list(data) == header and data["index"] == list(range(N))
    assert data["teacher_result"] == [0] * N  # kdjax.RESULTS.successful


def test_progress_true_draws_a_tqdm_bar_on_stderr_and_a_callable_is_called_per_chunk(capsys):
    mix, teacher = kdjax.Mixture(2.0, 1.0), kdjax.Teacher("logistic", 0.1)
    grid = {"lam_t": [0.01, 0.1, 1.0], "alpha": [0.5, 1.0, 2.0, 4.0]}
    capsys.readouterr()
    quiet = sweep(mix, teacher, None, grid, chunk_size=2, progress=False)
    assert capsys.readouterr().err == ""
    shown = sweep(mix, teacher, None, grid, chunk_size=2, progress=True)
    err = capsys.readouterr().err
    assert "sweep" in err and f"{N}/{N}" in err and "100%" in err and "pt/s" in err, err
    calls = []
    sweep(mix, teacher, None, grid, chunk_size=2, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(d, N) for d in range(2, N + 1, 2)] and capsys.readouterr().err == ""
    assert np.array_equal(quiet.gen_error, shown.gen_error)
    with pytest.raises(ValueError, match="progress must be"):
        sweep(mix, teacher, None, grid, progress="yes")


def test_the_cli_bar_is_drawn_on_a_terminal_only(tmp_path, capsys, reference):
    assert main(["sweep", *GRID, "--chunk-size", "2", "--out", str(tmp_path / "t.csv")]) == 0
    assert capsys.readouterr().err == ""  # stderr is not a terminal here
