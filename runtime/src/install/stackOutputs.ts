// Validates what `pulumi stack output --json --show-secrets` prints (docs/architecture.md "Stack outputs").
// Every message names the key and the fix, and none ever quotes certificatePem: the private key
// must not reach a terminal, a CI log or a bug report.
import { createPrivateKey, type KeyObject, X509Certificate } from "node:crypto";
import { z } from "zod";
import { notificationChannelSchema, resourceGroupNamePattern } from "../config/configSchema";
import { ConfigError } from "../core/errors";
import { parseResourceGroupId } from "../core/resourceIds";
import { FALLBACK_AFTER_SECONDS_RANGE, VM_SIZE_PATTERN } from "../core/settings";
import type { StackOutputName } from "../core/stackOutputNames";
import {
  controlCharactersIn,
  jsonErrorPosition,
  printablePath,
  quoteForMessage,
  tagSchema,
} from "../core/text";

/** Where a Spot VM's cloud lives; absent means Azure public cloud (docs/architecture.md runtime config `cloud`). */
export interface CloudEndpoints {
  authorityHost: string;
  armEndpoint: string;
  audience?: string;
}

export interface StackOutputs {
  tenantId: string;
  subscriptionId: string;
  clientId: string;
  resourceGroupName: string;
  /**
   * The groups the principal may act in, as `/subscriptions/<id>/resourceGroups/<name>` ids (issue 28).
   * Absent from stacks deployed before it: then resourceGroupName alone.
   */
  resourceGroups?: string[];
  restartTag: { name: string; value: string };
  /** Entries as written in Pulumi config: `name`, `group/name` or a full VM id. */
  restartableVms: string[];
  /** Certificate then private key, one PEM. Secret: never print it. */
  certificatePem: string;
  certificateExpiresOn: string;
  /** For people (the pipe to paste); the installer does not read it, so hand-written outputs may omit it. */
  installCommand?: string;
  /** Secret (each URL carries a token): never print it. Absent from stacks deployed before notifications. */
  notifications?: Array<z.output<typeof notificationChannelSchema>>;
  /** VM name -> fallback sizes (`{}` or absent: none; absent from stacks deployed before fallbacks). */
  fallbackSizes?: Record<string, string[]>;
  /** Seconds of capacity failures before a fallback size; absent from stacks deployed before it (then the default). */
  fallbackAfterSeconds?: number;
  /** Not a Pulumi output: added by hand (or by the demo) to reach a sovereign cloud or the emulator. */
  cloud?: CloudEndpoints;
}

/** The certificate facts worth reporting; nothing here is secret. */
export interface CertificateSummary {
  subject: string;
  thumbprintSha256: string;
  notAfter: Date;
}

export class StackOutputsError extends ConfigError {
  constructor(
    readonly problems: string[],
    options?: ErrorOptions,
  ) {
    super(`the stack outputs are not usable:\n${problems.map((p) => `  - ${p}`).join("\n")}`, options);
  }
}

const FROM_PULUMI = "run `pulumi stack output --json --show-secrets` in the spot-restarter project";
/** Stands in for a missing top-level key's problem until all are known (see parseStackOutputs). */
const MISSING_MARK = "\u0000missing:";

// What each key is, so a message can say what was expected and where it comes from.
// Keyed by the contract's names (../stackOutputNames.ts): tsc fails when the list and this table differ.
const EXPECTED: Record<StackOutputName | "cloud", string> & Record<keyof StackOutputs, string> = {
  tenantId: "the Entra ID tenant id (a GUID)",
  subscriptionId: "the Azure subscription id (a GUID)",
  clientId: "the application (client) id of the service principal (a GUID)",
  resourceGroupName:
    "the name of the resource group holding the Spot VMs (1-90 letters, digits, - _ . ( ), not ending in '.')",
  restartTag: 'an object {"name": "...", "value": "..."} naming the restart tag',
  resourceGroups:
    "a list of resource group ids like /subscriptions/<subscription-id>/resourceGroups/<name> (at least one)",
  restartableVms: "an array of VM names (strings)",
  certificatePem: "one PEM with the certificate then its PKCS#8 private key",
  certificateExpiresOn: "the certificate's expiry as an RFC 3339 date-time",
  installCommand: "a string (the ready-to-paste install command)",
  notifications:
    'a list of channels like [{"type": "ntfy", "url": "https://..."}] (pulumi config spot-restarter:notifications)',
  fallbackSizes:
    'an object from VM name to VM sizes like {"build-box-spot": ["Standard_D2as_v5"]} (pulumi config spot-restarter:fallbackSizes)',
  fallbackAfterSeconds: `a whole number of seconds from ${FALLBACK_AFTER_SECONDS_RANGE.min} to ${FALLBACK_AFTER_SECONDS_RANGE.max} (pulumi config spot-restarter:fallbackAfterSeconds)`,
  cloud:
    'an object {"authorityHost": "https://...", "armEndpoint": "https://...", "audience"?: "https://..."}',
};

const httpsUrl = z.url({ protocol: /^https$/ });

const stackOutputsSchema = z.object({
  tenantId: z.guid(),
  subscriptionId: z.guid(),
  clientId: z.guid(),
  resourceGroupName: z.string().regex(resourceGroupNamePattern),
  resourceGroups: z
    .array(
      z.string().refine((id) => {
        const group = parseResourceGroupId(id);
        return group !== undefined && resourceGroupNamePattern.test(group.resourceGroup);
      }),
    )
    .min(1)
    .optional(),
  restartTag: tagSchema,
  restartableVms: z.array(z.string().min(1)),
  certificatePem: z.string().min(1),
  certificateExpiresOn: z.iso.datetime({ offset: true }),
  installCommand: z.string().optional(),
  notifications: z.array(notificationChannelSchema).optional(),
  fallbackSizes: z.record(z.string().min(1), z.array(z.string().regex(VM_SIZE_PATTERN)).min(1)).optional(),
  fallbackAfterSeconds: z
    .number()
    .int()
    .min(FALLBACK_AFTER_SECONDS_RANGE.min)
    .max(FALLBACK_AFTER_SECONDS_RANGE.max)
    .optional(),
  cloud: z
    .object({ authorityHost: httpsUrl, armEndpoint: httpsUrl, audience: httpsUrl.optional() })
    .optional(),
});

/** A value for a message: JSON-quoted (control characters escaped), cut short. */
const quoteShort = quoteForMessage;

function typeName(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value === "object" ? "an object" : `a ${typeof value}`;
}

/** Parses and validates the stack outputs text; throws StackOutputsError listing every problem. */
export function parseStackOutputs(text: string, source: string, now: Date = new Date()): StackOutputs {
  if (text.trim() === "") {
    throw new StackOutputsError([
      `${source} is empty: pipe the outputs in, e.g. \`pulumi stack output --json --show-secrets | sudo node spot-restarter.cjs install --stack-outputs -\``,
    ]);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    // Deliberately no `cause`: V8's message quotes the text around the error, which may be the key.
    throw new StackOutputsError([
      `${source} is not valid JSON${jsonErrorPosition(error, text)}: ${FROM_PULUMI} (with --json) and pass its output unchanged`,
    ]);
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new StackOutputsError([
      `${source} holds ${typeName(raw)}, not the JSON object of stack outputs: ${FROM_PULUMI}`,
    ]);
  }
  const record = raw as Record<string, unknown>;

  const problems: string[] = [];
  if (record.certificatePem === "[secret]") {
    problems.push(
      "certificatePem reads [secret]: Pulumi hides secrets unless asked; add --show-secrets: `pulumi stack output --json --show-secrets`",
    );
  }
  if (record.notifications === "[secret]") {
    problems.push(
      "notifications reads [secret]: Pulumi hides secrets unless asked; add --show-secrets: `pulumi stack output --json --show-secrets`",
    );
  }
  // Anything printed to the admin's terminal: no ESC sequence, \r or \n may pass (the PEM has newlines).
  // Keys too (issue 25, item 4): a `fallbackSizes` key is echoed by install and every runtime command.
  for (const found of controlCharactersIn(raw, new Set(["certificatePem"]))) {
    const secret = found.path[0] === "notifications";
    const value =
      found.in === "value"
        ? (found.path.reduce<unknown>(
            (at, step) => (at as Record<PropertyKey, unknown>)[step],
            raw,
          ) as string)
        : undefined;
    problems.push(
      found.in === "key"
        ? `${found.where}: a key contains a control character: expected printable text; ${FROM_PULUMI} and check the names in Pulumi config`
        : `${found.where} contains a control character${secret || value === undefined ? "" : ` (${quoteShort(value)})`}: expected printable text; ${FROM_PULUMI} and check the value in Pulumi config`,
    );
  }
  const parsed = stackOutputsSchema.safeParse(raw);
  const missing: string[] = [];
  if (!parsed.success) {
    const reported = new Set<string>();
    for (const issue of parsed.error.issues) {
      const key = String(issue.path[0] ?? "");
      if ((key === "certificatePem" || key === "notifications") && record[key] === "[secret]") continue; // explained above
      const where = printablePath(issue.path as (string | number)[]);
      if (reported.has(where) || problems.some((p) => p.startsWith(`${where} contains a control`))) continue;
      if (problems.some((p) => p.includes(": a key contains a control character"))) continue;
      reported.add(where);
      const expected = EXPECTED[key as keyof StackOutputs] ?? "a valid value";
      const value = issue.path.reduce<unknown>(
        (at, step) => (at && typeof at === "object" ? (at as Record<PropertyKey, unknown>)[step] : undefined),
        raw,
      );
      if (value === undefined && issue.code === "invalid_type") {
        if (issue.path.length === 1) missing.push(`${where} is missing: expected ${expected}`);
        problems.push(
          issue.path.length === 1 ? MISSING_MARK + where : `${where} is missing: ${key} must be ${expected}`,
        );
      } else if (issue.code === "invalid_type" && !(issue.expected === "int" && typeof value === "number")) {
        // (A fraction where a whole number belongs is a number of the wrong form: "not valid" below.)
        problems.push(`${where} is ${typeName(value)}: expected ${expected}`);
      } else {
        // Format problems (GUID, date-time, URL, empty string); the value is quoted only when harmless.
        // Never a notification value: its URL carries a token.
        const shown =
          key !== "certificatePem" && key !== "notifications" && typeof value === "string"
            ? ` (${quoteShort(value)})`
            : typeof value === "number"
              ? ` (${value})`
              : "";
        // The tag's own rules (shared with the runtime's config) say exactly what is wrong.
        const expectation = key === "restartTag" ? issue.message.replace(/^expected /, "") : expected;
        problems.push(`${where} is not valid${shown}: expected ${expectation}`);
      }
    }
  }
  // Where missing keys come from is said once, after the last of them, not after each (issue 29).
  const fix = `${FROM_PULUMI} against a stack that \`pulumi up\` has deployed with this version of the program`;
  const markers = problems.filter((p) => p.startsWith(MISSING_MARK));
  for (const [i, marker] of markers.entries()) {
    const text = missing[i] ?? marker;
    const last = i === markers.length - 1;
    problems[problems.indexOf(marker)] = last
      ? `${text}; ${markers.length > 1 ? `for all ${markers.length} missing keys: ` : ""}${fix}`
      : text;
  }
  if (problems.length > 0) throw new StackOutputsError(problems);
  const outputs = parsed.data as StackOutputs;
  const certificateProblem = checkCertificatePem(outputs.certificatePem, now);
  if (typeof certificateProblem === "string") throw new StackOutputsError([certificateProblem]);
  return outputs;
}

interface PemBlock {
  label: string;
  text: string;
}

function pemBlocks(pem: string): PemBlock[] {
  const blocks: PemBlock[] = [];
  for (const match of pem.matchAll(/-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g)) {
    blocks.push({ label: match[1] ?? "", text: `${match[0]}\n` });
  }
  return blocks;
}

/**
 * Checks the PEM holds a certificate and the private key that belongs to it, and that the
 * certificate has not expired. Returns the problem as a message, or the certificate summary.
 */
export function checkCertificatePem(pem: string, now: Date = new Date()): string | CertificateSummary {
  const blocks = pemBlocks(pem);
  const certificateBlock = blocks.find((b) => b.label === "CERTIFICATE");
  const keyBlock = blocks.find((b) => b.label === "PRIVATE KEY" || b.label === "RSA PRIVATE KEY");
  const renew = "run `pulumi up` (it re-issues the certificate) and pass the new outputs";
  if (!certificateBlock) {
    return `certificatePem has no -----BEGIN CERTIFICATE----- block: expected ${EXPECTED.certificatePem}`;
  }
  if (!keyBlock) {
    return blocks.some((b) => b.label === "ENCRYPTED PRIVATE KEY")
      ? "certificatePem holds an encrypted private key: the runtime needs it unencrypted (the file is protected by its mode instead)"
      : `certificatePem has no -----BEGIN PRIVATE KEY----- block: expected ${EXPECTED.certificatePem}`;
  }
  let certificate: X509Certificate;
  let key: KeyObject;
  try {
    certificate = new X509Certificate(certificateBlock.text);
  } catch {
    return `certificatePem: the certificate cannot be parsed: ${renew}`;
  }
  try {
    key = createPrivateKey(keyBlock.text);
  } catch {
    return "certificatePem: the private key cannot be parsed: expected an unencrypted PKCS#8 (or PKCS#1 RSA) key";
  }
  if (!certificate.checkPrivateKey(key)) {
    return `certificatePem: the private key does not belong to the certificate: ${renew}`;
  }
  const notAfter = new Date(certificate.validTo);
  if (notAfter.getTime() <= now.getTime()) {
    return `certificatePem: the certificate expired on ${notAfter.toISOString()}: ${renew}`;
  }
  return { subject: certificate.subject, thumbprintSha256: certificate.fingerprint256, notAfter };
}
