// Copying text. The async Clipboard API needs a secure context (https or
// localhost); on plain http from another machine fall back to execCommand.

export async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      // Permission refused: try the old way below.
    }
  }
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.style.position = "fixed";
  area.style.opacity = "0";
  area.style.pointerEvents = "none";
  document.body.append(area);
  const previous = document.activeElement;
  area.select();
  let ok = false;
  try {
    ok = document.execCommand("copy");
  } catch {
    ok = false;
  }
  area.remove();
  if (previous && typeof previous.focus === "function") previous.focus();
  return ok;
}

/** Copy, then show the outcome on the button for a moment. */
export async function copyWithFeedback(button, text, { copiedLabel, failedLabel, announce }) {
  const ok = await copyText(text);
  const original = button.dataset.label || button.textContent;
  button.dataset.label = original;
  button.textContent = ok ? copiedLabel : failedLabel;
  button.classList.toggle("is-copied", ok);
  window.clearTimeout(Number(button.dataset.timer || 0));
  button.dataset.timer = String(
    window.setTimeout(() => {
      button.textContent = original;
      button.classList.remove("is-copied");
    }, 1800),
  );
  if (announce) announce(ok);
  return ok;
}
