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

// --- Review queue: keyboard shortcuts ------------------------------------------------------------
// j/k or ↓/↑ move between rows, Enter/o open the row in the drawer, c certify and r revoke the open
// item, x ticks the row for bulk certify, ? shows the help. Keys typed into a field are left alone
// (except Ctrl+Enter in the justification, which submits the decision asked for). No inline script,
// no eval: the Content-Security-Policy allows neither.
(function () {
  "use strict";

  function queue() { return document.querySelector("[data-review-queue]"); }
  function rows() { return Array.prototype.slice.call(document.querySelectorAll("#queue-rows tr.q-row")); }
  function current() { return document.querySelector("#queue-rows tr.q-row.is-current"); }

  function select(row) {
    rows().forEach(function (r) { r.classList.remove("is-current"); r.removeAttribute("aria-selected"); });
    if (!row) return;
    row.classList.add("is-current");
    row.setAttribute("aria-selected", "true");
    row.scrollIntoView({ block: "nearest" });
  }

  function move(step) {
    const all = rows();
    if (!all.length) return;
    const at = all.indexOf(current());
    const next = at === -1 ? (step > 0 ? 0 : all.length - 1) : Math.min(all.length - 1, Math.max(0, at + step));
    select(all[next]);
  }

  function open(row) {
    const link = row && row.querySelector("a[data-open]");
    if (link) link.click();
  }

  function drawerItem() { return document.querySelector("#review-drawer [data-drawer-item][data-pending]"); }

  function hint(form, text) {
    const place = form.querySelector("[data-decide-hint]");
    if (place) place.textContent = text;
  }

  // Certify or revoke the open item; when the campaign wants a justification and none is typed yet,
  // focus the box first and remember which decision to submit on Ctrl+Enter.
  function decide(decision) {
    const item = drawerItem();
    const form = item && item.querySelector("form.review-decide");
    if (!form) return;
    const box = form.querySelector("[data-justification]");
    const needed = box && box.getAttribute(decision === "revoke" ? "data-needs-revoke" : "data-needs-certify") === "1";
    if (needed && !box.value.trim()) {
      form.setAttribute("data-pending-decision", decision);
      hint(form, "A justification is required: type it, then Ctrl+Enter to " + decision + ".");
      box.focus();
      return;
    }
    const button = form.querySelector('[data-decide="' + decision + '"]');
    if (button) button.click();
  }

  function help(show) {
    const box = document.getElementById("kbd-help");
    if (box) box.hidden = !show;
  }

  document.addEventListener("keydown", function (event) {
    if (!queue()) return;
    const target = event.target;
    const typing = target instanceof HTMLElement && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
    if (typing) {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && target.hasAttribute("data-justification")) {
        const form = target.closest("form.review-decide");
        const decision = form && form.getAttribute("data-pending-decision");
        if (decision) {
          event.preventDefault();
          const button = form.querySelector('[data-decide="' + decision + '"]');
          if (button) button.click();
        }
      }
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const helpBox = document.getElementById("kbd-help");
    if (helpBox && !helpBox.hidden) {
      if (event.key === "Escape" || event.key === "?") { event.preventDefault(); help(false); }
      return;
    }
    // Enter on a link or a button does what that control does.
    if (event.key === "Enter" && target instanceof Element && target.closest("a, button, summary")) return;
    switch (event.key) {
      case "j": case "ArrowDown": event.preventDefault(); move(1); break;
      case "k": case "ArrowUp": event.preventDefault(); move(-1); break;
      case "Enter": case "o":
        if (!current()) move(1);
        event.preventDefault(); open(current()); break;
      case "c": event.preventDefault(); decide("certify"); break;
      case "r": event.preventDefault(); decide("revoke"); break;
      case "x": {
        const row = current();
        const box = row && row.querySelector('input[type="checkbox"]:not([disabled])');
        if (box) { event.preventDefault(); box.checked = !box.checked; }
        break;
      }
      case "?": event.preventDefault(); help(true); break;
      default: break;
    }
  });

  // A click on a row (not on its link, checkbox or another control) opens it, as Enter does.
  document.addEventListener("click", function (event) {
    const target = event.target instanceof Element ? event.target : null;
    if (!target) return;
    if (target.closest("[data-kbd-help-close]")) { help(false); return; }
    const row = target.closest("#queue-rows tr.q-row");
    if (!row) return;
    select(row);
    if (!target.closest("a, input, button, label, select, textarea")) open(row);
  });

  // When the drawer shows an item (opened, or the next one after a decision), its row becomes current.
  document.addEventListener("htmx:afterSettle", function (event) {
    if (!queue()) return;
    const drawer = document.getElementById("review-drawer");
    if (!drawer || !(event.detail.elt instanceof Element) || !drawer.contains(event.detail.elt)) return;
    const item = drawer.querySelector("[data-drawer-item]");
    if (!item) { select(null); return; }
    const row = document.getElementById("item-" + item.getAttribute("data-drawer-item"));
    if (row) select(row);
  });
})();
