// RA desk smartcards: issue (start → card agent writes the card → the holder sets a passcode) and unlock. One-time
// grants come from the server; the passcode goes only to the card agent on this computer, never to the server.
(() => {
  for (const el of document.querySelectorAll('[data-no-js]')) el.hidden = true;
  for (const button of document.querySelectorAll('[data-print]')) {
    button.hidden = false;
    button.addEventListener('click', () => window.print());
  }
  const ctx = document.getElementById('card-context');
  if (!ctx) return;
  const errorBox = document.getElementById('js-error');
  const status = document.getElementById('card-status');
  let cardId = ctx.dataset.cardId || '';

  function showError(message) {
    status.textContent = '';
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
    if (!res.ok)
      throw new Error(data.error?.details?.problems?.[0]?.message || data.error?.message || 'That did not work.');
    return data;
  }

  async function agentPost(path, body) {
    let res;
    try {
      res = await fetch(ctx.dataset.agent + path, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    } catch {
      throw new Error('The card agent is not running on this computer. Start OpenCIS Card Agent and try again.');
    }
    const data = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(data.error?.message || 'The card agent could not do this.');
    return data;
  }

  function passcodeFrom(form) {
    const passcode = form.querySelector('#new-passcode').value;
    const again = form.querySelector('#new-passcode-again').value;
    form.querySelector('#new-passcode').value = '';
    form.querySelector('#new-passcode-again').value = '';
    if (!/^[0-9]{6,8}$/.test(passcode)) throw new Error('The passcode must be 6 to 8 digits.');
    if (passcode !== again) throw new Error('The two passcodes are different.');
    return passcode;
  }

  function done(faceLink) {
    status.textContent = '';
    const panel = document.getElementById('card-done');
    panel.hidden = false;
    const link = document.getElementById('card-face-link');
    if (link && faceLink) link.href = faceLink;
    (link || panel).focus();
  }

  const start = document.getElementById('card-start');
  const passcodeForm = document.getElementById('card-passcode');
  if (passcodeForm && cardId) {
    passcodeForm.hidden = false;
    passcodeForm.querySelector('#new-passcode').focus();
  }

  start?.addEventListener('submit', async (event) => {
    event.preventDefault();
    errorBox.hidden = true;
    const kind = start.querySelector('input[name=kind]:checked')?.value || 'physical';
    try {
      status.textContent = 'Starting…';
      const issue = await post(ctx.dataset.start, { kind });
      cardId = issue.cardId;
      status.textContent = 'Writing the card. Keep it in the reader…';
      await agentPost('/v1/cards/issue', { grant: issue.grant });
      status.textContent = 'The card is written. The holder now sets their passcode.';
      start.hidden = true;
      passcodeForm.hidden = false;
      passcodeForm.querySelector('#new-passcode').focus();
    } catch (err) {
      showError(err.message);
    }
  });

  passcodeForm?.addEventListener('submit', async (event) => {
    event.preventDefault();
    errorBox.hidden = true;
    try {
      const passcode = passcodeFrom(passcodeForm);
      status.textContent = 'Setting the passcode on the card…';
      const { grant } = await post(`/ra/cards/${cardId}/passcode-grant`, {});
      await agentPost('/v1/cards/passcode', { grant, passcode });
      passcodeForm.hidden = true;
      done(`/ra/cards/${cardId}/face`);
    } catch (err) {
      showError(err.message);
    }
  });

  const unlock = document.getElementById('card-unlock');
  unlock?.addEventListener('submit', async (event) => {
    event.preventDefault();
    errorBox.hidden = true;
    try {
      const reason = unlock.querySelector('#unlock-reason').value.trim();
      if (!reason) throw new Error('Enter the reason for unlocking the card.');
      const passcode = passcodeFrom(unlock);
      status.textContent = 'Unlocking the card…';
      const { grant } = await post(ctx.dataset.unlock, { reason });
      await agentPost('/v1/cards/passcode', { grant, passcode });
      unlock.hidden = true;
      done(null);
    } catch (err) {
      showError(err.message);
    }
  });
})();
