// The shared entry point of `npm run bench` and `npm run experiment`: pick a named job from a
// table, run it with the remaining arguments, or print the table.
export type Jobs = Record<string, { run: (args: string[]) => Promise<void>; about: string }>;

export async function dispatch(command: string, jobs: Jobs, argv: readonly string[] = process.argv.slice(2)): Promise<void> {
  const [name, ...args] = argv;
  const job = name ? jobs[name] : undefined;
  if (!job) {
    const width = Math.max(...Object.keys(jobs).map((k) => k.length)) + 1;
    console.error(`usage: npm run ${command} -- <name> [options]\n${Object.entries(jobs).map(([k, j]) => `  ${k.padEnd(width)} ${j.about}`).join("\n")}`);
    process.exit(name ? 1 : 0);
  }
  await job.run(args);
}
