// One-time enrolment link: register a security key or Windows Hello for the invited person.
(() => {
  const ctx = document.getElementById('invite-context');
  const errorBox = document.getElementById('js-error');
  function showError(message) {
    document.getElementById('js-error-message').textContent = message;
    errorBox.hidden = false;
    errorBox.focus();
  }
  async function post(url, body) {
    const res = await fetch(url, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/json', 'csrf-token': ctx.dataset.csrf },
      body: JSON.stringify(body),
    });
    const data = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(data.error?.message || 'That did not work.');
    return data;
  }
  for (const button of document.querySelectorAll('[data-invite-kind]')) {
    button.addEventListener('click', async () => {
      errorBox.hidden = true;
      try {
        const token = ctx.dataset.token;
        const { challengeId, options } = await post('/enrol/invite/options', {
          token,
          kind: button.dataset.inviteKind,
        });
        const credential = await navigator.credentials.create({
          publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options),
        });
        const done = await post('/enrol/invite/verify', { token, challengeId, response: credential.toJSON() });
        window.location.assign(done.redirect);
      } catch (err) {
        showError(err.name === 'NotAllowedError' ? 'Setting up the key was cancelled or timed out.' : err.message);
      }
    });
  }
})();
