// verify-page.js — the /verify page: load a receipt, check it with verify-core.js, show each step.
//
// Where things come from: the receipt is pasted, opened from a file, or (from the QR
// code's link) assembled from the public API and pinned by the root hash in the link;
// the key bundle is GET /api/v1/keys, or a keys.json the voter opens (then the
// signature and inclusion checks make no network request at all). The server is only
// asked for what the receipt cannot hold: the latest checkpoint or the signed tally,
// and a consistency proof. Everything fetched is checked by verify-core.js; nothing
// here decides whether something is valid.
//
// Everything shown is written with textContent (a receipt is untrusted input).

import {
  STEPS, b64decodeStrict, parseCheckpoint, parseNote, tallyCounts, verifyReceipt,
} from "./verify-core.js";
import { checkOpening } from "./opening.js";

const root = document.getElementById("verifier");
// The page's words in its language (data-words, from the gettext catalogue), by their English text.
const WORDS = JSON.parse(root.dataset.words || "{}");
function t(text, values = null) {
  const words = WORDS[text] || text;
  return values ? words.replace(/\{(\w+)\}/g, (_, name) => String(values[name] ?? "")) : words;
}
const ENGLISH_DETAIL = document.documentElement.lang !== "en"; // the checks' own reasons are English
const urls = { keys: root.dataset.keysUrl, elections: root.dataset.electionsUrl };
const $ = (id) => document.getElementById(id);

class NetworkError extends Error {}

// What a failed step means, in words for a voter (the step's own message, with the
// technical reason, stays in the list of steps below the verdict).
const FAILED = {
  keys: "The election's keys could not be read, so nothing could be checked. Ask the election officials for help.",
  receipt: "This is not a receipt this page can read. Check that you pasted or opened the whole receipt file.",
  checkpoint: "The receipt was not signed by this election's key. It may have been changed, or it may be from another election.",
  leaf: "The ballot in this receipt is not one this page can read. The receipt may have been changed.",
  inclusion: "Your ballot is not in the election's log at the place this receipt gives. The receipt may have been changed.",
  "later-checkpoint": "The election's latest signed log could not be checked.",
  consistency: "The election's log has changed in a way it never should (it may only grow). Tell the election officials.",
  tally: "Your ballot could not be found in the signed count. Tell the election officials.",
};

function failedVerdict(failure) {
  return t("This receipt did not pass the check. {reason}", { reason: t(FAILED[failure.step] || "One of the checks below failed.") });
}

const STATUS_LABEL = { ok: "Passed", fail: "Failed", pending: "Not yet", skipped: "Not checked", running: "Checking…" };

// --- fetching -------------------------------------------------------------------------------

async function getJson(url, what) {
  let response;
  try {
    response = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
  } catch {
    throw new NetworkError(`${what}: this server could not be reached (are you offline?)`);
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    const detail = body && body.error ? `: ${body.error.message || body.error.code || ""}` : "";
    const error = new NetworkError(`${what}: the server answered ${response.status}${detail}`);
    error.status = response.status;
    throw error;
  }
  return body;
}

async function readFile(input) {
  const file = input.files && input.files[0];
  return file ? { name: file.name, text: await file.text() } : null;
}

async function loadKeys() {
  const file = await readFile($("keys-file"));
  if (file) return { text: file.text, source: `Keys: from the file ${file.name} (nothing was asked of this server for them).` };
  let response;
  try {
    response = await fetch(urls.keys, { cache: "no-store" });
  } catch {
    throw new NetworkError(
      "The election's keys could not be fetched from this server (are you offline?). " +
      "Open the keys.json file of the election's key bundle under “Check without this server” to check offline.");
  }
  if (!response.ok) throw new NetworkError(`The election's keys could not be fetched: the server answered ${response.status}.`);
  return { text: await response.text(), source: `Keys: the key bundle published by this server (${urls.keys}).` };
}

const electionUrl = (id, tail = "") => `${urls.elections}/${encodeURIComponent(id)}${tail}`;

/** Assemble a receipt from the QR link's (election, index, size, root) and the public API. */
async function receiptFromLink(link) {
  const { election, index, size } = link;
  const [entries, proof, checkpoint] = await Promise.all([
    getJson(electionUrl(election, `/entries?start=${index}&end=${BigInt(index) + 1n}`), "The ballot named by the link"),
    getJson(electionUrl(election, `/proof/inclusion?index=${index}&size=${size}`), "The inclusion proof"),
    getJson(electionUrl(election, `/checkpoint?size=${size}`), "The signed checkpoint"),
  ]);
  if (!entries.entries || entries.entries.length !== 1) {
    throw new NetworkError(`The ballot named by the link: the server has no entry ${index} in a signed checkpoint.`);
  }
  return JSON.stringify({
    version: "hsm-signer/receipt/v1",
    election,
    leaf_index: Number(index),
    leaf: entries.entries[0],
    inclusion_proof: proof.proof,
    checkpoint: checkpoint.checkpoint,
  });
}

/** The root in the link must be the root of the checkpoint the server returned: it pins the receipt. */
function linkMismatch(link, receiptText) {
  let cp;
  try {
    cp = parseCheckpoint(parseNote(JSON.parse(receiptText).checkpoint).text);
  } catch (exc) {
    return `the server's checkpoint for tree size ${link.size} does not parse: ${exc.message}`;
  }
  let fromLink;
  try {
    fromLink = b64decodeStrict(link.root.replace(/-/g, "+").replace(/_/g, "/") + "=", "the link's root");
  } catch (exc) {
    return `the link's root hash is damaged: ${exc.message}`;
  }
  const same = fromLink.length === cp.rootHash.length && fromLink.every((b, i) => b === cp.rootHash[i]);
  if (cp.size.toString() !== String(link.size) || !same) {
    return `the checkpoint this server returned for tree size ${link.size} is not the one your QR code names ` +
      `(the link's root is ${link.root}); the server may have changed its log`;
  }
  return null;
}

let electionCache = new Map();

/** GET /api/v1/elections/{id} once per check (titles, state); rejects when offline. */
function electionInfo(election) {
  if (!electionCache.has(election)) electionCache.set(election, getJson(electionUrl(election), "The election"));
  return electionCache.get(election);
}

/**
 * The latest thing to compare the receipt with: the signed tally once the poll has closed
 * and it is published, else the latest checkpoint; and the consistency proof to it.
 * What the server says about the poll's state only decides what to ask for: whatever
 * comes back is checked by verifyReceipt.
 */
async function fetchLater(election, receiptSize) {
  const info = await electionInfo(election);
  let note = null;
  let tallyWaiting = info.state === "closed"
    ? "The poll has closed, but the tally has not been signed and published yet. Check again later."
    : "The poll is still open: the tally is signed and published after it closes. Check again then.";
  if (info.state === "closed") {
    try {
      note = (await getJson(electionUrl(election, "/tally"), "The signed tally")).tally;
      tallyWaiting = null;
    } catch (exc) {
      if (!(exc instanceof NetworkError) || exc.status !== 404) throw exc;
    }
  }
  if (note === null) note = (await getJson(electionUrl(election, "/checkpoint"), "The latest checkpoint")).checkpoint;
  let laterSize = null;
  try {
    laterSize = parseCheckpoint(parseNote(note).text).size; // only to ask for the right proof; checked below
  } catch {
    return { note, proof: null, tallyWaiting, origin: info.origin };
  }
  let proof = null;
  if (laterSize > BigInt(receiptSize)) {
    proof = (await getJson(electionUrl(election, `/proof/consistency?from=${receiptSize}&to=${laterSize}`),
      "The consistency proof")).proof;
  }
  return { note, proof, tallyWaiting, origin: info.origin };
}

// --- showing ------------------------------------------------------------------------------

function render(steps, extra = {}) {
  const list = $("steps");
  list.replaceChildren();
  const byStep = new Map(steps.map((s) => [s.step, s]));
  for (const { step, title } of STEPS) {
    const s = byStep.get(step) || extra[step] || { status: "skipped", message: "" };
    const status = s.status || (s.ok ? "ok" : "fail");
    const li = document.createElement("li");
    li.className = `step ${status}`;
    li.dataset.step = step;
    li.dataset.status = status;
    const head = document.createElement("p");
    const mark = document.createElement("span");
    mark.className = "mark";
    mark.textContent = t(STATUS_LABEL[status]);
    const name = document.createElement("strong");
    name.textContent = t(title);
    head.append(mark, " ", name);
    li.append(head);
    if (s.message) {
      const text = document.createElement("p");
      text.className = "message";
      text.textContent = s.message;
      if (ENGLISH_DETAIL) text.lang = "en";
      li.append(text);
    }
    list.append(li);
  }
}

function setVerdict(kind, text) {
  const verdict = $("verdict");
  verdict.className = `verdict ${kind}`;
  verdict.dataset.verdict = kind;
  verdict.textContent = t(text);
}

async function electionTitles(election) {
  try {
    const definition = await electionInfo(election);
    const contests = new Map();
    for (const c of definition.contests || []) {
      contests.set(c.id, { title: c.title, options: new Map((c.options || []).map((o) => [o.id, o.title])) });
    }
    return contests;
  } catch {
    return new Map(); // offline or unknown: show the ids
  }
}

async function showBallot(result) {
  const box = $("ballot");
  const facts = $("ballot-facts");
  facts.replaceChildren();
  if (!result.ballotId) { box.hidden = true; return; }
  const titles = await electionTitles(result.election);
  const add = (term, value, code = false) => {
    const dt = document.createElement("dt");
    dt.textContent = term;
    const dd = document.createElement("dd");
    if (code) {
      const c = document.createElement("code");
      c.className = "wrap";
      c.textContent = value;
      dd.append(c);
    } else {
      dd.textContent = value;
    }
    facts.append(dt, dd);
  };
  add(t("Election"), result.election, true);
  if (result.tracker) add(t("Ballot tracker"), result.tracker, true);
  add(t("Ballot id"), result.ballotId, true);
  add(t("Position in the log (leaf index)"), String(result.leafIndex));
  add(t("Cast"), result.ballotType === "postal" ? t("by post (recorded by an official)") : t("online"));
  if (result.sealed) {
    add(t("Your vote"), t("sealed: this receipt does not show how you voted. After the poll closes and the tally is " +
      "signed, this page shows your ballot as it was opened."));
  }
  const selections = result.selections || {};
  // The election's own contest order when it is known (the leaf sorts contests by id).
  const order = [...[...titles.keys()].filter((c) => c in selections),
    ...Object.keys(selections).filter((c) => !titles.has(c))];
  for (const contest of order) {
    const options = selections[contest];
    const known = titles.get(contest);
    const names = options.map((o) => (known && known.options.get(o)) || o);
    add(known ? known.title : contest, names.length ? names.join(", ") : t("No choice"));
  }
  box.hidden = false;
}

async function showTally(steps, election) {
  const box = $("tally");
  const tallyStep = steps.find((s) => s.step === "tally" && s.ok);
  if (!tallyStep) { box.hidden = true; return; }
  const titles = await electionTitles(election);
  const rows = $("tally-rows");
  rows.replaceChildren();
  for (const { contest, option, count } of tallyStep.counts || []) {
    const known = titles.get(contest);
    const tr = document.createElement("tr");
    for (const text of [known ? known.title : contest, (known && known.options.get(option)) || option, String(count)]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    rows.append(tr);
  }
  box.hidden = false;
}

/** After the close: the voter's own ballot as the tally opened it, re-opened in this browser. */
async function showOpened(result) {
  const box = $("opened");
  const facts = $("opened-facts");
  const note = $("opened-note");
  facts.replaceChildren();
  box.hidden = false;
  box.dataset.status = "running";
  try {
    const index = BigInt(result.leafIndex);
    const [page, info] = await Promise.all([
      getJson(electionUrl(result.election, `/openings?start=${index}&end=${index + 1n}`), "The openings"),
      electionInfo(result.election)]);
    const leaf = { election: result.election, ballotId: result.ballotId, channel: result.channel, sealed: result.sealed };
    const opened = await checkOpening(page.openings[0], leaf, result.leafIndex, info.padded_size);
    const titles = await electionTitles(result.election);
    const add = (term, value) => {
      const dt = document.createElement("dt");
      dt.textContent = term;
      const dd = document.createElement("dd");
      dd.textContent = value;
      facts.append(dt, dd);
    };
    if (opened.status === "valid") {
      for (const [contest, known] of titles) {
        const options = opened.selections[contest] || [];
        add(known.title, options.length ? options.map((o) => known.options.get(o) || o).join(", ") : t("No choice"));
      }
      note.textContent = t("This browser opened your sealed ballot again with the secret the tally published, and got " +
        "exactly this. Check that it is what you chose.");
    } else {
      add(t("Counted as"), `invalid: ${opened.reason}`);
      note.textContent = t("The tally could not count your sealed ballot (like a spoiled paper ballot); the reason is above.");
    }
    box.dataset.status = opened.status;
  } catch (exc) {
    box.dataset.status = "fail";
    note.textContent = exc instanceof NetworkError
      ? `${exc.message} Your opened ballot could not be fetched now; check again later.`
      : `Your opened ballot did not pass the check (${exc.message}).`;
  }
}

// --- the check ----------------------------------------------------------------------------

let running = false;

async function check(getReceipt) {
  if (running) return;
  running = true;
  electionCache = new Map();
  const section = $("result");
  delete section.dataset.done;
  section.hidden = false;
  $("ballot").hidden = true;
  $("tally").hidden = true;
  $("opened").hidden = true;
  $("keys-source").textContent = "";
  setVerdict("running", "Checking…");
  render([], { keys: { status: "running", message: "" } });
  try {
    await runCheck(getReceipt);
  } catch (exc) {
    setVerdict("fail", `The check could not run: ${exc.message}`);
  } finally {
    running = false;
    section.dataset.done = "true";
  }
}

async function runCheck(getReceipt) {
  let keys;
  try {
    keys = await loadKeys();
  } catch (exc) {
    if (!(exc instanceof NetworkError)) throw exc;
    render([], { keys: { status: "fail", message: exc.message } });
    setVerdict("fail", "Nothing could be checked: the election's keys are missing.");
    return;
  }
  $("keys-source").textContent = keys.source;

  let receipt;
  try {
    receipt = await getReceipt();
  } catch (exc) {
    if (!(exc instanceof NetworkError)) throw exc;
    render([{ step: "keys", ok: true, message: "" }], { receipt: { status: "fail", message: exc.message } });
    setVerdict("fail", "The receipt could not be loaded.");
    return;
  }
  if (receipt.mismatch) {
    const report = await verifyReceipt(receipt.text, keys.text);
    render(report.steps.filter((s) => s.step === "keys"), {
      receipt: { status: "fail", message: `The receipt from your QR code does not match. Reason: ${receipt.mismatch}.` },
    });
    setVerdict("fail", t("This receipt did not pass the check. {reason}", { reason: t("The election's log on this server does not match your QR code.") }));
    return;
  }

  // 1. Offline: the signature, the ballot, its inclusion. No network needed.
  const offline = await verifyReceipt(receipt.text, keys.text);
  const waiting = { status: "running", message: "" };
  render(offline.steps, offline.ok ? { "later-checkpoint": waiting, consistency: waiting, tally: waiting } : {});
  await showBallot(offline.result);
  if (!offline.ok) {
    setVerdict(offline.failure.kind === "unsupported" ? "unsupported" : "fail",
      offline.failure.kind === "unsupported"
        ? "This browser could not finish the check."
        : failedVerdict(offline.failure));
    return;
  }
  setVerdict("partial", "Your ballot is in the log the election's key signed. Now checking the log since then…");

  // 2. Online: the latest checkpoint or the signed tally, and the log only grew.
  let later;
  try {
    later = await fetchLater(offline.result.election, offline.result.treeSize);
  } catch (exc) {
    if (!(exc instanceof NetworkError)) throw exc;
    const message = `${exc.message} The checks above needed no server; run this one again when you are online.`;
    render(offline.steps, { "later-checkpoint": { status: "skipped", message }, consistency: { status: "skipped", message: "" } });
    setVerdict("partial", "Your ballot is in the log the election's key signed. " +
      "Whether the log has only grown since could not be checked now.");
    return;
  }
  // The log's name as the server publishes it must be the one in the receipt too.
  const full = await verifyReceipt(receipt.text, keys.text,
    { laterCheckpoint: later.note, consistencyProof: later.proof, origin: later.origin });
  const notYet = { status: "pending", message: later.tallyWaiting || "This checkpoint is not the signed tally." };
  render(full.steps, full.ok && !full.result.isTally ? { tally: notYet } : {});
  await showTally(full.steps, offline.result.election);
  if (full.ok && full.result.isTally && offline.result.sealed) await showOpened(offline.result);
  if (!full.ok) {
    setVerdict(full.failure.kind === "unsupported" ? "unsupported" : "fail",
      full.failure.kind === "unsupported"
        ? "This browser could not finish the check."
        : failedVerdict(full.failure));
  } else if (full.result.isTally) {
    setVerdict("ok", "Verified: your ballot is in the log, the log has only grown since, and it is counted in the signed tally.");
  } else {
    setVerdict("ok", "Verified: your ballot is in the log, and the log has only grown since your receipt.");
  }
}

// --- wiring ---------------------------------------------------------------------------------

$("receipt-form").addEventListener("submit", (event) => {
  event.preventDefault();
  check(async () => {
    const text = $("receipt-text").value; // an opened file is shown here first
    if (!text.trim()) throw new NetworkError(t("Paste your receipt or open the receipt file first."));
    return { text };
  });
});

$("receipt-file").addEventListener("change", async () => {
  const file = await readFile($("receipt-file"));
  if (file) $("receipt-text").value = file.text;
  $("receipt-file").value = ""; // what is checked is what the text box shows
});

if (root.dataset.election) {
  const link = { election: root.dataset.election, index: root.dataset.index, size: root.dataset.size, root: root.dataset.root };
  const fromLink = () => check(async () => {
    const text = await receiptFromLink(link);
    $("receipt-text").value = JSON.stringify(JSON.parse(text), null, 2);
    return { text, mismatch: linkMismatch(link, text) };
  });
  $("check-link").addEventListener("click", fromLink);
  fromLink();
}
