// The seqlens page: build a history, ask /v1/recommend, show the list, the narrative and a heatmap.
// Plain JS, no libraries, so the page works offline. Text from the API goes in with textContent only.
"use strict";

const $ = (id) => document.getElementById(id);
const picked = [];          // [{item_id, title}] oldest first
let searchTimer = null;

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (cls) node.className = cls;
  return node;
}

function label(item) {
  return item.title ? `${item.title} (${item.item_id})` : item.item_id;
}

async function api(path, options) {
  const response = await fetch(path, options);
  let body = null;
  try { body = await response.json(); } catch (e) { body = { error: `HTTP ${response.status}` }; }
  return { ok: response.ok, status: response.status, body };
}

async function loadModel() {
  const { ok, body } = await api("/v1/model");
  if (!ok) { $("model-info").textContent = body.error; return; }
  const trained = body.trained_at ? `, trained ${body.trained_at.slice(0, 10)}` : "";
  $("model-info").textContent =
    `${body.model} · ${body.n_items} items · max_len ${body.max_len} · config ${body.config_hash}${trained}`;
  for (const m of body.explain_methods || []) {
    const option = el("option", m);
    option.value = m;
    $("method").appendChild(option);
  }
  // the library's default method, the one chosen by measurement (docs/explanations.md)
  if ((body.explain_methods || []).includes(body.default_explain_method)) $("method").value = body.default_explain_method;
}

function renderHistory() {
  const list = $("history");
  list.replaceChildren();
  picked.forEach((item, i) => {
    const li = el("li", label(item));
    li.dataset.itemId = item.item_id;
    const remove = el("button", "×");
    remove.type = "button";
    remove.title = "remove";
    remove.addEventListener("click", () => { picked.splice(i, 1); renderHistory(); });
    li.appendChild(remove);
    list.appendChild(li);
  });
}

function addItem(item) {
  picked.push(item);
  $("user").value = "";
  renderHistory();
}

async function search() {
  const q = $("search").value.trim();
  const list = $("search-results");
  if (!q) { list.replaceChildren(); return; }
  const { ok, body } = await api(`/v1/items?limit=15&q=${encodeURIComponent(q)}`);
  list.replaceChildren();
  if (!ok) { list.appendChild(el("li", body.error)); return; }
  if (!body.items.length) list.appendChild(el("li", "no item matches"));
  for (const item of body.items) {
    const li = el("li");
    const pick = el("button", label(item));
    pick.type = "button";
    pick.addEventListener("click", () => addItem(item));
    li.appendChild(pick);
    list.appendChild(li);
  }
}

async function addTypedIds() {
  const ids = $("item-ids").value.split(",").map((s) => s.trim()).filter(Boolean);
  for (const id of ids) {
    const { ok, body } = await api(`/v1/items/${encodeURIComponent(id)}`);
    // unknown ids are kept: the server reports them back and ignores them, as the API does
    addItem(ok ? body : { item_id: id, title: null });
  }
  $("item-ids").value = "";
}

function showError(message) {
  $("error").hidden = !message;
  $("error").textContent = message || "";
}

async function recommend() {
  showError("");
  const user = $("user").value.trim();
  const request = { k: Number($("k").value) || 10, attention: true };
  if (user) request.user_id = user; else request.items = picked.map((h) => h.item_id);
  const method = $("method").value;
  if (method) { request.explain = true; request.method = method; }
  let { ok, body } = await api("/v1/recommend", {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(request),
  });
  if (!ok) { showError(body.error); return; }
  renderResult(body);
}

function renderResult(body) {
  const notes = $("notes");
  notes.replaceChildren(...(body.notes || []).map((n) => el("li", n)));
  if (body.unknown_items && body.unknown_items.length)
    notes.appendChild(el("li", `unknown ids: ${body.unknown_items.slice(0, 20).join(", ")}`));
  const list = $("recommendations");
  list.replaceChildren();
  for (const r of body.recommendations) {
    const li = el("li", r.title || r.item_id);
    li.dataset.itemId = r.item_id;
    li.appendChild(el("span", `${r.item_id} · ${r.score.toFixed(3)}`, "score"));
    list.appendChild(li);
  }
  $("narrative").textContent = body.explanation ? body.explanation.narrative : "";
  drawHeatmap(body.attention, body.explanation);
}

function drawHeatmap(attention, explanation) {
  const canvas = $("heatmap");
  const ctx = canvas.getContext("2d");
  if (!attention) { canvas.height = 10; ctx.clearRect(0, 0, canvas.width, canvas.height); canvas.rows = []; return; }
  const rows = [];
  attention.weights.forEach((layer, l) => layer.forEach((w, h) => rows.push({ name: `layer ${l + 1} head ${h + 1}`, w })));
  if (explanation) {
    // attributions cover the same history positions; align them on the right (most recent) end
    const a = new Array(attention.items.length).fill(0);
    const s = explanation.attributions.map((x) => x.score);
    const offset = a.length - s.length;
    s.forEach((v, j) => { if (j + offset >= 0) a[j + offset] = v; });
    rows.push({ name: `${explanation.method} attribution`, w: a });
  }
  const n = attention.items.length, labelW = 170, cellH = 26;
  const cellW = Math.max(3, Math.min(40, Math.floor((canvas.parentElement.clientWidth - labelW - 20) / n)));
  canvas.width = labelW + n * cellW;
  canvas.height = rows.length * cellH + 4;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.font = "12px system-ui, sans-serif";
  ctx.textBaseline = "middle";
  rows.forEach((row, r) => {
    const top = Math.max(...row.w.map(Math.abs)) || 1;
    ctx.fillStyle = "#1d2330";
    ctx.fillText(row.name, 4, r * cellH + cellH / 2);
    row.w.forEach((v, j) => {
      const t = Math.abs(v) / top;  // 0..1 within the row
      const base = v < 0 ? [164, 35, 35] : [31, 79, 168];
      ctx.fillStyle = `rgba(${base[0]}, ${base[1]}, ${base[2]}, ${0.04 + 0.96 * t})`;
      ctx.fillRect(labelW + j * cellW, r * cellH + 1, cellW - (cellW > 4 ? 1 : 0), cellH - 2);
    });
  });
  canvas.rows = rows;
  canvas.items = attention.items;
  // titles for the hover text: the explanation has them for every position, the picked history for its own
  canvas.titles = {};
  for (const h of picked) if (h.title) canvas.titles[h.item_id] = h.title;
  if (explanation) for (const a of explanation.attributions) if (a.title) canvas.titles[a.item_id] = a.title;
  canvas.geometry = { labelW, cellW, cellH };
}

function heatInfo(event) {
  const canvas = $("heatmap");
  if (!canvas.rows || !canvas.rows.length) return;
  const box = canvas.getBoundingClientRect();
  const x = (event.clientX - box.left) * (canvas.width / box.width);
  const y = (event.clientY - box.top) * (canvas.height / box.height);
  const { labelW, cellW, cellH } = canvas.geometry;
  const j = Math.floor((x - labelW) / cellW), r = Math.floor(y / cellH);
  if (j < 0 || j >= canvas.items.length || r < 0 || r >= canvas.rows.length) { $("heat-info").textContent = ""; return; }
  const id = canvas.items[j];
  const name = canvas.titles[id] ? `${canvas.titles[id]} (${id})` : id;
  $("heat-info").textContent = `${canvas.rows[r].name} · position ${j + 1} of ${canvas.items.length} · ${name}: ${canvas.rows[r].w[j].toFixed(4)}`;
}

$("search").addEventListener("input", () => { clearTimeout(searchTimer); searchTimer = setTimeout(search, 150); });
$("item-ids").addEventListener("keydown", (e) => { if (e.key === "Enter") addTypedIds(); });
$("clear").addEventListener("click", () => { picked.length = 0; renderHistory(); });
$("recommend").addEventListener("click", async () => {
  if ($("item-ids").value.trim()) await addTypedIds();
  recommend();
});
$("heatmap").addEventListener("mousemove", heatInfo);
loadModel();
