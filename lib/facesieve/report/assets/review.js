/* facesieve review page: reasons, filters, pages and decisions over data/index.js.
 *
 * Data arrives through script tags (facesieve.index, facesieve.chunk): Chromium refuses fetch()
 * of file:// URLs. Every data string is put on the page with textContent or setAttribute,
 * never as HTML. Decisions live in localStorage under the report id and export in the format of
 * facesieve/apply/decisions.py.
 */
(function () {
  'use strict';
  var F = (window.facesieve = window.facesieve || {});
  var X = null, P = 60, KEY = '';
  var chunks = {}, waiting = {}, failed = {}, asked = {};
  var st = { reason: '', action: '', label: '', decided: '', min: '', max: '', page: 0 };
  var shown = [], dec = {}, byId = null, token = 0, $ = {}, observer = null;
  F.sheetsRequested = [];
  F.errors = 0;
  window.addEventListener('error', function () {
    F.errors++;
    document.body.dataset.errors = F.errors;
  });
  F.index = function (doc) { X = doc; };
  F.chunk = function (n, items) {
    chunks[n] = items;
    (waiting[n] || []).forEach(function (f) { f(); });
    delete waiting[n];
  };

  function el(tag, props, kids) {
    var e = document.createElement(tag);
    Object.keys(props || {}).forEach(function (k) {
      if (k === 'text') e.textContent = props[k];
      else if (k === 'cls') e.className = props[k];
      else e.setAttribute(k, props[k]);
    });
    (kids || []).forEach(function (c) {
      if (c !== null && c !== undefined) e.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
    });
    return e;
  }
  function v() { return '?v=' + encodeURIComponent(X.report); }
  function status(text) { $.status.textContent = text; }

  /* ---------- data chunks ---------- */
  function load(n, done) {
    if (chunks[n] || failed[n]) return done();
    if (waiting[n]) return waiting[n].push(done);
    waiting[n] = [done];
    var s = el('script', { src: 'data/chunk-' + (n + 1) + '.js' + v() });
    s.onerror = function () {
      failed[n] = true;
      status('could not load data/chunk-' + (n + 1) + '.js');
      (waiting[n] || []).forEach(function (f) { f(); });
      delete waiting[n];
    };
    document.head.appendChild(s);
  }
  function loadAll(ns, done) {
    var left = ns.length;
    if (!left) return done();
    ns.forEach(function (n) { load(n, function () { if (--left === 0) done(); }); });
  }

  /* ---------- thumbnails: a sheet is asked for when one of its cells is on screen ---------- */
  function sheetUrl(n) { return 'thumbs/sheet-' + (n + 1) + '.jpg' + v(); }
  function reveal(th) {
    var n = +th.dataset.sheet;
    if (!asked[n]) {
      asked[n] = true;
      F.sheetsRequested.push(n + 1);
      var probe = new Image();
      probe.onerror = function () {
        document.body.dataset.brokenImages = (+document.body.dataset.brokenImages || 0) + 1;
      };
      probe.src = sheetUrl(n);
    }
    th.style.backgroundImage = 'url("' + sheetUrl(n) + '")';
  }
  function thumb(n, cell) {
    if (cell < 0) return el('div', { cls: 'th none', text: 'no image' });
    var th = el('div', { cls: 'th' });
    th.dataset.sheet = n;
    th.style.backgroundPosition = -(cell % X.cols) * X.cell + 'px ' + -Math.floor(cell / X.cols) * X.cell + 'px';
    if (observer) observer.observe(th); else reveal(th);
    return th;
  }
  function figure(n, uri, cell, caption) {
    return el('figure', { title: uri }, [thumb(n, cell), el('figcaption', { text: caption || base(uri) })]);
  }
  function base(uri) { return uri.slice(uri.lastIndexOf('/') + 1); }

  /* ---------- decisions ---------- */
  function action(k) { return X.actions[X.a[k]]; }
  function suggested(k) { return X.s[k] >= 0 ? X.labels[X.s[k]] : ''; }
  function accepted(k) {
    var a = action(k);
    if (a === 'review') return null;
    if (a === 'relabel') return suggested(k) ? ['relabel', suggested(k)] : null;
    return [a];
  }
  function save() {
    try {
      localStorage.setItem(KEY, JSON.stringify(dec));
      status(Object.keys(dec).length + ' decisions (saved in this browser)');
    } catch (e) {
      status('could not save in this browser (' + e.name + '): export your decisions');
    }
  }
  function restore() {
    var d = null;
    try { d = JSON.parse(localStorage.getItem(KEY) || '{}'); } catch (e) { d = {}; }
    Object.keys(d || {}).forEach(function (k) {
      var x = d[k];
      if (+k >= 0 && +k < X.n && Array.isArray(x) && valid(x[0], x[1])) dec[k] = x;
    });
  }
  function valid(a, label) {
    if (a === 'relabel') return typeof label === 'string' && label.trim() !== '';
    return a === 'keep' || a === 'drop';
  }
  function decide(k, d) {
    if (d) dec[k] = d; else delete dec[k];
  }
  function paint(card, k) {
    var d = dec[k], s = card.querySelector('.state');
    card.classList.toggle('decided', !!d);
    card.dataset.decision = d ? d[0] : '';
    s.textContent = d ? 'decided: ' + d[0] + (d[0] === 'relabel' ? ' to ' + d[1] : '') : '';
  }
  function exported() {
    var list = Object.keys(dec).map(Number).sort(function (a, b) { return a - b; }).map(function (k) {
      var d = dec[k], e = { image_id: X.id[k], action: d[0] };
      if (d[0] === 'relabel') e.label = d[1];
      if (typeof d[2] === 'string') e.note = d[2];
      return e;
    });
    return { format: 'facesieve-decisions', version: 1, report: X.report, decisions: list };
  }
  function download() {
    var blob = new Blob([JSON.stringify(exported(), null, 1) + '\n'], { type: 'application/json' });
    var a = el('a', { href: URL.createObjectURL(blob), download: 'decisions.json' });
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(function () { URL.revokeObjectURL(a.href); }, 10000);
  }
  function importText(text) {
    var doc = JSON.parse(text);
    if (!doc || doc.format !== 'facesieve-decisions') throw new Error('not a facesieve decisions file');
    if (doc.version !== 1) throw new Error('version ' + doc.version + ', this page reads 1');
    if (!Array.isArray(doc.decisions)) throw new Error("'decisions' must be a list");
    if (!byId) { byId = {}; X.id.forEach(function (id, k) { byId[id] = k; }); }
    var found = {}, unknown = 0;
    doc.decisions.forEach(function (e, i) {
      if (!e || typeof e.image_id !== 'string' || !valid(e.action, e.label))
        throw new Error('decision ' + i + ' is not valid');
      if (!(e.image_id in byId)) { unknown++; return; }
      var d = e.action === 'relabel' ? ['relabel', e.label.trim()] : [e.action];
      if (typeof e.note === 'string') { if (d.length < 2) d.push(null); d.push(e.note); }
      found[byId[e.image_id]] = d;
    });
    Object.keys(found).forEach(function (k) { dec[k] = found[k]; });
    save();
    var other = doc.report && doc.report !== X.report ? ' (exported from report ' + doc.report + ')' : '';
    status('imported ' + Object.keys(found).length + ' decisions' + (unknown ? ', ' + unknown + ' images not in this report' : '') + other);
    show();
  }

  /* ---------- label suggestions: the known labels that hold what was typed ---------- */
  function suggest(input) {
    var q = input.value.toLowerCase(), first = [], then = [];
    for (var i = 0; i < X.labels.length && first.length < 50; i++) {
      var at = X.labels[i].toLowerCase().indexOf(q);
      if (at === 0) first.push(X.labels[i]); else if (at > 0 && then.length < 50) then.push(X.labels[i]);
    }
    $.dl.replaceChildren.apply($.dl, first.concat(then).slice(0, 50).map(function (x) { return el('option', { value: x }); }));
  }

  /* ---------- one item ---------- */
  function card(k) {
    var n = Math.floor(k / P), c = (chunks[n] || [])[k % P];
    var box = el('div', { cls: 'card', 'data-k': k, 'data-id': X.id[k] });
    if (!c) return el('div', { cls: 'card', text: 'data for this item could not be loaded' });
    var figs = [figure(n, c.u, c.t, base(c.u))];
    (c.g || []).forEach(function (g) {
      figs.push(el('div', { cls: 'grp' }, [el('b', { text: g[0] }), el('div', { cls: 'row' },
        g[1].map(function (f) { return figure(n, f[0], f[1]); }))]));
    });
    var a = action(k), meta = [el('span', { cls: 'act ' + a, text: a })];
    X.reasons.forEach(function (r, i) {
      if (X.r[k] & (1 << i)) {
        var b = el('button', { cls: 'reason', type: 'button', text: r + (c.rs && r in c.rs ? ' ' + c.rs[r].toFixed(3) : '') });
        b.onclick = function () { go(r); };
        meta.push(b);
      }
    });
    if (X.l[k] >= 0) meta.push(el('span', { text: 'label: ' + X.labels[X.l[k]] }));
    if (suggested(k)) meta.push(el('span', { text: 'suggested: ' + suggested(k) }));
    if (c.e) meta.push(el('span', { cls: 'muted', text: c.e }));
    box.appendChild(el('div', { cls: 'row' }, figs));
    box.appendChild(el('div', { cls: 'meta', title: c.u }, meta));
    box.appendChild(controls(k, box));
    paint(box, k);
    return box;
  }
  function controls(k, box) {
    var ctl = el('div', { cls: 'ctl' });
    function button(name, d) {
      var b = el('button', { type: 'button', 'data-do': name, text: name });
      b.onclick = function () { decide(k, d()); save(); paint(box, k); };
      ctl.appendChild(b);
    }
    if (action(k) === 'review') {
      button('keep', function () { return ['keep']; });
      button('drop', function () { return ['drop']; });
    } else {
      var acc = accepted(k);
      if (acc) button('accept', function () { return acc; });
      button('reject', function () { return ['keep']; });
    }
    var input = el('input', { list: 'fs-labels', placeholder: 'label', 'aria-label': 'new label' });
    input.value = suggested(k) || (dec[k] && dec[k][0] === 'relabel' ? dec[k][1] : '');
    input.addEventListener('input', function () { suggest(input); });
    input.addEventListener('focus', function () { suggest(input); });
    ctl.appendChild(input);
    button('relabel', function () {
      var label = input.value.trim();
      if (!label) { status('type a label to relabel to'); return dec[k]; }
      return ['relabel', label];
    });
    button('undo', function () { return null; });
    ctl.appendChild(el('span', { cls: 'state' }));
    return ctl;
  }

  /* ---------- filters and pages ---------- */
  function filter() {
    var rb = st.reason ? 1 << X.reasons.indexOf(st.reason) : 0;
    var ac = st.action ? X.actions.indexOf(st.action) : -1;
    var lc = st.label ? X.labels.indexOf(st.label) : -2;
    var lo = st.min === '' ? -Infinity : +st.min, hi = st.max === '' ? Infinity : +st.max;
    var scored = st.min !== '' || st.max !== '';
    shown = [];
    for (var k = 0; k < X.n; k++) {
      if (rb && !(X.r[k] & rb)) continue;
      if (ac >= 0 && X.a[k] !== ac) continue;
      if (lc !== -2 && X.l[k] !== lc) continue;
      if (scored && (X.sc[k] === null || X.sc[k] < lo || X.sc[k] > hi)) continue;
      if (st.decided === 'yes' && !(k in dec)) continue;
      if (st.decided === 'no' && k in dec) continue;
      shown.push(k);
    }
  }
  function pageCount() { return Math.max(1, Math.ceil(shown.length / P)); }
  function onPage() { return shown.slice(st.page * P, (st.page + 1) * P); }
  function show() {
    st.page = Math.min(Math.max(0, st.page), pageCount() - 1);
    var ks = onPage(), mine = ++token, need = {};
    ks.forEach(function (k) { need[Math.floor(k / P)] = 1; });
    $.count.textContent = shown.length + ' of ' + X.n + ' items';
    $.pageinfo.textContent = 'page ' + (st.page + 1) + ' of ' + pageCount();
    $.go.value = st.page + 1;
    $.desc.textContent = st.reason ? st.reason + ': ' + X.descriptions[st.reason] : '';
    Array.prototype.forEach.call($.nav.children, function (b) { b.classList.toggle('on', b.dataset.reason === st.reason); });
    loadAll(Object.keys(need).map(Number), function () {
      if (mine !== token) return;
      if (observer) observer.disconnect();
      $.cards.replaceChildren.apply($.cards, ks.map(card));
      document.body.dataset.shown = shown.length;
      document.body.dataset.page = st.page + 1;
      document.body.dataset.rendered = mine;
    });
  }
  function refilter() { st.page = 0; filter(); show(); }
  function go(reason) { st.reason = reason; $.reason.value = reason; refilter(); window.scrollTo(0, 0); }
  function bulk(keys, make) { keys.forEach(function (k) { decide(k, make(k)); }); save(); show(); }

  /* ---------- the panel ---------- */
  function select(id, label, values) {
    var s = el('select', { id: id, 'aria-label': label }, [el('option', { value: '', text: 'any ' + label })].concat(
      values.map(function (x) { return el('option', { value: x[0], text: x[1] }); })));
    return s;
  }
  function button(id, text, f) { var b = el('button', { id: id, type: 'button', text: text }); b.onclick = f; return b; }
  function build() {
    var counts = X.reasons.map(function (r, i) { var c = 0; for (var k = 0; k < X.n; k++) if (X.r[k] & (1 << i)) c++; return c; });
    $.nav = el('nav', { id: 'reasons' }, [el('button', { type: 'button', 'data-reason': '', text: 'all (' + X.n + ')' })].concat(
      X.reasons.map(function (r, i) { return counts[i] ? el('button', { type: 'button', 'data-reason': r, text: r + ' (' + counts[i] + ')' }) : null; })));
    Array.prototype.forEach.call($.nav.children, function (b) { b.onclick = function () { go(b.dataset.reason); }; });
    $.reason = select('f-reason', 'reason', X.reasons.filter(function (r, i) { return counts[i]; }).map(function (r) { return [r, r]; }));
    $.action = select('f-action', 'action', X.actions.map(function (a) { return [a, a]; }));
    $.decided = select('f-decided', 'decision', [['no', 'undecided'], ['yes', 'decided']]);
    $.label = el('input', { id: 'f-label', list: 'fs-labels', placeholder: 'label (exact)', 'aria-label': 'label' });
    $.min = el('input', { id: 'f-min', type: 'number', step: 'any', placeholder: 'score from', 'aria-label': 'lowest score' });
    $.max = el('input', { id: 'f-max', type: 'number', step: 'any', placeholder: 'score to', 'aria-label': 'highest score' });
    [['reason', $.reason], ['action', $.action], ['decided', $.decided], ['label', $.label], ['min', $.min], ['max', $.max]].forEach(function (p) {
      p[1].addEventListener('change', function () { st[p[0]] = p[1].value.trim(); refilter(); });
    });
    $.label.addEventListener('input', function () { suggest($.label); });
    $.dl = el('datalist', { id: 'fs-labels' });
    $.count = el('span', { id: 'count' });
    $.pageinfo = el('span', { id: 'pageinfo' });
    $.go = el('input', { id: 'page-go', type: 'number', min: '1', 'aria-label': 'page', style: 'width:70px' });
    $.go.addEventListener('change', function () { st.page = (+$.go.value || 1) - 1; show(); });
    $.status = el('span', { id: 'status' });
    $.desc = el('p', { id: 'desc', cls: 'muted' });
    $.cards = el('div', { id: 'cards', cls: 'cards' });
    var file = el('input', { id: 'import', type: 'file', accept: '.json,application/json', 'aria-label': 'import decisions' });
    file.addEventListener('change', function () {
      var f = file.files[0];
      if (!f) return;
      f.text().then(importText).catch(function (e) { status('import failed: ' + e.message); });
      file.value = '';
    });
    var bar = el('div', { id: 'bar' }, [
      $.count, button('prev', '\u2190 previous', function () { st.page--; show(); }), $.pageinfo, $.go,
      button('next', 'next \u2192', function () { st.page++; show(); }),
      button('accept-page', 'accept page', function () { bulk(onPage(), function (k) { return accepted(k) || dec[k]; }); }),
      button('reject-page', 'reject page', function () { bulk(onPage(), function () { return ['keep']; }); }),
      button('accept-all', 'accept all matching', function () { bulk(shown, function (k) { return accepted(k) || dec[k]; }); }),
      button('undo-page', 'undo page', function () { bulk(onPage(), function () { return null; }); }),
      button('export', 'Export decisions', download), el('label', {}, ['import ', file]), $.status]);
    var filters = el('div', { id: 'filters' }, [$.reason, $.action, $.label, $.min, $.max, $.decided,
      button('f-clear', 'clear filters', function () {
        ['reason', 'action', 'label', 'min', 'max', 'decided'].forEach(function (k) { st[k] = ''; $[k].value = ''; });
        refilter();
      })]);
    var root = document.getElementById('review');
    root.replaceChildren(el('h2', { text: 'Review: ' + X.n + ' flagged images' }), $.nav, filters, bar, $.desc, $.cards, $.dl);
  }

  function start() {
    if (!X) { document.getElementById('review').textContent = 'data/index.js did not load: keep the data/ folder next to index.html'; return; }
    P = X.per_page;
    KEY = 'facesieve-decisions:' + X.report;
    if ('IntersectionObserver' in window) {
      observer = new IntersectionObserver(function (entries) {
        entries.forEach(function (e) { if (e.isIntersecting) { observer.unobserve(e.target); reveal(e.target); } });
      }, { rootMargin: '300px' });
    }
    build();
    restore();
    filter();
    show();
    status(Object.keys(dec).length + ' decisions (saved in this browser)');
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start); else start();
})();
