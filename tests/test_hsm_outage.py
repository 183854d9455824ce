"""Invariant 2 end to end: with the network HSM down the service fails closed, then heals."""

from __future__ import annotations

import time

import pytest

from harness import P11KitServer
from hsm_signer.ballots import ReceiptPendingError
from hsm_signer.errors import HsmUnavailableError
from hsm_signer.service import Service
from hsm_signer.verify import verify_receipt

from servicekit import DEMO_ELECTION, open_election, provision

ELECTION = DEMO_ELECTION["id"]
VOTE = {"leader": ["alice"], "board": ["frank"]}


def test_an_hsm_outage_consumes_no_code_and_the_service_recovers_by_itself(
        tokens, tmp_path, p11kit_client_module, p11kit_socket):
    kit = provision(tokens, tmp_path, module=p11kit_client_module)
    server = P11KitServer(kit.token, p11kit_socket)
    server.start()
    service = Service.open(kit.load(), with_sequencer=True).start()
    try:
        codes = open_election(service, 4)
        verify_receipt(service.ballots.cast(ELECTION, codes[0], VOTE).receipt, service.bundle)

        server.stop()
        started = time.monotonic()
        with pytest.raises(HsmUnavailableError, match="HSM unavailable"):
            service.ballots.cast(ELECTION, codes[1], VOTE)
        assert time.monotonic() - started < 3
        assert service.storage.count_codes(ELECTION) == {"unused": 3, "online": 1, "postal": 0}
        assert service.storage.pending(ELECTION, 10) == []

        server.start()
        deadline = time.monotonic() + 15
        while True:
            try:
                receipt = service.ballots.cast(ELECTION, codes[1], VOTE).receipt
                break
            except (HsmUnavailableError, ReceiptPendingError):
                assert time.monotonic() < deadline, "the service did not recover within 15 s"
                time.sleep(0.2)
        verify_receipt(receipt, service.bundle)
        assert service.sequencer.healthy
    finally:
        service.close()
        server.stop()


def test_a_ballot_stored_before_the_outage_gets_its_receipt_after_it(
        tokens, tmp_path, p11kit_client_module, p11kit_socket):
    kit = provision(tokens, tmp_path, module=p11kit_client_module)
    server = P11KitServer(kit.token, p11kit_socket)
    server.start()
    service = Service.open(kit.load(), with_sequencer=True)  # sequencer not started yet
    try:
        codes = open_election(service, 2)
        ballot_id = service.ballots.submit(ELECTION, codes[0], VOTE).ballot_id  # stored, not yet signed
        server.stop()
        service.start()
        started = time.monotonic()
        with pytest.raises(ReceiptPendingError, match="your ballot is stored"):
            service.ballots.wait_for_receipt(ballot_id)
        assert time.monotonic() - started < 5  # the waiter gave up early: the signer reported trouble
        assert not service.sequencer.healthy and "HSM unavailable" in service.sequencer.last_error

        server.start()
        deadline = time.monotonic() + 15
        while True:
            try:
                receipt = service.ballots.cast(ELECTION, codes[0], VOTE).receipt  # the voter tries again
                break
            except (HsmUnavailableError, ReceiptPendingError):
                assert time.monotonic() < deadline, "no receipt within 15 s of the HSM's return"
                time.sleep(0.2)
        assert verify_receipt(receipt, service.bundle).ballot_id == ballot_id
        assert service.storage.tree_size(ELECTION) == 1
    finally:
        service.close()
        server.stop()
