// Staff only: the models tab. Adapt the served model to one of the deployment's datasets, follow
// the training jobs, and see each registered model's report beside the active model's before
// promoting it through the gate (or past it, with a written reason). Everything comes from the
// REST API's lifecycle endpoints (docs/lifecycle.md).

import {
  ApiError,
  listDatasets,
  listModels,
  listTrainingJobs,
  modelReport,
  promoteModel,
  startAdaptation,
  startWarmDistillation,
} from "./api.js";
import { announce, h, present } from "./dom.js";
import { formatDate, gettext } from "./i18n.js";

const REFRESH_MS = 5000;

function percent(value) {
  return value === null || value === undefined ? "–" : `${Number(value).toFixed(2)} %`;
}

function datasetLabel(dataset) {
  const report = dataset.report || {};
  const notes = [
    gettext("%(count)s lines", { count: dataset.lines }),
    (report.duplicates || []).length ? gettext("%(count)s duplicates left out", { count: report.duplicates.length }) : null,
    (report.skipped || []).length ? gettext("%(count)s lines could not be used", { count: report.skipped.length }) : null,
    (report.unproducible || []).length
      ? gettext("%(count)s lines with characters the model cannot produce", { count: report.unproducible.length })
      : null,
  ].filter(Boolean);
  return `${dataset.name} (${notes.join(", ")})`;
}

function jobStatusLabel(status) {
  const labels = {
    queued: gettext("Queued"),
    running: gettext("Training"),
    succeeded: gettext("Done"),
    failed: gettext("Failed"),
    cancelled: gettext("Cancelled"),
  };
  return labels[status] || status;
}

function jobStatusText(job) {
  const progress = job.progress || {};
  const parts = [jobStatusLabel(job.status)];
  if (progress.steps) parts.push(gettext("step %(step)s of %(steps)s", { step: progress.step || 0, steps: progress.steps }));
  if (progress.dev_char_accuracy !== null && progress.dev_char_accuracy !== undefined) {
    const label = job.kind === "adapt" ? gettext("held-back lines") : gettext("dev lines");
    parts.push(`${label} ${percent(100 * progress.dev_char_accuracy)}`);
  }
  if (job.result_model) parts.push(gettext("model %(id)s registered", { id: job.result_model }));
  return parts.join(" · ");
}

/** The side-by-side table of a report answer (GET /ocr/v1/models/<id>/report). */
function comparisonTable(answer) {
  const rows = Object.entries(answer.comparison || {}).map(([subset, row]) =>
    h(
      "tr",
      { class: row.delta < -answer.margin ? "is-worse" : "" },
      h("th", { scope: "row" }, subset),
      h("td", {}, percent(row.candidate)),
      h("td", {}, percent(row.active)),
      h("td", {}, `${row.delta > 0 ? "+" : ""}${row.delta.toFixed(2)}`),
    ),
  );
  return h(
    "table",
    { class: "report-table" },
    h(
      "thead",
      {},
      h("tr", {}, h("th", { scope: "col" }, gettext("Subset")), h("th", { scope: "col" }, gettext("This model")), h("th", { scope: "col" }, gettext("Active model")), h("th", { scope: "col" }, gettext("Difference"))),
    ),
    h("tbody", {}, rows),
  );
}

function verdictText(answer) {
  if (answer.passes) return gettext("The gate lets it through.");
  const worse = (answer.shortfalls || []).map((s) => `${s.subset} ${s.delta.toFixed(2)}`).join(", ");
  if (worse) return gettext("The gate refuses it: it reads worse than the active model on %(subsets)s.", { subsets: worse });
  return gettext("The gate refuses it: %(problem)s", { problem: answer.problem || "" });
}

export function initModels() {
  const datasetSelect = document.getElementById("adapt-dataset");
  const adaptForm = document.getElementById("adapt-form");
  const adaptStatus = document.getElementById("adapt-status");
  const distillForm = document.getElementById("distill-form");
  const distillStatus = document.getElementById("distill-status");
  const jobList = document.getElementById("training-jobs");
  const modelList = document.getElementById("model-list");
  let timer = 0;

  function say(element, text, error = false) {
    element.className = `form-status${error ? " is-error" : ""}`;
    element.replaceChildren(...present(text ? h("p", {}, text) : null));
  }

  async function loadDatasets() {
    const page = await listDatasets();
    datasetSelect.replaceChildren(...page.results.map((d) => h("option", { value: d.id }, datasetLabel(d))));
    datasetSelect.disabled = page.results.length === 0;
    adaptForm.querySelector("button").disabled = page.results.length === 0;
    if (!page.results.length) say(adaptStatus, gettext("No dataset yet: corrections, an uploaded zip or lines chosen from jobs make one."));
  }

  async function loadJobs() {
    const page = await listTrainingJobs();
    jobList.replaceChildren(
      ...page.results.map((job) =>
        h("li", { class: "training-job", dataset: { jobId: job.id, status: job.status } }, h("strong", {}, `#${job.id} ${job.kind}`), " ", jobStatusText(job)),
      ),
    );
    window.clearTimeout(timer);
    if (page.results.some((job) => job.status === "queued" || job.status === "running")) {
      timer = window.setTimeout(() => refresh().catch(() => {}), REFRESH_MS);
    }
  }

  async function compare(model, box) {
    const answer = await modelReport(model.id);
    const reason = h("textarea", { rows: 2, class: "override-reason", "aria-label": gettext("Why promote it anyway") });
    const status = h("div", { class: "form-status", role: "status" });
    const promote = async (withReason) => {
      try {
        await promoteModel(model.id, withReason ? reason.value.trim() : "");
        say(status, gettext("%(label)s is now the active model.", { label: model.label }));
        announce(gettext("%(label)s is now the active model.", { label: model.label }));
        await loadModels();
      } catch (err) {
        if (!(err instanceof ApiError)) throw err;
        const gate = err.body && err.body.gate;
        say(status, gate ? verdictText(gate) : err.message, true);
      }
    };
    const override = h("div", { class: "override", hidden: answer.passes || model.is_active },
      h("label", {}, gettext("Why promote it anyway"), reason),
      h("button", { type: "button", class: "btn btn-danger", onclick: () => (reason.value.trim() ? promote(true) : say(status, gettext("Write why first."), true)) }, gettext("Promote anyway")),
    );
    box.replaceChildren(
      h("p", { class: "verdict" }, answer.active ? gettext("Compared with %(label)s.", { label: answer.active.label }) : gettext("No active model.")),
      comparisonTable(answer),
      h("p", { class: answer.passes ? "verdict" : "verdict is-error" }, verdictText(answer)),
      model.is_active ? null : h("button", { type: "button", class: "btn btn-primary", onclick: () => promote(false) }, gettext("Promote")),
      override,
      status,
    );
  }

  function renderModel(model) {
    const box = h("div", { class: "model-report" });
    const suite = (model.report && model.report.suite) || {};
    const summary = Object.entries(suite).map(([k, v]) => `${k} ${percent(v)}`).join(" · ") || gettext("no report yet");
    return h(
      "li",
      { class: "model-item", dataset: { modelId: model.id } },
      h("div", { class: "model-head" },
        h("strong", {}, model.label),
        model.is_active ? h("span", { class: "badge badge-staff" }, gettext("active")) : null,
        h("span", { class: "muted" }, `${model.kind} · ${formatDate(model.created_at)}`),
      ),
      h("p", { class: "muted" }, summary),
      h("button", { type: "button", class: "btn btn-quiet", onclick: () => compare(model, box).catch((err) => say(box, err.message, true)) }, gettext("Compare with the active model")),
      box,
    );
  }

  async function loadModels() {
    const page = await listModels();
    modelList.replaceChildren(...page.results.map(renderModel));
  }

  async function refresh() {
    await Promise.all([loadDatasets(), loadJobs(), loadModels()]);
  }

  // a form that starts a training job: the job's number when it is queued, the API's refusal if not
  function starts(form, status, start, started) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        const job = await start();
        say(status, started(job));
        await loadJobs();
      } catch (err) {
        if (!(err instanceof ApiError)) throw err;
        say(status, err.message, true);
      }
    });
  }

  starts(adaptForm, adaptStatus, () => startAdaptation(Number(datasetSelect.value)), (job) =>
    gettext("Adaptation job %(id)s started.", { id: job.id }),
  );
  starts(
    distillForm,
    distillStatus,
    () => startWarmDistillation(Number(distillForm.elements.steps.value), Number(distillForm.elements.cache_lines.value)),
    (job) => gettext("Distillation job %(id)s started.", { id: job.id }),
  );

  return {
    async activate() {
      try {
        await refresh();
      } catch (err) {
        if (!(err instanceof ApiError)) throw err;
        say(adaptStatus, err.message, true);
      }
    },
  };
}
