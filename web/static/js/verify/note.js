// note.js — c2sp.org/signed-note: verifier keys and signed notes (ECDSA P-256 0x02, Ed25519 0x01).
//
// As strict as hsm_signer.log.note: the same notes parse, the same signatures count, the
// same failures carry the same codes.

import { b64decodeStrict, b64encode, bytesEqual, codePoint, concat, decodeUtf8, firstLoneSurrogate, fromHex, quote, toHex, typeName, utf8 }
  from "./bytes.js";
import { FormatError, UnsupportedError, VerificationError } from "./errors.js";
import { sha256, subtle } from "./sha256.js";

export const SIG_TYPE_ED25519 = 0x01;
export const SIG_TYPE_ECDSA = 0x02;
const EM_DASH = "\u2014";
const SIGNATURE_PREFIX = EM_DASH + " ";
const MAX_SIGNATURES = 100;
const KEY_ID_SIZE = 4;
const ED25519_SPKI_PREFIX = fromHex("302a300506032b6570032100");

// The Unicode spaces a key name must not contain (the same set as Python's str.isspace()).
const SPACES = new Set([0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680,
  0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a,
  0x2028, 0x2029, 0x202f, 0x205f, 0x3000]);

/** Key names are non-empty and contain no space, no '+' and no control character. */
export function checkKeyName(name) {
  if (typeof name !== "string" || !name) {
    throw new FormatError(`key name must be a non-empty string, got ${quote(name)}`, "note.key-name");
  }
  for (const ch of name) {
    const c = ch.codePointAt(0);
    if (SPACES.has(c) || ch === "+" || c < 0x20 || c === 0x7f) {
      throw new FormatError(`key name ${quote(name)} must not contain spaces, '+' or control characters (found ${codePoint(c)})`, "note.key-name");
    }
  }
  return name;
}

function checkCharacters(s, what) {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 && c !== 0x0a) {
      const line = s.slice(0, i).split("\n").length;
      throw new FormatError(`${what} contains control character ${codePoint(c)} on line ${line}; only newline is allowed`, "note.syntax");
    }
  }
}

function checkNoteText(text) {
  if (typeof text !== "string") throw new FormatError(`note text must be a string, got ${typeName(text)}`, "note.syntax");
  if (!text.endsWith("\n")) throw new FormatError("note text must end with a newline", "note.syntax");
  checkCharacters(text, "note text");
  if (firstLoneSurrogate(text) >= 0) throw new FormatError("note text is not valid Unicode (lone surrogate)", "note.syntax");
  return utf8(text);
}

/** A trusted public key under a note key name; build one with parseVerifierKey(). */
export class NoteVerifier {
  constructor({ name, keyId, type, key, cryptoKey = null }) {
    this.name = name;
    this.keyId = keyId; // 4 bytes
    this.keyIdHex = toHex(keyId);
    this.type = type; // SIG_TYPE_ED25519 or SIG_TYPE_ECDSA
    this.key = key; // 32 raw bytes (Ed25519) or DER SubjectPublicKeyInfo (ECDSA)
    this.cryptoKey = cryptoKey;
  }

  get algorithm() {
    return this.type === SIG_TYPE_ED25519 ? "ed25519" : "ecdsa-p256";
  }

  get algorithmLabel() {
    return this.type === SIG_TYPE_ED25519 ? "Ed25519" : "ECDSA P-256";
  }

  /** The DER SubjectPublicKeyInfo (what keys.json's public_key_pem holds). */
  get spki() {
    return this.type === SIG_TYPE_ED25519 ? concat(ED25519_SPKI_PREFIX, this.key) : this.key;
  }

  /** Check signature (without the key ID) over the note text bytes; throw VerificationError. */
  async verify(text, signature) {
    const bad = () => new VerificationError(
      `signature by ${this.name} (key ID ${this.keyIdHex}) does not verify over the note text`, "note.signature-invalid");
    let ok;
    if (this.type === SIG_TYPE_ECDSA) {
      const raw = ecdsaDerToRaw(signature);
      if (raw === null) throw bad();
      ok = await subtle().verify({ name: "ECDSA", hash: "SHA-256" }, this.cryptoKey, raw, text);
    } else {
      if (this.cryptoKey === null) {
        try {
          this.cryptoKey = await subtle().importKey("raw", this.key, { name: "Ed25519" }, false, ["verify"]);
        } catch (exc) {
          if (exc instanceof UnsupportedError) throw exc;
          throw new UnsupportedError(
            `this browser cannot check Ed25519 signatures (needed for ${this.name}): nothing was decided. ` +
            "Use a current Chrome, Edge, Firefox or Safari, or check the receipt with `hsm-signer verify`");
        }
      }
      ok = await subtle().verify({ name: "Ed25519" }, this.cryptoKey, signature, text);
    }
    if (!ok) throw bad();
  }

  toString() {
    return `${this.name}+${this.keyIdHex}+${b64encode(concat(Uint8Array.of(this.type), this.key))}`;
  }
}

/**
 * Strict DER ECDSA-Sig-Value -> the 64-byte r||s WebCrypto wants, or null when it is not
 * DER (OpenSSL, and so the Python side, rejects such signatures as not verifying).
 */
export function ecdsaDerToRaw(der) {
  // P-256 signatures are at most 72 bytes, so every length is in DER's short form.
  if (der.length < 8 || der[0] !== 0x30 || der[1] !== der.length - 2 || der[1] >= 0x80) return null;
  const out = new Uint8Array(64);
  let at = 2;
  for (let half = 0; half < 2; half++) {
    if (at + 2 > der.length || der[at] !== 0x02) return null;
    const len = der[at + 1];
    if (len === 0 || len >= 0x80 || at + 2 + len > der.length) return null;
    let int = der.subarray(at + 2, at + 2 + len);
    if (int[0] & 0x80) return null; // negative
    if (int[0] === 0 && (len === 1 || !(int[1] & 0x80))) return null; // not minimal (or zero)
    if (int[0] === 0) int = int.subarray(1);
    if (int.length > 32) return null;
    out.set(int, half * 32 + 32 - int.length);
    at += 2 + len;
  }
  return at === der.length ? out : null;
}

export async function importEcdsaSpki(der) {
  try {
    const key = await subtle().importKey("spki", der, { name: "ECDSA", namedCurve: "P-256" }, true, ["verify"]);
    return { key, der: new Uint8Array(await subtle().exportKey("spki", key)) };
  } catch (exc) {
    if (exc instanceof UnsupportedError) throw exc;
    return null;
  }
}

export function isEd25519Spki(der) {
  return der.length === 44 && bytesEqual(der.subarray(0, 12), ED25519_SPKI_PREFIX);
}

/** The 4-byte key ID: SHA-256(name || 0x0A || 0x01 || key)[:4] (Ed25519), SHA-256(SPKI)[:4] (ECDSA). */
export async function noteKeyId(name, type, key) {
  const material = type === SIG_TYPE_ED25519 ? concat(utf8(name), Uint8Array.of(0x0a, SIG_TYPE_ED25519), key) : key;
  return (await sha256(material)).subarray(0, KEY_ID_SIZE);
}

/** Parse `<name>+<hex key ID>+<base64(type || key)>` and check the key ID. */
export async function parseVerifierKey(vkey) {
  if (typeof vkey !== "string") throw new FormatError(`verifier key must be a string, got ${typeName(vkey)}`, "note.verifier-key");
  const first = vkey.indexOf("+");
  const second = first < 0 ? -1 : vkey.indexOf("+", first + 1);
  if (second < 0) throw new FormatError("verifier key must have the form <name>+<hex key id>+<base64 key>", "note.verifier-key");
  const name = vkey.slice(0, first);
  const hexId = vkey.slice(first + 1, second);
  checkKeyName(name);
  if (!/^[0-9a-f]{8}$/.test(hexId)) throw new FormatError(`verifier key ID must be 8 lowercase hex digits, got ${quote(hexId)}`, "note.verifier-key");
  const raw = b64decodeStrict(vkey.slice(second + 1), "verifier key material");
  if (raw.length < 2) throw new FormatError("verifier key material is too short", "note.verifier-key");
  const type = raw[0];
  let key = raw.subarray(1);
  let cryptoKey = null;
  if (type === SIG_TYPE_ED25519) {
    if (key.length !== 32) throw new FormatError(`an Ed25519 verifier key has 32 key bytes, got ${key.length}`, "note.verifier-key");
  } else if (type === SIG_TYPE_ECDSA) {
    if (isEd25519Spki(key)) throw new FormatError("verifier key has type 0x02 (ECDSA) but holds an Ed25519 key", "note.verifier-key");
    const imported = await importEcdsaSpki(key);
    if (imported === null) throw new FormatError("ECDSA verifier key: public key is not a P-256 DER SubjectPublicKeyInfo", "note.verifier-key");
    if (!bytesEqual(imported.der, key)) throw new FormatError("ECDSA verifier key is not a canonical DER SubjectPublicKeyInfo", "note.verifier-key");
    cryptoKey = imported.key;
  } else {
    throw new FormatError(
      `verifier key has unsupported signature type 0x${type.toString(16).padStart(2, "0")}; supported: 0x01 Ed25519, 0x02 ECDSA`,
      "note.verifier-key");
  }
  key = Uint8Array.from(key);
  const keyId = await noteKeyId(name, type, key);
  if (toHex(keyId) !== hexId) {
    throw new FormatError(`verifier key ID ${hexId} does not match its key (expected ${toHex(keyId)})`, "note.verifier-key");
  }
  return new NoteVerifier({ name, keyId, type, key, cryptoKey });
}

/** Split a signed note into its text and signature lines, checking syntax only. */
export function parseNote(note) {
  if (note instanceof Uint8Array) note = decodeUtf8(note, "note", "note.syntax");
  if (typeof note !== "string") throw new FormatError(`note must be text, got ${typeName(note)}`, "note.syntax");
  checkCharacters(note, "note");
  if (!note.endsWith("\n")) throw new FormatError("note must end with a newline", "note.syntax");
  const split = note.lastIndexOf("\n\n");
  if (split < 0) throw new FormatError("note has no blank line separating the text from the signatures", "note.syntax");
  const text = note.slice(0, split + 1);
  const block = note.slice(split + 2);
  checkNoteText(text);
  const lines = block ? block.slice(0, -1).split("\n") : [];
  if (lines.length === 0) throw new FormatError("note has no signature lines after the blank line", "note.syntax");
  if (lines.length > MAX_SIGNATURES) {
    throw new FormatError(`note has ${lines.length} signature lines; at most ${MAX_SIGNATURES} are accepted`, "note.syntax");
  }
  const signatures = [];
  const linesSeen = new Set();
  lines.forEach((line, i) => {
    const where = `signature line ${i + 1}`;
    if (!line.startsWith(SIGNATURE_PREFIX)) {
      throw new FormatError(`${where} must start with an em dash (U+2014) and a space: ${quote(line.slice(0, 40))}`, "note.syntax");
    }
    const fields = line.slice(SIGNATURE_PREFIX.length).split(" ");
    if (fields.length !== 2) throw new FormatError(`${where} must be '— <key name> <base64 signature>' with single spaces`, "note.syntax");
    const [name, b64] = fields;
    try {
      checkKeyName(name);
    } catch (exc) {
      throw exc.within(where);
    }
    const raw = b64decodeStrict(b64, `${where} (${name}) signature`);
    if (raw.length <= KEY_ID_SIZE) {
      throw new FormatError(
        `${where} (${name}) signature is too short: ${raw.length} bytes, need a 4-byte key ID and a signature`, "note.syntax");
    }
    if (linesSeen.has(line)) return; // an identical line says nothing new
    linesSeen.add(line);
    signatures.push({ name, keyId: raw.slice(0, KEY_ID_SIZE), signature: raw.slice(KEY_ID_SIZE) });
  });
  return { text, signatures };
}

/**
 * Verify a signed note against trusted verifiers; resolve to {text, signedBy: [names]}.
 * Only a signature whose key name and key ID both match a trusted key is checked; every
 * other one is ignored (c2sp.org/signed-note), even under a trusted name. A trusted
 * signature that does not verify, or two different ones by one key, reject the note; so
 * does a note with no verified trusted signature.
 */
export async function openNote(note, verifiers) {
  const { text, signatures } = parseNote(note);
  const message = utf8(text);
  const trusted = new Map(verifiers.map((v) => [`${v.name} ${v.keyIdHex}`, v]));
  const checked = new Set();
  const signedBy = [];
  for (const sig of signatures) {
    const id = `${sig.name} ${toHex(sig.keyId)}`;
    const verifier = trusted.get(id);
    if (!verifier) continue;
    if (checked.has(id)) {
      throw new FormatError(`note carries two different signatures by ${sig.name} with key ID ${toHex(sig.keyId)}`, "note.signature-repeated");
    }
    checked.add(id);
    await verifier.verify(message, sig.signature);
    signedBy.push(sig.name);
  }
  if (signedBy.length === 0) {
    const found = signatures.map((s) => `${s.name} (${toHex(s.keyId)})`).join(", ");
    const wanted = verifiers.map((v) => `${v.name} (${v.keyIdHex})`).sort().join(", ") || "none";
    throw new VerificationError(`note has no signature by a trusted key (trusted: ${wanted}; signed by: ${found})`, "note.no-trusted-signature");
  }
  return { text, signedBy };
}
