// Sealed ballots in the browser: the mirror of hsm_signer/log/sealed.py, byte for byte.
//
// The voter's selections become the RFC 8785 canonical JSON of {contest: [options sorted]},
// right-padded with zero bytes to the election's published `padded_size`, sealed with HPKE
// to the election's published sealing key. HPKE's `info` is the canonical JSON of
// {ballot_id, channel, election, format}, so a sealed ballot cannot be moved to another
// entry. This module never sends, stores or logs the selections.

import { HpkeError, N_ENC, N_TAG, concat, openWithSharedSecret, seal, splitSealed } from "./hpke.js";

export const SEALED_FORMAT = "hsm-signer/sealed-ballot/v1";
export const CHANNELS = ["online", "postal"];
const ENCODER = new TextEncoder();

export class SealedFormatError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "SealedFormatError";
    this.code = code; // stable: "bad-channel", "too-long", "bad-size", "bad-padding", "bad-json", "not-canonical", "bad-length"
  }
}

// RFC 8785 for what sealed ballots hold (objects, arrays, strings): keys sorted by UTF-16
// code units (JavaScript's own sort), strings as JSON.stringify writes them (RFC 8785 §3.2.2.2).
function canonical(value) {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value !== null && typeof value === "object") {
    return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`).join(",")}}`;
  }
  if (typeof value !== "string") throw new SealedFormatError("bad-json", "a sealed ballot holds only strings, lists and objects");
  return JSON.stringify(value);
}

/** HPKE `info` for one ballot: binds format, election, channel and ballot id. */
export function sealingInfo(electionId, channel, ballotId) {
  if (!CHANNELS.includes(channel)) {
    throw new SealedFormatError("bad-channel", `channel must be one of ${CHANNELS.join(", ")}, got ${JSON.stringify(channel)}`);
  }
  return ENCODER.encode(canonical({ ballot_id: ballotId, channel, election: electionId, format: SEALED_FORMAT }));
}

/** Bytes of `enc || ct` for a padded plaintext of `size` bytes. */
export function sealedLength(size) {
  return N_ENC + size + N_TAG;
}

/** Canonical JSON of the selections (option lists sorted), zero-padded to `size` bytes. */
export function encodePlaintext(selections, size) {
  const sorted = Object.fromEntries(Object.entries(selections).map(([contest, options]) => [contest, [...options].sort()]));
  const body = ENCODER.encode(canonical(sorted));
  if (body.length > size) {
    throw new SealedFormatError("too-long", `the selections take ${body.length} bytes, more than the election's sealed size ${size}`);
  }
  return concat(body, new Uint8Array(size - body.length));
}

/** The selections in an opened plaintext, strictly as decode_plaintext reads them. */
export function decodePlaintext(data, size) {
  if (data.length !== size) {
    throw new SealedFormatError("bad-size", `the opened ballot is ${data.length} bytes; every ballot of this election is ${size}`);
  }
  let end = data.length;
  while (end > 0 && data[end - 1] === 0) end--;
  const body = data.slice(0, end);
  if (body.includes(0)) throw new SealedFormatError("bad-padding", "the opened ballot has a zero byte inside its JSON");
  let selections;
  try {
    selections = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body));
  } catch {
    throw new SealedFormatError("bad-json", "the opened ballot is not valid JSON");
  }
  if (selections === null || typeof selections !== "object" || Array.isArray(selections)
      || !Object.values(selections).every((o) => Array.isArray(o) && o.every((x) => typeof x === "string"))) {
    throw new SealedFormatError("bad-json", "the opened ballot is not an object of contests to lists of option ids");
  }
  const again = ENCODER.encode(canonical(selections));
  if (again.length !== body.length || !again.every((b, i) => b === body[i])) {
    throw new SealedFormatError("not-canonical", "the opened ballot is not in canonical JSON form");
  }
  for (const options of Object.values(selections)) {
    if (options.some((o, i) => i > 0 && !(options[i - 1] < o))) {
      throw new SealedFormatError("not-canonical", "the opened ballot's option lists are not sorted or repeat an option");
    }
  }
  return selections;
}

/** A fresh random ballot id: 128 bits as 32 lowercase hex digits (like leaf.new_ballot_id). */
export function newBallotId() {
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Seal validated selections for one ballot: `enc || ct` (Uint8Array). `ephemeral` is for vectors only. */
export function sealBallot(publicKey, electionId, channel, ballotId, selections, paddedSize, { ephemeral = null } = {}) {
  return seal(publicKey, sealingInfo(electionId, channel, ballotId), encodePlaintext(selections, paddedSize), { ephemeral });
}

/** `sealed` if it has the election's exact length and starts with a valid P-256 point. */
export async function checkSealed(sealed, size) {
  if (!(sealed instanceof Uint8Array) || sealed.length !== sealedLength(size)) {
    throw new SealedFormatError("bad-length", `a sealed ballot of this election is ${sealedLength(size)} bytes, got ${sealed.length}`);
  }
  await splitSealed(sealed);
  return sealed;
}

/** Open one sealed ballot with its published KEM shared secret and decode its selections. */
export async function openSealed(sharedSecret, electionId, channel, ballotId, sealed, size) {
  const plaintext = await openWithSharedSecret(sharedSecret, sealingInfo(electionId, channel, ballotId), sealed);
  return decodePlaintext(plaintext, size);
}

export { HpkeError };
