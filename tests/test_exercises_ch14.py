"""Chapter 14 self-checks: right answers pass, typical slips get their own hint, nothing raises."""

from __future__ import annotations

import numpy as np
import pytest

from quantbook.exercises import ch14


def test_intensity(run):
    from quantbook import engine

    # the answer is the engine's formula with the activations left out
    assert engine.arithmetic_intensity(1, 384, 1536, 4.0, activation_bytes=0) == 0.5
    ok, out = run(ch14.check_intensity, 0.5)
    assert ok is True and out.startswith("Correct!")
    for answer, hint in [(2, "int8"), (0.25, "two operations"), (4, "divide"), (1, "float16"),
                         (3, "Not quite"), (None, "placeholder"), ("x", "single number")]:
        ok, out = run(ch14.check_intensity, answer)
        assert ok is False and hint in out, (answer, out)


def test_roofline_time(run):
    from quantbook import engine

    t = engine.roofline_time(2 * 589_824, 589_824, 200e9, 20e9) * 1e6
    ok, out = run(ch14.check_roofline_time, t)
    assert ok is True and "29.49" in out
    assert run(ch14.check_roofline_time, 29.5)[0] is True
    for answer, hint in [(5.9, "arithmetic time"), (117.96, "float32"), (29.49e-6, "microseconds"),
                         (35.39, "maximum"), (1.0, "Not quite"), (..., "placeholder")]:
        ok, out = run(ch14.check_roofline_time, answer)
        assert ok is False and hint in out, (answer, out)


def test_ridge_batch(run):
    ok, out = run(ch14.check_ridge_batch, 20)
    assert ok is True and out.startswith("Correct!")
    for answer, hint in [(10, "ridge point"), (5, "int8"), (40, "Two operations"),
                         (21, "Not quite"), (2.5, "Not quite"), (None, "placeholder")]:
        ok, out = run(ch14.check_ridge_batch, answer)
        assert ok is False and hint in out, (answer, out)


def test_matmulnbits_bytes(run):
    from quantbook import engine

    shapes = engine.matmulnbits_shapes(384, 1536, 32)
    total = (np.prod(shapes["B"]) + 4 * np.prod(shapes["scales"])
             + np.prod(shapes["zero_points"]))
    assert total == 377_856
    ok, out = run(ch14.check_matmulnbits_bytes, int(total))
    assert ok is True and "5.125 bits" in out
    for answer, hint in [(294_912, "B alone"), (294_912 + 73_728, "zero points"),
                         (294_912 + 73_728 + 18_432, "two per byte"),
                         (294_912 + 36_864 + 9_216, "float16"),
                         (589_824 + 73_728 + 9_216, "packed two per byte"),
                         (1, "Not quite"), (None, "placeholder")]:
        ok, out = run(ch14.check_matmulnbits_bytes, answer)
        assert ok is False and hint in out, (answer, out)


def test_decode_byte_matches_engine(run):
    from quantbook import engine

    packed = np.zeros((1, 1, 16), np.uint8)
    packed[0, 0, 0] = 0xB4
    w = engine.decode_matmulnbits(packed, np.array([[0.1]], np.float32), None, 32, 1, 32)
    ok, out = run(ch14.check_decode_byte, (float(w[0, 0]), float(w[1, 0])))
    assert ok is True and out.startswith("Correct!")
    assert run(ch14.check_decode_byte, [-0.4, 0.3])[0] is True


@pytest.mark.parametrize(
    ("answer", "hint"),
    [((0.3, -0.4), "wrong order"), ((0.4, 1.1), "Subtract the zero point"), ((4, 11), "codes"),
     ((1, 2), "Not quite"), (None, "placeholder"), (3, "pair"), (("a", "b"), "pair")],
)
def test_decode_byte_hints(answer, hint, run):
    ok, out = run(ch14.check_decode_byte, answer)
    assert ok is False and hint in out and "Correct" not in out
