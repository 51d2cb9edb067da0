// Sparklines: a small SVG polyline of a VM's recent points, with the latest value beside it.

const SVG = 'http://www.w3.org/2000/svg';
const W = 96;
const H = 22;

/** Makes an empty sparkline; `update(points)` draws it. */
export function makeSparkline(format) {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('width', String(W));
  svg.setAttribute('height', String(H));
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  const line = document.createElementNS(SVG, 'polyline');
  svg.append(line);
  const value = document.createElement('span');
  value.className = 'value';
  return {
    nodes: [svg, value],
    /** Draws `values` (numbers or null, oldest first) scaled to `max` (or their own maximum). */
    update(values, max) {
      const known = values.filter((v) => v !== null);
      const top = Math.max(max ?? 0, ...known, 1e-9);
      const step = values.length > 1 ? W / (values.length - 1) : W;
      const pts = [];
      values.forEach((v, i) => { if (v !== null) pts.push(`${(i * step).toFixed(1)},${(H - 1 - (v / top) * (H - 2)).toFixed(1)}`); });
      line.setAttribute('points', pts.join(' '));
      const last = known.length > 0 ? known[known.length - 1] : null;
      value.textContent = last === null ? '–' : format(last);
    },
  };
}

/** CPU as a percentage of one host CPU. */
export const percent = (v) => `${(v * 100).toFixed(v < 0.1 ? 1 : 0)} %`;

/** Bytes in MiB. */
export const mebibytes = (v) => `${(v / 1048576).toFixed(0)} MiB`;
