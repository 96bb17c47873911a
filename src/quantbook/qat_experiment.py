"""Chapter 13's experiment: a small MLP on scikit-learn's digits, trained float, then quantized.

Three ways to reach ``bits``-bit weights and activations:

* **PTQ** (post-training quantization): the float model, fake-quantized as it is: per-channel
  absmax scales for the weights, one scale for the hidden activations calibrated on the
  training set (its maximum).
* **QAT with the STE**: the same quantizers in the forward pass while the float model is
  fine-tuned (:func:`quantbook.qat.fake_quantize_ste`); the weight scales follow the weights.
* **LSQ**: the step sizes are parameters too (:func:`quantbook.qat.lsq_fake_quantize`),
  initialised with :func:`quantbook.qat.lsq_step_init`.

Everything is seeded; :func:`set_deterministic` asks torch for deterministic kernels and a fixed
thread count. This module needs torch (the rest of quantbook does not).
"""

from __future__ import annotations

import numpy as np
import torch

from quantbook import qat

__all__ = [
    "set_deterministic",
    "load_digits_split",
    "QuantMLP",
    "accuracy",
    "train",
    "weight_scales",
    "quantized_copy",
]


def set_deterministic(threads: int = 1) -> None:
    """Deterministic kernels and a fixed number of CPU threads (summation order)."""
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)


def load_digits_split(test_size: float = 0.3, seed: int = 0):
    """scikit-learn's bundled 8 x 8 digits (1,797 images, offline), pixels scaled to [0, 1].

    A stratified split; returns float32 / int64 tensors ``(X_train, X_test, y_train, y_test)``.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    parts = train_test_split((X / 16.0).astype(np.float32), y.astype(np.int64),
                             test_size=test_size, random_state=seed, stratify=y)
    return tuple(torch.from_numpy(np.ascontiguousarray(p)) for p in parts)


def weight_scales(w: torch.Tensor, bits: int) -> np.ndarray:
    r"""Per-channel absmax scales, one per output row.

    .. math::  S_k = \frac{\max_j |W_{kj}|}{2^{b-1} - 1}
    """
    top = 2 ** (bits - 1) - 1
    m = w.detach().abs().amax(dim=1, keepdim=True).numpy()
    return np.maximum(m / top, np.float32(1e-8)).astype(np.float32)


class QuantMLP(torch.nn.Module):
    """64 pixels -> ``hidden`` ReLU units -> 10 classes, with optional fake quantization.

    ``mode``: ``"float"``; ``"ste"`` (absmax weight scales, fixed activation scale, STE
    gradients; also what PTQ evaluates); ``"lsq"`` (learned steps).
    """

    def __init__(self, hidden: int = 64):
        super().__init__()
        self.fc1 = torch.nn.Linear(64, hidden)
        self.fc2 = torch.nn.Linear(hidden, 10)
        self.mode, self.bits, self.act_scale = "float", 8, None

    def forward(self, x):
        w1, w2, b = self.fc1.weight, self.fc2.weight, self.bits
        if self.mode == "ste":
            w1 = qat.fake_quantize_ste(w1, weight_scales(w1, b), 0, b)
            w2 = qat.fake_quantize_ste(w2, weight_scales(w2, b), 0, b)
        elif self.mode == "lsq":
            w1 = qat.lsq_fake_quantize(w1, self.step1, b)
            w2 = qat.lsq_fake_quantize(w2, self.step2, b)
        h = torch.relu(torch.nn.functional.linear(x, w1, self.fc1.bias))
        if self.mode == "ste":  # activations after the ReLU: unsigned codes 0 ... 2^b - 1
            h = qat.fake_quantize_ste(h, self.act_scale, 0, b, signed=False)
        elif self.mode == "lsq":
            g = qat.lsq_grad_scale(h.shape[1], b, signed=False)  # N = features per sample
            h = qat.lsq_fake_quantize(h, self.step_act, b, signed=False, grad_scale=g)
        return torch.nn.functional.linear(h, w2, self.fc2.bias)


def accuracy(model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of ``X`` classified right."""
    with torch.no_grad():
        return float((model(X).argmax(dim=1) == y).double().mean())


def quantized_copy(model: QuantMLP, mode: str, bits: int, X_calib: torch.Tensor) -> QuantMLP:
    """A copy of a float model set up for ``mode`` ("ste" or "lsq") at ``bits`` bits.

    The activation scale (STE/PTQ) is the calibration maximum of the hidden layer over
    :math:`2^b - 1`; LSQ's steps start at :func:`quantbook.qat.lsq_step_init` (per output row
    for the weights, one for the activations).
    """
    if mode not in ("ste", "lsq"):
        raise ValueError(f"mode must be 'ste' or 'lsq', got {mode!r}")
    q = QuantMLP(model.fc1.out_features)
    q.load_state_dict(model.state_dict())
    q.mode, q.bits = mode, bits
    with torch.no_grad():
        h = torch.relu(model.fc1(X_calib))
    if mode == "ste":
        q.act_scale = float(h.max()) / (2**bits - 1)
        return q

    def rows(w):
        return torch.tensor([[qat.lsq_step_init(r, bits)] for r in w.detach().numpy()])

    q.step1 = torch.nn.Parameter(rows(q.fc1.weight))
    q.step2 = torch.nn.Parameter(rows(q.fc2.weight))
    q.step_act = torch.nn.Parameter(torch.tensor(qat.lsq_step_init(h, bits, signed=False),
                                                 dtype=torch.float32))
    return q


def train(model: QuantMLP, X: torch.Tensor, y: torch.Tensor, epochs: int, lr: float,
          seed: int = 0, batch_size: int = 64, X_test=None, y_test=None) -> list[float]:
    """Adam on the cross-entropy, minibatches in a seeded order; returns the test accuracy
    after each epoch (empty without test data). LSQ steps are kept positive."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    for _ in range(epochs):
        order = torch.randperm(len(X), generator=gen)
        for start in range(0, len(X), batch_size):
            idx = order[start:start + batch_size]
            loss = torch.nn.functional.cross_entropy(model(X[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if model.mode == "lsq":
                with torch.no_grad():
                    for p in (model.step1, model.step2, model.step_act):
                        p.clamp_(min=1e-6)
        if X_test is not None:
            history.append(accuracy(model, X_test, y_test))
    return history
