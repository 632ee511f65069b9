// The site plan: work areas (geofences) of the live permits, evacuation zones, worker positions
// with short trails, and (heat-map view) binned work points — drawn in SVG on a local metric
// projection with a scale bar and a north arrow.

import { s, mount } from "./dom.js";
import { permitTypeLabel, permitStateLabel, t } from "./i18n.js";

const W = 1000;
const H = 640;
const M_PER_DEG = 111320;
const TYPE_COLOURS = {
  DH: "#f97316", SX: "#38bdf8", GC: "#a3e635", DZ: "#facc15",
  MB: "#c084fc", YD: "#fb7185", DT: "#d6a36a", DL: "#94a3b8",
};

export class SitePlan {
  constructor(container, { onSelect, interactive = true } = {}) {
    this.svg = s("svg", {
      class: "plan-svg",
      viewBox: `0 0 ${W} ${H}`,
      preserveAspectRatio: "xMidYMid meet",
      role: "img",
      "aria-label": t("plan"),
    });
    this.gStatic = s("g", { class: "plan-static" });
    this.gWorkers = s("g", { class: "plan-workers" });
    this.svg.append(this.gStatic, this.gWorkers);
    container.append(this.svg);
    this.onSelect = onSelect || (() => {});
    this.interactive = interactive;
    this.markers = new Map(); // device → its marker elements, kept across frames
    this.staticKey = null;
    if (interactive) {
      // Delegated, on pointer down: markers move every second, a click must still land.
      const pick = (ev) => {
        const g = ev.target.closest?.(".plan-worker");
        if (g) this.onSelect(g.dataset.device);
      };
      this.svg.addEventListener("pointerdown", pick);
      this.svg.addEventListener("keydown", (ev) => ev.key === "Enter" && pick(ev));
    }
    this.areas = [];
    this.evacuations = [];
    this.workers = [];
    this.heat = null;
    this.selected = null;
    this.extent = null; // {minX, maxX, minY, maxY} in metres around origin
    this.origin = null; // {lat, lon}
  }

  // -- projection ---------------------------------------------------------------------------

  _xy(lat, lon) {
    const o = this.origin;
    return [(lon - o.lon) * M_PER_DEG * Math.cos((o.lat * Math.PI) / 180), (lat - o.lat) * M_PER_DEG];
  }

  _fit(points) {
    // points: [lat, lon, radius_m]
    if (!points.length) return false;
    if (!this.origin) this.origin = { lat: points[0][0], lon: points[0][1] };
    let changed = false;
    const margin = 25;
    let e = this.extent;
    for (const [lat, lon, r = 0] of points) {
      const [x, y] = this._xy(lat, lon);
      if (!e) {
        e = { minX: x - r - margin, maxX: x + r + margin, minY: y - r - margin, maxY: y + r + margin };
        changed = true;
        continue;
      }
      if (x - r < e.minX || x + r > e.maxX || y - r < e.minY || y + r > e.maxY) {
        e = {
          minX: Math.min(e.minX, x - r - margin),
          maxX: Math.max(e.maxX, x + r + margin),
          minY: Math.min(e.minY, y - r - margin),
          maxY: Math.max(e.maxY, y + r + margin),
        };
        changed = true;
      }
    }
    this.extent = e;
    return changed;
  }

  _transform() {
    const e = this.extent;
    const pad = 40;
    const k = Math.min((W - 2 * pad) / Math.max(e.maxX - e.minX, 40), (H - 2 * pad) / Math.max(e.maxY - e.minY, 40));
    const cx = (e.minX + e.maxX) / 2;
    const cy = (e.minY + e.maxY) / 2;
    this.k = k;
    return (lat, lon) => {
      const [x, y] = this._xy(lat, lon);
      return [W / 2 + (x - cx) * k, H / 2 - (y - cy) * k];
    };
  }

  // -- data -----------------------------------------------------------------------------------

  setAreas(areas) {
    this.areas = areas;
    this._fit(areas.map((a) => [a.lat, a.lon, a.radius_m]));
  }

  setEvacuations(evacuations) {
    this.evacuations = evacuations;
    this._fit(evacuations.filter((e) => e.lat !== null).map((e) => [e.lat, e.lon, e.radius_m || 0]));
  }

  setWorkers(workers) {
    this.workers = workers;
    this._fit(workers.filter((w) => w.lat !== null && w.lat !== undefined).map((w) => [w.lat, w.lon, 0]));
  }

  setHeat(heat) {
    this.heat = heat;
    if (heat) {
      this._fit(heat.cells.map((c) => [c.lat, c.lon, heat.cell_m]));
      this._fit(heat.work_points.map((p) => [p.lat, p.lon, p.radius_m || 0]));
    }
  }

  select(deviceId) {
    this.selected = deviceId;
    this.render();
  }

  // -- drawing --------------------------------------------------------------------------------

  render() {
    if (!this.extent) {
      mount(this.gStatic, s("text", { x: W / 2, y: H / 2, class: "plan-empty", "text-anchor": "middle" }, t("no_data")));
      return;
    }
    const at = this._transform();
    // The background (grid, areas, evacuations, heat) is redrawn only when it changed.
    const key = JSON.stringify([this.extent, this.areas, this.evacuations, this.heat ? this.heat.cells.length : 0, t("north")]);
    if (key !== this.staticKey) {
      this.staticKey = key;
      const layers = [this._grid(), this._scaleBar(), this._north()];
      if (this.heat) layers.push(this._heatLayer(at));
      layers.push(...this.areas.map((a) => this._area(a, at)));
      layers.push(...this.evacuations.filter((e) => e.lat !== null).map((e) => this._evacuation(e, at)));
      mount(this.gStatic, layers);
    }
    const seen = new Set();
    for (const w of this.workers) {
      if (w.lat === null || w.lat === undefined) continue;
      seen.add(w.device_id);
      this._worker(w, at);
    }
    for (const [device, m] of this.markers) {
      if (!seen.has(device)) {
        m.root.remove();
        this.markers.delete(device);
      }
    }
    // Critical workers, then the selected one, on top: never hidden under a neighbour.
    const rank = (w) => (w.device_id === this.selected ? 3 : { critical: 2, warning: 1 }[w.status] || 0);
    const order = this.workers.filter((w) => this.markers.has(w.device_id)).sort((a, b) => rank(a) - rank(b));
    const roots = order.map((w) => this.markers.get(w.device_id).root);
    if (roots.some((r, i) => this.gWorkers.children[i] !== r)) this.gWorkers.append(...roots);
  }

  _grid() {
    const step = niceStep(120 / this.k);
    const px = step * this.k;
    const lines = [];
    for (let x = (W / 2) % px; x < W; x += px) lines.push(s("line", { x1: x, y1: 0, x2: x, y2: H }));
    for (let y = (H / 2) % px; y < H; y += px) lines.push(s("line", { x1: 0, y1: y, x2: W, y2: y }));
    return s("g", { class: "plan-grid" }, lines);
  }

  _scaleBar() {
    const metres = niceStep(160 / this.k);
    const len = metres * this.k;
    return s("g", { class: "plan-scale", transform: `translate(${W - len - 30},${H - 26})` }, [
      s("rect", { x: 0, y: 0, width: len, height: 6 }),
      s("text", { x: len / 2, y: -6, "text-anchor": "middle" }, t("scale", { m: metres })),
    ]);
  }

  _north() {
    return s("g", { class: "plan-north", transform: "translate(34,46)" }, [
      s("path", { d: "M0,-22 L9,8 L0,2 L-9,8 Z" }),
      s("text", { x: 0, y: 24, "text-anchor": "middle" }, t("north")),
    ]);
  }

  _area(a, at) {
    const [x, y] = at(a.lat, a.lon);
    const r = Math.max(a.radius_m * this.k, 6);
    const colour = TYPE_COLOURS[a.type] || "#94a3b8";
    const label = a.number || a.permit_id.slice(0, 8);
    return s("g", { class: `plan-area state-${a.state}`, dataset: { permit: a.permit_id } }, [
      s("circle", { cx: x, cy: y, r, style: `--area: ${colour}` }),
      s("text", { x, y: y - r - 8, "text-anchor": "middle", class: "plan-area-label" }, [
        `${label} · ${permitTypeLabel(a.type)}`,
        a.state !== "active" ? s("tspan", { class: "plan-area-state" }, ` · ${permitStateLabel(a.state)}`) : null,
      ]),
      s("title", {}, `${label} ${permitTypeLabel(a.type)} ${a.level ?? ""} — ${permitStateLabel(a.state)}`),
    ]);
  }

  _evacuation(e, at) {
    const [x, y] = at(e.lat, e.lon);
    const r = Math.max((e.radius_m || 20) * this.k, 10);
    return s("g", { class: "plan-evac", dataset: { evacuation: e.evacuation_id } }, [
      s("circle", { cx: x, cy: y, r: r + 6, class: "plan-evac-ring" }),
      s("text", { x, y: y + r + 22, "text-anchor": "middle" }, `${t("evacuation")} ${e.accounted}/${e.people.length}`),
    ]);
  }

  _worker(w, at) {
    let m = this.markers.get(w.device_id);
    if (!m) {
      m = {
        trail: s("polyline", { class: "plan-trail" }),
        g: s("g", { dataset: { device: w.device_id }, tabindex: this.interactive ? 0 : null, role: this.interactive ? "button" : null }),
        dot: s("circle", { r: 8 }),
        mark: s("rect", { x: -4, y: -4, width: 8, height: 8, class: "plan-watcher-mark" }),
        label: s("text", { x: 12, y: 4, class: "plan-worker-label" }),
        title: s("title"),
      };
      m.g.append(m.dot, m.mark, m.label, m.title);
      m.root = s("g", {}, [m.trail, m.g]);
      this.gWorkers.append(m.root);
      this.markers.set(w.device_id, m);
    }
    const [x, y] = at(w.lat, w.lon);
    const selected = this.selected === w.device_id;
    m.g.setAttribute("class", `plan-worker status-${w.status}${selected ? " selected" : ""}${w.watcher ? " watcher" : ""}`);
    m.g.setAttribute("transform", `translate(${x.toFixed(1)},${y.toFixed(1)})`);
    m.dot.setAttribute("r", selected ? 11 : 8);
    m.mark.style.display = w.watcher ? "" : "none";
    if (m.label.textContent !== w.label) m.label.textContent = w.label;
    m.title.textContent = `${w.label} (${w.device_id})`;
    const trail = (w.trail || []).map(([lat, lon]) => at(lat, lon).map((v) => v.toFixed(1)).join(",")).join(" ");
    m.trail.setAttribute("points", trail);
  }

  _heatLayer(at) {
    const { cells, cell_m: cellM, work_points: points } = this.heat;
    const max = Math.max(1, ...cells.map((c) => c.samples));
    const size = Math.max(cellM * this.k, 3);
    const rects = cells.map((c) => {
      const [x, y] = at(c.lat, c.lon);
      const v = Math.log1p(c.samples) / Math.log1p(max);
      return s("rect", {
        x: x - size / 2,
        y: y - size / 2,
        width: size,
        height: size,
        class: "heat-cell",
        style: `fill: ${heatColour(v)}; fill-opacity: ${0.25 + 0.65 * v}`,
      }, s("title", {}, `${c.samples} ${t("samples")}, ${c.devices} ${t("workers")}`));
    });
    const marks = points.map((p) => {
      const [x, y] = at(p.lat, p.lon);
      return s("g", { class: "heat-point", transform: `translate(${x},${y})` }, [
        s("path", { d: "M0,-9 L8,6 L-8,6 Z" }),
        s("text", { x: 10, y: 4 }, `${p.number} ${permitTypeLabel(p.type)}`),
      ]);
    });
    return s("g", { class: "heat-layer" }, [...rects, ...marks]);
  }
}

function niceStep(raw) {
  const pow = 10 ** Math.floor(Math.log10(Math.max(raw, 1e-6)));
  for (const m of [1, 2, 5, 10]) if (m * pow >= raw) return m * pow;
  return 10 * pow;
}

/** Blue → yellow → red for 0..1. */
export function heatColour(v) {
  const stops = [
    [0, [56, 189, 248]],
    [0.5, [250, 204, 21]],
    [1, [239, 68, 68]],
  ];
  let i = 0;
  while (i < stops.length - 2 && v > stops[i + 1][0]) i++;
  const [a, ca] = stops[i];
  const [b, cb] = stops[i + 1];
  const f = Math.min(1, Math.max(0, (v - a) / (b - a)));
  const c = ca.map((x, j) => Math.round(x + (cb[j] - x) * f));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}
