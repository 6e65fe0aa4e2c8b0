// Self-service smartcard unlock: the code goes to the server, the new passcode only to the card agent on this computer.
(() => {
  const form = document.getElementById('unlock-form');
  if (!form) return;
  const errorBox = document.getElementById('js-error');
  function showError(message) {
    document.getElementById('js-error-message').textContent = message;
    errorBox.hidden = false;
    errorBox.focus();
  }
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    errorBox.hidden = true;
    const passcode = document.getElementById('new-passcode').value;
    if (passcode !== document.getElementById('new-passcode-again').value)
      return showError('The two passcodes are different.');
    try {
      const res = await fetch('/card/unlock/verify', {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'content-type': 'application/json', 'csrf-token': form.dataset.csrf },
        body: JSON.stringify({ userId: form.dataset.userId, code: document.getElementById('unlock-code').value }),
      });
      const data = await res.json().catch(() => ({}));
      if (!res.ok) throw new Error(data.error?.message || 'The code was not accepted.');
      let agentRes;
      try {
        agentRes = await fetch(`${form.dataset.agent}/v1/cards/passcode`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ grant: data.grant, passcode }),
        });
      } catch {
        throw new Error('The card agent is not running on this computer.');
      }
      const agentData = await agentRes.json().catch(() => ({}));
      if (!agentRes.ok) throw new Error(agentData.error?.message || 'The card could not be unlocked.');
      form.hidden = true;
      document.getElementById('unlock-done').hidden = false;
    } catch (err) {
      showError(err.message);
    }
  });
})();
