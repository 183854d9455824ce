// verify.js — check a whole receipt, step by step, for the voter (hsm_signer.verify's checks).

import { b64decodeStrict, quote, toHex, typeName } from "./bytes.js";
import { parseKeyBundle } from "./bundle.js";
import { checkOrigin, parseCheckpoint, tallyCounts } from "./checkpoint.js";
import { FormatError, UnsupportedError, VerificationError } from "./errors.js";
import { parseLeaf } from "./leaf.js";
import { HASH_SIZE, leafHash, verifyConsistency, verifyInclusion } from "./merkle.js";
import { openNote } from "./note.js";
import { parseReceipt } from "./receipt.js";
import { trackerOf } from "./tracker.js";

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

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

function plain(n) {
  return typeof n === "bigint" && n <= MAX_SAFE ? Number(n) : n;
}

function entries(n) {
  return `${n} ${BigInt(n) === 1n ? "entry" : "entries"}`;
}

function toProof(list) {
  return list.map((p, i) => {
    if (p instanceof Uint8Array) return p;
    if (typeof p !== "string") throw new FormatError(`consistency proof[${i}] must be a base64 string, got ${typeName(p)}`, "proof.hash");
    const raw = b64decodeStrict(p, `consistency proof[${i}]`);
    if (raw.length !== HASH_SIZE) throw new FormatError(`consistency proof[${i}] must decode to ${HASH_SIZE} bytes, got ${raw.length}`, "proof.hash");
    return raw;
  });
}

/**
 * Check a receipt against a key bundle and, optionally, a later checkpoint or signed tally
 * with the consistency proof from the receipt's tree size to the later one.
 *
 * receipt, keys: JSON text, UTF-8 bytes or parsed objects (text keeps duplicate-key
 * detection). options.laterCheckpoint: the signed note; options.consistencyProof: base64
 * strings or Uint8Arrays (may be omitted when both sizes are equal); options.origin: the
 * election's log origin as published, if known (otherwise any <prefix>/<election> origin
 * the receipt's checkpoint names, so receipts of earlier elections still verify).
 *
 * Never throws for a bad receipt: resolves to {ok, steps, failure, result}, where steps is
 * [{step, title, ok, message, reason?, kind?, code?}] up to and including the first failure;
 * a failure's (step, code) are the same as hsm_signer.verify's for the same input.
 */
export async function verifyReceipt(receipt, keys, options = {}) {
  const { laterCheckpoint = null, consistencyProof = null, origin: expectedOrigin = null } = options;
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
    if (r.version === 2) {
      const tracker = await trackerOf(r.leaf);
      if (r.tracker !== tracker) {
        throw new FormatError(`receipt.tracker ${quote(r.tracker)} is not the tracker of its leaf (${tracker})`, "receipt.tracker");
      }
    }
    Object.assign(result, { election: r.election, leafIndex: plain(r.leafIndex), tracker: r.tracker });
    pass("receipt", `The receipt is well-formed: a ballot of election ${r.election} at position ${r.leafIndex} of its log.`);

    current = "checkpoint";
    let opened;
    let checkpoint;
    try {
      opened = await openNote(r.checkpoint, [checkpointVerifier]);
      checkpoint = parseCheckpoint(opened.text);
    } catch (exc) {
      throw within(exc, "receipt checkpoint");
    }
    try {
      checkOrigin(checkpoint.origin, r.election);
    } catch (exc) {
      throw new VerificationError(`receipt checkpoint is for another election: ${exc.message}`, exc.code);
    }
    if (expectedOrigin !== null && expectedOrigin !== undefined && checkpoint.origin !== expectedOrigin) {
      throw new VerificationError(`receipt checkpoint is for log ${quote(checkpoint.origin)}, but election ` +
        `${quote(r.election)} is log ${quote(expectedOrigin)}`, "checkpoint.origin");
    }
    const origin = checkpoint.origin;
    Object.assign(result, {
      treeSize: plain(checkpoint.size), keyName: opened.signedBy[0], rootHash: toHex(checkpoint.rootHash), origin,
    });
    pass("checkpoint",
      `The log checkpoint in your receipt is signed by the election's checkpoint key (${opened.signedBy[0]}): ` +
      `the log of election ${r.election} (${origin}) then had ${entries(checkpoint.size)}.`);

    current = "leaf";
    let leaf;
    try {
      leaf = parseLeaf(r.leaf);
    } catch (exc) {
      throw within(exc, "receipt leaf");
    }
    if (leaf.election !== r.election) {
      throw new VerificationError(`receipt leaf is for election ${quote(leaf.election)}, but the receipt is for ` +
        `${quote(r.election)}`, "leaf.election");
    }
    if ((leaf.version === 2) !== (r.version === 2)) {
      throw new FormatError("receipt leaf: a receipt v2 carries a sealed leaf (v2), a receipt v1 a leaf v1",
        "receipt.leaf-version");
    }
    const how = leaf.type === "postal" ? "a postal ballot" : "cast online";
    if (leaf.version === 2) {
      Object.assign(result, { ballotId: leaf.ballotId, ballotType: leaf.type, sealed: leaf.sealed, channel: leaf.channel });
      pass("leaf", `The receipt holds the sealed ballot with tracker ${r.tracker} (${how}) of election ${r.election}. ` +
        "It is sealed: the receipt does not show how you voted; after the close its opening is published.",
        { tracker: r.tracker });
    } else {
      Object.assign(result, { ballotId: leaf.ballotId, ballotType: leaf.type, selections: leaf.selections });
      pass("leaf", `The receipt holds ballot ${leaf.ballotId} (${how}) of election ${r.election}.`,
        { selections: leaf.selections });
    }

    current = "inclusion";
    if (r.leafIndex >= checkpoint.size) {
      throw new VerificationError(
        `receipt leaf index ${r.leafIndex} is not covered by its checkpoint (tree size ${checkpoint.size})`, "proof.index");
    }
    try {
      await verifyInclusion(await leafHash(r.leaf), r.leafIndex, checkpoint.size, r.inclusionProof, checkpoint.rootHash);
    } catch (exc) {
      throw within(exc, "receipt inclusion proof does not match the signed checkpoint");
    }
    pass("inclusion", `Your ballot is in the log at position ${r.leafIndex} (of ${entries(checkpoint.size)}, counting from 0).`);

    if (laterCheckpoint === null || laterCheckpoint === undefined) {
      if (consistencyProof !== null && consistencyProof !== undefined) {
        current = "consistency";
        throw new FormatError("a consistency proof was given without the later checkpoint it leads to", "proof.unexpected");
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
      throw within(exc, "later checkpoint");
    }
    if (later.origin !== origin) {
      throw new VerificationError(`later checkpoint is for log ${quote(later.origin)}, not ${quote(origin)}`, "checkpoint.origin");
    }
    const isTally = tallyVerifier !== null && laterOpened.signedBy.includes(tallyVerifier.name);
    const laterKey = laterOpened.signedBy[0];
    Object.assign(result, { laterTreeSize: plain(later.size), laterKeyName: laterKey, isTally });
    pass("later-checkpoint", isTally
      ? `The signed tally is signed by the election's tally key (${tallyVerifier.name}); it covers a log of ${entries(later.size)}.`
      : `The latest checkpoint is signed by the election's checkpoint key (${laterKey}): the log now has ${entries(later.size)}.`);

    current = "consistency";
    if (later.size < checkpoint.size) {
      throw new VerificationError(
        `later checkpoint has tree size ${later.size}, smaller than the receipt's ${checkpoint.size}: the log shrank`, "log.shrank");
    }
    let proof = consistencyProof;
    if (proof === null || proof === undefined) {
      if (later.size !== checkpoint.size) {
        throw new FormatError(
          `a consistency proof from size ${checkpoint.size} to size ${later.size} is needed to check the later checkpoint`,
          "proof.missing");
      }
      proof = [];
    }
    try {
      await verifyConsistency(checkpoint.size, later.size, toProof(proof), checkpoint.rootHash, later.rootHash);
    } catch (exc) {
      throw within(exc, "later checkpoint is not consistent with the receipt's checkpoint");
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
      code: exc.code,
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

function within(exc, context) {
  return exc instanceof VerificationError ? exc.within(context) : exc;
}
