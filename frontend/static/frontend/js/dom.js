// A tiny element builder: h("p", {class: "x"}, "text", child).

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") el.className = value;
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (name === "style") Object.assign(el.style, value);
    else if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const announcer = () => document.getElementById("announcer");

/** Tell screen-reader users about something that happened out of view. */
export function announce(message) {
  const region = announcer();
  if (!region) return;
  region.textContent = "";
  // A fresh text node after a tick makes repeated messages be read again.
  window.setTimeout(() => {
    region.textContent = message;
  }, 50);
}

/** Children worth inserting: drops null/undefined/false, so optional parts can be inline. */
export function present(...children) {
  return children.flat().filter((child) => child !== null && child !== undefined && child !== false);
}
