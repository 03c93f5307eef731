// The adstream dashboard page: fetches the data API every few seconds and draws it with Plotly.
// The window comes from the page's address (?minutes=60, optionally &until=ISO-8601), so a
// view can be bookmarked or pinned to a fixed time. Each element that shows a number keeps
// the API's exact value in its data-value attribute.
"use strict";

(() => {
  const address = new URLSearchParams(window.location.search);
  const state = {
    minutes: Number(address.get("minutes")) || null,  // null: the server's default window
    until: address.get("until"),
    refreshSeconds: 5,
    busy: false,
    again: false,
    refreshes: 0,
  };

  const count = new Intl.NumberFormat("en-US");
  const usd = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" });
  const PLOT_CONFIG = { displayModeBar: false, responsive: true };
  const COLORS = { impressions: "#2563eb", clicks: "#059669", ctr: "#d97706", revenue: "#7c3aed" };

  // --- the data API ------------------------------------------------------------------------

  function describe(detail) {
    if (Array.isArray(detail)) {  // FastAPI's validation errors
      return detail.map((item) => `${item.loc.slice(1).join(".")}: ${item.msg}`).join("; ");
    }
    return detail || "no details";
  }

  async function api(path, extra = {}) {
    const query = new URLSearchParams(extra);
    if (state.minutes) query.set("minutes", state.minutes);
    if (state.until) query.set("until", state.until);
    let response;
    try {
      response = await fetch(`${path}?${query}`, { headers: { Accept: "application/json" } });
    } catch (error) {
      throw new Error(`${path}: the dashboard server does not answer (${error.message})`);
    }
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      throw new Error(`${path}: ${response.status} ${describe(body.detail)}`);
    }
    return body;
  }

  // --- formatting ----------------------------------------------------------------------------

  const formatCount = (value) => count.format(value);
  const formatCtr = (ctr) => (ctr === null ? "–" : `${(ctr * 100).toFixed(2)} %`);
  const formatMoney = (amount) => usd.format(Number(amount));
  const plotTime = (iso) => iso.replace(/Z$/, "");  // Plotly has no time zones: axes are UTC

  function formatLag(seconds) {
    if (seconds === null) return "–";
    if (seconds < 120) return `${seconds.toFixed(1)} s`;
    if (seconds < 7200) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
    return `${(seconds / 3600).toFixed(1)} h`;
  }

  function show(id, value, text) {
    const element = document.getElementById(id);
    element.dataset.value = value === null ? "" : String(value);
    element.textContent = text;
  }

  // --- drawing -------------------------------------------------------------------------------

  function layout(extra = {}) {
    return {
      margin: { l: 50, r: 10, t: 10, b: 40 },
      paper_bgcolor: "rgba(0,0,0,0)",
      plot_bgcolor: "rgba(0,0,0,0)",
      font: { size: 11 },
      showlegend: false,
      ...extra,
    };
  }

  function drawSummary(summary) {
    show("kpi-impressions", summary.impressions, formatCount(summary.impressions));
    show("kpi-clicks", summary.clicks, formatCount(summary.clicks));
    show("kpi-ctr", summary.ctr, formatCtr(summary.ctr));
    show("kpi-revenue", summary.revenue, formatMoney(summary.revenue));
    show("kpi-spend", summary.spend, formatMoney(summary.spend));
    show("kpi-freshness", summary.freshness_lag_seconds, formatLag(summary.freshness_lag_seconds));
    const newest = summary.newest_click_time;
    document.getElementById("kpi-freshness").title = newest
      ? `newest click in the window: ${newest}`
      : "no click in the window";
  }

  function drawSeries(id, series, name, toNumber, yaxis = {}) {
    const x = series.points.map((point) => plotTime(point.minute));
    const y = series.points.map((point) => toNumber(point[name]));
    const trace = {
      type: "scatter",
      mode: "lines",
      x,
      y,
      name,
      line: { color: COLORS[name], width: 2 },
      // A rate has gaps (no impressions, no CTR): an area would bridge them.
      fill: name === "ctr" ? "none" : "tozeroy",
      mode: name === "ctr" ? "lines+markers" : "lines",
      marker: { size: 4, color: COLORS[name] },
      hovertemplate: "%{x|%H:%M} UTC: %{y}<extra></extra>",
    };
    const axes = { xaxis: { type: "date", title: { text: "UTC" } }, yaxis: { rangemode: "tozero", ...yaxis } };
    Plotly.react(id, [trace], layout(axes), PLOT_CONFIG);
  }

  function drawTimeSeries(series) {
    drawSeries("chart-impressions", series, "impressions", Number);
    drawSeries("chart-clicks", series, "clicks", Number);
    drawSeries("chart-ctr", series, "ctr", (ctr) => (ctr === null ? null : ctr * 100), { ticksuffix: " %" });
    drawSeries("chart-revenue", series, "revenue", Number, { tickprefix: "$" });
  }

  function drawTop(tableId, top) {
    const body = document.querySelector(`#${tableId} tbody`);
    const most = Math.max(...top.rows.map((row) => Number(row.revenue)), 0);
    const rows = top.rows.map((row) => {
      const tr = document.createElement("tr");
      tr.dataset.id = row.id;
      const cells = [
        [row.id, row.id],
        [row.impressions, formatCount(row.impressions)],
        [row.clicks, formatCount(row.clicks)],
        [row.ctr, formatCtr(row.ctr)],
        [row.revenue, formatMoney(row.revenue)],
      ];
      for (const [value, text] of cells) {
        const td = document.createElement("td");
        td.dataset.value = value === null ? "" : String(value);
        td.textContent = text;
        tr.append(td);
      }
      const revenue = tr.lastElementChild;
      revenue.classList.add("bar");
      revenue.style.backgroundSize = `${most > 0 ? (100 * Number(row.revenue)) / most : 0}% 100%`;
      return tr;
    });
    if (rows.length === 0) {
      const tr = document.createElement("tr");
      const td = document.createElement("td");
      td.colSpan = 5;
      td.textContent = "nothing in this window";
      tr.append(td);
      rows.push(tr);
    }
    body.replaceChildren(...rows);
  }

  function drawPlatforms(mix) {
    const trace = {
      type: "pie",
      hole: 0.5,
      sort: false,
      labels: mix.rows.map((row) => row.platform_category),
      values: mix.rows.map((row) => row.impressions),
      textinfo: "label+percent",
      hovertemplate: "%{label}: %{value:,} impressions<extra></extra>",
    };
    const annotations = mix.rows.length ? [] : [{ text: "no impressions", showarrow: false }];
    Plotly.react("chart-platforms", [trace], layout({ annotations }), PLOT_CONFIG);
  }

  function drawRejected(rejected) {
    const streams = [...new Set(rejected.rows.map((row) => row.stream))].sort();
    const reasons = [...new Set(rejected.rows.map((row) => row.reason))];
    const traces = streams.map((stream) => ({
      type: "bar",
      orientation: "h",  // reason codes are long: they read best on the vertical axis
      name: stream,
      y: reasons,
      x: reasons.map((reason) => {
        const row = rejected.rows.find((r) => r.stream === stream && r.reason === reason);
        return row ? row.events : 0;
      }),
      hovertemplate: `${stream}, %{y}: %{x:,}<extra></extra>`,
    }));
    const annotations = traces.length ? [] : [{ text: "no rejected events", showarrow: false }];
    const extra = {
      barmode: "stack",
      showlegend: true,
      legend: { orientation: "h", y: 1.12 },
      yaxis: { autorange: "reversed", automargin: true },  // the most frequent first
      annotations,
    };
    Plotly.react("chart-rejected", traces, layout(extra), PLOT_CONFIG);
    document.getElementById("chart-rejected").dataset.total = String(rejected.total);
  }

  // --- the refresh loop ----------------------------------------------------------------------

  const PANELS = [
    ["/api/summary", {}, drawSummary],
    ["/api/timeseries", {}, drawTimeSeries],
    ["/api/top", { dimension: "campaign", limit: 10 }, (top) => drawTop("top-campaigns", top)],
    ["/api/top", { dimension: "publisher", limit: 10 }, (top) => drawTop("top-publishers", top)],
    ["/api/platforms", {}, drawPlatforms],
    ["/api/rejected", {}, drawRejected],
  ];

  function showErrors(messages) {
    const box = document.getElementById("error");
    box.textContent = messages.join("\n");
    box.hidden = messages.length === 0;
  }

  async function refresh() {
    if (state.busy) {  // a slow refresh is not stacked upon: one more follows it
      state.again = true;
      return;
    }
    state.busy = true;
    state.again = false;
    try {
      const results = await Promise.allSettled(PANELS.map(([path, extra]) => api(path, extra)));
      const errors = [];
      results.forEach((result, index) => {
        if (result.status === "fulfilled") {
          try {
            PANELS[index][2](result.value);
          } catch (error) {
            errors.push(`${PANELS[index][0]}: cannot draw (${error.message})`);
          }
        } else {
          errors.push(result.reason.message);
        }
      });
      showErrors([...new Set(errors)]);
      state.refreshes += 1;
      document.body.dataset.refreshes = String(state.refreshes);
      const when = new Date().toISOString().slice(11, 19);
      const end = state.until ? `until ${state.until}` : "until now";
      document.getElementById("status").textContent =
        `last ${state.minutes || "?"} min ${end} · updated ${when} UTC${errors.length ? " (with errors)" : ""}`;
    } finally {
      state.busy = false;
    }
    if (state.again) refresh();
  }

  function chooseWindow(minutes) {
    state.minutes = minutes;
    for (const button of document.querySelectorAll("#windows button")) {
      button.setAttribute("aria-pressed", String(Number(button.dataset.minutes) === minutes));
    }
    address.set("minutes", String(minutes));
    window.history.replaceState(null, "", `?${address}`);
    refresh();
  }

  async function start() {
    try {
      const config = await api("/api/config");
      state.refreshSeconds = config.refresh_seconds;
      state.minutes = state.minutes || config.default_window;
    } catch (error) {
      showErrors([error.message]);  // the panels then use the API's default window
    }
    document.getElementById("refresh").textContent = String(state.refreshSeconds);
    for (const button of document.querySelectorAll("#windows button")) {
      button.addEventListener("click", () => chooseWindow(Number(button.dataset.minutes)));
    }
    if (state.minutes) chooseWindow(state.minutes);
    else refresh();
    window.setInterval(refresh, state.refreshSeconds * 1000);
  }

  start();
})();
