/* The market page's charts, drawn with Chart.js (an npm dependency served from /static/vendor/).
 *
 * Each chart is a container with data-chart="depth" or "history" and data-source naming a
 * json_script element that holds its data and every label, already translated by Django. htmx
 * replaces the sections that hold them; charts in a section are destroyed before it is swapped
 * out and drawn again when the new one is loaded, so drawing is idempotent.
 */
(function () {
  "use strict";

  var BID = "#0b6e4f";
  var ASK = "#b42318";
  var PALETTE = ["#0b6e4f", "#1d4ed8", "#b54708", "#7c3aed", "#b42318", "#0e7490", "#4d7c0f", "#be185d"];

  function sourceOf(container) {
    var source = document.getElementById(container.dataset.source);
    return source ? JSON.parse(source.textContent) : null;
  }

  function destroyIn(root) {
    root.querySelectorAll("canvas").forEach(function (canvas) {
      var chart = window.Chart && window.Chart.getChart(canvas);
      if (chart) chart.destroy();
    });
  }

  function showEmpty(container) {
    var note = document.createElement("p");
    note.className = "muted";
    note.textContent = container.dataset.empty || "";
    container.replaceChildren(note);
  }

  // A figure with an optional caption and a sized box: Chart.js sizes the canvas to its parent.
  function newCanvas(container, caption) {
    var figure = document.createElement("figure");
    figure.className = "chart-figure";
    if (caption) {
      var figcaption = document.createElement("figcaption");
      figcaption.textContent = caption;
      figure.append(figcaption);
    }
    var box = document.createElement("div");
    box.className = "chart-box";
    var canvas = document.createElement("canvas");
    box.append(canvas);
    figure.append(box);
    container.append(figure);
    return canvas;
  }

  function axis(title, extra) {
    return Object.assign({ title: { display: true, text: title } }, extra || {});
  }

  function utc(ms) {
    return new Date(ms).toISOString().slice(5, 16).replace("T", " ");
  }

  /* Depth: demand D(p) = units wanted at a limit ≥ p (falls as p rises), supply S(p) = free
   * units offered at a minimum ≤ p (rises with p). The data come as cumulative points: bids from
   * the highest limit down, asks from the lowest minimum up. */
  function drawDepth(container, data) {
    if (!data.groups.length) return showEmpty(container);
    data.groups.forEach(function (group) {
      var bids = group.bids.map(function (p) { return { x: Number(p[0]), y: p[1] }; }).reverse();
      var asks = group.asks.map(function (p) { return { x: Number(p[0]), y: p[1] }; });
      var prices = bids.concat(asks).map(function (p) { return p.x; });
      var low = Math.min.apply(null, prices);
      var high = Math.max.apply(null, prices);
      var margin = Math.max((high - low) * 0.1, high * 0.05, 0.01);
      if (bids.length) {
        // Everything is wanted below the lowest limit; nothing above the highest.
        bids.unshift({ x: low - margin, y: bids[0].y });
        bids.push({ x: bids[bids.length - 1].x, y: 0 });
      }
      if (asks.length) {
        // Nothing is offered below the lowest minimum; everything above the highest.
        asks.unshift({ x: asks[0].x, y: 0 });
        asks.push({ x: high + margin, y: asks[asks.length - 1].y });
      }
      new window.Chart(newCanvas(container, group.title), {
        type: "line",
        data: {
          datasets: [
            // "after": a demand level holds up to the next higher limit; "before": a supply
            // level holds up to the next higher minimum.
            { label: data.labels.bids, data: bids, stepped: "after", borderColor: BID,
              backgroundColor: BID + "22", fill: "origin", pointRadius: 0 },
            { label: data.labels.asks, data: asks, stepped: "before", borderColor: ASK,
              backgroundColor: ASK + "22", fill: "origin", pointRadius: 0 },
          ],
        },
        options: {
          animation: false,
          maintainAspectRatio: false,
          interaction: { mode: "nearest", intersect: false },
          scales: {
            x: axis(data.labels.x, { type: "linear", min: low - margin, max: high + margin }),
            y: axis(data.labels.y, { beginAtZero: true, ticks: { precision: 0 } }),
          },
        },
      });
    });
  }

  /* Price history: one stepped line per class, a point where its price changed; the price
   * holds until the next point. */
  function drawHistory(container, data) {
    if (!data.series.some(function (s) { return s.points.length; })) return showEmpty(container);
    var labels = data.labels;
    var datasets = data.series.map(function (series, i) {
      var colour = PALETTE[i % PALETTE.length];
      return {
        label: series.label,
        data: series.points.map(function (p) {
          return { x: Date.parse(p[0]), y: Number(p[1]), unit: p[2] };
        }),
        stepped: "before",
        borderColor: colour,
        backgroundColor: colour,
        pointRadius: 3,
      };
    });
    new window.Chart(newCanvas(container, ""), {
      type: "line",
      data: { datasets: datasets },
      options: {
        animation: false,
        maintainAspectRatio: false,
        scales: {
          x: axis(labels.x, { type: "linear", ticks: { callback: utc } }),
          y: axis(labels.y),
        },
        plugins: {
          tooltip: {
            callbacks: {
              title: function (items) { return items.length ? utc(items[0].parsed.x) : ""; },
              label: function (item) {
                return item.dataset.label + ": " + item.raw.y + " " + labels.scu + " · " +
                  item.raw.unit + " " + labels.unit;
              },
            },
          },
        },
      },
    });
  }

  var DRAW = { depth: drawDepth, history: drawHistory };

  function drawAll(root) {
    if (!window.Chart || !root.querySelectorAll) return;
    var containers = Array.prototype.slice.call(root.querySelectorAll("[data-chart]"));
    if (root.matches && root.matches("[data-chart]")) containers.push(root);
    containers.forEach(function (container) {
      var draw = DRAW[container.dataset.chart];
      var data = sourceOf(container);
      if (!draw || !data) return;
      destroyIn(container);
      container.replaceChildren();
      draw(container, data);
    });
  }

  document.addEventListener("htmx:beforeSwap", function (event) {
    destroyIn(event.detail.target);
  });
  document.addEventListener("htmx:load", function (event) {
    drawAll(event.detail.elt);
  });
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { drawAll(document); });
  } else {
    drawAll(document);
  }
})();
