// What is derived from the config schema (configSchema.ts) by reading its fields' metadata: the env and
// flag table (`overridableFields`, used by config.ts, cliArgs.ts and help.ts) and the reference rows
// (`describeConfigFields`, rendered into docs/runtime-config.md by configDocs.ts).
import { z } from "zod";
import { type ConfigField, type ConfigFieldMeta, configSchema } from "./configSchema";

/** Peels `.default()`, `.prefault()`, `.optional()` and transforms off a field's schema. */
export function innerSchema(schema: z.ZodType): z.ZodType {
  let current = schema;
  for (;;) {
    if (
      current instanceof z.ZodDefault ||
      current instanceof z.ZodPrefault ||
      current instanceof z.ZodOptional
    ) {
      current = current.unwrap() as z.ZodType;
    } else if (current instanceof z.ZodPipe) {
      current = current.in as z.ZodType;
    } else return current;
  }
}

export const fieldMeta = (schema: z.ZodType) => schema.meta() as ConfigFieldMeta | undefined;

/** A config field the environment and the command line may set. */
export interface OverridableField {
  readonly field: ConfigField;
  readonly env: string;
  readonly flag: string;
  readonly arg: string;
  readonly description: string;
  /** Its value is a number: the string from the environment or the flag is converted first. */
  readonly numeric: boolean;
  /** The schema's default, if any. */
  readonly default: unknown;
}

/** The fields with an environment variable and a flag, from the schema's metadata. */
export const overridableFields: readonly OverridableField[] = Object.entries(configSchema.shape).flatMap(
  ([field, schema]) => {
    const m = fieldMeta(schema);
    if (!m?.env || !m.flag) return [];
    return [
      {
        field: field as ConfigField,
        env: m.env,
        flag: m.flag,
        arg: m.arg ?? "VALUE",
        description: m.description,
        numeric: innerSchema(schema) instanceof z.ZodNumber,
        default: schema instanceof z.ZodDefault ? schema.def.defaultValue : undefined,
      },
    ];
  },
);

/** The environment variable that overrides `field` (a field without one is a bug of the caller's). */
export function envVariableFor(field: ConfigField): string {
  const found = overridableFields.find((f) => f.field === field);
  if (!found) throw new Error(`config field ${field} has no environment variable`);
  return found.env;
}

/** One row of the config reference: a field (nested ones dotted), from the schema. */
export interface ConfigFieldDescription {
  readonly field: string;
  readonly required: boolean;
  /** The default when the field is left out (undefined: none). */
  readonly default: unknown;
  readonly description: string;
  readonly env?: string;
  readonly flag?: string;
}

/** Every field of the config file, nested fields after their parent, for a reference table. */
export function describeConfigFields(
  shape: Readonly<Record<string, z.ZodType>> = configSchema.shape,
  prefix = "",
): ConfigFieldDescription[] {
  return Object.entries(shape).flatMap(([name, schema]) => {
    const m = fieldMeta(schema);
    const inner = innerSchema(schema);
    const row: ConfigFieldDescription = {
      field: `${prefix}${name}`,
      required: !(
        schema instanceof z.ZodDefault ||
        schema instanceof z.ZodPrefault ||
        schema instanceof z.ZodOptional
      ),
      default:
        m?.defaultValue ??
        (schema instanceof z.ZodDefault ? structuredClone(schema.def.defaultValue) : undefined),
      description: m?.description ?? "",
      ...(m?.env ? { env: m.env } : {}),
      ...(m?.flag ? { flag: `--${m.flag}` } : {}),
    };
    const nested = inner instanceof z.ZodObject ? describeConfigFields(inner.shape, `${prefix}${name}.`) : [];
    return [row, ...nested];
  });
}
