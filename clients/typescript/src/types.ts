/**
 * The request and response documents of the pyexec HTTP API (docs/api.md),
 * written out for readability. check/openapi-check.ts compares each of them,
 * key by key, with the types generated from docs/openapi.json, so a field
 * renamed or added on either side fails the build.
 */

/** A run's verdict. */
export type Status =
  | "ok"
  | "runtime_error"
  | "syntax_error"
  | "timeout"
  | "memory_limit"
  | "output_limit"
  | "policy_violation"
  | "internal_error";

/** The grade of a request with `tests` or `runTests`. */
export type Verdict = "accepted" | "wrong_answer" | "not_run" | Status;

/** A test case's outcome. */
export type TestStatus = "passed" | "failed" | "not_run" | Exclude<Status, "ok">;

/** A policy name: the built-ins, or one the operator defined. */
export type PolicyName = "education" | "permissive" | "science" | (string & {});

/** An extra file written into /sandbox: its text, or its bytes in base64. */
export type SandboxFile =
  | { name: string; content: string; contentBase64?: never }
  | { name: string; contentBase64: string; content?: never };

/** A graded test case. */
export interface TestCase {
  name?: string;
  stdin?: string;
  args?: string[];
  expectedOutput: string;
}

/** The body of POST /api/execute (and of one submission). */
export interface ExecuteRequest {
  code: string;
  stdin?: string;
  /** Instead of stdin: bytes that need not be text, base64 (RFC 4648, padded). */
  stdinBase64?: string;
  args?: string[];
  files?: SandboxFile[];
  /** Wall-clock limit, ms. */
  timeout?: number;
  /** CPU time of the whole process tree, ms. */
  cpuTimeout?: number;
  /** Memory of the whole process tree, MB. */
  memoryLimit?: number;
  /** stdout and stderr together, bytes. */
  maxOutput?: number;
  policy?: PolicyName;
  exerciseId?: string | number;
  /** Only with a trusted API key. */
  userId?: string;
  runTests?: boolean;
  testCode?: string;
  moduleName?: string;
  tests?: TestCase[];
  /** Only with `tests`: the time all cases may take together, ms. */
  totalTimeout?: number;
}

/** One submission: a request of /api/execute with an optional callback. */
export interface SubmissionRequest extends ExecuteRequest {
  callbackUrl?: string;
}

export interface Limits {
  timeoutMs: number;
  cpuTimeMs: number;
  memoryMb: number;
  maxOutput: number;
  pids: number;
  diskMb: number;
  fileSizeMb: number;
  openFiles: number;
}

/** An image the program produced. */
export interface ResultImage {
  format: "png";
  width: number;
  height: number;
  /** base64 */
  data: string;
}

export interface Difference {
  line: number;
  expected: string | null;
  actual: string | null;
}

export interface TestResult {
  name: string;
  status: TestStatus;
  stdout: string;
  expectedOutput: string;
  timeMs: number;
  message?: string;
  difference?: Difference;
}

export interface TestSummary {
  passed: number;
  failed: number;
  total: number;
  notRun?: number;
}

export interface JobOutput {
  path: string;
  bytes: number;
  sha256: string;
}

/** The result document: one schema for /api/execute, jobs and `pyexec run --json`. */
export interface Result {
  id: string;
  status: Status;
  exitCode: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  /** stdout and stderr interleaved in the order they were written. */
  output: string;
  truncated: boolean;
  message: string | null;
  time: { wallMs: number; cpuMs: number };
  memory: { peakKb: number };
  limits: Limits;
  images?: ResultImage[];
  imagesTruncated?: boolean;
  exerciseId?: string | number | null;
  tests?: TestResult[];
  summary?: TestSummary;
  verdict?: Verdict;
  job?: string;
  outputs?: JobOutput[];
}

/** The answer of POST /api/execute. */
export type ExecuteResult = Omit<Result, "job" | "outputs">;

/** The answer of POST /api/jobs/{name}. */
export type JobResult = Omit<Result, "exerciseId" | "tests" | "summary" | "verdict"> & {
  job: string;
  outputs: JobOutput[];
};

export type ErrorCode =
  | "invalid_request"
  | "invalid_parameter"
  | "invalid_callback_url"
  | "invalid_idempotency_key"
  | "unauthorized"
  | "origin_not_allowed"
  | "not_found"
  | "method_not_allowed"
  | "idempotency_key_reused"
  | "payload_too_large"
  | "batch_too_large"
  | "unsupported_media_type"
  | "rate_limited"
  | "internal_error"
  | "queue_full"
  | "queue_unavailable"
  | "sandbox_unavailable"
  | "shutting_down"
  | "not_ready"
  | "job_unavailable";

/** The body of a refusal. */
export interface ErrorBody {
  error: { code: ErrorCode; message: string; field?: string };
}

export type SubmissionState = "queued" | "running" | "done" | "unknown" | "unavailable";

/** GET /api/submissions/{id}. */
export interface Submission {
  id: string;
  state: SubmissionState;
  /** 0 to 1, while a job runs and once it has reported any. */
  progress?: number;
  /** Once done: what /api/execute would have answered. */
  httpStatus?: number;
  /** Once done: the result, or the error a worker answered. */
  result?: ExecuteResult | JobResult | ErrorBody;
  error?: string;
}

export interface Health {
  status: "ok" | "degraded";
  version: string;
  uptimeSeconds: number;
  ready: boolean;
  reason?: string;
  submissions?: string;
}

export interface Ready {
  status: "ready" | "not_ready";
  reason?: string;
  submissions?: string;
}

export interface JobParam {
  type: "string" | "int" | "float" | "bool" | "enum" | "input_file" | "output_file" | "output_dir";
  required: boolean;
  description?: string;
  default?: string;
  roots?: string[];
  extensions?: string[];
  maxBytes?: number;
  values?: string[];
  min?: number;
  max?: number;
  pattern?: string;
  maxLength?: number;
  flag?: string;
  /** input_file: the formats its content must be (checked by signature). */
  formats?: ("png" | "jpeg" | "webp" | "blend")[];
  /** input_file of an image format: the most pixels it may have. */
  maxPixels?: number;
  /** output_dir: the files the job writes there, their names and result keys. */
  files?: Record<string, { name?: string; result?: string }>;
  /** string: defaults to this input_file parameter's file name without extension. */
  defaultStem?: string;
}

/** One operator job of GET /api/jobs. */
export interface Job {
  name: string;
  description?: string;
  params: Record<string, JobParam>;
  readiness: { ready: boolean; problems: string[] };
}

export type JobParams = Record<string, string | number | boolean>;

/** GET /api/environment: the service's start-up self-test (`pyexec check --json`). */
export interface Environment {
  version: string;
  kernel?: string;
  privileged: boolean;
  ok: boolean;
  problems: string[];
  limits?: { name: string; unit: string; default: number; min: number; max: number; enforcedBy: string }[];
  [key: string]: unknown;
}

/** The body of a callback (webhook). */
export interface WebhookEvent {
  type: "submission.done";
  timestamp: string;
  data: Submission & { httpStatus: number; result: ExecuteResult | JobResult | ErrorBody };
}
