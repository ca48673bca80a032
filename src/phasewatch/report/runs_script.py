"""The inlined style and plain-JavaScript behaviour of the runs page
(:mod:`phasewatch.report.runs_page`): sortable, filterable table and overlaid curves.

The script reads the page's ``runs-data`` JSON; served over HTTP (``phasewatch view``) it
re-reads ``runs.json`` every ``REFRESH_MS`` and redraws, keeping the sort, filter and picks.
"""

REFRESH_MS = 5000

CSS = """
.controls{margin:1em 0} .controls label{margin-right:1.5em} #count{color:#666}
#runs th{cursor:pointer;user-select:none;background:#f4f6fa;white-space:nowrap}
#runs th.asc::after{content:" \\25B2"} #runs th.desc::after{content:" \\25BC"}
#runs td.num{text-align:right;font-variant-numeric:tabular-nums} #stale{color:#b00}
"""

SCRIPT = (
    """
(function () {
  "use strict";
  var REFRESH_MS = __REFRESH_MS__;
  var PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                 "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
  var RAMP = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
  var state = {data: null, sortCol: null, sortDir: 1, filter: "", key: null, color: null};

  function fmt(v) {
    if (v === null || v === undefined) return "";
    if (typeof v === "number" && !Number.isInteger(v)) return String(Number(v.toPrecision(4)));
    return String(v);
  }
  function missing(v) { return v === null || v === undefined; }
  function compare(a, b) {
    if (typeof a === "number" && typeof b === "number") return a - b;
    return String(a).localeCompare(String(b), undefined, {numeric: true});
  }
  function shownRuns() {
    var q = state.filter.trim().toLowerCase(), cols = state.data.columns;
    var runs = state.data.runs.filter(function (r) {
      return !q || cols.some(function (c) { return fmt(r.row[c]).toLowerCase().indexOf(q) >= 0; });
    });
    if (state.sortCol === null) return runs;
    var c = state.sortCol, d = state.sortDir;
    return runs.slice().sort(function (a, b) {
      var x = a.row[c], y = b.row[c];
      if (missing(x) || missing(y)) return missing(x) === missing(y) ? 0 : (missing(x) ? 1 : -1);
      return d * compare(x, y);
    });
  }
  function onHeader(col) {
    if (state.sortCol === col) { state.sortDir = -state.sortDir; } else {
      state.sortCol = col; state.sortDir = 1;
    }
    render();
  }
  function renderHead() {
    var tr = document.createElement("tr");
    state.data.columns.forEach(function (c) {
      var th = document.createElement("th");
      th.textContent = c.replace(/^onset\\//, "onset: ");
      th.dataset.col = c;
      if (state.sortCol === c) th.className = state.sortDir > 0 ? "asc" : "desc";
      th.addEventListener("click", function () { onHeader(c); });
      tr.appendChild(th);
    });
    var last = document.createElement("th");
    last.textContent = "report";
    tr.appendChild(last);
    var head = document.querySelector("#runs thead");
    head.replaceChildren(tr);
  }
  function renderBody(runs) {
    var rows = runs.map(function (r) {
      var tr = document.createElement("tr");
      tr.dataset.run = r.path;
      state.data.columns.forEach(function (c) {
        var td = document.createElement("td");
        td.textContent = fmt(r.row[c]);
        if (typeof r.row[c] === "number") td.className = "num";
        tr.appendChild(td);
      });
      var td = document.createElement("td");
      if (r.report) {
        var a = document.createElement("a");
        a.href = r.report; a.textContent = "report";
        td.appendChild(a);
      } else { td.textContent = "\\u2014"; }
      tr.appendChild(td);
      return tr;
    });
    document.querySelector("#runs tbody").replaceChildren.apply(
      document.querySelector("#runs tbody"), rows);
    document.getElementById("count").textContent =
      runs.length + " of " + state.data.runs.length + " runs";
  }
  function fillSelect(id, options, current) {
    var sel = document.getElementById(id);
    var have = Array.prototype.map.call(sel.options, function (o) { return o.value; });
    if (have.join("\\n") !== options.join("\\n")) {
      sel.replaceChildren.apply(sel, options.map(function (o) {
        var opt = document.createElement("option");
        opt.value = o; opt.textContent = o;
        return opt;
      }));
    }
    var pick = options.indexOf(current) >= 0 ? current : (options.length ? options[0] : null);
    if (pick !== null) sel.value = pick;
    return pick;
  }
  function colours(runs, field) {
    var vals = runs.map(function (r) { return r.row[field]; }).filter(function (v) {
      return !missing(v);
    });
    var numeric = vals.length > 0 && vals.every(function (v) { return typeof v === "number"; });
    if (numeric) {
      var lo = Math.min.apply(null, vals), hi = Math.max.apply(null, vals);
      return function (v) {
        if (missing(v)) return "#999";
        var t = hi > lo ? (v - lo) / (hi - lo) : 0.5, s = t * (RAMP.length - 1);
        var i = Math.min(Math.floor(s), RAMP.length - 2), f = s - i;
        var c = RAMP[i].map(function (a, j) { return Math.round(a + f * (RAMP[i + 1][j] - a)); });
        return "rgb(" + c.join(",") + ")";
      };
    }
    var levels = [];
    vals.forEach(function (v) { if (levels.indexOf(String(v)) < 0) levels.push(String(v)); });
    levels.sort();
    return function (v) {
      return missing(v) ? "#999" : PALETTE[levels.indexOf(String(v)) % PALETTE.length];
    };
  }
  function valueAt(curve, step) {
    var xs = curve[0], ys = curve[1];
    for (var i = 0; i < xs.length; i++) {
      if (xs[i] >= step) {
        if (i === 0 || xs[i] === step) return ys[i];
        var f = (step - xs[i - 1]) / (xs[i] - xs[i - 1]);
        return ys[i - 1] + f * (ys[i] - ys[i - 1]);
      }
    }
    return xs.length ? ys[xs.length - 1] : null;
  }
  function traces(runs) {
    var key = state.key, field = state.color, colour = colours(runs, field), out = [];
    runs.forEach(function (r) {
      var curve = r.curves[key];
      if (!curve) return;
      var col = colour(r.row[field]);
      out.push({x: curve[0], y: curve[1], type: "scatter", mode: "lines", legendgroup: r.path,
                name: r.path + " (" + field + "=" + fmt(r.row[field]) + ")",
                line: {color: col}});
      var names = Object.keys(r.onsets);
      if (!names.length) return;
      out.push({x: names.map(function (n) { return r.onsets[n]; }),
                y: names.map(function (n) { return valueAt(curve, r.onsets[n]); }),
                text: names, type: "scatter", mode: "markers", legendgroup: r.path,
                showlegend: false, marker: {symbol: "x", size: 11, color: col},
                hovertemplate: r.path + ": %{text} onset at step %{x}<extra></extra>"});
    });
    return out;
  }
  function renderPlot(runs) {
    var layout = {title: {text: state.key || "(no metrics yet)"}, height: 480,
                  xaxis: {title: {text: "step"}}, yaxis: {title: {text: state.key || ""}},
                  margin: {t: 50}, legend: {font: {size: 10}}};
    Plotly.react("curves", traces(runs), layout, {displaylogo: false});
  }
  function render() {
    var runs = shownRuns();
    renderHead();
    renderBody(runs);
    renderPlot(runs);
  }
  function load(data) {
    state.data = data;
    state.key = fillSelect("key", data.keys, state.key);
    state.color = fillSelect("color", data.fields, state.color || data.color);
    render();
  }
  function poll() {
    fetch("runs.json?t=" + Date.now(), {cache: "no-store"})
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (d) { document.getElementById("count").removeAttribute("title"); load(d); })
      .catch(function () { document.getElementById("count").title = "refresh failed"; });
  }
  document.getElementById("filter").addEventListener("input", function (e) {
    state.filter = e.target.value; render();
  });
  document.getElementById("key").addEventListener("change", function (e) {
    state.key = e.target.value; render();
  });
  document.getElementById("color").addEventListener("change", function (e) {
    state.color = e.target.value; render();
  });
  load(JSON.parse(document.getElementById("runs-data").textContent));
  if (location.protocol.indexOf("http") === 0) setInterval(poll, REFRESH_MS);
})();
"""
).replace("__REFRESH_MS__", str(REFRESH_MS))
