"""Signing layers: the project's HSM layer against raw python-pkcs11, OpenSSL and a network HSM.

Signatures per second in one thread, ECDSA P-256 and Ed25519, over a 110-byte message
(the size of a checkpoint note), all variants in the same process and rounds interleaved:

* ``hsm layer`` — ``Hsm(...).signer(label).sign(message)``: the process-wide PKCS#11 lock,
  the fault-healing ``Hsm.run`` wrapper, the cached key handle, SHA-256 on the host and
  the raw r||s to DER conversion (ECDSA), on SoftHSM2;
* ``raw python-pkcs11`` — the same key object, same session:
  ``key.sign(sha256(message), mechanism=Mechanism.ECDSA)`` (``EDDSA`` over the message);
  the difference to the layer is the layer's overhead;
* ``OpenSSL`` — the ``cryptography`` package signing with a key in memory: what the
  cryptography itself costs without PKCS#11 and SoftHSM's object handling;
* ``p11-kit network HSM`` — the HSM layer through ``p11-kit-client.so`` to a
  ``p11-kit server`` on a Unix socket that serves the same SoftHSM token (a network HSM
  on loopback: one round trip per signature).
"""

from __future__ import annotations

import hashlib
import os

from .common import Context, fmt
from .stats import interleaved_rates, median, per_round_ratios

NAME = "signing"
TITLE = "Signing layers: HSM layer vs raw python-pkcs11 vs OpenSSL (and a network HSM)"

MESSAGE = (b"hsm-signer/bench-election\n1000000\n"
           b"5XMMMmUdWO6Ua4NoZm6YXqW+1dYM6gGxcrX4Dz0A9Qs=\n"
           b"extension line of a typical size\n")
VARIANTS = ("hsm layer", "raw python-pkcs11", "OpenSSL", "p11-kit network HSM")


def _variants(hsm, net_hsm, label: str, algorithm: str, notes: list[str]) -> dict:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519
    from pkcs11 import Mechanism, ObjectClass

    from hsm_signer.signer import ED25519

    layer = hsm.signer(label)
    raw_key = hsm.run("bench: key handle", lambda s: hsm.find_key(s, label, ObjectClass.PRIVATE_KEY))
    net = None
    if net_hsm is not None:
        from hsm_signer.errors import MechanismNotSupportedError
        try:
            net = net_hsm.signer(label)
        except MechanismNotSupportedError as exc:
            notes.append(f"{algorithm} through p11-kit: not measured: {exc}")
    if algorithm == ED25519:
        soft = ed25519.Ed25519PrivateKey.generate()

        def raw_sign(message: bytes) -> bytes:
            return raw_key.sign(message, mechanism=Mechanism.EDDSA)

        def openssl_sign(message: bytes) -> bytes:
            return soft.sign(message)
    else:
        soft = ec.generate_private_key(ec.SECP256R1())
        ecdsa = ec.ECDSA(hashes.SHA256())

        def raw_sign(message: bytes) -> bytes:
            return raw_key.sign(hashlib.sha256(message).digest(), mechanism=Mechanism.ECDSA)

        def openssl_sign(message: bytes) -> bytes:
            return soft.sign(message, ecdsa)

    signers = {"hsm layer": layer.sign, "raw python-pkcs11": raw_sign, "OpenSSL": openssl_sign}
    if net is not None:
        signers["p11-kit network HSM"] = net.sign
    # Not timed: every variant really signs (a fast wrong answer is not a result).
    from hsm_signer.signer import verify_signature
    verify_signature(layer.public_key_der, MESSAGE, layer.sign(MESSAGE))
    if net is not None:
        verify_signature(layer.public_key_der, MESSAGE, net.sign(MESSAGE))
    assert len(raw_sign(MESSAGE)) == 64 and openssl_sign(MESSAGE)

    def loop(sign):
        def run(n: int) -> None:
            for _ in range(n):
                sign(MESSAGE)
        return run
    return {name: loop(sign) for name, sign in signers.items()}


def run(ctx: Context) -> dict:
    from hsm_signer.hsm.manage import generate_signing_key
    from hsm_signer.signer import ALGORITHMS

    from . import hsmkit

    conf = hsmkit.token_directory(ctx.workdir)
    token = hsmkit.new_token(conf, "bench-signing")
    labels = {algorithm: f"bench-{algorithm}" for algorithm in ALGORITHMS}
    hsm = hsmkit.open_hsm(token)
    for number, (algorithm, label) in enumerate(labels.items(), 1):
        generate_signing_key(hsm, label, bytes([number]), algorithm)

    client = hsmkit.find_p11kit_client()
    server = None
    net_hsm = None
    notes: list[str] = []
    if client and os.path.exists(hsmkit.P11KIT_SERVER):
        server = hsmkit.P11KitServer(token, ctx.workdir / "p11kit.sock").start()
        os.environ["P11_KIT_SERVER_ADDRESS"] = server.address  # read once, when the client module loads
        net_hsm = hsmkit.open_hsm(token, module=client)
    else:
        notes.append("p11-kit server or p11-kit-client.so is not installed: the network-HSM variant was not measured")
    operations, rounds = ctx.size(2000, 200), ctx.size(9, 3)
    algorithms = {}
    try:
        for algorithm, label in labels.items():
            variants = _variants(hsm, net_hsm, label, algorithm, notes)
            rates = interleaved_rates(variants, operations, rounds, warmup=operations // 10)
            layer, raw, openssl = rates["hsm layer"], rates["raw python-pkcs11"], rates["OpenSSL"]
            entry = {
                "signatures_per_s": {name: round(median(values)) for name, values in rates.items()},
                "rounds": {name: [round(v) for v in values] for name, values in rates.items()},
                # medians of the per-round ratios: each compares two variants measured seconds apart
                "layer_over_raw": round(median(per_round_ratios(layer, raw)), 3),
                "raw_over_openssl": round(median(per_round_ratios(raw, openssl)), 3),
                "layer_over_openssl": round(median(per_round_ratios(layer, openssl)), 3),
            }
            entry["layer_overhead_us"] = round(1e6 / median(layer) - 1e6 / median(raw), 2)
            if "p11-kit network HSM" in rates:
                entry["network_over_layer"] = round(median(per_round_ratios(rates["p11-kit network HSM"], layer)), 3)
            algorithms[algorithm] = entry
            ctx.log(f"signing/{algorithm}: " + ", ".join(f"{n} {v:,}/s" for n, v in entry["signatures_per_s"].items()))
    finally:
        if net_hsm is not None:
            net_hsm.close()
        hsm.close()
        if server is not None:
            server.stop()

    ratios = {}
    for algorithm, entry in algorithms.items():
        for key in ("layer_over_raw", "raw_over_openssl", "layer_over_openssl", "network_over_layer"):
            if key in entry:
                ratios[f"{algorithm}.{key}"] = entry[key]
    p256 = algorithms["ecdsa-p256"]
    summary = (f"ECDSA P-256: HSM layer {p256['signatures_per_s']['hsm layer']:,}/s = "
               f"{p256['layer_over_raw']:.2f}× raw python-pkcs11 ({p256['layer_overhead_us']:.1f} µs overhead per "
               f"signature), {p256['layer_over_openssl']:.2f}× OpenSSL; Ed25519 layer "
               f"{algorithms['ed25519']['layer_over_raw']:.2f}× raw")
    return {"summary": summary, "ratios": ratios, "algorithms": algorithms, "notes": notes,
            "params": {"operations_per_round": operations, "rounds": rounds, "message_bytes": len(MESSAGE)}}


def render(result: dict, charts) -> str:
    algorithms = result["algorithms"]
    lines = [result["summary"] + ".", ""]
    for note in result.get("notes", []):
        lines += [f"Note: {note}", ""]
    lines.append("| algorithm | " + " | ".join(VARIANTS) + " | layer / raw | raw / OpenSSL | network / layer |")
    lines.append("|---|" + "---:|" * (len(VARIANTS) + 3))
    for algorithm, entry in algorithms.items():
        rates = entry["signatures_per_s"]
        lines.append(f"| {algorithm} | " + " | ".join(fmt(rates.get(v)) + "/s" if v in rates else "–" for v in VARIANTS)
                     + f" | {entry['layer_over_raw']:.2f} | {entry['raw_over_openssl']:.2f} | "
                     + (f"{entry['network_over_layer']:.2f}" if "network_over_layer" in entry else "–") + " |")
    lines.append("")
    lines.append("Signatures per second in one thread (median of "
                 f"{result['params']['rounds']} interleaved rounds of {result['params']['operations_per_round']:,}); "
                 "ratios are medians of per-round ratios. The layer's overhead per signature is "
                 + ", ".join(f"{e['layer_overhead_us']:.1f} µs ({a})" for a, e in algorithms.items()) + ".")
    lines.append("")
    labels, values = [], []
    for algorithm, entry in algorithms.items():
        for variant, rate in entry["signatures_per_s"].items():
            labels.append(f"{algorithm}: {variant}")
            values.append(rate)
    lines.append(charts.hbars("signing", labels, values, title="Signatures per second, one thread",
                              xlabel="signatures/s (log)", logx=True, annotate=[f"{v:,.0f}/s" for v in values]))
    return "\n".join(lines)
