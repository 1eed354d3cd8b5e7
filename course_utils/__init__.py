"""The learners' library of *Sequence Models, from RNNs to Transformers*: what the notebooks import.

Four tiers, each importing only itself and the tiers before it (``tests/test_layout.py``
checks this):

1. core, used by every notebook: :mod:`.shapes` and :mod:`.checks` (clear errors and
   graded checks), :mod:`.device` (device and CPU threads), :mod:`.seed`, :mod:`.notebook`
   (the first and last lines of a notebook), :mod:`.training` (``fit``), :mod:`.plotting`,
   :mod:`.widgets`;
2. :mod:`course_utils.data`: data sets and task generators (no models);
3. shared by several lectures: ``gated`` (the LSTM/GRU gate layout), ``layers`` (torch's
   recurrent layers by name), ``lm`` (language modelling: windows, loss, model, training,
   sampling), ``metrics`` (sequence metrics);
4. lectures, one module per concept, its docstring naming the notebook and sections it
   serves: ``rnn`` 01, ``bptt``/``char_rnn`` 02, ``lstm``/``lstm_backward``/``long_range`` 03,
   ``gru`` 04, ``output_types``/``forecasting`` 05, ``attention`` 06, ``self_attention`` 07,
   ``transformer`` 08, ``esn``/``scan``/``min_rnns`` 09. A lecture module may use those of
   earlier notebooks.

The instructors' toolkit (grading, website, Colab cell) is the separate package ``course_tools``.

    from course_utils import start_notebook, seed_everything, fit, plot_losses
"""

from .checks import CheckFailed, check_close, check_scalar, check_shape, check_type, tolerance
from .device import DeviceUnavailableError, describe_device, get_device
from .notebook import report_run_time, start_notebook
from .plotting import plot_losses
from .seed import seed_everything
from .training import History, evaluate, fit, supervised

__all__ = [
    "CheckFailed",
    "DeviceUnavailableError",
    "History",
    "check_close",
    "check_scalar",
    "check_shape",
    "check_type",
    "describe_device",
    "evaluate",
    "fit",
    "get_device",
    "plot_losses",
    "report_run_time",
    "seed_everything",
    "start_notebook",
    "supervised",
    "tolerance",
]
