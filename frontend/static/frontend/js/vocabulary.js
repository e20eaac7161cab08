// The user's own vocabulary (GET/PUT /ocr/v1/vocabulary): edited on its tab, one word or
// phrase per line, and sent as the hotwords of every upload. The saved words are fetched
// once and kept until they are saved again or the page comes back into view (they may
// have been changed in another tab meanwhile).

import { ApiError, getVocabulary, saveVocabulary } from "./api.js";
import { h, present } from "./dom.js";
import { gettext } from "./i18n.js";

let saved = null; // the promise of the server's {words, updated_at, max_words, max_word_chars}

/** The vocabulary as the server keeps it, fetched when not known yet. */
export function loadVocabulary() {
  if (!saved) {
    const attempt = getVocabulary();
    saved = attempt;
    attempt.catch(() => {
      if (saved === attempt) saved = null; // ask again next time
    });
  }
  return saved;
}

/** The words to send with an upload; throws the ApiError of a failed fetch. */
export async function savedWords() {
  return (await loadVocabulary()).words;
}

document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") saved = null;
});

/** The textarea's words, one per line, cleaned as the server cleans them (ocr_api.serializers.clean_hotwords):
 *  spaces collapsed, blank lines dropped, each word once. */
export function parseWords(text) {
  const words = text.split(/\r?\n/).map((line) => line.split(/\s+/).filter(Boolean).join(" "));
  return [...new Set(words.filter(Boolean))];
}

/** The upload tab's note that uploads carry the vocabulary, with a way to edit it. */
function showUploadHint(hint, words, vocabularyPath) {
  hint.hidden = words.length === 0;
  hint.replaceChildren(
    gettext("Your vocabulary of %(count)s word(s) is sent with each upload.", { count: words.length }),
    " ",
    h("a", { href: vocabularyPath, dataset: { gotoTab: "vocabulary" } }, gettext("Edit vocabulary")),
  );
}

export function initVocabulary({ vocabularyPath }) {
  const form = document.getElementById("vocabulary-form");
  const area = document.getElementById("vocabulary-words");
  const saveButton = document.getElementById("vocabulary-save");
  const count = document.getElementById("vocabulary-count");
  const limits = document.getElementById("vocabulary-limits");
  const status = document.getElementById("vocabulary-status");
  const hint = document.getElementById("vocabulary-hint");
  let baseline = null; // the text as last loaded or saved: anything else is an unsaved edit

  function showStatus(text, { error = false, detail = "" } = {}) {
    status.className = `form-status${error ? " is-error" : ""}`;
    status.replaceChildren(
      ...present(text ? h("p", {}, text) : null, detail ? h("p", { class: "card-detail" }, gettext("Server says: "), detail) : null),
    );
  }

  function showCount() {
    const words = gettext("%(count)s word(s)", { count: parseWords(area.value).length });
    count.textContent = baseline !== null && area.value !== baseline ? `${words} · ${gettext("Not saved yet")}` : words;
  }

  function show(data) {
    baseline = data.words.join("\n");
    area.value = baseline;
    area.disabled = false;
    saveButton.disabled = false;
    limits.textContent = gettext("Up to %(words)s words or phrases, %(chars)s characters each.", {
      words: data.max_words,
      chars: data.max_word_chars,
    });
    showCount();
    showUploadHint(hint, data.words, vocabularyPath);
  }

  async function save(event) {
    event.preventDefault();
    saveButton.disabled = true;
    showStatus(gettext("Saving…"));
    try {
      const data = await saveVocabulary(parseWords(area.value));
      saved = Promise.resolve(data);
      show(data);
      showStatus(gettext("Saved: %(count)s word(s).", { count: data.words.length }));
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      showStatus(gettext("Not saved: %(message)s", { message: err.message }), { error: true, detail: err.detail });
    } finally {
      saveButton.disabled = false;
    }
  }

  form.addEventListener("submit", save);
  area.addEventListener("input", showCount);
  loadVocabulary().then((data) => showUploadHint(hint, data.words, vocabularyPath), () => {});

  return {
    /** Show the saved vocabulary, unless the user is in the middle of editing it. */
    async activate() {
      if (baseline !== null && area.value !== baseline) return;
      try {
        show(await loadVocabulary());
        showStatus("");
      } catch (err) {
        if (!(err instanceof ApiError)) throw err;
        showStatus(gettext("Could not load your vocabulary: %(message)s", { message: err.message }), { error: true, detail: err.detail });
      }
    },
  };
}
