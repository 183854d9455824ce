"""Voting codes: entropy, alphabet, the check symbol that catches typos, lenient reading."""

from __future__ import annotations

import math

import pytest

from hsm_signer import codes
from hsm_signer.signer import SoftwareMac


def test_a_code_carries_80_bits_in_an_unambiguous_alphabet():
    assert len(codes.ALPHABET) == 32 and not set("ILOU") & set(codes.ALPHABET)
    assert codes.DATA_SYMBOLS * math.log2(len(codes.ALPHABET)) >= 80
    code = codes.new_code()
    assert len(code) == 17 and set(code) <= set(codes.ALPHABET)
    assert len({codes.new_code() for _ in range(10_000)}) == 10_000


def test_display_groups_and_normalise_reads_it_back_leniently():
    code = codes.new_code()
    shown = codes.display(code)
    assert shown.count("-") == 4 and shown.replace("-", "") == code
    assert codes.normalise(shown.lower()) == code
    assert codes.normalise(" " + shown.replace("-", " ") + " ") == code
    spelled = code.replace("0", "O").replace("1", "I")
    assert codes.normalise(spelled) == code


def test_the_check_symbol_catches_every_single_substitution_and_neighbour_swap():
    for _ in range(50):
        code = codes.new_code()
        for i in range(len(code)):
            for replacement in codes.ALPHABET:
                if replacement != code[i]:
                    with pytest.raises(codes.MalformedCodeError, match="typo"):
                        codes.normalise(code[:i] + replacement + code[i + 1:])
        for i in range(len(code) - 1):
            if code[i] != code[i + 1]:
                swapped = code[:i] + code[i + 1] + code[i] + code[i + 2:]
                with pytest.raises(codes.MalformedCodeError, match="typo"):
                    codes.normalise(swapped)


@pytest.mark.parametrize("typed, message", [
    ("ABCD", "17 letters and digits"),
    ("ABCD-EFGH-JKMN-PQRS-TV", "17 letters and digits"),
    ("ABCD-EFGH-JKMN-PQRS-!", "only digits and the letters"),
    ("ABCD-EFGH-JKMN-PQRU-T", "only digits and the letters"),
    ("x" * 100, "17 letters and digits"),
])
def test_malformed_codes_are_refused_without_echoing_them(typed, message):
    with pytest.raises(codes.MalformedCodeError, match=message) as caught:
        codes.normalise(typed)
    assert typed not in str(caught.value)


def test_issue_hashes_every_code_with_the_election_bound_in():
    mac = SoftwareMac(b"s" * 32)
    progress = []
    issued = list(codes.issue(mac, "e1", 5000, batch=2000, progress=lambda d, t: progress.append(d)))
    assert len(issued) == 5000 and progress == [2000, 4000, 5000]
    code, digest = issued[0]
    assert digest == codes.code_hash(mac, "e1", codes.display(code))
    assert digest != codes.code_hash(mac, "e2", code)
