"""The ``kdjax`` command: ``solve``, ``validate``, ``sweep`` and ``reproduce``.

Runs in float64.  Invalid input (a flag argparse cannot read, a value out of range, a malformed
grid or grid file) prints one line ``kdjax: error: ...`` naming the flag, parameter or field and
exits with status 2.
"""

from __future__ import annotations

import argparse
import json
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
    p.add_argument("--teacher-loss", default="logistic", help="logistic | square | hinge")
    p.add_argument("--lam-t", type=_number, default=0.1, help="teacher ridge (>= 0)")
    g = p.add_argument_group("student (any of these flags adds the KD student)")
    g.add_argument("--gamma", type=_number, help="fraction of coordinates the student sees, (0, 1]")
    g.add_argument("--temperature", type=_number, help="soft-label temperature T (> 0)")
    g.add_argument("--hard-weight", type=_number, help="weight a of the hard labels, [0, 1]")
    g.add_argument("--lam-s", type=_number, help="student ridge (>= 0)")
    g.add_argument("--student-data", help="same | fresh")
    g.add_argument("--alpha-s", type=_number, help="alpha_s of the fresh student set (> 0)")


def _model(args):
    from ._params import Mixture, Student, Teacher

    mixture = Mixture(args.alpha, args.delta, args.rho)
    teacher = Teacher(args.teacher_loss, args.lam_t)
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
    from ._student import solve_student
    from ._teacher import solve_teacher

    mixture, teacher, student = _model(args)
    if student is None:
        t = solve_teacher(mixture, teacher)
        payload = {"teacher": _as_dict(t, TEACHER_FIELDS)}
        ok = bool(t.converged)
    else:
        s = solve_student(mixture, teacher, student)
        payload = {"teacher": _as_dict(s.teacher, TEACHER_FIELDS), "student": _as_dict(s, STUDENT_FIELDS)}
        ok = bool(s.converged)
    if args.json:
        print(json.dumps(payload))
    else:
        for who, values in payload.items():
            print(who)
            for k, v in values.items():
                print(f"  {k:12s} {v}")
    if not ok:
        print("kdjax: the fixed point did not converge", file=sys.stderr)
        return 1
    return 0


def cmd_validate(args) -> int:
    from . import _validate as validate

    quick = args.quick
    n = args.n_features or (500 if quick else 1000)
    seeds = args.seeds or (4 if quick else 8)
    progress = lambda i, k, name: print(f"[{i}/{k}] {name}", file=sys.stderr, flush=True)
    rows = []
    for title, panel in (("teacher", validate.teacher_panel(quick)), ("knowledge distillation", validate.kd_panel(quick))):
        print(f"== {title} panel, N = {n}, {seeds} seeds ==", file=sys.stderr)
        rows.extend(validate.run_panel(panel, n, seeds, progress))
    print(validate.format_rows(rows))
    bad = [r for r in rows if not r.ok]
    print(f"\n{len(rows) - len(bad)} of {len(rows)} rows within tolerance "
          f"({validate.Z_MAX:g} s.e.m. + finite-size allowance {validate.FINITE_SIZE:g} (|theory| + 1) 1000/N)")
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
        raise UsageError(f"grid field {name!r}: cannot read {spec!r} (use a,b,c or lin:lo:hi:n or log:lo:hi:n)") from None


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
    from ._sweep import PARAMETERS

    items = list(read_grid_file(args.grid_file).items()) if args.grid_file is not None else []
    for item in args.grid or []:
        name, sep, spec = item.partition("=")
        if not sep:
            raise UsageError(f"--grid expects name=values, got {item!r}")
        items.append((name, spec))
    grid = {}
    for name, spec in items:
        name = name.strip().replace("-", "_")
        if name not in PARAMETERS:
            raise UsageError(f"grid field {name!r} is not a parameter; known: {', '.join(PARAMETERS)}")
        grid[name] = parse_values(name, spec)
    if not grid:
        raise UsageError("give the grid with --grid name=values or --grid-file")
    return grid


def _progress_bar(label: str):
    def update(done: int, total: int):
        width = 30
        filled = int(width * done / max(total, 1))
        print(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}", end="", file=sys.stderr, flush=True)
        if done >= total:
            print(file=sys.stderr)

    return update


def cmd_sweep(args) -> int:
    import csv
    import io

    import numpy as np

    from ._params import Student
    from ._sweep import grid_points, sweep

    grid = read_grid(args)
    if "alpha_s" in grid:  # a grid over alpha_s implies fresh student data
        args.student_data = "fresh" if args.student_data is None else args.student_data
        args.alpha_s = grid["alpha_s"][0] if args.alpha_s is None else args.alpha_s
    mixture, teacher, student = _model(args)
    if student is None and {"gamma", "temperature", "hard_weight", "lam_s"} & set(grid):
        student = Student()
    result = sweep(mixture, teacher, student, grid, chunk_size=args.chunk_size, batch_size=args.batch_size,
                   progress=_progress_bar("sweep"))
    flat, _ = grid_points(grid)
    columns = dict(flat)
    if student is None:
        parts = {"teacher": result}
    else:
        parts = {"teacher": result.teacher, "student": result}
    fields = {"teacher": TEACHER_FIELDS + ("residual", "finite_minimiser"),
              "student": STUDENT_FIELDS + ("residual", "finite_minimiser")}
    for who, res in parts.items():
        for f in fields[who]:
            columns[f"{who}_{f}"] = np.asarray(getattr(res, f)).reshape(-1)
    if args.format == "json":
        text = json.dumps({k: v.tolist() for k, v in columns.items()})
    else:
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(columns)
        for row in zip(*columns.values()):
            writer.writerow([int(v) if isinstance(v, (bool, np.bool_)) else repr(float(v)) for v in row])
        text = buf.getvalue()
    if args.out:
        try:
            with open(args.out, "w") as fh:
                fh.write(text)
        except OSError as err:
            raise UsageError(f"--out: cannot write {args.out}: {err.strerror}") from None
    else:
        sys.stdout.write(text)
    bad = int(sum(np.sum(~np.asarray(p.converged)) for p in parts.values()))
    if bad:
        print(f"kdjax: {bad} point(s) did not converge or have no finite minimiser (flagged in the output)", file=sys.stderr)
    return 0


def cmd_reproduce(args) -> int:
    try:
        import matplotlib  # noqa: F401  (the paper extra; the figures import it lazily)
    except ImportError:
        raise UsageError('kdjax reproduce needs matplotlib: pip install "kdjax[paper]"') from None
    from .paper import report

    bars = {}

    def progress(stage: str, done: int, total: int):
        bars.setdefault(stage, _progress_bar(stage))(done, total)

    try:
        pathlib.Path(args.out).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"--out: cannot create folder {args.out}: {err.strerror}") from None
    written = report.run(args.out, args.quick, progress)
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
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser("sweep", help="solve a grid of settings in one compiled call, sharded over devices")
    _add_model_flags(p)
    p.add_argument("--grid", action="append", metavar="NAME=VALUES",
                   help="grid axis: a,b,c | lin:lo:hi:n | log:lo:hi:n (repeatable); names: alpha, delta, rho, "
                        "lam_t, gamma, temperature, hard_weight, lam_s, alpha_s")
    p.add_argument("--grid-file", help="TOML or JSON table name = [values] (optionally under [grid])")
    p.add_argument("--format", type=_one_of("csv", "json"), default="csv", metavar="{csv,json}")
    p.add_argument("--out", type=_output_file, help="output file (default: stdout)")
    p.add_argument("--chunk-size", type=_positive_int, help="points per compiled call (grids larger than memory)")
    p.add_argument("--batch-size", type=_positive_int,
                   help="points solved together under vmap on a device (default: 1 on CPU, 256 on GPU)")
    p.set_defaults(func=cmd_sweep)
    p = sub.add_parser("reproduce", help="the paper's results as figures, CSV data and report.md")
    p.add_argument("--out", default="kdjax-results", help="output folder (default ./kdjax-results)")
    p.add_argument("--quick", action="store_true", help="smaller grids (about 2 minutes)")
    p.set_defaults(func=cmd_reproduce)
    return parser


def main(argv=None) -> int:
    jax.config.update("jax_enable_x64", True)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, UsageError) as err:
        print(f"kdjax: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
