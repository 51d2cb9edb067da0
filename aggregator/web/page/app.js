// The web host view's page: the session (read-only or unlocked with the write token), the live
// listing from GET /events (Server-Sent Events), the buttons, and the console panel.
import { getJson, postJson } from './api.js';
import { ConsoleView } from './console-view.js';
import { HostTable } from './host-table.js';

const KEEP_POINTS = 60;
const KEEP_EVENTS = 12;

const $ = (id) => document.getElementById(id);
const state = { domains: new Map(), samples: {}, write: false, writesEnabled: false };
const table = new HostTable(document.querySelector('#domains tbody'), $('empty'), { act, console: openConsole });
const consoleView = new ConsoleView($('console'));

function render() {
  table.render(state.domains, state.samples, state.write);
  $('write-state').textContent = state.write ? 'writes unlocked' : state.writesEnabled ? 'read-only' : 'read-only (writes off)';
  $('write-state').className = `badge${state.write ? ' on' : ''}`;
  $('unlock').hidden = state.write || !state.writesEnabled;
  $('lock').hidden = !state.write;
}

function say(text, error = false) {
  $('message').textContent = text;
  $('message').className = error ? 'error' : '';
}

async function act(name, verb) {
  say(`${verb} ${name}…`);
  try {
    await postJson(`/api/domains/${encodeURIComponent(name)}/${verb}`);
    say(`${verb} ${name}: done`);
  } catch (err) {
    say(`${verb} ${name}: ${err.message}`, true);
  }
}

function openConsole(name) {
  consoleView.open(name);
}

async function refreshSession() {
  const s = await getJson('/api/session');
  state.write = s.write;
  state.writesEnabled = s.writesEnabled;
  render();
}

function noteEvent(ev) {
  const li = document.createElement('li');
  li.textContent = `${new Date(ev.timestamp).toLocaleTimeString()}  ${ev.name}  ${ev.event}  → ${ev.state} (${ev.reason})`;
  const list = $('events');
  list.prepend(li);
  while (list.children.length > KEEP_EVENTS) list.lastElementChild.remove();
}

function listen() {
  const source = new EventSource('/events');
  const on = (name, fn) => source.addEventListener(name, (e) => { fn(JSON.parse(e.data)); render(); });
  source.onopen = () => { $('live').textContent = 'live'; $('live').className = 'badge on'; };
  source.onerror = () => { $('live').textContent = 'reconnecting…'; $('live').className = 'badge off'; };
  on('listing', ({ domains }) => { state.domains = new Map(domains.map((d) => [d.name, d])); });
  on('row', (row) => { state.domains.set(row.name, row); });
  on('gone', ({ name }) => { state.domains.delete(name); });
  on('lifecycle', (ev) => {
    noteEvent(ev);
    // The row that follows says the rest; the state is shown at once.
    const d = state.domains.get(ev.name);
    state.domains.set(ev.name, { persistent: false, autostart: false, shimUp: true, ...d, name: ev.name, uuid: ev.uuid, state: ev.state, reason: ev.reason });
  });
  on('history', (history) => { state.samples = history; });
  on('samples', (points) => {
    const next = {};
    for (const [name, p] of Object.entries(points)) next[name] = [...(state.samples[name] ?? []), p].slice(-KEEP_POINTS);
    state.samples = next;
  });
}

$('unlock').addEventListener('submit', async (e) => {
  e.preventDefault();
  try {
    await postJson('/api/login', { token: $('token').value });
    $('token').value = '';
    say('writes unlocked');
  } catch (err) {
    say(err.message, true);
  }
  await refreshSession();
});

$('lock').addEventListener('click', async () => {
  await postJson('/api/logout');
  consoleView.close();
  say('locked: the page is read-only');
  await refreshSession();
});

render();
listen();
refreshSession().catch((err) => say(err.message, true));
