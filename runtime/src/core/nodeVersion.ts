// The one Node.js version rule, for every command: `install` checks the Node.js that will run the service,
// the other commands the one running them. The bundle itself loads on older Node.js, and then fails in
// ways that name something else, so it says so first (engines in package.json: >=22).

export const MINIMUM_NODE_MAJOR = 22;

/** Why `version` (e.g. `v20.20.2`) cannot run spot-restarter, with the fix; undefined when it can. */
export function nodeTooOld(version: string, runWith = "run spot-restarter with it"): string | undefined {
  const major = Number.parseInt(version.replace(/^v/, ""), 10);
  if (major >= MINIMUM_NODE_MAJOR) return undefined;
  return `Node.js ${version.replace(/^v/, "")} is too old: spot-restarter needs Node.js ${MINIMUM_NODE_MAJOR} or newer (https://nodejs.org/en/download, or your distribution's nodejs package from NodeSource); install it and ${runWith}`;
}
