// The other views: a worker's history with alarms marked, the heat map of work points, a
// permit's trail, and the supervisor's phone view (my permits, my pushes, evacuations).

import { Stream, get, post } from "./api.js";
import { historyChart } from "./charts.js";
import { h, mount } from "./dom.js";
import { dateTime, duration, fromLocalInput, time, toLocalInput } from "./fmt.js";
import { kindLabel, lang, permitStateLabel, permitTypeLabel, severityLabel, t } from "./i18n.js";
import { SitePlan } from "./plan.js";
import { toast } from "./control.js";

const HOUR = 3_600_000;

function periodInputs(startMs, endMs) {
  const from = h("input", { type: "datetime-local", name: "from", value: toLocalInput(startMs), required: true });
  const to = h("input", { type: "datetime-local", name: "to", value: toLocalInput(endMs), required: true });
  return { from, to, read: () => [fromLocalInput(from.value), fromLocalInput(to.value)] };
}

// -- history ------------------------------------------------------------------------------------

export async function historyView(root, { site, device }) {
  const devices = (await get("/api/v1/devices", { site: site.site_id })).filter((d) => d.kind !== "gateway");
  const select = h("select", { name: "device" }, devices.map((d) =>
    h("option", { value: d.device_id, selected: d.device_id === device }, `${d.worker_name || d.worker_id || d.device_id} (${d.device_id})`),
  ));
  const now = Date.now();
  const period = periodInputs(now - HOUR, now);
  const out = h("div", { class: "history-out" });
  const form = h("form", { class: "toolbar" }, [
    h("label", {}, [t("worker"), select]),
    h("label", {}, [t("from"), period.from]),
    h("label", {}, [t("to"), period.to]),
    h("button", { class: "btn", type: "submit" }, t("show")),
  ]);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    show();
  });
  mount(root, h("section", { class: "card wide" }, [h("h2", {}, t("history")), form, out]));

  async function show() {
    const [startMs, endMs] = period.read();
    if (!select.value || !(endMs > startMs)) return;
    location.hash = `#/history/${encodeURIComponent(select.value)}`;
    try {
      const data = await get("/api/v1/telemetry/1m", { device: select.value, start: new Date(startMs).toISOString(), end: new Date(endMs).toISOString() });
      renderHistory(out, data, startMs, endMs);
    } catch (err) {
      mount(out, h("p", { class: "error" }, t("error", { m: err.message })));
    }
  }
  if (select.value) await show();
}

function renderHistory(out, data, startMs, endMs) {
  if (!data.buckets.length && !data.alarms.length) {
    mount(out, h("p", { class: "empty" }, t("no_data")));
    return;
  }
  const at = (b) => Date.parse(b.bucket);
  const series = (key, label, cls) => ({ label, cls, points: data.buckets.map((b) => [at(b), b[key]]) });
  const bands = data.alarms.map((a) => ({
    from: Date.parse(a.raised_at),
    to: a.cleared_at ? Date.parse(a.cleared_at) : null,
    severity: a.peak || a.severity,
    label: `${kindLabel(a.kind)} ${time(a.raised_at)}`,
  }));
  const common = { bands, startMs, endMs };
  mount(out, [
    historyChart({ ...common, title: t("hr"), unit: "bpm", series: [series("hr", t("hr"), "s-hr"), series("hr_max", t("hr_max"), "s-hr-max")] }),
    historyChart({ ...common, title: t("spo2"), unit: "%", series: [series("spo2", t("spo2"), "s-spo2"), series("spo2_min", t("spo2_min"), "s-spo2-min")] }),
    historyChart({ ...common, title: t("skin_temp"), unit: "°C", digits: 1, series: [series("skin_temp", t("skin_temp"), "s-skin")] }),
    h("h3", {}, t("alarm_marks")),
    h("ol", { class: "alarm-list compact", id: "history-alarms" }, data.alarms.map((a) =>
      h("li", { class: `alarm sev-${a.peak || a.severity}` }, [
        h("span", { class: "sev" }, severityLabel(a.peak || a.severity)),
        h("strong", {}, kindLabel(a.kind)),
        h("span", {}, `${dateTime(a.raised_at)} – ${a.cleared_at ? time(a.cleared_at) : "…"}`),
      ]),
    )),
  ]);
}

// -- heat map -------------------------------------------------------------------------------------

export async function heatmapView(root, { site }) {
  const now = Date.now();
  const period = periodInputs(now - 8 * HOUR, now);
  const cell = h("select", { name: "cell" }, [5, 10, 20, 50].map((m) => h("option", { value: m, selected: m === 10 }, `${m} m`)));
  const presets = [["last_1h", 1], ["last_8h", 8], ["last_24h", 24], ["last_7d", 168]].map(([key, hours]) =>
    h("button", {
      class: "btn ghost",
      type: "button",
      onclick: () => {
        const end = Date.now();
        period.from.value = toLocalInput(end - hours * HOUR);
        period.to.value = toLocalInput(end);
        show();
      },
    }, t(key)),
  );
  const planBox = h("div", { class: "plan heat" });
  const summary = h("p", { class: "muted" });
  const form = h("form", { class: "toolbar" }, [
    ...presets,
    h("label", {}, [t("from"), period.from]),
    h("label", {}, [t("to"), period.to]),
    h("label", {}, [t("cell"), cell]),
    h("button", { class: "btn", type: "submit" }, t("show")),
  ]);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    show();
  });
  mount(root, h("section", { class: "card wide" }, [h("h2", {}, `${t("heatmap")} · ${site.name}`), form, planBox, summary]));
  let plan = null;

  async function show() {
    const [startMs, endMs] = period.read();
    try {
      const data = await get(`/api/v1/sites/${site.site_id}/heatmap`, {
        start: new Date(startMs).toISOString(), end: new Date(endMs).toISOString(), cell_m: cell.value,
      });
      mount(planBox);
      plan = new SitePlan(planBox, { interactive: false });
      plan.setHeat(data);
      plan.render();
      const total = data.cells.reduce((n, c) => n + c.samples, 0);
      summary.textContent = `${data.cells.length} × ${data.cell_m} m · ${total} ${t("samples")} · ${t("work_points")}: ${data.work_points.map((p) => `${p.number} ${permitTypeLabel(p.type)}`).join("、") || "—"}`;
    } catch (err) {
      summary.textContent = t("error", { m: err.message });
    }
  }
  await show();
  return () => plan;
}

// -- a permit's trail ---------------------------------------------------------------------------

export async function trailView(root, { permitId }) {
  const [permit, trail] = await Promise.all([
    get(`/api/v1/permits/${permitId}`, { lang: lang() }),
    get(`/api/v1/permits/${permitId}/trail`),
  ]);
  mount(root, h("section", { class: "card wide" }, [
    h("h2", {}, t("trail_title", { n: permit.number })),
    h("p", {}, `${permit.type_name} ${permit.level_label || ""} · ${permit.state_label} · ${permit.title} · ${permit.location_text}`),
    h("table", { class: "table", id: "trail" }, [
      h("thead", {}, h("tr", {}, [t("at"), t("actor"), t("action"), ""].map((c) => h("th", {}, c)))),
      h("tbody", {}, trail.map((e) => h("tr", {}, [
        h("td", {}, dateTime(e.at)),
        h("td", {}, e.actor),
        h("td", {}, e.action),
        h("td", { class: "muted mono" }, e.hash.slice(0, 12)),
      ]))),
    ]),
    h("a", { href: "#/", class: "btn ghost" }, t("close")),
  ]));
}

// -- the supervisor's phone -------------------------------------------------------------------------

export class SupervisorView {
  constructor(root, { user, onStatus }) {
    this.root = root;
    this.user = user;
    this.onStatus = onStatus;
    this.pushes = new Map();
    this.permits = [];
    this.evacuations = [];
    this.names = new Map(); // site → worker id → name
    this.el = {
      pushes: h("ol", { id: "push-list", class: "push-list" }),
      evac: h("div", { id: "sup-evacuations" }),
      permits: h("ol", { id: "my-permits", class: "my-permits" }),
    };
    mount(root, h("div", { class: "supervisor" }, [
      this.el.evac,
      h("section", { class: "card" }, [h("h2", {}, t("my_pushes")), this.el.pushes]),
      h("section", { class: "card" }, [h("h2", {}, t("my_permits")), this.el.permits]),
    ]));
    this.timers = [];
  }

  async start() {
    await this.reload();
    this.stream = new Stream("/ws/supervisor", {
      hello: () => [],
      onMessage: (m) => this._message(m),
      onStatus: (st) => this.onStatus(st, Date.now()),
    });
    this.timers.push(setInterval(() => this.render(), 1000));
    this.timers.push(setInterval(() => this.reload().catch(() => {}), 15_000));
  }

  destroy() {
    this.stream?.close();
    for (const id of this.timers) clearInterval(id);
  }

  async reload() {
    const [permits, evacs] = await Promise.all([
      get("/api/v1/me/permits"),
      get("/api/v1/evacuations").catch(() => []),
    ]);
    this.permits = permits;
    const mine = new Set(permits.map((p) => p.permit_id));
    this.evacuations = evacs.filter((e) => !e.permit_id || mine.has(e.permit_id) || this.user.sites === null || this.user.sites.includes(e.site_id));
    const sites = new Set([...permits.map((p) => p.site_id), ...this.evacuations.map((e) => e.site_id)]);
    for (const site of sites) {
      if (this.names.has(site)) continue;
      const people = await get(`/api/v1/sites/${site}/people`).catch(() => ({ workers: [] }));
      this.names.set(site, new Map(people.workers.map((w) => [w.worker_id, w.name])));
    }
    this.render();
  }

  _message(m) {
    if (m.type === "push") {
      const fresh = !this.pushes.has(m.push_id);
      this.pushes.set(m.push_id, { ...this.pushes.get(m.push_id), ...m });
      if (fresh && navigator.vibrate) navigator.vibrate([300, 100, 300]);
      if (fresh) this.stream.send({ type: "seen", push_id: m.push_id });
      this.reload().catch(() => {}); // an evacuation or a suspension may come with it
    } else if (m.type === "acked") {
      const p = this.pushes.get(m.push_id);
      if (p) p.state = "acked";
    } else if (m.type === "error") {
      toast(t("error", { m: m.detail }));
    }
    this.render();
  }

  ack(pushId) {
    if (!this.stream.send({ type: "ack", push_id: pushId })) {
      post(`/api/v1/pushes/${pushId}/ack`).then(() => {
        this.pushes.get(pushId).state = "acked";
        this.render();
      }).catch((err) => toast(t("error", { m: err.message })));
    }
  }

  async headcount(evacuationId) {
    try {
      await post(`/api/v1/evacuations/${evacuationId}/headcount`, {});
      await this.reload();
    } catch (err) {
      toast(t("error", { m: err.message }));
    }
  }

  render() {
    const now = Date.now();
    const pushes = [...this.pushes.values()].sort(
      (a, b) =>
        (a.state === "acked") - (b.state === "acked") ||
        this._isEvacuation(b) - this._isEvacuation(a) ||
        Date.parse(b.created_at) - Date.parse(a.created_at),
    );
    mount(this.el.pushes, pushes.length ? pushes.map((p) => {
      const left = Date.parse(p.deadline_at) - now;
      const acked = p.state === "acked";
      return h("li", { class: `push${this._isEvacuation(p) ? " evacuation" : ""}${acked ? " acked" : ""}`, dataset: { push: p.push_id, kind: p.kind } }, [
        h("div", { class: "push-message" }, p.message),
        h("div", { class: "push-meta" }, [
          time(p.created_at),
          " · ",
          acked ? t("push_acked") : p.state === "escalated" ? t("escalated") : `${t("deadline")} ${left > 0 ? duration(left) : t("overdue")}`,
        ]),
        acked ? null : h("button", { class: "btn big push-ack", onclick: () => this.ack(p.push_id) }, t("push_ack")),
      ]);
    }) : h("li", { class: "empty" }, t("no_pushes")));

    mount(this.el.evac, this.evacuations.filter((e) => e.state === "in_progress").map((e) => {
      const permit = this.permits.find((p) => p.permit_id === e.permit_id);
      const inside = e.people.filter((p) => !p.accounted);
      return h("section", { class: "evac-banner sup", dataset: { evacuation: e.evacuation_id } }, [
        h("strong", { class: "evac-title" }, `⚠ ${t("evacuation")} ${permit?.number || ""}`),
        h("span", { class: "evac-count" }, t("evac_accounted", { a: e.accounted, n: e.people.length })),
        h("div", {}, `${t("still_inside")}: ${inside.map((p) => this._name(p.worker_id || p.device_id)).join("、") || "—"}`),
        permit?.involvement === "watcher" ? h("button", { class: "btn big", onclick: () => this.headcount(e.evacuation_id) }, t("headcount")) : null,
      ]);
    }));

    mount(this.el.permits, this.permits.length ? this.permits.map((p) => {
      const left = Date.parse(p.planned_end) - now;
      return h("li", { class: `my-permit state-${p.state}`, dataset: { permit: p.permit_id } }, [
        h("div", { class: "row" }, [
          h("strong", {}, p.number),
          h("span", { class: `badge state-${p.state}` }, permitStateLabel(p.state)),
          h("span", { class: "badge" }, t(`involvement_${p.involvement}`)),
        ]),
        h("div", {}, `${permitTypeLabel(p.type)} ${p.level || ""} · ${p.title}`),
        h("div", { class: "muted" }, `${t("time_left")}: ${left > 0 ? duration(left) : t("overdue")} · ${t("watcher")}: ${p.watcher_name || p.watcher}`),
        h("div", { class: "muted" }, `${t("crew")}: ${p.workers.map((w) => w.name).join("、") || "—"}`),
      ]);
    }) : h("li", { class: "empty" }, t("no_permits_mine")));
  }

  _name(id) {
    for (const names of this.names.values()) if (names.has(id)) return names.get(id);
    return id;
  }

  /** An evacuation push: the rule that sent it evacuates (its id says so: the push's kind). */
  _isEvacuation(p) {
    return /evacuat|撤离/i.test(p.kind || "");
  }
}
