// The delay before reconnect attempt n (0 for the first): "full jitter",
// uniform between 0 and min(max, min * 2^n), so that the clients of a node
// that went away do not all come back at once, and never longer than max.
export function backoff(attempt, min, max, random = Math.random) {
  const cap = Math.min(max, min * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * cap);
}
