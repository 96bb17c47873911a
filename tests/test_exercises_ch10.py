"""Chapter 10 self-checks: the right answer passes, typical slips get the right hint."""

import numpy as np
import pytest

from quantbook import codebooks as cb
from quantbook.exercises import ch10


def test_expected_answers_are_what_the_package_computes():
    assert cb.nearest_level([0.3]).tolist() == [11]
    rec = cb.encode_nf4(np.array([-1.0, 0.5] + [0.0] * 62, dtype=np.float32))
    assert rec.packed[0] == 12
    assert cb.nf4_bits_per_weight(64, double_quant=True) == 4 + 8 / 64 + 32 / (64 * 256)
    x = cb.decode_iq4_nl(np.array(ch10.IQ4_NL_EXERCISE_BLOCK, dtype=np.uint8))
    assert x[0] == 26.5 and x[16] == -32.5
    levels = cb.kmeans_codebook(np.linspace(-1, 1, 100_001), 4, iters=200)
    assert np.allclose(levels, [-0.75, -0.25, 0.25, 0.75], atol=1e-3)
    assert cb.codebook_bytes(384 * 384, 16) == 73792


CASES = [
    (ch10.check_nf4_code, [11, 11.0, "11"],
     [(10, "midpoint"), (12, "further"), (7, "level 0.0"), (0.3379, "level, not its code"),
      (3, "Not yet"), (16, "whole number from 0 to 15")]),
    (ch10.check_nf4_byte, [12, "12", 0x0C],
     [(192, "low-first"), (13, "0.5017"), (208, "0xD0"), (7, "Not yet")]),
    (ch10.check_double_quant_bits, [4.126953125, 4.127, "4.127"],
     [(4.5, "without double"), (0.126953125, "overhead alone"), (4.125, "Close"),
      (4 + 8 / 64 + 32 / 256, "64·256"), (5, "Not yet")]),
    (ch10.check_iq4_nl_values, [[26.5, -32.5], (26.5, -32.5), np.array([26.5, -32.5])],
     [([-32.5, 26.5], "swapped"), ([2.0, -2.5], "Q4_0"), ([53, -65], "multiply by the scale"),
      ([1, 2], "Not yet"), ([1, 2, 3], "Give 2")]),
    (ch10.check_uniform_kmeans, [[-0.75, -0.25, 0.25, 0.75], [0.75, 0.25, -0.25, -0.75]],
     [([-1, -1 / 3, 1 / 3, 1], "ends"), ([-1.51, -0.4528, 0.4528, 1.51], "normal"),
      ([0, 0, 0, 0], "Not yet"), ([1, 2], "Give 4")]),
    (ch10.check_kmeans_bytes, [73792, "73792", 73792.0],
     [(73728, "codes only"), (147456, "half a byte"), (147520, "half a byte"),
      (589888, "divide the code bits"), (73744, "4 bytes"), (1, "Not yet")]),
]


@pytest.mark.parametrize(("check", "rights", "wrongs"), CASES)
def test_right_answers_pass_and_slips_get_hints(check, rights, wrongs, run):
    for answer in rights:
        ok, out = run(check, answer)
        assert ok is True, (answer, out)
        assert out.startswith("Correct!")
    for answer, hint in wrongs:
        ok, out = run(check, answer)
        assert ok is False, answer
        assert hint in out, (answer, out)
        assert "Correct" not in out


@pytest.mark.parametrize("answer", [None, ..., "abc", float("nan"), {"a": 1}, [[1, 2], [3]]])
def test_placeholders_and_garbage_never_raise(answer, run):
    for check, _, _ in CASES:
        ok, out = run(check, answer)
        assert ok is False
        assert out.strip()
