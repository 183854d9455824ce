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
//
// On the code page (vote_code.html) the ballot is part of the page: the code is checked
// with the API and the ballot shown without a page load, so the whole vote is one GET page
// and Back or Reload never resubmits a form. A contest's "No choice" box (data-none, an
// empty value) is not an option: it leaves the contest blank, and the review says so.

import { newBallotId, sealBallot } from "./sealed.js";

const form = document.getElementById("ballot-form");
const $ = (id) => document.getElementById(id);

// The page's words in its language (data-words, from the gettext catalogue): "{name}" is a value.
const WORDS = JSON.parse((form && form.dataset.words) || "{}");
function t(key, values = {}) {
  return (WORDS[key] || key).replace(/\{(\w+)\}/g, (_, name) => String(values[name] ?? ""));
}
const LANGUAGE = document.documentElement.lang || "en";

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

/** A core message ("this code ...") as a sentence ("This code ..."). */
function sentence(text) {
  const trimmed = String(text || "").trim();
  if (!trimmed) return trimmed;
  const capital = trimmed[0].toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}

/** {contest: [option ids]} as chosen, with contest and option titles for the review. */
function readBallot() {
  const selections = {}, review = [], problems = [], blank = [];
  for (const fieldset of form.querySelectorAll("fieldset[data-contest]")) {
    const contest = fieldset.dataset.contest;
    const max = Number(fieldset.dataset.max);
    const chosen = [...fieldset.querySelectorAll("input:checked:not([data-none])")];
    const none = fieldset.querySelector("input[data-none]:checked");
    const title = fieldset.querySelector(".contest-title").textContent.trim();
    if (chosen.length > max) problems.push(t("tooMany", { title, max, n: chosen.length }));
    if (none && chosen.length) problems.push(t("noneAndChosen", { title, n: chosen.length }));
    if (!chosen.length) blank.push(title);
    selections[contest] = chosen.map((input) => input.value);
    review.push([title, chosen.map((input) => form.querySelector(`label[for="${input.id}"]`).textContent.trim())]);
  }
  return { selections, review, problems, blank };
}

function showBlank(blank) {
  const box = $("js-blank");
  box.hidden = !blank.length;
  box.textContent = blank.length
    ? `${t(blank.length === 1 ? "blankOne" : "blankMany", { n: blank.length, names: blank.join(", ") })} ${t("blankMeans")}`
    : "";
}

function showReview(review) {
  const list = $("js-choices");
  list.replaceChildren();
  for (const [title, options] of review) {
    const dt = document.createElement("dt");
    dt.textContent = title;
    const dd = document.createElement("dd");
    if (options.length) dd.textContent = options.join(", ");
    else dd.append(Object.assign(document.createElement("em"), { textContent: t("noChoice") }));
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
      headers: { "Content-Type": "application/json", Accept: "application/json", "Accept-Language": LANGUAGE },
      body: JSON.stringify({ code: form.elements.code.value, sealed: sealedBallot }),
      credentials: "omit",
      cache: "no-store",
    });
    const answer = await response.json().catch(() => ({}));
    if (response.ok) return done(answer);
    if (response.status === 503) {
      showError(`${answer.message ? sentence(answer.message) : t("busy")} ${t("pressAgain")}`);
      button.disabled = false;
      return;
    }
    showError(answer.message ? sentence(answer.message) : t("notAccepted", { status: response.status }));
    $("js-change").disabled = false;
    if (response.status === 429) button.disabled = false;
  } catch (exc) {
    showError(t("notSent", { error: exc.message }));
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
    const { selections, review, problems, blank } = readBallot();
    if (problems.length) return showError(problems.join("; "));
    showError("");
    pendingSelections = selections;
    sealedBallot = null;
    showReview(review);
    showBlank(blank);
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
  // "No choice" and the options of a choose-up-to contest exclude each other.
  form.addEventListener("change", (event) => {
    const input = event.target;
    if (input.type !== "checkbox" || !input.checked) return;
    const fieldset = input.closest("fieldset[data-contest]");
    const others = input.hasAttribute("data-none")
      ? fieldset.querySelectorAll("input:not([data-none])") : fieldset.querySelectorAll("input[data-none]");
    for (const other of others) other.checked = false;
  });
  startOnThisPage();
}

/** The code step on the same page: check the code with the API, then show the ballot. */
function startOnThisPage() {
  const codeForm = document.getElementById("code-form");
  if (!codeForm || !codeForm.dataset.statusUrl) return;
  const field = codeForm.elements.code;
  const fieldError = (message) => {
    let box = $("code-error");
    if (!box) {
      box = Object.assign(document.createElement("p"), { id: "code-error", className: "field-error" });
      box.setAttribute("role", "alert");
      field.before(box);
    }
    box.replaceChildren(Object.assign(document.createElement("strong"), { textContent: message }));
    field.setAttribute("aria-invalid", "true");
    field.setAttribute("aria-describedby", "code-hint code-error");
    field.focus();
  };
  codeForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = codeForm.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const response = await fetch(codeForm.dataset.statusUrl, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json", "Accept-Language": LANGUAGE },
        body: JSON.stringify({ code: field.value }),
        credentials: "omit",
        cache: "no-store",
      });
      const answer = await response.json().catch(() => ({}));
      if (!response.ok) return fieldError(answer.message ? sentence(answer.message) : t("codeNotChecked", { status: response.status }));
      if (answer.status !== "unused") {
        return fieldError(t(answer.status === "postal" ? "usedByPost" : "usedOnline"));
      }
      form.elements.code.value = field.value;
      $("code-step").hidden = true;
      $("js-ballot").hidden = false;
      form.querySelector("fieldset input").focus();
    } catch (exc) {
      fieldError(t("codeNetwork", { error: exc.message }));
    } finally {
      button.disabled = false;
    }
  });
}
