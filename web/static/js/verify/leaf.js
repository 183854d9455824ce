// leaf.js — the log leaf (hsm_signer.log.leaf): ids, leaf v2 (a sealed ballot) and leaf v1
// (clear selections, earlier elections), parsed strictly.

import { bytesEqual, quote, typeName, utf8 } from "./bytes.js";
import { FormatError } from "./errors.js";
import { canonicalize, exactObject, isPlainObject, parseJsonStrict } from "./json.js";

const fail = (message) => new FormatError(message, "leaf.syntax");

export const ID_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const LEAF_VERSION = "hsm-signer/leaf/v1";
const LEAF_FIELDS = ["version", "election", "type", "ballot_id", "selections"];
export const SEALED_LEAF_VERSION = "hsm-signer/leaf/v2";
const SEALED_FIELDS = ["version", "election", "type", "ballot_id", "sealed"];

/** value if it is a valid id (election, contest, option), else FormatError (code "id"). */
export function checkId(value, what) {
  if (typeof value !== "string" || !ID_PATTERN.test(value)) {
    throw new FormatError(
      `${what} must match [a-z0-9][a-z0-9._-]{0,63} (lowercase letters, digits, '.', '_', '-'), got ${quote(value)}`, "id");
  }
  return value;
}

function checkIds(obj) {
  checkId(obj.election, "election");
  if (obj.type !== "ballot" && obj.type !== "postal") {
    throw fail(`type must be one of ballot, postal, got ${quote(obj.type)}`);
  }
  if (!/^[0-9a-f]{32}$/.test(obj.ballot_id)) {
    throw fail(`ballot_id must be 32 lowercase hex digits (128 bits), got ${quote(obj.ballot_id)}`);
  }
}

function checkCanonical(obj, bytes) {
  if (!bytesEqual(utf8(canonicalize(obj)), bytes)) {
    throw new FormatError("leaf is not in canonical JSON form (RFC 8785: sorted keys, no whitespace, minimal escapes)",
      "leaf.not-canonical");
  }
}

/** Leaf v2: {election, type, ballotId, channel, sealed (bytes of HPKE enc || ct), sealedVersion: true}. */
function parseSealedLeaf(obj, bytes) {
  exactObject(obj, SEALED_FIELDS, "leaf");
  for (const name of SEALED_FIELDS) {
    if (typeof obj[name] !== "string") throw fail(`leaf field ${name} must be a string, got ${typeName(obj[name])}`);
  }
  // As Python's b64decode(validate=True): any well-padded base64; a non-canonical spelling
  // then fails the canonical-form check below, as it does there.
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(obj.sealed) || obj.sealed.length % 4 !== 0) {
    throw fail("leaf field sealed is not valid base64");
  }
  const sealed = Uint8Array.from(atob(obj.sealed), (c) => c.charCodeAt(0));
  try {
    checkIds(obj);
    if (sealed.length === 0) throw fail("sealed must be the non-empty bytes of a sealed ballot");
  } catch (exc) {
    throw exc.within("leaf");
  }
  checkCanonical(obj, bytes);
  return { version: 2, election: obj.election, type: obj.type, ballotId: obj.ballot_id,
           channel: obj.type === "postal" ? "postal" : "online", sealed };
}

/** Parse leaf bytes strictly (fields, ids, sorted options, canonical RFC 8785 form): v2 or v1. */
export function parseLeaf(bytes) {
  let obj;
  try {
    obj = parseJsonStrict(bytes);
  } catch (exc) {
    throw exc.within("leaf");
  }
  if (isPlainObject(obj) && obj.version === SEALED_LEAF_VERSION) return parseSealedLeaf(obj, bytes);
  exactObject(obj, LEAF_FIELDS, "leaf");
  if (obj.version !== LEAF_VERSION) throw fail(`leaf version must be "${LEAF_VERSION}", got ${quote(obj.version)}`);
  for (const name of ["election", "type", "ballot_id"]) {
    if (typeof obj[name] !== "string") throw fail(`leaf field ${name} must be a string, got ${typeName(obj[name])}`);
  }
  if (!isPlainObject(obj.selections)) throw fail(`leaf field selections must be an object, got ${typeName(obj.selections)}`);
  try {
    checkIds(obj);
    for (const [contest, options] of Object.entries(obj.selections)) {
      checkId(contest, "selections contest id");
      if (!Array.isArray(options)) {
        throw fail(`selections.${contest} must be a list of option ids, got ${typeName(options)}`);
      }
      options.forEach((option, i) => checkId(option, `selections.${contest}[${i}]`));
      const sorted = [...new Set(options)].sort();
      if (sorted.length !== options.length || sorted.some((o, i) => o !== options[i])) {
        throw fail(`selections.${contest} must be sorted and without duplicates`);
      }
    }
  } catch (exc) {
    throw exc.within("leaf");
  }
  checkCanonical(obj, bytes);
  return { version: 1, election: obj.election, type: obj.type, ballotId: obj.ballot_id, selections: obj.selections };
}
