"""An independent PKCS#11 client (PyKCS11, in its own process) for tests to cross-check.

Run by :func:`harness.pykcs11`, never imported by product code. Its own process means its
own copy of the PKCS#11 module: it shares nothing with python-pkcs11 but the token files,
so what it reports is what the token holds, not what our process believes.

Usage: ``python pykcs11_client.py MODULE TOKEN_LABEL OPERATION [ARG]`` with the user PIN in
``PKCS11_PIN``; prints one JSON document.
"""

from __future__ import annotations

import json
import os
import sys

import PyKCS11
from PyKCS11 import (
    CKA_ALWAYS_SENSITIVE, CKA_CLASS, CKA_DECRYPT, CKA_DERIVE, CKA_EC_POINT, CKA_EXTRACTABLE, CKA_ID, CKA_LABEL,
    CKA_LOCAL, CKA_NEVER_EXTRACTABLE, CKA_PRIVATE, CKA_SENSITIVE, CKA_SIGN, CKA_TOKEN, CKA_UNWRAP, CKA_VALUE,
)

FLAGS = {"token": CKA_TOKEN, "private": CKA_PRIVATE, "sensitive": CKA_SENSITIVE,
         "extractable": CKA_EXTRACTABLE, "local": CKA_LOCAL, "always_sensitive": CKA_ALWAYS_SENSITIVE,
         "never_extractable": CKA_NEVER_EXTRACTABLE, "sign": CKA_SIGN, "decrypt": CKA_DECRYPT,
         "unwrap": CKA_UNWRAP, "derive": CKA_DERIVE}
CLASSES = {PyKCS11.CKO_PRIVATE_KEY: "private_key", PyKCS11.CKO_PUBLIC_KEY: "public_key",
           PyKCS11.CKO_SECRET_KEY: "secret_key"}


def open_session(module: str, label: str):
    lib = PyKCS11.PyKCS11Lib()
    lib.load(module)
    for slot in lib.getSlotList(tokenPresent=True):
        if lib.getTokenInfo(slot).label.strip() == label:
            session = lib.openSession(slot, PyKCS11.CKF_SERIAL_SESSION | PyKCS11.CKF_RW_SESSION)
            session.login(os.environ["PKCS11_PIN"])
            return session
    raise SystemExit(f"token {label!r} not found")


def objects(session, _arg=None):
    found = []
    for obj in session.findObjects([]):
        cls, label, key_id = session.getAttributeValue(obj, [CKA_CLASS, CKA_LABEL, CKA_ID])
        if cls not in CLASSES:
            continue
        entry = {"class": CLASSES[cls], "label": label, "id": bytes(key_id).hex()}
        for name, attribute in FLAGS.items():
            try:
                (value,) = session.getAttributeValue(obj, [attribute])
                entry[name] = bool(value)
            except PyKCS11.PyKCS11Error:
                pass
        if cls == PyKCS11.CKO_PUBLIC_KEY:
            (point,) = session.getAttributeValue(obj, [CKA_EC_POINT], allAsBinary=True)
            entry["ec_point"] = bytes(point).hex()
        found.append(entry)
    return found


def _key(session, label):
    for cls in (PyKCS11.CKO_PRIVATE_KEY, PyKCS11.CKO_SECRET_KEY):
        found = session.findObjects([(CKA_CLASS, cls), (CKA_LABEL, label)])
        if found:
            return found[0]
    raise SystemExit(f"no key {label!r}")


def read_value(session, label):
    # The raw C_GetAttributeValue call: PyKCS11's wrapper turns a refusal into None.
    template = PyKCS11.LowLevel.ckattrlist(1)
    template[0].SetType(CKA_VALUE)
    rv = session.lib.C_GetAttributeValue(session.session, _key(session, label), template)
    if rv != PyKCS11.CKR_OK:
        return {"error": PyKCS11.CKR[rv]}
    return {"value_length": template[0].GetLen()}


def wrap(session, label):
    wrapping = session.generateKey([
        (CKA_CLASS, PyKCS11.CKO_SECRET_KEY), (PyKCS11.CKA_KEY_TYPE, PyKCS11.CKK_AES),
        (PyKCS11.CKA_VALUE_LEN, 32), (CKA_TOKEN, False), (PyKCS11.CKA_WRAP, True),
        (PyKCS11.CKA_ENCRYPT, True)], PyKCS11.Mechanism(PyKCS11.CKM_AES_KEY_GEN, None))
    try:
        wrapped = session.wrapKey(wrapping, _key(session, label), PyKCS11.Mechanism(PyKCS11.CKM_AES_KEY_WRAP_PAD, None))
        return {"wrapped_length": len(wrapped)}
    except PyKCS11.PyKCS11Error as exc:
        return {"error": PyKCS11.CKR[exc.value]}


def duplicate_ec(session, label):
    session.generateKeyPair(
        [(CKA_TOKEN, True), (CKA_LABEL, label), (PyKCS11.CKA_EC_PARAMS, bytes.fromhex("06082a8648ce3d030107")),
         (PyKCS11.CKA_VERIFY, True)],
        [(CKA_TOKEN, True), (CKA_LABEL, label), (PyKCS11.CKA_SIGN, True), (CKA_SENSITIVE, True)],
        mecha=PyKCS11.MechanismECGENERATEKEYPAIR)
    return {"created": label}


OPERATIONS = {"objects": objects, "read-value": read_value, "wrap": wrap, "duplicate-ec": duplicate_ec}

if __name__ == "__main__":
    module, label, operation = sys.argv[1:4]
    arg = sys.argv[4] if len(sys.argv) > 4 else None
    session = open_session(module, label)
    try:
        print(json.dumps(OPERATIONS[operation](session, arg)))
    finally:
        session.logout()
        session.closeSession()
