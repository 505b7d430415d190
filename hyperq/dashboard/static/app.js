/* The hyperq dashboard: experiments, one experiment (live), one trial, the workers.
   Reads the JSON API of the same server; builds the DOM with textContent only. */
(function () {
  'use strict';
  var P = window.HyperqPlots, fmt = P.fmt;
  var main = document.getElementById('main');
  var INFO = {actions: false};
  var timers = [];

  function h(tag, attrs, children) {
    var node = document.createElement(tag);
    attrs = attrs || {};
    for (var k in attrs) {
      var v = attrs[k];
      if (v === undefined || v === null || v === false) continue;
      if (k === 'text') node.textContent = v;
      else if (k === 'style') node.style.cssText = v;  // CSSOM: allowed by the page's CSP
      else if (k === 'on') for (var ev in v) node.addEventListener(ev, v[ev]);
      else node.setAttribute(k, v === true ? '' : v);
    }
    (children || []).forEach(function (c) {
      if (c === null || c === undefined) return;
      node.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
    });
    return node;
  }
  function api(path, options) {
    return fetch(path, Object.assign({credentials: 'same-origin', cache: 'no-store'}, options || {}))
      .then(function (r) {
        if (r.status === 401) { window.location.href = '/login'; throw new Error('sign in'); }
        return r.json().then(function (body) {
          if (!r.ok) throw new Error(body.error || ('HTTP ' + r.status));
          return body;
        });
      });
  }
  function live(ok) {
    var dot = document.getElementById('live');
    dot.className = 'live-dot ' + (ok ? 'on' : 'err');
    dot.title = ok ? 'live: updated ' + new Date().toLocaleTimeString() : 'cannot reach the server';
  }
  function every(ms, fn) {
    var stopped = false;
    function tick() {
      if (stopped) return;
      Promise.resolve().then(fn).then(function () { live(true); }, function (e) { live(false); console.warn(e); })
        .then(function () { if (!stopped) timers.push(setTimeout(tick, ms)); });
    }
    tick();
    return function () { stopped = true; };
  }
  function age(seconds) {
    if (seconds === null || seconds === undefined) return '';
    if (seconds < 60) return Math.round(seconds) + ' s';
    if (seconds < 3600) return Math.round(seconds / 60) + ' min';
    if (seconds < 86400) return (seconds / 3600).toFixed(1) + ' h';
    return (seconds / 86400).toFixed(1) + ' d';
  }
  function when(iso) { return iso ? iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : ''; }
  function stateBadge(state) { return h('span', {'class': 'state ' + state, text: state}); }
  function expLink(label) { return '/experiment?key=' + encodeURIComponent(label); }
  function trialLink(label, tid) { return '/trial?key=' + encodeURIComponent(label) + '&tid=' + tid; }
  function toast(message) {
    var t = h('div', {'class': 'toast', id: 'toast', role: 'status', text: message});
    var old = document.getElementById('toast'); if (old) old.remove();
    document.body.appendChild(t);
    setTimeout(function () { t.remove(); }, 6000);
  }
  function confirmDialog(title, message) {
    var dialog = document.getElementById('confirm');
    document.getElementById('confirm-title').textContent = title;
    document.getElementById('confirm-text').textContent = message;
    return new Promise(function (resolve) {
      dialog.addEventListener('close', function onClose() {
        dialog.removeEventListener('close', onClose);
        resolve(dialog.returnValue === 'yes');
      });
      dialog.returnValue = '';
      dialog.showModal();
    });
  }
  function card(key, value, id, cls) {
    return h('div', {'class': 'card ' + (cls || '')}, [h('div', {'class': 'k', text: key}),
      h('div', {'class': 'v', id: id, text: value})]);
  }

  // -- experiments ------------------------------------------------------------------------
  function experimentsPage() {
    document.title = 'Experiments · hyperq';
    var body = h('tbody', {id: 'experiments'});
    main.replaceChildren(h('h1', {text: 'Experiments'}),
      h('p', {'class': 'sub', text: INFO.description}),
      h('div', {'class': 'panel'}, [h('table', {}, [h('thead', {}, [h('tr', {}, [
        'experiment', 'progress', 'trials', 'new', 'running', 'done', 'error', 'cancel', 'best loss',
        'trials/min', 'live workers', 'last activity'].map(function (c, i) {
          return h('th', {'class': i > 1 ? 'num' : null, text: c}); }))]), body])]));
    every(2000, function () {
      return api('/api/experiments').then(function (data) {
        body.replaceChildren.apply(body, data.experiments.map(function (e) {
          var c = e.counts;
          return h('tr', {'data-key': e.label}, [
            h('td', {}, [h('a', {href: expLink(e.label), text: e.label})]),
            h('td', {}, [h('div', {'class': 'bar', title: Math.round(e.progress * 100) + '% finished'},
              [h('span', {style: 'width:' + (e.progress * 100).toFixed(1) + '%'})])]),
            h('td', {'class': 'num', text: String(e.total)}), h('td', {'class': 'num', text: String(c.new)}),
            h('td', {'class': 'num', text: String(c.running)}), h('td', {'class': 'num', text: String(c.done)}),
            h('td', {'class': 'num', text: String(c.error)}), h('td', {'class': 'num', text: String(c.cancel)}),
            h('td', {'class': 'num', text: e.best_loss === null ? '' : fmt(e.best_loss)}),
            h('td', {'class': 'num', text: fmt(e.trials_per_minute)}),
            h('td', {'class': 'num', text: e.live_workers === undefined ? '' : String(e.live_workers)}),
            h('td', {'class': 'num', text: when(e.last_activity)})]);
        }));
        if (!data.experiments.length) body.replaceChildren(h('tr', {}, [h('td', {colspan: 12, 'class': 'note', text: 'No experiments yet.'})]));
      });
    });
  }

  // -- one experiment ---------------------------------------------------------------------
  var STATES = ['new', 'running', 'done', 'error', 'cancel'];

  function experimentPage(label) {
    document.title = label + ' · hyperq';
    var cards = h('div', {'class': 'cards', id: 'cards'}, [
      card('trials', '…', 'count-total'), card('new', '…', 'count-new'),
      card('running', '…', 'count-running', 'running'), card('done', '…', 'count-done'),
      card('error', '…', 'count-error', 'error'), card('cancel', '…', 'count-cancel'),
      card('stale', '…', 'count-stale'), card('best loss', '…', 'best-loss', 'best'),
      card('trials / min', '…', 'throughput')]);
    var actions = actionBar(label);
    var curveBox = h('div', {id: 'curve', 'class': 'panel'}, [h('p', {'class': 'note', text: 'No finished trial yet.'})]);
    var side = h('div', {'class': 'panel', id: 'side'});
    var interBox = h('div', {id: 'intermediate'});
    var paramBox = h('div', {id: 'params'}, [h('p', {'class': 'note', text: 'Waiting for successful trials…'})]);
    var table = trialsTable(label);
    main.replaceChildren(
      h('p', {'class': 'sub'}, [h('a', {href: '/', text: 'Experiments'}), ' / ']),
      h('h1', {id: 'exp-title', text: label}), cards,
      h('p', {'class': 'sub', id: 'statuses'}), actions.node,
      h('div', {'class': 'grid2'}, [h('div', {}, [h('h3', {text: 'Best loss so far'}), curveBox]), side]),
      interBox,
      h('h2', {text: 'Trials'}), table.node,
      h('h2', {text: 'Parameters'}), paramBox);
    var version = null, lastParams = 0, paramsVersion = null, lastTable = Date.now(), tableVersion = null;
    table.reload();  // at once, in parallel with the first live view
    every(1000, function () {
      var url = '/api/live?key=' + encodeURIComponent(label) + (version === null ? '' : '&since=' + version);
      return api(url).then(function (v) {
        var now = Date.now();
        if (v.loading) {  // the server is still reading a large experiment: counts only
          STATES.forEach(function (s) { document.getElementById('count-' + s).textContent = String(v.counts[s] || 0); });
          document.getElementById('count-total').textContent = String(v.total);
          curveBox.replaceChildren(h('p', {'class': 'note', text: 'Reading ' + v.total + ' trials…'}));
          actions.update({counts: v.counts, stale: 0});
          return;
        }
        if (!v.unchanged) {
          version = v.version;
          renderLive(v, label, curveBox, side, interBox);
          actions.update(v);
        }
        if (tableVersion === null) tableVersion = version;  // loaded above
        else if (tableVersion !== version && now - lastTable >= 900) {
          tableVersion = version; lastTable = now; table.reload();
        }
        if (paramsVersion !== version && now - lastParams > 5000 && (v.unchanged || v.curve.n_ok > 0)) {
          paramsVersion = version; lastParams = now;
          api('/api/params?key=' + encodeURIComponent(label)).then(function (p) { renderParams(p, paramBox); },
            function (e) { paramsVersion = null; console.warn(e); });  // retried on the next tick
        }
      });
    });
  }

  function renderLive(v, label, curveBox, side, interBox) {
    STATES.forEach(function (s) { document.getElementById('count-' + s).textContent = String(v.counts[s] || 0); });
    document.getElementById('count-total').textContent = String(v.total);
    document.getElementById('count-stale').textContent = String(v.stale);
    document.getElementById('best-loss').textContent = v.best ? fmt(v.best.loss) + ' (#' + v.best.tid + ')' : '–';
    document.getElementById('throughput').textContent = fmt(v.trials_per_minute);
    var parts = Object.keys(v.statuses).sort().map(function (k) { return v.statuses[k] + ' ' + k; });
    document.getElementById('statuses').textContent = parts.length ? 'done trials by status: ' + parts.join(' · ') : '';
    if (v.curve.points.length) {
      curveBox.replaceChildren(P.curve(v.curve.points, v.curve.best, {width: 760, height: 280}),
        h('p', {'class': 'legend'}, [h('i', {style: 'background:#2f6fdb'}), 'loss of a successful trial',
          h('i', {style: 'background:#1a7f37'}), 'best so far',
          v.curve.points.length < v.curve.n_ok ? ' (' + v.curve.points.length + ' of ' + v.curve.n_ok + ' shown)' : '']));
    }
    var running = v.running.map(function (r) {
      return h('tr', {}, [h('td', {}, [h('a', {href: trialLink(label, r.tid), text: '#' + r.tid})]),
        h('td', {text: r.worker || ''}), h('td', {'class': 'num', text: age(r.age_s)})]);
    });
    var recent = v.recent.map(function (r) {
      var state = ['new', 'running', 'done', 'error', 'cancel'][r.state] || String(r.state);
      return h('tr', {'data-tid': String(r.tid)}, [h('td', {}, [h('a', {href: trialLink(label, r.tid), text: '#' + r.tid})]),
        h('td', {}, [stateBadge(state)]),
        h('td', {'class': 'num ' + (r.status && r.status !== 'ok' ? 'status-' + r.status : ''),
                 text: r.loss === null ? (r.error || r.status || '') : fmt(r.loss)})]);
    });
    side.replaceChildren(
      h('h3', {text: 'Running (' + v.running.length + ')'}),
      running.length ? h('table', {id: 'running'}, [h('tbody', {}, running)]) : h('p', {'class': 'note', text: 'Nothing running.'}),
      h('h3', {text: 'Recently finished', style: 'margin-top:14px'}),
      recent.length ? h('table', {id: 'recent'}, [h('tbody', {}, recent)]) : h('p', {'class': 'note', text: 'Nothing finished yet.'}));
    if (v.intermediate.length) {
      var colors = {ok: '#1a7f37', pruned: '#b26a00', fail: '#c62828'};
      var series = v.intermediate.map(function (e) {
        var color = e.state === 1 ? '#2f6fdb' : (e.state === 3 ? '#c62828' : (colors[e.status] || '#8a94a6'));
        return {name: '#' + e.tid + ' (' + (e.state === 1 ? 'running' : (e.status || '')) + ')', points: e.points, color: color};
      });
      interBox.replaceChildren(h('h2', {text: 'Intermediate values'}), h('div', {'class': 'panel'}, [
        P.lines(series, {width: 900, height: 260, label: 'intermediate values'}),
        h('p', {'class': 'legend'}, [h('i', {style: 'background:#2f6fdb'}), 'running',
          h('i', {style: 'background:#1a7f37'}), 'completed', h('i', {style: 'background:#b26a00'}), 'pruned',
          h('i', {style: 'background:#c62828'}), 'failed',
          ' · the ' + series.length + ' most recently reporting trials'])]));
    } else interBox.replaceChildren();
  }

  function actionBar(label) {
    var requeue = h('button', {id: 'requeue', type: 'button', text: 'Re-queue failed and stale trials'});
    var cancel = h('button', {id: 'cancel', type: 'button', text: 'Cancel queued trials'});
    var why = h('span', {'class': 'why', id: 'actions-why'});
    var counts = {};
    if (!INFO.actions) {
      requeue.disabled = cancel.disabled = true;
      why.textContent = INFO.source === 'file' ? 'Actions need MongoDB: a trials file belongs to the fmin that writes it.'
        : 'Actions are disabled: start the dashboard with --token to enable them.';
    }
    function post(path, body) {
      return api(path, {method: 'POST', headers: {'Content-Type': 'application/json', 'X-Hyperq-Action': '1'},
                        body: JSON.stringify(body)});
    }
    requeue.addEventListener('click', function () {
      var n = (counts.error || 0), s = (counts.stale || 0);
      confirmDialog('Re-queue trials of ' + label + '?',
        'This puts ' + n + ' failed (error) trial(s) back in the queue with a fresh retry budget, and re-queues ' +
        s + ' running trial(s) whose worker died. Workers will run them again.').then(function (yes) {
        if (!yes) return;
        post('/api/requeue', {key: label, stale: true, errors: true}).then(function (r) {
          toast('Re-queued ' + r.errors_requeued + ' failed and ' + r.stale_requeued + ' stale trial(s)' +
                (r.stale_failed ? '; ' + r.stale_failed + ' out of retries marked error' : '') + '.');
        }, function (e) { toast('Re-queue failed: ' + e.message); });
      });
    });
    cancel.addEventListener('click', function () {
      confirmDialog('Cancel queued trials of ' + label + '?',
        'This marks the ' + (counts.new || 0) + ' queued (new) trial(s) cancelled; running trials finish. ' +
        'A driver that is still running goes on queueing new trials.').then(function (yes) {
        if (!yes) return;
        post('/api/cancel', {key: label}).then(function (r) { toast('Cancelled ' + r.cancelled + ' queued trial(s).'); },
          function (e) { toast('Cancel failed: ' + e.message); });
      });
    });
    return {node: h('div', {'class': 'actions'}, [requeue, cancel, why]),
            update: function (v) { counts = Object.assign({stale: v.stale}, v.counts); }};
  }

  var COLUMNS = [['tid', 'tid', true], ['state', 'state', true], ['status', null, false], ['loss', 'loss', true],
                 ['parameters', null, false], ['duration', null, false], ['worker', 'worker', true],
                 ['finished', 'refresh_time', true], ['error', null, false]];

  function trialsTable(label) {
    var q = {page: 1, size: 50, sort: 'tid', order: 'desc', state: '', status: '', loss_max: '', tid: ''};
    var head = h('tr', {}, COLUMNS.map(function (c) {
      var th = h('th', {'class': ['tid', 'loss', 'duration'].indexOf(c[0]) >= 0 ? 'num' : null, 'data-col': c[0]});
      if (c[2]) th.appendChild(h('button', {'class': 'sort', type: 'button', text: c[0], on: {click: function () {
        if (q.sort === c[1]) q.order = q.order === 'asc' ? 'desc' : 'asc'; else { q.sort = c[1]; q.order = c[1] === 'loss' ? 'asc' : 'desc'; }
        q.page = 1; reload();
      }}}));
      else th.textContent = c[0];
      return th;
    }));
    var body = h('tbody', {id: 'trials-body'});
    var info = h('span', {id: 'page-info'});
    function btn(id, text, fn) { return h('button', {id: id, type: 'button', text: text, on: {click: fn}}); }
    var pages = 1;
    var first = btn('first-page', '« first', function () { q.page = 1; reload(); });
    var prev = btn('prev-page', '‹ prev', function () { q.page = Math.max(1, q.page - 1); reload(); });
    var next = btn('next-page', 'next ›', function () { q.page = Math.min(pages, q.page + 1); reload(); });
    var last = btn('last-page', 'last »', function () { q.page = pages; reload(); });
    var goto = h('input', {type: 'number', id: 'goto-page', min: 1, placeholder: 'page'});
    goto.addEventListener('change', function () { q.page = Math.max(1, Math.min(pages, parseInt(goto.value, 10) || 1)); reload(); });
    var stateSel = h('select', {id: 'filter-state'}, [h('option', {value: '', text: 'any state'})].concat(
      STATES.map(function (s) { return h('option', {value: s, text: s}); })));
    var statusSel = h('select', {id: 'filter-status'}, [['', 'any status'], ['ok', 'ok'], ['fail', 'fail'], ['pruned', 'pruned']].map(
      function (o) { return h('option', {value: o[0], text: o[1]}); }));
    var lossMax = h('input', {type: 'number', id: 'filter-loss', step: 'any', placeholder: 'loss ≤'});
    var tidBox = h('input', {type: 'number', id: 'filter-tid', min: 0, placeholder: 'tid'});
    var size = h('select', {id: 'page-size'}, [25, 50, 100, 200].map(function (n) {
      return h('option', {value: n, text: n + ' / page', selected: n === 50}); }));
    [stateSel, statusSel, lossMax, tidBox, size].forEach(function (input) {
      input.addEventListener('change', function () {
        q.state = stateSel.value; q.status = statusSel.value; q.loss_max = lossMax.value; q.tid = tidBox.value;
        q.size = parseInt(size.value, 10); q.page = 1; reload();
      });
    });
    var seq = 0;
    function reload() {
      var mine = ++seq;
      var params = Object.keys(q).filter(function (k) { return q[k] !== ''; }).map(function (k) {
        return k + '=' + encodeURIComponent(q[k]); }).join('&');
      return api('/api/trials?key=' + encodeURIComponent(label) + '&' + params).then(function (data) {
        if (mine !== seq) return;
        pages = data.pages;
        info.textContent = 'page ' + data.page + ' of ' + data.pages + ' · ' + data.total + ' trial(s)';
        info.setAttribute('data-total', String(data.total));
        first.disabled = prev.disabled = data.page <= 1;
        next.disabled = last.disabled = data.page >= data.pages;
        Array.prototype.forEach.call(head.cells, function (th, i) {
          if (COLUMNS[i][1] === data.sort) th.setAttribute('aria-sort', data.order === 'asc' ? 'ascending' : 'descending');
          else th.removeAttribute('aria-sort');
        });
        body.replaceChildren.apply(body, data.rows.map(function (r) {
          var params = Object.keys(r.params).sort().map(function (k) { return k + '=' + fmt(r.params[k]); }).join(' ');
          return h('tr', {'data-tid': String(r.tid)}, [
            h('td', {'class': 'num'}, [h('a', {href: trialLink(label, r.tid), text: String(r.tid)})]),
            h('td', {}, [stateBadge(r.state)]),
            h('td', {'class': r.status ? 'status-' + r.status : null, text: r.state === 'done' ? (r.status || '') : ''}),
            h('td', {'class': 'num', text: r.loss === null ? '' : fmt(r.loss)}),
            h('td', {text: params.length > 90 ? params.slice(0, 87) + '…' : params, title: params}),
            h('td', {'class': 'num', text: r.duration_s === null || r.state === 'running' || r.state === 'new' ? '' : fmt(r.duration_s) + ' s'}),
            h('td', {text: r.worker || ''}),
            h('td', {text: r.state === 'done' || r.state === 'error' ? when(r.refresh_time) : ''}),
            h('td', {'class': 'error-text', text: r.error || ''})]);
        }));
        if (!data.rows.length) body.replaceChildren(h('tr', {}, [h('td', {colspan: COLUMNS.length, 'class': 'note', text: 'No trial matches.'})]));
      });
    }
    var node = h('div', {'class': 'panel'}, [
      h('div', {'class': 'toolbar'}, [h('label', {text: 'filter'}), stateSel, statusSel, lossMax, tidBox, size]),
      h('div', {style: 'overflow:auto'}, [h('table', {id: 'trials'}, [h('thead', {}, [head]), body])]),
      h('div', {'class': 'pager'}, [first, prev, info, next, last, goto])]);
    return {node: node, reload: reload};
  }

  function renderParams(p, box) {
    if (p.error) { box.replaceChildren(h('p', {'class': 'note', text: p.error})); return; }
    if (!p.params || !p.params.length) { box.replaceChildren(h('p', {'class': 'note', text: 'No successful trial yet.'})); return; }
    var scat = h('div', {'class': 'plots', id: 'loss-vs-params'}, p.params.map(function (name) {
      return h('div', {'class': 'panel'}, [h('h3', {text: 'loss vs ' + name}),
        P.scatter(p.values[name], p.loss, {xlabel: name, categorical: p.categorical.indexOf(name) >= 0,
                                           log: p.log_scale.indexOf(name) >= 0})]);
    }));
    var imp = p.importance.length ? P.bars(p.importance, {width: 520})
      : h('p', {'class': 'note', text: p.importance_error || 'not available'});
    box.replaceChildren(
      h('p', {'class': 'sub', text: p.n_sample + ' of ' + p.n_ok + ' successful trials' +
        (p.decoded ? '' : ' · choices shown as option indices (' + (INFO.source === 'file'
          ? 'the trials file holds no search space' : 'start with --secret to decode them') + ')')}),
      scat,
      h('div', {'class': 'grid2'}, [
        h('div', {'class': 'panel', id: 'parallel'}, [h('h3', {text: 'Parallel coordinates (green: lower loss)'}),
          P.parallel(p.params, p.values, p.loss, p.categorical, {width: 900, height: 280})]),
        h('div', {'class': 'panel', id: 'importance'}, [h('h3', {text: 'Importance' + (p.importance_method ? ' (' + p.importance_method + ')' : '')}), imp])]));
  }

  // -- one trial ------------------------------------------------------------------------
  function trialPage(label, tid) {
    document.title = 'Trial ' + tid + ' · ' + label;
    every(2000, function () {
      return api('/api/trial?key=' + encodeURIComponent(label) + '&tid=' + encodeURIComponent(tid)).then(function (t) {
        var rows = [['state', stateBadge(t.state)], ['status', t.status || ''], ['loss', t.loss === null ? '' : fmt(t.loss)],
          ['attempt', (t.attempt === null ? '' : t.attempt) + (t.max_attempts ? ' of ' + t.max_attempts : '') +
            (t.requeues ? ', re-queued ' + t.requeues + ' time(s)' : '')],
          ['worker', t.worker || ''], ['started', when(t.book_time)], ['updated', when(t.refresh_time)],
          ['duration', t.duration_s === null ? '' : fmt(t.duration_s) + ' s']];
        var parts = [h('p', {'class': 'sub'}, [h('a', {href: '/', text: 'Experiments'}), ' / ',
            h('a', {href: expLink(label), text: label}), ' / ']),
          h('h1', {id: 'trial-title', text: 'Trial ' + t.tid}),
          h('div', {'class': 'panel'}, [h('table', {'class': 'kv', id: 'trial-info'}, [h('tbody', {}, rows.map(function (r) {
            return h('tr', {}, [h('th', {text: r[0]}), h('td', {}, [typeof r[1] === 'string' ? document.createTextNode(r[1]) : r[1]])]);
          }))])]),
          h('h2', {text: 'Parameters'}),
          t.parameters !== null ? h('pre', {id: 'parameters', text: JSON.stringify(t.parameters, null, 2)})
            : h('p', {'class': 'note', id: 'parameters-note', text: t.parameters_note || ''}),
          h('h3', {text: 'As stored', style: 'margin-top:10px'}), h('pre', {id: 'values', text: JSON.stringify(t.values, null, 2)}),
          h('h2', {text: 'Result'}), h('pre', {id: 'result', text: JSON.stringify(t.result, null, 2)})];
        if (t.intermediate.length) {
          parts.push(h('h2', {text: 'Intermediate values'}), h('div', {'class': 'panel', id: 'trial-intermediate'}, [
            P.lines([{name: '#' + t.tid, points: t.intermediate.map(function (i) { return [i.step, i.value]; })}],
                    {width: 760, height: 240, label: 'intermediate values'})]));
        }
        if (t.error) parts.push(h('h2', {text: 'Error'}), h('p', {'class': 'error-text', id: 'error', text: t.error}));
        if (t.traceback) parts.push(h('pre', {id: 'traceback', text: t.traceback}));
        t.previous_errors.forEach(function (p, i) {
          parts.push(h('h3', {text: 'Earlier attempt ' + (i + 1) + ': ' + (p.error || '')}));
          if (p.traceback) parts.push(h('pre', {text: p.traceback}));
        });
        t.refusals.forEach(function (r) { parts.push(h('p', {'class': 'error-text', text: 'Refused by ' + r.worker + ': ' + r.reason})); });
        main.replaceChildren.apply(main, parts);
      }, function (e) { main.replaceChildren(h('p', {'class': 'error-text', text: e.message})); throw e; });
    });
  }

  // -- workers --------------------------------------------------------------------------
  function workersPage() {
    document.title = 'Workers · hyperq';
    var body = h('tbody', {id: 'workers'});
    var hosts = h('div', {'class': 'cards', id: 'hosts'});
    main.replaceChildren(h('h1', {text: 'Workers'}), hosts,
      h('div', {'class': 'panel', style: 'margin-top:14px'}, [h('table', {}, [h('thead', {}, [h('tr', {},
        ['host', 'pid', 'status', 'doing', 'serves', 'current trial', 'last heartbeat', 'done', 'errors'].map(function (c) {
          return h('th', {text: c}); }))]), body])]));
    every(2000, function () {
      return api('/api/workers').then(function (data) {
        if (!data.registry) {
          body.replaceChildren(h('tr', {}, [h('td', {colspan: 9, 'class': 'note', text: 'A local trials file has no worker registry.'})]));
          return;
        }
        var per = {};
        data.workers.forEach(function (w) { per[w.host] = per[w.host] || {alive: 0, lost: 0, stopped: 0}; per[w.host][w.status]++; });
        hosts.replaceChildren.apply(hosts, Object.keys(per).sort().map(function (host) {
          var c = per[host];
          return card(host, c.alive + ' alive' + (c.lost ? ', ' + c.lost + ' lost' : '') + (c.stopped ? ', ' + c.stopped + ' stopped' : ''));
        }));
        body.replaceChildren.apply(body, data.workers.map(function (w) {
          var cur = w.current;
          return h('tr', {'data-pid': String(w.pid)}, [h('td', {text: w.host}), h('td', {text: String(w.pid)}),
            h('td', {}, [stateBadge(w.status)]), h('td', {text: w.state}), h('td', {text: w.serves}),
            h('td', {}, [cur ? h('a', {href: trialLink(cur.exp_key === null ? '(none)' : String(cur.exp_key), cur.tid),
                                       text: (cur.exp_key === null ? '(none)' : cur.exp_key) + ' #' + cur.tid}) : null]),
            h('td', {text: age(w.heartbeat_age_s) + ' ago'}), h('td', {'class': 'num', text: String(w.n_done)}),
            h('td', {'class': 'num', text: String(w.n_error)})]);
        }));
        if (!data.workers.length) body.replaceChildren(h('tr', {}, [h('td', {colspan: 9, 'class': 'note', text: 'No worker has registered in the last hour.'})]));
      });
    });
  }

  // -- routing --------------------------------------------------------------------------
  api('/api/info').then(function (info) {
    INFO = info;
    document.getElementById('source').textContent = (info.source === 'file' ? 'file ' : '') + info.description +
      (info.actions ? ' · actions on' : ' · read-only');
    var params = new URLSearchParams(window.location.search), path = window.location.pathname;
    if (path === '/experiment') experimentPage(params.get('key') || '');
    else if (path === '/trial') trialPage(params.get('key') || '', params.get('tid'));
    else if (path === '/workers') workersPage();
    else experimentsPage();
  }, function (e) { main.replaceChildren(h('p', {'class': 'error-text', text: 'Cannot load the dashboard: ' + e.message})); });
})();
