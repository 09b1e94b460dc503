/**
 * The trainers' config files as text: kohya's dataset TOML (only what it needs: tables, arrays of
 * tables, scalars and inline arrays of scalars) and ai-toolkit's YAML (through the yaml package).
 */
import { stringify } from 'yaml';

type Scalar = string | number | boolean;
type TomlValue = Scalar | Scalar[] | TomlTable | TomlTable[];
interface TomlTable {
  [key: string]: TomlValue;
}

function isTable(value: unknown): value is TomlTable {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function scalar(value: Scalar): string {
  if (typeof value === 'string') return JSON.stringify(value); // JSON escapes are valid TOML basic-string escapes
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new Error(`TOML cannot hold ${value}`);
    return String(value);
  }
  return value ? 'true' : 'false';
}

function emitTable(table: TomlTable, path: string, out: string[]): void {
  const nested: [string, TomlTable | TomlTable[]][] = [];
  for (const [key, value] of Object.entries(table)) {
    if (isTable(value) || (Array.isArray(value) && value.length > 0 && value.every(isTable))) {
      nested.push([key, value as TomlTable | TomlTable[]]);
    } else if (Array.isArray(value)) {
      out.push(`${key} = [${(value as Scalar[]).map(scalar).join(', ')}]`);
    } else {
      out.push(`${key} = ${scalar(value as Scalar)}`);
    }
  }
  for (const [key, value] of nested) {
    const child = path ? `${path}.${key}` : key;
    for (const item of Array.isArray(value) ? value : [value]) {
      out.push('', Array.isArray(value) ? `[[${child}]]` : `[${child}]`);
      emitTable(item, child, out);
    }
  }
}

export function toToml(document: TomlTable): string {
  const out: string[] = [];
  emitTable(document, '', out);
  return `${out.join('\n').trimStart()}\n`;
}

export function toYaml(document: Record<string, unknown>): string {
  return stringify(document, { lineWidth: 0 });
}
