"""Chapter 5 self-checks: right answers pass, common slips get their hint, nothing raises."""

import numpy as np
import pytest

from quantbook.exercises.ch05 import (
    PACK_VALUES,
    UNPACK_BYTE,
    check_bits_per_weight,
    check_pack_high_first,
    check_unpack_byte,
)
from quantbook.packing import pack_int4, unpack_int4


def test_expected_answers_agree_with_the_package(capsys):
    answer = unpack_int4(np.array([UNPACK_BYTE], np.uint8), 2).tolist()
    assert check_unpack_byte(answer)
    packed = pack_int4(PACK_VALUES, order="high-first").tolist()
    assert check_pack_high_first(packed)
    assert check_bits_per_weight(4 + 32 / 128)
    assert capsys.readouterr().out.count("Correct!") == 3


@pytest.mark.parametrize(
    "check, answer, hint",
    [
        (check_unpack_byte, [-7, -4], "wrong order"),
        (check_unpack_byte, [12, 9], "unsigned"),
        (check_unpack_byte, [-4, -1], "sign and magnitude"),
        (check_unpack_byte, [1, 2], "Not quite"),
        (check_pack_high_first, [243, 88], "low-first"),
        (check_pack_high_first, np.array([63, -123]), "unsigned"),
        (check_pack_high_first, [57, 133], "sign and magnitude"),
        (check_pack_high_first, [0, 0], "Not quite"),
        (check_bits_per_weight, 4.125, "offset"),
        (check_bits_per_weight, 4.5, "Q4_0"),
        (check_bits_per_weight, 7, "Not quite"),
    ],
)
def test_wrong_answers_get_a_specific_hint(check, answer, hint, capsys):
    assert check(answer) is False
    out = capsys.readouterr().out
    assert hint in out and "Correct!" not in out


@pytest.mark.parametrize("check", [check_unpack_byte, check_pack_high_first, check_bits_per_weight])
@pytest.mark.parametrize("answer", [None, ..., "abc", [1.5, 2], float("nan"), [[1, 2, 3]], {}])
def test_placeholders_and_garbage_never_raise(check, answer, capsys):
    assert check(answer) is False
    assert capsys.readouterr().out.strip()
