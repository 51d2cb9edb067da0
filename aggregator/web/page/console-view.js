// The serial console in the browser: xterm.js (copied from npm into /vendor at build time) over a
// WebSocket to /console/NAME, which virtqemud forwards to the VM's shim. Keystrokes go out as
// bytes; the guest's output (recent history first) is written to the terminal as it comes.
import { Terminal } from '/vendor/xterm.mjs';
import { FitAddon } from '/vendor/addon-fit.mjs';

const encoder = new TextEncoder();

/** The console panel. */
export class ConsoleView {
  constructor(section) {
    this.section = section;
    this.nameEl = section.querySelector('#console-name');
    this.stateEl = section.querySelector('#console-state');
    this.host = section.querySelector('#terminal');
    section.querySelector('#console-close').addEventListener('click', () => this.close());
    this.term = undefined;
    this.ws = undefined;
    this.name = undefined;
    window.addEventListener('resize', () => this.fit?.fit());
  }

  /** Opens VM `name`'s console (closing the one open). */
  open(name) {
    this.close();
    this.name = name;
    this.section.hidden = false;
    this.nameEl.textContent = name;
    this.stateEl.textContent = 'connecting…';
    const term = new Terminal({ cursorBlink: true, fontSize: 13, scrollback: 5000, convertEol: false });
    this.fit = new FitAddon();
    term.loadAddon(this.fit);
    term.open(this.host);
    this.fit.fit();
    this.term = term;
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const ws = new WebSocket(`${scheme}://${location.host}/console/${encodeURIComponent(name)}`);
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    ws.onopen = () => { this.stateEl.textContent = 'connected'; term.focus(); };
    ws.onmessage = (e) => term.write(new Uint8Array(e.data));
    ws.onclose = (e) => {
      if (this.ws !== ws) return;
      // 1006: the server refused the upgrade (403 when the page may not write) or went away.
      this.stateEl.textContent = e.reason || (e.code === 1006 ? 'refused or lost (is the page unlocked?)' : 'closed');
    };
    term.onData((data) => { if (ws.readyState === WebSocket.OPEN) ws.send(encoder.encode(data)); });
  }

  /** Closes the console (the VM keeps running). */
  close() {
    const ws = this.ws;
    this.ws = undefined;
    ws?.close();
    this.term?.dispose();
    this.term = undefined;
    this.name = undefined;
    this.section.hidden = true;
  }
}
