// A re-enactment of the original script's request pattern, for comparison. The script was, in essence:
//
//   az vm list -d -g "$RG" --query "[?billingProfile.maxPrice != null && powerState=='VM deallocated'
//                                    && tags.AttemptRestartAfterEviction=='true'].name" -o tsv |
//
// (its Spot test is `billingProfile.maxPrice != null`: only Spot VMs carry a billing profile.)
//   while read -r vm; do az vm start -g "$RG" -n "$vm"; done
//
// What az sends for that (azure-cli, src/azure-cli/azure/cli/command_modules/vm/custom.py):
// - `az vm list -d`: list_vm(show_details=True) lists the group (following nextLink), then for every VM,
//   one after another, get_vm_details(): GET the VM with $expand=instanceView, GET each of its network
//   interfaces, GET each public IP of those — all of that before --query filters anything.
// - `az vm start` (without --no-wait): POST …/start, then GET the Azure-AsyncOperation URL at once and
//   every Retry-After until it is terminal, then (a POST with a Location header) one final GET of the
//   Location URL. Each start completes before the next is sent.
// Not modelled, in the original's favour: the Python start-up of every `az` process (a second or more each).
import { Agent, request } from "node:https";
import { ClientCertificateCredential } from "@azure/identity";
import { ARM_SCOPE, type TestPrincipal } from "../emulator/testing";
import { TENANT } from "./world";

export interface OriginalRequests {
  list: number;
  vmGet: number;
  nic: number;
  publicIp: number;
  start: number;
  /** Azure-AsyncOperation polls and the final Location GET. */
  poll: number;
}

export interface OriginalCycle {
  /** Cycle start (epoch ms), before the first request (token included, as for ours). */
  startedAt: number;
  /** When `az vm list -d` had returned (epoch ms). */
  listedAt: number;
  finishedAt: number;
  vmsListed: number;
  matches: string[];
  /** Starts actually performed (fewer than matches when capped). */
  starts: { name: string; requestedAt: number; doneAt: number; requests: number; status: string }[];
  requests: OriginalRequests;
}

export interface OriginalOptions {
  armEndpoint: string;
  subscriptionId: string;
  resourceGroup: string;
  caCertPem: string;
  token: () => Promise<string>;
  tag: { name: string; value: string };
  /** Perform at most this many starts (the rest is extrapolated by the caller). */
  maxStarts: number;
}

const COMPUTE_API = "2024-07-01";
const NETWORK_API = "2024-05-01";

interface Response {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
}

export async function runOriginalCycle(options: OriginalOptions): Promise<OriginalCycle> {
  // One connection, kept alive, like the requests.Session az uses; every request is sequential anyway.
  const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: options.caCertPem });
  const requests: OriginalRequests = { list: 0, vmGet: 0, nic: 0, publicIp: 0, start: 0, poll: 0 };
  const startedAt = Date.now();
  let bearer: string | undefined;

  const send = async (method: string, url: string, kind: keyof OriginalRequests): Promise<Response> => {
    bearer ??= await options.token();
    requests[kind]++;
    return new Promise<Response>((resolve, reject) => {
      const req = request(
        url,
        { method, agent, headers: { Authorization: `Bearer ${bearer}`, "Content-Length": 0 } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (chunk: Buffer) => chunks.push(chunk));
          res.on("end", () => {
            const text = Buffer.concat(chunks).toString("utf8");
            resolve({
              status: res.statusCode ?? 0,
              headers: res.headers,
              body: text ? JSON.parse(text) : undefined,
            });
          });
        },
      );
      req.on("error", reject);
      req.end();
    });
  };
  const ok = (response: Response, what: string): Response => {
    if (response.status >= 400)
      throw new Error(`${what}: HTTP ${response.status} ${JSON.stringify(response.body)}`);
    return response;
  };
  const base = options.armEndpoint.replace(/\/$/, "");
  const group = `${base}/subscriptions/${options.subscriptionId}/resourceGroups/${options.resourceGroup}`;

  try {
    // az vm list -d: the list, every page.
    interface Vm {
      name: string;
      id: string;
      tags?: Record<string, string>;
      properties: {
        billingProfile?: { maxPrice?: number | null };
        networkProfile?: { networkInterfaces?: { id: string }[] };
        instanceView?: { statuses?: { code?: string }[] };
      };
    }
    const listed: Vm[] = [];
    let next: string | undefined =
      `${group}/providers/Microsoft.Compute/virtualMachines?api-version=${COMPUTE_API}`;
    while (next) {
      const page = ok(await send("GET", next, "list"), "list").body as { value: Vm[]; nextLink?: string };
      listed.push(...page.value);
      next = page.nextLink;
    }
    // …then the details of every VM, one by one: instance view, NICs, public IPs.
    const detailed: { vm: Vm; powerState: string }[] = [];
    for (const vm of listed) {
      const full = ok(
        await send("GET", `${base}${vm.id}?$expand=instanceView&api-version=${COMPUTE_API}`, "vmGet"),
        `get ${vm.name}`,
      ).body as Vm;
      for (const nicRef of full.properties.networkProfile?.networkInterfaces ?? []) {
        const nic = ok(await send("GET", `${base}${nicRef.id}?api-version=${NETWORK_API}`, "nic"), "nic")
          .body as {
          properties: { ipConfigurations?: { properties: { publicIPAddress?: { id: string } } }[] };
        };
        for (const configuration of nic.properties.ipConfigurations ?? []) {
          const ip = configuration.properties.publicIPAddress;
          if (ip)
            ok(await send("GET", `${base}${ip.id}?api-version=${NETWORK_API}`, "publicIp"), "public IP");
        }
      }
      const code = full.properties.instanceView?.statuses?.find((s) =>
        s.code?.startsWith("PowerState/"),
      )?.code;
      // az -d prints powerState as the display form ("VM deallocated").
      detailed.push({ vm: full, powerState: code ? `VM ${code.slice("PowerState/".length)}` : "" });
    }
    const listedAt = Date.now();
    const matches = detailed
      .filter(
        ({ vm, powerState }) =>
          vm.properties.billingProfile?.maxPrice != null &&
          powerState === "VM deallocated" &&
          vm.tags?.[options.tag.name] === options.tag.value,
      )
      .map(({ vm }) => vm);

    // while read vm; do az vm start …; done — each waits for its operation to finish.
    const starts: OriginalCycle["starts"] = [];
    for (const vm of matches.slice(0, options.maxStarts)) {
      const before = Object.values(requests).reduce((a, b) => a + b, 0);
      const requestedAt = Date.now();
      const accepted = ok(
        await send("POST", `${base}${vm.id}/start?api-version=${COMPUTE_API}`, "start"),
        `start ${vm.name}`,
      );
      let status = accepted.status === 200 ? "Succeeded" : "InProgress";
      let retryAfter = Number(accepted.headers["retry-after"] ?? 30);
      const asyncOperation = String(accepted.headers["azure-asyncoperation"] ?? "");
      const location = accepted.headers.location ? String(accepted.headers.location) : undefined;
      // az polls once at once, then every Retry-After (seen with az 2.45 against the emulator, which
      // bench/az-calibration.ts compares on every benchmark run).
      let polls = 0;
      while (status === "InProgress" && asyncOperation) {
        if (polls++ > 0) await new Promise((r) => setTimeout(r, retryAfter * 1000));
        const polled = ok(await send("GET", asyncOperation, "poll"), "poll");
        status = String((polled.body as { status?: string }).status ?? "InProgress");
        retryAfter = Number(polled.headers["retry-after"] ?? retryAfter);
      }
      if (status === "Succeeded" && location) ok(await send("GET", location, "poll"), "final GET");
      const after = Object.values(requests).reduce((a, b) => a + b, 0);
      starts.push({ name: vm.name, requestedAt, doneAt: Date.now(), requests: after - before, status });
    }
    return {
      startedAt,
      listedAt,
      finishedAt: Date.now(),
      vmsListed: listed.length,
      matches: matches.map((vm) => vm.name),
      starts,
      requests,
    };
  } finally {
    agent.destroy();
  }
}

export function totalRequests(requests: OriginalRequests, withPolls = true): number {
  const { poll, ...rest } = requests;
  return Object.values(rest).reduce((a, b) => a + b, 0) + (withPolls ? poll : 0);
}

/**
 * The script's `az login --service-principal --tenant … -p cert.pem` as a token source for its requests:
 * the same principal and emulator tenant, one cached credential (az keeps its token too).
 */
export function originalTokenSource(
  principal: Pick<TestPrincipal, "clientId" | "pem">,
  authorityHost: string,
): () => Promise<string> {
  const credential = new ClientCertificateCredential(
    TENANT,
    principal.clientId,
    { certificate: principal.pem },
    { authorityHost, disableInstanceDiscovery: true },
  );
  return async () => {
    const result = await credential.getToken(ARM_SCOPE);
    if (!result) throw new Error("no token for the original pattern");
    return result.token;
  };
}
