"""The browser seals ballots exactly as the server does, and each opens what the other sealed.

``web/static/js/hpke.js`` and ``sealed.js`` re-implement, with WebCrypto only, what
``hsm_signer.log.hpke`` and ``hsm_signer.log.sealed`` do. Checked in Debian's Chromium:

* the RFC 9180 vectors for the suite (key schedule and all 257 encryptions), with the
  vector's fixed ephemeral key;
* the shared vectors of ``tests/vectors/sealed-ballots.json`` (``make_sealed_vectors.py``):
  the same inputs give the same ``info``, padded plaintext and sealed bytes in both; every
  opening case (moved to another ballot id, channel or election, one byte changed) opens
  or fails alike; the strict plaintext decoder accepts and refuses the same bytes;
* with fresh random keys: Python opens what the browser sealed and the browser opens what
  Python sealed.
"""

from __future__ import annotations

import base64
import json
import secrets

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from hsm_signer.errors import FormatError, VerificationError
from hsm_signer.log import hpke, sealed

from js.browser import REPO, chromium, static_server
from test_hpke import VECTORS as RFC9180

VECTORS = REPO / "tests" / "vectors"
DOC = json.loads((VECTORS / "sealed-ballots.json").read_text())
ROUTES = {"/static/": REPO / "web" / "static", "/vectors/": VECTORS, "/js/": REPO / "tests" / "js"}


def _key(hex_scalar: str) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(int(hex_scalar, 16), ec.SECP256R1())


RECIPIENT = _key(DOC["recipient"]["scalar"])
RECIPIENT_PK = bytes.fromhex(DOC["recipient"]["public"])


@pytest.fixture(scope="module")
def page():
    with static_server(ROUTES) as base, chromium() as browser:
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda msg: errors.append(msg.text)
                if msg.type == "error" and not msg.location.get("url", "").endswith("/favicon.ico") else None)
        page.goto(f"{base}/js/blank.html")
        yield page
        assert not errors, errors
        page.close()


@pytest.fixture(scope="module")
def js_outcomes(page) -> dict:
    return page.evaluate("""async (doc) => {
        const run = await import('/js/run-sealing.js');
        return run.sealedVectors(doc);
    }""", DOC)


def python_open(case: dict) -> dict:
    size = next(c for c in DOC["seal"] if c["name"] == case["case"])["padded_size"]
    box = base64.b64decode(case["sealed"])
    try:
        secret = hpke.decapsulate(RECIPIENT, box[:hpke.N_ENC])
        return {"valid": True, "selections": sealed.open_sealed(secret, case["election"], case["channel"],
                                                                case["ballot_id"], box, size)}
    except (FormatError, VerificationError) as exc:
        return {"valid": False, "message": str(exc)}


def python_decode(case: dict) -> dict:
    try:
        return {"valid": True, "selections": sealed.decode_plaintext(bytes.fromhex(case["plaintext"]), case["size"])}
    except FormatError as exc:
        return {"valid": False, "message": str(exc)}


def test_the_rfc9180_vectors_pass_in_the_browser(page):
    results = page.evaluate("""async (vectors) => (await import('/js/run-sealing.js')).rfc9180(vectors)""", RFC9180)
    assert [r["aead_id"] for r in results] == [hpke.AEAD_AES_128_GCM, hpke.AEAD_AES_256_GCM]
    for got, want in zip(results, RFC9180):
        assert got["mismatches"] == [], f"aead {want['aead_id']}: {got['mismatches'][:5]}"
        assert got["encryptions"] == 257
        for name in ("enc", "shared_secret", "key", "base_nonce", "exporter_secret"):
            assert got[name] == want[name], name
        assert got["decapsulated"] == want["shared_secret"]
    # the browser's one-shot seal of the ballots' suite (no AAD) gives Python's bytes
    aes256 = next(v for v in RFC9180 if v["aead_id"] == hpke.AEAD_AES_256_GCM)
    h = bytes.fromhex
    python = hpke.seal(h(aes256["pkRm"]), h(aes256["info"]), h(aes256["encryptions"][0]["pt"]),
                       ephemeral=_key(aes256["skEm"]))
    assert results[1]["single"] == python.hex() and python.startswith(h(aes256["enc"]))


@pytest.mark.parametrize("case", DOC["seal"], ids=lambda c: c["name"])
def test_browser_and_python_seal_the_same_bytes(case, js_outcomes):
    eph = _key(case["ephemeral"]["scalar"])
    info = sealed.sealing_info(case["election"], case["channel"], case["ballot_id"])
    plaintext = sealed.encode_plaintext(case["selections"], case["padded_size"])
    box = hpke.seal(RECIPIENT_PK, info, plaintext, ephemeral=eph)
    python = {"info": info.hex(), "plaintext": plaintext.hex(), "sealed": base64.b64encode(box).decode(),
              "shared_secret": hpke.decapsulate(RECIPIENT, box[:hpke.N_ENC]).hex()}
    want = {name: case[name] for name in python}
    assert python == want
    assert js_outcomes[f"seal/{case['name']}"] == want
    assert sealed.open_sealed(bytes.fromhex(case["shared_secret"]), case["election"], case["channel"],
                              case["ballot_id"], box, case["padded_size"]) == {
        contest: sorted(options) for contest, options in case["selections"].items()}


@pytest.mark.parametrize("case", DOC["open"], ids=lambda c: c["name"])
def test_browser_and_python_open_alike(case, js_outcomes):
    python, browser = python_open(case), js_outcomes[f"open/{case['name']}"]
    assert python["valid"] is browser["valid"] is case["valid"], (python, browser)
    if case["valid"]:
        assert browser["selections"] == python["selections"]
    else:
        assert browser["code"] == "cannot-open"
        assert "does not open with this secret" in python["message"] and "does not open with this secret" in browser["message"]


@pytest.mark.parametrize("case", DOC["decode"], ids=lambda c: c["name"])
def test_browser_and_python_decode_plaintexts_alike(case, js_outcomes):
    python, browser = python_decode(case), js_outcomes[f"decode/{case['name']}"]
    assert python["valid"] is browser["valid"] is case["valid"], (python, browser)
    if case["valid"]:
        assert browser["selections"] == python["selections"] == case["selections"]


def test_python_opens_what_the_browser_sealed_with_a_fresh_key(page):
    recipient = ec.generate_private_key(ec.SECP256R1())
    pk = hpke.public_key_bytes(recipient.public_key())
    ballot_id = secrets.token_hex(16)
    out = page.evaluate("""async ([pk, ballotId, size]) => {
        const run = await import('/js/run-sealing.js');
        const sealed = await import('/static/js/sealed.js');
        const sel = {board: ['frank', 'dan'], leader: ['bob']};
        const a = await sealed.sealBallot(run.hex(pk), 'vectors-2026', 'online', ballotId, sel, size);
        const b = await sealed.sealBallot(run.hex(pk), 'vectors-2026', 'online', ballotId, sel, size);
        return [run.toB64(a), run.toB64(b), sealed.newBallotId()];
    }""", [pk.hex(), ballot_id, DOC["padded_size"]])
    first, second = (base64.b64decode(s) for s in out[:2])
    assert first != second and first[:hpke.N_ENC] != second[:hpke.N_ENC]  # a fresh ephemeral key each time
    assert len(first) == sealed.sealed_length(DOC["padded_size"]) == len(second)
    for box in (first, second):
        assert sealed.check_sealed(box, DOC["padded_size"]) == box
        secret = hpke.decapsulate(recipient, box[:hpke.N_ENC])
        assert sealed.open_sealed(secret, "vectors-2026", "online", ballot_id, box, DOC["padded_size"]) == {
            "board": ["dan", "frank"], "leader": ["bob"]}
        with pytest.raises(hpke.OpeningError):
            sealed.open_sealed(secret, "vectors-2026", "postal", ballot_id, box, DOC["padded_size"])
    assert len(out[2]) == 32 and int(out[2], 16) >= 0 and out[2] == out[2].lower()


def test_the_browser_opens_what_python_sealed_with_a_fresh_key(page):
    recipient = ec.generate_private_key(ec.SECP256R1())
    pk = hpke.public_key_bytes(recipient.public_key())
    scalar = recipient.private_numbers().private_value.to_bytes(32, "big")
    ballot_id = secrets.token_hex(16)
    box = sealed.seal_ballot(pk, "vectors-2026", "postal", ballot_id, {"leader": ["carol"], "board": []}, 64)
    out = page.evaluate("""async ([sk, pk, ballotId, box]) => {
        const run = await import('/js/run-sealing.js');
        const hpke = await import('/static/js/hpke.js');
        const sealed = await import('/static/js/sealed.js');
        const bytes = run.b64(box);
        const secret = await hpke.decapsulate(run.hex(sk), run.hex(pk), bytes.slice(0, hpke.N_ENC));
        const opened = await sealed.openSealed(secret, 'vectors-2026', 'postal', ballotId, bytes, 64);
        let moved = null;
        try { await sealed.openSealed(secret, 'vectors-2026', 'online', ballotId, bytes, 64); }
        catch (exc) { moved = exc.code; }
        return {opened, secret: run.toHex(secret), moved};
    }""", [scalar.hex(), pk.hex(), ballot_id, base64.b64encode(box).decode()])
    assert out["opened"] == {"board": [], "leader": ["carol"]}
    assert out["secret"] == hpke.decapsulate(recipient, box[:hpke.N_ENC]).hex()
    assert out["moved"] == "cannot-open"


def test_the_browser_refuses_a_public_key_that_is_not_a_p256_point(page):
    codes = page.evaluate("""async () => {
        const sealed = await import('/static/js/sealed.js');
        const out = [];
        for (const pk of [new Uint8Array(65), Uint8Array.of(4, ...new Array(64).fill(1)), new Uint8Array(33)]) {
            try { await sealed.sealBallot(pk, 'e', 'online', 'a'.repeat(32), {c: ['o']}, 64); out.push('sealed'); }
            catch (exc) { out.push(exc.code); }
        }
        try { await sealed.sealBallot(new Uint8Array(65), 'e', 'mail', 'a'.repeat(32), {}, 64); }
        catch (exc) { out.push(exc.code); }
        return out;
    }""")
    assert codes == ["bad-point", "bad-point", "bad-point", "bad-channel"]


def _bundle_with_sealing_key(change=None) -> str:
    from hsm_signer.bundle import KeyEntry
    doc = json.loads(json.loads((VECTORS / "browser-receipts.json").read_text())["bundles"]["a"])
    entry = KeyEntry.for_sealing_key("sealing", "04", RECIPIENT_PK).to_dict()
    if change:
        change(entry)
    doc["keys"].append(entry)
    return json.dumps(doc, indent=2)


@pytest.mark.parametrize("name, change", [
    ("happy-path", None),
    ("other-point", lambda e: e.update(public_key_point=base64.b64encode(
        hpke.public_key_bytes(ec.generate_private_key(ec.SECP256R1()).public_key())).decode())),
    ("short-point", lambda e: e.update(public_key_point=base64.b64encode(RECIPIENT_PK[:33]).decode())),
    ("wrong-fingerprint", lambda e: e.update(fingerprint="0" * 64)),
    ("wrong-algorithm", lambda e: e.update(algorithm="ecdsa-p256")),
    ("extra-field", lambda e: e.update(note_key_name="x/y")),
])
def test_the_browser_reads_a_sealing_key_in_keys_json_as_python_does(page, name, change):
    from hsm_signer.bundle import KeyBundle
    text = _bundle_with_sealing_key(change)
    try:
        python = {"ok": True, "point": KeyBundle.from_json(text).key("sealing").sealing_point.hex()}
    except FormatError as exc:
        python = {"ok": False, "message": str(exc)}
    browser = page.evaluate("""async (text) => {
        const bundle = await import('/static/js/verify/bundle.js');
        const run = await import('/js/run-sealing.js');
        try { const b = await bundle.parseKeyBundle(text); return {ok: true, point: run.toHex(b.key('sealing').point)}; }
        catch (exc) { return {ok: false, message: exc.message}; }
    }""", text)
    assert browser["ok"] is python["ok"] is (name == "happy-path"), (python, browser)
    if python["ok"]:
        assert browser["point"] == python["point"] == RECIPIENT_PK.hex()
    else:
        assert browser["message"].split(":")[0] == python["message"].split(":")[0], (python, browser)
