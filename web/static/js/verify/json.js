// json.js — strict JSON (as hsm_signer.canonical.loads_strict reads it) and RFC 8785 canonical form.

import { codePoint, decodeUtf8, firstLoneSurrogate, quote, typeName } from "./bytes.js";
import { FormatError } from "./errors.js";

export const MAX_INTEGER_DIGITS = 20;
export const MAX_DEPTH = 32;

/**
 * Parse JSON like hsm_signer.canonical.loads_strict: no duplicate keys, no numbers with a
 * fraction or exponent, no NaN/Infinity. Integers beyond 2**53 - 1 come back as BigInt.
 * Objects have no prototype, so a key such as "__proto__" is just a key. Integers of more
 * than MAX_INTEGER_DIGITS digits and nesting deeper than MAX_DEPTH are refused, as in Python.
 */
export function parseJsonStrict(input) {
  let text = input;
  if (input instanceof Uint8Array) {
    if (input[0] === 0xef && input[1] === 0xbb && input[2] === 0xbf) throw new FormatError("JSON starts with a byte-order mark", "json.syntax");
    text = decodeUtf8(input, "JSON", "json.syntax");
  }
  if (typeof text !== "string") throw new FormatError(`JSON must be text, got ${typeName(text)}`, "json.syntax");
  if (text.startsWith("\ufeff")) throw new FormatError("JSON starts with a byte-order mark", "json.syntax");
  let at = 0;
  let depth = 0;
  const fail = (msg) => {
    const before = text.slice(0, at);
    const line = before.split("\n").length;
    const column = at - before.lastIndexOf("\n");
    return new FormatError(`not valid JSON: ${msg} at line ${line} column ${column}`, "json.syntax");
  };
  const ws = () => { while (at < text.length && " \t\n\r".includes(text[at])) at++; };

  function string() {
    at++; // opening quote
    let out = "";
    for (;;) {
      if (at >= text.length) throw fail("unterminated string");
      const ch = text[at];
      if (ch === '"') { at++; return out; }
      if (ch.charCodeAt(0) < 0x20) throw fail("control character in a string");
      if (ch !== "\\") { out += ch; at++; continue; }
      const esc = text[at + 1];
      const simple = { '"': '"', "\\": "\\", "/": "/", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t" }[esc];
      if (simple !== undefined) { out += simple; at += 2; continue; }
      if (esc === "u" && /^[0-9a-fA-F]{4}$/.test(text.slice(at + 2, at + 6))) {
        out += String.fromCharCode(parseInt(text.slice(at + 2, at + 6), 16));
        at += 6;
        continue;
      }
      throw fail("invalid escape");
    }
  }

  function value() {
    ws();
    const ch = text[at];
    if ((ch === "{" || ch === "[") && ++depth > MAX_DEPTH) {
      throw new FormatError(`JSON nests arrays and objects more than ${MAX_DEPTH} deep`, "json.depth");
    }
    if (ch === "{") {
      at++;
      const obj = Object.create(null);
      ws();
      if (text[at] === "}") { at++; depth--; return obj; }
      for (;;) {
        ws();
        if (text[at] !== '"') throw fail("expected a property name in double quotes");
        const key = string();
        ws();
        if (text[at] !== ":") throw fail("expected ':'");
        at++;
        const item = value();
        if (Object.prototype.hasOwnProperty.call(obj, key)) {
          throw new FormatError(`duplicate key ${quote(key)} in JSON object`, "json.duplicate-key");
        }
        obj[key] = item;
        ws();
        if (text[at] === ",") { at++; continue; }
        if (text[at] === "}") { at++; depth--; return obj; }
        throw fail("expected ',' or '}'");
      }
    }
    if (ch === "[") {
      at++;
      const arr = [];
      ws();
      if (text[at] === "]") { at++; depth--; return arr; }
      for (;;) {
        arr.push(value());
        ws();
        if (text[at] === ",") { at++; continue; }
        if (text[at] === "]") { at++; depth--; return arr; }
        throw fail("expected ',' or ']'");
      }
    }
    if (ch === '"') return string();
    for (const [word, result] of [["true", true], ["false", false], ["null", null]]) {
      if (text.startsWith(word, at)) { at += word.length; return result; }
    }
    for (const word of ["NaN", "Infinity", "-Infinity"]) {
      if (text.startsWith(word, at)) throw new FormatError(`${word} is not valid JSON`, "json.syntax");
    }
    const number = /^-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?/.exec(text.slice(at));
    if (number) {
      at += number[0].length;
      if (number[1] || number[2]) {
        throw new FormatError(`number ${number[0]} has a fraction or exponent; only integers are allowed`, "json.number");
      }
      const digits = number[0].replace("-", "").length;
      if (digits > MAX_INTEGER_DIGITS) {
        throw new FormatError(`integer of ${digits} digits; at most ${MAX_INTEGER_DIGITS} are accepted`, "json.number");
      }
      const big = BigInt(number[0]);
      return big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
    }
    throw fail("expected a value");
  }

  const result = value();
  ws();
  if (at !== text.length) throw fail("text after the value");
  return result;
}

export const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

export function isPlainObject(v) {
  return v !== null && typeof v === "object" && !Array.isArray(v) && !(v instanceof Uint8Array);
}

/** RFC 8785 canonical JSON text of a value from parseJsonStrict (integers only, as in Python). */
export function canonicalize(value, path = "$") {
  if (value === null) return "null";
  if (value === true) return "true";
  if (value === false) return "false";
  if (typeof value === "number" || typeof value === "bigint") {
    if (typeof value === "number" && !Number.isInteger(value)) {
      throw new FormatError(`${path}: floating-point numbers are not allowed in canonical JSON here, got ${value}`, "json.not-canonical");
    }
    const big = BigInt(value);
    if (big > MAX_SAFE || big < -MAX_SAFE) {
      throw new FormatError(`${path}: integer ${big} is outside the exact JSON range ±(2**53 - 1)`, "json.not-canonical");
    }
    return big.toString();
  }
  if (typeof value === "string") {
    const lone = firstLoneSurrogate(value);
    if (lone >= 0) throw new FormatError(`${path}: string contains a lone surrogate ${codePoint(lone)}, which is not valid Unicode`, "json.not-canonical");
    return JSON.stringify(value); // ECMAScript's JSON string form is the RFC 8785 one
  }
  if (Array.isArray(value)) return `[${value.map((v, i) => canonicalize(v, `${path}[${i}]`)).join(",")}]`;
  if (isPlainObject(value)) {
    // Default string order compares UTF-16 code units, as RFC 8785 §3.2.3 requires.
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${canonicalize(k, `${path} key`)}:${canonicalize(value[k], `${path}.${k}`)}`).join(",")}}`;
  }
  throw new FormatError(`${path}: ${typeof value} cannot be written as canonical JSON`, "json.not-canonical");
}

/** obj if it is a JSON object with exactly these fields, else FormatError naming what (canonical.exact_object). */
export function exactObject(obj, fields, what) {
  if (!isPlainObject(obj)) throw new FormatError(`${what} must be a JSON object, got ${typeName(obj)}`, "json.fields");
  const missing = fields.filter((f) => !Object.prototype.hasOwnProperty.call(obj, f));
  if (missing.length) throw new FormatError(`${what} is missing field(s): ${missing.join(", ")}`, "json.fields");
  const unknown = Object.keys(obj).filter((k) => !fields.includes(k)).sort();
  if (unknown.length) throw new FormatError(`${what} has unknown field(s): ${unknown.join(", ")}`, "json.fields");
  return obj;
}
