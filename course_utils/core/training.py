"""Every notebook that trains (00, section 5): a small training loop, shared by all of them.

Read it once: it is the loop you would write by hand (forward, loss, backward,
optional gradient clipping, step), plus a tqdm progress bar and a loss history.

The one convention: ``loss_fn(model, batch)`` returns the loss of one batch. That keeps
the loop the same for a classifier (``criterion(model(x), y)``), a language model and a
seq2seq model with teacher forcing; :func:`supervised` builds the common case.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm import std as text_tqdm
from tqdm.auto import tqdm

from .device import get_device
from .widgets import widgets_enabled

Batch = Any
LossFn = Callable[[torch.nn.Module, Batch], torch.Tensor]


@dataclass
class History:
    """What :func:`fit` records: one entry per optimiser step or per epoch."""

    losses: list[float] = field(default_factory=list)  # per step
    grad_norms: list[float] = field(default_factory=list)  # per step, before clipping
    val_losses: list[float] = field(default_factory=list)  # per epoch, if val data given
    seconds: float = 0.0  # wall time of the whole fit
    epoch_seconds: list[float] = field(default_factory=list)  # training time so far, at each epoch's end
    # (validation time excluded)
    diverged_at: int | None = None  # the step whose loss was not finite, where fit(stop_on_divergence=True) stopped
    best_epoch: int | None = None  # the epoch of the lowest validation loss, whose weights fit(keep_best=True) kept

    @property
    def final_loss(self) -> float:
        """Mean training loss over the last 10 % of steps (a less noisy 'final' value)."""
        if not self.losses:
            raise ValueError("no training step was recorded")
        tail = self.losses[-max(1, len(self.losses) // 10) :]
        return sum(tail) / len(tail)


def supervised(criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> LossFn:
    """The usual ``loss_fn``: batches are ``(x, y)`` and the loss is ``criterion(model(x), y)``."""

    def loss_fn(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        x, y = batch
        return criterion(model(x), y)

    return loss_fn


def to_device(batch: Batch, device: torch.device) -> Batch:
    """Move every tensor in a (nested) tuple, list or dict to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def _epoch_batches(data: Iterable[Batch] | Callable[[int], Iterable[Batch]], epoch: int):
    # A callable makes fresh batches each epoch (e.g. a generator of synthetic tasks).
    return data(epoch) if callable(data) else data


def progress_bar(**kwargs: Any) -> tqdm:
    """tqdm's bar: a widget in a notebook, text elsewhere and where widgets are off.

    With ``COURSE_WIDGETS=0`` (tests, the website build) the bar is text on stdout, so a saved
    notebook keeps the bar's last state (``100%|...| 400/400``) rather than a widget view
    that a static page cannot draw.
    """
    if widgets_enabled():
        return tqdm(**kwargs)
    return text_tqdm.tqdm(file=sys.stdout, **kwargs)


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    data: Iterable[Batch],
    loss_fn: LossFn,
    device: torch.device | None = None,
) -> float:
    """Mean loss over ``data`` in eval mode, without gradients; restores the previous mode."""
    device = device or get_device()
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for batch in data:
        total += loss_fn(model, to_device(batch, device)).item()
        count += 1
    model.train(was_training)
    if count == 0:
        raise ValueError("evaluate() got no batches")
    return total / count


def fit(
    model: torch.nn.Module,
    train_data: Iterable[Batch] | Callable[[int], Iterable[Batch]],
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    *,
    epochs: int = 1,
    val_data: Iterable[Batch] | None = None,
    clip_grad_norm: float | None = None,
    device: torch.device | None = None,
    progress: bool = True,
    desc: str = "train",
    total_steps: int | None = None,
    lr_schedule: Callable[[int], float] | None = None,
    stop_on_divergence: bool = False,
    keep_best: bool = False,
) -> History:
    """Train ``model`` in place and return its :class:`History`.

    Args:
        model: already on ``device`` (``fit`` moves the batches, not the model).
        train_data: an iterable of batches, re-read every epoch, or ``epoch -> iterable``.
        loss_fn: ``loss_fn(model, batch) -> scalar loss``; see :func:`supervised`.
        optimizer: any ``torch.optim`` optimiser over the model's parameters.
        epochs: passes over ``train_data``.
        val_data: if given, the mean loss on it is recorded after every epoch.
        clip_grad_norm: if given, rescale gradients so their global L2 norm is at most this.
        device: where batches go; default :func:`course_utils.get_device`.
        progress: show a tqdm progress bar.
        total_steps: the bar's length where ``train_data`` is a callable (its length is unknown).
        lr_schedule: ``step -> learning rate``, set on every parameter group before each step
            (a warm-up, a cosine decay); steps count from 0 across epochs.
        stop_on_divergence: a loss that is not finite ends training there, with
            ``history.diverged_at`` set, instead of raising ``FloatingPointError``: for runs whose
            divergence is the result being measured.
        keep_best: early stopping's choice without the stopping: at the end, load the weights of
            the epoch with the lowest validation loss (``history.best_epoch``); needs ``val_data``.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if keep_best and val_data is None:
        raise ValueError("keep_best=True needs val_data: the best epoch is the one with the lowest validation loss")
    best_state: dict[str, torch.Tensor] | None = None
    device = device or get_device()
    history = History()
    t0 = time.perf_counter()
    try:
        total = epochs * len(train_data)  # type: ignore[arg-type]
    except TypeError:
        total = total_steps  # a generator or callable: length unknown unless given
    bar = progress_bar(total=total, desc=desc, disable=not progress, leave=True)
    validation_seconds = 0.0
    model.train()
    for epoch in range(epochs):
        for batch in _epoch_batches(train_data, epoch):
            if lr_schedule is not None:
                for group in optimizer.param_groups:
                    group["lr"] = lr_schedule(len(history.losses))
            loss = loss_fn(model, to_device(batch, device))
            if not torch.isfinite(loss):
                bar.close()
                if stop_on_divergence:
                    history.diverged_at = len(history.losses)
                    history.seconds = time.perf_counter() - t0
                    return history
                raise FloatingPointError(
                    f"loss became {loss.item()} at step {len(history.losses)} (epoch {epoch}); "
                    "try a smaller learning rate or gradient clipping."
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            max_norm = clip_grad_norm if clip_grad_norm is not None else math.inf
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
            optimizer.step()
            history.losses.append(loss.item())
            history.grad_norms.append(norm.item())
            bar.update(1)
            bar.set_postfix(epoch=epoch, loss=f"{history.losses[-1]:.4f}")
        history.epoch_seconds.append(time.perf_counter() - t0 - validation_seconds)
        if val_data is not None:
            v0 = time.perf_counter()
            history.val_losses.append(evaluate(model, val_data, loss_fn, device))
            if keep_best and history.val_losses[-1] < min(history.val_losses[:-1], default=math.inf):
                history.best_epoch = epoch
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            validation_seconds += time.perf_counter() - v0
            bar.set_postfix(epoch=epoch, val_loss=f"{history.val_losses[-1]:.4f}")
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    history.seconds = time.perf_counter() - t0
    return history
