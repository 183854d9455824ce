// merkle.js — RFC 9162 hashing and the inclusion and consistency proof checks.
//
// Sizes and indexes are BigInt inside, so trees beyond 2**32 leaves work (JS bit operators
// on numbers are 32-bit); callers may pass numbers or BigInts. Checks resolve on success
// and throw FormatError (malformed proof or arguments) or RootMismatchError, never
// return false; the same as hsm_signer.log.merkle.

import { bytesEqual, concat, quote, toHex, typeName } from "./bytes.js";
import { FormatError, RootMismatchError } from "./errors.js";
import { sha256 } from "./sha256.js";

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

// Proofs (RFC 9162 §2.1.3.2, §2.1.4.2).

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
  throw new FormatError(`${what} must be a non-negative integer, got ${quote(value)}`, "proof.index");
}

function checkHash(value, what) {
  if (!(value instanceof Uint8Array) || value.length !== HASH_SIZE) {
    const got = value instanceof Uint8Array ? `${value.length} bytes` : typeName(value);
    throw new FormatError(`${what} must be a ${HASH_SIZE}-byte SHA-256 hash, got ${got}`, "proof.hash");
  }
}

function hashes(n) {
  return n === 1 ? `${n} hash` : `${n} hashes`;
}

/** Number of hashes in PATH(index, D[size]). Requires 0 <= index < size. */
export function inclusionProofSize(index, size) {
  index = BigInt(index);
  size = BigInt(size);
  if (index < 0n || index >= size) throw new FormatError(`no inclusion proof for index ${index} in a tree of size ${size}`, "proof.index");
  const inner = bitLength(index ^ (size - 1n));
  return inner + popCount(index >> BigInt(inner));
}

/** Number of hashes in PROOF(m, D[n]). Requires 0 <= m <= n. */
export function consistencyProofSize(m, n) {
  m = BigInt(m);
  n = BigInt(n);
  if (m < 0n || m > n) throw new FormatError(`no consistency proof from size ${m} to size ${n}`, "log.shrank");
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
  if (fnStart >= snStart) throw new FormatError(`leaf index ${fnStart} is outside a tree of size ${snStart}`, "proof.index");
  checkHash(leafHashValue, "leaf hash");
  checkHash(root, "root hash");
  const want = inclusionProofSize(fnStart, snStart);
  if (proof.length !== want) {
    throw new FormatError(
      `an inclusion proof for leaf ${fnStart} in a tree of size ${snStart} has ${hashes(want)}, got ${proof.length}`, "proof.size");
  }
  proof.forEach((p, i) => checkHash(p, `inclusion proof hash [${i}]`));

  let fn = fnStart;
  let sn = snStart - 1n;
  let r = leafHashValue;
  for (const p of proof) {
    if (sn === 0n) throw new FormatError("inclusion proof is longer than the path to the root", "proof.size");
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
  if (sn !== 0n) throw new FormatError("inclusion proof is shorter than the path to the root", "proof.size");
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
  if (m > n) throw new FormatError(`tree size ${n} is smaller than earlier size ${m}: a log never shrinks`, "log.shrank");
  checkHash(root1, "first root hash");
  checkHash(root2, "second root hash");
  const want = consistencyProofSize(m, n);
  if (proof.length !== want) {
    throw new FormatError(`a consistency proof from size ${m} to size ${n} has ${hashes(want)}, got ${proof.length}`, "proof.size");
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
    if (sn === 0n) throw new FormatError("consistency proof is longer than the path to the root", "proof.size");
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
  if (sn !== 0n) throw new FormatError("consistency proof is shorter than the path to the root", "proof.size");
  if (!bytesEqual(fr, root1)) {
    throw new RootMismatchError(`consistency proof leads to first root ${toHex(fr)}, not the expected ${toHex(root1)}`);
  }
  if (!bytesEqual(sr, root2)) {
    throw new RootMismatchError(`consistency proof leads to second root ${toHex(sr)}, not the expected ${toHex(root2)}`);
  }
}
