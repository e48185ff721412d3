// CA certificates of the emulators running in this process, by origin, so the control client in
// testing.ts can reach them without trusting them process-wide.
export const knownCas = new Map<string, string>();
