// UI strings through Django's gettext: the JavaScript catalogue of the active language
// (JavaScriptCatalog, loaded by the page before these modules) translates English msgids;
// frontend/locale/*/LC_MESSAGES/djangojs.po holds the translations. Also locale-aware formatting.

const catalogue = window.django;

export const locale = document.documentElement.lang.toLowerCase().startsWith("zh") ? "zh-CN" : "en";

/** The translation of `msgid`, with `%(name)s` placeholders filled from `params`. */
export function gettext(msgid, params) {
  const text = catalogue.gettext(msgid);
  return params ? catalogue.interpolate(text, params, true) : text;
}

/** A job's or an upload's status in words (the API's status names, and the portal's own). */
export function statusLabel(status) {
  const labels = {
    checking: gettext("Checking"),
    uploading: gettext("Uploading"),
    queued: gettext("Queued"),
    running: gettext("Recognising"),
    succeeded: gettext("Done"),
    failed: gettext("Failed"),
    rejected: gettext("Not uploaded"),
  };
  return labels[status] || status;
}

const numberFormat = new Intl.NumberFormat(locale, { maximumFractionDigits: 1 });
const dateFormat = new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeStyle: "short" });

export function formatBytes(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${numberFormat.format(bytes / 1024)} KB`;
  return `${numberFormat.format(bytes / (1024 * 1024))} MB`;
}

export function formatDate(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : dateFormat.format(date);
}

export function formatSeconds(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(Number(seconds))) return "";
  const value = Number(seconds);
  return gettext("%(value)s s", { value: value < 10 ? value.toFixed(2) : value.toFixed(1) });
}

export function formatPercent(fraction) {
  return `${Math.round(Number(fraction) * 100)}%`;
}
