// Custos console: the few behaviours htmx does not cover. No framework, no build step.
(function () {
  "use strict";

  // "/" focuses the page's search box, as in most tools people use all day; Escape leaves it.
  document.addEventListener("keydown", function (event) {
    const target = event.target;
    const typing = target instanceof HTMLElement && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
    if (event.key === "/" && !typing && !event.ctrlKey && !event.metaKey && !event.altKey) {
      const search = document.querySelector("[data-search]");
      if (search) {
        event.preventDefault();
        search.focus();
        search.select();
      }
    } else if (event.key === "Escape" && typing) {
      target.blur();
    }
  });

  document.addEventListener("click", function (event) {
    const target = event.target instanceof Element ? event.target : null;
    if (!target) return;

    // Copy a one-time secret. Clipboard access needs a secure context; fall back to a selection.
    const copy = target.closest("[data-copy]");
    if (copy) {
      const source = document.querySelector(copy.getAttribute("data-copy"));
      if (!source) return;
      const text = source.textContent.trim();
      const done = function () {
        copy.textContent = "Copied";
        window.setTimeout(function () { copy.textContent = "Copy"; }, 2000);
      };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(done);
      } else {
        const range = document.createRange();
        range.selectNodeContents(source);
        const selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
        document.execCommand("copy");
        done();
      }
      return;
    }

    const dismiss = target.closest("[data-dismiss]");
    if (dismiss) {
      dismiss.parentElement.remove();
      return;
    }

    // Close open menus and drawers when clicking elsewhere.
    document.querySelectorAll("details.usermenu[open], details.drawer[open]").forEach(function (menu) {
      if (!menu.contains(target)) menu.removeAttribute("open");
    });
  });

  // Background refreshes (a badge, a live panel) skip their turn while the tab is hidden. A listener
  // rather than an hx-trigger filter: filters are evaluated JavaScript, which the CSP does not allow.
  document.addEventListener("htmx:beforeRequest", function (event) {
    if (document.hidden && event.detail.elt instanceof Element && event.detail.elt.closest("[data-poll]")) {
      event.preventDefault();
    }
  });

  // htmx does not swap error responses (except 422, see base.html); say what happened instead of
  // leaving the button looking as if nothing did.
  document.addEventListener("htmx:responseError", function (event) {
    // A background refresh (a badge, a live panel) failing is not something the user did: stay quiet,
    // the next poll tries again.
    if (event.detail.elt instanceof Element && event.detail.elt.closest("[data-poll]")) return;
    const status = event.detail.xhr.status;
    const text = status === 403 ? "You are not allowed to do that."
      : status === 404 ? "That no longer exists, or is not visible to you."
      : "The server could not complete that (" + status + "). Nothing was changed.";
    flash(text, "error");
  });
  document.addEventListener("htmx:sendError", function (event) {
    if (event.detail.elt instanceof Element && event.detail.elt.closest("[data-poll]")) return;
    flash("Could not reach the server. Check your connection and try again.", "error");
  });

  function flash(text, level) {
    const stack = document.getElementById("flash");
    if (!stack) return;
    const item = document.createElement("div");
    item.className = "flash flash-" + level;
    item.setAttribute("role", "alert");
    item.textContent = text;
    const close = document.createElement("button");
    close.type = "button";
    close.className = "flash-close";
    close.setAttribute("aria-label", "Dismiss");
    close.setAttribute("data-dismiss", "");
    close.textContent = "×";
    item.appendChild(close);
    stack.appendChild(item);
  }
})();
