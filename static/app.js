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

  // A decision asked for while the drawer's item was still settling (htmx wires its form only then; a
  // click before that would post the form without htmx and reload the page): made once it has settled.
  let waiting = null;

  function hint(form, text) {
    const place = form.querySelector("[data-decide-hint]");
    if (place) place.textContent = text;
  }

  // Certify or revoke the open item; when the campaign wants a justification and none is typed yet,
  // focus the box first and remember which decision to submit on Ctrl+Enter.
  function decide(decision) {
    const item = drawerItem();
    if (item && !item.hasAttribute("data-settled")) { waiting = decision; return; }
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
    if (!item) { waiting = null; select(null); return; }
    item.setAttribute("data-settled", "");
    const row = document.getElementById("item-" + item.getAttribute("data-drawer-item"));
    if (row) select(row);
    if (waiting) { const decision = waiting; waiting = null; decide(decision); }
  });
})();

// --- Charts (the overview) ------------------------------------------------------------------------
// A <canvas data-chart="kind" data-chart-data="id" data-chart-src="…/chart.umd.min.js"> is drawn from the
// JSON its page carries in <script type="application/json" id="id"> (Django's json_script: no inline
// script, which the Content-Security-Policy forbids). Chart.js (static/vendor/chartjs, pinned) is loaded
// the first time a page has a chart. Charts are drawn on load and whenever htmx brings in content (a
// swap, a history restore), and destroyed before htmx snapshots the page or removes them, so a restored
// page never carries Chart.js's inline styles.
(function () {
  "use strict";

  let loading = null;

  function library(src) {
    if (window.Chart) return Promise.resolve(window.Chart);
    if (!loading) {
      loading = new Promise(function (resolve, reject) {
        const script = document.createElement("script");
        script.src = src;
        script.onload = function () { resolve(window.Chart); };
        script.onerror = function () { loading = null; reject(new Error("chart library did not load")); };
        document.head.appendChild(script);
      });
    }
    return loading;
  }

  function css(name, fallback) {
    const value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return value || fallback;
  }

  function duration(ms) {
    if (ms < 1000) return ms + " ms";
    if (ms < 60000) return (ms / 1000).toFixed(1) + " s";
    if (ms < 3600000) return Math.round(ms / 60000) + " min";
    return (ms / 3600000).toFixed(1) + " h";
  }

  function follow(links) {
    return function (event, elements) {
      const hit = elements && elements[0];
      const url = hit && links && links[hit.index];
      if (url) window.location.assign(url);
    };
  }

  function pointer(links) {
    return function (event, elements) {
      const canvas = event.native && event.native.target;
      if (canvas) canvas.classList.toggle("chart-link", Boolean(elements.length && links && links[elements[0].index]));
    };
  }

  const builders = {
    decisions: function (data) {
      return {
        type: "bar",
        data: {
          labels: data.labels.map(function (day) { return day.slice(5); }),
          datasets: [
            { label: "Allowed", data: data.allowed, backgroundColor: "#56b886", stack: "checks" },
            { label: "Denied", data: data.denied, backgroundColor: "#e06c62", stack: "checks" },
          ],
        },
        options: {
          maintainAspectRatio: false,
          animation: false,
          interaction: { mode: "index", intersect: false },
          scales: {
            x: { stacked: true, grid: { display: false }, ticks: { maxRotation: 0, autoSkipPadding: 8 } },
            y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } },
          },
          plugins: {
            legend: { position: "bottom", labels: { boxWidth: 10, boxHeight: 10 } },
            tooltip: { callbacks: { title: function (items) { return data.labels[items[0].dataIndex] + " (UTC)"; } } },
          },
          onClick: follow(data.links),
          onHover: pointer(data.links),
        },
      };
    },
    revocations: function (data) {
      const colours = data.kinds.map(function (kind) { return kind === "human" ? "#e0a526" : css("--accent", "#3451d1"); });
      const datasets = [{ type: "bar", label: "Time to revoke", data: data.ms, backgroundColor: colours }];
      if (data.median !== null) {
        datasets.push({
          type: "line", label: "Median " + duration(data.median), data: data.ms.map(function () { return data.median; }),
          borderColor: css("--muted", "#647085"), borderDash: [4, 3], borderWidth: 1.5, pointRadius: 0,
        });
      }
      return {
        data: { labels: data.labels, datasets: datasets },
        options: {
          maintainAspectRatio: false,
          animation: false,
          scales: {
            x: { grid: { display: false }, ticks: { display: false } },
            y: { beginAtZero: true, ticks: { callback: function (value) { return duration(value); } } },
          },
          plugins: {
            legend: { position: "bottom", labels: { boxWidth: 10, boxHeight: 10 } },
            tooltip: {
              callbacks: {
                title: function (items) { return data.labels[items[0].dataIndex] + " UTC · " + data.kinds[items[0].dataIndex]; },
                label: function (item) { return item.dataset.label + ": " + duration(item.parsed.y); },
              },
            },
          },
          onClick: follow(data.links),
          onHover: pointer(data.links),
        },
      };
    },
  };

  function draw(root) {
    if (!(root instanceof Element || root instanceof Document)) return;
    const canvases = root.querySelectorAll("canvas[data-chart]");
    if (!canvases.length) return;
    library(canvases[0].getAttribute("data-chart-src")).then(function (Chart) {
      canvases.forEach(function (canvas) {
        if (!canvas.isConnected || Chart.getChart(canvas)) return;
        const build = builders[canvas.getAttribute("data-chart")];
        const source = document.getElementById(canvas.getAttribute("data-chart-data"));
        if (!build || !source) return;
        new Chart(canvas, build(JSON.parse(source.textContent)));
      });
    }).catch(function () { /* the page keeps its figures and links; only the picture is missing */ });
  }

  function destroy(root) {
    if (!window.Chart || !(root instanceof Element || root instanceof Document)) return;
    root.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      const chart = window.Chart.getChart(canvas);
      if (chart) chart.destroy();
    });
  }

  document.addEventListener("DOMContentLoaded", function () { draw(document); });
  document.addEventListener("htmx:load", function (event) { draw(event.detail.elt); });
  document.addEventListener("htmx:historyRestore", function () { draw(document); });
  document.addEventListener("htmx:beforeHistorySave", function () { destroy(document); });
  document.addEventListener("htmx:beforeCleanupElement", function (event) {
    const elt = event.detail.elt;
    const chart = window.Chart && elt instanceof HTMLCanvasElement ? window.Chart.getChart(elt) : null;
    if (chart) chart.destroy();
  });
})();
