"use strict";
const token = document.querySelector('meta[name="review-token"]').content;
const $ = (id) => document.getElementById(id);
let items = [], decisions = {}, pos = -1;
const records = new Map();

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

async function api(path, options) {
  const response = await fetch(path, options);
  let body = {};
  try { body = await response.json(); } catch (e) { body = {}; }
  if (!response.ok) throw new Error(body.error || ("HTTP " + response.status));
  return body;
}

function status(text, isError) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

function paint(li) {
  const item = items[Number(li.dataset.pos)];
  const d = decisions[item.index];
  li.dataset.decision = d ? d.decision : "";
  li.querySelector(".mark").textContent = d ? (d.decision === "right" ? "\u2713" : "\u2717") : "\u00b7";
  li.classList.toggle("current", Number(li.dataset.pos) === pos);
}

function renderList() {
  const nav = $("list");
  nav.replaceChildren();
  const sizes = {};
  items.forEach((item) => { sizes[item.group] = (sizes[item.group] || 0) + 1; });
  let group = null, list = null;
  items.forEach((item, i) => {
    if (item.group !== group) {
      group = item.group;
      nav.append(el("h4", group + " (" + sizes[group] + ")"));
      list = el("ul");
      nav.append(list);
    }
    const li = el("li");
    li.dataset.pos = String(i);
    li.dataset.index = String(item.index);
    li.append(el("span", "", "mark"), el("span", "#" + item.index + " " + item.id));
    li.addEventListener("click", () => show(i));
    list.append(li);
    paint(li);
  });
  counts();
}

function counts() {
  const decided = items.filter((item) => decisions[item.index]).length;
  $("counts").textContent = (pos + 1) + " of " + items.length + " \u00b7 " + decided + " decided";
}

function fillTable(table, headers, rows) {
  table.replaceChildren();
  const head = el("tr");
  headers.forEach((h) => head.append(el("th", h)));
  table.append(head);
  rows.forEach((cells) => {
    const tr = el("tr");
    cells.forEach((cell) => {
      const td = el("td");
      if (cell instanceof Node) td.append(cell); else td.textContent = cell === null || cell === undefined ? "" : String(cell);
      tr.append(td);
    });
    table.append(tr);
  });
}

function verdictText(r) {
  const f = r.failed;
  if (f && f.truncated) return "Kept up to turn " + (f.turn - 1) + ": turn " + f.turn + " failed at " + f.stage + ": " + f.reason + " \u2014 " + f.message;
  if (r.kind === "kept") return "Kept";
  return "Discarded at " + r.stage + ": " + r.reason + (f ? " (turn " + f.turn + ")" : "") + " \u2014 " + r.message;
}

function messageBlock(m, failed) {
  const box = el("div", null, "msg " + m.role + (m.error ? " error" : "") + (m.failed ? " failed" : ""));
  let head = m.role;
  if (m.role === "assistant") head = "assistant \u00b7 turn " + m.turn;
  if (m.role === "tool") head = "tool result \u00b7 " + m.tool + (m.call_id ? " (call " + m.call_id + ")" : "") + (m.error ? " \u00b7 error message (kept as it is)" : "");
  if (m.role === "cut") head = "turn " + m.turn + " \u00b7 not kept: the conversation was cut before it";
  if (m.failed && failed) head += " \u00b7 \u2717 failed here: " + failed.stage + " / " + failed.reason;
  box.append(el("h4", head));
  if (m.role === "assistant" && m.cot) box.append(el("pre", m.cot, "cot"));
  if (m.role === "cut" && failed) box.append(el("pre", failed.message));
  else box.append(el("pre", m.text));
  return box;
}

function renderRecord(r) {
  $("title").textContent = "Record " + r.index + " \u00b7 id " + r.id + " \u00b7 " + r.source;
  const verdict = $("verdict");
  verdict.textContent = verdictText(r);
  verdict.className = "verdict " + r.kind;
  const chat = r.conversation !== null && r.conversation !== undefined;
  $("single").hidden = chat;
  $("chat-section").hidden = !chat;
  $("conversation").replaceChildren(...(chat ? r.conversation.map((m) => messageBlock(m, r.failed)) : []));
  $("query").textContent = r.query;
  $("answer").textContent = r.answer_missing ? "(the answer could not be read)" : r.answer;
  $("cot").textContent = r.cot === null || r.cot === undefined ? "(no CoT)" : r.cot;
  $("tools").textContent = r.tools;
  const columns = ["stage", "verdict", "reason", "judge", "attempt", "message"];
  fillTable($("trail"), chat ? ["turn", ...columns] : columns,
    r.trail.map((s) => (chat ? [s.turn] : []).concat([s.stage, s.verdict, s.reason, s.judge, s.attempt, s.message])));
  $("regen-section").hidden = r.regenerations.length === 0;
  fillTable($("regen"), ["stage", "what", "rejected", "regenerated"],
    r.regenerations.map((g) => [g.stage + " / " + (g.reason || "") + (g.turn === null ? "" : " (turn " + g.turn + ")"), g.field, el("pre", g.rejected), el("pre", g.regenerated)]));
}

function renderDecision() {
  const item = items[pos];
  const d = decisions[item.index];
  $("right").setAttribute("aria-pressed", String(Boolean(d && d.decision === "right")));
  $("wrong").setAttribute("aria-pressed", String(Boolean(d && d.decision === "wrong")));
  $("decision").textContent = d ? "Your decision: verdict " + d.decision + (d.note ? " \u2014 " + d.note : "") + " (" + d.at + ")" : "Not decided yet";
  $("note").value = d ? d.note : "";
}

async function show(i) {
  if (i < 0 || i >= items.length) return;
  pos = i;
  document.querySelectorAll("#list li").forEach(paint);
  const current = document.querySelector('#list li[data-pos="' + i + '"]');
  if (current) current.scrollIntoView({block: "nearest"});
  const item = items[i];
  history.replaceState(null, "", "#" + item.index);
  renderDecision();
  counts();
  try {
    if (!records.has(item.index)) records.set(item.index, await api("/api/record?index=" + item.index));
    if (pos === i) renderRecord(records.get(item.index));
  } catch (e) {
    status("could not load record " + item.index + ": " + e.message, true);
  }
}

async function decide(decision, advance) {
  const item = items[pos];
  if (!item) return;
  status("saving\u2026", false);
  try {
    const body = JSON.stringify({index: item.index, decision: decision, note: $("note").value});
    const reply = await api("/api/decision", {
      method: "POST",
      headers: {"Content-Type": "application/json", "X-Review-Token": token},
      body: body,
    });
    if (decision === "none") delete decisions[item.index]; else decisions[item.index] = reply.saved;
    status(decision === "none" ? "cleared #" + item.index : "saved #" + item.index + ": verdict " + decision, false);
    document.querySelectorAll("#list li").forEach(paint);
    counts();
    if (advance && pos + 1 < items.length) await show(pos + 1); else renderDecision();
  } catch (e) {
    status("NOT saved (#" + item.index + "): " + e.message, true);
  }
}

$("right").addEventListener("click", () => decide("right", true));
$("wrong").addEventListener("click", () => decide("wrong", true));
$("clear").addEventListener("click", () => decide("none", false));
$("prev").addEventListener("click", () => show(pos - 1));
$("next").addEventListener("click", () => show(pos + 1));
$("note").addEventListener("change", () => {
  const d = items[pos] && decisions[items[pos].index];
  if (d) decide(d.decision, false);  // a note edited after the decision is saved with it
});
document.addEventListener("keydown", (e) => {
  if (e.target === $("note")) {
    if (e.key === "Escape") $("note").blur();
    return;
  }
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const keys = {
    r: () => decide("right", true), w: () => decide("wrong", true), u: () => decide("none", false),
    j: () => show(pos + 1), ArrowDown: () => show(pos + 1), ArrowRight: () => show(pos + 1),
    k: () => show(pos - 1), ArrowUp: () => show(pos - 1), ArrowLeft: () => show(pos - 1),
    n: () => $("note").focus(),
  };
  if (keys[e.key]) { e.preventDefault(); keys[e.key](); }
});

(async () => {
  try {
    const data = await api("/api/items");
    items = data.items;
    decisions = data.decisions;
    $("run").textContent = data.run_dir;
    $("notes").textContent = data.notes.join(" ");
    if (!items.length) { status("nothing to review: the run kept and discarded no record", false); return; }
    renderList();
    const wanted = Number(location.hash.slice(1));
    let start = location.hash ? items.findIndex((item) => item.index === wanted) : -1;
    if (start < 0) start = Math.max(0, items.findIndex((item) => !decisions[item.index]));
    await show(start);
    $("app").dataset.ready = "true";
  } catch (e) {
    status("could not load the review: " + e.message, true);
  }
})();
