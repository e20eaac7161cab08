// Uploading: files arrive by picker, drag-and-drop or paste; each becomes a
// card that follows its job (submitted with wait=false and the user's
// vocabulary as hotwords, then polled) until the result is shown in place.

import { ApiError, describeError, getJob, portalConfig, submitImage } from "./api.js";
import { copyWithFeedback } from "./clipboard.js";
import { announce, h, present } from "./dom.js";
import { formatBytes, gettext, statusLabel } from "./i18n.js";
import { createPreview, jobLines, jobPreview, lowConfidenceNote, renderDownloads, renderLines, renderMeta } from "./render.js";
import { savedWords } from "./vocabulary.js";

const IMAGE_EXTENSION = /\.(png|jpe?g|jfif|webp|bmp|tiff?|gif|pdf)$/i;
const MAX_PARALLEL_UPLOADS = 3;
const POLL_DELAYS_MS = [250, 400, 600, 900, 1200, 1600, 2000];
const POLL_GIVE_UP_MS = 5 * 60 * 1000;
const POLL_MAX_FAILURES = 8;
const SUBMIT_ATTEMPTS = 4;
const BUSY_STATES = new Set(["uploading", "queued", "running"]);

const sleep = (ms) => new Promise((resolve) => window.setTimeout(resolve, ms));

/** Why a file must not be sent, or null. The server stays the authority. */
export function rejectReason(file, maxBytes) {
  const name = file.name || gettext("Untitled image");
  const looksLikeImage =
    (file.type && (file.type.startsWith("image/") || file.type === "application/pdf")) || IMAGE_EXTENSION.test(file.name || "");
  if (!looksLikeImage) return gettext("“%(name)s” is not an image or a PDF. Please choose a PNG, JPEG, WebP, BMP or TIFF image, or a PDF.", { name });
  if (file.size === 0) return gettext("“%(name)s” is an empty file.", { name });
  if (file.size > maxBytes) {
    return gettext("“%(name)s” is %(size)s, over the %(limit)s limit.", { name, size: formatBytes(file.size), limit: formatBytes(maxBytes) });
  }
  return null;
}

function pastedName(file) {
  const stamp = new Date().toISOString().replace(/\D/g, "").slice(0, 14);
  const ext = (file.type.split("/")[1] || "png").replace("jpeg", "jpg").replace(/[^a-z0-9]/gi, "");
  return `pasted-${stamp}.${ext}`;
}

/** One file on its way through the API, and the card that shows it. */
class UploadItem {
  constructor(file, { onChange }) {
    this.file = file;
    this.name = file.name || gettext("Untitled image");
    this.state = "checking";
    this.job = null;
    this.removed = false;
    this.onChange = onChange;
    this.objectUrl = file.type && file.type.startsWith("image/") ? URL.createObjectURL(file) : null;
    this.preview = null;

    this.statusEl = h("span", { class: "status" });
    this.messageEl = h("div", { class: "card-message", hidden: true });
    this.textEl = h("div", { class: "card-text" }, this.messageEl);
    this.previewSlot = h("div", { class: "card-preview" });
    this.removeButton = h(
      "button",
      { type: "button", class: "icon-btn", "aria-label": `${gettext("Remove this result")}: ${this.name}`, title: gettext("Remove this result") },
      "×",
    );
    this.card = h(
      "li",
      { class: "result-card", "data-state": "checking" },
      h(
        "div",
        { class: "card-head" },
        h("h3", { class: "file-name", title: this.name }, this.name),
        h("span", { class: "file-size" }, formatBytes(file.size)),
        this.statusEl,
        this.removeButton,
      ),
      h("div", { class: "card-body" }, this.previewSlot, this.textEl),
    );
    if (this.objectUrl) {
      this.preview = createPreview(this.objectUrl, gettext("Preview of %(name)s", { name: this.name }));
      this.preview.img.addEventListener("error", () => this.previewSlot.classList.add("no-preview"), { once: true });
      this.previewSlot.append(this.preview.element);
    } else {
      this.previewSlot.classList.add("no-preview");
    }
  }

  setState(state, message = null) {
    if (state === this.state && !message && this.messageEl.hidden) return; // a poll with no news
    this.state = state;
    this.card.dataset.state = state;
    const busy = BUSY_STATES.has(state);
    this.card.setAttribute("aria-busy", busy ? "true" : "false");
    this.statusEl.replaceChildren(
      ...present(
        busy ? h("span", { class: "spinner", "aria-hidden": "true" }) : null,
        h("span", { class: "status-label" }, statusLabel(state)),
      ),
    );
    this.statusEl.className = `status status-${state}`;
    this.showMessage(message);
    this.onChange(this);
  }

  /** A PDF being read: which page the worker has reached (the job's progress). */
  setPages(progress) {
    if (this.state !== "running" || !progress || !progress.pages) return;
    const label = this.statusEl.querySelector(".status-label");
    if (label) label.textContent = gettext("Reading page %(done)s of %(pages)s", { done: progress.pages_done, pages: progress.pages });
  }

  /** Show how much of the upload has gone, while it goes. */
  setProgress(fraction) {
    if (this.state !== "uploading") return;
    const label = this.statusEl.querySelector(".status-label");
    if (label) label.textContent = `${gettext("Uploading")} ${Math.floor(fraction * 100)}%`;
  }

  showMessage(message, { error = false } = {}) {
    if (!message) {
      this.messageEl.hidden = true;
      this.messageEl.replaceChildren();
      return;
    }
    const { text, detail } = typeof message === "string" ? { text: message, detail: "" } : message;
    this.messageEl.hidden = false;
    this.messageEl.className = `card-message${error ? " is-error" : ""}`;
    this.messageEl.setAttribute("role", error ? "alert" : "status");
    this.messageEl.replaceChildren(
      ...present(h("p", {}, text), detail ? h("p", { class: "card-detail" }, gettext("Server says: "), detail) : null),
    );
  }

  fail(message, detail = "") {
    this.setState("failed");
    this.showMessage({ text: message, detail }, { error: true });
    announce(`${this.name}: ${message}`);
  }

  reject(message) {
    this.setState("rejected");
    this.showMessage({ text: message, detail: "" }, { error: true });
    announce(message);
  }

  showResult(job) {
    this.job = job;
    const lines = jobLines(job);
    this.setState("succeeded");
    if (Array.isArray(job.pages) && job.pages.length && job.image_url) {
      // a PDF: its pages as the job read them, each with its lines
      this.preview = jobPreview(job, lines, null);
      this.previewSlot.classList.remove("no-preview");
      this.previewSlot.replaceChildren(this.preview.element);
    } else if (this.preview) {
      this.preview.showBoxes(lines, job.width, job.height);
    }
    const copyButton = h("button", { type: "button", class: "btn btn-small copy-one", disabled: !lines.length }, gettext("Copy text"));
    copyButton.addEventListener("click", () =>
      copyWithFeedback(copyButton, this.lines().join("\n"), {
        copiedLabel: gettext("Copied"),
        failedLabel: gettext("Copy failed"),
        announce: (ok) => announce(ok ? gettext("Copied %(count)s line(s).", { count: lines.length }) : gettext("Copying failed; please select the text and copy it by hand.")),
      }),
    );
    this.textEl.append(
      ...present(
        h("div", { class: "lines-head" }, h("h4", {}, gettext("Recognised text")), copyButton),
        lowConfidenceNote(lines),
        renderLines(lines, this.preview, job),
        renderMeta(job),
        renderDownloads(job),
      ),
    );
    announce(`${this.name}: ${gettext("Done")}`);
  }

  /** The text lines this card shows (empty unless it succeeded). */
  lines() {
    return this.state === "succeeded" && this.job ? jobLines(this.job).map((line) => line.text) : [];
  }

  dispose() {
    this.removed = true;
    if (this.objectUrl) URL.revokeObjectURL(this.objectUrl);
    this.card.remove();
  }
}

export function initUpload({ onFilesArriving }) {
  const dropzone = document.getElementById("dropzone");
  const fileInput = document.getElementById("file-input");
  const chooseButton = document.getElementById("choose-files");
  const results = document.getElementById("results");
  const emptyNote = document.getElementById("results-empty");
  const copyAllButton = document.getElementById("copy-all");
  const clearButton = document.getElementById("clear-results");
  const limitsHint = document.getElementById("limits-hint");
  const maxBytes = portalConfig.maxUploadBytes;

  limitsHint.textContent = gettext("PNG, JPEG, WebP, BMP or TIFF; several at once; up to %(size)s each.", { size: formatBytes(maxBytes) });

  const items = new Map(); // card element -> UploadItem
  const waiting = [];
  let uploading = 0;
  let following = 0;

  function itemsInOrder() {
    return Array.from(results.children, (card) => items.get(card)).filter(Boolean);
  }

  function refreshToolbar() {
    const all = itemsInOrder();
    emptyNote.hidden = all.length > 0;
    clearButton.disabled = all.length === 0;
    copyAllButton.disabled = !all.some((item) => item.lines().length > 0);
  }

  async function submit(item) {
    for (let attempt = 1; ; attempt += 1) {
      item.setState("uploading");
      try {
        // The saved vocabulary goes with every upload; failing to read it fails (or retries) the upload.
        const hotwords = await savedWords();
        return await submitImage(item.file, item.name, { hotwords, onProgress: (fraction) => item.setProgress(fraction) });
      } catch (err) {
        if (!(err instanceof ApiError)) throw err;
        if (!err.transient || attempt >= SUBMIT_ATTEMPTS || item.removed) {
          item.fail(err.message, err.detail);
          return null;
        }
        const seconds = err.retryAfter ?? 2 ** attempt;
        item.showMessage(gettext("Server busy, retrying in %(seconds)s s…", { seconds: Math.ceil(seconds) }));
        await sleep(seconds * 1000);
        if (item.removed) return null;
      }
    }
  }

  /** Take a job object from the API and move the card along. True when final. */
  function applyJob(item, job) {
    const finished = () => document.dispatchEvent(new CustomEvent("ocr:job-finished", { detail: { jobId: job.job_id } }));
    if (job.status === "succeeded") {
      item.showResult(job);
      finished();
      return true;
    }
    if (job.status === "queued" || job.status === "running") {
      item.setState(job.status);
      item.setPages(job.progress);
      return false;
    }
    if (job.status === "failed" || job.success === false) {
      const { message, detail } = describeError(job.error);
      item.fail(gettext("Recognition failed: %(message)s", { message }), detail);
      finished();
      return true;
    }
    // A 202 answer carries only {job_id, status, status_url}: keep following it.
    item.setState("queued");
    return false;
  }

  async function follow(item, statusUrl) {
    const started = Date.now();
    let failures = 0;
    let wait = 0;
    following += 1;
    try {
      for (let round = 0; !item.removed; round += 1) {
        if (Date.now() - started > POLL_GIVE_UP_MS) {
          item.showMessage(gettext("Still processing; the result will appear in History later."));
          return;
        }
        // Many jobs in flight poll less often each, to stay well inside the API's rate limit.
        const spread = Math.max(1, following / 3);
        await sleep(wait || POLL_DELAYS_MS[Math.min(round, POLL_DELAYS_MS.length - 1)] * spread);
        wait = 0;
        if (item.removed) return;
        let job;
        try {
          job = await getJob(statusUrl);
          failures = 0;
        } catch (err) {
          if (!(err instanceof ApiError)) throw err;
          if (err.status === 429) {
            wait = (err.retryAfter ?? 5) * 1000; // throttled: wait as told, it is not a failure
            continue;
          }
          failures += 1;
          if (!err.transient || failures >= POLL_MAX_FAILURES) {
            item.fail(err.message, err.detail);
            return;
          }
          continue;
        }
        if (applyJob(item, job)) return;
      }
    } finally {
      following -= 1;
    }
  }

  async function process(item) {
    const accepted = await submit(item);
    if (!accepted || item.removed) return null;
    if (applyJob(item, accepted)) return null;
    return accepted.status_url || accepted.job_id;
  }

  function pump() {
    while (uploading < MAX_PARALLEL_UPLOADS && waiting.length) {
      const item = waiting.shift();
      if (item.removed) continue;
      uploading += 1;
      const crash = (err) => {
        item.fail(gettext("Recognition failed."), String(err && err.message ? err.message : err));
        return null;
      };
      process(item)
        .catch(crash)
        .then((statusUrl) => {
          uploading -= 1;
          pump();
          if (statusUrl) follow(item, statusUrl).catch(crash);
        });
    }
  }

  function addFiles(fileList, { pasted = false } = {}) {
    const files = Array.from(fileList || []);
    if (!files.length) return;
    if (onFilesArriving) onFilesArriving();
    const batch = document.createDocumentFragment();
    const fresh = files.map((file) => {
      const named = pasted ? new File([file], pastedName(file), { type: file.type }) : file;
      const item = new UploadItem(named, { onChange: refreshToolbar });
      item.removeButton.addEventListener("click", () => {
        const next = item.card.nextElementSibling || item.card.previousElementSibling;
        items.delete(item.card);
        item.dispose();
        refreshToolbar();
        (next ? next.querySelector(".icon-btn") : chooseButton).focus();
      });
      items.set(item.card, item);
      batch.append(item.card);
      return item;
    });
    results.prepend(batch); // newest batch on top, in the order chosen
    for (const item of fresh) {
      const reason = rejectReason(item.file, maxBytes);
      if (reason) {
        item.reject(reason);
      } else {
        item.setState("queued");
        waiting.push(item);
      }
    }
    refreshToolbar();
    pump();
  }

  // The button opens the (hidden) file input; the input itself stays out of the tab order.
  chooseButton.addEventListener("click", () => fileInput.click());
  // A click anywhere on the drop zone opens the picker too (the button is the keyboard way in).
  dropzone.addEventListener("click", (event) => {
    if (event.target === fileInput || chooseButton.contains(event.target)) return;
    fileInput.click();
  });
  fileInput.addEventListener("change", () => {
    addFiles(fileInput.files);
    fileInput.value = "";
  });

  // Drag-and-drop: anywhere on the page counts, the drop zone lights up.
  let dragDepth = 0;
  const hasFiles = (event) => Array.from(event.dataTransfer?.types || []).includes("Files");
  document.addEventListener("dragenter", (event) => {
    if (!hasFiles(event)) return;
    dragDepth += 1;
    dropzone.classList.add("is-dragging");
  });
  document.addEventListener("dragleave", (event) => {
    if (!hasFiles(event)) return;
    dragDepth = Math.max(0, dragDepth - 1);
    if (dragDepth === 0) dropzone.classList.remove("is-dragging");
  });
  document.addEventListener("dragover", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
  });
  document.addEventListener("drop", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    dragDepth = 0;
    dropzone.classList.remove("is-dragging");
    addFiles(event.dataTransfer.files);
  });

  // Paste: screenshots and copied image files.
  document.addEventListener("paste", (event) => {
    const files = Array.from(event.clipboardData?.files || []);
    if (!files.length) return; // ordinary text paste, e.g. into the search box
    event.preventDefault();
    addFiles(files, { pasted: true });
  });

  copyAllButton.addEventListener("click", () => {
    const lines = itemsInOrder().flatMap((item) => item.lines());
    copyWithFeedback(copyAllButton, lines.join("\n"), {
      copiedLabel: gettext("Copied"),
      failedLabel: gettext("Copy failed"),
      announce: (ok) => announce(ok ? gettext("Copied %(count)s line(s).", { count: lines.length }) : gettext("Copying failed; please select the text and copy it by hand.")),
    });
  });

  clearButton.addEventListener("click", () => {
    for (const item of itemsInOrder()) item.dispose();
    items.clear();
    waiting.length = 0;
    refreshToolbar();
    chooseButton.focus();
  });

  // Leaving while files are still being sent would lose them (queued jobs are safe: they land in History).
  window.addEventListener("beforeunload", (event) => {
    if (uploading > 0 || waiting.some((item) => !item.removed)) event.preventDefault();
  });

  refreshToolbar();
  return { addFiles };
}
