// RA console: add a photo to a form. Multipart uploads are not supported, so the photo is read here and the form's
// fields are sent with it as JSON (the photo as base64). A submit button marked data-plain-submit sends the form
// as it is, without a photo.
(() => {
  const form = document.querySelector('form[data-photo-form]');
  if (!form) return;
  const input = form.querySelector('input[type=file]');
  const preview = document.getElementById('photo-preview');
  const status = document.getElementById('photo-status');
  const errorBox = document.getElementById('js-error');
  const errorList = document.getElementById('js-error-list');
  const MAX = 5 * 1024 * 1024;

  function showErrors(problems) {
    errorList.replaceChildren(
      ...problems.map((p) => {
        const li = document.createElement('li');
        const a = document.createElement('a');
        a.href = p.href || '#photo';
        a.textContent = p.message;
        li.append(a);
        return li;
      }),
    );
    errorBox.hidden = false;
    errorBox.focus();
  }

  function readAsDataUrl(file) {
    return new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(String(reader.result));
      reader.onerror = () => reject(new Error('The photo could not be read.'));
      reader.readAsDataURL(file);
    });
  }

  input.addEventListener('change', async () => {
    const file = input.files[0];
    if (!file || file.size > MAX) {
      preview.hidden = true;
      return;
    }
    preview.src = await readAsDataUrl(file);
    preview.hidden = false;
  });

  form.addEventListener('submit', async (event) => {
    if (event.submitter?.hasAttribute('data-plain-submit')) return;
    event.preventDefault();
    errorBox.hidden = true;
    const file = input.files[0];
    if (!file) return showErrors([{ href: '#photo', message: 'Choose the photo taken at the check' }]);
    if (file.size > MAX) return showErrors([{ href: '#photo', message: 'The photo must be 5 MB or smaller' }]);
    if (!['image/jpeg', 'image/png'].includes(file.type)) {
      return showErrors([{ href: '#photo', message: 'The photo must be a JPEG or PNG' }]);
    }
    const body = {};
    for (const [key, value] of new FormData(form)) {
      if (typeof value !== 'string') continue;
      if (key in body) body[key] = [].concat(body[key], value);
      else body[key] = value;
    }
    const dataUrl = await readAsDataUrl(file);
    body.photo = { data: dataUrl.slice(dataUrl.indexOf(',') + 1) };
    status.textContent = 'Saving…';
    try {
      const res = await fetch(form.action, {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'content-type': 'application/json', 'csrf-token': body._csrf },
        body: JSON.stringify(body),
      });
      const data = await res.json().catch(() => ({}));
      if (!res.ok) {
        status.textContent = '';
        const problems = data.error?.problems?.length
          ? data.error.problems
          : [{ href: '#photo', message: data.error?.message || 'That did not work.' }];
        return showErrors(problems);
      }
      status.textContent = 'Saved.';
      window.location.assign(data.redirect);
    } catch {
      status.textContent = '';
      showErrors([{ href: '#photo', message: 'The server could not be reached. Try again.' }]);
    }
  });
})();
