"""Chapter 8 self-checks: right answers pass, common slips get their hint, nothing raises."""

import numpy as np
import pytest

from quantbook import microscaling as mx
from quantbook.exercises.ch08 import (
    check_fp8_max,
    check_mx_exponent_byte,
    check_mxfp4_tie,
    check_nvfp4_bits,
    check_ue4m3_saturation,
)
from quantbook.formats import bits_per_weight, decode_mxfp4, encode_mxfp4

CHECKS = [check_mx_exponent_byte, check_mxfp4_tie, check_fp8_max, check_nvfp4_bits,
          check_ue4m3_saturation]


def test_expected_answers_agree_with_the_package(capsys):
    block = np.zeros(32, np.float32)
    block[0], block[1] = 5.0, 1.75
    raw = encode_mxfp4(block)
    assert check_mx_exponent_byte(int(raw[0]))
    block[0] = 4.0  # same exponent byte, and 1.75 is a tie with X = 1
    assert check_mxfp4_tie(float(decode_mxfp4(encode_mxfp4(block))[1]))
    assert check_fp8_max(mx.fp8_table("e4m3fnuz")["max"])
    assert check_nvfp4_bits(bits_per_weight("nvfp4"))
    assert check_ue4m3_saturation(float(2 * mx.UE4M3_HALF[mx.ue4m3_encode(np.float32(400))]))
    assert capsys.readouterr().out.count("Correct!") == 5


@pytest.mark.parametrize(
    "check, answer, hint",
    [
        (check_mx_exponent_byte, 129, "emax"),
        (check_mx_exponent_byte, 0, "bias"),
        (check_mx_exponent_byte, 7, "Not quite"),
        (check_mxfp4_tie, 2, "half-to-even"),
        (check_mxfp4_tie, 1.75, "not an E2M1 value"),
        (check_fp8_max, 448, "e4m3fn (bias 7)"),
        (check_fp8_max, 57344, "e5m2"),
        (check_nvfp4_bits, 4.25, "MXFP4"),
        (check_nvfp4_bits, 4, "scales take space"),
        (check_ue4m3_saturation, 384, "half-to-even"),
        (check_ue4m3_saturation, 416, "rounds the tie up"),
        (check_ue4m3_saturation, 1, "Not quite"),
    ],
)
def test_wrong_answers_get_a_specific_hint(check, answer, hint, capsys):
    assert check(answer) is False
    out = capsys.readouterr().out
    assert hint in out and "Correct!" not in out


@pytest.mark.parametrize("check", CHECKS)
@pytest.mark.parametrize("answer", [None, ..., "abc", [1.5, 2], float("nan"), {}])
def test_placeholders_and_garbage_never_raise(check, answer, capsys):
    assert check(answer) is False
    assert capsys.readouterr().out.strip()
