// The session (OAuth2 password flow, tokens kept in this tab only), JSON calls that renew the
// access token when it runs out, and WebSocket streams that authenticate with their first
// message (tokens never go into URLs) and reconnect with backoff.

import { lang } from "./i18n.js";

const KEY = "pp.session";
const listeners = new Set();
let session = JSON.parse(sessionStorage.getItem(KEY) || "null");
let renewing = null;

export class ApiError extends Error {
  constructor(status, detail, code) {
    super(detail || `HTTP ${status}`);
    this.status = status;
    this.code = code;
  }
}

function store(next) {
  session = next;
  if (next) sessionStorage.setItem(KEY, JSON.stringify(next));
  else sessionStorage.removeItem(KEY);
  for (const fn of listeners) fn(session);
}

export function onSession(fn) {
  listeners.add(fn);
}

export function current() {
  return session;
}

async function tokenRequest(form) {
  const reply = await fetch("/api/v1/auth/token", {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(form),
  });
  const body = await reply.json().catch(() => ({}));
  if (!reply.ok) throw new ApiError(reply.status, body.detail, body.code);
  return {
    access: body.access_token,
    refresh: body.refresh_token,
    expiresAt: Date.now() + body.expires_in * 1000,
  };
}

/** Log in; then read who we are (roles, sites). */
export async function login(username, password) {
  const tokens = await tokenRequest({ grant_type: "password", username, password });
  store({ ...tokens, user: null });
  const me = await get("/api/v1/auth/me");
  store({ ...session, user: me });
  return me;
}

export async function logout() {
  if (session) {
    try {
      await fetch("/api/v1/auth/logout", { method: "POST", headers: authHeader() });
    } catch {
      /* the tokens are dropped below either way */
    }
  }
  store(null);
}

async function renew() {
  if (!session) throw new ApiError(401, "not logged in", "not_authenticated");
  if (!renewing) {
    renewing = tokenRequest({ grant_type: "refresh_token", refresh_token: session.refresh })
      .then((tokens) => store({ ...session, ...tokens }))
      .catch((err) => {
        store(null);
        throw err;
      })
      .finally(() => {
        renewing = null;
      });
  }
  await renewing;
}

/** A valid access token (renewed a minute before it runs out). */
export async function accessToken() {
  if (!session) throw new ApiError(401, "not logged in", "not_authenticated");
  if (Date.now() > session.expiresAt - 60_000) await renew();
  return session.access;
}

function authHeader() {
  return session ? { Authorization: `Bearer ${session.access}` } : {};
}

async function call(method, path, { params, body } = {}) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params || {})) {
    if (v === null || v === undefined) continue;
    for (const item of [].concat(v)) url.searchParams.append(k, item);
  }
  await accessToken();
  for (let attempt = 0; ; attempt++) {
    const reply = await fetch(url, {
      method,
      headers: {
        ...authHeader(),
        "Accept-Language": lang() === "zh" ? "zh-CN" : "en",
        ...(body ? { "Content-Type": "application/json" } : {}),
      },
      body: body ? JSON.stringify(body) : undefined,
    });
    if (reply.status === 401 && attempt === 0 && session) {
      await renew();
      continue;
    }
    if (reply.status === 204) return null;
    const data = await reply.json().catch(() => null);
    if (!reply.ok) throw new ApiError(reply.status, data?.detail, data?.code);
    return data;
  }
}

export const get = (path, params) => call("GET", path, { params });
export const post = (path, body, params) => call("POST", path, { body, params });

/**
 * A JSON WebSocket stream with authentication and automatic reconnection.
 * ``hello(ws)`` returns the messages to send once authenticated (e.g. a subscribe with the
 * resume cursor); ``onMessage`` gets every other message; ``onStatus`` gets
 * "connecting" | "live" | "offline".
 */
export class Stream {
  constructor(path, { hello, onMessage, onStatus }) {
    this.path = path;
    this.hello = hello;
    this.onMessage = onMessage;
    this.onStatus = onStatus || (() => {});
    this.ws = null;
    this.closed = false;
    this.backoff = 500;
    this.lastMessageAt = 0;
    this.connect();
  }

  async connect() {
    if (this.closed) return;
    this.onStatus("connecting");
    let token;
    try {
      token = await accessToken();
    } catch {
      this.onStatus("offline");
      return;
    }
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}${this.path}`);
    this.ws = ws;
    ws.onopen = () => ws.send(JSON.stringify({ type: "auth", access_token: token }));
    ws.onmessage = (e) => {
      const msg = JSON.parse(e.data);
      this.lastMessageAt = Date.now();
      if (msg.type === "ping") {
        ws.send(JSON.stringify({ type: "pong" }));
      } else if (msg.type === "authenticated") {
        this.backoff = 500;
        for (const m of this.hello()) ws.send(JSON.stringify(m));
        this.onStatus("live");
      } else {
        this.onMessage(msg);
      }
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.closed) return;
      this.onStatus("offline");
      const wait = this.backoff * (0.75 + Math.random() * 0.5);
      this.backoff = Math.min(this.backoff * 2, 15_000);
      setTimeout(() => this.connect(), wait);
    };
  }

  send(message) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(message));
      return true;
    }
    return false;
  }

  close() {
    this.closed = true;
    if (this.ws) this.ws.close();
    this.ws = null;
  }
}
