// The demo dashboard: the clients/js bundle (bridge-client.js) driving a page. No framework, no build step.
import { BridgeClient } from './bridge-client.js';

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

// ---- start -----------------------------------------------------------------------------------------------
for (const name of (params.get('rooms') ?? 'demo,devices.demo').split(',').filter(Boolean)) addRoom(name);
selectRoom(rooms.keys().next().value);
setSimulate(params.get('simulate') === '1');
updateShown();
client.connect().catch(() => undefined);
