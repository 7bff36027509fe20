"""The ``kdjax`` command: ``solve``, ``validate``, ``sweep`` and ``reproduce``.

Runs in float64.  Invalid input (a flag argparse cannot read, a value out of range, a malformed
grid or grid file) prints one line ``kdjax: error: ...`` naming the flag, parameter or field and
exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import sys

import jax

STUDENT_FLAGS = ("gamma", "temperature", "hard_weight", "lam_s", "student_data", "alpha_s")
TEACHER_FIELDS = ("gen_error", "m", "q", "b", "train_error", "train_loss", "converged")
STUDENT_FIELDS = ("gen_error", "m", "q", "r", "b", "agreement", "train_error", "train_loss", "converged")


class UsageError(Exception):
    """A user input error: printed on one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    """``argparse`` with one-line errors naming the flag (exit status 2, no usage block).

    Values that look like negative numbers (``-inf``, ``-1e-3``) are read as values, not options,
    so that the range checks name the flag they were given to.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(r"^-(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$|^-(inf|infinity|nan)$", re.I)

    def error(self, message):
        # "argument --alpha: must be ..." -> "--alpha must be ..."; argparse's own texts keep a colon.
        match = re.fullmatch(r"argument (\S+): (.*)", message)
        if match:
            flag, text = match.groups()
            message = f"{flag} {text}" if text.startswith("must ") else f"{flag}: {text}"
        self.exit(2, f"kdjax: error: {message}\n")


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None


def _positive_int(text: str) -> int:
    if not (text.isdigit() and int(text) >= 1):
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return int(text)


def _process_id(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}")
    return int(text)


def _output_file(text: str) -> str:
    path = pathlib.Path(text)
    if not text or path.is_dir() or not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"must be a file in an existing folder, got {text!r}")
    return text


def _one_of(*choices):
    def parse(text: str) -> str:
        if text not in choices:
            raise argparse.ArgumentTypeError(f"must be one of {', '.join(choices)}, got {text!r}")
        return text

    return parse


def _add_model_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--alpha", type=_number, default=2.0, help="samples per dimension n/N (> 0)")
    p.add_argument("--delta", type=_number, default=1.0, help="noise variance Delta (> 0)")
    p.add_argument("--rho", type=_number, default=0.5, help="P(y = +1), in (0, 1)")
    p.add_argument("--label-noise", type=_number, default=0.0,
                   help="probability eta of a flipped training label, [0, 1/2)")
    p.add_argument("--teacher-loss", default="logistic", help="logistic | square | hinge")
    p.add_argument("--lam-t", type=_number, default=0.1, help="teacher ridge (>= 0)")
    g = p.add_argument_group("student (any of these flags adds the KD student)")
    g.add_argument("--gamma", type=_number, help="fraction of coordinates the student sees, (0, 1]")
    g.add_argument("--temperature", type=_number, help="soft-label temperature T (> 0)")
    g.add_argument("--hard-weight", type=_number, help="weight a of the hard labels, [0, 1]")
    g.add_argument("--lam-s", type=_number, help="student ridge (>= 0)")
    g.add_argument("--student-data", help="same | fresh")
    g.add_argument("--alpha-s", type=_number, help="alpha_s of the fresh student set (> 0)")
    p.add_argument("--generation", action="append", metavar="KEY=VALUE,...",
                   help="one generation of a distillation chain, in order (repeatable): keys "
                        + ", ".join(GENERATION_KEYS) + "; data=fresh needs alpha_s (instead of the student flags)")


GENERATION_KEYS = ("gamma", "temperature", "hard_weight", "lam_s", "data", "alpha_s")


def _generation(text: str) -> dict:
    """``gamma=G,temperature=T,...`` as a dict (``ValueError`` for an unknown or repeated key)."""
    out = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in GENERATION_KEYS:
            raise ValueError(f"must be KEY=VALUE pairs with KEY one of {', '.join(GENERATION_KEYS)}; got {item!r}")
        if key in out:
            raise ValueError(f"names {key} twice")
        try:
            out[key] = value.strip() if key == "data" else _number(value)
        except argparse.ArgumentTypeError as err:
            raise ValueError(f"{key} {err}") from None
    return out


def _chain(specs) -> tuple:
    """The students of ``--generation`` flags, in order; errors name the generation."""
    from ._params import Student

    students = []
    for k, text in enumerate(specs, start=1):
        try:
            spec = _generation(text)
            students.append(Student(gamma=spec.get("gamma", 1.0), temperature=spec.get("temperature", 1.0),
                                    hard_weight=spec.get("hard_weight", 0.0), lam=spec.get("lam_s", 0.0),
                                    data=spec.get("data", "same"), alpha=spec.get("alpha_s")))
        except ValueError as err:
            raise UsageError(f"--generation {k}: {err}") from None
    return tuple(students)


def _model(args):
    from ._params import Mixture, Student, Teacher

    mixture = Mixture(args.alpha, args.delta, args.rho, args.label_noise)
    teacher = Teacher(args.teacher_loss, args.lam_t)
    if args.generation:
        if any(getattr(args, f) is not None for f in STUDENT_FLAGS):
            raise UsageError("give a chain either by --generation flags or by the single-student flags, not both")
        return mixture, teacher, _chain(args.generation)
    if all(getattr(args, f) is None for f in STUDENT_FLAGS):
        return mixture, teacher, None
    student = Student(
        gamma=1.0 if args.gamma is None else args.gamma,
        temperature=1.0 if args.temperature is None else args.temperature,
        hard_weight=0.0 if args.hard_weight is None else args.hard_weight,
        lam=0.0 if args.lam_s is None else args.lam_s,
        data="same" if args.student_data is None else args.student_data,
        alpha=args.alpha_s,
    )
    return mixture, teacher, student


def _as_dict(result, fields):
    out = {}
    for f in fields:
        v = getattr(result, f)
        out[f] = bool(v) if f == "converged" else float(v)
    return out


def cmd_solve(args) -> int:
    from ._generations.solve import chain_result, check_chain, fold, generations_of
    from ._params import SolverConfig
    from ._solve import message

    mixture, teacher, students = _model(args)
    students = (students,) if students is not None and not isinstance(students, tuple) else students
    generations = generations_of(teacher, students or ())
    regimes = check_chain(mixture, generations)  # no finite minimiser: one line, exit 2
    results = fold(mixture, generations, SolverConfig(), None, regimes)  # solve_chain(..., throw=False)
    if students is None:
        t = results[0]
        chain, payload = None, {"teacher": _as_dict(t, TEACHER_FIELDS)}
        result = t.result
    else:
        chain = chain_result(results)
        generations = [_as_dict(g, STUDENT_FIELDS + ("r_teacher",)) for g in chain.generations]
        payload = {"teacher": _as_dict(chain.teacher, TEACHER_FIELDS), "generations": generations,
                   "student": generations[-1]}
        result = chain.result
    from ._bayes import bayes_optimal_error

    payload["bayes_optimal_error"] = float(bayes_optimal_error(mixture, throw=False))
    if args.json:
        print(json.dumps(payload))
    else:
        print(f"bayes-optimal error {payload['bayes_optimal_error']}")
        rows = [("teacher", payload["teacher"])] + [(f"generation {k}", g)
                                                   for k, g in enumerate(payload.get("generations", []), start=1)]
        for who, values in rows:
            print(who)
            for k, v in values.items():
                print(f"  {k:12s} {v}")
    if int(result._value) != 0:
        who = "teacher" if chain is None or int(chain.failed) == 0 else f"generation {int(chain.failed)}"
        print(f"kdjax: the {who} fixed point did not converge: {message(result)}", file=sys.stderr)
        return 1
    return 0


def cmd_validate(args) -> int:
    from ._validate import FINITE_SIZE, Z_MAX, chain_panel, format_rows, kd_panel, run_panel, teacher_panel

    quick = args.quick
    n = args.n_features or (500 if quick else 1000)
    seeds = args.seeds or (4 if quick else 8)
    progress = lambda i, k, name: print(f"[{i}/{k}] {name}", file=sys.stderr, flush=True)
    panels = {"teacher": ("teacher", teacher_panel), "kd": ("knowledge distillation", kd_panel),
              "chain": ("distillation chain", chain_panel)}
    chosen = args.panel or list(panels)
    rows = []
    for key in dict.fromkeys(chosen):  # in the order given, each once
        title, panel = panels[key]
        print(f"== {title} panel, N = {n}, {seeds} seeds ==", file=sys.stderr)
        rows.extend(run_panel(panel(quick), n, seeds, progress))
    print(format_rows(rows))
    bad = [r for r in rows if not r.ok]
    print(f"\n{len(rows) - len(bad)} of {len(rows)} rows within tolerance "
          f"({Z_MAX:g} s.e.m. + finite-size allowance {FINITE_SIZE:g} (|theory| + 1) 1000/N)")
    return 1 if bad else 0


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def parse_values(name: str, spec) -> list[float]:
    """Grid values: a list of numbers, one number, ``"a,b,c"``, ``"lin:lo:hi:n"`` or ``"log:lo:hi:n"``."""
    import numpy as np

    if _is_number(spec):
        return [float(spec)]
    if isinstance(spec, (list, tuple)):
        bad = [v for v in spec if not _is_number(v)]
        if bad or not spec:
            got = f"got {bad[0]!r}" if bad else "got an empty list"
            raise UsageError(f"grid field {name!r}: expected a non-empty list of numbers, {got}")
        return [float(v) for v in spec]
    if not isinstance(spec, str):
        raise UsageError(f"grid field {name!r}: expected a list of numbers or a string, got {type(spec).__name__}")
    try:
        if spec.startswith(("lin:", "log:")):
            kind, lo, hi, n = spec.split(":")
            lo, hi, n = float(lo), float(hi), int(n)
            if n < 1:
                raise ValueError
            return list(np.linspace(lo, hi, n) if kind == "lin" else np.geomspace(lo, hi, n))
        return [float(v) for v in spec.split(",")]
    except ValueError:
        raise UsageError(f"grid field {name!r}: cannot read {spec!r} "
                         "(use a,b,c or lin:lo:hi:n or log:lo:hi:n)") from None


def read_grid_file(filename: str) -> dict:
    """The table ``name = values`` of a TOML (``.toml``) or JSON file, optionally under ``grid``."""
    path = pathlib.Path(filename)
    kind = "TOML" if path.suffix == ".toml" else "JSON"
    try:
        text = path.read_text()
    except OSError as err:
        raise UsageError(f"cannot read grid file {path}: {err.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"grid file {path} is not UTF-8 text") from None
    try:
        if kind == "TOML":
            import tomllib

            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except ValueError as err:  # tomllib.TOMLDecodeError, json.JSONDecodeError
        raise UsageError(f"grid file {path} is not valid {kind}: {err}") from None
    if isinstance(data, dict) and "grid" in data:
        extra = [k for k in data if k != "grid"]
        if extra:
            raise UsageError(f"grid file {path}: unexpected field {extra[0]!r} next to 'grid'")
        data = data["grid"]
    if not isinstance(data, dict):
        raise UsageError(f"grid file {path}: expected a table of parameter = values")
    return data


def read_grid(args) -> dict:
    from ._sweep import PARAMETERS, parameter

    items = list(read_grid_file(args.grid_file).items()) if args.grid_file is not None else []
    for item in args.grid or []:
        name, sep, spec = item.partition("=")
        if not sep:
            raise UsageError(f"--grid expects name=values, got {item!r}")
        items.append((name, spec))
    grid = {}
    for name, spec in items:
        name = name.strip().replace("-", "_")
        try:
            parameter(name)
        except ValueError:
            raise UsageError(f"grid field {name!r} is not a parameter; known: {', '.join(PARAMETERS)}, "
                             "genK.NAME for generation K of a chain") from None
        grid[name] = parse_values(name, spec)
    if not grid:
        raise UsageError("give the grid with --grid name=values or --grid-file")
    return grid


def _cluster_size() -> int:
    """The number of processes of a launcher JAX auto-detects (``srun`` under SLURM, ``mpirun`` of
    Open MPI) when it started this one; 1 otherwise (e.g. a batch script run without ``srun``)."""
    env = os.environ
    if "SLURM_JOB_ID" in env and "SLURM_STEP_NODELIST" in env:
        return int(env.get("SLURM_STEP_NUM_TASKS", env.get("SLURM_NTASKS", "1")) or 1)
    if "OMPI_COMM_WORLD_SIZE" in env:
        return int(env["OMPI_COMM_WORLD_SIZE"])
    return 1


def init_distributed(coordinator=None, num_processes=None, process_id=None) -> int:
    """``jax.distributed.initialize`` from the flags, or from the cluster's environment when the
    flags are absent and the launcher started several processes; nothing otherwise.  CPU
    processes exchange their results over gloo.  The number of processes."""
    given = {"--coordinator": coordinator, "--num-processes": num_processes, "--process-id": process_id}
    if any(v is not None for v in given.values()):
        missing = [flag for flag, v in given.items() if v is None]
        if missing:
            present = ", ".join(f for f in given if f not in missing)
            raise UsageError(f"{', '.join(missing)} must be given with {present}")
        if process_id >= num_processes:
            raise UsageError(f"--process-id must be below --num-processes ({num_processes}), got {process_id}")
        kwargs = dict(coordinator_address=coordinator, num_processes=num_processes, process_id=process_id)
    elif _cluster_size() > 1:
        kwargs = {}
    else:
        return 1
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(**kwargs)
    return jax.process_count()


def cmd_sweep(args) -> int:
    import numpy as np

    from ._params import Student
    from ._sweep import ProgressBar, format_cell, sweep, table_columns

    init_distributed(args.coordinator, args.num_processes, args.process_id)
    if args.resume and not args.out:
        raise UsageError("--resume needs --out, the file to resume")
    grid = read_grid(args)
    if "alpha_s" in grid:  # a grid over alpha_s implies fresh student data
        args.student_data = "fresh" if args.student_data is None else args.student_data
        args.alpha_s = grid["alpha_s"][0] if args.alpha_s is None else args.alpha_s
    mixture, teacher, student = _model(args)
    if student is None and {"gamma", "temperature", "hard_weight", "lam_s"} & set(grid):
        student = Student()
    lead = jax.process_index() == 0
    # The table is written as the chunks complete: to --out itself (CSV), or next to it (JSON, written
    # from the table at the end).
    table_file = None
    if args.out:
        table_file = args.out if args.format == "csv" else args.out + ".partial.csv"
    try:
        result = sweep(mixture, teacher, student, grid, chunk_size=args.chunk_size, batch_size=args.batch_size,
                       progress=ProgressBar("sweep", disable=None) if lead else None,  # on a terminal only
                       out=table_file, resume=args.resume)
    except OSError as err:
        raise UsageError(f"--out: cannot write {err.filename or args.out}: {err.strerror}") from None
    if not lead:
        return 0
    columns = table_columns(grid, result, student)
    if args.format == "json":
        text = json.dumps({k: v.tolist() for k, v in columns.items()})
    elif not args.out:
        lines = [",".join(columns)] + [",".join(map(format_cell, row)) for row in zip(*columns.values())]
        text = "".join(line + "\n" for line in lines)
    if args.out and args.format == "json":
        try:
            tmp = f"{args.out}.tmp-{os.getpid()}"
            with open(tmp, "w") as fh:
                fh.write(text)
            os.replace(tmp, args.out)
            os.remove(table_file)
        except OSError as err:
            raise UsageError(f"--out: cannot write {args.out}: {err.strerror}") from None
    elif not args.out:
        sys.stdout.write(text)
    codes = [np.asarray(v) for k, v in columns.items() if k.endswith("_result")]  # kdjax.RESULTS, 0 = successful
    bad = int(np.sum(np.any(np.stack(codes) != 0, axis=0)))
    if bad:
        print(f"kdjax: {bad} point(s) did not converge or have no finite minimiser (non-zero result code "
              "in the output)", file=sys.stderr)
    return 0


def cmd_reproduce(args) -> int:
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        raise UsageError('kdjax reproduce needs matplotlib: pip install "kdjax[paper]"')
    from ._sweep import ProgressBar
    from .paper import run

    bars = {}  # one bar per stage, on a terminal only

    def progress(stage: str, done: int, total: int):
        bars.setdefault(stage, ProgressBar(stage, disable=None))(done, total)

    try:
        pathlib.Path(args.out).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"--out: cannot create folder {args.out}: {err.strerror}") from None
    written = run(args.out, args.quick, progress)
    print(f"wrote {len(written)} files to {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="kdjax", description="Exact theory of knowledge distillation.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("solve", help="solve the teacher (and a KD student) at one setting")
    _add_model_flags(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_solve)
    p = sub.add_parser("validate", help="theory vs finite-N simulation on a built-in panel")
    p.add_argument("--quick", action="store_true", help="a smaller panel")
    p.add_argument("--n-features", type=_positive_int, help="simulation dimension N")
    p.add_argument("--seeds", type=_positive_int, help="simulation seeds per configuration")
    p.add_argument("--panel", action="append", choices=("teacher", "kd", "chain"),
                   help="run only this panel (repeatable; default: teacher, kd and chain)")
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser("sweep", help="solve a grid of settings in one compiled call, sharded over devices")
    _add_model_flags(p)
    p.add_argument("--grid", action="append", metavar="NAME=VALUES",
                   help="grid axis: a,b,c | lin:lo:hi:n | log:lo:hi:n (repeatable); names: alpha, delta, rho, "
                        "lam_t, gamma, temperature, hard_weight, lam_s, alpha_s")
    p.add_argument("--grid-file", help="TOML or JSON table name = [values] (optionally under [grid])")
    p.add_argument("--format", type=_one_of("csv", "json"), default="csv", metavar="{csv,json}")
    p.add_argument("--out", type=_output_file,
                   help="output file (default: stdout), written as the chunks complete; overwritten unless --resume")
    p.add_argument("--resume", action="store_true",
                   help="keep the points already in --out (same grid, else refused) and solve only the others")
    p.add_argument("--chunk-size", type=_positive_int,
                   help="points per compiled call (grids larger than memory; the most a killed sweep loses)")
    p.add_argument("--batch-size", type=_positive_int,
                   help="points solved together under vmap on a device (default: 1 on CPU, 256 on GPU)")
    g = p.add_argument_group("several processes (jax.distributed; automatic under srun / mpirun)")
    g.add_argument("--coordinator", metavar="HOST:PORT", help="address of process 0's coordinator")
    g.add_argument("--num-processes", type=_positive_int, metavar="P", help="number of processes")
    g.add_argument("--process-id", type=_process_id, metavar="I", help="this process, 0 ... P-1 (0 writes --out)")
    p.set_defaults(func=cmd_sweep)
    p = sub.add_parser("reproduce", help="the paper's results as figures, CSV data and report.md")
    p.add_argument("--out", default="kdjax-results", help="output folder (default ./kdjax-results)")
    p.add_argument("--quick", action="store_true", help="smaller grids (about 2 minutes)")
    p.set_defaults(func=cmd_reproduce)
    return parser


def main(argv=None) -> int:
    """Run the command line (``argv``: the arguments, default ``sys.argv[1:]``).

    As the ``kdjax`` command (``argv=None``) it turns on the persistent compilation cache
    (``kdjax.enable_compilation_cache``) before anything is compiled, so that later runs load
    the compiled programs instead of recompiling them: the folder is ``$KDJAX_CACHE_DIR`` if set,
    else the user cache folder; ``KDJAX_CACHE_DIR=""`` turns the cache off.  A folder that cannot
    be created or written gives a one-line warning and the command runs without the cache.  A
    call with an explicit ``argv`` (from Python: tests, scripts) leaves the JAX cache settings
    as they are.
    """
    import os

    from ._cache import ENV_VAR, default_cache_dir, enable_compilation_cache

    jax.config.update("jax_enable_x64", True)
    parser = build_parser()
    args = parser.parse_args(argv)
    if argv is None and os.environ.get(ENV_VAR) != "":
        folder = default_cache_dir()
        try:
            enable_compilation_cache(folder)
        except OSError as err:
            reason = err.strerror or str(err)
            print(f"kdjax: warning: cannot use the compilation cache folder {folder} ({reason}); "
                  "running without the cache", file=sys.stderr)
    try:
        return args.func(args)
    except (ValueError, NotImplementedError, UsageError) as err:
        print(f"kdjax: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
