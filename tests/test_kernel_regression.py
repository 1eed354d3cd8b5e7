"""Notebook 06, section 2: Nadaraya-Watson pooling (course_utils.kernel_regression) and its exercise's check."""

import numpy as np
import pytest
import torch

from course_utils.core.checks import CheckFailed
from course_utils.data import load_sunspots
from course_utils.exercises.kernel_regression import check_nadaraya_watson
from course_utils.forecasting import rmse
from course_utils.kernel_regression import (
    gaussian_scores,
    gaussian_weights,
    nadaraya_watson,
    nadaraya_watson_loop,
    nearest_neighbour,
    split_indices,
    validation_errors,
)


def data(seed: int = 0, q: int = 7, k: int = 11) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    keys = torch.rand(k, generator=g, dtype=torch.float64) * 10  # (K,)
    values = torch.randn(k, generator=g, dtype=torch.float64)  # (K,)
    queries = torch.rand(q, generator=g, dtype=torch.float64) * 10  # (Q,)
    return queries, keys, values


def test_weights_by_hand():
    """Two keys at distances 0 and 1 from the query, sigma 1: weights 1 : exp(-1/2)."""
    w = gaussian_weights(torch.tensor([0.0]), torch.tensor([0.0, 1.0]), 1.0)
    expected = torch.tensor([1.0, np.exp(-0.5)]) / (1 + np.exp(-0.5))
    torch.testing.assert_close(w[0], expected.float())
    assert gaussian_scores(torch.tensor([2.0]), torch.tensor([0.0]), 2.0).item() == pytest.approx(-0.5)


@pytest.mark.parametrize("sigma", [0.3, 1.0, 4.0])
def test_softmax_form_equals_the_kernel_ratio_loop(sigma):
    queries, keys, values = data()
    got = nadaraya_watson(queries, keys, values, sigma).numpy()
    loop = nadaraya_watson_loop(queries.numpy(), keys.numpy(), values.numpy(), sigma)
    np.testing.assert_allclose(got, loop, rtol=1e-12, atol=1e-12)
    assert torch.allclose(gaussian_weights(queries, keys, sigma).sum(-1), torch.ones(len(queries), dtype=torch.float64))


def test_limits_mean_and_nearest_neighbour():
    queries, keys, values = data(1)
    torch.testing.assert_close(nadaraya_watson(queries, keys, values, 1e7), values.mean().expand(len(queries)),
                               rtol=1e-9, atol=0.0)
    tiny = nadaraya_watson(queries, keys, values, 1e-4)  # random keys: no ties
    torch.testing.assert_close(tiny, nearest_neighbour(queries, keys, values), rtol=0.0, atol=1e-12)


def test_naive_ratio_is_nan_for_a_tiny_sigma_and_the_softmax_is_not():
    keys, values = torch.tensor([0.0, 3.0], dtype=torch.float64), torch.tensor([1.0, 2.0], dtype=torch.float64)
    queries = torch.tensor([1.0, 2.5], dtype=torch.float64)  # nearest keys at 1 and 0.5
    naive = nadaraya_watson_loop(queries.numpy(), keys.numpy(), values.numpy(), 0.01)
    assert np.isnan(naive).all()
    torch.testing.assert_close(nadaraya_watson(queries, keys, values, 0.01), torch.tensor([1.0, 2.0],
                                                                                         dtype=torch.float64))


def test_shapes_and_sigma_are_checked():
    queries, keys, values = data()
    with pytest.raises(ValueError, match="values"):
        nadaraya_watson(queries, keys, values[:-1], 1.0)
    with pytest.raises(ValueError, match="queries"):
        nadaraya_watson(queries[:, None], keys, values, 1.0)
    with pytest.raises(ValueError, match="sigma"):
        gaussian_scores(queries, keys, 0.0)


def test_split_indices_partition_and_repeat():
    tr, va, te = split_indices(309, seed=0)
    assert (len(tr), len(va), len(te)) == (185, 61, 63)
    assert sorted(np.concatenate([tr, va, te]).tolist()) == list(range(309))
    assert all((a == b).all() for a, b in zip(split_indices(309, seed=0), (tr, va, te), strict=True))
    assert not (split_indices(309, seed=1)[0] == tr).all()


def test_validation_errors_on_sunspots():
    """What notebook 06, section 2 asserts over 20 splits: the tuned kernel beats the mean on every split and the
    nearest year(s) by more than 0.05 on 15; the other 5 choose the smallest sigma, within 0.02 of the nearest."""
    years, spots = load_sunspots()
    x, y = torch.tensor(years, dtype=torch.float64), torch.tensor(spots)
    sigmas = np.geomspace(0.25, 64, 17).tolist()
    clear = 0
    for seed in range(20):
        tr, va, _ = split_indices(len(x), seed=seed)
        e = validation_errors(x, y, tr, va, sigmas)
        best = min(e["kernel"], key=e["kernel"].get)
        assert e["mean"] - e["kernel"][best] > 1
        assert e["mean"] == pytest.approx(rmse(np.full(len(va), y[tr].mean().item()), y[va].numpy()))
        if e["nearest"] - e["kernel"][best] > 0.05:
            clear += 1
        else:
            assert best == min(sigmas) and abs(e["nearest"] - e["kernel"][best]) < 0.02
    assert clear == 15


def test_nearest_neighbour_averages_ties():
    keys, values = torch.tensor([1.0, 3.0, 4.0]), torch.tensor([10.0, 20.0, 40.0])
    got = nearest_neighbour(torch.tensor([2.0, 3.9, 0.0]), keys, values)
    torch.testing.assert_close(got, torch.tensor([15.0, 40.0, 10.0]))


# ----------------------------------------------------------------------------- exercise 1: Nadaraya-Watson pooling

def good_nw(queries, keys, values, sigma):
    scores = -((queries[:, None] - keys[None, :]) ** 2) / (2 * sigma**2)
    return torch.softmax(scores, dim=-1) @ values


def _kernel(q, k, s, denominator=None):
    return torch.exp(-((q[:, None] - k[None, :]) ** 2) / (denominator if denominator is not None else 2 * s**2))


NW_MISTAKES = {
    "queries axis": (lambda q, k, v, s: torch.softmax(-((q[:, None] - k[None]) ** 2) / (2 * s**2), dim=0) @ v,
                     r"softmax over the queries \(dim=0\)"),
    "no minus": (lambda q, k, v, s: torch.softmax(((q[:, None] - k[None]) ** 2) / (2 * s**2), dim=-1) @ v,
                 "drop the minus sign"),
    "sigma not squared": (lambda q, k, v, s: torch.softmax(-((q[:, None] - k[None]) ** 2) / (2 * s), dim=-1) @ v,
                          "divide by 2 sigma instead of 2 sigma"),
    "sigma^2 not 2 sigma^2": (lambda q, k, v, s: torch.softmax(-((q[:, None] - k[None]) ** 2) / s**2, dim=-1) @ v,
                              r"divide by sigma\^2 instead of 2 sigma\^2"),
    "unnormalised": (lambda q, k, v, s: _kernel(q, k, s) @ v, "leave the weights unnormalised"),
    "no max-shift": (lambda q, k, v, s: (_kernel(q, k, s) @ v) / _kernel(q, k, s).sum(-1),
                     "without subtracting each query's largest score"),
}


def test_check_nadaraya_watson_passes_a_right_answer(capsys):
    check_nadaraya_watson(good_nw)
    check_nadaraya_watson(good_nw, seed=1)
    assert capsys.readouterr().out.count("OK my_nadaraya_watson") == 2


@pytest.mark.parametrize("name", list(NW_MISTAKES))
@pytest.mark.parametrize("seed", [0, 1])
def test_check_nadaraya_watson_names_the_mistake(name, seed):
    fn, words = NW_MISTAKES[name]
    with pytest.raises(CheckFailed, match=words):
        check_nadaraya_watson(fn, seed=seed)


def test_check_nadaraya_watson_names_a_partial_nan():
    """A max-shift done wrong (the global max, not each query's) is NaN on some rows only: still told to shift."""
    def global_shift(q, k, v, s):
        scores = -((q[:, None] - k[None]) ** 2) / (2 * s**2)
        e = torch.exp(scores - scores.max())
        return (e @ v) / e.sum(-1)
    with pytest.raises(CheckFailed, match="NaN for a small sigma"):
        check_nadaraya_watson(global_shift)


def test_check_nadaraya_watson_refuses_the_reference_and_bad_outputs():
    with pytest.raises(CheckFailed, match="calls nadaraya_watson"):
        check_nadaraya_watson(lambda q, k, v, s: nadaraya_watson(q, k, v, s))
    with pytest.raises(CheckFailed, match="calls gaussian_weights"):
        check_nadaraya_watson(lambda q, k, v, s: gaussian_weights(q, k, s) @ v)
    with pytest.raises(CheckFailed, match="not a tuple"):
        check_nadaraya_watson(lambda q, k, v, s: (good_nw(q, k, v, s), None))
    with pytest.raises(CheckFailed, match="shape"):
        check_nadaraya_watson(lambda q, k, v, s: good_nw(q, k, v, s)[:, None])
