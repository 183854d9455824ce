// opening.js — the voter's own ballot, opened after the close, re-checked in this browser.
//
// The tally publishes, for every sealed entry, its HPKE shared secret and what it opened to
// (hsm_signer.openings). With the secret the browser re-runs the decryption of the voter's
// own sealed leaf (sealed.js, WebCrypto) and requires exactly the published result: the
// voter sees what their sealed ballot really says, without trusting the server or the tally.

import { openSealed } from "./sealed.js";
import { VerificationError, b64decodeStrict, quote } from "./verify-core.js";

const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

/**
 * Check the published `opening` (an openings.jsonl object) of the receipt's sealed `leaf`
 * (from parseLeaf) at `leafIndex`; `paddedSize` is the election's published padded size.
 * Resolves to {status: "valid", selections} or {status: "invalid", reason}; throws
 * VerificationError when the opening is not the one of this ballot or does not re-open to it.
 */
export async function checkOpening(opening, leaf, leafIndex, paddedSize) {
  if (!opening || String(opening.index) !== String(leafIndex) || opening.ballot_id !== leaf.ballotId) {
    throw new VerificationError(`the published opening is not the one of your ballot (entry ${leafIndex}, ` +
      `ballot ${leaf.ballotId})`, "opening.entry");
  }
  let reopened;
  try {
    const secret = b64decodeStrict(opening.shared_secret, "opening.shared_secret");
    reopened = { status: "valid",
                 selections: await openSealed(secret, leaf.election, leaf.channel, leaf.ballotId, leaf.sealed, paddedSize) };
  } catch (exc) {
    reopened = { status: "invalid", error: exc };
  }
  if (opening.status === "valid") {
    if (reopened.status !== "valid" || !same(reopened.selections, opening.selections)) {
      throw new VerificationError("the published opening of your ballot does not re-open to what it says: " +
        (reopened.error ? reopened.error.message : `it opens to ${quote(JSON.stringify(reopened.selections))}`),
        "opening.mismatch");
    }
    return { status: "valid", selections: opening.selections };
  }
  if (opening.status === "invalid") return { status: "invalid", reason: opening.reason };
  throw new VerificationError(`the published opening has an unknown status ${quote(opening.status)}`, "opening.syntax");
}
