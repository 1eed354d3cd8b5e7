"""Helpers for the course *Sequence Models, from RNNs to Transformers*.

Each module holds one idea, and the notebooks import what they need::

    from course_utils import get_device, seed_everything, fit, plot_losses
"""

from .checks import CheckFailed, check_close, check_scalar, check_shape, check_type, tolerance
from .device import DeviceUnavailableError, describe_device, get_device
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
    "seed_everything",
    "supervised",
    "tolerance",
]
