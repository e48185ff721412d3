// Notification URLs carry their secret in the path or query (a Slack/Discord/Teams token, an ntfy
// topic): only the scheme and host may ever be shown, in a log, an error, --print-config or a
// --dry-run listing.

/** `https://hooks.slack.com/…` for any URL; `(invalid URL)` when it does not parse. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.protocol}//${parsed.host}/…`;
  } catch {
    return "(invalid URL)";
  }
}
