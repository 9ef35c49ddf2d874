// The review loop's keyboard and form behaviour (crowd/templates/item.html.j2, queue.html.j2,
// shortcuts.html.j2). Loaded with `defer`; the pages work without it: the form's two reason lists
// are then both shown and the server checks that the reason belongs to the decision.
//
// On a flag: c confirm, r reject, 1-9 the n-th reason of the decision, d the "duplicate of" field,
// n the note, Ctrl+Enter (or Enter outside a text field) decide and next, s skip.
// In the queue: j / k next / previous row, Enter or o open it, x select it for a bulk reject.
// Anywhere: ? shows or hides the list of shortcuts (a modal dialog; Escape closes it and focus
// returns where it was). No shortcut fires while typing in a field, but Ctrl+Enter.
"use strict";

(function () {
  const form = document.getElementById("decide");
  const table = document.querySelector("table.flags");
  const dialog = document.getElementById("shortcuts");
  let returnFocus = null;

  function typing(el) {
    if (!el || !el.tagName) return false;
    const tag = el.tagName.toLowerCase();
    if (tag === "textarea" || tag === "select" || el.isContentEditable) return true;
    return tag === "input" && !["radio", "checkbox", "button", "submit", "reset"].includes(el.type);
  }

  // the decision form: the reason list follows the decision
  function decision() {
    const checked = form.querySelector("input[name=decision]:checked");
    return checked ? checked.value : "";
  }

  function follow() {
    const chosen = decision();
    for (const fieldset of form.querySelectorAll("fieldset.reasons")) {
      const off = fieldset.dataset.decision !== chosen;
      fieldset.hidden = off;
      fieldset.disabled = off;  // a hidden list's choice is not sent
      if (off) for (const radio of fieldset.querySelectorAll("input[name=reason]")) radio.checked = false;
    }
  }

  function choose(value) {
    const radio = form.querySelector(`input[name=decision][value=${value}]`);
    radio.checked = true;
    radio.focus();
    follow();
  }

  function pickReason(n) {
    const fieldset = form.querySelector(`fieldset.reasons[data-decision="${decision()}"]`);
    const radio = fieldset && fieldset.querySelectorAll("input[name=reason]")[n - 1];
    if (radio) {
      radio.checked = true;
      radio.focus();
    }
  }

  function decideAndNext() {
    form.requestSubmit(form.querySelector("button[value=next]"));
  }

  function onItem(event) {
    const key = event.key;
    if (key === "Enter" && (event.ctrlKey || event.metaKey)) return decideAndNext(), true;
    if (typing(event.target)) return false;
    if (key === "Enter") {
      const tag = event.target.tagName.toLowerCase();
      if (tag === "a" || tag === "button" || tag === "summary") return false;  // Enter follows or presses it
      return decideAndNext(), true;
    }
    if (key === "c") return choose("confirm"), true;
    if (key === "r") return choose("reject"), true;
    if (/^[1-9]$/.test(key)) return pickReason(Number(key)), true;
    if (key === "n") return form.querySelector("textarea[name=note]").focus(), true;
    if (key === "d") {
      const field = form.querySelector("input[name=duplicate_of]");
      if (!field) return false;
      choose("reject");
      field.focus();
      return true;
    }
    if (key === "s") return location.assign(form.querySelector("a[href^='/queue/next']").href), true;
    return false;
  }

  // the queue: a current row
  let current = -1;

  function rows() {
    return Array.from(table.querySelectorAll("tbody tr[data-flag]"));
  }

  function move(step) {
    const all = rows();
    if (!all.length) return;
    current = Math.max(0, Math.min(all.length - 1, current + step));
    all.forEach((row, i) => row.classList.toggle("current", i === current));
    all[current].querySelector("a.row-link").focus();
  }

  function onQueue(event) {
    if (typing(event.target) || event.ctrlKey || event.metaKey || event.altKey) return false;
    const row = rows()[current];
    switch (event.key) {
      case "j": return move(1), true;
      case "k": return move(current < 0 ? 1 : -1), true;
      case "o": return row ? (location.assign(row.querySelector("a.row-link").href), true) : false;
      case "Enter":
        if (!row || event.target.tagName.toLowerCase() === "a") return false;  // a focused link opens itself
        return location.assign(row.querySelector("a.row-link").href), true;
      case "x": {
        const box = row && row.querySelector("input[type=checkbox]");
        if (box) box.checked = !box.checked;
        return Boolean(box);
      }
      default: return false;
    }
  }

  // the shortcuts dialog
  function toggleShortcuts() {
    if (dialog.open) return dialog.close();
    returnFocus = document.activeElement;
    dialog.showModal();
    dialog.querySelector("button").focus();
  }

  if (dialog) dialog.addEventListener("close", () => {
    if (returnFocus && returnFocus.focus) returnFocus.focus();
    returnFocus = null;
  });

  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.isComposing) return;
    if (event.key === "?" && !typing(event.target) && dialog) {
      event.preventDefault();
      return toggleShortcuts();
    }
    if (dialog && dialog.open) return;  // the dialog's own keys: Tab, Escape
    if (event.altKey) return;
    const handled = form ? onItem(event) : table ? onQueue(event) : false;
    if (handled) event.preventDefault();
  });

  if (form) {
    for (const radio of form.querySelectorAll("input[name=decision]")) radio.addEventListener("change", follow);
    follow();
  }

  // "Show the image": focus moves to the control it brings (the unblur box)
  document.body.addEventListener("htmx:afterSwap", (event) => {
    const box = event.detail.target.id === "image" && event.detail.target.querySelector("input[type=checkbox]");
    if (box) box.focus();
  });
})();
