// August write-back Pack: three Coda actions that send a staff edit to August's
// `PATCH /api/...` endpoints, so the edit lands in Postgres (the system of record).
//
// Each action takes the row's key, the editor's email and the staff-owned fields to
// set; a field left empty in the automation is not sent. The field lists below mirror
// `schema/src/writeback.rs` (TARGETS); `tests/coda_pack.rs` fails if they drift apart.
import * as coda from "@codahq/packs-sdk";

// Where August's webhook server answers. Edit both lines before `upload`: the fetcher
// reaches only the network domain the Pack declares (and its sub-domains), over HTTPS.
const AUGUST_URL = "https://august.example-clinic.org";
const AUGUST_DOMAIN = "example-clinic.org";

export const pack = coda.newPack();

pack.addNetworkDomain(AUGUST_DOMAIN);

// One system-wide secret (August's CODA_WRITEBACK_TOKEN), entered once by the Pack's
// maker under Settings > Add system authentication; Coda sends it on every fetch as
// `Authorization: Bearer <token>`. Doc users never see it.
pack.setSystemAuthentication({
  type: coda.AuthenticationType.HeaderBearerToken,
});

// How a field's value travels: Coda hands the action a JavaScript value per parameter
// type, and August wants JSON of the column's type.
type Kind = "text" | "boolean" | "date" | "timestamp" | "integer" | "list";

interface Field {
  name: string;
  kind: Kind;
  description: string;
}

interface Target {
  action: string;
  description: string;
  path: string;
  key: string;
  keyDescription: string;
  fields: Field[];
}

function field(name: string, kind: Kind, description: string): Field {
  return { name, kind, description };
}

const TARGETS: Target[] = [
  {
    action: "UpdateIntake",
    description: "Sends a staff edit of an intake checklist to August.",
    path: "/api/intake/",
    key: "appointment_id",
    keyDescription: "The checklist's appointment id (the row's key column).",
    fields: [
      field("status", "text", "not_started, in_progress, complete or blocked."),
      field("demographics_complete", "boolean", "Demographics complete."),
      field("insurance_verified", "boolean", "Insurance verified."),
      field("consent_signed", "boolean", "Consent signed."),
      field("questionnaires_sent", "boolean", "Questionnaires sent."),
      field("questionnaires_complete", "boolean", "Questionnaires complete."),
      field("id_verified", "boolean", "ID verified."),
      field("payment_method_on_file", "boolean", "Payment method on file."),
      field("assigned_to", "text", "The assignee's email; empty clears it."),
      field("notes", "text", "Notes; empty clears them."),
    ],
  },
  {
    action: "UpdateTask",
    description: "Sends a staff edit of a post-appointment task to August.",
    path: "/api/tasks/",
    key: "task_id",
    keyDescription: "The task's id (the row's key column).",
    fields: [
      field("task_type", "text", "schedule_follow_up, send_prescription, order_labs, referral, ..."),
      field("title", "text", "The title (1 to 500 characters)."),
      field("details", "text", "Details; empty clears them."),
      field("status", "text", "open, in_progress, done or cancelled."),
      field("priority", "text", "low, normal, high or urgent."),
      field("assigned_to", "text", "The assignee's email; empty clears it."),
      field("due_date", "date", "The due date."),
    ],
  },
  {
    action: "UpdatePriorAuth",
    description: "Sends a staff edit of a prior authorization to August.",
    path: "/api/prior-auth/",
    key: "auth_id",
    keyDescription: "The prior authorization's id (the row's key column).",
    fields: [
      field("insurance_type", "text", "primary, secondary or tertiary."),
      field("item_type", "text", "medication, procedure or service."),
      field("item_name", "text", "The medication, procedure or service."),
      field("item_code", "text", "CPT, HCPCS or NDC code; empty clears it."),
      field("icd10_codes", "list", "The ICD-10 codes."),
      field("status", "text", "draft, submitted, pending, approved, denied, appealed, expired or cancelled."),
      field("auth_number", "text", "The payer's authorization number (required once approved)."),
      field("submitted_at", "timestamp", "When it was submitted."),
      field("decided_at", "timestamp", "When the payer decided."),
      field("valid_from", "date", "First day it covers."),
      field("valid_until", "date", "Last day it covers."),
      field("units_approved", "integer", "Units approved (0 or more)."),
      field("assigned_to", "text", "The assignee's email; empty clears it."),
      field("notes", "text", "Notes; empty clears them."),
    ],
  },
];

const PARAMETER_TYPES = {
  text: coda.ParameterType.String,
  boolean: coda.ParameterType.Boolean,
  date: coda.ParameterType.Date,
  timestamp: coda.ParameterType.Date,
  integer: coda.ParameterType.Number,
  list: coda.ParameterType.StringArray,
} as const;

// A Date parameter arrives as midnight in the doc's timezone: read the calendar day
// there, not in UTC.
function calendarDay(value: Date, timezone: string): string {
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone: timezone,
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
  }).formatToParts(value);
  const part = (type: string) => parts.find((p) => p.type === type)?.value ?? "";
  return `${part("year")}-${part("month")}-${part("day")}`;
}

function encode(kind: Kind, value: unknown, timezone: string): unknown {
  switch (kind) {
    case "text":
      return value === "" ? null : value;
    case "date":
      return calendarDay(value as Date, timezone);
    case "timestamp":
      return (value as Date).toISOString();
    case "list":
      return (value as string[]).filter((code) => code !== "");
    default:
      return value;
  }
}

// What August says when it refuses, for the automation's run history: the error's
// code and message (ids and column names only, never a value). The body is parsed JSON
// in Coda; where it is not (the CLI's emulation), it is the JSON after "<status> - ".
function refusal(error: unknown): Error {
  const status = error as coda.StatusCodeError;
  let body: any = status?.body;
  if (body === undefined && typeof status?.message === "string") {
    body = status.message.slice(status.message.indexOf(" - ") + 3);
  }
  if (typeof body === "string") {
    try {
      body = JSON.parse(body);
    } catch {
      body = undefined;
    }
  }
  const detail = body?.error;
  if (status?.statusCode && detail?.code) {
    return new coda.UserVisibleError(`August refused the edit (${status.statusCode} ${detail.code}): ${detail.message}`);
  }
  return error as Error;
}

for (const target of TARGETS) {
  pack.addFormula({
    name: target.action,
    description: target.description,
    isAction: true,
    resultType: coda.ValueType.String,
    parameters: [
      coda.makeParameter({ type: coda.ParameterType.String, name: target.key, description: target.keyDescription }),
      coda.makeParameter({
        type: coda.ParameterType.String,
        name: "edited_by",
        description: "The editor's email: User().Email in the automation.",
      }),
      ...target.fields.map((f) =>
        coda.makeParameter({ type: PARAMETER_TYPES[f.kind], name: f.name, description: f.description, optional: true }),
      ),
      coda.makeParameter({
        type: coda.ParameterType.String,
        name: "expected_updated_at",
        description: "The updated_at this edit was made against (a previous run's result); stale means 409.",
        optional: true,
      }),
      coda.makeParameter({
        type: coda.ParameterType.String,
        name: "coda_row_id",
        description: "The Coda row's id, so August can correct this row if it refuses the edit.",
        optional: true,
      }),
    ],
    execute: async function (args, context) {
      const [key, editedBy, ...rest] = args as unknown[];
      const body: Record<string, unknown> = { edited_by: editedBy };
      target.fields.forEach((f, i) => {
        if (rest[i] !== undefined) {
          body[f.name] = encode(f.kind, rest[i], context.timezone);
        }
      });
      const [expectedUpdatedAt, codaRowId] = rest.slice(target.fields.length);
      if (expectedUpdatedAt) {
        body.expected_updated_at = expectedUpdatedAt;
      }
      if (codaRowId) {
        body.coda_row_id = codaRowId;
      }
      let response: coda.FetchResponse;
      try {
        response = await context.fetcher.fetch({
          method: "PATCH",
          url: AUGUST_URL + target.path + encodeURIComponent(String(key)),
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify(body),
        });
      } catch (error) {
        throw refusal(error);
      }
      // The stored row: its updated_at is what the next edit may name as expected.
      return String(response.body?.updated_at ?? "OK");
    },
  });
}
