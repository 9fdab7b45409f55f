// The link protocol (docs/protocol.md) from a browser: one WebSocket to /link/app, JSON
// frames, requests answered by id, pushes by op. Reconnects by itself with backoff and
// full jitter after a drop, logs in again, and fetches the events it missed (event.since).

export class LinkError extends Error {
  constructor(code, msg) {
    super(`${msg} (${code})`);
    this.code = code;
    this.msg = msg;
  }
}

const REFUSED_FOR_GOOD = new Set([4001, 4002]);
const PING_MS = 25000;

export class Link extends EventTarget {
  constructor(url) {
    super();
    this.url = url;
    this.ws = null;
    this.nextId = 1;
    this.pending = new Map();
    this.handlers = new Map();
    this.credentials = null;
    this.closed = true;
    this.attempt = 0;
    this.eventSeq = 0;
    this.reply = null;
    this.status = "offline";
    this.bye = null;
  }

  /** Call fn(data) for every push of this op; returns a function that stops it. */
  on(op, fn) {
    if (!this.handlers.has(op)) this.handlers.set(op, new Set());
    this.handlers.get(op).add(fn);
    return () => this.handlers.get(op).delete(fn);
  }

  /** Log in; resolves with the login reply, rejects with a LinkError (20010: bad token). */
  async login(accessId, accessToken) {
    this.credentials = { access_id: accessId, access_token: accessToken };
    this.closed = false;
    this.attempt = 0;
    this.reply = await this._connect();
    this.eventSeq = this.reply.event_seq || 0;
    return this.reply;
  }

  close() {
    this.closed = true;
    clearTimeout(this._retry);
    if (this.ws) this.ws.close(1000);
  }

  /** A request; resolves with its data, rejects with a LinkError. */
  request(op, data = {}, timeoutMs = 15000) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN || this.status !== "online") {
      if (op !== "login") return Promise.reject(new LinkError(8000, "not connected to the cloud"));
    }
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new LinkError(21083, `${op}: no answer in ${timeoutMs / 1000} s`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.ws.send(JSON.stringify({ id, op, data }));
    });
  }

  _setStatus(status) {
    if (this.status === status) return;
    this.status = status;
    this.dispatchEvent(new CustomEvent("status", { detail: status }));
  }

  _connect() {
    this._setStatus("connecting");
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url);
      this.ws = ws;
      let settled = false;
      const fail = (error) => {
        if (!settled) {
          settled = true;
          reject(error);
        }
      };
      ws.onmessage = (message) => {
        let frame;
        try {
          frame = JSON.parse(message.data);
        } catch {
          return;
        }
        if (frame.id !== undefined && frame.op === undefined) {
          const waiter = this.pending.get(frame.id);
          if (!waiter) return;
          this.pending.delete(frame.id);
          clearTimeout(waiter.timer);
          if (frame.code) waiter.reject(new LinkError(frame.code, frame.msg || "refused"));
          else waiter.resolve(frame.data || {});
          return;
        }
        if (frame.op === "hello") {
          this.request("login", this.credentials).then(
            (reply) => {
              settled = true;
              this.attempt = 0;
              this._setStatus("online");
              resolve(reply);
            },
            (error) => fail(error),
          );
          return;
        }
        if (frame.op === "bye") {
          this.bye = frame.data || {};
          return;
        }
        if (frame.op === "event" && frame.data && frame.data.seq) {
          this.eventSeq = Math.max(this.eventSeq, frame.data.seq);
        }
        for (const fn of this.handlers.get(frame.op) || []) {
          try {
            fn(frame.data || {});
          } catch (error) {
            console.error(`push ${frame.op}`, error);
          }
        }
      };
      ws.onclose = (event) => {
        clearInterval(this._ping);
        for (const [, waiter] of this.pending) {
          clearTimeout(waiter.timer);
          waiter.reject(new LinkError(20008, "the connection to the cloud closed"));
        }
        this.pending.clear();
        const bye = this.bye;
        this.bye = null;
        if (!settled) {
          fail(
            bye
              ? new LinkError(bye.code, bye.msg || "refused")
              : new LinkError(20008, "cannot reach the cloud"),
          );
          if (this.status !== "online") this._setStatus("offline");
          return;
        }
        this._setStatus("offline");
        if (this.closed || REFUSED_FOR_GOOD.has(event.code)) {
          if (!this.closed) this.dispatchEvent(new CustomEvent("refused", { detail: bye }));
          return;
        }
        this._reconnect();
      };
      ws.onopen = () => {
        this._ping = setInterval(() => {
          this.request("ping").catch(() => {});
        }, PING_MS);
      };
    });
  }

  _reconnect() {
    // Backoff with full jitter: uniform in [0, min(30 s, 0.5 s * 2^attempt)].
    const ceiling = Math.min(30000, 500 * 2 ** this.attempt++);
    this._retry = setTimeout(async () => {
      if (this.closed) return;
      try {
        this.reply = await this._connect();
        await this._catchUp();
        this.dispatchEvent(new CustomEvent("reconnected", { detail: this.reply }));
      } catch (error) {
        if (error instanceof LinkError && error.code === 20010) {
          this.dispatchEvent(new CustomEvent("refused", { detail: error }));
        } else if (!this.closed) {
          this._reconnect();
        }
      }
    }, Math.random() * ceiling);
  }

  /** The events pushed while the connection was down, in order, as if pushed. */
  async _catchUp() {
    for (let more = true; more; ) {
      const page = await this.request("event.since", { after: this.eventSeq, limit: 200 });
      for (const event of page.events) {
        this.eventSeq = Math.max(this.eventSeq, event.seq);
        for (const fn of this.handlers.get("event") || []) fn(event);
      }
      more = page.more && page.events.length > 0;
    }
  }
}

/** The link URL of the cloud that served this page. */
export function linkUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/link/app`;
}
