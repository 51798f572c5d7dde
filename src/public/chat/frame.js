// postdesk chat frame. Plain text only (lines are added with textContent),
// keyboard usable (forms, Enter sends, Shift+Enter breaks the line), new
// lines announced (aria-live on the list).
//
// The visitor's token lives in this frame's localStorage (postdesk's
// origin; browsers partition it per embedding site), not in a cookie: a
// third-party cookie needs SameSite=None; Secure, which plain-http
// installations cannot set and browsers increasingly refuse anyway.
(function () {
  'use strict';
  var root = document.getElementById('chat');
  var site = root.getAttribute('data-site');
  var storeKey = 'postdesk-chat-' + site;
  var $ = function (id) { return document.getElementById(id); };
  var state = { visitor: null, address: null, name: '', last: 0, source: null, polling: false, ended: false };

  function saved() {
    try { return JSON.parse(window.localStorage.getItem(storeKey) || 'null'); } catch (e) { return null; }
  }
  function save() {
    try {
      window.localStorage.setItem(storeKey, JSON.stringify({ visitor: state.visitor, address: state.address, name: state.name }));
    } catch (e) { /* storage refused: the chat lasts as long as the frame */ }
  }
  function status(text) { $('status').textContent = text; }

  function request(method, path, body) {
    return fetch(path, {
      method: method,
      headers: { 'Content-Type': 'application/json' },
      body: body ? JSON.stringify(body) : undefined,
      credentials: 'omit',
      cache: 'no-store'
    }).then(function (r) {
      if (r.ok) { return r.status === 204 ? null : r.json(); }
      return r.text().then(function (t) { throw new Error(t || ('HTTP ' + r.status)); });
    });
  }

  function show(line) {
    if (line.id <= state.last) { return; }
    state.last = line.id;
    var li = document.createElement('li');
    li.className = line.who === 'agent' ? 'agent' : 'visitor';
    var who = document.createElement('span');
    who.className = 'who';
    who.textContent = line.who === 'agent' ? (line.name || 'Support') : 'You';
    var text = document.createElement('span');
    text.className = 'text';
    text.textContent = line.text;
    li.appendChild(who);
    li.appendChild(text);
    $('lines').appendChild(li);
    li.scrollIntoView({ block: 'end' });
  }

  function query() {
    return '?site=' + encodeURIComponent(site) + '&v=' + encodeURIComponent(state.visitor);
  }

  // Server-sent events; the browser reconnects by itself and sends
  // Last-Event-ID, so nothing is missed across a restart of postdesk.
  function listen() {
    if (!window.EventSource) { poll(); return; }
    var es = new EventSource('/chat/stream' + query() + '&after=' + state.last);
    state.source = es;
    var failures = 0;
    es.addEventListener('line', function (ev) {
      failures = 0;
      status('');
      show(JSON.parse(ev.data));
    });
    es.addEventListener('open', function () { failures = 0; status(''); });
    es.addEventListener('error', function () {
      failures += 1;
      if (es.readyState === EventSource.CLOSED || failures > 10) {
        es.close();
        state.source = null;
        if (!state.ended) { poll(); }
      } else {
        status('Reconnecting…');
      }
    });
  }

  // Long-polling fallback.
  function poll() {
    if (state.polling || state.ended) { return; }
    state.polling = true;
    var next = function () {
      if (state.ended) { state.polling = false; return; }
      fetch('/chat/poll' + query() + '&after=' + state.last, { credentials: 'omit', cache: 'no-store' })
        .then(function (r) { if (!r.ok) { throw new Error('HTTP ' + r.status); } return r.json(); })
        .then(function (j) { status(''); j.lines.forEach(show); next(); })
        .catch(function () { status('Reconnecting…'); setTimeout(next, 2000); });
    };
    next();
  }

  function started(reply) {
    state.visitor = reply.visitor;
    save();
    $('start-form').hidden = true;
    $('lines').hidden = false;
    $('send-form').hidden = false;
    $('leave').hidden = false;
    $('text').focus();
    listen();
  }

  function start(body) {
    status('Connecting…');
    body.site = site;
    if (state.visitor) { body.visitor = state.visitor; }
    return request('POST', '/chat/start', body).then(function (reply) {
      status('');
      started(reply);
    }).catch(function (e) { status(e.message); $('start-form').hidden = false; });
  }

  $('start-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    state.address = $('address').value.trim();
    state.name = $('name').value.trim();
    start({ address: state.address, name: state.name });
  });

  $('send-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var text = $('text').value;
    if (!text.trim()) { return; }
    request('POST', '/chat/send', { site: site, visitor: state.visitor, text: text })
      .then(function () { $('text').value = ''; status(''); })
      .catch(function (e) { status(e.message); });
  });

  $('text').addEventListener('keydown', function (ev) {
    if (ev.key === 'Enter' && !ev.shiftKey) {
      ev.preventDefault();
      $('send-form').requestSubmit();
    }
  });

  $('leave').addEventListener('click', function () {
    state.ended = true;
    if (state.source) { state.source.close(); }
    request('POST', '/chat/leave', { site: site, visitor: state.visitor })
      .then(function () {
        status('Thank you. We have mailed you the transcript; reply to it to continue.');
        $('send-form').hidden = true;
        $('leave').hidden = true;
      })
      .catch(function (e) { status(e.message); });
  });

  // A verified identity from the embedding page (see loader.js).
  window.addEventListener('message', function (ev) {
    if (ev.source !== window.parent || !ev.data || !ev.data.postdeskIdentity) { return; }
    if (state.visitor && state.source) { return; }
    start({ identity: ev.data.postdeskIdentity });
  });

  if (root.getAttribute('data-open') !== '1') {
    $('closed').hidden = false;
    return;
  }
  var preset = root.getAttribute('data-visitor');
  if (preset) {
    state.visitor = preset;
    state.address = root.getAttribute('data-address');
    start({ address: state.address });
    return;
  }
  var before = saved();
  if (before && before.visitor && before.address) {
    state.visitor = before.visitor;
    state.address = before.address;
    state.name = before.name || '';
    start({ address: state.address, name: state.name });
    return;
  }
  $('start-form').hidden = false;
})();
