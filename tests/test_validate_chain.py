"""The chain panel of ``kdjax validate`` (issue 17, section 3): well-formed cases, and one small
chain checked against simulation (slow: the chain solves compile for about a minute)."""

import pytest

from kdjax import Student
from kdjax import _validate as validate
from kdjax.cli import build_parser


def _well_formed(case):
    assert case.student is None and isinstance(case.students, tuple) and case.students
    assert all(isinstance(s, Student) for s in case.students)
    gammas = [float(s.gamma) for s in case.students]
    assert gammas == sorted(gammas, reverse=True), case.name  # gamma non-increasing
    assert len(case.name) <= 32, case.name  # the width of format_rows' case column


@pytest.mark.parametrize("quick", [True, False])
def test_chain_panel_cases_are_well_formed(quick):
    cases = validate.chain_panel(quick)
    assert cases
    for case in cases:
        _well_formed(case)
    assert len({c.name for c in cases}) == len(cases)


def test_quick_chain_panel_is_a_small_part_of_the_full_one():
    quick, full = validate.chain_panel(True), validate.chain_panel()
    assert len(quick) <= 2 and all(c in full for c in quick)


def test_full_chain_panel_covers_the_issue_17_grid():
    cases = validate.chain_panel()
    data = {s.data for c in cases for s in c.students}
    assert data == {"same", "fresh"}
    assert {len(c.students) for c in cases} == {1, 2, 3}
    etas = [float(c.mixture.label_noise) for c in cases]
    assert min(etas) == 0.0 and max(etas) == pytest.approx(0.3)
    gammas = [[float(s.gamma) for s in c.students] for c in cases]
    assert any(len(set(g)) > 1 for g in gammas) and any(len(g) > 1 and len(set(g)) == 1 for g in gammas)
    a = [float(s.hard_weight) for c in cases for s in c.students]
    assert 1.0 in a and any(0 < x < 1 for x in a) and 0.0 in a
    # a same-input generation after another student, and a fresh one after a same one
    kinds = [tuple(s.data for s in c.students) for c in cases]
    assert any("fresh" in k[:i] and k[i] == "same" for k in kinds for i in range(1, len(k)))
    assert any(k[0] == "same" and "fresh" in k[1:] for k in kinds)


def test_chain_rows_name_the_generation():
    row = validate.Row("case", "gen3/r_teacher", 1.0, 1.01, 0.01, 0.04)
    text = validate.format_rows([row])
    assert "gen3/r_teacher" in text and text.splitlines()[-1].endswith("yes")


def test_validate_command_selects_panels():
    parser = build_parser()
    args = parser.parse_args(["validate", "--quick", "--panel", "chain"])
    assert args.panel == ["chain"]
    assert parser.parse_args(["validate"]).panel is None  # all panels
    with pytest.raises(SystemExit):
        parser.parse_args(["validate", "--panel", "chains"])


@pytest.mark.slow
def test_small_chain_matches_simulation():
    case = validate.chain_panel(quick=True)[0]
    rows = validate.run_case(case, 200, 4)
    assert {r.quantity for r in rows} >= {"gen1/gen_error", "gen1/r_teacher", "gen1/agreement"}
    bad = [r for r in rows if not r.ok]
    assert not bad, validate.format_rows(rows)
