// The host listing: one row per VM, kept by name (a row and its buttons survive updates, so a
// click never lands on a row being replaced), with state and reason, flags, shim health, CPU and
// memory sparklines, and the lifecycle and console buttons. Buttons are enabled only where the
// page may write and the VM's state allows the action; the server checks both again.
import { makeSparkline, mebibytes, percent } from './sparkline.js';

const ACTIVE = new Set(['starting', 'running', 'paused', 'shutting-down']);

const ACTIONS = [
  { verb: 'start', label: 'Start', when: (d) => d.persistent && !ACTIVE.has(d.state) },
  { verb: 'shutdown', label: 'Shutdown', when: (d) => d.state === 'running' || d.state === 'paused' },
  { verb: 'destroy', label: 'Destroy', danger: true, when: (d) => ACTIVE.has(d.state) && d.state !== 'starting' },
  { verb: 'suspend', label: 'Suspend', when: (d) => d.state === 'running' },
  { verb: 'resume', label: 'Resume', when: (d) => d.state === 'paused' },
];

// States as virsh words them.
const LABELS = { shutoff: 'shut off', 'shutting-down': 'shutting down' };

const READ_ONLY = 'read-only: unlock writes with the token';

function cell(tr, className) {
  const td = document.createElement('td');
  if (className) td.className = className;
  tr.append(td);
  return td;
}

function button(label, onClick, danger) {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = label;
  if (danger) b.className = 'danger';
  b.addEventListener('click', onClick);
  return b;
}

/** The listing's table body. */
export class HostTable {
  /** `on.act(name, verb)` and `on.console(name)` run the buttons. */
  constructor(tbody, emptyNote, on) {
    this.tbody = tbody;
    this.emptyNote = emptyNote;
    this.on = on;
    this.rows = new Map();
  }

  /** Shows `domains` (name -> row), their `samples` (name -> points) and whether the page may `write`. */
  render(domains, samples, write) {
    for (const [name, row] of this.rows) {
      if (!domains.has(name)) { row.tr.remove(); this.rows.delete(name); }
    }
    const names = [...domains.keys()].sort();
    names.forEach((name, i) => {
      const row = this.rows.get(name) ?? this.create(name);
      this.update(row, domains.get(name), samples[name] ?? [], write);
      if (this.tbody.children[i] !== row.tr) this.tbody.insertBefore(row.tr, this.tbody.children[i] ?? null);
    });
    this.emptyNote.hidden = names.length > 0;
  }

  create(name) {
    const tr = document.createElement('tr');
    tr.dataset.name = name;
    cell(tr, 'name').textContent = name;
    const state = cell(tr, 'state');
    const persistent = cell(tr, 'persistent');
    const autostart = cell(tr, 'autostart');
    const shim = cell(tr, 'shim');
    const cpu = makeSparkline(percent);
    const mem = makeSparkline(mebibytes);
    cell(tr, 'spark cpu').append(...cpu.nodes);
    cell(tr, 'spark mem').append(...mem.nodes);
    const actions = cell(tr, 'actions');
    const buttons = ACTIONS.map((a) => {
      const b = button(a.label, () => this.on.act(name, a.verb), a.danger);
      b.dataset.action = a.verb;
      actions.append(b);
      return { a, b };
    });
    const consoleButton = button('Console', () => this.on.console(name));
    consoleButton.dataset.action = 'console';
    actions.append(consoleButton);
    const row = { tr, state, persistent, autostart, shim, cpu, mem, buttons, consoleButton };
    this.rows.set(name, row);
    return row;
  }

  update(row, d, points, write) {
    row.tr.dataset.state = d.state;
    row.state.className = `state state-${d.state}`;
    row.state.textContent = LABELS[d.state] ?? d.state;
    const reason = document.createElement('span');
    reason.className = 'reason';
    reason.textContent = d.reason ? ` (${d.reason})` : '';
    row.state.append(reason);
    row.persistent.textContent = d.persistent ? 'yes' : 'no';
    row.autostart.textContent = d.autostart ? 'yes' : 'no';
    const active = ACTIVE.has(d.state);
    row.shim.textContent = !active ? '–' : d.shimUp ? 'up' : 'down';
    row.shim.className = `shim${active && !d.shimUp ? ' down' : ''}`;
    row.cpu.update(active ? points.map((p) => p.cpu) : [], 1);
    row.mem.update(active ? points.map((p) => p.mem) : []);
    for (const { a, b } of row.buttons) {
      b.disabled = !write || !a.when(d);
      b.title = write ? '' : READ_ONLY;
    }
    row.consoleButton.disabled = !write || !active;
    row.consoleButton.title = write ? '' : READ_ONLY;
  }
}
