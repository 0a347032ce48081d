// The status page: fetches /status.json every 1.5 s and redraws the tables. Every value
// goes in through textContent, never as HTML.
"use strict";

const REFRESH_MS = 1500;

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function badge(state) {
  return el("span", state.replace("_", " "), "badge " + state);
}

function row(cells) {
  const tr = el("tr");
  for (const c of cells) {
    const td = c instanceof Node ? el("td") : el("td", c);
    if (c instanceof Node) td.appendChild(c);
    tr.appendChild(td);
  }
  return tr;
}

function fill(id, rows, empty, columns) {
  const body = document.querySelector("#" + id + " tbody");
  body.replaceChildren(...rows);
  if (rows.length === 0) {
    const td = el("td", empty, "empty");
    td.colSpan = columns;
    body.appendChild(el("tr")).appendChild(td);
  }
}

function ms(v) {
  return v === undefined || v === null ? "none" : v + " ms";
}

function headroom(h) {
  if (h === "unlimited") return "unlimited";
  return h.left + " of " + h.per_minute + " / min left";
}

function progressBar(job) {
  const pct = (n) => (job.lines > 0 ? (100 * n) / job.lines : 0);
  const bar = el("div", null, "bar");
  bar.setAttribute("role", "progressbar");
  bar.setAttribute("aria-valuemin", "0");
  bar.setAttribute("aria-valuemax", String(job.lines));
  bar.setAttribute("aria-valuenow", String(job.done));
  bar.title = job.done + " of " + job.lines + " lines done, " + job.failed + " failed";
  const ok = el("div", null, "fill");
  ok.style.width = pct(job.done - job.failed) + "%";
  const failed = el("div", null, "failed");
  failed.style.left = pct(job.done - job.failed) + "%";
  failed.style.width = pct(job.failed) + "%";
  bar.append(ok, failed);
  return bar;
}

function render(doc) {
  fill("routes", doc.routes.map((r) => row([
    el("strong", r.name),
    el("code", r.channel),
    r.targets.map((t) => t.endpoint + " · " + t.model + " (" + t.priority + ", " + t.weight + ")").join("; "),
  ])), "no routes configured", 3);
  fill("endpoints", doc.endpoints.map((e) => row([
    el("strong", e.name), e.kind, badge(e.health),
    e.circuit === "unknown" ? "–" : badge(e.circuit),
    e.in_flight, ms(e.p50_ms), ms(e.p95_ms), headroom(e.headroom),
  ])), "no endpoints configured", 8);
  fill("workers", doc.workers.map((w) => row([
    el("code", w.id),
    (w.last_heard_ms / 1000).toFixed(1) + " s ago",
    badge(w.live ? "live" : "stale"),
  ])), "no worker heard yet", 3);
  fill("jobs", doc.jobs.map((j) => row([
    el("code", j.id), j.route, badge(j.state), progressBar(j), j.done, j.failed, j.lines,
  ])), "no batch jobs", 7);
  const live = doc.workers.filter((w) => w.live).length;
  const broker = doc.broker.connected ? "connected to " : "not connected to ";
  document.getElementById("summary").textContent =
    broker + doc.broker.address + " · " + live + " router process(es) live · " + doc.routes.length + " route(s)";
  document.getElementById("updated").textContent =
    "updated " + new Date(doc.generated_at).toLocaleTimeString();
}

async function refresh() {
  try {
    const response = await fetch("/status.json", { cache: "no-store" });
    if (!response.ok) throw new Error("HTTP " + response.status);
    render(await response.json());
  } catch (e) {
    document.getElementById("summary").textContent = "cannot load /status.json (" + e.message + "); retrying";
  } finally {
    setTimeout(refresh, REFRESH_MS);
  }
}

refresh();
