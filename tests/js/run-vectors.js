// Run every shared vector file through web/static/js/verify-core.js in the browser.
//
// The case ids and outcome dicts are the ones tests/js/python_outcomes.py produces from
// the Python implementation, so tests/test_js_verify.py can compare the two one by one.
// Results: window.vectorResults = {case id: outcome}; window.vectorsDone = true when
// finished (window.vectorsError holds a crash, which is a test failure, not a vector one).

import * as core from "/static/js/verify-core.js";

const b64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
const hex = core.fromHex;

function failed(exc, step) {
  if (!(exc instanceof core.VerificationError)) throw exc;
  const out = { valid: false, kind: exc.kind, code: exc.code, message: exc.message };
  if (step !== undefined) out.step = step;
  return out;
}

async function run(check) {
  try {
    return { valid: true, ...((await check()) || {}) };
  } catch (exc) {
    return failed(exc);
  }
}

async function verifier(vkey) {
  const v = await core.parseVerifierKey(vkey);
  return { key_name: v.name, key_id: v.keyIdHex, type: v.type };
}

async function open(note, vkeys) {
  const verifiers = [];
  for (const k of vkeys) verifiers.push(await core.parseVerifierKey(k));
  const { text, signedBy } = await core.openNote(note, verifiers);
  return { text, signed_by: signedBy };
}

function checkpointFields(cp) {
  return { origin: cp.origin, size: cp.size.toString(), root: core.b64encode(cp.rootHash) };
}

async function merkle(rel, v) {
  if ("leafIdx" in v || "wantErr" in v) {
    const proof = v.proof.map(b64);
    if ("leafIdx" in v) return { [rel]: await run(() => core.verifyInclusion(b64(v.leafHash), v.leafIdx, v.treeSize, proof, b64(v.root))) };
    return { [rel]: await run(() => core.verifyConsistency(v.size1, v.size2, proof, b64(v.root1), b64(v.root2))) };
  }
  const proof = v.proof.map(hex);
  if ("leaf_index" in v) {
    return { [rel]: await run(() => core.verifyInclusion(hex(v.leaf_hash), v.leaf_index, v.tree_size, proof, hex(v.root))) };
  }
  return { [rel]: await run(() => core.verifyConsistency(v.size1, v.size2, proof, hex(v.root1), hex(v.root2))) };
}

async function rootOf(hashes) {
  // MTH by the recursive definition (RFC 9162 §2.1.1); only the tests need it.
  if (hashes.length === 0) return core.sha256(new Uint8Array(0));
  if (hashes.length === 1) return hashes[0];
  let k = 1;
  while (k * 2 < hashes.length) k *= 2;
  return core.nodeHash(await rootOf(hashes.slice(0, k)), await rootOf(hashes.slice(k)));
}

async function tree(rel, v) {
  const hashes = [];
  for (const leaf of v.leaves) hashes.push(await core.leafHash(hex(leaf)));
  const out = { [`${rel}#leaf-hashes`]: { valid: true, hashes: hashes.map(core.toHex) } };
  for (let level = 1; level < v.node_hashes.length; level++) {
    const below = v.node_hashes[level - 1];
    const computed = [];
    for (let i = 0; i < Math.floor(below.length / 2); i++) {
      computed.push(core.toHex(await core.nodeHash(hex(below[2 * i]), hex(below[2 * i + 1]))));
    }
    out[`${rel}#level-${level}`] = { valid: true, hashes: computed };
  }
  for (let size = 0; size < v.roots.length; size++) {
    out[`${rel}#root-${size}`] = { valid: true, root: core.toHex(await rootOf(hashes.slice(0, size))) };
  }
  return out;
}

async function goNote(rel, v) {
  const two = v.note + v.second_signature_line;
  const out = {
    [`${rel}#verifier-key`]: await run(() => verifier(v.verifier_key)),
    [`${rel}#second-verifier-key`]: await run(() => verifier(v.second_verifier_key)),
    [`${rel}#note`]: await run(() => open(v.note, [v.verifier_key])),
    [`${rel}#two-signatures-one-trusted`]: await run(() => open(two, [v.verifier_key])),
    [`${rel}#two-signatures-both-trusted`]: await run(() => open(two, [v.verifier_key, v.second_verifier_key])),
    [`${rel}#two-signatures-none-trusted`]: await run(() => open(two, [])),
    [`${rel}#invalid-utf8`]: await run(() => open(core.concat(hex(v.invalid_utf8_note_hex_prefix), core.utf8(v.note)), [v.verifier_key])),
  };
  for (const [name, vkey] of Object.entries(v.bad_verifier_keys)) out[`${rel}#bad-verifier-key/${name}`] = await run(() => verifier(vkey));
  for (const [name, note] of Object.entries(v.malformed_notes)) out[`${rel}#malformed-note/${name}`] = await run(() => open(note, [v.verifier_key]));
  return out;
}

async function ecdsaNote(rel, v) {
  const out = {
    [`${rel}#verifier-key`]: await run(() => verifier(v.verifier_key)),
    [`${rel}#note`]: await run(async () => {
      const opened = await open(v.note, [v.verifier_key]);
      return { ...opened, ...checkpointFields(core.parseCheckpoint(opened.text)) };
    }),
  };
  for (const [name, vkey] of Object.entries(v.bad_verifier_keys)) out[`${rel}#bad-verifier-key/${name}`] = await run(() => verifier(vkey));
  for (const [name, note] of Object.entries(v.bad_notes)) out[`${rel}#bad-note/${name}`] = await run(() => open(note, [v.verifier_key]));
  return out;
}

async function jcs(rel, v) {
  return { [rel]: await run(() => ({ canonical: core.canonicalize(core.parseJsonStrict(core.utf8(v.input))) })) };
}

async function browserNotes(rel, v) {
  const out = {};
  for (const c of v.notes) {
    const note = c.as_bytes ? core.utf8(c.note) : c.note;
    out[`${rel}#note/${c.name}`] = await run(() => open(note, c.verifier_keys));
  }
  for (const c of v.verifier_keys) out[`${rel}#verifier-key/${c.name}`] = await run(() => verifier(c.vkey));
  return out;
}

async function browserCheckpoints(rel, v) {
  const out = {};
  for (const c of v.checkpoints) {
    out[`${rel}#${c.name}`] = await run(() => {
      const cp = core.parseCheckpoint(c.text);
      return { ...checkpointFields(cp), extensions: cp.extensions };
    });
  }
  return out;
}

async function receiptOutcome(c, bundles) {
  const options = {};
  if ("later_checkpoint" in c) options.laterCheckpoint = c.later_checkpoint;
  if ("consistency_proof" in c) options.consistencyProof = c.consistency_proof;
  if ("expected_origin" in c) options.origin = c.expected_origin;
  const report = await core.verifyReceipt(c.receipt, bundles[c.bundle], options);
  if (!report.ok) {
    const f = report.failure;
    return { valid: false, kind: f.kind, code: f.code, step: f.step, message: f.reason };
  }
  const r = report.result;
  const out = { valid: true, leaf_index: r.leafIndex, tree_size: r.treeSize, ballot_id: r.ballotId, origin: r.origin };
  if (r.laterTreeSize !== undefined) out.later_tree_size = r.laterTreeSize;
  if (r.tally !== undefined) out.tally = r.tally;
  return out;
}

async function browserReceipts(rel, v) {
  const out = {};
  for (const c of v.receipts) out[`${rel}#${c.name}`] = await receiptOutcome(c, v.bundles);
  return out;
}

export async function outcomes(rel) {
  const v = await (await fetch(`/vectors/${rel}`)).json();
  if (/^(rfc6962\/(inclusion|consistency)\/|upstream\/)/.test(rel)) return merkle(rel, v);
  if (rel === "rfc6962/tree.json") return tree(rel, v);
  if (rel === "signed-note/go-sumdb-note.json") return goNote(rel, v);
  if (rel === "signed-note/transparency-dev-formats-ecdsa.json") return ecdsaNote(rel, v);
  if (rel.startsWith("jcs/")) return jcs(rel, v);
  if (rel === "browser-notes.json") return browserNotes(rel, v);
  if (rel === "browser-checkpoints.json") return browserCheckpoints(rel, v);
  if (rel === "browser-receipts.json") return browserReceipts(rel, v);
  throw new Error(`no runner for vector file ${rel}`);
}

function show(results) {
  const table = document.getElementById("results");
  let failures = 0;
  for (const [id, outcome] of Object.entries(results)) {
    const row = table.insertRow();
    row.insertCell().textContent = id;
    row.insertCell().textContent = outcome.valid ? "valid" : `${outcome.code}${outcome.step ? ` at ${outcome.step}` : ""}`;
    row.insertCell().textContent = outcome.message || "";
    if (outcome.kind === "unsupported") failures++;
  }
  document.getElementById("status").textContent =
    `${Object.keys(results).length} cases run${failures ? `, ${failures} not checkable in this browser` : ""}.`;
}

async function main() {
  const files = await (await fetch("/manifest.json")).json();
  const results = {};
  for (const rel of files) Object.assign(results, await outcomes(rel));
  window.vectorResults = results;
  show(results);
}

main().then(
  () => { window.vectorsDone = true; },
  (exc) => { window.vectorsError = `${exc && exc.stack ? exc.stack : exc}`; window.vectorsDone = true; },
);
