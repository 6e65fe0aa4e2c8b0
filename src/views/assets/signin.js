// Sign-in page: smartcard through the local card agent, and WebAuthn (security keys, Windows Hello, passkeys).
// The passcode goes only to the card agent on this computer (127.0.0.1), never to the server.
(() => {
  const ctx = document.getElementById('signin-context');
  const csrf = ctx.dataset.csrf;
  const agent = ctx.dataset.agent;
  const returnTo = ctx.dataset.return;
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
      headers: { 'content-type': 'application/json', 'csrf-token': csrf },
      body: JSON.stringify(body),
    });
    const data = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(data.error?.message || 'Sign-in failed.');
    return data;
  }

  async function agentPost(path, body) {
    let res;
    try {
      res = await fetch(agent + path, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    } catch {
      throw new Error('The card agent is not running on this computer. Start OpenCIS Card Agent and try again.');
    }
    const data = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(data.error?.message || 'The card could not sign in.');
    return data;
  }

  document.getElementById('card-signin')?.addEventListener('click', async () => {
    errorBox.hidden = true;
    const passcodeInput = document.getElementById('card-passcode');
    try {
      const { challengeId, challenge } = await post('/signin/card/challenge', {});
      const signed = await agentPost('/v1/sign', { challenge, passcode: passcodeInput.value });
      passcodeInput.value = '';
      const done = await post('/signin/card/verify', { challengeId, ...signed, return: returnTo });
      window.location.assign(done.redirect);
    } catch (err) {
      passcodeInput.value = '';
      showError(err.message);
    }
  });

  document.getElementById('webauthn-signin')?.addEventListener('click', async () => {
    errorBox.hidden = true;
    try {
      const { challengeId, options } = await post('/signin/webauthn/options', {});
      const credential = await navigator.credentials.get({
        publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options),
      });
      const done = await post('/signin/webauthn/verify', {
        challengeId,
        response: credential.toJSON(),
        return: returnTo,
      });
      window.location.assign(done.redirect);
    } catch (err) {
      showError(
        err.name === 'NotAllowedError'
          ? 'Signing in with the security key or passkey was cancelled or timed out.'
          : err.message,
      );
    }
  });
})();
