/* Small SVG plots for the hyperq dashboard: no library, no network. Every text is set with
   textContent, never parsed as HTML. */
(function () {
  'use strict';
  var NS = 'http://www.w3.org/2000/svg';

  function el(name, attrs, parent) {
    var node = document.createElementNS(NS, name);
    for (var k in attrs) if (attrs[k] !== undefined && attrs[k] !== null) node.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(node);
    return node;
  }
  function text(parent, x, y, s, anchor) {
    var t = el('text', {x: x, y: y, 'text-anchor': anchor || 'middle'}, parent);
    t.textContent = s;
    return t;
  }
  function fmt(v) {
    if (v === null || v === undefined) return '';
    if (typeof v !== 'number') return String(v);
    var a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(2);
    return String(Math.round(v * 1000) / 1000);
  }
  function extent(values) {
    var lo = Infinity, hi = -Infinity;
    values.forEach(function (v) { if (v !== null && isFinite(v)) { if (v < lo) lo = v; if (v > hi) hi = v; } });
    if (lo === Infinity) return [0, 1];
    if (lo === hi) { var pad = Math.abs(lo) * 0.1 || 0.5; lo -= pad; hi += pad; }
    return [lo, hi];
  }
  function scale(dom, range, log) {
    var d0 = log ? Math.log10(dom[0]) : dom[0], d1 = log ? Math.log10(dom[1]) : dom[1];
    var f = function (v) {
      var x = log ? Math.log10(v) : v;
      return range[0] + (x - d0) / (d1 - d0 || 1) * (range[1] - range[0]);
    };
    f.ticks = function (n) {
      var out = [];
      for (var i = 0; i <= n; i++) {
        var x = d0 + (d1 - d0) * i / n;
        out.push(log ? Math.pow(10, x) : x);
      }
      return out;
    };
    return f;
  }
  // a frame with axes; returns {svg, x, y, w, h, m}
  function frame(opts, xdom, ydom) {
    var w = opts.width || 560, h = opts.height || 260, m = {l: 58, r: 12, t: 12, b: 34};
    var svg = el('svg', {viewBox: '0 0 ' + w + ' ' + h, 'class': 'plot', role: 'img',
                         'aria-label': opts.label || 'plot'});
    var x = scale(xdom, [m.l, w - m.r], opts.xlog), y = scale(ydom, [h - m.b, m.t], opts.ylog);
    y.ticks(4).forEach(function (v) {
      el('line', {x1: m.l, x2: w - m.r, y1: y(v), y2: y(v), 'class': 'grid'}, svg);
      text(svg, m.l - 5, y(v) + 4, fmt(v), 'end');
    });
    if (!opts.xcats) {
      var shown = {};
      x.ticks(5).forEach(function (v) {
        if (opts.xint) {  // whole numbers only, each once
          v = Math.round(v);
          if (shown[v] || v < xdom[0] || v > xdom[1]) return;
          shown[v] = true;
        }
        text(svg, x(v), h - m.b + 15, opts.xint ? String(v) : fmt(v));
      });
    }
    el('line', {x1: m.l, x2: w - m.r, y1: h - m.b, y2: h - m.b, 'class': 'axis'}, svg);
    el('line', {x1: m.l, x2: m.l, y1: m.t, y2: h - m.b, 'class': 'axis'}, svg);
    if (opts.xlabel) text(svg, (m.l + w - m.r) / 2, h - 4, opts.xlabel);
    if (opts.ylabel) {
      var t = text(svg, 12, (m.t + h - m.b) / 2, opts.ylabel);
      t.setAttribute('transform', 'rotate(-90 12 ' + (m.t + h - m.b) / 2 + ')');
    }
    return {svg: svg, x: x, y: y, w: w, h: h, m: m};
  }
  function useLog(values) {
    var e = extent(values);
    return e[0] > 0 && e[1] / e[0] > 1000;
  }

  // best-so-far curve: points [[tid, loss]], best [[tid, loss]] (improvements)
  function curve(points, best, opts) {
    opts = opts || {};
    // the axes cover the drawn points and the best-so-far steps (which a sample may miss)
    var all = points.concat(best);
    var losses = all.map(function (p) { return p[1]; });
    var ylog = useLog(losses);
    var xs = extent(all.map(function (p) { return p[0]; }));
    var f = frame({width: opts.width, height: opts.height, xlabel: 'trial id', ylabel: ylog ? 'loss (log)' : 'loss',
                   ylog: ylog, xint: true, label: 'best loss so far'}, xs, extent(losses));
    var g = el('g', {'class': 'points'}, f.svg);
    points.forEach(function (p) {
      el('circle', {cx: f.x(p[0]).toFixed(1), cy: f.y(p[1]).toFixed(1), r: 2.6, 'class': 'pt'}, g);
    });
    if (best.length) {
      var d = '', lastX = f.x(xs[1]);
      best.forEach(function (p, i) {
        var px = f.x(p[0]).toFixed(1), py = f.y(p[1]).toFixed(1);
        d += (i === 0 ? 'M' + px + ',' + py : 'H' + px + 'V' + py);
      });
      d += 'H' + lastX.toFixed(1);
      el('path', {d: d, 'class': 'best-line'}, f.svg);
      var b = best[best.length - 1];
      el('circle', {cx: f.x(b[0]), cy: f.y(b[1]), r: 4.5, 'class': 'pt best'}, f.svg);
    }
    f.svg.setAttribute('data-points', String(points.length));
    f.svg.setAttribute('data-best', best.length ? String(best[best.length - 1][1]) : '');
    return f.svg;
  }

  // line series: [{name, points: [[x, y]], color}]
  function lines(series, opts) {
    opts = opts || {};
    var all = [];
    series.forEach(function (s) { s.points.forEach(function (p) { all.push(p); }); });
    var f = frame({width: opts.width, height: opts.height, xlabel: opts.xlabel || 'step',
                   ylabel: opts.ylabel || 'value', xint: true, label: opts.label || 'series'},
                  extent(all.map(function (p) { return p[0]; })),
                  extent(all.map(function (p) { return p[1]; })));
    series.forEach(function (s) {
      var d = '';
      s.points.forEach(function (p) {
        if (p[1] === null) return;
        d += (d ? 'L' : 'M') + f.x(p[0]).toFixed(1) + ',' + f.y(p[1]).toFixed(1);
      });
      var path = el('path', {d: d || 'M0,0', 'class': 'series', stroke: s.color || '#2f6fdb'}, f.svg);
      var t = el('title', {}, path); t.textContent = s.name;
      var last = s.points[s.points.length - 1];
      if (last && last[1] !== null) el('circle', {cx: f.x(last[0]), cy: f.y(last[1]), r: 2.5, fill: s.color || '#2f6fdb'}, f.svg);
    });
    f.svg.setAttribute('data-series', String(series.length));
    return f.svg;
  }

  // loss against one parameter; numeric values or categories (strings)
  function scatter(values, loss, opts) {
    opts = opts || {};
    var cats = null;
    if (opts.categorical) {
      cats = [];
      values.forEach(function (v) { var k = v === null ? '(inactive)' : v; if (cats.indexOf(k) < 0) cats.push(k); });
      cats.sort();
    }
    var pairs = [];
    values.forEach(function (v, i) {
      if (cats) pairs.push([cats.indexOf(v === null ? '(inactive)' : v), loss[i]]);
      else if (v !== null) pairs.push([v, loss[i]]);
    });
    var xlog = !cats && opts.log && extent(pairs.map(function (p) { return p[0]; }))[0] > 0;
    var xdom = cats ? [-0.5, cats.length - 0.5] : extent(pairs.map(function (p) { return p[0]; }));
    var ylog = useLog(loss);
    var f = frame({width: opts.width || 320, height: opts.height || 200, xlabel: opts.xlabel, ylabel: ylog ? 'loss (log)' : 'loss',
                   xlog: xlog, ylog: ylog, xcats: !!cats, label: 'loss vs ' + opts.xlabel},
                  xdom, extent(loss));
    if (cats) cats.forEach(function (c, i) { text(f.svg, f.x(i), f.h - f.m.b + 15, String(c).slice(0, 14)); });
    pairs.forEach(function (p, i) {
      var jitter = cats ? ((i * 7919) % 100 / 100 - 0.5) * 0.5 : 0;
      el('circle', {cx: f.x(p[0] + jitter).toFixed(1), cy: f.y(p[1]).toFixed(1), r: 2.4, 'class': 'pt'}, f.svg);
    });
    return f.svg;
  }

  function lossColor(t) { // 0 best (green) .. 1 worst (grey-blue)
    var r = Math.round(26 + t * 150), g = Math.round(127 + t * 40), b = Math.round(55 + t * 170);
    return 'rgb(' + r + ',' + g + ',' + b + ')';
  }

  // parallel coordinates: one axis per parameter, then the loss; lines coloured by loss rank
  function parallel(params, values, loss, categorical, opts) {
    opts = opts || {};
    var axes = params.concat(['loss']);
    var w = opts.width || 900, h = opts.height || 280, m = {l: 40, r: 40, t: 22, b: 26};
    var svg = el('svg', {viewBox: '0 0 ' + w + ' ' + h, 'class': 'plot', role: 'img', 'aria-label': 'parallel coordinates'});
    var step = (w - m.l - m.r) / Math.max(1, axes.length - 1);
    var norm = {};
    axes.forEach(function (a) {
      var col = a === 'loss' ? loss : values[a];
      if (categorical.indexOf(a) >= 0) {
        var cats = [];
        col.forEach(function (v) { var k = v === null ? '(inactive)' : v; if (cats.indexOf(k) < 0) cats.push(k); });
        cats.sort();
        norm[a] = function (v) { var k = v === null ? '(inactive)' : v; return cats.length < 2 ? 0.5 : cats.indexOf(k) / (cats.length - 1); };
      } else {
        var e = extent(col);
        norm[a] = function (v) { return v === null ? null : (v - e[0]) / (e[1] - e[0]); };
      }
    });
    var order = loss.map(function (v, i) { return i; }).sort(function (i, j) { return loss[j] - loss[i]; });
    order.forEach(function (i, rank) {
      var d = '', pen = false;
      axes.forEach(function (a, k) {
        var v = a === 'loss' ? loss[i] : values[a][i], t = norm[a](v);
        if (t === null) { pen = false; return; }
        d += (pen ? 'L' : 'M') + (m.l + k * step).toFixed(1) + ',' + (h - m.b - t * (h - m.t - m.b)).toFixed(1);
        pen = true;
      });
      el('path', {d: d || 'M0,0', 'class': 'pc', stroke: lossColor(1 - rank / Math.max(1, order.length - 1))}, svg);
    });
    axes.forEach(function (a, k) {
      var x = m.l + k * step;
      el('line', {x1: x, x2: x, y1: m.t, y2: h - m.b, 'class': 'axis'}, svg);
      text(svg, x, h - 8, a.slice(0, 16));
    });
    return svg;
  }

  // horizontal bars: [{param, score}]
  function bars(items, opts) {
    opts = opts || {};
    var w = opts.width || 420, row = 22, h = 16 + row * items.length, lab = 130;
    var svg = el('svg', {viewBox: '0 0 ' + w + ' ' + h, 'class': 'plot', role: 'img', 'aria-label': 'parameter importance'});
    items.forEach(function (it, i) {
      var y = 8 + i * row, len = Math.max(0, Math.min(1, it.score)) * (w - lab - 60);
      text(svg, lab - 6, y + 14, it.param.slice(0, 20), 'end');
      el('rect', {x: lab, y: y + 3, width: len.toFixed(1), height: 14, 'class': 'imp'}, svg);
      text(svg, lab + len + 6, y + 14, fmt(it.score), 'start');
    });
    return svg;
  }

  window.HyperqPlots = {curve: curve, lines: lines, scatter: scatter, parallel: parallel, bars: bars, fmt: fmt};
})();
