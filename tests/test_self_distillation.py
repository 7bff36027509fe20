"""The self-distillation study (kdjax.paper.self_distillation): the quick plan's theory part on a
tiny grid, its CSV files, and the chain identities it must obey (docs/chains.md, Sec. 6)."""

import csv
import dataclasses
import os

import numpy as np
import pytest

import kdjax
from kdjax import paper
from kdjax.paper import self_distillation as sd
from kdjax.paper._common import write_csv

DEPTH = 2
PLAN = dataclasses.replace(paper.plan(quick=True), sd_depth=DEPTH, sd_label_noises=(0.0, 0.2),
                           sd_gain_alphas=(2.0,), sd_gain_noises=(0.0, 0.2))


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    res = sd.compute(PLAN, simulate=False, optimise=False)
    out = tmp_path_factory.mktemp("sd")
    holder = type("Res", (), {"plan": PLAN, "self_distillation": res})()
    paths = {t.name: write_csv(os.path.join(out, t.name), t.header, t.rows)[0] for t in sd.tables(holder)}
    return res, paths, holder


def read(path):
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[0], np.array([[float(v) for v in r] for r in rows[1:]], dtype=float).reshape(-1, len(rows[0]))


def test_theory_csv_columns_and_rows(study):
    res, paths, holder = study
    assert sorted(paths) == sorted(sd.CSVS)
    header, rows = read(paths["fig6_error_vs_depth.csv"])
    assert header == sd.ERROR_VS_DEPTH
    assert rows.shape[0] == len(PLAN.sd_label_noises) * (DEPTH + 1)
    col = {h: rows[:, k] for k, h in enumerate(header)}
    assert np.all((col["error_theory"] > 0) & (col["error_theory"] < 0.5))
    assert np.all(col["error_sim_mean"] == -1.0)  # no simulation in this run
    assert sorted(set(col["generation"])) == list(range(DEPTH + 1))
    header, rows = read(paths["fig6_gain_map.csv"])
    assert header == sd.GAIN_MAP and rows.shape[0] == 2
    gain = {h: rows[:, k] for k, h in enumerate(header)}
    np.testing.assert_allclose(gain["gain"], gain["teacher_error"] - gain["student_error"], atol=1e-15)
    header, rows = read(paths["fig6_optimal_schedule.csv"])
    assert header == sd.OPTIMAL_SCHEDULE and rows.shape[0] == 0  # not run: every row NaN, dropped
    assert res.data == "same"
    text = "\n".join(sd.section(holder))
    assert "## Self-distillation" in text and "nan" not in text.lower().replace("n/a", "")


def test_theory_rows_are_the_solver_chain_and_its_first_generation_the_student(study):
    res, _, _ = study
    for i, eta in enumerate(PLAN.sd_label_noises):
        mix = sd.mixture(PLAN, eta)
        chain = sd.students(PLAN, DEPTH)
        direct = kdjax.solve_chain(mix, kdjax.Teacher(PLAN.loss, PLAN.sd_lam_t), chain)
        errors = [float(direct.teacher.gen_error)] + [float(gen.gen_error) for gen in direct.generations]
        np.testing.assert_allclose(res.theory[i], errors, rtol=0, atol=1e-12)
        if chain[0].data == "same":  # depth 1 of a chain is the student (docs/chains.md, Sec. 6)
            one = kdjax.solve_student(mix, kdjax.Teacher(PLAN.loss, PLAN.sd_lam_t), chain[0])
            assert abs(float(one.gen_error) - res.theory[i, 1]) < 1e-10
    # the gain map's first generation is the study's depth-1 chain
    one = sd.theory(PLAN, 0.2, sd.students(PLAN, 1, "same"))
    j = PLAN.sd_gain_noises.index(0.2)
    assert one[0] == pytest.approx(res.gain_teacher[0, j], abs=1e-12)
    assert one[1] == pytest.approx(res.gain_student[0, j], abs=1e-12)


@pytest.mark.parametrize("eta", [0.0, 0.2])
def test_a_copying_generation_copies_its_predecessor(eta):
    """T = 1, a = 0, lam = 0, gamma unchanged, same inputs: generation k copies k - 1 (every eta)."""
    # a distilled generation, then its copy
    chain = sd.students(PLAN, 2, "same", temperature=[PLAN.sd_temperature, 1.0], lam=[PLAN.sd_lam, 0.0])
    errors = sd.theory(PLAN, eta, chain)
    assert np.all(np.isfinite(errors))
    assert abs(errors[-1] - errors[-2]) < 1e-8, errors


def test_clean_labels_are_the_limit_of_small_label_noise(study):
    """eta given as an exact 0 (clean rows only) vs eta = 1e-9 (four label rows): every generation."""
    res, _, _ = study
    i = PLAN.sd_label_noises.index(0.0)
    tiny = sd.theory(PLAN, 1e-9, sd.students(PLAN, DEPTH))
    np.testing.assert_allclose(res.theory[i], tiny, rtol=0, atol=1e-7)
