import numpy as np
import pytest
import torch

from course_utils.core.checks import CheckFailed
from course_utils.data import load_sunspots
from course_utils.exercises.forecasting import (
    ORDER_SPLITS,
    TARGET_RATIO,
    ar_order_rmse,
    check_ar_order,
    check_recursive_forecast,
    check_standardize,
)
from course_utils.forecasting import (
    RNNForecaster,
    Standardizer,
    ar_predict,
    fit_ar,
    recursive_forecast,
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


# ----------------------------------------------------------------------------- exercise 3: standardising

def good_standardize(series, years, train_end):
    train = series[years <= train_end]
    return (series - train.mean()) / train.std()


STANDARDIZE_MISTAKES = {
    "whole series": (lambda s, y, e: (s - s.mean()) / s.std(), "whole series: the validation and test years leak"),
    "ddof=1": (lambda s, y, e: (s - s[y <= e].mean()) / s[y <= e].std(ddof=1), r"ddof=1"),
    "strict <": (lambda s, y, e: (s - s[y < e].mean()) / s[y < e].std(), r"years < train_end"),
    "min-max": (lambda s, y, e: (s - s[y <= e].min()) / np.ptp(s[y <= e]), "min-max scaling"),
}


def test_check_standardize_passes_the_reference(capsys):
    check_standardize(good_standardize)
    check_standardize(good_standardize, seed=1)
    assert "OK z" in capsys.readouterr().out


@pytest.mark.parametrize("name", list(STANDARDIZE_MISTAKES))
def test_check_standardize_names_the_mistake(name):
    fn, words = STANDARDIZE_MISTAKES[name]
    with pytest.raises(CheckFailed, match=words):
        check_standardize(fn)


def test_check_standardize_refuses_the_reference_and_bad_shapes():
    def delegates(series, years, train_end):
        return Standardizer.fit(series[years <= train_end]).transform(series)

    with pytest.raises(CheckFailed, match="calls Standardizer"):
        check_standardize(delegates)
    with pytest.raises(CheckFailed, match=r"z has shape \(20,\)"):
        check_standardize(lambda s, y, e: good_standardize(s, y, e)[y <= e])
    with pytest.raises(CheckFailed, match="not a tuple"):
        check_standardize(lambda s, y, e: (good_standardize(s, y, e), 0.0))


# ----------------------------------------------------------------------------- exercise 4: several steps ahead

def good_recursive(coef, history, steps):
    window, out = list(history[-(len(coef) - 1):]), []
    for _ in range(steps):
        out.append(float(np.dot(coef[:-1], window) + coef[-1]))
        window = window[1:] + [out[-1]]
    return np.array(out)


def test_recursive_forecast_by_hand_and_matches_one_step():
    # y_t = 0.5 y_{t-1} + 1 from 2: 2 -> 2 -> 2 (a fixed point); from 0: 1, 1.5, 1.75.
    assert recursive_forecast(np.array([0.5, 1.0]), np.array([9.0, 0.0]), 3).tolist() == [1.0, 1.5, 1.75]
    years, s = load_sunspots()
    X, y, _ = windows_for_years(s, years, 9, 1700, 1920)
    coef = fit_ar(X, y)
    assert recursive_forecast(coef, s[:50], 1)[0] == pytest.approx(ar_predict(coef, s[41:50][None])[0])
    with pytest.raises(ValueError, match="needs at least 9"):
        recursive_forecast(coef, s[:5], 2)


RECURSIVE_MISTAKES = {
    "no feedback": (lambda c, h, n: np.full(n, h[-(len(c) - 1):] @ c[:-1] + c[-1]), "never feed the predictions back"),
    "reversed": (lambda c, h, n: good_recursive(np.r_[c[:-1][::-1], c[-1]], h, n), "reverse order"),
    "no intercept": (lambda c, h, n: good_recursive(np.r_[c[:-1], 0.0], h, n), "forget the intercept"),
    "first p": (lambda c, h, n: good_recursive(c, h[: len(c) - 1], n), "first p values of the history"),
}


def test_check_recursive_forecast_passes_the_reference(capsys):
    check_recursive_forecast(good_recursive)
    check_recursive_forecast(good_recursive, seed=1)
    assert "OK the forecasts" in capsys.readouterr().out


@pytest.mark.parametrize("name", list(RECURSIVE_MISTAKES))
def test_check_recursive_forecast_names_the_mistake(name):
    fn, words = RECURSIVE_MISTAKES[name]
    with pytest.raises(CheckFailed, match=words):
        check_recursive_forecast(fn)


def test_check_recursive_forecast_refuses_the_reference_and_bad_shapes():
    with pytest.raises(CheckFailed, match="calls recursive_forecast"):
        check_recursive_forecast(lambda c, h, n: recursive_forecast(c, h, n))
    with pytest.raises(CheckFailed, match=r"has shape \(6, 1\)"):
        check_recursive_forecast(lambda c, h, n: good_recursive(c, h, n)[:, None])
    with pytest.raises(CheckFailed, match="Did you forget a `return`"):
        check_recursive_forecast(lambda c, h, n: None)


# ----------------------------------------------------------------------------- exercise 5: choosing p by outcome

GOOD_ORDER, BARELY_MISSES = 18, 3


def test_check_ar_order_passes_the_reference_on_every_split(capsys):
    for seed in ORDER_SPLITS:
        check_ar_order(GOOD_ORDER, seed=seed)
    assert capsys.readouterr().out.count("OK AR(18)") == len(ORDER_SPLITS)


def test_an_order_that_barely_misses_is_told_how_far_it_is():
    got, mean = ar_order_rmse(BARELY_MISSES, seed=0)
    target = TARGET_RATIO * mean
    assert target <= got < 3 * target  # close, but not there
    words = rf"RMSE of {got:.1f} on 1901-1920 \(target: below {target:.1f}.*: 1\.\d\d times the target"
    with pytest.raises(CheckFailed, match=words + ".*less than one 11-year cycle"):
        check_ar_order(BARELY_MISSES)


def test_persistence_like_order_misses_and_is_named():
    with pytest.raises(CheckFailed, match=r"AR\(1\) sees only 1 past year,"):
        check_ar_order(1)


def test_ar_order_rmse_never_touches_the_test_years():
    assert all(val_end <= 1920 for _, val_end in ORDER_SPLITS.values())
    assert ar_order_rmse(9, 0) == ar_order_rmse(9, 0)


@pytest.mark.parametrize(("p", "words"), [(9.0, "as a whole number"), (True, "as a whole number"),
                                          (0, "from 1 to 30"), (31, "from 1 to 30"), ("9", "as a whole number")])
def test_check_ar_order_rejects_malformed_choices(p, words):
    with pytest.raises(CheckFailed, match=words):
        check_ar_order(p)
