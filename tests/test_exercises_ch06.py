"""Chapter 6 self-checks: right answers pass, typical slips get their hint, nothing raises."""

from __future__ import annotations

import numpy as np

from quantbook.embeddings import dequantize_embeddings
from quantbook.exercises import ch06


def test_check_uint8_code(capsys):
    assert ch06.check_uint8_code(159) is True
    assert "Correct!" in capsys.readouterr().out
    for slip, words in [(160, "shifted by 128"), (32, "int8 code"), (159.375, "round it"),
                        (None, "placeholder"), ("abc", "single number"), (7, "Not quite")]:
        assert ch06.check_uint8_code(slip) is False
        assert words in capsys.readouterr().out


def test_check_sign_unpacker(capsys):
    def good(codes, dim):
        return dequantize_embeddings(np.asarray(codes, np.uint8), "ubinary", dim=dim)

    assert ch06.check_sign_unpacker(good) is True
    assert "Correct!" in capsys.readouterr().out

    def seed_bug(codes, dim):  # the seed's computation, in uint8
        return np.unpackbits(np.asarray(codes, np.uint8))[:dim] * 2 - 1

    def no_trim(codes, dim):
        return np.unpackbits(np.asarray(codes, np.uint8)) * 2.0 - 1

    def raw_bits(codes, dim):
        return np.unpackbits(np.asarray(codes, np.uint8))[:dim].astype(float)

    def little(codes, dim):
        return np.unpackbits(np.asarray(codes, np.uint8), bitorder="little")[:dim] * 2.0 - 1

    def crashes(codes, dim):
        raise RuntimeError("oops")

    for slip, words in [(seed_bug, "wraps around"), (no_trim, "padding"), (raw_bits, "0/1"),
                        (little, "bit order"), (crashes, "raised RuntimeError"),
                        (None, "placeholder"), (42, "should be a function")]:
        assert ch06.check_sign_unpacker(slip) is False
        assert words in capsys.readouterr().out


def test_check_binary_index_megabytes(capsys):
    assert ch06.check_binary_index_megabytes(128) is True
    assert "Correct!" in capsys.readouterr().out
    for slip, words in [(4096, "float32"), (1024, "int8"), (122.07, "MiB"), (128e6, "bytes"),
                        (8192, "not 1,024"), (3, "Not quite"), (None, "placeholder")]:
        assert ch06.check_binary_index_megabytes(slip) is False
        assert words in capsys.readouterr().out
