"""NumPy in, NumPy out; torch in, torch out.

Every public function converts its array arguments with :func:`to_numpy`, computes in NumPy and
hands the result back with :func:`like`. NumPy and PyTorch both round half to even, so the
arithmetic is the same whichever kind came in; torch is imported only when a tensor arrives.
"""

from __future__ import annotations

import numpy as np


def is_tensor(x) -> bool:
    """True for a torch tensor, without importing torch when it was never loaded."""
    return type(x).__module__.startswith("torch") and hasattr(x, "numpy")


def to_numpy(x, name: str = "x") -> np.ndarray:
    """View ``x`` (array, tensor, list or scalar) as a NumPy array; a CPU tensor is shared."""
    if is_tensor(x):
        if x.device.type != "cpu":
            raise TypeError(f"{name} must be a CPU tensor, got one on {x.device}")
        return x.detach().numpy()
    if isinstance(x, (str, bytes)) or x is None:
        raise TypeError(f"{name} must be an array of numbers, got {type(x).__name__}")
    return np.asarray(x)


def like(result: np.ndarray, *inputs):
    """Return ``result`` as a torch tensor if any of ``inputs`` was one, else as NumPy."""
    if any(is_tensor(i) for i in inputs):
        import torch

        return torch.from_numpy(np.ascontiguousarray(result))
    return result


def check_finite(a: np.ndarray, name: str = "x") -> None:
    """Raise ValueError naming ``name`` if ``a`` holds NaN or an infinity."""
    if a.dtype.kind in "fc" and a.size and not np.isfinite(a).all():
        bad = "NaN" if np.isnan(a).any() else "an infinite value"
        raise ValueError(f"{name} contains {bad}; quantization needs finite numbers")


def check_bits(bits, low: int = 2, high: int = 8, name: str = "bits") -> int:
    """Return ``bits`` as an int, or raise if it is not a whole number in [low, high]."""
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)):
        raise TypeError(f"{name} must be an integer from {low} to {high}, got {bits!r}")
    if not low <= bits <= high:
        raise ValueError(f"{name} must be from {low} to {high}, got {bits}")
    return int(bits)


def work_dtype(a: np.ndarray) -> np.dtype:
    """The float type to compute in: float64 for float64 (and integer) input, else float32.

    float32 data stays float32, so a large weight matrix never gets a hidden float64 copy.
    """
    if a.dtype == np.float64 or a.dtype.kind in "iub":
        return np.dtype(np.float64)
    return np.dtype(np.float32)


def to_real(x, name: str = "x") -> np.ndarray:
    """:func:`to_numpy`, then insist on finite real numbers (bools and ints are fine)."""
    a = to_numpy(x, name)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {a.dtype}")
    check_finite(a, name)
    return a
