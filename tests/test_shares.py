"""The m-of-n PIN: SLIP-39 split, rebuild from any m shares, precise errors, and activation of a token."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from shamir_mnemonic.wordlist import WORDLIST

from hsm_signer.config import PinSpec
from hsm_signer.hsm.pins import pin_source
from hsm_signer.errors import ConfigError, HsmConfigError
from hsm_signer.hsm import FixedPin, Hsm
from hsm_signer.hsm.probe import change_user_pin
from hsm_signer.hsm.shares import (
    REHEARSAL_MARKER, SharePin, ShareError, combine_shares, read_share_file, share_file_text, split_new_pin,
)

SECRET = bytes(range(16))


@pytest.fixture(scope="module")
def split():
    return split_new_pin(3, 5, secret=SECRET)


def labelled(shares):
    return [(f"share {i}", s) for i, s in enumerate(shares, 1)]


def replace_word(share: str, position: int) -> str:
    words = share.split()
    current = words[position]
    words[position] = next(w for w in WORDLIST if w != current)
    return " ".join(words)


def assert_no_share_words(message: str, share: str) -> None:
    """Errors must not quote a share (shamir_mnemonic's own messages quote its first words)."""
    for a, b in zip(share.split(), share.split()[1:]):
        assert f"{a} {b}" not in message


def test_the_pin_is_32_hex_digits_of_the_secret(split):
    assert split.pin == SECRET.hex() and len(split.pin) == 32
    assert split.count == 5 and split.threshold == 3
    assert "pin" not in repr(split).lower().replace("pinsplit", "")
    assert split.shares[0] not in repr(split)


def test_every_choice_of_m_shares_rebuilds_the_pin(split):
    for subset in itertools.combinations(split.shares, 3):
        assert combine_shares(labelled(subset)) == split.pin
    assert combine_shares(labelled(split.shares)) == split.pin
    assert combine_shares(labelled(reversed(split.shares[1:4]))) == split.pin


def test_fewer_than_m_shares_cannot_rebuild_the_pin(split):
    for subset in itertools.combinations(split.shares, 2):
        with pytest.raises(ShareError, match=r"fewer than 3 shares: got 2 of the 3 needed"):
            combine_shares(labelled(subset))


def test_a_corrupted_share_is_reported_as_corrupted_and_not_quoted(split):
    bad = replace_word(split.shares[1], 7)
    with pytest.raises(ShareError, match=r"share 2 is corrupted: its checksum does not match") as caught:
        combine_shares(labelled([split.shares[0], bad, split.shares[2]]))
    assert_no_share_words(str(caught.value), split.shares[1])


def test_a_word_outside_the_word_list_is_reported_by_position(split):
    words = split.shares[0].split()
    words[4] = "zzzzz"
    with pytest.raises(ShareError, match=r"share 1 is corrupted: word 5 is not in the SLIP-39 word list") as caught:
        combine_shares(labelled([" ".join(words), *split.shares[1:3]]))
    assert "zzzzz" not in str(caught.value)


def test_a_missing_word_is_a_corrupted_share(split):
    shortened = " ".join(split.shares[0].split()[:-1])
    with pytest.raises(ShareError, match=r"share 1 is corrupted"):
        combine_shares(labelled([shortened, *split.shares[1:3]]))


def test_shares_of_another_split_are_refused(split):
    other = split_new_pin(3, 5)
    with pytest.raises(ShareError, match=r"share 3 belongs to a different PIN split than share 1"):
        combine_shares(labelled([split.shares[0], split.shares[1], other.shares[2]]))


def test_the_same_share_twice_counts_once(split):
    with pytest.raises(ShareError, match=r"share 3 is the same share as share 1"):
        combine_shares(labelled([split.shares[0], split.shares[1], split.shares[0]]))


def test_no_shares_and_empty_shares_are_refused():
    with pytest.raises(ShareError, match=r"no shares given"):
        combine_shares([])
    with pytest.raises(ShareError, match=r"share 1 is empty"):
        combine_shares([("share 1", "  ")])


def test_case_and_spacing_do_not_matter(split):
    messy = ["  " + s.upper().replace(" ", "   \n") for s in split.shares[:3]]
    assert combine_shares(labelled(messy)) == split.pin


@pytest.mark.parametrize("threshold,count,message", [
    (1, 3, r"cannot split 1-of-3"), (4, 3, r"cannot split 4-of-3"), (2, 17, r"cannot split 2-of-17"),
])
def test_impossible_splits_are_refused(threshold, count, message):
    with pytest.raises(ShareError, match=message):
        split_new_pin(threshold, count)


def test_fresh_splits_draw_fresh_pins():
    assert split_new_pin(2, 3).pin != split_new_pin(2, 3).pin


# --- share files and the PIN source ----------------------------------------------------

def write_shares(directory: Path, split, rehearsal: bool = True) -> list[Path]:
    paths = []
    for i, share in enumerate(split.shares, 1):
        path = directory / f"share-{i}.txt"
        path.write_text(share_file_text(share, holder=f"holder {i}", index=i, threshold=split.threshold,
                                        count=split.count, ceremony_id="test", rehearsal=rehearsal))
        paths.append(path)
    return paths


def test_share_files_carry_a_header_and_the_words(tmp_path, split):
    path = write_shares(tmp_path, split)[1]
    text = path.read_text()
    assert text.startswith(f"# {REHEARSAL_MARKER}")
    assert "share 2 of 5 (any 3 rebuild the PIN)" in text
    assert read_share_file(path) == (split.shares[1], True)


def test_share_pin_from_files_rebuilds_the_pin_and_labels_rehearsal_material(tmp_path, split):
    paths = write_shares(tmp_path, split)
    source = SharePin(share_files=(paths[4], paths[0], paths[2]))
    assert source.get_pin() == split.pin
    assert source.production_grade is False
    assert "REHEARSAL" in source.describe() and split.pin not in source.describe()


def test_share_pin_from_unmarked_files_is_production_grade(tmp_path, split):
    paths = write_shares(tmp_path, split, rehearsal=False)
    source = SharePin(share_files=paths[:3])
    assert source.production_grade is True
    assert source.get_pin() == split.pin


def test_share_pin_names_the_corrupted_file(tmp_path, split):
    paths = write_shares(tmp_path, split)
    paths[1].write_text(replace_word(split.shares[1], 3) + "\n")
    with pytest.raises(ShareError, match=rf"share file {paths[1]} is corrupted"):
        SharePin(share_files=paths[:3]).get_pin()


def test_share_pin_with_too_few_files(tmp_path, split):
    paths = write_shares(tmp_path, split)
    with pytest.raises(ShareError, match=r"fewer than 3 shares: got 2"):
        SharePin(share_files=paths[:2]).get_pin()


def test_share_pin_with_a_missing_file(tmp_path):
    with pytest.raises(ShareError, match=r"cannot read share file .*nope.txt"):
        SharePin(share_files=(tmp_path / "nope.txt",)).get_pin()


def test_share_pin_prompts_until_the_threshold(split):
    answers = iter([split.shares[3], split.shares[1], split.shares[4], "never asked"])
    prompts = []

    def reader(prompt):
        prompts.append(prompt)
        return next(answers)
    assert SharePin(prompt=reader).get_pin() == split.pin
    assert len(prompts) == 3 and "of 3" in prompts[1]


def test_share_pin_prompt_ended_early_is_fewer_than_m(split):
    answers = iter([split.shares[0], ""])
    with pytest.raises(ShareError, match=r"fewer than 3 shares: got 1"):
        SharePin(prompt=lambda _: next(answers)).get_pin()


def test_the_service_config_builds_a_share_pin(tmp_path, split):
    paths = write_shares(tmp_path, split)
    source = pin_source(PinSpec(source="shares", share_files=tuple(paths[1:4])))
    assert isinstance(source, SharePin)
    assert source.get_pin() == split.pin


def test_share_errors_are_config_errors():
    assert issubclass(ShareError, ConfigError)


# --- activation of a real token ---------------------------------------------------------

@pytest.fixture(scope="module")
def activated(tokens, tmp_path_factory):
    """A token whose user PIN is the PIN of a fresh 2-of-3 split, and the share files."""
    token = tokens.new("shares")
    split = split_new_pin(2, 3)
    hsm = Hsm(token.module, token_label=token.label, pin_source=FixedPin(token.user_pin)).open()
    change_user_pin(hsm, token.user_pin, split.pin)
    hsm.close()
    return token, split, write_shares(tmp_path_factory.mktemp("shares"), split)


@pytest.mark.parametrize("pair", list(itertools.combinations(range(3), 2)))
def test_any_m_of_n_share_files_activate_the_token(activated, pair):
    token, split, paths = activated
    hsm = Hsm(token.module, token_label=token.label,
              pin_source=SharePin(share_files=[paths[i] for i in pair])).open()
    try:
        assert hsm.token_info()["label"] == token.label
    finally:
        hsm.close()


def test_fewer_than_m_share_files_cannot_activate_the_token(activated):
    token, split, paths = activated
    with pytest.raises(ShareError, match=r"fewer than 2 shares: got 1 of the 2 needed"):
        Hsm(token.module, token_label=token.label, pin_source=SharePin(share_files=paths[:1])).open()


def test_a_corrupted_share_file_cannot_activate_the_token(activated, tmp_path):
    token, split, paths = activated
    bad = tmp_path / "bad.txt"
    bad.write_text(replace_word(split.shares[0], 10))
    with pytest.raises(ShareError, match=r"bad.txt is corrupted"):
        Hsm(token.module, token_label=token.label, pin_source=SharePin(share_files=[bad, paths[1]])).open()


def test_the_old_pin_no_longer_opens_the_token(activated):
    token, _, _ = activated
    with pytest.raises(HsmConfigError, match=r"wrong PIN"):
        Hsm(token.module, token_label=token.label, pin_source=FixedPin(token.user_pin)).open()
