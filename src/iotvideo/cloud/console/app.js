// The iotvideo console: sign in, devices, live view with talk, the thing model, events,
// cloud storage and provisioning. Plain ES modules, no build step; routes are URL
// fragments (#/devices, #/device/<tid>, #/provision). The AccessToken lives in this tab's
// sessionStorage only.

import { Link, LinkError, linkUrl } from "./link.js";
import { snapshot, watch } from "./live.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const banner = document.getElementById("banner");
const STORE = "iotvideo.console";

let link = null;
let devices = new Map(); // tid -> {tid, name, online, role}
let leaveView = () => {};
// The channel shown of each NVR (a gateway device with ProReadonly.chn1..N): its
// sourceId on the link, and its cloud-storage channel (0 on a one-channel camera).
const channels = new Map(); // tid -> {source, cloud}
const channelOf = (tid) => channels.get(tid) || { source: "", cloud: 0 };

// Helpers

/** An element: h("button", {class: "x", onclick: f}, "text", child...). Text is never HTML. */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key in el && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

// What to do next, per code (docs/errors.md has them all).
const HINTS = {
  8000: "The camera is offline: check its power and network, then try again.",
  8002: "There is no such device: check the device id.",
  8003: "This user has no access to the device: ask its owner to share it.",
  20007: "All of the camera's viewing channels are busy: close another viewer and try again.",
  20008: "The connection dropped: check the network; the console reconnects by itself.",
  20010: "The AccessToken is unknown, expired or revoked: get a new one from your app's backend (CreateUsrToken) and sign in again.",
  20012: "This account signed in somewhere else.",
  20014: "The device was unshared or its token revoked.",
  20100: "Too many requests: wait a moment and try again.",
  20101: "The thing model has no such object.",
  20103: "The camera could not do it: try again, or check the camera.",
  20104: "The camera does not handle this action.",
  20137: "Nothing is recorded there, or the camera has no memory card.",
  20143: "The camera refused the value: check its type and range.",
  21031: "The camera does not offer this resolution.",
  21036: "Allow the microphone in the browser to talk.",
  21083: "The camera did not answer in time: try again.",
  21084: "The camera is busy: try again in a moment.",
  21100: "Anonymous visitors cannot add cameras: sign in as a user.",
  21101: "The camera presented an unusable bind token: make a new QR code.",
  21102: "The camera has another owner: they must remove it first.",
};

function describe(error) {
  if (error instanceof LinkError || (error && error.code)) {
    const hint = HINTS[error.code] || "See the error codes in docs/errors.md.";
    return `${hint} (error ${error.code}: ${error.msg || error.message})`;
  }
  return `${error && error.message ? error.message : error}`;
}

function show(message, kind = "error") {
  banner.textContent = message;
  banner.className = kind;
  banner.hidden = !message;
}

function shown(error) {
  show(describe(error));
}

/** A date input set to today (local time). */
function dayInput(id) {
  const today = new Date();
  const pad = (n) => String(n).padStart(2, "0");
  const value = `${today.getFullYear()}-${pad(today.getMonth() + 1)}-${pad(today.getDate())}`;
  return h("input", { type: "date", id, value });
}

function fmtTime(unix) {
  return new Date(unix * 1000).toLocaleString();
}

function deviceName(state, tid) {
  const nick = state?.ProUser?._buildIn?.val?.nickName;
  return nick || tid;
}

function onlineText(online) {
  return { 0: "offline", 1: "online", 2: "asleep" }[online] ?? "unknown";
}

/** The VAS HTTP API with the bearer token: resolves with `data`, rejects with {code, msg}. */
async function vas(path, params = {}, init = {}) {
  if (params.deviceId && params.sourceId === undefined) {
    params = { ...params, sourceId: channelOf(params.deviceId).cloud };
  }
  const query = new URLSearchParams(params).toString();
  const response = await fetch(`/vas/${path}${query ? `?${query}` : ""}`, {
    ...init,
    headers: {
      Authorization: `Bearer ${link.credentials.access_token}`,
      ...(init.body ? { "Content-Type": "application/json" } : {}),
    },
  });
  let body;
  try {
    body = await response.json();
  } catch {
    throw new LinkError(response.status, `HTTP ${response.status}`);
  }
  if (body.code) throw new LinkError(body.code, body.msg || "refused");
  return body.data;
}

// Sign-in

function signInView(message = "") {
  nav.hidden = true;
  const id = h("input", { id: "access-id", name: "access_id", autocomplete: "username", required: true });
  const token = h("input", {
    id: "access-token",
    name: "access_token",
    type: "password",
    autocomplete: "current-password",
    required: true,
  });
  const button = h("button", { type: "submit" }, "Sign in");
  const form = h(
    "form",
    { class: "card signin", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title" }, "Sign in"),
    h("p", {}, "Use the AccessId and AccessToken your app's backend got for you (CreateAppUsr, CreateUsrToken)."),
    h("label", { for: "access-id" }, "AccessId"),
    id,
    h("label", { for: "access-token" }, "AccessToken"),
    token,
    button,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    button.disabled = true;
    show("");
    try {
      await signIn(id.value.trim(), token.value.trim());
      location.hash = "#/devices";
      route();
    } catch (error) {
      shown(error);
    } finally {
      button.disabled = false;
    }
  });
  main.replaceChildren(form);
  if (message) show(message);
  id.focus();
}

async function signIn(accessId, accessToken) {
  if (link) link.close();
  link = new Link(linkUrl());
  const reply = await link.login(accessId, accessToken);
  sessionStorage.setItem(STORE, JSON.stringify({ accessId, accessToken }));
  link.addEventListener("status", (e) => {
    document.body.dataset.link = e.detail;
    if (e.detail === "online") show("");
    else if (e.detail === "connecting") show("Reconnecting to the cloud…", "info");
  });
  link.addEventListener("refused", (e) => {
    sessionStorage.removeItem(STORE);
    signInView(describe(e.detail || new LinkError(20010, "signed out by the cloud")));
  });
  link.addEventListener("reconnected", (e) => loadDevices(e.detail.devices));
  link.on("prop", onProp);
  link.on("unsubscribed", (data) => {
    devices.delete(data.tid);
    renderDeviceList();
  });
  document.body.dataset.link = "online";
  nav.hidden = false;
  await loadDevices(reply.devices);
}

function signOut() {
  sessionStorage.removeItem(STORE);
  if (link) link.close();
  link = null;
  devices = new Map();
  location.hash = "";
  signInView();
}

// Devices

const listeners = new Set(); // views that follow prop pushes

function onProp(data) {
  const device = devices.get(data.tid);
  if (device && data.path === "ProReadonly._online") {
    device.online = data.value?.stVal ?? 0;
    renderDeviceList();
  }
  for (const fn of listeners) fn(data);
}

async function loadDevices(tids) {
  const next = new Map();
  await Promise.all(
    tids.map(async (tid) => {
      try {
        const { value } = await link.request("prop.read", { tid, path: "" });
        next.set(tid, {
          tid,
          name: deviceName(value, tid),
          online: value?.ProReadonly?._online?.stVal ?? 0,
        });
      } catch {
        next.set(tid, { tid, name: tid, online: 0 });
      }
    }),
  );
  devices = next;
  renderDeviceList();
}

function devicesView() {
  main.replaceChildren(
    h(
      "section",
      { class: "card", "aria-labelledby": "devices-title" },
      h("h1", { id: "devices-title" }, "Devices"),
      h("ul", { id: "device-list", class: "devices" }),
    ),
  );
  renderDeviceList();
}

function renderDeviceList() {
  const list = document.getElementById("device-list");
  if (!list) return;
  const items = [...devices.values()].sort((a, b) => a.name.localeCompare(b.name));
  if (!items.length) {
    list.replaceChildren(h("li", {}, "No devices yet. ", h("a", { href: "#/provision" }, "Add a camera.")));
    return;
  }
  list.replaceChildren(
    ...items.map((d) =>
      h(
        "li",
        { "data-tid": d.tid, "data-online": String(d.online) },
        h("a", { href: `#/device/${encodeURIComponent(d.tid)}` }, d.name),
        " ",
        h("span", { class: `state s${d.online}` }, onlineText(d.online)),
        d.name !== d.tid ? h("small", {}, d.tid) : null,
      ),
    ),
  );
}

// One device

function deviceView(tid) {
  const device = devices.get(tid) || { tid, name: tid, online: 0 };
  const section = (id, title, ...children) =>
    h("section", { class: "card", id, "aria-labelledby": `${id}-title` }, h("h2", { id: `${id}-title` }, title), ...children);
  const liveBox = section("live", "Live");
  const modelBox = section("model", "Settings and actions");
  const eventsBox = section("events", "Events");
  const cloudBox = section("cloud", "Cloud recordings");
  const cardBox = section("card", "Memory card");
  const picker = h("select", { id: "channel" });
  const pick = h("p", { hidden: true }, h("label", { for: "channel" }, "Channel "), picker);
  main.replaceChildren(
    h("p", {}, h("a", { href: "#/devices" }, "← Devices")),
    h("h1", {}, device.name),
    pick,
    h("div", { class: "grid" }, liveBox, modelBox, eventsBox, cloudBox, cardBox),
  );
  channelPicker(tid, picker, pick);
  const stops = [
    liveSection(tid, liveBox),
    modelSection(tid, modelBox),
    eventsSection(tid, eventsBox),
    cloudSection(tid, cloudBox),
    cardSection(tid, cardBox),
  ];
  return () => stops.forEach((stop) => stop && stop());
}

/** A device with several channels (ProReadonly.chn1..N in its model) gets a channel
 * picker; choosing one shows the device again, every section on that channel. */
async function channelPicker(tid, picker, pick) {
  let model;
  try {
    model = (await link.request("model.get", { tid })).model;
  } catch {
    return; // the model section says why
  }
  const numbers = Object.keys(model.ProReadonly || {})
    .map((name) => /^chn(\d+)$/.exec(name))
    .filter(Boolean)
    .map((m) => Number(m[1]))
    .sort((a, b) => a - b);
  if (numbers.length < 2) return;
  const current = channelOf(tid).source || String(numbers[0]);
  picker.replaceChildren(
    ...numbers.map((n) => h("option", { value: String(n), selected: String(n) === current }, `Channel ${n}`)),
  );
  if (!channels.has(tid)) channels.set(tid, { source: current, cloud: Number(current) });
  pick.hidden = false;
  picker.addEventListener("change", () => {
    channels.set(tid, { source: picker.value, cloud: Number(picker.value) });
    route();
  });
}

function liveSection(tid, box) {
  const video = h("video", { id: "live-video", autoplay: true, playsInline: true, muted: true, "aria-label": "Live video" });
  video.muted = true;
  const status = h("p", { class: "status", role: "status", "aria-live": "polite" }, "Stopped.");
  const play = h("button", { id: "play" }, "Watch");
  const talk = h("button", { id: "talk", disabled: true, "aria-pressed": "false" }, "Talk");
  const mute = h("button", { id: "mute", disabled: true, "aria-pressed": "true" }, "Unmute");
  const shot = h("button", { id: "snapshot", disabled: true }, "Snapshot");
  const definition = h(
    "select",
    { id: "definition" },
    h("option", { value: "low" }, "Low"),
    h("option", { value: "mid" }, "Medium"),
    h("option", { value: "high" }, "High"),
  );
  let session = null;
  const controls = [talk, mute, shot];
  const stop = () => {
    if (session) session.close();
    session = null;
    video.srcObject = null;
    play.textContent = "Watch";
    controls.forEach((c) => (c.disabled = true));
    talk.setAttribute("aria-pressed", "false");
    talk.textContent = "Talk";
  };
  play.addEventListener("click", async () => {
    if (session) {
      stop();
      status.textContent = "Stopped.";
      return;
    }
    play.disabled = true;
    status.textContent = "Connecting…";
    try {
      const t0 = performance.now();
      session = await watch(link, tid, video, definition.value, { source: channelOf(tid).source });
      session.addEventListener("ended", (e) => {
        if (session && e.detail.code) {
          stop();
          status.textContent = `Ended. ${describe(new LinkError(e.detail.code, "the session ended"))}`;
        }
      });
      video.requestVideoFrameCallback(() => {
        status.textContent = `Playing ${video.videoWidth}×${video.videoHeight}, first picture in ${Math.round(performance.now() - t0)} ms.`;
      });
      play.textContent = "Stop";
      controls.forEach((c) => (c.disabled = false));
    } catch (error) {
      stop();
      status.textContent = describe(error);
    } finally {
      play.disabled = false;
    }
  });
  definition.addEventListener("change", async () => {
    if (!session) return;
    try {
      const done = await session.setDefinition(definition.value);
      status.textContent = `Playing ${done.width}×${done.height} (${done.value}).`;
    } catch (error) {
      status.textContent = describe(error);
    }
  });
  talk.addEventListener("click", async () => {
    try {
      if (session.mic) {
        await session.stopTalking();
        talk.textContent = "Talk";
        talk.setAttribute("aria-pressed", "false");
      } else {
        await session.startTalking();
        talk.textContent = "Stop talking";
        talk.setAttribute("aria-pressed", "true");
      }
    } catch (error) {
      status.textContent = describe(error);
    }
  });
  mute.addEventListener("click", () => {
    video.muted = !video.muted;
    mute.textContent = video.muted ? "Unmute" : "Mute";
    mute.setAttribute("aria-pressed", String(video.muted));
  });
  shot.addEventListener("click", async () => {
    const blob = await snapshot(video);
    const a = h("a", { href: URL.createObjectURL(blob), download: `${tid}-${Date.now()}.jpg` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  });
  box.append(
    h("div", { class: "video" }, video),
    h("div", { class: "row" }, play, h("label", { for: "definition" }, "Resolution"), definition, talk, mute, shot),
    status,
  );
  return stop;
}

// The thing model: controls generated from the product's model, values kept live.

function modelSection(tid, box) {
  const body = h("div", {}, "Loading…");
  box.append(body);
  let model = null;
  let state = null;
  const cells = new Map(); // "Section.name" -> update(valueObject)
  const follow = (data) => {
    if (data.tid !== tid || !state) return;
    const [section, name] = data.path.split(".");
    if (!section || !name) return;
    state[section] = state[section] || {};
    state[section][name] = data.value;
    const update = cells.get(`${section}.${name}`);
    if (update) update(data.value);
  };
  listeners.add(follow);
  (async () => {
    try {
      [{ model }, { value: state }] = await Promise.all([
        link.request("model.get", { tid }),
        link.request("prop.read", { tid, path: "" }),
      ]);
      body.replaceChildren(...renderModel(tid, model, state, cells));
    } catch (error) {
      body.replaceChildren(h("p", { class: "error" }, describe(error)));
    }
  })();
  return () => listeners.delete(follow);
}

function fmtValue(value) {
  if (value === undefined || value === null) return "—";
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

function renderModel(tid, model, state, cells) {
  const out = [];
  const group = (title, rows) => {
    if (rows.length) out.push(h("h3", {}, title), h("dl", { class: "props" }, rows));
  };
  const readonly = Object.entries(model.ProReadonly || {}).map(([name, def]) => {
    const dd = h("dd", { "data-path": `ProReadonly.${name}` });
    const update = (v) => (dd.textContent = `${fmtValue(v?.stVal)}${def.unit ? ` ${def.unit}` : ""}`);
    update(state.ProReadonly?.[name]);
    cells.set(`ProReadonly.${name}`, update);
    return [h("dt", {}, name), dd];
  });
  group("Status", readonly);
  const writable = Object.entries(model.ProWritable || {}).map(([name, def]) => {
    const path = `ProWritable.${name}`;
    const id = `w-${name}`;
    const applied = h("span", { class: "applied", "data-applied": path });
    const control = writableControl(def, id, async (value) => {
      try {
        await link.request("prop.write", { tid, path: `${path}.setVal`, json: JSON.stringify(value) });
        show("");
      } catch (error) {
        shown(error);
        update(state.ProWritable?.[name]);
      }
    });
    const update = (v) => {
      control.set(v?.setVal);
      applied.textContent = v && v.setVal !== v.stVal ? `applying… (camera has ${fmtValue(v.stVal)})` : `camera: ${fmtValue(v?.stVal)}`;
    };
    update(state.ProWritable?.[name]);
    cells.set(path, update);
    return [h("dt", {}, h("label", { for: id }, name)), h("dd", {}, control.el, " ", applied)];
  });
  group("Settings", writable);
  const actions = Object.entries(model.Action || {}).map(([name, def]) => {
    const answer = h("output", { "data-answer": `Action.${name}` });
    const run = async (value) => {
      answer.textContent = "…";
      try {
        const reply = await link.request("action", { tid, path: `Action.${name}.ctlVal`, json: JSON.stringify(value) }, 20000);
        answer.textContent = `answer: ${fmtValue(reply.value)}`;
      } catch (error) {
        answer.textContent = describe(error);
      }
    };
    let buttons;
    if (def.enum) {
      buttons = def.enum.map((v) => h("button", { onclick: () => run(v), "data-action": `${name}=${v}` }, `${name} ${v}`));
    } else if (def.type === "bool") {
      buttons = [true, false].map((v) => h("button", { onclick: () => run(v) }, `${name} ${v}`));
    } else {
      const input = h("input", { "aria-label": `${name} value (JSON)`, value: def.type === "json" ? "{}" : "0" });
      buttons = [
        input,
        h("button", {
          onclick: () => {
            try {
              run(JSON.parse(input.value));
            } catch {
              answer.textContent = "Enter a JSON value.";
            }
          },
        }, `Run ${name}`),
      ];
    }
    return [h("dt", {}, name), h("dd", {}, ...buttons, " ", answer)];
  });
  group("Actions", actions);
  const user = Object.entries(state.ProUser || {}).map(([name, v]) => {
    const dd = h("dd", {});
    const update = (obj) => (dd.textContent = fmtValue(obj?.val));
    update(v);
    cells.set(`ProUser.${name}`, update);
    return [h("dt", {}, name), dd];
  });
  group("User values", user);
  const events = Object.keys(model.Event || {}).map((name) => {
    const dd = h("dd", { "data-path": `Event.${name}` });
    const update = (v) => (dd.textContent = v ? `${fmtValue(v.stVal)} at ${fmtTime(v.t)}` : "—");
    update(state.Event?.[name]);
    cells.set(`Event.${name}`, update);
    return [h("dt", {}, name), dd];
  });
  group("Last events", events);
  const consts = Object.entries(state.ProConst || {}).map(([name, v]) => [h("dt", {}, name), h("dd", {}, fmtValue(v?.stVal))]);
  group("Device", consts);
  return out;
}

/** A control for a ProWritable type: {el, set(value)}; change(value) on edits. */
function writableControl(def, id, change) {
  if (def.type === "bool") {
    const el = h("input", { id, type: "checkbox", role: "switch" });
    el.addEventListener("change", () => change(el.checked));
    return { el, set: (v) => (el.checked = Boolean(v)) };
  }
  if (def.enum) {
    const el = h("select", { id }, def.enum.map((v) => h("option", { value: JSON.stringify(v) }, String(v))));
    el.addEventListener("change", () => change(JSON.parse(el.value)));
    return { el, set: (v) => (el.value = JSON.stringify(v)) };
  }
  const numeric = ["int32", "uint32", "float32", "float64"].includes(def.type);
  const el = h("input", { id, type: numeric ? "number" : "text", min: def.min, max: numeric ? def.max : undefined });
  const save = h("button", {}, "Set");
  save.addEventListener("click", () => {
    try {
      change(numeric ? Number(el.value) : def.type === "string" ? el.value : JSON.parse(el.value));
    } catch {
      show("Enter a JSON value.");
    }
  });
  const wrap = h("span", {}, el, " ", save);
  return {
    el: wrap,
    set: (v) => (el.value = numeric || def.type === "string" ? (v ?? "") : JSON.stringify(v ?? null)),
  };
}

// Events (cloud events with pictures): type filters, paging, delete; new ones live.

const EVENT_TYPES = [
  [1, "Motion"],
  [2, "Sound"],
  [4, "Person"],
  [8, "Other"],
];

function eventsSection(tid, box) {
  const list = h("ul", { class: "events", id: "event-list", "aria-live": "polite" });
  const more = h("button", { id: "older", hidden: true }, "Older events");
  const filters = EVENT_TYPES.map(([bit, label]) => {
    const input = h("input", { type: "checkbox", id: `type-${bit}`, value: String(bit) });
    input.addEventListener("change", () => load());
    return { input, el: h("label", { for: `type-${bit}` }, input, ` ${label}`) };
  });
  const message = h("p", { class: "status" });
  let last = 0;
  let loading = Promise.resolve();
  const load = (older = false) => {
    loading = loading.then(() => page(older));
    return loading;
  };
  const page = async (older) => {
    const mask = filters.filter((f) => f.input.checked).reduce((m, f) => m | Number(f.input.value), 0);
    const now = Math.floor(Date.now() / 1000);
    const params = { deviceId: tid, startTime: now - 30 * 86400, endTime: older ? last : now + 60, pageSize: 20 };
    if (mask) params.typeMasks = String(mask);
    try {
      const data = await vas("events", params);
      const items = data.list.map((e) => eventItem(tid, data, e, list));
      if (older) list.append(...items);
      else list.replaceChildren(...items);
      if (data.list.length) last = data.list[data.list.length - 1].startTime;
      more.hidden = data.pageEnd || !data.list.length;
      message.textContent = list.children.length ? "" : "No events.";
    } catch (error) {
      message.textContent = describe(error);
    }
  };
  more.addEventListener("click", () => load(true));
  const stopPush = link.on("vas.event", (data) => {
    if (data.tid === tid) load();
  });
  box.append(h("fieldset", { class: "row" }, h("legend", {}, "Types"), filters.map((f) => f.el)), list, more, message);
  load();
  return stopPush;
}

function eventItem(tid, data, e, list) {
  const typeNames = EVENT_TYPES.filter(([bit]) => e.alarmType & bit).map(([, label]) => label);
  const remove = h("button", { class: "delete", "aria-label": `Delete event ${e.alarmId}` }, "Delete");
  const item = h(
    "li",
    { "data-alarm": e.alarmId },
    e.imgUrlSuffix
      ? h("a", { href: data.imgUrlPrefix + e.imgUrlSuffix, target: "_blank", rel: "noopener" },
          h("img", { src: data.imgUrlPrefix + e.imgUrlSuffix + data.thumbUrlSuffix, alt: `picture of the event at ${fmtTime(e.startTime)}`, width: 160 }))
      : null,
    h("span", {}, `${typeNames.join(", ") || `type ${e.alarmType}`} — ${fmtTime(e.startTime)}`),
    remove,
  );
  remove.addEventListener("click", async () => {
    try {
      await vas("events/delete", {}, { method: "POST", body: JSON.stringify({ deviceId: tid, eventIds: [e.alarmId] }) });
      item.remove();
    } catch (error) {
      shown(error);
    }
  });
  return item;
}

// Cloud storage: a day's ranges on a timeline, HLS playback (hls.js), MP4 download.

function cloudSection(tid, box) {
  const day = dayInput("cloud-day");
  const bar = h("div", { class: "timeline", role: "list", "aria-label": "Recorded ranges" });
  const ranges = h("ul", { class: "ranges", id: "cloud-ranges" });
  const video = h("video", { id: "cloud-video", controls: true, playsInline: true, muted: true, "aria-label": "Cloud recording" });
  const status = h("p", { class: "status", role: "status" });
  let hls = null;
  const dayStart = () => Math.floor(new Date(`${day.value}T00:00:00`).getTime() / 1000);
  const load = async () => {
    const start = dayStart();
    try {
      const data = await vas("playlist", { deviceId: tid, startTime: start, endTime: start + 86400 });
      bar.replaceChildren(
        ...data.list.map((r) =>
          h("button", {
            class: "range",
            title: `${fmtTime(r.start)} – ${fmtTime(r.end)}`,
            "aria-label": `Play from ${fmtTime(r.start)}`,
            style: undefined,
            onclick: () => play(r.start, r.end),
          }),
        ),
      );
      [...bar.children].forEach((el, i) => {
        const r = data.list[i];
        el.style.left = `${((r.start - start) / 86400) * 100}%`;
        el.style.width = `${Math.max(0.3, ((r.end - r.start) / 86400) * 100)}%`;
      });
      ranges.replaceChildren(
        ...data.list.map((r) =>
          h(
            "li",
            {},
            h("button", { class: "play-range", onclick: () => play(r.start, r.end) }, `${fmtTime(r.start)} – ${new Date(r.end * 1000).toLocaleTimeString()}`),
            " ",
            h("button", { class: "mp4", onclick: () => download(r.start, r.end) }, "MP4"),
          ),
        ),
      );
      status.textContent = data.list.length ? "" : "Nothing recorded that day.";
    } catch (error) {
      status.textContent = describe(error);
    }
  };
  const play = async (start, end) => {
    try {
      const address = await vas("address", { deviceId: tid, startTime: start, endTime: end });
      if (hls) hls.destroy();
      hls = null;
      // hls.js wherever Media Source Extensions exist (Chromium's own HLS cannot read our
      // MPEG-TS segments); the browser's own HLS elsewhere (iPhone Safari).
      const { default: Hls } = await import("./vendor/hls.light.min.mjs");
      if (!Hls.isSupported()) {
        video.src = address.url;
      } else {
        hls = new Hls({ enableWorker: false });
        hls.on(Hls.Events.ERROR, (_e, data) => {
          if (data.fatal) status.textContent = `Playback failed: ${data.details}.`;
        });
        hls.loadSource(address.url);
        hls.attachMedia(video);
      }
      status.textContent = `Playing ${fmtTime(start)} – ${fmtTime(address.endTime)}.`;
      await video.play().catch(() => {});
    } catch (error) {
      status.textContent = describe(error);
    }
  };
  const download = async (start, end) => {
    try {
      const address = await vas("address", { deviceId: tid, startTime: start, endTime: end });
      const a = h("a", { href: address.url.replace(/\.m3u8$/, ".mp4"), download: `${tid}-${start}.mp4` });
      document.body.append(a);
      a.click();
      a.remove();
    } catch (error) {
      status.textContent = describe(error);
    }
  };
  day.addEventListener("change", load);
  const refresh = h("button", { id: "cloud-refresh", type: "button", onclick: load }, "Refresh");
  box.append(
    h("div", { class: "row" }, h("label", { for: "cloud-day" }, "Day"), day, refresh),
    bar,
    ranges,
    h("div", { class: "video" }, video),
    status,
  );
  load();
  return () => {
    if (hls) hls.destroy();
  };
}

// The memory card: a day's files (card.list over the link), played peer to peer from the
// camera (media.offer kind playback) with pause, speed and seek on the ctl channel.

const SPEEDS = [0.5, 1, 2, 4, 8, 16, 32];

function cardSection(tid, box) {
  const day = dayInput("card-day");
  const show = h("button", { type: "button", id: "card-show" }, "Show files");
  const files = h("ul", { class: "ranges", id: "card-files" });
  const video = h("video", { id: "card-video", autoplay: true, playsInline: true, muted: true, "aria-label": "Memory card playback" });
  video.muted = true;
  const pause = h("button", { id: "card-pause", disabled: true }, "Pause");
  const speed = h("select", { id: "card-speed", disabled: true }, SPEEDS.map((v) => h("option", { value: String(v), selected: v === 1 }, `${v}×`)));
  const seekAt = h("input", { type: "time", id: "card-seek", step: 1, disabled: true });
  const seek = h("button", { id: "card-seek-go", disabled: true }, "Go");
  const status = h("p", { class: "status", role: "status", "aria-live": "polite" });
  const position = h("output", { id: "card-position" });
  let session = null;
  let paused = false;
  // The position: where the device said it was, moved on by the clock while playing.
  let base = 0;
  let since = 0;
  let rate = 1;
  const now = () => (paused ? base : base + (performance.now() - since) * rate);
  const showPosition = () => {
    if (session) position.textContent = new Date(now()).toLocaleTimeString();
  };
  const setPosition = (ms) => {
    base = ms;
    since = performance.now();
    showPosition();
  };
  const ticker = setInterval(showPosition, 250);
  const controls = [pause, speed, seekAt, seek];
  const dayStart = () => new Date(`${day.value}T00:00:00`).getTime();
  const stop = () => {
    if (session) session.close();
    session = null;
    video.srcObject = null;
    controls.forEach((c) => (c.disabled = true));
  };
  const list = async () => {
    const start = dayStart();
    try {
      const source = channelOf(tid).source;
      const reply = await link.request("card.list", { tid, start, end: start + 86400000, page: 0, size: 500, source });
      files.replaceChildren(
        ...reply.items.map((f) =>
          h("li", {}, h("button", { class: "play-file", onclick: () => play(f.start) },
            `${new Date(f.start).toLocaleTimeString()} (${Math.round(f.duration / 1000)} s)`)),
        ),
      );
      status.textContent = reply.items.length ? "" : "Nothing recorded on the card that day.";
    } catch (error) {
      files.replaceChildren();
      status.textContent = describe(error);
    }
  };
  const play = async (at) => {
    stop();
    status.textContent = "Connecting…";
    try {
      rate = Number(speed.value);
      session = await watch(link, tid, video, "low", { kind: "playback", at, speed: rate, source: channelOf(tid).source });
      paused = false;
      pause.textContent = "Pause";
      setPosition(at);
      session.addEventListener("end", (e) => {
        setPosition(e.detail.time);
        paused = true;
        status.textContent = "The recordings end here.";
      });
      session.addEventListener("ended", (e) => {
        if (e.detail.code) status.textContent = describe(new LinkError(e.detail.code, "playback ended"));
      });
      controls.forEach((c) => (c.disabled = false));
      video.requestVideoFrameCallback(() => (status.textContent = "Playing from the card."));
    } catch (error) {
      stop();
      status.textContent = describe(error);
    }
  };
  show.addEventListener("click", list);
  day.addEventListener("change", list);
  pause.addEventListener("click", async () => {
    try {
      if (paused) {
        await session.control("resume");
        setPosition(base);
        paused = false;
        pause.textContent = "Pause";
      } else {
        const done = await session.control("pause");
        setPosition(done.time);
        paused = true;
        pause.textContent = "Resume";
      }
    } catch (error) {
      status.textContent = describe(error);
    }
  });
  speed.addEventListener("change", async () => {
    if (!session) return;
    try {
      const done = await session.control("speed", { value: Number(speed.value) });
      setPosition(now());
      rate = done.value;
    } catch (error) {
      status.textContent = describe(error);
    }
  });
  seek.addEventListener("click", async () => {
    if (!session || !seekAt.value) return;
    const [hh, mm, ss = "0"] = seekAt.value.split(":");
    const target = dayStart() + ((Number(hh) * 60 + Number(mm)) * 60 + Number(ss)) * 1000;
    try {
      const done = await session.control("seek", { time: target });
      setPosition(done.time);
      status.textContent = `Landed on ${new Date(done.time).toLocaleTimeString()} (the keyframe at or before it).`;
    } catch (error) {
      status.textContent = describe(error);
    }
  });
  box.append(
    h("div", { class: "row" }, h("label", { for: "card-day" }, "Day"), day, show),
    files,
    h("div", { class: "video" }, video),
    h(
      "div",
      { class: "row" },
      pause,
      h("label", { for: "card-speed" }, "Speed"),
      speed,
      h("label", { for: "card-seek" }, "Go to"),
      seekAt,
      seek,
      h("span", {}, "Position: ", position),
    ),
    status,
  );
  return () => {
    clearInterval(ticker);
    stop();
  };
}

// Provisioning: the QR code a new camera scans, then wait for it to come online.

function provisionView() {
  const ssid = h("input", { id: "ssid", autocomplete: "off" });
  const password = h("input", { id: "wifi-password", type: "password", autocomplete: "off" });
  const make = h("button", { type: "submit" }, "Make QR code");
  const out = h("div", { id: "qr", "aria-live": "polite" });
  const status = h("p", { class: "status", role: "status" });
  let stopWaiting = () => {};
  const form = h(
    "form",
    { class: "card" },
    h("h1", {}, "Add a camera"),
    h("p", {}, "Enter the Wi-Fi the camera should join (leave it empty for a wired camera), then hold the QR code in front of the camera's lens."),
    h("label", { for: "ssid" }, "Wi-Fi name (SSID)"),
    ssid,
    h("label", { for: "wifi-password" }, "Wi-Fi password"),
    password,
    make,
    out,
    status,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    stopWaiting();
    make.disabled = true;
    try {
      const { token, expires_at: expires } = await link.request("bindtoken.create");
      const response = await fetch("/console/qr", {
        method: "POST",
        headers: { Authorization: `Bearer ${link.credentials.access_token}`, "Content-Type": "application/json" },
        body: JSON.stringify({ ssid: ssid.value, password: password.value, token }),
      });
      if (!response.ok) {
        const body = await response.json();
        throw new LinkError(body.code, body.msg);
      }
      const url = URL.createObjectURL(await response.blob());
      out.replaceChildren(h("img", { src: url, alt: "Provisioning QR code", width: 300, height: 300 }));
      status.textContent = `Waiting for the camera (the code is valid until ${fmtTime(expires)})…`;
      stopWaiting = link.on("netcfg", (data) => {
        if (data.code) {
          status.textContent = describe(new LinkError(data.code, data.msg || "refused"));
        } else {
          status.textContent = `Camera ${data.tid} is online. Your app's backend binds it now (CreateBinding with BindToken ${token}); it then appears under Devices.`;
          status.dataset.tid = data.tid;
        }
      });
    } catch (error) {
      status.textContent = describe(error);
    } finally {
      make.disabled = false;
    }
  });
  main.replaceChildren(form);
  ssid.focus();
  return () => stopWaiting();
}

// Routing

function route() {
  leaveView();
  leaveView = () => {};
  show("");
  if (!link || link.status === "offline" && !link.reply) return signInView();
  const hash = location.hash || "#/devices";
  const match = hash.match(/^#\/device\/(.+)$/);
  if (match) leaveView = deviceView(decodeURIComponent(match[1])) || (() => {});
  else if (hash === "#/provision") leaveView = provisionView() || (() => {});
  else devicesView();
  main.focus();
}

document.getElementById("signout").addEventListener("click", signOut);
window.addEventListener("hashchange", route);

(async () => {
  const saved = sessionStorage.getItem(STORE);
  if (!saved) return signInView();
  try {
    const { accessId, accessToken } = JSON.parse(saved);
    main.replaceChildren(h("p", { role: "status" }, "Signing in…"));
    await signIn(accessId, accessToken);
    route();
  } catch (error) {
    sessionStorage.removeItem(STORE);
    signInView(describe(error));
  }
})();
