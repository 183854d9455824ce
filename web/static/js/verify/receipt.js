// receipt.js — receipt v1 (hsm_signer.log.receipt), parsed strictly.

import { b64decodeStrict, quote, typeName } from "./bytes.js";
import { FormatError } from "./errors.js";
import { exactObject, parseJsonStrict } from "./json.js";
import { checkId } from "./leaf.js";
import { HASH_SIZE } from "./merkle.js";

export const RECEIPT_VERSION = "hsm-signer/receipt/v1";
const RECEIPT_FIELDS = ["version", "election", "leaf_index", "leaf", "inclusion_proof", "checkpoint"];
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
  exactObject(obj, RECEIPT_FIELDS, "receipt");
  if (obj.version !== RECEIPT_VERSION) throw fail(`receipt.version must be "${RECEIPT_VERSION}", got ${quote(obj.version)}`);
  for (const name of ["election", "leaf", "checkpoint"]) {
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
  return { election: obj.election, leafIndex, leaf, inclusionProof: proof, checkpoint: obj.checkpoint };
}
