// The voting page with JavaScript: review, seal in this browser, cast; the server never
// sees the vote.
//
// The ballot form (vote_ballot.html) carries the election's published sealing key and
// padded size. Reviewing happens here, without a request; casting seals the selections
// with sealed.js (HPKE to the sealing key, WebCrypto only) and POSTs only
// {"code", "sealed": {"ballot_id", "ciphertext"}} to the API. A retry (e.g. the receipt was
// not signed yet) sends the very same sealed ballot, which the server recognises as the
// identical resubmission. The selections never leave this page, and are never put in a URL.
// Without JavaScript the form posts to the server, which seals at once.

import { newBallotId, sealBallot } from "./sealed.js";

const form = document.getElementById("ballot-form");
const $ = (id) => document.getElementById(id);

function b64decode(text) {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

function b64encode(bytes) {
  let text = "";
  for (const b of bytes) text += String.fromCharCode(b);
  return btoa(text);
}

function showError(message) {
  const box = $("js-error");
  box.textContent = message;
  box.hidden = !message;
  if (message) box.scrollIntoView({ block: "nearest" });
}

/** {contest: [option ids]} as chosen, with contest and option titles for the review. */
function readBallot() {
  const selections = {}, review = [], problems = [];
  for (const fieldset of form.querySelectorAll("fieldset[data-contest]")) {
    const contest = fieldset.dataset.contest;
    const max = Number(fieldset.dataset.max);
    const chosen = [...fieldset.querySelectorAll("input:checked")];
    const title = fieldset.querySelector(".contest-title").textContent.trim();
    if (chosen.length > max) problems.push(`${title}: choose at most ${max} (you chose ${chosen.length})`);
    selections[contest] = chosen.map((input) => input.value);
    review.push([title, chosen.map((input) => form.querySelector(`label[for="${input.id}"]`).textContent.trim())]);
  }
  return { selections, review, problems };
}

function showReview(review) {
  const list = $("js-choices");
  list.replaceChildren();
  for (const [title, options] of review) {
    const dt = document.createElement("dt");
    dt.textContent = title;
    const dd = document.createElement("dd");
    if (options.length) dd.textContent = options.join(", ");
    else dd.append(Object.assign(document.createElement("em"), { textContent: "no choice (abstain)" }));
    list.append(dt, dd);
  }
}

let sealedBallot = null; // sealed once per reviewed ballot; a retry resends exactly these bytes
let pendingSelections = null;

async function seal(selections) {
  const ballotId = newBallotId();
  const box = await sealBallot(b64decode(form.dataset.sealingKey), form.dataset.election, "online", ballotId,
                               selections, Number(form.dataset.paddedSize));
  return { ballot_id: ballotId, ciphertext: b64encode(box) };
}

async function cast() {
  const button = $("js-cast");
  button.disabled = true;
  $("js-change").disabled = true;
  showError("");
  try {
    sealedBallot = sealedBallot || await seal(pendingSelections);
    const response = await fetch(form.dataset.api, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ code: form.elements.code.value, sealed: sealedBallot }),
      credentials: "omit",
      cache: "no-store",
    });
    const answer = await response.json().catch(() => ({}));
    if (response.ok) return done(answer);
    if (response.status === 503) {
      showError(`${answer.message || "The service is busy."} Press "Cast my ballot" again in a few seconds.`);
      button.disabled = false;
      return;
    }
    showError(answer.message || `The ballot was not accepted (HTTP ${response.status}).`);
    $("js-change").disabled = false;
    if (response.status === 429) button.disabled = false;
  } catch (exc) {
    showError(`Your ballot could not be sent (${exc.message}). Check your connection and press "Cast my ballot" again.`);
    button.disabled = false;
  }
}

function done(receipt) {
  $("js-cast").hidden = true;
  $("js-change").hidden = true;
  $("js-tracker").textContent = receipt.tracker || "";
  const page = form.dataset.receiptUrl.replace("BALLOT_ID", sealedBallot.ballot_id);
  $("js-receipt").href = page;
  $("js-download").href = `${page}/receipt.json`;
  $("js-done").hidden = false;
  $("js-done").scrollIntoView({ block: "start" });
  form.elements.code.value = ""; // nothing left to resend with this code
}

if (form && form.dataset.sealingKey && window.crypto && crypto.subtle) {
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const { selections, review, problems } = readBallot();
    if (problems.length) return showError(problems.join("; "));
    showError("");
    pendingSelections = selections;
    sealedBallot = null;
    showReview(review);
    form.hidden = true;
    $("js-review").hidden = false;
    $("js-cast").focus();
  });
  $("js-change").addEventListener("click", () => {
    $("js-review").hidden = true;
    form.hidden = false;
    pendingSelections = sealedBallot = null;
  });
  $("js-cast").addEventListener("click", cast);
}
