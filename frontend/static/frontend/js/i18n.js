// UI strings for the active language, handed over by the template as JSON
// (see frontend/strings.py), and locale-aware formatting helpers.

const table = JSON.parse(document.getElementById("ui-strings").textContent);

export const locale = document.documentElement.lang.toLowerCase().startsWith("zh") ? "zh-CN" : "en";

/** The string for `key`, with `{name}` placeholders filled from `params`. */
export function t(key, params) {
  const text = table[key];
  if (text === undefined) {
    throw new Error(`Missing UI string: ${key}`);
  }
  if (!params) return text;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in params ? String(params[name]) : whole));
}

export function hasString(key) {
  return Object.prototype.hasOwnProperty.call(table, key);
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
  return t("seconds", { value: value < 10 ? value.toFixed(2) : value.toFixed(1) });
}

export function formatPercent(fraction) {
  return `${Math.round(Number(fraction) * 100)}%`;
}
