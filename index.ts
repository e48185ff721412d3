// The Pulumi program: read and validate config once, build one SpotRestarter, export docs/architecture.md's stack
// outputs under exactly their contract names (the host installer parses them).

import { buildSpotRestarter } from "./components/SpotRestarter";
import { readConfig } from "./config";

const stack = buildSpotRestarter(readConfig());

export const tenantId = stack.tenantId;
export const subscriptionId = stack.subscriptionId;
export const clientId = stack.clientId;
export const resourceGroupName = stack.resourceGroupName;
/** Every group the principal may act in, as `/subscriptions/<id>/resourceGroups/<name>` (resourceGroupName's first). */
export const resourceGroups = stack.resourceGroups;
export const restartTag = stack.restartTag;
export const restartableVms = stack.restartableVms;
export const certificatePem = stack.certificatePem;
export const certificateExpiresOn = stack.certificateExpiresOn;
export const installCommand = stack.installCommand;
/** Secret: every channel URL carries a token. The installer writes it into the runtime config (0600). */
export const notifications = stack.notifications;
/** VM name -> fallback sizes (`spot-restarter:fallbackSizes`, `{}` when none). */
export const fallbackSizes = stack.fallbackSizes;
/** Seconds of failed starts for capacity before a fallback size (`spot-restarter:fallbackAfterSeconds`, always set). */
export const fallbackAfterSeconds = stack.fallbackAfterSeconds;
