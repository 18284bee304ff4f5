// tokenExpiry reads a JWT's exp (Unix seconds) without verifying it (the
// server does): the client only needs to know when to ask for a fresh one.
// undefined when the token is not a JWT or has no exp.
export function tokenExpiry(token) {
  const part = typeof token === "string" ? token.split(".")[1] : undefined;
  if (!part) return undefined;
  try {
    const b64 = part.replace(/-/g, "+").replace(/_/g, "/");
    const claims = JSON.parse(atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4)));
    return typeof claims.exp === "number" ? claims.exp : undefined;
  } catch {
    return undefined;
  }
}

// refreshDelay is how long from now to ask for a fresh token that expires at
// exp: `before` ms ahead of the expiry, or, for a token that lives less than
// twice that, when half its time is left; never sooner than 1 s (a token
// already expired is the server's to refuse).
export function refreshDelay(exp, before, now = Date.now()) {
  const left = exp * 1000 - now;
  return Math.max(1000, left - before, left / 2);
}
