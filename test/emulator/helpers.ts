// Shared by the emulator tests: raw ARM calls with a real token, for what the SDK clients do not cover.
import { ARM_SCOPE, type TestEmulator } from "../../emulator/testing";

export interface ArmResponse<T = unknown> {
  status: number;
  body: T;
  headers: Headers;
}

export async function armFetch<T = Record<string, unknown>>(
  t: Pick<TestEmulator, "emulator" | "credential">,
  method: string,
  path: string,
  body?: unknown,
  apiVersion = "2024-07-01",
): Promise<ArmResponse<T>> {
  const token = await t.credential.getToken(ARM_SCOPE);
  const url = new URL(path, t.emulator.armEndpoint);
  if (!url.searchParams.has("api-version")) url.searchParams.set("api-version", apiVersion);
  const response = await fetch(url, {
    method,
    headers: {
      Authorization: `Bearer ${token?.token}`,
      ...(body === undefined ? {} : { "Content-Type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  return {
    status: response.status,
    body: (text ? JSON.parse(text) : undefined) as T,
    headers: response.headers,
  };
}

export const rgPath = (t: TestEmulator) =>
  `/subscriptions/${t.emulator.subscriptionId}/resourceGroups/${t.resourceGroup}`;
export const vmPath = (t: TestEmulator, name: string) =>
  `${rgPath(t)}/providers/Microsoft.Compute/virtualMachines/${name}`;
