// The bench's fleet check judges start requests as Azure received them by Compute's documented per-VM
// Start bucket (12, refilled at 4 per minute: https://learn.microsoft.com/azure/virtual-machines/compute-throttling-limits).
// Hand-worked cases, times in minutes.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { overdrawsPerVmBucket } from "../../bench/outage";

describe("bench fleet: Compute's per-VM Start bucket", () => {
  it("a full bucket takes 12 at once, not 13", () => {
    assert.equal(overdrawsPerVmBucket(Array(12).fill(0)), false);
    assert.equal(overdrawsPerVmBucket(Array(13).fill(0)), true);
  });

  it("refills 4 a minute: the 13th fits a quarter minute after 12 at once, not a tenth of one", () => {
    assert.equal(overdrawsPerVmBucket([...Array(12).fill(0), 0.25]), false);
    assert.equal(overdrawsPerVmBucket([...Array(12).fill(0), 0.1]), true);
  });

  it("once a minute, or even a start every 50 s, never empties it", () => {
    assert.equal(overdrawsPerVmBucket(Array.from({ length: 200 }, (_, i) => i)), false);
    assert.equal(overdrawsPerVmBucket(Array.from({ length: 200 }, (_, i) => (i * 50) / 60)), false);
    assert.equal(overdrawsPerVmBucket([]), false);
  });

  it("five a minute for long enough does (the refill is four)", () => {
    assert.equal(overdrawsPerVmBucket(Array.from({ length: 200 }, (_, i) => i / 5)), true);
  });
});
