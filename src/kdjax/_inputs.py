"""Which inputs a distilled generation trains on (docs/model.md, "Which inputs the student trains on").

An input mode is an object, not a string: it says how many samples the generation sees and what
its predecessor's output on such a sample is.

* ``SameInputs``: the teacher's ``n = alpha N`` training inputs (and their noisy labels).  The
  predecessor was trained on the very sample: its training output is its proximal map at its
  cavity field, ``h_p = prox_p(omega_p)``, and it responds to the sample (docs/theory.md, 3.2).
* ``FreshInputs(alpha)``: ``alpha N`` new inputs; the predecessor's output is its plain
  pre-activation, ``h_p = omega_p``, with no response.
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp

from ._quadrature import sinh_rule


class Inputs(eqx.Module):
    """An input mode (see the module docstring)."""

    name: ClassVar[str] = ""
    responds: ClassVar[bool] = False

    def alpha(self, mixture):
        raise NotImplementedError


class SameInputs(Inputs):
    """The teacher's training inputs and noisy labels."""

    name: ClassVar[str] = "same"
    responds: ClassVar[bool] = True

    def alpha(self, mixture):
        return mixture.alpha

    def predecessor_nodes(self, predecessor, state, y_obs, mean, sd, n: int, config):
        """Nodes ``(omega_p, h_p, dh_p / d omega_p, w)`` of the predecessor's field and its training output."""
        c = predecessor.output_channel(state, y_obs, mean, sd, n, config)
        return c.omega, c.h, c.slope, c.w

    def predecessor_output(self, predecessor, state, omega, y_obs, config):
        """``h_p`` at the field ``omega`` and ``f_p = (h_p - omega) / V_p``."""
        h = predecessor.output(state, omega, y_obs, config)
        return h, (h - omega) / state.V


class FreshInputs(Inputs):
    """``alpha N`` new inputs from the same mixture, labelled afresh (``alpha`` is ``alpha_s``)."""

    alpha_s: jnp.ndarray
    name: ClassVar[str] = "fresh"

    def alpha(self, mixture):
        return self.alpha_s

    def predecessor_nodes(self, predecessor, state, y_obs, mean, sd, n: int, config):
        """The predecessor's output is its field ``h_p = omega_p``: a rule refined where it crosses 0."""
        xi, w = sinh_rule(-mean[:, 0] / sd, 1.0 / (1.0 + sd), n)
        omega = mean + sd * xi
        return omega, omega, jnp.ones_like(omega), w

    def predecessor_output(self, predecessor, state, omega, y_obs, config):
        return omega, jnp.zeros_like(omega)
