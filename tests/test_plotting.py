import matplotlib.pyplot as plt
import numpy as np
import pytest

from course_utils import History, plot_losses
from course_utils.core.plotting import smooth


def test_smooth_is_a_moving_average():
    np.testing.assert_allclose(smooth([1, 2, 3, 4], 2), [1.5, 2.5, 3.5])
    np.testing.assert_allclose(smooth([1, 2], 5), [1, 2])


def test_plot_several_curves_with_validation_markers():
    h = History(losses=[3.0, 2.0, 1.0, 0.5], val_losses=[2.5, 0.7])
    ax = plot_losses({"lstm": h, "rnn": [4.0, 3.0, 3.0, 3.0]}, smooth_window=2, logy=True, title="t")
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["lstm", "lstm (val)", "rnn"]
    val_x, val_y = ax.get_lines()[1].get_data()
    np.testing.assert_allclose(val_x, [1, 3])  # last step of each of the 2 epochs
    np.testing.assert_allclose(val_y, [2.5, 0.7])
    assert ax.get_yscale() == "log" and ax.get_title() == "t"
    plt.close("all")


@pytest.mark.parametrize("curve", [[1.0, 0.5], History(losses=[1.0, 0.5])])
def test_plot_single_curve(curve):
    ax = plot_losses(curve)
    assert ax.get_lines()[0].get_label() == "train"
    plt.close("all")
