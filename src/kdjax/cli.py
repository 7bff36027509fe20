"""The ``kdjax`` command: ``solve``, ``validate`` (and more subcommands as they land).

Runs in float64.  Invalid input prints one line naming the parameter and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys

import jax

STUDENT_FLAGS = ("gamma", "temperature", "hard_weight", "lam_s", "student_data", "alpha_s")
TEACHER_FIELDS = ("gen_error", "m", "q", "b", "train_error", "train_loss", "converged")
STUDENT_FIELDS = ("gen_error", "m", "q", "r", "b", "agreement", "train_error", "train_loss", "converged")


class UsageError(Exception):
    """A user input error: printed on one line, exit status 2."""


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


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
    from .params import Mixture, Student, Teacher

    mixture = Mixture(args.alpha, args.delta, args.rho)
    teacher = Teacher(args.teacher_loss, args.lam_t)
    if all(getattr(args, f) is None for f in STUDENT_FLAGS):
        return mixture, teacher, None
    student = Student(
        gamma=1.0 if args.gamma is None else args.gamma,
        temperature=1.0 if args.temperature is None else args.temperature,
        hard_weight=0.0 if args.hard_weight is None else args.hard_weight,
        lam=0.0 if args.lam_s is None else args.lam_s,
        data=args.student_data or "same",
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
    from .student import solve_student
    from .teacher import solve_teacher

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
    from . import validate

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kdjax", description="Exact theory of knowledge distillation.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("solve", help="solve the teacher (and a KD student) at one setting")
    _add_model_flags(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_solve)
    p = sub.add_parser("validate", help="theory vs finite-N simulation on a built-in panel")
    p.add_argument("--quick", action="store_true", help="a smaller panel")
    p.add_argument("--n-features", type=int, help="simulation dimension N")
    p.add_argument("--seeds", type=int, help="simulation seeds per configuration")
    p.set_defaults(func=cmd_validate)
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
