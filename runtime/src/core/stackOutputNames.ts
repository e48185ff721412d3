// The stack outputs' names (docs/architecture.md "Stack outputs"): the Pulumi program exports exactly these (index.ts),
// the host installer reads exactly these (install/stackOutputs.ts), and test/program/contracts.test.ts checks
// both against this list. No imports: the Pulumi program and the bundled runtime both load this file.

export const STACK_OUTPUT_NAMES = [
  "tenantId",
  "subscriptionId",
  "clientId",
  "resourceGroupName",
  "resourceGroups",
  "restartTag",
  "restartableVms",
  "certificatePem",
  "certificateExpiresOn",
  "installCommand",
  "notifications",
  "fallbackSizes",
  "fallbackAfterSeconds",
] as const;

export type StackOutputName = (typeof STACK_OUTPUT_NAMES)[number];

/** Outputs that hold a secret (the private key, notification URLs): `pulumi stack output` needs `--show-secrets`. */
export const SECRET_STACK_OUTPUTS: readonly StackOutputName[] = ["certificatePem", "notifications"];

/**
 * Outputs the installer accepts the absence of (the program always exports them): ones a stack deployed by an
 * older version of the program lacks (notifications, fallbackSizes, fallbackAfterSeconds, resourceGroups), and ones for people that the installer never reads, so
 * a hand-written outputs file (a sovereign cloud, the emulator) may leave them out (installCommand). Every
 * other name is required.
 */
export const OPTIONAL_STACK_OUTPUTS: readonly StackOutputName[] = [
  "installCommand",
  "notifications",
  "fallbackSizes",
  "fallbackAfterSeconds",
  "resourceGroups",
];
