// Loaded with `node --require` into a runtime process the benchmark measures. It changes nothing the
// runtime does: it notes CPU time and memory at every `cycle-done` log line (the runtime logs one per
// cycle at debug level), and on exit writes those samples plus process.resourceUsage() (CPU time,
// peak RSS) to $BENCH_MEASURE_FILE.
const { writeFileSync } = require("node:fs");

const file = process.env.BENCH_MEASURE_FILE;
if (file) {
  const samples = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = (chunk, ...rest) => {
    if (String(chunk).includes('"event":"cycle-done"')) {
      const cpu = process.cpuUsage();
      samples.push({ at: Date.now(), cpuMicros: cpu.user + cpu.system, rssBytes: process.memoryUsage.rss() });
    }
    return write(chunk, ...rest);
  };
  process.on("exit", () => {
    const usage = process.resourceUsage();
    writeFileSync(
      file,
      JSON.stringify({
        samples,
        cpuMicros: usage.userCPUTime + usage.systemCPUTime,
        maxRssKiB: usage.maxRSS,
        uptimeMs: Math.round(process.uptime() * 1000),
      }),
    );
  });
}
