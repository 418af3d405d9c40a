// onebox's serial console page: xterm.js (the system's package, bundled by onebox at
// /console/serial/xterm/xterm.js) joined to the console's websocket on this same host.
(function () {
  'use strict';
  var status = document.getElementById('status');
  function state(name, text) {
    document.body.setAttribute('data-state', name);
    status.textContent = text;
  }
  var token = new URLSearchParams(window.location.search).get('token') || '';
  // The token is a credential: keep it out of the history once it has been read.
  window.history.replaceState(null, '', window.location.pathname);
  var X = window.OneboxXterm;
  var Terminal = X && (X.Terminal || X);
  if (typeof Terminal !== 'function') {
    state('closed', 'xterm.js is not available');
    return;
  }
  var term = new Terminal({ cursorBlink: true, scrollback: 5000 });
  term.open(document.getElementById('terminal'));
  term.focus();

  var scheme = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
  var ws = new WebSocket(scheme + '//' + window.location.host +
    '/console/serial?token=' + encodeURIComponent(token), ['binary']);
  ws.binaryType = 'arraybuffer';
  var decoder = new TextDecoder('utf-8');
  var encoder = new TextEncoder();
  ws.onopen = function () { state('connected', 'connected'); };
  ws.onmessage = function (e) {
    term.write(typeof e.data === 'string' ? e.data
      : decoder.decode(new Uint8Array(e.data), { stream: true }));
  };
  ws.onclose = function () {
    state('closed', 'disconnected');
    term.write('\r\n[the console session has ended]\r\n');
  };
  function send(data) {
    if (ws.readyState === WebSocket.OPEN) {
      ws.send(encoder.encode(data));
    }
  }
  // xterm.js 4 and later name the event onData; 3.x has on('data').
  if (typeof term.onData === 'function') {
    term.onData(send);
  } else {
    term.on('data', send);
  }
}());
