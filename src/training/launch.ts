/**
 * Starting and stopping a trainer process: TRAINER_PYTHON with the script and its arguments as an
 * array (never a shell string), detached in a process group of its own so that stopping it reaches
 * everything it started (accelerate, dataloader workers). Stop = SIGINT to the group (kohya and
 * ai-toolkit both stop on KeyboardInterrupt), then SIGKILL after a grace period.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import type { Logger } from 'pino';

export interface TrainerProcess {
  readonly pid: number;
  readonly child: ChildProcess;
  /** Resolves when the process has exited. */
  readonly exited: Promise<{ exitCode: number | null; signal: NodeJS.Signals | null }>;
  /** SIGINT to the group, SIGKILL after `graceMs` if still running. Resolves on exit. */
  stop(graceMs: number): Promise<void>;
}

export interface LaunchOptions {
  python: string;
  /** args[0] is the script. */
  args: string[];
  cwd: string;
  env?: NodeJS.ProcessEnv;
  logger: Logger;
}

function signalGroup(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false; // already gone
  }
}

export function launchTrainer(options: LaunchOptions): TrainerProcess {
  const child = spawn(options.python, options.args, {
    cwd: options.cwd,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    // Unbuffered, so progress arrives as it happens rather than in 4 KB blocks.
    env: { ...process.env, ...options.env, PYTHONUNBUFFERED: '1' },
  });
  let spawnError: Error | undefined;
  const exited = new Promise<{ exitCode: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('error', (err) => {
      spawnError = err;
      resolve({ exitCode: 127, signal: null });
    });
    child.once('close', (exitCode, signal) => resolve({ exitCode, signal }));
  });
  if (child.pid === undefined) {
    // spawn failed synchronously (e.g. ENOENT is reported through 'error'); report it like a shell would.
    options.logger.error({ python: options.python, err: spawnError }, 'the trainer could not be started');
  }
  const pid = child.pid ?? -1;
  options.logger.info(
    { pid, python: options.python, script: options.args[0], cwd: options.cwd },
    'trainer started',
  );

  let stopping: Promise<void> | undefined;
  return {
    pid,
    child,
    exited,
    stop(graceMs: number) {
      stopping ??= (async () => {
        if (pid <= 0) return;
        signalGroup(pid, 'SIGINT');
        let timer: NodeJS.Timeout | undefined;
        const graceOver = new Promise<'timeout'>(
          (resolve) => (timer = setTimeout(() => resolve('timeout'), graceMs)),
        );
        const outcome = await Promise.race([exited.then(() => 'exited' as const), graceOver]);
        clearTimeout(timer);
        if (outcome === 'timeout') {
          options.logger.warn({ pid }, 'trainer did not stop on SIGINT; killing its process group');
          signalGroup(pid, 'SIGKILL');
        }
        await exited;
        // Children that ignored the group signal (or were re-parented) go too.
        signalGroup(pid, 'SIGKILL');
      })();
      return stopping;
    },
  };
}

/**
 * The pid file of a work dir: a runner that died leaves its trainer running (it is detached), so the
 * next run of the same training stops that one before starting again.
 */
export async function writePidFile(path: string, pid: number): Promise<void> {
  await writeFile(path, `${pid}\n`);
}

/** Stop a trainer left behind by a dead runner, when the pid still names a process of this work dir. */
export async function stopLeftoverTrainer(
  pidFile: string,
  workDir: string,
  graceMs: number,
  logger: Logger,
): Promise<boolean> {
  const text = await readFile(pidFile, 'utf8').catch(() => null);
  if (!text) return false;
  const pid = Number(text.trim());
  await rm(pidFile, { force: true });
  if (!Number.isInteger(pid) || pid <= 1) return false;
  // A recycled pid must not be killed: check the command line mentions this work dir.
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  if (!cmdline.replaceAll('\0', ' ').includes(workDir)) return false;
  logger.warn({ pid }, 'a trainer from an earlier run of this training is still running; stopping it');
  signalGroup(pid, 'SIGINT');
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    if (!(await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => ''))) return true;
  }
  signalGroup(pid, 'SIGKILL');
  while (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => ''))
    await new Promise((r) => setTimeout(r, 50));
  return true;
}
