// Smartcard renewal — by the holder (self-renewal) or at the RA desk: the card signs a renewal challenge through the card
// agent on this computer (proof that the card and its passcode are here), the server issues a new certificate for the
// key on the card, and the agent writes it to the card. The passcode goes only to the card agent (127.0.0.1), never to
// the server. The form says where to ask (data-challenge-url, data-renew-url); at the RA desk it also has the RA's
// confirmation that they checked the holder in person (#renew-holder-seen), sent as holderSeen.
(() => {
  const form = document.getElementById('renew-form');
  if (!form) return;
  const agent = form.dataset.agent;
  const csrf = form.dataset.csrf;
  const { challengeUrl, renewUrl } = form.dataset;
  const holderSeen = document.getElementById('renew-holder-seen');
  const passcodeInput = document.getElementById('renew-passcode');
  const submit = document.getElementById('renew-submit');
  const errorBox = document.getElementById('js-error');
  const progress = document.getElementById('renew-progress');
  // A certificate the server has issued for this card that the card does not hold yet: only writing it is left.
  let pending = null;

  class PasscodeError extends Error {}
  class HolderSeenError extends Error {}

  function clearError() {
    errorBox.hidden = true;
    document.getElementById('renew-passcode-group').classList.remove('nhsuk-form-group--error');
    document.getElementById('renew-passcode-error').hidden = true;
    passcodeInput.classList.remove('nhsuk-input--error');
    passcodeInput.setAttribute('aria-describedby', 'renew-passcode-hint');
    if (holderSeen) {
      document.getElementById('renew-holder-seen-group').classList.remove('nhsuk-form-group--error');
      document.getElementById('renew-holder-seen-error').hidden = true;
    }
  }

  function showError(err) {
    progress.textContent = '';
    const link = document.getElementById('js-error-message');
    link.textContent = err.message;
    link.setAttribute('href', err instanceof HolderSeenError ? '#renew-holder-seen' : '#renew-passcode');
    if (err instanceof HolderSeenError) {
      document.getElementById('renew-holder-seen-group').classList.add('nhsuk-form-group--error');
      document.getElementById('renew-holder-seen-error').hidden = false;
    }
    if (err instanceof PasscodeError) {
      document.getElementById('renew-passcode-group').classList.add('nhsuk-form-group--error');
      document.getElementById('renew-passcode-error-text').textContent = err.message;
      document.getElementById('renew-passcode-error').hidden = false;
      passcodeInput.classList.add('nhsuk-input--error');
      passcodeInput.setAttribute('aria-describedby', 'renew-passcode-hint renew-passcode-error');
    }
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
    if (!res.ok) throw new Error(data.error?.message || 'The card could not be renewed. Try again.');
    return data;
  }

  async function agentCall(path, body) {
    let res;
    try {
      res = await fetch(
        agent + path,
        body === undefined
          ? {}
          : {
              method: 'POST',
              headers: { 'content-type': 'application/json' },
              body: JSON.stringify(body),
            },
      );
    } catch {
      throw new Error('The card agent is not running on this computer. Start OpenCIS Card Agent and try again.');
    }
    const data = await res.json().catch(() => ({}));
    if (!res.ok) {
      const message = data.error?.message || 'The card did not answer. Check it is in the reader and try again.';
      const code = data.error?.code || '';
      throw code.startsWith('card.passcode') ? new PasscodeError(message) : new Error(message);
    }
    return data;
  }

  function longDate(iso) {
    return new Date(iso).toLocaleDateString('en-GB', {
      day: 'numeric',
      month: 'long',
      year: 'numeric',
      timeZone: 'Europe/London',
    });
  }

  async function writeToCard(passcode) {
    progress.textContent = 'Writing the new certificate to your card…';
    await agentCall('/v1/cards/certificate', { certificate: pending.certificate, passcode });
    const expiry = pending.notAfter;
    pending = null;
    progress.textContent = '';
    document.getElementById('renew-section').hidden = true;
    document.getElementById('renew-state').hidden = true;
    if (expiry) {
      document.getElementById('renew-new-expiry').textContent = longDate(expiry);
      document.getElementById('card-expiry').textContent = longDate(expiry);
    }
    const done = document.getElementById('renew-done');
    done.hidden = false;
    done.focus();
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearError();
    const passcode = passcodeInput.value;
    if (holderSeen && !holderSeen.checked && !pending) {
      showError(new HolderSeenError('Confirm you have checked the holder in person'));
      return;
    }
    if (!/^[0-9]{6,8}$/.test(passcode)) {
      showError(new PasscodeError('Enter your smartcard passcode: 6 to 8 digits'));
      return;
    }
    submit.disabled = true;
    try {
      if (!pending) {
        progress.textContent = 'Checking the card…';
        const { challengeId, challenge } = await post(challengeUrl, {});
        const signed = await agentCall('/v1/sign', { challenge, passcode });
        progress.textContent = 'Renewing the certificate…';
        const renewed = await post(renewUrl, {
          challengeId,
          ...signed,
          ...(holderSeen ? { holderSeen: holderSeen.checked } : {}),
        });
        // From here the server has replaced the old certificate: the new one must reach the card.
        pending = { certificate: renewed.certificate, notAfter: renewed.card?.certificateNotAfter };
      }
      await writeToCard(passcode);
    } catch (err) {
      if (pending) {
        submit.textContent = 'Write the new certificate to the card';
        err.message = `The card was renewed, but the new certificate could not be written to it: ${err.message} Keep the card in the reader and try again.`;
      }
      showError(err);
    } finally {
      passcodeInput.value = '';
      submit.disabled = false;
    }
  });

  // A renewal whose certificate never reached the card: the card in the reader still holds the certificate the
  // server replaced. Offer to write the current one.
  const { currentCertificate, currentNotAfter, previousCertificate } = form.dataset;
  if (currentCertificate && previousCertificate) {
    agentCall('/v1/status')
      .then((status) => {
        if (status.certificate !== previousCertificate) return;
        pending = { certificate: currentCertificate, notAfter: currentNotAfter };
        submit.textContent = 'Write the new certificate to the card';
        document.getElementById('renew-state').hidden = true;
        document.getElementById('renew-finish-intro').hidden = false;
        document.getElementById('renew-section').hidden = false;
      })
      .catch(() => {
        // No agent or no card: nothing to finish from here.
      });
  }
})();
