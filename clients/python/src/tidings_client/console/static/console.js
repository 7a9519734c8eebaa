// The console's only script: live parts of a page, the event picker's search, and the create
// form's catalog for the chosen payload format. Every page works without it, minus liveness.
"use strict";

(function () {
  // -- live updates: WatchDeliveries arrives as Server-Sent Events; on each change the page
  // fetches itself again and swaps its [data-live] parts, so filters and paging still hold.
  const liveParent = document.body.dataset.liveParent;
  if (liveParent && window.EventSource) {
    const status = document.createElement("p");
    status.id = "live-status";
    status.className = "live-status";
    status.setAttribute("role", "status");
    status.textContent = "Live updates: connecting…";
    document.querySelector("main").prepend(status);

    let timer = null;
    let busy = false;
    let again = false;

    const openDetails = () =>
      Array.from(document.querySelectorAll("[data-live] details"), (d, i) => (d.open ? i : -1)).filter((i) => i >= 0);

    const refresh = async () => {
      if (busy) { again = true; return; }
      busy = true;
      try {
        const response = await fetch(window.location.href, { credentials: "same-origin", cache: "no-store" });
        if (!response.ok) {
          status.textContent = `Live updates: the page could not be refreshed (HTTP ${response.status}).`;
          return;
        }
        const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
        const known = new Set(Array.from(document.querySelectorAll("tr[data-delivery]"), (r) => r.dataset.delivery));
        const open = openDetails();
        for (const part of document.querySelectorAll("[data-live][id]")) {
          const next = fresh.getElementById(part.id);
          if (next) part.innerHTML = next.innerHTML;
        }
        const all = document.querySelectorAll("[data-live] details");
        for (const i of open) if (all[i]) all[i].open = true;
        let added = 0;
        for (const row of document.querySelectorAll("tr[data-delivery]")) {
          if (!known.has(row.dataset.delivery)) { row.classList.add("fresh"); added += 1; }
        }
        // Announce only what a reader needs: new rows, not every refresh.
        if (added) {
          const when = new Date().toISOString().slice(11, 19);
          status.textContent = `Live updates: on; ${added} new event(s) at ${when} UTC`;
        } else if (!status.textContent.startsWith("Live updates: on")) {
          status.textContent = "Live updates: on";
        }
      } catch (err) {
        status.textContent = "Live updates: the console did not answer; retrying…";
      } finally {
        busy = false;
        if (again) { again = false; schedule(); }
      }
    };
    const schedule = () => {
      if (timer === null) timer = setTimeout(() => { timer = null; refresh(); }, 250);
    };

    let source = null;
    const connect = () => {
      source = new EventSource("/live?parent=" + encodeURIComponent(liveParent));
      source.addEventListener("ready", () => { status.textContent = "Live updates: on"; schedule(); });
      source.addEventListener("change", schedule);
      source.addEventListener("problem", (e) => {
        const p = JSON.parse(e.data);
        status.textContent = `Live updates paused: ${p.code}: ${p.message}. Retrying…`;
      });
      source.addEventListener("error", () => {
        status.textContent = "Live updates: reconnecting…";
      });
    };
    // A browser holds few connections per host: a tab in the background gives its stream back,
    // and catches up when it is shown again ("ready" refreshes it).
    document.addEventListener("visibilitychange", () => {
      if (document.hidden && source) { source.close(); source = null; status.textContent = "Live updates: paused while hidden"; }
      else if (!document.hidden && !source) connect();
    });
    connect();
  }

  // -- the event picker: filter its rows by resource name; a row's "All" ticks its events.
  const wireSearch = () => {
    const search = document.getElementById("event-search");
    const count = document.getElementById("event-count");
    if (!search) return;
    for (const cell of document.querySelectorAll("#event-table .js-only")) cell.hidden = false;
    for (const row of document.querySelectorAll("#event-table tbody tr[data-resource]")) {
      const all = row.querySelector("input[data-row-all]");
      const boxes = Array.from(row.querySelectorAll("input[name=event]"));
      const sync = () => { all.checked = boxes.length > 0 && boxes.every((b) => b.checked); };
      all.addEventListener("change", () => { for (const b of boxes) b.checked = all.checked; });
      for (const b of boxes) b.addEventListener("change", sync);
      sync();
    }
    search.addEventListener("input", () => {
      const needle = search.value.trim().toLowerCase();
      let shown = 0;
      for (const row of document.querySelectorAll("#event-table tbody tr[data-resource]")) {
        const match = !needle || row.dataset.resource.includes(needle);
        row.hidden = !match;
        if (match) shown += 1;
      }
      count.textContent = `${shown} resources`;
    });
  };
  wireSearch();

  // -- the create form: another payload format has its own catalog; keep what is still there.
  const form = document.querySelector("form[data-catalog]");
  const format = document.getElementById("payload_format");
  if (form && format) {
    // Changes can overlap: only the newest one's catalog is shown, and the boxes kept are those
    // checked when it arrives, not when it was asked for (the user may tick one meanwhile).
    let latest = 0;
    format.addEventListener("change", async () => {
      const mine = ++latest;
      const url = form.dataset.catalog + "?format=" + encodeURIComponent(format.value);
      const response = await fetch(url, { credentials: "same-origin", cache: "no-store" });
      if (!response.ok || mine !== latest) return;
      const text = await response.text();
      if (mine !== latest) return;
      const fresh = new DOMParser().parseFromString(text, "text/html").getElementById("event-grid");
      const current = document.getElementById("event-grid");
      if (!fresh || !current) return;
      const picked = new Set(Array.from(current.querySelectorAll("input[name=event]:checked"), (i) => i.value));
      current.replaceWith(fresh);
      for (const box of fresh.querySelectorAll("input[name=event]")) box.checked = picked.has(box.value);
      wireSearch();
    });
  }

  // -- "Go back" on error pages.
  for (const link of document.querySelectorAll("a[data-back]")) {
    link.addEventListener("click", (e) => {
      if (window.history.length > 1) { e.preventDefault(); window.history.back(); }
    });
  }
})();
