'use strict';
// Small time-series charts drawn as SVG by hand: stacked bars and lines over the same buckets, a y axis with
// three ticks, a time axis, a hover read-out. No library: five charts of at most 96 points need nothing more,
// and every node is made with createElementNS and setAttribute (the CSP allows no inline style or script).
(() => {
  const NS = 'http://www.w3.org/2000/svg';
  const svg = (tag, attrs, ...kids) => {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) if (v != null) e.setAttribute(k, String(v));
    for (const c of kids) if (c != null) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return e;
  };
  const pad2 = (n) => String(n).padStart(2, '0');
  const hhmm = (ms) => { const d = new Date(ms); return `${pad2(d.getHours())}:${pad2(d.getMinutes())}`; };
  /** A round top for the y axis (its half is round too): 1, 2, 2.5, 3, 4, 5, 6, 8 × 10^k at or above `v`. */
  function niceMax(v) {
    if (!(v > 0)) return 1;
    const k = 10 ** Math.floor(Math.log10(v));
    for (const m of [1, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * k >= v) return m * k;
    return 10 * k;
  }

  /**
   * Draw into `box` (emptied first). `spec`: { at: [ms], step: ms, series: [{ name, cls, values: [number|null],
   * kind: 'bar'|'line' }], fmt: (v) => text, max?: number, floor?: number (the y axis reaches at least this) }.
   * Bars stack in the order given; lines are drawn on top.
   */
  function chart(box, spec) {
    const W = Math.max(200, Math.floor(box.clientWidth || 300));
    const H = 120;
    const L = 44, R = 6, T = 6, B = 18;
    const n = spec.at.length;
    const iw = W - L - R, ih = H - T - B;
    const bars = spec.series.filter((s) => s.kind === 'bar');
    const lines = spec.series.filter((s) => s.kind !== 'bar');
    let top = 0;
    for (let i = 0; i < n; i++) {
      let stack = 0;
      for (const s of bars) stack += s.values[i] || 0;
      top = Math.max(top, stack);
      for (const s of lines) if (s.values[i] != null) top = Math.max(top, s.values[i]);
    }
    const max = spec.max ?? niceMax(Math.max(top, spec.floor || 0));
    const x = (i) => L + (n <= 1 ? 0 : (i * iw) / n);
    const bw = n > 0 ? iw / n : iw;
    const y = (v) => T + ih - (Math.min(v, max) / max) * ih;
    const root = svg('svg', { class: 'chart', width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': spec.label || '' });
    for (const f of [0, 0.5, 1]) {
      const yy = Math.round(y(max * f)) + 0.5;
      root.append(svg('line', { class: 'grid', x1: L, x2: W - R, y1: yy, y2: yy }), svg('text', { class: 'tick', x: L - 5, y: yy + 3, 'text-anchor': 'end' }, spec.fmt(max * f)));
    }
    // Time ticks: the first bucket, the middle and the last.
    for (const i of n > 2 ? [0, Math.floor(n / 2), n - 1] : []) root.append(svg('text', { class: 'tick', x: x(i) + bw / 2, y: H - 4, 'text-anchor': i === 0 ? 'start' : i === n - 1 ? 'end' : 'middle' }, hhmm(spec.at[i])));
    const gap = bw > 4 ? 1 : 0;
    for (let i = 0; i < n; i++) {
      let base = 0;
      for (const s of bars) {
        const v = s.values[i] || 0;
        if (v > 0) root.append(svg('rect', { class: `bar ${s.cls}`, x: (x(i) + gap / 2).toFixed(1), y: y(base + v).toFixed(1), width: Math.max(0.5, bw - gap).toFixed(1), height: Math.max(0.5, y(base) - y(base + v)).toFixed(1) }));
        base += v;
      }
    }
    for (const s of lines) {
      let d = '';
      let pen = false;
      for (let i = 0; i < n; i++) {
        const v = s.values[i];
        if (v == null) { pen = false; continue; }
        d += `${pen ? 'L' : 'M'}${(x(i) + bw / 2).toFixed(1)},${y(v).toFixed(1)}`;
        pen = true;
      }
      if (d) root.append(svg('path', { class: `line ${s.cls}`, d }));
      // A point with no neighbour draws no line: a dot, so sparse data still shows.
      for (let i = 0; i < n; i++) {
        if (s.values[i] == null || s.values[i - 1] != null || s.values[i + 1] != null) continue;
        root.append(svg('circle', { class: `dot ${s.cls}`, cx: (x(i) + bw / 2).toFixed(1), cy: y(s.values[i]).toFixed(1), r: 1.8 }));
      }
    }
    // Hover: a cursor line and the bucket's values in the read-out.
    const cursor = svg('line', { class: 'cursor', x1: 0, x2: 0, y1: T, y2: T + ih, visibility: 'hidden' });
    root.append(cursor);
    const readout = document.createElement('div');
    readout.className = 'readout';
    const showAt = (i) => {
      if (i < 0 || i >= n) { cursor.setAttribute('visibility', 'hidden'); readout.textContent = spec.summary || ''; return; }
      const cx = (x(i) + bw / 2).toFixed(1);
      cursor.setAttribute('x1', cx); cursor.setAttribute('x2', cx); cursor.setAttribute('visibility', 'visible');
      readout.textContent = `${hhmm(spec.at[i])}  ${spec.series.map((s) => `${s.name} ${s.values[i] == null ? '—' : spec.fmt(s.values[i])}`).join(' · ')}`;
    };
    root.addEventListener('mousemove', (ev) => { const r = root.getBoundingClientRect(); showAt(Math.floor(((ev.clientX - r.left) * (W / r.width) - L) / bw)); });
    root.addEventListener('mouseleave', () => showAt(-1));
    showAt(-1);
    box.replaceChildren(root, readout);
  }

  window.rqCharts = { chart, niceMax };
})();
