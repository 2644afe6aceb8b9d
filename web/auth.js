// auth.js -- the access token: from the URL fragment (#token=…) or pasted;
// kept in this tab's sessionStorage; the fragment is removed at once.

const KEY = 'importer.token';

// Takes #token=… out of the address bar (so it is neither bookmarked nor
// shared by copy-paste) and stores it. Returns the token now in use, or null.
export function loadToken() {
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (m) {
    const rest = location.hash.replace(/(^#|&)token=[^&]+/, '$1').replace(/^#&/, '#');
    history.replaceState(null, '', location.pathname + location.search + (rest === '#' ? '' : rest));
    setToken(decodeURIComponent(m[1]));
  }
  return sessionStorage.getItem(KEY);
}

export function setToken(t) { sessionStorage.setItem(KEY, t.trim()); }
export function clearToken() { sessionStorage.removeItem(KEY); }
export function token() { return sessionStorage.getItem(KEY); }

// The token's claims (unverified: for display and the expiry timer only;
// the gateway decides). null when it is not a readable JWT.
export function claims(t = token()) {
  try {
    const part = t.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(part + '='.repeat((4 - (part.length % 4)) % 4)));
  } catch {
    return null;
  }
}

// Milliseconds until the token expires (negative: expired), or null.
export function msLeft(t = token()) {
  const c = claims(t);
  return c && typeof c.exp === 'number' ? c.exp * 1000 - Date.now() : null;
}
