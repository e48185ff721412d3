// No flood: a VM that cannot start for hours produces one `vm-restart-failing` per escalation step,
// not one per attempt. The loop is meant to emit it only when a step is crossed; the notifier checks
// again here, so a second emitter (or a restarted process) cannot page the owner every minute.
import type { RestarterEvent } from "../../core/events";

/** Down this long, a still-failing VM is worth a message: 15 min, 1 h, 6 h, then once a day. */
export const restartFailingEscalationSeconds = [15 * 60, 60 * 60, 6 * 60 * 60] as const;
const dailyAfterLastStepSeconds = 24 * 60 * 60;

/** The escalation step reached after `downSeconds` down: -1 before the first step. */
export function escalationStep(downSeconds: number): number {
  const steps = restartFailingEscalationSeconds;
  let step = -1;
  for (let i = 0; i < steps.length; i++) if (downSeconds >= steps[i]) step = i;
  const last = steps[steps.length - 1];
  if (downSeconds >= last + dailyAfterLastStepSeconds) {
    step = steps.length - 1 + Math.floor((downSeconds - last) / dailyAfterLastStepSeconds);
  }
  return step;
}

/** Lets through the first `vm-restart-failing` of each step per VM; a restart or eviction resets it. */
export function createEscalationFilter(): (event: RestarterEvent) => boolean {
  const sentStep = new Map<string, number>();
  return (event) => {
    if (!("vm" in event) || event.vm === undefined || event.resourceGroup === undefined) return true;
    const key = `${event.resourceGroup}/${event.vm}`.toLowerCase();
    if (event.type === "vm-restarted" || event.type === "vm-evicted") {
      sentStep.delete(key);
      return true;
    }
    if (event.type !== "vm-restart-failing") return true;
    const step = escalationStep(event.downSeconds);
    if (step < 0 || step <= (sentStep.get(key) ?? -1)) return false;
    sentStep.set(key, step);
    return true;
  };
}
