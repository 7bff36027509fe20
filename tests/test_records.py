"""A generation's chain ``Record`` (kdjax._generations.records) is algebra on its solved state:
equal to the one built from the Gaussian averages at the solution."""

import jax
import numpy as np

import kdjax
from kdjax._generations.records import record_of, update
from kdjax._generations.same import SameKD
from kdjax._generations.solve import fold, generations_of, with_records
from kdjax._params import SolverConfig

# fresh inputs, then a generation copying it on the teacher's inputs, then a smaller one
CHAIN = [kdjax.Student(0.7, 2.0, 0.3, 0.01, data="fresh", alpha=3.0), kdjax.Student(0.7, 1.0, 0.0, 0.0),
         kdjax.Student(0.5, 2.0, 0.0, 0.01)]


def averaged(s, earlier, mixture, config):
    """The record from the conjugates averaged over the nodes at the solution (what the map computes)."""
    context = s.generation.prepare(mixture, earlier, config)
    m_hat, V_hat, Xi_row, _, _ = s.generation._conjugates(s.state, mixture, context.frame, config)
    st = s.generation.params
    records = tuple(e.record for e in earlier)
    return record_of(update(records, st.gamma, st.lam, mixture.delta, m_hat, V_hat, Xi_row), s.state.b, st.gamma,
                     Xi_row)


def test_a_same_input_record_equals_the_one_from_the_node_averages():
    mixture, config = kdjax.Mixture(2.0, 1.0, label_noise=0.2), SolverConfig()
    generations = generations_of(kdjax.Teacher("logistic", 0.01), CHAIN)
    results = fold(mixture, generations, config)
    assert all(bool(r.converged) for r in results)
    solved = with_records(tuple(r.solved for r in results), mixture, config)
    checked = 0
    for k, s in enumerate(solved):
        if not isinstance(s.generation, SameKD):
            continue
        expected = jax.jit(averaged, static_argnums=3)(s, solved[:k], mixture, config)
        for got, want in zip(jax.tree.leaves(s.record), jax.tree.leaves(expected)):
            np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-8, atol=1e-10)
        checked += 1
    assert checked == sum(isinstance(g, SameKD) for g in generations) >= 2
