// tracehouse trace explorer: plain ES module over the query API, no build step.
// Every piece of data goes into the page as text (textContent), never as HTML, so span
// names, attributes and message content cannot inject markup or script.

const main = document.getElementById("main");

// ---------------------------------------------------------------- small helpers

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

class ApiError extends Error {
  constructor(message, status = 0) {
    super(message);
    this.status = status;
  }
}

// An API key (when the service requires one) lives for the browser tab only: never in
// the URL (links are shared), never in localStorage (it outlives the session).
const KEY_STORAGE = "tracehouse.apiKey";

async function api(path, { method = "GET", body } = {}) {
  let response;
  const headers = { accept: "application/json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  const key = sessionStorage.getItem(KEY_STORAGE);
  if (key) headers.authorization = `Bearer ${key}`;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    throw new ApiError(`The query API did not answer (${err.message}).`);
  }
  const answer = await response.json().catch(() => null);
  if (!response.ok) {
    // the API's `{"error": {"message"}}`, or the Jaeger envelope's `{"errors": [{"msg"}]}`
    const detail = answer && answer.error ? answer.error.message
      : answer && answer.errors && answer.errors.length ? answer.errors[0].msg : response.statusText;
    throw new ApiError(`${response.status}: ${detail}`, response.status);
  }
  return answer;
}

/** A link that downloads what the API serves at `href`. Without a key the browser streams the
 * file to disk itself; a key cannot ride on a link, so with one the file is fetched with it
 * (and held in memory) first. */
function downloadLink(text, href, testid) {
  const save = async (event) => {
    const key = sessionStorage.getItem(KEY_STORAGE);
    if (!key) return;
    event.preventDefault();
    const response = await fetch(href, { headers: { authorization: `Bearer ${key}` } });
    if (!response.ok) {
      const body = await response.json().catch(() => null);
      alert(`${response.status}: ${body && body.error ? body.error.message : response.statusText}`);
      return;
    }
    const name = /filename="([^"]+)"/.exec(response.headers.get("content-disposition") || "");
    const url = URL.createObjectURL(await response.blob());
    const a = el("a", { href: url, download: name ? name[1] : "" });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  };
  return el("a", { href, download: "", class: "download", "data-testid": testid, text, onclick: save });
}

function showError(container, err) {
  container.append(el("div", { class: "error", role: "alert", text: err.message || String(err) }));
  if (err.status === 401 || err.status === 403) container.append(keyForm(err.status));
}

/** Asks for an API key (a read or full key) when the API refuses the page's calls. */
function keyForm(status, refused = "This key cannot read here; use a read or full key") {
  const input = el("input", { type: "password", name: "api-key", autocomplete: "off", "aria-label": "API key",
                              placeholder: "thk_…" });
  const form = el("form", { class: "filters api-key" },
    el("label", {}, status === 403 ? refused : "API key", input),
    el("button", { type: "submit", text: "Use key" }),
    sessionStorage.getItem(KEY_STORAGE) ? el("button", { type: "button", text: "Forget key",
      onclick: () => { sessionStorage.removeItem(KEY_STORAGE); route(); } }) : null);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (input.value.trim()) sessionStorage.setItem(KEY_STORAGE, input.value.trim());
    route();
  });
  return form;
}

const NS_PER_MS = 1e6;

function fmtDuration(ns) {
  if (ns === null || ns === undefined) return "";
  const ms = ns / NS_PER_MS;
  if (ms < 1) return `${(ns / 1e3).toFixed(0)} µs`;
  if (ms < 1000) return `${ms.toFixed(ms < 10 ? 2 : 0)} ms`;
  return `${(ms / 1000).toFixed(2)} s`;
}

function fmtCost(usd) {
  if (usd === null || usd === undefined) return "";
  if (usd === 0) return "$0";
  return usd < 0.01 ? `$${usd.toPrecision(3)}` : `$${usd.toFixed(4)}`;
}

function fmtInt(n) {
  return n === null || n === undefined ? "" : Number(n).toLocaleString("en-US");
}

function fmtTime(unixNano) {
  const ms = Number(BigInt(unixNano) / 1000000n);
  return new Date(ms).toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
}

// ---------------------------------------------------------------- routing: the URL is the state

function params() {
  return new URLSearchParams(location.search);
}

function navigate(next, { replace = false } = {}) {
  const query = next.toString();
  const url = query ? `/?${query}` : "/";
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  route();
}

function route() {
  const p = params();
  main.replaceChildren();
  const trace = p.get("trace");
  const view = trace ? "trace"
    : p.get("view") === "prompts" ? (p.get("prompt") !== null ? "prompt" : "prompts")
    : p.get("view") === "sessions" ? (p.get("session") !== null ? "session" : "sessions")
    : p.get("view") === "overview" ? "overview"
    : p.get("view") === "dependencies" ? "dependencies"
    : p.get("view") === "experiments" ? (p.get("run") !== null ? "run" : p.get("experiment") !== null ? "experiment" : "experiments")
    : "traces";
  for (const link of document.querySelectorAll("[data-nav]")) {
    const section = { prompt: "prompts", session: "sessions", trace: "traces", experiment: "experiments", run: "experiments" }[view] || view;
    link.toggleAttribute("aria-current", link.dataset.nav === section);
  }
  document.title = `${trace ? `trace ${trace.slice(0, 8)}` : view === "prompt" ? p.get("prompt")
    : view === "session" ? `session ${p.get("session")}` : view === "experiment" ? `experiment ${p.get("experiment")}`
    : view === "run" ? `run ${p.get("run").slice(0, 8)}` : view} · tracehouse`;
  const render = { trace: () => renderTrace(trace, p), prompts: () => renderPrompts(p),
                   prompt: () => renderPrompt(p.get("prompt"), p), sessions: () => renderSessions(p),
                   session: () => renderSession(p.get("session"), p), overview: () => renderOverview(p),
                   experiments: () => renderExperiments(), experiment: () => renderExperiment(p.get("experiment")),
                   run: () => renderRun(p.get("run")), traces: () => renderTraces(p),
                   dependencies: () => renderDependencies(p) }[view];
  render().catch((err) => showError(main, err));
}

window.addEventListener("popstate", route);

// ---------------------------------------------------------------- traces page

const RANGES = [["15m", 15 * 60], ["1h", 3600], ["6h", 6 * 3600], ["24h", 86400], ["7d", 7 * 86400]];
const TEXT_FILTERS = [
  ["service", "service"], ["provider", "provider"], ["model", "model"], ["session", "session"],
  ["user", "user"], ["prompt", "prompt"], ["prompt_version", "prompt version"], ["span_name", "span name"],
  ["min_cost_usd", "min cost $"], ["max_cost_usd", "max cost $"], ["min_tokens", "min tokens"],
  ["max_tokens", "max tokens"], ["min_duration_ms", "min duration ms"], ["max_duration_ms", "max duration ms"],
];
const SORTS = [["time", "time"], ["cost", "cost"], ["tokens", "tokens"], ["duration", "duration"]];
const ORDERS = [["desc", "↓ newest / largest first"], ["asc", "↑ oldest / smallest first"]];
// The GenAI span kinds, then OpenTelemetry's (the API tells them apart by name).
const SPAN_KINDS = ["agent", "chain", "llm", "embedding", "tool", "retriever", "reranker", "guardrail",
                    "evaluator", "workflow", "task", "prompt", "memory"];
const OTEL_KINDS = ["server", "client", "internal", "producer", "consumer"];
// Attribute filters: `attr.<key>=<op>:<value>` in the URL and the API (query/README.md).
const ATTR_OPS = [["eq", "="], ["ne", "≠"], ["contains", "contains"], ["gt", ">"], ["gte", "≥"], ["lt", "<"],
                  ["lte", "≤"], ["exists", "exists"]];
const ATTR_PREFIX = "attr.";
const API_FILTERS = [...TEXT_FILTERS.map(([name]) => name), "attr", "score", "status", "span_kind", "sort", "order",
                     "cursor", "limit"];
const SCORE_COLUMNS = 6; // score names shown as columns of the trace list, at most

/** The URL's attribute filters as [key, op, value] rows (the older `attr=key=value` too). */
function attrFilters(p) {
  const rows = [];
  for (const [name, value] of p) {
    if (name === "attr") {
      const at = value.indexOf("=");
      if (at > 0) rows.push([value.slice(0, at), "eq", value.slice(at + 1)]);
    } else if (name.startsWith(ATTR_PREFIX) && name.length > ATTR_PREFIX.length) {
      const key = name.slice(ATTR_PREFIX.length);
      const colon = value.indexOf(":");
      const op = colon > 0 ? value.slice(0, colon) : "";
      if (value === "exists") rows.push([key, "exists", ""]);
      else if (ATTR_OPS.some(([o]) => o === op)) rows.push([key, op, value.slice(colon + 1)]);
      else rows.push([key, "eq", value]);
    }
  }
  return rows;
}

/** One attribute filter as the API's parameter value; `eq:` only where the value needs it. */
function attrValue(op, value) {
  if (op === "exists") return "exists";
  if (op !== "eq") return `${op}:${value}`;
  const looksLikeOp = value === "exists" || ATTR_OPS.some(([o]) => value.startsWith(`${o}:`));
  return looksLikeOp ? `eq:${value}` : value;
}

/** The preset range `since` (or `fallback`) as unix seconds ending now. */
function rangeParams(p, fallback = "24h") {
  const preset = (name) => RANGES.find(([n]) => n === name);
  const since = preset(p.get("since")) || preset(fallback);
  const end = Date.now() / 1000;
  return { start: (end - since[1]).toFixed(3), end: end.toFixed(3) };
}

/** The preset time-range menu; with `absolute`, a from–to range is shown as chosen instead. */
function sinceSelect(p, fallback, props = {}, absolute = false) {
  const current = p.get("since") || fallback;
  return el("select", { name: "since", "aria-label": "time range", ...props },
    absolute ? el("option", { value: "", selected: true, text: "from – to" }) : null,
    RANGES.map(([name]) => el("option", { value: name, selected: !absolute && current === name, text: `last ${name}` })));
}

function searchQuery(p) {
  const q = new URLSearchParams();
  for (const name of API_FILTERS) {
    for (const value of p.getAll(name)) if (value !== "") q.append(name, value);
  }
  for (const [name, value] of p) if (name.startsWith(ATTR_PREFIX)) q.append(name, value);
  if (p.get("start") || p.get("end")) {
    if (p.get("start")) q.set("start", p.get("start"));
    if (p.get("end")) q.set("end", p.get("end"));
  } else {
    const { start, end } = rangeParams(p, "1h");
    q.set("start", start);
    q.set("end", end);
  }
  if (!q.has("limit")) q.set("limit", "50");
  return q;
}

/** Unix seconds (or RFC 3339) as a datetime-local input's value, in the browser's time zone. */
function localInput(value) {
  if (!value) return "";
  const ms = /^\d+(\.\d+)?$/.test(value) ? Number(value) * 1000 : Date.parse(value);
  if (Number.isNaN(ms)) return "";
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60000);
  return d.toISOString().slice(0, 19);
}

function filterForm(p) {
  const absolute = Boolean(p.get("start") || p.get("end"));
  const since = sinceSelect(p, "1h", {}, absolute);
  const from = el("input", { type: "datetime-local", step: 1, name: "from", value: localInput(p.get("start")) });
  const to = el("input", { type: "datetime-local", step: 1, name: "to", value: localInput(p.get("end")) });
  const status = el("select", { name: "status", "aria-label": "status" },
    [["", "any status"], ["error", "error"], ["ok", "ok"]].map(([value, label]) =>
      el("option", { value, selected: (p.get("status") || "") === value, text: label })));
  const sort = el("select", { name: "sort", "aria-label": "sort" },
    SORTS.map(([value, label]) => el("option", { value, selected: (p.get("sort") || "time") === value, text: label })));
  const order = el("select", { name: "order", "aria-label": "order" },
    ORDERS.map(([value, label]) => el("option", { value, selected: (p.get("order") || "desc") === value, text: label })));
  const kind = el("select", { name: "span_kind", "aria-label": "span kind" },
    el("option", { value: "", text: "any kind" }),
    el("optgroup", { label: "GenAI" }, SPAN_KINDS.map((k) => el("option", { value: k, selected: p.get("span_kind") === k, text: k }))),
    el("optgroup", { label: "OpenTelemetry" }, OTEL_KINDS.map((k) => el("option", { value: k, selected: p.get("span_kind") === k, text: k }))));
  const inputs = TEXT_FILTERS.map(([name, label]) =>
    el("label", {}, label, el("input", { name, value: p.get(name) || "", autocomplete: "off" })));
  // One row per attribute filter in the URL, and an empty one to add another.
  const attrRow = ([key, op, value]) => el("fieldset", { class: "attr-filter" },
    el("label", {}, "attribute", el("input", { name: "attr_key", value: key, autocomplete: "off", placeholder: "key" })),
    el("label", {}, "operator", el("select", { name: "attr_op", "aria-label": "attribute operator" },
      ATTR_OPS.map(([o, label]) => el("option", { value: o, selected: o === op, text: label })))),
    el("label", {}, "value", el("input", { name: "attr_value", value, autocomplete: "off" })));
  const attrs = [...attrFilters(p), ["", "eq", ""]].map(attrRow);
  // Score filters (`helpfulness>=0.8`, `verdict=pass`): one input per filter in the URL, and an empty one.
  const scoreInputs = [...p.getAll("score"), ""].map((value, i) => el("label", {}, i ? "and score" : "score",
    el("input", { name: "score", value, autocomplete: "off", placeholder: "name>=0.8", "data-testid": "score-filter" })));
  const form = el("form", { class: "filters", role: "search" },
    el("label", {}, "time range", since), el("label", {}, "from", from), el("label", {}, "to", to),
    el("label", {}, "sort", sort), el("label", {}, "order", order), el("label", {}, "status", status),
    el("label", {}, "span kind", kind), inputs, attrs, scoreInputs,
    el("button", { type: "submit", text: "Search" }));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    const data = new FormData(form);
    const [keys, ops, values] = [data.getAll("attr_key"), data.getAll("attr_op"), data.getAll("attr_value")];
    keys.forEach((key, i) => { if (key.trim()) next.append(`${ATTR_PREFIX}${key.trim()}`, attrValue(ops[i], values[i])); });
    for (const [name, value] of data) {
      if (value === "" || name.startsWith("attr_")) continue;
      if (name === "order" && value === "desc") continue;  // the default: kept out of the URL
      // An absolute range (either end) wins over the preset; the URL keeps unix seconds.
      if (name === "from" || name === "to") next.set(name === "from" ? "start" : "end", String(Date.parse(value) / 1000));
      else next.append(name, value);
    }
    if (next.has("start") || next.has("end")) next.delete("since");
    navigate(next);
  });
  // Choosing a preset clears the absolute range.
  since.addEventListener("change", () => { from.value = ""; to.value = ""; });
  return form;
}

/** The export of every trace the list's filters find (its range and sort; not its page). */
function exportLinks(query) {
  const href = (format) => {
    const q = new URLSearchParams(query);
    q.delete("limit");
    q.delete("cursor");
    q.set("format", format);
    return `/api/v1/traces/export?${q}`;
  };
  return el("span", { class: "downloads" }, "Download every matching trace: ",
    downloadLink("JSONL", href("jsonl"), "export-jsonl"), " · ", downloadLink("Parquet", href("parquet"), "export-parquet"));
}

async function renderTraces(p) {
  main.append(el("h1", { text: "Traces" }), filterForm(p));
  const results = el("section", { "aria-live": "polite" });
  main.append(results);
  const query = searchQuery(p);
  const data = await api(`/api/v1/traces?${query}`);
  if (data.totals) {
    const t = data.totals;
    // Over a range of very many traces the API estimates the totals (query/README.md).
    const about = t.estimated ? "about " : "";
    results.append(el("p", { class: "totals", "data-testid": "totals",
                             title: t.estimated ? "estimated: the range holds too many traces to count exactly" : "" },
      `${about}${fmtInt(t.traces)} traces · ${about}${fmtInt(t.input_tokens)} input / ${fmtInt(t.output_tokens)} output tokens · `,
      `${about}${fmtCost(t.cost_usd) || "$0"} in total`, data.traces.length ? " · " : null,
      data.traces.length ? exportLinks(query) : null));
  }
  if (!data.traces.length) {
    const endpoint = `${location.protocol}//${location.hostname}:4318/v1/traces`;
    results.append(el("div", { class: "empty" },
      el("p", { text: p.has("cursor") ? "No more traces." : "No traces match in this time range." }),
      el("p", {}, "No traces yet? Point any OpenTelemetry SDK here: ",
        el("code", { text: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=${endpoint}` }))));
    return;
  }
  results.append(traceTable(data.traces));
  if (data.next_cursor) {
    const next = params();
    next.set("cursor", data.next_cursor);
    const older = (p.get("sort") || "time") === "time" && (p.get("order") || "desc") === "desc";
    results.append(el("div", { class: "pager" },
      el("button", { type: "button", text: older ? "Older traces →" : "Next page →", onclick: () => navigate(next) })));
  }
}

/** A trace's scores of one name in a cell: the mean of the numbers (booleans: the share of
 * true), else the most frequent label; how many when more than one. */
function scoreSummary(stats) {
  if (!stats) return "";
  const count = stats.scores > 1 ? ` (${stats.scores})` : "";
  if (stats.numeric_count) return `${fmtNumber(stats.mean)}${count}`;
  const labels = Object.keys(stats.categories);
  return labels.length ? `${labels[0]}${labels.length > 1 ? ` +${labels.length - 1}` : ""}${count}` : `–${count}`;
}

/** The trace rows of a search; a row opens its trace (Enter or click). Each score name on
 * the page is a column. */
function traceTable(traces) {
  const names = [...new Set(traces.flatMap((t) => (t.scores || []).map((s) => s.name)))].sort().slice(0, SCORE_COLUMNS);
  const rows = traces.map((t) => {
    const open = () => {  // the list's own parameters stay, so "back" returns to it as it was
      const next = params();
      next.set("trace", t.trace_id);
      next.delete("span");
      navigate(next);
    };
    return el("tr", { tabindex: 0, "data-trace-id": t.trace_id, onclick: open,
                      onkeydown: (e) => keyInList(e, open) },
      el("td", { text: fmtTime(t.start_time_unix_nano) }),
      el("td", { class: "name", text: t.root_span_name }),
      el("td", { text: t.root_service_name }),
      el("td", { text: t.models.join(", ") }),
      el("td", { class: `status-${t.status}`, text: t.status }),
      el("td", { class: "num", text: fmtDuration(t.duration_ns) }),
      el("td", { class: "num", text: fmtInt(t.span_count) }),
      el("td", { class: "num", text: fmtInt(t.input_tokens) }),
      el("td", { class: "num", text: fmtInt(t.output_tokens) }),
      el("td", { class: "num cost", text: fmtCost(t.total_cost_usd) }),
      names.map((name) => el("td", { class: "num score", "data-score": name,
        text: scoreSummary((t.scores || []).find((s) => s.name === name)) })));
  });
  const head = ["time", "root span", "service", "models", "status", "duration", "spans", "input tok", "output tok", "cost"];
  return el("table", { class: "traces" },
    el("thead", {}, el("tr", {}, head.map((h, i) => el("th", { class: i >= 5 ? "num" : null, text: h })),
      names.map((name) => el("th", { class: "num score", "data-score": name, title: `score ${name}`, text: `★ ${name}` })))),
    el("tbody", {}, rows));
}

function keyInList(event, open) {
  const row = event.currentTarget;
  const step = (node, forward) => {  // the next row a person can see (collapsed ones are skipped)
    let next = forward ? node.nextElementSibling : node.previousElementSibling;
    while (next && next.hidden) next = forward ? next.nextElementSibling : next.previousElementSibling;
    return next;
  };
  const target = event.key === "ArrowDown" ? step(row, true) : event.key === "ArrowUp" ? step(row, false) : null;
  if (event.key === "Enter") open();
  else if (target) { target.focus(); event.preventDefault(); }
}

// ---------------------------------------------------------------- one trace

const KIND_CLASS = { llm: "llm", chat: "llm", tool: "tool" };
const COLLAPSE_ABOVE = 300; // spans; a larger trace opens folded below its second level

/** Spans in waterfall order: depth-first from each root, children by start time. A span
 * whose parent was never received is shown as a root (an orphan), never hidden. */
export function waterfallOrder(spans) {
  const byId = new Map(spans.map((s) => [s.span_id, s]));
  const children = new Map();
  const roots = [];
  for (const span of spans) {
    if (span.parent_span_id && byId.has(span.parent_span_id)) {
      if (!children.has(span.parent_span_id)) children.set(span.parent_span_id, []);
      children.get(span.parent_span_id).push(span);
    } else {
      roots.push(span);
    }
  }
  const byStart = (a, b) => (BigInt(a.start_time_unix_nano) < BigInt(b.start_time_unix_nano) ? -1 : 1);
  const out = [];
  const visit = (span, depth, ancestors) => {
    const kids = (children.get(span.span_id) || []).sort(byStart);
    out.push({ span, depth, orphan: depth === 0 && !!span.parent_span_id, ancestors, children: kids.length });
    for (const child of kids) visit(child, depth + 1, [...ancestors, span.span_id]);
  };
  for (const root of roots.sort(byStart)) visit(root, 0, []);
  return out;
}

function spanKind(span) {
  return span.genai.span_kind || span.kind.toLowerCase();
}

/** A call to a model: an LLM / chat / embedding span, or a span naming a model without a GenAI kind. */
function isModelCall(span) {
  const kind = (span.genai.span_kind || "").toLowerCase();
  return ["llm", "chat", "embedding", "reranker"].includes(kind)
    || (!kind && Boolean(span.genai.request_model || span.genai.response_model));
}

async function renderTrace(traceId, p) {
  const back = params();
  back.delete("trace");
  back.delete("span");
  const otlp = `/api/v1/traces/${encodeURIComponent(traceId)}?format=otlp`;
  main.append(el("p", { class: "trace-links" }, el("a", { href: back.toString() ? `/?${back}` : "/", text: "← Traces" }),
    el("span", { class: "downloads" }, "Download: ", downloadLink("OTLP JSON", otlp, "export-otlp"))));
  const data = await api(`/api/v1/traces/${encodeURIComponent(traceId)}`);
  const spans = data.spans;
  const totals = data.totals;
  const models = [...new Set(spans.flatMap((s) => [s.genai.request_model, s.genai.response_model]).filter(Boolean))];
  const slowest = spans.filter(isModelCall).reduce((a, b) => (!a || b.duration_ns > a.duration_ns ? b : a), null);
  const withSpan = (spanId) => { const next = params(); next.set("span", spanId); return next; };
  main.append(el("h1", { text: `Trace ${traceId}` }),
    el("div", { class: "summary", "data-testid": "summary" },
      el("div", {}, el("b", { text: "duration" }), fmtDuration(totals.duration_ns)),
      el("div", {}, el("b", { text: "spans" }), fmtInt(totals.span_count)),
      el("div", {}, el("b", { text: "errors" }), fmtInt(totals.error_count)),
      el("div", {}, el("b", { text: "input / output tokens" }), `${fmtInt(totals.input_tokens) || "–"} / ${fmtInt(totals.output_tokens) || "–"}`),
      el("div", {}, el("b", { text: "cost" }), fmtCost(totals.total_cost_usd) || "–"),
      el("div", {}, el("b", { text: "models" }), models.join(", ") || "–"),
      el("div", {}, el("b", { text: "services" }), totals.services.join(", ")),
      slowest ? el("div", { "data-testid": "slowest-call" }, el("b", { text: "slowest model call" }),
        link(`${slowest.name} · ${fmtDuration(slowest.duration_ns)}`, withSpan(slowest.span_id))) : null,
      data.mlflow ? mlflowSummary(data.mlflow) : null));
  const spanNames = new Map(spans.map((s) => [s.span_id, s.name]));
  const scores = data.scores || [];
  main.append(el("section", { "data-testid": "trace-scores" }, el("h2", { text: `Scores (${scores.length})` }),
    scores.length ? scoreTable(scores, (score) => (spanNames.has(score.span_id)
      ? link(spanNames.get(score.span_id), withSpan(score.span_id)) : score.span_id || "whole trace")) : null,
    scoreForm(traceId, "", "Score this trace")));
  if (data.truncated) main.append(el("div", { class: "error", role: "alert", text: "This trace has more spans than one response holds; the newest are shown." }));

  const start = BigInt(totals.start_time_unix_nano);
  const total = Math.max(1, totals.duration_ns);
  const panel = el("aside", { class: "panel", "aria-label": "span details" });
  // Large traces open with only their top two levels shown; any span's subtree folds.
  const ordered = waterfallOrder(spans);
  const collapsed = new Set(spans.length > COLLAPSE_ABOVE
    ? ordered.filter(({ depth, children }) => depth >= 1 && children).map(({ span }) => span.span_id) : []);
  const rows = ordered.map(({ span, depth, orphan, ancestors, children }) => {
    const kind = spanKind(span);
    const error = span.status.code === "Error";
    const left = (Number(BigInt(span.start_time_unix_nano) - start) / total) * 100;
    const width = (span.duration_ns / total) * 100;
    const select = () => {
      const next = params();
      next.set("span", span.span_id);
      navigate(next, { replace: true });
    };
    const toggle = children ? el("button", { type: "button", class: "fold", "aria-label": `fold ${children} child spans`,
      text: collapsed.has(span.span_id) ? "▸" : "▾",
      onclick: (e) => { e.stopPropagation(); fold(span.span_id); } }) : el("span", { class: "fold-space" });
    return el("div", { class: "span-row", role: "treeitem", tabindex: 0, "data-span-id": span.span_id,
                       "data-ancestors": ancestors.join(" "), "aria-level": depth + 1,
                       "aria-expanded": children ? String(!collapsed.has(span.span_id)) : null,
                       "aria-selected": p.get("span") === span.span_id,
                       onclick: select, onkeydown: (e) => keyInSpans(e, select, span.span_id, children) },
      el("div", { class: "span-label", style: `padding-left: ${depth * 14}px`, title: span.name },
        toggle,
        el("span", { class: `kind kind-${KIND_CLASS[kind] || "other"}`, text: kind }),
        error ? el("span", { class: "status-error", text: "✖ " }) : null,
        orphan ? el("span", { class: "muted", text: "(parent missing) " }) : null,
        span.name),
      el("div", { class: "track" },
        el("div", { class: `bar ${KIND_CLASS[kind] || ""} ${error ? "error" : ""}`,
                    style: `left: ${left.toFixed(3)}%; width: ${width.toFixed(3)}%`,
                    title: fmtDuration(span.duration_ns) })));
  });
  const showFolds = () => {
    for (const row of rows) {
      row.hidden = row.dataset.ancestors.split(" ").some((id) => collapsed.has(id));
      if (row.hasAttribute("aria-expanded")) {
        const open = !collapsed.has(row.dataset.spanId);
        row.setAttribute("aria-expanded", String(open));
        row.querySelector(".fold").textContent = open ? "▾" : "▸";
      }
    }
  };
  const fold = (spanId, open) => {
    if (open === undefined ? collapsed.has(spanId) : open) collapsed.delete(spanId);
    else collapsed.add(spanId);
    showFolds();
  };
  const keyInSpans = (event, select, spanId, children) => {
    if (children && (event.key === "ArrowRight" || event.key === "ArrowLeft")) {
      fold(spanId, event.key === "ArrowRight");
      event.preventDefault();
    } else keyInList(event, select);
  };
  showFolds();
  main.append(el("div", { class: "trace-view" },
    el("div", { class: "waterfall", role: "tree", "aria-label": "spans" }, rows), panel));
  const selected = spans.find((s) => s.span_id === p.get("span")) || null;
  if (selected) renderSpan(panel, traceId, selected, scores.filter((score) => score.span_id === selected.span_id));
  else panel.append(el("p", { class: "muted", text: "Select a span to see its GenAI fields, attributes and events." }));
}

/** A definition list; a value is text, or an element (a link) placed as it is. */
function kv(entries) {
  return el("dl", { class: "kv" },
    entries.filter(([, v]) => v !== "" && v !== null && v !== undefined)
      .flatMap(([k, v]) => [el("dt", { text: k }),
        v instanceof Node ? el("dd", { "data-key": k }, v) : el("dd", { "data-key": k, text: String(v) })]));
}

const LONG_MESSAGE = 1200; // characters shown before a message is collapsed

function messageContent(text) {
  if (text.length <= LONG_MESSAGE) return el("div", { class: "content", text });
  return el("details", { class: "content" },
    el("summary", { text: `${text.slice(0, 300)}… (${text.length.toLocaleString("en-US")} characters)` }),
    el("div", { text }));
}

/** Messages as a chat: one bubble per message, its role, its text, its tool calls. */
function chat(title, messages) {
  if (!messages || !messages.length) return [];
  return [el("h3", { text: title }), el("div", { class: "chat", "data-chat": title },
    messages.map((m) => el("div", { class: `msg role-${(m.role || "none").replace(/[^a-z]/g, "")}`, "data-role": m.role },
      el("div", { class: "role", text: m.role || "(no role)" }),
      m.content ? messageContent(m.content) : null,
      m.tool_calls.map((call) => el("div", { class: "tool-call" },
        el("span", { class: "tool-name", text: `→ ${call.name}` }),
        el("pre", { text: call.arguments }))))))];
}

/** MLflow's view of the trace: its experiment and the run that produced it, as links. */
function mlflowSummary(info) {
  const run = info.metadata["mlflow.sourceRun"];
  return el("div", { "data-testid": "mlflow" }, el("b", { text: "MLflow" }),
    link(`experiment ${info.experiment_id}`, new URLSearchParams({ view: "experiments", experiment: info.experiment_id })),
    run ? " · " : null,
    run ? link(`run ${run.slice(0, 8)}`, new URLSearchParams({ view: "experiments", run })) : null);
}

function fmtScore(value) {
  if (value === null || value === undefined) return "–";
  if (typeof value === "number") return fmtNumber(value);
  return String(value);
}

/** Scores (the API's, MLflow assessments, evaluation events) as a table; `where` gives the
 * cell saying what was judged. */
function scoreTable(scores, where) {
  const head = ["name", "value", "kind", "source", "author", "comment", where ? "on" : null].filter(Boolean);
  return el("table", { class: "traces scores" },
    el("thead", {}, el("tr", {}, head.map((h) => el("th", { text: h })))),
    el("tbody", {}, scores.map((score) => el("tr", { "data-score-id": score.score_id },
      el("td", { class: "name", text: score.name }),
      el("td", { class: `score-value score-${typeof score.value}`,
                 text: score.error ? `failed: ${score.error}`
                   : fmtScore(score.value) + (score.label ? ` (${score.label})` : "") }),
      el("td", { text: score.kind }),
      el("td", { text: score.source }),
      el("td", { text: score.author }),
      el("td", { class: "name", text: score.comment }),
      where ? el("td", {}, where(score)) : null))));
}

const SCORE_TYPES = [["numeric", "number"], ["boolean", "yes / no"], ["categorical", "category"]];

/** A form adding a score (POST /api/v1/scores) to the trace, or to one span of it; the page
 * is read again once the score is stored. */
function scoreForm(traceId, spanId, title) {
  const field = (name, props = {}) => el("input", { name, autocomplete: "off", ...props });
  const type = el("select", { name: "data_type", "aria-label": "type" },
    SCORE_TYPES.map(([value, label]) => el("option", { value, text: label })));
  const source = el("select", { name: "source", "aria-label": "source" },
    [["human", "human"], ["llm_judge", "LLM judge"], ["code", "code"]].map(([value, label]) => el("option", { value, text: label })));
  const status = el("div", { "aria-live": "polite" });
  const form = el("form", { class: "filters score-form", "data-testid": spanId ? "span-score-form" : "trace-score-form" },
    el("label", {}, "name", field("name", { required: true, placeholder: "helpfulness" })),
    el("label", {}, "type", type),
    el("label", {}, "value", field("value", { required: true, placeholder: "0.8 · true · pass" })),
    el("label", {}, "comment", field("comment")),
    el("label", {}, "source", source),
    el("label", {}, "author", field("author")),
    el("button", { type: "submit", text: title }));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const values = Object.fromEntries(new FormData(form));
    const raw = String(values.value).trim();
    // The value as the chosen type says; what does not parse goes as typed, and the API says what is wrong.
    const value = values.data_type === "numeric" && raw !== "" && !Number.isNaN(Number(raw)) ? Number(raw)
      : values.data_type === "boolean" && ["true", "false", "yes", "no"].includes(raw.toLowerCase())
        ? ["true", "yes"].includes(raw.toLowerCase()) : raw;
    const body = { trace_id: traceId, name: String(values.name).trim(), value, data_type: values.data_type,
                   source: values.source };
    if (spanId) body.span_id = spanId;
    if (values.comment) body.comment = String(values.comment);
    if (values.author) body.author = String(values.author);
    status.replaceChildren();
    try {
      await api("/api/v1/scores", { method: "POST", body });
      route();
    } catch (err) {
      status.append(el("div", { class: "error", role: "alert", text: err.message || String(err) }));
      if (err.status === 401 || err.status === 403) {
        status.append(keyForm(err.status, "This key cannot write scores; use an ingest or full key"));
      }
    }
  });
  return el("div", { class: "score-add" }, form, status);  // the status outside: a key form cannot nest in a form
}

function renderSpan(panel, traceId, span, scores = []) {
  const g = span.genai;
  const costSource = g.cost_source === "computed" ? `computed (${g.price_version})`
    : g.cost_source === "reported" ? "reported by the client" : "";
  panel.append(el("h2", { text: span.name }),
    kv([["span id", span.span_id], ["service", span.service_name], ["kind", span.kind],
        ["status", span.status.code + (span.status.message ? `: ${span.status.message}` : "")],
        ["duration", fmtDuration(span.duration_ns)], ["start", fmtTime(span.start_time_unix_nano)]]));
  if (g.request_model || g.provider || g.input_tokens !== null || g.total_cost_usd !== null) {
    panel.append(el("h3", { text: "GenAI" }), kv([
      ["provider", g.provider], ["operation", g.operation], ["request model", g.request_model],
      ["response model", g.response_model], ["input tokens", fmtInt(g.input_tokens)],
      ["output tokens", fmtInt(g.output_tokens)], ["cached input tokens", fmtInt(g.cached_input_tokens)],
      ["reasoning tokens", fmtInt(g.reasoning_tokens)], ["total tokens", fmtInt(g.total_tokens)],
      ["tokens", g.input_tokens !== null || g.output_tokens !== null ? (g.tokens_estimated ? "estimated" : "reported") : ""],
      ["cost", g.total_cost_usd === null ? "" : `$${g.total_cost_usd}`], ["cost source", costSource],
      ["prompt", g.prompt_name ? link(`${g.prompt_name}${g.prompt_version ? ` v${g.prompt_version}` : ""}`,
        new URLSearchParams({ view: "prompts", prompt: g.prompt_name, ...(g.prompt_version ? { version: g.prompt_version } : {}) })) : ""],
      ["session", g.session_id], ["user", g.user_id]]));
  }
  panel.append(el("h3", { text: `Scores (${scores.length})` }), scores.length ? scoreTable(scores, null) : null,
    scoreForm(traceId, span.span_id, "Score this span"));
  panel.append(...chat("Input messages", span.input_messages), ...chat("Output messages", span.output_messages));
  const attrs = Object.entries(span.attributes).sort(([a], [b]) => a.localeCompare(b));
  panel.append(el("h3", { text: `Attributes (${attrs.length})` }), kv(attrs));
  for (const event of span.events) {
    panel.append(el("h3", { text: `Event: ${event.name}` }), kv(Object.entries(event.attributes)));
  }
  // GenAI events that arrived as log records (content capture, evaluations): where the
  // messages above came from when the span itself carries none.
  for (const event of span.log_events || []) {
    panel.append(el("h3", { class: "log-event", text: `GenAI event (log): ${event.name}` }),
      kv([["time", fmtTime(event.time_unix_nano)], ...Object.entries(event.attributes),
          ...(event.body && event.body !== "{}" ? [["body", event.body]] : [])]));
  }
  for (const link of span.links) {
    panel.append(el("h3", { text: "Link" }), kv([["trace", link.trace_id], ["span", link.span_id],
      ...Object.entries(link.attributes)]));
  }
  panel.append(el("h3", { text: "Resource" }), kv(Object.entries(span.resource_attributes)),
    el("h3", { text: "Scope" }), kv([["name", span.scope.name], ["version", span.scope.version]]));
}

// ---------------------------------------------------------------- sessions

async function renderSessions(p) {
  main.append(el("h1", { text: "Sessions" }));
  const form = el("form", { class: "filters", role: "search" },
    el("label", {}, "time range", sinceSelect(p, "24h")),
    el("label", {}, "user", el("input", { name: "user", value: p.get("user") || "", autocomplete: "off" })),
    el("button", { type: "submit", text: "Search" }));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = new URLSearchParams({ view: "sessions" });
    for (const [name, value] of new FormData(form)) if (value !== "") next.append(name, value);
    navigate(next);
  });
  main.append(form);
  const q = new URLSearchParams(rangeParams(p));
  if (p.get("user")) q.set("user", p.get("user"));
  const data = await api(`/api/v1/sessions?${q}`);
  if (!data.sessions.length) {
    main.append(el("div", { class: "empty" },
      el("p", { text: "No sessions in this time range." }),
      el("p", {}, "A trace joins a session when a span carries a session id: ",
        el("code", { text: "session.id" }), ", ", el("code", { text: "gen_ai.conversation.id" }),
        ", or the Langfuse, OpenInference and MLflow equivalents.")));
    return;
  }
  main.append(el("p", { class: "totals", "data-testid": "totals", text: `${fmtInt(data.total)} sessions` }));
  const rows = data.sessions.map((s) => {
    const open = () => {
      const next = params();
      next.set("session", s.session_id);
      navigate(next);
    };
    return el("tr", { tabindex: 0, "data-session": s.session_id, onclick: open, onkeydown: (e) => keyInList(e, open) },
      el("td", { class: "name", text: s.session_id }),
      el("td", { text: s.user_id }),
      el("td", { class: "num", text: fmtInt(s.turns) }),
      el("td", { text: new Date(s.first_time).toLocaleString() }),
      el("td", { text: new Date(s.last_time).toLocaleString() }),
      el("td", { class: "num", text: fmtInt(s.input_tokens) }),
      el("td", { class: "num", text: fmtInt(s.output_tokens) }),
      el("td", { class: "num", text: fmtCost(s.cost_usd) }),
      el("td", { class: s.error_spans ? "num status-error" : "num", text: fmtInt(s.error_spans) }));
  });
  const head = ["session", "user", "turns", "first", "last", "input tok", "output tok", "cost", "error spans"];
  main.append(el("table", { class: "traces sessions" },
    el("thead", {}, el("tr", {}, head.map((h, i) => el("th", { class: i === 2 || i >= 5 ? "num" : null, text: h })))),
    el("tbody", {}, rows)));
}

async function renderSession(sessionId, p) {
  const back = params();
  back.delete("session");
  main.append(el("p", {}, link("← Sessions", back)), el("h1", { text: `Session ${sessionId}` }));
  const q = new URLSearchParams({ ...rangeParams(p), session: sessionId, limit: "200" });
  const data = await api(`/api/v1/traces?${q}`);
  const t = data.totals;
  main.append(el("p", { class: "totals", "data-testid": "totals" },
    `${fmtInt(t.traces)} turns · ${fmtInt(t.input_tokens)} input / ${fmtInt(t.output_tokens)} output tokens · `,
    `${fmtCost(t.cost_usd) || "$0"} in total`));
  main.append(traceTable(data.traces));
}

// ---------------------------------------------------------------- dependencies (Jaeger's /api/dependencies)

async function renderDependencies(p) {
  main.append(el("h1", { text: "Dependencies" }));
  const form = el("form", { class: "filters", role: "search" },
    el("label", {}, "time range", sinceSelect(p, "24h")),
    el("label", {}, "service", el("input", { name: "service", value: p.get("service") || "", autocomplete: "off" })),
    el("button", { type: "submit", text: "Show" }));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = new URLSearchParams({ view: "dependencies" });
    for (const [name, value] of new FormData(form)) if (value !== "") next.append(name, value);
    navigate(next);
  });
  main.append(form);
  const range = RANGES.find(([n]) => n === p.get("since")) || RANGES.find(([n]) => n === "24h");
  const q = new URLSearchParams({ endTs: String(Date.now()), lookback: String(range[1] * 1000) });
  if (p.get("service")) q.set("service", p.get("service"));
  const edges = (await api(`/api/dependencies?${q}`)).data;
  if (!edges.length) {
    main.append(el("div", { class: "empty" },
      el("p", { text: "No calls between services in this time range." }),
      el("p", { text: "A call is a span whose parent span belongs to another service: services that pass the "
                      + "trace context on (W3C traceparent) show up here." })));
    return;
  }
  const total = edges.reduce((sum, e) => sum + e.callCount, 0);
  main.append(el("p", { class: "totals", "data-testid": "totals",
                        text: `${fmtInt(edges.length)} edges · ${fmtInt(total)} calls` }));
  const serviceLink = (name) => link(name, new URLSearchParams({ service: name, since: range[0] }));
  const rows = edges.map((e) => el("tr", { "data-edge": `${e.parent} -> ${e.child}` },
    el("td", { class: "name" }, serviceLink(e.parent)),
    el("td", { class: "arrow", text: "→" }),
    el("td", { class: "name" }, serviceLink(e.child)),
    el("td", { class: "num", text: fmtInt(e.callCount) })));
  main.append(el("table", { class: "traces dependencies" },
    el("thead", {}, el("tr", {}, el("th", { text: "caller" }), el("th", {}), el("th", { text: "called" }),
                        el("th", { class: "num", text: "calls" }))),
    el("tbody", {}, rows)));
}

// ---------------------------------------------------------------- overview (from the rollups)

const GROUPS = [["model", "model"], ["provider", "provider"], ["service", "service"], ["prompt", "prompt"]];
const METRICS = [
  ["requests", "requests", (u) => u.requests, fmtInt],
  ["cost", "cost", (u) => u.cost_usd, fmtCost],
  ["tokens", "tokens", (u) => u.total_tokens, fmtInt],
  ["errors", "errors", (u) => u.errors, fmtInt],
  ["p95", "latency p95", (u) => (u.latency_ms ? u.latency_ms.p95 : null), (ms) => (ms === null ? "" : fmtDuration(ms * NS_PER_MS))],
];
const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  for (const child of children) node.append(child);
  return node;
}

/** One line per series over time, for the chosen metric. */
function chart(series, metric, startMs, endMs) {
  const [, label, value, format] = metric;
  const width = 900, height = 220, pad = 40;
  const points = series.map((s) => s.points.map((pt) => [Date.parse(pt.time), value(pt) || 0]));
  const max = Math.max(1e-12, ...points.flat().map(([, v]) => v));
  const x = (t) => pad + ((t - startMs) / Math.max(1, endMs - startMs)) * (width - 2 * pad);
  const y = (v) => height - pad + 10 - (v / max) * (height - pad - 20);
  const palette = ["#2563eb", "#8e5ad8", "#d98a1c", "#2e7d32", "#c62828", "#0891b2", "#be185d", "#64748b"];
  const node = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img", "aria-label": `${label} over time` },
    svg("line", { x1: pad, y1: height - pad + 10, x2: width - pad, y2: height - pad + 10, class: "axis" }));
  const top = svg("text", { x: 4, y: 14, class: "tick" });
  top.textContent = format(max);
  node.append(top);
  points.forEach((pts, i) => {
    if (!pts.length) return;
    const color = palette[i % palette.length];
    node.append(svg("polyline", { points: pts.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(" "),
                                  fill: "none", stroke: color, "stroke-width": 2 }));
    for (const [t, v] of pts) node.append(svg("circle", { cx: x(t).toFixed(1), cy: y(v).toFixed(1), r: 2.5, fill: color }));
  });
  return node;
}

async function renderOverview(p) {
  const by = GROUPS.some(([g]) => g === p.get("by")) ? p.get("by") : "model";
  const metric = METRICS.find(([m]) => m === p.get("metric")) || METRICS[0];
  main.append(el("h1", { text: "Overview" }));
  const set = (key, value) => { const next = params(); next.set(key, value); navigate(next, { replace: true }); };
  main.append(el("form", { class: "filters" },
    el("label", {}, "time range", sinceSelect(p, "24h", { onchange: (e) => set("since", e.target.value) })),
    el("label", {}, "by", el("select", { name: "by", onchange: (e) => set("by", e.target.value) },
      GROUPS.map(([g, label]) => el("option", { value: g, selected: g === by, text: label })))),
    el("label", {}, "chart", el("select", { name: "metric", onchange: (e) => set("metric", e.target.value) },
      METRICS.map(([m, label]) => el("option", { value: m, selected: m === metric[0], text: label }))))));
  const q = new URLSearchParams({ ...rangeParams(p), group_by: by });
  const data = await api(`/api/v1/metrics/genai?${q}`);
  const t = data.totals;
  if (!t.spans) {
    main.append(el("div", { class: "empty" }, el("p", { text: "No GenAI calls in this time range." }),
      el("p", { text: "Model calls (spans with a GenAI model or span kind) are counted here, from the per-minute usage rollup." })));
    return;
  }
  main.append(el("div", { class: "summary", "data-testid": "overview-totals" },
    el("div", {}, el("b", { text: "requests" }), fmtInt(t.requests)),
    el("div", {}, el("b", { text: "errors" }), `${fmtInt(t.errors)} (${t.requests ? ((100 * t.errors) / t.requests).toFixed(1) : 0}%)`),
    el("div", {}, el("b", { text: "input / output tokens" }), `${fmtInt(t.input_tokens)} / ${fmtInt(t.output_tokens)}`),
    el("div", {}, el("b", { text: "cost" }), fmtCost(t.cost_usd) || "$0"),
    el("div", {}, el("b", { text: "latency p50 / p95" }),
      t.latency_ms ? `${fmtDuration(t.latency_ms.p50 * NS_PER_MS)} / ${fmtDuration(t.latency_ms.p95 * NS_PER_MS)}` : "–")));
  const series = [...data.series].sort((a, b) => (metric[2](b.totals) || 0) - (metric[2](a.totals) || 0));
  main.append(chart(series.slice(0, 8), metric, Date.parse(data.start), Date.parse(data.end)));
  const palette = ["#2563eb", "#8e5ad8", "#d98a1c", "#2e7d32", "#c62828", "#0891b2", "#be185d", "#64748b"];
  const rows = series.map((s, i) => el("tr", { "data-group": s.group[by] },
    el("td", {}, i < 8 ? el("span", { class: "swatch", style: `background: ${palette[i]}` }) : null, s.group[by] || "(none)"),
    el("td", { class: "num", text: fmtInt(s.totals.requests) }),
    el("td", { class: "num", text: fmtInt(s.totals.errors) }),
    el("td", { class: "num", text: fmtInt(s.totals.input_tokens) }),
    el("td", { class: "num", text: fmtInt(s.totals.output_tokens) }),
    el("td", { class: "num", text: fmtCost(s.totals.cost_usd) }),
    el("td", { class: "num", text: s.totals.latency_ms ? fmtDuration(s.totals.latency_ms.p95 * NS_PER_MS) : "" }),
    el("td", { class: "num", text: fmtInt(s.totals.unpriced_requests) })));
  const head = [by, "requests", "errors", "input tok", "output tok", "cost", "p95", "unpriced calls"];
  main.append(el("table", { class: "traces overview" },
    el("thead", {}, el("tr", {}, head.map((h, i) => el("th", { class: i ? "num" : null, text: h })))),
    el("tbody", {}, rows)));
  if (by === "model") {
    const unpriced = series.filter((s) => s.totals.unpriced_requests > 0 && s.group.model);
    if (unpriced.length) {
      main.append(el("h2", { text: "Unpriced models" }), el("p", { class: "muted",
        text: "Calls to these models carry no cost: the price table does not know them, or no usage was reported." }),
        el("ul", { "data-testid": "unpriced" }, unpriced.map((s) =>
          el("li", { "data-model": s.group.model, text: `${s.group.model}: ${fmtInt(s.totals.unpriced_requests)} calls` }))));
    }
  }
}

// ---------------------------------------------------------------- prompts

function link(text, query) {
  return el("a", { href: `/?${query}`, text, onclick: (e) => { e.preventDefault(); navigate(query); } });
}

async function renderPrompts(p) {
  main.append(el("h1", { text: "Prompts" }));
  const q = p.get("q") || "";
  const form = el("form", { class: "filters", role: "search" },
    el("label", {}, "name contains", el("input", { name: "q", value: q, autocomplete: "off" })),
    el("button", { type: "submit", text: "Search" }));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = new URLSearchParams({ view: "prompts" });
    const value = new FormData(form).get("q");
    if (value) next.set("q", String(value));
    navigate(next);
  });
  main.append(form);
  const data = await api(`/api/v1/prompts?${new URLSearchParams(q ? { q, limit: "200" } : { limit: "200" })}`);
  if (!data.prompts.length) {
    main.append(el("div", { class: "empty" },
      el("p", { text: "No prompts yet." }),
      el("p", { text: "Spans that name a prompt or carry its template (OpenInference, OpenLLMetry, Langfuse, MLflow, POML) register it here, versioned." })));
    return;
  }
  const rows = data.prompts.map((prompt) => {
    const open = () => navigate(new URLSearchParams({ view: "prompts", prompt: prompt.name }));
    return el("tr", { tabindex: 0, "data-prompt": prompt.name, onclick: open, onkeydown: (e) => keyInList(e, open) },
      el("td", { class: "name", text: prompt.name }),
      el("td", { class: "num", text: fmtInt(prompt.version_count) }),
      el("td", { text: prompt.latest_version }),
      el("td", { text: prompt.source || "" }),
      el("td", { class: "num", text: fmtInt(prompt.usage.requests) }),
      el("td", { class: "num", text: fmtInt(prompt.usage.total_tokens) }),
      el("td", { class: "num", text: fmtCost(prompt.usage.cost_usd) }),
      el("td", { text: prompt.last_seen ? new Date(prompt.last_seen).toLocaleString() : "never used" }));
  });
  const head = ["name", "versions", "latest", "source", "requests", "tokens", "cost", "last used"];
  main.append(el("table", { class: "traces prompts" },
    el("thead", {}, el("tr", {}, head.map((h, i) => el("th", { class: [1, 4, 5, 6].includes(i) ? "num" : null, text: h })))),
    el("tbody", {}, rows)));
}

/** Line diff (longest common subsequence): [["same"|"removed"|"added", line], ...]. */
export function diffLines(a, b) {
  const x = a.split("\n"), y = b.split("\n");
  const lcs = Array.from({ length: x.length + 1 }, () => new Array(y.length + 1).fill(0));
  for (let i = x.length - 1; i >= 0; i--) {
    for (let j = y.length - 1; j >= 0; j--) {
      lcs[i][j] = x[i] === y[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  const out = [];
  let i = 0, j = 0;
  while (i < x.length && j < y.length) {
    if (x[i] === y[j]) { out.push(["same", x[i]]); i++; j++; }
    else if (lcs[i + 1][j] >= lcs[i][j + 1]) out.push(["removed", x[i++]]);
    else out.push(["added", y[j++]]);
  }
  while (i < x.length) out.push(["removed", x[i++]]);
  while (j < y.length) out.push(["added", y[j++]]);
  return out;
}

async function renderPrompt(name, p) {
  main.append(el("p", {}, link("← Prompts", new URLSearchParams({ view: "prompts" }))));
  const data = await api(`/api/v1/prompts/${encodeURIComponent(name)}`);
  main.append(el("h1", { text: name }),
    el("p", {}, link("Traces that used this prompt →", new URLSearchParams({ prompt: name, since: "7d" }))));
  const rows = data.versions.map((v) => {
    const u = v.usage;
    return el("tr", { "data-version": v.version, "aria-current": p.get("version") === v.version ? "true" : null },
      el("td", { text: v.version || "(none)" }),
      el("td", { text: v.registered_at ? new Date(v.registered_at).toLocaleString() : "" }),
      el("td", { class: "num", text: fmtInt(u.requests) }),
      el("td", { class: "num", text: u.requests ? `${((100 * u.errors) / u.requests).toFixed(1)}%` : "" }),
      el("td", { class: "num", text: fmtInt(u.total_tokens) }),
      el("td", { class: "num", text: fmtCost(u.cost_usd) }),
      el("td", { class: "num", text: u.latency_ms ? `${fmtDuration(u.latency_ms.p50 * NS_PER_MS)} / ${fmtDuration(u.latency_ms.p95 * NS_PER_MS)}` : "" }),
      el("td", { text: v.last_seen ? new Date(v.last_seen).toLocaleString() : "never used" }),
      el("td", {}, u.requests || u.spans ? link("traces →", new URLSearchParams(
        { prompt: name, ...(v.version ? { prompt_version: v.version } : {}), since: "7d" })) : null));
  });
  const head = ["version", "registered", "requests", "errors", "tokens", "cost", "latency p50 / p95", "last used", ""];
  main.append(el("table", { class: "traces versions" },
    el("thead", {}, el("tr", {}, head.map((h, i) => el("th", { class: i >= 2 && i <= 6 ? "num" : null, text: h })))),
    el("tbody", {}, rows)));

  main.append(await promptScores(name));

  const templated = data.versions.filter((v) => v.template);
  if (templated.length >= 2) {
    const pick = (key, fallback) => (templated.some((v) => v.version === p.get(key)) ? p.get(key) : fallback);
    const a = pick("a", templated[templated.length - 2].version);
    const b = pick("b", templated[templated.length - 1].version);
    const choose = (key, current) => el("select", { name: key, "aria-label": `version ${key}`,
      onchange: (e) => { const next = params(); next.set(key, e.target.value); navigate(next, { replace: true }); } },
      templated.map((v) => el("option", { value: v.version, selected: v.version === current, text: `v${v.version}` })));
    const lines = diffLines(templated.find((v) => v.version === a).template, templated.find((v) => v.version === b).template);
    main.append(el("h2", { text: "Compare versions" }),
      el("p", {}, choose("a", a), " → ", choose("b", b)),
      el("pre", { class: "diff", "data-testid": "diff" }, lines.map(([kind, line]) =>
        el("div", { class: `line ${kind}`, "data-kind": kind }, `${kind === "added" ? "+" : kind === "removed" ? "−" : " "} ${line}`))));
  }
  main.append(el("h2", { text: "Templates" }));
  for (const v of data.versions) {
    main.append(el("h3", { text: `v${v.version || "(none)"}${v.source ? ` · ${v.source}` : ""}` }),
      v.template ? el("pre", { class: "template", "data-version": v.version, text: v.template })
                 : el("p", { class: "muted", text: "No template registered for this version (seen in use only)." }));
  }
}

const PROMPT_SCORE_DAYS = 365;

/** The scores of the traces and spans that used each version of a prompt (the score
 * rollup of /api/v1/metrics/genai), over the last year. */
async function promptScores(name) {
  const end = Math.ceil(Date.now() / 1000);
  const q = new URLSearchParams({ scores: "true", prompt: name, group_by: "prompt_version", step: "1d",
                                  start: String(end - PROMPT_SCORE_DAYS * 86400), end: String(end) });
  const section = el("section", { "data-testid": "prompt-scores" }, el("h2", { text: "Scores per version" }));
  const series = (await api(`/api/v1/metrics/genai?${q}`)).scores.series;
  if (!series.length) {
    section.append(el("p", { class: "muted", text: "No scores on the traces that used this prompt in the last year." }));
    return section;
  }
  const version = (s) => s.group.prompt_version;
  const byVersion = (a, b) => (/^\d+$/.test(version(a)) && /^\d+$/.test(version(b))
    ? Number(version(a)) - Number(version(b)) : version(a).localeCompare(version(b))) || a.name.localeCompare(b.name);
  const rows = [...series].sort(byVersion).map((s) => {
    const t = s.totals;
    const labels = Object.entries(t.categories).map(([label, n]) => `${label} ${fmtInt(n)}`).join(" · ");
    return el("tr", { "data-score-version": s.group.prompt_version, "data-score-name": s.name },
      el("td", { text: s.group.prompt_version || "(none)" }),
      el("td", { class: "name", text: s.name }),
      el("td", { class: "num", text: fmtInt(t.scores) }),
      el("td", { class: "num", text: t.numeric_count ? fmtNumber(t.mean) : "" }),
      el("td", { class: "num", text: t.numeric_count ? `${fmtNumber(t.min)} – ${fmtNumber(t.max)}` : "" }),
      el("td", { class: "name", text: labels + (t.other_categories ? ` · others ${fmtInt(t.other_categories)}` : "") }));
  });
  const head = ["version", "score", "scores", "mean", "min – max", "labels"];
  section.append(el("table", { class: "traces prompt-scores" },
    el("thead", {}, el("tr", {}, head.map((h, i) => el("th", { class: i >= 2 && i <= 4 ? "num" : null, text: h })))),
    el("tbody", {}, rows)));
  return section;
}

// ---------------------------------------------------------------- experiments and runs (MLflow)

/** A metric or score value: up to 6 significant digits, no exponent for everyday sizes. */
function fmtNumber(value) {
  if (value === null || value === undefined) return "–";
  if (Number.isInteger(value)) return value.toLocaleString("en-US");
  return String(Number(value.toPrecision(6)));
}

function fmtIso(iso) {
  return iso ? new Date(iso).toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" }) : "";
}

function runStatusClass(status) {
  return status === "FINISHED" ? "status-ok" : status === "FAILED" || status === "KILLED" ? "status-error" : null;
}

const experimentsLink = (query) => new URLSearchParams({ view: "experiments", ...query });

async function renderExperiments() {
  main.append(el("h1", { text: "Experiments" }));
  const data = await api("/api/v1/experiments");
  if (!data.experiments.length) {
    main.append(el("div", { class: "empty" },
      el("p", { text: "No MLflow experiments yet." }),
      el("p", {}, "Point an MLflow client at tracehouse's MLflow endpoint: ",
        el("code", { text: `MLFLOW_TRACKING_URI=${location.protocol}//${location.hostname}:5000` }))));
    return;
  }
  const rows = data.experiments.map((e) => {
    const open = () => navigate(experimentsLink({ experiment: e.experiment_id }));
    return el("tr", { tabindex: 0, "data-experiment-id": e.experiment_id, onclick: open, onkeydown: (ev) => keyInList(ev, open) },
      el("td", { class: "name", text: e.name }),
      el("td", { text: e.experiment_id }),
      el("td", { class: "num", text: fmtInt(e.run_count) }),
      el("td", { class: "num", text: fmtInt(e.trace_count) }),
      el("td", { text: fmtIso(e.creation_time) }),
      el("td", { text: fmtIso(e.last_update_time) }));
  });
  const head = ["name", "id", "runs", "traces", "created", "updated"];
  main.append(el("table", { class: "traces experiments" },
    el("thead", {}, el("tr", {}, head.map((h, i) => el("th", { class: i === 2 || i === 3 ? "num" : null, text: h })))),
    el("tbody", {}, rows)));
}

/** Runs in tree order: each top-level run (or one whose parent is not listed), then its
 * children depth-first; every run keeps the list's order (newest first) among its siblings. */
export function runTree(runs) {
  const ids = new Set(runs.map((r) => r.run_id));
  const children = new Map();
  const roots = [];
  for (const run of runs) {
    if (run.parent_run_id && ids.has(run.parent_run_id) && run.parent_run_id !== run.run_id) {
      if (!children.has(run.parent_run_id)) children.set(run.parent_run_id, []);
      children.get(run.parent_run_id).push(run);
    } else roots.push(run);
  }
  const out = [];
  const seen = new Set();
  const visit = (run, depth) => {
    if (seen.has(run.run_id)) return;  // a cycle of parent tags must not loop
    seen.add(run.run_id);
    out.push({ run, depth });
    for (const child of children.get(run.run_id) || []) visit(child, depth + 1);
  };
  for (const run of roots) visit(run, 0);
  for (const run of runs) visit(run, 0);  // runs only reachable through a cycle
  return out;
}

/** The keys most runs have (at most `n`), for a table's columns. */
function commonKeys(maps, n) {
  const counts = new Map();
  for (const m of maps) for (const key of Object.keys(m)) counts.set(key, (counts.get(key) || 0) + 1);
  return [...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).slice(0, n).map(([key]) => key);
}

/** Runs as a table nested by parent: name, status, start, duration, key metrics and params. */
function runsTable(runs, { nested = true } = {}) {
  const metricKeys = commonKeys(runs.map((r) => r.latest_metrics), 4);
  const paramKeys = commonKeys(runs.map((r) => r.params), 4);
  const ordered = nested ? runTree(runs) : runs.map((run) => ({ run, depth: 0 }));
  const rows = ordered.map(({ run, depth }) => {
    const open = () => navigate(experimentsLink({ run: run.run_id }));
    return el("tr", { tabindex: 0, "data-run-id": run.run_id, "aria-level": depth + 1, onclick: open,
                      onkeydown: (ev) => keyInList(ev, open) },
      el("td", { class: "name", style: `padding-left: ${0.5 + depth * 1.2}rem` },
        depth ? el("span", { class: "muted", text: "↳ " }) : null, run.run_name || run.run_id),
      el("td", { class: runStatusClass(run.status), text: run.status }),
      el("td", { text: fmtIso(run.start_time) }),
      el("td", { class: "num", text: run.duration_ms === null ? "running" : fmtDuration(run.duration_ms * NS_PER_MS) }),
      metricKeys.map((key) => el("td", { class: "num", "data-metric": key,
                                          text: key in run.latest_metrics ? fmtNumber(run.latest_metrics[key]) : "" })),
      paramKeys.map((key) => el("td", { "data-param": key, text: run.params[key] ?? "" })));
  });
  const head = [["name"], ["status"], ["start"], ["duration", "num"], ...metricKeys.map((k) => [k, "num metric"]),
                ...paramKeys.map((k) => [k, "param"])];
  return el("table", { class: "traces runs" },
    el("thead", {}, el("tr", {}, head.map(([h, cls]) => el("th", { class: cls || null, text: h })))),
    el("tbody", {}, rows));
}

/** MLflow traces (of an experiment or a run); a row opens the trace's page. */
function mlflowTraceTable(traces) {
  const rows = traces.map((t) => {
    const open = () => navigate(new URLSearchParams({ trace: t.trace_id }));
    return el("tr", { tabindex: 0, "data-trace-id": t.trace_id, onclick: open, onkeydown: (ev) => keyInList(ev, open) },
      el("td", { text: fmtIso(t.start_time) }),
      el("td", { class: "name", text: t.name || t.request_id }),
      el("td", { class: t.state === "ERROR" ? "status-error" : t.state === "OK" ? "status-ok" : null, text: t.state }),
      el("td", { class: "num", text: fmtDuration(t.duration_ms * NS_PER_MS) }),
      el("td", { class: "num", text: fmtInt(t.span_count) }),
      el("td", { class: "num", text: fmtInt(t.input_tokens) }),
      el("td", { class: "num", text: fmtInt(t.output_tokens) }),
      el("td", { class: "num cost", text: fmtCost(t.total_cost_usd) }),
      el("td", {}, t.source_run_id ? el("a", { href: `/?${experimentsLink({ run: t.source_run_id })}`, text: t.source_run_id.slice(0, 8),
        onclick: (ev) => { ev.preventDefault(); ev.stopPropagation(); navigate(experimentsLink({ run: t.source_run_id })); } }) : null));
  });
  const head = ["time", "name", "state", "duration", "spans", "input tok", "output tok", "cost", "run"];
  return el("table", { class: "traces mlflow-traces" },
    el("thead", {}, el("tr", {}, head.map((h, i) => el("th", { class: i >= 3 && i <= 7 ? "num" : null, text: h })))),
    el("tbody", {}, rows));
}

/** Key/value pairs as a two-column table, sorted by key. */
function pairsTable(pairs, testid) {
  const entries = Object.entries(pairs).sort(([a], [b]) => a.localeCompare(b));
  if (!entries.length) return el("p", { class: "muted", "data-testid": testid, text: "None." });
  return el("table", { class: "traces pairs", "data-testid": testid },
    el("thead", {}, el("tr", {}, el("th", { text: "key" }), el("th", { text: "value" }))),
    el("tbody", {}, entries.map(([k, v]) => el("tr", { "data-key": k },
      el("td", { text: k }), el("td", { class: "name", text: v })))));
}

async function renderExperiment(experimentId) {
  main.append(el("p", {}, link("← Experiments", experimentsLink({}))));
  const data = await api(`/api/v1/experiments/${encodeURIComponent(experimentId)}`);
  main.append(el("h1", { text: data.name }),
    el("div", { class: "summary", "data-testid": "summary" },
      el("div", {}, el("b", { text: "experiment id" }), data.experiment_id),
      el("div", {}, el("b", { text: "runs" }), fmtInt(data.run_count)),
      el("div", {}, el("b", { text: "traces" }), fmtInt(data.trace_count)),
      el("div", {}, el("b", { text: "created" }), fmtIso(data.creation_time)),
      data.lifecycle_stage !== "active" ? el("div", {}, el("b", { text: "state" }), data.lifecycle_stage) : null,
      Object.entries(data.tags).filter(([k]) => !k.startsWith("mlflow.")).map(([k, v]) =>
        el("div", {}, el("b", { text: k }), v))));
  main.append(el("h2", { text: `Runs (${data.runs.length})` }),
    data.runs.length ? runsTable(data.runs) : el("p", { class: "muted", text: "No runs yet." }));
  main.append(el("h2", { text: `Traces (${data.traces.length === data.trace_count ? "" : "latest "}${data.traces.length})` }),
    data.traces.length ? mlflowTraceTable(data.traces) : el("p", { class: "muted", text: "No traces logged to this experiment." }));
}

/** One metric's history as an inline SVG line: x = step, y = value; one point per logged
 * value (non-finite values, which the API gives as null, are left out). */
export function metricChart(key, points) {
  const shown = points.filter((pt) => pt.value !== null);
  const width = 420, height = 160, padX = 46, padY = 16;
  const steps = shown.map((pt) => pt.step), values = shown.map((pt) => pt.value);
  const [s0, s1] = [Math.min(...steps), Math.max(...steps)];
  const [v0, v1] = [Math.min(...values), Math.max(...values)];
  const x = (step) => (s1 === s0 ? width / 2 : padX + ((step - s0) / (s1 - s0)) * (width - padX - 10));
  const y = (v) => (v1 === v0 ? height / 2 : height - padY - ((v - v0) / (v1 - v0)) * (height - 2 * padY));
  const label = (text, attrs) => { const t = svg("text", { class: "tick", ...attrs }); t.textContent = text; return t; };
  const node = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart metric-chart", role: "img",
                            "data-metric": key, "aria-label": `${key} by step` },
    svg("line", { x1: padX, y1: height - padY, x2: width - 10, y2: height - padY, class: "axis" }));
  if (!shown.length) return node;
  node.append(label(fmtNumber(v1), { x: 2, y: padY }), label(fmtNumber(v0), { x: 2, y: height - padY }),
    label(`step ${s0}`, { x: padX, y: height - 2 }), label(`step ${s1}`, { x: width - 60, y: height - 2 }));
  node.append(svg("polyline", { points: shown.map((pt) => `${x(pt.step).toFixed(1)},${y(pt.value).toFixed(1)}`).join(" "),
                                fill: "none", stroke: "#2563eb", "stroke-width": 2 }));
  for (const pt of shown) {
    const dot = svg("circle", { cx: x(pt.step).toFixed(1), cy: y(pt.value).toFixed(1), r: 3, fill: "#2563eb" });
    const title = svg("title");
    title.textContent = `step ${pt.step}: ${fmtNumber(pt.value)} (${fmtIso(pt.timestamp)})`;
    dot.append(title);
    node.append(dot);
  }
  return node;
}

async function renderRun(runId) {
  const data = await api(`/api/v1/runs/${encodeURIComponent(runId)}`);
  const run = data.run;
  main.append(el("p", {}, link(`← ${run.experiment_name || `experiment ${run.experiment_id}`}`,
    experimentsLink({ experiment: run.experiment_id }))));
  main.append(el("h1", { text: run.run_name || run.run_id }),
    el("div", { class: "summary", "data-testid": "summary" },
      el("div", {}, el("b", { text: "status" }), el("span", { class: runStatusClass(run.status), text: run.status })),
      el("div", {}, el("b", { text: "start" }), fmtIso(run.start_time)),
      el("div", {}, el("b", { text: "duration" }), run.duration_ms === null ? "running" : fmtDuration(run.duration_ms * NS_PER_MS)),
      run.user_id ? el("div", {}, el("b", { text: "user" }), run.user_id) : null,
      el("div", {}, el("b", { text: "run id" }), run.run_id),
      run.parent_run_id ? el("div", { "data-testid": "parent-run" }, el("b", { text: "parent run" }),
        link(run.parent_run_id.slice(0, 8), experimentsLink({ run: run.parent_run_id }))) : null,
      run.lifecycle_stage !== "active" ? el("div", {}, el("b", { text: "state" }), run.lifecycle_stage) : null));
  const keys = Object.keys(run.metrics).sort();
  main.append(el("h2", { text: `Metrics (${keys.length})` }));
  if (!keys.length) main.append(el("p", { class: "muted", text: "No metrics logged." }));
  main.append(el("div", { class: "metric-grid" }, keys.map((key) => {
    const latest = run.latest_metrics[key];
    return el("figure", { class: "metric", "data-metric": key },
      el("figcaption", {}, el("b", { text: key }), ` latest ${fmtNumber(latest)} · ${run.metrics[key].length} values`),
      metricChart(key, run.metrics[key]));
  })));
  main.append(el("div", { class: "two-columns" },
    el("section", {}, el("h2", { text: "Params" }), pairsTable(run.params, "params")),
    el("section", {}, el("h2", { text: "Tags" }), pairsTable(run.tags, "tags"))));
  main.append(el("h2", { text: `Child runs (${run.children.length})` }),
    run.children.length ? runsTable(run.children, { nested: false }) : el("p", { class: "muted", text: "None." }));
  main.append(el("h2", { text: `Traces (${run.traces.length})` }),
    run.traces.length ? mlflowTraceTable(run.traces) : el("p", { class: "muted", text: "This run produced no traces." }));
}

route();
