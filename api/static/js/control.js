// The control-room view: site plan with live positions, evacuation banner, alarms with
// acknowledge and resolve, the selected worker's vitals, the permit board, KPIs and events.

import { Stream, get, post } from "./api.js";
import { sparkline } from "./charts.js";
import { debounce, h, mount, throttleFrame } from "./dom.js";
import { ago, dateTime, duration, num, time } from "./fmt.js";
import { actionLabel, commandStateLabel, kindLabel, lang, permitStateLabel, permitTypeLabel, severityLabel, t } from "./i18n.js";
import { SitePlan } from "./plan.js";

const OFFLINE_MS = 30_000;
const HISTORY_MS = 10 * 60_000;
const SEVERITY_RANK = { critical: 0, warning: 1, info: 2 };
const STATE_RANK = { active: 0, suspended: 1, approved: 2 };

/** Loads a site's people, devices, plan, alarms, evacuations and permits; keeps them live. */
export class ControlRoom {
  constructor(root, { site, onStatus }) {
    this.root = root;
    this.site = site;
    this.onStatus = onStatus;
    this.devices = new Map();
    this.workers = new Map();
    this.users = new Map();
    this.alarms = new Map();
    this.evacuations = new Map();
    this.permits = [];
    this.plan = [];
    this.kpis = null;
    this.feed = [];
    this.selected = null;
    this.resolving = null; // {id, text}
    this.cursor = null;
    this.lastFrameAt = 0;
    this.timers = [];
    this._build();
    this.renderLive = throttleFrame(() => this._renderLive());
    this.reloadSoon = debounce(() => this.reload().catch(console.error), 400);
  }

  async start() {
    await this.reload();
    this.stream = new Stream("/ws/live", {
      hello: () => [{ type: "subscribe", sites: [this.site.site_id], rate_hz: 1, ...(this.cursor !== null ? { cursor: this.cursor } : {}) }],
      onMessage: (m) => this._message(m),
      onStatus: (st) => this.onStatus(st, this.lastFrameAt),
    });
    this.timers.push(setInterval(() => this._tick(), 1000));
    this.timers.push(setInterval(() => this._pollDevices().catch(() => {}), 5000));
    this.timers.push(setInterval(() => this.reload().catch(() => {}), 30_000));
  }

  destroy() {
    this.stream?.close();
    for (const id of this.timers) clearInterval(id);
  }

  // -- loading --------------------------------------------------------------------------------

  async reload() {
    const site = this.site.site_id;
    const l = lang();
    const [people, plan, alarms, evacs, kpis, ...boards] = await Promise.all([
      get(`/api/v1/sites/${site}/people`),
      get(`/api/v1/sites/${site}/plan`),
      get("/api/v1/alarms", { limit: 300 }),
      get("/api/v1/evacuations"),
      get("/api/v1/kpis", { site }).catch(() => null),
      ...["active", "suspended", "approved"].map((state) => get("/api/v1/permits", { site, state, lang: l, limit: 200 })),
    ]);
    this.workers = new Map(people.workers.map((w) => [w.worker_id, w]));
    this.users = new Map(people.users.map((u) => [u.user_id, u]));
    this.plan = plan.areas;
    this.alarms = new Map(alarms.filter((a) => !a.resolved_at && (a.site_id === site || a.site_id === null)).map((a) => [a.alarm_id, a]));
    this.evacuations = new Map(evacs.filter((e) => e.site_id === site).map((e) => [e.evacuation_id, e]));
    this.kpis = kpis;
    this.permits = boards.flatMap((b) => b.permits);
    await this._pollDevices();
    this._renderAll();
  }

  async _pollDevices() {
    const rows = await get("/api/v1/devices", { site: this.site.site_id });
    const now = Date.now();
    for (const row of rows) {
      const d = this._device(row.device_id);
      Object.assign(d, { worker_id: row.worker_id, worker_name: row.worker_name, kind: row.kind, fit: row.fit, permits: row.permits, estimates: row.estimates });
      if (row.latest && (!d.latest || row.latest.ts_ms > d.latest.ts_ms)) this._sample(row.latest);
      const ct = row.estimates?.["core_temp.ct"];
      if (ct !== null && ct !== undefined) push(d.hist.ct, [now, ct]);
    }
    this.renderLive();
  }

  _device(id) {
    let d = this.devices.get(id);
    if (!d) {
      d = { device_id: id, latest: null, estimates: null, fit: null, permits: [], trail: [], hist: { hr: [], ct: [], spo2: [], skin: [] } };
      this.devices.set(id, d);
    }
    return d;
  }

  _sample(sample) {
    const d = this._device(sample.device_id);
    if (d.latest && d.latest.ts_ms >= sample.ts_ms) return;
    d.latest = sample;
    const ts = sample.ts_ms;
    if (sample.hr !== null) push(d.hist.hr, [ts, sample.hr]);
    if (sample.spo2 !== null) push(d.hist.spo2, [ts, sample.spo2]);
    if (sample.skin_temp !== null) push(d.hist.skin, [ts, sample.skin_temp]);
    if (sample.lat !== null && sample.lon !== null) {
      d.trail.push([sample.lat, sample.lon]);
      if (d.trail.length > 90) d.trail.shift();
    }
  }

  // -- the live stream ------------------------------------------------------------------------

  _message(m) {
    if (m.type === "subscribed") {
      this.cursor = m.cursor;
    } else if (m.type === "telemetry") {
      this.lastFrameAt = Date.now();
      for (const sample of samplesOf(m.samples)) this._sample(sample);
      this.renderLive();
    } else if (m.type === "event") {
      this.cursor = m.cursor;
      this._event(m.event);
    } else if (m.type === "gap") {
      this.reloadSoon(); // events were lost while away: read the state again
    }
  }

  _event(e) {
    const site = this.site.site_id;
    if (e.site_id && e.site_id !== site) return;
    if (e.type === "alarm") {
      if (e.resolved_at) this.alarms.delete(e.alarm_id);
      else this.alarms.set(e.alarm_id, { ...this.alarms.get(e.alarm_id), ...e });
      this._renderAlarms();
      this._renderKpis();
    } else if (e.type === "evacuation") {
      if (e.state === "in_progress") this.evacuations.set(e.evacuation_id, e);
      else this.evacuations.delete(e.evacuation_id);
      this._renderEvacuations();
      this.renderLive();
    } else if (e.type === "permit" || e.type === "fitness") {
      this.reloadSoon();
    } else if (e.type === "action" && (e.action === "evacuate" || e.action === "suspend" || e.action === "terminate")) {
      this.reloadSoon();
    }
    if (e.type !== "command" || ["timed_out", "failed", "expired", "done"].includes(e.state)) {
      this.feed.unshift({ at: Date.now(), e });
      this.feed.length = Math.min(this.feed.length, 60);
      this._renderFeed();
    }
  }

  _tick() {
    this._renderBoardTimers();
    this.onStatus(this.stream?.ws ? "live" : "offline", this.lastFrameAt);
  }

  // -- derived facts --------------------------------------------------------------------------

  nameOf(deviceOrWorker) {
    const d = this.devices.get(deviceOrWorker);
    const workerId = d ? d.worker_id : deviceOrWorker;
    return this.workers.get(workerId)?.name || d?.worker_name || workerId || deviceOrWorker;
  }

  userName(userId) {
    return this.users.get(userId)?.name || userId;
  }

  statusOf(d) {
    let worst = null;
    for (const a of this.alarms.values()) {
      if (a.device_id !== d.device_id || a.state !== "active") continue;
      if (worst === null || SEVERITY_RANK[a.severity] < SEVERITY_RANK[worst]) worst = a.severity;
    }
    if (worst === "critical") return "critical";
    if (!d.latest || Date.now() - d.latest.ts_ms > OFFLINE_MS) return "offline";
    if (worst === "warning") return "warning";
    if (d.fit === false) return "unfit";
    return "ok";
  }

  _isWatcher(d) {
    return this.plan.some((a) => a.watcher_device === d.device_id);
  }

  // -- skeleton -------------------------------------------------------------------------------

  _build() {
    this.el = {
      evac: h("section", { id: "evac-banner", class: "evac-banner", hidden: true }),
      plan: h("div", { id: "plan", class: "plan" }),
      legend: h("div", { class: "plan-legend" }),
      kpis: h("div", { id: "kpis", class: "kpis" }),
      alarms: h("ol", { id: "alarm-list", class: "alarm-list" }),
      alarmCount: h("span", { class: "count" }),
      panel: h("div", { id: "worker-panel", class: "worker-panel" }),
      workers: h("table", { id: "worker-table", class: "table worker-table" }),
      board: h("table", { id: "permit-board", class: "table permit-board" }),
      feed: h("ol", { id: "event-feed", class: "event-feed" }),
    };
    this.sitePlan = new SitePlan(this.el.plan, { onSelect: (id) => this.select(id) });
    // Rows are redrawn every second: select on pointer down, delegated to the table.
    const pickRow = (ev) => {
      const row = ev.target.closest?.("tr[data-device]");
      if (row) this.select(row.dataset.device);
    };
    this.el.workers.addEventListener("pointerdown", pickRow);
    this.el.workers.addEventListener("keydown", (ev) => ev.key === "Enter" && pickRow(ev));
    const card = (cls, title, ...body) => h("section", { class: `card ${cls}` }, [h("h2", {}, title), ...body]);
    mount(
      this.root,
      this.el.evac,
      h("section", { class: "kpi-strip", "aria-label": t("kpis") }, this.el.kpis),
      h("div", { class: "control-grid" }, [
        h("div", { class: "col col-main" }, [
          h("section", { class: "card plan-card" }, [h("h2", {}, [t("plan"), " · ", this.site.name]), this.el.plan, this.el.legend]),
          card("board-card", t("permit_board"), h("div", { class: "scroll" }, this.el.board)),
        ]),
        h("div", { class: "col col-side" }, [
          h("section", { class: "card alarm-card" }, [h("h2", {}, [t("alarms"), " ", this.el.alarmCount]), this.el.alarms]),
          card("worker-card", t("workers"), this.el.panel, h("div", { class: "scroll" }, this.el.workers)),
        ]),
        h("div", { class: "col col-extra" }, [card("feed-card", t("activity"), this.el.feed)]),
      ]),
    );
    mount(this.el.legend, ...["ok", "warning", "critical", "unfit", "offline"].map((st) =>
      h("span", { class: `legend-item status-${st}` }, [h("i"), { ok: t("fit_ok"), warning: severityLabel("warning"), critical: severityLabel("critical"), unfit: t("unfit"), offline: t("offline_short") }[st]]),
    ));
  }

  select(deviceId) {
    this.selected = deviceId;
    this.sitePlan.select(deviceId);
    this._renderPanel();
    this._renderWorkers();
    const d = this.devices.get(deviceId);
    if (d && !d.prefilled) {
      d.prefilled = true;
      const end = new Date();
      const start = new Date(end.getTime() - HISTORY_MS);
      get("/api/v1/telemetry", { device: deviceId, start: start.toISOString(), end: end.toISOString(), limit: 2000 })
        .then((page) => {
          const rows = page.samples || [];
          const older = (arr, pts) => arr.unshift(...pts.filter(([ms]) => !arr.length || ms < arr[0][0]));
          older(d.hist.hr, rows.filter((r) => r.hr !== null).map((r) => [r.ts_ms, r.hr]));
          older(d.hist.spo2, rows.filter((r) => r.spo2 !== null).map((r) => [r.ts_ms, r.spo2]));
          older(d.hist.skin, rows.filter((r) => r.skin_temp !== null).map((r) => [r.ts_ms, r.skin_temp]));
          this._renderPanel();
        })
        .catch(() => {});
    }
  }

  // -- rendering ------------------------------------------------------------------------------

  _renderAll() {
    this._renderEvacuations();
    this._renderAlarms();
    this._renderBoard();
    this._renderKpis();
    this._renderFeed();
    this._renderLive();
  }

  _renderLive() {
    const numbers = new Map(this.permits.map((p) => [p.permit_id, p.number]));
    this.sitePlan.setAreas(this.plan.map((a) => ({ ...a, number: numbers.get(a.permit_id) })));
    this.sitePlan.setEvacuations([...this.evacuations.values()]);
    this.sitePlan.setWorkers(
      [...this.devices.values()]
        .filter((d) => d.latest)
        .map((d) => ({
          device_id: d.device_id,
          label: this.nameOf(d.device_id),
          lat: d.latest.lat,
          lon: d.latest.lon,
          trail: d.trail,
          status: this.statusOf(d),
          watcher: this._isWatcher(d),
        })),
    );
    this.sitePlan.render();
    this._renderWorkers();
    this._renderPanel();
    this._renderKpis();
  }

  _renderEvacuations() {
    const open = [...this.evacuations.values()];
    this.el.evac.hidden = open.length === 0;
    const numbers = new Map(this.permits.map((p) => [p.permit_id, p.number]));
    mount(
      this.el.evac,
      open.map((e) =>
        h("div", { class: "evac", dataset: { evacuation: e.evacuation_id } }, [
          h("strong", { class: "evac-title" }, `⚠ ${t("evacuation")} ${numbers.get(e.permit_id) || ""}`),
          h("span", { class: "evac-count" }, t("evac_accounted", { a: e.accounted, n: e.people.length })),
          h("span", { class: "evac-since" }, `${time(e.started_at)} · ${e.reason}`),
          h("ul", { class: "evac-people" }, e.people.map((p) => h("li", { class: p.accounted ? "out" : "inside" }, [
            this.nameOf(p.worker_id || p.device_id),
            " — ",
            p.confirmed_at ? t("evac_confirmed") : p.outside_at ? t("evac_outside") : p.acked_at ? `${t("evac_acked")}, ${t("evac_inside")}` : t("evac_inside"),
          ]))),
        ]),
      ),
    );
  }

  _sortedAlarms() {
    return [...this.alarms.values()].sort(
      (a, b) =>
        (a.state === "active" ? 0 : 1) - (b.state === "active" ? 0 : 1) ||
        (a.acked_at ? 1 : 0) - (b.acked_at ? 1 : 0) ||
        SEVERITY_RANK[a.severity] - SEVERITY_RANK[b.severity] ||
        Date.parse(b.raised_at) - Date.parse(a.raised_at),
    );
  }

  _renderAlarms() {
    const list = this._sortedAlarms();
    const unacked = list.filter((a) => !a.acked_at).length;
    this.el.alarmCount.textContent = list.length ? t("alarm_count", { u: unacked, n: list.length }) : "";
    if (!list.length) {
      mount(this.el.alarms, h("li", { class: "empty" }, t("no_alarms")));
      return;
    }
    const focused = document.activeElement?.classList.contains("resolve-reason");
    mount(this.el.alarms, list.map((a) => this._alarmItem(a)));
    if (focused) {
      const box = this.el.alarms.querySelector(".resolve-reason");
      box?.focus();
      box?.setSelectionRange(box.value.length, box.value.length);
    }
  }

  _alarmItem(a) {
    const resolving = this.resolving?.id === a.alarm_id;
    const item = h("li", {
      class: `alarm sev-${a.severity} state-${a.state}${a.acked_at ? " acked" : ""}`,
      dataset: { alarmId: a.alarm_id, kind: a.kind },
    }, [
      h("div", { class: "alarm-head" }, [
        h("span", { class: "sev" }, severityLabel(a.severity)),
        h("strong", { class: "kind" }, kindLabel(a.kind)),
        h("span", { class: "who" }, this.nameOf(a.worker_id || a.device_id)),
        h("span", { class: "value" }, alarmValue(a)),
      ]),
      h("div", { class: "alarm-meta" }, [
        h("time", { datetime: a.raised_at }, time(a.raised_at)),
        h("span", {}, a.state === "active" ? t("active") : `${t("cleared")} ${time(a.cleared_at)}`),
        a.acked_at ? h("span", { class: "acked-by" }, t("acked_by", { user: a.acked_by })) : null,
      ]),
      h("div", { class: "alarm-actions" }, [
        a.acked_at ? null : h("button", { class: "btn ack", onclick: () => this.acknowledge(a.alarm_id) }, t("ack")),
        resolving ? null : h("button", { class: "btn ghost resolve", onclick: () => this._openResolve(a.alarm_id) }, t("resolve")),
      ]),
    ]);
    if (resolving) {
      const box = h("textarea", { class: "resolve-reason", rows: 2, maxlength: 500, placeholder: t("resolve_reason"), "aria-label": t("resolve_reason") });
      box.value = this.resolving.text;
      box.addEventListener("input", () => (this.resolving.text = box.value));
      item.append(
        h("form", { class: "resolve-form", onsubmit: (ev) => { ev.preventDefault(); this.resolve(a.alarm_id); } }, [
          box,
          h("div", { class: "row" }, [
            h("button", { class: "btn", type: "submit" }, t("resolve_submit")),
            h("button", { class: "btn ghost", type: "button", onclick: () => { this.resolving = null; this._renderAlarms(); } }, t("cancel")),
          ]),
        ]),
      );
    }
    return item;
  }

  _openResolve(id) {
    this.resolving = { id, text: "" };
    this._renderAlarms();
    this.el.alarms.querySelector(".resolve-reason")?.focus();
  }

  async acknowledge(id) {
    try {
      const row = await post(`/api/v1/alarms/${id}/ack`);
      this.alarms.set(id, { ...this.alarms.get(id), ...row });
    } catch (err) {
      toast(t("error", { m: err.message }));
    }
    this._renderAlarms();
    this._renderKpis();
  }

  async resolve(id) {
    const reason = (this.resolving?.text || "").trim();
    if (!reason) {
      this.el.alarms.querySelector(".resolve-reason")?.focus();
      return;
    }
    try {
      await post(`/api/v1/alarms/${id}/resolve`, { reason });
      this.alarms.delete(id);
      this.resolving = null;
    } catch (err) {
      toast(t("error", { m: err.message }));
    }
    this._renderAlarms();
    this._renderKpis();
  }

  _renderWorkers() {
    const rows = [...this.devices.values()]
      .filter((d) => d.kind !== "gateway")
      .map((d) => ({ d, st: this.statusOf(d) }))
      .sort((x, y) => statusRank(x.st) - statusRank(y.st) || this.nameOf(x.d.device_id).localeCompare(this.nameOf(y.d.device_id)));
    const head = h("thead", {}, h("tr", {}, [t("worker"), t("hr"), "CT", "SpO2", t("skin_temp"), t("battery"), t("fit")].map((c) => h("th", {}, c))));
    const body = h("tbody", {}, rows.map(({ d, st }) => {
      const l = d.latest || {};
      const ct = d.estimates?.["core_temp.ct"];
      const worker = this.workers.get(d.worker_id) || {};
      const bad = (cond) => (cond ? "num bad" : "num");
      const tr = h("tr", { class: `status-${st}${this.selected === d.device_id ? " selected" : ""}`, dataset: { device: d.device_id }, tabindex: 0 }, [
        h("td", {}, [h("i", { class: "dot" }), this.nameOf(d.device_id)]),
        h("td", { class: bad(worker.age && l.hr >= 180 - worker.age) }, num(l.hr)),
        h("td", { class: bad(ct >= (worker.acclimatized ? 38.5 : 38.0)) }, num(ct, 1)),
        h("td", { class: bad(l.spo2 !== null && l.spo2 < 90) }, num(l.spo2)),
        h("td", { class: "num" }, num(l.skin_temp, 1)),
        h("td", { class: "num" }, l.battery === null || l.battery === undefined ? "—" : `${num(l.battery)}%`),
        h("td", {}, statusText(st)),
      ]);
      return tr;
    }));
    mount(this.el.workers, head, body);
  }

  _renderPanel() {
    const d = this.selected && this.devices.get(this.selected);
    if (!d) {
      mount(this.el.panel, h("p", { class: "hint" }, t("select_worker")));
      return;
    }
    const l = d.latest || {};
    const worker = this.workers.get(d.worker_id) || {};
    const age = worker.age;
    const ctLimit = worker.acclimatized ? 38.5 : 38.0;
    const tile = (label, value, unit, points, opts) =>
      h("div", { class: "vital" }, [
        h("div", { class: "vital-label" }, label),
        h("div", { class: "vital-value" }, [value, h("small", {}, unit)]),
        sparkline(points, { spanMs: HISTORY_MS, ...opts }),
      ]);
    const permits = (d.permits || []).map((id) => this.permits.find((p) => p.permit_id === id)?.number || id.slice(0, 8));
    mount(this.el.panel, [
      h("div", { class: "panel-head" }, [
        h("strong", { class: "panel-name" }, this.nameOf(d.device_id)),
        h("span", { class: `badge status-${this.statusOf(d)}` }, statusText(this.statusOf(d))),
        h("span", { class: "muted" }, `${d.device_id}${permits.length ? ` · ${permits.join(", ")}` : ""}`),
        h("span", { class: "muted" }, `${t("last_seen")}: ${l.ts_ms ? ago(l.ts_ms) : "—"}`),
      ]),
      h("div", { class: "vitals" }, [
        tile(t("hr"), num(l.hr), "bpm", d.hist.hr, { limit: age ? { value: 180 - age, above: true } : null }),
        tile(t("core_temp"), num(d.estimates?.["core_temp.ct"], 2), "°C", d.hist.ct, { limit: { value: ctLimit, above: true }, min: 36.8 }),
        tile(t("spo2"), num(l.spo2), "%", d.hist.spo2, { limit: { value: 90, above: false }, max: 100 }),
        tile(t("skin_temp"), num(l.skin_temp, 1), "°C", d.hist.skin, {}),
      ]),
      h("div", { class: "panel-foot muted" }, [
        `${t("strain")}: ${num(d.estimates?.["strain.psi"], 1)}`,
        ` · ${t("motion")}: ${num(l.motion, 2)}`,
        ` · ${t("battery")}: ${l.battery === null || l.battery === undefined ? "—" : `${num(l.battery)}%`}`,
      ]),
    ]);
  }

  _renderBoard() {
    const rows = [...this.permits].sort(
      (a, b) => STATE_RANK[a.state] - STATE_RANK[b.state] || Date.parse(a.planned_end) - Date.parse(b.planned_end),
    );
    const head = h("thead", {}, h("tr", {}, [t("number"), t("type"), t("level"), t("state"), t("time_left"), t("watcher"), t("crew"), t("trail")].map((c) => h("th", {}, c))));
    const body = rows.length
      ? rows.map((p) =>
          h("tr", { class: `permit state-${p.state}`, dataset: { permit: p.permit_id } }, [
            h("td", { title: p.title }, h("strong", {}, p.number)),
            h("td", {}, p.type_name || permitTypeLabel(p.type)),
            h("td", {}, p.level_label || "—"),
            h("td", {}, h("span", { class: `badge state-${p.state}` }, p.state_label || permitStateLabel(p.state))),
            h("td", { class: "num time-left", dataset: { end: p.planned_end } }, ""),
            h("td", {}, this.userName(p.watcher)),
            h("td", { class: "crew" }, p.workers.map((w) => this.nameOf(w.worker_id)).join("、")),
            h("td", {}, h("a", { href: `#/trail/${p.permit_id}`, class: "trail-link" }, t("open_trail"))),
          ]),
        )
      : [h("tr", {}, h("td", { colspan: 8, class: "empty" }, t("no_permits")))];
    mount(this.el.board, head, h("tbody", {}, body));
    this._renderBoardTimers();
  }

  _renderBoardTimers() {
    const now = Date.now();
    for (const cell of this.el.board.querySelectorAll(".time-left")) {
      const left = Date.parse(cell.dataset.end) - now;
      cell.textContent = left < 0 ? `${t("overdue")} ${duration(-left)}` : duration(left);
      cell.classList.toggle("due", left < 30 * 60_000);
      cell.classList.toggle("over", left < 0);
    }
  }

  _renderKpis() {
    const online = [...this.devices.values()].filter((d) => d.kind !== "gateway" && d.latest && Date.now() - d.latest.ts_ms < OFFLINE_MS).length;
    const k = this.kpis;
    const item = (label, value, cls = "") => h("div", { class: `kpi ${cls}` }, [h("div", { class: "kpi-value" }, value), h("div", { class: "kpi-label" }, label)]);
    const unacked = [...this.alarms.values()].filter((a) => !a.acked_at).length;
    mount(this.el.kpis, [
      item(t("kpi_online"), String(online)),
      item(t("kpi_active_permits"), String(this.permits.filter((p) => p.state === "active").length)),
      item(t("kpi_open_alarms"), String(unacked), unacked ? "bad" : ""),
      item(t("kpi_evacuations"), String(this.evacuations.size), this.evacuations.size ? "bad" : ""),
      item(t("kpi_lead_time"), k?.approval_lead_time_min?.median != null ? t("minutes", { n: num(k.approval_lead_time_min.median) }) : "—"),
      item(t("kpi_high_risk"), k?.high_risk_share != null ? `${num(k.high_risk_share * 100)}%` : "—"),
      item(t("kpi_alarm_rate"), k?.alarms_per_permit_hour != null ? num(k.alarms_per_permit_hour, 2) : "—"),
      item(t("kpi_repeat"), k ? String(k.repeat_violations_by_worker.length) : "—"),
    ]);
  }

  _renderFeed() {
    mount(this.el.feed, this.feed.slice(0, 30).map(({ at, e }) => h("li", { class: `feed-${e.type}` }, [h("time", {}, time(at)), " ", this._feedText(e)])));
  }

  _feedText(e) {
    const numbers = new Map(this.permits.map((p) => [p.permit_id, p.number]));
    switch (e.type) {
      case "alarm":
        return `${kindLabel(e.kind)} · ${this.nameOf(e.worker_id || e.device_id)} · ${e.resolved_at ? t("resolve") : e.acked_at ? t("acked_by", { user: e.acked_by }) : e.state === "active" ? severityLabel(e.severity) : t("cleared")}`;
      case "action":
        return `${actionLabel(e.action)} · ${numbers.get(e.permit_id) || ""} ${e.reason || ""}`;
      case "command":
        return `${actionLabel(e.action)} → ${this.nameOf(e.device_id)}: ${commandStateLabel(e.state)}`;
      case "permit":
        return `${numbers.get(e.permit_id) || e.permit_id?.slice(0, 8)} · ${e.kind}${e.state ? ` → ${permitStateLabel(e.state)}` : ""}`;
      case "fitness":
        return `${this.nameOf(e.worker_id)} · ${e.fit ? t("fit_ok") : t("unfit")}`;
      case "evacuation":
        return `${t("evacuation")} ${numbers.get(e.permit_id) || ""} · ${e.state === "in_progress" ? t("evac_accounted", { a: e.accounted, n: e.people.length }) : t("evac_done")}`;
      default:
        return e.type;
    }
  }
}

function push(arr, point) {
  arr.push(point);
  const cutoff = point[0] - HISTORY_MS;
  while (arr.length && arr[0][0] < cutoff) arr.shift();
}

function statusRank(st) {
  return { critical: 0, warning: 1, unfit: 2, offline: 3, ok: 4 }[st];
}

function statusText(st) {
  return { ok: t("fit_ok"), warning: severityLabel("warning"), critical: severityLabel("critical"), unfit: t("unfit"), offline: t("offline_short") }[st];
}

function alarmValue(a) {
  const v = a.value;
  if (v === null || v === undefined || ["sos", "fall"].includes(a.kind)) return "";
  const unit = {
    spo2_low: ["%", 0], core_temp_high: ["°C", 1], skin_temp_high: ["°C", 1], hr_sustained_high: ["bpm", 0],
    hr_recovery_poor: ["bpm", 0], hr_drift: ["σ", 1], strain_high: ["PSI", 1], device_offline: ["s", 0], no_motion: ["s", 0],
    geofence_exit: ["m", 0], watcher_away: ["m", 0],
  }[a.kind];
  return unit ? `${num(v, unit[1])} ${unit[0]}` : num(v, 1);
}

/** A short message at the bottom of the screen. */
export function toast(message) {
  const el = h("div", { class: "toast", role: "alert" }, message);
  document.body.append(el);
  setTimeout(() => el.remove(), 5000);
}

export { dateTime };

// A telemetry frame's samples come as columns ({device_id: [...], ts_ms: [...], hr: [...]});
// one object per device, as the REST answers give them.
export function* samplesOf(columns) {
  const names = Object.keys(columns);
  const n = columns.device_id.length;
  for (let i = 0; i < n; i++) {
    const sample = {};
    for (const name of names) sample[name] = columns[name][i];
    yield sample;
  }
}
