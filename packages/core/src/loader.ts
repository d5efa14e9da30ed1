// Loads the user's task module named by JOBBERS_TASKS / --tasks: a path or a package name.
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { JobbersError } from './errors.js';
import { TaskRegistry, tasksFromModule } from './task.js';

function resolveSpecifier(specifier: string, cwd: string): string {
  const looksLikePath =
    specifier.startsWith('.') || path.isAbsolute(specifier) || /\.[cm]?[jt]s$/.test(specifier);
  if (looksLikePath) return pathToFileURL(path.resolve(cwd, specifier)).href;
  const require = createRequire(path.join(cwd, 'package.json'));
  return pathToFileURL(require.resolve(specifier)).href;
}

export async function loadTasks(specifier: string, cwd = process.cwd()): Promise<TaskRegistry> {
  let mod: Record<string, unknown>;
  try {
    mod = await import(resolveSpecifier(specifier, cwd));
  } catch (error) {
    throw new JobbersError(
      'TASKS_MODULE_INVALID',
      `cannot load tasks module "${specifier}" (JOBBERS_TASKS / --tasks): ${(error as Error).message}`,
    );
  }
  const definitions = tasksFromModule(mod);
  if (definitions.length === 0) {
    throw new JobbersError(
      'TASKS_MODULE_INVALID',
      `tasks module "${specifier}" defines no tasks: export the results of defineTask()`,
    );
  }
  return new TaskRegistry(definitions);
}
