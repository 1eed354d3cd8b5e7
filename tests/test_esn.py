"""Echo state network pieces and the Mackey-Glass generator: real values, shape errors."""

import numpy as np
import pytest

from course_utils.data.mackey_glass import mackey_glass
from course_utils.esn import (
    free_run,
    make_reservoir,
    nrmse,
    ridge_readout,
    run_reservoir,
    spectral_radius,
    with_bias,
)


def test_mackey_glass_is_deterministic_and_in_range():
    x = mackey_glass(400, discard=100)
    assert x.shape == (400,)
    np.testing.assert_array_equal(x, mackey_glass(400, discard=100))
    assert 0.3 < x.min() < x.max() < 1.5  # the tau = 17 attractor lies in about [0.4, 1.35]
    np.testing.assert_allclose(mackey_glass(100, discard=0)[50:], mackey_glass(50, discard=50))


def test_mackey_glass_converges_with_the_step_size():
    # over a short horizon (before chaos amplifies differences) RK4 with dt = 0.1 agrees with dt = 0.05
    coarse = mackey_glass(60, discard=0, dt=0.1)
    fine = mackey_glass(60, discard=0, dt=0.05)
    assert np.abs(coarse - fine).max() < 1e-4


def test_mackey_glass_without_delay_feedback_decays_exponentially():
    # beta = 0 leaves dx/dt = -gamma x: x(t) = x0 exp(-gamma t)
    x = mackey_glass(20, beta=0.0, discard=0)
    np.testing.assert_allclose(x, 1.2 * np.exp(-0.1 * np.arange(1, 21)), rtol=1e-9)


def test_mackey_glass_rejects_off_grid_delay():
    with pytest.raises(ValueError, match="multiples of dt"):
        mackey_glass(10, tau=17.05)


@pytest.mark.parametrize("rho", [0.5, 0.9, 1.2])
def test_reservoir_has_the_requested_spectral_radius(rho):
    res = make_reservoir(80, 2, spectral_radius_target=rho, seed=1)
    assert res["W"].shape == (80, 80) and res["W_in"].shape == (80, 2) and res["b"].shape == (80,)
    assert spectral_radius(res["W"]) == pytest.approx(rho, rel=1e-9)


def test_spectral_radius_hand_case():
    assert spectral_radius(np.array([[0.0, 2.0], [-2.0, 0.0]])) == pytest.approx(2.0)  # eigenvalues +-2i
    with pytest.raises(ValueError, match=r"W has shape \(2, 3\), expected \(N, N\)"):
        spectral_radius(np.zeros((2, 3)))


def test_run_reservoir_matches_the_definition():
    res = make_reservoir(10, 1, seed=2)
    u = np.linspace(-1, 1, 5)[:, None]
    states = run_reservoir(res, u)
    r = np.zeros(10)
    for t in range(5):
        r = np.tanh(res["W_in"] @ u[t] + res["W"] @ r + res["b"])
        np.testing.assert_allclose(states[t], r, rtol=1e-12)
    with pytest.raises(ValueError, match=r"u has shape \(5,\), expected \(T, 1\)"):
        run_reservoir(res, u[:, 0])


def test_ridge_readout_matches_lstsq():
    rng = np.random.default_rng(0)
    states = rng.normal(size=(200, 6))
    targets = rng.normal(size=(200, 2))
    W_out = ridge_readout(states, targets, alpha=0.0)
    expected = np.linalg.lstsq(with_bias(states), targets, rcond=None)[0].T
    np.testing.assert_allclose(W_out, expected, rtol=1e-9, atol=1e-12)
    # with alpha > 0: the same as lstsq on the system augmented with sqrt(alpha) rows (bias not penalised)
    alpha = 3.0
    X = with_bias(states)
    aug = np.vstack([X, np.sqrt(alpha) * np.eye(7)[1:]])
    expected = np.linalg.lstsq(aug, np.vstack([targets, np.zeros((6, 2))]), rcond=None)[0].T
    np.testing.assert_allclose(ridge_readout(states, targets, alpha=alpha), expected, rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="states has shape"):
        ridge_readout(states, targets[:10])


def test_nrmse():
    target = np.array([1.0, 2.0, 3.0, 4.0])
    assert nrmse(target, target) == 0.0
    assert nrmse(np.full(4, target.mean()), target) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="prediction has shape"):
        nrmse(target[:3], target)


def test_free_run_feeds_its_predictions_back():
    """Driving the reservoir with free_run's own outputs reproduces its states and predictions."""
    reservoir = make_reservoir(20, 2, seed=3)
    W_out = np.random.default_rng(4).normal(scale=0.1, size=(2, 21))
    r0, y0 = np.full(20, 0.1), np.array([0.3, -0.2])
    outputs = free_run(reservoir, W_out, r0, y0, steps=15)  # (15, 2)
    inputs = np.vstack([y0, outputs[:-1]])  # what each step read
    states = run_reservoir(reservoir, inputs, r0=r0)  # (15, 20)
    np.testing.assert_allclose(with_bias(states) @ W_out.T, outputs, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match=r"W_out has shape \(1, 21\), expected \(2, 21\)"):
        free_run(reservoir, W_out[:1], r0, y0, steps=3)
