// The playground page of `pyexec serve` (/playground): a CodeMirror editor,
// stdin, optional tests, the policy, and the run's output as it arrives.
// Everything the program prints is inserted as text, never as HTML.
import { EditorView, basicSetup } from "codemirror";
import { keymap } from "@codemirror/view";
import { python } from "@codemirror/lang-python";

const $ = (id) => document.getElementById(id);

const EXAMPLE = 'name = input() or "world"\nfor i in range(3):\n    print(f"hello, {name}", i)\n';

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

// The editor lives in a shadow root: there CodeMirror installs its styles
// as constructed style sheets, which the page's Content-Security-Policy
// (style-src 'self', no inline <style>) allows; in the document itself it
// would add <style> elements, which that policy blocks.
const shadow = $("editor").attachShadow({ mode: "open" });
const editor = new EditorView({
  doc: EXAMPLE,
  root: shadow,
  parent: shadow,
  extensions: [
    keymap.of([{ key: "Mod-Enter", run: () => { run(); return true; } }]),
    basicSetup,
    python(),
    EditorView.theme({
      "&": { height: "22rem", fontSize: "0.9rem" },
      ".cm-scroller": { fontFamily: "ui-monospace, monospace" },
    }),
  ],
});
// The end-to-end test and scripts drive the editor through this.
window.pyexecEditor = editor;

function apiHeaders(extra) {
  const h = Object.assign({ "Content-Type": "application/json" }, extra);
  const key = $("apikey").value.trim();
  if (key) h.Authorization = "Bearer " + key;
  return h;
}

async function loadConfig() {
  let cfg = { policies: [], defaultPolicy: null, apiKeyRequired: false };
  try {
    const r = await fetch("/playground/config.json", { cache: "no-store" });
    if (r.ok) cfg = await r.json();
  } catch (e) {
    // keep the defaults: the service picks its default policy
  }
  const sel = $("policy");
  sel.replaceChildren();
  if (!cfg.policies.length) sel.append(el("option", { value: "" }, "(service default)"));
  for (const p of cfg.policies) {
    const o = el("option", { value: p }, p);
    if (p === cfg.defaultPolicy) o.selected = true;
    sel.append(o);
  }
  $("apikey-label").hidden = !cfg.apiKeyRequired;
  document.body.dataset.ready = "true";
}

function addCase(name, stdin, expected) {
  const tr = el("tr", {},
    el("td", {}, el("input", { class: "case-name", placeholder: "test " + ($("cases").tBodies[0].rows.length + 1) })),
    el("td", {}, el("textarea", { class: "case-stdin", rows: "2", spellcheck: "false" })),
    el("td", {}, el("textarea", { class: "case-expected", rows: "2", spellcheck: "false" })),
    el("td", {}, el("button", { type: "button", class: "case-remove", title: "remove" }, "×")));
  tr.querySelector(".case-name").value = name || "";
  tr.querySelector(".case-stdin").value = stdin || "";
  tr.querySelector(".case-expected").value = expected || "";
  tr.querySelector(".case-remove").addEventListener("click", () => tr.remove());
  $("cases").tBodies[0].append(tr);
  $("testing").open = true;
}

function request() {
  const body = { code: editor.state.doc.toString(), stdin: $("stdin").value };
  if ($("policy").value) body.policy = $("policy").value;
  if ($("runtests").checked) {
    body.runTests = true;
    body.testCode = $("testcode").value;
  }
  const cases = [...$("cases").tBodies[0].rows].map((tr) => {
    const c = { stdin: tr.querySelector(".case-stdin").value, expectedOutput: tr.querySelector(".case-expected").value };
    const n = tr.querySelector(".case-name").value.trim();
    if (n) c.name = n;
    return c;
  });
  if (cases.length) body.tests = cases;
  return body;
}

function clear() {
  $("output").replaceChildren();
  $("summary").replaceChildren();
  $("message").textContent = "";
  $("tests").replaceChildren();
  $("images").replaceChildren();
}

function appendOutput(text, stream) {
  const out = $("output");
  const last = out.lastChild;
  if (last && last.dataset.stream === stream) last.textContent += text;
  else {
    const s = el("span", { class: stream, "data-stream": stream });
    s.textContent = text;
    out.append(s);
  }
  out.scrollTop = out.scrollHeight;
}

function fmt(n, unit) {
  return (Math.round(n * 10) / 10).toLocaleString("en") + " " + unit;
}

function showResult(r) {
  const verdict = r.verdict || r.status;
  const good = verdict === "ok" || verdict === "accepted";
  const sum = $("summary");
  sum.replaceChildren(
    el("span", { id: "verdict", class: "verdict " + (good ? "good" : "bad") }, verdict),
    el("span", { id: "time", title: "wall time (CPU time)" },
      "time " + fmt(r.time.wallMs, "ms") + " (CPU " + fmt(r.time.cpuMs, "ms") + ")"),
    el("span", { id: "memory", title: "peak memory of the process tree" }, "memory " + fmt(r.memory.peakKb / 1024, "MiB")));
  if (r.verdict && r.status !== r.verdict) sum.append(el("span", {}, "run: " + r.status));
  if (r.summary) sum.append(el("span", {}, r.summary.passed + "/" + r.summary.total + " cases passed"));
  $("message").textContent = r.message || "";
  if (r.tests) showTests(r.tests);
  for (const img of r.images || []) {
    if (img.format !== "png" || typeof img.data !== "string") continue;
    const i = el("img", { alt: "figure " + ($("images").children.length + 1), src: "data:image/png;base64," + img.data });
    if (img.width) i.width = img.width;
    $("images").append(i);
  }
}

function showTests(tests) {
  const tb = el("tbody");
  for (const t of tests) {
    const detail = el("td", { class: "mono" });
    if (t.difference) {
      const d = t.difference;
      detail.append("line " + d.line + ": ",
        el("div", { class: "diff" }, "expected ", el("ins", {}, d.expected === null ? "(no line)" : JSON.stringify(d.expected))),
        el("div", { class: "diff" }, "actual   ", el("del", {}, d.actual === null ? "(no line)" : JSON.stringify(d.actual))));
    } else if (t.message) detail.append(t.message);
    tb.append(el("tr", { class: "case-result" },
      el("td", {}, t.name),
      el("td", { class: t.status === "passed" ? "passed" : "failed" }, t.status),
      el("td", {}, fmt(t.timeMs, "ms")),
      detail));
  }
  $("tests").replaceChildren(el("table", { id: "test-results" },
    el("thead", {}, el("tr", {}, el("th", {}, "case"), el("th", {}, "status"), el("th", {}, "time"), el("th", {}, "difference"))),
    tb));
}

async function showError(resp) {
  let msg = "HTTP " + resp.status;
  try {
    const j = await resp.json();
    if (j.error) msg += " " + j.error.code + ": " + j.error.message;
  } catch (e) {
    // not JSON: the status alone
  }
  if (resp.status === 401) $("apikey-label").hidden = false;
  $("summary").replaceChildren(el("span", { id: "verdict", class: "verdict bad" }, "error"));
  $("message").textContent = msg;
}

// Server-Sent Events over fetch(): EventSource cannot POST. Events are
// separated by a blank line; each has `event:` and one `data:` line of JSON.
async function stream(resp) {
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  let result = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value.replace(/\r\n/g, "\n");
    let end;
    while ((end = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, end);
      buf = buf.slice(end + 2);
      let event = "message";
      let data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data += line.slice(5).replace(/^ /, "");
      }
      if (!data) continue;
      const v = JSON.parse(data);
      if (event === "stdout" || event === "stderr") appendOutput(v, event);
      else if (event === "result") result = v;
    }
  }
  return result;
}

async function run() {
  const button = $("run");
  if (button.disabled) return;
  button.disabled = true;
  clear();
  $("summary").append(el("span", { class: "running" }, "running…"));
  try {
    const body = request();
    // Graded test cases are answered whole, not streamed (docs/api.md).
    const live = !body.tests;
    const resp = await fetch("/api/execute", {
      method: "POST",
      headers: apiHeaders(live ? { Accept: "text/event-stream" } : {}),
      body: JSON.stringify(body),
    });
    const type = resp.headers.get("Content-Type") || "";
    if (type.startsWith("text/event-stream")) {
      const r = await stream(resp);
      if (r) showResult(r);
      else throw new Error("the stream ended without a result");
    } else if (resp.ok || (resp.status === 500 && type.startsWith("application/json"))) {
      const r = await resp.json();
      if (r.error) throw new Error(r.error.message);
      appendOutput(r.stdout, "stdout");
      if (r.stderr) appendOutput(r.stderr, "stderr");
      showResult(r);
    } else await showError(resp);
  } catch (e) {
    $("summary").replaceChildren(el("span", { id: "verdict", class: "verdict bad" }, "error"));
    $("message").textContent = String(e.message || e);
  } finally {
    button.disabled = false;
    document.body.dataset.runs = String(Number(document.body.dataset.runs || 0) + 1);
  }
}

$("run").addEventListener("click", run);
$("addcase").addEventListener("click", () => addCase());
loadConfig();
