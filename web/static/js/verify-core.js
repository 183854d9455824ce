// verify-core.js — check an hsm-signer receipt in the voter's own browser.
//
// The same checks as hsm_signer.verify (docs/FORMATS.md §4), computed with the browser's
// WebCrypto: the checkpoint's signed-note signature against the published key bundle
// (ECDSA P-256, type 0x02; Ed25519, type 0x01, where the browser has it), the leaf, the
// RFC 9162 inclusion proof and, given a later checkpoint or the signed tally, the RFC 9162
// consistency proof. Parsing is as strict as the Python code and the error messages say
// the same things; tests/test_js_verify.py runs both on the same vector files.
//
// This module does no I/O (no fetch, no DOM) and has no dependencies: the page that uses
// it decides where receipts, keys and proofs come from. Verifiers throw one of the error
// classes below, never return false; verifyReceipt() collects the thrown errors into a
// step-by-step report.

// --- errors -------------------------------------------------------------------------------

/** A signature, proof, receipt or bundle failed to verify. */
export class VerificationError extends Error {
  get kind() { return "verification"; }
}
Object.defineProperty(VerificationError.prototype, "name", { value: "VerificationError" });

/** Input (a note, receipt, proof, bundle) is malformed before any check runs. */
export class FormatError extends VerificationError {
  get kind() { return "format"; }
}
Object.defineProperty(FormatError.prototype, "name", { value: "FormatError" });

/** A well-formed proof leads to a different root than the one expected. */
export class RootMismatchError extends VerificationError {
  get kind() { return "root-mismatch"; }
}
Object.defineProperty(RootMismatchError.prototype, "name", { value: "RootMismatchError" });

/** This browser lacks what a check needs (WebCrypto, or Ed25519 in it): nothing was decided. */
export class UnsupportedError extends VerificationError {
  get kind() { return "unsupported"; }
}
Object.defineProperty(UnsupportedError.prototype, "name", { value: "UnsupportedError" });

// --- bytes, text, base64 ---------------------------------------------------------------------

const encoder = new TextEncoder();

export function utf8(text) {
  return encoder.encode(text);
}

/** Decode UTF-8 strictly; report the offset of the first bad byte like Python does. */
export function decodeUtf8(bytes, what) {
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw new FormatError(`${what} is not valid UTF-8 (byte ${firstInvalidUtf8Byte(bytes)})`);
  }
}

function firstInvalidUtf8Byte(b) {
  for (let i = 0; i < b.length;) {
    const c = b[i];
    let n, min;
    if (c < 0x80) { i += 1; continue; }
    if (c >= 0xc2 && c <= 0xdf) { n = 1; min = 0x80; }
    else if (c >= 0xe0 && c <= 0xef) { n = 2; min = 0x800; }
    else if (c >= 0xf0 && c <= 0xf4) { n = 3; min = 0x10000; }
    else return i;
    let cp = c & (0x3f >> n);
    for (let k = 1; k <= n; k++) {
      if (i + k >= b.length || (b[i + k] & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (b[i + k] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += n + 1;
  }
  return b.length;
}

export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

export function bytesEqual(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

export function toHex(bytes) {
  return Array.from(bytes, (x) => x.toString(16).padStart(2, "0")).join("");
}

export function fromHex(hex) {
  if (typeof hex !== "string" || !/^(?:[0-9a-fA-F]{2})*$/.test(hex)) throw new FormatError(`not hex: ${hex}`);
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function b64encode(bytes) {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Standard padded base64 (RFC 4648 §4) that must re-encode to the same string. */
export function b64decodeStrict(text, what) {
  if (typeof text !== "string" || !BASE64.test(text)) throw new FormatError(`${what} is not valid base64`);
  const binary = atob(text);
  const raw = Uint8Array.from(binary, (ch) => ch.charCodeAt(0));
  if (b64encode(raw) !== text) throw new FormatError(`${what} is not canonical padded base64`);
  return raw;
}

function hasLoneSurrogate(s) {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) { i++; continue; }
      return true;
    }
    if (c >= 0xdc00 && c <= 0xdfff) return true;
  }
  return false;
}

function firstLoneSurrogate(s) {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) { i++; continue; }
      return c;
    }
    if (c >= 0xdc00 && c <= 0xdfff) return c;
  }
  return -1;
}

function u4(code) {
  return code.toString(16).toUpperCase().padStart(4, "0");
}

// Characters Python's str.isprintable() refuses (other than the space), which repr() escapes.
const NOT_PRINTABLE = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{Zs}]/u;

function pyStrRepr(s) {
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = "";
  for (const ch of s) {
    const c = ch.codePointAt(0);
    if (ch === quote || ch === "\\") out += "\\" + ch;
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (ch !== " " && NOT_PRINTABLE.test(ch)) {
      out += c < 0x100 ? `\\x${c.toString(16).padStart(2, "0")}`
        : c < 0x10000 ? `\\u${c.toString(16).padStart(4, "0")}` : `\\U${c.toString(16).padStart(8, "0")}`;
    } else out += ch;
  }
  return quote + out + quote;
}

function pyRepr(value) {
  // Python's repr(), for messages that quote a value the same way the Python code does.
  if (typeof value === "string") return pyStrRepr(value);
  if (value === null || value === undefined) return "None";
  if (value === true) return "True";
  if (value === false) return "False";
  return String(value);
}

function typeName(value) {
  if (value === null) return "NoneType";
  if (Array.isArray(value)) return "list";
  if (typeof value === "string") return "str";
  if (typeof value === "boolean") return "bool";
  if (typeof value === "number" || typeof value === "bigint") return "int";
  if (typeof value === "object") return "dict";
  return typeof value;
}

// --- SHA-256 and RFC 9162 hashing -----------------------------------------------------------

function subtle() {
  if (!globalThis.crypto || !globalThis.crypto.subtle) {
    throw new UnsupportedError(
      "this browser offers no WebCrypto here: open the page over HTTPS (or from localhost) in a current browser");
  }
  return globalThis.crypto.subtle;
}

export async function sha256(bytes) {
  return new Uint8Array(await subtle().digest("SHA-256", bytes));
}

export const HASH_SIZE = 32;
export const EMPTY_ROOT_HEX = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/** MTH({d}) = SHA-256(0x00 || d). */
export async function leafHash(leaf) {
  return sha256(concat(Uint8Array.of(0), leaf));
}

/** SHA-256(0x01 || left || right). */
export async function nodeHash(left, right) {
  return sha256(concat(Uint8Array.of(1), left, right));
}

// --- proofs (RFC 9162 §2.1.3.2, §2.1.4.2) ---------------------------------------------------
// Sizes and indexes are BigInt inside, so trees beyond 2**32 leaves work (JS bit operators
// on numbers are 32-bit); callers may pass numbers or BigInts.

function bitLength(n) {
  return n === 0n ? 0 : n.toString(2).length;
}

function popCount(n) {
  let count = 0;
  for (const ch of n.toString(2)) if (ch === "1") count++;
  return count;
}

function splitPoint(n) {
  return 1n << BigInt(bitLength(n - 1n) - 1);
}

function checkSize(value, what) {
  if (typeof value === "bigint" && value >= 0n) return value;
  if (typeof value === "number" && Number.isSafeInteger(value) && value >= 0) return BigInt(value);
  throw new FormatError(`${what} must be a non-negative integer, got ${pyRepr(value)}`);
}

function checkHash(value, what) {
  if (!(value instanceof Uint8Array) || value.length !== HASH_SIZE) {
    const got = value instanceof Uint8Array ? `${value.length} bytes` : typeName(value);
    throw new FormatError(`${what} must be a ${HASH_SIZE}-byte SHA-256 hash, got ${got}`);
  }
}

function hashes(n) {
  return n === 1 ? `${n} hash` : `${n} hashes`;
}

/** Number of hashes in PATH(index, D[size]). Requires 0 <= index < size. */
export function inclusionProofSize(index, size) {
  index = BigInt(index);
  size = BigInt(size);
  if (index < 0n || index >= size) throw new FormatError(`no inclusion proof for index ${index} in a tree of size ${size}`);
  const inner = bitLength(index ^ (size - 1n));
  return inner + popCount(index >> BigInt(inner));
}

/** Number of hashes in PROOF(m, D[n]). Requires 0 <= m <= n. */
export function consistencyProofSize(m, n) {
  m = BigInt(m);
  n = BigInt(n);
  if (m < 0n || m > n) throw new FormatError(`no consistency proof from size ${m} to size ${n}`);
  if (m === 0n || m === n) return 0;
  let count = 0;
  let complete = true;
  while (m !== n) {
    const k = splitPoint(n);
    count++;
    if (m <= k) n = k;
    else { m -= k; n -= k; complete = false; }
  }
  return count + (complete ? 0 : 1);
}

/**
 * Check that leafHash is at index in the tree of size leaves with root. Resolves on success.
 * Requires 0 <= index < size and a proof of the right length, else FormatError;
 * RootMismatchError if the proof leads to another root. RFC 9162 §2.1.3.2.
 */
export async function verifyInclusion(leafHashValue, index, size, proof, root) {
  const fnStart = checkSize(index, "leaf index");
  const snStart = checkSize(size, "tree size");
  if (fnStart >= snStart) throw new FormatError(`leaf index ${fnStart} is outside a tree of size ${snStart}`);
  checkHash(leafHashValue, "leaf hash");
  checkHash(root, "root hash");
  const want = inclusionProofSize(fnStart, snStart);
  if (proof.length !== want) {
    throw new FormatError(
      `an inclusion proof for leaf ${fnStart} in a tree of size ${snStart} has ${hashes(want)}, got ${proof.length}`);
  }
  proof.forEach((p, i) => checkHash(p, `inclusion proof hash [${i}]`));

  let fn = fnStart;
  let sn = snStart - 1n;
  let r = leafHashValue;
  for (const p of proof) {
    if (sn === 0n) throw new FormatError("inclusion proof is longer than the path to the root");
    if ((fn & 1n) === 1n || fn === sn) {
      r = await nodeHash(p, r);
      if ((fn & 1n) === 0n) {
        while (fn !== 0n && (fn & 1n) === 0n) { fn >>= 1n; sn >>= 1n; }
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw new FormatError("inclusion proof is shorter than the path to the root");
  if (!bytesEqual(r, root)) {
    throw new RootMismatchError(
      `inclusion proof for leaf ${fnStart} leads to root ${toHex(r)}, not the expected ${toHex(root)}`);
  }
}

/**
 * Check that the tree of size2 leaves with root2 extends the one of size1 with root1.
 * Requires 0 <= size1 <= size2 and a proof of the right length, else FormatError;
 * RootMismatchError if a root does not match. RFC 9162 §2.1.4.2.
 */
export async function verifyConsistency(size1, size2, proof, root1, root2) {
  const m = checkSize(size1, "first tree size");
  const n = checkSize(size2, "second tree size");
  if (m > n) throw new FormatError(`tree size ${n} is smaller than earlier size ${m}: a log never shrinks`);
  checkHash(root1, "first root hash");
  checkHash(root2, "second root hash");
  const want = consistencyProofSize(m, n);
  if (proof.length !== want) {
    throw new FormatError(`a consistency proof from size ${m} to size ${n} has ${hashes(want)}, got ${proof.length}`);
  }
  proof.forEach((p, i) => checkHash(p, `consistency proof hash [${i}]`));

  if (m === 0n) {
    if (toHex(root1) !== EMPTY_ROOT_HEX) {
      throw new RootMismatchError(`the root of an empty tree is ${EMPTY_ROOT_HEX}, not ${toHex(root1)}`);
    }
    return;
  }
  if (m === n) {
    if (!bytesEqual(root1, root2)) {
      throw new RootMismatchError(`two trees of size ${m} have different roots ${toHex(root1)} and ${toHex(root2)}`);
    }
    return;
  }
  const path = [...proof];
  if ((m & (m - 1n)) === 0n) path.unshift(root1); // step 2: size1 is a power of two
  let fn = m - 1n;
  let sn = n - 1n;
  while ((fn & 1n) === 1n) { fn >>= 1n; sn >>= 1n; } // step 4
  let fr = path[0]; // step 5
  let sr = path[0];
  for (const c of path.slice(1)) { // step 6
    if (sn === 0n) throw new FormatError("consistency proof is longer than the path to the root");
    if ((fn & 1n) === 1n || fn === sn) {
      fr = await nodeHash(c, fr);
      sr = await nodeHash(c, sr);
      if ((fn & 1n) === 0n) {
        while (fn !== 0n && (fn & 1n) === 0n) { fn >>= 1n; sn >>= 1n; }
      }
    } else {
      sr = await nodeHash(sr, c);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw new FormatError("consistency proof is shorter than the path to the root");
  if (!bytesEqual(fr, root1)) {
    throw new RootMismatchError(`consistency proof leads to first root ${toHex(fr)}, not the expected ${toHex(root1)}`);
  }
  if (!bytesEqual(sr, root2)) {
    throw new RootMismatchError(`consistency proof leads to second root ${toHex(sr)}, not the expected ${toHex(root2)}`);
  }
}

// --- strict JSON and RFC 8785 canonical form --------------------------------------------------

/**
 * Parse JSON like hsm_signer.canonical.loads_strict: no duplicate keys, no numbers with a
 * fraction or exponent, no NaN/Infinity. Integers beyond 2**53 - 1 come back as BigInt.
 * Objects have no prototype, so a key such as "__proto__" is just a key.
 */
export function parseJsonStrict(input) {
  let text = input;
  if (input instanceof Uint8Array) {
    if (input[0] === 0xef && input[1] === 0xbb && input[2] === 0xbf) throw new FormatError("JSON starts with a byte-order mark");
    text = decodeUtf8(input, "JSON");
  }
  if (typeof text !== "string") throw new FormatError(`JSON must be text, got ${typeName(text)}`);
  if (text.startsWith("\ufeff")) throw new FormatError("not valid JSON: Unexpected UTF-8 BOM (decode using utf-8-sig) at line 1 column 1");
  let at = 0;
  const fail = (msg) => {
    const before = text.slice(0, at);
    const line = before.split("\n").length;
    const column = at - before.lastIndexOf("\n");
    return new FormatError(`not valid JSON: ${msg} at line ${line} column ${column}`);
  };
  const ws = () => { while (at < text.length && " \t\n\r".includes(text[at])) at++; };

  function string() {
    at++; // opening quote
    let out = "";
    for (;;) {
      if (at >= text.length) throw fail("Unterminated string starting");
      const ch = text[at];
      if (ch === '"') { at++; return out; }
      if (ch.charCodeAt(0) < 0x20) throw fail("Invalid control character");
      if (ch !== "\\") { out += ch; at++; continue; }
      const esc = text[at + 1];
      const simple = { '"': '"', "\\": "\\", "/": "/", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t" }[esc];
      if (simple !== undefined) { out += simple; at += 2; continue; }
      if (esc === "u" && /^[0-9a-fA-F]{4}$/.test(text.slice(at + 2, at + 6))) {
        out += String.fromCharCode(parseInt(text.slice(at + 2, at + 6), 16));
        at += 6;
        continue;
      }
      throw fail("Invalid \\escape");
    }
  }

  function value() {
    ws();
    const ch = text[at];
    if (ch === "{") {
      at++;
      const obj = Object.create(null);
      ws();
      if (text[at] === "}") { at++; return obj; }
      for (;;) {
        ws();
        if (text[at] !== '"') throw fail("Expecting property name enclosed in double quotes");
        const key = string();
        ws();
        if (text[at] !== ":") throw fail("Expecting ':' delimiter");
        at++;
        const item = value();
        if (Object.prototype.hasOwnProperty.call(obj, key)) {
          throw new FormatError(`duplicate key ${pyRepr(key)} in JSON object`);
        }
        obj[key] = item;
        ws();
        if (text[at] === ",") { at++; continue; }
        if (text[at] === "}") { at++; return obj; }
        throw fail("Expecting ',' delimiter");
      }
    }
    if (ch === "[") {
      at++;
      const arr = [];
      ws();
      if (text[at] === "]") { at++; return arr; }
      for (;;) {
        arr.push(value());
        ws();
        if (text[at] === ",") { at++; continue; }
        if (text[at] === "]") { at++; return arr; }
        throw fail("Expecting ',' delimiter");
      }
    }
    if (ch === '"') return string();
    for (const [word, result] of [["true", true], ["false", false], ["null", null]]) {
      if (text.startsWith(word, at)) { at += word.length; return result; }
    }
    for (const word of ["NaN", "Infinity", "-Infinity"]) {
      if (text.startsWith(word, at)) throw new FormatError(`${word} is not valid JSON`);
    }
    const number = /^-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?/.exec(text.slice(at));
    if (number) {
      at += number[0].length;
      if (number[1] || number[2]) {
        throw new FormatError(`number ${number[0]} has a fraction or exponent; only integers are allowed`);
      }
      const big = BigInt(number[0]);
      return big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
    }
    throw fail("Expecting value");
  }

  const result = value();
  ws();
  if (at !== text.length) throw fail("Extra data");
  return result;
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

function isPlainObject(v) {
  return v !== null && typeof v === "object" && !Array.isArray(v) && !(v instanceof Uint8Array);
}

/** RFC 8785 canonical JSON text of a value from parseJsonStrict (integers only, as in Python). */
export function canonicalize(value, path = "$") {
  if (value === null) return "null";
  if (value === true) return "true";
  if (value === false) return "false";
  if (typeof value === "number" || typeof value === "bigint") {
    if (typeof value === "number" && !Number.isInteger(value)) {
      throw new FormatError(`${path}: floating-point numbers are not allowed in canonical JSON here, got ${value}`);
    }
    const big = BigInt(value);
    if (big > MAX_SAFE || big < -MAX_SAFE) {
      throw new FormatError(`${path}: integer ${big} is outside the exact JSON range ±(2**53 - 1)`);
    }
    return big.toString();
  }
  if (typeof value === "string") {
    const lone = firstLoneSurrogate(value);
    if (lone >= 0) throw new FormatError(`${path}: string contains a lone surrogate U+${u4(lone)}, which is not valid Unicode`);
    return JSON.stringify(value); // ECMAScript's JSON string form is the RFC 8785 one
  }
  if (Array.isArray(value)) return `[${value.map((v, i) => canonicalize(v, `${path}[${i}]`)).join(",")}]`;
  if (isPlainObject(value)) {
    // Default string order compares UTF-16 code units, as RFC 8785 §3.2.3 requires.
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${canonicalize(k, `${path} key`)}:${canonicalize(value[k], `${path}.${k}`)}`).join(",")}}`;
  }
  throw new FormatError(`${path}: ${typeof value} cannot be written as canonical JSON`);
}

// --- signed notes (c2sp.org/signed-note) -------------------------------------------------------

export const SIG_TYPE_ED25519 = 0x01;
export const SIG_TYPE_ECDSA = 0x02;
const EM_DASH = "\u2014";
const SIGNATURE_PREFIX = EM_DASH + " ";
const MAX_SIGNATURES = 100;
const KEY_ID_SIZE = 4;
const ED25519_SPKI_PREFIX = fromHex("302a300506032b6570032100");

// Python's str.isspace(): the names a key name must not contain.
const PY_SPACE = new Set([0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680,
  0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a,
  0x2028, 0x2029, 0x202f, 0x205f, 0x3000]);

/** Key names are non-empty and contain no space, no '+' and no control character. */
export function checkKeyName(name) {
  if (typeof name !== "string" || !name) {
    throw new FormatError(`key name must be a non-empty string, got ${pyRepr(name)}`);
  }
  for (const ch of name) {
    const c = ch.codePointAt(0);
    if (PY_SPACE.has(c) || ch === "+" || c < 0x20 || c === 0x7f) {
      throw new FormatError(`key name ${pyRepr(name)} must not contain spaces, '+' or control characters (found ${pyRepr(ch)})`);
    }
  }
  return name;
}

function checkCharacters(s, what) {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 && c !== 0x0a) {
      const line = s.slice(0, i).split("\n").length;
      throw new FormatError(`${what} contains control character U+${u4(c)} on line ${line}; only newline is allowed`);
    }
  }
}

function checkNoteText(text) {
  if (typeof text !== "string") throw new FormatError(`note text must be a string, got ${typeName(text)}`);
  if (!text.endsWith("\n")) throw new FormatError("note text must end with a newline");
  checkCharacters(text, "note text");
  if (hasLoneSurrogate(text)) throw new FormatError("note text is not valid Unicode (lone surrogate)");
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
      `signature by ${this.name} (key ID ${this.keyIdHex}) does not verify over the note text`);
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

async function importEcdsaSpki(der) {
  try {
    const key = await subtle().importKey("spki", der, { name: "ECDSA", namedCurve: "P-256" }, true, ["verify"]);
    return { key, der: new Uint8Array(await subtle().exportKey("spki", key)) };
  } catch (exc) {
    if (exc instanceof UnsupportedError) throw exc;
    return null;
  }
}

function isEd25519Spki(der) {
  return der.length === 44 && bytesEqual(der.subarray(0, 12), ED25519_SPKI_PREFIX);
}

/** The 4-byte key ID: SHA-256(name || 0x0A || 0x01 || key)[:4] (Ed25519), SHA-256(SPKI)[:4] (ECDSA). */
export async function noteKeyId(name, type, key) {
  const material = type === SIG_TYPE_ED25519 ? concat(utf8(name), Uint8Array.of(0x0a, SIG_TYPE_ED25519), key) : key;
  return (await sha256(material)).subarray(0, KEY_ID_SIZE);
}

/** Parse `<name>+<hex key ID>+<base64(type || key)>` and check the key ID. */
export async function parseVerifierKey(vkey) {
  if (typeof vkey !== "string") throw new FormatError(`verifier key must be a string, got ${typeName(vkey)}`);
  const first = vkey.indexOf("+");
  const second = first < 0 ? -1 : vkey.indexOf("+", first + 1);
  if (second < 0) throw new FormatError("verifier key must have the form <name>+<hex key id>+<base64 key>");
  const name = vkey.slice(0, first);
  const hexId = vkey.slice(first + 1, second);
  checkKeyName(name);
  if (!/^[0-9a-f]{8}$/.test(hexId)) throw new FormatError(`verifier key ID must be 8 lowercase hex digits, got ${pyRepr(hexId)}`);
  const raw = b64decodeStrict(vkey.slice(second + 1), "verifier key material");
  if (raw.length < 2) throw new FormatError("verifier key material is too short");
  const type = raw[0];
  let key = raw.subarray(1);
  let cryptoKey = null;
  if (type === SIG_TYPE_ED25519) {
    if (key.length !== 32) throw new FormatError(`an Ed25519 verifier key has 32 key bytes, got ${key.length}`);
  } else if (type === SIG_TYPE_ECDSA) {
    if (isEd25519Spki(key)) throw new FormatError("verifier key has type 0x02 (ECDSA) but holds an Ed25519 key");
    const imported = await importEcdsaSpki(key);
    if (imported === null) throw new FormatError("ECDSA verifier key: public key is not a P-256 DER SubjectPublicKeyInfo");
    if (!bytesEqual(imported.der, key)) throw new FormatError("ECDSA verifier key is not a canonical DER SubjectPublicKeyInfo");
    cryptoKey = imported.key;
  } else {
    throw new FormatError(
      `verifier key has unsupported signature type 0x${type.toString(16).padStart(2, "0")}; supported: 0x01 Ed25519, 0x02 ECDSA`);
  }
  key = Uint8Array.from(key);
  const keyId = await noteKeyId(name, type, key);
  if (toHex(keyId) !== hexId) {
    throw new FormatError(`verifier key ID ${hexId} does not match its key (expected ${toHex(keyId)})`);
  }
  return new NoteVerifier({ name, keyId, type, key, cryptoKey });
}

/** Split a signed note into its text and signature lines, checking syntax only. */
export function parseNote(note) {
  if (note instanceof Uint8Array) note = decodeUtf8(note, "note");
  if (typeof note !== "string") throw new FormatError(`note must be text, got ${typeName(note)}`);
  checkCharacters(note, "note");
  if (!note.endsWith("\n")) throw new FormatError("note must end with a newline");
  const split = note.lastIndexOf("\n\n");
  if (split < 0) throw new FormatError("note has no blank line separating the text from the signatures");
  const text = note.slice(0, split + 1);
  const block = note.slice(split + 2);
  checkNoteText(text);
  const lines = block ? block.slice(0, -1).split("\n") : [];
  if (lines.length === 0) throw new FormatError("note has no signature lines after the blank line");
  if (lines.length > MAX_SIGNATURES) {
    throw new FormatError(`note has ${lines.length} signature lines; at most ${MAX_SIGNATURES} are accepted`);
  }
  const signatures = [];
  const linesSeen = new Set();
  lines.forEach((line, i) => {
    const where = `signature line ${i + 1}`;
    if (!line.startsWith(SIGNATURE_PREFIX)) {
      throw new FormatError(`${where} must start with an em dash (U+2014) and a space: ${pyRepr(line.slice(0, 40))}`);
    }
    const fields = line.slice(SIGNATURE_PREFIX.length).split(" ");
    if (fields.length !== 2) throw new FormatError(`${where} must be '— <key name> <base64 signature>' with single spaces`);
    const [name, b64] = fields;
    try {
      checkKeyName(name);
    } catch (exc) {
      throw new FormatError(`${where}: ${exc.message}`);
    }
    const raw = b64decodeStrict(b64, `${where} (${name}) signature`);
    if (raw.length <= KEY_ID_SIZE) {
      throw new FormatError(
        `${where} (${name}) signature is too short: ${raw.length} bytes, need a 4-byte key ID and a signature`);
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
      throw new FormatError(`note carries two different signatures by ${sig.name} with key ID ${toHex(sig.keyId)}`);
    }
    checked.add(id);
    await verifier.verify(message, sig.signature);
    signedBy.push(sig.name);
  }
  if (signedBy.length === 0) {
    const found = signatures.map((s) => `${s.name} (${toHex(s.keyId)})`).join(", ");
    const wanted = verifiers.map((v) => `${v.name} (${v.keyIdHex})`).sort().join(", ") || "none";
    throw new VerificationError(`note has no signature by a trusted key (trusted: ${wanted}; signed by: ${found})`);
  }
  return { text, signedBy };
}

// --- checkpoints (c2sp.org/tlog-checkpoint) ----------------------------------------------------

const MAX_SIZE = 2n ** 63n - 1n;
export const ORIGIN_PREFIX = "hsm-signer/";

function checkLine(value, what) {
  for (let i = 0; i < value.length; i++) {
    if (value.charCodeAt(i) < 0x20) {
      throw new FormatError(`${what} must not contain U+${u4(value.charCodeAt(i))} (newlines and control characters are not allowed)`);
    }
  }
  const lone = firstLoneSurrogate(value);
  if (lone >= 0) throw new FormatError(`${what} must not contain U+${u4(lone)} (newlines and control characters are not allowed)`);
}

/** Parse checkpoint note text strictly: {origin, size (BigInt), rootHash, extensions}. */
export function parseCheckpoint(text) {
  if (typeof text !== "string") throw new FormatError(`checkpoint text must be a string, got ${typeName(text)}`);
  if (!text.endsWith("\n")) throw new FormatError("checkpoint text must end with a newline");
  const lines = text.slice(0, -1).split("\n");
  if (lines.length < 3) throw new FormatError(`checkpoint text has ${lines.length} line(s); it needs origin, size and root hash`);
  lines.forEach((line, i) => {
    if (!line) throw new FormatError(`checkpoint line ${i + 1} is empty; checkpoint lines must be non-empty`);
  });
  const [origin, size, root] = lines;
  if (!/^(?:0|[1-9][0-9]*)$/.test(size)) {
    throw new FormatError(`checkpoint line 2 (tree size) must be a decimal number without leading zeros, got ${pyRepr(size)}`);
  }
  if (BigInt(size) > MAX_SIZE) throw new FormatError(`checkpoint tree size ${size} is too large`);
  const rootHash = b64decodeStrict(root, "checkpoint line 3 (root hash)");
  if (rootHash.length !== HASH_SIZE) {
    throw new FormatError(`checkpoint line 3 (root hash) must decode to ${HASH_SIZE} bytes, got ${rootHash.length}`);
  }
  checkLine(origin, "checkpoint origin");
  lines.slice(3).forEach((line, i) => checkLine(line, `checkpoint extension line ${i + 1}`));
  return { origin, size: BigInt(size), rootHash, extensions: lines.slice(3) };
}

/** The `tally <contest> <option> <count>` extension lines of a signed tally, parsed. */
export function tallyCounts(extensions) {
  const counts = [];
  for (const line of extensions) {
    const m = /^tally (\S+) (\S+) (0|[1-9][0-9]*)$/.exec(line);
    if (m) counts.push({ contest: m[1], option: m[2], count: Number(m[3]), line });
  }
  return counts;
}

export function originFor(election) {
  return ORIGIN_PREFIX + checkId(election, "election id");
}

// --- the log leaf -----------------------------------------------------------------------------

const ID_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const LEAF_VERSION = "hsm-signer/leaf/v1";
const LEAF_FIELDS = ["version", "election", "type", "ballot_id", "selections"];

function checkId(value, what) {
  if (typeof value !== "string" || !ID_PATTERN.test(value)) {
    throw new FormatError(
      `${what} must match [a-z0-9][a-z0-9._-]{0,63} (lowercase letters, digits, '.', '_', '-'), got ${pyRepr(value)}`);
  }
  return value;
}

function checkFields(obj, fields, what) {
  const missing = fields.filter((f) => !Object.prototype.hasOwnProperty.call(obj, f));
  if (missing.length) throw new FormatError(`${what} is missing field(s): ${missing.join(", ")}`);
  const unknown = Object.keys(obj).filter((k) => !fields.includes(k)).sort();
  if (unknown.length) throw new FormatError(`${what} has unknown field(s): ${unknown.join(", ")}`);
}

/** Parse leaf bytes strictly (fields, ids, sorted options, canonical RFC 8785 form). */
export function parseLeaf(bytes) {
  let obj;
  try {
    obj = parseJsonStrict(bytes);
  } catch (exc) {
    throw new FormatError(`leaf: ${exc.message}`);
  }
  if (!isPlainObject(obj)) throw new FormatError(`leaf must be a JSON object, got ${typeName(obj)}`);
  checkFields(obj, LEAF_FIELDS, "leaf");
  if (obj.version !== LEAF_VERSION) throw new FormatError(`leaf version must be '${LEAF_VERSION}', got ${pyRepr(obj.version)}`);
  for (const name of ["election", "type", "ballot_id"]) {
    if (typeof obj[name] !== "string") throw new FormatError(`leaf field ${name} must be a string, got ${typeName(obj[name])}`);
  }
  if (!isPlainObject(obj.selections)) {
    throw new FormatError(`leaf field selections must be an object, got ${typeName(obj.selections)}`);
  }
  try {
    checkId(obj.election, "election");
    if (obj.type !== "ballot" && obj.type !== "postal") {
      throw new FormatError(`type must be one of ballot, postal, got ${pyRepr(obj.type)}`);
    }
    if (!/^[0-9a-f]{32}$/.test(obj.ballot_id)) {
      throw new FormatError(`ballot_id must be 32 lowercase hex digits (128 bits), got ${pyRepr(obj.ballot_id)}`);
    }
    for (const [contest, options] of Object.entries(obj.selections)) {
      checkId(contest, "selections contest id");
      if (!Array.isArray(options)) {
        throw new FormatError(`selections.${contest} must be a list of option ids, got ${typeName(options)}`);
      }
      options.forEach((option, i) => checkId(option, `selections.${contest}[${i}]`));
      const sorted = [...new Set(options)].sort();
      if (sorted.length !== options.length || sorted.some((o, i) => o !== options[i])) {
        throw new FormatError(`selections.${contest} must be sorted and without duplicates`);
      }
    }
  } catch (exc) {
    throw new FormatError(`leaf: ${exc.message}`);
  }
  if (!bytesEqual(utf8(canonicalize(obj)), bytes)) {
    throw new FormatError("leaf is not in canonical JSON form (RFC 8785: sorted keys, no whitespace, minimal escapes)");
  }
  return { election: obj.election, type: obj.type, ballotId: obj.ballot_id, selections: obj.selections };
}

// --- receipts ---------------------------------------------------------------------------------

export const RECEIPT_VERSION = "hsm-signer/receipt/v1";
const RECEIPT_FIELDS = ["version", "election", "leaf_index", "leaf", "inclusion_proof", "checkpoint"];

/** Parse a receipt (JSON text, its UTF-8 bytes, or an already parsed object) strictly. */
export function parseReceipt(input) {
  let obj = input;
  if (typeof input === "string" || input instanceof Uint8Array) {
    try {
      obj = parseJsonStrict(input);
    } catch (exc) {
      throw new FormatError(`receipt: ${exc.message}`);
    }
  }
  if (!isPlainObject(obj)) throw new FormatError(`receipt must be a JSON object, got ${typeName(obj)}`);
  checkFields(obj, RECEIPT_FIELDS, "receipt");
  if (obj.version !== RECEIPT_VERSION) {
    throw new FormatError(`receipt.version must be '${RECEIPT_VERSION}', got ${pyRepr(obj.version)}`);
  }
  for (const name of ["election", "leaf", "checkpoint"]) {
    if (typeof obj[name] !== "string") throw new FormatError(`receipt.${name} must be a string, got ${typeName(obj[name])}`);
  }
  const index = obj.leaf_index;
  if (!((typeof index === "number" && Number.isInteger(index)) || typeof index === "bigint")) {
    throw new FormatError(`receipt.leaf_index must be an integer, got ${typeName(index)}`);
  }
  if (!Array.isArray(obj.inclusion_proof)) {
    throw new FormatError(`receipt.inclusion_proof must be a list, got ${typeName(obj.inclusion_proof)}`);
  }
  const proof = obj.inclusion_proof.map((item, i) => {
    if (typeof item !== "string") throw new FormatError(`receipt.inclusion_proof[${i}] must be a base64 string, got ${typeName(item)}`);
    const raw = b64decodeStrict(item, `receipt.inclusion_proof[${i}]`);
    if (raw.length !== HASH_SIZE) {
      throw new FormatError(`receipt.inclusion_proof[${i}] must decode to ${HASH_SIZE} bytes, got ${raw.length}`);
    }
    return raw;
  });
  const leaf = b64decodeStrict(obj.leaf, "receipt.leaf");
  try {
    checkId(obj.election, "election");
  } catch (exc) {
    throw new FormatError(`receipt.${exc.message}`);
  }
  const leafIndex = BigInt(index);
  if (leafIndex < 0n || leafIndex > MAX_SIZE) {
    throw new FormatError(`receipt.leaf_index must be a non-negative integer, got ${leafIndex}`);
  }
  if (leaf.length === 0) throw new FormatError("receipt.leaf must be non-empty bytes");
  if (!obj.checkpoint) throw new FormatError("receipt.checkpoint must be the signed checkpoint note text");
  return { election: obj.election, leafIndex, leaf, inclusionProof: proof, checkpoint: obj.checkpoint };
}

// --- the key bundle (keys/<ceremony-id>/keys.json) -----------------------------------------------

const KEYS_VERSION = "hsm-signer/keys/v1";
const BUNDLE_FIELDS = ["version", "ceremony_id", "created", "keys"];
const SIGNING_FIELDS = ["purpose", "algorithm", "label", "id", "public_key_pem", "note_key_name", "note_verifier_key", "fingerprint"];
const MAC_FIELDS = ["purpose", "algorithm", "label", "id"];
const PURPOSES = ["checkpoint", "tally", "code-hmac"];
const ALGORITHMS = ["ecdsa-p256", "ed25519"];
// datetime.fromisoformat() forms with a UTC offset, as the ceremony writes them.
const CREATED = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)$/;

function bundleFail(path, message) {
  return new FormatError(`${path}: ${message}`);
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
    throw bundleFail(path, `is not a PEM public key (${exc.message})`);
  }
  if (isEd25519Spki(der)) return { algorithm: "ed25519", der };
  const imported = await importEcdsaSpki(der);
  if (imported === null) throw bundleFail(path, "public key is neither ECDSA P-256 nor Ed25519");
  return { algorithm: "ecdsa-p256", der: imported.der };
}

async function bundleEntry(obj, path) {
  const fields = isPlainObject(obj) && obj.purpose === "code-hmac" ? MAC_FIELDS : SIGNING_FIELDS;
  bundleFields(obj, fields, path);
  for (const name of fields) {
    if (typeof obj[name] !== "string" || !obj[name]) {
      throw bundleFail(`${path}.${name}`, `must be a non-empty string, got ${pyRepr(obj[name])}`);
    }
  }
  if (!PURPOSES.includes(obj.purpose)) throw bundleFail(`${path}.purpose`, `must be one of ${PURPOSES.join(", ")}, got ${pyRepr(obj.purpose)}`);
  if (!/^(?:[0-9a-f]{2})+$/.test(obj.id)) throw bundleFail(`${path}.id`, `must be lowercase hex (whole bytes), got ${pyRepr(obj.id)}`);
  const entry = { purpose: obj.purpose, algorithm: obj.algorithm, label: obj.label, id: obj.id };
  if (obj.purpose === "code-hmac") {
    if (obj.algorithm !== "hmac-sha256") {
      throw bundleFail(`${path}.algorithm`, `the code-hmac key must be hmac-sha256, got ${pyRepr(obj.algorithm)}`);
    }
    return entry;
  }
  if (!ALGORITHMS.includes(obj.algorithm)) {
    throw bundleFail(`${path}.algorithm`, `must be one of ${ALGORITHMS.join(", ")}, got ${pyRepr(obj.algorithm)}`);
  }
  const { algorithm, der } = await derOfPem(obj.public_key_pem, `${path}.public_key_pem`);
  if (algorithm !== obj.algorithm) {
    throw bundleFail(`${path}.algorithm`, `says ${obj.algorithm} but public_key_pem holds an ${algorithm} key`);
  }
  try {
    checkKeyName(obj.note_key_name);
  } catch (exc) {
    throw bundleFail(`${path}.note_key_name`, exc.message);
  }
  let verifier;
  try {
    verifier = await parseVerifierKey(obj.note_verifier_key);
  } catch (exc) {
    if (exc instanceof UnsupportedError) throw exc;
    throw bundleFail(`${path}.note_verifier_key`, exc.message);
  }
  if (!bytesEqual(verifier.spki, der)) throw bundleFail(`${path}.note_verifier_key`, "holds a different public key than public_key_pem");
  if (verifier.name !== obj.note_key_name) {
    throw bundleFail(`${path}.note_verifier_key`,
      `is for key name ${pyRepr(verifier.name)}, but note_key_name is ${pyRepr(obj.note_key_name)}`);
  }
  if (!/^[0-9a-f]{64}$/.test(obj.fingerprint)) {
    throw bundleFail(`${path}.fingerprint`, "must be 64 lowercase hex digits (SHA-256 of the DER public key)");
  }
  const fingerprint = toHex(await sha256(der));
  if (obj.fingerprint !== fingerprint) {
    throw bundleFail(`${path}.fingerprint`, `does not match public_key_pem (SHA-256 of its DER is ${fingerprint})`);
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
      throw new FormatError(`keys.json: ${exc.message}`);
    }
  }
  bundleFields(obj, BUNDLE_FIELDS, "keys.json");
  if (obj.version !== KEYS_VERSION) throw bundleFail("version", `must be '${KEYS_VERSION}', got ${pyRepr(obj.version)}`);
  for (const name of ["ceremony_id", "created"]) {
    if (typeof obj[name] !== "string") throw bundleFail(name, `must be a string, got ${typeName(obj[name])}`);
  }
  if (!Array.isArray(obj.keys)) throw bundleFail("keys", `must be a list, got ${typeName(obj.keys)}`);
  const keys = [];
  for (let i = 0; i < obj.keys.length; i++) keys.push(await bundleEntry(obj.keys[i], `keys[${i}]`));
  if (!ID_PATTERN.test(obj.ceremony_id)) {
    throw bundleFail("ceremony_id", `must match [a-z0-9][a-z0-9._-]{0,63}, got ${pyRepr(obj.ceremony_id)}`);
  }
  if (!CREATED.test(obj.created)) {
    throw bundleFail("created", `must be an ISO-8601 date and time with a UTC offset, such as 2025-01-31T09:00:00Z, got ${pyRepr(obj.created)}`);
  }
  const seen = new Map();
  keys.forEach((entry, i) => {
    if (seen.has(entry.purpose)) {
      throw bundleFail(`keys[${i}].purpose`, `duplicate purpose ${pyRepr(entry.purpose)} (already keys[${seen.get(entry.purpose)}])`);
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
      if (!found) throw new FormatError(`key bundle ${ceremonyId} has no ${purpose} key`);
      return found;
    },
    verifier(purpose) {
      const entry = this.key(purpose);
      if (!entry.verifier) throw new FormatError(`the ${purpose} key does not sign notes`);
      return entry.verifier;
    },
  };
}

// --- the whole receipt, step by step --------------------------------------------------------------

/** The steps of verifyReceipt, in order, with what each one establishes for the voter. */
export const STEPS = [
  { step: "keys", title: "The election's public keys" },
  { step: "receipt", title: "The receipt" },
  { step: "checkpoint", title: "The signature on the log checkpoint" },
  { step: "leaf", title: "Your ballot" },
  { step: "inclusion", title: "Your ballot is in the log" },
  { step: "later-checkpoint", title: "The latest signed checkpoint" },
  { step: "consistency", title: "The log has only grown since" },
  { step: "tally", title: "Counted in the signed tally" },
];

// What a failure of each step means, before the precise reason.
const FAILURE_MEANING = {
  keys: "The election's key bundle could not be read, so nothing can be checked against it",
  receipt: "This is not a valid receipt",
  checkpoint: "The checkpoint in this receipt is not one the election's checkpoint key signed, or it was altered",
  leaf: "The ballot in this receipt is not a valid ballot of this election",
  inclusion: "This receipt does not prove that the ballot is in the log: the ballot, its position or the proof was altered",
  "later-checkpoint": "The latest checkpoint (or tally) is not signed by this election's keys, or it was altered",
  consistency: "The log has NOT only grown: the current log is not an extension of the log your receipt was signed for (it was rolled back or rewritten)",
  tally: "The signed tally could not be checked",
};

function plain(n) {
  return typeof n === "bigint" && n <= MAX_SAFE ? Number(n) : n;
}

function entries(n) {
  return `${n} ${BigInt(n) === 1n ? "entry" : "entries"}`;
}

function toProof(list) {
  return list.map((p, i) => {
    if (p instanceof Uint8Array) return p;
    if (typeof p !== "string") throw new FormatError(`consistency proof[${i}] must be a base64 string, got ${typeName(p)}`);
    const raw = b64decodeStrict(p, `consistency proof[${i}]`);
    if (raw.length !== HASH_SIZE) throw new FormatError(`consistency proof[${i}] must decode to ${HASH_SIZE} bytes, got ${raw.length}`);
    return raw;
  });
}

/**
 * Check a receipt against a key bundle and, optionally, a later checkpoint or signed tally
 * with the consistency proof from the receipt's tree size to the later one.
 *
 * receipt, keys: JSON text, UTF-8 bytes or parsed objects (text keeps duplicate-key
 * detection). options.laterCheckpoint: the signed note; options.consistencyProof: base64
 * strings or Uint8Arrays (may be omitted when both sizes are equal).
 *
 * Never throws for a bad receipt: resolves to {ok, steps, failure, result}, where steps is
 * [{step, title, ok, message, reason?, kind?}] up to and including the first failure.
 */
export async function verifyReceipt(receipt, keys, options = {}) {
  const { laterCheckpoint = null, consistencyProof = null } = options;
  const steps = [];
  const result = {};
  const titles = Object.fromEntries(STEPS.map((s) => [s.step, s.title]));
  const pass = (step, message, data = {}) => steps.push({ step, title: titles[step], ok: true, message, ...data });

  let current = "keys";
  try {
    const bundle = await parseKeyBundle(keys);
    const checkpointVerifier = bundle.verifier("checkpoint");
    const tallyVerifier = bundle.has("tally") ? bundle.verifier("tally") : null;
    result.ceremonyId = bundle.ceremonyId;
    pass("keys",
      `The key bundle of ceremony ${bundle.ceremonyId} lists the checkpoint key ${checkpointVerifier.name} ` +
      `(${checkpointVerifier.algorithmLabel}, key ID ${checkpointVerifier.keyIdHex})` +
      (tallyVerifier ? ` and the tally key ${tallyVerifier.name} (${tallyVerifier.algorithmLabel}, key ID ${tallyVerifier.keyIdHex}).` : "."));

    current = "receipt";
    const r = parseReceipt(receipt);
    Object.assign(result, { election: r.election, leafIndex: plain(r.leafIndex) });
    pass("receipt", `The receipt is well-formed: a ballot of election ${r.election} at position ${r.leafIndex} of its log.`);

    current = "checkpoint";
    let opened;
    try {
      opened = await openNote(r.checkpoint, [checkpointVerifier]);
    } catch (exc) {
      throw withContext(exc, "receipt checkpoint");
    }
    let checkpoint;
    try {
      checkpoint = parseCheckpoint(opened.text);
    } catch (exc) {
      throw withContext(exc, "receipt checkpoint");
    }
    const origin = originFor(r.election);
    if (checkpoint.origin !== origin) {
      throw new VerificationError(
        `receipt checkpoint is for log '${checkpoint.origin}', but the receipt is for election '${r.election}' (log '${origin}')`);
    }
    Object.assign(result, { treeSize: plain(checkpoint.size), keyName: opened.signedBy[0], rootHash: toHex(checkpoint.rootHash) });
    pass("checkpoint",
      `The log checkpoint in your receipt is signed by the election's checkpoint key (${opened.signedBy[0]}): ` +
      `the log of election ${r.election} then had ${entries(checkpoint.size)}.`);

    current = "leaf";
    let leaf;
    try {
      leaf = parseLeaf(r.leaf);
    } catch (exc) {
      throw withContext(exc, "receipt leaf");
    }
    if (leaf.election !== r.election) {
      throw new VerificationError(`receipt leaf is for election '${leaf.election}', but the receipt is for '${r.election}'`);
    }
    Object.assign(result, { ballotId: leaf.ballotId, ballotType: leaf.type, selections: leaf.selections });
    pass("leaf", `The receipt holds ballot ${leaf.ballotId} (${leaf.type === "postal" ? "a postal ballot" : "cast online"}) ` +
      `of election ${r.election}.`, { selections: leaf.selections });

    current = "inclusion";
    if (r.leafIndex >= checkpoint.size) {
      throw new VerificationError(
        `receipt leaf index ${r.leafIndex} is not covered by its checkpoint (tree size ${checkpoint.size})`);
    }
    try {
      await verifyInclusion(await leafHash(r.leaf), r.leafIndex, checkpoint.size, r.inclusionProof, checkpoint.rootHash);
    } catch (exc) {
      throw withContext(exc, "receipt inclusion proof does not match the signed checkpoint");
    }
    pass("inclusion", `Your ballot is in the log at position ${r.leafIndex} (of ${entries(checkpoint.size)}, counting from 0).`);

    if (laterCheckpoint === null || laterCheckpoint === undefined) {
      if (consistencyProof !== null && consistencyProof !== undefined) {
        current = "consistency";
        throw new FormatError("a consistency proof was given without the later checkpoint it leads to");
      }
      return { ok: true, steps, failure: null, result };
    }

    current = "later-checkpoint";
    const verifiers = tallyVerifier ? [checkpointVerifier, tallyVerifier] : [checkpointVerifier];
    let later;
    let laterOpened;
    try {
      laterOpened = await openNote(laterCheckpoint, verifiers);
      later = parseCheckpoint(laterOpened.text);
    } catch (exc) {
      throw withContext(exc, "later checkpoint");
    }
    if (later.origin !== origin) throw new VerificationError(`later checkpoint is for log '${later.origin}', not '${origin}'`);
    const isTally = tallyVerifier !== null && laterOpened.signedBy.includes(tallyVerifier.name);
    const laterKey = laterOpened.signedBy[0];
    Object.assign(result, { laterTreeSize: plain(later.size), laterKeyName: laterKey, isTally });
    pass("later-checkpoint", isTally
      ? `The signed tally is signed by the election's tally key (${tallyVerifier.name}); it covers a log of ${entries(later.size)}.`
      : `The latest checkpoint is signed by the election's checkpoint key (${laterKey}): the log now has ${entries(later.size)}.`);

    current = "consistency";
    if (later.size < checkpoint.size) {
      throw new VerificationError(
        `later checkpoint has tree size ${later.size}, smaller than the receipt's ${checkpoint.size}: the log shrank`);
    }
    let proof = consistencyProof;
    if (proof === null || proof === undefined) {
      if (later.size !== checkpoint.size) {
        throw new FormatError(
          `a consistency proof from size ${checkpoint.size} to size ${later.size} is needed to check the later checkpoint`);
      }
      proof = [];
    }
    try {
      await verifyConsistency(checkpoint.size, later.size, toProof(proof), checkpoint.rootHash, later.rootHash);
    } catch (exc) {
      throw withContext(exc, "later checkpoint is not consistent with the receipt's checkpoint");
    }
    pass("consistency", later.size === checkpoint.size
      ? `The log has not changed since your receipt: it still has the same ${entries(later.size)}.`
      : `The log has only grown since your receipt: the log of ${entries(later.size)} extends the ${entries(checkpoint.size)} ` +
        "your receipt was signed for, so nothing in it was removed or changed.");

    if (isTally) {
      current = "tally";
      const counts = tallyCounts(later.extensions);
      result.tally = counts.map((c) => c.line);
      pass("tally", `It is counted in the signed tally: the tally covers all ${entries(later.size)} of the final log, ` +
        "yours included.", { counts });
    }
    return { ok: true, steps, failure: null, result };
  } catch (exc) {
    if (!(exc instanceof VerificationError)) throw exc; // a bug, not a bad receipt
    const failure = {
      step: current,
      title: titles[current],
      ok: false,
      kind: exc.kind,
      reason: exc.message,
      message: exc instanceof UnsupportedError ? capitalise(exc.message) : `${FAILURE_MEANING[current]}. Reason: ${exc.message}.`,
    };
    steps.push(failure);
    return { ok: false, steps, failure, result };
  }
}

function capitalise(s) {
  return s.charAt(0).toUpperCase() + s.slice(1) + (s.endsWith(".") ? "" : ".");
}

function withContext(exc, context) {
  if (!(exc instanceof VerificationError) || exc instanceof UnsupportedError) return exc;
  const Kind = exc.constructor;
  return new Kind(`${context}: ${exc.message}`);
}
