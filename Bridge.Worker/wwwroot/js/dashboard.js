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
const rooms = new Map(); // name -> { li, seq }
let activeRoom;
const presence = new Map(); // room -> { text, members }
const presenceQueries = new Map(); // query id -> room

// ---- connection state ----------------------------------------------------------------------------------
client.onState((s) => {
  const el = $('state');
  el.dataset.state = s.state;
  el.textContent = s.state === 'reconnecting' && s.delayMs !== undefined ? `reconnecting (${s.delayMs} ms)` : s.state;
  el.title = s.reason ? `last close: ${s.closeCode ?? ''} ${s.reason}` : '';
  $('transport').textContent = s.state === 'open' ? `via ${s.transport}` : '';
  updatePending();
});
client.on('welcome', (w) => {
  $('server').textContent = `worker ${w.payload?.serverId ?? '?'}`;
});

// ---- rooms -----------------------------------------------------------------------------------------------
function addRoom(name) {
  if (rooms.has(name)) return selectRoom(name);
  const li = document.createElement('li');
  li.dataset.room = name;
  li.innerHTML = '<span class="name"></span><span class="seq muted" title="position: resumes from here"></span><button title="leave">×</button>';
  li.querySelector('.name').textContent = name;
  li.addEventListener('click', () => selectRoom(name));
  li.querySelector('button').addEventListener('click', (e) => {
    e.stopPropagation();
    removeRoom(name);
  });
  $('room-list').append(li);
  rooms.set(name, { li });
  const option = new Option(name, name);
  $('publish-room').append(option);
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
}

function removeRoom(name) {
  const room = rooms.get(name);
  if (!room) return;
  room.li.remove();
  rooms.delete(name);
  [...$('publish-room').options].find((o) => o.value === name)?.remove();
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
  if (room) room.li.querySelector('.seq').textContent = String(seq);
}

$('join-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const name = $('join-room').value.trim();
  if (name) addRoom(name);
  $('join-room').value = '';
});

// ---- messages --------------------------------------------------------------------------------------------
function formatPayload(p) {
  if (p instanceof Uint8Array) return `${p.length} bytes: ${[...p.slice(0, 16)].map((b) => b.toString(16).padStart(2, '0')).join(' ')}`;
  if (p === undefined) return '';
  return JSON.stringify(p);
}

client.on('*', (m) => {
  setSeq(m.room, m.seq);
  const tr = document.createElement('tr');
  tr.className = 'fresh';
  tr.dataset.seq = String(m.seq);
  tr.dataset.room = m.room;
  if (m.id) tr.dataset.id = m.id;
  const latency = typeof m.ts === 'number' ? Math.max(0, Date.now() - m.ts) : '';
  for (const [text, cls] of [[m.seq, 'num'], [m.room], [m.type], [m.from ?? ''], [latency === '' ? '' : `${latency} ms`, 'num'], [formatPayload(m.payload), 'payload']]) {
    const td = document.createElement('td');
    td.textContent = String(text);
    if (cls) td.className = cls;
    tr.append(td);
  }
  const body = $('messages');
  body.prepend(tr);
  while (body.rows.length > MAX_ROWS) body.deleteRow(-1);
});

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

// ---- simulated devices -------------------------------------------------------------------------------------
const devices = ['thermo-1', 'thermo-2', 'thermo-3'].map((name, i) => ({ name, celsius: 20 + i, humidity: 40 + 5 * i }));
let simTimer;
function setSimulate(on) {
  clearInterval(simTimer);
  simTimer = undefined;
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
const simulate = params.get('simulate') !== '0';
$('simulate').checked = simulate;
setSimulate(simulate);
client.connect().catch(() => undefined);
