"""Notebook 03, section 6 (and the benchmarks): the LSTM's backpropagation through time, written out by hand.

:class:`course_utils.lstm.LSTM` runs this path (:class:`LSTMHandwrittenBPTT`) for a plain
LSTM, because it is several times faster than letting autograd record every step; with
peepholes, or when the gates are asked for, it runs the step-by-step cell of section 2
(:meth:`course_utils.lstm.LSTMCell.step`) under autograd instead. Both compute the same
numbers: ``tests/test_lstm.py`` checks this backward with ``gradcheck`` and against
``torch.nn.LSTM``.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable


class LSTMHandwrittenBPTT(torch.autograd.Function):
    """All T steps of the plain LSTM, with backpropagation through time written out by hand.

    ``LSTMHandwrittenBPTT.apply(x_proj, h0, c0, W_h)`` takes the input part of every pre-activation,
    ``x_proj = x @ W_x.T + b`` ``(T, B, 4H)``, the state ``(B, H)`` and ``W_h`` ``(4H, H)``, and
    returns ``(hs (T, B, H), h_T, c_T)``. Autograd would record about a dozen operations per
    step and replay them backwards; this backward does the same calculus in a few fused
    operations per step and computes ``dL/dW_h`` with one matmul over all steps. It is
    checked against autograd (``gradcheck``) and ``torch.nn.LSTM`` in ``tests/test_lstm.py``.
    """

    @staticmethod
    def forward(ctx, x_proj: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor, W_h: torch.Tensor):
        T, B, H4 = x_proj.shape
        H = H4 // 4
        # tanh(a) = 2 sigmoid(2a) - 1: doubling g's pre-activation lets one sigmoid serve all four blocks
        scale = x_proj.new_ones(H4)
        scale[2 * H : 3 * H] = 2.0
        x_scaled, W_scaled = x_proj * scale, W_h.T * scale  # (T, B, 4H), (H, 4H)
        acts = torch.empty_like(x_proj)  # (T, B, 4H): i, f, g, o after their nonlinearities
        cs, tanh_cs, hs = (x_proj.new_empty(T, B, H) for _ in range(3))  # c_t, tanh(c_t), h_t
        h, c = h0, c0
        for t in range(T):
            act = torch.sigmoid(torch.addmm(x_scaled[t], h, W_scaled), out=acts[t])  # (B, 4H)
            i, f, g, o = act.chunk(4, dim=1)
            g.mul_(2).sub_(1)  # now tanh(a_g)
            c = torch.addcmul(f * c, i, g, out=cs[t])  # f * c + i * g
            h = torch.mul(o, torch.tanh(c, out=tanh_cs[t]), out=hs[t])
        ctx.save_for_backward(acts, cs, tanh_cs, hs, h0, c0, W_h)
        return hs, h.clone(), c.clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_hs: torch.Tensor, grad_hT: torch.Tensor, grad_cT: torch.Tensor):
        acts, cs, tanh_cs, hs, h0, c0, W_h = ctx.saved_tensors
        T, B, H = hs.shape
        i, f, g, o = acts.chunk(4, dim=2)  # each (T, B, H)
        c_prev = torch.cat([c0[None], cs[:-1]])  # (T, B, H)
        # Local derivatives of every step at once. With dc_t the total gradient reaching c_t:
        #   dA_i = dc g i(1-i),  dA_f = dc c_prev f(1-f),  dA_g = dc i (1-g^2),  dA_o = dh tanh(c) o(1-o)
        by_dc = torch.stack([g * torch.addcmul(i, i, i, value=-1),
                             c_prev * torch.addcmul(f, f, f, value=-1),
                             torch.addcmul(i, i * g, g, value=-1)], dim=2)  # (T, B, 3, H)
        by_dh = tanh_cs * torch.addcmul(o, o, o, value=-1)  # (T, B, H)
        dc_by_dh = torch.addcmul(o, o * tanh_cs, tanh_cs, value=-1)  # dc_t/dh_t = o (1 - tanh(c)^2)
        dA = torch.empty_like(acts)  # (T, B, 4H): dL/d pre-activations
        dh = grad_hs[T - 1] + grad_hT  # (B, H)
        dc = grad_cT.clone()  # (B, H)
        for t in range(T - 1, -1, -1):
            dc.addcmul_(dh, dc_by_dh[t])
            torch.mul(dc[:, None, :], by_dc[t], out=dA[t, :, : 3 * H].view(B, 3, H))
            torch.mul(dh, by_dh[t], out=dA[t, :, 3 * H :])
            dc.mul_(f[t])  # dL/dc_{t-1}
            dh = torch.addmm(grad_hs[t - 1], dA[t], W_h) if t > 0 else dA[t] @ W_h  # dL/dh_{t-1}
        h_prev = torch.cat([h0[None], hs[:-1]])  # (T, B, H)
        dW_h = dA.view(T * B, 4 * H).T @ h_prev.view(T * B, H)  # (4H, H), all steps in one matmul
        return dA, dh, dc, dW_h
