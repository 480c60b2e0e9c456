// The stratad dashboard: asks /v1/dashboard every second (the session
// cookie goes with it) and draws the answer. Everything is written with
// textContent, never as HTML. The state it shows is also written into data-
// attributes of #board, so that a headless browser can read it.
"use strict";

const POLL_MS = 1000;
const HISTORY = 120; // seconds the server keeps
const board = document.getElementById("board");
const $ = (id) => document.getElementById(id);
let polls = 0;
let previous = null;

function bytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (i === 0 ? v.toString() : v.toFixed(1)) + " " + units[i];
}

function duration(secs) {
  if (secs < 60) return secs + " s";
  if (secs < 3600) return Math.floor(secs / 60) + " min " + (secs % 60) + " s";
  return Math.floor(secs / 3600) + " h " + Math.floor((secs % 3600) / 60) + " min";
}

function count(n, one, many) {
  return n + " " + (n === 1 ? one : many);
}

function rate(r) {
  return r === 0 ? "none" : bytes(r) + "/s";
}

function text(id, value) {
  $(id).textContent = value;
}

function cell(row, value, cls) {
  const td = document.createElement("td");
  td.textContent = value;
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}

// The smallest bucket bound with at least share q of the observations.
function quantile(h, q) {
  if (!h.count) return null;
  const want = Math.ceil(h.count * q);
  for (let i = 0; i < h.bounds_ms.length; i++) {
    if (h.cumulative[i] >= want) return h.bounds_ms[i];
  }
  return Infinity;
}

function ms(v) {
  if (v === null) return "–";
  if (v === Infinity) return "> 10 s";
  return "≤ " + v + " ms";
}

function svg(tag, attrs, parent) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  parent.appendChild(el);
  return el;
}

// Bars of `values`, in `slots` places (at least as many as values; the
// values fill the last ones).
function bars(target, labels, values, slots) {
  const chart = $(target);
  chart.replaceChildren();
  const max = Math.max(1, ...values);
  const n = Math.max(values.length, slots || 0, 1);
  const w = 600 / n;
  const first = n - values.length;
  values.forEach((v, j) => {
    const i = first + j;
    const h = (v / max) * 140;
    const gap = w > 8 ? 2 : 0.5;
    const bar = svg("rect", { x: i * w + gap, y: 155 - h, width: Math.max(0.5, w - 2 * gap), height: h, class: "bar" }, chart);
    const title = svg("title", {}, bar);
    title.textContent = (labels[j] || "") + " " + v;
    if (labels[j]) {
      const t = svg("text", { x: i * w + w / 2, y: 174, class: "axis" }, chart);
      t.textContent = labels[j];
    }
  });
  const top = svg("text", { x: 4, y: 12, class: "axis start" }, chart);
  top.textContent = "highest: " + max;
}

// Per-second differences of a counter in the history, oldest first.
function perSecond(history, field) {
  const out = [];
  for (let i = 1; i < history.length; i++) {
    const secs = Math.max(0.001, (history[i].at_ms - history[i - 1].at_ms) / 1000);
    out.push(Math.max(0, (history[i][field] - history[i - 1][field]) / secs));
  }
  return out;
}

function lines(target, series) {
  const chart = $(target);
  chart.replaceChildren();
  const max = Math.max(1, ...series.flatMap((s) => s.values));
  for (const s of series) {
    if (s.values.length < 2) continue;
    // The last HISTORY seconds, right-aligned.
    const step = 590 / Math.max(s.values.length - 1, HISTORY - 1);
    const offset = 595 - step * (s.values.length - 1);
    const points = s.values.map((v, i) => (offset + i * step).toFixed(1) + "," + (155 - (v / max) * 140).toFixed(1));
    svg("polyline", { points: points.join(" "), class: "line " + s.cls }, chart);
  }
  const top = svg("text", { x: 4, y: 12, class: "axis start" }, chart);
  top.textContent = "top: " + bytes(Math.round(max)) + "/s";
}

function drawHistogram(h) {
  const counts = h.cumulative.map((c, i) => c - (i ? h.cumulative[i - 1] : 0));
  counts.push(h.count - (h.cumulative.length ? h.cumulative[h.cumulative.length - 1] : 0));
  const labels = h.bounds_ms.map((b) => (b >= 1000 ? b / 1000 + "s" : String(b)));
  labels.push(">10s");
  bars("histogram", labels, counts);
}

function drawPeers(peers) {
  const body = $("peers").tBodies[0];
  body.replaceChildren();
  $("no-peers").hidden = peers.length > 0;
  for (const p of peers) {
    const row = body.insertRow();
    row.dataset.peer = p.address;
    row.dataset.state = p.state;
    cell(row, p.address, "mono");
    cell(row, p.direction + (p.kind ? " (" + p.kind + ")" : ""));
    cell(row, p.state);
    cell(row, p.rtt_ms === null ? "–" : p.rtt_ms.toFixed(2) + " ms", "num");
    cell(row, duration(p.uptime_secs), "num");
    cell(row, bytes(p.bytes_in), "num");
    for (const c of ["control", "relay", "bulk"]) {
      cell(row, bytes(p.classes[c].bytes_out), "num");
    }
    const queued = p.classes.control.queued + p.classes.relay.queued + p.classes.bulk.queued;
    cell(row, bytes(queued), "num" + (queued > 0 ? " warn" : ""));
    cell(row, String(p.score), "num" + (p.score > 0 ? " bad" : ""));
    const key = cell(row, p.key ? p.key.slice(0, 16) + "…" : "–", "mono");
    if (p.key) {
      key.title = p.key;
      const badge = document.createElement("span");
      badge.className = p.authenticated ? "badge ok" : "badge warn";
      badge.textContent = p.authenticated ? "authenticated" : "claimed only";
      key.appendChild(badge);
    }
  }
}

function drawJournal(entries) {
  const list = $("journal");
  list.replaceChildren();
  for (const e of entries) {
    const li = document.createElement("li");
    li.className = e.kind;
    const when = document.createElement("time");
    when.textContent = new Date(e.at_ms).toLocaleTimeString();
    li.appendChild(when);
    const what = document.createElement("span");
    what.textContent = " " + e.text;
    li.appendChild(what);
    list.appendChild(li);
  }
}

function drawBans(bans, now) {
  const list = $("api-bans");
  list.replaceChildren();
  $("no-api-bans").hidden = bans.length > 0;
  for (const b of bans) {
    const li = document.createElement("li");
    li.textContent = b.ip + " for another " + duration(Math.max(0, Math.round((b.until_ms - now) / 1000)));
    list.appendChild(li);
  }
}

function draw(d) {
  text("network", d.network);
  text("key", d.node_key.slice(0, 16) + "…");
  $("key").title = d.node_key;
  text("version", "stratad " + d.version + ", up " + duration(d.uptime_secs));
  const ready = d.peers.filter((p) => p.state === "ready").length;
  text("peer-count", ready);
  text("peer-split", d.peer_counts.inbound + " in, " + d.peer_counts.outbound + " out; address book " +
    d.address_book.new + " new, " + d.address_book.tried + " tried");
  text("sync-state", d.sync_state);
  text("sync-detail", d.sync ? "stored from peers: " + d.sync.stored.gossip + " by gossip, " +
    d.sync.stored.reconciliation + " by reconciliation, " + d.sync.stored.catchup + " by catch-up" +
    (d.sync.catching_up ? "; " + d.sync.spans_left + " spans left" : "") : "records stay on this node");
  text("store-records", count(d.store.records, "record", "records"));
  text("store-bytes", bytes(d.store.bytes) + " on disk");
  text("gossip-delivered", count(d.gossip.delivered, "new message", "new messages"));
  const seen = d.gossip.delivered + d.gossip.duplicates;
  text("gossip-duplicates", d.gossip.duplicates + " duplicates" +
    (seen ? " (" + Math.round((100 * d.gossip.duplicates) / seen) + " % of arrivals)" : ""));
  const h = d.propagation;
  text("propagation-count", count(h.count, "arrival", "arrivals"));
  const first = $("propagation-count");
  if (first.dataset.first === "") first.dataset.first = String(h.count);
  text("propagation-quantiles", "p50 " + ms(quantile(h, 0.5)) + ", p99 " + ms(quantile(h, 0.99)) +
    (h.count ? ", mean " + (h.sum_ms / h.count).toFixed(2) + " ms" : ""));
  text("bans-count", d.bans.misbehaviour + d.bans.api.length);
  text("bans-detail", d.bans.misbehaviour + " for misbehaviour, " + d.bans.api.length +
    " through the API; refused connections: " +
    d.connections.refused.banned + " banned, " + d.connections.refused.rate + " rate, " +
    d.connections.refused.limit + " limits, " + d.connections.refused.dial + " dials");
  const out = d.traffic.bytes_out;
  text("traffic-out", bytes(out[0] + out[1] + out[2]) + " out");
  let speed = "";
  if (previous) {
    const secs = Math.max(0.001, (d.at_ms - previous.at_ms) / 1000);
    const before = previous.traffic.bytes_out;
    const sent = out[0] + out[1] + out[2] - before[0] - before[1] - before[2];
    speed = "; now " + bytes(Math.max(0, Math.round(sent / secs))) + "/s out";
  }
  text("traffic-in", bytes(d.traffic.bytes_in) + " in; out by class " + bytes(out[0]) + " control, " +
    bytes(out[1]) + " relay, " + bytes(out[2]) + " bulk" + speed);
  const limited = d.rates.upload_rate || d.rates.download_rate;
  text("rates", limited ? "↑ " + rate(d.rates.upload_rate) + " ↓ " + rate(d.rates.download_rate) : "none");
  text("connections", "connections opened " + d.connections.opened.inbound + " in, " +
    d.connections.opened.outbound + " out; closed " + d.connections.closed);
  $("rates").className = "big" + (limited ? " warn" : "");

  drawHistogram(h);
  const perSec = perSecond(d.history, "messages").map((v) => Math.round(v));
  bars("rate-chart", perSec.map(() => ""), perSec, HISTORY - 1);
  lines("traffic-chart", [
    { values: perSecond(d.history, "bytes_out"), cls: "out" },
    { values: perSecond(d.history, "bytes_in"), cls: "in" },
  ]);
  drawPeers(d.peers);
  drawJournal(d.journal);
  drawBans(d.bans.api, d.at_ms);

  board.dataset.network = d.network;
  board.dataset.peers = String(ready);
  board.dataset.propagation = String(h.count);
  board.dataset.records = String(d.store.records);
  previous = d;
}

async function poll() {
  try {
    const response = await fetch("/v1/dashboard", { credentials: "same-origin", cache: "no-store" });
    if (response.status === 401) {
      board.dataset.state = "logged-out";
      $("notice").hidden = false;
      text("notice", "This session has ended: run `stratad dashboard` for a new login link.");
      text("live", "logged out");
      $("live").className = "pill bad";
      return;
    }
    if (!response.ok) throw new Error("HTTP " + response.status);
    draw(await response.json());
    polls++;
    board.dataset.polls = String(polls);
    board.dataset.state = "live";
    $("notice").hidden = true;
    text("live", "live");
    $("live").className = "pill ok";
  } catch (e) {
    board.dataset.state = "unreachable";
    text("live", "daemon unreachable");
    $("live").className = "pill bad";
  }
  setTimeout(poll, POLL_MS);
}

poll();
