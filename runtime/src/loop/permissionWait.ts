// `run` and a missing permission: it waits instead of exiting.
//
// Right after `pulumi up` and `install`, the new role assignment is not applied yet: ARM answers 403
// AuthorizationFailed ("If access was recently granted, please refresh your credentials.") for minutes
// (Microsoft: changes "can take up to 30 minutes", learn.microsoft.com/azure/role-based-access-control/
// troubleshooting, "Symptom - Role assignment changes are not being detected"). Exiting then makes systemd
// (Restart=on-failure, RestartSec=10s) restart `run` every 10 s forever, each restart a new token request
// and a new error. A bounded window does not help: past it, exiting loops the same way, and stopping for
// good (RestartPreventExitStatus=) leaves a service that never notices the role being fixed. So `run`
// never exits on a missing permission: it says so once (the `permission-missing` event: log, notification,
// naming the action and what it was needed for), keeps cycling with a backoff, and says once more when
// it works. Starts of other VMs in flight go on. `once` still exits with the permission code (cron mails it).
import { messageChain, type PermissionError } from "../core/errors";
import type { RestarterEvent } from "../core/events";
import type { EventBus } from "../signals/events";

/** Cycles while a permission is missing back off to at most this often (unless the interval is longer). */
export const PERMISSION_RETRY_MAX_MS = 120_000;

/** After `denials` denied cycles in a row: how long until the next cycle. Doubles from the interval. */
export function permissionRetryDelayMs(denials: number, intervalMs: number): number {
  const cap = Math.max(intervalMs, PERMISSION_RETRY_MAX_MS);
  return Math.min(cap, intervalMs * 2 ** Math.max(0, Math.min(denials - 1, 20)));
}

/**
 * The scope a role assignment must cover. ARM's 403 names it ("… does not have authorization to perform
 * action 'A' over scope 'S' or the scope is invalid."), but the SDK's paging error drops that message;
 * then the refused request's resource group (a role there covers every request the runtime makes).
 */
export function deniedScope(error: unknown): string | undefined {
  const named = /over scope '([^']+)'/.exec(messageChain(error))?.[1];
  if (named) return named;
  for (let cause: unknown = error, depth = 0; cause instanceof Error && depth < 4; depth++) {
    const url = (cause as Error & { request?: { url?: unknown } }).request?.url;
    if (typeof url === "string") {
      const group = /\/subscriptions\/[^/?]+\/resourceGroups\/[^/?]+/i.exec(new URL(url).pathname)?.[0];
      if (group) return decodeURIComponent(group);
    }
    cause = cause.cause;
  }
  return undefined;
}

type PermissionMissing = Extract<RestarterEvent, { type: "permission-missing" }>;

export class PermissionWait {
  private looping = false;
  /** Denied cycles in a row (0: every permission worked last time). */
  private denials = 0;
  private waitingSince: number | undefined;
  private deniedSinceLastCycle = false;
  /** What this episode already reported (action and where), so each is said once, not per cycle. */
  private readonly reported = new Set<string>();
  private readonly actions = new Set<string>();

  constructor(
    private readonly intervalMs: number,
    private readonly now: () => number,
    /** The service principal's object id: the classic lasting cause is a role given to another id. */
    private readonly principalObjectId?: string,
  ) {}

  /**
   * The bus every part of the restarter emits on. Once `run`'s loop runs, a permission-missing event
   * already reported in this episode is dropped, and the rest say that `run` keeps going.
   */
  filter(bus: EventBus): EventBus {
    return {
      emit: (event) => {
        // An unreadable eviction-cause signal (`signal` set) blocks nothing: the cause gate degrades and
        // reports it once itself; only what stops restarts is waited out here.
        if (event.type !== "permission-missing" || event.signal !== undefined || !this.looping) {
          return bus.emit(event);
        }
        this.deniedSinceLastCycle = true;
        const key = `${event.action} ${event.scope ?? ""} ${event.resourceGroup ?? ""}/${event.vm ?? ""}`;
        if (this.reported.has(key)) return;
        this.reported.add(key);
        this.actions.add(event.action);
        bus.emit({ ...event, message: `${event.message}; ${this.keepsRunning()}` });
      },
      subscribe: (sink) => bus.subscribe(sink),
    };
  }

  /** `run`'s loop starts: from now on a missing permission is waited out. */
  startLooping(): void {
    this.looping = true;
  }

  /**
   * A cycle (or a start it issued) was refused a permission: how long to wait before the next cycle,
   * and the event to emit (on the filtered bus) unless this episode already reported that action.
   */
  denied(error: PermissionError): { delayMs: number; event?: PermissionMissing } {
    const at = this.now();
    this.waitingSince ??= at;
    this.denials += 1;
    this.deniedSinceLastCycle = true;
    const delayMs = permissionRetryDelayMs(this.denials, this.intervalMs);
    if (this.actions.has(error.permission)) return { delayMs };
    const scope = deniedScope(error);
    return {
      delayMs,
      event: {
        type: "permission-missing",
        at,
        action: error.permission,
        ...(scope ? { scope } : {}),
        message: scope ? `${error.message} (scope ${scope})` : error.message,
      },
    };
  }

  /**
   * A cycle went through without a refusal. With no start issued, nothing of it can still be refused:
   * the permissions work again. Starts it issued may yet be refused (a start's 403 comes moments later,
   * a refused poll a few seconds later): then the next cycle's beginning decides (`cycleBegins`).
   */
  cycleSucceeded(startsIssued: number): RestarterEvent | undefined {
    if (this.deniedSinceLastCycle || startsIssued > 0) return undefined;
    return this.restore();
  }

  /** A cycle that asked ARM nothing (throttled) or failed otherwise: it tells nothing about permissions. */
  cycleInconclusive(): void {
    if (this.waitingSince !== undefined) this.deniedSinceLastCycle = true;
  }

  /**
   * A new cycle begins. When the wait is on and nothing was refused since the last cycle began (its
   * reads, and the starts it issued), the permissions work again.
   */
  cycleBegins(): RestarterEvent | undefined {
    const denied = this.deniedSinceLastCycle;
    this.deniedSinceLastCycle = false;
    return denied ? undefined : this.restore();
  }

  /** Said once; the next refusal is a new episode, reported again. */
  private restore(): RestarterEvent | undefined {
    if (this.waitingSince === undefined) return undefined;
    const at = this.now();
    const event: RestarterEvent = {
      type: "permission-restored",
      at,
      actions: [...this.actions],
      waitedSeconds: Math.round((at - this.waitingSince) / 1000),
    };
    this.waitingSince = undefined;
    this.denials = 0;
    this.reported.clear();
    this.actions.clear();
    return event;
  }

  private keepsRunning(): string {
    return `still running: a role assignment made moments ago takes minutes to apply (Microsoft: up to 30); retrying with backoff (at most every ${Math.round(Math.max(this.intervalMs, PERMISSION_RETRY_MAX_MS) / 1000)} s) and saying so when it works (if it lasts, run \`spot-restarter doctor\`${this.principalObjectId ? `; the role assignment must name this service principal's object id ${this.principalObjectId}, not the application's` : ""})`;
  }
}
