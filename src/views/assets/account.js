// Account page: add a passkey or security key (WebAuthn registration).
(() => {
  const csrf = document.getElementById('account-context').dataset.csrf;
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
    if (!res.ok) throw new Error(data.error?.message || 'That did not work.');
    return data;
  }
  for (const button of document.querySelectorAll('[data-webauthn-kind]')) {
    button.addEventListener('click', async () => {
      errorBox.hidden = true;
      try {
        const kind = button.dataset.webauthnKind;
        const { challengeId, options } = await post('/account/webauthn/options', { kind });
        const credential = await navigator.credentials.create({
          publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options),
        });
        await post('/account/webauthn/verify', { challengeId, response: credential.toJSON() });
        window.location.reload();
      } catch (err) {
        showError(
          err.name === 'NotAllowedError'
            ? 'Adding the security key or passkey was cancelled or timed out.'
            : err.message,
        );
      }
    });
  }
})();
