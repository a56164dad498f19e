// The sign-in page: an API token (typed, or from the first start's link) for a session cookie.
"use strict";

async function signIn(token) {
  const response = await fetch(`${API}/session`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ token }),
  });
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    document.getElementById("sign-in-error").textContent = body.detail ?? `error ${response.status}`;
    return;
  }
  const next = new URLSearchParams(window.location.search).get("next") ?? "/";
  // Only a page of this server: never an address elsewhere ("//evil", "/\\evil" included).
  const target = new URL(next, window.location.origin);
  window.location.assign(target.origin === window.location.origin ? target.pathname + target.search : "/");
}

document.getElementById("sign-in").addEventListener("submit", (event) => {
  event.preventDefault();
  signIn(document.getElementById("token").value.trim());
});

const fromLink = new URLSearchParams(window.location.hash.slice(1)).get("token");
if (fromLink) {
  history.replaceState(null, "", window.location.pathname + window.location.search);
  signIn(fromLink);
}
