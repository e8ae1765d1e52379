// deepmeter dashboard. Every value from the API is written with
// textContent, never as markup, so a stored prompt full of HTML shows as text.
"use strict";

const api = "/api/admin/api-usage";
const tokenKey = "deepmeter-admin-token";
const pageSize = 25;
let page = 1;
let totalPages = 1;

const $ = (id) => document.getElementById(id);

function show(id, visible) {
  $(id).hidden = !visible;
}

function setText(id, text) {
  $(id).textContent = text;
}

function showError(message) {
  setText("error", message);
  show("error", message !== "");
}

// request calls the admin API with the stored token and returns the data
// field of the envelope. A 401 signs the user out.
async function request(path) {
  const token = sessionStorage.getItem(tokenKey);
  const response = await fetch(api + path, { headers: { Authorization: "Bearer " + token } });
  let body = null;
  try {
    body = await response.json();
  } catch (err) {
    throw new Error(`${path}: HTTP ${response.status}, the body is not JSON`);
  }
  if (response.status === 401) {
    signOut();
    throw new Error(body.error || "the admin token was rejected");
  }
  if (!response.ok || !body.success) {
    throw new Error(`${path}: ${body.error || "HTTP " + response.status}`);
  }
  return body.data;
}

function money(value, currency) {
  if (value === null || value === undefined) {
    return "–";
  }
  return `${value} ${currency || ""}`.trim();
}

// costText shows an entry's cost in the main currency, followed by any
// other currency and the count of calls that have no price, so no part of
// the spend reads as free.
function costText(entry, currency) {
  const parts = [money(entry.cost, currency)];
  for (const [code, amount] of Object.entries(entry.costs_by_currency || {})) {
    if (code !== currency) {
      parts.push(money(amount, code));
    }
  }
  if (entry.unpriced_calls > 0) {
    parts.push(`${integer(entry.unpriced_calls)} unpriced`);
  }
  return parts.join(" + ");
}

function integer(value) {
  return Number(value || 0).toLocaleString("en-US");
}

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) {
    td.className = className;
  }
  row.appendChild(td);
  return td;
}

function renderStats(stats) {
  setText("total-calls", integer(stats.total_calls));
  setText("success-rate", `${stats.success_rate}% succeeded, ${integer(stats.failed_calls)} failed`);
  setText("total-cost", money(stats.total_cost, stats.currency));
  const notes = [];
  if (Number(stats.estimated_cost) > 0) {
    notes.push(`${money(stats.estimated_cost, stats.currency)} estimated`);
  }
  if (stats.unpriced_calls > 0) {
    notes.push(`${integer(stats.unpriced_calls)} calls unpriced`);
  }
  setText("estimated-cost", notes.join(", "));
  const tokens = stats.tokens || {};
  setText("total-tokens", integer(tokens.total));
  setText("token-split", `${integer(tokens.prompt)} prompt (${integer(tokens.cache_hit)} cached), ${integer(tokens.completion)} completion`);

  const bars = $("cost-by-day");
  bars.replaceChildren();
  const days = stats.cost_by_day || [];
  const highest = Math.max(...days.map((d) => Number(d.cost)), 0);
  if (days.length === 0) {
    bars.textContent = "No calls in this window.";
  }
  for (const day of days) {
    const row = document.createElement("div");
    row.className = "bar";
    const label = document.createElement("span");
    label.textContent = day.date;
    const fill = document.createElement("div");
    fill.className = "fill";
    fill.style.width = highest > 0 ? `${(Number(day.cost) / highest) * 100}%` : "0";
    const value = document.createElement("span");
    value.className = "value";
    value.textContent = costText(day, stats.currency);
    row.append(label, fill, value);
    bars.appendChild(row);
  }

  const models = $("models").tBodies[0];
  models.replaceChildren();
  for (const m of stats.calls_by_model || []) {
    const row = models.insertRow();
    cell(row, m.model || "(none)");
    cell(row, integer(m.calls), "num");
    cell(row, costText(m, stats.currency), "num");
  }
}

function renderLimits(daily, month, balance) {
  setText("today-cost", money(daily.today_cost, daily.currency));
  const limit = $("daily-limit");
  if (daily.daily_limit === null) {
    limit.textContent = "no daily limit";
    limit.classList.remove("over");
  } else {
    limit.textContent = `${daily.percentage_used}% of ${money(daily.daily_limit, daily.currency)}`;
    limit.classList.toggle("over", Boolean(daily.limit_reached));
  }
  setText("month-cost", money(month.total_cost, month.currency));
  setText("month", month.month);
  if (balance.balance === null) {
    setText("balance", "not set");
    setText("remaining", "");
  } else {
    setText("balance", money(balance.balance, balance.currency));
    setText("remaining", `${money(balance.remaining, balance.currency)} left after ${money(balance.total_spent, balance.currency)} spent`);
  }
}

function renderRecords(data) {
  const body = $("records").tBodies[0];
  body.replaceChildren();
  for (const r of data.records) {
    const row = body.insertRow();
    row.dataset.id = r.id;
    if (!r.success) {
      row.className = "failed";
    }
    cell(row, r.created_at.replace("T", " ").replace(/\.\d+Z$/, "Z"));
    cell(row, r.model);
    cell(row, r.user_id);
    cell(row, r.page_tab);
    cell(row, r.message, "message");
    cell(row, integer(r.total_tokens), "num");
    cell(row, r.cost === null ? "unpriced" : money(r.cost, r.currency), "num");
    cell(row, String(r.status_code), "num");
    cell(row, integer(r.processing_time_ms), "num");
    row.addEventListener("click", () => showRecord(r.id).catch((err) => showError(err.message)));
  }
  totalPages = Math.max(data.total_pages, 1);
  setText("page-info", `page ${data.page} of ${totalPages}, ${integer(data.total)} records`);
  $("prev").disabled = page <= 1;
  $("next").disabled = page >= totalPages;
}

async function showRecord(id) {
  const r = await request("/records/" + encodeURIComponent(id));
  setText("detail-id", r.id);
  const fields = $("detail-fields");
  fields.replaceChildren();
  for (const [key, value] of Object.entries(r)) {
    if (key === "request_data" || key === "response_data" || key === "request_json" || key === "response_json") {
      continue;
    }
    const dt = document.createElement("dt");
    dt.textContent = key;
    const dd = document.createElement("dd");
    dd.textContent = typeof value === "object" && value !== null ? JSON.stringify(value) : String(value);
    fields.append(dt, dd);
  }
  setText("detail-request", pretty(r.request_data));
  setText("detail-response", pretty(r.response_data));
  show("detail", true);
  $("detail").scrollIntoView();
}

function pretty(text) {
  if (!text) {
    return "(not stored)";
  }
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch (err) {
    return text;
  }
}

async function refresh() {
  showError("");
  const days = $("days").value;
  try {
    // One request first: a wrong token then costs one failed check, not
    // five, and the admin API throttles an address after repeated failures.
    const stats = await request(`/stats?days=${days}`);
    const [daily, month, balance, records] = await Promise.all([
      request("/daily-limit"),
      request("/current-month"),
      request("/balance"),
      request(`/records?days=${days}&page=${page}&limit=${pageSize}`),
    ]);
    renderStats(stats);
    renderLimits(daily, month, balance);
    renderRecords(records);
    show("overview", true);
    document.body.dataset.loaded = "true";
  } catch (err) {
    showError(err.message);
  }
}

function signIn(token) {
  sessionStorage.setItem(tokenKey, token);
  show("signin", false);
  show("controls", true);
  page = 1;
  refresh();
}

function signOut() {
  sessionStorage.removeItem(tokenKey);
  show("signin", true);
  show("controls", false);
  show("overview", false);
  show("detail", false);
  delete document.body.dataset.loaded;
}

document.addEventListener("DOMContentLoaded", () => {
  $("signin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $("token").value.trim();
    $("token").value = "";
    if (token !== "") {
      signIn(token);
    }
  });
  $("signout").addEventListener("click", signOut);
  $("refresh").addEventListener("click", refresh);
  $("days").addEventListener("change", () => {
    page = 1;
    refresh();
  });
  $("prev").addEventListener("click", () => {
    page = Math.max(page - 1, 1);
    refresh();
  });
  $("next").addEventListener("click", () => {
    page = Math.min(page + 1, totalPages);
    refresh();
  });
  $("detail-close").addEventListener("click", () => show("detail", false));
  if (sessionStorage.getItem(tokenKey)) {
    signIn(sessionStorage.getItem(tokenKey));
  }
});
