"""The persistent compilation cache: opt-in for the library, on by default for the CLI (issue 12).

Every check that compiles runs in a fresh interpreter, with HOME and XDG_CACHE_HOME pointed into
tmp_path, so the test process's JAX settings and the user's cache folder are left alone.
"""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

import kdjax
from kdjax._cache import default_cache_dir

SRC = str(pathlib.Path(kdjax.__file__).resolve().parent.parent)
SOLVE = ["solve", "--alpha", "2", "--lam-t", "0.1", "--json"]


def _env(tmp_path, **over):
    home, xdg = tmp_path / "home", tmp_path / "xdg"
    home.mkdir(exist_ok=True)
    xdg.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "KDJAX_CACHE_DIR"}
    env.update(HOME=str(home), XDG_CACHE_HOME=str(xdg),
               PYTHONPATH=os.pathsep.join([SRC] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    env.update(over)
    return env


def _cli(argv, env):
    return subprocess.run([sys.executable, "-m", "kdjax.cli", *argv], env=env, capture_output=True,
                          text=True, timeout=300)


def _files(folder: pathlib.Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_second_cli_run_compiles_nothing_new_and_prints_the_same(tmp_path):
    cache = tmp_path / "cache"
    env = _env(tmp_path, KDJAX_CACHE_DIR=str(cache))
    first = _cli(SOLVE, env)
    assert first.returncode == 0, first.stderr[-2000:]
    written = _files(cache)
    assert any(name.startswith("jit_") for name in written), written
    second = _cli(SOLVE, env)
    assert second.returncode == 0, second.stderr[-2000:]
    assert _files(cache) == written  # every program came from the cache
    assert any(name.startswith("kdjax-programs/") for name in written), written  # and from kdjax's store
    assert json.loads(second.stdout) == json.loads(first.stdout)
    assert second.stdout == first.stdout
    # Nothing went to the default folder either.
    assert _files(tmp_path / "home") == [] and _files(tmp_path / "xdg") == []


def test_stored_programs_give_the_plain_call_s_numbers(tmp_path):
    """A two-generation chain and its training observables: the run that stores kdjax's programs,
    the run that loads them, and a run without any cache print the same digits."""
    chain = ["solve", "--alpha", "2", "--lam-t", "0.05", "--label-noise", "0.1",
             "--generation", "gamma=1,temperature=2,hard_weight=0,lam_s=0.01,data=same",
             "--generation", "gamma=0.7,temperature=3,hard_weight=0.2,lam_s=0.02,data=same", "--json"]
    cache = tmp_path / "cache"
    stored = _cli(chain, _env(tmp_path, KDJAX_CACHE_DIR=str(cache)))
    assert stored.returncode == 0, stored.stderr[-2000:]
    programs = [name for name in _files(cache) if name.startswith("kdjax-programs/")]
    assert len(programs) >= 3, programs  # the teacher, two generations (and their observables)
    loaded = _cli(chain, _env(tmp_path, KDJAX_CACHE_DIR=str(cache)))
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert [name for name in _files(cache) if name.startswith("kdjax-programs/")] == programs
    plain = _cli(chain, _env(tmp_path, KDJAX_CACHE_DIR=""))
    assert plain.returncode == 0, plain.stderr[-2000:]
    assert stored.stdout == loaded.stdout == plain.stdout
    assert len(json.loads(plain.stdout)["generations"]) == 2


def test_a_program_without_a_stable_description_runs_plainly(tmp_path):
    code = textwrap.dedent(
        """
        import os, sys, jax, jax.numpy as jnp
        import kdjax
        from kdjax._compile import jit
        from kdjax._store import SUBFOLDER
        kdjax.enable_compilation_cache(sys.argv[1])
        plus_one = jit(lambda x, *, tag: x + 1.0, static_argnames=("tag",))
        assert float(plus_one(jnp.ones(()), tag=object())) == 2.0  # an object named by its address
        assert not os.path.exists(os.path.join(sys.argv[1], SUBFOLDER))
        # two lambdas of one line's structure, and a closure: three programs, each its own numbers
        scale = jit(lambda x, *, f: f(x) + 1.0, static_argnames=("f",))
        assert float(scale(jnp.ones(()), f=lambda v: 3.0 * v)) == 4.0
        assert float(scale(jnp.ones(()), f=lambda v: 5.0 * v)) == 6.0
        k = 7.0
        assert float(scale(jnp.ones(()), f=lambda v: k * v)) == 8.0
        assert len(os.listdir(os.path.join(sys.argv[1], SUBFOLDER))) == 3
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "cache")], env=_env(tmp_path),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "ok"


def test_descriptions_survive_pickling():
    """The store names a program by ``describe``: equal values, also unpickled ones (a later
    process's arguments), are described alike; different values differently."""
    import pickle

    from kdjax._store import describe

    values = (kdjax.SolverConfig(), kdjax.SolverConfig(max_steps=2000, chain_nodes=(48, 6)),
              kdjax.Teacher("hinge", 0.5), kdjax.Student(gamma=0.5, temperature=2.0, data="fresh", alpha=3.0))
    for value in values:
        assert describe(pickle.loads(pickle.dumps(value))) == describe(value)
    assert describe(values[0]) != describe(values[1])
    assert describe(lambda v: 2.0 * v) != describe(lambda v: 3.0 * v)
    with pytest.raises(ValueError, match="no stable description"):
        describe(object())


def test_empty_kdjax_cache_dir_turns_the_cache_off(tmp_path):
    env = _env(tmp_path, KDJAX_CACHE_DIR="")
    out = _cli(["solve", "--alpha", "2", "--lam-t", "0.1", "--teacher-loss", "square", "--json"], env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout)["teacher"]["converged"]
    assert _files(tmp_path) == []  # tmp HOME and XDG_CACHE_HOME stay empty


def test_a_folder_that_cannot_be_created_warns_once_and_the_command_runs_on(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    env = _env(tmp_path, KDJAX_CACHE_DIR=str(blocker / "cache"))
    out = _cli(["sweep"], env)  # fails on its missing grid before compiling anything
    lines = out.stderr.splitlines()
    assert lines[0].startswith("kdjax: warning: cannot use the compilation cache folder "), out.stderr
    assert "running without the cache" in lines[0]
    assert lines[1:] == ["kdjax: error: give the grid with --grid name=values or --grid-file"], out.stderr
    assert out.returncode == 2


def test_import_changes_no_jax_setting_and_enable_compilation_cache_does(tmp_path):
    code = textwrap.dedent(
        """
        import os, sys, jax, jax.numpy as jnp
        names = ["jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
                 "jax_persistent_cache_min_entry_size_bytes"]
        before = {n: jax.config.values[n] for n in names}
        import kdjax
        assert jax.config.jax_compilation_cache_dir is None
        assert {n: jax.config.values[n] for n in names} == before, before
        one, two = sys.argv[1], sys.argv[2]
        assert kdjax.enable_compilation_cache(one) == one
        assert jax.config.jax_compilation_cache_dir == one
        assert jax.config.jax_persistent_cache_min_compile_time_secs == 0
        assert jax.config.jax_persistent_cache_min_entry_size_bytes == -1
        jax.jit(lambda x: x * 3.0 + 1.0)(jnp.ones(3)).block_until_ready()
        assert any(f.startswith("jit_") for f in os.listdir(one)), os.listdir(one)
        os.environ["KDJAX_CACHE_DIR"] = two
        assert kdjax.enable_compilation_cache() == two  # path=None: $KDJAX_CACHE_DIR, created
        jax.jit(lambda x: x * 5.0 - 2.0)(jnp.ones(4)).block_until_ready()
        assert any(f.startswith("jit_") for f in os.listdir(two)), os.listdir(two)
        print("ok")
        """
    )
    one, two = tmp_path / "one", tmp_path / "two" / "nested"
    out = subprocess.run([sys.executable, "-c", code, str(one), str(two)], env=_env(tmp_path),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "ok"


@pytest.mark.skipif(sys.platform in ("darwin", "win32"), reason="XDG layout")
def test_default_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("KDJAX_CACHE_DIR", str(tmp_path / "mine"))
    assert default_cache_dir() == str(tmp_path / "mine")
    monkeypatch.setenv("KDJAX_CACHE_DIR", "")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == str(tmp_path / "xdg" / "kdjax")
    monkeypatch.delenv("KDJAX_CACHE_DIR")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_cache_dir() == str(tmp_path / ".cache" / "kdjax")


def test_enable_compilation_cache_is_public():
    assert "enable_compilation_cache" in kdjax.__all__
    assert "KDJAX_CACHE_DIR" in kdjax.enable_compilation_cache.__doc__
