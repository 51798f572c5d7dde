// postdesk chat loader: <script src="https://help.example.com/chat/loader.js?site=ID" async></script>
// Adds a "Chat with us" button and, when pressed, an iframe of the chat.
// The page never sees the conversation: it lives in the frame, on
// postdesk's origin. A site that knows its visitor may add the identity
// its backend signed: data-address, data-expires, data-nonce, data-signature.
(function () {
  'use strict';
  var me = document.currentScript;
  if (!me) { return; }
  var src = new URL(me.src);
  var site = src.searchParams.get('site') || '';
  var origin = src.origin;
  var frame = null;
  var button = document.createElement('button');
  button.type = 'button';
  button.id = 'postdesk-chat-button';
  button.textContent = me.getAttribute('data-label') || 'Chat with us';
  button.setAttribute('aria-expanded', 'false');
  button.setAttribute('aria-controls', 'postdesk-chat-frame');
  button.style.position = 'fixed';
  button.style.right = '1rem';
  button.style.bottom = '1rem';
  button.style.zIndex = '2147483000';

  function identity() {
    var keys = ['address', 'expires', 'nonce', 'signature'];
    var id = {};
    for (var i = 0; i < keys.length; i++) {
      var v = me.getAttribute('data-' + keys[i]);
      if (!v) { return null; }
      id[keys[i]] = keys[i] === 'expires' ? Number(v) : v;
    }
    return id;
  }

  function open() {
    if (!frame) {
      frame = document.createElement('iframe');
      frame.id = 'postdesk-chat-frame';
      frame.title = 'Chat with us';
      frame.src = origin + '/chat/frame?site=' + encodeURIComponent(site);
      frame.style.position = 'fixed';
      frame.style.right = '1rem';
      frame.style.bottom = '4rem';
      frame.style.width = '22rem';
      frame.style.height = '30rem';
      frame.style.maxWidth = 'calc(100vw - 2rem)';
      frame.style.border = '1px solid #888';
      frame.style.background = '#fff';
      frame.style.zIndex = '2147483000';
      frame.addEventListener('load', function () {
        var id = identity();
        // Only postdesk's origin may receive the identity.
        if (id && frame.contentWindow) {
          frame.contentWindow.postMessage({ postdeskIdentity: id }, origin);
        }
      });
      document.body.appendChild(frame);
      button.setAttribute('aria-expanded', 'true');
      return;
    }
    frame.hidden = !frame.hidden;
    button.setAttribute('aria-expanded', frame.hidden ? 'false' : 'true');
    if (!frame.hidden) { frame.focus(); }
  }

  button.addEventListener('click', open);
  function attach() { document.body.appendChild(button); }
  if (document.body) { attach(); } else { document.addEventListener('DOMContentLoaded', attach); }
})();
