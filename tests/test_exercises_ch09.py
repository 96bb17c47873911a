"""Chapter 9 self-checks: right answers pass, common slips get their hint, nothing raises."""

import numpy as np
import pytest

from quantbook import kquants as kq
from quantbook.exercises.ch09 import (
    GOLDEN_SCALE_BYTES,
    check_mix_type,
    check_more_bits_count,
    check_q4_k_value,
    check_q6_k_bits,
    check_sub_block_5_scale,
)
from quantbook.formats import bits_per_weight

CHECKS = [check_q6_k_bits, check_sub_block_5_scale, check_q4_k_value, check_mix_type,
          check_more_bits_count]


def test_expected_answers_agree_with_the_package(capsys):
    sc, mn = kq.unpack_scales_mins_k4(np.array(GOLDEN_SCALE_BYTES, np.uint8))
    assert check_q6_k_bits(bits_per_weight("q6_k"))
    assert check_sub_block_5_scale(int(sc[5]))
    assert check_q4_k_value(1.0 * int(sc[4]) * 15 - 0.5 * int(mn[4]))
    assert check_mix_type(kq.mix_type("attn_v", 2, 6, 384, "Q4_K_M"))
    assert check_more_bits_count(sum(kq.use_more_bits(i, 32) for i in range(32)))
    assert capsys.readouterr().out.count("Correct!") == 5


@pytest.mark.parametrize(
    "check, answer, hint",
    [
        (check_q6_k_bits, 6.5, "float16 d"),
        (check_q6_k_bits, 6, "16 scales"),
        (check_sub_block_5_scale, 1, "top two bits"),
        (check_sub_block_5_scale, 32, "low nibble"),
        (check_sub_block_5_scale, 5, "Not quite"),
        (check_q4_k_value, 255, "left out the min"),
        (check_q4_k_value, 265, "subtracted"),
        (check_mix_type, "Q6_K", "super-blocks of 256"),
        (check_mix_type, "q4_k", "use_more_bits"),
        (check_mix_type, "F16", "Not quite"),
        (check_more_bits_count, 8, "first and last eighth"),
    ],
)
def test_wrong_answers_get_a_specific_hint(check, answer, hint, capsys):
    assert check(answer) is False
    out = capsys.readouterr().out
    assert hint in out and "Correct!" not in out


@pytest.mark.parametrize("check", CHECKS)
@pytest.mark.parametrize("answer", [None, ..., [1.5, 2], float("nan"), {}])
def test_placeholders_and_garbage_never_raise(check, answer, capsys):
    assert check(answer) is False
    assert capsys.readouterr().out.strip()
