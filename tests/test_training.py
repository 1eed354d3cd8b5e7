import math

import pytest
import torch

from course_utils import History, evaluate, fit, seed_everything, supervised
from course_utils.core.training import to_device

CPU = torch.device("cpu")


def linear_data(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.3
    return list(zip(x.split(32), y.split(32), strict=True))


def test_fit_learns_linear_regression():
    seed_everything(0)
    model = torch.nn.Linear(3, 1)
    data = linear_data()
    loss_fn = supervised(torch.nn.functional.mse_loss)
    before = evaluate(model, data, loss_fn, CPU)
    hist = fit(model, data, loss_fn, torch.optim.Adam(model.parameters(), lr=0.1), epochs=30,
               device=CPU, progress=False, val_data=data)
    assert len(hist.losses) == 30 * len(data)
    assert len(hist.val_losses) == 30
    assert hist.val_losses[-1] < 1e-3 < before
    assert torch.allclose(model.weight, torch.tensor([[1.0, -2.0, 0.5]]), atol=0.02)
    assert hist.seconds > 0


def test_clipping_bounds_the_update():
    model = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    data = [(torch.ones(1, 1), torch.full((1, 1), 1000.0))]
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    hist = fit(model, data, supervised(torch.nn.functional.mse_loss), opt, clip_grad_norm=0.5,
               device=CPU, progress=False)
    assert hist.grad_norms[0] == pytest.approx(2000.0)  # recorded before clipping
    assert model.weight.item() == pytest.approx(0.5)  # the step used the clipped gradient


def test_callable_data_gives_fresh_batches_each_epoch():
    seen = []

    def batches(epoch):
        seen.append(epoch)
        return linear_data(64, seed=epoch)

    model = torch.nn.Linear(3, 1)
    fit(model, batches, supervised(torch.nn.functional.mse_loss),
        torch.optim.SGD(model.parameters(), lr=0.01), epochs=3, device=CPU, progress=False)
    assert seen == [0, 1, 2]


def test_diverging_loss_is_reported():
    model = torch.nn.Linear(1, 1)
    data = [(torch.ones(1, 1), torch.tensor([[math.nan]]))]
    with pytest.raises(FloatingPointError, match="loss became nan at step 0"):
        fit(model, data, supervised(torch.nn.functional.mse_loss),
            torch.optim.SGD(model.parameters(), lr=0.1), device=CPU, progress=False)


def test_evaluate_uses_eval_mode_and_restores_it():
    modes = []

    class Probe(torch.nn.Module):
        def forward(self, x):
            modes.append(self.training)
            return x

    probe = Probe().train()
    evaluate(probe, [(torch.zeros(1), torch.zeros(1))], supervised(torch.nn.functional.mse_loss), CPU)
    assert modes == [False] and probe.training


def test_evaluate_without_batches_is_an_error():
    with pytest.raises(ValueError, match="no batches"):
        evaluate(torch.nn.Linear(1, 1), [], supervised(torch.nn.functional.mse_loss), CPU)


def test_epochs_must_be_positive():
    with pytest.raises(ValueError, match="epochs"):
        fit(torch.nn.Linear(1, 1), [], supervised(torch.nn.functional.mse_loss),
            torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=1), epochs=0, progress=False)


def test_to_device_walks_nested_batches():
    batch = {"x": torch.zeros(2), "pair": (torch.ones(1), [torch.ones(1)]), "n": 3}
    moved = to_device(batch, CPU)
    assert moved["n"] == 3 and isinstance(moved["pair"], tuple) and isinstance(moved["pair"][1], list)


def test_final_loss_averages_the_tail():
    assert History(losses=[10.0] * 90 + [1.0] * 10).final_loss == 1.0
    with pytest.raises(ValueError):
        _ = History().final_loss


def test_without_widgets_the_bar_is_text_on_stdout(monkeypatch, capsys):
    monkeypatch.setenv("COURSE_WIDGETS", "0")
    model = torch.nn.Linear(3, 1)
    fit(model, linear_data(64), supervised(torch.nn.functional.mse_loss),
        torch.optim.SGD(model.parameters(), lr=0.01), epochs=2, device=CPU, desc="demo")
    out = capsys.readouterr()
    assert "demo: 100%" in out.out and "4/4" in out.out  # 2 epochs x 2 batches, last state kept
    assert "demo" not in out.err


def test_evaluate_builds_no_graph():
    grad_modes = []

    def loss_fn(model, batch):
        grad_modes.append(torch.is_grad_enabled())
        return supervised(torch.nn.functional.mse_loss)(model, batch)

    evaluate(torch.nn.Linear(3, 1), linear_data(64), loss_fn, CPU)
    assert grad_modes == [False, False]


def test_epoch_seconds_has_one_increasing_entry_per_epoch():
    model = torch.nn.Linear(3, 1)
    data = linear_data(64)
    hist = fit(model, data, supervised(torch.nn.functional.mse_loss), torch.optim.SGD(model.parameters(), lr=0.01),
               epochs=4, val_data=data, device=CPU, progress=False)
    assert len(hist.epoch_seconds) == 4
    times = hist.epoch_seconds
    assert 0 < times[0] and all(a < b for a, b in zip(times, times[1:], strict=False))
    assert times[-1] <= hist.seconds  # training time only, within the whole fit's wall time


def test_total_steps_sets_the_bar_length_for_callable_data(monkeypatch, capsys):
    monkeypatch.setenv("COURSE_WIDGETS", "0")
    model = torch.nn.Linear(3, 1)
    fit(model, lambda epoch: linear_data(64, seed=epoch), supervised(torch.nn.functional.mse_loss),
        torch.optim.SGD(model.parameters(), lr=0.01), epochs=3, device=CPU, desc="gen", total_steps=6)
    out = capsys.readouterr().out
    assert "gen: 100%" in out and "6/6" in out  # 3 epochs x 2 batches, a known length


def test_a_diverging_run_can_stop_instead_of_raising():
    """Where divergence is the result being measured (a learning rate too large), fit stops and says where."""
    model = torch.nn.Linear(1, 1)
    good = (torch.ones(1, 1), torch.ones(1, 1))
    data = [good, good, (torch.ones(1, 1), torch.tensor([[math.inf]])), good]
    before = model.weight.detach().clone()
    history = fit(model, data, supervised(torch.nn.functional.mse_loss),
                  torch.optim.SGD(model.parameters(), lr=0.1), device=CPU, progress=False, stop_on_divergence=True)
    assert history.diverged_at == 2 and len(history.losses) == len(history.grad_norms) == 2
    assert not torch.equal(model.weight, before)  # the two good steps were taken, the bad one not
    assert fit(model, data[:2], supervised(torch.nn.functional.mse_loss), torch.optim.SGD(model.parameters(), lr=0.1),
               device=CPU, progress=False, stop_on_divergence=True).diverged_at is None


def test_lr_schedule_sets_every_group_before_each_step():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 1))
    groups = [{"params": model[0].parameters()}, {"params": model[1].parameters(), "lr": 5.0}]
    optimizer = torch.optim.SGD(groups, lr=1.0)
    seen = []
    step = optimizer.step

    def spy():
        seen.append([g["lr"] for g in optimizer.param_groups])
        return step()

    optimizer.step = spy
    fit(model, linear_data()[:3], supervised(torch.nn.functional.mse_loss), optimizer, epochs=2, device=CPU,
        progress=False, lr_schedule=lambda s: 0.1 / (s + 1))
    assert seen == [[0.1 / (s + 1)] * 2 for s in range(6)]  # steps count across epochs


def test_keep_best_loads_the_weights_of_the_lowest_validation_loss():
    model = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    train = [(torch.ones(1, 1), torch.full((1, 1), 1.0))]  # SGD overshoots: w = 1.5, 0.75, 1.125, 0.94 after each epoch
    val = [(torch.ones(1, 1), torch.full((1, 1), 1.5))]  # the validation target is 1.5: epoch 0's weight is best
    opt = torch.optim.SGD(model.parameters(), lr=0.75)
    hist = fit(model, train, supervised(torch.nn.functional.mse_loss), opt, epochs=4, val_data=val,
               device=CPU, progress=False, keep_best=True)
    assert hist.best_epoch == 0 and hist.val_losses[0] == min(hist.val_losses) == pytest.approx(0.0)
    assert model.weight.item() == pytest.approx(1.5)  # epoch 0's weight, not the last epoch's
    assert hist.val_losses[-1] > 0.01
    with pytest.raises(ValueError, match="keep_best=True needs val_data"):
        fit(model, train, supervised(torch.nn.functional.mse_loss), opt, keep_best=True, device=CPU, progress=False)
