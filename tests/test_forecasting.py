import numpy as np
import pytest
import torch

from course_utils.data import load_sunspots
from course_utils.forecasting import (
    RNNForecaster,
    Standardizer,
    ar_predict,
    fit_ar,
    rmse,
    windows,
    windows_for_years,
)


def test_windows():
    X, y = windows(np.arange(5.0), 2)
    assert X.tolist() == [[0, 1], [1, 2], [2, 3]] and y.tolist() == [2, 3, 4]
    with pytest.raises(ValueError):
        windows(np.arange(5.0), 5)
    with pytest.raises(ValueError, match="shape"):
        windows(np.ones((2, 3)), 1)


def test_windows_for_years_targets_stay_in_range():
    years = np.arange(1900, 1910)
    series = years.astype(float)
    X, y, ty = windows_for_years(series, years, 3, 1905, 1907)
    assert ty.tolist() == [1905, 1906, 1907] and y.tolist() == [1905, 1906, 1907]
    assert X[0].tolist() == [1902, 1903, 1904]  # inputs may come from before the range
    with pytest.raises(ValueError):
        windows_for_years(series, years[:5], 3, 1905, 1907)


def test_standardizer_and_ar():
    scaler = Standardizer.fit(np.array([1.0, 3.0]))
    assert (scaler.mean, scaler.std) == (2.0, 1.0)
    np.testing.assert_allclose(scaler.inverse(scaler.transform(np.array([5.0, -1.0]))), [5.0, -1.0])
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 3))
    y = X @ np.array([0.5, -2.0, 1.0]) + 3.0
    coef = fit_ar(X, y)
    np.testing.assert_allclose(coef, [0.5, -2.0, 1.0, 3.0], atol=1e-10)
    np.testing.assert_allclose(ar_predict(coef, X), y, atol=1e-10)
    assert rmse(np.array([1.0, 3.0]), np.array([0.0, 0.0])) == pytest.approx(np.sqrt(5))
    with pytest.raises(ValueError):
        ar_predict(coef, X[:, :2])
    with pytest.raises(ValueError):
        rmse(np.ones(2), np.ones(3))


def test_sunspot_reference_numbers():
    """DATA_OPTIONS.md: train 1700-1920, test 1921-1987: persistence 30.3, mean 53.9, AR(2) 20.3, AR(9) 17.5."""
    years, s = load_sunspots()
    X_test, y_test, _ = windows_for_years(s, years, 9, 1921, 1987)
    assert rmse(X_test[:, -1], y_test) == pytest.approx(30.3, abs=0.05)
    assert rmse(np.full_like(y_test, s[years <= 1920].mean()), y_test) == pytest.approx(53.9, abs=0.05)
    for p, ref in ((2, 20.3), (9, 17.5)):
        X, y, _ = windows_for_years(s, years, p, 1700, 1920)
        Xt, yt, _ = windows_for_years(s, years, p, 1921, 1987)
        assert rmse(ar_predict(fit_ar(X, y), Xt), yt) == pytest.approx(ref, abs=0.05)


def test_rnn_forecaster_reads_the_last_state():
    torch.manual_seed(0)
    model = RNNForecaster(5, cell="gru")
    x = torch.randn(4, 7)
    out, _ = model.rnn(x.unsqueeze(-1))
    torch.testing.assert_close(model(x), model.out(out[:, -1]).squeeze(-1))
    assert RNNForecaster(3, cell="lstm", num_layers=2)(x).shape == (4,)
    with pytest.raises(ValueError, match=r"\(B, p\)"):
        model(x.unsqueeze(-1))
