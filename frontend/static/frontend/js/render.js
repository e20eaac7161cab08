// Showing one OCR result: the image with its line boxes drawn over it, the
// lines with their confidence, and the job's facts. Used by the upload cards
// and by the history detail view alike.

import { API_ROOT, correctLine } from "./api.js";
import { h } from "./dom.js";
import { formatDate, formatPercent, formatSeconds, gettext } from "./i18n.js";

/** Lines below this confidence (0..1) are flagged for the reader to check. With the served
 * PP-OCRv6 tiny, 0.9 flags 46 % of the misread lines and 4 % of the right ones (docs/portal.md). */
export const LOW_CONFIDENCE = 0.9;

/** Characters below this confidence (0..1: the highest probability the recogniser gave the
 * character, the API's lines[i].chars) are marked inside their line. With the served PP-OCRv6 tiny
 * and the workers' decoder, 0.7 marks 64 % of the misread characters and 3.2 % of the right ones
 * on training-split check lines (bench/confidence.py --chars; docs/portal.md). */
export const LOW_CHAR_CONFIDENCE = 0.7;

export function isLowConfidence(line) {
  return typeof line.confidence === "number" && line.confidence < LOW_CONFIDENCE;
}

export function isLowChar(char) {
  return char.confidence < LOW_CHAR_CONFIDENCE;
}

/** A line's characters as {text, confidence}, when the API gave them and they spell the line's text
 *  exactly (a corrected line keeps the characters of its old text); else null. */
function lineChars(line) {
  const chars = line.chars;
  if (!Array.isArray(chars) || !chars.length) return null;
  const usable = chars.every((char) => char && typeof char.text === "string" && typeof char.confidence === "number");
  if (!usable || chars.map((char) => char.text).join("") !== (line.text ?? "")) return null;
  return chars.map((char) => ({ text: char.text, confidence: char.confidence, corners: corners(char) }));
}

/** A line's or a character's four corners [[x, y] x 4] from the API's polygon, else from its box. */
function corners(item) {
  if (Array.isArray(item.polygon) && item.polygon.length === 4) return item.polygon.map((p) => p.map(Number));
  if (Array.isArray(item.box) && item.box.length === 4) {
    const [x0, y0, x1, y1] = item.box.map(Number);
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]];
  }
  return null;
}

/** The job's lines in reading order, as {index, text, confidence, box, corners, page, chars}; page
 *  is a PDF's page number, chars the line's characters with their confidence and corners (or null). */
export function jobLines(job) {
  if (Array.isArray(job.lines) && job.lines.length) {
    return job.lines.map((line, index) => ({
      index,
      text: line.text ?? "",
      confidence: typeof line.confidence === "number" ? line.confidence : null,
      box: Array.isArray(line.box) && line.box.length === 4 ? line.box.map(Number) : null,
      corners: corners(line),
      page: typeof line.page === "number" ? line.page : null,
      chars: lineChars(line),
    }));
  }
  if (Array.isArray(job.text)) return job.text.map((text, index) => ({ index, text, confidence: null, box: null, corners: null }));
  return [];
}

export function jobDisplayName(job) {
  return job.filename || gettext("Untitled image");
}

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, value);
  return el;
}

const points = (quad) => quad.map(([x, y]) => `${x},${y}`).join(" ");

/**
 * The image with its lines drawn over it: each line's polygon (a rotated, photographed, vertical
 * or upside-down line as it lies on the page), dashed where the line's confidence is low, and the
 * characters the recogniser doubted marked on the image too. The layer is an SVG in the image's own
 * pixels, so it follows the image at any displayed size.
 */
export function createPreview(src, alt) {
  const img = h("img", { class: "preview-img", src, alt, decoding: "async" });
  const layer = svg("svg", { class: "box-layer", "aria-hidden": "true", preserveAspectRatio: "none" });
  const frame = h("div", { class: "preview-frame" }, img, layer);
  const element = h("figure", { class: "preview" }, frame);
  // A toggle (aria-pressed) with a constant name: the image at full column width.
  const zoom = h(
    "button",
    { type: "button", class: "zoom-btn", "aria-pressed": "false" },
    h("span", { "aria-hidden": "true" }, "⤢ "),
    gettext("Enlarge preview"),
  );
  zoom.addEventListener("click", () => {
    zoom.setAttribute("aria-pressed", String(element.classList.toggle("is-expanded")));
  });
  element.append(h("figcaption", { class: "preview-tools" }, zoom));
  const boxes = new Map();

  function draw(lines, width, height) {
    layer.setAttribute("viewBox", `0 0 ${width} ${height}`);
    boxes.clear();
    const shapes = [];
    lines.forEach((line, i) => {
      const index = line.index ?? i;
      if (!line.corners) return;
      const shape = svg("polygon", {
        class: `line-box${isLowConfidence(line) ? " is-low" : ""}`,
        points: points(line.corners),
        "data-index": String(index),
      });
      boxes.set(index, shape);
      shapes.push(shape);
      for (const char of line.chars || []) {
        if (isLowChar(char) && char.corners) shapes.push(svg("polygon", { class: "char-mark", points: points(char.corners) }));
      }
    });
    layer.replaceChildren(...shapes);
  }

  return {
    element,
    img,
    /** Draw the lines; width/height are the original image's pixels when known. */
    showBoxes(lines, width, height) {
      if (width > 0 && height > 0) {
        draw(lines, width, height);
      } else if (img.complete && img.naturalWidth) {
        draw(lines, img.naturalWidth, img.naturalHeight);
      } else {
        img.addEventListener("load", () => draw(lines, img.naturalWidth, img.naturalHeight), { once: true });
      }
    },
    highlight(index, on) {
      const box = boxes.get(index);
      if (box) box.classList.toggle("is-active", on);
    },
  };
}

/** A PDF's pages as images (GET /ocr/v1/jobs/<id>/pages/<n>, at the resolution the job read them),
 *  each with its own lines drawn over it; highlight() finds the line's page. */
export function createPagePreviews(job, lines) {
  const numbers = [...new Set(lines.map((line) => line.page).filter((n) => n !== null))];
  if (!numbers.length && Array.isArray(job.pages)) numbers.push(...job.pages.map((p) => p.page));
  const name = jobDisplayName(job);
  const pages = numbers.sort((a, b) => a - b).map((page) => {
    const src = `${API_ROOT}jobs/${job.job_id}/pages/${page}`;
    const preview = createPreview(src, gettext("Page %(page)s of %(name)s", { page, name }));
    preview.element.dataset.page = String(page);
    preview.showBoxes(lines.filter((line) => line.page === page), 0, 0);
    return preview;
  });
  return {
    element: h("div", { class: "page-previews" }, pages.map((p) => p.element)),
    img: pages.length ? pages[0].img : null,
    showBoxes() {},
    highlight(index, on) {
      for (const preview of pages) preview.highlight(index, on);
    },
  };
}

/** The preview a finished job gets: its pages for a PDF, else the image at ``src``. */
export function jobPreview(job, lines, src) {
  if (Array.isArray(job.pages) && job.pages.length && job.image_url) return createPagePreviews(job, lines);
  if (!src) return null;
  const preview = createPreview(src, gettext("Preview of %(name)s", { name: jobDisplayName(job) }));
  preview.showBoxes(lines, job.width, job.height);
  return preview;
}

/** A "Fix" button that turns the line into an input; saving sends the correction. */
function fixControl(job, index, line, item, textEl) {
  const button = h("button", { type: "button", class: "fix-btn", "aria-label": gettext("Fix line %(n)s", { n: index + 1 }) },
    gettext("Fix"));
  button.addEventListener("click", () => {
    const input = h("input", { type: "text", class: "fix-input", value: line.text, "aria-label": gettext("Fix line %(n)s", { n: index + 1 }) });
    const save = h("button", { type: "button", class: "fix-save" }, gettext("Save"));
    const cancel = h("button", { type: "button", class: "fix-cancel" }, gettext("Cancel"));
    const note = h("span", { class: "fix-note", role: "status" });
    const form = h("span", { class: "fix-form" }, input, save, cancel, note);
    const close = () => {
      form.replaceWith(textEl);
      button.hidden = false;
    };
    cancel.addEventListener("click", close);
    input.addEventListener("keydown", (event) => {
      if (event.key === "Escape") close();
      if (event.key === "Enter") save.click();
    });
    save.addEventListener("click", async () => {
      const text = input.value.trim();
      if (!text || text === line.text) return close();
      save.disabled = true;
      try {
        await correctLine(job.job_id, index, text);
        line.text = text;
        if (Array.isArray(job.lines) && job.lines[index]) job.lines[index].text = text;
        if (Array.isArray(job.text)) job.text[index] = text;
        textEl.textContent = text;
        item.classList.add("is-corrected");
        close();
        item.append(h("span", { class: "fix-done", role: "status" }, gettext("Correction saved; this line will help improve the model.")));
      } catch (err) {
        save.disabled = false;
        note.textContent = gettext("Correction not saved: %(message)s", { message: err.message });
      }
    });
    textEl.replaceWith(form);
    button.hidden = true;
    input.focus();
  });
  return button;
}

/** A line's text. With its characters, each one under LOW_CHAR_CONFIDENCE is a <mark> (a background
 *  and a wavy underline, its confidence in the tooltip); the others stay plain text, so the element's
 *  text is the line's, character for character, and selects and copies as it is. */
function lineText(line) {
  const element = h("span", { class: "line-text" });
  if (!line.chars) {
    element.textContent = line.text;
    return element;
  }
  let plain = "";
  for (const char of line.chars) {
    if (!isLowChar(char)) {
      plain += char.text;
      continue;
    }
    if (plain) element.append(plain);
    plain = "";
    const title = gettext("Character confidence: %(percent)s", { percent: formatPercent(char.confidence) });
    element.append(h("mark", { class: "char-low", title, dataset: { confidence: String(char.confidence) } }, char.text));
  }
  if (plain) element.append(plain);
  return element;
}

/** The recognised lines, each with its confidence; low ones stand out. With the job,
 *  each line can be fixed by its reader. */
export function renderLines(lines, preview, job = null) {
  if (!lines.length) return h("p", { class: "empty-note" }, gettext("No text was found in this image."));
  const list = h("ol", { class: "lines" });
  let page = null;
  lines.forEach((line, index) => {
    if (line.page !== null && line.page !== undefined && line.page !== page) {
      page = line.page;
      list.append(h("li", { class: "page-head", role: "presentation" }, gettext("Page %(page)s", { page })));
    }
    const low = isLowConfidence(line);
    const conf =
      line.confidence === null
        ? null
        : h(
            "span",
            { class: "line-conf" },
            h("span", { class: "visually-hidden" }, `${gettext("Confidence")} `),
            low ? h("span", { class: "low-flag" }, gettext("Low confidence")) : null,
            h("span", { class: "conf-value" }, formatPercent(line.confidence)),
          );
    const textEl = lineText(line);
    const item = h(
      "li",
      { class: `line${low ? " is-low" : ""}`, dataset: { index: String(index) } },
      textEl,
      conf,
    );
    if (job && job.job_id) item.append(fixControl(job, index, line, item, textEl));
    if (preview) {
      const on = () => preview.highlight(line.index ?? index, true);
      const off = () => preview.highlight(line.index ?? index, false);
      item.addEventListener("mouseenter", on);
      item.addEventListener("mouseleave", off);
      item.addEventListener("focusin", on);
      item.addEventListener("focusout", off);
    }
    list.append(item);
  });
  return list;
}

export function lowConfidenceNote(lines) {
  const count = lines.filter(isLowConfidence).length;
  const chars = lines.some((line) => line.chars && line.chars.some(isLowChar));
  if (!count && !chars) return null;
  const notes = [
    count ? gettext("%(count)s line(s) have low confidence; please check the highlighted lines.", { count }) : null,
    chars ? gettext("Characters the recogniser was unsure of are marked with a wavy underline; point at one to see its confidence.") : null,
  ];
  return h("div", { class: "low-note" }, notes.filter(Boolean).map((note) => h("p", {}, note)));
}

/** The job's facts as a definition list. */
export function renderMeta(job, { showOwner = false, showDate = false } = {}) {
  const rows = [];
  const add = (label, value) => {
    if (value === "" || value === null || value === undefined) return;
    rows.push(h("div", { class: "meta-row" }, h("dt", {}, label), h("dd", {}, value)));
  };
  add(gettext("Model version"), job.model_version);
  add(gettext("Time"), formatSeconds(job.time_cost));
  if (job.width && job.height) add(gettext("Image size"), `${job.width} × ${job.height}`);
  if (showDate) add(gettext("Uploaded"), formatDate(job.created_at));
  if (showOwner) add(gettext("Uploaded by"), job.owner);
  if (job.cached) {
    rows.push(
      h(
        "div",
        { class: "meta-row" },
        h("dt", { class: "visually-hidden" }, gettext("From cache")),
        h("dd", {}, h("span", { class: "badge badge-cached" }, gettext("From cache"))),
      ),
    );
  }
  return h("dl", { class: "meta" }, rows);
}

/** Links that download a finished job as documents (GET /ocr/v1/jobs/<id>/export): a searchable PDF,
 *  plain text, hOCR, ALTO and the JSON answer. The PDF holds the uploaded image, so it is offered to
 *  the image's owner only, and only while the image is kept. */
export function renderDownloads(job, { owner = true } = {}) {
  if (!job || job.status !== "succeeded" || !job.job_id) return null;
  const formats = [
    ["pdf", gettext("Searchable PDF")],
    ["txt", gettext("Text")],
    ["hocr", "hOCR"],
    ["alto", "ALTO XML"],
    ["json", "JSON"],
  ];
  const links = formats
    .filter(([format]) => format !== "pdf" || (owner && job.image_url))
    .map(([format, label]) =>
      h(
        "a",
        { class: "btn btn-small download-link", href: `${API_ROOT}jobs/${job.job_id}/export?format=${format}`, download: "", dataset: { format } },
        label,
      ),
    );
  return h("nav", { class: "downloads", "aria-label": gettext("Download the result") }, h("span", { class: "downloads-label" }, gettext("Download")), ...links);
}
