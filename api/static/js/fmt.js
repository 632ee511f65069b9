// Times in the site's time zone (Asia/Shanghai unless the site says otherwise), durations and
// numbers.

import { lang, t } from "./i18n.js";

let zone = "Asia/Shanghai";
const cache = new Map();

export function setZone(tz) {
  zone = tz || "Asia/Shanghai";
  cache.clear();
}

export function siteZone() {
  return zone;
}

function formatter(kind) {
  const key = `${lang()}|${zone}|${kind}`;
  if (!cache.has(key)) {
    const locale = lang() === "zh" ? "zh-CN" : "en-GB";
    const options = {
      time: { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false },
      short: { hour: "2-digit", minute: "2-digit", hour12: false },
      datetime: {
        month: "2-digit",
        day: "2-digit",
        hour: "2-digit",
        minute: "2-digit",
        hour12: false,
      },
      parts: {
        year: "numeric",
        month: "2-digit",
        day: "2-digit",
        hour: "2-digit",
        minute: "2-digit",
        second: "2-digit",
        hour12: false,
      },
    }[kind];
    cache.set(key, new Intl.DateTimeFormat(kind === "parts" ? "en-US" : locale, { ...options, timeZone: zone }));
  }
  return cache.get(key);
}

const toDate = (v) => (v instanceof Date ? v : new Date(v));

export const time = (v) => (v === null || v === undefined ? "—" : formatter("time").format(toDate(v)));
export const shortTime = (v) => (v === null || v === undefined ? "—" : formatter("short").format(toDate(v)));
export const dateTime = (v) => (v === null || v === undefined ? "—" : formatter("datetime").format(toDate(v)));

/** Wall-clock parts of instant ``ms`` in the site's zone. */
function zoneParts(ms) {
  const out = {};
  for (const p of formatter("parts").formatToParts(new Date(ms))) out[p.type] = p.value;
  const hour = out.hour === "24" ? 0 : Number(out.hour);
  return Date.UTC(Number(out.year), Number(out.month) - 1, Number(out.day), hour, Number(out.minute), Number(out.second));
}

/** "YYYY-MM-DDTHH:MM" (a datetime-local value) for instant ``ms`` in the site's zone. */
export function toLocalInput(ms) {
  return new Date(zoneParts(ms)).toISOString().slice(0, 16);
}

/** The instant of a datetime-local value read as wall-clock time in the site's zone. */
export function fromLocalInput(value) {
  const guess = Date.parse(`${value}:00Z`);
  let ms = guess - (zoneParts(guess) - guess);
  ms = guess - (zoneParts(ms) - ms); // second pass settles DST edges
  return ms;
}

/** "1:05:09" / "12:30" / "-0:05:00" from milliseconds. */
export function duration(ms) {
  const sign = ms < 0 ? "-" : "";
  let sec = Math.floor(Math.abs(ms) / 1000);
  const h = Math.floor(sec / 3600);
  sec -= h * 3600;
  const m = Math.floor(sec / 60);
  sec -= m * 60;
  const pad = (n) => String(n).padStart(2, "0");
  return h ? `${sign}${h}:${pad(m)}:${pad(sec)}` : `${sign}${m}:${pad(sec)}`;
}

export function ago(ms) {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 2) return t("now");
  if (s < 120) return t("ago_s", { n: s });
  return t("ago_m", { n: Math.round(s / 60) });
}

export function num(v, digits = 0) {
  return v === null || v === undefined || Number.isNaN(v) ? "—" : Number(v).toFixed(digits);
}
