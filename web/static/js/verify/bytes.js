// bytes.js — bytes, UTF-8, hex and strict base64, and how values are named in messages.

import { FormatError } from "./errors.js";

const encoder = new TextEncoder();

export function utf8(text) {
  return encoder.encode(text);
}

/** Decode UTF-8 strictly (no replacement characters, a byte-order mark is kept). */
export function decodeUtf8(bytes, what, code) {
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw new FormatError(`${what} is not valid UTF-8`, code);
  }
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
  if (typeof text !== "string" || !BASE64.test(text)) throw new FormatError(`${what} is not valid base64`, "base64");
  const raw = Uint8Array.from(atob(text), (ch) => ch.charCodeAt(0));
  if (b64encode(raw) !== text) throw new FormatError(`${what} is not canonical padded base64`, "base64");
  return raw;
}

/** The first UTF-16 code unit of s that is half of no surrogate pair, or -1. */
export function firstLoneSurrogate(s) {
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

/** U+XXXX notation of a code point. */
export function codePoint(code) {
  return `U+${code.toString(16).toUpperCase().padStart(4, "0")}`;
}

/** A value quoted for an error message (strings as JSON strings, so nothing invisible hides). */
export function quote(value) {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "bigint") return value.toString();
  if (value === undefined) return "nothing";
  try {
    return JSON.stringify(value) ?? typeName(value);
  } catch {
    return typeName(value); // e.g. an object holding a BigInt, which JSON.stringify refuses
  }
}

/** What kind of JSON value this is, for "must be X, got Y" messages. */
export function typeName(value) {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (value instanceof Uint8Array) return "bytes";
  if (typeof value === "bigint") return "number";
  return typeof value;
}
