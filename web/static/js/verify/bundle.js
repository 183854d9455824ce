// bundle.js — the key bundle (keys/<ceremony-id>/keys.json), parsed as strictly as hsm_signer.bundle.

import { b64decodeStrict, bytesEqual, quote, toHex, typeName } from "./bytes.js";
import { FormatError, UnsupportedError } from "./errors.js";
import { isPlainObject, parseJsonStrict } from "./json.js";
import { ID_PATTERN } from "./leaf.js";
import { checkKeyName, importEcdsaSpki, isEd25519Spki, parseVerifierKey } from "./note.js";
import { sha256 } from "./sha256.js";

const KEYS_VERSION = "hsm-signer/keys/v1";
const BUNDLE_FIELDS = ["version", "ceremony_id", "created", "keys"];
const SIGNING_FIELDS = ["purpose", "algorithm", "label", "id", "public_key_pem", "note_key_name", "note_verifier_key", "fingerprint"];
const MAC_FIELDS = ["purpose", "algorithm", "label", "id"];
const SEALING_FIELDS = ["purpose", "algorithm", "label", "id", "public_key_pem", "public_key_point", "fingerprint"];
const PURPOSES = ["checkpoint", "tally", "code-hmac", "sealing"];
const ALGORITHMS = ["ecdsa-p256", "ed25519"];
// datetime.fromisoformat() forms with a UTC offset, as the ceremony writes them.
const CREATED = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)$/;

function bundleFail(path, message, code = "bundle.syntax") {
  return new FormatError(`${path}: ${message}`, code);
}

function bundleFields(obj, fields, path) {
  if (!isPlainObject(obj)) throw bundleFail(path, `must be a JSON object, got ${typeName(obj)}`);
  const missing = fields.filter((f) => !Object.prototype.hasOwnProperty.call(obj, f));
  if (missing.length) throw bundleFail(path, `missing field(s): ${missing.join(", ")}`);
  const unknown = Object.keys(obj).filter((k) => !fields.includes(k)).sort();
  if (unknown.length) throw bundleFail(path, `unknown field(s): ${unknown.join(", ")}`);
}

async function derOfPem(pem, path) {
  const m = /^-----BEGIN PUBLIC KEY-----\r?\n([A-Za-z0-9+/=\r\n]+?)\r?\n?-----END PUBLIC KEY-----\r?\n?$/.exec(pem.trim() + "\n");
  let der;
  try {
    if (!m) throw new FormatError("no PUBLIC KEY block");
    der = b64decodeStrict(m[1].replace(/[\r\n]/g, ""), "PEM body");
  } catch (exc) {
    throw bundleFail(path, `is not a PEM public key (${exc.message})`, "bundle.public-key");
  }
  if (isEd25519Spki(der)) return { algorithm: "ed25519", der };
  const imported = await importEcdsaSpki(der);
  if (imported === null) throw bundleFail(path, "public key is neither ECDSA P-256 nor Ed25519", "bundle.public-key");
  return { algorithm: "ecdsa-p256", der: imported.der };
}

// The DER SubjectPublicKeyInfo of a P-256 key is this prefix and the 65-byte uncompressed point.
const P256_SPKI_PREFIX = Uint8Array.from([0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01,
  0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00]);

/** The sealing key entry (hsm_signer.bundle's _validated_sealing): ballots are sealed to its point. */
async function sealingEntry(obj, entry, path) {
  if (obj.algorithm !== "ecdh-p256") {
    throw bundleFail(`${path}.algorithm`, `the sealing key must be ecdh-p256, got ${quote(obj.algorithm)}`);
  }
  const { algorithm, der } = await derOfPem(obj.public_key_pem, `${path}.public_key_pem`);
  if (algorithm !== "ecdsa-p256") throw bundleFail(`${path}.public_key_pem`, "the sealing key must be an EC P-256 key");
  let point;
  try {
    point = b64decodeStrict(obj.public_key_point, "public_key_point");
  } catch {
    throw bundleFail(`${path}.public_key_point`, "is not base64");
  }
  if (point.length !== 65 || point[0] !== 0x04) {
    throw bundleFail(`${path}.public_key_point`, `must be an uncompressed P-256 point (65 bytes starting 0x04), got ${point.length} bytes`);
  }
  const spki = new Uint8Array(P256_SPKI_PREFIX.length + point.length);
  spki.set(P256_SPKI_PREFIX);
  spki.set(point, P256_SPKI_PREFIX.length);
  if (!bytesEqual(spki, der)) throw bundleFail(`${path}.public_key_point`, "holds a different public key than public_key_pem");
  const fingerprint = toHex(await sha256(der));
  if (obj.fingerprint !== fingerprint) {
    throw bundleFail(`${path}.fingerprint`, `does not match public_key_pem (SHA-256 of its DER is ${fingerprint})`, "bundle.key-mismatch");
  }
  return { ...entry, point, fingerprint };
}

async function bundleEntry(obj, path) {
  const kind = isPlainObject(obj) ? obj.purpose : undefined;
  const fields = kind === "code-hmac" ? MAC_FIELDS : kind === "sealing" ? SEALING_FIELDS : SIGNING_FIELDS;
  bundleFields(obj, fields, path);
  for (const name of fields) {
    if (typeof obj[name] !== "string" || !obj[name]) {
      throw bundleFail(`${path}.${name}`, `must be a non-empty string, got ${quote(obj[name])}`);
    }
  }
  if (!PURPOSES.includes(obj.purpose)) throw bundleFail(`${path}.purpose`, `must be one of ${PURPOSES.join(", ")}, got ${quote(obj.purpose)}`);
  if (!/^(?:[0-9a-f]{2})+$/.test(obj.id)) throw bundleFail(`${path}.id`, `must be lowercase hex (whole bytes), got ${quote(obj.id)}`);
  const entry = { purpose: obj.purpose, algorithm: obj.algorithm, label: obj.label, id: obj.id };
  if (obj.purpose === "code-hmac") {
    if (obj.algorithm !== "hmac-sha256") {
      throw bundleFail(`${path}.algorithm`, `the code-hmac key must be hmac-sha256, got ${quote(obj.algorithm)}`);
    }
    return entry;
  }
  if (obj.purpose === "sealing") return sealingEntry(obj, entry, path);
  if (!ALGORITHMS.includes(obj.algorithm)) {
    throw bundleFail(`${path}.algorithm`, `must be one of ${ALGORITHMS.join(", ")}, got ${quote(obj.algorithm)}`);
  }
  const { algorithm, der } = await derOfPem(obj.public_key_pem, `${path}.public_key_pem`);
  if (algorithm !== obj.algorithm) {
    throw bundleFail(`${path}.algorithm`, `says ${obj.algorithm} but public_key_pem holds an ${algorithm} key`, "bundle.key-mismatch");
  }
  try {
    checkKeyName(obj.note_key_name);
  } catch (exc) {
    throw bundleFail(`${path}.note_key_name`, exc.message, exc.code);
  }
  let verifier;
  try {
    verifier = await parseVerifierKey(obj.note_verifier_key);
  } catch (exc) {
    if (exc instanceof UnsupportedError) throw exc;
    throw bundleFail(`${path}.note_verifier_key`, exc.message, exc.code);
  }
  if (!bytesEqual(verifier.spki, der)) {
    throw bundleFail(`${path}.note_verifier_key`, "holds a different public key than public_key_pem", "bundle.key-mismatch");
  }
  if (verifier.name !== obj.note_key_name) {
    throw bundleFail(`${path}.note_verifier_key`,
      `is for key name ${quote(verifier.name)}, but note_key_name is ${quote(obj.note_key_name)}`, "bundle.key-mismatch");
  }
  if (!/^[0-9a-f]{64}$/.test(obj.fingerprint)) {
    throw bundleFail(`${path}.fingerprint`, "must be 64 lowercase hex digits (SHA-256 of the DER public key)");
  }
  const fingerprint = toHex(await sha256(der));
  if (obj.fingerprint !== fingerprint) {
    throw bundleFail(`${path}.fingerprint`, `does not match public_key_pem (SHA-256 of its DER is ${fingerprint})`, "bundle.key-mismatch");
  }
  return { ...entry, noteKeyName: obj.note_key_name, fingerprint, verifier };
}

/**
 * Parse keys.json (text, bytes or parsed object) as strictly as hsm_signer.bundle.
 * Resolves to {ceremonyId, created, keys: [...], key(purpose), verifier(purpose)}.
 */
export async function parseKeyBundle(input) {
  let obj = input;
  if (typeof input === "string" || input instanceof Uint8Array) {
    try {
      obj = parseJsonStrict(input);
    } catch (exc) {
      throw exc.within("keys.json");
    }
  }
  bundleFields(obj, BUNDLE_FIELDS, "keys.json");
  if (obj.version !== KEYS_VERSION) throw bundleFail("version", `must be "${KEYS_VERSION}", got ${quote(obj.version)}`);
  for (const name of ["ceremony_id", "created"]) {
    if (typeof obj[name] !== "string") throw bundleFail(name, `must be a string, got ${typeName(obj[name])}`);
  }
  if (!Array.isArray(obj.keys)) throw bundleFail("keys", `must be a list, got ${typeName(obj.keys)}`);
  const keys = [];
  for (let i = 0; i < obj.keys.length; i++) keys.push(await bundleEntry(obj.keys[i], `keys[${i}]`));
  if (!ID_PATTERN.test(obj.ceremony_id)) {
    throw bundleFail("ceremony_id", `must match [a-z0-9][a-z0-9._-]{0,63}, got ${quote(obj.ceremony_id)}`);
  }
  if (!CREATED.test(obj.created)) {
    throw bundleFail("created", `must be an ISO-8601 date and time with a UTC offset, such as 2025-01-31T09:00:00Z, got ${quote(obj.created)}`);
  }
  const seen = new Map();
  keys.forEach((entry, i) => {
    if (seen.has(entry.purpose)) {
      throw bundleFail(`keys[${i}].purpose`, `duplicate purpose ${quote(entry.purpose)} (already keys[${seen.get(entry.purpose)}])`);
    }
    seen.set(entry.purpose, i);
  });
  const ceremonyId = obj.ceremony_id;
  return {
    ceremonyId,
    created: obj.created,
    keys,
    has(purpose) { return keys.some((k) => k.purpose === purpose); },
    key(purpose) {
      const found = keys.find((k) => k.purpose === purpose);
      if (!found) throw new FormatError(`key bundle ${ceremonyId} has no ${purpose} key`, "bundle.missing-key");
      return found;
    },
    verifier(purpose) {
      const entry = this.key(purpose);
      if (!entry.verifier) throw new FormatError(`the ${purpose} key does not sign notes`, "bundle.missing-key");
      return entry.verifier;
    },
  };
}
