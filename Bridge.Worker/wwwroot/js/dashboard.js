// The demo dashboard: the clients/js bundle (bridge-client.js) driving a page. No framework, no build step.
import { BridgeClient, isValidPattern, overlaps } from './bridge-client.js';

const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);

const client = new BridgeClient({
  url: location.origin,
  format: params.get('format') === 'msgpack' ? 'msgpack' : 'json',
  transports: params.get('transport') ? params.get('transport').split(',') : undefined,
  reconnect: { minDelayMs: Number(params.get('minDelayMs') ?? 500), maxDelayMs: Number(params.get('maxDelayMs') ?? 20000) },
});
window.bridge = client; // for the console (and the browser test)

const MAX_ROWS = 300;
const RATE_WINDOW_MS = 10_000; // msgs/s: live messages of the last 10 s
const MAX_SAMPLES = 500; // p50/p99: the last 500 live latencies
const rooms = new Map(); // name -> { li, position, replaying, arrivals: [ms], latencies: [ms], samples, replayed, since }
let activeRoom;
let filter = '';
const presence = new Map(); // room -> { text, members }
const presenceQueries = new Map(); // query id -> room

// ---- connection state ----------------------------------------------------------------------------------
let opens = 0;
client.onState((s) => {
  const el = $('state');
  el.dataset.state = s.state;
  el.textContent = s.state === 'reconnecting' && s.delayMs !== undefined ? `reconnecting (${s.delayMs} ms)` : s.state;
  el.title = s.reason ? `last close: ${s.closeCode ?? ''} ${s.reason}` : '';
  $('transport').textContent = s.state === 'open' ? `via ${s.transport}` : '';
  if (s.state === 'open' && ++opens > 1) $('reconnects').textContent = String(opens - 1);
  if (s.state !== 'open') {
    // A room with a position resumes from it on the next connection: what arrives for it before its room.joined
    // is replay (protocol §4), shown with its age rather than counted as latency.
    for (const r of rooms.values()) if (r.position !== undefined) r.replaying = true;
  }
  updatePending();
});
client.on('welcome', (w) => {
  $('server').textContent = `worker ${w.payload?.serverId ?? '?'}`;
});
client.on('room.joined', (j) => {
  const room = rooms.get(j.room);
  if (room) room.replaying = false;
});

// ---- rooms -----------------------------------------------------------------------------------------------
function addRoom(name) {
  if (rooms.has(name)) return selectRoom(name);
  const li = document.createElement('li');
  li.dataset.room = name;
  li.innerHTML =
    '<div class="line"><span class="name"></span><span class="seq muted" title="position: resumes from here"></span><button title="leave">×</button></div>' +
    '<div class="stats muted" data-testid="room-stats">no messages yet</div>';
  li.querySelector('.name').textContent = name;
  li.addEventListener('click', () => selectRoom(name));
  li.querySelector('button').addEventListener('click', (e) => {
    e.stopPropagation();
    removeRoom(name);
  });
  $('room-list').append(li);
  rooms.set(name, { li, position: undefined, replaying: false, arrivals: [], latencies: [], samples: 0, replayed: 0, since: Date.now() });
  $('publish-room').append(new Option(name, name));
  $('filter').append(new Option(name, name));
  client.join(name).then(
    (r) => {
      setSeq(name, r.seq);
      queryPresence(name);
    },
    (e) => {
      li.title = e.message;
      li.classList.add('failed');
    },
  );
  selectRoom(name);
  renderStats(name);
}

function removeRoom(name) {
  const room = rooms.get(name);
  if (!room) return;
  room.li.remove();
  rooms.delete(name);
  for (const select of [$('publish-room'), $('filter')]) [...select.options].find((o) => o.value === name)?.remove();
  if (filter === name) setFilter('');
  presence.delete(name);
  client.leave(name).catch(() => undefined);
  if (activeRoom === name) selectRoom(rooms.keys().next().value);
}

function selectRoom(name) {
  activeRoom = name;
  for (const [n, r] of rooms) r.li.classList.toggle('active', n === name);
  if (name) $('publish-room').value = name;
  renderPresence();
}

function setSeq(name, seq) {
  const room = rooms.get(name);
  if (!room) return;
  room.position = seq;
  room.li.querySelector('.seq').textContent = String(seq);
}

$('join-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const name = $('join-room').value.trim();
  if (name) addRoom(name);
  $('join-room').value = '';
});

// ---- per-room statistics -----------------------------------------------------------------------------------
function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

function record(room, latencyMs, replayed) {
  if (replayed) {
    room.replayed++;
    return;
  }
  const now = Date.now();
  room.arrivals.push(now);
  room.latencies.push(latencyMs);
  room.samples++;
  if (room.latencies.length > MAX_SAMPLES) room.latencies.shift();
  while (room.arrivals.length && room.arrivals[0] < now - RATE_WINDOW_MS) room.arrivals.shift();
}

function renderStats(name) {
  const room = rooms.get(name);
  if (!room) return;
  const now = Date.now();
  while (room.arrivals.length && room.arrivals[0] < now - RATE_WINDOW_MS) room.arrivals.shift();
  // Over the window, or over the time the room has been shown when that is shorter (at least one second).
  const seconds = Math.max(1, Math.min(RATE_WINDOW_MS, now - room.since) / 1000);
  const rate = room.arrivals.length / seconds;
  const el = room.li.querySelector('.stats');
  el.dataset.rate = rate.toFixed(2);
  el.dataset.samples = String(room.samples);
  el.dataset.replayed = String(room.replayed);
  if (room.latencies.length === 0) {
    delete el.dataset.p50;
    delete el.dataset.p99;
    el.textContent = room.replayed ? `${room.replayed} replayed, no live messages yet` : 'no messages yet';
    return;
  }
  const sorted = [...room.latencies].sort((a, b) => a - b);
  const p50 = percentile(sorted, 50);
  const p99 = percentile(sorted, 99);
  el.dataset.p50 = String(p50);
  el.dataset.p99 = String(p99);
  el.textContent = `${rate.toFixed(1)} msg/s · p50 ${p50} ms · p99 ${p99} ms` + (room.replayed ? ` · ${room.replayed} replayed` : '');
}

setInterval(() => {
  for (const name of rooms.keys()) renderStats(name);
}, 500);

// ---- messages --------------------------------------------------------------------------------------------
function formatPayload(p) {
  if (p instanceof Uint8Array) return `${p.length} bytes: ${[...p.slice(0, 16)].map((b) => b.toString(16).padStart(2, '0')).join(' ')}`;
  if (p === undefined) return '';
  return JSON.stringify(p);
}

function formatAge(ms) {
  if (ms < 1000) return `age ${ms} ms`;
  if (ms < 60_000) return `age ${(ms / 1000).toFixed(1)} s`;
  if (ms < 3_600_000) return `age ${Math.round(ms / 60_000)} min`;
  return `age ${(ms / 3_600_000).toFixed(1)} h`;
}

client.on('*', (m) => {
  if (deviceView && !rooms.has(m.room) && overlaps(deviceView.pattern, m.room)) {
    showReading(m);
    return;
  }
  const room = rooms.get(m.room);
  const replayed = room?.replaying === true;
  setSeq(m.room, m.seq);
  const elapsed = typeof m.ts === 'number' ? Math.max(0, Date.now() - m.ts) : undefined;
  if (room && elapsed !== undefined) record(room, elapsed, replayed);
  const tr = document.createElement('tr');
  tr.className = 'fresh';
  tr.dataset.seq = String(m.seq);
  tr.dataset.room = m.room;
  if (m.id) tr.dataset.id = m.id;
  if (replayed) tr.dataset.replayed = '1';
  const latency = elapsed === undefined ? '' : replayed ? formatAge(elapsed) : `${elapsed} ms`;
  for (const [text, cls] of [[m.seq, 'num'], [m.room, 'room'], [m.type], [m.from ?? '', 'from'], [latency, 'num'], [formatPayload(m.payload), 'payload']]) {
    const td = document.createElement('td');
    td.textContent = String(text);
    if (cls) td.className = cls;
    tr.append(td);
  }
  tr.hidden = filter !== '' && m.room !== filter;
  const body = $('messages');
  body.prepend(tr);
  while (body.rows.length > MAX_ROWS) body.deleteRow(-1);
  updateShown();
});

// ---- the room filter: rows of other rooms are hidden, not removed --------------------------------------------
function setFilter(value) {
  filter = value;
  $('filter').value = value;
  for (const tr of $('messages').rows) tr.hidden = filter !== '' && tr.dataset.room !== filter;
  updateShown();
}

function updateShown() {
  const all = $('messages').rows.length;
  const shown = filter === '' ? all : [...$('messages').rows].filter((tr) => !tr.hidden).length;
  $('shown').textContent = filter === '' ? `${all} messages` : `${shown} of ${all} messages`;
}

$('filter').addEventListener('change', (e) => setFilter(e.target.value));

// ---- publishing ------------------------------------------------------------------------------------------
function updatePending() {
  const n = client.pending;
  $('pending').textContent = n ? `${n} waiting for ack${client.state === 'open' ? '' : ' (queued offline)'}` : '';
}

$('publish-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const room = $('publish-room').value;
  const text = $('publish-text').value;
  if (!room || !text) return;
  const sent = client.send($('publish-type').value.trim() || 'chat.message', room, { text });
  $('publish-text').value = '';
  updatePending();
  sent.then(
    (ack) => {
      $('pending').textContent = `stored as seq ${ack.seq}${ack.duplicate ? ' (duplicate)' : ''}`;
      setTimeout(updatePending, 1500);
    },
    (err) => {
      $('pending').textContent = `not sent: ${err.message}`;
    },
  );
});

// ---- presence (answers come once the worker has presence; until then an error says it is not enabled) ----
function queryPresence(room) {
  const id = `pq-${Math.random().toString(36).slice(2, 10)}`;
  if (client.sendFrame({ type: 'presence.query', room, id })) {
    presenceQueries.set(id, room);
    presence.set(room, { text: 'asking…' });
  } else {
    presence.set(room, { text: 'presence needs a WebSocket connection' });
  }
  renderPresence();
}

client.on('presence.*', (f) => {
  if (!f.room) return;
  const p = f.payload ?? {};
  const current = presence.get(f.room) ?? {};
  let members = current.members ?? new Map();
  const list = Array.isArray(p) ? p : Array.isArray(p.members) ? p.members : undefined;
  if (list) {
    members = new Map(list.map((m) => [memberKey(m), m]));
  } else if (p.left || p.status === 'offline' || p.action === 'leave') {
    members.delete(memberKey(p));
  } else {
    members.set(memberKey(p), p);
  }
  presence.set(f.room, { members });
  renderPresence();
});

function memberKey(m) {
  return typeof m === 'string' ? m : m.connectionId ?? m.connection ?? m.user ?? m.sub ?? JSON.stringify(m);
}

client.on('error', (f) => {
  const ref = f.payload?.ref;
  if (ref && presenceQueries.has(ref)) {
    const room = presenceQueries.get(ref);
    presenceQueries.delete(ref);
    presence.set(room, { text: `presence not enabled (${f.payload.code})` });
    renderPresence();
  }
});

function renderPresence() {
  $('presence-room').textContent = activeRoom ? `in ${activeRoom}` : '';
  const el = $('presence');
  const p = activeRoom ? presence.get(activeRoom) : undefined;
  if (!p) {
    el.textContent = activeRoom ? '…' : 'join a room';
    return;
  }
  if (!p.members) {
    el.textContent = p.text;
    return;
  }
  el.replaceChildren(
    ...[...p.members.values()].map((m) => {
      const div = document.createElement('div');
      div.textContent = typeof m === 'string' ? m : `${m.user ?? m.sub ?? '?'} ${m.connectionId ?? ''} ${m.status ?? ''}`.trim();
      return div;
    }),
  );
  if (p.members.size === 0) el.textContent = 'nobody';
}

// ---- simulated devices: off unless switched on (each tab that has it on publishes three readings a second) ---
const devices = ['thermo-1', 'thermo-2', 'thermo-3'].map((name, i) => ({ name, celsius: 20 + i, humidity: 40 + 5 * i }));
let simTimer;
function setSimulate(on) {
  clearInterval(simTimer);
  simTimer = undefined;
  $('simulate').checked = on;
  document.body.dataset.simulate = on ? 'on' : 'off';
  if (!on) return;
  if (!rooms.has('devices.demo')) addRoom('devices.demo');
  simTimer = setInterval(() => {
    if (client.state !== 'open') return; // readings are live data: do not queue them while offline
    for (const d of devices) {
      d.celsius = Math.round((d.celsius + (Math.random() - 0.5) * 0.4) * 100) / 100;
      d.humidity = Math.round(Math.min(90, Math.max(10, d.humidity + (Math.random() - 0.5))) * 10) / 10;
      client.send('sensor.reading', 'devices.demo', { device: d.name, celsius: d.celsius, humidity: d.humidity }).catch(() => undefined);
    }
  }, 1000);
}
$('simulate').addEventListener('change', (e) => setSimulate(e.target.checked));

// ---- the device view: one pattern joined with `latest` (every matching room's current value first), a tile per room ---
const SPARK_POINTS = 40;
let deviceView; // { pattern, tiles: Map(room -> { el, values: [number], text }), dirty: Set(room) }

/** The number a reading shows: a number payload, or its value / celsius / first numeric field; undefined if none. */
function readingValue(payload) {
  if (typeof payload === 'number') return payload;
  if (typeof payload === 'string' && payload.trim() !== '' && Number.isFinite(Number(payload))) return Number(payload);
  if (payload && typeof payload === 'object' && !(payload instanceof Uint8Array)) {
    for (const key of ['value', 'celsius']) if (typeof payload[key] === 'number') return payload[key];
    return Object.values(payload).find((v) => typeof v === 'number');
  }
  return undefined;
}

function showDevices(pattern) {
  if (!isValidPattern(pattern)) {
    $('devices-status').textContent = `'${pattern}' is not a room pattern (it needs a '*' or a final '>')`;
    return;
  }
  if (deviceView) client.leave(deviceView.pattern).catch(() => undefined);
  deviceView = { pattern, tiles: new Map(), dirty: new Set() };
  $('device-grid').replaceChildren();
  $('devices-pattern').value = pattern;
  $('devices-status').textContent = 'joining…';
  const view = deviceView;
  client.join(pattern, { latest: true }).then(
    (r) => {
      if (view === deviceView) $('devices-status').textContent = `${view.tiles.size} rooms · ${r.latest ?? 0} latest values at join`;
    },
    (e) => {
      if (view === deviceView) $('devices-status').textContent = `not joined: ${e.message}`;
    },
  );
}

function showReading(m) {
  let tile = deviceView.tiles.get(m.room);
  if (!tile) {
    const el = document.createElement('div');
    el.className = 'device';
    el.dataset.room = m.room;
    el.innerHTML = '<div class="room"></div><div class="value" data-testid="device-value"></div>' +
      `<svg viewBox="0 0 ${SPARK_POINTS - 1} 1" preserveAspectRatio="none"><polyline></polyline></svg>`;
    // The name without the pattern's literal prefix (devices.site-3.* → d17); the whole room in the tooltip.
    const prefix = deviceView.pattern.split('.').findIndex((t) => t === '*' || t === '>');
    el.querySelector('.room').textContent = m.room.split('.').slice(prefix).join('.');
    el.querySelector('.room').title = m.room;
    // Tiles stay in room order, so a device keeps its place however its readings arrive.
    const next = [...deviceView.tiles.keys()].filter((r) => r > m.room).sort()[0];
    $('device-grid').insertBefore(el, next ? deviceView.tiles.get(next).el : null);
    tile = { el, values: [], text: '' };
    deviceView.tiles.set(m.room, tile);
  }
  const value = readingValue(m.payload);
  if (value !== undefined) {
    tile.values.push(value);
    if (tile.values.length > SPARK_POINTS) tile.values.shift();
  }
  tile.text = value !== undefined ? String(value) : formatPayload(m.payload);
  tile.seq = m.seq;
  deviceView.dirty.add(m.room);
  if (deviceView.dirty.size === 1) requestAnimationFrame(renderDevices);
}

// At most one repaint a frame: a pattern of thousands of rooms sends its latest values in one burst.
function renderDevices() {
  if (!deviceView) return;
  for (const room of deviceView.dirty) {
    const tile = deviceView.tiles.get(room);
    if (!tile) continue;
    tile.el.querySelector('.value').textContent = tile.text;
    tile.el.dataset.seq = String(tile.seq);
    tile.el.dataset.points = String(tile.values.length);
    const min = Math.min(...tile.values);
    const span = Math.max(...tile.values) - min || 1;
    const offset = SPARK_POINTS - tile.values.length;
    tile.el.querySelector('polyline').setAttribute('points',
      tile.values.map((v, i) => `${offset + i},${(1 - (v - min) / span).toFixed(3)}`).join(' '));
  }
  deviceView.dirty.clear();
  $('devices-status').textContent = $('devices-status').textContent.replace(/^\d+ rooms/, `${deviceView.tiles.size} rooms`);
}

$('devices-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const pattern = $('devices-pattern').value.trim();
  if (pattern) showDevices(pattern);
});

// ---- start -----------------------------------------------------------------------------------------------
for (const name of (params.get('rooms') ?? 'demo,devices.demo').split(',').filter(Boolean)) addRoom(name);
selectRoom(rooms.keys().next().value);
setSimulate(params.get('simulate') === '1');
if (params.get('devices')) showDevices(params.get('devices'));
updateShown();
client.connect().catch(() => undefined);
