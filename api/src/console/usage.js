// The usage view: the tenant's pages per day over the last 30 days as bars of inline SVG,
// beside its totals, from GET /api/v1/usage. Loaded before console.js, whose helpers (el,
// getJson, notice, apiKey, $) it calls once the page has started; like the rest of the
// console it puts the API's data into the page as text and attributes only.
"use strict";

const USAGE_DAYS = 30;
const USAGE_RELOAD_MS = 1000; // jobs that end together reload the view once
const SVG_NS = "http://www.w3.org/2000/svg";
// The chart's drawing box (SVG units; the figure scales it to the column's width).
const CHART = { width: 600, height: 160, top: 18, bottom: 22, gap: 2 };
const STATUSES = ["complete", "failed", "cancelled"];

let usageTimer = null;

function svgEl(tag, attributes = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  node.append(...children);
  return node;
}

// The last `count` UTC days, oldest first, as YYYY-MM-DD (the days the API groups by).
function lastDays(count, now = new Date()) {
  const today = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate());
  return Array.from({ length: count }, (_, n) =>
    new Date(today - (count - 1 - n) * 86_400_000).toISOString().slice(0, 10),
  );
}

async function loadUsage() {
  if (!apiKey()) return clearUsage();
  const days = lastDays(USAGE_DAYS);
  const query = new URLSearchParams({ from: days[0], to: days.at(-1), group_by: "day" });
  try {
    const report = await getJson(`api/v1/usage?${query}`);
    if (!apiKey()) return; // the key was forgotten meanwhile
    const pages = new Map(report.groups.map((group) => [group.day, group.pages]));
    drawPagesPerDay(days.map((day) => [day, pages.get(day) ?? 0]));
    showUsageTotals(report.totals);
    const { jobs, pages: total } = report.totals;
    notice("usage-state", `${total} pages in ${jobs} jobs that ended from ${report.from} to ${report.to} (UTC).`);
  } catch (error) {
    notice("usage-state", error.message, true);
  }
}

// A later load for jobs that just ended: their usage is written as they end.
function reloadUsageSoon() {
  clearTimeout(usageTimer);
  usageTimer = setTimeout(loadUsage, USAGE_RELOAD_MS);
}

function clearUsage() {
  clearTimeout(usageTimer);
  $("usage-chart").replaceChildren();
  document.querySelector("#usage-jobs tbody").replaceChildren();
  document.querySelector("#usage-tiers tbody").replaceChildren();
  notice("usage-state", "Enter an API key to see its usage.");
}

function drawPagesPerDay(pagesByDay) {
  const { width, height, top, bottom, gap } = CHART;
  const most = Math.max(1, ...pagesByDay.map(([, pages]) => pages));
  const plot = height - top - bottom;
  const step = width / pagesByDay.length;
  const bars = pagesByDay.map(([day, pages], n) => {
    const tall = (pages / most) * plot;
    return svgEl(
      "g",
      { class: "bar", "data-day": day, "data-pages": pages },
      svgEl("title", {}, `${day}: ${pages} pages`),
      svgEl("rect", { x: n * step + gap / 2, y: top + plot - tall, width: step - gap, height: tall }),
    );
  });
  const label = (x, y, anchor, text) => svgEl("text", { x, y, "text-anchor": anchor }, text);
  const chart = svgEl(
    "svg",
    { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-labelledby": "usage-chart-title" },
    svgEl("title", { id: "usage-chart-title" }, `Pages per day, ${pagesByDay[0][0]} to ${pagesByDay.at(-1)[0]}`),
    svgEl("line", { class: "axis", x1: 0, x2: width, y1: top + plot, y2: top + plot }),
    ...bars,
    label(4, top - 6, "start", `${most} pages`),
    label(4, height - 6, "start", pagesByDay[0][0]),
    label(width - 4, height - 6, "end", pagesByDay.at(-1)[0]),
  );
  $("usage-chart").replaceChildren(chart);
}

function totalRow(attributes, name, value) {
  return el("tr", attributes, el("th", { scope: "row" }, name), el("td", {}, String(value)));
}

function showUsageTotals(totals) {
  const jobs = STATUSES.map((status) => totalRow({ "data-status": status }, status, totals[status]));
  const tiers = Object.entries(totals.pages_by_tier).map(([tier, pages]) => totalRow({ "data-tier": tier }, tier, pages));
  document.querySelector("#usage-jobs tbody").replaceChildren(...jobs, totalRow({ class: "total" }, "all", totals.jobs));
  document.querySelector("#usage-tiers tbody").replaceChildren(...tiers, totalRow({ class: "total" }, "all", totals.pages));
}
