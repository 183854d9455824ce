// verify-core.js — check an hsm-signer receipt in the voter's own browser.
//
// The same checks as hsm_signer.verify (docs/FORMATS.md §4), computed with the browser's
// WebCrypto: the checkpoint's signed-note signature against the published key bundle
// (ECDSA P-256, type 0x02; Ed25519, type 0x01, where the browser has it), the leaf, the
// RFC 9162 inclusion proof and, given a later checkpoint or the signed tally, the RFC 9162
// consistency proof. Parsing is as strict as the Python code, and every failure carries
// the same stable code as Python's (VerificationError.code); tests/test_js_verify.py runs
// both on the same vector files and compares outcome, failing step and code.
//
// This file only gathers the ES modules of ./verify/, one per format. None of them does
// I/O (no fetch, no DOM) or imports anything but its siblings: the page that uses them
// decides where receipts, keys and proofs come from. Checks throw, never return false;
// verifyReceipt() collects the thrown errors into a step-by-step report.

export * from "./verify/errors.js";
export * from "./verify/bytes.js";
export * from "./verify/sha256.js";
export * from "./verify/merkle.js";
export * from "./verify/json.js";
export * from "./verify/note.js";
export * from "./verify/checkpoint.js";
export * from "./verify/leaf.js";
export * from "./verify/receipt.js";
export * from "./verify/bundle.js";
export * from "./verify/verify.js";
