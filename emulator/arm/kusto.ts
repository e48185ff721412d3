// Resource Graph's query language, as far as the emulator needs it. Every query is parsed and
// semantically checked by Microsoft's own Kusto parser (`@kusto/language-service-next`, the one the
// Azure portal's editors use) against the declared schema of the tables below, so a query Azure would
// reject (a syntax error, an unknown table, column or function) is rejected here too. The checked
// syntax tree is then executed for the operator subset the runtime uses: where, extend, project,
// order/sort by, take/limit, summarize arg_max(...) by. A valid query using anything else is answered
// as not implemented by the emulator, never silently mis-evaluated.
// Language reference: https://learn.microsoft.com/azure/governance/resource-graph/concepts/query-language
import { createRequire } from "node:module";

/** One Resource Graph row: a resource (or a health record) with its top-level columns. */
export type Row = Record<string, unknown>;

/**
 * The columns Resource Graph declares for its resource tables (`Resources`, `HealthResources`, …):
 * https://learn.microsoft.com/azure/governance/resource-graph/concepts/query-language#resource-graph-tables
 * (the same schema for every table of resources; `properties`, `tags`, `sku`… are dynamic).
 */
export const RESOURCE_TABLE_COLUMNS: ReadonlyArray<readonly [string, "string" | "dynamic"]> = [
  ["id", "string"],
  ["name", "string"],
  ["type", "string"],
  ["tenantId", "string"],
  ["kind", "string"],
  ["location", "string"],
  ["resourceGroup", "string"],
  ["subscriptionId", "string"],
  ["managedBy", "string"],
  ["sku", "dynamic"],
  ["plan", "dynamic"],
  ["properties", "dynamic"],
  ["tags", "dynamic"],
  ["identity", "dynamic"],
  ["zones", "dynamic"],
  ["extendedLocation", "dynamic"],
];

/** The schema in Kusto's notation; names are quoted (`kind` is a keyword, unquoted it ends the list). */
const RESOURCE_TABLE_SCHEMA = `(${RESOURCE_TABLE_COLUMNS.map(([name, type]) => `['${name}']:${type}`).join(", ")})`;

/** The tables the emulator serves; Resource Graph table names are case-insensitive. */
export const RESOURCE_GRAPH_TABLES = ["resources", "healthresources", "spotresources"] as const;
export type ResourceGraphTable = (typeof RESOURCE_GRAPH_TABLES)[number];

export interface KustoDiagnostic {
  code: string;
  message: string;
  start: number;
  length: number;
}

/** A query Azure would reject: the parser's diagnostics. */
export class KustoQueryError extends Error {
  constructor(readonly diagnostics: KustoDiagnostic[]) {
    super(diagnostics.map((d) => `${d.code}: ${d.message}`).join("; "));
  }
}

/** A valid query that uses something the emulator does not execute. */
export class KustoNotImplementedError extends Error {}

// biome-ignore lint/suspicious/noExplicitAny: the Bridge.NET build ships no usable module types.
type BridgeNode = any;

interface Kusto {
  parse(query: string): BridgeNode;
  kindName(node: BridgeNode): string;
}

let loaded: Kusto | undefined;

/** Loads the parser once (about a second: 20 MB of Bridge.NET), on the first query. */
function kusto(): Kusto {
  if (loaded) return loaded;
  const load = createRequire(__filename);
  load("@kusto/language-service-next/bridge.min.js");
  load("@kusto/language-service-next/Kusto.Language.Bridge.min.js");
  // biome-ignore lint/suspicious/noExplicitAny: globals installed by the Bridge.NET runtime.
  const language = (globalThis as any).Kusto.Language;
  const symbols = language.Symbols;
  // Kusto names are case-sensitive, Resource Graph's table names are not: people write
  // `Resources` and `resources`, `HealthResources` and `healthresources`.
  const spellings = {
    resources: "Resources",
    healthresources: "HealthResources",
    spotresources: "SpotResources",
  };
  const tables = RESOURCE_GRAPH_TABLES.flatMap((name) =>
    [name, spellings[name]].map(
      (spelling) => new symbols.TableSymbol.$ctor7(spelling, RESOURCE_TABLE_SCHEMA, null),
    ),
  );
  const database = new symbols.DatabaseSymbol.$ctor1("resourcegraph", tables, false);
  const globals = language.GlobalState.Default.WithDatabase(database);
  const kinds: Record<number, string> = {};
  for (const [name, value] of Object.entries(language.Syntax.SyntaxKind)) {
    if (typeof value === "number") kinds[value] = name;
  }
  loaded = {
    parse(query) {
      const code = language.KustoCode.ParseAndAnalyze(query, globals);
      const list = code.GetDiagnostics();
      const diagnostics: KustoDiagnostic[] = [];
      for (let i = 0; i < list.Count; i++) {
        const d = list.getItem(i);
        if (d.Severity === "Error") {
          diagnostics.push({ code: d.Code, message: d.Message, start: d.Start, length: d.Length });
        }
      }
      if (diagnostics.length > 0) throw new KustoQueryError(diagnostics);
      return code.Syntax;
    },
    kindName: (node) => kinds[node.Kind] ?? String(node.Kind),
  };
  return loaded;
}

/**
 * Loads the parser and runs one query through it. The first load and the first analysis take seconds
 * (Bridge.NET initialises the whole language service), so the emulator pays that at start, not on a
 * client's first Resource Graph query, whose caller would see a multi-second stall.
 */
export function warmResourceGraph(): void {
  runQuery(
    "healthresources | where type =~ 'x' | extend t = tolower(tostring(properties.targetResourceId)) | where t in ('a') | project t, n = tostring(properties.annotationName), o = todatetime(properties.occurredTime)",
    { resources: [], healthresources: [], spotresources: [] },
  );
}

/** Parses and checks `query`, then runs it over `tables`. Throws KustoQueryError / KustoNotImplementedError. */
export function runQuery(query: string, tables: Record<ResourceGraphTable, Row[]>): Row[] {
  return runQueryDetailed(query, tables).rows;
}

/** A query's rows, and whether a `take`/`limit` operator shaped them (which rules out paging). */
export interface QueryOutcome {
  rows: Row[];
  usesTake: boolean;
}

/** runQuery, also saying whether the query limited its own rows (Resource Graph then cannot page it). */
export function runQueryDetailed(query: string, tables: Record<ResourceGraphTable, Row[]>): QueryOutcome {
  const k = kusto();
  const root = k.parse(query);
  const statements = descendants(k, root, "ExpressionStatement");
  if (statements.length !== 1) {
    throw new KustoNotImplementedError("the emulator runs single-statement queries only (no let)");
  }
  const evaluator = new Evaluator(k, tables);
  const rows = evaluator.tabular(childNodes(statements[0])[0]);
  return { rows, usesTake: evaluator.usesTake };
}

function children(node: BridgeNode): BridgeNode[] {
  const out: BridgeNode[] = [];
  for (let i = 0; i < node.ChildCount; i++) {
    const child = node.GetChild(i);
    if (child) out.push(child);
  }
  return out;
}

/** Children that are not tokens (tokens have no children and a text). */
function childNodes(node: BridgeNode): BridgeNode[] {
  return children(node).filter((child) => !child.IsToken);
}

function descendants(k: Kusto, node: BridgeNode, kind: string): BridgeNode[] {
  const out: BridgeNode[] = [];
  const visit = (n: BridgeNode) => {
    if (k.kindName(n) === kind) out.push(n);
    for (const child of children(n)) visit(child);
  };
  visit(node);
  return out;
}

/** The elements of a separated list (`a, b, c`), whatever wraps them. */
function listElements(k: Kusto, node: BridgeNode): BridgeNode[] {
  const list = k.kindName(node) === "List" ? node : children(node).find((c) => k.kindName(c) === "List");
  if (!list) return [];
  return children(list).map((element) =>
    k.kindName(element) === "SeparatedElement" ? childNodes(element)[0] : element,
  );
}

function tokenText(node: BridgeNode): string {
  return String(node.toString()).trim();
}

/** A Kusto datetime value (kept apart from strings so comparisons and output are right). */
class KustoDate {
  constructor(readonly ms: number) {}
  toJSON(): string {
    return new Date(this.ms).toISOString();
  }
}

function scalarString(value: unknown): string {
  if (value === null || value === undefined) return "";
  if (value instanceof KustoDate) return value.toJSON();
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

function toDate(value: unknown): KustoDate | null {
  if (value instanceof KustoDate) return value;
  if (typeof value !== "string" || value === "") return null;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? null : new KustoDate(ms);
}

function compare(a: unknown, b: unknown): number {
  if (a instanceof KustoDate || b instanceof KustoDate) {
    const x = toDate(a)?.ms ?? Number.NaN;
    const y = toDate(b)?.ms ?? Number.NaN;
    return x === y ? 0 : x < y ? -1 : 1;
  }
  if (typeof a === "number" && typeof b === "number") return a === b ? 0 : a < b ? -1 : 1;
  const x = scalarString(a);
  const y = scalarString(b);
  return x === y ? 0 : x < y ? -1 : 1;
}

class Evaluator {
  /** A take/limit operator ran (Resource Graph answers such a query without a $skipToken). */
  usesTake = false;

  constructor(
    private readonly k: Kusto,
    private readonly tables: Record<ResourceGraphTable, Row[]>,
  ) {}

  tabular(node: BridgeNode): Row[] {
    const kind = this.k.kindName(node);
    if (kind === "NameReference") {
      const name = tokenText(node).toLowerCase() as ResourceGraphTable;
      return (this.tables[name] ?? []).map((row) => ({ ...row }));
    }
    if (kind === "ParenthesizedExpression") return this.tabular(childNodes(node)[0]);
    if (kind !== "PipeExpression") {
      throw new KustoNotImplementedError(`the emulator does not run a ${kind} as a table`);
    }
    const [source, operator] = childNodes(node);
    return this.operator(this.tabular(source), operator);
  }

  private operator(rows: Row[], node: BridgeNode): Row[] {
    const kind = this.k.kindName(node);
    const parts = childNodes(node);
    switch (kind) {
      case "FilterOperator": {
        const condition = parts[parts.length - 1];
        return rows.filter((row) => this.scalar(condition, row) === true);
      }
      case "ExtendOperator":
        return rows.map((row) => {
          const out = { ...row };
          for (const [name, expr] of this.namedExpressions(node)) out[name] = this.scalar(expr, row);
          return out;
        });
      case "ProjectOperator":
        return rows.map((row) => {
          const out: Row = {};
          for (const [name, expr] of this.namedExpressions(node)) out[name] = this.scalar(expr, row);
          return out;
        });
      case "SortOperator": {
        const keys = listElements(this.k, parts[parts.length - 1]).map((ordered) => {
          const [expr, clause] = childNodes(ordered);
          // Kusto sorts descending unless told `asc`.
          const ascending = clause !== undefined && /\basc\b/i.test(tokenText(clause));
          return { expr: this.k.kindName(ordered) === "OrderedExpression" ? expr : ordered, ascending };
        });
        return [...rows].sort((a, b) => {
          for (const key of keys) {
            const order = compare(this.scalar(key.expr, a), this.scalar(key.expr, b));
            if (order !== 0) return key.ascending ? order : -order;
          }
          return 0;
        });
      }
      case "TakeOperator": {
        this.usesTake = true;
        const count = Number(this.scalar(parts[parts.length - 1], {}));
        return rows.slice(0, count);
      }
      case "SummarizeOperator":
        return this.summarizeArgMax(rows, node);
      default:
        throw new KustoNotImplementedError(`the emulator does not implement the ${kind} operator`);
    }
  }

  /** `summarize arg_max(expr, *) by col, …`: per group, the row where expr is largest. */
  private summarizeArgMax(rows: Row[], node: BridgeNode): Row[] {
    const parts = childNodes(node);
    // The operator's children: its (usually empty) parameter list, the aggregates, the by clause.
    const lists = parts.filter((part) => this.k.kindName(part) === "List");
    const aggregates = listElements(this.k, lists[lists.length - 1]);
    const call = aggregates[0];
    const name = call ? tokenText(childNodes(call)[0]).toLowerCase() : "";
    const args = call ? listElements(this.k, childNodes(call)[1]) : [];
    if (aggregates.length !== 1 || name !== "arg_max" || args.length !== 2 || tokenText(args[1]) !== "*") {
      throw new KustoNotImplementedError("the emulator runs only `summarize arg_max(expr, *) by …`");
    }
    const byClause = parts.find((part) => this.k.kindName(part) === "SummarizeByClause");
    const keys = byClause ? listElements(this.k, childNodes(byClause)[0]) : [];
    const best = new Map<string, { value: unknown; row: Row }>();
    for (const row of rows) {
      const group = JSON.stringify(keys.map((key) => scalarString(this.scalar(key, row))));
      const value = this.scalar(args[0], row);
      const current = best.get(group);
      if (!current || compare(value, current.value) > 0) best.set(group, { value, row });
    }
    return [...best.values()].map(({ row }) => ({ ...row }));
  }

  /** `name = expr` or a bare column reference, as extend and project take them. */
  private namedExpressions(node: BridgeNode): Array<[string, BridgeNode]> {
    const parts = childNodes(node);
    return listElements(this.k, parts[parts.length - 1]).map((element, index) => {
      const kind = this.k.kindName(element);
      if (kind === "SimpleNamedExpression") {
        const [declaration, expr] = childNodes(element);
        return [tokenText(declaration), expr];
      }
      if (kind === "NameReference") return [tokenText(element), element];
      return [`Column${index + 1}`, element];
    });
  }

  scalar(node: BridgeNode, row: Row): unknown {
    const k = this.k;
    const kind = k.kindName(node);
    const parts = childNodes(node);
    switch (kind) {
      case "StringLiteralExpression":
      case "LongLiteralExpression":
      case "IntLiteralExpression":
      case "RealLiteralExpression":
      case "BooleanLiteralExpression":
        return node.LiteralValue;
      case "DateTimeLiteralExpression":
        return toDate(/datetime\((.*)\)/i.exec(tokenText(node))?.[1]?.trim() ?? "");
      case "NameReference":
        return row[tokenText(node)];
      case "ParenthesizedExpression":
        return this.scalar(parts[0], row);
      case "PathExpression": {
        const target = this.scalar(parts[0], row);
        const member = tokenText(parts[1]);
        return target && typeof target === "object" ? (target as Row)[member] : undefined;
      }
      case "ElementExpression": {
        const target = this.scalar(parts[0], row);
        const index = this.scalar(childNodes(parts[1])[0], row);
        return target && typeof target === "object"
          ? (target as Record<string | number, unknown>)[index as string]
          : undefined;
      }
      case "AndExpression":
        return this.scalar(parts[0], row) === true && this.scalar(parts[1], row) === true;
      case "OrExpression":
        return this.scalar(parts[0], row) === true || this.scalar(parts[1], row) === true;
      case "EqualExpression":
        return compare(this.scalar(parts[0], row), this.scalar(parts[1], row)) === 0;
      case "NotEqualExpression":
        return compare(this.scalar(parts[0], row), this.scalar(parts[1], row)) !== 0;
      case "EqualTildeExpression":
        return (
          scalarString(this.scalar(parts[0], row)).toLowerCase() ===
          scalarString(this.scalar(parts[1], row)).toLowerCase()
        );
      case "BangTildeExpression":
        return (
          scalarString(this.scalar(parts[0], row)).toLowerCase() !==
          scalarString(this.scalar(parts[1], row)).toLowerCase()
        );
      case "LessThanExpression":
        return compare(this.scalar(parts[0], row), this.scalar(parts[1], row)) < 0;
      case "LessThanOrEqualExpression":
        return compare(this.scalar(parts[0], row), this.scalar(parts[1], row)) <= 0;
      case "GreaterThanExpression":
        return compare(this.scalar(parts[0], row), this.scalar(parts[1], row)) > 0;
      case "GreaterThanOrEqualExpression":
        return compare(this.scalar(parts[0], row), this.scalar(parts[1], row)) >= 0;
      // `in` is case-sensitive; `in~` ("InCs" in the parser's names) is not.
      case "InExpression":
      case "NotInExpression":
      case "InCsExpression":
      case "NotInCsExpression": {
        const fold = kind.includes("Cs") ? (s: string) => s.toLowerCase() : (s: string) => s;
        const value = fold(scalarString(this.scalar(parts[0], row)));
        const found = listElements(k, parts[1]).some(
          (item) => fold(scalarString(this.scalar(item, row))) === value,
        );
        return kind.startsWith("Not") ? !found : found;
      }
      case "FunctionCallExpression":
        return this.call(tokenText(parts[0]).toLowerCase(), listElements(k, parts[1]), row);
      default:
        throw new KustoNotImplementedError(`the emulator does not implement ${kind}`);
    }
  }

  private call(name: string, args: BridgeNode[], row: Row): unknown {
    const values = () => args.map((arg) => this.scalar(arg, row));
    switch (name) {
      case "tostring":
        return scalarString(values()[0]);
      case "todouble":
      case "toreal": {
        const value = values()[0];
        const number = typeof value === "number" ? value : Number.parseFloat(scalarString(value));
        return Number.isNaN(number) ? null : number;
      }
      case "tolower":
        return scalarString(values()[0]).toLowerCase();
      case "toupper":
        return scalarString(values()[0]).toUpperCase();
      case "todatetime":
        return toDate(values()[0]);
      case "isnotempty":
        return scalarString(values()[0]) !== "";
      case "isempty":
        return scalarString(values()[0]) === "";
      case "now":
        return new KustoDate(Date.now());
      case "strcat":
        return values().map(scalarString).join("");
      default:
        throw new KustoNotImplementedError(`the emulator does not implement the function ${name}()`);
    }
  }
}

/** Rows as JSON-ready objects (datetimes as ISO strings, as Resource Graph sends them). */
export function serializeRows(rows: Row[]): Row[] {
  return JSON.parse(JSON.stringify(rows)) as Row[];
}
