// The docjobs console: speaks to the API that serves it, with the key the user typed. The
// key stays in this tab's session storage and travels only in the X-API-Key header. Text
// that comes from a job goes into the page as text nodes, never as HTML.
"use strict";

const API_ROOT = new URL("../", document.baseURI); // the console is served at <api>/console/
const KEY_ITEM = "docjobs.apiKey";
const TERMINAL = new Set(["complete", "failed", "cancelled"]);
const MAX_STREAMS = 4; // a browser opens 6 connections per host: leave 2 for the rest
const REFRESH_MS = 5000;
const RECONNECT_MS = 2000;
const PAGE_SIZE = 20;

const jobs = new Map(); // job id -> what is known of it (a summary, then the job's events)
const streams = new Map(); // job id -> AbortController of its event stream
let selected = null; // the job whose details are shown
// The cursors of the pages before the one shown, and the one shown ("" is the newest page).
const cursors = [""];
let nextCursor = null;

const $ = (id) => document.getElementById(id);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// An element; strings among the children become text nodes.
function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function apiKey() {
  return sessionStorage.getItem(KEY_ITEM);
}

async function api(path, options = {}) {
  const headers = new Headers(options.headers);
  headers.set("X-API-Key", apiKey() ?? "");
  const response = await fetch(new URL(path, API_ROOT), { ...options, headers, cache: "no-store" });
  if (!response.ok) {
    let message = `HTTP ${response.status}`;
    try {
      message = (await response.json()).error.message;
    } catch {
      // not an error body of the API: keep the status
    }
    throw new ApiError(response.status, message);
  }
  return response;
}

const getJson = async (path) => (await api(path)).json();
const jobPath = (id, rest = "") => `api/v1/jobs/${encodeURIComponent(id)}${rest}`;

function notice(id, text, isError = false) {
  $(id).textContent = text;
  $(id).classList.toggle("error", isError);
}

// --- the key ------------------------------------------------------------------------------

async function useKey(event) {
  event.preventDefault();
  stopStreams();
  jobs.clear();
  firstPage();
  sessionStorage.setItem(KEY_ITEM, $("key").value.trim());
  $("key").value = "";
  await start();
}

function forgetKey() {
  sessionStorage.removeItem(KEY_ITEM);
  stopStreams();
  jobs.clear();
  firstPage();
  closeDetail();
  renderJobs();
  clearUsage();
  notice("key-state", "No key.");
  notice("jobs-state", "Enter an API key to see its jobs.");
}

async function start() {
  if (!apiKey()) return;
  try {
    await refreshJobs();
    notice("key-state", "Key accepted.");
    loadTemplateIds();
    loadUsage();
  } catch (error) {
    if (error.status === 401) sessionStorage.removeItem(KEY_ITEM);
    notice("key-state", error.message, true);
  }
}

// --- submitting ---------------------------------------------------------------------------

function showRouteFields() {
  const family = $("route").value.split(":")[0];
  document.querySelector(".for-ocr").hidden = family !== "ocr";
  document.querySelector(".for-parse").hidden = family !== "parse";
  // docTR reads Latin scripts whatever the language: its route takes none.
  document.querySelector(".for-language").hidden =
    family === "convert" || $("route").value === "ocr:advanced";
}

function submission() {
  const [family, variant] = $("route").value.split(":");
  const form = new FormData();
  form.append("file", $("file").files[0]);
  const optional = (name, value) => value && form.append(name, value);
  if (family === "convert") return [`api/v1/convert/${variant}-to-pdf?async=true`, form];
  if (family === "ocr") {
    form.append("output", $("ocr-output").value);
    optional("pages", $("ocr-pages").value.trim());
    if (variant !== "advanced") form.append("language", $("language").value.trim());
    return [`api/v1/ocr/extract/${variant}?async=true`, form];
  }
  form.append("templateId", $("template-id").value.trim());
  form.append("language", $("language").value.trim());
  optional("ocr", $("parse-ocr").value);
  optional("webhookUrl", $("webhook-url").value.trim());
  return ["v1/documents/parse/async", form];
}

async function submitJob(event) {
  event.preventDefault();
  if (!apiKey()) return notice("submit-state", "Enter an API key first.", true);
  const [path, form] = submission();
  const fileName = $("file").files[0].name;
  notice("submit-state", `Sending ${fileName}…`);
  try {
    const accepted = await (await api(path, { method: "POST", body: form })).json();
    const id = accepted.job_id ?? accepted.jobId; // the jobs API's or the parse API's answer
    jobs.set(id, { job_id: id, status: "pending", file_name: fileName, ...jobs.get(id) });
    notice("submit-state", `${id}: ${accepted.message}.`);
    $("file").value = "";
    firstPage(); // a new job is the newest: it is on the first page
    await refreshJobs();
  } catch (error) {
    notice("submit-state", error.message, true);
  }
}

async function loadTemplateIds() {
  try {
    const { templates } = await getJson("v1/templates");
    $("template-ids").replaceChildren(...templates.map((t) => el("option", { value: t.templateId }, t.name)));
  } catch {
    // the id can still be typed
  }
}

// --- the jobs -----------------------------------------------------------------------------

async function refreshJobs() {
  const cursor = cursors.at(-1);
  const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (cursor) query.set("cursor", cursor);
  const { jobs: listed, total, next_cursor: next } = await getJson(`api/v1/jobs?${query}`);
  nextCursor = next ?? null;
  const known = new Map(jobs);
  jobs.clear();
  for (const summary of listed) {
    const before = known.get(summary.job_id);
    // A followed job's stream is newer than any list.
    jobs.set(summary.job_id, streams.has(summary.job_id) ? { ...summary, ...before } : { ...before, ...summary });
  }
  const first = (cursors.length - 1) * PAGE_SIZE;
  notice("jobs-state", listed.length ? `Jobs ${first + 1}-${first + listed.length} of ${total}, newest first.` : `${total} jobs.`);
  $("previous-page").disabled = cursors.length === 1;
  $("next-page").disabled = nextCursor === null;
  renderJobs();
  followActive();
}

async function turnPage(forward) {
  if (forward && nextCursor === null) return;
  if (forward) cursors.push(nextCursor);
  else if (cursors.length > 1) cursors.pop();
  stopStreams();
  jobs.clear();
  try {
    await refreshJobs();
  } catch (error) {
    notice("jobs-state", error.message, true);
  }
}

function firstPage() {
  cursors.length = 1;
  nextCursor = null;
}

function failureText(job) {
  return job.error ? `${job.error.code}: ${job.error.message}` : "";
}

function update(job) {
  const before = jobs.get(job.job_id);
  jobs.set(job.job_id, { ...before, ...job });
  renderJobs();
  if (TERMINAL.has(job.status) && before?.status !== job.status) reloadUsageSoon();
  if (selected !== job.job_id) return;
  renderDetail(jobs.get(job.job_id));
  // A job's end is what its webhooks announce.
  if (TERMINAL.has(job.status) && before?.status !== job.status) loadDeliveries(job.job_id);
}

function localTime(iso) {
  return iso ? new Date(iso).toLocaleString([], { dateStyle: "short", timeStyle: "medium" }) : "";
}

function progressView(progress) {
  if (!progress) return "";
  const { pages_done: done, pages_total: total } = progress;
  return el("span", {}, el("progress", { max: String(total), value: String(done) }), ` ${done}/${total} pages`);
}

function renderJobs() {
  const rows = [...jobs.values()].map((job) => {
    const id = job.job_id;
    const actions = el("td", { class: "actions" }, el("button", { type: "button", onclick: () => showDetail(id) }, "Details"));
    if (job.status === "complete") actions.append(el("button", { type: "button", onclick: () => download(id) }, "Download"));
    if (!TERMINAL.has(job.status)) actions.append(el("button", { type: "button", onclick: () => cancel(id) }, "Cancel"));
    return el(
      "tr",
      { "data-job": id, class: id === selected ? "selected" : "" },
      el("td", { class: "job" }, el("code", { title: id }, id)),
      el("td", {}, job.operation ?? ""),
      el("td", {}, job.file_name ?? ""),
      el("td", { class: `status ${job.status}` }, job.status),
      el("td", { class: "progress" }, progressView(job.progress)),
      el("td", { class: "reason" }, failureText(job)),
      el("td", { class: "created" }, localTime(job.created_at)),
      actions,
    );
  });
  document.querySelector("#jobs tbody").replaceChildren(...rows);
}

// Live status: unfinished jobs follow their event streams, running ones first (their
// progress moves), then the newest; the list's refresh shows the others.
function followActive() {
  const active = [...jobs.values()].filter((job) => !TERMINAL.has(job.status));
  active.sort((a, b) => (b.status === "processing") - (a.status === "processing"));
  for (const job of active) {
    if (streams.size >= MAX_STREAMS) return;
    if (!streams.has(job.job_id)) follow(job.job_id);
  }
}

function stopStreams() {
  for (const controller of streams.values()) controller.abort();
  streams.clear();
}

// EventSource cannot send the key's header: the stream is read with fetch instead, and
// resumed after the last event it gave (Last-Event-ID) when the connection drops.
async function follow(id) {
  const controller = new AbortController();
  streams.set(id, controller);
  let lastId = null;
  try {
    for (;;) {
      try {
        const headers = lastId ? { "Last-Event-ID": lastId } : {};
        const response = await api(jobPath(id, "/events"), { headers, signal: controller.signal });
        for await (const event of serverSentEvents(response.body)) {
          lastId = event.id ?? lastId;
          update(JSON.parse(event.data));
          if (event.event === "end") return;
        }
        return; // ended without its end event: the job is gone
      } catch (error) {
        if (controller.signal.aborted || error.status === 404 || error.status === 401) return;
        await sleep(RECONNECT_MS);
      }
    }
  } finally {
    if (streams.get(id) === controller) {
      streams.delete(id);
      followActive();
    }
  }
}

// The events of a text/event-stream body (the API ends its lines with "\n").
async function* serverSentEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = { data: [] };
      for (const line of buffer.slice(0, end).split("\n")) {
        if (line.startsWith(":")) continue; // a keep-alive comment
        const [field, ...rest] = line.split(":");
        const value = rest.join(":").replace(/^ /, "");
        if (field === "data") event.data.push(value);
        else if (field === "id" || field === "event") event[field] = value;
      }
      buffer = buffer.slice(end + 2);
      if (event.data.length) yield { ...event, data: event.data.join("\n") };
    }
  }
}

async function download(id) {
  try {
    const response = await api(jobPath(id, "/result"));
    const disposition = response.headers.get("Content-Disposition") ?? "";
    const named = /filename="([^"]+)"/.exec(disposition);
    const blob = await response.blob();
    const url = URL.createObjectURL(blob);
    const link = el("a", { href: url, download: named ? named[1] : `${id}.json` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  } catch (error) {
    notice("jobs-state", `${id}: ${error.message}`, true);
  }
}

async function cancel(id) {
  try {
    await api(jobPath(id), { method: "DELETE" });
    if (!streams.has(id)) update(await getJson(jobPath(id)));
  } catch (error) {
    notice("jobs-state", `${id}: ${error.message}`, true);
  }
}

// --- one job's details --------------------------------------------------------------------

async function showDetail(id) {
  selected = id;
  $("deliveries").querySelector("tbody").replaceChildren();
  notice("deliveries-state", "Loading…");
  try {
    update(await getJson(jobPath(id)));
    // Above the list: brought into sight, however far down the row clicked was.
    $("detail").scrollIntoView({ block: "start" });
    loadDeliveries(id);
  } catch (error) {
    notice("jobs-state", `${id}: ${error.message}`, true);
  }
}

function closeDetail() {
  selected = null;
  $("detail").hidden = true;
  renderJobs();
}

function renderDetail(job) {
  const fields = [
    ["Status", job.status],
    ["Operation", job.operation],
    ["File", job.file_name],
    ["Pages", job.page_count],
    ["Progress", job.progress ? `${job.progress.pages_done}/${job.progress.pages_total}` : ""],
    ["Attempts", job.attempts],
    ["Message", job.message],
    ["Next attempt", localTime(job.next_attempt_at)],
    ["Error", failureText(job)],
    ["Created", localTime(job.created_at)],
    ["Started", localTime(job.started_at)],
    ["Completed", localTime(job.completed_at)],
  ].filter(([, value]) => value !== undefined && value !== null && value !== "");
  $("detail-id").textContent = job.job_id;
  $("detail-fields").replaceChildren(...fields.flatMap(([name, value]) => [el("dt", {}, name), el("dd", {}, String(value))]));
  $("detail").hidden = false;
}

// Webhook deliveries are part of the parse API's view of a job.
async function loadDeliveries(id) {
  try {
    const { webhooks } = await getJson(`v1/jobs/${encodeURIComponent(id)}`);
    if (selected !== id) return;
    const rows = webhooks.map((delivery) =>
      el(
        "tr",
        {},
        el("td", {}, delivery.target),
        el("td", {}, delivery.event),
        el("td", {}, delivery.delivered ? "yes" : "no"),
        el("td", {}, delivery.attempts.map((a) => `${localTime(a.at)} ${a.statusCode ?? a.error ?? ""}`).join("; ")),
      ),
    );
    $("deliveries").querySelector("tbody").replaceChildren(...rows);
    $("deliveries").hidden = !rows.length;
    notice("deliveries-state", rows.length ? "" : "None.");
  } catch (error) {
    notice("deliveries-state", error.message, true);
  }
}

// --- wiring -------------------------------------------------------------------------------

$("key-form").addEventListener("submit", useKey);
$("forget-key").addEventListener("click", forgetKey);
$("submit-form").addEventListener("submit", submitJob);
$("route").addEventListener("change", showRouteFields);
$("refresh").addEventListener("click", () => start());
$("close-detail").addEventListener("click", closeDetail);
$("previous-page").addEventListener("click", () => turnPage(false));
$("next-page").addEventListener("click", () => turnPage(true));
$("refresh-usage").addEventListener("click", () => loadUsage());
setInterval(() => {
  if (apiKey() && !document.hidden) refreshJobs().catch((error) => notice("jobs-state", error.message, true));
}, REFRESH_MS);
showRouteFields();
notice("key-state", apiKey() ? "Key in this tab." : "No key.");
start();
