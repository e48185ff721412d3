export function bundleRuntime(outfile: string): Promise<string>;
