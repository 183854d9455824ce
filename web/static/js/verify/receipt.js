// receipt.js — receipt v2 (a sealed ballot, named by its tracker) and v1 (earlier
// elections), as hsm_signer.log.receipt parses them.

import { b64decodeStrict, quote, typeName } from "./bytes.js";
import { FormatError } from "./errors.js";
import { exactObject, isPlainObject, parseJsonStrict } from "./json.js";
import { checkId } from "./leaf.js";
import { HASH_SIZE } from "./merkle.js";

export const RECEIPT_VERSION = "hsm-signer/receipt/v1";
export const RECEIPT_V2_VERSION = "hsm-signer/receipt/v2";
const RECEIPT_FIELDS = ["version", "election", "leaf_index", "leaf", "inclusion_proof", "checkpoint"];
const V2_FIELDS = ["version", "election", "leaf_index", "leaf", "tracker", "inclusion_proof", "checkpoint"];
const SEALED_MARKER = '"version":"hsm-signer/leaf/v2"}';
const MAX_LEAF_INDEX = 2n ** 63n - 1n;

const fail = (message) => new FormatError(message, "receipt.syntax");

/** Parse a receipt (JSON text, its UTF-8 bytes, or an already parsed object) strictly. */
export function parseReceipt(input) {
  let obj = input;
  if (typeof input === "string" || input instanceof Uint8Array) {
    try {
      obj = parseJsonStrict(input);
    } catch (exc) {
      throw exc.within("receipt");
    }
  }
  const version = isPlainObject(obj) ? obj.version : undefined;
  if (isPlainObject(obj) && "version" in obj && version !== RECEIPT_VERSION && version !== RECEIPT_V2_VERSION) {
    throw fail(`receipt.version must be "${RECEIPT_V2_VERSION}" (or "${RECEIPT_VERSION}" for an earlier election), ` +
      `got ${quote(version)}`);
  }
  const v2 = version === RECEIPT_V2_VERSION;
  exactObject(obj, v2 ? V2_FIELDS : RECEIPT_FIELDS, "receipt");
  for (const name of ["election", "leaf", "checkpoint", ...(v2 ? ["tracker"] : [])]) {
    if (typeof obj[name] !== "string") throw fail(`receipt.${name} must be a string, got ${typeName(obj[name])}`);
  }
  const index = obj.leaf_index;
  if (!((typeof index === "number" && Number.isInteger(index)) || typeof index === "bigint")) {
    throw fail(`receipt.leaf_index must be an integer, got ${typeName(index)}`);
  }
  if (!Array.isArray(obj.inclusion_proof)) throw fail(`receipt.inclusion_proof must be a list, got ${typeName(obj.inclusion_proof)}`);
  const proof = obj.inclusion_proof.map((item, i) => {
    if (typeof item !== "string") throw fail(`receipt.inclusion_proof[${i}] must be a base64 string, got ${typeName(item)}`);
    const raw = b64decodeStrict(item, `receipt.inclusion_proof[${i}]`);
    if (raw.length !== HASH_SIZE) throw fail(`receipt.inclusion_proof[${i}] must decode to ${HASH_SIZE} bytes, got ${raw.length}`);
    return raw;
  });
  const leaf = b64decodeStrict(obj.leaf, "receipt.leaf");
  try {
    checkId(obj.election, "election");
  } catch (exc) {
    throw new FormatError(`receipt.${exc.message}`, exc.code);
  }
  const leafIndex = BigInt(index);
  if (leafIndex < 0n || leafIndex > MAX_LEAF_INDEX) throw fail(`receipt.leaf_index must be a non-negative integer, got ${leafIndex}`);
  if (leaf.length === 0) throw fail("receipt.leaf must be non-empty bytes");
  if (!obj.checkpoint) throw fail("receipt.checkpoint must be the signed checkpoint note text");
  if (isSealedLeaf(leaf) !== v2) {
    throw new FormatError(v2 ? "receipt v2 must carry a sealed leaf (hsm-signer/leaf/v2)"
      : "receipt v1 cannot carry a sealed leaf; a sealed ballot's receipt is v2", "receipt.leaf-version");
  }
  return { version: v2 ? 2 : 1, election: obj.election, leafIndex, leaf, inclusionProof: proof,
           checkpoint: obj.checkpoint, tracker: v2 ? obj.tracker : null };
}

/** Does the leaf claim leaf v2? (Whether it is a well-formed one is the leaf step's check.) */
function isSealedLeaf(leaf) {
  const text = new TextDecoder().decode(leaf).replace(/\s+$/, "");
  return text.startsWith("{") && text.endsWith(SEALED_MARKER);
}
