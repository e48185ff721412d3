// Whether the credential gets tokens, remembered between cycles so a failure is reported once per
// change, not per cycle (an Entra ID outage can last hours), and its end once.

import type { EventOf } from "../core/events";
import { describeTokenFailure } from "./authFailure";

export class TokenHealth {
  private trouble: string | undefined;

  /** A token could not be had: its readable reason, and the event when the reason is new. */
  failed(error: unknown, now: number): { message: string; event?: EventOf<"auth-failing"> } {
    const { message, status, transient } = describeTokenFailure(error);
    if (this.trouble === message) return { message };
    this.trouble = message;
    return { message, event: { type: "auth-failing", at: now, status, transient, message } };
  }

  /** A request got through: the event when that ends a failure. */
  succeeded(now: number): EventOf<"token-available"> | undefined {
    if (this.trouble === undefined) return undefined;
    this.trouble = undefined;
    return { type: "token-available", at: now };
  }
}
