// Apply for Care ID: the form's details and two images (read here, sent as base64 in JSON, because multipart
// uploads are not supported) go to the public API, POST /api/v1/applications.
(() => {
  const form = document.getElementById('apply-form');
  if (!form) return;
  const errorBox = document.getElementById('js-error');
  const errorList = document.getElementById('js-error-list');
  const status = document.getElementById('apply-status');
  const MAX = 5 * 1024 * 1024;
  const fieldIds = {
    givenName: 'givenName',
    middleNames: 'middleNames',
    familyName: 'familyName',
    dateOfBirth: 'dob-day',
    niNumber: 'niNumber',
    email: 'email',
    'applicant.email': 'email',
    mobile: 'mobile',
    odsCode: 'odsCode',
    selfie: 'selfie',
    photoIdImage: 'photoIdImage',
  };
  const labels = {
    givenName: 'First name',
    middleNames: 'Middle names',
    familyName: 'Last name',
    dateOfBirth: 'Date of birth',
    niNumber: 'National Insurance number',
    email: 'Email address',
    'applicant.email': 'Email address',
    mobile: 'Mobile number',
  };

  function showErrors(problems) {
    errorList.replaceChildren(
      ...problems.map((p) => {
        const li = document.createElement('li');
        const a = document.createElement('a');
        a.href = `#${p.id}`;
        a.textContent = p.message;
        li.append(a);
        return li;
      }),
    );
    errorBox.hidden = false;
    errorBox.focus();
  }

  function value(id) {
    return document.getElementById(id).value.trim();
  }

  function readAsBase64(file) {
    return new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => {
        const url = String(reader.result);
        resolve(url.slice(url.indexOf(',') + 1));
      };
      reader.onerror = () => reject(new Error('unreadable'));
      reader.readAsDataURL(file);
    });
  }

  function checkImage(id, what, problems) {
    const file = document.getElementById(id).files[0];
    if (!file) problems.push({ id, message: `Attach ${what}` });
    else if (file.size > MAX)
      problems.push({ id, message: `${what[0].toUpperCase()}${what.slice(1)} must be 5 MB or smaller` });
    else if (!['image/jpeg', 'image/png'].includes(file.type)) {
      problems.push({ id, message: `${what[0].toUpperCase()}${what.slice(1)} must be a JPEG or PNG` });
    }
    return file;
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    errorBox.hidden = true;
    const problems = [];
    const selfie = checkImage('selfie', 'a photo of your face', problems);
    const photoId = checkImage('photoIdImage', 'a photo of your photo ID', problems);
    if (problems.length) return showErrors(problems);
    const pad = (s) => (s.length === 1 ? `0${s}` : s);
    const dob = `${value('dob-year')}-${pad(value('dob-month'))}-${pad(value('dob-day'))}`;
    const body = {
      applicant: {
        givenName: value('givenName'),
        middleNames: value('middleNames') || null,
        familyName: value('familyName'),
        dateOfBirth: dob,
        niNumber: value('niNumber') || null,
        email: value('email') || null,
        mobile: value('mobile') || null,
      },
      odsCode: value('odsCode'),
      selfie: { data: await readAsBase64(selfie) },
      photoIdImage: { data: await readAsBase64(photoId) },
    };
    status.textContent = 'Sending your application…';
    try {
      const res = await fetch(form.dataset.api, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      const data = await res.json().catch(() => ({}));
      if (!res.ok) {
        status.textContent = '';
        const err = data.error || {};
        const listed = (err.details?.problems || []).map((p) => ({
          id: fieldIds[p.field] || 'givenName',
          message: labels[p.field] ? `${labels[p.field]} ${p.message}` : p.message,
        }));
        if (listed.length) return showErrors(listed);
        const id = err.code?.startsWith('organisation.')
          ? 'odsCode'
          : err.code?.startsWith('photo.')
            ? 'selfie'
            : 'givenName';
        return showErrors([{ id, message: err.message || 'Your application could not be sent. Try again.' }]);
      }
      window.location.assign(`/apply/done?ref=${encodeURIComponent(data.applicationId)}`);
    } catch {
      status.textContent = '';
      showErrors([{ id: 'givenName', message: 'The service could not be reached. Try again.' }]);
    }
  });
})();
