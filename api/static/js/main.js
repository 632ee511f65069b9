// The page's shell: login screen, header (site, site clock, stream status, language, user),
// and the hash router between the control room, history, heat map, trail and supervisor views.

import { ApiError, current, get, login, logout } from "./api.js";
import { ControlRoom } from "./control.js";
import { h, mount } from "./dom.js";
import { setZone, time } from "./fmt.js";
import { lang, onLangChange, setLang, t } from "./i18n.js";
import { SupervisorView, heatmapView, historyView, trailView } from "./views.js";

const app = document.getElementById("app");
const ROOM_ROLES = ["control_room", "safety", "admin"];
let view = null; // the running view (has destroy())
let sites = [];
let site = null;
const header = {};

function isPhoneUser(user) {
  return !user.roles.some((r) => ROOM_ROLES.includes(r));
}

// -- login ----------------------------------------------------------------------------------------

function loginScreen(message = "") {
  stopView();
  const user = h("input", { name: "username", autocomplete: "username", required: true, autofocus: true });
  const pass = h("input", { name: "password", type: "password", autocomplete: "current-password", required: true });
  const error = h("p", { class: "error", role: "alert" }, message);
  const form = h("form", { class: "login card", id: "login-form" }, [
    h("div", { class: "brand big" }, [h("span", { class: "logo" }, "PermitPulse"), h("span", {}, t("app_title"))]),
    h("h1", {}, t("login_title")),
    h("label", {}, [t("username"), user]),
    h("label", {}, [t("password"), pass]),
    error,
    h("button", { class: "btn big", type: "submit" }, t("login")),
    h("button", { class: "btn ghost lang-toggle", type: "button", onclick: () => { setLang(lang() === "zh" ? "en" : "zh"); } }, t("language")),
  ]);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.textContent = "";
    try {
      await login(user.value.trim(), pass.value);
      await start();
    } catch (err) {
      error.textContent = err instanceof ApiError && err.status === 429 ? t("login_throttled") : err instanceof ApiError && err.status === 401 ? t("login_failed") : t("error", { m: err.message });
    }
  });
  mount(app, h("main", { class: "login-page" }, form));
}

// -- shell ------------------------------------------------------------------------------------------

function shell(user) {
  header.status = h("span", { class: "conn", id: "conn-status" }, t("connecting"));
  header.clock = h("span", { class: "clock", id: "site-clock" });
  header.site = h("select", { id: "site-select", "aria-label": t("site") }, sites.map((s) => h("option", { value: s.site_id, selected: s.site_id === site.site_id }, s.name)));
  header.site.addEventListener("change", () => {
    chooseSite(header.site.value);
    route();
  });
  const nav = [["#/", "nav_control"], ["#/history", "nav_history"], ["#/heatmap", "nav_heatmap"], ["#/supervisor", "nav_supervisor"]];
  header.nav = nav.map(([href, key]) => h("a", { href, dataset: { route: href } }, t(key)));
  const bar = h("header", { class: "topbar" }, [
    h("div", { class: "brand" }, [h("span", { class: "logo" }, "PermitPulse"), h("span", { class: "title" }, t("app_title"))]),
    h("nav", {}, header.nav),
    h("div", { class: "right" }, [
      sites.length > 1 ? header.site : h("span", { class: "site-name" }, site.name),
      header.clock,
      header.status,
      h("button", { class: "btn ghost", id: "lang-toggle", onclick: () => setLang(lang() === "zh" ? "en" : "zh") }, t("language")),
      h("span", { class: "user" }, user.username),
      h("button", { class: "btn ghost", id: "logout", onclick: async () => { await logout(); loginScreen(); } }, t("logout")),
    ]),
  ]);
  header.main = h("main", { id: "view" });
  mount(app, bar, header.main);
  tickClock();
}

function tickClock() {
  if (header.clock) header.clock.textContent = `${time(Date.now())} ${site?.timezone ?? ""}`;
}

function setStatus(state, lastFrameAt) {
  if (!header.status) return;
  const age = lastFrameAt ? Math.round((Date.now() - lastFrameAt) / 1000) : null;
  let text = t(state === "live" ? "live" : state === "connecting" ? "connecting" : "offline");
  let cls = state;
  if (state === "live" && age !== null && age > 5) {
    text = `${t("live")} · ${t("data_age", { s: age })}`;
    cls = "stale";
  }
  header.status.textContent = text;
  header.status.className = `conn ${cls}`;
}

function chooseSite(id) {
  site = sites.find((s) => s.site_id === id) || sites[0];
  localStorage.setItem("pp.site", site.site_id);
  setZone(site.timezone);
}

function stopView() {
  view?.destroy?.();
  view = null;
}

async function route() {
  const user = current()?.user;
  if (!user) return loginScreen();
  stopView();
  let hash = location.hash || "#/";
  if (hash === "#/" && isPhoneUser(user)) hash = "#/supervisor";
  document.body.classList.toggle("phone-view", hash.startsWith("#/supervisor"));
  for (const a of header.nav) a.classList.toggle("active", hash === a.dataset.route || (a.dataset.route !== "#/" && hash.startsWith(a.dataset.route)));
  const root = header.main;
  mount(root);
  const [, name, arg] = hash.split("/");
  try {
    if (name === "history") {
      await historyView(root, { site, device: arg ? decodeURIComponent(arg) : null });
    } else if (name === "heatmap") {
      await heatmapView(root, { site });
    } else if (name === "trail" && arg) {
      await trailView(root, { permitId: arg });
    } else if (name === "supervisor") {
      view = new SupervisorView(root, { user, onStatus: setStatus });
      await view.start();
    } else {
      view = new ControlRoom(root, { site, onStatus: setStatus });
      await view.start();
    }
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return loginScreen();
    mount(root, h("p", { class: "error" }, err instanceof ApiError && err.status === 403 ? t("forbidden") : t("error", { m: err.message })));
  }
}

async function start() {
  const user = current()?.user;
  if (!user) return loginScreen();
  try {
    sites = await get("/api/v1/sites");
  } catch (err) {
    return loginScreen(err instanceof ApiError && err.status === 401 ? "" : t("error", { m: err.message }));
  }
  if (!sites.length) {
    mount(app, h("main", { class: "login-page" }, h("p", { class: "error" }, t("no_site"))));
    return;
  }
  chooseSite(localStorage.getItem("pp.site"));
  shell(user);
  await route();
}

window.addEventListener("hashchange", () => {
  // A history query rewrites the hash to keep the chosen worker bookmarkable: no re-route then.
  if (location.hash.startsWith("#/history/") && document.querySelector(".history-out")) return;
  route();
});
onLangChange(() => (current()?.user ? start() : loginScreen()));
setInterval(tickClock, 1000);
start();
