// The page's words come only from the catalogues (/api/i18n/<lang>): elements carry data-i18n keys.
"use strict";
const I18n = {
  lang: "en",
  cats: {},
  async load(lang) {
    if (!this.cats[lang]) {
      const response = await fetch("/api/i18n/" + lang);
      this.cats[lang] = await response.json();
    }
  },
  t(key, params, lang) {
    const cat = this.cats[lang || this.lang] || {};
    let text = key in cat ? cat[key] : key;
    for (const [name, value] of Object.entries(params || {})) {
      text = text.split("{" + name + "}").join(value === null || value === undefined ? "" : String(value));
    }
    return text;
  },
  apply(root) {
    (root || document).querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = this.t(el.dataset.i18n); });
    (root || document).querySelectorAll("[data-i18n-placeholder]").forEach((el) => {
      el.placeholder = this.t(el.dataset.i18nPlaceholder);
    });
    document.documentElement.lang = this.lang === "zh" ? "zh-CN" : "en";
  },
  locale() { return this.lang === "zh" ? "zh-CN" : "en-GB"; },
};
