// The live tail on the entries list and the groups page (a file, not
// inline: the Content-Security-Policy allows scripts from minilog itself
// only). The page's `#live` element names the stream of its filter, from
// the last entry the page knew of (`last_event_id`); EventSource resends
// the last id it got when it reconnects, so nothing is missed or doubled.
// The list gets each new entry at its top; the groups page reads itself
// again (at most once a second) and swaps in its table, so new groups
// appear and counts, sparklines and "regressed" badges change in place.
// Without JavaScript, or without EventSource, the pages stay as they are.
(function () {
  var live = document.getElementById("live");
  if (!live || !window.EventSource) return;
  var groups = live.getAttribute("data-groups") === "true";
  var tbody = document.querySelector("table.entries tbody");
  if (!groups && !tbody) return;
  var icons = { debug: "·", info: "ℹ", good: "✓", warn: "⚠", error: "✖", critical: "‼" };
  // Rows kept on the page; older ones leave from the bottom (reload to page).
  var MAX_ROWS = 200;

  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    (children || []).forEach(function (c) {
      e.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return e;
  }

  // `2026-11-24T10:00:00.123Z` as the page shows times: `2026-11-24 10:00:00 UTC`.
  function shown(t) {
    return typeof t === "string" && t.length >= 19 ? t.slice(0, 10) + " " + t.slice(11, 19) + " UTC" : String(t);
  }

  function row(e) {
    var level = String(e.level);
    var label = e.added_by ? "added by " + e.added_by
      : e.key_id ? (e.key_description || "key " + e.key_id) : "unknown source";
    var ip = e.ip || "—";
    var meta = [label];
    if (e.source) { meta.push(" · "); meta.push(el("bdi", {}, [e.source])); }
    meta.push(" · from " + ip);
    if (e.untrusted) meta.push(el("span", { class: "untrusted" }, ["· browser report (untrusted)"]));
    if (e.resolved) { meta.push(" · resolved by "); meta.push(el("bdi", {}, [e.resolved.by])); meta.push(" at " + shown(e.resolved.at)); }
    var action = [];
    if (live.getAttribute("data-read-only") !== "true") {
      var verb = e.resolved ? "unresolve" : "resolve";
      action.push(el("form", { class: "inline", method: "post", action: "/log/entry/" + e.id + "/" + verb }, [
        el("input", { type: "hidden", name: "csrf", value: live.getAttribute("data-csrf") || "" }),
        el("input", { type: "hidden", name: "next", value: live.getAttribute("data-here") || "/log/list/" }),
        el("button", { type: "submit" }, [e.resolved ? "Undo" : "Resolve"]),
      ]));
    }
    return el("tr", { class: "entry live-row" + (e.resolved ? " resolved-row" : ""), id: "entry-" + e.id }, [
      el("td", {}, [el("a", { href: "/log/entry/" + e.id + "/" }, ["#" + e.id])]),
      el("td", {}, [el("span", { class: "level " + level, title: level }, [(icons[level] || "") + " " + level])]),
      el("td", {}, [
        el("pre", { class: "msg" }, [el("bdi", {}, [String(e.message)])]),
        el("div", { class: "meta", title: "from " + ip }, meta),
      ]),
      el("td", { class: "hide-s meta" }, [shown(e.received)]),
      el("td", {}, action),
    ]);
  }

  function status(text) {
    live.textContent = text;
    live.hidden = false;
  }
  var source = new EventSource(live.getAttribute("data-stream"));
  if (groups) {
    var reload = live.innerHTML; // "New entries arrived — reload", the fallback
    var busy = false, again = false, timer = null;
    // The stream follows the projector: once an entry is sent here, the
    // page drawn now already holds it.
    var refresh = function () {
      if (busy) { again = true; return; }
      busy = true;
      fetch(location.href, { credentials: "same-origin", headers: { accept: "text/html" } })
        .then(function (r) { if (!r.ok) throw new Error(String(r.status)); return r.text(); })
        .then(function (html) {
          var fresh = new DOMParser().parseFromString(html, "text/html").querySelector("table.groups tbody");
          var mine = document.querySelector("table.groups tbody");
          if (!fresh || !mine) throw new Error("no table");
          mine.replaceWith(document.importNode(fresh, true));
          var none = document.getElementById("no-groups");
          if (none && fresh.rows.length) none.remove();
          status("Live: groups update as entries arrive.");
        })
        .catch(function () { live.innerHTML = reload; live.hidden = false; source.close(); })
        .then(function () {
          busy = false;
          if (again) { again = false; timer = setTimeout(function () { timer = null; refresh(); }, 1000); }
        });
    };
    source.onopen = function () { status("Live: groups update as entries arrive."); };
    source.onerror = function () {
      status(source.readyState === EventSource.CLOSED
        ? "No longer live: reload the page."
        : "Live updates interrupted; reconnecting…");
    };
    source.onmessage = function () {
      if (!timer) timer = setTimeout(function () { timer = null; refresh(); }, 300);
    };
    return;
  }
  var openOnly = live.getAttribute("data-show") === "false";
  source.onopen = function () { status("Live: new entries appear at the top."); };
  source.onerror = function () {
    status(source.readyState === EventSource.CLOSED
      ? "No longer live: reload the page."
      : "Live updates interrupted; reconnecting…");
  };
  source.onmessage = function (m) {
    var e;
    try { e = JSON.parse(m.data); } catch (_) { return; }
    if (!e || typeof e.id !== "number") return;
    // Already shown (the page was read a moment after its last id), or
    // resolved meanwhile on a list of open entries.
    if (document.getElementById("entry-" + e.id) || (openOnly && e.resolved)) return;
    var none = document.getElementById("no-entries");
    if (none) none.remove();
    tbody.insertBefore(row(e), tbody.firstChild);
    // "Resolve all that match" covers what the page shows, the new rows too.
    var upto = document.querySelector("form[action='/log/resolve-matching/'] input[name=upto]");
    if (upto && Number(upto.value) < e.id) upto.value = String(e.id);
    while (tbody.rows.length > MAX_ROWS) tbody.deleteRow(-1);
  };
})();
