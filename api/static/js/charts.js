// Small SVG charts: sparklines for the worker panel and the history chart with alarm periods.

import { s } from "./dom.js";
import { shortTime } from "./fmt.js";

/**
 * A sparkline of ``points`` ([ms, value]) over the last ``spanMs``; ``limit`` draws a dashed
 * threshold line (value and whether exceeding it is "above" or "below" bad).
 */
export function sparkline(points, { spanMs = 10 * 60_000, limit = null, digits = 0, min = null, max = null } = {}) {
  const w = 220;
  const h = 44;
  const now = Date.now();
  // A short history fills the width (at least a minute) instead of hugging the right edge.
  if (points.length) spanMs = Math.min(spanMs, Math.max(60_000, now - points[0][0]));
  const pts = points.filter(([ms, v]) => v !== null && v !== undefined && ms >= now - spanMs);
  const values = pts.map(([, v]) => v);
  if (limit) values.push(limit.value);
  let lo = Math.min(...values, min ?? Infinity);
  let hi = Math.max(...values, max ?? -Infinity);
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return s("svg", { class: "spark empty", viewBox: `0 0 ${w} ${h}` });
  if (hi - lo < 1e-6) {
    hi += 1;
    lo -= 1;
  }
  const x = (ms) => ((ms - (now - spanMs)) / spanMs) * w;
  const y = (v) => h - 3 - ((v - lo) / (hi - lo)) * (h - 6);
  const line = pts.map(([ms, v]) => `${x(ms).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
  const last = pts.at(-1);
  const bad = last && limit && (limit.above ? last[1] >= limit.value : last[1] <= limit.value);
  return s("svg", { class: `spark${bad ? " bad" : ""}`, viewBox: `0 0 ${w} ${h}`, preserveAspectRatio: "none" }, [
    limit ? s("line", { class: "spark-limit", x1: 0, x2: w, y1: y(limit.value), y2: y(limit.value) }) : null,
    s("polyline", { points: line }),
    last ? s("circle", { cx: x(last[0]), cy: y(last[1]), r: 2.5 }) : null,
  ]);
}

/**
 * A time-series chart: ``series`` = [{label, cls, points: [[ms, v]]}], ``bands`` = alarm
 * periods [{from, to, label, severity}], over [startMs, endMs].
 */
export function historyChart({ title, series, bands, startMs, endMs, unit, digits = 0 }) {
  const w = 960;
  const h = 200;
  const left = 48;
  const right = 24;
  const top = 22;
  const bottom = 26;
  const values = series.flatMap((sr) => sr.points.map(([, v]) => v)).filter((v) => v !== null);
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (!Number.isFinite(lo)) {
    lo = 0;
    hi = 1;
  }
  if (hi - lo < 1e-6) {
    hi += 1;
    lo -= 1;
  }
  const padV = (hi - lo) * 0.08;
  lo -= padV;
  hi += padV;
  const x = (ms) => left + ((ms - startMs) / (endMs - startMs)) * (w - left - right);
  const y = (v) => top + (1 - (v - lo) / (hi - lo)) * (h - top - bottom);
  const ticks = [];
  for (let i = 0; i <= 6; i++) {
    const ms = startMs + ((endMs - startMs) * i) / 6;
    ticks.push(s("line", { class: "axis-tick", x1: x(ms), x2: x(ms), y1: top, y2: h - bottom }));
    ticks.push(s("text", { class: "axis-label", x: x(ms), y: h - 8, "text-anchor": "middle" }, shortTime(ms)));
  }
  for (const v of [lo + padV, (lo + hi) / 2, hi - padV]) {
    ticks.push(s("text", { class: "axis-label", x: left - 6, y: y(v) + 4, "text-anchor": "end" }, v.toFixed(digits)));
  }
  const bandEls = bands.map((b) => {
    const x0 = x(Math.max(b.from, startMs));
    const x1 = x(Math.min(b.to ?? endMs, endMs));
    return s("g", { class: `band sev-${b.severity}` }, [
      s("rect", { x: x0, y: top, width: Math.max(x1 - x0, 2), height: h - top - bottom }),
      s("text", { x: x0 + 3, y: top + 12 }, b.label),
      s("title", {}, b.label),
    ]);
  });
  const lines = series.map((sr) => {
    // Break the line where a bucket is missing (a gap of more than three minutes).
    const segments = [];
    let cur = [];
    let prev = null;
    for (const [ms, v] of sr.points) {
      if (v === null) continue;
      if (prev !== null && ms - prev > 180_000 && cur.length) {
        segments.push(cur);
        cur = [];
      }
      cur.push(`${x(ms).toFixed(1)},${y(v).toFixed(1)}`);
      prev = ms;
    }
    if (cur.length) segments.push(cur);
    // A lone bucket (or a short run) shows as dots: a one-point polyline draws nothing.
    const dots = sr.points.length <= 90 ? sr.points.filter(([, v]) => v !== null).map(([ms, v]) => s("circle", { cx: x(ms), cy: y(v), r: 2.5 })) : [];
    return s("g", { class: `series ${sr.cls}` }, [...segments.map((seg) => s("polyline", { points: seg.join(" ") })), ...dots]);
  });
  const legend = series.map((sr, i) =>
    s("g", { class: `legend ${sr.cls}`, transform: `translate(${left + 8 + i * 150},14)` }, [
      s("line", { x1: 0, x2: 18, y1: -4, y2: -4 }),
      s("text", { x: 24, y: 0 }, sr.label),
    ]),
  );
  return s("svg", { class: "history-chart", viewBox: `0 0 ${w} ${h}`, role: "img", "aria-label": title }, [
    s("text", { class: "chart-title", x: w - right, y: 14, "text-anchor": "end" }, `${title}${unit ? ` (${unit})` : ""}`),
    ...ticks,
    ...bandEls,
    ...lines,
    ...legend,
  ]);
}
