import { PyexecError } from "./errors.js";
import { SseParser } from "./sse.js";
import type {
  Environment,
  ErrorBody,
  ExecuteRequest,
  ExecuteResult,
  Health,
  Job,
  JobParams,
  JobResult,
  Ready,
  Submission,
  SubmissionRequest,
} from "./types.js";

export interface PyexecClientOptions {
  /** The service, such as "http://127.0.0.1:3002". */
  baseUrl: string;
  /** Sent as `Authorization: Bearer KEY`. */
  apiKey?: string | undefined;
  /** Each call's time limit in ms, retries included (default 120000; 0: none). */
  timeoutMs?: number | undefined;
  /** How many times an idempotent call refused with 429 or 503 is tried again (default 2). */
  retries?: number | undefined;
  /** The longest wait before a retry, ms (default 30000): a longer Retry-After is not waited for. */
  maxRetryDelayMs?: number | undefined;
  /** The fetch to use (default: globalThis.fetch). */
  fetch?: typeof fetch | undefined;
}

export interface CallOptions {
  /** Aborts the call; it then rejects with the signal's reason. */
  signal?: AbortSignal | undefined;
  /** This call's time limit in ms, instead of the client's. */
  timeoutMs?: number | undefined;
  /** Sent as X-Request-Id: the result's id and the service's log lines carry it. */
  requestId?: string | undefined;
}

export interface StreamOptions extends CallOptions {
  /** Each piece of standard output, as the program writes it. */
  onStdout?: ((text: string) => void) | undefined;
  /** Each piece of standard error, as the program writes it. */
  onStderr?: ((text: string) => void) | undefined;
}

export interface SubmitOptions extends CallOptions {
  /** Idempotency-Key: the same key and body give the same ids, and let the call be retried safely. */
  idempotencyKey?: string | undefined;
  /** Keep the connection up to this many ms until the submissions are done (?wait=). */
  wait?: number | undefined;
  /** For a batch: one callbackUrl for all its members. */
  callbackUrl?: string | undefined;
}

export interface WaitOptions {
  signal?: AbortSignal | undefined;
  /** Give up after this many ms (default: no limit). */
  timeoutMs?: number | undefined;
  /** The first poll's delay (default 250 ms); it grows by half each poll. */
  intervalMs?: number | undefined;
  /** The longest delay between polls (default 2000 ms). */
  maxIntervalMs?: number | undefined;
  /** Called when a submission's state or progress changes. */
  onProgress?: ((submission: Submission) => void) | undefined;
}

export interface JobSubmitOptions extends CallOptions {
  idempotencyKey?: string | undefined;
  callbackUrl?: string | undefined;
}

const MAX_BATCH = 100;

interface Call extends CallOptions {
  method: "GET" | "POST";
  path: string;
  body?: unknown;
  idempotencyKey?: string | undefined;
  accept?: string;
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** A signal aborted after ms, and a way to stop its timer when the call is over. */
function timeoutSignal(ms: number): { signal: AbortSignal; clear: () => void } {
  if (typeof AbortSignal.timeout === "function") return { signal: AbortSignal.timeout(ms), clear: () => {} };
  const c = new AbortController();
  const t = setTimeout(() => c.abort(new DOMException("The operation timed out.", "TimeoutError")), ms);
  return { signal: c.signal, clear: () => clearTimeout(t) };
}

/** A signal aborted when any of signals is (AbortSignal.any where the platform has it). */
function anySignal(signals: AbortSignal[]): AbortSignal {
  const any = (AbortSignal as { any?: (s: AbortSignal[]) => AbortSignal }).any;
  if (typeof any === "function") return any.call(AbortSignal, signals);
  const c = new AbortController();
  for (const s of signals) {
    if (s.aborted) {
      c.abort(s.reason);
      break;
    }
    s.addEventListener("abort", () => c.abort(s.reason), { once: true, signal: c.signal });
  }
  return c.signal;
}

/** Retry-After: seconds, or an HTTP date. */
function parseRetryAfter(v: string | null): number | undefined {
  if (v === null) return undefined;
  if (/^\s*\d+\s*$/.test(v)) return Number(v);
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : Math.max(0, Math.ceil((t - Date.now()) / 1000));
}

function isErrorBody(b: unknown): b is ErrorBody {
  return typeof b === "object" && b !== null && "error" in b && typeof (b as ErrorBody).error === "object";
}

/** The error of a response that is not an answer: its JSON error body when it has one. */
function errorOf(res: Response, body: unknown): PyexecError {
  const requestId = res.headers.get("x-request-id") ?? undefined;
  const retryAfter = parseRetryAfter(res.headers.get("retry-after"));
  if (isErrorBody(body)) {
    const e = body.error;
    return new PyexecError(e.message, { status: res.status, code: e.code, field: e.field, requestId, retryAfter });
  }
  return new PyexecError(`HTTP ${res.status} without an error body`, {
    status: res.status,
    code: "invalid_response",
    requestId,
    retryAfter,
  });
}

/**
 * The done submission's result, or a PyexecError for the error a worker
 * answered (a request refused when it ran).
 */
export function submissionResult<R = ExecuteResult | JobResult>(s: Submission): R {
  if (s.state !== "done" || s.result === undefined)
    throw new PyexecError(`submission ${s.id} is ${s.state}, not done`, { status: 0, code: "invalid_response" });
  if (isErrorBody(s.result)) {
    const e = s.result.error;
    throw new PyexecError(e.message, { status: s.httpStatus ?? 0, code: e.code, field: e.field });
  }
  return s.result as R;
}

/** A client of one pyexec service. */
export class PyexecClient {
  readonly baseUrl: string;
  readonly submissions: Submissions;
  readonly jobs: Jobs;
  private readonly apiKey: string | undefined;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly maxRetryDelayMs: number;
  private readonly fetchFn: typeof fetch;

  constructor(options: PyexecClientOptions) {
    if (!options || typeof options.baseUrl !== "string" || options.baseUrl === "")
      throw new TypeError("PyexecClient: baseUrl is required, such as http://127.0.0.1:3002");
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.apiKey = options.apiKey;
    this.timeoutMs = options.timeoutMs ?? 120_000;
    this.retries = Math.max(0, options.retries ?? 2);
    this.maxRetryDelayMs = options.maxRetryDelayMs ?? 30_000;
    const f = options.fetch ?? globalThis.fetch;
    if (typeof f !== "function") throw new TypeError("PyexecClient: no fetch here; pass options.fetch");
    this.fetchFn = f;
    this.submissions = new Submissions(this);
    this.jobs = new Jobs(this);
  }

  /** Runs a program (or its test cases): the result, also for statuses other than ok. */
  async execute(request: ExecuteRequest, options: CallOptions = {}): Promise<ExecuteResult> {
    return this.call<ExecuteResult>({ method: "POST", path: "/api/execute", body: request, ...options }, [200, 500]);
  }

  /**
   * Runs a program and reads its output as it comes (Server-Sent Events):
   * onStdout and onStderr get each piece as the program writes it; resolves
   * with the result once the run is over. Requests with `tests` cannot be
   * streamed (400, field "tests").
   */
  async executeStream(request: ExecuteRequest, options: StreamOptions = {}): Promise<ExecuteResult> {
    return this.withSignal(options, async (signal, failed) => {
      const res = await this.send(
        { method: "POST", path: "/api/execute", body: request, accept: "text/event-stream", ...options },
        signal,
        failed,
      );
      const type = res.headers.get("content-type") ?? "";
      if (!type.startsWith("text/event-stream")) {
        const body = await this.readJson(res, failed);
        if (res.status === 200 || res.status === 500) {
          if (isErrorBody(body)) throw errorOf(res, body);
          return body as ExecuteResult;
        }
        throw errorOf(res, body);
      }
      if (!res.body) throw new PyexecError("the event stream has no body", { status: res.status, code: "invalid_response" });
      let result: ExecuteResult | undefined;
      let problem: unknown;
      const parser = new SseParser((e) => {
        if (problem !== undefined) return;
        try {
          const value: unknown = JSON.parse(e.data);
          if (e.event === "stdout") options.onStdout?.(value as string);
          else if (e.event === "stderr") options.onStderr?.(value as string);
          else if (e.event === "result") result = value as ExecuteResult;
        } catch (err) {
          problem = err;
        }
      });
      const reader = res.body.getReader();
      const decoder = new TextDecoder("utf-8");
      try {
        for (;;) {
          let chunk: ReadableStreamReadResult<Uint8Array>;
          try {
            chunk = await reader.read();
          } catch (err) {
            throw failed(err);
          }
          if (chunk.done) break;
          parser.push(decoder.decode(chunk.value, { stream: true }));
          if (problem !== undefined) throw problem;
        }
        parser.push(decoder.decode());
        parser.end();
      } finally {
        if (problem !== undefined || result === undefined) await reader.cancel().catch(() => {});
        reader.releaseLock();
      }
      if (result === undefined)
        throw new PyexecError("the event stream ended without a result", {
          status: res.status,
          code: "invalid_response",
          requestId: res.headers.get("x-request-id") ?? undefined,
        });
      return result;
    });
  }

  /** GET /api/environment: the service's start-up self-test report. */
  async environment(options: CallOptions = {}): Promise<Environment> {
    return this.call<Environment>({ method: "GET", path: "/api/environment", ...options });
  }

  /** GET /health: always answered while the service runs; `ready` says whether it can run code. */
  async health(options: CallOptions = {}): Promise<Health> {
    return this.call<Health>({ method: "GET", path: "/health", ...options });
  }

  /** GET /health/ready: `{status: "ready"}`, or `not_ready` and the reason (not an error). */
  async ready(options: CallOptions = {}): Promise<Ready> {
    return this.call<Ready>({ method: "GET", path: "/health/ready", ...options }, [200, 503], false);
  }

  /** @internal A JSON call: the body for the statuses in ok, else a PyexecError. */
  async call<T>(c: Call, ok: number[] = [200], retry = true): Promise<T> {
    return this.withSignal(c, async (signal, failed) => {
      const res = await this.send(c, signal, failed, retry);
      const body = await this.readJson(res, failed);
      if (!ok.includes(res.status) || isErrorBody(body)) throw errorOf(res, body);
      return body as T;
    });
  }

  /** Runs fn with the call's signal (the caller's and the time limit together). */
  private async withSignal<T>(
    c: CallOptions,
    fn: (signal: AbortSignal | undefined, failed: (err: unknown) => unknown) => Promise<T>,
  ): Promise<T> {
    const ms = c.timeoutMs ?? this.timeoutMs;
    const timer = ms > 0 ? timeoutSignal(ms) : undefined;
    const signals = [c.signal, timer?.signal].filter((s): s is AbortSignal => s !== undefined);
    const signal = signals.length > 1 ? anySignal(signals) : signals[0];
    const failed = (err: unknown): unknown => {
      if (c.signal?.aborted) return c.signal.reason;
      if (timer?.signal.aborted)
        return new PyexecError(`no answer within ${ms} ms`, { status: 0, code: "timeout", cause: err });
      if (err instanceof PyexecError) return err;
      return new PyexecError(`the request failed: ${err instanceof Error ? err.message : String(err)}`, {
        status: 0,
        code: "network_error",
        cause: err,
      });
    };
    // The call also ends when the caller's signal or the time limit fires,
    // whether or not the platform's fetch heeds the combined signal (some
    // Node 18 builds let an AbortSignal.any() signal go unheard).
    let stop: (() => void) | undefined;
    const stopped = new Promise<never>((_, reject) => {
      const onAbort = (): void => reject(new Error("aborted"));
      for (const s of signals) {
        if (s.aborted) onAbort();
        s.addEventListener("abort", onAbort, { once: true });
      }
      stop = () => signals.forEach((s) => s.removeEventListener("abort", onAbort));
    });
    stopped.catch(() => {});
    try {
      return await Promise.race([fn(signal, failed), stopped]);
    } catch (err) {
      throw failed(err);
    } finally {
      stop?.();
      timer?.clear();
    }
  }

  /** Sends the request; 429 and 503 of an idempotent call are tried again after Retry-After. */
  private async send(
    c: Call,
    signal: AbortSignal | undefined,
    failed: (err: unknown) => unknown,
    retry = true,
  ): Promise<Response> {
    const headers: Record<string, string> = { Accept: c.accept ?? "application/json" };
    if (this.apiKey) headers["Authorization"] = `Bearer ${this.apiKey}`;
    if (c.requestId) headers["X-Request-Id"] = c.requestId;
    if (c.idempotencyKey !== undefined) headers["Idempotency-Key"] = c.idempotencyKey;
    let body: string | undefined;
    if (c.body !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(c.body);
    }
    const idempotent = retry && (c.method === "GET" || c.idempotencyKey !== undefined);
    for (let attempt = 0; ; attempt++) {
      let res: Response;
      try {
        res = await this.fetchFn(this.baseUrl + c.path, {
          method: c.method,
          headers,
          ...(body !== undefined ? { body } : {}),
          ...(signal ? { signal } : {}),
        });
      } catch (err) {
        throw failed(err);
      }
      if ((res.status === 429 || res.status === 503) && idempotent && attempt < this.retries) {
        const ra = parseRetryAfter(res.headers.get("retry-after"));
        const delay = ra !== undefined ? ra * 1000 : 500 * 2 ** attempt;
        if (delay <= this.maxRetryDelayMs) {
          await res.body?.cancel().catch(() => {});
          await sleep(delay, signal);
          continue;
        }
      }
      return res;
    }
  }

  private async readJson(res: Response, failed: (err: unknown) => unknown): Promise<unknown> {
    let text: string;
    try {
      text = await res.text();
    } catch (err) {
      throw failed(err);
    }
    try {
      return JSON.parse(text);
    } catch {
      throw new PyexecError(`HTTP ${res.status}: the answer is not JSON: ${text.slice(0, 200)}`, {
        status: res.status,
        code: "invalid_response",
        requestId: res.headers.get("x-request-id") ?? undefined,
        retryAfter: parseRetryAfter(res.headers.get("retry-after")),
      });
    }
  }
}

/** Asynchronous submissions: queued now, run in the background, read later. */
export class Submissions {
  constructor(private readonly client: PyexecClient) {}

  /**
   * Queues one request (a Submission) or a batch (an array, queued whole or
   * not at all). With idempotencyKey, a repeated call gets the same ids (and
   * 429/503 are retried); with wait, the answer waits up to that many ms for
   * them to be done.
   */
  create(request: SubmissionRequest, options?: SubmitOptions): Promise<Submission>;
  create(requests: SubmissionRequest[], options?: SubmitOptions): Promise<Submission[]>;
  async create(
    request: SubmissionRequest | SubmissionRequest[],
    options: SubmitOptions = {},
  ): Promise<Submission | Submission[]> {
    const { wait, callbackUrl, ...rest } = options;
    const path = "/api/submissions" + (wait !== undefined ? `?wait=${Math.max(0, Math.floor(wait))}` : "");
    if (Array.isArray(request)) {
      const body = { submissions: request, ...(callbackUrl !== undefined ? { callbackUrl } : {}) };
      const r = await this.client.call<{ submissions: Submission[] }>({ method: "POST", path, body, ...rest }, [200, 202]);
      return r.submissions;
    }
    const body = callbackUrl !== undefined ? { ...request, callbackUrl } : request;
    return this.client.call<Submission>({ method: "POST", path, body, ...rest }, [200, 202]);
  }

  /** One submission's state, and its result once done (404 for an unknown or expired id). */
  async get(id: string, options: CallOptions = {}): Promise<Submission> {
    return this.client.call<Submission>({ method: "GET", path: `/api/submissions/${encodeURIComponent(id)}`, ...options });
  }

  /** Several at once, in order; an unknown id has state "unknown". */
  async getMany(ids: string[], options: CallOptions = {}): Promise<Submission[]> {
    const out: Submission[] = [];
    for (let i = 0; i < ids.length; i += MAX_BATCH) {
      const part = ids.slice(i, i + MAX_BATCH).map(encodeURIComponent).join(",");
      const r = await this.client.call<{ submissions: Submission[] }>({
        method: "GET",
        path: `/api/submissions?ids=${part}`,
        ...options,
      });
      out.push(...r.submissions);
    }
    return out;
  }

  /**
   * Polls until the submission (or every one of ids) is done, the delay
   * growing from intervalMs to maxIntervalMs. An unknown id rejects with
   * code "not_found".
   */
  waitFor(id: string, options?: WaitOptions): Promise<Submission>;
  waitFor(ids: string[], options?: WaitOptions): Promise<Submission[]>;
  async waitFor(id: string | string[], options: WaitOptions = {}): Promise<Submission | Submission[]> {
    const ids = Array.isArray(id) ? id : [id];
    const deadline = options.timeoutMs !== undefined ? Date.now() + options.timeoutMs : Infinity;
    let interval = options.intervalMs ?? 250;
    const maxInterval = options.maxIntervalMs ?? 2000;
    const seen = new Map<string, string>();
    const done = new Map<string, Submission>();
    for (;;) {
      const pending = ids.filter((i) => !done.has(i));
      const states = await this.getMany(pending, { signal: options.signal });
      for (const s of states) {
        if (s.state === "unknown")
          throw new PyexecError(`no submission ${s.id} (unknown or expired)`, { status: 404, code: "not_found" });
        const key = `${s.state}/${s.progress ?? ""}`;
        if (seen.get(s.id) !== key) {
          seen.set(s.id, key);
          options.onProgress?.(s);
        }
        if (s.state === "done") done.set(s.id, s);
      }
      if (done.size === new Set(ids).size) {
        const all = ids.map((i) => done.get(i) as Submission);
        return Array.isArray(id) ? all : all[0]!;
      }
      const left = deadline - Date.now();
      if (left <= 0)
        throw new PyexecError(`submissions not done within ${options.timeoutMs} ms`, { status: 0, code: "timeout" });
      await sleep(Math.min(interval, left), options.signal);
      interval = Math.min(maxInterval, Math.ceil(interval * 1.5));
    }
  }
}

/** Operator jobs (docs/jobs.md). */
export class Jobs {
  constructor(private readonly client: PyexecClient) {}

  /** GET /api/jobs: the jobs, their parameters and readiness. */
  async list(options: CallOptions = {}): Promise<Job[]> {
    const r = await this.client.call<{ jobs: Job[] }>({ method: "GET", path: "/api/jobs", ...options });
    return r.jobs;
  }

  /**
   * Runs a job and waits for its result (the connection is held while it
   * runs): give a long job a timeoutMs beyond its own limit (0: none), or
   * use runAsync.
   */
  async run(name: string, params: JobParams, options: CallOptions = {}): Promise<JobResult> {
    return this.client.call<JobResult>(
      { method: "POST", path: `/api/jobs/${encodeURIComponent(name)}`, body: { params }, ...options },
      [200, 500],
    );
  }

  /** Queues a job as a submission ("async": true): its id and state. */
  async submit(name: string, params: JobParams, options: JobSubmitOptions = {}): Promise<Submission> {
    const { callbackUrl, ...rest } = options;
    const body = { params, async: true, ...(callbackUrl !== undefined ? { callbackUrl } : {}) };
    return this.client.call<Submission>(
      { method: "POST", path: `/api/jobs/${encodeURIComponent(name)}`, body, ...rest },
      [200, 202],
    );
  }

  /**
   * Queues a job, polls it (onProgress sees its `progress`, 0 to 1, as the
   * job reports it) and resolves with its result.
   */
  async runAsync(
    name: string,
    params: JobParams,
    options: JobSubmitOptions & Omit<WaitOptions, "signal" | "timeoutMs"> = {},
  ): Promise<JobResult> {
    const { onProgress, intervalMs, maxIntervalMs, ...submit } = options;
    const s = await this.submit(name, params, submit);
    const done = await this.client.submissions.waitFor(s.id, {
      signal: options.signal,
      timeoutMs: options.timeoutMs,
      onProgress,
      intervalMs,
      maxIntervalMs,
    });
    return submissionResult<JobResult>(done);
  }
}
