// The NHS.UK design system's behaviour for the components OpenCIS pages use: the header (navigation items that do
// not fit go under "More", so the menu stays one row at 320 CSS px) and notification banners (focused when shown).
import { initHeader, initNotificationBanners } from '/assets/nhsuk-frontend.js';

document.body.classList.add('js-enabled', 'nhsuk-frontend-supported');
initHeader();
initNotificationBanners();
