// The one way this portal talks to the server: the public REST API under
// /ocr/v1/, with the browser's session cookie and the CSRF token.

import { gettext } from "./i18n.js";

const config = JSON.parse(document.getElementById("portal-config").textContent);

export const API_ROOT = config.apiRoot;
export const PAGE_SIZE = 20;

/** A failed API call. `message` is for people, in the UI language; `detail`
 *  is the server's own message when it adds something to that. */
export class ApiError extends Error {
  constructor({ status, code, message, detail = "", retryAfter = null, body = null }) {
    super(message);
    this.name = "ApiError";
    this.body = body; // the whole answer, for errors that carry more (the promotion gate's 409)
    this.status = status;
    this.code = code;
    this.detail = detail;
    this.retryAfter = retryAfter;
  }

  /** Worth trying again later: the network, rate limits, an overloaded server. */
  get transient() {
    return this.status === 0 || this.status === 429 || this.status === 502 || this.status === 503 || this.status === 504;
  }
}

function readCookie(name) {
  for (const part of document.cookie.split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key === name) return decodeURIComponent(rest.join("="));
  }
  return "";
}

function csrfToken() {
  const fromCookie = readCookie("csrftoken");
  if (fromCookie) return fromCookie;
  // Fallback for sites that make the cookie HttpOnly: the token the page rendered.
  const field = document.querySelector("input[name=csrfmiddlewaretoken]");
  return field ? field.value : "";
}

function statusMessage(status) {
  if (status === 0) return gettext("Cannot reach the server. Check your connection and try again.");
  if (status === 401) return gettext("Your session has expired. Please log in again.");
  if (status === 403) return gettext("You are not allowed to do this.");
  if (status === 413) return gettext("The image is over the size limit.");
  if (status === 429) return gettext("Too many requests. Please try again shortly.");
  if (status === 503) return gettext("The OCR service is unavailable right now. Please try again later.");
  if (status >= 500) return gettext("Server error (%(status)s). Please try again later.", { status });
  return gettext("Recognition failed.");
}

/** The UI's own words for an API error code it knows, else "". */
function codeMessage(code) {
  const messages = {
    bad_base64: gettext("The image data could not be decoded."),
    not_an_image: gettext("The file is not a valid image."),
    unsupported_format: gettext("This image format is not supported."),
    image_too_small: gettext("The image is too small to read."),
    missing_image: gettext("The request contained no image."),
    too_large: gettext("The image is over the size limit."),
    image_too_large: gettext("The image has too many pixels; please shrink it first."),
    truncated_image: gettext("The image data is incomplete or corrupt."),
    unavailable: gettext("The OCR service is unavailable right now. Please try again later."),
    throttled: gettext("Too many requests. Please try again shortly."),
    bad_hotwords: gettext("The vocabulary has too many words, or a word that is too long."),
  };
  return Object.prototype.hasOwnProperty.call(messages, code) ? messages[code] : "";
}

/** People-facing text for an API error object {code, message}. A known code
 *  gets its message in the UI language, followed by the server's own words. */
export function describeError(error, status = 0) {
  const code = (error && error.code) || "";
  const serverMessage = (error && (error.message || error.detail)) || "";
  const message = codeMessage(code);
  if (message) {
    return { code, message, detail: serverMessage && serverMessage !== message ? serverMessage : "" };
  }
  if (serverMessage) return { code, message: serverMessage, detail: "" };
  return { code, message: statusMessage(status), detail: "" };
}

function goToLogin() {
  const next = window.location.pathname + window.location.search;
  window.location.assign(`${config.loginUrl}?next=${encodeURIComponent(next)}`);
}

/** Turn an answer into its data, or throw the ApiError it stands for. */
function outcome(status, data, retryAfterHeader) {
  if (status >= 200 && status < 300) return data;
  // The platform's shape is {"success": false, "error": {code, message}};
  // anything else in front of it (a proxy) may answer {"detail": "..."} or HTML.
  const error = (data && data.error) || (data && data.detail ? { code: data.code || "", message: data.detail } : null);
  const code = (error && error.code) || `http_${status}`;
  if (status === 401 || code === "not_authenticated") {
    goToLogin();
  }
  const described = describeError(error, status);
  const retryAfter = retryAfterHeader === null || retryAfterHeader === "" ? null : Number(retryAfterHeader);
  throw new ApiError({
    status,
    code,
    message: described.message,
    detail: described.detail,
    retryAfter: Number.isFinite(retryAfter) && retryAfter >= 0 ? retryAfter : null,
    body: data,
  });
}

function parseJson(text) {
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return null;
  }
}

async function request(path, { method = "GET", body, signal, json = false } = {}) {
  const url = path.startsWith("/") ? path : API_ROOT + path;
  const headers = { Accept: "application/json" };
  if (json) headers["Content-Type"] = "application/json";
  if (method !== "GET" && method !== "HEAD") headers["X-CSRFToken"] = csrfToken();
  let response;
  let text;
  try {
    response = await fetch(url, { method, body, headers, signal, credentials: "same-origin" });
    text = await response.text();
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError({ status: 0, code: "network", message: gettext("Cannot reach the server. Check your connection and try again.") });
  }
  return outcome(response.status, parseJson(text), response.headers.get("Retry-After"));
}

/**
 * Submit one image without waiting: 202 {job_id, status, status_url, ...}.
 * XMLHttpRequest rather than fetch, for upload progress on slow phone networks.
 * `hotwords` go as repeated multipart fields, the form of a list the API reads.
 */
export function submitImage(file, filename, { onProgress, hotwords = [] } = {}) {
  const form = new FormData();
  form.append("image", file, filename);
  form.append("filename", filename);
  form.append("wait", "false");
  for (const word of hotwords) form.append("hotwords", word);
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `${API_ROOT}recognize`);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.setRequestHeader("X-CSRFToken", csrfToken());
    if (onProgress) {
      xhr.upload.addEventListener("progress", (event) => {
        if (event.lengthComputable && event.total > 0) onProgress(event.loaded / event.total);
      });
    }
    xhr.addEventListener("error", () => reject(new ApiError({ status: 0, code: "network", message: gettext("Cannot reach the server. Check your connection and try again.") })));
    xhr.addEventListener("load", () => {
      try {
        resolve(outcome(xhr.status, parseJson(xhr.responseText), xhr.getResponseHeader("Retry-After")));
      } catch (err) {
        reject(err);
      }
    });
    xhr.send(form);
  });
}

export function jobUrl(jobId) {
  return `${API_ROOT}jobs/${encodeURIComponent(jobId)}`;
}

export function getJob(urlOrId, options) {
  const url = String(urlOrId).startsWith("/") ? urlOrId : jobUrl(urlOrId);
  return request(url, options);
}

export function listJobs({ page = 1, search = "", signal } = {}) {
  const params = new URLSearchParams({ page: String(page), page_size: String(PAGE_SIZE) });
  if (search) params.set("search", search);
  return request(`jobs?${params}`, { signal });
}

/** Fix the text of one recognised line; the fixed line becomes labelled training data. */
export function correctLine(jobId, index, text) {
  return request(`${jobUrl(jobId)}/lines/${index}/correction`, {
    method: "PUT",
    body: JSON.stringify({ text }),
    json: true,
  });
}

/** The user's own vocabulary: {words, updated_at, max_words, max_word_chars}. */
export function getVocabulary() {
  return request("vocabulary");
}

/** Replace the user's vocabulary; answers it as stored (cleaned by the server). */
export function saveVocabulary(words) {
  return request("vocabulary", { method: "PUT", body: JSON.stringify({ words }), json: true });
}

export function deleteJob(jobId) {
  return request(jobUrl(jobId), { method: "DELETE" });
}

// --- staff: models, their reports, datasets and adaptation jobs (docs/lifecycle.md) -------------

export function listModels() {
  return request("models?page_size=50");
}

/** A model's report beside the active model's, with the promotion gate's verdict. */
export function modelReport(id) {
  return request(`models/${id}/report`);
}

/** Promote through the gate; an `overrideReason` promotes past it (recorded in the audit log). */
export function promoteModel(id, overrideReason = "") {
  const body = overrideReason ? { override_reason: overrideReason } : {};
  return request(`models/${id}/promote`, { method: "POST", body: JSON.stringify(body), json: true });
}

export function listDatasets() {
  return request("datasets?page_size=50");
}

export function listTrainingJobs() {
  return request("distill-jobs?page_size=20");
}

/** Adapt the served model to a dataset (an adaptation job on the training queue). */
export function startAdaptation(datasetId) {
  const body = { kind: "adapt", params: { data_source: "dataset", dataset: datasetId } };
  return request("distill-jobs", { method: "POST", body: JSON.stringify(body), json: true });
}

/** A warm-started distillation of the served recogniser from the teacher (docs/models.md). */
export function startWarmDistillation(steps, cacheLines) {
  const body = { kind: "distill", params: { warm_start: true, steps, cache_lines: cacheLines } };
  return request("distill-jobs", { method: "POST", body: JSON.stringify(body), json: true });
}

export const portalConfig = config;
