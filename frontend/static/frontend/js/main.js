// The portal page: two sections (upload, history) behind two addresses,
// switched without reloading.

import { initHistory } from "./history.js";
import { initUpload } from "./upload.js";

const tabs = Array.from(document.querySelectorAll("a[data-tab]"));
const panels = Array.from(document.querySelectorAll("[data-panel]"));
const pathOf = (name) => new URL(tabs.find((tab) => tab.dataset.tab === name).href).pathname;

const historyView = initHistory({ historyPath: pathOf("history") });
let current = null;

function show(name, { push = false, fromUrl = false } = {}) {
  const changed = name !== current;
  current = name;
  for (const panel of panels) panel.hidden = panel.dataset.panel !== name;
  for (const tab of tabs) {
    if (tab.dataset.tab === name) tab.setAttribute("aria-current", "page");
    else tab.removeAttribute("aria-current");
  }
  const heading = document.querySelector(`[data-panel=${name}] h1`);
  document.title = `${heading.textContent} · ${document.title.split(" · ").pop()}`;
  if (push) {
    const target = name === "history" ? historyView.url() : pathOf("upload");
    window.history.pushState({ tab: name }, "", target);
  }
  if (name === "history" && (changed || fromUrl)) historyView.activate({ fromUrl });
}

function tabForPath(pathname) {
  return pathname === pathOf("history") ? "history" : "upload";
}

for (const tab of tabs) {
  tab.addEventListener("click", (event) => {
    if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    if (tab.dataset.tab === current) return;
    show(tab.dataset.tab, { push: true });
    document.querySelector(`[data-panel=${tab.dataset.tab}] h1`).focus({ preventScroll: true });
  });
}

// The language buttons bring the user back to where they are now, not where the page started.
const languageForm = document.querySelector(".lang-form");
if (languageForm) {
  languageForm.addEventListener("submit", () => {
    languageForm.elements.next.value = window.location.pathname + window.location.search;
  });
}

window.addEventListener("popstate", () => show(tabForPath(window.location.pathname), { fromUrl: true }));

initUpload({
  onFilesArriving() {
    if (current !== "upload") show("upload", { push: true });
  },
});

show(tabForPath(window.location.pathname), { fromUrl: true });
