"use strict";
const token = document.querySelector('meta[name="review-token"]').content;
const $ = (id) => document.getElementById(id);
let items = [], decisions = {}, pos = -1;

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

// What each record shows: the saved decision, one sent and not yet saved, or one whose save failed.
const saving = new Map(), unsaved = new Map();
// Notes typed on a record not decided yet: a note is saved with a decision, so until then it waits here, shown
// again when the record is, and the browser asks before the page is left with one.
const drafts = new Map();
let rowOf = [], saves = Promise.resolve();
const posOf = new Map();

function wanted(index) {
  return saving.get(index) || unsaved.get(index) || decisions[index];
}

function paint(i) {
  const li = rowOf[i];
  if (!li) return;
  const index = items[i].index, d = wanted(index);
  const decision = d && d.decision !== "none" ? d.decision : "";
  li.dataset.decision = decision;
  li.dataset.state = saving.has(index) ? "saving" : (unsaved.has(index) ? "unsaved" : "");
  let mark = decision ? (decision === "right" ? "\u2713" : "\u2717") : "\u00b7";
  if (li.dataset.state === "unsaved") mark = "!";
  li.querySelector(".mark").textContent = mark;
  li.title = li.dataset.state === "unsaved" ? "NOT saved: " + unsaved.get(index).error : "";
  li.classList.toggle("current", i === pos);
}

function renderList() {
  const nav = $("list");
  nav.replaceChildren();
  const sizes = {};
  items.forEach((item) => { sizes[item.group] = (sizes[item.group] || 0) + 1; });
  let group = null, list = null;
  rowOf = items.map((item, i) => {
    if (item.group !== group) {
      group = item.group;
      nav.append(el("h4", group + " (" + sizes[group] + ")"));
      list = el("ul");
      nav.append(list);
    }
    const li = el("li");
    li.dataset.pos = String(i);
    li.dataset.index = String(item.index);
    posOf.set(item.index, i);
    li.append(el("span", "", "mark"), el("span", "#" + item.index + " " + item.id));
    li.addEventListener("click", () => show(i));
    list.append(li);
    return li;
  });
  items.forEach((item, i) => paint(i));
  counts();
}

function counts() {
  const decided = items.filter((item) => decisions[item.index]).length;
  let text = (pos + 1) + " of " + items.length + " \u00b7 " + decided + " decided";
  if (saving.size) text += " \u00b7 " + saving.size + " saving";
  if (unsaved.size) text += " \u00b7 " + unsaved.size + " NOT saved";
  $("counts").textContent = text;
}

// Cells under the headers in `text` hold free text (a judge's reason, a message): they wrap anywhere.
function fillTable(table, headers, rows, text) {
  table.replaceChildren();
  const head = el("tr");
  headers.forEach((h) => head.append(el("th", h)));
  table.append(head);
  rows.forEach((cells) => {
    const tr = el("tr");
    cells.forEach((cell, i) => {
      const td = el("td", undefined, text.includes(headers[i]) ? "t" : "");
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
    r.trail.map((s) => (chat ? [s.turn] : []).concat([s.stage, s.verdict, s.reason, s.judge, s.attempt, s.message])), ["message"]);
  $("regen-section").hidden = r.regenerations.length === 0;
  fillTable($("regen"), ["stage", "what", "rejected", "regenerated"],
    r.regenerations.map((g) => [g.stage + " / " + (g.reason || "") + (g.turn === null ? "" : " (turn " + g.turn + ")"), g.field, el("pre", g.rejected), el("pre", g.regenerated)]), ["stage"]);
}

function renderDecision() {
  const index = items[pos].index, d = wanted(index);
  const decision = d && d.decision !== "none" ? d.decision : "";
  $("right").setAttribute("aria-pressed", String(decision === "right"));
  $("wrong").setAttribute("aria-pressed", String(decision === "wrong"));
  let text = "Not decided yet";
  if (saving.has(index)) text = decision ? "Saving: verdict " + decision + "\u2026" : "Clearing\u2026";
  else if (unsaved.has(index)) text = "NOT saved: " + (decision ? "verdict " + decision : "clearing") + " (" + d.error + "); press the key again";
  else if (d) text = "Your decision: verdict " + d.decision + (d.note ? " \u2014 " + d.note : "") + " (" + d.at + ")";
  else if (drafts.has(index)) text = "Not decided yet: the note is saved with your decision (r or w)";
  $("decision").textContent = text;
  if (document.activeElement !== $("note")) $("note").value = d ? d.note : (drafts.get(index) || "");
}

// Records by index once fetched; the next record is fetched ahead, so a step is shown at once.
const loaded = new Map(), loading = new Map();

function load(index) {
  if (!loading.has(index)) {
    const request = api("/api/record?index=" + index).then((r) => { loaded.set(index, r); return r; });
    request.catch(() => loading.delete(index));  // tried again when asked again
    loading.set(index, request);
  }
  return loading.get(index);
}

async function show(i) {
  if (i < 0 || i >= items.length) return;
  const before = pos;
  pos = i;
  paint(before);
  paint(i);
  rowOf[i].scrollIntoView({block: "nearest"});
  const item = items[i];
  history.replaceState(null, "", "#" + item.index);
  renderDecision();
  counts();
  $("app").dataset.loading = String(!loaded.has(item.index));  // the record before it is dimmed until it comes
  try {
    const record = loaded.get(item.index) || await load(item.index);
    if (pos === i) renderRecord(record);
  } catch (e) {
    status("could not load record " + item.index + ": " + e.message, true);
  }
  if (pos === i) $("app").dataset.loading = "false";
  if (i + 1 < items.length) load(items[i + 1].index).catch(() => {});
}

// A decision is taken for the record on screen when its key is pressed, and the page moves on at
// once; the saves go to the server one after another, in the order they were made.
function decide(decision, advance) {
  const item = items[pos];
  if (!item) return;
  const entry = {index: item.index, decision: decision, note: $("note").value};
  drafts.delete(item.index);
  saving.set(item.index, entry);
  unsaved.delete(item.index);
  paint(pos);
  if (advance && pos + 1 < items.length) show(pos + 1); else { renderDecision(); counts(); }
  saves = saves.then(() => save(entry)).catch((e) => status("review page error: " + e.message, true));
}

async function save(entry) {
  if (!unsaved.size) status("saving #" + entry.index + "\u2026", false);
  try {
    const reply = await api("/api/decision", {
      method: "POST",
      headers: {"Content-Type": "application/json", "X-Review-Token": token},
      body: JSON.stringify(entry),
    });
    if (entry.decision === "none") delete decisions[entry.index]; else decisions[entry.index] = reply.saved;
  } catch (e) {
    if (saving.get(entry.index) === entry) unsaved.set(entry.index, {...entry, error: e.message});
  }
  if (saving.get(entry.index) === entry) saving.delete(entry.index);
  paint(posOf.get(entry.index));
  if (items[pos].index === entry.index) renderDecision();
  counts();
  saved(entry);
}

function saved(entry) {
  if (unsaved.size) {
    const which = [...unsaved.keys()].map((index) => "#" + index).join(", ");
    const last = [...unsaved.values()].pop();
    status("NOT saved (" + which + "): " + last.error + "; marked ! in the list: decide again", true);
  } else if (!saving.size) {
    status(entry.decision === "none" ? "cleared #" + entry.index : "saved #" + entry.index + ": verdict " + entry.decision, false);
  }
}

window.addEventListener("beforeunload", (e) => {
  if (saving.size || unsaved.size || drafts.size) e.preventDefault();  // the browser asks before a decision or note not saved is lost
});
// A clicked button gives the focus back: kept, Space (to scroll the record) or Enter would press it
// again, deciding the next record unread.
function button(id, action) {
  $(id).addEventListener("click", (e) => { e.currentTarget.blur(); action(); });
}
button("right", () => decide("right", true));
button("wrong", () => decide("wrong", true));
button("clear", () => decide("none", false));
button("prev", () => show(pos - 1));
button("next", () => show(pos + 1));
$("note").addEventListener("change", () => {
  const d = items[pos] && wanted(items[pos].index);
  if (d && d.decision !== "none") decide(d.decision, false);  // a note edited after the decision is saved with it
  else if (items[pos]) {
    if ($("note").value) drafts.set(items[pos].index, $("note").value); else drafts.delete(items[pos].index);
    renderDecision();
  }
});
document.addEventListener("keydown", (e) => {
  if (e.target === $("note")) {
    if (e.key === "Escape") $("note").blur();
    return;
  }
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  if (e.repeat && ["r", "w", "u"].includes(e.key)) { e.preventDefault(); return; }  // a held key decides one record, not a run of them
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
