/**
 * The card agent's own CIS1 page, served by the agent at http://127.0.0.1:PORT/cis1: the user signs in with the card's
 * passcode, picks a role profile, switches role, signs out. Same-origin to the agent, so it needs no CORS; its calls
 * carry a custom header (CIS1_PAGE_HEADER) that no other site can send without a CORS preflight the agent refuses, and
 * the agent also checks their Origin (CSRF). No inline script (strict CSP); values are written with textContent.
 */
export const CIS1_PAGE_HEADER = 'x-opencis-agent';
export const CIS1_PAGE_HEADER_VALUE = 'cis1';

export const CIS1_PAGE_SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
};

export const CIS1_PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Smartcard sign-in – OpenCIS card agent</title>
</head>
<body>
<main>
<h1>Smartcard sign-in</h1>
<p id="message" role="status" aria-live="polite"></p>
<section id="signed-out" hidden>
<form id="signin-form">
<label for="passcode">Smartcard passcode</label>
<input id="passcode" name="passcode" type="password" inputmode="numeric" autocomplete="off" pattern="[0-9]{6,8}" required>
<button id="signin" type="submit">Sign in</button>
</form>
</section>
<section id="signed-in" hidden>
<p>Signed in as <strong id="user-id"></strong>. Removing your smartcard signs you out.</p>
<form id="role-form">
<fieldset>
<legend>The role you are working in</legend>
<div id="roles"></div>
</fieldset>
<button id="use-role" type="submit">Use this role</button>
</form>
<button id="signout" type="button">Sign out</button>
</section>
</main>
<script src="/cis1/page.js"></script>
</body>
</html>
`;

export const CIS1_PAGE_SCRIPT = `'use strict';
(function () {
  var headers = { 'content-type': 'application/json', '${CIS1_PAGE_HEADER}': '${CIS1_PAGE_HEADER_VALUE}' };
  var $ = function (id) { return document.getElementById(id); };
  var shownSession = '';

  function say(text) { $('message').textContent = text; }

  function call(method, path, body) {
    return fetch(path, { method: method, headers: headers, body: body === undefined ? undefined : JSON.stringify(body) })
      .then(function (res) {
        return res.json().then(function (json) {
          if (!res.ok) throw new Error((json && json.error && json.error.message) || 'The card agent refused.');
          return json;
        });
      });
  }

  function render(view) {
    $('signed-out').hidden = view.signedIn;
    $('signed-in').hidden = !view.signedIn;
    if (!view.signedIn) { shownSession = ''; return; }
    $('user-id').textContent = view.userId;
    var key = view.sessionId + ':' + view.selectedRoleId + ':' + view.roles.length;
    if (key === shownSession) return;
    shownSession = key;
    var list = $('roles');
    while (list.firstChild) list.removeChild(list.firstChild);
    view.roles.forEach(function (role, i) {
      var id = 'role-' + i;
      var item = document.createElement('div');
      var input = document.createElement('input');
      input.type = 'radio';
      input.name = 'role';
      input.id = id;
      input.value = role.personRoleId;
      input.checked = role.personRoleId === view.selectedRoleId;
      var label = document.createElement('label');
      label.htmlFor = id;
      label.textContent = role.roleName + ' – ' + role.positionName + ', ' + role.orgName + ' (' + role.orgCode + ')';
      item.appendChild(input);
      item.appendChild(label);
      list.appendChild(item);
    });
    if (!view.selectedRoleId) say('Choose the role you are working in.');
    else if (!view.selectedRoleEffective) say('Your role has ended. Choose another role.');
  }

  function refresh() { return call('GET', '/v1/cis1/session').then(render).catch(function (e) { say(e.message); }); }

  $('signin-form').addEventListener('submit', function (event) {
    event.preventDefault();
    var passcode = $('passcode');
    say('Checking your passcode on the card…');
    call('POST', '/v1/cis1/signin', { passcode: passcode.value })
      .then(function (view) { passcode.value = ''; say('Signed in.'); render(Object.assign({ signedIn: true }, view)); })
      .catch(function (e) { passcode.value = ''; say(e.message); });
  });
  $('role-form').addEventListener('submit', function (event) {
    event.preventDefault();
    var chosen = document.querySelector('input[name=role]:checked');
    if (!chosen) { say('Choose a role.'); return; }
    call('POST', '/v1/cis1/role', { personRoleId: chosen.value })
      .then(function (view) { say('Role selected.'); shownSession = ''; render(Object.assign({ signedIn: true }, view)); })
      .catch(function (e) { say(e.message); });
  });
  $('signout').addEventListener('click', function () {
    call('POST', '/v1/cis1/signout', {}).then(function () { say('Signed out.'); return refresh(); })
      .catch(function (e) { say(e.message); });
  });
  refresh();
  setInterval(refresh, 5000);
})();
`;
