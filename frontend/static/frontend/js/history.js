// History: the caller's jobs (staff: everyone's) from GET /ocr/v1/jobs, with
// search, pagination, a detail view and delete.

import { ApiError, PAGE_SIZE, deleteJob, describeError, listJobs, portalConfig } from "./api.js";
import { copyWithFeedback } from "./clipboard.js";
import { announce, h } from "./dom.js";
import { formatDate, formatSeconds, gettext, statusLabel } from "./i18n.js";
import { jobDisplayName, jobLines, jobPreview, lowConfidenceNote, renderDownloads, renderLines, renderMeta } from "./render.js";

const EXCERPT_CHARS = 120;
const SEARCH_DELAY_MS = 350;

function excerpt(job) {
  if (job.status === "failed") return describeError(job.error).message;
  if (job.status !== "succeeded") return statusLabel(job.status);
  const text = jobLines(job)
    .map((line) => line.text)
    .join(" ");
  if (!text) return gettext("No text was found in this image.");
  return text.length > EXCERPT_CHARS ? `${text.slice(0, EXCERPT_CHARS)}…` : text;
}

export function initHistory({ historyPath }) {
  const form = document.getElementById("history-search");
  const input = document.getElementById("history-query");
  const summary = document.getElementById("history-summary");
  const list = document.getElementById("history-list");
  const pager = document.getElementById("history-pages");
  const pageLabel = document.getElementById("page-label");
  const prevButton = pager.querySelector("[data-page=prev]");
  const nextButton = pager.querySelector("[data-page=next]");
  const dialog = document.getElementById("detail-dialog");
  const detailBody = document.getElementById("detail-body");

  const state = { page: 1, search: "", results: [] };
  let inFlight = null;
  let searchTimer = 0;
  let detailJob = null;

  function url() {
    const params = new URLSearchParams();
    if (state.search) params.set("q", state.search);
    if (state.page > 1) params.set("page", String(state.page));
    const query = params.toString();
    return query ? `${historyPath}?${query}` : historyPath;
  }

  function readUrl() {
    const params = new URLSearchParams(window.location.search);
    state.search = (params.get("q") || "").trim();
    state.page = Math.max(1, Number.parseInt(params.get("page") || "1", 10) || 1);
    input.value = state.search;
  }

  function syncUrl() {
    if (window.location.pathname + window.location.search !== url()) {
      window.history.replaceState({ tab: "history" }, "", url());
    }
  }

  function renderItem(job) {
    const name = jobDisplayName(job);
    const open = () => openDetail(job);
    const thumb = h(
      "button",
      { type: "button", class: "thumb-btn", tabindex: "-1", "aria-hidden": "true", onclick: open },
      job.image_url ? h("img", { class: "thumb", src: job.image_url, alt: "", loading: "lazy", width: 72, height: 72 }) : null,
    );
    const facts = [
      h("time", { datetime: job.created_at || "" }, formatDate(job.created_at)),
      job.model_version ? h("span", {}, job.model_version) : null,
      job.time_cost !== null && job.time_cost !== undefined ? h("span", {}, formatSeconds(job.time_cost)) : null,
      portalConfig.isStaff && job.owner ? h("span", { class: "owner" }, `${gettext("Uploaded by")}: ${job.owner}`) : null,
    ].filter(Boolean);
    return h(
      "li",
      { class: "history-item", dataset: { jobId: job.job_id, status: job.status } },
      thumb,
      h(
        "div",
        { class: "history-info" },
        h(
          "div",
          { class: "history-title" },
          h("button", { type: "button", class: "link-btn file-name", title: name, onclick: open }, name),
          job.status !== "succeeded" ? h("span", { class: `status status-${job.status}` }, statusLabel(job.status)) : null,
        ),
        h("p", { class: "excerpt" }, excerpt(job)),
        h("p", { class: "history-meta" }, facts.flatMap((fact, i) => (i ? [h("span", { class: "sep", "aria-hidden": "true" }, "·"), fact] : [fact]))),
      ),
      h(
        "div",
        { class: "history-actions" },
        h("button", { type: "button", class: "btn btn-small", onclick: open, "aria-label": `${gettext("Open")}: ${name}` }, gettext("Open")),
        h(
          "button",
          { type: "button", class: "btn btn-small btn-danger-quiet", onclick: () => remove(job), "aria-label": `${gettext("Delete")}: ${name}` },
          gettext("Delete"),
        ),
      ),
    );
  }

  function render(data) {
    state.results = data.results || [];
    const count = Number(data.count || 0);
    if (count === 0) {
      summary.textContent = state.search ? gettext("Nothing found containing “%(query)s”.", { query: state.search }) : gettext("No uploads yet.");
    } else {
      summary.textContent = state.search
        ? gettext("%(count)s record(s) containing “%(query)s”", { count, query: state.search })
        : gettext("%(count)s record(s)", { count });
    }
    list.replaceChildren(...state.results.map(renderItem));
    const pages = Math.max(1, Math.ceil(count / PAGE_SIZE));
    pager.hidden = pages <= 1;
    pageLabel.textContent = gettext("Page %(page)s of %(pages)s", { page: state.page, pages });
    prevButton.disabled = !data.previous && state.page <= 1;
    nextButton.disabled = !data.next;
  }

  async function load() {
    if (inFlight) inFlight.abort();
    const controller = new AbortController();
    inFlight = controller;
    syncUrl();
    list.setAttribute("aria-busy", "true");
    summary.textContent = gettext("Loading…");
    try {
      const data = await listJobs({ page: state.page, search: state.search, signal: controller.signal });
      if (controller !== inFlight) return;
      render(data);
    } catch (err) {
      if (err.name === "AbortError") return;
      if (err instanceof ApiError && err.status === 404 && state.page > 1) {
        state.page = 1; // the page ran past the end, e.g. after a delete
        load();
        return;
      }
      list.replaceChildren();
      pager.hidden = true;
      summary.textContent = gettext("Could not load history: %(message)s", { message: err.message });
    } finally {
      if (controller === inFlight) {
        list.removeAttribute("aria-busy");
        inFlight = null;
      }
    }
  }

  function search(value) {
    window.clearTimeout(searchTimer);
    const query = value.trim();
    if (query === state.search) return;
    state.search = query;
    state.page = 1;
    load();
  }

  function openDetail(job) {
    detailJob = job;
    const name = jobDisplayName(job);
    const lines = jobLines(job);
    const preview = jobPreview(job, lines, job.image_url);
    const copyButton = h("button", { type: "button", class: "btn btn-small copy-one", disabled: !lines.length }, gettext("Copy text"));
    copyButton.addEventListener("click", () =>
      copyWithFeedback(copyButton, lines.map((line) => line.text).join("\n"), {
        copiedLabel: gettext("Copied"),
        failedLabel: gettext("Copy failed"),
        announce: (ok) => announce(ok ? gettext("Copied %(count)s line(s).", { count: lines.length }) : gettext("Copying failed; please select the text and copy it by hand.")),
      }),
    );
    const failed = job.status === "failed" ? describeError(job.error) : null;
    detailBody.replaceChildren(
      h("h3", { class: "file-name detail-name" }, name),
      h(
        "div",
        { class: "detail-grid" },
        h("div", { class: "card-preview" }, preview ? preview.element : null),
        h(
          "div",
          { class: "card-text" },
          failed
            ? h("div", { class: "card-message is-error" }, h("p", {}, gettext("Recognition failed: %(message)s", { message: failed.message })))
            : null,
          job.status === "succeeded" ? h("div", { class: "lines-head" }, h("h4", {}, gettext("Recognised text")), copyButton) : null,
          job.status === "succeeded" ? lowConfidenceNote(lines) : null,
          job.status === "succeeded" ? renderLines(lines, preview, job) : null,
          renderMeta(job, { showOwner: portalConfig.isStaff, showDate: true }),
          renderDownloads(job, { owner: job.owner === portalConfig.username }),
        ),
      ),
    );
    if (!dialog.open) dialog.showModal();
  }

  async function remove(job) {
    const name = jobDisplayName(job);
    if (!window.confirm(gettext("Delete the result for “%(name)s”? This cannot be undone.", { name }))) return;
    try {
      await deleteJob(job.job_id);
    } catch (err) {
      const message = gettext("Could not delete: %(message)s", { message: err.message });
      summary.textContent = message;
      announce(message);
      return;
    }
    if (dialog.open && detailJob && detailJob.job_id === job.job_id) dialog.close();
    announce(gettext("Deleted “%(name)s”.", { name }));
    if (state.results.length === 1 && state.page > 1) state.page -= 1;
    await load();
    summary.textContent = `${gettext("Deleted “%(name)s”.", { name })} ${summary.textContent}`;
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    search(input.value);
  });
  input.addEventListener("input", () => {
    window.clearTimeout(searchTimer);
    searchTimer = window.setTimeout(() => search(input.value), SEARCH_DELAY_MS);
  });
  // Turning the page starts reading from the top of the new page.
  async function turnPage(step) {
    state.page = Math.max(1, state.page + step);
    await load();
    const heading = document.getElementById("history-heading");
    heading.focus({ preventScroll: true });
    heading.scrollIntoView({ block: "start" });
  }
  prevButton.addEventListener("click", () => turnPage(-1));
  nextButton.addEventListener("click", () => turnPage(1));
  // An upload finished while the history is on screen: show it.
  let refreshTimer = 0;
  document.addEventListener("ocr:job-finished", () => {
    if (list.closest("[data-panel]").hidden) return;
    window.clearTimeout(refreshTimer);
    refreshTimer = window.setTimeout(load, 500);
  });

  dialog.addEventListener("click", (event) => {
    const action = event.target.closest("[data-action]")?.dataset.action;
    if (action === "close" || event.target === dialog) dialog.close();
    if (action === "delete" && detailJob) remove(detailJob);
  });

  return {
    /** Show the history: from the address bar on first load / back-forward. */
    activate({ fromUrl = false } = {}) {
      if (fromUrl) readUrl();
      load();
    },
    url,
  };
}
