// The portal page: three sections (upload, history, vocabulary), and staff's models, behind
// their own addresses, switched without reloading.

import { initHistory } from "./history.js";
import { initModels } from "./models.js";
import { initUpload } from "./upload.js";
import { initVocabulary } from "./vocabulary.js";

const tabs = Array.from(document.querySelectorAll("a[data-tab]"));
const panels = Array.from(document.querySelectorAll("[data-panel]"));
const pathOf = (name) => new URL(tabs.find((tab) => tab.dataset.tab === name).href).pathname;

const historyView = initHistory({ historyPath: pathOf("history") });
const vocabularyView = initVocabulary({ vocabularyPath: pathOf("vocabulary") });
const modelsView = document.getElementById("models-panel") ? initModels() : null;
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
    const target = name === "history" ? historyView.url() : pathOf(name);
    window.history.pushState({ tab: name }, "", target);
  }
  if (name === "history" && (changed || fromUrl)) historyView.activate({ fromUrl });
  if (name === "vocabulary" && changed) vocabularyView.activate();
  if (name === "models" && changed && modelsView) modelsView.activate();
}

function tabForPath(pathname) {
  const tab = tabs.find((each) => pathOf(each.dataset.tab) === pathname);
  return tab ? tab.dataset.tab : "upload";
}

/** A plain click on a link to a section shows it in place; modified clicks open a new tab as usual. */
function openSection(event, name) {
  if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  event.preventDefault();
  if (name === current) return;
  show(name, { push: true });
  document.querySelector(`[data-panel=${name}] h1`).focus({ preventScroll: true });
}

for (const tab of tabs) tab.addEventListener("click", (event) => openSection(event, tab.dataset.tab));
// Links inside the sections that lead to another one (the upload tab's "Edit vocabulary").
document.addEventListener("click", (event) => {
  const link = event.target.closest("a[data-goto-tab]");
  if (link) openSection(event, link.dataset.gotoTab);
});

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
